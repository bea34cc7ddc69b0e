/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 parsing: llhttp driven over a bounded connection buffer, for the
 * server (requests) and the client (responses). See http_internal.h for the
 * buffer's phases.
 *
 * llhttp is paused (HPE_PAUSED) at the end of every head and every message,
 * so pipelined bytes are never parsed early and a head can be handed to the
 * caller before its body is read. Span callbacks (target, header names and
 * values) may come in pieces when a token straddles two reads; the buffer
 * is only appended to during a head, so the pieces are adjacent and a view
 * is its first pointer plus the summed lengths. Body bytes are copied into
 * a sink; feeding llhttp at most as many input bytes as the sink holds
 * bounds the output, since framing only ever removes bytes.
 *
 * The first half of this file is pure (bytes in, views out; fuzz/http_parse.c
 * drives it). The second half is the small stream glue shared by the server
 * and the client, and the prefix stream used when a connection is upgraded.
 */
#include "net/http_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct cn__http_parser *P(llhttp_t *ll)
{
    return (struct cn__http_parser *)ll; /* ll is the first member */
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* ---- llhttp callbacks ------------------------------------------------------------ */

static int on_text(llhttp_t *ll, const char *at, size_t n)
{
    struct cn__http_parser *p = P(ll);
    if (!p->msg.text) {
        p->msg.text = at;
    }
    p->msg.text_len += n;
    return 0;
}

/* Trailer fields of a chunked body are not kept, only counted. */
static int trailer(struct cn__http_parser *p, size_t n)
{
    p->trailer_bytes += n;
    if (p->trailer_bytes > p->max_head) {
        p->err = CN_EHTTP_HEADER_TOO_LARGE;
        return HPE_USER;
    }
    return 0;
}

static int on_field(llhttp_t *ll, const char *at, size_t n)
{
    struct cn__http_parser *p = P(ll);
    if (p->phase != CN__HTTP_HEAD) {
        return trailer(p, n);
    }
    if (!p->field_open) {
        if (p->msg.nheaders == p->max_headers) {
            p->err = CN_EHTTP_HEADER_TOO_LARGE;
            return HPE_USER;
        }
        struct cn_http_header *h = &p->hdrs[p->msg.nheaders++];
        *h = (struct cn_http_header){at, "", 0, 0};
        p->field_open = true;
        p->value_open = false;
    }
    p->hdrs[p->msg.nheaders - 1].name_len += n;
    return 0;
}

static int on_field_complete(llhttp_t *ll)
{
    P(ll)->field_open = false;
    return 0;
}

static int on_value(llhttp_t *ll, const char *at, size_t n)
{
    struct cn__http_parser *p = P(ll);
    if (p->phase != CN__HTTP_HEAD) {
        return trailer(p, n);
    }
    struct cn_http_header *h = &p->hdrs[p->msg.nheaders - 1];
    if (!p->value_open) {
        h->value = at;
        p->value_open = true;
    }
    h->value_len += n;
    return 0;
}

static int on_value_complete(llhttp_t *ll)
{
    P(ll)->value_open = false;
    return 0;
}

static bool tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Names must be tokens (RFC 9110 §5.1; "Name : v" is a smuggling classic
 * that llhttp's loose mode lets through); values lose their surrounding
 * whitespace (RFC 9110 §5.5). */
static bool check_fields(struct cn__http_msg *m)
{
    for (size_t i = 0; i < m->nheaders; i++) {
        struct cn_http_header *h = &m->headers[i];
        for (size_t k = 0; k < h->name_len; k++) {
            if (!tchar((unsigned char)h->name[k])) {
                return false;
            }
        }
        while (h->value_len > 0 && (h->value[0] == ' ' || h->value[0] == '\t')) {
            h->value++;
            h->value_len--;
        }
        while (h->value_len > 0 &&
               (h->value[h->value_len - 1] == ' ' || h->value[h->value_len - 1] == '\t')) {
            h->value_len--;
        }
    }
    return true;
}

static int on_headers_complete(llhttp_t *ll)
{
    struct cn__http_parser *p = P(ll);
    if (p->phase != CN__HTTP_HEAD) {
        return 0; /* end of trailers */
    }
    struct cn__http_msg *m = &p->msg;
    m->method = ll->method;
    m->status = ll->status_code;
    m->version_major = ll->http_major;
    m->version_minor = ll->http_minor;
    m->chunked = (ll->flags & F_CHUNKED) != 0;
    m->content_length = (ll->flags & F_CONTENT_LENGTH) ? (int64_t)ll->content_length : -1;
    m->keep_alive = llhttp_should_keep_alive(ll) != 0;
    m->upgrade = ll->upgrade != 0;
    if (!check_fields(m)) {
        return -1; /* HPE_CB_HEADERS_COMPLETE: malformed */
    }
    if (p->skip_body) {
        ll->flags |= F_SKIPBODY; /* a response to HEAD: what llhttp's return 1 does */
    }
    p->head_done = true;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *ll, const char *at, size_t n)
{
    struct cn__http_parser *p = P(ll);
    if (p->body_bytes + n > p->max_body) {
        p->err = CN_EHTTP_BODY_TOO_LARGE;
        return HPE_USER;
    }
    p->body_bytes += n;
    if (p->sink) {
        memmove(p->sink + p->sink_len, at, n); /* in place: the sink may be the input */
        p->sink_len += n;
    }
    return 0;
}

static int on_message_complete(llhttp_t *ll)
{
    P(ll)->msg_done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_url = on_text,
    .on_status = on_text,
    .on_header_field = on_field,
    .on_header_field_complete = on_field_complete,
    .on_header_value = on_value,
    .on_header_value_complete = on_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- the parser -------------------------------------------------------------------- */

int cn__http_parser_init(struct cn__http_parser *p, int type, const struct cn_http_limits *l)
{
    memset(p, 0, sizeof *p);
    p->max_head = l && l->max_header_bytes ? l->max_header_bytes : CN__HTTP_DEF_MAX_HEAD;
    p->max_headers = l && l->max_headers ? l->max_headers : CN__HTTP_DEF_MAX_HEADERS;
    p->max_body = l && l->max_body_bytes ? l->max_body_bytes : CN__HTTP_DEF_MAX_BODY;
    p->cap = p->max_head + CN__HTTP_BODY_ROOM;
    p->buf = malloc(p->cap);
    p->hdrs = malloc(p->max_headers * sizeof *p->hdrs);
    if (!p->buf || !p->hdrs) {
        cn__http_parser_free(p);
        return -ENOMEM;
    }
    llhttp_init(&p->ll, (llhttp_type_t)type, &settings);
    p->phase = CN__HTTP_IDLE;
    p->msg.headers = p->hdrs;
    return 0;
}

void cn__http_parser_free(struct cn__http_parser *p)
{
    free(p->buf);
    free(p->hdrs);
    p->buf = NULL;
    p->hdrs = NULL;
}

void cn__http_parser_next(struct cn__http_parser *p)
{
    size_t left = p->end - p->start;
    if (p->start > 0 && left > 0) {
        memmove(p->buf, p->buf + p->start, left);
    }
    p->start = 0;
    p->end = left;
    p->head_end = 0;
    p->phase = CN__HTTP_HEAD;
    p->head_done = p->msg_done = false;
    p->field_open = p->value_open = false;
    p->body_bytes = 0;
    p->trailer_bytes = 0;
    p->err = 0;
    memset(&p->msg, 0, sizeof p->msg);
    p->msg.headers = p->hdrs;
    p->msg.content_length = -1;
}

char *cn__http_space(struct cn__http_parser *p, size_t *len)
{
    if (p->phase != CN__HTTP_HEAD && p->start == p->end) {
        p->start = p->end = p->head_end; /* everything read: reuse the body window */
    }
    *len = p->cap - p->end;
    return p->buf + p->end;
}

void cn__http_commit(struct cn__http_parser *p, size_t n)
{
    p->end += n;
}

/* Runs llhttp over data. *used is how much it consumed: all of it, or up to
 * a pause (end of head or message). */
static int exec(struct cn__http_parser *p, const char *data, size_t len, size_t *used)
{
    llhttp_errno_t e = llhttp_execute(&p->ll, data, len);
    *used = len;
    if (e == HPE_OK) {
        return 0;
    }
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        *used = (size_t)(llhttp_get_error_pos(&p->ll) - data);
        if (e == HPE_PAUSED) {
            llhttp_resume(&p->ll);
            return 0;
        }
        /* an Upgrade the server declined: the connection goes on as HTTP */
        llhttp_resume_after_upgrade(&p->ll);
        size_t more;
        int rc = exec(p, data + *used, len - *used, &more);
        *used += more;
        return rc;
    }
    if (e == HPE_USER && p->err) {
        return p->err;
    }
    return CN_EHTTP_PARSE;
}

int cn__http_parse_head(struct cn__http_parser *p)
{
    if (p->phase != CN__HTTP_HEAD) {
        cn__http_parser_next(p);
    }
    size_t used;
    int rc = exec(p, p->buf + p->start, p->end - p->start, &used);
    p->start += used;
    if (rc < 0) {
        return rc;
    }
    if (p->start > p->max_head) {
        return CN_EHTTP_HEADER_TOO_LARGE; /* the message began at 0 */
    }
    if (!p->head_done) {
        return 0;
    }
    p->phase = CN__HTTP_BODY;
    p->head_end = p->start;
    /* With no body, llhttp completes the message without input. */
    rc = exec(p, p->buf + p->start, 0, &used);
    if (rc < 0) {
        return rc;
    }
    p->msg.has_body = !p->msg_done;
    if (p->msg_done) {
        p->phase = CN__HTTP_DONE;
    }
    return 1;
}

ssize_t cn__http_parse_body(struct cn__http_parser *p, char *dst, size_t n)
{
    if (p->phase != CN__HTTP_BODY) {
        return 0;
    }
    size_t k = min_size(p->end - p->start, n);
    p->sink = dst;
    p->sink_len = 0;
    size_t used;
    int rc = exec(p, p->buf + p->start, k, &used);
    p->start += used;
    p->sink = NULL;
    if (rc < 0) {
        return rc;
    }
    if (p->msg_done) {
        p->phase = CN__HTTP_DONE;
    }
    return (ssize_t)p->sink_len;
}

size_t cn__http_direct_room(const struct cn__http_parser *p)
{
    if (p->phase != CN__HTTP_BODY || p->start != p->end || p->msg.chunked) {
        return 0;
    }
    if (p->msg.content_length >= 0) {
        return (size_t)p->ll.content_length; /* llhttp counts down what is left */
    }
    return SIZE_MAX; /* delimited by the end of the connection: nothing follows */
}

ssize_t cn__http_parse_inplace(struct cn__http_parser *p, char *dst, size_t n)
{
    p->sink = dst;
    p->sink_len = 0;
    size_t used;
    int rc = exec(p, dst, n, &used);
    p->sink = NULL;
    if (rc < 0) {
        return rc;
    }
    if (p->msg_done) {
        p->phase = CN__HTTP_DONE;
    }
    return (ssize_t)p->sink_len;
}

int cn__http_parse_eof(struct cn__http_parser *p)
{
    if (p->phase == CN__HTTP_DONE) {
        return 0;
    }
    if (p->phase != CN__HTTP_BODY) {
        return p->end == 0 ? CN_EOF : CN_EHTTP_INCOMPLETE;
    }
    llhttp_errno_t e = llhttp_finish(&p->ll);
    if ((e == HPE_OK || e == HPE_PAUSED) && p->msg_done) {
        p->phase = CN__HTTP_DONE;
        return 0;
    }
    return CN_EHTTP_INCOMPLETE;
}

bool cn__http_head_started(const struct cn__http_parser *p)
{
    return p->phase == CN__HTTP_HEAD && p->end > 0;
}

/* ---- header helpers ------------------------------------------------------------- */

bool cn__http_name_eq(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

struct cn_http_header cn_http_header_str(const char *name, const char *value)
{
    return (struct cn_http_header){name, value, strlen(name), strlen(value)};
}

const char *cn_http_header_find(const struct cn_http_header *h, size_t n, const char *name,
                                size_t *len)
{
    for (size_t i = 0; i < n; i++) {
        if (cn__http_name_eq(h[i].name, h[i].name_len, name)) {
            *len = h[i].value_len;
            return h[i].value;
        }
    }
    return NULL;
}

bool cn_http_token_has(const char *value, size_t len, const char *token)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ',')) {
            i++;
        }
        size_t s = i;
        while (i < len && value[i] != ',') {
            i++;
        }
        size_t e = i;
        while (e > s && (value[e - 1] == ' ' || value[e - 1] == '\t')) {
            e--;
        }
        if (e > s && cn__http_name_eq(value + s, e - s, token)) {
            return true;
        }
    }
    return false;
}

/* ---- writing heads ------------------------------------------------------------- */

static bool wbuf_reserve(struct cn__http_wbuf *b, size_t n)
{
    if (b->oom) {
        return false;
    }
    if (b->len + n <= b->cap) {
        return true;
    }
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + n) {
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void cn__http_wbuf_add(struct cn__http_wbuf *b, const char *s, size_t n)
{
    if (wbuf_reserve(b, n)) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

void cn__http_wbuf_str(struct cn__http_wbuf *b, const char *s)
{
    cn__http_wbuf_add(b, s, strlen(s));
}

void cn__http_wbuf_fmt(struct cn__http_wbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) {
        cn__http_wbuf_add(b, tmp, min_size((size_t)n, sizeof tmp - 1));
    }
}

static bool has_crlf(const char *s, size_t n)
{
    return memchr(s, '\r', n) || memchr(s, '\n', n);
}

int cn__http_wbuf_headers(struct cn__http_wbuf *b, const struct cn_http_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (h[i].name_len == 0 || has_crlf(h[i].name, h[i].name_len) ||
            memchr(h[i].name, ':', h[i].name_len) || has_crlf(h[i].value, h[i].value_len)) {
            return -EINVAL; /* RFC 7230 §3.2: no field may smuggle a line break */
        }
        cn__http_wbuf_add(b, h[i].name, h[i].name_len);
        cn__http_wbuf_add(b, ": ", 2);
        cn__http_wbuf_add(b, h[i].value, h[i].value_len);
        cn__http_wbuf_add(b, "\r\n", 2);
    }
    return 0;
}

void cn__http_wbuf_free(struct cn__http_wbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- stream glue ------------------------------------------------------------------ */

static int64_t min_deadline(int64_t a, int64_t b)
{
    if (a < 0) {
        return b;
    }
    return b < 0 || a < b ? a : b;
}

int cn__http_read_head(struct cn__http_parser *p, struct cn_stream *s, int64_t idle_deadline,
                       int64_t head_timeout_ms)
{
    int64_t head_deadline = -1;
    if (p->phase != CN__HTTP_HEAD) {
        cn__http_parser_next(p);
    }
    for (;;) {
        int rc = cn__http_parse_head(p);
        if (rc != 0) {
            return rc < 0 ? rc : 0;
        }
        if (head_deadline < 0 && p->end > 0 && head_timeout_ms > 0) {
            head_deadline = cn_now() + head_timeout_ms;
        }
        size_t room;
        char *at = cn__http_space(p, &room);
        if (room == 0) {
            return CN_EHTTP_HEADER_TOO_LARGE;
        }
        int64_t dl = p->end > 0 ? min_deadline(idle_deadline, head_deadline) : idle_deadline;
        ssize_t n = cn_stream_read(s, at, room, dl);
        if (n == 0) {
            return cn__http_parse_eof(p);
        }
        if (n < 0) {
            return (int)n;
        }
        cn__http_commit(p, (size_t)n);
    }
}

/* One read for the body: straight into buf when no framing can be in the
 * way, else into the body window. Returns body bytes produced (maybe 0),
 * or < 0; *eof is set when the stream ended. */
static ssize_t body_fill(struct cn__http_parser *p, struct cn_stream *s, char *buf, size_t n,
                         int64_t deadline, bool *eof)
{
    size_t direct = cn__http_direct_room(p);
    ssize_t got;
    if (direct > 0) {
        got = cn_stream_read(s, buf, min_size(n, direct), deadline);
        if (got > 0) {
            return cn__http_parse_inplace(p, buf, (size_t)got);
        }
    } else {
        size_t room;
        char *at = cn__http_space(p, &room);
        got = cn_stream_read(s, at, room, deadline);
        if (got > 0) {
            cn__http_commit(p, (size_t)got);
            return 0;
        }
    }
    *eof = got == 0;
    return got;
}

ssize_t cn__http_read_body(struct cn__http_parser *p, struct cn_stream *s, void *buf, size_t n,
                           int64_t deadline)
{
    while (p->phase == CN__HTTP_BODY) {
        ssize_t k;
        bool eof = false;
        if (p->start < p->end) {
            k = cn__http_parse_body(p, buf, n);
        } else {
            k = body_fill(p, s, buf, n, deadline, &eof);
        }
        if (eof) {
            int rc = cn__http_parse_eof(p);
            if (rc < 0) {
                return rc == CN_EOF ? CN_EHTTP_INCOMPLETE : rc;
            }
            continue;
        }
        if (k != 0) {
            return k;
        }
    }
    return 0;
}

static int body_grow(struct cn__http_parser *p, char **body, size_t *cap)
{
    size_t want = *cap ? *cap * 2 : 16 * 1024;
    if (p->msg.content_length >= 0 && want < (uint64_t)p->msg.content_length) {
        want = (size_t)p->msg.content_length;
    }
    if (want > p->max_body) {
        want = (size_t)p->max_body;
    }
    char *nb = realloc(*body, want + 1); /* + 1: room for a terminating NUL */
    if (!nb) {
        return -ENOMEM;
    }
    *body = nb;
    *cap = want;
    return 0;
}

int cn__http_read_body_all(struct cn__http_parser *p, struct cn_stream *s, char **body, size_t *cap,
                           size_t *len, int64_t deadline)
{
    *len = 0;
    if (p->msg.content_length > (int64_t)p->max_body) {
        return CN_EHTTP_BODY_TOO_LARGE;
    }
    for (;;) {
        if (*len == *cap && *cap < p->max_body) {
            int rc = body_grow(p, body, cap);
            if (rc < 0) {
                return rc;
            }
        }
        /* At the limit a scratch byte still lets the parser see the end or
         * reject the excess (on_body checks before copying). */
        char scratch[1];
        char *dst = *len < *cap ? *body + *len : scratch;
        ssize_t k = cn__http_read_body(p, s, dst, *len < *cap ? *cap - *len : 1, deadline);
        if (k < 0) {
            return (int)k;
        }
        if (k == 0) {
            break;
        }
        *len += (size_t)k;
    }
    if (*body) {
        (*body)[*len] = '\0';
    }
    return 0;
}

/* ---- the prefix stream ------------------------------------------------------------ */

struct prefix {
    struct cn_stream base;
    struct cn_stream *inner;
    size_t off;
    size_t len;
    char data[];
};

static ssize_t prefix_read(struct cn_stream *s, void *buf, size_t n, int64_t deadline)
{
    struct prefix *x = (struct prefix *)s;
    if (x->off < x->len) {
        size_t k = min_size(n, x->len - x->off);
        memcpy(buf, x->data + x->off, k);
        x->off += k;
        return (ssize_t)k;
    }
    return cn_stream_read(x->inner, buf, n, deadline);
}

static int prefix_writev(struct cn_stream *s, const uv_buf_t *bufs, size_t nbufs, int64_t deadline)
{
    return cn_stream_writev(((struct prefix *)s)->inner, bufs, nbufs, deadline);
}

static int prefix_shutdown(struct cn_stream *s, int64_t deadline)
{
    return cn_stream_shutdown(((struct prefix *)s)->inner, deadline);
}

static void prefix_close(struct cn_stream *s)
{
    struct prefix *x = (struct prefix *)s;
    cn_stream_close(x->inner);
    free(x);
}

static const struct cn_stream_vt prefix_vt = {
    .read = prefix_read,
    .writev = prefix_writev,
    .shutdown = prefix_shutdown,
    .close = prefix_close,
};

int cn__http_take_stream(struct cn_stream **out, struct cn_stream **inner,
                         const struct cn__http_parser *p)
{
    if (!*inner) {
        return CN_ECLOSED;
    }
    if (p->phase == CN__HTTP_BODY) {
        return -EINVAL;
    }
    size_t left = p->end - p->start;
    if (left == 0) {
        *out = *inner;
        *inner = NULL;
        return 0;
    }
    struct prefix *x = malloc(sizeof *x + left);
    if (!x) {
        return -ENOMEM;
    }
    x->base.vt = &prefix_vt;
    x->inner = *inner;
    *inner = NULL;
    x->off = 0;
    x->len = left;
    memcpy(x->data, p->buf + p->start, left);
    *out = &x->base;
    return 0;
}
