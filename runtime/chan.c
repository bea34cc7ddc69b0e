/* SPDX-License-Identifier: MIT */
/*
 * Channels: a bounded ring buffer plus two wait queues (parked senders and
 * parked receivers), and cn_chan_choose over several channels.
 *
 * Invariants:
 *   - Receivers park only while the buffer is empty and senders only while it
 *     is full (or always, when unbuffered), so a parked receiver means an
 *     empty buffer and a parked sender means a full one.
 *   - A waiter's data points at its coroutine's value (source for a sender,
 *     destination for a receiver). The waker copies the value itself and sets
 *     w->rc before waking, so the hand-off is complete before the owner runs
 *     again; no element is ever held outside the ring or a waiter's buffer.
 *   - Plain operations and cn_chan_choose share one waiter format: a choose
 *     pushes one waiter per case with index = case number. The first waker
 *     makes the coroutine ready, and cn__waitq_pop_parked then skips its other
 *     waiters, so exactly one case completes.
 *   - w->rc == WAITING until a waker completes the waiter. The owner trusts
 *     w->rc over cn__park's result: a hand-off that happened must be reported
 *     even if a cancel or deadline raced in before the owner resumed.
 *
 * Elements are copied with memcpy, so they need no alignment in the ring.
 * cn_chan_choose takes at most CHOOSE_MAX cases (its waiters are a fixed
 * array on the caller's stack, so a blocking choose never allocates); a longer
 * list gets -EINVAL. Following the header's contract, every call that could
 * block returns -ECANCELED once the caller is cancelled, even if it could
 * complete at once. Called from coroutines of the channel's loop thread only.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Most cases of one cn_chan_choose call (16 waiters: under 1 KiB of stack). */
#define CHOOSE_MAX CN_CHAN_CHOOSE_MAX

/* w->rc while no waker has completed the waiter (results are 0 or -EPIPE). */
#define WAITING 1

struct cn_chan {
    size_t elem_size;
    size_t cap;   /* ring capacity in elements; 0 = unbuffered */
    size_t head;  /* index of the oldest element */
    size_t count; /* buffered elements */
    bool closed;
    struct cn__waitq sendq; /* parked senders: data = value to send */
    struct cn__waitq recvq; /* parked receivers: data = destination */
    unsigned char ring[];   /* cap * elem_size bytes */
};

int cn_chan_new(struct cn_chan **out, size_t elem_size, size_t capacity)
{
    if (elem_size == 0) {
        return -EINVAL;
    }
    if (capacity > (SIZE_MAX - sizeof(struct cn_chan)) / elem_size) {
        return -ENOMEM;
    }
    struct cn_chan *ch = calloc(1, sizeof(*ch) + capacity * elem_size);
    if (!ch) {
        return -ENOMEM;
    }
    ch->elem_size = elem_size;
    ch->cap = capacity;
    *out = ch;
    return 0;
}

static unsigned char *slot(struct cn_chan *ch, size_t i)
{
    return ch->ring + ((ch->head + i) % ch->cap) * ch->elem_size;
}

static void ring_put(struct cn_chan *ch, const void *val)
{
    memcpy(slot(ch, ch->count), val, ch->elem_size);
    ch->count++;
}

static void ring_take(struct cn_chan *ch, void *val)
{
    memcpy(val, slot(ch, 0), ch->elem_size);
    ch->head = (ch->head + 1) % ch->cap;
    ch->count--;
}

/* Finishes a waiter popped by cn__waitq_pop_parked (so its coroutine is
 * parked and its buffer still valid). */
static void complete(struct cn__waiter *w, int rc)
{
    w->rc = rc;
    cn__wake(w->co, 0);
}

/* Performs a send if it needs no waiting; *rc is then its result. */
static bool try_send(struct cn_chan *ch, const void *val, int *rc)
{
    struct cn__waiter *w;
    *rc = 0;
    if (ch->closed) {
        *rc = -EPIPE;
        return true;
    }
    /* Receivers can only be parked on an empty buffer; skipping the queue
     * otherwise keeps the buffered path free of queue walks. */
    if (ch->count == 0 && (w = cn__waitq_pop_parked(&ch->recvq)) != NULL) {
        memcpy(w->data, val, ch->elem_size);
        complete(w, 0);
        return true;
    }
    if (ch->count < ch->cap) {
        ring_put(ch, val);
        return true;
    }
    return false;
}

/* Performs a receive if it needs no waiting; *rc is then its result. */
static bool try_recv(struct cn_chan *ch, void *val, int *rc)
{
    struct cn__waiter *w;
    *rc = 0;
    if (ch->count > 0) {
        ring_take(ch, val);
        /* The freed slot goes to the oldest parked sender, whose value is
         * younger than everything buffered: FIFO order is kept. */
        if ((w = cn__waitq_pop_parked(&ch->sendq)) != NULL) {
            ring_put(ch, w->data);
            complete(w, 0);
        }
        return true;
    }
    if ((w = cn__waitq_pop_parked(&ch->sendq)) != NULL) {
        memcpy(val, w->data, ch->elem_size); /* unbuffered rendezvous */
        complete(w, 0);
        return true;
    }
    if (ch->closed) {
        *rc = -EPIPE;
        return true;
    }
    return false;
}

/* Parks the caller as one waiter of q. Returns the waker's result if one
 * completed the waiter, else cn__park's error. */
static int park_on(struct cn__waitq *q, void *data, int64_t deadline)
{
    if (deadline == 0) {
        return -ETIMEDOUT;
    }
    struct cn__waiter w = {.co = cn__current(), .data = data, .rc = WAITING};
    if (!w.co) {
        return CN_ENOTCORO;
    }
    cn__waitq_push(q, &w);
    int rc = cn__park(deadline, 0);
    cn__waitq_remove(&w);
    return w.rc != WAITING ? w.rc : rc;
}

int cn_chan_send(struct cn_chan *ch, const void *val, int64_t deadline)
{
    int rc;
    /* The contract: once cancelled, every blocking call fails at once, even
     * one that could complete without waiting. */
    if (cn_cancelled()) {
        return -ECANCELED;
    }
    if (try_send(ch, val, &rc)) {
        return rc;
    }
    /* Wakers only read a sender's data, so dropping const is safe. */
    return park_on(&ch->sendq, (void *)val, deadline);
}

int cn_chan_recv(struct cn_chan *ch, void *val, int64_t deadline)
{
    int rc;
    if (cn_cancelled()) {
        return -ECANCELED;
    }
    if (try_recv(ch, val, &rc)) {
        return rc;
    }
    return park_on(&ch->recvq, val, deadline);
}

/* Fails every parked waiter of q with -EPIPE. */
static void fail_all(struct cn__waitq *q)
{
    struct cn__waiter *w;
    while ((w = cn__waitq_pop_parked(q)) != NULL) {
        complete(w, -EPIPE);
    }
}

void cn_chan_close(struct cn_chan *ch)
{
    ch->closed = true;
    fail_all(&ch->sendq);
    fail_all(&ch->recvq); /* receivers only wait on an empty buffer */
}

size_t cn_chan_len(const struct cn_chan *ch)
{
    return ch->count;
}

/* Unlinks waiters of coroutines that are no longer parked here: a choose
 * woken through another channel stays linked until it next runs, and would
 * otherwise unlink itself from freed memory. */
static void drop_stale(struct cn__waitq *q)
{
    while (!cn__waitq_empty(q)) {
        cn__waitq_remove(q->head);
    }
}

void cn_chan_free(struct cn_chan *ch)
{
    if (!ch) {
        return;
    }
    drop_stale(&ch->sendq);
    drop_stale(&ch->recvq);
    free(ch);
}

static bool try_case(struct cn_chan_case *c)
{
    if (c->op == CN_CHAN_SEND) {
        return try_send(c->ch, c->val, &c->rc);
    }
    return try_recv(c->ch, c->val, &c->rc);
}

static struct cn__waitq *case_queue(const struct cn_chan_case *c)
{
    return c->op == CN_CHAN_SEND ? &c->ch->sendq : &c->ch->recvq;
}

/* Parks on every case at once; returns the completed case or park's error. */
static int choose_park(struct cn_chan_case *cases, size_t n, int64_t deadline)
{
    struct cn__waiter ws[CHOOSE_MAX];
    struct cn_co *self = cn__current();
    int done = -1;

    if (!self) {
        return CN_ENOTCORO;
    }
    for (size_t i = 0; i < n; i++) {
        ws[i] = (struct cn__waiter){.co = self, .data = cases[i].val, .index = i, .rc = WAITING};
        cn__waitq_push(case_queue(&cases[i]), &ws[i]);
    }
    int rc = cn__park(deadline, 0);
    /* At most one waiter was completed (see the file comment); the others
     * may still be linked and must go before this frame does. */
    for (size_t i = 0; i < n; i++) {
        cn__waitq_remove(&ws[i]);
        if (ws[i].rc != WAITING) {
            cases[i].rc = ws[i].rc;
            done = (int)ws[i].index;
        }
    }
    return done >= 0 ? done : rc;
}

int cn_chan_choose(struct cn_chan_case *cases, size_t n, int64_t deadline)
{
    if (n == 0 || n > CHOOSE_MAX) {
        return -EINVAL;
    }
    if (cn_cancelled()) {
        return -ECANCELED;
    }
    for (size_t i = 0; i < n; i++) {
        if (try_case(&cases[i])) {
            return (int)i;
        }
    }
    if (deadline == 0) {
        return -ETIMEDOUT;
    }
    return choose_park(cases, n, deadline);
}
