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

/* A shard's counters for the metrics; lives as long as its stream (shards
 * come and go with splits and merges, their totals stay). */
struct cn__shard_stats {
    struct cn__shard_stats *next;
    bool open;
    struct cn_kinesis_producer_counters c;
    char id[CN_KINESIS_SHARD_ID_MAX + 1];
};

/* A user record; the handle given to the caller. */
struct cn_kinesis_outcome_handle {
    struct cn_kinesis_outcome_handle *next; /* in whatever list holds it */
    int refs;                               /* the pipeline's until the outcome + the caller's */
    bool done;
    struct cn_event done_ev;
    struct cn__prod_stream *s;
    struct cn__hashkey hk;
    uint64_t put_ns; /* uv_hrtime at put, for the latency histogram */
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

/* What a record weighs against max_outstanding_bytes. */
static inline size_t cn__urec_bytes(const struct cn_kinesis_outcome_handle *u)
{
    return u->pk_len + u->ehk_len + u->data_len;
}

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
    struct cn__shard_stats *st;              /* the predicted shard's */
};

/* A shard's aggregator and the records in it, and its limiter: token
 * buckets of records and bytes, and the Kinesis records waiting for them. */
struct cn__prod_shard {
    struct cn__agg *agg; /* NULL when aggregation is off */
    struct cn__urec *head, *tail;
    size_t n;
    int64_t oldest;
    double rec_tokens, byte_tokens;
    int64_t refilled_ms;
    struct cn__krec *lim_head, *lim_tail;
    struct cn__shard_stats *st;
    char id[CN_KINESIS_SHARD_ID_MAX + 1];
};

struct cn__prod_stream {
    struct cn__prod_stream *next;
    struct cn_kinesis_producer *p;
    char name[CN_KINESIS_STREAM_NAME_MAX + 1];
    struct cn__shardmap *map; /* NULL until the first ListShards succeeds */
    struct cn__prod_shard *shards;
    size_t nshards;
    bool loading;                  /* a loader coroutine runs */
    int64_t map_ms;                /* when the map was last loaded or confirmed */
    struct cn__shard_stats *stats; /* every shard ever seen */
    size_t nstats;
    struct cn_kinesis_producer_counters c; /* this stream's */
    struct cn_kinesis_histogram put_to_outcome, request_rtt;
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
    size_t out_bytes;         /* cn__urec_bytes of records holding room */
    struct cn_event bytes_ev; /* out_bytes went down */
    int bytes_waiters;
    struct cn__urec *oq_head, *oq_tail; /* collect_outcomes: outcomes not yet taken */
    struct cn_event oq_ev;
    int takers;                      /* coroutines inside cn_kinesis_producer_take_outcomes */
    double rec_per_ms, bytes_per_ms; /* the limiter's rates; 0: off */
    int64_t started_ms;
    struct cn_kinesis_histogram put_to_outcome, request_rtt;
    int flushers; /* flush calls waiting: send everything now */
    bool closing;
    uint64_t next_id;
    uint64_t rng;
    struct cn_kinesis_producer_counters c;
};

/* Adds n to a counter of the producer's and of stream s's totals. */
#define CN__COUNT(p, s, field, n)                                                                  \
    do {                                                                                           \
        (p)->c.field += (n);                                                                       \
        (s)->c.field += (n);                                                                       \
    } while (0)

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

/* Everything AWS would refuse in a record, refused before it is made (so
 * put returns it), and the record's hash key into *hk. Errors:
 * CN_EKINESIS_STREAM_NAME, _PARTITION_KEY, _RECORD_TOO_LARGE, _HASH_KEY,
 * -EINVAL. */
int cn__prod_validate(const char *stream, const char *pk, const void *data, size_t len,
                      const char *ehk, struct cn__hashkey *hk);

/* Gives u its outcome: code 0 (success fields already filled) or a
 * failure with code, AWS type and message (either may be NULL). Wakes
 * waiters, calls the callback, frees u when nobody holds it. */
void cn__prod_finish(struct cn_kinesis_producer *p, struct cn__urec *u, int code, const char *type,
                     const char *msg);

/* A failure of every record in a list. */
void cn__prod_fail_list(struct cn_kinesis_producer *p, struct cn__urec *head, int code,
                        const char *type, const char *msg);

/* The metrics reporter coroutine (config.on_metrics / metrics_log). */
int cn__prod_reporter(void *arg);

/* ---- producer_pipe.c ---- */

/* Appends k to its stream's collection (emitting it when full). */
void cn__prod_collect(struct cn_kinesis_producer *p, struct cn__prod_stream *s, struct cn__krec *k);

static inline size_t cn__krec_size(const struct cn__krec *k)
{
    return k->data_len + k->pk_len;
}

/* ---- producer_limit.c ---- */

/* Sends k (a Kinesis record predicted for shard sh) to the collection if
 * the shard's limiter lets it, else queues it behind the limiter. */
void cn__prod_admit(struct cn_kinesis_producer *p, struct cn__prod_stream *s,
                    struct cn__prod_shard *sh, struct cn__krec *k);

/* Lets out of sh's queue what its buckets allow at now; returns when the
 * next queued record may go (INT64_MAX: none queued). */
int64_t cn__prod_release_limited(struct cn_kinesis_producer *p, struct cn__prod_stream *s,
                                 struct cn__prod_shard *sh, int64_t now);

/* Gives back what u holds of max_outstanding_records and _bytes. */
void cn__prod_release_room(struct cn_kinesis_producer *p, struct cn__urec *u);

/* Starts the flusher and dispatcher coroutines (and the metrics reporter
 * when a sink is configured). Errors: as cn_group_spawn. */
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
