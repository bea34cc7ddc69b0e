/* SPDX-License-Identifier: MIT */
/* Puts one record through the Kinesis producer and prints where it landed. */
#include <stdio.h>
#include <coronet/coronet.h>

static int put_one(void *stream)
{
    struct cn_kinesis_producer *p;
    int rc = cn_kinesis_producer_new(&p, NULL); /* endpoint, region, keys: AWS_* env, ~/.aws */
    if (rc < 0) {
        return rc;
    }
    struct cn_kinesis_outcome_handle *h;
    struct cn_kinesis_outcome o;
    rc = cn_kinesis_put(p, stream, "user-42", "hello", 5, NULL, &h, cn_now() + 1000);
    if (rc == 0) {
        cn_kinesis_outcome_wait(h, &o, -1); /* retried as needed, until record_ttl_ms */
        cn_kinesis_outcome_release(h);
        rc = o.code;
        if (rc == 0) {
            printf("%s %s\n", o.shard_id, o.sequence_number);
        } else {
            fprintf(stderr, "put: %s: %s\n", cn_err_name(rc), o.error_message);
        }
    }
    cn_kinesis_producer_close(p, cn_now() + 5000); /* flushes, then stops */
    return rc;
}

int main(int argc, char **argv)
{
    return cn_run(put_one, argc > 1 ? argv[1] : "demo") == 0 ? 0 : 1;
}
