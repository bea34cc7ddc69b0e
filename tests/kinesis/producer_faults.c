/* SPDX-License-Identifier: MIT */
/*
 * The producer's fault matrix: kinesalite (emulator.h) behind
 * kinesis-fault-proxy (fault-proxy.c, started by fault_proxy.h), which
 * injects one kind of AWS failure per case (shard write limits, whole
 * request throttling, 500/503, partial failures, connection resets, slow
 * answers, garbage JSON, expired credentials, a split under load) and then
 * all of them at once. For each case:
 *   - every accepted record gets exactly one outcome (counted per record id
 *     in the callback, and the handle agrees);
 *   - the outcome's class is the fault's: retryable faults end in success,
 *     or in -ETIMEDOUT at record_ttl_ms with the fault as last_error;
 *     non-retryable ones fail the records they hit, at once;
 *   - no outcome comes later than record_ttl_ms + request_timeout_ms +
 *     SLACK_MS (a bound, not a speed claim), and retries show (attempts > 1);
 *   - the counters agree: put = succeeded + failed, sent = sum of attempts;
 *   - read back from the emulator directly (readback.h), every record
 *     reported stored is there, at the shard and sequence number its outcome
 *     names, exactly once (at least once where the fault makes delivery at
 *     least once: resets, slow answers), and the Kinesis records found are
 *     exactly those the proxy saw stored.
 * The first cases check the proxy itself: forwarding, the limit model, 413.
 * The proxy's statistics (its JSON line at exit, which must be 0: no leaks
 * under ASan) are the other side of every count.
 */
#include "test.h"

#include <arpa/inet.h>
#include <jansson.h>

#include "emulator.h"
#include "kinesis_test.h"
#include "fault_proxy.h"
#include "readback.h"

#define LONG_MS 60000
#define SLACK_MS 5000 /* outcome latency bound past TTL + request timeout */
#define STREAM "faults"
#define FIRST_SHARD "shardId-000000000000"
#define MAX_KEY "340282366920938463463374607431768211455"

static int64_t soon(void)
{
    return cn_now() + LONG_MS;
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static struct cn_kinesis_client_opts client_opts(const char *url)
{
    return cn_kt_client_opts(url, 0);
}

static void create_active(struct cn_kinesis_client *kc, const char *stream, int shards)
{
    cn_kt_create_active(kc, stream, shards, soon());
}

/* The proxy's statistics line, parsed; its exit status must be 0. */
static json_t *stop_proxy(struct cn_fault_proxy *fp)
{
    CN_ASSERT_EQ(cn_fault_proxy_stop(fp), 0);
    CN_ASSERT(fp->stats != NULL);
    fprintf(stderr, "proxy: %s\n", fp->stats);
    json_t *s = json_loads(fp->stats, 0, NULL);
    CN_ASSERT(json_is_object(s));
    free(fp->stats);
    fp->stats = NULL;
    return s;
}

static int64_t pstat(json_t *stats, const char *name)
{
    json_t *v = json_object_get(stats, name);
    if (!json_is_integer(v)) {
        fprintf(stderr, "no statistic %s\n", name);
    }
    CN_ASSERT(json_is_integer(v));
    return (int64_t)json_integer_value(v);
}

/* Sums one field of per_shard over every shard. */
static int64_t per_shard_sum(json_t *stats, const char *field)
{
    json_t *ps = json_object_get(stats, "per_shard"), *v;
    const char *key;
    int64_t sum = 0;
    CN_ASSERT(json_is_object(ps));
    json_object_foreach(ps, key, v)
    {
        CN_ASSERT(strncmp(key, "shardId-", 8) == 0);
        sum += (int64_t)json_integer_value(json_object_get(v, field));
    }
    return sum;
}

/* ==== the proxy itself ============================================================== */

struct plain_env {
    struct cn_emu emu;
    struct cn_fault_proxy px;
};

static struct cn_kinesis_entry entry(const char *pk, const void *data, size_t n, const char *ehk)
{
    struct cn_kinesis_entry e = {.partition_key = pk,
                                 .partition_key_len = strlen(pk),
                                 .data = data,
                                 .data_len = n,
                                 .explicit_hash_key = ehk};
    return e;
}

struct count_visit {
    size_t n;
    char pks[64][16];
};

static void count_visitor(void *arg, const char *shard, const char *seq,
                          const struct cn__user_record *u, bool aggregated)
{
    struct count_visit *cv = arg;
    (void)shard;
    (void)seq;
    CN_ASSERT(!aggregated);
    if (cv->n < 64 && u->pk_len < sizeof cv->pks[0]) {
        memcpy(cv->pks[cv->n], u->pk, u->pk_len);
        cv->pks[cv->n][u->pk_len] = '\0';
    }
    cv->n++;
}

/* Everything through the proxy, no fault: set-up, put, read-back. */
static int forwards_main(void *arg)
{
    struct plain_env *pe = arg;
    struct cn_kinesis_client *kc;
    struct cn_kinesis_client_opts co = client_opts(pe->px.url);
    CN_ASSERT_EQ(cn_kinesis_client_new(&kc, &co), 0);
    create_active(kc, "fwd", 2);
    struct cn_kinesis_entry e[50];
    char pks[50][16];
    for (int i = 0; i < 50; i++) {
        snprintf(pks[i], sizeof pks[i], "k%d", i);
        e[i] = entry(pks[i], pks[i], strlen(pks[i]), NULL);
    }
    struct cn_kinesis_put_records_result *res;
    struct cn_kinesis_error err;
    CN_ASSERT_EQ(cn_kinesis_put_records(kc, "fwd", e, 50, &res, &err, soon()), 0);
    CN_ASSERT_EQ(res->failed, 0);
    cn_kinesis_put_records_result_free(res);
    struct count_visit cv = {0};
    CN_ASSERT_EQ(cn_readback(kc, "fwd", count_visitor, &cv, soon()), 50);
    cn_kinesis_client_close(kc);
    return 0;
}

static void proxy_forwards_every_operation_and_counts_what_is_stored(void)
{
    struct plain_env pe;
    cn_emu_start(&pe.emu, CN_EMU_KINESALITE);
    cn_fault_proxy_start(&pe.px, pe.emu.url, NULL);
    cn_test_run(forwards_main, &pe);
    json_t *s = stop_proxy(&pe.px);
    CN_ASSERT_EQ(pstat(s, "put_records_requests"), 1);
    CN_ASSERT_EQ(pstat(s, "entries"), 50);
    CN_ASSERT_EQ(pstat(s, "stored_entries"), 50);
    CN_ASSERT_EQ(pstat(s, "failed_requests"), 0);
    CN_ASSERT_EQ(pstat(s, "throttled_entries"), 0);
    CN_ASSERT_EQ(per_shard_sum(s, "records"), 50);
    CN_ASSERT_EQ(per_shard_sum(s, "bytes"), 2 * (10 * 2 + 40 * 3)); /* "k0".."k49", key = data */
    /* create, describe, put, list, 2 iterators, >= 2 GetRecords */
    CN_ASSERT_GE(pstat(s, "requests"), 8);
    json_decref(s);
    cn_emu_stop(&pe.emu);
}

/* --limit's model: records and bytes buckets per shard, full at first use,
 * throttled entries answered in place with AWS's message, not stored. */
static int limit_main(void *arg)
{
    struct plain_env *pe = arg;
    struct cn_kinesis_client *kc, *direct;
    struct cn_kinesis_client_opts co = client_opts(pe->px.url);
    struct cn_kinesis_client_opts dco = client_opts(pe->emu.url);
    CN_ASSERT_EQ(cn_kinesis_client_new(&kc, &co), 0);
    CN_ASSERT_EQ(cn_kinesis_client_new(&direct, &dco), 0);
    create_active(direct, "rl", 1);
    create_active(direct, "bl", 1);
    create_active(direct, "eh", 2);
    struct cn_kinesis_entry e[50];
    char pks[50][16];
    for (int i = 0; i < 50; i++) {
        snprintf(pks[i], sizeof pks[i], "r%d", i);
        e[i] = entry(pks[i], "x", 1, NULL);
    }
    struct cn_kinesis_put_records_result *res;
    struct cn_kinesis_error err;
    /* 10 records per second: the first 10 go, the other 40 are throttled */
    CN_ASSERT_EQ(cn_kinesis_put_records(kc, "rl", e, 50, &res, &err, soon()), 0);
    CN_ASSERT_EQ(res->failed, 40);
    for (int i = 0; i < 50; i++) {
        const struct cn_kinesis_put_result *r = &res->results[i];
        CN_ASSERT_EQ(r->code, i < 10 ? 0 : CN_EKINESIS_THROUGHPUT);
        if (i >= 10) {
            CN_ASSERT_STREQ(r->error_code, "ProvisionedThroughputExceededException");
            CN_ASSERT_STREQ(r->error_message, "Rate exceeded for shard " FIRST_SHARD
                                              " in stream rl under account 000000000000.");
        } else {
            CN_ASSERT_STREQ(r->shard_id, FIRST_SHARD);
        }
    }
    cn_kinesis_put_records_result_free(res);
    struct count_visit cv = {0};
    CN_ASSERT_EQ(cn_readback(direct, "rl", count_visitor, &cv, soon()), 10);
    for (int i = 0; i < 10; i++) {
        CN_ASSERT_STREQ(cv.pks[i], pks[i]);
    }
    /* 100,000 bytes per second: three 30,001-byte records fit, two do not */
    static uint8_t big[30000];
    for (int i = 0; i < 5; i++) {
        e[i] = entry("k", big, sizeof big, NULL);
    }
    CN_ASSERT_EQ(cn_kinesis_put_records(kc, "bl", e, 5, &res, &err, soon()), 0);
    CN_ASSERT_EQ(res->failed, 2);
    for (int i = 0; i < 5; i++) {
        CN_ASSERT_EQ(res->results[i].code, i < 3 ? 0 : CN_EKINESIS_THROUGHPUT);
    }
    cn_kinesis_put_records_result_free(res);
    /* Explicit hash keys pick the shard: 10 to each of two shards all fit
     * (one key for all would have been throttled past 10). */
    for (int i = 0; i < 20; i++) {
        e[i] = entry("same", "y", 1, i % 2 ? MAX_KEY : "0");
    }
    CN_ASSERT_EQ(cn_kinesis_put_records(kc, "eh", e, 20, &res, &err, soon()), 0);
    CN_ASSERT_EQ(res->failed, 0);
    cn_kinesis_put_records_result_free(res);
    cn_kinesis_client_close(kc);
    cn_kinesis_client_close(direct);
    return 0;
}

static void proxy_limit_throttles_entries_past_the_shard_buckets_in_place(void)
{
    struct plain_env pe;
    cn_emu_start(&pe.emu, CN_EMU_KINESALITE);
    const char *args[] = {"--limit-records", "10", "--limit-bytes", "100000", NULL};
    cn_fault_proxy_start(&pe.px, pe.emu.url, args);
    cn_test_run(limit_main, &pe);
    json_t *s = stop_proxy(&pe.px);
    CN_ASSERT_EQ(pstat(s, "entries"), 75);
    CN_ASSERT_EQ(pstat(s, "throttled_entries"), 42);
    CN_ASSERT_EQ(pstat(s, "stored_entries"), 33);
    CN_ASSERT_EQ(per_shard_sum(s, "throttled"), 42);
    CN_ASSERT_EQ(pstat(s, "shard_mismatches"),
                 0); /* its MD5 and key ranges agree with kinesalite */
    json_decref(s);
    cn_emu_stop(&pe.emu);
}

/* A body over 10 MiB is refused before it is read. */
static int too_large_main(void *arg)
{
    struct plain_env *pe = arg;
    struct cn_stream *s;
    CN_ASSERT_EQ(cn_tcp_connect(&s, "127.0.0.1", pe->px.port, NULL, soon()), 0);
    static const char head[] = "POST / HTTP/1.1\r\nHost: x\r\n"
                               "X-Amz-Target: Kinesis_20131202.PutRecords\r\n"
                               "Content-Type: application/x-amz-json-1.1\r\n"
                               "Content-Length: 10485761\r\n\r\n";
    CN_ASSERT_EQ(cn_stream_write(s, head, strlen(head), soon()), 0);
    char buf[512];
    size_t len = 0;
    while (len < 12) {
        ssize_t n = cn_stream_read(s, buf + len, sizeof buf - 1 - len, soon());
        CN_ASSERT_GT(n, 0);
        len += (size_t)n;
    }
    buf[len] = '\0';
    CN_ASSERT(strncmp(buf, "HTTP/1.1 413", 12) == 0);
    cn_stream_close(s);
    return 0;
}

static void proxy_refuses_bodies_over_10_mib_with_413(void)
{
    struct plain_env pe;
    cn_emu_start(&pe.emu, CN_EMU_KINESALITE);
    cn_fault_proxy_start(&pe.px, pe.emu.url, NULL);
    cn_test_run(too_large_main, &pe);
    json_t *s = stop_proxy(&pe.px);
    CN_ASSERT_EQ(pstat(s, "put_records_requests"), 0);
    json_decref(s);
    cn_emu_stop(&pe.emu);
}

/* ==== the producer behind the proxy =================================================== */

/* One case: the proxy's options and the producer's settings. */
struct fcase {
    const char *const *args;
    int shards;
    size_t n;
    bool aggregation;
    bool rate_limit;             /* the producer's limiter at 100 % */
    int64_t ttl_ms;              /* 0: 20 s */
    int64_t request_timeout_ms;  /* 0: 6 s */
    size_t collection_max_count; /* 0: 500 */
    size_t aggregation_max_size; /* 0: default */
    size_t pause_for_split;      /* > 0: put this many, wait for the split, put the rest */
    size_t max_connections;      /* 0: 24 */
    enum cn_emu_kind emu;        /* the upstream; 0: kinesalite */
};

struct rec {
    char pk[40];
    uint8_t data[128];
    size_t len;
    struct cn_kinesis_outcome_handle *h;
    struct cn_kinesis_outcome out;
    unsigned copies; /* found in the stream */
    bool where_ok;   /* one copy is where its outcome says */
};

struct fenv {
    const struct fcase *fc;
    struct cn_emu emu;
    struct cn_fault_proxy px;
    struct cn_kinesis_client *kc; /* straight to kinesalite */
    size_t n;
    struct rec *recs;
    unsigned *outcomes; /* by id - 1: outcomes the callback saw */
    int *cb_code;
    size_t nids;
    int64_t ttl_ms, request_ms;
    struct cn_kinesis_producer_counters k;
    size_t users_read, krecs_read, in_children;
    char last_shard[CN_KINESIS_SHARD_ID_MAX + 1], last_seq[CN_KINESIS_SEQ_MAX];
    int64_t elapsed_ms;
    json_t *stats;
};

static void on_outcome(void *arg, struct cn_kinesis_outcome_handle *h,
                       const struct cn_kinesis_outcome *o)
{
    struct fenv *e = arg;
    (void)h;
    CN_ASSERT_GE(o->id, 1);
    CN_ASSERT_LE(o->id, e->nids);
    e->outcomes[o->id - 1]++;
    CN_ASSERT_EQ(e->outcomes[o->id - 1], 1); /* exactly one outcome */
    e->cb_code[o->id - 1] = o->code;
}

static void env_init(struct fenv *e, const struct fcase *fc)
{
    memset(e, 0, sizeof *e);
    e->fc = fc;
    e->n = fc->n;
    e->nids = fc->n + 16;
    e->ttl_ms = fc->ttl_ms ? fc->ttl_ms : 20000;
    e->request_ms = fc->request_timeout_ms ? fc->request_timeout_ms : 6000;
    e->recs = calloc(e->n, sizeof *e->recs);
    e->outcomes = calloc(e->nids, sizeof *e->outcomes);
    e->cb_code = calloc(e->nids, sizeof *e->cb_code);
    CN_ASSERT(e->recs && e->outcomes && e->cb_code);
    for (size_t i = 0; i < e->n; i++) {
        struct rec *r = &e->recs[i];
        snprintf(r->pk, sizeof r->pk, "pk-%zu-%llx", i, (unsigned long long)(rnd() & 0xFFFFFF));
        r->len = 1 + rnd() % (sizeof r->data - 1);
        for (size_t k = 0; k < r->len; k++) {
            r->data[k] = (uint8_t)rnd();
        }
    }
}

static void env_free(struct fenv *e)
{
    for (size_t i = 0; i < e->n; i++) {
        cn_kinesis_outcome_release(e->recs[i].h);
    }
    free(e->recs);
    free(e->outcomes);
    free(e->cb_code);
    json_decref(e->stats);
}

static struct cn_kinesis_producer_config producer_config(struct fenv *e)
{
    const struct fcase *fc = e->fc;
    struct cn_kinesis_producer_config c = {
        .client = client_opts(e->px.url),
        .on_outcome = on_outcome,
        .on_outcome_arg = e,
        .record_ttl_ms = e->ttl_ms,
        .request_timeout_ms = e->request_ms,
        .aggregation = fc->aggregation ? CN_KINESIS_ON : CN_KINESIS_OFF,
        .aggregation_max_size = fc->aggregation_max_size,
        .collection_max_count = fc->collection_max_count,
        .max_connections = fc->max_connections,
        .rate_limit = fc->rate_limit ? CN_KINESIS_ON : CN_KINESIS_OFF,
        .rate_limit_percent = fc->rate_limit ? 100 : 0,
        .min_backoff_ms = 20,
        .max_backoff_ms = 250,
    };
    return c;
}

static void put_range(struct fenv *e, struct cn_kinesis_producer *p, size_t from, size_t to,
                      bool paced)
{
    for (size_t i = from; i < to; i++) {
        struct rec *r = &e->recs[i];
        CN_ASSERT_EQ(cn_kinesis_put(p, STREAM, r->pk, r->data, r->len, NULL, &r->h, soon()), 0);
        if (paced && i % 100 == 99) {
            cn_sleep(5); /* load keeps coming while maps change */
        }
    }
}

/* Waits until one shard of the stream has split (two children more, one
 * more open). */
static void wait_split(struct fenv *e)
{
    for (int polls = 0;; polls++) {
        CN_ASSERT_LT(polls, 3000); /* 60 s */
        struct cn_kinesis_shard_list *l;
        struct cn_kinesis_error err;
        CN_ASSERT_EQ(cn_kinesis_list_shards(e->kc, STREAM, CN_KINESIS_SHARDS_ALL, &l, &err, soon()),
                     0);
        size_t open = 0;
        for (size_t i = 0; i < l->count; i++) {
            open += l->shards[i].open;
        }
        size_t all = l->count;
        cn_kinesis_shard_list_free(l);
        if (all == (size_t)e->fc->shards + 2 && open == (size_t)e->fc->shards + 1) {
            return;
        }
        cn_sleep(20);
    }
}

static void visit(void *arg, const char *shard, const char *seq, const struct cn__user_record *u,
                  bool aggregated)
{
    struct fenv *e = arg;
    if (strcmp(seq, e->last_seq) != 0 || strcmp(shard, e->last_shard) != 0) {
        e->krecs_read++; /* a new Kinesis record (an aggregate's users come together) */
        snprintf(e->last_seq, sizeof e->last_seq, "%s", seq);
        snprintf(e->last_shard, sizeof e->last_shard, "%s", shard);
    }
    e->users_read++;
    e->in_children += strcmp(shard, FIRST_SHARD) != 0 && e->fc->pause_for_split;
    char pk[64];
    CN_ASSERT_LT(u->pk_len, sizeof pk);
    memcpy(pk, u->pk, u->pk_len);
    pk[u->pk_len] = '\0';
    size_t i;
    CN_ASSERT_EQ(sscanf(pk, "pk-%zu-", &i), 1);
    CN_ASSERT_LT(i, e->n);
    struct rec *r = &e->recs[i];
    CN_ASSERT_STREQ(r->pk, pk);
    CN_ASSERT_EQ(u->data_len, r->len);
    CN_ASSERT_MEMEQ(u->data, r->data, r->len);
    r->copies++;
    const struct cn_kinesis_outcome *o = &r->out;
    if (o->code == 0 && strcmp(o->shard_id, shard) == 0 && strcmp(o->sequence_number, seq) == 0 &&
        o->sub_sequence_number == (aggregated ? u->sub_seq : 0) && o->aggregated == aggregated) {
        r->where_ok = true;
    }
}

static int case_main(void *arg)
{
    struct fenv *e = arg;
    const struct fcase *fc = e->fc;
    struct cn_kinesis_client_opts co = client_opts(e->emu.url);
    CN_ASSERT_EQ(cn_kinesis_client_new(&e->kc, &co), 0);
    create_active(e->kc, STREAM, fc->shards);
    struct cn_kinesis_producer_config c = producer_config(e);
    struct cn_kinesis_producer *p;
    CN_ASSERT_EQ(cn_kinesis_producer_new(&p, &c), 0);
    int64_t t0 = cn_now();
    if (fc->pause_for_split) {
        put_range(e, p, 0, fc->pause_for_split, false);
        wait_split(e);
        put_range(e, p, fc->pause_for_split, e->n, true);
    } else {
        put_range(e, p, 0, e->n, false);
    }
    CN_ASSERT_EQ(cn_kinesis_producer_flush(p, soon()), 0);
    for (size_t i = 0; i < e->n; i++) {
        CN_ASSERT_EQ(cn_kinesis_outcome_wait(e->recs[i].h, &e->recs[i].out, soon()), 0);
    }
    e->elapsed_ms = cn_now() - t0;
    cn_kinesis_producer_counters(p, &e->k);
    CN_ASSERT_EQ(cn_kinesis_producer_close(p, soon()), 0);
    cn_readback(e->kc, STREAM, visit, e, soon());
    cn_kinesis_client_close(e->kc);
    return 0;
}

/* What a case allows beyond success. */
struct expect {
    bool dups;          /* at least once: a stored record may be there twice */
    bool failed_absent; /* a failed record must not be in the stream */
    int fail[4];        /* codes a record may fail with (0 ends the list) */
    int last[4];        /* with -ETIMEDOUT among them: the last errors allowed */
};

static bool listed(const int *list, int code)
{
    for (int i = 0; i < 4 && list[i] != 0; i++) {
        if (list[i] == code) {
            return true;
        }
    }
    return false;
}

static void check_failure(const struct fenv *e, const struct expect *x,
                          const struct cn_kinesis_outcome *o)
{
    if (!listed(x->fail, o->code)) {
        fprintf(stderr, "record %llu: %s (last %s) %s %s after %d attempts\n",
                (unsigned long long)o->id, cn_err_name(o->code), cn_err_name(o->last_error),
                o->error_type, o->error_message, o->attempts);
    }
    CN_ASSERT(listed(x->fail, o->code));
    if (o->code == -ETIMEDOUT) {
        CN_ASSERT(listed(x->last, o->last_error));
        CN_ASSERT(cn_kinesis_retryable(o->last_error) ||
                  o->last_error == CN_EKINESIS_BAD_RESPONSE); /* the producer retries those */
        CN_ASSERT_GE(o->latency_ms, e->ttl_ms);               /* not given up before its TTL */
    } else {
        CN_ASSERT(!cn_kinesis_retryable(o->code)); /* a retryable error is retried */
        CN_ASSERT_EQ(o->last_error, o->code);
    }
}

/* Every check that holds whatever the fault. */
static void check_common(struct fenv *e, const struct expect *x)
{
    uint64_t ok = 0, attempts = 0, retried_records = 0;
    int64_t bound = e->ttl_ms + e->request_ms + SLACK_MS, worst = 0;
    for (size_t i = 0; i < e->n; i++) {
        const struct rec *r = &e->recs[i];
        const struct cn_kinesis_outcome *o = &r->out;
        CN_ASSERT_EQ(e->outcomes[i], 1);
        CN_ASSERT_EQ(o->id, i + 1);
        CN_ASSERT_EQ(e->cb_code[i], o->code);
        CN_ASSERT_LE(o->latency_ms, bound);
        worst = o->latency_ms > worst ? o->latency_ms : worst;
        attempts += (uint64_t)o->attempts;
        retried_records += o->attempts > 1;
        if (o->code == 0) {
            ok++;
            CN_ASSERT_GE(o->attempts, 1);
            CN_ASSERT(r->where_ok);
            CN_ASSERT(x->dups ? r->copies >= 1 : r->copies == 1);
        } else {
            check_failure(e, x, o);
            if (x->failed_absent) {
                CN_ASSERT_EQ(r->copies, 0);
            }
        }
    }
    CN_ASSERT_EQ(e->k.put, e->n);
    CN_ASSERT_EQ(e->k.succeeded, ok);
    CN_ASSERT_EQ(e->k.failed, e->n - ok);
    CN_ASSERT_EQ(e->k.outstanding, 0);
    CN_ASSERT_EQ(e->k.sent, attempts); /* sent counts once per attempt */
    /* The stream holds exactly what the proxy saw the emulator store. */
    CN_ASSERT_EQ(e->krecs_read, pstat(e->stats, "stored_entries"));
    CN_ASSERT_EQ(per_shard_sum(e->stats, "records"), pstat(e->stats, "stored_entries"));
    CN_ASSERT_GE(pstat(e->stats, "put_records_requests"), e->k.requests);
    CN_ASSERT_EQ(pstat(e->stats, "upstream_errors"), 0);
    fprintf(stderr,
            "%zu records in %lld ms: %llu ok, %llu failed, %llu requests, %llu retried, "
            "%llu records retried, %llu throttled, %llu map loads, worst latency %lld ms, "
            "%zu user / %zu Kinesis records read\n",
            e->n, (long long)e->elapsed_ms, (unsigned long long)ok, (unsigned long long)(e->n - ok),
            (unsigned long long)e->k.requests, (unsigned long long)e->k.retried,
            (unsigned long long)retried_records, (unsigned long long)e->k.throttled,
            (unsigned long long)e->k.shard_map_loads, (long long)worst, e->users_read,
            e->krecs_read);
}

static void run_case(struct fenv *e, const struct fcase *fc)
{
    env_init(e, fc);
    cn_emu_start(&e->emu, fc->emu);
    cn_fault_proxy_start(&e->px, e->emu.url, fc->args);
    cn_test_run(case_main, e);
    e->stats = stop_proxy(&e->px);
    cn_emu_stop(&e->emu);
}

static size_t count_code(const struct fenv *e, int code)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n; i++) {
        n += e->recs[i].out.code == code;
    }
    return n;
}

static size_t count_retried(const struct fenv *e)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n; i++) {
        n += e->recs[i].out.attempts > 1;
    }
    return n;
}

/* All succeeded, some after retries. */
static void check_all_stored_after_retries(struct fenv *e, bool dups)
{
    struct expect x = {.dups = dups};
    check_common(e, &x);
    CN_ASSERT_EQ(e->k.succeeded, e->n);
    CN_ASSERT_GT(e->k.retried, 0);
    CN_ASSERT_GT(count_retried(e), 0);
}

/* ---- shard limits --------------------------------------------------------------------- */

static void limit_throttles_entries_and_every_record_lands_once_with_limiter_off(void)
{
    const char *args[] = {"--limit", "--limit-records", "500", "--seed", "1", NULL};
    struct fcase fc = {.args = args, .shards = 2, .n = 3000};
    struct fenv e;
    run_case(&e, &fc);
    check_all_stored_after_retries(&e, false);
    int64_t throttled = pstat(e.stats, "throttled_entries");
    CN_ASSERT_GT(throttled, 0);
    CN_ASSERT_EQ(per_shard_sum(e.stats, "throttled"), throttled);
    CN_ASSERT_EQ((int64_t)e.k.throttled, throttled); /* plain records: entries = records */
    CN_ASSERT_EQ(pstat(e.stats, "shard_mismatches"), 0);
    CN_ASSERT_EQ(e.krecs_read, e.n);
    env_free(&e);
}

static void limiter_on_keeps_shard_throttling_rare(void)
{
    const char *args[] = {"--limit", "--seed", "2", NULL};
    struct fcase fc = {.args = args, .shards = 1, .n = 3000, .rate_limit = true};
    struct fenv e;
    run_case(&e, &fc);
    struct expect x = {0};
    check_common(&e, &x);
    CN_ASSERT_EQ(e.k.succeeded, e.n);
    int64_t throttled = pstat(e.stats, "throttled_entries"), entries = pstat(e.stats, "entries");
    fprintf(stderr, "limiter on: %lld of %lld entries throttled, %llu records limited\n",
            (long long)throttled, (long long)entries, (unsigned long long)e.k.limited);
    CN_ASSERT_LT(throttled * 20, entries); /* under 5 % */
    CN_ASSERT_GT(e.k.limited, 0);          /* 3,000 records at 1,000/s did wait */
    env_free(&e);
}

/* ---- whole-request failures -------------------------------------------------------------- */

static void request_throttling_is_retried_until_every_record_lands_once(void)
{
    const char *args[] = {
        "--throttle-requests", "25", "--limit-exceeded", "10", "--seed", "3", NULL};
    struct fcase fc = {.args = args, .shards = 2, .n = 3000, .collection_max_count = 50};
    struct fenv e;
    run_case(&e, &fc);
    check_all_stored_after_retries(&e, false);
    CN_ASSERT_GT(pstat(e.stats, "throttled_requests"), 0);
    CN_ASSERT_GT(pstat(e.stats, "limit_exceeded_requests"), 0);
    env_free(&e);
}

static void http_500_and_503_are_retried_until_every_record_lands_once(void)
{
    const char *args[] = {"--http-500", "15", "--http-503", "15", "--seed", "4", NULL};
    struct fcase fc = {.args = args,
                       .shards = 2,
                       .n = 3000,
                       .aggregation = true,
                       .aggregation_max_size = 1024,
                       .collection_max_count = 10};
    struct fenv e;
    run_case(&e, &fc);
    check_all_stored_after_retries(&e, false);
    CN_ASSERT_GT(pstat(e.stats, "http_500"), 0);
    CN_ASSERT_GT(pstat(e.stats, "http_503"), 0);
    CN_ASSERT_GT(e.k.aggregates, 0);
    CN_ASSERT_LT(e.krecs_read, e.users_read); /* aggregated, and still exactly once */
    env_free(&e);
}

static void http_500_on_every_request_expires_records_at_ttl(void)
{
    const char *args[] = {"--http-500", "100", NULL};
    struct fcase fc = {.args = args, .shards = 1, .n = 300, .ttl_ms = 1500};
    struct fenv e;
    run_case(&e, &fc);
    struct expect x = {.fail = {-ETIMEDOUT}, .last = {CN_EKINESIS_INTERNAL}};
    check_common(&e, &x);
    CN_ASSERT_EQ(count_code(&e, -ETIMEDOUT), e.n);
    CN_ASSERT_EQ(e.k.expired, e.n);
    for (size_t i = 0; i < e.n; i++) {
        CN_ASSERT_GE(e.recs[i].out.attempts, 2);
        CN_ASSERT_STREQ(e.recs[i].out.error_type, "InternalFailure");
    }
    CN_ASSERT_EQ(e.users_read, 0); /* nothing was forwarded */
    CN_ASSERT_EQ(pstat(e.stats, "http_500"), pstat(e.stats, "put_records_requests"));
    env_free(&e);
}

/* ---- partial failures ------------------------------------------------------------------- */

static void partial_failures_are_retried_until_every_record_lands_once(void)
{
    const char *args[] = {"--fail-records", "20", "--seed", "5", NULL};
    struct fcase fc = {.args = args,
                       .shards = 2,
                       .n = 3000,
                       .aggregation = true,
                       .aggregation_max_size = 2048,
                       .collection_max_count = 20};
    struct fenv e;
    run_case(&e, &fc);
    check_all_stored_after_retries(&e, false);
    CN_ASSERT_GT(pstat(e.stats, "failed_entries"), 0);
    CN_ASSERT_EQ(pstat(e.stats, "failed_requests"), 0);
    env_free(&e);
}

/* ---- the connection -------------------------------------------------------------------- */

static void connection_resets_are_retried_with_one_outcome_per_record(void)
{
    const char *args[] = {"--reset", "40", "--seed", "6", NULL};
    struct fcase fc = {.args = args, .shards = 2, .n = 2000, .collection_max_count = 25};
    struct fenv e;
    run_case(&e, &fc);
    check_all_stored_after_retries(&e, true);
    CN_ASSERT_GT(pstat(e.stats, "resets"), 0);
    CN_ASSERT_GT(pstat(e.stats, "resets_after_forward"), 0);
    env_free(&e);
}

static void slow_answers_past_request_timeout_are_retried(void)
{
    const char *args[] = {"--slow-ms", "2500", "--slow", "25", "--seed", "7", NULL};
    /* Few connections, so kinesalite's own queueing stays well under the
     * request timeout and only the injected delay crosses it. */
    struct fcase fc = {.args = args,
                       .shards = 2,
                       .n = 2000,
                       .collection_max_count = 50,
                       .max_connections = 4,
                       .request_timeout_ms = 1000};
    struct fenv e;
    run_case(&e, &fc);
    check_all_stored_after_retries(&e, true);
    CN_ASSERT_GT(pstat(e.stats, "slow_responses"), 0);
    env_free(&e);
}

static void slow_answers_on_every_request_expire_records_at_ttl(void)
{
    const char *args[] = {"--slow-ms", "4000", NULL};
    struct fcase fc = {
        .args = args, .shards = 1, .n = 300, .ttl_ms = 2000, .request_timeout_ms = 300};
    struct fenv e;
    run_case(&e, &fc);
    /* Each attempt was stored (forwarded, then answered late): any number
     * of copies, none known to the producer. */
    struct expect x = {.dups = true, .fail = {-ETIMEDOUT}, .last = {-ETIMEDOUT}};
    check_common(&e, &x);
    CN_ASSERT_EQ(count_code(&e, -ETIMEDOUT), e.n);
    for (size_t i = 0; i < e.n; i++) {
        CN_ASSERT_GE(e.recs[i].out.attempts, 2);
    }
    CN_ASSERT_EQ(pstat(e.stats, "slow_responses"), pstat(e.stats, "put_records_requests"));
    env_free(&e);
}

/* ---- answers that cannot be used ------------------------------------------------------ */

/* A 200 whose body is not JSON: the request was processed (forwarded), the
 * answer lost. The producer retries, as after a timeout: failing the
 * records would report as failed what is stored; so every record ends
 * stored (at least once) and succeeded. */
static void garbage_answers_are_retried_and_every_record_lands(void)
{
    const char *args[] = {"--garbage", "25", "--seed", "8", NULL};
    struct fcase fc = {.args = args, .shards = 2, .n = 2000, .collection_max_count = 50};
    struct fenv e;
    run_case(&e, &fc);
    int64_t garbled = pstat(e.stats, "garbage_entries");
    CN_ASSERT_GT(garbled, 0);
    check_all_stored_after_retries(&e, true);
    CN_ASSERT_GE((int64_t)e.k.retried, garbled);
    CN_ASSERT_EQ(e.k.failed, 0);
    env_free(&e);
}

static void expired_credentials_fail_the_records_at_once(void)
{
    const char *args[] = {"--expired-creds", "20", "--seed", "9", NULL};
    struct fcase fc = {.args = args, .shards = 2, .n = 2000, .collection_max_count = 50};
    struct fenv e;
    run_case(&e, &fc);
    struct expect x = {.failed_absent = true, .fail = {CN_EKINESIS_EXPIRED_TOKEN}};
    check_common(&e, &x);
    int64_t expired = pstat(e.stats, "expired_entries");
    CN_ASSERT_GT(expired, 0);
    CN_ASSERT_EQ((int64_t)count_code(&e, CN_EKINESIS_EXPIRED_TOKEN), expired);
    CN_ASSERT_EQ(e.k.retried, 0); /* not retryable: no second attempt */
    for (size_t i = 0; i < e.n; i++) {
        const struct cn_kinesis_outcome *o = &e.recs[i].out;
        CN_ASSERT_EQ(o->attempts, 1);
        if (o->code != 0) {
            CN_ASSERT_STREQ(o->error_type, "ExpiredTokenException");
        }
    }
    CN_ASSERT_EQ((int64_t)e.krecs_read, (int64_t)e.n - expired);
    env_free(&e);
}

/* ---- resharding ------------------------------------------------------------------------ */

static void split_under_load_moves_records_to_children_once(void)
{
    const char *args[] = {"--split-after", "1000", "--limit", "--seed", "10", NULL};
    struct fcase fc = {
        .args = args, .shards = 1, .n = 4000, .collection_max_count = 100, .pause_for_split = 2000};
    struct fenv e;
    run_case(&e, &fc);
    struct expect x = {0};
    check_common(&e, &x);
    CN_ASSERT_EQ(e.k.succeeded, e.n);
    CN_ASSERT_EQ(pstat(e.stats, "splits"), 1);
    CN_ASSERT_EQ(pstat(e.stats, "split_errors"), 0);
    CN_ASSERT_GE(pstat(e.stats, "shard_map_loads"), 2); /* the proxy followed the split */
    CN_ASSERT_GE(e.k.shard_map_loads, 2);               /* and so did the producer */
    CN_ASSERT_GT(e.in_children, 0);
    CN_ASSERT(strcmp(e.recs[e.n - 1].out.shard_id, FIRST_SHARD) != 0);
    env_free(&e);
}

/* ---- the other emulator ------------------------------------------------------------------ */

/* kinesis-mock upstream: its ListShards and PutRecords answers go through
 * the proxy's shard model and merging as kinesalite's do. kinesis-mock
 * handles one request at a time and slowly under load (seconds per
 * PutRecords when tests run beside it), so few connections and a long
 * request timeout; should one still time out, its records may be stored
 * twice (at least once), which the read-back allows. */
static void kinesis_mock_behind_the_proxy_retries_limits_and_500s(void)
{
    /* The first wave (4 requests of 50) is twice what a shard's bucket of
     * 60 holds: throttling is certain. */
    const char *args[] = {"--limit", "--limit-records", "60", "--http-500",
                          "30",      "--seed",          "12", NULL};
    struct fcase fc = {.args = args,
                       .shards = 2,
                       .n = 600,
                       .collection_max_count = 50,
                       .max_connections = 4,
                       .request_timeout_ms = 20000,
                       .ttl_ms = 60000,
                       .emu = CN_EMU_KINESIS_MOCK};
    struct fenv e;
    run_case(&e, &fc);
    check_all_stored_after_retries(&e, true);
    CN_ASSERT_GT(pstat(e.stats, "throttled_entries"), 0);
    CN_ASSERT_GT(pstat(e.stats, "http_500"), 0);
    CN_ASSERT_EQ(pstat(e.stats, "shard_mismatches"), 0);
    env_free(&e);
}

/* ---- everything at once ----------------------------------------------------------------- */

static void mixed_storm_gives_every_record_exactly_one_outcome(void)
{
    const char *args[] = {"--limit", "--limit-records",  "300",  "--throttle-requests",
                          "6",       "--limit-exceeded", "2",    "--http-500",
                          "5",       "--http-503",       "5",    "--expired-creds",
                          "3",       "--reset",          "6",    "--garbage",
                          "3",       "--slow-ms",        "3000", "--slow",
                          "4",       "--fail-records",   "5",    "--split-after",
                          "2000",    "--seed",           "11",   NULL};
    struct fcase fc = {.args = args,
                       .shards = 2,
                       .n = 4000,
                       .collection_max_count = 100,
                       .max_connections = 8,
                       .request_timeout_ms = 1500,
                       .ttl_ms = 30000};
    struct fenv e;
    run_case(&e, &fc);
    struct expect x = {.dups = true, .fail = {CN_EKINESIS_EXPIRED_TOKEN}};
    check_common(&e, &x);
    CN_ASSERT_GT(e.k.succeeded, 0);
    CN_ASSERT_GT(e.k.retried, 0);
    CN_ASSERT_GT(count_retried(&e), 0);
    /* A fault answer the producer saw failed its records; one it did not
     * see (the request timed out first) was retried, so at most. */
    CN_ASSERT_LE((int64_t)count_code(&e, CN_EKINESIS_EXPIRED_TOKEN),
                 pstat(e.stats, "expired_entries"));
    CN_ASSERT_EQ(count_code(&e, CN_EKINESIS_BAD_RESPONSE), 0); /* retried, never failed */
    CN_ASSERT_GT(pstat(e.stats, "throttled_entries"), 0);
    CN_ASSERT_GT(pstat(e.stats, "failed_requests"), 0);
    CN_ASSERT_GT(pstat(e.stats, "resets"), 0);
    CN_ASSERT_EQ(pstat(e.stats, "splits"), 1);
    env_free(&e);
}

CN_TEST_MAIN(CN_CASE(proxy_forwards_every_operation_and_counts_what_is_stored),
             CN_CASE(proxy_limit_throttles_entries_past_the_shard_buckets_in_place),
             CN_CASE(proxy_refuses_bodies_over_10_mib_with_413),
             CN_CASE(limit_throttles_entries_and_every_record_lands_once_with_limiter_off),
             CN_CASE(limiter_on_keeps_shard_throttling_rare),
             CN_CASE(request_throttling_is_retried_until_every_record_lands_once),
             CN_CASE(http_500_and_503_are_retried_until_every_record_lands_once),
             CN_CASE(http_500_on_every_request_expires_records_at_ttl),
             CN_CASE(partial_failures_are_retried_until_every_record_lands_once),
             CN_CASE(connection_resets_are_retried_with_one_outcome_per_record),
             CN_CASE(slow_answers_past_request_timeout_are_retried),
             CN_CASE(slow_answers_on_every_request_expire_records_at_ttl),
             CN_CASE(garbage_answers_are_retried_and_every_record_lands),
             CN_CASE(expired_credentials_fail_the_records_at_once),
             CN_CASE(split_under_load_moves_records_to_children_once),
             CN_CASE(kinesis_mock_behind_the_proxy_retries_limits_and_500s),
             CN_CASE(mixed_storm_gives_every_record_exactly_one_outcome))
