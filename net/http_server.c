/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 server side: one struct cn_http_server_conn per connection,
 * reading requests (keep-alive and pipelining: bytes past a request stay in
 * the parser's buffer for the next one) and writing responses, plus
 * cn_http_serve, an accept loop running one coroutine per connection.
 *
 * One exchange is: read_request, optionally read the body, one response.
 * A request the server cannot take gets its status (400, 408, 413, 431)
 * with "Connection: close" and ends the connection; so does anything that
 * leaves the framing in doubt (an error mid-body, a response cut short).
 * The response head is built in a per-connection buffer kept across
 * requests and leaves with the body in one cn_stream_writev: on the
 * keep-alive path nothing is allocated per request except a body buffer
 * that outgrows the previous one.
 */
#include "net/http_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    ERROR_SEND_MS = 1000,      /* bound on sending an error status */
    LINGER_MS = 500,           /* reading what the client still sends before closing */
    LINGER_BYTES = 256 * 1024, /* ... and at most this much */
    BODY_KEEP = 64 * 1024,     /* a larger body buffer is released after its request */
    DEF_IDLE_MS = 60 * 1000,
    DEF_HANDSHAKE_MS = 10 * 1000,
};

enum resp_state { RESP_NONE, RESP_STREAMING, RESP_DONE };

struct cn_http_server_conn {
    struct cn_stream *s; /* NULL once taken */
    struct cn__http_parser p;
    int64_t head_timeout_ms;
    struct cn_http_request req;
    struct cn__http_wbuf out; /* response heads */
    char *body;               /* read_body_all's buffer */
    size_t body_cap;
    enum resp_state resp;
    bool have_req;         /* a request was read and awaits its response */
    bool finished;         /* no further request on this connection */
    bool continue_pending; /* Expect: 100-continue not answered yet */
    bool head_method;      /* HEAD: responses carry no body */
    bool chunked_out;      /* the streamed response uses chunked framing */
};

static int64_t min_deadline(int64_t a, int64_t b)
{
    if (a < 0) {
        return b;
    }
    return b < 0 || a < b ? a : b;
}

/* ---- life ---------------------------------------------------------------------------- */

int cn_http_server_conn_new(struct cn_http_server_conn **out, struct cn_stream *s,
                            const struct cn_http_limits *limits)
{
    struct cn_http_server_conn *c = calloc(1, sizeof *c);
    if (!c) {
        return -ENOMEM;
    }
    if (cn__http_parser_init(&c->p, HTTP_REQUEST, limits) < 0) {
        free(c);
        return -ENOMEM;
    }
    c->s = s;
    c->head_timeout_ms = limits && limits->header_timeout_ms ? limits->header_timeout_ms
                                                             : CN__HTTP_DEF_HEAD_TIMEOUT_MS;
    *out = c;
    return 0;
}

void cn_http_server_conn_close(struct cn_http_server_conn *c)
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

/* ---- response heads -------------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Status";
    }
}

/* RFC 9110 §6.6.1: an origin server with a clock sends Date. Formatted once
 * per second per thread. */
static const char *date_now(void)
{
    static __thread char buf[40];
    static __thread time_t at;
    time_t now = time(NULL);
    if (now != at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        at = now;
    }
    return buf;
}

static void note_connection_header(struct cn_http_server_conn *c, const struct cn_http_header *h,
                                   size_t n)
{
    size_t len;
    const char *v = cn_http_header_find(h, n, "connection", &len);
    if (v && cn_http_token_has(v, len, "close")) {
        c->finished = true;
    }
}

/* framing: "" (none), or the Content-Length / Transfer-Encoding line. */
static int build_head(struct cn_http_server_conn *c, int status, const struct cn_http_header *h,
                      size_t n, const char *framing)
{
    struct cn__http_wbuf *b = &c->out;
    b->len = 0;
    b->oom = false;
    note_connection_header(c, h, n);
    if (c->continue_pending) {
        c->finished = true; /* RFC 9110 §10.1.1: the body may or may not follow: close */
    }
    cn__http_wbuf_fmt(b, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, reason(status), date_now());
    if (cn__http_wbuf_headers(b, h, n) < 0) {
        return -EINVAL;
    }
    cn__http_wbuf_str(b, framing);
    if (status == 101) {
        c->finished = true; /* the connection leaves HTTP */
    } else if (c->finished) {
        cn__http_wbuf_str(b, "Connection: close\r\n");
    } else if (c->req.version_minor == 0) {
        cn__http_wbuf_str(b, "Connection: keep-alive\r\n"); /* RFC 7230 §A.1.2 */
    }
    cn__http_wbuf_add(b, "\r\n", 2);
    return b->oom ? -ENOMEM : 0;
}

static int write_head_and(struct cn_http_server_conn *c, const void *body, size_t len,
                          int64_t deadline)
{
    uv_buf_t v[2] = {uv_buf_init(c->out.p, (unsigned int)c->out.len),
                     uv_buf_init((char *)body, (unsigned int)len)};
    int rc = cn_stream_writev(c->s, v, len > 0 ? 2 : 1, deadline);
    if (rc < 0) {
        c->finished = true;
    }
    return rc;
}

/* Sends an error status on a request we refuse, half-closes, and reads what
 * the client is still sending for a moment: closing with unread input would
 * reset the connection and could destroy the status before it is read. */
static void send_error(struct cn_http_server_conn *c, int status)
{
    c->finished = true;
    c->resp = RESP_DONE;
    int64_t deadline = cn_now() + ERROR_SEND_MS;
    struct cn__http_wbuf *b = &c->out;
    b->len = 0;
    b->oom = false;
    cn__http_wbuf_fmt(
        b, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status,
        reason(status), date_now());
    if (b->oom || cn_stream_write(c->s, b->p, b->len, deadline) < 0 ||
        cn_stream_shutdown(c->s, deadline) < 0) {
        return;
    }
    char scratch[4096];
    size_t drained = 0;
    deadline = cn_now() + LINGER_MS;
    ssize_t n;
    while (drained < LINGER_BYTES &&
           (n = cn_stream_read(c->s, scratch, sizeof scratch, deadline)) > 0) {
        drained += (size_t)n;
    }
}

static int status_for(int err)
{
    switch (err) {
    case CN_EHTTP_PARSE:
        return 400;
    case CN_EHTTP_HEADER_TOO_LARGE:
        return 431;
    case CN_EHTTP_BODY_TOO_LARGE:
        return 413;
    case -ETIMEDOUT:
        return 408;
    default:
        return 0;
    }
}

/* ---- requests ----------------------------------------------------------------------- */

static void fill_request(struct cn_http_server_conn *c)
{
    const struct cn__http_msg *m = &c->p.msg;
    struct cn_http_request *r = &c->req;
    memset(r, 0, sizeof *r);
    r->method = llhttp_method_name((llhttp_method_t)m->method);
    r->target = m->text ? m->text : "";
    r->target_len = m->text_len;
    const char *q = memchr(r->target, '?', r->target_len);
    r->path = r->target;
    r->path_len = q ? (size_t)(q - r->target) : r->target_len;
    if (q) {
        r->query = q + 1;
        r->query_len = r->target_len - r->path_len - 1;
    }
    r->version_minor = m->version_minor;
    r->headers = m->headers;
    r->nheaders = m->nheaders;
    r->content_length = m->chunked ? -1 : m->content_length;
    r->chunked = m->chunked;
    r->keep_alive = m->keep_alive;
    r->upgrade = m->upgrade;
    size_t len;
    const char *v = cn_http_header_find(m->headers, m->nheaders, "expect", &len);
    r->expect_continue =
        m->version_minor >= 1 && m->has_body && v && cn_http_token_has(v, len, "100-continue");
}

/* RFC 9112 §3.2: a 1.1 request has exactly one Host; 1.0 at most one. */
static bool host_ok(const struct cn__http_msg *m)
{
    int hosts = 0;
    for (size_t i = 0; i < m->nheaders; i++) {
        hosts += cn__http_name_eq(m->headers[i].name, m->headers[i].name_len, "host");
    }
    return hosts == 1 || (hosts == 0 && m->version_minor == 0);
}

static int check_request(struct cn_http_server_conn *c)
{
    const struct cn__http_msg *m = &c->p.msg;
    if (m->version_major != 1 || !host_ok(m)) {
        return CN_EHTTP_PARSE;
    }
    if (m->content_length > (int64_t)c->p.max_body) {
        return CN_EHTTP_BODY_TOO_LARGE;
    }
    return 0;
}

/* Ends the previous exchange: drains an unread body so the next request
 * starts at its first byte. */
static void finish_exchange(struct cn_http_server_conn *c, int64_t deadline)
{
    if (c->p.phase == CN__HTTP_BODY) {
        if (c->continue_pending) {
            c->finished = true; /* the client waits for a 100 that never came */
            return;
        }
        char scratch[2048];
        deadline = min_deadline(deadline, cn_now() + c->head_timeout_ms);
        ssize_t n;
        while ((n = cn__http_read_body(&c->p, c->s, scratch, sizeof scratch, deadline)) > 0) {
        }
        if (n < 0) {
            c->finished = true;
        }
    }
    if (c->body_cap > BODY_KEEP) {
        free(c->body);
        c->body = NULL;
        c->body_cap = 0;
    }
    c->have_req = false;
    c->continue_pending = false;
    c->resp = RESP_NONE;
}

int cn_http_server_read_request(struct cn_http_server_conn *c, const struct cn_http_request **req,
                                int64_t deadline)
{
    if (!c->s) {
        return CN_ECLOSED;
    }
    if (c->have_req && c->resp != RESP_DONE) {
        return -EINVAL;
    }
    if (c->have_req) {
        finish_exchange(c, deadline);
    }
    if (c->finished) {
        return CN_EOF;
    }
    int rc = cn__http_read_head(&c->p, c->s, deadline, c->head_timeout_ms);
    if (rc == 0) {
        rc = check_request(c);
    }
    if (rc < 0) {
        int status = status_for(rc);
        if (status == 408 && !cn__http_head_started(&c->p)) {
            status = 0; /* idle, not slow: just close */
        }
        if (status) {
            send_error(c, status);
        }
        c->finished = true;
        return rc;
    }
    fill_request(c);
    c->have_req = true;
    c->finished = !c->req.keep_alive;
    c->continue_pending = c->req.expect_continue;
    c->head_method = c->p.msg.method == HTTP_HEAD;
    *req = &c->req;
    return 0;
}

/* ---- request bodies ------------------------------------------------------------------ */

static int answer_continue(struct cn_http_server_conn *c, int64_t deadline)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    c->continue_pending = false;
    if (c->resp != RESP_NONE) {
        return 0;
    }
    int rc = cn_stream_write(c->s, msg, sizeof msg - 1, deadline);
    if (rc < 0) {
        c->finished = true;
    }
    return rc;
}

static void body_failed(struct cn_http_server_conn *c, int err)
{
    int status = status_for(err);
    if (c->resp == RESP_NONE && status && err != -ETIMEDOUT) {
        send_error(c, status);
    }
    c->finished = true;
}

static int body_guard(struct cn_http_server_conn *c, int64_t deadline)
{
    if (!c->s || !c->have_req) {
        return !c->s ? CN_ECLOSED : -EINVAL;
    }
    return c->continue_pending ? answer_continue(c, deadline) : 0;
}

ssize_t cn_http_server_read_body(struct cn_http_server_conn *c, void *buf, size_t n,
                                 int64_t deadline)
{
    int rc = body_guard(c, deadline);
    if (rc < 0 || n == 0) {
        return rc < 0 ? rc : -EINVAL;
    }
    ssize_t k = cn__http_read_body(&c->p, c->s, buf, n, deadline);
    if (k < 0) {
        body_failed(c, (int)k);
    }
    return k;
}

int cn_http_server_read_body_all(struct cn_http_server_conn *c, const char **body, size_t *len,
                                 int64_t deadline)
{
    int rc = body_guard(c, deadline);
    if (rc < 0) {
        return rc;
    }
    rc = cn__http_read_body_all(&c->p, c->s, &c->body, &c->body_cap, len, deadline);
    if (rc < 0) {
        body_failed(c, rc);
        return rc;
    }
    *body = c->body ? c->body : "";
    return 0;
}

/* ---- responses ------------------------------------------------------------------------ */

static int respond_guard(struct cn_http_server_conn *c, int status)
{
    if (!c->s) {
        return CN_ECLOSED;
    }
    if (!c->have_req || c->resp != RESP_NONE || status < 101 || status > 999) {
        return -EINVAL; /* interim 1xx other than 101 only through Expect */
    }
    return (status < 200 && status != 101) ? -EINVAL : 0;
}

int cn_http_server_respond(struct cn_http_server_conn *c, int status,
                           const struct cn_http_header *headers, size_t nheaders, const void *body,
                           size_t len, int64_t deadline)
{
    int rc = respond_guard(c, status);
    if (rc < 0) {
        return rc;
    }
    bool bodyless = status < 200 || status == 204 || status == 304;
    char framing[48] = "";
    if (!bodyless) {
        snprintf(framing, sizeof framing, "Content-Length: %zu\r\n", len);
    }
    rc = build_head(c, status, headers, nheaders, framing);
    if (rc < 0) {
        return rc;
    }
    c->resp = RESP_DONE;
    return write_head_and(c, body, bodyless || c->head_method ? 0 : len, deadline);
}

int cn_http_server_start_chunked(struct cn_http_server_conn *c, int status,
                                 const struct cn_http_header *headers, size_t nheaders,
                                 int64_t deadline)
{
    int rc = respond_guard(c, status);
    if (rc < 0 || status < 200 || status == 204 || status == 304) {
        return rc < 0 ? rc : -EINVAL;
    }
    c->chunked_out = c->req.version_minor >= 1;
    if (!c->chunked_out) {
        c->finished = true; /* HTTP/1.0: the end of the connection ends the body */
    }
    rc = build_head(c, status, headers, nheaders,
                    c->chunked_out ? "Transfer-Encoding: chunked\r\n" : "");
    if (rc < 0) {
        return rc;
    }
    c->resp = RESP_STREAMING;
    return write_head_and(c, NULL, 0, deadline);
}

int cn_http_server_write_chunk(struct cn_http_server_conn *c, const void *buf, size_t n,
                               int64_t deadline)
{
    if (!c->s || c->resp != RESP_STREAMING) {
        return -EINVAL;
    }
    if (n == 0 || c->head_method) {
        return 0;
    }
    if (n > UINT32_MAX) {
        return -EINVAL;
    }
    char size[24];
    int k = snprintf(size, sizeof size, "%zx\r\n", n);
    uv_buf_t v[3] = {uv_buf_init(size, (unsigned int)k), uv_buf_init((char *)buf, (unsigned int)n),
                     uv_buf_init("\r\n", 2)};
    int rc = c->chunked_out ? cn_stream_writev(c->s, v, 3, deadline)
                            : cn_stream_writev(c->s, v + 1, 1, deadline);
    if (rc < 0) {
        c->finished = true;
    }
    return rc;
}

int cn_http_server_end_chunked(struct cn_http_server_conn *c, int64_t deadline)
{
    if (!c->s || c->resp != RESP_STREAMING) {
        return -EINVAL;
    }
    c->resp = RESP_DONE;
    if (!c->chunked_out || c->head_method) {
        return 0;
    }
    int rc = cn_stream_write(c->s, "0\r\n\r\n", 5, deadline);
    if (rc < 0) {
        c->finished = true;
    }
    return rc;
}

bool cn_http_server_responded(const struct cn_http_server_conn *c)
{
    return c->resp == RESP_DONE;
}

int cn_http_server_conn_take_stream(struct cn_http_server_conn *c, struct cn_stream **out)
{
    int rc = cn__http_take_stream(out, &c->s, &c->p);
    if (rc == 0) {
        c->finished = true;
    }
    return rc;
}

/* ---- cn_http_serve ----------------------------------------------------------------------- */

struct serve {
    cn_http_handler_fn fn;
    void *arg;
    struct cn_http_limits limits;
    struct cn_tls_ctx *tls;
    int64_t idle_ms;
    int64_t handshake_ms;
};

struct serve_conn_arg {
    const struct serve *sv;
    struct cn_stream *s;
};

/* Runs the exchanges of one connection until it ends. */
static void serve_requests(const struct serve *sv, struct cn_http_server_conn *c)
{
    for (;;) {
        const struct cn_http_request *req;
        if (cn_http_server_read_request(c, &req, cn_now() + sv->idle_ms) < 0) {
            return;
        }
        int rc = sv->fn(c, req, sv->arg);
        if (!c->s) {
            return; /* the handler took the stream */
        }
        if (c->resp == RESP_NONE) {
            c->finished = true;
            cn_http_server_respond(c, 500, NULL, 0, NULL, 0, cn_now() + ERROR_SEND_MS);
        }
        if (rc < 0 || c->resp != RESP_DONE) {
            return;
        }
    }
}

static int serve_conn(void *arg)
{
    struct serve_conn_arg a = *(struct serve_conn_arg *)arg;
    free(arg);
    struct cn_stream *s = a.s;
    if (a.sv->tls && cn_tls_accept(&s, a.sv->tls, a.s, cn_now() + a.sv->handshake_ms) < 0) {
        return 0; /* the handshake failed; cn_tls_accept closed the stream */
    }
    struct cn_http_server_conn *c;
    if (cn_http_server_conn_new(&c, s, &a.sv->limits) < 0) {
        cn_stream_close(s);
        return 0;
    }
    serve_requests(a.sv, c);
    cn_http_server_conn_close(c);
    return 0;
}

static int spawn_conn(struct cn_group *g, const struct serve *sv, struct cn_stream *s)
{
    struct serve_conn_arg *a = malloc(sizeof *a);
    if (!a) {
        cn_stream_close(s);
        return -ENOMEM;
    }
    a->sv = sv;
    a->s = s;
    struct cn_spawn_opts o = {.name = "http-conn"};
    int rc = cn_group_spawn(g, serve_conn, a, &o);
    if (rc < 0) {
        free(a);
        cn_stream_close(s);
    }
    return rc;
}

int cn_http_serve(struct cn_tcp_listener *l, cn_http_handler_fn fn, void *arg,
                  const struct cn_http_serve_opts *opts)
{
    struct serve sv = {.fn = fn, .arg = arg};
    if (opts) {
        sv.limits = opts->limits;
        sv.tls = opts->tls;
        sv.idle_ms = opts->idle_timeout_ms;
        sv.handshake_ms = opts->handshake_timeout_ms;
    }
    sv.idle_ms = sv.idle_ms > 0 ? sv.idle_ms : DEF_IDLE_MS;
    sv.handshake_ms = sv.handshake_ms > 0 ? sv.handshake_ms : DEF_HANDSHAKE_MS;
    struct cn_group *g;
    int rc = cn_group_new(&g);
    if (rc < 0) {
        return rc;
    }
    for (;;) {
        struct cn_stream *s;
        rc = cn_tcp_accept(l, &s, -1);
        if (rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM) {
            rc = cn_sleep(10); /* out of descriptors: let connections end */
        } else if (rc == 0) {
            spawn_conn(g, &sv, s); /* a failure drops this connection only */
        }
        if (rc < 0 && rc != -ECONNABORTED) {
            break;
        }
    }
    cn_group_close(g);
    return rc;
}
