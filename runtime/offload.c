/* SPDX-License-Identifier: MIT */
/*
 * Offload: run a blocking function on libuv's thread pool while the calling
 * coroutine parks. The request lives on the caller's stack, which is safe
 * because the caller never leaves cn_offload before libuv is done with it:
 * on timeout or cancel a job that has not started is withdrawn (uv_cancel;
 * its after-work callback still runs, with UV_ECANCELED), and a job that is
 * running is waited for, uncancellably, so its argument stays valid until it
 * returns. Its result is then dropped.
 */
#include "internal.h"

#include <errno.h>

struct job {
    uv_work_t req;
    cn_fn fn;
    void *arg;
    int result;
    bool finished;    /* after-work callback has run */
    struct cn_co *co; /* parked caller */
};

static void work(uv_work_t *req)
{
    struct job *j = req->data;
    j->result = j->fn(j->arg);
}

static void after_work(uv_work_t *req, int status)
{
    struct job *j = req->data;
    (void)status;
    j->finished = true;
    cn__wake(j->co, 0);
}

int cn_offload(cn_fn fn, void *arg, int64_t deadline)
{
    struct cn_co *co = cn__current();
    if (!co) {
        return CN_ENOTCORO;
    }
    if (cn_cancelled()) {
        return -ECANCELED;
    }
    if (deadline == 0) {
        return -ETIMEDOUT; /* a job never completes without parking */
    }
    struct job j = {.fn = fn, .arg = arg, .co = co};
    j.req.data = &j;
    int rc = uv_queue_work(cn_loop(), &j.req, work, after_work);
    if (rc != 0) {
        return rc;
    }
    rc = cn__park(deadline, 0);
    if (j.finished) {
        return j.result; /* it finished even if a timeout raced it: keep it */
    }
    /* Timed out or cancelled with the job queued or running. */
    uv_cancel((uv_req_t *)&j.req);
    while (!j.finished) {
        cn__park(-1, CN__PARK_NOCANCEL);
    }
    return rc;
}
