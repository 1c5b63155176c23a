/*
 * lease.c - leadership lease in Redis (see lease.h).
 *
 * SET NX PX to take it, Lua compare-then-PEXPIRE to renew and
 * compare-then-DEL to release, so that a holder whose lease lapsed and was
 * taken by another can never extend or delete the new holder's lease.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lease.h"
#include "log.h"
#include "redis.h"
#include "xmem.h"

static struct redis_script renew_lua =
        REDIS_SCRIPT("if redis.call('GET', KEYS[1]) == ARGV[1] then "
                     "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end");
static struct redis_script release_lua =
        REDIS_SCRIPT("if redis.call('GET', KEYS[1]) == ARGV[1] then "
                     "return redis.call('DEL', KEYS[1]) else return 0 end");

struct lease {
	struct redis *r;
	char *key, *fence_key;
	char holder[LEASE_HOLDER_MAX];
	char ttl[24];
	long ttl_ms;
	int held;
	pthread_t keeper;
	int keeping;
	volatile sig_atomic_t quit; /* tells the keeper thread to end */
	volatile sig_atomic_t *stop, *lost;
};

struct lease *lease_new(const char *redis_url, const char *key, const char *holder, long ttl_ms,
                        char *errstr, size_t errlen)
{
	if (!holder || !*holder || strlen(holder) >= LEASE_HOLDER_MAX || ttl_ms < 100) {
		snprintf(errstr, errlen, "lease: holder id 1..%d chars and ttl >= 100 ms",
		         LEASE_HOLDER_MAX - 1);
		return NULL;
	}
	struct redis *r = redis_connect_url(redis_url, NULL, errstr, errlen);
	if (!r)
		return NULL;
	struct lease *l = xcalloc(1, sizeof *l);
	l->r = r;
	l->key = xstrdup(key ? key : LEASE_KEY);
	l->fence_key = xasprintf("%s:fence", l->key);
	snprintf(l->holder, sizeof l->holder, "%s", holder);
	snprintf(l->ttl, sizeof l->ttl, "%ld", ttl_ms);
	l->ttl_ms = ttl_ms;
	return l;
}

void lease_free(struct lease **lp)
{
	if (!lp || !*lp)
		return;
	lease_keep_stop(*lp);
	lease_release(*lp);
	redis_free((*lp)->r);
	free((*lp)->key);
	free((*lp)->fence_key);
	free(*lp);
	*lp = NULL;
}

enum sfk_err lease_acquire(struct lease *l, int64_t *fence, char *errstr, size_t errlen)
{
	/* NORETRY: a SET NX that reached Redis before the connection broke
	 * must not be resent (the resend would fail NX against our own value
	 * and we would believe someone else holds it). */
	redisReply *rep = redis_cmd_flags(l->r, REDIS_NORETRY, "SET %s %s NX PX %s", l->key,
	                                  l->holder, l->ttl);
	if (!rep) {
		snprintf(errstr, errlen, "lease acquire: %s", redis_errstr(l->r));
		return SFK_ERR_REDIS;
	}
	int ok = rep->type == REDIS_REPLY_STATUS;
	freeReplyObject(rep);
	if (!ok) {
		/* nil: held. By us, if an earlier SET's reply was lost on the way. */
		char cur[LEASE_HOLDER_MAX];
		if (lease_holder(l, cur, sizeof cur) != SFK_OK || strcmp(cur, l->holder) != 0)
			return SFK_ERR_BUSY;
	}
	l->held = 1;
	rep = redis_cmd_flags(l->r, REDIS_NORETRY, "INCR %s", l->fence_key);
	*fence = rep && rep->type == REDIS_REPLY_INTEGER ? (int64_t)rep->integer : -1;
	if (rep)
		freeReplyObject(rep);
	return SFK_OK;
}

enum sfk_err lease_renew(struct lease *l, char *errstr, size_t errlen)
{
	const char *keys[] = {l->key};
	const char *args[] = {l->holder, l->ttl};
	redisReply *rep = redis_eval(l->r, &renew_lua, REDIS_RETRY, 1, keys, 2, args);
	if (!rep) {
		snprintf(errstr, errlen, "lease renew: %s", redis_errstr(l->r));
		return SFK_ERR_REDIS;
	}
	int ok = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
	freeReplyObject(rep);
	if (!ok) {
		l->held = 0;
		snprintf(errstr, errlen, "lease lost (expired or taken over)");
		return SFK_ERR_FENCED;
	}
	return SFK_OK;
}

void lease_release(struct lease *l)
{
	if (!l || !l->held)
		return;
	const char *keys[] = {l->key};
	const char *args[] = {l->holder};
	redisReply *rep = redis_eval(l->r, &release_lua, REDIS_RETRY, 1, keys, 1, args);
	if (rep)
		freeReplyObject(rep);
	else
		log_warn("lease release failed (it will expire) error=%s", redis_errstr(l->r));
	l->held = 0;
}

enum sfk_err lease_holder(struct lease *l, char *out, size_t size)
{
	redisReply *rep = redis_cmd(l->r, "GET %s", l->key);
	if (!rep)
		return SFK_ERR_REDIS;
	snprintf(out, size, "%s", rep->type == REDIS_REPLY_STRING ? rep->str : "");
	freeReplyObject(rep);
	return SFK_OK;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep ms in 100 ms slices while neither flag is set. */
static void nap(long ms, volatile sig_atomic_t *a, volatile sig_atomic_t *b)
{
	while (ms > 0 && !(a && *a) && !(b && *b)) {
		long step = ms < 100 ? ms : 100;
		struct timespec ts = {0, step * 1000000L};
		nanosleep(&ts, NULL);
		ms -= step;
	}
}

int lease_wait(struct lease *l, volatile sig_atomic_t *stop, int64_t *fence)
{
	char err[256], seen[LEASE_HOLDER_MAX] = "", cur[LEASE_HOLDER_MAX];
	while (!*stop) {
		enum sfk_err rc = lease_acquire(l, fence, err, sizeof err);
		if (rc == SFK_OK) {
			log_info("lease acquired: active holder=%s fence=%lld", l->holder,
			         (long long)*fence);
			return 0;
		}
		if (rc == SFK_ERR_BUSY && lease_holder(l, cur, sizeof cur) == SFK_OK &&
		    strcmp(cur, seen) != 0) {
			log_info("standby active_holder=%s", cur);
			snprintf(seen, sizeof seen, "%s", cur);
		} else if (rc == SFK_ERR_REDIS) {
			log_warn("standby: lease unavailable error=%s", err);
		}
		nap(l->ttl_ms / 3, stop, NULL);
	}
	return -1;
}

static void *keeper(void *arg)
{
	struct lease *l = arg;
	char err[256];
	int64_t last_ok = mono_ms();
	while (!l->quit) {
		nap(l->ttl_ms / 3, &l->quit, NULL);
		if (l->quit)
			break;
		enum sfk_err rc = lease_renew(l, err, sizeof err);
		if (rc == SFK_OK) {
			last_ok = mono_ms();
			continue;
		}
		/* Unknown (Redis down) is lost once a whole TTL passed without a
		 * renewal: by then a standby may hold it. */
		if (rc == SFK_ERR_FENCED || mono_ms() - last_ok >= l->ttl_ms) {
			log_error("lease lost, stopping error=%s", err);
			l->held = rc == SFK_ERR_FENCED ? 0 : l->held;
			/* Plain stores to sig_atomic_t flags polled by the main loop:
			 * a late read only delays the stop by one poll. */
			*l->lost = 1;
			*l->stop = 1;
			break;
		}
		log_warn("lease renewal failed, retrying error=%s", err);
	}
	return NULL;
}

int lease_keep_start(struct lease *l, volatile sig_atomic_t *stop, volatile sig_atomic_t *lost)
{
	l->stop = stop;
	l->lost = lost;
	l->quit = 0;
	if (pthread_create(&l->keeper, NULL, keeper, l) != 0)
		return -1;
	l->keeping = 1;
	return 0;
}

void lease_keep_stop(struct lease *l)
{
	if (!l || !l->keeping)
		return;
	l->quit = 1;
	pthread_join(l->keeper, NULL);
	l->keeping = 0;
}
