/* SPDX-License-Identifier: MIT */
/* Floating-point control state travels with each coroutine. */
#include "test.h"

#include <fenv.h>

/* Valgrind computes with round-to-nearest whatever the mode (its manual,
 * "Limitations"); it still saves and restores the mode itself. */
static bool under_valgrind(void)
{
    const char *preload = getenv("LD_PRELOAD");
    return preload && strstr(preload, "vgpreload");
}

static volatile double one = 1.0, three = 3.0;

struct fp_probe {
    int mode;
    int seen_before;
    int seen_after;
    double quotient;
};

static int set_mode_and_yield(void *arg)
{
    struct fp_probe *p = arg;
    CN_ASSERT_EQ(fesetround(p->mode), 0);
    CN_ASSERT_EQ(cn_yield(), 0); /* others run with their own modes */
    CN_ASSERT_EQ(cn_yield(), 0);
    p->seen_after = fegetround();
    p->quotient = one / three; /* rounded by this coroutine's mode */
    return 0;
}

static int observe(void *arg)
{
    struct fp_probe *p = arg;
    p->seen_before = fegetround();
    CN_ASSERT_EQ(cn_yield(), 0);
    p->seen_after = fegetround();
    p->quotient = one / three;
    return 0;
}

static int fp_main(void *arg)
{
    struct fp_probe up = {FE_UPWARD, 0, 0, 0}, down = {FE_DOWNWARD, 0, 0, 0};
    struct fp_probe plain = {FE_TONEAREST, 0, 0, 0};
    struct cn_co *a, *b, *c;
    CN_ASSERT_EQ(cn_spawn(&a, set_mode_and_yield, &up, NULL), 0);
    CN_ASSERT_EQ(cn_spawn(&b, observe, &plain, NULL), 0);
    CN_ASSERT_EQ(cn_spawn(&c, set_mode_and_yield, &down, NULL), 0);
    CN_ASSERT_EQ(cn_join(a, NULL, -1), 0);
    CN_ASSERT_EQ(cn_join(b, NULL, -1), 0);
    CN_ASSERT_EQ(cn_join(c, NULL, -1), 0);
    CN_ASSERT_EQ(up.seen_after, FE_UPWARD);
    CN_ASSERT_EQ(down.seen_after, FE_DOWNWARD);
    CN_ASSERT_EQ(plain.seen_before, FE_TONEAREST);
    CN_ASSERT_EQ(plain.seen_after, FE_TONEAREST);
    if (!under_valgrind()) {
        CN_ASSERT(up.quotient > down.quotient); /* the modes really applied */
    }
    CN_ASSERT_EQ(fegetround(), FE_TONEAREST); /* main is untouched */
    return 0;
}

static void rounding_mode_is_per_coroutine(void)
{
    CN_ASSERT_EQ(cn_test_run(fp_main, NULL), 0);
    CN_ASSERT_EQ(fegetround(), FE_TONEAREST);
}

static int report_mode(void *arg)
{
    return fegetround();
}

static int inherit_main(void *arg)
{
    CN_ASSERT_EQ(fesetround(FE_TOWARDZERO), 0);
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, report_mode, NULL, NULL), 0);
    CN_ASSERT_EQ(fesetround(FE_TONEAREST), 0);
    int mode = -1;
    CN_ASSERT_EQ(cn_join(co, &mode, -1), 0);
    CN_ASSERT_EQ(mode, FE_TOWARDZERO);
    return 0;
}

static void new_coroutine_starts_with_its_spawners_mode(void)
{
    CN_ASSERT_EQ(cn_test_run(inherit_main, NULL), 0);
}

CN_TEST_MAIN(CN_CASE(rounding_mode_is_per_coroutine),
             CN_CASE(new_coroutine_starts_with_its_spawners_mode))
