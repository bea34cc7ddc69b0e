/* SPDX-License-Identifier: MIT */
/* Cancellation: the current and every later blocking call returns -ECANCELED. */
#include "test.h"

static int sleep_long(void *arg)
{
    int *seen = arg;
    seen[0] = cn_sleep(60000);
    seen[1] = cn_sleep(60000); /* later calls fail at once */
    seen[2] = cn_yield();
    seen[3] = cn_cancelled();
    return 0;
}

static int interrupt_main(void *arg)
{
    int seen[4] = {1, 1, 1, 0};
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, sleep_long, seen, NULL), 0);
    CN_ASSERT_EQ(cn_yield(), 0);
    int64_t start = cn_now();
    cn_cancel(co);
    CN_ASSERT_EQ(cn_join(co, NULL, -1), 0);
    CN_ASSERT_LT(cn_now() - start, 60000);
    CN_ASSERT_EQ(seen[0], -ECANCELED);
    CN_ASSERT_EQ(seen[1], -ECANCELED);
    CN_ASSERT_EQ(seen[2], -ECANCELED);
    CN_ASSERT_EQ(seen[3], 1);
    return 0;
}

static void cancel_interrupts_sleep_and_every_later_call(void)
{
    CN_ASSERT_EQ(cn_test_run(interrupt_main, NULL), 0);
}

static int cancel_self_main(void *arg)
{
    CN_ASSERT(!cn_cancelled());
    cn_cancel(cn_self());
    CN_ASSERT(cn_cancelled());
    CN_ASSERT_EQ(cn_sleep(1), -ECANCELED);
    return 0;
}

static void coroutine_can_cancel_itself(void)
{
    CN_ASSERT_EQ(cn_test_run(cancel_self_main, NULL), 0);
}

static int quick(void *arg)
{
    return 3;
}

static int cancel_ended_main(void *arg)
{
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, quick, NULL, NULL), 0);
    CN_ASSERT_EQ(cn_yield(), 0); /* co runs to its end */
    cn_cancel(co);
    cn_cancel(co);
    int result = 0;
    CN_ASSERT_EQ(cn_join(co, &result, -1), 0);
    CN_ASSERT_EQ(result, 3);
    return 0;
}

static void cancelling_an_ended_coroutine_changes_nothing(void)
{
    CN_ASSERT_EQ(cn_test_run(cancel_ended_main, NULL), 0);
}

static int cancel_before_start_main(void *arg)
{
    int seen[4] = {1, 1, 1, 0};
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, sleep_long, seen, NULL), 0);
    cn_cancel(co); /* before it ever ran */
    CN_ASSERT_EQ(cn_join(co, NULL, -1), 0);
    CN_ASSERT_EQ(seen[0], -ECANCELED);
    return 0;
}

static void cancel_before_first_run_still_delivers(void)
{
    CN_ASSERT_EQ(cn_test_run(cancel_before_start_main, NULL), 0);
}

static int timed_sleep(void *arg)
{
    return cn_sleep_until(cn_now() + 50);
}

static int cancel_timed_main(void *arg)
{
    /* A cancelled park with a deadline must leave the deadline heap: the
     * next timers still fire on time and nothing fires into a dead park. */
    struct cn_co *cos[64];
    for (int i = 0; i < 64; i++) {
        CN_ASSERT_EQ(cn_spawn(&cos[i], timed_sleep, NULL, NULL), 0);
    }
    CN_ASSERT_EQ(cn_yield(), 0);
    for (int i = 0; i < 64; i += 2) {
        cn_cancel(cos[i]);
    }
    for (int i = 0; i < 64; i++) {
        int result = 1;
        CN_ASSERT_EQ(cn_join(cos[i], &result, -1), 0);
        CN_ASSERT_EQ(result, i % 2 == 0 ? -ECANCELED : 0);
    }
    return 0;
}

static void cancelled_deadlines_leave_the_timer_heap(void)
{
    CN_ASSERT_EQ(cn_test_run(cancel_timed_main, NULL), 0);
}

CN_TEST_MAIN(CN_CASE(cancel_interrupts_sleep_and_every_later_call),
             CN_CASE(coroutine_can_cancel_itself),
             CN_CASE(cancelling_an_ended_coroutine_changes_nothing),
             CN_CASE(cancel_before_first_run_still_delivers),
             CN_CASE(cancelled_deadlines_leave_the_timer_heap))
