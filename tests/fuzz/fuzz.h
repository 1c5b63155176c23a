/*
 * fuzz.h - shared helpers of the libFuzzer targets (tests/fuzz/fuzz_<t>.c).
 *
 * Each target defines LLVMFuzzerTestOneInput() over one pure entry point of
 * the product and abort()s when an invariant the caller relies on breaks.
 * The same file builds with gcc into a replay driver (replay.h) for ctest.
 */
#ifndef SFK_FUZZ_H
#define SFK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "jschema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The repository root: $SFK_SOURCE_DIR, else the one compiled in (fuzz
 * build), else ".". Borrowed, static storage. */
static inline const char *fuzz_source_dir(void)
{
	const char *d = getenv("SFK_SOURCE_DIR");
	if (d && *d)
		return d;
#ifdef SFK_FUZZ_SOURCE_DIR
	return SFK_FUZZ_SOURCE_DIR;
#else
	return ".";
#endif
}

/* Load schemas/<name> once per process (kept for the process lifetime, as a
 * fuzz target's state is). Exits if it cannot: the run would be meaningless. */
static inline struct jschema *fuzz_schema(const char *name)
{
	char path[4096], err[256];
	struct jschema *s;
	int n = snprintf(path, sizeof path, "%s/schemas/%s", fuzz_source_dir(), name);
	if (n < 0 || (size_t)n >= sizeof path) {
		fprintf(stderr, "fuzz: schema path too long\n");
		exit(2);
	}
	s = jschema_load(path, err, sizeof err);
	if (!s) {
		fprintf(stderr, "fuzz: %s: %s (set SFK_SOURCE_DIR)\n", path, err);
		exit(2);
	}
	return s;
}

/* An invariant broke: say which and abort (libFuzzer keeps the input). */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__,    \
			        __LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
