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
 * Send path. A server frame is one cn_stream_writev (header on the stack,
 * the caller's payload), so concurrent senders never interleave: the stream
 * serves writers in order. A client frame is masked through the scratch
 * buffer sbuf, possibly in several writes, so client frames are serialised
 * by wlock.
 *
 * Invariants: err, once set, is returned by every later receive and send;
 * sent_close means no data frame may leave any more (§5.5.1); rmode is IDLE
 * between messages, and only then do the buffers shrink.
 */
#include "ws/ws_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

enum {
    DEF_MAX_MSG = 16 * 1024 * 1024,
    DEF_PONG_MS = 10000,
    CLOSE_SEND_MS = 1000, /* bound on the close frame sent when failing or echoing */
    CLIENT_EOF_MS = 1000, /* a closing client waits this long for the server's FIN */
    SCRATCH_MAX = 64 * 1024,
    COMPACT_TAIL = 4096, /* move unread bytes to the front when less room is left */
    MASK_POOL = 64,      /* masking keys fetched per RAND_bytes call */
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

/* ---- sending frames --------------------------------------------------------------- */

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

/* Server: the header from the stack and the payload as given, one writev. */
static int write_plain(struct cn_ws *ws, int op, bool fin, const void *p, size_t len,
                       int64_t deadline)
{
    uint8_t hdr[CN__WS_MAX_HEADER];
    size_t hl = cn__ws_encode_header(hdr, fin, op, false, NULL, len);
    uv_buf_t b[2] = {uv_buf_init((char *)hdr, (unsigned)hl), uv_buf_init((char *)p, (unsigned)len)};
    return cn_stream_writev(ws->s, b, len ? 2 : 1, deadline);
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
 * header leaves with the first chunk. The caller holds wlock. */
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
    int rc = cn_mutex_lock(&ws->wlock, deadline);
    if (rc < 0) {
        return rc;
    }
    rc = write_masked(ws, op, fin, p, len, deadline);
    cn_mutex_unlock(&ws->wlock);
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
    return cn_stream_write(ws->s, f->bytes, f->len, deadline);
}

/* ---- receive buffer ------------------------------------------------------------------ */

/* Makes room to hold `need` unread bytes from rstart, moving them to the
 * front when the tail is short and growing rbuf (up to a frame) if needed. */
static int ensure_room(struct cn_ws *ws, size_t need)
{
    size_t unread = ws->rend - ws->rstart;
    if (!ws->rbuf) {
        size_t cap = need > CN__WS_RBUF_BASE ? need : CN__WS_RBUF_BASE;
        if (!(ws->rbuf = malloc(cap))) {
            return -ENOMEM;
        }
        ws->rcap = cap;
    }
    if (ws->rstart > 0 && (ws->rstart + need > ws->rcap || ws->rcap - ws->rend < COMPACT_TAIL)) {
        memmove(ws->rbuf, ws->rbuf + ws->rstart, unread);
        ws->rstart = 0;
        ws->rend = unread;
    }
    if (ws->rstart + need > ws->rcap) {
        size_t cap = (need + 4095) & ~(size_t)4095;
        uint8_t *p = realloc(ws->rbuf, cap);
        if (!p) {
            return -ENOMEM;
        }
        ws->rbuf = p;
        ws->rcap = cap;
    }
    return 0;
}

/* Back to the base sizes between messages, once a big message is gone. */
static void shrink(struct cn_ws *ws)
{
    size_t unread = ws->rend - ws->rstart;
    if (ws->rcap > CN__WS_SHRINK_OVER && unread <= CN__WS_RBUF_BASE) {
        uint8_t *p = malloc(CN__WS_RBUF_BASE);
        if (p) {
            memcpy(p, ws->rbuf + ws->rstart, unread);
            free(ws->rbuf);
            ws->rbuf = p;
            ws->rcap = CN__WS_RBUF_BASE;
            ws->rstart = 0;
            ws->rend = unread;
        }
    }
    if (ws->mcap > CN__WS_SHRINK_OVER) {
        free(ws->mbuf);
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

/* Reads more bytes (as many as fit) until at least one arrived, sending the
 * idle ping when the connection has been quiet for ping_interval_ms and
 * failing when its pong is late. need: unread bytes wanted in total. */
static int read_more(struct cn_ws *ws, size_t need, int64_t deadline)
{
    int rc = ensure_room(ws, need);
    if (rc < 0) {
        return rc;
    }
    for (;;) {
        int64_t wake = ping_wake(ws);
        if (ws->ping_at && cn_now() >= wake) {
            return CN_EWS_PING_TIMEOUT; /* late, even if other data kept arriving */
        }
        bool timer = wake >= 0 && (deadline < 0 || wake < deadline);
        ssize_t n = cn_stream_read(ws->s, ws->rbuf + ws->rend, ws->rcap - ws->rend,
                                   timer ? wake : deadline);
        if (n > 0) {
            ws->rend += (size_t)n;
            ws->last_rx = cn_now();
            return 0;
        }
        if (n == 0) {
            return CN_EOF;
        }
        if (n != -ETIMEDOUT || !timer) {
            return (int)n;
        }
        if (ws->ping_at) {
            return CN_EWS_PING_TIMEOUT;
        }
        ws->ping_at = cn_now();
        if (!ws->sent_close) {
            rc = send_raw(ws, CN__WS_OP_PING, true, NULL, 0, cn_now() + ws->pong_ms);
            if (rc < 0) {
                return rc;
            }
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

static void release(struct cn_ws *ws)
{
    cn_stream_close(ws->s);
    free(ws->rbuf);
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
