/* SPDX-License-Identifier: MIT */
/*
 * kinesis-cat: prints every record of a Kinesis stream, from TRIM_HORIZON.
 *
 *   kinesis-cat --stream S [--endpoint URL] [--region R] [--base64] [--follow]
 *
 * One line per user record: PARTITION_KEY SEQUENCE_NUMBER[/SUBSEQ] DATA.
 * KPL aggregates are unpacked (SUBSEQ is the index inside the aggregate and
 * only shown for those). Keys and data print as text when they are
 * printable UTF-8 (keys also without spaces), else as base64; --base64
 * prints all data as base64. Every shard is read, closed parents before
 * their children (so each key's records come out in order across a split
 * or merge). Without --follow it stops once every shard is caught up (an
 * empty GetRecords with MillisBehindLatest 0, or a closed shard read to its
 * end); with --follow it keeps polling, once a second per shard (GetRecords
 * allows 5 calls/s per shard), and picks up new shards after resharding.
 *
 * Credentials and region come from the usual AWS environment variables and
 * files; with --endpoint and no region configured, us-east-1 is used.
 * Exit status: 0 done, 1 a Kinesis or network error, 2 bad arguments.
 *
 * The KPL deaggregator is the library's internal one (kinesis/agg.h) until
 * a public consumer API exists.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coronet/coronet.h"
#include "kinesis/agg.h"
#include "kinesis/base64.h"

#define CALL_MS 30000
#define POLL_MS 1000

struct args {
    const char *endpoint, *stream, *region;
    bool base64, follow;
};

struct shard {
    struct cn_kinesis_shard info;
    char iterator[CN_KINESIS_ITERATOR_MAX];
    char last_seq[CN_KINESIS_SEQ_MAX]; /* to resume after an expired iterator */
    bool started, ended, caught_up;
};

struct cat {
    struct args a;
    struct cn_kinesis_client *kc;
    struct shard *shards;
    size_t n;
    char *b64; /* output buffer for base64 */
    size_t b64_cap;
};

static void usage(void)
{
    fprintf(stderr, "usage: kinesis-cat --stream NAME [--endpoint URL] [--region REGION] "
                    "[--base64] [--follow]\n");
}

static int parse_args(int argc, char **argv, struct args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(o, "--base64") == 0) {
            a->base64 = true;
        } else if (strcmp(o, "--follow") == 0) {
            a->follow = true;
        } else if (strcmp(o, "--endpoint") == 0 && has_value) {
            a->endpoint = argv[++i];
        } else if (strcmp(o, "--stream") == 0 && has_value) {
            a->stream = argv[++i];
        } else if (strcmp(o, "--region") == 0 && has_value) {
            a->region = argv[++i];
        } else {
            return -1;
        }
    }
    return a->stream ? 0 : -1;
}

/* ---- output ---------------------------------------------------------------------------- */

/* Printable UTF-8 (RFC 3629) without controls; spaces only if allowed. */
static bool printable(const uint8_t *s, size_t n, bool allow_space)
{
    if (n == 0) {
        return !allow_space; /* an empty key would break the columns */
    }
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7F || (!allow_space && c == ' ')) {
                return false;
            }
            i++;
            continue;
        }
        size_t len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || n - i < len) {
            return false;
        }
        uint32_t cp = c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
            (cp >= 0x80 && cp < 0xA0)) {
            return false;
        }
        i += len;
    }
    return true;
}

static int put_field(struct cat *c, const uint8_t *p, size_t n, bool text)
{
    if (text) {
        return fwrite(p, 1, n, stdout) == n ? 0 : -EIO;
    }
    size_t need = cn__base64_encoded_len(n);
    if (need > c->b64_cap) {
        char *b = realloc(c->b64, need);
        if (!b) {
            return -ENOMEM;
        }
        c->b64 = b;
        c->b64_cap = need;
    }
    size_t len = cn__base64_encode(c->b64, p, n);
    return fwrite(c->b64, 1, len, stdout) == len ? 0 : -EIO;
}

static int print_user(struct cat *c, const struct cn__user_record *u, const char *seq, bool agg)
{
    int rc = put_field(c, u->pk, u->pk_len, printable(u->pk, u->pk_len, false));
    if (rc == 0) {
        if (agg) {
            printf(" %s/%llu ", seq, (unsigned long long)u->sub_seq);
        } else {
            printf(" %s ", seq);
        }
        bool text = !c->a.base64 && printable(u->data, u->data_len, true);
        rc = put_field(c, u->data, u->data_len, text);
    }
    if (rc == 0 && putchar('\n') == EOF) {
        rc = -EIO;
    }
    return rc;
}

/* Prints one Kinesis record, unpacked if it is a KPL aggregate. */
static int print_record(struct cat *c, const struct cn_kinesis_record *r)
{
    struct cn__user_record in = {.pk = (const uint8_t *)r->partition_key,
                                 .pk_len = r->partition_key_len,
                                 .data = r->data,
                                 .data_len = r->data_len};
    struct cn__deagg d;
    /* No hash key range filter: the KCL drops an aggregate holding a record
     * that hashes outside the shard, but a cat shows what is stored (an
     * aggregator that mixes shards, like aws-kinesis-agg's, puts such). */
    int agg = cn__deagg_open(&d, &in, NULL);
    struct cn__user_record u;
    int rc = 0, more;
    while (rc == 0 && (more = cn__deagg_next(&d, &u)) == 1) {
        rc = print_user(c, &u, r->sequence_number, agg == 1);
    }
    cn__deagg_close(&d);
    return rc;
}

/* ---- reading --------------------------------------------------------------------------- */

static void report(const char *what, int rc, const struct cn_kinesis_error *e)
{
    fprintf(stderr, "kinesis-cat: %s: %s", what, e->type[0] ? e->type : cn_err_name(rc));
    fprintf(stderr, "%s%s\n", e->message[0] ? ": " : "", e->message);
}

static struct shard *find(struct cat *c, const char *id)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->shards[i].info.id, id) == 0) {
            return &c->shards[i];
        }
    }
    return NULL;
}

/* Adds shards not yet known from a fresh ListShards. */
static int refresh(struct cat *c)
{
    struct cn_kinesis_shard_list *l;
    struct cn_kinesis_error e;
    int rc = cn_kinesis_list_shards(c->kc, c->a.stream, CN_KINESIS_SHARDS_ALL, &l, &e,
                                    cn_now() + CALL_MS);
    if (rc < 0) {
        report("ListShards", rc, &e);
        return rc;
    }
    struct shard *p = realloc(c->shards, (c->n + l->count) * sizeof *p + 1);
    if (!p) {
        cn_kinesis_shard_list_free(l);
        return -ENOMEM;
    }
    c->shards = p;
    for (size_t i = 0; i < l->count; i++) {
        const struct cn_kinesis_shard *si = &l->shards[i];
        if (find(c, si->id)) {
            continue;
        }
        struct shard *s = &c->shards[c->n++];
        memset(s, 0, sizeof *s);
        s->info = *si;
    }
    cn_kinesis_shard_list_free(l);
    return 0;
}

/* A shard may be read once its parents (if still listed) are read to their
 * end: the order of each key's records survives resharding. */
static bool ready(struct cat *c, const struct shard *s)
{
    const struct shard *p = s->info.parent[0] ? find(c, s->info.parent) : NULL;
    const struct shard *q = s->info.adjacent_parent[0] ? find(c, s->info.adjacent_parent) : NULL;
    return (!p || p->ended) && (!q || q->ended);
}

static int start(struct cat *c, struct shard *s)
{
    struct cn_kinesis_iterator_opts o = {.type = CN_KINESIS_TRIM_HORIZON};
    if (s->last_seq[0]) {
        o.type = CN_KINESIS_AFTER_SEQUENCE_NUMBER;
        o.sequence_number = s->last_seq;
    }
    struct cn_kinesis_error e;
    int rc = cn_kinesis_get_shard_iterator(c->kc, c->a.stream, s->info.id, &o, s->iterator, &e,
                                           cn_now() + CALL_MS);
    if (rc < 0) {
        report("GetShardIterator", rc, &e);
        return rc;
    }
    s->started = true;
    return 0;
}

/* One GetRecords on s. Returns the number of records, or an error. */
static int poll_shard(struct cat *c, struct shard *s)
{
    if (!s->started && start(c, s) < 0) {
        return -EIO;
    }
    struct cn_kinesis_records *r;
    struct cn_kinesis_error e;
    int rc = cn_kinesis_get_records(c->kc, s->iterator, 0, &r, &e, cn_now() + CALL_MS);
    if (rc == CN_EKINESIS_EXPIRED_ITERATOR) {
        s->started = false; /* resume after the last sequence number */
        return 0;
    }
    if (rc < 0) {
        report("GetRecords", rc, &e);
        return e.retryable ? 0 : rc;
    }
    for (size_t i = 0; rc == 0 && i < r->count; i++) {
        rc = print_record(c, &r->records[i]);
        snprintf(s->last_seq, sizeof s->last_seq, "%s", r->records[i].sequence_number);
    }
    int count = (int)r->count;
    s->ended = r->next_iterator == NULL;
    s->caught_up = s->ended || (r->count == 0 && r->millis_behind_latest == 0);
    if (r->next_iterator) {
        snprintf(s->iterator, sizeof s->iterator, "%s", r->next_iterator);
    }
    cn_kinesis_records_free(r);
    return rc < 0 ? rc : count;
}

/* One pass over every readable shard. *idle: nothing new anywhere. */
static int pass(struct cat *c, bool *all_caught_up, bool *idle)
{
    *all_caught_up = true;
    *idle = true;
    bool closed_one = false;
    for (size_t i = 0; i < c->n; i++) {
        struct shard *s = &c->shards[i];
        if (s->ended) {
            continue;
        }
        if (!ready(c, s)) {
            *all_caught_up = false;
            continue;
        }
        int rc = poll_shard(c, s);
        if (rc < 0) {
            return rc;
        }
        *idle = *idle && rc == 0;
        *all_caught_up = *all_caught_up && s->caught_up;
        closed_one = closed_one || s->ended;
    }
    if (fflush(stdout) != 0) {
        return -EIO;
    }
    /* A shard that ended may have children born after the first listing. */
    return closed_one ? refresh(c) : 0;
}

static int run(struct cat *c)
{
    int rc = refresh(c);
    int64_t relist = cn_now() + 10 * POLL_MS;
    while (rc == 0) {
        bool caught_up, idle;
        rc = pass(c, &caught_up, &idle);
        if (rc < 0 || (caught_up && !c->a.follow)) {
            break;
        }
        if (c->a.follow && cn_now() >= relist) {
            rc = refresh(c); /* new shards after UpdateShardCount and the like */
            relist = cn_now() + 10 * POLL_MS;
        }
        if (rc == 0 && (idle || caught_up)) {
            rc = cn_sleep(POLL_MS);
        }
    }
    return rc;
}

static int main_co(void *arg)
{
    struct cat *c = arg;
    const char *region = c->a.region;
    if (!region && c->a.endpoint && !getenv("AWS_REGION") && !getenv("AWS_DEFAULT_REGION")) {
        region = "us-east-1"; /* an emulator does not care */
    }
    struct cn_kinesis_client_opts o = {.endpoint_url = c->a.endpoint, .region = region};
    int rc = cn_kinesis_client_new(&c->kc, &o);
    if (rc < 0) {
        fprintf(stderr, "kinesis-cat: cannot make a client: %s (%s)\n", cn_strerror(rc),
                cn_err_name(rc));
        return rc;
    }
    rc = run(c);
    cn_kinesis_client_close(c->kc);
    return rc;
}

int main(int argc, char **argv)
{
    struct cat c = {0};
    if (parse_args(argc, argv, &c.a) < 0) {
        usage();
        return 2;
    }
    size_t n = strlen(c.a.stream);
    if (n == 0 || n > CN_KINESIS_STREAM_NAME_MAX ||
        strspn(c.a.stream, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
            n) {
        fprintf(stderr, "kinesis-cat: stream name is not [a-zA-Z0-9_.-]{1,128}\n");
        return 2;
    }
    int rc = cn_run(main_co, &c);
    free(c.shards);
    free(c.b64);
    return rc < 0 ? 1 : 0;
}
