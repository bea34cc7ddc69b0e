/* SPDX-License-Identifier: MIT */
/*
 * Kinesis hash keys and the shard map.
 *
 * Owns: partition key -> hash key (MD5, big-endian), strict decimal parsing
 * and formatting of 128-bit keys, and the map from a hash key to the open
 * shard whose range holds it. Pure: the producer calls it per record to
 * predict shards, the shard-map refresher feeds it ListShards results.
 *
 * Invariant of a built map: its shards are sorted by starting key, the
 * first starts at 0, each starts one past the previous ending, the last
 * ends at 2^128-1. So every key has exactly one shard and lookup is a
 * binary search for the last starting key <= k.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* MD5_Init & co., see cn__hashkey_from_pk */
#include "kinesis/hashkey.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/md5.h>

__extension__ typedef unsigned __int128 u128;

static u128 to_u128(const struct cn__hashkey *k)
{
    return ((u128)k->hi << 64) | k->lo;
}

static struct cn__hashkey from_u128(u128 v)
{
    struct cn__hashkey k = {.hi = (uint64_t)(v >> 64), .lo = (uint64_t)v};
    return k;
}

/* MD5 through its low-level functions: a context on the stack, no
 * allocation. EVP_Digest makes and frees a context, takes and drops a
 * reference on the digest and cleanses memory on every call: for a short
 * partition key that was ~200 ns, four times the hashing itself, on the
 * producer's per-record path (bench-kinesis ceiling, perf). OpenSSL 3
 * marks these deprecated but keeps them; MD5 here is a hash function
 * Kinesis dictates, not a security primitive. */
void cn__hashkey_from_pk(struct cn__hashkey *out, const void *pk, size_t len)
{
    unsigned char d[MD5_DIGEST_LENGTH];
    MD5_CTX c;
    if (!MD5_Init(&c) || !MD5_Update(&c, pk, len) || !MD5_Final(d, &c)) {
        abort(); /* MD5 refused (a FIPS-only build): Kinesis cannot be used */
    }
    uint64_t hi = 0, lo = 0;
    for (int i = 0; i < 8; i++) {
        hi = (hi << 8) | d[i];
        lo = (lo << 8) | d[8 + i];
    }
    out->hi = hi;
    out->lo = lo;
}

int cn__hashkey_parse(struct cn__hashkey *out, const char *s, size_t len)
{
    /* PutRecordsRequestEntry.ExplicitHashKey pattern 0|([1-9]\d{0,38}). */
    if (len == 0 || len > CN__HASHKEY_DEC_MAX - 1 || (s[0] == '0' && len > 1)) {
        return -EINVAL;
    }
    const u128 max = ~(u128)0;
    u128 v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)s[i] - (unsigned)'0';
        if (d > 9) {
            return -EINVAL;
        }
        if (v > (max - d) / 10) {
            return -EINVAL; /* above 2^128-1 */
        }
        v = v * 10 + d;
    }
    *out = from_u128(v);
    return 0;
}

size_t cn__hashkey_format(const struct cn__hashkey *k, char buf[CN__HASHKEY_DEC_MAX])
{
    char tmp[CN__HASHKEY_DEC_MAX];
    size_t n = 0;
    u128 v = to_u128(k);

    /* Peel 19 digits at a time so most divisions are 64-bit. */
    const uint64_t p19 = 10000000000000000000ull;
    while (v > UINT64_MAX) {
        uint64_t chunk = (uint64_t)(v % p19);
        v /= p19;
        for (int i = 0; i < 19; i++) {
            tmp[n++] = (char)('0' + chunk % 10);
            chunk /= 10;
        }
    }
    uint64_t w = (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + w % 10);
        w /= 10;
    } while (w != 0);
    for (size_t i = 0; i < n; i++) {
        buf[i] = tmp[n - 1 - i];
    }
    buf[n] = '\0';
    return n;
}

int cn__hashkey_cmp(const struct cn__hashkey *a, const struct cn__hashkey *b)
{
    if (a->hi != b->hi) {
        return a->hi < b->hi ? -1 : 1;
    }
    if (a->lo != b->lo) {
        return a->lo < b->lo ? -1 : 1;
    }
    return 0;
}

struct shard {
    struct cn__hashkey start;
    struct cn__hashkey end;
    char *id; /* owned */
};

struct cn__shardmap {
    size_t n;
    struct shard *shards; /* sorted by start, tiling 0 .. 2^128-1 */
};

static int cmp_start(const void *a, const void *b)
{
    const struct shard *x = a, *y = b;
    return cn__hashkey_cmp(&x->start, &y->start);
}

/* Checks the tiling invariant on shards sorted by start. */
static int check_tiling(const struct shard *s, size_t n)
{
    if (n == 0 || to_u128(&s[0].start) != 0 || to_u128(&s[n - 1].end) != ~(u128)0) {
        return -EAGAIN;
    }
    for (size_t i = 1; i < n; i++) {
        u128 prev_end = to_u128(&s[i - 1].end);
        /* prev_end < 2^128-1 here: otherwise s[i] overlaps s[i-1]. */
        if (prev_end == ~(u128)0 || to_u128(&s[i].start) != prev_end + 1) {
            return -EAGAIN;
        }
    }
    return 0;
}

static int parse_cstr(struct cn__hashkey *out, const char *s)
{
    return s == NULL ? -EINVAL : cn__hashkey_parse(out, s, strlen(s));
}

/* Fills m->shards from the open entries of shards[]. */
static int fill(struct cn__shardmap *m, const struct cn__shard_desc *shards, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct cn__shard_desc *d = &shards[i];
        if (d->closed) {
            continue;
        }
        struct shard *s = &m->shards[m->n];
        if (d->id == NULL || d->id[0] == '\0' || parse_cstr(&s->start, d->starting) < 0 ||
            parse_cstr(&s->end, d->ending) < 0 || cn__hashkey_cmp(&s->start, &s->end) > 0) {
            return -EINVAL;
        }
        s->id = strdup(d->id);
        if (s->id == NULL) {
            return -ENOMEM;
        }
        m->n++;
    }
    return 0;
}

int cn__shardmap_new(struct cn__shardmap **out, const struct cn__shard_desc *shards, size_t n)
{
    *out = NULL;
    struct cn__shardmap *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return -ENOMEM;
    }
    m->shards = calloc(n ? n : 1, sizeof *m->shards);
    if (m->shards == NULL) {
        free(m);
        return -ENOMEM;
    }
    int rc = fill(m, shards, n);
    if (rc == 0) {
        qsort(m->shards, m->n, sizeof *m->shards, cmp_start);
        rc = check_tiling(m->shards, m->n);
    }
    if (rc < 0) {
        cn__shardmap_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void cn__shardmap_free(struct cn__shardmap *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        free(m->shards[i].id);
    }
    free(m->shards);
    free(m);
}

size_t cn__shardmap_count(const struct cn__shardmap *m)
{
    return m->n;
}

size_t cn__shardmap_find(const struct cn__shardmap *m, const struct cn__hashkey *k)
{
    /* Last shard whose start <= k; shards[0].start == 0 so one exists. */
    size_t lo = 0, hi = m->n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (cn__hashkey_cmp(&m->shards[mid].start, k) <= 0) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

const char *cn__shardmap_id(const struct cn__shardmap *m, size_t i)
{
    return m->shards[i].id;
}

void cn__shardmap_range(const struct cn__shardmap *m, size_t i, struct cn__hashkey *starting,
                        struct cn__hashkey *ending)
{
    *starting = m->shards[i].start;
    *ending = m->shards[i].end;
}
