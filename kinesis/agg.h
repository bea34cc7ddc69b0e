/* SPDX-License-Identifier: MIT */
/*
 * The KPL aggregated record codec (internal to kinesis/).
 *
 * Format (amazon-kinesis-producer aggregation-format.md): the 4-byte magic
 * F3 89 9A C2, a protobuf AggregatedRecord (kinesis/kpl.proto), then the
 * 16-byte MD5 of the protobuf bytes. Every KPL/KCL deaggregator reads it.
 *
 * The aggregator packs user records of one shard into one Kinesis record
 * and knows its exact encoded size before each add. The deaggregator
 * splits a Kinesis record back into user records, falling back to the
 * record itself exactly where the KCL does. Pure: no I/O, no coroutine.
 */
#ifndef CORONET_KINESIS_AGG_H
#define CORONET_KINESIS_AGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kinesis/hashkey.h"

#define CN__AGG_MAGIC_LEN 4
#define CN__AGG_DIGEST_LEN 16
/* Magic + MD5: the size of an aggregate with no record. */
#define CN__AGG_OVERHEAD (CN__AGG_MAGIC_LEN + CN__AGG_DIGEST_LEN)
/* The largest input the deaggregator accepts: 10 MiB, the largest record a
 * stream can be configured to take (PutRecordsRequestEntry.Data). */
#define CN__DEAGG_MAX_INPUT (10u * 1024 * 1024)

extern const uint8_t cn__agg_magic[CN__AGG_MAGIC_LEN];

/* ---- Aggregator ---------------------------------------------------------
 *
 * Keys and data are copied in: nothing the caller passes is kept. The
 * partition key table and the explicit hash key table hold each distinct
 * key once (a hash set; first use decides the index, as the KPL's KeySet
 * and aws-kinesis-agg do), so the bytes are the same as the KPL's for the
 * same records in the same order. Explicit hash keys are stored as given:
 * pass the canonical decimal (cn__hashkey_format of the parsed key), which
 * is what the KPL stores (UserRecord::explicit_hash_key()). */
struct cn__agg;

/* A new empty aggregator whose encoded size never exceeds max_size bytes
 * (magic and MD5 included; e.g. 1 MiB, the default Kinesis record limit,
 * minus the outer partition key's length). That is the bound on its memory,
 * plus the key hash sets. Errors: -EINVAL (max_size < CN__AGG_OVERHEAD or
 * > 4 GiB), -ENOMEM. */
int cn__agg_new(struct cn__agg **out, size_t max_size);

/* Frees agg; accepts NULL. */
void cn__agg_free(struct cn__agg *agg);

/* Empties agg for the next aggregate, keeping its memory. */
void cn__agg_reset(struct cn__agg *agg);

/* Number of user records added since the last reset. */
size_t cn__agg_count(const struct cn__agg *agg);

/* Exact encoded size now: CN__AGG_OVERHEAD + protobuf bytes. */
size_t cn__agg_size(const struct cn__agg *agg);

/* Exact encoded size agg would have after cn__agg_add() of this record
 * (ehk NULL: none). O(key length): one hash lookup per key, varint sizes
 * computed, nothing encoded. Saturates at SIZE_MAX. */
size_t cn__agg_size_if_added(const struct cn__agg *agg, const char *pk, size_t pk_len,
                             const char *ehk, size_t ehk_len, size_t data_len);

/* Appends a user record (ehk NULL: none). On any error agg is unchanged.
 * Returns the new exact size (what cn__agg_size() now returns).
 * Errors: -EINVAL (empty partition key, or ehk given but empty),
 * -EMSGSIZE (the aggregate would exceed max_size: encode it, reset, add
 * again), -ENOMEM. */
ssize_t cn__agg_add(struct cn__agg *agg, const char *pk, size_t pk_len, const char *ehk,
                    size_t ehk_len, const void *data, size_t data_len);

/* Writes the aggregate (magic, AggregatedRecord, MD5) to out. The protobuf
 * bytes are those protobuf_c_message_pack() produces for the same message
 * (fields in number order; tested). Returns the length, cn__agg_size().
 * Errors: -EINVAL (no record: the KCL would not read 20 bytes as an
 * aggregate), -ENOBUFS (cap < cn__agg_size()). */
ssize_t cn__agg_encode(const struct cn__agg *agg, void *out, size_t cap);

/* The outer Kinesis record's keys, chosen as the KPL chooses them
 * (aws/kinesis/core/kinesis_record.cc, KinesisRecord::partition_key() and
 * explicit_hash_key()):
 *   - partition key: the lone record's own when count is 1, else "a" (all
 *     user records carry their own keys inside, so a 1-byte key saves room);
 *   - explicit hash key: always set, the first user record's hash key in
 *     decimal (its explicit hash key if it had one, else MD5 of its
 *     partition key), so the aggregate lands on that record's shard; the
 *     caller aggregates only records predicted for one shard.
 * With one record the KPL sends that record's data as is, not aggregated
 * (KinesisRecord::serialize()); the caller does the same when count is 1.
 * Views stay valid until the next add or reset.
 * Errors: -EINVAL (empty aggregate, or the first explicit hash key does not
 * parse, see cn__hashkey_parse). */
struct cn__agg_keys {
    const char *pk;
    size_t pk_len;
    char ehk[CN__HASHKEY_DEC_MAX]; /* NUL-terminated decimal */
    size_t ehk_len;
};
int cn__agg_keys(const struct cn__agg *agg, struct cn__agg_keys *out);

/* ---- Deaggregator -------------------------------------------------------
 *
 * The KCL's rules (amazon-kinesis-client AggregatorUtil.deaggregate()):
 *   - not an aggregate, so the record itself comes out as the one user
 *     record: shorter than 21 bytes, wrong magic, wrong MD5, or protobuf
 *     that does not parse (including a missing required field);
 *   - an aggregate: its records come out in order, sub_seq 0, 1, ...; a
 *     record whose key index is outside its table ends the iteration with
 *     -EBADMSG after the records before it, which stand (the KCL logs the
 *     exception and keeps them);
 *   - with a hash key range (the shard being read), an aggregate holding a
 *     record whose effective hash key (explicit, else MD5 of the partition
 *     key) lies outside it yields no record at all; an explicit hash key
 *     that is not a number ends the iteration with -EBADMSG as above.
 * Differences, on malformed input only: the KCL casts an index to a Java
 * int, so index 2^32 reads entry 0; here any index >= the table size is
 * -EBADMSG. Keys are raw bytes (the KCL decodes UTF-8 with replacement).
 * With a range, explicit hash keys are read as Java's BigInteger reads
 * them, but only ASCII digits count as digits. */
struct cn__user_record {
    const uint8_t *pk;
    size_t pk_len;
    const uint8_t *ehk; /* NULL: none */
    size_t ehk_len;
    const uint8_t *data;
    size_t data_len;
    uint64_t sub_seq; /* index inside the aggregate; 0 for a plain record */
};

struct cn__deagg {
    /* private */
    struct cn__user_record outer;
    void *msg;    /* Cn__Kpl__AggregatedRecord *, in the arena */
    void *arena;  /* chunks of the unpack allocator */
    size_t next;  /* next record to yield */
    size_t limit; /* records to yield */
    int end_rc;   /* returned once limit is reached: 0 or -EBADMSG */
    bool aggregated;
};

/* Opens the Kinesis record rec (its data, partition key, explicit hash
 * key; all borrowed until cn__deagg_close()) for iteration. range, if not
 * NULL, is the shard's [starting, ending] hash keys. Always pair with
 * cn__deagg_close(), even on error.
 * Returns 1 (an aggregate), 0 (a plain record: one user record, rec).
 * Errors: -EMSGSIZE (rec->data_len > CN__DEAGG_MAX_INPUT: larger than any
 * Kinesis record, so not one to unpack), -ENOMEM; after either,
 * cn__deagg_next() still yields rec itself, for a caller that wants it. */
int cn__deagg_open(struct cn__deagg *d, const struct cn__user_record *rec,
                   const struct cn__hashkey range[2]);

/* The next user record into *out; views into rec or into d, valid until
 * cn__deagg_close(). Returns 1 (a record), 0 (no more), -EBADMSG (a bad
 * index or explicit hash key, see above; no more records after it). */
int cn__deagg_next(struct cn__deagg *d, struct cn__user_record *out);

/* Frees what open allocated. Safe after a failed open and twice. */
void cn__deagg_close(struct cn__deagg *d);

#endif /* CORONET_KINESIS_AGG_H */
