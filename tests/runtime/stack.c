/* SPDX-License-Identifier: MIT */
/* Stacks: guard pages, overflow reports, sizes per spawn, exhaustion. */
#include "test.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* Each frame keeps 1 KiB live so the recursion really consumes stack. */
static __attribute__((noinline)) int recurse(int depth)
{
    volatile char pad[1024];
    pad[0] = (char)depth;
    pad[sizeof pad - 1] = (char)depth;
    if (depth == 0) {
        return pad[0];
    }
    return recurse(depth - 1) + pad[sizeof pad - 1];
}

static int recurse_forever(void *arg)
{
    return recurse(1 << 30);
}

static int overflow_main(void *arg)
{
    struct cn_spawn_opts opts = {.name = "deep-recursion", .stack_size = 32 * 1024};
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, recurse_forever, NULL, &opts), 0);
    cn_join(co, NULL, -1);
    return 0;
}

static void overflow_is_reported_with_the_coroutine_name(void)
{
    int pipefd[2];
    CN_ASSERT_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    CN_ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[0]);
        cn_run(overflow_main, NULL);
        _exit(0); /* reaching here means the overflow went unnoticed */
    }
    close(pipefd[1]);
    char buf[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(pipefd[0], buf + len, sizeof buf - 1 - len)) > 0) {
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(pipefd[0]);
    int status = 0;
    CN_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    fprintf(stderr, "child stderr:\n%s\n", buf);
    CN_ASSERT(WIFSIGNALED(status));
    CN_ASSERT(strstr(buf, "coroutine stack overflow in 'deep-recursion'") != NULL);
}

static int use_stack(void *arg)
{
    return recurse((int)(intptr_t)arg);
}

static int big_stack_main(void *arg)
{
    /* ~200 frames of >1 KiB: more than the 64 KiB default, less than 1 MiB. */
    struct cn_spawn_opts opts = {.name = "big", .stack_size = 1024 * 1024};
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, use_stack, (void *)(intptr_t)200, &opts), 0);
    CN_ASSERT_EQ(cn_join(co, NULL, -1), 0);
    return 0;
}

static void stack_size_is_chosen_per_spawn(void)
{
    CN_ASSERT_EQ(cn_test_run(big_stack_main, NULL), 0);
}

static int nothing(void *arg)
{
    return 0;
}

static int exhaustion_main(void *arg)
{
    /* An impossible stack: spawn must fail with an error, not abort. */
    struct cn_spawn_opts opts = {.name = "huge", .stack_size = (size_t)1 << 62};
    struct cn_co *co = NULL;
    CN_ASSERT_EQ(cn_spawn(&co, nothing, NULL, &opts), CN_ENOSTACK);
    CN_ASSERT(co == NULL);
    /* and the scheduler is still fine */
    CN_ASSERT_EQ(cn_spawn(&co, nothing, NULL, NULL), 0);
    CN_ASSERT_EQ(cn_join(co, NULL, -1), 0);
    return 0;
}

static void spawn_without_a_stack_fails_cleanly(void)
{
    CN_ASSERT_EQ(cn_test_run(exhaustion_main, NULL), 0);
}

static size_t count_mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    CN_ASSERT(f != NULL);
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        n += c == '\n';
    }
    fclose(f);
    return n;
}

static int pool_main(void *arg)
{
    enum { N = 3000 };
    static struct cn_co *cos[N];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            CN_ASSERT_EQ(cn_spawn(&cos[i], nothing, NULL, NULL), 0);
        }
        for (int i = 0; i < N; i++) {
            CN_ASSERT_EQ(cn_join(cos[i], NULL, -1), 0);
        }
        size_t *after = arg;
        after[round] = count_mappings();
    }
    return 0;
}

static void stack_pool_is_bounded(void)
{
    /* 3000 coroutines at once, three times: the pool keeps at most a fixed
     * number of free stacks, so mappings do not grow round over round. */
    size_t after[3];
    CN_ASSERT_EQ(cn_test_run(pool_main, after), 0);
    CN_ASSERT_EQ(after[1], after[2]);
    CN_ASSERT_LT(after[0], 3000);
}

CN_TEST_MAIN(CN_CASE(overflow_is_reported_with_the_coroutine_name),
             CN_CASE(stack_size_is_chosen_per_spawn), CN_CASE(spawn_without_a_stack_fails_cleanly),
             CN_CASE(stack_pool_is_bounded))
