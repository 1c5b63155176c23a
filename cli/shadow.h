/*
 * shadow.h - `sfk replay --shadow`: re-run one workload's decisions over the
 * records of <prefix>wl.<W> between two times, read by plain assignment (no
 * consumer group: the workers' offsets are untouched), as a dry run (no
 * Salesforce or Redis writes, wlrun.h), writing one decision JSON line per
 * record to a file, a topic or stdout, and a summary.
 */
#ifndef SFK_CLI_SHADOW_H
#define SFK_CLI_SHADOW_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct shadow_opts {
	struct config *cfg;     /* borrowed: the workload's settings (wlrun_add_config) */
	const char *workload;   /* "lead.route" */
	const char *bootstrap;  /* KAFKA_BOOTSTRAP_SERVERS */
	const char *prefix;     /* topic prefix */
	int64_t from_ms, to_ms; /* to_ms < 0: the end of the topic as of now */
	const char *out_file;   /* NULL: not a file */
	const char *out_topic;  /* NULL: not a topic */
	bool offline;           /* no Salesforce reads */
	bool json;              /* summary as JSON */
	int timeout_ms;         /* each Kafka request */
	int64_t budget_ms;      /* the whole read */
};

/* Run it; returns the exit status (0, 1, 2). */
int shadow_run(const struct shadow_opts *o);

#endif
