/* sink.c - the sink registry: backends by name. */
#include <string.h>

#include "sink.h"

static const struct sink_ops *const backends[] = {&sink_jsonl_ops, &sink_es_ops};

const struct sink_ops *sink_find(const char *name)
{
	for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
		if (strcmp(backends[i]->name, name) == 0)
			return backends[i];
	return NULL;
}
