/* SPDX-License-Identifier: MIT */
/*
 * Base64 (RFC 4648 §4: standard alphabet, '=' padding) for the Data fields
 * of Kinesis JSON bodies (kinesis layer internal).
 *
 * Encoding is table-driven, three bytes to four characters per step.
 * Decoding is strict, as a codec fed by the network should be: no
 * whitespace or line breaks, length a multiple of 4, '=' only as the last
 * one or two characters, and the unused bits before the padding zero
 * (RFC 4648 §3.5 canonical form). Anything else is CN_EBASE64.
 */
#ifndef CORONET_KINESIS_BASE64_H
#define CORONET_KINESIS_BASE64_H

#include <stddef.h>
#include <sys/types.h>

#include "coronet/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Characters cn__base64_encode() writes for n bytes: 4 * ceil(n / 3).
 * n must be under SIZE_MAX / 4 * 3. */
size_t cn__base64_encoded_len(size_t n);

/* Encodes n bytes of src into dst, which has room for
 * cn__base64_encoded_len(n) characters; writes no NUL. Returns the count. */
size_t cn__base64_encode(char *dst, const void *src, size_t n);

/* Exact decoded size of the n characters at src (n / 4 * 3 less the
 * padding), checking only the length and the padding characters.
 * Errors: CN_EBASE64. */
ssize_t cn__base64_decoded_len(const char *src, size_t n);

/* Decodes n characters of src into dst (cap bytes). Returns the byte count.
 * Nothing is promised about dst's contents after an error.
 * Errors: CN_EBASE64 (any departure from the canonical form), -ENOBUFS (cap
 * is under the decoded size). */
ssize_t cn__base64_decode(void *dst, size_t cap, const char *src, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* CORONET_KINESIS_BASE64_H */
