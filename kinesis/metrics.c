/* SPDX-License-Identifier: MIT */
/*
 * The producer's metrics outside its internals: latency histograms, the
 * Prometheus text of a snapshot, the one-line log summary and the
 * GET /metrics server. The snapshot itself (cn_kinesis_producer_metrics)
 * is taken by kinesis/producer.c; everything here only reads it.
 *
 * Histograms are fixed log2 buckets (250 us doubling) so that adding a
 * value, which the producer does once per record, is a division, a count
 * of leading zeros and four stores: no loop, no allocation.
 *
 * Text output goes through a small writer that keeps counting past the
 * end of the caller's buffer, so every formatter here returns the length
 * the whole text needs, like snprintf, and callers grow and retry once.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coronet/http.h"
#include "coronet/kinesis.h"

#define HIST_FIRST_BOUND_US 250u
#define HIST_LAST (CN_KINESIS_HIST_BUCKETS - 1) /* the +Inf bucket */

/* ---- histograms --------------------------------------------------------------------- */

uint64_t cn_kinesis_histogram_bound_us(int i)
{
    if (i < 0) {
        return 0;
    }
    if (i >= HIST_LAST) {
        return UINT64_MAX;
    }
    return (uint64_t)HIST_FIRST_BOUND_US << i;
}

/* The smallest i with us <= 250 * 2^i: with k = ceil(us / 250) - 1 that is
 * the bit length of k (k = 0 for every us <= 250, 0 included). */
static int bucket_of(uint64_t us)
{
    uint64_t k = us ? (us - 1) / HIST_FIRST_BOUND_US : 0;
    int i = k ? 64 - __builtin_clzll(k) : 0;
    return i < HIST_LAST ? i : HIST_LAST;
}

void cn_kinesis_histogram_add(struct cn_kinesis_histogram *h, uint64_t us)
{
    h->count++;
    h->sum_us += us;
    if (us > h->max_us) {
        h->max_us = us;
    }
    h->bucket[bucket_of(us)]++;
}

uint64_t cn_kinesis_histogram_quantile_us(const struct cn_kinesis_histogram *h, double q)
{
    if (h->count == 0) {
        return 0;
    }
    q = q < 0 ? 0 : q > 1 ? 1 : q;
    double rank = q * (double)h->count;
    uint64_t below = 0; /* values in the buckets before i */
    for (int i = 0; i < CN_KINESIS_HIST_BUCKETS; i++) {
        if (h->bucket[i] == 0) {
            continue;
        }
        if ((double)(below + h->bucket[i]) >= rank || i == HIST_LAST) {
            uint64_t lo = i > 0 ? cn_kinesis_histogram_bound_us(i - 1) : 0;
            uint64_t hi = cn_kinesis_histogram_bound_us(i);
            /* No value is above max_us: a tighter top for this bucket, and
             * the only finite one for the +Inf bucket. */
            hi = hi < h->max_us ? hi : h->max_us;
            if (hi <= lo) {
                return hi;
            }
            double frac = (rank - (double)below) / (double)h->bucket[i];
            frac = frac < 0 ? 0 : frac > 1 ? 1 : frac;
            return lo + (uint64_t)(frac * (double)(hi - lo) + 0.5);
        }
        below += h->bucket[i];
    }
    return h->max_us; /* buckets hold fewer values than count: a torn copy */
}

/* ---- snapshots ---------------------------------------------------------------------- */

void cn_kinesis_metrics_free(struct cn_kinesis_metrics *m)
{
    if (!m) {
        return;
    }
    free(m->streams);
    free(m->shards);
    free(m);
}

/* ---- a text writer that counts past its end ------------------------------------------ */

struct text {
    char *buf;
    size_t cap; /* bytes of buf, the NUL included */
    size_t len; /* bytes the whole text needs so far (may exceed cap) */
};

static void put_mem(struct text *t, const char *s, size_t n)
{
    if (t->len + 1 < t->cap) {
        size_t room = t->cap - 1 - t->len;
        memcpy(t->buf + t->len, s, n < room ? n : room);
    }
    t->len += n;
}

static void put_str(struct text *t, const char *s)
{
    put_mem(t, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void put_fmt(struct text *t, const char *fmt, ...)
{
    char tmp[64]; /* only numbers are formatted */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) {
        put_mem(t, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
    }
}

/* NUL-terminates what fits and returns the needed length. */
static size_t text_end(struct text *t)
{
    if (t->cap > 0) {
        t->buf[t->len < t->cap ? t->len : t->cap - 1] = '\0';
    }
    return t->len;
}

static void put_u64(struct text *t, uint64_t v)
{
    put_fmt(t, "%llu", (unsigned long long)v);
}

/* Microseconds as exact decimal seconds: 250 -> "0.00025", 2000000 -> "2". */
static void put_seconds(struct text *t, uint64_t us)
{
    char frac[8];
    snprintf(frac, sizeof frac, "%06u", (unsigned)(us % 1000000));
    size_t n = 6;
    while (n > 0 && frac[n - 1] == '0') {
        n--;
    }
    frac[n] = '\0';
    put_fmt(t, "%llu%s%s", (unsigned long long)(us / 1000000), n ? "." : "", frac);
}

/* A label value as the exposition format wants it: backslash, double
 * quote and line feed escaped, everything else (UTF-8 included) as is. */
static void put_label_value(struct text *t, const char *v)
{
    for (const char *run = v;; v++) {
        const char *esc = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
        if (!esc && *v) {
            continue;
        }
        put_mem(t, run, (size_t)(v - run));
        if (!*v) {
            return;
        }
        put_str(t, esc);
        run = v + 1;
    }
}

/* ---- Prometheus text format 0.0.4 ----------------------------------------------------- */

/* One counter or gauge family read from struct cn_kinesis_producer_counters. */
struct family {
    const char *name;
    const char *type;
    size_t offset; /* of the uint64_t in the counters */
    const char *help;
};

#define COUNTER(name, field, help)                                                                 \
    {                                                                                              \
        "coronet_kinesis_" name, "counter", offsetof(struct cn_kinesis_producer_counters, field),  \
            help                                                                                   \
    }
#define GAUGE(name, field, help)                                                                   \
    {                                                                                              \
        "coronet_kinesis_" name, "gauge", offsetof(struct cn_kinesis_producer_counters, field),    \
            help                                                                                   \
    }

static const struct family stream_families[] = {
    COUNTER("user_records_put_total", put, "User records accepted by put."),
    COUNTER("user_records_sent_total", sent, "User records sent in a request, once per attempt."),
    COUNTER("user_records_succeeded_total", succeeded, "User records stored (success outcome)."),
    COUNTER("user_records_failed_total", failed,
            "User records with a failure outcome, expired and closed included."),
    COUNTER("user_records_retried_total", retried,
            "User records put back into the pipeline after a retryable failure."),
    COUNTER("user_records_expired_total", expired,
            "User records failed because their time to live passed."),
    COUNTER("put_records_requests_total", requests, "PutRecords requests sent."),
    COUNTER("aggregates_total", aggregates, "KPL aggregates built (2 or more user records each)."),
    COUNTER("shard_map_loads_total", shard_map_loads, "ListShards rounds that built a shard map."),
    COUNTER("user_records_wrong_shard_total", wrong_shard,
            "User records stored on a shard other than the predicted one."),
    COUNTER("user_records_throttled_total", throttled,
            "User records in entries answered ProvisionedThroughputExceeded."),
    COUNTER("sent_bytes_total", bytes_sent,
            "Kinesis record bytes (data and key) sent, once per attempt."),
    COUNTER("records_rate_limited_total", limited,
            "Kinesis records that waited for the per-shard rate limiter."),
    GAUGE("user_records_outstanding", outstanding, "User records put and without an outcome."),
    GAUGE("user_records_outstanding_max", max_outstanding,
          "The most user records ever outstanding at once."),
};

/* Per shard: separate families (coronet_kinesis_shard_*), so summing a
 * stream family over its labels never counts a record twice. */
static const struct family shard_families[] = {
    COUNTER("shard_user_records_sent_total", sent,
            "User records sent to this shard (as predicted), once per attempt."),
    COUNTER("shard_user_records_succeeded_total", succeeded,
            "User records stored, by predicted shard."),
    COUNTER("shard_user_records_failed_total", failed,
            "User records with a failure outcome, by predicted shard."),
    COUNTER("shard_user_records_throttled_total", throttled,
            "User records answered ProvisionedThroughputExceeded, by predicted shard."),
    COUNTER("shard_sent_bytes_total", bytes_sent,
            "Kinesis record bytes (data and key) sent to this shard, once per attempt."),
};

static uint64_t counter_at(const struct cn_kinesis_producer_counters *c, size_t offset)
{
    uint64_t v;
    memcpy(&v, (const char *)c + offset, sizeof v);
    return v;
}

static void put_family_head(struct text *t, const char *name, const char *type, const char *help)
{
    put_str(t, "# HELP ");
    put_str(t, name);
    put_str(t, " ");
    put_str(t, help);
    put_str(t, "\n# TYPE ");
    put_str(t, name);
    put_str(t, " ");
    put_str(t, type);
    put_str(t, "\n");
}

/* name suffix{stream="S"[,shard="X"]: the labels stay open for le. */
static void put_series(struct text *t, const char *name, const char *suffix, const char *stream,
                       const char *shard)
{
    put_str(t, name);
    put_str(t, suffix);
    put_str(t, "{stream=\"");
    put_label_value(t, stream);
    if (shard) {
        put_str(t, "\",shard=\"");
        put_label_value(t, shard);
    }
    put_str(t, "\"");
}

static void put_sample(struct text *t, const struct family *fam,
                       const struct cn_kinesis_producer_counters *c, const char *stream,
                       const char *shard)
{
    put_series(t, fam->name, "", stream, shard);
    put_str(t, "} ");
    put_u64(t, counter_at(c, fam->offset));
    put_str(t, "\n");
}

static void put_stream_families(struct text *t, const struct cn_kinesis_metrics *m)
{
    for (size_t f = 0; f < sizeof stream_families / sizeof stream_families[0]; f++) {
        const struct family *fam = &stream_families[f];
        put_family_head(t, fam->name, fam->type, fam->help);
        for (size_t i = 0; i < m->nstreams; i++) {
            put_sample(t, fam, &m->streams[i].c, m->streams[i].stream, NULL);
        }
    }
}

static void put_shard_families(struct text *t, const struct cn_kinesis_metrics *m)
{
    for (size_t f = 0; f < sizeof shard_families / sizeof shard_families[0]; f++) {
        const struct family *fam = &shard_families[f];
        put_family_head(t, fam->name, fam->type, fam->help);
        for (size_t i = 0; i < m->nshards; i++) {
            put_sample(t, fam, &m->shards[i].c, m->shards[i].stream, m->shards[i].shard_id);
        }
    }
    const char *open = "coronet_kinesis_shard_open";
    put_family_head(t, open, "gauge", "1 while the shard is in the current shard map, else 0.");
    for (size_t i = 0; i < m->nshards; i++) {
        put_series(t, open, "", m->shards[i].stream, m->shards[i].shard_id);
        put_str(t, m->shards[i].open ? "} 1\n" : "} 0\n");
    }
}

/* One stream's histogram: cumulative _bucket lines ending with +Inf, then
 * _sum and _count. +Inf and _count both come from the buckets, so they
 * agree by construction, as the format requires. */
static void put_histogram(struct text *t, const char *name, const char *stream,
                          const struct cn_kinesis_histogram *h)
{
    uint64_t cumulative = 0;
    for (int i = 0; i < CN_KINESIS_HIST_BUCKETS; i++) {
        cumulative += h->bucket[i];
        put_series(t, name, "_bucket", stream, NULL);
        if (i < HIST_LAST) {
            put_str(t, ",le=\"");
            put_seconds(t, cn_kinesis_histogram_bound_us(i));
            put_str(t, "\"} ");
        } else {
            put_str(t, ",le=\"+Inf\"} ");
        }
        put_u64(t, cumulative);
        put_str(t, "\n");
    }
    put_series(t, name, "_sum", stream, NULL);
    put_str(t, "} ");
    put_seconds(t, h->sum_us);
    put_str(t, "\n");
    put_series(t, name, "_count", stream, NULL);
    put_str(t, "} ");
    put_u64(t, cumulative);
    put_str(t, "\n");
}

static void put_histogram_families(struct text *t, const struct cn_kinesis_metrics *m)
{
    const char *p2o = "coronet_kinesis_put_to_outcome_seconds";
    put_family_head(t, p2o, "histogram",
                    "Time from put to the outcome of a user record, success or failure.");
    for (size_t i = 0; i < m->nstreams; i++) {
        put_histogram(t, p2o, m->streams[i].stream, &m->streams[i].put_to_outcome);
    }
    const char *rtt = "coronet_kinesis_request_rtt_seconds";
    put_family_head(t, rtt, "histogram", "Time from sending a PutRecords request to its answer.");
    for (size_t i = 0; i < m->nstreams; i++) {
        put_histogram(t, rtt, m->streams[i].stream, &m->streams[i].request_rtt);
    }
}

size_t cn_kinesis_metrics_prometheus(const struct cn_kinesis_metrics *m, char *buf, size_t cap)
{
    struct text t = {.buf = buf, .cap = cap};
    put_stream_families(&t, m);
    put_shard_families(&t, m);
    put_histogram_families(&t, m);
    return text_end(&t);
}

/* ---- the log line ---------------------------------------------------------------------- */

/* 1234567 -> "1,234,567" */
static void put_thousands(struct text *t, uint64_t v)
{
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0) {
            put_str(t, ",");
        }
        put_mem(t, &digits[i], 1);
    }
}

static uint64_t delta(uint64_t now, uint64_t before)
{
    return now > before ? now - before : 0; /* a prev from another producer: no wrap */
}

/* The histogram of what happened since prev (cumulative counts subtract;
 * max_us cannot, so the current one stays as a cap). */
static struct cn_kinesis_histogram histogram_since(const struct cn_kinesis_histogram *now,
                                                   const struct cn_kinesis_histogram *before)
{
    struct cn_kinesis_histogram d = {.max_us = now->max_us};
    for (int i = 0; i < CN_KINESIS_HIST_BUCKETS; i++) {
        d.bucket[i] = delta(now->bucket[i], before->bucket[i]);
        d.count += d.bucket[i];
    }
    d.sum_us = delta(now->sum_us, before->sum_us);
    return d;
}

static void put_rate(struct text *t, uint64_t n, int64_t ms, const char *unit)
{
    uint64_t per_s = ms > 0 ? (uint64_t)((double)n * 1000.0 / (double)ms + 0.5) : 0;
    put_thousands(t, per_s);
    put_str(t, unit);
}

static void put_ms(struct text *t, const struct cn_kinesis_histogram *h, double q)
{
    if (h->count == 0) {
        put_str(t, "-");
        return;
    }
    put_fmt(t, "%.1f ms", (double)cn_kinesis_histogram_quantile_us(h, q) / 1000.0);
}

size_t cn_kinesis_metrics_log_line(const struct cn_kinesis_metrics *m,
                                   const struct cn_kinesis_metrics *prev, char *buf, size_t cap)
{
    static const struct cn_kinesis_producer_counters zero;
    const struct cn_kinesis_producer_counters *c = &m->total;
    const struct cn_kinesis_producer_counters *b = prev ? &prev->total : &zero;
    int64_t ms = prev ? m->at_ms - prev->at_ms : m->uptime_ms;
    struct cn_kinesis_histogram lat = m->put_to_outcome;
    if (prev) {
        lat = histogram_since(&m->put_to_outcome, &prev->put_to_outcome);
    }
    struct text t = {.buf = buf, .cap = cap};
    put_str(&t, "kinesis: ");
    put_rate(&t, delta(c->put, b->put), ms, " put/s, ");
    put_rate(&t, delta(c->succeeded, b->succeeded), ms, " ok/s, ");
    put_thousands(&t, c->outstanding);
    put_str(&t, " outstanding, ");
    put_thousands(&t, c->succeeded);
    put_str(&t, " ok, ");
    put_thousands(&t, c->failed);
    put_str(&t, " failed, ");
    put_thousands(&t, c->retried);
    put_str(&t, " retried, ");
    put_thousands(&t, c->throttled);
    put_str(&t, " throttled, put->outcome p50 ");
    put_ms(&t, &lat, 0.50);
    put_str(&t, " p99 ");
    put_ms(&t, &lat, 0.99);
    return text_end(&t);
}

/* ---- GET /metrics ------------------------------------------------------------------------ */

#define SCRAPE_WRITE_MS 10000    /* a scraper that does not read its answer is dropped */
#define SCRAPE_FIRST_GUESS 16384 /* most producers' text fits: one render */

static int respond_text(struct cn_http_server_conn *c, int status, const char *content_type,
                        const struct cn_http_header *extra, const char *body, size_t len)
{
    struct cn_http_header h[2] = {cn_http_header_str("Content-Type", content_type)};
    size_t n = 1;
    if (extra) {
        h[n++] = *extra;
    }
    return cn_http_server_respond(c, status, h, n, body, len, cn_now() + SCRAPE_WRITE_MS);
}

/* The text of a fresh snapshot in a heap buffer (*text, *len); renders
 * twice only when the first guess was short. */
static int render_snapshot(const struct cn_kinesis_producer *p, char **text, size_t *len)
{
    struct cn_kinesis_metrics *m;
    int rc = cn_kinesis_producer_metrics(p, &m);
    if (rc < 0) {
        return rc;
    }
    size_t cap = SCRAPE_FIRST_GUESS;
    char *buf = malloc(cap);
    size_t need = buf ? cn_kinesis_metrics_prometheus(m, buf, cap) : 0;
    if (buf && need >= cap) {
        free(buf);
        cap = need + 1;
        buf = malloc(cap);
        if (buf) {
            cn_kinesis_metrics_prometheus(m, buf, cap);
        }
    }
    cn_kinesis_metrics_free(m);
    if (!buf) {
        return -ENOMEM;
    }
    *text = buf;
    *len = need;
    return 0;
}

static bool path_is(const struct cn_http_request *req, const char *path)
{
    return req->path_len == strlen(path) && memcmp(req->path, path, req->path_len) == 0;
}

static int scrape(struct cn_http_server_conn *c, const struct cn_http_request *req, void *arg)
{
    static const char plain[] = "text/plain; charset=utf-8";
    if (!path_is(req, "/metrics")) {
        return respond_text(c, 404, plain, NULL, "not found\n", 10);
    }
    /* HEAD as well: cn_http_server_respond leaves the body out for it. */
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        struct cn_http_header allow = cn_http_header_str("Allow", "GET, HEAD");
        return respond_text(c, 405, plain, &allow, "method not allowed\n", 19);
    }
    char *text;
    size_t len;
    int rc = render_snapshot(arg, &text, &len);
    if (rc < 0) {
        return respond_text(c, 500, plain, NULL, "no snapshot\n", 12);
    }
    rc = respond_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, text, len);
    free(text);
    return rc;
}

int cn_kinesis_metrics_serve(struct cn_kinesis_producer *p, struct cn_tcp_listener *l)
{
    /* cn_http_serve runs the accept loop, one coroutine per connection in a
     * group it closes on the way out, so no scrape outlives this call. */
    int rc = cn_http_serve(l, scrape, p, NULL);
    return rc == -ECANCELED || rc == CN_ECLOSED ? 0 : rc;
}
