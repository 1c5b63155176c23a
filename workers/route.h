/*
 * route.h - lead.route: policy-as-data lead routing (policies/routing_policy.json).
 *
 * Pure parts (policy load/validation, segment/region/pool/fallback evaluation,
 * the weighted round-robin sequence and pick) are here for the unit tests;
 * route.c adds the Redis round robin (Lua, sfk:rr:<version>:<pool>) and the
 * workload ops.
 */
#ifndef SFK_ROUTE_H
#define SFK_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "jschema.h"

#define ROUTE_NAME_MAX    64  /* segment, region, pool id, version */
#define ROUTE_REASON_MAX  255 /* Routing_Reason__c length */
#define ROUTE_MEMBERS_MAX 64  /* members per pool */
#define ROUTE_WEIGHT_MAX  100 /* weight of one member */
#define ROUTE_SEQ_MAX     (ROUTE_MEMBERS_MAX * ROUTE_WEIGHT_MAX)

struct route_member {
	char owner_id[19];
	int weight;
	long long daily_cap; /* 0 = no cap */
};

struct route_pool {
	char id[ROUTE_NAME_MAX];
	char segment[ROUTE_NAME_MAX];
	char region[ROUTE_NAME_MAX];
	struct route_member *members;
	size_t nmembers;
	int *seq; /* smooth weighted round-robin order of member indexes, length nseq */
	size_t nseq;
};

struct route_policy; /* opaque: version, segments, regions, pools, fallback... */

/*
 * Load and validate a policy: JSON Schema (schema_path) plus the checks a
 * schema cannot make (pool segment/region defined, segment ranges ordered and
 * disjoint, a country in two regions, one pool per segment+region). Every
 * problem is appended to *problems (new array of "path: problem" strings,
 * NULL when none). Returns a new policy (route_policy_free) or NULL.
 */
struct route_policy *route_policy_load(const char *policy_path, const char *schema_path,
                                       json_t **problems);
/* Same from a parsed document (borrowed) and a loaded schema (borrowed). */
struct route_policy *route_policy_from_json(json_t *doc, const struct jschema *schema,
                                            json_t **problems);
void route_policy_free(struct route_policy *p);
const char *route_policy_version(const struct route_policy *p);

/* The lead's facts that routing reads (strings borrowed). */
struct route_input {
	const char *lead_id;
	const char *owner_id; /* current OwnerId, may be NULL */
	const char *country;  /* may be NULL */
	const char *industry; /* may be NULL */
	int has_employees;
	long long employees;
};

/* Result of the pure evaluation (before the round robin). */
struct route_eval {
	int skip;                             /* leave the lead alone (owned by a user) */
	const char *segment;                  /* NULL when employees are missing */
	const char *region;                   /* NULL when the country is missing/unknown */
	const struct route_pool *pool;        /* NULL: route to queue */
	const char *queue;                    /* fallback queue id when pool is NULL and !skip */
	char reason_path[ROUTE_NAME_MAX * 2]; /* "pool.smb_na", "fallback.missing_employees" */
	char reason[ROUTE_REASON_MAX + 1];    /* human sentence */
	double confidence;
	int priority; /* industry in priority_industries */
	long sla_minutes;
};

/* Pure: segment, region, pool or fallback queue, reason, confidence, SLA. */
void route_evaluate(const struct route_policy *p, const struct route_input *in,
                    struct route_eval *out);

/* Segment name for an employee count (NULL if none matches). */
const char *route_segment(const struct route_policy *p, long long employees);
/* Region for a country name or ISO alpha-2 code, case-insensitive (NULL if unknown). */
const char *route_region(const struct route_policy *p, const char *country);

/*
 * Pure mirror of the Redis script: advance *pointer through pool->seq until a
 * member is under its daily cap (counts[i] = owner i's assignments today,
 * incremented for the pick). Returns the member index, or -1 when every
 * member is capped (the pool is exhausted; *pointer advanced nseq times).
 */
int route_rr_pick(const struct route_pool *pool, uint64_t *pointer, long long *counts);

/* Fallback queue (when a pool is exhausted): the region's queue, else the global one. */
const char *route_fallback_queue(const struct route_policy *p, const char *region);

struct wl_ctx;
/*
 * Dry run (sfk decide, sfk replay --shadow), after the workload's init():
 * from then on decide() picks owners with route_rr_pick over in-memory
 * pointers and cap counts seeded read-only from Redis (GET of
 * sfk:rr:<version>:<pool>, today's cap counters and the per-lead memo, so a
 * lead the workers routed keeps its owner) and never writes Redis.
 * ctx->redis NULL: every pointer starts at 0. Returns 0, or -1 without state.
 */
int route_dry_run(struct wl_ctx *ctx);

/* Pool by id (NULL if none), and iteration for tests. */
size_t route_npools(const struct route_policy *p);
const struct route_pool *route_pool_at(const struct route_policy *p, size_t i);

#endif
