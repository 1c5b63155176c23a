/*
 * fuzz_cometd.c - CometD response parsing (bridge/cometd.c): an HTTP body
 * from the Streaming API through cometd_parse_response() and a verdict on
 * every message. Invariants: a parsed body is an array of objects; a refused
 * one says why; a verdict's strings stay NUL-terminated within their size.
 */
#include <string.h>

#include "../../bridge/cometd.c"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *msgs = NULL;
	char err[512] = "";
	size_t i;
	json_t *m;

	if (cometd_parse_response((const char *)data, size, &msgs, err, sizeof err) != SFK_OK) {
		FUZZ_CHECK(msgs == NULL);
		FUZZ_CHECK(err[0] != '\0');
		return 0;
	}
	FUZZ_CHECK(json_is_array(msgs));
	json_array_foreach(msgs, i, m)
	{
		struct cometd_verdict v;
		FUZZ_CHECK(json_is_object(m));
		memset(&v, 0x5a, sizeof v);
		cometd_verdict_of(m, &v);
		FUZZ_CHECK(memchr(v.reason, '\0', sizeof v.reason) != NULL);
		FUZZ_CHECK(memchr(v.channel, '\0', sizeof v.channel) != NULL);
		FUZZ_CHECK(v.action >= COMETD_ACT_OK && v.action <= COMETD_ACT_FATAL);
	}
	json_decref(msgs);
	return 0;
}
