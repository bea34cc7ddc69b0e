/* SPDX-License-Identifier: MIT */
/* TCP streams against real sockets on loopback. */
#include "test.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- an echo server used by several cases ---------------------------------------- */

struct echo_server {
    struct cn_tcp_listener *l;
    struct cn_group *conns;
    struct cn_co *acceptor;
    int port;
    int64_t served;
};

static int echo_conn(void *arg)
{
    struct cn_stream *s = arg;
    enum { SIZE = 64 * 1024 };
    char *buf = malloc(SIZE);
    CN_ASSERT(buf != NULL);
    ssize_t n;
    while ((n = cn_stream_read(s, buf, SIZE, -1)) > 0) {
        if (cn_stream_write(s, buf, (size_t)n, -1) != 0) {
            break;
        }
    }
    free(buf);
    cn_stream_close(s);
    return n < 0 ? (int)n : 0;
}

static int accept_loop(void *arg)
{
    struct echo_server *e = arg;
    for (;;) {
        struct cn_stream *s;
        int rc = cn_tcp_accept(e->l, &s, -1);
        if (rc < 0) {
            return rc == -ECANCELED ? 0 : rc;
        }
        e->served++;
        CN_ASSERT_EQ(cn_group_spawn(e->conns, echo_conn, s, NULL), 0);
    }
}

static void echo_start(struct echo_server *e, const char *host)
{
    memset(e, 0, sizeof *e);
    CN_ASSERT_EQ(cn_tcp_listen(&e->l, host, 0, NULL), 0);
    e->port = cn_tcp_listener_port(e->l);
    CN_ASSERT_GT(e->port, 0);
    CN_ASSERT_EQ(cn_group_new(&e->conns), 0);
    CN_ASSERT_EQ(cn_spawn(&e->acceptor, accept_loop, e, NULL), 0);
}

static void echo_stop(struct echo_server *e)
{
    cn_cancel(e->acceptor);
    int rc = -1;
    CN_ASSERT_EQ(cn_join(e->acceptor, &rc, -1), 0);
    CN_ASSERT_EQ(rc, 0);
    cn_group_close(e->conns);
    cn_tcp_listener_close(e->l);
}

/* A byte pattern that depends on the offset, so shifts and drops show. */
static void fill(unsigned char *p, size_t n, uint64_t offset)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t x = (offset + i) * 0x9E3779B97F4A7C15ull;
        p[i] = (unsigned char)(x >> 56);
    }
}

/* ---- cases ----------------------------------------------------------------------- */

static int roundtrip_main(void *arg)
{
    const char *host = arg;
    struct echo_server e;
    echo_start(&e, host);
    struct cn_stream *c;
    CN_ASSERT_EQ(cn_tcp_connect(&c, host, e.port, NULL, cn_now() + 5000), 0);
    struct sockaddr_storage peer;
    char name[80];
    CN_ASSERT_EQ(cn_tcp_peername(c, &peer), 0);
    CN_ASSERT_EQ(cn_addr_format(&peer, name, sizeof name), 0);
    CN_ASSERT(strstr(name, "1") != NULL);
    const char msg[] = "hello, coroutine";
    CN_ASSERT_EQ(cn_stream_write(c, msg, sizeof msg, -1), 0);
    char back[sizeof msg];
    CN_ASSERT_EQ(cn_stream_read_exact(c, back, sizeof back, cn_now() + 5000), sizeof back);
    CN_ASSERT_MEMEQ(back, msg, sizeof msg);
    cn_stream_close(c);
    echo_stop(&e);
    return 0;
}

static void echo_round_trip_ipv4(void)
{
    CN_ASSERT_EQ(cn_test_run(roundtrip_main, "127.0.0.1"), 0);
}

static void echo_round_trip_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        CN_TEST_SKIP_BECAUSE("no IPv6 loopback on this machine");
    }
    close(fd);
    CN_ASSERT_EQ(cn_test_run(roundtrip_main, "::1"), 0);
}

static int by_name_main(void *arg)
{
    struct echo_server e;
    echo_start(&e, NULL); /* "::" dual stack, or 0.0.0.0 */
    struct cn_stream *c;
    CN_ASSERT_EQ(cn_tcp_connect(&c, "localhost", e.port, NULL, cn_now() + 5000), 0);
    CN_ASSERT_EQ(cn_stream_write(c, "x", 1, -1), 0);
    char b;
    CN_ASSERT_EQ(cn_stream_read(c, &b, 1, cn_now() + 5000), 1);
    CN_ASSERT_EQ(b, 'x');
    cn_stream_close(c);
    echo_stop(&e);
    return 0;
}

static void connect_resolves_host_names(void)
{
    CN_ASSERT_EQ(cn_test_run(by_name_main, NULL), 0);
}

static int bad_name_main(void *arg)
{
    struct cn_stream *c = NULL;
    int rc = cn_tcp_connect(&c, "no-such-host.invalid", 80, NULL, cn_now() + 5000);
    CN_ASSERT_LT(rc, 0);
    CN_ASSERT(c == NULL);
    return 0;
}

static void connect_to_unknown_name_fails_cleanly(void)
{
    CN_ASSERT_EQ(cn_test_run(bad_name_main, NULL), 0);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CN_ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    CN_ASSERT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int refused_main(void *arg)
{
    struct cn_stream *c = NULL;
    CN_ASSERT_EQ(cn_tcp_connect(&c, "127.0.0.1", free_port(), NULL, cn_now() + 5000),
                 -ECONNREFUSED);
    CN_ASSERT_EQ(cn_tcp_connect(&c, "127.0.0.1", 70000, NULL, -1), -EINVAL);
    return 0;
}

static void connect_refused(void)
{
    CN_ASSERT_EQ(cn_test_run(refused_main, NULL), 0);
}

static int connect_timeout_main(void *arg)
{
    /* A listener with a full accept queue drops further SYNs: connecting
     * hangs until the deadline. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CN_ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    CN_ASSERT_EQ(listen(fd, 0), 0);
    socklen_t len = sizeof a;
    CN_ASSERT_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    int port = ntohs(a.sin_port);
    struct cn_stream *held[4] = {NULL};
    int rc = 0;
    int i = 0;
    for (; i < 4; i++) {
        int64_t deadline = cn_now() + 300;
        rc = cn_tcp_connect(&held[i], "127.0.0.1", port, NULL, deadline);
        if (rc == -ETIMEDOUT) {
            CN_ASSERT_GE(cn_now(), deadline);
            break;
        }
        CN_ASSERT_EQ(rc, 0);
    }
    CN_ASSERT_EQ(rc, -ETIMEDOUT);
    for (int k = 0; k < i; k++) {
        cn_stream_close(held[k]);
    }
    close(fd);
    return 0;
}

static void connect_times_out_at_deadline(void)
{
    CN_ASSERT_EQ(cn_test_run(connect_timeout_main, NULL), 0);
}

enum { BIG = 100 * 1024 * 1024, CHUNK = 256 * 1024 };

struct big_stream {
    struct cn_stream *c;
    uint64_t sent;
};

static int send_big(void *arg)
{
    struct big_stream *b = arg;
    unsigned char *buf = malloc(CHUNK);
    CN_ASSERT(buf != NULL);
    while (b->sent < BIG) {
        size_t n = CHUNK;
        fill(buf, n, b->sent);
        /* writev of two halves exercises the vectored path */
        uv_buf_t v[2] = {uv_buf_init((char *)buf, (unsigned)(n / 3)),
                         uv_buf_init((char *)buf + n / 3, (unsigned)(n - n / 3))};
        CN_ASSERT_EQ(cn_stream_writev(b->c, v, 2, -1), 0);
        b->sent += n;
    }
    CN_ASSERT_EQ(cn_stream_shutdown(b->c, -1), 0);
    free(buf);
    return 0;
}

static int big_main(void *arg)
{
    struct echo_server e;
    echo_start(&e, "127.0.0.1");
    struct big_stream b = {NULL, 0};
    CN_ASSERT_EQ(cn_tcp_connect(&b.c, "127.0.0.1", e.port, NULL, -1), 0);
    struct cn_co *sender;
    CN_ASSERT_EQ(cn_spawn(&sender, send_big, &b, NULL), 0);
    unsigned char *got = malloc(CHUNK), *want = malloc(CHUNK);
    uint64_t received = 0;
    ssize_t n;
    /* reads of odd sizes, so chunk boundaries never line up */
    while ((n = cn_stream_read(b.c, got, 100003, cn_now() + 30000)) > 0) {
        fill(want, (size_t)n, received);
        CN_ASSERT_MEMEQ(got, want, (size_t)n);
        received += (uint64_t)n;
    }
    CN_ASSERT_EQ(n, 0); /* the server closed after our shutdown */
    CN_ASSERT_EQ(received, BIG);
    CN_ASSERT_EQ(cn_join(sender, NULL, -1), 0);
    free(got);
    free(want);
    cn_stream_close(b.c);
    echo_stop(&e);
    return 0;
}

static void stress_100_mib_through_echo_server_intact(void)
{
    CN_ASSERT_EQ(cn_test_run(big_main, NULL), 0);
}

enum { CONNS = 1000 };

struct client_arg {
    int port;
    int id;
};

static int one_client(void *arg)
{
    struct client_arg *a = arg;
    struct cn_stream *c;
    int rc = cn_tcp_connect(&c, "127.0.0.1", a->port, NULL, cn_now() + 20000);
    if (rc != 0) {
        return rc;
    }
    unsigned char out[1024], in[1024];
    fill(out, sizeof out, (uint64_t)a->id * 4096);
    for (int round = 0; round < 3; round++) {
        CN_ASSERT_EQ(cn_stream_write(c, out, sizeof out, -1), 0);
        CN_ASSERT_EQ(cn_stream_read_exact(c, in, sizeof in, cn_now() + 20000), sizeof in);
        CN_ASSERT_MEMEQ(in, out, sizeof out);
    }
    cn_stream_close(c);
    return 0;
}

static int thousand_main(void *arg)
{
    struct echo_server e;
    echo_start(&e, "127.0.0.1");
    static struct client_arg args[CONNS];
    struct cn_group *clients;
    CN_ASSERT_EQ(cn_group_new(&clients), 0);
    for (int i = 0; i < CONNS; i++) {
        args[i] = (struct client_arg){e.port, i};
        CN_ASSERT_EQ(cn_group_spawn(clients, one_client, &args[i], NULL), 0);
    }
    CN_ASSERT_EQ(cn_group_wait(clients, -1), 0);
    cn_group_close(clients);
    CN_ASSERT_EQ(e.served, CONNS);
    echo_stop(&e);
    return 0;
}

static void stress_1000_concurrent_connections(void)
{
    CN_ASSERT_EQ(cn_test_run(thousand_main, NULL), 0);
}

/* A server that reads everything until EOF, then answers with the count. */
static int count_then_reply(void *arg)
{
    struct cn_tcp_listener *l = arg;
    struct cn_stream *s;
    CN_ASSERT_EQ(cn_tcp_accept(l, &s, -1), 0);
    char buf[4096];
    uint64_t total = 0;
    ssize_t n;
    while ((n = cn_stream_read(s, buf, sizeof buf, -1)) > 0) {
        total += (uint64_t)n;
    }
    CN_ASSERT_EQ(n, 0);
    CN_ASSERT_EQ(cn_stream_write(s, &total, sizeof total, -1), 0);
    cn_stream_close(s);
    return 0;
}

static int half_close_main(void *arg)
{
    struct cn_tcp_listener *l;
    CN_ASSERT_EQ(cn_tcp_listen(&l, "127.0.0.1", 0, NULL), 0);
    struct cn_co *server;
    CN_ASSERT_EQ(cn_spawn(&server, count_then_reply, l, NULL), 0);
    struct cn_stream *c;
    CN_ASSERT_EQ(cn_tcp_connect(&c, "127.0.0.1", cn_tcp_listener_port(l), NULL, -1), 0);
    char data[10000];
    memset(data, 'a', sizeof data);
    CN_ASSERT_EQ(cn_stream_write(c, data, sizeof data, -1), 0);
    CN_ASSERT_EQ(cn_stream_shutdown(c, -1), 0);
    CN_ASSERT_EQ(cn_stream_write(c, data, 1, -1), -EPIPE); /* our side is closed */
    uint64_t total = 0;
    CN_ASSERT_EQ(cn_stream_read_exact(c, &total, sizeof total, cn_now() + 5000), sizeof total);
    CN_ASSERT_EQ(total, sizeof data);
    char b;
    CN_ASSERT_EQ(cn_stream_read(c, &b, 1, cn_now() + 5000), 0); /* then their EOF */
    CN_ASSERT_EQ(cn_stream_read(c, &b, 1, cn_now() + 5000), 0); /* and it stays */
    CN_ASSERT_EQ(cn_stream_read_exact(c, &b, 1, -1), CN_EOF);
    CN_ASSERT_EQ(cn_join(server, NULL, -1), 0);
    cn_stream_close(c);
    cn_tcp_listener_close(l);
    return 0;
}

static void half_close_lets_the_peer_answer(void)
{
    CN_ASSERT_EQ(cn_test_run(half_close_main, NULL), 0);
}

static int reset_main(void *arg)
{
    /* A raw peer that accepts and then resets (SO_LINGER 0). */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CN_ASSERT_EQ(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    CN_ASSERT_EQ(listen(lfd, 4), 0);
    socklen_t len = sizeof a;
    CN_ASSERT_EQ(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    struct cn_stream *c;
    CN_ASSERT_EQ(cn_tcp_connect(&c, "127.0.0.1", ntohs(a.sin_port), NULL, -1), 0);
    int fd = accept(lfd, NULL, NULL);
    CN_ASSERT_GE(fd, 0);
    /* fill the peer's receive buffer so our writes park, then reset */
    static char chunk[1 << 20];
    int rc = 0;
    for (int i = 0; i < 64 && rc == 0; i++) {
        rc = cn_stream_write(c, chunk, sizeof chunk, cn_now() + 50);
        if (rc == -ETIMEDOUT) {
            break;
        }
    }
    CN_ASSERT_EQ(rc, -ETIMEDOUT);                             /* the kernel buffers are full */
    CN_ASSERT_EQ(cn_stream_write(c, "x", 1, -1), CN_EBROKEN); /* and the stream is torn down */
    cn_stream_close(c);

    /* Now a clean stream whose peer resets while we write. */
    CN_ASSERT_EQ(cn_tcp_connect(&c, "127.0.0.1", ntohs(a.sin_port), NULL, -1), 0);
    int fd2 = accept(lfd, NULL, NULL);
    CN_ASSERT_GE(fd2, 0);
    struct linger lg = {1, 0};
    CN_ASSERT_EQ(setsockopt(fd2, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(fd2); /* RST */
    rc = 0;
    for (int i = 0; i < 64 && rc >= 0; i++) {
        rc = cn_stream_write(c, chunk, sizeof chunk, cn_now() + 5000);
    }
    CN_ASSERT(rc == -ECONNRESET || rc == -EPIPE);
    char b;
    ssize_t r = cn_stream_read(c, &b, 1, cn_now() + 5000);
    CN_ASSERT(r == -ECONNRESET || r == 0);
    cn_stream_close(c);
    close(fd);
    close(lfd);
    return 0;
}

static void write_deadline_and_peer_reset_mid_write(void)
{
    CN_ASSERT_EQ(cn_test_run(reset_main, NULL), 0);
}

static int silent_accept(void *arg)
{
    struct cn_tcp_listener *l = arg;
    struct cn_stream *s;
    CN_ASSERT_EQ(cn_tcp_accept(l, &s, -1), 0);
    char b;
    ssize_t n;
    /* reads what the client sends, then its close */
    while ((n = cn_stream_read(s, &b, 1, cn_now() + 10000)) > 0) {
    }
    CN_ASSERT_EQ(n, 0);
    cn_stream_close(s);
    return 0;
}

static int read_deadline_main(void *arg)
{
    struct cn_tcp_listener *l;
    CN_ASSERT_EQ(cn_tcp_listen(&l, "127.0.0.1", 0, NULL), 0);
    struct cn_co *server;
    CN_ASSERT_EQ(cn_spawn(&server, silent_accept, l, NULL), 0);
    struct cn_stream *c;
    CN_ASSERT_EQ(cn_tcp_connect(&c, "127.0.0.1", cn_tcp_listener_port(l), NULL, -1), 0);
    char buf[16];
    int64_t deadline = cn_now() + 30;
    CN_ASSERT_EQ(cn_stream_read(c, buf, sizeof buf, deadline), -ETIMEDOUT);
    CN_ASSERT_GE(cn_now(), deadline);
    CN_ASSERT_EQ(cn_stream_read(c, buf, sizeof buf, 0), -ETIMEDOUT); /* try once */
    CN_ASSERT_EQ(cn_stream_read(c, buf, 4096, 0), -ETIMEDOUT);       /* direct path too */
    CN_ASSERT_EQ(cn_stream_write(c, "ok", 2, -1), 0);                /* still usable */
    cn_stream_close(c);
    CN_ASSERT_EQ(cn_join(server, NULL, -1), 0);
    cn_tcp_listener_close(l);
    return 0;
}

static void read_times_out_at_deadline_and_stream_stays_usable(void)
{
    CN_ASSERT_EQ(cn_test_run(read_deadline_main, NULL), 0);
}

static int read_forever(void *arg)
{
    char buf[8];
    return (int)cn_stream_read(arg, buf, sizeof buf, -1);
}

static int read_cancel_main(void *arg)
{
    struct echo_server e;
    echo_start(&e, "127.0.0.1");
    struct cn_stream *c;
    CN_ASSERT_EQ(cn_tcp_connect(&c, "127.0.0.1", e.port, NULL, -1), 0);
    struct cn_co *reader;
    CN_ASSERT_EQ(cn_spawn(&reader, read_forever, c, NULL), 0);
    CN_ASSERT_EQ(cn_sleep(5), 0);
    cn_cancel(reader);
    int rc = 0;
    CN_ASSERT_EQ(cn_join(reader, &rc, -1), 0);
    CN_ASSERT_EQ(rc, -ECANCELED);
    /* the stream is still fine for the next reader */
    CN_ASSERT_EQ(cn_stream_write(c, "abc", 3, -1), 0);
    char buf[3];
    CN_ASSERT_EQ(cn_stream_read_exact(c, buf, 3, cn_now() + 5000), 3);
    CN_ASSERT_MEMEQ(buf, "abc", 3);
    cn_stream_close(c);
    echo_stop(&e);
    return 0;
}

static void read_cancelled_and_stream_stays_usable(void)
{
    CN_ASSERT_EQ(cn_test_run(read_cancel_main, NULL), 0);
}

static int accept_forever(void *arg)
{
    struct cn_stream *s;
    return cn_tcp_accept(arg, &s, -1);
}

static int accept_cancel_main(void *arg)
{
    struct cn_tcp_listener *l;
    CN_ASSERT_EQ(cn_tcp_listen(&l, "127.0.0.1", 0, NULL), 0);
    struct cn_stream *s;
    int64_t deadline = cn_now() + 20;
    CN_ASSERT_EQ(cn_tcp_accept(l, &s, deadline), -ETIMEDOUT);
    CN_ASSERT_GE(cn_now(), deadline);
    struct cn_co *acceptor;
    CN_ASSERT_EQ(cn_spawn(&acceptor, accept_forever, l, NULL), 0);
    CN_ASSERT_EQ(cn_yield(), 0);
    cn_cancel(acceptor);
    int rc = 0;
    CN_ASSERT_EQ(cn_join(acceptor, &rc, -1), 0);
    CN_ASSERT_EQ(rc, -ECANCELED);
    /* the listener still accepts */
    struct cn_stream *c;
    CN_ASSERT_EQ(cn_tcp_connect(&c, "127.0.0.1", cn_tcp_listener_port(l), NULL, -1), 0);
    CN_ASSERT_EQ(cn_tcp_accept(l, &s, cn_now() + 5000), 0);
    cn_stream_close(s);
    cn_stream_close(c);
    /* closing wakes a parked acceptor with CN_ECLOSED */
    CN_ASSERT_EQ(cn_spawn(&acceptor, accept_forever, l, NULL), 0);
    CN_ASSERT_EQ(cn_yield(), 0);
    cn_tcp_listener_close(l);
    CN_ASSERT_EQ(cn_join(acceptor, &rc, -1), 0);
    CN_ASSERT_EQ(rc, CN_ECLOSED);
    return 0;
}

static void accept_times_out_is_cancelled_and_wakes_on_close(void)
{
    CN_ASSERT_EQ(cn_test_run(accept_cancel_main, NULL), 0);
}

struct writer_arg {
    struct cn_stream *c;
    char tag;
};

static int write_tagged(void *arg)
{
    struct writer_arg *w = arg;
    static char msg[2][300000];
    char *m = msg[w->tag - 'A'];
    memset(m, w->tag, sizeof msg[0]);
    for (int i = 0; i < 5; i++) {
        CN_ASSERT_EQ(cn_stream_write(w->c, m, sizeof msg[0], -1), 0);
    }
    return 0;
}

static int writers_main(void *arg)
{
    struct echo_server e;
    echo_start(&e, "127.0.0.1");
    struct cn_stream *c;
    CN_ASSERT_EQ(cn_tcp_connect(&c, "127.0.0.1", e.port, NULL, -1), 0);
    struct writer_arg wa = {c, 'A'}, wb = {c, 'B'};
    struct cn_co *a, *b;
    CN_ASSERT_EQ(cn_spawn(&a, write_tagged, &wa, NULL), 0);
    CN_ASSERT_EQ(cn_spawn(&b, write_tagged, &wb, NULL), 0);
    /* every 300000-byte message must arrive whole: AAAA... or BBBB... */
    static char buf[300000];
    for (int i = 0; i < 10; i++) {
        CN_ASSERT_EQ(cn_stream_read_exact(c, buf, sizeof buf, cn_now() + 20000), sizeof buf);
        for (size_t k = 1; k < sizeof buf; k++) {
            if (buf[k] != buf[0]) {
                CN_ASSERT_EQ(buf[k], buf[0]);
            }
        }
    }
    CN_ASSERT_EQ(cn_join(a, NULL, -1), 0);
    CN_ASSERT_EQ(cn_join(b, NULL, -1), 0);
    cn_stream_close(c);
    echo_stop(&e);
    return 0;
}

static void concurrent_writers_never_interleave(void)
{
    CN_ASSERT_EQ(cn_test_run(writers_main, NULL), 0);
}

static int reuseport_main(void *arg)
{
    struct cn_tcp_opts opts = {.reuseport = true};
    struct cn_tcp_listener *a, *b;
    CN_ASSERT_EQ(cn_tcp_listen(&a, "127.0.0.1", 0, &opts), 0);
    CN_ASSERT_EQ(cn_tcp_listen(&b, "127.0.0.1", cn_tcp_listener_port(a), &opts), 0);
    CN_ASSERT_EQ(cn_tcp_listener_port(a), cn_tcp_listener_port(b));
    struct cn_tcp_listener *c;
    CN_ASSERT_EQ(cn_tcp_listen(&c, "127.0.0.1", cn_tcp_listener_port(a), NULL), -EADDRINUSE);
    cn_tcp_listener_close(a);
    cn_tcp_listener_close(b);
    return 0;
}

static void reuseport_lets_listeners_share_a_port(void)
{
    CN_ASSERT_EQ(cn_test_run(reuseport_main, NULL), 0);
}

CN_TEST_MAIN(CN_CASE(echo_round_trip_ipv4), CN_CASE(echo_round_trip_ipv6),
             CN_CASE(connect_resolves_host_names), CN_CASE(connect_to_unknown_name_fails_cleanly),
             CN_CASE(connect_refused), CN_CASE(connect_times_out_at_deadline),
             CN_CASE(stress_100_mib_through_echo_server_intact),
             CN_CASE(stress_1000_concurrent_connections), CN_CASE(half_close_lets_the_peer_answer),
             CN_CASE(write_deadline_and_peer_reset_mid_write),
             CN_CASE(read_times_out_at_deadline_and_stream_stays_usable),
             CN_CASE(read_cancelled_and_stream_stays_usable),
             CN_CASE(accept_times_out_is_cancelled_and_wakes_on_close),
             CN_CASE(concurrent_writers_never_interleave),
             CN_CASE(reuseport_lets_listeners_share_a_port))
