/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket codec (RFC 6455), internal to the ws/ layer and its fuzzers.
 *
 * Pure functions on bytes: no I/O, no coroutine, no heap (the handshake
 * helpers call OpenSSL, which may allocate internally). Every parser reads
 * at most `len` bytes of its input, never past it, and can be fed a prefix:
 * it answers "need more" (frame header) or "ok so far" (UTF-8) until it has
 * seen enough to decide. Errors are negative CN_EWS_* codes, one per rule,
 * so the connection layer can pick the close status (cn__ws_close_status).
 *
 * Users: ws/ client and server (frame I/O, close handshake, upgrade) and
 * fuzz/ws_frame.c.
 */
#ifndef CORONET_WS_CODEC_H
#define CORONET_WS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coronet/runtime.h"

/* ---- frames ---------------------------------------------------------- */

/* Opcodes (RFC 6455 §5.2). 3-7 and 0xB-0xF are reserved. */
enum {
    CN__WS_OP_CONT = 0x0,
    CN__WS_OP_TEXT = 0x1,
    CN__WS_OP_BINARY = 0x2,
    CN__WS_OP_CLOSE = 0x8,
    CN__WS_OP_PING = 0x9,
    CN__WS_OP_PONG = 0xA,
};

/* Or'ed into cn__ws_encode_header's opcode argument to set RSV1 ("per-message
 * compressed", RFC 7692 §6). Bit 6 of the first byte, where it goes. */
#define CN__WS_RSV1 0x40

#define CN__WS_MAX_HEADER 14   /* 2 + 8 extended length + 4 mask key */
#define CN__WS_MAX_CONTROL 125 /* RFC 6455 §5.5 */
#define CN__WS_MAX_CLOSE_REASON 123

/* Flags for cn__ws_parse_header. */
enum {
    /* We are the server: every frame must be masked (§5.1). Without it we
     * are the client and every frame must be unmasked. */
    CN__WS_SERVER = 1u << 0,
    /* An extension using RSV1 (permessage-deflate) was negotiated: RSV1 is
     * allowed on the first frame of a data message, still not on control
     * frames or continuations (RFC 7692 §6.1). RSV2/RSV3 stay errors. */
    CN__WS_ALLOW_RSV1 = 1u << 1,
};

struct cn__ws_header {
    uint64_t len;    /* payload length, < 2^63 */
    uint8_t mask[4]; /* masking key; zeros when !masked */
    uint8_t opcode;  /* CN__WS_OP_* */
    bool fin;
    bool rsv1, rsv2, rsv3;
    bool masked;
};

/* Parses a frame header from p[0..len). Returns the header length (2..14:
 * the payload starts at p + rc), 0 if more bytes are needed, or an error as
 * soon as the bytes seen break a rule, even before the header is complete.
 * Rules are checked in this order: RSV bits, opcode, control FIN, mask bit
 * against the role, control length, length encoding. The payload length
 * limit is the caller's (CN_EWS_TOO_BIG). *h is written only on success.
 * Errors: CN_EWS_RSV, CN_EWS_OPCODE, CN_EWS_CONTROL_FRAG, CN_EWS_UNMASKED,
 * CN_EWS_MASKED, CN_EWS_CONTROL_LEN, CN_EWS_LENGTH. */
int cn__ws_parse_header(const uint8_t *p, size_t len, unsigned flags, struct cn__ws_header *h);

/* Writes a frame header with the minimal length encoding (§5.2) and returns
 * its length (2..14). opcode is CN__WS_OP_*, optionally | CN__WS_RSV1; mask
 * is read only when masked (4 bytes). len must be < 2^63. */
size_t cn__ws_encode_header(uint8_t out[14], bool fin, int opcode, bool masked,
                            const uint8_t mask[4], uint64_t len);

/* XORs data[0..len) with the masking key in place (§5.3), starting at key
 * byte offset % 4: a payload unmasked in several chunks passes the count of
 * payload bytes before each chunk. Masking and unmasking are the same call.
 * Any alignment and length. */
void cn__ws_mask(uint8_t *data, size_t len, const uint8_t key[4], size_t offset);

/* ---- UTF-8 ------------------------------------------------------------- */

/* Incremental validator for text messages: zero-initialise (or
 * cn__ws_utf8_init) at the start of each message, feed every fragment's
 * unmasked payload, and check cn__ws_utf8_complete at FIN. */
struct cn__ws_utf8 {
    uint8_t state; /* DFA state, 0 = between code points, 1 = rejected */
};

static inline void cn__ws_utf8_init(struct cn__ws_utf8 *st)
{
    st->state = 0;
}

/* Validates p[0..len) as the continuation of what st has seen. Returns 0 if
 * everything so far can still be (or is) valid UTF-8, or CN_EWS_UTF8 as soon
 * as a byte cannot be: overlong forms, surrogates U+D800..U+DFFF, code points
 * past U+10FFFF, stray continuation bytes, and a truncated sequence at the
 * first byte that cannot continue it. A code point split across calls is
 * fine. After an error st stays rejected. Errors: CN_EWS_UTF8. */
int cn__ws_utf8_feed(struct cn__ws_utf8 *st, const uint8_t *p, size_t len);

/* True if st is not in the middle of a code point (nor rejected): the text
 * message may end here. */
bool cn__ws_utf8_complete(const struct cn__ws_utf8 *st);

/* One-shot: p[0..len) is complete, valid UTF-8. */
bool cn__ws_utf8_valid(const uint8_t *p, size_t len);

/* ---- close frames -------------------------------------------------------- */

/* Status codes (§7.4.1) and the pseudo-code for an empty close payload. */
enum {
    CN__WS_CLOSE_NORMAL = 1000,
    CN__WS_CLOSE_GOING_AWAY = 1001,
    CN__WS_CLOSE_PROTOCOL = 1002,
    CN__WS_CLOSE_UNSUPPORTED = 1003,
    CN__WS_CLOSE_NO_STATUS = 1005, /* never on the wire: the payload was empty */
    CN__WS_CLOSE_ABNORMAL = 1006,  /* never on the wire: no close frame at all */
    CN__WS_CLOSE_INVALID_DATA = 1007,
    CN__WS_CLOSE_POLICY = 1008,
    CN__WS_CLOSE_TOO_BIG = 1009,
    CN__WS_CLOSE_EXTENSION = 1010,
    CN__WS_CLOSE_INTERNAL = 1011,
};

/* True if `code` may appear in a close frame: 1000-1003, 1007-1011, the
 * IANA-registered 1012-1014 (service restart, try again later, bad gateway),
 * and 3000-4999 (registered and private use). Not 1004 (reserved), 1005,
 * 1006, 1015 (reserved for local use, §7.4.1), 1016-2999 (unassigned in the
 * protocol's range), nor anything below 1000 or from 5000 up. */
bool cn__ws_close_code_valid(unsigned code);

/* Parses a close frame's (unmasked) payload. An empty payload gives
 * *code = CN__WS_CLOSE_NO_STATUS and an empty reason. *reason points into p.
 * Returns 0. Errors: CN_EWS_CLOSE_PAYLOAD (1 byte), CN_EWS_CONTROL_LEN
 * (> 125 bytes), CN_EWS_CLOSE_CODE, CN_EWS_UTF8 (reason). */
int cn__ws_close_parse(const uint8_t *p, size_t len, unsigned *code, const uint8_t **reason,
                       size_t *reason_len);

/* Builds a close payload in out and returns its length (0..125). code 0
 * gives an empty payload (reason must then be empty too). Errors: -EINVAL
 * if code is not valid on the wire, the reason is longer than 123 bytes or
 * is not valid UTF-8. */
int cn__ws_close_build(uint8_t out[125], unsigned code, const void *reason, size_t reason_len);

/* The close status for a codec error: 1007 for CN_EWS_UTF8, 1009 for
 * CN_EWS_TOO_BIG, 1002 for the other CN_EWS_* codes, 1011 otherwise. */
unsigned cn__ws_close_status(int err);

/* ---- handshake (RFC 6455 §4) -------------------------------------------- */

/* True if key is a Sec-WebSocket-Key value: base64 of exactly 16 bytes
 * (22 base64 characters then "=="), nothing else (§4.2.1 item 5). */
bool cn__ws_key_valid(const char *key);

/* Writes the Sec-WebSocket-Accept value for client_key, base64(SHA-1(key
 * + GUID)) (§4.2.2), as a NUL-terminated string of 28 characters.
 * Errors: -EINVAL (client_key fails cn__ws_key_valid), -EIO (OpenSSL). */
int cn__ws_accept_key(const char *client_key, char out[29]);

/* Writes a fresh Sec-WebSocket-Key (16 random bytes from RAND_bytes, base64,
 * NUL-terminated, 24 characters). Errors: -EIO (no randomness). */
int cn__ws_make_key(char out[25]);

#endif /* CORONET_WS_CODEC_H */
