/* SPDX-License-Identifier: MIT */
/*
 * The TCP echo benchmark: coronet's echo server against a raw libuv callback
 * echo server and a Boost.Asio echo server, all measured in one run.
 *
 *   bench-tcp-echo [--quick] [--pin] [--rounds N] [--seconds S] [--case NAME]
 *   bench-tcp-echo --client HOST:PORT [--size B] [--count N] [--conns C] [--stream SECS]
 *
 * The first form takes no arguments by default and prints one JSON object
 * per line, the format every coronet benchmark shares (scripts/bench
 * tabulates it):
 *
 *   {"bench": "tcp_echo", "case": "pingpong_64", "impl": "coronet", "value": N, "unit": "rt/s"}
 *
 * Servers, each a child process on 127.0.0.1 port 0 whose "listening on
 * HOST:PORT" line tells the port:
 *   coronet  ../examples/echo-server --port 0 (relative to this binary)
 *   libuv    uv-echo (bench/peers/uv_echo.c, the reference of every ratio)
 *   asio     asio-echo (bench/peers/asio_echo.cpp, when Boost.Asio was found)
 *
 * The load generator is this program: plain C on epoll, not coronet, so it
 * does not measure itself. Nothing is pinned by default: on these 2-vCPU
 * virtual machines a server pinned to one CPU and the load generator to the
 * other made every ping-pong round trip wait for a cross-CPU wake-up of an
 * idle vCPU (64 B p50 ~140 us pinned against ~22 us unpinned, for all three
 * servers alike), which hides the servers' own costs. Unpinned, the kernel
 * is free to run both on one CPU, as it does for any local ping-pong.
 * --pin puts every server on the first allowed CPU and the load generator
 * on the second, the same for every implementation.
 *
 * Cases (S = 64, 1k, 16k, 64k bytes):
 *   pingpong_S      1 connection sends S bytes, waits for all S back, again:
 *                   round trips per second (rt/s);
 *   pingpong50_S    the same on 50 connections at once (total rt/s);
 *   pingpong_S_p50, _p99, pingpong50_S_p50, _p99
 *                   latency of those round trips in microseconds;
 *   stream_S        1 connection writes S-byte messages keeping 16 of them
 *                   in flight (write while reading): MB/s (10^6 bytes) echoed
 *                   back;
 *   tls_stream_16k  the same over TLS 1.3 at 16 KiB (one TLS record per
 *                   message): coronet's echo-server --tls against
 *                   `openssl s_server -rev` (impl "s_server"), OpenSSL's own
 *                   blocking echo loop. -rev echoes lines reversed, so each
 *                   message is 16,383 bytes and a newline; it serves one
 *                   connection at a time, which is all this case uses;
 *   tls_connect     new connection + TLS 1.3 handshake (P-256 ECDSA
 *                   certificate) + one 2-byte echo + close_notify, one after
 *                   another: connections per second (conn/s), same two impls;
 *   idle_rss, idle_rss_tls
 *                   resident memory per idle connection in bytes: a fresh
 *                   server, 1,000 connections each echoing 64 bytes once
 *                   then left open; (VmRSS after - VmRSS before) / 1,000.
 *
 * Every case runs for a fixed time (0.4 s after 0.05 s of warm-up) per
 * implementation per round, with implementations interleaved round-robin
 * (the order rotates each case and round) so machine noise hits all of them
 * alike; each printed value is the median of 7 rounds (short runs, many
 * rounds: a burst of noise spoils one round, not the median). The whole run
 * takes about 2.5 minutes; --case NAME runs one plain case only.
 * CN_BENCH_QUICK=1 (or --quick) shrinks every time and count for the smoke
 * test. A server that cannot be started prints no lines at all rather than
 * a made-up value.
 *
 * The second form is the fixed-count client scripts/syscalls runs against a
 * server under strace: C connections, N round trips of B bytes in total
 * (defaults 1, 20,000, 64), then a summary on stderr; --stream SECS instead
 * streams B-byte messages for SECS seconds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
    MAX_ROUNDS = 15,
    STREAM_DEPTH = 16,        /* messages in flight per connection in stream cases */
    SCRATCH = 256 * 1024,     /* the load generator's read buffer */
    MAX_MSG = 64 * 1024,      /* largest message */
    LAT_CAP = 4 * 1024 * 1024 /* latency samples kept per run */
};

static bool quick;
static int rounds = 7;
static double run_secs = 0.4;
static double warm_secs = 0.05;
static int idle_conns = 1000;
static int server_cpu = -1;   /* -1: not pinned */
static const char *only_case; /* --case: run just this one */

static char msg[MAX_MSG];
static char scratch[SCRATCH];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench-tcp-echo: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void emit(const char *bench_case, const char *impl, double value, const char *unit)
{
    printf("{\"bench\": \"tcp_echo\", \"case\": \"%s\", \"impl\": \"%s\", \"value\": %.*f, "
           "\"unit\": \"%s\"}\n",
           bench_case, impl, value >= 100 ? 0 : 2, value, unit);
    fflush(stdout);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double s[MAX_ROUNDS];
    memcpy(s, v, (size_t)n * sizeof *v);
    qsort(s, (size_t)n, sizeof s[0], cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* ---- servers: child processes announcing their port ------------------------------ */

struct server {
    const char *impl;
    char *argv[12];
    pid_t pid;
    int port;
    char log[64]; /* the child's stdout and stderr */
};

static void pin_self(int cpu)
{
    if (cpu < 0) {
        return;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* The port from a "listening on HOST:PORT" (ours) or "ACCEPT HOST:PORT"
 * (openssl s_server) line in the child's log, or 0 while there is none. */
static int find_port(const char *log)
{
    FILE *f = fopen(log, "r");
    if (!f) {
        return 0;
    }
    char line[512];
    int port = 0;
    while (!port && fgets(line, sizeof line, f)) {
        if (strncmp(line, "listening on ", 13) == 0 || strncmp(line, "ACCEPT ", 7) == 0) {
            char *colon = strrchr(line, ':');
            port = colon ? atoi(colon + 1) : 0;
        }
    }
    fclose(f);
    return port;
}

static int server_start(struct server *s)
{
    snprintf(s->log, sizeof s->log, "/tmp/bench-tcp-echo-XXXXXX");
    int fd = mkstemp(s->log);
    if (fd < 0) {
        return -errno;
    }
    s->pid = fork();
    if (s->pid == 0) {
        pin_self(server_cpu);
        dup2(fd, 1);
        dup2(fd, 2);
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        execv(s->argv[0], s->argv);
        _exit(127);
    }
    close(fd);
    if (s->pid < 0) {
        return -errno;
    }
    for (double end = now_s() + 10; now_s() < end;) {
        s->port = find_port(s->log);
        if (s->port > 0) {
            return 0;
        }
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            break;
        }
        usleep(10000);
    }
    note("%s: %s did not announce its port (log %s)", s->impl, s->argv[0], s->log);
    return -1;
}

/* SIGTERM, then SIGKILL after 5 s. Returns the exit status, or -1. */
static int server_stop(struct server *s)
{
    if (s->pid <= 0) {
        return -1;
    }
    kill(s->pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 500; i++) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            unlink(s->log);
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        usleep(10000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    s->pid = 0;
    note("%s: did not stop on SIGTERM (log %s)", s->impl, s->log);
    return -1;
}

static long rss_bytes(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return kb < 0 ? -1 : kb * 1024;
}

/* ---- sockets ------------------------------------------------------------------------ */

static int connect_to(int port, bool nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (nonblock) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    return fd;
}

/* Blocking: writes all of buf / reads exactly n bytes. */
static int write_full(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, buf, n);
        if (k <= 0) {
            return -1;
        }
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

static int read_full(int fd, char *buf, size_t n)
{
    while (n > 0) {
        ssize_t k = read(fd, buf, n);
        if (k <= 0) {
            return -1;
        }
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

/* ---- the load generator: ping-pong and stream on epoll ----------------------------- */

enum mode { PINGPONG, STREAM };

struct conn {
    int fd;
    size_t woff;      /* bytes of the current message written */
    size_t rgot;      /* ping-pong: bytes of the echo received */
    uint64_t pending; /* stream: bytes written and not yet echoed back */
    double t0;        /* ping-pong: when the current message started */
    bool want_out;    /* EPOLLOUT is armed */
    bool dead;
};

struct load {
    enum mode mode;
    size_t size;
    int nconns;
    double warm, secs; /* time limits */
    long count;        /* ping-pong: stop after this many round trips (0: no limit) */
    /* results */
    long rts;
    uint64_t bytes;
    double elapsed;
    uint32_t *lat_ns;
    size_t nlat;
    int errors;
};

static void arm_out(int ep, struct conn *c, bool on)
{
    if (c->want_out == on) {
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

/* Writes as much of the current message(s) as the mode allows. */
static int pump_out(int ep, struct load *L, struct conn *c)
{
    for (;;) {
        if (L->mode == PINGPONG && c->woff == L->size) {
            break; /* the message is out; wait for its echo */
        }
        if (L->mode == STREAM && c->woff == 0 &&
            c->pending + L->size > (uint64_t)STREAM_DEPTH * L->size) {
            break; /* window full */
        }
        ssize_t k = write(c->fd, msg + c->woff, L->size - c->woff);
        if (k < 0 && errno == EAGAIN) {
            arm_out(ep, c, true);
            return 0;
        }
        if (k <= 0) {
            return -1;
        }
        c->woff += (size_t)k;
        if (L->mode == STREAM) {
            c->pending += (uint64_t)k;
            if (c->woff == L->size) {
                c->woff = 0;
            }
        }
    }
    arm_out(ep, c, false);
    return 0;
}

static void start_message(int ep, struct load *L, struct conn *c, double t)
{
    c->woff = 0;
    c->rgot = 0;
    c->t0 = t;
    if (pump_out(ep, L, c) != 0) {
        c->dead = true;
    }
}

/* Handles readable data. Returns false when the connection failed. */
static bool on_input(int ep, struct load *L, struct conn *c, double t, double t_start)
{
    size_t want = L->mode == PINGPONG ? L->size - c->rgot : SCRATCH;
    ssize_t k = read(c->fd, scratch, want);
    if (k < 0 && errno == EAGAIN) {
        return true;
    }
    if (k <= 0) {
        return false;
    }
    if (L->mode == STREAM) {
        c->pending -= (uint64_t)k;
        if (t >= t_start) {
            L->bytes += (uint64_t)k;
        }
        return pump_out(ep, L, c) == 0;
    }
    c->rgot += (size_t)k;
    if (c->rgot < L->size) {
        return true;
    }
    if (c->t0 >= t_start) {
        L->rts++;
        if (L->nlat < LAT_CAP) {
            double ns = (t - c->t0) * 1e9;
            L->lat_ns[L->nlat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
        }
    }
    if (L->count == 0 || L->rts < L->count) {
        start_message(ep, L, c, t);
    }
    return true;
}

static int open_conns(struct conn *cs, int n, int port, int ep)
{
    for (int i = 0; i < n; i++) {
        cs[i] = (struct conn){.fd = connect_to(port, true)};
        if (cs[i].fd < 0) {
            note("connect to port %d: %s", port, strerror(-cs[i].fd));
            return -1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    return 0;
}

/* Runs one measurement against the server on port. */
static int load_run(struct load *L, int port)
{
    struct conn *cs = calloc((size_t)L->nconns, sizeof *cs);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int rc = cs && ep >= 0 ? open_conns(cs, L->nconns, port, ep) : -1;
    double t_begin = now_s();
    double t_start = t_begin + L->warm, t_end = t_start + L->secs;
    for (int i = 0; rc == 0 && i < L->nconns; i++) {
        start_message(ep, L, &cs[i], t_begin);
    }
    int live = L->nconns;
    struct epoll_event evs[64];
    while (rc == 0 && live > 0) {
        double t = now_s();
        bool done_count = L->count > 0 && L->rts >= L->count;
        if (t >= t_end || done_count) {
            /* what is still in flight does not count */
            L->elapsed = (done_count ? t : t_end) - t_start;
            break;
        }
        int timeout = (int)((t_end - t) * 1000) + 1;
        int n = epoll_wait(ep, evs, 64, timeout);
        t = now_s();
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            bool ok = !c->dead;
            if (ok && (evs[i].events & EPOLLOUT)) {
                ok = pump_out(ep, L, c) == 0;
            }
            if (ok && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
                ok = on_input(ep, L, c, t, t_start);
            }
            if (!ok && !c->dead) {
                c->dead = true;
            }
            if (c->dead && c->fd >= 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                L->errors++;
                live--;
            }
        }
    }
    if (L->elapsed <= 0) {
        L->elapsed = now_s() - t_start;
    }
    for (int i = 0; cs && i < L->nconns; i++) {
        if (cs[i].fd >= 0) {
            close(cs[i].fd);
        }
    }
    if (ep >= 0) {
        close(ep);
    }
    free(cs);
    return rc != 0 || L->errors ? -1 : 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double percentile_us(uint32_t *v, size_t n, double p)
{
    if (n == 0) {
        return 0;
    }
    size_t i = (size_t)(p * (double)(n - 1));
    return v[i] / 1e3;
}

/* ---- TLS client (OpenSSL, blocking handshake, then non-blocking stream) --------------- */

static SSL_CTX *tls_ctx;

static SSL *tls_connect(int port)
{
    int fd = connect_to(port, false);
    if (fd < 0) {
        return NULL;
    }
    SSL *ssl = SSL_new(tls_ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        ERR_print_errors_fp(stderr);
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    return ssl;
}

static void tls_close(SSL *ssl)
{
    int fd = SSL_get_fd(ssl);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
}

/* One connection, TLS_MSG-byte lines, STREAM_DEPTH in flight: bytes echoed. */
static int tls_stream(int port, double *mbps)
{
    enum { TLS_MSG = 16 * 1024 };
    static char line[TLS_MSG];
    memset(line, 'a', sizeof line);
    line[TLS_MSG - 1] = '\n'; /* s_server -rev echoes lines */
    SSL *ssl = tls_connect(port);
    if (!ssl) {
        return -1;
    }
    int fd = SSL_get_fd(ssl);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    uint64_t pending = 0, bytes = 0;
    double t_start = now_s() + warm_secs, t_end = t_start + run_secs;
    int rc = 0;
    while (rc == 0) {
        double t = now_s();
        if (t >= t_end) {
            break;
        }
        while (pending + TLS_MSG <= (uint64_t)STREAM_DEPTH * TLS_MSG) {
            int k = SSL_write(ssl, line, TLS_MSG);
            if (k <= 0) {
                rc = SSL_get_error(ssl, k) == SSL_ERROR_WANT_WRITE ? 0 : -1;
                break;
            }
            pending += (uint64_t)k;
        }
        for (;;) {
            int k = SSL_read(ssl, scratch, SCRATCH);
            if (k <= 0) {
                int e = SSL_get_error(ssl, k);
                rc = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? rc : -1;
                break;
            }
            pending -= (uint64_t)k;
            if (t >= t_start) {
                bytes += (uint64_t)k;
            }
        }
        bool room = pending + TLS_MSG <= (uint64_t)STREAM_DEPTH * TLS_MSG;
        ev.events = EPOLLIN | (room ? EPOLLOUT : 0);
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        epoll_wait(ep, &ev, 1, (int)((t_end - t) * 1000) + 1);
    }
    close(ep);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    SSL_free(ssl); /* no close_notify: data is still in flight */
    close(fd);
    *mbps = (double)bytes / run_secs / 1e6;
    return rc;
}

/* Connections per second: connect, handshake, "x\n" echoed, close_notify. */
static int tls_connects(int port, double *rate)
{
    double t_start = now_s(), t_end = t_start + run_secs / 2;
    long n = 0;
    double t;
    while ((t = now_s()) < t_end) {
        SSL *ssl = tls_connect(port);
        char buf[2];
        if (!ssl || SSL_write(ssl, "x\n", 2) != 2 || SSL_read(ssl, buf, 2) != 2) {
            if (ssl) {
                SSL_free(ssl);
            }
            return -1;
        }
        tls_close(ssl);
        n++;
    }
    *rate = (double)n / (t - t_start);
    return 0;
}

/* ---- the cases ---------------------------------------------------------------------- */

enum { NSIZES = 4, NCASES = 3 * NSIZES, NLAT = 2 * NSIZES * 2, MAX_IMPLS = 3 };

static const size_t sizes[NSIZES] = {64, 1024, 16 * 1024, 64 * 1024};
static const char *const size_names[NSIZES] = {"64", "1k", "16k", "64k"};

struct result {
    double value[MAX_ROUNDS];
    double p50[MAX_ROUNDS], p99[MAX_ROUNDS];
    int n;
};

static void case_name(char *out, size_t len, int c)
{
    static const char *const kinds[] = {"pingpong", "pingpong50", "stream"};
    snprintf(out, len, "%s_%s", kinds[c / NSIZES], size_names[c % NSIZES]);
}

static int measure(int c, int port, double *value, double *p50, double *p99)
{
    static uint32_t *lat;
    if (!lat) {
        lat = malloc(LAT_CAP * sizeof *lat);
    }
    struct load L = {
        .mode = c / NSIZES == 2 ? STREAM : PINGPONG,
        .size = sizes[c % NSIZES],
        .nconns = c / NSIZES == 1 ? 50 : 1,
        .warm = warm_secs,
        .secs = run_secs,
        .lat_ns = lat,
    };
    if (load_run(&L, port) != 0) {
        return -1;
    }
    if (L.mode == STREAM) {
        *value = (double)L.bytes / L.elapsed / 1e6;
        return 0;
    }
    *value = (double)L.rts / L.elapsed;
    qsort(L.lat_ns, L.nlat, sizeof *L.lat_ns, cmp_u32);
    *p50 = percentile_us(L.lat_ns, L.nlat, 0.50);
    *p99 = percentile_us(L.lat_ns, L.nlat, 0.99);
    return 0;
}

static void report_plain(struct server *srv, int nsrv, struct result res[][MAX_IMPLS])
{
    for (int c = 0; c < NCASES; c++) {
        char name[64];
        case_name(name, sizeof name, c);
        bool stream = c / NSIZES == 2;
        for (int i = 0; i < nsrv; i++) {
            struct result *r = &res[c][i];
            if (r->n == rounds) {
                emit(name, srv[i].impl, median(r->value, r->n), stream ? "MB/s" : "rt/s");
            }
        }
        if (stream) {
            continue;
        }
        for (int i = 0; i < nsrv; i++) {
            struct result *r = &res[c][i];
            char lname[80];
            if (r->n == rounds) {
                snprintf(lname, sizeof lname, "%s_p50", name);
                emit(lname, srv[i].impl, median(r->p50, r->n), "us");
                snprintf(lname, sizeof lname, "%s_p99", name);
                emit(lname, srv[i].impl, median(r->p99, r->n), "us");
            }
        }
    }
}

/* Every case, every round, implementations in rotating order. */
static void bench_plain(struct server *srv, int nsrv)
{
    static struct result res[NCASES][MAX_IMPLS];
    for (int round = 0; round < rounds; round++) {
        for (int c = 0; c < NCASES; c++) {
            for (int k = 0; k < nsrv; k++) {
                int i = (k + round + c) % nsrv;
                struct result *r = &res[c][i];
                char name[64];
                case_name(name, sizeof name, c);
                if (srv[i].pid <= 0 || r->n != round || (only_case && strcmp(only_case, name))) {
                    continue; /* not running, failed an earlier round, or not chosen */
                }
                if (measure(c, srv[i].port, &r->value[r->n], &r->p50[r->n], &r->p99[r->n]) == 0) {
                    r->n++;
                } else {
                    note("%s: %s failed in round %d", srv[i].impl, name, round + 1);
                }
            }
        }
    }
    report_plain(srv, nsrv, res);
}

static void bench_tls(struct server *srv, int nsrv)
{
    double mb[MAX_IMPLS][MAX_ROUNDS], cps[MAX_IMPLS][MAX_ROUNDS];
    int n[MAX_IMPLS] = {0};
    for (int round = 0; round < rounds; round++) {
        for (int k = 0; k < nsrv; k++) {
            int i = (k + round) % nsrv;
            if (srv[i].pid <= 0 || n[i] != round) {
                continue;
            }
            if (tls_stream(srv[i].port, &mb[i][n[i]]) == 0 &&
                tls_connects(srv[i].port, &cps[i][n[i]]) == 0) {
                n[i]++;
            } else {
                note("%s: TLS case failed in round %d", srv[i].impl, round + 1);
            }
        }
    }
    for (int i = 0; i < nsrv; i++) {
        if (n[i] == rounds) {
            emit("tls_stream_16k", srv[i].impl, median(mb[i], n[i]), "MB/s");
        }
    }
    for (int i = 0; i < nsrv; i++) {
        if (n[i] == rounds) {
            emit("tls_connect", srv[i].impl, median(cps[i], n[i]), "conn/s");
        }
    }
}

/* idle_conns connections, each echoing 64 bytes once, then left open. */
static int idle_open(int port, bool tls, int *fds, SSL **ssls)
{
    for (int i = 0; i < idle_conns; i++) {
        char buf[64];
        if (tls) {
            ssls[i] = tls_connect(port);
            if (!ssls[i] || SSL_write(ssls[i], msg, 64) != 64 || SSL_read(ssls[i], buf, 64) != 64) {
                return -1;
            }
            continue;
        }
        fds[i] = connect_to(port, false);
        if (fds[i] < 0 || write_full(fds[i], msg, 64) != 0 || read_full(fds[i], buf, 64) != 0) {
            return -1;
        }
    }
    return 0;
}

/* A fresh server: RSS before and after idle_conns idle connections. */
static void bench_idle(struct server *s, bool tls, const char *bench_case)
{
    if (server_start(s) != 0) {
        return;
    }
    usleep(200000);
    long before = rss_bytes(s->pid);
    int *fds = calloc((size_t)idle_conns, sizeof *fds);
    SSL **ssls = calloc((size_t)idle_conns, sizeof *ssls);
    for (int i = 0; i < idle_conns; i++) {
        fds[i] = -1;
    }
    int rc = idle_open(s->port, tls, fds, ssls);
    usleep(200000);
    long after = rss_bytes(s->pid);
    if (rc == 0 && before > 0 && after > 0) {
        emit(bench_case, s->impl, (double)(after - before) / idle_conns, "bytes");
    } else {
        note("%s: %s failed", s->impl, bench_case);
    }
    for (int i = 0; i < idle_conns; i++) {
        if (ssls[i]) {
            SSL_free(ssls[i]); /* the server sees a plain close */
        }
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    free(fds);
    free(ssls);
    server_stop(s);
}

/* ---- main --------------------------------------------------------------------------- */

static char self_dir[PATH_MAX];

static char *sibling(const char *rel)
{
    static char paths[8][PATH_MAX];
    static int next;
    char *p = paths[next++ % 8];
    if (snprintf(p, PATH_MAX, "%s/%s", self_dir, rel) >= PATH_MAX) {
        p[0] = '\0'; /* not executable: reported as not built */
    }
    return p;
}

static bool executable(const char *path)
{
    return access(path, X_OK) == 0;
}

/* Server on the first allowed CPU, load generator on the second. */
static void pin_setup(bool pin)
{
    cpu_set_t set;
    if (!pin || sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) < 2) {
        note("not pinned");
        return;
    }
    int cpus[2], n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++) {
        if (CPU_ISSET(c, &set)) {
            cpus[n++] = c;
        }
    }
    server_cpu = cpus[0];
    pin_self(cpus[1]);
    note("servers pinned to CPU %d, load generator to CPU %d", cpus[0], cpus[1]);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)idle_conns + 64) {
        idle_conns = (int)rl.rlim_cur - 64;
        note("RLIMIT_NOFILE %ld: %d idle connections", (long)rl.rlim_cur, idle_conns);
    }
}

#ifndef CN_SOURCE_ROOT
#define CN_SOURCE_ROOT "."
#endif

/* Makes throwaway certificates with tests/net/certs.sh (from the source tree
 * this was built from, or $CN_SOURCE_ROOT); 0 when it worked. */
static int make_certs(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/bench-tcp-echo-certs-XXXXXX");
    if (!mkdtemp(dir)) {
        return -1;
    }
    const char *src = getenv("CN_SOURCE_ROOT") ? getenv("CN_SOURCE_ROOT") : CN_SOURCE_ROOT;
    char cmd[PATH_MAX * 2];
    if (snprintf(cmd, sizeof cmd, "sh '%s/tests/net/certs.sh' '%s' >/dev/null 2>&1", src, dir) >=
        (int)sizeof cmd) {
        return -1;
    }
    return system(cmd) == 0 ? 0 : -1;
}

static void remove_dir(const char *dir)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        note("could not remove %s", dir);
    }
}

static int run_tls(void)
{
    char dir[64], cert[128], key[128];
    if (make_certs(dir, sizeof dir) != 0) {
        note("no certificates (tests/net/certs.sh not found): TLS cases skipped");
        return 0;
    }
    snprintf(cert, sizeof cert, "%s/server.pem", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    tls_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL); /* throwaway certificate */
    SSL_CTX_set_min_proto_version(tls_ctx, TLS1_3_VERSION);

    struct server srv[2] = {
        {.impl = "coronet",
         .argv = {sibling("../examples/echo-server"), "--port", "0", "--tls", cert, key}},
        {.impl = "s_server",
         .argv = {"/usr/bin/openssl", "s_server", "-accept", "127.0.0.1:0", "-rev", "-cert", cert,
                  "-key", key, "-naccept", "1000000"}},
    };
    int nsrv = executable(srv[1].argv[0]) ? 2 : 1;
    for (int i = 0; i < nsrv; i++) {
        server_start(&srv[i]);
    }
    bench_tls(srv, nsrv);
    for (int i = 0; i < nsrv; i++) {
        server_stop(&srv[i]);
    }
    struct server fresh = srv[0];
    bench_idle(&fresh, true, "idle_rss_tls");
    remove_dir(dir);
    return 0;
}

static int run_all(void)
{
    struct server srv[MAX_IMPLS] = {
        {.impl = "coronet", .argv = {sibling("../examples/echo-server"), "--port", "0"}},
        {.impl = "libuv", .argv = {sibling("uv-echo"), "--port", "0"}},
        {.impl = "asio", .argv = {sibling("asio-echo"), "--port", "0"}},
    };
    int nsrv = 0;
    for (int i = 0; i < MAX_IMPLS; i++) {
        if (executable(srv[i].argv[0])) {
            srv[nsrv++] = srv[i];
        } else {
            note("%s: %s not built, not measured", srv[i].impl, srv[i].argv[0]);
        }
    }
    if (nsrv == 0 || strcmp(srv[0].impl, "coronet") != 0) {
        note("the coronet echo server is not built");
        return 1;
    }
    for (int i = 0; i < nsrv; i++) {
        server_start(&srv[i]);
    }
    bench_plain(srv, nsrv);
    int rc = 0;
    if (only_case) {
        for (int i = 0; i < nsrv; i++) {
            server_stop(&srv[i]);
        }
        return 0;
    }
    for (int i = 0; i < nsrv; i++) {
        int status = server_stop(&srv[i]);
        if (status != 0) {
            note("%s exited with status %d", srv[i].impl, status);
            rc = strcmp(srv[i].impl, "coronet") == 0 ? 1 : rc;
        }
    }
    for (int i = 0; i < nsrv; i++) {
        struct server fresh = {.impl = srv[i].impl};
        memcpy(fresh.argv, srv[i].argv, sizeof fresh.argv);
        bench_idle(&fresh, false, "idle_rss");
    }
    return rc | run_tls();
}

/* --client HOST:PORT: fixed-count ping-pong for scripts/syscalls. */
static int run_client(const char *hostport, size_t size, long count, int conns, double stream)
{
    const char *colon = strrchr(hostport, ':');
    int port = colon ? atoi(colon + 1) : 0;
    if (port <= 0 || size == 0 || size > MAX_MSG || conns < 1) {
        fprintf(stderr, "bench-tcp-echo: bad --client arguments\n");
        return 2;
    }
    uint32_t *lat = malloc(LAT_CAP * sizeof *lat);
    struct load L = {.mode = stream > 0 ? STREAM : PINGPONG,
                     .size = size,
                     .nconns = conns,
                     .secs = stream > 0 ? stream : 120,
                     .count = stream > 0 ? 0 : count,
                     .lat_ns = lat};
    if (stream > 0) {
        int rc = load_run(&L, port);
        fprintf(stderr, "bench-tcp-echo: %.1f MB echoed in %.3f s\n", (double)L.bytes / 1e6,
                L.elapsed);
        free(lat);
        return rc == 0 ? 0 : 1;
    }
    int rc = count > 0 ? load_run(&L, port) : 0;
    if (count == 0) { /* connections only: the baseline scripts/syscalls subtracts */
        for (int i = 0; i < conns; i++) {
            int fd = connect_to(port, false);
            if (fd >= 0) {
                close(fd);
            }
        }
    }
    fprintf(stderr,
            "bench-tcp-echo: %ld round trips of %zu bytes on %d connection(s) in %.3f s%s\n", L.rts,
            size, conns, L.elapsed, rc == 0 ? "" : " (errors)");
    free(lat);
    return rc == 0 && L.rts == count ? 0 : 1;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: bench-tcp-echo [--quick] [--pin] [--rounds N] [--seconds S]\n"
            "                      [--case NAME]\n"
            "       bench-tcp-echo --client HOST:PORT [--size B] [--count N] [--conns C]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *client = NULL;
    size_t size = 64;
    long count = 20000;
    int conns = 1;
    double stream = 0;
    bool pin = false;
    quick = getenv("CN_BENCH_QUICK") && strcmp(getenv("CN_BENCH_QUICK"), "0") != 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (strcmp(a, "--quick") == 0) {
            quick = true;
        } else if (strcmp(a, "--pin") == 0) {
            pin = true;
        } else if (strcmp(a, "--rounds") == 0 && more) {
            rounds = atoi(argv[++i]);
        } else if (strcmp(a, "--seconds") == 0 && more) {
            run_secs = atof(argv[++i]);
        } else if (strcmp(a, "--case") == 0 && more) {
            only_case = argv[++i];
        } else if (strcmp(a, "--client") == 0 && more) {
            client = argv[++i];
        } else if (strcmp(a, "--size") == 0 && more) {
            size = (size_t)atol(argv[++i]);
        } else if (strcmp(a, "--count") == 0 && more) {
            count = atol(argv[++i]);
        } else if (strcmp(a, "--stream") == 0 && more) {
            stream = atof(argv[++i]);
        } else if (strcmp(a, "--conns") == 0 && more) {
            conns = atoi(argv[++i]);
        } else {
            return usage();
        }
    }
    signal(SIGPIPE, SIG_IGN);
    memset(msg, 'a', sizeof msg);
    if (client) {
        return run_client(client, size, count, conns, stream);
    }
    if (rounds < 1 || rounds > MAX_ROUNDS || run_secs <= 0) {
        return usage();
    }
    if (quick) {
        rounds = 1;
        run_secs = 0.05;
        warm_secs = 0.01;
        idle_conns = 50;
    }
    ssize_t n = readlink("/proc/self/exe", self_dir, sizeof self_dir - 1);
    if (n <= 0) {
        return 1;
    }
    self_dir[n] = '\0';
    *strrchr(self_dir, '/') = '\0';
    raise_nofile();
    pin_setup(pin);
    return run_all();
}
