/* SPDX-License-Identifier: MIT */
/*
 * Interoperability with real WebSocket implementations, both directions,
 * plain and over TLS: coronet's client against Node `ws`, Bun (Bun.serve)
 * and python3-websockets servers, and those three as clients against
 * coronet's server. Each exchange covers text, binary, fragmented messages
 * (where the peer's API can send them), a 16 MiB message, pings both ways,
 * and closes with codes started by either side. The peer scripts are in
 * tests/ws/peers/; Node packages come from $CN_SOURCE_ROOT/.peers/node_modules
 * (npm install ws bun), python3-websockets from Debian. A missing peer skips
 * the case (exit 77). Peers run as child processes on free loopback ports
 * (the servers bind port 0 and print it), die with the test
 * (PR_SET_PDEATHSIG) and are stopped by pid; the test waits for a peer client
 * on the thread pool so that the server in this loop keeps serving.
 */
#define _GNU_SOURCE
#include "test.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { LONG_MS = 60000, BIG = 16 * 1024 * 1024 };

static int64_t soon(void)
{
    return cn_now() + LONG_MS;
}

/* ---- peers --------------------------------------------------------------------------------- */

enum peer_kind { NODE_WS, BUN, PYTHON };

static char root[512];
static char cert_dir[600];
static char argv_buf[8][700];

static const char *source_root(void)
{
    const char *r = getenv("CN_SOURCE_ROOT");
    if (!r) {
        CN_TEST_SKIP_BECAUSE("CN_SOURCE_ROOT is not set");
    }
    snprintf(root, sizeof root, "%s", r);
    return root;
}

static bool runs(const char *cmd)
{
    char line[1600];
    snprintf(line, sizeof line, "%s >/dev/null 2>&1", cmd);
    return system(line) == 0;
}

/* Fills argv (up to the mode argument) for a peer, or skips. */
static void peer_argv(enum peer_kind k, char *argv[], const char *mode)
{
    const char *r = source_root();
    char modules[600], check[1400];
    snprintf(modules, sizeof modules, "%s/.peers/node_modules", r);
    setenv("NODE_PATH", modules, 1);
    switch (k) {
    case NODE_WS:
        snprintf(check, sizeof check, "test -f '%s/ws/package.json' && node --version", modules);
        if (!runs(check)) {
            CN_TEST_SKIP_BECAUSE("Node ws missing: cd %s && mkdir -p .peers && cd .peers && "
                                 "npm install ws bun",
                                 r);
        }
        snprintf(argv_buf[0], sizeof argv_buf[0], "node");
        snprintf(argv_buf[1], sizeof argv_buf[1], "%s/tests/ws/peers/node_ws.js", r);
        break;
    case BUN:
        snprintf(argv_buf[0], sizeof argv_buf[0], "%s/.bin/bun", modules);
        snprintf(check, sizeof check, "'%s' --version", argv_buf[0]);
        if (!runs(check)) {
            CN_TEST_SKIP_BECAUSE("Bun missing: cd %s/.peers && npm install ws bun", r);
        }
        snprintf(argv_buf[1], sizeof argv_buf[1], "%s/tests/ws/peers/bun_peer.js", r);
        break;
    case PYTHON:
        /* Debian's python3 (a pyenv shim in PATH may hide its packages) */
        snprintf(argv_buf[0], sizeof argv_buf[0], "%s",
                 runs("/usr/bin/python3 -c 'import websockets'") ? "/usr/bin/python3" : "python3");
        snprintf(check, sizeof check, "%s -c 'import websockets'", argv_buf[0]);
        if (!runs(check)) {
            CN_TEST_SKIP_BECAUSE("python3-websockets missing: apt-get install python3-websockets");
        }
        snprintf(argv_buf[1], sizeof argv_buf[1], "%s/tests/ws/peers/python_websockets.py", r);
        break;
    }
    snprintf(argv_buf[2], sizeof argv_buf[2], "%s", mode);
    argv[0] = argv_buf[0];
    argv[1] = argv_buf[1];
    argv[2] = argv_buf[2];
}

/* Runs argv with stdout to out_fd (-1: inherited), stdin from /dev/null. The
 * child dies with the test (PR_SET_PDEATHSIG). */
static pid_t start_process(char *const argv[], int out_fd)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    CN_ASSERT(pid >= 0);
    if (pid > 0) {
        return pid;
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
        _exit(126);
    }
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || (out_fd >= 0 && dup2(out_fd, 1) < 0)) {
        _exit(126);
    }
    execvp(argv[0], argv);
    _exit(127);
}

struct child {
    pid_t pid;
    int status;
};

static int wait_child(void *arg)
{
    struct child *c = arg;
    return waitpid(c->pid, &c->status, 0) == c->pid ? 0 : -errno;
}

/* Waits for a child on the thread pool, so the loop keeps running. */
static int child_wait(pid_t pid)
{
    struct child c = {pid, 0};
    CN_ASSERT_EQ(cn_offload(wait_child, &c, cn_now() + 2 * LONG_MS), 0);
    return c.status;
}

/* Starts a peer server; returns its pid and port. */
static pid_t server_start(enum peer_kind k, bool tls, int *port)
{
    char *argv[8] = {0};
    peer_argv(k, argv, "server");
    if (tls) {
        snprintf(argv_buf[3], sizeof argv_buf[3], "%s/server.pem", cert_dir);
        snprintf(argv_buf[4], sizeof argv_buf[4], "%s/server.key", cert_dir);
        argv[3] = argv_buf[3];
        argv[4] = argv_buf[4];
    }
    int fds[2];
    CN_ASSERT_EQ(pipe(fds), 0);
    pid_t pid = start_process(argv, fds[1]);
    close(fds[1]);
    char line[32] = "";
    FILE *f = fdopen(fds[0], "r");
    CN_ASSERT(fgets(line, sizeof line, f) != NULL);
    fclose(f);
    *port = atoi(line);
    CN_ASSERT_GT(*port, 0);
    return pid;
}

static void server_stop(pid_t pid)
{
    kill(pid, SIGKILL);
    CN_ASSERT_EQ(waitpid(pid, NULL, 0), pid);
}

/* ---- certificates -------------------------------------------------------------------------- */

static void certs_make(void)
{
    const char *r = source_root();
    const char *tmp = getenv("TMPDIR");
    snprintf(cert_dir, sizeof cert_dir, "%s/cn-ws-XXXXXX", tmp ? tmp : "/tmp");
    CN_ASSERT(mkdtemp(cert_dir) != NULL);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/net/certs.sh' '%s'", r, cert_dir);
    CN_ASSERT_EQ(system(cmd), 0);
}

static void certs_remove(void)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cert_dir);
    CN_ASSERT_EQ(system(cmd), 0);
}

/* ---- coronet's client against a peer server -------------------------------------------------- */

static void expect_msg(struct cn_ws *ws, enum cn_ws_type type, const void *data, size_t len)
{
    struct cn_ws_msg m;
    CN_ASSERT_EQ(cn_ws_recv(ws, &m, soon()), 0);
    CN_ASSERT_EQ(m.type, type);
    CN_ASSERT_EQ(m.len, len);
    CN_ASSERT_MEMEQ(m.data, data, len);
}

static void echo(struct cn_ws *ws, enum cn_ws_type type, const void *data, size_t len)
{
    CN_ASSERT_EQ(cn_ws_send(ws, type, data, len, soon()), 0);
    expect_msg(ws, type, data, len);
}

static void echo_str(struct cn_ws *ws, const char *s)
{
    echo(ws, CN_WS_TEXT, s, strlen(s));
}

static void command(struct cn_ws *ws, const char *cmd, const char *reply)
{
    CN_ASSERT_EQ(cn_ws_send_text(ws, cmd, strlen(cmd), soon()), 0);
    expect_msg(ws, CN_WS_TEXT, reply, strlen(reply));
}

struct client_case {
    enum peer_kind kind;
    bool tls;
};

static void client_exchange(const char *url, struct cn_tls_ctx *tls)
{
    struct cn_ws_client_opts o = {.tls = tls};
    o.ws.ping_interval_ms = 100; /* idle pings, every one must be answered */
    o.ws.pong_timeout_ms = 5000;
    struct cn_ws *ws;
    CN_ASSERT_EQ(cn_ws_connect(&ws, url, &o, soon()), 0);
    echo_str(ws, "hello \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5");
    uint8_t bin[256];
    for (int i = 0; i < 256; i++) {
        bin[i] = (uint8_t)i;
    }
    echo(ws, CN_WS_BINARY, bin, sizeof bin);
    CN_ASSERT_EQ(cn_ws_send_fragment(ws, CN_WS_TEXT, "frag1", 5, false, soon()), 0);
    CN_ASSERT_EQ(cn_ws_send_fragment(ws, CN_WS_TEXT, "frag2", 5, false, soon()), 0);
    CN_ASSERT_EQ(cn_ws_send_fragment(ws, CN_WS_TEXT, "frag3", 5, true, soon()), 0);
    expect_msg(ws, CN_WS_TEXT, "frag1frag2frag3", 15);
    uint8_t *big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++) {
        big[i] = (uint8_t)(i * 31 + 7);
    }
    echo(ws, CN_WS_BINARY, big, BIG);
    free(big);
    command(ws, "fragments", "frag1frag2frag3"); /* fragmented by the peer */
    command(ws, "ping-me", "pong:abc");          /* the peer's ping got our pong */
    CN_ASSERT_EQ(cn_ws_ping(ws, "xyz", 3, soon()), 0);
    echo_str(ws, "after ping");
    struct cn_ws_msg m;
    CN_ASSERT_EQ(cn_ws_recv(ws, &m, cn_now() + 500), -ETIMEDOUT); /* pinged, answered */
    /* the peer closes */
    CN_ASSERT_EQ(cn_ws_send_text(ws, "close 4001 bye", 14, soon()), 0);
    CN_ASSERT_EQ(cn_ws_recv(ws, &m, soon()), CN_EWS_CLOSED);
    CN_ASSERT_EQ(cn_ws_close_code(ws), 4001);
    size_t len;
    const char *reason = cn_ws_close_reason(ws, &len);
    CN_ASSERT_EQ(len, 3);
    CN_ASSERT_MEMEQ(reason, "bye", 3);
    CN_ASSERT_EQ(cn_ws_close(ws, 1000, NULL, 0, soon()), 0);
    /* we close */
    CN_ASSERT_EQ(cn_ws_connect(&ws, url, &o, soon()), 0);
    echo_str(ws, "second");
    CN_ASSERT_EQ(cn_ws_close(ws, 4000, "done", 4, soon()), 0);
}

static int client_main(void *arg)
{
    const struct client_case *c = arg;
    int port;
    pid_t pid = server_start(c->kind, c->tls, &port);
    struct cn_tls_ctx *tls = NULL;
    if (c->tls) {
        char ca[700];
        snprintf(ca, sizeof ca, "%s/ca.pem", cert_dir);
        struct cn_tls_client_opts to = {.ca_file = ca};
        CN_ASSERT_EQ(cn_tls_client_ctx_new(&tls, &to), 0);
    }
    char url[128];
    snprintf(url, sizeof url, "%s://127.0.0.1:%d/path?q=1", c->tls ? "wss" : "ws", port);
    client_exchange(url, tls);
    cn_tls_ctx_free(tls);
    server_stop(pid);
    return 0;
}

static void run_client_case(enum peer_kind k, bool tls)
{
    struct client_case c = {k, tls};
    if (tls) {
        certs_make();
    }
    CN_ASSERT_EQ(cn_test_run(client_main, &c), 0);
    if (tls) {
        certs_remove();
    }
}

/* ---- a peer client against coronet's server ----------------------------------------------------
 */

struct server_state {
    struct cn_tcp_listener *l;
    struct cn_tls_ctx *tls;
    unsigned last_code; /* the peer's close code of the last connection */
    int connections;
    int failures;
};

static int serve_conn(struct server_state *st, struct cn_ws *ws)
{
    CN_ASSERT_STREQ(cn_ws_subprotocol(ws), "chat");
    for (;;) {
        struct cn_ws_msg m;
        int rc = cn_ws_recv(ws, &m, soon());
        if (rc == 0 && m.type == CN_WS_TEXT && m.len == 8 && memcmp(m.data, "close-me", 8) == 0) {
            return cn_ws_close(ws, 4002, "server bye", 10, soon());
        }
        if (rc == 0) {
            rc = cn_ws_send(ws, m.type, m.data, m.len, soon());
        }
        if (rc < 0) {
            st->last_code = cn_ws_close_code(ws);
            int crc = cn_ws_close(ws, 1000, NULL, 0, soon());
            return rc == CN_EWS_CLOSED ? crc : rc;
        }
    }
}

static int handler(struct cn_http_server_conn *c, const struct cn_http_request *req, void *arg)
{
    struct server_state *st = arg;
    static const char *const protos[] = {"chat"};
    struct cn_ws_server_opts o = {.subprotocols = protos, .nsubprotocols = 1};
    struct cn_ws *ws;
    int rc = cn_ws_accept(&ws, c, req, &o, soon());
    if (rc < 0) {
        st->failures++;
        return 0;
    }
    st->connections++;
    if (serve_conn(st, ws) != 0) {
        st->failures++;
    }
    return 0;
}

static int serve(void *arg)
{
    struct server_state *st = arg;
    struct cn_http_serve_opts o = {.tls = st->tls};
    cn_http_serve(st->l, handler, st, &o);
    return 0;
}

static int server_main(void *arg)
{
    const struct client_case *c = arg;
    struct server_state st = {0};
    char *argv[8] = {0};
    peer_argv(c->kind, argv, "client");
    if (c->tls) {
        char cert[700], key[700];
        snprintf(cert, sizeof cert, "%s/server.pem", cert_dir);
        snprintf(key, sizeof key, "%s/server.key", cert_dir);
        struct cn_tls_server_opts to = {.cert_file = cert, .key_file = key};
        CN_ASSERT_EQ(cn_tls_server_ctx_new(&st.tls, &to), 0);
    }
    CN_ASSERT_EQ(cn_tcp_listen(&st.l, "127.0.0.1", 0, NULL), 0);
    struct cn_co *srv;
    CN_ASSERT_EQ(cn_spawn(&srv, serve, &st, NULL), 0);
    snprintf(argv_buf[3], sizeof argv_buf[3], "%s://127.0.0.1:%d/", c->tls ? "wss" : "ws",
             cn_tcp_listener_port(st.l));
    argv[3] = argv_buf[3];
    if (c->tls) {
        snprintf(argv_buf[4], sizeof argv_buf[4], "%s/ca.pem", cert_dir);
        argv[4] = argv_buf[4];
    }
    pid_t pid = start_process(argv, -1);
    int status = child_wait(pid);
    CN_ASSERT(WIFEXITED(status));
    CN_ASSERT_EQ(WEXITSTATUS(status), 0);
    cn_sleep(100); /* the last connection's close reaches the server */
    cn_cancel(srv);
    CN_ASSERT_EQ(cn_join(srv, NULL, -1), 0);
    cn_tcp_listener_close(st.l);
    cn_tls_ctx_free(st.tls);
    CN_ASSERT_EQ(st.connections, 2);
    CN_ASSERT_EQ(st.failures, 0);
    CN_ASSERT_EQ(st.last_code, 4000);
    return 0;
}

static void run_server_case(enum peer_kind k, bool tls)
{
    struct client_case c = {k, tls};
    if (tls) {
        certs_make();
    }
    CN_ASSERT_EQ(cn_test_run(server_main, &c), 0);
    if (tls) {
        certs_remove();
    }
}

/* ---- cases ----------------------------------------------------------------------------------- */

static void client_vs_node_ws_server(void)
{
    run_client_case(NODE_WS, false);
}

static void client_vs_node_ws_server_tls(void)
{
    run_client_case(NODE_WS, true);
}

static void client_vs_bun_server(void)
{
    run_client_case(BUN, false);
}

static void client_vs_bun_server_tls(void)
{
    run_client_case(BUN, true);
}

static void client_vs_python_websockets_server(void)
{
    run_client_case(PYTHON, false);
}

static void client_vs_python_websockets_server_tls(void)
{
    run_client_case(PYTHON, true);
}

static void node_ws_client_vs_server(void)
{
    run_server_case(NODE_WS, false);
}

static void node_ws_client_vs_server_tls(void)
{
    run_server_case(NODE_WS, true);
}

static void bun_client_vs_server(void)
{
    run_server_case(BUN, false);
}

static void bun_client_vs_server_tls(void)
{
    run_server_case(BUN, true);
}

static void python_websockets_client_vs_server(void)
{
    run_server_case(PYTHON, false);
}

static void python_websockets_client_vs_server_tls(void)
{
    run_server_case(PYTHON, true);
}

CN_TEST_MAIN(CN_CASE(client_vs_node_ws_server), CN_CASE(client_vs_node_ws_server_tls),
             CN_CASE(client_vs_bun_server), CN_CASE(client_vs_bun_server_tls),
             CN_CASE(client_vs_python_websockets_server),
             CN_CASE(client_vs_python_websockets_server_tls), CN_CASE(node_ws_client_vs_server),
             CN_CASE(node_ws_client_vs_server_tls), CN_CASE(bun_client_vs_server),
             CN_CASE(bun_client_vs_server_tls), CN_CASE(python_websockets_client_vs_server),
             CN_CASE(python_websockets_client_vs_server_tls))
