/* SPDX-License-Identifier: MIT */
/*
 * The Kinesis JSON codec: request validation, the PutRecord(s) bodies,
 * error mapping, response parsing (see api_internal.h).
 *
 * Requests. The PutRecord(s) bodies are written by hand into one buffer
 * sized for the worst case up front (base64 data, keys escaped at most six
 * bytes per byte), so building a 5 MiB batch is one allocation and one pass.
 * Everything is validated first, with AWS's rules (Kinesis API reference,
 * PutRecordsRequestEntry, PutRecords "Each record ... can be as large as
 * 1 MiB, up to a limit of 5 MiB for the entire request, including partition
 * keys").
 *
 * Responses are parsed with cJSON into a tree, then read field by field
 * with type checks: never substring matching. A field of the wrong type, a
 * string longer than its AWS bound, a sequence number or hash key that is
 * not a canonical decimal: CN_EKINESIS_BAD_RESPONSE with what was wrong in
 * the error message, and nothing allocated left behind.
 *
 * cJSON is lenient where RFC 8259 is not: it accepts invalid UTF-8, raw
 * control characters, "01" and "1.", a BOM, and decodes \u0000 into a NUL
 * that silently ends its C string. So lex() checks the body's tokens first
 * (RFC 8259 §§2, 6, 7, 8.1: what jansson, the parser before, rejected) and
 * cJSON only builds the tree; lex() also guarantees cJSON never sees an
 * unterminated string or escape at the end of a body that has no NUL after
 * it. A body holding \u0000 (rare: partition keys may contain U+0000) is
 * parsed from a copy with each such escape replaced by the byte 0xFF, which
 * valid UTF-8 never contains; afterwards each such string gets its NULs
 * back and its real length in valueint (unused by cJSON for strings), see
 * str_val(). Other differences from jansson, accepted: numbers are doubles
 * (integers are checked for integrality and range, so 5.0 passes as 5), and
 * of duplicate keys the first wins (jansson: the last); nesting is capped
 * at CJSON_NESTING_LIMIT (1000). cJSON's allocator hooks are left alone.
 */
#include "kinesis/api_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <limits.h>

#include <cjson/cJSON.h>

#include "kinesis/base64.h"
#include "kinesis/hashkey.h"

/* ---- validation --------------------------------------------------------------------- */

/* [a-zA-Z0-9_.-]{1,max}: stream names and shard ids. */
static bool name_ok(const char *s, size_t max)
{
    if (!s) {
        return false;
    }
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok || n >= max) {
            return false;
        }
    }
    return n > 0;
}

int cn__kinesis_check_stream(const char *name)
{
    return name_ok(name, CN_KINESIS_STREAM_NAME_MAX) ? 0 : CN_EKINESIS_STREAM_NAME;
}

int cn__kinesis_check_shard_id(const char *id)
{
    return name_ok(id, CN_KINESIS_SHARD_ID_MAX) ? 0 : CN_EKINESIS_SHARD_ID;
}

/* The length of the strict UTF-8 sequence (no overlong forms, surrogates
 * or values above U+10FFFF; RFC 3629 §4) at s[0..len), len > 0, or 0. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || len < n) {
        return 0;
    }
    unsigned cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return n;
}

/* Number of code points in strict UTF-8, or -1. */
static ssize_t utf8_count(const unsigned char *s, size_t len)
{
    ssize_t count = 0;
    for (size_t i = 0; i < len; count++) {
        size_t n = utf8_seq(s + i, len - i);
        if (n == 0) {
            return -1;
        }
        i += n;
    }
    return count;
}

bool cn__kinesis_utf8_ok(const char *s, size_t len)
{
    return utf8_count((const unsigned char *)s, len) >= 0;
}

int cn__kinesis_check_partition_key(const char *pk, size_t len)
{
    if (!pk || len == 0) {
        return CN_EKINESIS_PARTITION_KEY;
    }
    ssize_t n = utf8_count((const unsigned char *)pk, len);
    return n >= 1 && n <= CN_KINESIS_PARTITION_KEY_MAX ? 0 : CN_EKINESIS_PARTITION_KEY;
}

int cn__kinesis_check_entry(const struct cn_kinesis_entry *e)
{
    if (!e || (!e->data && e->data_len > 0)) {
        return -EINVAL;
    }
    int rc = cn__kinesis_check_partition_key(e->partition_key, e->partition_key_len);
    if (rc < 0) {
        return rc;
    }
    if (e->explicit_hash_key) {
        struct cn__hashkey k;
        if (cn__hashkey_parse(&k, e->explicit_hash_key, strlen(e->explicit_hash_key)) < 0) {
            return CN_EKINESIS_HASH_KEY;
        }
    }
    if (e->data_len > CN_KINESIS_RECORD_MAX ||
        e->data_len + e->partition_key_len > CN_KINESIS_RECORD_MAX) {
        return CN_EKINESIS_RECORD_TOO_LARGE;
    }
    return 0;
}

int cn__kinesis_check_entries(const struct cn_kinesis_entry *e, size_t n, size_t *bad)
{
    *bad = n;
    if (n == 0 || n > CN_KINESIS_PUT_RECORDS_MAX) {
        return CN_EKINESIS_TOO_MANY_RECORDS;
    }
    if (!e) {
        return -EINVAL;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = cn__kinesis_check_entry(&e[i]);
        if (rc < 0) {
            *bad = i;
            return rc;
        }
        total += e[i].data_len + e[i].partition_key_len; /* each <= 1 MiB: no overflow */
    }
    return total > CN_KINESIS_REQUEST_MAX ? CN_EKINESIS_REQUEST_TOO_LARGE : 0;
}

/* ---- request bodies ------------------------------------------------------------------ */

/* A buffer allocated once with its worst-case size: writes never check. */
struct wbuf {
    char *p;
    size_t len;
};

static void put(struct wbuf *b, const char *s, size_t n)
{
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void puts_(struct wbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* A JSON string (RFC 8259 §7) of validated UTF-8: quotes, backslashes and
 * control characters escaped, at most 6 bytes per input byte. */
static void put_json_str(struct wbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    b->p[b->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            b->p[b->len++] = '\\';
            b->p[b->len++] = (char)c;
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(b, esc, sizeof esc);
        } else {
            b->p[b->len++] = (char)c;
        }
    }
    b->p[b->len++] = '"';
}

/* Worst case of one entry's JSON object. */
static size_t entry_cap(const struct cn_kinesis_entry *e)
{
    return 64 + cn__base64_encoded_len(e->data_len) + 6 * e->partition_key_len +
           CN_KINESIS_HASH_KEY_MAX;
}

static void put_entry(struct wbuf *b, const struct cn_kinesis_entry *e)
{
    puts_(b, "\"Data\":\"");
    b->len += cn__base64_encode(b->p + b->len, e->data, e->data_len);
    puts_(b, "\",\"PartitionKey\":");
    put_json_str(b, e->partition_key, e->partition_key_len);
    if (e->explicit_hash_key) {
        puts_(b, ",\"ExplicitHashKey\":\"");
        puts_(b, e->explicit_hash_key); /* validated: digits only */
        puts_(b, "\"");
    }
}

int cn__kinesis_body_put_records(const char *stream, const struct cn_kinesis_entry *e, size_t n,
                                 char **body, size_t *len)
{
    size_t cap = 64 + strlen(stream);
    for (size_t i = 0; i < n; i++) {
        cap += entry_cap(&e[i]);
    }
    struct wbuf b = {.p = malloc(cap)};
    if (!b.p) {
        return -ENOMEM;
    }
    puts_(&b, "{\"StreamName\":\"");
    puts_(&b, stream); /* validated: [a-zA-Z0-9_.-] */
    puts_(&b, "\",\"Records\":[");
    for (size_t i = 0; i < n; i++) {
        puts_(&b, i ? ",{" : "{");
        put_entry(&b, &e[i]);
        puts_(&b, "}");
    }
    puts_(&b, "]}");
    *body = b.p;
    *len = b.len;
    return 0;
}

int cn__kinesis_body_put_record(const char *stream, const struct cn_kinesis_entry *e,
                                const char *seq_for_ordering, char **body, size_t *len)
{
    size_t cap = 96 + strlen(stream) + entry_cap(e) + (seq_for_ordering ? CN_KINESIS_SEQ_MAX : 0);
    struct wbuf b = {.p = malloc(cap)};
    if (!b.p) {
        return -ENOMEM;
    }
    puts_(&b, "{\"StreamName\":\"");
    puts_(&b, stream);
    puts_(&b, "\",");
    put_entry(&b, e);
    if (seq_for_ordering) {
        puts_(&b, ",\"SequenceNumberForOrdering\":\"");
        puts_(&b, seq_for_ordering); /* validated by the caller: digits only */
        puts_(&b, "\"");
    }
    puts_(&b, "}");
    *body = b.p;
    *len = b.len;
    return 0;
}

/* ---- errors ------------------------------------------------------------------------- */

static void copy_clean(char *dst, size_t cap, const char *src, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; src && i < n && k + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[k++] = c < 0x20 || c == 0x7F ? ' ' : (char)c; /* keeps log lines single */
    }
    dst[k] = '\0';
}

void cn__kinesis_error_set(struct cn_kinesis_error *err, int code, int status, const char *type,
                           size_t type_len, const char *msg, size_t msg_len)
{
    if (!err) {
        return;
    }
    err->code = code;
    err->http_status = status;
    err->retryable = cn_kinesis_retryable(code);
    copy_clean(err->type, sizeof err->type, type, type ? type_len : 0);
    copy_clean(err->message, sizeof err->message, msg, msg ? msg_len : 0);
}

static const struct {
    const char *type;
    int code;
} error_types[] = {
    {"ProvisionedThroughputExceededException", CN_EKINESIS_THROUGHPUT},
    {"LimitExceededException", CN_EKINESIS_LIMIT},
    {"KMSThrottlingException", CN_EKINESIS_KMS_THROTTLED},
    {"ThrottlingException", CN_EKINESIS_THROTTLING},
    {"Throttling", CN_EKINESIS_THROTTLING},
    {"TooManyRequestsException", CN_EKINESIS_THROTTLING},
    {"RequestLimitExceeded", CN_EKINESIS_THROTTLING},
    {"InternalFailure", CN_EKINESIS_INTERNAL},
    {"InternalFailureException", CN_EKINESIS_INTERNAL},
    {"InternalServerError", CN_EKINESIS_INTERNAL},
    {"InternalError", CN_EKINESIS_INTERNAL},
    {"ServiceUnavailable", CN_EKINESIS_UNAVAILABLE},
    {"ServiceUnavailableException", CN_EKINESIS_UNAVAILABLE},
    {"ValidationException", CN_EKINESIS_VALIDATION},
    {"SerializationException", CN_EKINESIS_VALIDATION},
    {"MissingParameter", CN_EKINESIS_VALIDATION},
    {"InvalidParameterCombination", CN_EKINESIS_VALIDATION},
    {"InvalidParameterValue", CN_EKINESIS_VALIDATION},
    {"InvalidQueryParameter", CN_EKINESIS_VALIDATION},
    {"MalformedQueryString", CN_EKINESIS_VALIDATION},
    {"UnknownOperationException", CN_EKINESIS_VALIDATION},
    {"InvalidAction", CN_EKINESIS_VALIDATION},
    {"InvalidArgumentException", CN_EKINESIS_INVALID_ARGUMENT},
    {"ResourceNotFoundException", CN_EKINESIS_NOT_FOUND},
    {"ResourceInUseException", CN_EKINESIS_IN_USE},
    {"AccessDeniedException", CN_EKINESIS_ACCESS_DENIED},
    {"AccessDenied", CN_EKINESIS_ACCESS_DENIED},
    {"NotAuthorized", CN_EKINESIS_ACCESS_DENIED},
    {"OptInRequired", CN_EKINESIS_ACCESS_DENIED},
    {"ExpiredTokenException", CN_EKINESIS_EXPIRED_TOKEN},
    {"ExpiredToken", CN_EKINESIS_EXPIRED_TOKEN},
    {"RequestExpired", CN_EKINESIS_EXPIRED_TOKEN},
    {"UnrecognizedClientException", CN_EKINESIS_AUTH},
    {"IncompleteSignature", CN_EKINESIS_AUTH},
    {"IncompleteSignatureException", CN_EKINESIS_AUTH},
    {"InvalidSignatureException", CN_EKINESIS_AUTH},
    {"SignatureDoesNotMatch", CN_EKINESIS_AUTH},
    {"MissingAuthenticationToken", CN_EKINESIS_AUTH},
    {"MissingAuthenticationTokenException", CN_EKINESIS_AUTH},
    {"InvalidClientTokenId", CN_EKINESIS_AUTH},
    {"ExpiredIteratorException", CN_EKINESIS_EXPIRED_ITERATOR},
    {"KMSDisabledException", CN_EKINESIS_KMS},
    {"KMSInvalidStateException", CN_EKINESIS_KMS},
    {"KMSAccessDeniedException", CN_EKINESIS_KMS},
    {"KMSNotFoundException", CN_EKINESIS_KMS},
    {"KMSOptInRequired", CN_EKINESIS_KMS},
};

int cn__kinesis_error_code(const char *type, size_t len)
{
    /* "com.amazonaws.kinesis.v20131202#ResourceNotFoundException" and the
     * x-amzn-ErrorType form "ResourceNotFoundException:http://..." */
    const char *hash = memchr(type, '#', len);
    if (hash) {
        len -= (size_t)(hash + 1 - type);
        type = hash + 1;
    }
    const char *colon = memchr(type, ':', len);
    if (colon) {
        len = (size_t)(colon - type);
    }
    for (size_t i = 0; i < sizeof error_types / sizeof error_types[0]; i++) {
        if (strlen(error_types[i].type) == len && memcmp(error_types[i].type, type, len) == 0) {
            return error_types[i].code;
        }
    }
    return CN_EKINESIS;
}

bool cn_kinesis_retryable(int code)
{
    switch (code) {
    case CN_EKINESIS_THROUGHPUT:
    case CN_EKINESIS_LIMIT:
    case CN_EKINESIS_KMS_THROTTLED:
    case CN_EKINESIS_THROTTLING:
    case CN_EKINESIS_INTERNAL:
    case CN_EKINESIS_UNAVAILABLE:
    case -ECONNRESET:
    case -ECONNREFUSED:
    case -ECONNABORTED:
    case -EPIPE:
    case -ETIMEDOUT:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -ENETDOWN:
    case CN_EOF:
    case CN_EBROKEN:
    case CN_EHTTP_INCOMPLETE:
        return true;
    default:
        return false;
    }
}

static bool media_is(const char *ctype, size_t len, const char *want)
{
    size_t n = 0;
    while (n < len && ctype[n] != ';' && ctype[n] != ' ' && ctype[n] != '\t') {
        n++;
    }
    return n == strlen(want) && strncasecmp(ctype, want, n) == 0;
}

bool cn__kinesis_json_ctype(const char *ctype, size_t len)
{
    return ctype &&
           (media_is(ctype, len, CN__KINESIS_CTYPE) || media_is(ctype, len, "application/json"));
}

static int status_code(int status)
{
    if (status == 429) {
        return CN_EKINESIS_THROTTLING;
    }
    if (status == 503) {
        return CN_EKINESIS_UNAVAILABLE;
    }
    if (status >= 500) {
        return CN_EKINESIS_INTERNAL;
    }
    return status == 403 ? CN_EKINESIS_ACCESS_DENIED : CN_EKINESIS;
}

/* ---- the JSON text ----------------------------------------------------------------- */

/* Four hex digits: cJSON's own check reads a bad one as a \u0000 escape. */
static bool hex4(const unsigned char *s)
{
    for (int k = 0; k < 4; k++) {
        unsigned c = s[k];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

/* The string token at s[*pos] == '"' (RFC 8259 §7: no raw control
 * characters, only the listed escapes; §8.1: UTF-8). Moves *pos past it and
 * counts its \u0000 escapes in *nuls. */
static bool lex_string(const unsigned char *s, size_t len, size_t *pos, size_t *nuls)
{
    size_t i = *pos + 1;
    while (i < len && s[i] != '"') {
        size_t n = 1;
        if (s[i] == '\\') {
            if (len - i < 2 || s[i + 1] == 0 || !strchr("\"\\/bfnrtu", s[i + 1])) {
                return false;
            }
            n = 2;
            if (s[i + 1] == 'u') {
                if (len - i < 6 || !hex4(s + i + 2)) {
                    return false;
                }
                *nuls += memcmp(s + i + 2, "0000", 4) == 0;
                n = 6;
            }
        } else if (s[i] < 0x20 || (s[i] >= 0x80 && (n = utf8_seq(s + i, len - i)) == 0)) {
            return false; /* ASCII (n = 1) needs no decoding */
        }
        i += n;
    }
    *pos = i + 1;
    return i < len;
}

static size_t digits(const unsigned char *s, size_t len, size_t i)
{
    size_t n = 0;
    while (i + n < len && s[i + n] >= '0' && s[i + n] <= '9') {
        n++;
    }
    return n;
}

/* The number token at s[*pos] (RFC 8259 §6):
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, not followed by more of
 * the characters cJSON would take into it ("01", "1.", "1e", "-"). */
static bool lex_number(const unsigned char *s, size_t len, size_t *pos)
{
    size_t i = *pos + (s[*pos] == '-');
    size_t d = digits(s, len, i);
    if (d == 0 || (d > 1 && s[i] == '0')) {
        return false;
    }
    i += d;
    if (i < len && s[i] == '.') {
        d = digits(s, len, i + 1);
        if (d == 0) {
            return false;
        }
        i += 1 + d;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i += 1 + (i + 1 < len && (s[i + 1] == '+' || s[i + 1] == '-'));
        d = digits(s, len, i);
        if (d == 0) {
            return false;
        }
        i += d;
    }
    *pos = i;
    return i == len || !strchr(".eE+-", s[i]) || s[i] == 0;
}

/* The tokens of the body are JSON's: what RFC 8259 forbids and cJSON lets
 * through (see the top of the file). The structure is cJSON's to check.
 * On failure *at is where the bad token starts. */
static bool lex(const unsigned char *s, size_t len, size_t *nuls, size_t *at)
{
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        bool ok = true;
        *at = i;
        if (c == '"') {
            ok = lex_string(s, len, &i, nuls);
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            ok = lex_number(s, len, &i);
        } else if (c >= 0x80 || (c < 0x20 && c != '\t' && c != '\n' && c != '\r')) {
            ok = false; /* §2: only these whitespace bytes between tokens; no BOM */
        } else {
            i++;
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* A lexed body with each \u0000 escape inside a string replaced by the byte
 * 0xFF (which UTF-8 never holds) into out; returns its length. */
static size_t mark_nuls(const char *in, size_t len, char *out)
{
    bool in_str = false;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (in_str && in[i] == '\\') {
            if (in[i + 1] == 'u' && memcmp(in + i + 2, "0000", 4) == 0) { /* lexed: in bounds */
                out[o++] = (char)0xFF;
                i += 5;
                continue;
            }
            out[o++] = in[i++]; /* the escaped byte is copied below, even a quote */
        } else if (in[i] == '"') {
            in_str = !in_str;
        }
        out[o++] = in[i];
    }
    return o;
}

/* Gives the strings of a tree parsed from mark_nuls() output their NULs
 * back, with the real length + 1 in valueint. False if a key holds one
 * (jansson refused those too). */
static bool unmark_nuls(cJSON *v)
{
    for (; v; v = v->next) {
        if (v->string && strchr(v->string, 0xFF)) {
            return false;
        }
        if (cJSON_IsString(v) && v->valuestring && strchr(v->valuestring, 0xFF)) {
            size_t n = strlen(v->valuestring);
            for (size_t k = 0; k < n; k++) {
                v->valuestring[k] =
                    (unsigned char)v->valuestring[k] == 0xFF ? '\0' : v->valuestring[k];
            }
            v->valueint = (int)(n + 1); /* n < body length <= INT_MAX */
        }
        if (v->child && !unmark_nuls(v->child)) {
            return false;
        }
    }
    return true;
}

/* The whole body as one JSON value (RFC 8259 §2: whitespace only after it),
 * or NULL; *at is where it went wrong. */
static cJSON *parse_text(const char *body, size_t len, size_t *at)
{
    size_t nuls = 0;
    *at = 0;
    if (!body || len == 0 || len > INT_MAX || !lex((const unsigned char *)body, len, &nuls, at)) {
        return NULL;
    }
    char *copy = nuls ? malloc(len) : NULL;
    if (nuls && !copy) {
        return NULL;
    }
    const char *text = copy ? copy : body;
    size_t n = copy ? mark_nuls(body, len, copy) : len;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    size_t i = end ? (size_t)(end - text) : 0;
    while (root && i < n &&
           (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) {
        i++;
    }
    if (root && (i < n || (copy && !unmark_nuls(root)))) {
        cJSON_Delete(root);
        root = NULL;
    }
    *at = i;
    free(copy);
    return root;
}

/* A member of o by its exact (case-sensitive) name; the first of duplicates. */
static cJSON *item(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* The value of a string item and its length (NULs included, see unmark_nuls). */
static const char *str_val(const cJSON *v, size_t *n)
{
    *n = v->valueint > 0 ? (size_t)v->valueint - 1 : strlen(v->valuestring);
    return v->valuestring;
}

/* The string member key of o, or NULL; its length in *n. */
static const char *str_member(const cJSON *o, const char *key, size_t *n)
{
    cJSON *v = item(o, key);
    return cJSON_IsString(v) ? str_val(v, n) : NULL;
}

int cn__kinesis_error_response(int status, const char *ctype, size_t ctype_len, const char *errtype,
                               size_t errtype_len, const char *body, size_t len,
                               struct cn_kinesis_error *err)
{
    cJSON *root = NULL;
    if (cn__kinesis_json_ctype(ctype, ctype_len) || (len > 0 && body[0] == '{')) {
        size_t at;
        root = parse_text(body, len, &at);
    }
    if (root && !cJSON_IsObject(root) && !cJSON_IsArray(root)) {
        cJSON_Delete(root); /* jansson took objects and arrays only */
        root = NULL;
    }
    size_t tlen = 0, mlen = 0;
    const char *type = cJSON_IsObject(root) ? str_member(root, "__type", &tlen) : NULL;
    const char *msg = NULL;
    if (cJSON_IsObject(root)) {
        msg = str_member(root, "message", &mlen);
        msg = msg ? msg : str_member(root, "Message", &mlen);
    }
    if (!type && errtype && errtype_len > 0) {
        type = errtype;
        tlen = errtype_len;
    }
    int code = type ? cn__kinesis_error_code(type, tlen) : CN_EKINESIS;
    if (code == CN_EKINESIS) {
        code = status_code(status);
    }
    const char *shown = type ? memchr(type, '#', tlen) : NULL;
    if (shown) {
        tlen -= (size_t)(shown + 1 - type);
        type = shown + 1;
    }
    char fallback[96];
    if (!msg) {
        mlen = (size_t)snprintf(fallback, sizeof fallback, "HTTP %d%s", status,
                                root ? "" : " without a JSON error body");
        msg = fallback;
    }
    cn__kinesis_error_set(err, code, status, type, tlen, msg, mlen);
    cJSON_Delete(root);
    return code;
}

/* ---- response parsing helpers ---------------------------------------------------------- */

static int bad(struct cn_kinesis_error *err, const char *what)
{
    cn__kinesis_error_set(err, CN_EKINESIS_BAD_RESPONSE, 0, NULL, 0, what, strlen(what));
    return CN_EKINESIS_BAD_RESPONSE;
}

/* The body as a JSON object, or NULL with err set. */
static cJSON *load(const char *body, size_t len, struct cn_kinesis_error *err)
{
    size_t at;
    cJSON *root = parse_text(body, len, &at);
    if (!root) {
        char what[256];
        snprintf(what, sizeof what, "response is not JSON: error at or before byte %zu", at);
        bad(err, what);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        bad(err, "response is not a JSON object");
        return NULL;
    }
    return root;
}

/* Copies the string member key of o into dst[cap] (NUL-terminated).
 * Returns 0, 1 if absent or null (an error if required), or
 * CN_EKINESIS_BAD_RESPONSE: not a string, too long, or holding a NUL. */
static int get_str(cJSON *o, const char *key, bool required, char *dst, size_t cap,
                   struct cn_kinesis_error *err)
{
    char what[160];
    cJSON *v = item(o, key);
    dst[0] = '\0';
    if (!v || cJSON_IsNull(v)) {
        if (!required) {
            return 1;
        }
        snprintf(what, sizeof what, "response lacks %s", key);
        return bad(err, what);
    }
    size_t n = 0;
    const char *s = cJSON_IsString(v) ? str_val(v, &n) : NULL;
    if (!s || n >= cap || memchr(s, 0, n)) {
        snprintf(what, sizeof what, "response field %s is not a string of at most %zu bytes", key,
                 cap - 1);
        return bad(err, what);
    }
    memcpy(dst, s, n + 1);
    return 0;
}

/* A decimal string of digits only, no leading zero (sequence numbers). */
static bool decimal_ok(const char *s)
{
    size_t n = strspn(s, "0123456789");
    return n > 0 && s[n] == '\0' && (s[0] != '0' || n == 1);
}

static int get_seq(cJSON *o, const char *key, bool required, char *dst,
                   struct cn_kinesis_error *err)
{
    int rc = get_str(o, key, required, dst, CN_KINESIS_SEQ_MAX, err);
    if (rc == 0 && !decimal_ok(dst)) {
        char what[160];
        snprintf(what, sizeof what, "response field %s is not a decimal sequence number", key);
        return bad(err, what);
    }
    return rc;
}

static int get_hash_key(cJSON *o, const char *key, char *dst, struct cn_kinesis_error *err)
{
    int rc = get_str(o, key, true, dst, CN_KINESIS_HASH_KEY_MAX, err);
    struct cn__hashkey k;
    if (rc == 0 && cn__hashkey_parse(&k, dst, strlen(dst)) < 0) {
        char what[160];
        snprintf(what, sizeof what, "response field %s is not a hash key", key);
        return bad(err, what);
    }
    return rc;
}

/* An integer member in [min, max]: 0, 1 if absent, or bad. */
static int get_int(cJSON *o, const char *key, int64_t min, int64_t max, int64_t *out,
                   struct cn_kinesis_error *err)
{
    cJSON *v = item(o, key);
    if (!v || cJSON_IsNull(v)) {
        return 1;
    }
    /* cJSON numbers are doubles: in range first (2^63 is INT64_MAX as a
     * double but not an int64_t), then integral. */
    double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
    if (!cJSON_IsNumber(v) || !(d >= (double)min && d <= (double)max && d < 0x1p63) ||
        d != (double)(int64_t)d) {
        char what[160];
        snprintf(what, sizeof what, "response field %s is not an integer in range", key);
        return bad(err, what);
    }
    *out = (int64_t)d;
    return 0;
}

/* Seconds since the epoch (a JSON number, fractional allowed): 0, 1, bad. */
static int get_time(cJSON *o, const char *key, double *out, struct cn_kinesis_error *err)
{
    cJSON *v = item(o, key);
    if (!v || cJSON_IsNull(v)) {
        return 1;
    }
    double t = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (!(t >= 0 && t < 1e12)) { /* also NaN; 1e12 s is year 33658 */
        char what[160];
        snprintf(what, sizeof what, "response field %s is not a timestamp", key);
        return bad(err, what);
    }
    *out = t;
    return 0;
}

/* ---- DescribeStreamSummary ------------------------------------------------------------- */

static enum cn_kinesis_stream_status status_of(const char *s)
{
    static const char *const names[] = {"", "CREATING", "DELETING", "ACTIVE", "UPDATING"};
    for (int i = 1; i < 5; i++) {
        if (strcmp(s, names[i]) == 0) {
            return (enum cn_kinesis_stream_status)i;
        }
    }
    return CN_KINESIS_STATUS_UNKNOWN;
}

int cn__kinesis_parse_summary(const char *body, size_t len, struct cn_kinesis_stream_summary *out,
                              struct cn_kinesis_error *err)
{
    cJSON *root = load(body, len, err);
    if (!root) {
        return CN_EKINESIS_BAD_RESPONSE;
    }
    memset(out, 0, sizeof *out);
    cJSON *d = item(root, "StreamDescriptionSummary");
    char status[32], mode[32] = "";
    int64_t shards = 0, hours = 0;
    int rc = cJSON_IsObject(d) ? 0 : bad(err, "response lacks StreamDescriptionSummary");
    rc = rc < 0 ? rc : get_str(d, "StreamName", true, out->name, sizeof out->name, err);
    rc = rc < 0 ? rc : get_str(d, "StreamARN", false, out->arn, sizeof out->arn, err);
    rc = rc < 0 ? rc : get_str(d, "StreamStatus", true, status, sizeof status, err);
    rc = rc < 0 ? rc : get_int(d, "OpenShardCount", 0, INT32_MAX, &shards, err);
    rc = rc < 0 ? rc : get_int(d, "RetentionPeriodHours", 0, INT32_MAX, &hours, err);
    rc = rc < 0 ? rc : get_time(d, "StreamCreationTimestamp", &out->creation_timestamp, err);
    cJSON *md = cJSON_IsObject(d) ? item(d, "StreamModeDetails") : NULL;
    if (rc >= 0 && cJSON_IsObject(md)) {
        rc = get_str(md, "StreamMode", false, mode, sizeof mode, err);
    }
    cJSON_Delete(root);
    if (rc < 0) {
        return rc;
    }
    out->status = status_of(status);
    out->open_shard_count = (int)shards;
    out->retention_hours = (int)hours;
    out->on_demand = strcmp(mode, "ON_DEMAND") == 0;
    return 0;
}

/* ---- ListShards -------------------------------------------------------------------- */

static int parse_shard(cJSON *s, struct cn_kinesis_shard *out, struct cn_kinesis_error *err)
{
    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(s)) {
        return bad(err, "a Shards entry is not an object");
    }
    cJSON *hk = item(s, "HashKeyRange");
    cJSON *sr = item(s, "SequenceNumberRange");
    if (!cJSON_IsObject(hk) || !cJSON_IsObject(sr)) {
        return bad(err, "a shard lacks HashKeyRange or SequenceNumberRange");
    }
    int rc = get_str(s, "ShardId", true, out->id, sizeof out->id, err);
    rc = rc < 0 ? rc : get_str(s, "ParentShardId", false, out->parent, sizeof out->parent, err);
    rc = rc < 0 ? rc
                : get_str(s, "AdjacentParentShardId", false, out->adjacent_parent,
                          sizeof out->adjacent_parent, err);
    rc = rc < 0 ? rc : get_hash_key(hk, "StartingHashKey", out->starting_hash_key, err);
    rc = rc < 0 ? rc : get_hash_key(hk, "EndingHashKey", out->ending_hash_key, err);
    rc = rc < 0 ? rc : get_seq(sr, "StartingSequenceNumber", true, out->starting_seq, err);
    rc = rc < 0 ? rc : get_seq(sr, "EndingSequenceNumber", false, out->ending_seq, err);
    if (rc < 0) {
        return rc;
    }
    if (cn__kinesis_check_shard_id(out->id) < 0) {
        return bad(err, "a ShardId is not [a-zA-Z0-9_.-]{1,128}");
    }
    out->open = out->ending_seq[0] == '\0';
    return 0;
}

static int append_shard(struct cn_kinesis_shard_list *l, const struct cn_kinesis_shard *s)
{
    if (l->count >= CN_KINESIS_LIST_SHARDS_MAX) {
        return -E2BIG;
    }
    if ((l->count & (l->count - 1)) == 0) { /* 0, 1, 2, 4...: double */
        size_t cap = l->count ? 2 * l->count : 4;
        struct cn_kinesis_shard *p = realloc(l->shards, cap * sizeof *p);
        if (!p) {
            return -ENOMEM;
        }
        l->shards = p;
    }
    l->shards[l->count++] = *s;
    return 0;
}

int cn__kinesis_parse_shards(const char *body, size_t len, enum cn_kinesis_shard_filter filter,
                             struct cn_kinesis_shard_list *list, char **next_token,
                             struct cn_kinesis_error *err)
{
    *next_token = NULL;
    cJSON *root = load(body, len, err);
    if (!root) {
        return CN_EKINESIS_BAD_RESPONSE;
    }
    cJSON *arr = item(root, "Shards");
    cJSON *tok = item(root, "NextToken");
    int rc = cJSON_IsArray(arr) ? 0 : bad(err, "response lacks the Shards array");
    size_t tlen = 0;
    const char *t = cJSON_IsString(tok) ? str_val(tok, &tlen) : NULL;
    if (rc == 0 && tok && !cJSON_IsNull(tok) && (!t || tlen == 0 || tlen > 65536)) {
        rc = bad(err, "response NextToken is not a string");
    }
    struct cn_kinesis_shard s;
    /* Walk the list: cJSON_GetArrayItem(i) would make the loop quadratic. */
    for (cJSON *e = rc == 0 ? arr->child : NULL; rc == 0 && e; e = e->next) {
        rc = parse_shard(e, &s, err);
        if (rc == 0 && (filter != CN_KINESIS_SHARDS_OPEN || s.open)) {
            rc = append_shard(list, &s);
        }
    }
    if (rc == 0 && cJSON_IsString(tok)) {
        *next_token = strdup(t); /* up to a U+0000, as before */
        rc = *next_token ? 0 : -ENOMEM;
    }
    cJSON_Delete(root);
    return rc;
}

/* ---- PutRecord(s) ---------------------------------------------------------------- */

/* A record's ShardId: present and a valid shard id (an empty one, e.g.
 * from a garbled answer, would be a success that names no shard). */
static int get_shard_id(cJSON *o, char out[CN_KINESIS_SHARD_ID_MAX + 1],
                        struct cn_kinesis_error *err)
{
    int rc = get_str(o, "ShardId", true, out, CN_KINESIS_SHARD_ID_MAX + 1, err);
    if (rc == 0 && cn__kinesis_check_shard_id(out) < 0) {
        return bad(err, "a ShardId is not [a-zA-Z0-9_.-]{1,128}");
    }
    return rc;
}

int cn__kinesis_parse_put_record(const char *body, size_t len, struct cn_kinesis_put_result *out,
                                 struct cn_kinesis_error *err)
{
    cJSON *root = load(body, len, err);
    if (!root) {
        return CN_EKINESIS_BAD_RESPONSE;
    }
    memset(out, 0, sizeof *out);
    int rc = get_shard_id(root, out->shard_id, err);
    rc = rc < 0 ? rc : get_seq(root, "SequenceNumber", true, out->sequence_number, err);
    cJSON_Delete(root);
    return rc;
}

static char *dup_member(cJSON *o, const char *key)
{
    size_t n = 0;
    const char *s = str_member(o, key, &n);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s ? s : "", n);
        d[n] = '\0';
    }
    return d;
}

/* One entry of PutRecords' Records: success (ShardId, SequenceNumber) or
 * failure (ErrorCode, ErrorMessage). */
static int parse_put_entry(cJSON *e, struct cn_kinesis_put_result *out,
                           struct cn_kinesis_error *err)
{
    if (!cJSON_IsObject(e)) {
        return bad(err, "a Records entry is not an object");
    }
    size_t n = 0;
    const char *code = str_member(e, "ErrorCode", &n);
    if (code) {
        out->code = cn__kinesis_error_code(code, n);
        out->error_code = dup_member(e, "ErrorCode");
        out->error_message = dup_member(e, "ErrorMessage");
        return out->error_code && out->error_message ? 0 : -ENOMEM;
    }
    int rc = get_shard_id(e, out->shard_id, err);
    return rc < 0 ? rc : get_seq(e, "SequenceNumber", true, out->sequence_number, err);
}

void cn_kinesis_put_records_result_free(struct cn_kinesis_put_records_result *r)
{
    if (!r) {
        return;
    }
    for (size_t i = 0; i < r->count; i++) {
        free(r->results[i].error_code);
        free(r->results[i].error_message);
    }
    free(r);
}

int cn__kinesis_parse_put_records(const char *body, size_t len, size_t n,
                                  struct cn_kinesis_put_records_result **out,
                                  struct cn_kinesis_error *err)
{
    *out = NULL;
    cJSON *root = load(body, len, err);
    if (!root) {
        return CN_EKINESIS_BAD_RESPONSE;
    }
    cJSON *arr = item(root, "Records");
    int64_t failed = -1;
    int rc = cJSON_IsArray(arr) && (size_t)cJSON_GetArraySize(arr) == n
                 ? 0
                 : bad(err, "response Records is not an array of one result per entry");
    rc = rc < 0 ? rc : get_int(root, "FailedRecordCount", 0, (int64_t)n, &failed, err);
    struct cn_kinesis_put_records_result *r =
        rc < 0 ? NULL : calloc(1, sizeof *r + n * sizeof r->results[0]);
    if (rc >= 0 && !r) {
        rc = -ENOMEM;
    }
    if (r) {
        r->results = (struct cn_kinesis_put_result *)(r + 1);
        cJSON *e = arr->child;
        for (; rc >= 0 && r->count < n; r->count++, e = e->next) {
            rc = parse_put_entry(e, &r->results[r->count], err);
            r->failed += r->results[r->count].code != 0;
        }
    }
    if (rc >= 0 && failed >= 0 && (size_t)failed != r->failed) {
        rc = bad(err, "response FailedRecordCount disagrees with its Records");
    }
    cJSON_Delete(root);
    if (rc < 0) {
        cn_kinesis_put_records_result_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ---- GetShardIterator, GetRecords ---------------------------------------------------- */

int cn__kinesis_parse_iterator(const char *body, size_t len, char it[CN_KINESIS_ITERATOR_MAX],
                               struct cn_kinesis_error *err)
{
    cJSON *root = load(body, len, err);
    if (!root) {
        return CN_EKINESIS_BAD_RESPONSE;
    }
    int rc = get_str(root, "ShardIterator", true, it, CN_KINESIS_ITERATOR_MAX, err);
    cJSON_Delete(root);
    return rc < 0 ? rc : it[0] ? 0 : bad(err, "response ShardIterator is empty");
}

void cn_kinesis_records_free(struct cn_kinesis_records *r)
{
    free(r);
}

/* Pass 1 over one record: checks types, adds the bytes it needs. */
static int measure_record(cJSON *rec, size_t *bytes, struct cn_kinesis_error *err)
{
    size_t klen = 0, slen = 0, dlen = 0;
    const char *d = cJSON_IsObject(rec) ? str_member(rec, "Data", &dlen) : NULL;
    const char *k = cJSON_IsObject(rec) ? str_member(rec, "PartitionKey", &klen) : NULL;
    const char *s = cJSON_IsObject(rec) ? str_member(rec, "SequenceNumber", &slen) : NULL;
    if (!d || !k || !s) {
        return bad(err, "a record lacks Data, PartitionKey or SequenceNumber strings");
    }
    if (slen >= CN_KINESIS_SEQ_MAX || !decimal_ok(s)) {
        return bad(err, "a record SequenceNumber is not a decimal sequence number");
    }
    ssize_t n = cn__base64_decoded_len(d, dlen);
    if (n < 0) {
        return bad(err, "a record Data is not base64");
    }
    *bytes += (size_t)n + klen + 1 + slen + 1;
    return 0;
}

/* Pass 2: fills one record, its bytes at *pos. */
static int fill_record(cJSON *rec, struct cn_kinesis_record *out, char **pos,
                       struct cn_kinesis_error *err)
{
    size_t klen = 0, slen = 0, dlen = 0;
    const char *d = str_member(rec, "Data", &dlen);
    const char *k = str_member(rec, "PartitionKey", &klen);
    const char *s = str_member(rec, "SequenceNumber", &slen);
    ssize_t n = cn__base64_decode(*pos, (size_t)cn__base64_decoded_len(d, dlen), d, dlen);
    if (n < 0) {
        return bad(err, "a record Data is not base64");
    }
    out->data = (const uint8_t *)*pos;
    out->data_len = (size_t)n;
    *pos += n;
    memcpy(*pos, k, klen + 1);
    out->partition_key = *pos;
    out->partition_key_len = klen;
    *pos += klen + 1;
    memcpy(*pos, s, slen + 1);
    out->sequence_number = *pos;
    *pos += slen + 1;
    double t = -1;
    out->arrival_ms = -1;
    int rc = get_time(rec, "ApproximateArrivalTimestamp", &t, err);
    if (rc == 0) {
        out->arrival_ms = (int64_t)(t * 1000.0 + 0.5); /* t >= 0: rounds, no libm */
    }
    return rc < 0 ? rc : 0;
}

int cn__kinesis_parse_records(const char *body, size_t len, struct cn_kinesis_records **out,
                              struct cn_kinesis_error *err)
{
    *out = NULL;
    cJSON *root = load(body, len, err);
    if (!root) {
        return CN_EKINESIS_BAD_RESPONSE;
    }
    cJSON *arr = item(root, "Records");
    const char *next = NULL;
    size_t nlen = 0, n = cJSON_IsArray(arr) ? (size_t)cJSON_GetArraySize(arr) : 0, bytes = 0;
    int64_t behind = -1;
    int rc = cJSON_IsArray(arr) ? 0 : bad(err, "response lacks the Records array");
    cJSON *it = item(root, "NextShardIterator");
    if (rc == 0 && it && !cJSON_IsNull(it)) {
        next = cJSON_IsString(it) ? str_val(it, &nlen) : NULL;
        if (!next || nlen == 0 || nlen >= CN_KINESIS_ITERATOR_MAX || memchr(next, 0, nlen)) {
            rc = bad(err, "response NextShardIterator is not an iterator string");
        }
    }
    rc = rc < 0 ? rc : get_int(root, "MillisBehindLatest", 0, INT64_MAX, &behind, err);
    for (cJSON *e = rc >= 0 ? arr->child : NULL; rc >= 0 && e; e = e->next) {
        rc = measure_record(e, &bytes, err);
    }
    struct cn_kinesis_records *r = NULL;
    if (rc >= 0) {
        r = malloc(sizeof *r + n * sizeof r->records[0] + bytes + nlen + 1);
        rc = r ? 0 : -ENOMEM;
    }
    if (r) {
        r->records = (struct cn_kinesis_record *)(r + 1);
        r->count = n;
        r->millis_behind_latest = behind;
        char *pos = (char *)(r->records + n);
        cJSON *e = arr->child;
        for (size_t i = 0; rc >= 0 && i < n; i++, e = e->next) {
            rc = fill_record(e, &r->records[i], &pos, err);
        }
        r->next_iterator = next ? memcpy(pos, next, nlen + 1) : NULL;
    }
    cJSON_Delete(root);
    if (rc < 0) {
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}
