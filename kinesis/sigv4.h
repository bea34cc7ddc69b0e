/* SPDX-License-Identifier: MIT */
/*
 * AWS Signature Version 4 (internal to the kinesis layer).
 *
 * Pure: no I/O, no clock, no allocation after the first call on a thread.
 * The caller passes the request as it will go on the wire (method, path as
 * sent on the request line, query parameters, headers including Host, body)
 * and the signing time; the signer returns the header values to add:
 * Authorization, X-Amz-Date, X-Amz-Security-Token (session credentials) and,
 * on request, X-Amz-Content-Sha256.
 *
 * Rules applied follow the AWS SigV4 "create a signed request" tasks, and
 * where the documentation is loose, botocore's signer, which the tests use
 * as the oracle (tests/kinesis/sigv4_oracle.py):
 *   - the path is normalised (dot segments and empty segments removed) and
 *     URI-encoded once more (non-S3 services encode the path twice);
 *   - query keys and values are given raw, encoded here and sorted by
 *     encoded key, then encoded value;
 *   - header names are lowercased; values trimmed with inner runs of
 *     whitespace collapsed to one space; repeated names are joined with ','
 *     in the order given; hop-by-hop headers that proxies rewrite
 *     (Connection, Expect, Keep-Alive, Proxy-*, TE, Trailer,
 *     Transfer-Encoding, Upgrade, User-Agent, X-Amzn-Trace-Id) are never
 *     signed; Authorization and X-Amz-Date given by the caller are ignored.
 */
#ifndef CORONET_KINESIS_SIGV4_H
#define CORONET_KINESIS_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "coronet/runtime.h"
#include "creds.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bounds: more headers or query parameters than this is -E2BIG. */
#define CN__SIGV4_MAX_HEADERS 32
#define CN__SIGV4_MAX_PARAMS 64
/* Bounds on the path: segments and bytes (-E2BIG beyond). */
#define CN__SIGV4_MAX_SEGMENTS 64
/* Size of cn__sigv4_out.authorization; a longer value is -ENOBUFS. */
#define CN__SIGV4_AUTH_MAX 1024

struct cn__sigv4_header {
    const char *name; /* any case; no whitespace or controls */
    size_t name_len;
    const char *value; /* no CR, LF or NUL */
    size_t value_len;
};

struct cn__sigv4_param {
    const char *key; /* raw bytes, encoded by the signer */
    size_t key_len;
    const char *value;
    size_t value_len;
};

struct cn__sigv4_request {
    const char *method; /* "POST"; uppercased when signed */
    const char *path;   /* as on the request line, without the query; NULL or "" is "/" */
    const struct cn__sigv4_param *params;
    size_t nparams;
    const struct cn__sigv4_header *headers; /* must include Host */
    size_t nheaders;
    const void *body;
    size_t body_len;
    const char *payload_hash; /* hex SHA-256 of body, computed by the caller, or NULL */
    bool sign_content_sha256; /* also sign and return X-Amz-Content-Sha256 */
};

struct cn__sigv4_out {
    char authorization[CN__SIGV4_AUTH_MAX]; /* value of the Authorization header */
    char amz_date[17];                      /* X-Amz-Date: "20150830T123600Z" */
    char content_sha256[65];                /* hex SHA-256 of the payload, always set */
    const char *security_token; /* X-Amz-Security-Token value (borrowed from creds), or NULL */
};

/*
 * Signs req with creds for region and service at time `now` (UTC seconds)
 * and fills *out. The caller adds the headers X-Amz-Date: out->amz_date,
 * Authorization: out->authorization, X-Amz-Security-Token when
 * out->security_token is not NULL, and X-Amz-Content-Sha256 when it asked
 * for it, to the request it sends: these are signed, the others given in req
 * are exactly what must be sent.
 *
 * The signing key (four HMACs) is cached per thread for the last few
 * (date, region, service, secret) tuples, so a steady stream of requests
 * derives it once a day; the cache holds a copy of the secret until
 * cn__sigv4_cache_clear(). Not thread-safe across threads sharing `out`; safe
 * to call from any thread otherwise.
 *
 * Errors: -EINVAL (NULL or empty required field, a header name or value with
 * forbidden bytes, a region or service with '/', a time out of range, a bad
 * payload_hash), -E2BIG (too many headers, parameters or path segments),
 * -ENOBUFS (the Authorization value would not fit), -ENOMEM or CN_ETLS (OpenSSL
 * failed to set up its digest).
 */
int cn__sigv4_sign(const struct cn__sigv4_request *req, const struct cn_aws_creds *creds,
                   const char *region, const char *service, time_t now, struct cn__sigv4_out *out);

/*
 * Writes the canonical request (SigV4 task 1) that cn__sigv4_sign() hashes
 * into buf (NUL-terminated) and returns its length; for tests and debug
 * logs. creds only decides whether the session token header is included.
 * Errors: as cn__sigv4_sign(), and -ENOBUFS when it does not fit in cap.
 */
ssize_t cn__sigv4_canonical_request(const struct cn__sigv4_request *req,
                                    const struct cn_aws_creds *creds, time_t now, char *buf,
                                    size_t cap);

/* Forgets (and wipes) this thread's cached signing keys. */
void cn__sigv4_cache_clear(void);

#ifdef __cplusplus
}
#endif

#endif /* CORONET_KINESIS_SIGV4_H */
