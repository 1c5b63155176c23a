/*
 * idem.c - see idem.h.
 *
 * Every operation is one Lua script so that "check, then act" is atomic on the
 * server: a claim is SET NX PX plus the "done"/"ours" checks, complete and
 * release compare the owner token before they write. All scripts are safe to
 * run twice (the redis layer resends once after a reconnect): re-claiming our
 * own lease is a claim, completing twice is done, releasing twice is a no-op.
 * Batches pass their keys as KEYS[] (no Redis Cluster: keys of a batch may
 * live in different slots, and we run one standalone Redis).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "idem.h"
#include "log.h"
#include "xmem.h"

struct idem {
	struct redis *r; /* borrowed */
	char workload[IDEM_WORKLOAD_MAX];
	long long epoch;
	char owner[IDEM_OWNER_LEN + 1];
	char lease[24];    /* lease_ms as text, an ARGV */
	char done_ttl[24]; /* done_ttl_s as text, an ARGV */
};

/* ARGV[1] owner, ARGV[2] lease ms. Per key: 1 claimed, 2 done, 3 busy. */
static struct redis_script claim_script =
        REDIS_SCRIPT("local out = {}\n"
                     "for i, k in ipairs(KEYS) do\n"
                     "  if redis.call('SET', k, ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
                     "    out[i] = 1\n"
                     "  else\n"
                     "    local v = redis.call('GET', k)\n"
                     "    if v == 'done' then out[i] = 2\n"
                     "    elseif v == ARGV[1] then redis.call('PEXPIRE', k, ARGV[2]); out[i] = 1\n"
                     "    else out[i] = 3 end\n"
                     "  end\n"
                     "end\n"
                     "return out\n");

/* ARGV[1] owner, ARGV[2] done TTL s. Per key: 1 done (was ours or done),
 * 2 done (key had expired), 0 another owner holds it (left alone). */
static struct redis_script complete_script =
        REDIS_SCRIPT("local out = {}\n"
                     "for i, k in ipairs(KEYS) do\n"
                     "  local v = redis.call('GET', k)\n"
                     "  if v == ARGV[1] or v == 'done' or not v then\n"
                     "    redis.call('SET', k, 'done', 'EX', ARGV[2])\n"
                     "    if v then out[i] = 1 else out[i] = 2 end\n"
                     "  else\n"
                     "    out[i] = 0\n"
                     "  end\n"
                     "end\n"
                     "return out\n");

/* ARGV[1] owner. 1 deleted, 0 nothing there, -1 someone else's or done. */
static struct redis_script release_script =
        REDIS_SCRIPT("local v = redis.call('GET', KEYS[1])\n"
                     "if not v then return 0 end\n"
                     "if v == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end\n"
                     "return -1\n");

struct idem *idem_new(struct redis *r, const char *workload, long long epoch,
                      const struct idem_opts *o, char *errstr, size_t errlen)
{
	unsigned char raw[IDEM_OWNER_LEN / 2];
	struct idem *m;
	int lease_ms = o && o->lease_ms > 0 ? o->lease_ms : IDEM_DEF_LEASE_MS;
	long long ttl = o && o->done_ttl_s > 0 ? o->done_ttl_s : IDEM_DEF_DONE_TTL_S;

	if (!workload || !*workload || strlen(workload) >= IDEM_WORKLOAD_MAX ||
	    strchr(workload, ':')) {
		snprintf(errstr, errlen, "idem: workload must be 1..%d chars without ':'",
		         IDEM_WORKLOAD_MAX - 1);
		return NULL;
	}
	if (epoch < 0) {
		snprintf(errstr, errlen, "idem: epoch must be >= 0");
		return NULL;
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		snprintf(errstr, errlen, "idem: no randomness for the owner token");
		return NULL;
	}
	m = xcalloc(1, sizeof(*m));
	m->r = r;
	memcpy(m->workload, workload, strlen(workload) + 1);
	m->epoch = epoch;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(m->owner + 2 * i, 3, "%02x", raw[i]);
	snprintf(m->lease, sizeof(m->lease), "%d", lease_ms);
	snprintf(m->done_ttl, sizeof(m->done_ttl), "%lld", ttl);
	return m;
}

void idem_free(struct idem *m)
{
	free(m);
}

const char *idem_owner(const struct idem *m)
{
	return m->owner;
}

int idem_key(const struct idem *m, const char *event_id, char *buf, size_t len)
{
	int n;

	if (!event_id || !*event_id)
		return -1;
	n = snprintf(buf, len, "sfk:idem:%s:%lld:%s", m->workload, m->epoch, event_id);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* n keys for ids, as one allocation: keys[i] point into it. NULL if an id
 * is empty or its key too long. Free with free(keys). */
static char **make_keys(const struct idem *m, size_t n, const char *const *ids)
{
	char **keys = xmalloc(n * (sizeof(char *) + IDEM_KEY_MAX));
	char *area = (char *)(keys + n);

	for (size_t i = 0; i < n; i++) {
		keys[i] = area + i * IDEM_KEY_MAX;
		if (idem_key(m, ids[i], keys[i], IDEM_KEY_MAX) < 0) {
			free(keys);
			return NULL;
		}
	}
	return keys;
}

/* Run a per-key script; on success *rep is an array of n integers. */
static enum sfk_err run_batch(struct idem *m, struct redis_script *s, size_t n,
                              const char *const *ids, int nargs, const char **args,
                              redisReply **rep)
{
	char **keys;

	*rep = NULL;
	if (n == 0)
		return SFK_OK;
	if (n > IDEM_BATCH_MAX)
		return SFK_ERR_INVALID;
	keys = make_keys(m, n, ids);
	if (!keys)
		return SFK_ERR_INVALID;
	*rep = redis_eval(m->r, s, REDIS_RETRY, (int)n, (const char **)keys, nargs, args);
	free(keys);
	if (!*rep)
		return redis_err(m->r) == SFK_ERR_TOO_LARGE ? SFK_ERR_REDIS : redis_err(m->r);
	if ((*rep)->type != REDIS_REPLY_ARRAY || (*rep)->elements != n) {
		log_error("idem script returned an unexpected reply workload=%s type=%d",
		          m->workload, (*rep)->type);
		freeReplyObject(*rep);
		*rep = NULL;
		return SFK_ERR_REDIS;
	}
	for (size_t i = 0; i < n; i++)
		if ((*rep)->element[i]->type != REDIS_REPLY_INTEGER) {
			freeReplyObject(*rep);
			*rep = NULL;
			return SFK_ERR_REDIS;
		}
	return SFK_OK;
}

enum sfk_err idem_claim_batch(struct idem *m, size_t n, const char *const *ids,
                              enum idem_outcome *out)
{
	const char *args[2] = {m->owner, m->lease};
	redisReply *rep;
	enum sfk_err e = run_batch(m, &claim_script, n, ids, 2, args, &rep);

	if (e != SFK_OK || !rep)
		return e;
	for (size_t i = 0; i < n; i++) {
		long long v = rep->element[i]->integer;
		out[i] = v == 1 ? IDEM_CLAIMED : v == 2 ? IDEM_DONE : IDEM_BUSY;
	}
	freeReplyObject(rep);
	return SFK_OK;
}

enum sfk_err idem_claim(struct idem *m, const char *event_id)
{
	enum idem_outcome o = IDEM_BUSY;
	enum sfk_err e = idem_claim_batch(m, 1, &event_id, &o);

	if (e != SFK_OK)
		return e;
	return o == IDEM_CLAIMED ? SFK_OK : o == IDEM_DONE ? SFK_ERR_DUPLICATE : SFK_ERR_BUSY;
}

enum sfk_err idem_complete_batch(struct idem *m, size_t n, const char *const *ids,
                                 enum sfk_err *res)
{
	const char *args[2] = {m->owner, m->done_ttl};
	redisReply *rep;
	enum sfk_err e = run_batch(m, &complete_script, n, ids, 2, args, &rep);

	if (e != SFK_OK || !rep)
		return e;
	for (size_t i = 0; i < n; i++) {
		long long v = rep->element[i]->integer;
		if (v == 2)
			log_warn("idem lease expired before complete workload=%s", m->workload);
		res[i] = v == 0 ? SFK_ERR_FENCED : SFK_OK;
	}
	freeReplyObject(rep);
	return SFK_OK;
}

enum sfk_err idem_complete(struct idem *m, const char *event_id)
{
	enum sfk_err res = SFK_ERR_REDIS;
	enum sfk_err e = idem_complete_batch(m, 1, &event_id, &res);

	return e != SFK_OK ? e : res;
}

enum sfk_err idem_release(struct idem *m, const char *event_id)
{
	char key[IDEM_KEY_MAX];
	const char *keys[1] = {key};
	const char *args[1] = {m->owner};
	redisReply *rep;
	long long v;

	if (idem_key(m, event_id, key, sizeof(key)) < 0)
		return SFK_ERR_INVALID;
	rep = redis_eval(m->r, &release_script, REDIS_RETRY, 1, keys, 1, args);
	if (!rep)
		return redis_err(m->r);
	if (rep->type != REDIS_REPLY_INTEGER) {
		freeReplyObject(rep);
		return SFK_ERR_REDIS;
	}
	v = rep->integer;
	freeReplyObject(rep);
	return v < 0 ? SFK_ERR_FENCED : SFK_OK;
}
