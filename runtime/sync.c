/* SPDX-License-Identifier: MIT */
/*
 * Wait group, mutex, semaphore and event: each a counter or flag plus one
 * embedded wait queue, so none of them allocates (waiters live on the parked
 * coroutines' stacks, see internal.h).
 *
 * The mutex and the semaphore hand what they guard straight to the oldest
 * parked waiter (owner or permit) instead of freeing it and letting the
 * waiter race for it: nobody can barge in between, order is FIFO, and a
 * waiter that timed out or was cancelled is no longer parked, so
 * cn__waitq_pop_parked skips it and it never receives anything.
 *
 * The waker sets w->rc = 0 when it hands something over; the owner trusts
 * that over cn__park's result, so a lock or permit handed over just before a
 * cancel or deadline struck is reported (and kept), never lost.
 *
 * Misuse that cannot be reported through a return value (a wait group count
 * going negative, unlocking a mutex the caller does not own) aborts, like a
 * double free would.
 *
 * Loop-thread only; the structures may live anywhere the waiters can reach.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

/* w->rc while nothing was handed to the waiter. */
#define WAITING 1

static void fatal(const char *msg)
{
    fprintf(stderr, "coronet: %s\n", msg);
    abort();
}

/* Parks the caller in q. Returns 0 if a waker handed it what it waits for,
 * else cn__park's result (0 from a plain wake, -ETIMEDOUT, -ECANCELED). */
static int park_in(struct cn__waitq *q, int64_t deadline)
{
    if (deadline == 0) {
        return -ETIMEDOUT;
    }
    struct cn__waiter w = {.co = cn__current(), .rc = WAITING};
    if (!w.co) {
        return CN_ENOTCORO;
    }
    cn__waitq_push(q, &w);
    int rc = cn__park(deadline, 0);
    cn__waitq_remove(&w);
    return w.rc != WAITING ? w.rc : rc;
}

/* Wakes the oldest parked waiter of q, handing it ownership; false if none. */
static bool hand_off(struct cn__waitq *q, struct cn_co **co)
{
    struct cn__waiter *w = cn__waitq_pop_parked(q);
    if (!w) {
        return false;
    }
    if (co) {
        *co = w->co;
    }
    w->rc = 0;
    cn__wake(w->co, 0);
    return true;
}

/* ---- wait group ------------------------------------------------------------ */

void cn_wg_add(struct cn_wg *wg, int64_t n)
{
    wg->count += n;
    if (wg->count < 0) {
        fatal("cn_wg: count went negative");
    }
    if (wg->count == 0) {
        cn__waitq_wake_all(&wg->waiters, 0);
    }
}

void cn_wg_done(struct cn_wg *wg)
{
    cn_wg_add(wg, -1);
}

int cn_wg_wait(struct cn_wg *wg, int64_t deadline)
{
    /* Every blocking call fails at once after cancel, even a ready one. */
    if (cn_cancelled()) {
        return -ECANCELED;
    }
    if (wg->count == 0) {
        return 0;
    }
    return park_in(&wg->waiters, deadline);
}

/* ---- mutex ----------------------------------------------------------------- */

int cn_mutex_lock(struct cn_mutex *m, int64_t deadline)
{
    struct cn_co *self = cn__current();
    if (!self) {
        return CN_ENOTCORO; /* the owner is a coroutine; NULL means unlocked */
    }
    if (cn_cancelled()) {
        return -ECANCELED;
    }
    if (m->owner == self) {
        return -EDEADLK;
    }
    /* An unowned mutex has no parked waiters: unlock hands it to them. */
    if (!m->owner) {
        m->owner = self;
        return 0;
    }
    return park_in(&m->waiters, deadline);
}

void cn_mutex_unlock(struct cn_mutex *m)
{
    if (!m->owner || m->owner != cn__current()) {
        fatal("cn_mutex_unlock: caller does not own the mutex");
    }
    if (!hand_off(&m->waiters, &m->owner)) {
        m->owner = NULL;
    }
}

/* ---- semaphore ------------------------------------------------------------- */

int cn_sem_acquire(struct cn_sem *s, int64_t deadline)
{
    if (cn_cancelled()) {
        return -ECANCELED;
    }
    /* A free permit means nobody is parked: release hands permits over. */
    if (s->count > 0) {
        s->count--;
        return 0;
    }
    return park_in(&s->waiters, deadline);
}

void cn_sem_release(struct cn_sem *s)
{
    if (!hand_off(&s->waiters, NULL)) {
        s->count++;
    }
}

/* ---- event ----------------------------------------------------------------- */

void cn_event_set(struct cn_event *e)
{
    e->set = true;
    cn__waitq_wake_all(&e->waiters, 0);
}

void cn_event_reset(struct cn_event *e)
{
    e->set = false;
}

int cn_event_wait(struct cn_event *e, int64_t deadline)
{
    if (cn_cancelled()) {
        return -ECANCELED;
    }
    if (e->set) {
        return 0;
    }
    return park_in(&e->waiters, deadline);
}
