/* SPDX-License-Identifier: MIT */
/*
 * Helpers the Kinesis producer tests share (header-only, static inline):
 * client options for an emulator or a test endpoint, and a stream made and
 * waited ACTIVE. Include after test.h.
 */
#ifndef CORONET_TESTS_KINESIS_KINESIS_TEST_H
#define CORONET_TESTS_KINESIS_KINESIS_TEST_H

#include <stdio.h>

#include "coronet/kinesis.h"

/* Options for url with dummy credentials (the emulators accept any);
 * max_conns 0 is the client's default. */
static inline struct cn_kinesis_client_opts cn_kt_client_opts(const char *url, size_t max_conns)
{
    struct cn_kinesis_client_opts o = {.endpoint_url = url,
                                       .region = "us-east-1",
                                       .access_key_id = "AKIDEXAMPLE",
                                       .secret_access_key = "secret",
                                       .max_conns = max_conns};
    return o;
}

/* CreateStream, then waits until it is ACTIVE; asserts both. */
static inline void cn_kt_create_active(struct cn_kinesis_client *kc, const char *stream, int shards,
                                       int64_t deadline)
{
    struct cn_kinesis_error err;
    int rc = cn_kinesis_create_stream(kc, stream, shards, &err, deadline);
    if (rc < 0) {
        fprintf(stderr, "CreateStream: %s %s\n", err.type, err.message);
    }
    CN_ASSERT_EQ(rc, 0);
    CN_ASSERT_EQ(cn_kinesis_wait_active(kc, stream, NULL, &err, deadline), 0);
}

#endif /* CORONET_TESTS_KINESIS_KINESIS_TEST_H */
