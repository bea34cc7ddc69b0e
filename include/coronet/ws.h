/* SPDX-License-Identifier: MIT */
/*
 * coronet ws: RFC 6455 WebSocket connections, client and server, over any
 * stream (TCP or TLS). One coroutine reads (cn_ws_recv) while any number of
 * coroutines send; control frames are handled inside the reader: a ping is
 * answered with a pong carrying the same payload, a pong refreshes the
 * liveness clock, a close is answered and ends the connection.
 *
 * Strictness. Every rule of RFC 6455 is enforced on what is received:
 * reserved bits and opcodes, masking direction, fragmentation sequence,
 * control frame length and fragmentation, close codes, UTF-8 of text
 * messages and close reasons (validated incrementally, so an invalid byte
 * fails the connection as soon as it arrives, even mid-fragment). A
 * violation sends a close with the matching status (1002 protocol, 1007
 * invalid data, 1009 too big), stops the connection and is returned to the
 * reader; every later call returns the same error, and cn_ws_close then only
 * drops the stream.
 *
 * Memory. A connection reads into one receive buffer (16 KiB, allocated at
 * the first receive) and returns single-frame messages as views into it
 * (no copy); a fragmented message is reassembled into a second buffer. Both
 * grow up to the frame / message limit and shrink back to their base size at
 * the next receive once they grew past 64 KiB. Nothing is allocated per
 * message once the buffers exist.
 *
 * Masks. A client masks every frame with a fresh 32-bit key drawn from
 * OpenSSL's CSPRNG (RAND_bytes), fetched 64 keys at a time into a
 * per-thread pool: unpredictable as RFC 6455 §5.3 requires, at one
 * RAND_bytes call per 64 frames. The payload is masked into a
 * per-connection scratch buffer (16 KiB, growing to at most 64 KiB; larger
 * frames go out in several writes under the connection's send lock), never
 * in the caller's buffer, so a client send costs one copy.
 *
 * Time. Every blocking call takes an absolute deadline on the loop clock
 * (-1 none, 0 try once) and returns -ETIMEDOUT or -ECANCELED like the rest of
 * coronet. A receive interrupted that way leaves the connection usable (the
 * partial frame stays buffered). A send interrupted after bytes left tears
 * the stream down (CN_EBROKEN, see cn_stream_write).
 *
 * Threads: a connection belongs to its loop's thread.
 */
#ifndef CORONET_WS_H
#define CORONET_WS_H

#include "coronet/http.h"

#ifdef __cplusplus
extern "C" {
#endif

/* This layer's error codes are the CN_EWS_* of runtime.h's CN_ERRNO_MAP:
 * protocol violations (-5200..-5211), CN_EWS_CLOSED, CN_EWS_HANDSHAKE,
 * CN_EWS_PING_TIMEOUT. */

/* Message types (the RFC 6455 opcodes). */
enum cn_ws_type {
    CN_WS_TEXT = 1,
    CN_WS_BINARY = 2,
};

/* Close status codes commonly sent (RFC 6455 §7.4.1). */
enum {
    CN_WS_CLOSE_NORMAL = 1000,
    CN_WS_CLOSE_GOING_AWAY = 1001,
    CN_WS_CLOSE_PROTOCOL = 1002,
    CN_WS_CLOSE_UNSUPPORTED = 1003,
    CN_WS_CLOSE_NO_STATUS = 1005, /* only reported: the peer's close had no payload */
    CN_WS_CLOSE_ABNORMAL = 1006,  /* only reported: no close frame was received */
    CN_WS_CLOSE_INVALID_DATA = 1007,
    CN_WS_CLOSE_POLICY = 1008,
    CN_WS_CLOSE_TOO_BIG = 1009,
    CN_WS_CLOSE_INTERNAL = 1011,
};

struct cn_ws;       /* a connection */
struct cn_ws_frame; /* an encoded frame for broadcast */

/* Limits and timers of one connection. Zero fields take the default shown. */
struct cn_ws_opts {
    size_t max_message_size;  /* whole message, all fragments; 16 MiB (over: close 1009) */
    size_t max_frame_size;    /* one frame's payload; max_message_size (over: close 1009) */
    int64_t ping_interval_ms; /* idle time before the reader sends a ping; 0 = never */
    int64_t pong_timeout_ms;  /* then the wait for any pong; 10 s (over: CN_EWS_PING_TIMEOUT) */
};

/* A message, or one chunk of a message from cn_ws_recv_chunk. data is a view
 * into the connection's buffers, valid until the next receive or close on
 * the connection (sends do not disturb it, so echoing it back is fine). */
struct cn_ws_msg {
    enum cn_ws_type type;
    const uint8_t *data; /* never NULL */
    size_t len;
    bool fin; /* cn_ws_recv: always true; cn_ws_recv_chunk: last chunk of the message */
};

/* ---- server ------------------------------------------------------------------------ */

/* Sees the upgrade request (path, query, headers) before it is accepted.
 * Returns 0 to accept, or an HTTP status in 400..599 to refuse (401 or 403
 * for failed authentication); the status is sent with an empty body. */
typedef int (*cn_ws_handshake_fn)(const struct cn_http_request *req, void *arg);

struct cn_ws_server_opts {
    struct cn_ws_opts ws;
    const char *const *subprotocols; /* supported, in preference order; NULL = none */
    size_t nsubprotocols;
    cn_ws_handshake_fn hook; /* NULL = accept every valid upgrade */
    void *hook_arg;
    const struct cn_http_header *headers; /* extra headers for the 101 response */
    size_t nheaders;
};

/* True if req asks for a WebSocket upgrade (GET with "Upgrade: websocket"),
 * for routing; cn_ws_accept does the full validation. */
CN_EXTERN bool cn_ws_is_upgrade(const struct cn_http_request *req);

/* Answers the upgrade request req read from c (RFC 6455 §4.2): checks GET,
 * HTTP/1.1, Host, "Upgrade: websocket", a "Connection" list holding
 * "upgrade", a valid Sec-WebSocket-Key and "Sec-WebSocket-Version: 13";
 * calls the hook; picks the first of opts->subprotocols that the client
 * offered; sends 101 with Sec-WebSocket-Accept and takes c's stream. c must
 * still be closed by its owner (cn_http_serve does it when the handler
 * returns). On refusal the status is sent with "Connection: close": 400 for
 * a malformed upgrade, 426 with "Sec-WebSocket-Version: 13" for another
 * version, or the hook's status. opts may be NULL.
 * Errors: CN_EWS_HANDSHAKE (refused; the status was sent), -ETIMEDOUT,
 * -ECANCELED, -ENOMEM, stream errors. */
CN_EXTERN int cn_ws_accept(struct cn_ws **out, struct cn_http_server_conn *c,
                           const struct cn_http_request *req, const struct cn_ws_server_opts *opts,
                           int64_t deadline);

/* ---- client ------------------------------------------------------------------------ */

struct cn_ws_client_opts {
    struct cn_ws_opts ws;
    /* For wss://: a client context (borrowed). NULL = one made for this
     * connection with verification on against the system store. The server
     * name sent as SNI and verified is the URL's host. */
    struct cn_tls_ctx *tls;
    const char *const *subprotocols; /* offered, in preference order; NULL = none */
    size_t nsubprotocols;
    const struct cn_http_header *headers; /* extra request headers (Authorization, Origin) */
    size_t nheaders;
    struct cn_tcp_opts tcp;
    int *http_status; /* if not NULL, receives the handshake response status (0 if none) */
};

/* Connects to a ws:// or wss:// URL: TCP (+ TLS), then the opening
 * handshake (RFC 6455 §4.1) with a fresh key, checking the 101 status,
 * "Upgrade: websocket", "Connection: upgrade", Sec-WebSocket-Accept, that a
 * chosen subprotocol was offered and that no extension was imposed. The
 * deadline bounds it all. opts may be NULL.
 * Errors: CN_EHTTP_URL (not ws/wss, bad URL), CN_EWS_HANDSHAKE (any other
 * status or a failed check), connect and TLS errors (CN_ETLS_*), HTTP
 * errors (CN_EHTTP_*), -ETIMEDOUT, -ECANCELED, -ENOMEM. */
CN_EXTERN int cn_ws_connect(struct cn_ws **out, const char *url,
                            const struct cn_ws_client_opts *opts, int64_t deadline);

/* Wraps a stream on which the opening handshake is already done (takes
 * ownership of s, closed by cn_ws_close). server says which side this is.
 * opts may be NULL. Errors: -ENOMEM (s is then closed). */
CN_EXTERN int cn_ws_wrap(struct cn_ws **out, struct cn_stream *s, bool server,
                         const struct cn_ws_opts *opts);

/* The negotiated subprotocol, or NULL. Valid until cn_ws_close. */
CN_EXTERN const char *cn_ws_subprotocol(const struct cn_ws *ws);

/* ---- messages ------------------------------------------------------------------------ */

/* Receives the next whole data message (fragments reassembled; control
 * frames in between handled as described at the top), at most
 * max_message_size bytes. Text is valid UTF-8. Only one coroutine may
 * receive at a time.
 * Errors: CN_EWS_CLOSED (the peer's close arrived and was answered; see
 * cn_ws_close_code; every later receive returns it too), a CN_EWS_* protocol
 * code (a close with its status was sent), CN_EWS_PING_TIMEOUT, CN_EOF (the
 * stream ended without a close frame), -EINVAL (a chunked receive is
 * midway), -ETIMEDOUT, -ECANCELED (the connection stays usable), -ENOMEM,
 * stream errors. */
CN_EXTERN int cn_ws_recv(struct cn_ws *ws, struct cn_ws_msg *msg, int64_t deadline);

/* Streaming receive for large messages: returns the next chunk of the
 * current message, whatever part of a frame is buffered (never more than
 * the receive buffer, 16 KiB by default), with msg->fin on the message's last
 * chunk (which may be empty). Same rules and errors as cn_ws_recv, with
 * max_message_size still applied to the total; -EINVAL if a whole-message
 * receive is midway. */
CN_EXTERN int cn_ws_recv_chunk(struct cn_ws *ws, struct cn_ws_msg *msg, int64_t deadline);

/* Sends one whole message as a single frame: the header and the payload
 * leave in one cn_stream_writev (server), or masked through the scratch
 * buffer (client). Text must be valid UTF-8 (not checked). Safe to call from
 * several coroutines: frames never interleave. A server may return 0 with a
 * small reply still held back for coalescing (see docs/architecture.md): it
 * leaves by the time the sender next waits, and a later failure to send it
 * fails the connection.
 * Errors: CN_EWS_CLOSED (a close was sent or received), -EINVAL (a
 * fragmented send is midway, or a bad type), the connection's sticky error,
 * -ETIMEDOUT, -ECANCELED, stream errors. */
CN_EXTERN int cn_ws_send(struct cn_ws *ws, enum cn_ws_type type, const void *data, size_t len,
                         int64_t deadline);
CN_EXTERN int cn_ws_send_text(struct cn_ws *ws, const char *text, size_t len, int64_t deadline);
CN_EXTERN int cn_ws_send_binary(struct cn_ws *ws, const void *data, size_t len, int64_t deadline);

/* Streaming send: the first call (type TEXT or BINARY) starts a message,
 * later calls continue it (type is ignored), and the call with fin = true
 * ends it. Control frames (pongs, pings, close) may go out between
 * fragments; other data messages may not (-EINVAL) until fin.
 * Errors as cn_ws_send. */
CN_EXTERN int cn_ws_send_fragment(struct cn_ws *ws, enum cn_ws_type type, const void *data,
                                  size_t len, bool fin, int64_t deadline);

/* Sends a ping with up to 125 bytes of payload; the pong is consumed by the
 * reader (it refreshes liveness). Errors: -EINVAL (payload over 125 bytes),
 * as cn_ws_send. */
CN_EXTERN int cn_ws_ping(struct cn_ws *ws, const void *payload, size_t len, int64_t deadline);

/* ---- broadcast --------------------------------------------------------------------------- */

/* Encodes one unmasked (server) frame holding a whole message, once, for
 * cn_ws_send_frame to many connections. The frame starts with one reference.
 * Errors: -EINVAL (bad type), -ENOMEM. */
CN_EXTERN int cn_ws_frame_new(struct cn_ws_frame **out, enum cn_ws_type type, const void *data,
                              size_t len);
/* Takes one more reference (for a coroutine that will send it later). */
CN_EXTERN struct cn_ws_frame *cn_ws_frame_ref(struct cn_ws_frame *f);
/* Drops one reference; the last one frees the frame. Accepts NULL. */
CN_EXTERN void cn_ws_frame_free(struct cn_ws_frame *f);

/* Sends an encoded frame on a server connection: one write of the same
 * bytes for every connection, no copy, no re-encoding.
 * Errors: -EINVAL (a client connection: its frames must be masked), as
 * cn_ws_send. */
CN_EXTERN int cn_ws_send_frame(struct cn_ws *ws, const struct cn_ws_frame *f, int64_t deadline);

/* ---- closing ------------------------------------------------------------------------------- */

/* Starts the closing handshake without waiting: sends a close frame with
 * code (0 = no status, then reason must be empty) and reason (at most 123
 * bytes of UTF-8). The reader keeps receiving until the peer's close, then
 * gets CN_EWS_CLOSED. Nothing more can be sent.
 * Errors: -EINVAL (a code not valid on the wire, a bad reason),
 * CN_EWS_CLOSED (a close was already sent), as cn_ws_send. */
CN_EXTERN int cn_ws_send_close(struct cn_ws *ws, unsigned code, const char *reason,
                               size_t reason_len, int64_t deadline);

/* Ends the connection and frees ws (always, whatever it returns): sends a
 * close (code and reason as cn_ws_send_close) unless one was sent, waits
 * until the deadline for the peer's close (data messages still arriving are
 * discarded), then closes the stream. The server closes TCP at once
 * (RFC 6455 §7.1.1); a client first waits briefly (at most 1 s, within the
 * deadline) for the server to end the stream. After a protocol error it
 * only drops the stream. No other coroutine may be parked on ws.
 * Returns 0 after a complete closing handshake. Errors: -ETIMEDOUT (the
 * peer did not answer in time), -ECANCELED, the connection's sticky error,
 * stream errors. Accepts NULL (returns 0). */
CN_EXTERN int cn_ws_close(struct cn_ws *ws, unsigned code, const char *reason, size_t reason_len,
                          int64_t deadline);

/* The status code of the peer's close frame: CN_WS_CLOSE_NO_STATUS if it had
 * no payload, CN_WS_CLOSE_ABNORMAL if none arrived. */
CN_EXTERN unsigned cn_ws_close_code(const struct cn_ws *ws);
/* The reason of the peer's close frame (UTF-8, not NUL-terminated; "" if
 * none), its length in *len. Valid until cn_ws_close. */
CN_EXTERN const char *cn_ws_close_reason(const struct cn_ws *ws, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* CORONET_WS_H */
