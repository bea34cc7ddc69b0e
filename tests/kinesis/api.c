/* SPDX-License-Identifier: MIT */
/*
 * The Kinesis API client (kinesis/api.c, kinesis/json.c).
 *
 * Three kinds of cases:
 *   - pure: error mapping, response parsers and request validation on canned
 *     bytes, no I/O;
 *   - a fake endpoint of our own (cn_http_serve) that records what the
 *     client sends and answers garbage, wrong content types, truncated or
 *     never-ending bodies;
 *   - both real emulators (kinesalite, kinesis-mock over HTTP and HTTPS,
 *     started by emulator.h): create, wait ACTIVE, put single, batch and
 *     KPL-aggregated records, read everything back across shards, split and
 *     merge, the shard the hash key map predicts vs the one the service
 *     reports.
 */
#include "test.h"

#include <jansson.h>

#include "emulator.h"
#include "kinesis/agg.h"
#include "kinesis/api_internal.h"
#include "kinesis/base64.h"
#include "kinesis/hashkey.h"

#define LONG_MS 30000
#define MAX_KEY "340282366920938463463374607431768211455"  /* 2^128-1 */
#define HALF_KEY "170141183460469231731687303715884105728" /* 2^127 */

static int64_t soon(void)
{
    return cn_now() + LONG_MS;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static struct cn_kinesis_entry entry(const char *pk, const void *data, size_t n)
{
    struct cn_kinesis_entry e = {
        .partition_key = pk, .partition_key_len = strlen(pk), .data = data, .data_len = n};
    return e;
}

/* ==== pure: error mapping ======================================================== */

static void assert_maps(int status, const char *ctype, const char *errtype, const char *body,
                        int code, bool retryable, const char *type, const char *msg)
{
    struct cn_kinesis_error e;
    int rc = cn__kinesis_error_response(status, ctype, ctype ? strlen(ctype) : 0, errtype,
                                        errtype ? strlen(errtype) : 0, body, strlen(body), &e);
    CN_ASSERT_EQ(rc, code);
    CN_ASSERT_EQ(e.code, code);
    CN_ASSERT_EQ(e.http_status, status);
    CN_ASSERT_EQ(e.retryable, retryable);
    CN_ASSERT_STREQ(e.type, type);
    if (msg) {
        CN_ASSERT_STREQ(e.message, msg);
    }
}

#define J "application/x-amz-json-1.1"

static void error_mapping_classifies_aws_types(void)
{
    assert_maps(400, J, NULL,
                "{\"__type\":\"com.amazonaws.kinesis.v20131202#ResourceNotFoundException\","
                "\"message\":\"Stream s under account 1 not found.\"}",
                CN_EKINESIS_NOT_FOUND, false, "ResourceNotFoundException",
                "Stream s under account 1 not found.");
    assert_maps(400, J, NULL,
                "{\"__type\":\"ProvisionedThroughputExceededException\",\"Message\":\"Rate "
                "exceeded for shard shardId-000000000000\"}",
                CN_EKINESIS_THROUGHPUT, true, "ProvisionedThroughputExceededException",
                "Rate exceeded for shard shardId-000000000000");
    static const struct {
        const char *type;
        int code;
        bool retry;
    } t[] = {
        {"LimitExceededException", CN_EKINESIS_LIMIT, true},
        {"KMSThrottlingException", CN_EKINESIS_KMS_THROTTLED, true},
        {"ThrottlingException", CN_EKINESIS_THROTTLING, true},
        {"InternalFailure", CN_EKINESIS_INTERNAL, true},
        {"ServiceUnavailable", CN_EKINESIS_UNAVAILABLE, true},
        {"ValidationException", CN_EKINESIS_VALIDATION, false},
        {"SerializationException", CN_EKINESIS_VALIDATION, false},
        {"InvalidArgumentException", CN_EKINESIS_INVALID_ARGUMENT, false},
        {"ResourceInUseException", CN_EKINESIS_IN_USE, false},
        {"AccessDeniedException", CN_EKINESIS_ACCESS_DENIED, false},
        {"ExpiredTokenException", CN_EKINESIS_EXPIRED_TOKEN, false},
        {"ExpiredToken", CN_EKINESIS_EXPIRED_TOKEN, false},
        {"UnrecognizedClientException", CN_EKINESIS_AUTH, false},
        {"IncompleteSignatureException", CN_EKINESIS_AUTH, false},
        {"InvalidSignatureException", CN_EKINESIS_AUTH, false},
        {"ExpiredIteratorException", CN_EKINESIS_EXPIRED_ITERATOR, false},
        {"KMSNotFoundException", CN_EKINESIS_KMS, false},
        {"SomethingNewException", CN_EKINESIS, false},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"__type\":\"ns.v1#%s\",\"message\":\"m%zu\"}", t[i].type, i);
        char msg[16];
        snprintf(msg, sizeof msg, "m%zu", i);
        assert_maps(400, J, NULL, body, t[i].code, t[i].retry, t[i].type, msg);
        CN_ASSERT_EQ(cn__kinesis_error_code(t[i].type, strlen(t[i].type)), t[i].code);
    }
    /* No __type: the x-amzn-ErrorType header, then the status decides. */
    assert_maps(400, J, "ThrottlingException:http://internal.amazon.com/coral/", "{}",
                CN_EKINESIS_THROTTLING, true,
                "ThrottlingException:http://internal.amazon.com/coral/", "HTTP 400");
    assert_maps(503, "text/plain", NULL, "Service Unavailable", CN_EKINESIS_UNAVAILABLE, true, "",
                "HTTP 503 without a JSON error body");
    assert_maps(502, "text/html", NULL, "<html>bad gateway</html>", CN_EKINESIS_INTERNAL, true, "",
                NULL);
    assert_maps(500, J, NULL, "{\"__type\":", CN_EKINESIS_INTERNAL, true, "", NULL);
    assert_maps(429, NULL, NULL, "", CN_EKINESIS_THROTTLING, true, "", NULL);
    assert_maps(403, NULL, NULL, "", CN_EKINESIS_ACCESS_DENIED, false, "", NULL);
    assert_maps(400, J, NULL, "[1,2]", CN_EKINESIS, false, "", "HTTP 400");
    assert_maps(400, J, NULL, "{\"__type\":7,\"message\":[]}", CN_EKINESIS, false, "", "HTTP 400");
    /* Control characters in a message do not reach log lines. */
    assert_maps(400, J, NULL, "{\"__type\":\"ValidationException\",\"message\":\"a\\nb\\u0000c\"}",
                CN_EKINESIS_VALIDATION, false, "ValidationException", "a b c");
}

static void error_mapping_retryable_transport_errors(void)
{
    static const int yes[] = {-ECONNRESET,
                              -ETIMEDOUT,
                              -EPIPE,
                              -ECONNREFUSED,
                              CN_EOF,
                              CN_EBROKEN,
                              CN_EHTTP_INCOMPLETE,
                              CN_EKINESIS_THROUGHPUT,
                              CN_EKINESIS_INTERNAL};
    static const int no[] = {0,
                             -EINVAL,
                             -ECANCELED,
                             -ENOMEM,
                             CN_EHTTP_PARSE,
                             CN_EKINESIS,
                             CN_EKINESIS_BAD_RESPONSE,
                             CN_EKINESIS_CONTENT_TYPE,
                             CN_EKINESIS_NOT_FOUND,
                             CN_EKINESIS_EXPIRED_TOKEN,
                             CN_EKINESIS_RECORD_TOO_LARGE};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        CN_ASSERT(cn_kinesis_retryable(yes[i]));
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        CN_ASSERT(!cn_kinesis_retryable(no[i]));
    }
    CN_ASSERT(cn__kinesis_json_ctype("application/x-amz-json-1.1", 26));
    CN_ASSERT(cn__kinesis_json_ctype("Application/JSON; charset=utf-8", 32));
    CN_ASSERT(!cn__kinesis_json_ctype("application/x-amz-json-1.10", 27));
    CN_ASSERT(!cn__kinesis_json_ctype("text/html", 9));
    CN_ASSERT(!cn__kinesis_json_ctype(NULL, 0));
}

/* ==== pure: parsers ========================================================== */

static const char put_records_ok[] =
    "{\"FailedRecordCount\":1,\"Records\":["
    "{\"SequenceNumber\":\"49590338271490256608559692538361571095921575989136588898\","
    "\"ShardId\":\"shardId-000000000000\"},"
    "{\"ErrorCode\":\"ProvisionedThroughputExceededException\","
    "\"ErrorMessage\":\"Rate exceeded for shard shardId-000000000001 in stream s\"},"
    "{\"SequenceNumber\":\"7\",\"ShardId\":\"shardId-000000000002\"}],"
    "\"EncryptionType\":\"NONE\"}";

static const char get_records_ok[] =
    "{\"Records\":["
    "{\"Data\":\"aGVsbG8=\",\"PartitionKey\":\"k\\u00e9\",\"SequenceNumber\":\"1\","
    "\"ApproximateArrivalTimestamp\":1700000000.123},"
    "{\"Data\":\"\",\"PartitionKey\":\"a\\u0000b\",\"SequenceNumber\":\"22\"}],"
    "\"NextShardIterator\":\"AAAA/next\",\"MillisBehindLatest\":0}";

static const char shards_ok[] =
    "{\"Shards\":["
    "{\"ShardId\":\"shardId-000000000000\",\"HashKeyRange\":{\"StartingHashKey\":\"0\","
    "\"EndingHashKey\":\"" MAX_KEY "\"},\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"1\","
    "\"EndingSequenceNumber\":\"9\"}},"
    "{\"ShardId\":\"shardId-000000000001\",\"ParentShardId\":\"shardId-000000000000\","
    "\"HashKeyRange\":{\"StartingHashKey\":\"0\",\"EndingHashKey\":\"" HALF_KEY "\"},"
    "\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"10\"}}],"
    "\"NextToken\":\"tok\"}";

static const char summary_ok[] =
    "{\"StreamDescriptionSummary\":{\"StreamName\":\"s\",\"StreamARN\":\"arn:aws:kinesis:us-east-"
    "1:000000000000:stream/s\",\"StreamStatus\":\"ACTIVE\",\"StreamModeDetails\":{\"StreamMode\":"
    "\"PROVISIONED\"},\"RetentionPeriodHours\":24,\"StreamCreationTimestamp\":1700000000,"
    "\"EnhancedMonitoring\":[{\"ShardLevelMetrics\":[]}],\"EncryptionType\":\"NONE\","
    "\"OpenShardCount\":3,\"ConsumerCount\":0}}";

static void parsers_read_canned_responses(void)
{
    struct cn_kinesis_error e;
    struct cn_kinesis_put_records_result *pr;
    CN_ASSERT_EQ(cn__kinesis_parse_put_records(put_records_ok, strlen(put_records_ok), 3, &pr, &e),
                 0);
    CN_ASSERT_EQ(pr->count, 3);
    CN_ASSERT_EQ(pr->failed, 1);
    CN_ASSERT_EQ(pr->results[0].code, 0);
    CN_ASSERT_STREQ(pr->results[0].shard_id, "shardId-000000000000");
    CN_ASSERT_STREQ(pr->results[0].sequence_number,
                    "49590338271490256608559692538361571095921575989136588898");
    CN_ASSERT_EQ(pr->results[1].code, CN_EKINESIS_THROUGHPUT);
    CN_ASSERT_STREQ(pr->results[1].error_code, "ProvisionedThroughputExceededException");
    CN_ASSERT(strstr(pr->results[1].error_message, "Rate exceeded") != NULL);
    CN_ASSERT_STREQ(pr->results[2].sequence_number, "7");
    cn_kinesis_put_records_result_free(pr);
    /* The count must match what was sent. */
    CN_ASSERT_EQ(cn__kinesis_parse_put_records(put_records_ok, strlen(put_records_ok), 4, &pr, &e),
                 CN_EKINESIS_BAD_RESPONSE);
    CN_ASSERT(pr == NULL);

    struct cn_kinesis_records *r;
    CN_ASSERT_EQ(cn__kinesis_parse_records(get_records_ok, strlen(get_records_ok), &r, &e), 0);
    CN_ASSERT_EQ(r->count, 2);
    CN_ASSERT_EQ(r->records[0].data_len, 5);
    CN_ASSERT_MEMEQ(r->records[0].data, "hello", 5);
    CN_ASSERT_STREQ(r->records[0].partition_key, "k\xc3\xa9");
    CN_ASSERT_EQ(r->records[0].arrival_ms, 1700000000123);
    CN_ASSERT_EQ(r->records[1].data_len, 0);
    CN_ASSERT_EQ(r->records[1].partition_key_len, 3);
    CN_ASSERT_MEMEQ(r->records[1].partition_key, "a\0b", 3);
    CN_ASSERT_STREQ(r->records[1].sequence_number, "22");
    CN_ASSERT_EQ(r->records[1].arrival_ms, -1);
    CN_ASSERT_STREQ(r->next_iterator, "AAAA/next");
    CN_ASSERT_EQ(r->millis_behind_latest, 0);
    cn_kinesis_records_free(r);
    const char closed[] = "{\"Records\":[],\"NextShardIterator\":null,\"ChildShards\":[]}";
    CN_ASSERT_EQ(cn__kinesis_parse_records(closed, strlen(closed), &r, &e), 0);
    CN_ASSERT(r->next_iterator == NULL && r->count == 0 && r->millis_behind_latest == -1);
    cn_kinesis_records_free(r);

    struct cn_kinesis_shard_list l = {0};
    char *tok;
    CN_ASSERT_EQ(
        cn__kinesis_parse_shards(shards_ok, strlen(shards_ok), CN_KINESIS_SHARDS_ALL, &l, &tok, &e),
        0);
    CN_ASSERT_EQ(l.count, 2);
    CN_ASSERT(!l.shards[0].open && l.shards[1].open);
    CN_ASSERT_STREQ(l.shards[0].ending_hash_key, MAX_KEY);
    CN_ASSERT_STREQ(l.shards[1].parent, "shardId-000000000000");
    CN_ASSERT_STREQ(l.shards[0].ending_seq, "9");
    CN_ASSERT_STREQ(tok, "tok");
    free(tok);
    CN_ASSERT_EQ(cn__kinesis_parse_shards(shards_ok, strlen(shards_ok), CN_KINESIS_SHARDS_OPEN, &l,
                                          &tok, &e),
                 0);
    CN_ASSERT_EQ(l.count, 3); /* appended: only the open one */
    CN_ASSERT_STREQ(l.shards[2].id, "shardId-000000000001");
    free(tok);
    free(l.shards);

    struct cn_kinesis_stream_summary s;
    CN_ASSERT_EQ(cn__kinesis_parse_summary(summary_ok, strlen(summary_ok), &s, &e), 0);
    CN_ASSERT_STREQ(s.name, "s");
    CN_ASSERT_EQ(s.status, CN_KINESIS_STATUS_ACTIVE);
    CN_ASSERT_EQ(s.open_shard_count, 3);
    CN_ASSERT_EQ(s.retention_hours, 24);
    CN_ASSERT(!s.on_demand);

    char it[CN_KINESIS_ITERATOR_MAX];
    const char itb[] = "{\"ShardIterator\":\"AAAAAAAAAAE=\"}";
    CN_ASSERT_EQ(cn__kinesis_parse_iterator(itb, strlen(itb), it, &e), 0);
    CN_ASSERT_STREQ(it, "AAAAAAAAAAE=");
}

/* Every parser on body: returns 0 or an error, never crashes or leaks. */
static int parse_any(int which, const char *body, size_t len)
{
    struct cn_kinesis_error e;
    switch (which) {
    case 0: {
        struct cn_kinesis_put_records_result *pr = NULL;
        int rc = cn__kinesis_parse_put_records(body, len, 3, &pr, &e);
        cn_kinesis_put_records_result_free(pr);
        return rc;
    }
    case 1: {
        struct cn_kinesis_records *r = NULL;
        int rc = cn__kinesis_parse_records(body, len, &r, &e);
        cn_kinesis_records_free(r);
        return rc;
    }
    case 2: {
        struct cn_kinesis_shard_list l = {0};
        char *tok = NULL;
        int rc = cn__kinesis_parse_shards(body, len, CN_KINESIS_SHARDS_ALL, &l, &tok, &e);
        free(l.shards);
        free(tok);
        return rc;
    }
    default: {
        struct cn_kinesis_stream_summary s;
        return cn__kinesis_parse_summary(body, len, &s, &e);
    }
    }
}

static void parsers_reject_truncated_and_mistyped_bodies(void)
{
    const char *bodies[] = {put_records_ok, get_records_ok, shards_ok, summary_ok};
    for (int w = 0; w < 4; w++) {
        size_t n = strlen(bodies[w]);
        CN_ASSERT_EQ(parse_any(w, bodies[w], n), 0);
        for (size_t cut = 0; cut < n; cut++) {
            /* every prefix is cut-short JSON, placed in its own allocation so
             * ASan sees any read past it */
            char *p = malloc(cut ? cut : 1);
            memcpy(p, bodies[w], cut);
            CN_ASSERT_EQ(parse_any(w, p, cut), CN_EKINESIS_BAD_RESPONSE);
            free(p);
        }
    }
    static const struct {
        int which;
        const char *body;
    } bad[] = {
        {0, "{\"Records\":[{},{},{}]}"},
        {0, "{\"FailedRecordCount\":0,\"Records\":[{\"ErrorCode\":\"InternalFailure\"},"
            "{\"ShardId\":\"a\",\"SequenceNumber\":\"1\"},{\"ShardId\":\"a\",\"SequenceNumber\":"
            "\"1\"}]}"},
        {0, "{\"Records\":[{\"ShardId\":\"a\",\"SequenceNumber\":\"01\"},1,2]}"},
        {0, "{\"Records\":[{\"ShardId\":5,\"SequenceNumber\":\"1\"},{},{}]}"},
        {0, "{\"FailedRecordCount\":-1,\"Records\":[]}"},
        {1,
         "{\"Records\":[{\"Data\":\"aGVsbG8\",\"PartitionKey\":\"k\",\"SequenceNumber\":\"1\"}]}"},
        {1, "{\"Records\":[{\"Data\":\"a GVs\",\"PartitionKey\":\"k\",\"SequenceNumber\":\"1\"}]}"},
        {1, "{\"Records\":[{\"Data\":\"\",\"PartitionKey\":\"k\",\"SequenceNumber\":\"x\"}]}"},
        {1, "{\"Records\":[{\"Data\":\"\",\"PartitionKey\":\"k\",\"SequenceNumber\":\"1\","
            "\"ApproximateArrivalTimestamp\":\"now\"}]}"},
        {1, "{\"Records\":[],\"NextShardIterator\":42}"},
        {1, "{\"Records\":[],\"NextShardIterator\":\"\"}"},
        {1, "{\"Records\":{},\"MillisBehindLatest\":0}"},
        {1, "{\"Records\":[],\"MillisBehindLatest\":-5}"},
        {1, "[]"},
        {1, "{\"Records\":[]} trailing"},
        {2, "{\"Shards\":[{\"ShardId\":\"s\",\"HashKeyRange\":{\"StartingHashKey\":\"0\","
            "\"EndingHashKey\":\"340282366920938463463374607431768211456\"},"
            "\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"1\"}}]}"},
        {2,
         "{\"Shards\":[{\"ShardId\":\"bad id\",\"HashKeyRange\":{\"StartingHashKey\":\"0\","
         "\"EndingHashKey\":\"1\"},\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"1\"}}]}"},
        {2, "{\"Shards\":[],\"NextToken\":7}"},
        {2, "{\"Shards\":[null]}"},
        {3, "{\"StreamDescriptionSummary\":{\"StreamName\":\"s\"}}"},
        {3, "{\"StreamDescriptionSummary\":{\"StreamName\":\"s\",\"StreamStatus\":\"ACTIVE\","
            "\"OpenShardCount\":1.5}}"},
        {3, "\xff\xfe"},
        {3, ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse_any(bad[i].which, bad[i].body, strlen(bad[i].body));
        if (rc != CN_EKINESIS_BAD_RESPONSE) {
            fprintf(stderr, "accepted bad body %zu: %s\n", i, bad[i].body);
        }
        CN_ASSERT_EQ(rc, CN_EKINESIS_BAD_RESPONSE);
    }
    struct cn_kinesis_error e;
    CN_ASSERT_EQ(parse_any(1, "{\"Records\":5}", 13), CN_EKINESIS_BAD_RESPONSE);
    cn__kinesis_parse_summary("{", 1, &(struct cn_kinesis_stream_summary){0}, &e);
    CN_ASSERT_EQ(e.code, CN_EKINESIS_BAD_RESPONSE);
    CN_ASSERT(strstr(e.message, "not JSON") != NULL);
}

/* ==== pure: validation and request bodies ============================================= */

static void validation_rejects_what_aws_rejects(void)
{
    char name[200];
    memset(name, 'a', sizeof name);
    name[128] = '\0';
    CN_ASSERT_EQ(cn__kinesis_check_stream(name), 0);
    name[128] = 'a';
    name[129] = '\0';
    CN_ASSERT_EQ(cn__kinesis_check_stream(name), CN_EKINESIS_STREAM_NAME);
    CN_ASSERT_EQ(cn__kinesis_check_stream("a-b_c.9"), 0);
    CN_ASSERT_EQ(cn__kinesis_check_stream(""), CN_EKINESIS_STREAM_NAME);
    CN_ASSERT_EQ(cn__kinesis_check_stream("a b"), CN_EKINESIS_STREAM_NAME);
    CN_ASSERT_EQ(cn__kinesis_check_stream("a/b"), CN_EKINESIS_STREAM_NAME);
    CN_ASSERT_EQ(cn__kinesis_check_stream(NULL), CN_EKINESIS_STREAM_NAME);
    CN_ASSERT_EQ(cn__kinesis_check_shard_id("shardId-000000000001"), 0);
    CN_ASSERT_EQ(cn__kinesis_check_shard_id("shard:1"), CN_EKINESIS_SHARD_ID);

    /* Partition keys count Unicode characters, not bytes. */
    char pk[1200];
    memset(pk, 'k', 257);
    CN_ASSERT_EQ(cn__kinesis_check_partition_key(pk, 256), 0);
    CN_ASSERT_EQ(cn__kinesis_check_partition_key(pk, 257), CN_EKINESIS_PARTITION_KEY);
    CN_ASSERT_EQ(cn__kinesis_check_partition_key(pk, 0), CN_EKINESIS_PARTITION_KEY);
    for (int i = 0; i < 256; i++) {
        memcpy(pk + 4 * i, "\xf0\x9f\x98\x80", 4); /* U+1F600 */
    }
    CN_ASSERT_EQ(cn__kinesis_check_partition_key(pk, 1024), 0);
    memcpy(pk + 1024, "\xe2\x82\xac", 3);
    CN_ASSERT_EQ(cn__kinesis_check_partition_key(pk, 1027), CN_EKINESIS_PARTITION_KEY);
    static const char *const bad_utf8[] = {
        "\xff", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "a\x80"};
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        CN_ASSERT_EQ(cn__kinesis_check_partition_key(bad_utf8[i], strlen(bad_utf8[i])),
                     CN_EKINESIS_PARTITION_KEY);
    }

    /* Explicit hash keys: a canonical decimal up to 2^128-1. */
    struct cn_kinesis_entry e = entry("k", "d", 1);
    e.explicit_hash_key = MAX_KEY;
    CN_ASSERT_EQ(cn__kinesis_check_entry(&e), 0);
    e.explicit_hash_key = "340282366920938463463374607431768211456";
    CN_ASSERT_EQ(cn__kinesis_check_entry(&e), CN_EKINESIS_HASH_KEY);
    e.explicit_hash_key = "01";
    CN_ASSERT_EQ(cn__kinesis_check_entry(&e), CN_EKINESIS_HASH_KEY);
    e.explicit_hash_key = "-1";
    CN_ASSERT_EQ(cn__kinesis_check_entry(&e), CN_EKINESIS_HASH_KEY);

    /* 1 MiB counts data and key together. */
    char *big = calloc(1, CN_KINESIS_RECORD_MAX + 1);
    e = entry("kk", big, CN_KINESIS_RECORD_MAX - 2);
    CN_ASSERT_EQ(cn__kinesis_check_entry(&e), 0);
    e.data_len++;
    CN_ASSERT_EQ(cn__kinesis_check_entry(&e), CN_EKINESIS_RECORD_TOO_LARGE);
    e = entry("k", NULL, 1);
    CN_ASSERT_EQ(cn__kinesis_check_entry(&e), -EINVAL);

    /* Batches: 1..500 entries, 5 MiB in all. */
    struct cn_kinesis_entry *es = calloc(501, sizeof *es);
    for (int i = 0; i < 501; i++) {
        es[i] = entry("k", "d", 1);
    }
    size_t bad;
    CN_ASSERT_EQ(cn__kinesis_check_entries(es, 500, &bad), 0);
    CN_ASSERT_EQ(cn__kinesis_check_entries(es, 501, &bad), CN_EKINESIS_TOO_MANY_RECORDS);
    CN_ASSERT_EQ(cn__kinesis_check_entries(es, 0, &bad), CN_EKINESIS_TOO_MANY_RECORDS);
    for (int i = 0; i < 6; i++) {
        es[i] = entry("k", big, CN_KINESIS_RECORD_MAX - 1);
    }
    CN_ASSERT_EQ(cn__kinesis_check_entries(es, 5, &bad), 0);
    CN_ASSERT_EQ(cn__kinesis_check_entries(es, 6, &bad), CN_EKINESIS_REQUEST_TOO_LARGE);
    es[3].partition_key = "";
    es[3].partition_key_len = 0;
    CN_ASSERT_EQ(cn__kinesis_check_entries(es, 6, &bad), CN_EKINESIS_PARTITION_KEY);
    CN_ASSERT_EQ(bad, 3);
    free(es);
    free(big);
}

static void put_records_body_is_exact_json(void)
{
    const char pk1[] = "q\"uo\\te\n\x01\xc3\xa9\xf0\x9f\x98\x80";
    uint8_t bin[256];
    for (int i = 0; i < 256; i++) {
        bin[i] = (uint8_t)i;
    }
    struct cn_kinesis_entry es[3] = {entry(pk1, bin, sizeof bin), entry("k2", "", 0),
                                     entry("k3", "xy", 2)};
    es[2].explicit_hash_key = HALF_KEY;
    char *body;
    size_t len;
    CN_ASSERT_EQ(cn__kinesis_body_put_records("my.stream", es, 3, &body, &len), 0);
    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je);
    CN_ASSERT(root != NULL);
    CN_ASSERT_STREQ(json_string_value(json_object_get(root, "StreamName")), "my.stream");
    json_t *recs = json_object_get(root, "Records");
    CN_ASSERT_EQ(json_array_size(recs), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *r = json_array_get(recs, i);
        json_t *k = json_object_get(r, "PartitionKey");
        CN_ASSERT_EQ(json_string_length(k), es[i].partition_key_len);
        CN_ASSERT_MEMEQ(json_string_value(k), es[i].partition_key, es[i].partition_key_len);
        const char *d = json_string_value(json_object_get(r, "Data"));
        uint8_t out[300];
        ssize_t n = cn__base64_decode(out, sizeof out, d, strlen(d));
        CN_ASSERT_EQ(n, es[i].data_len);
        CN_ASSERT_MEMEQ(out, es[i].data, (size_t)n);
        json_t *h = json_object_get(r, "ExplicitHashKey");
        CN_ASSERT(i == 2 ? json_is_string(h) : h == NULL);
    }
    CN_ASSERT_STREQ(json_string_value(json_object_get(json_array_get(recs, 2), "ExplicitHashKey")),
                    HALF_KEY);
    json_decref(root);
    free(body);

    CN_ASSERT_EQ(cn__kinesis_body_put_record("s", &es[0], "12345", &body, &len), 0);
    root = json_loadb(body, len, 0, &je);
    CN_ASSERT(root != NULL);
    CN_ASSERT_STREQ(json_string_value(json_object_get(root, "SequenceNumberForOrdering")), "12345");
    CN_ASSERT_EQ(json_string_length(json_object_get(root, "PartitionKey")), strlen(pk1));
    json_decref(root);
    free(body);
}

/* ==== a fake endpoint ============================================================== */

enum fake_mode {
    FAKE_ECHO_SUMMARY, /* a valid DescribeStreamSummary answer */
    FAKE_HTML,         /* 200 text/html */
    FAKE_GARBAGE,      /* 200 JSON content type, not JSON */
    FAKE_MISSING,      /* 200 {} */
    FAKE_ERROR_500,    /* 500 with an HTML body */
    FAKE_NOT_FOUND,    /* 400 ResourceNotFoundException */
    FAKE_HANG,         /* the head and a few body bytes, then nothing */
};

struct fake {
    struct cn_tcp_listener *l;
    struct cn_co *co;
    enum fake_mode mode;
    int requests;
    char target[128];
    char auth[512];
    char ctype[128];
    bool has_date;
    char body[512];
};

static struct fake fake;

static void copy_header(const struct cn_http_request *r, const char *name, char *dst, size_t cap)
{
    size_t n = 0;
    const char *v = cn_http_header_find(r->headers, r->nheaders, name, &n);
    snprintf(dst, cap, "%.*s", v ? (int)n : 0, v ? v : "");
}

static int fake_handle(struct cn_http_server_conn *c, const struct cn_http_request *r, void *arg)
{
    fake.requests++;
    copy_header(r, "X-Amz-Target", fake.target, sizeof fake.target);
    copy_header(r, "Authorization", fake.auth, sizeof fake.auth);
    copy_header(r, "Content-Type", fake.ctype, sizeof fake.ctype);
    size_t n = 0;
    fake.has_date = cn_http_header_find(r->headers, r->nheaders, "X-Amz-Date", &n) != NULL;
    const char *body;
    size_t len;
    int rc = cn_http_server_read_body_all(c, &body, &len, soon());
    if (rc < 0) {
        return rc;
    }
    snprintf(fake.body, sizeof fake.body, "%.*s", (int)len, body);
    struct cn_http_header json = cn_http_header_str("Content-Type", J);
    struct cn_http_header html = cn_http_header_str("Content-Type", "text/html");
    const char *nf = "{\"__type\":\"ResourceNotFoundException\",\"message\":\"Stream nope not "
                     "found\"}";
    switch (fake.mode) {
    case FAKE_ECHO_SUMMARY:
        return cn_http_server_respond(c, 200, &json, 1, summary_ok, strlen(summary_ok), soon());
    case FAKE_HTML:
        return cn_http_server_respond(c, 200, &html, 1, "<html/>", 7, soon());
    case FAKE_GARBAGE:
        return cn_http_server_respond(c, 200, &json, 1, "{\"Stream", 8, soon());
    case FAKE_MISSING:
        return cn_http_server_respond(c, 200, &json, 1, "{}", 2, soon());
    case FAKE_ERROR_500:
        return cn_http_server_respond(c, 500, &html, 1, "<html>oops</html>", 17, soon());
    case FAKE_NOT_FOUND:
        return cn_http_server_respond(c, 400, &json, 1, nf, strlen(nf), soon());
    case FAKE_HANG:
        rc = cn_http_server_start_chunked(c, 200, &json, 1, soon());
        rc = rc < 0 ? rc : cn_http_server_write_chunk(c, "{\"Str", 5, soon());
        cn_sleep(LONG_MS); /* until cancelled */
        return -ECANCELED;
    }
    return -EINVAL;
}

static int fake_serve(void *arg)
{
    return cn_http_serve(fake.l, fake_handle, NULL, NULL);
}

static struct cn_kinesis_client *fake_start(void)
{
    CN_ASSERT_EQ(cn_tcp_listen(&fake.l, "127.0.0.1", 0, NULL), 0);
    CN_ASSERT_EQ(cn_spawn(&fake.co, fake_serve, NULL, NULL), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cn_tcp_listener_port(fake.l));
    struct cn_kinesis_client_opts o = {.endpoint_url = url,
                                       .region = "eu-west-1",
                                       .access_key_id = "AKIDEXAMPLE",
                                       .secret_access_key = "secret"};
    struct cn_kinesis_client *kc;
    CN_ASSERT_EQ(cn_kinesis_client_new(&kc, &o), 0);
    CN_ASSERT_STREQ(cn_kinesis_client_region(kc), "eu-west-1");
    return kc;
}

static void fake_stop(struct cn_kinesis_client *kc)
{
    cn_kinesis_client_close(kc);
    cn_cancel(fake.co);
    CN_ASSERT_EQ(cn_join(fake.co, NULL, -1), 0);
    cn_tcp_listener_close(fake.l);
}

static int fake_protocol_main(void *arg)
{
    struct cn_kinesis_client *kc = fake_start();
    struct cn_kinesis_stream_summary s;
    struct cn_kinesis_error e;
    fake.mode = FAKE_ECHO_SUMMARY;
    CN_ASSERT_EQ(cn_kinesis_describe_stream_summary(kc, "s", &s, &e, soon()), 0);
    CN_ASSERT_EQ(e.code, 0);
    CN_ASSERT_EQ(s.status, CN_KINESIS_STATUS_ACTIVE);
    /* What went on the wire. */
    CN_ASSERT_STREQ(fake.target, "Kinesis_20131202.DescribeStreamSummary");
    CN_ASSERT_STREQ(fake.ctype, J);
    CN_ASSERT(fake.has_date);
    CN_ASSERT(strncmp(fake.auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/", 40) == 0);
    CN_ASSERT(strstr(fake.auth, "/eu-west-1/kinesis/aws4_request") != NULL);
    CN_ASSERT(strstr(fake.auth, "SignedHeaders=content-type;host;x-amz-date;x-amz-target") != NULL);
    CN_ASSERT_STREQ(fake.body, "{\"StreamName\":\"s\"}");

    static const struct {
        enum fake_mode mode;
        int code;
        int status;
    } t[] = {
        {FAKE_HTML, CN_EKINESIS_CONTENT_TYPE, 200},
        {FAKE_GARBAGE, CN_EKINESIS_BAD_RESPONSE, 200},
        {FAKE_MISSING, CN_EKINESIS_BAD_RESPONSE, 200},
        {FAKE_ERROR_500, CN_EKINESIS_INTERNAL, 500},
        {FAKE_NOT_FOUND, CN_EKINESIS_NOT_FOUND, 400},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        fake.mode = t[i].mode;
        CN_ASSERT_EQ(cn_kinesis_describe_stream_summary(kc, "s", &s, &e, soon()), t[i].code);
        CN_ASSERT_EQ(e.code, t[i].code);
        CN_ASSERT_EQ(e.http_status, t[i].status);
        CN_ASSERT(e.message[0] != '\0');
    }
    CN_ASSERT_STREQ(e.message, "Stream nope not found");
    CN_ASSERT(!e.retryable);
    /* A body that never ends: the deadline bounds the call. */
    fake.mode = FAKE_HANG;
    int64_t t0 = cn_now();
    CN_ASSERT_EQ(cn_kinesis_describe_stream_summary(kc, "s", &s, &e, cn_now() + 200), -ETIMEDOUT);
    CN_ASSERT_GE(cn_now() - t0, 150);
    CN_ASSERT(e.retryable && e.http_status == 0);
    /* The client still works afterwards. */
    fake.mode = FAKE_ECHO_SUMMARY;
    CN_ASSERT_EQ(cn_kinesis_describe_stream_summary(kc, "s", &s, &e, soon()), 0);
    fake_stop(kc);
    return 0;
}

static void client_maps_fake_endpoint_answers(void)
{
    cn_test_run(fake_protocol_main, NULL);
}

static int reject_main(void *arg)
{
    struct cn_kinesis_client *kc = fake_start();
    struct cn_kinesis_error e;
    struct cn_kinesis_put_records_result *pr = NULL;
    struct cn_kinesis_put_result one;
    char *big = calloc(1, CN_KINESIS_RECORD_MAX + 1);
    struct cn_kinesis_entry *es = calloc(501, sizeof *es);
    for (int i = 0; i < 501; i++) {
        es[i] = entry("k", "d", 1);
    }
    CN_ASSERT_EQ(cn_kinesis_put_records(kc, "s", es, 501, &pr, &e, soon()),
                 CN_EKINESIS_TOO_MANY_RECORDS);
    CN_ASSERT(!e.retryable && e.http_status == 0);
    for (int i = 0; i < 6; i++) {
        es[i] = entry("k", big, CN_KINESIS_RECORD_MAX - 1);
    }
    CN_ASSERT_EQ(cn_kinesis_put_records(kc, "s", es, 6, &pr, &e, soon()),
                 CN_EKINESIS_REQUEST_TOO_LARGE);
    es[0] = entry("k", big, CN_KINESIS_RECORD_MAX);
    CN_ASSERT_EQ(cn_kinesis_put_records(kc, "s", es, 1, &pr, &e, soon()),
                 CN_EKINESIS_RECORD_TOO_LARGE);
    CN_ASSERT_STREQ(e.message, "entry 0: record data and partition key exceed 1 MiB");
    CN_ASSERT_EQ(cn_kinesis_put_record(kc, "s", &es[0], NULL, &one, &e, soon()),
                 CN_EKINESIS_RECORD_TOO_LARGE);
    char key[258];
    memset(key, 'k', 257);
    key[257] = '\0';
    es[0] = entry(key, "d", 1);
    CN_ASSERT_EQ(cn_kinesis_put_record(kc, "s", &es[0], NULL, &one, &e, soon()),
                 CN_EKINESIS_PARTITION_KEY);
    es[0].explicit_hash_key = "340282366920938463463374607431768211456";
    es[0].partition_key_len = 256;
    CN_ASSERT_EQ(cn_kinesis_put_records(kc, "s", es, 1, &pr, &e, soon()), CN_EKINESIS_HASH_KEY);
    CN_ASSERT_EQ(cn_kinesis_create_stream(kc, "bad name", 1, &e, soon()), CN_EKINESIS_STREAM_NAME);
    CN_ASSERT_EQ(cn_kinesis_split_shard(kc, "s", "shardId-0", "1x", &e, soon()),
                 CN_EKINESIS_HASH_KEY);
    char it[CN_KINESIS_ITERATOR_MAX];
    struct cn_kinesis_iterator_opts io = {.type = CN_KINESIS_AT_SEQUENCE_NUMBER};
    CN_ASSERT_EQ(cn_kinesis_get_shard_iterator(kc, "s", "shardId-0", &io, it, &e, soon()), -EINVAL);
    CN_ASSERT_EQ(fake.requests, 0); /* nothing was sent */
    free(es);
    free(big);
    fake_stop(kc);
    return 0;
}

static void client_rejects_limit_violations_before_sending(void)
{
    cn_test_run(reject_main, NULL);
}

/* ==== the emulators ================================================================ */

struct emu_case {
    enum cn_emu_kind kind;
    bool tls;
    struct cn_emu emu;
    struct cn_kinesis_client *kc;
    struct cn_tls_ctx *tls_ctx;
};

static void emu_client(struct emu_case *c)
{
    struct cn_kinesis_client_opts o = {.endpoint_url = c->tls ? c->emu.tls_url : c->emu.url,
                                       .region = "us-east-1",
                                       .access_key_id = "AKIDEXAMPLE",
                                       .secret_access_key = "secret",
                                       .max_conns = 4};
    if (c->tls) {
        /* kinesis-mock's self-signed certificate for a throwaway local peer */
        struct cn_tls_client_opts to = {.dangerously_skip_verification = true};
        CN_ASSERT_EQ(cn_tls_client_ctx_new(&c->tls_ctx, &to), 0);
        o.tls = c->tls_ctx;
    }
    CN_ASSERT_EQ(cn_kinesis_client_new(&c->kc, &o), 0);
}

static void emu_client_close(struct emu_case *c)
{
    cn_kinesis_client_close(c->kc);
    cn_tls_ctx_free(c->tls_ctx);
}

static void create_active(struct cn_kinesis_client *kc, const char *stream, int shards)
{
    struct cn_kinesis_error e;
    int rc = cn_kinesis_create_stream(kc, stream, shards, &e, soon());
    if (rc < 0) {
        fprintf(stderr, "CreateStream: %s %s\n", e.type, e.message);
    }
    CN_ASSERT_EQ(rc, 0);
    struct cn_kinesis_stream_summary s;
    CN_ASSERT_EQ(cn_kinesis_wait_active(kc, stream, &s, &e, soon()), 0);
    CN_ASSERT_EQ(s.status, CN_KINESIS_STATUS_ACTIVE);
    CN_ASSERT_EQ(s.open_shard_count, shards);
    CN_ASSERT_STREQ(s.name, stream);
}

static void wait_updated(struct cn_kinesis_client *kc, const char *stream)
{
    struct cn_kinesis_error e;
    /* a reshard makes the stream UPDATING; poll until ACTIVE again */
    CN_ASSERT_EQ(cn_kinesis_wait_active(kc, stream, NULL, &e, soon()), 0);
}

/* What was put, to compare with what comes back. */
struct sent {
    char pk[64];
    uint8_t data[300];
    size_t len;
    char seq[CN_KINESIS_SEQ_MAX];
    char shard[CN_KINESIS_SHARD_ID_MAX + 1];
    uint64_t sub_seq; /* inside an aggregate */
    bool seen;
};

struct readback {
    struct sent *sent;
    size_t nsent;
    size_t plain, user; /* Kinesis records read, user records after deaggregation */
};

static struct sent *find_sent(struct readback *rb, const char *seq, uint64_t sub, const uint8_t *pk,
                              size_t pklen)
{
    for (size_t i = 0; i < rb->nsent; i++) {
        struct sent *s = &rb->sent[i];
        if (strcmp(s->seq, seq) == 0 && s->sub_seq == sub && strlen(s->pk) == pklen &&
            memcmp(s->pk, pk, pklen) == 0) {
            return s;
        }
    }
    return NULL;
}

static void check_record(struct readback *rb, const char *shard, const struct cn_kinesis_record *r)
{
    struct cn__deagg d;
    struct cn__user_record in = {.pk = (const uint8_t *)r->partition_key,
                                 .pk_len = r->partition_key_len,
                                 .data = r->data,
                                 .data_len = r->data_len};
    struct cn__user_record u;
    CN_ASSERT_GE(cn__deagg_open(&d, &in, NULL), 0);
    rb->plain++;
    while (cn__deagg_next(&d, &u) == 1) {
        struct sent *s = find_sent(rb, r->sequence_number, u.sub_seq, u.pk, u.pk_len);
        if (!s) {
            fprintf(stderr, "unexpected record %s/%" PRIu64 " in %s\n", r->sequence_number,
                    u.sub_seq, shard);
        }
        CN_ASSERT(s != NULL);
        CN_ASSERT(!s->seen);
        CN_ASSERT_STREQ(s->shard, shard);
        CN_ASSERT_EQ(u.data_len, s->len);
        CN_ASSERT_MEMEQ(u.data, s->data, s->len);
        CN_ASSERT_GT(r->arrival_ms, 1000000000000); /* after 2001 */
        s->seen = true;
        rb->user++;
    }
    cn__deagg_close(&d);
}

/* Reads every shard from TRIM_HORIZON until caught up. */
static void read_all(struct cn_kinesis_client *kc, const char *stream, struct readback *rb)
{
    struct cn_kinesis_shard_list *l;
    struct cn_kinesis_error e;
    CN_ASSERT_EQ(cn_kinesis_list_shards(kc, stream, CN_KINESIS_SHARDS_ALL, &l, &e, soon()), 0);
    for (size_t i = 0; i < l->count; i++) {
        char it[CN_KINESIS_ITERATOR_MAX];
        CN_ASSERT_EQ(
            cn_kinesis_get_shard_iterator(kc, stream, l->shards[i].id, NULL, it, &e, soon()), 0);
        for (int rounds = 0;; rounds++) {
            CN_ASSERT_LT(rounds, 100);
            struct cn_kinesis_records *r;
            int rc = cn_kinesis_get_records(kc, it, 37, &r, &e, soon());
            if (rc < 0) {
                fprintf(stderr, "GetRecords: %s %s\n", e.type, e.message);
            }
            CN_ASSERT_EQ(rc, 0);
            for (size_t k = 0; k < r->count; k++) {
                check_record(rb, l->shards[i].id, &r->records[k]);
            }
            bool done = !r->next_iterator || (r->count == 0 && r->millis_behind_latest == 0);
            if (!done) {
                snprintf(it, sizeof it, "%s", r->next_iterator);
            }
            cn_kinesis_records_free(r);
            if (done) {
                break;
            }
        }
    }
    cn_kinesis_shard_list_free(l);
}

static void fill_sent(struct sent *s, int i)
{
    snprintf(s->pk, sizeof s->pk, "key-%d-%llx", i, (unsigned long long)(rnd() & 0xFFFFFF));
    s->len = 1 + rnd() % (sizeof s->data - 1);
    for (size_t k = 0; k < s->len; k++) {
        s->data[k] = (uint8_t)rnd();
    }
}

/* PutRecord x5, PutRecords x120, one aggregate of 10: 135 user records. */
static size_t put_everything(struct cn_kinesis_client *kc, const char *stream, struct sent *sent)
{
    struct cn_kinesis_error e;
    size_t n = 0;
    for (; n < 5; n++) {
        fill_sent(&sent[n], (int)n);
        struct cn_kinesis_entry en = entry(sent[n].pk, sent[n].data, sent[n].len);
        struct cn_kinesis_put_result r;
        CN_ASSERT_EQ(cn_kinesis_put_record(kc, stream, &en, NULL, &r, &e, soon()), 0);
        snprintf(sent[n].seq, sizeof sent[n].seq, "%s", r.sequence_number);
        snprintf(sent[n].shard, sizeof sent[n].shard, "%s", r.shard_id);
    }
    struct cn_kinesis_entry es[120];
    for (size_t i = 0; i < 120; i++) {
        fill_sent(&sent[n + i], (int)(n + i));
        es[i] = entry(sent[n + i].pk, sent[n + i].data, sent[n + i].len);
    }
    struct cn_kinesis_put_records_result *pr;
    CN_ASSERT_EQ(cn_kinesis_put_records(kc, stream, es, 120, &pr, &e, soon()), 0);
    CN_ASSERT_EQ(pr->failed, 0);
    for (size_t i = 0; i < 120; i++, n++) {
        CN_ASSERT_EQ(pr->results[i].code, 0);
        snprintf(sent[n].seq, sizeof sent[n].seq, "%s", pr->results[i].sequence_number);
        snprintf(sent[n].shard, sizeof sent[n].shard, "%s", pr->results[i].shard_id);
    }
    cn_kinesis_put_records_result_free(pr);

    /* A KPL aggregate of 10 user records, put with its own keys. */
    struct cn__agg *agg;
    CN_ASSERT_EQ(cn__agg_new(&agg, CN_KINESIS_RECORD_MAX - 256), 0);
    size_t first = n;
    for (size_t i = 0; i < 10; i++, n++) {
        fill_sent(&sent[n], (int)n);
        sent[n].sub_seq = i;
        CN_ASSERT_GT(
            cn__agg_add(agg, sent[n].pk, strlen(sent[n].pk), NULL, 0, sent[n].data, sent[n].len),
            0);
    }
    size_t size = cn__agg_size(agg);
    uint8_t *buf = malloc(size);
    CN_ASSERT_EQ(cn__agg_encode(agg, buf, size), size);
    struct cn__agg_keys keys;
    CN_ASSERT_EQ(cn__agg_keys(agg, &keys), 0);
    char pk[300];
    snprintf(pk, sizeof pk, "%.*s", (int)keys.pk_len, keys.pk);
    struct cn_kinesis_entry en = entry(pk, buf, size);
    en.explicit_hash_key = keys.ehk;
    CN_ASSERT_EQ(cn_kinesis_put_records(kc, stream, &en, 1, &pr, &e, soon()), 0);
    for (size_t i = first; i < n; i++) {
        snprintf(sent[i].seq, sizeof sent[i].seq, "%s", pr->results[0].sequence_number);
        snprintf(sent[i].shard, sizeof sent[i].shard, "%s", pr->results[0].shard_id);
    }
    cn_kinesis_put_records_result_free(pr);
    free(buf);
    cn__agg_free(agg);
    return n;
}

static int round_trip_main(void *arg)
{
    struct emu_case *c = arg;
    emu_client(c);
    create_active(c->kc, "round-trip", 3);
    struct sent *sent = calloc(200, sizeof *sent);
    struct readback rb = {.sent = sent};
    rb.nsent = put_everything(c->kc, "round-trip", sent);
    read_all(c->kc, "round-trip", &rb);
    CN_ASSERT_EQ(rb.user, rb.nsent);
    CN_ASSERT_EQ(rb.plain, rb.nsent - 9); /* the aggregate is one Kinesis record */
    for (size_t i = 0; i < rb.nsent; i++) {
        CN_ASSERT(sent[i].seen);
    }
    /* Sequence numbers of one shard grow with the put order. */
    free(sent);
    struct cn_kinesis_error e;
    CN_ASSERT_EQ(cn_kinesis_delete_stream(c->kc, "round-trip", false, &e, soon()), 0);
    emu_client_close(c);
    return 0;
}

static void run_emu(enum cn_emu_kind kind, bool tls, cn_fn fn)
{
    struct emu_case c = {.kind = kind, .tls = tls};
    cn_emu_start(&c.emu, kind);
    cn_test_run(fn, &c);
    cn_emu_stop(&c.emu);
}

static void kinesalite_round_trip(void)
{
    run_emu(CN_EMU_KINESALITE, false, round_trip_main);
}

static void kinesis_mock_round_trip(void)
{
    run_emu(CN_EMU_KINESIS_MOCK, false, round_trip_main);
}

static void kinesis_mock_tls_round_trip(void)
{
    run_emu(CN_EMU_KINESIS_MOCK, true, round_trip_main);
}

static int missing_main(void *arg)
{
    struct emu_case *c = arg;
    emu_client(c);
    struct cn_kinesis_error e;
    struct cn_kinesis_stream_summary s;
    CN_ASSERT_EQ(cn_kinesis_describe_stream_summary(c->kc, "nope", &s, &e, soon()),
                 CN_EKINESIS_NOT_FOUND);
    CN_ASSERT(!e.retryable);
    CN_ASSERT_STREQ(e.type, "ResourceNotFoundException");
    CN_ASSERT_EQ(e.http_status, 400);
    CN_ASSERT(e.message[0] != '\0');
    struct cn_kinesis_entry en = entry("k", "d", 1);
    struct cn_kinesis_put_result r;
    CN_ASSERT_EQ(cn_kinesis_put_record(c->kc, "nope", &en, NULL, &r, &e, soon()),
                 CN_EKINESIS_NOT_FOUND);
    struct cn_kinesis_shard_list *l;
    CN_ASSERT_EQ(cn_kinesis_list_shards(c->kc, "nope", CN_KINESIS_SHARDS_ALL, &l, &e, soon()),
                 CN_EKINESIS_NOT_FOUND);
    char it[CN_KINESIS_ITERATOR_MAX];
    CN_ASSERT_EQ(
        cn_kinesis_get_shard_iterator(c->kc, "nope", "shardId-000000000000", NULL, it, &e, soon()),
        CN_EKINESIS_NOT_FOUND);
    CN_ASSERT_EQ(cn_kinesis_delete_stream(c->kc, "nope", false, &e, soon()), CN_EKINESIS_NOT_FOUND);
    /* Waiting for a stream that never comes ends at the deadline. */
    CN_ASSERT_EQ(cn_kinesis_wait_active(c->kc, "nope", NULL, &e, cn_now() + 300), -ETIMEDOUT);
    /* Creating one twice. */
    create_active(c->kc, "twice", 1);
    CN_ASSERT_EQ(cn_kinesis_create_stream(c->kc, "twice", 1, &e, soon()), CN_EKINESIS_IN_USE);
    CN_ASSERT(!e.retryable);
    emu_client_close(c);
    return 0;
}

static void kinesalite_missing_stream_is_not_found(void)
{
    run_emu(CN_EMU_KINESALITE, false, missing_main);
}

static void kinesis_mock_missing_stream_is_not_found(void)
{
    run_emu(CN_EMU_KINESIS_MOCK, false, missing_main);
}

static const struct cn_kinesis_shard *shard_by_id(const struct cn_kinesis_shard_list *l,
                                                  const char *id)
{
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->shards[i].id, id) == 0) {
            return &l->shards[i];
        }
    }
    return NULL;
}

static int reshard_main(void *arg)
{
    struct emu_case *c = arg;
    emu_client(c);
    struct cn_kinesis_error e;
    struct cn_kinesis_shard_list *all, *open;
    create_active(c->kc, "reshard", 1);
    CN_ASSERT_EQ(cn_kinesis_list_shards(c->kc, "reshard", CN_KINESIS_SHARDS_ALL, &all, &e, soon()),
                 0);
    CN_ASSERT_EQ(all->count, 1);
    char parent[CN_KINESIS_SHARD_ID_MAX + 1];
    snprintf(parent, sizeof parent, "%s", all->shards[0].id);
    CN_ASSERT_STREQ(all->shards[0].starting_hash_key, "0");
    CN_ASSERT_STREQ(all->shards[0].ending_hash_key, MAX_KEY);
    cn_kinesis_shard_list_free(all);

    int rc = cn_kinesis_split_shard(c->kc, "reshard", parent, HALF_KEY, &e, soon());
    if (rc < 0) {
        fprintf(stderr, "SplitShard: %s %s\n", e.type, e.message);
    }
    CN_ASSERT_EQ(rc, 0);
    wait_updated(c->kc, "reshard");
    CN_ASSERT_EQ(cn_kinesis_list_shards(c->kc, "reshard", CN_KINESIS_SHARDS_ALL, &all, &e, soon()),
                 0);
    CN_ASSERT_EQ(all->count, 3);
    CN_ASSERT(!shard_by_id(all, parent)->open);
    cn_kinesis_shard_list_free(all);
    CN_ASSERT_EQ(
        cn_kinesis_list_shards(c->kc, "reshard", CN_KINESIS_SHARDS_OPEN, &open, &e, soon()), 0);
    CN_ASSERT_EQ(open->count, 2);
    const struct cn_kinesis_shard *lo = &open->shards[0], *hi = &open->shards[1];
    if (strcmp(lo->starting_hash_key, "0") != 0) {
        const struct cn_kinesis_shard *t = lo;
        lo = hi;
        hi = t;
    }
    CN_ASSERT_STREQ(lo->parent, parent);
    CN_ASSERT_STREQ(hi->parent, parent);
    CN_ASSERT_STREQ(lo->starting_hash_key, "0");
    CN_ASSERT_STREQ(lo->ending_hash_key, "170141183460469231731687303715884105727");
    CN_ASSERT_STREQ(hi->starting_hash_key, HALF_KEY);
    CN_ASSERT_STREQ(hi->ending_hash_key, MAX_KEY);
    CN_ASSERT(lo->open && hi->open);

    /* Merge the children back into one. */
    rc = cn_kinesis_merge_shards(c->kc, "reshard", lo->id, hi->id, &e, soon());
    if (rc < 0) {
        fprintf(stderr, "MergeShards: %s %s\n", e.type, e.message);
    }
    CN_ASSERT_EQ(rc, 0);
    char lo_id[CN_KINESIS_SHARD_ID_MAX + 1], hi_id[CN_KINESIS_SHARD_ID_MAX + 1];
    snprintf(lo_id, sizeof lo_id, "%s", lo->id);
    snprintf(hi_id, sizeof hi_id, "%s", hi->id);
    cn_kinesis_shard_list_free(open);
    wait_updated(c->kc, "reshard");
    CN_ASSERT_EQ(
        cn_kinesis_list_shards(c->kc, "reshard", CN_KINESIS_SHARDS_OPEN, &open, &e, soon()), 0);
    CN_ASSERT_EQ(open->count, 1);
    CN_ASSERT_STREQ(open->shards[0].starting_hash_key, "0");
    CN_ASSERT_STREQ(open->shards[0].ending_hash_key, MAX_KEY);
    CN_ASSERT(strcmp(open->shards[0].parent, lo_id) == 0 ||
              strcmp(open->shards[0].parent, hi_id) == 0);
    CN_ASSERT(open->shards[0].adjacent_parent[0] != '\0');
    cn_kinesis_shard_list_free(open);

    /* Splitting outside the shard's range or a missing shard: mapped errors. */
    rc = cn_kinesis_split_shard(c->kc, "reshard", "shardId-000000009999", HALF_KEY, &e, soon());
    CN_ASSERT(rc == CN_EKINESIS_NOT_FOUND || rc == CN_EKINESIS_INVALID_ARGUMENT);
    CN_ASSERT(!e.retryable);

    /* UpdateShardCount: kinesis-mock has it, kinesalite does not. */
    rc = cn_kinesis_update_shard_count(c->kc, "reshard", 2, &e, soon()); /* AWS: at most 2x */
    if (c->kind == CN_EMU_KINESALITE) {
        CN_ASSERT_LT(rc, 0);
        CN_ASSERT(!e.retryable);
        fprintf(stderr, "kinesalite UpdateShardCount: %d %s: %s\n", e.http_status, e.type,
                e.message);
    } else {
        if (rc < 0) {
            fprintf(stderr, "UpdateShardCount: %s %s\n", e.type, e.message);
        }
        CN_ASSERT_EQ(rc, 0);
        wait_updated(c->kc, "reshard");
        CN_ASSERT_EQ(
            cn_kinesis_list_shards(c->kc, "reshard", CN_KINESIS_SHARDS_OPEN, &open, &e, soon()), 0);
        CN_ASSERT_EQ(open->count, 2);
        cn_kinesis_shard_list_free(open);
    }
    emu_client_close(c);
    return 0;
}

static void kinesalite_split_and_merge_update_the_shard_list(void)
{
    run_emu(CN_EMU_KINESALITE, false, reshard_main);
}

static void kinesis_mock_split_merge_and_update_shard_count(void)
{
    run_emu(CN_EMU_KINESIS_MOCK, false, reshard_main);
}

/* The shard the map built from ListShards predicts is the one the service
 * reports, for random partition keys and explicit hash keys. */
static int predict_main(void *arg)
{
    struct emu_case *c = arg;
    emu_client(c);
    struct cn_kinesis_error e;
    create_active(c->kc, "predict", 4);
    struct cn_kinesis_shard_list *l;
    CN_ASSERT_EQ(cn_kinesis_list_shards(c->kc, "predict", CN_KINESIS_SHARDS_OPEN, &l, &e, soon()),
                 0);
    CN_ASSERT_EQ(l->count, 4);
    struct cn__shard_desc d[4];
    for (size_t i = 0; i < 4; i++) {
        d[i] = (struct cn__shard_desc){l->shards[i].id, l->shards[i].starting_hash_key,
                                       l->shards[i].ending_hash_key, !l->shards[i].open};
    }
    struct cn__shardmap *m;
    CN_ASSERT_EQ(cn__shardmap_new(&m, d, 4), 0);
    static char keys[500][40];
    static char ehks[500][CN__HASHKEY_DEC_MAX];
    struct cn_kinesis_entry es[500];
    size_t checked = 0;
    for (int batch = 0; batch < 20; batch++) { /* 10,000 keys */
        for (size_t i = 0; i < 500; i++) {
            snprintf(keys[i], sizeof keys[i], "%016llx%04zx", (unsigned long long)rnd(), i);
            es[i] = entry(keys[i], "x", 1);
            if (batch == 2 && i % 2 == 0) { /* explicit hash keys, some at range edges */
                struct cn__hashkey k = {rnd(), rnd()};
                if (i % 10 == 0) {
                    size_t s = (i / 10) % 4;
                    CN_ASSERT_EQ(cn__hashkey_parse(&k, l->shards[s].ending_hash_key,
                                                   strlen(l->shards[s].ending_hash_key)),
                                 0);
                }
                cn__hashkey_format(&k, ehks[i]);
                es[i].explicit_hash_key = ehks[i];
            }
        }
        struct cn_kinesis_put_records_result *pr;
        CN_ASSERT_EQ(cn_kinesis_put_records(c->kc, "predict", es, 500, &pr, &e, soon()), 0);
        for (size_t i = 0; i < 500; i++) {
            struct cn__hashkey k;
            if (es[i].explicit_hash_key) {
                cn__hashkey_parse(&k, ehks[i], strlen(ehks[i]));
            } else {
                cn__hashkey_from_pk(&k, keys[i], strlen(keys[i]));
            }
            CN_ASSERT_EQ(pr->results[i].code, 0);
            CN_ASSERT_STREQ(pr->results[i].shard_id, cn__shardmap_id(m, cn__shardmap_find(m, &k)));
            checked++;
        }
        cn_kinesis_put_records_result_free(pr);
    }
    CN_ASSERT_EQ(checked, 10000);
    cn__shardmap_free(m);
    cn_kinesis_shard_list_free(l);
    emu_client_close(c);
    return 0;
}

static void kinesalite_shard_prediction_matches_service(void)
{
    run_emu(CN_EMU_KINESALITE, false, predict_main);
}

static void kinesis_mock_shard_prediction_matches_service(void)
{
    run_emu(CN_EMU_KINESIS_MOCK, false, predict_main);
}

CN_TEST_MAIN(CN_CASE(error_mapping_classifies_aws_types),
             CN_CASE(error_mapping_retryable_transport_errors),
             CN_CASE(parsers_read_canned_responses),
             CN_CASE(parsers_reject_truncated_and_mistyped_bodies),
             CN_CASE(validation_rejects_what_aws_rejects), CN_CASE(put_records_body_is_exact_json),
             CN_CASE(client_maps_fake_endpoint_answers),
             CN_CASE(client_rejects_limit_violations_before_sending),
             CN_CASE(kinesalite_round_trip), CN_CASE(kinesis_mock_round_trip),
             CN_CASE(kinesis_mock_tls_round_trip), CN_CASE(kinesalite_missing_stream_is_not_found),
             CN_CASE(kinesis_mock_missing_stream_is_not_found),
             CN_CASE(kinesalite_split_and_merge_update_the_shard_list),
             CN_CASE(kinesis_mock_split_merge_and_update_shard_count),
             CN_CASE(kinesalite_shard_prediction_matches_service),
             CN_CASE(kinesis_mock_shard_prediction_matches_service))
