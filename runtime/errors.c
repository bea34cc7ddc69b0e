/* SPDX-License-Identifier: MIT */
/*
 * Error names and messages. The CN_E* band comes from the CN_ERRNO_MAP
 * X-macro in runtime.h; everything else is a negative errno, which on Unix is
 * exactly libuv's UV_E* numbering, so libuv describes it.
 */
#include "coronet/runtime.h"

const char *cn_strerror(int err)
{
    switch (err) {
#define CN__ERR_MSG(name, value, msg)                                                              \
    case name:                                                                                     \
        return msg;
        CN_ERRNO_MAP(CN__ERR_MSG)
#undef CN__ERR_MSG
    default:
        return uv_strerror(err);
    }
}

const char *cn_err_name(int err)
{
    switch (err) {
#define CN__ERR_NAME(name, value, msg)                                                             \
    case name:                                                                                     \
        return #name;
        CN_ERRNO_MAP(CN__ERR_NAME)
#undef CN__ERR_NAME
    default:
        return uv_err_name(err);
    }
}
