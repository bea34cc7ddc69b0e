/* SPDX-License-Identifier: MIT */
/*
 * ws-client URL [--ca FILE | --insecure] [--binary]
 *
 * Connects to a ws:// or wss:// URL, sends each line of stdin (without its
 * newline) as a text message (or binary with --binary), waits for one reply
 * per line and prints it on its own line. At the end of stdin it closes the
 * connection with 1000 and exits 0. wss:// verifies the server against the
 * system store, or against --ca FILE; --insecure turns verification off
 * (for throwaway test servers only). Exit status: 0 done, 1 connection or
 * protocol error, 2 bad arguments.
 */
#include <coronet/coronet.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LINE_MAX_BYTES = 64 * 1024, TIMEOUT_MS = 30000 };

struct config {
    const char *url;
    const char *ca;
    bool insecure;
    bool binary;
};

struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
};

/* On the thread pool: stdin is a blocking descriptor. */
static int read_line(void *arg)
{
    struct line *l = arg;
    if (!fgets(l->buf, sizeof l->buf, stdin)) {
        return CN_EOF;
    }
    l->len = strcspn(l->buf, "\n");
    if (l->len > 0 && l->buf[l->len - 1] == '\r') {
        l->len--;
    }
    return 0;
}

static int exchange(struct cn_ws *ws, const struct config *cfg)
{
    struct line *l = malloc(sizeof *l);
    if (!l) {
        return -ENOMEM;
    }
    int rc;
    while ((rc = cn_offload(read_line, l, -1)) == 0) {
        enum cn_ws_type type = cfg->binary ? CN_WS_BINARY : CN_WS_TEXT;
        rc = cn_ws_send(ws, type, l->buf, l->len, cn_now() + TIMEOUT_MS);
        struct cn_ws_msg m;
        if (rc == 0) {
            rc = cn_ws_recv(ws, &m, cn_now() + TIMEOUT_MS);
        }
        if (rc < 0) {
            break;
        }
        fwrite(m.data, 1, m.len, stdout);
        putchar('\n');
        fflush(stdout);
    }
    free(l);
    return rc == CN_EOF ? 0 : rc;
}

static int client_main(void *arg)
{
    const struct config *cfg = arg;
    struct cn_ws_client_opts o = {0};
    if (cfg->ca || cfg->insecure) {
        struct cn_tls_client_opts to = {.ca_file = cfg->ca,
                                        .dangerously_skip_verification = cfg->insecure};
        int rc = cn_tls_client_ctx_new(&o.tls, &to);
        if (rc != 0) {
            fprintf(stderr, "ws-client: TLS: %s: %s\n", cn_strerror(rc), cn_tls_last_error());
            return rc;
        }
    }
    struct cn_ws *ws;
    int rc = cn_ws_connect(&ws, cfg->url, &o, cn_now() + TIMEOUT_MS);
    cn_tls_ctx_free(o.tls);
    if (rc != 0) {
        fprintf(stderr, "ws-client: %s: %s\n", cfg->url, cn_strerror(rc));
        return rc;
    }
    rc = exchange(ws, cfg);
    if (rc == CN_EWS_CLOSED) {
        size_t len;
        const char *reason = cn_ws_close_reason(ws, &len);
        fprintf(stderr, "ws-client: closed by the server: %u %.*s\n", cn_ws_close_code(ws),
                (int)len, reason);
    } else if (rc != 0) {
        fprintf(stderr, "ws-client: %s\n", cn_strerror(rc));
    }
    int crc = cn_ws_close(ws, CN_WS_CLOSE_NORMAL, NULL, 0, cn_now() + 5000);
    return rc != 0 ? rc : crc;
}

static int usage(void)
{
    fprintf(stderr, "usage: ws-client URL [--ca FILE | --insecure] [--binary]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct config cfg = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--ca") == 0 && i + 1 < argc) {
            cfg.ca = argv[++i];
        } else if (strcmp(a, "--insecure") == 0) {
            cfg.insecure = true;
        } else if (strcmp(a, "--binary") == 0) {
            cfg.binary = true;
        } else if (!cfg.url && a[0] != '-') {
            cfg.url = a;
        } else {
            return usage();
        }
    }
    if (!cfg.url || (strncmp(cfg.url, "ws://", 5) != 0 && strncmp(cfg.url, "wss://", 6) != 0)) {
        return usage();
    }
    signal(SIGPIPE, SIG_IGN);
    return cn_run(client_main, &cfg) == 0 ? 0 : 1;
}
