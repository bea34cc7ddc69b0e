/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket connection object, shared by ws_conn.c (frames, messages,
 * close), ws_server.c and ws_client.c (opening handshakes). Internal to ws/.
 */
#ifndef CORONET_WS_INTERNAL_H
#define CORONET_WS_INTERNAL_H

#include "coronet/ws.h"
#include "ws/codec.h"

enum {
    CN__WS_RBUF_BASE = 16 * 1024,   /* receive buffer size while messages are small */
    CN__WS_SHRINK_OVER = 64 * 1024, /* buffers past this shrink back at the next receive */
    CN__WS_OBUF = 16 * 1024,        /* server frames held back for one write, at most */
    CN__WS_CORK_MAX = 4 * 1024,     /* payloads up to this size may be held back */
};

/* Receive modes: nothing midway, a whole message midway (cn_ws_recv), a
 * chunked message midway (cn_ws_recv_chunk). */
enum cn__ws_rmode { CN__WS_IDLE, CN__WS_WHOLE, CN__WS_CHUNKED };

struct cn_ws {
    struct cn_stream *s;
    bool server;
    unsigned pflags; /* cn__ws_parse_header flags for our role */
    size_t max_msg;
    size_t max_frame;
    int64_t ping_ms; /* 0: no idle ping */
    int64_t pong_ms;
    char *subprotocol; /* owned, or NULL */

    /* receive buffer: unread bytes rbuf[rstart, rend) */
    uint8_t *rbuf;
    size_t rcap, rstart, rend;
    /* reassembly buffer for fragmented messages: mbuf[0, mlen) */
    uint8_t *mbuf;
    size_t mcap, mlen;
    enum cn__ws_rmode rmode;
    int msg_op;         /* opcode of the data message midway (TEXT/BINARY), 0 if none */
    uint64_t msg_total; /* payload bytes of that message so far, frames included */
    struct cn__ws_utf8 utf8;
    /* the data frame midway; its header is consumed, the payload starts at
     * rstart (whole mode: cur_off bytes there are already unmasked) */
    bool in_frame;
    struct cn__ws_header cur;
    uint64_t cur_off; /* payload bytes unmasked and validated so far */

    /* liveness (idle ping) */
    int64_t last_rx; /* loop time of the last received bytes */
    int64_t ping_at; /* when our idle ping left; 0 if none outstanding */

    /* send side: the write gate lets one writer at a time onto the stream,
     * in FIFO order, so frames never interleave and held-back frames leave
     * before any later one */
    bool wbusy;          /* the gate is held */
    struct cn__waitq wq; /* writers parked at the gate */
    uint8_t *sbuf;       /* client: masking scratch, lazily allocated */
    size_t scap;
    int send_op; /* opcode of the fragmented message being sent, 0 if none */
    /* held-back server frames (see "Coalescing" in ws_conn.c) */
    struct cn_co *rco;     /* the coroutine that last called a receive */
    uint8_t *obuf;         /* frames obuf[0, olen), allocated while needed */
    size_t olen;           /* 0 unless held back (gate free) or being flushed (gate held) */
    int64_t odl;           /* earliest deadline among the held-back sends, -1 none */
    struct cn_co *flusher; /* the coroutine writing obuf for its owner, or NULL */
    struct cn_co *closer;  /* release() waiting for the flusher to end */

    /* closing */
    bool sent_close;
    bool got_close;
    int err; /* sticky: a protocol failure or a dead stream */
    unsigned peer_code;
    uint8_t peer_reason[CN__WS_MAX_CLOSE_REASON];
    size_t peer_reason_len;
};

/* Allocates a connection around s (not taking s on failure). */
int cn__ws_new(struct cn_ws **out, struct cn_stream *s, bool server, const struct cn_ws_opts *o);

/* Case-sensitive search of token in a comma-separated list (subprotocols). */
bool cn__ws_list_has(const char *list, size_t len, const char *token);

#endif /* CORONET_WS_INTERNAL_H */
