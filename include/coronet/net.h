/* SPDX-License-Identifier: MIT */
/*
 * coronet net: byte streams for coroutines. A connection is one coroutine
 * calling read/write that look blocking.
 *
 * One stream interface, implemented by TCP and by TLS over any stream (HTTP
 * and WebSocket run on any stream too). Every call takes an absolute
 * deadline on the loop clock (-1 none, 0 try once) and returns -ETIMEDOUT or
 * -ECANCELED like every blocking call of the runtime. Streams belong to the
 * loop thread that made them, and one coroutine at a time may read while
 * one coroutine at a time writes (concurrent writers are served in order).
 */
#ifndef CORONET_NET_H
#define CORONET_NET_H

#include "coronet/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the stream interface ------------------------------------------------- */

struct cn_stream;

/* An implementation of the stream interface. Users may implement it too:
 * embed struct cn_stream first in the object and point vt at a table. */
struct cn_stream_vt {
    ssize_t (*read)(struct cn_stream *s, void *buf, size_t n, int64_t deadline);
    int (*writev)(struct cn_stream *s, const uv_buf_t *bufs, size_t nbufs, int64_t deadline);
    int (*shutdown)(struct cn_stream *s, int64_t deadline);
    void (*close)(struct cn_stream *s);
};

struct cn_stream {
    const struct cn_stream_vt *vt;
};

/* Reads what is available, up to n bytes (n > 0), waiting until at least one
 * byte is. Returns the count, 0 once the peer has closed its side (end of
 * stream; later reads return 0 again).
 * Errors: -ETIMEDOUT, -ECANCELED (nothing was consumed), -ECONNRESET,
 * CN_EBROKEN (the stream was torn down by an interrupted write), other
 * negative errno from the socket, and for TLS the CN_ETLS* codes. */
CN_EXTERN ssize_t cn_stream_read(struct cn_stream *s, void *buf, size_t n, int64_t deadline);

/* Reads exactly n bytes. Returns n, or CN_EOF if the stream ended first (the
 * bytes before the end are in buf but the count is lost: a truncated message
 * is an error). Errors as cn_stream_read; after -ETIMEDOUT or -ECANCELED part
 * of buf may have been consumed, so treat the stream as unusable. */
CN_EXTERN ssize_t cn_stream_read_exact(struct cn_stream *s, void *buf, size_t n, int64_t deadline);

/* Writes all n bytes. Returns 0 once every byte is handed to the kernel (or,
 * for TLS, encrypted and handed to the stream below), so buf is reusable when
 * it returns. Errors: -EPIPE, -ECONNRESET, -ETIMEDOUT, -ECANCELED. A write
 * interrupted by its deadline or a cancel after some bytes left may have sent
 * a prefix: the stream is then torn down and every later call fails with
 * CN_EBROKEN. */
CN_EXTERN int cn_stream_write(struct cn_stream *s, const void *buf, size_t n, int64_t deadline);

/* Writes the buffers in order as one unit, in one syscall when they fit the
 * socket buffer. Same results as cn_stream_write. */
CN_EXTERN int cn_stream_writev(struct cn_stream *s, const uv_buf_t *bufs, size_t nbufs,
                               int64_t deadline);

/* Half-close: the peer reads end of stream; this side can still read.
 * Returns 0 once pending writes are flushed. Errors as cn_stream_write. */
CN_EXTERN int cn_stream_shutdown(struct cn_stream *s, int64_t deadline);

/* Closes the stream and frees it; returns when every resource is released.
 * Never fails and cannot be cancelled. Accepts NULL. No other coroutine may
 * be parked on the stream (cancel it and let it return first). A TLS stream
 * sends its close_notify (bounded by a short internal deadline) and closes
 * the stream it owns. */
CN_EXTERN void cn_stream_close(struct cn_stream *s);

/* ---- TCP ----------------------------------------------------------------------- */

struct cn_tcp_opts {
    bool no_delay_off;  /* TCP_NODELAY is on unless this is set */
    int keepalive_secs; /* > 0 enables SO_KEEPALIVE with this idle time */
    bool reuseport;     /* listen: SO_REUSEPORT, for one listener per loop/core */
    int backlog;        /* listen: 0 = 511 */
};

/* Connects to host:port. host is an IPv4/IPv6 literal or a name resolved
 * with uv_getaddrinfo; every address is tried in order until one connects,
 * all within the one deadline. opts may be NULL.
 * Errors: -ECONNREFUSED, -ENETUNREACH, -EHOSTUNREACH, -ETIMEDOUT,
 * -ECANCELED, UV_EAI_* (name resolution), -ENOMEM. */
CN_EXTERN int cn_tcp_connect(struct cn_stream **out, const char *host, int port,
                             const struct cn_tcp_opts *opts, int64_t deadline);

struct cn_tcp_listener;

/* Listens on host:port (port 0 picks a free port; cn_tcp_listener_port
 * tells which). host NULL means "::" (all addresses, IPv4 and IPv6).
 * Errors: -EADDRINUSE, -EADDRNOTAVAIL, -EACCES, -EINVAL, -ENOMEM. */
CN_EXTERN int cn_tcp_listen(struct cn_tcp_listener **out, const char *host, int port,
                            const struct cn_tcp_opts *opts);

/* The bound port. */
CN_EXTERN int cn_tcp_listener_port(const struct cn_tcp_listener *l);

/* Waits for the next connection. Errors: -ETIMEDOUT, -ECANCELED, -EMFILE,
 * -ENFILE (out of descriptors; the listener stays usable). */
CN_EXTERN int cn_tcp_accept(struct cn_tcp_listener *l, struct cn_stream **out, int64_t deadline);

/* Stops listening and frees l; a coroutine parked in cn_tcp_accept on it
 * gets CN_ECLOSED. Accepts NULL. */
CN_EXTERN void cn_tcp_listener_close(struct cn_tcp_listener *l);

/* The address of the peer / of this end of a TCP stream (not through TLS).
 * Errors: -EINVAL (not a TCP stream), -ENOTCONN. */
CN_EXTERN int cn_tcp_peername(struct cn_stream *s, struct sockaddr_storage *addr);
CN_EXTERN int cn_tcp_sockname(struct cn_stream *s, struct sockaddr_storage *addr);

/* Formats an address as "HOST:PORT" ("[::1]:80" for IPv6). */
CN_EXTERN int cn_addr_format(const struct sockaddr_storage *addr, char *buf, size_t size);

/* ---- TLS (OpenSSL 3) ------------------------------------------------------------ */

struct cn_tls_ctx;

struct cn_tls_client_opts {
    const char *ca_file;     /* PEM bundle; NULL = the system store */
    const char *const *alpn; /* protocols to offer, e.g. {"http/1.1"}; NULL = none */
    size_t nalpn;
    /* Turns off certificate and host name verification. Only for tests
     * against throwaway peers: the connection is then open to anyone in
     * the middle. */
    bool dangerously_skip_verification;
};

struct cn_tls_server_opts {
    const char *cert_file; /* PEM certificate chain */
    const char *key_file;  /* PEM private key */
    const char *cert_pem;  /* or both from memory (NUL-terminated PEM) */
    const char *key_pem;
    const char *const *alpn; /* protocols accepted, in server preference order */
    size_t nalpn;
};

/* Client and server contexts, shared by many connections of one loop. Each
 * stream holds a reference, so a context may be freed while streams made
 * from it are still open.
 * Errors: CN_ETLS (unreadable file, bad PEM, key not matching the
 * certificate; cn_tls_last_error has OpenSSL's reason), -EINVAL (missing
 * certificate or key, ALPN name empty or longer than 255 bytes), -ENOMEM. */
CN_EXTERN int cn_tls_client_ctx_new(struct cn_tls_ctx **out, const struct cn_tls_client_opts *o);
CN_EXTERN int cn_tls_server_ctx_new(struct cn_tls_ctx **out, const struct cn_tls_server_opts *o);
CN_EXTERN void cn_tls_ctx_free(struct cn_tls_ctx *ctx);

/* Runs a TLS client handshake over inner (takes ownership of inner in every
 * case: on failure it is closed). server_name is sent as SNI and verified
 * against the certificate unless verification is skipped.
 * Errors: CN_ETLS_UNTRUSTED, CN_ETLS_EXPIRED, CN_ETLS_HOSTNAME,
 * CN_ETLS_HANDSHAKE (also when the peer ends the stream mid-handshake),
 * -EINVAL (server_name NULL with verification on), the stream's own errors,
 * -ETIMEDOUT, -ECANCELED.
 *
 * On an established TLS stream, read returns 0 only after the peer's
 * close_notify; a stream that ends without one is a truncation and reads
 * return -ECONNRESET. A write interrupted after records were sealed tears the
 * stream down (CN_EBROKEN), as for TCP. */
CN_EXTERN int cn_tls_connect(struct cn_stream **out, struct cn_tls_ctx *ctx,
                             struct cn_stream *inner, const char *server_name, int64_t deadline);

/* Runs a TLS server handshake over inner (takes ownership as above).
 * Errors: CN_ETLS_HANDSHAKE, the stream's errors, -ETIMEDOUT, -ECANCELED. */
CN_EXTERN int cn_tls_accept(struct cn_stream **out, struct cn_tls_ctx *ctx, struct cn_stream *inner,
                            int64_t deadline);

/* The negotiated ALPN protocol of a TLS stream, or NULL. Valid until close. */
CN_EXTERN const char *cn_tls_alpn(struct cn_stream *s);

/* The OpenSSL reason of the last CN_ETLS* failure on this thread (static
 * storage, overwritten by the next failure), or "". */
CN_EXTERN const char *cn_tls_last_error(void);

#ifdef __cplusplus
}
#endif
#endif /* CORONET_NET_H */
