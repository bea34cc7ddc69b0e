/* SPDX-License-Identifier: MIT */
/*
 * Kinesis emulators for tests and benchmarks (header-only, one per test
 * file that includes it): kinesalite and kinesis-mock (npm kinesis-local),
 * installed under $CN_SOURCE_ROOT/.peers/node_modules by scripts/setup.
 *
 *     struct cn_emu e;
 *     cn_emu_start(&e, CN_EMU_KINESALITE);   // skips the test if not installed
 *     ... cn_kinesis_client_new with .endpoint_url = e.url ...
 *     cn_emu_stop(&e);
 *
 * Each emulator runs as `node tests/kinesis/peers/<name>.js <node_modules>`,
 * which picks free ports, starts it, waits until it answers, and writes
 * "READY <port> [<tls port>]" on file descriptor 3: no fixed ports, no
 * guessing when it is up. kinesalite listens on 127.0.0.1 only;
 * kinesis-mock binds every interface whatever it is told, so only ever
 * connect to 127.0.0.1. The child gets PR_SET_PDEATHSIG(SIGKILL), so a test
 * that dies never leaves one running; cn_emu_stop sends SIGTERM, then
 * SIGKILL after a short grace (kinesis-mock may ignore SIGTERM when busy).
 *
 * Start and stop block the thread (fork, poll, waitpid): call them outside
 * coroutines or before the loop has other work, as the tests do.
 */
#ifndef CORONET_TESTS_KINESIS_EMULATOR_H
#define CORONET_TESTS_KINESIS_EMULATOR_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum cn_emu_kind {
    CN_EMU_KINESALITE,   /* validates request limits like AWS; no UpdateShardCount */
    CN_EMU_KINESIS_MOCK, /* plain HTTP and HTTPS (self-signed) */
};

struct cn_emu {
    enum cn_emu_kind kind;
    const char *name; /* "kinesalite" / "kinesis-mock" */
    pid_t pid;
    int port;         /* plain HTTP on 127.0.0.1 */
    int tls_port;     /* HTTPS (kinesis-mock only), else 0 */
    char url[64];     /* "http://127.0.0.1:<port>" */
    char tls_url[64]; /* "https://127.0.0.1:<tls_port>" or "" */
};

#define CN_EMU_START_TIMEOUT_MS 90000
#define CN_EMU_STOP_GRACE_MS 1500

/* $CN_SOURCE_ROOT/.peers/node_modules into buf; false if absent. */
static inline bool cn_emu_node_modules(char *buf, size_t size)
{
    const char *root = getenv("CN_SOURCE_ROOT");
    snprintf(buf, size, "%s/.peers/node_modules", root ? root : ".");
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode);
}

/* True if node and the emulator's package are installed. */
static inline bool cn_emu_available(enum cn_emu_kind kind, char *why, size_t size)
{
    char nm[512], pkg[600];
    if (system("node --version >/dev/null 2>&1") != 0) {
        snprintf(why, size, "node is not installed");
        return false;
    }
    const char *name = kind == CN_EMU_KINESALITE ? "kinesalite" : "kinesis-local";
    cn_emu_node_modules(nm, sizeof nm);
    snprintf(pkg, sizeof pkg, "%s/%s/package.json", nm, name);
    if (access(pkg, R_OK) != 0) {
        snprintf(why, size, "npm package %s is not installed under %s (scripts/setup)", name, nm);
        return false;
    }
    return true;
}

static inline int64_t cn_emu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The child: fd 3 is the READY pipe, stdout goes to our stderr (the test
 * log), and it dies with us. */
static inline void cn_emu_exec(int ready_fd, pid_t parent, const char *script, const char *nm,
                               const char *const *env)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
        _exit(126); /* the parent is already gone */
    }
    /* dup2 onto another number clears close-on-exec; onto itself it does not */
    if (ready_fd == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(ready_fd, 3) < 0) {
        _exit(126);
    }
    if (dup2(2, 1) < 0) {
        _exit(126);
    }
    if (ready_fd != 3) {
        close(ready_fd);
    }
    for (size_t i = 0; env && env[i]; i++) {
        putenv((char *)env[i]);
    }
    execlp("node", "node", script, nm, (char *)NULL);
    _exit(127);
}

/* Reads "READY p [q]" from fd within the start timeout. */
static inline bool cn_emu_read_ready(struct cn_emu *e, int fd)
{
    char line[128];
    size_t len = 0;
    int64_t until = cn_emu_ms() + CN_EMU_START_TIMEOUT_MS;
    while (len + 1 < sizeof line && !memchr(line, '\n', len)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int64_t left = until - cn_emu_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            return false;
        }
        ssize_t n = read(fd, line + len, sizeof line - 1 - len);
        if (n <= 0) {
            return false; /* it exited before being ready */
        }
        len += (size_t)n;
    }
    line[len] = '\0';
    return sscanf(line, "READY %d %d", &e->port, &e->tls_port) >= 1 && e->port > 0;
}

/* Sends sig, waits up to grace_ms for the exit; true if it exited. */
static inline bool cn_emu_signal_wait(pid_t pid, int sig, int64_t grace_ms)
{
    kill(pid, sig);
    int64_t until = cn_emu_ms() + grace_ms;
    for (;;) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) {
            return true;
        }
        if (cn_emu_ms() >= until) {
            return false;
        }
        usleep(10000);
    }
}

/* Stops it by pid: SIGTERM, then SIGKILL after the grace. Idempotent. */
static inline void cn_emu_stop(struct cn_emu *e)
{
    if (e->pid <= 0) {
        return;
    }
    if (!cn_emu_signal_wait(e->pid, SIGTERM, CN_EMU_STOP_GRACE_MS)) {
        kill(e->pid, SIGKILL);
        waitpid(e->pid, NULL, 0);
    }
    e->pid = 0;
}

/* Starts an emulator with extra environment entries ("NAME=value", NULL
 * terminated; may be NULL), e.g. {"SHARD_LIMIT=500", NULL} for
 * kinesis-mock. Exits 77 (skip) if it is not installed; aborts the test if
 * it does not come up. */
static inline void cn_emu_start_env(struct cn_emu *e, enum cn_emu_kind kind, const char *const *env)
{
    char why[700], nm[512], script[600];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->name = kind == CN_EMU_KINESALITE ? "kinesalite" : "kinesis-mock";
    if (!cn_emu_available(kind, why, sizeof why)) {
        fprintf(stderr, "skipped: %s\n", why);
        exit(77);
    }
    cn_emu_node_modules(nm, sizeof nm);
    const char *root = getenv("CN_SOURCE_ROOT");
    snprintf(script, sizeof script, "%s/tests/kinesis/peers/%s.js", root ? root : ".", e->name);
    int fds[2];
    if (pipe(fds) != 0 || fcntl(fds[0], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(fds[1], F_SETFD, FD_CLOEXEC) != 0) {
        perror("pipe");
        abort();
    }
    fflush(NULL);
    pid_t parent = getpid();
    e->pid = fork();
    if (e->pid == 0) {
        close(fds[0]);
        cn_emu_exec(fds[1], parent, script, nm, env);
    }
    close(fds[1]);
    bool ok = e->pid > 0 && cn_emu_read_ready(e, fds[0]);
    close(fds[0]);
    if (!ok) {
        fprintf(stderr, "%s did not start (see its output above)\n", e->name);
        cn_emu_stop(e);
        abort();
    }
    snprintf(e->url, sizeof e->url, "http://127.0.0.1:%d", e->port);
    if (e->tls_port > 0) {
        snprintf(e->tls_url, sizeof e->tls_url, "https://127.0.0.1:%d", e->tls_port);
    }
}

static inline void cn_emu_start(struct cn_emu *e, enum cn_emu_kind kind)
{
    cn_emu_start_env(e, kind, NULL);
}

#endif /* CORONET_TESTS_KINESIS_EMULATOR_H */
