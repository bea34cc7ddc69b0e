/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the Kinesis response parsers and the error mapper
 * (kinesis/json.c): what a hostile or broken endpoint can send.
 *
 * The first byte picks the parser (and, for PutRecords, how many entries
 * were "sent"; for errors, the HTTP status and content type); the rest is
 * the body, in its own allocation so ASan catches any read past it.
 * Checked beyond "no crash": a parser returns 0 or one of its documented
 * errors, every view a success hands out is readable and NUL-terminated
 * where promised, counts agree, and an error message is always a string.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kinesis/api_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch(const void *p, size_t n)
{
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < n; i++) {
        sink ^= ((const uint8_t *)p)[i];
    }
    (void)sink;
}

static void check_rc(int rc, const struct cn_kinesis_error *e)
{
    if (rc != 0 && rc != CN_EKINESIS_BAD_RESPONSE && rc != -ENOMEM && rc != -E2BIG) {
        abort();
    }
    if (rc != 0 && (e->code != rc || strnlen(e->message, sizeof e->message) >= sizeof e->message)) {
        abort();
    }
}

static void records(const char *b, size_t n, struct cn_kinesis_error *e)
{
    struct cn_kinesis_records *r = NULL;
    int rc = cn__kinesis_parse_records(b, n, &r, e);
    check_rc(rc, e);
    if (rc != 0) {
        return;
    }
    for (size_t i = 0; i < r->count; i++) {
        const struct cn_kinesis_record *x = &r->records[i];
        touch(x->data, x->data_len);
        touch(x->partition_key, x->partition_key_len + 1);
        touch(x->sequence_number, strlen(x->sequence_number) + 1);
        if (x->partition_key[x->partition_key_len] != '\0') {
            abort();
        }
    }
    if (r->next_iterator && strlen(r->next_iterator) >= CN_KINESIS_ITERATOR_MAX) {
        abort();
    }
    cn_kinesis_records_free(r);
}

static void put_records(const char *b, size_t n, size_t sent, struct cn_kinesis_error *e)
{
    struct cn_kinesis_put_records_result *r = NULL;
    int rc = cn__kinesis_parse_put_records(b, n, sent, &r, e);
    check_rc(rc, e);
    if (rc != 0) {
        return;
    }
    size_t failed = 0;
    for (size_t i = 0; i < r->count; i++) {
        const struct cn_kinesis_put_result *x = &r->results[i];
        failed += x->code != 0;
        if (x->code == 0 && (x->shard_id[0] == '\0' || x->sequence_number[0] == '\0')) {
            abort();
        }
        if (x->code != 0) {
            touch(x->error_code, strlen(x->error_code));
            touch(x->error_message, strlen(x->error_message));
        }
    }
    if (r->count != sent || failed != r->failed) {
        abort();
    }
    cn_kinesis_put_records_result_free(r);
}

static void shards(const char *b, size_t n, bool open, struct cn_kinesis_error *e)
{
    struct cn_kinesis_shard_list l = {0};
    char *tok = NULL;
    int rc = cn__kinesis_parse_shards(b, n, open ? CN_KINESIS_SHARDS_OPEN : CN_KINESIS_SHARDS_ALL,
                                      &l, &tok, e);
    check_rc(rc, e);
    for (size_t i = 0; rc == 0 && i < l.count; i++) {
        if (open && !l.shards[i].open) {
            abort();
        }
    }
    free(l.shards);
    free(tok);
}

static void error(const char *b, size_t n, uint8_t mode)
{
    static const int statuses[] = {400, 403, 429, 500, 502, 503, 200, 404};
    static const char *const ctypes[] = {CN__KINESIS_CTYPE, "text/html", NULL, "application/json"};
    const char *ct = ctypes[(mode >> 3) & 3];
    struct cn_kinesis_error e;
    int code =
        cn__kinesis_error_response(statuses[mode & 7], ct, ct ? strlen(ct) : 0,
                                   (mode & 0x20) ? b : NULL, (mode & 0x20) ? n : 0, b, n, &e);
    if (code >= 0 || code != e.code || code > CN_EKINESIS || code < CN_EKINESIS_KMS) {
        abort();
    }
    if (strnlen(e.type, sizeof e.type) >= sizeof e.type) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t mode = data[0];
    size_t n = size - 1;
    char *b = malloc(n ? n : 1);
    if (!b) {
        return 0;
    }
    memcpy(b, data + 1, n);
    struct cn_kinesis_error e;
    struct cn_kinesis_stream_summary s;
    struct cn_kinesis_put_result one;
    char it[CN_KINESIS_ITERATOR_MAX];
    switch (mode % 8) {
    case 0:
        records(b, n, &e);
        break;
    case 1:
        put_records(b, n, (mode >> 3) % 8, &e);
        break;
    case 2:
        shards(b, n, mode & 8, &e);
        break;
    case 3:
        check_rc(cn__kinesis_parse_summary(b, n, &s, &e), &e);
        break;
    case 4:
        check_rc(cn__kinesis_parse_iterator(b, n, it, &e), &e);
        break;
    case 5:
        check_rc(cn__kinesis_parse_put_record(b, n, &one, &e), &e);
        break;
    default:
        error(b, n, mode >> 1);
        break;
    }
    free(b);
    return 0;
}
