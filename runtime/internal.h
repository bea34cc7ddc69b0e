/* SPDX-License-Identifier: MIT */
/*
 * Runtime internals shared by the files of runtime/ and by the layers above
 * (net/, ws/, kinesis/). Everything here is loop-thread only.
 *
 * The one blocking primitive is cn__park(): the current coroutine gives the
 * thread back to the scheduler until someone calls cn__wake() on it, its
 * deadline passes (-ETIMEDOUT) or it is cancelled (-ECANCELED). Every
 * blocking call in coronet is built from it, which is how every blocking call
 * gets deadlines and cancellation for free.
 *
 * Wait queues hold waiters that live on the parked coroutine's stack. The
 * rules that keep them consistent without any extra bookkeeping:
 *   - A waker only completes a waiter whose coroutine is still parked
 *     (cn__waitq_pop_parked drops the others), and unlinks what it completes.
 *   - After cn__park returns, the owner unlinks its waiter if it is still
 *     linked (timeout or cancel left it there).
 */
#ifndef CORONET_RUNTIME_INTERNAL_H
#define CORONET_RUNTIME_INTERNAL_H

#include "coronet/runtime.h"

#define CN__UNUSED __attribute__((unused))
#define CN__LIKELY(x) __builtin_expect(!!(x), 1)
#define CN__UNLIKELY(x) __builtin_expect(!!(x), 0)

struct cn_sched;

/* A parked coroutine in one wait queue. Lives on the parked coroutine's stack. */
struct cn__waiter {
    struct cn__waiter *next;
    struct cn__waiter *prev;
    struct cn__waitq *q; /* queue it is linked in; NULL when unlinked */
    struct cn_co *co;
    void *data;   /* primitive-specific: the value buffer for channels */
    size_t index; /* primitive-specific: the case index for cn_chan_choose */
    int rc;       /* primitive-specific result handed over by the waker */
};

/* Appends w (w->co, w->data and w->index set by the caller). */
void cn__waitq_push(struct cn__waitq *q, struct cn__waiter *w);
/* Unlinks w if it is linked; safe to call twice. */
void cn__waitq_remove(struct cn__waiter *w);
/* Unlinks and returns the oldest waiter whose coroutine is still parked,
 * dropping (unlinking) stale ones on the way; NULL if there is none. */
struct cn__waiter *cn__waitq_pop_parked(struct cn__waitq *q);
/* Wakes every parked waiter with rc and empties the queue. */
void cn__waitq_wake_all(struct cn__waitq *q, int rc);
static inline bool cn__waitq_empty(const struct cn__waitq *q)
{
    return q->head == NULL;
}

enum {
    CN__PARK_NOCANCEL = 1, /* cancellation does not interrupt this park */
};

/* Parks the current coroutine. Returns the rc given to cn__wake, or
 * -ETIMEDOUT when the deadline passes (deadline 0 returns -ETIMEDOUT without
 * parking), or -ECANCELED when cancelled (immediately if already cancelled,
 * unless CN__PARK_NOCANCEL). Must be called from a coroutine. */
int cn__park(int64_t deadline, unsigned flags);

/* Makes a parked coroutine ready; its cn__park returns rc. Returns false (and
 * does nothing) if co is not parked. */
bool cn__wake(struct cn_co *co, int rc);

/* A duty the running coroutine owes before it gives up the thread: fn(arg)
 * runs once, just before the coroutine next parks (a cn__park that does
 * park), yields or ends, and is cleared before it runs. fn must not park
 * (it runs inside cn__park); it may spawn. Only the running coroutine can
 * set one and it fires before any other coroutine runs, so one slot per
 * thread is the running coroutine's slot. Used by ws/ to send replies it
 * held back for coalescing when the coroutine goes to wait on something
 * else. Returns false (setting nothing) if a hook with another arg is
 * pending. */
typedef void (*cn__park_hook_fn)(void *arg);
bool cn__park_hook_set(cn__park_hook_fn fn, void *arg);
/* Clears the pending hook if its arg is arg. */
void cn__park_hook_clear(void *arg);

/* True if co is parked and can be woken. */
bool cn__parked(const struct cn_co *co);

/* The current coroutine or NULL; the scheduler of the calling thread or NULL. */
struct cn_co *cn__current(void);
struct cn_sched *cn__sched(void);
uv_loop_t *cn__sched_loop(struct cn_sched *s);

/* Runs every ready coroutine now. Safe to call from a libuv callback as long
 * as the callback does not touch its handle afterwards; this is how I/O
 * callbacks resume coroutines with no extra loop iteration. */
void cn__run_ready(struct cn_sched *s);

/* Gives back to the kernel the stack pages of the current coroutine below
 * the current frame (one madvise). For code that just returned from a deep
 * call chain and will now park for long, e.g. a TLS handshake (OpenSSL
 * touches ~30 KiB of stack) before an idle connection waits for data. */
void cn__stack_trim(void);

#endif /* CORONET_RUNTIME_INTERNAL_H */
