/* SPDX-License-Identifier: MIT */
/*
 * Coalesced server replies ("Coalescing" in ws/ws_conn.c). A raw client
 * pipelines hand-made masked frames to a coronet server whose handler
 * echoes them, and checks what comes back frame by frame: every reply
 * arrives even when the handler goes to wait on something else right after
 * a reply it held back (sleep, channel, yield), the order on the wire is
 * the order of the calls (echoes, pongs, the close), and nothing is lost or
 * reordered when the socket is full and flushes are partial. White-box
 * checks (the handler's struct cn_ws) prove each case took the path it is
 * about: a reply really was held back, a flusher really was stuck
 * mid-write. No timed assertions: a reply that never comes fails a read at
 * its deadline.
 */
#define _GNU_SOURCE
#include "test.h"

#include "runtime/internal.h"
#include "ws/codec.h"
#include "ws/ws_internal.h"

enum { LONG_MS = 10000 };

static int64_t soon(void)
{
    return cn_now() + LONG_MS;
}

/* ---- the park hook (runtime) ---------------------------------------------------------- */

static void count_hook(void *arg)
{
    (*(int *)arg)++;
}

static int hook_at_end(void *arg)
{
    CN_ASSERT(cn__park_hook_set(count_hook, arg));
    return 0;
}

static int hook_main(void *arg)
{
    (void)arg;
    int n = 0, other = 0;
    CN_ASSERT(cn__park_hook_set(count_hook, &n));
    CN_ASSERT(!cn__park_hook_set(count_hook, &other)); /* one pending hook per coroutine */
    CN_ASSERT(cn__park_hook_set(count_hook, &n));      /* the same one again is fine */
    CN_ASSERT_EQ(cn__park(0, 0), -ETIMEDOUT);          /* returns at once: no park, no hook */
    CN_ASSERT_EQ(n, 0);
    CN_ASSERT_EQ(cn_sleep(1), 0);
    CN_ASSERT_EQ(n, 1);
    CN_ASSERT_EQ(cn_sleep(1), 0); /* one shot */
    CN_ASSERT_EQ(n, 1);
    CN_ASSERT(cn__park_hook_set(count_hook, &n));
    CN_ASSERT_EQ(cn_yield(), 0);
    CN_ASSERT_EQ(n, 2);
    CN_ASSERT(cn__park_hook_set(count_hook, &n));
    cn__park_hook_clear(&other); /* not the pending one: stays */
    cn__park_hook_clear(&n);
    CN_ASSERT_EQ(cn_sleep(1), 0);
    CN_ASSERT_EQ(n, 2);
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, hook_at_end, &n, NULL), 0);
    CN_ASSERT_EQ(cn_join(co, NULL, soon()), 0);
    CN_ASSERT_EQ(n, 3); /* ending gives up the thread too */
    CN_ASSERT(cn__park_hook_set(count_hook, &other));
    cn__park_hook_clear(&other);
    return 0;
}

static void park_hook_runs_once_when_the_coroutine_gives_up_the_thread(void)
{
    CN_ASSERT_EQ(cn_test_run(hook_main, NULL), 0);
}

/* ---- the server under test ----------------------------------------------------------- */

enum mode {
    M_ECHO,           /* echo every message */
    M_ECHO_THEN_PARK, /* echo the first message, wait elsewhere (park), then echo on */
    M_ECHO_YIELDING,  /* yield after every echo, noting a flusher stuck mid-write */
    M_CLOSE_ON_BYE,   /* echo; a "bye" message makes the handler close */
};

enum park_kind { PARK_SLEEP, PARK_CHAN, PARK_YIELD };

struct env {
    enum mode mode;
    enum park_kind park;
    struct cn_tls_ctx *tls; /* server context for wss, or NULL */
    struct cn_tcp_listener *l;
    int port;
    struct cn_co *server;
    struct cn_co *handler;
    struct cn_ws *ws;     /* the handler's connection while it runs */
    size_t held;          /* M_ECHO_THEN_PARK: bytes held back when the handler parked */
    struct cn_chan *go;   /* PARK_CHAN: the handler waits here */
    bool released;        /* PARK_YIELD: the handler yields until this is set */
    int flusher_stuck;    /* M_ECHO_YIELDING: times a flusher was found mid-write */
    struct cn_event done; /* the handler has ended */
    int recv_rc;
    int close_rc;
};

static int park_once(struct env *e)
{
    int x;
    switch (e->park) {
    case PARK_SLEEP:
        return cn_sleep(LONG_MS * 6); /* the test cancels it */
    case PARK_CHAN:
        return cn_chan_recv(e->go, &x, soon());
    default:
        while (!e->released) {
            cn_yield();
        }
        return 0;
    }
}

/* What the handler does after an echo, by mode. */
static int after_echo(struct env *e, struct cn_ws *ws, bool *parked)
{
    if (e->mode == M_ECHO_THEN_PARK && !*parked) {
        *parked = true;
        e->held = ws->olen;
        return park_once(e);
    }
    if (e->mode == M_ECHO_YIELDING) {
        cn_yield();
        /* the flusher the yield started runs first: still there, it is
         * parked in a write the socket could not take whole */
        e->flusher_stuck += ws->flusher != NULL;
    }
    return 0;
}

static bool is_bye(const struct cn_ws_msg *m)
{
    return m->len == 3 && memcmp(m->data, "bye", 3) == 0;
}

static void serve_ws(struct env *e, struct cn_ws *ws)
{
    e->ws = ws;
    e->handler = cn_self();
    bool parked = false;
    int rc;
    for (;;) {
        struct cn_ws_msg m;
        rc = cn_ws_recv(ws, &m, soon());
        if (rc < 0) {
            break;
        }
        if (e->mode == M_CLOSE_ON_BYE && is_bye(&m)) {
            e->ws = NULL;
            e->close_rc = cn_ws_close(ws, 1000, "bye", 3, soon());
            cn_event_set(&e->done);
            return;
        }
        rc = cn_ws_send(ws, m.type, m.data, m.len, e->mode == M_ECHO ? -1 : soon());
        if (rc == 0) {
            rc = after_echo(e, ws, &parked);
        }
        if (rc < 0) {
            break;
        }
    }
    e->recv_rc = rc;
    e->ws = NULL;
    e->close_rc = cn_ws_close(ws, 1000, NULL, 0, soon());
    cn_event_set(&e->done);
}

static int handler(struct cn_http_server_conn *c, const struct cn_http_request *req, void *arg)
{
    struct cn_ws *ws;
    if (cn_ws_accept(&ws, c, req, NULL, soon()) == 0) {
        serve_ws(arg, ws);
    }
    return 0;
}

static int serve_main(void *arg)
{
    struct env *e = arg;
    struct cn_http_serve_opts o = {.tls = e->tls};
    cn_http_serve(e->l, handler, e, &o);
    return 0;
}

static void env_start(struct env *e)
{
    CN_ASSERT_EQ(cn_tcp_listen(&e->l, "127.0.0.1", 0, NULL), 0);
    e->port = cn_tcp_listener_port(e->l);
    CN_ASSERT_EQ(cn_chan_new(&e->go, sizeof(int), 1), 0);
    CN_ASSERT_EQ(cn_spawn(&e->server, serve_main, e, NULL), 0);
}

static void env_stop(struct env *e)
{
    cn_cancel(e->server);
    CN_ASSERT_EQ(cn_join(e->server, NULL, -1), 0);
    cn_tcp_listener_close(e->l);
    cn_chan_free(e->go);
}

/* ---- the raw client ------------------------------------------------------------------ */

struct peer {
    struct cn_stream *s;
    uint8_t *in; /* buffered input in[start, end) */
    size_t start, end, cap;
};

struct frame {
    int op;
    bool fin;
    size_t len;
    const uint8_t *data; /* valid until the next read */
};

static void peer_open(struct env *e, struct peer *p, struct cn_tls_ctx *ctls)
{
    memset(p, 0, sizeof *p);
    p->cap = 256 * 1024;
    p->in = malloc(p->cap);
    CN_ASSERT(p->in != NULL);
    CN_ASSERT_EQ(cn_tcp_connect(&p->s, "127.0.0.1", e->port, NULL, soon()), 0);
    if (ctls) {
        struct cn_stream *tcp = p->s;
        CN_ASSERT_EQ(cn_tls_connect(&p->s, ctls, tcp, "localhost", soon()), 0);
    }
    static const char req[] =
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    CN_ASSERT_EQ(cn_stream_write(p->s, req, sizeof req - 1, soon()), 0);
    char head[1024];
    size_t n = 0;
    while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) { /* byte by byte: no overread */
        CN_ASSERT_LT(n, sizeof head);
        CN_ASSERT_EQ(cn_stream_read_exact(p->s, head + n, 1, soon()), 1);
        n++;
    }
    CN_ASSERT_EQ(memcmp(head, "HTTP/1.1 101 ", 13), 0);
}

static void peer_free(struct peer *p)
{
    cn_stream_close(p->s);
    free(p->in);
}

/* Appends one masked client frame to out; returns its size. */
static size_t encode(uint8_t *out, int op, const void *data, size_t len)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t hl = cn__ws_encode_header(out, true, op, true, key, len);
    if (len) {
        memcpy(out + hl, data, len);
        cn__ws_mask(out + hl, len, key, 0);
    }
    return hl + len;
}

static int fill(struct peer *p, size_t need, int64_t deadline)
{
    while (p->end - p->start < need) {
        if (p->start > 0) {
            memmove(p->in, p->in + p->start, p->end - p->start);
            p->end -= p->start;
            p->start = 0;
        }
        CN_ASSERT_LE(need, p->cap);
        ssize_t n = cn_stream_read(p->s, p->in + p->end, p->cap - p->end, deadline);
        if (n <= 0) {
            return n == 0 ? CN_EOF : (int)n;
        }
        p->end += (size_t)n;
    }
    return 0;
}

/* Reads one server frame (unmasked, as the server must send). */
static int read_frame(struct peer *p, struct frame *f, int64_t deadline)
{
    int rc = fill(p, 2, deadline);
    if (rc < 0) {
        return rc;
    }
    size_t len7 = p->in[p->start + 1] & 0x7F;
    CN_ASSERT_EQ(p->in[p->start + 1] & 0x80, 0);
    size_t hl = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
    if ((rc = fill(p, hl, deadline)) < 0) {
        return rc;
    }
    uint64_t len = len7;
    for (size_t i = 2; len7 >= 126 && i < hl; i++) {
        len = (i == 2 ? 0 : len << 8) | p->in[p->start + i];
    }
    if ((rc = fill(p, hl + (size_t)len, deadline)) < 0) {
        return rc;
    }
    f->op = p->in[p->start] & 0x0F;
    f->fin = (p->in[p->start] & 0x80) != 0;
    f->len = (size_t)len;
    f->data = p->in + p->start + hl;
    p->start += hl + (size_t)len;
    return 0;
}

static void expect(struct peer *p, int op, const void *data, size_t len, int64_t deadline)
{
    struct frame f;
    CN_ASSERT_EQ(read_frame(p, &f, deadline), 0);
    CN_ASSERT_EQ(f.op, op);
    CN_ASSERT(f.fin);
    CN_ASSERT_EQ(f.len, len);
    CN_ASSERT_MEMEQ(f.data, data, len);
}

/* The server's close with code (and reason), then the end of the stream. */
static void expect_close_then_eof(struct peer *p, unsigned code, const char *reason)
{
    uint8_t want[32] = {(uint8_t)(code >> 8), (uint8_t)code};
    size_t rl = strlen(reason);
    memcpy(want + 2, reason, rl);
    expect(p, CN__WS_OP_CLOSE, want, 2 + rl, soon());
    struct frame f;
    int rc = read_frame(p, &f, soon());
    CN_ASSERT(rc == CN_EOF || rc == -ECONNRESET);
}

/* Sends a close and expects its echo and the end of the stream. */
static void close_from_client(struct peer *p)
{
    uint8_t b[16];
    uint8_t code[2] = {0x03, 0xe8};
    CN_ASSERT_EQ(cn_stream_write(p->s, b, encode(b, CN__WS_OP_CLOSE, code, 2), soon()), 0);
    expect_close_then_eof(p, 1000, "");
}

/* ---- a reply held back, then the handler waits elsewhere -------------------------------- */

struct park_case {
    enum park_kind park;
    bool tls;
    char certs[256];
};

static int park_main(void *arg)
{
    struct park_case *pc = arg;
    struct env e = {.mode = M_ECHO_THEN_PARK, .park = pc->park};
    struct cn_tls_ctx *ctls = NULL;
    if (pc->tls) {
        char crt[300], key[300];
        snprintf(crt, sizeof crt, "%s/server.pem", pc->certs);
        snprintf(key, sizeof key, "%s/server.key", pc->certs);
        struct cn_tls_server_opts so = {.cert_file = crt, .key_file = key};
        struct cn_tls_client_opts co = {.dangerously_skip_verification = true};
        CN_ASSERT_EQ(cn_tls_server_ctx_new(&e.tls, &so), 0);
        CN_ASSERT_EQ(cn_tls_client_ctx_new(&ctls, &co), 0);
    }
    env_start(&e);
    struct peer p;
    peer_open(&e, &p, ctls);
    /* two messages in one write: when the first is echoed the second is
     * already buffered, so the echo is held back; then the handler parks */
    uint8_t b[64];
    size_t n = encode(b, CN__WS_OP_TEXT, "one", 3);
    n += encode(b + n, CN__WS_OP_TEXT, "two", 3);
    CN_ASSERT_EQ(cn_stream_write(p.s, b, n, soon()), 0);
    /* the handler's park lasts until we release it, and we release it
     * only after the echo came: a held-back echo that waits for the
     * handler's next receive fails this read at its deadline */
    expect(&p, CN__WS_OP_TEXT, "one", 3, cn_now() + LONG_MS / 2);
    CN_ASSERT_GT(e.held, 0); /* it really was held back */
    if (pc->park == PARK_SLEEP) {
        cn_cancel(e.handler); /* the sleep ends cancelled: the handler closes */
        CN_ASSERT_EQ(cn_event_wait(&e.done, soon()), 0);
        CN_ASSERT_EQ(e.recv_rc, -ECANCELED);
    } else {
        int one = 1;
        CN_ASSERT_EQ(cn_chan_send(e.go, &one, soon()), 0);
        e.released = true;
        expect(&p, CN__WS_OP_TEXT, "two", 3, soon());
        close_from_client(&p);
        CN_ASSERT_EQ(cn_event_wait(&e.done, soon()), 0);
        CN_ASSERT_EQ(e.recv_rc, CN_EWS_CLOSED);
        CN_ASSERT_EQ(e.close_rc, 0);
    }
    peer_free(&p);
    env_stop(&e);
    cn_tls_ctx_free(e.tls);
    cn_tls_ctx_free(ctls);
    return 0;
}

/* Throwaway certificates from tests/net/certs.sh, as the TLS tests make them. */
static void certs_make(char *dir, size_t size)
{
    const char *root = getenv("CN_SOURCE_ROOT");
    if (!root) {
        CN_TEST_SKIP_BECAUSE("CN_SOURCE_ROOT is not set");
    }
    if (system("openssl version >/dev/null 2>&1") != 0) {
        CN_TEST_SKIP_BECAUSE("no openssl command");
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/cn-cork-XXXXXX", tmp ? tmp : "/tmp");
    CN_ASSERT(mkdtemp(dir) != NULL);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/net/certs.sh' '%s'", root, dir);
    CN_ASSERT_EQ(system(cmd), 0);
}

static void certs_remove(const char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CN_ASSERT_EQ(system(cmd), 0);
}

static void run_park(enum park_kind k, bool tls)
{
    struct park_case pc = {.park = k, .tls = tls};
    if (tls) {
        certs_make(pc.certs, sizeof pc.certs);
    }
    CN_ASSERT_EQ(cn_test_run(park_main, &pc), 0);
    if (tls) {
        certs_remove(pc.certs);
    }
}

static void held_back_echo_leaves_while_handler_sleeps(void)
{
    run_park(PARK_SLEEP, false);
}

static void held_back_echo_leaves_while_handler_waits_on_channel(void)
{
    run_park(PARK_CHAN, false);
}

static void held_back_echo_leaves_while_handler_yields(void)
{
    run_park(PARK_YIELD, false);
}

static void held_back_echo_leaves_while_handler_waits_on_channel_tls(void)
{
    run_park(PARK_CHAN, true);
}

/* ---- order: pipelined echoes, pongs and the close ----------------------------------------- */

enum { ORDER_FRAMES = 3000 };

/* Frame i of the order test: a ping every fifth, else text of a size that
 * varies across the held-back limit (CN__WS_CORK_MAX); each starts with
 * its number when it has room. */
static size_t order_payload(int i, char *buf, int *op)
{
    static const size_t sizes[] = {0,   5, 125, 126, 1000, CN__WS_CORK_MAX, CN__WS_CORK_MAX + 1,
                                   9000};
    *op = i % 5 == 4 ? CN__WS_OP_PING : CN__WS_OP_TEXT;
    size_t len = *op == CN__WS_OP_PING ? 16 : sizes[i % 8];
    memset(buf, 'a' + i % 26, len);
    if (len >= 6) {
        char num[16];
        snprintf(num, sizeof num, "%06d", i);
        memcpy(buf, num, 6);
    }
    return len;
}

struct writer {
    struct peer *p;
    int frames;
};

/* Sends the frames then a close, in writes of odd sizes so frames split
 * anywhere across the server's reads. */
static int order_writer(void *arg)
{
    struct writer *w = arg;
    size_t cap = (size_t)(w->frames + 1) * (9000 + CN__WS_MAX_HEADER);
    uint8_t *all = malloc(cap);
    CN_ASSERT(all != NULL);
    char pl[9000];
    size_t n = 0;
    for (int i = 0; i < w->frames; i++) {
        int op;
        size_t len = order_payload(i, pl, &op);
        n += encode(all + n, op, pl, len);
    }
    uint8_t code[2] = {0x03, 0xe8};
    n += encode(all + n, CN__WS_OP_CLOSE, code, 2);
    static const size_t chunks[] = {1, 3, 700, 4096, 5000, 65536, 17, 200000};
    for (size_t off = 0, k = 0; off < n; k++) {
        size_t c = chunks[k % 8] < n - off ? chunks[k % 8] : n - off;
        CN_ASSERT_EQ(cn_stream_write(w->p->s, all + off, c, soon()), 0);
        off += c;
    }
    free(all);
    return 0;
}

static void order_case(struct env *e, struct cn_tls_ctx *ctls)
{
    env_start(e);
    struct peer p;
    peer_open(e, &p, ctls);
    struct writer w = {&p, ORDER_FRAMES};
    struct cn_co *wco;
    CN_ASSERT_EQ(cn_spawn(&wco, order_writer, &w, NULL), 0);
    char pl[9000];
    for (int i = 0; i < ORDER_FRAMES; i++) {
        int op;
        size_t len = order_payload(i, pl, &op);
        expect(&p, op == CN__WS_OP_PING ? CN__WS_OP_PONG : op, pl, len, soon());
    }
    expect_close_then_eof(&p, 1000, "");
    CN_ASSERT_EQ(cn_join(wco, NULL, soon()), 0);
    CN_ASSERT_EQ(cn_event_wait(&e->done, soon()), 0);
    CN_ASSERT_EQ(e->recv_rc, CN_EWS_CLOSED);
    CN_ASSERT_EQ(e->close_rc, 0);
    peer_free(&p);
    env_stop(e);
}

static int order_main(void *arg)
{
    (void)arg;
    struct env e = {.mode = M_ECHO};
    order_case(&e, NULL);
    return 0;
}

static void pipelined_echoes_pongs_and_close_keep_their_order(void)
{
    CN_ASSERT_EQ(cn_test_run(order_main, NULL), 0);
}

static int order_tls_main(void *arg)
{
    const char *dir = arg;
    char crt[300], key[300];
    snprintf(crt, sizeof crt, "%s/server.pem", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    struct cn_tls_server_opts so = {.cert_file = crt, .key_file = key};
    struct cn_tls_client_opts co = {.dangerously_skip_verification = true};
    struct env e = {.mode = M_ECHO};
    struct cn_tls_ctx *ctls;
    CN_ASSERT_EQ(cn_tls_server_ctx_new(&e.tls, &so), 0);
    CN_ASSERT_EQ(cn_tls_client_ctx_new(&ctls, &co), 0);
    order_case(&e, ctls);
    cn_tls_ctx_free(e.tls);
    cn_tls_ctx_free(ctls);
    return 0;
}

static void pipelined_echoes_pongs_and_close_keep_their_order_tls(void)
{
    char dir[256];
    certs_make(dir, sizeof dir);
    CN_ASSERT_EQ(cn_test_run(order_tls_main, dir), 0);
    certs_remove(dir);
}

/* The handler closes while its echoes are held back: they leave first. */
static int close_main(void *arg)
{
    (void)arg;
    struct env e = {.mode = M_CLOSE_ON_BYE};
    env_start(&e);
    struct peer p;
    peer_open(&e, &p, NULL);
    uint8_t b[128];
    size_t n = 0;
    n += encode(b + n, CN__WS_OP_TEXT, "a", 1);
    n += encode(b + n, CN__WS_OP_BINARY, "bb", 2);
    n += encode(b + n, CN__WS_OP_PING, "p", 1);
    n += encode(b + n, CN__WS_OP_TEXT, "ccc", 3);
    n += encode(b + n, CN__WS_OP_TEXT, "bye", 3);
    CN_ASSERT_EQ(cn_stream_write(p.s, b, n, soon()), 0);
    expect(&p, CN__WS_OP_TEXT, "a", 1, soon());
    expect(&p, CN__WS_OP_BINARY, "bb", 2, soon());
    expect(&p, CN__WS_OP_PONG, "p", 1, soon());
    expect(&p, CN__WS_OP_TEXT, "ccc", 3, soon());
    uint8_t want[5] = {0x03, 0xe8, 'b', 'y', 'e'};
    expect(&p, CN__WS_OP_CLOSE, want, 5, soon());
    uint8_t code[2] = {0x03, 0xe8};
    CN_ASSERT_EQ(cn_stream_write(p.s, b, encode(b, CN__WS_OP_CLOSE, code, 2), soon()), 0);
    CN_ASSERT_EQ(cn_event_wait(&e.done, soon()), 0);
    CN_ASSERT_EQ(e.close_rc, 0);
    struct frame f;
    int rc = read_frame(&p, &f, soon());
    CN_ASSERT(rc == CN_EOF || rc == -ECONNRESET);
    peer_free(&p);
    env_stop(&e);
    return 0;
}

static void close_after_held_back_echoes_sends_them_first(void)
{
    CN_ASSERT_EQ(cn_test_run(close_main, NULL), 0);
}

/* ---- a full socket: partial flushes -------------------------------------------------------- */

enum {
    BIG_MSG = 3000,                 /* under CN__WS_CORK_MAX: every echo may be held back */
    PHASE_BYTES = 24 * 1024 * 1024, /* more than loopback's socket buffers hold both ways */
    MAX_PHASES = 8,
};

static void big_payload(uint32_t seq, uint8_t *out)
{
    for (size_t i = 0; i < BIG_MSG; i++) {
        out[i] = (uint8_t)(seq * 131 + i * 7);
    }
    memcpy(out, &seq, 4);
}

struct big_writer {
    struct peer *p;
    uint32_t first, count;
    bool done;
};

static int big_writer_main(void *arg)
{
    struct big_writer *w = arg;
    enum { BATCH = 20 };
    uint8_t *buf = malloc(BATCH * (BIG_MSG + 16));
    uint8_t pl[BIG_MSG];
    CN_ASSERT(buf != NULL);
    for (uint32_t i = 0; i < w->count;) {
        size_t n = 0;
        for (int k = 0; k < BATCH && i < w->count; k++, i++) {
            big_payload(w->first + i, pl);
            n += encode(buf + n, CN__WS_OP_BINARY, pl, BIG_MSG);
        }
        int rc = cn_stream_write(w->p->s, buf, n, soon());
        if (rc < 0) {
            break; /* the cancel case: the server went away */
        }
    }
    free(buf);
    w->done = true;
    return 0;
}

/* Starts writing count messages; returns once the server found a flusher
 * stuck mid-write (the socket full both ways, since nobody reads the
 * echoes yet), the writer finished, or a bound passed: the handler's own
 * write may be the one that blocked, and then nothing moves until we read. */
static struct cn_co *flood(struct env *e, struct big_writer *w)
{
    struct cn_co *co;
    int stuck = e->flusher_stuck;
    CN_ASSERT_EQ(cn_spawn(&co, big_writer_main, w, NULL), 0);
    for (int i = 0; i < 400 && e->flusher_stuck == stuck && !w->done; i++) {
        cn_sleep(5);
    }
    return co;
}

static int partial_main(void *arg)
{
    (void)arg;
    struct env e = {.mode = M_ECHO_YIELDING};
    env_start(&e);
    struct peer p;
    peer_open(&e, &p, NULL);
    uint32_t per_phase = PHASE_BYTES / BIG_MSG, seq = 0;
    uint8_t want[BIG_MSG];
    for (int phase = 0; phase < MAX_PHASES && e.flusher_stuck == 0; phase++) {
        struct big_writer w = {&p, seq, per_phase, false};
        struct cn_co *co = flood(&e, &w);
        for (uint32_t i = 0; i < per_phase; i++, seq++) {
            big_payload(seq, want);
            expect(&p, CN__WS_OP_BINARY, want, BIG_MSG, soon());
        }
        CN_ASSERT_EQ(cn_join(co, NULL, soon()), 0);
    }
    CN_ASSERT_GT(e.flusher_stuck, 0); /* a flush really was partial */
    close_from_client(&p);
    CN_ASSERT_EQ(cn_event_wait(&e.done, soon()), 0);
    CN_ASSERT_EQ(e.recv_rc, CN_EWS_CLOSED);
    CN_ASSERT_EQ(e.close_rc, 0);
    peer_free(&p);
    env_stop(&e);
    return 0;
}

static void stress_partial_flushes_keep_every_byte_in_order(void)
{
    CN_ASSERT_EQ(cn_test_run(partial_main, NULL), 0);
}

/* The server is stopped while a flusher is stuck mid-write: the handler's
 * close stops the flusher and frees everything (ASan checks the rest). */
static int cancel_main(void *arg)
{
    (void)arg;
    struct env e = {.mode = M_ECHO_YIELDING};
    env_start(&e);
    struct peer p;
    peer_open(&e, &p, NULL);
    struct big_writer w = {&p, 0, PHASE_BYTES / BIG_MSG, false};
    struct cn_co *co = NULL;
    for (int phase = 0; phase < MAX_PHASES && e.flusher_stuck == 0; phase++) {
        if (co) { /* the handler itself blocked: drain and try again */
            while (!w.done) {
                struct frame f;
                CN_ASSERT_EQ(read_frame(&p, &f, soon()), 0);
            }
            CN_ASSERT_EQ(cn_join(co, NULL, soon()), 0);
            w.done = false;
        }
        co = flood(&e, &w);
    }
    CN_ASSERT_GT(e.flusher_stuck, 0);
    CN_ASSERT(e.ws != NULL && e.ws->flusher != NULL);
    cn_cancel(e.handler);
    CN_ASSERT_EQ(cn_event_wait(&e.done, soon()), 0);
    /* the writer ends when the server's end is gone */
    CN_ASSERT_EQ(cn_join(co, NULL, soon()), 0);
    peer_free(&p);
    env_stop(&e);
    return 0;
}

static void cancel_with_flush_in_flight_frees_everything(void)
{
    CN_ASSERT_EQ(cn_test_run(cancel_main, NULL), 0);
}

/* ---- idle connections hold no buffers --------------------------------------------------- */

/* Base-size buffers go after a quiet while, twice (they come back in
 * between), and a small message leaves none behind. */
static int idle_main(void *arg)
{
    (void)arg;
    struct env e = {.mode = M_ECHO};
    env_start(&e);
    struct peer p;
    peer_open(&e, &p, NULL);
    static uint8_t big[10000], frame[10100];
    memset(big, 'x', sizeof big);
    for (int round = 0; round < 2; round++) {
        size_t n = encode(frame, CN__WS_OP_BINARY, big, sizeof big);
        n += encode(frame + n, CN__WS_OP_TEXT, "small", 5);
        CN_ASSERT_EQ(cn_stream_write(p.s, frame, n, soon()), 0);
        expect(&p, CN__WS_OP_BINARY, big, sizeof big, soon());
        expect(&p, CN__WS_OP_TEXT, "small", 5, soon());
        CN_ASSERT(e.ws != NULL);
        /* waits for the quiet connection to give its buffers back */
        int64_t limit = soon();
        while ((e.ws->rbuf || e.ws->obuf) && cn_now() < limit) {
            cn_sleep(20);
        }
        CN_ASSERT(e.ws->rbuf == NULL && e.ws->obuf == NULL && e.ws->mbuf == NULL);
    }
    /* a small message needs no base-size buffer, and none is kept: the
     * handler went from its echo straight to the next wait (no park in
     * between), so it is waiting already */
    size_t n = encode(frame, CN__WS_OP_TEXT, "tiny", 4);
    CN_ASSERT_EQ(cn_stream_write(p.s, frame, n, soon()), 0);
    expect(&p, CN__WS_OP_TEXT, "tiny", 4, soon());
    CN_ASSERT(e.ws->rbuf == NULL && e.ws->obuf == NULL);
    close_from_client(&p);
    CN_ASSERT_EQ(cn_event_wait(&e.done, soon()), 0);
    peer_free(&p);
    env_stop(&e);
    return 0;
}

static void idle_connection_gives_its_buffers_back(void)
{
    CN_ASSERT_EQ(cn_test_run(idle_main, NULL), 0);
}

CN_TEST_MAIN(CN_CASE(park_hook_runs_once_when_the_coroutine_gives_up_the_thread),
             CN_CASE(held_back_echo_leaves_while_handler_sleeps),
             CN_CASE(held_back_echo_leaves_while_handler_waits_on_channel),
             CN_CASE(held_back_echo_leaves_while_handler_yields),
             CN_CASE(held_back_echo_leaves_while_handler_waits_on_channel_tls),
             CN_CASE(pipelined_echoes_pongs_and_close_keep_their_order),
             CN_CASE(pipelined_echoes_pongs_and_close_keep_their_order_tls),
             CN_CASE(close_after_held_back_echoes_sends_them_first),
             CN_CASE(stress_partial_flushes_keep_every_byte_in_order),
             CN_CASE(cancel_with_flush_in_flight_frees_everything),
             CN_CASE(idle_connection_gives_its_buffers_back))
