/* SPDX-License-Identifier: MIT */
/*
 * coronet runtime: stackful coroutines scheduled on a libuv loop.
 *
 * One scheduler per uv_loop_t, one loop per thread. Every coroutine of a
 * scheduler runs on that loop's thread; coroutines never move between threads.
 * Objects in this header belong to their loop's thread unless a function says
 * "thread-safe".
 *
 * Time is the loop clock in milliseconds (uv_now). Every blocking call takes an
 * absolute deadline on that clock: -1 means none, 0 means "try once, never
 * park", and any other value is compared with cn_now(). A blocking call
 * returns -ETIMEDOUT when its deadline passes and -ECANCELED once the calling
 * coroutine has been cancelled (cn_cancel); in both cases it has released what
 * it held and the object it operated on stays usable.
 *
 * Errors are negative errno values (libuv's UV_E* pass through unchanged) or
 * CN_E* codes from the band at -5000 and below.
 *
 * Cancellation is final: once cancelled, a coroutine's blocking calls fail
 * with -ECANCELED even when they could complete at once, so cleanup code must
 * not depend on taking a lock or sending a last message. Any call with a
 * deadline may also return -ENOMEM if the scheduler's deadline heap cannot
 * grow, and blocking calls made outside a coroutine return CN_ENOTCORO.
 */
#ifndef CORONET_RUNTIME_H
#define CORONET_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CORONET_BUILD)
#define CN_EXTERN __attribute__((visibility("default")))
#else
#define CN_EXTERN
#endif

/* ---- errors ------------------------------------------------------------ */

/* X(name, value, message): the library-only error codes. */
#define CN_ERRNO_MAP(X)                                                                            \
    X(CN_EOF, -5000, "end of stream")                                                              \
    X(CN_ENOSTACK, -5001, "no coroutine stack could be allocated")                                 \
    X(CN_ENOTCORO, -5002, "called outside a coroutine")                                            \
    X(CN_EJOINED, -5003, "coroutine already joined or detached")                                   \
    X(CN_ECLOSED, -5004, "object closed")                                                          \
    X(CN_EBROKEN, -5005, "stream torn down by an interrupted write")                               \
    X(CN_ETLS, -5100, "TLS error")                                                                 \
    X(CN_ETLS_HANDSHAKE, -5101, "TLS handshake failed")                                            \
    X(CN_ETLS_UNTRUSTED, -5102, "TLS peer certificate not trusted")                                \
    X(CN_ETLS_EXPIRED, -5103, "TLS peer certificate expired or not yet valid")                     \
    X(CN_ETLS_HOSTNAME, -5104, "TLS peer certificate does not match the host name")                \
    X(CN_EWS_PROTOCOL, -5200, "WebSocket protocol violation")                                      \
    X(CN_EWS_RSV, -5201, "WebSocket reserved bit set without a negotiated extension")              \
    X(CN_EWS_OPCODE, -5202, "WebSocket reserved opcode")                                           \
    X(CN_EWS_CONTROL_LEN, -5203, "WebSocket control frame payload over 125 bytes")                 \
    X(CN_EWS_CONTROL_FRAG, -5204, "WebSocket control frame fragmented")                            \
    X(CN_EWS_LENGTH, -5205, "WebSocket payload length not minimally encoded or too large")         \
    X(CN_EWS_UNMASKED, -5206, "WebSocket client frame not masked")                                 \
    X(CN_EWS_MASKED, -5207, "WebSocket server frame masked")                                       \
    X(CN_EWS_CLOSE_CODE, -5208, "WebSocket invalid close status code")                             \
    X(CN_EWS_CLOSE_PAYLOAD, -5209, "WebSocket close payload of 1 byte")                            \
    X(CN_EWS_UTF8, -5210, "WebSocket text is not valid UTF-8")                                     \
    X(CN_EWS_TOO_BIG, -5211, "WebSocket frame or message too big")                                 \
    X(CN_EWS_CLOSED, -5212, "WebSocket closed by peer")                                            \
    X(CN_EWS_HANDSHAKE, -5213, "WebSocket handshake refused or invalid")                           \
    X(CN_EWS_PING_TIMEOUT, -5214, "WebSocket peer did not answer a ping in time")                  \
    X(CN_EHTTP_PARSE, -5300, "malformed HTTP message")                                             \
    X(CN_EHTTP_HEADER_TOO_LARGE, -5301, "HTTP header block too large")                             \
    X(CN_EHTTP_BODY_TOO_LARGE, -5302, "HTTP body too large")                                       \
    X(CN_EHTTP_URL, -5303, "invalid or unsupported URL")                                           \
    X(CN_EHTTP_INCOMPLETE, -5304, "HTTP message cut short by end of stream")                       \
    X(CN_EAWS_NO_CREDENTIALS, -5400, "no AWS credentials found")                                   \
    X(CN_EAWS_NO_REGION, -5401, "no AWS region configured")                                        \
    X(CN_EAWS_CONFIG, -5402, "malformed AWS config or credentials file")                           \
    X(CN_EAWS_PARTIAL_CREDENTIALS, -5403, "incomplete AWS credentials")                            \
    X(CN_EAWS_NO_PROFILE, -5404, "AWS profile not found")                                          \
    X(CN_EAWS_ENDPOINT, -5405, "invalid endpoint URL")                                             \
    X(CN_EBASE64, -5406, "invalid base64")                                                         \
    X(CN_EKINESIS, -5500, "Kinesis error of an unrecognised type")                                 \
    X(CN_EKINESIS_THROUGHPUT, -5501, "Kinesis provisioned throughput exceeded")                    \
    X(CN_EKINESIS_LIMIT, -5502, "Kinesis limit exceeded")                                          \
    X(CN_EKINESIS_KMS_THROTTLED, -5503, "KMS throttling")                                          \
    X(CN_EKINESIS_THROTTLING, -5504, "Kinesis request throttled")                                  \
    X(CN_EKINESIS_INTERNAL, -5505, "Kinesis internal failure")                                     \
    X(CN_EKINESIS_UNAVAILABLE, -5506, "Kinesis service unavailable")                               \
    X(CN_EKINESIS_VALIDATION, -5510, "Kinesis rejected the request as invalid")                    \
    X(CN_EKINESIS_INVALID_ARGUMENT, -5511, "Kinesis invalid argument")                             \
    X(CN_EKINESIS_NOT_FOUND, -5512, "Kinesis resource not found")                                  \
    X(CN_EKINESIS_IN_USE, -5513, "Kinesis resource in use")                                        \
    X(CN_EKINESIS_ACCESS_DENIED, -5514, "Kinesis access denied")                                   \
    X(CN_EKINESIS_AUTH, -5515, "AWS credentials or signature not accepted")                        \
    X(CN_EKINESIS_EXPIRED_TOKEN, -5516, "AWS credentials expired")                                 \
    X(CN_EKINESIS_EXPIRED_ITERATOR, -5517, "Kinesis shard iterator expired")                       \
    X(CN_EKINESIS_KMS, -5518, "Kinesis KMS key error")                                             \
    X(CN_EKINESIS_BAD_RESPONSE, -5520, "malformed Kinesis response")                               \
    X(CN_EKINESIS_CONTENT_TYPE, -5521, "unexpected Kinesis response content type")                 \
    X(CN_EKINESIS_STREAM_NAME, -5530, "invalid Kinesis stream name")                               \
    X(CN_EKINESIS_PARTITION_KEY, -5531, "partition key not 1..256 Unicode characters")             \
    X(CN_EKINESIS_RECORD_TOO_LARGE, -5532, "Kinesis record data and key over 1 MiB")               \
    X(CN_EKINESIS_TOO_MANY_RECORDS, -5533, "PutRecords needs 1..500 entries")                      \
    X(CN_EKINESIS_REQUEST_TOO_LARGE, -5534, "PutRecords over 5 MiB")                               \
    X(CN_EKINESIS_HASH_KEY, -5535, "invalid explicit hash key")                                    \
    X(CN_EKINESIS_SHARD_ID, -5536, "invalid shard id")

enum cn_errno {
#define CN__ERR_ENUM(name, value, msg) name = value,
    CN_ERRNO_MAP(CN__ERR_ENUM)
#undef CN__ERR_ENUM
        CN_ERRNO_MAX = -5000
};

/* Human message for any error this library returns (CN_E* or negative errno).
 * Never NULL; the string is static. */
CN_EXTERN const char *cn_strerror(int err);
/* Symbolic name ("CN_EOF", "ETIMEDOUT") of an error; static, never NULL. */
CN_EXTERN const char *cn_err_name(int err);

/* ---- scheduler ----------------------------------------------------------- */

struct cn_co;    /* a coroutine */
struct cn_group; /* a set of coroutines that end together */

/* A coroutine body. Its return value is the coroutine's result (cn_join). */
typedef int (*cn_fn)(void *arg);

struct cn_spawn_opts {
    const char *name;  /* shown in overflow reports; borrowed, must outlive the coroutine */
    size_t stack_size; /* bytes; 0 = the build default (meson option stack_kib) */
};

/* Runs fn(arg) as the main coroutine on a private loop and returns its
 * result once it and every coroutine it left behind have ended (those are
 * cancelled when main returns). Errors: -ENOMEM, CN_ENOSTACK, or a uv error
 * from creating the loop. */
CN_EXTERN int cn_run(cn_fn fn, void *arg);

/* Same on a caller-owned loop: attaches a scheduler to `loop`, runs the loop
 * until main and every other coroutine have ended, then detaches and closes
 * every handle the scheduler opened. After it returns, uv_loop_close(loop)
 * succeeds if the caller's own code left no handle open. Not reentrant: one
 * cn_run_on per loop and per thread at a time. */
CN_EXTERN int cn_run_on(uv_loop_t *loop, cn_fn fn, void *arg);

/* The loop the calling coroutine runs on; NULL outside a coroutine. */
CN_EXTERN uv_loop_t *cn_loop(void);
/* The calling coroutine; NULL outside a coroutine. */
CN_EXTERN struct cn_co *cn_self(void);
/* The loop clock in milliseconds (uv_now of the current loop). */
CN_EXTERN int64_t cn_now(void);

/* Starts fn(arg) as a new coroutine of the calling coroutine's scheduler.
 * It first runs when the caller next parks or yields. *out (if not NULL)
 * receives a handle that must be passed once to cn_join or cn_detach; with
 * out == NULL the coroutine is detached. opts may be NULL.
 * Errors: CN_ENOSTACK (no stack could be mapped), -ENOMEM, CN_ENOTCORO. */
CN_EXTERN int cn_spawn(struct cn_co **out, cn_fn fn, void *arg, const struct cn_spawn_opts *opts);

/* Waits until co has ended, stores its result in *result (if not NULL) and
 * releases the handle. Errors: -ETIMEDOUT, -ECANCELED (co is still joinable),
 * CN_EJOINED if another coroutine is already joining it. */
CN_EXTERN int cn_join(struct cn_co *co, int *result, int64_t deadline);

/* Gives up the handle: co's resources are released when it ends. */
CN_EXTERN void cn_detach(struct cn_co *co);

/* Cancels co: its current blocking call, and every later one, returns
 * -ECANCELED at once. Idempotent; cancelling an ended coroutine does nothing.
 * A coroutine may cancel itself. */
CN_EXTERN void cn_cancel(struct cn_co *co);

/* True once the calling coroutine has been cancelled. */
CN_EXTERN bool cn_cancelled(void);

/* Lets every other ready coroutine run once, then continues.
 * Errors: -ECANCELED (after yielding). */
CN_EXTERN int cn_yield(void);

/* Parks until the deadline. Returns 0 when it passed; -ECANCELED. */
CN_EXTERN int cn_sleep_until(int64_t deadline);
/* Parks for ms milliseconds. Returns 0; -ECANCELED. */
CN_EXTERN int cn_sleep(int64_t ms);

/* The name given at spawn, or "main" / "coroutine". */
CN_EXTERN const char *cn_co_name(const struct cn_co *co);

/* Closes a libuv handle of the current loop and returns once its close
 * callback has run, so the handle's memory (often on the coroutine's stack)
 * may be reused. Borrows h->data until it returns. Cannot be cancelled. */
CN_EXTERN void cn_uv_close(uv_handle_t *h);

/* ---- groups (structured concurrency) ------------------------------------ */

/* A group owns the coroutines spawned into it. Errors: -ENOMEM. */
CN_EXTERN int cn_group_new(struct cn_group **out);

/* Spawns fn(arg) into g. Errors as cn_spawn, and CN_ECLOSED once closing. */
CN_EXTERN int cn_group_spawn(struct cn_group *g, cn_fn fn, void *arg,
                             const struct cn_spawn_opts *opts);

/* Waits until every child has ended. Returns the first nonzero child result
 * (in the order children ended) or 0. Errors: -ETIMEDOUT, -ECANCELED. */
CN_EXTERN int cn_group_wait(struct cn_group *g, int64_t deadline);

/* Waits until a child ends with a nonzero result and returns that result, or
 * returns 0 once every child ended with 0. Errors: -ETIMEDOUT, -ECANCELED. */
CN_EXTERN int cn_group_wait_failure(struct cn_group *g, int64_t deadline);

/* Cancels every child still running, waits until all have ended (this wait
 * cannot be cancelled: children unwind promptly because their blocking calls
 * return -ECANCELED), and frees g. Accepts NULL. */
CN_EXTERN void cn_group_close(struct cn_group *g);

/* ---- channels -------------------------------------------------------------- */

struct cn_chan;

/* A channel of elements of elem_size bytes holding up to capacity elements
 * (0 = unbuffered: a send completes only when a receiver takes it).
 * Errors: -EINVAL (elem_size 0), -ENOMEM. */
CN_EXTERN int cn_chan_new(struct cn_chan **out, size_t elem_size, size_t capacity);

/* Copies elem_size bytes from val into the channel.
 * Errors: -EPIPE (closed), -ETIMEDOUT, -ECANCELED. */
CN_EXTERN int cn_chan_send(struct cn_chan *ch, const void *val, int64_t deadline);

/* Copies the oldest element into val. Elements sent before close are still
 * delivered. Errors: -EPIPE (closed and empty), -ETIMEDOUT, -ECANCELED. */
CN_EXTERN int cn_chan_recv(struct cn_chan *ch, void *val, int64_t deadline);

/* Closes the channel: parked and later senders get -EPIPE, receivers drain
 * what is buffered and then get -EPIPE. Idempotent. */
CN_EXTERN void cn_chan_close(struct cn_chan *ch);

/* Number of buffered elements. */
CN_EXTERN size_t cn_chan_len(const struct cn_chan *ch);

/* Frees the channel. No coroutine may be parked on it. Accepts NULL. */
CN_EXTERN void cn_chan_free(struct cn_chan *ch);

enum cn_chan_op { CN_CHAN_SEND, CN_CHAN_RECV };

struct cn_chan_case {
    struct cn_chan *ch;
    enum cn_chan_op op;
    void *val; /* source for SEND, destination for RECV */
    int rc;    /* out: 0, or -EPIPE when the chosen case found its channel closed */
};

/* Performs exactly one of the n operations (n <= CN_CHAN_CHOOSE_MAX): the
 * first ready one in array order, or else the first to become ready while
 * parked. Returns the index of that case; its rc says whether the operation
 * succeeded (0) or met a closed channel (-EPIPE); the other cases' rc are left
 * as they were. Errors: -ETIMEDOUT, -ECANCELED, -EINVAL (n == 0 or too many). */
#define CN_CHAN_CHOOSE_MAX 16
CN_EXTERN int cn_chan_choose(struct cn_chan_case *cases, size_t n, int64_t deadline);

/* ---- wait group, mutex, semaphore, event ---------------------------------- */

/* Private: a FIFO of parked coroutines, embedded so that no primitive below
 * allocates. Zero-initialised means empty. */
struct cn__waiter;
struct cn__waitq {
    struct cn__waiter *head;
    struct cn__waiter *tail;
};

struct cn_wg {
    int64_t count;
    struct cn__waitq waiters; /* private */
};
#define CN_WG_INIT                                                                                 \
    {                                                                                              \
        0,                                                                                         \
        {                                                                                          \
            NULL, NULL                                                                             \
        }                                                                                          \
    }
/* A count going below zero is a bug and aborts. */
CN_EXTERN void cn_wg_add(struct cn_wg *wg, int64_t n);
CN_EXTERN void cn_wg_done(struct cn_wg *wg);
/* Waits until the count is zero. Errors: -ETIMEDOUT, -ECANCELED. */
CN_EXTERN int cn_wg_wait(struct cn_wg *wg, int64_t deadline);

struct cn_mutex {
    struct cn_co *owner;
    struct cn__waitq waiters; /* private */
};
#define CN_MUTEX_INIT                                                                              \
    {                                                                                              \
        NULL,                                                                                      \
        {                                                                                          \
            NULL, NULL                                                                             \
        }                                                                                          \
    }
/* FIFO, not recursive; unlock hands the lock straight to the oldest waiter.
 * A mutex whose owner ends while holding it stays locked. Unlocking a mutex
 * the caller does not own is a bug and aborts.
 * Errors: -ETIMEDOUT, -ECANCELED, -EDEADLK (owner relocks). */
CN_EXTERN int cn_mutex_lock(struct cn_mutex *m, int64_t deadline);
CN_EXTERN void cn_mutex_unlock(struct cn_mutex *m);

struct cn_sem {
    int64_t count;
    struct cn__waitq waiters; /* private */
};
#define CN_SEM_INIT(n)                                                                             \
    {                                                                                              \
        (n),                                                                                       \
        {                                                                                          \
            NULL, NULL                                                                             \
        }                                                                                          \
    }
/* Errors: -ETIMEDOUT, -ECANCELED. */
CN_EXTERN int cn_sem_acquire(struct cn_sem *s, int64_t deadline);
CN_EXTERN void cn_sem_release(struct cn_sem *s);

struct cn_event {
    bool set;
    struct cn__waitq waiters; /* private */
};
#define CN_EVENT_INIT                                                                              \
    {                                                                                              \
        false,                                                                                     \
        {                                                                                          \
            NULL, NULL                                                                             \
        }                                                                                          \
    }
/* Sets the event and wakes every waiter; it stays set until reset. */
CN_EXTERN void cn_event_set(struct cn_event *e);
CN_EXTERN void cn_event_reset(struct cn_event *e);
/* Returns 0 once the event is set. Errors: -ETIMEDOUT, -ECANCELED. */
CN_EXTERN int cn_event_wait(struct cn_event *e, int64_t deadline);

/* ---- offload to the libuv thread pool ------------------------------------ */

/* Runs fn(arg) on libuv's thread pool and returns its result.
 * Cancellation and deadline: a job that has not started is withdrawn and the
 * call returns -ECANCELED / -ETIMEDOUT at once. A job already running cannot
 * be interrupted: the call waits for it to finish (so arg stays valid for
 * the job's whole life), drops its result and returns -ECANCELED /
 * -ETIMEDOUT. fn must not call coroutine functions. */
CN_EXTERN int cn_offload(cn_fn fn, void *arg, int64_t deadline);

/* ---- bridge: threads outside the loop ------------------------------------- */

struct cn_bridge;

/* Opens a bridge into the calling coroutine's loop. Errors: -ENOMEM, uv errors. */
CN_EXTERN int cn_bridge_open(struct cn_bridge **out);

/* Thread-safe; call from any thread other than the loop's. Runs fn(arg) as a
 * new coroutine on the bridge's loop, waits for it to end and stores its
 * result in *result. Returns 0, or CN_ECLOSED if the bridge is closing,
 * CN_ENOSTACK / -ENOMEM if no coroutine could be started. */
CN_EXTERN int cn_bridge_call(struct cn_bridge *b, cn_fn fn, void *arg, int *result);

/* From the loop's thread: refuses new calls (CN_ECLOSED), waits for running
 * ones to end, closes the handle and frees b. Accepts NULL. */
CN_EXTERN void cn_bridge_close(struct cn_bridge *b);

#ifdef __cplusplus
}
#endif
#endif /* CORONET_RUNTIME_H */
