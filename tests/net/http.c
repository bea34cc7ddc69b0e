/* SPDX-License-Identifier: MIT */
/*
 * HTTP/1.1 on loopback: the parser on bytes alone; the server against curl,
 * python3 http.client and hand-written bad requests; the client against
 * python3 http.server and against the server here. External peers are
 * started by the cases on free ports and stopped by pid. Commands that block
 * (curl, the python client) run on the thread pool so the server in this
 * loop keeps answering.
 */
#define _GNU_SOURCE
#include "test.h"

#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/http_internal.h"

enum { LONG_MS = 10000 };

static int64_t soon(void)
{
    return cn_now() + LONG_MS;
}

static bool have(const char *prog)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

static const char *peers_script(void)
{
    static char path[600];
    const char *root = getenv("CN_SOURCE_ROOT");
    if (!root) {
        CN_TEST_SKIP_BECAUSE("CN_SOURCE_ROOT is not set");
    }
    snprintf(path, sizeof path, "%s/tests/net/http_peers.py", root);
    return path;
}

/* ---- shell commands on the thread pool -------------------------------------------- */

struct cmd {
    char line[2048];
    char out[16384];
    size_t len;
    int status;
};

static int run_cmd(void *arg)
{
    struct cmd *c = arg;
    FILE *f = popen(c->line, "r");
    if (!f) {
        return -errno;
    }
    c->len = fread(c->out, 1, sizeof c->out - 1, f);
    c->out[c->len] = '\0';
    c->status = pclose(f);
    return 0;
}

static struct cmd *sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct cmd *sh(const char *fmt, ...)
{
    struct cmd *c = calloc(1, sizeof *c);
    CN_ASSERT(c != NULL);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->line, sizeof c->line, fmt, ap);
    va_end(ap);
    CN_ASSERT_EQ(cn_offload(run_cmd, c, cn_now() + 60000), 0);
    return c;
}

/* ---- the python server -------------------------------------------------------------- */

struct py {
    pid_t pid;
    int port;
};

static void py_start(struct py *p)
{
    if (!have("python3")) {
        CN_TEST_SKIP_BECAUSE("no python3");
    }
    const char *script = peers_script();
    int fds[2];
    CN_ASSERT_EQ(pipe(fds), 0);
    p->pid = fork();
    CN_ASSERT(p->pid >= 0);
    if (p->pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execlp("python3", "python3", script, "server", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[32] = "";
    FILE *f = fdopen(fds[0], "r");
    CN_ASSERT(fgets(line, sizeof line, f) != NULL);
    fclose(f);
    p->port = atoi(line);
    CN_ASSERT_GT(p->port, 0);
}

static void py_stop(struct py *p)
{
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
}

/* ---- a coronet server with per-connection bookkeeping --------------------------------- */

enum srv_mode { NORMAL, STALE_SECOND, SILENT };

struct srv {
    struct cn_tcp_listener *l;
    struct cn_group *g;
    struct cn_co *acceptor;
    struct cn_http_limits limits;
    enum srv_mode mode;
    int port;
    int conns;     /* accepted */
    int open_now;  /* open at the moment */
    int max_open;  /* most open at once */
    int peer_eofs; /* connections the client ended */
    struct cn_event peer_eof;
    int last_rc; /* read_request's last failure */
};

struct srv_conn {
    struct srv *sv;
    struct cn_stream *s;
};

static void pattern(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (char)((i * 31 + 7) & 0xFF);
    }
}

static size_t query_n(const struct cn_http_request *r)
{
    return r->query && r->query_len > 2 && r->query[0] == 'n' ? strtoul(r->query + 2, NULL, 10) : 0;
}

static bool path_is(const struct cn_http_request *r, const char *p)
{
    return r->path_len == strlen(p) && memcmp(r->path, p, r->path_len) == 0;
}

static int respond_hello(struct cn_http_server_conn *c, const struct cn_http_request *r)
{
    char body[256];
    int n = snprintf(body, sizeof body, "%s %.*s %.*s", r->method, (int)r->path_len, r->path,
                     (int)r->query_len, r->query ? r->query : "");
    struct cn_http_header h = cn_http_header_str("Content-Type", "text/plain");
    return cn_http_server_respond(c, 200, &h, 1, body, (size_t)n, soon());
}

static int respond_stream(struct cn_http_server_conn *c, size_t n)
{
    int rc = cn_http_server_start_chunked(c, 200, NULL, 0, soon());
    char *buf = malloc(n ? n : 1);
    pattern(buf, n);
    for (size_t off = 0; rc == 0 && off < n; off += 1000) {
        rc = cn_http_server_write_chunk(c, buf + off, n - off < 1000 ? n - off : 1000, soon());
    }
    free(buf);
    return rc == 0 ? cn_http_server_end_chunked(c, soon()) : rc;
}

static int respond_upgrade(struct cn_http_server_conn *c)
{
    struct cn_http_header h[2] = {cn_http_header_str("Upgrade", "echo"),
                                  cn_http_header_str("Connection", "Upgrade")};
    CN_ASSERT_EQ(cn_http_server_respond(c, 101, h, 2, NULL, 0, soon()), 0);
    struct cn_stream *s;
    CN_ASSERT_EQ(cn_http_server_conn_take_stream(c, &s), 0);
    char buf[5];
    CN_ASSERT_EQ(cn_stream_read_exact(s, buf, 5, soon()), 5);
    CN_ASSERT_MEMEQ(buf, "hello", 5);
    CN_ASSERT_EQ(cn_stream_write(s, "world", 5, soon()), 0);
    cn_stream_close(s);
    return 0;
}

/* The routes every server case uses. */
static int handle(struct cn_http_server_conn *c, const struct cn_http_request *r, void *arg)
{
    if (path_is(r, "/echo")) {
        const char *body;
        size_t len;
        int rc = cn_http_server_read_body_all(c, &body, &len, soon());
        return rc < 0 ? rc : cn_http_server_respond(c, 200, NULL, 0, body, len, soon());
    }
    if (path_is(r, "/stream")) {
        return respond_stream(c, query_n(r) ? query_n(r) : 1000);
    }
    if (path_is(r, "/big")) {
        size_t n = query_n(r);
        char *buf = malloc(n + 1);
        pattern(buf, n);
        int rc = cn_http_server_respond(c, 200, NULL, 0, buf, n, soon());
        free(buf);
        return rc;
    }
    if (path_is(r, "/slow")) {
        cn_sleep(20);
        return respond_hello(c, r);
    }
    if (path_is(r, "/upgrade")) {
        return respond_upgrade(c);
    }
    if (path_is(r, "/stream-text")) {
        int rc = cn_http_server_start_chunked(c, 200, NULL, 0, soon());
        for (int i = 0; rc == 0 && i < 100; i++) {
            rc = cn_http_server_write_chunk(c, "0123456789", 10, soon());
        }
        return rc == 0 ? cn_http_server_end_chunked(c, soon()) : rc;
    }
    if (path_is(r, "/missing")) {
        return cn_http_server_respond(c, 404, NULL, 0, "no", 2, soon());
    }
    return respond_hello(c, r);
}

static void srv_serve(struct srv *sv, struct cn_http_server_conn *c)
{
    for (int nreq = 0;; nreq++) {
        const struct cn_http_request *req;
        int rc = cn_http_server_read_request(c, &req, soon());
        if (rc < 0) {
            sv->last_rc = rc;
            if (rc == CN_EOF) {
                sv->peer_eofs++;
                cn_event_set(&sv->peer_eof);
            }
            return;
        }
        if ((sv->mode == STALE_SECOND && nreq == 1)) {
            return; /* as if the idle connection had timed out just now */
        }
        if (sv->mode == SILENT) {
            cn_sleep(60000);
            return;
        }
        if (handle(c, req, NULL) < 0 || !cn_http_server_responded(c)) {
            return;
        }
    }
}

static int srv_conn(void *arg)
{
    struct srv_conn a = *(struct srv_conn *)arg;
    free(arg);
    struct srv *sv = a.sv;
    if (++sv->open_now > sv->max_open) {
        sv->max_open = sv->open_now;
    }
    struct cn_http_server_conn *c;
    CN_ASSERT_EQ(cn_http_server_conn_new(&c, a.s, &sv->limits), 0);
    srv_serve(sv, c);
    cn_http_server_conn_close(c);
    sv->open_now--;
    return 0;
}

static int srv_accept(void *arg)
{
    struct srv *sv = arg;
    for (;;) {
        struct cn_stream *s;
        int rc = cn_tcp_accept(sv->l, &s, -1);
        if (rc < 0) {
            return rc == -ECANCELED ? 0 : rc;
        }
        sv->conns++;
        struct srv_conn *a = malloc(sizeof *a);
        a->sv = sv;
        a->s = s;
        CN_ASSERT_EQ(cn_group_spawn(sv->g, srv_conn, a, NULL), 0);
    }
}

static void srv_start(struct srv *sv, const struct cn_http_limits *lim, enum srv_mode mode)
{
    memset(sv, 0, sizeof *sv);
    if (lim) {
        sv->limits = *lim;
    }
    sv->mode = mode;
    CN_ASSERT_EQ(cn_tcp_listen(&sv->l, "127.0.0.1", 0, NULL), 0);
    sv->port = cn_tcp_listener_port(sv->l);
    CN_ASSERT_EQ(cn_group_new(&sv->g), 0);
    CN_ASSERT_EQ(cn_spawn(&sv->acceptor, srv_accept, sv, NULL), 0);
}

static void srv_stop(struct srv *sv)
{
    cn_cancel(sv->acceptor);
    int rc = -1;
    CN_ASSERT_EQ(cn_join(sv->acceptor, &rc, -1), 0);
    CN_ASSERT_EQ(rc, 0);
    cn_group_close(sv->g);
    cn_tcp_listener_close(sv->l);
}

/* Writes raw bytes and reads until the server closes. Returns the bytes. */
static size_t raw(int port, const char *req, size_t len, char *out, size_t cap)
{
    struct cn_stream *s;
    CN_ASSERT_EQ(cn_tcp_connect(&s, "127.0.0.1", port, NULL, soon()), 0);
    CN_ASSERT_EQ(cn_stream_write(s, req, len, soon()), 0);
    size_t got = 0;
    ssize_t n;
    while (got < cap - 1 && (n = cn_stream_read(s, out + got, cap - 1 - got, soon())) > 0) {
        got += (size_t)n;
    }
    out[got] = '\0';
    cn_stream_close(s);
    return got;
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++) {
        n++;
    }
    return n;
}

/* ---- the parser alone ------------------------------------------------------------------ */

static const char REQ[] = "POST /a/b?c=d HTTP/1.1\r\n"
                          "Host: example.test\r\n"
                          "X-Empty:\r\n"
                          "X-Spaced:   v a l  \r\n"
                          "Transfer-Encoding: chunked\r\n"
                          "\r\n"
                          "5\r\nhello\r\n"
                          "7;ext=1\r\n, world\r\n"
                          "0\r\nTrailer: x\r\n\r\n"
                          "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";

/* Feeds REQ in pieces of `step` bytes; checks both messages. */
static void parse_in_steps(size_t step)
{
    struct cn__http_parser p;
    CN_ASSERT_EQ(cn__http_parser_init(&p, HTTP_REQUEST, NULL), 0);
    size_t fed = 0, total = sizeof REQ - 1;
    int rc;
    cn__http_parser_next(&p);
    while ((rc = cn__http_parse_head(&p)) == 0) {
        size_t room, k = total - fed < step ? total - fed : step;
        char *at = cn__http_space(&p, &room);
        CN_ASSERT_GE(room, k);
        memcpy(at, REQ + fed, k);
        cn__http_commit(&p, k);
        fed += k;
    }
    CN_ASSERT_EQ(rc, 1);
    CN_ASSERT_EQ(p.msg.method, HTTP_POST);
    CN_ASSERT_EQ(p.msg.text_len, 8);
    CN_ASSERT_MEMEQ(p.msg.text, "/a/b?c=d", 8);
    CN_ASSERT_EQ(p.msg.nheaders, 4);
    size_t len;
    const char *v = cn_http_header_find(p.msg.headers, p.msg.nheaders, "x-spaced", &len);
    CN_ASSERT(v && len == 5 && memcmp(v, "v a l", 5) == 0);
    v = cn_http_header_find(p.msg.headers, p.msg.nheaders, "X-EMPTY", &len);
    CN_ASSERT(v && len == 0);
    CN_ASSERT(p.msg.chunked && p.msg.has_body && p.msg.keep_alive);
    char body[64];
    size_t blen = 0;
    while (p.phase == CN__HTTP_BODY) {
        ssize_t k = cn__http_parse_body(&p, body + blen, sizeof body - blen);
        CN_ASSERT_GE(k, 0);
        blen += (size_t)k;
        if (p.start == p.end && p.phase == CN__HTTP_BODY) {
            size_t room, n = total - fed < step ? total - fed : step;
            char *at = cn__http_space(&p, &room);
            CN_ASSERT_GT(n, 0);
            memcpy(at, REQ + fed, n);
            cn__http_commit(&p, n);
            fed += n;
        }
    }
    CN_ASSERT_EQ(blen, 12);
    CN_ASSERT_MEMEQ(body, "hello, world", 12);
    /* the pipelined request is next, whatever the pieces */
    while ((rc = cn__http_parse_head(&p)) == 0) {
        size_t room, n = total - fed < step ? total - fed : step;
        char *at = cn__http_space(&p, &room);
        CN_ASSERT_GT(n, 0);
        memcpy(at, REQ + fed, n);
        cn__http_commit(&p, n);
        fed += n;
    }
    CN_ASSERT_EQ(rc, 1);
    CN_ASSERT_EQ(p.phase, CN__HTTP_DONE);
    CN_ASSERT_EQ(p.msg.text_len, 5);
    CN_ASSERT_MEMEQ(p.msg.text, "/next", 5);
    cn__http_parser_free(&p);
}

static void parser_gives_views_whatever_the_read_sizes(void)
{
    for (size_t step = 1; step <= sizeof REQ; step++) {
        parse_in_steps(step);
    }
}

static int parse_bytes(int type, const char *msg, size_t len)
{
    struct cn__http_parser p;
    CN_ASSERT_EQ(cn__http_parser_init(&p, type, NULL), 0);
    cn__http_parser_next(&p);
    size_t room;
    memcpy(cn__http_space(&p, &room), msg, len);
    cn__http_commit(&p, len);
    int rc = cn__http_parse_head(&p);
    char sink[256];
    while (rc >= 0 && p.phase == CN__HTTP_BODY && p.start < p.end) {
        rc = (int)cn__http_parse_body(&p, sink, sizeof sink);
    }
    cn__http_parser_free(&p);
    return rc;
}

static void parser_rejects_smuggling_and_bad_framing(void)
{
    const char *bad[] = {
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "G\x01T / HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CN_ASSERT_EQ(parse_bytes(HTTP_REQUEST, bad[i], strlen(bad[i])), CN_EHTTP_PARSE);
    }
    const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    CN_ASSERT_EQ(parse_bytes(HTTP_RESPONSE, ok, sizeof ok - 1), 2);
}

/* picohttpparser's guard: the message ends at the last byte before a
 * PROT_NONE page, so any read past the input faults. */
static void parser_never_reads_past_its_input(void)
{
    long page = sysconf(_SC_PAGESIZE);
    struct cn__http_parser p;
    CN_ASSERT_EQ(cn__http_parser_init(&p, HTTP_REQUEST, NULL), 0);
    size_t span = (p.cap + (size_t)page - 1) / (size_t)page * (size_t)page;
    char *region =
        mmap(NULL, span + (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CN_ASSERT(region != MAP_FAILED);
    CN_ASSERT_EQ(mprotect(region + span, (size_t)page, PROT_NONE), 0);
    free(p.buf);
    p.buf = region + span - p.cap;
    p.max_head = p.cap; /* the message sits at the end of the buffer */
    const char *msgs[] = {"GET /x HTTP/1.1\r\nHost: a\r\nX-Partial: abc",
                          "GET /x HTTP/1.1\r\nHost: a\r\n\r\n",
                          "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234"};
    for (size_t i = 0; i < 3; i++) {
        size_t len = strlen(msgs[i]);
        p.phase = CN__HTTP_IDLE;
        p.start = p.end = 0;
        llhttp_init(&p.ll, HTTP_REQUEST, p.ll.settings);
        cn__http_parser_next(&p);
        p.start = p.end = p.cap - len;
        memcpy(p.buf + p.start, msgs[i], len);
        p.end = p.cap;
        p.phase = CN__HTTP_HEAD;
        CN_ASSERT_GE(cn__http_parse_head(&p), 0);
    }
    p.buf = NULL;
    munmap(region, span + (size_t)page);
    cn__http_parser_free(&p);
}

static void url_parse_handles_hosts_ports_and_targets(void)
{
    struct cn_http_url u;
    CN_ASSERT_EQ(cn_http_url_parse("http://example.com", &u), 0);
    CN_ASSERT(!u.tls && u.port == 80);
    CN_ASSERT_STREQ(u.host, "example.com");
    CN_ASSERT(u.target_len == 1 && u.target[0] == '/');
    CN_ASSERT_EQ(cn_http_url_parse("HTTPS://[::1]:8443/a/b?c=d#frag", &u), 0);
    CN_ASSERT(u.tls && u.port == 8443);
    CN_ASSERT_STREQ(u.host, "::1");
    CN_ASSERT_EQ(u.target_len, 8);
    CN_ASSERT_MEMEQ(u.target, "/a/b?c=d", 8);
    CN_ASSERT_EQ(cn_http_url_parse("https://kinesis.eu-west-1.amazonaws.com/", &u), 0);
    CN_ASSERT_EQ(u.port, 443);
    CN_ASSERT_EQ(cn_http_url_parse("http://h:/x", &u), 0);
    CN_ASSERT_EQ(u.port, 80);
    const char *bad[] = {"ftp://h/",    "http://",       "http://h:0/",  "http://h:65536/",
                         "http://u@h/", "http://[::1/",  "http://h:8x/", "http://h/a b",
                         "h/x",         "http://[::1]x/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CN_ASSERT_EQ(cn_http_url_parse(bad[i], &u), CN_EHTTP_URL);
    }
    CN_ASSERT(cn_http_token_has("keep-alive, Upgrade", 19, "upgrade"));
    CN_ASSERT(!cn_http_token_has("keep-alive, Upgraded", 20, "upgrade"));
}

/* ---- the server against curl and python ------------------------------------------------ */

static void need_curl(void)
{
    if (!have("curl")) {
        CN_TEST_SKIP_BECAUSE("no curl");
    }
}

static int curl_keepalive_main(void *arg)
{
    struct srv sv;
    srv_start(&sv, NULL, NORMAL);
    struct cmd *c = sh("curl -sS -w ' [%%{http_code} %%{num_connects}]\\n' "
                       "http://127.0.0.1:%d/one http://127.0.0.1:%d/two?q=2 "
                       "http://127.0.0.1:%d/stream-text",
                       sv.port, sv.port, sv.port);
    CN_ASSERT_EQ(c->status, 0);
    CN_ASSERT(strstr(c->out, "GET /one  [200 1]") != NULL);
    CN_ASSERT(strstr(c->out, "GET /two q=2 [200 0]") != NULL);
    CN_ASSERT(strstr(c->out, "0123456789 [200 0]") != NULL);
    CN_ASSERT_EQ(sv.conns, 1);
    free(c);
    srv_stop(&sv);
    return 0;
}

static void server_keeps_alive_for_curl(void)
{
    need_curl();
    CN_ASSERT_EQ(cn_test_run(curl_keepalive_main, NULL), 0);
}

static int curl_chunked_main(void *arg)
{
    struct srv sv;
    srv_start(&sv, NULL, NORMAL);
    char path[] = "/tmp/cn-http-upload-XXXXXX";
    int fd = mkstemp(path);
    CN_ASSERT_GE(fd, 0);
    enum { N = 300 * 1000 };
    char *data = malloc(N);
    for (size_t i = 0; i < N; i++) {
        data[i] = (char)('a' + i % 26);
    }
    CN_ASSERT_EQ(write(fd, data, N), N);
    close(fd);
    struct cmd *c = sh("curl -sS -H 'Transfer-Encoding: chunked' --data-binary @%s "
                       "http://127.0.0.1:%d/echo | cmp - %s && echo same",
                       path, sv.port, path);
    CN_ASSERT_EQ(c->status, 0);
    CN_ASSERT_STREQ(c->out, "same\n");
    unlink(path);
    free(data);
    free(c);
    srv_stop(&sv);
    return 0;
}

static void server_takes_chunked_upload_from_curl(void)
{
    need_curl();
    CN_ASSERT_EQ(cn_test_run(curl_chunked_main, NULL), 0);
}

static int curl_http10_main(void *arg)
{
    struct srv sv;
    srv_start(&sv, NULL, NORMAL);
    struct cmd *c =
        sh("curl -sS -i --http1.0 http://127.0.0.1:%d/plain http://127.0.0.1:%d/stream-text",
           sv.port, sv.port);
    CN_ASSERT_EQ(c->status, 0);
    /* a 1.0 client without keep-alive: every response closes */
    CN_ASSERT_EQ(count(c->out, "Connection: close"), 2);
    CN_ASSERT(strstr(c->out, "GET /plain") != NULL);
    CN_ASSERT(strstr(c->out, "Transfer-Encoding") == NULL);
    CN_ASSERT_EQ(count(c->out, "0123456789"), 100);
    CN_ASSERT_EQ(sv.conns, 2);
    free(c);
    srv_stop(&sv);
    return 0;
}

static void server_speaks_http10_to_curl(void)
{
    need_curl();
    CN_ASSERT_EQ(cn_test_run(curl_http10_main, NULL), 0);
}

static int python_client_main(void *arg)
{
    struct srv sv;
    srv_start(&sv, NULL, NORMAL);
    struct cmd *c = sh("python3 '%s' client %d 2>&1", peers_script(), sv.port);
    if (c->status != 0) {
        fprintf(stderr, "%s", c->out);
    }
    CN_ASSERT_EQ(c->status, 0);
    CN_ASSERT_STREQ(c->out, "ok\n");
    CN_ASSERT_EQ(sv.conns, 1);
    free(c);
    srv_stop(&sv);
    return 0;
}

static void server_answers_python_http_client(void)
{
    if (!have("python3")) {
        CN_TEST_SKIP_BECAUSE("no python3");
    }
    peers_script();
    CN_ASSERT_EQ(cn_test_run(python_client_main, NULL), 0);
}

/* ---- the server against bad requests ----------------------------------------------------- */

struct bad_case {
    const char *req; /* NULL: built by the case */
    size_t len;
    const char *status; /* the expected status line prefix */
    int rc;             /* read_request's failure */
    struct cn_http_limits limits;
};

static int bad_main(void *arg)
{
    struct bad_case *b = arg;
    struct srv sv;
    srv_start(&sv, &b->limits, NORMAL);
    char *out = malloc(65536);
    size_t n = raw(sv.port, b->req, b->len, out, 65536);
    CN_ASSERT_GT(n, 0);
    if (!starts(out, b->status)) {
        fprintf(stderr, "got: %s\n", out);
    }
    CN_ASSERT(starts(out, b->status));
    CN_ASSERT(strstr(out, "Connection: close\r\n") != NULL);
    CN_ASSERT_EQ(count(out, "HTTP/1.1 "), 1);
    free(out);
    srv_stop(&sv);
    CN_ASSERT_EQ(sv.last_rc, b->rc);
    return 0;
}

static void run_bad(const char *req, const char *status, int rc)
{
    struct bad_case b = {req, strlen(req), status, rc, {0}};
    CN_ASSERT_EQ(cn_test_run(bad_main, &b), 0);
}

static void server_rejects_garbage_request_line_with_400(void)
{
    run_bad("GARBAGE\r\n\r\n", "HTTP/1.1 400 ", CN_EHTTP_PARSE);
}

static void server_rejects_request_without_host_with_400(void)
{
    run_bad("GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ", CN_EHTTP_PARSE);
}

static void server_rejects_bad_chunked_body_with_400(void)
{
    /* the head is fine: the handler's body read fails, and says 400 */
    run_bad("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\nZZ\r\n\r\n",
            "HTTP/1.1 400 ", 0);
}

static void server_rejects_smuggling_with_400(void)
{
    run_bad("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n",
            "HTTP/1.1 400 ", CN_EHTTP_PARSE);
}

static void server_rejects_huge_header_with_431(void)
{
    size_t n = 20 * 1024;
    char *req = malloc(n + 64);
    int k = snprintf(req, n + 64, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
    memset(req + k, 'x', n);
    strcpy(req + k + n, "\r\n\r\n");
    struct bad_case b = {req,
                         strlen(req),
                         "HTTP/1.1 431 ",
                         CN_EHTTP_HEADER_TOO_LARGE,
                         {.max_header_bytes = 16 * 1024}};
    CN_ASSERT_EQ(cn_test_run(bad_main, &b), 0);
    free(req);
}

static void server_rejects_declared_body_over_limit_with_413(void)
{
    struct bad_case b = {
        NULL, 0, "HTTP/1.1 413 ", CN_EHTTP_BODY_TOO_LARGE, {.max_body_bytes = 1000}};
    b.req = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n";
    b.len = strlen(b.req);
    CN_ASSERT_EQ(cn_test_run(bad_main, &b), 0);
}

static void server_rejects_chunked_body_over_limit_with_413(void)
{
    char req[4096];
    int k = snprintf(req, sizeof req,
                     "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        k += snprintf(req + k, sizeof req - (size_t)k, "200\r\n");
        memset(req + k, 'b', 512);
        k += 512;
        k += snprintf(req + k, sizeof req - (size_t)k, "\r\n");
    }
    /* the handler's body read fails and says 413 */
    struct bad_case b = {req, (size_t)k, "HTTP/1.1 413 ", 0, {.max_body_bytes = 1000}};
    CN_ASSERT_EQ(cn_test_run(bad_main, &b), 0);
}

static void server_times_out_slow_header_with_408(void)
{
    struct bad_case b = {"GET / HTTP/1.1\r\nHost: a\r\nX-Half",
                         0,
                         "HTTP/1.1 408 ",
                         -ETIMEDOUT,
                         {.header_timeout_ms = 200}};
    b.len = strlen(b.req);
    CN_ASSERT_EQ(cn_test_run(bad_main, &b), 0);
}

/* ---- pipelining, Expect, upgrade, cn_http_serve ---------------------------------------- */

struct served {
    struct cn_tcp_listener *l;
    struct cn_co *co;
    int rc;
};

static int serve_co(void *arg)
{
    struct served *s = arg;
    s->rc = cn_http_serve(s->l, handle, NULL, NULL);
    return 0;
}

/* arg: {struct served *, struct cn_http_serve_opts *} */
static int serve_tls_co(void *arg)
{
    struct served *s = ((struct served **)arg)[0];
    const struct cn_http_serve_opts *o = ((struct cn_http_serve_opts **)arg)[1];
    s->rc = cn_http_serve(s->l, handle, NULL, o);
    return 0;
}

static void served_start(struct served *s)
{
    CN_ASSERT_EQ(cn_tcp_listen(&s->l, "127.0.0.1", 0, NULL), 0);
    CN_ASSERT_EQ(cn_spawn(&s->co, serve_co, s, NULL), 0);
}

static void served_stop(struct served *s)
{
    cn_cancel(s->co);
    CN_ASSERT_EQ(cn_join(s->co, NULL, -1), 0);
    CN_ASSERT_EQ(s->rc, -ECANCELED);
    cn_tcp_listener_close(s->l);
}

static int pipeline_main(void *arg)
{
    struct served s;
    served_start(&s);
    const char req[] = "GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
                       "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nsecond"
                       "GET /third HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    char out[4096];
    raw(cn_tcp_listener_port(s.l), req, sizeof req - 1, out, sizeof out);
    const char *a = strstr(out, "GET /first");
    const char *b = strstr(out, "\r\n\r\nsecond");
    const char *c = strstr(out, "GET /third");
    CN_ASSERT(a && b && c && a < b && b < c);
    CN_ASSERT_EQ(count(out, "HTTP/1.1 200 OK"), 3);
    served_stop(&s);
    return 0;
}

static void server_answers_pipelined_requests_in_order(void)
{
    CN_ASSERT_EQ(cn_test_run(pipeline_main, NULL), 0);
}

static int upgrade_main(void *arg)
{
    struct served s;
    served_start(&s);
    /* the first bytes of the new protocol ride in the same write */
    const char req[] = "GET /upgrade HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\n"
                       "Connection: Upgrade\r\n\r\nhello";
    char out[4096];
    raw(cn_tcp_listener_port(s.l), req, sizeof req - 1, out, sizeof out);
    CN_ASSERT(starts(out, "HTTP/1.1 101 Switching Protocols\r\n"));
    CN_ASSERT(strstr(out, "Content-Length") == NULL);
    const char *end = strstr(out, "\r\n\r\n");
    CN_ASSERT(end != NULL);
    CN_ASSERT_STREQ(end + 4, "world");
    served_stop(&s);
    return 0;
}

static void server_upgrade_hands_over_buffered_bytes(void)
{
    CN_ASSERT_EQ(cn_test_run(upgrade_main, NULL), 0);
}

static int expect_main(void *arg)
{
    struct served s;
    served_start(&s);
    struct cn_stream *c;
    CN_ASSERT_EQ(cn_tcp_connect(&c, "127.0.0.1", cn_tcp_listener_port(s.l), NULL, soon()), 0);
    const char head[] = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                        "Expect: 100-continue\r\n\r\n";
    CN_ASSERT_EQ(cn_stream_write(c, head, sizeof head - 1, soon()), 0);
    char buf[512];
    const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    CN_ASSERT_EQ(cn_stream_read_exact(c, buf, sizeof cont - 1, soon()), sizeof cont - 1);
    CN_ASSERT_MEMEQ(buf, cont, sizeof cont - 1);
    CN_ASSERT_EQ(cn_stream_write(c, "body", 4, soon()), 0);
    ssize_t n = cn_stream_read(c, buf, sizeof buf - 1, soon());
    CN_ASSERT_GT(n, 0);
    buf[n] = '\0';
    CN_ASSERT(starts(buf, "HTTP/1.1 200 OK\r\n"));
    CN_ASSERT(strstr(buf, "\r\n\r\nbody") != NULL);
    cn_stream_close(c);
    served_stop(&s);
    return 0;
}

static void server_answers_expect_100_continue(void)
{
    CN_ASSERT_EQ(cn_test_run(expect_main, NULL), 0);
}

/* ---- the client against python http.server ----------------------------------------------- */

static struct cn_http_response *get(struct cn_http_client *cl, const char *method, int port,
                                    const char *path, int expect_rc)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct cn_http_client_request req = {.method = method, .url = url};
    struct cn_http_response *r = NULL;
    CN_ASSERT_EQ(cn_http_client_request(cl, &req, &r, soon()), expect_rc);
    return r;
}

static void check_pattern(const struct cn_http_response *r, size_t n)
{
    char *want = malloc(n + 1);
    pattern(want, n);
    CN_ASSERT_EQ(r->status, 200);
    CN_ASSERT_EQ(r->body_len, n);
    CN_ASSERT_MEMEQ(r->body, want, n);
    free(want);
}

static int python_server_main(void *arg)
{
    struct py *py = arg;
    struct cn_http_client *cl;
    CN_ASSERT_EQ(cn_http_client_new(&cl, NULL), 0);
    struct cn_http_response *r = get(cl, NULL, py->port, "/fixed?n=100000", 0);
    check_pattern(r, 100000);
    cn_http_response_free(r);
    r = get(cl, NULL, py->port, "/chunked?n=70000&k=7", 0);
    check_pattern(r, 70000);
    CN_ASSERT_EQ(r->content_length, -1);
    cn_http_response_free(r);
    r = get(cl, "HEAD", py->port, "/fixed?n=10", 0);
    CN_ASSERT_EQ(r->status, 200);
    CN_ASSERT_EQ(r->content_length, 10);
    CN_ASSERT_EQ(r->body_len, 0);
    cn_http_response_free(r);
    r = get(cl, NULL, py->port, "/port", 0);
    char first[16];
    snprintf(first, sizeof first, "%.*s", (int)r->body_len, r->body);
    cn_http_response_free(r);
    r = get(cl, NULL, py->port, "/port", 0);
    CN_ASSERT_STREQ(r->body, first); /* keep-alive: the same connection */
    cn_http_response_free(r);
    r = get(cl, NULL, py->port, "/redirect", 0);
    CN_ASSERT_EQ(r->status, 302); /* not followed */
    size_t len;
    CN_ASSERT(cn_http_header_find(r->headers, r->nheaders, "location", &len) != NULL);
    cn_http_response_free(r);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", py->port);
    struct cn_http_client_request post = {
        .method = "POST", .url = url, .body = "payload", .body_len = 7};
    CN_ASSERT_EQ(cn_http_client_request(cl, &post, &r, soon()), 0);
    CN_ASSERT_EQ(r->body_len, 7);
    CN_ASSERT_STREQ(r->body, "payload");
    cn_http_response_free(r);
    r = get(cl, NULL, py->port, "/eof?n=50000", 0);
    check_pattern(r, 50000);
    CN_ASSERT(!r->keep_alive);
    cn_http_response_free(r);
    cn_http_client_close(cl);
    return 0;
}

static void client_talks_to_python_http_server(void)
{
    struct py py;
    py_start(&py);
    CN_ASSERT_EQ(cn_test_run(python_server_main, &py), 0);
    py_stop(&py);
}

/* ---- the client against the server here ------------------------------------------------- */

static int own_server_main(void *arg)
{
    struct srv sv;
    srv_start(&sv, NULL, NORMAL);
    struct cn_http_client *cl;
    CN_ASSERT_EQ(cn_http_client_new(&cl, NULL), 0);
    struct cn_http_response *r = get(cl, NULL, sv.port, "/stream?n=123457", 0);
    check_pattern(r, 123457);
    cn_http_response_free(r);
    r = get(cl, NULL, sv.port, "/big?n=200000", 0);
    check_pattern(r, 200000);
    cn_http_response_free(r);
    /* a streamed body read in odd pieces */
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/stream?n=99999", sv.port);
    struct cn_http_client_request req = {.url = url, .stream_body = true};
    CN_ASSERT_EQ(cn_http_client_request(cl, &req, &r, soon()), 0);
    char *got = malloc(100000), *want = malloc(99999);
    pattern(want, 99999);
    size_t total = 0;
    ssize_t n;
    while ((n = cn_http_response_read_body(
                r, got + total, 100000 - total < 777 ? 100000 - total : 777, soon())) > 0) {
        total += (size_t)n;
    }
    CN_ASSERT_EQ(n, 0);
    CN_ASSERT_EQ(total, 99999);
    CN_ASSERT_MEMEQ(got, want, 99999);
    cn_http_response_free(r);
    free(got);
    free(want);
    CN_ASSERT_EQ(sv.conns, 1);
    cn_http_client_close(cl);
    srv_stop(&sv);
    return 0;
}

static void client_talks_to_own_server_over_one_connection(void)
{
    CN_ASSERT_EQ(cn_test_run(own_server_main, NULL), 0);
}

struct pool_job {
    struct cn_http_client *cl;
    int port;
    int ok;
};

static int pool_one(void *arg)
{
    struct pool_job *j = arg;
    struct cn_http_response *r = get(j->cl, NULL, j->port, "/slow", 0);
    CN_ASSERT_EQ(r->status, 200);
    CN_ASSERT_STREQ(r->body, "GET /slow ");
    cn_http_response_free(r);
    j->ok++;
    return 0;
}

static int pool_main(void *arg)
{
    struct srv sv;
    srv_start(&sv, NULL, NORMAL);
    struct cn_http_client_opts o = {.max_conns_per_host = 4};
    struct cn_http_client *cl;
    CN_ASSERT_EQ(cn_http_client_new(&cl, &o), 0);
    struct pool_job j = {cl, sv.port, 0};
    struct cn_group *g;
    CN_ASSERT_EQ(cn_group_new(&g), 0);
    for (int i = 0; i < 100; i++) {
        CN_ASSERT_EQ(cn_group_spawn(g, pool_one, &j, NULL), 0);
    }
    CN_ASSERT_EQ(cn_group_wait(g, cn_now() + 60000), 0);
    cn_group_close(g);
    CN_ASSERT_EQ(j.ok, 100);
    CN_ASSERT_LE(sv.conns, 4);
    CN_ASSERT_LE(sv.max_open, 4);
    cn_http_client_close(cl);
    srv_stop(&sv);
    return 0;
}

static void client_pool_bounds_connections_per_host(void)
{
    CN_ASSERT_EQ(cn_test_run(pool_main, NULL), 0);
}

static int stale_main(void *arg)
{
    struct srv sv;
    srv_start(&sv, NULL, STALE_SECOND);
    struct cn_http_client *cl;
    CN_ASSERT_EQ(cn_http_client_new(&cl, NULL), 0);
    cn_http_response_free(get(cl, NULL, sv.port, "/a", 0));
    /* the pooled connection dies under the GET: retried on a new one */
    struct cn_http_response *r = get(cl, NULL, sv.port, "/b", 0);
    CN_ASSERT_STREQ(r->body, "GET /b ");
    cn_http_response_free(r);
    CN_ASSERT_EQ(sv.conns, 2);
    /* a POST is not retried unless allowed */
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", sv.port);
    struct cn_http_client_request post = {.method = "POST", .url = url, .body = "x", .body_len = 1};
    CN_ASSERT_EQ(cn_http_client_request(cl, &post, &r, soon()), CN_EOF);
    cn_http_response_free(get(cl, NULL, sv.port, "/c", 0));
    CN_ASSERT_EQ(sv.conns, 3);
    post.retry_unsafe = true;
    CN_ASSERT_EQ(cn_http_client_request(cl, &post, &r, soon()), 0);
    CN_ASSERT_STREQ(r->body, "x");
    cn_http_response_free(r);
    CN_ASSERT_EQ(sv.conns, 4);
    cn_http_client_close(cl);
    srv_stop(&sv);
    return 0;
}

static void client_retries_once_on_connection_closed_by_server(void)
{
    CN_ASSERT_EQ(cn_test_run(stale_main, NULL), 0);
}

static int silent_main(void *arg)
{
    struct srv sv;
    srv_start(&sv, NULL, SILENT);
    struct cn_http_client *cl;
    CN_ASSERT_EQ(cn_http_client_new(&cl, NULL), 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", sv.port);
    struct cn_http_client_request req = {.url = url};
    struct cn_http_response *r = NULL;
    int64_t deadline = cn_now() + 200;
    CN_ASSERT_EQ(cn_http_client_request(cl, &req, &r, deadline), -ETIMEDOUT);
    CN_ASSERT_GE(cn_now(), deadline);
    CN_ASSERT_EQ(cn_http_client_request(cl, &req, &r, cn_now() + 200), -ETIMEDOUT);
    CN_ASSERT_EQ(sv.conns, 2); /* the timed-out connection was not reused */
    cn_http_client_close(cl);
    srv_stop(&sv);
    return 0;
}

static void client_times_out_and_drops_the_connection(void)
{
    CN_ASSERT_EQ(cn_test_run(silent_main, NULL), 0);
}

static int body_limit_main(void *arg)
{
    struct srv sv;
    srv_start(&sv, NULL, NORMAL);
    struct cn_http_client_opts o = {.limits.max_body_bytes = 1000};
    struct cn_http_client *cl;
    CN_ASSERT_EQ(cn_http_client_new(&cl, &o), 0);
    get(cl, NULL, sv.port, "/big?n=5000", CN_EHTTP_BODY_TOO_LARGE);
    get(cl, NULL, sv.port, "/stream?n=5000", CN_EHTTP_BODY_TOO_LARGE);
    cn_http_response_free(get(cl, NULL, sv.port, "/big?n=1000", 0));
    CN_ASSERT_EQ(sv.conns, 3);
    cn_http_client_close(cl);
    srv_stop(&sv);
    return 0;
}

static void client_rejects_body_over_limit(void)
{
    CN_ASSERT_EQ(cn_test_run(body_limit_main, NULL), 0);
}

static int reap_main(void *arg)
{
    struct srv sv;
    srv_start(&sv, NULL, NORMAL);
    struct cn_http_client_opts o = {.idle_timeout_ms = 50};
    struct cn_http_client *cl;
    CN_ASSERT_EQ(cn_http_client_new(&cl, &o), 0);
    cn_http_response_free(get(cl, NULL, sv.port, "/a", 0));
    /* the reaper closes the idle connection: the server sees its end */
    CN_ASSERT_EQ(cn_event_wait(&sv.peer_eof, soon()), 0);
    CN_ASSERT_EQ(sv.peer_eofs, 1);
    cn_http_response_free(get(cl, NULL, sv.port, "/b", 0));
    CN_ASSERT_EQ(sv.conns, 2);
    cn_http_client_close(cl);
    srv_stop(&sv);
    return 0;
}

static void client_closes_idle_connections_after_timeout(void)
{
    CN_ASSERT_EQ(cn_test_run(reap_main, NULL), 0);
}

static int conn_upgrade_main(void *arg)
{
    struct served sv;
    served_start(&sv);
    struct cn_stream *tcp;
    CN_ASSERT_EQ(cn_tcp_connect(&tcp, "127.0.0.1", cn_tcp_listener_port(sv.l), NULL, soon()), 0);
    struct cn_http_client_conn *c;
    CN_ASSERT_EQ(cn_http_client_conn_new(&c, tcp, NULL), 0);
    struct cn_http_header h[2] = {cn_http_header_str("Upgrade", "echo"),
                                  cn_http_header_str("Connection", "Upgrade")};
    struct cn_http_client_request req = {
        .target = "/upgrade", .host = "localhost", .headers = h, .nheaders = 2};
    struct cn_http_response *r;
    CN_ASSERT_EQ(cn_http_client_conn_request(c, &req, &r, soon()), 0);
    CN_ASSERT_EQ(r->status, 101);
    cn_http_response_free(r);
    struct cn_stream *s;
    CN_ASSERT_EQ(cn_http_client_conn_take_stream(c, &s), 0);
    cn_http_client_conn_close(c);
    CN_ASSERT_EQ(cn_stream_write(s, "hello", 5, soon()), 0);
    char buf[5];
    CN_ASSERT_EQ(cn_stream_read_exact(s, buf, 5, soon()), 5);
    CN_ASSERT_MEMEQ(buf, "world", 5);
    cn_stream_close(s);
    served_stop(&sv);
    return 0;
}

static void client_conn_upgrades_and_takes_the_stream(void)
{
    CN_ASSERT_EQ(cn_test_run(conn_upgrade_main, NULL), 0);
}

/* ---- https: the client and cn_http_serve over TLS ---------------------------------------- */

struct tls_case {
    char dir[256];
};

static int tls_main(void *arg)
{
    struct tls_case *t = arg;
    char crt[400], key[400], ca[400];
    snprintf(crt, sizeof crt, "%s/server.pem", t->dir);
    snprintf(key, sizeof key, "%s/server.key", t->dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", t->dir);
    struct cn_tls_server_opts so = {.cert_file = crt, .key_file = key};
    struct cn_tls_client_opts co = {.ca_file = ca};
    struct cn_tls_ctx *sctx, *cctx;
    CN_ASSERT_EQ(cn_tls_server_ctx_new(&sctx, &so), 0);
    CN_ASSERT_EQ(cn_tls_client_ctx_new(&cctx, &co), 0);
    struct cn_http_serve_opts o = {.tls = sctx};
    struct served sv = {0};
    CN_ASSERT_EQ(cn_tcp_listen(&sv.l, "127.0.0.1", 0, NULL), 0);
    struct serve_tls_arg {
        struct served *sv;
        struct cn_http_serve_opts *o;
    } a = {&sv, &o};
    CN_ASSERT_EQ(cn_spawn(&sv.co, serve_tls_co, &a, NULL), 0);
    struct cn_http_client_opts copts = {.tls = cctx, .max_conns_per_host = 2};
    struct cn_http_client *cl;
    CN_ASSERT_EQ(cn_http_client_new(&cl, &copts), 0);
    char url[128];
    snprintf(url, sizeof url, "https://localhost:%d/big?n=300000", cn_tcp_listener_port(sv.l));
    for (int i = 0; i < 3; i++) {
        struct cn_http_client_request req = {.url = url};
        struct cn_http_response *r;
        CN_ASSERT_EQ(cn_http_client_request(cl, &req, &r, soon()), 0);
        check_pattern(r, 300000);
        cn_http_response_free(r);
    }
    cn_http_client_close(cl);
    served_stop(&sv);
    cn_tls_ctx_free(cctx);
    cn_tls_ctx_free(sctx);
    return 0;
}

static void client_and_server_speak_https(void)
{
    const char *root = getenv("CN_SOURCE_ROOT");
    if (!root || !have("openssl")) {
        CN_TEST_SKIP_BECAUSE("no openssl command or CN_SOURCE_ROOT");
    }
    struct tls_case t;
    snprintf(t.dir, sizeof t.dir, "/tmp/cn-http-tls-XXXXXX");
    CN_ASSERT(mkdtemp(t.dir) != NULL);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/net/certs.sh' '%s'", root, t.dir);
    CN_ASSERT_EQ(system(cmd), 0);
    CN_ASSERT_EQ(cn_test_run(tls_main, &t), 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t.dir);
    CN_ASSERT_EQ(system(cmd), 0);
}

CN_TEST_MAIN(
    CN_CASE(parser_gives_views_whatever_the_read_sizes),
    CN_CASE(parser_rejects_smuggling_and_bad_framing), CN_CASE(parser_never_reads_past_its_input),
    CN_CASE(url_parse_handles_hosts_ports_and_targets), CN_CASE(server_keeps_alive_for_curl),
    CN_CASE(server_takes_chunked_upload_from_curl), CN_CASE(server_speaks_http10_to_curl),
    CN_CASE(server_answers_python_http_client),
    CN_CASE(server_rejects_garbage_request_line_with_400),
    CN_CASE(server_rejects_request_without_host_with_400),
    CN_CASE(server_rejects_bad_chunked_body_with_400), CN_CASE(server_rejects_smuggling_with_400),
    CN_CASE(server_rejects_huge_header_with_431),
    CN_CASE(server_rejects_declared_body_over_limit_with_413),
    CN_CASE(server_rejects_chunked_body_over_limit_with_413),
    CN_CASE(server_times_out_slow_header_with_408),
    CN_CASE(server_answers_pipelined_requests_in_order),
    CN_CASE(server_upgrade_hands_over_buffered_bytes), CN_CASE(server_answers_expect_100_continue),
    CN_CASE(client_talks_to_python_http_server),
    CN_CASE(client_talks_to_own_server_over_one_connection),
    CN_CASE(client_pool_bounds_connections_per_host),
    CN_CASE(client_retries_once_on_connection_closed_by_server),
    CN_CASE(client_times_out_and_drops_the_connection), CN_CASE(client_rejects_body_over_limit),
    CN_CASE(client_closes_idle_connections_after_timeout),
    CN_CASE(client_conn_upgrades_and_takes_the_stream), CN_CASE(client_and_server_speak_https))
