/* SPDX-License-Identifier: MIT */
/*
 * AWS credentials, region and endpoint configuration (kinesis layer).
 *
 * Proposed public API: everything prefixed cn_aws_ here is meant to move to
 * include/coronet/kinesis.h as is (struct cn_aws_creds may become opaque
 * there; cn__sigv4_sign reads its fields).
 *
 * Resolution order, as the AWS SDKs and botocore do it:
 *   credentials: explicit (opts) > AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
 *     / AWS_SESSION_TOKEN > shared credentials file [profile] > config file
 *     [profile name] (or [default]);
 *   profile: opts > AWS_PROFILE > "default";
 *   files: AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, AWS_CONFIG_FILE
 *     or ~/.aws/config;
 *   region: opts > AWS_REGION > AWS_DEFAULT_REGION > config file `region`;
 *   endpoint: opts > AWS_ENDPOINT_URL_<SERVICE> > AWS_ENDPOINT_URL >
 *     https://<service>.<region>.amazonaws.com (.com.cn for cn-* regions).
 * Empty environment variables count as unset.
 *
 * Files are parsed with a small INI reader: `[section]`, `key = value` (or
 * `key: value`), full-line comments starting with '#' or ';', keys
 * case-insensitive, values trimmed, no inline comments (a '#' after a value
 * is part of it, as in botocore), indented lines right after a key line
 * are its nested values and ignored (other indented lines are ordinary).
 * A line over CN_AWS_INI_LINE_MAX bytes, a file over
 * CN_AWS_INI_FILE_MAX bytes, a key outside a section, a line with no '=' or
 * an unterminated section header is CN_EAWS_CONFIG, with the file and line
 * in cfg->detail. A missing file is not an error.
 *
 * Secrets are never formatted: cn_aws_creds_format() redacts them, and
 * memory that held them is wiped before it is freed.
 */
#ifndef CORONET_KINESIS_CREDS_H
#define CORONET_KINESIS_CREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coronet/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CN_AWS_KEY_ID_MAX 128       /* AWS: access key ids are at most 128 chars */
#define CN_AWS_SECRET_MAX 128       /* longer secrets are -EINVAL */
#define CN_AWS_TOKEN_MAX 4096       /* session tokens (STS) stay well under */
#define CN_AWS_REGION_MAX 64        /* buffer size; regions are [a-z0-9-]{1,63} */
#define CN_AWS_PROFILE_MAX 128      /* buffer size for a profile name */
#define CN_AWS_HOST_MAX 256         /* buffer size for a host name */
#define CN_AWS_URL_MAX 512          /* buffer size for a URL or its path */
#define CN_AWS_INI_LINE_MAX 4096    /* bytes per line, newline excluded */
#define CN_AWS_INI_FILE_MAX 1048576 /* bytes per file */

/* One allocation holding the three strings; read-only once made. */
struct cn_aws_creds {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL when there is none */
    size_t access_key_id_len;
    size_t secret_access_key_len;
    size_t session_token_len;
    const char *source; /* static: "explicit", "environment", "shared credentials file"... */
    size_t size;        /* bytes allocated, wiped on free */
    char data[];
};

/*
 * Makes credentials from explicit strings (copied). session_token may be
 * NULL or "". Returns 0 with *out set; free with cn_aws_creds_free().
 * Errors: -EINVAL (NULL or empty key id or secret, a string over its maximum
 * or holding control characters), -ENOMEM.
 */
CN_EXTERN int cn_aws_creds_new(struct cn_aws_creds **out, const char *access_key_id,
                               const char *secret_access_key, const char *session_token);

/* Wipes and frees; accepts NULL. */
CN_EXTERN void cn_aws_creds_free(struct cn_aws_creds *c);

/*
 * Writes a log-safe description into buf (always NUL-terminated when cap >
 * 0): the key id with all but its last 4 characters masked, the secret
 * always redacted, whether a session token is present, and the source.
 * Returns the length it needed, as snprintf does. Accepts NULL creds.
 */
CN_EXTERN int cn_aws_creds_format(const struct cn_aws_creds *c, char *buf, size_t cap);

/* Where requests go. */
struct cn_aws_endpoint {
    bool tls;                              /* https */
    uint16_t port;                         /* 443 or 80 unless given */
    char host[CN_AWS_HOST_MAX];            /* to connect to and for SNI; lowercase, no brackets */
    char host_header[CN_AWS_HOST_MAX + 8]; /* Host value: [v6] brackets, ":port" if not default */
    char path[CN_AWS_URL_MAX];             /* base path, "/" by default */
    char url[CN_AWS_URL_MAX];              /* normalised scheme://host_header/path */
};

/*
 * Parses an endpoint URL "http[s]://host[:port][/path]" (host a name, IPv4
 * or [IPv6]); no user info, query or fragment.
 * Errors: CN_EAWS_ENDPOINT for anything else.
 */
CN_EXTERN int cn_aws_endpoint_parse(struct cn_aws_endpoint *ep, const char *url);

/*
 * The AWS endpoint https://<service>.<region>.amazonaws.com, or
 * .amazonaws.com.cn for regions starting "cn-".
 * Errors: -EINVAL (bad service or region text), CN_EAWS_ENDPOINT (too long).
 */
CN_EXTERN int cn_aws_endpoint_default(struct cn_aws_endpoint *ep, const char *service,
                                      const char *region);

/* Everything optional: NULL fields are resolved as the header comment says. */
struct cn_aws_config_opts {
    const char *access_key_id; /* explicit credentials: key id and secret together */
    const char *secret_access_key;
    const char *session_token;
    const char *profile;
    const char *region;
    const char *endpoint_url;
    const char *service; /* NULL: "kinesis" */
};

struct cn_aws_config {
    struct cn_aws_creds *creds;
    char profile[CN_AWS_PROFILE_MAX];
    char region[CN_AWS_REGION_MAX];
    const char *region_source; /* static: "explicit", "AWS_REGION", ... */
    struct cn_aws_endpoint endpoint;
    char detail[320]; /* after an error: what and where, never a secret */
};

/*
 * Resolves credentials, region and endpoint into *cfg (zeroed first).
 * Blocking file I/O on the shared files when the environment does not
 * answer: call at start-up, or through cn_offload(). Release with
 * cn_aws_config_clear(), also after an error.
 * Errors: CN_EAWS_NO_CREDENTIALS, CN_EAWS_PARTIAL_CREDENTIALS (a key id
 * without a secret or the reverse, anywhere), CN_EAWS_NO_PROFILE (a profile
 * named by opts or AWS_PROFILE is in neither file), CN_EAWS_CONFIG (a
 * malformed file), CN_EAWS_NO_REGION, CN_EAWS_ENDPOINT (a bad override URL),
 * -EINVAL (a bad region, or a credential over its maximum), -ENOMEM, or the
 * negative errno of a file that exists but cannot be read; cfg->detail says
 * more.
 */
CN_EXTERN int cn_aws_config_load(struct cn_aws_config *cfg, const struct cn_aws_config_opts *opts);

/* Frees and wipes the credentials; accepts a zeroed or failed cfg. */
CN_EXTERN void cn_aws_config_clear(struct cn_aws_config *cfg);

#ifdef __cplusplus
}
#endif

#endif /* CORONET_KINESIS_CREDS_H */
