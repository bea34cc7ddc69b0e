/* SPDX-License-Identifier: MIT */
/*
 * echo-server --port N [--host H] [--tls CERT KEY] [--threads T]
 *
 * One coroutine per connection echoing bytes back. --port 0 binds a free
 * port; the first line on stdout is "listening on HOST:PORT". --threads T
 * runs T loops, one per thread, each with its own SO_REUSEPORT listener on
 * the same port. SIGINT or SIGTERM stops accepting, gives open connections
 * up to two seconds to finish, closes the rest and exits 0.
 */
#include <coronet/coronet.h>

#include "args.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BUF_SIZE = 64 * 1024, DRAIN_MS = 2000, MAX_THREADS = 64 };

struct config {
    const char *host;
    int port;
    const char *cert;
    const char *key;
    int threads;
};

struct server {
    const struct config *cfg;
    int port; /* the port to bind: the one thread 0 got */
    struct cn_tls_ctx *tls;
    struct cn_tcp_listener *listener;
    struct cn_group *conns;
    struct cn_event stop;
    bool announce;   /* print "listening on" (thread 0) */
    uv_sem_t *bound; /* posted once the listener is open (thread 0) */
    int bound_rc;
    int index;   /* loop number, for the exit report */
    long served; /* connections accepted by this loop */
    int rc;
};

static int serve(struct cn_stream *s)
{
    char *buf = malloc(BUF_SIZE);
    if (!buf) {
        return -ENOMEM;
    }
    ssize_t n;
    while ((n = cn_stream_read(s, buf, BUF_SIZE, -1)) > 0) {
        if (cn_stream_write(s, buf, (size_t)n, -1) != 0) {
            break;
        }
    }
    free(buf);
    return 0;
}

struct conn {
    struct server *srv;
    struct cn_stream *s;
};

static int conn_main(void *arg)
{
    struct conn c = *(struct conn *)arg;
    free(arg);
    if (c.srv->tls) {
        struct cn_stream *tls;
        int rc = cn_tls_accept(&tls, c.srv->tls, c.s, cn_now() + 10000);
        if (rc != 0) {
            return 0; /* a failed handshake is the client's problem */
        }
        c.s = tls;
    }
    serve(c.s);
    cn_stream_close(c.s);
    return 0;
}

static int accept_loop(void *arg)
{
    struct server *srv = arg;
    for (;;) {
        struct cn_stream *s;
        int rc = cn_tcp_accept(srv->listener, &s, -1);
        if (rc == -ECANCELED || rc == CN_ECLOSED) {
            return 0;
        }
        if (rc < 0) {
            fprintf(stderr, "echo-server: accept: %s\n", cn_strerror(rc));
            cn_sleep(10); /* out of descriptors: let connections end */
            continue;
        }
        srv->served++;
        struct conn *c = malloc(sizeof *c);
        if (!c || cn_group_spawn(srv->conns, conn_main, c, NULL) != 0) {
            free(c);
            cn_stream_close(s);
            continue;
        }
        *c = (struct conn){srv, s};
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct server *srv = h->data;
    (void)signum;
    cn_event_set(&srv->stop);
}

static int open_listener(struct server *srv, bool announce)
{
    const struct config *cfg = srv->cfg;
    struct cn_tcp_opts opts = {.reuseport = cfg->threads > 1};
    int rc = cn_tcp_listen(&srv->listener, cfg->host, srv->port, &opts);
    if (rc != 0) {
        fprintf(stderr, "echo-server: listen on %s:%d: %s\n", cfg->host, srv->port,
                cn_strerror(rc));
        return rc;
    }
    srv->port = cn_tcp_listener_port(srv->listener);
    if (announce) {
        bool v6 = strchr(cfg->host, ':') != NULL;
        printf("listening on %s%s%s:%d\n", v6 ? "[" : "", cfg->host, v6 ? "]" : "", srv->port);
        fflush(stdout);
    }
    return 0;
}

/* Stop accepting, give connections DRAIN_MS to finish, then cancel them. */
static void drain(struct server *srv, struct cn_co *acceptor)
{
    cn_cancel(acceptor);
    cn_join(acceptor, NULL, -1);
    cn_tcp_listener_close(srv->listener);
    cn_group_wait(srv->conns, cn_now() + DRAIN_MS);
    cn_group_close(srv->conns);
}

static int open_tls(struct server *srv)
{
    if (!srv->cfg->cert) {
        return 0;
    }
    struct cn_tls_server_opts o = {.cert_file = srv->cfg->cert, .key_file = srv->cfg->key};
    int rc = cn_tls_server_ctx_new(&srv->tls, &o);
    if (rc != 0) {
        fprintf(stderr, "echo-server: TLS: %s: %s\n", cn_strerror(rc), cn_tls_last_error());
    }
    return rc;
}

static int serve_until_signal(struct server *srv)
{
    uv_signal_t sigint, sigterm;
    uv_signal_init(cn_loop(), &sigint);
    uv_signal_init(cn_loop(), &sigterm);
    sigint.data = sigterm.data = srv;
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    struct cn_co *acceptor = NULL;
    int rc = cn_group_new(&srv->conns);
    if (rc == 0) {
        rc = cn_spawn(&acceptor, accept_loop, srv, NULL);
    }
    if (rc == 0) {
        cn_event_wait(&srv->stop, -1);
        drain(srv, acceptor);
    } else {
        cn_tcp_listener_close(srv->listener);
        cn_group_close(srv->conns);
    }
    cn_uv_close((uv_handle_t *)&sigint);
    cn_uv_close((uv_handle_t *)&sigterm);
    return rc;
}

/* One loop: TLS context, listener, accept until a signal. Thread 0 binds
 * first (port 0 picks the port) and tells the others which port to share. */
static int loop_main(void *arg)
{
    struct server *srv = arg;
    int rc = open_tls(srv);
    if (rc == 0) {
        rc = open_listener(srv, srv->announce);
    }
    if (srv->bound) {
        srv->bound_rc = rc;
        uv_sem_post(srv->bound);
    }
    if (rc == 0) {
        rc = serve_until_signal(srv);
    }
    cn_tls_ctx_free(srv->tls);
    return rc;
}

static void thread_main(void *arg)
{
    struct server *srv = arg;
    srv->rc = cn_run(loop_main, srv);
}

static int usage(void)
{
    fprintf(stderr, "usage: echo-server --port N [--host H] [--tls CERT KEY] [--threads T]\n");
    return 2;
}

static int parse(int argc, char **argv, struct config *cfg)
{
    *cfg = (struct config){.host = "127.0.0.1", .port = -1, .threads = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (strcmp(a, "--port") == 0 && more) {
            cfg->port = (int)parse_num(argv[++i], 0, 65535);
        } else if (strcmp(a, "--host") == 0 && more) {
            cfg->host = argv[++i];
        } else if (strcmp(a, "--threads") == 0 && more) {
            cfg->threads = (int)parse_num(argv[++i], 1, MAX_THREADS);
        } else if (strcmp(a, "--tls") == 0 && i + 2 < argc) {
            cfg->cert = argv[++i];
            cfg->key = argv[++i];
        } else {
            return usage();
        }
    }
    if (cfg->port < 0 || cfg->port > 65535 || cfg->threads < 1 || cfg->threads > MAX_THREADS) {
        return usage();
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct config cfg;
    if (parse(argc, argv, &cfg) != 0) {
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    static struct server servers[MAX_THREADS];
    uv_thread_t threads[MAX_THREADS];
    uv_sem_t bound;
    uv_sem_init(&bound, 0);
    servers[0] = (struct server){.cfg = &cfg, .port = cfg.port, .announce = true, .bound = &bound};
    uv_thread_create(&threads[0], thread_main, &servers[0]);
    uv_sem_wait(&bound);
    int rc = servers[0].bound_rc;
    int started = 1;
    for (; rc == 0 && started < cfg.threads; started++) {
        servers[started] = (struct server){.cfg = &cfg, .port = servers[0].port, .index = started};
        uv_thread_create(&threads[started], thread_main, &servers[started]);
    }
    for (int i = 0; i < started; i++) {
        uv_thread_join(&threads[i]);
        fprintf(stderr, "echo-server: loop %d served %ld connections\n", i, servers[i].served);
        if (servers[i].rc != 0 && rc == 0) {
            rc = servers[i].rc;
        }
    }
    uv_sem_destroy(&bound);
    return rc == 0 ? 0 : 1;
}
