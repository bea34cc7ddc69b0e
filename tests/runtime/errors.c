/* SPDX-License-Identifier: MIT */
/* The error table. */
#include "test.h"

static void cn_codes_have_names_and_messages(void)
{
    CN_ASSERT_STREQ(cn_err_name(CN_EOF), "CN_EOF");
    CN_ASSERT_STREQ(cn_strerror(CN_EOF), "end of stream");
    CN_ASSERT_STREQ(cn_err_name(CN_ENOSTACK), "CN_ENOSTACK");
    CN_ASSERT_LE(CN_ECLOSED, -5000);
#define CHECK(name, value, msg)                                                                    \
    CN_ASSERT_EQ(name, value);                                                                     \
    CN_ASSERT_LE(value, -5000);                                                                    \
    CN_ASSERT_STREQ(cn_err_name(value), #name);                                                    \
    CN_ASSERT_STREQ(cn_strerror(value), msg);
    CN_ERRNO_MAP(CHECK)
#undef CHECK
}

static void errno_values_pass_through_to_libuv(void)
{
    CN_ASSERT_STREQ(cn_err_name(-ETIMEDOUT), "ETIMEDOUT");
    CN_ASSERT_STREQ(cn_err_name(-ECANCELED), "ECANCELED");
    CN_ASSERT_STREQ(cn_err_name(UV_ECONNRESET), "ECONNRESET");
    CN_ASSERT_STREQ(cn_strerror(-EPIPE), uv_strerror(UV_EPIPE));
}

CN_TEST_MAIN(CN_CASE(cn_codes_have_names_and_messages), CN_CASE(errno_values_pass_through_to_libuv))
