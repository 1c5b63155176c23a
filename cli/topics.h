/*
 * topics.h - the expected Kafka topics (DESIGN.md section 3) and what a
 * broker actually has; shared by `sfk topics` and `sfk doctor`.
 */
#ifndef SFK_CLI_TOPICS_H
#define SFK_CLI_TOPICS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct topics_conf {
	const char *prefix;           /* "sfk." */
	const char *extra_entities;   /* "account,opportunity" or NULL */
	const char *workloads_policy; /* policies/workloads.json (workload ids) or NULL */
	const char *group_prefix;     /* workers' groups: <group_prefix><workload> */
	const char *loader_group;     /* flywheel consumer group, or NULL */
	long long retention_ms, dlq_retention_ms;
};

/*
 * The expected topics: new reference, an array of objects {name, kind
 * (cdc|workload|flywheel|dlq|checkpoints), cleanup.policy, retention.ms?,
 * group?}. Strings in c are borrowed for the call.
 */
json_t *topics_expected(const struct topics_conf *c);

/*
 * A deep copy of expected (borrowed) with what the broker has: exists,
 * partitions, replication, actual_cleanup.policy, actual_retention.ms and,
 * when lag is true, the lag of each topic's group (null: nothing committed).
 * New reference, or NULL with errstr set when the broker is unreachable.
 */
json_t *topics_inspect(const char *bootstrap, json_t *expected, int timeout_ms, bool lag,
                       char *errstr, size_t errsize);

/* One inspected topic's problem into buf ("" when none): missing, wrong
 * cleanup.policy, fewer than want_partitions partitions (0 = any). */
void topics_problem(json_t *t, long long want_partitions, char *buf, size_t n);

#endif
