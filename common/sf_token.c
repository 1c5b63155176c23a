#include "sf_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "xmem.h"

#define RECONNECT_EVERY_MS 1000 /* after a failed connect, try again at most this often */

/* GET plus the remaining TTL, so a process's copy expires with the shared one. */
static struct redis_script script_get = REDIS_SCRIPT("local v = redis.call('GET', KEYS[1]) "
                                                     "if not v then return false end "
                                                     "return {v, redis.call('PTTL', KEYS[1])}");
/* Delete the token entry only if it still holds the token that failed. */
static struct redis_script script_cad_token =
        REDIS_SCRIPT("local v = redis.call('GET', KEYS[1]) "
                     "if v and string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '\\n' then "
                     "return redis.call('DEL', KEYS[1]) end return 0");
/* Release the mint lock only if we still own it. */
static struct redis_script script_unlock =
        REDIS_SCRIPT("if redis.call('GET', KEYS[1]) == ARGV[1] then "
                     "return redis.call('DEL', KEYS[1]) end return 0");

struct sf_token_cache {
	pthread_mutex_t mu; /* one caller at a time: single flight inside the process too */
	struct sf_auth *auth;
	char *redis_url;
	struct redis *r;
	long long next_connect_ms;
	long ttl_ms, lock_ms, wait_ms, poll_ms;
	char key[80], lock_key[88];
	struct sf_auth_token local; /* this process's copy */
	long long local_expires_ms;
	int degraded;
	struct metric *m_req, *m_degraded;
};

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

struct sf_token_cache *sf_token_new(const struct sf_token_conf *c)
{
	struct sf_token_cache *t = xcalloc(1, sizeof *t);
	pthread_mutex_init(&t->mu, NULL);
	t->auth = c->auth;
	t->redis_url = c->redis_url && *c->redis_url ? xstrdup(c->redis_url) : NULL;
	t->ttl_ms = c->ttl_ms > 0 ? c->ttl_ms : 30 * 60 * 1000;
	/* Longer than one token request may take (sf_auth timeout 15 s), so the
	 * lock does not expire under a slow but live minter. */
	t->lock_ms = c->lock_ms > 0 ? c->lock_ms : 20000;
	t->wait_ms = c->wait_ms > 0 ? c->wait_ms : 30000;
	t->poll_ms = c->poll_ms > 0 ? c->poll_ms : 50;

	/* Key = hash of what identifies a session: login URL, the endpoint the
	 * token comes from (My Domain; two orgs or emulators sharing one Redis
	 * never see each other's tokens), app, user. */
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	char *id = xasprintf("%s\n%s\n%s\n%s", sf_auth_login_url(c->auth),
	                     sf_auth_token_endpoint(c->auth), sf_auth_client_id(c->auth),
	                     sf_auth_username(c->auth));
	EVP_Digest(id, strlen(id), md, &mdlen, EVP_sha256(), NULL);
	free(id);
	int off = snprintf(t->key, sizeof t->key, "%s", SF_TOKEN_KEY_PREFIX);
	for (unsigned i = 0; i < 16 && off + 2 < (int)sizeof t->key; i++)
		off += snprintf(t->key + off, sizeof t->key - (size_t)off, "%02x", md[i]);
	snprintf(t->lock_key, sizeof t->lock_key, "%s:lock", t->key);

	t->m_req = metrics_counter("sfk_token_cache_requests_total",
	                           "Shared token cache lookups: hit, miss (this process minted) "
	                           "or wait (another process minted)",
	                           "result");
	t->m_degraded = metrics_gauge("sfk_token_cache_degraded",
	                              "1 while the shared token cache (Redis) is unusable and "
	                              "this process uses its own token",
	                              NULL);
	metric_set(t->m_degraded, 0);
	return t;
}

void sf_token_free(struct sf_token_cache **tp)
{
	if (!tp || !*tp)
		return;
	struct sf_token_cache *t = *tp;
	sf_auth_token_clear(&t->local);
	redis_free(t->r);
	free(t->redis_url);
	pthread_mutex_destroy(&t->mu);
	free(t);
	*tp = NULL;
}

const char *sf_token_key(const struct sf_token_cache *t)
{
	return t->key;
}

int sf_token_degraded(struct sf_token_cache *t)
{
	pthread_mutex_lock(&t->mu);
	int d = t->degraded;
	pthread_mutex_unlock(&t->mu);
	return d;
}

static void set_degraded(struct sf_token_cache *t, int on, const char *why)
{
	if (on == t->degraded)
		return;
	t->degraded = on;
	metric_set(t->m_degraded, on);
	if (on)
		log_warn("token cache degraded: using a per-process token reason=%s",
		         why ? why : "redis unavailable");
	else
		log_info("token cache shared again");
}

/* The connection, connecting (rate-limited) if needed; NULL = degraded. */
static struct redis *conn(struct sf_token_cache *t)
{
	if (!t->redis_url)
		return NULL;
	if (t->r)
		return t->r;
	long long now = mono_ms();
	if (now < t->next_connect_ms)
		return NULL;
	char err[256];
	struct redis_opts o = {.connect_timeout_ms = 500, .command_timeout_ms = 1000};
	t->r = redis_connect_url(t->redis_url, &o, err, sizeof err);
	if (!t->r) {
		t->next_connect_ms = now + RECONNECT_EVERY_MS;
		set_degraded(t, 1, err);
	}
	return t->r;
}

/* Parse "<token>\n<instance url>" into *out. Returns 0 or -1. */
static int parse_value(const char *v, size_t len, struct sf_auth_token *out)
{
	const char *nl = memchr(v, '\n', len);
	if (!nl || nl == v || len > SF_TOKEN_VALUE_MAX || nl + 1 == v + len)
		return -1;
	out->access_token = xstrndup(v, (size_t)(nl - v));
	out->instance_url = xstrndup(nl + 1, len - (size_t)(nl - v) - 1);
	return 0;
}

/* Adopt tok as the process's copy for ttl ms. Takes ownership of tok's strings. */
static void adopt(struct sf_token_cache *t, struct sf_auth_token *tok, long long ttl)
{
	sf_auth_token_clear(&t->local);
	t->local = *tok;
	memset(tok, 0, sizeof *tok);
	t->local_expires_ms = mono_ms() + ttl;
	log_redact(t->local.access_token);
}

/*
 * Look the shared entry up. Returns 1 (found, adopted), 0 (absent), -1 (Redis
 * failed: degrade).
 */
static int shared_lookup(struct sf_token_cache *t, struct redis *r)
{
	const char *keys[] = {t->key};
	redisReply *rep = redis_eval(r, &script_get, REDIS_RETRY, 1, keys, 0, NULL);
	if (!rep)
		return -1;
	int rc = 0;
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	    rep->element[0]->type == REDIS_REPLY_STRING &&
	    rep->element[1]->type == REDIS_REPLY_INTEGER) {
		struct sf_auth_token tok = {0};
		long long pttl = rep->element[1]->integer;
		if (parse_value(rep->element[0]->str, rep->element[0]->len, &tok) == 0) {
			adopt(t, &tok, pttl > 0 ? pttl : t->ttl_ms);
			rc = 1;
		}
	}
	freeReplyObject(rep);
	return rc;
}

/* Mint with the auth module and adopt the result for ttl_ms. */
static enum sfk_err mint_local(struct sf_token_cache *t, struct sf_error *err)
{
	struct sf_auth_token tok;
	enum sfk_err rc = sf_auth_mint(t->auth, &tok, err);
	if (rc == SFK_OK)
		adopt(t, &tok, t->ttl_ms);
	return rc;
}

/* Holding the lock: mint, publish, unlock. Redis failures after minting only
 * mean the others do not see our token (they mint their own). */
static enum sfk_err mint_and_publish(struct sf_token_cache *t, struct redis *r, const char *nonce,
                                     struct sf_error *err)
{
	enum sfk_err rc = mint_local(t, err);
	if (rc == SFK_OK) {
		char *val = xasprintf("%s\n%s", t->local.access_token, t->local.instance_url);
		char ttl[32];
		snprintf(ttl, sizeof ttl, "%ld", t->ttl_ms);
		const char *argv[] = {"SET", t->key, val, "PX", ttl};
		redisReply *rep = redis_cmdargv(r, REDIS_RETRY, 5, argv, NULL);
		OPENSSL_cleanse(val, strlen(val));
		free(val);
		if (rep)
			freeReplyObject(rep);
		else
			set_degraded(t, 1, redis_errstr(r));
	}
	const char *keys[] = {t->lock_key}, *args[] = {nonce};
	redisReply *rep = redis_eval(r, &script_unlock, REDIS_RETRY, 1, keys, 1, args);
	if (rep)
		freeReplyObject(rep);
	return rc;
}

/* Try to take the mint lock. Returns 1 taken, 0 held by another, -1 Redis failed. */
static int try_lock(struct sf_token_cache *t, struct redis *r, const char *nonce)
{
	char px[32];
	snprintf(px, sizeof px, "%ld", t->lock_ms);
	const char *argv[] = {"SET", t->lock_key, nonce, "NX", "PX", px};
	redisReply *rep = redis_cmdargv(r, REDIS_RETRY, 6, argv, NULL);
	if (!rep)
		return -1;
	int got = rep->type == REDIS_REPLY_STATUS; /* "OK"; NIL when someone holds it */
	freeReplyObject(rep);
	return got;
}

/* Per-thread jitter seed; distinct per process so forked waiters spread out. */
static _Thread_local unsigned poll_seed;

static enum sfk_err shared_get(struct sf_token_cache *t, struct redis *r, struct sf_error *err,
                               int *fell_back)
{
	if (!poll_seed)
		poll_seed = (unsigned)getpid() ^ (unsigned)mono_ms();
	unsigned char rnd[12];
	char nonce[32];
	RAND_bytes(rnd, sizeof rnd);
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(nonce + 2 * i, 3, "%02x", rnd[i]);

	int waited = 0;
	long long deadline = mono_ms() + t->wait_ms;
	for (;;) {
		int found = shared_lookup(t, r);
		if (found < 0)
			goto redis_down;
		if (found) {
			metric_add(t->m_req, 1, waited ? "wait" : "hit");
			return SFK_OK;
		}
		int got = try_lock(t, r, nonce);
		if (got < 0)
			goto redis_down;
		if (got) {
			/* Someone may have published between our GET and our lock. */
			found = shared_lookup(t, r);
			if (found > 0) {
				const char *keys[] = {t->lock_key}, *args[] = {nonce};
				redisReply *rep = redis_eval(r, &script_unlock, REDIS_RETRY, 1,
				                             keys, 1, args);
				if (rep)
					freeReplyObject(rep);
				metric_add(t->m_req, 1, waited ? "wait" : "hit");
				return SFK_OK;
			}
			metric_add(t->m_req, 1, "miss");
			return mint_and_publish(t, r, nonce, err);
		}
		/* Another process is minting: poll for its token, bounded. */
		waited = 1;
		if (mono_ms() >= deadline) {
			sf_error_clear(err);
			err->err = SFK_ERR_TIMEOUT;
			snprintf(err->message, sizeof err->message,
			         "waited %ld ms for another process to mint a Salesforce token "
			         "(lock %s)",
			         t->wait_ms, t->lock_key);
			return err->err;
		}
		long jitter =
		        t->poll_ms / 2 + (long)(rand_r(&poll_seed) % (unsigned)(t->poll_ms + 1));
		sleep_ms(jitter);
	}
redis_down:
	*fell_back = 1;
	set_degraded(t, 1, redis_errstr(r));
	return SFK_OK;
}

enum sfk_err sf_token_get(struct sf_token_cache *t, struct sf_auth_token *out, struct sf_error *err)
{
	enum sfk_err rc = SFK_OK;
	sf_error_clear(err);
	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&t->mu);
	if (t->local.access_token && mono_ms() < t->local_expires_ms)
		goto out;
	sf_auth_token_clear(&t->local);

	struct redis *r = conn(t);
	int fell_back = 0;
	if (r) {
		rc = shared_get(t, r, err, &fell_back);
		if (!fell_back) {
			set_degraded(t, 0, NULL);
			goto out;
		}
	}
	/* No shared cache: this process's own token. */
	rc = mint_local(t, err);
out:
	if (rc == SFK_OK)
		sf_auth_token_copy(out, &t->local);
	pthread_mutex_unlock(&t->mu);
	return rc;
}

void sf_token_invalidate(struct sf_token_cache *t, const char *access_token)
{
	if (!access_token)
		return;
	pthread_mutex_lock(&t->mu);
	if (t->local.access_token && strcmp(t->local.access_token, access_token) == 0)
		sf_auth_token_clear(&t->local);
	struct redis *r = conn(t);
	if (r) {
		const char *keys[] = {t->key}, *args[] = {access_token};
		redisReply *rep = redis_eval(r, &script_cad_token, REDIS_RETRY, 1, keys, 1, args);
		if (rep) {
			if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1)
				log_info("invalidated the shared salesforce token key=%s", t->key);
			freeReplyObject(rep);
			set_degraded(t, 0, NULL);
		} else {
			set_degraded(t, 1, redis_errstr(r));
		}
	}
	pthread_mutex_unlock(&t->mu);
}
