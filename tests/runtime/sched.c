/* SPDX-License-Identifier: MIT */
/* Scheduler: spawn, join, detach, yield, run, and the end of a program. */
#include "test.h"

static int return_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

static int spawn_join_main(void *arg)
{
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, return_arg, (void *)(intptr_t)42, NULL), 0);
    int result = 0;
    CN_ASSERT_EQ(cn_join(co, &result, -1), 0);
    CN_ASSERT_EQ(result, 42);
    return 7;
}

static void join_returns_child_result(void)
{
    CN_ASSERT_EQ(cn_test_run(spawn_join_main, NULL), 7);
}

static void run_returns_main_result(void)
{
    CN_ASSERT_EQ(cn_run(return_arg, (void *)(intptr_t)-3), -3);
}

struct order {
    int log[8];
    int n;
};

static int log_twice(void *arg)
{
    struct order *o = arg;
    int id = o->n < 3 ? o->n : -1;
    o->log[o->n++] = id;
    CN_ASSERT_EQ(cn_yield(), 0);
    o->log[o->n++] = id + 10;
    return 0;
}

static int yield_main(void *arg)
{
    struct order *o = arg;
    struct cn_co *a, *b, *c;
    CN_ASSERT_EQ(cn_spawn(&a, log_twice, o, NULL), 0);
    CN_ASSERT_EQ(cn_spawn(&b, log_twice, o, NULL), 0);
    CN_ASSERT_EQ(cn_spawn(&c, log_twice, o, NULL), 0);
    CN_ASSERT_EQ(cn_join(a, NULL, -1), 0);
    CN_ASSERT_EQ(cn_join(b, NULL, -1), 0);
    CN_ASSERT_EQ(cn_join(c, NULL, -1), 0);
    return 0;
}

static void yield_interleaves_in_spawn_order(void)
{
    struct order o = {{0}, 0};
    CN_ASSERT_EQ(cn_test_run(yield_main, &o), 0);
    int want[6] = {0, 1, 2, 10, 11, 12};
    CN_ASSERT_EQ(o.n, 6);
    CN_ASSERT_MEMEQ(o.log, want, sizeof want);
}

static int sleep_ms(void *arg)
{
    return cn_sleep((int64_t)(intptr_t)arg);
}

static int join_timeout_main(void *arg)
{
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, sleep_ms, (void *)(intptr_t)60, NULL), 0);
    int64_t deadline = cn_now() + 10;
    CN_ASSERT_EQ(cn_join(co, NULL, deadline), -ETIMEDOUT);
    CN_ASSERT_GE(cn_now(), deadline);
    CN_ASSERT_EQ(cn_join(co, NULL, 0), -ETIMEDOUT);
    int result = -1;
    CN_ASSERT_EQ(cn_join(co, &result, -1), 0);
    CN_ASSERT_EQ(result, 0);
    return 0;
}

static void join_times_out_and_stays_joinable(void)
{
    CN_ASSERT_EQ(cn_test_run(join_timeout_main, NULL), 0);
}

static int join_cancelled_inner(void *arg)
{
    struct cn_co *target = arg;
    return cn_join(target, NULL, -1);
}

static int join_cancel_main(void *arg)
{
    struct cn_co *sleeper, *joiner;
    CN_ASSERT_EQ(cn_spawn(&sleeper, sleep_ms, (void *)(intptr_t)30, NULL), 0);
    CN_ASSERT_EQ(cn_spawn(&joiner, join_cancelled_inner, sleeper, NULL), 0);
    CN_ASSERT_EQ(cn_yield(), 0);
    cn_cancel(joiner);
    int result = 0;
    CN_ASSERT_EQ(cn_join(joiner, &result, -1), 0);
    CN_ASSERT_EQ(result, -ECANCELED);
    CN_ASSERT_EQ(cn_join(sleeper, &result, -1), 0); /* still joinable */
    CN_ASSERT_EQ(result, 0);
    return 0;
}

static void join_cancelled_leaves_target_joinable(void)
{
    CN_ASSERT_EQ(cn_test_run(join_cancel_main, NULL), 0);
}

static int counter;

static int bump(void *arg)
{
    cn_sleep(1);
    counter++;
    return 0;
}

static int detach_main(void *arg)
{
    for (int i = 0; i < 100; i++) {
        struct cn_co *co;
        CN_ASSERT_EQ(cn_spawn(&co, bump, NULL, NULL), 0);
        cn_detach(co);
        CN_ASSERT_EQ(cn_spawn(NULL, bump, NULL, NULL), 0);
    }
    while (counter < 200) {
        CN_ASSERT_EQ(cn_sleep(1), 0);
    }
    return 0;
}

static void detached_coroutines_run_and_free_themselves(void)
{
    CN_ASSERT_EQ(cn_test_run(detach_main, NULL), 0);
    CN_ASSERT_EQ(counter, 200);
}

static int cleaned_up;

static int sleep_forever_then_cleanup(void *arg)
{
    int rc = cn_sleep_until(-1);
    CN_ASSERT_EQ(rc, -ECANCELED);
    cleaned_up++;
    return rc;
}

static int leave_children_main(void *arg)
{
    for (int i = 0; i < 10; i++) {
        CN_ASSERT_EQ(cn_spawn(NULL, sleep_forever_then_cleanup, NULL, NULL), 0);
    }
    CN_ASSERT_EQ(cn_yield(), 0);
    return 5;
}

static void main_end_cancels_leftover_coroutines(void)
{
    CN_ASSERT_EQ(cn_test_run(leave_children_main, NULL), 5);
    CN_ASSERT_EQ(cleaned_up, 10);
}

static int wait_event_forever(void *arg)
{
    struct cn_event ev = CN_EVENT_INIT;
    return cn_event_wait(&ev, -1);
}

static void deadlocked_main_is_cancelled(void)
{
    /* Nothing can ever set the event: the loop runs dry and the scheduler
     * cancels the parked main instead of hanging. */
    CN_ASSERT_EQ(cn_test_run(wait_event_forever, NULL), -ECANCELED);
}

static void calls_outside_a_coroutine_fail(void)
{
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, return_arg, NULL, NULL), CN_ENOTCORO);
    CN_ASSERT_EQ(cn_yield(), CN_ENOTCORO);
    CN_ASSERT_EQ(cn_sleep(1), CN_ENOTCORO);
    CN_ASSERT(cn_self() == NULL);
    CN_ASSERT(cn_loop() == NULL);
}

static int nested_run_main(void *arg)
{
    CN_ASSERT_EQ(cn_run(return_arg, NULL), -EBUSY);
    CN_ASSERT_STREQ(cn_co_name(cn_self()), "main");
    return 0;
}

static void nested_run_is_refused(void)
{
    CN_ASSERT_EQ(cn_test_run(nested_run_main, NULL), 0);
}

static int join_self_main(void *arg)
{
    CN_ASSERT_EQ(cn_join(cn_self(), NULL, -1), -EDEADLK);
    return 0;
}

static void join_self_is_refused(void)
{
    CN_ASSERT_EQ(cn_test_run(join_self_main, NULL), 0);
}

enum { SLEEPERS = 100000 };

static int sleep_then_return_index(void *arg)
{
    CN_ASSERT_EQ(cn_sleep(20), 0);
    return (int)(intptr_t)arg;
}

static int many_sleepers_main(void *arg)
{
    struct cn_co **cos = calloc(SLEEPERS, sizeof *cos);
    CN_ASSERT(cos != NULL);
    for (int i = 0; i < SLEEPERS; i++) {
        CN_ASSERT_EQ(cn_spawn(&cos[i], sleep_then_return_index, (void *)(intptr_t)i, NULL), 0);
    }
    int64_t sum = 0;
    for (int i = 0; i < SLEEPERS; i++) {
        int result = -1;
        CN_ASSERT_EQ(cn_join(cos[i], &result, -1), 0);
        CN_ASSERT_EQ(result, i);
        sum += result;
    }
    CN_ASSERT_EQ(sum, (int64_t)SLEEPERS * (SLEEPERS - 1) / 2);
    free(cos);
    return 0;
}

static void stress_100k_coroutines_sleep_at_once_then_join(void)
{
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    long max_maps = 0;
    if (f) {
        if (fscanf(f, "%ld", &max_maps) != 1) {
            max_maps = 0;
        }
        fclose(f);
    }
    if (max_maps > 0 && max_maps < 2L * SLEEPERS + 10000) {
        CN_TEST_SKIP_BECAUSE("vm.max_map_count is %ld; 100k guarded stacks need %ld (run "
                             "scripts/setup as root)",
                             max_maps, 2L * SLEEPERS + 10000);
    }
    CN_ASSERT_EQ(cn_test_run(many_sleepers_main, NULL), 0);
}

static int spawn_join_many_main(void *arg)
{
    for (int i = 0; i < 200000; i++) {
        struct cn_co *co;
        CN_ASSERT_EQ(cn_spawn(&co, return_arg, (void *)(intptr_t)i, NULL), 0);
        int result;
        CN_ASSERT_EQ(cn_join(co, &result, -1), 0);
        CN_ASSERT_EQ(result, i);
    }
    return 0;
}

static void spawn_join_cycles_reuse_pooled_stacks(void)
{
    CN_ASSERT_EQ(cn_test_run(spawn_join_many_main, NULL), 0);
}

static void never_fires(uv_timer_t *t)
{
    CN_ASSERT(!"the timer was closed before it could fire");
}

static int stack_handle_main(void *arg)
{
    /* A handle on the coroutine's stack, closed synchronously: after
     * cn_uv_close returns, the frame may go (and the stack be reused). */
    for (int i = 0; i < 100; i++) {
        uv_timer_t t;
        CN_ASSERT_EQ(uv_timer_init(cn_loop(), &t), 0);
        CN_ASSERT_EQ(uv_timer_start(&t, never_fires, 60000, 0), 0);
        t.data = &t;
        cn_uv_close((uv_handle_t *)&t);
        CN_ASSERT(t.data == &t); /* data is given back */
    }
    return 0;
}

static void uv_close_returns_after_the_close_callback(void)
{
    CN_ASSERT_EQ(cn_test_run(stack_handle_main, NULL), 0);
}

CN_TEST_MAIN(CN_CASE(uv_close_returns_after_the_close_callback), CN_CASE(join_returns_child_result),
             CN_CASE(run_returns_main_result), CN_CASE(yield_interleaves_in_spawn_order),
             CN_CASE(join_times_out_and_stays_joinable),
             CN_CASE(join_cancelled_leaves_target_joinable),
             CN_CASE(detached_coroutines_run_and_free_themselves),
             CN_CASE(main_end_cancels_leftover_coroutines), CN_CASE(deadlocked_main_is_cancelled),
             CN_CASE(calls_outside_a_coroutine_fail), CN_CASE(nested_run_is_refused),
             CN_CASE(join_self_is_refused), CN_CASE(stress_100k_coroutines_sleep_at_once_then_join),
             CN_CASE(spawn_join_cycles_reuse_pooled_stacks))
