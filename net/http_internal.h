/* SPDX-License-Identifier: MIT */
/*
 * HTTP internals shared by http_parse.c, http_server.c and http_client.c.
 *
 * struct cn__http_parser is the connection buffer plus llhttp. Bytes are
 * appended at `end` by the stream glue and parsed from `start`. A message
 * goes through three phases:
 *   HEAD  the head is parsed in place; at its start the leftover bytes are
 *         moved to the front of the buffer, and from then on the buffer is
 *         only appended to, so the views (target, header names and values)
 *         are plain pointers that stay valid until the next message starts.
 *   BODY  body bytes pass through the room after the head (or go straight
 *         into the caller's buffer) and are copied into a sink; llhttp keeps
 *         the chunked framing state itself, so nothing else is retained.
 *   DONE  the message is complete; bytes past it belong to the next one.
 * The buffer holds max_head + BODY_ROOM bytes, so a head that does not fit
 * is always over the limit.
 */
#ifndef CORONET_NET_HTTP_INTERNAL_H
#define CORONET_NET_HTTP_INTERNAL_H

#include <llhttp.h>

#include "coronet/http.h"

enum {
    CN__HTTP_DEF_MAX_HEAD = 16 * 1024,
    CN__HTTP_DEF_MAX_HEADERS = 64,
    CN__HTTP_DEF_MAX_BODY = 1024 * 1024,
    CN__HTTP_DEF_HEAD_TIMEOUT_MS = 10 * 1000,
    CN__HTTP_BODY_ROOM = 4096, /* body window after a head that fills the limit */
};

enum cn__http_phase { CN__HTTP_IDLE, CN__HTTP_HEAD, CN__HTTP_BODY, CN__HTTP_DONE };

/* The head of one message, filled when its headers are complete. */
struct cn__http_msg {
    int method; /* llhttp_method (requests) */
    int status; /* responses */
    int version_major;
    int version_minor;
    const char *text; /* request-target or reason phrase (view) */
    size_t text_len;
    struct cn_http_header *headers; /* parser's array */
    size_t nheaders;
    int64_t content_length; /* -1: not declared */
    bool chunked;
    bool keep_alive;
    bool upgrade;
    bool has_body;
};

struct cn__http_parser {
    llhttp_t ll;
    char *buf;
    size_t cap;   /* max_head + CN__HTTP_BODY_ROOM */
    size_t start; /* unparsed bytes are buf[start, end) */
    size_t end;
    size_t head_end; /* BODY: where the head ended; the body window starts there */
    size_t max_head;
    size_t max_headers;
    uint64_t max_body;
    uint64_t body_bytes; /* of the current message */
    size_t trailer_bytes;
    struct cn_http_header *hdrs; /* max_headers entries */
    enum cn__http_phase phase;
    bool field_open; /* a header name is being received */
    bool value_open; /* a header value is being received */
    bool head_done;  /* set by on_headers_complete */
    bool msg_done;   /* set by on_message_complete */
    bool skip_body;  /* responses to HEAD */
    char *sink;      /* body bytes go here during cn__http_parse_body */
    size_t sink_len;
    int err; /* a callback's CN_E* error behind HPE_USER */
    struct cn__http_msg msg;
};

/* Sets up a parser of llhttp type HTTP_REQUEST or HTTP_RESPONSE with the
 * given limits (NULL or zero fields: defaults). Errors: -ENOMEM. */
int cn__http_parser_init(struct cn__http_parser *p, int type, const struct cn_http_limits *l);
void cn__http_parser_free(struct cn__http_parser *p);

/* Starts the next message if the current one is DONE (or none began yet):
 * moves the leftover bytes to the front and resets the head. */
void cn__http_parser_next(struct cn__http_parser *p);

/* Where the stream glue may append bytes, and how many it appended. */
char *cn__http_space(struct cn__http_parser *p, size_t *len);
void cn__http_commit(struct cn__http_parser *p, size_t n);

/* Parses buffered bytes of the head. Returns 1 once the head is complete
 * (phase BODY, or DONE for a bodiless message), 0 if more bytes are needed.
 * Errors: CN_EHTTP_PARSE, CN_EHTTP_HEADER_TOO_LARGE. */
int cn__http_parse_head(struct cn__http_parser *p);

/* Parses buffered body bytes into dst (at most n are produced). Returns the
 * count (0 if only framing was consumed or nothing is buffered); the phase
 * becomes DONE at the end of the body.
 * Errors: CN_EHTTP_PARSE, CN_EHTTP_BODY_TOO_LARGE, CN_EHTTP_HEADER_TOO_LARGE
 * (trailers). */
ssize_t cn__http_parse_body(struct cn__http_parser *p, char *dst, size_t n);

/* Body bytes that may be read straight into a caller's buffer (no framing
 * to strip and nothing can follow them in the read): 0 if they must go
 * through the connection buffer. */
size_t cn__http_direct_room(const struct cn__http_parser *p);

/* Parses n bytes that were read straight into dst, in place. Returns the
 * body bytes, now at the start of dst. Errors as cn__http_parse_body. */
ssize_t cn__http_parse_inplace(struct cn__http_parser *p, char *dst, size_t n);

/* The stream ended. Returns 0 if that completed the message (a body
 * delimited by the end of the connection), else CN_EOF (no byte of the
 * message had arrived) or CN_EHTTP_INCOMPLETE. */
int cn__http_parse_eof(struct cn__http_parser *p);

/* True if any byte of the current message's head has arrived. */
bool cn__http_head_started(const struct cn__http_parser *p);

/* ---- stream glue (the I/O half of http_parse.c) ---------------------------------- */

/* Reads from s until the head is complete. idle_deadline bounds the wait for
 * the first byte; head_deadline (if not -1) the rest. Errors: as
 * cn__http_parse_head, CN_EOF, CN_EHTTP_INCOMPLETE, stream errors. */
int cn__http_read_head(struct cn__http_parser *p, struct cn_stream *s, int64_t idle_deadline,
                       int64_t head_timeout_ms);

/* Streams body bytes into buf; 0 at the end. Errors: as cn__http_parse_body,
 * CN_EHTTP_INCOMPLETE, stream errors. */
ssize_t cn__http_read_body(struct cn__http_parser *p, struct cn_stream *s, void *buf, size_t n,
                           int64_t deadline);

/* Reads the whole body into *body (grown with realloc, capacity *cap, kept
 * for reuse) up to p->max_body. */
int cn__http_read_body_all(struct cn__http_parser *p, struct cn_stream *s, char **body, size_t *cap,
                           size_t *len, int64_t deadline);

/* Hands over *inner as a stream that first serves a copy of p's unparsed
 * bytes (or *inner itself if nothing is buffered), and clears *inner: the
 * new stream owns it. Shared by both sides' take_stream after an upgrade.
 * Errors: CN_ECLOSED (*inner already gone), -EINVAL (a body is still being
 * read), -ENOMEM (*inner is left to the caller). */
int cn__http_take_stream(struct cn_stream **out, struct cn_stream **inner,
                         const struct cn__http_parser *p);

/* ---- writing heads ---------------------------------------------------------------- */

/* A growable output buffer for status/request lines and headers, kept by a
 * connection across messages. */
struct cn__http_wbuf {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
};

void cn__http_wbuf_add(struct cn__http_wbuf *b, const char *s, size_t n);
void cn__http_wbuf_str(struct cn__http_wbuf *b, const char *s);
void cn__http_wbuf_fmt(struct cn__http_wbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends "Name: value\r\n" for each header. Returns -EINVAL if a header
 * contains CR or LF (header injection). */
int cn__http_wbuf_headers(struct cn__http_wbuf *b, const struct cn_http_header *h, size_t n);
void cn__http_wbuf_free(struct cn__http_wbuf *b);

bool cn__http_name_eq(const char *a, size_t alen, const char *b);

#endif /* CORONET_NET_HTTP_INTERNAL_H */
