/* SPDX-License-Identifier: MIT */
/* Command-line helpers shared by the example programs. */
#ifndef CORONET_EXAMPLES_ARGS_H
#define CORONET_EXAMPLES_ARGS_H

#include <errno.h>
#include <stdlib.h>

/* A whole decimal number in [lo, hi], or -1 ("12x", "", overflow all fail). */
static inline long parse_num(const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno == 0 && end != s && *end == '\0' && v >= lo && v <= hi ? v : -1;
}

#endif /* CORONET_EXAMPLES_ARGS_H */
