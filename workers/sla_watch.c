/*
 * sla_watch.c - lead.sla_watch: escalate routed Leads nobody responded to.
 *
 * Deadlines live in Redis (rkeys.h, sfk:sla:*): a sorted set of Lead ids by
 * due time, a sorted set of claimed ones by lease expiry, and a hash per Lead
 * (owner, segment, region, pool, SLA minutes, attempts). lead.route arms them
 * (sla_arm_routed), lead.first_touch_detect clears them (sla_clear).
 *
 * A watcher thread (started by init, joined by fini) ticks every SFK_SLA_TICK:
 *   1. rebuild from Salesforce when the marker sfk:sla:ready is missing (a
 *      wiped or new Redis), one replica under a lock;
 *   2. claim due deadlines in ONE Lua call: due ones and claims whose lease
 *      expired (a replica died mid-escalation) move to the claimed set with a
 *      new lease, so exactly one replica holds each;
 *   3. per claimed Lead: idempotency claim "sla:<lead>:<attempt>", read the
 *      Lead (a first response or a deletion drops the deadline), pick the next
 *      owner (route.c's round robin, memoized per attempt, skipping the
 *      previous owner), write SLA_Breached__c / SLA_Escalations__c (/ OwnerId,
 *      Owner_Assigned_At__c) with sObject Collections -- skipped when
 *      Salesforce already shows this attempt (a crash after the write) --,
 *      emit the notify event and the flywheel record, flush, mark done, then
 *      re-arm the next attempt (at most max_escalations) or drop the deadline.
 * The consumer loop itself only sees sfk.wl.lead.sla_watch: a person changing
 * a Lead's owner updates the owner the next escalation skips.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "first_touch.h"
#include "flywheel.h"
#include "idem.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "rkeys.h"
#include "sf_rest.h"
#include "sfid.h"
#include "sla.h"
#include "sla_watch.h"
#include "soql_build.h"
#include "xmem.h"

#define SLA_WORKLOAD        "lead.sla_watch"
#define SLA_TIME_BODY_MAX   4096 /* answer of SFK_SLA_TIME_URL */
#define SLA_EVENT_ID_MAX    48   /* "sla:<18>:<attempt>" */
#define SLA_REBUILD_LOCK_MS 120000
#define SLA_FLUSH_MS        10000
#define SLA_TOPIC_MAX       KAFKA_TOPIC_MAX

static long long g_tick_ms, g_lease_ms, g_batch, g_topic_partitions;
static const char *g_time_url;

static const struct config_entry sla_config[] = {
        {"sla-tick", "SFK_SLA_TICK", CONFIG_DURATION, "1s", 0,
         "lead.sla_watch: how often due deadlines are claimed", .dest = &g_tick_ms, .min = 50,
         .max = 60000},
        {"sla-lease", "SFK_SLA_LEASE", CONFIG_DURATION, "60s", 0,
         "lead.sla_watch: claim lease; a dead replica's claims are taken over after it",
         .dest = &g_lease_ms, .min = 1000, .max = 3600000},
        {"sla-batch", "SFK_SLA_BATCH", CONFIG_INT, "100", 0,
         "lead.sla_watch: deadlines claimed per tick", .dest = &g_batch, .min = 1,
         .max = SF_REST_COLLECTION_MAX},
        {"sla-topic-partitions", "SFK_SLA_TOPIC_PARTITIONS", CONFIG_INT, "6", 0,
         "lead.sla_watch: partitions of <prefix>wl.lead.sla_watch when the worker has to create it "
         "(missing: a consumer that is never assigned is never ready)",
         .dest = &g_topic_partitions, .min = 1, .max = 1000},
        {"sla-time-url", "SFK_SLA_TIME_URL", CONFIG_URL, NULL, 0,
         "lead.sla_watch: URL answering {\"now_ms\": N}: the org's clock when it is not this "
         "host's (an emulated org, e.g. sfk-sim's /sim/clock); unset: the local clock",
         .dest = &g_time_url},
};

static const char sla_system_prompt[] =
        "You watch the response SLA of routed B2B sales leads. Given a lead whose deadline "
        "passed without a first response, answer with a JSON object {action, escalation, "
        "previous_owner, new_owner, reason}: notify, and reassign to the next owner of the "
        "pool when the policy allows, at most max_escalations times.";

/* ---- Redis scripts ------------------------------------------------------- */

/* KEYS due, claimed; ARGV now, lease_until, limit. Expired claims first. */
static struct redis_script claim_script = REDIS_SCRIPT(
        "local out = {}\n"
        "local lim = tonumber(ARGV[3])\n"
        "for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, "
        "lim)) do\n"
        "  redis.call('ZADD', KEYS[2], ARGV[2], m); out[#out + 1] = m\n"
        "end\n"
        "if #out < lim then\n"
        "  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, "
        "lim - #out)) do\n"
        "    redis.call('ZREM', KEYS[1], m); redis.call('ZADD', KEYS[2], ARGV[2], m)\n"
        "    out[#out + 1] = m\n"
        "  end\n"
        "end\n"
        "return out\n");

/* KEYS due, claimed, hash; ARGV lead, due, ttl, nx, field, value, ... */
static struct redis_script arm_script =
        REDIS_SCRIPT("if ARGV[4] == 'nx' and redis.call('EXISTS', KEYS[3]) == 1 then return 0 end\n"
                     "redis.call('DEL', KEYS[3])\n"
                     "redis.call('HSET', KEYS[3], unpack(ARGV, 5))\n"
                     "redis.call('EXPIRE', KEYS[3], ARGV[3])\n"
                     "redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])\n"
                     "redis.call('ZREM', KEYS[2], ARGV[1])\n"
                     "return 1\n");

/* KEYS due, claimed, hash; ARGV lead, attempts, next due ("" = drop), owner, base. */
static struct redis_script finish_script =
        REDIS_SCRIPT("if ARGV[3] == '' or redis.call('EXISTS', KEYS[3]) == 0 then\n"
                     "  redis.call('DEL', KEYS[3]); redis.call('ZREM', KEYS[1], ARGV[1])\n"
                     "  redis.call('ZREM', KEYS[2], ARGV[1]); return 0\n"
                     "end\n"
                     "redis.call('HSET', KEYS[3], 'attempts', ARGV[2], 'owner', ARGV[4], "
                     "'base', ARGV[5])\n"
                     "redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])\n"
                     "redis.call('ZREM', KEYS[2], ARGV[1])\n"
                     "return 1\n");

/* KEYS hash; ARGV owner: a person changed the owner (only of an armed Lead). */
static struct redis_script owner_script =
        REDIS_SCRIPT("if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
                     "redis.call('HSET', KEYS[1], 'owner', ARGV[1]); return 1\n");

static void hash_key(const char *lead, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", RKEY_SLA_LEAD, lead);
}

static enum sfk_err arm(struct redis *r, const char *lead, int64_t due_ms, int nx,
                        const char *const *fv, int nfv)
{
	char hk[SLA_KEY_MAX], due[24], ttl[24];
	const char *keys[3] = {RKEY_SLA_DUE, RKEY_SLA_CLAIMED, hk};
	const char *args[4 + 16];
	redisReply *rep;

	if (nfv > 16)
		return SFK_ERR_INVALID;
	hash_key(lead, hk, sizeof hk);
	snprintf(due, sizeof due, "%lld", (long long)due_ms);
	snprintf(ttl, sizeof ttl, "%d", SLA_HASH_TTL_S);
	args[0] = lead;
	args[1] = due;
	args[2] = ttl;
	args[3] = nx ? "nx" : "";
	for (int i = 0; i < nfv; i++)
		args[4 + i] = fv[i];
	rep = redis_eval(r, &arm_script, REDIS_RETRY, 3, keys, 4 + nfv, args);
	if (!rep)
		return SFK_ERR_REDIS;
	freeReplyObject(rep);
	return SFK_OK;
}

enum sfk_err sla_clear(struct redis *r, const char *const *leads, size_t n)
{
	struct redis_pipe *p;
	redisReply **rep;
	enum sfk_err rc;
	char hk[SLA_KEY_MAX];

	if (n == 0)
		return SFK_OK;
	p = redis_pipe_new();
	for (size_t i = 0; i < n; i++) {
		hash_key(leads[i], hk, sizeof hk);
		redis_pipe_add(p, "DEL %s", hk);
		redis_pipe_add(p, "ZREM %s %s", RKEY_SLA_DUE, leads[i]);
		redis_pipe_add(p, "ZREM %s %s", RKEY_SLA_CLAIMED, leads[i]);
	}
	rep = xcalloc(redis_pipe_len(p), sizeof *rep);
	rc = redis_pipe_exec(r, p, REDIS_RETRY, rep);
	for (size_t i = 0; rc == SFK_OK && i < redis_pipe_len(p); i++)
		if (rep[i])
			freeReplyObject(rep[i]);
	free(rep);
	redis_pipe_free(p);
	return rc;
}

/* ---- lead.route's hook ------------------------------------------------------ */

/* The SLA policy lead.route's process arms with: read once (the loop thread). */
static struct sla_policy *g_arm_policy;
static int g_arm_loaded;

static struct sla_policy *load_sla_policy(const char *path, json_t **problems)
{
	json_error_t je;
	json_t *doc = json_load_file(path, 0, &je);
	struct sla_policy *p;
	if (!doc) {
		if (!*problems)
			*problems = json_array();
		json_array_append_new(*problems, json_sprintf("%s: %s", path, je.text));
		return NULL;
	}
	p = sla_policy_from_json(doc, NULL, problems);
	json_decref(doc);
	return p;
}

void sla_arm_routed(struct wl_ctx *ctx, json_t *decision, json_t *write)
{
	struct metric *fail = metrics_counter("sfk_sla_arm_failures_total",
	                                      "SLA deadlines lead.route could not arm", NULL);
	const char *lead = json_string_value(json_object_get(write, "id"));
	const char *owner = json_string_value(json_object_get(write, "OwnerId"));
	const char *seg = json_string_value(json_object_get(decision, "segment"));
	const char *reg = json_string_value(json_object_get(decision, "region"));
	const char *pool = json_string_value(json_object_get(decision, "pool"));
	const char *ver = json_string_value(json_object_get(decision, "policy_version"));
	long sla = (long)json_integer_value(json_object_get(decision, "sla_minutes"));
	int64_t base = ft_json_datetime(json_object_get(write, "Owner_Assigned_At__c"));
	char sla_s[24], base_s[24];

	if (!ctx->redis || !lead || !owner || sla <= 0 || base < 0)
		return;
	if (!g_arm_loaded) {
		json_t *problems = NULL;
		const char *path = ctx->cfg ? config_str(ctx->cfg, "route-policy") : NULL;
		g_arm_loaded = 1;
		if (path && !(g_arm_policy = load_sla_policy(path, &problems)))
			log_warn("sla: business hours not loaded, deadlines count calendar time "
			         "path=%s problem=%s",
			         path, json_string_value(json_array_get(problems, 0)));
		json_decref(problems);
	}
	int64_t due = sla_work_add(sla_policy_hours(g_arm_policy, reg), base, sla);
	snprintf(sla_s, sizeof sla_s, "%ld", sla);
	snprintf(base_s, sizeof base_s, "%lld", (long long)base);
	const char *fv[] = {"owner",    owner,
	                    "segment",  seg ? seg : "",
	                    "region",   reg ? reg : "",
	                    "pool",     pool ? pool : "",
	                    "sla",      sla_s,
	                    "base",     base_s,
	                    "attempts", "0",
	                    "version",  ver ? ver : ""};
	if (due < 0 || arm(ctx->redis, lead, due, 0, fv, 16) != SFK_OK) {
		metric_add(fail, 1);
		log_warn("sla: deadline not armed lead=%s error=%s", lead,
		         due < 0 ? "no business hours within the horizon"
		                 : redis_errstr(ctx->redis));
	}
}

/* ---- the watcher ------------------------------------------------------------ */

struct sla_watch {
	struct wl_ctx *ctx;  /* borrowed */
	const char *ca_file; /* SF_CA_FILE (borrowed from the config), may be NULL */
	struct route_policy *route;
	struct sla_policy *sla;
	struct redis *redis; /* the watcher thread's own */
	struct idem *idem;
	struct kafka_producer *producer; /* the watcher's own */
	char notify_topic[SLA_TOPIC_MAX + 1], fly_topic[SLA_TOPIC_MAX + 1];
	pthread_t thr;
	int started;
	atomic_int stop;
	struct metric *breaches, *escalations, *reassignments, *open, *rebuilt, *dropped;
};

struct body {
	char buf[SLA_TIME_BODY_MAX + 1];
	size_t len;
	int overflow;
};

static size_t on_body(char *d, size_t sz, size_t nm, void *ud)
{
	struct body *b = ud;
	size_t n = sz * nm;
	if (b->len + n > SLA_TIME_BODY_MAX) {
		b->overflow = 1;
		return 0;
	}
	memcpy(b->buf + b->len, d, n);
	b->len += n;
	b->buf[b->len] = '\0';
	return n;
}

/* "Now" as the org sees it (record timestamps are compared with it); -1 unknown. */
static int64_t org_now(struct sla_watch *w)
{
	struct body b = {.len = 0};
	long status = 0;
	json_t *doc;
	int64_t now = -1;
	CURL *c;

	if (!g_time_url)
		return w->ctx->now_ms();
	if (!(c = curl_easy_init()))
		return -1;
	curl_easy_setopt(c, CURLOPT_URL, g_time_url);
	if (w->ca_file) /* the org's CA (SF_CA_FILE), as for its REST API */
		curl_easy_setopt(c, CURLOPT_CAINFO, w->ca_file);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(c) == CURLE_OK &&
	    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200 &&
	    (doc = json_loadb(b.buf, b.len, 0, NULL))) {
		if (json_is_integer(json_object_get(doc, "now_ms")))
			now = (int64_t)json_integer_value(json_object_get(doc, "now_ms"));
		json_decref(doc);
	}
	curl_easy_cleanup(c);
	if (now < 0)
		log_warn("sla: clock not readable url_status=%ld", status);
	return now;
}

static const struct route_pool *pool_by_id(const struct route_policy *p, const char *id)
{
	for (size_t i = 0; id && *id && i < route_npools(p); i++)
		if (strcmp(route_pool_at(p, i)->id, id) == 0)
			return route_pool_at(p, i);
	return NULL;
}

static void iso(int64_t ms, char *buf, size_t len)
{
	if (ft_format_datetime(ms, buf, len) != 0)
		snprintf(buf, len, "1970-01-01T00:00:00.000Z");
}

/* Rows of Lead by 18-char id (new reference in *out). */
static enum sfk_err query_leads(struct sla_watch *w, const char *head, const char *const *ids,
                                size_t n, json_t **out)
{
	struct soql_list q = {0};
	char err[256];
	enum sfk_err rc;

	*out = json_object();
	rc = soql_build_in_ids(head, "", ids, n, sf_rest_query_uri_overhead(w->ctx->sf), 0, &q, err,
	                       sizeof err);
	if (rc != SFK_OK)
		log_warn("sla: lead query not built error=%s", err);
	for (size_t k = 0; rc == SFK_OK && k < q.n; k++) {
		struct sf_query *it = NULL;
		struct sf_error se;
		json_t *rec;
		char id18[19];
		sf_error_clear(&se);
		rc = sf_query_open(w->ctx->sf, q.q[k], &it, &se);
		while (rc == SFK_OK && (rc = sf_query_next(it, &rec, &se)) == SFK_OK && rec)
			if (sfid_to18(json_string_value(json_object_get(rec, "Id")), id18) == 0)
				json_object_set(*out, id18, rec);
		sf_query_free(&it);
		if (rc != SFK_OK)
			log_warn("sla: lead query failed code=%s error=%s", se.code, se.message);
	}
	soql_list_free(&q);
	return rc;
}

/*
 * Rebuild the deadlines from Salesforce when the marker is missing: every
 * Lead routed (Owner_Assigned_At__c set), never answered and never breached
 * gets deadline = Owner_Assigned_At__c + its SLA (policy, business hours).
 * Existing deadlines are kept (armed with nx). Returns 1 when the marker is
 * there afterwards.
 */
static int maybe_rebuild(struct sla_watch *w, int64_t now)
{
	static const char soql[] =
	        "SELECT Id, OwnerId, Owner_Assigned_At__c, NumberOfEmployees, Country, Industry "
	        "FROM Lead WHERE Owner_Assigned_At__c != null AND First_Response_At__c = null "
	        "AND SLA_Breached__c = false";
	redisReply *rep = redis_cmd(w->redis, "EXISTS %s", RKEY_SLA_READY);
	struct sf_query *it = NULL;
	struct sf_error se;
	json_t *rec;
	char token[40];
	long armed = 0;
	enum sfk_err rc;
	int ok = 0;

	if (!rep)
		return 0;
	ok = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
	freeReplyObject(rep);
	if (ok)
		return 1;
	snprintf(token, sizeof token, "%s", idem_owner(w->idem));
	rep = redis_cmd_flags(w->redis, REDIS_NORETRY, "SET %s %s NX PX %d", RKEY_SLA_REBUILD_LOCK,
	                      token, SLA_REBUILD_LOCK_MS);
	ok = rep && rep->type == REDIS_REPLY_STATUS;
	if (rep)
		freeReplyObject(rep);
	if (!ok)
		return 0; /* another replica rebuilds */
	log_info("sla: deadlines missing in Redis, rebuilding from Salesforce");
	sf_error_clear(&se);
	rc = sf_query_open(w->ctx->sf, soql, &it, &se);
	while (rc == SFK_OK && (rc = sf_query_next(it, &rec, &se)) == SFK_OK && rec) {
		struct route_input in = {0};
		struct route_eval r;
		char lead[19], owner[19], sla_s[24], base_s[24];
		json_t *emp = json_object_get(rec, "NumberOfEmployees");
		int64_t base = ft_json_datetime(json_object_get(rec, "Owner_Assigned_At__c"));
		if (sfid_to18(json_string_value(json_object_get(rec, "Id")), lead) != 0 ||
		    sfid_to18(json_string_value(json_object_get(rec, "OwnerId")), owner) != 0 ||
		    base < 0)
			continue;
		in.lead_id = lead;
		in.country = json_string_value(json_object_get(rec, "Country"));
		in.industry = json_string_value(json_object_get(rec, "Industry"));
		if (json_is_number(emp)) {
			in.has_employees = 1;
			in.employees = (long long)json_number_value(emp);
		}
		route_evaluate(w->route, &in, &r);
		int64_t due = sla_work_add(sla_policy_hours(w->sla, r.region), base, r.sla_minutes);
		snprintf(sla_s, sizeof sla_s, "%ld", r.sla_minutes);
		snprintf(base_s, sizeof base_s, "%lld", (long long)base);
		const char *fv[] = {"owner",    owner,
		                    "segment",  r.segment ? r.segment : "",
		                    "region",   r.region ? r.region : "",
		                    "pool",     r.pool ? r.pool->id : "",
		                    "sla",      sla_s,
		                    "base",     base_s,
		                    "attempts", "0",
		                    "version",  route_policy_version(w->route)};
		if (due >= 0 && arm(w->redis, lead, due, 1, fv, 16) == SFK_OK)
			armed++;
	}
	sf_query_free(&it);
	if (rc != SFK_OK) {
		log_warn("sla: rebuild query failed code=%s error=%s", se.code, se.message);
		ok = 0;
	} else {
		rep = redis_cmd(w->redis, "SET %s %lld", RKEY_SLA_READY, (long long)now);
		ok = rep != NULL;
		if (rep)
			freeReplyObject(rep);
		metric_add(w->rebuilt, (double)armed);
		log_info("sla: deadlines rebuilt from Salesforce armed=%ld", armed);
	}
	rep = redis_cmd(w->redis, "DEL %s", RKEY_SLA_REBUILD_LOCK);
	if (rep)
		freeReplyObject(rep);
	return ok;
}

/* One claimed deadline on its way through the batch. */
struct esc {
	char lead[19];
	char event_id[SLA_EVENT_ID_MAX];
	json_t *h; /* the Redis hash as an object of strings (owned) */
	int k;     /* this escalation's number (attempts + 1) */
	int claimed, written, reassigned, ok;
	char prev[19], next[19];
	int64_t due;
};

static const char *hget(json_t *h, const char *f)
{
	const char *v = json_string_value(json_object_get(h, f));
	return v ? v : "";
}

/* The next owner of the pool, not prev. "" when none (single member, capped). */
static void next_owner(struct sla_watch *w, const struct esc *e, int64_t now, char out[19])
{
	const struct route_pool *pool = pool_by_id(w->route, hget(e->h, "pool"));
	out[0] = '\0';
	if (!w->sla->reassign || !pool)
		return;
	for (size_t i = 0; i < pool->nseq; i++) {
		char memo[64], o[19] = "";
		snprintf(memo, sizeof memo, "esc:%s:%d:%zu", e->lead, e->k, i);
		if (route_rr_next(w->redis, w->route, pool, memo, now, o) != SFK_OK || !o[0])
			return;
		if (!sfid_equal(o, e->prev)) {
			snprintf(out, 19, "%s", o);
			return;
		}
	}
}

static void finish(struct sla_watch *w, const struct esc *e, int64_t now)
{
	char hk[SLA_KEY_MAX], att[16], due[24] = "", base[24];
	const char *keys[3] = {RKEY_SLA_DUE, RKEY_SLA_CLAIMED, hk};
	const char *owner = e->next[0] ? e->next : e->prev;
	const char *args[5] = {e->lead, att, due, owner, base};
	redisReply *rep;

	hash_key(e->lead, hk, sizeof hk);
	snprintf(att, sizeof att, "%d", e->k);
	snprintf(base, sizeof base, "%lld", (long long)now);
	if (e->k < w->sla->max_escalations) {
		long sla = strtol(hget(e->h, "sla"), NULL, 10);
		int64_t d = sla_work_add(sla_policy_hours(w->sla, hget(e->h, "region")), now, sla);
		if (d >= 0)
			snprintf(due, sizeof due, "%lld", (long long)d);
	}
	rep = redis_eval(w->redis, &finish_script, REDIS_RETRY, 3, keys, 5, args);
	if (!rep)
		log_warn("sla: finish failed lead=%s error=%s", e->lead, redis_errstr(w->redis));
	else
		freeReplyObject(rep);
}

static json_t *notify_event(struct sla_watch *w, const struct esc *e, int64_t now)
{
	char due[40], at[40];
	json_t *ch = json_array();
	iso(e->due, due, sizeof due);
	iso(now, at, sizeof at);
	for (size_t i = 0; i < w->sla->nchannels; i++)
		json_array_append_new(ch, json_string(w->sla->channels[i]));
	return json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:s?, s:s, s:s, s:s, s:I, s:s, s:s, "
	                 "s:o, s:s, s:s}",
	                 "type", "sla.breach", "event_id", e->event_id, "lead_id", e->lead,
	                 "escalation", e->k, "max_escalations", w->sla->max_escalations, "action",
	                 e->reassigned ? "reassign" : "notify", "owner_id", e->prev, "new_owner_id",
	                 e->reassigned ? e->next : NULL, "segment", hget(e->h, "segment"), "region",
	                 hget(e->h, "region"), "pool", hget(e->h, "pool"), "sla_minutes",
	                 (json_int_t)strtol(hget(e->h, "sla"), NULL, 10), "due_at", due,
	                 "detected_at", at, "channels", ch, "policy_version",
	                 route_policy_version(w->route), "client_id", w->ctx->client_id);
}

/* Queue the notify event and the flywheel record. 0 or -1. */
static int emit(struct sla_watch *w, const struct esc *e, int64_t now)
{
	char err[512], did[FLYWHEEL_ID_MAX], model[WL_MODEL_MAX];
	json_t *ev = notify_event(w, e, now), *facts = NULL, *decision = NULL, *rec = NULL;
	char *val = NULL;
	size_t len;
	int rc = -1;

	if (w->sla->notify) {
		struct kafka_header hd[2] = {{"sfk.event_type", "sla.breach", 10},
		                             {"sfk.event_id", e->event_id, strlen(e->event_id)}};
		val = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
		if (!val || kafka_produce(w->producer, w->notify_topic, e->lead, strlen(e->lead),
		                          val, strlen(val), hd, 2, err, sizeof err) != SFK_OK)
			goto out;
		free(val);
		val = NULL;
	}
	facts = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:O, s:i}", "Id", e->lead, "OwnerId",
	                  e->prev, "segment", hget(e->h, "segment"), "region", hget(e->h, "region"),
	                  "pool", hget(e->h, "pool"), "sla_minutes",
	                  json_object_get(ev, "sla_minutes"), "due_at",
	                  json_object_get(ev, "due_at"), "attempt", e->k);
	decision = json_pack("{s:s, s:b, s:i, s:i, s:s, s:s?, s:O, s:s}", "action",
	                     e->reassigned ? "reassign" : "notify", "breached", 1, "escalation",
	                     e->k, "max_escalations", w->sla->max_escalations, "previous_owner",
	                     e->prev, "new_owner", e->reassigned ? e->next : NULL, "channels",
	                     json_object_get(ev, "channels"), "reason",
	                     "no first response before the SLA deadline");
	snprintf(model, sizeof model, "rules:routing_policy@%s", route_policy_version(w->route));
	if (flywheel_decision_id(SLA_WORKLOAD, e->event_id, did, sizeof did) != 0)
		goto out;
	struct flywheel_in in = {.timestamp = now / 1000,
	                         .client_id = w->ctx->client_id,
	                         .workload_id = SLA_WORKLOAD,
	                         .model = model,
	                         .system_prompt = sla_system_prompt,
	                         .facts = facts,
	                         .decision = decision,
	                         .decision_id = did,
	                         .event_id = e->event_id,
	                         .lead_id = e->lead,
	                         .policy_version = route_policy_version(w->route)};
	if (!(rec = flywheel_build(&in, err, sizeof err)) || !(val = flywheel_dump(rec, &len)) ||
	    kafka_produce(w->producer, w->fly_topic, did, strlen(did), val, len, NULL, 0, err,
	                  sizeof err) != SFK_OK)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		log_warn("sla: event not queued lead=%s error=%s", e->lead, err);
	free(val);
	json_decref(rec);
	json_decref(facts);
	json_decref(decision);
	json_decref(ev);
	return rc;
}

/* Load the claimed Leads' hashes; a Lead without one was cleared meanwhile. */
static enum sfk_err load_hashes(struct sla_watch *w, struct esc *es, size_t n)
{
	struct redis_pipe *p = redis_pipe_new();
	redisReply **rep = xcalloc(n, sizeof *rep);
	char hk[SLA_KEY_MAX];
	enum sfk_err rc;

	for (size_t i = 0; i < n; i++) {
		hash_key(es[i].lead, hk, sizeof hk);
		redis_pipe_add(p, "HGETALL %s", hk);
	}
	rc = redis_pipe_exec(w->redis, p, REDIS_RETRY, rep);
	for (size_t i = 0; rc == SFK_OK && i < n; i++) {
		es[i].h = json_object();
		if (rep[i] && rep[i]->type == REDIS_REPLY_ARRAY)
			for (size_t j = 0; j + 1 < rep[i]->elements; j += 2)
				json_object_set_new(es[i].h, rep[i]->element[j]->str,
				                    json_string(rep[i]->element[j + 1]->str));
	}
	for (size_t i = 0; rc == SFK_OK && i < n; i++)
		if (rep[i])
			freeReplyObject(rep[i]);
	free(rep);
	redis_pipe_free(p);
	return rc;
}

static void drop(struct sla_watch *w, struct esc *e, const char *why)
{
	const char *one[1] = {e->lead};
	metric_add(w->dropped, 1, why);
	if (sla_clear(w->redis, one, 1) != SFK_OK)
		log_warn("sla: clear failed lead=%s", e->lead);
}

/* Act on the claimed deadlines es[0..n-1]. */
static void escalate(struct sla_watch *w, struct esc *es, size_t n, int64_t now)
{
	json_t *rows = NULL, *writes = json_array();
	const char **ids = xcalloc(n, sizeof *ids);
	size_t m = 0, *widx = xcalloc(n, sizeof *widx), nw = 0;
	struct sf_record_result *res = NULL;
	char err[512];

	if (load_hashes(w, es, n) != SFK_OK) {
		log_warn("sla: hashes not read error=%s", redis_errstr(w->redis));
		goto out; /* the claims expire and come back */
	}
	for (size_t i = 0; i < n; i++)
		if (json_object_size(es[i].h) > 0)
			ids[m++] = es[i].lead;
		else
			drop(w, &es[i], "cleared");
	if (m == 0)
		goto out;
	if (query_leads(w,
	                "SELECT Id, OwnerId, First_Response_At__c, SLA_Breached__c, "
	                "SLA_Escalations__c FROM Lead WHERE Id IN ",
	                ids, m, &rows) != SFK_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct esc *e = &es[i];
		json_t *row = json_object_get(rows, e->lead);
		if (json_object_size(e->h) == 0)
			continue;
		if (!row) {
			drop(w, e, "lead_gone");
			continue;
		}
		if (!json_is_null(json_object_get(row, "First_Response_At__c")) &&
		    json_object_get(row, "First_Response_At__c")) {
			drop(w, e, "responded");
			continue;
		}
		e->k = (int)strtol(hget(e->h, "attempts"), NULL, 10) + 1;
		e->due = 0;
		snprintf(e->event_id, sizeof e->event_id, "sla:%s:%d", e->lead, e->k);
		if (sfid_to18(json_string_value(json_object_get(row, "OwnerId")), e->prev) != 0)
			snprintf(e->prev, sizeof e->prev, "%s", hget(e->h, "owner"));
		if (e->k > w->sla->max_escalations) {
			drop(w, e, "max_reached");
			continue;
		}
		enum sfk_err c = idem_claim(w->idem, e->event_id);
		if (c ==
		    SFK_ERR_DUPLICATE) { /* done before a crash: only the Redis step was lost */
			next_owner(w, e, now, e->next);
			finish(w, e, now);
			continue;
		}
		if (c != SFK_OK)
			continue; /* busy or Redis down: the claim lease brings it back */
		e->claimed = 1;
		next_owner(w, e, now, e->next);
		e->reassigned = e->next[0] != '\0';
		double have = json_number_value(json_object_get(row, "SLA_Escalations__c"));
		if (have >= e->k) { /* written before a crash: emit again, do not write twice */
			e->ok = 1;
			continue;
		}
		json_t *rec =
		        json_pack("{s:{s:s}, s:s, s:b, s:i}", "attributes", "type", "Lead", "id",
		                  e->lead, "SLA_Breached__c", 1, "SLA_Escalations__c", e->k);
		if (e->reassigned) {
			char at[40];
			iso(now, at, sizeof at);
			json_object_set_new(rec, "OwnerId", json_string(e->next));
			json_object_set_new(rec, "Owner_Assigned_At__c", json_string(at));
		}
		json_array_append_new(writes, rec);
		widx[nw++] = i;
	}
	if (nw > 0) {
		struct sf_error se;
		enum sfk_err wc;
		res = xcalloc(nw, sizeof *res);
		sf_error_clear(&se);
		wc = sf_rest_collection_update(w->ctx->sf, writes, 0, 0, res, &se);
		for (size_t j = 0; j < nw; j++) {
			struct esc *e = &es[widx[j]];
			if (wc == SFK_OK && res[j].success) {
				e->ok = e->written = 1;
			} else if (wc == SFK_OK &&
			           sfk_err_class(res[j].error.err) == SFK_CLASS_PERMANENT) {
				log_error("sla: escalation refused by Salesforce lead=%s code=%s "
				          "error=%s",
				          e->lead, res[j].error.code, res[j].error.message);
				idem_release(w->idem, e->event_id);
				e->claimed = 0;
				drop(w, e, "refused");
			} else
				log_warn("sla: escalation write failed lead=%s code=%s", e->lead,
				         wc == SFK_OK ? res[j].error.code : se.code);
		}
	}
	for (size_t i = 0; i < n; i++)
		if (es[i].ok && emit(w, &es[i], now) != 0)
			es[i].ok = 0;
	if (kafka_producer_flush(w->producer, SLA_FLUSH_MS, err, sizeof err) != SFK_OK) {
		log_warn("sla: events not delivered error=%s", err);
		for (size_t i = 0; i < n; i++)
			es[i].ok = 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct esc *e = &es[i];
		if (!e->claimed)
			continue;
		if (!e->ok) { /* let the claim lease bring it back */
			idem_release(w->idem, e->event_id);
			continue;
		}
		idem_complete(w->idem, e->event_id);
		finish(w, e, now);
		if (e->k == 1)
			metric_add(w->breaches, 1,
			           hget(e->h, "segment")[0] ? hget(e->h, "segment") : "none",
			           hget(e->h, "region")[0] ? hget(e->h, "region") : "none");
		metric_add(w->escalations, 1);
		if (e->reassigned)
			metric_add(w->reassignments, 1);
		log_info("sla: escalated lead=%s escalation=%d action=%s written=%d", e->lead, e->k,
		         e->reassigned ? "reassign" : "notify", e->written);
	}
out:
	free(res);
	free(widx);
	free(ids);
	json_decref(writes);
	json_decref(rows);
}

static void set_open_gauge(struct sla_watch *w)
{
	redisReply *a = redis_cmd(w->redis, "ZCARD %s", RKEY_SLA_DUE);
	redisReply *b = a ? redis_cmd(w->redis, "ZCARD %s", RKEY_SLA_CLAIMED) : NULL;
	if (a && b)
		metric_set(w->open, (double)(a->integer + b->integer));
	if (a)
		freeReplyObject(a);
	if (b)
		freeReplyObject(b);
}

/* One tick: rebuild if needed, claim due deadlines, escalate. */
static void tick(struct sla_watch *w)
{
	int64_t now = org_now(w);
	char now_s[24], until[24], lim[16];
	const char *keys[2] = {RKEY_SLA_DUE, RKEY_SLA_CLAIMED};
	const char *args[3] = {now_s, until, lim};
	redisReply *rep;

	if (now < 0 || !maybe_rebuild(w, now))
		return;
	snprintf(now_s, sizeof now_s, "%lld", (long long)now);
	snprintf(until, sizeof until, "%lld", (long long)(now + g_lease_ms));
	snprintf(lim, sizeof lim, "%lld", g_batch);
	rep = redis_eval(w->redis, &claim_script, REDIS_NORETRY, 2, keys, 3, args);
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0) {
		struct esc *es = xcalloc(rep->elements, sizeof *es);
		size_t n = 0;
		for (size_t i = 0; i < rep->elements; i++)
			if (rep->element[i]->type == REDIS_REPLY_STRING &&
			    sfid_to18(rep->element[i]->str, es[n].lead) == 0)
				n++;
		escalate(w, es, n, now);
		for (size_t i = 0; i < n; i++)
			json_decref(es[i].h);
		free(es);
	}
	if (rep)
		freeReplyObject(rep);
	set_open_gauge(w);
}

static void *watch_main(void *arg)
{
	struct sla_watch *w = arg;
	while (!atomic_load(&w->stop)) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 0};
		tick(w);
		/* sleep in short steps so fini() never waits long */
		for (long long slept = 0; slept < g_tick_ms && !atomic_load(&w->stop);
		     slept += 50) {
			ts.tv_nsec = 50 * 1000000L;
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

/* ---- workload ops ---------------------------------------------------------- */

/*
 * The workload topic only carries owner changes and policies/workloads.json
 * has no rule for it yet, so `sfk topics create` does not make it. A consumer
 * of a missing topic is never assigned: never ready, and librdkafka 2.0.2
 * asserts when such a cooperative-sticky consumer closes (#4312). So create
 * it when missing (an existing topic is left as it is); a broker that refuses
 * (ACLs, a mock cluster) only costs a warning.
 */
static void ensure_topic(struct wl_ctx *ctx)
{
	char topic[SLA_TOPIC_MAX + 1], err[512];
	struct kafka_admin *a;
	struct kafka_topic_info *info = NULL;
	size_t n = 0;
	enum sfk_err rc;

	if (snprintf(topic, sizeof topic, "%swl.%s", ctx->topic_prefix, SLA_WORKLOAD) >=
	    (int)sizeof topic)
		return;
	if (!(a = kafka_admin_new(config_str(ctx->cfg, "kafka-bootstrap-servers"), NULL, err,
	                          sizeof err))) {
		log_warn("sla: workload topic not checked topic=%s error=%s", topic, err);
		return;
	}
	rc = kafka_admin_describe(a, topic, 5000, &info, &n, err, sizeof err);
	free(info);
	if (rc == SFK_ERR_NOT_FOUND) {
		struct kafka_topic_spec spec = {.name = topic,
		                                .partitions = (int)g_topic_partitions,
		                                .replication = -1,
		                                .config = NULL};
		rc = kafka_admin_create_topics(a, &spec, 1, 5000, err, sizeof err);
		if (rc == SFK_OK)
			log_info("sla: workload topic created topic=%s partitions=%lld", topic,
			         g_topic_partitions);
	}
	if (rc != SFK_OK)
		log_warn("sla: workload topic missing and not created topic=%s error=%s", topic,
		         err);
	kafka_admin_destroy(&a);
}

static void sla_fini(struct wl_ctx *ctx);

static int sla_init(struct wl_ctx *ctx)
{
	struct sla_watch *w = xcalloc(1, sizeof *w);
	const char *policy = config_str(ctx->cfg, "route-policy");
	const char *schema = config_str(ctx->cfg, "route-policy-schema");
	json_t *problems = NULL, *v;
	char err[512];
	size_t i;
	int rc = 78;

	ctx->state = w;
	w->ctx = ctx;
	w->ca_file = config_str(ctx->cfg, "sf-ca-file");
	w->route = route_policy_load(policy, schema, &problems);
	if (w->route)
		w->sla = load_sla_policy(policy, &problems);
	if (!w->route || !w->sla) {
		json_array_foreach(problems, i, v)
		        fprintf(stderr, "routing policy: %s\n", json_string_value(v));
		log_error("sla: routing policy rejected path=%s problems=%zu", policy,
		          json_array_size(problems));
		json_decref(problems);
		goto fail;
	}
	rc = 1;
	if (!(w->redis = redis_connect_url(config_str(ctx->cfg, "redis-url"), NULL, err,
	                                   sizeof err))) {
		log_error("sla: redis error=%s", err);
		goto fail;
	}
	struct idem_opts io = {.lease_ms = (int)g_lease_ms};
	if (!(w->idem = idem_new(w->redis, SLA_WORKLOAD, ctx->epoch, &io, err, sizeof err)) ||
	    !(w->producer = kafka_producer_new(config_str(ctx->cfg, "kafka-bootstrap-servers"),
	                                       NULL, NULL, err, sizeof err))) {
		log_error("sla: start error=%s", err);
		goto fail;
	}
	ensure_topic(ctx);
	snprintf(w->notify_topic, sizeof w->notify_topic, "%s%s", ctx->topic_prefix,
	         SLA_NOTIFY_TOPIC);
	snprintf(w->fly_topic, sizeof w->fly_topic, "%sflywheel", ctx->topic_prefix);
	w->breaches = metrics_counter("sfk_sla_breaches_total",
	                              "Leads whose first SLA deadline passed without a response",
	                              "segment,region");
	w->escalations =
	        metrics_counter("sfk_sla_escalations_total", "SLA escalations acted on", NULL);
	w->reassignments = metrics_counter("sfk_sla_reassignments_total",
	                                   "Leads reassigned by an SLA escalation", NULL);
	w->open = metrics_gauge("sfk_sla_open_deadlines", "SLA deadlines waiting in Redis", NULL);
	w->rebuilt = metrics_counter("sfk_sla_rebuilt_total",
	                             "Deadlines re-armed from Salesforce after a Redis wipe", NULL);
	w->dropped = metrics_counter("sfk_sla_dropped_total",
	                             "Claimed deadlines dropped without an escalation", "reason");
	if (pthread_create(&w->thr, NULL, watch_main, w) != 0) {
		log_error("sla: watcher thread not started");
		goto fail;
	}
	w->started = 1;
	log_info("sla: watching deadlines notify=%d reassign=%d max_escalations=%d regions_with_"
	         "hours=%zu clock=%s",
	         w->sla->notify, w->sla->reassign, w->sla->max_escalations, w->sla->nhours,
	         g_time_url ? "url" : "local");
	return 0;
fail:
	sla_fini(ctx);
	return rc;
}

static void sla_fini(struct wl_ctx *ctx)
{
	struct sla_watch *w = ctx->state;
	char err[256];
	if (!w)
		return;
	atomic_store(&w->stop, 1);
	if (w->started)
		pthread_join(w->thr, NULL);
	if (w->producer)
		kafka_producer_flush(w->producer, SLA_FLUSH_MS, err, sizeof err);
	kafka_producer_destroy(&w->producer);
	idem_free(w->idem);
	redis_free(w->redis);
	sla_policy_free(w->sla);
	route_policy_free(w->route);
	free(w);
	ctx->state = NULL;
}

static void sla_check_config(struct config *c)
{
	const char *policy = config_str(c, "route-policy");
	json_t *problems = NULL, *v;
	size_t i;
	struct route_policy *rp =
	        route_policy_load(policy, config_str(c, "route-policy-schema"), &problems);
	struct sla_policy *p = rp ? load_sla_policy(policy, &problems) : NULL;
	json_array_foreach(problems, i, v)
	        config_problem(c, NULL, "routing policy: %s", json_string_value(v));
	json_decref(problems);
	sla_policy_free(p);
	route_policy_free(rp);
}

/* A person changed a Lead's owner: the next escalation skips that owner. */
static enum sfk_err sla_decide(struct wl_ctx *ctx, const struct wl_event *ev, size_t n,
                               struct wl_decision *out)
{
	for (size_t i = 0; i < n; i++) {
		const char *owner = json_string_value(json_object_get(ev[i].fields, "OwnerId"));
		char lead[19], hk[SLA_KEY_MAX];
		const char *keys[1] = {hk};
		redisReply *rep;
		out[i].action = WL_SKIP;
		if (strcmp(ev[i].entity, "Lead") != 0 || !owner ||
		    sfid_to18(ev[i].record_id, lead) != 0) {
			snprintf(out[i].outcome, sizeof out[i].outcome, "not_applicable");
			continue;
		}
		hash_key(lead, hk, sizeof hk);
		rep = redis_eval(ctx->redis, &owner_script, REDIS_RETRY, 1, keys, 1, &owner);
		if (!rep) {
			out[i].action = WL_RETRY;
			out[i].err = SFK_ERR_REDIS;
			continue;
		}
		snprintf(out[i].outcome, sizeof out[i].outcome, "%s",
		         rep->type == REDIS_REPLY_INTEGER && rep->integer == 1 ? "owner_changed"
		                                                               : "no_deadline");
		freeReplyObject(rep);
	}
	return SFK_OK;
}

const struct workload_ops sla_watch_ops = {
        .id = SLA_WORKLOAD,
        .config = sla_config,
        .nconfig = sizeof sla_config / sizeof sla_config[0],
        .init = sla_init,
        .decide = sla_decide,
        .fini = sla_fini,
        .system_prompt = sla_system_prompt,
        .check_config = sla_check_config,
};
