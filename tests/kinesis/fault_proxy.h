/* SPDX-License-Identifier: MIT */
/*
 * Starts and stops kinesis-fault-proxy (tests/kinesis/fault-proxy.c) for
 * tests (header-only, like emulator.h):
 *
 *     struct cn_fault_proxy fp;
 *     const char *args[] = {"--limit", "--seed", "7", NULL};
 *     cn_fault_proxy_start(&fp, emu.url, args);   // aborts if it does not come up
 *     ... producer with .client.endpoint_url = fp.url ...
 *     CN_ASSERT_EQ(cn_fault_proxy_stop(&fp), 0);  // exit status; fp.stats: its JSON line
 *     free(fp.stats);
 *
 * The binary is $CN_FAULT_PROXY, else $CN_BUILD_ROOT/tests/kinesis/
 * kinesis-fault-proxy (meson builds it with the tests). Its first stdout
 * line, "listening on 127.0.0.1:PORT", tells the port: no fixed ports. Its
 * stdout stays a pipe to us (it writes nothing else until it stops), its
 * stderr is ours (the test log). The child gets PR_SET_PDEATHSIG(SIGKILL),
 * so a test that dies never leaves one running. Stop sends SIGTERM, reads
 * the statistics line the proxy prints as it exits, and reaps it; SIGKILL
 * after a grace. Under ASan the proxy's leak check runs at its exit and
 * makes the exit status nonzero, which the tests assert is 0.
 *
 * Start and stop block the thread (fork, poll, waitpid): call them outside
 * coroutines, or while the loop has nothing else to do.
 */
#ifndef CORONET_TESTS_KINESIS_FAULT_PROXY_H
#define CORONET_TESTS_KINESIS_FAULT_PROXY_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CN_FAULT_PROXY_START_MS 20000
#define CN_FAULT_PROXY_STOP_MS 20000 /* ASan's leak check at exit takes a while */
#define CN_FAULT_PROXY_MAX_ARGS 64
#define CN_FAULT_PROXY_STATS_MAX (1u << 20)

struct cn_fault_proxy {
    pid_t pid;
    int out; /* read end of its stdout; -1 when closed */
    int port;
    char url[96]; /* "http://127.0.0.1:<port>" */
    char *stats;  /* after stop: the JSON statistics line (malloc'ed), or NULL */
};

static inline int64_t cn_fault_proxy_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void cn_fault_proxy_path(char *buf, size_t size)
{
    const char *env = getenv("CN_FAULT_PROXY");
    const char *root = getenv("CN_BUILD_ROOT");
    if (env && *env) {
        snprintf(buf, size, "%s", env);
    } else {
        snprintf(buf, size, "%s/tests/kinesis/kinesis-fault-proxy", root ? root : ".");
    }
}

/* Reads from fd into buf (at most cap - 1 bytes, NUL-terminated) until
 * `until` is in it, end of file, or the deadline. Returns the length. */
static inline size_t cn_fault_proxy_read(int fd, char *buf, size_t cap, const char *until,
                                         int64_t deadline)
{
    size_t len = 0;
    buf[0] = '\0';
    while (len + 1 < cap && !(until && strstr(buf, until))) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int64_t left = deadline - cn_fault_proxy_ms();
        if (left <= 0) {
            break;
        }
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        buf[len] = '\0';
    }
    return len;
}

/* The child: stdout is the pipe, it dies with us, then exec. */
static inline void cn_fault_proxy_exec(int out_fd, pid_t parent, char **argv)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
        _exit(126); /* the parent is already gone */
    }
    if (dup2(out_fd, 1) < 0) {
        _exit(126);
    }
    execv(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* SIGTERM (or sig), wait for the exit; true if it exited. *status gets
 * the exit code (128 + signal if killed). */
static inline bool cn_fault_proxy_reap(pid_t pid, int64_t deadline, int *status)
{
    for (;;) {
        int ws = 0;
        pid_t r = waitpid(pid, &ws, WNOHANG);
        if (r == pid) {
            *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
            return true;
        }
        if (r < 0 && errno != EINTR) {
            *status = -1;
            return true;
        }
        if (cn_fault_proxy_ms() >= deadline) {
            return false;
        }
        usleep(5000);
    }
}

/* Stops it: SIGTERM, reads its statistics line into fp->stats, reaps it
 * (SIGKILL past the grace). Returns its exit status (0: clean), or -1 if
 * it was not running. Idempotent. */
static inline int cn_fault_proxy_stop(struct cn_fault_proxy *fp)
{
    if (fp->pid <= 0) {
        return -1;
    }
    int64_t deadline = cn_fault_proxy_ms() + CN_FAULT_PROXY_STOP_MS;
    kill(fp->pid, SIGTERM);
    if (fp->out >= 0) {
        char *buf = malloc(CN_FAULT_PROXY_STATS_MAX);
        if (buf) {
            cn_fault_proxy_read(fp->out, buf, CN_FAULT_PROXY_STATS_MAX, NULL, deadline);
            char *nl = strchr(buf, '\n');
            if (nl) {
                *nl = '\0';
            }
            free(fp->stats);
            fp->stats = buf[0] ? strdup(buf) : NULL;
            free(buf);
        }
        close(fp->out);
        fp->out = -1;
    }
    int status = -1;
    if (!cn_fault_proxy_reap(fp->pid, deadline, &status)) {
        fprintf(stderr, "kinesis-fault-proxy did not exit after SIGTERM: killed\n");
        kill(fp->pid, SIGKILL);
        waitpid(fp->pid, NULL, 0);
        status = 128 + SIGKILL;
    }
    fp->pid = 0;
    return status;
}

/* Starts the proxy in front of upstream with extra arguments (NULL
 * terminated; may be NULL). Exits 77 (skip) if the binary is missing;
 * aborts the test if it does not come up. */
static inline void cn_fault_proxy_start(struct cn_fault_proxy *fp, const char *upstream,
                                        const char *const *args)
{
    char path[600];
    char *argv[CN_FAULT_PROXY_MAX_ARGS + 8];
    size_t n = 0;
    memset(fp, 0, sizeof *fp);
    fp->out = -1;
    cn_fault_proxy_path(path, sizeof path);
    if (access(path, X_OK) != 0) {
        fprintf(stderr, "skipped: %s is not built\n", path);
        exit(77);
    }
    argv[n++] = path;
    argv[n++] = (char *)"--upstream";
    argv[n++] = (char *)upstream;
    argv[n++] = (char *)"--port";
    argv[n++] = (char *)"0";
    for (size_t i = 0; args && args[i] && i < CN_FAULT_PROXY_MAX_ARGS; i++) {
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    int fds[2];
    if (pipe(fds) != 0 || fcntl(fds[0], F_SETFD, FD_CLOEXEC) != 0) {
        perror("pipe");
        abort();
    }
    fflush(NULL);
    pid_t parent = getpid();
    fp->pid = fork();
    if (fp->pid == 0) {
        close(fds[0]);
        cn_fault_proxy_exec(fds[1], parent, argv);
    }
    close(fds[1]);
    fp->out = fds[0];
    char line[256];
    cn_fault_proxy_read(fp->out, line, sizeof line, "\n",
                        cn_fault_proxy_ms() + CN_FAULT_PROXY_START_MS);
    char host[48];
    if (fp->pid < 0 || sscanf(line, "listening on %47[^:]:%d", host, &fp->port) != 2 ||
        fp->port <= 0) {
        fprintf(stderr, "kinesis-fault-proxy did not start (said \"%s\")\n", line);
        cn_fault_proxy_stop(fp);
        abort();
    }
    snprintf(fp->url, sizeof fp->url, "http://%s:%d", host, fp->port);
}

#endif /* CORONET_TESTS_KINESIS_FAULT_PROXY_H */
