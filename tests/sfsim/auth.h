/*
 * auth.h - OAuth 2.0 JWT bearer token endpoint (RS256 verified with OpenSSL
 * against the connected app's X.509 certificate) and the session table behind
 * "Authorization: Bearer" on REST and CometD.
 */
#ifndef SFK_SIM_AUTH_H
#define SFK_SIM_AUTH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sim;

/* Longest token request body / assertion we read. */
#define AUTH_ASSERTION_MAX 16384
/* exp may be at most this far in the future (Salesforce: "within 3 minutes";
 * some copies say 5; we accept the larger, plus skew). */
#define AUTH_EXP_MAX_FUTURE_S 300

struct auth_app {
	char client_id[256];
	void *pubkey; /* EVP_PKEY */
};

/* Allocate sim->auth. Returns 0 or -1. */
int auth_init(struct sim *sim);
void auth_fini(struct sim *sim);
/* Register a connected app: "CLIENT_ID:CERT_PEM_PATH" (--app). 0 or -1 with a log line. */
int auth_add_app(struct sim *sim, const char *spec);
/* Pre-authorize a username (must exist as an active User at token time). */
int auth_add_user(struct sim *sim, const char *username);
/* Register the /services/oauth2/token route. */
int auth_routes(struct sim *sim);

/*
 * Verify a JWT bearer assertion (pure apart from the clock): RS256 signature
 * with pubkey (EVP_PKEY *), iss == client_id, aud == expected_aud, exp in
 * (now, now + AUTH_EXP_MAX_FUTURE_S] (string or number), subject = prn if
 * present else sub, copied to subject (size subject_size). Returns 0, or -1
 * with Salesforce's error_description in desc (e.g. "Audience validation
 * failed", "expired authorization code", "invalid assertion").
 */
int auth_verify_jwt(const char *assertion, void *pubkey, const char *client_id,
                    const char *expected_aud, int64_t now_s, char *subject, size_t subject_size,
                    char *desc, size_t desc_size);

/* Session lookup by token: 0 and user id, -1 if unknown/expired. */
int auth_session(struct sim *sim, const char *token, char user_id[19]);
/* Expire every session now (fault). */
void auth_expire_all(struct sim *sim);

#endif
