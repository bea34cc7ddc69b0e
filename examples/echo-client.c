/* SPDX-License-Identifier: MIT */
/*
 * echo-client HOST PORT [--tls] [--ca FILE] [--insecure] [--size B] [--count N] [--conns C]
 *
 * Opens C connections (default 1), each doing N round trips (default 1000)
 * of B bytes (default 64): write a message, read it back, compare every byte.
 * Prints one summary line and exits 0 only if every byte came back intact.
 * --tls verifies the server against the system store, or --ca FILE;
 * --insecure skips verification (test servers only).
 */
#include <coronet/coronet.h>

#include "args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct config {
    const char *host;
    int port;
    bool tls;
    const char *ca;
    bool insecure;
    size_t size;
    long count;
    int conns;
};

struct run {
    const struct config *cfg;
    struct cn_tls_ctx *tls;
    uint64_t *latency_ns; /* one slot per round trip of every connection */
    long round_trips;
    int failures;
    const char *first_error;
};

struct conn {
    struct run *run;
    int id;
};

static void pattern(unsigned char *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (unsigned char)((seed * 131 + i * 7) >> 3);
    }
}

static int open_stream(struct run *r, struct cn_stream **out)
{
    const struct config *cfg = r->cfg;
    int64_t deadline = cn_now() + 10000;
    struct cn_stream *s;
    int rc = cn_tcp_connect(&s, cfg->host, cfg->port, NULL, deadline);
    if (rc == 0 && r->tls) {
        rc = cn_tls_connect(&s, r->tls, s, cfg->host, deadline);
    }
    if (rc == 0) {
        *out = s;
    }
    return rc;
}

static int round_trips(struct conn *c, struct cn_stream *s, unsigned char *out, unsigned char *in)
{
    const struct config *cfg = c->run->cfg;
    for (long i = 0; i < cfg->count; i++) {
        pattern(out, cfg->size, (uint64_t)c->id * 1000003u + (uint64_t)i);
        uint64_t start = uv_hrtime();
        int rc = cn_stream_write(s, out, cfg->size, cn_now() + 10000);
        if (rc == 0) {
            ssize_t n = cn_stream_read_exact(s, in, cfg->size, cn_now() + 10000);
            rc = n < 0 ? (int)n : 0;
        }
        if (rc != 0) {
            return rc;
        }
        if (memcmp(in, out, cfg->size) != 0) {
            return -EBADMSG;
        }
        c->run->latency_ns[(long)c->id * cfg->count + i] = uv_hrtime() - start;
        c->run->round_trips++;
    }
    return 0;
}

static int conn_main(void *arg)
{
    struct conn *c = arg;
    size_t size = c->run->cfg->size;
    unsigned char *out = malloc(size), *in = malloc(size);
    struct cn_stream *s = NULL;
    int rc = out && in ? open_stream(c->run, &s) : -ENOMEM;
    if (rc == 0) {
        rc = round_trips(c, s, out, in);
    }
    cn_stream_close(s);
    free(out);
    free(in);
    if (rc != 0) {
        c->run->failures++;
        if (!c->run->first_error) {
            c->run->first_error =
                rc == -EBADMSG ? "echo differs from what was sent" : cn_strerror(rc);
        }
    }
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int open_tls(struct run *r)
{
    if (!r->cfg->tls) {
        return 0;
    }
    struct cn_tls_client_opts o = {.ca_file = r->cfg->ca,
                                   .dangerously_skip_verification = r->cfg->insecure};
    return cn_tls_client_ctx_new(&r->tls, &o);
}

static int client_main(void *arg)
{
    struct run *r = arg;
    const struct config *cfg = r->cfg;
    int rc = open_tls(r);
    if (rc != 0) {
        fprintf(stderr, "echo-client: TLS: %s\n", cn_strerror(rc));
        return rc;
    }
    struct cn_group *g;
    struct conn *conns = calloc((size_t)cfg->conns, sizeof *conns);
    if (!conns || cn_group_new(&g) != 0) {
        free(conns);
        return -ENOMEM;
    }
    for (int i = 0; i < cfg->conns; i++) {
        conns[i] = (struct conn){r, i};
        if (cn_group_spawn(g, conn_main, &conns[i], NULL) != 0) {
            r->failures++;
        }
    }
    cn_group_wait(g, -1);
    cn_group_close(g);
    free(conns);
    cn_tls_ctx_free(r->tls);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: echo-client HOST PORT [--tls] [--ca FILE] [--insecure] [--size B] "
                    "[--count N] [--conns C]\n");
    return 2;
}

static int parse(int argc, char **argv, struct config *cfg)
{
    if (argc < 3) {
        return usage();
    }
    *cfg = (struct config){.host = argv[1],
                           .port = (int)parse_num(argv[2], 1, 65535),
                           .size = 64,
                           .count = 1000,
                           .conns = 1};
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (strcmp(a, "--tls") == 0) {
            cfg->tls = true;
        } else if (strcmp(a, "--insecure") == 0) {
            cfg->insecure = true;
        } else if (strcmp(a, "--ca") == 0 && more) {
            cfg->ca = argv[++i];
        } else if (strcmp(a, "--size") == 0 && more) {
            cfg->size = (size_t)parse_num(argv[++i], 0, 64L << 20);
        } else if (strcmp(a, "--count") == 0 && more) {
            cfg->count = parse_num(argv[++i], 1, 1000000000L);
        } else if (strcmp(a, "--conns") == 0 && more) {
            cfg->conns = (int)parse_num(argv[++i], 1, 100000);
        } else {
            return usage();
        }
    }
    bool ok = cfg->port > 0 && cfg->size > 0 && cfg->size != (size_t)-1 && cfg->count > 0 &&
              cfg->conns > 0 && (double)cfg->count * cfg->conns <= 1e9;
    return ok ? 0 : usage();
}

int main(int argc, char **argv)
{
    struct config cfg;
    if (parse(argc, argv, &cfg) != 0) {
        return 2;
    }
    size_t slots = (size_t)cfg.count * (size_t)cfg.conns;
    struct run r = {.cfg = &cfg, .latency_ns = calloc(slots, sizeof(uint64_t))};
    if (!r.latency_ns) {
        fprintf(stderr, "echo-client: out of memory\n");
        return 1;
    }
    uint64_t start = uv_hrtime();
    int rc = cn_run(client_main, &r);
    double secs = (double)(uv_hrtime() - start) / 1e9;
    qsort(r.latency_ns, slots, sizeof(uint64_t), cmp_u64);
    size_t done = (size_t)r.round_trips;
    /* unfinished slots are 0 and sort first: percentiles over finished ones */
    const uint64_t *lat = r.latency_ns + (slots - done);
    double p50 = done ? (double)lat[done / 2] / 1e3 : 0;
    double p99 = done ? (double)lat[done * 99 / 100] / 1e3 : 0;
    bool ok = rc == 0 && r.failures == 0 && done == slots;
    printf("echo-client: %s %d conns x %ld round trips x %zu B%s: %ld/%zu ok, %.0f rt/s, p50 %.1f "
           "us, p99 %.1f us%s%s\n",
           ok ? "OK" : "FAILED", cfg.conns, cfg.count, cfg.size, cfg.tls ? " over TLS" : "",
           r.round_trips, slots, secs > 0 ? (double)done / secs : 0, p50, p99,
           r.first_error ? ": " : "", r.first_error ? r.first_error : "");
    free(r.latency_ns);
    return ok ? 0 : 1;
}
