/* SPDX-License-Identifier: MIT */
/*
 * Channels: buffered and unbuffered transfer, FIFO order, element sizes,
 * deadlines, cancellation, close, and cn_chan_choose. Each case runs a main
 * coroutine on a fresh loop; helper coroutines perform one operation each and
 * record its result, so main can check what a parked peer saw.
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

/* One send or receive of an int, performed by its own coroutine. */
struct op {
    struct cn_chan *ch;
    int value;
    int64_t deadline;
    int rc;
    bool finished;
};

static int send_op(void *arg)
{
    struct op *o = arg;
    o->rc = cn_chan_send(o->ch, &o->value, o->deadline);
    o->finished = true;
    return 0;
}

static int recv_op(void *arg)
{
    struct op *o = arg;
    o->rc = cn_chan_recv(o->ch, &o->value, o->deadline);
    o->finished = true;
    return 0;
}

/* Starts fn(o) and lets it run until it parks. */
static struct cn_co *start(cn_fn fn, struct op *o)
{
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, fn, o, NULL), 0);
    CN_ASSERT_EQ(cn_yield(), 0);
    return co;
}

static void join(struct cn_co *co)
{
    int result = -1;
    CN_ASSERT_EQ(cn_join(co, &result, -1), 0);
    CN_ASSERT_EQ(result, 0);
}

static struct cn_chan *chan(size_t elem_size, size_t capacity)
{
    struct cn_chan *ch = NULL;
    CN_ASSERT_EQ(cn_chan_new(&ch, elem_size, capacity), 0);
    return ch;
}

static int send_int(struct cn_chan *ch, int v, int64_t deadline)
{
    return cn_chan_send(ch, &v, deadline);
}

static int recv_int(struct cn_chan *ch, int64_t deadline)
{
    int v = -1;
    CN_ASSERT_EQ(cn_chan_recv(ch, &v, deadline), 0);
    return v;
}

/* ---- transfer -------------------------------------------------------------- */

LOOP_CASE(buffered_chan_keeps_fifo_order)
{
    struct cn_chan *ch = chan(sizeof(int), 4);
    for (int i = 0; i < 4; i++) {
        CN_ASSERT_EQ(send_int(ch, i, 0), 0);
    }
    CN_ASSERT_EQ(cn_chan_len(ch), 4);
    CN_ASSERT_EQ(send_int(ch, 99, 0), -ETIMEDOUT);
    /* Interleave so the ring wraps around many times. */
    for (int i = 4; i < 100; i++) {
        CN_ASSERT_EQ(recv_int(ch, 0), i - 4);
        CN_ASSERT_EQ(send_int(ch, i, 0), 0);
    }
    for (int i = 96; i < 100; i++) {
        CN_ASSERT_EQ(recv_int(ch, 0), i);
    }
    CN_ASSERT_EQ(cn_chan_len(ch), 0);
    cn_chan_free(ch);
    return 0;
}

LOOP_CASE(parked_senders_keep_fifo_order_behind_buffer)
{
    struct cn_chan *ch = chan(sizeof(int), 2);
    struct op ops[4];
    struct cn_co *cos[4];
    CN_ASSERT_EQ(send_int(ch, 0, 0), 0);
    CN_ASSERT_EQ(send_int(ch, 1, 0), 0);
    for (int i = 0; i < 4; i++) {
        ops[i] = (struct op){.ch = ch, .value = 2 + i, .deadline = -1};
        cos[i] = start(send_op, &ops[i]);
        CN_ASSERT(!ops[i].finished);
    }
    /* Each slot freed by a receive is refilled from the oldest sender, which
     * then completes without waiting for the buffer to drain. */
    CN_ASSERT_EQ(recv_int(ch, 0), 0);
    CN_ASSERT_EQ(cn_chan_len(ch), 2);
    CN_ASSERT_EQ(cn_yield(), 0);
    CN_ASSERT(ops[0].finished);
    CN_ASSERT(!ops[1].finished);
    for (int i = 1; i < 6; i++) {
        CN_ASSERT_EQ(recv_int(ch, 0), i);
    }
    for (int i = 0; i < 4; i++) {
        join(cos[i]);
        CN_ASSERT_EQ(ops[i].rc, 0);
    }
    cn_chan_free(ch);
    return 0;
}

LOOP_CASE(unbuffered_send_blocks_until_received)
{
    struct cn_chan *ch = chan(sizeof(int), 0);
    struct op o = {.ch = ch, .value = 42, .deadline = -1};
    struct cn_co *co = start(send_op, &o);
    for (int i = 0; i < 10; i++) {
        CN_ASSERT_EQ(cn_yield(), 0);
    }
    CN_ASSERT(!o.finished);
    CN_ASSERT_EQ(cn_chan_len(ch), 0);
    CN_ASSERT_EQ(recv_int(ch, -1), 42);
    join(co);
    CN_ASSERT_EQ(o.rc, 0);
    cn_chan_free(ch);
    return 0;
}

LOOP_CASE(unbuffered_send_to_parked_receiver_completes_at_once)
{
    struct cn_chan *ch = chan(sizeof(int), 0);
    struct op o = {.ch = ch, .value = -1, .deadline = -1};
    struct cn_co *co = start(recv_op, &o);
    CN_ASSERT_EQ(send_int(ch, 7, 0), 0);
    join(co);
    CN_ASSERT_EQ(o.rc, 0);
    CN_ASSERT_EQ(o.value, 7);
    cn_chan_free(ch);
    return 0;
}

struct record {
    char name[32];
    uint64_t id;
};

static struct record make_record(uint64_t id)
{
    struct record r;
    memset(&r, 0, sizeof r);
    snprintf(r.name, sizeof r.name, "record #%" PRIu64, id);
    r.id = id * 0x9E3779B97F4A7C15u;
    return r;
}

struct record_op {
    struct cn_chan *ch;
    int count;
};

static int send_records(void *arg)
{
    struct record_op *o = arg;
    for (int i = 0; i < o->count; i++) {
        struct record r = make_record((uint64_t)i);
        CN_ASSERT_EQ(cn_chan_send(o->ch, &r, -1), 0);
    }
    return 0;
}

/* Moves 40-byte records through ch and checks every byte of each. */
static void check_records(size_t capacity)
{
    struct cn_chan *ch = chan(sizeof(struct record), capacity);
    struct record_op o = {.ch = ch, .count = 20};
    struct cn_co *co;
    CN_ASSERT_EQ(sizeof(struct record), 40);
    CN_ASSERT_EQ(cn_spawn(&co, send_records, &o, NULL), 0);
    for (int i = 0; i < o.count; i++) {
        struct record got, want = make_record((uint64_t)i);
        CN_ASSERT_EQ(cn_chan_recv(ch, &got, -1), 0);
        CN_ASSERT_MEMEQ(&got, &want, sizeof got);
    }
    join(co);
    cn_chan_free(ch);
}

LOOP_CASE(elements_of_any_size_are_copied_whole)
{
    check_records(0);
    check_records(3);
    return 0;
}

LOOP_CASE(chan_new_rejects_bad_sizes)
{
    struct cn_chan *ch = NULL;
    CN_ASSERT_EQ(cn_chan_new(&ch, 0, 4), -EINVAL);
    CN_ASSERT_EQ(cn_chan_new(&ch, 64, SIZE_MAX / 8), -ENOMEM);
    CN_ASSERT(ch == NULL);
    cn_chan_free(NULL);
    return 0;
}

/* ---- many producers, many consumers ---------------------------------------- */

enum { STRESS_SIDES = 8, STRESS_TOTAL = 1000000 };

struct stress {
    struct cn_chan *ch;
    unsigned char *seen; /* one bit per value */
    size_t received;
};

struct producer {
    struct stress *st;
    uint32_t first;
};

static int produce(void *arg)
{
    struct producer *p = arg;
    for (uint32_t i = 0; i < STRESS_TOTAL / STRESS_SIDES; i++) {
        uint32_t v = p->first + i;
        CN_ASSERT_EQ(cn_chan_send(p->st->ch, &v, -1), 0);
    }
    return 0;
}

static int consume(void *arg)
{
    struct stress *st = arg;
    uint32_t v;
    int rc;
    while ((rc = cn_chan_recv(st->ch, &v, -1)) == 0) {
        CN_ASSERT_LT(v, STRESS_TOTAL);
        CN_ASSERT_EQ(st->seen[v / 8] & (1u << (v % 8)), 0); /* duplicate */
        st->seen[v / 8] |= (unsigned char)(1u << (v % 8));
        st->received++;
    }
    CN_ASSERT_EQ(rc, -EPIPE);
    return 0;
}

LOOP_CASE(stress_chan_8x8_million)
{
    struct stress st = {.ch = chan(sizeof(uint32_t), 64), .seen = calloc(STRESS_TOTAL / 8, 1)};
    struct producer prods[STRESS_SIDES];
    struct cn_co *pcos[STRESS_SIDES], *ccos[STRESS_SIDES];
    CN_ASSERT(st.seen != NULL);
    for (int i = 0; i < STRESS_SIDES; i++) {
        prods[i] =
            (struct producer){.st = &st, .first = (uint32_t)i * (STRESS_TOTAL / STRESS_SIDES)};
        CN_ASSERT_EQ(cn_spawn(&pcos[i], produce, &prods[i], NULL), 0);
        CN_ASSERT_EQ(cn_spawn(&ccos[i], consume, &st, NULL), 0);
    }
    for (int i = 0; i < STRESS_SIDES; i++) {
        join(pcos[i]);
    }
    cn_chan_close(st.ch);
    for (int i = 0; i < STRESS_SIDES; i++) {
        join(ccos[i]);
    }
    CN_ASSERT_EQ(st.received, STRESS_TOTAL);
    for (size_t i = 0; i < STRESS_TOTAL / 8; i++) {
        CN_ASSERT_EQ(st.seen[i], 0xff); /* none lost */
    }
    free(st.seen);
    cn_chan_free(st.ch);
    return 0;
}

/* ---- deadlines --------------------------------------------------------------- */

LOOP_CASE(send_times_out_at_deadline)
{
    struct cn_chan *full = chan(sizeof(int), 1), *unbuf = chan(sizeof(int), 0);
    CN_ASSERT_EQ(send_int(full, 1, 0), 0);
    int64_t deadline = cn_now() + 20;
    CN_ASSERT_EQ(send_int(full, 2, deadline), -ETIMEDOUT);
    CN_ASSERT_GE(cn_now(), deadline);
    deadline = cn_now() + 20;
    CN_ASSERT_EQ(send_int(unbuf, 3, deadline), -ETIMEDOUT);
    CN_ASSERT_GE(cn_now(), deadline);
    /* The timed-out values went nowhere. */
    CN_ASSERT_EQ(recv_int(full, 0), 1);
    CN_ASSERT_EQ(cn_chan_len(full), 0);
    int v;
    CN_ASSERT_EQ(cn_chan_recv(unbuf, &v, 0), -ETIMEDOUT);
    cn_chan_free(full);
    cn_chan_free(unbuf);
    return 0;
}

LOOP_CASE(recv_times_out_at_deadline)
{
    struct cn_chan *buf = chan(sizeof(int), 1), *unbuf = chan(sizeof(int), 0);
    int v = -1;
    int64_t deadline = cn_now() + 20;
    CN_ASSERT_EQ(cn_chan_recv(buf, &v, deadline), -ETIMEDOUT);
    CN_ASSERT_GE(cn_now(), deadline);
    deadline = cn_now() + 20;
    CN_ASSERT_EQ(cn_chan_recv(unbuf, &v, deadline), -ETIMEDOUT);
    CN_ASSERT_GE(cn_now(), deadline);
    CN_ASSERT_EQ(v, -1);
    /* Later sends are not taken by the timed-out receiver. */
    CN_ASSERT_EQ(send_int(buf, 5, 0), 0);
    CN_ASSERT_EQ(cn_chan_len(buf), 1);
    CN_ASSERT_EQ(send_int(unbuf, 6, 0), -ETIMEDOUT);
    CN_ASSERT_EQ(v, -1);
    cn_chan_free(buf);
    cn_chan_free(unbuf);
    return 0;
}

LOOP_CASE(try_once_never_parks)
{
    struct cn_chan *ch = chan(sizeof(int), 0);
    int v;
    CN_ASSERT_EQ(cn_chan_recv(ch, &v, 0), -ETIMEDOUT);
    CN_ASSERT_EQ(send_int(ch, 1, 0), -ETIMEDOUT);
    /* Try-once succeeds when a peer is already parked. */
    struct op o = {.ch = ch, .value = 2, .deadline = -1};
    struct cn_co *co = start(send_op, &o);
    CN_ASSERT_EQ(recv_int(ch, 0), 2);
    join(co);
    co = start(recv_op, &o);
    CN_ASSERT_EQ(send_int(ch, 3, 0), 0);
    join(co);
    CN_ASSERT_EQ(o.value, 3);
    cn_chan_free(ch);
    return 0;
}

/* A far deadline that no longer matters must not keep the loop alive: this
 * case hangs (until the test timeout) if the scheduler's timer stays armed. */
LOOP_CASE(recv_woken_before_far_deadline_lets_loop_end)
{
    struct cn_chan *ch = chan(sizeof(int), 0);
    struct op o = {.ch = ch, .value = 4, .deadline = -1};
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, send_op, &o, NULL), 0);
    CN_ASSERT_EQ(recv_int(ch, cn_now() + 3600 * 1000), 4);
    join(co);
    cn_chan_free(ch);
    return 0;
}

/* ---- cancellation -------------------------------------------------------------- */

LOOP_CASE(parked_recv_returns_canceled_and_chan_stays_usable)
{
    struct cn_chan *ch = chan(sizeof(int), 0);
    struct op a = {.ch = ch, .value = -1, .deadline = -1};
    struct cn_co *co = start(recv_op, &a);
    cn_cancel(co);
    /* a has not run yet: its waiter is still queued but must be skipped. */
    CN_ASSERT_EQ(send_int(ch, 1, 0), -ETIMEDOUT);
    join(co);
    CN_ASSERT_EQ(a.rc, -ECANCELED);
    CN_ASSERT_EQ(a.value, -1);
    struct op b = {.ch = ch, .value = -1, .deadline = -1};
    co = start(recv_op, &b);
    CN_ASSERT_EQ(send_int(ch, 2, -1), 0);
    join(co);
    CN_ASSERT_EQ(b.rc, 0);
    CN_ASSERT_EQ(b.value, 2);
    cn_chan_free(ch);
    return 0;
}

LOOP_CASE(parked_send_returns_canceled_and_chan_stays_usable)
{
    struct cn_chan *ch = chan(sizeof(int), 1);
    CN_ASSERT_EQ(send_int(ch, 1, 0), 0);
    struct op a = {.ch = ch, .value = 2, .deadline = -1};
    struct cn_co *co = start(send_op, &a);
    cn_cancel(co);
    /* The freed slot must not be refilled from the cancelled sender. */
    CN_ASSERT_EQ(recv_int(ch, 0), 1);
    CN_ASSERT_EQ(cn_chan_len(ch), 0);
    join(co);
    CN_ASSERT_EQ(a.rc, -ECANCELED);
    struct op b = {.ch = ch, .value = 3, .deadline = -1};
    co = start(send_op, &b);
    join(co);
    CN_ASSERT_EQ(b.rc, 0);
    CN_ASSERT_EQ(recv_int(ch, 0), 3);
    cn_chan_free(ch);
    return 0;
}

LOOP_CASE(recv_keeps_value_handed_before_cancel)
{
    struct cn_chan *ch = chan(sizeof(int), 0);
    struct op o = {.ch = ch, .value = -1, .deadline = -1};
    struct cn_co *co = start(recv_op, &o);
    CN_ASSERT_EQ(send_int(ch, 5, 0), 0);
    cn_cancel(co); /* too late: the value is already in o.value */
    join(co);
    CN_ASSERT_EQ(o.rc, 0);
    CN_ASSERT_EQ(o.value, 5);
    cn_chan_free(ch);
    return 0;
}

LOOP_CASE(send_reports_success_when_taken_before_cancel)
{
    struct cn_chan *ch = chan(sizeof(int), 0);
    struct op o = {.ch = ch, .value = 6, .deadline = -1};
    struct cn_co *co = start(send_op, &o);
    CN_ASSERT_EQ(recv_int(ch, 0), 6);
    cn_cancel(co);
    join(co);
    CN_ASSERT_EQ(o.rc, 0);
    cn_chan_free(ch);
    return 0;
}

static int cancel_self_then_use(void *arg)
{
    struct cn_chan *ch = arg;
    int v = 1;
    cn_cancel(cn_self());
    CN_ASSERT_EQ(cn_chan_send(ch, &v, -1), -ECANCELED);
    CN_ASSERT_EQ(cn_chan_recv(ch, &v, 0), -ECANCELED);
    return 0;
}

LOOP_CASE(cancelled_coroutine_fails_even_ready_operations)
{
    struct cn_chan *ch = chan(sizeof(int), 2);
    struct cn_co *co;
    CN_ASSERT_EQ(send_int(ch, 1, 0), 0);
    CN_ASSERT_EQ(cn_spawn(&co, cancel_self_then_use, ch, NULL), 0);
    join(co);
    CN_ASSERT_EQ(cn_chan_len(ch), 1);
    cn_chan_free(ch);
    return 0;
}

/* ---- close ------------------------------------------------------------------- */

LOOP_CASE(close_drains_buffer_then_fails_with_epipe)
{
    struct cn_chan *ch = chan(sizeof(int), 4);
    for (int i = 0; i < 3; i++) {
        CN_ASSERT_EQ(send_int(ch, i, 0), 0);
    }
    cn_chan_close(ch);
    cn_chan_close(ch); /* idempotent */
    CN_ASSERT_EQ(send_int(ch, 9, -1), -EPIPE);
    for (int i = 0; i < 3; i++) {
        CN_ASSERT_EQ(recv_int(ch, -1), i);
    }
    int v;
    CN_ASSERT_EQ(cn_chan_recv(ch, &v, -1), -EPIPE);
    CN_ASSERT_EQ(cn_chan_recv(ch, &v, 0), -EPIPE);
    cn_chan_free(ch);
    return 0;
}

LOOP_CASE(close_fails_parked_senders_with_epipe)
{
    struct cn_chan *unbuf = chan(sizeof(int), 0), *full = chan(sizeof(int), 1);
    struct op a = {.ch = unbuf, .value = 1, .deadline = -1};
    struct op b = {.ch = full, .value = 2, .deadline = -1};
    CN_ASSERT_EQ(send_int(full, 1, 0), 0);
    struct cn_co *ca = start(send_op, &a), *cb = start(send_op, &b);
    cn_chan_close(unbuf);
    cn_chan_close(full);
    join(ca);
    join(cb);
    CN_ASSERT_EQ(a.rc, -EPIPE);
    CN_ASSERT_EQ(b.rc, -EPIPE);
    CN_ASSERT_EQ(recv_int(full, 0), 1); /* what was buffered is still delivered */
    int v;
    CN_ASSERT_EQ(cn_chan_recv(full, &v, 0), -EPIPE);
    cn_chan_free(unbuf);
    cn_chan_free(full);
    return 0;
}

LOOP_CASE(close_fails_parked_receivers_with_epipe)
{
    struct cn_chan *ch = chan(sizeof(int), 2);
    struct op ops[3];
    struct cn_co *cos[3];
    for (int i = 0; i < 3; i++) {
        ops[i] = (struct op){.ch = ch, .value = -1, .deadline = -1};
        cos[i] = start(recv_op, &ops[i]);
    }
    cn_chan_close(ch);
    for (int i = 0; i < 3; i++) {
        join(cos[i]);
        CN_ASSERT_EQ(ops[i].rc, -EPIPE);
        CN_ASSERT_EQ(ops[i].value, -1);
    }
    cn_chan_free(ch);
    return 0;
}

/* ---- choose ------------------------------------------------------------------ */

struct chooser {
    struct cn_chan_case cases[2];
    int vals[2];
    int64_t deadline;
    int rc;
};

static int choose_op(void *arg)
{
    struct chooser *c = arg;
    c->rc = cn_chan_choose(c->cases, 2, c->deadline);
    return 0;
}

/* A chooser over two cases whose values start as v0 and v1. */
static void chooser_init(struct chooser *c, struct cn_chan *a, enum cn_chan_op opa,
                         struct cn_chan *b, enum cn_chan_op opb, int v0, int v1)
{
    memset(c, 0, sizeof *c);
    c->vals[0] = v0;
    c->vals[1] = v1;
    c->cases[0] = (struct cn_chan_case){.ch = a, .op = opa, .val = &c->vals[0], .rc = 1};
    c->cases[1] = (struct cn_chan_case){.ch = b, .op = opb, .val = &c->vals[1], .rc = 1};
    c->deadline = -1;
}

static struct cn_co *start_chooser(struct chooser *c)
{
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, choose_op, c, NULL), 0);
    CN_ASSERT_EQ(cn_yield(), 0);
    return co;
}

LOOP_CASE(choose_performs_first_ready_case_in_order)
{
    struct cn_chan *a = chan(sizeof(int), 1), *b = chan(sizeof(int), 1), *c = chan(sizeof(int), 1);
    struct chooser ch;
    CN_ASSERT_EQ(send_int(b, 10, 0), 0);
    CN_ASSERT_EQ(send_int(c, 20, 0), 0);
    chooser_init(&ch, a, CN_CHAN_RECV, b, CN_CHAN_RECV, -1, -1);
    CN_ASSERT_EQ(cn_chan_choose(ch.cases, 2, 0), 1);
    CN_ASSERT_EQ(ch.cases[1].rc, 0);
    CN_ASSERT_EQ(ch.vals[1], 10);
    /* Both ready: the first in array order wins, the other is untouched. */
    CN_ASSERT_EQ(send_int(b, 11, 0), 0);
    chooser_init(&ch, c, CN_CHAN_RECV, b, CN_CHAN_RECV, -1, -1);
    CN_ASSERT_EQ(cn_chan_choose(ch.cases, 2, -1), 0);
    CN_ASSERT_EQ(ch.vals[0], 20);
    CN_ASSERT_EQ(ch.vals[1], -1);
    CN_ASSERT_EQ(cn_chan_len(b), 1);
    /* A send case is ready when its buffer has room. */
    chooser_init(&ch, b, CN_CHAN_SEND, a, CN_CHAN_SEND, 30, 31);
    CN_ASSERT_EQ(cn_chan_choose(ch.cases, 2, 0), 1);
    CN_ASSERT_EQ(recv_int(a, 0), 31);
    CN_ASSERT_EQ(recv_int(b, 0), 11);
    cn_chan_free(a);
    cn_chan_free(b);
    cn_chan_free(c);
    return 0;
}

LOOP_CASE(choose_parks_until_a_case_becomes_ready)
{
    struct cn_chan *a = chan(sizeof(int), 0), *b = chan(sizeof(int), 0);
    struct chooser c;
    chooser_init(&c, a, CN_CHAN_RECV, b, CN_CHAN_RECV, -1, -1);
    struct cn_co *co = start_chooser(&c);
    CN_ASSERT_EQ(send_int(b, 9, 0), 0);
    join(co);
    CN_ASSERT_EQ(c.rc, 1);
    CN_ASSERT_EQ(c.cases[1].rc, 0);
    CN_ASSERT_EQ(c.vals[1], 9);
    CN_ASSERT_EQ(c.vals[0], -1);
    /* A parked send case hands its value to the receiver that arrives. */
    chooser_init(&c, a, CN_CHAN_SEND, b, CN_CHAN_SEND, 3, 4);
    co = start_chooser(&c);
    CN_ASSERT_EQ(recv_int(a, -1), 3);
    join(co);
    CN_ASSERT_EQ(c.rc, 0);
    CN_ASSERT_EQ(c.cases[0].rc, 0);
    cn_chan_free(a);
    cn_chan_free(b);
    return 0;
}

LOOP_CASE(choose_completes_exactly_one_case)
{
    struct cn_chan *a = chan(sizeof(int), 0), *b = chan(sizeof(int), 0);
    struct chooser c;
    chooser_init(&c, a, CN_CHAN_RECV, b, CN_CHAN_RECV, -1, -1);
    struct cn_co *co = start_chooser(&c);
    CN_ASSERT_EQ(send_int(a, 1, 0), 0);
    /* The chooser is ready but has not run: b must not complete too. */
    CN_ASSERT_EQ(send_int(b, 2, 0), -ETIMEDOUT);
    join(co);
    CN_ASSERT_EQ(c.rc, 0);
    CN_ASSERT_EQ(c.vals[0], 1);
    CN_ASSERT_EQ(c.vals[1], -1);
    /* Same with two send cases on one channel. */
    chooser_init(&c, a, CN_CHAN_SEND, a, CN_CHAN_SEND, 5, 6);
    co = start_chooser(&c);
    CN_ASSERT_EQ(recv_int(a, 0), 5);
    int v;
    CN_ASSERT_EQ(cn_chan_recv(a, &v, 0), -ETIMEDOUT);
    join(co);
    CN_ASSERT_EQ(c.rc, 0);
    cn_chan_free(a);
    cn_chan_free(b);
    return 0;
}

LOOP_CASE(choose_times_out_and_leaves_later_values)
{
    struct cn_chan *a = chan(sizeof(int), 0), *b = chan(sizeof(int), 1);
    struct chooser c;
    chooser_init(&c, a, CN_CHAN_RECV, b, CN_CHAN_RECV, -1, -1);
    CN_ASSERT_EQ(cn_chan_choose(c.cases, 2, 0), -ETIMEDOUT);
    int64_t deadline = cn_now() + 20;
    CN_ASSERT_EQ(cn_chan_choose(c.cases, 2, deadline), -ETIMEDOUT);
    CN_ASSERT_GE(cn_now(), deadline);
    CN_ASSERT_EQ(send_int(a, 1, 0), -ETIMEDOUT);
    CN_ASSERT_EQ(send_int(b, 2, 0), 0);
    CN_ASSERT_EQ(cn_chan_len(b), 1);
    CN_ASSERT_EQ(c.vals[0], -1);
    CN_ASSERT_EQ(c.vals[1], -1);
    CN_ASSERT_EQ(recv_int(b, 0), 2);
    cn_chan_free(a);
    cn_chan_free(b);
    return 0;
}

LOOP_CASE(choose_reports_closed_channel_with_epipe)
{
    struct cn_chan *a = chan(sizeof(int), 0), *b = chan(sizeof(int), 0);
    struct chooser c;
    cn_chan_close(b);
    chooser_init(&c, a, CN_CHAN_RECV, b, CN_CHAN_RECV, -1, -1);
    CN_ASSERT_EQ(cn_chan_choose(c.cases, 2, 0), 1);
    CN_ASSERT_EQ(c.cases[1].rc, -EPIPE);
    chooser_init(&c, a, CN_CHAN_RECV, b, CN_CHAN_SEND, -1, 1);
    CN_ASSERT_EQ(cn_chan_choose(c.cases, 2, 0), 1);
    CN_ASSERT_EQ(c.cases[1].rc, -EPIPE);
    /* A parked chooser is woken by the close. */
    struct cn_chan *d = chan(sizeof(int), 0);
    chooser_init(&c, a, CN_CHAN_RECV, d, CN_CHAN_RECV, -1, -1);
    struct cn_co *co = start_chooser(&c);
    cn_chan_close(d);
    join(co);
    CN_ASSERT_EQ(c.rc, 1);
    CN_ASSERT_EQ(c.cases[1].rc, -EPIPE);
    cn_chan_free(a);
    cn_chan_free(b);
    cn_chan_free(d);
    return 0;
}

LOOP_CASE(choose_returns_canceled_when_cancelled)
{
    struct cn_chan *a = chan(sizeof(int), 0), *b = chan(sizeof(int), 0);
    struct chooser c;
    chooser_init(&c, a, CN_CHAN_RECV, b, CN_CHAN_SEND, -1, 8);
    struct cn_co *co = start_chooser(&c);
    cn_cancel(co);
    CN_ASSERT_EQ(send_int(a, 1, 0), -ETIMEDOUT);
    int v;
    CN_ASSERT_EQ(cn_chan_recv(b, &v, 0), -ETIMEDOUT);
    join(co);
    CN_ASSERT_EQ(c.rc, -ECANCELED);
    CN_ASSERT_EQ(c.vals[0], -1);
    cn_chan_free(a);
    cn_chan_free(b);
    return 0;
}

LOOP_CASE(choose_rejects_empty_and_oversized_case_lists)
{
    struct cn_chan *a = chan(sizeof(int), 1);
    struct cn_chan_case cases[17];
    int v = 0;
    for (size_t i = 0; i < 17; i++) {
        cases[i] = (struct cn_chan_case){.ch = a, .op = CN_CHAN_SEND, .val = &v};
    }
    CN_ASSERT_EQ(cn_chan_choose(cases, 0, 0), -EINVAL);
    CN_ASSERT_EQ(cn_chan_choose(cases, 17, 0), -EINVAL);
    CN_ASSERT_EQ(cn_chan_choose(cases, 16, 0), 0);
    cn_chan_free(a);
    return 0;
}

LOOP_CASE(free_is_safe_while_woken_chooser_still_links_it)
{
    struct cn_chan *a = chan(sizeof(int), 0), *b = chan(sizeof(int), 0);
    struct chooser c;
    chooser_init(&c, a, CN_CHAN_RECV, b, CN_CHAN_RECV, -1, -1);
    struct cn_co *co = start_chooser(&c);
    CN_ASSERT_EQ(send_int(a, 1, 0), 0);
    /* Nobody is parked on b any more, so freeing it is allowed even though
     * the chooser has not yet run to unlink its waiter. */
    cn_chan_free(b);
    join(co);
    CN_ASSERT_EQ(c.rc, 0);
    CN_ASSERT_EQ(c.vals[0], 1);
    cn_chan_free(a);
    return 0;
}

/* ---- choose under load ---------------------------------------------------------- */

enum { FANIN_CHANS = 4, FANIN_EACH = 50000 };

struct fanin_src {
    struct cn_chan *ch;
    int base;
};

static int fanin_produce(void *arg)
{
    struct fanin_src *s = arg;
    for (int i = 0; i < FANIN_EACH; i++) {
        CN_ASSERT_EQ(send_int(s->ch, s->base + i, -1), 0);
    }
    cn_chan_close(s->ch);
    return 0;
}

/* Receives from every open channel until all are closed; per channel the
 * values must arrive in order. */
static void fanin_drain(struct fanin_src *src)
{
    struct cn_chan_case cases[FANIN_CHANS];
    int vals[FANIN_CHANS], next[FANIN_CHANS] = {0}, idx[FANIN_CHANS];
    size_t open = FANIN_CHANS;
    for (size_t i = 0; i < FANIN_CHANS; i++) {
        idx[i] = (int)i;
    }
    while (open > 0) {
        for (size_t i = 0; i < open; i++) {
            cases[i] = (struct cn_chan_case){src[idx[i]].ch, CN_CHAN_RECV, &vals[i], 1};
        }
        int k = cn_chan_choose(cases, open, -1);
        CN_ASSERT_OK(k);
        int s = idx[k];
        if (cases[k].rc == -EPIPE) {
            idx[k] = idx[--open];
            continue;
        }
        CN_ASSERT_EQ(cases[k].rc, 0);
        CN_ASSERT_EQ(vals[k], src[s].base + next[s]++);
    }
    for (size_t i = 0; i < FANIN_CHANS; i++) {
        CN_ASSERT_EQ(next[i], FANIN_EACH);
    }
}

LOOP_CASE(stress_choose_fans_in_four_channels)
{
    struct fanin_src src[FANIN_CHANS];
    struct cn_co *cos[FANIN_CHANS];
    for (int i = 0; i < FANIN_CHANS; i++) {
        src[i] = (struct fanin_src){chan(sizeof(int), (size_t)i), i * FANIN_EACH};
        CN_ASSERT_EQ(cn_spawn(&cos[i], fanin_produce, &src[i], NULL), 0);
    }
    fanin_drain(src);
    for (int i = 0; i < FANIN_CHANS; i++) {
        join(cos[i]);
        cn_chan_free(src[i].ch);
    }
    return 0;
}

CN_TEST_MAIN(CN_CASE(buffered_chan_keeps_fifo_order),
             CN_CASE(parked_senders_keep_fifo_order_behind_buffer),
             CN_CASE(unbuffered_send_blocks_until_received),
             CN_CASE(unbuffered_send_to_parked_receiver_completes_at_once),
             CN_CASE(elements_of_any_size_are_copied_whole), CN_CASE(chan_new_rejects_bad_sizes),
             CN_CASE(stress_chan_8x8_million), CN_CASE(send_times_out_at_deadline),
             CN_CASE(recv_times_out_at_deadline), CN_CASE(try_once_never_parks),
             CN_CASE(recv_woken_before_far_deadline_lets_loop_end),
             CN_CASE(parked_recv_returns_canceled_and_chan_stays_usable),
             CN_CASE(parked_send_returns_canceled_and_chan_stays_usable),
             CN_CASE(recv_keeps_value_handed_before_cancel),
             CN_CASE(send_reports_success_when_taken_before_cancel),
             CN_CASE(cancelled_coroutine_fails_even_ready_operations),
             CN_CASE(close_drains_buffer_then_fails_with_epipe),
             CN_CASE(close_fails_parked_senders_with_epipe),
             CN_CASE(close_fails_parked_receivers_with_epipe),
             CN_CASE(choose_performs_first_ready_case_in_order),
             CN_CASE(choose_parks_until_a_case_becomes_ready),
             CN_CASE(choose_completes_exactly_one_case),
             CN_CASE(choose_times_out_and_leaves_later_values),
             CN_CASE(choose_reports_closed_channel_with_epipe),
             CN_CASE(choose_returns_canceled_when_cancelled),
             CN_CASE(choose_rejects_empty_and_oversized_case_lists),
             CN_CASE(free_is_safe_while_woken_chooser_still_links_it),
             CN_CASE(stress_choose_fans_in_four_channels))
