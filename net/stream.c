/* SPDX-License-Identifier: MIT */
/*
 * The stream interface: dispatch through the implementation's table, plus
 * the helpers every stream gets for free (read_exact, write of one buffer).
 */
#include "coronet/net.h"

#include <errno.h>

ssize_t cn_stream_read(struct cn_stream *s, void *buf, size_t n, int64_t deadline)
{
    if (n == 0) {
        return -EINVAL; /* 0 means end of stream; a zero-length read has no answer */
    }
    return s->vt->read(s, buf, n, deadline);
}

ssize_t cn_stream_read_exact(struct cn_stream *s, void *buf, size_t n, int64_t deadline)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = s->vt->read(s, (char *)buf + got, n - got, deadline);
        if (r == 0) {
            return CN_EOF;
        }
        if (r < 0) {
            return r;
        }
        got += (size_t)r;
    }
    return (ssize_t)n;
}

int cn_stream_write(struct cn_stream *s, const void *buf, size_t n, int64_t deadline)
{
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned int)n);
    if (n > UINT32_MAX) {
        return -EINVAL;
    }
    return s->vt->writev(s, &b, 1, deadline);
}

int cn_stream_writev(struct cn_stream *s, const uv_buf_t *bufs, size_t nbufs, int64_t deadline)
{
    return s->vt->writev(s, bufs, nbufs, deadline);
}

int cn_stream_shutdown(struct cn_stream *s, int64_t deadline)
{
    return s->vt->shutdown(s, deadline);
}

void cn_stream_close(struct cn_stream *s)
{
    if (s) {
        s->vt->close(s);
    }
}
