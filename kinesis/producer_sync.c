/* SPDX-License-Identifier: MIT */
/*
 * The producer's synchronous face: a producer on a loop thread of its own,
 * driven from plain threads.
 *
 * Start. cn_kinesis_sync_new starts a thread that runs a private uv loop
 * (cn_run_on). The loop's main coroutine makes the producer and a bridge,
 * reports back through a condvar, and from then on is the drainer.
 *
 * Put. A put crossing the bridge would cost two cross-thread wakeups per
 * record (the loop's and the caller's), which caps puts at the rate of
 * wakeups (~25k/s on two cores). So put does not wait for the loop: the
 * calling thread validates the record as the producer would (errors are
 * still returned by put), copies it into an item, appends it to a queue
 * under a mutex and pokes the loop with uv_async_send only when the queue
 * was idle. The drainer takes the whole queue at once and hands each item
 * to cn_kinesis_try_put, in order. One wakeup per batch.
 *
 * Backpressure. The queue holds at most min(max_outstanding_records,
 * 4,096) records and max_outstanding_bytes bytes (a record always fits an
 * empty queue); put blocks on a condvar while it is full, and timeout_ms
 * bounds only that wait. The queue drains as long as the producer takes
 * records; once the producer is full (its own bounds) the drainer parks in
 * cn_kinesis_put, which also makes the producer send what it buffers at
 * once, and the queue fills up behind it. So in all the face holds the
 * producer's bounds plus the queue's.
 *
 * Futures. A future is shared by the user and the loop (two references);
 * whoever drops the last one frees it, so release may come before or after
 * the outcome. The drainer puts with a handle, notes handle -> future in a
 * hash table owned by the loop thread and gives the handle back at once: a
 * record is freed only after its outcome callback, so its address cannot
 * be reused while it is in the table. The outcome callback (our wrapper
 * around config.on_outcome) calls the user's first, then takes the future
 * out and fills it.
 *
 * Flush, counters and metrics cross the bridge. Flush first waits until
 * the drainer has handed over every item queued before the call, so it
 * covers every put that returned before it; counters and metrics are the
 * producer's as they stand (records still queued are not counted yet, so
 * a monitoring thread never blocks on backpressure). Close sets
 * `stopping` and pokes the loop; the drainer empties the queue, closes the
 * bridge, closes the producer (every record, so every future, gets its
 * outcome) and returns; the closing thread joins the loop thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coronet/kinesis.h"

#include "kinesis/api_internal.h"
#include "kinesis/producer_internal.h"

/* Items handed to the producer between yields, so the senders get a turn
 * during a long batch. */
#define DRAIN_SLICE 256
/* The most records the queue holds (fewer if max_outstanding_records is
 * smaller): enough for large batches per wakeup. */
#define QUEUE_MAX 4096

struct cn_kinesis_future {
    atomic_int refs;   /* the user's and the loop's */
    atomic_bool ready; /* set (release) once out is filled */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC, for timed waits */
    struct cn_kinesis_outcome out;
};

/* handle -> future, open addressing with linear probing; loop thread only. */
struct slot {
    const struct cn_kinesis_outcome_handle *key; /* NULL: empty */
    struct cn_kinesis_future *f;
};

struct futmap {
    struct slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;
    size_t reserved; /* puts in progress that will insert one entry each */
};

/* A put on its way from a thread to the drainer; the record is copied. */
struct item {
    struct item *next;
    struct cn_kinesis_future *f; /* NULL: fire and forget */
    size_t bytes;                /* key + data + hash key: the queue's byte bound */
    const char *stream;          /* into buf, as the rest */
    const char *pk;
    const char *ehk; /* NULL: none */
    const void *data;
    size_t len;
    char buf[];
};

struct cn_kinesis_sync {
    pthread_t thread;
    uv_loop_t loop;
    struct cn_kinesis_producer_config cfg; /* on_outcome is ours */
    cn_kinesis_outcome_fn user_on_outcome;
    void *user_arg;
    size_t max_queued; /* min(QUEUE_MAX, the producer's max_outstanding_records) */
    size_t max_bytes;  /* its max_outstanding_bytes; 0: none */
    /* under lock */
    pthread_mutex_t lock;
    pthread_cond_t room;    /* CLOCK_MONOTONIC: the queue went down */
    pthread_cond_t started; /* start_rc is there */
    struct item *head, *tail;
    uint64_t queued_total; /* items ever queued */
    bool kicked;           /* the drainer has been poked and has not yet taken the queue */
    bool stopping;
    bool start_done;
    int start_rc;
    int64_t close_timeout_ms;
    /* items not yet handed to the producer (counted until handed, so the
     * one the drainer holds too): raised by putters under lock, lowered
     * by the drainer without it */
    atomic_size_t queued;
    atomic_size_t queue_bytes;
    atomic_int waiters; /* putters waiting on `room` */
    /* loop thread only */
    struct cn_kinesis_producer *p;
    struct cn_bridge *bridge;
    struct futmap futures;
    uv_async_t kick;
    struct cn_event wake;   /* the drainer has work, or close began */
    uint64_t handed_total;  /* items the drainer is done with */
    struct cn_event handed; /* handed_total went up */
    int close_rc;           /* read after join */
};

/* ---- futures ---------------------------------------------------------------------- */

/* A condvar whose timed waits run on CLOCK_MONOTONIC. */
static int cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        return -ENOMEM;
    }
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0) {
        rc = pthread_cond_init(c, &ca);
    }
    pthread_condattr_destroy(&ca);
    return -rc;
}

static struct cn_kinesis_future *future_new(void)
{
    struct cn_kinesis_future *f = calloc(1, sizeof *f);
    if (!f) {
        return NULL;
    }
    if (cond_init_monotonic(&f->cond) < 0) {
        free(f);
        return NULL;
    }
    if (pthread_mutex_init(&f->lock, NULL) != 0) {
        pthread_cond_destroy(&f->cond);
        free(f);
        return NULL;
    }
    atomic_init(&f->refs, 2);
    atomic_init(&f->ready, false);
    return f;
}

static void future_unref(struct cn_kinesis_future *f)
{
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&f->lock);
        pthread_cond_destroy(&f->cond);
        free(f);
    }
}

/* Fills f and drops the loop's reference. */
static void future_complete(struct cn_kinesis_future *f, const struct cn_kinesis_outcome *o)
{
    pthread_mutex_lock(&f->lock);
    f->out = *o;
    atomic_store_explicit(&f->ready, true, memory_order_release);
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    future_unref(f);
}

/* now + ms on CLOCK_MONOTONIC, as pthread_cond_timedwait wants it. */
static struct timespec monotonic_after(int64_t ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

int cn_kinesis_future_wait(struct cn_kinesis_future *f, struct cn_kinesis_outcome *out,
                           int64_t timeout_ms)
{
    if (!f) {
        return -EINVAL;
    }
    struct timespec until = monotonic_after(timeout_ms < 0 ? 0 : timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&f->lock);
    while (!atomic_load_explicit(&f->ready, memory_order_relaxed) && rc == 0) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&f->cond, &f->lock);
        } else if (pthread_cond_timedwait(&f->cond, &f->lock, &until) == ETIMEDOUT) {
            rc = atomic_load_explicit(&f->ready, memory_order_relaxed) ? 0 : -ETIMEDOUT;
        }
    }
    if (rc == 0 && out) {
        *out = f->out;
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

bool cn_kinesis_future_ready(struct cn_kinesis_future *f)
{
    return f && atomic_load_explicit(&f->ready, memory_order_acquire);
}

void cn_kinesis_future_release(struct cn_kinesis_future *f)
{
    if (f) {
        future_unref(f);
    }
}

/* ---- handle -> future table (loop thread) ---------------------------------------- */

static size_t slot_of(const struct futmap *m, const void *key)
{
    uint64_t x = (uint64_t)(uintptr_t)key;
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    return (size_t)x & (m->cap - 1);
}

static void futmap_place(struct futmap *m, const struct cn_kinesis_outcome_handle *key,
                         struct cn_kinesis_future *f)
{
    size_t i = slot_of(m, key);
    while (m->slots[i].key) {
        i = (i + 1) & (m->cap - 1);
    }
    m->slots[i] = (struct slot){key, f};
}

static int futmap_grow(struct futmap *m)
{
    struct futmap bigger = {.cap = m->cap ? m->cap * 2 : 1024, .n = m->n, .reserved = m->reserved};
    bigger.slots = calloc(bigger.cap, sizeof *bigger.slots);
    if (!bigger.slots) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key) {
            futmap_place(&bigger, m->slots[i].key, m->slots[i].f);
        }
    }
    free(m->slots);
    *m = bigger;
    return 0;
}

/* Makes sure the next insert cannot fail: a put must not create a record
 * whose future could then not be found. Load stays under one half. */
static int futmap_reserve(struct futmap *m)
{
    if ((m->n + m->reserved + 1) * 2 > m->cap) {
        int rc = futmap_grow(m);
        if (rc < 0) {
            return rc;
        }
    }
    m->reserved++;
    return 0;
}

static void futmap_insert_reserved(struct futmap *m, const struct cn_kinesis_outcome_handle *key,
                                   struct cn_kinesis_future *f)
{
    m->reserved--;
    m->n++;
    futmap_place(m, key, f);
}

/* Removes key's entry (backward-shift deletion: no tombstones) and returns
 * its future, or NULL. */
static struct cn_kinesis_future *futmap_take(struct futmap *m,
                                             const struct cn_kinesis_outcome_handle *key)
{
    if (m->n == 0) {
        return NULL;
    }
    size_t mask = m->cap - 1, i = slot_of(m, key);
    while (m->slots[i].key != key) {
        if (!m->slots[i].key) {
            return NULL;
        }
        i = (i + 1) & mask;
    }
    struct cn_kinesis_future *f = m->slots[i].f;
    /* Pull back every later entry of the run whose home is not between
     * the hole and itself, so lookups never stop early at the hole. */
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = slot_of(m, m->slots[j].key);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->n--;
    return f;
}

/* ---- the putters' side of the bounds ------------------------------------------------ */

/* Whether one more record of `bytes` fits now; under lock. */
static bool fits(struct cn_kinesis_sync *sp, size_t bytes)
{
    if (atomic_load(&sp->queued) >= sp->max_queued) {
        return false;
    }
    size_t queued = atomic_load(&sp->queue_bytes);
    return sp->max_bytes == 0 || queued == 0 || queued + bytes <= sp->max_bytes;
}

/* Waits under lock until the record fits; -ETIMEDOUT after timeout_ms.
 * A putter announces itself in `waiters` before it checks, and the loop
 * lowers a count before it looks at `waiters` (both sequentially
 * consistent), so either the putter sees the room or the loop sees the
 * putter and broadcasts under the lock, after the putter is waiting. */
static int wait_room(struct cn_kinesis_sync *sp, size_t bytes, int64_t timeout_ms)
{
    struct timespec until = monotonic_after(timeout_ms < 0 ? 0 : timeout_ms);
    int rc = 0;
    atomic_fetch_add(&sp->waiters, 1);
    while (!fits(sp, bytes)) {
        if (timeout_ms == 0) {
            rc = -ETIMEDOUT;
        } else if (timeout_ms < 0) {
            pthread_cond_wait(&sp->room, &sp->lock);
        } else if (pthread_cond_timedwait(&sp->room, &sp->lock, &until) == ETIMEDOUT) {
            rc = fits(sp, bytes) ? 0 : -ETIMEDOUT;
        }
        if (rc < 0 || sp->stopping) {
            break;
        }
    }
    atomic_fetch_sub(&sp->waiters, 1);
    return rc;
}

/* From the loop, after a count went down. */
static void wake_putters(struct cn_kinesis_sync *sp)
{
    if (atomic_load(&sp->waiters) > 0) {
        pthread_mutex_lock(&sp->lock);
        pthread_cond_broadcast(&sp->room);
        pthread_mutex_unlock(&sp->lock);
    }
}

/* ---- on the loop thread ----------------------------------------------------------- */

/* One record of ours has its outcome: the user's callback first, so a
 * future is ready only after the callback has seen its record. h is NULL
 * for an item the producer refused (see fail_item). */
static void deliver(struct cn_kinesis_sync *sp, struct cn_kinesis_outcome_handle *h,
                    const struct cn_kinesis_outcome *o, struct cn_kinesis_future *f)
{
    if (sp->user_on_outcome) {
        sp->user_on_outcome(sp->user_arg, h, o);
    }
    if (f) {
        future_complete(f, o);
    }
}

/* The producer's outcome callback. */
static void on_outcome(void *arg, struct cn_kinesis_outcome_handle *h,
                       const struct cn_kinesis_outcome *o)
{
    struct cn_kinesis_sync *sp = arg;
    deliver(sp, h, o, futmap_take(&sp->futures, h));
}

/* A relative timeout as a deadline on this loop's clock (-1 none, 0 try once). */
static int64_t deadline_in(int64_t timeout_ms)
{
    return timeout_ms < 0 ? -1 : timeout_ms == 0 ? 0 : cn_now() + timeout_ms;
}

/* An item put returned 0 for but the producer did not take (-ENOMEM;
 * it was validated already): its outcome says so. */
static void fail_item(struct cn_kinesis_sync *sp, struct item *it, int rc)
{
    struct cn_kinesis_outcome o = {.code = rc, .last_error = rc};
    snprintf(o.error_message, sizeof o.error_message, "the producer did not take the record: %s",
             cn_strerror(rc));
    deliver(sp, NULL, &o, it->f);
}

/* Ties f to the record behind h (or fills it, if the outcome came
 * already) and gives the handle back. */
static void track(struct cn_kinesis_sync *sp, struct cn_kinesis_outcome_handle *h,
                  struct cn_kinesis_future *f)
{
    if (cn_kinesis_outcome_ready(h)) {
        struct cn_kinesis_outcome o;
        cn_kinesis_outcome_wait(h, &o, 0);
        sp->futures.reserved--;
        future_complete(f, &o);
    } else {
        futmap_insert_reserved(&sp->futures, h, f);
    }
    cn_kinesis_outcome_release(h);
}

/* Hands one item to the producer; parks only if the producer is full. */
static void hand_over(struct cn_kinesis_sync *sp, struct item *it)
{
    struct cn_kinesis_outcome_handle *h = NULL, **hp = it->f ? &h : NULL;
    int rc = it->f ? futmap_reserve(&sp->futures) : 0;
    bool reserved = it->f && rc == 0;
    if (rc == 0) {
        rc = cn_kinesis_try_put(sp->p, it->stream, it->pk, it->data, it->len, it->ehk, hp);
    }
    if (rc == -EAGAIN) {
        wake_putters(sp); /* what this batch freed of the queue */
        rc = cn_kinesis_put(sp->p, it->stream, it->pk, it->data, it->len, it->ehk, hp, -1);
    }
    atomic_fetch_sub(&sp->queue_bytes, it->bytes);
    atomic_fetch_sub(&sp->queued, 1);
    if (rc < 0) {
        if (reserved) {
            sp->futures.reserved--;
        }
        fail_item(sp, it, rc);
    } else if (it->f) {
        track(sp, h, it->f);
    }
}

/* Takes the whole queue; *stopping says whether close has begun. */
static struct item *take_queue(struct cn_kinesis_sync *sp, bool *stopping)
{
    pthread_mutex_lock(&sp->lock);
    struct item *batch = sp->head;
    sp->head = sp->tail = NULL;
    sp->kicked = false;
    *stopping = sp->stopping;
    pthread_mutex_unlock(&sp->lock);
    return batch;
}

static void drain(struct cn_kinesis_sync *sp, struct item *batch)
{
    for (size_t n = 1; batch; n++) {
        struct item *next = batch->next;
        hand_over(sp, batch);
        free(batch);
        sp->handed_total++;
        batch = next;
        if (n % DRAIN_SLICE == 0) {
            cn_event_set(&sp->handed);
            wake_putters(sp);
            cn_yield();
        }
    }
    cn_event_set(&sp->handed);
    wake_putters(sp);
}

/* Parks until the drainer has handed over every item queued before now. */
static int wait_handed(struct cn_kinesis_sync *sp, int64_t deadline)
{
    pthread_mutex_lock(&sp->lock);
    uint64_t target = sp->queued_total;
    pthread_mutex_unlock(&sp->lock);
    while (sp->handed_total < target) {
        cn_event_reset(&sp->handed);
        int rc = cn_event_wait(&sp->handed, deadline);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static void on_kick(uv_async_t *h)
{
    struct cn_kinesis_sync *sp = h->data;
    cn_event_set(&sp->wake);
}

static void report_start(struct cn_kinesis_sync *sp, int rc)
{
    pthread_mutex_lock(&sp->lock);
    sp->start_done = true;
    sp->start_rc = rc;
    pthread_cond_signal(&sp->started);
    pthread_mutex_unlock(&sp->lock);
}

/* Every record has had its outcome once the producer is closed, so the
 * table is empty; should a bug leave a future behind, it still gets an
 * outcome rather than a waiter that never wakes. */
static void fail_leftover_futures(struct cn_kinesis_sync *sp)
{
    struct futmap *m = &sp->futures;
    struct cn_kinesis_outcome o = {.code = CN_ECLOSED, .last_error = CN_ECLOSED};
    snprintf(o.error_message, sizeof o.error_message, "producer closed without an outcome");
    for (size_t i = 0; i < m->cap && m->n > 0; i++) {
        if (m->slots[i].key) {
            future_complete(m->slots[i].f, &o);
            m->slots[i].key = NULL;
            m->n--;
        }
    }
}

/* Makes the producer and the bridge; 0, or an error after undoing. */
static int start_on_loop(struct cn_kinesis_sync *sp)
{
    int rc = cn_kinesis_producer_new(&sp->p, &sp->cfg);
    if (rc < 0) {
        return rc;
    }
    rc = cn_bridge_open(&sp->bridge);
    if (rc < 0) {
        cn_kinesis_producer_close(sp->p, 0);
        return rc;
    }
    /* The bounds as the producer applied them (defaults included). */
    size_t records = sp->p->cfg.max_outstanding_records;
    sp->max_queued = records < QUEUE_MAX ? records : QUEUE_MAX;
    sp->max_bytes = sp->p->cfg.max_outstanding_bytes;
    return 0;
}

/* The loop's main coroutine: starts, drains until close, closes. */
static int loop_main(void *arg)
{
    struct cn_kinesis_sync *sp = arg;
    int rc = uv_async_init(cn_loop(), &sp->kick, on_kick);
    if (rc < 0) {
        report_start(sp, rc);
        return rc;
    }
    sp->kick.data = sp;
    rc = start_on_loop(sp);
    report_start(sp, rc);
    for (bool stopping = false; rc == 0;) {
        cn_event_reset(&sp->wake);
        struct item *batch = take_queue(sp, &stopping);
        if (batch) {
            drain(sp, batch);
        } else if (stopping) {
            break;
        } else {
            cn_event_wait(&sp->wake, -1);
        }
    }
    if (rc == 0) {
        /* Calls still running end first; later ones get CN_ECLOSED. */
        cn_bridge_close(sp->bridge);
        pthread_mutex_lock(&sp->lock);
        int64_t timeout_ms = sp->close_timeout_ms;
        pthread_mutex_unlock(&sp->lock);
        sp->close_rc = cn_kinesis_producer_close(sp->p, deadline_in(timeout_ms));
        fail_leftover_futures(sp);
    }
    cn_uv_close((uv_handle_t *)&sp->kick);
    return rc;
}

static void *thread_main(void *arg)
{
    struct cn_kinesis_sync *sp = arg;
    int rc = uv_loop_init(&sp->loop);
    if (rc < 0) {
        report_start(sp, rc);
        return NULL;
    }
    rc = cn_run_on(&sp->loop, loop_main, sp);
    pthread_mutex_lock(&sp->lock);
    bool reported = sp->start_done;
    pthread_mutex_unlock(&sp->lock);
    if (!reported) { /* the main coroutine never ran */
        report_start(sp, rc < 0 ? rc : -ENOMEM);
    }
    uv_loop_close(&sp->loop);
    return NULL;
}

/* ---- new, close --------------------------------------------------------------------- */

static void sync_free(struct cn_kinesis_sync *sp)
{
    free(sp->futures.slots);
    pthread_cond_destroy(&sp->room);
    pthread_cond_destroy(&sp->started);
    pthread_mutex_destroy(&sp->lock);
    free(sp);
}

/* Starts the loop thread and waits until it says how starting went. */
static int start_thread(struct cn_kinesis_sync *sp)
{
    int rc = pthread_create(&sp->thread, NULL, thread_main, sp);
    if (rc != 0) {
        return -rc;
    }
    pthread_mutex_lock(&sp->lock);
    while (!sp->start_done) {
        pthread_cond_wait(&sp->started, &sp->lock);
    }
    rc = sp->start_rc;
    pthread_mutex_unlock(&sp->lock);
    if (rc < 0) {
        pthread_join(sp->thread, NULL);
    }
    return rc;
}

static struct cn_kinesis_sync *sync_alloc(const struct cn_kinesis_producer_config *config)
{
    struct cn_kinesis_sync *sp = calloc(1, sizeof *sp);
    if (!sp) {
        return NULL;
    }
    if (config) {
        sp->cfg = *config;
    }
    sp->user_on_outcome = sp->cfg.on_outcome;
    sp->user_arg = sp->cfg.on_outcome_arg;
    sp->cfg.on_outcome = on_outcome;
    sp->cfg.on_outcome_arg = sp;
    if (pthread_mutex_init(&sp->lock, NULL) != 0) {
        free(sp);
        return NULL;
    }
    if (pthread_cond_init(&sp->started, NULL) != 0) {
        pthread_mutex_destroy(&sp->lock);
        free(sp);
        return NULL;
    }
    if (cond_init_monotonic(&sp->room) < 0) {
        pthread_cond_destroy(&sp->started);
        pthread_mutex_destroy(&sp->lock);
        free(sp);
        return NULL;
    }
    return sp;
}

int cn_kinesis_sync_new(struct cn_kinesis_sync **out,
                        const struct cn_kinesis_producer_config *config)
{
    /* Outcomes queued for take_outcomes would hold room forever: the
     * synchronous face has no taker. */
    if (!out || (config && config->collect_outcomes)) {
        return -EINVAL;
    }
    if (cn_self()) {
        return -EDEADLK; /* it would block a loop */
    }
    struct cn_kinesis_sync *sp = sync_alloc(config);
    if (!sp) {
        return -ENOMEM;
    }
    int rc = start_thread(sp);
    if (rc < 0) {
        sync_free(sp);
        return rc;
    }
    *out = sp;
    return 0;
}

int cn_kinesis_sync_close(struct cn_kinesis_sync *sp, int64_t timeout_ms)
{
    if (!sp) {
        return 0;
    }
    pthread_mutex_lock(&sp->lock);
    sp->close_timeout_ms = timeout_ms;
    sp->stopping = true;
    pthread_cond_broadcast(&sp->room);
    pthread_mutex_unlock(&sp->lock);
    uv_async_send(&sp->kick);
    pthread_join(sp->thread, NULL);
    int rc = sp->close_rc;
    sync_free(sp);
    return rc;
}

/* ---- put ---------------------------------------------------------------------------- */

/* The record copied into one allocation: stream, key, hash key, data. */
static struct item *item_new(const char *stream, const char *pk, const void *data, size_t len,
                             const char *ehk)
{
    size_t sl = strlen(stream) + 1, pl = strlen(pk) + 1, el = ehk ? strlen(ehk) + 1 : 0;
    struct item *it = malloc(sizeof *it + sl + pl + el + len);
    if (!it) {
        return NULL;
    }
    char *at = it->buf;
    it->next = NULL;
    it->f = NULL;
    it->stream = memcpy(at, stream, sl);
    at += sl;
    it->pk = memcpy(at, pk, pl);
    at += pl;
    it->ehk = el ? memcpy(at, ehk, el) : NULL;
    at += el;
    it->data = len ? memcpy(at, data, len) : at;
    it->len = len;
    it->bytes = (pl - 1) + (el ? el - 1 : 0) + len;
    return it;
}

/* Appends it once it fits; pokes the drainer if it is idle. */
static int enqueue(struct cn_kinesis_sync *sp, struct item *it, int64_t timeout_ms)
{
    pthread_mutex_lock(&sp->lock);
    int rc = fits(sp, it->bytes) ? 0 : wait_room(sp, it->bytes, timeout_ms);
    if (rc == 0 && sp->stopping) {
        rc = CN_ECLOSED;
    }
    if (rc < 0) {
        pthread_mutex_unlock(&sp->lock);
        return rc;
    }
    atomic_fetch_add(&sp->queued, 1);
    atomic_fetch_add(&sp->queue_bytes, it->bytes);
    if (sp->tail) {
        sp->tail->next = it;
    } else {
        sp->head = it;
    }
    sp->tail = it;
    sp->queued_total++;
    bool poke = !sp->kicked;
    sp->kicked = true;
    pthread_mutex_unlock(&sp->lock);
    if (poke) {
        uv_async_send(&sp->kick);
    }
    return 0;
}

int cn_kinesis_sync_put(struct cn_kinesis_sync *sp, const char *stream, const char *partition_key,
                        const void *data, size_t len, const char *explicit_hash_key,
                        struct cn_kinesis_future **future, int64_t timeout_ms)
{
    if (future) {
        *future = NULL;
    }
    if (!sp) {
        return -EINVAL;
    }
    if (cn_self()) {
        return -EDEADLK;
    }
    struct cn__hashkey hk; /* computed again on the loop: put takes no hash */
    int rc = cn__prod_validate(stream, partition_key, data, len, explicit_hash_key, &hk);
    if (rc < 0) {
        return rc;
    }
    struct item *it = item_new(stream, partition_key, data, len, explicit_hash_key);
    if (!it) {
        return -ENOMEM;
    }
    if (future && !(it->f = future_new())) {
        free(it);
        return -ENOMEM;
    }
    struct cn_kinesis_future *f = it->f;
    rc = enqueue(sp, it, timeout_ms);
    if (rc < 0) {
        if (f) {
            future_unref(f); /* the loop never saw it: both references are ours */
            future_unref(f);
        }
        free(it);
        return rc;
    }
    if (future) {
        *future = f;
    }
    return 0;
}

/* ---- calls through the bridge ----------------------------------------------------------- */

struct call {
    struct cn_kinesis_sync *sp;
    int64_t timeout_ms;
    struct cn_kinesis_producer_counters *counters;
    struct cn_kinesis_metrics **metrics;
};

/* Runs fn(arg) on the loop and returns its result or the bridge's error. */
static int on_loop(struct cn_kinesis_sync *sp, cn_fn fn, struct call *c)
{
    if (!sp) {
        return -EINVAL;
    }
    if (cn_self()) {
        return -EDEADLK;
    }
    int result = 0;
    int rc = cn_bridge_call(sp->bridge, fn, c, &result);
    return rc < 0 ? rc : result;
}

static int flush_on_loop(void *arg)
{
    struct call *c = arg;
    int64_t deadline = deadline_in(c->timeout_ms);
    int rc = wait_handed(c->sp, deadline);
    return rc < 0 ? rc : cn_kinesis_producer_flush(c->sp->p, deadline);
}

int cn_kinesis_sync_flush(struct cn_kinesis_sync *sp, int64_t timeout_ms)
{
    struct call c = {.sp = sp, .timeout_ms = timeout_ms};
    return on_loop(sp, flush_on_loop, &c);
}

static int counters_on_loop(void *arg)
{
    struct call *c = arg;
    cn_kinesis_producer_counters(c->sp->p, c->counters);
    return 0;
}

void cn_kinesis_sync_counters(struct cn_kinesis_sync *sp, struct cn_kinesis_producer_counters *out)
{
    struct call c = {.sp = sp, .counters = out};
    if (on_loop(sp, counters_on_loop, &c) < 0) {
        memset(out, 0, sizeof *out);
    }
}

static int metrics_on_loop(void *arg)
{
    struct call *c = arg;
    return cn_kinesis_producer_metrics(c->sp->p, c->metrics);
}

int cn_kinesis_sync_metrics(struct cn_kinesis_sync *sp, struct cn_kinesis_metrics **out)
{
    struct call c = {.sp = sp, .metrics = out};
    return on_loop(sp, metrics_on_loop, &c);
}
