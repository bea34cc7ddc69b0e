/* SPDX-License-Identifier: MIT */
/*
 * coronet HTTP/1.1 (part of the net layer): a server connection and a pooled
 * client, both over any struct cn_stream (TCP or TLS), parsed by llhttp.
 *
 * Memory. Each connection owns one buffer with a hard bound (the header
 * limit plus a small body window). The parser reads from it in place:
 * request targets, reason phrases, header names and values are views
 * (pointer + length, not NUL-terminated) into that buffer, valid until the
 * next request is read (server) or the response is freed (client). Nothing
 * is allocated per header; a collected body goes into a per-connection
 * buffer bounded by the body limit, and large bodies can be streamed.
 *
 * Time. Every blocking call takes an absolute deadline on the loop clock
 * (-1 none, 0 try once) and returns -ETIMEDOUT or -ECANCELED like the rest
 * of coronet. After one of those the connection is not reusable: close it
 * (the server side) or free the response (the client discards it).
 *
 * Threads: like every stream, these objects belong to their loop's thread.
 */
#ifndef CORONET_HTTP_H
#define CORONET_HTTP_H

#include "coronet/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- common types ----------------------------------------------------------------- */

/* One header field. Received headers are views into the connection buffer;
 * headers passed in are borrowed for the call. Values have no surrounding
 * whitespace. */
struct cn_http_header {
    const char *name;
    const char *value;
    size_t name_len;
    size_t value_len;
};

/* Initialises a header from two C strings (borrowed). */
CN_EXTERN struct cn_http_header cn_http_header_str(const char *name, const char *value);

/* Bounds of one connection. Zero fields take the default shown. */
struct cn_http_limits {
    size_t max_header_bytes;   /* request/status line + headers; 16 KiB */
    size_t max_headers;        /* header fields per message; 64 */
    size_t max_body_bytes;     /* a body, collected or streamed; 1 MiB */
    int64_t header_timeout_ms; /* server: from the first byte of a request to its end; 10 s */
};

/* The value of the first header named `name` (case-insensitive), with its
 * length in *len; NULL if there is none. */
CN_EXTERN const char *cn_http_header_find(const struct cn_http_header *h, size_t n,
                                          const char *name, size_t *len);

/* True if the comma-separated list `value` holds `token` (case-insensitive),
 * as in "Connection: keep-alive, Upgrade". */
CN_EXTERN bool cn_http_token_has(const char *value, size_t len, const char *token);

/* ---- server ------------------------------------------------------------------------ */

struct cn_http_server_conn;

/* A request read by cn_http_server_read_request; owned by the connection and
 * valid until the next request is read or the connection is closed. */
struct cn_http_request {
    const char *method; /* "GET", ... (static, NUL-terminated) */
    const char *target; /* request-target as sent, e.g. "/a/b?x=1" (view) */
    size_t target_len;
    const char *path; /* target up to '?' (view) */
    size_t path_len;
    const char *query; /* after '?', without it; NULL if none (view) */
    size_t query_len;
    int version_minor; /* HTTP/1.<minor> */
    const struct cn_http_header *headers;
    size_t nheaders;
    int64_t content_length; /* -1: none (or chunked) */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool keep_alive;        /* the client allows another request after this one */
    bool upgrade;           /* Upgrade + Connection: upgrade (or CONNECT) */
    bool expect_continue;   /* Expect: 100-continue, answered by the first body read */
};

/* Wraps a stream (takes ownership: cn_http_server_conn_close closes it).
 * limits may be NULL. Errors: -ENOMEM. */
CN_EXTERN int cn_http_server_conn_new(struct cn_http_server_conn **out, struct cn_stream *s,
                                      const struct cn_http_limits *limits);

/* Closes the stream (unless it was taken) and frees c. Accepts NULL. */
CN_EXTERN void cn_http_server_conn_close(struct cn_http_server_conn *c);

/* Reads the next request head. Bytes after it (a body, a pipelined request)
 * stay buffered. An unread body of the previous request is drained first.
 * `deadline` bounds the wait for the request; once its first byte arrived,
 * the head must also be complete within limits->header_timeout_ms.
 * On a bad request the right status is sent (bounded by a short internal
 * deadline) with "Connection: close", and the connection is finished: every
 * later call returns CN_EOF, so close it.
 * Errors: CN_EOF (the client closed between requests, or the previous
 * exchange ended the connection), CN_EHTTP_PARSE (sent 400),
 * CN_EHTTP_HEADER_TOO_LARGE (sent 431), CN_EHTTP_BODY_TOO_LARGE (declared
 * Content-Length over the limit; sent 413), CN_EHTTP_INCOMPLETE (the client
 * closed mid-head), -ETIMEDOUT (idle: nothing sent; mid-head: sent 408),
 * -ECANCELED, -EINVAL (the previous response was not finished), stream
 * errors. */
CN_EXTERN int cn_http_server_read_request(struct cn_http_server_conn *c,
                                          const struct cn_http_request **req, int64_t deadline);

/* Streams the request body: reads up to n bytes of it into buf. Returns the
 * count, 0 at the end of the body. The first call answers "Expect:
 * 100-continue" with a 100 response.
 * Errors: CN_EHTTP_BODY_TOO_LARGE (sent 413 if no response was started),
 * CN_EHTTP_PARSE (bad chunked encoding; sent 400), CN_EHTTP_INCOMPLETE,
 * -ETIMEDOUT, -ECANCELED, stream errors; after any of these the connection
 * is finished. */
CN_EXTERN ssize_t cn_http_server_read_body(struct cn_http_server_conn *c, void *buf, size_t n,
                                           int64_t deadline);

/* Reads the whole request body (up to max_body_bytes) into a buffer owned by
 * c, valid until the next request. *body is never NULL (may be "" with *len
 * 0). Errors as cn_http_server_read_body. */
CN_EXTERN int cn_http_server_read_body_all(struct cn_http_server_conn *c, const char **body,
                                           size_t *len, int64_t deadline);

/* Sends a whole response: status line, the given headers, Date,
 * Content-Length (not for 1xx, 204, 304) and "Connection: close" when this is
 * the last response, then the body: one cn_stream_writev. For HEAD requests
 * the body is not sent. headers must not contain Content-Length or
 * Transfer-Encoding; a "Connection: close" among them ends the connection
 * after this response. A 101 response leaves the connection ready for
 * cn_http_server_conn_take_stream.
 * Errors: -EINVAL (a response was already sent, or bad status), -ETIMEDOUT,
 * -ECANCELED, stream errors. */
CN_EXTERN int cn_http_server_respond(struct cn_http_server_conn *c, int status,
                                     const struct cn_http_header *headers, size_t nheaders,
                                     const void *body, size_t len, int64_t deadline);

/* Starts a streamed response: chunked for HTTP/1.1 clients, delimited by the
 * end of the connection for HTTP/1.0 ones. Follow with write_chunk calls and
 * one cn_http_server_end_chunked. Errors as cn_http_server_respond. */
CN_EXTERN int cn_http_server_start_chunked(struct cn_http_server_conn *c, int status,
                                           const struct cn_http_header *headers, size_t nheaders,
                                           int64_t deadline);

/* Sends n bytes of a streamed response (one writev: size line, data, CRLF);
 * n == 0 sends nothing. Errors: -EINVAL (no streamed response), -ETIMEDOUT,
 * -ECANCELED, stream errors. */
CN_EXTERN int cn_http_server_write_chunk(struct cn_http_server_conn *c, const void *buf, size_t n,
                                         int64_t deadline);

/* Ends a streamed response (the last chunk). Errors as write_chunk. */
CN_EXTERN int cn_http_server_end_chunked(struct cn_http_server_conn *c, int64_t deadline);

/* True once the current request has a complete response. */
CN_EXTERN bool cn_http_server_responded(const struct cn_http_server_conn *c);

/* Takes the stream back, typically after a 101 response: the returned stream
 * first serves the bytes already buffered past the request, then reads from
 * the underlying stream (if nothing is buffered it is the underlying stream
 * itself). The caller owns it; c keeps no stream and must still be closed.
 * Errors: -EINVAL (the request body is not fully read), CN_ECLOSED (already
 * taken), -ENOMEM. */
CN_EXTERN int cn_http_server_conn_take_stream(struct cn_http_server_conn *c,
                                              struct cn_stream **out);

/* A request handler for cn_http_serve. It answers with cn_http_server_respond
 * (or the chunked calls, or takes the stream). Returning < 0 closes the
 * connection; a handler that returns without a response gets a 500 sent for
 * it. */
typedef int (*cn_http_handler_fn)(struct cn_http_server_conn *c, const struct cn_http_request *req,
                                  void *arg);

struct cn_http_serve_opts {
    struct cn_http_limits limits;
    struct cn_tls_ctx *tls;       /* server context for https; NULL = plain (borrowed) */
    int64_t idle_timeout_ms;      /* keep-alive wait for the next request; 0 = 60 s */
    int64_t handshake_timeout_ms; /* TLS handshake; 0 = 10 s */
};

/* Accepts connections on l and runs one coroutine per connection, calling
 * fn for each request (keep-alive and pipelining included), until the
 * calling coroutine is cancelled; then cancels the connection coroutines,
 * waits for them and returns. opts may be NULL. Does not close l.
 * Errors: -ECANCELED (the normal end), CN_ECLOSED (l was closed), -ENOMEM. */
CN_EXTERN int cn_http_serve(struct cn_tcp_listener *l, cn_http_handler_fn fn, void *arg,
                            const struct cn_http_serve_opts *opts);

/* ---- URLs -------------------------------------------------------------------------- */

struct cn_http_url {
    bool tls;           /* https */
    char host[256];     /* NUL-terminated, without IPv6 brackets */
    int port;           /* explicit or 80 / 443 */
    const char *target; /* path and query, a view into the URL ("/" if empty) */
    size_t target_len;
};

/* Parses "http://host[:port][/path][?query][#fragment]" or https; IPv6
 * literals in brackets. The fragment is dropped. Errors: CN_EHTTP_URL
 * (another scheme, user info, a bad port, a host over 255 bytes). */
CN_EXTERN int cn_http_url_parse(const char *url, struct cn_http_url *out);

/* ---- client ------------------------------------------------------------------------ */

struct cn_http_client;
struct cn_http_client_conn;

struct cn_http_client_opts {
    size_t max_conns_per_host; /* open connections per (scheme, host, port); 0 = 8 */
    int64_t idle_timeout_ms;   /* pooled idle connections closed after; 0 = 30 s */
    struct cn_http_limits limits;
    struct cn_tls_ctx *tls; /* client context for https (borrowed); NULL = one with
                               verification on, made at first use */
    struct cn_tcp_opts tcp;
};

struct cn_http_client_request {
    const char *method;                   /* NULL = "GET" */
    const char *url;                      /* cn_http_client_request: absolute http(s) URL */
    const char *target;                   /* cn_http_client_conn_request: path and query ... */
    const char *host;                     /* ... and the Host header value */
    const struct cn_http_header *headers; /* extra headers; no Host, Content-Length */
    size_t nheaders;
    const void *body; /* sent with Content-Length (also 0 for POST, PUT, PATCH) */
    size_t body_len;
    bool stream_body; /* return after the head; read with cn_http_response_read_body */
    /* Allows the one transparent retry on a fresh connection when a pooled
     * connection turns out closed by the server, also for a method that is
     * not idempotent (GET, HEAD, PUT, DELETE, OPTIONS, TRACE always may). */
    bool retry_unsafe;
};

/* A response; owned by its connection, valid until cn_http_response_free. */
struct cn_http_response {
    int status;
    int version_minor;
    const char *reason; /* view */
    size_t reason_len;
    const struct cn_http_header *headers;
    size_t nheaders;
    const char *body; /* the whole body (never NULL) unless stream_body was set */
    size_t body_len;
    int64_t content_length; /* -1: not declared */
    bool keep_alive;
};

/* A client with a connection pool. Must be made, used and closed from
 * coroutines of one loop: a reaper coroutine closes idle connections.
 * opts may be NULL. Errors: -ENOMEM, CN_ENOSTACK, CN_ENOTCORO. */
CN_EXTERN int cn_http_client_new(struct cn_http_client **out,
                                 const struct cn_http_client_opts *opts);

/* Closes every pooled connection and frees c. No request may be in flight
 * and every response must be freed. Accepts NULL. */
CN_EXTERN void cn_http_client_close(struct cn_http_client *c);

/* Sends a request on a pooled connection to the URL's (scheme, host, port),
 * opening one if fewer than max_conns_per_host are open, else waiting for
 * one to come free, and reads the response (and its body, up to
 * max_body_bytes, unless stream_body). Redirects are returned as they are.
 * A reused connection that the server had closed (end of stream or reset
 * before any response byte) is replaced once, transparently, for idempotent
 * methods or with retry_unsafe. The deadline bounds everything: the wait for
 * a connection, connect, TLS, the request and the response.
 * Errors: CN_EHTTP_URL, CN_EHTTP_PARSE, CN_EHTTP_HEADER_TOO_LARGE,
 * CN_EHTTP_BODY_TOO_LARGE, CN_EHTTP_INCOMPLETE, CN_EOF (closed before any
 * response), connect and TLS errors, -ETIMEDOUT, -ECANCELED, stream errors.
 * The connection is discarded after any error. */
CN_EXTERN int cn_http_client_request(struct cn_http_client *c,
                                     const struct cn_http_client_request *req,
                                     struct cn_http_response **resp, int64_t deadline);

/* Streams the body of a stream_body response. Returns the count, 0 at its
 * end. Errors: CN_EHTTP_BODY_TOO_LARGE, CN_EHTTP_PARSE, CN_EHTTP_INCOMPLETE,
 * -ETIMEDOUT, -ECANCELED, stream errors. */
CN_EXTERN ssize_t cn_http_response_read_body(struct cn_http_response *r, void *buf, size_t n,
                                             int64_t deadline);

/* Ends a response: its connection goes back to the pool if the body was
 * read to the end and both sides keep it alive, else it is closed (which may
 * park briefly). Accepts NULL. */
CN_EXTERN void cn_http_response_free(struct cn_http_response *r);

/* One client connection over a caller-made stream (takes ownership), for
 * protocols that start with HTTP (the WebSocket handshake). limits may be
 * NULL. Errors: -ENOMEM. */
CN_EXTERN int cn_http_client_conn_new(struct cn_http_client_conn **out, struct cn_stream *s,
                                      const struct cn_http_limits *limits);

/* Sends req (its target and host; url is ignored) and reads the response,
 * which stays valid until cn_http_response_free or the next request.
 * Errors as cn_http_client_request, without the retry; -EINVAL if the
 * previous response is still held or the connection cannot be reused. */
CN_EXTERN int cn_http_client_conn_request(struct cn_http_client_conn *c,
                                          const struct cn_http_client_request *req,
                                          struct cn_http_response **resp, int64_t deadline);

/* Takes the stream back (after a 101): bytes buffered past the response are
 * served first. The response must have been freed or be bodiless.
 * Errors: CN_ECLOSED (already taken), -EINVAL (a body is unread), -ENOMEM. */
CN_EXTERN int cn_http_client_conn_take_stream(struct cn_http_client_conn *c,
                                              struct cn_stream **out);

/* Closes the stream (unless taken) and frees c. Accepts NULL. */
CN_EXTERN void cn_http_client_conn_close(struct cn_http_client_conn *c);

#ifdef __cplusplus
}
#endif
#endif /* CORONET_HTTP_H */
