/* SPDX-License-Identifier: MIT */
/*
 * The client's opening handshake (RFC 6455 §4.1): ws:// and wss:// URLs,
 * TCP (+ TLS with verification on by default, SNI = the URL's host), the
 * upgrade request with a fresh Sec-WebSocket-Key over a one-shot HTTP
 * client connection, and the checks of §4.1 on the response (items 1-6 of
 * "the client MUST validate the server's response"). The stream is then
 * taken back from the HTTP connection, with any bytes the server sent after
 * the 101 still buffered in front.
 */
#include "ws/ws_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_URL = 2048, MAX_EXTRA = 16, PROTO_LIST = 1024 };

/* ws://x → http://x, wss://x → https://x, into buf. */
static int http_url(const char *url, char *buf, size_t size)
{
    const char *rest;
    const char *scheme;
    if (strncmp(url, "ws://", 5) == 0) {
        scheme = "http://";
        rest = url + 5;
    } else if (strncmp(url, "wss://", 6) == 0) {
        scheme = "https://";
        rest = url + 6;
    } else {
        return CN_EHTTP_URL;
    }
    int n = snprintf(buf, size, "%s%s", scheme, rest);
    return n > 0 && (size_t)n < size ? 0 : CN_EHTTP_URL;
}

static int dial(struct cn_stream **out, const struct cn_http_url *u,
                const struct cn_ws_client_opts *o, int64_t deadline)
{
    int rc = cn_tcp_connect(out, u->host, u->port, o ? &o->tcp : NULL, deadline);
    if (rc < 0 || !u->tls) {
        return rc;
    }
    struct cn_tls_ctx *ctx = o ? o->tls : NULL;
    struct cn_tls_ctx *own = NULL;
    if (!ctx) {
        struct cn_tls_client_opts to = {0};
        rc = cn_tls_client_ctx_new(&own, &to);
        if (rc < 0) {
            cn_stream_close(*out);
            return rc;
        }
        ctx = own;
    }
    rc = cn_tls_connect(out, ctx, *out, u->host, deadline); /* closes the TCP stream on failure */
    cn_tls_ctx_free(own);                                   /* the stream keeps its own reference */
    return rc;
}

/* The Host header value: host[:port], IPv6 literals in brackets. */
static void host_header(const struct cn_http_url *u, char *buf, size_t size)
{
    bool v6 = strchr(u->host, ':') != NULL;
    bool dflt = u->port == (u->tls ? 443 : 80);
    char port[8] = "";
    if (!dflt) {
        snprintf(port, sizeof port, ":%d", u->port);
    }
    snprintf(buf, size, "%s%s%s%s", v6 ? "[" : "", u->host, v6 ? "]" : "", port);
}

static int proto_list(const struct cn_ws_client_opts *o, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; o && i < o->nsubprotocols; i++) {
        int w = snprintf(buf + n, size - n, "%s%s", i ? ", " : "", o->subprotocols[i]);
        if (w < 0 || (size_t)w >= size - n) {
            return -EINVAL;
        }
        n += (size_t)w;
    }
    return 0;
}

/* §4.1: the response checks. On success *proto is the chosen subprotocol
 * (a view into the response) or NULL. */
static int check_response(const struct cn_http_response *r, const char *accept,
                          const struct cn_ws_client_opts *o, const char **proto, size_t *plen)
{
    size_t len;
    const char *v;
    if (r->status != 101) {
        return CN_EWS_HANDSHAKE;
    }
    v = cn_http_header_find(r->headers, r->nheaders, "Upgrade", &len);
    if (!v || !cn_http_token_has(v, len, "websocket")) {
        return CN_EWS_HANDSHAKE;
    }
    v = cn_http_header_find(r->headers, r->nheaders, "Connection", &len);
    if (!v || !cn_http_token_has(v, len, "upgrade")) {
        return CN_EWS_HANDSHAKE;
    }
    v = cn_http_header_find(r->headers, r->nheaders, "Sec-WebSocket-Accept", &len);
    if (!v || len != 28 || memcmp(v, accept, 28) != 0) {
        return CN_EWS_HANDSHAKE;
    }
    if (cn_http_header_find(r->headers, r->nheaders, "Sec-WebSocket-Extensions", &len)) {
        return CN_EWS_HANDSHAKE; /* we offered none */
    }
    *proto = cn_http_header_find(r->headers, r->nheaders, "Sec-WebSocket-Protocol", plen);
    if (!*proto) {
        return 0;
    }
    for (size_t i = 0; o && i < o->nsubprotocols; i++) {
        if (strlen(o->subprotocols[i]) == *plen && memcmp(o->subprotocols[i], *proto, *plen) == 0) {
            return 0;
        }
    }
    return CN_EWS_HANDSHAKE; /* a subprotocol we did not offer */
}

struct handshake {
    char key[25];
    char accept[29];
    char host[300];
    char target[MAX_URL];
    char protos[PROTO_LIST];
    struct cn_http_header h[4 + MAX_EXTRA];
    size_t nh;
};

static int build(struct handshake *hs, const struct cn_http_url *u,
                 const struct cn_ws_client_opts *o)
{
    if ((o && o->nheaders > MAX_EXTRA) || u->target_len >= sizeof hs->target ||
        proto_list(o, hs->protos, sizeof hs->protos) < 0) {
        return -EINVAL;
    }
    int rc = cn__ws_make_key(hs->key);
    if (rc == 0) {
        rc = cn__ws_accept_key(hs->key, hs->accept);
    }
    if (rc < 0) {
        return rc;
    }
    memcpy(hs->target, u->target, u->target_len);
    hs->target[u->target_len] = '\0';
    host_header(u, hs->host, sizeof hs->host);
    hs->nh = 0;
    hs->h[hs->nh++] = cn_http_header_str("Upgrade", "websocket");
    hs->h[hs->nh++] = cn_http_header_str("Connection", "Upgrade");
    hs->h[hs->nh++] = cn_http_header_str("Sec-WebSocket-Key", hs->key);
    hs->h[hs->nh++] = cn_http_header_str("Sec-WebSocket-Version", "13");
    if (hs->protos[0]) {
        hs->h[hs->nh++] = cn_http_header_str("Sec-WebSocket-Protocol", hs->protos);
    }
    for (size_t i = 0; o && i < o->nheaders; i++) {
        hs->h[hs->nh++] = o->headers[i];
    }
    return 0;
}

/* Runs the upgrade exchange on c and takes its stream. */
static int upgrade(struct cn_http_client_conn *c, struct handshake *hs,
                   const struct cn_ws_client_opts *o, struct cn_stream **s, char **proto,
                   int64_t deadline)
{
    struct cn_http_client_request req = {
        .target = hs->target, .host = hs->host, .headers = hs->h, .nheaders = hs->nh};
    struct cn_http_response *r;
    int rc = cn_http_client_conn_request(c, &req, &r, deadline);
    if (rc < 0) {
        return rc;
    }
    if (o && o->http_status) {
        *o->http_status = r->status;
    }
    const char *p = NULL;
    size_t plen = 0;
    rc = check_response(r, hs->accept, o, &p, &plen);
    if (rc == 0 && p && !(*proto = strndup(p, plen))) {
        rc = -ENOMEM;
    }
    cn_http_response_free(r);
    if (rc == 0) {
        rc = cn_http_client_conn_take_stream(c, s);
    }
    return rc;
}

int cn_ws_connect(struct cn_ws **out, const char *url, const struct cn_ws_client_opts *opts,
                  int64_t deadline)
{
    char hurl[MAX_URL];
    struct cn_http_url u;
    if (opts && opts->http_status) {
        *opts->http_status = 0;
    }
    int rc = http_url(url, hurl, sizeof hurl);
    if (rc == 0) {
        rc = cn_http_url_parse(hurl, &u);
    }
    struct handshake *hs = rc == 0 ? malloc(sizeof *hs) : NULL;
    if (rc == 0 && !hs) {
        rc = -ENOMEM;
    }
    if (rc == 0) {
        rc = build(hs, &u, opts);
    }
    struct cn_stream *s = NULL;
    if (rc == 0) {
        rc = dial(&s, &u, opts, deadline);
    }
    struct cn_http_client_conn *c = NULL;
    if (rc == 0 && (rc = cn_http_client_conn_new(&c, s, NULL)) < 0) {
        cn_stream_close(s);
    }
    char *proto = NULL;
    struct cn_stream *ws_s = NULL;
    if (rc == 0) {
        rc = upgrade(c, hs, opts, &ws_s, &proto, deadline);
    }
    cn_http_client_conn_close(c); /* keeps the taken stream */
    free(hs);
    if (rc == 0) {
        rc = cn_ws_wrap(out, ws_s, false, opts ? &opts->ws : NULL);
    }
    if (rc < 0) {
        free(proto);
        return rc;
    }
    (*out)->subprotocol = proto;
    return 0;
}
