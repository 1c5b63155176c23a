/*
 * jsonl.c - file names, tail recovery and (gzip) readers for flywheel JSONL
 * files. No sockets, no process state: unit-tested in test_loader_jsonl.c.
 */
#include "jsonl.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "xmem.h"

#define TAIL_CHUNK (64 * 1024)

int jsonl_day(int64_t ts, char *day)
{
	struct tm tm;
	time_t t = (time_t)ts;
	if (ts < 0 || !gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999)
		return -1;
	return strftime(day, JSONL_DAY_LEN + 1, "%Y-%m-%d", &tm) == JSONL_DAY_LEN ? 0 : -1;
}

int64_t jsonl_day_start(const char *day)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	if (strlen(day) != JSONL_DAY_LEN)
		return -1;
	const char *end = strptime(day, "%Y-%m-%d", &tm);
	if (!end || *end)
		return -1;
	time_t t = timegm(&tm);
	/* strptime accepts 2026-02-31; reject dates that do not round-trip. */
	char back[JSONL_DAY_LEN + 1];
	if (t < 0 || jsonl_day(t, back) != 0 || strcmp(back, day) != 0)
		return -1;
	return t;
}

bool jsonl_workload_ok(const char *wl)
{
	if (!wl || !*wl || *wl == '.' || strlen(wl) > 128)
		return false;
	for (const char *p = wl; *p; p++)
		if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_' ||
		      *p == '.' || *p == '-'))
			return false;
	return true;
}

int jsonl_name(const char *wl, const char *day, int seg, bool gz, char *out, size_t outlen)
{
	int n = seg > 0 ? snprintf(out, outlen, "%s_%s.%d.jsonl%s", wl, day, seg, gz ? ".gz" : "")
	                : snprintf(out, outlen, "%s_%s.jsonl%s", wl, day, gz ? ".gz" : "");
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int jsonl_parse_name(const char *name, char *wl, size_t wlsize, char *day, int *seg, bool *gz)
{
	size_t n = strlen(name);
	*gz = n > 3 && strcmp(name + n - 3, ".gz") == 0;
	if (*gz)
		n -= 3;
	if (n < 6 || strncmp(name + n - 6, ".jsonl", 6) != 0)
		return -1;
	n -= 6;
	/* optional ".<n>" */
	*seg = 0;
	size_t d = n;
	while (d > 0 && isdigit((unsigned char)name[d - 1]))
		d--;
	if (d < n && d > 0 && name[d - 1] == '.' && name[d] != '0' && n - d <= 6) {
		*seg = (int)strtol(name + d, NULL, 10);
		n = d - 1;
	}
	if (n < JSONL_DAY_LEN + 2 || name[n - JSONL_DAY_LEN - 1] != '_')
		return -1;
	memcpy(day, name + n - JSONL_DAY_LEN, JSONL_DAY_LEN);
	day[JSONL_DAY_LEN] = '\0';
	if (jsonl_day_start(day) < 0)
		return -1;
	size_t wlen = n - JSONL_DAY_LEN - 1;
	if (wlen + 1 > wlsize)
		return -1;
	memcpy(wl, name, wlen);
	wl[wlen] = '\0';
	return jsonl_workload_ok(wl) ? 0 : -1;
}

/* Offset just past the last '\n' before `end` (0 if none). */
static off_t last_newline_end(int fd, off_t end)
{
	char buf[TAIL_CHUNK];
	while (end > 0) {
		off_t from = end > TAIL_CHUNK ? end - TAIL_CHUNK : 0;
		ssize_t r = pread(fd, buf, (size_t)(end - from), from);
		if (r <= 0)
			return -1;
		for (ssize_t i = r - 1; i >= 0; i--)
			if (buf[i] == '\n')
				return from + i + 1;
		end = from;
	}
	return 0;
}

/* Is the complete line [from, to) (newline excluded) a JSON object? */
static bool line_is_object(int fd, off_t from, off_t to)
{
	if (to - from > JSONL_LINE_MAX)
		return false;
	char *buf = xmalloc((size_t)(to - from) + 1);
	bool ok = false;
	if (pread(fd, buf, (size_t)(to - from), from) == to - from) {
		json_t *j = json_loadb(buf, (size_t)(to - from), 0, NULL);
		ok = json_is_object(j);
		json_decref(j);
	}
	free(buf);
	return ok;
}

/*
 * A crash can leave at most the tail of the last write(2) behind: a line
 * without its newline (kill -9 mid-write is impossible for one write(2) to
 * a local file, but a record can span several writes when the batch buffer
 * is large), or after a power loss a region of zeros the file system had
 * allocated but never written. Either way only the LAST line can be bad,
 * and it was never fsynced, so its offset was never committed: cutting it
 * loses nothing — Kafka delivers that record again.
 */
off_t jsonl_repair_tail(int fd)
{
	off_t size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		return -1;
	off_t keep = size;
	char last = 0;
	if (size > 0 && pread(fd, &last, 1, size - 1) != 1)
		return -1;
	if (size > 0 && last != '\n')
		keep = last_newline_end(fd, size); /* torn: no newline */
	if (keep > 0) {
		off_t start = last_newline_end(fd, keep - 1);
		if (start < 0)
			return -1;
		if (!line_is_object(fd, start, keep - 1))
			keep = start; /* complete but garbage (zeros after power loss) */
	}
	if (keep < 0)
		return -1;
	if (keep != size) {
		if (ftruncate(fd, keep) != 0 || fsync(fd) != 0)
			return -1;
	}
	return keep;
}

long jsonl_tail_lines(int fd, off_t size, size_t lines, jsonl_line_fn fn, void *ctx)
{
	if (lines == 0 || size == 0)
		return 0;
	/* Walk back from the end counting newlines until `lines` complete
	 * lines lie after `start`. The file ends with '\n' (repaired). */
	char *buf = xmalloc(TAIL_CHUNK);
	off_t end = size, start = 0;
	size_t seen = 0;
	bool found = false;
	while (end > 0 && !found) {
		off_t from = end > TAIL_CHUNK ? end - TAIL_CHUNK : 0;
		ssize_t r = pread(fd, buf, (size_t)(end - from), from);
		if (r <= 0) {
			free(buf);
			return -1;
		}
		for (ssize_t i = r - 1; i >= 0; i--) {
			if (buf[i] != '\n' || from + i == size - 1)
				continue;
			if (++seen == lines) {
				start = from + i + 1;
				found = true;
				break;
			}
		}
		end = from;
	}
	free(buf);
	/* Forward read from start. */
	int dfd = dup(fd);
	if (dfd < 0)
		return -1;
	FILE *f = fdopen(dfd, "r");
	if (!f) {
		close(dfd);
		return -1;
	}
	long n = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	if (fseeko(f, start, SEEK_SET) != 0) {
		fclose(f);
		return -1;
	}
	off_t pos = start;
	while (pos < size && (len = getline(&line, &cap, f)) > 0) {
		pos += len;
		if (line[len - 1] == '\n')
			len--;
		fn(ctx, line, (size_t)len);
		n++;
	}
	free(line);
	fclose(f);
	return n;
}

struct jsonl_reader {
	FILE *f;
	pid_t pid; /* gzip child, or 0 */
	char *line;
	size_t cap;
	bool toolong;
};

struct jsonl_reader *jsonl_open_read(const char *path, bool gz)
{
	struct jsonl_reader *r = xcalloc(1, sizeof *r);
	if (!gz) {
		r->f = fopen(path, "re");
		if (!r->f) {
			free(r);
			return NULL;
		}
		return r;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) {
		free(r);
		return NULL;
	}
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		execlp("gzip", "gzip", "-dc", "--", path, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	if (pid < 0 || !(r->f = fdopen(p[0], "r"))) {
		close(p[0]);
		if (pid > 0)
			waitpid(pid, NULL, 0);
		free(r);
		return NULL;
	}
	r->pid = pid;
	return r;
}

const char *jsonl_read_line(struct jsonl_reader *r, size_t *len)
{
	ssize_t n;
	while ((n = getline(&r->line, &r->cap, r->f)) > 0) {
		if (r->line[n - 1] != '\n')
			return NULL; /* torn last line: never a record */
		r->line[--n] = '\0';
		if (n > JSONL_LINE_MAX) {
			r->toolong = true;
			continue;
		}
		*len = (size_t)n;
		return r->line;
	}
	return NULL;
}

int jsonl_close_read(struct jsonl_reader **rp)
{
	if (!rp || !*rp)
		return 0;
	struct jsonl_reader *r = *rp;
	int rc = ferror(r->f) ? -1 : 0;
	fclose(r->f);
	if (r->pid > 0) {
		int st = 0;
		if (waitpid(r->pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			rc = -1;
	}
	free(r->line);
	free(r);
	*rp = NULL;
	return rc;
}
