/*
 * sf_token.h - access tokens shared through Redis by every process.
 *
 * Key sfk:tok:<hash of login url, client id, user> holds "<token>\n<instance
 * url>" with a TTL from configuration (Salesforce returns none). On a miss
 * exactly one process mints a token under a short lock (SET NX PX) while the
 * others poll for the value until a deadline. A 401 invalidates only the
 * token that failed (compare-and-delete in Lua). With Redis down each process
 * falls back to its own token and sets sfk_token_cache_degraded to 1: the
 * cache being down never fails a request. Thread-safe.
 */
#ifndef SFK_SF_TOKEN_H
#define SFK_SF_TOKEN_H

#include <stddef.h>

#include "err.h"
#include "sf_auth.h"
#include "sf_err.h"

#define SF_TOKEN_KEY_PREFIX "sfk:tok:"
#define SF_TOKEN_VALUE_MAX  8192 /* a cached value larger than this is ignored */

struct sf_token_conf {
	struct sf_auth *auth;  /* borrowed; must outlive the cache */
	const char *redis_url; /* REDIS_URL; NULL or "" = per-process tokens only */
	long ttl_ms;           /* SF_TOKEN_TTL: how long a cached token is reused; 0 = 30 min */
	long lock_ms;          /* lifetime of the mint lock; 0 = 20 s (> a token request) */
	long wait_ms;          /* how long a waiter polls for another's token; 0 = 30 s */
	long poll_ms;          /* waiter poll interval (jittered +-50%); 0 = 50 ms */
};

struct sf_token_cache;

/* Copies conf (not auth). Never fails on Redis: an unreachable Redis only
 * means degraded mode until it answers. Returns a new cache (sf_token_free). */
struct sf_token_cache *sf_token_new(const struct sf_token_conf *conf);
/* Accepts NULL; clears *t. */
void sf_token_free(struct sf_token_cache **t);

/*
 * A current token: the process's copy if still fresh, else the shared one,
 * else a newly minted one (single flight). *out is a new copy (caller calls
 * sf_auth_token_clear). Errors: those of sf_auth_mint (SFK_ERR_GRANT is
 * fatal), or SFK_ERR_TIMEOUT if another process held the mint lock past
 * wait_ms. Counts sfk_token_cache_requests_total{result=hit|miss|wait}
 * (hit: shared token found; miss: this process minted; wait: waited for
 * another process).
 */
enum sfk_err sf_token_get(struct sf_token_cache *t, struct sf_auth_token *out,
                          struct sf_error *err);

/*
 * The given token was refused (401 INVALID_SESSION_ID): forget it locally and
 * delete the shared entry only if it still holds this very token, so a token
 * another process already replaced is left alone. access_token borrowed.
 */
void sf_token_invalidate(struct sf_token_cache *t, const char *access_token);

/* 1 while the shared cache is unusable (Redis down), else 0. */
int sf_token_degraded(struct sf_token_cache *t);
/* The Redis key, borrowed (for tests and operators). */
const char *sf_token_key(const struct sf_token_cache *t);

#endif
