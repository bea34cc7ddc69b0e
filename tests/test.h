/* SPDX-License-Identifier: MIT */
/*
 * A tiny test harness: typed assertions that print both operands (and the
 * error name for negative values), and a case table so one executable holds
 * several cases while meson runs each in its own process:
 *
 *     static void sleeps_until_deadline(void) { ... }
 *     CN_TEST_MAIN(CN_CASE(sleeps_until_deadline), ...)
 *
 * `./test-x case_name` runs one case; exit 0 pass, 77 skip, anything else
 * fails. cn_test_run() runs a coroutine on a fresh loop and asserts that the
 * loop closes cleanly afterwards.
 */
#ifndef CORONET_TEST_H
#define CORONET_TEST_H

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coronet/coronet.h"

#define CN_TEST_SKIP 77

#define CN__FAIL_HEADER()                                                                          \
    fprintf(stderr, "%s:%d: assertion failed in %s\n", __FILE__, __LINE__, __func__)

static inline const char *cn_test_errname(int64_t v)
{
    return (v < 0 && v >= -100000) ? cn_err_name((int)v) : "";
}

#define CN__ASSERT_OP(a, op, b)                                                                    \
    do {                                                                                           \
        int64_t cn__a = (int64_t)(a), cn__b = (int64_t)(b);                                        \
        if (!(cn__a op cn__b)) {                                                                   \
            CN__FAIL_HEADER();                                                                     \
            fprintf(stderr, "  %s %s %s\n  left:  %" PRId64 " %s\n  right: %" PRId64 " %s\n", #a,  \
                    #op, #b, cn__a, cn_test_errname(cn__a), cn__b, cn_test_errname(cn__b));        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CN_ASSERT_EQ(a, b) CN__ASSERT_OP(a, ==, b)
#define CN_ASSERT_NE(a, b) CN__ASSERT_OP(a, !=, b)
#define CN_ASSERT_LT(a, b) CN__ASSERT_OP(a, <, b)
#define CN_ASSERT_LE(a, b) CN__ASSERT_OP(a, <=, b)
#define CN_ASSERT_GT(a, b) CN__ASSERT_OP(a, >, b)
#define CN_ASSERT_GE(a, b) CN__ASSERT_OP(a, >=, b)
/* A call that returns >= 0 on success, < 0 as an error code. */
#define CN_ASSERT_OK(rc) CN__ASSERT_OP(rc, >=, 0)

#define CN_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            CN__FAIL_HEADER();                                                                     \
            fprintf(stderr, "  %s\n", #cond);                                                      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CN_ASSERT_STREQ(a, b)                                                                      \
    do {                                                                                           \
        const char *cn__a = (a), *cn__b = (b);                                                     \
        if (strcmp(cn__a, cn__b) != 0) {                                                           \
            CN__FAIL_HEADER();                                                                     \
            fprintf(stderr, "  %s == %s\n  left:  \"%s\"\n  right: \"%s\"\n", #a, #b, cn__a,       \
                    cn__b);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CN_ASSERT_MEMEQ(a, b, n)                                                                   \
    do {                                                                                           \
        if (memcmp((a), (b), (n)) != 0) {                                                          \
            CN__FAIL_HEADER();                                                                     \
            fprintf(stderr, "  memcmp(%s, %s, %s) != 0\n", #a, #b, #n);                            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct cn_test_case {
    const char *name;
    void (*fn)(void);
};

#define CN_CASE(fn)                                                                                \
    {                                                                                              \
#fn, fn                                                                                    \
    }

static inline int cn_test_dispatch(const struct cn_test_case *cases, size_t n, int argc,
                                   char **argv)
{
    if (argc < 2) {
        for (size_t i = 0; i < n; i++) {
            printf("%s\n", cases[i].name);
        }
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cases[i].name, argv[1]) == 0) {
            cases[i].fn();
            return 0;
        }
    }
    fprintf(stderr, "no test case named %s\n", argv[1]);
    return 2;
}

#define CN_TEST_MAIN(...)                                                                          \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        static const struct cn_test_case cases[] = {__VA_ARGS__};                                  \
        setvbuf(stdout, NULL, _IONBF, 0);                                                          \
        return cn_test_dispatch(cases, sizeof cases / sizeof cases[0], argc, argv);                \
    }

/* Runs fn(arg) as the main coroutine of a fresh loop, then asserts the loop
 * closes with nothing left open. Returns fn's result. */
static inline int cn_test_run(cn_fn fn, void *arg)
{
    uv_loop_t loop;
    CN_ASSERT_EQ(uv_loop_init(&loop), 0);
    int rc = cn_run_on(&loop, fn, arg);
    CN_ASSERT_EQ(uv_loop_close(&loop), 0);
    return rc;
}

/* Skips the current case with a reason. */
#define CN_TEST_SKIP_BECAUSE(...)                                                                  \
    do {                                                                                           \
        fprintf(stderr, "skipped: ");                                                              \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        exit(CN_TEST_SKIP);                                                                        \
    } while (0)

#endif /* CORONET_TEST_H */
