/* SPDX-License-Identifier: MIT */
/*
 * Wait queues: intrusive FIFOs of parked coroutines (see internal.h for the
 * rules that let wakers and timed-out owners share them safely).
 */
#include "internal.h"

void cn__waitq_push(struct cn__waitq *q, struct cn__waiter *w)
{
    w->q = q;
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail) {
        q->tail->next = w;
    } else {
        q->head = w;
    }
    q->tail = w;
}

void cn__waitq_remove(struct cn__waiter *w)
{
    struct cn__waitq *q = w->q;
    if (!q) {
        return;
    }
    if (w->prev) {
        w->prev->next = w->next;
    } else {
        q->head = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    } else {
        q->tail = w->prev;
    }
    w->q = NULL;
    w->next = w->prev = NULL;
}

struct cn__waiter *cn__waitq_pop_parked(struct cn__waitq *q)
{
    struct cn__waiter *w;
    while ((w = q->head) != NULL) {
        cn__waitq_remove(w);
        if (cn__parked(w->co)) {
            return w;
        }
    }
    return NULL;
}

void cn__waitq_wake_all(struct cn__waitq *q, int rc)
{
    struct cn__waiter *w;
    while ((w = cn__waitq_pop_parked(q)) != NULL) {
        w->rc = rc;
        cn__wake(w->co, rc);
    }
}
