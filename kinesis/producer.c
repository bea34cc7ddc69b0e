/* SPDX-License-Identifier: MIT */
/*
 * The producer's face: configuration, put (validate, copy, backpressure),
 * outcomes and their handles, flush, close, counters. The pipeline behind
 * put is kinesis/producer_pipe.c.
 *
 * Invariants: every accepted record holds one unit of `room` (the
 * max_outstanding_records semaphore) and one count of `pending` (the wait
 * group flush waits on) until cn__prod_finish() gives it its outcome, which
 * happens exactly once (u->done). A record is freed when its outcome is
 * given and the caller's handle (if any) is released.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinesis/api_internal.h"
#include "kinesis/producer_internal.h"

#define DEF_OUTSTANDING 10000
#define DEF_BUFFERED_MS 100
#define DEF_TTL_MS 30000
#define DEF_REQUEST_MS 6000
#define DEF_AGG_MAX 51200
#define DEF_CONNS 24
#define DEF_MIN_BACKOFF_MS 100
#define DEF_MAX_BACKOFF_MS 5000
#define DEF_OUTSTANDING_BYTES (64u << 20)
#define DEF_RATE_PERCENT 150
#define DEF_MAP_REFRESH_MS 60000
#define DEF_METRICS_MS 10000

/* A shard's write limits (AWS): 1,000 records/s and 1 MiB/s. */
#define SHARD_RECORDS_PER_S 1000.0
#define SHARD_BYTES_PER_S 1048576.0

static int apply_defaults(struct cn_kinesis_producer_config *c)
{
    if (c->record_max_buffered_time_ms < 0 || c->record_ttl_ms < 0 || c->request_timeout_ms < 0 ||
        c->min_backoff_ms < 0 || c->max_backoff_ms < 0 ||
        c->collection_max_count > CN_KINESIS_PUT_RECORDS_MAX ||
        c->collection_max_size > CN_KINESIS_REQUEST_MAX ||
        c->aggregation_max_size > CN_KINESIS_RECORD_MAX || c->aggregation > CN_KINESIS_OFF ||
        c->rate_limit > CN_KINESIS_OFF || c->rate_limit_percent > 1000 ||
        c->shard_map_refresh_ms < 0 || c->metrics_interval_ms < 0) {
        return -EINVAL;
    }
    if (c->max_outstanding_bytes == 0) {
        c->max_outstanding_bytes = DEF_OUTSTANDING_BYTES;
    }
    if (c->rate_limit == CN_KINESIS_DEFAULT) {
        c->rate_limit = CN_KINESIS_ON;
    }
    if (c->rate_limit_percent == 0) {
        c->rate_limit_percent = DEF_RATE_PERCENT;
    }
    if (c->shard_map_refresh_ms == 0) {
        c->shard_map_refresh_ms = DEF_MAP_REFRESH_MS;
    }
    if (c->metrics_interval_ms == 0) {
        c->metrics_interval_ms = DEF_METRICS_MS;
    }
    if (c->max_outstanding_records == 0) {
        c->max_outstanding_records = DEF_OUTSTANDING;
    }
    if (c->record_max_buffered_time_ms == 0) {
        c->record_max_buffered_time_ms = DEF_BUFFERED_MS;
    }
    if (c->record_ttl_ms == 0) {
        c->record_ttl_ms = DEF_TTL_MS;
    }
    if (c->request_timeout_ms == 0) {
        c->request_timeout_ms = DEF_REQUEST_MS;
    }
    if (c->aggregation == CN_KINESIS_DEFAULT) {
        c->aggregation = CN_KINESIS_ON;
    }
    if (c->aggregation_max_size == 0) {
        c->aggregation_max_size = DEF_AGG_MAX;
    }
    if (c->aggregation_max_size < CN__AGG_OVERHEAD + 16) {
        return -EINVAL;
    }
    if (c->collection_max_count == 0) {
        c->collection_max_count = CN_KINESIS_PUT_RECORDS_MAX;
    }
    if (c->collection_max_size == 0) {
        c->collection_max_size = CN_KINESIS_REQUEST_MAX;
    }
    if (c->max_connections == 0) {
        c->max_connections = DEF_CONNS;
    }
    if (c->min_backoff_ms == 0) {
        c->min_backoff_ms = DEF_MIN_BACKOFF_MS;
    }
    if (c->max_backoff_ms == 0) {
        c->max_backoff_ms = DEF_MAX_BACKOFF_MS;
    }
    if (c->max_outstanding_records > INT64_MAX / 2) {
        return -EINVAL;
    }
    return 0;
}

int cn_kinesis_producer_new(struct cn_kinesis_producer **out,
                            const struct cn_kinesis_producer_config *config)
{
    struct cn_kinesis_producer *p = calloc(1, sizeof *p);
    if (!p) {
        return -ENOMEM;
    }
    if (config) {
        p->cfg = *config;
    }
    int rc = apply_defaults(&p->cfg);
    if (rc < 0) {
        goto fail;
    }
    struct cn_kinesis_client_opts co = p->cfg.client;
    if (co.max_conns == 0) {
        co.max_conns = p->cfg.max_connections;
    }
    rc = cn_kinesis_client_new(&p->kc, &co);
    if (rc < 0) {
        goto fail;
    }
    p->room.count = (int64_t)p->cfg.max_outstanding_records;
    p->inflight.count = (int64_t)p->cfg.max_connections;
    if (p->cfg.rate_limit == CN_KINESIS_ON) {
        double scale = p->cfg.rate_limit_percent / 100.0 / 1000.0; /* per ms */
        p->rec_per_ms = SHARD_RECORDS_PER_S * scale;
        p->bytes_per_ms = SHARD_BYTES_PER_S * scale;
    }
    p->started_ms = cn_now();
    p->rng = (uint64_t)(uintptr_t)p ^ (uint64_t)cn_now() ^ 0x9E3779B97F4A7C15ull;
    rc = cn_group_new(&p->group);
    if (rc < 0) {
        goto fail_client;
    }
    rc = cn__prod_pipe_start(p);
    if (rc < 0) {
        goto fail_group;
    }
    *out = p;
    return 0;
fail_group:
    cn_group_close(p->group);
fail_client:
    cn_kinesis_client_close(p->kc);
fail:
    free(p);
    return rc;
}

static void unref(struct cn__urec *u)
{
    if (--u->refs == 0) {
        free(u);
    }
}

void cn__prod_release_room(struct cn_kinesis_producer *p, struct cn__urec *u)
{
    p->out_bytes -= cn__urec_bytes(u);
    if (p->bytes_waiters > 0) {
        cn_event_set(&p->bytes_ev);
    }
    cn_sem_release(&p->room);
}

static void queue_outcome(struct cn_kinesis_producer *p, struct cn__urec *u)
{
    u->next = NULL;
    if (p->oq_tail) {
        p->oq_tail->next = u;
    } else {
        p->oq_head = u;
    }
    p->oq_tail = u;
    cn_event_set(&p->oq_ev);
}

void cn__prod_finish(struct cn_kinesis_producer *p, struct cn__urec *u, int code, const char *type,
                     const char *msg)
{
    if (u->done) {
        abort(); /* a second outcome would break the one-outcome promise: a bug */
    }
    u->done = true;
    u->next = NULL;
    struct cn_kinesis_outcome *o = &u->out;
    o->code = code;
    o->latency_ms = cn_now() - u->put_ms;
    if (code != 0) {
        if (code != -ETIMEDOUT || o->last_error == 0) {
            o->last_error = code;
        }
        if (type || code != -ETIMEDOUT) { /* an expiry keeps the last error's type */
            cn__prod_text(o->error_type, sizeof o->error_type, type);
        }
        if (msg) {
            cn__prod_text(o->error_message, sizeof o->error_message, msg);
        }
        CN__COUNT(p, u->s, failed, 1);
    } else {
        o->last_error = 0;
        o->error_type[0] = o->error_message[0] = '\0';
        CN__COUNT(p, u->s, succeeded, 1);
    }
    CN__COUNT(p, u->s, outstanding, -1);
    uint64_t us = (uv_hrtime() - u->put_ns) / 1000;
    cn_kinesis_histogram_add(&p->put_to_outcome, us);
    cn_kinesis_histogram_add(&u->s->put_to_outcome, us);
    cn_event_set(&u->done_ev);
    if (p->cfg.on_outcome) {
        p->cfg.on_outcome(p->cfg.on_outcome_arg, u, o);
    }
    cn_wg_done(&p->pending);
    if (p->cfg.collect_outcomes) {
        queue_outcome(p, u); /* keeps the pipeline's reference and the room */
        return;
    }
    cn__prod_release_room(p, u);
    unref(u);
}

void cn__prod_fail_list(struct cn_kinesis_producer *p, struct cn__urec *head, int code,
                        const char *type, const char *msg)
{
    while (head) {
        struct cn__urec *next = head->next;
        cn__prod_finish(p, head, code, type, msg);
        head = next;
    }
}

/* Everything AWS would refuse, refused here (kinesis/api.c's checks). */
int cn__prod_validate(const char *stream, const char *pk, const void *data, size_t len,
                      const char *ehk, struct cn__hashkey *hk)
{
    int rc = cn__kinesis_check_stream(stream);
    if (rc < 0) {
        return rc;
    }
    if (!pk) {
        return CN_EKINESIS_PARTITION_KEY;
    }
    struct cn_kinesis_entry e = {.partition_key = pk,
                                 .partition_key_len = strlen(pk),
                                 .data = data,
                                 .data_len = len,
                                 .explicit_hash_key = ehk};
    rc = cn__kinesis_check_entry(&e);
    if (rc < 0) {
        return rc;
    }
    if (ehk) {
        return cn__hashkey_parse(hk, ehk, strlen(ehk)) < 0 ? CN_EKINESIS_HASH_KEY : 0;
    }
    cn__hashkey_from_pk(hk, pk, e.partition_key_len);
    return 0;
}

static struct cn__urec *urec_new(const char *pk, const void *data, size_t len, const char *ehk,
                                 const struct cn__hashkey *hk)
{
    size_t pk_len = strlen(pk);
    char canon[CN__HASHKEY_DEC_MAX];
    size_t ehk_len = ehk ? cn__hashkey_format(hk, canon) : 0;
    struct cn__urec *u = malloc(sizeof *u + pk_len + 1 + (ehk ? ehk_len + 1 : 0) + len);
    if (!u) {
        return NULL;
    }
    memset(u, 0, sizeof *u);
    u->hk = *hk;
    u->pk = u->buf;
    u->pk_len = pk_len;
    memcpy(u->pk, pk, pk_len + 1);
    char *at = u->buf + pk_len + 1;
    if (ehk) {
        u->ehk = at;
        u->ehk_len = ehk_len;
        memcpy(at, canon, ehk_len + 1);
        at += ehk_len + 1;
    }
    u->data = (uint8_t *)at;
    u->data_len = len;
    if (len > 0) {
        memcpy(u->data, data, len);
    }
    return u;
}

/* Whether a record of `bytes` fits under max_outstanding_bytes now (one
 * record always fits when nothing is outstanding, whatever its size). */
static bool bytes_fit(const struct cn_kinesis_producer *p, size_t bytes)
{
    return p->out_bytes == 0 || p->out_bytes + bytes <= p->cfg.max_outstanding_bytes;
}

/* Takes one unit of room and `bytes` of the byte bound, parking until
 * deadline when either is short (deadline 0: never parks). While it parks
 * everything buffered is sent at once, as flush does: waiting out
 * record_max_buffered_time_ms would only slow the release of room. */
static int take_room(struct cn_kinesis_producer *p, size_t bytes, int64_t deadline)
{
    if (bytes_fit(p, bytes) && cn_sem_acquire(&p->room, 0) == 0) {
        p->out_bytes += bytes;
        return 0;
    }
    if (deadline == 0) {
        return -ETIMEDOUT;
    }
    p->flushers++;
    cn_event_set(&p->kick);
    int rc = cn_sem_acquire(&p->room, deadline);
    bool held = rc == 0;
    while (rc == 0 && !p->closing && !bytes_fit(p, bytes)) {
        p->bytes_waiters++;
        cn_event_reset(&p->bytes_ev);
        rc = cn_event_wait(&p->bytes_ev, deadline);
        p->bytes_waiters--;
    }
    p->flushers--;
    rc = rc == 0 && p->closing ? CN_ECLOSED : rc;
    if (rc < 0) {
        if (held) {
            cn_sem_release(&p->room);
        }
        return rc;
    }
    p->out_bytes += bytes;
    return 0;
}

static int put(struct cn_kinesis_producer *p, const char *stream, const char *pk, const void *data,
               size_t len, const char *ehk, struct cn_kinesis_outcome_handle **out,
               int64_t deadline, bool try_only)
{
    if (out) {
        *out = NULL;
    }
    if (!p) {
        return -EINVAL;
    }
    if (p->closing) {
        return CN_ECLOSED;
    }
    struct cn__hashkey hk;
    int rc = cn__prod_validate(stream, pk, data, len, ehk, &hk);
    if (rc < 0) {
        return rc;
    }
    struct cn__prod_stream *s;
    rc = cn__prod_stream_get(p, stream, &s);
    if (rc < 0) {
        return rc;
    }
    struct cn__urec *u = urec_new(pk, data, len, ehk, &hk);
    if (!u) {
        return -ENOMEM;
    }
    rc = take_room(p, cn__urec_bytes(u), try_only ? 0 : deadline);
    if (rc < 0) {
        free(u);
        return try_only && rc == -ETIMEDOUT ? -EAGAIN : rc;
    }
    u->s = s;
    u->refs = out ? 2 : 1;
    u->put_ns = uv_hrtime();
    u->put_ms = cn_now();
    u->deadline_ms = u->put_ms + p->cfg.record_ttl_ms;
    u->out.id = ++p->next_id;
    cn_wg_add(&p->pending, 1);
    CN__COUNT(p, s, put, 1);
    CN__COUNT(p, s, outstanding, 1);
    if (p->c.outstanding > p->c.max_outstanding) {
        p->c.max_outstanding = p->c.outstanding;
    }
    if (s->c.outstanding > s->c.max_outstanding) {
        s->c.max_outstanding = s->c.outstanding;
    }
    if (out) {
        *out = u;
    }
    cn__prod_route(p, s, u);
    return 0;
}

int cn_kinesis_put(struct cn_kinesis_producer *p, const char *stream, const char *partition_key,
                   const void *data, size_t len, const char *explicit_hash_key,
                   struct cn_kinesis_outcome_handle **out, int64_t deadline)
{
    return put(p, stream, partition_key, data, len, explicit_hash_key, out, deadline, false);
}

int cn_kinesis_try_put(struct cn_kinesis_producer *p, const char *stream, const char *partition_key,
                       const void *data, size_t len, const char *explicit_hash_key,
                       struct cn_kinesis_outcome_handle **out)
{
    return put(p, stream, partition_key, data, len, explicit_hash_key, out, 0, true);
}

int cn_kinesis_outcome_wait(struct cn_kinesis_outcome_handle *h, struct cn_kinesis_outcome *out,
                            int64_t deadline)
{
    if (!h) {
        return -EINVAL;
    }
    if (!h->done) {
        int rc = cn_event_wait(&h->done_ev, deadline);
        if (rc < 0) {
            return rc;
        }
    }
    if (out) {
        *out = h->out;
    }
    return 0;
}

bool cn_kinesis_outcome_ready(const struct cn_kinesis_outcome_handle *h)
{
    return h && h->done;
}

void cn_kinesis_outcome_release(struct cn_kinesis_outcome_handle *h)
{
    if (h) {
        unref(h);
    }
}

int cn_kinesis_producer_flush(struct cn_kinesis_producer *p, int64_t deadline)
{
    if (!p) {
        return -EINVAL;
    }
    p->flushers++;
    cn_event_set(&p->kick);
    int rc = cn_wg_wait(&p->pending, deadline);
    p->flushers--;
    return rc;
}

int cn_kinesis_producer_close(struct cn_kinesis_producer *p, int64_t deadline)
{
    if (!p) {
        return 0;
    }
    int rc = cn_kinesis_producer_flush(p, deadline);
    p->closing = true;
    /* Senders see -ECANCELED and fail what they hold; the rest is swept. */
    cn_group_close(p->group);
    p->group = NULL;
    cn__prod_pipe_sweep(p);
    cn_event_set(&p->oq_ev);
    while (p->takers > 0) { /* they take what is queued, then see closing */
        cn_yield();
    }
    for (struct cn__urec *u = p->oq_head, *next; u; u = next) {
        next = u->next;
        unref(u);
    }
    cn_kinesis_client_close(p->kc);
    free(p);
    return rc < 0 ? -ETIMEDOUT : 0;
}

void cn_kinesis_producer_counters(const struct cn_kinesis_producer *p,
                                  struct cn_kinesis_producer_counters *out)
{
    *out = p->c;
}

ssize_t cn_kinesis_producer_take_outcomes(struct cn_kinesis_producer *p,
                                          struct cn_kinesis_outcome *out, size_t max,
                                          int64_t deadline)
{
    if (!p || !out || max == 0 || !p->cfg.collect_outcomes) {
        return -EINVAL;
    }
    int rc = 0;
    p->takers++;
    while (!p->oq_head && !p->closing && rc == 0) {
        cn_event_reset(&p->oq_ev);
        rc = cn_event_wait(&p->oq_ev, deadline);
    }
    p->takers--;
    if (rc < 0) {
        return rc;
    }
    size_t n = 0;
    while (n < max && p->oq_head) {
        struct cn__urec *u = p->oq_head;
        p->oq_head = u->next;
        out[n++] = u->out;
        cn__prod_release_room(p, u);
        unref(u);
    }
    if (!p->oq_head) {
        p->oq_tail = NULL;
    }
    return (ssize_t)n;
}

/* The metrics sinks: every metrics_interval_ms a snapshot to the callback
 * and/or a line on stderr. */
int cn__prod_reporter(void *arg)
{
    struct cn_kinesis_producer *p = arg;
    struct cn_kinesis_metrics *prev = NULL;
    while (cn_sleep(p->cfg.metrics_interval_ms) == 0) {
        struct cn_kinesis_metrics *m;
        if (cn_kinesis_producer_metrics(p, &m) < 0) {
            continue;
        }
        if (p->cfg.on_metrics) {
            p->cfg.on_metrics(p->cfg.on_metrics_arg, m);
        }
        if (p->cfg.metrics_log) {
            char line[512];
            cn_kinesis_metrics_log_line(m, prev, line, sizeof line);
            fprintf(stderr, "%s\n", line);
        }
        cn_kinesis_metrics_free(prev);
        prev = m;
    }
    cn_kinesis_metrics_free(prev);
    return 0;
}

/* ---- metrics snapshot -------------------------------------------------------- */

static void snapshot_stream(const struct cn__prod_stream *s, struct cn_kinesis_stream_metrics *m,
                            struct cn_kinesis_shard_metrics *shards)
{
    cn__prod_text(m->stream, sizeof m->stream, s->name);
    m->c = s->c;
    m->put_to_outcome = s->put_to_outcome;
    m->request_rtt = s->request_rtt;
    size_t i = 0;
    for (const struct cn__shard_stats *st = s->stats; st; st = st->next, i++) {
        cn__prod_text(shards[i].stream, sizeof shards[i].stream, s->name);
        cn__prod_text(shards[i].shard_id, sizeof shards[i].shard_id, st->id);
        shards[i].open = st->open;
        shards[i].c = st->c;
    }
}

int cn_kinesis_producer_metrics(const struct cn_kinesis_producer *p,
                                struct cn_kinesis_metrics **out)
{
    size_t nstreams = 0, nshards = 0;
    for (const struct cn__prod_stream *s = p->streams; s; s = s->next) {
        nstreams++;
        nshards += s->nstats;
    }
    struct cn_kinesis_metrics *m = calloc(1, sizeof *m);
    if (!m || !(m->streams = calloc(nstreams ? nstreams : 1, sizeof *m->streams)) ||
        !(m->shards = calloc(nshards ? nshards : 1, sizeof *m->shards))) {
        cn_kinesis_metrics_free(m);
        return -ENOMEM;
    }
    m->at_ms = cn_now();
    m->uptime_ms = m->at_ms - p->started_ms;
    m->total = p->c;
    m->put_to_outcome = p->put_to_outcome;
    m->request_rtt = p->request_rtt;
    for (const struct cn__prod_stream *s = p->streams; s; s = s->next) {
        snapshot_stream(s, &m->streams[m->nstreams++], &m->shards[m->nshards]);
        m->nshards += s->nstats;
    }
    *out = m;
    return 0;
}
