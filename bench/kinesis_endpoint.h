/* SPDX-License-Identifier: MIT */
/*
 * A minimal, fast Kinesis endpoint for bench-kinesis's producer ceiling:
 * coronet's HTTP/1.1 server on a thread (and loop) of its own, so the
 * producer under test keeps its thread and the endpoint's CPU can be told
 * apart (kinesis_endpoint_cpu_seconds).
 *
 * It speaks just enough of the Kinesis JSON API for a producer:
 *   ListShards             nshards open shards tiling 0 .. 2^128-1 evenly;
 *   DescribeStreamSummary  ACTIVE with nshards shards;
 *   PutRecords             every entry succeeds, on the shard its explicit
 *                          hash key (else MD5 of its partition key) falls
 *                          in, with increasing per-shard sequence numbers.
 * Anything else is answered 400 UnknownOperationException. Signatures are
 * not checked and nothing is stored: a PutRecords body is only scanned for
 * its entries' keys.
 */
#ifndef CORONET_BENCH_KINESIS_ENDPOINT_H
#define CORONET_BENCH_KINESIS_ENDPOINT_H

#include <stdint.h>

struct kinesis_endpoint;

struct kinesis_endpoint_stats {
    uint64_t requests;    /* every request answered */
    uint64_t put_records; /* PutRecords requests */
    uint64_t entries;     /* PutRecords entries acknowledged */
};

/* Starts the endpoint thread, listening on 127.0.0.1 on a free port, with
 * nshards (1..1000) shards. Call from a plain thread, not a coroutine (it
 * waits for the thread to be listening). Errors: -EINVAL, -ENOMEM, and the
 * listener's or pthread's errors. */
int kinesis_endpoint_start(struct kinesis_endpoint **out, int nshards);

/* "http://127.0.0.1:PORT" (owned by ep). */
const char *kinesis_endpoint_url(const struct kinesis_endpoint *ep);

/* CPU time the endpoint thread has used so far, in seconds; callable from
 * any thread while it runs. */
double kinesis_endpoint_cpu_seconds(const struct kinesis_endpoint *ep);

/* The counters so far (relaxed atomic reads; any thread). */
void kinesis_endpoint_stats(const struct kinesis_endpoint *ep, struct kinesis_endpoint_stats *out);

/* Stops serving (open connections are closed), joins the thread and frees
 * ep. Call from a plain thread, not from a coroutine of a loop whose
 * clients still talk to it. Accepts NULL. Returns the server's result (0). */
int kinesis_endpoint_stop(struct kinesis_endpoint *ep);

#endif /* CORONET_BENCH_KINESIS_ENDPOINT_H */
