/* SPDX-License-Identifier: MIT */
/*
 * The Kinesis producer benchmark (issue 7): coronet's producer against the
 * boto3 and Node KPL references on two emulators, its own ceiling against
 * a fast in-process endpoint, its limiter behind a throttling proxy, and
 * its put-to-outcome latency.
 *
 *   bench-kinesis [--quick] [--section ceiling|matrix|latency|limiter]
 *                 [--emulator kinesalite|kinesis_mock] [--records N] [--rounds N]
 *
 * Takes no arguments by default and prints one JSON object per line, the
 * format every coronet benchmark shares (scripts/bench tabulates it):
 *
 *   {"bench": "kinesis", "case": "kinesalite_confirmed", "impl": "coronet",
 *    "value": N, "unit": "records/s"}
 *
 * Sections:
 *   matrix   on kinesalite and on kinesis-mock (both started here through
 *            tests/kinesis/emulator.h), 20,000 records of 200 bytes (key
 *            "pk-<i>", data byte j = (i + j) mod 256) into a fresh 1-shard
 *            stream per variant and round:
 *              <emu>_confirmed        coronet, a handle per record, every
 *                                     outcome awaited;
 *              <emu>_fire_and_forget  coronet, no handles, flush at the end;
 *              <emu>_noagg            coronet confirmed, aggregation off;
 *              <emu>_put_records      boto3 put_records of plain records,
 *                                     500 a call (bench/peers/boto3_put.py);
 *              <emu>_agg_put_record   npm aws-kinesis-agg aggregates sent by
 *                                     @aws-sdk/client-kinesis over HTTP/1.1
 *                                     (bench/peers/node_kpl_put.js);
 *            records/s from the first put to the last outcome (the
 *            references time themselves the same way), and <case>_cpu, the
 *            putting side's CPU per record (coronet: this thread; the
 *            references: their process). Variants interleave, the order
 *            rotating each round; each value is the median of 3 rounds.
 *            kinesis-mock is slow (about 1 MiB/s of body, and slower per
 *            record as a shard fills with plain records: 20,000 take it
 *            minutes): there one round, the plain variants (noagg,
 *            put_records) last, every run limited to 45 s (60 s on
 *            kinesalite). Every run is verified: the stream is read back
 * (GetRecords, KPL aggregates deaggregated) and every one of the records must be there with its
 * data; coronet's outcomes must all be successes. A variant that loses a record, fails or passes
 * its time limit in any round is reported with value 0 (FAILED in the table), never with a rate.
 *   ceiling  1,000,000 records into a fast fake endpoint on its own thread
 *            (kinesis_endpoint.c, 4 shards), aggregation on and off:
 *            ceiling_<agg|noagg> records/s, and the producer's CPU per
 *            record in microseconds: _cpu (this thread, where the producer
 *            runs) and _cpu_process (the process minus the endpoint thread).
 *   latency  kinesalite, 2 shards, 1,000 records put 1 ms apart:
 *            p50/p99 from put to outcome in ms, with the default
 *            record_max_buffered_time_ms (100) and with 1 ms.
 *   limiter  when build/tests/kinesis/kinesis-fault-proxy exists: coronet
 *            with its limiter on at 100 % behind the proxy (1,000 records/s
 *            and 1 MiB/s per shard enforced) in front of kinesalite, 2
 *            shards, 10 s of load above the limit, aggregation off (records
 *            bind) and on (bytes bind): per shard, the stored rate (read
 *            back, by arrival time, over seconds 3-10: the buckets start
 *            full) as a fraction of the limit, and the entries the proxy
 *            throttled.
 *
 * Coronet runs with rate_limit off against the emulators (they never
 * throttle) and with generous request and record time limits, because
 * kinesis-mock takes seconds per MiB. The whole run takes about 5 minutes;
 * CN_BENCH_QUICK=1 (or --quick) shrinks every count for the smoke test and
 * runs kinesalite only, exiting 77 (skip) when it is not installed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coronet/coronet.h"
#include "emulator.h"
#include "kinesis/agg.h"
#include "kinesis_endpoint.h"

#ifndef CN_SOURCE_ROOT
#define CN_SOURCE_ROOT "."
#endif

enum {
    RECORD_SIZE = 200,
    KEY_LEN = 24,  /* "pk-" + any size_t */
    MAX_SECS = 64, /* limiter: arrivals counted per second up to this */
    MAX_ROUNDS = 9,
};

static struct {
    bool quick;
    const char *section;  /* --section: only this one */
    const char *emulator; /* --emulator: only this one */
    size_t records;       /* matrix records per variant */
    int rounds;           /* matrix rounds on kinesalite (kinesis-mock: 1) */
    size_t ceiling_records;
    int ceiling_rounds;
    size_t latency_records;
    int limiter_secs;
} opt = {
    .records = 20000,
    .rounds = 3,
    .ceiling_records = 1000000,
    .ceiling_rounds = 3,
    .latency_records = 1000,
    .limiter_secs = 10,
};

static char self_dir[PATH_MAX];
static const char *root; /* the source tree: bench/peers, .peers */

/* ---- small things ------------------------------------------------------------------ */

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench-kinesis: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void emit(const char *bench_case, const char *impl, double value, const char *unit)
{
    printf("{\"bench\": \"kinesis\", \"case\": \"%s\", \"impl\": \"%s\", \"value\": %.*f, "
           "\"unit\": \"%s\"}\n",
           bench_case, impl, value >= 100 ? 0 : 3, value, unit);
    fflush(stdout);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double process_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double s[MAX_ROUNDS];
    memcpy(s, v, (size_t)n * sizeof *v);
    qsort(s, (size_t)n, sizeof s[0], cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static bool wanted(const char *section)
{
    return !opt.section || strcmp(opt.section, section) == 0;
}

/* ---- the records: the same bytes in every implementation --------------------------- */

static uint8_t pattern[RECORD_SIZE + 256]; /* record i's data starts at i mod 256 */
static char (*keys)[KEY_LEN];              /* keys[i] = "pk-<i>" */
static size_t nkeys;

static int records_init(size_t n)
{
    for (size_t j = 0; j < sizeof pattern; j++) {
        pattern[j] = (uint8_t)j;
    }
    keys = malloc(n * sizeof *keys);
    if (!keys) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i], KEY_LEN, "pk-%zu", i);
    }
    nkeys = n;
    return 0;
}

static const uint8_t *record_data(size_t i)
{
    return pattern + (i & 255);
}

/* ---- the Kinesis side: client, streams, read back ------------------------------------ */

static struct cn_kinesis_client_opts client_opts(const char *url)
{
    return (struct cn_kinesis_client_opts){.endpoint_url = url,
                                           .region = "us-east-1",
                                           .access_key_id = "AKIDEXAMPLE",
                                           .secret_access_key = "secret"};
}

static int stream_create(struct cn_kinesis_client *kc, const char *stream, int shards)
{
    struct cn_kinesis_error err;
    int rc = cn_kinesis_create_stream(kc, stream, shards, &err, cn_now() + 60000);
    if (rc == 0) {
        rc = cn_kinesis_wait_active(kc, stream, NULL, &err, cn_now() + 60000);
    }
    if (rc < 0) {
        note("%s: creating the stream: %s %s", stream, cn_err_name(rc), err.message);
    }
    return rc;
}

static void stream_delete(struct cn_kinesis_client *kc, const char *stream)
{
    struct cn_kinesis_error err;
    cn_kinesis_delete_stream(kc, stream, true, &err, cn_now() + 30000);
}

/* What a read-back found. */
struct tally {
    size_t n;      /* records expected: keys pk-0 .. pk-(n-1) */
    uint8_t *seen; /* by record index */
    size_t distinct, total, bad;
    /* per shard, Kinesis records and their bytes by second of arrival,
     * from t0_ms (wall clock; 0: not counted) */
    int64_t t0_ms;
    uint64_t sec_records[MAX_SECS], sec_bytes[MAX_SECS];
};

static void tally_user(struct tally *t, const struct cn__user_record *u)
{
    char key[KEY_LEN];
    char *end;
    if (u->pk_len < 4 || u->pk_len >= KEY_LEN || memcmp(u->pk, "pk-", 3) != 0) {
        t->bad++;
        return;
    }
    memcpy(key, u->pk, u->pk_len);
    key[u->pk_len] = '\0';
    unsigned long long i = strtoull(key + 3, &end, 10);
    if (*end || i >= t->n || u->data_len != RECORD_SIZE ||
        memcmp(u->data, record_data(i), RECORD_SIZE) != 0) {
        t->bad++;
        return;
    }
    t->total++;
    if (t->seen && !t->seen[i]) {
        t->seen[i] = 1;
        t->distinct++;
    }
}

static void tally_record(struct tally *t, const struct cn_kinesis_record *kr)
{
    int64_t sec =
        t->t0_ms > 0 && kr->arrival_ms >= t->t0_ms ? (kr->arrival_ms - t->t0_ms) / 1000 : -1;
    if (sec >= 0 && sec < MAX_SECS) {
        t->sec_records[sec]++;
        t->sec_bytes[sec] += kr->data_len + kr->partition_key_len;
    }
    struct cn__user_record in = {.pk = (const uint8_t *)kr->partition_key,
                                 .pk_len = kr->partition_key_len,
                                 .data = kr->data,
                                 .data_len = kr->data_len};
    struct cn__deagg d;
    struct cn__user_record u;
    if (cn__deagg_open(&d, &in, NULL) >= 0) {
        while (cn__deagg_next(&d, &u) == 1) {
            tally_user(t, &u);
        }
    }
    cn__deagg_close(&d);
}

/* Reads one shard from TRIM_HORIZON to its end into t. */
static int read_shard(struct cn_kinesis_client *kc, const char *stream, const char *shard,
                      struct tally *t, int64_t deadline)
{
    struct cn_kinesis_error err;
    char it[CN_KINESIS_ITERATOR_MAX];
    int rc = cn_kinesis_get_shard_iterator(kc, stream, shard, NULL, it, &err, deadline);
    while (rc == 0) {
        struct cn_kinesis_records *rs;
        rc = cn_kinesis_get_records(kc, it, 10000, &rs, &err, deadline);
        if (rc < 0) {
            break;
        }
        for (size_t k = 0; k < rs->count; k++) {
            tally_record(t, &rs->records[k]);
        }
        bool done = !rs->next_iterator || (rs->count == 0 && rs->millis_behind_latest <= 0);
        if (!done) {
            snprintf(it, sizeof it, "%s", rs->next_iterator);
        }
        cn_kinesis_records_free(rs);
        if (done) {
            return 0;
        }
    }
    note("%s/%s: reading back: %s %s", stream, shard, cn_err_name(rc), err.message);
    return rc;
}

/* Reads every shard of stream into tallies[0..nshards) (one per shard, in
 * ListShards order; at most max). Returns the shard count or an error. */
static int read_stream(struct cn_kinesis_client *kc, const char *stream, struct tally *tallies,
                       size_t max, int64_t deadline)
{
    struct cn_kinesis_shard_list *l;
    struct cn_kinesis_error err;
    int rc = cn_kinesis_list_shards(kc, stream, CN_KINESIS_SHARDS_ALL, &l, &err, deadline);
    if (rc < 0) {
        note("%s: ListShards: %s %s", stream, cn_err_name(rc), err.message);
        return rc;
    }
    size_t n = l->count < max ? l->count : max;
    for (size_t s = 0; rc == 0 && s < n; s++) {
        rc = read_shard(kc, stream, l->shards[s].id, &tallies[s], deadline);
    }
    cn_kinesis_shard_list_free(l);
    return rc < 0 ? rc : (int)n;
}

/* Whether stream holds every one of records 0 .. n-1 (duplicates are
 * allowed: delivery is at least once). */
static bool verify_stream(struct cn_kinesis_client *kc, const char *stream, size_t n, char *why,
                          size_t cap, int64_t deadline)
{
    struct tally t = {.n = n, .seen = calloc(n, 1)};
    if (!t.seen) {
        snprintf(why, cap, "out of memory");
        return false;
    }
    int rc = read_stream(kc, stream, &t, 1, deadline);
    free(t.seen);
    if (rc < 0) {
        snprintf(why, cap, "read back failed: %s", cn_err_name(rc));
        return false;
    }
    if (t.distinct != n || t.bad) {
        snprintf(why, cap, "read back %zu of %zu records (%zu unreadable)", t.distinct, n, t.bad);
        return false;
    }
    if (t.total > n) {
        note("%s: %zu records stored twice (at least once delivery)", stream, t.total - n);
    }
    return true;
}

/* ---- child processes (the references, the proxy) -------------------------------------- */

/* Starts argv with stdout into a non-blocking pipe (*out_fd) and stderr ours. */
static pid_t child_start(char *const argv[], int *out_fd)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        return -1;
    }
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
            _exit(126);
        }
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        dup2(fds[1], 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return -1;
    }
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    *out_fd = fds[0];
    return pid;
}

/* Appends what fd has now to out (NUL-terminated). */
static void drain(int fd, char *out, size_t cap, size_t *len)
{
    for (;;) {
        char scratch[4096];
        char *dst = *len + 1 < cap ? out + *len : scratch;
        size_t room = *len + 1 < cap ? cap - 1 - *len : sizeof scratch;
        ssize_t n = read(fd, dst, room);
        if (n <= 0) {
            break;
        }
        if (dst == out + *len) {
            *len += (size_t)n;
        }
    }
    out[*len] = '\0';
}

/* Runs argv to its end, polling from the loop so the coroutine parks, and
 * keeps its stdout in out. Returns the exit status, or -ETIMEDOUT (it was
 * killed at the deadline), or -1 if it could not start. */
static int child_run(char *const argv[], int64_t deadline, char *out, size_t cap)
{
    int fd;
    size_t len = 0;
    pid_t pid = child_start(argv, &fd);
    if (pid < 0) {
        return -1;
    }
    int status = 0, rc;
    for (;;) {
        drain(fd, out, cap, &len);
        if (waitpid(pid, &status, WNOHANG) == pid) {
            drain(fd, out, cap, &len);
            rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            break;
        }
        if (cn_now() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            rc = -ETIMEDOUT;
            break;
        }
        cn_sleep(20);
    }
    close(fd);
    return rc;
}

/* The number after "name": in a JSON line, or -1. */
static double json_number(const char *s, const char *name)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", name);
    const char *p = strstr(s, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

/* ---- the matrix ------------------------------------------------------------------------- */

enum variant { CONFIRMED, FIRE_AND_FORGET, NOAGG, BOTO3, NODE_KPL, NVARIANTS };

static const struct {
    const char *name, *impl;
} variants[NVARIANTS] = {
    [CONFIRMED] = {"confirmed", "coronet"},
    [FIRE_AND_FORGET] = {"fire_and_forget", "coronet"},
    [NOAGG] = {"noagg", "coronet"},
    [BOTO3] = {"put_records", "boto3"},
    [NODE_KPL] = {"agg_put_record", "node_kpl"},
};

struct matrix {
    const char *emu; /* "kinesalite", "kinesis_mock" */
    struct cn_emu *emulator;
    const char *url; /* emulator->url */
    struct cn_kinesis_client *kc;
    int rounds;
    int64_t limit_ms; /* per run */
    bool restart;     /* the emulator before the next run */
    bool available[NVARIANTS];
    bool failed[NVARIANTS]; /* in some round, for any reason */
    bool broken[NVARIANTS]; /* lost or failed a record (not only slow) */
    int n[NVARIANTS];       /* rounds measured */
    double rate[NVARIANTS][MAX_ROUNDS], cpu[NVARIANTS][MAX_ROUNDS];
};

struct run {
    double secs, cpu_s;
    char why[200]; /* why it failed */
};

static struct cn_kinesis_producer_config producer_config(const char *url)
{
    return (struct cn_kinesis_producer_config){
        .client = client_opts(url),
        .rate_limit = CN_KINESIS_OFF,
        .request_timeout_ms = 60000, /* kinesis-mock: seconds per MiB */
        .record_ttl_ms = 300000,
    };
}

/* Every outcome awaited through its handle. */
static int put_confirmed(struct cn_kinesis_producer *p, const char *stream, size_t n,
                         int64_t deadline, struct run *r)
{
    struct cn_kinesis_outcome_handle **h = calloc(n, sizeof *h);
    int rc = h ? 0 : -ENOMEM;
    size_t put = 0, ok = 0;
    for (; rc == 0 && put < n; put++) {
        rc = cn_kinesis_put(p, stream, keys[put], record_data(put), RECORD_SIZE, NULL, &h[put],
                            deadline);
    }
    struct cn_kinesis_outcome o;
    for (size_t i = 0; i < put; i++) {
        if (rc == 0) {
            rc = cn_kinesis_outcome_wait(h[i], &o, deadline);
        }
        if (rc == 0 && o.code != 0) {
            snprintf(r->why, sizeof r->why, "record %zu failed: %s %.120s", i, cn_err_name(o.code),
                     o.error_message);
            rc = -EIO; /* not -ETIMEDOUT: that is the run's time limit */
        }
        ok += rc == 0;
        cn_kinesis_outcome_release(h[i]);
    }
    free(h);
    if (rc < 0 && !r->why[0]) {
        snprintf(r->why, sizeof r->why, "%s after %zu outcomes", cn_err_name(rc), ok);
    }
    return rc;
}

/* No handles; flush waits for every outcome, the counters tell them. */
static int put_fire_and_forget(struct cn_kinesis_producer *p, const char *stream, size_t n,
                               int64_t deadline, struct run *r)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = cn_kinesis_put(p, stream, keys[i], record_data(i), RECORD_SIZE, NULL, NULL, deadline);
    }
    rc = rc < 0 ? rc : cn_kinesis_producer_flush(p, deadline);
    struct cn_kinesis_producer_counters k;
    cn_kinesis_producer_counters(p, &k);
    if (rc < 0 || k.succeeded != n) {
        snprintf(r->why, sizeof r->why, "%s: %llu of %zu records succeeded, %llu failed",
                 rc < 0 ? cn_err_name(rc) : "flushed", (unsigned long long)k.succeeded, n,
                 (unsigned long long)k.failed);
        return rc < 0 ? rc : -EIO;
    }
    return 0;
}

static int run_coronet(struct matrix *m, enum variant v, const char *stream, struct run *r)
{
    struct cn_kinesis_producer_config c = producer_config(m->url);
    c.aggregation = v == NOAGG ? CN_KINESIS_OFF : CN_KINESIS_ON;
    struct cn_kinesis_producer *p;
    int rc = cn_kinesis_producer_new(&p, &c);
    if (rc < 0) {
        snprintf(r->why, sizeof r->why, "producer_new: %s", cn_err_name(rc));
        return rc;
    }
    int64_t deadline = cn_now() + m->limit_ms;
    double t0 = now_s(), c0 = thread_cpu_s();
    rc = v == FIRE_AND_FORGET ? put_fire_and_forget(p, stream, opt.records, deadline, r)
                              : put_confirmed(p, stream, opt.records, deadline, r);
    r->secs = now_s() - t0;
    r->cpu_s = thread_cpu_s() - c0;
    cn_kinesis_producer_close(p, cn_now() + 5000);
    return rc;
}

static int run_reference(struct matrix *m, enum variant v, const char *stream, struct run *r)
{
    char script[PATH_MAX], count[32], size[32];
    snprintf(script, sizeof script, "%s/bench/peers/%s", root,
             v == BOTO3 ? "boto3_put.py" : "node_kpl_put.js");
    snprintf(count, sizeof count, "%zu", opt.records);
    snprintf(size, sizeof size, "%d", RECORD_SIZE);
    char *argv[] = {v == BOTO3 ? "/usr/bin/python3" : "node",
                    script,
                    (char *)m->url,
                    (char *)stream,
                    count,
                    size,
                    NULL};
    char out[1024] = "";
    int rc = child_run(argv, cn_now() + m->limit_ms, out, sizeof out);
    double acked = json_number(out, "records"), secs = json_number(out, "elapsed_s");
    if (rc != 0 || acked != (double)opt.records || secs <= 0) {
        snprintf(r->why, sizeof r->why, "%s (%.60s)",
                 rc == -ETIMEDOUT ? "passed its time limit" : "failed", out);
        return rc != 0 ? rc : -EIO;
    }
    r->secs = secs;
    r->cpu_s = json_number(out, "cpu_s");
    return 0;
}

/* kinesis-mock goes on for minutes with whatever a failed run had sent:
 * the next run gets a fresh one. This blocks the loop while it restarts,
 * which is fine: nothing else runs between two runs. */
static void emulator_restart(struct matrix *m)
{
    enum cn_emu_kind kind = m->emulator->kind;
    cn_kinesis_client_close(m->kc);
    m->kc = NULL;
    note("%s: restarting it after a failed run", m->emu);
    cn_emu_stop(m->emulator);
    cn_emu_start(m->emulator, kind); /* aborts if it does not come back */
    struct cn_kinesis_client_opts co = client_opts(m->url);
    co.max_conns = 4;
    int rc = cn_kinesis_client_new(&m->kc, &co);
    if (rc < 0) {
        note("%s: client: %s", m->emu, cn_err_name(rc));
        abort();
    }
}

/* One variant once: fresh stream, run, read back, delete. */
static void matrix_run(struct matrix *m, enum variant v, int round)
{
    char stream[64];
    snprintf(stream, sizeof stream, "bench-%s-%d", variants[v].name, round);
    struct run r = {0};
    if (m->restart) {
        emulator_restart(m);
        m->restart = false;
    }
    int rc = stream_create(m->kc, stream, 1);
    if (rc < 0) {
        snprintf(r.why, sizeof r.why, "could not create the stream");
    } else if (v == BOTO3 || v == NODE_KPL) {
        rc = run_reference(m, v, stream, &r);
    } else {
        rc = run_coronet(m, v, stream, &r);
    }
    if (rc == 0 &&
        !verify_stream(m->kc, stream, opt.records, r.why, sizeof r.why, cn_now() + m->limit_ms)) {
        rc = -EIO;
    }
    stream_delete(m->kc, stream);
    if (rc != 0) {
        note("%s_%s (%s) round %d FAILED: %s", m->emu, variants[v].name, variants[v].impl,
             round + 1, r.why);
        m->failed[v] = true;
        m->broken[v] = rc != -ETIMEDOUT;
        m->restart = m->emulator->kind == CN_EMU_KINESIS_MOCK;
        return;
    }
    double rate = (double)opt.records / r.secs;
    note("%s_%s (%s) round %d: %.0f records/s, %.2f us CPU/record", m->emu, variants[v].name,
         variants[v].impl, round + 1, rate, r.cpu_s * 1e6 / (double)opt.records);
    m->rate[v][m->n[v]] = rate;
    m->cpu[v][m->n[v]++] = r.cpu_s * 1e6 / (double)opt.records;
}

static void matrix_report(const struct matrix *m)
{
    for (int v = 0; v < NVARIANTS; v++) {
        char name[96];
        snprintf(name, sizeof name, "%s_%s", m->emu, variants[v].name);
        if (!m->available[v]) {
            continue;
        }
        if (m->failed[v] || m->n[v] == 0) {
            emit(name, variants[v].impl, 0, "records/s"); /* FAILED */
            continue;
        }
        emit(name, variants[v].impl, median(m->rate[v], m->n[v]), "records/s");
    }
    for (int v = 0; v < NVARIANTS; v++) {
        char name[96];
        snprintf(name, sizeof name, "%s_%s_cpu", m->emu, variants[v].name);
        if (m->available[v] && !m->failed[v] && m->n[v] > 0) {
            emit(name, variants[v].impl, median(m->cpu[v], m->n[v]), "us/record");
        }
    }
}

static bool reference_available(enum variant v)
{
    char path[PATH_MAX];
    if (v == BOTO3) {
        if (system("/usr/bin/python3 -c 'import boto3' >/dev/null 2>&1") != 0) {
            note("boto3: /usr/bin/python3 cannot import boto3 (python3-boto3), not measured");
            return false;
        }
        return true;
    }
    snprintf(path, sizeof path, "%s/.peers/node_modules/@aws-sdk/client-kinesis/package.json",
             root);
    if (system("node --version >/dev/null 2>&1") != 0 || access(path, R_OK) != 0) {
        note("node_kpl: node or %s missing (scripts/setup), not measured", path);
        return false;
    }
    return true;
}

/* A first run nobody measures: the emulator's JIT warms up on both
 * aggregated and plain records, so the first variant measured does not
 * pay for it. */
static void warm_up(struct matrix *m)
{
    struct run r = {0};
    for (int agg = 1; agg >= 0; agg--) {
        size_t n = opt.records < 2000 ? opt.records : 2000;
        struct cn_kinesis_producer_config c = producer_config(m->url);
        c.aggregation = agg ? CN_KINESIS_ON : CN_KINESIS_OFF;
        struct cn_kinesis_producer *p;
        const char *stream = agg ? "bench-warm-up-agg" : "bench-warm-up-plain";
        if (stream_create(m->kc, stream, 1) < 0) {
            return;
        }
        if (cn_kinesis_producer_new(&p, &c) == 0) {
            put_fire_and_forget(p, stream, agg ? n : n / 4, cn_now() + m->limit_ms, &r);
            cn_kinesis_producer_close(p, cn_now() + 5000);
        }
        stream_delete(m->kc, stream);
    }
}

/* The k-th variant to run in a round. Kinesalite: all of them in an order
 * that rotates each round. kinesis-mock (one round): the aggregated ones
 * first, then the plain ones, which take it minutes, may run into the time
 * limit and leave it busy with what they had sent. */
static enum variant variant_at(const struct matrix *m, int k, int round)
{
    static const enum variant mock_order[NVARIANTS] = {CONFIRMED, FIRE_AND_FORGET, NODE_KPL, NOAGG,
                                                       BOTO3};
    if (m->emulator->kind == CN_EMU_KINESIS_MOCK) {
        return mock_order[k];
    }
    return (enum variant)((k + round) % NVARIANTS);
}

/* Every variant every round (see variant_at). Returns 1 if a coronet
 * variant lost or failed a record (a run past its time limit is reported,
 * but it is the emulator's pace, not a wrong result). */
static int matrix(struct matrix *m)
{
    for (int v = 0; v < NVARIANTS; v++) {
        m->available[v] = v < BOTO3 || reference_available((enum variant)v);
    }
    warm_up(m);
    for (int round = 0; round < m->rounds; round++) {
        for (int k = 0; k < NVARIANTS; k++) {
            enum variant v = variant_at(m, k, round);
            if (v < NVARIANTS && m->available[v] && !m->failed[v]) {
                matrix_run(m, v, round);
            }
        }
    }
    matrix_report(m);
    return m->broken[CONFIRMED] || m->broken[FIRE_AND_FORGET] || m->broken[NOAGG];
}

/* ---- latency ----------------------------------------------------------------------------- */

struct latency {
    size_t n;
    uint64_t *put_ns; /* by record index (id - 1) */
    double *ms;       /* put to outcome */
    size_t done, failed;
};

static void latency_outcome(void *arg, struct cn_kinesis_outcome_handle *h,
                            const struct cn_kinesis_outcome *o)
{
    struct latency *L = arg;
    (void)h;
    if (o->id < 1 || o->id > L->n) {
        return;
    }
    L->ms[L->done++] = (double)(uv_hrtime() - L->put_ns[o->id - 1]) / 1e6;
    L->failed += o->code != 0;
}

static double percentile(const double *sorted, size_t n, double q)
{
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return n ? sorted[i < n ? i : n - 1] : 0;
}

/* 1 ms apart into a 2-shard stream; p50 and p99 put to outcome. */
static int latency_case(struct cn_kinesis_client *kc, const char *url, int64_t buffered_ms,
                        const char *name)
{
    char stream[64];
    snprintf(stream, sizeof stream, "bench-latency-%lld", (long long)buffered_ms);
    struct latency L = {.n = opt.latency_records};
    L.put_ns = calloc(L.n, sizeof *L.put_ns);
    L.ms = calloc(L.n, sizeof *L.ms);
    struct cn_kinesis_producer_config c = producer_config(url);
    c.record_max_buffered_time_ms = buffered_ms;
    c.on_outcome = latency_outcome;
    c.on_outcome_arg = &L;
    struct cn_kinesis_producer *p = NULL;
    int rc = L.put_ns && L.ms ? stream_create(kc, stream, 2) : -ENOMEM;
    rc = rc < 0 ? rc : cn_kinesis_producer_new(&p, &c);
    int64_t start = cn_now();
    for (size_t i = 0; rc == 0 && i < L.n; i++) {
        cn_sleep_until(start + (int64_t)i);
        L.put_ns[i] = uv_hrtime();
        rc = cn_kinesis_put(p, stream, keys[i], record_data(i), RECORD_SIZE, NULL, NULL, -1);
    }
    rc = rc < 0 ? rc : cn_kinesis_producer_flush(p, cn_now() + 60000);
    cn_kinesis_producer_close(p, cn_now() + 5000);
    if (rc == 0 && (L.done != L.n || L.failed)) {
        rc = -EIO;
    }
    if (rc == 0) {
        char label[96];
        qsort(L.ms, L.n, sizeof *L.ms, cmp_double);
        snprintf(label, sizeof label, "%s_p50", name);
        emit(label, "coronet", percentile(L.ms, L.n, 0.50), "ms");
        snprintf(label, sizeof label, "%s_p99", name);
        emit(label, "coronet", percentile(L.ms, L.n, 0.99), "ms");
    } else {
        note("%s FAILED: %s (%zu outcomes, %zu failed)", name, cn_err_name(rc), L.done, L.failed);
    }
    stream_delete(kc, stream);
    free(L.put_ns);
    free(L.ms);
    return rc < 0;
}

/* ---- limiter behind the throttling proxy ---------------------------------------------------- */

struct proxy {
    pid_t pid;
    int fd; /* its stdout */
    char out[2048];
    size_t len;
    char url[64];
};

static int proxy_start(struct proxy *px, const char *path, const char *upstream)
{
    char *argv[] = {(char *)path, "--upstream", (char *)upstream, "--port", "0", "--limit", NULL};
    px->len = 0;
    px->pid = child_start(argv, &px->fd);
    if (px->pid < 0) {
        return -1;
    }
    for (int64_t until = cn_now() + 10000; cn_now() < until; cn_sleep(10)) {
        drain(px->fd, px->out, sizeof px->out, &px->len);
        const char *line = strstr(px->out, "listening on ");
        const char *colon = line ? strchr(line, ':') : NULL;
        if (colon && strchr(colon, '\n')) {
            snprintf(px->url, sizeof px->url, "http://127.0.0.1:%d", atoi(colon + 1));
            return 0;
        }
    }
    note("limiter: the proxy did not say where it listens (%.200s)", px->out);
    kill(px->pid, SIGKILL);
    waitpid(px->pid, NULL, 0);
    close(px->fd);
    return -1;
}

/* SIGTERM; its last line is JSON stats with "entries" and "throttled_entries". */
static void proxy_stop(struct proxy *px, double *entries, double *throttled)
{
    kill(px->pid, SIGTERM);
    int status;
    for (int64_t until = cn_now() + 5000; waitpid(px->pid, &status, WNOHANG) != px->pid;
         cn_sleep(10)) {
        if (cn_now() >= until) {
            kill(px->pid, SIGKILL);
            waitpid(px->pid, &status, 0);
            break;
        }
    }
    drain(px->fd, px->out, sizeof px->out, &px->len);
    close(px->fd);
    const char *stats = strstr(px->out, "\"throttled_entries\"");
    while (stats && stats > px->out && stats[-1] != '\n') {
        stats--;
    }
    *entries = stats ? json_number(stats, "entries") : -1;
    *throttled = stats ? json_number(stats, "throttled_entries") : -1;
}

struct offer {
    struct cn_kinesis_producer *p;
    const char *stream;
    int64_t until; /* loop clock */
    size_t put;
};

/* Puts as fast as the producer takes them (put parks on backpressure)
 * until the time is up: always more than the limit lets through. */
static void offer_load(struct offer *o)
{
    for (size_t i = 0; cn_now() < o->until; i++) {
        size_t k = i % nkeys;
        if (cn_kinesis_put(o->p, o->stream, keys[k], record_data(k), RECORD_SIZE, NULL, NULL,
                           o->until) < 0) {
            break;
        }
        o->put++;
    }
}

/* The rate over seconds [from, to) of the run, per shard, with the
 * second-by-second arrivals on stderr. */
static void limiter_report(const char *name, const struct tally *t, int nshards, int from, int to,
                           bool aggregation)
{
    for (int s = 0; s < nshards; s++) {
        char label[96], trace[512];
        size_t len = 0;
        uint64_t nrec = 0, nbytes = 0;
        for (int k = 0; k < to && k < MAX_SECS; k++) {
            len += (size_t)snprintf(
                trace + len, sizeof trace - len, " %llu",
                (unsigned long long)(aggregation ? t[s].sec_bytes[k] / 1024 : t[s].sec_records[k]));
            len = len < sizeof trace ? len : sizeof trace - 1;
            nrec += k >= from ? t[s].sec_records[k] : 0;
            nbytes += k >= from ? t[s].sec_bytes[k] : 0;
        }
        double recs = (double)nrec / (to - from), bytes = (double)nbytes / (to - from);
        note("%s shard %d: %.0f records/s (%.2f of 1,000), %.0f bytes/s (%.2f of 1 MiB) over "
             "seconds %d-%d; %s per second:%s",
             name, s, recs, recs / 1000, bytes, bytes / 1048576, from, to,
             aggregation ? "KiB" : "records", trace);
        snprintf(label, sizeof label, "%s_shard%d_%s", name, s, aggregation ? "bytes" : "records");
        emit(label, "coronet", aggregation ? bytes / 1048576 : recs / 1000, "x limit");
    }
}

static int limiter_case(struct cn_kinesis_client *kc, const char *proxy_path, const char *emu_url,
                        bool aggregation)
{
    const char *name = aggregation ? "kinesalite_limiter_agg" : "kinesalite_limiter_noagg";
    const char *stream = aggregation ? "bench-limit-agg" : "bench-limit-noagg";
    struct proxy px = {0};
    if (stream_create(kc, stream, 2) < 0) {
        return 1;
    }
    if (proxy_start(&px, proxy_path, emu_url) < 0) {
        stream_delete(kc, stream);
        return 1;
    }
    struct cn_kinesis_producer_config c = producer_config(px.url);
    c.rate_limit = CN_KINESIS_ON;
    c.rate_limit_percent = 100;
    c.aggregation = aggregation ? CN_KINESIS_ON : CN_KINESIS_OFF;
    c.record_ttl_ms = 30000;
    struct cn_kinesis_producer *p;
    int rc = cn_kinesis_producer_new(&p, &c);
    struct cn_kinesis_producer_counters k = {0};
    int64_t wall0 = wall_ms();
    if (rc == 0) {
        struct offer o = {.p = p, .stream = stream, .until = cn_now() + opt.limiter_secs * 1000};
        offer_load(&o);
        cn_kinesis_producer_counters(p, &k);
        cn_kinesis_producer_close(p, cn_now()); /* what is left is not measured */
    }
    double entries, throttled;
    proxy_stop(&px, &entries, &throttled);
    struct tally t[2] = {{.t0_ms = wall0}, {.t0_ms = wall0}};
    int nshards = rc == 0 ? read_stream(kc, stream, t, 2, cn_now() + 120000) : rc;
    stream_delete(kc, stream);
    if (nshards != 2) {
        note("%s FAILED: %s", name, cn_err_name(rc < 0 ? rc : nshards));
        return 1;
    }
    note("%s: %llu records succeeded, %llu throttled, %llu waited for the limiter; the proxy "
         "saw %.0f entries and throttled %.0f",
         name, (unsigned long long)k.succeeded, (unsigned long long)k.throttled,
         (unsigned long long)k.limited, entries, throttled);
    /* The buckets start full (a second's worth of burst) and kinesalite
     * takes a second or two to work through it: the first three seconds
     * are left out. */
    int from = opt.limiter_secs > 6 ? 3 : 1;
    limiter_report(name, t, 2, from, opt.limiter_secs, aggregation);
    char label[96];
    snprintf(label, sizeof label, "%s_throttled", name);
    emit(label, "coronet", throttled, "entries");
    return 0;
}

static int limiter(struct cn_kinesis_client *kc, const char *emu_url)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/../tests/kinesis/kinesis-fault-proxy", self_dir);
    if (access(path, X_OK) != 0) {
        note("limiter: skipped, %s is not built", path);
        return 0;
    }
    return limiter_case(kc, path, emu_url, false) | limiter_case(kc, path, emu_url, true);
}

/* ---- one emulator ------------------------------------------------------------------------------
 */

struct emu_job {
    struct cn_emu emu;
    const char *name; /* in case names */
    int rc;
};

static int emulator_main(void *arg)
{
    struct emu_job *job = arg;
    struct cn_kinesis_client_opts co = client_opts(job->emu.url);
    co.max_conns = 4;
    struct matrix m = {.emu = job->name, .emulator = &job->emu, .url = job->emu.url};
    int rc = cn_kinesis_client_new(&m.kc, &co);
    if (rc < 0) {
        note("%s: client: %s", job->name, cn_err_name(rc));
        return 1;
    }
    bool mock = job->emu.kind == CN_EMU_KINESIS_MOCK;
    /* kinesis-mock takes about a second per MiB of body, and longer per
     * record the more a shard holds (20,000 plain records take minutes):
     * one round, and a time limit after which a run counts as failed, so
     * the whole bench stays near 5 minutes */
    m.rounds = mock ? 1 : opt.rounds;
    m.limit_ms = mock ? 45000 : 60000;
    if (wanted("matrix")) {
        rc |= matrix(&m);
    }
    if (!mock && wanted("latency")) {
        rc |= latency_case(m.kc, job->emu.url, 0, "kinesalite_latency");
        rc |= latency_case(m.kc, job->emu.url, 1, "kinesalite_latency_buffer1ms");
    }
    if (!mock && wanted("limiter") && opt.limiter_secs > 0) {
        rc |= limiter(m.kc, job->emu.url);
    }
    cn_kinesis_client_close(m.kc);
    return rc;
}

/* Starts the emulator, runs its cases, stops it. 0, 1 (a coronet case
 * failed) or 77 (not installed). */
static int on_emulator(enum cn_emu_kind kind, const char *name)
{
    char why[700];
    if (opt.emulator && strcmp(opt.emulator, name) != 0) {
        return 0;
    }
    if (!cn_emu_available(kind, why, sizeof why)) {
        note("%s: skipped: %s", name, why);
        return 77;
    }
    struct emu_job job = {.name = name};
    cn_emu_start(&job.emu, kind);
    int rc = cn_run(emulator_main, &job);
    cn_emu_stop(&job.emu);
    return rc == 0 ? 0 : 1;
}

/* ---- the producer's ceiling
 * ---------------------------------------------------------------------- */

struct ceiling {
    struct kinesis_endpoint *ep;
    double rate[2][MAX_ROUNDS], cpu[2][MAX_ROUNDS], cpu_process[2][MAX_ROUNDS];
    int n[2];
    bool failed;
};

static int ceiling_run(struct ceiling *cl, bool aggregation)
{
    struct cn_kinesis_producer_config c = producer_config(kinesis_endpoint_url(cl->ep));
    c.aggregation = aggregation ? CN_KINESIS_ON : CN_KINESIS_OFF;
    struct cn_kinesis_producer *p;
    int rc = cn_kinesis_producer_new(&p, &c);
    if (rc < 0) {
        return rc;
    }
    size_t n = opt.ceiling_records;
    int64_t deadline = cn_now() + 120000;
    double t0 = now_s(), c0 = thread_cpu_s(), p0 = process_cpu_s();
    double e0 = kinesis_endpoint_cpu_seconds(cl->ep);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = cn_kinesis_put(p, "bench", keys[i], record_data(i), RECORD_SIZE, NULL, NULL, deadline);
    }
    rc = rc < 0 ? rc : cn_kinesis_producer_flush(p, deadline);
    double secs = now_s() - t0, cpu = thread_cpu_s() - c0;
    double proc = process_cpu_s() - p0 - (kinesis_endpoint_cpu_seconds(cl->ep) - e0);
    struct cn_kinesis_producer_counters k;
    cn_kinesis_producer_counters(p, &k);
    cn_kinesis_producer_close(p, cn_now() + 5000);
    if (rc < 0 || k.succeeded != n) {
        note("ceiling_%s FAILED: %s, %llu of %zu succeeded", aggregation ? "agg" : "noagg",
             cn_err_name(rc), (unsigned long long)k.succeeded, n);
        return rc < 0 ? rc : -EIO;
    }
    int a = aggregation;
    note("ceiling_%s: %.0f records/s, %.3f us CPU/record (process minus endpoint %.3f), %llu "
         "requests",
         a ? "agg" : "noagg", (double)n / secs, cpu * 1e6 / (double)n, proc * 1e6 / (double)n,
         (unsigned long long)k.requests);
    cl->rate[a][cl->n[a]] = (double)n / secs;
    cl->cpu[a][cl->n[a]] = cpu * 1e6 / (double)n;
    cl->cpu_process[a][cl->n[a]++] = proc * 1e6 / (double)n;
    return 0;
}

static int ceiling_main(void *arg)
{
    struct ceiling *cl = arg;
    for (int round = 0; round < opt.ceiling_rounds && !cl->failed; round++) {
        for (int k = 0; k < 2 && !cl->failed; k++) {
            cl->failed = ceiling_run(cl, (k + round) % 2 == 0) < 0;
        }
    }
    return 0;
}

static int ceiling(void)
{
    struct ceiling cl = {0};
    int rc = kinesis_endpoint_start(&cl.ep, 4);
    if (rc < 0) {
        note("ceiling: the endpoint did not start: %s", cn_err_name(rc));
        return 1;
    }
    cn_run(ceiling_main, &cl);
    struct kinesis_endpoint_stats st;
    kinesis_endpoint_stats(cl.ep, &st);
    note("ceiling: the endpoint answered %llu PutRecords with %llu entries",
         (unsigned long long)st.put_records, (unsigned long long)st.entries);
    kinesis_endpoint_stop(cl.ep);
    static const char *const names[2] = {"ceiling_noagg", "ceiling_agg"};
    for (int a = 1; a >= 0; a--) {
        char label[64];
        if (cl.failed || cl.n[a] == 0) {
            emit(names[a], "coronet", 0, "records/s");
            continue;
        }
        emit(names[a], "coronet", median(cl.rate[a], cl.n[a]), "records/s");
        snprintf(label, sizeof label, "%s_cpu", names[a]);
        emit(label, "coronet", median(cl.cpu[a], cl.n[a]), "us/record");
        snprintf(label, sizeof label, "%s_cpu_process", names[a]);
        emit(label, "coronet", median(cl.cpu_process[a], cl.n[a]), "us/record");
    }
    return cl.failed;
}

/* ---- main
 * ---------------------------------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: bench-kinesis [--quick] [--section ceiling|matrix|latency|limiter]\n"
                    "                     [--emulator kinesalite|kinesis_mock] [--records N]\n"
                    "                     [--rounds N]\n");
    return 2;
}

static int parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (strcmp(a, "--quick") == 0) {
            opt.quick = true;
        } else if (strcmp(a, "--section") == 0 && more) {
            opt.section = argv[++i];
        } else if (strcmp(a, "--emulator") == 0 && more) {
            opt.emulator = argv[++i];
        } else if (strcmp(a, "--records") == 0 && more) {
            opt.records = (size_t)atol(argv[++i]);
        } else if (strcmp(a, "--rounds") == 0 && more) {
            opt.rounds = atoi(argv[++i]);
        } else {
            return -1;
        }
    }
    if (opt.quick) {
        opt.records = 300;
        opt.rounds = 1;
        opt.ceiling_records = 20000;
        opt.ceiling_rounds = 1;
        opt.latency_records = 50;
        opt.limiter_secs = 2;
        opt.emulator = opt.emulator ? opt.emulator : "kinesalite";
    }
    return opt.records > 0 && opt.rounds >= 1 && opt.rounds <= MAX_ROUNDS ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *q = getenv("CN_BENCH_QUICK");
    opt.quick = q && strcmp(q, "0") != 0;
    if (parse_args(argc, argv) < 0) {
        return usage();
    }
    signal(SIGPIPE, SIG_IGN);
    ssize_t n = readlink("/proc/self/exe", self_dir, sizeof self_dir - 1);
    if (n <= 0) {
        return 1;
    }
    self_dir[n] = '\0';
    *strrchr(self_dir, '/') = '\0';
    setenv("CN_SOURCE_ROOT", CN_SOURCE_ROOT, 0); /* emulator.h and the peers read it */
    root = getenv("CN_SOURCE_ROOT");
    setenv("NODE_NO_WARNINGS", "1", 1); /* the AWS SDK's Node version notice */
    size_t most = opt.records > opt.ceiling_records ? opt.records : opt.ceiling_records;
    if (records_init(most > opt.latency_records ? most : opt.latency_records) < 0) {
        note("out of memory");
        return 1;
    }
    int rc = 0;
    if (wanted("ceiling")) {
        rc |= ceiling();
    }
    int lite = wanted("matrix") || wanted("latency") || wanted("limiter")
                   ? on_emulator(CN_EMU_KINESALITE, "kinesalite")
                   : 0;
    int mock = wanted("matrix") ? on_emulator(CN_EMU_KINESIS_MOCK, "kinesis_mock") : 0;
    if (opt.quick && lite == 77) {
        return 77; /* the smoke test needs kinesalite */
    }
    rc |= (lite == 1) | (mock == 1);
    free(keys);
    return rc;
}
