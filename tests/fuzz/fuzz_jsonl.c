/*
 * fuzz_jsonl.c - JSONL tail recovery (workers/loader/jsonl.c): the file a
 * crash left behind is arbitrary bytes; jsonl_repair_tail() cuts a torn or
 * garbage last line and jsonl_tail_lines() reads the last lines back (the
 * loader's dedup window after a restart). Invariants: the repaired file is a
 * prefix of the original, empty or ending in a newline, and exactly the good
 * lines when the damage fits the crash model (one torn write at the end);
 * tail_lines hands out at most the lines asked for, none containing '\n'.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../workers/loader/jsonl.c"
#include "fuzz.h"

#define TAIL_ASK 4

struct seen {
	long n;
};

static void on_line(void *ctx, const char *line, size_t len)
{
	struct seen *s = ctx;
	FUZZ_CHECK(memchr(line, '\n', len) == NULL);
	s->n++;
}

/* Length of the longest prefix made of complete lines that are JSON objects. */
static size_t good_prefix(const uint8_t *data, size_t size)
{
	size_t at = 0;

	for (;;) {
		const uint8_t *nl = memchr(data + at, '\n', size - at);
		json_t *j;
		int ok;
		if (!nl)
			return at;
		j = json_loadb((const char *)data + at, (size_t)(nl - (data + at)), 0, NULL);
		ok = json_is_object(j);
		json_decref(j);
		if (!ok)
			return at;
		at = (size_t)(nl - data) + 1;
	}
}

static size_t newlines(const uint8_t *p, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += p[i] == '\n';
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	struct seen s = {0};
	off_t keep;
	long got;
	size_t good;

	if (fd < 0)
		fd = memfd_create("fuzz_jsonl", 0);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(ftruncate(fd, 0) == 0);
	if (size > 0)
		FUZZ_CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);
	keep = jsonl_repair_tail(fd);
	FUZZ_CHECK(keep >= 0 && (size_t)keep <= size);
	FUZZ_CHECK(lseek(fd, 0, SEEK_END) == keep);
	FUZZ_CHECK(keep == 0 || data[keep - 1] == '\n');
	/* The crash model: good lines G, then what one torn write left (at most
	 * one newline). Recovery must then keep exactly G - no good line lost,
	 * no bad line kept. Beyond the model only the weaker checks hold. */
	good = good_prefix(data, size);
	if (newlines(data + good, size - good) <= 1)
		FUZZ_CHECK((size_t)keep == good);
	else
		FUZZ_CHECK((size_t)keep >= good);
	got = jsonl_tail_lines(fd, keep, TAIL_ASK, on_line, &s);
	FUZZ_CHECK(got >= 0 && got <= TAIL_ASK && got == s.n);
	return 0;
}
