/*
 * replay.h - a plain main() that feeds every file of the target's corpus
 * and regressions (tests/fuzz/{corpus,regressions}/<FUZZ_TARGET>/) to
 * LLVMFuzzerTestOneInput(), so crashes once found stay fixed in the normal
 * gcc (and ASan) build. Include after the target's source with FUZZ_TARGET
 * defined. Fails when both directories hold nothing or a file cannot be read; a
 * crash or a broken invariant aborts.
 */
#ifndef SFK_FUZZ_REPLAY_H
#define SFK_FUZZ_REPLAY_H

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define REPLAY_FILE_MAX (4u * 1024u * 1024u) /* corpus files are small */

/* Feed each regular file of dir; returns the count, or -1 on an error. */
static long replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	long n = 0;
	uint8_t *buf = malloc(REPLAY_FILE_MAX);

	if (!d || !buf) {
		int missing = !d && errno == ENOENT;
		if (!missing)
			fprintf(stderr, "replay: cannot open %s\n", dir);
		free(buf);
		if (d)
			closedir(d);
		return missing ? 0 : -1; /* no regression yet for this target */
	}
	while ((e = readdir(d))) {
		char path[4096];
		FILE *f;
		size_t len;
		int w;
		if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0)
			continue;
		w = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (w < 0 || (size_t)w >= sizeof path)
			continue;
		f = fopen(path, "rb");
		if (!f) {
			fprintf(stderr, "replay: cannot read %s\n", path);
			n = -1;
			break;
		}
		len = fread(buf, 1, REPLAY_FILE_MAX, f);
		fclose(f);
		/* A private copy of the exact size, so ASan sees overreads. */
		uint8_t *exact = malloc(len ? len : 1);
		if (!exact) {
			n = -1;
			break;
		}
		memcpy(exact, buf, len);
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
		LLVMFuzzerTestOneInput(exact, len);
		free(exact);
		n++;
	}
	closedir(d);
	free(buf);
	return n;
}

int main(void)
{
	const char *kinds[] = {"corpus", "regressions"};
	long total = 0;

	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		char dir[4096];
		long n;
		int w = snprintf(dir, sizeof dir, "%s/tests/fuzz/%s/%s", fuzz_source_dir(),
		                 kinds[i], FUZZ_TARGET);
		if (w < 0 || (size_t)w >= sizeof dir)
			return 1;
		n = replay_dir(dir);
		if (n < 0)
			return 1;
		printf("%s/%s: %ld inputs replayed\n", kinds[i], FUZZ_TARGET, n);
		total += n;
	}
	if (total == 0) {
		fprintf(stderr, "replay: no input for %s (run from ctest: SFK_SOURCE_DIR)\n",
		        FUZZ_TARGET);
		return 1;
	}
	return 0;
}

#endif
