/* SPDX-License-Identifier: MIT */
/*
 * ws-echo-server --port N [--host H] [--tls CERT KEY]
 *
 * A WebSocket echo server on path "/": every text or binary message is sent
 * back with its type; pings are answered and closes completed by the
 * library. One coroutine per connection, served by cn_http_serve (other
 * paths get 404, a plain GET on "/" gets 426). --port 0 binds a free port;
 * the first line on stdout is "listening on HOST:PORT". SIGINT or SIGTERM
 * stops the server (open connections are cancelled) and it exits 0.
 */
#include <coronet/coronet.h>

#include "args.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct config {
    const char *host;
    int port;
    const char *cert;
    const char *key;
};

struct server {
    const struct config *cfg;
    struct cn_tls_ctx *tls;
    struct cn_tcp_listener *listener;
    struct cn_co *serving;
    long served;
};

static int echo(struct cn_ws *ws)
{
    for (;;) {
        struct cn_ws_msg m;
        int rc = cn_ws_recv(ws, &m, -1);
        if (rc == 0) {
            rc = cn_ws_send(ws, m.type, m.data, m.len, -1);
        }
        if (rc < 0) {
            return rc;
        }
    }
}

static int handle(struct cn_http_server_conn *c, const struct cn_http_request *req, void *arg)
{
    struct server *srv = arg;
    if (req->path_len != 1 || req->path[0] != '/') {
        return cn_http_server_respond(c, 404, NULL, 0, "not found\n", 10, cn_now() + 5000);
    }
    if (!cn_ws_is_upgrade(req)) {
        struct cn_http_header h = cn_http_header_str("Upgrade", "websocket");
        return cn_http_server_respond(c, 426, &h, 1, "WebSocket only\n", 15, cn_now() + 5000);
    }
    struct cn_ws *ws;
    if (cn_ws_accept(&ws, c, req, NULL, cn_now() + 10000) != 0) {
        return 0; /* refused: the status has been sent */
    }
    srv->served++;
    int rc = echo(ws);
    /* the peer's close was answered (CN_EWS_CLOSED), or the connection failed
     * or is being cancelled: close ends it in each case */
    cn_ws_close(ws, rc == -ECANCELED ? CN_WS_CLOSE_GOING_AWAY : CN_WS_CLOSE_NORMAL, NULL, 0,
                cn_now() + 2000);
    return 0;
}

static int serve_main(void *arg)
{
    struct server *srv = arg;
    struct cn_http_serve_opts o = {.tls = srv->tls};
    int rc = cn_http_serve(srv->listener, handle, srv, &o);
    return rc == -ECANCELED ? 0 : rc;
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct server *srv = h->data;
    (void)signum;
    cn_cancel(srv->serving);
}

static int open_server(struct server *srv)
{
    const struct config *cfg = srv->cfg;
    int rc = 0;
    if (cfg->cert) {
        struct cn_tls_server_opts o = {.cert_file = cfg->cert, .key_file = cfg->key};
        rc = cn_tls_server_ctx_new(&srv->tls, &o);
        if (rc != 0) {
            fprintf(stderr, "ws-echo-server: TLS: %s: %s\n", cn_strerror(rc), cn_tls_last_error());
            return rc;
        }
    }
    rc = cn_tcp_listen(&srv->listener, cfg->host, cfg->port, NULL);
    if (rc != 0) {
        fprintf(stderr, "ws-echo-server: listen on %s:%d: %s\n", cfg->host, cfg->port,
                cn_strerror(rc));
        return rc;
    }
    bool v6 = strchr(cfg->host, ':') != NULL;
    printf("listening on %s%s%s:%d\n", v6 ? "[" : "", cfg->host, v6 ? "]" : "",
           cn_tcp_listener_port(srv->listener));
    fflush(stdout);
    return 0;
}

static int loop_main(void *arg)
{
    struct server *srv = arg;
    int rc = open_server(srv);
    if (rc == 0) {
        uv_signal_t sigint, sigterm;
        uv_signal_init(cn_loop(), &sigint);
        uv_signal_init(cn_loop(), &sigterm);
        sigint.data = sigterm.data = srv;
        rc = cn_spawn(&srv->serving, serve_main, srv, NULL);
        if (rc == 0) {
            uv_signal_start(&sigint, on_signal, SIGINT);
            uv_signal_start(&sigterm, on_signal, SIGTERM);
            cn_join(srv->serving, &rc, -1);
        }
        cn_uv_close((uv_handle_t *)&sigint);
        cn_uv_close((uv_handle_t *)&sigterm);
    }
    cn_tcp_listener_close(srv->listener);
    cn_tls_ctx_free(srv->tls);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: ws-echo-server --port N [--host H] [--tls CERT KEY]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct config cfg = {.host = "127.0.0.1", .port = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--port") == 0 && i + 1 < argc) {
            cfg.port = (int)parse_num(argv[++i], 0, 65535);
        } else if (strcmp(a, "--host") == 0 && i + 1 < argc) {
            cfg.host = argv[++i];
        } else if (strcmp(a, "--tls") == 0 && i + 2 < argc) {
            cfg.cert = argv[++i];
            cfg.key = argv[++i];
        } else {
            return usage();
        }
    }
    if (cfg.port < 0) {
        return usage();
    }
    signal(SIGPIPE, SIG_IGN);
    struct server srv = {.cfg = &cfg};
    int rc = cn_run(loop_main, &srv);
    fprintf(stderr, "ws-echo-server: served %ld WebSocket connections\n", srv.served);
    return rc == 0 ? 0 : 1;
}
