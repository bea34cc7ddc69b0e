/* SPDX-License-Identifier: MIT */
/*
 * The context switch back end alone: runtime/ctx.h plus one switch_*.S (or
 * switch_ucontext.c with -DCN_CTX_UCONTEXT), no scheduler, no libuv. That is
 * what lets scripts/test cross-build it for AArch64 with
 * `aarch64-linux-gnu-gcc -static` and run it under qemu-aarch64-static, and
 * build it natively with plain gcc.
 *
 * What it proves, with three contexts (main, A on an mmap'ed stack, B on a
 * malloc'ed one):
 *   - ping-pong: a context resumes exactly where it stopped, many times;
 *   - a ring main -> A -> B -> main runs in that order;
 *   - values the compiler keeps in callee-saved registers (integers, and
 *     doubles in d8-d15 on AArch64) survive a switch while the other context
 *     fills the same registers with its own values;
 *   - the floating-point rounding mode is per context: each of three
 *     contexts runs in its own mode (fegetround and the rounding of an actual
 *     division, SSE and x87 on x86-64, FPCR on AArch64), and a new context
 *     starts in the mode of the thread that made it.
 * Exit 0 when every check passed, 1 otherwise.
 */
#define _GNU_SOURCE
#include <fenv.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ctx.h"

/* Valgrind must be told about the stacks or it takes every switch for a wild
 * stack-pointer jump. Header-only, so the cross build simply goes without. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#if !defined(VALGRIND_STACK_REGISTER)
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#endif

#define STACK_SIZE (256 * 1024)
#define PINGS 200000
#define SURVIVE_ROUNDS 20000
#define RING_ROUNDS 1000
#define FP_ROUNDS 1000

static long checks;
static long failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            if (failures <= 20) {                                                                  \
                fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);           \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* Hides a value from the optimiser so it must really be kept in a register
 * (or a spill slot) across the switch instead of being recomputed. */
#define OPAQUE(v) __asm__ volatile("" : "+r"(v))
#if defined(__aarch64__)
#define OPAQUE_FP(v) __asm__ volatile("" : "+w"(v))
#elif defined(__x86_64__)
#define OPAQUE_FP(v) __asm__ volatile("" : "+x"(v))
#else
#define OPAQUE_FP(v) __asm__ volatile("" : "+m"(v))
#endif

static struct cn__ctx main_ctx;
static struct cn__ctx a_ctx;
static struct cn__ctx b_ctx;

/* ---- stacks ---------------------------------------------------------------- */

static void *map_stack(void)
{
    void *p = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    (void)VALGRIND_STACK_REGISTER(p, (char *)p + STACK_SIZE);
    return p;
}

static void *malloc_stack(void)
{
    void *p = aligned_alloc(64, STACK_SIZE);
    if (p == NULL) {
        perror("aligned_alloc");
        exit(1);
    }
    (void)VALGRIND_STACK_REGISTER(p, (char *)p + STACK_SIZE);
    return p;
}

/* ---- ping-pong ------------------------------------------------------------- */

static long ping_count;

static void ping_entry(void *arg)
{
    (void)arg;
    for (;;) {
        ping_count++;
        cn__ctx_switch(&a_ctx, &main_ctx);
    }
}

static void test_ping_pong(void *stack)
{
    ping_count = 0;
    cn__ctx_make(&a_ctx, stack, STACK_SIZE, ping_entry, NULL);
    long bad = 0;
    for (long i = 0; i < PINGS; i++) {
        cn__ctx_switch(&main_ctx, &a_ctx);
        bad += ping_count != i + 1;
    }
    CHECK(bad == 0);
    CHECK(ping_count == PINGS);
}

/* ---- callee-saved values survive ------------------------------------------- */

/* Keeps ten integers and eight doubles live across one switch and returns how
 * many of them changed. The other context runs the same function with another
 * seed, so the callee-saved registers hold different values there. */
static __attribute__((noinline)) int survive(struct cn__ctx *from, struct cn__ctx *to,
                                             uint64_t seed)
{
#define HIDE_ALL()                                                                                 \
    do {                                                                                           \
        OPAQUE(r0);                                                                                \
        OPAQUE(r1);                                                                                \
        OPAQUE(r2);                                                                                \
        OPAQUE(r3);                                                                                \
        OPAQUE(r4);                                                                                \
        OPAQUE(r5);                                                                                \
        OPAQUE(r6);                                                                                \
        OPAQUE(r7);                                                                                \
        OPAQUE(r8);                                                                                \
        OPAQUE(r9);                                                                                \
        OPAQUE_FP(f0);                                                                             \
        OPAQUE_FP(f1);                                                                             \
        OPAQUE_FP(f2);                                                                             \
        OPAQUE_FP(f3);                                                                             \
        OPAQUE_FP(f4);                                                                             \
        OPAQUE_FP(f5);                                                                             \
        OPAQUE_FP(f6);                                                                             \
        OPAQUE_FP(f7);                                                                             \
    } while (0)
    volatile uint64_t vseed = seed;
    uint64_t s = vseed;
    uint64_t r0 = s * 3 + 1, r1 = s ^ 0x5555555555555555u, r2 = s + 17, r3 = s * 7;
    uint64_t r4 = ~s, r5 = s << 3, r6 = s >> 2, r7 = s * s, r8 = s - 99, r9 = s | 0x8000;
    double d = (double)s;
    double f0 = d * 0.5, f1 = d + 0.25, f2 = d * 3.0, f3 = d - 7.5;
    double f4 = d / 3.0, f5 = -d, f6 = d * d, f7 = d + 1e9;
    HIDE_ALL();

    cn__ctx_switch(from, to);

    HIDE_ALL();
    s = vseed;
    d = (double)s;
    int bad = 0;
    bad += r0 != s * 3 + 1;
    bad += r1 != (s ^ 0x5555555555555555u);
    bad += r2 != s + 17;
    bad += r3 != s * 7;
    bad += r4 != ~s;
    bad += r5 != s << 3;
    bad += r6 != s >> 2;
    bad += r7 != s * s;
    bad += r8 != s - 99;
    bad += r9 != (s | 0x8000);
    bad += f0 != d * 0.5;
    bad += f1 != d + 0.25;
    bad += f2 != d * 3.0;
    bad += f3 != d - 7.5;
    bad += f4 != d / 3.0;
    bad += f5 != -d;
    bad += f6 != d * d;
    bad += f7 != d + 1e9;
    return bad;
}

static long survive_bad_a;

static void survive_entry(void *arg)
{
    (void)arg;
    for (uint64_t i = 0;; i++) {
        survive_bad_a += survive(&a_ctx, &main_ctx, 0xa11ce000u + i * 7919);
    }
}

static void test_callee_saved(void *stack)
{
    survive_bad_a = 0;
    cn__ctx_make(&a_ctx, stack, STACK_SIZE, survive_entry, NULL);
    long bad = 0;
    cn__ctx_switch(&main_ctx, &a_ctx); /* A is now parked inside survive() */
    for (uint64_t i = 0; i < SURVIVE_ROUNDS; i++) {
        bad += survive(&main_ctx, &a_ctx, 0xb0b0000u + i * 104729);
    }
    CHECK(bad == 0);
    CHECK(survive_bad_a == 0);
}

/* ---- a ring of three contexts ---------------------------------------------- */

static char ring_log[3 * RING_ROUNDS + 1];
static size_t ring_len;

static void ring_a(void *arg)
{
    (void)arg;
    for (;;) {
        ring_log[ring_len++] = 'a';
        cn__ctx_switch(&a_ctx, &b_ctx);
    }
}

static void ring_b(void *arg)
{
    (void)arg;
    for (;;) {
        ring_log[ring_len++] = 'b';
        cn__ctx_switch(&b_ctx, &main_ctx);
    }
}

static void test_ring(void *stack_a, void *stack_b)
{
    ring_len = 0;
    cn__ctx_make(&a_ctx, stack_a, STACK_SIZE, ring_a, NULL);
    cn__ctx_make(&b_ctx, stack_b, STACK_SIZE, ring_b, NULL);
    for (int i = 0; i < RING_ROUNDS; i++) {
        ring_log[ring_len++] = 'm';
        cn__ctx_switch(&main_ctx, &a_ctx);
    }
    CHECK(ring_len == 3 * RING_ROUNDS);
    int bad = 0;
    for (size_t i = 0; i < ring_len; i++) {
        bad += ring_log[i] != "mab"[i % 3];
    }
    CHECK(bad == 0);
}

/* ---- floating-point rounding mode per context ------------------------------ */

/* +1 if division rounds up, -1 if down, 0 for to-nearest (and toward zero):
 * 1/3 and -(-1/3) differ exactly when the rounding is directed. Everything
 * goes through volatile so nothing is folded or rearranged at compile time. */
static int rounding_direction(void)
{
    volatile double one = 1.0, minus_one = -1.0, three = 3.0;
    double up = one / three;
    volatile double minus_third = minus_one / three; /* keeps -(a/b) from becoming (-a)/b */
    double down = -minus_third;
    return (up > down) - (up < down);
}

#if defined(__x86_64__)
/* The same with x87 arithmetic, whose control word is separate from MXCSR. */
static int rounding_direction_x87(void)
{
    volatile long double one = 1.0L, minus_one = -1.0L, three = 3.0L;
    long double up = one / three;
    volatile long double minus_third = minus_one / three;
    long double down = -minus_third;
    return (up > down) - (up < down);
}
#endif

/* Valgrind computes with round-to-nearest whatever the mode (its manual,
 * "Limitations"), though it keeps the mode itself; its preload library is how
 * to tell without depending on valgrind.h. */
static bool arithmetic_follows_mode(void)
{
    const char *preload = getenv("LD_PRELOAD");
    return preload == NULL || strstr(preload, "vgpreload") == NULL;
}

static void check_mode(int mode, int direction)
{
    CHECK(fegetround() == mode);
    if (!arithmetic_follows_mode()) {
        return;
    }
    CHECK(rounding_direction() == direction);
#if defined(__x86_64__)
    CHECK(rounding_direction_x87() == direction);
#endif
}

struct fp_role {
    int mode;
    int direction;
    struct cn__ctx *self;
    struct cn__ctx *next;
};

static void fp_entry(void *arg)
{
    struct fp_role *role = arg;
    /* A new context starts with the control state of the thread that made
     * it: main was (and still is) rounding to nearest. */
    check_mode(FE_TONEAREST, 0);
    fesetround(role->mode);
    for (;;) {
        check_mode(role->mode, role->direction);
        cn__ctx_switch(role->self, role->next);
    }
}

static void test_fp_rounding(void *stack_a, void *stack_b)
{
    fesetround(FE_TONEAREST);
    struct fp_role a = {FE_UPWARD, 1, &a_ctx, &b_ctx};
    struct fp_role b = {FE_DOWNWARD, -1, &b_ctx, &main_ctx};
    cn__ctx_make(&a_ctx, stack_a, STACK_SIZE, fp_entry, &a);
    cn__ctx_make(&b_ctx, stack_b, STACK_SIZE, fp_entry, &b);
    for (int i = 0; i < FP_ROUNDS; i++) {
        cn__ctx_switch(&main_ctx, &a_ctx);
        check_mode(FE_TONEAREST, 0);
    }
    /* main changes its own mode; A and B must not see it. */
    fesetround(FE_TOWARDZERO);
    for (int i = 0; i < FP_ROUNDS; i++) {
        cn__ctx_switch(&main_ctx, &a_ctx);
        CHECK(fegetround() == FE_TOWARDZERO);
    }
    fesetround(FE_TONEAREST);
}

int main(void)
{
    void *stack_a = map_stack();
    void *stack_b = malloc_stack();

    test_ping_pong(stack_a);
    test_callee_saved(stack_a);
    test_ring(stack_a, stack_b);
    test_fp_rounding(stack_a, stack_b);

    /* The contexts are parked for good; their stacks can go. */
    munmap(stack_a, STACK_SIZE);
    free(stack_b);

#if defined(CN_CTX_UCONTEXT)
    const char *backend = "ucontext";
#elif defined(__x86_64__)
    const char *backend = "x86_64";
#elif defined(__aarch64__)
    const char *backend = "aarch64";
#else
    const char *backend = "unknown";
#endif
    if (failures != 0) {
        fprintf(stderr, "switch_test (%s): %ld of %ld checks failed\n", backend, failures, checks);
        return 1;
    }
    printf("switch_test (%s): %ld checks passed\n", backend, checks);
    return 0;
}
