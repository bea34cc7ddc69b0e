/* SPDX-License-Identifier: MIT */
/*
 * The scheduler's structures, shared by sched.c, group.c and overflow.c.
 * Nothing outside runtime/ includes this file.
 */
#ifndef CORONET_RUNTIME_SCHED_H
#define CORONET_RUNTIME_SCHED_H

#include "ctx.h"
#include "internal.h"
#include "stack.h"

enum cn__co_state {
    CN__READY,   /* in the ready queue */
    CN__RUNNING, /* the current coroutine */
    CN__PARKED,  /* in cn__park, waiting for a wake, a deadline or a cancel */
    CN__DONE,    /* ended, waiting to be joined */
};

struct cn_co {
    struct cn__ctx ctx;
    struct cn__stack stack;
    struct cn_sched *sched;
    cn_fn fn;
    void *arg;
    const char *name;
    void *asan_fake;         /* ASan fake stack while suspended */
    struct cn_co *next;      /* ready queue or free list */
    struct cn_co *live_prev; /* every coroutine not yet ended */
    struct cn_co *live_next;
    struct cn_co *joiner;     /* parked in cn_join on this coroutine */
    struct cn_group *group;   /* owning group or NULL */
    struct cn_co *group_prev; /* siblings in the group */
    struct cn_co *group_next;
    int64_t deadline;         /* of the current park, when heap_idx is valid */
    size_t heap_idx;          /* position in the deadline heap or NOT_IN_HEAP */
    int result;               /* fn's return value */
    int wake_rc;              /* what cn__park returns */
    unsigned char state;      /* enum cn__co_state */
    unsigned char park_flags; /* CN__PARK_* of the current park */
    bool cancelled;
    bool detached; /* nobody will join: free at end */
};

struct cn_sched {
    uv_loop_t *loop;
    struct cn_co *current;
    struct cn__ctx ctx; /* the loop's own stack while a coroutine runs */
    void *asan_fake;
    const void *asan_main_lo; /* bounds of the loop's stack, for ASan */
    size_t asan_main_size;
    struct cn_co *ready_head;
    struct cn_co *ready_tail;
    struct cn_co *live; /* list of coroutines not yet ended */
    size_t nlive;
    struct cn_co *main;
    struct cn_co *free_cos; /* recycled coroutine records */
    size_t nfree_cos;
    struct cn_co **heap; /* deadline min-heap */
    size_t heap_len;
    size_t heap_cap;
    int64_t timer_due; /* deadline the uv timer is armed for, or -1 */
    bool draining;
    int closing; /* handles whose close callback is pending */
    struct cn__stack_pool pool;
    uv_prepare_t prepare;
    uv_check_t check;
    uv_idle_t idle;
    uv_timer_t timer;
};

/* Spawns into s; group may be NULL. out == NULL detaches. */
int cn__spawn_on(struct cn_sched *s, struct cn_co **out, cn_fn fn, void *arg,
                 const struct cn_spawn_opts *opts, struct cn_group *group);

/* Called by the scheduler (on the loop stack) when a group child has ended,
 * before its record is recycled. */
void cn__group_child_ended(struct cn_group *g, struct cn_co *co);

/* Per-thread stack-overflow reporting (overflow.c). */
struct cn__altstack {
    void *mem;
    size_t size;
};
void cn__overflow_thread_init(struct cn__altstack *st);
void cn__overflow_thread_fini(struct cn__altstack *st);

#endif /* CORONET_RUNTIME_SCHED_H */
