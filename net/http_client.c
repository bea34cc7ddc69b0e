/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 client: single connections over a caller's stream (the
 * WebSocket handshake uses those) and a client with a keep-alive pool.
 *
 * Pool. One pool per (scheme, host, port) holds at most max_conns_per_host
 * open connections: idle ones in a LIFO list (the most recently used is the
 * most likely still open on the server), busy ones held by their response.
 * A request takes an idle connection, else opens one if the pool has room,
 * else parks in the pool's FIFO until a connection is returned or closed,
 * all within its deadline. A connection goes back to the pool only when its
 * response was read to the end and both sides keep it alive; after any
 * error it is closed, never reused. A reaper coroutine closes connections
 * idle for longer than idle_timeout_ms. Pools themselves live until the
 * client closes (one per distinct host).
 *
 * Stale connections. A server may close an idle connection at any moment.
 * Before reuse a zero-deadline read notices most of these (libuv has already
 * seen the end of stream); the race that remains shows as end of stream or
 * a reset before any response byte, and then the request is sent once more
 * on a fresh connection if that is safe (an idempotent method, RFC 9110
 * §9.2.2) or the caller allowed it.
 */
#include "net/http_internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runtime/internal.h"

enum {
    DEF_MAX_CONNS = 8,
    DEF_IDLE_MS = 30 * 1000,
};

struct pool;

struct cn_http_client_conn {
    struct cn_stream *s; /* NULL once taken */
    struct cn__http_parser p;
    struct cn__http_wbuf out; /* request heads */
    char *body;
    size_t body_cap;
    struct cn_http_response resp;
    struct pool *pool;                /* NULL for a caller-made connection */
    struct cn_http_client_conn *next; /* idle list */
    int64_t idle_since;
    bool reused;    /* it served a request before this one */
    bool held;      /* resp is out with the caller */
    bool broken;    /* never reuse */
    bool req_close; /* the request asked for Connection: close */
};

struct pool {
    struct pool *next;
    struct cn_http_client *client;
    bool tls;
    int port;
    char host[256];
    struct cn_http_client_conn *idle; /* most recently used first */
    size_t open;                      /* idle + busy */
    struct cn__waitq waiters;         /* requests waiting for a connection */
};

struct cn_http_client {
    struct cn_http_client_opts o;
    struct cn_tls_ctx *tls;
    bool own_tls;
    struct pool *pools;
    struct cn_co *reaper; /* detached; alive until reaper_done */
    bool reaper_done;
    struct cn_co *closer; /* parked in cn_http_client_close */
    struct cn_event kick; /* an idle connection was added */
};

/* ---- URLs ------------------------------------------------------------------------- */

static bool url_chars_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= ' ' || ch == 0x7f) {
            return false;
        }
    }
    return true;
}

static int parse_port(const char *s, size_t n, int *port)
{
    if (n == 0) {
        return 0; /* "host:" keeps the default (RFC 3986 §3.2.3) */
    }
    if (n > 5) {
        return CN_EHTTP_URL;
    }
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return CN_EHTTP_URL;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535) {
        return CN_EHTTP_URL;
    }
    *port = v;
    return 0;
}

int cn_http_url_parse(const char *url, struct cn_http_url *out)
{
    memset(out, 0, sizeof *out);
    const char *p;
    if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
        out->port = 80;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        p = url + 8;
        out->tls = true;
        out->port = 443;
    } else {
        return CN_EHTTP_URL;
    }
    const char *auth_end = p + strcspn(p, "/?#");
    const char *host = p, *host_end, *after;
    if (memchr(p, '@', (size_t)(auth_end - p))) {
        return CN_EHTTP_URL; /* user info is not supported */
    }
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(auth_end - p));
        if (!close) {
            return CN_EHTTP_URL;
        }
        host = p + 1;
        host_end = close;
        after = close + 1;
    } else {
        const char *colon = memchr(p, ':', (size_t)(auth_end - p));
        host_end = colon ? colon : auth_end;
        after = host_end;
    }
    size_t host_len = (size_t)(host_end - host);
    if (host_len == 0 || host_len >= sizeof out->host || !url_chars_ok(host, host_len)) {
        return CN_EHTTP_URL;
    }
    if (after < auth_end &&
        (*after != ':' || parse_port(after + 1, (size_t)(auth_end - after - 1), &out->port) < 0)) {
        return CN_EHTTP_URL;
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->target = auth_end;
    out->target_len = strcspn(auth_end, "#");
    if (!url_chars_ok(out->target, out->target_len)) {
        return CN_EHTTP_URL;
    }
    if (out->target_len == 0) {
        out->target = "/";
        out->target_len = 1;
    }
    return 0;
}

/* ---- one exchange on a connection ----------------------------------------------------- */

static bool token_ok(const char *s)
{
    for (; *s; s++) {
        if (*s <= ' ' || *s == 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *s)) {
            return false;
        }
    }
    return true;
}

static bool method_is(const char *m, const char *what)
{
    return strcmp(m, what) == 0;
}

static bool idempotent(const char *m)
{
    return method_is(m, "GET") || method_is(m, "HEAD") || method_is(m, "PUT") ||
           method_is(m, "DELETE") || method_is(m, "OPTIONS") || method_is(m, "TRACE");
}

static int build_request(struct cn_http_client_conn *c, const char *method, const char *target,
                         size_t target_len, const char *host,
                         const struct cn_http_client_request *r)
{
    struct cn__http_wbuf *b = &c->out;
    b->len = 0;
    b->oom = false;
    if (!token_ok(method) || !url_chars_ok(target, target_len) || strpbrk(host, "\r\n")) {
        return -EINVAL;
    }
    cn__http_wbuf_str(b, method);
    cn__http_wbuf_add(b, target[0] == '?' ? " /" : " ", target[0] == '?' ? 2 : 1);
    cn__http_wbuf_add(b, target, target_len);
    cn__http_wbuf_str(b, " HTTP/1.1\r\nHost: ");
    cn__http_wbuf_str(b, host);
    cn__http_wbuf_add(b, "\r\n", 2);
    if (cn__http_wbuf_headers(b, r->headers, r->nheaders) < 0) {
        return -EINVAL;
    }
    if (r->body_len > 0 || method_is(method, "POST") || method_is(method, "PUT") ||
        method_is(method, "PATCH")) {
        cn__http_wbuf_fmt(b, "Content-Length: %zu\r\n", r->body_len);
    }
    cn__http_wbuf_add(b, "\r\n", 2);
    size_t len;
    const char *v = cn_http_header_find(r->headers, r->nheaders, "connection", &len);
    c->req_close = v && cn_http_token_has(v, len, "close");
    return b->oom ? -ENOMEM : 0;
}

static void fill_response(struct cn_http_client_conn *c)
{
    const struct cn__http_msg *m = &c->p.msg;
    struct cn_http_response *r = &c->resp;
    r->status = m->status;
    r->version_minor = m->version_minor;
    r->reason = m->text ? m->text : "";
    r->reason_len = m->text_len;
    r->headers = m->headers;
    r->nheaders = m->nheaders;
    r->body = "";
    r->body_len = 0;
    r->content_length = m->chunked ? -1 : m->content_length;
    r->keep_alive = m->keep_alive;
}

/* Reads the final response head, skipping interim 1xx responses (RFC 9110
 * §15.2) except 101. *virgin stays true while no response byte arrived. */
static int read_final_head(struct cn_http_client_conn *c, bool head_method, bool *virgin,
                           int64_t deadline)
{
    for (;;) {
        c->p.skip_body = head_method;
        int rc = cn__http_read_head(&c->p, c->s, deadline, 0);
        if (rc < 0) {
            *virgin = *virgin && c->p.end == 0 && c->p.phase == CN__HTTP_HEAD;
            return rc;
        }
        *virgin = false;
        if (c->p.msg.status >= 200 || c->p.msg.status == 101) {
            return 0;
        }
    }
}

/* Sends the request and reads the response. *retryable tells whether the
 * failure happened before any response byte in a way a closed idle
 * connection explains. */
static int exchange(struct cn_http_client_conn *c, const char *target, size_t target_len,
                    const char *host, const struct cn_http_client_request *r, int64_t deadline,
                    bool *retryable)
{
    const char *method = r->method ? r->method : "GET";
    *retryable = false;
    int rc = build_request(c, method, target, target_len, host, r);
    if (rc < 0) {
        return rc;
    }
    uv_buf_t v[2] = {uv_buf_init(c->out.p, (unsigned int)c->out.len),
                     uv_buf_init((char *)r->body, (unsigned int)r->body_len)};
    if (r->body_len > UINT32_MAX) {
        return -EINVAL;
    }
    rc = cn_stream_writev(c->s, v, r->body_len > 0 ? 2 : 1, deadline);
    bool virgin = true;
    if (rc == 0) {
        rc = read_final_head(c, method_is(method, "HEAD"), &virgin, deadline);
    }
    if (rc < 0) {
        *retryable =
            virgin && (rc == CN_EOF || rc == -ECONNRESET || rc == -EPIPE || rc == CN_EBROKEN);
        return rc;
    }
    fill_response(c);
    if (!r->stream_body && c->p.phase == CN__HTTP_BODY) {
        rc = cn__http_read_body_all(&c->p, c->s, &c->body, &c->body_cap, &c->resp.body_len,
                                    deadline);
        if (rc < 0) {
            return rc;
        }
        c->resp.body = c->body ? c->body : "";
    }
    c->held = true;
    return 0;
}

/* ---- single connections ------------------------------------------------------------- */

int cn_http_client_conn_new(struct cn_http_client_conn **out, struct cn_stream *s,
                            const struct cn_http_limits *limits)
{
    struct cn_http_client_conn *c = calloc(1, sizeof *c);
    if (!c) {
        return -ENOMEM;
    }
    if (cn__http_parser_init(&c->p, HTTP_RESPONSE, limits) < 0) {
        free(c);
        return -ENOMEM;
    }
    c->s = s;
    *out = c;
    return 0;
}

void cn_http_client_conn_close(struct cn_http_client_conn *c)
{
    if (!c) {
        return;
    }
    cn_stream_close(c->s);
    cn__http_parser_free(&c->p);
    cn__http_wbuf_free(&c->out);
    free(c->body);
    free(c);
}

int cn_http_client_conn_request(struct cn_http_client_conn *c,
                                const struct cn_http_client_request *req,
                                struct cn_http_response **resp, int64_t deadline)
{
    if (!c->s) {
        return CN_ECLOSED;
    }
    if (c->held || c->broken || c->p.phase == CN__HTTP_BODY || !req->target || !req->host) {
        return -EINVAL;
    }
    bool retryable;
    int rc = exchange(c, req->target, strlen(req->target), req->host, req, deadline, &retryable);
    if (rc < 0) {
        c->broken = true;
        return rc;
    }
    c->reused = true;
    *resp = &c->resp;
    return 0;
}

int cn_http_client_conn_take_stream(struct cn_http_client_conn *c, struct cn_stream **out)
{
    int rc = cn__http_take_stream(out, &c->s, &c->p);
    if (rc == 0) {
        c->broken = true; /* never back to the pool */
    }
    return rc;
}

static struct cn_http_client_conn *conn_of(struct cn_http_response *r)
{
    return (struct cn_http_client_conn *)((char *)r - offsetof(struct cn_http_client_conn, resp));
}

ssize_t cn_http_response_read_body(struct cn_http_response *r, void *buf, size_t n,
                                   int64_t deadline)
{
    struct cn_http_client_conn *c = conn_of(r);
    if (!c->held || !c->s || n == 0) {
        return -EINVAL;
    }
    ssize_t k = cn__http_read_body(&c->p, c->s, buf, n, deadline);
    if (k < 0) {
        c->broken = true;
    }
    return k;
}

/* ---- the pool --------------------------------------------------------------------------- */

static void wake_one(struct pool *pl)
{
    struct cn__waiter *w = cn__waitq_pop_parked(&pl->waiters);
    if (w) {
        cn__wake(w->co, 0);
    }
}

/* Closes a pooled connection and frees its slot. */
static void discard(struct cn_http_client_conn *c)
{
    struct pool *pl = c->pool;
    cn_http_client_conn_close(c);
    pl->open--;
    wake_one(pl);
}

void cn_http_response_free(struct cn_http_response *r)
{
    if (!r) {
        return;
    }
    struct cn_http_client_conn *c = conn_of(r);
    c->held = false;
    bool reusable = c->s && !c->broken && !c->req_close && c->p.phase == CN__HTTP_DONE &&
                    c->resp.keep_alive && c->resp.status != 101;
    if (!c->pool) {
        c->broken = !reusable;
        return;
    }
    if (!reusable) {
        discard(c);
        return;
    }
    struct pool *pl = c->pool;
    c->reused = true;
    c->idle_since = cn_now();
    c->next = pl->idle;
    pl->idle = c;
    cn_event_set(&pl->client->kick);
    wake_one(pl);
}

/* A zero-deadline read: nothing pending means the connection looks open;
 * end of stream, an error or unsolicited bytes mean it is not. */
static bool still_open(struct cn_http_client_conn *c)
{
    size_t room;
    char *at = cn__http_space(&c->p, &room);
    if (c->p.end > c->p.start || room == 0) {
        return false;
    }
    return cn_stream_read(c->s, at, room, 0) == -ETIMEDOUT;
}

static int tls_ctx(struct cn_http_client *cl, struct cn_tls_ctx **out)
{
    if (!cl->tls) {
        static const char *const alpn[] = {"http/1.1"};
        struct cn_tls_client_opts o = {.alpn = alpn, .nalpn = 1};
        int rc = cn_tls_client_ctx_new(&cl->tls, &o);
        if (rc < 0) {
            return rc;
        }
        cl->own_tls = true;
    }
    *out = cl->tls;
    return 0;
}

static int dial(struct pool *pl, struct cn_http_client_conn **out, int64_t deadline)
{
    struct cn_http_client *cl = pl->client;
    struct cn_stream *s;
    int rc = cn_tcp_connect(&s, pl->host, pl->port, &cl->o.tcp, deadline);
    if (rc < 0) {
        return rc;
    }
    if (pl->tls) {
        struct cn_tls_ctx *ctx;
        rc = tls_ctx(cl, &ctx);
        if (rc < 0) {
            cn_stream_close(s);
            return rc;
        }
        rc = cn_tls_connect(&s, ctx, s, pl->host, deadline); /* closes s on failure */
        if (rc < 0) {
            return rc;
        }
    }
    rc = cn_http_client_conn_new(out, s, &cl->o.limits);
    if (rc < 0) {
        cn_stream_close(s);
        return rc;
    }
    (*out)->pool = pl;
    return 0;
}

/* A connection of pool pl: an idle one (unless fresh), a new one, or the
 * next one returned. */
static int acquire(struct pool *pl, bool fresh, struct cn_http_client_conn **out, int64_t deadline)
{
    for (;;) {
        while (!fresh && pl->idle) {
            struct cn_http_client_conn *c = pl->idle;
            pl->idle = c->next;
            if (still_open(c)) {
                *out = c;
                return 0;
            }
            discard(c);
        }
        if (pl->open < pl->client->o.max_conns_per_host) {
            pl->open++;
            int rc = dial(pl, out, deadline);
            if (rc < 0) {
                pl->open--;
                wake_one(pl);
            }
            return rc;
        }
        struct cn__waiter w = {.co = cn__current()};
        cn__waitq_push(&pl->waiters, &w);
        int rc = cn__park(deadline, 0);
        cn__waitq_remove(&w);
        if (rc < 0) {
            return rc;
        }
    }
}

static int get_pool(struct cn_http_client *cl, const struct cn_http_url *u, struct pool **out)
{
    for (struct pool *pl = cl->pools; pl; pl = pl->next) {
        if (pl->tls == u->tls && pl->port == u->port && strcasecmp(pl->host, u->host) == 0) {
            *out = pl;
            return 0;
        }
    }
    struct pool *pl = calloc(1, sizeof *pl);
    if (!pl) {
        return -ENOMEM;
    }
    pl->client = cl;
    pl->tls = u->tls;
    pl->port = u->port;
    memcpy(pl->host, u->host, sizeof pl->host);
    pl->next = cl->pools;
    cl->pools = pl;
    *out = pl;
    return 0;
}

/* The Host header (RFC 9112 §3.2): brackets for IPv6, port when not default. */
static void host_header(const struct cn_http_url *u, char *buf, size_t size)
{
    bool v6 = strchr(u->host, ':') != NULL;
    bool dflt = u->port == (u->tls ? 443 : 80);
    snprintf(buf, size, v6 ? "[%s]" : "%s", u->host);
    if (!dflt) {
        size_t n = strlen(buf);
        snprintf(buf + n, size - n, ":%d", u->port);
    }
}

int cn_http_client_request(struct cn_http_client *cl, const struct cn_http_client_request *req,
                           struct cn_http_response **resp, int64_t deadline)
{
    struct cn_http_url u;
    struct pool *pl = NULL;
    int rc = req->url ? cn_http_url_parse(req->url, &u) : CN_EHTTP_URL;
    if (rc == 0) {
        rc = get_pool(cl, &u, &pl);
    }
    if (rc < 0) {
        return rc;
    }
    char host[272];
    host_header(&u, host, sizeof host);
    bool may_retry = idempotent(req->method ? req->method : "GET") || req->retry_unsafe;
    for (int attempt = 0;; attempt++) {
        struct cn_http_client_conn *c;
        rc = acquire(pl, attempt > 0, &c, deadline);
        if (rc < 0) {
            return rc;
        }
        bool retryable;
        rc = exchange(c, u.target, u.target_len, host, req, deadline, &retryable);
        if (rc == 0) {
            *resp = &c->resp;
            return 0;
        }
        bool again = retryable && c->reused && attempt == 0 && may_retry;
        discard(c);
        if (!again) {
            return rc;
        }
    }
}

/* ---- the client and its reaper ------------------------------------------------------------ */

/* Closes connections idle past the timeout. Returns when the next one
 * expires, or -1 if none is idle. Each connection is unlinked before it is
 * closed, since closing parks and others may use the pool meanwhile. */
static int64_t reap(struct cn_http_client *cl)
{
restart:;
    int64_t next = -1;
    for (struct pool *pl = cl->pools; pl; pl = pl->next) {
        for (struct cn_http_client_conn **pp = &pl->idle; *pp; pp = &(*pp)->next) {
            struct cn_http_client_conn *c = *pp;
            int64_t expiry = c->idle_since + cl->o.idle_timeout_ms;
            if (expiry <= cn_now()) {
                *pp = c->next;
                discard(c);
                goto restart; /* the lists may have changed while closing */
            }
            next = next < 0 || expiry < next ? expiry : next;
        }
    }
    return next;
}

/* Runs until cancelled by cn_http_client_close, then tells it so. */
static int reaper(void *arg)
{
    struct cn_http_client *cl = arg;
    for (;;) {
        int64_t next = reap(cl);
        int rc = next < 0 ? cn_event_wait(&cl->kick, -1) : cn_sleep_until(next);
        cn_event_reset(&cl->kick);
        if (rc == -ECANCELED) {
            break;
        }
    }
    cl->reaper_done = true;
    if (cl->closer) {
        cn__wake(cl->closer, 0);
    }
    return 0;
}

int cn_http_client_new(struct cn_http_client **out, const struct cn_http_client_opts *opts)
{
    struct cn_http_client *cl = calloc(1, sizeof *cl);
    if (!cl) {
        return -ENOMEM;
    }
    if (opts) {
        cl->o = *opts;
    }
    if (cl->o.max_conns_per_host == 0) {
        cl->o.max_conns_per_host = DEF_MAX_CONNS;
    }
    if (cl->o.idle_timeout_ms <= 0) {
        cl->o.idle_timeout_ms = DEF_IDLE_MS;
    }
    cl->tls = cl->o.tls;
    struct cn_spawn_opts so = {.name = "http-reaper"};
    int rc = cn_spawn(&cl->reaper, reaper, cl, &so);
    if (rc < 0) {
        free(cl);
        return rc;
    }
    cn_detach(cl->reaper); /* it only ends once close cancels it */
    *out = cl;
    return 0;
}

void cn_http_client_close(struct cn_http_client *cl)
{
    if (!cl) {
        return;
    }
    /* Not cn_join: a cancelled closer must still wait for the reaper. */
    cn_cancel(cl->reaper);
    cl->closer = cn__current();
    while (!cl->reaper_done) {
        cn__park(-1, CN__PARK_NOCANCEL);
    }
    while (cl->pools) {
        struct pool *pl = cl->pools;
        while (pl->idle) {
            struct cn_http_client_conn *c = pl->idle;
            pl->idle = c->next;
            discard(c);
        }
        cl->pools = pl->next;
        free(pl);
    }
    if (cl->own_tls) {
        cn_tls_ctx_free(cl->tls);
    }
    free(cl);
}
