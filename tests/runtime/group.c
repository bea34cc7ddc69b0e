/* SPDX-License-Identifier: MIT */
/* Groups: structured concurrency. */
#include "test.h"

struct child {
    int64_t sleep_ms;
    int result;
    int *ended;
};

static int child_main(void *arg)
{
    struct child *c = arg;
    int rc = cn_sleep(c->sleep_ms);
    (*c->ended)++;
    return rc < 0 ? rc : c->result;
}

static int wait_main(void *arg)
{
    int ended = 0;
    struct child kids[4] = {{30, 0, &ended}, {10, 4, &ended}, {20, 9, &ended}, {5, 0, &ended}};
    struct cn_group *g;
    CN_ASSERT_EQ(cn_group_new(&g), 0);
    for (int i = 0; i < 4; i++) {
        CN_ASSERT_EQ(cn_group_spawn(g, child_main, &kids[i], NULL), 0);
    }
    CN_ASSERT_EQ(cn_group_wait(g, -1), 4); /* first failure by end time */
    CN_ASSERT_EQ(ended, 4);
    cn_group_close(g);
    return 0;
}

static void group_wait_joins_all_and_returns_first_failure(void)
{
    CN_ASSERT_EQ(cn_test_run(wait_main, NULL), 0);
}

static int failure_main(void *arg)
{
    int ended = 0;
    struct child kids[3] = {{60000, 0, &ended}, {10, -EIO, &ended}, {60000, 0, &ended}};
    struct cn_group *g;
    CN_ASSERT_EQ(cn_group_new(&g), 0);
    for (int i = 0; i < 3; i++) {
        CN_ASSERT_EQ(cn_group_spawn(g, child_main, &kids[i], NULL), 0);
    }
    CN_ASSERT_EQ(cn_group_wait_failure(g, -1), -EIO);
    CN_ASSERT_EQ(ended, 1);
    cn_group_close(g); /* cancels the two long sleepers and joins them */
    CN_ASSERT_EQ(ended, 3);
    return 0;
}

static void group_wait_failure_returns_at_first_failure(void)
{
    CN_ASSERT_EQ(cn_test_run(failure_main, NULL), 0);
}

static int close_main(void *arg)
{
    int ended = 0;
    struct child kids[100];
    struct cn_group *g;
    CN_ASSERT_EQ(cn_group_new(&g), 0);
    for (int i = 0; i < 100; i++) {
        kids[i] = (struct child){60000, 0, &ended};
        CN_ASSERT_EQ(cn_group_spawn(g, child_main, &kids[i], NULL), 0);
    }
    CN_ASSERT_EQ(cn_yield(), 0);
    int64_t start = cn_now();
    cn_group_close(g);
    CN_ASSERT_EQ(ended, 100);
    CN_ASSERT_LT(cn_now() - start, 60000);
    return 0;
}

static void group_close_cancels_and_joins_children(void)
{
    CN_ASSERT_EQ(cn_test_run(close_main, NULL), 0);
}

static int never_started_main(void *arg)
{
    int ended = 0;
    struct child kids[3] = {{60000, 0, &ended}, {60000, 0, &ended}, {60000, 0, &ended}};
    struct cn_group *g;
    CN_ASSERT_EQ(cn_group_new(&g), 0);
    for (int i = 0; i < 3; i++) {
        CN_ASSERT_EQ(cn_group_spawn(g, child_main, &kids[i], NULL), 0);
    }
    cn_group_close(g); /* children never ran before close */
    CN_ASSERT_EQ(ended, 3);
    return 0;
}

static void group_close_before_children_start(void)
{
    CN_ASSERT_EQ(cn_test_run(never_started_main, NULL), 0);
}

static int timeout_main(void *arg)
{
    int ended = 0;
    struct child kid = {60000, 0, &ended};
    struct cn_group *g;
    CN_ASSERT_EQ(cn_group_new(&g), 0);
    CN_ASSERT_EQ(cn_group_spawn(g, child_main, &kid, NULL), 0);
    int64_t deadline = cn_now() + 10;
    CN_ASSERT_EQ(cn_group_wait(g, deadline), -ETIMEDOUT);
    CN_ASSERT_GE(cn_now(), deadline);
    CN_ASSERT_EQ(cn_group_wait_failure(g, 0), -ETIMEDOUT);
    CN_ASSERT_EQ(ended, 0);
    cn_group_close(g);
    CN_ASSERT_EQ(ended, 1);
    return 0;
}

static void group_wait_times_out_and_group_stays_usable(void)
{
    CN_ASSERT_EQ(cn_test_run(timeout_main, NULL), 0);
}

static int waiter_main(void *arg)
{
    struct cn_group *g = arg;
    return cn_group_wait(g, -1);
}

static int wait_cancel_main(void *arg)
{
    int ended = 0;
    struct child kid = {60000, 0, &ended};
    struct cn_group *g;
    CN_ASSERT_EQ(cn_group_new(&g), 0);
    CN_ASSERT_EQ(cn_group_spawn(g, child_main, &kid, NULL), 0);
    struct cn_co *waiter;
    CN_ASSERT_EQ(cn_spawn(&waiter, waiter_main, g, NULL), 0);
    CN_ASSERT_EQ(cn_yield(), 0);
    cn_cancel(waiter);
    int result = 0;
    CN_ASSERT_EQ(cn_join(waiter, &result, -1), 0);
    CN_ASSERT_EQ(result, -ECANCELED);
    CN_ASSERT_EQ(ended, 0);
    cn_group_close(g);
    return 0;
}

static void group_wait_cancelled(void)
{
    CN_ASSERT_EQ(cn_test_run(wait_cancel_main, NULL), 0);
}

static int nested_parent(void *arg)
{
    int *ended = arg;
    struct cn_group *g;
    CN_ASSERT_EQ(cn_group_new(&g), 0);
    struct child kids[2] = {{60000, 0, ended}, {60000, 0, ended}};
    CN_ASSERT_EQ(cn_group_spawn(g, child_main, &kids[0], NULL), 0);
    CN_ASSERT_EQ(cn_group_spawn(g, child_main, &kids[1], NULL), 0);
    int rc = cn_group_wait(g, -1); /* cancelled from outside */
    cn_group_close(g);             /* still joins the grandchildren */
    (*ended)++;
    return rc;
}

static int nested_main(void *arg)
{
    int ended = 0;
    struct cn_group *outer;
    CN_ASSERT_EQ(cn_group_new(&outer), 0);
    CN_ASSERT_EQ(cn_group_spawn(outer, nested_parent, &ended, NULL), 0);
    CN_ASSERT_EQ(cn_group_spawn(outer, nested_parent, &ended, NULL), 0);
    CN_ASSERT_EQ(cn_sleep(5), 0);
    cn_group_close(outer);
    CN_ASSERT_EQ(ended, 6);
    return 0;
}

static void nested_groups_close_the_whole_tree(void)
{
    CN_ASSERT_EQ(cn_test_run(nested_main, NULL), 0);
}

CN_TEST_MAIN(CN_CASE(group_wait_joins_all_and_returns_first_failure),
             CN_CASE(group_wait_failure_returns_at_first_failure),
             CN_CASE(group_close_cancels_and_joins_children),
             CN_CASE(group_close_before_children_start),
             CN_CASE(group_wait_times_out_and_group_stays_usable), CN_CASE(group_wait_cancelled),
             CN_CASE(nested_groups_close_the_whole_tree))
