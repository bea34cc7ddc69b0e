/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket echo benchmark: coronet's WebSocket echo server against
 * Bun's (uWebSockets inside) and Node's `ws`, all measured in one run.
 *
 *   bench-ws-echo [--quick] [--rounds N] [--seconds S] [--case NAME] [--impl NAME]
 *            [--no-syscalls]
 *   bench-ws-echo --client HOST:PORT [--size B] [--count N] [--conns C] [--stream SECS]
 *
 * The first form takes no arguments by default and prints one JSON object
 * per line, the format every coronet benchmark shares (scripts/bench
 * tabulates it, with Bun as the reference of every ratio):
 *
 *   {"bench": "ws_echo", "case": "pingpong_64", "impl": "coronet", "value": N, "unit": "msg/s"}
 *
 * Servers, each a child process on 127.0.0.1 port 0 whose "listening on
 * HOST:PORT" line tells the port, all echoing on path "/" with compression
 * off (this client offers no extension and fails a handshake that
 * negotiates one):
 *   coronet  ../examples/ws-echo-server --port 0 (relative to this binary)
 *   bun      .peers/node_modules/.bin/bun bench/peers/bun_ws_echo.js 0
 *   node_ws  node bench/peers/node_ws_echo.js 0 (NODE_PATH=.peers/node_modules)
 * (.peers and bench/ of the source tree this was built from, or of
 * $CN_SOURCE_ROOT). A server that is not installed or cannot be started is
 * left out with a note; it prints no lines rather than a made-up value.
 *
 * The load generator is this program: plain C on epoll, not coronet, so it
 * does not measure itself. Each connection does the HTTP upgrade itself (a
 * fixed Sec-WebSocket-Key, checking the 101 and its Sec-WebSocket-Accept),
 * then sends binary messages as masked client frames, each with its own
 * masking key: POOL frames per size are masked once at start-up (keys from
 * a fixed xorshift seed) and sent in turn, so the generator's cost per
 * message is a writev of ready bytes, the same for every server. Server
 * frames are parsed as they arrive (2-, 4- and 10-byte headers, split
 * anywhere across reads); every echo must be one unmasked FIN binary frame
 * of the size sent (and, in quick mode, carry the same bytes).
 *
 * Cases (S = 64, 1k, 16k, 64k bytes of payload):
 *   pingpong_S      1 connection sends an S-byte message, waits for its echo,
 *                   again: messages per second (msg/s);
 *   pingpong50_S    the same on 50 connections at once (total msg/s);
 *   pingpong_S_p50, _p99, pingpong50_S_p50, _p99
 *                   latency of those round trips in microseconds;
 *   stream_S        1 connection keeps 16 messages in flight (writes while
 *                   reading): MB/s (10^6 bytes) of payload echoed back;
 *   <case>_cpu      for each case above, the server's CPU time (all its
 *                   threads, from /proc/PID/task/TID/schedstat) over the
 *                   measured window per echoed message, in microseconds
 *                   (us/msg, lower is better): what a message costs the
 *                   server, where the rate is bound by the load generator and
 *                   the kernel (64-byte ping-pong on 2 vCPUs);
 *   syscalls_per_rt_64
 *                   when strace is installed: syscalls the server makes per
 *                   64-byte round trip, counted with strace -c -f over
 *                   10,000 round trips on one connection, minus a run that
 *                   only connects, upgrades and closes. The kinds are listed
 *                   on stderr. On a noisy 2-vCPU machine this is the
 *                   steadiest comparison of the three servers.
 *
 * Every case runs for a fixed time (0.3 s after 0.05 s of warm-up) per
 * implementation per round, implementations interleaved round-robin (the
 * order rotates each case and round) so machine noise hits all of them
 * alike; each printed value is the median of 7 rounds. The whole run takes
 * about 2 minutes. CN_BENCH_QUICK=1 (or --quick) shrinks every time and
 * count for the smoke test. Nothing is pinned (see bench-tcp-echo.c).
 *
 * The second form is a fixed-count client for profiling a server started by
 * hand (perf, strace): C connections, N round trips of B bytes in total
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
#include <dirent.h>
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
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
    MAX_ROUNDS = 15,
    STREAM_DEPTH = 16,         /* messages in flight per connection in stream cases */
    SCRATCH = 256 * 1024,      /* the load generator's read buffer */
    MAX_MSG = 64 * 1024,       /* largest message */
    POOL = 16,                 /* masked frames per size, each with its own key */
    MAX_IOV = 64,              /* frames per writev */
    LAT_CAP = 4 * 1024 * 1024, /* latency samples kept per run */
    MAX_IMPLS = 3,
};

static bool quick;
static int rounds = 7;
static double run_secs = 0.3;
static double warm_secs = 0.05;
static long syscall_rts = 10000;
static const char *only_case; /* --case: run just this one */
static const char *only_impl; /* --impl: and only against this server */
static bool count_syscalls = true;
static uint32_t *lat_buf; /* LAT_CAP latency samples */

static uint8_t payload[MAX_MSG]; /* what every message carries (unmasked) */
static uint8_t scratch[SCRATCH];

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
    fprintf(stderr, "bench-ws-echo: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void emit(const char *bench_case, const char *impl, double value, const char *unit)
{
    printf("{\"bench\": \"ws_echo\", \"case\": \"%s\", \"impl\": \"%s\", \"value\": %.*f, "
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

/* ---- client frames: masked once, sent many times ---------------------------------- */

enum { NSIZES = 4 };

static const size_t sizes[NSIZES] = {64, 1024, 16 * 1024, 64 * 1024};
static const char *const size_names[NSIZES] = {"64", "1k", "16k", "64k"};

struct frames {
    size_t size; /* payload bytes */
    size_t len;  /* frame bytes: header, key, masked payload */
    uint8_t *f[POOL];
};

static struct frames pool[NSIZES];

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t xorshift(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return (uint32_t)(x >> 32);
}

/* A FIN binary frame of `size` payload bytes masked with key (RFC 6455 §5.2). */
static size_t encode_frame(uint8_t *out, size_t size, uint32_t key)
{
    size_t n = 0;
    out[n++] = 0x82;
    if (size < 126) {
        out[n++] = (uint8_t)(0x80 | size);
    } else if (size <= 0xffff) {
        out[n++] = 0x80 | 126;
        out[n++] = (uint8_t)(size >> 8);
        out[n++] = (uint8_t)size;
    } else {
        out[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) {
            out[n++] = (uint8_t)((uint64_t)size >> (8 * i));
        }
    }
    uint8_t k[4] = {(uint8_t)(key >> 24), (uint8_t)(key >> 16), (uint8_t)(key >> 8), (uint8_t)key};
    memcpy(out + n, k, 4);
    n += 4;
    for (size_t i = 0; i < size; i++) {
        out[n + i] = payload[i] ^ k[i & 3];
    }
    return n + size;
}

static int frames_init(void)
{
    for (size_t i = 0; i < sizeof payload; i++) {
        payload[i] = (uint8_t)xorshift();
    }
    for (int s = 0; s < NSIZES; s++) {
        pool[s].size = sizes[s];
        for (int i = 0; i < POOL; i++) {
            pool[s].f[i] = malloc(sizes[s] + 14);
            if (!pool[s].f[i]) {
                return -1;
            }
            pool[s].len = encode_frame(pool[s].f[i], sizes[s], xorshift() | 1);
        }
    }
    return 0;
}

static const struct frames *frames_for(size_t size)
{
    for (int s = 0; s < NSIZES; s++) {
        if (pool[s].size == size) {
            return &pool[s];
        }
    }
    return NULL;
}

/* ---- servers: child processes announcing their port ------------------------------ */

struct server {
    const char *impl;
    char *argv[12];
    pid_t pid;
    int port;
    char log[64]; /* the child's stdout and stderr */
};

/* The port from the first "listening on HOST:PORT" line of log, or 0. */
static int find_port(const char *log)
{
    FILE *f = fopen(log, "r");
    if (!f) {
        return 0;
    }
    char line[512];
    int port = 0;
    while (!port && fgets(line, sizeof line, f)) {
        if (strncmp(line, "listening on ", 13) == 0) {
            char *colon = strrchr(line, ':');
            port = colon ? atoi(colon + 1) : 0;
        }
    }
    fclose(f);
    return port;
}

/* Starts argv (s->argv, or a longer one for strace) with its output in s->log. */
static int server_exec(struct server *s, char *const *argv)
{
    snprintf(s->log, sizeof s->log, "/tmp/bench-ws-XXXXXX");
    int fd = mkstemp(s->log);
    if (fd < 0) {
        return -errno;
    }
    s->port = 0;
    s->pid = fork();
    if (s->pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd);
    if (s->pid < 0) {
        return -errno;
    }
    for (double end = now_s() + 15; now_s() < end;) {
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
    note("%s: %s did not announce its port (log %s)", s->impl, argv[0], s->log);
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    return -1;
}

static int server_start(struct server *s)
{
    return server_exec(s, s->argv);
}

/* Waits up to 5 s for pid; then SIGKILL. Returns the exit status, or -1. */
static int reap(pid_t pid, const char *impl)
{
    int status = 0;
    for (int i = 0; i < 500; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    note("%s: did not stop on SIGTERM", impl);
    return -1;
}

/* SIGTERM, then SIGKILL after 5 s. Returns the exit status, or -1. */
static int server_stop(struct server *s)
{
    if (s->pid <= 0) {
        return -1;
    }
    kill(s->pid, SIGTERM);
    int status = reap(s->pid, s->impl);
    s->pid = 0;
    if (status == 0) {
        unlink(s->log);
    } else {
        note("%s: exited with status %d (log %s)", s->impl, status, s->log);
    }
    return status;
}

/* ---- sockets and the opening handshake --------------------------------------------- */

static const char upgrade_req[] = "GET / HTTP/1.1\r\n"
                                  "Host: 127.0.0.1\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Connection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "\r\n";
/* base64(SHA-1(key + GUID)) for the key above (RFC 6455 §1.3) */
static const char upgrade_accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/* A connected, upgraded, non-blocking WebSocket client socket, or -1. */
static int ws_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        note("socket: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        note("connect to port %d: %s", port, strerror(errno));
        close(fd);
        return -1;
    }
    if (write(fd, upgrade_req, sizeof upgrade_req - 1) != (ssize_t)sizeof upgrade_req - 1) {
        note("upgrade request: %s", strerror(errno));
        close(fd);
        return -1;
    }
    /* The server sends nothing after its 101 until we send: read the
     * response head and require that nothing follows it. */
    char resp[2048];
    size_t got = 0;
    char *end = NULL;
    while (!end && got < sizeof resp - 1) {
        ssize_t k = read(fd, resp + got, sizeof resp - 1 - got);
        if (k <= 0) {
            break;
        }
        got += (size_t)k;
        resp[got] = '\0';
        end = strstr(resp, "\r\n\r\n");
    }
    const char *why = NULL;
    if (!end) {
        why = "no complete response";
    } else if (end + 4 != resp + got) {
        why = "bytes after the 101 response";
    } else if (strncmp(resp, "HTTP/1.1 101", 12) != 0) {
        why = "not 101";
    } else if (!strstr(resp, upgrade_accept)) {
        why = "wrong Sec-WebSocket-Accept";
    } else if (strcasestr(resp, "Sec-WebSocket-Extensions")) {
        why = "an extension was negotiated";
    }
    if (why) {
        char *eol = strstr(resp, "\r\n");
        if (eol) {
            *eol = '\0';
        }
        note("upgrade on port %d: %s (%.80s)", port, why, got ? resp : "");
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* ---- the load generator: ping-pong and stream on epoll ----------------------------- */

enum mode { PINGPONG, STREAM };

struct conn {
    int fd;
    /* out: `queued` whole frames to write, from pool index widx, of which
     * woff bytes of the first are written */
    int queued;
    unsigned widx;
    size_t woff;
    int window; /* messages queued or sent and not echoed yet */
    double t0;  /* ping-pong: when the current message was queued */
    /* in: the server frame being parsed */
    uint8_t hb[10];
    unsigned hn;   /* header bytes so far */
    uint64_t left; /* payload bytes of the frame still to come */
    uint64_t flen; /* its payload length */
    bool data;     /* it is a data frame (else a control frame, skipped) */
    bool want_out; /* EPOLLOUT is armed */
    bool dead;
};

struct load {
    enum mode mode;
    const struct frames *fr;
    int nconns;
    pid_t server;      /* when > 0: its CPU time over the measured window goes to cpu_s */
    double warm, secs; /* time limits */
    long count;        /* ping-pong: stop after this many round trips (0: no limit) */
    /* results */
    long rts;
    uint64_t bytes;
    double elapsed;
    uint32_t *lat_ns;
    size_t nlat;
    int errors;
    double cpu_s;
};

/* CPU time of every thread of pid so far, in seconds (schedstat: ns on CPU),
 * or -1. */
static double proc_cpu(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) {
        return -1;
    }
    double sum = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char p[320];
        snprintf(p, sizeof p, "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(p, "r");
        unsigned long long ns = 0;
        if (f) {
            if (fscanf(f, "%llu", &ns) == 1) {
                sum += (double)ns * 1e-9;
            }
            fclose(f);
        }
    }
    closedir(d);
    return sum;
}

static void arm_out(int ep, struct conn *c, bool on)
{
    if (c->want_out == on) {
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

/* Writes the queued frames, several per writev. */
static int pump_out(int ep, const struct load *L, struct conn *c)
{
    const struct frames *fr = L->fr;
    while (c->queued > 0) {
        struct iovec iov[MAX_IOV];
        int n = c->queued < MAX_IOV ? c->queued : MAX_IOV;
        for (int i = 0; i < n; i++) {
            iov[i].iov_base = fr->f[(c->widx + (unsigned)i) % POOL];
            iov[i].iov_len = fr->len;
        }
        iov[0].iov_base = (uint8_t *)iov[0].iov_base + c->woff;
        iov[0].iov_len -= c->woff;
        ssize_t k = writev(c->fd, iov, n);
        if (k < 0 && errno == EAGAIN) {
            arm_out(ep, c, true);
            return 0;
        }
        if (k <= 0) {
            return -1;
        }
        size_t done = (size_t)k;
        while (done > 0) {
            size_t rest = fr->len - c->woff;
            if (done < rest) {
                c->woff += done;
                break;
            }
            done -= rest;
            c->woff = 0;
            c->widx = (c->widx + 1) % POOL;
            c->queued--;
        }
    }
    arm_out(ep, c, false);
    return 0;
}

/* Queues messages up to the mode's window and writes them. */
static int top_up(int ep, const struct load *L, struct conn *c, double t)
{
    int depth = L->mode == STREAM ? STREAM_DEPTH : 1;
    if (c->window >= depth) {
        return 0;
    }
    c->t0 = t;
    c->queued += depth - c->window;
    c->window = depth;
    return pump_out(ep, L, c);
}

/* An echo arrived whole. */
static void on_echo(struct load *L, struct conn *c, double t, double t_start)
{
    c->window--;
    if (L->mode == STREAM) {
        if (t >= t_start) {
            L->rts++;
        }
        return;
    }
    if (c->t0 >= t_start) {
        L->rts++;
        if (L->nlat < LAT_CAP) {
            double ns = (t - c->t0) * 1e9;
            L->lat_ns[L->nlat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
        }
    }
}

/* Parses server frames out of n bytes at p. Returns false on anything but
 * unmasked FIN binary frames of the size sent (control frames are skipped;
 * a close is an error). */
static bool parse_in(struct load *L, struct conn *c, const uint8_t *p, size_t n, double t,
                     double t_start)
{
    size_t size = L->fr->size;
    while (n > 0) {
        if (c->left > 0) {
            size_t k = n < c->left ? n : (size_t)c->left;
            if (c->data) {
                if (quick && memcmp(p, payload + (c->flen - c->left), k) != 0) {
                    note("echo payload differs from what was sent");
                    return false;
                }
                if (L->mode == STREAM && t >= t_start) {
                    L->bytes += k;
                }
            }
            c->left -= k;
            p += k;
            n -= k;
            if (c->left == 0 && c->data) {
                on_echo(L, c, t, t_start);
            }
            continue;
        }
        c->hb[c->hn++] = *p++;
        n--;
        if (c->hn < 2) {
            continue;
        }
        uint8_t b0 = c->hb[0], b1 = c->hb[1];
        if (b1 & 0x80) {
            note("masked server frame");
            return false;
        }
        unsigned need = (b1 & 0x7f) == 127 ? 10 : (b1 & 0x7f) == 126 ? 4 : 2;
        if (c->hn < need) {
            continue;
        }
        uint64_t len = b1 & 0x7f;
        if (need > 2) {
            len = 0;
            for (unsigned i = 2; i < need; i++) {
                len = len << 8 | c->hb[i];
            }
        }
        c->hn = 0;
        int op = b0 & 0x0f;
        if (op & 0x08) {
            if (op == 0x08) {
                note("the server closed the connection");
                return false;
            }
            c->data = false; /* a ping or pong: skipped */
        } else if (b0 != 0x82 || len != size) {
            note("unexpected frame: first byte 0x%02x, %llu bytes (sent %zu)", b0,
                 (unsigned long long)len, size);
            return false;
        } else {
            c->data = true;
        }
        c->flen = c->left = len;
        if (len == 0 && c->data) {
            on_echo(L, c, t, t_start);
        }
    }
    return true;
}

/* Handles readable data. Returns false when the connection failed. */
static bool on_input(int ep, struct load *L, struct conn *c, double t, double t_start)
{
    ssize_t k = read(c->fd, scratch, SCRATCH);
    if (k < 0 && errno == EAGAIN) {
        return true;
    }
    if (k <= 0) {
        note("connection %s", k == 0 ? "closed by the server" : strerror(errno));
        return false;
    }
    if (!parse_in(L, c, scratch, (size_t)k, t, t_start)) {
        return false;
    }
    if (L->count > 0 && L->rts >= L->count) {
        return true; /* enough: nothing more is sent */
    }
    return top_up(ep, L, c, t) == 0;
}

/* Runs one measurement against the server on port. */
static int load_run(struct load *L, int port)
{
    struct conn *cs = calloc((size_t)L->nconns, sizeof *cs);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int rc = cs && ep >= 0 ? 0 : -1;
    for (int i = 0; cs && i < L->nconns; i++) {
        cs[i].fd = -1;
    }
    for (int i = 0; rc == 0 && i < L->nconns; i++) {
        cs[i].fd = ws_connect(port);
        if (cs[i].fd < 0) {
            rc = -1;
            break;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    double t_begin = now_s();
    double t_start = t_begin + L->warm, t_end = t_start + L->secs;
    for (int i = 0; rc == 0 && i < L->nconns; i++) {
        if (top_up(ep, L, &cs[i], t_begin) != 0) {
            cs[i].dead = true;
        }
    }
    int live = L->nconns;
    struct epoll_event evs[64];
    double cpu0 = -1;
    while (rc == 0 && live > 0) {
        double t = now_s();
        if (L->server > 0 && cpu0 < 0 && t >= t_start) {
            cpu0 = proc_cpu(L->server);
        }
        bool done_count = L->count > 0 && L->rts >= L->count;
        if (t >= t_end || done_count) {
            /* what is still in flight does not count */
            L->elapsed = (done_count ? t : t_end) - t_start;
            if (cpu0 >= 0) {
                L->cpu_s = proc_cpu(L->server) - cpu0;
            }
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

/* ---- the cases ---------------------------------------------------------------------- */

enum { NCASES = 3 * NSIZES };

struct result {
    double value[MAX_ROUNDS];
    double p50[MAX_ROUNDS], p99[MAX_ROUNDS];
    double cpu[MAX_ROUNDS];
    int n;
};

static void case_name(char *out, size_t len, int c)
{
    static const char *const kinds[] = {"pingpong", "pingpong50", "stream"};
    snprintf(out, len, "%s_%s", kinds[c / NSIZES], size_names[c % NSIZES]);
}

/* One run of case c against srv: the value, the latency percentiles
 * (ping-pong) and the server's CPU microseconds per echoed message. */
static int measure(int c, const struct server *srv, double *value, double *p50, double *p99,
                   double *cpu)
{
    struct load L = {
        .server = srv->pid,
        .mode = c / NSIZES == 2 ? STREAM : PINGPONG,
        .fr = &pool[c % NSIZES],
        .nconns = c / NSIZES == 1 ? 50 : 1,
        .warm = warm_secs,
        .secs = run_secs,
        .lat_ns = lat_buf,
    };
    if (load_run(&L, srv->port) != 0) {
        return -1;
    }
    *cpu = L.rts > 0 ? L.cpu_s * 1e6 / (double)L.rts : 0;
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

static void report(struct server *srv, int nsrv, struct result res[][MAX_IMPLS])
{
    for (int c = 0; c < NCASES; c++) {
        char name[64];
        case_name(name, sizeof name, c);
        bool stream = c / NSIZES == 2;
        for (int i = 0; i < nsrv; i++) {
            struct result *r = &res[c][i];
            if (r->n == rounds) {
                emit(name, srv[i].impl, median(r->value, r->n), stream ? "MB/s" : "msg/s");
            }
        }
        for (int i = 0; i < nsrv; i++) {
            struct result *r = &res[c][i];
            char lname[80];
            if (r->n == rounds && !stream) {
                snprintf(lname, sizeof lname, "%s_p50", name);
                emit(lname, srv[i].impl, median(r->p50, r->n), "us");
                snprintf(lname, sizeof lname, "%s_p99", name);
                emit(lname, srv[i].impl, median(r->p99, r->n), "us");
            }
        }
        for (int i = 0; i < nsrv; i++) {
            struct result *r = &res[c][i];
            char lname[80];
            if (r->n == rounds) {
                snprintf(lname, sizeof lname, "%s_cpu", name);
                emit(lname, srv[i].impl, median(r->cpu, r->n), "us/msg");
            }
        }
    }
}

/* Every case, every round, implementations in rotating order. Returns how
 * many cases coronet (srv[0] when it is there) failed. */
static int bench_cases(struct server *srv, int nsrv)
{
    static struct result res[NCASES][MAX_IMPLS];
    for (int round = 0; round < rounds; round++) {
        for (int c = 0; c < NCASES; c++) {
            char name[64];
            case_name(name, sizeof name, c);
            if (only_case && strcmp(only_case, name) != 0) {
                continue;
            }
            for (int k = 0; k < nsrv; k++) {
                int i = (k + round + c) % nsrv;
                struct result *r = &res[c][i];
                if (srv[i].pid <= 0 || r->n != round) {
                    continue; /* not running, or failed an earlier round */
                }
                if (measure(c, &srv[i], &r->value[r->n], &r->p50[r->n], &r->p99[r->n],
                            &r->cpu[r->n]) == 0) {
                    r->n++;
                } else {
                    note("%s: %s failed in round %d", srv[i].impl, name, round + 1);
                }
            }
        }
    }
    report(srv, nsrv, res);
    int failed = 0;
    for (int c = 0; c < NCASES; c++) {
        char name[64];
        case_name(name, sizeof name, c);
        if ((!only_case || strcmp(only_case, name) == 0) && res[c][0].n != rounds) {
            failed++;
        }
    }
    return failed;
}

/* ---- syscalls per round trip (strace -c -f) --------------------------------------- */

enum { MAX_KINDS = 96 };

struct sys_count {
    char name[32];
    long calls;
};

/* strace -c's table: the calls column of each syscall and of "total". */
static int read_strace(const char *path, struct sys_count *kinds, int *nkinds, long *total)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    char line[256];
    *nkinds = 0;
    *total = -1;
    while (fgets(line, sizeof line, f)) {
        double pct, secs;
        long usecs, calls;
        int pos = 0;
        if (sscanf(line, "%lf %lf %ld %ld %n", &pct, &secs, &usecs, &calls, &pos) < 4) {
            continue; /* a header or rule; usecs/call may be absent on old straces */
        }
        char *name = strrchr(line, ' ');
        if (!name) {
            continue;
        }
        name++;
        name[strcspn(name, "\n")] = '\0';
        if (strcmp(name, "total") == 0) {
            *total = calls;
        } else if (*nkinds < MAX_KINDS) {
            snprintf(kinds[*nkinds].name, sizeof kinds[0].name, "%s", name);
            kinds[(*nkinds)++].calls = calls;
        }
    }
    fclose(f);
    return *total >= 0 ? 0 : -1;
}

/* The server process strace started (strace's only child). */
static pid_t traced_child(pid_t strace_pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)strace_pid, (int)strace_pid);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1) {
            pid = 0;
        }
        fclose(f);
    }
    return pid;
}

/* One traced server: `rts` round trips of 64 bytes on one connection (0: the
 * connection is opened, upgraded and closed). Fills the strace table. */
static int traced_run(const struct server *tmpl, long rts, struct sys_count *kinds, int *nkinds,
                      long *total)
{
    char out[64];
    snprintf(out, sizeof out, "/tmp/bench-ws-strace-XXXXXX");
    int fd = mkstemp(out);
    if (fd < 0) {
        return -1;
    }
    close(fd);
    char *argv[20] = {"/usr/bin/strace", "-f", "-c", "-o", out, "--"};
    int n = 6;
    for (int i = 0; tmpl->argv[i] && n < 19; i++) {
        argv[n++] = tmpl->argv[i];
    }
    struct server s = {.impl = tmpl->impl};
    int rc = server_exec(&s, argv);
    if (rc == 0) {
        struct load L = {.mode = PINGPONG,
                         .fr = &pool[0],
                         .nconns = 1,
                         .secs = 120,
                         .count = rts,
                         .lat_ns = lat_buf};
        if (rts > 0) {
            rc = load_run(&L, s.port);
            if (rc == 0 && L.rts != rts) {
                rc = -1;
            }
        } else {
            int c = ws_connect(s.port);
            rc = c < 0 ? -1 : 0;
            if (c >= 0) {
                usleep(20000); /* let the server see the upgrade through */
                close(c);
            }
        }
        usleep(50000);
        pid_t child = traced_child(s.pid);
        kill(child > 0 ? child : s.pid, SIGTERM);
        reap(s.pid, s.impl);
        unlink(s.log);
    }
    if (rc == 0) {
        rc = read_strace(out, kinds, nkinds, total);
    }
    unlink(out);
    return rc;
}

static void bench_syscalls(const struct server *srv, int nsrv)
{
    if (access("/usr/bin/strace", X_OK) != 0) {
        note("strace not installed: syscalls_per_rt_64 not measured");
        return;
    }
    for (int i = 0; i < nsrv; i++) {
        static struct sys_count base[MAX_KINDS], run[MAX_KINDS];
        int nbase, nrun;
        long tbase, trun;
        if (traced_run(&srv[i], 0, base, &nbase, &tbase) != 0 ||
            traced_run(&srv[i], syscall_rts, run, &nrun, &trun) != 0) {
            note("%s: syscall count failed", srv[i].impl);
            continue;
        }
        double per = (double)(trun - tbase) / (double)syscall_rts;
        emit("syscalls_per_rt_64", srv[i].impl, per, "syscalls");
        char kinds[1024] = "";
        size_t len = 0;
        for (int k = 0; k < nrun; k++) {
            long b = 0;
            for (int j = 0; j < nbase; j++) {
                if (strcmp(base[j].name, run[k].name) == 0) {
                    b = base[j].calls;
                }
            }
            double v = (double)(run[k].calls - b) / (double)syscall_rts;
            if (v >= 0.01 && len < sizeof kinds - 64) {
                len +=
                    (size_t)snprintf(kinds + len, sizeof kinds - len, " %s %.2f", run[k].name, v);
            }
        }
        note("%s: %.2f syscalls per 64 B round trip:%s", srv[i].impl, per, kinds);
    }
}

/* ---- main --------------------------------------------------------------------------- */

#ifndef CN_SOURCE_ROOT
#define CN_SOURCE_ROOT "."
#endif

static char self_dir[PATH_MAX];
static char paths[8][PATH_MAX];
static int npaths;

static char *path_of(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *path_of(const char *fmt, ...)
{
    char *p = paths[npaths++ % 8];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p, PATH_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= PATH_MAX) {
        p[0] = '\0'; /* not executable: reported as not installed */
    }
    return p;
}

static bool executable(const char *path)
{
    return path[0] && access(path, X_OK) == 0;
}

/* name on $PATH, or "" */
static char *on_path(const char *name)
{
    static char found[PATH_MAX];
    const char *env = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s", env ? env : "/usr/local/bin:/usr/bin:/bin");
    for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        int n = snprintf(found, sizeof found, "%s/%s", d, name);
        if (n > 0 && n < (int)sizeof found && executable(found)) {
            return found;
        }
    }
    return "";
}

static int run_all(void)
{
    const char *root = getenv("CN_SOURCE_ROOT") ? getenv("CN_SOURCE_ROOT") : CN_SOURCE_ROOT;
    setenv("NODE_PATH", path_of("%s/.peers/node_modules", root), 1);
    struct server all[MAX_IMPLS] = {
        {.impl = "coronet",
         .argv = {path_of("%s/../examples/ws-echo-server", self_dir), "--port", "0"}},
        {.impl = "bun",
         .argv = {path_of("%s/.peers/node_modules/.bin/bun", root),
                  path_of("%s/bench/peers/bun_ws_echo.js", root), "0"}},
        {.impl = "node_ws",
         .argv = {on_path("node"), path_of("%s/bench/peers/node_ws_echo.js", root), "0"}},
    };
    struct server srv[MAX_IMPLS];
    int nsrv = 0;
    for (int i = 0; i < MAX_IMPLS; i++) {
        if (only_impl && strcmp(only_impl, all[i].impl) != 0) {
            continue;
        }
        if (executable(all[i].argv[0]) &&
            (!all[i].argv[1] || all[i].argv[1][0] == '-' || access(all[i].argv[1], R_OK) == 0)) {
            srv[nsrv++] = all[i];
        } else {
            note("%s: %s not installed, not measured%s", all[i].impl,
                 all[i].argv[0][0] ? all[i].argv[0] : "(not on PATH)",
                 i > 0 ? " (scripts/setup installs the peers into .peers/)" : "");
        }
    }
    if (nsrv == 0) {
        note("no server to measure");
        return 1;
    }
    bool have_coronet = strcmp(srv[0].impl, "coronet") == 0;
    if (!have_coronet && !only_impl) {
        note("the coronet WebSocket echo server is not built");
        return 1;
    }
    for (int i = 0; i < nsrv; i++) {
        server_start(&srv[i]);
    }
    int failed = bench_cases(srv, nsrv);
    int rc = 0;
    if (failed && have_coronet) {
        note("coronet failed %d case(s)", failed);
        rc = 1;
    }
    for (int i = 0; i < nsrv; i++) {
        int status = server_stop(&srv[i]);
        if (status != 0 && strcmp(srv[i].impl, "coronet") == 0) {
            rc = 1;
        }
    }
    if (have_coronet && srv[0].port == 0) {
        rc = 1; /* coronet did not start */
    }
    if (!only_case && count_syscalls) {
        bench_syscalls(srv, nsrv);
    }
    return rc;
}

/* --client HOST:PORT: fixed-count load against a server started by hand. */
static int run_client(const char *hostport, size_t size, long count, int conns, double stream)
{
    const char *colon = strrchr(hostport, ':');
    int port = colon ? atoi(colon + 1) : 0;
    const struct frames *fr = frames_for(size);
    if (port <= 0 || !fr || conns < 1) {
        fprintf(stderr, "bench-ws-echo: bad --client arguments (sizes: 64, 1024, 16384, 65536)\n");
        return 2;
    }
    struct load L = {.mode = stream > 0 ? STREAM : PINGPONG,
                     .fr = fr,
                     .nconns = conns,
                     .secs = stream > 0 ? stream : 600,
                     .count = stream > 0 ? 0 : count,
                     .lat_ns = lat_buf};
    int rc = load_run(&L, port);
    if (stream > 0) {
        fprintf(stderr, "bench-ws-echo: %.1f MB echoed in %.3f s\n", (double)L.bytes / 1e6,
                L.elapsed);
    } else {
        fprintf(stderr,
                "bench-ws-echo: %ld round trips of %zu bytes on %d connection(s) in %.3f s%s\n",
                L.rts, size, conns, L.elapsed, rc == 0 ? "" : " (errors)");
    }
    return rc == 0 && (stream > 0 || L.rts == count) ? 0 : 1;
}

static int usage(void)
{
    fprintf(
        stderr,
        "usage: bench-ws-echo [--quick] [--rounds N] [--seconds S] [--case NAME] [--impl NAME]\n"
        "                [--no-syscalls]\n"
        "       bench-ws-echo --client HOST:PORT [--size B] [--count N] [--conns C]\n"
        "                [--stream SECS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *client = NULL;
    size_t size = 64;
    long count = 20000;
    int conns = 1;
    double stream = 0;
    quick = getenv("CN_BENCH_QUICK") && strcmp(getenv("CN_BENCH_QUICK"), "0") != 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (strcmp(a, "--quick") == 0) {
            quick = true;
        } else if (strcmp(a, "--rounds") == 0 && more) {
            rounds = atoi(argv[++i]);
        } else if (strcmp(a, "--seconds") == 0 && more) {
            run_secs = atof(argv[++i]);
        } else if (strcmp(a, "--case") == 0 && more) {
            only_case = argv[++i];
        } else if (strcmp(a, "--impl") == 0 && more) {
            only_impl = argv[++i];
        } else if (strcmp(a, "--no-syscalls") == 0) {
            count_syscalls = false;
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
    lat_buf = malloc(LAT_CAP * sizeof *lat_buf);
    if (!lat_buf || frames_init() != 0) {
        note("out of memory");
        return 1;
    }
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
        syscall_rts = 300;
    }
    ssize_t n = readlink("/proc/self/exe", self_dir, sizeof self_dir - 1);
    if (n <= 0) {
        return 1;
    }
    self_dir[n] = '\0';
    *strrchr(self_dir, '/') = '\0';
    return run_all();
}
