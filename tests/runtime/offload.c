/* SPDX-License-Identifier: MIT */
/* Offload to libuv's thread pool. */
#include "test.h"

#include <pthread.h>
#include <unistd.h>

static int square_on_pool(void *arg)
{
    int *v = arg;
    return *v * *v;
}

struct fanout {
    int base;
    int64_t sum;
};

static int offload_many(void *arg)
{
    struct fanout *f = arg;
    for (int i = 0; i < 100; i++) {
        int v = f->base + i;
        int rc = cn_offload(square_on_pool, &v, -1);
        CN_ASSERT_EQ(rc, v * v);
        f->sum += rc;
    }
    return 0;
}

static int many_main(void *arg)
{
    struct fanout f[50];
    struct cn_co *cos[50];
    for (int i = 0; i < 50; i++) {
        f[i] = (struct fanout){i * 100, 0};
        CN_ASSERT_EQ(cn_spawn(&cos[i], offload_many, &f[i], NULL), 0);
    }
    int64_t total = 0;
    for (int i = 0; i < 50; i++) {
        CN_ASSERT_EQ(cn_join(cos[i], NULL, -1), 0);
        total += f[i].sum;
    }
    int64_t want = 0;
    for (int64_t v = 0; v < 5000; v++) {
        want += v * v;
    }
    CN_ASSERT_EQ(total, want);
    return 0;
}

static void offload_returns_results_under_load(void)
{
    CN_ASSERT_EQ(cn_test_run(many_main, NULL), 0);
}

/* A job that blocks its pool thread until the gate opens. */
struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool open;
    int started;
    int finished;
};

static struct gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, 0};

static int wait_at_gate(void *arg)
{
    pthread_mutex_lock(&gate.lock);
    gate.started++;
    pthread_cond_broadcast(&gate.cond);
    while (!gate.open) {
        pthread_cond_wait(&gate.cond, &gate.lock);
    }
    gate.finished++;
    pthread_mutex_unlock(&gate.lock);
    return 1;
}

static void open_gate(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.open = true;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);
}

static int started_jobs(void)
{
    pthread_mutex_lock(&gate.lock);
    int n = gate.started;
    pthread_mutex_unlock(&gate.lock);
    return n;
}

static int blocker(void *arg)
{
    return cn_offload(wait_at_gate, NULL, -1);
}

static int must_not_run(void *arg)
{
    int *ran = arg;
    *ran = 1;
    return 0;
}

enum { POOL = 4 };

static int queued_timeout_main(void *arg)
{
    struct cn_co *blockers[POOL];
    for (int i = 0; i < POOL; i++) {
        CN_ASSERT_EQ(cn_spawn(&blockers[i], blocker, NULL, NULL), 0);
    }
    while (started_jobs() < POOL) {
        CN_ASSERT_EQ(cn_sleep(1), 0);
    }
    /* Every pool thread is busy: this job stays queued past its deadline
     * and is withdrawn, so it never runs. */
    int ran = 0;
    int64_t deadline = cn_now() + 20;
    CN_ASSERT_EQ(cn_offload(must_not_run, &ran, deadline), -ETIMEDOUT);
    CN_ASSERT_GE(cn_now(), deadline);
    CN_ASSERT_EQ(cn_offload(must_not_run, &ran, 0), -ETIMEDOUT);
    open_gate();
    for (int i = 0; i < POOL; i++) {
        int result = 0;
        CN_ASSERT_EQ(cn_join(blockers[i], &result, -1), 0);
        CN_ASSERT_EQ(result, 1);
    }
    CN_ASSERT_EQ(ran, 0);
    /* the pool is usable afterwards */
    int v = 12;
    CN_ASSERT_EQ(cn_offload(square_on_pool, &v, -1), 144);
    return 0;
}

static void offload_times_out_while_queued_and_job_never_runs(void)
{
    setenv("UV_THREADPOOL_SIZE", "4", 1);
    CN_ASSERT_EQ(cn_test_run(queued_timeout_main, NULL), 0);
}

static int running_cancel_target(void *arg)
{
    return cn_offload(wait_at_gate, NULL, -1);
}

static int running_cancel_main(void *arg)
{
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, running_cancel_target, NULL, NULL), 0);
    while (started_jobs() < 1) {
        CN_ASSERT_EQ(cn_sleep(1), 0);
    }
    cn_cancel(co);
    CN_ASSERT_EQ(cn_sleep(20), 0);
    CN_ASSERT_EQ(gate.finished, 0); /* the job is still running... */
    int result = 0;
    CN_ASSERT_EQ(cn_join(co, &result, cn_now() + 5), -ETIMEDOUT); /* ...so is the caller */
    open_gate();
    CN_ASSERT_EQ(cn_join(co, &result, -1), 0);
    CN_ASSERT_EQ(gate.finished, 1);   /* it returned only after the job ended */
    CN_ASSERT_EQ(result, -ECANCELED); /* its result was dropped */
    return 0;
}

static void offload_cancelled_while_running_waits_for_the_job(void)
{
    CN_ASSERT_EQ(cn_test_run(running_cancel_main, NULL), 0);
}

static int cancelled_first(void *arg)
{
    int ran = 0;
    cn_cancel(cn_self());
    CN_ASSERT_EQ(cn_offload(must_not_run, &ran, -1), -ECANCELED);
    CN_ASSERT_EQ(ran, 0);
    return 0;
}

static void offload_by_cancelled_coroutine_fails_at_once(void)
{
    CN_ASSERT_EQ(cn_test_run(cancelled_first, NULL), 0);
}

CN_TEST_MAIN(CN_CASE(offload_returns_results_under_load),
             CN_CASE(offload_times_out_while_queued_and_job_never_runs),
             CN_CASE(offload_cancelled_while_running_waits_for_the_job),
             CN_CASE(offload_by_cancelled_coroutine_fails_at_once))
