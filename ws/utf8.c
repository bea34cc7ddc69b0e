/* SPDX-License-Identifier: MIT */
/*
 * Incremental, fail-fast UTF-8 validation for WebSocket text (RFC 6455
 * §5.6, §8.1; RFC 3629 §4 for the well-formed byte sequences).
 *
 * A deterministic automaton over byte classes: the state says how many
 * continuation bytes are still due and, for the second byte of a sequence,
 * which sub-range is allowed (that is where overlongs, surrogates and code
 * points past U+10FFFF are excluded). A byte that cannot follow moves to
 * BAD at once, so an error is reported at the first bad byte, even in the
 * middle of a fragment, and a code point split across fragments simply
 * leaves the state mid-sequence. Runs of ASCII between code points are
 * skipped eight bytes at a time.
 *
 * The state fits in a byte; BAD is absorbing. Called by the close
 * payload parser in codec.c, the ws/ message reader, and fuzz/ws_frame.c.
 */
#include "ws/codec.h"

#include <string.h>

enum {
    OK = 0,  /* between code points */
    BAD = 1, /* rejected, for good */
    C1 = 2,  /* one continuation byte 80..BF due */
    C2 = 3,  /* two due */
    C3 = 4,  /* three due */
    E0 = 5,  /* after E0: next A0..BF (no overlong 3-byte forms), then one */
    ED = 6,  /* after ED: next 80..9F (no surrogates D800..DFFF), then one */
    F0 = 7,  /* after F0: next 90..BF (no overlong 4-byte forms), then two */
    F4 = 8,  /* after F4: next 80..8F (nothing past U+10FFFF), then two */
    NSTATES = 9,
};

/* Byte classes: 0 ASCII; 1 80..8F, 2 90..9F, 3 A0..BF (continuations split
 * where the second-byte ranges differ); 4 never valid (C0, C1, F5..FF);
 * 5 C2..DF; 6 E0; 7 E1..EC, EE, EF; 8 ED; 9 F0; 10 F1..F3; 11 F4. */
/* clang-format off */
static const uint8_t byte_class[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 00..0F */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 10..1F */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 20..2F */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 30..3F */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 40..4F */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 50..5F */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 60..6F */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 70..7F */
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1, /* 80..8F */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2, /* 90..9F */
     3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3, /* A0..AF */
     3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3,  3, /* B0..BF */
     4,  4,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5, /* C0..CF */
     5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5,  5, /* D0..DF */
     6,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  8,  7,  7, /* E0..EF */
     9, 10, 10, 10, 11,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4, /* F0..FF */
};
/* clang-format on */

/* next_state[state][byte_class[byte]] */
/* clang-format off */
static const uint8_t next_state[NSTATES][12] = {
    /*       ASCII  80-8F  90-9F  A0-BF  never  C2-DF  E0   E1-EF  ED   F0   F1-F3  F4 */
    [OK]  = {OK,    BAD,   BAD,   BAD,   BAD,   C1,    E0,  C2,    ED,  F0,  C3,    F4},
    [BAD] = {BAD,   BAD,   BAD,   BAD,   BAD,   BAD,   BAD, BAD,   BAD, BAD, BAD,   BAD},
    [C1]  = {BAD,   OK,    OK,    OK,    BAD,   BAD,   BAD, BAD,   BAD, BAD, BAD,   BAD},
    [C2]  = {BAD,   C1,    C1,    C1,    BAD,   BAD,   BAD, BAD,   BAD, BAD, BAD,   BAD},
    [C3]  = {BAD,   C2,    C2,    C2,    BAD,   BAD,   BAD, BAD,   BAD, BAD, BAD,   BAD},
    [E0]  = {BAD,   BAD,   BAD,   C1,    BAD,   BAD,   BAD, BAD,   BAD, BAD, BAD,   BAD},
    [ED]  = {BAD,   C1,    C1,    BAD,   BAD,   BAD,   BAD, BAD,   BAD, BAD, BAD,   BAD},
    [F0]  = {BAD,   BAD,   C2,    C2,    BAD,   BAD,   BAD, BAD,   BAD, BAD, BAD,   BAD},
    [F4]  = {BAD,   C2,    BAD,   BAD,   BAD,   BAD,   BAD, BAD,   BAD, BAD, BAD,   BAD},
};
/* clang-format on */

#define HIGH_BITS 0x8080808080808080ull

/* Length of the all-ASCII run at p, counted in whole 8-byte words. */
static size_t ascii_words(const uint8_t *p, size_t len)
{
    size_t i = 0;
    for (; len - i >= 16; i += 16) {
        uint64_t a, b;
        memcpy(&a, p + i, 8);
        memcpy(&b, p + i + 8, 8);
        if ((a | b) & HIGH_BITS) {
            break;
        }
    }
    for (; len - i >= 8; i += 8) {
        uint64_t a;
        memcpy(&a, p + i, 8);
        if (a & HIGH_BITS) {
            break;
        }
    }
    return i;
}

int cn__ws_utf8_feed(struct cn__ws_utf8 *st, const uint8_t *p, size_t len)
{
    unsigned s = st->state;
    size_t i = 0;

    if (s == BAD) {
        return CN_EWS_UTF8;
    }
    while (i < len) {
        if (s == OK && p[i] < 0x80) {
            i += ascii_words(p + i, len - i);
            if (i == len) {
                break;
            }
        }
        s = next_state[s][byte_class[p[i]]];
        i++;
        if (s == BAD) {
            st->state = BAD;
            return CN_EWS_UTF8;
        }
    }
    st->state = (uint8_t)s;
    return 0;
}

bool cn__ws_utf8_complete(const struct cn__ws_utf8 *st)
{
    return st->state == OK;
}

bool cn__ws_utf8_valid(const uint8_t *p, size_t len)
{
    struct cn__ws_utf8 st = {0};
    return cn__ws_utf8_feed(&st, p, len) == 0 && cn__ws_utf8_complete(&st);
}
