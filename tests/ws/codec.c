/* SPDX-License-Identifier: MIT */
/*
 * The pure WebSocket codec (ws/codec.h): RFC 6455 §5.7 golden vectors, one
 * case per rejection rule, resumable parsing, UTF-8 (exhaustive against a
 * reference decoder up to three bytes), close payloads, handshake keys,
 * masking against a byte-by-byte reference, and an over-read guard.
 */
#include "test.h"

#include <sys/mman.h>
#include <unistd.h>

#include "ws/codec.h"

/* ---- helpers ------------------------------------------------------------- */

#define U8(s) ((const uint8_t *)(s))

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    /* xorshift64*: deterministic, so a failure reproduces */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static int parse(const uint8_t *p, size_t len, unsigned flags, struct cn__ws_header *h)
{
    return cn__ws_parse_header(p, len, flags, h);
}

/* Parses a complete header, checking that every shorter prefix needs more. */
static int parse_all_prefixes(const uint8_t *p, size_t len, unsigned flags, struct cn__ws_header *h)
{
    int rc = parse(p, len, flags, h);
    size_t stop = rc > 0 ? (size_t)rc : len;
    for (size_t n = 0; n < stop; n++) {
        struct cn__ws_header t;
        CN_ASSERT_EQ(parse(p, n, flags, &t), 0);
    }
    return rc;
}

/* Feeds one byte at a time; returns the index of the byte that failed, or
 * len if none did. */
static size_t utf8_fail_index(const uint8_t *p, size_t len)
{
    struct cn__ws_utf8 st;
    cn__ws_utf8_init(&st);
    for (size_t i = 0; i < len; i++) {
        int rc = cn__ws_utf8_feed(&st, p + i, 1);
        if (rc < 0) {
            CN_ASSERT_EQ(rc, CN_EWS_UTF8);
            return i;
        }
    }
    return len;
}

/* ---- frames: RFC 6455 §5.7 ------------------------------------------------ */

static const uint8_t rfc_hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t rfc_masked_hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                           0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t rfc_hel[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
static const uint8_t rfc_lo[] = {0x80, 0x02, 0x6c, 0x6f};
static const uint8_t rfc_ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t rfc_masked_pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                          0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t rfc_256[] = {0x82, 0x7E, 0x01, 0x00};
static const uint8_t rfc_64k[] = {0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};

static void frame_parses_rfc_unmasked_hello(void)
{
    struct cn__ws_header h;
    CN_ASSERT_EQ(parse_all_prefixes(rfc_hello, sizeof rfc_hello, 0, &h), 2);
    CN_ASSERT(h.fin);
    CN_ASSERT(!h.rsv1 && !h.rsv2 && !h.rsv3 && !h.masked);
    CN_ASSERT_EQ(h.opcode, CN__WS_OP_TEXT);
    CN_ASSERT_EQ(h.len, 5);
    CN_ASSERT_MEMEQ(rfc_hello + 2, "Hello", 5);
}

static void frame_parses_rfc_masked_hello(void)
{
    struct cn__ws_header h;
    CN_ASSERT_EQ(parse_all_prefixes(rfc_masked_hello, sizeof rfc_masked_hello, CN__WS_SERVER, &h),
                 6);
    CN_ASSERT(h.fin && h.masked);
    CN_ASSERT_EQ(h.opcode, CN__WS_OP_TEXT);
    CN_ASSERT_EQ(h.len, 5);
    CN_ASSERT_MEMEQ(h.mask, "\x37\xfa\x21\x3d", 4);
    uint8_t payload[5];
    memcpy(payload, rfc_masked_hello + 6, 5);
    cn__ws_mask(payload, 5, h.mask, 0);
    CN_ASSERT_MEMEQ(payload, "Hello", 5);
}

static void frame_parses_rfc_fragmented_hello(void)
{
    struct cn__ws_header h;
    CN_ASSERT_EQ(parse_all_prefixes(rfc_hel, sizeof rfc_hel, 0, &h), 2);
    CN_ASSERT(!h.fin);
    CN_ASSERT_EQ(h.opcode, CN__WS_OP_TEXT);
    CN_ASSERT_EQ(h.len, 3);
    CN_ASSERT_EQ(parse_all_prefixes(rfc_lo, sizeof rfc_lo, 0, &h), 2);
    CN_ASSERT(h.fin);
    CN_ASSERT_EQ(h.opcode, CN__WS_OP_CONT);
    CN_ASSERT_EQ(h.len, 2);
}

static void frame_parses_rfc_ping_and_masked_pong(void)
{
    struct cn__ws_header h;
    CN_ASSERT_EQ(parse_all_prefixes(rfc_ping, sizeof rfc_ping, 0, &h), 2);
    CN_ASSERT(h.fin && !h.masked);
    CN_ASSERT_EQ(h.opcode, CN__WS_OP_PING);
    CN_ASSERT_EQ(h.len, 5);
    CN_ASSERT_EQ(parse_all_prefixes(rfc_masked_pong, sizeof rfc_masked_pong, CN__WS_SERVER, &h), 6);
    CN_ASSERT(h.fin && h.masked);
    CN_ASSERT_EQ(h.opcode, CN__WS_OP_PONG);
    uint8_t payload[5];
    memcpy(payload, rfc_masked_pong + 6, 5);
    cn__ws_mask(payload, 5, h.mask, 0);
    CN_ASSERT_MEMEQ(payload, "Hello", 5);
}

static void frame_parses_rfc_256_and_64k_lengths(void)
{
    struct cn__ws_header h;
    CN_ASSERT_EQ(parse_all_prefixes(rfc_256, sizeof rfc_256, 0, &h), 4);
    CN_ASSERT_EQ(h.opcode, CN__WS_OP_BINARY);
    CN_ASSERT_EQ(h.len, 256);
    CN_ASSERT_EQ(parse_all_prefixes(rfc_64k, sizeof rfc_64k, 0, &h), 10);
    CN_ASSERT_EQ(h.opcode, CN__WS_OP_BINARY);
    CN_ASSERT_EQ(h.len, 65536);
}

static void frame_encode_matches_rfc_vectors(void)
{
    uint8_t out[14];
    const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    CN_ASSERT_EQ(cn__ws_encode_header(out, true, CN__WS_OP_TEXT, false, NULL, 5), 2);
    CN_ASSERT_MEMEQ(out, rfc_hello, 2);
    CN_ASSERT_EQ(cn__ws_encode_header(out, true, CN__WS_OP_TEXT, true, key, 5), 6);
    CN_ASSERT_MEMEQ(out, rfc_masked_hello, 6);
    CN_ASSERT_EQ(cn__ws_encode_header(out, false, CN__WS_OP_TEXT, false, NULL, 3), 2);
    CN_ASSERT_MEMEQ(out, rfc_hel, 2);
    CN_ASSERT_EQ(cn__ws_encode_header(out, true, CN__WS_OP_CONT, false, NULL, 2), 2);
    CN_ASSERT_MEMEQ(out, rfc_lo, 2);
    CN_ASSERT_EQ(cn__ws_encode_header(out, true, CN__WS_OP_PING, false, NULL, 5), 2);
    CN_ASSERT_MEMEQ(out, rfc_ping, 2);
    CN_ASSERT_EQ(cn__ws_encode_header(out, true, CN__WS_OP_PONG, true, key, 5), 6);
    CN_ASSERT_MEMEQ(out, rfc_masked_pong, 6);
    CN_ASSERT_EQ(cn__ws_encode_header(out, true, CN__WS_OP_BINARY, false, NULL, 256), 4);
    CN_ASSERT_MEMEQ(out, rfc_256, 4);
    CN_ASSERT_EQ(cn__ws_encode_header(out, true, CN__WS_OP_BINARY, false, NULL, 65536), 10);
    CN_ASSERT_MEMEQ(out, rfc_64k, 10);
    CN_ASSERT_EQ(cn__ws_encode_header(out, false, CN__WS_OP_TEXT | CN__WS_RSV1, false, NULL, 1), 2);
    CN_ASSERT_EQ(out[0], 0x41);
}

static void frame_encode_uses_minimal_length_and_round_trips(void)
{
    static const uint64_t lens[] = {0,          1,
                                    125,        126,
                                    127,        65535,
                                    65536,      65537,
                                    0xFFFFFFFF, 0x100000000ull,
                                    1ull << 62, (1ull << 63) - 1};
    static const size_t want[] = {2, 2, 2, 4, 4, 4, 10, 10, 10, 10, 10, 10};
    const uint8_t key[4] = {1, 2, 3, 4};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int masked = 0; masked < 2; masked++) {
            uint8_t out[14];
            size_t n = cn__ws_encode_header(out, true, CN__WS_OP_BINARY, masked, key, lens[i]);
            CN_ASSERT_EQ(n, want[i] + (masked ? 4 : 0));
            struct cn__ws_header h;
            unsigned flags = masked ? CN__WS_SERVER : 0;
            CN_ASSERT_EQ(parse_all_prefixes(out, n, flags, &h), n);
            CN_ASSERT_EQ(h.len, lens[i]);
            CN_ASSERT_EQ(h.masked, masked);
            if (masked) {
                CN_ASSERT_MEMEQ(h.mask, key, 4);
            }
        }
    }
}

static void frame_parse_needs_more_one_byte_at_a_time(void)
{
    /* a masked 64-bit-length header: 14 bytes, each prefix needs more */
    uint8_t buf[14];
    const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    size_t n = cn__ws_encode_header(buf, true, CN__WS_OP_BINARY, true, key, 1u << 20);
    CN_ASSERT_EQ(n, 14);
    uint8_t acc[14];
    struct cn__ws_header h;
    for (size_t have = 0; have < n; have++) {
        CN_ASSERT_EQ(parse(acc, have, CN__WS_SERVER, &h), 0);
        acc[have] = buf[have];
    }
    CN_ASSERT_EQ(parse(acc, n, CN__WS_SERVER, &h), 14);
    CN_ASSERT_EQ(h.len, 1u << 20);
    CN_ASSERT_MEMEQ(h.mask, key, 4);
    /* bytes after the header (the payload) do not change the answer */
    uint8_t more[20] = {0};
    memcpy(more, buf, 14);
    CN_ASSERT_EQ(parse(more, sizeof more, CN__WS_SERVER, &h), 14);
}

static void frame_rejects_reserved_bits(void)
{
    struct cn__ws_header h;
    static const uint8_t bits[] = {0x40, 0x20, 0x10, 0x70};
    for (size_t i = 0; i < sizeof bits; i++) {
        uint8_t f[2] = {(uint8_t)(0x81 | bits[i]), 0x00};
        CN_ASSERT_EQ(parse(f, 2, 0, &h), CN_EWS_RSV);
        CN_ASSERT_EQ(parse(f, 1, 0, &h), CN_EWS_RSV); /* decided on the first byte */
        CN_ASSERT_EQ(parse(f, 2, CN__WS_ALLOW_RSV1, &h), bits[i] == 0x40 ? 2 : CN_EWS_RSV);
    }
    /* with RSV1 negotiated: allowed on a message's first frame only */
    uint8_t text[2] = {0xC1, 0x00};
    CN_ASSERT_EQ(parse(text, 2, CN__WS_ALLOW_RSV1, &h), 2);
    CN_ASSERT(h.rsv1);
    uint8_t cont[2] = {0xC0, 0x00};
    CN_ASSERT_EQ(parse(cont, 2, CN__WS_ALLOW_RSV1, &h), CN_EWS_RSV);
    uint8_t ping[2] = {0xC9, 0x00};
    CN_ASSERT_EQ(parse(ping, 2, CN__WS_ALLOW_RSV1, &h), CN_EWS_RSV);
}

static void frame_rejects_reserved_opcodes(void)
{
    struct cn__ws_header h;
    for (unsigned op = 0; op < 16; op++) {
        uint8_t f[2] = {(uint8_t)(0x80 | op), 0x00};
        bool valid = op <= 2 || (op >= 8 && op <= 10);
        CN_ASSERT_EQ(parse(f, 2, 0, &h), valid ? 2 : CN_EWS_OPCODE);
        CN_ASSERT_EQ(parse(f, 1, 0, &h), valid ? 0 : CN_EWS_OPCODE);
        if (valid) {
            CN_ASSERT_EQ(h.opcode, op);
        }
    }
}

static void frame_rejects_fragmented_control(void)
{
    struct cn__ws_header h;
    for (unsigned op = 8; op <= 10; op++) {
        uint8_t f[2] = {(uint8_t)op, 0x00}; /* FIN=0 */
        CN_ASSERT_EQ(parse(f, 2, 0, &h), CN_EWS_CONTROL_FRAG);
        CN_ASSERT_EQ(parse(f, 1, 0, &h), CN_EWS_CONTROL_FRAG);
    }
    uint8_t text[2] = {0x01, 0x00}; /* FIN=0 is fine for data */
    CN_ASSERT_EQ(parse(text, 2, 0, &h), 2);
}

static void frame_rejects_control_over_125(void)
{
    struct cn__ws_header h;
    for (unsigned op = 8; op <= 10; op++) {
        uint8_t ok[2] = {(uint8_t)(0x80 | op), 125};
        CN_ASSERT_EQ(parse(ok, 2, 0, &h), 2);
        CN_ASSERT_EQ(h.len, 125);
        uint8_t f16[4] = {(uint8_t)(0x80 | op), 126, 0x00, 0x7E};
        CN_ASSERT_EQ(parse(f16, 2, 0, &h), CN_EWS_CONTROL_LEN); /* before the extended bytes */
        CN_ASSERT_EQ(parse(f16, 4, 0, &h), CN_EWS_CONTROL_LEN);
        uint8_t f64[2] = {(uint8_t)(0x80 | op), 127};
        CN_ASSERT_EQ(parse(f64, 2, 0, &h), CN_EWS_CONTROL_LEN);
    }
}

static void frame_rejects_non_minimal_length(void)
{
    struct cn__ws_header h;
    uint8_t f16[4] = {0x82, 126, 0x00, 125}; /* 125 fits in 7 bits */
    CN_ASSERT_EQ(parse(f16, 3, 0, &h), 0);
    CN_ASSERT_EQ(parse(f16, 4, 0, &h), CN_EWS_LENGTH);
    f16[3] = 0;
    CN_ASSERT_EQ(parse(f16, 4, 0, &h), CN_EWS_LENGTH);
    f16[3] = 126; /* smallest 16-bit length */
    CN_ASSERT_EQ(parse(f16, 4, 0, &h), 4);

    uint8_t f64[10] = {0x82, 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}; /* 65535 fits in 16 */
    CN_ASSERT_EQ(parse(f64, 9, 0, &h), 0);
    CN_ASSERT_EQ(parse(f64, 10, 0, &h), CN_EWS_LENGTH);
    f64[9] = 0;
    f64[8] = 0;
    CN_ASSERT_EQ(parse(f64, 10, 0, &h), CN_EWS_LENGTH);
    f64[7] = 1; /* 65536: smallest 64-bit length */
    CN_ASSERT_EQ(parse(f64, 10, 0, &h), 10);
}

static void frame_rejects_64bit_length_with_msb_set(void)
{
    struct cn__ws_header h;
    uint8_t f[10] = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0};
    CN_ASSERT_EQ(parse(f, 2, 0, &h), 0);
    CN_ASSERT_EQ(parse(f, 3, 0, &h), CN_EWS_LENGTH); /* fails at the first length byte */
    CN_ASSERT_EQ(parse(f, 10, 0, &h), CN_EWS_LENGTH);
    f[2] = 0x7F;
    CN_ASSERT_EQ(parse(f, 10, 0, &h), 10);
    CN_ASSERT_EQ(h.len, 0x7F00000000000000ull);
}

static void frame_server_rejects_unmasked(void)
{
    struct cn__ws_header h;
    CN_ASSERT_EQ(parse(rfc_hello, sizeof rfc_hello, CN__WS_SERVER, &h), CN_EWS_UNMASKED);
    CN_ASSERT_EQ(parse(rfc_hello, 2, CN__WS_SERVER, &h), CN_EWS_UNMASKED);
    CN_ASSERT_EQ(parse(rfc_ping, 2, CN__WS_SERVER, &h), CN_EWS_UNMASKED);
}

static void frame_client_rejects_masked(void)
{
    struct cn__ws_header h;
    CN_ASSERT_EQ(parse(rfc_masked_hello, sizeof rfc_masked_hello, 0, &h), CN_EWS_MASKED);
    CN_ASSERT_EQ(parse(rfc_masked_hello, 2, 0, &h), CN_EWS_MASKED);
    CN_ASSERT_EQ(parse(rfc_masked_pong, 2, 0, &h), CN_EWS_MASKED);
}

static void frame_rules_apply_in_documented_order(void)
{
    struct cn__ws_header h;
    /* RSV before opcode before control FIN before mask before control length */
    uint8_t a[2] = {0x73, 0xFF}; /* RSV1-3, opcode 3, FIN=0, masked, len 127 */
    CN_ASSERT_EQ(parse(a, 2, 0, &h), CN_EWS_RSV);
    a[0] = 0x03;
    CN_ASSERT_EQ(parse(a, 2, 0, &h), CN_EWS_OPCODE);
    a[0] = 0x09;
    CN_ASSERT_EQ(parse(a, 2, 0, &h), CN_EWS_CONTROL_FRAG);
    a[0] = 0x89;
    CN_ASSERT_EQ(parse(a, 2, 0, &h), CN_EWS_MASKED);
    CN_ASSERT_EQ(parse(a, 2, CN__WS_SERVER, &h), CN_EWS_CONTROL_LEN);
}

/* ---- masking --------------------------------------------------------------- */

static void mask_ref(uint8_t *d, size_t len, const uint8_t key[4], size_t offset)
{
    for (size_t i = 0; i < len; i++) {
        d[i] ^= key[(offset + i) % 4];
    }
}

static void mask_matches_bytewise_reference(void)
{
    enum { MAX = 1100 };
    static uint8_t a[MAX + 16], b[MAX + 16];
    for (int iter = 0; iter < 20000; iter++) {
        size_t align = rnd() % 16;
        size_t len = iter < 300 ? (size_t)iter : rnd() % MAX;
        size_t offset = rnd();
        uint8_t key[4];
        uint64_t r = rnd();
        memcpy(key, &r, 4);
        for (size_t i = 0; i < sizeof a; i++) {
            a[i] = b[i] = (uint8_t)rnd();
        }
        cn__ws_mask(a + align, len, key, offset);
        mask_ref(b + align, len, key, offset);
        CN_ASSERT_MEMEQ(a, b, sizeof a); /* also: nothing outside the range changed */
    }
}

static void mask_in_chunks_equals_one_pass(void)
{
    static uint8_t whole[4096], chunked[4096];
    const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    for (int iter = 0; iter < 500; iter++) {
        for (size_t i = 0; i < sizeof whole; i++) {
            whole[i] = chunked[i] = (uint8_t)rnd();
        }
        cn__ws_mask(whole, sizeof whole, key, 0);
        size_t off = 0;
        while (off < sizeof chunked) {
            size_t n = rnd() % 100;
            if (n > sizeof chunked - off) {
                n = sizeof chunked - off;
            }
            cn__ws_mask(chunked + off, n, key, off);
            off += n;
        }
        CN_ASSERT_MEMEQ(whole, chunked, sizeof whole);
    }
}

/* ---- UTF-8 ----------------------------------------------------------------- */

/* Reference: decode p as UTF-8 by RFC 3629 §3 and check each code point's
 * range (shortest form, no surrogates, at most U+10FFFF). */
static bool ref_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint32_t c = p[i];
        size_t n;
        uint32_t min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, min = 0x80, c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, min = 0x800, c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        if (len - i - 1 < n) {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80) {
                return false;
            }
            c = c << 6 | (p[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

static void utf8_accepts_valid_multibyte(void)
{
    static const char *ok[] = {
        "",
        "Hello-µ@ßöäüàá-UTF-8!!",
        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", /* κόσμε */
        "\xc2\x80",                                     /* U+0080 */
        "\xdf\xbf",                                     /* U+07FF */
        "\xe0\xa0\x80",                                 /* U+0800 */
        "\xed\x9f\xbf",                                 /* U+D7FF */
        "\xee\x80\x80",                                 /* U+E000 */
        "\xef\xbf\xbf",                                 /* U+FFFF */
        "\xef\xbf\xbe",                                 /* U+FFFE: a noncharacter, valid */
        "\xf0\x90\x80\x80",                             /* U+10000 */
        "\xf4\x8f\xbf\xbf",                             /* U+10FFFF */
        "plain ascii that is longer than sixteen bytes, with \xf0\x9f\x98\x80 inside",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t n = strlen(ok[i]);
        CN_ASSERT(cn__ws_utf8_valid(U8(ok[i]), n));
        CN_ASSERT_EQ(utf8_fail_index(U8(ok[i]), n), n);
    }
    CN_ASSERT(cn__ws_utf8_valid(U8("a\0b"), 3)); /* NUL is a valid code point */
}

static void utf8_rejects_each_invalid_class(void)
{
    static const struct {
        const char *s;
        size_t bad; /* index of the first byte that cannot be valid */
    } cases[] = {
        {"\x80", 0},                     /* stray continuation */
        {"ab\xbf", 2},                   /* stray continuation after ASCII */
        {"\xc0\x80", 0},                 /* overlong 2-byte lead C0 */
        {"\xc1\xbf", 0},                 /* overlong 2-byte lead C1 */
        {"\xe0\x80\x80", 1},             /* overlong 3-byte */
        {"\xe0\x9f\xbf", 1},             /* overlong U+07FF */
        {"\xf0\x80\x80\x80", 1},         /* overlong 4-byte */
        {"\xf0\x8f\xbf\xbf", 1},         /* overlong U+FFFF */
        {"\xed\xa0\x80", 1},             /* U+D800 */
        {"\xed\xbf\xbf", 1},             /* U+DFFF */
        {"\xed\xa0\x80\xed\xb0\x80", 1}, /* surrogate pair */
        {"\xf4\x90\x80\x80", 1},         /* U+110000 */
        {"\xf5\x80\x80\x80", 0},         /* lead past F4 */
        {"\xf8\x88\x80\x80\x80", 0},     /* old 5-byte form */
        {"\xfc\x84\x80\x80\x80\x80", 0},
        {"\xfe", 0},
        {"\xff", 0},
        {"\xc2"
         "a",
         1}, /* truncated 2-byte, then ASCII */
        {"\xe1\x80"
         "a",
         2}, /* truncated 3-byte */
        {"\xf1\x80\x80"
         "a",
         3},                     /* truncated 4-byte */
        {"\xe1\x80\xc2\x80", 2}, /* truncated by a new lead */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint8_t *p = U8(cases[i].s);
        size_t n = strlen(cases[i].s);
        CN_ASSERT(!cn__ws_utf8_valid(p, n));
        CN_ASSERT_EQ(utf8_fail_index(p, n), cases[i].bad);
        struct cn__ws_utf8 st = {0};
        CN_ASSERT_EQ(cn__ws_utf8_feed(&st, p, n), CN_EWS_UTF8);
        CN_ASSERT(!cn__ws_utf8_complete(&st));
        CN_ASSERT_EQ(cn__ws_utf8_feed(&st, U8("a"), 1), CN_EWS_UTF8); /* stays rejected */
        CN_ASSERT_EQ(cn__ws_utf8_feed(&st, U8(""), 0), CN_EWS_UTF8);
    }
}

static void utf8_fails_fast_at_first_invalid_byte(void)
{
    /* Autobahn 6.4.x: κόσμε then F4 90 80 80 (past U+10FFFF), which must
     * fail at 0x90, not at the end of the frame or message. */
    static const uint8_t s[] = {0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce,
                                0xbc, 0xce, 0xb5, 0xf4, 0x90, 0x80, 0x80};
    CN_ASSERT_EQ(utf8_fail_index(s, sizeof s), 12);
    for (size_t n = 0; n <= sizeof s; n++) {
        struct cn__ws_utf8 st = {0};
        CN_ASSERT_EQ(cn__ws_utf8_feed(&st, s, n), n <= 12 ? 0 : CN_EWS_UTF8);
    }
    /* the same inside a long ASCII run (fast path), split in two fragments */
    uint8_t big[200];
    memset(big, 'x', sizeof big);
    memcpy(big + 101, "\xf4\x90", 2);
    struct cn__ws_utf8 st = {0};
    CN_ASSERT_EQ(cn__ws_utf8_feed(&st, big, 102), 0);
    CN_ASSERT(!cn__ws_utf8_complete(&st));
    CN_ASSERT_EQ(cn__ws_utf8_feed(&st, big + 102, 1), CN_EWS_UTF8);
}

static void utf8_code_point_split_across_fragments_is_valid(void)
{
    static const char *s = "a\xc2\xa9"
                           "b\xe2\x82\xac"
                           "c\xf0\x9f\x98\x80"
                           "d\xf4\x8f\xbf\xbf";
    size_t n = strlen(s);
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            struct cn__ws_utf8 st;
            cn__ws_utf8_init(&st);
            CN_ASSERT_EQ(cn__ws_utf8_feed(&st, U8(s), a), 0);
            CN_ASSERT_EQ(cn__ws_utf8_feed(&st, U8(s) + a, b - a), 0);
            CN_ASSERT_EQ(cn__ws_utf8_feed(&st, U8(s) + b, n - b), 0);
            CN_ASSERT(cn__ws_utf8_complete(&st));
        }
    }
}

static void utf8_incomplete_at_end_is_not_complete(void)
{
    static const char *partial[] = {"\xc2", "\xe2\x82", "\xf0\x9f\x98", "ok\xf0"};
    for (size_t i = 0; i < 4; i++) {
        struct cn__ws_utf8 st = {0};
        CN_ASSERT_EQ(cn__ws_utf8_feed(&st, U8(partial[i]), strlen(partial[i])), 0);
        CN_ASSERT(!cn__ws_utf8_complete(&st));
        CN_ASSERT(!cn__ws_utf8_valid(U8(partial[i]), strlen(partial[i])));
    }
}

static void utf8_ascii_fast_path_sees_every_byte(void)
{
    /* one non-ASCII byte at every position of ASCII runs of every length,
     * at every alignment: the word-at-a-time skip must stop for it */
    static uint8_t buf[96 + 8];
    for (size_t align = 0; align < 8; align++) {
        uint8_t *p = buf + align;
        for (size_t len = 1; len <= 96; len++) {
            for (size_t pos = 0; pos < len; pos++) {
                memset(p, 'a', len);
                p[pos] = 0xFF;
                CN_ASSERT(!cn__ws_utf8_valid(p, len));
                struct cn__ws_utf8 st = {0};
                CN_ASSERT_EQ(cn__ws_utf8_feed(&st, p, pos), 0);
                CN_ASSERT_EQ(cn__ws_utf8_feed(&st, p + pos, len - pos), CN_EWS_UTF8);
                p[pos] = 0xC3; /* a lead byte left incomplete, or completed */
                CN_ASSERT(!cn__ws_utf8_valid(p, len));
                if (pos + 1 < len) {
                    p[pos + 1] = 0xA9;
                    CN_ASSERT(cn__ws_utf8_valid(p, len));
                }
            }
        }
    }
}

static void utf8_matches_reference_on_all_short_sequences(void)
{
    /* every 1-, 2- and 3-byte string, and random 4..8-byte ones */
    uint8_t b[8];
    for (uint32_t v = 0; v < (1u << 24); v++) {
        b[0] = (uint8_t)(v >> 16), b[1] = (uint8_t)(v >> 8), b[2] = (uint8_t)v;
        for (size_t n = 1; n <= 3; n++) {
            if (n < 3 && v >= (1u << (8 * n))) {
                continue;
            }
            const uint8_t *p = b + 3 - n; /* the low n bytes of v: every n-byte string */
            if (cn__ws_utf8_valid(p, n) != ref_utf8_valid(p, n)) {
                fprintf(stderr, "mismatch on %zu bytes %02x %02x %02x\n", n, b[0], b[1], b[2]);
                abort();
            }
        }
    }
    for (int iter = 0; iter < 2000000; iter++) {
        size_t n = 4 + rnd() % 5;
        uint64_t r = rnd();
        memcpy(b, &r, 8);
        for (size_t k = 0; k < n; k++) {
            if ((r >> (k + 56)) & 1) {
                b[k] = 0x80 | (b[k] & 0x3F); /* bias towards continuations */
            }
        }
        if (cn__ws_utf8_valid(b, n) != ref_utf8_valid(b, n)) {
            fprintf(stderr, "mismatch on %zu random bytes\n", n);
            abort();
        }
    }
}

/* ---- close payloads ------------------------------------------------------- */

static bool expect_code_valid(unsigned c)
{
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

static void close_validates_each_code_range(void)
{
    for (unsigned c = 0; c <= 0xFFFF; c++) {
        uint8_t p[2] = {(uint8_t)(c >> 8), (uint8_t)c};
        unsigned code = 0;
        const uint8_t *reason;
        size_t rlen;
        CN_ASSERT_EQ(cn__ws_close_code_valid(c), expect_code_valid(c));
        int rc = cn__ws_close_parse(p, 2, &code, &reason, &rlen);
        CN_ASSERT_EQ(rc, expect_code_valid(c) ? 0 : CN_EWS_CLOSE_CODE);
        if (rc == 0) {
            CN_ASSERT_EQ(code, c);
            CN_ASSERT_EQ(rlen, 0);
        }
    }
    static const unsigned invalid[] = {0,    999,  1004, 1005, 1006, 1015,
                                       1016, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        CN_ASSERT(!cn__ws_close_code_valid(invalid[i]));
    }
    static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                     1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        CN_ASSERT(cn__ws_close_code_valid(valid[i]));
    }
}

static void close_empty_payload_is_no_status(void)
{
    unsigned code = 0;
    const uint8_t *reason = NULL;
    size_t rlen = 99;
    CN_ASSERT_EQ(cn__ws_close_parse(U8(""), 0, &code, &reason, &rlen), 0);
    CN_ASSERT_EQ(code, CN__WS_CLOSE_NO_STATUS);
    CN_ASSERT_EQ(rlen, 0);
}

static void close_rejects_one_byte_payload(void)
{
    unsigned code;
    const uint8_t *reason;
    size_t rlen;
    CN_ASSERT_EQ(cn__ws_close_parse(U8("\x03"), 1, &code, &reason, &rlen), CN_EWS_CLOSE_PAYLOAD);
}

static void close_rejects_payload_over_125(void)
{
    uint8_t p[126];
    memset(p, 'a', sizeof p);
    p[0] = 0x03, p[1] = 0xE8;
    unsigned code;
    const uint8_t *reason;
    size_t rlen;
    CN_ASSERT_EQ(cn__ws_close_parse(p, 125, &code, &reason, &rlen), 0);
    CN_ASSERT_EQ(rlen, 123);
    CN_ASSERT_EQ(cn__ws_close_parse(p, 126, &code, &reason, &rlen), CN_EWS_CONTROL_LEN);
}

static void close_reason_must_be_utf8(void)
{
    unsigned code;
    const uint8_t *reason;
    size_t rlen;
    const char *ok = "\x03\xe8"
                     "bye \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
    CN_ASSERT_EQ(cn__ws_close_parse(U8(ok), strlen(ok), &code, &reason, &rlen), 0);
    CN_ASSERT_EQ(code, 1000);
    CN_ASSERT_EQ(rlen, strlen(ok) - 2);
    CN_ASSERT(reason == U8(ok) + 2);
    const char *bad = "\x03\xe8"
                      "bye \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80";
    CN_ASSERT_EQ(cn__ws_close_parse(U8(bad), strlen(bad), &code, &reason, &rlen), CN_EWS_UTF8);
    const char *cut = "\x03\xe8"
                      "\xce"; /* reason ends mid code point */
    CN_ASSERT_EQ(cn__ws_close_parse(U8(cut), 3, &code, &reason, &rlen), CN_EWS_UTF8);
}

static void close_build_round_trips_and_rejects(void)
{
    uint8_t out[125];
    CN_ASSERT_EQ(cn__ws_close_build(out, 0, NULL, 0), 0);
    CN_ASSERT_EQ(cn__ws_close_build(out, 1000, NULL, 0), 2);
    CN_ASSERT_MEMEQ(out, "\x03\xe8", 2);
    CN_ASSERT_EQ(cn__ws_close_build(out, 4321, "going", 5), 7);
    unsigned code;
    const uint8_t *reason;
    size_t rlen;
    CN_ASSERT_EQ(cn__ws_close_parse(out, 7, &code, &reason, &rlen), 0);
    CN_ASSERT_EQ(code, 4321);
    CN_ASSERT_MEMEQ(reason, "going", 5);

    char long_reason[124];
    memset(long_reason, 'r', sizeof long_reason);
    CN_ASSERT_EQ(cn__ws_close_build(out, 1001, long_reason, 123), 125);
    CN_ASSERT_EQ(cn__ws_close_build(out, 1001, long_reason, 124), -EINVAL);
    CN_ASSERT_EQ(cn__ws_close_build(out, 1005, NULL, 0), -EINVAL);
    CN_ASSERT_EQ(cn__ws_close_build(out, 1006, NULL, 0), -EINVAL);
    CN_ASSERT_EQ(cn__ws_close_build(out, 1015, NULL, 0), -EINVAL);
    CN_ASSERT_EQ(cn__ws_close_build(out, 0, "x", 1), -EINVAL);
    CN_ASSERT_EQ(cn__ws_close_build(out, 1000, "\xff", 1), -EINVAL);
}

static void close_status_maps_codec_errors(void)
{
    CN_ASSERT_EQ(cn__ws_close_status(CN_EWS_UTF8), 1007);
    CN_ASSERT_EQ(cn__ws_close_status(CN_EWS_TOO_BIG), 1009);
    static const int proto[] = {
        CN_EWS_PROTOCOL, CN_EWS_RSV,      CN_EWS_OPCODE, CN_EWS_CONTROL_LEN, CN_EWS_CONTROL_FRAG,
        CN_EWS_LENGTH,   CN_EWS_UNMASKED, CN_EWS_MASKED, CN_EWS_CLOSE_CODE,  CN_EWS_CLOSE_PAYLOAD};
    for (size_t i = 0; i < sizeof proto / sizeof proto[0]; i++) {
        CN_ASSERT_EQ(cn__ws_close_status(proto[i]), 1002);
    }
    CN_ASSERT_EQ(cn__ws_close_status(-ECONNRESET), 1011);
}

/* ---- handshake keys -------------------------------------------------------- */

static void handshake_accept_key_matches_rfc_sample(void)
{
    char out[29];
    memset(out, 'X', sizeof out);
    CN_ASSERT_EQ(cn__ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    CN_ASSERT_STREQ(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CN_ASSERT_EQ(cn__ws_accept_key("not a key", out), -EINVAL);
}

static void handshake_key_validity_rules(void)
{
    CN_ASSERT(cn__ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=="));
    CN_ASSERT(cn__ws_key_valid("AAAAAAAAAAAAAAAAAAAAAA=="));
    CN_ASSERT(cn__ws_key_valid("+/+/+/+/+/+/+/+/+/+/+w=="));
    CN_ASSERT(!cn__ws_key_valid(""));
    CN_ASSERT(!cn__ws_key_valid("dGhlIHNhbXBsZSBub25jZQ="));   /* short */
    CN_ASSERT(!cn__ws_key_valid("dGhlIHNhbXBsZSBub25jZQ===")); /* long */
    CN_ASSERT(!cn__ws_key_valid("dGhlIHNhbXBsZSBub25jZQ== ")); /* trailing space */
    CN_ASSERT(!cn__ws_key_valid("dGhlIHNhbXBsZSBub25jZ==="));  /* 15 bytes */
    CN_ASSERT(!cn__ws_key_valid("dGhlIHNhbXBsZSBub25jZQAA"));  /* 18 bytes */
    CN_ASSERT(!cn__ws_key_valid("dGhlIHNhbXBsZSBub25jZ-_==")); /* base64url alphabet */
    CN_ASSERT(!cn__ws_key_valid("dGhlIHNhbXBsZSBub2 jZQ=="));
}

static void handshake_make_key_is_valid_and_fresh(void)
{
    char a[25], b[25];
    CN_ASSERT_EQ(cn__ws_make_key(a), 0);
    CN_ASSERT_EQ(cn__ws_make_key(b), 0);
    CN_ASSERT_EQ(strlen(a), 24);
    CN_ASSERT(cn__ws_key_valid(a));
    CN_ASSERT(cn__ws_key_valid(b));
    CN_ASSERT(strcmp(a, b) != 0);
    char acc[29];
    CN_ASSERT_EQ(cn__ws_accept_key(a, acc), 0);
    CN_ASSERT_EQ(strlen(acc), 28);
}

/* ---- over-read guard -------------------------------------------------------- */

/* Places each input at the end of a page followed by a PROT_NONE page and
 * runs every parser on every prefix: a read past the end faults. */
static void codec_never_reads_past_the_input(void)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uint8_t *map = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CN_ASSERT(map != MAP_FAILED);
    CN_ASSERT_EQ(mprotect(map + pg, pg, PROT_NONE), 0);
    uint8_t *end = map + pg;

    uint8_t hdr64[14];
    const uint8_t key[4] = {1, 2, 3, 4};
    cn__ws_encode_header(hdr64, true, CN__WS_OP_BINARY, true, key, 1u << 20);
    const struct {
        const void *p;
        size_t n;
    } inputs[] = {
        {rfc_hello, sizeof rfc_hello},
        {rfc_masked_hello, sizeof rfc_masked_hello},
        {rfc_64k, sizeof rfc_64k},
        {hdr64, sizeof hdr64},
        {"\x82\x7f\x80", 3},
        {"\x03\xe8"
         "normal closure, with a reason long enough for the word loop",
         62},
        {"\x03\xe8"
         "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80",
         17},
        {"0123456789abcdef0123456789abcdef0123456789", 42},
        {"0123456789abcdef0123456789abcd\xf0\x9f\x98\x80", 34},
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        for (size_t n = 0; n <= inputs[i].n; n++) {
            uint8_t *p = end - n;
            memcpy(p, inputs[i].p, n);
            struct cn__ws_header h;
            for (unsigned flags = 0; flags < 4; flags++) {
                int rc = cn__ws_parse_header(p, n, flags, &h);
                CN_ASSERT_LE(rc, (int)n);
            }
            struct cn__ws_utf8 st = {0};
            (void)cn__ws_utf8_feed(&st, p, n);
            (void)cn__ws_utf8_valid(p, n);
            unsigned code;
            const uint8_t *reason;
            size_t rlen;
            (void)cn__ws_close_parse(p, n, &code, &reason, &rlen);
            for (size_t off = 0; off < 4; off++) {
                cn__ws_mask(p, n, key, off);
            }
        }
    }
    CN_ASSERT_EQ(munmap(map, 2 * pg), 0);
}

CN_TEST_MAIN(
    CN_CASE(frame_parses_rfc_unmasked_hello), CN_CASE(frame_parses_rfc_masked_hello),
    CN_CASE(frame_parses_rfc_fragmented_hello), CN_CASE(frame_parses_rfc_ping_and_masked_pong),
    CN_CASE(frame_parses_rfc_256_and_64k_lengths), CN_CASE(frame_encode_matches_rfc_vectors),
    CN_CASE(frame_encode_uses_minimal_length_and_round_trips),
    CN_CASE(frame_parse_needs_more_one_byte_at_a_time), CN_CASE(frame_rejects_reserved_bits),
    CN_CASE(frame_rejects_reserved_opcodes), CN_CASE(frame_rejects_fragmented_control),
    CN_CASE(frame_rejects_control_over_125), CN_CASE(frame_rejects_non_minimal_length),
    CN_CASE(frame_rejects_64bit_length_with_msb_set), CN_CASE(frame_server_rejects_unmasked),
    CN_CASE(frame_client_rejects_masked), CN_CASE(frame_rules_apply_in_documented_order),
    CN_CASE(mask_matches_bytewise_reference), CN_CASE(mask_in_chunks_equals_one_pass),
    CN_CASE(utf8_accepts_valid_multibyte), CN_CASE(utf8_rejects_each_invalid_class),
    CN_CASE(utf8_fails_fast_at_first_invalid_byte),
    CN_CASE(utf8_code_point_split_across_fragments_is_valid),
    CN_CASE(utf8_incomplete_at_end_is_not_complete), CN_CASE(utf8_ascii_fast_path_sees_every_byte),
    CN_CASE(utf8_matches_reference_on_all_short_sequences),
    CN_CASE(close_validates_each_code_range), CN_CASE(close_empty_payload_is_no_status),
    CN_CASE(close_rejects_one_byte_payload), CN_CASE(close_rejects_payload_over_125),
    CN_CASE(close_reason_must_be_utf8), CN_CASE(close_build_round_trips_and_rejects),
    CN_CASE(close_status_maps_codec_errors), CN_CASE(handshake_accept_key_matches_rfc_sample),
    CN_CASE(handshake_key_validity_rules), CN_CASE(handshake_make_key_is_valid_and_fresh),
    CN_CASE(codec_never_reads_past_the_input))
