/* SPDX-License-Identifier: MIT */
/* The bridge: threads outside the loop run coroutines on it. */
#include "test.h"

#include <pthread.h>

static uv_thread_t loop_thread;

struct add_args {
    int64_t a;
    int64_t b;
    int64_t sum;
};

static int add_on_loop(void *arg)
{
    struct add_args *x = arg;
    uv_thread_t self = uv_thread_self();
    CN_ASSERT(uv_thread_equal(&self, &loop_thread));
    CN_ASSERT(cn_self() != NULL);
    x->sum = x->a + x->b;
    return (int)(x->sum & 0xffff);
}

enum { THREADS = 8, CALLS = 10000 };

struct worker {
    struct cn_bridge *bridge;
    int id;
    int64_t total;
    int failures;
};

static void worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < CALLS; i++) {
        struct add_args x = {w->id * 1000000 + i, 1, 0};
        int result = -1;
        int rc = cn_bridge_call(w->bridge, add_on_loop, &x, &result);
        if (rc != 0 || x.sum != x.a + 1 || result != (int)(x.sum & 0xffff)) {
            w->failures++;
        }
        w->total += x.sum;
    }
}

struct many {
    struct worker workers[THREADS];
};

static int start_and_wait_workers(void *arg)
{
    struct many *m = arg;
    uv_thread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        CN_ASSERT_EQ(uv_thread_create(&threads[i], worker_main, &m->workers[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        CN_ASSERT_EQ(uv_thread_join(&threads[i]), 0);
    }
    return 0;
}

static int many_main(void *arg)
{
    struct many *m = arg;
    loop_thread = uv_thread_self();
    struct cn_bridge *b;
    CN_ASSERT_EQ(cn_bridge_open(&b), 0);
    for (int i = 0; i < THREADS; i++) {
        m->workers[i] = (struct worker){b, i, 0, 0};
    }
    /* The workers block their threads, so start and join them from the
     * pool while this loop serves their calls. */
    CN_ASSERT_EQ(cn_offload(start_and_wait_workers, m, -1), 0);
    cn_bridge_close(b);
    return 0;
}

static void stress_bridge_8_threads_10000_calls_each(void)
{
    static struct many m;
    CN_ASSERT_EQ(cn_test_run(many_main, &m), 0);
    for (int i = 0; i < THREADS; i++) {
        CN_ASSERT_EQ(m.workers[i].failures, 0);
        int64_t want = 0;
        for (int64_t k = 0; k < CALLS; k++) {
            want += i * 1000000 + k + 1;
        }
        CN_ASSERT_EQ(m.workers[i].total, want);
    }
}

static int sleepy(void *arg)
{
    /* The function may block the coroutine: it runs as one. */
    CN_ASSERT_EQ(cn_sleep(2), 0);
    return 99;
}

struct one_call {
    struct cn_bridge *bridge;
    int rc;
    int result;
};

static int call_from_pool(void *arg)
{
    struct one_call *c = arg;
    c->rc = cn_bridge_call(c->bridge, sleepy, NULL, &c->result);
    return 0;
}

static int blocking_fn_main(void *arg)
{
    struct one_call c = {NULL, -1, 0};
    CN_ASSERT_EQ(cn_bridge_open(&c.bridge), 0);
    CN_ASSERT_EQ(cn_offload(call_from_pool, &c, -1), 0);
    CN_ASSERT_EQ(c.rc, 0);
    CN_ASSERT_EQ(c.result, 99);
    cn_bridge_close(c.bridge);
    return 0;
}

static void bridged_function_may_block_as_a_coroutine(void)
{
    CN_ASSERT_EQ(cn_test_run(blocking_fn_main, NULL), 0);
}

static struct cn_event release = CN_EVENT_INIT;
static bool long_call_running;

static int wait_for_release(void *arg)
{
    long_call_running = true;
    CN_ASSERT_EQ(cn_event_wait(&release, -1), 0);
    return 7;
}

static int long_call_from_pool(void *arg)
{
    struct one_call *c = arg;
    c->rc = cn_bridge_call(c->bridge, wait_for_release, NULL, &c->result);
    return 0;
}

static int offload_long_call(void *arg)
{
    return cn_offload(long_call_from_pool, arg, -1);
}

static int close_bridge(void *arg)
{
    cn_bridge_close(arg);
    return 0;
}

static int refuse_main(void *arg)
{
    struct cn_bridge *b;
    CN_ASSERT_EQ(cn_bridge_open(&b), 0);
    struct one_call running = {b, -1, 0};
    struct cn_co *caller, *closer;
    CN_ASSERT_EQ(cn_spawn(&caller, offload_long_call, &running, NULL), 0);
    while (!long_call_running) {
        CN_ASSERT_EQ(cn_sleep(1), 0);
    }
    /* close waits for the running call; meanwhile new calls are refused */
    CN_ASSERT_EQ(cn_spawn(&closer, close_bridge, b, NULL), 0);
    CN_ASSERT_EQ(cn_yield(), 0);
    struct one_call late = {b, -1, 0};
    CN_ASSERT_EQ(cn_offload(call_from_pool, &late, -1), 0);
    CN_ASSERT_EQ(late.rc, CN_ECLOSED);
    cn_event_set(&release);
    CN_ASSERT_EQ(cn_join(caller, NULL, -1), 0);
    CN_ASSERT_EQ(running.rc, 0);
    CN_ASSERT_EQ(running.result, 7);
    CN_ASSERT_EQ(cn_join(closer, NULL, -1), 0);
    return 0;
}

static void bridge_refuses_calls_once_closing_and_finishes_running_ones(void)
{
    CN_ASSERT_EQ(cn_test_run(refuse_main, NULL), 0);
}

CN_TEST_MAIN(CN_CASE(stress_bridge_8_threads_10000_calls_each),
             CN_CASE(bridged_function_may_block_as_a_coroutine),
             CN_CASE(bridge_refuses_calls_once_closing_and_finishes_running_ones))
