/*
 * fuzz_flywheel.c - flywheel record validation (common/flywheel.c against
 * schemas/flywheel.schema.json, the loader's and the blueprint's contract).
 * Invariants: the count of problems matches the error list; a valid record
 * survives a dump/reload round trip still valid.
 */
#include <string.h>

#include "flywheel.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct jschema *schema;
	json_t *rec, *errors = NULL;
	int n;

	if (!schema)
		schema = fuzz_schema("flywheel.schema.json");
	rec = json_loadb((const char *)data, size, 0, NULL);
	if (!rec)
		return 0;
	n = flywheel_validate(schema, rec, &errors);
	FUZZ_CHECK(n >= 0);
	FUZZ_CHECK((n == 0) == (errors == NULL));
	if (errors)
		FUZZ_CHECK(json_array_size(errors) > 0);
	if (n == 0) {
		size_t len = 0;
		char *s = flywheel_dump(rec, &len);
		json_t *again;
		FUZZ_CHECK(s != NULL && len == strlen(s));
		again = json_loadb(s, len, 0, NULL);
		FUZZ_CHECK(again != NULL);
		FUZZ_CHECK(flywheel_validate(schema, again, NULL) == 0);
		json_decref(again);
		free(s);
	}
	json_decref(errors);
	json_decref(rec);
	return 0;
}
