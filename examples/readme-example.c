/* SPDX-License-Identifier: MIT */
/* An echo server: one coroutine per connection, written straight-line. */
#include <stdio.h>
#include <stdlib.h>
#include <coronet/coronet.h>

static int echo(void *conn)
{
    char buf[4096];
    ssize_t n;
    while ((n = cn_stream_read(conn, buf, sizeof buf, -1)) > 0) {
        if (cn_stream_write(conn, buf, (size_t)n, cn_now() + 10000) != 0) {
            break; /* peer gone, or stuck for 10 s */
        }
    }
    cn_stream_close(conn);
    return 0;
}

static int serve(void *port)
{
    struct cn_tcp_listener *l;
    struct cn_stream *conn;
    int rc = cn_tcp_listen(&l, "127.0.0.1", *(int *)port, NULL);
    if (rc < 0) {
        return rc;
    }
    printf("listening on 127.0.0.1:%d\n", cn_tcp_listener_port(l));
    fflush(stdout);
    while ((rc = cn_tcp_accept(l, &conn, -1)) == 0) {
        cn_spawn(NULL, echo, conn, NULL); /* detached: frees itself */
    }
    cn_tcp_listener_close(l);
    return rc;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 7000;
    int rc = cn_run(serve, &port);
    fprintf(stderr, "echo: %s\n", cn_strerror(rc));
    return 1;
}
