/* SPDX-License-Identifier: MIT */
/*
 * TLS streams over TCP on loopback: coronet against itself and against
 * `openssl s_server` / `openssl s_client` (started here on free ports and
 * stopped by pid), with certificates made for each case by certs.sh.
 */
#define _GNU_SOURCE /* pipe2 */
#include "test.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum { LONG_MS = 10000 };

/* ---- certificates ------------------------------------------------------------------ */

static char cert_dir[512];

/* dir/name; a few results may be alive at once. */
static const char *cert(const char *name)
{
    static char ring[8][600];
    static int next;
    char *p = ring[next++ % 8];
    snprintf(p, sizeof ring[0], "%s/%s", cert_dir, name);
    return p;
}

static void certs_make(void)
{
    const char *root = getenv("CN_SOURCE_ROOT");
    if (!root) {
        CN_TEST_SKIP_BECAUSE("CN_SOURCE_ROOT is not set");
    }
    if (system("openssl version >/dev/null 2>&1") != 0) {
        CN_TEST_SKIP_BECAUSE("no openssl command");
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(cert_dir, sizeof cert_dir, "%s/cn-tls-XXXXXX", tmp ? tmp : "/tmp");
    CN_ASSERT(mkdtemp(cert_dir) != NULL);
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/net/certs.sh' '%s'", root, cert_dir);
    CN_ASSERT_EQ(system(cmd), 0);
}

static void certs_remove(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cert_dir);
    CN_ASSERT_EQ(system(cmd), 0);
}

/* Runs fn as the main coroutine with fresh certificates around it. */
static void run_with_certs(cn_fn fn, void *arg)
{
    certs_make();
    CN_ASSERT_EQ(cn_test_run(fn, arg), 0);
    certs_remove();
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    CN_ASSERT(f != NULL);
    char *buf = calloc(1, 64 * 1024);
    CN_ASSERT(buf != NULL);
    fread(buf, 1, 64 * 1024 - 1, f);
    fclose(f);
    return buf;
}

/* ---- contexts -------------------------------------------------------------------- */

static struct cn_tls_ctx *server_ctx(const char *name, const char *const *alpn, size_t nalpn)
{
    char crt[64], key[64];
    snprintf(crt, sizeof crt, "%s.pem", name);
    snprintf(key, sizeof key, "%s.key", name);
    struct cn_tls_server_opts o = {
        .cert_file = cert(crt), .key_file = cert(key), .alpn = alpn, .nalpn = nalpn};
    struct cn_tls_ctx *c;
    CN_ASSERT_EQ(cn_tls_server_ctx_new(&c, &o), 0);
    return c;
}

static struct cn_tls_ctx *client_ctx(const char *const *alpn, size_t nalpn)
{
    struct cn_tls_client_opts o = {.ca_file = cert("ca.pem"), .alpn = alpn, .nalpn = nalpn};
    struct cn_tls_ctx *c;
    CN_ASSERT_EQ(cn_tls_client_ctx_new(&c, &o), 0);
    return c;
}

/* ---- a coronet server for one connection ----------------------------------------- */

struct server {
    struct cn_tcp_listener *l;
    struct cn_tls_ctx *ctx;
    struct cn_co *co;
    int port;
    int accept_rc;             /* cn_tls_accept's result */
    char alpn[32];             /* what the server side negotiated */
    ssize_t last_read;         /* the read that ended the echo loop */
    struct cn_event got_bytes; /* raw servers: the first bytes arrived */
};

static int accept_tcp(struct server *sv, struct cn_stream **tcp)
{
    return cn_tcp_accept(sv->l, tcp, cn_now() + LONG_MS);
}

/* TLS echo until the client's end of stream. */
static int serve_echo(void *arg)
{
    struct server *sv = arg;
    struct cn_stream *tcp, *s;
    CN_ASSERT_EQ(accept_tcp(sv, &tcp), 0);
    sv->accept_rc = cn_tls_accept(&s, sv->ctx, tcp, cn_now() + LONG_MS);
    if (sv->accept_rc < 0) {
        return 0;
    }
    const char *p = cn_tls_alpn(s);
    snprintf(sv->alpn, sizeof sv->alpn, "%s", p ? p : "");
    enum { SIZE = 40000 }; /* not a record multiple on purpose */
    char *buf = malloc(SIZE);
    CN_ASSERT(buf != NULL);
    ssize_t n;
    while ((n = cn_stream_read(s, buf, SIZE, cn_now() + LONG_MS)) > 0) {
        CN_ASSERT_EQ(cn_stream_write(s, buf, (size_t)n, cn_now() + LONG_MS), 0);
    }
    sv->last_read = n;
    free(buf);
    cn_stream_close(s);
    return 0;
}

/* Accepts TCP and never speaks; reads until the client goes away. */
static int serve_silent(void *arg)
{
    struct server *sv = arg;
    struct cn_stream *tcp;
    CN_ASSERT_EQ(accept_tcp(sv, &tcp), 0);
    char buf[4096];
    while (cn_stream_read(tcp, buf, sizeof buf, cn_now() + LONG_MS) > 0) {
        cn_event_set(&sv->got_bytes);
    }
    cn_stream_close(tcp);
    return 0;
}

/* Reads the ClientHello, then hangs up. */
static int serve_hangup(void *arg)
{
    struct server *sv = arg;
    struct cn_stream *tcp;
    CN_ASSERT_EQ(accept_tcp(sv, &tcp), 0);
    char buf[4096];
    CN_ASSERT_GT(cn_stream_read(tcp, buf, sizeof buf, cn_now() + LONG_MS), 0);
    cn_stream_close(tcp);
    return 0;
}

/* TLS: sends "bye" and closes (with its close_notify). */
static int serve_bye(void *arg)
{
    struct server *sv = arg;
    struct cn_stream *tcp, *s;
    CN_ASSERT_EQ(accept_tcp(sv, &tcp), 0);
    sv->accept_rc = cn_tls_accept(&s, sv->ctx, tcp, cn_now() + LONG_MS);
    CN_ASSERT_EQ(sv->accept_rc, 0);
    CN_ASSERT_EQ(cn_stream_write(s, "bye", 3, cn_now() + LONG_MS), 0);
    cn_stream_close(s);
    return 0;
}

static void server_start(struct server *sv, struct cn_tls_ctx *ctx, cn_fn fn)
{
    memset(sv, 0, sizeof *sv);
    sv->ctx = ctx;
    sv->accept_rc = 1; /* not yet */
    CN_ASSERT_EQ(cn_tcp_listen(&sv->l, "127.0.0.1", 0, NULL), 0);
    sv->port = cn_tcp_listener_port(sv->l);
    CN_ASSERT_EQ(cn_spawn(&sv->co, fn, sv, NULL), 0);
}

static void server_stop(struct server *sv)
{
    int rc = -1;
    CN_ASSERT_EQ(cn_join(sv->co, &rc, cn_now() + LONG_MS), 0);
    CN_ASSERT_EQ(rc, 0);
    cn_tcp_listener_close(sv->l);
    cn_tls_ctx_free(sv->ctx);
}

/* TCP then TLS to 127.0.0.1:port, verifying `name`. */
static int dial(struct cn_stream **out, struct cn_tls_ctx *ctx, int port, const char *name,
                int64_t deadline)
{
    struct cn_stream *tcp;
    int rc = cn_tcp_connect(&tcp, "127.0.0.1", port, NULL, cn_now() + LONG_MS);
    if (rc < 0) {
        return rc;
    }
    return cn_tls_connect(out, ctx, tcp, name, deadline);
}

/* ---- data ------------------------------------------------------------------------ */

/* A byte pattern that depends on the offset, so shifts and drops show. */
static void pattern(unsigned char *p, size_t n, uint64_t offset)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t x = (offset + i) * 0x9E3779B97F4A7C15ull;
        p[i] = (unsigned char)(x >> 56);
    }
}

enum { BULK = 1024 * 1024 };

/* Writes BULK bytes in uneven pieces, some as two-part writevs (gathered). */
static int bulk_writer(void *arg)
{
    struct cn_stream *s = arg;
    unsigned char *buf = malloc(BULK);
    CN_ASSERT(buf != NULL);
    pattern(buf, BULK, 0);
    size_t off = 0, step = 1;
    while (off < BULK) {
        size_t k = step < BULK - off ? step : BULK - off;
        size_t h = k / 3;
        uv_buf_t parts[2] = {uv_buf_init((char *)buf + off, (unsigned int)h),
                             uv_buf_init((char *)buf + off + h, (unsigned int)(k - h))};
        CN_ASSERT_EQ(cn_stream_writev(s, parts, 2, cn_now() + LONG_MS), 0);
        off += k;
        step = step * 7 % 100003 + 1;
    }
    free(buf);
    return 0;
}

/* Echoes BULK bytes through s: a writer coroutine sends while this one
 * reads and checks, so one stream has a reader and a writer at once. */
static void bulk_echo(struct cn_stream *s)
{
    struct cn_co *w;
    CN_ASSERT_EQ(cn_spawn(&w, bulk_writer, s, NULL), 0);
    unsigned char *got = malloc(BULK), *want = malloc(BULK);
    CN_ASSERT(got && want);
    pattern(want, BULK, 0);
    size_t off = 0;
    while (off < BULK) {
        ssize_t n = cn_stream_read(s, got + off, BULK - off, cn_now() + LONG_MS);
        CN_ASSERT_GT(n, 0);
        off += (size_t)n;
    }
    CN_ASSERT_MEMEQ(got, want, BULK);
    int rc = -1;
    CN_ASSERT_EQ(cn_join(w, &rc, -1), 0);
    CN_ASSERT_EQ(rc, 0);
    free(got);
    free(want);
}

/* ---- coronet against coronet --------------------------------------------------------- */

static int round_trip_main(void *arg)
{
    static const char *const server_alpn[] = {"h2", "http/1.1"};
    static const char *const client_alpn[] = {"http/1.1", "h2"};
    struct server sv;
    server_start(&sv, server_ctx("server", server_alpn, 2), serve_echo);
    struct cn_tls_ctx *cc = client_ctx(client_alpn, 2);
    struct cn_stream *s;
    CN_ASSERT_EQ(dial(&s, cc, sv.port, "localhost", cn_now() + LONG_MS), 0);
    cn_tls_ctx_free(cc); /* the stream keeps what it needs */
    /* the server's preference wins over the client's order (RFC 7301 §3.2) */
    CN_ASSERT_STREQ(cn_tls_alpn(s), "h2");
    bulk_echo(s);
    CN_ASSERT_EQ(sv.accept_rc, 0); /* the server has answered by now */
    CN_ASSERT_STREQ(sv.alpn, "h2");
    cn_stream_close(s);
    server_stop(&sv);
    CN_ASSERT_EQ(sv.last_read, 0); /* our close_notify ended the server's loop cleanly */
    return 0;
}

static void tls_round_trip_1mib_with_alpn(void)
{
    run_with_certs(round_trip_main, NULL);
}

enum { HUGE_TOTAL = 100 * 1024 * 1024, HUGE_CHUNK = 256 * 1024 };

static int huge_writer(void *arg)
{
    struct cn_stream *s = arg;
    unsigned char *buf = malloc(HUGE_CHUNK);
    CN_ASSERT(buf != NULL);
    for (uint64_t off = 0; off < HUGE_TOTAL; off += HUGE_CHUNK) {
        pattern(buf, HUGE_CHUNK, off);
        CN_ASSERT_EQ(cn_stream_write(s, buf, HUGE_CHUNK, cn_now() + LONG_MS), 0);
    }
    free(buf);
    return 0;
}

static int huge_main(void *arg)
{
    struct server sv;
    server_start(&sv, server_ctx("server", NULL, 0), serve_echo);
    struct cn_tls_ctx *cc = client_ctx(NULL, 0);
    struct cn_stream *s;
    CN_ASSERT_EQ(dial(&s, cc, sv.port, "localhost", cn_now() + LONG_MS), 0);
    cn_tls_ctx_free(cc);
    struct cn_co *w;
    CN_ASSERT_EQ(cn_spawn(&w, huge_writer, s, NULL), 0);
    unsigned char *got = malloc(HUGE_CHUNK), *want = malloc(HUGE_CHUNK);
    CN_ASSERT(got && want);
    uint64_t off = 0;
    while (off < HUGE_TOTAL) {
        /* odd read sizes so record and chunk boundaries never line up */
        ssize_t n = cn_stream_read(s, got, 77777, cn_now() + LONG_MS);
        CN_ASSERT_GT(n, 0);
        pattern(want, (size_t)n, off);
        CN_ASSERT_MEMEQ(got, want, (size_t)n);
        off += (uint64_t)n;
    }
    CN_ASSERT_EQ(off, HUGE_TOTAL);
    CN_ASSERT_EQ(cn_join(w, NULL, -1), 0);
    free(got);
    free(want);
    cn_stream_close(s);
    server_stop(&sv);
    return 0;
}

static void stress_tls_100_mib_through_echo_server_intact(void)
{
    run_with_certs(huge_main, NULL);
}

static int no_overlap_main(void *arg)
{
    static const char *const server_alpn[] = {"h2"};
    static const char *const client_alpn[] = {"spdy/3"};
    struct server sv;
    server_start(&sv, server_ctx("server", server_alpn, 1), serve_echo);
    struct cn_tls_ctx *cc = client_ctx(client_alpn, 1);
    struct cn_stream *s;
    CN_ASSERT_EQ(dial(&s, cc, sv.port, "localhost", cn_now() + LONG_MS), 0);
    CN_ASSERT(cn_tls_alpn(s) == NULL);
    CN_ASSERT_EQ(cn_stream_write(s, "x", 1, cn_now() + LONG_MS), 0);
    char c;
    CN_ASSERT_EQ(cn_stream_read(s, &c, 1, cn_now() + LONG_MS), 1);
    CN_ASSERT_STREQ(sv.alpn, "");
    cn_stream_close(s);
    cn_tls_ctx_free(cc);
    server_stop(&sv);
    return 0;
}

static void tls_alpn_no_overlap_continues_without(void)
{
    run_with_certs(no_overlap_main, NULL);
}

static int memory_pem_main(void *arg)
{
    char *crt = read_file(cert("server.pem"));
    char *key = read_file(cert("server.key"));
    struct cn_tls_server_opts o = {.cert_pem = crt, .key_pem = key};
    struct cn_tls_ctx *sc;
    CN_ASSERT_EQ(cn_tls_server_ctx_new(&sc, &o), 0);
    free(crt);
    free(key);
    struct server sv;
    server_start(&sv, sc, serve_echo);
    struct cn_tls_ctx *cc = client_ctx(NULL, 0);
    struct cn_stream *s;
    CN_ASSERT_EQ(dial(&s, cc, sv.port, "localhost", cn_now() + LONG_MS), 0);
    CN_ASSERT_EQ(cn_stream_write(s, "pem", 3, cn_now() + LONG_MS), 0);
    char back[3];
    CN_ASSERT_EQ(cn_stream_read_exact(s, back, 3, cn_now() + LONG_MS), 3);
    CN_ASSERT_MEMEQ(back, "pem", 3);
    cn_stream_close(s);
    cn_tls_ctx_free(cc);
    server_stop(&sv);
    return 0;
}

static void tls_server_cert_from_memory(void)
{
    run_with_certs(memory_pem_main, NULL);
}

static int bad_server_ctx_main(void *arg)
{
    struct cn_tls_ctx *c = (void *)1;
    struct cn_tls_server_opts o = {.cert_file = cert("server.pem"),
                                   .key_file = cert("mismatch.key")};
    CN_ASSERT_EQ(cn_tls_server_ctx_new(&c, &o), CN_ETLS);
    CN_ASSERT(c == NULL);
    CN_ASSERT(strlen(cn_tls_last_error()) > 0);
    o.key_file = cert("no-such.key");
    CN_ASSERT_EQ(cn_tls_server_ctx_new(&c, &o), CN_ETLS);
    struct cn_tls_server_opts pem = {.cert_pem = "not a certificate", .key_pem = "nor a key"};
    CN_ASSERT_EQ(cn_tls_server_ctx_new(&c, &pem), CN_ETLS);
    struct cn_tls_client_opts co = {.ca_file = cert("no-such-ca.pem")};
    CN_ASSERT_EQ(cn_tls_client_ctx_new(&c, &co), CN_ETLS);
    return 0;
}

static void tls_ctx_rejects_bad_files(void)
{
    run_with_certs(bad_server_ctx_main, NULL);
}

/* ---- verification ------------------------------------------------------------------ */

struct refusal {
    const char *cert;       /* the server's certificate */
    const char *name;       /* the name the client verifies */
    bool system_store;      /* client trusts the system store, not our CA */
    bool skip_verification; /* client verifies nothing */
    int want;               /* the client's result */
};

static int refusal_main(void *arg)
{
    struct refusal *r = arg;
    struct server sv;
    server_start(&sv, server_ctx(r->cert, NULL, 0), serve_echo);
    struct cn_tls_client_opts o = {
        .ca_file = r->system_store ? NULL : cert("ca.pem"),
        .dangerously_skip_verification = r->skip_verification,
    };
    struct cn_tls_ctx *cc;
    CN_ASSERT_EQ(cn_tls_client_ctx_new(&cc, &o), 0);
    struct cn_stream *s = NULL;
    CN_ASSERT_EQ(dial(&s, cc, sv.port, r->name, cn_now() + LONG_MS), r->want);
    if (r->want == 0) {
        CN_ASSERT_EQ(cn_stream_write(s, "ok", 2, cn_now() + LONG_MS), 0);
        char back[2];
        CN_ASSERT_EQ(cn_stream_read_exact(s, back, 2, cn_now() + LONG_MS), 2);
        cn_stream_close(s);
    } else {
        CN_ASSERT(s == NULL);
        CN_ASSERT(strlen(cn_tls_last_error()) > 0);
        fprintf(stderr, "refused as expected: %s\n", cn_tls_last_error());
    }
    cn_tls_ctx_free(cc);
    server_stop(&sv);
    /* a refusing client sends an alert: the server's handshake fails too */
    CN_ASSERT_EQ(sv.accept_rc, r->want == 0 ? 0 : CN_ETLS_HANDSHAKE);
    return 0;
}

static void tls_client_refuses_self_signed(void)
{
    struct refusal r = {"selfsigned", "localhost", false, false, CN_ETLS_UNTRUSTED};
    run_with_certs(refusal_main, &r);
}

static void tls_client_refuses_unknown_ca_with_system_store(void)
{
    struct refusal r = {"server", "localhost", true, false, CN_ETLS_UNTRUSTED};
    run_with_certs(refusal_main, &r);
}

static void tls_client_refuses_expired(void)
{
    struct refusal r = {"expired", "localhost", false, false, CN_ETLS_EXPIRED};
    run_with_certs(refusal_main, &r);
}

static void tls_client_refuses_wrong_host_name(void)
{
    struct refusal r = {"wrong", "localhost", false, false, CN_ETLS_HOSTNAME};
    run_with_certs(refusal_main, &r);
}

static void tls_client_refuses_wrong_ip_address(void)
{
    struct refusal r = {"wrong", "127.0.0.1", false, false, CN_ETLS_HOSTNAME};
    run_with_certs(refusal_main, &r);
}

static void tls_client_verifies_ip_address(void)
{
    struct refusal r = {"server", "127.0.0.1", false, false, 0};
    run_with_certs(refusal_main, &r);
}

static void tls_skip_verification_accepts_self_signed(void)
{
    struct refusal r = {"selfsigned", "localhost", false, true, 0};
    run_with_certs(refusal_main, &r);
}

static void tls_skip_verification_accepts_wrong_name(void)
{
    struct refusal r = {"expired", "elsewhere.example", false, true, 0};
    run_with_certs(refusal_main, &r);
}

/* ---- deadlines, cancellation, broken peers ---------------------------------------- */

static int timeout_main(void *arg)
{
    struct server sv;
    server_start(&sv, NULL, serve_silent);
    struct cn_tls_ctx *cc = client_ctx(NULL, 0);
    struct cn_stream *s = NULL;
    int64_t deadline = cn_now() + 200;
    CN_ASSERT_EQ(dial(&s, cc, sv.port, "localhost", deadline), -ETIMEDOUT);
    CN_ASSERT_GE(cn_now(), deadline);
    CN_ASSERT(s == NULL);
    cn_tls_ctx_free(cc);
    server_stop(&sv);
    return 0;
}

static void tls_handshake_times_out_at_deadline(void)
{
    run_with_certs(timeout_main, NULL);
}

struct dialer {
    struct cn_tls_ctx *ctx;
    int port;
    struct cn_stream *s;
};

static int dial_forever(void *arg)
{
    struct dialer *d = arg;
    return dial(&d->s, d->ctx, d->port, "localhost", -1);
}

static int cancel_main(void *arg)
{
    struct server sv;
    server_start(&sv, NULL, serve_silent);
    struct dialer d = {client_ctx(NULL, 0), sv.port, NULL};
    struct cn_co *co;
    CN_ASSERT_EQ(cn_spawn(&co, dial_forever, &d, NULL), 0);
    /* the ClientHello arrived: the client is inside its handshake */
    CN_ASSERT_EQ(cn_event_wait(&sv.got_bytes, cn_now() + LONG_MS), 0);
    cn_cancel(co);
    int rc = 0;
    CN_ASSERT_EQ(cn_join(co, &rc, cn_now() + LONG_MS), 0);
    CN_ASSERT_EQ(rc, -ECANCELED);
    CN_ASSERT(d.s == NULL);
    cn_tls_ctx_free(d.ctx);
    server_stop(&sv);
    return 0;
}

static void tls_handshake_cancelled(void)
{
    run_with_certs(cancel_main, NULL);
}

static int hangup_main(void *arg)
{
    struct server sv;
    server_start(&sv, NULL, serve_hangup);
    struct cn_tls_ctx *cc = client_ctx(NULL, 0);
    struct cn_stream *s = NULL;
    int rc = dial(&s, cc, sv.port, "localhost", cn_now() + LONG_MS);
    fprintf(stderr, "hang-up gives %s (%s)\n", cn_err_name(rc), cn_tls_last_error());
    CN_ASSERT(rc == CN_ETLS_HANDSHAKE || rc == -ECONNRESET);
    CN_ASSERT(s == NULL);
    cn_tls_ctx_free(cc);
    server_stop(&sv);
    return 0;
}

static void tls_handshake_peer_hangs_up(void)
{
    run_with_certs(hangup_main, NULL);
}

static int plaintext_main(void *arg)
{
    struct server sv;
    server_start(&sv, server_ctx("server", NULL, 0), serve_echo);
    struct cn_stream *tcp;
    CN_ASSERT_EQ(cn_tcp_connect(&tcp, "127.0.0.1", sv.port, NULL, cn_now() + LONG_MS), 0);
    const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    CN_ASSERT_EQ(cn_stream_write(tcp, req, sizeof req - 1, cn_now() + LONG_MS), 0);
    char buf[256];
    while (cn_stream_read(tcp, buf, sizeof buf, cn_now() + LONG_MS) > 0) {
        /* the server's alert, then its close */
    }
    cn_stream_close(tcp);
    server_stop(&sv);
    CN_ASSERT_EQ(sv.accept_rc, CN_ETLS_HANDSHAKE);
    return 0;
}

static void tls_accept_rejects_plain_text(void)
{
    run_with_certs(plaintext_main, NULL);
}

static int read_timeout_main(void *arg)
{
    struct server sv;
    server_start(&sv, server_ctx("server", NULL, 0), serve_echo);
    struct cn_tls_ctx *cc = client_ctx(NULL, 0);
    struct cn_stream *s;
    CN_ASSERT_EQ(dial(&s, cc, sv.port, "localhost", cn_now() + LONG_MS), 0);
    char buf[16];
    CN_ASSERT_EQ(cn_stream_read(s, buf, sizeof buf, cn_now() + 50), -ETIMEDOUT);
    CN_ASSERT_EQ(cn_stream_read(s, buf, sizeof buf, 0), -ETIMEDOUT);
    /* nothing was lost: the stream still works */
    CN_ASSERT_EQ(cn_stream_write(s, "again", 5, cn_now() + LONG_MS), 0);
    CN_ASSERT_EQ(cn_stream_read_exact(s, buf, 5, cn_now() + LONG_MS), 5);
    CN_ASSERT_MEMEQ(buf, "again", 5);
    cn_stream_close(s);
    cn_tls_ctx_free(cc);
    server_stop(&sv);
    return 0;
}

static void tls_read_times_out_and_stays_usable(void)
{
    run_with_certs(read_timeout_main, NULL);
}

/* ---- close_notify and half-close --------------------------------------------------- */

static int close_notify_main(void *arg)
{
    struct server sv;
    server_start(&sv, server_ctx("server", NULL, 0), serve_bye);
    struct cn_tls_ctx *cc = client_ctx(NULL, 0);
    struct cn_stream *s;
    CN_ASSERT_EQ(dial(&s, cc, sv.port, "localhost", cn_now() + LONG_MS), 0);
    char buf[16];
    CN_ASSERT_EQ(cn_stream_read_exact(s, buf, 3, cn_now() + LONG_MS), 3);
    CN_ASSERT_MEMEQ(buf, "bye", 3);
    /* the server's close sent close_notify: a clean end, and it stays so */
    CN_ASSERT_EQ(cn_stream_read(s, buf, sizeof buf, cn_now() + LONG_MS), 0);
    CN_ASSERT_EQ(cn_stream_read(s, buf, sizeof buf, cn_now() + LONG_MS), 0);
    cn_stream_close(s);
    cn_tls_ctx_free(cc);
    server_stop(&sv);
    return 0;
}

static void tls_close_sends_close_notify(void)
{
    run_with_certs(close_notify_main, NULL);
}

static int half_close_main(void *arg)
{
    struct server sv;
    server_start(&sv, server_ctx("server", NULL, 0), serve_echo);
    struct cn_tls_ctx *cc = client_ctx(NULL, 0);
    struct cn_stream *s;
    CN_ASSERT_EQ(dial(&s, cc, sv.port, "localhost", cn_now() + LONG_MS), 0);
    CN_ASSERT_EQ(cn_stream_write(s, "last words", 10, cn_now() + LONG_MS), 0);
    CN_ASSERT_EQ(cn_stream_shutdown(s, cn_now() + LONG_MS), 0);
    CN_ASSERT_EQ(cn_stream_write(s, "more", 4, cn_now() + LONG_MS), -EPIPE);
    /* TLS 1.3 half-close: the echo still comes back after our close_notify */
    char buf[16];
    CN_ASSERT_EQ(cn_stream_read_exact(s, buf, 10, cn_now() + LONG_MS), 10);
    CN_ASSERT_MEMEQ(buf, "last words", 10);
    CN_ASSERT_EQ(cn_stream_read(s, buf, sizeof buf, cn_now() + LONG_MS), 0);
    cn_stream_close(s);
    cn_tls_ctx_free(cc);
    server_stop(&sv);
    CN_ASSERT_EQ(sv.last_read, 0);
    return 0;
}

static void tls_shutdown_is_half_close(void)
{
    run_with_certs(half_close_main, NULL);
}

/* ---- openssl s_server and s_client ------------------------------------------------------ */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CN_ASSERT(fd >= 0);
    CN_ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    CN_ASSERT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Runs argv[0] (found in PATH) with the given stdin/stdout (-1: /dev/null),
 * keeping stderr. The child dies with the test (PR_SET_PDEATHSIG), so a
 * failed assertion never leaves a server holding meson's output pipe. */
static pid_t start_process(char *const argv[], int in_fd, int out_fd)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    CN_ASSERT(pid >= 0);
    if (pid > 0) {
        return pid;
    }
    /* the child: async-signal-safe calls only, then exec */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
        _exit(126);
    }
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd < 0 || dup2(in_fd >= 0 ? in_fd : null_fd, 0) < 0 ||
        dup2(out_fd >= 0 ? out_fd : null_fd, 1) < 0) {
        _exit(126);
    }
    execvp(argv[0], argv);
    _exit(127);
}

static int stop_process(pid_t pid, int sig)
{
    int status = 0;
    if (sig) {
        kill(pid, sig);
    }
    CN_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    return status;
}

/* `openssl s_server -rev` on a free port: it answers each line reversed. */
static pid_t s_server_start(const char *version, int *port)
{
    static char accept[32];
    *port = free_port();
    snprintf(accept, sizeof accept, "127.0.0.1:%d", *port);
    char *argv[] = {"openssl",       "s_server",
                    "-accept",       accept,
                    "-cert",         (char *)cert("server.pem"),
                    "-key",          (char *)cert("server.key"),
                    "-rev",          "-quiet",
                    (char *)version, NULL};
    return start_process(argv, -1, -1);
}

/* Connects to a freshly started server, retrying while it is not listening. */
static int dial_retry(struct cn_stream **out, struct cn_tls_ctx *ctx, int port)
{
    struct cn_stream *tcp;
    int rc = -ECONNREFUSED;
    for (int i = 0; i < 200 && rc == -ECONNREFUSED; i++) {
        rc = cn_tcp_connect(&tcp, "127.0.0.1", port, NULL, cn_now() + LONG_MS);
        if (rc == -ECONNREFUSED) {
            cn_sleep(50);
        }
    }
    CN_ASSERT_EQ(rc, 0);
    return cn_tls_connect(out, ctx, tcp, "localhost", cn_now() + LONG_MS);
}

/* Reads up to and including the first '\n'. */
static size_t read_line(struct cn_stream *s, char *buf, size_t size)
{
    size_t n = 0;
    while (n < size && (n == 0 || buf[n - 1] != '\n')) {
        ssize_t r = cn_stream_read(s, buf + n, size - n, cn_now() + LONG_MS);
        CN_ASSERT_GT(r, 0);
        n += (size_t)r;
    }
    return n;
}

static int s_server_main(void *arg)
{
    int port;
    pid_t pid = s_server_start(arg, &port);
    struct cn_tls_ctx *cc = client_ctx(NULL, 0);
    struct cn_stream *s;
    CN_ASSERT_EQ(dial_retry(&s, cc, port), 0);
    const char line[] = "hello coronet\n";
    CN_ASSERT_EQ(cn_stream_write(s, line, sizeof line - 1, cn_now() + LONG_MS), 0);
    char buf[64];
    size_t n = read_line(s, buf, sizeof buf);
    CN_ASSERT_EQ(n, sizeof line - 1);
    CN_ASSERT_MEMEQ(buf, "tenoroc olleh\n", n);
    cn_stream_close(s);
    cn_tls_ctx_free(cc);
    stop_process(pid, SIGTERM);
    return 0;
}

static void tls_interop_s_server_tls12(void)
{
    run_with_certs(s_server_main, "-tls1_2");
}

static void tls_interop_s_server_tls13(void)
{
    run_with_certs(s_server_main, "-tls1_3");
}

static int truncation_main(void *arg)
{
    int port;
    pid_t pid = s_server_start("-tls1_3", &port);
    struct cn_tls_ctx *cc = client_ctx(NULL, 0);
    struct cn_stream *s;
    CN_ASSERT_EQ(dial_retry(&s, cc, port), 0);
    CN_ASSERT_EQ(cn_stream_write(s, "ab\n", 3, cn_now() + LONG_MS), 0);
    char buf[64];
    CN_ASSERT_EQ(read_line(s, buf, sizeof buf), 3);
    /* the kernel closes its socket: no close_notify, so the end is not clean */
    stop_process(pid, SIGKILL);
    CN_ASSERT_EQ(cn_stream_read(s, buf, sizeof buf, cn_now() + LONG_MS), -ECONNRESET);
    cn_stream_close(s);
    cn_tls_ctx_free(cc);
    return 0;
}

static void tls_truncation_without_close_notify_is_reset(void)
{
    run_with_certs(truncation_main, NULL);
}

/* Collects a non-blocking pipe's output into acc until it contains want,
 * polling (the pipe is not a loop handle), for at most LONG_MS. */
static bool wait_output(int fd, char *acc, size_t size, const char *want)
{
    size_t len = strlen(acc);
    for (int i = 0; i < LONG_MS / 20 && !strstr(acc, want); i++) {
        ssize_t k = read(fd, acc + len, size - 1 - len);
        if (k > 0) {
            len += (size_t)k;
            acc[len] = '\0';
        } else {
            cn_sleep(20);
        }
    }
    return strstr(acc, want) != NULL;
}

static void say(int fd, const char *line)
{
    CN_ASSERT_EQ(write(fd, line, strlen(line)), (ssize_t)strlen(line));
}

/* s_server's "K" command sends a KeyUpdate that requests ours (RFC 8446
 * §4.6.3): our SSL_read answers it, and what we send afterwards under the
 * new keys must still decrypt on the other side. */
static int key_update_main(void *arg)
{
    if (system("stdbuf --version >/dev/null 2>&1") != 0) {
        CN_TEST_SKIP_BECAUSE("no stdbuf command");
    }
    static char accept[32];
    int port = free_port();
    snprintf(accept, sizeof accept, "127.0.0.1:%d", port);
    /* stdbuf: s_server's own messages go through stdio, which would hold
     * them back on a pipe */
    char *argv[] = {"stdbuf",  "-o0",
                    "openssl", "s_server",
                    "-accept", accept,
                    "-cert",   (char *)cert("server.pem"),
                    "-key",    (char *)cert("server.key"),
                    "-tls1_3", NULL};
    int in[2], out[2];
    CN_ASSERT_EQ(pipe2(in, O_CLOEXEC), 0);
    CN_ASSERT_EQ(pipe2(out, O_CLOEXEC | O_NONBLOCK), 0);
    pid_t pid = start_process(argv, in[0], out[1]);
    close(in[0]);
    close(out[1]);
    struct cn_tls_ctx *cc = client_ctx(NULL, 0);
    struct cn_stream *s;
    CN_ASSERT_EQ(dial_retry(&s, cc, port), 0);
    static char acc[64 * 1024];
    CN_ASSERT_EQ(cn_stream_write(s, "ping\n", 5, cn_now() + LONG_MS), 0);
    CN_ASSERT(wait_output(out[0], acc, sizeof acc, "ping\n")); /* its handshake is done */
    say(in[1], "K\n");
    /* s_server reads its commands line by line only if they come apart */
    CN_ASSERT(wait_output(out[0], acc, sizeof acc, "SSL_do_handshake -> 1"));
    say(in[1], "data\n");
    char buf[64];
    CN_ASSERT_EQ(read_line(s, buf, sizeof buf), 5);
    CN_ASSERT_MEMEQ(buf, "data\n", 5);
    CN_ASSERT_EQ(cn_stream_write(s, "after\n", 6, cn_now() + LONG_MS), 0);
    CN_ASSERT(wait_output(out[0], acc, sizeof acc, "after\n"));
    cn_stream_close(s);
    cn_tls_ctx_free(cc);
    close(in[1]);
    close(out[0]);
    stop_process(pid, SIGTERM);
    return 0;
}

static void tls_answers_key_update(void)
{
    run_with_certs(key_update_main, NULL);
}

/* Drives `openssl s_client` through pipes from a plain thread, while the loop
 * thread serves it. */
struct s_client_run {
    const char *version;
    int port;
    bool echoed;
    int status;
};

static void *s_client_thread(void *arg)
{
    struct s_client_run *r = arg;
    char connect[32];
    snprintf(connect, sizeof connect, "127.0.0.1:%d", r->port);
    char *argv[] = {"openssl",     "s_client",    "-connect",
                    connect,       "-CAfile",     (char *)cert("ca.pem"),
                    "-servername", "localhost",   "-verify_return_error",
                    "-quiet",      "-no_ign_eof", (char *)r->version,
                    NULL};
    int in[2], out[2];
    CN_ASSERT_EQ(pipe2(in, O_CLOEXEC), 0);
    CN_ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
    pid_t pid = start_process(argv, in[0], out[1]);
    close(in[0]);
    close(out[1]);
    const char line[] = "ping from s_client\n";
    CN_ASSERT_EQ(write(in[1], line, sizeof line - 1), (ssize_t)(sizeof line - 1));
    char buf[64];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof line - 1 && (k = read(out[0], buf + n, sizeof buf - n)) > 0) {
        n += (size_t)k;
    }
    r->echoed = n == sizeof line - 1 && memcmp(buf, line, n) == 0;
    close(in[1]); /* s_client sends its close_notify and exits */
    close(out[0]);
    r->status = stop_process(pid, 0);
    return NULL;
}

static int s_client_main(void *arg)
{
    struct server sv;
    server_start(&sv, server_ctx("server", NULL, 0), serve_echo);
    struct s_client_run r = {arg, sv.port, false, -1};
    pthread_t th;
    CN_ASSERT_EQ(pthread_create(&th, NULL, s_client_thread, &r), 0);
    server_stop(&sv); /* the echo ends when s_client closes */
    CN_ASSERT_EQ(pthread_join(th, NULL), 0);
    CN_ASSERT_EQ(sv.accept_rc, 0);
    CN_ASSERT(r.echoed);
    CN_ASSERT(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    CN_ASSERT_EQ(sv.last_read, 0); /* s_client's close_notify: a clean end */
    return 0;
}

static void tls_interop_s_client_tls12(void)
{
    run_with_certs(s_client_main, "-tls1_2");
}

static void tls_interop_s_client_tls13(void)
{
    run_with_certs(s_client_main, "-tls1_3");
}

CN_TEST_MAIN(
    CN_CASE(tls_round_trip_1mib_with_alpn), CN_CASE(stress_tls_100_mib_through_echo_server_intact),
    CN_CASE(tls_alpn_no_overlap_continues_without), CN_CASE(tls_server_cert_from_memory),
    CN_CASE(tls_ctx_rejects_bad_files), CN_CASE(tls_client_refuses_self_signed),
    CN_CASE(tls_client_refuses_unknown_ca_with_system_store), CN_CASE(tls_client_refuses_expired),
    CN_CASE(tls_client_refuses_wrong_host_name), CN_CASE(tls_client_refuses_wrong_ip_address),
    CN_CASE(tls_client_verifies_ip_address), CN_CASE(tls_skip_verification_accepts_self_signed),
    CN_CASE(tls_skip_verification_accepts_wrong_name), CN_CASE(tls_handshake_times_out_at_deadline),
    CN_CASE(tls_handshake_cancelled), CN_CASE(tls_handshake_peer_hangs_up),
    CN_CASE(tls_accept_rejects_plain_text), CN_CASE(tls_read_times_out_and_stays_usable),
    CN_CASE(tls_close_sends_close_notify), CN_CASE(tls_shutdown_is_half_close),
    CN_CASE(tls_interop_s_server_tls12), CN_CASE(tls_interop_s_server_tls13),
    CN_CASE(tls_truncation_without_close_notify_is_reset), CN_CASE(tls_interop_s_client_tls12),
    CN_CASE(tls_interop_s_client_tls13), CN_CASE(tls_answers_key_update))
