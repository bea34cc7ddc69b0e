/* SPDX-License-Identifier: MIT */
/*
 * AWS Signature Version 4, laid out by the tasks of the AWS guide:
 *   task 1  canonical request  (emit_canonical)
 *   task 2  string to sign     (cn__sigv4_sign)
 *   task 3  signing key        (signing_key, cached)
 *   task 4  signature and the Authorization value (cn__sigv4_sign)
 *
 * The canonical request is never built as a whole: it streams through a
 * small buffer into SHA-256 (a sink), so a long session token or many
 * headers cost no allocation and no size limit. The same emitter writes
 * into a caller buffer for cn__sigv4_canonical_request(), so what tests and
 * logs see is exactly what was hashed.
 *
 * OpenSSL 3 costs: fetching an algorithm takes a lock and a lookup, so
 * SHA-256 and HMAC are fetched once per process and each thread keeps its
 * own digest and MAC contexts, created on first use and freed at thread
 * exit. After the first call on a thread, signing allocates nothing. The
 * per-thread state also caches derived signing keys: CACHE entries keyed by
 * (date, region, service, secret), replaced round robin.
 *
 * Called by the Kinesis API client for every request; pure otherwise.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "sigv4.h"

#define CACHE 4
#define SCOPE_PART_MAX 63 /* region and service: bytes */

struct key_entry {
    bool used;
    char date[9];
    char region[SCOPE_PART_MAX + 1];
    char service[SCOPE_PART_MAX + 1];
    size_t secret_len;
    char secret[CN_AWS_SECRET_MAX];
    unsigned char key[32];
};

struct thread_state {
    EVP_MD_CTX *md;
    EVP_MAC_CTX *mac;
    struct key_entry keys[CACHE];
    unsigned next; /* round-robin victim */
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t state_key;
static EVP_MD *sha256_md;
static EVP_MAC *hmac_mac;
static _Thread_local struct thread_state *state;

static void state_free(void *p)
{
    struct thread_state *st = p;
    if (st == NULL) {
        return;
    }
    EVP_MD_CTX_free(st->md);
    EVP_MAC_CTX_free(st->mac);
    OPENSSL_cleanse(st->keys, sizeof st->keys);
    free(st);
}

static void global_init(void)
{
    /* Kept for the life of the process, like OpenSSL's own tables. */
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    hmac_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (pthread_key_create(&state_key, state_free) != 0) {
        EVP_MD_free(sha256_md);
        EVP_MAC_free(hmac_mac);
        sha256_md = NULL;
        hmac_mac = NULL;
    }
}

static int state_get(struct thread_state **out)
{
    if (state != NULL) {
        *out = state;
        return 0;
    }
    pthread_once(&once, global_init);
    if (sha256_md == NULL || hmac_mac == NULL) {
        return CN_ETLS;
    }
    struct thread_state *st = calloc(1, sizeof *st);
    if (st == NULL) {
        return -ENOMEM;
    }
    st->md = EVP_MD_CTX_new();
    st->mac = EVP_MAC_CTX_new(hmac_mac);
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    /* The digest is set once here: passing it to every EVP_MAC_init would
     * fetch SHA-256 again on each call. */
    if (st->md == NULL || st->mac == NULL || !EVP_MAC_CTX_set_params(st->mac, params) ||
        pthread_setspecific(state_key, st) != 0) {
        state_free(st);
        return -ENOMEM;
    }
    state = st;
    *out = st;
    return 0;
}

void cn__sigv4_cache_clear(void)
{
    if (state != NULL) {
        OPENSSL_cleanse(state->keys, sizeof state->keys);
        state->next = 0;
    }
}

/* ---- primitives ----------------------------------------------------------- */

static const char hexdig[] = "0123456789abcdef";

static void hex_encode(char *dst, const unsigned char *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = hexdig[src[i] >> 4];
        dst[2 * i + 1] = hexdig[src[i] & 15];
    }
    dst[2 * n] = '\0';
}

static int hmac(struct thread_state *st, const unsigned char *key, size_t keylen, const void *msg,
                size_t len, unsigned char out[32])
{
    size_t outl = 0;
    if (!EVP_MAC_init(st->mac, key, keylen, NULL) || !EVP_MAC_update(st->mac, msg, len) ||
        !EVP_MAC_final(st->mac, out, &outl, 32) || outl != 32) {
        return CN_ETLS;
    }
    return 0;
}

static int sha256_hex(struct thread_state *st, const void *data, size_t len, char hex[65])
{
    unsigned char d[32];
    if (!EVP_DigestInit_ex(st->md, sha256_md, NULL) || !EVP_DigestUpdate(st->md, data, len) ||
        !EVP_DigestFinal_ex(st->md, d, NULL)) {
        return CN_ETLS;
    }
    hex_encode(hex, d, sizeof d);
    return 0;
}

/* A byte stream that goes either into SHA-256 (md != NULL) or into a caller
 * buffer; errors stick until the end. */
struct sink {
    EVP_MD_CTX *md;
    char *out;
    size_t cap;
    size_t len; /* bytes emitted so far */
    int err;
    size_t n; /* bytes waiting in buf (md mode) */
    char buf[512];
};

static void sink_flush(struct sink *s)
{
    if (s->n > 0 && s->err == 0 && !EVP_DigestUpdate(s->md, s->buf, s->n)) {
        s->err = CN_ETLS;
    }
    s->n = 0;
}

static void put(struct sink *s, const char *p, size_t n)
{
    if (s->md == NULL) {
        if (s->len + n < s->cap) {
            memcpy(s->out + s->len, p, n);
        } else {
            s->err = -ENOBUFS;
        }
    } else if (n > sizeof s->buf - s->n) {
        sink_flush(s);
        if (n >= sizeof s->buf) {
            if (s->err == 0 && !EVP_DigestUpdate(s->md, p, n)) {
                s->err = CN_ETLS;
            }
        } else {
            memcpy(s->buf, p, n);
            s->n = n;
        }
    } else {
        memcpy(s->buf + s->n, p, n);
        s->n += n;
    }
    s->len += n;
}

static void putc1(struct sink *s, char c)
{
    put(s, &c, 1);
}

static void puts0(struct sink *s, const char *str)
{
    put(s, str, strlen(str));
}

/* ---- encoding and comparison ---------------------------------------------- */

static bool unreserved(unsigned char c)
{
    /* RFC 3986 §2.3, as SigV4 requires: everything else is %XX. */
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

/* Writes the SigV4 encoding of byte c into e; returns its length (1 or 3). */
static size_t enc1(unsigned char c, char e[3])
{
    static const char up[] = "0123456789ABCDEF";
    if (unreserved(c)) {
        e[0] = (char)c;
        return 1;
    }
    e[0] = '%';
    e[1] = up[c >> 4];
    e[2] = up[c & 15];
    return 3;
}

static void put_encoded(struct sink *s, const char *p, size_t n)
{
    char e[3];
    for (size_t i = 0; i < n; i++) {
        put(s, e, enc1((unsigned char)p[i], e));
    }
}

/* Walks the encoded form of a string one byte at a time. */
struct enc_iter {
    const unsigned char *p;
    size_t n, i;
    char e[3];
    size_t k, len;
};

static int enc_next(struct enc_iter *it)
{
    if (it->k == it->len) {
        if (it->i == it->n) {
            return -1;
        }
        it->len = enc1(it->p[it->i++], it->e);
        it->k = 0;
    }
    return (unsigned char)it->e[it->k++];
}

/* Compares the encoded forms of a and b without building them: encoding
 * does not preserve byte order ('~' stays, 0x7F becomes "%7F"). */
static int enc_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    struct enc_iter x = {(const unsigned char *)a, an, 0, {0}, 0, 0};
    struct enc_iter y = {(const unsigned char *)b, bn, 0, {0}, 0, 0};
    for (;;) {
        int ca = enc_next(&x), cb = enc_next(&y);
        if (ca != cb || ca < 0) {
            return ca - cb;
        }
    }
}

static int lower_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    for (size_t i = 0; i < n; i++) {
        int ca = tolower((unsigned char)a[i]), cb = tolower((unsigned char)b[i]);
        if (ca != cb) {
            return ca - cb;
        }
    }
    return (an > bn) - (an < bn);
}

static bool lower_eq(const char *a, size_t an, const char *lit)
{
    return lower_cmp(a, an, lit, strlen(lit)) == 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f';
}

/* ---- task 1: the canonical request ------------------------------------------ */

struct hdr {
    const char *name;
    size_t nlen;
    const char *val;
    size_t vlen;
};

struct seg {
    const char *p;
    size_t n;
};

/* A validated, sorted view of the request. */
struct prep {
    struct hdr h[CN__SIGV4_MAX_HEADERS + 3];
    size_t nh;
    uint8_t porder[CN__SIGV4_MAX_PARAMS];
    struct seg seg[CN__SIGV4_MAX_SEGMENTS];
    size_t nseg;
    bool lead, trail; /* path starts / ends with '/' */
    char amz_date[17];
    char payload[65];
};

static bool skipped_header(const char *name, size_t n)
{
    /* botocore's SIGNED_HEADERS_BLACKLIST: rewritten by proxies, never
     * signed. The rest are the signer's own. */
    static const char *const skip[] = {
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
    };
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++) {
        if (lower_eq(name, n, skip[i])) {
            return true;
        }
    }
    return false;
}

static bool valid_header(const struct cn__sigv4_header *h)
{
    if (h->name == NULL || h->name_len == 0 || (h->value == NULL && h->value_len > 0)) {
        return false;
    }
    for (size_t i = 0; i < h->name_len; i++) {
        unsigned char c = (unsigned char)h->name[i];
        if (c <= ' ' || c >= 0x7f || c == ':') {
            return false;
        }
    }
    for (size_t i = 0; i < h->value_len; i++) {
        char c = h->value[i];
        if (c == '\r' || c == '\n' || c == '\0') {
            return false;
        }
    }
    return true;
}

static int add_header(struct prep *p, const char *name, size_t nlen, const char *val, size_t vlen)
{
    if (p->nh == sizeof p->h / sizeof p->h[0]) {
        return -E2BIG;
    }
    /* Insertion keeps equal names in the order given (they are joined). */
    size_t i = p->nh++;
    while (i > 0 && lower_cmp(p->h[i - 1].name, p->h[i - 1].nlen, name, nlen) > 0) {
        p->h[i] = p->h[i - 1];
        i--;
    }
    p->h[i] = (struct hdr){name, nlen, val, vlen};
    return 0;
}

static int prep_headers(struct prep *p, const struct cn__sigv4_request *req,
                        const struct cn_aws_creds *creds)
{
    bool host = false;
    if (req->nheaders > CN__SIGV4_MAX_HEADERS) {
        return -E2BIG;
    }
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct cn__sigv4_header *h = &req->headers[i];
        if (!valid_header(h)) {
            return -EINVAL;
        }
        if (skipped_header(h->name, h->name_len)) {
            continue;
        }
        host |= lower_eq(h->name, h->name_len, "host");
        add_header(p, h->name, h->name_len, h->value, h->value_len);
    }
    if (!host) {
        return -EINVAL;
    }
    add_header(p, "x-amz-date", 10, p->amz_date, 16);
    if (creds->session_token != NULL) {
        add_header(p, "x-amz-security-token", 20, creds->session_token, creds->session_token_len);
    }
    if (req->sign_content_sha256) {
        add_header(p, "x-amz-content-sha256", 20, p->payload, 64);
    }
    return 0;
}

static int prep_params(struct prep *p, const struct cn__sigv4_request *req)
{
    if (req->nparams > CN__SIGV4_MAX_PARAMS) {
        return -E2BIG;
    }
    for (size_t i = 0; i < req->nparams; i++) {
        const struct cn__sigv4_param *q = &req->params[i];
        if ((q->key == NULL && q->key_len > 0) || (q->value == NULL && q->value_len > 0)) {
            return -EINVAL;
        }
        /* Sorted by encoded key, then encoded value (SigV4 task 1, step 3). */
        size_t j = i;
        while (j > 0) {
            const struct cn__sigv4_param *o = &req->params[p->porder[j - 1]];
            int c = enc_cmp(o->key, o->key_len, q->key, q->key_len);
            if (c == 0) {
                c = enc_cmp(o->value, o->value_len, q->value, q->value_len);
            }
            if (c <= 0) {
                break;
            }
            p->porder[j] = p->porder[j - 1];
            j--;
        }
        p->porder[j] = (uint8_t)i;
    }
    return 0;
}

/* RFC 3986 §5.2.4 dot-segment removal, and empty segments dropped, as AWS
 * normalises paths for every service but S3. */
static int prep_path(struct prep *p, const char *path)
{
    size_t n = path == NULL ? 0 : strlen(path);
    if (n == 0) {
        p->lead = true;
        return 0;
    }
    p->lead = path[0] == '/';
    p->trail = path[n - 1] == '/';
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && path[j] != '/') {
            j++;
        }
        size_t len = j - i;
        if (len == 2 && path[i] == '.' && path[i + 1] == '.') {
            p->nseg -= p->nseg > 0;
        } else if (len > 0 && !(len == 1 && path[i] == '.')) {
            if (p->nseg == CN__SIGV4_MAX_SEGMENTS) {
                return -E2BIG;
            }
            p->seg[p->nseg++] = (struct seg){path + i, len};
        }
        i = j + 1;
    }
    return 0;
}

static void put_trimmed(struct sink *s, const char *v, size_t n)
{
    /* Trimall: no leading or trailing whitespace, inner runs become one space. */
    size_t i = 0;
    bool first = true;
    while (i < n) {
        while (i < n && is_space(v[i])) {
            i++;
        }
        size_t j = i;
        while (j < n && !is_space(v[j])) {
            j++;
        }
        if (j > i) {
            if (!first) {
                putc1(s, ' ');
            }
            put(s, v + i, j - i);
            first = false;
        }
        i = j;
    }
}

static void put_lower(struct sink *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        putc1(s, (char)tolower((unsigned char)p[i]));
    }
}

/* "a;b;c": each distinct name once. */
static void put_signed_headers(struct sink *s, const struct prep *p)
{
    for (size_t i = 0; i < p->nh; i++) {
        if (i > 0 &&
            lower_cmp(p->h[i - 1].name, p->h[i - 1].nlen, p->h[i].name, p->h[i].nlen) == 0) {
            continue;
        }
        if (i > 0) {
            putc1(s, ';');
        }
        put_lower(s, p->h[i].name, p->h[i].nlen);
    }
}

static void emit_canonical(struct sink *s, const struct prep *p,
                           const struct cn__sigv4_request *req)
{
    for (const char *m = req->method; *m != '\0'; m++) {
        putc1(s, (char)toupper((unsigned char)*m));
    }
    putc1(s, '\n');
    if (p->lead) {
        putc1(s, '/');
    }
    for (size_t i = 0; i < p->nseg; i++) {
        if (i > 0) {
            putc1(s, '/');
        }
        put_encoded(s, p->seg[i].p, p->seg[i].n);
    }
    if (p->trail && p->nseg > 0) {
        putc1(s, '/');
    }
    putc1(s, '\n');
    for (size_t i = 0; i < req->nparams; i++) {
        const struct cn__sigv4_param *q = &req->params[p->porder[i]];
        if (i > 0) {
            putc1(s, '&');
        }
        put_encoded(s, q->key, q->key_len);
        putc1(s, '=');
        put_encoded(s, q->value, q->value_len);
    }
    putc1(s, '\n');
    for (size_t i = 0; i < p->nh; i++) {
        bool cont =
            i > 0 && lower_cmp(p->h[i - 1].name, p->h[i - 1].nlen, p->h[i].name, p->h[i].nlen) == 0;
        if (cont) {
            putc1(s, ',');
        } else {
            if (i > 0) {
                putc1(s, '\n');
            }
            put_lower(s, p->h[i].name, p->h[i].nlen);
            putc1(s, ':');
        }
        put_trimmed(s, p->h[i].val, p->h[i].vlen);
    }
    puts0(s, "\n\n");
    put_signed_headers(s, p);
    putc1(s, '\n');
    put(s, p->payload, 64);
}

static bool valid_scope_part(const char *s)
{
    size_t n = s == NULL ? 0 : strlen(s);
    if (n == 0 || n > SCOPE_PART_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || c == '/') {
            return false;
        }
    }
    return true;
}

static bool valid_hex64(const char *h)
{
    for (size_t i = 0; i < 64; i++) {
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'))) {
            return false;
        }
    }
    return h[64] == '\0';
}

static int format_date(char out[17], time_t now)
{
    struct tm tm;
    if (now < 0 || gmtime_r(&now, &tm) == NULL || tm.tm_year + 1900 > 9999) {
        return -EINVAL;
    }
    /* ISO 8601 basic format, UTC: YYYYMMDDTHHMMSSZ. */
    int f[6] = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
    char *d = out;
    for (int i = 0; i < 6; i++) {
        int width = i == 0 ? 4 : 2;
        for (int k = width - 1; k >= 0; k--) {
            d[k] = (char)('0' + f[i] % 10);
            f[i] /= 10;
        }
        d += width;
        if (i == 2) {
            *d++ = 'T';
        }
    }
    d[0] = 'Z';
    d[1] = '\0';
    return 0;
}

static int prepare(struct prep *p, struct thread_state *st, const struct cn__sigv4_request *req,
                   const struct cn_aws_creds *creds, time_t now)
{
    if (req == NULL || creds == NULL || req->method == NULL || req->method[0] == '\0' ||
        (req->body == NULL && req->body_len > 0) || (req->headers == NULL && req->nheaders > 0) ||
        (req->params == NULL && req->nparams > 0)) {
        return -EINVAL;
    }
    p->nh = 0;
    p->nseg = 0;
    p->trail = false;
    int rc = format_date(p->amz_date, now);
    if (rc < 0) {
        return rc;
    }
    if (req->payload_hash != NULL) {
        if (!valid_hex64(req->payload_hash)) {
            return -EINVAL;
        }
        memcpy(p->payload, req->payload_hash, 65);
    } else if ((rc = sha256_hex(st, req->body_len ? req->body : "", req->body_len, p->payload)) <
               0) {
        return rc;
    }
    if ((rc = prep_path(p, req->path)) < 0 || (rc = prep_params(p, req)) < 0) {
        return rc;
    }
    return prep_headers(p, req, creds);
}

ssize_t cn__sigv4_canonical_request(const struct cn__sigv4_request *req,
                                    const struct cn_aws_creds *creds, time_t now, char *buf,
                                    size_t cap)
{
    struct thread_state *st;
    struct prep p;
    int rc = state_get(&st);
    if (rc < 0 || (rc = prepare(&p, st, req, creds, now)) < 0) {
        return rc;
    }
    if (buf == NULL || cap == 0) {
        return -ENOBUFS;
    }
    struct sink s = {.out = buf, .cap = cap};
    emit_canonical(&s, &p, req);
    if (s.err < 0) {
        buf[0] = '\0';
        return s.err;
    }
    buf[s.len] = '\0';
    return (ssize_t)s.len;
}

/* ---- task 3: the signing key ------------------------------------------------ */

static int derive_key(struct thread_state *st, const struct cn_aws_creds *creds, const char *date,
                      const char *region, const char *service, unsigned char key[32])
{
    unsigned char k[CN_AWS_SECRET_MAX + 4];
    int rc;
    memcpy(k, "AWS4", 4);
    memcpy(k + 4, creds->secret_access_key, creds->secret_access_key_len);
    if ((rc = hmac(st, k, 4 + creds->secret_access_key_len, date, 8, key)) == 0 &&
        (rc = hmac(st, key, 32, region, strlen(region), key)) == 0 &&
        (rc = hmac(st, key, 32, service, strlen(service), key)) == 0) {
        rc = hmac(st, key, 32, "aws4_request", 12, key);
    }
    OPENSSL_cleanse(k, sizeof k);
    return rc;
}

static int signing_key(struct thread_state *st, const struct cn_aws_creds *creds, const char *date,
                       const char *region, const char *service, const unsigned char **key)
{
    size_t slen = creds->secret_access_key_len;
    for (size_t i = 0; i < CACHE; i++) {
        struct key_entry *e = &st->keys[i];
        if (e->used && memcmp(e->date, date, 8) == 0 && strcmp(e->region, region) == 0 &&
            strcmp(e->service, service) == 0 && e->secret_len == slen &&
            CRYPTO_memcmp(e->secret, creds->secret_access_key, slen) == 0) {
            *key = e->key;
            return 0;
        }
    }
    struct key_entry *e = &st->keys[st->next];
    st->next = (st->next + 1) % CACHE;
    OPENSSL_cleanse(e, sizeof *e);
    int rc = derive_key(st, creds, date, region, service, e->key);
    if (rc < 0) {
        OPENSSL_cleanse(e, sizeof *e);
        return rc;
    }
    memcpy(e->date, date, 8);
    strcpy(e->region, region);
    strcpy(e->service, service);
    memcpy(e->secret, creds->secret_access_key, slen);
    e->secret_len = slen;
    e->used = true;
    *key = e->key;
    return 0;
}

/* ---- tasks 2 and 4 ------------------------------------------------------------ */

int cn__sigv4_sign(const struct cn__sigv4_request *req, const struct cn_aws_creds *creds,
                   const char *region, const char *service, time_t now, struct cn__sigv4_out *out)
{
    struct thread_state *st;
    struct prep p;
    if (out == NULL || !valid_scope_part(region) || !valid_scope_part(service) || creds == NULL ||
        creds->secret_access_key_len > CN_AWS_SECRET_MAX) {
        return -EINVAL;
    }
    int rc = state_get(&st);
    if (rc < 0 || (rc = prepare(&p, st, req, creds, now)) < 0) {
        return rc;
    }

    /* Task 1, hashed as it is emitted. */
    struct sink s = {.md = st->md};
    unsigned char digest[32];
    char creq_hex[65];
    if (!EVP_DigestInit_ex(st->md, sha256_md, NULL)) {
        return CN_ETLS;
    }
    emit_canonical(&s, &p, req);
    sink_flush(&s);
    if (s.err < 0 || !EVP_DigestFinal_ex(st->md, digest, NULL)) {
        return s.err < 0 ? s.err : CN_ETLS;
    }
    hex_encode(creq_hex, digest, 32);

    /* Task 2: AWS4-HMAC-SHA256 \n date \n scope \n hex(hash(creq)). */
    char scope[8 + 3 * (SCOPE_PART_MAX + 1) + 16];
    char sts[17 + 17 + sizeof scope + 65];
    snprintf(scope, sizeof scope, "%.8s/%s/%s/aws4_request", p.amz_date, region, service);
    int n = snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%s\n%s", p.amz_date, scope, creq_hex);

    /* Tasks 3 and 4. */
    const unsigned char *key;
    if ((rc = signing_key(st, creds, p.amz_date, region, service, &key)) < 0 ||
        (rc = hmac(st, key, 32, sts, (size_t)n, digest)) < 0) {
        return rc;
    }
    char sig[65];
    hex_encode(sig, digest, 32);

    struct sink a = {.out = out->authorization, .cap = sizeof out->authorization};
    puts0(&a, "AWS4-HMAC-SHA256 Credential=");
    put(&a, creds->access_key_id, creds->access_key_id_len);
    putc1(&a, '/');
    puts0(&a, scope);
    puts0(&a, ", SignedHeaders=");
    put_signed_headers(&a, &p);
    puts0(&a, ", Signature=");
    put(&a, sig, 64);
    if (a.err < 0) {
        out->authorization[0] = '\0';
        return a.err;
    }
    out->authorization[a.len] = '\0';
    memcpy(out->amz_date, p.amz_date, sizeof out->amz_date);
    memcpy(out->content_sha256, p.payload, sizeof out->content_sha256);
    out->security_token = creds->session_token;
    return 0;
}
