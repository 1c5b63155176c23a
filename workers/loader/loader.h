/*
 * loader.h - sfk-loader's consume loop: sfk.flywheel -> sinks, offsets
 * committed only after every enabled sink made the batch durable; records
 * failing the flywheel schema (or refused by a sink) go to sfk.dlq.loader.
 */
#ifndef SFK_LOADER_LOADER_H
#define SFK_LOADER_LOADER_H

#include <signal.h>
#include <stddef.h>

#include "sink.h"

#define LOADER_MAX_SINKS  4
#define LOADER_RECORD_MAX (1024 * 1024) /* larger Kafka values are dead-lettered */

/* DLQ record headers (value = the original record bytes, key = its key). */
#define LOADER_HDR_ERROR_CODE   "sfk.error_code"
#define LOADER_HDR_ERROR_CLASS  "sfk.error_class"
#define LOADER_HDR_ERROR_TYPE   "sfk.error_type"
#define LOADER_HDR_ERROR_REASON "sfk.error_reason"
#define LOADER_HDR_SINK         "sfk.sink"
#define LOADER_HDR_SOURCE       "sfk.source" /* "<topic>/<partition>@<offset>" */

struct loader_conf {
	const char *bootstrap, *topic, *group, *dlq_topic, *schema_path;
	const char *admin_addr;
	const struct sink_ops *sinks[LOADER_MAX_SINKS];
	size_t nsinks;
	struct sink_conf sink; /* handed to every sink's open() */
	size_t batch_max;
	long long linger_ms;
	volatile sig_atomic_t *stop;
};

/* Run until *stop. Returns the process exit status (0 after a clean stop). */
int loader_run(const struct loader_conf *c);

#endif
