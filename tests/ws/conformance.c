/* SPDX-License-Identifier: MIT */
/*
 * RFC 6455 conformance, grouped like the Autobahn testsuite families
 * (framing, pings/pongs, reserved bits, opcodes, fragmentation, UTF-8, close
 * handling, limits, masking, handshake, timers). Every scenario runs twice:
 * against coronet's server (the test is a raw client sending hand-made,
 * masked frames) and against coronet's client (the test is a raw server
 * sending hand-made, unmasked frames). The implementation under test (IUT)
 * runs an echo loop: each message is sent back with its type; the peer's
 * close is answered; any failure ends in cn_ws_close. The raw side checks
 * the replies byte by byte, including the close status and the end of the
 * TCP stream.
 */
#define _GNU_SOURCE
#include "test.h"

#include "ws/codec.h"

enum { LONG_MS = 10000 };

static int64_t soon(void)
{
    return cn_now() + LONG_MS;
}

/* ---- the environment: the IUT on one side, raw peers on the other ------------------------ */

enum iut_mode { IUT_ECHO, IUT_CHUNKED, IUT_CLOSE_ON_TEXT, IUT_SHORT_DEADLINES };

struct env {
    bool client_mode; /* the IUT is the client */
    enum iut_mode mode;
    struct cn_tcp_listener *l;
    int port;
    struct cn_co *server;  /* server mode: cn_http_serve */
    struct cn_group *iuts; /* client mode: the IUT clients */
    struct cn_ws_server_opts sopts;
    struct cn_ws_client_opts copts;
    int64_t close_ms; /* IUT_CLOSE_ON_TEXT: the IUT's close deadline */
    /* the last IUT connection's end */
    struct cn_event done;
    int recv_rc;  /* what ended its receive loop */
    int close_rc; /* cn_ws_close's result */
    unsigned peer_code;
    int connect_rc; /* client mode: cn_ws_connect's result */
    char subprotocol[64];
    int timeouts; /* IUT_SHORT_DEADLINES: receives that timed out */
};

struct peer {
    struct env *e;
    struct cn_stream *s;
    bool masks; /* the peer is a client: it masks its frames */
    bool sent_close;
    uint8_t *in; /* buffered input in[start, end) */
    size_t start, end, cap;
    uint8_t *payload; /* the last frame read */
    size_t pcap;
    char head[4096]; /* the handshake request or response head */
};

struct frame {
    int op;
    bool fin;
    uint8_t b0;
    bool masked;
    size_t len;
    const uint8_t *data;
};

/* Runs the IUT's side of one connection. */
static void iut_run(struct env *e, struct cn_ws *ws)
{
    const char *proto = cn_ws_subprotocol(ws);
    snprintf(e->subprotocol, sizeof e->subprotocol, "%s", proto ? proto : "");
    int rc;
    for (;;) {
        struct cn_ws_msg m;
        if (e->mode == IUT_CHUNKED) {
            rc = cn_ws_recv_chunk(ws, &m, soon());
            if (rc == 0) {
                rc = cn_ws_send_fragment(ws, m.type, m.data, m.len, m.fin, soon());
            }
        } else if (e->mode == IUT_SHORT_DEADLINES) {
            while ((rc = cn_ws_recv(ws, &m, cn_now() + 5)) == -ETIMEDOUT) {
                e->timeouts++;
            }
            if (rc == 0) {
                rc = cn_ws_send(ws, m.type, m.data, m.len, soon());
            }
        } else {
            rc = cn_ws_recv(ws, &m, soon());
            if (rc == 0 && e->mode == IUT_CLOSE_ON_TEXT && m.type == CN_WS_TEXT) {
                e->recv_rc = 0;
                e->close_rc = cn_ws_close(ws, 1000, "bye", 3, cn_now() + e->close_ms);
                cn_event_set(&e->done);
                return;
            }
            if (rc == 0) {
                rc = cn_ws_send(ws, m.type, m.data, m.len, soon());
            }
        }
        if (rc < 0) {
            break;
        }
    }
    e->recv_rc = rc;
    e->peer_code = cn_ws_close_code(ws);
    e->close_rc = cn_ws_close(ws, 1000, NULL, 0, soon());
    cn_event_set(&e->done);
}

static int iut_handler(struct cn_http_server_conn *c, const struct cn_http_request *req, void *arg)
{
    struct env *e = arg;
    struct cn_ws *ws;
    int rc = cn_ws_accept(&ws, c, req, &e->sopts, soon());
    if (rc < 0) {
        return 0;
    }
    iut_run(e, ws);
    return 0;
}

static int serve_main(void *arg)
{
    struct env *e = arg;
    cn_http_serve(e->l, iut_handler, e, NULL);
    return 0;
}

static int iut_client(void *arg)
{
    struct env *e = arg;
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/chat?x=1", e->port);
    struct cn_ws *ws;
    e->connect_rc = cn_ws_connect(&ws, url, &e->copts, soon());
    if (e->connect_rc < 0) {
        cn_event_set(&e->done);
        return 0;
    }
    iut_run(e, ws);
    return 0;
}

static void env_start(struct env *e)
{
    CN_ASSERT_EQ(cn_tcp_listen(&e->l, "127.0.0.1", 0, NULL), 0);
    e->port = cn_tcp_listener_port(e->l);
    CN_ASSERT_EQ(cn_group_new(&e->iuts), 0);
    if (!e->client_mode) {
        CN_ASSERT_EQ(cn_spawn(&e->server, serve_main, e, NULL), 0);
    }
}

static void env_stop(struct env *e)
{
    if (e->server) {
        cn_cancel(e->server);
        CN_ASSERT_EQ(cn_join(e->server, NULL, -1), 0);
    }
    cn_group_close(e->iuts);
    cn_tcp_listener_close(e->l);
}

/* ---- the raw peer ------------------------------------------------------------------------ */

static int fill(struct peer *p, size_t need)
{
    while (p->end - p->start < need) {
        if (p->start > 0) {
            memmove(p->in, p->in + p->start, p->end - p->start);
            p->end -= p->start;
            p->start = 0;
        }
        if (need > p->cap || p->cap - p->end < 4096) {
            p->cap = need + 65536;
            p->in = realloc(p->in, p->cap);
            CN_ASSERT(p->in != NULL);
        }
        ssize_t n = cn_stream_read(p->s, p->in + p->end, p->cap - p->end, soon());
        if (n == 0) {
            return CN_EOF;
        }
        if (n < 0) {
            return (int)n;
        }
        p->end += (size_t)n;
    }
    return 0;
}

/* Reads a head up to the blank line into p->head; returns the status (or 0
 * for a request). */
static int read_head(struct peer *p)
{
    for (size_t need = 4;; need++) {
        CN_ASSERT_EQ(fill(p, need), 0);
        if (memcmp(p->in + p->start + need - 4, "\r\n\r\n", 4) == 0) {
            CN_ASSERT_LT(need, sizeof p->head);
            memcpy(p->head, p->in + p->start, need);
            p->head[need] = '\0';
            p->start += need;
            break;
        }
    }
    return strncmp(p->head, "HTTP/1.1 ", 9) == 0 ? atoi(p->head + 9) : 0;
}

/* Sends a frame with the first byte as given (FIN, RSV and opcode bits
 * chosen freely), masked when the peer is a client unless flip_mask. */
static void send_frame_b0(struct peer *p, uint8_t b0, const void *data, size_t len, bool flip_mask)
{
    bool masked = p->masks != flip_mask;
    uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    uint8_t hdr[14];
    size_t hl = cn__ws_encode_header(hdr, true, 0, masked, key, len);
    hdr[0] = b0;
    uint8_t *buf = malloc(hl + len + 1);
    memcpy(buf, hdr, hl);
    memcpy(buf + hl, data, len);
    if (masked) {
        cn__ws_mask(buf + hl, len, key, 0);
    }
    CN_ASSERT_EQ(cn_stream_write(p->s, buf, hl + len, soon()), 0);
    free(buf);
}

static void send_frame(struct peer *p, bool fin, int op, const void *data, size_t len)
{
    send_frame_b0(p, (uint8_t)((fin ? 0x80 : 0) | op), data, len, false);
}

static void send_str(struct peer *p, bool fin, int op, const char *s)
{
    send_frame(p, fin, op, s, strlen(s));
}

static void send_close(struct peer *p, unsigned code, const char *reason)
{
    uint8_t b[125];
    b[0] = (uint8_t)(code >> 8);
    b[1] = (uint8_t)code;
    size_t n = strlen(reason);
    memcpy(b + 2, reason, n);
    send_frame(p, true, CN__WS_OP_CLOSE, b, 2 + n);
    p->sent_close = true;
}

/* Reads one frame (unmasking it); CN_EOF or a stream error at the end. */
static int read_frame(struct peer *p, struct frame *f)
{
    int rc = fill(p, 2);
    if (rc < 0) {
        return rc;
    }
    const uint8_t *h = p->in + p->start;
    size_t len7 = h[1] & 0x7F;
    f->masked = (h[1] & 0x80) != 0;
    size_t hl = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (f->masked ? 4 : 0);
    CN_ASSERT_EQ(fill(p, hl), 0);
    h = p->in + p->start;
    uint64_t len = len7;
    if (len7 >= 126) {
        len = 0;
        for (size_t i = 0; i < (len7 == 126 ? 2u : 8u); i++) {
            len = len << 8 | h[2 + i];
        }
    }
    CN_ASSERT_EQ(fill(p, hl + (size_t)len), 0);
    h = p->in + p->start;
    if (p->pcap < len + 1) {
        p->pcap = (size_t)len + 1;
        p->payload = realloc(p->payload, p->pcap);
    }
    memcpy(p->payload, h + hl, (size_t)len);
    if (f->masked) {
        cn__ws_mask(p->payload, (size_t)len, h + hl - 4, 0);
    }
    f->b0 = h[0];
    f->op = h[0] & 0x0F;
    f->fin = (h[0] & 0x80) != 0;
    f->len = (size_t)len;
    f->data = p->payload;
    p->start += hl + (size_t)len;
    /* frames from the IUT obey its role: masked from a client only */
    CN_ASSERT_EQ(f->masked, !p->masks);
    return 0;
}

static void expect_frame(struct peer *p, int op, const void *data, size_t len)
{
    struct frame f;
    CN_ASSERT_EQ(read_frame(p, &f), 0);
    CN_ASSERT_EQ(f.op, op);
    CN_ASSERT(f.fin);
    CN_ASSERT_EQ(f.len, len);
    CN_ASSERT_MEMEQ(f.data, data, len);
}

static void expect_str(struct peer *p, int op, const char *s)
{
    expect_frame(p, op, s, strlen(s));
}

/* The peer's stream ends (the IUT dropped or closed the connection). */
static void expect_eof(struct peer *p)
{
    struct frame f;
    int rc = read_frame(p, &f);
    CN_ASSERT(rc == CN_EOF || rc == -ECONNRESET);
}

/* The end of a connection whose close frame the peer has read. A raw server
 * answers the close (if it has not sent one) and ends its side first
 * (RFC 6455 §7.1.1); then the IUT's side must end. The IUT may already have
 * dropped the connection, so the answer may fail. */
static void finish(struct peer *p)
{
    if (!p->masks) {
        if (!p->sent_close) {
            uint8_t f[4] = {0x88, 2, 0x03, 0xe8};
            cn_stream_write(p->s, f, 4, soon());
            p->sent_close = true;
        }
        cn_stream_shutdown(p->s, soon());
    }
    expect_eof(p);
}

/* A close with `code` (0: an empty payload), then the end of the stream. */
static void expect_close(struct peer *p, unsigned code)
{
    struct frame f;
    CN_ASSERT_EQ(read_frame(p, &f), 0);
    CN_ASSERT_EQ(f.op, CN__WS_OP_CLOSE);
    if (code == 0) {
        CN_ASSERT_EQ(f.len, 0);
    } else {
        CN_ASSERT_GE(f.len, 2);
        CN_ASSERT_EQ((unsigned)(f.data[0] << 8 | f.data[1]), code);
    }
    finish(p);
}

static const char *request_key = "dGhlIHNhbXBsZSBub25jZQ==";

/* Server mode: connects and sends an upgrade request with the given extra
 * header lines (each ending in \r\n); returns the response status. */
static int peer_request(struct peer *p, const char *version, const char *extra)
{
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET /chat?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: %s\r\n%s\r\n",
                     request_key, version, extra);
    CN_ASSERT_EQ(cn_tcp_connect(&p->s, "127.0.0.1", p->e->port, NULL, soon()), 0);
    CN_ASSERT_EQ(cn_stream_write(p->s, req, (size_t)n, soon()), 0);
    return read_head(p);
}

static struct peer *peer_new(struct env *e)
{
    struct peer *p = calloc(1, sizeof *p);
    CN_ASSERT(p != NULL);
    p->e = e;
    p->masks = !e->client_mode;
    cn_event_reset(&e->done);
    e->recv_rc = e->close_rc = e->connect_rc = 1;
    return p;
}

/* Client mode: starts an IUT client and accepts its connection; reads the
 * request head (into p->head) and returns its Sec-WebSocket-Key. */
static const char *peer_accept_request(struct peer *p, char key[25])
{
    CN_ASSERT_EQ(cn_group_spawn(p->e->iuts, iut_client, p->e, NULL), 0);
    CN_ASSERT_EQ(cn_tcp_accept(p->e->l, &p->s, soon()), 0);
    CN_ASSERT_EQ(read_head(p), 0);
    const char *k = strcasestr(p->head, "\r\nSec-WebSocket-Key: ");
    CN_ASSERT(k != NULL);
    memcpy(key, k + 21, 24);
    key[24] = '\0';
    CN_ASSERT(cn__ws_key_valid(key));
    return key;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void peer_respond(struct peer *p, const char *fmt, const char *key, const char *extra)
{
    char accept[29];
    CN_ASSERT_EQ(cn__ws_accept_key(key, accept), 0);
    char resp[1024];
    int n = snprintf(resp, sizeof resp, fmt, accept, extra);
    CN_ASSERT_EQ(cn_stream_write(p->s, resp, (size_t)n, soon()), 0);
}
#pragma GCC diagnostic pop

static const char *ok_101 = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n";

/* A connection past the opening handshake, in either mode. */
static struct peer *peer_open(struct env *e)
{
    struct peer *p = peer_new(e);
    if (e->client_mode) {
        char key[25];
        peer_respond(p, ok_101, peer_accept_request(p, key), "");
    } else {
        CN_ASSERT_EQ(peer_request(p, "13", ""), 101);
    }
    return p;
}

/* Waits for the IUT's connection to end and frees the peer. */
static void peer_done(struct peer *p)
{
    CN_ASSERT_EQ(cn_event_wait(&p->e->done, soon()), 0);
    cn_stream_close(p->s);
    free(p->in);
    free(p->payload);
    free(p);
}

/* A normal closing handshake started by the peer. */
static void peer_close(struct peer *p)
{
    send_close(p, 1000, "");
    expect_close(p, 1000);
    CN_ASSERT_EQ(cn_event_wait(&p->e->done, soon()), 0);
    CN_ASSERT_EQ(p->e->recv_rc, CN_EWS_CLOSED);
    CN_ASSERT_EQ(p->e->close_rc, 0);
    peer_done(p);
}

/* One connection that sends the frame(s) of `send` and expects a close with
 * `status`, the IUT reporting rc. */
static void expect_failure(struct peer *p, unsigned status, int rc)
{
    expect_close(p, status);
    CN_ASSERT_EQ(cn_event_wait(&p->e->done, soon()), 0);
    if (rc) {
        CN_ASSERT_EQ(p->e->recv_rc, rc);
    }
    CN_ASSERT_EQ(p->e->close_rc, p->e->recv_rc);
    peer_done(p);
}

/* ---- running a scenario in both modes ------------------------------------------------------ */

typedef void (*scenario_fn)(struct env *e);

struct run {
    scenario_fn fn;
    struct env *e;
};

static int run_main(void *arg)
{
    struct run *r = arg;
    env_start(r->e);
    r->fn(r->e);
    env_stop(r->e);
    return 0;
}

static void run_env(scenario_fn fn, struct env *e)
{
    struct run r = {fn, e};
    CN_ASSERT_EQ(cn_test_run(run_main, &r), 0);
}

static void run_server(scenario_fn fn)
{
    struct env e = {.client_mode = false};
    run_env(fn, &e);
}

static void run_client(scenario_fn fn)
{
    struct env e = {.client_mode = true};
    run_env(fn, &e);
}

#define BOTH(name)                                                                                 \
    static void server_##name(void)                                                                \
    {                                                                                              \
        run_server(name);                                                                          \
    }                                                                                              \
    static void client_##name(void)                                                                \
    {                                                                                              \
        run_client(name);                                                                          \
    }

static uint8_t *pattern(size_t n)
{
    uint8_t *b = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        b[i] = (uint8_t)((i * 31 + 7) & 0x7F); /* ASCII: valid text too */
    }
    return b;
}

/* ---- framing ------------------------------------------------------------------------------ */

static void lengths(struct env *e)
{
    static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20};
    struct peer *p = peer_open(e);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *b = pattern(sizes[i]);
        send_frame(p, true, CN__WS_OP_BINARY, b, sizes[i]);
        expect_frame(p, CN__WS_OP_BINARY, b, sizes[i]);
        send_frame(p, true, CN__WS_OP_TEXT, b, sizes[i]);
        expect_frame(p, CN__WS_OP_TEXT, b, sizes[i]);
        free(b);
    }
    peer_close(p);
}
BOTH(lengths)

static void lengths_chunked(struct env *e)
{
    e->mode = IUT_CHUNKED;
    static const size_t sizes[] = {0, 125, 65536, 1 << 20};
    struct peer *p = peer_open(e);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *b = pattern(sizes[i]);
        send_frame(p, true, CN__WS_OP_BINARY, b, sizes[i]);
        /* the chunked echo sends fragments: read them back together */
        size_t got = 0;
        struct frame f;
        bool first = true;
        do {
            CN_ASSERT_EQ(read_frame(p, &f), 0);
            CN_ASSERT_EQ(f.op, first ? CN__WS_OP_BINARY : CN__WS_OP_CONT);
            first = false;
            CN_ASSERT_LE(got + f.len, sizes[i]);
            CN_ASSERT_MEMEQ(f.data, b + got, f.len);
            got += f.len;
        } while (!f.fin);
        CN_ASSERT_EQ(got, sizes[i]);
        free(b);
    }
    peer_close(p);
}
BOTH(lengths_chunked)

/* Bytes dribbled one at a time still make frames. */
static void byte_by_byte(struct env *e)
{
    struct peer *p = peer_open(e);
    uint8_t key[4] = {1, 2, 3, 4};
    uint8_t f[64];
    size_t hl = cn__ws_encode_header(f, true, CN__WS_OP_TEXT, p->masks, key, 5);
    memcpy(f + hl, "hello", 5);
    if (p->masks) {
        cn__ws_mask(f + hl, 5, key, 0);
    }
    for (size_t i = 0; i < hl + 5; i++) {
        CN_ASSERT_EQ(cn_stream_write(p->s, f + i, 1, soon()), 0);
        cn_sleep(1);
    }
    expect_str(p, CN__WS_OP_TEXT, "hello");
    peer_close(p);
}
BOTH(byte_by_byte)

/* A receive that times out midway through a frame or a fragmented message
 * leaves the connection usable: the next receive continues it. */
static void recv_timeouts_resume(struct env *e)
{
    e->mode = IUT_SHORT_DEADLINES;
    struct peer *p = peer_open(e);
    uint8_t key[4] = {5, 6, 7, 8};
    uint8_t f[64];
    const char *text = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
    size_t n = strlen(text);
    size_t hl = cn__ws_encode_header(f, false, CN__WS_OP_TEXT, p->masks, key, n);
    memcpy(f + hl, text, n);
    if (p->masks) {
        cn__ws_mask(f + hl, n, key, 0);
    }
    CN_ASSERT_EQ(cn_stream_write(p->s, f, 1, soon()), 0); /* half a header */
    cn_sleep(30);
    CN_ASSERT_EQ(cn_stream_write(p->s, f + 1, hl + 3, soon()), 0); /* mid code point */
    cn_sleep(30);
    CN_ASSERT_EQ(cn_stream_write(p->s, f + hl + 4, n - 4, soon()), 0);
    send_str(p, true, CN__WS_OP_PING, "between");
    expect_str(p, CN__WS_OP_PONG, "between");
    cn_sleep(30);
    send_str(p, true, CN__WS_OP_CONT, "!");
    expect_str(p, CN__WS_OP_TEXT, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5!");
    CN_ASSERT_GT(e->timeouts, 0);
    peer_close(p);
}
BOTH(recv_timeouts_resume)

/* ---- pings and pongs ---------------------------------------------------------------------- */

static void ping_echoed(struct env *e)
{
    struct peer *p = peer_open(e);
    send_str(p, true, CN__WS_OP_PING, "hello");
    expect_str(p, CN__WS_OP_PONG, "hello");
    send_str(p, true, CN__WS_OP_PING, "");
    expect_str(p, CN__WS_OP_PONG, "");
    uint8_t *b = pattern(125);
    send_frame(p, true, CN__WS_OP_PING, b, 125);
    expect_frame(p, CN__WS_OP_PONG, b, 125);
    free(b);
    peer_close(p);
}
BOTH(ping_echoed)

static void ping_126_bytes_fails(struct env *e)
{
    struct peer *p = peer_open(e);
    uint8_t *b = pattern(126);
    send_frame(p, true, CN__WS_OP_PING, b, 126);
    free(b);
    expect_failure(p, 1002, CN_EWS_CONTROL_LEN);
}
BOTH(ping_126_bytes_fails)

static void unsolicited_pong_ignored(struct env *e)
{
    struct peer *p = peer_open(e);
    send_str(p, true, CN__WS_OP_PONG, "unasked");
    send_str(p, true, CN__WS_OP_PONG, "");
    send_str(p, true, CN__WS_OP_TEXT, "after");
    expect_str(p, CN__WS_OP_TEXT, "after");
    peer_close(p);
}
BOTH(unsolicited_pong_ignored)

static void ten_pings_answered_in_order(struct env *e)
{
    struct peer *p = peer_open(e);
    for (int i = 0; i < 10; i++) {
        char b[8];
        snprintf(b, sizeof b, "p%d", i);
        send_str(p, true, CN__WS_OP_PING, b);
    }
    for (int i = 0; i < 10; i++) {
        char b[8];
        snprintf(b, sizeof b, "p%d", i);
        expect_str(p, CN__WS_OP_PONG, b);
    }
    peer_close(p);
}
BOTH(ten_pings_answered_in_order)

/* ---- reserved bits and opcodes -------------------------------------------------------------- */

static void reserved_bits_fail(struct env *e)
{
    static const uint8_t bits[] = {0x40, 0x20, 0x10, 0x70};
    static const int ops[] = {CN__WS_OP_TEXT, CN__WS_OP_BINARY, CN__WS_OP_PING};
    for (size_t i = 0; i < sizeof bits; i++) {
        for (size_t j = 0; j < 3; j++) {
            struct peer *p = peer_open(e);
            send_str(p, true, CN__WS_OP_TEXT, "ok");
            expect_str(p, CN__WS_OP_TEXT, "ok");
            send_frame_b0(p, (uint8_t)(0x80 | bits[i] | ops[j]), "x", 1, false);
            expect_failure(p, 1002, CN_EWS_RSV);
        }
    }
}
BOTH(reserved_bits_fail)

static void reserved_opcodes_fail(struct env *e)
{
    static const uint8_t ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof ops; i++) {
        struct peer *p = peer_open(e);
        send_frame_b0(p, (uint8_t)(0x80 | ops[i]), "", 0, false);
        expect_failure(p, 1002, CN_EWS_OPCODE);
    }
}
BOTH(reserved_opcodes_fail)

/* ---- fragmentation ----------------------------------------------------------------------------
 */

static void text_in_three_fragments(struct env *e)
{
    struct peer *p = peer_open(e);
    send_str(p, false, CN__WS_OP_TEXT, "Hel");
    send_str(p, false, CN__WS_OP_CONT, "lo, ");
    send_str(p, true, CN__WS_OP_CONT, "world");
    expect_str(p, CN__WS_OP_TEXT, "Hello, world");
    /* empty fragments, and binary */
    send_str(p, false, CN__WS_OP_BINARY, "");
    send_str(p, false, CN__WS_OP_CONT, "ab");
    send_str(p, false, CN__WS_OP_CONT, "");
    send_str(p, true, CN__WS_OP_CONT, "c");
    expect_str(p, CN__WS_OP_BINARY, "abc");
    send_str(p, false, CN__WS_OP_TEXT, "");
    send_str(p, true, CN__WS_OP_CONT, "");
    expect_str(p, CN__WS_OP_TEXT, "");
    peer_close(p);
}
BOTH(text_in_three_fragments)

static void pings_between_fragments_answered(struct env *e)
{
    struct peer *p = peer_open(e);
    send_str(p, false, CN__WS_OP_TEXT, "frag1 ");
    send_str(p, true, CN__WS_OP_PING, "p1");
    expect_str(p, CN__WS_OP_PONG, "p1"); /* answered before the message ends */
    send_str(p, false, CN__WS_OP_CONT, "frag2 ");
    send_str(p, true, CN__WS_OP_PONG, "unasked");
    send_str(p, true, CN__WS_OP_PING, "p2");
    send_str(p, true, CN__WS_OP_CONT, "frag3");
    expect_str(p, CN__WS_OP_PONG, "p2");
    expect_str(p, CN__WS_OP_TEXT, "frag1 frag2 frag3");
    peer_close(p);
}
BOTH(pings_between_fragments_answered)

static void continuation_without_start_fails(struct env *e)
{
    struct peer *p = peer_open(e);
    send_str(p, true, CN__WS_OP_CONT, "orphan");
    expect_failure(p, 1002, CN_EWS_PROTOCOL);
    p = peer_open(e);
    send_str(p, false, CN__WS_OP_CONT, "orphan");
    expect_failure(p, 1002, CN_EWS_PROTOCOL);
    p = peer_open(e); /* a continuation after a complete message */
    send_str(p, true, CN__WS_OP_TEXT, "done");
    expect_str(p, CN__WS_OP_TEXT, "done");
    send_str(p, true, CN__WS_OP_CONT, "late");
    expect_failure(p, 1002, CN_EWS_PROTOCOL);
}
BOTH(continuation_without_start_fails)

static void data_frame_inside_fragmented_message_fails(struct env *e)
{
    struct peer *p = peer_open(e);
    send_str(p, false, CN__WS_OP_TEXT, "first ");
    send_str(p, true, CN__WS_OP_TEXT, "second");
    expect_failure(p, 1002, CN_EWS_PROTOCOL);
    p = peer_open(e);
    send_str(p, false, CN__WS_OP_BINARY, "first ");
    send_str(p, false, CN__WS_OP_BINARY, "second");
    expect_failure(p, 1002, CN_EWS_PROTOCOL);
}
BOTH(data_frame_inside_fragmented_message_fails)

static void fragmented_control_fails(struct env *e)
{
    static const int ops[] = {CN__WS_OP_PING, CN__WS_OP_PONG, CN__WS_OP_CLOSE};
    for (size_t i = 0; i < 3; i++) {
        struct peer *p = peer_open(e);
        send_str(p, false, ops[i], "");
        expect_failure(p, 1002, CN_EWS_CONTROL_FRAG);
    }
}
BOTH(fragmented_control_fails)

/* ---- UTF-8
 * --------------------------------------------------------------------------------------- */

static void utf8_split_across_fragments(struct env *e)
{
    /* "κόσμε" and U+1F600: each multibyte character cut between fragments */
    const char *whole = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xf0\x9f\x98\x80";
    size_t n = strlen(whole);
    struct peer *p = peer_open(e);
    for (size_t cut = 1; cut < n; cut++) {
        send_frame(p, false, CN__WS_OP_TEXT, whole, cut);
        send_frame(p, true, CN__WS_OP_CONT, whole + cut, n - cut);
        expect_frame(p, CN__WS_OP_TEXT, whole, n);
    }
    /* byte per fragment */
    send_frame(p, false, CN__WS_OP_TEXT, whole, 1);
    for (size_t i = 1; i < n; i++) {
        send_frame(p, i == n - 1, CN__WS_OP_CONT, whole + i, 1);
    }
    expect_frame(p, CN__WS_OP_TEXT, whole, n);
    peer_close(p);
}
BOTH(utf8_split_across_fragments)

static void utf8_invalid_fails_1007(struct env *e)
{
    static const char *bad[] = {
        "\xc0\x80",         /* overlong NUL */
        "\xed\xa0\x80",     /* surrogate */
        "\xf4\x90\x80\x80", /* past U+10FFFF */
        "ab\x80",           /* stray continuation */
        "\xff",             /* never valid */
        "\xce",             /* truncated at the end of the message */
        "hello\xe2\x82",    /* truncated */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct peer *p = peer_open(e);
        send_str(p, true, CN__WS_OP_TEXT, bad[i]);
        expect_failure(p, 1007, CN_EWS_UTF8);
    }
    /* binary messages are not text: the same bytes pass */
    struct peer *p = peer_open(e);
    send_str(p, true, CN__WS_OP_BINARY, "\xc0\x80");
    expect_str(p, CN__WS_OP_BINARY, "\xc0\x80");
    peer_close(p);
}
BOTH(utf8_invalid_fails_1007)

/* The close arrives before the rest of the message is sent (§8.1 fail fast). */
static void utf8_fails_fast_mid_message(struct env *e)
{
    struct peer *p = peer_open(e);
    send_str(p, false, CN__WS_OP_TEXT, "\xce\xba\xe1\xbd\xb9");
    send_str(p, false, CN__WS_OP_CONT, "\xed\xa0\x80"); /* a surrogate */
    expect_failure(p, 1007, CN_EWS_UTF8);               /* final fragment never sent */
}
BOTH(utf8_fails_fast_mid_message)

/* Inside one frame: a header announcing 100 bytes, then only 6 of them. */
static void utf8_fails_fast_mid_frame(struct env *e)
{
    struct peer *p = peer_open(e);
    uint8_t key[4] = {9, 8, 7, 6};
    uint8_t f[32];
    size_t hl = cn__ws_encode_header(f, true, CN__WS_OP_TEXT, p->masks, key, 100);
    memcpy(f + hl, "abc\xf5xx", 6); /* 0xF5 is never valid */
    if (p->masks) {
        cn__ws_mask(f + hl, 6, key, 0);
    }
    CN_ASSERT_EQ(cn_stream_write(p->s, f, hl + 6, soon()), 0);
    expect_failure(p, 1007, CN_EWS_UTF8);
}
BOTH(utf8_fails_fast_mid_frame)

/* ---- close handling
 * ------------------------------------------------------------------------------- */

static void close_codes_echoed(struct env *e)
{
    static const unsigned codes[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                     1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        struct peer *p = peer_open(e);
        send_close(p, codes[i], "reason \xce\xba");
        expect_close(p, codes[i]);
        CN_ASSERT_EQ(cn_event_wait(&e->done, soon()), 0);
        CN_ASSERT_EQ(e->recv_rc, CN_EWS_CLOSED);
        CN_ASSERT_EQ(e->peer_code, codes[i]);
        CN_ASSERT_EQ(e->close_rc, 0);
        peer_done(p);
    }
}
BOTH(close_codes_echoed)

static void close_invalid_codes_fail(struct env *e)
{
    static const unsigned codes[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                     1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        struct peer *p = peer_open(e);
        send_close(p, codes[i], "");
        expect_failure(p, 1002, CN_EWS_CLOSE_CODE);
    }
}
BOTH(close_invalid_codes_fail)

static void close_payload_rules(struct env *e)
{
    struct peer *p = peer_open(e); /* 1 byte */
    send_frame(p, true, CN__WS_OP_CLOSE, "\x03", 1);
    expect_failure(p, 1002, CN_EWS_CLOSE_PAYLOAD);
    p = peer_open(e); /* reason not UTF-8 */
    send_close(p, 1000, "bad \xc0\x80");
    expect_failure(p, 1007, CN_EWS_UTF8);
    p = peer_open(e); /* empty: answered with 1000 */
    send_frame(p, true, CN__WS_OP_CLOSE, "", 0);
    expect_close(p, 1000);
    CN_ASSERT_EQ(cn_event_wait(&e->done, soon()), 0);
    CN_ASSERT_EQ(e->recv_rc, CN_EWS_CLOSED);
    CN_ASSERT_EQ(e->peer_code, CN_WS_CLOSE_NO_STATUS);
    peer_done(p);
    p = peer_open(e); /* 123-byte reason is the maximum */
    char reason[124];
    memset(reason, 'r', 123);
    reason[123] = '\0';
    send_close(p, 1000, reason);
    expect_close(p, 1000);
    peer_done(p);
}
BOTH(close_payload_rules)

/* Nothing after the peer's close is processed; data in flight before it is. */
static void data_then_close(struct env *e)
{
    struct peer *p = peer_open(e);
    send_str(p, true, CN__WS_OP_TEXT, "last");
    send_close(p, 1000, "");
    send_str(p, true, CN__WS_OP_PING, "after close"); /* must be ignored */
    expect_str(p, CN__WS_OP_TEXT, "last");
    expect_close(p, 1000);
    peer_done(p);
}
BOTH(data_then_close)

/* The IUT starts the close and the peer answers. */
static void iut_initiated_close(struct env *e)
{
    e->mode = IUT_CLOSE_ON_TEXT;
    e->close_ms = LONG_MS;
    struct peer *p = peer_open(e);
    send_str(p, true, CN__WS_OP_TEXT, "close please");
    struct frame f;
    CN_ASSERT_EQ(read_frame(p, &f), 0);
    CN_ASSERT_EQ(f.op, CN__WS_OP_CLOSE);
    CN_ASSERT_EQ(f.len, 5);
    CN_ASSERT_MEMEQ(f.data,
                    "\x03\xe8"
                    "bye",
                    5);
    send_close(p, 1000, "");
    finish(p);
    CN_ASSERT_EQ(cn_event_wait(&e->done, soon()), 0);
    CN_ASSERT_EQ(e->close_rc, 0);
    peer_done(p);
}
BOTH(iut_initiated_close)

/* The peer never answers the close: the IUT drops it at its deadline. */
static void close_deadline_then_drop(struct env *e)
{
    e->mode = IUT_CLOSE_ON_TEXT;
    e->close_ms = 200;
    struct peer *p = peer_open(e);
    send_str(p, true, CN__WS_OP_TEXT, "close please");
    struct frame f;
    CN_ASSERT_EQ(read_frame(p, &f), 0);
    CN_ASSERT_EQ(f.op, CN__WS_OP_CLOSE);
    /* keep talking, never close: data after its close is dropped by the IUT */
    send_str(p, true, CN__WS_OP_TEXT, "ignored");
    expect_eof(p);
    CN_ASSERT_EQ(cn_event_wait(&e->done, soon()), 0);
    CN_ASSERT_EQ(e->close_rc, -ETIMEDOUT);
    peer_done(p);
}
BOTH(close_deadline_then_drop)

/* The stream ends without a close frame: CN_EOF, abnormal closure. */
static void eof_without_close(struct env *e)
{
    struct peer *p = peer_open(e);
    send_str(p, true, CN__WS_OP_TEXT, "x");
    expect_str(p, CN__WS_OP_TEXT, "x");
    CN_ASSERT_EQ(cn_stream_shutdown(p->s, soon()), 0);
    CN_ASSERT_EQ(cn_event_wait(&e->done, soon()), 0);
    CN_ASSERT_EQ(e->recv_rc, CN_EOF);
    CN_ASSERT_EQ(e->peer_code, CN_WS_CLOSE_ABNORMAL);
    peer_done(p);
}
BOTH(eof_without_close)

/* ---- limits
 * ------------------------------------------------------------------------------------------ */

static void set_limits(struct env *e, size_t msg, size_t frame)
{
    e->sopts.ws.max_message_size = e->copts.ws.max_message_size = msg;
    e->sopts.ws.max_frame_size = e->copts.ws.max_frame_size = frame;
}

static void message_over_max_fails_1009(struct env *e)
{
    set_limits(e, 1000, 0);
    uint8_t *b = pattern(1001);
    struct peer *p = peer_open(e);
    send_frame(p, true, CN__WS_OP_BINARY, b, 1000); /* exactly the limit passes */
    expect_frame(p, CN__WS_OP_BINARY, b, 1000);
    send_frame(p, true, CN__WS_OP_BINARY, b, 1001);
    expect_failure(p, 1009, CN_EWS_TOO_BIG);
    p = peer_open(e); /* over the limit across fragments, failed at the header */
    send_frame(p, false, CN__WS_OP_TEXT, b, 400);
    send_frame(p, false, CN__WS_OP_CONT, b, 400);
    send_frame_b0(p, CN__WS_OP_CONT, b, 0, false);
    uint8_t key[4] = {0};
    uint8_t hdr[14];
    size_t hl = cn__ws_encode_header(hdr, true, CN__WS_OP_CONT, p->masks, key, 201);
    CN_ASSERT_EQ(cn_stream_write(p->s, hdr, hl, soon()), 0); /* header only */
    expect_failure(p, 1009, CN_EWS_TOO_BIG);
    free(b);
}
BOTH(message_over_max_fails_1009)

static void frame_over_max_fails_1009(struct env *e)
{
    set_limits(e, 10000, 500);
    uint8_t *b = pattern(1000);
    struct peer *p = peer_open(e);
    send_frame(p, false, CN__WS_OP_BINARY, b, 500);
    send_frame(p, true, CN__WS_OP_CONT, b + 500, 500);
    expect_frame(p, CN__WS_OP_BINARY, b, 1000);
    send_frame(p, true, CN__WS_OP_BINARY, b, 501);
    expect_failure(p, 1009, CN_EWS_TOO_BIG);
    free(b);
}
BOTH(frame_over_max_fails_1009)

/* ---- masking
 * -------------------------------------------------------------------------------------------- */

static void wrong_masking_fails(struct env *e)
{
    struct peer *p = peer_open(e);
    send_frame_b0(p, 0x80 | CN__WS_OP_TEXT, "hi", 2, true);
    expect_failure(p, 1002, e->client_mode ? CN_EWS_MASKED : CN_EWS_UNMASKED);
}
BOTH(wrong_masking_fails)

/* ---- timers
 * --------------------------------------------------------------------------------------------- */

static void idle_ping_without_pong_drops(struct env *e)
{
    e->sopts.ws.ping_interval_ms = e->copts.ws.ping_interval_ms = 100;
    e->sopts.ws.pong_timeout_ms = e->copts.ws.pong_timeout_ms = 200;
    struct peer *p = peer_open(e);
    struct frame f;
    CN_ASSERT_EQ(read_frame(p, &f), 0); /* the idle ping, answered */
    CN_ASSERT_EQ(f.op, CN__WS_OP_PING);
    send_frame(p, true, CN__WS_OP_PONG, f.data, f.len);
    CN_ASSERT_EQ(read_frame(p, &f), 0); /* the next one, left unanswered */
    CN_ASSERT_EQ(f.op, CN__WS_OP_PING);
    expect_eof(p);
    CN_ASSERT_EQ(cn_event_wait(&e->done, soon()), 0);
    CN_ASSERT_EQ(e->recv_rc, CN_EWS_PING_TIMEOUT);
    peer_done(p);
}
BOTH(idle_ping_without_pong_drops)

/* ---- handshake: server
 * ------------------------------------------------------------------------------------ */

static int auth_hook(const struct cn_http_request *req, void *arg)
{
    size_t len;
    const char *v = cn_http_header_find(req->headers, req->nheaders, "Authorization", &len);
    bool path_ok = req->path_len == 5 && memcmp(req->path, "/chat", 5) == 0 && req->query &&
                   req->query_len == 3 && memcmp(req->query, "x=1", 3) == 0;
    (void)arg;
    if (!path_ok) {
        return 404;
    }
    return v && len == 12 && memcmp(v, "Bearer token", 12) == 0 ? 0 : 401;
}

static void handshake_server_main(struct env *e)
{
    struct peer *p = peer_new(e);
    CN_ASSERT_EQ(peer_request(p, "8", ""), 426);
    CN_ASSERT(strstr(p->head, "\r\nSec-WebSocket-Version: 13\r\n") != NULL);
    cn_stream_close(p->s);
    free(p->in);
    free(p);
    /* missing key, bad key, no Upgrade, POST, HTTP/1.0 */
    static const char *bad[] = {
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Content-Length: 0\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = peer_new(e);
        CN_ASSERT_EQ(cn_tcp_connect(&p->s, "127.0.0.1", e->port, NULL, soon()), 0);
        CN_ASSERT_EQ(cn_stream_write(p->s, bad[i], strlen(bad[i]), soon()), 0);
        CN_ASSERT_EQ(read_head(p), 400);
        cn_stream_close(p->s);
        free(p->in);
        free(p);
    }
}

static void server_handshake_refuses_bad_requests(void)
{
    run_server(handshake_server_main);
}

static void hook_main(struct env *e)
{
    e->sopts.hook = auth_hook;
    struct peer *p = peer_new(e);
    CN_ASSERT_EQ(peer_request(p, "13", ""), 401);
    cn_stream_close(p->s);
    free(p->in);
    free(p);
    p = peer_new(e);
    CN_ASSERT_EQ(peer_request(p, "13", "Authorization: Bearer wrong\r\n"), 401);
    cn_stream_close(p->s);
    free(p->in);
    free(p);
    p = peer_new(e);
    CN_ASSERT_EQ(peer_request(p, "13", "Authorization: Bearer token\r\n"), 101);
    CN_ASSERT(strstr(p->head, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    send_str(p, true, CN__WS_OP_TEXT, "authorised");
    expect_str(p, CN__WS_OP_TEXT, "authorised");
    peer_close(p);
}

static void server_handshake_hook_refuses_401(void)
{
    run_server(hook_main);
}

static void subprotocol_main(struct env *e)
{
    static const char *const ours[] = {"chat.v2", "chat"};
    e->sopts.subprotocols = ours;
    e->sopts.nsubprotocols = 2;
    struct peer *p = peer_new(e); /* the client prefers chat; the server's order wins */
    CN_ASSERT_EQ(peer_request(p, "13",
                              "Sec-WebSocket-Protocol: chat, other\r\n"
                              "Sec-WebSocket-Protocol: chat.v2\r\n"),
                 101);
    CN_ASSERT(strstr(p->head, "\r\nSec-WebSocket-Protocol: chat.v2\r\n"));
    peer_close(p);
    CN_ASSERT_STREQ(e->subprotocol, "chat.v2");
    p = peer_new(e); /* nothing in common: no header, still accepted */
    CN_ASSERT_EQ(peer_request(p, "13", "Sec-WebSocket-Protocol: Chat, chat.v1\r\n"), 101);
    CN_ASSERT(strstr(p->head, "Sec-WebSocket-Protocol") == NULL);
    peer_close(p);
    CN_ASSERT_STREQ(e->subprotocol, "");
}

static void server_handshake_subprotocol_server_preference(void)
{
    run_server(subprotocol_main);
}

/* ---- handshake: client
 * ------------------------------------------------------------------------------------- */

static void client_handshake_main(struct env *e)
{
    static const char *const offered[] = {"chat", "chat.v2"};
    struct cn_http_header auth = cn_http_header_str("Authorization", "Bearer token");
    int status = -1;
    e->copts.subprotocols = offered;
    e->copts.nsubprotocols = 2;
    e->copts.headers = &auth;
    e->copts.nheaders = 1;
    e->copts.http_status = &status;
    char key[25];

    /* the request itself */
    struct peer *p = peer_new(e);
    peer_accept_request(p, key);
    CN_ASSERT(strncmp(p->head, "GET /chat?x=1 HTTP/1.1\r\n", 24) == 0);
    CN_ASSERT(strcasestr(p->head, "\r\nUpgrade: websocket\r\n"));
    CN_ASSERT(strcasestr(p->head, "\r\nConnection: Upgrade\r\n"));
    CN_ASSERT(strcasestr(p->head, "\r\nSec-WebSocket-Version: 13\r\n"));
    CN_ASSERT(strcasestr(p->head, "\r\nSec-WebSocket-Protocol: chat, chat.v2\r\n"));
    CN_ASSERT(strcasestr(p->head, "\r\nAuthorization: Bearer token\r\n"));
    CN_ASSERT(strcasestr(p->head, "\r\nHost: 127.0.0.1:"));
    peer_respond(p, ok_101, key, "Sec-WebSocket-Protocol: chat.v2\r\n");
    send_str(p, true, CN__WS_OP_TEXT, "hi");
    expect_str(p, CN__WS_OP_TEXT, "hi");
    peer_close(p);
    CN_ASSERT_EQ(e->connect_rc, 0);
    CN_ASSERT_STREQ(e->subprotocol, "chat.v2");
    CN_ASSERT_EQ(status, 101);

    static const char *bad[] = {
        /* wrong accept */
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n%.0s%s\r\n",
        /* not 101 */
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Accept: %s\r\n%s\r\n",
        /* no Upgrade */
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: %s\r\n%s\r\n",
        /* no Connection: upgrade */
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Accept: %s\r\n%s\r\n",
    };
    static const int statuses[] = {101, 200, 101, 101};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0] + 2; i++) {
        p = peer_new(e);
        peer_accept_request(p, key);
        if (i < 4) {
            peer_respond(p, bad[i], key, "");
        } else if (i == 4) { /* a subprotocol not offered */
            peer_respond(p, ok_101, key, "Sec-WebSocket-Protocol: other\r\n");
        } else { /* an extension imposed */
            peer_respond(p, ok_101, key, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
        }
        CN_ASSERT_EQ(cn_event_wait(&e->done, soon()), 0);
        CN_ASSERT_EQ(e->connect_rc, CN_EWS_HANDSHAKE);
        CN_ASSERT_EQ(status, i < 4 ? statuses[i] : 101);
        peer_done(p);
    }
}

static void client_handshake_checks_response(void)
{
    run_client(client_handshake_main);
}

/* ---- coronet client against coronet server, broadcast, wss
 * ----------------------------------------------------------- */

struct hub {
    struct cn_tcp_listener *l;
    struct cn_ws *conns[8];
    int n;
    struct cn_event ready;
    struct cn_event stop;
    struct cn_tls_ctx *tls;
};

static int hub_handler(struct cn_http_server_conn *c, const struct cn_http_request *req, void *arg)
{
    struct hub *h = arg;
    struct cn_ws *ws;
    CN_ASSERT_EQ(cn_ws_accept(&ws, c, req, NULL, soon()), 0);
    h->conns[h->n++] = ws;
    if (h->n == 3) {
        cn_event_set(&h->ready);
    }
    cn_event_wait(&h->stop, soon());
    return 0;
}

static int hub_serve(void *arg)
{
    struct hub *h = arg;
    struct cn_http_serve_opts o = {.tls = h->tls};
    cn_http_serve(h->l, hub_handler, h, &o);
    return 0;
}

static int broadcast_main(void *arg)
{
    struct hub h = {0};
    (void)arg;
    CN_ASSERT_EQ(cn_tcp_listen(&h.l, "127.0.0.1", 0, NULL), 0);
    struct cn_co *srv;
    CN_ASSERT_EQ(cn_spawn(&srv, hub_serve, &h, NULL), 0);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", cn_tcp_listener_port(h.l));
    struct cn_ws *cl[3];
    for (int i = 0; i < 3; i++) {
        CN_ASSERT_EQ(cn_ws_connect(&cl[i], url, NULL, soon()), 0);
    }
    CN_ASSERT_EQ(cn_event_wait(&h.ready, soon()), 0);
    uint8_t *big = pattern(100000);
    struct cn_ws_frame *f[2];
    CN_ASSERT_EQ(cn_ws_frame_new(&f[0], CN_WS_TEXT, "news", 4), 0);
    CN_ASSERT_EQ(cn_ws_frame_new(&f[1], CN_WS_BINARY, big, 100000), 0);
    CN_ASSERT_EQ(cn_ws_send_frame(cl[0], f[0], soon()), -EINVAL); /* clients must mask */
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 3; i++) {
            CN_ASSERT_EQ(cn_ws_send_frame(h.conns[i], f[k], soon()), 0);
        }
        cn_ws_frame_free(f[k]);
    }
    for (int i = 0; i < 3; i++) {
        struct cn_ws_msg m;
        CN_ASSERT_EQ(cn_ws_recv(cl[i], &m, soon()), 0);
        CN_ASSERT_EQ(m.type, CN_WS_TEXT);
        CN_ASSERT_EQ(m.len, 4);
        CN_ASSERT_MEMEQ(m.data, "news", 4);
        CN_ASSERT_EQ(cn_ws_recv(cl[i], &m, soon()), 0);
        CN_ASSERT_EQ(m.type, CN_WS_BINARY);
        CN_ASSERT_EQ(m.len, 100000);
        CN_ASSERT_MEMEQ(m.data, big, 100000);
    }
    free(big);
    /* the server closes 0, the client closes 1 and 2 */
    struct cn_ws_msg m;
    CN_ASSERT_EQ(cn_ws_send_close(h.conns[0], 1001, "going", 5, soon()), 0);
    CN_ASSERT_EQ(cn_ws_recv(cl[0], &m, soon()), CN_EWS_CLOSED);
    CN_ASSERT_EQ(cn_ws_close_code(cl[0]), 1001);
    CN_ASSERT_EQ(cn_ws_recv(h.conns[0], &m, soon()), CN_EWS_CLOSED);
    CN_ASSERT_EQ(cn_ws_close(h.conns[0], 0, NULL, 0, soon()), 0);
    CN_ASSERT_EQ(cn_ws_close(cl[0], 0, NULL, 0, soon()), 0);
    for (int i = 1; i < 3; i++) {
        CN_ASSERT_EQ(cn_ws_send_close(cl[i], 1000, NULL, 0, soon()), 0);
        CN_ASSERT_EQ(cn_ws_recv(h.conns[i], &m, soon()), CN_EWS_CLOSED);
        CN_ASSERT_EQ(cn_ws_close(h.conns[i], 0, NULL, 0, soon()), 0);
        CN_ASSERT_EQ(cn_ws_close(cl[i], 0, NULL, 0, soon()), 0);
    }
    cn_event_set(&h.stop);
    cn_cancel(srv);
    CN_ASSERT_EQ(cn_join(srv, NULL, -1), 0);
    cn_tcp_listener_close(h.l);
    return 0;
}

static void broadcast_frame_reaches_every_connection(void)
{
    CN_ASSERT_EQ(cn_test_run(broadcast_main, NULL), 0);
}

/* Client masks: 1000 frames, keys all different (a repeat among 1000 random
 * 32-bit keys has probability ~1e-4: tolerate one). */
static void masks_main(struct env *e)
{
    struct peer *p = peer_open(e);
    uint32_t keys[1000];
    for (int i = 0; i < 1000; i++) {
        send_str(p, true, CN__WS_OP_TEXT, "m");
        CN_ASSERT_EQ(fill(p, 6), 0);
        const uint8_t *h = p->in + p->start;
        CN_ASSERT_EQ(h[1], 0x81);
        memcpy(&keys[i], h + 2, 4);
        expect_str(p, CN__WS_OP_TEXT, "m");
    }
    int repeats = 0;
    for (int i = 0; i < 1000; i++) {
        for (int j = 0; j < i; j++) {
            repeats += keys[i] == keys[j];
        }
    }
    CN_ASSERT_LE(repeats, 1);
    peer_close(p);
}

static void client_masks_every_frame_with_fresh_key(void)
{
    run_client(masks_main);
}

CN_TEST_MAIN(
    CN_CASE(server_lengths), CN_CASE(client_lengths), CN_CASE(server_lengths_chunked),
    CN_CASE(client_lengths_chunked), CN_CASE(server_byte_by_byte), CN_CASE(client_byte_by_byte),
    CN_CASE(server_recv_timeouts_resume), CN_CASE(client_recv_timeouts_resume),
    CN_CASE(server_ping_echoed), CN_CASE(client_ping_echoed), CN_CASE(server_ping_126_bytes_fails),
    CN_CASE(client_ping_126_bytes_fails), CN_CASE(server_unsolicited_pong_ignored),
    CN_CASE(client_unsolicited_pong_ignored), CN_CASE(server_ten_pings_answered_in_order),
    CN_CASE(client_ten_pings_answered_in_order), CN_CASE(server_reserved_bits_fail),
    CN_CASE(client_reserved_bits_fail), CN_CASE(server_reserved_opcodes_fail),
    CN_CASE(client_reserved_opcodes_fail), CN_CASE(server_text_in_three_fragments),
    CN_CASE(client_text_in_three_fragments), CN_CASE(server_pings_between_fragments_answered),
    CN_CASE(client_pings_between_fragments_answered),
    CN_CASE(server_continuation_without_start_fails),
    CN_CASE(client_continuation_without_start_fails),
    CN_CASE(server_data_frame_inside_fragmented_message_fails),
    CN_CASE(client_data_frame_inside_fragmented_message_fails),
    CN_CASE(server_fragmented_control_fails), CN_CASE(client_fragmented_control_fails),
    CN_CASE(server_utf8_split_across_fragments), CN_CASE(client_utf8_split_across_fragments),
    CN_CASE(server_utf8_invalid_fails_1007), CN_CASE(client_utf8_invalid_fails_1007),
    CN_CASE(server_utf8_fails_fast_mid_message), CN_CASE(client_utf8_fails_fast_mid_message),
    CN_CASE(server_utf8_fails_fast_mid_frame), CN_CASE(client_utf8_fails_fast_mid_frame),
    CN_CASE(server_close_codes_echoed), CN_CASE(client_close_codes_echoed),
    CN_CASE(server_close_invalid_codes_fail), CN_CASE(client_close_invalid_codes_fail),
    CN_CASE(server_close_payload_rules), CN_CASE(client_close_payload_rules),
    CN_CASE(server_data_then_close), CN_CASE(client_data_then_close),
    CN_CASE(server_iut_initiated_close), CN_CASE(client_iut_initiated_close),
    CN_CASE(server_close_deadline_then_drop), CN_CASE(client_close_deadline_then_drop),
    CN_CASE(server_eof_without_close), CN_CASE(client_eof_without_close),
    CN_CASE(server_message_over_max_fails_1009), CN_CASE(client_message_over_max_fails_1009),
    CN_CASE(server_frame_over_max_fails_1009), CN_CASE(client_frame_over_max_fails_1009),
    CN_CASE(server_wrong_masking_fails), CN_CASE(client_wrong_masking_fails),
    CN_CASE(server_idle_ping_without_pong_drops), CN_CASE(client_idle_ping_without_pong_drops),
    CN_CASE(server_handshake_refuses_bad_requests), CN_CASE(server_handshake_hook_refuses_401),
    CN_CASE(server_handshake_subprotocol_server_preference),
    CN_CASE(client_handshake_checks_response), CN_CASE(broadcast_frame_reaches_every_connection),
    CN_CASE(client_masks_every_frame_with_fresh_key))
