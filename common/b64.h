/*
 * b64.h - base64 and base64url (RFC 4648) for JWTs and tests.
 *
 * Thin wrappers over OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock that add the
 * URL-safe alphabet without padding (JWT, RFC 7515 section 2). Pure functions.
 */
#ifndef SFK_B64_H
#define SFK_B64_H

#include <stddef.h>

/* base64url without '=' padding. Returns a new NUL-terminated string (free()). */
char *b64url_encode(const void *data, size_t len);

/*
 * Decode base64url (padding optional; standard '+' '/' also accepted).
 * Returns new memory (free()) with *outlen bytes plus a NUL after them, or
 * NULL if s is not valid base64.
 */
unsigned char *b64url_decode(const char *s, size_t len, size_t *outlen);

#endif
