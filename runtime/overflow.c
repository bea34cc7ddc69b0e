/* SPDX-License-Identifier: MIT */
/*
 * Stack overflow reporting. A coroutine that runs off the bottom of its stack
 * hits the PROT_NONE guard page below it and the kernel raises SIGSEGV. The
 * faulting stack has no room for a signal frame, so the handler runs on a
 * per-thread alternate stack (sigaltstack), installed for every thread that
 * runs a scheduler. If the fault address lies in the current coroutine's
 * guard page the handler prints
 *     coronet: coroutine stack overflow in 'NAME' (stack N KiB)
 * and aborts; any other SIGSEGV goes to the handler that was installed before
 * ours (or the default action), unchanged.
 *
 * Only async-signal-safe calls are made in the handler (write, sigaction,
 * abort); the thread-local scheduler pointer is initial-exec TLS, safe to read.
 */
#include "sched.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static struct sigaction previous;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static size_t append(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at + 1 < cap) {
        buf[at++] = *s++;
    }
    return at;
}

static size_t append_uint(char *buf, size_t at, size_t cap, size_t v)
{
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < sizeof digits);
    while (n && at + 1 < cap) {
        buf[at++] = digits[--n];
    }
    return at;
}

static void report(const struct cn_co *co)
{
    char msg[256];
    size_t n = append(msg, 0, sizeof msg, "coronet: coroutine stack overflow in '");
    n = append(msg, n, sizeof msg, cn_co_name(co));
    n = append(msg, n, sizeof msg, "' (stack ");
    n = append_uint(msg, n, sizeof msg, co->stack.size / 1024);
    n = append(msg, n, sizeof msg, " KiB)\n");
    ssize_t w = write(STDERR_FILENO, msg, n);
    (void)w;
}

static bool in_guard(const struct cn_co *co, const char *addr)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const char *guard = co->stack.lo - page;
    return addr >= guard && addr < co->stack.lo;
}

static void on_segv(int sig, siginfo_t *info, void *uctx)
{
    struct cn_co *co = cn__current();
    if (co && in_guard(co, info->si_addr)) {
        report(co);
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    /* Not ours: hand it on. Restoring the previous action and returning
     * re-executes the faulting instruction into it. */
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction) {
            previous.sa_sigaction(sig, info, uctx);
            return;
        }
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
        return;
    }
    signal(SIGSEGV, SIG_DFL);
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous);
}

void cn__overflow_thread_init(struct cn__altstack *st)
{
    st->mem = NULL;
    st->size = 0;
    pthread_once(&install_once, install);
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) {
        return; /* the thread already has one (ASan installs its own) */
    }
    size_t size = 64 * 1024;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        return; /* reports degrade to a plain SIGSEGV, nothing else breaks */
    }
    stack_t ss = {.ss_sp = mem, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(mem, size);
        return;
    }
    st->mem = mem;
    st->size = size;
}

void cn__overflow_thread_fini(struct cn__altstack *st)
{
    if (!st->mem) {
        return;
    }
    stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(st->mem, st->size);
    st->mem = NULL;
}
