/* SPDX-License-Identifier: MIT */
/*
 * Base64 codec for Kinesis Data fields (see base64.h for the rules).
 *
 * Both directions work a whole quantum at a time: encode reads 6 bytes
 * through one 8-byte load and writes 8 characters from a 4096-entry table of
 * character pairs (12 bits each); decode maps 4 characters
 * through a 256-entry table whose invalid entries have the top bit set, so
 * one OR over the quantum checks all four. The last quantum, which may hold
 * padding, takes the careful path. Used by the Kinesis JSON bodies (Data is
 * base64 in PutRecords and GetRecords).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Character to 6-bit value; 255 for every byte outside the alphabet. */
static const uint8_t dtab[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 62,  255, 255, 255, 63,  52,  53,  54,  55,  56,  57,  58,  59,  60,
    61,  255, 255, 255, 255, 255, 255, 255, 0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   10,
    11,  12,  13,  14,  15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  255, 255, 255, 255,
    255, 255, 26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,  41,  42,
    43,  44,  45,  46,  47,  48,  49,  50,  51,  255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255,
};

size_t cn__base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

/* The character for a 6-bit value, as an integer constant expression so
 * the pair table below is built by the compiler. */
#define C(v)                                                                                       \
    ((v) < 26    ? 'A' + (v)                                                                       \
     : (v) < 52  ? 'a' + (v)-26                                                                    \
     : (v) < 62  ? '0' + (v)-52                                                                    \
     : (v) == 62 ? '+'                                                                             \
                 : '/')
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define P(v) (uint16_t)(C((v) >> 6) | C((v)&63) << 8)
#else
#define P(v) (uint16_t)(C((v) >> 6) << 8 | C((v)&63))
#endif
#define P4(v) P(v), P((v) + 1), P((v) + 2), P((v) + 3)
#define P16(v) P4(v), P4((v) + 4), P4((v) + 8), P4((v) + 12)
#define P64(v) P16(v), P16((v) + 16), P16((v) + 32), P16((v) + 48)
#define P256(v) P64(v), P64((v) + 64), P64((v) + 128), P64((v) + 192)
#define P1024(v) P256(v), P256((v) + 256), P256((v) + 512), P256((v) + 768)

/* 12 bits to the two characters they encode, in memory order: two loads
 * and two 16-bit stores per 3 bytes instead of four of each. */
static const uint16_t pairs[4096] = {P1024(0), P1024(1024), P1024(2048), P1024(3072)};

static uint64_t load_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

size_t cn__base64_encode(char *dst, const void *src, size_t n)
{
    const uint8_t *s = src;
    char *d = dst;
    size_t i = 0;
    /* Six bytes per step through one 8-byte load (the 2 extra are only read
     * while at least 8 remain). */
    for (; i + 8 <= n; i += 6, d += 8) {
        uint64_t v = load_be64(s + i);
        uint16_t out[4] = {pairs[v >> 52], pairs[(v >> 40) & 0xfff], pairs[(v >> 28) & 0xfff],
                           pairs[(v >> 16) & 0xfff]};
        memcpy(d, out, 8);
    }
    for (; i + 3 <= n; i += 3, d += 4) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        memcpy(d, &pairs[v >> 12], 2);
        memcpy(d + 2, &pairs[v & 0xfff], 2);
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        d[0] = alphabet[v >> 18];
        d[1] = alphabet[(v >> 12) & 63];
        d[2] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        d[3] = '=';
        d += 4;
    }
    return (size_t)(d - dst);
}

ssize_t cn__base64_decoded_len(const char *src, size_t n)
{
    if (n % 4 != 0) {
        return CN_EBASE64;
    }
    if (n == 0) {
        return 0;
    }
    size_t pad = src[n - 1] == '=' ? (src[n - 2] == '=' ? 2 : 1) : 0;
    return (ssize_t)(n / 4 * 3 - pad);
}

/* The last quantum: "xxxx", "xxx=" or "xx==", with zero bits before '='. */
static ssize_t decode_last(uint8_t *d, const uint8_t *s)
{
    uint32_t a = dtab[s[0]], b = dtab[s[1]];
    if ((a | b) & 0x80) {
        return CN_EBASE64;
    }
    if (s[2] == '=') {
        if (s[3] != '=' || (b & 15) != 0) {
            return CN_EBASE64;
        }
        d[0] = (uint8_t)(a << 2 | b >> 4);
        return 1;
    }
    uint32_t c = dtab[s[2]];
    if (c & 0x80) {
        return CN_EBASE64;
    }
    if (s[3] == '=') {
        if ((c & 3) != 0) {
            return CN_EBASE64;
        }
        d[0] = (uint8_t)(a << 2 | b >> 4);
        d[1] = (uint8_t)(b << 4 | c >> 2);
        return 2;
    }
    uint32_t e = dtab[s[3]];
    if (e & 0x80) {
        return CN_EBASE64;
    }
    uint32_t v = a << 18 | b << 12 | c << 6 | e;
    d[0] = (uint8_t)(v >> 16);
    d[1] = (uint8_t)(v >> 8);
    d[2] = (uint8_t)v;
    return 3;
}

ssize_t cn__base64_decode(void *dst, size_t cap, const char *src, size_t n)
{
    ssize_t len = cn__base64_decoded_len(src, n);
    if (len < 0) {
        return len;
    }
    if ((size_t)len > cap) {
        return -ENOBUFS;
    }
    if (n == 0) {
        return 0;
    }
    const uint8_t *s = (const uint8_t *)src;
    uint8_t *d = dst;
    size_t full = n - 4; /* every quantum but the last has no padding */
    for (size_t i = 0; i < full; i += 4, d += 3) {
        uint32_t a = dtab[s[i]], b = dtab[s[i + 1]], c = dtab[s[i + 2]], e = dtab[s[i + 3]];
        if ((a | b | c | e) & 0x80) {
            return CN_EBASE64;
        }
        uint32_t v = a << 18 | b << 12 | c << 6 | e;
        d[0] = (uint8_t)(v >> 16);
        d[1] = (uint8_t)(v >> 8);
        d[2] = (uint8_t)v;
    }
    ssize_t last = decode_last(d, s + full);
    return last < 0 ? last : len;
}
