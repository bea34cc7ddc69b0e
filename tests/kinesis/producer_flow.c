/* SPDX-License-Identifier: MIT */
/*
 * How records flow through the producer, beyond plain delivery
 * (tests/kinesis/producer.c): the per-shard limiter, the byte bound,
 * outcomes taken in batches, the periodic shard map refresh that follows a
 * split, and the metrics snapshot and callback.
 *
 * The limiter and byte cases run against a recording endpoint of our own
 * (an HTTP server coroutine that speaks just enough Kinesis: ListShards
 * with two shards, PutRecords answered with success) that notes when each
 * entry arrived and which shard it hashes to. The limiter's promise is an
 * upper bound (never more than a second's burst plus the rate times the
 * time passed), which a slow machine can only make easier to keep, so it
 * is asserted exactly, with no timing slack in the other direction.
 */
#include "test.h"

#include <jansson.h>

#include "emulator.h"
#include "kinesis_test.h"
#include "kinesis/base64.h"
#include "kinesis/hashkey.h"

#define LONG_MS 60000
#define EP_SHARDS 2
#define EP_MAX_ARRIVALS 20000

static int64_t soon(void)
{
    return cn_now() + LONG_MS;
}

static struct cn_kinesis_client_opts client_opts(const char *url)
{
    return cn_kt_client_opts(url, 8);
}

/* ---- the recording endpoint --------------------------------------------------- */

struct arrival {
    int64_t ms;
    size_t bytes; /* data + partition key */
};

struct endpoint {
    struct cn_tcp_listener *l;
    struct cn_co *co;
    char url[64];
    struct cn__hashkey mid; /* shard 0 below, shard 1 from here */
    uint64_t seq;
    size_t n[EP_SHARDS];
    struct arrival at[EP_SHARDS][EP_MAX_ARRIVALS];
};

static struct endpoint ep;

static const char list_shards[] =
    "{\"Shards\":["
    "{\"ShardId\":\"shardId-000000000000\",\"HashKeyRange\":{\"StartingHashKey\":\"0\","
    "\"EndingHashKey\":\"170141183460469231731687303715884105727\"},"
    "\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"1\"}},"
    "{\"ShardId\":\"shardId-000000000001\",\"HashKeyRange\":{\"StartingHashKey\":"
    "\"170141183460469231731687303715884105728\","
    "\"EndingHashKey\":\"340282366920938463463374607431768211455\"},"
    "\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"1\"}}]}";

static int ep_shard(json_t *entry)
{
    const char *pk = json_string_value(json_object_get(entry, "PartitionKey"));
    const char *ehk = json_string_value(json_object_get(entry, "ExplicitHashKey"));
    struct cn__hashkey k;
    if (ehk) {
        CN_ASSERT_EQ(cn__hashkey_parse(&k, ehk, strlen(ehk)), 0);
    } else {
        cn__hashkey_from_pk(&k, pk, strlen(pk));
    }
    return cn__hashkey_cmp(&k, &ep.mid) < 0 ? 0 : 1;
}

static size_t ep_entry_bytes(json_t *entry)
{
    const char *pk = json_string_value(json_object_get(entry, "PartitionKey"));
    const char *b64 = json_string_value(json_object_get(entry, "Data"));
    size_t n = strlen(b64);
    uint8_t *data = malloc(n + 1);
    ssize_t len = cn__base64_decode(data, n + 1, b64, n);
    CN_ASSERT_GE(len, 0);
    free(data);
    return strlen(pk) + (size_t)len;
}

static char *ep_put_records(const char *body, size_t len)
{
    json_error_t jerr;
    json_t *req = json_loadb(body, len, 0, &jerr);
    CN_ASSERT(req != NULL);
    json_t *resp = json_object(), *out = json_array(), *entry;
    size_t i;
    int64_t now = cn_now();
    json_array_foreach(json_object_get(req, "Records"), i, entry)
    {
        int shard = ep_shard(entry);
        CN_ASSERT_LT(ep.n[shard], EP_MAX_ARRIVALS);
        ep.at[shard][ep.n[shard]++] = (struct arrival){now, ep_entry_bytes(entry)};
        char seq[32];
        snprintf(seq, sizeof seq, "%llu", (unsigned long long)++ep.seq);
        json_t *o = json_object();
        json_object_set_new(o, "SequenceNumber", json_string(seq));
        json_object_set_new(o, "ShardId",
                            json_string(shard ? "shardId-000000000001" : "shardId-000000000000"));
        json_array_append_new(out, o);
    }
    json_object_set_new(resp, "FailedRecordCount", json_integer(0));
    json_object_set_new(resp, "Records", out);
    char *s = json_dumps(resp, JSON_COMPACT);
    json_decref(resp);
    json_decref(req);
    return s;
}

static bool target_is(const struct cn_http_request *r, const char *op)
{
    size_t n = 0, k = strlen(op);
    const char *t = cn_http_header_find(r->headers, r->nheaders, "X-Amz-Target", &n);
    return t && n > k && memcmp(t + n - k, op, k) == 0;
}

static int ep_handle(struct cn_http_server_conn *c, const struct cn_http_request *r, void *arg)
{
    (void)arg;
    const char *body;
    size_t len;
    int rc = cn_http_server_read_body_all(c, &body, &len, soon());
    if (rc < 0) {
        return rc;
    }
    struct cn_http_header json = cn_http_header_str("Content-Type", "application/x-amz-json-1.1");
    if (target_is(r, "ListShards")) {
        return cn_http_server_respond(c, 200, &json, 1, list_shards, strlen(list_shards), soon());
    }
    CN_ASSERT(target_is(r, "PutRecords"));
    char *s = ep_put_records(body, len);
    rc = cn_http_server_respond(c, 200, &json, 1, s, strlen(s), soon());
    free(s);
    return rc;
}

static int ep_serve(void *arg)
{
    (void)arg;
    return cn_http_serve(ep.l, ep_handle, NULL, NULL);
}

static void ep_start(void)
{
    memset(&ep, 0, sizeof ep);
    static const char mid[] = "170141183460469231731687303715884105728";
    CN_ASSERT_EQ(cn__hashkey_parse(&ep.mid, mid, strlen(mid)), 0);
    CN_ASSERT_EQ(cn_tcp_listen(&ep.l, "127.0.0.1", 0, NULL), 0);
    CN_ASSERT_EQ(cn_spawn(&ep.co, ep_serve, NULL, NULL), 0);
    snprintf(ep.url, sizeof ep.url, "http://127.0.0.1:%d", cn_tcp_listener_port(ep.l));
}

static void ep_stop(void)
{
    cn_cancel(ep.co);
    CN_ASSERT_EQ(cn_join(ep.co, NULL, soon()), 0);
    cn_tcp_listener_close(ep.l);
}

/* ---- the limiter --------------------------------------------------------------- */

struct limit_case {
    unsigned percent;
    bool aggregation;
    size_t records, size;
};

/* Every prefix of a shard's arrivals stays under a full bucket plus the
 * rate times the time since the first arrival, plus one record's bytes (a
 * record bigger than what is left may go when the bucket is full) and half
 * a second's worth: the first record may have left the limiter that much
 * before it arrived (a connection to open, a loaded machine). Without the
 * limiter everything arrives at once, several times over this bound. */
#define DEPARTURE_SLACK_MS 500

static void check_under_rate(size_t shard, double rec_per_ms, double bytes_per_ms,
                             size_t max_record)
{
    size_t n = ep.n[shard];
    double bytes = 0;
    for (size_t i = 0; i < n; i++) {
        double ms = (double)(ep.at[shard][i].ms - ep.at[shard][0].ms) + DEPARTURE_SLACK_MS;
        bytes += (double)ep.at[shard][i].bytes;
        CN_ASSERT_LE((double)(i + 1), rec_per_ms * 1000 + rec_per_ms * ms + 1);
        CN_ASSERT_LE(bytes, bytes_per_ms * 1000 + bytes_per_ms * ms + (double)max_record);
    }
}

static int limiter_main(void *arg)
{
    const struct limit_case *lc = arg;
    ep_start();
    struct cn_kinesis_producer_config c = {.client = client_opts(ep.url),
                                           .rate_limit_percent = lc->percent,
                                           .aggregation =
                                               lc->aggregation ? CN_KINESIS_ON : CN_KINESIS_OFF,
                                           .record_max_buffered_time_ms = 20};
    struct cn_kinesis_producer *p;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), 0);
    uint8_t *data = calloc(1, lc->size);
    CN_ASSERT(data != NULL);
    for (size_t i = 0; i < lc->records; i++) {
        char pk[32];
        snprintf(pk, sizeof pk, "key-%zu", i);
        memset(data, (int)i, lc->size);
        CN_ASSERT_EQ(cn_kinesis_put(p, "s", pk, data, lc->size, NULL, NULL, soon()), 0);
    }
    CN_ASSERT_EQ(cn_kinesis_producer_flush(p, soon()), 0);
    struct cn_kinesis_producer_counters k;
    cn_kinesis_producer_counters(p, &k);
    CN_ASSERT_EQ(k.succeeded, lc->records);
    CN_ASSERT_GT(k.limited, 0); /* the offered load was over the rate */
    CN_ASSERT_EQ(cn_kinesis_producer_close(p, soon()), 0);
    double scale = lc->percent / 100.0 / 1000.0;
    size_t max_record = lc->aggregation ? 51200 + 64 : lc->size + 32;
    for (size_t s = 0; s < EP_SHARDS; s++) {
        CN_ASSERT_GT(ep.n[s], 0);
        check_under_rate(s, 1000 * scale, 1048576 * scale, max_record);
    }
    free(data);
    ep_stop();
    return 0;
}

static void limiter_holds_each_shard_under_its_record_rate(void)
{
    /* 100 records/s per shard; 500 plain records over two shards: the
     * second's burst, then about 1.5 s of limited sending. */
    struct limit_case lc = {.percent = 10, .aggregation = false, .records = 500, .size = 10};
    cn_test_run(limiter_main, &lc);
}

static void limiter_holds_each_shard_under_its_byte_rate(void)
{
    /* ~100 KiB/s per shard; 600 KiB of aggregated records: bytes bind. */
    struct limit_case lc = {.percent = 10, .aggregation = true, .records = 600, .size = 1024};
    cn_test_run(limiter_main, &lc);
}

/* ---- the byte bound ------------------------------------------------------------ */

struct bytes_state {
    size_t outstanding, max_seen, outcomes;
};

static void count_bytes(void *arg, struct cn_kinesis_outcome_handle *h,
                        const struct cn_kinesis_outcome *o)
{
    struct bytes_state *b = arg;
    (void)h;
    CN_ASSERT_EQ(o->code, 0);
    b->outstanding -= 8 + 8192; /* "key-NNNN" + data */
    b->outcomes++;
}

static int bytes_main(void *arg)
{
    (void)arg;
    ep_start();
    struct bytes_state b = {0};
    struct cn_kinesis_producer_config c = {.client = client_opts(ep.url),
                                           .rate_limit = CN_KINESIS_OFF,
                                           .max_outstanding_bytes = 64 * 1024,
                                           .on_outcome = count_bytes,
                                           .on_outcome_arg = &b};
    struct cn_kinesis_producer *p;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), 0);
    static uint8_t data[8192];
    size_t i = 0;
    /* Fills the bound without parking: 8 records of 8,200 bytes fit in
     * 64 KiB (65,536 / 8,200 = 7.99: the 8th does not). */
    for (; i < 7; i++) {
        CN_ASSERT_EQ(cn_kinesis_try_put(p, "s", "key-0000", data, sizeof data, NULL, NULL), 0);
        b.outstanding += 8 + sizeof data;
    }
    CN_ASSERT_EQ(cn_kinesis_try_put(p, "s", "key-0000", data, sizeof data, NULL, NULL), -EAGAIN);
    for (; i < 400; i++) {
        char pk[16];
        snprintf(pk, sizeof pk, "key-%04zu", i);
        CN_ASSERT_EQ(cn_kinesis_put(p, "s", pk, data, sizeof data, NULL, NULL, soon()), 0);
        b.outstanding += 8 + sizeof data;
        CN_ASSERT_LE(b.outstanding, 64 * 1024);
    }
    CN_ASSERT_EQ(cn_kinesis_producer_flush(p, soon()), 0);
    CN_ASSERT_EQ(b.outcomes, 400);
    CN_ASSERT_EQ(b.outstanding, 0);
    CN_ASSERT_EQ(cn_kinesis_producer_close(p, soon()), 0);
    ep_stop();
    return 0;
}

static void byte_bound_parks_put(void)
{
    cn_test_run(bytes_main, NULL);
}

/* ---- outcomes taken in batches ------------------------------------------------- */

struct take_state {
    struct cn_kinesis_producer *p;
    size_t n, taken;
    unsigned *seen; /* by id - 1 */
};

static int taker(void *arg)
{
    struct take_state *t = arg;
    struct cn_kinesis_outcome out[64];
    for (;;) {
        ssize_t n = cn_kinesis_producer_take_outcomes(t->p, out, 64, soon());
        CN_ASSERT_GE(n, 0);
        if (n == 0) {
            return 0; /* closing */
        }
        for (ssize_t i = 0; i < n; i++) {
            CN_ASSERT_EQ(out[i].code, 0);
            CN_ASSERT_GE(out[i].id, 1);
            CN_ASSERT_LE(out[i].id, t->n);
            CN_ASSERT_EQ(t->seen[out[i].id - 1]++, 0);
            CN_ASSERT(out[i].sequence_number[0] != '\0');
        }
        t->taken += (size_t)n;
    }
}

static int take_main(void *arg)
{
    (void)arg;
    ep_start();
    struct take_state t = {.n = 3000};
    t.seen = calloc(t.n, sizeof *t.seen);
    struct cn_kinesis_producer_config c = {.client = client_opts(ep.url),
                                           .rate_limit = CN_KINESIS_OFF,
                                           .max_outstanding_records = 100,
                                           .collect_outcomes = true};
    CN_ASSERT_EQ(cn_kinesis_producer_new(&t.p, &c), 0);
    struct cn_kinesis_outcome one;
    CN_ASSERT_EQ(cn_kinesis_producer_take_outcomes(t.p, &one, 1, cn_now() + 10), -ETIMEDOUT);
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, taker, &t, NULL), 0);
    for (size_t i = 0; i < t.n; i++) {
        char pk[32];
        snprintf(pk, sizeof pk, "k%zu", i);
        CN_ASSERT_EQ(cn_kinesis_put(t.p, "s", pk, "x", 1, NULL, NULL, soon()), 0);
    }
    CN_ASSERT_EQ(cn_kinesis_producer_flush(t.p, soon()), 0);
    struct cn_kinesis_producer_counters k;
    cn_kinesis_producer_counters(t.p, &k);
    CN_ASSERT_LE(k.max_outstanding, 100);
    CN_ASSERT_EQ(cn_kinesis_producer_close(t.p, soon()), 0); /* wakes the taker: 0 */
    CN_ASSERT_EQ(cn_join(co, NULL, soon()), 0);
    CN_ASSERT_EQ(t.taken, t.n);
    free(t.seen);
    ep_stop();
    return 0;
}

static void outcomes_are_taken_in_batches_under_the_record_bound(void)
{
    cn_test_run(take_main, NULL);
}

static int take_off_main(void *arg)
{
    (void)arg;
    struct cn_kinesis_producer_config c = {.client = client_opts("http://127.0.0.1:9")};
    struct cn_kinesis_producer *p;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), 0);
    struct cn_kinesis_outcome one;
    CN_ASSERT_EQ(cn_kinesis_producer_take_outcomes(p, &one, 1, soon()), -EINVAL);
    CN_ASSERT_EQ(cn_kinesis_producer_close(p, soon()), 0);
    c.rate_limit_percent = 1001;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), -EINVAL);
    c.rate_limit_percent = 0;
    c.shard_map_refresh_ms = -1;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), -EINVAL);
    return 0;
}

static void take_outcomes_needs_collect_outcomes_and_config_is_checked(void)
{
    cn_test_run(take_off_main, NULL);
}

/* ---- map refresh after a split, and the metrics ------------------------------- */

struct metrics_seen {
    int calls;
    uint64_t last_put;
};

static void on_metrics(void *arg, const struct cn_kinesis_metrics *m)
{
    struct metrics_seen *ms = arg;
    ms->calls++;
    ms->last_put = m->total.put;
}

static void put_n(struct cn_kinesis_producer *p, const char *prefix, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char pk[48];
        snprintf(pk, sizeof pk, "%s-%zu", prefix, i);
        CN_ASSERT_EQ(cn_kinesis_put(p, "split", pk, pk, strlen(pk), NULL, NULL, soon()), 0);
    }
    CN_ASSERT_EQ(cn_kinesis_producer_flush(p, soon()), 0);
}

static const struct cn_kinesis_shard_metrics *shard_in(const struct cn_kinesis_metrics *m,
                                                       const char *id)
{
    for (size_t i = 0; i < m->nshards; i++) {
        if (strcmp(m->shards[i].shard_id, id) == 0) {
            return &m->shards[i];
        }
    }
    return NULL;
}

static int refresh_main(void *arg)
{
    const char *url = arg;
    struct cn_kinesis_client *kc;
    struct cn_kinesis_client_opts co = client_opts(url);
    CN_ASSERT_EQ(cn_kinesis_client_new(&kc, &co), 0);
    struct cn_kinesis_error err;
    CN_ASSERT_EQ(cn_kinesis_create_stream(kc, "split", 1, &err, soon()), 0);
    CN_ASSERT_EQ(cn_kinesis_wait_active(kc, "split", NULL, &err, soon()), 0);
    struct metrics_seen ms = {0};
    struct cn_kinesis_producer_config c = {.client = client_opts(url),
                                           .rate_limit = CN_KINESIS_OFF,
                                           .shard_map_refresh_ms = 200,
                                           .metrics_interval_ms = 50,
                                           .on_metrics = on_metrics,
                                           .on_metrics_arg = &ms};
    struct cn_kinesis_producer *p;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), 0);
    put_n(p, "before", 500);
    CN_ASSERT_EQ(cn_kinesis_split_shard(kc, "split", "shardId-000000000000",
                                        "170141183460469231731687303715884105728", &err, soon()),
                 0);
    CN_ASSERT_EQ(cn_kinesis_wait_active(kc, "split", NULL, &err, soon()), 0);
    /* No record tells the producer about the split: the interval does. */
    struct cn_kinesis_producer_counters k;
    for (int64_t end = soon();; cn_sleep(20)) {
        cn_kinesis_producer_counters(p, &k);
        CN_ASSERT_LT(cn_now(), end);
        if (k.shard_map_loads >= 2) {
            break;
        }
    }
    put_n(p, "after", 1000);
    cn_kinesis_producer_counters(p, &k);
    CN_ASSERT_EQ(k.wrong_shard, 0);
    CN_ASSERT_EQ(k.succeeded, 1500);
    struct cn_kinesis_metrics *m;
    CN_ASSERT_EQ(cn_kinesis_producer_metrics(p, &m), 0);
    CN_ASSERT_EQ(m->nstreams, 1);
    CN_ASSERT_STREQ(m->streams[0].stream, "split");
    CN_ASSERT_EQ(m->streams[0].c.succeeded, 1500);
    CN_ASSERT_EQ(m->streams[0].put_to_outcome.count, 1500);
    CN_ASSERT_EQ(m->put_to_outcome.count, 1500);
    CN_ASSERT_EQ(m->request_rtt.count, m->total.requests);
    CN_ASSERT_EQ(m->nshards, 3);
    const struct cn_kinesis_shard_metrics *parent = shard_in(m, "shardId-000000000000");
    const struct cn_kinesis_shard_metrics *a = shard_in(m, "shardId-000000000001");
    const struct cn_kinesis_shard_metrics *b = shard_in(m, "shardId-000000000002");
    CN_ASSERT(parent && a && b);
    CN_ASSERT(!parent->open && a->open && b->open);
    CN_ASSERT_EQ(parent->c.sent, 500);
    CN_ASSERT_EQ(a->c.succeeded + b->c.succeeded, 1000);
    CN_ASSERT_GT(a->c.succeeded, 0);
    CN_ASSERT_GT(b->c.succeeded, 0);
    cn_kinesis_metrics_free(m);
    for (int64_t end = soon(); ms.last_put < 1500; cn_sleep(20)) {
        CN_ASSERT_LT(cn_now(), end);
    }
    CN_ASSERT_GE(ms.calls, 1);
    CN_ASSERT_EQ(cn_kinesis_producer_close(p, soon()), 0);
    cn_kinesis_client_close(kc);
    return 0;
}

static void kinesalite_map_refresh_follows_a_split_without_wrong_shards(void)
{
    struct cn_emu emu;
    cn_emu_start(&emu, CN_EMU_KINESALITE);
    cn_test_run(refresh_main, emu.url);
    cn_emu_stop(&emu);
}

CN_TEST_MAIN(CN_CASE(limiter_holds_each_shard_under_its_record_rate),
             CN_CASE(limiter_holds_each_shard_under_its_byte_rate), CN_CASE(byte_bound_parks_put),
             CN_CASE(outcomes_are_taken_in_batches_under_the_record_bound),
             CN_CASE(take_outcomes_needs_collect_outcomes_and_config_is_checked),
             CN_CASE(kinesalite_map_refresh_follows_a_split_without_wrong_shards))
