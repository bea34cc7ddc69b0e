/* SPDX-License-Identifier: MIT */
/*
 * AWS credentials, region and endpoint resolution (kinesis/creds.c).
 *
 * Every case starts from a clean environment: the AWS_* variables unset and
 * HOME pointing at a fresh temporary directory, so the developer's own
 * ~/.aws never leaks in. Files are written there per case.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test.h"
#include "kinesis/creds.h"

#define DOC_SECRET_PLACEHOLDER "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static char home[64];

static void clean_env(void)
{
    static const char *const vars[] = {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_KINESIS",
    };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        unsetenv(vars[i]);
    }
    strcpy(home, "/tmp/cn-creds-XXXXXX");
    CN_ASSERT(mkdtemp(home) != NULL);
    setenv("HOME", home, 1);
    char aws[128];
    snprintf(aws, sizeof aws, "%s/.aws", home);
    CN_ASSERT_EQ(mkdir(aws, 0700), 0);
}

/* Writes `text` to $HOME/<rel>. */
static void write_file(const char *rel, const char *text, size_t n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", home, rel);
    FILE *f = fopen(path, "wb");
    CN_ASSERT(f != NULL);
    CN_ASSERT_EQ(fwrite(text, 1, n, f), n);
    fclose(f);
}

#define WRITE(rel, text) write_file(rel, text, strlen(text))

static void cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
    CN_ASSERT_EQ(system(cmd), 0);
}

static const struct cn_aws_config_opts with_region = {.region = "us-east-1"};

static int load(struct cn_aws_config *cfg, const struct cn_aws_config_opts *o)
{
    int rc = cn_aws_config_load(cfg, o);
    if (rc < 0) {
        /* The number, not cn_err_name(): until the CN_EAWS_* codes join the
         * runtime's table, libuv would allocate an "Unknown error" name. */
        printf("load: %d (%s)\n", rc, cfg->detail);
    }
    return rc;
}

static const char creds_file[] = "# the shared credentials file\n"
                                 "[default]\n"
                                 "aws_access_key_id = AKIDFILEDEFAULT\n"
                                 "aws_secret_access_key = secret-file-default\n"
                                 "\n"
                                 "; another profile\n"
                                 "[dev]\n"
                                 "  AWS_Access_Key_ID=AKIDFILEDEV   \n"
                                 "aws_secret_access_key:secret/file+dev=\n"
                                 "aws_session_token = token-file-dev\n";

static const char config_file[] = "[default]\n"
                                  "region = eu-west-1\n"
                                  "[profile dev]\n"
                                  "region = ap-southeast-2\n"
                                  "s3 =\n"
                                  "    addressing_style = path\n"
                                  "[profile   cfgonly ]\n"
                                  "region=us-west-2\n"
                                  "aws_access_key_id = AKIDCONFIGONLY\n"
                                  "aws_secret_access_key = secret-config-only\n"
                                  "[cfgonly]\n"
                                  "region = sa-east-1\n";

static void creds_explicit_beat_env_and_files(void)
{
    clean_env();
    WRITE(".aws/credentials", creds_file);
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret-env", 1);
    struct cn_aws_config cfg;
    struct cn_aws_config_opts o = {.access_key_id = "AKIDEXPLICIT",
                                   .secret_access_key = "secret-explicit",
                                   .session_token = "tok",
                                   .region = "us-east-1"};
    CN_ASSERT_EQ(load(&cfg, &o), 0);
    CN_ASSERT_STREQ(cfg.creds->access_key_id, "AKIDEXPLICIT");
    CN_ASSERT_STREQ(cfg.creds->secret_access_key, "secret-explicit");
    CN_ASSERT_STREQ(cfg.creds->session_token, "tok");
    CN_ASSERT_STREQ(cfg.creds->source, "explicit");
    cn_aws_config_clear(&cfg);
    o.secret_access_key = NULL;
    CN_ASSERT_EQ(load(&cfg, &o), CN_EAWS_PARTIAL_CREDENTIALS);
    cn_aws_config_clear(&cfg);
    cleanup();
}

static void creds_env_beat_files(void)
{
    clean_env();
    WRITE(".aws/credentials", creds_file);
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret-env", 1);
    setenv("AWS_SESSION_TOKEN", "token-env", 1);
    struct cn_aws_config cfg;
    CN_ASSERT_EQ(load(&cfg, &with_region), 0);
    CN_ASSERT_STREQ(cfg.creds->access_key_id, "AKIDENV");
    CN_ASSERT_STREQ(cfg.creds->secret_access_key, "secret-env");
    CN_ASSERT_STREQ(cfg.creds->session_token, "token-env");
    CN_ASSERT_STREQ(cfg.creds->source, "environment");
    cn_aws_config_clear(&cfg);
    /* An empty token is no token. */
    setenv("AWS_SESSION_TOKEN", "", 1);
    CN_ASSERT_EQ(load(&cfg, &with_region), 0);
    CN_ASSERT(cfg.creds->session_token == NULL);
    cn_aws_config_clear(&cfg);
    cleanup();
}

static void creds_env_partial_is_an_error(void)
{
    clean_env();
    WRITE(".aws/credentials", creds_file);
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    struct cn_aws_config cfg;
    CN_ASSERT_EQ(load(&cfg, &with_region), CN_EAWS_PARTIAL_CREDENTIALS);
    CN_ASSERT(cfg.creds == NULL);
    CN_ASSERT(strstr(cfg.detail, "AWS_SECRET_ACCESS_KEY") != NULL);
    cn_aws_config_clear(&cfg);
    unsetenv("AWS_ACCESS_KEY_ID");
    setenv("AWS_SECRET_ACCESS_KEY", "secret-env", 1);
    CN_ASSERT_EQ(load(&cfg, &with_region), CN_EAWS_PARTIAL_CREDENTIALS);
    cn_aws_config_clear(&cfg);
    cleanup();
}

static void creds_from_shared_file_default_profile(void)
{
    clean_env();
    WRITE(".aws/credentials", creds_file);
    struct cn_aws_config cfg;
    CN_ASSERT_EQ(load(&cfg, &with_region), 0);
    CN_ASSERT_STREQ(cfg.profile, "default");
    CN_ASSERT_STREQ(cfg.creds->access_key_id, "AKIDFILEDEFAULT");
    CN_ASSERT_STREQ(cfg.creds->secret_access_key, "secret-file-default");
    CN_ASSERT(cfg.creds->session_token == NULL);
    CN_ASSERT_STREQ(cfg.creds->source, "shared credentials file");
    cn_aws_config_clear(&cfg);
    cleanup();
}

static void creds_profile_from_aws_profile_and_option(void)
{
    clean_env();
    WRITE(".aws/credentials", creds_file);
    WRITE(".aws/config", config_file);
    setenv("AWS_PROFILE", "dev", 1);
    struct cn_aws_config cfg;
    CN_ASSERT_EQ(load(&cfg, NULL), 0);
    CN_ASSERT_STREQ(cfg.profile, "dev");
    CN_ASSERT_STREQ(cfg.creds->access_key_id, "AKIDFILEDEV");
    CN_ASSERT_STREQ(cfg.creds->secret_access_key, "secret/file+dev=");
    CN_ASSERT_STREQ(cfg.creds->session_token, "token-file-dev");
    CN_ASSERT_STREQ(cfg.region, "ap-southeast-2");
    CN_ASSERT_STREQ(cfg.region_source, "config file");
    cn_aws_config_clear(&cfg);
    /* The option beats AWS_PROFILE. */
    struct cn_aws_config_opts o = {.profile = "default"};
    CN_ASSERT_EQ(load(&cfg, &o), 0);
    CN_ASSERT_STREQ(cfg.creds->access_key_id, "AKIDFILEDEFAULT");
    CN_ASSERT_STREQ(cfg.region, "eu-west-1");
    cn_aws_config_clear(&cfg);
    cleanup();
}

static void creds_from_config_file_profile_sections(void)
{
    clean_env();
    WRITE(".aws/credentials", creds_file);
    WRITE(".aws/config", config_file);
    struct cn_aws_config cfg;
    /* Only in the config file, as [profile   cfgonly ]; [cfgonly] there is
     * not that profile. */
    struct cn_aws_config_opts o = {.profile = "cfgonly"};
    CN_ASSERT_EQ(load(&cfg, &o), 0);
    CN_ASSERT_STREQ(cfg.creds->access_key_id, "AKIDCONFIGONLY");
    CN_ASSERT_STREQ(cfg.creds->source, "config file");
    CN_ASSERT_STREQ(cfg.region, "us-west-2");
    cn_aws_config_clear(&cfg);
    /* The credentials file beats the config file for the same profile. */
    WRITE(".aws/credentials", "[cfgonly]\naws_access_key_id=A1\naws_secret_access_key=S1\n");
    CN_ASSERT_EQ(load(&cfg, &o), 0);
    CN_ASSERT_STREQ(cfg.creds->access_key_id, "A1");
    cn_aws_config_clear(&cfg);
    cleanup();
}

static void creds_file_locations_from_env(void)
{
    clean_env();
    WRITE("elsewhere-creds", "[p]\naws_access_key_id=AKIDELSE\naws_secret_access_key=s\n");
    WRITE("elsewhere-config", "[profile p]\nregion=eu-north-1\n");
    WRITE(".aws/credentials", creds_file);
    char a[256], b[256];
    snprintf(a, sizeof a, "%s/elsewhere-creds", home);
    snprintf(b, sizeof b, "%s/elsewhere-config", home);
    setenv("AWS_SHARED_CREDENTIALS_FILE", a, 1);
    setenv("AWS_CONFIG_FILE", b, 1);
    setenv("AWS_PROFILE", "p", 1);
    struct cn_aws_config cfg;
    CN_ASSERT_EQ(load(&cfg, NULL), 0);
    CN_ASSERT_STREQ(cfg.creds->access_key_id, "AKIDELSE");
    CN_ASSERT_STREQ(cfg.region, "eu-north-1");
    cn_aws_config_clear(&cfg);
    cleanup();
}

static void creds_missing_everywhere_is_no_credentials(void)
{
    clean_env();
    struct cn_aws_config cfg;
    CN_ASSERT_EQ(load(&cfg, &with_region), CN_EAWS_NO_CREDENTIALS);
    CN_ASSERT(cfg.creds == NULL);
    CN_ASSERT(strstr(cfg.detail, "no credentials") != NULL);
    cn_aws_config_clear(&cfg);
    /* A default profile without keys is still "none", not an error. */
    WRITE(".aws/credentials", "[default]\nregion = x\n");
    CN_ASSERT_EQ(load(&cfg, &with_region), CN_EAWS_NO_CREDENTIALS);
    cn_aws_config_clear(&cfg);
    /* A named profile that exists nowhere. */
    setenv("AWS_PROFILE", "ghost", 1);
    CN_ASSERT_EQ(load(&cfg, &with_region), CN_EAWS_NO_PROFILE);
    CN_ASSERT(strstr(cfg.detail, "ghost") != NULL);
    cn_aws_config_clear(&cfg);
    /* Only half a key pair in the file. */
    unsetenv("AWS_PROFILE");
    WRITE(".aws/credentials", "[default]\naws_access_key_id = AKID\n");
    CN_ASSERT_EQ(load(&cfg, &with_region), CN_EAWS_PARTIAL_CREDENTIALS);
    cn_aws_config_clear(&cfg);
    cleanup();
}

static void region_precedence(void)
{
    clean_env();
    WRITE(".aws/credentials", creds_file);
    WRITE(".aws/config", config_file);
    struct cn_aws_config cfg;
    CN_ASSERT_EQ(load(&cfg, NULL), 0);
    CN_ASSERT_STREQ(cfg.region, "eu-west-1");
    cn_aws_config_clear(&cfg);
    setenv("AWS_DEFAULT_REGION", "eu-west-3", 1);
    CN_ASSERT_EQ(load(&cfg, NULL), 0);
    CN_ASSERT_STREQ(cfg.region, "eu-west-3");
    CN_ASSERT_STREQ(cfg.region_source, "AWS_DEFAULT_REGION");
    cn_aws_config_clear(&cfg);
    setenv("AWS_REGION", "us-east-2", 1);
    CN_ASSERT_EQ(load(&cfg, NULL), 0);
    CN_ASSERT_STREQ(cfg.region, "us-east-2");
    cn_aws_config_clear(&cfg);
    struct cn_aws_config_opts o = {.region = "me-south-1"};
    CN_ASSERT_EQ(load(&cfg, &o), 0);
    CN_ASSERT_STREQ(cfg.region, "me-south-1");
    CN_ASSERT_STREQ(cfg.region_source, "explicit");
    cn_aws_config_clear(&cfg);
    o.region = "US East 1";
    CN_ASSERT_EQ(load(&cfg, &o), -EINVAL);
    cn_aws_config_clear(&cfg);
    cleanup();
}

static void region_missing_is_no_region(void)
{
    clean_env();
    WRITE(".aws/credentials", creds_file);
    struct cn_aws_config cfg;
    CN_ASSERT_EQ(load(&cfg, NULL), CN_EAWS_NO_REGION);
    CN_ASSERT(strstr(cfg.detail, "no region") != NULL);
    cn_aws_config_clear(&cfg);
    cleanup();
}

static void endpoint_default_and_override(void)
{
    clean_env();
    WRITE(".aws/credentials", creds_file);
    struct cn_aws_config cfg;
    CN_ASSERT_EQ(load(&cfg, &with_region), 0);
    CN_ASSERT_STREQ(cfg.endpoint.url, "https://kinesis.us-east-1.amazonaws.com/");
    CN_ASSERT_STREQ(cfg.endpoint.host_header, "kinesis.us-east-1.amazonaws.com");
    CN_ASSERT_EQ(cfg.endpoint.port, 443);
    CN_ASSERT(cfg.endpoint.tls);
    cn_aws_config_clear(&cfg);
    struct cn_aws_config_opts o = {.region = "cn-northwest-1"};
    CN_ASSERT_EQ(load(&cfg, &o), 0);
    CN_ASSERT_STREQ(cfg.endpoint.host, "kinesis.cn-northwest-1.amazonaws.com.cn");
    cn_aws_config_clear(&cfg);
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4567", 1);
    CN_ASSERT_EQ(load(&cfg, &with_region), 0);
    CN_ASSERT_STREQ(cfg.endpoint.url, "http://127.0.0.1:4567/");
    cn_aws_config_clear(&cfg);
    setenv("AWS_ENDPOINT_URL_KINESIS", "https://LocalHost:4568/base", 1);
    CN_ASSERT_EQ(load(&cfg, &with_region), 0);
    CN_ASSERT_STREQ(cfg.endpoint.host, "localhost");
    CN_ASSERT_STREQ(cfg.endpoint.host_header, "localhost:4568");
    CN_ASSERT_STREQ(cfg.endpoint.path, "/base");
    CN_ASSERT_EQ(cfg.endpoint.port, 4568);
    cn_aws_config_clear(&cfg);
    o = (struct cn_aws_config_opts){.region = "us-east-1", .endpoint_url = "ftp://x"};
    CN_ASSERT_EQ(load(&cfg, &o), CN_EAWS_ENDPOINT);
    CN_ASSERT(strstr(cfg.detail, "endpoint option") != NULL);
    cn_aws_config_clear(&cfg);
    cleanup();
}

static void endpoint_parse_accepts_and_rejects(void)
{
    struct cn_aws_endpoint ep;
    CN_ASSERT_EQ(cn_aws_endpoint_parse(&ep, "https://vpce-1.kinesis.us-east-1.vpce.amazonaws.com"),
                 0);
    CN_ASSERT_STREQ(ep.url, "https://vpce-1.kinesis.us-east-1.vpce.amazonaws.com/");
    CN_ASSERT_EQ(cn_aws_endpoint_parse(&ep, "http://[::1]:4567/"), 0);
    CN_ASSERT_STREQ(ep.host, "::1");
    CN_ASSERT_STREQ(ep.host_header, "[::1]:4567");
    CN_ASSERT_EQ(ep.port, 4567);
    CN_ASSERT(!ep.tls);
    CN_ASSERT_EQ(cn_aws_endpoint_parse(&ep, "HTTP://h:80"), 0);
    CN_ASSERT_STREQ(ep.host_header, "h");
    static const char *const bad[] = {
        "",
        "kinesis.us-east-1.amazonaws.com",
        "https://",
        "https://:443",
        "http://h:",
        "http://h:0",
        "http://h:65536",
        "http://h:12a",
        "http://u@h/",
        "http://h/?q",
        "http://h/#f",
        "http://[::1",
        "http://[::1]x",
        "http://h h/",
        "http://h_\x01/",
        "http://[zz]/",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CN_ASSERT_EQ(cn_aws_endpoint_parse(&ep, bad[i]), CN_EAWS_ENDPOINT);
    }
    CN_ASSERT_EQ(cn_aws_endpoint_default(&ep, "kinesis", "eu-west-1"), 0);
    CN_ASSERT_STREQ(ep.host, "kinesis.eu-west-1.amazonaws.com");
    CN_ASSERT_EQ(cn_aws_endpoint_default(&ep, "kinesis", "eu/west"), -EINVAL);
}

static void ini_malformed_files_are_config_errors(void)
{
    static const char *const bad[] = {
        "aws_access_key_id = x\n[default]\n",   /* key before any section */
        "[default]\njust a line\n",             /* no '=' */
        "[default\naws_access_key_id = x\n",    /* unterminated header */
        "[default] trailing\n",                 /* junk after header */
        "[default]\n= value\n",                 /* empty key */
        "   indented before any section = 1\n", /* continuation of nothing */
    };
    clean_env();
    struct cn_aws_config cfg;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        WRITE(".aws/credentials", bad[i]);
        CN_ASSERT_EQ(load(&cfg, &with_region), CN_EAWS_CONFIG);
        CN_ASSERT(strstr(cfg.detail, "credentials:") != NULL);
        cn_aws_config_clear(&cfg);
    }
    /* The line number is reported. */
    WRITE(".aws/credentials", "[default]\n# fine\n\nbroken\n");
    CN_ASSERT_EQ(load(&cfg, &with_region), CN_EAWS_CONFIG);
    CN_ASSERT(strstr(cfg.detail, ":4:") != NULL);
    cn_aws_config_clear(&cfg);
    /* A config file is read for the region even when credentials come from the env. */
    WRITE(".aws/credentials", "[default]\naws_access_key_id=a\naws_secret_access_key=b\n");
    WRITE(".aws/config", "[default]\nregion\n");
    CN_ASSERT_EQ(load(&cfg, NULL), CN_EAWS_CONFIG);
    CN_ASSERT(strstr(cfg.detail, "config:2:") != NULL);
    cn_aws_config_clear(&cfg);
    cleanup();
}

static void ini_limits_line_and_file_size(void)
{
    clean_env();
    struct cn_aws_config cfg;
    size_t n = CN_AWS_INI_LINE_MAX + 64;
    char *big = malloc(CN_AWS_INI_FILE_MAX + 64);
    /* A line at the limit is fine (a long session token). */
    int k = snprintf(big, n,
                     "[default]\naws_access_key_id=a\naws_secret_access_key=b\n"
                     "aws_session_token=");
    memset(big + k, 'T', CN_AWS_INI_LINE_MAX - 18);
    strcpy(big + k + CN_AWS_INI_LINE_MAX - 18, "\n");
    write_file(".aws/credentials", big, strlen(big));
    CN_ASSERT_EQ(load(&cfg, &with_region), 0);
    CN_ASSERT_EQ(cfg.creds->session_token_len, CN_AWS_INI_LINE_MAX - 18);
    cn_aws_config_clear(&cfg);
    /* One byte more is not. */
    memset(big + k, 'T', CN_AWS_INI_LINE_MAX - 17);
    strcpy(big + k + CN_AWS_INI_LINE_MAX - 17, "\n");
    write_file(".aws/credentials", big, strlen(big));
    CN_ASSERT_EQ(load(&cfg, &with_region), CN_EAWS_CONFIG);
    CN_ASSERT(strstr(cfg.detail, "line over") != NULL);
    cn_aws_config_clear(&cfg);
    /* A file over the limit, made of comment lines. */
    for (size_t i = 0; i < CN_AWS_INI_FILE_MAX + 64; i += 64) {
        memset(big + i, '#', 63);
        big[i + 63] = '\n';
    }
    write_file(".aws/credentials", big, CN_AWS_INI_FILE_MAX + 64);
    CN_ASSERT_EQ(load(&cfg, &with_region), CN_EAWS_CONFIG);
    CN_ASSERT(strstr(cfg.detail, "bytes") != NULL);
    cn_aws_config_clear(&cfg);
    free(big);
    cleanup();
}

static void ini_accepts_crlf_comments_and_spacing(void)
{
    clean_env();
    WRITE(".aws/credentials", "\xef\xbb\xbf[default]\r\n"
                              "[default]\r\n"
                              "; semicolon comment\r\n"
                              "\t# indented comment\r\n"
                              "aws_access_key_id\t=\tAKID # not a comment\r\n"
                              "AWS_SECRET_ACCESS_KEY = s  \r\n");
    struct cn_aws_config cfg;
    int rc = load(&cfg, &with_region);
    /* A UTF-8 BOM line is not a section, key or comment: rejected cleanly. */
    CN_ASSERT_EQ(rc, CN_EAWS_CONFIG);
    cn_aws_config_clear(&cfg);
    WRITE(".aws/credentials", "[default]\r\n"
                              "; semicolon comment\r\n"
                              "\t# indented comment\r\n"
                              "aws_access_key_id\t=\tAKID # not a comment\r\n"
                              "aws_access_key_id = AKIDLATER\r\n"
                              "AWS_SECRET_ACCESS_KEY = s  \r\n");
    CN_ASSERT_EQ(load(&cfg, &with_region), 0);
    CN_ASSERT_STREQ(cfg.creds->access_key_id, "AKIDLATER");
    CN_ASSERT_STREQ(cfg.creds->secret_access_key, "s");
    cn_aws_config_clear(&cfg);
    WRITE(".aws/credentials", "[default]\naws_access_key_id = AKID # not a comment\n"
                              "aws_secret_access_key = s\n");
    CN_ASSERT_EQ(load(&cfg, &with_region), 0);
    CN_ASSERT_STREQ(cfg.creds->access_key_id, "AKID # not a comment");
    cn_aws_config_clear(&cfg);
    cleanup();
}

static void ini_garbage_never_crashes(void)
{
    clean_env();
    uint64_t r = 88172645463325252u;
    char buf[2048];
    struct cn_aws_config cfg;
    static const char alphabet[] = "[]=:#; \t\r\nabcprofiledefaultaws_access_key_id\x01\xff";
    for (int round = 0; round < 300; round++) {
        size_t n = 0, len = (size_t)(r % sizeof buf);
        for (; n < len; n++) {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            buf[n] = alphabet[r % (sizeof alphabet - 1)];
        }
        write_file(".aws/credentials", buf, n);
        int rc = load(&cfg, &with_region);
        CN_ASSERT(rc == 0 || rc == CN_EAWS_CONFIG || rc == CN_EAWS_NO_CREDENTIALS ||
                  rc == CN_EAWS_PARTIAL_CREDENTIALS || rc == -EINVAL);
        cn_aws_config_clear(&cfg);
    }
    /* A directory where a file should be. */
    char dir[128];
    snprintf(dir, sizeof dir, "%s/.aws", home);
    setenv("AWS_SHARED_CREDENTIALS_FILE", dir, 1);
    int rc = load(&cfg, &with_region);
    CN_ASSERT(rc < 0);
    cn_aws_config_clear(&cfg);
    cleanup();
}

static void creds_format_redacts_secrets(void)
{
    struct cn_aws_creds *c;
    CN_ASSERT_EQ(cn_aws_creds_new(&c, "AKIAIOSFODNN7EXAMPLE", DOC_SECRET_PLACEHOLDER, "tok-123"),
                 0);
    char buf[256];
    int n = cn_aws_creds_format(c, buf, sizeof buf);
    CN_ASSERT_GT(n, 0);
    CN_ASSERT_STREQ(buf, "access key ****************MPLE, secret <redacted>, session token "
                         "<redacted>, from explicit");
    CN_ASSERT(strstr(buf, DOC_SECRET_PLACEHOLDER) == NULL);
    CN_ASSERT(strstr(buf, "tok-123") == NULL);
    CN_ASSERT(strstr(buf, "AKIAIOSFODNN7") == NULL);
    /* Truncation still terminates; NULL is fine. */
    char tiny[8];
    CN_ASSERT_EQ(cn_aws_creds_format(c, tiny, sizeof tiny), n);
    CN_ASSERT_EQ(strlen(tiny), 7);
    cn_aws_creds_format(NULL, buf, sizeof buf);
    CN_ASSERT_STREQ(buf, "(no credentials)");
    cn_aws_creds_free(c);
    cn_aws_creds_free(NULL);
    /* Short key ids are masked whole. */
    CN_ASSERT_EQ(cn_aws_creds_new(&c, "AKID", "s", NULL), 0);
    cn_aws_creds_format(c, buf, sizeof buf);
    CN_ASSERT(strstr(buf, "key ****,") != NULL);
    CN_ASSERT(strstr(buf, "token (none)") != NULL);
    cn_aws_creds_free(c);
    CN_ASSERT_EQ(cn_aws_creds_new(&c, "", "s", NULL), -EINVAL);
    CN_ASSERT_EQ(cn_aws_creds_new(&c, "A", "s\n", NULL), -EINVAL);
    CN_ASSERT(c == NULL);
}

CN_TEST_MAIN(CN_CASE(creds_explicit_beat_env_and_files), CN_CASE(creds_env_beat_files),
             CN_CASE(creds_env_partial_is_an_error),
             CN_CASE(creds_from_shared_file_default_profile),
             CN_CASE(creds_profile_from_aws_profile_and_option),
             CN_CASE(creds_from_config_file_profile_sections),
             CN_CASE(creds_file_locations_from_env),
             CN_CASE(creds_missing_everywhere_is_no_credentials), CN_CASE(region_precedence),
             CN_CASE(region_missing_is_no_region), CN_CASE(endpoint_default_and_override),
             CN_CASE(endpoint_parse_accepts_and_rejects),
             CN_CASE(ini_malformed_files_are_config_errors), CN_CASE(ini_limits_line_and_file_size),
             CN_CASE(ini_accepts_crlf_comments_and_spacing), CN_CASE(ini_garbage_never_crashes),
             CN_CASE(creds_format_redacts_secrets))
