/* SPDX-License-Identifier: MIT */
/*
 * WebSocket frame codec (RFC 6455 §5): header parse and encode, masking,
 * close payloads, and the handshake key helpers (§4). UTF-8 lives in utf8.c.
 *
 * Invariants: no function reads past the length it is given (the tests run
 * every parser on inputs that end at a PROT_NONE page), none allocates, and
 * the header parser is resumable by re-parsing: it decides from the bytes it
 * has, so a longer prefix of the same bytes never turns an error back into
 * "need more", and a prefix of a valid header is always "need more". Since
 * only minimal length encodings are accepted, encode(parse(x)) == x for
 * every valid header x.
 *
 * Called by the ws/ connection code and fuzz/ws_frame.c.
 */
#include "ws/codec.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

/* ---- frame header ------------------------------------------------------ */

/* First byte: FIN, RSV1-3, opcode. RFC 6455 §5.2, §5.5; RFC 7692 §6.1. */
static int check_first(uint8_t b0, unsigned flags)
{
    unsigned op = b0 & 0x0F;
    bool control = (op & 0x08) != 0;

    if (b0 & 0x30) {
        return CN_EWS_RSV; /* RSV2/RSV3: no extension we support uses them */
    }
    if ((b0 & 0x40) && (!(flags & CN__WS_ALLOW_RSV1) || control || op == CN__WS_OP_CONT)) {
        return CN_EWS_RSV;
    }
    if ((op > CN__WS_OP_BINARY && op < CN__WS_OP_CLOSE) || op > CN__WS_OP_PONG) {
        return CN_EWS_OPCODE;
    }
    if (control && !(b0 & 0x80)) {
        return CN_EWS_CONTROL_FRAG; /* §5.5: control frames MUST NOT be fragmented */
    }
    return 0;
}

/* Second byte: MASK and the 7-bit length. §5.1, §5.5. */
static int check_second(uint8_t b0, uint8_t b1, unsigned flags)
{
    bool masked = (b1 & 0x80) != 0;

    if ((flags & CN__WS_SERVER) && !masked) {
        return CN_EWS_UNMASKED; /* a server MUST close on an unmasked frame */
    }
    if (!(flags & CN__WS_SERVER) && masked) {
        return CN_EWS_MASKED; /* a client MUST close on a masked frame */
    }
    if ((b0 & 0x08) && (b1 & 0x7F) > CN__WS_MAX_CONTROL) {
        return CN_EWS_CONTROL_LEN;
    }
    return 0;
}

static uint64_t load_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

int cn__ws_parse_header(const uint8_t *p, size_t len, unsigned flags, struct cn__ws_header *h)
{
    if (len < 1) {
        return 0;
    }
    int rc = check_first(p[0], flags);
    if (rc < 0 || len < 2) {
        return rc;
    }
    rc = check_second(p[0], p[1], flags);
    if (rc < 0) {
        return rc;
    }

    unsigned len7 = p[1] & 0x7F;
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    uint64_t n = len7;
    /* §5.2: the most significant bit of a 64-bit length MUST be 0; known
     * from the first length byte, so fail before the other seven arrive. */
    if (ext == 8 && len >= 3 && (p[2] & 0x80)) {
        return CN_EWS_LENGTH;
    }
    if (len < 2 + ext) {
        return 0;
    }
    if (ext) {
        n = load_be(p + 2, ext);
        /* §5.2: "the minimal number of bytes MUST be used" */
        if ((ext == 2 && n < 126) || (ext == 8 && n <= 0xFFFF)) {
            return CN_EWS_LENGTH;
        }
    }
    bool masked = (p[1] & 0x80) != 0;
    size_t total = 2 + ext + (masked ? 4 : 0);
    if (len < total) {
        return 0;
    }

    h->fin = (p[0] & 0x80) != 0;
    h->rsv1 = (p[0] & 0x40) != 0;
    h->rsv2 = false; /* check_first rejects RSV2/RSV3 */
    h->rsv3 = false;
    h->opcode = p[0] & 0x0F;
    h->masked = masked;
    h->len = n;
    if (masked) {
        memcpy(h->mask, p + 2 + ext, 4);
    } else {
        memset(h->mask, 0, 4);
    }
    return (int)total;
}

size_t cn__ws_encode_header(uint8_t out[14], bool fin, int opcode, bool masked,
                            const uint8_t mask[4], uint64_t len)
{
    assert(len >> 63 == 0);
    size_t n = 0;
    uint8_t mbit = masked ? 0x80 : 0;

    out[n++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & (CN__WS_RSV1 | 0x0F)));
    if (len < 126) {
        out[n++] = (uint8_t)(mbit | len);
    } else if (len <= 0xFFFF) {
        out[n++] = mbit | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = mbit | 127;
        for (int shift = 56; shift >= 0; shift -= 8) {
            out[n++] = (uint8_t)(len >> shift);
        }
    }
    if (masked) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

/* ---- masking (§5.3) ---------------------------------------------------- */

void cn__ws_mask(uint8_t *data, size_t len, const uint8_t key[4], size_t offset)
{
    uint8_t k[4];
    for (size_t j = 0; j < 4; j++) {
        k[j] = key[(offset + j) & 3];
    }

    /* Bytes up to an 8-byte boundary one at a time, so the word loop's
     * loads and stores are aligned (memcpy keeps it legal either way). */
    size_t i = 0;
    while (i < len && ((uintptr_t)(data + i) & 7) != 0) {
        data[i] ^= k[i & 3];
        i++;
    }

    /* The key repeated over a word, starting at phase i % 4; the loops
     * advance i by multiples of 4, so the phase stays put. */
    uint8_t kb[8];
    for (size_t j = 0; j < 8; j++) {
        kb[j] = k[(i + j) & 3];
    }
    uint64_t kw;
    memcpy(&kw, kb, 8);

    /* Four independent words per round, in separate variables so they stay
     * in registers: ~50 B/ns with or without the vectorizer, which at -O3
     * turns it into SSE2/NEON; no per-architecture code. */
    for (; len - i >= 32; i += 32) {
        uint64_t a, b, c, d;
        memcpy(&a, data + i, 8);
        memcpy(&b, data + i + 8, 8);
        memcpy(&c, data + i + 16, 8);
        memcpy(&d, data + i + 24, 8);
        a ^= kw;
        b ^= kw;
        c ^= kw;
        d ^= kw;
        memcpy(data + i, &a, 8);
        memcpy(data + i + 8, &b, 8);
        memcpy(data + i + 16, &c, 8);
        memcpy(data + i + 24, &d, 8);
    }
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, data + i, 8);
        w ^= kw;
        memcpy(data + i, &w, 8);
    }
    for (; i < len; i++) {
        data[i] ^= k[i & 3];
    }
}

/* ---- close payloads (§5.5.1, §7.4) ------------------------------------- */

bool cn__ws_close_code_valid(unsigned code)
{
    if (code >= 1000 && code <= 1003) {
        return true;
    }
    /* 1004 reserved, 1005/1006 local-only pseudo-codes; 1012-1014 were
     * registered with IANA after the RFC and are sent by real servers; 1015
     * (TLS failure) is local-only like 1005/1006. */
    if (code >= 1007 && code <= 1014) {
        return true;
    }
    return code >= 3000 && code <= 4999;
}

int cn__ws_close_parse(const uint8_t *p, size_t len, unsigned *code, const uint8_t **reason,
                       size_t *reason_len)
{
    if (len > CN__WS_MAX_CONTROL) {
        return CN_EWS_CONTROL_LEN;
    }
    if (len == 1) {
        return CN_EWS_CLOSE_PAYLOAD; /* §5.5.1: a body starts with a 2-byte code */
    }
    if (len == 0) {
        *code = CN__WS_CLOSE_NO_STATUS;
        *reason = p;
        *reason_len = 0;
        return 0;
    }
    unsigned c = (unsigned)p[0] << 8 | p[1];
    if (!cn__ws_close_code_valid(c)) {
        return CN_EWS_CLOSE_CODE;
    }
    if (!cn__ws_utf8_valid(p + 2, len - 2)) {
        return CN_EWS_UTF8; /* §5.5.1: the reason is UTF-8; §8.1: fail with 1007 */
    }
    *code = c;
    *reason = p + 2;
    *reason_len = len - 2;
    return 0;
}

int cn__ws_close_build(uint8_t out[125], unsigned code, const void *reason, size_t reason_len)
{
    if (code == 0) {
        return reason_len == 0 ? 0 : -EINVAL;
    }
    if (!cn__ws_close_code_valid(code) || reason_len > CN__WS_MAX_CLOSE_REASON) {
        return -EINVAL;
    }
    if (reason_len > 0 && !cn__ws_utf8_valid(reason, reason_len)) {
        return -EINVAL;
    }
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (reason_len > 0) {
        memcpy(out + 2, reason, reason_len);
    }
    return (int)(2 + reason_len);
}

unsigned cn__ws_close_status(int err)
{
    switch (err) {
    case CN_EWS_UTF8:
        return CN__WS_CLOSE_INVALID_DATA;
    case CN_EWS_TOO_BIG:
        return CN__WS_CLOSE_TOO_BIG;
    case CN_EWS_PROTOCOL:
    case CN_EWS_RSV:
    case CN_EWS_OPCODE:
    case CN_EWS_CONTROL_LEN:
    case CN_EWS_CONTROL_FRAG:
    case CN_EWS_LENGTH:
    case CN_EWS_UNMASKED:
    case CN_EWS_MASKED:
    case CN_EWS_CLOSE_CODE:
    case CN_EWS_CLOSE_PAYLOAD:
        return CN__WS_CLOSE_PROTOCOL;
    default:
        return CN__WS_CLOSE_INTERNAL;
    }
}

/* ---- handshake keys (§4.1, §4.2) --------------------------------------- */

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

bool cn__ws_key_valid(const char *key)
{
    /* 16 bytes = 22 characters carrying 132 bits, then "==". The 4 padding
     * bits of the 22nd character are not checked (as Node's ws): any such
     * key still decodes to 16 bytes. */
    for (size_t i = 0; i < 22; i++) {
        if (!is_b64(key[i])) {
            return false; /* also stops at the NUL of a short key */
        }
    }
    return key[22] == '=' && key[23] == '=' && key[24] == '\0';
}

int cn__ws_accept_key(const char *client_key, char out[29])
{
    if (!cn__ws_key_valid(client_key)) {
        return -EINVAL;
    }
    unsigned char buf[24 + sizeof ws_guid - 1];
    memcpy(buf, client_key, 24);
    memcpy(buf + 24, ws_guid, sizeof ws_guid - 1);

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(buf, sizeof buf, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20) {
        return -EIO;
    }
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 characters and a NUL */
    return 0;
}

int cn__ws_make_key(char out[25])
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        return -EIO;
    }
    EVP_EncodeBlock((unsigned char *)out, raw, sizeof raw); /* 24 characters and a NUL */
    return 0;
}
