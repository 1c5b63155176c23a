/*
 * sink_jsonl.c - the JSONL sink: one line per flywheel record in
 * <FLYWHEEL_DIR>/<workload_id>_<YYYY-MM-DD>[.<n>].jsonl (record timestamp,
 * UTC), fsynced before the loader commits the Kafka offsets.
 *
 * Exactly once across kill -9, how it works:
 *  - Offsets are committed only after flush() fsynced every file written in
 *    the batch (and the directory when a file was created). So after a crash
 *    Kafka redelivers at most the records since the last commit: the last
 *    batch, whose lines may be (partly) in the files already.
 *  - On start every plain file gets its tail repaired (jsonl_repair_tail: a
 *    torn or garbage last line is cut; it was never fsynced, hence never
 *    committed, and comes again from Kafka).
 *  - The first time this process touches a file it reads back the decision
 *    ids of its last `dedup_window` lines (>= the batch size, so it covers
 *    everything that can be redelivered) into a bounded set of recent ids;
 *    records whose decision id is in the set are skipped, not written. The
 *    set also drops upstream duplicates (a worker re-emitting a decision)
 *    within the window.
 *  - A failed flush truncates each file back to its last fsynced size before
 *    the batch is retried, so a retry never doubles a line.
 * One loader (or one FLYWHEEL_DIR per loader) owns a directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "idset.h"
#include "jsonl.h"
#include "log.h"
#include "metrics.h"
#include "sink.h"
#include "xmem.h"

#define JSINK_MAX_OPEN     64  /* open files; the least recently used one closes */
#define JSINK_IDLE_CLOSE_S 300 /* close a clean file untouched this long */
#define JSINK_TICK_S       60  /* retention pass interval */
#define JSINK_IDS_MIN      100000
#define JSINK_FILE_MODE    0640 /* records hold lead facts: no world access */
#define JSINK_DIR_MODE     0750

struct jfile {
	char wl[130], day[JSONL_DAY_LEN + 1];
	char name[JSONL_NAME_MAX + 1];
	int seg;
	int fd;
	bool created; /* directory entry not yet fsynced */
	off_t synced; /* durable size */
	char *buf;    /* lines of the current batch, not yet written */
	size_t len, cap, nrecs;
	time_t used;
};

struct jsink {
	struct sink_conf c;
	int dirfd;
	struct idset *ids;
	struct jfile *files[JSINK_MAX_OPEN];
	size_t nfiles;
	time_t last_tick;
	struct metric *m_recs, *m_bytes, *m_dups, *m_files;
};

static void fsync_dir(struct jsink *s)
{
	if (fsync(s->dirfd) != 0)
		log_warn("jsonl directory fsync failed dir=%s error=%s", s->c.dir, strerror(errno));
}

static void jfile_close(struct jfile **fp)
{
	if (!*fp)
		return;
	if ((*fp)->fd >= 0)
		close((*fp)->fd);
	free((*fp)->buf);
	free(*fp);
	*fp = NULL;
}

/* Highest segment of wl/day: *seg (-1 if none), *plain whether it is an
 * uncompressed file without a .gz twin (then it is the one to append to). */
static void highest_segment(struct jsink *s, const char *wl, const char *day, int *seg, bool *plain)
{
	*seg = -1;
	*plain = false;
	int dfd = dup(s->dirfd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	rewinddir(d);
	struct dirent *e;
	bool has_gz = false, has_plain = false;
	while ((e = readdir(d))) {
		char w[130], dd[JSONL_DAY_LEN + 1];
		int n;
		bool gz;
		if (jsonl_parse_name(e->d_name, w, sizeof w, dd, &n, &gz) != 0 ||
		    strcmp(w, wl) != 0 || strcmp(dd, day) != 0)
			continue;
		if (n > *seg) {
			*seg = n;
			has_gz = has_plain = false;
		}
		if (n == *seg) {
			has_gz |= gz;
			has_plain |= !gz;
		}
	}
	closedir(d);
	*plain = has_plain && !has_gz;
}

struct scan_ctx {
	struct idset *ids;
	size_t n;
};

static void scan_line(void *ctx, const char *line, size_t len)
{
	struct scan_ctx *sc = ctx;
	json_t *j = json_loadb(line, len, 0, NULL);
	const char *id = json_string_value(json_object_get(
	        json_object_get(json_object_get(j, "request"), "metadata"), "decision_id"));
	if (id) {
		idset_add(sc->ids, id, strlen(id));
		sc->n++;
	}
	json_decref(j);
}

/* Decision ids of the last `want` lines of segment seg (plain) into the set. */
static long scan_segment(struct jsink *s, const char *wl, const char *day, int seg, size_t want)
{
	char name[JSONL_NAME_MAX + 1];
	if (seg < 0 || jsonl_name(wl, day, seg, false, name, sizeof name) != 0)
		return 0;
	int fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* compressed or gone: closed days are not redelivered into */
	struct scan_ctx sc = {s->ids, 0};
	off_t size = lseek(fd, 0, SEEK_END);
	long n = size > 0 ? jsonl_tail_lines(fd, size, want, scan_line, &sc) : 0;
	close(fd);
	return n;
}

static struct jfile *open_segment(struct jsink *s, const char *wl, const char *day, int seg,
                                  char *errstr, size_t errlen)
{
	struct jfile *f = xcalloc(1, sizeof *f);
	snprintf(f->wl, sizeof f->wl, "%s", wl);
	snprintf(f->day, sizeof f->day, "%s", day);
	f->seg = seg;
	f->fd = -1;
	if (jsonl_name(wl, day, seg, false, f->name, sizeof f->name) != 0) {
		snprintf(errstr, errlen, "file name too long for workload %s", wl);
		goto fail;
	}
	f->fd = openat(s->dirfd, f->name, O_RDWR | O_APPEND | O_CLOEXEC);
	if (f->fd < 0 && errno == ENOENT) {
		f->fd = openat(s->dirfd, f->name, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC,
		               JSINK_FILE_MODE);
		if (f->fd >= 0) {
			f->created = true;
			if (fchmod(f->fd, JSINK_FILE_MODE) != 0)
				log_warn("jsonl chmod failed file=%s error=%s", f->name,
				         strerror(errno));
		}
	}
	if (f->fd < 0) {
		snprintf(errstr, errlen, "open %s/%s: %s", s->c.dir, f->name, strerror(errno));
		goto fail;
	}
	f->synced = jsonl_repair_tail(f->fd);
	if (f->synced < 0) {
		snprintf(errstr, errlen, "repair %s/%s: %s", s->c.dir, f->name, strerror(errno));
		goto fail;
	}
	return f;
fail:
	jfile_close(&f);
	return NULL;
}

/* The file records of wl/day go to now, opened (and recovered) on first use. */
static struct jfile *get_file(struct jsink *s, const char *wl, const char *day, char *errstr,
                              size_t errlen)
{
	for (size_t i = 0; i < s->nfiles; i++)
		if (strcmp(s->files[i]->wl, wl) == 0 && strcmp(s->files[i]->day, day) == 0)
			return s->files[i];
	if (s->nfiles == JSINK_MAX_OPEN) {
		/* Close the least recently used clean file. */
		size_t lru = SIZE_MAX;
		for (size_t i = 0; i < s->nfiles; i++)
			if (s->files[i]->len == 0 &&
			    (lru == SIZE_MAX || s->files[i]->used < s->files[lru]->used))
				lru = i;
		if (lru == SIZE_MAX) {
			snprintf(errstr, errlen, "more than %d files in one batch", JSINK_MAX_OPEN);
			return NULL;
		}
		jfile_close(&s->files[lru]);
		s->files[lru] = s->files[--s->nfiles];
	}
	int seg;
	bool plain;
	highest_segment(s, wl, day, &seg, &plain);
	int use = seg < 0 ? 0 : plain ? seg : seg + 1;
	struct jfile *f = open_segment(s, wl, day, use, errstr, errlen);
	if (!f)
		return NULL;
	/* Recovery: what may be redelivered sits at the tail of this segment,
	 * or of the previous one if a size rotation happened in the last batch. */
	size_t want = s->c.dedup_window;
	long got = scan_segment(s, wl, day, use, want);
	if (got >= 0 && (size_t)got < want && use > 0)
		scan_segment(s, wl, day, use - 1, want - (size_t)got);
	s->files[s->nfiles++] = f;
	metric_set(s->m_files, (double)s->nfiles);
	return f;
}

/* Start-up: cut torn tails of every plain file, also of days that will
 * never receive another record. Returns the number of files repaired. */
static int repair_all(struct jsink *s)
{
	int dfd = dup(s->dirfd), fixed = 0;
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		char wl[130], day[JSONL_DAY_LEN + 1];
		int seg;
		bool gz;
		if (jsonl_parse_name(e->d_name, wl, sizeof wl, day, &seg, &gz) != 0 || gz)
			continue;
		int fd = openat(s->dirfd, e->d_name, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		off_t before = lseek(fd, 0, SEEK_END), after = jsonl_repair_tail(fd);
		if (after >= 0 && after != before) {
			log_warn("jsonl torn tail cut file=%s bytes=%lld", e->d_name,
			         (long long)(before - after));
			fixed++;
		}
		close(fd);
	}
	closedir(d);
	return fixed;
}

static void *jsonl_open(const struct sink_conf *c, char *errstr, size_t errlen)
{
	if (!c->dir || !*c->dir) {
		snprintf(errstr, errlen, "FLYWHEEL_DIR is not set");
		return NULL;
	}
	if (mkdir(c->dir, JSINK_DIR_MODE) == 0) {
		if (chmod(c->dir, JSINK_DIR_MODE) != 0)
			log_warn("jsonl chmod failed dir=%s error=%s", c->dir, strerror(errno));
	} else if (errno != EEXIST) {
		snprintf(errstr, errlen, "mkdir %s: %s", c->dir, strerror(errno));
		return NULL;
	}
	int dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		snprintf(errstr, errlen, "open %s: %s", c->dir, strerror(errno));
		return NULL;
	}
	struct jsink *s = xcalloc(1, sizeof *s);
	s->c = *c;
	s->dirfd = dfd;
	if (s->c.dedup_window == 0)
		s->c.dedup_window = 1000;
	s->ids = idset_new(s->c.dedup_window * 4 > JSINK_IDS_MIN ? s->c.dedup_window * 4
	                                                         : JSINK_IDS_MIN);
	s->m_recs = metrics_counter("sfk_loader_records_written_total",
	                            "Records made durable by each sink", "sink");
	s->m_bytes = metrics_counter("sfk_loader_bytes_written_total",
	                             "Bytes made durable by each sink", "sink");
	s->m_dups = metrics_counter("sfk_loader_duplicates_skipped_total",
	                            "Records a sink already had (redelivery or upstream duplicate)",
	                            "sink");
	s->m_files = metrics_gauge("sfk_loader_jsonl_open_files", "JSONL files held open", NULL);
	repair_all(s);
	fsync_dir(s);
	return s;
}

static enum sfk_err jsonl_write(void *sv, const struct sink_rec *r, char *errstr, size_t errlen)
{
	struct jsink *s = sv;
	char day[JSONL_DAY_LEN + 1];
	if (!jsonl_workload_ok(r->workload_id)) {
		snprintf(errstr, errlen, "workload_id not usable in a file name");
		return SFK_ERR_INVALID;
	}
	if (jsonl_day(r->timestamp, day) != 0) {
		snprintf(errstr, errlen, "timestamp %lld out of range", (long long)r->timestamp);
		return SFK_ERR_INVALID;
	}
	struct jfile *f = get_file(s, r->workload_id, day, errstr, errlen);
	if (!f)
		return SFK_ERR_IO;
	f->used = time(NULL);
	if (idset_has(s->ids, r->decision_id, strlen(r->decision_id))) {
		metric_add(s->m_dups, 1, "jsonl");
		return SFK_OK;
	}
	/* Size rotation, at batch boundaries only (nothing of this batch is in
	 * the segment yet), so a segment exceeds the limit by at most one
	 * batch and a rotation never has to write anything itself. */
	if (s->c.max_file_bytes > 0 && f->len == 0 && f->synced > 0 &&
	    f->synced + (off_t)r->len + 1 > s->c.max_file_bytes) {
		struct jfile *nf = open_segment(s, f->wl, f->day, f->seg + 1, errstr, errlen);
		if (!nf)
			return SFK_ERR_IO;
		log_info("jsonl rotated by size file=%s next=%s", f->name, nf->name);
		for (size_t i = 0; i < s->nfiles; i++)
			if (s->files[i] == f)
				s->files[i] = nf;
		jfile_close(&f);
		f = nf;
		f->used = time(NULL);
	}
	if (f->len + r->len + 1 > f->cap) {
		f->cap = (f->len + r->len + 1) * 2;
		f->buf = xrealloc(f->buf, f->cap);
	}
	memcpy(f->buf + f->len, r->line, r->len);
	f->len += r->len;
	f->buf[f->len++] = '\n';
	f->nrecs++;
	idset_add(s->ids, r->decision_id, strlen(r->decision_id));
	return SFK_OK;
}

static enum sfk_err jsonl_flush(void *sv, sink_reject_fn reject, void *ctx, char *errstr,
                                size_t errlen)
{
	struct jsink *s = sv;
	bool dir = false;
	(void)reject;
	(void)ctx;
	for (size_t i = 0; i < s->nfiles; i++) {
		struct jfile *f = s->files[i];
		if (!f->len)
			continue;
		size_t off = 0;
		while (off < f->len) {
			ssize_t w = write(f->fd, f->buf + off, f->len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		if (off < f->len || fsync(f->fd) != 0) {
			snprintf(errstr, errlen, "write %s/%s: %s", s->c.dir, f->name,
			         strerror(errno));
			/* Undo the partial batch: the retry rewrites it whole. */
			if (ftruncate(f->fd, f->synced) != 0)
				log_error("jsonl truncate failed file=%s error=%s", f->name,
				          strerror(errno));
			return SFK_ERR_IO;
		}
		dir |= f->created;
		f->synced += (off_t)f->len;
		metric_add(s->m_recs, (double)f->nrecs, "jsonl");
		metric_add(s->m_bytes, (double)f->len, "jsonl");
		f->len = 0;
		f->nrecs = 0;
	}
	if (dir) {
		if (fsync(s->dirfd) != 0) {
			snprintf(errstr, errlen, "fsync %s: %s", s->c.dir, strerror(errno));
			return SFK_ERR_IO;
		}
		for (size_t i = 0; i < s->nfiles; i++)
			s->files[i]->created = false;
	}
	return SFK_OK;
}

/* gzip name -> name.gz: compress into a temp file, fsync, rename, fsync the
 * directory, then unlink the original. A crash leaves either the original
 * alone, or both (the .gz complete: the next pass removes the original). */
static int gzip_file(struct jsink *s, const char *name)
{
	char gz[JSONL_NAME_MAX + 8], tmp[JSONL_NAME_MAX + 16];
	int in = -1, out = -1, rc = -1;
	snprintf(gz, sizeof gz, "%s.gz", name);
	snprintf(tmp, sizeof tmp, "%s.gz.tmp", name);
	struct stat st;
	if (fstatat(s->dirfd, gz, &st, 0) == 0) { /* finished before a crash */
		rc = unlinkat(s->dirfd, name, 0);
		goto out;
	}
	in = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
	out = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, JSINK_FILE_MODE);
	if (in < 0 || out < 0)
		goto out;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(in, 0);
		dup2(out, 1);
		execlp("gzip", "gzip", "-c", "-n", (char *)NULL);
		_exit(127);
	}
	int wst = 0;
	if (pid < 0 || waitpid(pid, &wst, 0) < 0 || !WIFEXITED(wst) || WEXITSTATUS(wst) != 0)
		goto out;
	if (fchmod(out, JSINK_FILE_MODE) != 0 || fsync(out) != 0 ||
	    renameat(s->dirfd, tmp, s->dirfd, gz) != 0)
		goto out;
	fsync_dir(s);
	rc = unlinkat(s->dirfd, name, 0);
out:
	if (rc != 0)
		unlinkat(s->dirfd, tmp, 0);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (rc == 0)
		fsync_dir(s);
	return rc;
}

static bool is_open(struct jsink *s, const char *name, bool close_it)
{
	for (size_t i = 0; i < s->nfiles; i++)
		if (strcmp(s->files[i]->name, name) == 0) {
			if (!close_it || s->files[i]->len)
				return true;
			jfile_close(&s->files[i]);
			s->files[i] = s->files[--s->nfiles];
			return false;
		}
	return false;
}

/* Retention: compress closed days, delete expired ones, close idle files. */
static void jsonl_tick(void *sv)
{
	struct jsink *s = sv;
	time_t now = time(NULL);
	if (s->last_tick && now - s->last_tick < JSINK_TICK_S)
		return;
	s->last_tick = now;
	for (size_t i = 0; i < s->nfiles;) {
		if (!s->files[i]->len && now - s->files[i]->used > JSINK_IDLE_CLOSE_S) {
			jfile_close(&s->files[i]);
			s->files[i] = s->files[--s->nfiles];
		} else {
			i++;
		}
	}
	metric_set(s->m_files, (double)s->nfiles);
	int dfd = dup(s->dirfd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	rewinddir(d);
	struct dirent *e;
	char(*todo)[JSONL_NAME_MAX + 1] = NULL;
	bool *del = NULL;
	size_t n = 0, cap = 0;
	while ((e = readdir(d))) {
		char wl[130], day[JSONL_DAY_LEN + 1];
		int seg;
		bool gz;
		if (jsonl_parse_name(e->d_name, wl, sizeof wl, day, &seg, &gz) != 0)
			continue;
		int64_t end = jsonl_day_start(day) + 86400;
		bool expire = s->c.retention_s > 0 && now > end + s->c.retention_s;
		bool compress =
		        !gz && s->c.compress_after_s >= 0 && now > end + s->c.compress_after_s;
		if (!expire && !compress)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			todo = xrealloc(todo, cap * sizeof *todo);
			del = xrealloc(del, cap * sizeof *del);
		}
		snprintf(todo[n], sizeof todo[n], "%s", e->d_name);
		del[n++] = expire;
	}
	closedir(d);
	for (size_t i = 0; i < n; i++) {
		if (is_open(s, todo[i], true))
			continue; /* a batch is writing late records into it */
		if (del[i]) {
			if (unlinkat(s->dirfd, todo[i], 0) == 0)
				log_info("jsonl retention deleted file=%s", todo[i]);
		} else if (gzip_file(s, todo[i]) == 0) {
			log_info("jsonl compressed file=%s", todo[i]);
		} else {
			log_warn("jsonl compression failed file=%s", todo[i]);
		}
	}
	if (n)
		fsync_dir(s);
	free(todo);
	free(del);
}

static void jsonl_close(void **sv)
{
	if (!sv || !*sv)
		return;
	struct jsink *s = *sv;
	for (size_t i = 0; i < s->nfiles; i++)
		jfile_close(&s->files[i]);
	idset_free(&s->ids);
	close(s->dirfd);
	free(s);
	*sv = NULL;
}

const struct sink_ops sink_jsonl_ops = {
        .name = "jsonl",
        .open = jsonl_open,
        .write = jsonl_write,
        .flush = jsonl_flush,
        .tick = jsonl_tick,
        .close = jsonl_close,
};
