/* SPDX-License-Identifier: MIT */
/* Two coroutines, straight-line code: a producer sleeps and sends, a consumer
 * receives until the channel is closed. Only the sleeping coroutine waits. */
#include <stdio.h>
#include <coronet/coronet.h>

static int producer(void *arg)
{
    for (int i = 1; i <= 3; i++) {
        cn_sleep(100);
        cn_chan_send(arg, &i, -1);
    }
    cn_chan_close(arg);
    return 0;
}

static int consumer(void *arg)
{
    int64_t start = cn_now();
    int v;
    while (cn_chan_recv(arg, &v, -1) == 0) {
        printf("got %d after %lld ms\n", v, (long long)(cn_now() - start));
    }
    return 0;
}

static int start(void *arg)
{
    struct cn_chan *ch;
    struct cn_group *g;
    if (cn_chan_new(&ch, sizeof(int), 0) < 0 || cn_group_new(&g) < 0) {
        return 1;
    }
    cn_group_spawn(g, producer, ch, NULL);
    cn_group_spawn(g, consumer, ch, NULL);
    int rc = cn_group_wait(g, -1); /* both ended */
    cn_group_close(g);
    cn_chan_free(ch);
    return rc;
}

int main(void)
{
    return cn_run(start, NULL);
}
