/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the KPL deaggregator (kinesis/agg.c).
 *
 * Random bytes rarely carry a valid MD5, so most inputs would stop at the
 * checksum. The first input byte picks a mode: even, the rest is deaggregated
 * as is (framing, fallback paths); odd, the rest is taken as the protobuf
 * body and framed here with magic and its MD5, so protobuf-c and the index
 * and range checks see every mutation. Bit 1 of the mode byte turns on a
 * hash key range filter taken from the next 32 bytes.
 *
 * Checked beyond "no crash": every view a record hands out lies inside the
 * input or is non-NULL with its length, the iteration ends, and whatever an
 * aggregate yields re-encodes through the aggregator to the exact size it
 * predicted.
 *
 * With -DCN_FUZZ_REPLAY_MAIN it gets a main() that runs each file named on
 * the command line, or in a named directory, through the same function
 * (the seed corpus fuzz/corpus/kpl_deagg on every build, without libFuzzer).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "kinesis/agg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch(const uint8_t *p, size_t n)
{
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < n; i++) {
        sink ^= p[i]; /* ASan checks each view is readable */
    }
    (void)sink;
}

static void reencode(struct cn__agg *agg, const struct cn__user_record *u)
{
    if (u->pk_len == 0) {
        return;
    }
    size_t want = cn__agg_size_if_added(agg, (const char *)u->pk, u->pk_len, (const char *)u->ehk,
                                        u->ehk_len, u->data_len);
    ssize_t got = cn__agg_add(agg, (const char *)u->pk, u->pk_len, (const char *)u->ehk, u->ehk_len,
                              u->data, u->data_len);
    if (got >= 0 && (size_t)got != want) {
        abort();
    }
}

static void run(const uint8_t *rec, size_t len, const struct cn__hashkey *range)
{
    struct cn__deagg d;
    struct cn__user_record outer = {
        .pk = (const uint8_t *)"p", .pk_len = 1, .data = rec, .data_len = len};
    struct cn__user_record u;
    struct cn__agg *agg = NULL;
    if (cn__agg_new(&agg, CN__DEAGG_MAX_INPUT) < 0) {
        abort();
    }
    int rc = cn__deagg_open(&d, &outer, range);
    size_t n = 0;
    while (rc >= 0 && (rc = cn__deagg_next(&d, &u)) == 1) {
        if (u.pk == NULL || u.data == NULL || (u.ehk == NULL && u.ehk_len != 0)) {
            abort();
        }
        touch(u.pk, u.pk_len);
        touch(u.data, u.data_len);
        if (u.ehk != NULL) {
            touch(u.ehk, u.ehk_len);
        }
        if (u.sub_seq != n++) {
            abort();
        }
        reencode(agg, &u);
    }
    if (rc != 0 && rc != -EBADMSG && rc != -EMSGSIZE) {
        abort();
    }
    cn__deagg_close(&d);
    cn__agg_free(agg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    uint8_t mode = data[0];
    data++;
    size--;
    struct cn__hashkey range[2], *rp = NULL;
    if ((mode & 2) && size >= 32) {
        memcpy(&range[0], data, 16);
        memcpy(&range[1], data + 16, 16);
        data += 32;
        size -= 32;
        rp = range;
    }
    if (!(mode & 1)) {
        run(data, size, rp);
        return 0;
    }
    uint8_t *rec = malloc(size + CN__AGG_OVERHEAD);
    if (rec == NULL) {
        return 0;
    }
    memcpy(rec, cn__agg_magic, CN__AGG_MAGIC_LEN);
    if (size > 0) {
        memcpy(rec + CN__AGG_MAGIC_LEN, data, size);
    }
    unsigned int n = 0;
    if (!EVP_Digest(data, size, rec + CN__AGG_MAGIC_LEN + size, &n, EVP_md5(), NULL)) {
        abort();
    }
    run(rec, size + CN__AGG_OVERHEAD, rp);
    free(rec);
    return 0;
}

#ifdef CN_FUZZ_REPLAY_MAIN
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>

/* One file, copied to an exact-size buffer so ASan sees reads past it. */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (f == NULL || fstat(fileno(f), &st) != 0) {
        perror(path);
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL || fread(buf, 1, n, f) != n) {
        abort();
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int replay_path(const char *path, size_t *count)
{
    DIR *dir = opendir(path);
    if (dir == NULL) {
        (*count)++;
        return replay_file(path);
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] != '.') {
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rc = replay_path(sub, count);
        }
    }
    closedir(dir);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    for (int i = 1; i < argc; i++) {
        if (replay_path(argv[i], &count) != 0) {
            return 1;
        }
    }
    printf("%zu inputs ran clean\n", count);
    return count > 0 ? 0 : 1; /* an empty or missing corpus fails */
}
#endif
