/*
 * route.c - lead.route: routing policy evaluation, Redis weighted round robin,
 * and the workload ops (see route.h, workers/README.md).
 */
#include "route.h"
#include "sla_watch.h" /* lead.sla_watch: arm the SLA deadline */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "llm.h"
#include "flywheel.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "rkeys.h"
#include "sfid.h"
#include "soql_build.h"
#include "workload.h"
#include "xmem.h"

#define ROUTE_MEMO_TTL_S (8 * 24 * 3600) /* >= topic retention: same lead, same owner */
#define ROUTE_CAP_TTL_S  (2 * 24 * 3600) /* a day's cap counter, plus a margin */
#define ROUTE_KEY_MAX    512

struct segment {
	char name[ROUTE_NAME_MAX];
	long long min, max; /* max < 0: unbounded */
};

struct country {
	char *name; /* as written in the policy */
	const char *region;
};

struct route_policy {
	char version[ROUTE_NAME_MAX];
	struct segment *segments;
	size_t nsegments;
	char (*regions)[ROUTE_NAME_MAX];
	size_t nregions;
	struct country *countries;
	size_t ncountries;
	struct route_pool *pools;
	size_t npools;
	char **priority;
	size_t npriority;
	char fallback_queue[19];
	json_t *region_queues; /* object region -> queue id (owned) */
	char **unassigned;
	size_t nunassigned;
	int leave_user_owned;
	json_t *sla; /* object (owned) */
};

/* ---- loading ------------------------------------------------------------- */

static void add_problem(json_t **problems, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void add_problem(json_t **problems, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (!*problems)
		*problems = json_array();
	json_array_append_new(*problems, json_string(buf));
}

void route_policy_free(struct route_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->ncountries; i++)
		free(p->countries[i].name);
	for (size_t i = 0; i < p->npools; i++) {
		free(p->pools[i].members);
		free(p->pools[i].seq);
	}
	for (size_t i = 0; i < p->npriority; i++)
		free(p->priority[i]);
	for (size_t i = 0; i < p->nunassigned; i++)
		free(p->unassigned[i]);
	free(p->segments);
	free(p->regions);
	free(p->countries);
	free(p->pools);
	free(p->priority);
	free(p->unassigned);
	json_decref(p->region_queues);
	json_decref(p->sla);
	free(p);
}

/* Smooth weighted round robin (nginx): interleaves, so after any prefix each
 * member's count is within 1 of its weighted share. */
static void build_seq(struct route_pool *pool)
{
	long total = 0;
	long *cur = xcalloc(pool->nmembers, sizeof *cur);

	for (size_t i = 0; i < pool->nmembers; i++)
		total += pool->members[i].weight;
	pool->nseq = (size_t)total;
	pool->seq = xcalloc(pool->nseq, sizeof *pool->seq);
	for (size_t s = 0; s < pool->nseq; s++) {
		size_t best = 0;
		for (size_t i = 0; i < pool->nmembers; i++) {
			cur[i] += pool->members[i].weight;
			if (cur[i] > cur[best])
				best = i;
		}
		cur[best] -= total;
		pool->seq[s] = (int)best;
	}
	free(cur);
}

static int region_index(const struct route_policy *p, const char *name)
{
	for (size_t i = 0; i < p->nregions; i++)
		if (strcmp(p->regions[i], name) == 0)
			return (int)i;
	return -1;
}

static int segment_index(const struct route_policy *p, const char *name)
{
	for (size_t i = 0; i < p->nsegments; i++)
		if (strcmp(p->segments[i].name, name) == 0)
			return (int)i;
	return -1;
}

struct route_policy *route_policy_from_json(json_t *doc, const struct jschema *schema,
                                            json_t **problems)
{
	struct route_policy *p;
	json_t *errs = NULL, *v, *arr;
	const char *key;
	size_t i, j;

	*problems = NULL;
	if (jschema_validate(schema, doc, &errs) > 0) {
		*problems = errs;
		return NULL;
	}
	json_decref(errs);
	p = xcalloc(1, sizeof *p);
	snprintf(p->version, sizeof p->version, "%s",
	         json_string_value(json_object_get(doc, "version")));

	arr = json_object_get(doc, "segments");
	p->nsegments = json_array_size(arr);
	p->segments = xcalloc(p->nsegments, sizeof *p->segments);
	json_array_foreach(arr, i, v)
	{
		struct segment *s = &p->segments[i];
		json_t *mn = json_object_get(v, "min_employees"),
		       *mx = json_object_get(v, "max_employees");
		snprintf(s->name, sizeof s->name, "%s",
		         json_string_value(json_object_get(v, "name")));
		s->min = mn ? json_integer_value(mn) : 0;
		s->max = mx ? json_integer_value(mx) : -1;
		if (s->max >= 0 && s->max < s->min)
			add_problem(problems,
			            "$.segments[%zu].max_employees: %lld is less than "
			            "min_employees %lld",
			            i, s->max, s->min);
		if (i > 0) {
			const struct segment *prev = &p->segments[i - 1];
			if (prev->max < 0 || s->min <= prev->max)
				add_problem(problems,
				            "$.segments[%zu].min_employees: overlaps segment %s "
				            "(ranges must ascend and be disjoint)",
				            i, prev->name);
		}
		if (segment_index(p, s->name) != (int)i)
			add_problem(problems, "$.segments[%zu].name: duplicate segment %s", i,
			            s->name);
	}

	arr = json_object_get(doc, "regions");
	p->nregions = json_object_size(arr);
	p->regions = xcalloc(p->nregions, sizeof *p->regions);
	i = 0;
	json_object_foreach(arr, key, v)
	{
		snprintf(p->regions[i], sizeof p->regions[i], "%s", key);
		p->ncountries += json_array_size(v);
		i++;
	}
	p->countries = xcalloc(p->ncountries + 1, sizeof *p->countries);
	p->ncountries = 0;
	i = 0;
	json_object_foreach(arr, key, v)
	{
		json_t *c;
		json_array_foreach(v, j, c)
		{
			const char *name = json_string_value(c);
			for (size_t k = 0; k < p->ncountries; k++)
				if (strcasecmp(p->countries[k].name, name) == 0)
					add_problem(
					        problems,
					        "$.regions.%s[%zu]: \"%s\" is already in region %s",
					        key, j, name, p->countries[k].region);
			p->countries[p->ncountries].name = xstrdup(name);
			p->countries[p->ncountries].region = p->regions[i];
			p->ncountries++;
		}
		i++;
	}

	arr = json_object_get(doc, "pools");
	p->npools = json_array_size(arr);
	p->pools = xcalloc(p->npools + 1, sizeof *p->pools);
	json_array_foreach(arr, i, v)
	{
		struct route_pool *pool = &p->pools[i];
		json_t *members = json_object_get(v, "members"), *m;
		snprintf(pool->id, sizeof pool->id, "%s",
		         json_string_value(json_object_get(v, "id")));
		snprintf(pool->segment, sizeof pool->segment, "%s",
		         json_string_value(json_object_get(v, "segment")));
		snprintf(pool->region, sizeof pool->region, "%s",
		         json_string_value(json_object_get(v, "region")));
		if (segment_index(p, pool->segment) < 0)
			add_problem(problems,
			            "$.pools[%zu].segment: \"%s\" is not a defined segment", i,
			            pool->segment);
		if (region_index(p, pool->region) < 0)
			add_problem(problems, "$.pools[%zu].region: \"%s\" is not a defined region",
			            i, pool->region);
		for (j = 0; j < i; j++) {
			if (strcmp(p->pools[j].id, pool->id) == 0)
				add_problem(problems, "$.pools[%zu].id: duplicate pool id %s", i,
				            pool->id);
			if (strcmp(p->pools[j].segment, pool->segment) == 0 &&
			    strcmp(p->pools[j].region, pool->region) == 0)
				add_problem(
				        problems,
				        "$.pools[%zu]: second pool for %s/%s (first: $.pools[%zu])",
				        i, pool->segment, pool->region, j);
		}
		pool->nmembers = json_array_size(members);
		pool->members = xcalloc(pool->nmembers, sizeof *pool->members);
		json_array_foreach(members, j, m)
		{
			struct route_member *mb = &pool->members[j];
			json_t *w = json_object_get(m, "weight"),
			       *cap = json_object_get(m, "daily_cap");
			const char *id = json_string_value(json_object_get(m, "owner_id"));
			if (!sfid_valid(id) || sfid_to18(id, mb->owner_id) != 0)
				add_problem(problems,
				            "$.pools[%zu].members[%zu].owner_id: \"%s\" is not a "
				            "valid id (checksum)",
				            i, j, id);
			mb->weight = w ? (int)json_integer_value(w) : 1;
			mb->daily_cap = cap ? json_integer_value(cap) : 0;
		}
		build_seq(pool);
	}

	arr = json_object_get(doc, "priority_industries");
	p->npriority = json_array_size(arr);
	p->priority = xcalloc(p->npriority + 1, sizeof *p->priority);
	json_array_foreach(arr, i, v) p->priority[i] = xstrdup(json_string_value(v));

	{
		const char *fq = json_string_value(json_object_get(doc, "fallback_queue"));
		if (!sfid_valid(fq) || sfid_to18(fq, p->fallback_queue) != 0)
			add_problem(problems,
			            "$.fallback_queue: \"%s\" is not a valid id (checksum)", fq);
	}
	p->region_queues = json_object_get(doc, "region_queues");
	p->region_queues = p->region_queues ? json_deep_copy(p->region_queues) : json_object();
	json_object_foreach(p->region_queues, key, v)
	{
		if (region_index(p, key) < 0)
			add_problem(problems, "$.region_queues.%s: not a defined region", key);
		if (!sfid_valid(json_string_value(v)))
			add_problem(problems, "$.region_queues.%s: not a valid id (checksum)", key);
	}
	arr = json_object_get(doc, "unassigned_owners");
	p->nunassigned = json_array_size(arr);
	p->unassigned = xcalloc(p->nunassigned + 1, sizeof *p->unassigned);
	json_array_foreach(arr, i, v) p->unassigned[i] = xstrdup(json_string_value(v));
	v = json_object_get(doc, "leave_user_owned");
	p->leave_user_owned = v ? json_is_true(v) : 1;
	p->sla = json_object_get(doc, "sla_minutes");
	p->sla = p->sla ? json_deep_copy(p->sla) : json_object();
	json_object_foreach(p->sla, key, v) if (strcmp(key, "default") != 0 &&
	                                        strcmp(key, "priority") != 0 &&
	                                        segment_index(p, key) < 0)
	        add_problem(problems,
	                    "$.sla_minutes.%s: not a segment name, \"default\" or \"priority\"",
	                    key);

	if (*problems) {
		route_policy_free(p);
		return NULL;
	}
	return p;
}

struct route_policy *route_policy_load(const char *policy_path, const char *schema_path,
                                       json_t **problems)
{
	char err[512];
	json_error_t jerr;
	struct jschema *s;
	json_t *doc;
	struct route_policy *p = NULL;

	*problems = NULL;
	s = jschema_load(schema_path, err, sizeof err);
	if (!s) {
		add_problem(problems, "%s: %s", schema_path, err);
		return NULL;
	}
	doc = json_load_file(policy_path, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc)
		add_problem(problems, "%s:%d:%d: %s", policy_path, jerr.line, jerr.column,
		            jerr.text);
	else
		p = route_policy_from_json(doc, s, problems);
	json_decref(doc);
	jschema_free(s);
	return p;
}

const char *route_policy_version(const struct route_policy *p)
{
	return p->version;
}

size_t route_npools(const struct route_policy *p)
{
	return p->npools;
}

const struct route_pool *route_pool_at(const struct route_policy *p, size_t i)
{
	return i < p->npools ? &p->pools[i] : NULL;
}

/* ---- pure evaluation ----------------------------------------------------- */

const char *route_segment(const struct route_policy *p, long long employees)
{
	for (size_t i = 0; i < p->nsegments; i++)
		if (employees >= p->segments[i].min &&
		    (p->segments[i].max < 0 || employees <= p->segments[i].max))
			return p->segments[i].name;
	return NULL;
}

const char *route_region(const struct route_policy *p, const char *country)
{
	char buf[128];
	size_t a = 0, b;

	if (!country)
		return NULL;
	/* trim */
	while (country[a] && isspace((unsigned char)country[a]))
		a++;
	b = strlen(country);
	while (b > a && isspace((unsigned char)country[b - 1]))
		b--;
	if (b - a == 0 || b - a >= sizeof buf)
		return NULL;
	memcpy(buf, country + a, b - a);
	buf[b - a] = '\0';
	for (size_t i = 0; i < p->ncountries; i++)
		if (strcasecmp(p->countries[i].name, buf) == 0)
			return p->countries[i].region;
	return NULL;
}

const char *route_fallback_queue(const struct route_policy *p, const char *region)
{
	const char *q =
	        region ? json_string_value(json_object_get(p->region_queues, region)) : NULL;
	return q ? q : p->fallback_queue;
}

static long sla_for(const struct route_policy *p, const char *segment, int priority)
{
	json_t *v = NULL;
	if (priority)
		v = json_object_get(p->sla, "priority");
	if (!v && segment)
		v = json_object_get(p->sla, segment);
	if (!v)
		v = json_object_get(p->sla, "default");
	return v ? (long)json_integer_value(v) : 60;
}

void route_evaluate(const struct route_policy *p, const struct route_input *in,
                    struct route_eval *out)
{
	memset(out, 0, sizeof *out);
	for (size_t i = 0; in->industry && i < p->npriority; i++)
		if (strcasecmp(p->priority[i], in->industry) == 0)
			out->priority = 1;
	out->segment =
	        in->has_employees && in->employees >= 0 ? route_segment(p, in->employees) : NULL;
	out->region = route_region(p, in->country);
	out->sla_minutes = sla_for(p, out->segment, out->priority);

	if (p->leave_user_owned && in->owner_id && strncmp(in->owner_id, "005", 3) == 0) {
		int unassigned = 0;
		for (size_t i = 0; i < p->nunassigned; i++)
			unassigned |= sfid_equal(p->unassigned[i], in->owner_id);
		if (!unassigned) {
			out->skip = 1;
			snprintf(out->reason_path, sizeof out->reason_path, "skip.user_owned");
			snprintf(out->reason, sizeof out->reason,
			         "Lead is already owned by a user; the policy leaves it alone.");
			out->confidence = 1.0;
			return;
		}
	}
	if (!out->segment) {
		out->queue = p->fallback_queue;
		snprintf(out->reason_path, sizeof out->reason_path, "fallback.missing_employees");
		snprintf(out->reason, sizeof out->reason,
		         "NumberOfEmployees is missing: routed to the fallback queue.");
		out->confidence = 0.5;
		return;
	}
	if (!out->region) {
		out->queue = p->fallback_queue;
		snprintf(out->reason_path, sizeof out->reason_path, "fallback.%s",
		         in->country && *in->country ? "unknown_country" : "missing_country");
		snprintf(out->reason, sizeof out->reason,
		         "Country %s: routed to the fallback queue.",
		         in->country && *in->country ? "is not in any region" : "is missing");
		out->confidence = 0.5;
		return;
	}
	for (size_t i = 0; i < p->npools; i++)
		if (strcmp(p->pools[i].segment, out->segment) == 0 &&
		    strcmp(p->pools[i].region, out->region) == 0)
			out->pool = &p->pools[i];
	if (!out->pool) {
		out->queue = route_fallback_queue(p, out->region);
		snprintf(out->reason_path, sizeof out->reason_path, "fallback.no_pool.%s.%s",
		         out->segment, out->region);
		snprintf(out->reason, sizeof out->reason,
		         "No owner pool for %s in %s: routed to the region's queue.", out->segment,
		         out->region);
		out->confidence = 0.7;
		return;
	}
	snprintf(out->reason_path, sizeof out->reason_path, "pool.%s", out->pool->id);
	snprintf(out->reason, sizeof out->reason,
	         "%s lead (%lld employees) in %s%s: weighted round robin in pool %s.", out->segment,
	         in->employees, out->region, out->priority ? ", priority industry" : "",
	         out->pool->id);
	out->confidence = 0.9;
}

int route_rr_pick(const struct route_pool *pool, uint64_t *pointer, long long *counts)
{
	for (size_t i = 0; i < pool->nseq; i++) {
		int m = pool->seq[(*pointer)++ % pool->nseq];
		long long cap = pool->members[m].daily_cap;
		if (cap > 0 && counts[m] >= cap)
			continue;
		counts[m]++;
		return m;
	}
	return -1;
}

/* ---- Redis round robin --------------------------------------------------- */

/* KEYS[1] pointer, KEYS[2] per-lead memo; ARGV[1] cap key prefix, ARGV[2]
 * memo TTL, ARGV[3] cap TTL, ARGV[4] n, ARGV[5..4+n] owners in sequence order,
 * ARGV[5+n..4+2n] their daily caps (0 = none). Mirrors route_rr_pick. The cap
 * keys are derived inside (single Redis, not Cluster). */
static struct redis_script rr_script =
        REDIS_SCRIPT("local prev = redis.call('GET', KEYS[2])\n"
                     "if prev then return prev end\n"
                     "local n = tonumber(ARGV[4])\n"
                     "for i = 1, n do\n"
                     "  local p = redis.call('INCR', KEYS[1]) - 1\n"
                     "  local k = (p % n) + 1\n"
                     "  local owner = ARGV[4 + k]\n"
                     "  local cap = tonumber(ARGV[4 + n + k])\n"
                     "  local take = true\n"
                     "  if cap > 0 then\n"
                     "    local ck = ARGV[1] .. owner\n"
                     "    local c = tonumber(redis.call('GET', ck) or '0')\n"
                     "    if c >= cap then take = false else\n"
                     "      redis.call('INCR', ck)\n"
                     "      redis.call('EXPIRE', ck, ARGV[3])\n"
                     "    end\n"
                     "  end\n"
                     "  if take then\n"
                     "    redis.call('SET', KEYS[2], owner, 'EX', ARGV[2])\n"
                     "    return owner\n"
                     "  end\n"
                     "end\n"
                     "return ''\n");

/* Owner for the lead from the pool: "" when exhausted. SFK_ERR_REDIS on failure. */
static enum sfk_err rr_redis(struct redis *r, const struct route_policy *p,
                             const struct route_pool *pool, const char *lead18, int64_t now_ms,
                             char owner[19])
{
	char k1[ROUTE_KEY_MAX], k2[ROUTE_KEY_MAX], capk[ROUTE_KEY_MAX], day[16], n[16];
	char memo_ttl[24], cap_ttl[24];
	const char *keys[2] = {k1, k2};
	size_t nargs = 4 + 2 * pool->nseq;
	const char **args = xcalloc(nargs, sizeof *args);
	char(*caps)[24] = xcalloc(pool->nseq, sizeof *caps);
	time_t t = (time_t)(now_ms / 1000);
	struct tm tm;
	redisReply *rep;
	enum sfk_err rc = SFK_OK;

	gmtime_r(&t, &tm);
	strftime(day, sizeof day, "%Y-%m-%d", &tm);
	snprintf(k1, sizeof k1, RKEY_RR "%s:%s", p->version, pool->id);
	snprintf(k2, sizeof k2, RKEY_RR "%s:%s:lead:%s", p->version, pool->id, lead18);
	snprintf(capk, sizeof capk, RKEY_RR "%s:%s:cap:%s:", p->version, pool->id, day);
	snprintf(memo_ttl, sizeof memo_ttl, "%d", ROUTE_MEMO_TTL_S);
	snprintf(cap_ttl, sizeof cap_ttl, "%d", ROUTE_CAP_TTL_S);
	snprintf(n, sizeof n, "%zu", pool->nseq);
	args[0] = capk;
	args[1] = memo_ttl;
	args[2] = cap_ttl;
	args[3] = n;
	for (size_t i = 0; i < pool->nseq; i++) {
		const struct route_member *m = &pool->members[pool->seq[i]];
		args[4 + i] = m->owner_id;
		snprintf(caps[i], sizeof caps[i], "%lld", m->daily_cap);
		args[4 + pool->nseq + i] = caps[i];
	}
	rep = redis_eval(r, &rr_script, REDIS_NORETRY, 2, keys, (int)nargs, args);
	if (!rep || rep->type != REDIS_REPLY_STRING || rep->len > 18) {
		log_warn("round robin failed pool=%s error=%s", pool->id,
		         rep ? "bad reply" : redis_errstr(r));
		rc = SFK_ERR_REDIS;
	} else {
		memcpy(owner, rep->str, rep->len);
		owner[rep->len] = '\0';
	}
	if (rep)
		freeReplyObject(rep);
	free(args);
	free(caps);
	return rc;
}

/* lead.sla_watch (sla_watch.h): the round robin for an escalation, memoized per attempt. */
enum sfk_err route_rr_next(struct redis *r, const struct route_policy *p,
                           const struct route_pool *pool, const char *memo_id, int64_t now_ms,
                           char owner[19])
{
	return rr_redis(r, p, pool, memo_id, now_ms, owner);
}

/* ---- workload ------------------------------------------------------------ */

static const char *g_policy_path, *g_schema_path;

#define ROUTE_LLM_BATCH_BUDGET_MS 10000 /* then the rules decide the rest of the batch */

/* Dry run (route_dry_run): per pool, the pointer and today's cap counts,
 * seeded read-only from Redis on first use; owners remembered per lead. */
struct dry_pool {
	int seeded;
	uint64_t pointer;
	long long *counts; /* per member */
	char day[16];
};

struct route_state {
	struct route_policy *policy;
	struct llm *llm;      /* NULL: rules only */
	struct dry_pool *dry; /* NULL: the Redis round robin; else one per pool */
	json_t *dry_memo;     /* lead id -> owner (dry run) */
};

static const struct config_entry route_config[] = {
        {"route-policy", "SFK_ROUTING_POLICY", CONFIG_STRING, "policies/routing_policy.json", 0,
         "lead.route: routing policy file", .dest = &g_policy_path},
        {"route-policy-schema", "SFK_ROUTING_POLICY_SCHEMA", CONFIG_STRING,
         "schemas/routing_policy.schema.json", 0, "lead.route: JSON Schema of the routing policy",
         .dest = &g_schema_path},
};

static const char route_system_prompt[] =
        "You route new B2B sales leads. Given the lead's facts as JSON, answer with a JSON "
        "object {segment, region, owner_id, reason_path, reason, confidence} following the "
        "routing policy: segment by NumberOfEmployees, region by Country, weighted round robin "
        "within the segment+region owner pool, fallback queue when data is missing.";

static void route_after_write(struct wl_ctx *ctx, const struct wl_event *ev, size_t n,
                              struct wl_decision *out, const struct wl_write_result *res);

/* A string reply as a number (0 when absent or not a number). */
static long long get_count(struct redis *r, const char *key)
{
	redisReply *rep = r ? redis_cmd(r, "GET %s", key) : NULL;
	long long v = 0;
	if (rep && rep->type == REDIS_REPLY_STRING) {
		char *end;
		v = strtoll(rep->str, &end, 10);
		if (*end)
			v = 0;
	}
	if (rep)
		freeReplyObject(rep);
	return v;
}

/*
 * The dry-run twin of rr_redis: the same pick (route_rr_pick mirrors the
 * script) over in-memory state seeded by GETs only, so a shadow run or
 * `sfk decide` answers what the workers would, and writes nothing. A lead the
 * workers already routed keeps its remembered owner. Redis NULL: from zero.
 */
static enum sfk_err rr_dry(struct redis *r, struct route_state *st, const struct route_pool *pool,
                           const char *lead18, int64_t now_ms, char owner[19])
{
	const struct route_policy *p = st->policy;
	struct dry_pool *d = &st->dry[pool - p->pools];
	char key[ROUTE_KEY_MAX], day[16];
	time_t t = (time_t)(now_ms / 1000);
	struct tm tm;
	const char *memo = json_string_value(json_object_get(st->dry_memo, lead18));

	owner[0] = '\0';
	if (memo) {
		snprintf(owner, 19, "%s", memo);
		return SFK_OK;
	}
	snprintf(key, sizeof key, RKEY_RR "%s:%s:lead:%s", p->version, pool->id, lead18);
	redisReply *rep = r ? redis_cmd(r, "GET %s", key) : NULL;
	if (r && !rep)
		return SFK_ERR_REDIS;
	if (rep && rep->type == REDIS_REPLY_STRING && rep->len <= 18) {
		memcpy(owner, rep->str, rep->len);
		owner[rep->len] = '\0';
	}
	if (rep)
		freeReplyObject(rep);
	if (owner[0]) {
		json_object_set_new(st->dry_memo, lead18, json_string(owner));
		return SFK_OK;
	}
	gmtime_r(&t, &tm);
	strftime(day, sizeof day, "%Y-%m-%d", &tm);
	if (!d->seeded) {
		snprintf(key, sizeof key, RKEY_RR "%s:%s", p->version, pool->id);
		d->pointer = (uint64_t)get_count(r, key);
		d->counts = xcalloc(pool->nmembers ? pool->nmembers : 1, sizeof *d->counts);
		d->seeded = 1;
	}
	if (strcmp(d->day, day) != 0) { /* a new UTC day: its cap counters */
		snprintf(d->day, sizeof d->day, "%s", day);
		for (size_t i = 0; i < pool->nmembers; i++) {
			snprintf(key, sizeof key, RKEY_RR "%s:%s:cap:%s:%s", p->version, pool->id,
			         day, pool->members[i].owner_id);
			d->counts[i] = pool->members[i].daily_cap > 0 ? get_count(r, key) : 0;
		}
	}
	int m = route_rr_pick(pool, &d->pointer, d->counts);
	if (m >= 0) {
		snprintf(owner, 19, "%s", pool->members[m].owner_id);
		json_object_set_new(st->dry_memo, lead18, json_string(owner));
	}
	return SFK_OK;
}

int route_dry_run(struct wl_ctx *ctx)
{
	struct route_state *st = ctx ? ctx->state : NULL;
	if (!st)
		return -1;
	if (!st->dry) {
		st->dry = xcalloc(st->policy->npools + 1, sizeof *st->dry);
		st->dry_memo = json_object();
	}
	return 0;
}

static int route_init(struct wl_ctx *ctx)
{
	json_t *problems = NULL, *v;
	size_t i;
	struct route_policy *p = route_policy_load(g_policy_path, g_schema_path, &problems);

	if (!p) {
		fprintf(stderr, "routing policy %s: %zu problem(s)\n", g_policy_path,
		        json_array_size(problems));
		json_array_foreach(problems, i, v)
		        fprintf(stderr, "routing policy: %s\n", json_string_value(v));
		log_error("routing policy rejected path=%s problems=%zu", g_policy_path,
		          json_array_size(problems));
		json_decref(problems);
		return 78;
	}
	log_info("routing policy loaded path=%s version=%s pools=%zu", g_policy_path, p->version,
	         p->npools);
	route_after_write(ctx, NULL, 0, NULL, NULL); /* registers the metrics */
	struct route_state *st = xcalloc(1, sizeof *st);
	st->policy = p;
	st->llm = ctx->cfg ? llm_from_config(ctx->cfg) : NULL;
	if (st->llm)
		log_info("routing asks an LLM model=%s", llm_model(st->llm));
	ctx->state = st;
	return 0;
}

static void route_check_config(struct config *c)
{
	json_t *problems = NULL, *v;
	size_t i;
	struct route_policy *p = route_policy_load(g_policy_path, g_schema_path, &problems);

	json_array_foreach(problems, i, v)
	        config_problem(c, NULL, "routing policy: %s", json_string_value(v));
	json_decref(problems);
	route_policy_free(p);
}

static void route_fini(struct wl_ctx *ctx)
{
	struct route_state *st = ctx->state;
	if (st) {
		for (size_t i = 0; st->dry && i < st->policy->npools; i++)
			free(st->dry[i].counts);
		free(st->dry);
		json_decref(st->dry_memo);
		route_policy_free(st->policy);
		llm_free(&st->llm);
		free(st);
	}
	ctx->state = NULL;
}

/*
 * Ask the LLM to validate/refine the rule owner. It sees the lead's facts, the
 * rule decision and the allowed owners; an answer {"owner_id": ...} naming one
 * of them wins. Returns 1 when the LLM decided (owner, model_out set), 0 when
 * the rules stand (errstr says why).
 */
static int ask_llm(struct route_state *st, const struct route_eval *r, json_t *facts,
                   char owner[19], char *model_out, size_t model_len, char *errstr, size_t errlen)
{
	json_t *cand = json_array(), *user = NULL, *ans = NULL;
	char *utext = NULL, *content = NULL;
	const char *pick;
	int ok = 0;

	if (r->pool)
		for (size_t i = 0; i < r->pool->nmembers; i++)
			json_array_append_new(cand, json_string(r->pool->members[i].owner_id));
	json_array_append_new(cand, json_string(route_fallback_queue(st->policy, r->region)));
	user = json_pack("{s:O, s:{s:s?, s:s?, s:s, s:s}, s:o}", "lead", facts, "rule_decision",
	                 "segment", r->segment, "region", r->region, "owner_id", owner,
	                 "reason_path", r->reason_path, "candidates", cand);
	utext = user ? json_dumps(user, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (!utext) {
		snprintf(errstr, errlen, "cannot encode the prompt");
		goto out;
	}
	if (llm_chat(st->llm, route_system_prompt, utext, &content, model_out, model_len, errstr,
	             errlen) != SFK_OK)
		goto out;
	ans = json_loads(content, 0, NULL);
	pick = json_string_value(json_object_get(ans, "owner_id"));
	if (!pick) {
		snprintf(errstr, errlen, "llm: answer without owner_id");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(json_object_get(user, "candidates")); i++)
		if (sfid_equal(pick, json_string_value(json_array_get(
		                             json_object_get(user, "candidates"), i))))
			ok = 1;
	if (!ok || sfid_to18(pick, owner) != 0) {
		ok = 0;
		snprintf(errstr, errlen, "llm: owner_id is not one of the candidates");
	}
out:
	json_decref(user);
	json_decref(ans);
	free(utext);
	free(content);
	return ok;
}

/* "2026-11-20T09:17:00.000Z" (or +0000) -> epoch ms; -1 if it does not parse. */
static int64_t parse_sf_datetime(const char *s)
{
	int y, mo, d, h, mi, sec, ms = 0;
	struct tm tm;
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6)
		return -1;
	if (s[19] == '.')
		sscanf(s + 20, "%3d", &ms);
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

static void iso_ms(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char base[32];
	gmtime_r(&t, &tm);
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", base, (int)(ms % 1000));
}

static json_t *lead_facts(const struct wl_event *ev, const char *lead18)
{
	static const char *const keep[] = {
	        "Company",  "Country",    "State",       "NumberOfEmployees",
	        "Industry", "LeadSource", "Title",       "AnnualRevenue",
	        "Rating",   "Status",     "CreatedDate", "OwnerId",
	        "Address"};
	json_t *f = json_object();
	json_object_set_new(f, "Id", json_string(lead18));
	for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
		json_t *v = json_object_get(ev->fields, keep[i]);
		if (v && !json_is_null(v))
			json_object_set(f, keep[i], v);
	}
	return f;
}

/* The batch's leads as they are now: {id18: {OwnerId, Routing_Policy_Version__c}} in one
 * query per IN-list (usually one per batch). *out new reference. */
static enum sfk_err current_state(struct wl_ctx *ctx, const struct wl_event *ev, size_t n,
                                  json_t **out)
{
	const char **ids = xcalloc(n + 1, sizeof *ids);
	struct soql_list q = {0};
	char err[256];
	size_t m = 0;
	enum sfk_err rc = SFK_OK;

	*out = json_object();
	for (size_t i = 0; i < n; i++)
		if (strcmp(ev[i].entity, "Lead") == 0 && sfid_valid(ev[i].record_id))
			ids[m++] = ev[i].record_id;
	if (m == 0 || !ctx->sf)
		goto done;
	rc = soql_build_in_ids(
	        "SELECT Id, OwnerId, Routing_Policy_Version__c FROM Lead WHERE Id IN ", "", ids, m,
	        sf_rest_query_uri_overhead(ctx->sf), 0, &q, err, sizeof err);
	for (size_t k = 0; rc == SFK_OK && k < q.n; k++) {
		struct sf_query *it = NULL;
		struct sf_error se;
		json_t *rec;
		char id18[19];
		sf_error_clear(&se);
		rc = sf_query_open(ctx->sf, q.q[k], &it, &se);
		while (rc == SFK_OK && (rc = sf_query_next(it, &rec, &se)) == SFK_OK && rec)
			if (sfid_to18(json_string_value(json_object_get(rec, "Id")), id18) == 0)
				json_object_set(*out, id18, rec);
		sf_query_free(&it);
		if (rc != SFK_OK)
			log_warn("lead state query failed code=%s error=%s", se.code, se.message);
	}
	soql_list_free(&q);
done:
	free(ids);
	return rc;
}

static enum sfk_err route_decide(struct wl_ctx *ctx, const struct wl_event *ev, size_t n,
                                 struct wl_decision *out)
{
	struct route_state *st = ctx->state;
	const struct route_policy *p = st->policy;
	int64_t now = ctx->now_ms();
	int64_t llm_deadline = now + ROUTE_LLM_BATCH_BUDGET_MS;
	json_t *cur = NULL;
	json_t *batch_leads = json_object(); /* Leads decided in this batch */
	enum sfk_err qrc = current_state(ctx, ev, n, &cur);

	if (qrc != SFK_OK) {
		json_decref(batch_leads);
		json_decref(cur);
		return sfk_err_class(qrc) == SFK_CLASS_PERMANENT ? SFK_ERR_HTTP_5XX : qrc;
	}
	for (size_t i = 0; i < n; i++) {
		const struct wl_event *e = &ev[i];
		struct wl_decision *d = &out[i];
		struct route_input in = {0};
		struct route_eval r;
		char lead18[19], owner[19] = "", when[40], reason[2 * ROUTE_REASON_MAX];
		json_t *emp;
		int64_t created;
		int already = 0;
		const char *cur_owner = NULL, *decided_by = "rules";
		char llm_err[160] = "";

		/* A SNAPSHOT (the bridge read the entity back after GAP_OVERFLOW or
		 * an expired replay id) may stand for a creation the change stream
		 * lost: it is routed when the Lead never was (no Owner_Assigned_At__c). */
		int snapshot = strcmp(e->change_type, "SNAPSHOT") == 0;
		if (strcmp(e->entity, "Lead") != 0 ||
		    (strcmp(e->change_type, "CREATE") != 0 &&
		     strcmp(e->change_type, "GAP_CREATE") != 0 && !snapshot)) {
			d->action = WL_SKIP;
			snprintf(d->outcome, sizeof d->outcome, "not_applicable");
			continue;
		}
		json_t *assigned = json_object_get(e->fields, "Owner_Assigned_At__c");
		if (snapshot && assigned && !json_is_null(assigned)) {
			d->action = WL_SKIP;
			snprintf(d->outcome, sizeof d->outcome, "already_routed");
			continue;
		}
		if (sfid_to18(e->record_id, lead18) != 0) {
			d->action = WL_DLQ;
			d->err = SFK_ERR_INVALID;
			snprintf(d->errcode, sizeof d->errcode, "invalid_id");
			snprintf(d->errmsg, sizeof d->errmsg, "record_id is not a Lead id");
			continue;
		}
		/* One decision per Lead per batch: a resync SNAPSHOT and the Lead's
		 * CREATE (in either order) in one batch would both see it unrouted. */
		if (json_object_get(batch_leads, lead18)) {
			d->action = WL_SKIP;
			snprintf(d->outcome, sizeof d->outcome, "already_routed");
			continue;
		}
		json_object_set_new(batch_leads, lead18, json_true());
		in.lead_id = lead18;
		in.owner_id = json_string_value(json_object_get(e->fields, "OwnerId"));
		if (ctx->sf) {
			json_t *now_rec = json_object_get(cur, lead18);
			const char *ver;
			if (!now_rec) { /* deleted (or converted away) since the event */
				d->action = WL_SKIP;
				snprintf(d->outcome, sizeof d->outcome, "not_found");
				continue;
			}
			ver = json_string_value(
			        json_object_get(now_rec, "Routing_Policy_Version__c"));
			/* A SNAPSHOT read while the Lead's CREATE was still in flight
			 * says "unassigned"; what Salesforce holds now decides. */
			if (snapshot && ver) {
				d->action = WL_SKIP;
				snprintf(d->outcome, sizeof d->outcome, "already_routed");
				continue;
			}
			/* Routed by this policy version already: a redelivery after a crash
			 * between the write and "done". Decide again (the round-robin memo
			 * gives the same owner, the flywheel record the same decision id)
			 * but do not write. (A new policy version may re-route.) */
			if (ver && strcmp(ver, p->version) == 0) {
				already = 1;
				cur_owner = json_string_value(json_object_get(now_rec, "OwnerId"));
			}
			/* The owner now, not at creation: a user may have taken it meanwhile. */
			else if (json_string_value(json_object_get(now_rec, "OwnerId")))
				in.owner_id =
				        json_string_value(json_object_get(now_rec, "OwnerId"));
		}
		/* CDC nests address parts in the compound field Address. */
		in.country = json_string_value(json_object_get(e->fields, "Country"));
		if (!in.country)
			in.country = json_string_value(
			        json_object_get(json_object_get(e->fields, "Address"), "Country"));
		in.industry = json_string_value(json_object_get(e->fields, "Industry"));
		emp = json_object_get(e->fields, "NumberOfEmployees");
		if (json_is_integer(emp) || json_is_real(emp)) {
			in.has_employees = 1;
			in.employees = (long long)json_number_value(emp);
		}
		route_evaluate(p, &in, &r);
		if (r.skip) {
			d->action = WL_SKIP;
			snprintf(d->outcome, sizeof d->outcome, "left_alone");
		} else if (r.pool && !already) {
			/* An already routed Lead keeps its owner: no pointer step, even
			 * when Redis lost its memo (restarted without its data). */
			enum sfk_err rc =
			        st->dry ? rr_dry(ctx->redis, st, r.pool, lead18, now, owner)
			                : rr_redis(ctx->redis, p, r.pool, lead18, now, owner);
			if (rc != SFK_OK) {
				d->action = WL_RETRY;
				d->err = rc;
				continue;
			}
			if (!owner[0]) {
				r.queue = route_fallback_queue(p, r.region);
				snprintf(r.reason_path, sizeof r.reason_path,
				         "fallback.pool_exhausted.%s", r.pool->id);
				snprintf(r.reason, sizeof r.reason,
				         "Every owner of pool %s reached the daily cap: routed to "
				         "the region's queue.",
				         r.pool->id);
				r.confidence = 0.6;
			}
		}
		if (!r.skip && !owner[0])
			snprintf(owner, sizeof owner, "%s", r.queue);
		snprintf(d->model, sizeof d->model, "rules:routing_policy@%s", p->version);
		snprintf(d->policy_version, sizeof d->policy_version, "%s", p->version);
		snprintf(d->lead_id, sizeof d->lead_id, "%s", lead18);
		/* The decision is the Lead's routing under this policy version,
		 * whichever event asked (CREATE, its redelivery, a resync SNAPSHOT):
		 * one decision id, so the flywheel keeps one record. */
		{
			char dkey[WL_VERSION_MAX + 48];
			snprintf(dkey, sizeof dkey, "Lead:%s:policy:%s", lead18, p->version);
			if (flywheel_decision_id("lead.route", dkey, d->decision_id,
			                         sizeof d->decision_id) != 0)
				d->decision_id[0] = '\0'; /* the loop derives one from the event */
		}
		d->facts = lead_facts(e, lead18);
		if (already && cur_owner && sfid_valid(cur_owner))
			sfid_to18(cur_owner, owner); /* what was written, whoever decided it */
		else if (!r.skip && st->llm) {
			char m[WL_MODEL_MAX];
			if (ctx->now_ms() >= llm_deadline)
				snprintf(llm_err, sizeof llm_err, "batch LLM budget spent");
			else if (ask_llm(st, &r, d->facts, owner, m, sizeof m, llm_err,
			                 sizeof llm_err)) {
				decided_by = "llm";
				snprintf(d->model, sizeof d->model, "%s", m);
			}
			if (llm_err[0])
				log_warn("llm not used, rules decide lead=%s error=%s", lead18,
				         llm_err);
		}
		d->decision = json_pack(
		        "{s:s?, s:s?, s:s?, s:s, s:s, s:s, s:f, s:b, s:i, s:s, s:s}", "segment",
		        r.segment, "region", r.region, "owner_id", r.skip ? NULL : owner,
		        "owner_type",
		        r.skip ? "unchanged" : (strncmp(owner, "00G", 3) == 0 ? "Queue" : "User"),
		        "reason_path", r.reason_path, "reason", r.reason, "confidence",
		        r.confidence, "priority", r.priority, "sla_minutes", (int)r.sla_minutes,
		        "policy_version", p->version, "decided_by", decided_by);
		if (llm_err[0])
			json_object_set_new(d->decision, "llm_error", json_string(llm_err));
		if (r.pool && owner[0] && strncmp(owner, "005", 3) == 0)
			json_object_set_new(d->decision, "pool", json_string(r.pool->id));
		if (r.skip)
			continue;
		if (already) {
			d->action = WL_SKIP;
			snprintf(d->outcome, sizeof d->outcome, "already_routed");
			continue;
		}
		created = parse_sf_datetime(
		        json_string_value(json_object_get(e->fields, "CreatedDate")));
		if (created < 0)
			created = e->commit_ts_ms;
		iso_ms(now, when, sizeof when);
		snprintf(reason, sizeof reason, "%s: %s", r.reason_path, r.reason);
		reason[ROUTE_REASON_MAX] = '\0'; /* Routing_Reason__c length; ASCII text */
		d->action = WL_WRITE;
		snprintf(d->outcome, sizeof d->outcome, "%s",
		         strncmp(owner, "00G", 3) == 0 ? "queued" : "routed");
		d->write = json_pack("{s:{s:s}, s:s, s:s, s:s, s:f, s:s, s:s}", "attributes",
		                     "type", "Lead", "id", lead18, "OwnerId", owner,
		                     "Owner_Assigned_At__c", when, "Assignment_Latency_Minutes__c",
		                     (double)((now - created) / 600) / 100.0, "Routing_Reason__c",
		                     reason, "Routing_Policy_Version__c", p->version);
	}
	json_decref(batch_leads);
	json_decref(cur);
	return SFK_OK;
}

/* Count what was actually written: leads by segment/region, assignment latency. */
static void route_after_write(struct wl_ctx *ctx, const struct wl_event *ev, size_t n,
                              struct wl_decision *out, const struct wl_write_result *res)
{
	static const double buckets[] = {1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 14400, 86400};
	struct metric *routed = metrics_counter(
	        "sfk_leads_routed_total", "Leads given an owner, by policy segment and region",
	        "segment,region");
	struct metric *lat = metrics_histogram("sfk_assignment_latency_seconds",
	                                       "Lead CreatedDate to owner assigned (written)", NULL,
	                                       buckets, sizeof buckets / sizeof buckets[0]);
	(void)ctx;
	(void)ev;
	for (size_t i = 0; i < n; i++) {
		const char *seg, *reg;
		if (out[i].action != WL_WRITE || !res[i].attempted || !res[i].success)
			continue;
		seg = json_string_value(json_object_get(out[i].decision, "segment"));
		reg = json_string_value(json_object_get(out[i].decision, "region"));
		metric_add(routed, 1, seg ? seg : "none", reg ? reg : "none");
		if (sla_arm_routed) /* lead.sla_watch (weak: absent in unit tests) */
			sla_arm_routed(ctx, out[i].decision, out[i].write);
		metric_observe(lat, json_number_value(json_object_get(
		                            out[i].write, "Assignment_Latency_Minutes__c")) *
		                            60.0);
	}
}

const struct workload_ops route_ops = {
        .id = "lead.route",
        .config = route_config,
        .nconfig = sizeof route_config / sizeof route_config[0],
        .init = route_init,
        .decide = route_decide,
        .after_write = route_after_write,
        .fini = route_fini,
        .system_prompt = route_system_prompt,
        .check_config = route_check_config,
};
