/*
 * fuzz_policy.c - policy loading: the routing policy (workers/route.c) and
 * the template policy (workers/template.c), each validated against its JSON
 * Schema (common/jschema.c) plus the checks a schema cannot make. The first
 * byte picks the policy kind, the rest is the document. Invariants: a policy
 * is returned exactly when no problem was reported; problems are strings.
 * Linked with every workers/ source but main.c (tests/fuzz/CMakeLists.txt).
 */
#include <string.h>

#include "fuzz.h"
#include "route.h"
#include "template.h"

static void check_problems(const void *policy, json_t *problems)
{
	size_t i;
	json_t *p;

	FUZZ_CHECK((policy != NULL) == (problems == NULL || json_array_size(problems) == 0));
	json_array_foreach(problems, i, p) FUZZ_CHECK(json_is_string(p));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct jschema *route_schema, *tpl_schema;
	json_t *doc, *problems = NULL;

	if (!route_schema) {
		route_schema = fuzz_schema("routing_policy.schema.json");
		tpl_schema = fuzz_schema("templates.schema.json");
	}
	if (size < 1)
		return 0;
	/* As route_policy_load / tpl_policy_load read the file. */
	doc = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, NULL);
	if (!doc)
		return 0;
	if (data[0] & 1) {
		struct tpl_policy *p = tpl_policy_from_json(doc, tpl_schema, &problems);
		check_problems(p, problems);
		tpl_policy_free(p);
	} else {
		struct route_policy *p = route_policy_from_json(doc, route_schema, &problems);
		check_problems(p, problems);
		if (p) {
			/* Walk what was built: pools, their round-robin order. */
			for (size_t i = 0; i < route_npools(p); i++) {
				const struct route_pool *pool = route_pool_at(p, i);
				for (size_t k = 0; k < pool->nseq; k++)
					FUZZ_CHECK(pool->seq[k] >= 0 &&
					           (size_t)pool->seq[k] < pool->nmembers);
			}
			(void)route_segment(p, 100);
			(void)route_region(p, "Germany");
		}
		route_policy_free(p);
	}
	json_decref(problems);
	json_decref(doc);
	return 0;
}
