/* SPDX-License-Identifier: MIT */
/*
 * The runtime benchmarks. Takes no arguments and prints one JSON object per
 * line, the format every coronet benchmark binary shares and scripts/bench
 * tabulates:
 *
 *   {"bench": "runtime", "case": "switch", "impl": "coronet", "value": 4.2, "unit": "ns"}
 *
 * Cases (each reference is measured in the same run, on the same machine):
 *   switch            ns per one-way switch. coronet = cn__ctx_switch of the
 *                     configured back end between two bare contexts;
 *                     ucontext = swapcontext; boost_context = Boost.Context's
 *                     fcontext jump (bench/peers/boost_switch.cpp, if built).
 *   yield             ns per cn_yield, two coroutines yielding in turn.
 *   spawn_join        ns per cn_spawn + cn_join of an empty coroutine (the
 *                     stack comes from the pool after the first round).
 *   chan_pingpong     ns per message, two coroutines bouncing an int over two
 *                     unbuffered channels; chan_pingpong_cap1 the same with
 *                     capacity-1 channels.
 *   offload_roundtrip us per cn_offload of an empty function.
 *   bridge_roundtrip  us per cn_bridge_call of an empty function from another
 *                     thread.
 *   parked_rss        bytes of resident memory per coroutine, over 100,000
 *                     coroutines parked in cn_event_wait with a deadline (a
 *                     waiter and a deadline-heap entry each, like an idle
 *                     connection with a timeout).
 *
 * Timings are the best of several runs (medians for the thread round trips,
 * whose noise is not one-sided); iteration counts are fixed so the whole run
 * stays well under a minute. A reference that cannot be measured prints no
 * line at all rather than a made-up value. CN_BENCH_QUICK=1 in the
 * environment shrinks every count, which is how the test suite smoke-tests
 * this program.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "coronet/coronet.h"
#include "runtime/ctx.h"

#if defined(CN_HAVE_BOOST_CONTEXT)
/* bench/peers/boost_switch.cpp: ns per one-way fcontext jump, or < 0. */
double cn_bench_boost_switch_ns(long iters, int runs);
#endif

#define BENCH_STACK (64 * 1024)

static bool quick; /* CN_BENCH_QUICK: tiny counts for the smoke test */

static long count(long full)
{
    return quick ? (full / 1000 > 10 ? full / 1000 : 10) : full;
}

static int runs(int full)
{
    return quick ? 1 : full;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void emit(const char *bench_case, const char *impl, double value, const char *unit)
{
    printf("{\"bench\": \"runtime\", \"case\": \"%s\", \"impl\": \"%s\", \"value\": %.*f, "
           "\"unit\": \"%s\"}\n",
           bench_case, impl, value >= 100 ? 0 : 2, value, unit);
    fflush(stdout);
}

static void note(const char *msg)
{
    fprintf(stderr, "bench-runtime: %s\n", msg);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- switch: coronet's back end -------------------------------------------- */

static struct cn__ctx sw_main;
static struct cn__ctx sw_co;

static void sw_entry(void *arg)
{
    (void)arg;
    for (;;) {
        cn__ctx_switch(&sw_co, &sw_main);
    }
}

static void bench_switch_coronet(void)
{
    void *stack =
        mmap(NULL, BENCH_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED) {
        return;
    }
    cn__ctx_make(&sw_co, stack, BENCH_STACK, sw_entry, NULL);
    cn__ctx_switch(&sw_main, &sw_co); /* warm up: first entry */
    long n = count(2000000);
    double best = 1e300;
    for (int r = 0; r < runs(7); r++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++) {
            cn__ctx_switch(&sw_main, &sw_co);
        }
        double per = (now_ns() - t0) / (2.0 * (double)n);
        best = per < best ? per : best;
    }
    /* The coroutine stays parked in sw_entry for good. */
    munmap(stack, BENCH_STACK);
    emit("switch", "coronet", best, "ns");
}

/* ---- switch: ucontext (swapcontext) ---------------------------------------- */

static ucontext_t uc_main;
static ucontext_t uc_co;

static void uc_entry(void)
{
    for (;;) {
        swapcontext(&uc_co, &uc_main);
    }
}

static void bench_switch_ucontext(void)
{
    void *stack =
        mmap(NULL, BENCH_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED || getcontext(&uc_co) != 0) {
        return;
    }
    uc_co.uc_stack.ss_sp = stack;
    uc_co.uc_stack.ss_size = BENCH_STACK;
    uc_co.uc_link = NULL;
    makecontext(&uc_co, uc_entry, 0);
    if (swapcontext(&uc_main, &uc_co) != 0) {
        munmap(stack, BENCH_STACK);
        return;
    }
    long n = count(200000);
    double best = 1e300;
    for (int r = 0; r < runs(5); r++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++) {
            swapcontext(&uc_main, &uc_co);
        }
        double per = (now_ns() - t0) / (2.0 * (double)n);
        best = per < best ? per : best;
    }
    munmap(stack, BENCH_STACK);
    emit("switch", "ucontext", best, "ns");
}

static void bench_switch_boost(void)
{
#if defined(CN_HAVE_BOOST_CONTEXT)
    double ns = cn_bench_boost_switch_ns(count(2000000), runs(7));
    if (ns > 0) {
        emit("switch", "boost_context", ns, "ns");
    }
#else
    note("switch/boost_context: not built (no C++ compiler or Boost.Context)");
#endif
}

/* ---- yield ----------------------------------------------------------------- */

struct yield_arg {
    long n;
};

static int yielder(void *arg)
{
    struct yield_arg *y = arg;
    for (long i = 0; i < y->n; i++) {
        if (cn_yield() < 0) {
            return 1;
        }
    }
    return 0;
}

static int yield_main(void *arg)
{
    double *best = arg;
    struct yield_arg y = {count(1000000)};
    for (int r = 0; r < runs(5); r++) {
        struct cn_co *co;
        if (cn_spawn(&co, yielder, &y, NULL) < 0) {
            return 1;
        }
        double t0 = now_ns();
        int rc = yielder(&y);
        double per = (now_ns() - t0) / (2.0 * (double)y.n);
        int co_rc = 0;
        if (rc != 0 || cn_join(co, &co_rc, -1) < 0 || co_rc != 0) {
            return 1;
        }
        *best = per < *best ? per : *best;
    }
    return 0;
}

/* ---- spawn + join ---------------------------------------------------------- */

static int empty_co(void *arg)
{
    (void)arg;
    return 0;
}

static int spawn_join_main(void *arg)
{
    double *best = arg;
    long n = count(200000);
    for (int r = 0; r < runs(5); r++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++) {
            struct cn_co *co;
            if (cn_spawn(&co, empty_co, NULL, NULL) < 0 || cn_join(co, NULL, -1) < 0) {
                return 1;
            }
        }
        double per = (now_ns() - t0) / (double)n;
        *best = per < *best ? per : *best;
    }
    return 0;
}

/* ---- channel ping-pong ----------------------------------------------------- */

struct pingpong {
    struct cn_chan *ping;
    struct cn_chan *pong;
    size_t capacity;
    long n;
    double best;
};

static int ponger(void *arg)
{
    struct pingpong *p = arg;
    int v;
    while (cn_chan_recv(p->ping, &v, -1) == 0) {
        if (cn_chan_send(p->pong, &v, -1) < 0) {
            return 1;
        }
    }
    return 0;
}

static int pingpong_main(void *arg)
{
    struct pingpong *p = arg;
    int rc = 1;
    struct cn_co *co = NULL;
    if (cn_chan_new(&p->ping, sizeof(int), p->capacity) < 0) {
        return 1;
    }
    if (cn_chan_new(&p->pong, sizeof(int), p->capacity) < 0) {
        goto out_ping;
    }
    if (cn_spawn(&co, ponger, p, NULL) < 0) {
        goto out_pong;
    }
    for (int r = 0; r < runs(5); r++) {
        double t0 = now_ns();
        for (int i = 0; i < p->n; i++) {
            int v = i;
            if (cn_chan_send(p->ping, &v, -1) < 0 || cn_chan_recv(p->pong, &v, -1) < 0 || v != i) {
                goto out_join;
            }
        }
        double per = (now_ns() - t0) / (2.0 * (double)p->n);
        p->best = per < p->best ? per : p->best;
    }
    rc = 0;
out_join:
    cn_chan_close(p->ping);
    cn_join(co, NULL, -1);
out_pong:
    cn_chan_free(p->pong);
out_ping:
    cn_chan_free(p->ping);
    return rc;
}

/* ---- offload --------------------------------------------------------------- */

static int offload_main(void *arg)
{
    double *med = arg;
    enum { RUNS = 5 };
    double per[RUNS];
    long n = count(20000);
    int nruns = runs(RUNS);
    for (int r = 0; r < nruns; r++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++) {
            if (cn_offload(empty_co, NULL, -1) != 0) {
                return 1;
            }
        }
        per[r] = (now_ns() - t0) / (double)n / 1000.0;
    }
    *med = median(per, nruns);
    return 0;
}

/* ---- bridge ---------------------------------------------------------------- */

struct bridge_bench {
    struct cn_bridge *bridge;
    struct cn_event done;
    long n;
    int nruns;
    double per[5];
    int failed;
};

static int set_done(void *arg)
{
    cn_event_set(arg);
    return 0;
}

static void *bridge_thread(void *arg)
{
    struct bridge_bench *b = arg;
    for (int r = 0; r < b->nruns; r++) {
        double t0 = now_ns();
        for (long i = 0; i < b->n; i++) {
            int result = -1;
            if (cn_bridge_call(b->bridge, empty_co, NULL, &result) != 0 || result != 0) {
                b->failed = 1;
                break;
            }
        }
        b->per[r] = (now_ns() - t0) / (double)b->n / 1000.0;
    }
    int ignored;
    if (cn_bridge_call(b->bridge, set_done, &b->done, &ignored) != 0) {
        b->failed = 1;
    }
    return NULL;
}

static int bridge_main(void *arg)
{
    struct bridge_bench *b = arg;
    pthread_t tid;
    if (cn_bridge_open(&b->bridge) != 0) {
        return 1;
    }
    int rc = 1;
    if (pthread_create(&tid, NULL, bridge_thread, b) == 0) {
        /* The thread's last call sets the event, so this wait ends even if
         * its earlier calls failed; joining then blocks only for the
         * thread's return. */
        rc = cn_event_wait(&b->done, -1);
        pthread_join(tid, NULL);
    }
    cn_bridge_close(b->bridge);
    return rc != 0 || b->failed;
}

/* ---- resident memory per parked coroutine ---------------------------------- */

struct parked {
    struct cn_event ev;
    struct cn_co **cos;
    long n;
    long spawned;
};

static long rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) {
        return -1;
    }
    int got = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    return got == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

static int park_one(void *arg)
{
    struct parked *p = arg;
    int64_t an_hour = 3600 * 1000;
    int rc = cn_event_wait(&p->ev, cn_now() + an_hour);
    return rc == 0 ? 0 : 1;
}

static int parked_main(void *arg)
{
    struct parked *p = arg;
    /* Everything the measurement itself needs is touched before the first
     * reading. */
    memset(p->cos, 0, (size_t)p->n * sizeof p->cos[0]);
    long before = rss_bytes();
    for (p->spawned = 0; p->spawned < p->n; p->spawned++) {
        if (cn_spawn(&p->cos[p->spawned], park_one, p, NULL) < 0) {
            break;
        }
    }
    cn_yield(); /* every new coroutine runs until it parks */
    long after = rss_bytes();
    cn_event_set(&p->ev);
    int failed = 0;
    for (long i = 0; i < p->spawned; i++) {
        int result = 1;
        if (cn_join(p->cos[i], &result, -1) < 0 || result != 0) {
            failed = 1;
        }
    }
    if (before < 0 || after < 0 || failed) {
        return 1;
    }
    if (p->spawned < p->n) {
        fprintf(stderr,
                "bench-runtime: parked_rss: only %ld of %ld coroutines could be spawned "
                "(vm.max_map_count?); not reported\n",
                p->spawned, p->n);
        return 1;
    }
    emit("parked_rss", "coronet", (double)(after - before) / (double)p->spawned, "bytes");
    return 0;
}

static void bench_parked_rss(void)
{
    struct parked p = {CN_EVENT_INIT, NULL, count(100000), 0};
    p.cos = malloc((size_t)p.n * sizeof p.cos[0]);
    if (p.cos == NULL) {
        return;
    }
    if (cn_run(parked_main, &p) != 0) {
        note("parked_rss: failed");
    }
    free(p.cos);
}

/* ---- driver ---------------------------------------------------------------- */

static void run_coro_case(const char *bench_case, cn_fn fn, void *arg, const double *value,
                          const char *unit)
{
    int rc = cn_run(fn, arg);
    if (rc != 0) {
        fprintf(stderr, "bench-runtime: %s failed (%d %s)\n", bench_case, rc,
                rc < 0 ? cn_err_name(rc) : "");
        return;
    }
    emit(bench_case, "coronet", *value, unit);
}

int main(void)
{
    const char *q = getenv("CN_BENCH_QUICK");
    quick = q != NULL && q[0] != '\0' && strcmp(q, "0") != 0;

    /* First, while the process is small and no stack pool is warm. */
    bench_parked_rss();

    bench_switch_coronet();
    bench_switch_ucontext();
    bench_switch_boost();

    double yield_best = 1e300;
    run_coro_case("yield", yield_main, &yield_best, &yield_best, "ns");

    double spawn_best = 1e300;
    run_coro_case("spawn_join", spawn_join_main, &spawn_best, &spawn_best, "ns");

    struct pingpong pp0 = {NULL, NULL, 0, count(500000), 1e300};
    run_coro_case("chan_pingpong", pingpong_main, &pp0, &pp0.best, "ns");
    struct pingpong pp1 = {NULL, NULL, 1, count(500000), 1e300};
    run_coro_case("chan_pingpong_cap1", pingpong_main, &pp1, &pp1.best, "ns");

    double offload_med = 0;
    run_coro_case("offload_roundtrip", offload_main, &offload_med, &offload_med, "us");

    struct bridge_bench bb = {NULL, CN_EVENT_INIT, count(20000), runs(5), {0}, 0};
    double bridge_med = 0;
    if (cn_run(bridge_main, &bb) == 0) {
        bridge_med = median(bb.per, bb.nruns);
        emit("bridge_roundtrip", "coronet", bridge_med, "us");
    } else {
        note("bridge_roundtrip failed");
    }
    return 0;
}
