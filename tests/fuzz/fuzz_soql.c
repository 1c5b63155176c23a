/*
 * fuzz_soql.c - the sim's SOQL parser (tests/sfsim/soql.c): parse, bind and
 * run arbitrary text against a toy schema (soql_fuzz_one does the work and
 * returns non-zero when one of its own invariants breaks).
 */
#include "fuzz.h"
#include "../sfsim/soql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FUZZ_CHECK(soql_fuzz_one(data, size) == 0);
	return 0;
}
