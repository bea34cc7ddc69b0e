/* SPDX-License-Identifier: MIT */
/*
 * The Kinesis JSON API client: one coroutine call per operation.
 *
 * Owns the exchange: it validates a call's arguments (kinesis/json.c),
 * builds the JSON body (by hand for PutRecord(s), with cJSON for the small
 * control-plane bodies), signs it (SigV4 with the Host header exactly as the
 * HTTP client will send it), posts it on the pooled HTTP client and hands a
 * 2xx body to the operation's parser or an error body to the error mapper.
 *
 * Invariants: nothing is sent that failed validation; every failure fills
 * the caller's struct cn_kinesis_error; a response is always freed before
 * the call returns, so the connection goes back to the pool. Retries are not
 * done here (the producer's retrier owns them), except the HTTP client's one
 * transparent retry on a pooled connection found closed before any response
 * byte, allowed for POST too (retry_unsafe): there the server did not read
 * the request, and Kinesis delivery is at-least-once anyway.
 */
#include <errno.h>
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "coronet/http.h"
#include "coronet/kinesis.h"
#include "kinesis/api_internal.h"
#include "kinesis/creds.h"
#include "kinesis/hashkey.h"
#include "kinesis/sigv4.h"

#define API_VERSION "Kinesis_20131202"
#define DEFAULT_MAX_RESPONSE (32u * 1024 * 1024)
#define MAX_LIST_PAGES 10000 /* a server handing out tokens forever is broken */

struct cn_kinesis_client {
    struct cn_http_client *http;
    struct cn_aws_creds *creds;
    char region[CN_AWS_REGION_MAX];
    char url[CN_AWS_URL_MAX];
    char path[CN_AWS_URL_MAX];
    char host[CN_AWS_HOST_MAX + 16]; /* the Host header the HTTP client sends */
};

/* Parses a 2xx body into out. */
typedef int (*parse_fn)(const char *body, size_t len, void *out, struct cn_kinesis_error *err);

/* ---- the client ------------------------------------------------------------------------ */

/* The Host value as net/http_client.c writes it (RFC 9112 §3.2): what is
 * signed must be what is sent. */
static int host_of(const char *url, char *buf, size_t size)
{
    struct cn_http_url u;
    int rc = cn_http_url_parse(url, &u);
    if (rc < 0) {
        return CN_EAWS_ENDPOINT;
    }
    bool v6 = strchr(u.host, ':') != NULL;
    int n = snprintf(buf, size, v6 ? "[%s]" : "%s", u.host);
    if (u.port != (u.tls ? 443 : 80)) {
        n += snprintf(buf + n, size - (size_t)n, ":%d", u.port);
    }
    return (size_t)n < size ? 0 : CN_EAWS_ENDPOINT;
}

static int client_http(struct cn_kinesis_client *kc, const struct cn_kinesis_client_opts *o)
{
    struct cn_http_client_opts ho = {0};
    if (o) {
        ho.max_conns_per_host = o->max_conns;
        ho.idle_timeout_ms = o->idle_timeout_ms;
        ho.tls = o->tls;
        ho.limits.max_body_bytes = o->max_response_bytes;
    }
    if (ho.limits.max_body_bytes == 0) {
        ho.limits.max_body_bytes = DEFAULT_MAX_RESPONSE;
    }
    return cn_http_client_new(&kc->http, &ho);
}

int cn_kinesis_client_new(struct cn_kinesis_client **out, const struct cn_kinesis_client_opts *opts)
{
    struct cn_aws_config_opts co = {.service = "kinesis"};
    if (opts) {
        co.endpoint_url = opts->endpoint_url;
        co.region = opts->region;
        co.profile = opts->profile;
        co.access_key_id = opts->access_key_id;
        co.secret_access_key = opts->secret_access_key;
        co.session_token = opts->session_token;
    }
    struct cn_kinesis_client *kc = calloc(1, sizeof *kc);
    if (!kc) {
        return -ENOMEM;
    }
    struct cn_aws_config cfg;
    int rc = cn_aws_config_load(&cfg, &co);
    if (rc == 0) {
        snprintf(kc->region, sizeof kc->region, "%s", cfg.region);
        snprintf(kc->url, sizeof kc->url, "%s", cfg.endpoint.url);
        snprintf(kc->path, sizeof kc->path, "%s", cfg.endpoint.path);
        kc->creds = cfg.creds;
        cfg.creds = NULL; /* taken */
        rc = host_of(kc->url, kc->host, sizeof kc->host);
    }
    cn_aws_config_clear(&cfg);
    if (rc == 0) {
        rc = client_http(kc, opts);
    }
    if (rc < 0) {
        cn_kinesis_client_close(kc);
        return rc;
    }
    *out = kc;
    return 0;
}

void cn_kinesis_client_close(struct cn_kinesis_client *kc)
{
    if (!kc) {
        return;
    }
    cn_http_client_close(kc->http);
    cn_aws_creds_free(kc->creds);
    free(kc);
}

const char *cn_kinesis_client_endpoint(const struct cn_kinesis_client *kc)
{
    return kc->url;
}

const char *cn_kinesis_client_region(const struct cn_kinesis_client *kc)
{
    return kc->region;
}

/* ---- one exchange ---------------------------------------------------------------------- */

static int call_ok(struct cn_kinesis_error *err)
{
    if (err) {
        memset(err, 0, sizeof *err);
    }
    return 0;
}

static int reject(struct cn_kinesis_error *err, int rc, const char *what)
{
    cn__kinesis_error_set(err, rc, 0, NULL, 0, what, strlen(what));
    return rc;
}

static void sig_header(struct cn__sigv4_header *h, const char *name, const char *value)
{
    h->name = name;
    h->name_len = strlen(name);
    h->value = value;
    h->value_len = strlen(value);
}

/* Signs and sends; *resp is the answer. */
static int send_signed(struct cn_kinesis_client *kc, const char *target, const char *body,
                       size_t len, struct cn_http_response **resp, int64_t deadline)
{
    struct cn__sigv4_header sh[3];
    sig_header(&sh[0], "Host", kc->host);
    sig_header(&sh[1], "Content-Type", CN__KINESIS_CTYPE);
    sig_header(&sh[2], "X-Amz-Target", target);
    struct cn__sigv4_request sr = {.method = "POST",
                                   .path = kc->path,
                                   .headers = sh,
                                   .nheaders = 3,
                                   .body = body,
                                   .body_len = len};
    struct cn__sigv4_out so;
    int rc = cn__sigv4_sign(&sr, kc->creds, kc->region, "kinesis", time(NULL), &so);
    if (rc < 0) {
        return rc;
    }
    struct cn_http_header h[5] = {
        cn_http_header_str("Content-Type", CN__KINESIS_CTYPE),
        cn_http_header_str("X-Amz-Target", target),
        cn_http_header_str("X-Amz-Date", so.amz_date),
        cn_http_header_str("Authorization", so.authorization),
    };
    size_t nh = 4;
    if (so.security_token) {
        h[nh++] = cn_http_header_str("X-Amz-Security-Token", so.security_token);
    }
    struct cn_http_client_request req = {.method = "POST",
                                         .url = kc->url,
                                         .headers = h,
                                         .nheaders = nh,
                                         .body = body,
                                         .body_len = len,
                                         .retry_unsafe = true};
    return cn_http_client_request(kc->http, &req, resp, deadline);
}

/* The answer to a sent request: parsed into out (2xx) or mapped (else). */
static int answer(struct cn_http_response *resp, const char *op, parse_fn parse, void *out,
                  struct cn_kinesis_error *err)
{
    size_t clen = 0, elen = 0;
    const char *ctype = cn_http_header_find(resp->headers, resp->nheaders, "Content-Type", &clen);
    if (resp->status < 200 || resp->status > 299) {
        const char *et =
            cn_http_header_find(resp->headers, resp->nheaders, "x-amzn-ErrorType", &elen);
        return cn__kinesis_error_response(resp->status, ctype, clen, et, elen, resp->body,
                                          resp->body_len, err);
    }
    if (!parse && resp->body_len == 0) {
        return 0; /* CreateStream and friends answer with an empty body */
    }
    if (!cn__kinesis_json_ctype(ctype, clen)) {
        char what[160];
        snprintf(what, sizeof what, "%s answered %d with Content-Type %.*s", op, resp->status,
                 ctype ? (int)(clen > 64 ? 64 : clen) : 6, ctype ? ctype : "(none)");
        cn__kinesis_error_set(err, CN_EKINESIS_CONTENT_TYPE, resp->status, NULL, 0, what,
                              strlen(what));
        return CN_EKINESIS_CONTENT_TYPE;
    }
    int rc = parse ? parse(resp->body, resp->body_len, out, err) : 0;
    if (rc < 0 && err) {
        err->http_status = resp->status;
    }
    return rc;
}

/* One operation: POST body, parse the answer into out (parse may be NULL
 * for operations whose answer carries nothing). */
static int call(struct cn_kinesis_client *kc, const char *op, const char *body, size_t len,
                parse_fn parse, void *out, struct cn_kinesis_error *err, int64_t deadline)
{
    char target[64];
    snprintf(target, sizeof target, API_VERSION ".%s", op);
    struct cn_http_response *resp = NULL;
    int rc = send_signed(kc, target, body, len, &resp, deadline);
    if (rc < 0) {
        char what[160];
        snprintf(what, sizeof what, "%s: %s", op, cn_strerror(rc));
        return reject(err, rc, what);
    }
    rc = answer(resp, op, parse, out, err);
    cn_http_response_free(resp);
    return rc < 0 ? rc : call_ok(err);
}

/* ---- control-plane request bodies ---------------------------------------------------- */

/* {"name":"value",...} from NULL-ended name, value pairs; NULL if out of memory. */
static cJSON *req_strs(const char *name, ...)
{
    cJSON *o = cJSON_CreateObject();
    va_list ap;
    va_start(ap, name);
    for (; o && name; name = va_arg(ap, const char *)) {
        if (!cJSON_AddStringToObject(o, name, va_arg(ap, const char *))) {
            cJSON_Delete(o);
            o = NULL;
        }
    }
    va_end(ap);
    return o;
}

/* o with a number member added (o consumed; NULL stays NULL, or on ENOMEM). */
static cJSON *req_num(cJSON *o, const char *name, double v)
{
    if (o && !cJSON_AddNumberToObject(o, name, v)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* o with an object member added (both consumed, as req_num). */
static cJSON *req_obj(cJSON *o, const char *name, cJSON *v)
{
    if (o && v && cJSON_AddItemToObject(o, name, v)) {
        return o;
    }
    cJSON_Delete(o);
    cJSON_Delete(v);
    return NULL;
}

/* call() with a cJSON request object (consumed; NULL: out of memory). The
 * printed body must be UTF-8 (cJSON copies bytes >= 0x80 unchecked). */
static int call_json(struct cn_kinesis_client *kc, const char *op, cJSON *req, parse_fn parse,
                     void *out, struct cn_kinesis_error *err, int64_t deadline)
{
    char *body = req ? cJSON_PrintUnformatted(req) : NULL;
    cJSON_Delete(req);
    if (!body) {
        return reject(err, -ENOMEM, "out of memory");
    }
    size_t len = strlen(body);
    int rc = cn__kinesis_utf8_ok(body, len)
                 ? call(kc, op, body, len, parse, out, err, deadline)
                 : reject(err, -EINVAL, "request arguments are not valid UTF-8 text");
    cJSON_free(body);
    return rc;
}

static int check_stream(const char *stream, struct cn_kinesis_error *err)
{
    int rc = cn__kinesis_check_stream(stream);
    return rc < 0 ? reject(err, rc, "stream name is not [a-zA-Z0-9_.-]{1,128}") : 0;
}

static int check_shard(const char *id, struct cn_kinesis_error *err)
{
    int rc = cn__kinesis_check_shard_id(id);
    return rc < 0 ? reject(err, rc, "shard id is not [a-zA-Z0-9_.-]{1,128}") : 0;
}

/* A sequence number argument: pattern 0|([1-9]\d{0,128}). */
static bool seq_ok(const char *s)
{
    size_t n = s ? strspn(s, "0123456789") : 0;
    return n > 0 && n < CN_KINESIS_SEQ_MAX && s[n] == '\0' && (s[0] != '0' || n == 1);
}

/* ---- stream control ------------------------------------------------------------------- */

int cn_kinesis_create_stream(struct cn_kinesis_client *kc, const char *stream, int shard_count,
                             struct cn_kinesis_error *err, int64_t deadline)
{
    int rc = check_stream(stream, err);
    if (rc < 0) {
        return rc;
    }
    if (shard_count < 1 || shard_count > 100000) {
        return reject(err, -EINVAL, "shard count is not 1..100000");
    }
    cJSON *req = req_num(req_strs("StreamName", stream, NULL), "ShardCount", shard_count);
    return call_json(kc, "CreateStream", req, NULL, NULL, err, deadline);
}

int cn_kinesis_delete_stream(struct cn_kinesis_client *kc, const char *stream, bool force,
                             struct cn_kinesis_error *err, int64_t deadline)
{
    int rc = check_stream(stream, err);
    if (rc < 0) {
        return rc;
    }
    cJSON *req = req_strs("StreamName", stream, NULL);
    if (req && force && !cJSON_AddTrueToObject(req, "EnforceConsumerDeletion")) {
        cJSON_Delete(req);
        req = NULL;
    }
    return call_json(kc, "DeleteStream", req, NULL, NULL, err, deadline);
}

static int parse_summary(const char *body, size_t len, void *out, struct cn_kinesis_error *err)
{
    return cn__kinesis_parse_summary(body, len, out, err);
}

int cn_kinesis_describe_stream_summary(struct cn_kinesis_client *kc, const char *stream,
                                       struct cn_kinesis_stream_summary *out,
                                       struct cn_kinesis_error *err, int64_t deadline)
{
    int rc = check_stream(stream, err);
    if (rc < 0) {
        return rc;
    }
    if (!out) {
        return reject(err, -EINVAL, "no summary to fill");
    }
    cJSON *req = req_strs("StreamName", stream, NULL);
    return call_json(kc, "DescribeStreamSummary", req, parse_summary, out, err, deadline);
}

int cn_kinesis_wait_active(struct cn_kinesis_client *kc, const char *stream,
                           struct cn_kinesis_stream_summary *out, struct cn_kinesis_error *err,
                           int64_t deadline)
{
    struct cn_kinesis_stream_summary s;
    struct cn_kinesis_error e;
    int64_t delay = 20;
    for (;;) {
        int rc = cn_kinesis_describe_stream_summary(kc, stream, &s, &e, deadline);
        if (rc == 0 && out) {
            *out = s;
        }
        if (rc == 0 && s.status == CN_KINESIS_STATUS_ACTIVE) {
            return call_ok(err);
        }
        bool again = rc == 0 || rc == CN_EKINESIS_NOT_FOUND || cn_kinesis_retryable(rc);
        if (!again || rc == -ECANCELED) {
            if (err) {
                *err = e;
            }
            return rc;
        }
        if (deadline >= 0 && cn_now() + delay >= deadline) {
            if (err) {
                *err = e;
            }
            return rc < 0 ? reject(err, -ETIMEDOUT, e.message)
                          : reject(err, -ETIMEDOUT, "the stream did not become ACTIVE in time");
        }
        if (cn_sleep(delay) < 0) {
            return reject(err, -ECANCELED, "cancelled while waiting for the stream");
        }
        delay = delay * 2 > 1000 ? 1000 : delay * 2;
    }
}

/* ---- ListShards ------------------------------------------------------------------------ */

struct page {
    enum cn_kinesis_shard_filter filter;
    struct cn_kinesis_shard_list *list;
    char *token; /* NextToken of the page, malloc'ed */
};

static int parse_page(const char *body, size_t len, void *out, struct cn_kinesis_error *err)
{
    struct page *p = out;
    return cn__kinesis_parse_shards(body, len, p->filter, p->list, &p->token, err);
}

void cn_kinesis_shard_list_free(struct cn_kinesis_shard_list *l)
{
    if (l) {
        free(l->shards);
        free(l);
    }
}

int cn_kinesis_list_shards(struct cn_kinesis_client *kc, const char *stream,
                           enum cn_kinesis_shard_filter filter, struct cn_kinesis_shard_list **out,
                           struct cn_kinesis_error *err, int64_t deadline)
{
    int rc = check_stream(stream, err);
    if (rc < 0) {
        return rc;
    }
    struct page p = {.filter = filter, .list = calloc(1, sizeof *p.list)};
    if (!p.list) {
        return reject(err, -ENOMEM, "out of memory");
    }
    /* The first page names the stream; later ones only carry NextToken:
     * AWS rejects StreamName together with NextToken. */
    cJSON *req = req_strs("StreamName", stream, NULL);
    if (filter == CN_KINESIS_SHARDS_OPEN) {
        req = req_obj(req, "ShardFilter", req_strs("Type", "AT_LATEST", NULL));
    }
    for (int pages = 0;; pages++) {
        char *token = p.token;
        p.token = NULL;
        rc = call_json(kc, "ListShards", req, parse_page, &p, err, deadline);
        free(token);
        if (rc < 0 || !p.token) {
            break;
        }
        if (pages >= MAX_LIST_PAGES) {
            rc = reject(err, CN_EKINESIS_BAD_RESPONSE, "ListShards: NextToken never ends");
            break;
        }
        req = req_strs("NextToken", p.token, NULL);
    }
    free(p.token);
    if (rc < 0) {
        cn_kinesis_shard_list_free(p.list);
        return rc == -E2BIG ? reject(err, rc, "ListShards: too many shards") : rc;
    }
    *out = p.list;
    return 0;
}

/* ---- PutRecord, PutRecords ------------------------------------------------------------ */

static const char *entry_error(int rc)
{
    switch (rc) {
    case CN_EKINESIS_PARTITION_KEY:
        return "partition key is not 1..256 Unicode characters of UTF-8";
    case CN_EKINESIS_HASH_KEY:
        return "explicit hash key is not a decimal 0..2^128-1";
    case CN_EKINESIS_RECORD_TOO_LARGE:
        return "record data and partition key exceed 1 MiB";
    case CN_EKINESIS_TOO_MANY_RECORDS:
        return "PutRecords takes 1..500 entries";
    case CN_EKINESIS_REQUEST_TOO_LARGE:
        return "PutRecords data and partition keys exceed 5 MiB";
    default:
        return "invalid entry";
    }
}

static int parse_one(const char *body, size_t len, void *out, struct cn_kinesis_error *err)
{
    return cn__kinesis_parse_put_record(body, len, out, err);
}

int cn_kinesis_put_record(struct cn_kinesis_client *kc, const char *stream,
                          const struct cn_kinesis_entry *entry, const char *seq_for_ordering,
                          struct cn_kinesis_put_result *out, struct cn_kinesis_error *err,
                          int64_t deadline)
{
    int rc = check_stream(stream, err);
    if (rc < 0) {
        return rc;
    }
    rc = cn__kinesis_check_entry(entry);
    if (rc < 0) {
        return reject(err, rc, entry_error(rc));
    }
    if (!out || (seq_for_ordering && !seq_ok(seq_for_ordering))) {
        return reject(err, -EINVAL, "no result to fill, or a bad SequenceNumberForOrdering");
    }
    char *body;
    size_t len;
    if (cn__kinesis_body_put_record(stream, entry, seq_for_ordering, &body, &len) < 0) {
        return reject(err, -ENOMEM, "out of memory");
    }
    rc = call(kc, "PutRecord", body, len, parse_one, out, err, deadline);
    free(body);
    return rc;
}

struct batch {
    size_t n;
    struct cn_kinesis_put_records_result **out;
};

static int parse_batch(const char *body, size_t len, void *out, struct cn_kinesis_error *err)
{
    struct batch *b = out;
    return cn__kinesis_parse_put_records(body, len, b->n, b->out, err);
}

int cn_kinesis_put_records(struct cn_kinesis_client *kc, const char *stream,
                           const struct cn_kinesis_entry *entries, size_t n,
                           struct cn_kinesis_put_records_result **out, struct cn_kinesis_error *err,
                           int64_t deadline)
{
    int rc = check_stream(stream, err);
    if (rc < 0) {
        return rc;
    }
    size_t bad;
    rc = cn__kinesis_check_entries(entries, n, &bad);
    if (rc < 0) {
        char what[200];
        if (bad < n) {
            snprintf(what, sizeof what, "entry %zu: %s", bad, entry_error(rc));
        } else {
            snprintf(what, sizeof what, "%s", entry_error(rc));
        }
        return reject(err, rc, what);
    }
    if (!out) {
        return reject(err, -EINVAL, "no result pointer");
    }
    char *body;
    size_t len;
    if (cn__kinesis_body_put_records(stream, entries, n, &body, &len) < 0) {
        return reject(err, -ENOMEM, "out of memory");
    }
    struct batch b = {.n = n, .out = out};
    rc = call(kc, "PutRecords", body, len, parse_batch, &b, err, deadline);
    free(body);
    return rc;
}

/* ---- reading ----------------------------------------------------------------------------- */

static int parse_it(const char *body, size_t len, void *out, struct cn_kinesis_error *err)
{
    return cn__kinesis_parse_iterator(body, len, out, err);
}

static cJSON *iterator_request(const char *stream, const char *shard_id,
                               const struct cn_kinesis_iterator_opts *o)
{
    static const char *const types[] = {"TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER",
                                        "AFTER_SEQUENCE_NUMBER", "AT_TIMESTAMP"};
    cJSON *req = req_strs("StreamName", stream, "ShardId", shard_id, "ShardIteratorType",
                          types[o->type], NULL);
    if (req &&
        (o->type == CN_KINESIS_AT_SEQUENCE_NUMBER || o->type == CN_KINESIS_AFTER_SEQUENCE_NUMBER) &&
        !cJSON_AddStringToObject(req, "StartingSequenceNumber", o->sequence_number)) {
        cJSON_Delete(req);
        return NULL;
    }
    return o->type == CN_KINESIS_AT_TIMESTAMP ? req_num(req, "Timestamp", o->timestamp) : req;
}

int cn_kinesis_get_shard_iterator(struct cn_kinesis_client *kc, const char *stream,
                                  const char *shard_id, const struct cn_kinesis_iterator_opts *opts,
                                  char iterator[CN_KINESIS_ITERATOR_MAX],
                                  struct cn_kinesis_error *err, int64_t deadline)
{
    static const struct cn_kinesis_iterator_opts trim = {.type = CN_KINESIS_TRIM_HORIZON};
    const struct cn_kinesis_iterator_opts *o = opts ? opts : &trim;
    int rc = check_stream(stream, err);
    rc = rc < 0 ? rc : check_shard(shard_id, err);
    if (rc < 0) {
        return rc;
    }
    bool by_seq =
        o->type == CN_KINESIS_AT_SEQUENCE_NUMBER || o->type == CN_KINESIS_AFTER_SEQUENCE_NUMBER;
    if (!iterator || (unsigned)o->type > CN_KINESIS_AT_TIMESTAMP ||
        (by_seq && !seq_ok(o->sequence_number)) ||
        (o->type == CN_KINESIS_AT_TIMESTAMP && !(o->timestamp >= 0 && o->timestamp <= DBL_MAX))) {
        return reject(err, -EINVAL, "bad iterator type, sequence number or timestamp");
    }
    return call_json(kc, "GetShardIterator", iterator_request(stream, shard_id, o), parse_it,
                     iterator, err, deadline);
}

static int parse_recs(const char *body, size_t len, void *out, struct cn_kinesis_error *err)
{
    return cn__kinesis_parse_records(body, len, out, err);
}

int cn_kinesis_get_records(struct cn_kinesis_client *kc, const char *iterator, int limit,
                           struct cn_kinesis_records **out, struct cn_kinesis_error *err,
                           int64_t deadline)
{
    if (!out || !iterator || !iterator[0] || strlen(iterator) >= CN_KINESIS_ITERATOR_MAX ||
        limit < 0 || limit > CN_KINESIS_GET_RECORDS_MAX) {
        return reject(err, -EINVAL, "bad shard iterator or limit");
    }
    *out = NULL;
    cJSON *req = req_strs("ShardIterator", iterator, NULL);
    req = limit > 0 ? req_num(req, "Limit", limit) : req;
    return call_json(kc, "GetRecords", req, parse_recs, out, err, deadline);
}

/* ---- resharding ---------------------------------------------------------------------- */

int cn_kinesis_split_shard(struct cn_kinesis_client *kc, const char *stream, const char *shard_id,
                           const char *new_starting_hash_key, struct cn_kinesis_error *err,
                           int64_t deadline)
{
    int rc = check_stream(stream, err);
    rc = rc < 0 ? rc : check_shard(shard_id, err);
    if (rc < 0) {
        return rc;
    }
    struct cn__hashkey k;
    if (!new_starting_hash_key ||
        cn__hashkey_parse(&k, new_starting_hash_key, strlen(new_starting_hash_key)) < 0) {
        return reject(err, CN_EKINESIS_HASH_KEY, "new starting hash key is not 0..2^128-1");
    }
    cJSON *req = req_strs("StreamName", stream, "ShardToSplit", shard_id, "NewStartingHashKey",
                          new_starting_hash_key, NULL);
    return call_json(kc, "SplitShard", req, NULL, NULL, err, deadline);
}

int cn_kinesis_merge_shards(struct cn_kinesis_client *kc, const char *stream, const char *shard_id,
                            const char *adjacent_shard_id, struct cn_kinesis_error *err,
                            int64_t deadline)
{
    int rc = check_stream(stream, err);
    rc = rc < 0 ? rc : check_shard(shard_id, err);
    rc = rc < 0 ? rc : check_shard(adjacent_shard_id, err);
    if (rc < 0) {
        return rc;
    }
    cJSON *req = req_strs("StreamName", stream, "ShardToMerge", shard_id, "AdjacentShardToMerge",
                          adjacent_shard_id, NULL);
    return call_json(kc, "MergeShards", req, NULL, NULL, err, deadline);
}

int cn_kinesis_update_shard_count(struct cn_kinesis_client *kc, const char *stream, int target,
                                  struct cn_kinesis_error *err, int64_t deadline)
{
    int rc = check_stream(stream, err);
    if (rc < 0) {
        return rc;
    }
    if (target < 1 || target > 100000) {
        return reject(err, -EINVAL, "target shard count is not 1..100000");
    }
    cJSON *req = req_num(req_strs("StreamName", stream, "ScalingType", "UNIFORM_SCALING", NULL),
                         "TargetShardCount", target);
    return call_json(kc, "UpdateShardCount", req, NULL, NULL, err, deadline);
}
