/* SPDX-License-Identifier: MIT */
/*
 * The producer (kinesis/producer.c, kinesis/producer_pipe.c) against
 * kinesalite (started by emulator.h) and against endpoints that fail:
 *   - thousands of records, aggregated and not, read back from every shard
 *     and deaggregated: each exactly once, in the predicted shard, at the
 *     sequence (and sub-sequence) number its outcome gave;
 *   - backpressure: never more than max_outstanding_records outstanding;
 *   - close with records in flight, a missing stream, an endpoint that
 *     refuses connections: exactly one outcome per record, the right code.
 * Outcomes are counted per record id through the callback, so a second
 * outcome for any record fails the test.
 */
#include "test.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "emulator.h"
#include "kinesis_test.h"
#include "kinesis/agg.h"
#include "kinesis/base64.h"
#include "kinesis/hashkey.h"

#define LONG_MS 60000

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

/* One user record put, its handle and what came back. */
struct rec {
    char pk[40];
    uint8_t data[128];
    size_t len;
    struct cn_kinesis_outcome_handle *h;
    struct cn_kinesis_outcome out;
    char predicted[CN_KINESIS_SHARD_ID_MAX + 1];
    bool seen;
};

struct env {
    struct cn_emu emu;
    const char *url; /* the producer's endpoint */
    struct cn_kinesis_client *kc;
    size_t n;
    struct rec *recs;
    unsigned *outcomes; /* by id - 1: how many outcomes the callback saw */
    size_t nids;
    size_t cb_ok, cb_failed;
    bool aggregation;
};

static void on_outcome(void *arg, struct cn_kinesis_outcome_handle *h,
                       const struct cn_kinesis_outcome *o)
{
    struct env *e = arg;
    (void)h;
    CN_ASSERT_GE(o->id, 1);
    CN_ASSERT_LE(o->id, e->nids);
    e->outcomes[o->id - 1]++;
    CN_ASSERT_EQ(e->outcomes[o->id - 1], 1); /* exactly one outcome */
    if (o->code == 0) {
        e->cb_ok++;
    } else {
        e->cb_failed++;
    }
}

static void env_init(struct env *e, size_t n)
{
    e->n = n;
    e->nids = n + 16;
    e->recs = calloc(n, sizeof *e->recs);
    e->outcomes = calloc(e->nids, sizeof *e->outcomes);
    CN_ASSERT(e->recs && e->outcomes);
    for (size_t i = 0; i < n; i++) {
        struct rec *r = &e->recs[i];
        snprintf(r->pk, sizeof r->pk, "pk-%zu-%llx", i, (unsigned long long)(rnd() & 0xFFFFFF));
        r->len = 1 + rnd() % (sizeof r->data - 1);
        for (size_t k = 0; k < r->len; k++) {
            r->data[k] = (uint8_t)rnd();
        }
    }
}

static void env_free(struct env *e)
{
    for (size_t i = 0; i < e->n; i++) {
        cn_kinesis_outcome_release(e->recs[i].h);
    }
    free(e->recs);
    free(e->outcomes);
}

static struct cn_kinesis_client_opts client_opts(const char *url)
{
    return cn_kt_client_opts(url, 4);
}

static struct cn_kinesis_producer_config config(struct env *e)
{
    struct cn_kinesis_producer_config c = {
        .client = client_opts(e->url), .on_outcome = on_outcome, .on_outcome_arg = e};
    return c;
}

static void create_active(struct cn_kinesis_client *kc, const char *stream, int shards)
{
    cn_kt_create_active(kc, stream, shards, soon());
}

/* The shard the service's own map says each record belongs to. */
static void predict(struct env *e, const char *stream)
{
    struct cn_kinesis_shard_list *l;
    struct cn_kinesis_error err;
    CN_ASSERT_EQ(cn_kinesis_list_shards(e->kc, stream, CN_KINESIS_SHARDS_OPEN, &l, &err, soon()),
                 0);
    struct cn__shard_desc d[16];
    CN_ASSERT_LE(l->count, 16);
    for (size_t i = 0; i < l->count; i++) {
        d[i] = (struct cn__shard_desc){.id = l->shards[i].id,
                                       .starting = l->shards[i].starting_hash_key,
                                       .ending = l->shards[i].ending_hash_key};
    }
    struct cn__shardmap *m;
    CN_ASSERT_EQ(cn__shardmap_new(&m, d, l->count), 0);
    for (size_t i = 0; i < e->n; i++) {
        struct cn__hashkey k;
        cn__hashkey_from_pk(&k, e->recs[i].pk, strlen(e->recs[i].pk));
        snprintf(e->recs[i].predicted, sizeof e->recs[i].predicted, "%s",
                 cn__shardmap_id(m, cn__shardmap_find(m, &k)));
    }
    cn__shardmap_free(m);
    cn_kinesis_shard_list_free(l);
}

static void check_user_record(struct env *e, const char *shard, const char *seq,
                              const struct cn__user_record *u)
{
    char pk[64];
    CN_ASSERT_LT(u->pk_len, sizeof pk);
    memcpy(pk, u->pk, u->pk_len);
    pk[u->pk_len] = '\0';
    size_t i;
    CN_ASSERT_EQ(sscanf(pk, "pk-%zu-", &i), 1);
    CN_ASSERT_LT(i, e->n);
    struct rec *r = &e->recs[i];
    CN_ASSERT_STREQ(r->pk, pk);
    CN_ASSERT(!r->seen);
    r->seen = true;
    CN_ASSERT_STREQ(shard, r->predicted);
    CN_ASSERT_STREQ(r->out.shard_id, shard);
    CN_ASSERT_STREQ(r->out.sequence_number, seq);
    CN_ASSERT_EQ(r->out.sub_sequence_number, u->sub_seq);
    CN_ASSERT_EQ(u->data_len, r->len);
    CN_ASSERT_MEMEQ(u->data, r->data, r->len);
}

/* Reads every shard from TRIM_HORIZON, deaggregating; returns user records. */
static size_t read_back(struct env *e, const char *stream)
{
    struct cn_kinesis_shard_list *l;
    struct cn_kinesis_error err;
    size_t users = 0;
    CN_ASSERT_EQ(cn_kinesis_list_shards(e->kc, stream, CN_KINESIS_SHARDS_ALL, &l, &err, soon()), 0);
    for (size_t s = 0; s < l->count; s++) {
        char it[CN_KINESIS_ITERATOR_MAX];
        CN_ASSERT_EQ(
            cn_kinesis_get_shard_iterator(e->kc, stream, l->shards[s].id, NULL, it, &err, soon()),
            0);
        for (int rounds = 0;; rounds++) {
            CN_ASSERT_LT(rounds, 10000);
            struct cn_kinesis_records *rs;
            CN_ASSERT_EQ(cn_kinesis_get_records(e->kc, it, 10000, &rs, &err, soon()), 0);
            for (size_t k = 0; k < rs->count; k++) {
                const struct cn_kinesis_record *kr = &rs->records[k];
                struct cn__user_record in = {.pk = (const uint8_t *)kr->partition_key,
                                             .pk_len = kr->partition_key_len,
                                             .data = kr->data,
                                             .data_len = kr->data_len};
                struct cn__deagg d;
                struct cn__user_record u;
                CN_ASSERT_GE(cn__deagg_open(&d, &in, NULL), 0);
                while (cn__deagg_next(&d, &u) == 1) {
                    check_user_record(e, l->shards[s].id, kr->sequence_number, &u);
                    users++;
                }
                cn__deagg_close(&d);
            }
            bool done = !rs->next_iterator || (rs->count == 0 && rs->millis_behind_latest <= 0);
            if (!done) {
                snprintf(it, sizeof it, "%s", rs->next_iterator);
            }
            cn_kinesis_records_free(rs);
            if (done) {
                break;
            }
        }
    }
    cn_kinesis_shard_list_free(l);
    return users;
}

static void put_all(struct env *e, struct cn_kinesis_producer *p, const char *stream)
{
    for (size_t i = 0; i < e->n; i++) {
        struct rec *r = &e->recs[i];
        CN_ASSERT_EQ(cn_kinesis_put(p, stream, r->pk, r->data, r->len, NULL, &r->h, soon()), 0);
    }
}

static void wait_all(struct env *e)
{
    for (size_t i = 0; i < e->n; i++) {
        CN_ASSERT_EQ(cn_kinesis_outcome_wait(e->recs[i].h, &e->recs[i].out, soon()), 0);
        CN_ASSERT_EQ(e->recs[i].out.id, i + 1);
    }
}

/* ==== against kinesalite ========================================================== */

static int round_trip_body(void *arg)
{
    struct env *e = arg;
    bool aggregation = e->aggregation;
    struct cn_kinesis_client_opts co = client_opts(e->url);
    CN_ASSERT_EQ(cn_kinesis_client_new(&e->kc, &co), 0);
    create_active(e->kc, "s4", 4);
    predict(e, "s4");
    struct cn_kinesis_producer_config c = config(e);
    c.aggregation = aggregation ? CN_KINESIS_ON : CN_KINESIS_OFF;
    struct cn_kinesis_producer *p;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), 0);
    put_all(e, p, "s4");
    CN_ASSERT_EQ(cn_kinesis_producer_flush(p, soon()), 0);
    wait_all(e);
    size_t agg_seen = 0;
    for (size_t i = 0; i < e->n; i++) {
        struct cn_kinesis_outcome *o = &e->recs[i].out;
        if (o->code != 0) {
            fprintf(stderr, "record %zu: %s %s %s\n", i, cn_err_name(o->code), o->error_type,
                    o->error_message);
        }
        CN_ASSERT_EQ(o->code, 0);
        CN_ASSERT_GE(o->attempts, 1);
        CN_ASSERT_STREQ(o->shard_id, e->recs[i].predicted);
        agg_seen += o->aggregated;
    }
    struct cn_kinesis_producer_counters k;
    cn_kinesis_producer_counters(p, &k);
    CN_ASSERT_EQ(k.put, e->n);
    CN_ASSERT_EQ(k.succeeded, e->n);
    CN_ASSERT_EQ(k.failed, 0);
    CN_ASSERT_EQ(k.outstanding, 0);
    CN_ASSERT_EQ(k.wrong_shard, 0);
    CN_ASSERT_EQ(k.shard_map_loads, 1);
    CN_ASSERT_GE(k.requests, 1);
    if (aggregation) {
        CN_ASSERT_GT(k.aggregates, 0);
        CN_ASSERT_GT(agg_seen, e->n / 2);
    } else {
        CN_ASSERT_EQ(k.aggregates, 0);
        CN_ASSERT_EQ(agg_seen, 0);
    }
    fprintf(stderr, "%zu records: %llu requests, %llu aggregates\n", e->n,
            (unsigned long long)k.requests, (unsigned long long)k.aggregates);
    CN_ASSERT_EQ(cn_kinesis_producer_close(p, soon()), 0);
    CN_ASSERT_EQ(e->cb_ok, e->n);
    CN_ASSERT_EQ(read_back(e, "s4"), e->n);
    for (size_t i = 0; i < e->n; i++) {
        CN_ASSERT(e->recs[i].seen);
    }
    cn_kinesis_client_close(e->kc);
    return 0;
}

static void round_trip(enum cn_emu_kind kind, size_t n, bool aggregation)
{
    struct env e = {.aggregation = aggregation};
    cn_emu_start(&e.emu, kind);
    e.url = e.emu.url;
    env_init(&e, n);
    cn_test_run(round_trip_body, &e);
    env_free(&e);
    cn_emu_stop(&e.emu);
}

static void kinesalite_aggregated_records_arrive_once_in_predicted_shard(void)
{
    round_trip(CN_EMU_KINESALITE, 10000, true);
}

static void kinesalite_plain_records_arrive_once_in_predicted_shard(void)
{
    round_trip(CN_EMU_KINESALITE, 2000, false);
}

static void kinesis_mock_aggregated_records_arrive_once_in_predicted_shard(void)
{
    round_trip(CN_EMU_KINESIS_MOCK, 10000, true);
}

/* A split while producing: records predicted for the closed parent land on
 * a child, the producer notices (wrong shard), reloads the map and goes on;
 * every record is read back exactly once where its outcome says. */
static int split_main(void *arg)
{
    struct env *e = arg;
    struct cn_kinesis_client_opts co = client_opts(e->url);
    CN_ASSERT_EQ(cn_kinesis_client_new(&e->kc, &co), 0);
    create_active(e->kc, "sp", 1);
    struct cn_kinesis_producer_config c = config(e);
    c.aggregation = e->aggregation ? CN_KINESIS_ON : CN_KINESIS_OFF;
    struct cn_kinesis_producer *p;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), 0);
    size_t half = e->n / 2;
    for (size_t i = 0; i < half; i++) {
        struct rec *r = &e->recs[i];
        CN_ASSERT_EQ(cn_kinesis_put(p, "sp", r->pk, r->data, r->len, NULL, &r->h, soon()), 0);
    }
    CN_ASSERT_EQ(cn_kinesis_producer_flush(p, soon()), 0);
    struct cn_kinesis_error err;
    CN_ASSERT_EQ(cn_kinesis_split_shard(e->kc, "sp", "shardId-000000000000",
                                        "170141183460469231731687303715884105728", &err, soon()),
                 0);
    CN_ASSERT_EQ(cn_kinesis_wait_active(e->kc, "sp", NULL, &err, soon()), 0);
    for (size_t i = half; i < e->n; i++) {
        struct rec *r = &e->recs[i];
        CN_ASSERT_EQ(cn_kinesis_put(p, "sp", r->pk, r->data, r->len, NULL, &r->h, soon()), 0);
        if (i % 100 == 0) {
            cn_sleep(5); /* let the refresh land while records still come */
        }
    }
    CN_ASSERT_EQ(cn_kinesis_producer_flush(p, soon()), 0);
    wait_all(e);
    for (size_t i = 0; i < e->n; i++) {
        CN_ASSERT_EQ(e->recs[i].out.code, 0);
        snprintf(e->recs[i].predicted, sizeof e->recs[i].predicted, "%s", e->recs[i].out.shard_id);
    }
    struct cn_kinesis_producer_counters k;
    cn_kinesis_producer_counters(p, &k);
    fprintf(stderr, "split: %llu wrong shard, %llu map loads\n", (unsigned long long)k.wrong_shard,
            (unsigned long long)k.shard_map_loads);
    CN_ASSERT_GT(k.wrong_shard, 0);
    CN_ASSERT_GE(k.shard_map_loads, 2);
    CN_ASSERT_EQ(k.succeeded, e->n);
    /* The last records went where the new map predicted. */
    CN_ASSERT(strcmp(e->recs[e->n - 1].out.shard_id, "shardId-000000000000") != 0);
    CN_ASSERT_EQ(cn_kinesis_producer_close(p, soon()), 0);
    CN_ASSERT_EQ(read_back(e, "sp"), e->n);
    for (size_t i = 0; i < e->n; i++) {
        CN_ASSERT(e->recs[i].seen);
    }
    cn_kinesis_client_close(e->kc);
    return 0;
}

static void kinesalite_split_reroutes_after_wrong_shard(void)
{
    struct env e = {.aggregation = true};
    cn_emu_start(&e.emu, CN_EMU_KINESALITE);
    e.url = e.emu.url;
    env_init(&e, 4000);
    cn_test_run(split_main, &e);
    env_free(&e);
    cn_emu_stop(&e.emu);
}

/* Backpressure: put parks at max_outstanding_records, try_put says -EAGAIN. */
static int backpressure_main(void *arg)
{
    struct env *e = arg;
    struct cn_kinesis_client_opts co = client_opts(e->url);
    CN_ASSERT_EQ(cn_kinesis_client_new(&e->kc, &co), 0);
    create_active(e->kc, "bp", 2);
    struct cn_kinesis_producer_config c = config(e);
    c.max_outstanding_records = 100;
    struct cn_kinesis_producer *p;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), 0);
    /* Nothing can complete before this coroutine parks. */
    for (size_t i = 0; i < 100; i++) {
        struct rec *r = &e->recs[i];
        CN_ASSERT_EQ(cn_kinesis_try_put(p, "bp", r->pk, r->data, r->len, NULL, NULL), 0);
    }
    struct rec *r = &e->recs[100];
    CN_ASSERT_EQ(cn_kinesis_try_put(p, "bp", r->pk, r->data, r->len, NULL, NULL), -EAGAIN);
    CN_ASSERT_EQ(cn_kinesis_put(p, "bp", r->pk, r->data, r->len, NULL, NULL, 0), -ETIMEDOUT);
    for (size_t i = 100; i < e->n; i++) {
        r = &e->recs[i];
        CN_ASSERT_EQ(cn_kinesis_put(p, "bp", r->pk, r->data, r->len, NULL, NULL, soon()), 0);
        struct cn_kinesis_producer_counters k;
        cn_kinesis_producer_counters(p, &k);
        CN_ASSERT_LE(k.outstanding, 100);
    }
    CN_ASSERT_EQ(cn_kinesis_producer_flush(p, soon()), 0);
    struct cn_kinesis_producer_counters k;
    cn_kinesis_producer_counters(p, &k);
    CN_ASSERT_EQ(k.put, e->n);
    CN_ASSERT_EQ(k.succeeded, e->n);
    CN_ASSERT_EQ(k.max_outstanding, 100);
    CN_ASSERT_EQ(k.outstanding, 0);
    CN_ASSERT_EQ(cn_kinesis_producer_close(p, soon()), 0);
    CN_ASSERT_EQ(e->cb_ok, e->n);
    cn_kinesis_client_close(e->kc);
    return 0;
}

static void run_kinesalite(size_t n, cn_fn fn)
{
    struct env e = {0};
    cn_emu_start(&e.emu, CN_EMU_KINESALITE);
    e.url = e.emu.url;
    env_init(&e, n);
    cn_test_run(fn, &e);
    env_free(&e);
    cn_emu_stop(&e.emu);
}

static void kinesalite_backpressure_bounds_outstanding_records(void)
{
    run_kinesalite(5000, backpressure_main);
}

/* Close right after the puts: whatever was not stored fails with CN_ECLOSED. */
static int close_main(void *arg)
{
    struct env *e = arg;
    struct cn_kinesis_client_opts co = client_opts(e->url);
    CN_ASSERT_EQ(cn_kinesis_client_new(&e->kc, &co), 0);
    create_active(e->kc, "cl", 2);
    struct cn_kinesis_producer_config c = config(e);
    c.record_max_buffered_time_ms = 5;
    c.aggregation = CN_KINESIS_OFF;
    c.collection_max_count = 50; /* 60 requests, 4 at a time */
    c.max_connections = 4;
    struct cn_kinesis_producer *p;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), 0);
    put_all(e, p, "cl");
    /* Close once the first request came back: others are in flight,
     * ready or buffered. */
    for (;;) {
        struct cn_kinesis_producer_counters k;
        cn_kinesis_producer_counters(p, &k);
        if (k.succeeded > 0) {
            break;
        }
        cn_sleep(1);
    }
    int rc = cn_kinesis_producer_close(p, cn_now());
    CN_ASSERT(rc == 0 || rc == -ETIMEDOUT);
    size_t ok = 0, closed = 0;
    for (size_t i = 0; i < e->n; i++) {
        CN_ASSERT(cn_kinesis_outcome_ready(e->recs[i].h));
        CN_ASSERT_EQ(cn_kinesis_outcome_wait(e->recs[i].h, &e->recs[i].out, 0), 0);
        const struct cn_kinesis_outcome *o = &e->recs[i].out;
        CN_ASSERT(o->code == 0 || o->code == CN_ECLOSED);
        if (o->code == 0) {
            ok++;
        } else {
            closed++;
            CN_ASSERT(strstr(o->error_message, "closed") != NULL);
        }
        CN_ASSERT_EQ(e->outcomes[i], 1);
    }
    fprintf(stderr, "close: %zu stored, %zu closed\n", ok, closed);
    CN_ASSERT_GT(ok, 0);
    CN_ASSERT_GT(closed, 0);
    CN_ASSERT_EQ(ok + closed, e->n);
    CN_ASSERT_EQ(e->cb_ok, ok);
    CN_ASSERT_EQ(e->cb_failed, closed);
    cn_kinesis_client_close(e->kc);
    return 0;
}

static void kinesalite_close_gives_every_record_an_outcome(void)
{
    run_kinesalite(3000, close_main);
}

/* A stream that does not exist: every record fails with not-found, once. */
static int missing_main(void *arg)
{
    struct env *e = arg;
    struct cn_kinesis_producer_config c = config(e);
    struct cn_kinesis_producer *p;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), 0);
    put_all(e, p, "nope");
    CN_ASSERT_EQ(cn_kinesis_producer_flush(p, soon()), 0);
    wait_all(e);
    for (size_t i = 0; i < e->n; i++) {
        const struct cn_kinesis_outcome *o = &e->recs[i].out;
        CN_ASSERT_EQ(o->code, CN_EKINESIS_NOT_FOUND);
        CN_ASSERT_STREQ(o->error_type, "ResourceNotFoundException");
        CN_ASSERT_EQ(e->outcomes[i], 1);
    }
    struct cn_kinesis_producer_counters k;
    cn_kinesis_producer_counters(p, &k);
    CN_ASSERT_EQ(k.failed, e->n);
    CN_ASSERT_EQ(k.succeeded, 0);
    CN_ASSERT_EQ(cn_kinesis_producer_close(p, soon()), 0);
    CN_ASSERT_EQ(e->cb_failed, e->n);
    return 0;
}

static void kinesalite_missing_stream_fails_every_record_once(void)
{
    run_kinesalite(500, missing_main);
}

/* Nothing listens: every record retries until its TTL, then fails once. */
static int refused_main(void *arg)
{
    struct env *e = arg;
    struct cn_kinesis_producer_config c = config(e);
    c.record_ttl_ms = 400;
    c.min_backoff_ms = 20;
    c.max_backoff_ms = 100;
    struct cn_kinesis_producer *p;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), 0);
    put_all(e, p, "down");
    CN_ASSERT_EQ(cn_kinesis_producer_flush(p, soon()), 0);
    wait_all(e);
    for (size_t i = 0; i < e->n; i++) {
        const struct cn_kinesis_outcome *o = &e->recs[i].out;
        CN_ASSERT_EQ(o->code, -ETIMEDOUT);
        CN_ASSERT_EQ(o->last_error, -ECONNREFUSED);
        CN_ASSERT(strstr(o->error_message, "record_ttl_ms") != NULL);
        CN_ASSERT_GE(o->latency_ms, 400);
        CN_ASSERT_EQ(e->outcomes[i], 1);
    }
    struct cn_kinesis_producer_counters k;
    cn_kinesis_producer_counters(p, &k);
    CN_ASSERT_EQ(k.expired, e->n);
    CN_ASSERT_EQ(k.failed, e->n);
    CN_ASSERT_EQ(cn_kinesis_producer_close(p, soon()), 0);
    return 0;
}

/* A loopback port nobody listens on: bound, read back, closed. */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CN_ASSERT_GE(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CN_ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    CN_ASSERT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void refused_endpoint_fails_every_record_at_ttl(void)
{
    struct env e = {0};
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", dead_port());
    e.url = url;
    env_init(&e, 300);
    cn_test_run(refused_main, &e);
    env_free(&e);
}

/* Producer configuration is validated. */
static int config_main(void *arg)
{
    (void)arg;
    struct cn_kinesis_producer *p = NULL;
    struct cn_kinesis_producer_config c = {.client = client_opts("http://127.0.0.1:1")};
    c.collection_max_count = 501;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), -EINVAL);
    c.collection_max_count = 0;
    c.record_ttl_ms = -1;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), -EINVAL);
    c.record_ttl_ms = 0;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), 0);
    /* Refused at put, no record made. */
    CN_ASSERT_EQ(cn_kinesis_put(p, "bad name!", "k", "d", 1, NULL, NULL, 0),
                 CN_EKINESIS_STREAM_NAME);
    CN_ASSERT_EQ(cn_kinesis_put(p, "s", "", "d", 1, NULL, NULL, 0), CN_EKINESIS_PARTITION_KEY);
    CN_ASSERT_EQ(cn_kinesis_put(p, "s", "k", "d", 1, "01", NULL, 0), CN_EKINESIS_HASH_KEY);
    static uint8_t big[CN_KINESIS_RECORD_MAX];
    CN_ASSERT_EQ(cn_kinesis_put(p, "s", "k", big, sizeof big, NULL, NULL, 0),
                 CN_EKINESIS_RECORD_TOO_LARGE);
    struct cn_kinesis_producer_counters k;
    cn_kinesis_producer_counters(p, &k);
    CN_ASSERT_EQ(k.put, 0);
    CN_ASSERT_EQ(cn_kinesis_producer_close(p, cn_now()), 0);
    CN_ASSERT_EQ(cn_kinesis_producer_close(NULL, 0), 0);
    return 0;
}

static void producer_validates_config_and_records(void)
{
    cn_test_run(config_main, NULL);
}

/* ==== a fault-injecting Kinesis endpoint of our own ================================= */

/* One shard over the whole key space. PutRecords: every third request
 * answers 500; in the others every third entry seen gets
 * ProvisionedThroughputExceededException (the rest are stored). The test
 * then finds every user record exactly once among the stored ones. */
#define FAULT_SHARD "shardId-000000000000"

struct fault {
    struct cn_tcp_listener *l;
    struct cn_co *co;
    unsigned requests;
    uint64_t entries; /* PutRecords entries seen */
    uint64_t seq;
    struct env *e;
    unsigned *stored; /* by record index: times found in stored entries */
};

static struct fault fault;

static void fault_store(const char *pk, const uint8_t *data, size_t len, const char *seq)
{
    struct cn__user_record in = {
        .pk = (const uint8_t *)pk, .pk_len = strlen(pk), .data = data, .data_len = len};
    struct cn__deagg d;
    struct cn__user_record u;
    CN_ASSERT_GE(cn__deagg_open(&d, &in, NULL), 0);
    while (cn__deagg_next(&d, &u) == 1) {
        char key[64];
        CN_ASSERT_LT(u.pk_len, sizeof key);
        memcpy(key, u.pk, u.pk_len);
        key[u.pk_len] = '\0';
        size_t i;
        CN_ASSERT_EQ(sscanf(key, "pk-%zu-", &i), 1);
        CN_ASSERT_LT(i, fault.e->n);
        fault.stored[i]++;
        struct rec *r = &fault.e->recs[i];
        CN_ASSERT_EQ(u.data_len, r->len);
        CN_ASSERT_MEMEQ(u.data, r->data, r->len);
        /* remembered as what the outcome must say */
        snprintf(r->predicted, sizeof r->predicted, "%s/%llu", seq, (unsigned long long)u.sub_seq);
    }
    cn__deagg_close(&d);
}

static char *fault_put_records(const char *body, size_t len)
{
    json_error_t jerr;
    json_t *req = json_loadb(body, len, 0, &jerr);
    CN_ASSERT(req != NULL);
    json_t *recs = json_object_get(req, "Records");
    json_t *resp = json_object(), *out = json_array();
    size_t i, failed = 0;
    json_t *rec;
    json_array_foreach(recs, i, rec)
    {
        json_t *o = json_object();
        if (++fault.entries % 3 == 0) {
            json_object_set_new(o, "ErrorCode",
                                json_string("ProvisionedThroughputExceededException"));
            json_object_set_new(o, "ErrorMessage", json_string("Rate exceeded for shard"));
            failed++;
        } else {
            const char *b64 = json_string_value(json_object_get(rec, "Data"));
            const char *pk = json_string_value(json_object_get(rec, "PartitionKey"));
            size_t n = strlen(b64);
            uint8_t *data = malloc(n + 1);
            ssize_t dl = cn__base64_decode(data, n + 1, b64, n);
            CN_ASSERT_GE(dl, 0);
            char seq[32];
            snprintf(seq, sizeof seq, "%llu", (unsigned long long)++fault.seq);
            fault_store(pk, data, (size_t)dl, seq);
            free(data);
            json_object_set_new(o, "SequenceNumber", json_string(seq));
            json_object_set_new(o, "ShardId", json_string(FAULT_SHARD));
        }
        json_array_append_new(out, o);
    }
    json_object_set_new(resp, "FailedRecordCount", json_integer((json_int_t)failed));
    json_object_set_new(resp, "Records", out);
    char *s = json_dumps(resp, JSON_COMPACT);
    json_decref(resp);
    json_decref(req);
    return s;
}

static int fault_handle(struct cn_http_server_conn *c, const struct cn_http_request *r, void *arg)
{
    (void)arg;
    size_t n = 0;
    const char *target = cn_http_header_find(r->headers, r->nheaders, "X-Amz-Target", &n);
    const char *body;
    size_t len;
    int rc = cn_http_server_read_body_all(c, &body, &len, soon());
    if (rc < 0) {
        return rc;
    }
    struct cn_http_header json = cn_http_header_str("Content-Type", "application/x-amz-json-1.1");
    if (target && n > 10 && memcmp(target + n - 10, "ListShards", 10) == 0) {
        static const char shards[] =
            "{\"Shards\":[{\"ShardId\":\"" FAULT_SHARD "\",\"HashKeyRange\":{\"StartingHashKey\":"
            "\"0\",\"EndingHashKey\":\"340282366920938463463374607431768211455\"},"
            "\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"1\"}}]}";
        return cn_http_server_respond(c, 200, &json, 1, shards, strlen(shards), soon());
    }
    CN_ASSERT(target && n > 10 && memcmp(target + n - 10, "PutRecords", 10) == 0);
    if (++fault.requests % 3 == 0) {
        static const char err[] = "{\"__type\":\"InternalFailure\",\"message\":\"injected\"}";
        return cn_http_server_respond(c, 500, &json, 1, err, strlen(err), soon());
    }
    char *s = fault_put_records(body, len);
    rc = cn_http_server_respond(c, 200, &json, 1, s, strlen(s), soon());
    free(s);
    return rc;
}

static int fault_serve(void *arg)
{
    (void)arg;
    return cn_http_serve(fault.l, fault_handle, NULL, NULL);
}

static int fault_main(void *arg)
{
    struct env *e = arg;
    fault.e = e;
    fault.stored = calloc(e->n, sizeof *fault.stored);
    CN_ASSERT_EQ(cn_tcp_listen(&fault.l, "127.0.0.1", 0, NULL), 0);
    CN_ASSERT_EQ(cn_spawn(&fault.co, fault_serve, NULL, NULL), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cn_tcp_listener_port(fault.l));
    e->url = url;
    struct cn_kinesis_producer_config c = config(e);
    c.aggregation = e->aggregation ? CN_KINESIS_ON : CN_KINESIS_OFF;
    c.aggregation_max_size = 2048; /* many aggregates */
    c.collection_max_count = 50;
    c.min_backoff_ms = 5;
    c.max_backoff_ms = 50;
    struct cn_kinesis_producer *p;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), 0);
    put_all(e, p, "faulty");
    CN_ASSERT_EQ(cn_kinesis_producer_flush(p, soon()), 0);
    wait_all(e);
    size_t retried = 0;
    for (size_t i = 0; i < e->n; i++) {
        const struct cn_kinesis_outcome *o = &e->recs[i].out;
        CN_ASSERT_EQ(o->code, 0);
        CN_ASSERT_EQ(fault.stored[i], 1);
        char where[CN_KINESIS_SEQ_MAX + 32];
        snprintf(where, sizeof where, "%s/%llu", o->sequence_number,
                 (unsigned long long)o->sub_sequence_number);
        CN_ASSERT_STREQ(where, e->recs[i].predicted);
        CN_ASSERT_STREQ(o->shard_id, FAULT_SHARD);
        retried += o->attempts > 1;
        CN_ASSERT_EQ(e->outcomes[i], 1);
    }
    struct cn_kinesis_producer_counters k;
    cn_kinesis_producer_counters(p, &k);
    fprintf(stderr, "fault: %u requests, %llu retried, %zu records needed more than one attempt\n",
            fault.requests, (unsigned long long)k.retried, retried);
    CN_ASSERT_GT(retried, 0);
    CN_ASSERT_GT(k.retried, 0);
    CN_ASSERT_EQ(k.succeeded, e->n);
    CN_ASSERT_EQ(k.failed, 0);
    CN_ASSERT_EQ(cn_kinesis_producer_close(p, soon()), 0);
    cn_cancel(fault.co);
    CN_ASSERT_EQ(cn_join(fault.co, NULL, -1), 0);
    cn_tcp_listener_close(fault.l);
    free(fault.stored);
    return 0;
}

static void fault_run(bool aggregation)
{
    struct env e = {.aggregation = aggregation};
    env_init(&e, 3000);
    cn_test_run(fault_main, &e);
    env_free(&e);
}

static void throttled_entries_and_500s_are_retried_exactly_once_aggregated(void)
{
    fault_run(true);
}

static void throttled_entries_and_500s_are_retried_exactly_once_plain(void)
{
    fault_run(false);
}

CN_TEST_MAIN(CN_CASE(producer_validates_config_and_records),
             CN_CASE(kinesalite_aggregated_records_arrive_once_in_predicted_shard),
             CN_CASE(kinesalite_plain_records_arrive_once_in_predicted_shard),
             CN_CASE(kinesis_mock_aggregated_records_arrive_once_in_predicted_shard),
             CN_CASE(kinesalite_split_reroutes_after_wrong_shard),
             CN_CASE(kinesalite_backpressure_bounds_outstanding_records),
             CN_CASE(kinesalite_close_gives_every_record_an_outcome),
             CN_CASE(kinesalite_missing_stream_fails_every_record_once),
             CN_CASE(refused_endpoint_fails_every_record_at_ttl),
             CN_CASE(throttled_entries_and_500s_are_retried_exactly_once_aggregated),
             CN_CASE(throttled_entries_and_500s_are_retried_exactly_once_plain))
