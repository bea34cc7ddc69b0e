/* SPDX-License-Identifier: MIT */
/*
 * The scheduler: one per uv_loop_t, one loop per thread.
 *
 * Coroutines run only inside cn__run_ready(), which the loop calls from a
 * prepare handle (before it polls: runs what timers woke) and a check handle
 * (after it polls: runs what I/O callbacks woke); I/O code may also call it
 * straight from its callback. A coroutine runs until it parks, yields or
 * ends, then switches back to the loop's stack, where the drain picks the
 * next ready one. An idle handle is active exactly while coroutines are ready
 * outside a drain, so the loop never sleeps in epoll with work pending and
 * never spins when there is none.
 *
 * Deadlines of parked coroutines sit in one binary min-heap served by one uv
 * timer armed for the earliest, so a park with a deadline costs a heap
 * insert and no handle. Prepare/check are unreferenced: the loop stays alive
 * only for ready coroutines (idle), pending deadlines (timer) and the
 * users' own handles and requests. When it stops with coroutines still
 * parked, nothing can ever wake them: cn_run_on cancels them so they unwind.
 *
 * The current scheduler is a thread-local with the initial-exec model (no
 * __tls_get_addr call). Coroutines never move between threads, so a
 * compiler caching the TLS address across a switch is correct.
 */
#include "sched.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CN_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define CN_ASAN 1
#endif
#if defined(CN_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif

#ifndef CN_DEFAULT_STACK_KIB
#define CN_DEFAULT_STACK_KIB 64
#endif

#define NOT_IN_HEAP SIZE_MAX

enum {
    DRAIN_BUDGET = 16384, /* resumes per drain before the loop polls again */
    FREE_COS_MAX = 1024,  /* recycled coroutine records kept */
};

static __thread struct cn_sched *tl_sched __attribute__((tls_model("initial-exec")));

/* The running coroutine's before-park hook (cn__park_hook_set). A thread
 * slot rather than a coroutine field: a hook is set by the running
 * coroutine and fires before it switches away, so it never outlives its
 * coroutine's turn on the thread. Checked with one load at each place a
 * coroutine gives up the thread (park, yield, end). */
static __thread cn__park_hook_fn tl_hook __attribute__((tls_model("initial-exec")));
static __thread void *tl_hook_arg __attribute__((tls_model("initial-exec")));

struct cn_sched *cn__sched(void)
{
    return tl_sched;
}

struct cn_co *cn__current(void)
{
    struct cn_sched *s = tl_sched;
    return s ? s->current : NULL;
}

uv_loop_t *cn__sched_loop(struct cn_sched *s)
{
    return s->loop;
}

uv_loop_t *cn_loop(void)
{
    struct cn_sched *s = tl_sched;
    return s ? s->loop : NULL;
}

struct cn_co *cn_self(void)
{
    return cn__current();
}

int64_t cn_now(void)
{
    struct cn_sched *s = tl_sched;
    return s ? (int64_t)uv_now(s->loop) : (int64_t)(uv_hrtime() / 1000000u);
}

const char *cn_co_name(const struct cn_co *co)
{
    return co->name ? co->name : "coroutine";
}

bool cn__park_hook_set(cn__park_hook_fn fn, void *arg)
{
    if (tl_hook && tl_hook_arg != arg) {
        return false;
    }
    tl_hook = fn;
    tl_hook_arg = arg;
    return true;
}

void cn__park_hook_clear(void *arg)
{
    if (tl_hook_arg == arg) {
        tl_hook = NULL;
        tl_hook_arg = NULL;
    }
}

/* Cleared first: the hook may set a new one, and a park inside it (a bug)
 * must not recurse. */
static void run_park_hook(void)
{
    cn__park_hook_fn fn = tl_hook;
    void *arg = tl_hook_arg;
    tl_hook = NULL;
    tl_hook_arg = NULL;
    fn(arg);
}

bool cn__parked(const struct cn_co *co)
{
    return co->state == CN__PARKED;
}

/* ---- switching ----------------------------------------------------------- */

/* From the loop's stack into co. ASan must be told which stack is about to
 * run, or it reports false stack-buffer errors (see DESIGN.md pitfalls). */
static void switch_into(struct cn_sched *s, struct cn_co *co)
{
#if defined(CN_ASAN)
    __sanitizer_start_switch_fiber(&s->asan_fake, co->stack.lo, co->stack.size);
#endif
    cn__ctx_switch(&s->ctx, &co->ctx);
#if defined(CN_ASAN)
    __sanitizer_finish_switch_fiber(s->asan_fake, NULL, NULL);
#endif
}

/* From co back to the loop's stack. An ending coroutine passes no fake-stack
 * slot so ASan frees its fake frames. */
static void switch_out(struct cn_sched *s, struct cn_co *co, bool ending)
{
#if defined(CN_ASAN)
    __sanitizer_start_switch_fiber(ending ? NULL : &co->asan_fake, s->asan_main_lo,
                                   s->asan_main_size);
#else
    (void)ending;
#endif
    cn__ctx_switch(&co->ctx, &s->ctx);
#if defined(CN_ASAN)
    __sanitizer_finish_switch_fiber(co->asan_fake, &s->asan_main_lo, &s->asan_main_size);
#endif
}

static void co_entry(void *arg)
{
    struct cn_co *co = arg;
    struct cn_sched *s = co->sched;
#if defined(CN_ASAN)
    __sanitizer_finish_switch_fiber(NULL, &s->asan_main_lo, &s->asan_main_size);
#endif
    co->result = co->fn(co->arg);
    if (CN__UNLIKELY(tl_hook != NULL)) {
        run_park_hook();
    }
    co->state = CN__DONE;
    switch_out(s, co, true);
    abort(); /* an ended coroutine is never resumed */
}

/* ---- ready queue ----------------------------------------------------------- */

static void on_idle(uv_idle_t *h)
{
    (void)h; /* only keeps the loop from blocking in poll; prepare does the work */
}

static void ready_push(struct cn_sched *s, struct cn_co *co)
{
    co->state = CN__READY;
    co->next = NULL;
    if (s->ready_tail) {
        s->ready_tail->next = co;
    } else {
        s->ready_head = co;
    }
    s->ready_tail = co;
    if (!s->draining && !uv_is_active((uv_handle_t *)&s->idle)) {
        uv_idle_start(&s->idle, on_idle);
    }
}

static struct cn_co *ready_pop(struct cn_sched *s)
{
    struct cn_co *co = s->ready_head;
    if (co) {
        s->ready_head = co->next;
        if (!s->ready_head) {
            s->ready_tail = NULL;
        }
    }
    return co;
}

/* ---- deadline heap ------------------------------------------------------- */

static void heap_set(struct cn_sched *s, size_t i, struct cn_co *co)
{
    s->heap[i] = co;
    co->heap_idx = i;
}

static void heap_up(struct cn_sched *s, size_t i)
{
    struct cn_co *co = s->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (s->heap[parent]->deadline <= co->deadline) {
            break;
        }
        heap_set(s, i, s->heap[parent]);
        i = parent;
    }
    heap_set(s, i, co);
}

static void heap_down(struct cn_sched *s, size_t i)
{
    struct cn_co *co = s->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= s->heap_len) {
            break;
        }
        if (child + 1 < s->heap_len && s->heap[child + 1]->deadline < s->heap[child]->deadline) {
            child++;
        }
        if (co->deadline <= s->heap[child]->deadline) {
            break;
        }
        heap_set(s, i, s->heap[child]);
        i = child;
    }
    heap_set(s, i, co);
}

static int heap_push(struct cn_sched *s, struct cn_co *co)
{
    if (s->heap_len == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 256;
        struct cn_co **h = realloc(s->heap, cap * sizeof *h);
        if (!h) {
            return -ENOMEM;
        }
        s->heap = h;
        s->heap_cap = cap;
    }
    s->heap[s->heap_len] = co;
    heap_up(s, s->heap_len++);
    return 0;
}

static void heap_remove(struct cn_sched *s, struct cn_co *co)
{
    size_t i = co->heap_idx;
    co->heap_idx = NOT_IN_HEAP;
    struct cn_co *last = s->heap[--s->heap_len];
    if (i == s->heap_len) {
        return;
    }
    heap_set(s, i, last);
    if (i > 0 && s->heap[(i - 1) / 2]->deadline > last->deadline) {
        heap_up(s, i);
    } else {
        heap_down(s, i);
    }
}

static void on_timer(uv_timer_t *t);

/* Keeps the uv timer armed for the earliest deadline. A timer armed for a
 * deadline that has since been removed just fires early and re-arms. */
static void arm_timer(struct cn_sched *s)
{
    if (s->heap_len == 0) {
        if (s->timer_due >= 0) {
            uv_timer_stop(&s->timer);
            s->timer_due = -1;
        }
        return;
    }
    int64_t due = s->heap[0]->deadline;
    if (due == s->timer_due) {
        return;
    }
    int64_t now = (int64_t)uv_now(s->loop);
    uv_timer_start(&s->timer, on_timer, due > now ? (uint64_t)(due - now) : 0, 0);
    s->timer_due = due;
}

static void on_timer(uv_timer_t *t)
{
    struct cn_sched *s = t->data;
    int64_t now = (int64_t)uv_now(s->loop);
    s->timer_due = -1;
    while (s->heap_len > 0 && s->heap[0]->deadline <= now) {
        cn__wake(s->heap[0], -ETIMEDOUT);
    }
    arm_timer(s);
}

/* ---- park and wake --------------------------------------------------------- */

int cn__park(int64_t deadline, unsigned flags)
{
    struct cn_sched *s = tl_sched;
    struct cn_co *co = s->current;
    if (co->cancelled && !(flags & CN__PARK_NOCANCEL)) {
        return -ECANCELED;
    }
    if (deadline == 0 || (deadline > 0 && deadline <= (int64_t)uv_now(s->loop))) {
        return -ETIMEDOUT;
    }
    if (CN__UNLIKELY(tl_hook != NULL)) {
        run_park_hook(); /* only now: a park that returns at once keeps the thread */
    }
    if (deadline > 0) {
        co->deadline = deadline;
        if (heap_push(s, co) != 0) {
            return -ENOMEM;
        }
        if (co->heap_idx == 0) {
            arm_timer(s);
        }
    }
    co->state = CN__PARKED;
    co->park_flags = (unsigned char)flags;
    switch_out(s, co, false);
    return co->wake_rc;
}

bool cn__wake(struct cn_co *co, int rc)
{
    if (co->state != CN__PARKED) {
        return false;
    }
    struct cn_sched *s = co->sched;
    if (co->heap_idx != NOT_IN_HEAP) {
        heap_remove(s, co);
        if (s->heap_len == 0) {
            arm_timer(s); /* an armed timer would keep the loop alive for nothing */
        }
    }
    co->wake_rc = rc;
    ready_push(s, co);
    return true;
}

/* ---- coroutine life ------------------------------------------------------ */

static struct cn_co *co_alloc(struct cn_sched *s)
{
    struct cn_co *co = s->free_cos;
    if (co) {
        s->free_cos = co->next;
        s->nfree_cos--;
    } else {
        co = malloc(sizeof *co);
    }
    return co;
}

static void co_release(struct cn_sched *s, struct cn_co *co)
{
    if (s->nfree_cos < FREE_COS_MAX) {
        co->next = s->free_cos;
        s->free_cos = co;
        s->nfree_cos++;
    } else {
        free(co);
    }
}

static void live_insert(struct cn_sched *s, struct cn_co *co)
{
    co->live_prev = NULL;
    co->live_next = s->live;
    if (s->live) {
        s->live->live_prev = co;
    }
    s->live = co;
    s->nlive++;
}

static void live_remove(struct cn_sched *s, struct cn_co *co)
{
    if (co->live_prev) {
        co->live_prev->live_next = co->live_next;
    } else {
        s->live = co->live_next;
    }
    if (co->live_next) {
        co->live_next->live_prev = co->live_prev;
    }
    s->nlive--;
}

static size_t default_stack_size(void)
{
    return (size_t)CN_DEFAULT_STACK_KIB * 1024u;
}

int cn__spawn_on(struct cn_sched *s, struct cn_co **out, cn_fn fn, void *arg,
                 const struct cn_spawn_opts *opts, struct cn_group *group)
{
    size_t size = opts && opts->stack_size ? opts->stack_size : default_stack_size();
    struct cn_co *co = co_alloc(s);
    if (!co) {
        return -ENOMEM;
    }
    memset(co, 0, sizeof *co);
    int rc = cn__stack_get(&s->pool, size, &co->stack);
    if (rc != 0) {
        co_release(s, co);
        return rc;
    }
    co->sched = s;
    co->fn = fn;
    co->arg = arg;
    co->name = opts ? opts->name : NULL;
    co->group = group;
    co->heap_idx = NOT_IN_HEAP;
    co->detached = out == NULL;
    cn__ctx_make(&co->ctx, co->stack.lo, co->stack.size, co_entry, co);
    live_insert(s, co);
    ready_push(s, co);
    if (out) {
        *out = co;
    }
    return 0;
}

int cn_spawn(struct cn_co **out, cn_fn fn, void *arg, const struct cn_spawn_opts *opts)
{
    struct cn_sched *s = tl_sched;
    if (!s) {
        return CN_ENOTCORO;
    }
    return cn__spawn_on(s, out, fn, arg, opts, NULL);
}

static void cancel_all(struct cn_sched *s)
{
    for (struct cn_co *co = s->live; co; co = co->live_next) {
        cn_cancel(co);
    }
}

/* Runs on the loop's stack once co has switched away for the last time. */
static void co_ended(struct cn_sched *s, struct cn_co *co)
{
    cn__stack_put(&s->pool, &co->stack);
    live_remove(s, co);
    if (co == s->main) {
        cancel_all(s); /* main's end ends the program's coroutines */
    }
    if (co->group) {
        cn__group_child_ended(co->group, co);
    }
    if (co->joiner) {
        cn__wake(co->joiner, 0);
    }
    if (co->detached) {
        co_release(s, co);
    }
}

static void resume(struct cn_sched *s, struct cn_co *co)
{
    s->current = co;
    co->state = CN__RUNNING;
    switch_into(s, co);
    s->current = NULL;
    if (co->state == CN__DONE) {
        co_ended(s, co);
    }
}

void cn__run_ready(struct cn_sched *s)
{
    if (s->draining) {
        return;
    }
    s->draining = true;
    struct cn_co *co;
    for (int budget = DRAIN_BUDGET; budget > 0 && (co = ready_pop(s)) != NULL; budget--) {
        resume(s, co);
    }
    s->draining = false;
    if (s->ready_head) {
        uv_idle_start(&s->idle, on_idle);
    } else {
        uv_idle_stop(&s->idle);
    }
}

static void on_prepare(uv_prepare_t *h)
{
    cn__run_ready(h->data);
}

static void on_check(uv_check_t *h)
{
    cn__run_ready(h->data);
}

void cn__stack_trim(void)
{
    struct cn_sched *s = tl_sched;
    struct cn_co *co = s ? s->current : NULL;
    if (!co) {
        return;
    }
    size_t page = s->pool.page;
    /* Keep the page below the current one as a margin for the red zone and
     * the madvise call's own frame. */
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    char *keep = (char *)((sp & ~(uintptr_t)(page - 1)) - 2 * page);
    if (keep > co->stack.lo) {
        madvise(co->stack.lo, (size_t)(keep - co->stack.lo), MADV_DONTNEED);
    }
}

/* ---- public coroutine calls ---------------------------------------------- */

int cn_join(struct cn_co *co, int *result, int64_t deadline)
{
    struct cn_co *self = cn__current();
    if (!self) {
        return CN_ENOTCORO;
    }
    if (co == self) {
        return -EDEADLK;
    }
    if (co->detached || (co->joiner && co->joiner != self)) {
        return CN_EJOINED;
    }
    if (co->state != CN__DONE) {
        co->joiner = self;
        int rc = cn__park(deadline, 0);
        co->joiner = NULL;
        if (co->state != CN__DONE) {
            return rc < 0 ? rc : -EINTR;
        }
    }
    if (result) {
        *result = co->result;
    }
    co_release(co->sched, co);
    return 0;
}

void cn_detach(struct cn_co *co)
{
    if (co->state == CN__DONE) {
        co_release(co->sched, co);
    } else {
        co->detached = true;
    }
}

void cn_cancel(struct cn_co *co)
{
    if (co->state == CN__DONE) {
        return;
    }
    co->cancelled = true;
    if (co->state == CN__PARKED && !(co->park_flags & CN__PARK_NOCANCEL)) {
        cn__wake(co, -ECANCELED);
    }
}

bool cn_cancelled(void)
{
    struct cn_co *co = cn__current();
    return co && co->cancelled;
}

int cn_yield(void)
{
    struct cn_sched *s = tl_sched;
    struct cn_co *co = s ? s->current : NULL;
    if (!co) {
        return CN_ENOTCORO;
    }
    if (CN__UNLIKELY(tl_hook != NULL)) {
        run_park_hook(); /* first: what it spawns runs before this coroutine resumes */
    }
    ready_push(s, co); /* behind everyone ready now; the drain budget bounds a yield storm */
    switch_out(s, co, false);
    return co->cancelled ? -ECANCELED : 0;
}

int cn_sleep_until(int64_t deadline)
{
    if (!cn__current()) {
        return CN_ENOTCORO;
    }
    int rc = cn__park(deadline < 0 ? -1 : deadline, 0);
    return rc == -ETIMEDOUT ? 0 : rc;
}

int cn_sleep(int64_t ms)
{
    if (!cn__current()) {
        return CN_ENOTCORO;
    }
    return cn_sleep_until(cn_now() + (ms > 0 ? ms : 0));
}

static void on_user_handle_closed(uv_handle_t *h)
{
    cn__wake(h->data, 0);
}

void cn_uv_close(uv_handle_t *h)
{
    struct cn_co *co = cn__current();
    if (!co) {
        uv_close(h, NULL); /* nobody to park: the caller must keep h alive */
        return;
    }
    void *saved = h->data;
    h->data = co;
    uv_close(h, on_user_handle_closed);
    /* Only the close callback wakes this park (uncancellable, no deadline). */
    cn__park(-1, CN__PARK_NOCANCEL);
    h->data = saved;
}

/* ---- running a scheduler ------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    struct cn_sched *s = h->data;
    s->closing--;
}

static int sched_open(struct cn_sched *s, uv_loop_t *loop)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->timer_due = -1;
    cn__stack_pool_init(&s->pool);
    uv_prepare_init(loop, &s->prepare);
    uv_check_init(loop, &s->check);
    uv_idle_init(loop, &s->idle);
    uv_timer_init(loop, &s->timer);
    s->prepare.data = s->check.data = s->idle.data = s->timer.data = s;
    uv_prepare_start(&s->prepare, on_prepare);
    uv_check_start(&s->check, on_check);
    uv_unref((uv_handle_t *)&s->prepare);
    uv_unref((uv_handle_t *)&s->check);
    return 0;
}

static void sched_close(struct cn_sched *s)
{
    uv_handle_t *handles[] = {(uv_handle_t *)&s->prepare, (uv_handle_t *)&s->check,
                              (uv_handle_t *)&s->idle, (uv_handle_t *)&s->timer};
    for (size_t i = 0; i < sizeof handles / sizeof handles[0]; i++) {
        s->closing++;
        uv_close(handles[i], on_handle_closed);
    }
    while (s->closing > 0) {
        uv_run(s->loop, UV_RUN_NOWAIT);
    }
    while (s->free_cos) {
        struct cn_co *co = s->free_cos;
        s->free_cos = co->next;
        free(co);
    }
    free(s->heap);
    cn__stack_pool_free(&s->pool);
}

/* Runs the loop until every coroutine has ended. A loop that stops while
 * coroutines are parked has nothing left that could wake them: cancel them
 * so they unwind. If even that makes nobody ready, they are all in
 * uncancellable waits on each other, a bug that would otherwise hang. */
static void run_until_done(struct cn_sched *s)
{
    while (s->nlive > 0) {
        uv_run(s->loop, UV_RUN_DEFAULT);
        if (s->nlive == 0 || s->ready_head) {
            continue;
        }
        cancel_all(s);
        if (!s->ready_head) {
            fprintf(stderr, "coronet: %zu coroutine(s) deadlocked in uncancellable waits\n",
                    s->nlive);
            abort();
        }
    }
}

int cn_run_on(uv_loop_t *loop, cn_fn fn, void *arg)
{
    if (tl_sched) {
        return -EBUSY;
    }
    struct cn_sched *s = malloc(sizeof *s);
    if (!s) {
        return -ENOMEM;
    }
    sched_open(s, loop);
    struct cn__altstack alt;
    cn__overflow_thread_init(&alt);
    tl_sched = s;
    static const struct cn_spawn_opts main_opts = {.name = "main", .stack_size = 0};
    int rc = cn__spawn_on(s, &s->main, fn, arg, &main_opts, NULL);
    if (rc == 0) {
        run_until_done(s);
        rc = s->main->result;
        co_release(s, s->main);
    }
    tl_sched = NULL;
    sched_close(s);
    cn__overflow_thread_fini(&alt);
    free(s);
    return rc;
}

static void close_leftover(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

int cn_run(cn_fn fn, void *arg)
{
    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    if (rc != 0) {
        return rc;
    }
    rc = cn_run_on(&loop, fn, arg);
    if (uv_loop_close(&loop) == UV_EBUSY) {
        /* Handles the program left open: close them so the loop can go. */
        uv_walk(&loop, close_leftover, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    return rc;
}
