/* SPDX-License-Identifier: MIT */
/*
 * kinesis-put: puts the records read from stdin into a Kinesis stream with
 * the coronet producer (aggregation, batching, retries: one outcome each).
 *
 *   kinesis-put --stream S [--endpoint URL] [--region R] [--length-prefixed]
 *               [--key-field NAME | --key KEY] [--no-aggregation] [--no-rate-limit]
 *               [--max-outstanding N] [--buffered-ms N] [--ttl-ms N] [--quiet]
 *               [--metrics-port N]
 *
 * Input. By default one record per line: the newline is not part of the
 * record, every other byte is (a '\r' before it included), a last line
 * without a newline is a record too, and empty lines are skipped (they
 * still count in line numbers): a record is never empty. A line longer
 * than a record may be (1 MiB) fails on its own. With --length-prefixed
 * each record is a 4-byte big-endian length and that many bytes (zero
 * allowed), so records may hold any byte; a length over 1 MiB or an input
 * that ends inside a record stops the run with an error (exit 1).
 *
 * Partition key: --key-field NAME takes it from a top-level string or
 * number field of each record parsed as JSON (a number as its shortest
 * decimal form); a record that is not a JSON object, or lacks the field,
 * fails on its own, reported with its line number, and the run goes on.
 * --key KEY uses one key for everything (so one shard); by default the key
 * is the record's line (or record) number, which spreads over the shards.
 *
 * Output, all on stderr: a progress line about once a second (not with
 * --quiet), each failed record with its line number (the first 100), and a
 * summary when done: records put (succeeded + failed), succeeded, failed,
 * retried (retries of records after retryable failures), elapsed time and
 * records/s (succeeded per second, from the first read to the last
 * outcome). --metrics-port N serves GET /metrics (Prometheus text) on
 * 127.0.0.1:N (0: a free port, printed) while running.
 *
 * SIGINT or SIGTERM stops reading and flushes for up to 5 s (a second
 * signal stops at once: records without an outcome then fail), then prints
 * the summary. A failure that dooms every record (the stream does not
 * exist, access denied, credentials refused) also stops reading.
 *
 * stdin is read on libuv's thread pool (cn_offload), so a pipe, a terminal
 * or a file never blocks the loop; the job polls stdin together with a
 * stop pipe, so a stop is not held up by a writer that has gone quiet.
 *
 * Credentials and region come from the usual AWS environment variables and
 * files; with --endpoint and no region configured, us-east-1 is used.
 * Exit status: 0 every record succeeded, 1 a record failed or an error
 * (input, stream, network), 2 bad arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "coronet/coronet.h"
#include "args.h"

#define PROGRESS_MS 1000
#define SIGNAL_FLUSH_MS 5000
#define FLUSH_SLACK_MS 5000       /* past ttl + request timeout: close gives up */
#define MAX_REPORTS 100           /* per-record failures printed; the rest are counted */
#define KEY_BUF 1032              /* 256 Unicode characters of UTF-8 need up to 1024 bytes */
#define PREFIX_BYTES 4            /* --length-prefixed: big-endian length */
#define INPUT_CAP (2u << 20)      /* holds a whole largest record and its prefix */
#define DEFAULT_REQUEST_MS 6000   /* the producer's request_timeout_ms default */
#define DEFAULT_TTL_MS 30000      /* the producer's record_ttl_ms default */
#define MAX_OPTION_MS 86400000    /* a day */
#define MAX_OUTSTANDING 100000000 /* records */

struct args {
    const char *endpoint, *stream, *region, *key_field, *key;
    bool length_prefixed, no_aggregation, no_rate_limit, quiet;
    long max_outstanding, buffered_ms, ttl_ms, metrics_port; /* -1: not given */
};

/* stdin, filled on the thread pool. Bytes [start, end) are not consumed yet. */
struct input {
    int fd;
    int stop_rd, stop_wr; /* the stop pipe: readable once reading must stop */
    uint8_t *buf;
    size_t start, end;
    bool eof;
    bool skipping; /* inside a line too long to be a record: drop up to its newline */
};

/* Producer ids are given in put order, while line numbers also count what
 * was skipped, so the record number of id is id + the delta of the last
 * segment starting at or before id; a segment starts at each skip. */
struct segment {
    uint64_t first_id;
    uint64_t delta;
};

struct app {
    struct args a;
    struct input in;
    const char *unit;           /* "line" or "record", for messages */
    uint64_t recno;             /* number of the record being read (1, 2, ...) */
    uint64_t accepted;          /* puts that returned 0: the last producer id */
    uint64_t local_failed;      /* records that never reached the producer */
    uint64_t succeeded, failed; /* outcomes, counted here: the producer is gone after close */
    uint64_t retried;           /* the producer's count just before close */
    struct segment *segs;
    size_t nsegs, segs_cap;
    struct cn_kinesis_producer *p;
    struct cn_tcp_listener *metrics;
    struct cn_event wake; /* the reader or flusher ended, a signal, a fatal failure */
    bool reader_done, flushed;
    int input_error; /* the input was broken (reported): exit 1 */
    int fatal;       /* an outcome code that dooms every record, or 0 */
    int signals;
    int64_t signal_ms;
    unsigned reports;
    uint64_t start_ns;
    uv_signal_t sigint, sigterm;
};

static void usage(void)
{
    fprintf(stderr,
            "usage: kinesis-put --stream NAME [--endpoint URL] [--region REGION]\n"
            "                   [--length-prefixed] [--key-field NAME | --key KEY]\n"
            "                   [--no-aggregation] [--no-rate-limit] [--max-outstanding N]\n"
            "                   [--buffered-ms N] [--ttl-ms N] [--quiet] [--metrics-port N]\n");
}

/* ---- arguments ------------------------------------------------------------------------ */

static bool parse_flag(struct args *a, const char *o)
{
    bool *flag = strcmp(o, "--length-prefixed") == 0  ? &a->length_prefixed
                 : strcmp(o, "--no-aggregation") == 0 ? &a->no_aggregation
                 : strcmp(o, "--no-rate-limit") == 0  ? &a->no_rate_limit
                 : strcmp(o, "--quiet") == 0          ? &a->quiet
                                                      : NULL;
    if (flag) {
        *flag = true;
    }
    return flag != NULL;
}

/* An option with a value; false if o is none or v is bad. */
static bool parse_option(struct args *a, const char *o, const char *v)
{
    const char **s = strcmp(o, "--endpoint") == 0    ? &a->endpoint
                     : strcmp(o, "--stream") == 0    ? &a->stream
                     : strcmp(o, "--region") == 0    ? &a->region
                     : strcmp(o, "--key-field") == 0 ? &a->key_field
                     : strcmp(o, "--key") == 0       ? &a->key
                                                     : NULL;
    if (s) {
        *s = v;
        return true;
    }
    long *n = strcmp(o, "--max-outstanding") == 0 ? &a->max_outstanding
              : strcmp(o, "--buffered-ms") == 0   ? &a->buffered_ms
              : strcmp(o, "--ttl-ms") == 0        ? &a->ttl_ms
              : strcmp(o, "--metrics-port") == 0  ? &a->metrics_port
                                                  : NULL;
    if (!n) {
        return false;
    }
    long lo = n == &a->metrics_port ? 0 : 1;
    long hi = n == &a->metrics_port      ? 65535
              : n == &a->max_outstanding ? MAX_OUTSTANDING
                                         : MAX_OPTION_MS;
    *n = parse_num(v, lo, hi);
    return *n >= 0;
}

static bool valid_stream_name(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= CN_KINESIS_STREAM_NAME_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    a->max_outstanding = a->buffered_ms = a->ttl_ms = a->metrics_port = -1;
    for (int i = 1; i < argc; i++) {
        if (parse_flag(a, argv[i])) {
            continue;
        }
        if (i + 1 >= argc || !parse_option(a, argv[i], argv[i + 1])) {
            return -1;
        }
        i++;
    }
    if (!a->stream || !valid_stream_name(a->stream)) {
        return -1;
    }
    if (a->key_field && a->key) {
        return -1; /* one source of keys */
    }
    if ((a->key_field && !a->key_field[0]) || (a->key && !a->key[0])) {
        return -1;
    }
    return 0;
}

/* ---- reports -------------------------------------------------------------------------- */

__attribute__((format(printf, 3, 0))) static void vreport(struct app *app, uint64_t recno,
                                                          const char *fmt, va_list ap)
{
    if (app->reports > MAX_REPORTS) {
        return;
    }
    if (app->reports++ == MAX_REPORTS) {
        fprintf(stderr, "kinesis-put: (%d failures reported; further ones are only counted)\n",
                MAX_REPORTS);
        return;
    }
    fprintf(stderr, "kinesis-put: %s %" PRIu64 ": ", app->unit, recno);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

/* One failed record on stderr (the first ones only). */
__attribute__((format(printf, 3, 4))) static void report_record(struct app *app, uint64_t recno,
                                                                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(app, recno, fmt, ap);
    va_end(ap);
}

/* Record recno failed before reaching the producer. */
__attribute__((format(printf, 3, 4))) static void local_failure(struct app *app, uint64_t recno,
                                                                const char *fmt, ...)
{
    app->local_failed++;
    va_list ap;
    va_start(ap, fmt);
    vreport(app, recno, fmt, ap);
    va_end(ap);
}

/* ---- producer ids to record numbers --------------------------------------------------- */

static int note_put(struct app *app, uint64_t id, uint64_t recno)
{
    uint64_t delta = recno - id;
    if (app->nsegs > 0 && app->segs[app->nsegs - 1].delta == delta) {
        return 0;
    }
    if (app->nsegs == app->segs_cap) {
        size_t cap = app->segs_cap ? 2 * app->segs_cap : 64;
        struct segment *s = realloc(app->segs, cap * sizeof *s);
        if (!s) {
            return -ENOMEM;
        }
        app->segs = s;
        app->segs_cap = cap;
    }
    app->segs[app->nsegs++] = (struct segment){id, delta};
    return 0;
}

static uint64_t recno_of(const struct app *app, uint64_t id)
{
    size_t lo = 0, hi = app->nsegs; /* the answer is in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (app->segs[mid].first_id <= id) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return app->nsegs > 0 ? id + app->segs[lo].delta : id;
}

/* ---- outcomes ------------------------------------------------------------------------- */

/* Failures that every later record would meet too. */
static bool dooms_all(int code)
{
    return code == CN_EKINESIS_NOT_FOUND || code == CN_EKINESIS_ACCESS_DENIED ||
           code == CN_EKINESIS_AUTH || code == CN_EKINESIS_EXPIRED_TOKEN || code == CN_EKINESIS_KMS;
}

/* On a producer coroutine: must not park. */
static void on_outcome(void *arg, struct cn_kinesis_outcome_handle *h,
                       const struct cn_kinesis_outcome *o)
{
    struct app *app = arg;
    (void)h;
    if (o->code == 0) {
        app->succeeded++;
        return;
    }
    app->failed++;
    if (app->fatal && o->code == app->fatal) {
        return; /* said once */
    }
    const char *type = o->error_type[0] ? o->error_type : cn_err_name(o->code);
    if (dooms_all(o->code)) {
        app->fatal = o->code;
        fprintf(stderr, "kinesis-put: stopping (every record would fail): stream %s: %s: %s\n",
                app->a.stream, type, o->error_message[0] ? o->error_message : cn_strerror(o->code));
        cn_event_set(&app->wake);
        return;
    }
    report_record(app, recno_of(app, o->id), "failed after %d attempt(s): %s: %s", o->attempts,
                  type, o->error_message[0] ? o->error_message : cn_strerror(o->code));
}

static int make_producer(struct app *app)
{
    const struct args *a = &app->a;
    const char *region = a->region;
    if (!region && a->endpoint && !getenv("AWS_REGION") && !getenv("AWS_DEFAULT_REGION")) {
        region = "us-east-1"; /* an emulator does not care */
    }
    struct cn_kinesis_producer_config c = {
        .client = {.endpoint_url = a->endpoint, .region = region},
        .max_outstanding_records = a->max_outstanding > 0 ? (size_t)a->max_outstanding : 0,
        .record_max_buffered_time_ms = a->buffered_ms > 0 ? a->buffered_ms : 0,
        .record_ttl_ms = a->ttl_ms > 0 ? a->ttl_ms : 0,
        .aggregation = a->no_aggregation ? CN_KINESIS_OFF : CN_KINESIS_DEFAULT,
        .rate_limit = a->no_rate_limit ? CN_KINESIS_OFF : CN_KINESIS_DEFAULT,
        .on_outcome = on_outcome,
        .on_outcome_arg = app,
    };
    int rc = cn_kinesis_producer_new(&app->p, &c);
    if (rc < 0) {
        fprintf(stderr, "kinesis-put: cannot make a producer: %s (%s)\n", cn_strerror(rc),
                cn_err_name(rc));
    }
    return rc;
}

/* ---- reading stdin -------------------------------------------------------------------- */

/* On the thread pool: waits until stdin or the stop pipe is readable, then
 * reads what fits. Returns the byte count (0 at the end), or -errno. */
static int read_job(void *arg)
{
    struct input *in = arg;
    struct pollfd fds[2] = {{.fd = in->fd, .events = POLLIN},
                            {.fd = in->stop_rd, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (fds[1].revents) {
            return -ECANCELED;
        }
        if (!fds[0].revents) {
            continue;
        }
        ssize_t n = read(in->fd, in->buf + in->end, INPUT_CAP - in->end);
        if (n >= 0) {
            return (int)n; /* at most INPUT_CAP */
        }
        if (errno != EINTR && errno != EAGAIN) {
            return -errno;
        }
    }
}

/* Reads more of stdin after what is buffered. Returns 0, or a negative code
 * (-ECANCELED: stopping). */
static int fill(struct app *app)
{
    struct input *in = &app->in;
    if (in->start > 0) {
        memmove(in->buf, in->buf + in->start, in->end - in->start);
        in->end -= in->start;
        in->start = 0;
    }
    int n = cn_offload(read_job, in, -1);
    if (n < 0) {
        if (n != -ECANCELED) {
            fprintf(stderr, "kinesis-put: reading stdin: %s\n", cn_strerror(n));
            app->input_error = n;
        }
        return n;
    }
    in->end += (size_t)n;
    in->eof = n == 0;
    return 0;
}

/* The next line, without its newline, into *rec. Returns 1, 0 at the end,
 * or a negative code. Skips empty lines; a line too long for a record
 * fails alone. */
static int next_line(struct app *app, const uint8_t **rec, size_t *len)
{
    struct input *in = &app->in;
    for (;;) {
        uint8_t *at = in->buf + in->start;
        size_t avail = in->end - in->start;
        uint8_t *nl = memchr(at, '\n', avail);
        if (nl || (in->eof && avail > 0)) {
            size_t n = nl ? (size_t)(nl - at) : avail;
            in->start += nl ? n + 1 : n;
            app->recno++;
            bool dropped = in->skipping;
            in->skipping = false;
            if (dropped || n == 0) {
                continue;
            }
            *rec = at;
            *len = n;
            return 1;
        }
        if (in->eof) {
            return 0;
        }
        if (avail > CN_KINESIS_RECORD_MAX) {
            if (!in->skipping) {
                local_failure(app, app->recno + 1, "longer than a record may be (1 MiB)");
            }
            in->skipping = true;
            in->start = in->end;
        }
        int rc = fill(app);
        if (rc < 0) {
            return rc;
        }
    }
}

/* Waits until count bytes are buffered; CN_EOF if the input ends first. */
static int need(struct app *app, size_t count)
{
    while (app->in.end - app->in.start < count) {
        if (app->in.eof) {
            return CN_EOF;
        }
        int rc = fill(app);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* The input ended inside record recno, after have of its want bytes. */
static int truncated(struct app *app, const char *what, size_t want)
{
    fprintf(stderr,
            "kinesis-put: record %" PRIu64 ": the input ends inside its %s "
            "(%zu of %zu bytes)\n",
            app->recno, what, app->in.end - app->in.start, want);
    app->input_error = CN_EOF;
    return CN_EOF;
}

/* The next length-prefixed record. Returns 1, 0 at the end, or a negative
 * code (a truncated or impossible record is reported). */
static int next_prefixed(struct app *app, const uint8_t **rec, size_t *len)
{
    struct input *in = &app->in;
    int rc = need(app, PREFIX_BYTES);
    if (rc == CN_EOF && in->start == in->end) {
        return 0;
    }
    app->recno++;
    if (rc < 0) {
        return rc == CN_EOF ? truncated(app, "length prefix", PREFIX_BYTES) : rc;
    }
    const uint8_t *b = in->buf + in->start;
    size_t n = (size_t)b[0] << 24 | (size_t)b[1] << 16 | (size_t)b[2] << 8 | b[3];
    if (n > CN_KINESIS_RECORD_MAX) {
        fprintf(stderr,
                "kinesis-put: record %" PRIu64 ": length %zu is over 1 MiB "
                "(is the input really length-prefixed?)\n",
                app->recno, n);
        app->input_error = -EINVAL;
        return -EINVAL;
    }
    rc = need(app, PREFIX_BYTES + n);
    if (rc < 0) {
        return rc == CN_EOF ? truncated(app, "length prefix and data", PREFIX_BYTES + n) : rc;
    }
    *rec = in->buf + in->start + PREFIX_BYTES;
    *len = n;
    in->start += PREFIX_BYTES + n;
    return 1;
}

/* ---- keys and puts -------------------------------------------------------------------- */

static bool only_space(const char *s, const char *end)
{
    for (; s < end; s++) {
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') {
            return false;
        }
    }
    return true;
}

/* The --key-field of a JSON record into key; NULL, or why not. */
static const char *key_from_json(const struct app *app, const uint8_t *rec, size_t len, char *key)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)rec, len, &end, false);
    const char *why = NULL;
    if (!root || !only_space(end, (const char *)rec + len)) {
        why = "not JSON";
    } else if (!cJSON_IsObject(root)) {
        why = "not a JSON object";
    } else {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, app->a.key_field);
        if (!f) {
            why = "no such field";
        } else if (cJSON_IsString(f)) {
            size_t n = strlen(f->valuestring);
            why = n >= KEY_BUF ? "key over 256 characters" : NULL;
            memcpy(key, f->valuestring, n < KEY_BUF ? n + 1 : 0);
        } else if (!cJSON_IsNumber(f) || !cJSON_PrintPreallocated((cJSON *)f, key, KEY_BUF, 0)) {
            why = "field is not a string or a number";
        }
    }
    cJSON_Delete(root);
    return why;
}

/* Puts one record; per-record failures are counted and the run goes on.
 * Returns 0, or a code that stops reading. */
static int put_record(struct app *app, const uint8_t *rec, size_t len)
{
    char buf[KEY_BUF];
    const char *key = buf;
    if (app->a.key_field) {
        const char *why = key_from_json(app, rec, len, buf);
        if (why) {
            local_failure(app, app->recno, "--key-field %s: %s", app->a.key_field, why);
            return 0;
        }
    } else if (app->a.key) {
        key = app->a.key;
    } else {
        snprintf(buf, sizeof buf, "%" PRIu64, app->recno);
    }
    int rc = cn_kinesis_put(app->p, app->a.stream, key, rec, len, NULL, NULL, -1);
    if (rc == 0) {
        return note_put(app, ++app->accepted, app->recno);
    }
    if (rc == CN_ECLOSED || rc == -ECANCELED || rc == -ENOMEM) {
        return rc;
    }
    local_failure(app, app->recno, "%s", cn_strerror(rc)); /* AWS would refuse key or size */
    return 0;
}

static int reader(void *arg)
{
    struct app *app = arg;
    const uint8_t *rec;
    size_t len;
    int rc;
    for (;;) {
        rc = app->a.length_prefixed ? next_prefixed(app, &rec, &len) : next_line(app, &rec, &len);
        if (rc <= 0 || app->fatal || app->signals) {
            break;
        }
        rc = put_record(app, rec, len);
        if (rc < 0) {
            break;
        }
    }
    app->reader_done = true;
    cn_event_set(&app->wake);
    return rc == -ECANCELED || rc == CN_ECLOSED ? 0 : rc; /* stopped on purpose */
}

/* ---- progress, signals, metrics -------------------------------------------------------- */

static double seconds_since(uint64_t start_ns)
{
    return (double)(uv_hrtime() - start_ns) / 1e9;
}

static int progress(void *arg)
{
    struct app *app = arg;
    uint64_t prev = 0, prev_ns = uv_hrtime();
    while (cn_sleep(PROGRESS_MS) == 0) {
        struct cn_kinesis_producer_counters c;
        cn_kinesis_producer_counters(app->p, &c);
        uint64_t now_ns = uv_hrtime();
        double rate = (double)(c.succeeded - prev) / ((double)(now_ns - prev_ns) / 1e9);
        fprintf(stderr,
                "kinesis-put: %.0f s: %" PRIu64 " put, %" PRIu64 " succeeded, %.0f records/s, "
                "%" PRIu64 " in flight, %" PRIu64 " retries, %" PRIu64 " failed\n",
                seconds_since(app->start_ns), c.put + app->local_failed, c.succeeded, rate,
                c.outstanding, c.retried, c.failed + app->local_failed);
        prev = c.succeeded;
        prev_ns = now_ns;
    }
    return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct app *app = h->data;
    if (app->signals++ == 0) {
        app->signal_ms = (int64_t)uv_now(h->loop);
        fprintf(stderr, "kinesis-put: %s: stopping; flushing for up to %d s (again: at once)\n",
                signum == SIGINT ? "SIGINT" : "SIGTERM", SIGNAL_FLUSH_MS / 1000);
    }
    cn_event_set(&app->wake);
}

static void watch_signals(struct app *app)
{
    uv_signal_init(cn_loop(), &app->sigint);
    uv_signal_init(cn_loop(), &app->sigterm);
    app->sigint.data = app->sigterm.data = app;
    uv_signal_start(&app->sigint, on_signal, SIGINT);
    uv_signal_start(&app->sigterm, on_signal, SIGTERM);
}

static void unwatch_signals(struct app *app)
{
    cn_uv_close((uv_handle_t *)&app->sigint);
    cn_uv_close((uv_handle_t *)&app->sigterm);
}

static int listen_metrics(struct app *app)
{
    if (app->a.metrics_port < 0) {
        return 0;
    }
    int rc = cn_tcp_listen(&app->metrics, "127.0.0.1", (int)app->a.metrics_port, NULL);
    if (rc < 0) {
        fprintf(stderr, "kinesis-put: metrics: listen on 127.0.0.1:%ld: %s\n", app->a.metrics_port,
                cn_strerror(rc));
        return rc;
    }
    fprintf(stderr, "kinesis-put: metrics on http://127.0.0.1:%d/metrics\n",
            cn_tcp_listener_port(app->metrics));
    return 0;
}

static int serve_metrics(void *arg)
{
    struct app *app = arg;
    return cn_kinesis_metrics_serve(app->p, app->metrics);
}

/* ---- the run -------------------------------------------------------------------------- */

/* Until the reader ends, or a signal or a doomed stream stops it. */
static int read_phase(struct app *app)
{
    struct cn_co *co;
    int rc = cn_spawn(&co, reader, app, &(struct cn_spawn_opts){.name = "reader"});
    if (rc < 0) {
        return rc;
    }
    while (!app->reader_done && !app->signals && !app->fatal) {
        cn_event_wait(&app->wake, -1);
        cn_event_reset(&app->wake);
    }
    if (!app->reader_done) {
        /* The read job may be parked in poll(): the stop pipe ends it. */
        ssize_t w = write(app->in.stop_wr, "x", 1);
        (void)w;
        cn_cancel(co);
    }
    int result = 0;
    cn_join(co, &result, -1);
    return result;
}

static int flusher(void *arg)
{
    struct app *app = arg;
    int rc = cn_kinesis_producer_flush(app->p, -1);
    app->flushed = rc == 0;
    cn_event_set(&app->wake);
    return rc;
}

/* Flushes until done, or until the deadline the signals allow. */
static void flush_phase(struct app *app)
{
    int64_t ttl = app->a.ttl_ms > 0 ? app->a.ttl_ms : DEFAULT_TTL_MS;
    int64_t until = cn_now() + ttl + DEFAULT_REQUEST_MS + FLUSH_SLACK_MS;
    struct cn_co *co = NULL;
    if (cn_spawn(&co, flusher, app, NULL) < 0) {
        return; /* close fails what is left */
    }
    for (;;) {
        int64_t deadline = app->signals == 0   ? until
                           : app->signals == 1 ? app->signal_ms + SIGNAL_FLUSH_MS
                                               : cn_now();
        if (app->flushed || cn_now() >= deadline) {
            break;
        }
        cn_event_wait(&app->wake, deadline);
        cn_event_reset(&app->wake);
    }
    cn_cancel(co);
    cn_join(co, NULL, -1);
}

/* Every record has its outcome when it returns. */
static void close_producer(struct app *app)
{
    struct cn_kinesis_producer_counters c;
    cn_kinesis_producer_counters(app->p, &c);
    app->retried = c.retried;
    /* What is still without an outcome fails now (CN_ECLOSED). */
    cn_kinesis_producer_close(app->p, cn_now());
    app->p = NULL;
}

static void stop(struct cn_co *co)
{
    if (co) {
        cn_cancel(co);
        cn_join(co, NULL, -1);
    }
}

static void summary(const struct app *app)
{
    double s = seconds_since(app->start_ns);
    fprintf(stderr,
            "kinesis-put: %" PRIu64 " records put, %" PRIu64 " succeeded, %" PRIu64
            " failed, %" PRIu64 " retried, %.3f s, %.0f records/s\n",
            app->accepted + app->local_failed, app->succeeded, app->failed + app->local_failed,
            app->retried, s, s > 0 ? (double)app->succeeded / s : 0.0);
}

/* Reads and puts everything, then drains. Returns the reader's result. */
static int run(struct app *app)
{
    struct cn_co *prog = NULL, *serve = NULL;
    if (!app->a.quiet) {
        cn_spawn(&prog, progress, app, NULL);
    }
    if (app->metrics) {
        cn_spawn(&serve, serve_metrics, app, NULL);
    }
    int rc = read_phase(app);
    flush_phase(app);
    stop(prog);
    stop(serve);
    close_producer(app);
    return rc;
}

static int main_co(void *arg)
{
    struct app *app = arg;
    watch_signals(app);
    int rc = listen_metrics(app);
    if (rc == 0) {
        rc = make_producer(app);
    }
    if (rc == 0) {
        app->start_ns = uv_hrtime();
        rc = run(app);
        summary(app);
    }
    cn_tcp_listener_close(app->metrics);
    unwatch_signals(app);
    bool all_stored = rc >= 0 && !app->input_error && app->failed == 0 && app->local_failed == 0;
    return all_stored ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct app app = {.wake = CN_EVENT_INIT, .in = {.fd = 0, .stop_rd = -1, .stop_wr = -1}};
    if (parse_args(argc, argv, &app.a) < 0) {
        usage();
        return 2;
    }
    app.unit = app.a.length_prefixed ? "record" : "line";
    if (fcntl(STDIN_FILENO, F_GETFD) < 0) {
        /* Else the stop pipe would take descriptor 0 and be read as input. */
        fprintf(stderr, "kinesis-put: stdin is closed\n");
        return 1;
    }
    int fds[2];
    app.in.buf = malloc(INPUT_CAP);
    if (!app.in.buf || pipe(fds) != 0) {
        perror("kinesis-put");
        return 1;
    }
    app.in.stop_rd = fds[0];
    app.in.stop_wr = fds[1];
    signal(SIGPIPE, SIG_IGN);
    int rc = cn_run(main_co, &app);
    close(fds[0]);
    close(fds[1]);
    free(app.in.buf);
    free(app.segs);
    return rc;
}
