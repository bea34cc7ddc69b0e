/* SPDX-License-Identifier: MIT */
/*
 * The producer's per-shard limiter. Kinesis takes at most 1,000 records/s
 * and 1 MiB/s per shard and answers the excess with throttling errors
 * (each then retried after a backoff); the limiter keeps the producer
 * under rate_limit_percent of that by itself. Each shard has two token
 * buckets, one second deep, refilled continuously by the loop clock; a
 * Kinesis record (an aggregate counts once) takes one record token and its
 * bytes. What does not fit waits, in order, in the shard's queue; the
 * flusher lets it out when cn__prod_release_limited says the tokens are
 * there. Between the aggregators and the collection, so a retried record
 * passes it again.
 */
#include "kinesis/producer_internal.h"

/* How often a shard's queue is let out while records wait for tokens. */
#define LIMITER_TICK_MS 25

/* Tops the buckets up for the time since the last refill, to one second's
 * worth at most. */
static void refill(struct cn_kinesis_producer *p, struct cn__prod_shard *sh, int64_t now)
{
    double ms = (double)(now - sh->refilled_ms);
    sh->refilled_ms = now;
    sh->rec_tokens = sh->rec_tokens + ms * p->rec_per_ms;
    sh->byte_tokens = sh->byte_tokens + ms * p->bytes_per_ms;
    if (sh->rec_tokens > p->rec_per_ms * 1000) {
        sh->rec_tokens = p->rec_per_ms * 1000;
    }
    if (sh->byte_tokens > p->bytes_per_ms * 1000) {
        sh->byte_tokens = p->bytes_per_ms * 1000;
    }
}

/* Takes k's tokens if the buckets hold them. A record bigger than a full
 * bucket (a low rate_limit_percent) goes when the bucket is full, leaving
 * a debt, so it is slowed, not stuck. */
static bool take_tokens(struct cn_kinesis_producer *p, struct cn__prod_shard *sh,
                        const struct cn__krec *k)
{
    double bytes = (double)cn__krec_size(k);
    bool full = sh->byte_tokens >= p->bytes_per_ms * 1000;
    if (sh->rec_tokens < 1.0 || (sh->byte_tokens < bytes && !full)) {
        return false;
    }
    sh->rec_tokens -= 1.0;
    sh->byte_tokens -= bytes;
    return true;
}

/* When the buckets will hold k's tokens. */
static int64_t tokens_due(const struct cn_kinesis_producer *p, const struct cn__prod_shard *sh,
                          const struct cn__krec *k)
{
    double bytes = (double)cn__krec_size(k), cap = p->bytes_per_ms * 1000;
    double rec_ms = (1.0 - sh->rec_tokens) / p->rec_per_ms;
    double byte_ms = ((bytes < cap ? bytes : cap) - sh->byte_tokens) / p->bytes_per_ms;
    double ms = rec_ms > byte_ms ? rec_ms : byte_ms;
    return sh->refilled_ms + (ms > 0 ? (int64_t)ms + 1 : 0);
}

/* A Kinesis record for shard sh goes to the collection if the limiter lets
 * it (and nothing queued before it waits), else it queues behind the
 * shard's limiter; the flusher lets it go when the buckets allow. */
void cn__prod_admit(struct cn_kinesis_producer *p, struct cn__prod_stream *s,
                    struct cn__prod_shard *sh, struct cn__krec *k)
{
    if (p->rec_per_ms > 0 && !sh->lim_head) {
        refill(p, sh, cn_now());
    }
    if (p->rec_per_ms == 0 || (!sh->lim_head && take_tokens(p, sh, k))) {
        cn__prod_collect(p, s, k);
        return;
    }
    k->next = NULL;
    if (sh->lim_tail) {
        sh->lim_tail->next = k;
    } else {
        sh->lim_head = k;
        cn_event_set(&p->kick);
    }
    sh->lim_tail = k;
    CN__COUNT(p, s, limited, 1);
    sh->st->c.limited++;
}

/* Lets out what the shard's buckets allow now; returns when the next
 * queued record may go (INT64_MAX: none queued). */
int64_t cn__prod_release_limited(struct cn_kinesis_producer *p, struct cn__prod_stream *s,
                                 struct cn__prod_shard *sh, int64_t now)
{
    if (!sh->lim_head) {
        return INT64_MAX;
    }
    refill(p, sh, now);
    while (sh->lim_head && take_tokens(p, sh, sh->lim_head)) {
        struct cn__krec *k = sh->lim_head;
        sh->lim_head = k->next;
        if (!sh->lim_head) {
            sh->lim_tail = NULL;
        }
        cn__prod_collect(p, s, k);
    }
    if (!sh->lim_head) {
        return INT64_MAX;
    }
    /* Waking for every token would let records out one by one, each
     * becoming a request of its own: let them out a tick's worth at once. */
    int64_t due = tokens_due(p, sh, sh->lim_head);
    return due > now + LIMITER_TICK_MS ? due : now + LIMITER_TICK_MS;
}
