/* SPDX-License-Identifier: MIT */
/*
 * A WebSocket connection after the opening handshake: frames in and out,
 * messages, control frames, the closing handshake (RFC 6455 §5-§7).
 *
 * Receive path. Bytes are read in large chunks into rbuf and frames are
 * parsed out of it in place. A data frame's header is consumed as soon as
 * it parses (in_frame, cur); its payload starts at rstart. Every byte of
 * payload is unmasked and, for text, fed to the UTF-8 validator as soon as
 * it arrives (cur_off counts those), so an invalid byte fails the connection
 * before the rest of the frame or message is sent (fail fast, §8.1). In
 * whole mode (cn_ws_recv) the frame stays in rbuf until complete (rbuf grows
 * to the frame size) and a single-frame message is returned as a view into
 * rbuf; fragments of a longer message are copied into mbuf. In chunked mode
 * (cn_ws_recv_chunk) the buffered part of a frame is handed out at once.
 * Control frames are always read whole (at most 139 bytes) and handled
 * inside the receive call.
 *
 * An idle connection holds no buffers. A read with none lands in a small
 * stack buffer and rbuf is then allocated as large as what arrived; a
 * connection that reads on grows it to the base size. Waiting with nothing
 * unread and no frame or message midway, a small rbuf is freed at once and
 * base-size buffers (rbuf, mbuf, obuf, sbuf) after IDLE_MS, their pages
 * handed back to the kernel. (Freeing base-size buffers at every wait cost
 * the streaming cases a write per batch: the first read after it is only
 * as large as the stack buffer.)
 *
 * Send path. Writers pass a FIFO gate one at a time (wbusy, wq), so frames
 * never interleave and nobody barges past a writer already waiting. A
 * server frame is one cn_stream_writev (header on the stack, the caller's
 * payload). A client frame is masked through the scratch buffer sbuf,
 * possibly in several writes, all inside the gate.
 *
 * Coalescing (server). A small frame sent by the coroutine that reads this
 * connection while more input is already buffered (so its next receive
 * will not wait for the socket) is held back in obuf instead of written:
 * the replies to pipelined messages then leave in one write, as the last
 * reply (or the next read) flushes them. Frames are held back only while
 * the gate is free, and whoever takes the gate writes them first, so the
 * order on the wire is the order of the calls; pongs are held back like
 * data, close frames never. The sender may go and wait for something else
 * instead of receiving: a before-park hook (cn__park_hook_set) fires when
 * it gives up the thread and hands obuf, with the gate, to a short-lived
 * "ws-flush" coroutine that writes it; that is also how frames leave when
 * the writer that finds them has a shorter deadline than theirs (a write
 * cut short by a deadline tears the stream down, so nobody writes them
 * under a deadline shorter than their own sends'). The hook only spawns:
 * it runs inside cn__park and must not park. Frames held back are lost
 * only with the stream: a failed flush fails the connection (flush_failed),
 * since their sends already returned 0. This uses nothing but the stream
 * interface (ordered writes; one reader and one writer at a time may run
 * concurrently), so it holds for TCP, TLS and the HTTP prefix stream alike.
 *
 * Invariants: err, once set, is returned by every later receive and send;
 * sent_close means no data frame may leave any more (§5.5.1); rmode is IDLE
 * between messages, and only then do the buffers shrink; olen > 0 with the
 * gate free only while the coroutine that held them back runs, with its
 * park hook set.
 */
#include "ws/ws_internal.h"

#include "runtime/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/rand.h>

enum {
    DEF_MAX_MSG = 16 * 1024 * 1024,
    DEF_PONG_MS = 10000,
    CLOSE_SEND_MS = 1000, /* bound on the close frame sent when failing or echoing */
    CLIENT_EOF_MS = 1000, /* a closing client waits this long for the server's FIN */
    SCRATCH_MAX = 64 * 1024,
    COMPACT_TAIL = 4096, /* move unread bytes to the front when less room is left */
    MASK_POOL = 64,      /* masking keys fetched per RAND_bytes call */
    /* an idle read's stack buffer: at least net/tcp.c's direct-read size
     * (1 KiB) so the kernel still copies straight into it, and room for a
     * 1 KiB message with its header */
    IDLE_READ = 2048,
    IDLE_MS = 1000,   /* a connection quiet for this long gives its buffers back */
    GATE_WAITING = 1, /* a gate waiter's rc until the gate is handed to it */
};

struct piece {
    int op; /* the message's opcode */
    const uint8_t *p;
    size_t len;
    bool msg_fin; /* last piece of the message */
};

/* ---- construction ------------------------------------------------------------ */

int cn__ws_new(struct cn_ws **out, struct cn_stream *s, bool server, const struct cn_ws_opts *o)
{
    struct cn_ws *ws = calloc(1, sizeof *ws);
    if (!ws) {
        return -ENOMEM;
    }
    ws->s = s;
    ws->server = server;
    ws->pflags = server ? CN__WS_SERVER : 0;
    ws->max_msg = o && o->max_message_size ? o->max_message_size : DEF_MAX_MSG;
    ws->max_frame =
        o && o->max_frame_size && o->max_frame_size < ws->max_msg ? o->max_frame_size : ws->max_msg;
    ws->ping_ms = o && o->ping_interval_ms > 0 ? o->ping_interval_ms : 0;
    ws->pong_ms = o && o->pong_timeout_ms > 0 ? o->pong_timeout_ms : DEF_PONG_MS;
    ws->peer_code = CN__WS_CLOSE_ABNORMAL;
    ws->last_rx = cn_now();
    *out = ws;
    return 0;
}

int cn_ws_wrap(struct cn_ws **out, struct cn_stream *s, bool server, const struct cn_ws_opts *opts)
{
    int rc = cn__ws_new(out, s, server, opts);
    if (rc < 0) {
        cn_stream_close(s);
    }
    return rc;
}

const char *cn_ws_subprotocol(const struct cn_ws *ws)
{
    return ws->subprotocol;
}

unsigned cn_ws_close_code(const struct cn_ws *ws)
{
    return ws->peer_code;
}

const char *cn_ws_close_reason(const struct cn_ws *ws, size_t *len)
{
    *len = ws->peer_reason_len;
    return (const char *)ws->peer_reason;
}

/* ---- the write gate ------------------------------------------------------------------ */

/* Takes the gate. A gate left by its holder goes straight to the oldest
 * parked writer (FIFO, no barging), as the stream itself serves writers. */
static int gate_enter(struct cn_ws *ws, int64_t deadline)
{
    if (cn_cancelled()) {
        return -ECANCELED;
    }
    if (!ws->wbusy) {
        ws->wbusy = true;
        if (ws->olen) {
            cn__park_hook_clear(ws); /* this coroutine held them back: they leave with us */
        }
        return 0;
    }
    struct cn__waiter w = {.co = cn__current(), .rc = GATE_WAITING};
    cn__waitq_push(&ws->wq, &w);
    int rc = cn__park(deadline, 0);
    cn__waitq_remove(&w);
    return w.rc == 0 ? 0 : rc; /* handed over just before a deadline: ours anyway */
}

static void gate_exit(struct cn_ws *ws)
{
    struct cn__waiter *w = cn__waitq_pop_parked(&ws->wq);
    if (!w) {
        ws->wbusy = false;
        return;
    }
    w->rc = 0;
    cn__wake(w->co, 0);
}

/* ---- coalescing (server) --------------------------------------------------------------- */

/* True if a write bounded by d can carry frames whose sends were bounded by
 * held (-1: none) without cutting them short. */
static bool covers(int64_t d, int64_t held)
{
    return d < 0 || (held >= 0 && d >= held);
}

static int64_t earliest(int64_t a, int64_t b)
{
    if (a < 0 || b < 0) {
        return a < 0 ? b : a;
    }
    return a < b ? a : b;
}

/* Held-back frames did not all leave, yet their sends returned 0: the
 * connection cannot keep its order any more, so it fails. */
static void flush_failed(struct cn_ws *ws, int rc)
{
    if (!ws->err) {
        ws->err = rc == -ETIMEDOUT || rc == -ECANCELED ? CN_EBROKEN : rc;
    }
}

/* One writev: the held-back frames first, then b. */
static int write_out(struct cn_ws *ws, const uv_buf_t *b, size_t n, int64_t deadline)
{
    uv_buf_t v[3];
    size_t k = 0;
    if (ws->olen) {
        v[k++] = uv_buf_init((char *)ws->obuf, (unsigned)ws->olen);
    }
    for (size_t i = 0; i < n; i++) {
        v[k++] = b[i];
    }
    int rc = cn_stream_writev(ws->s, v, k, deadline);
    if (rc < 0 && ws->olen) {
        flush_failed(ws, rc);
    }
    ws->olen = 0;
    return rc;
}

/* Writes obuf for an owner that cannot (see "Coalescing"), then passes the
 * gate on. The closer (release) may be waiting for it to end. */
static int flusher_main(void *arg)
{
    struct cn_ws *ws = arg;
    write_out(ws, NULL, 0, ws->odl);
    ws->flusher = NULL;
    gate_exit(ws);
    if (ws->closer) {
        cn__wake(ws->closer, 0);
    }
    return 0;
}

/* Hands obuf and the gate the caller holds to a new flusher coroutine.
 * Never parks. */
static int hand_to_flusher(struct cn_ws *ws)
{
    static const struct cn_spawn_opts opts = {.name = "ws-flush"};
    struct cn_co *co;
    int rc = cn_spawn(&co, flusher_main, ws, &opts);
    if (rc < 0) {
        flush_failed(ws, rc);
        ws->olen = 0;
        gate_exit(ws);
        return rc;
    }
    cn_detach(co);
    ws->flusher = co;
    return 0;
}

/* The park hook: the coroutine that held frames back is about to wait for
 * something other than this connection's input. The gate is free (frames
 * are held back only then, and whoever takes it takes them). */
static void on_park(void *arg)
{
    struct cn_ws *ws = arg;
    ws->wbusy = true;
    hand_to_flusher(ws);
}

/* Holds b back if the sender reads this connection and its next receive
 * will find input already buffered; false: write it now. A deadline of 0
 * wants to know now whether the frame left, so it is never held. */
static bool cork(struct cn_ws *ws, const uv_buf_t *b, size_t n, size_t total, int64_t deadline)
{
    if (deadline == 0 || ws->wbusy || total > CN__WS_CORK_MAX + CN__WS_MAX_HEADER ||
        ws->olen + total > CN__WS_OBUF || ws->rend == ws->rstart || ws->rco != cn__current()) {
        return false;
    }
    if (!ws->obuf && !(ws->obuf = malloc(CN__WS_OBUF))) {
        return false;
    }
    if (!cn__park_hook_set(on_park, ws)) {
        return false; /* the coroutine holds frames back on another connection */
    }
    ws->odl = ws->olen ? earliest(ws->odl, deadline) : deadline;
    for (size_t i = 0; i < n; i++) {
        memcpy(ws->obuf + ws->olen, b[i].base, b[i].len);
        ws->olen += b[i].len;
    }
    return true;
}

/* Before the reader waits for the socket, held-back frames leave: written
 * here when the receive's deadline covers theirs, else by a flusher (a
 * receive that times out must leave the connection usable, and a write cut
 * short would not). A failure is the connection's (flush_failed). */
static void flush_for_read(struct cn_ws *ws, int64_t deadline)
{
    if (!ws->olen || ws->wbusy) {
        return; /* nothing held back, or a flusher has it */
    }
    cn__park_hook_clear(ws);
    ws->wbusy = true;
    if (cn_cancelled() || !covers(deadline, ws->odl)) {
        hand_to_flusher(ws);
        return;
    }
    write_out(ws, NULL, 0, deadline);
    gate_exit(ws);
}

/* Server frames (header and payload in b): held back, or through the gate
 * behind the frames held back before. */
static int put_frame(struct cn_ws *ws, const uv_buf_t *b, size_t n, bool corkable, int64_t deadline)
{
    size_t total = b[0].len + (n > 1 ? b[1].len : 0);
    if (corkable && cork(ws, b, n, total, deadline)) {
        return 0;
    }
    int rc = gate_enter(ws, deadline);
    if (rc == 0 && ws->olen && !covers(deadline, ws->odl)) {
        rc = hand_to_flusher(ws); /* they leave first, under their own deadline */
        if (rc == 0) {
            rc = gate_enter(ws, deadline);
        }
    }
    if (rc < 0) {
        return rc;
    }
    rc = write_out(ws, b, n, deadline);
    gate_exit(ws);
    return rc;
}

/* ---- sending frames --------------------------------------------------------------- */

/* Server: the header from the stack and the payload as given, one writev
 * (or held back; close frames never are). */
static int write_plain(struct cn_ws *ws, int op, bool fin, const void *p, size_t len,
                       int64_t deadline)
{
    uint8_t hdr[CN__WS_MAX_HEADER];
    size_t hl = cn__ws_encode_header(hdr, fin, op, false, NULL, len);
    uv_buf_t b[2] = {uv_buf_init((char *)hdr, (unsigned)hl), uv_buf_init((char *)p, (unsigned)len)};
    return put_frame(ws, b, len ? 2 : 1, op != CN__WS_OP_CLOSE, deadline);
}

/* A fresh masking key from a per-thread pool of CSPRNG output (§5.3: keys
 * must be unpredictable). The pool is thread-local and coroutines never
 * migrate, so no lock is needed. */
static __thread uint8_t mask_pool[MASK_POOL * 4];
static __thread unsigned mask_left;

static int next_mask(uint8_t key[4])
{
    if (mask_left == 0) {
        if (RAND_bytes(mask_pool, sizeof mask_pool) != 1) {
            return -EIO;
        }
        mask_left = MASK_POOL;
    }
    mask_left--;
    memcpy(key, mask_pool + mask_left * 4, 4);
    memset(mask_pool + mask_left * 4, 0, 4); /* a used key is never kept around */
    return 0;
}

static int scratch(struct cn_ws *ws, size_t want)
{
    if (want > SCRATCH_MAX) {
        want = SCRATCH_MAX;
    }
    if (ws->scap >= want) {
        return 0;
    }
    uint8_t *p = malloc(want < CN__WS_RBUF_BASE ? CN__WS_RBUF_BASE : want);
    if (!p) {
        return -ENOMEM;
    }
    free(ws->sbuf);
    ws->sbuf = p;
    ws->scap = want < CN__WS_RBUF_BASE ? CN__WS_RBUF_BASE : want;
    return 0;
}

/* Client: copies and masks the payload into sbuf, a chunk at a time; the
 * header leaves with the first chunk. The caller holds the gate. */
static int write_masked(struct cn_ws *ws, int op, bool fin, const uint8_t *p, size_t len,
                        int64_t deadline)
{
    uint8_t key[4];
    int rc = next_mask(key);
    if (rc < 0) {
        return rc;
    }
    uint8_t hdr[CN__WS_MAX_HEADER + CN__WS_MAX_CONTROL];
    size_t hl = cn__ws_encode_header(hdr, fin, op, true, key, len);
    if (len <= CN__WS_MAX_CONTROL) {
        if (len) {
            memcpy(hdr + hl, p, len); /* p may be NULL for an empty payload */
        }
        cn__ws_mask(hdr + hl, len, key, 0);
        return cn_stream_write(ws->s, hdr, hl + len, deadline);
    }
    rc = scratch(ws, len);
    size_t off = 0;
    while (rc == 0 && off < len) {
        size_t n = len - off < ws->scap ? len - off : ws->scap;
        memcpy(ws->sbuf, p + off, n);
        cn__ws_mask(ws->sbuf, n, key, off);
        uv_buf_t b[2] = {uv_buf_init((char *)hdr, (unsigned)hl),
                         uv_buf_init((char *)ws->sbuf, (unsigned)n)};
        rc = off == 0 ? cn_stream_writev(ws->s, b, 2, deadline)
                      : cn_stream_writev(ws->s, b + 1, 1, deadline);
        off += n;
    }
    return rc;
}

static int send_raw(struct cn_ws *ws, int op, bool fin, const void *p, size_t len, int64_t deadline)
{
    if (ws->server) {
        return write_plain(ws, op, fin, p, len, deadline);
    }
    int rc = gate_enter(ws, deadline);
    if (rc < 0) {
        return rc;
    }
    rc = write_masked(ws, op, fin, p, len, deadline);
    gate_exit(ws);
    return rc;
}

/* May a data or ping frame leave now? */
static int send_allowed(const struct cn_ws *ws)
{
    if (ws->err && ws->err != CN_EWS_CLOSED) {
        return ws->err;
    }
    return ws->sent_close ? CN_EWS_CLOSED : 0;
}

static int send_close_frame(struct cn_ws *ws, unsigned code, int64_t deadline)
{
    uint8_t out[CN__WS_MAX_CONTROL];
    int n = cn__ws_close_build(out, code, NULL, 0);
    ws->sent_close = true;
    return n < 0 ? n : send_raw(ws, CN__WS_OP_CLOSE, true, out, (size_t)n, deadline);
}

/* _Fail the WebSocket Connection_ (§7.1.7): a close with the status for err
 * (unless one was sent), then err for every later call. */
static int fail(struct cn_ws *ws, int err)
{
    if (ws->err) {
        return ws->err;
    }
    ws->err = err;
    if (!ws->sent_close && err <= CN_EWS_PROTOCOL && err >= CN_EWS_TOO_BIG) {
        send_close_frame(ws, cn__ws_close_status(err), cn_now() + CLOSE_SEND_MS);
    }
    return err;
}

/* A read failure: timeouts, cancels and -ENOMEM leave the connection usable. */
static int io_fail(struct cn_ws *ws, int rc)
{
    if (rc == -ETIMEDOUT || rc == -ECANCELED || rc == -ENOMEM) {
        return rc;
    }
    if (rc == CN_EWS_PING_TIMEOUT) {
        ws->sent_close = true; /* a dead peer gets no close frame: drop it */
    }
    return fail(ws, rc);
}

int cn_ws_send(struct cn_ws *ws, enum cn_ws_type type, const void *data, size_t len,
               int64_t deadline)
{
    int rc = send_allowed(ws);
    if (rc < 0) {
        return rc;
    }
    if ((type != CN_WS_TEXT && type != CN_WS_BINARY) || ws->send_op || len > UINT32_MAX) {
        return -EINVAL;
    }
    return send_raw(ws, (int)type, true, data, len, deadline);
}

int cn_ws_send_text(struct cn_ws *ws, const char *text, size_t len, int64_t deadline)
{
    return cn_ws_send(ws, CN_WS_TEXT, text, len, deadline);
}

int cn_ws_send_binary(struct cn_ws *ws, const void *data, size_t len, int64_t deadline)
{
    return cn_ws_send(ws, CN_WS_BINARY, data, len, deadline);
}

int cn_ws_send_fragment(struct cn_ws *ws, enum cn_ws_type type, const void *data, size_t len,
                        bool fin, int64_t deadline)
{
    int rc = send_allowed(ws);
    if (rc < 0) {
        return rc;
    }
    if (len > UINT32_MAX || (!ws->send_op && type != CN_WS_TEXT && type != CN_WS_BINARY)) {
        return -EINVAL;
    }
    int op = ws->send_op ? CN__WS_OP_CONT : (int)type;
    /* set before writing: a concurrent cn_ws_send queued behind this
     * fragment must already see the message as open */
    ws->send_op = fin ? 0 : (ws->send_op ? ws->send_op : (int)type);
    return send_raw(ws, op, fin, data, len, deadline);
}

int cn_ws_ping(struct cn_ws *ws, const void *payload, size_t len, int64_t deadline)
{
    int rc = send_allowed(ws);
    if (rc < 0) {
        return rc;
    }
    if (len > CN__WS_MAX_CONTROL) {
        return -EINVAL;
    }
    return send_raw(ws, CN__WS_OP_PING, true, payload, len, deadline);
}

int cn_ws_send_close(struct cn_ws *ws, unsigned code, const char *reason, size_t reason_len,
                     int64_t deadline)
{
    int rc = send_allowed(ws);
    if (rc < 0) {
        return rc;
    }
    uint8_t out[CN__WS_MAX_CONTROL];
    int n = cn__ws_close_build(out, code, reason, reason_len);
    if (n < 0) {
        return n;
    }
    ws->sent_close = true;
    return send_raw(ws, CN__WS_OP_CLOSE, true, out, (size_t)n, deadline);
}

/* ---- broadcast frames --------------------------------------------------------------- */

struct cn_ws_frame {
    size_t refs;
    size_t len;
    uint8_t bytes[];
};

int cn_ws_frame_new(struct cn_ws_frame **out, enum cn_ws_type type, const void *data, size_t len)
{
    if ((type != CN_WS_TEXT && type != CN_WS_BINARY) || len > UINT32_MAX - CN__WS_MAX_HEADER) {
        return -EINVAL;
    }
    uint8_t hdr[CN__WS_MAX_HEADER];
    size_t hl = cn__ws_encode_header(hdr, true, (int)type, false, NULL, len);
    struct cn_ws_frame *f = malloc(sizeof *f + hl + len);
    if (!f) {
        return -ENOMEM;
    }
    f->refs = 1;
    f->len = hl + len;
    memcpy(f->bytes, hdr, hl);
    if (len) {
        memcpy(f->bytes + hl, data, len);
    }
    *out = f;
    return 0;
}

struct cn_ws_frame *cn_ws_frame_ref(struct cn_ws_frame *f)
{
    f->refs++;
    return f;
}

void cn_ws_frame_free(struct cn_ws_frame *f)
{
    if (f && --f->refs == 0) {
        free(f);
    }
}

int cn_ws_send_frame(struct cn_ws *ws, const struct cn_ws_frame *f, int64_t deadline)
{
    int rc = send_allowed(ws);
    if (rc < 0) {
        return rc;
    }
    if (!ws->server || ws->send_op) {
        return -EINVAL;
    }
    uv_buf_t b = uv_buf_init((char *)f->bytes, (unsigned)f->len);
    return put_frame(ws, &b, 1, true, deadline);
}

/* ---- receive buffer ------------------------------------------------------------------ */

/* Makes room to hold `need` unread bytes from rstart, moving them to the
 * front when the tail is short and growing rbuf (up to a frame) if needed.
 * A buffer under the base size (what one idle read brought, see read_idle)
 * grows to the base first: a connection that reads on may be streaming. */
static int ensure_room(struct cn_ws *ws, size_t need)
{
    size_t unread = ws->rend - ws->rstart;
    if (ws->rstart > 0 && (ws->rstart + need > ws->rcap || ws->rcap - ws->rend < COMPACT_TAIL)) {
        memmove(ws->rbuf, ws->rbuf + ws->rstart, unread);
        ws->rstart = 0;
        ws->rend = unread;
    }
    if (ws->rstart + need <= ws->rcap && ws->rcap >= CN__WS_RBUF_BASE) {
        return 0;
    }
    size_t cap = need > CN__WS_RBUF_BASE ? (need + 4095) & ~(size_t)4095 : CN__WS_RBUF_BASE;
    uint8_t *p = realloc(ws->rbuf, cap);
    if (!p) {
        return -ENOMEM;
    }
    ws->rbuf = p;
    ws->rcap = cap;
    return 0;
}

/* Frees a buffer and gives its pages to the kernel first: malloc keeps
 * freed memory mapped, so free() alone leaves an idle connection's buffer
 * in the process's RSS. Only whole pages strictly inside the buffer go (the
 * allocator's own words sit at its ends); their contents are dead anyway. */
static void free_pages(void *p, size_t cap)
{
    if (p && cap >= 2 * 4096) { /* smaller: no whole page inside */
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t lo = ((uintptr_t)p + 64 + page - 1) & ~(page - 1);
        uintptr_t hi = ((uintptr_t)p + cap) & ~(page - 1);
        if (hi > lo) {
            madvise((void *)lo, hi - lo, MADV_DONTNEED);
        }
    }
    free(p);
}

/* Back to the base sizes between messages, once a big message is gone. */
static void shrink(struct cn_ws *ws)
{
    size_t unread = ws->rend - ws->rstart;
    if (ws->rcap > CN__WS_SHRINK_OVER && unread <= CN__WS_RBUF_BASE) {
        uint8_t *p = malloc(CN__WS_RBUF_BASE);
        if (p) {
            memcpy(p, ws->rbuf + ws->rstart, unread);
            free_pages(ws->rbuf, ws->rcap);
            ws->rbuf = p;
            ws->rcap = CN__WS_RBUF_BASE;
            ws->rstart = 0;
            ws->rend = unread;
        }
    }
    if (ws->mcap > CN__WS_SHRINK_OVER) {
        free_pages(ws->mbuf, ws->mcap);
        ws->mbuf = NULL;
        ws->mcap = 0;
    }
    ws->mlen = 0;
}

/* When the read must end to run the idle-ping timer, or -1. */
static int64_t ping_wake(const struct cn_ws *ws)
{
    if (ws->ping_ms <= 0) {
        return -1;
    }
    return ws->ping_at ? ws->ping_at + ws->pong_ms : ws->last_rx + ws->ping_ms;
}

static void drop_rbuf(struct cn_ws *ws)
{
    free_pages(ws->rbuf, ws->rcap);
    ws->rbuf = NULL;
    ws->rcap = ws->rstart = ws->rend = 0;
}

/* The connection has been idle (see read_more) for IDLE_MS and waits on
 * without buffers; the gate's holder may be writing obuf or sbuf, those
 * stay. Views from the last receive die here, as documented: this is the
 * next operation. */
static void drop_buffers(struct cn_ws *ws)
{
    drop_rbuf(ws);
    free_pages(ws->mbuf, ws->mcap);
    ws->mbuf = NULL;
    ws->mcap = ws->mlen = 0;
    if (!ws->wbusy && !ws->olen) {
        free_pages(ws->obuf, ws->obuf ? CN__WS_OBUF : 0);
        ws->obuf = NULL;
        free_pages(ws->sbuf, ws->scap);
        ws->sbuf = NULL;
        ws->scap = 0;
    }
}

static bool holds_buffers(const struct cn_ws *ws)
{
    return ws->rbuf || ws->mbuf || ws->obuf || ws->sbuf;
}

/* A read with no receive buffer lands on the stack; then rbuf is allocated
 * just as large as what came, so a small message costs a small allocation
 * (freed at the next wait) rather than a base-size buffer. The bytes are
 * consumed, so failing to keep them fails the connection. */
static ssize_t read_idle(struct cn_ws *ws, int64_t deadline)
{
    uint8_t first[IDLE_READ];
    ssize_t n = cn_stream_read(ws->s, first, sizeof first, deadline);
    if (n <= 0) {
        return n;
    }
    if (!(ws->rbuf = malloc((size_t)n))) {
        ws->err = -ENOMEM;
        return -ENOMEM;
    }
    memcpy(ws->rbuf, first, (size_t)n);
    ws->rcap = (size_t)n;
    ws->rstart = ws->rend = 0;
    return n;
}

static ssize_t read_some(struct cn_ws *ws, int64_t deadline)
{
    if (!ws->rbuf) {
        return read_idle(ws, deadline);
    }
    return cn_stream_read(ws->s, ws->rbuf + ws->rend, ws->rcap - ws->rend, deadline);
}

/* The idle ping is due: send it, or fail if the last one is unanswered. */
static int ping_due(struct cn_ws *ws)
{
    if (ws->ping_at) {
        return CN_EWS_PING_TIMEOUT;
    }
    ws->ping_at = cn_now();
    if (ws->sent_close) {
        return 0;
    }
    return send_raw(ws, CN__WS_OP_PING, true, NULL, 0, cn_now() + ws->pong_ms);
}

enum wake_why { WAKE_DEADLINE, WAKE_PING, WAKE_IDLE };

/* What ends the next read first: the caller's deadline, the idle ping, or
 * idle_at (-1: none), when a quiet connection gives its buffers back. */
static int64_t read_until(const struct cn_ws *ws, int64_t deadline, int64_t idle_at,
                          enum wake_why *why)
{
    int64_t t = deadline;
    int64_t ping = ping_wake(ws);
    *why = WAKE_DEADLINE;
    if (ping >= 0 && (t < 0 || ping < t)) {
        t = ping;
        *why = WAKE_PING;
    }
    if (idle_at >= 0 && (t < 0 || idle_at < t)) {
        t = idle_at;
        *why = WAKE_IDLE;
    }
    return t;
}

/* Reads more bytes (as many as fit) until at least one arrived, sending the
 * idle ping when the connection has been quiet for ping_interval_ms and
 * failing when its pong is late. Frames held back leave first, since this
 * read may wait. An idle connection (nothing unread, no frame or message
 * midway) waits without a small rbuf at once and keeps base-size buffers
 * for IDLE_MS, so a streaming one does not allocate per batch, then waits
 * without any. need: unread bytes wanted in total. */
static int read_more(struct cn_ws *ws, size_t need, int64_t deadline)
{
    flush_for_read(ws, deadline);
    bool idle = ws->rstart == ws->rend && !ws->in_frame && !ws->msg_op;
    if (idle && ws->rbuf && ws->rcap < CN__WS_RBUF_BASE) {
        drop_rbuf(ws); /* one small read's worth: waiting needs none */
    }
    int64_t idle_at = idle && holds_buffers(ws) ? cn_now() + IDLE_MS : -1;
    if (!idle || ws->rbuf) {
        int rc = ensure_room(ws, need);
        if (rc < 0) {
            return rc;
        }
    }
    for (;;) {
        if (ws->ping_at && cn_now() >= ping_wake(ws)) {
            return CN_EWS_PING_TIMEOUT; /* late, even if other data kept arriving */
        }
        enum wake_why why;
        ssize_t n = read_some(ws, read_until(ws, deadline, idle_at, &why));
        if (n > 0) {
            ws->rend += (size_t)n;
            ws->last_rx = cn_now();
            return 0;
        }
        if (n == 0) {
            return CN_EOF;
        }
        if (n != -ETIMEDOUT || why == WAKE_DEADLINE) {
            return (int)n;
        }
        if (why == WAKE_IDLE) {
            drop_buffers(ws);
            idle_at = -1;
            continue;
        }
        int rc = ping_due(ws);
        if (rc < 0) {
            return rc;
        }
    }
}

/* ---- control frames ----------------------------------------------------------------- */

/* The peer's close (§5.5.1): parse, remember, answer with its code. */
static int got_close(struct cn_ws *ws, const uint8_t *p, size_t len)
{
    unsigned code;
    const uint8_t *reason;
    size_t rlen;
    int rc = cn__ws_close_parse(p, len, &code, &reason, &rlen);
    if (rc < 0) {
        return fail(ws, rc);
    }
    ws->peer_code = code;
    memcpy(ws->peer_reason, reason, rlen);
    ws->peer_reason_len = rlen;
    ws->got_close = true;
    if (!ws->sent_close) {
        unsigned echo = code == CN__WS_CLOSE_NO_STATUS ? CN__WS_CLOSE_NORMAL : code;
        send_close_frame(ws, echo, cn_now() + CLOSE_SEND_MS);
    }
    ws->err = CN_EWS_CLOSED;
    return CN_EWS_CLOSED;
}

/* A whole control frame (hl header bytes at rstart): ping → pong with the
 * same payload (§5.5.2), pong → liveness, close → closing handshake. */
static int control(struct cn_ws *ws, const struct cn__ws_header *h, size_t hl, int64_t deadline)
{
    size_t total = hl + (size_t)h->len;
    while (ws->rend - ws->rstart < total) {
        int rc = read_more(ws, total, deadline);
        if (rc < 0) {
            return io_fail(ws, rc);
        }
    }
    uint8_t *p = ws->rbuf + ws->rstart + hl;
    if (h->masked) {
        cn__ws_mask(p, (size_t)h->len, h->mask, 0);
    }
    ws->rstart += total; /* p stays valid: nothing below reads into rbuf */
    switch (h->opcode) {
    case CN__WS_OP_PING:
        if (ws->sent_close) {
            return 0; /* no frame may follow our close */
        }
        /* bounded on its own: a deadline of 0 must not tear the stream */
        return send_raw(ws, CN__WS_OP_PONG, true, p, (size_t)h->len, cn_now() + ws->pong_ms);
    case CN__WS_OP_PONG:
        ws->ping_at = 0; /* unsolicited pongs are fine too (§5.5.3) */
        return 0;
    default:
        return got_close(ws, p, (size_t)h->len);
    }
}

/* ---- data frames ---------------------------------------------------------------------- */

/* A data frame header: fragmentation sequence (§5.4) and limits. */
static int start_data(struct cn_ws *ws, const struct cn__ws_header *h)
{
    if (h->opcode == CN__WS_OP_CONT && !ws->msg_op) {
        return fail(ws, CN_EWS_PROTOCOL); /* continuation with nothing to continue */
    }
    if (h->opcode != CN__WS_OP_CONT) {
        if (ws->msg_op) {
            return fail(ws, CN_EWS_PROTOCOL); /* a new message inside a fragmented one */
        }
        ws->msg_op = h->opcode;
        ws->msg_total = 0;
        cn__ws_utf8_init(&ws->utf8);
    }
    if (h->len > ws->max_frame || h->len > ws->max_msg - ws->msg_total) {
        return fail(ws, CN_EWS_TOO_BIG);
    }
    ws->msg_total += h->len;
    ws->cur = *h;
    ws->cur_off = 0;
    ws->in_frame = true;
    return 0;
}

/* Parses headers until a data frame starts, handling control frames. */
static int next_header(struct cn_ws *ws, int64_t deadline)
{
    for (;;) {
        size_t avail = ws->rend - ws->rstart;
        struct cn__ws_header h;
        int hl = avail ? cn__ws_parse_header(ws->rbuf + ws->rstart, avail, ws->pflags, &h) : 0;
        int rc;
        if (hl < 0) {
            return fail(ws, hl);
        }
        if (hl == 0) {
            rc = read_more(ws, avail + 1, deadline);
            if (rc < 0) {
                return io_fail(ws, rc);
            }
            continue;
        }
        if (h.opcode & 0x08) {
            rc = control(ws, &h, (size_t)hl, deadline);
            if (rc < 0) {
                return rc;
            }
            continue;
        }
        rc = start_data(ws, &h);
        if (rc == 0) {
            ws->rstart += (size_t)hl;
        }
        return rc;
    }
}

/* Unmasks and validates n new payload bytes at p. */
static int process(struct cn_ws *ws, uint8_t *p, size_t n)
{
    if (ws->cur.masked) {
        cn__ws_mask(p, n, ws->cur.mask, (size_t)(ws->cur_off & 3));
    }
    ws->cur_off += n;
    if (ws->msg_op == CN__WS_OP_TEXT && cn__ws_utf8_feed(&ws->utf8, p, n) < 0) {
        return fail(ws, CN_EWS_UTF8);
    }
    return 0;
}

/* The frame is done: at FIN the message ends, and text must end on a whole
 * code point. */
static int end_frame(struct cn_ws *ws, struct piece *pc)
{
    pc->op = ws->msg_op;
    pc->msg_fin = ws->cur.fin;
    ws->in_frame = false;
    if (!ws->cur.fin) {
        return 0;
    }
    ws->msg_op = 0;
    if (pc->op == CN__WS_OP_TEXT && !cn__ws_utf8_complete(&ws->utf8)) {
        return fail(ws, CN_EWS_UTF8);
    }
    return 0;
}

/* Whole mode: waits until the current frame is buffered, validating it as
 * it arrives, and returns its payload in place. */
static int frame_whole(struct cn_ws *ws, struct piece *pc, int64_t deadline)
{
    size_t len = (size_t)ws->cur.len;
    for (;;) {
        size_t avail = ws->rend - ws->rstart;
        size_t have = avail < len ? avail : len;
        if (have > ws->cur_off) {
            int rc = process(ws, ws->rbuf + ws->rstart + ws->cur_off, have - (size_t)ws->cur_off);
            if (rc < 0) {
                return rc;
            }
        }
        if (have == len) {
            break;
        }
        int rc = read_more(ws, len, deadline);
        if (rc < 0) {
            return io_fail(ws, rc);
        }
    }
    pc->p = ws->rbuf + ws->rstart;
    pc->len = len;
    ws->rstart += len;
    return end_frame(ws, pc);
}

/* Chunked mode: hands out whatever of the current frame is buffered. */
static int frame_chunk(struct cn_ws *ws, struct piece *pc, int64_t deadline)
{
    uint64_t left = ws->cur.len - ws->cur_off;
    if (left > 0 && ws->rend == ws->rstart) {
        int rc = read_more(ws, 1, deadline);
        if (rc < 0) {
            return io_fail(ws, rc);
        }
    }
    size_t avail = ws->rend - ws->rstart;
    size_t n = avail < left ? avail : (size_t)left;
    uint8_t *p = ws->rbuf ? ws->rbuf + ws->rstart : (uint8_t *)"";
    int rc = process(ws, p, n);
    if (rc < 0) {
        return rc;
    }
    ws->rstart += n;
    pc->p = p;
    pc->len = n;
    pc->op = ws->msg_op;
    pc->msg_fin = false;
    return ws->cur_off == ws->cur.len ? end_frame(ws, pc) : 0;
}

static int next_piece(struct cn_ws *ws, bool whole, struct piece *pc, int64_t deadline)
{
    if (!ws->in_frame) {
        int rc = next_header(ws, deadline);
        if (rc < 0) {
            return rc;
        }
    }
    return whole ? frame_whole(ws, pc, deadline) : frame_chunk(ws, pc, deadline);
}

/* ---- messages ------------------------------------------------------------------------- */

static int append(struct cn_ws *ws, const uint8_t *p, size_t n)
{
    if (ws->mlen + n > ws->mcap) {
        size_t cap = ws->mcap ? ws->mcap : 4096;
        while (cap < ws->mlen + n) {
            cap *= 2;
        }
        cap = cap > ws->max_msg ? ws->max_msg : cap;
        uint8_t *q = realloc(ws->mbuf, cap);
        if (!q) {
            return -ENOMEM;
        }
        ws->mbuf = q;
        ws->mcap = cap;
    }
    memcpy(ws->mbuf + ws->mlen, p, n);
    ws->mlen += n;
    return 0;
}

int cn_ws_recv(struct cn_ws *ws, struct cn_ws_msg *msg, int64_t deadline)
{
    if (ws->err) {
        return ws->err;
    }
    if (ws->rmode == CN__WS_CHUNKED) {
        return -EINVAL;
    }
    ws->rco = cn__current();
    if (ws->rmode == CN__WS_IDLE) {
        shrink(ws);
        ws->rmode = CN__WS_WHOLE;
    }
    for (;;) {
        struct piece pc;
        int rc = next_piece(ws, true, &pc, deadline);
        if (rc < 0) {
            return rc;
        }
        if (pc.msg_fin && ws->mlen == 0) {
            *msg = (struct cn_ws_msg){(enum cn_ws_type)pc.op, pc.p, pc.len, true};
            ws->rmode = CN__WS_IDLE;
            return 0;
        }
        if ((rc = append(ws, pc.p, pc.len)) < 0) {
            return rc;
        }
        if (pc.msg_fin) {
            *msg = (struct cn_ws_msg){(enum cn_ws_type)pc.op, ws->mbuf, ws->mlen, true};
            ws->rmode = CN__WS_IDLE;
            return 0;
        }
    }
}

int cn_ws_recv_chunk(struct cn_ws *ws, struct cn_ws_msg *msg, int64_t deadline)
{
    if (ws->err) {
        return ws->err;
    }
    if (ws->rmode == CN__WS_WHOLE) {
        return -EINVAL;
    }
    ws->rco = cn__current();
    if (ws->rmode == CN__WS_IDLE) {
        shrink(ws);
        ws->rmode = CN__WS_CHUNKED;
    }
    struct piece pc;
    int rc = next_piece(ws, false, &pc, deadline);
    if (rc < 0) {
        return rc;
    }
    *msg = (struct cn_ws_msg){(enum cn_ws_type)pc.op, pc.p, pc.len, pc.msg_fin};
    if (pc.msg_fin) {
        ws->rmode = CN__WS_IDLE;
    }
    return 0;
}

/* ---- closing ----------------------------------------------------------------------------- */

/* Reads and drops data until the peer's close arrives. */
static int await_close(struct cn_ws *ws, int64_t deadline)
{
    if (ws->rmode == CN__WS_WHOLE && ws->in_frame) {
        ws->rstart += (size_t)ws->cur_off; /* whole mode keeps unmasked bytes: drop them */
    }
    ws->rmode = CN__WS_CHUNKED;
    for (;;) {
        struct piece pc;
        int rc = next_piece(ws, false, &pc, deadline);
        if (rc == CN_EWS_CLOSED) {
            return 0;
        }
        if (rc < 0) {
            return rc;
        }
    }
}

/* A client lets the server close TCP first (§7.1.1): wait briefly for its FIN. */
static void await_eof(struct cn_ws *ws, int64_t deadline)
{
    int64_t limit = cn_now() + CLIENT_EOF_MS;
    if (deadline >= 0 && deadline < limit) {
        limit = deadline;
    }
    uint8_t sink[512];
    while (cn_stream_read(ws->s, sink, sizeof sink, limit) > 0) {
    }
}

/* Frames still held back mean the close failed before it could send them;
 * a flusher still running is stopped (its write fails at once) and waited
 * for, since it uses ws. */
static void release(struct cn_ws *ws)
{
    if (ws->olen && !ws->wbusy) {
        cn__park_hook_clear(ws);
        ws->olen = 0;
    }
    if (ws->flusher) {
        cn_cancel(ws->flusher);
        ws->closer = cn__current();
        while (ws->flusher) {
            cn__park(-1, CN__PARK_NOCANCEL);
        }
    }
    cn_stream_close(ws->s);
    free(ws->rbuf);
    free(ws->obuf);
    free(ws->mbuf);
    free(ws->sbuf);
    free(ws->subprotocol);
    free(ws);
}

int cn_ws_close(struct cn_ws *ws, unsigned code, const char *reason, size_t reason_len,
                int64_t deadline)
{
    if (!ws) {
        return 0;
    }
    int rc = ws->err && ws->err != CN_EWS_CLOSED ? ws->err : 0;
    if (rc == 0 && !ws->sent_close) {
        rc = cn_ws_send_close(ws, code, reason, reason_len, deadline);
    }
    if (rc == 0 && !ws->got_close) {
        rc = await_close(ws, deadline);
    }
    if (rc == 0 && !ws->server) {
        await_eof(ws, deadline);
    }
    release(ws);
    return rc;
}
