/* SPDX-License-Identifier: MIT */
/*
 * Reading a stream back for producer tests (header-only): every shard the
 * stream still has (closed parents of a split included) from TRIM_HORIZON
 * to its end, each Kinesis record deaggregated (a plain record is one user
 * record), and each user record handed to a visitor with the shard and
 * sequence number it was found at:
 *
 *     size_t users = cn_readback(kc, "s", visit, arg, cn_now() + 60000);
 *
 * The visitor decides what a record must be (tests/kinesis/producer.c
 * checks each exactly once in its predicted shard; producer_faults.c
 * allows duplicates where delivery is at least once). Assertions abort on
 * any API or deaggregation error. Call from a coroutine.
 */
#ifndef CORONET_TESTS_KINESIS_READBACK_H
#define CORONET_TESTS_KINESIS_READBACK_H

#include "test.h"

#include "kinesis/agg.h"

/* Called once per user record found: shard and seq are the Kinesis
 * record's (NUL-terminated, valid for the call), u its user record (for a
 * plain record: its own key and data, sub_seq 0). */
typedef void (*cn_readback_fn)(void *arg, const char *shard, const char *seq,
                               const struct cn__user_record *u, bool aggregated);

#define CN_READBACK_MAX_ROUNDS 10000 /* GetRecords calls per shard */

/* Visits every user record of one Kinesis record; returns how many. */
static inline size_t cn_readback_record(const char *shard, const struct cn_kinesis_record *kr,
                                        cn_readback_fn fn, void *arg)
{
    struct cn__user_record in = {.pk = (const uint8_t *)kr->partition_key,
                                 .pk_len = kr->partition_key_len,
                                 .data = kr->data,
                                 .data_len = kr->data_len};
    struct cn__deagg d;
    struct cn__user_record u;
    size_t n = 0;
    int kind = cn__deagg_open(&d, &in, NULL);
    CN_ASSERT_GE(kind, 0);
    while (cn__deagg_next(&d, &u) == 1) {
        fn(arg, shard, kr->sequence_number, &u, kind == 1);
        n++;
    }
    cn__deagg_close(&d);
    return n;
}

/* Reads one shard to its end (closed) or to the present (open). */
static inline size_t cn_readback_shard(struct cn_kinesis_client *kc, const char *stream,
                                       const char *shard, cn_readback_fn fn, void *arg,
                                       int64_t deadline)
{
    struct cn_kinesis_error err;
    char it[CN_KINESIS_ITERATOR_MAX];
    size_t users = 0;
    CN_ASSERT_EQ(cn_kinesis_get_shard_iterator(kc, stream, shard, NULL, it, &err, deadline), 0);
    for (int rounds = 0;; rounds++) {
        CN_ASSERT_LT(rounds, CN_READBACK_MAX_ROUNDS);
        struct cn_kinesis_records *rs;
        int rc = cn_kinesis_get_records(kc, it, CN_KINESIS_GET_RECORDS_MAX, &rs, &err, deadline);
        if (rc != 0) {
            fprintf(stderr, "GetRecords %s: %s %s\n", shard, err.type, err.message);
        }
        CN_ASSERT_EQ(rc, 0);
        for (size_t k = 0; k < rs->count; k++) {
            users += cn_readback_record(shard, &rs->records[k], fn, arg);
        }
        bool done = !rs->next_iterator || (rs->count == 0 && rs->millis_behind_latest <= 0);
        if (!done) {
            snprintf(it, sizeof it, "%s", rs->next_iterator);
        }
        cn_kinesis_records_free(rs);
        if (done) {
            return users;
        }
    }
}

/* Reads every shard of the stream; returns the user records visited. */
static inline size_t cn_readback(struct cn_kinesis_client *kc, const char *stream,
                                 cn_readback_fn fn, void *arg, int64_t deadline)
{
    struct cn_kinesis_shard_list *l;
    struct cn_kinesis_error err;
    size_t users = 0;
    CN_ASSERT_EQ(cn_kinesis_list_shards(kc, stream, CN_KINESIS_SHARDS_ALL, &l, &err, deadline), 0);
    for (size_t s = 0; s < l->count; s++) {
        users += cn_readback_shard(kc, stream, l->shards[s].id, fn, arg, deadline);
    }
    cn_kinesis_shard_list_free(l);
    return users;
}

#endif /* CORONET_TESTS_KINESIS_READBACK_H */
