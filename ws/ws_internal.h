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

    /* send side */
    struct cn_mutex wlock; /* client: one frame at a time through sbuf */
    uint8_t *sbuf;         /* client: masking scratch, lazily allocated */
    size_t scap;
    int send_op; /* opcode of the fragmented message being sent, 0 if none */

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
