/* SPDX-License-Identifier: MIT */
/*
 * Groups: structured concurrency. A group owns its children; their records
 * are released when they end, and the group keeps only what its waiters need:
 * how many are still running and the first nonzero result. Closing a group
 * cancels every child and waits, uncancellably, for all of them, so when
 * cn_group_close returns nothing the group started is still running.
 */
#include "sched.h"

#include <errno.h>
#include <stdlib.h>

struct cn_group {
    struct cn_co *children; /* running children */
    size_t nrunning;
    int failure; /* first nonzero child result, 0 if none yet */
    bool closing;
    struct cn__waitq waiters; /* cn_group_wait*, cn_group_close */
};

int cn_group_new(struct cn_group **out)
{
    struct cn_group *g = calloc(1, sizeof *g);
    if (!g) {
        return -ENOMEM;
    }
    *out = g;
    return 0;
}

int cn_group_spawn(struct cn_group *g, cn_fn fn, void *arg, const struct cn_spawn_opts *opts)
{
    struct cn_sched *s = cn__sched();
    if (!s) {
        return CN_ENOTCORO;
    }
    if (g->closing) {
        return CN_ECLOSED;
    }
    struct cn_co *co;
    int rc = cn__spawn_on(s, &co, fn, arg, opts, g);
    if (rc != 0) {
        return rc;
    }
    co->detached = true; /* the group, not a handle, owns it */
    co->group_prev = NULL;
    co->group_next = g->children;
    if (g->children) {
        g->children->group_prev = co;
    }
    g->children = co;
    g->nrunning++;
    return 0;
}

void cn__group_child_ended(struct cn_group *g, struct cn_co *co)
{
    if (co->group_prev) {
        co->group_prev->group_next = co->group_next;
    } else {
        g->children = co->group_next;
    }
    if (co->group_next) {
        co->group_next->group_prev = co->group_prev;
    }
    g->nrunning--;
    bool failed_now = co->result != 0 && g->failure == 0;
    if (failed_now) {
        g->failure = co->result;
    }
    if (failed_now || g->nrunning == 0) {
        cn__waitq_wake_all(&g->waiters, 0);
    }
}

/* Parks until done(g) holds. */
static int wait_until(struct cn_group *g, bool (*done)(const struct cn_group *), int64_t deadline,
                      unsigned flags)
{
    while (!done(g)) {
        struct cn__waiter w = {.co = cn__current()};
        cn__waitq_push(&g->waiters, &w);
        int rc = cn__park(deadline, flags);
        cn__waitq_remove(&w);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static bool all_ended(const struct cn_group *g)
{
    return g->nrunning == 0;
}

static bool failed_or_all_ended(const struct cn_group *g)
{
    return g->failure != 0 || g->nrunning == 0;
}

int cn_group_wait(struct cn_group *g, int64_t deadline)
{
    if (!cn__current()) {
        return CN_ENOTCORO;
    }
    int rc = wait_until(g, all_ended, deadline, 0);
    return rc < 0 ? rc : g->failure;
}

int cn_group_wait_failure(struct cn_group *g, int64_t deadline)
{
    if (!cn__current()) {
        return CN_ENOTCORO;
    }
    int rc = wait_until(g, failed_or_all_ended, deadline, 0);
    return rc < 0 ? rc : g->failure;
}

void cn_group_close(struct cn_group *g)
{
    if (!g) {
        return;
    }
    g->closing = true;
    for (struct cn_co *co = g->children; co; co = co->group_next) {
        cn_cancel(co);
    }
    if (cn__current()) {
        wait_until(g, all_ended, -1, CN__PARK_NOCANCEL);
    } else {
        /* Outside a coroutine nobody can wait: the cancelled children
         * finish on their own and must not report to a freed group. */
        for (struct cn_co *co = g->children; co; co = co->group_next) {
            co->group = NULL;
        }
    }
    free(g);
}
