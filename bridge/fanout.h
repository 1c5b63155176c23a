/*
 * fanout.h - which normalized events feed which workload topic, and keyed how.
 *
 * Rules are data (policies/workloads.json, schema schemas/workloads.schema.json),
 * validated at start-up with every problem listed by JSON path. Routing is a
 * pure function of (rules, envelope): echo events and unresolved gap events
 * are never fanned out, whatever the rules say.
 */
#ifndef SFK_BRIDGE_FANOUT_H
#define SFK_BRIDGE_FANOUT_H

#include <jansson.h>
#include <stddef.h>

#include "err.h"

/* Header naming the workload on a fan-out record. */
#define FANOUT_HDR_WORKLOAD "sfk.workload"
#define FANOUT_TOPIC_MAX    249
#define FANOUT_KEY_MAX      64
/* Largest rules file read (bytes). */
#define FANOUT_MAX_POLICY_BYTES (1024 * 1024)

struct fanout;

/* One record to produce: value = the envelope itself (same schema). */
struct fanout_target {
	const char *workload; /* borrowed, valid while the fanout lives */
	char topic[FANOUT_TOPIC_MAX + 1];
	char key[FANOUT_KEY_MAX + 1];
};

/*
 * Build the rules from a policy document (borrowed) validated against schema
 * (borrowed, from schemas/workloads.schema.json). topic_prefix NULL = "sfk.".
 * Returns a new fanout, or NULL and *problems = a new JSON array of strings,
 * one "path: problem" per problem (schema and semantic checks alike).
 */
struct fanout *fanout_new(json_t *policy, json_t *schema, const char *topic_prefix,
                          json_t **problems);

/*
 * Load both files and call fanout_new(). On failure returns NULL and writes
 * every problem, one per line ("<file>: <path>: <problem>"), into errstr.
 */
struct fanout *fanout_load(const char *policy_path, const char *schema_path,
                           const char *topic_prefix, char *errstr, size_t errlen);

void fanout_free(struct fanout **f);

/* The rule set's version string (borrowed, valid while f lives). */
const char *fanout_version(const struct fanout *f);
/* Number of workloads. */
size_t fanout_workloads(const struct fanout *f);

/*
 * Targets for one envelope (borrowed): at most one per workload, in the
 * policy's workload order, written to out[0..max). Returns how many
 * (0 for echo / unresolved gap / no match).
 */
size_t fanout_route(const struct fanout *f, json_t *env, struct fanout_target *out, size_t max);

#endif
