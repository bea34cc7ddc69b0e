/* SPDX-License-Identifier: MIT */
/*
 * Kinesis body codecs, measured: JSON (jansson vs cJSON vs a hand-written
 * fixed-shape writer) on PutRecords requests and responses, base64 (ours
 * vs OpenSSL EVP_EncodeBlock/EVP_DecodeBlock) and one SigV4 signature over
 * a 256 KiB body. Standalone, not part of the meson build; from the
 * repository root:
 *
 *   gcc -O2 -Iinclude -Ikinesis -I/usr/include/cjson bench/json/json_bench.c \
 *       kinesis/sigv4.c kinesis/creds.c kinesis/base64.c \
 *       -ljansson -lcjson -lcrypto -lpthread -o /tmp/json_bench && /tmp/json_bench
 *
 * Each figure is the best of 7 batches (the least disturbed), in µs or ns
 * per operation. Results and the choice they support: bench/json/README.md.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "base64.h"
#include "creds.h"
#include "sigv4.h"

#define NREC 500
#define DATA_LEN 200

static char data_b64[NREC][(DATA_LEN + 2) / 3 * 4 + 1];
static char pkey[NREC][40];
static const char stream[] = "bench-stream";

static uint64_t rng = 0x2545f4914f6cdd1du;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

typedef void (*op_fn)(void);

static volatile size_t sink;

/* Best of 7 batches of `iters` calls: ns per call. */
static double measure(op_fn fn, int iters)
{
    double best = 1e300;
    fn(); /* warm */
    for (int b = 0; b < 7; b++) {
        double t0 = now_ns();
        for (int i = 0; i < iters; i++) {
            fn();
        }
        double per = (now_ns() - t0) / iters;
        best = per < best ? per : best;
    }
    return best;
}

/* ---- the data -------------------------------------------------------------------- */

static void make_records(void)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-";
    unsigned char raw[DATA_LEN];
    for (int r = 0; r < NREC; r++) {
        for (int i = 0; i < DATA_LEN; i++) {
            raw[i] = (unsigned char)next();
        }
        size_t n = cn__base64_encode(data_b64[r], raw, DATA_LEN);
        data_b64[r][n] = '\0';
        size_t klen = 16 + next() % 21;
        for (size_t i = 0; i < klen; i++) {
            pkey[r][i] = alnum[next() % (sizeof alnum - 1)];
        }
        pkey[r][klen] = '\0';
    }
}

/* ---- request: serialise --------------------------------------------------------- */

static char *req_text;
static size_t req_len;
static char *resp_text;
static size_t resp_len;
static char handbuf[1 << 20];

static void req_jansson_dump(void)
{
    json_t *recs = json_array();
    for (int r = 0; r < NREC; r++) {
        json_t *o = json_object();
        json_object_set_new_nocheck(o, "Data", json_string_nocheck(data_b64[r]));
        json_object_set_new_nocheck(o, "PartitionKey", json_string(pkey[r]));
        json_array_append_new(recs, o);
    }
    json_t *root = json_object();
    json_object_set_new_nocheck(root, "StreamName", json_string(stream));
    json_object_set_new_nocheck(root, "Records", recs);
    char *s = json_dumps(root, JSON_COMPACT);
    sink += strlen(s);
    free(s);
    json_decref(root);
}

static void req_cjson_dump(void)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "StreamName", stream);
    cJSON *recs = cJSON_AddArrayToObject(root, "Records");
    for (int r = 0; r < NREC; r++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "Data", data_b64[r]);
        cJSON_AddStringToObject(o, "PartitionKey", pkey[r]);
        cJSON_AddItemToArray(recs, o);
    }
    char *s = cJSON_PrintUnformatted(root);
    sink += strlen(s);
    free(s);
    cJSON_Delete(root);
}

/* JSON string body (RFC 8259 §7) into d; returns bytes written. */
static size_t escape(char *d, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    char *p = d;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20) {
            memcpy(p, "\\u00", 4);
            p[4] = hex[c >> 4];
            p[5] = hex[c & 15];
            p += 6;
        } else {
            *p++ = (char)c;
        }
    }
    return (size_t)(p - d);
}

#define PUT(lit)                                                                                   \
    do {                                                                                           \
        memcpy(p, lit, sizeof lit - 1);                                                            \
        p += sizeof lit - 1;                                                                       \
    } while (0)

static void req_hand_write(void)
{
    char *p = handbuf;
    PUT("{\"StreamName\":\"");
    p += escape(p, stream);
    PUT("\",\"Records\":[");
    for (int r = 0; r < NREC; r++) {
        if (r > 0) {
            *p++ = ',';
        }
        PUT("{\"Data\":\"");
        size_t n = sizeof data_b64[r] - 1; /* base64 needs no escaping */
        memcpy(p, data_b64[r], n);
        p += n;
        PUT("\",\"PartitionKey\":\"");
        p += escape(p, pkey[r]);
        PUT("\"}");
    }
    PUT("]}");
    sink += (size_t)(p - handbuf);
}

/* Encoding the raw 200-byte records straight into the body: what a
 * hand-written producer writer does in one pass. */
static unsigned char raw_data[NREC][DATA_LEN];

static void req_hand_write_with_base64(void)
{
    char *p = handbuf;
    PUT("{\"StreamName\":\"");
    p += escape(p, stream);
    PUT("\",\"Records\":[");
    for (int r = 0; r < NREC; r++) {
        if (r > 0) {
            *p++ = ',';
        }
        PUT("{\"Data\":\"");
        p += cn__base64_encode(p, raw_data[r], DATA_LEN);
        PUT("\",\"PartitionKey\":\"");
        p += escape(p, pkey[r]);
        PUT("\"}");
    }
    PUT("]}");
    sink += (size_t)(p - handbuf);
}

/* ---- request: parse ------------------------------------------------------------------ */

static void req_jansson_parse(void)
{
    json_error_t err;
    json_t *root = json_loadb(req_text, req_len, 0, &err);
    json_t *recs = json_object_get(root, "Records");
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(recs); i++) {
        json_t *o = json_array_get(recs, i);
        n += json_string_length(json_object_get(o, "Data"));
        n += json_string_length(json_object_get(o, "PartitionKey"));
    }
    sink += n;
    json_decref(root);
}

static void req_cjson_parse(void)
{
    cJSON *root = cJSON_ParseWithLength(req_text, req_len);
    cJSON *recs = cJSON_GetObjectItemCaseSensitive(root, "Records");
    size_t n = 0;
    cJSON *o;
    cJSON_ArrayForEach(o, recs)
    {
        n += strlen(cJSON_GetObjectItemCaseSensitive(o, "Data")->valuestring);
        n += strlen(cJSON_GetObjectItemCaseSensitive(o, "PartitionKey")->valuestring);
    }
    sink += n;
    cJSON_Delete(root);
}

/* ---- response ------------------------------------------------------------------------ */

static int failed(int r)
{
    return r % 10 == 3; /* 10 % throttled, as a busy shard answers */
}

static void seqno(char *d, int r)
{
    snprintf(d, 64, "49546986683135544286507457936321625675700192471156785%03d", r);
}

static void resp_jansson_dump(void)
{
    json_t *recs = json_array();
    char seq[64];
    for (int r = 0; r < NREC; r++) {
        json_t *o = json_object();
        if (failed(r)) {
            json_object_set_new(o, "ErrorCode",
                                json_string("ProvisionedThroughputExceededException"));
            json_object_set_new(o, "ErrorMessage",
                                json_string("Rate exceeded for shard shardId-000000000001 in "
                                            "stream bench-stream under account 123456789012."));
        } else {
            seqno(seq, r);
            json_object_set_new(o, "SequenceNumber", json_string(seq));
            json_object_set_new(o, "ShardId", json_string("shardId-000000000001"));
        }
        json_array_append_new(recs, o);
    }
    json_t *root = json_object();
    json_object_set_new(root, "FailedRecordCount", json_integer(NREC / 10));
    json_object_set_new(root, "Records", recs);
    json_object_set_new(root, "EncryptionType", json_string("NONE"));
    char *s = json_dumps(root, JSON_COMPACT);
    sink += strlen(s);
    if (resp_text == NULL) {
        resp_text = strdup(s);
        resp_len = strlen(s);
    }
    free(s);
    json_decref(root);
}

static void resp_cjson_dump(void)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "FailedRecordCount", NREC / 10);
    cJSON *recs = cJSON_AddArrayToObject(root, "Records");
    char seq[64];
    for (int r = 0; r < NREC; r++) {
        cJSON *o = cJSON_CreateObject();
        if (failed(r)) {
            cJSON_AddStringToObject(o, "ErrorCode", "ProvisionedThroughputExceededException");
            cJSON_AddStringToObject(o, "ErrorMessage",
                                    "Rate exceeded for shard shardId-000000000001 in stream "
                                    "bench-stream under account 123456789012.");
        } else {
            seqno(seq, r);
            cJSON_AddStringToObject(o, "SequenceNumber", seq);
            cJSON_AddStringToObject(o, "ShardId", "shardId-000000000001");
        }
        cJSON_AddItemToArray(recs, o);
    }
    cJSON_AddStringToObject(root, "EncryptionType", "NONE");
    char *s = cJSON_PrintUnformatted(root);
    sink += strlen(s);
    free(s);
    cJSON_Delete(root);
}

/* Parse and pull out every field a producer needs per record. */
static void resp_jansson_parse(void)
{
    json_error_t err;
    json_t *root = json_loadb(resp_text, resp_len, 0, &err);
    size_t n = (size_t)json_integer_value(json_object_get(root, "FailedRecordCount"));
    json_t *recs = json_object_get(root, "Records");
    for (size_t i = 0; i < json_array_size(recs); i++) {
        json_t *o = json_array_get(recs, i);
        json_t *code = json_object_get(o, "ErrorCode");
        if (code != NULL) {
            n += json_string_length(code);
            n += json_string_length(json_object_get(o, "ErrorMessage"));
        } else {
            n += json_string_length(json_object_get(o, "SequenceNumber"));
            n += json_string_length(json_object_get(o, "ShardId"));
        }
    }
    sink += n;
    json_decref(root);
}

static void resp_cjson_parse(void)
{
    cJSON *root = cJSON_ParseWithLength(resp_text, resp_len);
    size_t n = (size_t)cJSON_GetObjectItemCaseSensitive(root, "FailedRecordCount")->valuedouble;
    cJSON *recs = cJSON_GetObjectItemCaseSensitive(root, "Records");
    cJSON *o;
    cJSON_ArrayForEach(o, recs)
    {
        cJSON *code = cJSON_GetObjectItemCaseSensitive(o, "ErrorCode");
        if (code != NULL) {
            n += strlen(code->valuestring);
            n += strlen(cJSON_GetObjectItemCaseSensitive(o, "ErrorMessage")->valuestring);
        } else {
            n += strlen(cJSON_GetObjectItemCaseSensitive(o, "SequenceNumber")->valuestring);
            n += strlen(cJSON_GetObjectItemCaseSensitive(o, "ShardId")->valuestring);
        }
    }
    sink += n;
    cJSON_Delete(root);
}

/* ---- base64 and SigV4 ---------------------------------------------------------------- */

static unsigned char *b64_src;
static char *b64_enc;
static unsigned char *b64_dec;
static size_t b64_n;

static void b64_ours_enc(void)
{
    sink += cn__base64_encode(b64_enc, b64_src, b64_n);
}

static void b64_evp_enc(void)
{
    sink += (size_t)EVP_EncodeBlock((unsigned char *)b64_enc, b64_src, (int)b64_n);
}

static void b64_ours_dec(void)
{
    sink += (size_t)cn__base64_decode(b64_dec, b64_n, b64_enc, cn__base64_encoded_len(b64_n));
}

static void b64_evp_dec(void)
{
    sink += (size_t)EVP_DecodeBlock(b64_dec, (unsigned char *)b64_enc,
                                    (int)cn__base64_encoded_len(b64_n));
}

static struct cn_aws_creds *creds;
static struct cn__sigv4_request sreq;
static struct cn__sigv4_out sout;
static char hash_hex[65];

static void sign_once(void)
{
    sink += (size_t)cn__sigv4_sign(&sreq, creds, "us-east-1", "kinesis", 1440938160, &sout);
}

static void base64_section(void)
{
    static const size_t sizes[] = {200, 262144};
    for (size_t s = 0; s < 2; s++) {
        b64_n = sizes[s];
        b64_src = malloc(b64_n);
        b64_enc = malloc(cn__base64_encoded_len(b64_n) + 1);
        b64_dec = malloc(b64_n + 3);
        for (size_t i = 0; i < b64_n; i++) {
            b64_src[i] = (unsigned char)next();
        }
        int it = b64_n < 1000 ? 200000 : 200;
        double oe = measure(b64_ours_enc, it), ee = measure(b64_evp_enc, it);
        double od = measure(b64_ours_dec, it), ed = measure(b64_evp_dec, it);
        printf("base64 %6zu B  encode: ours %8.1f ns (%5.2f GB/s)  EVP %8.1f ns (%5.2f GB/s)  "
               "ratio %.2f\n",
               b64_n, oe, b64_n / oe, ee, b64_n / ee, ee / oe);
        printf("base64 %6zu B  decode: ours %8.1f ns (%5.2f GB/s)  EVP %8.1f ns (%5.2f GB/s)  "
               "ratio %.2f\n",
               b64_n, od, b64_n / od, ed, b64_n / ed, ed / od);
        free(b64_src);
        free(b64_enc);
        free(b64_dec);
    }
}

static void sigv4_section(void)
{
    static const char host[] = "kinesis.us-east-1.amazonaws.com";
    static const struct cn__sigv4_header h[] = {
        {"Host", 4, host, sizeof host - 1},
        {"Content-Type", 12, "application/x-amz-json-1.1", 26},
        {"X-Amz-Target", 12, "Kinesis_20131202.PutRecords", 27},
    };
    size_t n = 256 * 1024;
    unsigned char *body = malloc(n);
    for (size_t i = 0; i < n; i++) {
        body[i] = (unsigned char)next();
    }
    cn_aws_creds_new(&creds, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token");
    sreq = (struct cn__sigv4_request){
        .method = "POST", .path = "/", .headers = h, .nheaders = 3, .body = body, .body_len = n};
    double full = measure(sign_once, 2000);
    memcpy(hash_hex, sout.content_sha256, sizeof hash_hex);
    sreq.payload_hash = hash_hex;
    double given = measure(sign_once, 200000);
    sreq.payload_hash = NULL;
    sreq.body_len = 0;
    double empty = measure(sign_once, 200000);
    printf("sigv4 sign, 256 KiB body:            %9.0f ns  (%.2f GB/s SHA-256)\n", full, n / full);
    printf("sigv4 sign, payload hash given:      %9.0f ns  (cached signing key)\n", given);
    printf("sigv4 sign, empty body:              %9.0f ns\n", empty);
    cn_aws_creds_free(creds);
    free(body);
}

static void json_section(void)
{
    req_hand_write();
    req_len = strlen(handbuf);
    req_text = strdup(handbuf);
    resp_jansson_dump();
    for (int r = 0; r < NREC; r++) {
        for (int i = 0; i < DATA_LEN; i++) {
            raw_data[r][i] = (unsigned char)next();
        }
    }
    printf("PutRecords request: %d records, %zu bytes; response: %zu bytes\n", NREC, req_len,
           resp_len);
    double rj = measure(req_jansson_dump, 200), rc = measure(req_cjson_dump, 200);
    double rh = measure(req_hand_write, 2000), rb = measure(req_hand_write_with_base64, 2000);
    printf("request serialise:  jansson %7.1f us  cJSON %7.1f us  hand-written %6.1f us "
           "(%.1f us incl. base64 of the raw data)\n",
           rj / 1e3, rc / 1e3, rh / 1e3, rb / 1e3);
    double pj = measure(req_jansson_parse, 200), pc = measure(req_cjson_parse, 200);
    printf("request parse:      jansson %7.1f us  cJSON %7.1f us\n", pj / 1e3, pc / 1e3);
    double sj = measure(resp_jansson_dump, 200), sc = measure(resp_cjson_dump, 200);
    printf("response serialise: jansson %7.1f us  cJSON %7.1f us\n", sj / 1e3, sc / 1e3);
    double qj = measure(resp_jansson_parse, 200), qc = measure(resp_cjson_parse, 200);
    printf("response parse:     jansson %7.1f us  cJSON %7.1f us  (parse + read every field)\n",
           qj / 1e3, qc / 1e3);
}

int main(void)
{
    make_records();
    printf("jansson %s, cJSON %s, %s\n", JANSSON_VERSION, cJSON_Version(),
           OpenSSL_version(OPENSSL_VERSION));
    json_section();
    base64_section();
    sigv4_section();
    free(req_text);
    free(resp_text);
    return sink == 0;
}
