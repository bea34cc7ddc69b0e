/* SPDX-License-Identifier: MIT */
/*
 * The producer's internals (kinesis/producer.c: the API, records and
 * outcomes; kinesis/producer_pipe.c: shard maps, aggregation, collection,
 * sending and retries).
 *
 * A user record (urec) is in exactly one place at a time until its outcome:
 * a stream's wait list (no shard map yet), a shard buffer (being
 * aggregated), a Kinesis record (krec) in a stream's collection, a batch in
 * the ready queue, a batch held by a sender, or a sender's retry list.
 * cn__prod_finish() is the only way out, so each record gets one outcome;
 * close sweeps every place.
 */
#ifndef CORONET_KINESIS_PRODUCER_INTERNAL_H
#define CORONET_KINESIS_PRODUCER_INTERNAL_H

#include <string.h>

#include "coronet/kinesis.h"

#include "kinesis/agg.h"
#include "kinesis/hashkey.h"

struct cn__prod_stream;

/* A user record; the handle given to the caller. */
struct cn_kinesis_outcome_handle {
    struct cn_kinesis_outcome_handle *next; /* in whatever list holds it */
    int refs;                               /* the pipeline's until the outcome + the caller's */
    bool done;
    struct cn_event done_ev;
    struct cn__hashkey hk;
    int64_t put_ms;
    int64_t deadline_ms; /* put_ms + record_ttl_ms */
    char *pk;
    size_t pk_len;
    char *ehk; /* canonical decimal, NUL-terminated, or NULL */
    size_t ehk_len;
    uint8_t *data;
    size_t data_len;
    struct cn_kinesis_outcome out;
    char buf[]; /* pk, ehk, data */
};

#define cn__urec cn_kinesis_outcome_handle

/* One Kinesis record: an aggregate or one plain user record. */
struct cn__krec {
    struct cn__krec *next;
    struct cn__urec *head; /* user records inside, in order (sub-sequence numbers) */
    size_t n;
    int64_t oldest; /* when its first record entered the buffer */
    bool aggregated;
    const char *pk; /* into head or "a" */
    size_t pk_len;
    const char *ehk; /* NULL: none */
    uint8_t *data;   /* into head, or owned (aggregated) */
    size_t data_len;
    char ehk_buf[CN__HASHKEY_DEC_MAX];
    char pk_buf[8];                          /* an aggregate's outer key ("a") */
    char shard[CN_KINESIS_SHARD_ID_MAX + 1]; /* predicted */
};

/* A shard's aggregator and the records in it. */
struct cn__prod_shard {
    struct cn__agg *agg; /* NULL when aggregation is off */
    struct cn__urec *head, *tail;
    size_t n;
    int64_t oldest;
    char id[CN_KINESIS_SHARD_ID_MAX + 1];
};

struct cn__prod_stream {
    struct cn__prod_stream *next;
    struct cn_kinesis_producer *p;
    char name[CN_KINESIS_STREAM_NAME_MAX + 1];
    struct cn__shardmap *map; /* NULL until the first ListShards succeeds */
    struct cn__prod_shard *shards;
    size_t nshards;
    bool loading;                           /* a loader coroutine runs */
    struct cn__urec *wait_head, *wait_tail; /* waiting for a shard map */
    struct cn__krec *coll_head, *coll_tail; /* the collection */
    size_t coll_n, coll_bytes;
    int64_t coll_oldest;
};

/* One PutRecords request's worth of Kinesis records. */
struct cn__batch {
    struct cn__batch *next;
    struct cn__prod_stream *s;
    size_t n;
    struct cn__krec *k[]; /* n */
};

struct cn_kinesis_producer {
    struct cn_kinesis_producer_config cfg; /* defaults applied */
    struct cn_kinesis_client *kc;
    struct cn_group *group; /* flusher, dispatcher, loaders, senders */
    struct cn__prod_stream *streams;
    struct cn__batch *ready_head, *ready_tail;
    struct cn_event ready_ev; /* a batch is ready */
    struct cn_event kick;     /* a buffer became non-empty, or a flush began */
    struct cn_sem room;       /* max_outstanding_records */
    struct cn_sem inflight;   /* max_connections */
    struct cn_wg pending;     /* records without an outcome */
    int flushers;             /* flush calls waiting: send everything now */
    bool closing;
    uint64_t next_id;
    uint64_t rng;
    struct cn_kinesis_producer_counters c;
};

/* Copies src (NULL: "") into dst, truncated to cap - 1 bytes. */
static inline void cn__prod_text(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    n = n < cap ? n : cap - 1;
    if (n > 0) {
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

/* ---- producer.c ---- */

/* Gives u its outcome: code 0 (success fields already filled) or a
 * failure with code, AWS type and message (either may be NULL). Wakes
 * waiters, calls the callback, frees u when nobody holds it. */
void cn__prod_finish(struct cn_kinesis_producer *p, struct cn__urec *u, int code, const char *type,
                     const char *msg);

/* A failure of every record in a list. */
void cn__prod_fail_list(struct cn_kinesis_producer *p, struct cn__urec *head, int code,
                        const char *type, const char *msg);

/* ---- producer_pipe.c ---- */

/* Starts the flusher and dispatcher coroutines. Errors: as cn_group_spawn. */
int cn__prod_pipe_start(struct cn_kinesis_producer *p);

/* Finds or makes the stream. Errors: -ENOMEM. */
int cn__prod_stream_get(struct cn_kinesis_producer *p, const char *name,
                        struct cn__prod_stream **out);

/* Puts u on its way: to a shard buffer, or the wait list (and a loader). */
void cn__prod_route(struct cn_kinesis_producer *p, struct cn__prod_stream *s, struct cn__urec *u);

/* Fails every record still in the pipeline with CN_ECLOSED and frees
 * streams, buffers and batches. The group must be closed. */
void cn__prod_pipe_sweep(struct cn_kinesis_producer *p);

#endif /* CORONET_KINESIS_PRODUCER_INTERNAL_H */
