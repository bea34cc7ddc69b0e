/* SPDX-License-Identifier: MIT */
/*
 * The KPL aggregation codec (kinesis/agg.c).
 *
 * - The aggregator's size prediction against its real encoding, and its
 *   encoding against protobuf-c's pack of the same message, for thousands
 *   of random records.
 * - The deaggregator's KCL rules: plain fallback, bad indexes, the hash key
 *   range filter, an over-read guard.
 * - The oracle, npm aws-kinesis-agg, both ways (tests/kinesis/agg_oracle.js;
 *   skipped when node or the module is missing), and golden vectors it made
 *   (tests/kinesis/golden/, always run).
 */
#include "test.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "kinesis/agg.h"
#include "kinesis/kpl.pb-c.h"

/* ---- helpers ------------------------------------------------------------ */

struct rec {
    char pk[320];
    size_t pk_len;
    char ehk[CN__HASHKEY_DEC_MAX];
    size_t ehk_len; /* 0: none */
    uint8_t *data;
    size_t data_len;
};

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    /* xorshift64*: deterministic across platforms */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static size_t rnd_below(size_t n)
{
    return (size_t)(rnd() % n);
}

static const char *ehk_of(const struct rec *r)
{
    return r->ehk_len ? r->ehk : NULL;
}

static void rec_free(struct rec *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].data);
    }
    free(r);
}

static void md5(const uint8_t *p, size_t n, uint8_t out[16])
{
    unsigned int len = 0;
    CN_ASSERT(EVP_Digest(p, n, out, &len, EVP_md5(), NULL));
    CN_ASSERT_EQ(len, 16);
}

/* magic + pb + MD5(pb), malloc'ed. */
static uint8_t *frame(const uint8_t *pb, size_t n, size_t *out_len)
{
    uint8_t *p = malloc(n + CN__AGG_OVERHEAD);
    CN_ASSERT(p != NULL);
    memcpy(p, cn__agg_magic, 4);
    if (n > 0) {
        memcpy(p + 4, pb, n);
    }
    md5(pb, n, p + 4 + n);
    *out_len = n + CN__AGG_OVERHEAD;
    return p;
}

static uint8_t *encode(const struct cn__agg *agg, size_t *len)
{
    size_t n = cn__agg_size(agg);
    uint8_t *out = malloc(n);
    CN_ASSERT(out != NULL);
    CN_ASSERT_EQ(cn__agg_encode(agg, out, n), (ssize_t)n);
    *len = n;
    return out;
}

/* protobuf-c's pack of the message the aggregator should have built,
 * with first-use dedup done here the slow, obvious way. */
static uint8_t *pbc_pack(const struct rec *r, size_t n, size_t *len)
{
    ProtobufCBinaryData *pks = calloc(n, sizeof *pks), *ehks = calloc(n, sizeof *ehks);
    Cn__Kpl__Record *recs = calloc(n, sizeof *recs);
    Cn__Kpl__Record **ptrs = calloc(n, sizeof *ptrs);
    CN_ASSERT(pks && ehks && recs && ptrs);
    size_t npk = 0, nehk = 0;
    for (size_t i = 0; i < n; i++) {
        cn__kpl__record__init(&recs[i]);
        size_t j = 0;
        while (j < npk &&
               !(pks[j].len == r[i].pk_len && !memcmp(pks[j].data, r[i].pk, pks[j].len))) {
            j++;
        }
        if (j == npk) {
            pks[npk++] = (ProtobufCBinaryData){r[i].pk_len, (uint8_t *)r[i].pk};
        }
        recs[i].partition_key_index = j;
        if (r[i].ehk_len) {
            j = 0;
            while (j < nehk &&
                   !(ehks[j].len == r[i].ehk_len && !memcmp(ehks[j].data, r[i].ehk, ehks[j].len))) {
                j++;
            }
            if (j == nehk) {
                ehks[nehk++] = (ProtobufCBinaryData){r[i].ehk_len, (uint8_t *)r[i].ehk};
            }
            recs[i].has_explicit_hash_key_index = 1;
            recs[i].explicit_hash_key_index = j;
        }
        recs[i].data = (ProtobufCBinaryData){r[i].data_len, r[i].data};
        ptrs[i] = &recs[i];
    }
    Cn__Kpl__AggregatedRecord ar = CN__KPL__AGGREGATED_RECORD__INIT;
    ar.n_partition_key_table = npk;
    ar.partition_key_table = pks;
    ar.n_explicit_hash_key_table = nehk;
    ar.explicit_hash_key_table = ehks;
    ar.n_records = n;
    ar.records = ptrs;
    *len = cn__kpl__aggregated_record__get_packed_size(&ar);
    uint8_t *out = malloc(*len + 1);
    CN_ASSERT(out != NULL);
    CN_ASSERT_EQ(cn__kpl__aggregated_record__pack(&ar, out), *len);
    free(pks);
    free(ehks);
    free(recs);
    free(ptrs);
    return out;
}

/* The aggregate's bytes are magic + protobuf-c's pack + MD5 of it. */
static void assert_matches_pbc(const uint8_t *enc, size_t len, const struct rec *r, size_t n)
{
    size_t pb_len;
    uint8_t *pb = pbc_pack(r, n, &pb_len);
    CN_ASSERT_EQ(len, pb_len + CN__AGG_OVERHEAD);
    CN_ASSERT_MEMEQ(enc, cn__agg_magic, 4);
    CN_ASSERT_MEMEQ(enc + 4, pb, pb_len);
    uint8_t d[16];
    md5(pb, pb_len, d);
    CN_ASSERT_MEMEQ(enc + 4 + pb_len, d, 16);
    free(pb);
}

static void assert_user_record(const struct cn__user_record *u, const struct rec *r)
{
    CN_ASSERT_EQ(u->pk_len, r->pk_len);
    CN_ASSERT_MEMEQ(u->pk, r->pk, r->pk_len);
    if (r->ehk_len) {
        CN_ASSERT(u->ehk != NULL);
        CN_ASSERT_EQ(u->ehk_len, r->ehk_len);
        CN_ASSERT_MEMEQ(u->ehk, r->ehk, r->ehk_len);
    } else {
        CN_ASSERT(u->ehk == NULL);
    }
    CN_ASSERT_EQ(u->data_len, r->data_len);
    CN_ASSERT(u->data != NULL);
    if (r->data_len) {
        CN_ASSERT_MEMEQ(u->data, r->data, r->data_len);
    }
}

static struct cn__user_record outer_of(const uint8_t *p, size_t n)
{
    struct cn__user_record o = {
        .pk = (const uint8_t *)"outer", .pk_len = 5, .data = p, .data_len = n};
    return o;
}

/* Deaggregates and checks the result is exactly r[0..n). */
static void assert_deaggregates_to(const uint8_t *p, size_t len, const struct rec *r, size_t n)
{
    struct cn__deagg d;
    struct cn__user_record o = outer_of(p, len), u;
    CN_ASSERT_EQ(cn__deagg_open(&d, &o, NULL), 1);
    for (size_t i = 0; i < n; i++) {
        CN_ASSERT_EQ(cn__deagg_next(&d, &u), 1);
        assert_user_record(&u, &r[i]);
        CN_ASSERT_EQ(u.sub_seq, i);
    }
    CN_ASSERT_EQ(cn__deagg_next(&d, &u), 0);
    CN_ASSERT_EQ(cn__deagg_next(&d, &u), 0);
    cn__deagg_close(&d);
    cn__deagg_close(&d);
}

/* Data bytes of every value 0..255 (zeros included), lengths across the
 * varint boundaries now and then. */
static void random_data(struct rec *r, size_t max)
{
    static const size_t edges[] = {0, 1, 127, 128, 129, 16383, 16384, 16385};
    size_t n = rnd_below(8) == 0 ? edges[rnd_below(8)] : rnd_below(max + 1);
    if (n > max) {
        n = max;
    }
    r->data = malloc(n ? n : 1);
    CN_ASSERT(r->data != NULL);
    for (size_t i = 0; i < n; i++) {
        r->data[i] = (uint8_t)rnd();
    }
    r->data_len = n;
}

static void random_ehk(struct rec *r)
{
    struct cn__hashkey k = {rnd() >> rnd_below(64), rnd()};
    r->ehk_len = cn__hashkey_format(&k, r->ehk);
}

/* ---- aggregator --------------------------------------------------------- */

static size_t predictions_checked;

/* Adds recs one by one under max_size; whenever one does not fit, checks the
 * aggregate so far against its predictions and protobuf-c, then starts
 * over. Every add is predicted first. */
static void add_checked(struct cn__agg *agg, struct rec *r, size_t n, size_t max_size)
{
    size_t first = 0;
    for (size_t i = 0; i <= n; i++) {
        size_t want = 0;
        ssize_t got = -EMSGSIZE;
        if (i < n) {
            want = cn__agg_size_if_added(agg, r[i].pk, r[i].pk_len, ehk_of(&r[i]), r[i].ehk_len,
                                         r[i].data_len);
            got = cn__agg_add(agg, r[i].pk, r[i].pk_len, ehk_of(&r[i]), r[i].ehk_len, r[i].data,
                              r[i].data_len);
            predictions_checked++;
        }
        if (got >= 0) {
            CN_ASSERT_EQ(got, want);
            CN_ASSERT_EQ(cn__agg_size(agg), want);
            continue;
        }
        CN_ASSERT_EQ(got, -EMSGSIZE);
        CN_ASSERT(i == n || want > max_size);
        if (cn__agg_count(agg) == 0) { /* too big even alone: skipped */
            first = i + 1;
            continue;
        }
        size_t len;
        uint8_t *enc = encode(agg, &len);
        CN_ASSERT_EQ(len, cn__agg_size(agg));
        CN_ASSERT_LE(len, max_size);
        assert_matches_pbc(enc, len, r + first, i - first);
        assert_deaggregates_to(enc, len, r + first, i - first);
        free(enc);
        cn__agg_reset(agg);
        CN_ASSERT_EQ(cn__agg_size(agg), CN__AGG_OVERHEAD);
        first = i;
        if (i < n) {
            i--; /* add it again to the fresh aggregate */
        }
    }
}

static void agg_size_prediction_is_exact_for_random_records(void)
{
    /* Key counts cross 128 (2-byte index varints), key lengths 1..300
     * cross 127/128, data crosses 127/128 and 16383/16384. */
    const size_t n = 6000;
    struct rec *r = calloc(n, sizeof *r);
    CN_ASSERT(r != NULL);
    char pool[400][320];
    size_t pool_len[400];
    for (size_t k = 0; k < 400; k++) {
        pool_len[k] = 1 + rnd_below(300);
        for (size_t j = 0; j < pool_len[k]; j++) {
            pool[k][j] = (char)(1 + rnd_below(255)); /* any byte but NUL ... */
        }
        if (k % 7 == 0) {
            pool[k][pool_len[k] / 2] = '\0'; /* ... and some with one */
        }
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = rnd_below(400);
        memcpy(r[i].pk, pool[k], pool_len[k]);
        r[i].pk_len = pool_len[k];
        if (rnd_below(3) == 0) {
            random_ehk(&r[i]);
        }
        random_data(&r[i], rnd_below(50) == 0 ? 20000 : 300);
    }
    struct cn__agg *agg;
    CN_ASSERT_EQ(cn__agg_new(&agg, 256 * 1024), 0);
    add_checked(agg, r, n, 256 * 1024);
    /* The same records again through a reused aggregator at other limits. */
    const size_t limits[] = {CN__AGG_OVERHEAD + 600, 64 * 1024, 1024 * 1024};
    for (size_t l = 0; l < 3; l++) {
        struct cn__agg *b;
        CN_ASSERT_EQ(cn__agg_new(&b, limits[l]), 0);
        add_checked(b, r, n, limits[l]);
        cn__agg_free(b);
    }
    fprintf(stderr, "size predictions checked: %zu\n", predictions_checked);
    CN_ASSERT_GE(predictions_checked, 20000);
    cn__agg_free(agg);
    rec_free(r, n);
}

static void agg_dedups_keys_in_first_use_order(void)
{
    struct cn__agg *agg;
    CN_ASSERT_EQ(cn__agg_new(&agg, 1 << 20), 0);
    const char *pks[] = {"b", "a", "b", "c", "a", "a"};
    const char *ehks[] = {NULL, "7", "5", NULL, "7", "5"};
    for (int i = 0; i < 6; i++) {
        CN_ASSERT_GT(cn__agg_add(agg, pks[i], 1, ehks[i], ehks[i] ? 1 : 0, "x", 1), 0);
    }
    size_t len;
    uint8_t *enc = encode(agg, &len);
    static const uint8_t want[] = {
        0xF3, 0x89, 0x9A, 0xC2,                          /* magic */
        0x0A, 1,    'b',  0x0A, 1,    'a', 0x0A, 1, 'c', /* partition_key_table */
        0x12, 1,    '7',  0x12, 1,    '5',               /* explicit_hash_key_table */
        0x1A, 5,    0x08, 0,    0x1A, 1,   'x',          /* b */
        0x1A, 7,    0x08, 1,    0x10, 0,   0x1A, 1, 'x', /* a 7 */
        0x1A, 7,    0x08, 0,    0x10, 1,   0x1A, 1, 'x', /* b 5 */
        0x1A, 5,    0x08, 2,    0x1A, 1,   'x',          /* c */
        0x1A, 7,    0x08, 1,    0x10, 0,   0x1A, 1, 'x', /* a 7 */
        0x1A, 7,    0x08, 1,    0x10, 1,   0x1A, 1, 'x', /* a 5 */
    };
    CN_ASSERT_EQ(len, sizeof want + 16);
    CN_ASSERT_MEMEQ(enc, want, sizeof want);
    free(enc);

    /* Thousands of distinct keys stay distinct (the set grows), a repeat
     * costs only its record, and reset empties the tables. */
    cn__agg_reset(agg);
    char k[16];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 5000; i++) {
            int n = snprintf(k, sizeof k, "key-%d", i);
            CN_ASSERT_GT(cn__agg_add(agg, k, (size_t)n, NULL, 0, "", 0), 0);
        }
    }
    size_t one_round = 0;
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(k, sizeof k, "key-%d", i);
        one_round += 2 + (size_t)n;
    }
    size_t recs = 0;
    for (int i = 0; i < 10000; i++) {
        size_t idx = (size_t)(i % 5000), inner = 1 + (idx < 128 ? 1 : 2) + 2;
        recs += 2 + inner;
    }
    CN_ASSERT_EQ(cn__agg_size(agg), CN__AGG_OVERHEAD + one_round + recs);
    cn__agg_free(agg);
}

static void agg_add_over_max_size_leaves_aggregate_unchanged(void)
{
    struct cn__agg *agg;
    CN_ASSERT_EQ(cn__agg_new(&agg, 10), -EINVAL);
    CN_ASSERT(agg == NULL);
    CN_ASSERT_EQ(cn__agg_new(&agg, 100), 0);
    uint8_t buf[200];
    CN_ASSERT_EQ(cn__agg_encode(agg, buf, sizeof buf), -EINVAL); /* empty */
    CN_ASSERT_EQ(cn__agg_size(agg), 20);
    CN_ASSERT_EQ(cn__agg_add(agg, "", 0, NULL, 0, "x", 1), -EINVAL);
    CN_ASSERT_EQ(cn__agg_add(agg, "k", 1, "", 0, "x", 1), -EINVAL);
    uint8_t data[100] = {0};
    /* 20 + pk entry 3 + record (2 + 2 + 2 + n): n = 71 fits 100 exactly. */
    CN_ASSERT_EQ(cn__agg_size_if_added(agg, "k", 1, NULL, 0, 71), 100);
    CN_ASSERT_EQ(cn__agg_add(agg, "k", 1, NULL, 0, data, 72), -EMSGSIZE);
    CN_ASSERT_EQ(cn__agg_size(agg), 20);
    CN_ASSERT_EQ(cn__agg_count(agg), 0);
    CN_ASSERT_EQ(cn__agg_add(agg, "k", 1, NULL, 0, data, 71), 100);
    CN_ASSERT_EQ(cn__agg_add(agg, "j", 1, NULL, 0, data, 0), -EMSGSIZE);
    CN_ASSERT_EQ(cn__agg_count(agg), 1);
    CN_ASSERT_EQ(cn__agg_encode(agg, buf, 99), -ENOBUFS);
    CN_ASSERT_EQ(cn__agg_encode(agg, buf, 100), 100);
    /* The failed add of "j" left no table entry behind. */
    struct rec r = {.pk = "k", .pk_len = 1, .data = data, .data_len = 71};
    assert_matches_pbc(buf, 100, &r, 1);
    CN_ASSERT_EQ(cn__agg_size_if_added(agg, "k", 1, NULL, 0, SIZE_MAX), SIZE_MAX);
    cn__agg_free(agg);
    cn__agg_free(NULL);
}

static void agg_keys_follow_the_kpl(void)
{
    struct cn__agg *agg;
    struct cn__agg_keys k;
    CN_ASSERT_EQ(cn__agg_new(&agg, 1 << 20), 0);
    CN_ASSERT_EQ(cn__agg_keys(agg, &k), -EINVAL);
    /* One record: its own partition key; the hash key of "abcd"
     * (E2FC714C4727EE9395F324CD2E7F331F, the KPL's user_record_test). */
    CN_ASSERT_GT(cn__agg_add(agg, "abcd", 4, NULL, 0, "hello world", 11), 0);
    CN_ASSERT_EQ(cn__agg_keys(agg, &k), 0);
    CN_ASSERT_EQ(k.pk_len, 4);
    CN_ASSERT_MEMEQ(k.pk, "abcd", 4);
    CN_ASSERT_STREQ(k.ehk, "301716283811389038011477436469853762335");
    CN_ASSERT_EQ(k.ehk_len, 39);
    /* Two or more: "a", still the first record's hash key. */
    CN_ASSERT_GT(cn__agg_add(agg, "zz", 2, "5", 1, "x", 1), 0);
    CN_ASSERT_EQ(cn__agg_keys(agg, &k), 0);
    CN_ASSERT_EQ(k.pk_len, 1);
    CN_ASSERT_MEMEQ(k.pk, "a", 1);
    CN_ASSERT_STREQ(k.ehk, "301716283811389038011477436469853762335");
    /* A first record with an explicit hash key: that key. */
    cn__agg_reset(agg);
    CN_ASSERT_GT(cn__agg_add(agg, "p", 1, "123456789", 9, "x", 1), 0);
    CN_ASSERT_EQ(cn__agg_keys(agg, &k), 0);
    CN_ASSERT_STREQ(k.ehk, "123456789");
    CN_ASSERT_MEMEQ(k.pk, "p", 1);
    CN_ASSERT_GT(cn__agg_add(agg, "q", 1, NULL, 0, "x", 1), 0);
    CN_ASSERT_EQ(cn__agg_keys(agg, &k), 0);
    CN_ASSERT_STREQ(k.ehk, "123456789");
    /* An explicit hash key that is not canonical cannot be routed. */
    cn__agg_reset(agg);
    CN_ASSERT_GT(cn__agg_add(agg, "p", 1, "0123", 4, "x", 1), 0);
    CN_ASSERT_EQ(cn__agg_keys(agg, &k), -EINVAL);
    cn__agg_free(agg);
}

/* ---- deaggregator ------------------------------------------------------- */

/* Expects rec to come back as the one plain record. */
static void assert_plain(const uint8_t *p, size_t n)
{
    struct cn__deagg d;
    struct cn__user_record o = outer_of(p, n), u;
    o.ehk = (const uint8_t *)"42";
    o.ehk_len = 2;
    CN_ASSERT_EQ(cn__deagg_open(&d, &o, NULL), 0);
    CN_ASSERT_EQ(cn__deagg_next(&d, &u), 1);
    CN_ASSERT(u.data == p && u.data_len == n && u.pk == o.pk && u.ehk == o.ehk);
    CN_ASSERT_EQ(u.sub_seq, 0);
    CN_ASSERT_EQ(cn__deagg_next(&d, &u), 0);
    cn__deagg_close(&d);
}

static void deagg_falls_back_to_plain_like_the_kcl(void)
{
    struct cn__agg *agg;
    CN_ASSERT_EQ(cn__agg_new(&agg, 1 << 20), 0);
    CN_ASSERT_GT(cn__agg_add(agg, "k", 1, NULL, 0, "hello", 5), 0);
    size_t len;
    uint8_t *good = encode(agg, &len);
    struct rec r = {.pk = "k", .pk_len = 1, .data = (uint8_t *)"hello", .data_len = 5};
    assert_deaggregates_to(good, len, &r, 1);

    assert_plain((const uint8_t *)"", 0);
    assert_plain(good, 3);          /* shorter than the magic */
    assert_plain(cn__agg_magic, 4); /* magic only */
    for (size_t n = 4; n < len; n++) {
        assert_plain(good, n); /* truncated: MD5 mismatch */
    }
    uint8_t *bad = malloc(len);
    for (size_t i = 0; i < len; i++) { /* any one bit flipped */
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, good, len);
            bad[i] ^= (uint8_t)(1 << bit);
            assert_plain(bad, len);
        }
    }
    free(bad);

    /* Framed correctly (magic, MD5 right), but: */
    size_t n;
    uint8_t *f = frame(NULL, 0, &n); /* empty protobuf: 20 bytes, KCL wants > 20 */
    assert_plain(f, n);
    free(f);
    static const uint8_t no_pk_index[] = {0x0A, 1, 'k', 0x1A, 3, 0x1A, 1, 'x'};
    static const uint8_t no_data[] = {0x0A, 1, 'k', 0x1A, 2, 0x08, 0};
    static const uint8_t truncated[] = {0x0A, 5, 'k'};
    static const uint8_t bad_varint[] = {0x1A, 11,   0x08, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t tag_without_key[] = {0x0A, 1,    'k', 0x1A, 7,    0x08,
                                              0,    0x1A, 1,   'x',  0x22, 0};
    static const uint8_t wrong_wire_type[] = {0x0A, 1, 'k', 0x1D, 0, 0, 0, 0};
    const struct {
        const uint8_t *p;
        size_t n;
    } broken[] = {
        {no_pk_index, sizeof no_pk_index},
        {no_data, sizeof no_data},
        {truncated, sizeof truncated},
        {bad_varint, sizeof bad_varint},
        {tag_without_key, sizeof tag_without_key},
        {wrong_wire_type, sizeof wrong_wire_type},
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        f = frame(broken[i].p, broken[i].n, &n);
        assert_plain(f, n);
        free(f);
    }
    /* A valid protobuf with no record is an aggregate of nothing (KCL). */
    static const uint8_t only_keys[] = {0x0A, 1, 'k'};
    f = frame(only_keys, sizeof only_keys, &n);
    struct cn__deagg d;
    struct cn__user_record o = outer_of(f, n), u;
    CN_ASSERT_EQ(cn__deagg_open(&d, &o, NULL), 1);
    CN_ASSERT_EQ(cn__deagg_next(&d, &u), 0);
    cn__deagg_close(&d);
    free(f);
    /* Tags and unknown fields are skipped. */
    static const uint8_t tagged[] = {0x0A, 1, 'k',  0x1A, 13,  0x08, 0,    0x1A, 1,    'x',
                                     0x22, 4, 0x0A, 2,    't', 'g',  0x28, 9,    0x50, 1};
    f = frame(tagged, sizeof tagged, &n);
    struct rec rx = {.pk = "k", .pk_len = 1, .data = (uint8_t *)"x", .data_len = 1};
    assert_deaggregates_to(f, n, &rx, 1);
    free(f);
    free(good);
    cn__agg_free(agg);
}

static void deagg_bad_index_ends_after_the_records_before_it(void)
{
    /* pk table [k], ehk table [7]; records: ok, ok, pk index 1 (out), ok */
    static const uint8_t pb[] = {
        0x0A, 1,    'k', 0x12, 1,    '7', 0x1A, 5, 0x08, 0, 0x1A, 1,    'a', 0x1A, 7, 0x08, 0, 0x10,
        0,    0x1A, 1,   'b',  0x1A, 5,   0x08, 1, 0x1A, 1, 'c',  0x1A, 5,   0x08, 0, 0x1A, 1, 'd',
    };
    size_t n;
    uint8_t *f = frame(pb, sizeof pb, &n);
    struct cn__deagg d;
    struct cn__user_record o = outer_of(f, n), u;
    CN_ASSERT_EQ(cn__deagg_open(&d, &o, NULL), 1);
    CN_ASSERT_EQ(cn__deagg_next(&d, &u), 1);
    CN_ASSERT(u.data_len == 1 && u.data[0] == 'a' && u.ehk == NULL);
    CN_ASSERT_EQ(cn__deagg_next(&d, &u), 1);
    CN_ASSERT(u.data[0] == 'b' && u.ehk_len == 1 && u.ehk[0] == '7' && u.sub_seq == 1);
    CN_ASSERT_EQ(cn__deagg_next(&d, &u), -EBADMSG);
    CN_ASSERT_EQ(cn__deagg_next(&d, &u), -EBADMSG);
    cn__deagg_close(&d);
    free(f);

    /* ehk index out of its table; huge indexes (Java's int cast would wrap
     * 2^32 to 0; here it is out of range). */
    static const uint8_t bad_ehk[] = {0x0A, 1, 'k',  0x12, 1,    '7', 0x1A, 7,
                                      0x08, 0, 0x10, 1,    0x1A, 1,   'a'};
    static const uint8_t huge[] = {0x0A, 1,    'k',  0x1A, 9,    0x08, 0x80,
                                   0x80, 0x80, 0x80, 0x10, 0x1A, 1,    'a'};
    static const uint8_t no_table[] = {0x1A, 5, 0x08, 0, 0x1A, 1, 'a'};
    const uint8_t *cases[] = {bad_ehk, huge, no_table};
    size_t lens[] = {sizeof bad_ehk, sizeof huge, sizeof no_table};
    for (int i = 0; i < 3; i++) {
        f = frame(cases[i], lens[i], &n);
        o = outer_of(f, n);
        CN_ASSERT_EQ(cn__deagg_open(&d, &o, NULL), 1);
        CN_ASSERT_EQ(cn__deagg_next(&d, &u), -EBADMSG);
        cn__deagg_close(&d);
        free(f);
    }
}

static void deagg_range_filter_drops_the_whole_aggregate(void)
{
    /* Shard range: the second quarter. */
    struct cn__hashkey range[2];
    CN_ASSERT_EQ(cn__hashkey_parse(&range[0], "85070591730234615865843651857942052864", 38), 0);
    CN_ASSERT_EQ(cn__hashkey_parse(&range[1], "170141183460469231731687303715884105727", 39), 0);
    struct cn__agg *agg;
    CN_ASSERT_EQ(cn__agg_new(&agg, 1 << 20), 0);
    /* "abc" hashes to 0x9001... (third quarter): out of range. */
    const char *in_range = "100000000000000000000000000000000000000";
    struct {
        const char *pk, *ehk;
        int want; /* records out, or -EBADMSG */
    } cases[] = {
        {"p", in_range, 2},
        {"abc", NULL, 0},                                      /* MD5 out */
        {"p", "+0100000000000000000000000000000000000000", 2}, /* BigInteger reads it */
        {"p", "85070591730234615865843651857942052863", 0},    /* one below */
        {"p", "-5", 0},
        {"p", "-0", 0}, /* zero: below the range */
        {"p", "999999999999999999999999999999999999999999", 0},
        {"p", "12a", -EBADMSG},
        {"p", "+", -EBADMSG},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cn__agg_reset(agg);
        CN_ASSERT_GT(cn__agg_add(agg, "q", 1, in_range, strlen(in_range), "a", 1), 0);
        CN_ASSERT_GT(cn__agg_add(agg, cases[c].pk, strlen(cases[c].pk), cases[c].ehk,
                                 cases[c].ehk ? strlen(cases[c].ehk) : 0, "b", 1),
                     0);
        size_t len;
        uint8_t *enc = encode(agg, &len);
        struct cn__deagg d;
        struct cn__user_record o = outer_of(enc, len), u;
        CN_ASSERT_EQ(cn__deagg_open(&d, &o, range), 1);
        int got = 0, rc;
        while ((rc = cn__deagg_next(&d, &u)) == 1) {
            got++;
        }
        if (cases[c].want < 0) {
            CN_ASSERT_EQ(rc, cases[c].want);
            CN_ASSERT_EQ(got, 1); /* the record before stands */
        } else {
            CN_ASSERT_EQ(rc, 0);
            CN_ASSERT_EQ(got, cases[c].want);
        }
        cn__deagg_close(&d);
        /* Without a range every record comes out. */
        CN_ASSERT_EQ(cn__deagg_open(&d, &o, NULL), 1);
        got = 0;
        while (cn__deagg_next(&d, &u) == 1) {
            got++;
        }
        CN_ASSERT_EQ(got, 2);
        cn__deagg_close(&d);
        free(enc);
    }
    cn__agg_free(agg);
}

static void deagg_rejects_input_over_the_record_limit(void)
{
    size_t n = CN__DEAGG_MAX_INPUT + 1;
    uint8_t *p = calloc(1, n);
    CN_ASSERT(p != NULL);
    memcpy(p, cn__agg_magic, 4);
    struct cn__deagg d;
    struct cn__user_record o = outer_of(p, n), u;
    CN_ASSERT_EQ(cn__deagg_open(&d, &o, NULL), -EMSGSIZE);
    CN_ASSERT_EQ(cn__deagg_next(&d, &u), 1); /* still usable as the plain record */
    cn__deagg_close(&d);
    o.data_len = CN__DEAGG_MAX_INPUT;
    CN_ASSERT_EQ(cn__deagg_open(&d, &o, NULL), 0); /* MD5 mismatch: plain */
    cn__deagg_close(&d);
    free(p);
}

/* Maps len bytes ending right before a PROT_NONE page. */
struct guarded {
    uint8_t *map;
    size_t map_len;
    uint8_t *p;
};

static struct guarded guard_copy(const uint8_t *src, size_t len)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), pages = (len + pg - 1) / pg + 1;
    struct guarded g;
    g.map_len = (pages + 1) * pg;
    g.map = mmap(NULL, g.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CN_ASSERT(g.map != MAP_FAILED);
    CN_ASSERT_EQ(mprotect(g.map + pages * pg, pg, PROT_NONE), 0);
    g.p = g.map + pages * pg - len;
    if (len > 0) {
        memcpy(g.p, src, len);
    }
    return g;
}

static void drain(const uint8_t *p, size_t n)
{
    struct cn__deagg d;
    struct cn__user_record o = outer_of(p, n), u;
    if (cn__deagg_open(&d, &o, NULL) >= 0) {
        while (cn__deagg_next(&d, &u) == 1) {
            (void)u;
        }
    }
    cn__deagg_close(&d);
}

static void deagg_never_reads_past_the_input(void)
{
    struct cn__agg *agg;
    CN_ASSERT_EQ(cn__agg_new(&agg, 1 << 20), 0);
    for (int i = 0; i < 40; i++) {
        char pk[16], ehk[CN__HASHKEY_DEC_MAX];
        int n = snprintf(pk, sizeof pk, "k%d", i % 7);
        struct cn__hashkey k = {rnd(), rnd()};
        size_t el = cn__hashkey_format(&k, ehk);
        CN_ASSERT_GT(cn__agg_add(agg, pk, (size_t)n, i % 3 ? NULL : ehk, el, "0123456789abcdef",
                                 (size_t)(i % 17)),
                     0);
    }
    size_t len;
    uint8_t *enc = encode(agg, &len);
    /* Every prefix as is (plain fallbacks) and re-framed with a valid MD5
     * (so protobuf-c parses a truncated message), at the end of a page; the
     * bare protobuf too, so protobuf-c's own reads meet the guard. */
    size_t pb_len = len - CN__AGG_OVERHEAD;
    for (size_t n = 0; n <= len; n++) {
        struct guarded g = guard_copy(enc, n);
        drain(g.p, n);
        CN_ASSERT_EQ(munmap(g.map, g.map_len), 0);
        if (n > pb_len) {
            continue;
        }
        size_t fl;
        uint8_t *f = frame(enc + 4, n, &fl);
        g = guard_copy(f, fl);
        drain(g.p, fl);
        CN_ASSERT_EQ(munmap(g.map, g.map_len), 0);
        free(f);
        g = guard_copy(enc + 4, n);
        Cn__Kpl__AggregatedRecord *ar = cn__kpl__aggregated_record__unpack(NULL, n, g.p);
        if (n == pb_len) {
            CN_ASSERT(ar != NULL);
        }
        if (ar != NULL) {
            cn__kpl__aggregated_record__free_unpacked(ar, NULL);
        }
        CN_ASSERT_EQ(munmap(g.map, g.map_len), 0);
    }
    free(enc);
    cn__agg_free(agg);
}

/* ---- records as text: "<pk hex> <ehk hex or -> <data hex>" --------------- */

static void put_hex(FILE *f, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%02x", b[i]);
    }
}

static void write_records(const char *path, const struct rec *r, size_t n)
{
    FILE *f = fopen(path, "w");
    CN_ASSERT(f != NULL);
    for (size_t i = 0; i < n; i++) {
        put_hex(f, r[i].pk, r[i].pk_len);
        fputc(' ', f);
        if (r[i].ehk_len) {
            put_hex(f, r[i].ehk, r[i].ehk_len);
        } else {
            fputc('-', f);
        }
        fputc(' ', f);
        put_hex(f, r[i].data, r[i].data_len);
        fputc('\n', f);
    }
    CN_ASSERT_EQ(fclose(f), 0);
}

/* Parses a hex run of len chars into out (cap bytes); returns bytes. */
static size_t unhex(const char *s, size_t len, uint8_t *out, size_t cap)
{
    CN_ASSERT_EQ(len % 2, 0);
    CN_ASSERT_LE(len / 2, cap);
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        CN_ASSERT_EQ(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return len / 2;
}

/* One record line into *r (data malloc'ed). */
static void parse_record_line(char *line, struct rec *r)
{
    char *sp1 = strchr(line, ' ');
    CN_ASSERT(sp1 != NULL);
    char *sp2 = strchr(sp1 + 1, ' ');
    CN_ASSERT(sp2 != NULL);
    size_t dl = strcspn(sp2 + 1, "\r\n");
    memset(r, 0, sizeof *r);
    r->pk_len = unhex(line, (size_t)(sp1 - line), (uint8_t *)r->pk, sizeof r->pk);
    if (sp1[1] != '-') {
        r->ehk_len = unhex(sp1 + 1, (size_t)(sp2 - sp1 - 1), (uint8_t *)r->ehk, sizeof r->ehk - 1);
    }
    r->data = malloc(dl / 2 + 1);
    CN_ASSERT(r->data != NULL);
    r->data_len = unhex(sp2 + 1, dl, r->data, dl / 2 + 1);
}

static bool same_record(const struct rec *a, const struct rec *b)
{
    return a->pk_len == b->pk_len && !memcmp(a->pk, b->pk, a->pk_len) && a->ehk_len == b->ehk_len &&
           !memcmp(a->ehk, b->ehk, a->ehk_len) && a->data_len == b->data_len &&
           (a->data_len == 0 || !memcmp(a->data, b->data, a->data_len));
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        CN_ASSERT(0);
    }
    struct stat st;
    CN_ASSERT_EQ(fstat(fileno(f), &st), 0);
    uint8_t *p = malloc((size_t)st.st_size + 1);
    CN_ASSERT(p != NULL);
    CN_ASSERT_EQ(fread(p, 1, (size_t)st.st_size, f), (size_t)st.st_size);
    fclose(f);
    *len = (size_t)st.st_size;
    return p;
}

static const char *source_root(void)
{
    const char *root = getenv("CN_SOURCE_ROOT");
    return root ? root : ".";
}

/* ---- golden vectors (made by aws-kinesis-agg, see golden/README) -------- */

static void golden_node_aggregate_matches_coronet(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/kinesis/golden/node_mixed.agg", source_root());
    size_t agg_len;
    uint8_t *golden = read_file(path, &agg_len);
    snprintf(path, sizeof path, "%s/tests/kinesis/golden/node_mixed.txt", source_root());
    FILE *f = fopen(path, "r");
    CN_ASSERT(f != NULL);
    struct rec *r = calloc(64, sizeof *r);
    size_t n = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        CN_ASSERT_LT(n, 64);
        parse_record_line(line, &r[n++]);
    }
    free(line);
    fclose(f);
    CN_ASSERT_GE(n, 10);
    /* coronet reads what node wrote ... */
    assert_deaggregates_to(golden, agg_len, r, n);
    /* ... and writes the very same bytes for the same records. */
    struct cn__agg *agg;
    CN_ASSERT_EQ(cn__agg_new(&agg, 1 << 20), 0);
    for (size_t i = 0; i < n; i++) {
        CN_ASSERT_GT(cn__agg_add(agg, r[i].pk, r[i].pk_len, ehk_of(&r[i]), r[i].ehk_len, r[i].data,
                                 r[i].data_len),
                     0);
    }
    size_t len;
    uint8_t *enc = encode(agg, &len);
    CN_ASSERT_EQ(len, agg_len);
    CN_ASSERT_MEMEQ(enc, golden, len);
    assert_matches_pbc(golden, agg_len, r, n);
    free(enc);
    free(golden);
    cn__agg_free(agg);
    rec_free(r, n);
}

/* ---- oracle: npm aws-kinesis-agg ---------------------------------------- */

struct set {
    const char *name;
    struct rec *r;
    size_t n;
};

static void skip_without_oracle(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/.peers/node_modules/aws-kinesis-agg/package.json",
             source_root());
    if (access(path, R_OK) != 0) {
        CN_TEST_SKIP_BECAUSE("npm aws-kinesis-agg not installed in .peers (scripts/setup)");
    }
    if (system("node --version > /dev/null 2>&1") != 0) {
        CN_TEST_SKIP_BECAUSE("node not found");
    }
}

/* Partition keys the oracle can carry: aws-kinesis-agg keeps its key table
 * in a plain object, and Object.keys() lists integer-like keys ("42") in
 * numeric order, not insertion order, which scrambles its indexes. So keys
 * here always contain a letter and explicit hash keys exceed 2^32. */
static void make_pk(struct rec *r, const char *prefix, size_t i)
{
    int n = snprintf(r->pk, sizeof r->pk, "%s-%zu", prefix, i);
    r->pk_len = (size_t)n;
}

static struct set make_set(int which)
{
    static const char *const names[] = {"one", "small500", "repeating", "ehk", "binary", "one_mib"};
    static const size_t sizes[] = {1, 500, 500, 300, 200, 100};
    struct set s = {names[which], calloc(sizes[which], sizeof(struct rec)), sizes[which]};
    CN_ASSERT(s.r != NULL);
    static const char *const utf8_prefixes[] = {"\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", "\xe9\x94\xae",
                                                "\xf0\x9f\x94\x91"};
    char ehk_pool[10][CN__HASHKEY_DEC_MAX];
    for (int k = 0; k < 10; k++) {
        struct cn__hashkey h = {rnd() | 1, rnd()};
        cn__hashkey_format(&h, ehk_pool[k]);
    }
    for (size_t i = 0; i < s.n; i++) {
        struct rec *r = &s.r[i];
        switch (which) {
        case 0:
            make_pk(r, "only-key", 0); /* "only-key-0" */
            r->data = (uint8_t *)strdup("hello");
            r->data_len = 5;
            continue;
        case 1:
            make_pk(r, "pk", i * 7919 + rnd_below(1000));
            random_data(r, 64);
            break;
        case 2:
            make_pk(r, "user", rnd_below(20));
            random_data(r, 200);
            break;
        case 3:
            make_pk(r, "dev", rnd_below(30));
            if (rnd_below(2)) {
                strcpy(r->ehk, ehk_pool[rnd_below(10)]);
                r->ehk_len = strlen(r->ehk);
            }
            random_data(r, 100);
            break;
        case 4:
            make_pk(r, utf8_prefixes[i % 3], rnd_below(50));
            random_data(r, i % 10 == 0 ? 0 : 300);
            if (r->data_len > 2) {
                r->data[0] = 0;
                r->data[r->data_len - 1] = 0;
            }
            break;
        default:
            make_pk(r, "big", i % 13);
            r->data = malloc(10300);
            CN_ASSERT(r->data != NULL);
            for (size_t j = 0; j < 10300; j++) {
                r->data[j] = (uint8_t)rnd();
            }
            r->data_len = 10300;
            break;
        }
    }
    return s;
}

static char tmpdir[64];

static void make_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/cn-agg-oracle-XXXXXX");
    CN_ASSERT(mkdtemp(tmpdir) != NULL);
}

static void remove_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CN_ASSERT_EQ(system(cmd), 0);
}

static FILE *run_oracle(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "CN_SOURCE_ROOT='%s' node '%s/tests/kinesis/agg_oracle.js' %s",
             source_root(), source_root(), args);
    FILE *p = popen(cmd, "r");
    CN_ASSERT(p != NULL);
    return p;
}

static void oracle_node_deaggregates_coronet_aggregates(void)
{
    skip_without_oracle();
    make_tmpdir();
    struct set sets[6];
    char args[4096] = "deagg";
    struct cn__agg *agg;
    CN_ASSERT_EQ(cn__agg_new(&agg, 1024 * 1024), 0);
    for (int s = 0; s < 6; s++) {
        sets[s] = make_set(s);
        cn__agg_reset(agg);
        for (size_t i = 0; i < sets[s].n; i++) {
            const struct rec *r = &sets[s].r[i];
            CN_ASSERT_GT(
                cn__agg_add(agg, r->pk, r->pk_len, ehk_of(r), r->ehk_len, r->data, r->data_len), 0);
        }
        size_t len;
        uint8_t *enc = encode(agg, &len);
        char path[256];
        snprintf(path, sizeof path, "%s/%s.agg", tmpdir, sets[s].name);
        FILE *f = fopen(path, "wb");
        CN_ASSERT(f != NULL);
        CN_ASSERT_EQ(fwrite(enc, 1, len, f), len);
        CN_ASSERT_EQ(fclose(f), 0);
        free(enc);
        strcat(args, " ");
        strcat(args, path);
    }
    FILE *p = run_oracle(args);
    char *line = NULL;
    size_t cap = 0, compared = 0;
    for (int s = 0; s < 6; s++) {
        CN_ASSERT(getline(&line, &cap, p) > 0);
        size_t count = 0;
        if (sscanf(line, "aggregate %zu", &count) != 1) {
            fprintf(stderr, "set %s: oracle said: %s", sets[s].name, line);
            CN_ASSERT(0);
        }
        CN_ASSERT_EQ(count, sets[s].n);
        for (size_t i = 0; i < count; i++) {
            struct rec got;
            CN_ASSERT(getline(&line, &cap, p) > 0);
            parse_record_line(line, &got);
            if (!same_record(&got, &sets[s].r[i])) {
                fprintf(stderr, "set %s record %zu differs\n", sets[s].name, i);
                CN_ASSERT(0);
            }
            free(got.data);
            compared++;
        }
        rec_free(sets[s].r, sets[s].n);
    }
    free(line);
    CN_ASSERT_EQ(pclose(p), 0);
    fprintf(stderr, "aws-kinesis-agg deaggregated %zu coronet records in 6 aggregates\n", compared);
    cn__agg_free(agg);
    remove_tmpdir();
}

static void oracle_coronet_deaggregates_node_aggregates(void)
{
    skip_without_oracle();
    make_tmpdir();
    struct cn__agg *agg;
    CN_ASSERT_EQ(cn__agg_new(&agg, 1024 * 1024), 0);
    size_t compared = 0, identical = 0;
    for (int s = 0; s < 6; s++) {
        struct set set = make_set(s);
        char rpath[256], apath[256], args[600];
        snprintf(rpath, sizeof rpath, "%s/%s.txt", tmpdir, set.name);
        snprintf(apath, sizeof apath, "%s/%s.agg", tmpdir, set.name);
        write_records(rpath, set.r, set.n);
        snprintf(args, sizeof args, "agg '%s' '%s'", rpath, apath);
        FILE *p = run_oracle(args);
        char *line = NULL;
        size_t cap = 0;
        CN_ASSERT(getline(&line, &cap, p) > 0); /* outer keys: not compared, node's own */
        free(line);
        CN_ASSERT_EQ(pclose(p), 0);
        size_t len;
        uint8_t *node = read_file(apath, &len);
        assert_deaggregates_to(node, len, set.r, set.n);
        compared += set.n;
        /* Same records, same order: the same bytes. */
        cn__agg_reset(agg);
        for (size_t i = 0; i < set.n; i++) {
            const struct rec *r = &set.r[i];
            CN_ASSERT_GT(
                cn__agg_add(agg, r->pk, r->pk_len, ehk_of(r), r->ehk_len, r->data, r->data_len), 0);
        }
        size_t elen;
        uint8_t *enc = encode(agg, &elen);
        CN_ASSERT_EQ(elen, len);
        CN_ASSERT_MEMEQ(enc, node, len);
        identical++;
        free(enc);
        free(node);
        rec_free(set.r, set.n);
    }
    fprintf(stderr,
            "coronet deaggregated %zu records from 6 aws-kinesis-agg aggregates; "
            "%zu of 6 byte-identical to coronet's\n",
            compared, identical);
    cn__agg_free(agg);
    remove_tmpdir();
}

CN_TEST_MAIN(CN_CASE(agg_size_prediction_is_exact_for_random_records),
             CN_CASE(agg_dedups_keys_in_first_use_order),
             CN_CASE(agg_add_over_max_size_leaves_aggregate_unchanged),
             CN_CASE(agg_keys_follow_the_kpl), CN_CASE(deagg_falls_back_to_plain_like_the_kcl),
             CN_CASE(deagg_bad_index_ends_after_the_records_before_it),
             CN_CASE(deagg_range_filter_drops_the_whole_aggregate),
             CN_CASE(deagg_rejects_input_over_the_record_limit),
             CN_CASE(deagg_never_reads_past_the_input),
             CN_CASE(golden_node_aggregate_matches_coronet),
             CN_CASE(oracle_node_deaggregates_coronet_aggregates),
             CN_CASE(oracle_coronet_deaggregates_node_aggregates))
