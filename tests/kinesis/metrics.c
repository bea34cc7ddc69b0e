/* SPDX-License-Identifier: MIT */
/*
 * The producer's metrics (kinesis/metrics.c):
 *   - histogram buckets at their boundaries, against a plain loop over the
 *     bounds, and quantiles against the sorted values themselves (each
 *     estimate must fall in the bucket of the true value);
 *   - the Prometheus text of a hand-built snapshot, read back by an
 *     independent parser (python3-prometheus-client's
 *     text_string_to_metric_families): every counter, gauge and histogram
 *     sample, with label values that need escaping;
 *   - snprintf-like truncation and the log line;
 *   - GET /metrics of a live producer on kinesalite, scraped with curl.
 */
#include "test.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <unistd.h>

#include "emulator.h"

#define PYTHON "/usr/bin/python3" /* Debian's, where python3-prometheus-client lives */
#define LONG_MS 60000

static int64_t soon(void)
{
    return cn_now() + LONG_MS;
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Spread over every bucket: log-uniform from 1 us to ~2,000 s (past the
 * last finite bound), with some zeros and exact bounds mixed in. */
static uint64_t random_latency_us(void)
{
    uint64_t r = rnd();
    if (r % 50 == 0) {
        return 0;
    }
    if (r % 50 == 1) {
        return cn_kinesis_histogram_bound_us((int)(rnd() % (CN_KINESIS_HIST_BUCKETS - 1)));
    }
    double u = (double)(rnd() >> 11) / 9007199254740992.0; /* [0, 1) */
    return (uint64_t)exp(u * log(2e9));
}

/* The reference: the first bucket whose bound is >= us, by a plain loop. */
static int bucket_by_loop(uint64_t us)
{
    int i = 0;
    while (us > cn_kinesis_histogram_bound_us(i)) {
        i++;
    }
    return i;
}

/* Which bucket one add landed in (the only one that changed). */
static int bucket_after_add(uint64_t us)
{
    struct cn_kinesis_histogram h = {0};
    cn_kinesis_histogram_add(&h, us);
    int found = -1;
    for (int i = 0; i < CN_KINESIS_HIST_BUCKETS; i++) {
        if (h.bucket[i]) {
            CN_ASSERT_EQ(found, -1);
            CN_ASSERT_EQ(h.bucket[i], 1);
            found = i;
        }
    }
    CN_ASSERT_EQ(h.count, 1);
    CN_ASSERT_EQ(h.sum_us, us);
    CN_ASSERT_EQ(h.max_us, us);
    return found;
}

/* ==== histograms ================================================================= */

static void histogram_buckets_at_boundaries(void)
{
    const int last = CN_KINESIS_HIST_BUCKETS - 1;
    CN_ASSERT_EQ(cn_kinesis_histogram_bound_us(0), 250);
    CN_ASSERT_EQ(cn_kinesis_histogram_bound_us(1), 500);
    CN_ASSERT_EQ(cn_kinesis_histogram_bound_us(10), 256000);
    CN_ASSERT_EQ(cn_kinesis_histogram_bound_us(last - 1), 250ull << (last - 1));
    CN_ASSERT(cn_kinesis_histogram_bound_us(last) == UINT64_MAX);

    CN_ASSERT_EQ(bucket_after_add(0), 0);
    CN_ASSERT_EQ(bucket_after_add(1), 0);
    CN_ASSERT_EQ(bucket_after_add(250), 0);
    CN_ASSERT_EQ(bucket_after_add(251), 1);
    CN_ASSERT_EQ(bucket_after_add(500), 1);
    CN_ASSERT_EQ(bucket_after_add(501), 2);
    CN_ASSERT_EQ(bucket_after_add(1000), 2);
    CN_ASSERT_EQ(bucket_after_add(1001), 3);
    uint64_t top = cn_kinesis_histogram_bound_us(last - 1); /* ~1,049 s */
    CN_ASSERT_EQ(bucket_after_add(top), last - 1);
    CN_ASSERT_EQ(bucket_after_add(top + 1), last);
    CN_ASSERT_EQ(bucket_after_add(UINT64_MAX / 3), last);
    CN_ASSERT_EQ(bucket_after_add(UINT64_MAX), last);

    /* Every bound, one either side, and random values: the bit trick agrees
     * with the loop. */
    for (int i = 0; i < last; i++) {
        uint64_t b = cn_kinesis_histogram_bound_us(i);
        CN_ASSERT_EQ(bucket_after_add(b - 1), bucket_by_loop(b - 1));
        CN_ASSERT_EQ(bucket_after_add(b), i);
        CN_ASSERT_EQ(bucket_after_add(b + 1), i + 1);
    }
    for (int k = 0; k < 100000; k++) {
        uint64_t us = rnd() >> (rnd() % 64);
        CN_ASSERT_EQ(bucket_after_add(us), bucket_by_loop(us));
    }

    /* count, sum and max over several adds */
    struct cn_kinesis_histogram h = {0};
    cn_kinesis_histogram_add(&h, 0);
    cn_kinesis_histogram_add(&h, 251);
    cn_kinesis_histogram_add(&h, 700);
    cn_kinesis_histogram_add(&h, 300);
    CN_ASSERT_EQ(h.count, 4);
    CN_ASSERT_EQ(h.sum_us, 1251);
    CN_ASSERT_EQ(h.max_us, 700);
    CN_ASSERT_EQ(h.bucket[0], 1);
    CN_ASSERT_EQ(h.bucket[1], 2);
    CN_ASSERT_EQ(h.bucket[2], 1);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The estimate must lie in the bucket holding the true (nearest-rank)
 * value: between the bucket's lower and upper bound, and never above the
 * maximum. That is the resolution the histogram promises. */
static void check_quantile(const struct cn_kinesis_histogram *h, const uint64_t *sorted, size_t n,
                           double q)
{
    size_t rank = (size_t)ceil(q * (double)n);
    uint64_t truth = sorted[rank > 0 ? rank - 1 : 0];
    int b = bucket_by_loop(truth);
    uint64_t lo = b > 0 ? cn_kinesis_histogram_bound_us(b - 1) : 0;
    uint64_t hi = cn_kinesis_histogram_bound_us(b);
    uint64_t est = cn_kinesis_histogram_quantile_us(h, q);
    if (est < lo || est > hi || est > h->max_us) {
        fprintf(stderr, "q %.4f n %zu: estimate %llu, true %llu in bucket %d [%llu, %llu]\n", q, n,
                (unsigned long long)est, (unsigned long long)truth, b, (unsigned long long)lo,
                (unsigned long long)hi);
    }
    CN_ASSERT(est >= lo); /* unsigned: hi may be UINT64_MAX */
    CN_ASSERT(est <= hi);
    CN_ASSERT(est <= h->max_us);
}

static void quantiles_against_sorted(size_t n)
{
    uint64_t *v = malloc(n * sizeof *v);
    CN_ASSERT(v != NULL);
    struct cn_kinesis_histogram h = {0};
    for (size_t i = 0; i < n; i++) {
        v[i] = random_latency_us();
        cn_kinesis_histogram_add(&h, v[i]);
    }
    qsort(v, n, sizeof *v, cmp_u64);
    static const double qs[] = {0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1};
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        check_quantile(&h, v, n, qs[k]);
    }
    for (int k = 0; k < 200; k++) {
        check_quantile(&h, v, n, (double)(rnd() % 100001) / 100000.0);
    }
    CN_ASSERT_EQ(cn_kinesis_histogram_quantile_us(&h, 1), v[n - 1]); /* the max itself */
    free(v);
}

static void histogram_quantiles_fall_in_the_true_values_bucket(void)
{
    struct cn_kinesis_histogram empty = {0};
    CN_ASSERT_EQ(cn_kinesis_histogram_quantile_us(&empty, 0.5), 0);
    CN_ASSERT_EQ(cn_kinesis_histogram_quantile_us(&empty, 1), 0);

    struct cn_kinesis_histogram one = {0};
    cn_kinesis_histogram_add(&one, 1234);
    CN_ASSERT_EQ(cn_kinesis_histogram_quantile_us(&one, 1), 1234); /* capped at max */
    CN_ASSERT_GE(cn_kinesis_histogram_quantile_us(&one, 0.5), 1000);
    CN_ASSERT_LE(cn_kinesis_histogram_quantile_us(&one, 0.5), 1234);

    /* past the last finite bound: the +Inf bucket reports up to the max */
    struct cn_kinesis_histogram inf = {0};
    cn_kinesis_histogram_add(&inf, 3000000000ull);
    CN_ASSERT_EQ(cn_kinesis_histogram_quantile_us(&inf, 1), 3000000000ull);

    for (size_t n = 1; n <= 100; n++) {
        quantiles_against_sorted(n);
    }
    quantiles_against_sorted(1000);
    quantiles_against_sorted(100000);
}

/* ==== a hand-built snapshot ========================================================== */

/* Label values with every character the format escapes. */
#define ODD_STREAM "we\"ird\\name\nline"

/* What the text must hold: sample name and the counter it reads. */
struct expect {
    const char *sample;
    const char *type;
    size_t offset;
};

#define C(name, field)                                                                             \
    {                                                                                              \
        "coronet_kinesis_" name, "counter", offsetof(struct cn_kinesis_producer_counters, field)   \
    }
#define G(name, field)                                                                             \
    {                                                                                              \
        "coronet_kinesis_" name, "gauge", offsetof(struct cn_kinesis_producer_counters, field)     \
    }

static const struct expect stream_expect[] = {
    C("user_records_put_total", put),
    C("user_records_sent_total", sent),
    C("user_records_succeeded_total", succeeded),
    C("user_records_failed_total", failed),
    C("user_records_retried_total", retried),
    C("user_records_expired_total", expired),
    C("put_records_requests_total", requests),
    C("aggregates_total", aggregates),
    C("shard_map_loads_total", shard_map_loads),
    C("user_records_wrong_shard_total", wrong_shard),
    C("user_records_throttled_total", throttled),
    C("sent_bytes_total", bytes_sent),
    C("records_rate_limited_total", limited),
    G("user_records_outstanding", outstanding),
    G("user_records_outstanding_max", max_outstanding),
};

static const struct expect shard_expect[] = {
    C("shard_user_records_sent_total", sent),
    C("shard_user_records_succeeded_total", succeeded),
    C("shard_user_records_failed_total", failed),
    C("shard_user_records_throttled_total", throttled),
    C("shard_sent_bytes_total", bytes_sent),
};

#define NSTREAM_EXPECT (sizeof stream_expect / sizeof stream_expect[0])
#define NSHARD_EXPECT (sizeof shard_expect / sizeof shard_expect[0])
#define NCOUNTERS (sizeof(struct cn_kinesis_producer_counters) / sizeof(uint64_t))

static uint64_t counter_at(const struct cn_kinesis_producer_counters *c, size_t offset)
{
    uint64_t v;
    memcpy(&v, (const char *)c + offset, sizeof v);
    return v;
}

/* Distinct values everywhere, so a sample read from the wrong field or
 * the wrong stream fails. */
static void fill_counters(struct cn_kinesis_producer_counters *c, uint64_t base)
{
    uint64_t *f = (uint64_t *)c;
    for (size_t i = 0; i < NCOUNTERS; i++) {
        f[i] = base + 7 * i + (rnd() % 5) * 1000000;
    }
}

static struct cn_kinesis_metrics *hand_built(void)
{
    struct cn_kinesis_metrics *m = calloc(1, sizeof *m);
    CN_ASSERT(m != NULL);
    m->at_ms = 1000000;
    m->uptime_ms = 60000;
    m->nstreams = 2;
    m->streams = calloc(2, sizeof *m->streams);
    m->nshards = 3;
    m->shards = calloc(3, sizeof *m->shards);
    CN_ASSERT(m->streams && m->shards);
    snprintf(m->streams[0].stream, sizeof m->streams[0].stream, "orders");
    snprintf(m->streams[1].stream, sizeof m->streams[1].stream, "%s", ODD_STREAM);
    for (size_t s = 0; s < 2; s++) {
        fill_counters(&m->streams[s].c, 100 + 1000 * s);
        for (int k = 0; k < 500 * (int)(s + 1); k++) {
            uint64_t us = random_latency_us();
            cn_kinesis_histogram_add(&m->streams[s].put_to_outcome, us);
            cn_kinesis_histogram_add(&m->put_to_outcome, us);
            us = random_latency_us() / 1000;
            cn_kinesis_histogram_add(&m->streams[s].request_rtt, us);
            cn_kinesis_histogram_add(&m->request_rtt, us);
        }
    }
    static const char *const shard_stream[] = {"orders", "orders", ODD_STREAM};
    static const char *const shard_id[] = {"shardId-000000000000", "shardId-000000000001",
                                           "shardId-00000000\"7\\"};
    for (size_t i = 0; i < 3; i++) {
        struct cn_kinesis_shard_metrics *sh = &m->shards[i];
        snprintf(sh->stream, sizeof sh->stream, "%s", shard_stream[i]);
        snprintf(sh->shard_id, sizeof sh->shard_id, "%s", shard_id[i]);
        sh->open = i != 1;
        fill_counters(&sh->c, 5000 + 1000 * i);
    }
    fill_counters(&m->total, 9000);
    return m;
}

static char *render(const struct cn_kinesis_metrics *m)
{
    size_t need = cn_kinesis_metrics_prometheus(m, NULL, 0);
    char *text = malloc(need + 1);
    CN_ASSERT(text != NULL);
    CN_ASSERT_EQ(cn_kinesis_metrics_prometheus(m, text, need + 1), need);
    CN_ASSERT_EQ(strlen(text), need);
    return text;
}

/* ---- the independent parser ----------------------------------------------------------- */

static const char parser_py[] =
    "import json, sys\n"
    "from prometheus_client.parser import text_string_to_metric_families\n"
    "out = []\n"
    "for f in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
    "    out.append({'name': f.name, 'type': f.type, 'help': f.documentation,\n"
    "                'samples': [{'name': s.name, 'labels': s.labels, 'value': s.value}\n"
    "                            for s in f.samples]})\n"
    "json.dump(out, sys.stdout)\n";

static void require_parser(void)
{
    if (system(PYTHON " -c 'import prometheus_client' >/dev/null 2>&1") != 0) {
        CN_TEST_SKIP_BECAUSE("%s has no prometheus_client (apt python3-prometheus-client)", PYTHON);
    }
}

static void write_temp(char *path, const char *text)
{
    int fd = mkstemp(path);
    CN_ASSERT_GE(fd, 0);
    size_t len = strlen(text);
    CN_ASSERT_EQ(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* The families prometheus_client reads from text, as a JSON array. Blocks
 * the thread: call it outside coroutines or through cn_offload. */
static json_t *parse_exposition(const char *text)
{
    char script[] = "/tmp/cn-prom-py-XXXXXX", input[] = "/tmp/cn-prom-txt-XXXXXX", cmd[256];
    write_temp(script, parser_py);
    write_temp(input, text);
    snprintf(cmd, sizeof cmd, "%s %s %s", PYTHON, script, input);
    FILE *p = popen(cmd, "r");
    CN_ASSERT(p != NULL);
    json_error_t err;
    json_t *doc = json_loadf(p, 0, &err);
    int status = pclose(p);
    unlink(script);
    unlink(input);
    if (!doc || status != 0) {
        fprintf(stderr, "parser failed (status %d): %s\n--- text\n%s", status, err.text, text);
    }
    CN_ASSERT(doc != NULL);
    CN_ASSERT_EQ(status, 0);
    CN_ASSERT(json_is_array(doc));
    return doc;
}

static bool label_is(json_t *labels, const char *name, const char *want)
{
    json_t *v = json_object_get(labels, name);
    return want ? v && strcmp(json_string_value(v), want) == 0 : v == NULL;
}

/* The one sample called name with these labels (NULL: must be absent). */
static json_t *find_sample(json_t *doc, const char *name, const char *stream, const char *shard,
                           const char *le, const char **type)
{
    json_t *found = NULL, *fam, *s;
    size_t i, k;
    json_array_foreach(doc, i, fam)
    {
        json_array_foreach(json_object_get(fam, "samples"), k, s)
        {
            json_t *labels = json_object_get(s, "labels");
            if (strcmp(json_string_value(json_object_get(s, "name")), name) != 0 ||
                !label_is(labels, "stream", stream) || !label_is(labels, "shard", shard) ||
                !label_is(labels, "le", le)) {
                continue;
            }
            if (found) {
                fprintf(stderr, "two samples %s{stream=%s,shard=%s,le=%s}\n", name, stream,
                        shard ? shard : "-", le ? le : "-");
            }
            CN_ASSERT(found == NULL);
            found = s;
            if (type) {
                *type = json_string_value(json_object_get(fam, "type"));
            }
            CN_ASSERT(json_string_length(json_object_get(fam, "help")) > 0);
        }
    }
    if (!found) {
        fprintf(stderr, "no sample %s{stream=%s,shard=%s,le=%s}\n", name, stream,
                shard ? shard : "-", le ? le : "-");
    }
    CN_ASSERT(found != NULL);
    return found;
}

static double sample_value(json_t *doc, const char *name, const char *stream, const char *shard,
                           const char *le, const char **type)
{
    return json_number_value(
        json_object_get(find_sample(doc, name, stream, shard, le, type), "value"));
}

static size_t count_samples(json_t *doc)
{
    size_t n = 0, i;
    json_t *fam;
    json_array_foreach(doc, i, fam)
    {
        n += json_array_size(json_object_get(fam, "samples"));
    }
    return n;
}

static void check_counters(json_t *doc, const struct expect *e, size_t ne,
                           const struct cn_kinesis_producer_counters *c, const char *stream,
                           const char *shard)
{
    for (size_t k = 0; k < ne; k++) {
        const char *type;
        double v = sample_value(doc, e[k].sample, stream, shard, NULL, &type);
        CN_ASSERT_STREQ(type, e[k].type);
        CN_ASSERT_EQ((uint64_t)v, counter_at(c, e[k].offset));
    }
}

/* The le label of the stream's bucket whose bound is `want` seconds, as
 * written (the parser keeps label values as text). */
static void find_le(json_t *doc, const char *sample, const char *stream, double want, char *le,
                    size_t size)
{
    json_t *fam, *s;
    size_t a, b;
    le[0] = '\0';
    json_array_foreach(doc, a, fam)
    {
        json_array_foreach(json_object_get(fam, "samples"), b, s)
        {
            json_t *l = json_object_get(s, "labels");
            const char *v = json_string_value(json_object_get(l, "le"));
            if (v && label_is(l, "stream", stream) && strtod(v, NULL) == want &&
                strcmp(json_string_value(json_object_get(s, "name")), sample) == 0) {
                snprintf(le, size, "%s", v);
            }
        }
    }
    if (!le[0]) {
        fprintf(stderr, "no %s{stream=%s} with le %g\n", sample, stream, want);
    }
    CN_ASSERT(le[0] != '\0');
}

/* Buckets cumulative, le the bound in seconds, +Inf = _count, _sum. */
static void check_histogram(json_t *doc, const char *name, const char *stream,
                            const struct cn_kinesis_histogram *h)
{
    char sample[128], le[32];
    const char *type;
    uint64_t cumulative = 0;
    double prev = -1;
    snprintf(sample, sizeof sample, "%s_bucket", name);
    for (int i = 0; i < CN_KINESIS_HIST_BUCKETS; i++) {
        cumulative += h->bucket[i];
        if (i == CN_KINESIS_HIST_BUCKETS - 1) {
            snprintf(le, sizeof le, "+Inf");
        } else {
            find_le(doc, sample, stream, (double)cn_kinesis_histogram_bound_us(i) / 1e6, le,
                    sizeof le);
        }
        double v = sample_value(doc, sample, stream, NULL, le, &type);
        CN_ASSERT_STREQ(type, "histogram");
        CN_ASSERT_EQ((uint64_t)v, cumulative);
        CN_ASSERT(v >= prev);
        prev = v;
    }
    CN_ASSERT_EQ(cumulative, h->count);
    snprintf(sample, sizeof sample, "%s_count", name);
    CN_ASSERT_EQ((uint64_t)sample_value(doc, sample, stream, NULL, NULL, NULL), cumulative);
    snprintf(sample, sizeof sample, "%s_sum", name);
    double sum = sample_value(doc, sample, stream, NULL, NULL, NULL);
    CN_ASSERT(fabs(sum - (double)h->sum_us / 1e6) <= 1e-9 * (1 + (double)h->sum_us / 1e6));
}

static void prometheus_text_reads_back_with_prometheus_client(void)
{
    require_parser();
    struct cn_kinesis_metrics *m = hand_built();
    char *text = render(m);
    json_t *doc = parse_exposition(text);
    for (size_t s = 0; s < m->nstreams; s++) {
        const struct cn_kinesis_stream_metrics *st = &m->streams[s];
        check_counters(doc, stream_expect, NSTREAM_EXPECT, &st->c, st->stream, NULL);
        check_histogram(doc, "coronet_kinesis_put_to_outcome_seconds", st->stream,
                        &st->put_to_outcome);
        check_histogram(doc, "coronet_kinesis_request_rtt_seconds", st->stream, &st->request_rtt);
    }
    for (size_t i = 0; i < m->nshards; i++) {
        const struct cn_kinesis_shard_metrics *sh = &m->shards[i];
        check_counters(doc, shard_expect, NSHARD_EXPECT, &sh->c, sh->stream, sh->shard_id);
        const char *type;
        double open =
            sample_value(doc, "coronet_kinesis_shard_open", sh->stream, sh->shard_id, NULL, &type);
        CN_ASSERT_STREQ(type, "gauge");
        CN_ASSERT_EQ((int)open, sh->open);
    }
    /* nothing else: per stream the counters and 2 histograms (buckets, sum,
     * count), per shard its counters and open */
    size_t want = m->nstreams * (NSTREAM_EXPECT + 2 * (CN_KINESIS_HIST_BUCKETS + 2)) +
                  m->nshards * (NSHARD_EXPECT + 1);
    CN_ASSERT_EQ(count_samples(doc), want);
    /* every family has one HELP and one TYPE line */
    CN_ASSERT(strstr(text, "# TYPE coronet_kinesis_put_to_outcome_seconds histogram\n") != NULL);
    CN_ASSERT(strstr(text, "# HELP coronet_kinesis_user_records_succeeded_total ") != NULL);
    json_decref(doc);
    free(text);
    cn_kinesis_metrics_free(m);
}

/* Escapes as written, without a parser. */
static void prometheus_escapes_label_values(void)
{
    struct cn_kinesis_metrics *m = hand_built();
    char *text = render(m);
    CN_ASSERT(strstr(text,
                     "coronet_kinesis_user_records_put_total{stream=\"we\\\"ird\\\\name\\nline"
                     "\"} ") != NULL);
    CN_ASSERT(strstr(text, ",shard=\"shardId-00000000\\\"7\\\\\"} ") != NULL);
    CN_ASSERT(strstr(text, "coronet_kinesis_put_to_outcome_seconds_bucket{stream=\"orders\","
                           "le=\"0.00025\"} ") != NULL);
    CN_ASSERT(strstr(text, "le=\"1048.576\"} ") != NULL);
    CN_ASSERT(strstr(text, "le=\"+Inf\"} ") != NULL);
    /* no raw newline inside a sample line: every line is a comment or a sample */
    for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
        CN_ASSERT(*line == '#' || strncmp(line, "coronet_kinesis_", 16) == 0);
    }
    free(text);
    cn_kinesis_metrics_free(m);
}

static void prometheus_truncates_like_snprintf(void)
{
    struct cn_kinesis_metrics *m = hand_built();
    char *full = render(m);
    size_t need = strlen(full);
    CN_ASSERT_GT(need, 1000);
    CN_ASSERT_EQ(cn_kinesis_metrics_prometheus(m, NULL, 0), need);
    char *buf = malloc(need + 16);
    CN_ASSERT(buf != NULL);
    size_t caps[] = {1, 2, 10, 100, need / 2, need - 1, need, need + 1};
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        size_t cap = caps[k];
        memset(buf, 'Z', need + 16);
        CN_ASSERT_EQ(cn_kinesis_metrics_prometheus(m, buf, cap), need);
        size_t kept = cap - 1 < need ? cap - 1 : need;
        CN_ASSERT_EQ(buf[kept], '\0');
        CN_ASSERT_EQ(strlen(buf), kept);
        CN_ASSERT_MEMEQ(buf, full, kept);
        CN_ASSERT_EQ(buf[cap], 'Z'); /* nothing past cap */
    }
    /* no streams at all: still valid text (HELP/TYPE only), no crash */
    struct cn_kinesis_metrics none = {0};
    size_t n = cn_kinesis_metrics_prometheus(&none, buf, need + 16);
    CN_ASSERT_GT(n, 0);
    CN_ASSERT(strstr(buf, "{") == NULL);
    free(buf);
    free(full);
    cn_kinesis_metrics_free(m);
    cn_kinesis_metrics_free(NULL);
}

/* ==== the log line ================================================================== */

static void log_line_rates_since_start_and_since_prev(void)
{
    struct cn_kinesis_metrics m = {.at_ms = 500000, .uptime_ms = 2000};
    m.total.put = 24690;
    m.total.succeeded = 1234567;
    m.total.failed = 3;
    m.total.retried = 12;
    m.total.outstanding = 1000;
    /* 100 at 1 ms, 100 at 64 ms: p50 is the top of the 1 ms bucket, p99
     * interpolates 98% into (32 ms, 64 ms] */
    struct cn_kinesis_metrics prev = {.at_ms = 499500, .uptime_ms = 1500};
    for (int i = 0; i < 100; i++) {
        cn_kinesis_histogram_add(&m.put_to_outcome, 1000);
        cn_kinesis_histogram_add(&prev.put_to_outcome, 1000);
    }
    for (int i = 0; i < 100; i++) {
        cn_kinesis_histogram_add(&m.put_to_outcome, 64000);
    }
    char line[256];
    size_t n = cn_kinesis_metrics_log_line(&m, NULL, line, sizeof line);
    CN_ASSERT_STREQ(line, "kinesis: 12,345 put/s, 617,284 ok/s, 1,000 outstanding, 1,234,567 ok, "
                          "3 failed, 12 retried, 0 throttled, put->outcome p50 1.0 ms p99 63.4 ms");
    CN_ASSERT_EQ(n, strlen(line));

    /* since prev: 1,000 put and 500 ok in 500 ms; latency of the interval
     * only (the 100 at 64 ms) */
    prev.total = m.total;
    prev.total.put -= 1000;
    prev.total.succeeded -= 500;
    n = cn_kinesis_metrics_log_line(&m, &prev, line, sizeof line);
    CN_ASSERT_STREQ(line,
                    "kinesis: 2,000 put/s, 1,000 ok/s, 1,000 outstanding, 1,234,567 ok, "
                    "3 failed, 12 retried, 0 throttled, put->outcome p50 48.0 ms p99 63.7 ms");

    /* nothing yet: no rate, no latency */
    struct cn_kinesis_metrics zero = {0};
    cn_kinesis_metrics_log_line(&zero, NULL, line, sizeof line);
    CN_ASSERT_STREQ(line, "kinesis: 0 put/s, 0 ok/s, 0 outstanding, 0 ok, 0 failed, 0 retried, "
                          "0 throttled, put->outcome p50 - p99 -");

    /* truncated like snprintf */
    char small[12];
    n = cn_kinesis_metrics_log_line(&m, NULL, small, sizeof small);
    CN_ASSERT_GT(n, sizeof small);
    CN_ASSERT_STREQ(small, "kinesis: 12");
    CN_ASSERT_EQ(cn_kinesis_metrics_log_line(&m, NULL, NULL, 0), n);
}

/* ==== GET /metrics of a live producer ================================================== */

#define LIVE_STREAM "metrics"
#define LIVE_RECORDS 1000

/* A shell command's output, run on the thread pool so the loop keeps
 * serving while curl waits for it. */
struct cmd {
    char line[512];
    char *out;
    size_t len;
    int status;
};

static int run_cmd(void *arg)
{
    struct cmd *c = arg;
    FILE *f = popen(c->line, "r");
    CN_ASSERT(f != NULL);
    size_t cap = 1 << 16;
    c->out = malloc(cap);
    CN_ASSERT(c->out != NULL);
    size_t n;
    while ((n = fread(c->out + c->len, 1, cap - 1 - c->len, f)) > 0) {
        c->len += n;
        if (c->len + 1 == cap) {
            c->out = realloc(c->out, cap *= 2);
            CN_ASSERT(c->out != NULL);
        }
    }
    c->out[c->len] = '\0';
    c->status = pclose(f);
    return 0;
}

/* curl's body, then after the last line feed "<status> <content type>". */
static struct cmd *curl(int port, const char *options, const char *path)
{
    struct cmd *c = calloc(1, sizeof *c);
    CN_ASSERT(c != NULL);
    snprintf(c->line, sizeof c->line,
             "curl -s -S --max-time 30 %s -w '\\n%%{http_code} %%{content_type}' "
             "http://127.0.0.1:%d%s",
             options, port, path);
    CN_ASSERT_EQ(cn_offload(run_cmd, c, soon()), 0);
    CN_ASSERT_EQ(c->status, 0);
    return c;
}

static const char *curl_status(struct cmd *c)
{
    char *nl = strrchr(c->out, '\n');
    CN_ASSERT(nl != NULL);
    *nl = '\0'; /* c->out is the body now */
    return nl + 1;
}

static void cmd_free(struct cmd *c)
{
    free(c->out);
    free(c);
}

struct parse_job {
    const char *text;
    json_t *doc;
};

static int parse_job_run(void *arg)
{
    struct parse_job *j = arg;
    j->doc = parse_exposition(j->text);
    return 0;
}

struct live {
    struct cn_emu emu;
    struct cn_kinesis_producer *p;
    struct cn_tcp_listener *l;
};

static int serve_main(void *arg)
{
    struct live *lv = arg;
    return cn_kinesis_metrics_serve(lv->p, lv->l);
}

static void make_stream(const char *url)
{
    struct cn_kinesis_client_opts co = {.endpoint_url = url,
                                        .region = "us-east-1",
                                        .access_key_id = "AKIDEXAMPLE",
                                        .secret_access_key = "secret"};
    struct cn_kinesis_client *kc;
    struct cn_kinesis_error err;
    CN_ASSERT_EQ(cn_kinesis_client_new(&kc, &co), 0);
    int rc = cn_kinesis_create_stream(kc, LIVE_STREAM, 2, &err, soon());
    if (rc < 0) {
        fprintf(stderr, "CreateStream: %s %s\n", err.type, err.message);
    }
    CN_ASSERT_EQ(rc, 0);
    CN_ASSERT_EQ(cn_kinesis_wait_active(kc, LIVE_STREAM, NULL, &err, soon()), 0);
    cn_kinesis_client_close(kc);
}

static void produce(struct live *lv)
{
    struct cn_kinesis_producer_config c = {.client = {.endpoint_url = lv->emu.url,
                                                      .region = "us-east-1",
                                                      .access_key_id = "AKIDEXAMPLE",
                                                      .secret_access_key = "secret"},
                                           .rate_limit = CN_KINESIS_OFF};
    CN_ASSERT_EQ(cn_kinesis_producer_new(&lv->p, &c), 0);
    for (int i = 0; i < LIVE_RECORDS; i++) {
        char pk[32], data[64];
        snprintf(pk, sizeof pk, "pk-%d", i);
        int len = snprintf(data, sizeof data, "record %d", i);
        CN_ASSERT_EQ(cn_kinesis_put(lv->p, LIVE_STREAM, pk, data, (size_t)len, NULL, NULL, soon()),
                     0);
    }
    CN_ASSERT_EQ(cn_kinesis_producer_flush(lv->p, soon()), 0);
}

static void check_scrape(json_t *doc)
{
    const char *s = LIVE_STREAM;
    CN_ASSERT_EQ(sample_value(doc, "coronet_kinesis_user_records_put_total", s, NULL, NULL, NULL),
                 LIVE_RECORDS);
    CN_ASSERT_EQ(
        sample_value(doc, "coronet_kinesis_user_records_succeeded_total", s, NULL, NULL, NULL),
        LIVE_RECORDS);
    CN_ASSERT_EQ(
        sample_value(doc, "coronet_kinesis_user_records_failed_total", s, NULL, NULL, NULL), 0);
    CN_ASSERT_EQ(sample_value(doc, "coronet_kinesis_user_records_outstanding", s, NULL, NULL, NULL),
                 0);
    CN_ASSERT_EQ(
        sample_value(doc, "coronet_kinesis_put_to_outcome_seconds_count", s, NULL, NULL, NULL),
        LIVE_RECORDS);
    CN_ASSERT_EQ(
        sample_value(doc, "coronet_kinesis_put_to_outcome_seconds_bucket", s, NULL, "+Inf", NULL),
        LIVE_RECORDS);
    CN_ASSERT_GE(
        sample_value(doc, "coronet_kinesis_request_rtt_seconds_count", s, NULL, NULL, NULL), 1);
    /* the two shards' successes add up to the stream's */
    double shard_ok = 0;
    const char *ids[] = {"shardId-000000000000", "shardId-000000000001"};
    for (int i = 0; i < 2; i++) {
        shard_ok += sample_value(doc, "coronet_kinesis_shard_user_records_succeeded_total", s,
                                 ids[i], NULL, NULL);
    }
    CN_ASSERT_EQ(shard_ok, LIVE_RECORDS);
}

static int live_main(void *arg)
{
    struct live *lv = arg;
    make_stream(lv->emu.url);
    produce(lv);
    CN_ASSERT_EQ(cn_tcp_listen(&lv->l, "127.0.0.1", 0, NULL), 0);
    int port = cn_tcp_listener_port(lv->l);
    struct cn_co *server;
    CN_ASSERT_EQ(cn_spawn(&server, serve_main, lv, NULL), 0);

    struct cmd *c = curl(port, "", "/metrics");
    CN_ASSERT_STREQ(curl_status(c), "200 text/plain; version=0.0.4; charset=utf-8");
    struct parse_job j = {.text = c->out};
    CN_ASSERT_EQ(cn_offload(parse_job_run, &j, soon()), 0);
    check_scrape(j.doc);
    json_decref(j.doc);
    cmd_free(c);

    c = curl(port, "", "/other");
    CN_ASSERT_STREQ(curl_status(c), "404 text/plain; charset=utf-8");
    cmd_free(c);
    c = curl(port, "-X POST", "/metrics");
    CN_ASSERT_STREQ(curl_status(c), "405 text/plain; charset=utf-8");
    cmd_free(c);
    c = curl(port, "-I", "/metrics"); /* HEAD: the head alone */
    CN_ASSERT_STREQ(curl_status(c), "200 text/plain; version=0.0.4; charset=utf-8");
    CN_ASSERT(strstr(c->out, "Content-Length: ") != NULL);
    CN_ASSERT(strstr(c->out, "coronet_kinesis") == NULL);
    cmd_free(c);

    int result = -1;
    cn_cancel(server);
    CN_ASSERT_EQ(cn_join(server, &result, soon()), 0);
    CN_ASSERT_EQ(result, 0); /* cancelled: the normal end */
    cn_tcp_listener_close(lv->l);
    CN_ASSERT_EQ(cn_kinesis_producer_close(lv->p, soon()), 0);
    return 0;
}

static void kinesalite_metrics_served_to_curl_count_every_record(void)
{
    require_parser();
    if (system("command -v curl >/dev/null 2>&1") != 0) {
        CN_TEST_SKIP_BECAUSE("curl is not installed");
    }
    struct live lv = {0};
    cn_emu_start(&lv.emu, CN_EMU_KINESALITE);
    CN_ASSERT_EQ(cn_test_run(live_main, &lv), 0);
    cn_emu_stop(&lv.emu);
}

CN_TEST_MAIN(CN_CASE(histogram_buckets_at_boundaries),
             CN_CASE(histogram_quantiles_fall_in_the_true_values_bucket),
             CN_CASE(prometheus_text_reads_back_with_prometheus_client),
             CN_CASE(prometheus_escapes_label_values), CN_CASE(prometheus_truncates_like_snprintf),
             CN_CASE(log_line_rates_since_start_and_since_prev),
             CN_CASE(kinesalite_metrics_served_to_curl_count_every_record))
