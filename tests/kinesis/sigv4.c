/* SPDX-License-Identifier: MIT */
/*
 * SigV4 and base64 (kinesis/sigv4.c, kinesis/base64.c).
 *
 * SigV4 is checked three ways: the AWS documentation's worked example (IAM
 * ListUsers), golden vectors derived once from botocore and kept here, and
 * a live comparison with botocore's signer (tests/kinesis/sigv4_oracle.py)
 * over generated requests, byte for byte on the Authorization value, the
 * date and the canonical request. Base64: RFC 4648 §10 vectors, random round
 * trips against OpenSSL, strict rejection, and a guard-page over-read check.
 */
#include <openssl/evp.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "tests/test.h"
#include "kinesis/base64.h"
#include "kinesis/creds.h"
#include "kinesis/sigv4.h"

#define DOC_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define T_20150830 ((time_t)1440938160) /* 2015-08-30T12:36:00Z */

static struct cn_aws_creds *creds(const char *id, const char *secret, const char *token)
{
    struct cn_aws_creds *c;
    CN_ASSERT_EQ(cn_aws_creds_new(&c, id, secret, token), 0);
    return c;
}

#define H(n, v)                                                                                    \
    {                                                                                              \
        n, sizeof n - 1, v, sizeof v - 1                                                           \
    }
#define P(k, v)                                                                                    \
    {                                                                                              \
        k, sizeof k - 1, v, sizeof v - 1                                                           \
    }

/* ---- the AWS documentation example ------------------------------------------ */

static const struct cn__sigv4_header iam_headers[] = {
    H("Host", "iam.amazonaws.com"),
    H("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
};
static const struct cn__sigv4_param iam_params[] = {
    P("Version", "2010-05-08"),
    P("Action", "ListUsers"),
};
static const struct cn__sigv4_request iam_req = {
    .method = "GET",
    .path = "/",
    .params = iam_params,
    .nparams = 2,
    .headers = iam_headers,
    .nheaders = 2,
};

static void sigv4_matches_aws_doc_iam_list_users(void)
{
    struct cn_aws_creds *c = creds("AKIDEXAMPLE", DOC_SECRET, NULL);
    struct cn__sigv4_out out;
    CN_ASSERT_EQ(cn__sigv4_sign(&iam_req, c, "us-east-1", "iam", T_20150830, &out), 0);
    CN_ASSERT_STREQ(out.amz_date, "20150830T123600Z");
    CN_ASSERT_STREQ(out.authorization,
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
                    "SignedHeaders=content-type;host;x-amz-date, "
                    "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
    CN_ASSERT(out.security_token == NULL);
    CN_ASSERT_STREQ(out.content_sha256,
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    char buf[1024];
    ssize_t n = cn__sigv4_canonical_request(&iam_req, c, T_20150830, buf, sizeof buf);
    CN_ASSERT_GT(n, 0);
    CN_ASSERT_STREQ(buf, "GET\n/\nAction=ListUsers&Version=2010-05-08\n"
                         "content-type:application/x-www-form-urlencoded; charset=utf-8\n"
                         "host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                         "content-type;host;x-amz-date\n"
                         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cn_aws_creds_free(c);
}

/* ---- golden vectors (from botocore 1.43, tests/kinesis/sigv4_oracle.py) ----- */

static const char put_body[] =
    "{\"StreamName\":\"s\",\"Records\":[{\"Data\":\"aGVsbG8=\",\"PartitionKey\":\"k\"}]}";
static const struct cn__sigv4_header kin_headers[] = {
    H("Host", "kinesis.eu-west-1.amazonaws.com"),
    H("Content-Type", "application/x-amz-json-1.1"),
    H("X-Amz-Target", "Kinesis_20131202.PutRecords"),
};

struct golden {
    const char *token;
    bool csha;
    const char *region;
    time_t t;
    const char *authorization;
};

static const struct golden goldens[] = {
    {NULL, false, "eu-west-1", T_20150830,
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/kinesis/aws4_request, "
     "SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
     "Signature=eb9adeee2723b10c1c1e4f5183db3fac5820cd03f0dac88a3f95b63207f21de5"},
    {"FQoGZXIvYXdzEJr//////////wEaDOKEN+/=", false, "eu-west-1", (time_t)1709251199,
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240229/eu-west-1/kinesis/aws4_request, "
     "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, "
     "Signature=a4b707e1f6cd4af6a53ee263960066377a02f83177a60fe0cf56803bf9367a77"},
    {"tok", true, "cn-north-1", (time_t)4102444800,
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/21000101/cn-north-1/kinesis/aws4_request, "
     "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token;"
     "x-amz-target, Signature=7a365a375d0622f6182393c8035f756cce5a7a7967b616f89403b4c73b59478c"},
};

static void sigv4_matches_golden_vectors(void)
{
    for (size_t i = 0; i < sizeof goldens / sizeof goldens[0]; i++) {
        const struct golden *g = &goldens[i];
        struct cn_aws_creds *c = creds("AKIDEXAMPLE", DOC_SECRET, g->token);
        struct cn__sigv4_request req = {
            .method = "POST",
            .path = "/",
            .headers = kin_headers,
            .nheaders = 3,
            .body = put_body,
            .body_len = sizeof put_body - 1,
            .sign_content_sha256 = g->csha,
        };
        struct cn__sigv4_out out;
        CN_ASSERT_EQ(cn__sigv4_sign(&req, c, g->region, "kinesis", g->t, &out), 0);
        CN_ASSERT_STREQ(out.authorization, g->authorization);
        if (g->token != NULL) {
            CN_ASSERT_STREQ(out.security_token, g->token);
        }
        cn_aws_creds_free(c);
    }
}

/* ---- behaviour --------------------------------------------------------------- */

static void sigv4_cache_follows_secret_and_date(void)
{
    struct cn_aws_creds *a = creds("AKIDEXAMPLE", DOC_SECRET, NULL);
    struct cn_aws_creds *b = creds("AKIDEXAMPLE", "another-secret", NULL);
    struct cn__sigv4_out o1, o2, o3, o4;
    CN_ASSERT_EQ(cn__sigv4_sign(&iam_req, a, "us-east-1", "iam", T_20150830, &o1), 0);
    CN_ASSERT_EQ(cn__sigv4_sign(&iam_req, b, "us-east-1", "iam", T_20150830, &o2), 0);
    CN_ASSERT(strcmp(o1.authorization, o2.authorization) != 0);
    /* Back to the first secret (cached), then after clearing (derived). */
    CN_ASSERT_EQ(cn__sigv4_sign(&iam_req, a, "us-east-1", "iam", T_20150830, &o3), 0);
    CN_ASSERT_STREQ(o1.authorization, o3.authorization);
    cn__sigv4_cache_clear();
    CN_ASSERT_EQ(cn__sigv4_sign(&iam_req, a, "us-east-1", "iam", T_20150830, &o4), 0);
    CN_ASSERT_STREQ(o1.authorization, o4.authorization);
    /* More (date, region) pairs than cache entries, then the first again. */
    const char *regions[] = {"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "sa-east-1"};
    for (int day = 0; day < 3; day++) {
        for (size_t r = 0; r < 5; r++) {
            CN_ASSERT_EQ(
                cn__sigv4_sign(&iam_req, a, regions[r], "iam", T_20150830 + day * 86400, &o2), 0);
        }
    }
    CN_ASSERT_EQ(cn__sigv4_sign(&iam_req, a, "us-east-1", "iam", T_20150830, &o4), 0);
    CN_ASSERT_STREQ(o1.authorization, o4.authorization);
    cn_aws_creds_free(a);
    cn_aws_creds_free(b);
}

static void sigv4_payload_hash_given_equals_computed(void)
{
    struct cn_aws_creds *c = creds("AKIDEXAMPLE", DOC_SECRET, NULL);
    struct cn__sigv4_request req = {.method = "POST",
                                    .path = "/",
                                    .headers = kin_headers,
                                    .nheaders = 3,
                                    .body = put_body,
                                    .body_len = sizeof put_body - 1};
    struct cn__sigv4_out o1, o2;
    CN_ASSERT_EQ(cn__sigv4_sign(&req, c, "eu-west-1", "kinesis", T_20150830, &o1), 0);
    char hash[65];
    memcpy(hash, o1.content_sha256, sizeof hash);
    req.payload_hash = hash;
    req.body = NULL;
    req.body_len = 0;
    CN_ASSERT_EQ(cn__sigv4_sign(&req, c, "eu-west-1", "kinesis", T_20150830, &o2), 0);
    CN_ASSERT_STREQ(o1.authorization, o2.authorization);
    hash[3] = 'G';
    CN_ASSERT_EQ(cn__sigv4_sign(&req, c, "eu-west-1", "kinesis", T_20150830, &o2), -EINVAL);
    cn_aws_creds_free(c);
}

static void sigv4_rejects_bad_requests(void)
{
    struct cn_aws_creds *c = creds("AKIDEXAMPLE", DOC_SECRET, NULL);
    struct cn__sigv4_out out;
    struct cn__sigv4_request req = iam_req;
    /* No Host. */
    req.headers = iam_headers + 1;
    req.nheaders = 1;
    CN_ASSERT_EQ(cn__sigv4_sign(&req, c, "us-east-1", "iam", T_20150830, &out), -EINVAL);
    /* Header injection. */
    struct cn__sigv4_header bad[] = {H("Host", "h"), H("X-A", "a\r\nX-B: b")};
    req.headers = bad;
    req.nheaders = 2;
    CN_ASSERT_EQ(cn__sigv4_sign(&req, c, "us-east-1", "iam", T_20150830, &out), -EINVAL);
    struct cn__sigv4_header badname[] = {H("Host", "h"), H("X A", "a")};
    req.headers = badname;
    CN_ASSERT_EQ(cn__sigv4_sign(&req, c, "us-east-1", "iam", T_20150830, &out), -EINVAL);
    /* Scope parts. */
    req = iam_req;
    CN_ASSERT_EQ(cn__sigv4_sign(&req, c, "us/east", "iam", T_20150830, &out), -EINVAL);
    CN_ASSERT_EQ(cn__sigv4_sign(&req, c, "us-east-1", "", T_20150830, &out), -EINVAL);
    CN_ASSERT_EQ(cn__sigv4_sign(&req, c, "us-east-1", "iam", (time_t)-1, &out), -EINVAL);
    /* Too many headers. */
    struct cn__sigv4_header many[CN__SIGV4_MAX_HEADERS + 1];
    for (size_t i = 0; i < CN__SIGV4_MAX_HEADERS + 1; i++) {
        many[i] = (struct cn__sigv4_header)H("Host", "h");
    }
    req.headers = many;
    req.nheaders = CN__SIGV4_MAX_HEADERS + 1;
    CN_ASSERT_EQ(cn__sigv4_sign(&req, c, "us-east-1", "iam", T_20150830, &out), -E2BIG);
    req.nheaders = CN__SIGV4_MAX_HEADERS;
    CN_ASSERT_EQ(cn__sigv4_sign(&req, c, "us-east-1", "iam", T_20150830, &out), 0);
    /* A canonical request that does not fit. */
    char small[40];
    CN_ASSERT_EQ(cn__sigv4_canonical_request(&iam_req, c, T_20150830, small, sizeof small),
                 -ENOBUFS);
    CN_ASSERT_EQ(small[0], '\0');
    cn_aws_creds_free(c);
}

/* ---- the botocore oracle ------------------------------------------------------ */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

#define PICK(a) (a[next() % (sizeof a / sizeof a[0])])

static const char *const methods[] = {"POST", "POST", "GET", "PUT", "DELETE", "post"};
static const char *const paths[] = {"/",
                                    "/",
                                    "",
                                    "/foo",
                                    "/foo/bar/",
                                    "/a b/c",
                                    "/\303\274n\303\257code/\303\270", /* octal: ends at 3 digits */
                                    "/%41%20x",
                                    "/a/./b/../c",
                                    "//double//slash//",
                                    "/~user/-_.!*'()",
                                    "/$&+,;=:@",
                                    "/..",
                                    "/a/b/../../..",
                                    "/./",
                                    "/x/y/z/",
                                    "/%2F%2f/"};
static const char *const hosts[] = {"kinesis.us-east-1.amazonaws.com", "localhost:4567",
                                    "127.0.0.1:8080", "[::1]:4567", "KINESIS.EXAMPLE.COM"};
static const char *const keys[] = {"Action",
                                   "Version",
                                   "a",
                                   "A",
                                   "b~",
                                   "key with space",
                                   "\xc3\xa9t\xc3\xa9",
                                   "x=y",
                                   "a&b",
                                   "Z",
                                   "_",
                                   "-",
                                   "~",
                                   "\177del",
                                   "0",
                                   ":"};
static const char *const values[] = {"",  "1", "ListUsers", "a b",          "+", "=",
                                     "%", "~", "/path/",    "\xe2\x82\xac", "*", "A-Z_a.z~0"};
static const char *const hnames[] = {
    "X-Custom", "x-custom",       "X-MiXeD-Case",    "Accept",     "User-Agent",
    "X-Empty",  "Content-Length", "X-Amzn-Trace-Id", "Connection", "X-Amz-Meta-Zed"};
static const char *const hvalues[] = {"a",    "  a   b\t c  ", "",       "\t",      "*/*",
                                      "1234", "x;y, z",        "  lead", "trail  ", "a\t\tb"};
static const char *const regions[] = {"us-east-1", "eu-west-2", "cn-north-1", "ap-southeast-2",
                                      "us-gov-west-1"};
static const char *const services[] = {"kinesis", "kinesis", "kinesis", "iam", "execute-api"};
static const char *const tokens[] = {
    NULL, NULL, "tok", "FQoGZXIvYXdzEJr//////////wEaDOKEN+/=", "IQoJb3JpZ2luX2VjEJ3=="};
static const time_t times[] = {T_20150830, 0,          951782400,   1709251199,
                               4102444800, 2147483648, 253402300799};

struct gcase {
    const char *method, *path, *host, *region, *service, *token;
    struct cn__sigv4_param params[5];
    size_t nparams;
    struct cn__sigv4_header headers[10];
    size_t nheaders;
    unsigned char *body;
    size_t body_len;
    time_t t;
    bool csha;
};

static void add_h(struct gcase *g, const char *n, const char *v)
{
    g->headers[g->nheaders++] = (struct cn__sigv4_header){n, strlen(n), v, strlen(v)};
}

static void gen_body(struct gcase *g)
{
    static const char *const fixed[] = {"", "{}", put_body, "{\"Data\":\"\\u0000\\u00ff\"}"};
    size_t kind = next() % 6;
    if (kind < 4) {
        g->body_len = strlen(fixed[kind]);
        g->body = malloc(g->body_len + 1);
        memcpy(g->body, fixed[kind], g->body_len + 1);
        return;
    }
    g->body_len = kind == 4 ? next() % 2048 : 70000 + next() % 1000;
    g->body = malloc(g->body_len + 1);
    for (size_t i = 0; i < g->body_len; i++) {
        g->body[i] = (unsigned char)next();
    }
}

static void gen_case(struct gcase *g)
{
    memset(g, 0, sizeof *g);
    g->method = PICK(methods);
    g->path = PICK(paths);
    g->host = PICK(hosts);
    g->region = PICK(regions);
    g->service = PICK(services);
    g->token = PICK(tokens);
    g->t = PICK(times);
    g->csha = next() % 3 == 0;
    g->nparams = next() % 6;
    for (size_t i = 0; i < g->nparams; i++) {
        const char *k = PICK(keys), *v = PICK(values);
        g->params[i] = (struct cn__sigv4_param){k, strlen(k), v, strlen(v)};
    }
    add_h(g, next() % 2 ? "Host" : "host", g->host);
    add_h(g, "Content-Type", "application/x-amz-json-1.1");
    add_h(g, "X-Amz-Target", "Kinesis_20131202.PutRecords");
    size_t extra = next() % 6;
    for (size_t i = 0; i < extra; i++) {
        add_h(g, PICK(hnames), PICK(hvalues));
    }
    gen_body(g);
}

static json_t *case_json(const struct gcase *g)
{
    json_t *params = json_array(), *headers = json_array();
    for (size_t i = 0; i < g->nparams; i++) {
        json_array_append_new(params, json_pack("[s,s]", g->params[i].key, g->params[i].value));
    }
    for (size_t i = 0; i < g->nheaders; i++) {
        json_array_append_new(headers, json_pack("[s,s]", g->headers[i].name, g->headers[i].value));
    }
    char *hex = malloc(2 * g->body_len + 1);
    for (size_t i = 0; i < g->body_len; i++) {
        sprintf(hex + 2 * i, "%02x", g->body[i]);
    }
    hex[2 * g->body_len] = '\0';
    char url[256];
    snprintf(url, sizeof url, "https://%s%s", g->host, g->path);
    json_t *o =
        json_pack("{s:s,s:s,s:o,s:o,s:s,s:s,s:s,s:s,s:s,s:s?,s:I,s:b}", "method", g->method, "url",
                  url, "params", params, "headers", headers, "body_hex", hex, "region", g->region,
                  "service", g->service, "access_key", "AKIDEXAMPLE", "secret", DOC_SECRET, "token",
                  g->token, "time", (json_int_t)g->t, "content_sha256", g->csha);
    free(hex);
    CN_ASSERT(o != NULL);
    return o;
}

#define ORACLE_CASES 240

static void sigv4_matches_botocore_oracle(void)
{
    const char *src = getenv("CN_SOURCE_ROOT");
    char script[1024], input[] = "/tmp/cn-sigv4-XXXXXX", cmd[2300];
    snprintf(script, sizeof script, "%s/tests/kinesis/sigv4_oracle.py", src ? src : ".");
    static struct gcase cases[ORACLE_CASES];
    json_t *all = json_array();
    for (size_t i = 0; i < ORACLE_CASES; i++) {
        gen_case(&cases[i]);
        json_array_append_new(all, case_json(&cases[i]));
    }
    int fd = mkstemp(input);
    CN_ASSERT_GE(fd, 0);
    CN_ASSERT_EQ(json_dumpfd(all, fd, JSON_COMPACT), 0);
    close(fd);
    json_decref(all);
    snprintf(cmd, sizeof cmd, "python3 '%s' < '%s'", script, input);
    FILE *p = popen(cmd, "r");
    CN_ASSERT(p != NULL);

    struct cn_aws_creds *plain = creds("AKIDEXAMPLE", DOC_SECRET, NULL);
    static char line[1 << 20];
    size_t done = 0;
    while (done < ORACLE_CASES && fgets(line, sizeof line, p) != NULL) {
        struct gcase *g = &cases[done];
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        CN_ASSERT(o != NULL);
        struct cn_aws_creds *c = g->token ? creds("AKIDEXAMPLE", DOC_SECRET, g->token) : plain;
        struct cn__sigv4_request req = {.method = g->method,
                                        .path = g->path,
                                        .params = g->params,
                                        .nparams = g->nparams,
                                        .headers = g->headers,
                                        .nheaders = g->nheaders,
                                        .body = g->body,
                                        .body_len = g->body_len,
                                        .sign_content_sha256 = g->csha};
        struct cn__sigv4_out out;
        static char canon[1 << 16];
        CN_ASSERT_GT(cn__sigv4_canonical_request(&req, c, g->t, canon, sizeof canon), 0);
        CN_ASSERT_EQ(cn__sigv4_sign(&req, c, g->region, g->service, g->t, &out), 0);
        if (strcmp(canon, json_string_value(json_object_get(o, "canonical"))) != 0) {
            fprintf(stderr, "case %zu canonical differs:\n--- coronet\n%s\n--- botocore\n%s\n",
                    done, canon, json_string_value(json_object_get(o, "canonical")));
        }
        CN_ASSERT_STREQ(canon, json_string_value(json_object_get(o, "canonical")));
        CN_ASSERT_STREQ(out.authorization, json_string_value(json_object_get(o, "authorization")));
        CN_ASSERT_STREQ(out.amz_date, json_string_value(json_object_get(o, "date")));
        const char *tok = json_string_value(json_object_get(o, "token"));
        CN_ASSERT((tok == NULL) == (out.security_token == NULL));
        if (tok != NULL) {
            CN_ASSERT_STREQ(out.security_token, tok);
        }
        if (c != plain) {
            cn_aws_creds_free(c);
        }
        json_decref(o);
        done++;
    }
    int st = pclose(p);
    unlink(input);
    cn_aws_creds_free(plain);
    for (size_t i = 0; i < ORACLE_CASES; i++) {
        free(cases[i].body);
    }
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (done == 0 && (code == 77 || code == 127)) {
        CN_TEST_SKIP_BECAUSE("python3 or botocore missing (exit %d)", code);
    }
    CN_ASSERT_EQ(code, 0);
    CN_ASSERT_EQ(done, ORACLE_CASES);
    printf("%zu cases identical to botocore\n", done);
}

/* ---- base64 -------------------------------------------------------------------- */

static void base64_rfc4648_vectors(void)
{
    static const char *const v[][2] = {{"", ""},
                                       {"f", "Zg=="},
                                       {"fo", "Zm8="},
                                       {"foo", "Zm9v"},
                                       {"foob", "Zm9vYg=="},
                                       {"fooba", "Zm9vYmE="},
                                       {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char enc[16], dec[16];
        size_t n = strlen(v[i][0]);
        CN_ASSERT_EQ(cn__base64_encoded_len(n), strlen(v[i][1]));
        CN_ASSERT_EQ(cn__base64_encode(enc, v[i][0], n), strlen(v[i][1]));
        CN_ASSERT_MEMEQ(enc, v[i][1], strlen(v[i][1]));
        CN_ASSERT_EQ(cn__base64_decoded_len(v[i][1], strlen(v[i][1])), (ssize_t)n);
        CN_ASSERT_EQ(cn__base64_decode(dec, n, v[i][1], strlen(v[i][1])), (ssize_t)n);
        CN_ASSERT_MEMEQ(dec, v[i][0], n);
    }
    unsigned char all[3] = {0xfb, 0xff, 0xbf};
    char enc[4];
    cn__base64_encode(enc, all, 3);
    CN_ASSERT_MEMEQ(enc, "+/+/", 4);
}

static void base64_round_trips_random_data_like_openssl(void)
{
    static unsigned char src[4099], dec[4099];
    static char enc[5500], ref[5500];
    for (int round = 0; round < 2000; round++) {
        size_t n = round < 100 ? (size_t)round : next() % sizeof src;
        for (size_t i = 0; i < n; i++) {
            src[i] = (unsigned char)next();
        }
        size_t m = cn__base64_encode(enc, src, n);
        CN_ASSERT_EQ(m, cn__base64_encoded_len(n));
        CN_ASSERT_EQ(EVP_EncodeBlock((unsigned char *)ref, src, (int)n), (int)m);
        CN_ASSERT_MEMEQ(enc, ref, m);
        CN_ASSERT_EQ(cn__base64_decode(dec, n, enc, m), (ssize_t)n);
        CN_ASSERT_MEMEQ(dec, src, n);
        if (n > 0) {
            CN_ASSERT_EQ(cn__base64_decode(dec, n - 1, enc, m), -ENOBUFS);
        }
    }
}

static void base64_rejects_non_canonical_input(void)
{
    static const char *const bad[] = {
        "Zg=",  "Zg",       "Z",        "Zm9vY", "Zh==",        "Zm9=",     "Zm9vYmF=",
        "Z===", "====",     "=Zg=",     "Zg=a",  "Zm 9v",       "Zm9v\n",   "Zm9-",
        "Zm9_", "Zm9v====", "Zg==Zg==", "Zm\0v", "\xc3\xa9Zg=", "Zm9v=Zg=",
    };
    unsigned char dec[16];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = strlen(bad[i]);
        if (i == 17) {
            n = 4; /* the embedded NUL */
        }
        ssize_t rc = cn__base64_decode(dec, sizeof dec, bad[i], n);
        if (rc != CN_EBASE64) {
            fprintf(stderr, "accepted \"%s\"\n", bad[i]);
        }
        CN_ASSERT_EQ(rc, CN_EBASE64);
    }
}

static void base64_decode_stays_inside_input(void)
{
    /* Input ends exactly at a PROT_NONE page: any over-read faults. */
    long page = sysconf(_SC_PAGESIZE);
    char *m =
        mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CN_ASSERT(m != MAP_FAILED);
    CN_ASSERT_EQ(mprotect(m + page, (size_t)page, PROT_NONE), 0);
    static const char *const in[] = {"Zm9vYmFy", "Zm9vYg==", "Zm9vYmE=", "Zg", "Zm9vY!==", "="};
    unsigned char dec[16];
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        size_t n = strlen(in[i]);
        char *at = m + page - n;
        memcpy(at, in[i], n);
        ssize_t rc = cn__base64_decode(dec, sizeof dec, at, n);
        CN_ASSERT(rc >= 0 || rc == CN_EBASE64);
        rc = cn__base64_decoded_len(at, n);
        CN_ASSERT(rc >= 0 || rc == CN_EBASE64);
    }
    munmap(m, (size_t)page * 2);
}

CN_TEST_MAIN(CN_CASE(sigv4_matches_aws_doc_iam_list_users), CN_CASE(sigv4_matches_golden_vectors),
             CN_CASE(sigv4_cache_follows_secret_and_date),
             CN_CASE(sigv4_payload_hash_given_equals_computed), CN_CASE(sigv4_rejects_bad_requests),
             CN_CASE(sigv4_matches_botocore_oracle), CN_CASE(base64_rfc4648_vectors),
             CN_CASE(base64_round_trips_random_data_like_openssl),
             CN_CASE(base64_rejects_non_canonical_input), CN_CASE(base64_decode_stays_inside_input))
