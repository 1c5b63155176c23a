/*
 * sf_auth.h - OAuth 2.0 JWT bearer flow against the Salesforce token endpoint.
 *
 * Signs {"alg":"RS256"} + {iss, sub, aud, exp} with the connected app's
 * private key (OpenSSL), POSTs it to <token url>/services/oauth2/token and
 * parses the token (no refresh token, no expiry: callers cache it, see
 * sf_token.h). The key file must be private to its owner; key material and
 * assertions never reach a log line or an error message.
 */
#ifndef SFK_SF_AUTH_H
#define SFK_SF_AUTH_H

#include <stddef.h>
#include <time.h>

#include "err.h"
#include "sf_err.h"

#define SF_AUTH_EXP_SECONDS  180         /* "expiration time ... within 3 minutes" */
#define SF_AUTH_RESPONSE_MAX (64 * 1024) /* token endpoint bodies larger than this abort */
#define SF_AUTH_KEY_FILE_MAX (64 * 1024) /* a PEM key file larger than this is refused */
#define SF_TOKEN_PATH        "/services/oauth2/token"

struct sf_auth_conf {
	const char *login_url;   /* JWT aud: https://login.salesforce.com or test; required */
	const char *token_url;   /* where to POST (My Domain host ok); NULL/"" = login_url */
	const char *client_id;   /* iss: connected app consumer key; required */
	const char *username;    /* sub; required */
	const char *key_path;    /* PEM private key (RSA), mode 0600/0400; required */
	const char *ca_file;     /* extra CA bundle for TLS (private CA), or NULL */
	long connect_timeout_ms; /* 0 = 5000 */
	long timeout_ms;         /* whole exchange; 0 = 15000 */
};

/* A token as returned by the endpoint. All strings owned by the struct. */
struct sf_auth_token {
	char *access_token; /* secret: registered with log_redact() by sf_auth_mint */
	char *instance_url; /* https://yourInstance.my.salesforce.com (no trailing /) */
	char *id;           /* identity URL, may be NULL */
	char *token_type;   /* "Bearer", may be NULL */
	char *scope;        /* may be NULL */
};
/* Frees the strings and zeroes *t. NULL ok. */
void sf_auth_token_clear(struct sf_auth_token *t);
/* Deep copy src into *dst (dst must be clear). */
void sf_auth_token_copy(struct sf_auth_token *dst, const struct sf_auth_token *src);

/*
 * Refuse a key file that is not a regular file or that the group or others
 * may read or write (mode & 077). Returns SFK_OK or SFK_ERR_CONFIG with a
 * message naming the path and the fix (chmod 600).
 */
enum sfk_err sf_auth_check_key_file(const char *path, char *errstr, size_t errlen);

struct sf_auth;

/*
 * Copy the configuration, check and load the key. Returns a new sf_auth
 * (sf_auth_free) or NULL with the reason in errstr (SFK_ERR_CONFIG class):
 * missing setting, bad permissions, unreadable or non-RSA key.
 */
struct sf_auth *sf_auth_new(const struct sf_auth_conf *c, char *errstr, size_t errlen);
/* Wipes and frees the key. Accepts NULL; clears *a. */
void sf_auth_free(struct sf_auth **a);

/* The JWT aud, borrowed (valid while a lives). */
const char *sf_auth_login_url(const struct sf_auth *a);
const char *sf_auth_client_id(const struct sf_auth *a);
const char *sf_auth_username(const struct sf_auth *a);
/* The full POST URL ".../services/oauth2/token", borrowed. */
const char *sf_auth_token_endpoint(const struct sf_auth *a);

/*
 * Build the signed assertion for time now (exp = now + SF_AUTH_EXP_SECONDS).
 * Returns a new string (free(); it is a bearer credential for 3 minutes:
 * never log it) or NULL on a signing failure.
 */
char *sf_auth_jwt(const struct sf_auth *a, time_t now);

/*
 * Parse a token endpoint response. 200 with access_token and instance_url ->
 * SFK_OK and *out filled (caller clears). Otherwise the error per
 * sf_err_parse_oauth with the actionable message in err->message.
 */
enum sfk_err sf_auth_parse_response(long status, const char *content_type, const char *body,
                                    size_t len, struct sf_auth_token *out, struct sf_error *err);

/*
 * One JWT bearer exchange over HTTPS (TLS always verified). On SFK_OK *out is
 * filled (caller clears) and the token is registered with log_redact().
 * Otherwise err says why: SFK_ERR_GRANT (fatal: fix the configuration, see
 * the message), SFK_ERR_HTTP_5XX / SFK_ERR_TRANSPORT / SFK_ERR_TIMEOUT
 * (retriable). Counts sfk_auth_requests_total{status} and observes
 * sfk_auth_latency_seconds. Thread-safe.
 */
enum sfk_err sf_auth_mint(struct sf_auth *a, struct sf_auth_token *out, struct sf_error *err);

#endif
