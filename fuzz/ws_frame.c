/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the WebSocket codec (ws/codec.h): arbitrary bytes
 * through the frame header parser (every role and flag combination), the
 * unmasking of whatever payload follows, the UTF-8 validator (whole, byte
 * by byte, and in fragments cut at input-chosen points) and the close
 * payload parser, checking invariants rather than just "no crash":
 *
 * - a header parse consumes 2..14 bytes and never more than it was given;
 *   its fields agree with the encoded length; encode(parse(x)) == x;
 *   every shorter prefix of a valid header needs more, and no prefix of an
 *   invalid one succeeds or reports a different error;
 * - masking equals a byte-by-byte XOR whatever the chunking, and is an
 *   involution;
 * - UTF-8 agrees with a reference decoder, fails at the same byte however
 *   the input is fragmented, and fails fast (at the first bad byte);
 * - a valid close payload rebuilds to the same bytes;
 * - the accept key is computed exactly for the keys that pass validation.
 *
 * Built by fuzz/meson.build with -fsanitize=fuzzer,address,undefined.
 * With -DCN_FUZZ_REPLAY_MAIN it gets a main() that runs every file named on
 * the command line (or found in a named directory) through the same
 * function: tests/ws/meson.build registers that on every build, over the
 * seed corpus in fuzz/corpus/ws_frame.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool is_frame_error(int rc)
{
    return rc == CN_EWS_RSV || rc == CN_EWS_OPCODE || rc == CN_EWS_CONTROL_FRAG ||
           rc == CN_EWS_UNMASKED || rc == CN_EWS_MASKED || rc == CN_EWS_CONTROL_LEN ||
           rc == CN_EWS_LENGTH;
}

/* ---- references ---------------------------------------------------------- */

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

/* ---- frame header --------------------------------------------------------- */

static void check_header(const uint8_t *d, size_t n, unsigned flags, struct cn__ws_header *h,
                         int *rc_out)
{
    int rc = cn__ws_parse_header(d, n, flags, h);
    *rc_out = rc;
    size_t probe = n < CN__WS_MAX_HEADER ? n : CN__WS_MAX_HEADER;
    if (rc < 0) {
        CHECK(is_frame_error(rc));
        for (size_t k = 0; k < probe; k++) {
            struct cn__ws_header t;
            int r = cn__ws_parse_header(d, k, flags, &t);
            CHECK(r == 0 || r == rc);
        }
        return;
    }
    if (rc == 0) {
        CHECK(n < CN__WS_MAX_HEADER);
        return;
    }
    CHECK(rc >= 2 && rc <= CN__WS_MAX_HEADER && (size_t)rc <= n);
    for (size_t k = 0; k < (size_t)rc; k++) {
        struct cn__ws_header t;
        CHECK(cn__ws_parse_header(d, k, flags, &t) == 0);
    }
    size_t ext = h->len < 126 ? 0 : h->len <= 0xFFFF ? 2 : 8;
    CHECK((size_t)rc == 2 + ext + (h->masked ? 4 : 0));
    CHECK(h->masked == ((flags & CN__WS_SERVER) != 0));
    CHECK(h->len >> 63 == 0);
    CHECK(!h->rsv2 && !h->rsv3);
    CHECK(!h->rsv1 || (flags & CN__WS_ALLOW_RSV1));
    CHECK(h->opcode <= CN__WS_OP_BINARY ||
          (h->opcode >= CN__WS_OP_CLOSE && h->opcode <= CN__WS_OP_PONG));
    if (h->opcode >= CN__WS_OP_CLOSE) {
        CHECK(h->fin && h->len <= CN__WS_MAX_CONTROL && !h->rsv1);
    }
    uint8_t out[CN__WS_MAX_HEADER];
    size_t m = cn__ws_encode_header(out, h->fin, h->opcode | (h->rsv1 ? CN__WS_RSV1 : 0), h->masked,
                                    h->mask, h->len);
    CHECK(m == (size_t)rc);
    CHECK(memcmp(out, d, m) == 0);
}

/* ---- masking ------------------------------------------------------------------ */

/* Unmasks p in chunks whose sizes come from `cuts`, checks against the
 * reference, and leaves the unmasked bytes in out. */
static void check_mask(const uint8_t *p, size_t len, const uint8_t key[4], const uint8_t *cuts,
                       size_t ncuts, uint8_t *out)
{
    uint8_t *ref = malloc(len + 1);
    CHECK(ref != NULL);
    memcpy(out, p, len);
    for (size_t i = 0; i < len; i++) {
        ref[i] = p[i] ^ key[i % 4];
    }
    size_t off = 0, c = 0;
    while (off < len) {
        size_t step = ncuts ? (size_t)cuts[c++ % ncuts] + 1 : len;
        if (step > len - off) {
            step = len - off;
        }
        cn__ws_mask(out + off, step, key, off);
        off += step;
    }
    CHECK(memcmp(out, ref, len) == 0);
    cn__ws_mask(ref, len, key, 0); /* involution: back to p */
    CHECK(memcmp(ref, p, len) == 0);
    free(ref);
}

/* ---- UTF-8 ----------------------------------------------------------------------- */

/* Fail fast, checked against the reference: p[0..bad) is a valid prefix
 * (some continuation bytes complete it) and p[0..bad] is not (none do). */
static bool completes(const uint8_t *tail, size_t n)
{
    /* one byte per continuation sub-range (80..8F, 90..9F, A0..BF): which
     * sequences are valid depends only on these ranges */
    static const uint8_t conts[] = {0x80, 0x90, 0xA0};
    uint8_t buf[8];
    memcpy(buf, tail, n);
    if (ref_utf8_valid(buf, n)) {
        return true;
    }
    for (size_t extra = 1; extra <= 3; extra++) {
        for (size_t combo = 0; combo < 27; combo++) {
            size_t v = combo;
            for (size_t k = 0; k < extra; k++, v /= 3) {
                buf[n + k] = conts[v % 3];
            }
            if (ref_utf8_valid(buf, n + extra)) {
                return true;
            }
        }
    }
    return false;
}

static void check_fails_fast(const uint8_t *p, size_t bad)
{
    /* the last code point boundary before the bad byte is at most 3 back */
    size_t k = bad;
    while (!ref_utf8_valid(p, k)) {
        CHECK(k > 0 && bad - k < 3);
        k--;
    }
    CHECK(completes(p + k, bad - k));
    CHECK(!completes(p + k, bad - k + 1));
}

static void check_utf8(const uint8_t *p, size_t len, const uint8_t *cuts, size_t ncuts)
{
    bool valid = cn__ws_utf8_valid(p, len);
    CHECK(valid == ref_utf8_valid(p, len));

    /* byte by byte: where it fails */
    struct cn__ws_utf8 st = {0};
    size_t bad = len;
    for (size_t i = 0; i < len; i++) {
        if (cn__ws_utf8_feed(&st, p + i, 1) < 0) {
            bad = i;
            break;
        }
    }
    CHECK(valid == (bad == len && cn__ws_utf8_complete(&st)));
    if (bad < len) {
        check_fails_fast(p, bad);
    }

    /* fragments (empty ones included): the error comes in the fragment
     * holding byte `bad`, and only then */
    struct cn__ws_utf8 fs = {0};
    size_t off = 0, c = 0;
    while (off < len) {
        size_t step = ncuts ? (size_t)cuts[c++ % ncuts] % 17 : len;
        if (step == 0) {
            CHECK(cn__ws_utf8_feed(&fs, p + off, 0) == 0);
            step = 1;
        }
        if (step > len - off) {
            step = len - off;
        }
        int rc = cn__ws_utf8_feed(&fs, p + off, step);
        CHECK((rc < 0) == (bad >= off && bad < off + step));
        if (rc < 0) {
            CHECK(rc == CN_EWS_UTF8);
            CHECK(cn__ws_utf8_feed(&fs, p, 0) == CN_EWS_UTF8); /* stays rejected */
            CHECK(!cn__ws_utf8_complete(&fs));
            return;
        }
        off += step;
    }
    CHECK(cn__ws_utf8_complete(&fs) == valid);
}

/* ---- close payloads ---------------------------------------------------------- */

static void check_close(const uint8_t *p, size_t len)
{
    unsigned code = 0;
    const uint8_t *reason = NULL;
    size_t rlen = 0;
    int rc = cn__ws_close_parse(p, len, &code, &reason, &rlen);
    if (rc < 0) {
        CHECK(rc == CN_EWS_CONTROL_LEN || rc == CN_EWS_CLOSE_PAYLOAD || rc == CN_EWS_CLOSE_CODE ||
              rc == CN_EWS_UTF8);
        CHECK(len > 1 || rc == CN_EWS_CLOSE_PAYLOAD);
        return;
    }
    CHECK(rc == 0 && len <= CN__WS_MAX_CONTROL && len != 1);
    if (len == 0) {
        CHECK(code == CN__WS_CLOSE_NO_STATUS && rlen == 0);
        return;
    }
    CHECK(cn__ws_close_code_valid(code) && reason == p + 2 && rlen == len - 2);
    uint8_t out[CN__WS_MAX_CONTROL];
    int n = cn__ws_close_build(out, code, reason, rlen);
    CHECK(n == (int)len && memcmp(out, p, len) == 0);
}

/* ---- handshake keys ------------------------------------------------------------ */

static void check_key(const uint8_t *d, size_t n)
{
    char key[32], acc[29];
    size_t k = n < sizeof key - 1 ? n : sizeof key - 1;
    memcpy(key, d, k);
    key[k] = '\0';
    bool valid = cn__ws_key_valid(key);
    CHECK(!valid || strlen(key) == 24);
    int rc = cn__ws_accept_key(key, acc);
    CHECK(valid ? rc == 0 && strlen(acc) == 28 : rc == -EINVAL);
}

/* ---- entry -------------------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the last few bytes double as chunking choices; the parsers see all */
    size_t ncuts = size < 4 ? size : 4;
    const uint8_t *cuts = data + size - ncuts;

    for (unsigned flags = 0; flags < 4; flags++) {
        struct cn__ws_header h;
        int rc;
        check_header(data, size, flags, &h, &rc);
        if (rc <= 0) {
            continue;
        }
        const uint8_t *payload = data + rc;
        size_t avail = size - (size_t)rc;
        size_t plen = h.len < avail ? (size_t)h.len : avail;
        uint8_t *buf = malloc(plen + 1);
        CHECK(buf != NULL);
        if (h.masked) {
            check_mask(payload, plen, h.mask, cuts, ncuts, buf);
        } else {
            memcpy(buf, payload, plen);
        }
        if (h.opcode == CN__WS_OP_TEXT || h.opcode == CN__WS_OP_CONT) {
            check_utf8(buf, plen, cuts, ncuts);
        }
        if (h.opcode == CN__WS_OP_CLOSE && plen == h.len) {
            check_close(buf, plen);
        }
        free(buf);
    }

    /* the raw bytes too: as text, as a close payload, as a masked payload */
    check_utf8(data, size, cuts, ncuts);
    check_close(data, size);
    check_key(data, size);
    if (size >= 4) {
        uint8_t *buf = malloc(size);
        CHECK(buf != NULL);
        check_mask(data + 4, size - 4, data, cuts, ncuts, buf);
        free(buf);
    }
    return 0;
}

#ifdef CN_FUZZ_REPLAY_MAIN
#include <dirent.h>
#include <sys/stat.h>

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    CHECK(buf != NULL);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            break;
        }
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            CHECK(buf != NULL);
        }
    }
    fclose(f);
    /* an exact-size copy so ASan catches reads past the input */
    uint8_t *exact = malloc(n ? n : 1);
    CHECK(exact != NULL);
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int run_path(const char *path, size_t *count)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(sb.st_mode)) {
        (*count)++;
        return run_file(path);
    }
    DIR *dir = opendir(path);
    if (dir == NULL) {
        perror(path);
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        rc = run_path(sub, count);
    }
    closedir(dir);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    for (int i = 1; i < argc; i++) {
        if (run_path(argv[i], &count) != 0) {
            return 1;
        }
    }
    printf("%zu inputs ran clean\n", count);
    return count > 0 ? 0 : 1; /* an empty or missing corpus is a failure */
}
#endif
