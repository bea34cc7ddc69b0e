/* SPDX-License-Identifier: MIT */
/*
 * The server's opening handshake (RFC 6455 §4.2): validates an upgrade
 * request read by the HTTP server, runs the user's hook, negotiates the
 * subprotocol, answers 101 and takes the stream from the HTTP connection.
 * A refusal is an HTTP response with "Connection: close"; the HTTP
 * connection then ends (cn_http_serve closes it when the handler returns).
 */
#include "ws/ws_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { REFUSE_SEND_MS = 1000 };

bool cn__ws_list_has(const char *list, size_t len, const char *token)
{
    size_t tlen = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (list[i] == ' ' || list[i] == '\t' || list[i] == ',')) {
            i++;
        }
        size_t s = i;
        while (i < len && list[i] != ',') {
            i++;
        }
        size_t e = i;
        while (e > s && (list[e - 1] == ' ' || list[e - 1] == '\t')) {
            e--;
        }
        if (e - s == tlen && memcmp(list + s, token, tlen) == 0) {
            return true;
        }
    }
    return false;
}

static const char *header(const struct cn_http_request *req, const char *name, size_t *len)
{
    return cn_http_header_find(req->headers, req->nheaders, name, len);
}

static bool header_is(const struct cn_http_request *req, const char *name, const char *value)
{
    size_t len;
    const char *v = header(req, name, &len);
    return v && len == strlen(value) && memcmp(v, value, len) == 0;
}

bool cn_ws_is_upgrade(const struct cn_http_request *req)
{
    size_t len;
    const char *v = header(req, "Upgrade", &len);
    return strcmp(req->method, "GET") == 0 && v && cn_http_token_has(v, len, "websocket");
}

/* The §4.2.1 checks: 0, or the status to refuse with. The key is copied
 * NUL-terminated into key. */
static int check_request(const struct cn_http_request *req, char key[25])
{
    size_t len;
    const char *v = header(req, "Connection", &len);
    if (!cn_ws_is_upgrade(req) || req->version_minor < 1 || !v ||
        !cn_http_token_has(v, len, "upgrade") || !header(req, "Host", &len)) {
        return 400;
    }
    if (!header_is(req, "Sec-WebSocket-Version", "13")) {
        return 426; /* §4.4: answered with the versions we speak */
    }
    v = header(req, "Sec-WebSocket-Key", &len);
    if (!v || len != 24) {
        return 400;
    }
    memcpy(key, v, 24);
    key[24] = '\0';
    return cn__ws_key_valid(key) ? 0 : 400;
}

/* The first of ours (server preference) that any Sec-WebSocket-Protocol
 * header of the request lists. */
static const char *pick_subprotocol(const struct cn_http_request *req,
                                    const struct cn_ws_server_opts *o)
{
    for (size_t i = 0; o && i < o->nsubprotocols; i++) {
        for (size_t j = 0; j < req->nheaders; j++) {
            const struct cn_http_header *h = &req->headers[j];
            if (h->name_len == 22 && strncasecmp(h->name, "Sec-WebSocket-Protocol", 22) == 0 &&
                cn__ws_list_has(h->value, h->value_len, o->subprotocols[i])) {
                return o->subprotocols[i];
            }
        }
    }
    return NULL;
}

static int refuse(struct cn_http_server_conn *c, int status)
{
    struct cn_http_header h[2] = {cn_http_header_str("Connection", "close"),
                                  cn_http_header_str("Sec-WebSocket-Version", "13")};
    int rc = cn_http_server_respond(c, status, h, status == 426 ? 2 : 1, NULL, 0,
                                    cn_now() + REFUSE_SEND_MS);
    return rc < 0 ? rc : CN_EWS_HANDSHAKE;
}

enum { MAX_EXTRA = 16 };

static int respond_101(struct cn_http_server_conn *c, const char *accept, const char *proto,
                       const struct cn_ws_server_opts *o, int64_t deadline)
{
    struct cn_http_header h[4 + MAX_EXTRA];
    size_t n = 0;
    h[n++] = cn_http_header_str("Upgrade", "websocket");
    h[n++] = cn_http_header_str("Connection", "Upgrade");
    h[n++] = cn_http_header_str("Sec-WebSocket-Accept", accept);
    if (proto) {
        h[n++] = cn_http_header_str("Sec-WebSocket-Protocol", proto);
    }
    if (o && o->nheaders > MAX_EXTRA) {
        return -EINVAL;
    }
    for (size_t i = 0; o && i < o->nheaders; i++) {
        h[n++] = o->headers[i];
    }
    return cn_http_server_respond(c, 101, h, n, NULL, 0, deadline);
}

int cn_ws_accept(struct cn_ws **out, struct cn_http_server_conn *c,
                 const struct cn_http_request *req, const struct cn_ws_server_opts *opts,
                 int64_t deadline)
{
    char key[25];
    char accept[29];
    int status = check_request(req, key);
    if (status == 0 && opts && opts->hook) {
        status = opts->hook(req, opts->hook_arg);
        status = status == 0 ? 0 : (status >= 400 && status <= 599 ? status : 403);
    }
    if (status != 0) {
        return refuse(c, status);
    }
    int rc = cn__ws_accept_key(key, accept);
    const char *proto = pick_subprotocol(req, opts);
    char *proto_copy = proto ? strdup(proto) : NULL;
    if (rc == 0 && proto && !proto_copy) {
        rc = -ENOMEM;
    }
    if (rc == 0) {
        rc = respond_101(c, accept, proto, opts, deadline);
    }
    struct cn_stream *s = NULL;
    if (rc == 0) {
        rc = cn_http_server_conn_take_stream(c, &s);
    }
    if (rc == 0) {
        rc = cn_ws_wrap(out, s, true, opts ? &opts->ws : NULL);
    }
    if (rc < 0) {
        free(proto_copy);
        return rc;
    }
    (*out)->subprotocol = proto_copy;
    return 0;
}
