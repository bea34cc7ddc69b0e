/* SPDX-License-Identifier: MIT */
/*
 * Kinesis hash keys and the shard map (internal to kinesis/).
 *
 * A hash key is an unsigned 128-bit integer: MD5(partition key) read as a
 * big-endian number, or the record's explicit hash key, a decimal string. A
 * shard owns the closed range [starting, ending] of hash keys; the open
 * shards of a stream tile 0 .. 2^128-1 (Kinesis developer guide, "Shards";
 * ListShards HashKeyRange). Everything here is pure: no I/O, no coroutine.
 */
#ifndef CORONET_KINESIS_HASHKEY_H
#define CORONET_KINESIS_HASHKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest decimal hash key, "340282366920938463463374607431768211455"
 * (2^128-1, 39 digits), plus its NUL. */
#define CN__HASHKEY_DEC_MAX 40

struct cn__hashkey {
    uint64_t hi; /* bits 127..64 */
    uint64_t lo; /* bits 63..0 */
};

/* The hash key Kinesis derives from a partition key: MD5 of its bytes as a
 * big-endian 128-bit integer. Never fails (OpenSSL's MD5 is always there;
 * an unusable OpenSSL aborts). */
void cn__hashkey_from_pk(struct cn__hashkey *out, const void *pk, size_t len);

/* Parses an explicit hash key exactly as the Kinesis API accepts it: the
 * pattern `0|([1-9]\d{0,38})` (PutRecordsRequestEntry.ExplicitHashKey) and a
 * value at most 2^128-1. So no sign, no space, no leading zero, not empty.
 * Returns 0, or -EINVAL and leaves *out untouched. */
int cn__hashkey_parse(struct cn__hashkey *out, const char *s, size_t len);

/* Writes k in decimal, canonical (no leading zero), NUL-terminated, into
 * buf. Returns the number of digits (1..39). */
size_t cn__hashkey_format(const struct cn__hashkey *k, char buf[CN__HASHKEY_DEC_MAX]);

/* <0, 0, >0 as a is below, equal to, above b. */
int cn__hashkey_cmp(const struct cn__hashkey *a, const struct cn__hashkey *b);

/* One shard as ListShards describes it. Strings are borrowed for the call. */
struct cn__shard_desc {
    const char *id;       /* ShardId */
    const char *starting; /* HashKeyRange.StartingHashKey, decimal */
    const char *ending;   /* HashKeyRange.EndingHashKey, decimal */
    bool closed;          /* SequenceNumberRange.EndingSequenceNumber present */
};

struct cn__shardmap;

/* Builds the map of the open shards among shards[0..n) (closed ones, e.g.
 * parents after a split or merge, are skipped). The open ranges must tile
 * 0 .. 2^128-1 exactly; ListShards taken during a reshard may not, and then
 * the caller lists again. Copies the shard ids.
 * Errors: -EINVAL (a hash key that does not parse, starting > ending, an
 * empty shard id), -EAGAIN (the open ranges leave a gap, overlap, or there
 * are none: list again), -ENOMEM. */
int cn__shardmap_new(struct cn__shardmap **out, const struct cn__shard_desc *shards, size_t n);

void cn__shardmap_free(struct cn__shardmap *m);

/* Number of open shards, ordered by starting hash key. */
size_t cn__shardmap_count(const struct cn__shardmap *m);

/* The index (0 .. count-1) of the shard owning k; O(log n). */
size_t cn__shardmap_find(const struct cn__shardmap *m, const struct cn__hashkey *k);

/* Shard i's id (owned by the map) and range. */
const char *cn__shardmap_id(const struct cn__shardmap *m, size_t i);
void cn__shardmap_range(const struct cn__shardmap *m, size_t i, struct cn__hashkey *starting,
                        struct cn__hashkey *ending);

#endif /* CORONET_KINESIS_HASHKEY_H */
