/* SPDX-License-Identifier: MIT */
/*
 * The fast fake Kinesis endpoint of bench-kinesis (see kinesis_endpoint.h).
 *
 * One thread runs cn_run(): a listener on 127.0.0.1, cn_http_serve with one
 * coroutine per connection, and the thread's main coroutine parked on an
 * event until kinesis_endpoint_stop sets it through a bridge call. The
 * shard table and the canned ListShards / DescribeStreamSummary answers
 * are built once at start; after that the thread owns everything except
 * the atomic counters, which other threads may read.
 *
 * PutRecords is scanned, not parsed: entries are found by their
 * "PartitionKey":" member (a JSON string cannot hold an unescaped quote,
 * so that byte sequence occurs only as a member name), the key is
 * unescaped, and an ExplicitHashKey member right after it (the order
 * coronet writes them in) overrides MD5 of the key. That is all a
 * producer's outcome depends on: one result per entry, on the right shard.
 */
#define _GNU_SOURCE
#include "kinesis_endpoint.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coronet/coronet.h"
#include "kinesis/hashkey.h"

#define MAX_SHARDS 1000
#define MAX_BODY (16u << 20) /* a full PutRecords (5 MiB of data) base64'd, with room */
#define IO_MS 30000          /* bound on reading one request or writing its answer */
#define KEY_MAX 1024         /* 256 code points of UTF-8 */

__extension__ typedef unsigned __int128 u128;

struct kinesis_endpoint {
    pthread_t thread;
    int nshards;
    u128 step; /* each shard's share of the hash key space */
    uint64_t seq[MAX_SHARDS];
    char *list_shards; /* canned answers */
    char *summary;
    char url[64];
    /* start-up hand-shake with the starting thread */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started;
    int start_rc;
    /* owned by the endpoint thread's loop */
    struct cn_tcp_listener *l;
    struct cn_bridge *bridge;
    struct cn_event stop;
    int result;
    _Atomic uint64_t requests, put_records, entries;
};

/* ---- a growable output buffer ------------------------------------------------------ */

struct buf {
    char *p;
    size_t len, cap;
};

static bool reserve(struct buf *b, size_t more)
{
    if (b->len + more <= b->cap) {
        return true;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) {
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static bool append(struct buf *b, const char *s, size_t n)
{
    if (!reserve(b, n)) {
        return false;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return true;
}

/* ---- shards ------------------------------------------------------------------------- */

static struct cn__hashkey to_hashkey(u128 v)
{
    return (struct cn__hashkey){.hi = (uint64_t)(v >> 64), .lo = (uint64_t)v};
}

static u128 from_hashkey(const struct cn__hashkey *k)
{
    return (u128)k->hi << 64 | k->lo;
}

/* Shard i owns [i * step, (i + 1) * step - 1]; the last one runs to 2^128-1. */
static size_t shard_of(const struct kinesis_endpoint *ep, const struct cn__hashkey *k)
{
    u128 i = from_hashkey(k) / ep->step;
    return i >= (u128)ep->nshards ? (size_t)ep->nshards - 1 : (size_t)i;
}

static char *build_list_shards(const struct kinesis_endpoint *ep)
{
    struct buf b = {0};
    bool ok = append(&b, "{\"Shards\":[", 11);
    for (int i = 0; ok && i < ep->nshards; i++) {
        char lo[CN__HASHKEY_DEC_MAX], hi[CN__HASHKEY_DEC_MAX], entry[320];
        struct cn__hashkey start = to_hashkey((u128)i * ep->step);
        struct cn__hashkey end =
            to_hashkey(i == ep->nshards - 1 ? ~(u128)0 : (u128)(i + 1) * ep->step - 1);
        cn__hashkey_format(&start, lo);
        cn__hashkey_format(&end, hi);
        int n = snprintf(entry, sizeof entry,
                         "%s{\"ShardId\":\"shardId-%012d\",\"HashKeyRange\":{\"StartingHashKey\":"
                         "\"%s\",\"EndingHashKey\":\"%s\"},\"SequenceNumberRange\":"
                         "{\"StartingSequenceNumber\":\"49%03d%051d\"}}",
                         i ? "," : "", i, lo, hi, i, 0);
        ok = append(&b, entry, (size_t)n);
    }
    ok = ok && append(&b, "]}", 3); /* with the NUL */
    if (!ok) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

static char *build_summary(const struct kinesis_endpoint *ep)
{
    char *s = NULL;
    if (asprintf(&s,
                 "{\"StreamDescriptionSummary\":{\"StreamName\":\"bench\",\"StreamARN\":"
                 "\"arn:aws:kinesis:us-east-1:000000000000:stream/bench\",\"StreamStatus\":"
                 "\"ACTIVE\",\"StreamModeDetails\":{\"StreamMode\":\"PROVISIONED\"},"
                 "\"RetentionPeriodHours\":24,\"StreamCreationTimestamp\":1700000000,"
                 "\"EnhancedMonitoring\":[],\"EncryptionType\":\"NONE\",\"OpenShardCount\":%d,"
                 "\"ConsumerCount\":0}}",
                 ep->nshards) < 0) {
        return NULL;
    }
    return s;
}

/* ---- PutRecords ----------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int hex4(const char *p, const char *end)
{
    if (end - p < 4) {
        return -1;
    }
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) {
            return -1;
        }
        v = v << 4 | h;
    }
    return v;
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One \-escape at *pp (just past the backslash) into out; false if bad. */
static bool unescape(const char **pp, const char *end, char *out, size_t *n)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *p = *pp;
    const char *hit = p < end && *p ? strchr(from, *p) : NULL;
    if (hit) {
        out[0] = to[hit - from];
        *n = 1;
        *pp = p + 1;
        return true;
    }
    int cp = p < end && *p == 'u' ? hex4(p + 1, end) : -1;
    if (cp < 0) {
        return false;
    }
    p += 5;
    if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
        int lo = hex4(p + 2, end);
        if (lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
    }
    *n = put_utf8(out, (unsigned)cp);
    *pp = p;
    return true;
}

/* The JSON string starting at *pp (just past its opening quote) into
 * key[KEY_MAX]; moves *pp past the closing quote. Returns the length, or
 * -1 if it is malformed or too long. */
static ssize_t read_key(const char **pp, const char *end, char *key)
{
    const char *p = *pp;
    size_t len = 0;
    while (p < end && *p != '"') {
        if (len + 4 > KEY_MAX) {
            return -1;
        }
        if (*p != '\\') {
            key[len++] = *p++;
            continue;
        }
        size_t n;
        p++;
        if (!unescape(&p, end, key + len, &n)) {
            return -1;
        }
        len += n;
    }
    if (p == end) {
        return -1;
    }
    *pp = p + 1;
    return (ssize_t)len;
}

/* The hash key of the entry whose partition key was just read: an
 * ExplicitHashKey member that follows it, else MD5 of the key. */
static bool entry_hashkey(const char **pp, const char *end, const char *key, size_t klen,
                          struct cn__hashkey *k)
{
    static const char ehk[] = ",\"ExplicitHashKey\":\"";
    const char *p = *pp;
    if ((size_t)(end - p) < sizeof ehk - 1 || memcmp(p, ehk, sizeof ehk - 1) != 0) {
        cn__hashkey_from_pk(k, key, klen);
        return true;
    }
    p += sizeof ehk - 1;
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (!q || cn__hashkey_parse(k, p, (size_t)(q - p)) != 0) {
        return false;
    }
    *pp = q + 1;
    return true;
}

static bool put_result(struct kinesis_endpoint *ep, struct buf *out, size_t shard, bool first)
{
    char entry[160];
    int n = snprintf(entry, sizeof entry,
                     "%s{\"SequenceNumber\":\"49%03zu%051llu\",\"ShardId\":\"shardId-%012zu\"}",
                     first ? "" : ",", shard, (unsigned long long)++ep->seq[shard], shard);
    return append(out, entry, (size_t)n);
}

/* The answer to a PutRecords body: one success per entry. Returns the
 * entry count, -EBADMSG for a body it cannot read, -ENOMEM. */
static ssize_t answer_put_records(struct kinesis_endpoint *ep, const char *body, size_t len,
                                  struct buf *out)
{
    static const char pk_member[] = "\"PartitionKey\":\"";
    static const char head[] = "{\"FailedRecordCount\":0,\"Records\":[";
    const char *p = body, *end = body + len;
    size_t count = 0;
    char key[KEY_MAX];
    if (!append(out, head, sizeof head - 1)) {
        return -ENOMEM;
    }
    while ((p = memmem(p, (size_t)(end - p), pk_member, sizeof pk_member - 1))) {
        p += sizeof pk_member - 1;
        ssize_t klen = read_key(&p, end, key);
        struct cn__hashkey k;
        if (klen <= 0 || !entry_hashkey(&p, end, key, (size_t)klen, &k)) {
            return -EBADMSG;
        }
        if (!put_result(ep, out, shard_of(ep, &k), count == 0)) {
            return -ENOMEM;
        }
        count++;
    }
    if (count == 0 || count > CN_KINESIS_PUT_RECORDS_MAX) {
        return -EBADMSG;
    }
    return append(out, "]}", 2) ? (ssize_t)count : -ENOMEM;
}

/* ---- the server ----------------------------------------------------------------------- */

static int respond_json(struct cn_http_server_conn *c, int status, const char *body, size_t len)
{
    struct cn_http_header h = cn_http_header_str("Content-Type", "application/x-amz-json-1.1");
    return cn_http_server_respond(c, status, &h, 1, body, len, cn_now() + IO_MS);
}

static int respond_error(struct cn_http_server_conn *c, const char *type, const char *msg)
{
    char body[256];
    int n = snprintf(body, sizeof body, "{\"__type\":\"%s\",\"message\":\"%s\"}", type, msg);
    return respond_json(c, 400, body, (size_t)n);
}

static int put_records(struct kinesis_endpoint *ep, struct cn_http_server_conn *c, const char *body,
                       size_t len)
{
    struct buf out = {0};
    ssize_t n = answer_put_records(ep, body, len, &out);
    int rc;
    if (n == -EBADMSG) {
        rc = respond_error(c, "SerializationException", "unreadable PutRecords body");
    } else if (n < 0) {
        rc = respond_error(c, "InternalFailure", "out of memory");
    } else {
        atomic_fetch_add_explicit(&ep->put_records, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&ep->entries, (uint64_t)n, memory_order_relaxed);
        rc = respond_json(c, 200, out.p, out.len);
    }
    free(out.p);
    return rc;
}

/* The operation named by "X-Amz-Target: Kinesis_20131202.<Operation>". */
static bool is_op(const char *target, size_t n, const char *op)
{
    size_t k = strlen(op);
    return target && n > k && target[n - k - 1] == '.' && memcmp(target + n - k, op, k) == 0;
}

static int handle(struct cn_http_server_conn *c, const struct cn_http_request *r, void *arg)
{
    struct kinesis_endpoint *ep = arg;
    size_t n = 0;
    const char *target = cn_http_header_find(r->headers, r->nheaders, "X-Amz-Target", &n);
    const char *body;
    size_t len;
    int rc = cn_http_server_read_body_all(c, &body, &len, cn_now() + IO_MS);
    if (rc < 0) {
        return rc;
    }
    atomic_fetch_add_explicit(&ep->requests, 1, memory_order_relaxed);
    if (is_op(target, n, "PutRecords")) {
        return put_records(ep, c, body, len);
    }
    if (is_op(target, n, "ListShards")) {
        return respond_json(c, 200, ep->list_shards, strlen(ep->list_shards));
    }
    if (is_op(target, n, "DescribeStreamSummary")) {
        return respond_json(c, 200, ep->summary, strlen(ep->summary));
    }
    return respond_error(c, "UnknownOperationException", "not served by the bench endpoint");
}

static int serve(void *arg)
{
    struct kinesis_endpoint *ep = arg;
    struct cn_http_serve_opts o = {.limits = {.max_body_bytes = MAX_BODY}};
    return cn_http_serve(ep->l, handle, ep, &o);
}

static void announce(struct kinesis_endpoint *ep, int rc)
{
    pthread_mutex_lock(&ep->mu);
    ep->start_rc = rc;
    ep->started = true;
    pthread_cond_signal(&ep->cv);
    pthread_mutex_unlock(&ep->mu);
}

static int endpoint_main(void *arg)
{
    struct kinesis_endpoint *ep = arg;
    struct cn_co *server = NULL;
    int rc = cn_tcp_listen(&ep->l, "127.0.0.1", 0, NULL);
    if (rc == 0) {
        snprintf(ep->url, sizeof ep->url, "http://127.0.0.1:%d", cn_tcp_listener_port(ep->l));
        rc = cn_bridge_open(&ep->bridge);
    }
    if (rc == 0) {
        rc = cn_spawn(&server, serve, ep, NULL);
    }
    announce(ep, rc);
    if (rc == 0) {
        cn_event_wait(&ep->stop, -1);
        cn_cancel(server);
        cn_join(server, NULL, -1);
    }
    cn_bridge_close(ep->bridge);
    cn_tcp_listener_close(ep->l);
    return rc;
}

static void *endpoint_thread(void *arg)
{
    struct kinesis_endpoint *ep = arg;
    pthread_setname_np(pthread_self(), "bench-endpoint"); /* for top and perf */
    ep->result = cn_run(endpoint_main, ep);
    if (!ep->started) {
        announce(ep, ep->result < 0 ? ep->result : -EINVAL);
    }
    return NULL;
}

static void endpoint_free(struct kinesis_endpoint *ep)
{
    free(ep->list_shards);
    free(ep->summary);
    pthread_mutex_destroy(&ep->mu);
    pthread_cond_destroy(&ep->cv);
    free(ep);
}

int kinesis_endpoint_start(struct kinesis_endpoint **out, int nshards)
{
    if (nshards < 1 || nshards > MAX_SHARDS) {
        return -EINVAL;
    }
    struct kinesis_endpoint *ep = calloc(1, sizeof *ep);
    if (!ep) {
        return -ENOMEM;
    }
    ep->nshards = nshards;
    ep->step = ~(u128)0 / (u128)nshards;
    ep->stop = (struct cn_event)CN_EVENT_INIT;
    pthread_mutex_init(&ep->mu, NULL);
    pthread_cond_init(&ep->cv, NULL);
    ep->list_shards = build_list_shards(ep);
    ep->summary = build_summary(ep);
    int rc = ep->list_shards && ep->summary ? 0 : -ENOMEM;
    rc = rc < 0 ? rc : -pthread_create(&ep->thread, NULL, endpoint_thread, ep);
    if (rc < 0) {
        endpoint_free(ep);
        return rc;
    }
    pthread_mutex_lock(&ep->mu);
    while (!ep->started) {
        pthread_cond_wait(&ep->cv, &ep->mu);
    }
    rc = ep->start_rc;
    pthread_mutex_unlock(&ep->mu);
    if (rc < 0) {
        pthread_join(ep->thread, NULL);
        endpoint_free(ep);
        return rc;
    }
    *out = ep;
    return 0;
}

const char *kinesis_endpoint_url(const struct kinesis_endpoint *ep)
{
    return ep->url;
}

double kinesis_endpoint_cpu_seconds(const struct kinesis_endpoint *ep)
{
    clockid_t clk;
    struct timespec ts;
    if (pthread_getcpuclockid(ep->thread, &clk) != 0 || clock_gettime(clk, &ts) != 0) {
        return 0;
    }
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void kinesis_endpoint_stats(const struct kinesis_endpoint *ep, struct kinesis_endpoint_stats *out)
{
    out->requests = atomic_load_explicit(&ep->requests, memory_order_relaxed);
    out->put_records = atomic_load_explicit(&ep->put_records, memory_order_relaxed);
    out->entries = atomic_load_explicit(&ep->entries, memory_order_relaxed);
}

static int stop_fn(void *arg)
{
    struct kinesis_endpoint *ep = arg;
    cn_event_set(&ep->stop);
    return 0;
}

int kinesis_endpoint_stop(struct kinesis_endpoint *ep)
{
    if (!ep) {
        return 0;
    }
    int res = 0;
    cn_bridge_call(ep->bridge, stop_fn, ep, &res);
    pthread_join(ep->thread, NULL);
    int rc = ep->result;
    endpoint_free(ep);
    return rc;
}
