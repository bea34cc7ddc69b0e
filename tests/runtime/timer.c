/* SPDX-License-Identifier: MIT */
/* Sleeping and deadlines on the loop clock. */
#include "test.h"

static int sleep_main(void *arg)
{
    int64_t start = cn_now();
    CN_ASSERT_EQ(cn_sleep(25), 0);
    CN_ASSERT_GE(cn_now(), start + 25);
    return 0;
}

static void sleep_lasts_at_least_its_duration(void)
{
    CN_ASSERT_EQ(cn_test_run(sleep_main, NULL), 0);
}

static int past_main(void *arg)
{
    CN_ASSERT_EQ(cn_sleep_until(cn_now() - 5), 0);
    CN_ASSERT_EQ(cn_sleep_until(0), 0);
    CN_ASSERT_EQ(cn_sleep(0), 0);
    return 0;
}

static void sleep_until_past_returns_at_once(void)
{
    CN_ASSERT_EQ(cn_test_run(past_main, NULL), 0);
}

struct wake_log {
    int order[16];
    int n;
};

struct sleeper {
    struct wake_log *log;
    int id;
    int64_t deadline;
};

static int sleep_and_log(void *arg)
{
    struct sleeper *s = arg;
    CN_ASSERT_EQ(cn_sleep_until(s->deadline), 0);
    CN_ASSERT_GE(cn_now(), s->deadline);
    s->log->order[s->log->n++] = s->id;
    return 0;
}

static int order_main(void *arg)
{
    struct wake_log *log = arg;
    /* Spawned out of deadline order; they must wake in deadline order. */
    int offsets[8] = {40, 10, 70, 20, 60, 30, 80, 50};
    struct sleeper s[8];
    struct cn_co *cos[8];
    int64_t now = cn_now();
    for (int i = 0; i < 8; i++) {
        s[i] = (struct sleeper){log, offsets[i], now + offsets[i]};
        CN_ASSERT_EQ(cn_spawn(&cos[i], sleep_and_log, &s[i], NULL), 0);
    }
    for (int i = 0; i < 8; i++) {
        CN_ASSERT_EQ(cn_join(cos[i], NULL, -1), 0);
    }
    return 0;
}

static void sleepers_wake_in_deadline_order(void)
{
    struct wake_log log = {{0}, 0};
    CN_ASSERT_EQ(cn_test_run(order_main, &log), 0);
    CN_ASSERT_EQ(log.n, 8);
    for (int i = 0; i < 8; i++) {
        CN_ASSERT_EQ(log.order[i], (i + 1) * 10);
    }
}

static int wake_early_then_sleep(void *arg)
{
    struct cn_event *ev = arg;
    /* A deadline that is removed early (the event fires first) must not
     * disturb the later timers. */
    CN_ASSERT_EQ(cn_event_wait(ev, cn_now() + 10000), 0);
    int64_t start = cn_now();
    CN_ASSERT_EQ(cn_sleep(15), 0);
    CN_ASSERT_GE(cn_now(), start + 15);
    return 0;
}

static int removal_main(void *arg)
{
    struct cn_event ev = CN_EVENT_INIT;
    struct cn_co *cos[32];
    for (int i = 0; i < 32; i++) {
        CN_ASSERT_EQ(cn_spawn(&cos[i], wake_early_then_sleep, &ev, NULL), 0);
    }
    CN_ASSERT_EQ(cn_sleep(5), 0);
    cn_event_set(&ev);
    for (int i = 0; i < 32; i++) {
        CN_ASSERT_EQ(cn_join(cos[i], NULL, -1), 0);
    }
    return 0;
}

static void deadline_removed_early_leaves_other_timers_intact(void)
{
    CN_ASSERT_EQ(cn_test_run(removal_main, NULL), 0);
}

static int idle_loop_main(void *arg)
{
    /* Between these sleeps nothing is ready: the loop must block in epoll,
     * not spin. getrusage shows whether the process burned CPU while idle. */
    uv_rusage_t before, after;
    CN_ASSERT_EQ(uv_getrusage(&before), 0);
    CN_ASSERT_EQ(cn_sleep(300), 0);
    CN_ASSERT_EQ(uv_getrusage(&after), 0);
    double cpu_ms = (double)(after.ru_utime.tv_sec - before.ru_utime.tv_sec) * 1e3 +
                    (double)(after.ru_utime.tv_usec - before.ru_utime.tv_usec) / 1e3 +
                    (double)(after.ru_stime.tv_sec - before.ru_stime.tv_sec) * 1e3 +
                    (double)(after.ru_stime.tv_usec - before.ru_stime.tv_usec) / 1e3;
    /* A spinning loop would use ~300 ms of CPU; a sleeping one ~0. */
    CN_ASSERT_LT(cpu_ms, 150);
    return 0;
}

static void idle_loop_sleeps_instead_of_spinning(void)
{
    CN_ASSERT_EQ(cn_test_run(idle_loop_main, NULL), 0);
}

CN_TEST_MAIN(CN_CASE(sleep_lasts_at_least_its_duration), CN_CASE(sleep_until_past_returns_at_once),
             CN_CASE(sleepers_wake_in_deadline_order),
             CN_CASE(deadline_removed_early_leaves_other_timers_intact),
             CN_CASE(idle_loop_sleeps_instead_of_spinning))
