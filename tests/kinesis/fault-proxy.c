/* SPDX-License-Identifier: MIT */
/*
 * kinesis-fault-proxy: a Kinesis endpoint that forwards to a real one (an
 * emulator: kinesalite or kinesis-mock) and breaks PutRecords on purpose,
 * so the producer's retry, TTL and exactly-one-outcome rules can be tested
 * against every failure AWS shows. A test tool, never part of the library.
 *
 *   kinesis-fault-proxy --upstream http://127.0.0.1:PORT [--host H] [--port N]
 *       [--seed N] [--limit] [--limit-records N] [--limit-bytes N]
 *       [--throttle-requests P] [--limit-exceeded P] [--http-500 P] [--http-503 P]
 *       [--expired-creds P] [--reset P] [--garbage P] [--slow-ms MS [--slow P]]
 *       [--fail-records P] [--split-after N] [--log]
 *
 * The first stdout line is "listening on HOST:PORT" (flushed). Every
 * request (any X-Amz-Target) is forwarded over pooled keep-alive
 * connections with its headers (the emulators do not check signatures, so
 * nothing is re-signed) and the answer relayed. Faults apply to PutRecords
 * only, so stream set-up, ListShards and read-back through the proxy stay
 * reliable.
 *
 * Request faults. One draw per PutRecords request picks at most one of
 * reset, expired-creds, throttle-requests, limit-exceeded, http-500,
 * http-503, garbage, slow: the percentages partition [0, 100) (their sum
 * must be at most 100), so each is exact and two never hit one request,
 * which keeps the statistics exact (a garbled answer is never also late,
 * so the client sees what was counted). --slow without a percentage is
 * "every request no other fault hit". Error answers (expired-creds,
 * throttles, 500, 503) are sent at once without forwarding; a reset closes
 * the connection with SO_LINGER 0 (an RST) right after reading the request
 * or, for half of them, after forwarding it (so it may be stored: the
 * client must treat it as at least once); garbage is the upstream's answer
 * replaced by invalid JSON with status 200 (forwarded, so stored); slow is
 * the upstream's answer sent --slow-ms late (forwarded first).
 *
 * Entry faults, on requests that are forwarded: --fail-records answers P%
 * of entries InternalFailure, --limit answers entries past their shard's
 * write limit (token buckets of 1,000 records/s and 1 MiB/s of data and
 * partition key, one second deep, per shard; --limit-records/--limit-bytes
 * change the rates) ProvisionedThroughputExceededException with AWS's
 * message. Those entries are not forwarded; the rest go upstream in one
 * PutRecords and the answers are merged back in order, FailedRecordCount
 * fixed up. The proxy finds each entry's shard as Kinesis does (MD5 of the
 * partition key or the explicit hash key, against ListShards' ranges, via
 * the library's kinesis/hashkey.h) and checks its prediction against the
 * ShardId the upstream answers: a mismatch (a split or merge) counts in
 * shard_mismatches and reloads the map. --split-after N splits the first
 * open shard at the middle of its range once N entries are stored, while
 * the load goes on.
 *
 * Every decision is drawn from one PRNG seeded by --seed, in the order
 * requests arrive. On SIGTERM or SIGINT the proxy stops, prints one JSON
 * line of statistics on stdout and exits 0. Bodies over 10 MiB are refused
 * with 413; every table is bounded. --log writes one stderr line per
 * PutRecords (its fault, entries, forwarded, time).
 *
 * Statistics (counts): requests (all read), put_records_requests, entries
 * (received), forwarded_entries, stored_entries (the upstream answered a
 * sequence number: exactly the Kinesis records the stream gained),
 * upstream_failed_entries, throttled_entries (--limit), failed_entries
 * (--fail-records), failed_requests (whole-request errors, then per kind:
 * throttled_requests, limit_exceeded_requests, http_500, http_503,
 * expired_requests with expired_entries), garbage_responses with
 * garbage_entries, slow_responses, resets with resets_after_forward and
 * reset_entries, upstream_errors (answered 502), shard_map_loads,
 * shard_mismatches, splits, split_errors, and per_shard: {"shardId-...":
 * {"records", "bytes" (data + key), "throttled"}} keyed by shard id (the
 * counts of equally named shards of several streams add up).
 */
#include <coronet/coronet.h>

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "kinesis/hashkey.h"

#define MAX_BODY (10u << 20)          /* requests: larger ones get 413 */
#define MAX_UPSTREAM_BODY (64u << 20) /* answers: GetRecords holds up to 10 MiB, base64 */
#define UPSTREAM_MS 30000             /* one forwarded request */
#define RESPOND_MS 10000              /* writing one answer */
#define MAX_STREAMS 1000
#define MAX_SHARDS 100000
#define MAX_FWD_HEADERS 64
#define NAME_MAX_LEN 128 /* stream names and shard ids */
#define ACCOUNT "000000000000"

/* ---- options -------------------------------------------------------------------------- */

/* The request faults, in the order their percentages partition [0, 100). */
enum fault {
    F_RESET,
    F_EXPIRED,
    F_THROTTLE,
    F_LIMIT_EXCEEDED,
    F_HTTP_500,
    F_HTTP_503,
    F_GARBAGE,
    F_SLOW,
    F_COUNT,
    F_NONE = F_COUNT,
};

static const char *const fault_option[F_COUNT] = {
    "--reset",    "--expired-creds", "--throttle-requests", "--limit-exceeded",
    "--http-500", "--http-503",      "--garbage",           "--slow",
};

/* The whole-request error answers, as AWS sends them. */
static const struct {
    int status;
    const char *type;
    const char *message;
} fault_error[F_COUNT] = {
    [F_EXPIRED] = {400, "ExpiredTokenException",
                   "The security token included in the request is expired"},
    [F_THROTTLE] = {400, "ProvisionedThroughputExceededException", "Rate exceeded"},
    [F_LIMIT_EXCEEDED] = {400, "LimitExceededException", "Rate exceeded"},
    [F_HTTP_500] = {500, "InternalFailure",
                    "The request processing has failed because of an unknown error, exception "
                    "or failure."},
    [F_HTTP_503] = {503, "ServiceUnavailable",
                    "The request has failed due to a temporary failure of the server."},
};

struct options {
    const char *upstream;
    const char *host;
    int port;
    uint64_t seed;
    bool limit;
    double limit_records; /* per shard per second, and bucket depth */
    double limit_bytes;
    double p[F_COUNT]; /* percent of PutRecords requests */
    bool slow_given;
    int64_t slow_ms;
    double fail_records;   /* percent of forwarded entries */
    long long split_after; /* -1: never */
    bool log;              /* one stderr line per PutRecords */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: kinesis-fault-proxy --upstream URL [--host H] [--port N] [--seed N]\n"
               "  [--limit] [--limit-records N] [--limit-bytes N] [--throttle-requests P]\n"
               "  [--limit-exceeded P] [--http-500 P] [--http-503 P] [--expired-creds P]\n"
               "  [--reset P] [--garbage P] [--slow-ms MS [--slow P]] [--fail-records P]\n"
               "  [--split-after N] [--log]\n"
               "P is a percentage (0..100); request fault percentages add up to at most 100.\n");
}

static bool parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        return false;
    }
    *out = v;
    return true;
}

static bool parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = v;
    return true;
}

/* One option with a value; false if it is not a known one or the value is bad. */
static bool parse_valued(struct options *o, const char *name, const char *v)
{
    long long n;
    for (int f = 0; f < F_COUNT; f++) {
        if (strcmp(name, fault_option[f]) == 0) {
            o->slow_given |= f == F_SLOW;
            return parse_double(v, 0, 100, &o->p[f]);
        }
    }
    if (strcmp(name, "--upstream") == 0) {
        o->upstream = v;
    } else if (strcmp(name, "--host") == 0) {
        o->host = v;
    } else if (strcmp(name, "--port") == 0 && parse_ll(v, 0, 65535, &n)) {
        o->port = (int)n;
    } else if (strcmp(name, "--seed") == 0 && parse_ll(v, 0, INT64_MAX, &n)) {
        o->seed = (uint64_t)n;
    } else if (strcmp(name, "--limit-records") == 0 && parse_ll(v, 1, 1000000000, &n)) {
        o->limit = true;
        o->limit_records = (double)n;
    } else if (strcmp(name, "--limit-bytes") == 0 && parse_ll(v, 1, INT64_MAX / 4, &n)) {
        o->limit = true;
        o->limit_bytes = (double)n;
    } else if (strcmp(name, "--slow-ms") == 0 && parse_ll(v, 0, 3600000, &n)) {
        o->slow_ms = n;
    } else if (strcmp(name, "--fail-records") == 0) {
        return parse_double(v, 0, 100, &o->fail_records);
    } else if (strcmp(name, "--split-after") == 0 && parse_ll(v, 0, INT64_MAX, &n)) {
        o->split_after = n;
    } else {
        return false;
    }
    return true;
}

/* Returns 0 to run, 1 after --help, 2 on a usage error. */
static int parse_args(struct options *o, int argc, char **argv)
{
    *o = (struct options){.host = "127.0.0.1",
                          .seed = 1,
                          .limit_records = 1000,
                          .limit_bytes = 1048576,
                          .split_after = -1};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(argv[i], "--limit") == 0) {
            o->limit = true;
        } else if (strcmp(argv[i], "--log") == 0) {
            o->log = true;
        } else if (i + 1 >= argc || !parse_valued(o, argv[i], argv[i + 1])) {
            fprintf(stderr, "kinesis-fault-proxy: bad option %s%s%s\n", argv[i],
                    i + 1 < argc ? " " : "", i + 1 < argc ? argv[i + 1] : "");
            usage(stderr);
            return 2;
        } else {
            i++;
        }
    }
    double sum = 0;
    for (int f = 0; f < F_COUNT; f++) {
        sum += o->p[f];
    }
    if (o->slow_ms > 0 && !o->slow_given) {
        o->p[F_SLOW] = 100 - sum; /* every request no other fault hit */
        sum = 100;
    }
    if (!o->upstream || sum > 100.0001) {
        fprintf(stderr, "kinesis-fault-proxy: %s\n",
                !o->upstream ? "--upstream is required"
                             : "request fault percentages add up to more than 100");
        usage(stderr);
        return 2;
    }
    return 0;
}

/* ---- state ------------------------------------------------------------------------------ */

/* One shard of one stream: what was stored and throttled there, and its
 * token buckets (--limit). */
struct shard_stat {
    char stream[NAME_MAX_LEN + 1];
    char id[NAME_MAX_LEN + 1];
    uint64_t records; /* entries the upstream stored here */
    uint64_t bytes;   /* their data + partition key bytes */
    uint64_t throttled;
    double tokens_records, tokens_bytes;
    int64_t refilled_ms; /* -1: bucket not started (it starts full) */
};

/* A stream's shard map for --limit, from ListShards of the upstream. */
struct stream_map {
    struct stream_map *next;
    char name[NAME_MAX_LEN + 1];
    struct cn__shardmap *map; /* NULL until loaded */
    size_t *stat_of;          /* map index -> index in proxy.shards */
    bool loading;             /* a ListShards is under way */
    bool stale;               /* reload before the next prediction */
    struct cn_event loaded;   /* set when a load ends */
};

struct stats {
    uint64_t requests;             /* every request read */
    uint64_t put_records_requests; /* of them PutRecords */
    uint64_t entries;              /* PutRecords entries received */
    uint64_t forwarded_entries;    /* sent upstream */
    uint64_t stored_entries;       /* the upstream answered with a sequence number */
    uint64_t upstream_failed_entries;
    uint64_t throttled_entries; /* --limit */
    uint64_t failed_entries;    /* --fail-records */
    uint64_t failed_requests;   /* answered with a whole-request error */
    uint64_t throttled_requests, limit_exceeded_requests, http_500, http_503;
    uint64_t expired_requests, expired_entries;
    uint64_t garbage_responses, garbage_entries;
    uint64_t slow_responses;
    uint64_t resets, resets_after_forward, reset_entries;
    uint64_t upstream_errors; /* no answer from the upstream: answered 502 */
    uint64_t shard_map_loads, shard_mismatches;
    uint64_t splits, split_errors;
};

struct proxy {
    struct options o;
    char base[300]; /* scheme://host:port of the upstream */
    struct cn_http_client *http;
    struct cn_kinesis_client *kc; /* the proxy's own ListShards and SplitShard */
    struct cn_tcp_listener *listener;
    struct cn_group *bg; /* split coroutines */
    struct cn_event stop;
    uint64_t rng;
    struct stream_map *maps;
    size_t nmaps;
    struct shard_stat *shards;
    size_t nshards, cap;
    bool split_started;
    struct stats st;
};

/* splitmix64: decent bits from any seed, one state word. */
static uint64_t rnd(struct proxy *px)
{
    uint64_t z = (px->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A uniform percentage in [0, 100). */
static double percent_draw(struct proxy *px)
{
    return (double)(rnd(px) % 1000000u) / 10000.0;
}

static enum fault draw_fault(struct proxy *px)
{
    double u = percent_draw(px);
    for (int f = 0; f < F_COUNT; f++) {
        if (u < px->o.p[f]) {
            return (enum fault)f;
        }
        u -= px->o.p[f];
    }
    return F_NONE;
}

static void copy_name(char *dst, const char *src)
{
    snprintf(dst, NAME_MAX_LEN + 1, "%s", src);
}

/* The index of (stream, id) in px->shards, added if new; -1 when full. */
static long shard_index(struct proxy *px, const char *stream, const char *id)
{
    for (size_t i = 0; i < px->nshards; i++) {
        if (strcmp(px->shards[i].id, id) == 0 && strcmp(px->shards[i].stream, stream) == 0) {
            return (long)i;
        }
    }
    if (px->nshards == px->cap) {
        size_t cap = px->cap ? px->cap * 2 : 16;
        struct shard_stat *s = cap <= MAX_SHARDS ? realloc(px->shards, cap * sizeof *s) : NULL;
        if (!s) {
            return -1;
        }
        px->shards = s;
        px->cap = cap;
    }
    struct shard_stat *s = &px->shards[px->nshards];
    *s = (struct shard_stat){.refilled_ms = -1};
    copy_name(s->stream, stream);
    copy_name(s->id, id);
    return (long)px->nshards++;
}

/* ---- answers ----------------------------------------------------------------------------- */

/* An answer to send: status, the headers that matter, an owned body. */
struct answer {
    int status;
    char ctype[128];
    char etype[256];
    char request_id[128];
    char *body;
    size_t len;
};

static void answer_free(struct answer *a)
{
    free(a->body);
    a->body = NULL;
}

static void header_copy(char *dst, size_t cap, const struct cn_http_response *r, const char *name)
{
    size_t n = 0;
    const char *v = cn_http_header_find(r->headers, r->nheaders, name, &n);
    snprintf(dst, cap, "%.*s", v ? (int)(n < cap ? n : cap - 1) : 0, v ? v : "");
}

static int answer_from(struct answer *a, const struct cn_http_response *r)
{
    *a = (struct answer){.status = r->status};
    header_copy(a->ctype, sizeof a->ctype, r, "Content-Type");
    header_copy(a->etype, sizeof a->etype, r, "x-amzn-ErrorType");
    header_copy(a->request_id, sizeof a->request_id, r, "x-amzn-RequestId");
    a->body = malloc(r->body_len + 1);
    if (!a->body) {
        return -ENOMEM;
    }
    memcpy(a->body, r->body, r->body_len);
    a->len = r->body_len;
    return 0;
}

/* A JSON answer made here (takes ownership of body, from json_dumps or strdup). */
static void answer_json(struct proxy *px, struct answer *a, int status, char *body)
{
    *a = (struct answer){.status = status, .body = body, .len = body ? strlen(body) : 0};
    snprintf(a->ctype, sizeof a->ctype, "application/x-amz-json-1.1");
    uint64_t r1 = rnd(px), r2 = rnd(px);
    snprintf(a->request_id, sizeof a->request_id, "%08x-%04x-%04x-%04x-%012llx",
             (unsigned)(r1 >> 32), (unsigned)(r1 >> 16) & 0xFFFF, (unsigned)r1 & 0xFFFF,
             (unsigned)(r2 >> 48), (unsigned long long)(r2 & 0xFFFFFFFFFFFFull));
}

/* An AWS error answer: {"__type": type, "message": msg}. */
static int answer_error(struct proxy *px, struct answer *a, int status, const char *type,
                        const char *msg)
{
    json_t *o = json_pack("{s:s, s:s}", "__type", type, "message", msg);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!body) {
        return -ENOMEM;
    }
    answer_json(px, a, status, body);
    snprintf(a->etype, sizeof a->etype, "%s", type);
    return 0;
}

static int respond(struct cn_http_server_conn *c, const struct answer *a)
{
    struct cn_http_header h[3];
    size_t n = 0;
    if (a->ctype[0]) {
        h[n++] = cn_http_header_str("Content-Type", a->ctype);
    }
    if (a->etype[0]) {
        h[n++] = cn_http_header_str("x-amzn-ErrorType", a->etype);
    }
    if (a->request_id[0]) {
        h[n++] = cn_http_header_str("x-amzn-RequestId", a->request_id);
    }
    return cn_http_server_respond(c, a->status, h, n, a->body ? a->body : "", a->len,
                                  cn_now() + RESPOND_MS);
}

/* ---- forwarding ------------------------------------------------------------------------- */

static bool hop_by_hop(const struct cn_http_header *h)
{
    static const char *const names[] = {"host",       "content-length", "connection",
                                        "keep-alive", "upgrade",        "transfer-encoding",
                                        "te",         "expect",         "proxy-connection"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (h->name_len == strlen(names[i]) && strncasecmp(h->name, names[i], h->name_len) == 0) {
            return true;
        }
    }
    return false;
}

/* Sends the request upstream with body (the original or a rewritten one)
 * and copies the answer into *a; an upstream that does not answer gets the
 * client a 502 InternalFailure (retryable, as a broken gateway would be). */
static int forward(struct proxy *px, const struct cn_http_request *req, const char *body,
                   size_t len, struct answer *a)
{
    struct cn_http_header h[MAX_FWD_HEADERS];
    size_t n = 0;
    for (size_t i = 0; i < req->nheaders && n < MAX_FWD_HEADERS; i++) {
        if (!hop_by_hop(&req->headers[i])) {
            h[n++] = req->headers[i];
        }
    }
    char url[2400];
    if ((size_t)snprintf(url, sizeof url, "%s%.*s", px->base, (int)req->target_len, req->target) >=
        sizeof url) {
        return answer_error(px, a, 414, "ValidationException", "request target too long");
    }
    struct cn_http_client_request r = {.method = req->method,
                                       .url = url,
                                       .headers = h,
                                       .nheaders = n,
                                       .body = body,
                                       .body_len = len,
                                       .retry_unsafe = true};
    struct cn_http_response *resp;
    int rc = cn_http_client_request(px->http, &r, &resp, cn_now() + UPSTREAM_MS);
    if (rc == -ECANCELED) {
        return rc;
    }
    if (rc < 0) {
        px->st.upstream_errors++;
        fprintf(stderr, "kinesis-fault-proxy: upstream: %s\n", cn_strerror(rc));
        return answer_error(px, a, 502, "InternalFailure", "the upstream did not answer");
    }
    rc = answer_from(a, resp);
    cn_http_response_free(resp);
    return rc;
}

/* Forwards the request as it is and relays the answer. */
static int relay(struct proxy *px, struct cn_http_server_conn *c, const struct cn_http_request *req,
                 const char *body, size_t len)
{
    struct answer a;
    int rc = forward(px, req, body, len, &a);
    if (rc < 0) {
        return rc;
    }
    rc = respond(c, &a);
    answer_free(&a);
    return rc;
}

/* ---- resets ---------------------------------------------------------------------------- */

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) {
        return false;
    }
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return false;
}

/* The descriptor of a TCP stream. coronet does not expose it (nothing in
 * the library needs an RST), so it is found by its address pair among the
 * process's descriptors: one readdir per reset, fine for a test tool. */
static int socket_fd_of(struct cn_stream *s)
{
    struct sockaddr_storage self, peer;
    if (cn_tcp_sockname(s, &self) < 0 || cn_tcp_peername(s, &peer) < 0) {
        return -1;
    }
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        return -1;
    }
    int found = -1;
    struct dirent *de;
    while (found < 0 && (de = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        if (end == de->d_name || *end != '\0' || fd == dirfd(d)) {
            continue;
        }
        struct sockaddr_storage a, b;
        socklen_t la = sizeof a, lb = sizeof b;
        if (getsockname((int)fd, (struct sockaddr *)&a, &la) == 0 &&
            getpeername((int)fd, (struct sockaddr *)&b, &lb) == 0 && same_addr(&a, &self) &&
            same_addr(&b, &peer)) {
            found = (int)fd;
        }
    }
    closedir(d);
    return found;
}

/* Closes the client's connection with an RST (SO_LINGER 0) and no answer. */
static int reset_connection(struct proxy *px, struct cn_http_server_conn *c, size_t entries)
{
    px->st.resets++;
    px->st.reset_entries += entries;
    struct cn_stream *s;
    if (cn_http_server_conn_take_stream(c, &s) < 0) {
        return -ECONNRESET; /* cn_http_serve closes it (a FIN, still no answer) */
    }
    int fd = socket_fd_of(s);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) != 0) {
        fprintf(stderr, "kinesis-fault-proxy: no RST possible, closing instead\n");
    }
    cn_stream_close(s);
    return -ECONNRESET;
}

/* ---- shard maps and token buckets (--limit) --------------------------------------------- */

static struct stream_map *map_of(struct proxy *px, const char *stream)
{
    for (struct stream_map *m = px->maps; m; m = m->next) {
        if (strcmp(m->name, stream) == 0) {
            return m;
        }
    }
    struct stream_map *m = px->nmaps < MAX_STREAMS ? calloc(1, sizeof *m) : NULL;
    if (!m) {
        return NULL;
    }
    copy_name(m->name, stream);
    m->next = px->maps;
    px->maps = m;
    px->nmaps++;
    return m;
}

static int install_map(struct proxy *px, struct stream_map *m,
                       const struct cn_kinesis_shard_list *l)
{
    struct cn__shard_desc *d = calloc(l->count ? l->count : 1, sizeof *d);
    if (!d) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < l->count; i++) {
        d[i] = (struct cn__shard_desc){.id = l->shards[i].id,
                                       .starting = l->shards[i].starting_hash_key,
                                       .ending = l->shards[i].ending_hash_key,
                                       .closed = !l->shards[i].open};
    }
    struct cn__shardmap *map;
    int rc = cn__shardmap_new(&map, d, l->count);
    free(d);
    if (rc < 0) {
        return rc;
    }
    size_t n = cn__shardmap_count(map);
    size_t *stat_of = calloc(n, sizeof *stat_of);
    for (size_t i = 0; stat_of && i < n; i++) {
        long k = shard_index(px, m->name, cn__shardmap_id(map, i));
        if (k < 0) {
            free(stat_of);
            stat_of = NULL;
        } else {
            stat_of[i] = (size_t)k;
        }
    }
    if (!stat_of) {
        cn__shardmap_free(map);
        return -ENOMEM;
    }
    cn__shardmap_free(m->map);
    free(m->stat_of);
    m->map = map;
    m->stat_of = stat_of;
    px->st.shard_map_loads++;
    return 0;
}

/* ListShards upstream into m; a list taken mid-reshard may not tile the
 * key space (-EAGAIN): list again. */
static int load_map(struct proxy *px, struct stream_map *m)
{
    m->loading = true;
    m->stale = false;
    cn_event_reset(&m->loaded);
    int rc = -EAGAIN;
    for (int attempt = 0; attempt < 20 && !cn_cancelled(); attempt++) {
        struct cn_kinesis_shard_list *l = NULL;
        struct cn_kinesis_error err;
        rc = cn_kinesis_list_shards(px->kc, m->name, CN_KINESIS_SHARDS_OPEN, &l, &err,
                                    cn_now() + UPSTREAM_MS);
        if (rc == 0) {
            rc = install_map(px, m, l);
        }
        cn_kinesis_shard_list_free(l);
        if (rc != -EAGAIN && !(rc < 0 && cn_kinesis_retryable(rc))) {
            break;
        }
        cn_sleep(50);
    }
    m->loading = false;
    cn_event_set(&m->loaded);
    if (rc < 0) {
        fprintf(stderr, "kinesis-fault-proxy: ListShards %s: %s\n", m->name, cn_strerror(rc));
    }
    return rc;
}

/* A usable map for the stream, loading or refreshing it if needed; while
 * another request refreshes it, the old one serves. NULL: none (the stream
 * may not exist; the request then goes upstream unlimited). */
static struct stream_map *ensure_map(struct proxy *px, const char *stream)
{
    struct stream_map *m = map_of(px, stream);
    if (!m) {
        return NULL;
    }
    if (m->map && (!m->stale || m->loading)) {
        return m;
    }
    if (m->loading) {
        cn_event_wait(&m->loaded, cn_now() + UPSTREAM_MS);
        return m->map ? m : NULL;
    }
    load_map(px, m);
    return m->map ? m : NULL;
}

static double min_d(double a, double b)
{
    return a < b ? a : b;
}

/* Takes one record and `bytes` from the shard's buckets if both hold
 * enough; they refill continuously and hold at most one second's worth. */
static bool take_tokens(struct proxy *px, struct shard_stat *s, size_t bytes, int64_t now)
{
    double cap_r = px->o.limit_records, cap_b = px->o.limit_bytes;
    if (s->refilled_ms < 0) {
        s->tokens_records = cap_r;
        s->tokens_bytes = cap_b;
        s->refilled_ms = now;
    }
    double dt = (double)(now - s->refilled_ms) / 1000.0;
    s->tokens_records = min_d(cap_r, s->tokens_records + cap_r * dt);
    s->tokens_bytes = min_d(cap_b, s->tokens_bytes + cap_b * dt);
    s->refilled_ms = now;
    if (s->tokens_records < 1 || s->tokens_bytes < (double)bytes) {
        return false;
    }
    s->tokens_records -= 1;
    s->tokens_bytes -= (double)bytes;
    return true;
}

/* ---- PutRecords ----------------------------------------------------------------------- */

enum entry_kind { E_FORWARD, E_THROTTLED, E_FAILED };

struct entry_plan {
    enum entry_kind kind;
    long stat;    /* predicted shard in px->shards, -1 if unknown */
    size_t bytes; /* data (decoded) + partition key */
};

/* One PutRecords being handled. */
struct put {
    json_t *root;
    json_t *recs; /* root.Records */
    size_t n;
    const char *stream;
    struct stream_map *map; /* --limit only */
    struct entry_plan *plan;
    size_t nfwd;
};

/* The length base64 text of n chars decodes to (RFC 4648, padded). */
static size_t b64_decoded_len(const char *s, size_t n)
{
    size_t pad = 0;
    while (pad < 2 && n > pad && s[n - 1 - pad] == '=') {
        pad++;
    }
    return n / 4 * 3 - (n % 4 == 0 ? pad : 0) + (n % 4 > 1 ? n % 4 - 1 : 0);
}

/* The shard Kinesis would put entry e in, by the current map; -1 unknown. */
static long predict(struct proxy *px, const struct put *pr, json_t *e)
{
    json_t *pk = json_object_get(e, "PartitionKey");
    const char *ehk = json_string_value(json_object_get(e, "ExplicitHashKey"));
    if (!pr->map || !json_is_string(pk)) {
        return -1;
    }
    struct cn__hashkey k;
    if (ehk) {
        if (cn__hashkey_parse(&k, ehk, strlen(ehk)) < 0) {
            return -1;
        }
    } else {
        cn__hashkey_from_pk(&k, json_string_value(pk), json_string_length(pk));
    }
    return (long)pr->map->stat_of[cn__shardmap_find(pr->map->map, &k)];
}

/* Decides each entry's fate. Nothing here parks, so the buckets see the
 * entries of concurrent requests one request at a time. */
static void plan_entries(struct proxy *px, struct put *pr)
{
    int64_t now = cn_now();
    for (size_t i = 0; i < pr->n; i++) {
        json_t *e = json_array_get(pr->recs, i);
        json_t *pk = json_object_get(e, "PartitionKey"), *data = json_object_get(e, "Data");
        struct entry_plan *p = &pr->plan[i];
        p->kind = E_FORWARD;
        p->stat = predict(px, pr, e);
        p->bytes = (json_is_string(pk) ? json_string_length(pk) : 0) +
                   (json_is_string(data)
                        ? b64_decoded_len(json_string_value(data), json_string_length(data))
                        : 0);
        if (px->o.fail_records > 0 && percent_draw(px) < px->o.fail_records) {
            p->kind = E_FAILED;
            px->st.failed_entries++;
        } else if (px->o.limit && p->stat >= 0 &&
                   !take_tokens(px, &px->shards[p->stat], p->bytes, now)) {
            p->kind = E_THROTTLED;
            px->st.throttled_entries++;
            px->shards[p->stat].throttled++;
        } else {
            pr->nfwd++;
        }
    }
    px->st.forwarded_entries += pr->nfwd;
}

/* The body of a PutRecords of the forwarded entries only. */
static char *sub_request(const struct put *pr)
{
    json_t *sub = json_object(), *arr = json_array(), *v;
    const char *key;
    if (!sub || !arr) {
        json_decref(sub);
        json_decref(arr);
        return NULL;
    }
    json_object_foreach(pr->root, key, v)
    {
        if (strcmp(key, "Records") != 0) {
            json_object_set(sub, key, v);
        }
    }
    for (size_t i = 0; i < pr->n; i++) {
        if (pr->plan[i].kind == E_FORWARD) {
            json_array_append(arr, json_array_get(pr->recs, i));
        }
    }
    json_object_set_new(sub, "Records", arr);
    char *s = json_dumps(sub, JSON_COMPACT);
    json_decref(sub);
    return s;
}

static void split_start(struct proxy *px, const char *stream);

/* Counts what the upstream stored, per shard, and checks the predictions. */
static void count_stored(struct proxy *px, const struct put *pr, json_t *urecs)
{
    size_t j = 0;
    for (size_t i = 0; i < pr->n; i++) {
        if (pr->plan[i].kind != E_FORWARD) {
            continue;
        }
        json_t *r = json_array_get(urecs, j++);
        const char *shard = json_string_value(json_object_get(r, "ShardId"));
        if (!shard || json_is_string(json_object_get(r, "ErrorCode"))) {
            px->st.upstream_failed_entries++;
            continue;
        }
        px->st.stored_entries++;
        long k = shard_index(px, pr->stream, shard);
        if (k >= 0) {
            px->shards[k].records++;
            px->shards[k].bytes += pr->plan[i].bytes;
        }
        long want = pr->plan[i].stat;
        if (want >= 0 && strcmp(px->shards[want].id, shard) != 0) {
            px->st.shard_mismatches++; /* a split or merge: refresh */
            if (pr->map) {
                pr->map->stale = true;
            }
        }
    }
    if (px->o.split_after >= 0 && !px->split_started &&
        px->st.stored_entries >= (uint64_t)px->o.split_after) {
        split_start(px, pr->stream);
    }
}

static json_t *entry_error(const struct proxy *px, const struct put *pr, enum entry_kind kind,
                           long stat)
{
    if (kind == E_FAILED) {
        return json_pack("{s:s, s:s}", "ErrorCode", "InternalFailure", "ErrorMessage",
                         "Internal service failure.");
    }
    char msg[400];
    snprintf(msg, sizeof msg, "Rate exceeded for shard %s in stream %s under account " ACCOUNT ".",
             px->shards[stat].id, pr->stream);
    return json_pack("{s:s, s:s}", "ErrorCode", "ProvisionedThroughputExceededException",
                     "ErrorMessage", msg);
}

/* The whole answer: the upstream's results (urecs, may be NULL if nothing
 * was forwarded) and the proxy's errors, each in its entry's place. */
static char *merged_body(const struct proxy *px, const struct put *pr, json_t *urecs)
{
    json_t *out = json_array();
    size_t j = 0, failed = 0;
    for (size_t i = 0; out && i < pr->n; i++) {
        json_t *r;
        if (pr->plan[i].kind == E_FORWARD) {
            r = json_incref(json_array_get(urecs, j++));
        } else {
            r = entry_error(px, pr, pr->plan[i].kind, pr->plan[i].stat);
        }
        failed += json_is_string(json_object_get(r, "ErrorCode"));
        json_array_append_new(out, r);
    }
    json_t *root = json_pack("{s:I, s:o}", "FailedRecordCount", (json_int_t)failed, "Records", out);
    char *s = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return s;
}

/* Sends the forwarded entries upstream and builds the answer in *a. */
static int put_upstream(struct proxy *px, const struct cn_http_request *req, const char *body,
                        size_t len, struct put *pr, struct answer *a)
{
    if (pr->nfwd == 0) {
        char *s = merged_body(px, pr, NULL);
        answer_json(px, a, 200, s);
        return s ? 0 : -ENOMEM;
    }
    char *sub = pr->nfwd < pr->n ? sub_request(pr) : NULL;
    if (pr->nfwd < pr->n && !sub) {
        return -ENOMEM;
    }
    int rc = forward(px, req, sub ? sub : body, sub ? strlen(sub) : len, a);
    free(sub);
    if (rc < 0 || a->status != 200) {
        return rc; /* the whole request failed upstream: relayed as it is */
    }
    json_t *ur = json_loadb(a->body, a->len, 0, NULL);
    json_t *urecs = json_object_get(ur, "Records");
    if (!json_is_array(urecs) || json_array_size(urecs) != pr->nfwd) {
        fprintf(stderr, "kinesis-fault-proxy: upstream PutRecords answer does not fit\n");
        json_decref(ur);
        return 0; /* relayed: the client sees what the upstream said */
    }
    count_stored(px, pr, urecs);
    if (pr->nfwd < pr->n) {
        char *s = merged_body(px, pr, urecs);
        if (!s) {
            json_decref(ur);
            return -ENOMEM;
        }
        free(a->body);
        a->body = s;
        a->len = strlen(s);
    }
    json_decref(ur);
    return 0;
}

static const char *const garbage[] = {
    "{\"FailedRecordCount\":0,\"Records\":[{\"SequenceNumber\":\"4959",
    "<html><body><h1>502 Bad Gateway</h1></body></html>",
    "{\"FailedRecordCount\":0,\"Records\":[}",
    "\x01\x02 not json",
};

/* After forwarding: the answer is sent late, garbled, or not at all. */
static int finish_put(struct proxy *px, struct cn_http_server_conn *c, enum fault f,
                      const struct put *pr, struct answer *a)
{
    if (f == F_RESET) {
        px->st.resets_after_forward++;
        return reset_connection(px, c, pr->n);
    }
    if (f == F_GARBAGE) {
        px->st.garbage_responses++;
        px->st.garbage_entries += pr->n;
        const char *g = garbage[rnd(px) % (sizeof garbage / sizeof garbage[0])];
        free(a->body);
        answer_json(px, a, 200, strdup(g));
        if (!a->body) {
            return -ENOMEM;
        }
    }
    if (f == F_SLOW) {
        px->st.slow_responses++;
        int rc = cn_sleep(px->o.slow_ms);
        if (rc < 0) {
            return rc;
        }
    }
    return respond(c, a);
}

static void count_fault(struct proxy *px, enum fault f)
{
    uint64_t *counter[F_COUNT] = {
        [F_EXPIRED] = &px->st.expired_requests,
        [F_THROTTLE] = &px->st.throttled_requests,
        [F_LIMIT_EXCEEDED] = &px->st.limit_exceeded_requests,
        [F_HTTP_500] = &px->st.http_500,
        [F_HTTP_503] = &px->st.http_503,
    };
    if (f < F_COUNT && counter[f]) {
        (*counter[f])++;
    }
}

static int put_records(struct proxy *px, struct cn_http_server_conn *c,
                       const struct cn_http_request *req, const char *body, size_t len)
{
    struct put pr = {.root = json_loadb(body, len, 0, NULL)};
    pr.recs = json_object_get(pr.root, "Records");
    pr.stream = json_string_value(json_object_get(pr.root, "StreamName"));
    pr.stream = pr.stream ? pr.stream : "";
    pr.n = json_is_array(pr.recs) ? json_array_size(pr.recs) : 0;
    px->st.put_records_requests++;
    px->st.entries += pr.n;
    if (pr.n == 0) {
        json_decref(pr.root); /* not a PutRecords the proxy understands: the upstream judges */
        return relay(px, c, req, body, len);
    }
    enum fault f = draw_fault(px);
    bool reset_after = f == F_RESET && (rnd(px) & 1);
    struct answer a = {0};
    int64_t t0 = cn_now();
    int rc;
    if (f == F_RESET && !reset_after) {
        rc = reset_connection(px, c, pr.n);
    } else if (f != F_NONE && fault_error[f].type) {
        px->st.failed_requests++;
        count_fault(px, f);
        px->st.expired_entries += f == F_EXPIRED ? pr.n : 0;
        rc = answer_error(px, &a, fault_error[f].status, fault_error[f].type,
                          fault_error[f].message);
        rc = rc < 0 ? rc : respond(c, &a);
    } else {
        pr.map = px->o.limit && pr.n > 0 ? ensure_map(px, pr.stream) : NULL;
        pr.plan = calloc(pr.n ? pr.n : 1, sizeof *pr.plan);
        rc = pr.plan ? 0 : -ENOMEM;
        if (rc == 0) {
            plan_entries(px, &pr);
            rc = put_upstream(px, req, body, len, &pr, &a);
        }
        rc = rc < 0 ? rc : finish_put(px, c, f, &pr, &a);
    }
    if (px->o.log) {
        fprintf(stderr,
                "kinesis-fault-proxy: PutRecords %s: %zu entries, %zu forwarded, %s%s, %lld ms\n",
                f == F_NONE ? "-" : fault_option[f] + 2, pr.n, pr.nfwd,
                reset_after ? "after, " : "", rc < 0 ? cn_err_name(rc) : "answered",
                (long long)(cn_now() - t0));
    }
    free(pr.plan);
    answer_free(&a);
    json_decref(pr.root);
    return rc;
}

/* ---- SplitShard under load ------------------------------------------------------------ */

struct split_job {
    struct proxy *px;
    char stream[NAME_MAX_LEN + 1];
};

/* starting + (ending - starting) / 2 + 1: the first key of the upper half. */
static int midpoint(const char *starting, const char *ending, char out[CN__HASHKEY_DEC_MAX])
{
    struct cn__hashkey s, e, d, m;
    if (cn__hashkey_parse(&s, starting, strlen(starting)) < 0 ||
        cn__hashkey_parse(&e, ending, strlen(ending)) < 0 || cn__hashkey_cmp(&s, &e) >= 0) {
        return -EINVAL;
    }
    d.lo = e.lo - s.lo;
    d.hi = e.hi - s.hi - (e.lo < s.lo);
    d = (struct cn__hashkey){.hi = d.hi >> 1, .lo = (d.lo >> 1) | (d.hi << 63)};
    m.lo = s.lo + d.lo;
    m.hi = s.hi + d.hi + (m.lo < s.lo);
    m.lo += 1;
    m.hi += m.lo == 0;
    cn__hashkey_format(&m, out);
    return 0;
}

static int splitter(void *arg)
{
    struct split_job *j = arg;
    struct proxy *px = j->px;
    struct cn_kinesis_shard_list *l = NULL;
    struct cn_kinesis_error err = {0};
    char mid[CN__HASHKEY_DEC_MAX] = "";
    int64_t deadline = cn_now() + UPSTREAM_MS;
    int rc = cn_kinesis_list_shards(px->kc, j->stream, CN_KINESIS_SHARDS_OPEN, &l, &err, deadline);
    rc = rc == 0 && l->count == 0 ? -ENOENT : rc;
    if (rc == 0) {
        rc = midpoint(l->shards[0].starting_hash_key, l->shards[0].ending_hash_key, mid);
    }
    if (rc == 0) {
        rc = cn_kinesis_split_shard(px->kc, j->stream, l->shards[0].id, mid, &err, deadline);
    }
    if (rc == 0) {
        rc = cn_kinesis_wait_active(px->kc, j->stream, NULL, &err, deadline);
    }
    fprintf(stderr, "kinesis-fault-proxy: split %s of %s at %s: %s %s\n",
            l && l->count ? l->shards[0].id : "-", j->stream, mid,
            rc == 0 ? "done" : cn_strerror(rc), rc == 0 ? "" : err.message);
    if (rc == 0) {
        px->st.splits++;
        struct stream_map *m = map_of(px, j->stream);
        if (m) {
            m->stale = true;
        }
    } else if (rc != -ECANCELED) {
        px->st.split_errors++;
    }
    cn_kinesis_shard_list_free(l);
    free(j);
    return 0;
}

static void split_start(struct proxy *px, const char *stream)
{
    struct split_job *j = calloc(1, sizeof *j);
    px->split_started = true;
    if (!j) {
        px->st.split_errors++;
        return;
    }
    j->px = px;
    copy_name(j->stream, stream);
    if (cn_group_spawn(px->bg, splitter, j, NULL) < 0) {
        free(j);
        px->st.split_errors++;
    }
}

/* ---- the server ---------------------------------------------------------------------------- */

static bool is_put_records(const struct cn_http_request *req)
{
    static const char want[] = "Kinesis_20131202.PutRecords";
    size_t n = 0;
    const char *t = cn_http_header_find(req->headers, req->nheaders, "X-Amz-Target", &n);
    return t && n == sizeof want - 1 && memcmp(t, want, n) == 0;
}

static int handle(struct cn_http_server_conn *c, const struct cn_http_request *req, void *arg)
{
    struct proxy *px = arg;
    const char *body;
    size_t len;
    int rc = cn_http_server_read_body_all(c, &body, &len, cn_now() + UPSTREAM_MS);
    if (rc < 0) {
        return rc; /* over 10 MiB: 413 already sent */
    }
    px->st.requests++;
    if (is_put_records(req)) {
        return put_records(px, c, req, body, len);
    }
    return relay(px, c, req, body, len);
}

static int serve_main(void *arg)
{
    struct proxy *px = arg;
    struct cn_http_serve_opts o = {.limits = {.max_body_bytes = MAX_BODY}};
    int rc = cn_http_serve(px->listener, handle, px, &o);
    return rc == -ECANCELED ? 0 : rc;
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct proxy *px = h->data;
    (void)signum;
    cn_event_set(&px->stop);
}

/* ---- statistics ---------------------------------------------------------------------------- */

/* per_shard is keyed by shard id: with several streams, the counts of
 * equally named shards add up (the tests use one stream per proxy). */
static json_t *per_shard_json(const struct proxy *px)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < px->nshards; i++) {
        const struct shard_stat *s = &px->shards[i];
        json_t *e = json_object_get(o, s->id);
        json_int_t r = 0, b = 0, t = 0;
        if (e) {
            r = json_integer_value(json_object_get(e, "records"));
            b = json_integer_value(json_object_get(e, "bytes"));
            t = json_integer_value(json_object_get(e, "throttled"));
        }
        json_object_set_new(o, s->id,
                            json_pack("{s:I, s:I, s:I}", "records", r + (json_int_t)s->records,
                                      "bytes", b + (json_int_t)s->bytes, "throttled",
                                      t + (json_int_t)s->throttled));
    }
    return o;
}

static void print_stats(const struct proxy *px)
{
    const struct stats *s = &px->st;
    const struct {
        const char *name;
        uint64_t v;
    } f[] = {
        {"requests", s->requests},
        {"put_records_requests", s->put_records_requests},
        {"entries", s->entries},
        {"forwarded_entries", s->forwarded_entries},
        {"stored_entries", s->stored_entries},
        {"upstream_failed_entries", s->upstream_failed_entries},
        {"throttled_entries", s->throttled_entries},
        {"failed_entries", s->failed_entries},
        {"failed_requests", s->failed_requests},
        {"throttled_requests", s->throttled_requests},
        {"limit_exceeded_requests", s->limit_exceeded_requests},
        {"http_500", s->http_500},
        {"http_503", s->http_503},
        {"expired_requests", s->expired_requests},
        {"expired_entries", s->expired_entries},
        {"garbage_responses", s->garbage_responses},
        {"garbage_entries", s->garbage_entries},
        {"slow_responses", s->slow_responses},
        {"resets", s->resets},
        {"resets_after_forward", s->resets_after_forward},
        {"reset_entries", s->reset_entries},
        {"upstream_errors", s->upstream_errors},
        {"shard_map_loads", s->shard_map_loads},
        {"shard_mismatches", s->shard_mismatches},
        {"splits", s->splits},
        {"split_errors", s->split_errors},
    };
    json_t *o = json_object();
    for (size_t i = 0; o && i < sizeof f / sizeof f[0]; i++) {
        json_object_set_new(o, f[i].name, json_integer((json_int_t)f[i].v));
    }
    json_object_set_new(o, "per_shard", per_shard_json(px));
    char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
    printf("%s\n", line ? line : "{}");
    fflush(stdout);
    free(line);
    json_decref(o);
}

/* ---- main ---------------------------------------------------------------------------------- */

static int open_clients(struct proxy *px)
{
    struct cn_http_url u;
    int rc = cn_http_url_parse(px->o.upstream, &u);
    if (rc < 0) {
        fprintf(stderr, "kinesis-fault-proxy: bad --upstream %s\n", px->o.upstream);
        return rc;
    }
    bool v6 = strchr(u.host, ':') != NULL;
    snprintf(px->base, sizeof px->base, "%s://%s%s%s:%d", u.tls ? "https" : "http", v6 ? "[" : "",
             u.host, v6 ? "]" : "", u.port);
    struct cn_http_client_opts ho = {.max_conns_per_host = 64,
                                     .limits = {.max_body_bytes = MAX_UPSTREAM_BODY}};
    rc = cn_http_client_new(&px->http, &ho);
    if (rc < 0) {
        return rc;
    }
    struct cn_kinesis_client_opts ko = {.endpoint_url = px->base,
                                        .region = "us-east-1",
                                        .access_key_id = "AKIDFAULTPROXY",
                                        .secret_access_key = "secret",
                                        .max_conns = 4};
    rc = cn_kinesis_client_new(&px->kc, &ko);
    if (rc < 0) {
        fprintf(stderr, "kinesis-fault-proxy: Kinesis client: %s\n", cn_strerror(rc));
    }
    return rc;
}

static void close_all(struct proxy *px)
{
    cn_tcp_listener_close(px->listener);
    cn_kinesis_client_close(px->kc);
    cn_http_client_close(px->http);
    while (px->maps) {
        struct stream_map *m = px->maps;
        px->maps = m->next;
        cn__shardmap_free(m->map);
        free(m->stat_of);
        free(m);
    }
    free(px->shards);
}

static int run_until_signal(struct proxy *px)
{
    uv_signal_t sigint, sigterm;
    uv_signal_init(cn_loop(), &sigint);
    uv_signal_init(cn_loop(), &sigterm);
    sigint.data = sigterm.data = px;
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    struct cn_co *server = NULL;
    int rc = cn_group_new(&px->bg);
    rc = rc < 0 ? rc : cn_spawn(&server, serve_main, px, NULL);
    if (rc == 0) {
        printf("listening on %s:%d\n", px->o.host, cn_tcp_listener_port(px->listener));
        fflush(stdout);
        cn_event_wait(&px->stop, -1);
        cn_cancel(server);
        cn_join(server, NULL, -1);
    }
    if (px->bg) {
        cn_group_close(px->bg);
    }
    cn_uv_close((uv_handle_t *)&sigint);
    cn_uv_close((uv_handle_t *)&sigterm);
    return rc;
}

static int proxy_main(void *arg)
{
    struct proxy *px = arg;
    int rc = open_clients(px);
    if (rc == 0) {
        rc = cn_tcp_listen(&px->listener, px->o.host, px->o.port, NULL);
        if (rc < 0) {
            fprintf(stderr, "kinesis-fault-proxy: listen on %s:%d: %s\n", px->o.host, px->o.port,
                    cn_strerror(rc));
        }
    }
    if (rc == 0) {
        rc = run_until_signal(px);
    }
    if (rc == 0) {
        print_stats(px);
    }
    close_all(px);
    return rc;
}

int main(int argc, char **argv)
{
    static struct proxy px;
    int rc = parse_args(&px.o, argc, argv);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    signal(SIGPIPE, SIG_IGN);
    px.rng = px.o.seed;
    rc = cn_run(proxy_main, &px);
    if (rc < 0) {
        fprintf(stderr, "kinesis-fault-proxy: %s\n", cn_strerror(rc));
        return 1;
    }
    return 0;
}
