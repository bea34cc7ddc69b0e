/* SPDX-License-Identifier: MIT */
/*
 * The bridge: the one door into a loop from other threads. A caller thread
 * queues a call (on its own stack) under the bridge's mutex and pokes the
 * loop with uv_async_send; the loop's async callback takes the whole queue
 * and starts one coroutine per call; when the coroutine's function returns,
 * it posts the caller's semaphore. The caller owns the call record, so the
 * loop never touches it after the post.
 *
 * uv_async_send runs under the mutex: closing sets `closing` under the same
 * mutex, so once the closer holds it no caller can still be about to poke a
 * handle that is going away.
 */
#include "sched.h"

#include <errno.h>
#include <stdlib.h>

struct call {
    cn_fn fn;
    void *arg;
    int result;
    int rc;
    uv_sem_t done;
    struct call *next;
};

struct cn_bridge {
    uv_async_t async;
    uv_mutex_t lock;
    struct call *head; /* queued calls, under lock */
    struct call *tail;
    bool closing;   /* under lock */
    size_t running; /* calls running as coroutines (loop thread only) */
    bool closed;    /* async handle's close callback ran */
    struct cn_sched *sched;
    struct cn_co *closer;
};

static void finish(struct call *c, int rc)
{
    c->rc = rc;
    uv_sem_post(&c->done); /* c may be gone after this */
}

static int call_main(void *arg);

static void start(struct cn_bridge *b, struct call *c)
{
    /* The coroutine needs both pointers; c->next is free once dequeued. */
    c->next = (struct call *)b;
    int rc = cn__spawn_on(b->sched, NULL, call_main, c, NULL, NULL);
    if (rc != 0) {
        finish(c, rc);
        return;
    }
    b->running++;
}

static int call_main(void *arg)
{
    struct call *c = arg;
    struct cn_bridge *b = (struct cn_bridge *)c->next;
    c->result = c->fn(c->arg);
    finish(c, 0);
    b->running--;
    if (b->running == 0 && b->closer) {
        cn__wake(b->closer, 0);
    }
    return 0;
}

static struct call *take_all(struct cn_bridge *b, bool close)
{
    uv_mutex_lock(&b->lock);
    struct call *c = b->head;
    b->head = b->tail = NULL;
    if (close) {
        b->closing = true;
    }
    uv_mutex_unlock(&b->lock);
    return c;
}

static void on_async(uv_async_t *h)
{
    struct cn_bridge *b = h->data;
    struct call *c = take_all(b, false);
    while (c) {
        struct call *next = c->next;
        start(b, c);
        c = next;
    }
}

int cn_bridge_open(struct cn_bridge **out)
{
    struct cn_sched *s = cn__sched();
    if (!s) {
        return CN_ENOTCORO;
    }
    struct cn_bridge *b = calloc(1, sizeof *b);
    if (!b) {
        return -ENOMEM;
    }
    int rc = uv_mutex_init(&b->lock);
    if (rc == 0) {
        rc = uv_async_init(cn__sched_loop(s), &b->async, on_async);
        if (rc != 0) {
            uv_mutex_destroy(&b->lock);
        }
    }
    if (rc != 0) {
        free(b);
        return rc;
    }
    b->async.data = b;
    b->sched = s;
    *out = b;
    return 0;
}

int cn_bridge_call(struct cn_bridge *b, cn_fn fn, void *arg, int *result)
{
    struct call c = {.fn = fn, .arg = arg};
    if (uv_sem_init(&c.done, 0) != 0) {
        return -ENOMEM;
    }
    uv_mutex_lock(&b->lock);
    if (b->closing) {
        uv_mutex_unlock(&b->lock);
        uv_sem_destroy(&c.done);
        return CN_ECLOSED;
    }
    if (b->tail) {
        b->tail->next = &c;
    } else {
        b->head = &c;
    }
    b->tail = &c;
    uv_async_send(&b->async);
    uv_mutex_unlock(&b->lock);
    uv_sem_wait(&c.done);
    uv_sem_destroy(&c.done);
    if (c.rc == 0 && result) {
        *result = c.result;
    }
    return c.rc;
}

static void on_closed(uv_handle_t *h)
{
    struct cn_bridge *b = h->data;
    b->closed = true;
    if (b->closer) {
        cn__wake(b->closer, 0);
    }
}

void cn_bridge_close(struct cn_bridge *b)
{
    if (!b) {
        return;
    }
    for (struct call *c = take_all(b, true); c;) {
        struct call *next = c->next;
        finish(c, CN_ECLOSED);
        c = next;
    }
    b->closer = cn__current();
    while (b->running > 0) {
        cn__park(-1, CN__PARK_NOCANCEL);
    }
    uv_close((uv_handle_t *)&b->async, on_closed);
    while (!b->closed) {
        cn__park(-1, CN__PARK_NOCANCEL);
    }
    uv_mutex_destroy(&b->lock);
    free(b);
}
