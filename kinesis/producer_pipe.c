/* SPDX-License-Identifier: MIT */
/*
 * The producer's pipeline (see producer_internal.h for where a record can
 * be), all coroutines of the producer's group on the caller's loop:
 *
 *   route     a record with no shard map yet waits in its stream's wait
 *             list while a loader coroutine runs ListShards; otherwise the
 *             map predicts its shard and it goes to that shard's aggregator
 *             (or straight to the collection when aggregation is off);
 *   seal      an aggregator whose next record would not fit, or whose
 *             oldest record has waited record_max_buffered_time_ms, becomes
 *             one Kinesis record (krec; a lone record is sent plain, as the
 *             KPL does) in the stream's collection;
 *   emit      a collection that is full (count or bytes) or old becomes a
 *             batch in the ready queue;
 *   dispatch  one coroutine starts a sender per ready batch, at most
 *             max_connections at once;
 *   send      one PutRecords; each entry's result applies to every user
 *             record inside; retryable failures sleep an exponential backoff
 *             with jitter and are routed again (so re-predicted and
 *             re-aggregated), until record_ttl_ms.
 *
 * A record that landed on a shard other than the predicted one (a split or
 * merge happened) triggers a map refresh; the new map re-routes what the
 * aggregators hold. Nothing here parks while it moves records between
 * lists, so the lists need no locks (one thread, cooperative coroutines).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinesis/producer_internal.h"

static const char closed_msg[] = "producer closed before the record was sent";

static uint64_t rnd(struct cn_kinesis_producer *p)
{
    p->rng ^= p->rng << 13;
    p->rng ^= p->rng >> 7;
    p->rng ^= p->rng << 17;
    return p->rng;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static void append(struct cn__urec **head, struct cn__urec **tail, struct cn__urec *u)
{
    u->next = NULL;
    if (*tail) {
        (*tail)->next = u;
    } else {
        *head = u;
    }
    *tail = u;
}

/* ---- records past their TTL ---------------------------------------------- */

static void expire(struct cn_kinesis_producer *p, struct cn__urec *u)
{
    char msg[sizeof u->out.error_message];
    if (u->out.last_error == 0) {
        snprintf(msg, sizeof msg, "record_ttl_ms (%lld ms) passed before the record was sent",
                 (long long)p->cfg.record_ttl_ms);
        CN__COUNT(p, u->s, expired, 1);
        cn__prod_finish(p, u, -ETIMEDOUT, NULL, msg);
        return;
    }
    snprintf(msg, sizeof msg,
             "record_ttl_ms (%lld ms) passed after %d attempt(s); last error %s: %.120s",
             (long long)p->cfg.record_ttl_ms, u->out.attempts, cn_err_name(u->out.last_error),
             u->out.error_message[0] ? u->out.error_message : cn_strerror(u->out.last_error));
    CN__COUNT(p, u->s, expired, 1);
    cn__prod_finish(p, u, -ETIMEDOUT, NULL, msg);
}

/* Notes a retryable failure on u, the error TTL expiry will report. */
static void note_error(struct cn__urec *u, int code, const char *type, const char *msg)
{
    u->out.last_error = code;
    cn__prod_text(u->out.error_type, sizeof u->out.error_type, type);
    cn__prod_text(u->out.error_message, sizeof u->out.error_message, msg);
}

/* ---- Kinesis records and batches ------------------------------------------ */

static void krec_free(struct cn__krec *k)
{
    if (k->aggregated) {
        free(k->data);
    }
    free(k);
}

static void krec_fail(struct cn_kinesis_producer *p, struct cn__krec *k, int code, const char *msg)
{
    cn__prod_fail_list(p, k->head, code, NULL, msg);
    krec_free(k);
}

static struct cn__krec *krec_plain(struct cn__urec *u, const struct cn__prod_shard *sh,
                                   int64_t oldest)
{
    struct cn__krec *k = calloc(1, sizeof *k);
    if (!k) {
        return NULL;
    }
    u->next = NULL;
    k->head = u;
    k->n = 1;
    k->oldest = oldest;
    k->pk = u->pk;
    k->pk_len = u->pk_len;
    k->ehk = u->ehk;
    k->data = u->data;
    k->data_len = u->data_len;
    cn__prod_text(k->shard, sizeof k->shard, sh->id);
    k->st = sh->st;
    return k;
}

static void emit(struct cn_kinesis_producer *p, struct cn__prod_stream *s)
{
    if (s->coll_n == 0) {
        return;
    }
    struct cn__batch *b = malloc(sizeof *b + s->coll_n * sizeof b->k[0]);
    struct cn__krec *k = s->coll_head;
    size_t n = s->coll_n;
    s->coll_head = s->coll_tail = NULL;
    s->coll_n = s->coll_bytes = 0;
    if (!b) {
        while (k) {
            struct cn__krec *next = k->next;
            krec_fail(p, k, -ENOMEM, "out of memory building a request");
            k = next;
        }
        return;
    }
    b->next = NULL;
    b->s = s;
    b->n = n;
    for (size_t i = 0; i < n; i++, k = k->next) {
        b->k[i] = k;
    }
    if (p->ready_tail) {
        p->ready_tail->next = b;
    } else {
        p->ready_head = b;
    }
    p->ready_tail = b;
    cn_event_set(&p->ready_ev);
}

void cn__prod_collect(struct cn_kinesis_producer *p, struct cn__prod_stream *s, struct cn__krec *k)
{
    size_t size = k->data_len + k->pk_len;
    if (s->coll_n > 0 && (s->coll_n + 1 > p->cfg.collection_max_count ||
                          s->coll_bytes + size > p->cfg.collection_max_size)) {
        emit(p, s);
    }
    k->next = NULL;
    if (s->coll_tail) {
        s->coll_tail->next = k;
        s->coll_oldest = min64(s->coll_oldest, k->oldest);
    } else {
        s->coll_head = k;
        s->coll_oldest = k->oldest;
        cn_event_set(&p->kick);
    }
    s->coll_tail = k;
    s->coll_n++;
    s->coll_bytes += size;
    if (s->coll_n >= p->cfg.collection_max_count) {
        emit(p, s);
    }
}

/* The aggregate of sh (n >= 2) as one Kinesis record. */
static struct cn__krec *krec_aggregate(struct cn__prod_shard *sh)
{
    struct cn__krec *k = calloc(1, sizeof *k);
    struct cn__agg_keys keys;
    size_t size = cn__agg_size(sh->agg);
    if (!k || !(k->data = malloc(size)) || cn__agg_keys(sh->agg, &keys) < 0 ||
        keys.pk_len >= sizeof k->pk_buf ||
        cn__agg_encode(sh->agg, k->data, size) != (ssize_t)size) {
        if (k) {
            free(k->data);
        }
        free(k);
        return NULL;
    }
    k->aggregated = true;
    k->data_len = size;
    memcpy(k->pk_buf, keys.pk, keys.pk_len);
    k->pk = k->pk_buf;
    k->pk_len = keys.pk_len;
    memcpy(k->ehk_buf, keys.ehk, keys.ehk_len + 1);
    k->ehk = k->ehk_buf;
    return k;
}

/* The shard's buffered records become one Kinesis record in the collection. */
static void seal(struct cn_kinesis_producer *p, struct cn__prod_stream *s,
                 struct cn__prod_shard *sh)
{
    if (sh->n == 0) {
        return;
    }
    struct cn__urec *head = sh->head;
    size_t n = sh->n;
    struct cn__krec *k = n == 1 ? krec_plain(head, sh, sh->oldest) : krec_aggregate(sh);
    sh->head = sh->tail = NULL;
    sh->n = 0;
    if (sh->agg) {
        cn__agg_reset(sh->agg);
    }
    if (!k) {
        cn__prod_fail_list(p, head, -ENOMEM, NULL, "out of memory aggregating");
        return;
    }
    if (n > 1) {
        k->head = head;
        k->n = n;
        k->oldest = sh->oldest;
        cn__prod_text(k->shard, sizeof k->shard, sh->id);
        k->st = sh->st;
        CN__COUNT(p, s, aggregates, 1);
    }
    cn__prod_admit(p, s, sh, k);
}

/* ---- routing ---------------------------------------------------------------- */

static int loader(void *arg);

static void start_loader(struct cn_kinesis_producer *p, struct cn__prod_stream *s)
{
    if (s->loading || p->closing) {
        return;
    }
    s->loading = true;
    int rc = cn_group_spawn(p->group, loader, s, NULL);
    if (rc < 0) {
        s->loading = false;
        struct cn__urec *w = s->wait_head;
        s->wait_head = s->wait_tail = NULL;
        cn__prod_fail_list(p, w, rc, NULL, "could not start the shard map loader");
    }
}

static void plain(struct cn_kinesis_producer *p, struct cn__prod_stream *s,
                  struct cn__prod_shard *sh, struct cn__urec *u)
{
    struct cn__krec *k = krec_plain(u, sh, cn_now());
    if (!k) {
        cn__prod_finish(p, u, -ENOMEM, NULL, "out of memory");
        return;
    }
    cn__prod_admit(p, s, sh, k);
}

void cn__prod_route(struct cn_kinesis_producer *p, struct cn__prod_stream *s, struct cn__urec *u)
{
    if (!s->map) {
        append(&s->wait_head, &s->wait_tail, u);
        start_loader(p, s);
        return;
    }
    struct cn__prod_shard *sh = &s->shards[cn__shardmap_find(s->map, &u->hk)];
    if (!sh->agg) {
        plain(p, s, sh, u);
        return;
    }
    size_t max = p->cfg.aggregation_max_size;
    if (cn__agg_size_if_added(sh->agg, u->pk, u->pk_len, u->ehk, u->ehk_len, u->data_len) > max) {
        seal(p, s, sh);
        if (cn__agg_size_if_added(sh->agg, u->pk, u->pk_len, u->ehk, u->ehk_len, u->data_len) >
            max) {
            plain(p, s, sh, u); /* too big to share an aggregate: sent as it is */
            return;
        }
    }
    ssize_t rc = cn__agg_add(sh->agg, u->pk, u->pk_len, u->ehk, u->ehk_len, u->data, u->data_len);
    if (rc < 0) {
        cn__prod_finish(p, u, (int)rc, NULL, "aggregation failed");
        return;
    }
    append(&sh->head, &sh->tail, u);
    if (sh->n++ == 0) {
        sh->oldest = cn_now();
        cn_event_set(&p->kick);
    }
}

int cn__prod_stream_get(struct cn_kinesis_producer *p, const char *name,
                        struct cn__prod_stream **out)
{
    for (struct cn__prod_stream *s = p->streams; s; s = s->next) {
        if (strcmp(s->name, name) == 0) {
            *out = s;
            return 0;
        }
    }
    struct cn__prod_stream *s = calloc(1, sizeof *s);
    if (!s) {
        return -ENOMEM;
    }
    s->p = p;
    cn__prod_text(s->name, sizeof s->name, name);
    s->next = p->streams;
    p->streams = s;
    *out = s;
    return 0;
}

/* ---- shard maps --------------------------------------------------------------- */

static void shards_free(struct cn__prod_shard *shards, size_t n)
{
    for (size_t i = 0; shards && i < n; i++) {
        cn__agg_free(shards[i].agg);
    }
    free(shards);
}

/* The stats of shard id in s, made on first sight. */
static struct cn__shard_stats *stats_get(struct cn__prod_stream *s, const char *id)
{
    for (struct cn__shard_stats *st = s->stats; st; st = st->next) {
        if (strcmp(st->id, id) == 0) {
            return st;
        }
    }
    struct cn__shard_stats *st = calloc(1, sizeof *st);
    if (!st) {
        return NULL;
    }
    cn__prod_text(st->id, sizeof st->id, id);
    st->next = s->stats;
    s->stats = st;
    s->nstats++;
    return st;
}

static int shards_new(struct cn_kinesis_producer *p, struct cn__prod_stream *s,
                      const struct cn__shardmap *m, struct cn__prod_shard **out)
{
    size_t n = cn__shardmap_count(m);
    struct cn__prod_shard *sh = calloc(n, sizeof *sh);
    if (!sh) {
        return -ENOMEM;
    }
    size_t max = p->cfg.aggregation_max_size;
    if (max > CN_KINESIS_RECORD_MAX - 1) {
        max = CN_KINESIS_RECORD_MAX - 1; /* the outer partition key "a" counts too */
    }
    for (size_t i = 0; i < n; i++) {
        cn__prod_text(sh[i].id, sizeof sh[i].id, cn__shardmap_id(m, i));
        sh[i].refilled_ms = cn_now();
        sh[i].rec_tokens = p->rec_per_ms * 1000; /* start full: a second's burst */
        sh[i].byte_tokens = p->bytes_per_ms * 1000;
        if (!(sh[i].st = stats_get(s, sh[i].id)) ||
            (p->cfg.aggregation == CN_KINESIS_ON && cn__agg_new(&sh[i].agg, max) < 0)) {
            shards_free(sh, n);
            return -ENOMEM;
        }
    }
    *out = sh;
    return 0;
}

/* Whether maps a and b have the same shards (both sorted by hash key). */
static bool same_shards(const struct cn__shardmap *a, const struct cn__shardmap *b)
{
    size_t n = cn__shardmap_count(a);
    if (n != cn__shardmap_count(b)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cn__shardmap_id(a, i), cn__shardmap_id(b, i)) != 0) {
            return false;
        }
    }
    return true;
}

/* Appends the user records of k (in sub-sequence order) to a list and
 * frees k. */
static void unpack(struct cn__krec *k, struct cn__urec **head, struct cn__urec **tail)
{
    for (struct cn__urec *u = k->head, *next; u; u = next) {
        next = u->next;
        append(head, tail, u);
    }
    k->head = NULL;
    krec_free(k);
}

/* Every user record of s not yet in a request, oldest first: the
 * collection, the limiter queues, the aggregators, the wait list. The
 * places are left empty. */
static struct cn__urec *take_unsent(struct cn__prod_stream *s)
{
    struct cn__urec *head = NULL, *tail = NULL;
    for (struct cn__krec *k = s->coll_head, *next; k; k = next) {
        next = k->next;
        unpack(k, &head, &tail);
    }
    s->coll_head = s->coll_tail = NULL;
    s->coll_n = s->coll_bytes = 0;
    for (size_t i = 0; i < s->nshards; i++) {
        struct cn__prod_shard *sh = &s->shards[i];
        for (struct cn__krec *k = sh->lim_head, *next; k; k = next) {
            next = k->next;
            unpack(k, &head, &tail);
        }
        sh->lim_head = sh->lim_tail = NULL;
        for (struct cn__urec *u = sh->head, *next; u; u = next) {
            next = u->next;
            append(&head, &tail, u);
        }
        sh->head = sh->tail = NULL;
        sh->n = 0;
    }
    for (struct cn__urec *u = s->wait_head, *next; u; u = next) {
        next = u->next;
        append(&head, &tail, u);
    }
    s->wait_head = s->wait_tail = NULL;
    return head;
}

static int map_from_list(const struct cn_kinesis_shard_list *l, struct cn__shardmap **out)
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
    int rc = cn__shardmap_new(out, d, l->count);
    free(d);
    return rc;
}

/* Installs the map of l's shards. If the shards changed (a split or merge),
 * every record not yet in a request is routed again through the new map:
 * re-predicted, re-aggregated, so no aggregate straddles two shards. The
 * same shards keep everything where it is. */
static int install(struct cn_kinesis_producer *p, struct cn__prod_stream *s,
                   const struct cn_kinesis_shard_list *l)
{
    struct cn__shardmap *m;
    int rc = map_from_list(l, &m);
    if (rc < 0) {
        return rc;
    }
    s->map_ms = cn_now();
    if (s->map && same_shards(s->map, m)) {
        cn__shardmap_free(m);
        return 0;
    }
    struct cn__prod_shard *sh;
    rc = shards_new(p, s, m, &sh);
    if (rc < 0) {
        cn__shardmap_free(m);
        return rc;
    }
    struct cn__urec *head = take_unsent(s);
    shards_free(s->shards, s->nshards);
    cn__shardmap_free(s->map);
    s->map = m;
    s->shards = sh;
    s->nshards = cn__shardmap_count(m);
    for (struct cn__shard_stats *st = s->stats; st; st = st->next) {
        st->open = false;
    }
    for (size_t i = 0; i < s->nshards; i++) {
        sh[i].st->open = true;
    }
    CN__COUNT(p, s, shard_map_loads, 1);
    for (struct cn__urec *u = head, *next; u; u = next) {
        next = u->next;
        cn__prod_route(p, s, u);
    }
    return 0;
}

static int64_t backoff(struct cn_kinesis_producer *p, int attempt)
{
    int64_t d = p->cfg.min_backoff_ms;
    for (int i = 1; i < attempt && d < p->cfg.max_backoff_ms; i++) {
        d *= 2;
    }
    d = min64(d, p->cfg.max_backoff_ms);
    return d / 2 + (int64_t)(rnd(p) % (uint64_t)(d / 2 + 1)); /* "equal jitter" */
}

/* Records waiting for a map: fails those past their TTL; returns the
 * earliest deadline of the others (INT64_MAX if none). */
static int64_t expire_waiting(struct cn_kinesis_producer *p, struct cn__prod_stream *s, int code,
                              const struct cn_kinesis_error *err)
{
    struct cn__urec *keep = NULL, *tail = NULL, *u = s->wait_head;
    int64_t now = cn_now(), earliest = INT64_MAX;
    s->wait_head = s->wait_tail = NULL;
    while (u) {
        struct cn__urec *next = u->next;
        note_error(u, code, err->type, err->message);
        if (now >= u->deadline_ms) {
            expire(p, u);
        } else {
            earliest = min64(earliest, u->deadline_ms);
            append(&keep, &tail, u);
        }
        u = next;
    }
    /* An outcome callback may have put records meanwhile: they go after. */
    if (keep) {
        tail->next = s->wait_head;
        s->wait_head = keep;
        s->wait_tail = s->wait_tail ? s->wait_tail : tail;
    }
    return earliest;
}

/* ListShards until a map is installed, a non-retryable error fails the
 * waiting records, or nothing waits any more (a refresh gives up after a
 * few tries and keeps the old map). */
static int loader(void *arg)
{
    struct cn__prod_stream *s = arg;
    struct cn_kinesis_producer *p = s->p;
    for (int attempt = 1;; attempt++) {
        struct cn_kinesis_shard_list *l = NULL;
        struct cn_kinesis_error err = {0};
        int rc = cn_kinesis_list_shards(p->kc, s->name, CN_KINESIS_SHARDS_OPEN, &l, &err,
                                        cn_now() + p->cfg.request_timeout_ms);
        if (rc == 0) {
            rc = install(p, s, l);
            cn_kinesis_shard_list_free(l);
            if (rc == 0) {
                break;
            }
            snprintf(err.message, sizeof err.message, "ListShards: %s",
                     rc == -EAGAIN ? "open shards do not tile the hash key space"
                                   : cn_strerror(rc));
        }
        if (cn_cancelled()) {
            return 0; /* closing: the sweep fails what waits */
        }
        if (rc != -EAGAIN && !cn_kinesis_retryable(rc)) {
            struct cn__urec *w = s->wait_head;
            s->wait_head = s->wait_tail = NULL;
            cn__prod_fail_list(p, w, rc, err.type, err.message);
            break;
        }
        int64_t earliest = expire_waiting(p, s, rc, &err);
        if (!s->wait_head && (!s->map || attempt >= 5)) {
            break;
        }
        if (cn_sleep_until(min64(cn_now() + backoff(p, attempt), earliest)) < 0) {
            return 0;
        }
    }
    s->loading = false;
    s->map_ms = cn_now(); /* a failed refresh waits a whole interval too */
    return 0;
}

/* ---- flusher and dispatcher -------------------------------------------------- */

/* Lets out what the limiters allow, seals and emits what has waited long
 * enough (everything while a flush waits), starts due map refreshes;
 * returns the next time something is due (-1: nothing). */
static int64_t flush_due(struct cn_kinesis_producer *p)
{
    int64_t now = cn_now(), next = INT64_MAX, wait = p->cfg.record_max_buffered_time_ms;
    bool all = p->flushers > 0;
    for (struct cn__prod_stream *s = p->streams; s; s = s->next) {
        if (s->map && !s->loading) {
            int64_t refresh = s->map_ms + p->cfg.shard_map_refresh_ms;
            if (refresh <= now) {
                start_loader(p, s);
            } else {
                next = min64(next, refresh);
            }
        }
        for (size_t i = 0; i < s->nshards; i++) {
            struct cn__prod_shard *sh = &s->shards[i];
            next = min64(next, cn__prod_release_limited(p, s, sh, now));
            if (sh->n > 0 && (all || sh->oldest + wait <= now)) {
                seal(p, s, sh);
            } else if (sh->n > 0) {
                next = min64(next, sh->oldest + wait);
            }
        }
        if (s->coll_n > 0 && (all || s->coll_oldest + wait <= now)) {
            emit(p, s);
        } else if (s->coll_n > 0) {
            next = min64(next, s->coll_oldest + wait);
        }
    }
    return next == INT64_MAX ? -1 : next;
}

static int flusher(void *arg)
{
    struct cn_kinesis_producer *p = arg;
    for (;;) {
        cn_event_reset(&p->kick);
        int rc = cn_event_wait(&p->kick, flush_due(p));
        if (rc == -ECANCELED || (rc < 0 && rc != -ETIMEDOUT)) {
            return 0;
        }
    }
}

static int sender(void *arg);

static int dispatcher(void *arg)
{
    struct cn_kinesis_producer *p = arg;
    for (;;) {
        while (!p->ready_head) {
            cn_event_reset(&p->ready_ev);
            if (cn_event_wait(&p->ready_ev, -1) < 0) {
                return 0;
            }
        }
        if (cn_sem_acquire(&p->inflight, -1) < 0) {
            return 0;
        }
        struct cn__batch *b = p->ready_head;
        if (!b) {
            cn_sem_release(&p->inflight);
            continue;
        }
        p->ready_head = b->next;
        if (!p->ready_head) {
            p->ready_tail = NULL;
        }
        int rc = cn_group_spawn(p->group, sender, b, NULL);
        if (rc < 0) {
            cn_sem_release(&p->inflight);
            for (size_t i = 0; i < b->n; i++) {
                krec_fail(p, b->k[i], rc, "could not start a sender");
            }
            free(b);
        }
    }
}

int cn__prod_pipe_start(struct cn_kinesis_producer *p)
{
    int rc = cn_group_spawn(p->group, flusher, p, NULL);
    rc = rc < 0 ? rc : cn_group_spawn(p->group, dispatcher, p, NULL);
    if (rc == 0 && (p->cfg.on_metrics || p->cfg.metrics_log)) {
        rc = cn_group_spawn(p->group, cn__prod_reporter, p, NULL);
    }
    return rc;
}

/* ---- sender ------------------------------------------------------------------- */

static void on_success(struct cn_kinesis_producer *p, struct cn__prod_stream *s, struct cn__krec *k,
                       const struct cn_kinesis_put_result *r)
{
    if (strcmp(r->shard_id, k->shard) != 0) {
        CN__COUNT(p, s, wrong_shard, k->n);
        start_loader(p, s); /* a split or merge: refresh the map */
    }
    k->st->c.succeeded += k->n;
    /* The parser bounded both to their buffers: measured once per Kinesis
     * record, copied into each of its (up to hundreds of) user records. */
    size_t shard_len = strlen(r->shard_id) + 1, seq_len = strlen(r->sequence_number) + 1;
    uint64_t sub = 0;
    for (struct cn__urec *u = k->head, *next; u; u = next, sub++) {
        next = u->next;
        memcpy(u->out.shard_id, r->shard_id, shard_len);
        memcpy(u->out.sequence_number, r->sequence_number, seq_len);
        u->out.sub_sequence_number = k->aggregated ? sub : 0;
        u->out.aggregated = k->aggregated;
        cn__prod_finish(p, u, 0, NULL, NULL);
    }
    k->head = NULL;
}

/* A 200 whose body is not a PutRecords answer: the request was most
 * likely processed and its answer garbled on the way (a proxy, a cut
 * connection), so like a timeout it is retried: failing the records could
 * report as failed what is stored; retrying stores them at least once. */
static bool answer_lost(int code)
{
    return code == CN_EKINESIS_BAD_RESPONSE || code == CN_EKINESIS_CONTENT_TYPE;
}

/* A failed entry (or request): every record inside fails now, or joins
 * the retry list (head/tail). */
static void on_failure(struct cn_kinesis_producer *p, struct cn__krec *k, int code,
                       const char *type, const char *msg, struct cn__urec **head,
                       struct cn__urec **tail)
{
    bool retry = answer_lost(code) || cn_kinesis_retryable(code);
    int64_t now = cn_now();
    if (code == CN_EKINESIS_THROUGHPUT) {
        CN__COUNT(p, k->head->s, throttled, k->n);
        k->st->c.throttled += k->n;
    }
    if (!retry) {
        k->st->c.failed += k->n;
    }
    for (struct cn__urec *u = k->head, *next; u; u = next) {
        next = u->next;
        if (!retry) {
            cn__prod_finish(p, u, code, type, msg);
            continue;
        }
        note_error(u, code, type, msg);
        if (now >= u->deadline_ms) {
            expire(p, u);
        } else {
            append(head, tail, u);
        }
    }
    k->head = NULL;
}

/* Sleeps a backoff (at most until the earliest TTL), then routes the
 * records again: re-predicted with the current map, re-aggregated. */
static void retry_later(struct cn_kinesis_producer *p, struct cn__prod_stream *s,
                        struct cn__urec *head)
{
    int attempts = 1;
    int64_t earliest = INT64_MAX;
    for (struct cn__urec *u = head; u; u = u->next) {
        attempts = u->out.attempts > attempts ? u->out.attempts : attempts;
        earliest = min64(earliest, u->deadline_ms);
        CN__COUNT(p, s, retried, 1);
    }
    if (cn_sleep_until(min64(cn_now() + backoff(p, attempts), earliest)) < 0) {
        cn__prod_fail_list(p, head, CN_ECLOSED, NULL,
                           "producer closed while the record waited to be retried");
        return;
    }
    int64_t now = cn_now();
    for (struct cn__urec *u = head, *next; u; u = next) {
        next = u->next;
        if (now >= u->deadline_ms) {
            expire(p, u);
        } else {
            cn__prod_route(p, s, u);
        }
    }
}

static int put_batch(struct cn_kinesis_producer *p, struct cn__batch *b,
                     struct cn_kinesis_put_records_result **res, struct cn_kinesis_error *err)
{
    struct cn_kinesis_entry *e = calloc(b->n, sizeof *e);
    if (!e) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < b->n; i++) {
        struct cn__krec *k = b->k[i];
        e[i] = (struct cn_kinesis_entry){.partition_key = k->pk,
                                         .partition_key_len = k->pk_len,
                                         .data = k->data,
                                         .data_len = k->data_len,
                                         .explicit_hash_key = k->ehk};
        for (struct cn__urec *u = k->head; u; u = u->next) {
            u->out.attempts++;
        }
        CN__COUNT(p, b->s, sent, k->n);
        CN__COUNT(p, b->s, bytes_sent, cn__krec_size(k));
        k->st->c.sent += k->n;
        k->st->c.bytes_sent += cn__krec_size(k);
    }
    CN__COUNT(p, b->s, requests, 1);
    uint64_t t0 = uv_hrtime();
    int rc = cn_kinesis_put_records(p->kc, b->s->name, e, b->n, res, err,
                                    cn_now() + p->cfg.request_timeout_ms);
    uint64_t us = (uv_hrtime() - t0) / 1000;
    cn_kinesis_histogram_add(&p->request_rtt, us);
    cn_kinesis_histogram_add(&b->s->request_rtt, us);
    free(e);
    return rc;
}

/* Entries whose every record is past its TTL (they waited for a
 * connection) are failed, not sent. Returns the entries left. */
static size_t drop_expired(struct cn_kinesis_producer *p, struct cn__batch *b)
{
    int64_t now = cn_now();
    size_t keep = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct cn__krec *k = b->k[i];
        bool live = false;
        for (struct cn__urec *u = k->head; u && !live; u = u->next) {
            live = now < u->deadline_ms;
        }
        if (live) {
            b->k[keep++] = k;
            continue;
        }
        for (struct cn__urec *u = k->head, *next; u; u = next) {
            next = u->next;
            expire(p, u);
        }
        k->head = NULL;
        krec_free(k);
    }
    return b->n = keep;
}

static int sender(void *arg)
{
    struct cn__batch *b = arg;
    struct cn__prod_stream *s = b->s;
    struct cn_kinesis_producer *p = s->p;
    struct cn_kinesis_put_records_result *res = NULL;
    struct cn_kinesis_error err = {0};
    if (drop_expired(p, b) == 0) {
        cn_sem_release(&p->inflight);
        free(b);
        return 0;
    }
    int rc = put_batch(p, b, &res, &err);
    cn_sem_release(&p->inflight);
    struct cn__urec *head = NULL, *tail = NULL;
    for (size_t i = 0; i < b->n; i++) {
        struct cn__krec *k = b->k[i];
        if (rc < 0 && cn_cancelled()) {
            cn__prod_fail_list(p, k->head, CN_ECLOSED, NULL,
                               "producer closed while the request was in flight");
        } else if (rc < 0) {
            on_failure(p, k, rc, err.type, err.message, &head, &tail);
        } else if (res->results[i].code == 0) {
            on_success(p, s, k, &res->results[i]);
        } else {
            const struct cn_kinesis_put_result *r = &res->results[i];
            on_failure(p, k, r->code, r->error_code, r->error_message, &head, &tail);
        }
        krec_free(k);
    }
    cn_kinesis_put_records_result_free(res);
    free(b);
    if (head) {
        retry_later(p, s, head);
    }
    return 0;
}

/* ---- close ----------------------------------------------------------------------- */

void cn__prod_pipe_sweep(struct cn_kinesis_producer *p)
{
    while (p->ready_head) {
        struct cn__batch *b = p->ready_head;
        p->ready_head = b->next;
        for (size_t i = 0; i < b->n; i++) {
            krec_fail(p, b->k[i], CN_ECLOSED, closed_msg);
        }
        free(b);
    }
    p->ready_tail = NULL;
    while (p->streams) {
        struct cn__prod_stream *s = p->streams;
        p->streams = s->next;
        cn__prod_fail_list(p, s->wait_head, CN_ECLOSED, NULL, closed_msg);
        for (size_t i = 0; i < s->nshards; i++) {
            cn__prod_fail_list(p, s->shards[i].head, CN_ECLOSED, NULL, closed_msg);
            for (struct cn__krec *k = s->shards[i].lim_head, *next; k; k = next) {
                next = k->next;
                krec_fail(p, k, CN_ECLOSED, closed_msg);
            }
        }
        while (s->stats) {
            struct cn__shard_stats *st = s->stats;
            s->stats = st->next;
            free(st);
        }
        for (struct cn__krec *k = s->coll_head, *next; k; k = next) {
            next = k->next;
            krec_fail(p, k, CN_ECLOSED, closed_msg);
        }
        shards_free(s->shards, s->nshards);
        cn__shardmap_free(s->map);
        free(s);
    }
}
