/*
 * registry.c - the workloads sfk-worker can run (--workload <id>).
 * One line per workload: declare its ops and list it in workload_registry.
 */
#include <string.h>

#include "workload.h"

extern const struct workload_ops route_ops;
extern const struct workload_ops first_touch_ops;
extern const struct workload_ops template_ops;
extern const struct workload_ops sla_watch_ops; /* lead.sla_watch */
extern const struct workload_ops notify_ops;

const struct workload_ops *const workload_registry[] = {
        &route_ops, &first_touch_ops, &template_ops, &sla_watch_ops, &notify_ops, NULL,
};

const struct workload_ops *workload_find(const char *id)
{
	for (size_t i = 0; id && workload_registry[i]; i++)
		if (strcmp(workload_registry[i]->id, id) == 0)
			return workload_registry[i];
	return NULL;
}
