/* SPDX-License-Identifier: MIT */
/*
 * TLS over any struct cn_stream, with OpenSSL 3.
 *
 * OpenSSL never touches the stream below. A TLS stream gives its SSL one
 * custom BIO that only moves bytes between memory and this object: reads
 * hand OpenSSL the ciphertext already received (or "retry"), writes append
 * to `out`. So no SSL_* call ever parks; every park happens here, between
 * SSL calls, in cn_stream_read/cn_stream_writev on the inner stream, which is
 * how deadlines and cancellation reach the handshake and every record.
 *
 * Concurrency (one reader and writers on one loop thread): each SSL call
 * runs to completion between two parks, so a reader and a writer interleave
 * safely at the OpenSSL level. What must not race is handing `out` to the
 * inner stream, or records would reach the wire out of order. Every flush
 * therefore runs under `wlock`, and detaches `out` before parking: bytes
 * OpenSSL produces meanwhile (a reader answering a KeyUpdate, say) land in a
 * fresh buffer that the same flush loop sends next. A reader that produced
 * output only tries the lock: if a writer holds it, that writer's flush loop
 * sends the reader's bytes too, so a reader never waits behind a writer (that
 * could deadlock two peers that both write without reading). As for every
 * stream, close must not run while another call on the stream is parked.
 *
 * Errors. Once sealed, records cannot be withdrawn: any failure to hand
 * ciphertext to the inner stream ends the write side (a deadline or cancel:
 * CN_EBROKEN for every later call, as the stream interface says; EPIPE,
 * ECONNRESET: later writes return that). A fatal OpenSSL error ends both
 * sides with CN_ETLS. The inner stream ending without a close_notify is a
 * truncation (RFC 8446 §6.1): read returns -ECONNRESET, never a clean 0; in
 * the handshake it is CN_ETLS_HANDSHAKE. The inner stream's own errors pass
 * through unchanged.
 *
 * Memory. An idle stream (a reader parked, nothing in flight) holds this
 * object with its small embedded `probe` buffer, which the reader parks on,
 * and the SSL object, whose record buffers are freed before that park
 * (SSL_free_buffers; SSL_MODE_RELEASE_BUFFERS alone keeps the ~17 KiB read
 * buffer the handshake leaves). The 16 KiB `in` buffer exists only while
 * ciphertext streams in, and `out` only while a flush runs (at most SLICE of
 * plaintext is sealed per inner write, so `out` stays under ~70 KiB).
 * Measured with OpenSSL 3.0 and an ECDSA P-256 certificate: ~16.6 KiB of
 * OpenSSL state per idle stream (the SSL object alone is 7.6 KiB) plus
 * ~0.7 KiB here.
 *
 * Contexts wrap an SSL_CTX, which OpenSSL reference-counts: every SSL holds
 * one reference, and the server's ALPN list hangs off the SSL_CTX's ex_data.
 * So cn_tls_ctx_free may be called at any time; streams keep what they need.
 */
#include "coronet/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

enum {
    IN_CAP = 16 * 1024 + 512, /* one full record (16 KiB) plus header and tag */
    PROBE_CAP = 512,          /* what a reader parks on; below TCP's direct-read size */
    SLICE = 64 * 1024,        /* plaintext sealed per inner write: bounds `out` */
    GATHER_MAX = 16 * 1024,   /* writev parts gathered into one record up to this */
    GATHER_STACK = 1024,      /* gathered on the stack up to this */
    CLOSE_NOTIFY_MS = 1000,   /* how long close may spend sending close_notify */
};

struct cn_tls_ctx {
    SSL_CTX *ssl;
};

/* The server's ALPN preference list in wire format (RFC 7301 §3.1), owned by
 * its SSL_CTX through ex_data. */
struct alpn_list {
    size_t len;
    unsigned char wire[];
};

struct tls {
    struct cn_stream base;   /* first: the stream interface */
    struct cn_stream *inner; /* owned */
    SSL *ssl;
    struct cn_mutex wlock;     /* held by writers and by every flush of `out` */
    const unsigned char *rsrc; /* ciphertext for OpenSSL: rsrc[roff, rlen) */
    size_t roff;
    size_t rlen;
    unsigned char *in;  /* IN_CAP bytes while data streams in, NULL when idle */
    unsigned char *out; /* ciphertext sealed by OpenSSL, not yet handed on */
    size_t olen;
    size_t ocap;
    int dead;   /* nonzero: every call returns it (CN_EBROKEN, CN_ETLS) */
    int werr;   /* nonzero: writes return it (the inner stream refused one) */
    bool oom;   /* the BIO could not grow `out` */
    bool shut;  /* close_notify sealed */
    char *alpn; /* the negotiated protocol, NUL-terminated, or NULL */
    unsigned char probe[PROBE_CAP];
};

static const struct cn_stream_vt tls_vt;

static _Thread_local char last_error[256];

static BIO_METHOD *bio_meth;
static int alpn_index = -1;
static bool can_free_buffers; /* SSL_free_buffers is safe mid-record */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* ---- errors ---------------------------------------------------------------- */

const char *cn_tls_last_error(void)
{
    return last_error;
}

static void set_error(const char *msg)
{
    snprintf(last_error, sizeof last_error, "%s", msg);
}

/* Keeps the oldest queued OpenSSL reason (the root cause; later entries
 * only say which layer passed it on) and empties the thread's queue. */
static void save_ssl_error(const char *fallback)
{
    unsigned long e = ERR_get_error();
    if (e != 0) {
        ERR_error_string_n(e, last_error, sizeof last_error);
    } else {
        set_error(fallback);
    }
    ERR_clear_error();
}

static int verify_error(long v)
{
    switch (v) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return CN_ETLS_EXPIRED;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return CN_ETLS_HOSTNAME;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
        return CN_ETLS_UNTRUSTED;
    default:
        return CN_ETLS_HANDSHAKE;
    }
}

/* The error of a failed handshake: the certificate check's verdict when
 * there is one, else OpenSSL's reason. */
static int handshake_error(struct tls *t)
{
    if (t->oom) {
        ERR_clear_error();
        return -ENOMEM;
    }
    long v = SSL_get_verify_result(t->ssl);
    if ((SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) && v != X509_V_OK) {
        set_error(X509_verify_cert_error_string(v));
        ERR_clear_error();
        return verify_error(v);
    }
    save_ssl_error("handshake failed");
    return CN_ETLS_HANDSHAKE;
}

/* A fatal error of SSL_read or SSL_write: the connection is unusable. */
static int fatal_error(struct tls *t, const char *what)
{
    t->dead = CN_ETLS;
    if (t->oom) {
        ERR_clear_error();
        return -ENOMEM;
    }
    save_ssl_error(what);
    return CN_ETLS;
}

/* ---- the memory BIO -------------------------------------------------------- */

static int bio_read(BIO *b, char *buf, int len)
{
    struct tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    size_t avail = t->rlen - t->roff;
    if (avail == 0) {
        BIO_set_retry_read(b); /* the caller fetches more and calls again */
        return -1;
    }
    size_t k = (size_t)len < avail ? (size_t)len : avail;
    memcpy(buf, t->rsrc + t->roff, k);
    t->roff += k;
    return (int)k;
}

static int bio_write(BIO *b, const char *buf, int len)
{
    struct tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    size_t need = t->olen + (size_t)len;
    if (need > t->ocap) {
        size_t cap = t->ocap > 0 ? t->ocap * 2 : 4096;
        cap = cap < need ? need : cap;
        unsigned char *p = realloc(t->out, cap);
        if (!p) {
            t->oom = true;
            return -1;
        }
        t->out = p;
        t->ocap = cap;
    }
    memcpy(t->out + t->olen, buf, (size_t)len);
    t->olen = need;
    return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct tls *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* `out` is flushed by this file, between SSL calls */
    case BIO_CTRL_PENDING:
        return (long)(t->rlen - t->roff);
    case BIO_CTRL_WPENDING:
        return (long)t->olen;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void alpn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    free(ptr);
}

/* Process-wide, once: the BIO method and the ex_data slot (contexts may be
 * made on several loop threads). */
static void init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "coronet stream");
    if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
        BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create)) {
        bio_meth = m;
    } else {
        BIO_meth_free(m);
    }
    alpn_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, alpn_free);
    /* CVE-2024-4741: before 3.0.14 / 3.1.6 / 3.2.2 / 3.3.1, SSL_free_buffers
     * could free a record buffer still in use. */
    static const unsigned fixed_patch[] = {14, 6, 2, 1};
    unsigned minor = OPENSSL_version_minor();
    can_free_buffers =
        OPENSSL_version_major() > 3 || minor >= 4 || OPENSSL_version_patch() >= fixed_patch[minor];
}

/* ---- contexts --------------------------------------------------------------- */

/* Never prompt on a terminal for the passphrase of an encrypted key. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    return 0;
}

static int ctx_new(struct cn_tls_ctx **out, const SSL_METHOD *method)
{
    pthread_once(&init_once, init);
    if (!bio_meth || alpn_index < 0) {
        return -ENOMEM;
    }
    struct cn_tls_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        return -ENOMEM;
    }
    ERR_clear_error();
    c->ssl = SSL_CTX_new(method);
    if (!c->ssl) {
        save_ssl_error("SSL_CTX_new failed");
        free(c);
        return -ENOMEM;
    }
    SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
    /* TLS 1.2 renegotiation would run the handshake (and its callbacks)
     * again in the middle of a read; nothing here needs it. */
    SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_clear_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_CTX_set_mode(c->ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(c->ssl, no_password);
    *out = c;
    return 0;
}

void cn_tls_ctx_free(struct cn_tls_ctx *ctx)
{
    if (ctx) {
        SSL_CTX_free(ctx->ssl); /* drops our reference; open streams hold theirs */
        free(ctx);
    }
}

/* Encodes protocol names in ALPN wire format: each prefixed by its length. */
static int alpn_encode(const char *const *names, size_t n, struct alpn_list **out)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(names[i]);
        if (k == 0 || k > 255) {
            set_error("an ALPN protocol name must have 1 to 255 bytes");
            return -EINVAL;
        }
        len += 1 + k;
    }
    struct alpn_list *a = malloc(sizeof *a + len);
    if (!a) {
        return -ENOMEM;
    }
    a->len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(names[i]);
        a->wire[a->len] = (unsigned char)k;
        memcpy(&a->wire[a->len + 1], names[i], k);
        a->len += 1 + k;
    }
    *out = a;
    return 0;
}

static int client_setup(SSL_CTX *ctx, const struct cn_tls_client_opts *o)
{
    if (o->dangerously_skip_verification) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = o->ca_file ? SSL_CTX_load_verify_file(ctx, o->ca_file)
                            : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            save_ssl_error("cannot load the CA certificates");
            return CN_ETLS;
        }
    }
    if (o->nalpn == 0) {
        return 0;
    }
    struct alpn_list *a;
    int rc = alpn_encode(o->alpn, o->nalpn, &a);
    if (rc < 0) {
        return rc;
    }
    /* Unlike most of OpenSSL, this one returns 0 on success. */
    rc = SSL_CTX_set_alpn_protos(ctx, a->wire, (unsigned int)a->len) == 0 ? 0 : -ENOMEM;
    free(a);
    return rc;
}

int cn_tls_client_ctx_new(struct cn_tls_ctx **out, const struct cn_tls_client_opts *o)
{
    static const struct cn_tls_client_opts defaults;
    struct cn_tls_ctx *c;
    *out = NULL;
    int rc = ctx_new(&c, TLS_client_method());
    if (rc < 0) {
        return rc;
    }
    rc = client_setup(c->ssl, o ? o : &defaults);
    if (rc < 0) {
        cn_tls_ctx_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Adds the CA certificates following the leaf in a PEM chain. */
static bool add_chain(SSL_CTX *ctx, BIO *b)
{
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, no_password, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
            X509_free(x);
            return false;
        }
    }
    /* The loop ends with "no start line": the end of the PEM text. */
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        return true;
    }
    return false;
}

static bool use_pem(SSL_CTX *ctx, const char *cert_pem, const char *key_pem)
{
    BIO *b = BIO_new_mem_buf(cert_pem, -1);
    X509 *x = b ? PEM_read_bio_X509_AUX(b, NULL, no_password, NULL) : NULL;
    bool ok = x && SSL_CTX_use_certificate(ctx, x) == 1 && add_chain(ctx, b);
    X509_free(x);
    BIO_free(b);
    if (!ok) {
        return false;
    }
    b = BIO_new_mem_buf(key_pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, no_password, NULL) : NULL;
    ok = k && SSL_CTX_use_PrivateKey(ctx, k) == 1;
    EVP_PKEY_free(k);
    BIO_free(b);
    return ok;
}

static int load_identity(SSL_CTX *ctx, const struct cn_tls_server_opts *o)
{
    bool ok;
    if (o->cert_pem && o->key_pem) {
        ok = use_pem(ctx, o->cert_pem, o->key_pem);
    } else if (o->cert_file && o->key_file) {
        ok = SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) == 1 &&
             SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) == 1;
    } else {
        set_error("a server needs a certificate and a key");
        return -EINVAL;
    }
    if (!ok || SSL_CTX_check_private_key(ctx) != 1) {
        save_ssl_error("cannot load the certificate and key");
        return CN_ETLS;
    }
    return 0;
}

/* True if the client's wire-format list `in` offers the protocol p. */
static bool offered(const unsigned char *in, unsigned int inlen, const unsigned char *p)
{
    for (unsigned int i = 0; i < inlen; i += 1u + in[i]) {
        if (in[i] == p[0] && i + 1u + in[i] <= inlen && memcmp(&in[i + 1], p + 1, p[0]) == 0) {
            return true;
        }
    }
    return false;
}

/* RFC 7301 §3.2: the server picks; ours is the first of its own list that
 * the client offers. No overlap: go on without ALPN rather than fail. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    const struct alpn_list *a = arg;
    for (size_t i = 0; i < a->len; i += 1u + a->wire[i]) {
        if (offered(in, inlen, &a->wire[i])) {
            *out = &a->wire[i + 1];
            *outlen = a->wire[i];
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static int server_setup(SSL_CTX *ctx, const struct cn_tls_server_opts *o)
{
    int rc = load_identity(ctx, o);
    if (rc < 0 || o->nalpn == 0) {
        return rc;
    }
    struct alpn_list *a;
    rc = alpn_encode(o->alpn, o->nalpn, &a);
    if (rc < 0) {
        return rc;
    }
    if (SSL_CTX_set_ex_data(ctx, alpn_index, a) != 1) {
        free(a);
        return -ENOMEM;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, a);
    return 0;
}

int cn_tls_server_ctx_new(struct cn_tls_ctx **out, const struct cn_tls_server_opts *o)
{
    struct cn_tls_ctx *c;
    *out = NULL;
    if (!o) {
        set_error("a server needs a certificate and a key");
        return -EINVAL;
    }
    int rc = ctx_new(&c, TLS_server_method());
    if (rc < 0) {
        return rc;
    }
    rc = server_setup(c->ssl, o);
    if (rc < 0) {
        cn_tls_ctx_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- moving ciphertext ------------------------------------------------------- */

/* Hands every byte of `out` to the inner stream, in order. The caller holds
 * wlock (or runs the handshake, before anyone else can see the stream). */
static int flush(struct tls *t, int64_t deadline)
{
    while (t->olen > 0) {
        if (t->dead || t->werr) {
            return t->dead ? t->dead : t->werr;
        }
        /* Detach first: output sealed while we are parked goes to a fresh
         * buffer and leaves in the next round. */
        unsigned char *p = t->out;
        uv_buf_t b = uv_buf_init((char *)p, (unsigned int)t->olen);
        t->out = NULL;
        t->olen = t->ocap = 0;
        int rc = cn_stream_writev(t->inner, &b, 1, deadline);
        free(p);
        if (rc < 0) {
            bool interrupted = rc == -ETIMEDOUT || rc == -ECANCELED || rc == CN_EBROKEN;
            if (interrupted) {
                t->dead = CN_EBROKEN;
            } else {
                t->werr = rc;
            }
            return rc;
        }
    }
    return 0;
}

/* A reader whose SSL_read sealed records (a KeyUpdate answer, an alert)
 * sends them unless a writer holds the lock: then that writer will. */
static void flush_from_reader(struct tls *t, int64_t deadline)
{
    if (t->olen == 0 || cn_mutex_lock(&t->wlock, 0) != 0) {
        return;
    }
    flush(t, deadline); /* a failure marks the stream; the read result stands */
    cn_mutex_unlock(&t->wlock);
}

/* Makes src[0, r) the ciphertext OpenSSL reads next. */
static ssize_t feed(struct tls *t, const unsigned char *src, ssize_t r)
{
    if (r > 0) {
        t->rsrc = src;
        t->roff = 0;
        t->rlen = (size_t)r;
    }
    return r == CN_EOF ? 0 : r;
}

/* Reads ciphertext from the inner stream once OpenSSL consumed all it had.
 * Returns > 0, 0 at the inner stream's end, or its error. */
static ssize_t fill(struct tls *t, int64_t deadline)
{
    if (t->in) {
        ssize_t r = cn_stream_read(t->inner, t->in, IN_CAP, 0); /* try once, never parks */
        if (r != -ETIMEDOUT) {
            return feed(t, t->in, r);
        }
        /* Nothing ready, so we are about to park: an idle stream keeps
         * no big buffer. */
        free(t->in);
        t->in = NULL;
    }
    /* Likewise OpenSSL's record buffers (~17 KiB the handshake leaves
     * behind, which RELEASE_BUFFERS only drops after application data).
     * It refuses, harmlessly, while it holds part of a record. */
    if (can_free_buffers) {
        SSL_free_buffers(t->ssl);
    }
    ssize_t r = cn_stream_read(t->inner, t->probe, sizeof t->probe, deadline);
    if (r == (ssize_t)sizeof t->probe) {
        t->in = malloc(IN_CAP); /* more is probably waiting; NULL just means small reads */
    }
    return feed(t, t->probe, r);
}

/* ---- the stream ------------------------------------------------------------------- */

static ssize_t tls_read(struct cn_stream *s, void *buf, size_t n, int64_t deadline)
{
    struct tls *t = (struct tls *)s;
    for (;;) {
        if (t->dead) {
            return t->dead;
        }
        size_t got = 0;
        ERR_clear_error(); /* the queue is per thread, shared by every coroutine */
        int r = SSL_read_ex(t->ssl, buf, n, &got);
        int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
        flush_from_reader(t, deadline);
        if (err == SSL_ERROR_NONE) {
            return (ssize_t)got;
        }
        if (err == SSL_ERROR_ZERO_RETURN) {
            return 0; /* close_notify: a clean end */
        }
        if (err != SSL_ERROR_WANT_READ) {
            return fatal_error(t, "TLS read failed");
        }
        ssize_t f = fill(t, deadline);
        if (f == 0) {
            set_error("the peer closed the connection without a close_notify");
            return -ECONNRESET; /* truncation: the end may have been cut off */
        }
        if (f < 0) {
            return f;
        }
    }
}

/* Seals n bytes into `out` (SSL_write never parks: the BIO always takes all). */
static int seal(struct tls *t, const void *p, size_t n)
{
    size_t done;
    ERR_clear_error();
    if (SSL_write_ex(t->ssl, p, n, &done) == 1) {
        return 0;
    }
    return fatal_error(t, "TLS write failed");
}

/* Seals and sends one buffer, SLICE by SLICE so `out` stays bounded. */
static int write_buf(struct tls *t, const char *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        size_t k = n < SLICE ? n : SLICE;
        int rc = seal(t, p, k);
        if (rc == 0 && t->olen >= SLICE) {
            rc = flush(t, deadline);
        }
        if (rc < 0) {
            return rc;
        }
        p += k;
        n -= k;
    }
    return 0;
}

/* Small parts (a WebSocket header and its payload) go out as one record
 * rather than one record each. */
static int write_gathered(struct tls *t, const uv_buf_t *bufs, size_t nbufs, size_t total)
{
    unsigned char stack[GATHER_STACK];
    unsigned char *g = total <= sizeof stack ? stack : malloc(total);
    if (!g) {
        return -ENOMEM;
    }
    size_t off = 0;
    for (size_t i = 0; i < nbufs; i++) {
        memcpy(g + off, bufs[i].base, bufs[i].len);
        off += bufs[i].len;
    }
    int rc = seal(t, g, total);
    if (g != stack) {
        free(g);
    }
    return rc;
}

static int write_locked(struct tls *t, const uv_buf_t *bufs, size_t nbufs, int64_t deadline)
{
    if (t->dead || t->werr) {
        return t->dead ? t->dead : t->werr;
    }
    if (t->shut) {
        return -EPIPE;
    }
    size_t total = 0;
    for (size_t i = 0; i < nbufs; i++) {
        total += bufs[i].len;
    }
    int rc = 0;
    if (nbufs > 1 && total <= GATHER_MAX) {
        rc = write_gathered(t, bufs, nbufs, total);
    } else {
        for (size_t i = 0; i < nbufs && rc == 0; i++) {
            rc = write_buf(t, bufs[i].base, bufs[i].len, deadline);
        }
    }
    return rc < 0 ? rc : flush(t, deadline);
}

static int tls_writev(struct cn_stream *s, const uv_buf_t *bufs, size_t nbufs, int64_t deadline)
{
    struct tls *t = (struct tls *)s;
    int rc = cn_mutex_lock(&t->wlock, deadline);
    if (rc < 0) {
        return rc;
    }
    rc = write_locked(t, bufs, nbufs, deadline);
    cn_mutex_unlock(&t->wlock);
    return rc;
}

/* Seals a close_notify (once) and sends it. Caller holds wlock. */
static int send_close_notify(struct tls *t, int64_t deadline)
{
    if (t->dead || t->werr) {
        return t->dead ? t->dead : t->werr;
    }
    if (!t->shut) {
        t->shut = true;
        ERR_clear_error();
        /* With a memory BIO this seals the alert and returns at once: 0 (the
         * peer's close_notify is still to come) or 1. */
        if (SSL_shutdown(t->ssl) < 0) {
            return fatal_error(t, "TLS shutdown failed");
        }
    }
    return flush(t, deadline);
}

static int tls_shutdown(struct cn_stream *s, int64_t deadline)
{
    struct tls *t = (struct tls *)s;
    int rc = cn_mutex_lock(&t->wlock, deadline);
    if (rc < 0) {
        return rc;
    }
    rc = send_close_notify(t, deadline);
    cn_mutex_unlock(&t->wlock);
    return rc < 0 ? rc : cn_stream_shutdown(t->inner, deadline);
}

static void destroy(struct tls *t)
{
    SSL_free(t->ssl); /* frees the BIO and drops the SSL_CTX reference */
    cn_stream_close(t->inner);
    free(t->in);
    free(t->out);
    free(t->alpn);
    free(t);
}

/* Best effort close_notify within CLOSE_NOTIFY_MS, unless the stream is
 * already gone or the closer is cancelled (close itself never fails). */
static void tls_close(struct cn_stream *s)
{
    struct tls *t = (struct tls *)s;
    if (!t->dead && !t->werr && !t->shut && cn_self() && !cn_cancelled()) {
        int64_t deadline = cn_now() + CLOSE_NOTIFY_MS;
        if (cn_mutex_lock(&t->wlock, deadline) == 0) {
            send_close_notify(t, deadline);
            cn_mutex_unlock(&t->wlock);
        }
    }
    destroy(t);
}

static const struct cn_stream_vt tls_vt = {
    .read = tls_read,
    .writev = tls_writev,
    .shutdown = tls_shutdown,
    .close = tls_close,
};

const char *cn_tls_alpn(struct cn_stream *s)
{
    if (!s || s->vt != &tls_vt) {
        return NULL;
    }
    struct tls *t = (struct tls *)s;
    return t->alpn;
}

/* ---- handshakes ---------------------------------------------------------------------- */

static int tls_new(struct tls **out, struct cn_tls_ctx *ctx, struct cn_stream *inner)
{
    struct tls *t = calloc(1, sizeof *t);
    if (!t) {
        return -ENOMEM;
    }
    t->base.vt = &tls_vt;
    t->inner = inner;
    ERR_clear_error();
    t->ssl = SSL_new(ctx->ssl);
    BIO *b = t->ssl ? BIO_new(bio_meth) : NULL;
    if (!b) {
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return -ENOMEM;
    }
    BIO_set_data(b, t);
    SSL_set_bio(t->ssl, b, b); /* one reference, owned by the SSL */
    *out = t;
    return 0;
}

/* SNI and the name the certificate must carry. */
static int set_peer_name(SSL *ssl, const char *name)
{
    bool verify = (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) != 0;
    if (!name) {
        if (verify) {
            set_error("verifying the peer needs its name");
            return -EINVAL;
        }
        return 0;
    }
    unsigned char addr[sizeof(struct in6_addr)];
    bool ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    /* RFC 6066 §3: SNI carries host names only, never address literals. */
    if (!ip && SSL_set_tlsext_host_name(ssl, name) != 1) {
        save_ssl_error("invalid server name");
        return -EINVAL;
    }
    if (!verify) {
        return 0;
    }
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok =
        ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) : SSL_set1_host(ssl, name);
    if (ok != 1) {
        save_ssl_error("invalid server name");
        return -EINVAL;
    }
    return 0;
}

/* Copies the negotiated protocol: OpenSSL's is not NUL-terminated. */
static int keep_alpn(struct tls *t)
{
    const unsigned char *p;
    unsigned int n;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (!p || n == 0) {
        return 0;
    }
    t->alpn = malloc(n + 1);
    if (!t->alpn) {
        return -ENOMEM;
    }
    memcpy(t->alpn, p, n);
    t->alpn[n] = '\0';
    return 0;
}

static int handshake(struct tls *t, int64_t deadline)
{
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(t->ssl);
        int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
        if (err != SSL_ERROR_NONE && err != SSL_ERROR_WANT_READ) {
            int rc = handshake_error(t);
            flush(t, deadline); /* best effort: the alert tells the peer why */
            return rc;
        }
        int rc = flush(t, deadline);
        if (rc < 0) {
            return rc;
        }
        if (err == SSL_ERROR_NONE) {
            return keep_alpn(t);
        }
        ssize_t f = fill(t, deadline);
        if (f == 0) {
            set_error("the peer closed the connection during the handshake");
            return CN_ETLS_HANDSHAKE;
        }
        if (f < 0) {
            return (int)f;
        }
    }
}

/* Wraps inner (owned from here on, closed on failure) and runs the handshake
 * as the client (server_name given) or the server. */
static int start(struct cn_stream **out, struct cn_tls_ctx *ctx, struct cn_stream *inner,
                 bool client, const char *server_name, int64_t deadline)
{
    struct tls *t;
    *out = NULL;
    int rc = tls_new(&t, ctx, inner);
    if (rc < 0) {
        cn_stream_close(inner);
        return rc;
    }
    if (client) {
        rc = set_peer_name(t->ssl, server_name);
        SSL_set_connect_state(t->ssl);
    } else {
        SSL_set_accept_state(t->ssl);
    }
    if (rc == 0) {
        rc = handshake(t, deadline);
    }
    if (rc < 0) {
        destroy(t);
        return rc;
    }
    /* The handshake ran deep in OpenSSL; an idle connection need not keep
     * those stack pages (measured: ~30 KiB of the idle cost). */
    cn__stack_trim();
    *out = &t->base;
    return 0;
}

int cn_tls_connect(struct cn_stream **out, struct cn_tls_ctx *ctx, struct cn_stream *inner,
                   const char *server_name, int64_t deadline)
{
    return start(out, ctx, inner, true, server_name, deadline);
}

int cn_tls_accept(struct cn_stream **out, struct cn_tls_ctx *ctx, struct cn_stream *inner,
                  int64_t deadline)
{
    return start(out, ctx, inner, false, NULL, deadline);
}
