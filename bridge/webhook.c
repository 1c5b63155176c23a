/*
 * webhook.c - inbound webhooks (see webhook.h and README.md "Inbound webhooks").
 *
 * Request flow: the admin server caps the body (413) and hands it over on
 * its single thread; webhook_evaluate authenticates and parses it (pure);
 * then, under the publish lock shared with the CometD loop (the
 * transactional producer runs one transaction at a time), the delivery id
 * and the signature are claimed in Redis, the batch is published in one
 * transaction, and the claims become "done" - or are released if the
 * transaction did not commit, so the sender's retry is accepted.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "admin.h"
#include "log.h"
#include "metrics.h"
#include "normalize.h"
#include "redis.h"
#include "rkeys.h"
#include "webhook.h"
#include "xmem.h"

#define SIG_VALUE_LEN (sizeof WEBHOOK_SIG_PREFIX - 1 + WEBHOOK_SIG_HEX_LEN)
#define OWNER_HEX     32
#define KEY_MAX       (sizeof RKEY_WEBHOOK_DELIVERY + WEBHOOK_DELIVERY_MAX + 1)

/* ---- configuration ------------------------------------------------------ */

void webhook_check_secret(struct config *c, const struct config_entry *e)
{
	const char *s = *(const char **)e->dest;
	if (s && strlen(s) < WEBHOOK_SECRET_MIN)
		config_problem(c, e, "the secret must be at least %d bytes", WEBHOOK_SECRET_MIN);
}

void webhook_config_check(struct config *c, const struct webhook_settings *s, const char *redis_url)
{
	if (!s->listen)
		return;
	if (!s->secret)
		config_problem(c, NULL, "SFK_WEBHOOK_LISTEN is set but SFK_WEBHOOK_SECRET is not");
	if (!redis_url)
		config_problem(
		        c, NULL,
		        "SFK_WEBHOOK_LISTEN needs REDIS_URL (delivery ids are accepted once)");
}

/* ---- pure core -------------------------------------------------------------- */

static void reject(struct webhook_reject *why, int status, const char *error, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void reject(struct webhook_reject *why, int status, const char *error, const char *fmt, ...)
{
	va_list ap;
	why->status = status;
	why->error = error;
	va_start(ap, fmt);
	vsnprintf(why->reason, sizeof why->reason, fmt, ap);
	va_end(ap);
}

static void to_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* HMAC-SHA256(secret, ts "." body) -> mac[32]. 0 or -1. */
static int hmac(const char *secret, size_t secret_len, const char *ts, const char *body,
                size_t body_len, unsigned char mac[32])
{
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
	OSSL_PARAM params[] = {
	        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
	        OSSL_PARAM_construct_end(),
	};
	size_t outl = 0;
	int rc = -1;
	/* An empty key is legal HMAC; OpenSSL wants a non-NULL pointer. */
	if (!ctx ||
	    !EVP_MAC_init(ctx, (const unsigned char *)(secret ? secret : ""), secret_len, params))
		goto out;
	if (!EVP_MAC_update(ctx, (const unsigned char *)ts, strlen(ts)) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)".", 1) ||
	    (body_len && !EVP_MAC_update(ctx, (const unsigned char *)body, body_len)) ||
	    !EVP_MAC_final(ctx, mac, &outl, 32) || outl != 32)
		goto out;
	rc = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(m);
	return rc;
}

int webhook_sign(const char *secret, size_t secret_len, const char *timestamp, const char *body,
                 size_t body_len, char out[sizeof WEBHOOK_SIG_PREFIX + WEBHOOK_SIG_HEX_LEN])
{
	unsigned char mac[32];
	if (hmac(secret, secret_len, timestamp, body, body_len, mac) != 0)
		return -1;
	memcpy(out, WEBHOOK_SIG_PREFIX, sizeof WEBHOOK_SIG_PREFIX - 1);
	to_hex(mac, sizeof mac, out + sizeof WEBHOOK_SIG_PREFIX - 1);
	OPENSSL_cleanse(mac, sizeof mac);
	return 0;
}

static int valid_delivery(const char *d)
{
	size_t n = strlen(d);
	if (n == 0 || n > WEBHOOK_DELIVERY_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)d[i]) && !strchr("._:-", d[i]))
			return 0;
	return 1;
}

int webhook_check(const struct webhook_policy *pol, const struct webhook_request *rq, int64_t now_s,
                  struct webhook_reject *why)
{
	size_t cap = pol->max_body ? pol->max_body : WEBHOOK_DEFAULT_MAX_BODY;
	int64_t tol = pol->tolerance_s > 0 ? pol->tolerance_s : WEBHOOK_DEFAULT_TOLERANCE_S;
	unsigned char want[32], got[32];

	memset(why, 0, sizeof *why);
	if (rq->body_len > cap) {
		reject(why, 413, "payload_too_large", "body is %zu bytes, more than the cap %zu",
		       rq->body_len, cap);
		return why->status;
	}

	/* Timestamp: plain decimal seconds, no sign, no spaces. */
	const char *ts = rq->timestamp;
	if (!ts || !*ts) {
		reject(why, 401, "unauthorized", "missing %s", WEBHOOK_HDR_TIMESTAMP);
		return why->status;
	}
	size_t tl = strlen(ts);
	if (tl > WEBHOOK_TIMESTAMP_DIGITS || strspn(ts, "0123456789") != tl) {
		reject(why, 401, "unauthorized", "%s is not unix seconds", WEBHOOK_HDR_TIMESTAMP);
		return why->status;
	}
	char *end;
	errno = 0;
	long long t = strtoll(ts, &end, 10);
	if (errno || *end) {
		reject(why, 401, "unauthorized", "%s is not unix seconds", WEBHOOK_HDR_TIMESTAMP);
		return why->status;
	}
	if (now_s - t > tol) {
		reject(why, 401, "unauthorized", "timestamp is %lld s old, more than %lld s",
		       (long long)(now_s - t), (long long)tol);
		return why->status;
	}
	if (t - now_s > tol) {
		reject(why, 401, "unauthorized",
		       "timestamp is %lld s in the future, more than %lld s",
		       (long long)(t - now_s), (long long)tol);
		return why->status;
	}

	/* Signature: "sha256=" + 64 hex digits (either case). */
	const char *sig = rq->signature;
	if (!sig || !*sig) {
		reject(why, 401, "unauthorized", "missing %s", WEBHOOK_HDR_SIGNATURE);
		return why->status;
	}
	if (strlen(sig) != SIG_VALUE_LEN ||
	    strncmp(sig, WEBHOOK_SIG_PREFIX, sizeof WEBHOOK_SIG_PREFIX - 1) != 0) {
		reject(why, 401, "unauthorized", "%s is not sha256=<64 hex digits>",
		       WEBHOOK_HDR_SIGNATURE);
		return why->status;
	}
	const char *hex = sig + sizeof WEBHOOK_SIG_PREFIX - 1;
	for (size_t i = 0; i < sizeof got; i++) {
		int hi = hex_val(hex[2 * i]), lo = hex_val(hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			reject(why, 401, "unauthorized", "%s is not sha256=<64 hex digits>",
			       WEBHOOK_HDR_SIGNATURE);
			return why->status;
		}
		got[i] = (unsigned char)(hi << 4 | lo);
	}
	if (hmac(pol->secret, pol->secret_len, ts, rq->body, rq->body_len, want) != 0) {
		/* Not the sender's fault, but nothing was verified: refuse. */
		reject(why, 401, "unauthorized", "signature could not be computed");
		return why->status;
	}
	int differ = CRYPTO_memcmp(want, got, sizeof want);
	OPENSSL_cleanse(want, sizeof want);
	if (differ) {
		reject(why, 401, "unauthorized", "signature mismatch");
		return why->status;
	}

	if (!rq->delivery || !*rq->delivery) {
		reject(why, 400, "bad_request", "missing %s", WEBHOOK_HDR_DELIVERY);
		return why->status;
	}
	if (!valid_delivery(rq->delivery)) {
		reject(why, 400, "bad_request", "%s must be 1 to %d of [A-Za-z0-9._:-]",
		       WEBHOOK_HDR_DELIVERY, WEBHOOK_DELIVERY_MAX);
		return why->status;
	}
	return 0;
}

int64_t webhook_replay_id(const char *delivery, size_t index)
{
	unsigned char md[32];
	char buf[WEBHOOK_DELIVERY_MAX + 32];
	int n = snprintf(buf, sizeof buf, "%s:%zu", delivery, index);
	size_t len = n < 0 ? 0 : (size_t)n >= sizeof buf ? sizeof buf - 1 : (size_t)n;
	EVP_Digest(buf, len, md, NULL, EVP_sha256(), NULL);
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | md[i];
	v &= UINT64_C(0x3fffffffffffffff);
	if (v < 3)
		v += 3;
	return -(int64_t)v;
}

static const char *const plain_types[] = {"CREATE", "UPDATE", "DELETE", "UNDELETE", NULL};
static const char *const plain_keys[] = {
        "entity",         "change_type",   "record",      "commit_timestamp",
        "changed_fields", "change_origin", "commit_user", NULL};

static int listed(const char *const *list, const char *s)
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(list[i], s) == 0)
			return 1;
	return 0;
}

/* A plain record change -> CDC data object (new reference), or NULL with why. */
static json_t *plain_to_cdc(json_t *it, size_t idx, const char *delivery, int64_t ts_ms,
                            struct webhook_reject *why)
{
	const char *k;
	json_t *v;
	json_object_foreach(it, k, v)
	{
		if (!listed(plain_keys, k)) {
			reject(why, 400, "bad_request", "$.events[%zu].%.64s: unknown member", idx,
			       k);
			return NULL;
		}
	}
	const char *entity = json_string_value(json_object_get(it, "entity"));
	const char *ctype = json_string_value(json_object_get(it, "change_type"));
	json_t *rec = json_object_get(it, "record");
	json_t *cts = json_object_get(it, "commit_timestamp");
	json_t *cf = json_object_get(it, "changed_fields");
	json_t *origin = json_object_get(it, "change_origin");
	json_t *user = json_object_get(it, "commit_user");
	if (!entity) {
		reject(why, 400, "bad_request", "$.events[%zu].entity: expected a string", idx);
		return NULL;
	}
	if (!ctype || !listed(plain_types, ctype)) {
		reject(why, 400, "bad_request",
		       "$.events[%zu].change_type: expected CREATE, UPDATE, DELETE or UNDELETE",
		       idx);
		return NULL;
	}
	if (!json_is_object(rec) || !json_is_string(json_object_get(rec, "Id"))) {
		reject(why, 400, "bad_request",
		       "$.events[%zu].record: expected an object with a string Id", idx);
		return NULL;
	}
	if (cts && (!json_is_integer(cts) || json_integer_value(cts) < 0)) {
		reject(why, 400, "bad_request",
		       "$.events[%zu].commit_timestamp: expected milliseconds since the epoch",
		       idx);
		return NULL;
	}
	if (cf && !json_is_array(cf)) {
		reject(why, 400, "bad_request", "$.events[%zu].changed_fields: expected an array",
		       idx);
		return NULL;
	}
	if (origin && !json_is_string(origin)) {
		reject(why, 400, "bad_request", "$.events[%zu].change_origin: expected a string",
		       idx);
		return NULL;
	}
	if (user && !json_is_null(user) && !json_is_string(user)) {
		reject(why, 400, "bad_request", "$.events[%zu].commit_user: expected a string",
		       idx);
		return NULL;
	}

	/* The payload is the record's fields, as in a CDC event: no Id (it is
	 * in recordIds), no REST "attributes". */
	json_t *payload = json_deep_copy(rec);
	json_object_del(payload, "Id");
	json_object_del(payload, "attributes");
	char txkey[sizeof "webhook:" + WEBHOOK_DELIVERY_MAX];
	snprintf(txkey, sizeof txkey, "webhook:%s", delivery);
	json_t *ceh = json_pack(
	        "{s:s, s:s, s:[O], s:I, s:I, s:s, s:I, s:s, s:o}", "entityName", entity,
	        "changeType", ctype, "recordIds", json_object_get(rec, "Id"), "commitTimestamp",
	        (json_int_t)(cts ? json_integer_value(cts) : ts_ms), "commitNumber", (json_int_t)0,
	        "transactionKey", txkey, "sequenceNumber", (json_int_t)(idx + 1), "changeOrigin",
	        origin ? json_string_value(origin) : "", "changedFields",
	        cf ? json_deep_copy(cf) : json_array());
	if (user && json_is_string(user))
		json_object_set(ceh, "commitUser", user);
	json_object_set_new(payload, "ChangeEventHeader", ceh);
	return json_pack("{s:s, s:o, s:{s:I}}", "schema", WEBHOOK_SCHEMA_ID, "payload", payload,
	                 "event", "replayId", (json_int_t)webhook_replay_id(delivery, idx));
}

json_t *webhook_parse_body(const char *body, size_t len, const char *delivery, int64_t ts_ms,
                           struct webhook_reject *why)
{
	json_error_t je;
	json_t *root = NULL, *items, *out = NULL, *it;
	size_t i;

	memset(why, 0, sizeof *why);
	if (!delivery || !valid_delivery(delivery)) {
		reject(why, 400, "bad_request", "missing or malformed delivery id");
		return NULL;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		reject(why, 400, "bad_request", "body is not JSON: %s at line %d column %d",
		       je.text, je.line, je.column);
		return NULL;
	}
	items = json_is_array(root) ? root : json_object_get(root, "events");
	if (!json_is_array(items) || (json_is_object(root) && json_object_size(root) != 1)) {
		reject(why, 400, "bad_request",
		       "body must be {\"events\":[...]} or an array of events");
		goto out;
	}
	if (json_array_size(items) == 0 || json_array_size(items) > WEBHOOK_MAX_EVENTS) {
		reject(why, 400, "bad_request", "$.events: %zu events, want 1 to %d",
		       json_array_size(items), WEBHOOK_MAX_EVENTS);
		goto out;
	}

	out = json_array();
	json_array_foreach(items, i, it)
	{
		json_t *msg;
		if (!json_is_object(it)) {
			reject(why, 400, "bad_request", "$.events[%zu]: expected an object", i);
			goto fail;
		}
		if (json_object_get(it, "entity")) {
			if (!(msg = plain_to_cdc(it, i, delivery, ts_ms, why)))
				goto fail;
		} else if (json_object_get(it, "data")) {
			/* Without "channel": publish must not move a CometD checkpoint. */
			msg = json_pack("{s:O}", "data", json_object_get(it, "data"));
		} else if (json_object_get(it, "payload")) {
			msg = json_incref(it);
		} else {
			reject(why, 400, "bad_request",
			       "$.events[%zu]: neither a CDC message (data or payload) nor a "
			       "record "
			       "change (entity)",
			       i);
			goto fail;
		}
		/* The publish path's own validation, run now so a bad batch is a
		 * 400 for the sender instead of dead letters. Only its size cap is
		 * left to publish (dead letter, as for CometD). */
		struct normalize_opts o = {.max_event_bytes = SIZE_MAX};
		struct normalize_result r;
		char err[WEBHOOK_REASON_MAX - 32];
		enum sfk_err rc = normalize_message(&o, msg, &r, err, sizeof err);
		/* Gap events would re-fetch over REST, GAP_OVERFLOW would queue an
		 * entity resync: both are the CometD loop's (its REST client and
		 * job queue are not shared with this thread), and a sender has the
		 * data anyway. */
		int gap = rc == SFK_OK && strncmp(r.change_type, "GAP_", 4) == 0;
		int resync = rc == SFK_OK && r.action == NORMALIZE_RESYNC;
		normalize_result_free(&r);
		if (rc != SFK_OK) {
			json_decref(msg);
			reject(why, 400, "bad_request", "$.events[%zu]: %s", i, err);
			goto fail;
		}
		if (gap || resync) {
			json_decref(msg);
			reject(why, 400, "bad_request",
			       "$.events[%zu]: %s events are not accepted by webhook (send the "
			       "record's data as CREATE/UPDATE/DELETE/UNDELETE)",
			       i, gap ? "GAP_*" : "wildcard record id");
			goto fail;
		}
		json_array_append_new(out, msg);
	}
	goto out;
fail:
	json_decref(out);
	out = NULL;
out:
	json_decref(root);
	return out;
}

json_t *webhook_evaluate(const struct webhook_policy *pol, const struct webhook_request *rq,
                         int64_t now_s, struct webhook_reject *why)
{
	if (webhook_check(pol, rq, now_s, why) != 0)
		return NULL;
	char *end;
	long long ts = strtoll(rq->timestamp, &end, 10); /* checked by webhook_check */
	return webhook_parse_body(rq->body, rq->body_len, rq->delivery, (int64_t)ts * 1000, why);
}

/* ---- the listener ----------------------------------------------------------- */

struct webhook {
	struct admin *srv;
	struct redis *redis; /* only the admin's single thread uses it */
	struct publisher *pub;
	pthread_mutex_t *lock;
	char *secret;
	struct webhook_policy pol;
	long long ttl_ms;
	struct metric *m_req;
};

/* Both keys free -> both claimed; either "done" -> done; else busy. */
static struct redis_script claim_script =
        REDIS_SCRIPT("local a = redis.call('GET', KEYS[1]) "
                     "local b = redis.call('GET', KEYS[2]) "
                     "if a == 'done' or b == 'done' then return 'done' end "
                     "if a or b then return 'busy' end "
                     "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
                     "redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) "
                     "return 'claimed'");
/* Committed: "done" whoever held the claim (the records are in Kafka). */
static struct redis_script done_script =
        REDIS_SCRIPT("for i = 1, 2 do redis.call('SET', KEYS[i], 'done', 'PX', ARGV[1]) end "
                     "return 1");
/* Not committed: give back what we still own. */
static struct redis_script release_script =
        REDIS_SCRIPT("for i = 1, 2 do "
                     "if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end "
                     "end return 1");

static void respond(struct webhook *w, struct admin_resp *resp, int status, const char *error,
                    const char *reason, const char *outcome, const char *delivery)
{
	metric_add(w->m_req, 1, outcome);
	log_info("webhook refused status=%d error=%s reason=%s delivery=%s", status, error, reason,
	         delivery ? delivery : "");
	admin_resp_json(resp, status, json_pack("{s:s, s:s}", "error", error, "reason", reason));
	if (status == 503)
		admin_resp_header(resp, "Retry-After", "5");
}

static const char *outcome_of(const struct webhook_reject *why)
{
	switch (why->status) {
	case 401: return "unauthorized";
	case 413: return "payload_too_large";
	default: return "bad_request";
	}
}

/* Run one Redis script on the two keys; the reply's string (or NULL) into buf. */
static int run_script(struct webhook *w, struct redis_script *s, const char *k1, const char *k2,
                      int nargs, const char **args, char *buf, size_t len)
{
	const char *keys[2] = {k1, k2};
	redisReply *r = redis_eval(w->redis, s, REDIS_RETRY, 2, keys, nargs, args);
	if (!r)
		return -1;
	if (buf)
		snprintf(buf, len, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
	freeReplyObject(r);
	return 0;
}

static void handle(const struct admin_req *req, struct admin_resp *resp, void *ctx)
{
	struct webhook *w = ctx;
	struct webhook_request rq = {
	        .timestamp = admin_req_header(req, WEBHOOK_HDR_TIMESTAMP),
	        .signature = admin_req_header(req, WEBHOOK_HDR_SIGNATURE),
	        .delivery = admin_req_header(req, WEBHOOK_HDR_DELIVERY),
	        .body = req->body,
	        .body_len = req->body_len,
	};
	struct webhook_reject why;
	char dkey[KEY_MAX], skey[sizeof RKEY_WEBHOOK_SIG + WEBHOOK_SIG_HEX_LEN],
	        owner[8 + OWNER_HEX];
	char ttl[24], lease[24], got[16], err[1024];
	unsigned char raw[OWNER_HEX / 2];
	struct publish_stats st;

	json_t *msgs = webhook_evaluate(&w->pol, &rq, (int64_t)time(NULL), &why);
	if (!msgs) {
		respond(w, resp, why.status, why.error, why.reason, outcome_of(&why), NULL);
		return;
	}
	/* Valid delivery id (checked), hex signature (checked; lower-cased so
	 * either case names one key). */
	snprintf(dkey, sizeof dkey, "%s%s", RKEY_WEBHOOK_DELIVERY, rq.delivery);
	int n = snprintf(skey, sizeof skey, "%s%s", RKEY_WEBHOOK_SIG,
	                 rq.signature + sizeof WEBHOOK_SIG_PREFIX - 1);
	for (int i = (int)sizeof RKEY_WEBHOOK_SIG - 1; i < n; i++)
		skey[i] = (char)tolower((unsigned char)skey[i]);
	if (RAND_bytes(raw, sizeof raw) != 1) {
		respond(w, resp, 503, "unavailable", "no randomness for a claim token",
		        "unavailable", rq.delivery);
		goto out;
	}
	memcpy(owner, "claim:", 6);
	to_hex(raw, sizeof raw, owner + 6);
	snprintf(lease, sizeof lease, "%d", WEBHOOK_CLAIM_LEASE_MS);
	snprintf(ttl, sizeof ttl, "%lld", w->ttl_ms);

	/* Claim, publish and complete under the lock: the claim's lease only
	 * has to cover our own transaction, never a wait for the CometD loop. */
	pthread_mutex_lock(w->lock);
	const char *cargs[2] = {owner, lease};
	if (run_script(w, &claim_script, dkey, skey, 2, cargs, got, sizeof got) != 0) {
		pthread_mutex_unlock(w->lock);
		log_error("webhook redis error=%s", redis_errstr(w->redis));
		respond(w, resp, 503, "unavailable", "delivery ids cannot be checked (Redis)",
		        "unavailable", rq.delivery);
		goto out;
	}
	if (strcmp(got, "claimed") != 0) {
		pthread_mutex_unlock(w->lock);
		int done = strcmp(got, "done") == 0;
		respond(w, resp, 409, done ? "duplicate_delivery" : "delivery_in_progress",
		        done ? "this delivery (id or signed request) was already accepted"
		             : "this delivery is being published; retry later",
		        "duplicate", rq.delivery);
		goto out;
	}
	enum sfk_err rc = publish_batch(w->pub, msgs, &st, err, sizeof err);
	if (rc != SFK_OK) {
		const char *rargs[1] = {owner};
		if (run_script(w, &release_script, dkey, skey, 1, rargs, NULL, 0) != 0)
			log_error("webhook claim not released delivery=%s error=%s", rq.delivery,
			          redis_errstr(w->redis));
		pthread_mutex_unlock(w->lock);
		log_error("webhook batch not committed delivery=%s error=%s class=%s reason=%s",
		          rq.delivery, sfk_err_str(rc), sfk_err_class_str(sfk_err_class(rc)), err);
		if (sfk_err_class(rc) == SFK_CLASS_PERMANENT) {
			/* e.g. a record over Kafka's size limit: retrying cannot help. */
			char why2[WEBHOOK_REASON_MAX];
			snprintf(why2, sizeof why2, "the batch cannot be published: %.400s", err);
			respond(w, resp, 400, "bad_request", why2, "bad_request", rq.delivery);
		} else {
			respond(w, resp, 503, "unavailable", "the Kafka transaction did not commit",
			        "unavailable", rq.delivery);
		}
		goto out;
	}
	const char *dargs[1] = {ttl};
	if (run_script(w, &done_script, dkey, skey, 1, dargs, NULL, 0) != 0)
		/* Committed anyway: the claim expires after its lease, after
		 * which a replay of this id would be published again. */
		log_error("webhook delivery not marked done delivery=%s error=%s", rq.delivery,
		          redis_errstr(w->redis));
	pthread_mutex_unlock(w->lock);

	metric_add(w->m_req, 1, "accepted");
	log_info("webhook accepted delivery=%s events=%zu records=%zu fanout=%zu dead_letters=%zu "
	         "echoes=%zu",
	         rq.delivery, st.events, st.records, st.fanout, st.dead_letters, st.echoes);
	admin_resp_json(resp, 202,
	                json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "status", "accepted",
	                          "delivery", rq.delivery, "events", (json_int_t)st.events,
	                          "records", (json_int_t)st.records, "fanout",
	                          (json_int_t)st.fanout, "dead_letters",
	                          (json_int_t)st.dead_letters));
out:
	json_decref(msgs);
}

/* A body over the cap is refused by the server before handle() runs. */
static void count_too_large(const char *path, void *ctx)
{
	struct webhook *w = ctx;
	(void)path;
	metric_add(w->m_req, 1, "payload_too_large");
}

struct webhook *webhook_start(const struct webhook_conf *conf, char *errstr, size_t errlen)
{
	const struct webhook_settings *s = conf->settings;
	struct admin_opts ao;
	struct webhook *w;

	if (!s || !s->listen || !s->secret || strlen(s->secret) < WEBHOOK_SECRET_MIN) {
		snprintf(errstr, errlen,
		         "webhook: listen address and a secret of at least %d bytes "
		         "are required",
		         WEBHOOK_SECRET_MIN);
		return NULL;
	}
	if (!conf->redis_url || !conf->pub || !conf->publish_lock) {
		snprintf(errstr, errlen, "webhook: REDIS_URL, a publisher and a lock are required");
		return NULL;
	}
	w = xcalloc(1, sizeof *w);
	w->pub = conf->pub;
	w->lock = conf->publish_lock;
	w->secret = xstrdup(s->secret);
	w->pol = (struct webhook_policy){
	        .secret = w->secret,
	        .secret_len = strlen(w->secret),
	        .max_body = s->max_body > 0 ? (size_t)s->max_body : WEBHOOK_DEFAULT_MAX_BODY,
	        .tolerance_s = s->tolerance_ms > 0 ? s->tolerance_ms / 1000 : 0,
	};
	w->ttl_ms = s->delivery_ttl_ms > 0 ? s->delivery_ttl_ms : 86400000LL;
	w->m_req = metrics_counter("sfk_webhook_requests_total",
	                           "Inbound webhook requests by outcome", "outcome");
	if (!(w->redis = redis_connect_url(conf->redis_url, NULL, errstr, errlen)))
		goto fail;
	memset(&ao, 0, sizeof ao);
	ao.addr = s->listen;
	ao.max_body = w->pol.max_body;
	ao.threads = 1; /* one request at a time: one Redis connection, one producer */
	ao.no_builtin_routes = true;
	ao.on_too_large = count_too_large;
	ao.too_large_ctx = w;
	if (!(w->srv = admin_new(&ao, errstr, errlen)))
		goto fail;
	admin_route(w->srv, "POST", WEBHOOK_PATH, handle, w);
	if (admin_start(w->srv, errstr, errlen) != SFK_OK)
		goto fail;
	log_info(
	        "webhook listening addr=%s port=%u path=%s max_body=%zu tolerance_s=%lld",
	        s->listen, admin_port(w->srv), WEBHOOK_PATH, w->pol.max_body,
	        (long long)(w->pol.tolerance_s ? w->pol.tolerance_s : WEBHOOK_DEFAULT_TOLERANCE_S));
	return w;
fail:
	webhook_free(&w);
	return NULL;
}

unsigned webhook_port(const struct webhook *w)
{
	return w ? admin_port(w->srv) : 0;
}

void webhook_free(struct webhook **wp)
{
	if (!wp || !*wp)
		return;
	struct webhook *w = *wp;
	admin_free(&w->srv); /* waits for the request in flight */
	redis_free(w->redis);
	if (w->secret) {
		OPENSSL_cleanse(w->secret, strlen(w->secret));
		free(w->secret);
	}
	free(w);
	*wp = NULL;
}
