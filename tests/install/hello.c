/* SPDX-License-Identifier: MIT */
/*
 * The install check (scripts/test): built out of tree against an installed
 * coronet with `pkg-config --cflags --libs coronet` and run. A coroutine
 * sends one value over a channel to the main coroutine; prints OK.
 */
#include <stdio.h>

#include <coronet/coronet.h>

static int sender(void *arg)
{
    int v = 42;
    return cn_chan_send(arg, &v, -1);
}

static int hello(void *arg)
{
    (void)arg;
    struct cn_chan *ch;
    struct cn_co *co;
    int v = 0, result = -1;
    if (cn_chan_new(&ch, sizeof v, 0) < 0) {
        return 1;
    }
    int rc = cn_spawn(&co, sender, ch, NULL);
    if (rc == 0) {
        rc = cn_chan_recv(ch, &v, -1);
        cn_join(co, &result, -1);
    }
    cn_chan_free(ch);
    return rc == 0 && result == 0 && v == 42 ? 0 : 1;
}

int main(void)
{
    int rc = cn_run(hello, NULL);
    if (rc != 0) {
        fprintf(stderr, "hello: %d %s\n", rc, cn_strerror(rc));
        return 1;
    }
    printf("OK\n");
    return 0;
}
