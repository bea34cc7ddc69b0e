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

static int apply_defaults(struct cn_kinesis_producer_config *c)
{
    if (c->record_max_buffered_time_ms < 0 || c->record_ttl_ms < 0 || c->request_timeout_ms < 0 ||
        c->min_backoff_ms < 0 || c->max_backoff_ms < 0 ||
        c->collection_max_count > CN_KINESIS_PUT_RECORDS_MAX ||
        c->collection_max_size > CN_KINESIS_REQUEST_MAX ||
        c->aggregation_max_size > CN_KINESIS_RECORD_MAX || c->aggregation > CN_KINESIS_OFF) {
        return -EINVAL;
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
        p->c.failed++;
    } else {
        o->last_error = 0;
        o->error_type[0] = o->error_message[0] = '\0';
        p->c.succeeded++;
    }
    p->c.outstanding--;
    cn_event_set(&u->done_ev);
    if (p->cfg.on_outcome) {
        p->cfg.on_outcome(p->cfg.on_outcome_arg, u, o);
    }
    cn_sem_release(&p->room);
    cn_wg_done(&p->pending);
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
static int validate(const char *stream, const char *pk, const void *data, size_t len,
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
    int rc = validate(stream, pk, data, len, ehk, &hk);
    if (rc < 0) {
        return rc;
    }
    struct cn__prod_stream *s;
    rc = cn__prod_stream_get(p, stream, &s);
    if (rc < 0) {
        return rc;
    }
    rc = cn_sem_acquire(&p->room, 0);
    if (rc == -ETIMEDOUT && !try_only && deadline != 0) {
        /* Full: waiting out record_max_buffered_time_ms would only slow
         * the release of room, so send what is buffered now, as flush does. */
        p->flushers++;
        cn_event_set(&p->kick);
        rc = cn_sem_acquire(&p->room, deadline);
        p->flushers--;
    }
    if (rc < 0) {
        return try_only && rc == -ETIMEDOUT ? -EAGAIN : rc;
    }
    if (p->closing) { /* closed while parked */
        cn_sem_release(&p->room);
        return CN_ECLOSED;
    }
    struct cn__urec *u = urec_new(pk, data, len, ehk, &hk);
    if (!u) {
        cn_sem_release(&p->room);
        return -ENOMEM;
    }
    u->refs = out ? 2 : 1;
    u->put_ms = cn_now();
    u->deadline_ms = u->put_ms + p->cfg.record_ttl_ms;
    u->out.id = ++p->next_id;
    cn_wg_add(&p->pending, 1);
    p->c.put++;
    if (++p->c.outstanding > p->c.max_outstanding) {
        p->c.max_outstanding = p->c.outstanding;
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
    cn_kinesis_client_close(p->kc);
    free(p);
    return rc < 0 ? -ETIMEDOUT : 0;
}

void cn_kinesis_producer_counters(const struct cn_kinesis_producer *p,
                                  struct cn_kinesis_producer_counters *out)
{
    *out = p->c;
}
