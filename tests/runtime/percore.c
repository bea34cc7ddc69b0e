/* SPDX-License-Identifier: MIT */
/* Several threads, each with its own loop and scheduler, at the same time. */
#include "test.h"

enum { LOOPS = 4, MESSAGES = 20000 };

static int produce(void *arg)
{
    struct cn_chan *ch = arg;
    for (int i = 1; i <= MESSAGES; i++) {
        CN_ASSERT_EQ(cn_chan_send(ch, &i, -1), 0);
    }
    cn_chan_close(ch);
    return 0;
}

static int loop_main(void *arg)
{
    int64_t *sum = arg;
    struct cn_chan *ch;
    CN_ASSERT_EQ(cn_chan_new(&ch, sizeof(int), 16), 0);
    struct cn_co *producer;
    CN_ASSERT_EQ(cn_spawn(&producer, produce, ch, NULL), 0);
    int v;
    while (cn_chan_recv(ch, &v, -1) == 0) {
        *sum += v;
        if (v % 1000 == 0) {
            CN_ASSERT_EQ(cn_sleep(1), 0); /* timers per loop too */
        }
    }
    CN_ASSERT_EQ(cn_join(producer, NULL, -1), 0);
    cn_chan_free(ch);
    return 0;
}

struct per_thread {
    int64_t sum;
    int rc;
};

static void thread_main(void *arg)
{
    struct per_thread *t = arg;
    uv_loop_t loop;
    CN_ASSERT_EQ(uv_loop_init(&loop), 0);
    t->rc = cn_run_on(&loop, loop_main, &t->sum);
    CN_ASSERT_EQ(uv_loop_close(&loop), 0);
}

static void loops_on_four_threads_run_independently(void)
{
    struct per_thread t[LOOPS] = {{0, -1}};
    uv_thread_t threads[LOOPS];
    for (int i = 0; i < LOOPS; i++) {
        t[i].rc = -1;
        CN_ASSERT_EQ(uv_thread_create(&threads[i], thread_main, &t[i]), 0);
    }
    for (int i = 0; i < LOOPS; i++) {
        CN_ASSERT_EQ(uv_thread_join(&threads[i]), 0);
        CN_ASSERT_EQ(t[i].rc, 0);
        CN_ASSERT_EQ(t[i].sum, (int64_t)MESSAGES * (MESSAGES + 1) / 2);
    }
}

/* Loop B serves a bridge; loop A's coroutines call into it from the pool. */
static struct cn_bridge *b_bridge;
static uv_mutex_t b_lock;
static uv_cond_t b_cond;
static bool b_open, a_done;

static int loop_b_main(void *arg)
{
    CN_ASSERT_EQ(cn_bridge_open(&b_bridge), 0);
    uv_mutex_lock(&b_lock);
    b_open = true;
    uv_cond_broadcast(&b_cond);
    uv_mutex_unlock(&b_lock);
    /* Stay alive (the bridge handle keeps the loop running) until A is done. */
    while (!__atomic_load_n(&a_done, __ATOMIC_ACQUIRE)) {
        CN_ASSERT_EQ(cn_sleep(2), 0);
    }
    cn_bridge_close(b_bridge);
    return 0;
}

static int twice(void *arg)
{
    int *v = arg;
    *v *= 2;
    return 0;
}

static int call_b(void *arg)
{
    int *v = arg;
    int result = -1;
    CN_ASSERT_EQ(cn_bridge_call(b_bridge, twice, v, &result), 0);
    return result;
}

static int loop_a_main(void *arg)
{
    int64_t *sum = arg;
    for (int i = 0; i < 200; i++) {
        int v = i;
        CN_ASSERT_EQ(cn_offload(call_b, &v, -1), 0);
        *sum += v;
    }
    return 0;
}

static void run_b(void *arg)
{
    CN_ASSERT_EQ(cn_run(loop_b_main, NULL), 0);
}

static void loops_call_each_other_through_the_bridge(void)
{
    uv_mutex_init(&b_lock);
    uv_cond_init(&b_cond);
    uv_thread_t tb;
    CN_ASSERT_EQ(uv_thread_create(&tb, run_b, NULL), 0);
    uv_mutex_lock(&b_lock);
    while (!b_open) {
        uv_cond_wait(&b_cond, &b_lock);
    }
    uv_mutex_unlock(&b_lock);
    int64_t sum = 0;
    CN_ASSERT_EQ(cn_test_run(loop_a_main, &sum), 0);
    __atomic_store_n(&a_done, true, __ATOMIC_RELEASE);
    CN_ASSERT_EQ(uv_thread_join(&tb), 0);
    CN_ASSERT_EQ(sum, 2 * 199 * 200 / 2);
}

CN_TEST_MAIN(CN_CASE(loops_on_four_threads_run_independently),
             CN_CASE(loops_call_each_other_through_the_bridge))
