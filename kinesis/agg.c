/* SPDX-License-Identifier: MIT */
/*
 * The KPL aggregated record codec: aggregator and deaggregator.
 *
 * Owns the bytes of the KPL format (magic, AggregatedRecord, MD5; see
 * agg.h and kpl.proto). The producer's per-shard aggregation calls the
 * aggregator; the consumer side (kinesis-cat, tests) calls the deaggregator.
 *
 * Encoder. A proto2 message serializes its fields in field-number order
 * and a repeated field as one entry per element, so AggregatedRecord is the
 * concatenation of three runs: the field-1 entries (partition key table),
 * the field-2 entries (explicit hash key table), the field-3 entries
 * (records). The aggregator keeps each run encoded in its own buffer as
 * records arrive; encoding is magic + three copies + MD5, and the size is
 * always the sum of the three lengths plus 20, which is what makes the
 * prediction exact and O(1) in the number of records. Wire format:
 * protobuf "Encoding" guide (tag = field << 3 | wire type; varints 7 bits
 * per byte, least significant group first).
 *
 * Decoder. protobuf-c unpacks into an arena (a few large chunks freed at
 * close, not one malloc per record); the iterator hands out views into it.
 * The fallbacks and index checks follow the KCL (agg.h).
 */
#include "kinesis/agg.h"

#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "kpl.pb-c.h"

const uint8_t cn__agg_magic[CN__AGG_MAGIC_LEN] = {0xF3, 0x89, 0x9A, 0xC2};

/* Protobuf tags: field number << 3 | wire type (0 varint, 2 length-delimited). */
enum {
    TAG_PK_TABLE = 1 << 3 | 2,
    TAG_EHK_TABLE = 2 << 3 | 2,
    TAG_RECORD = 3 << 3 | 2,
    TAG_REC_PK_INDEX = 1 << 3 | 0,
    TAG_REC_EHK_INDEX = 2 << 3 | 0,
    TAG_REC_DATA = 3 << 3 | 2,
};

#define VARINT_MAX 10

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* A growable byte run. */
struct buf {
    uint8_t *p;
    size_t len;
    size_t cap;
};

static int buf_reserve(struct buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL) {
        return -ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

/* ---- Key table: encoded entries plus a hash set over them ---------------- */

struct keyref {
    uint32_t off; /* of the key bytes in keyset.run */
    uint32_t len;
    uint32_t hash;
};

struct slot {
    uint32_t gen; /* == keyset.gen: in use; anything else: empty */
    uint32_t idx;
};

struct keyset {
    uint8_t tag;    /* TAG_PK_TABLE or TAG_EHK_TABLE */
    struct buf run; /* the table's encoded protobuf entries */
    struct keyref *refs;
    uint32_t n;
    uint32_t refs_cap;
    struct slot *slots; /* open addressing, linear probing, load <= 1/2 */
    uint32_t mask;      /* slots - 1 (a power of two), or 0 before the first add */
    uint32_t gen;       /* bumping it empties every slot: O(1) reset */
};

/* FNV-1a: keys are short (partition keys at most 256 characters). */
static uint32_t key_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    }
    return h;
}

/* Index of the key, or ks->n if absent. */
static uint32_t keyset_find(const struct keyset *ks, const char *s, size_t len, uint32_t h)
{
    if (ks->mask == 0) {
        return ks->n;
    }
    for (uint32_t i = h & ks->mask;; i = (i + 1) & ks->mask) {
        const struct slot *sl = &ks->slots[i];
        if (sl->gen != ks->gen) {
            return ks->n;
        }
        const struct keyref *r = &ks->refs[sl->idx];
        if (r->hash == h && r->len == len && memcmp(ks->run.p + r->off, s, len) == 0) {
            return sl->idx;
        }
    }
}

static void slot_insert(struct keyset *ks, uint32_t idx)
{
    uint32_t i = ks->refs[idx].hash & ks->mask;
    while (ks->slots[i].gen == ks->gen) {
        i = (i + 1) & ks->mask;
    }
    ks->slots[i].gen = ks->gen;
    ks->slots[i].idx = idx;
}

/* Makes room for one more key: refs, and slots at load <= 1/2. */
static int keyset_grow(struct keyset *ks)
{
    if (ks->n == ks->refs_cap) {
        uint32_t cap = ks->refs_cap ? ks->refs_cap * 2 : 16;
        struct keyref *r = realloc(ks->refs, cap * sizeof *r);
        if (r == NULL) {
            return -ENOMEM;
        }
        ks->refs = r;
        ks->refs_cap = cap;
    }
    if ((uint64_t)(ks->n + 1) * 2 <= (uint64_t)ks->mask + 1 && ks->mask != 0) {
        return 0;
    }
    uint32_t nslots = ks->mask ? (ks->mask + 1) * 2 : 32;
    struct slot *s = calloc(nslots, sizeof *s);
    if (s == NULL) {
        return -ENOMEM;
    }
    free(ks->slots);
    ks->slots = s;
    ks->mask = nslots - 1;
    ks->gen = 1;
    for (uint32_t i = 0; i < ks->n; i++) {
        slot_insert(ks, i);
    }
    return 0;
}

/* Makes room for one more key of len bytes, so keyset_add cannot fail. */
static int keyset_prepare(struct keyset *ks, size_t len)
{
    if (keyset_grow(ks) < 0 || buf_reserve(&ks->run, 1 + VARINT_MAX + len) < 0) {
        return -ENOMEM;
    }
    return 0;
}

/* Appends a new key's table entry; the caller checked it is absent and
 * prepared room. */
static void keyset_add(struct keyset *ks, const char *s, size_t len, uint32_t h)
{
    uint8_t *p = ks->run.p + ks->run.len;
    *p++ = ks->tag;
    p = varint_put(p, len);
    struct keyref *r = &ks->refs[ks->n];
    r->off = (uint32_t)(p - ks->run.p);
    r->len = (uint32_t)len;
    r->hash = h;
    memcpy(p, s, len);
    ks->run.len = (size_t)(p - ks->run.p) + len;
    slot_insert(ks, ks->n);
    ks->n++;
}

static void keyset_reset(struct keyset *ks)
{
    ks->run.len = 0;
    ks->n = 0;
    if (++ks->gen == 0) { /* wrapped: stale stamps could match again */
        if (ks->slots != NULL) {
            memset(ks->slots, 0, ((size_t)ks->mask + 1) * sizeof *ks->slots);
        }
        ks->gen = 1;
    }
}

static void keyset_free(struct keyset *ks)
{
    free(ks->run.p);
    free(ks->refs);
    free(ks->slots);
}

/* ---- Aggregator ----------------------------------------------------------- */

struct cn__agg {
    struct keyset pks;
    struct keyset ehks;
    struct buf recs; /* the encoded field-3 entries */
    size_t count;
    size_t max_size;
    bool first_has_ehk; /* the first record's ehk is ehks entry 0 */
};

int cn__agg_new(struct cn__agg **out, size_t max_size)
{
    *out = NULL;
    if (max_size < CN__AGG_OVERHEAD || max_size > UINT32_MAX) {
        return -EINVAL;
    }
    struct cn__agg *agg = calloc(1, sizeof *agg);
    if (agg == NULL) {
        return -ENOMEM;
    }
    agg->pks.tag = TAG_PK_TABLE;
    agg->ehks.tag = TAG_EHK_TABLE;
    agg->max_size = max_size;
    *out = agg;
    return 0;
}

void cn__agg_free(struct cn__agg *agg)
{
    if (agg == NULL) {
        return;
    }
    keyset_free(&agg->pks);
    keyset_free(&agg->ehks);
    free(agg->recs.p);
    free(agg);
}

void cn__agg_reset(struct cn__agg *agg)
{
    keyset_reset(&agg->pks);
    keyset_reset(&agg->ehks);
    agg->recs.len = 0;
    agg->count = 0;
    agg->first_has_ehk = false;
}

size_t cn__agg_count(const struct cn__agg *agg)
{
    return agg->count;
}

size_t cn__agg_size(const struct cn__agg *agg)
{
    return CN__AGG_OVERHEAD + agg->pks.run.len + agg->ehks.run.len + agg->recs.len;
}

/* Where a record's keys land, and what it adds to the encoding. */
struct plan {
    uint32_t pk_hash, ehk_hash;
    uint32_t pk_idx, ehk_idx; /* == table size: a new entry */
    size_t inner;             /* Record message length */
    size_t growth;            /* bytes added to the aggregate */
};

/* Largest data length planned for: keeps every sum below SIZE_MAX. */
#define DATA_MAX (SIZE_MAX / 8)

static void plan_record(const struct cn__agg *agg, struct plan *pl, const char *pk, size_t pk_len,
                        const char *ehk, size_t ehk_len, size_t data_len)
{
    size_t growth = 0;
    pl->pk_hash = key_hash(pk, pk_len);
    pl->pk_idx = keyset_find(&agg->pks, pk, pk_len, pl->pk_hash);
    if (pl->pk_idx == agg->pks.n) {
        growth += 1 + varint_len(pk_len) + pk_len;
    }
    size_t inner = 1 + varint_len(pl->pk_idx) + 1 + varint_len(data_len) + data_len;
    if (ehk != NULL) {
        pl->ehk_hash = key_hash(ehk, ehk_len);
        pl->ehk_idx = keyset_find(&agg->ehks, ehk, ehk_len, pl->ehk_hash);
        if (pl->ehk_idx == agg->ehks.n) {
            growth += 1 + varint_len(ehk_len) + ehk_len;
        }
        inner += 1 + varint_len(pl->ehk_idx);
    }
    pl->inner = inner;
    pl->growth = growth + 1 + varint_len(inner) + inner;
}

size_t cn__agg_size_if_added(const struct cn__agg *agg, const char *pk, size_t pk_len,
                             const char *ehk, size_t ehk_len, size_t data_len)
{
    if (data_len > DATA_MAX || pk_len > DATA_MAX || ehk_len > DATA_MAX) {
        return SIZE_MAX;
    }
    struct plan pl;
    plan_record(agg, &pl, pk, pk_len, ehk, ehk_len, data_len);
    return cn__agg_size(agg) + pl.growth;
}

static void put_record(struct cn__agg *agg, const struct plan *pl, bool has_ehk, const void *data,
                       size_t data_len)
{
    uint8_t *p = agg->recs.p + agg->recs.len;
    *p++ = TAG_RECORD;
    p = varint_put(p, pl->inner);
    *p++ = TAG_REC_PK_INDEX;
    p = varint_put(p, pl->pk_idx);
    if (has_ehk) {
        *p++ = TAG_REC_EHK_INDEX;
        p = varint_put(p, pl->ehk_idx);
    }
    *p++ = TAG_REC_DATA;
    p = varint_put(p, data_len);
    if (data_len > 0) {
        memcpy(p, data, data_len);
    }
    agg->recs.len = (size_t)(p - agg->recs.p) + data_len;
}

ssize_t cn__agg_add(struct cn__agg *agg, const char *pk, size_t pk_len, const char *ehk,
                    size_t ehk_len, const void *data, size_t data_len)
{
    if (pk_len == 0 || (ehk != NULL && ehk_len == 0)) {
        return -EINVAL;
    }
    if (data_len > agg->max_size || pk_len > agg->max_size || ehk_len > agg->max_size) {
        return -EMSGSIZE;
    }
    struct plan pl;
    plan_record(agg, &pl, pk, pk_len, ehk, ehk_len, data_len);
    size_t size = cn__agg_size(agg) + pl.growth;
    if (size > agg->max_size) {
        return -EMSGSIZE;
    }
    bool new_pk = pl.pk_idx == agg->pks.n;
    bool new_ehk = ehk != NULL && pl.ehk_idx == agg->ehks.n;
    /* Reserve everything first so a failure leaves agg unchanged. */
    if (buf_reserve(&agg->recs, pl.growth) < 0 ||
        (new_pk && keyset_prepare(&agg->pks, pk_len) < 0) ||
        (new_ehk && keyset_prepare(&agg->ehks, ehk_len) < 0)) {
        return -ENOMEM;
    }
    if (new_pk) {
        keyset_add(&agg->pks, pk, pk_len, pl.pk_hash);
    }
    if (new_ehk) {
        keyset_add(&agg->ehks, ehk, ehk_len, pl.ehk_hash);
    }
    if (agg->count == 0) {
        agg->first_has_ehk = ehk != NULL;
    }
    put_record(agg, &pl, ehk != NULL, data, data_len);
    agg->count++;
    return (ssize_t)size;
}

ssize_t cn__agg_encode(const struct cn__agg *agg, void *out, size_t cap)
{
    if (agg->count == 0) {
        return -EINVAL;
    }
    size_t size = cn__agg_size(agg);
    if (cap < size) {
        return -ENOBUFS;
    }
    const struct buf *runs[3] = {&agg->pks.run, &agg->ehks.run, &agg->recs};
    uint8_t *p = out;
    memcpy(p, cn__agg_magic, CN__AGG_MAGIC_LEN);
    p += CN__AGG_MAGIC_LEN;
    uint8_t *pb = p;
    for (int i = 0; i < 3; i++) {
        if (runs[i]->len > 0) {
            memcpy(p, runs[i]->p, runs[i]->len);
            p += runs[i]->len;
        }
    }
    unsigned int n = 0;
    if (!EVP_Digest(pb, (size_t)(p - pb), p, &n, EVP_md5(), NULL) || n != CN__AGG_DIGEST_LEN) {
        abort(); /* no MD5 (a FIPS-only provider): the format cannot be written */
    }
    return (ssize_t)size;
}

int cn__agg_keys(const struct cn__agg *agg, struct cn__agg_keys *out)
{
    if (agg->count == 0) {
        return -EINVAL;
    }
    /* The first record's keys are entry 0 of each table: first use decides
     * the index. */
    const struct keyref *pk = &agg->pks.refs[0];
    struct cn__hashkey hk;
    if (agg->first_has_ehk) {
        const struct keyref *e = &agg->ehks.refs[0];
        if (cn__hashkey_parse(&hk, (const char *)agg->ehks.run.p + e->off, e->len) < 0) {
            return -EINVAL;
        }
    } else {
        cn__hashkey_from_pk(&hk, agg->pks.run.p + pk->off, pk->len);
    }
    out->ehk_len = cn__hashkey_format(&hk, out->ehk);
    if (agg->count == 1) {
        out->pk = (const char *)agg->pks.run.p + pk->off;
        out->pk_len = pk->len;
    } else {
        out->pk = "a";
        out->pk_len = 1;
    }
    return 0;
}

/* ---- Deaggregator: protobuf-c into an arena ------------------------------- */

struct chunk {
    struct chunk *next;
    size_t cap;
    size_t used;
    max_align_t mem[]; /* cap bytes */
};

struct arena {
    struct chunk *head;
    size_t next_cap; /* size of the next chunk; doubles */
    bool failed;     /* an allocation failed: unpack's NULL means -ENOMEM */
};

static void *arena_alloc(void *data, size_t size)
{
    struct arena *a = data;
    const size_t align = alignof(max_align_t);
    size = size ? (size + align - 1) & ~(align - 1) : align;
    struct chunk *c = a->head;
    if (c == NULL || c->cap - c->used < size) {
        size_t cap = a->next_cap > size ? a->next_cap : size;
        c = malloc(sizeof *c + cap);
        if (c == NULL) {
            a->failed = true;
            return NULL;
        }
        c->next = a->head;
        c->cap = cap;
        c->used = 0;
        a->head = c;
        a->next_cap = cap * 2;
    }
    void *p = (unsigned char *)c->mem + c->used;
    c->used += size;
    return p;
}

static void arena_free(void *data, void *ptr)
{
    (void)data; /* everything goes at once in chunks_free() */
    (void)ptr;
}

static void chunks_free(struct chunk *c)
{
    while (c != NULL) {
        struct chunk *next = c->next;
        free(c);
        c = next;
    }
}

/* KCL: magic, more than DIGEST_SIZE bytes after it, and a matching MD5. */
static bool framed(const uint8_t *p, size_t len)
{
    if (len <= CN__AGG_OVERHEAD || memcmp(p, cn__agg_magic, CN__AGG_MAGIC_LEN) != 0) {
        return false;
    }
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    size_t pb_len = len - CN__AGG_OVERHEAD;
    if (!EVP_Digest(p + CN__AGG_MAGIC_LEN, pb_len, md, &n, EVP_md5(), NULL) ||
        n != CN__AGG_DIGEST_LEN) {
        abort(); /* no MD5 (a FIPS-only provider) */
    }
    return memcmp(md, p + CN__AGG_MAGIC_LEN + pb_len, CN__AGG_DIGEST_LEN) == 0;
}

__extension__ typedef unsigned __int128 u128;

static u128 hk128(const struct cn__hashkey *k)
{
    return ((u128)k->hi << 64) | k->lo;
}

/* An explicit hash key read as java.math.BigInteger(String) reads it (what
 * AggregatorUtil.effectiveHashKey() does), tested against [lo, hi]:
 * 1 inside, 0 outside, -EBADMSG not a number (NumberFormatException). */
static int ehk_in_range(const uint8_t *s, size_t len, const struct cn__hashkey range[2])
{
    size_t i = 0;
    bool neg = false, big = false;
    if (len > 0 && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == len) {
        return -EBADMSG;
    }
    const u128 max = ~(u128)0;
    u128 v = 0;
    for (; i < len; i++) {
        unsigned d = s[i] - (unsigned)'0';
        if (d > 9) {
            return -EBADMSG;
        }
        if (big || v > (max - d) / 10) {
            big = true; /* above 2^128-1, so above any ending key */
            continue;
        }
        v = v * 10 + d;
    }
    if (big || (neg && v != 0)) {
        return 0;
    }
    return v >= hk128(&range[0]) && v <= hk128(&range[1]);
}

static int record_in_range(const Cn__Kpl__AggregatedRecord *ar, const Cn__Kpl__Record *r,
                           const struct cn__hashkey range[2])
{
    if (r->has_explicit_hash_key_index) {
        const ProtobufCBinaryData *e = &ar->explicit_hash_key_table[r->explicit_hash_key_index];
        return ehk_in_range(e->data, e->len, range);
    }
    const ProtobufCBinaryData *pk = &ar->partition_key_table[r->partition_key_index];
    struct cn__hashkey k;
    cn__hashkey_from_pk(&k, pk->data, pk->len);
    return hk128(&k) >= hk128(&range[0]) && hk128(&k) <= hk128(&range[1]);
}

/* Decides, before anything is yielded, how many records come out and how
 * the iteration ends, walking the records in the KCL's order. */
static void scan(struct cn__deagg *d, const struct cn__hashkey range[2])
{
    const Cn__Kpl__AggregatedRecord *ar = d->msg;
    d->limit = ar->n_records;
    d->end_rc = 0;
    for (size_t i = 0; i < ar->n_records; i++) {
        const Cn__Kpl__Record *r = ar->records[i];
        int in = 1;
        if (r->partition_key_index >= ar->n_partition_key_table ||
            (r->has_explicit_hash_key_index &&
             r->explicit_hash_key_index >= ar->n_explicit_hash_key_table)) {
            in = -EBADMSG; /* KCL: IndexOutOfBoundsException, records before stand */
        } else if (range != NULL) {
            in = record_in_range(ar, r, range);
        }
        if (in < 0) {
            d->limit = i;
            d->end_rc = in;
            return;
        }
        if (in == 0) { /* KCL: removes the aggregate's records, breaks */
            d->limit = 0;
            return;
        }
    }
}

int cn__deagg_open(struct cn__deagg *d, const struct cn__user_record *rec,
                   const struct cn__hashkey range[2])
{
    memset(d, 0, sizeof *d);
    d->outer = *rec;
    d->outer.sub_seq = 0;
    d->limit = 1; /* plain until proven an aggregate */
    if (rec->data_len > CN__DEAGG_MAX_INPUT) {
        return -EMSGSIZE;
    }
    if (!framed(rec->data, rec->data_len)) {
        return 0;
    }
    struct arena a = {.next_cap = rec->data_len + 4096};
    ProtobufCAllocator alloc = {.alloc = arena_alloc, .free = arena_free, .allocator_data = &a};
    Cn__Kpl__AggregatedRecord *ar = cn__kpl__aggregated_record__unpack(
        &alloc, rec->data_len - CN__AGG_OVERHEAD, rec->data + CN__AGG_MAGIC_LEN);
    if (ar == NULL) {
        chunks_free(a.head);
        /* KCL: InvalidProtocolBufferException means a plain record. */
        return a.failed ? -ENOMEM : 0;
    }
    d->msg = ar;
    d->arena = a.head;
    d->aggregated = true;
    scan(d, range);
    return 1;
}

/* protobuf-c leaves an empty bytes field NULL; a view is never NULL. */
static const uint8_t *nonnull(const uint8_t *p)
{
    return p != NULL ? p : (const uint8_t *)"";
}

int cn__deagg_next(struct cn__deagg *d, struct cn__user_record *out)
{
    if (d->next >= d->limit) {
        return d->end_rc;
    }
    size_t i = d->next++;
    if (!d->aggregated) {
        *out = d->outer;
        return 1;
    }
    const Cn__Kpl__AggregatedRecord *ar = d->msg;
    const Cn__Kpl__Record *r = ar->records[i];
    const ProtobufCBinaryData *pk = &ar->partition_key_table[r->partition_key_index];
    out->pk = nonnull(pk->data);
    out->pk_len = pk->len;
    out->ehk = NULL;
    out->ehk_len = 0;
    if (r->has_explicit_hash_key_index) {
        const ProtobufCBinaryData *e = &ar->explicit_hash_key_table[r->explicit_hash_key_index];
        out->ehk = nonnull(e->data);
        out->ehk_len = e->len;
    }
    out->data = nonnull(r->data.data);
    out->data_len = r->data.len;
    out->sub_seq = i;
    return 1;
}

void cn__deagg_close(struct cn__deagg *d)
{
    chunks_free(d->arena);
    d->arena = NULL;
    d->msg = NULL;
    d->limit = 0;
    d->next = 0;
}
