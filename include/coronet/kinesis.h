/* SPDX-License-Identifier: MIT */
/*
 * coronet Kinesis: the Amazon Kinesis Data Streams JSON API client, and
 * (appended later) the KPL-class producer built on it.
 *
 * Sections:
 *   errors            CN_EKINESIS_* codes and the retryable classification
 *   limits            what AWS accepts, checked before anything is sent
 *   API client        cn_kinesis_client_* and one call per Kinesis operation
 *   (producer)        to come
 *
 * API client. Each call is one signed (SigV4, service "kinesis") POST of a
 * JSON body (application/x-amz-json-1.1, X-Amz-Target:
 * Kinesis_20131202.<Operation>) over the pooled keep-alive HTTP client, to
 * an http or https endpoint. Calls are coroutine calls: they park only the
 * calling coroutine, many may be in flight on one client, and each takes an
 * absolute deadline on the loop clock (-1 none) that bounds everything:
 * waiting for a pooled connection, connect, TLS, the request and the whole
 * response. Nothing is retried here except the HTTP client's one transparent
 * retry of a request on a pooled connection the server had already closed
 * (before any response byte): retries with backoff are the caller's (the
 * producer's) business, guided by cn_kinesis_retryable().
 *
 * Validation. What AWS would reject for its shape (stream name pattern,
 * partition key length, record and request sizes, entry counts, explicit
 * hash keys) is rejected here, before sending, with a distinct CN_EKINESIS_*
 * code: coronet never sends a request AWS is known to refuse.
 *
 * Errors. Every call returns 0 or a negative code, and fills an optional
 * struct cn_kinesis_error with the code, the HTTP status, the AWS error type
 * and message (copied: owned by the struct) and whether a retry may succeed.
 *
 * Threads: a client belongs to its loop's thread, like every coroutine
 * object. Results (lists, records, put results) are plain memory: free them
 * from any thread.
 */
#ifndef CORONET_KINESIS_H
#define CORONET_KINESIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coronet/runtime.h"
#include "coronet/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== errors ====================================================================== */

/* The CN_EKINESIS_* codes (-5500 band) are in runtime.h's CN_ERRNO_MAP:
 * -5500..-5519 errors the service returned, -5520.. responses that break the
 * protocol, -5530.. requests rejected before sending (AWS would refuse them). */

/* True if repeating the request (after a backoff) may succeed: throttling
 * (CN_EKINESIS_THROUGHPUT, _LIMIT, _KMS_THROTTLED, _THROTTLING), server
 * errors (_INTERNAL, _UNAVAILABLE) and transport failures (-ECONNRESET,
 * -ECONNREFUSED, -EPIPE, -ETIMEDOUT, CN_EOF, CN_EBROKEN,
 * CN_EHTTP_INCOMPLETE...). Everything else, validation and credentials
 * included, fails the same way again. */
CN_EXTERN bool cn_kinesis_retryable(int code);

/* The outcome of a failed call; fields are copied, so the struct owns them. */
struct cn_kinesis_error {
    int code;          /* what the call returned; 0 after success */
    int http_status;   /* 0: no response (transport error or rejected before sending) */
    bool retryable;    /* cn_kinesis_retryable(code) */
    char type[96];     /* AWS __type without its "namespace#" prefix, or "" */
    char message[512]; /* AWS message (truncated), or a description of the failure */
};

/* ==== limits (Kinesis Data Streams quotas; AWS rejects anything beyond) ========== */

#define CN_KINESIS_STREAM_NAME_MAX 128   /* chars, [a-zA-Z0-9_.-] */
#define CN_KINESIS_SHARD_ID_MAX 128      /* chars, [a-zA-Z0-9_.-] */
#define CN_KINESIS_PARTITION_KEY_MAX 256 /* Unicode characters (code points) */
#define CN_KINESIS_RECORD_MAX 1048576    /* data + partition key bytes per record */
#define CN_KINESIS_PUT_RECORDS_MAX 500   /* entries per PutRecords */
#define CN_KINESIS_REQUEST_MAX 5242880   /* data + partition keys per PutRecords */
#define CN_KINESIS_GET_RECORDS_MAX 10000 /* GetRecords Limit */
#define CN_KINESIS_SEQ_MAX 130           /* buffer for a sequence number (<= 129 digits) */
#define CN_KINESIS_HASH_KEY_MAX 40       /* buffer for a decimal hash key (<= 39 digits) */
#define CN_KINESIS_ITERATOR_MAX 2048     /* buffer for a shard iterator (AWS: <= 512) */

/* ==== API client ================================================================== */

struct cn_kinesis_client;

struct cn_kinesis_client_opts {
    /* Where requests go: endpoint_url (http or https, e.g. an emulator on
     * "http://127.0.0.1:4567"), else AWS_ENDPOINT_URL_KINESIS /
     * AWS_ENDPOINT_URL, else https://kinesis.<region>.amazonaws.com. */
    const char *endpoint_url;
    const char *region;  /* NULL: AWS_REGION, AWS_DEFAULT_REGION, the config file */
    const char *profile; /* NULL: AWS_PROFILE or "default" */
    /* Explicit credentials (copied); NULL: the environment, then the shared
     * credentials and config files. */
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;
    /* HTTP: */
    size_t max_conns;          /* pooled connections to the endpoint; 0 = 8 */
    int64_t idle_timeout_ms;   /* idle pooled connections closed after; 0 = 30 s */
    size_t max_response_bytes; /* a response body; 0 = 32 MiB (GetRecords returns up
                                  to 10 MiB of data, base64 in JSON) */
    struct cn_tls_ctx *tls;    /* client TLS context (borrowed); NULL = system CAs */
};

/* Makes a client: resolves endpoint, region and credentials as
 * cn_aws_config_load does (which may read the shared files: blocking file
 * I/O, do it at start-up) and starts a pooled HTTP client. Call from a
 * coroutine; use and close it from coroutines of the same loop. opts may be
 * NULL.
 * Errors: CN_EAWS_NO_CREDENTIALS, CN_EAWS_PARTIAL_CREDENTIALS,
 * CN_EAWS_NO_REGION, CN_EAWS_NO_PROFILE, CN_EAWS_CONFIG, CN_EAWS_ENDPOINT,
 * -EINVAL, -ENOMEM, CN_ENOSTACK, CN_ENOTCORO. */
CN_EXTERN int cn_kinesis_client_new(struct cn_kinesis_client **out,
                                    const struct cn_kinesis_client_opts *opts);

/* Closes the pooled connections and frees kc; no call may be in flight.
 * Wipes the credentials. Accepts NULL. */
CN_EXTERN void cn_kinesis_client_close(struct cn_kinesis_client *kc);

/* The endpoint URL and region the client resolved (owned by kc). */
CN_EXTERN const char *cn_kinesis_client_endpoint(const struct cn_kinesis_client *kc);
CN_EXTERN const char *cn_kinesis_client_region(const struct cn_kinesis_client *kc);

/*
 * Common to every call below:
 *   - strings are borrowed for the call; err may be NULL;
 *   - returns 0, or the negative code also stored in err->code:
 *     the CN_EKINESIS_* of an AWS error (err->type, err->message say which),
 *     CN_EKINESIS_BAD_RESPONSE / _CONTENT_TYPE for a response that breaks
 *     the protocol, a validation code for a request not sent, -EINVAL for
 *     a NULL or out-of-range argument, -ENOMEM, and the HTTP client's
 *     errors: -ETIMEDOUT (the deadline passed; the request may have been
 *     processed), -ECANCELED (the calling coroutine was cancelled), connect
 *     and TLS errors, -ECONNRESET, CN_EOF, CN_EHTTP_INCOMPLETE,
 *     CN_EHTTP_PARSE, CN_EHTTP_BODY_TOO_LARGE (over max_response_bytes).
 * Each call's own comment lists only what it adds.
 */

/* CreateStream in provisioned mode with shard_count shards (1..100000).
 * The stream starts CREATING: see cn_kinesis_wait_active. Errors:
 * CN_EKINESIS_STREAM_NAME, CN_EKINESIS_IN_USE (exists), CN_EKINESIS_LIMIT. */
CN_EXTERN int cn_kinesis_create_stream(struct cn_kinesis_client *kc, const char *stream,
                                       int shard_count, struct cn_kinesis_error *err,
                                       int64_t deadline);

/* DeleteStream (EnforceConsumerDeletion when force). Errors:
 * CN_EKINESIS_NOT_FOUND, CN_EKINESIS_IN_USE, CN_EKINESIS_LIMIT. */
CN_EXTERN int cn_kinesis_delete_stream(struct cn_kinesis_client *kc, const char *stream, bool force,
                                       struct cn_kinesis_error *err, int64_t deadline);

enum cn_kinesis_stream_status {
    CN_KINESIS_STATUS_UNKNOWN = 0, /* a status this client does not know */
    CN_KINESIS_STATUS_CREATING,
    CN_KINESIS_STATUS_DELETING,
    CN_KINESIS_STATUS_ACTIVE,
    CN_KINESIS_STATUS_UPDATING,
};

struct cn_kinesis_stream_summary {
    char name[CN_KINESIS_STREAM_NAME_MAX + 1];
    char arn[320];
    enum cn_kinesis_stream_status status;
    int open_shard_count;
    int retention_hours;
    bool on_demand;            /* StreamModeDetails.StreamMode ON_DEMAND */
    double creation_timestamp; /* seconds since the epoch; 0 if absent */
};

/* DescribeStreamSummary into *out. Errors: CN_EKINESIS_STREAM_NAME,
 * CN_EKINESIS_NOT_FOUND, CN_EKINESIS_LIMIT. */
CN_EXTERN int cn_kinesis_describe_stream_summary(struct cn_kinesis_client *kc, const char *stream,
                                                 struct cn_kinesis_stream_summary *out,
                                                 struct cn_kinesis_error *err, int64_t deadline);

/* Polls DescribeStreamSummary, with backoff from 20 ms doubling to 1 s,
 * until the stream is ACTIVE; out (may be NULL) gets the last summary.
 * Like the AWS SDK waiter it keeps polling through ResourceNotFound (a new
 * stream may not be visible at once) and retryable errors.
 * Errors: -ETIMEDOUT (err keeps the last failure, if any), the first
 * non-retryable error other than CN_EKINESIS_NOT_FOUND, -ECANCELED. */
CN_EXTERN int cn_kinesis_wait_active(struct cn_kinesis_client *kc, const char *stream,
                                     struct cn_kinesis_stream_summary *out,
                                     struct cn_kinesis_error *err, int64_t deadline);

/* One shard as ListShards describes it. */
struct cn_kinesis_shard {
    char id[CN_KINESIS_SHARD_ID_MAX + 1];
    char parent[CN_KINESIS_SHARD_ID_MAX + 1];          /* "" if none */
    char adjacent_parent[CN_KINESIS_SHARD_ID_MAX + 1]; /* "" if none (set after a merge) */
    char starting_hash_key[CN_KINESIS_HASH_KEY_MAX];   /* decimal */
    char ending_hash_key[CN_KINESIS_HASH_KEY_MAX];
    char starting_seq[CN_KINESIS_SEQ_MAX];
    char ending_seq[CN_KINESIS_SEQ_MAX]; /* "" while the shard is open */
    bool open;                           /* no ending sequence number */
};

struct cn_kinesis_shard_list {
    struct cn_kinesis_shard *shards; /* in the order listed */
    size_t count;
};

enum cn_kinesis_shard_filter {
    CN_KINESIS_SHARDS_ALL = 0, /* every shard the stream still retains */
    CN_KINESIS_SHARDS_OPEN,    /* ShardFilter AT_LATEST: the open shards only */
};

/* The bound on shards returned: more is -E2BIG. */
#define CN_KINESIS_LIST_SHARDS_MAX 100000

/* ListShards, every page: the first request names the stream (and the
 * filter), the next ones carry only NextToken, as AWS requires. With
 * CN_KINESIS_SHARDS_OPEN the filter is also applied to the answer (an
 * emulator may ignore ShardFilter). *out is freed with
 * cn_kinesis_shard_list_free. Errors: CN_EKINESIS_STREAM_NAME,
 * CN_EKINESIS_NOT_FOUND, CN_EKINESIS_LIMIT, CN_EKINESIS_EXPIRED_ITERATOR
 * (the NextToken expired between pages), -E2BIG. */
CN_EXTERN int cn_kinesis_list_shards(struct cn_kinesis_client *kc, const char *stream,
                                     enum cn_kinesis_shard_filter filter,
                                     struct cn_kinesis_shard_list **out,
                                     struct cn_kinesis_error *err, int64_t deadline);

/* Frees a list; accepts NULL. */
CN_EXTERN void cn_kinesis_shard_list_free(struct cn_kinesis_shard_list *l);

/* One record to put. */
struct cn_kinesis_entry {
    const char *partition_key; /* UTF-8, 1..256 Unicode characters */
    size_t partition_key_len;  /* bytes */
    const void *data;          /* data + key <= 1 MiB; may be NULL when data_len is 0 */
    size_t data_len;
    const char *explicit_hash_key; /* NUL-terminated decimal <= 2^128-1, or NULL */
};

/* Where a record landed. */
struct cn_kinesis_put_result {
    int code; /* 0, or the CN_EKINESIS_* of ErrorCode (PutRecords only) */
    char shard_id[CN_KINESIS_SHARD_ID_MAX + 1];
    char sequence_number[CN_KINESIS_SEQ_MAX];
    char *error_code;    /* PutRecords: AWS ErrorCode, or NULL (owned by the result) */
    char *error_message; /* AWS ErrorMessage, or NULL (owned by the result) */
};

/* PutRecord of one entry into *out (error strings stay NULL).
 * seq_for_ordering (may be NULL) is SequenceNumberForOrdering.
 * Errors: CN_EKINESIS_STREAM_NAME, CN_EKINESIS_PARTITION_KEY,
 * CN_EKINESIS_RECORD_TOO_LARGE, CN_EKINESIS_HASH_KEY, CN_EKINESIS_NOT_FOUND,
 * CN_EKINESIS_THROUGHPUT, CN_EKINESIS_KMS*. */
CN_EXTERN int cn_kinesis_put_record(struct cn_kinesis_client *kc, const char *stream,
                                    const struct cn_kinesis_entry *entry,
                                    const char *seq_for_ordering, struct cn_kinesis_put_result *out,
                                    struct cn_kinesis_error *err, int64_t deadline);

struct cn_kinesis_put_records_result {
    size_t count;  /* = entries sent; results[i] is entries[i]'s outcome */
    size_t failed; /* FailedRecordCount */
    struct cn_kinesis_put_result *results;
};

/* PutRecords of n entries (1..500, at most 5 MiB of data and keys). A 200
 * answer returns 0 even when some records failed: each result has its own
 * code (typically CN_EKINESIS_THROUGHPUT or CN_EKINESIS_INTERNAL, both
 * retryable) and (*out)->failed counts them. *out is freed with
 * cn_kinesis_put_records_result_free.
 * Errors: CN_EKINESIS_TOO_MANY_RECORDS, CN_EKINESIS_REQUEST_TOO_LARGE, and
 * per entry as cn_kinesis_put_record (err->message names the entry);
 * CN_EKINESIS_BAD_RESPONSE also when the answer does not hold n results. */
CN_EXTERN int cn_kinesis_put_records(struct cn_kinesis_client *kc, const char *stream,
                                     const struct cn_kinesis_entry *entries, size_t n,
                                     struct cn_kinesis_put_records_result **out,
                                     struct cn_kinesis_error *err, int64_t deadline);

/* Frees a result and its strings; accepts NULL. */
CN_EXTERN void cn_kinesis_put_records_result_free(struct cn_kinesis_put_records_result *r);

enum cn_kinesis_iterator_type {
    CN_KINESIS_TRIM_HORIZON = 0,
    CN_KINESIS_LATEST,
    CN_KINESIS_AT_SEQUENCE_NUMBER,    /* needs a sequence number */
    CN_KINESIS_AFTER_SEQUENCE_NUMBER, /* needs a sequence number */
    CN_KINESIS_AT_TIMESTAMP,          /* needs a timestamp */
};

struct cn_kinesis_iterator_opts {
    enum cn_kinesis_iterator_type type;
    const char *sequence_number; /* AT_ / AFTER_SEQUENCE_NUMBER */
    double timestamp;            /* AT_TIMESTAMP: seconds since the epoch */
};

/* GetShardIterator: writes the iterator (NUL-terminated) into
 * iterator[CN_KINESIS_ITERATOR_MAX]. opts NULL means TRIM_HORIZON.
 * Errors: CN_EKINESIS_STREAM_NAME, CN_EKINESIS_SHARD_ID, -EINVAL (a missing
 * or non-decimal sequence number), CN_EKINESIS_NOT_FOUND,
 * CN_EKINESIS_INVALID_ARGUMENT, CN_EKINESIS_THROUGHPUT. */
CN_EXTERN int cn_kinesis_get_shard_iterator(struct cn_kinesis_client *kc, const char *stream,
                                            const char *shard_id,
                                            const struct cn_kinesis_iterator_opts *opts,
                                            char iterator[CN_KINESIS_ITERATOR_MAX],
                                            struct cn_kinesis_error *err, int64_t deadline);

/* One record read back. Views into the owning cn_kinesis_records. */
struct cn_kinesis_record {
    const char *partition_key; /* NUL-terminated too */
    size_t partition_key_len;
    const uint8_t *data; /* base64-decoded */
    size_t data_len;
    const char *sequence_number; /* NUL-terminated */
    int64_t arrival_ms;          /* ApproximateArrivalTimestamp, ms since the epoch; -1 absent */
};

struct cn_kinesis_records {
    struct cn_kinesis_record *records;
    size_t count;
    /* NextShardIterator (NUL-terminated), or NULL: the shard is closed and
     * read to its end. */
    const char *next_iterator;
    int64_t millis_behind_latest; /* -1 if absent */
};

/* GetRecords: up to limit records (0: the service's default, 10,000) from
 * the iterator. *out is freed with cn_kinesis_records_free; its views stay
 * valid until then.
 * Errors: -EINVAL (empty iterator, limit over 10,000),
 * CN_EKINESIS_EXPIRED_ITERATOR, CN_EKINESIS_THROUGHPUT,
 * CN_EKINESIS_NOT_FOUND, CN_EKINESIS_INVALID_ARGUMENT, CN_EKINESIS_KMS*. */
CN_EXTERN int cn_kinesis_get_records(struct cn_kinesis_client *kc, const char *iterator, int limit,
                                     struct cn_kinesis_records **out, struct cn_kinesis_error *err,
                                     int64_t deadline);

/* Frees records; accepts NULL. */
CN_EXTERN void cn_kinesis_records_free(struct cn_kinesis_records *r);

/* SplitShard: shard_id becomes two children, the second starting at
 * new_starting_hash_key (decimal, inside the shard's range). The stream is
 * UPDATING meanwhile. Errors: CN_EKINESIS_SHARD_ID, CN_EKINESIS_HASH_KEY,
 * CN_EKINESIS_NOT_FOUND, CN_EKINESIS_IN_USE, CN_EKINESIS_INVALID_ARGUMENT,
 * CN_EKINESIS_LIMIT. */
CN_EXTERN int cn_kinesis_split_shard(struct cn_kinesis_client *kc, const char *stream,
                                     const char *shard_id, const char *new_starting_hash_key,
                                     struct cn_kinesis_error *err, int64_t deadline);

/* MergeShards of two adjacent open shards. Errors as split. */
CN_EXTERN int cn_kinesis_merge_shards(struct cn_kinesis_client *kc, const char *stream,
                                      const char *shard_id, const char *adjacent_shard_id,
                                      struct cn_kinesis_error *err, int64_t deadline);

/* UpdateShardCount to target (1..100000) with UNIFORM_SCALING. Errors:
 * CN_EKINESIS_NOT_FOUND, CN_EKINESIS_IN_USE, CN_EKINESIS_LIMIT,
 * CN_EKINESIS_INVALID_ARGUMENT (kinesalite does not know the operation:
 * CN_EKINESIS or CN_EKINESIS_VALIDATION). */
CN_EXTERN int cn_kinesis_update_shard_count(struct cn_kinesis_client *kc, const char *stream,
                                            int target, struct cn_kinesis_error *err,
                                            int64_t deadline);

/* ==== producer ==================================================================== */

/*
 * The producer: the Amazon KPL's pipeline as coroutines of the caller's
 * loop. cn_kinesis_put() copies a user record and returns at once; behind
 * it, per stream, a shard map from ListShards predicts each record's shard
 * (MD5 of the partition key, or the explicit hash key), records of one
 * shard are packed into KPL aggregates, aggregates are collected into
 * PutRecords requests (<= 500 entries, <= 5 MiB) sent when full or when
 * the oldest record has waited record_max_buffered_time_ms, several
 * requests in flight. Each entry's result is applied to every user record
 * inside it; retryable failures are put back through the pipeline after an
 * exponential backoff with jitter until record_ttl_ms.
 *
 * Exactly one outcome per accepted record. A put that returns 0 has
 * created a record that gets exactly one outcome: success (shard, sequence
 * number, sub-sequence number) or failure (a code and a message); a put
 * that returns an error created nothing. Outcomes are awaited through the
 * handle (cn_kinesis_outcome_wait) and/or delivered to config.on_outcome;
 * passing no handle is "fire and forget": the outcome is still counted.
 *
 * Delivery is at least once, like the KPL's: a request that timed out or
 * lost its connection may have been stored by Kinesis and is retried, so a
 * record may be stored twice while it gets one outcome (the last attempt's).
 *
 * Memory is bounded by max_outstanding_records (records put and still
 * without an outcome) times the record size: put parks when it is reached.
 *
 * Threads: a producer belongs to its loop's thread, like every coroutine
 * object; handles too. Outcomes are plain memory.
 */
struct cn_kinesis_producer;
struct cn_kinesis_outcome_handle;
struct cn_kinesis_metrics;

/* What happened to one user record. */
struct cn_kinesis_outcome {
    uint64_t id;        /* 1, 2, ...: the order in which the producer accepted the record */
    int code;           /* 0: stored; else why not (see cn_kinesis_put) */
    int attempts;       /* PutRecords requests that carried it */
    int64_t latency_ms; /* from put to this outcome, loop clock */
    /* success: */
    char shard_id[CN_KINESIS_SHARD_ID_MAX + 1];
    char sequence_number[CN_KINESIS_SEQ_MAX];
    uint64_t sub_sequence_number; /* index inside its KPL aggregate; 0 if not aggregated */
    bool aggregated;              /* sent inside an aggregate of 2 or more records */
    /* failure: */
    int last_error;          /* the last attempt's error (= code unless the TTL expired) */
    char error_type[96];     /* AWS error type of the last error, or "" */
    char error_message[256]; /* what went wrong, in words (truncated) */
};

/* Called once per record, with its outcome (borrowed for the call), on a
 * producer coroutine: it must not park (no blocking call; it may call
 * cn_kinesis_try_put). h is the record's handle, valid for the call (also
 * when put got no handle). */
typedef void (*cn_kinesis_outcome_fn)(void *arg, struct cn_kinesis_outcome_handle *h,
                                      const struct cn_kinesis_outcome *o);

enum cn_kinesis_toggle {
    CN_KINESIS_DEFAULT = 0, /* the documented default */
    CN_KINESIS_ON,
    CN_KINESIS_OFF,
};

/* Configuration; zero means the default, named after the KPL setting. */
struct cn_kinesis_producer_config {
    struct cn_kinesis_client_opts client; /* endpoint, region, credentials, TLS */
    size_t max_outstanding_records;       /* put parks beyond; 0 = 10,000 */
    int64_t record_max_buffered_time_ms;  /* RecordMaxBufferedTime; 0 = 100 */
    int64_t record_ttl_ms;                /* RecordTtl: life before failing; 0 = 30,000 */
    int64_t request_timeout_ms;           /* RequestTimeout, per PutRecords; 0 = 6,000 */
    enum cn_kinesis_toggle aggregation;   /* AggregationEnabled; default on */
    size_t aggregation_max_size;          /* AggregationMaxSize, bytes; 0 = 51,200 */
    size_t collection_max_count;          /* CollectionMaxCount, 1..500; 0 = 500 */
    size_t collection_max_size;           /* CollectionMaxSize, bytes; 0 = 5 MiB */
    size_t max_connections;               /* MaxConnections (requests in flight); 0 = 24 */
    int64_t min_backoff_ms;               /* first retry delay, doubling; 0 = 100 */
    int64_t max_backoff_ms;               /* retry delay cap; 0 = 5,000 */
    cn_kinesis_outcome_fn on_outcome;     /* may be NULL */
    void *on_outcome_arg;
    /* Memory: put also parks while the data and keys of outstanding
     * records exceed this many bytes; 0 = 64 MiB. */
    size_t max_outstanding_bytes;
    /* Per-shard limiter (token buckets of 1,000 records/s and 1 MiB/s,
     * one second deep, scaled by rate_limit_percent): a Kinesis record
     * leaves its shard's queue for the collection only when both buckets
     * hold enough, so the producer does not throttle itself on a real
     * stream. Default on; turn it off for emulators that never throttle. */
    enum cn_kinesis_toggle rate_limit;
    unsigned rate_limit_percent; /* RateLimit, 1..1000; 0 = 150 (as the KPL) */
    /* ListShards again every so often (besides wrong-shard signs), so
     * splits and merges are followed; 0 = 60,000 ms. */
    int64_t shard_map_refresh_ms;
    /* Also queue every outcome for cn_kinesis_producer_take_outcomes; the
     * record keeps its place under max_outstanding_records until taken. */
    bool collect_outcomes;
    /* Metrics sinks, run every metrics_interval_ms (0 = 10,000): a callback
     * with a snapshot, and/or one line on stderr. */
    int64_t metrics_interval_ms;
    void (*on_metrics)(void *arg, const struct cn_kinesis_metrics *m);
    void *on_metrics_arg;
    bool metrics_log;
};

/* Producer counters (user records unless said otherwise). */
struct cn_kinesis_producer_counters {
    uint64_t put;             /* accepted by cn_kinesis_put / try_put */
    uint64_t sent;            /* sent in a request, once per attempt */
    uint64_t succeeded;       /* outcome success */
    uint64_t failed;          /* outcome failure, expired and closed included */
    uint64_t retried;         /* put back into the pipeline after a retryable failure */
    uint64_t expired;         /* failed because record_ttl_ms passed */
    uint64_t requests;        /* PutRecords requests sent */
    uint64_t aggregates;      /* KPL aggregates built (2 or more user records each) */
    uint64_t shard_map_loads; /* ListShards rounds that built a map */
    uint64_t wrong_shard;     /* records that landed on a shard other than predicted */
    uint64_t outstanding;     /* put and without an outcome, now */
    uint64_t max_outstanding; /* the most outstanding ever */
    uint64_t throttled;       /* user records in entries answered ProvisionedThroughputExceeded */
    uint64_t bytes_sent;      /* Kinesis record bytes (data + key) sent, once per attempt */
    uint64_t limited;         /* Kinesis records that waited for the limiter */
};

/* Makes a producer: validates config (NULL: all defaults), makes its API
 * client (cn_kinesis_client_new: may read the AWS files) and starts its
 * coroutines on the calling coroutine's loop. Close it with
 * cn_kinesis_producer_close before the loop ends.
 * Errors: -EINVAL (collection_max_count over 500, collection_max_size over
 * 5 MiB, aggregation_max_size over 1 MiB, a negative time), the client's
 * errors, -ENOMEM, CN_ENOSTACK, CN_ENOTCORO. */
CN_EXTERN int cn_kinesis_producer_new(struct cn_kinesis_producer **out,
                                      const struct cn_kinesis_producer_config *config);

/* Accepts one user record for stream (copied: every argument is borrowed
 * for the call). explicit_hash_key (NUL-terminated decimal) may be NULL.
 * If out is not NULL it receives the record's handle, which must be
 * released once with cn_kinesis_outcome_release; NULL means fire and
 * forget. Parks only while max_outstanding_records are outstanding.
 * Outcome codes later: CN_EKINESIS_* of the service (not-found, access...),
 * -ETIMEDOUT when record_ttl_ms passed before a success (last_error says
 * why: throttling, a transport error...), CN_ECLOSED when the producer was
 * closed before the record could be sent, -ENOMEM.
 * Errors (no record made): CN_EKINESIS_STREAM_NAME,
 * CN_EKINESIS_PARTITION_KEY, CN_EKINESIS_RECORD_TOO_LARGE,
 * CN_EKINESIS_HASH_KEY, -EINVAL (NULL data with a length), CN_ECLOSED
 * (closing), -ETIMEDOUT (the deadline passed while parked), -ECANCELED,
 * -ENOMEM. */
CN_EXTERN int cn_kinesis_put(struct cn_kinesis_producer *p, const char *stream,
                             const char *partition_key, const void *data, size_t len,
                             const char *explicit_hash_key, struct cn_kinesis_outcome_handle **out,
                             int64_t deadline);

/* cn_kinesis_put that never parks: -EAGAIN when max_outstanding_records are
 * outstanding. Errors: as cn_kinesis_put, -EAGAIN instead of -ETIMEDOUT. */
CN_EXTERN int cn_kinesis_try_put(struct cn_kinesis_producer *p, const char *stream,
                                 const char *partition_key, const void *data, size_t len,
                                 const char *explicit_hash_key,
                                 struct cn_kinesis_outcome_handle **out);

/* Waits for the record's outcome and copies it into *out (may be NULL).
 * Works after the producer is closed (every record has its outcome then).
 * Errors: -ETIMEDOUT, -ECANCELED. */
CN_EXTERN int cn_kinesis_outcome_wait(struct cn_kinesis_outcome_handle *h,
                                      struct cn_kinesis_outcome *out, int64_t deadline);

/* True once the record has its outcome (cn_kinesis_outcome_wait will not park). */
CN_EXTERN bool cn_kinesis_outcome_ready(const struct cn_kinesis_outcome_handle *h);

/* Gives the handle back; the record lives on in the producer until its
 * outcome. Accepts NULL. */
CN_EXTERN void cn_kinesis_outcome_release(struct cn_kinesis_outcome_handle *h);

/* Sends everything buffered now and waits until every record put so far
 * (and any put meanwhile) has its outcome. Errors: -ETIMEDOUT, -ECANCELED. */
CN_EXTERN int cn_kinesis_producer_flush(struct cn_kinesis_producer *p, int64_t deadline);

/* Flushes until deadline, then stops: requests still in flight are
 * abandoned (their records may or may not be stored) and every record
 * without an outcome fails with CN_ECLOSED ("producer closed before ...").
 * So when it returns every record has had its outcome; handles stay valid
 * until released. Closes the client and frees p. No put may be parked or
 * made meanwhile. Accepts NULL. Returns 0 if everything got its outcome
 * before the deadline, else -ETIMEDOUT. */
CN_EXTERN int cn_kinesis_producer_close(struct cn_kinesis_producer *p, int64_t deadline);

/* A snapshot of the counters. */
CN_EXTERN void cn_kinesis_producer_counters(const struct cn_kinesis_producer *p,
                                            struct cn_kinesis_producer_counters *out);

/* With config.collect_outcomes: waits until at least one outcome is
 * queued, then moves up to max of them (in the order they happened) into
 * out and returns how many; their records leave max_outstanding_records
 * then. Returns 0 once the producer is closing and nothing is queued.
 * Errors: -EINVAL (collect_outcomes off, max 0), -ETIMEDOUT, -ECANCELED. */
CN_EXTERN ssize_t cn_kinesis_producer_take_outcomes(struct cn_kinesis_producer *p,
                                                    struct cn_kinesis_outcome *out, size_t max,
                                                    int64_t deadline);

/* ---- metrics ---------------------------------------------------------------------- */

/* Latency histogram: bucket i counts values <= cn_kinesis_histogram_bound_us(i)
 * (250 us doubling: 250 us .. ~1,049 s); the last bucket is +Inf. */
#define CN_KINESIS_HIST_BUCKETS 24
struct cn_kinesis_histogram {
    uint64_t count;
    uint64_t sum_us;
    uint64_t max_us;
    uint64_t bucket[CN_KINESIS_HIST_BUCKETS]; /* not cumulative */
};

/* The upper bound of bucket i in microseconds; UINT64_MAX for the last. */
CN_EXTERN uint64_t cn_kinesis_histogram_bound_us(int i);

/* Counts one value. */
CN_EXTERN void cn_kinesis_histogram_add(struct cn_kinesis_histogram *h, uint64_t us);

/* The q-quantile (0..1) estimated from the buckets (linear inside one),
 * capped at max_us; 0 when empty. */
CN_EXTERN uint64_t cn_kinesis_histogram_quantile_us(const struct cn_kinesis_histogram *h, double q);

/* One stream's or one shard's counters (user records unless said
 * otherwise). For a shard, put/retried/expired/outstanding stay 0: records
 * are counted against the shard they were predicted for when sent. */
struct cn_kinesis_stream_metrics {
    char stream[CN_KINESIS_STREAM_NAME_MAX + 1];
    struct cn_kinesis_producer_counters c;
    struct cn_kinesis_histogram put_to_outcome; /* user records, success or failure */
    struct cn_kinesis_histogram request_rtt;    /* PutRecords, send to answer */
};

struct cn_kinesis_shard_metrics {
    char stream[CN_KINESIS_STREAM_NAME_MAX + 1];
    char shard_id[CN_KINESIS_SHARD_ID_MAX + 1];
    bool open; /* in the current shard map */
    struct cn_kinesis_producer_counters c;
};

/* A snapshot of everything, from cn_kinesis_producer_metrics. */
struct cn_kinesis_metrics {
    int64_t at_ms;     /* loop clock when taken */
    int64_t uptime_ms; /* since the producer was made */
    struct cn_kinesis_producer_counters total;
    struct cn_kinesis_histogram put_to_outcome;
    struct cn_kinesis_histogram request_rtt;
    size_t nstreams;
    struct cn_kinesis_stream_metrics *streams;
    size_t nshards;
    struct cn_kinesis_shard_metrics *shards;
};

/* Takes a snapshot; free it with cn_kinesis_metrics_free. Errors: -ENOMEM. */
CN_EXTERN int cn_kinesis_producer_metrics(const struct cn_kinesis_producer *p,
                                          struct cn_kinesis_metrics **out);

/* Frees a snapshot; accepts NULL. */
CN_EXTERN void cn_kinesis_metrics_free(struct cn_kinesis_metrics *m);

/* The snapshot in the Prometheus text exposition format (version 0.0.4):
 * counters coronet_kinesis_*_total{stream=...[,shard=...]} and histograms
 * coronet_kinesis_put_to_outcome_seconds / _request_rtt_seconds per
 * stream. Writes at most cap bytes (NUL-terminated when cap > 0) and
 * returns the length the whole text needs, like snprintf. */
CN_EXTERN size_t cn_kinesis_metrics_prometheus(const struct cn_kinesis_metrics *m, char *buf,
                                               size_t cap);

/* One human line of totals (what config.metrics_log prints): records/s
 * since prev (NULL: since start), outstanding, succeeded, failed, retried,
 * throttled, p50/p99 put-to-outcome. Returns as snprintf. */
CN_EXTERN size_t cn_kinesis_metrics_log_line(const struct cn_kinesis_metrics *m,
                                             const struct cn_kinesis_metrics *prev, char *buf,
                                             size_t cap);

/* Serves GET /metrics (the Prometheus text of a fresh snapshot) on a
 * listener, one coroutine per connection, until the calling coroutine is
 * cancelled or the listener closed; returns then (0). Errors: as
 * cn_tcp_accept. */
CN_EXTERN int cn_kinesis_metrics_serve(struct cn_kinesis_producer *p, struct cn_tcp_listener *l);

/* ---- the synchronous face: for plain threaded programs ---------------------------- */

/*
 * A producer on a loop thread of its own, driven from any number of plain
 * threads. Put validates and copies the record into a bounded queue and
 * returns (one loop wakeup per batch, not per record: a bridge call per
 * record would cap it at the cost of a cross-thread round trip); the loop
 * drains the queue into the producer in order. Put blocks only when that
 * queue is full: it holds up to min(max_outstanding_records, 4,096)
 * records and max_outstanding_bytes bytes on top of the producer's own
 * bounds. Outcomes come as futures and/or config.on_outcome (called on the
 * loop thread: keep it short, it must not block; h is NULL there for a
 * record that failed before entering the producer, e.g. -ENOMEM). Flush,
 * counters and metrics go through the runtime bridge; counters and metrics
 * do not include records still queued. All functions are thread safe
 * except close, which must be called once, after every other call. Called
 * from a coroutine they return -EDEADLK (they would block its loop).
 */
struct cn_kinesis_sync;
struct cn_kinesis_future;

/* Starts the thread and the producer on it. Errors: as
 * cn_kinesis_producer_new, -EINVAL (config.collect_outcomes: nothing here
 * would take them), -EDEADLK, and thread creation errors. */
CN_EXTERN int cn_kinesis_sync_new(struct cn_kinesis_sync **out,
                                  const struct cn_kinesis_producer_config *config);

/* cn_kinesis_put from a thread: 0 means queued, and the record will get
 * exactly one outcome. timeout_ms bounds the backpressure wait (-1: none).
 * future may be NULL (fire and forget); else it must be released once with
 * cn_kinesis_future_release. Errors (no record made): the validation
 * errors of cn_kinesis_put, -ETIMEDOUT when timeout_ms passed, CN_ECLOSED,
 * -EINVAL (NULL arguments), -EDEADLK, -ENOMEM. */
CN_EXTERN int cn_kinesis_sync_put(struct cn_kinesis_sync *sp, const char *stream,
                                  const char *partition_key, const void *data, size_t len,
                                  const char *explicit_hash_key, struct cn_kinesis_future **future,
                                  int64_t timeout_ms);

/* Blocks until the record's outcome (timeout_ms -1: no limit) and copies
 * it into *out (may be NULL). Errors: -ETIMEDOUT. */
CN_EXTERN int cn_kinesis_future_wait(struct cn_kinesis_future *f, struct cn_kinesis_outcome *out,
                                     int64_t timeout_ms);

/* True once the outcome is there. */
CN_EXTERN bool cn_kinesis_future_ready(struct cn_kinesis_future *f);

/* Gives the future back; accepts NULL. */
CN_EXTERN void cn_kinesis_future_release(struct cn_kinesis_future *f);

/* cn_kinesis_producer_flush from a thread. Errors: -ETIMEDOUT, CN_ECLOSED. */
CN_EXTERN int cn_kinesis_sync_flush(struct cn_kinesis_sync *sp, int64_t timeout_ms);

/* Counters and metrics snapshots from a thread. */
CN_EXTERN void cn_kinesis_sync_counters(struct cn_kinesis_sync *sp,
                                        struct cn_kinesis_producer_counters *out);
CN_EXTERN int cn_kinesis_sync_metrics(struct cn_kinesis_sync *sp, struct cn_kinesis_metrics **out);

/* cn_kinesis_producer_close on the loop thread (every record gets its
 * outcome, futures stay valid until released), then joins the thread and
 * frees sp. Accepts NULL. Returns as cn_kinesis_producer_close. */
CN_EXTERN int cn_kinesis_sync_close(struct cn_kinesis_sync *sp, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* CORONET_KINESIS_H */
