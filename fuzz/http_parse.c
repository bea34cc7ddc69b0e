/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the HTTP parsing glue (net/http_parse.c over llhttp):
 * requests or responses, pipelined, fed in pieces of a size the input
 * chooses, through the same connection buffer the server and client use.
 *
 * Input: byte 0 picks the message type (bit 0), HEAD semantics for
 * responses (bit 1) and the piece size (bits 2..7); the rest is the stream.
 * Checks: no crash or sanitizer report, every view lies inside the
 * connection buffer, body output never exceeds the limit, and the parser
 * always makes progress (no endless loop on any input).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_internal.h"

/* The stream glue in http_parse.c reads the clock; the pure half never does. */
int64_t cn_now(void)
{
    return 0;
}

static void check_view(const struct cn__http_parser *p, const char *v, size_t len)
{
    if (len == 0) {
        return;
    }
    if (v < p->buf || v + len > p->buf + p->cap) {
        abort();
    }
}

static void check_head(const struct cn__http_parser *p)
{
    check_view(p, p->msg.text, p->msg.text_len);
    if (p->msg.nheaders > p->max_headers) {
        abort();
    }
    for (size_t i = 0; i < p->msg.nheaders; i++) {
        check_view(p, p->msg.headers[i].name, p->msg.headers[i].name_len);
        check_view(p, p->msg.headers[i].value, p->msg.headers[i].value_len);
    }
}

/* Appends up to step input bytes; returns how many. */
static size_t feed(struct cn__http_parser *p, const uint8_t **data, size_t *size, size_t step)
{
    size_t room;
    char *at = cn__http_space(p, &room);
    size_t k = *size < step ? *size : step;
    k = k < room ? k : room;
    memcpy(at, *data, k);
    cn__http_commit(p, k);
    *data += k;
    *size -= k;
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t ctl = data[0];
    data++;
    size--;
    struct cn_http_limits lim = {
        .max_header_bytes = 2048, .max_headers = 16, .max_body_bytes = 8192};
    struct cn__http_parser p;
    if (cn__http_parser_init(&p, (ctl & 1) ? HTTP_RESPONSE : HTTP_REQUEST, &lim) < 0) {
        return 0;
    }
    p.skip_body = (ctl & 2) != 0;
    size_t step = 1 + (size_t)(ctl >> 2) * 7;
    char sink[512];
    uint64_t body = 0;
    int rc = 0;
    for (int msgs = 0; rc >= 0 && msgs < 64; msgs++) {
        cn__http_parser_next(&p);
        while ((rc = cn__http_parse_head(&p)) == 0) {
            if (feed(&p, &data, &size, step) == 0) {
                rc = cn__http_parse_eof(&p);
                goto done;
            }
        }
        if (rc < 0) {
            break;
        }
        check_head(&p);
        body = 0;
        while (p.phase == CN__HTTP_BODY) {
            if (p.start == p.end && feed(&p, &data, &size, step) == 0) {
                rc = cn__http_parse_eof(&p);
                goto done;
            }
            ssize_t k = cn__http_parse_body(&p, sink, sizeof sink);
            if (k < 0) {
                rc = (int)k;
                break;
            }
            body += (uint64_t)k;
            if (body > lim.max_body_bytes) {
                abort();
            }
        }
        check_head(&p); /* the views survive the body */
    }
done:
    cn__http_parser_free(&p);
    return 0;
}
