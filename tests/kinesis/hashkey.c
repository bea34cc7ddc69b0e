/* SPDX-License-Identifier: MIT */
/*
 * Hash keys and the shard map (kinesis/hashkey.c): MD5 vectors (RFC 1321
 * appendix A.5 and the KPL's own user_record_test), strict decimal parsing
 * and formatting, maps built from ListShards-shaped lists.
 */
#include "test.h"

#include "kinesis/hashkey.h"

#define MAX_KEY "340282366920938463463374607431768211455" /* 2^128-1 */
#define Q1 "85070591730234615865843651857942052864"       /* 2^126 */
#define Q2 "170141183460469231731687303715884105728"      /* 2^127 */
#define Q3 "255211775190703847597530955573826158592"      /* 3 * 2^126 */

static struct cn__hashkey key(const char *dec)
{
    struct cn__hashkey k;
    CN_ASSERT_EQ(cn__hashkey_parse(&k, dec, strlen(dec)), 0);
    return k;
}

static void assert_md5(const char *pk, uint64_t hi, uint64_t lo, const char *dec)
{
    struct cn__hashkey k;
    char buf[CN__HASHKEY_DEC_MAX];
    cn__hashkey_from_pk(&k, pk, strlen(pk));
    CN_ASSERT(k.hi == hi && k.lo == lo);
    CN_ASSERT_EQ(cn__hashkey_format(&k, buf), strlen(dec));
    CN_ASSERT_STREQ(buf, dec);
}

static void hashkey_md5_of_partition_key_is_big_endian(void)
{
    /* RFC 1321 A.5 */
    assert_md5("", 0xd41d8cd98f00b204ull, 0xe9800998ecf8427eull,
               "281949768489412648962353822266799178366");
    assert_md5("a", 0x0cc175b9c0f1b6a8ull, 0x31c399e269772661ull,
               "16955237001963240173058271559858726497");
    assert_md5("abc", 0x900150983cd24fb0ull, 0xd6963f7d28e17f72ull,
               "191415658344158766168031473277922803570");
    /* amazon-kinesis-producer aws/kinesis/core/test/user_record_test.cc,
     * HashKeyFromPartitionKey: "abcd" -> E2FC714C4727EE9395F324CD2E7F331F */
    struct cn__hashkey k;
    cn__hashkey_from_pk(&k, "abcd", 4);
    CN_ASSERT(k.hi == 0xE2FC714C4727EE93ull && k.lo == 0x95F324CD2E7F331Full);
    /* UTF-8 bytes of a non-ASCII key (U+20AC) */
    assert_md5("\xe2\x82\xac", 0xbca53fde466a76b7ull, 0xbee3e18997e94a7aull,
               "250752887591472196339670448948845824634");
}

static void hashkey_parse_format_round_trips(void)
{
    static const char *const ok[] = {
        "0",
        "1",
        "9",
        "10",
        "123456789",
        "18446744073709551615",
        "18446744073709551616",
        Q1,
        Q2,
        Q3,
        MAX_KEY,
        "340282366920938463463374607431768211454",
        "99999999999999999999999999999999999999",
        "100000000000000000000000000000000000000",
    };
    char buf[CN__HASHKEY_DEC_MAX];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct cn__hashkey k = key(ok[i]);
        CN_ASSERT_EQ(cn__hashkey_format(&k, buf), strlen(ok[i]));
        CN_ASSERT_STREQ(buf, ok[i]);
    }
    struct cn__hashkey k = key("18446744073709551616"); /* 2^64 */
    CN_ASSERT(k.hi == 1 && k.lo == 0);
    k = key(MAX_KEY);
    CN_ASSERT(k.hi == UINT64_MAX && k.lo == UINT64_MAX);

    /* Random 128-bit values through format and back. */
    srand(7);
    for (int i = 0; i < 20000; i++) {
        struct cn__hashkey r = {0, 0}, back;
        for (int j = 0; j < 8; j++) {
            r.hi = r.hi << 8 | (uint64_t)(rand() & 0xff);
            r.lo = r.lo << 8 | (uint64_t)(rand() & 0xff);
        }
        r.hi >>= rand() % 64; /* all magnitudes */
        size_t n = cn__hashkey_format(&r, buf);
        CN_ASSERT_EQ(cn__hashkey_parse(&back, buf, n), 0);
        CN_ASSERT_EQ(cn__hashkey_cmp(&r, &back), 0);
    }
}

static void hashkey_parse_rejects_non_canonical_decimal(void)
{
    static const char *const bad[] = {
        "",
        "340282366920938463463374607431768211456", /* 2^128 */
        "340282366920938463463374607431768211460",
        "999999999999999999999999999999999999999",
        "1000000000000000000000000000000000000000", /* 40 digits */
        "-1",
        "+1",
        "-0",
        " 1",
        "1 ",
        "12a",
        "a12",
        "0x10",
        "1.0",
        "1e3",
        "00",
        "01",
        "0000000000000000000000000000000000000001", /* leading zeros: API pattern */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cn__hashkey k = {42, 43};
        if (cn__hashkey_parse(&k, bad[i], strlen(bad[i])) != -EINVAL) {
            fprintf(stderr, "accepted \"%s\"\n", bad[i]);
            CN_ASSERT(0);
        }
        CN_ASSERT(k.hi == 42 && k.lo == 43); /* untouched */
    }
    /* An embedded NUL is junk too; the length is what counts. */
    struct cn__hashkey k;
    CN_ASSERT_EQ(cn__hashkey_parse(&k,
                                   "12\0"
                                   "3",
                                   4),
                 -EINVAL);
    CN_ASSERT_EQ(cn__hashkey_parse(&k, "123", 2), 0);
    CN_ASSERT(k.hi == 0 && k.lo == 12);
}

/* The ranges CreateStream gives 4 shards: 2^128 split evenly, each a
 * quarter (2^126 keys); as ListShards reports them. */
static const struct cn__shard_desc four[] = {
    {"shardId-000000000000", "0", "85070591730234615865843651857942052863", false},
    {"shardId-000000000001", Q1, "170141183460469231731687303715884105727", false},
    {"shardId-000000000002", Q2, "255211775190703847597530955573826158591", false},
    {"shardId-000000000003", Q3, MAX_KEY, false},
};

static void assert_owner(const struct cn__shardmap *m, const char *dec, const char *id)
{
    struct cn__hashkey k = key(dec);
    size_t i = cn__shardmap_find(m, &k);
    CN_ASSERT_LT(i, cn__shardmap_count(m));
    if (strcmp(cn__shardmap_id(m, i), id) != 0) {
        fprintf(stderr, "key %s: got %s, want %s\n", dec, cn__shardmap_id(m, i), id);
        CN_ASSERT(0);
    }
}

static void shardmap_even_split_of_four_boundaries(void)
{
    struct cn__shardmap *m;
    CN_ASSERT_EQ(cn__shardmap_new(&m, four, 4), 0);
    CN_ASSERT_EQ(cn__shardmap_count(m), 4);
    assert_owner(m, "0", "shardId-000000000000");
    assert_owner(m, "1", "shardId-000000000000");
    assert_owner(m, "85070591730234615865843651857942052863", "shardId-000000000000");
    assert_owner(m, Q1, "shardId-000000000001");
    assert_owner(m, "170141183460469231731687303715884105727", "shardId-000000000001");
    assert_owner(m, Q2, "shardId-000000000002");
    assert_owner(m, "255211775190703847597530955573826158591", "shardId-000000000002");
    assert_owner(m, Q3, "shardId-000000000003");
    assert_owner(m, MAX_KEY, "shardId-000000000003");

    /* MD5 keys land where their top two bits say. */
    srand(3);
    for (int i = 0; i < 10000; i++) {
        char pk[32];
        int n = snprintf(pk, sizeof pk, "key-%d", rand());
        struct cn__hashkey k;
        cn__hashkey_from_pk(&k, pk, (size_t)n);
        CN_ASSERT_EQ(cn__shardmap_find(m, &k), k.hi >> 62);
    }
    struct cn__hashkey s, e;
    cn__shardmap_range(m, 3, &s, &e);
    CN_ASSERT(s.hi == 3ull << 62 && s.lo == 0 && e.hi == UINT64_MAX && e.lo == UINT64_MAX);
    cn__shardmap_free(m);
    cn__shardmap_free(NULL);
}

static void shardmap_after_split_ignores_closed_parent(void)
{
    /* SplitShard of shard 1 at its midpoint 2^126 + 2^125: the parent is
     * listed closed (EndingSequenceNumber set), children open, and the
     * list is not in hash order. */
    const struct cn__shard_desc split[] = {
        four[0],
        {"shardId-000000000001", Q1, "170141183460469231731687303715884105727", true},
        four[2],
        four[3],
        {"shardId-000000000005", "127605887595351923798765477786913079296",
         "170141183460469231731687303715884105727", false},
        {"shardId-000000000004", Q1, "127605887595351923798765477786913079295", false},
    };
    struct cn__shardmap *m;
    CN_ASSERT_EQ(cn__shardmap_new(&m, split, 6), 0);
    CN_ASSERT_EQ(cn__shardmap_count(m), 5);
    assert_owner(m, "85070591730234615865843651857942052863", "shardId-000000000000");
    assert_owner(m, Q1, "shardId-000000000004");
    assert_owner(m, "127605887595351923798765477786913079295", "shardId-000000000004");
    assert_owner(m, "127605887595351923798765477786913079296", "shardId-000000000005");
    assert_owner(m, "170141183460469231731687303715884105727", "shardId-000000000005");
    assert_owner(m, Q2, "shardId-000000000002");
    for (size_t i = 0; i < 5; i++) {
        CN_ASSERT(strcmp(cn__shardmap_id(m, i), "shardId-000000000001") != 0);
    }
    cn__shardmap_free(m);

    /* Only the parent listed, children missing (a list taken mid-split):
     * open shards leave a gap. */
    const struct cn__shard_desc mid[] = {four[0], split[1], four[2], four[3]};
    CN_ASSERT_EQ(cn__shardmap_new(&m, mid, 4), -EAGAIN);
    CN_ASSERT(m == NULL);
}

static void shardmap_rejects_gaps_overlaps_and_bad_keys(void)
{
    struct cn__shardmap *m;
    CN_ASSERT_EQ(cn__shardmap_new(&m, four, 0), -EAGAIN);     /* nothing open */
    CN_ASSERT_EQ(cn__shardmap_new(&m, four, 3), -EAGAIN);     /* top quarter missing */
    CN_ASSERT_EQ(cn__shardmap_new(&m, four + 1, 3), -EAGAIN); /* bottom quarter missing */

    struct cn__shard_desc s[4];
    memcpy(s, four, sizeof s);
    s[1].ending = "170141183460469231731687303715884105726"; /* gap of one key */
    CN_ASSERT_EQ(cn__shardmap_new(&m, s, 4), -EAGAIN);
    s[1].ending = Q2; /* overlap of one key */
    CN_ASSERT_EQ(cn__shardmap_new(&m, s, 4), -EAGAIN);
    memcpy(s, four, sizeof s);
    s[3].starting = "0"; /* overlaps everything */
    CN_ASSERT_EQ(cn__shardmap_new(&m, s, 4), -EAGAIN);
    const struct cn__shard_desc dup[] = {four[0], four[1], four[1], four[2], four[3]};
    CN_ASSERT_EQ(cn__shardmap_new(&m, dup, 5), -EAGAIN);
    const struct cn__shard_desc whole_twice[] = {{"a", "0", MAX_KEY, false},
                                                 {"b", "0", MAX_KEY, false}};
    CN_ASSERT_EQ(cn__shardmap_new(&m, whole_twice, 2), -EAGAIN);

    memcpy(s, four, sizeof s);
    s[2].starting = "-1";
    CN_ASSERT_EQ(cn__shardmap_new(&m, s, 4), -EINVAL);
    s[2].starting = "340282366920938463463374607431768211456";
    CN_ASSERT_EQ(cn__shardmap_new(&m, s, 4), -EINVAL);
    s[2].starting = NULL;
    CN_ASSERT_EQ(cn__shardmap_new(&m, s, 4), -EINVAL);
    memcpy(s, four, sizeof s);
    s[1].starting = "170141183460469231731687303715884105728"; /* start > end */
    CN_ASSERT_EQ(cn__shardmap_new(&m, s, 4), -EINVAL);
    memcpy(s, four, sizeof s);
    s[0].id = "";
    CN_ASSERT_EQ(cn__shardmap_new(&m, s, 4), -EINVAL);
    CN_ASSERT(m == NULL);

    /* One shard owning everything, and one-key shards at both ends. */
    const struct cn__shard_desc one[] = {{"only", "0", MAX_KEY, false}};
    CN_ASSERT_EQ(cn__shardmap_new(&m, one, 1), 0);
    assert_owner(m, "0", "only");
    assert_owner(m, MAX_KEY, "only");
    cn__shardmap_free(m);
    const struct cn__shard_desc ends[] = {
        {"hi", MAX_KEY, MAX_KEY, false},
        {"lo", "0", "0", false},
        {"mid", "1", "340282366920938463463374607431768211454", false},
    };
    CN_ASSERT_EQ(cn__shardmap_new(&m, ends, 3), 0);
    assert_owner(m, "0", "lo");
    assert_owner(m, "1", "mid");
    assert_owner(m, "340282366920938463463374607431768211454", "mid");
    assert_owner(m, MAX_KEY, "hi");
    cn__shardmap_free(m);
}

CN_TEST_MAIN(CN_CASE(hashkey_md5_of_partition_key_is_big_endian),
             CN_CASE(hashkey_parse_format_round_trips),
             CN_CASE(hashkey_parse_rejects_non_canonical_decimal),
             CN_CASE(shardmap_even_split_of_four_boundaries),
             CN_CASE(shardmap_after_split_ignores_closed_parent),
             CN_CASE(shardmap_rejects_gaps_overlaps_and_bad_keys))
