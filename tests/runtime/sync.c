/* SPDX-License-Identifier: MIT */
/*
 * Wait group, mutex, semaphore and event: waking, exclusion, FIFO hand-off,
 * and that deadlines and cancellation leave each primitive usable and never
 * hand anything to a waiter that gave up. Each case runs a main coroutine on
 * a fresh loop; helper coroutines record what they saw for main to check.
 */
#include "test.h"

/* Declares case `name` whose body runs as the main coroutine of a fresh loop. */
#define LOOP_CASE(name)                                                                            \
    static int name##_main(void *arg);                                                             \
    static void name(void)                                                                         \
    {                                                                                              \
        CN_ASSERT_EQ(cn_test_run(name##_main, NULL), 0);                                           \
    }                                                                                              \
    static int name##_main(void *arg)

static struct cn_co *spawn(cn_fn fn, void *arg)
{
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, fn, arg, NULL), 0);
    return co;
}

/* Spawns fn(arg) and lets it run until it parks. */
static struct cn_co *start(cn_fn fn, void *arg)
{
    struct cn_co *co = spawn(fn, arg);
    CN_ASSERT_EQ(cn_yield(), 0);
    return co;
}

static void join(struct cn_co *co)
{
    int result = -1;
    CN_ASSERT_EQ(cn_join(co, &result, -1), 0);
    CN_ASSERT_EQ(result, 0);
}

/* Yields a few times so every ready coroutine gets to run. */
static void settle(void)
{
    for (int i = 0; i < 5; i++) {
        CN_ASSERT_EQ(cn_yield(), 0);
    }
}

/* One blocking call on a primitive, made by its own coroutine. */
struct waiter {
    void *obj;
    int64_t deadline;
    int rc;
    bool finished;
    int64_t at; /* cn_now() when the call returned */
};

/* ---- wait group ------------------------------------------------------------ */

struct wg_worker {
    struct cn_wg *wg;
    int *done;
    int naps;
};

static int wg_work(void *arg)
{
    struct wg_worker *w = arg;
    for (int i = 0; i < w->naps; i++) {
        CN_ASSERT_EQ(cn_yield(), 0);
    }
    (*w->done)++;
    cn_wg_done(w->wg);
    return 0;
}

static int wg_wait_op(void *arg)
{
    struct waiter *w = arg;
    w->rc = cn_wg_wait(w->obj, w->deadline);
    w->finished = true;
    return 0;
}

LOOP_CASE(wg_waits_for_all_workers)
{
    enum { N = 10 };
    struct cn_wg wg = CN_WG_INIT;
    struct wg_worker workers[N];
    struct waiter other = {.obj = &wg, .deadline = -1};
    int done = 0;
    CN_ASSERT_EQ(cn_wg_wait(&wg, 0), 0); /* count 0: returns at once */
    cn_wg_add(&wg, N);
    for (int i = 0; i < N; i++) {
        workers[i] = (struct wg_worker){.wg = &wg, .done = &done, .naps = i};
        cn_detach(spawn(wg_work, &workers[i]));
    }
    struct cn_co *co = spawn(wg_wait_op, &other); /* a second waiter */
    CN_ASSERT_EQ(cn_wg_wait(&wg, -1), 0);
    CN_ASSERT_EQ(done, N);
    CN_ASSERT_EQ(wg.count, 0);
    join(co);
    CN_ASSERT_EQ(other.rc, 0);
    return 0;
}

LOOP_CASE(wg_wait_times_out_at_deadline)
{
    struct cn_wg wg = CN_WG_INIT;
    cn_wg_add(&wg, 1);
    CN_ASSERT_EQ(cn_wg_wait(&wg, 0), -ETIMEDOUT);
    int64_t deadline = cn_now() + 20;
    CN_ASSERT_EQ(cn_wg_wait(&wg, deadline), -ETIMEDOUT);
    CN_ASSERT_GE(cn_now(), deadline);
    CN_ASSERT(wg.waiters.head == NULL);
    cn_wg_done(&wg);
    CN_ASSERT_EQ(cn_wg_wait(&wg, 0), 0);
    return 0;
}

LOOP_CASE(wg_wait_returns_canceled)
{
    struct cn_wg wg = CN_WG_INIT;
    struct waiter w = {.obj = &wg, .deadline = -1};
    cn_wg_add(&wg, 1);
    struct cn_co *co = start(wg_wait_op, &w);
    CN_ASSERT(!w.finished);
    cn_cancel(co);
    join(co);
    CN_ASSERT_EQ(w.rc, -ECANCELED);
    cn_wg_done(&wg);
    CN_ASSERT_EQ(cn_wg_wait(&wg, 0), 0);
    return 0;
}

/* ---- mutex ----------------------------------------------------------------- */

struct counter {
    struct cn_mutex m;
    int inside; /* coroutines inside the critical section */
    int total;
};

static int count_under_lock(void *arg)
{
    struct counter *c = arg;
    for (int i = 0; i < 100; i++) {
        CN_ASSERT_EQ(cn_mutex_lock(&c->m, -1), 0);
        CN_ASSERT_EQ(c->inside++, 0);
        int seen = c->total;
        CN_ASSERT_EQ(cn_yield(), 0); /* others run and must queue */
        c->total = seen + 1;
        c->inside--;
        cn_mutex_unlock(&c->m);
    }
    return 0;
}

LOOP_CASE(mutex_excludes_yielding_coroutines)
{
    enum { N = 20 };
    struct counter c = {.m = CN_MUTEX_INIT};
    struct cn_co *cos[N];
    for (int i = 0; i < N; i++) {
        cos[i] = spawn(count_under_lock, &c);
    }
    for (int i = 0; i < N; i++) {
        join(cos[i]);
    }
    CN_ASSERT_EQ(c.total, N * 100);
    CN_ASSERT(c.m.owner == NULL);
    return 0;
}

struct lock_order {
    struct cn_mutex *m;
    int *order;
    int *n;
    int id;
};

static int lock_and_record(void *arg)
{
    struct lock_order *l = arg;
    CN_ASSERT_EQ(cn_mutex_lock(l->m, -1), 0);
    l->order[(*l->n)++] = l->id;
    cn_mutex_unlock(l->m);
    return 0;
}

LOOP_CASE(mutex_hands_off_in_fifo_order)
{
    enum { N = 6 };
    struct cn_mutex m = CN_MUTEX_INIT;
    struct lock_order ls[N];
    struct cn_co *cos[N];
    int order[N + 1], n = 0;
    CN_ASSERT_EQ(cn_mutex_lock(&m, -1), 0);
    for (int i = 0; i < N; i++) {
        ls[i] = (struct lock_order){.m = &m, .order = order, .n = &n, .id = i};
        cos[i] = start(lock_and_record, &ls[i]);
    }
    cn_mutex_unlock(&m);
    CN_ASSERT(m.owner == cos[0]); /* handed over, not released */
    /* No barging: the lock is already promised to the oldest waiter. */
    CN_ASSERT_EQ(cn_mutex_lock(&m, 0), -ETIMEDOUT);
    CN_ASSERT_EQ(cn_mutex_lock(&m, -1), 0); /* queues behind all of them */
    order[n++] = N;
    for (int i = 0; i <= N; i++) {
        CN_ASSERT_EQ(order[i], i);
    }
    cn_mutex_unlock(&m);
    for (int i = 0; i < N; i++) {
        join(cos[i]);
    }
    return 0;
}

LOOP_CASE(mutex_relock_by_owner_returns_edeadlk)
{
    struct cn_mutex m = CN_MUTEX_INIT;
    CN_ASSERT_EQ(cn_mutex_lock(&m, -1), 0);
    CN_ASSERT_EQ(cn_mutex_lock(&m, -1), -EDEADLK);
    CN_ASSERT(m.owner == cn_self());
    cn_mutex_unlock(&m);
    CN_ASSERT(m.owner == NULL);
    return 0;
}

static int lock_op(void *arg)
{
    struct waiter *w = arg;
    w->rc = cn_mutex_lock(w->obj, w->deadline);
    w->finished = true;
    w->at = cn_now();
    if (w->rc == 0) {
        cn_mutex_unlock(w->obj);
    }
    return 0;
}

LOOP_CASE(mutex_lock_times_out_and_stays_usable)
{
    struct cn_mutex m = CN_MUTEX_INIT;
    struct waiter w = {.obj = &m, .deadline = cn_now() + 20};
    CN_ASSERT_EQ(cn_mutex_lock(&m, -1), 0);
    join(spawn(lock_op, &w));
    CN_ASSERT_EQ(w.rc, -ETIMEDOUT);
    CN_ASSERT_GE(w.at, w.deadline);
    CN_ASSERT(m.owner == cn_self());
    cn_mutex_unlock(&m);
    CN_ASSERT(m.owner == NULL); /* not handed to the timed-out waiter */
    struct waiter w2 = {.obj = &m, .deadline = 0};
    join(spawn(lock_op, &w2));
    CN_ASSERT_EQ(w2.rc, 0);
    CN_ASSERT(m.owner == NULL);
    return 0;
}

LOOP_CASE(mutex_lock_cancel_leaves_lock_usable)
{
    struct cn_mutex m = CN_MUTEX_INIT;
    struct waiter a = {.obj = &m, .deadline = -1}, b = {.obj = &m, .deadline = -1};
    CN_ASSERT_EQ(cn_mutex_lock(&m, -1), 0);
    struct cn_co *ca = start(lock_op, &a), *cb = start(lock_op, &b);
    cn_cancel(ca);
    /* ca is ready but has not run: unlock must skip it and pick cb. */
    cn_mutex_unlock(&m);
    CN_ASSERT(m.owner == cb);
    join(ca);
    join(cb);
    CN_ASSERT_EQ(a.rc, -ECANCELED);
    CN_ASSERT_EQ(b.rc, 0);
    CN_ASSERT(m.owner == NULL);
    CN_ASSERT_EQ(cn_mutex_lock(&m, 0), 0);
    cn_mutex_unlock(&m);
    return 0;
}

static int lock_and_keep(void *arg)
{
    struct waiter *w = arg;
    w->rc = cn_mutex_lock(w->obj, w->deadline);
    w->finished = true;
    return 0;
}

LOOP_CASE(mutex_handed_before_cancel_is_owned)
{
    struct cn_mutex m = CN_MUTEX_INIT;
    struct waiter w = {.obj = &m, .deadline = -1};
    CN_ASSERT_EQ(cn_mutex_lock(&m, -1), 0);
    struct cn_co *co = start(lock_and_keep, &w);
    cn_mutex_unlock(&m);
    cn_cancel(co); /* too late: the lock is already its */
    CN_ASSERT(m.owner == co);
    join(co);
    /* The lock was reported, not lost: the waiter owned it when it ended. */
    CN_ASSERT_EQ(w.rc, 0);
    return 0;
}

/* ---- semaphore ------------------------------------------------------------- */

struct limited {
    struct cn_sem sem;
    int inside;
    int peak;
};

static int use_limited(void *arg)
{
    struct limited *l = arg;
    for (int i = 0; i < 20; i++) {
        CN_ASSERT_EQ(cn_sem_acquire(&l->sem, -1), 0);
        l->inside++;
        if (l->inside > l->peak) {
            l->peak = l->inside;
        }
        CN_ASSERT_EQ(cn_yield(), 0);
        l->inside--;
        cn_sem_release(&l->sem);
    }
    return 0;
}

LOOP_CASE(sem_limits_concurrency_to_count)
{
    enum { N = 12, LIMIT = 3 };
    struct limited l = {.sem = CN_SEM_INIT(LIMIT)};
    struct cn_co *cos[N];
    for (int i = 0; i < N; i++) {
        cos[i] = spawn(use_limited, &l);
    }
    for (int i = 0; i < N; i++) {
        join(cos[i]);
    }
    CN_ASSERT_EQ(l.peak, LIMIT);
    CN_ASSERT_EQ(l.sem.count, LIMIT);
    return 0;
}

static int acquire_op(void *arg)
{
    struct waiter *w = arg;
    w->rc = cn_sem_acquire(w->obj, w->deadline);
    w->finished = true;
    return 0;
}

LOOP_CASE(sem_release_hands_permit_to_oldest_waiter)
{
    struct cn_sem s = CN_SEM_INIT(0);
    struct waiter a = {.obj = &s, .deadline = -1}, b = {.obj = &s, .deadline = -1};
    struct cn_co *ca = start(acquire_op, &a), *cb = start(acquire_op, &b);
    cn_sem_release(&s);
    CN_ASSERT_EQ(s.count, 0); /* handed over, not banked */
    CN_ASSERT_EQ(cn_sem_acquire(&s, 0), -ETIMEDOUT);
    settle();
    CN_ASSERT(a.finished);
    CN_ASSERT(!b.finished);
    cn_sem_release(&s);
    join(ca);
    join(cb);
    CN_ASSERT_EQ(a.rc, 0);
    CN_ASSERT_EQ(b.rc, 0);
    CN_ASSERT_EQ(s.count, 0);
    return 0;
}

LOOP_CASE(sem_acquire_times_out_at_deadline)
{
    struct cn_sem s = CN_SEM_INIT(1);
    CN_ASSERT_EQ(cn_sem_acquire(&s, 0), 0);
    CN_ASSERT_EQ(cn_sem_acquire(&s, 0), -ETIMEDOUT);
    int64_t deadline = cn_now() + 20;
    CN_ASSERT_EQ(cn_sem_acquire(&s, deadline), -ETIMEDOUT);
    CN_ASSERT_GE(cn_now(), deadline);
    cn_sem_release(&s);
    CN_ASSERT_EQ(s.count, 1); /* the timed-out waiter got nothing */
    CN_ASSERT_EQ(cn_sem_acquire(&s, 0), 0);
    cn_sem_release(&s);
    return 0;
}

LOOP_CASE(sem_acquire_cancel_keeps_permits)
{
    struct cn_sem s = CN_SEM_INIT(0);
    struct waiter a = {.obj = &s, .deadline = -1}, b = {.obj = &s, .deadline = -1};
    struct cn_co *ca = start(acquire_op, &a), *cb = start(acquire_op, &b);
    cn_cancel(ca);
    cn_sem_release(&s); /* skips the cancelled waiter */
    cn_sem_release(&s);
    join(ca);
    join(cb);
    CN_ASSERT_EQ(a.rc, -ECANCELED);
    CN_ASSERT_EQ(b.rc, 0);
    CN_ASSERT_EQ(s.count, 1);
    return 0;
}

/* ---- event ----------------------------------------------------------------- */

static int event_wait_op(void *arg)
{
    struct waiter *w = arg;
    w->rc = cn_event_wait(w->obj, w->deadline);
    w->finished = true;
    return 0;
}

LOOP_CASE(event_set_wakes_all_waiters)
{
    enum { N = 5 };
    struct cn_event e = CN_EVENT_INIT;
    struct waiter ws[N];
    struct cn_co *cos[N];
    for (int i = 0; i < N; i++) {
        ws[i] = (struct waiter){.obj = &e, .deadline = -1};
        cos[i] = start(event_wait_op, &ws[i]);
    }
    settle();
    for (int i = 0; i < N; i++) {
        CN_ASSERT(!ws[i].finished);
    }
    cn_event_set(&e);
    for (int i = 0; i < N; i++) {
        join(cos[i]);
        CN_ASSERT_EQ(ws[i].rc, 0);
    }
    return 0;
}

LOOP_CASE(event_stays_set_until_reset)
{
    struct cn_event e = CN_EVENT_INIT;
    CN_ASSERT_EQ(cn_event_wait(&e, 0), -ETIMEDOUT);
    cn_event_set(&e);
    CN_ASSERT_EQ(cn_event_wait(&e, 0), 0);
    CN_ASSERT_EQ(cn_event_wait(&e, -1), 0);
    cn_event_reset(&e);
    CN_ASSERT_EQ(cn_event_wait(&e, 0), -ETIMEDOUT);
    return 0;
}

LOOP_CASE(event_wait_times_out_at_deadline)
{
    struct cn_event e = CN_EVENT_INIT;
    int64_t deadline = cn_now() + 20;
    CN_ASSERT_EQ(cn_event_wait(&e, deadline), -ETIMEDOUT);
    CN_ASSERT_GE(cn_now(), deadline);
    CN_ASSERT(e.waiters.head == NULL);
    return 0;
}

LOOP_CASE(event_wait_returns_canceled)
{
    struct cn_event e = CN_EVENT_INIT;
    struct waiter a = {.obj = &e, .deadline = -1}, b = {.obj = &e, .deadline = -1};
    struct cn_co *ca = start(event_wait_op, &a), *cb = start(event_wait_op, &b);
    cn_cancel(ca);
    join(ca);
    CN_ASSERT_EQ(a.rc, -ECANCELED);
    CN_ASSERT(!b.finished);
    cn_event_set(&e);
    join(cb);
    CN_ASSERT_EQ(b.rc, 0);
    return 0;
}

static int set_event(void *arg)
{
    cn_event_set(arg);
    return 0;
}

/* A far deadline that no longer matters must not keep the loop alive: this
 * case hangs (until the test timeout) if the scheduler's timer stays armed. */
LOOP_CASE(event_wait_woken_before_far_deadline_lets_loop_end)
{
    struct cn_event e = CN_EVENT_INIT;
    struct cn_co *co = spawn(set_event, &e);
    CN_ASSERT_EQ(cn_event_wait(&e, cn_now() + 3600 * 1000), 0);
    join(co);
    return 0;
}

CN_TEST_MAIN(CN_CASE(wg_waits_for_all_workers), CN_CASE(wg_wait_times_out_at_deadline),
             CN_CASE(wg_wait_returns_canceled), CN_CASE(mutex_excludes_yielding_coroutines),
             CN_CASE(mutex_hands_off_in_fifo_order), CN_CASE(mutex_relock_by_owner_returns_edeadlk),
             CN_CASE(mutex_lock_times_out_and_stays_usable),
             CN_CASE(mutex_lock_cancel_leaves_lock_usable),
             CN_CASE(mutex_handed_before_cancel_is_owned), CN_CASE(sem_limits_concurrency_to_count),
             CN_CASE(sem_release_hands_permit_to_oldest_waiter),
             CN_CASE(sem_acquire_times_out_at_deadline), CN_CASE(sem_acquire_cancel_keeps_permits),
             CN_CASE(event_set_wakes_all_waiters), CN_CASE(event_stays_set_until_reset),
             CN_CASE(event_wait_times_out_at_deadline), CN_CASE(event_wait_returns_canceled),
             CN_CASE(event_wait_woken_before_far_deadline_lets_loop_end))
