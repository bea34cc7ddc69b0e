/* SPDX-License-Identifier: MIT */
/*
 * uv-echo --port N [--host H]: the raw libuv reference for bench-tcp-echo.
 *
 * A TCP echo server written the way a careful libuv programmer writes one,
 * with callbacks and no coroutines: each connection owns one 64 KiB buffer,
 * reused for every read (no allocation per message); what was read is
 * written back with uv_try_write first (one syscall, no callback when the
 * socket has room), and only a remainder goes through uv_write, during which
 * reading stops because the buffer is still in use. TCP_NODELAY is on.
 *
 * Like examples/echo-server, the first line on stdout is
 * "listening on HOST:PORT" and SIGINT/SIGTERM exit 0.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

enum { BUF_SIZE = 64 * 1024 };

struct conn {
    uv_tcp_t h;
    uv_write_t req;
    char buf[BUF_SIZE];
};

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void drop(struct conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->h)) {
        uv_close((uv_handle_t *)&c->h, on_closed);
    }
}

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    if (status != 0 || uv_read_start((uv_stream_t *)&c->h, on_alloc, on_read) != 0) {
        drop(c);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->buf, sizeof c->buf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (nread < 0) {
        drop(c);
        return;
    }
    if (nread == 0) {
        return; /* EAGAIN */
    }
    uv_buf_t out = uv_buf_init(buf->base, (unsigned int)nread);
    int n = uv_try_write(s, &out, 1);
    if (n == nread) {
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        drop(c);
        return;
    }
    if (n > 0) {
        out.base += n;
        out.len -= (size_t)n;
    }
    /* The buffer is in use until the write completes: stop reading. */
    uv_read_stop(s);
    c->req.data = c;
    if (uv_write(&c->req, s, &out, 1, on_written) != 0) {
        drop(c);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        return;
    }
    struct conn *c = malloc(sizeof *c);
    if (!c) {
        return;
    }
    uv_tcp_init(server->loop, &c->h);
    c->h.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->h) != 0) {
        drop(c);
        return;
    }
    uv_tcp_nodelay(&c->h, 1);
    if (uv_read_start((uv_stream_t *)&c->h, on_alloc, on_read) != 0) {
        drop(c);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    uv_stop(h->loop);
}

static int usage(void)
{
    fprintf(stderr, "usage: uv-echo --port N [--host H]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else {
            return usage();
        }
    }
    if (port < 0 || port > 65535) {
        return usage();
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_storage ss;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        return usage();
    }
    uv_tcp_init(loop, &server);
    int rc = uv_tcp_bind(&server, (struct sockaddr *)&ss, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&server, 511, on_connection);
    }
    int len = sizeof ss;
    if (rc == 0) {
        rc = uv_tcp_getsockname(&server, (struct sockaddr *)&ss, &len);
    }
    if (rc != 0) {
        fprintf(stderr, "uv-echo: listen on %s:%d: %s\n", host, port, uv_strerror(rc));
        return 1;
    }
    int bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    bool v6 = strchr(host, ':') != NULL;
    printf("listening on %s%s%s:%d\n", v6 ? "[" : "", host, v6 ? "]" : "", bound);
    fflush(stdout);

    uv_signal_t sigint, sigterm;
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0; /* the kernel closes the sockets */
}
