/* SPDX-License-Identifier: MIT */
/*
 * The producer's synchronous face (kinesis/producer_sync.c), driven from
 * plain threads as a threaded program would; coroutines appear only to
 * create streams and read them back (cn_test_run, before and after):
 *   - 8 threads putting with futures against kinesalite: every future says
 *     stored, and every record is read back exactly once where its future
 *     said;
 *   - fire and forget from 8 threads: the user's callback sees exactly one
 *     outcome per record put, close alone (no flush) sends everything;
 *   - backpressure against a refused endpoint: put times out once the
 *     producer (max_outstanding_records, max_outstanding_bytes) and the
 *     face's queue are full, every accepted record fails at its TTL, none
 *     is lost;
 *   - close with futures outstanding, bad configuration, and futures
 *     released before or after their outcome (leaks show under ASan).
 * Outcomes are counted per record id, so a second outcome fails the test.
 * Throughput (records/s) is printed, never asserted.
 */
#include "test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "emulator.h"
#include "readback.h"

#define LONG_MS 60000
#define THREADS 8
#define PER_THREAD 2000
#define MAX_IDS 400000

/* One record put, its future and what came back. */
struct rec {
    char pk[40];
    uint8_t data[100];
    size_t len;
    struct cn_kinesis_future *f;
    struct cn_kinesis_outcome out;
    unsigned seen; /* times read back */
};

struct env {
    struct cn_emu emu;
    char url[64];
    const char *stream;
    size_t n;
    struct rec *recs;
    atomic_uint *by_id; /* outcomes the callback saw, by id - 1 */
    atomic_size_t outcomes, ok, failed;
};

/* One putting thread's share of the records. */
struct worker {
    pthread_t t;
    struct env *e;
    struct cn_kinesis_sync *sp;
    size_t from, to;
    bool futures;
    int64_t timeout_ms;
    size_t accepted;
    int stop_rc; /* the first error, which ended the thread's puts */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_outcome(void *arg, struct cn_kinesis_outcome_handle *h,
                       const struct cn_kinesis_outcome *o)
{
    struct env *e = arg;
    (void)h;
    CN_ASSERT_GE(o->id, 1);
    CN_ASSERT_LE(o->id, MAX_IDS);
    CN_ASSERT_EQ(atomic_fetch_add(&e->by_id[o->id - 1], 1), 0); /* exactly one outcome */
    atomic_fetch_add(o->code == 0 ? &e->ok : &e->failed, 1);
    atomic_fetch_add(&e->outcomes, 1);
}

static void env_init(struct env *e, size_t n)
{
    static uint64_t rng = 0x9E3779B97F4A7C15ull;
    e->n = n;
    e->recs = calloc(n, sizeof *e->recs);
    e->by_id = calloc(MAX_IDS, sizeof *e->by_id);
    CN_ASSERT(e->recs && e->by_id);
    for (size_t i = 0; i < n; i++) {
        struct rec *r = &e->recs[i];
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        snprintf(r->pk, sizeof r->pk, "pk-%zu-%llx", i, (unsigned long long)(rng & 0xFFFFFF));
        r->len = 1 + rng % (sizeof r->data - 1);
        for (size_t k = 0; k < r->len; k++) {
            r->data[k] = (uint8_t)(rng >> (k % 56));
        }
    }
}

static void env_free(struct env *e)
{
    free(e->recs);
    free(e->by_id);
}

static struct cn_kinesis_producer_config config(struct env *e, const char *url)
{
    struct cn_kinesis_producer_config c = {.client = {.endpoint_url = url,
                                                      .region = "us-east-1",
                                                      .access_key_id = "AKIDEXAMPLE",
                                                      .secret_access_key = "secret"},
                                           .rate_limit = CN_KINESIS_OFF,
                                           .on_outcome = on_outcome,
                                           .on_outcome_arg = e};
    return c;
}

/* A loopback port nobody listens on: bound, read back, closed. */
static void dead_url(char *url, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CN_ASSERT_GE(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CN_ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    CN_ASSERT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    snprintf(url, size, "http://127.0.0.1:%d", ntohs(a.sin_port));
}

static void *nothing(void *arg)
{
    return arg;
}

/* Threads of this process, from /proc/self/task. A first thread is made
 * and joined before counting, so helper threads that a sanitizer's runtime
 * starts with the first pthread_create are there already. */
static size_t thread_count(void)
{
    pthread_t t;
    CN_ASSERT_EQ(pthread_create(&t, NULL, nothing, NULL), 0);
    CN_ASSERT_EQ(pthread_join(t, NULL), 0);
    DIR *d = opendir("/proc/self/task");
    CN_ASSERT(d != NULL);
    size_t n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        n += de->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

/* ---- putting threads ------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (size_t i = w->from; i < w->to; i++) {
        struct rec *r = &w->e->recs[i];
        int rc = cn_kinesis_sync_put(w->sp, w->e->stream, r->pk, r->data, r->len, NULL,
                                     w->futures ? &r->f : NULL, w->timeout_ms);
        if (rc < 0) {
            CN_ASSERT(r->f == NULL);
            w->stop_rc = rc;
            break;
        }
        CN_ASSERT(!w->futures || r->f != NULL);
        w->accepted++;
    }
    return NULL;
}

/* Puts e->recs from `threads` threads, each its slice, and returns how
 * many were accepted. */
static size_t put_from_threads(struct env *e, struct cn_kinesis_sync *sp, size_t threads,
                               bool futures, int64_t timeout_ms, struct worker *w)
{
    size_t accepted = 0;
    for (size_t i = 0; i < threads; i++) {
        w[i] = (struct worker){.e = e,
                               .sp = sp,
                               .from = e->n * i / threads,
                               .to = e->n * (i + 1) / threads,
                               .futures = futures,
                               .timeout_ms = timeout_ms};
        CN_ASSERT_EQ(pthread_create(&w[i].t, NULL, worker_main, &w[i]), 0);
    }
    for (size_t i = 0; i < threads; i++) {
        CN_ASSERT_EQ(pthread_join(w[i].t, NULL), 0);
        accepted += w[i].accepted;
    }
    return accepted;
}

static void print_rate(const char *what, size_t n, int64_t ms)
{
    fprintf(stderr, "%s: %zu records in %lld ms = %.0f records/s\n", what, n, (long long)ms,
            ms > 0 ? n * 1000.0 / (double)ms : 0.0);
}

/* ---- streams: made and read back by coroutines ------------------------------------ */

struct stream_job {
    struct env *e;
    int shards;
    size_t users; /* read back */
};

static struct cn_kinesis_client *client(struct env *e)
{
    struct cn_kinesis_client_opts o = {.endpoint_url = e->url,
                                       .region = "us-east-1",
                                       .access_key_id = "AKIDEXAMPLE",
                                       .secret_access_key = "secret"};
    struct cn_kinesis_client *kc;
    CN_ASSERT_EQ(cn_kinesis_client_new(&kc, &o), 0);
    return kc;
}

static int create_main(void *arg)
{
    struct stream_job *j = arg;
    struct cn_kinesis_client *kc = client(j->e);
    struct cn_kinesis_error err;
    int rc = cn_kinesis_create_stream(kc, j->e->stream, j->shards, &err, cn_now() + LONG_MS);
    if (rc < 0) {
        fprintf(stderr, "CreateStream: %s %s\n", err.type, err.message);
    }
    CN_ASSERT_EQ(rc, 0);
    CN_ASSERT_EQ(cn_kinesis_wait_active(kc, j->e->stream, NULL, &err, cn_now() + LONG_MS), 0);
    cn_kinesis_client_close(kc);
    return 0;
}

static void create_stream(struct env *e, const char *stream, int shards)
{
    e->stream = stream;
    struct stream_job j = {.e = e, .shards = shards};
    cn_test_run(create_main, &j);
}

/* A read-back user record: found once, where its outcome said. */
static void visit(void *arg, const char *shard, const char *seq, const struct cn__user_record *u,
                  bool aggregated)
{
    struct env *e = arg;
    char pk[64];
    CN_ASSERT_LT(u->pk_len, sizeof pk);
    memcpy(pk, u->pk, u->pk_len);
    pk[u->pk_len] = '\0';
    size_t i;
    CN_ASSERT_EQ(sscanf(pk, "pk-%zu-", &i), 1);
    CN_ASSERT_LT(i, e->n);
    struct rec *r = &e->recs[i];
    CN_ASSERT_STREQ(r->pk, pk);
    CN_ASSERT_EQ(r->seen, 0);
    r->seen++;
    CN_ASSERT_STREQ(r->out.shard_id, shard);
    CN_ASSERT_STREQ(r->out.sequence_number, seq);
    CN_ASSERT_EQ(r->out.sub_sequence_number, u->sub_seq);
    CN_ASSERT_EQ(r->out.aggregated, aggregated);
    CN_ASSERT_EQ(u->data_len, r->len);
    CN_ASSERT_MEMEQ(u->data, r->data, r->len);
}

static int read_back_main(void *arg)
{
    struct stream_job *j = arg;
    struct cn_kinesis_client *kc = client(j->e);
    j->users = cn_readback(kc, j->e->stream, visit, j->e, cn_now() + LONG_MS);
    cn_kinesis_client_close(kc);
    return 0;
}

static size_t read_back(struct env *e)
{
    struct stream_job j = {.e = e};
    cn_test_run(read_back_main, &j);
    return j.users;
}

/* ==== against kinesalite ========================================================== */

static void sync_futures_from_8_threads_arrive_once(void)
{
    struct env e = {0};
    cn_emu_start(&e.emu, CN_EMU_KINESALITE);
    snprintf(e.url, sizeof e.url, "%s", e.emu.url);
    env_init(&e, THREADS * PER_THREAD);
    create_stream(&e, "sync4", 4);
    struct cn_kinesis_producer_config c = config(&e, e.url);
    struct cn_kinesis_sync *sp;
    CN_ASSERT_EQ(cn_kinesis_sync_new(&sp, &c), 0);
    struct worker w[THREADS];
    int64_t t0 = mono_ms();
    CN_ASSERT_EQ(put_from_threads(&e, sp, THREADS, true, -1, w), e.n);
    int64_t t1 = mono_ms();
    for (size_t i = 0; i < e.n; i++) {
        struct rec *r = &e.recs[i];
        CN_ASSERT_EQ(cn_kinesis_future_wait(r->f, &r->out, LONG_MS), 0);
        CN_ASSERT(cn_kinesis_future_ready(r->f));
        if (r->out.code != 0) {
            fprintf(stderr, "record %zu: %s %s %s\n", i, cn_err_name(r->out.code),
                    r->out.error_type, r->out.error_message);
        }
        CN_ASSERT_EQ(r->out.code, 0);
        CN_ASSERT_EQ(atomic_load(&e.by_id[r->out.id - 1]), 1); /* the callback came first */
        cn_kinesis_future_release(r->f);
    }
    int64_t t2 = mono_ms();
    print_rate("8 threads, futures, puts returned", e.n, t1 - t0);
    print_rate("8 threads, futures, all stored", e.n, t2 - t0);
    struct cn_kinesis_producer_counters k;
    cn_kinesis_sync_counters(sp, &k);
    CN_ASSERT_EQ(k.put, e.n);
    CN_ASSERT_EQ(k.succeeded, e.n);
    CN_ASSERT_EQ(k.outstanding, 0);
    struct cn_kinesis_metrics *m;
    CN_ASSERT_EQ(cn_kinesis_sync_metrics(sp, &m), 0);
    CN_ASSERT_EQ(m->total.put, e.n);
    CN_ASSERT_EQ(m->nstreams, 1);
    CN_ASSERT_STREQ(m->streams[0].stream, "sync4");
    cn_kinesis_metrics_free(m);
    CN_ASSERT_EQ(cn_kinesis_sync_close(sp, LONG_MS), 0);
    CN_ASSERT_EQ(atomic_load(&e.ok), e.n);
    CN_ASSERT_EQ(atomic_load(&e.failed), 0);
    CN_ASSERT_EQ(read_back(&e), e.n);
    for (size_t i = 0; i < e.n; i++) {
        CN_ASSERT_EQ(e.recs[i].seen, 1);
    }
    env_free(&e);
    cn_emu_stop(&e.emu);
}

static void sync_fire_and_forget_from_8_threads_counts_every_outcome(void)
{
    struct env e = {0};
    cn_emu_start(&e.emu, CN_EMU_KINESALITE);
    snprintf(e.url, sizeof e.url, "%s", e.emu.url);
    env_init(&e, THREADS * PER_THREAD);
    create_stream(&e, "syncff", 2);
    struct cn_kinesis_producer_config c = config(&e, e.url);
    struct cn_kinesis_sync *sp;
    CN_ASSERT_EQ(cn_kinesis_sync_new(&sp, &c), 0);
    struct worker w[THREADS];
    int64_t t0 = mono_ms();
    CN_ASSERT_EQ(put_from_threads(&e, sp, THREADS, false, -1, w), e.n);
    print_rate("8 threads, fire and forget, puts returned", e.n, mono_ms() - t0);
    struct cn_kinesis_producer_counters k;
    cn_kinesis_sync_counters(sp, &k); /* some may still be queued in the face */
    CN_ASSERT_LE(k.put, e.n);
    /* No flush: close sends what is queued or buffered and waits for it. */
    CN_ASSERT_EQ(cn_kinesis_sync_close(sp, LONG_MS), 0);
    print_rate("8 threads, fire and forget, all stored", e.n, mono_ms() - t0);
    CN_ASSERT_EQ(atomic_load(&e.outcomes), e.n);
    CN_ASSERT_EQ(atomic_load(&e.ok), e.n);
    for (size_t i = 0; i < e.n; i++) {
        CN_ASSERT_EQ(atomic_load(&e.by_id[i]), 1);
    }
    env_free(&e);
    cn_emu_stop(&e.emu);
}

/* Records/s of sync puts from 8 threads, printed for the record: fire and
 * forget, then with futures (each thread waits for its own at the end). */
static void stress_sync_put_throughput_8_threads(void)
{
    struct env e = {0};
    cn_emu_start(&e.emu, CN_EMU_KINESALITE);
    snprintf(e.url, sizeof e.url, "%s", e.emu.url);
    env_init(&e, 160000);
    create_stream(&e, "syncbench", 4);
    for (int futures = 0; futures < 2; futures++) {
        memset(e.by_id, 0, MAX_IDS * sizeof *e.by_id);
        atomic_store(&e.outcomes, 0);
        struct cn_kinesis_producer_config c = config(&e, e.url);
        struct cn_kinesis_sync *sp;
        CN_ASSERT_EQ(cn_kinesis_sync_new(&sp, &c), 0);
        struct worker w[THREADS];
        int64_t t0 = mono_ms();
        CN_ASSERT_EQ(put_from_threads(&e, sp, THREADS, futures, -1, w), e.n);
        int64_t t1 = mono_ms();
        CN_ASSERT_EQ(cn_kinesis_sync_flush(sp, LONG_MS), 0);
        int64_t t2 = mono_ms();
        const char *what = futures ? "futures" : "fire and forget";
        fprintf(stderr, "%s: ", what);
        print_rate("puts returned", e.n, t1 - t0);
        fprintf(stderr, "%s: ", what);
        print_rate("all outcomes", e.n, t2 - t0);
        for (size_t i = 0; futures && i < e.n; i++) {
            CN_ASSERT_EQ(cn_kinesis_future_wait(e.recs[i].f, &e.recs[i].out, 0), 0);
            CN_ASSERT_EQ(e.recs[i].out.code, 0);
            cn_kinesis_future_release(e.recs[i].f);
            e.recs[i].f = NULL;
        }
        CN_ASSERT_EQ(cn_kinesis_sync_close(sp, LONG_MS), 0);
        CN_ASSERT_EQ(atomic_load(&e.outcomes), e.n);
    }
    env_free(&e);
    cn_emu_stop(&e.emu);
}

/* ==== against a refused endpoint ==================================================== */

/* max_outstanding_records = 100 against a refused endpoint: nothing can
 * leave the producer before the TTL, so it takes 100 records, the face's
 * queue (min(100, 4,096) records) takes 100 more with the drainer parked
 * on the 101st, and then every thread's next put waits its 200 ms and
 * times out. Every accepted record fails at its TTL; none is lost. */
static void sync_put_times_out_on_backpressure_and_records_fail_at_ttl(void)
{
    struct env e = {0};
    dead_url(e.url, sizeof e.url);
    e.stream = "down";
    env_init(&e, 1000);
    struct cn_kinesis_producer_config c = config(&e, e.url);
    c.max_outstanding_records = 100;
    c.record_ttl_ms = 1500;
    c.min_backoff_ms = 20;
    c.max_backoff_ms = 100;
    struct cn_kinesis_sync *sp;
    CN_ASSERT_EQ(cn_kinesis_sync_new(&sp, &c), 0);
    struct worker w[4];
    size_t accepted = put_from_threads(&e, sp, 4, true, 200, w);
    for (size_t i = 0; i < 4; i++) {
        CN_ASSERT_EQ(w[i].stop_rc, -ETIMEDOUT);
    }
    CN_ASSERT_EQ(accepted, 200);
    struct cn_kinesis_producer_counters k;
    cn_kinesis_sync_counters(sp, &k);
    CN_ASSERT_EQ(k.put, 100);
    CN_ASSERT_EQ(k.outstanding, 100);
    /* Waiting on a future times out too while its record retries. */
    size_t first = SIZE_MAX; /* a worker whose first put came too late accepted none */
    for (size_t i = 0; i < 4 && first == SIZE_MAX; i++) {
        first = w[i].accepted > 0 ? w[i].from : SIZE_MAX;
    }
    CN_ASSERT_NE(first, SIZE_MAX);
    CN_ASSERT_EQ(cn_kinesis_future_wait(e.recs[first].f, NULL, 10), -ETIMEDOUT);
    CN_ASSERT(!cn_kinesis_future_ready(e.recs[first].f));
    size_t waited = 0;
    for (size_t t = 0; t < 4; t++) {
        for (size_t i = w[t].from; i < w[t].from + w[t].accepted; i++) {
            struct rec *r = &e.recs[i];
            CN_ASSERT_EQ(cn_kinesis_future_wait(r->f, &r->out, LONG_MS), 0);
            CN_ASSERT_EQ(r->out.code, -ETIMEDOUT);
            CN_ASSERT_EQ(r->out.last_error, -ECONNREFUSED);
            CN_ASSERT_GE(r->out.latency_ms, 1500);
            cn_kinesis_future_release(r->f);
            waited++;
        }
    }
    CN_ASSERT_EQ(waited, 200);
    cn_kinesis_sync_counters(sp, &k);
    CN_ASSERT_EQ(k.put, 200);
    CN_ASSERT_EQ(k.expired, 200);
    CN_ASSERT_EQ(k.outstanding, 0);
    CN_ASSERT_LE(k.max_outstanding, 100);
    CN_ASSERT_EQ(cn_kinesis_sync_close(sp, LONG_MS), 0);
    CN_ASSERT_EQ(atomic_load(&e.outcomes), 200);
    CN_ASSERT_EQ(atomic_load(&e.failed), 200);
    env_free(&e);
}

/* max_outstanding_bytes bounds the producer and, as much again, the
 * face's queue: against a refused endpoint puts stop within twice the
 * bound (plus the record the drainer holds), and every accepted record
 * fails at its TTL. */
static void sync_put_times_out_on_outstanding_bytes(void)
{
    struct env e = {0};
    dead_url(e.url, sizeof e.url);
    e.stream = "down";
    env_init(&e, 1000);
    struct cn_kinesis_producer_config c = config(&e, e.url);
    c.max_outstanding_bytes = 2000;
    c.record_ttl_ms = 1000;
    struct cn_kinesis_sync *sp;
    CN_ASSERT_EQ(cn_kinesis_sync_new(&sp, &c), 0);
    size_t accepted = 0, bytes = 0, biggest = 0;
    for (; accepted < e.n; accepted++) {
        struct rec *r = &e.recs[accepted];
        int rc = cn_kinesis_sync_put(sp, e.stream, r->pk, r->data, r->len, NULL, &r->f, 200);
        if (rc == -ETIMEDOUT) {
            break;
        }
        CN_ASSERT_EQ(rc, 0);
        size_t b = strlen(r->pk) + r->len;
        bytes += b;
        biggest = b > biggest ? b : biggest;
    }
    fprintf(stderr, "bytes bound 2000: %zu records, %zu bytes accepted\n", accepted, bytes);
    CN_ASSERT_LT(accepted, e.n);
    CN_ASSERT_GT(bytes, 2000);
    CN_ASSERT_LE(bytes, 2 * 2000 + 2 * biggest);
    for (size_t i = 0; i < accepted; i++) {
        struct rec *r = &e.recs[i];
        CN_ASSERT_EQ(cn_kinesis_future_wait(r->f, &r->out, LONG_MS), 0);
        CN_ASSERT_EQ(r->out.code, -ETIMEDOUT);
        cn_kinesis_future_release(r->f);
    }
    CN_ASSERT_EQ(cn_kinesis_sync_close(sp, LONG_MS), 0);
    CN_ASSERT_EQ(atomic_load(&e.outcomes), accepted);
    env_free(&e);
}

static void sync_close_gives_every_outstanding_future_its_outcome(void)
{
    struct env e = {0};
    dead_url(e.url, sizeof e.url);
    e.stream = "down";
    env_init(&e, 2000);
    struct cn_kinesis_producer_config c = config(&e, e.url);
    struct cn_kinesis_sync *sp;
    CN_ASSERT_EQ(cn_kinesis_sync_new(&sp, &c), 0);
    struct worker w[4];
    CN_ASSERT_EQ(put_from_threads(&e, sp, 4, true, -1, w), e.n);
    /* Nothing can be stored, and the 30 s TTL is far away: close fails
     * what it cannot send. */
    CN_ASSERT_EQ(cn_kinesis_sync_close(sp, 0), -ETIMEDOUT);
    for (size_t i = 0; i < e.n; i++) {
        struct rec *r = &e.recs[i];
        CN_ASSERT(cn_kinesis_future_ready(r->f));
        CN_ASSERT_EQ(cn_kinesis_future_wait(r->f, &r->out, 0), 0);
        CN_ASSERT_EQ(r->out.code, CN_ECLOSED);
        cn_kinesis_future_release(r->f);
    }
    CN_ASSERT_EQ(atomic_load(&e.outcomes), e.n);
    CN_ASSERT_EQ(atomic_load(&e.failed), e.n);
    env_free(&e);
}

static void sync_futures_released_before_or_after_outcome(void)
{
    struct env e = {0};
    dead_url(e.url, sizeof e.url);
    e.stream = "down";
    env_init(&e, 300);
    struct cn_kinesis_producer_config c = config(&e, e.url);
    c.record_ttl_ms = 300;
    c.min_backoff_ms = 20;
    c.max_backoff_ms = 50;
    struct cn_kinesis_sync *sp;
    CN_ASSERT_EQ(cn_kinesis_sync_new(&sp, &c), 0);
    for (size_t i = 0; i < e.n; i++) {
        struct rec *r = &e.recs[i];
        CN_ASSERT_EQ(cn_kinesis_sync_put(sp, e.stream, r->pk, r->data, r->len, NULL, &r->f, -1), 0);
        if (i % 3 == 0) {
            cn_kinesis_future_release(r->f); /* before its outcome */
            r->f = NULL;
        }
    }
    CN_ASSERT_EQ(cn_kinesis_sync_flush(sp, LONG_MS), 0);
    for (size_t i = 0; i < e.n; i++) {
        struct rec *r = &e.recs[i];
        if (i % 3 == 1) { /* after its outcome */
            CN_ASSERT(cn_kinesis_future_ready(r->f));
            CN_ASSERT_EQ(cn_kinesis_future_wait(r->f, &r->out, 0), 0);
            CN_ASSERT_EQ(r->out.code, -ETIMEDOUT);
            cn_kinesis_future_release(r->f);
        }
    }
    CN_ASSERT_EQ(cn_kinesis_sync_close(sp, LONG_MS), 0);
    for (size_t i = 2; i < e.n; i += 3) { /* after close: futures outlive the producer */
        CN_ASSERT_EQ(cn_kinesis_future_wait(e.recs[i].f, &e.recs[i].out, 0), 0);
        CN_ASSERT_EQ(e.recs[i].out.code, -ETIMEDOUT);
        cn_kinesis_future_release(e.recs[i].f);
    }
    cn_kinesis_future_release(NULL);
    CN_ASSERT_EQ(atomic_load(&e.outcomes), e.n);
    env_free(&e);
}

/* ==== configuration and arguments =================================================== */

static void sync_bad_config_fails_without_leaking_the_thread(void)
{
    struct env e = {0};
    dead_url(e.url, sizeof e.url);
    size_t threads = thread_count();
    struct cn_kinesis_sync *sp = NULL;
    struct cn_kinesis_producer_config c = config(&e, e.url);
    c.collection_max_count = 501;
    CN_ASSERT_EQ(cn_kinesis_sync_new(&sp, &c), -EINVAL);
    c.collection_max_count = 0;
    c.record_ttl_ms = -1;
    CN_ASSERT_EQ(cn_kinesis_sync_new(&sp, &c), -EINVAL);
    c.record_ttl_ms = 0;
    c.client.endpoint_url = "ftp://nowhere";
    CN_ASSERT_LT(cn_kinesis_sync_new(&sp, &c), 0);
    c.client.endpoint_url = e.url;
    c.collect_outcomes = true; /* nobody could take them */
    CN_ASSERT_EQ(cn_kinesis_sync_new(&sp, &c), -EINVAL);
    CN_ASSERT(sp == NULL);
    CN_ASSERT_EQ(thread_count(), threads);
    /* A good one; bad records are refused by put and make no future. */
    c.collect_outcomes = false;
    CN_ASSERT_EQ(cn_kinesis_sync_new(&sp, &c), 0);
    CN_ASSERT_EQ(thread_count(), threads + 1);
    struct cn_kinesis_future *f = (struct cn_kinesis_future *)&e;
    CN_ASSERT_EQ(cn_kinesis_sync_put(sp, "bad name!", "k", "d", 1, NULL, &f, -1),
                 CN_EKINESIS_STREAM_NAME);
    CN_ASSERT(f == NULL);
    CN_ASSERT_EQ(cn_kinesis_sync_put(sp, "s", "", "d", 1, NULL, &f, -1), CN_EKINESIS_PARTITION_KEY);
    CN_ASSERT_EQ(cn_kinesis_sync_put(sp, "s", "k", "d", 1, "01", NULL, -1), CN_EKINESIS_HASH_KEY);
    struct cn_kinesis_producer_counters k;
    cn_kinesis_sync_counters(sp, &k);
    CN_ASSERT_EQ(k.put, 0);
    CN_ASSERT_EQ(cn_kinesis_sync_flush(sp, 0), 0);
    CN_ASSERT_EQ(cn_kinesis_sync_close(sp, LONG_MS), 0);
    CN_ASSERT_EQ(cn_kinesis_sync_close(NULL, 0), 0);
    CN_ASSERT_EQ(thread_count(), threads);
}

CN_TEST_MAIN(CN_CASE(sync_futures_from_8_threads_arrive_once),
             CN_CASE(sync_fire_and_forget_from_8_threads_counts_every_outcome),
             CN_CASE(stress_sync_put_throughput_8_threads),
             CN_CASE(sync_put_times_out_on_backpressure_and_records_fail_at_ttl),
             CN_CASE(sync_put_times_out_on_outstanding_bytes),
             CN_CASE(sync_close_gives_every_outstanding_future_its_outcome),
             CN_CASE(sync_futures_released_before_or_after_outcome),
             CN_CASE(sync_bad_config_fails_without_leaking_the_thread))
