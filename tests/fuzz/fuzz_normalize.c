/*
 * fuzz_normalize.c - CDC envelope normalization (bridge/normalize.c) on
 * arbitrary CometD data messages. Invariants: an accepted message yields
 * records whose envelopes validate against schemas/event.schema.json, each
 * with a key and a topic; a refused one says why.
 */
#include <string.h>

#include "../../bridge/normalize.c"
#include "fuzz.h"

static int64_t fixed_clock(void *ctx)
{
	(void)ctx;
	return 1700000000000LL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct jschema *schema;
	struct normalize_opts o = {.topic_prefix = "sfk.",
	                           .client_id = "sfk-kpis",
	                           .max_event_bytes = 64 * 1024,
	                           .clock_ms = fixed_clock};
	struct normalize_result r;
	char err[512] = "";
	json_t *msg;
	enum sfk_err rc;

	if (!schema)
		schema = fuzz_schema("event.schema.json");
	/* The bridge parses CometD bodies this way (cometd_parse_response). */
	msg = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!msg)
		return 0;
	memset(&r, 0, sizeof r);
	rc = normalize_message(&o, msg, &r, err, sizeof err);
	if (rc != SFK_OK) {
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(r.n == 0 && r.records == NULL);
	} else {
		FUZZ_CHECK(r.action != NORMALIZE_RESYNC || r.n == 0);
		for (size_t i = 0; i < r.n; i++) {
			json_t *errors = NULL;
			int bad = jschema_validate(schema, r.records[i].value, &errors);
			if (bad) {
				char *e = json_dumps(errors, JSON_COMPACT);
				fprintf(stderr, "envelope %zu invalid: %s\n", i, e ? e : "?");
				free(e);
			}
			json_decref(errors);
			FUZZ_CHECK(bad == 0);
			FUZZ_CHECK(r.records[i].key && r.records[i].key[0]);
			FUZZ_CHECK(r.records[i].topic[0] != '\0');
		}
	}
	normalize_result_free(&r);
	json_decref(msg);
	return 0;
}
