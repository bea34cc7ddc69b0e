/* SPDX-License-Identifier: MIT */
/*
 * AWS credentials, region and endpoint resolution (rules in creds.h).
 *
 * Owns struct cn_aws_creds (one allocation, wiped on free), a small INI
 * reader for the shared credentials and config files, and endpoint URL
 * parsing. The reader streams each file through one line buffer and keeps
 * only the keys it was asked for, from the one section it was asked for, so
 * memory is bounded by the limits in creds.h whatever the file holds. All
 * working memory sits in one heap block (`struct work`) that is wiped
 * before it is freed, since it holds secrets.
 *
 * Called once when a Kinesis client is created; does blocking file I/O.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "creds.h"

/* ---- credentials ------------------------------------------------------------- */

static bool printable(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return false;
        }
    }
    return true;
}

static int creds_make(struct cn_aws_creds **out, const char *id, const char *secret,
                      const char *token, const char *source)
{
    *out = NULL;
    if (id == NULL || secret == NULL || id[0] == '\0' || secret[0] == '\0') {
        return -EINVAL;
    }
    if (token != NULL && token[0] == '\0') {
        token = NULL;
    }
    size_t il = strlen(id), sl = strlen(secret), tl = token != NULL ? strlen(token) : 0;
    if (il > CN_AWS_KEY_ID_MAX || sl > CN_AWS_SECRET_MAX || tl > CN_AWS_TOKEN_MAX ||
        !printable(id) || !printable(secret) || (token != NULL && !printable(token))) {
        return -EINVAL;
    }
    size_t size = sizeof(struct cn_aws_creds) + il + sl + tl + 3;
    struct cn_aws_creds *c = calloc(1, size);
    if (c == NULL) {
        return -ENOMEM;
    }
    char *p = c->data;
    memcpy(p, id, il + 1);
    c->access_key_id = p;
    p += il + 1;
    memcpy(p, secret, sl + 1);
    c->secret_access_key = p;
    p += sl + 1;
    if (token != NULL) {
        memcpy(p, token, tl + 1);
        c->session_token = p;
    }
    c->access_key_id_len = il;
    c->secret_access_key_len = sl;
    c->session_token_len = tl;
    c->source = source;
    c->size = size;
    *out = c;
    return 0;
}

int cn_aws_creds_new(struct cn_aws_creds **out, const char *access_key_id,
                     const char *secret_access_key, const char *session_token)
{
    return creds_make(out, access_key_id, secret_access_key, session_token, "explicit");
}

void cn_aws_creds_free(struct cn_aws_creds *c)
{
    if (c != NULL) {
        OPENSSL_cleanse(c, c->size);
        free(c);
    }
}

int cn_aws_creds_format(const struct cn_aws_creds *c, char *buf, size_t cap)
{
    if (c == NULL) {
        return snprintf(buf, cap, "(no credentials)");
    }
    /* Like `aws configure list`: only the key id's last 4 characters. */
    size_t show = c->access_key_id_len > 4 ? 4 : 0;
    char masked[CN_AWS_KEY_ID_MAX + 1];
    size_t hide = c->access_key_id_len - show;
    memset(masked, '*', hide);
    memcpy(masked + hide, c->access_key_id + hide, show);
    masked[c->access_key_id_len] = '\0';
    return snprintf(buf, cap, "access key %s, secret <redacted>, session token %s, from %s", masked,
                    c->session_token != NULL ? "<redacted>" : "(none)", c->source);
}

/* ---- the INI reader ---------------------------------------------------------- */

enum key { K_ID, K_SECRET, K_TOKEN, K_REGION, NKEYS };

static const char *const key_names[NKEYS] = {
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "region",
};

/* What one file says about one profile. */
struct profile {
    bool read;    /* the file was looked at */
    bool section; /* the profile's section was found */
    bool has[NKEYS];
    char val[NKEYS][CN_AWS_INI_LINE_MAX + 1];
};

struct work {
    struct cn_aws_config *cfg;
    const char *profile;
    bool profile_named; /* by opts or AWS_PROFILE: missing it is an error */
    char path[2][CN_AWS_URL_MAX + CN_AWS_HOST_MAX];
    struct profile file[2]; /* 0: credentials, 1: config */
    char line[CN_AWS_INI_LINE_MAX + 2];
};

enum { F_CREDENTIALS, F_CONFIG };

__attribute__((format(printf, 3, 4))) static int fail(struct cn_aws_config *cfg, int rc,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cfg->detail, sizeof cfg->detail, fmt, ap);
    va_end(ap);
    return rc;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        s[--n] = '\0';
    }
    return s;
}

/* Does section header text `name` (inside the brackets, trimmed) select
 * the profile? Config files say [profile x], except [default]. */
static bool section_matches(char *name, const char *profile, bool config)
{
    if (!config) {
        return strcmp(name, profile) == 0;
    }
    if (strncmp(name, "profile", 7) == 0 && (name[7] == ' ' || name[7] == '\t')) {
        return strcmp(trim(name + 8), profile) == 0;
    }
    return strcmp(name, "default") == 0 && strcmp(profile, "default") == 0;
}

struct ini_state {
    bool any;   /* a section has begun */
    bool in;    /* inside the wanted section */
    bool value; /* the last line set a key: indented lines continue it */
};

/* Handles one line; returns 0 or CN_EAWS_CONFIG. */
static int ini_line(struct work *w, struct profile *pr, char *line, bool config,
                    struct ini_state *st)
{
    bool indented = line[0] == ' ' || line[0] == '\t';
    char *t = trim(line);
    if (*t == '\0') {
        st->value = false;
        return 0;
    }
    if (*t == '#' || *t == ';' || (indented && st->value)) {
        /* A comment, or a nested value of the key above (config "s3 ="). */
        return 0;
    }
    if (*t == '[') {
        char *end = strchr(t, ']');
        if (end == NULL || trim(end + 1)[0] != '\0') {
            return CN_EAWS_CONFIG;
        }
        *end = '\0';
        st->any = true;
        st->value = false;
        st->in = section_matches(trim(t + 1), w->profile, config);
        pr->section |= st->in;
        return 0;
    }
    char *eq = strpbrk(t, "=:");
    if (eq == NULL || !st->any || eq == t) {
        return CN_EAWS_CONFIG;
    }
    st->value = true;
    if (!st->in) {
        return 0;
    }
    *eq = '\0';
    char *k = trim(t), *v = trim(eq + 1);
    for (char *c = k; *c != '\0'; c++) {
        *c = (char)tolower((unsigned char)*c);
    }
    for (int i = 0; i < NKEYS; i++) {
        if (strcmp(k, key_names[i]) == 0) {
            /* Later lines win, as in botocore's parser. */
            memcpy(pr->val[i], v, strlen(v) + 1);
            pr->has[i] = true;
        }
    }
    return 0;
}

static int ini_read(struct work *w, int which)
{
    struct profile *pr = &w->file[which];
    const char *path = w->path[which];
    bool config = which == F_CONFIG;
    struct ini_state st = {0};
    if (pr->read) {
        return 0;
    }
    pr->read = true;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return errno == ENOENT ? 0 : fail(w->cfg, -errno, "%s: cannot open", path);
    }
    size_t total = 0, lineno = 0;
    int rc = 0;
    while (rc == 0 && fgets(w->line, sizeof w->line, f) != NULL) {
        size_t n = strlen(w->line);
        lineno++;
        total += n;
        if (total > CN_AWS_INI_FILE_MAX) {
            rc = fail(w->cfg, CN_EAWS_CONFIG, "%s: over %d bytes", path, CN_AWS_INI_FILE_MAX);
        } else if (n > CN_AWS_INI_LINE_MAX && w->line[n - 1] != '\n') {
            rc = fail(w->cfg, CN_EAWS_CONFIG, "%s:%zu: line over %d bytes", path, lineno,
                      CN_AWS_INI_LINE_MAX);
        } else if (ini_line(w, pr, w->line, config, &st) < 0) {
            rc = fail(w->cfg, CN_EAWS_CONFIG,
                      "%s:%zu: not a [section], key = value or comment line", path, lineno);
        }
    }
    if (rc == 0 && ferror(f)) {
        rc = fail(w->cfg, -EIO, "%s: read error", path);
    }
    fclose(f);
    OPENSSL_cleanse(w->line, sizeof w->line);
    return rc;
}

/* ---- resolution ---------------------------------------------------------------- */

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

static int file_path(struct work *w, int which, const char *var, const char *leaf)
{
    const char *p = env(var);
    const char *home = env("HOME");
    int n;
    if (p != NULL) {
        n = snprintf(w->path[which], sizeof w->path[which], "%s", p);
    } else if (home != NULL) {
        n = snprintf(w->path[which], sizeof w->path[which], "%s/.aws/%s", home, leaf);
    } else {
        w->file[which].read = true; /* nowhere to look */
        return 0;
    }
    if (n < 0 || (size_t)n >= sizeof w->path[which]) {
        return fail(w->cfg, CN_EAWS_CONFIG, "%s: path too long", var);
    }
    return 0;
}

static int creds_from_profile(struct work *w, int which, const char *source)
{
    struct profile *pr = &w->file[which];
    int rc = ini_read(w, which);
    if (rc < 0 || (!pr->has[K_ID] && !pr->has[K_SECRET])) {
        return rc;
    }
    if (!pr->has[K_ID] || !pr->has[K_SECRET] || pr->val[K_ID][0] == '\0' ||
        pr->val[K_SECRET][0] == '\0') {
        return fail(w->cfg, CN_EAWS_PARTIAL_CREDENTIALS,
                    "%s: profile %s has only one of aws_access_key_id, aws_secret_access_key",
                    w->path[which], w->profile);
    }
    rc = creds_make(&w->cfg->creds, pr->val[K_ID], pr->val[K_SECRET],
                    pr->has[K_TOKEN] ? pr->val[K_TOKEN] : NULL, source);
    return rc < 0 ? fail(w->cfg, rc, "%s: profile %s: credential too long or not printable",
                         w->path[which], w->profile)
                  : 1;
}

static int resolve_creds(struct work *w, const struct cn_aws_config_opts *o)
{
    struct cn_aws_config *cfg = w->cfg;
    int rc;
    if (o->access_key_id != NULL || o->secret_access_key != NULL) {
        if (o->access_key_id == NULL || o->secret_access_key == NULL) {
            return fail(cfg, CN_EAWS_PARTIAL_CREDENTIALS, "explicit credentials need both parts");
        }
        rc = creds_make(&cfg->creds, o->access_key_id, o->secret_access_key, o->session_token,
                        "explicit");
        return rc < 0 ? fail(cfg, rc, "explicit credentials: empty, too long or not printable") : 0;
    }
    const char *id = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");
    if (id != NULL || secret != NULL) {
        if (id == NULL || secret == NULL) {
            return fail(cfg, CN_EAWS_PARTIAL_CREDENTIALS,
                        "only one of AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY is set");
        }
        rc = creds_make(&cfg->creds, id, secret, env("AWS_SESSION_TOKEN"), "environment");
        return rc < 0 ? fail(cfg, rc, "AWS_* credentials: too long or not printable") : 0;
    }
    if ((rc = creds_from_profile(w, F_CREDENTIALS, "shared credentials file")) != 0 ||
        (rc = creds_from_profile(w, F_CONFIG, "config file")) != 0) {
        return rc < 0 ? rc : 0;
    }
    if (w->profile_named && !w->file[F_CREDENTIALS].section && !w->file[F_CONFIG].section) {
        return fail(cfg, CN_EAWS_NO_PROFILE, "profile %s is in neither %s nor %s", w->profile,
                    w->path[F_CREDENTIALS], w->path[F_CONFIG]);
    }
    return fail(cfg, CN_EAWS_NO_CREDENTIALS,
                "no credentials: not given, not in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "not in profile %s of %s or %s",
                w->profile, w->path[F_CREDENTIALS], w->path[F_CONFIG]);
}

static bool valid_region(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n >= CN_AWS_REGION_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(islower((unsigned char)r[i]) || isdigit((unsigned char)r[i]) || r[i] == '-')) {
            return false;
        }
    }
    return true;
}

static int resolve_region(struct work *w, const struct cn_aws_config_opts *o)
{
    struct cn_aws_config *cfg = w->cfg;
    const char *r = o->region, *src = "explicit";
    if (r == NULL && (r = env("AWS_REGION")) != NULL) {
        src = "AWS_REGION";
    } else if (r == NULL && (r = env("AWS_DEFAULT_REGION")) != NULL) {
        src = "AWS_DEFAULT_REGION";
    }
    if (r == NULL) {
        int rc = ini_read(w, F_CONFIG);
        if (rc < 0) {
            return rc;
        }
        if (w->file[F_CONFIG].has[K_REGION] && w->file[F_CONFIG].val[K_REGION][0] != '\0') {
            r = w->file[F_CONFIG].val[K_REGION];
            src = "config file";
        }
    }
    if (r == NULL) {
        return fail(cfg, CN_EAWS_NO_REGION,
                    "no region: not given, not in AWS_REGION/AWS_DEFAULT_REGION, not in profile "
                    "%s of %s",
                    w->profile, w->path[F_CONFIG]);
    }
    if (!valid_region(r)) {
        return fail(cfg, -EINVAL, "region from %s is not [a-z0-9-]{1,63}", src);
    }
    strcpy(cfg->region, r);
    cfg->region_source = src;
    return 0;
}

static int resolve_endpoint(struct work *w, const struct cn_aws_config_opts *o)
{
    const char *service = o->service != NULL ? o->service : "kinesis";
    char var[64] = "AWS_ENDPOINT_URL_";
    size_t n = strlen(var);
    /* AWS_ENDPOINT_URL_<SERVICE>: uppercase, spaces and dashes as '_'. */
    for (const char *s = service; *s != '\0' && n + 1 < sizeof var; s++) {
        var[n++] = (*s == '-' || *s == ' ') ? '_' : (char)toupper((unsigned char)*s);
    }
    var[n] = '\0';
    const char *url = o->endpoint_url, *src = "the endpoint option";
    if (url == NULL && (url = env(var)) != NULL) {
        src = var;
    } else if (url == NULL && (url = env("AWS_ENDPOINT_URL")) != NULL) {
        src = "AWS_ENDPOINT_URL";
    }
    int rc = url != NULL ? cn_aws_endpoint_parse(&w->cfg->endpoint, url)
                         : cn_aws_endpoint_default(&w->cfg->endpoint, service, w->cfg->region);
    if (rc < 0) {
        return url != NULL
                   ? fail(w->cfg, rc, "endpoint URL from %s is not http[s]://host[:port]", src)
                   : fail(w->cfg, rc, "bad service name");
    }
    return 0;
}

int cn_aws_config_load(struct cn_aws_config *cfg, const struct cn_aws_config_opts *opts)
{
    static const struct cn_aws_config_opts none;
    const struct cn_aws_config_opts *o = opts != NULL ? opts : &none;
    memset(cfg, 0, sizeof *cfg);
    struct work *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return -ENOMEM;
    }
    w->cfg = cfg;
    const char *profile = o->profile != NULL ? o->profile : env("AWS_PROFILE");
    w->profile_named = profile != NULL;
    w->profile = profile != NULL ? profile : "default";
    int rc;
    if (strlen(w->profile) >= sizeof cfg->profile || !printable(w->profile)) {
        rc = fail(cfg, -EINVAL, "profile name too long or not printable");
    } else if ((rc = file_path(w, F_CREDENTIALS, "AWS_SHARED_CREDENTIALS_FILE", "credentials")) ==
                   0 &&
               (rc = file_path(w, F_CONFIG, "AWS_CONFIG_FILE", "config")) == 0) {
        strcpy(cfg->profile, w->profile);
        if ((rc = resolve_creds(w, o)) == 0 && (rc = resolve_region(w, o)) == 0) {
            rc = resolve_endpoint(w, o);
        }
    }
    OPENSSL_cleanse(w, sizeof *w);
    free(w);
    return rc;
}

void cn_aws_config_clear(struct cn_aws_config *cfg)
{
    if (cfg != NULL) {
        cn_aws_creds_free(cfg->creds);
        cfg->creds = NULL;
    }
}

/* ---- endpoints ----------------------------------------------------------------- */

static bool host_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

/* Splits "host[:port]" or "[v6][:port]" at authority[0..n). */
static int parse_authority(struct cn_aws_endpoint *ep, const char *a, size_t n)
{
    const char *host = a, *port = NULL;
    size_t hlen;
    bool v6 = n > 0 && a[0] == '[';
    if (v6) {
        const char *close = memchr(a, ']', n);
        if (close == NULL) {
            return CN_EAWS_ENDPOINT;
        }
        host = a + 1;
        hlen = (size_t)(close - host);
        if (close + 1 < a + n) {
            if (close[1] != ':') {
                return CN_EAWS_ENDPOINT;
            }
            port = close + 2;
        }
        for (size_t i = 0; i < hlen; i++) {
            if (!isxdigit((unsigned char)host[i]) && host[i] != ':' && host[i] != '.') {
                return CN_EAWS_ENDPOINT;
            }
        }
    } else {
        const char *colon = memchr(a, ':', n);
        hlen = colon != NULL ? (size_t)(colon - a) : n;
        port = colon != NULL ? colon + 1 : NULL;
        for (size_t i = 0; i < hlen; i++) {
            if (!host_char(host[i])) {
                return CN_EAWS_ENDPOINT;
            }
        }
    }
    if (hlen == 0 || hlen >= sizeof ep->host) {
        return CN_EAWS_ENDPOINT;
    }
    for (size_t i = 0; i < hlen; i++) {
        ep->host[i] = (char)tolower((unsigned char)host[i]);
    }
    ep->host[hlen] = '\0';
    ep->port = ep->tls ? 443 : 80;
    if (port != NULL) {
        size_t plen = (size_t)(a + n - port);
        unsigned long v = 0;
        for (size_t i = 0; i < plen; i++) {
            if (!isdigit((unsigned char)port[i]) ||
                (v = v * 10 + (unsigned long)(port[i] - '0')) > 65535) {
                return CN_EAWS_ENDPOINT;
            }
        }
        if (plen == 0 || v == 0) {
            return CN_EAWS_ENDPOINT;
        }
        ep->port = (uint16_t)v;
    }
    return 0;
}

int cn_aws_endpoint_parse(struct cn_aws_endpoint *ep, const char *url)
{
    memset(ep, 0, sizeof *ep);
    if (url == NULL) {
        return CN_EAWS_ENDPOINT;
    }
    const char *rest;
    if (strncasecmp(url, "https://", 8) == 0) {
        ep->tls = true;
        rest = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        rest = url + 7;
    } else {
        return CN_EAWS_ENDPOINT;
    }
    size_t alen = strcspn(rest, "/");
    const char *path = rest + alen;
    if (strpbrk(url, "?#@ \t\r\n") != NULL || !printable(url)) {
        return CN_EAWS_ENDPOINT;
    }
    int rc = parse_authority(ep, rest, alen);
    if (rc < 0) {
        return rc;
    }
    bool v6 = strchr(ep->host, ':') != NULL;
    bool dflt = ep->port == (ep->tls ? 443 : 80);
    int n = snprintf(ep->host_header, sizeof ep->host_header, "%s%s%s", v6 ? "[" : "", ep->host,
                     v6 ? "]" : "");
    if (!dflt) {
        snprintf(ep->host_header + n, sizeof ep->host_header - (size_t)n, ":%u", ep->port);
    }
    n = snprintf(ep->path, sizeof ep->path, "%s", *path != '\0' ? path : "/");
    if (n < 0 || (size_t)n >= sizeof ep->path) {
        return CN_EAWS_ENDPOINT;
    }
    n = snprintf(ep->url, sizeof ep->url, "%s://%s%s", ep->tls ? "https" : "http", ep->host_header,
                 ep->path);
    return n < 0 || (size_t)n >= sizeof ep->url ? CN_EAWS_ENDPOINT : 0;
}

int cn_aws_endpoint_default(struct cn_aws_endpoint *ep, const char *service, const char *region)
{
    char url[CN_AWS_URL_MAX];
    if (service == NULL || region == NULL || !valid_region(region) || service[0] == '\0') {
        memset(ep, 0, sizeof *ep);
        return -EINVAL;
    }
    for (const char *s = service; *s != '\0'; s++) {
        if (!host_char(*s)) {
            memset(ep, 0, sizeof *ep);
            return -EINVAL;
        }
    }
    const char *suffix = strncmp(region, "cn-", 3) == 0 ? "amazonaws.com.cn" : "amazonaws.com";
    int n = snprintf(url, sizeof url, "https://%s.%s.%s", service, region, suffix);
    if (n < 0 || (size_t)n >= sizeof url) {
        return CN_EAWS_ENDPOINT;
    }
    return cn_aws_endpoint_parse(ep, url);
}
