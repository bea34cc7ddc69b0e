/* SPDX-License-Identifier: MIT */
/*
 * The Kinesis JSON codec behind the API client (internal to kinesis/).
 *
 * kinesis/json.c is pure: it validates requests the way AWS would, writes
 * the PutRecord(s) bodies by hand (their shape is fixed and the data is
 * base64), maps error responses to CN_EKINESIS_* codes and parses the
 * response bodies with cJSON. No I/O, no coroutine: the tests feed it
 * canned bodies and fuzz/kinesis_json.c feeds it anything.
 * kinesis/api.c does the signing and the HTTP exchange.
 *
 * Every parser takes the whole body (pointer, length; no NUL needed) and an
 * optional error struct that gets a description of what was wrong, returns
 * 0 or CN_EKINESIS_BAD_RESPONSE (or -ENOMEM), and leaves no allocation
 * behind on failure.
 */
#ifndef CORONET_KINESIS_API_INTERNAL_H
#define CORONET_KINESIS_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "coronet/kinesis.h"

/* The media type of every Kinesis JSON request and response. */
#define CN__KINESIS_CTYPE "application/x-amz-json-1.1"

/* ---- validation (what AWS rejects; checked before sending) ---------------------- */

/* Errors: CN_EKINESIS_STREAM_NAME (NULL too). */
int cn__kinesis_check_stream(const char *name);

/* Errors: CN_EKINESIS_SHARD_ID (NULL too). */
int cn__kinesis_check_shard_id(const char *id);

/* A partition key: valid UTF-8 of 1..256 code points.
 * Errors: CN_EKINESIS_PARTITION_KEY. */
int cn__kinesis_check_partition_key(const char *pk, size_t len);

/* One entry: its key, its explicit hash key, data + key <= 1 MiB.
 * Errors: CN_EKINESIS_PARTITION_KEY, CN_EKINESIS_HASH_KEY,
 * CN_EKINESIS_RECORD_TOO_LARGE, -EINVAL (NULL data with a length). */
int cn__kinesis_check_entry(const struct cn_kinesis_entry *e);

/* A PutRecords batch: 1..500 entries, each valid, together <= 5 MiB. On an
 * entry error *bad is its index (else n). Errors: as check_entry,
 * CN_EKINESIS_TOO_MANY_RECORDS, CN_EKINESIS_REQUEST_TOO_LARGE. */
int cn__kinesis_check_entries(const struct cn_kinesis_entry *e, size_t n, size_t *bad);

/* True if s[0..len) is strict UTF-8 (RFC 3629). */
bool cn__kinesis_utf8_ok(const char *s, size_t len);

/* ---- request bodies --------------------------------------------------------------- */

/* The PutRecords body {"StreamName":..,"Records":[{"Data":..,"PartitionKey":..
 * [,"ExplicitHashKey":..]},...]} in a malloc'ed buffer (*body, *len; caller
 * frees). Entries must have passed cn__kinesis_check_entries. Errors: -ENOMEM. */
int cn__kinesis_body_put_records(const char *stream, const struct cn_kinesis_entry *e, size_t n,
                                 char **body, size_t *len);

/* The PutRecord body; seq_for_ordering may be NULL. Errors: -ENOMEM. */
int cn__kinesis_body_put_record(const char *stream, const struct cn_kinesis_entry *e,
                                const char *seq_for_ordering, char **body, size_t *len);

/* ---- responses -------------------------------------------------------------------- */

/* Fills err (if not NULL): code, status, retryable, type and message
 * (copied, truncated, control characters replaced). type/msg may be NULL. */
void cn__kinesis_error_set(struct cn_kinesis_error *err, int code, int status, const char *type,
                           size_t type_len, const char *msg, size_t msg_len);

/* The CN_EKINESIS_* code of an AWS error type ("namespace#" prefix and a
 * ":..." suffix allowed), or CN_EKINESIS if unknown. */
int cn__kinesis_error_code(const char *type, size_t len);

/* True if the Content-Type value is application/x-amz-json-1.1 or
 * application/json (parameters allowed, case-insensitive). */
bool cn__kinesis_json_ctype(const char *ctype, size_t len);

/* Maps a non-2xx response: __type from the JSON body (or the
 * x-amzn-ErrorType header value, may be NULL), the message from "message"
 * or "Message", else the HTTP status decides (429 throttling, 503
 * unavailable, other 5xx internal, 403 access denied, else CN_EKINESIS).
 * Fills err and returns the code. */
int cn__kinesis_error_response(int status, const char *ctype, size_t ctype_len, const char *errtype,
                               size_t errtype_len, const char *body, size_t len,
                               struct cn_kinesis_error *err);

/* DescribeStreamSummary. */
int cn__kinesis_parse_summary(const char *body, size_t len, struct cn_kinesis_stream_summary *out,
                              struct cn_kinesis_error *err);

/* One ListShards page: appends its shards (only open ones with
 * CN_KINESIS_SHARDS_OPEN) to *list (grown with realloc; count bounded by
 * CN_KINESIS_LIST_SHARDS_MAX, -E2BIG beyond), and sets *next_token to a
 * malloc'ed NextToken or NULL. On failure *list keeps the earlier pages. */
int cn__kinesis_parse_shards(const char *body, size_t len, enum cn_kinesis_shard_filter filter,
                             struct cn_kinesis_shard_list *list, char **next_token,
                             struct cn_kinesis_error *err);

/* PutRecord: ShardId and SequenceNumber into *out. */
int cn__kinesis_parse_put_record(const char *body, size_t len, struct cn_kinesis_put_result *out,
                                 struct cn_kinesis_error *err);

/* PutRecords answering n entries: exactly n results, FailedRecordCount
 * consistent with them. */
int cn__kinesis_parse_put_records(const char *body, size_t len, size_t n,
                                  struct cn_kinesis_put_records_result **out,
                                  struct cn_kinesis_error *err);

/* GetShardIterator. */
int cn__kinesis_parse_iterator(const char *body, size_t len, char it[CN_KINESIS_ITERATOR_MAX],
                               struct cn_kinesis_error *err);

/* GetRecords: records with Data decoded, in one allocation. */
int cn__kinesis_parse_records(const char *body, size_t len, struct cn_kinesis_records **out,
                              struct cn_kinesis_error *err);

#endif /* CORONET_KINESIS_API_INTERNAL_H */
