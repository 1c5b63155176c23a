/* Unit tests for sfk-loader's JSONL sink: file naming by day, tail recovery
 * (torn line cut, already-written records skipped after a crash), size
 * rotation, compression and retention. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../workers/loader/idset.c"
#include "../../workers/loader/jsonl.c"
#include "../../workers/loader/sink_jsonl.c"

static volatile sig_atomic_t g_stop;

static char *mkdtemp_dir(void)
{
	char *d = xstrdup("/tmp/test_loader_jsonl.XXXXXX");
	if (!mkdtemp(d))
		fail_msg("mkdtemp");
	return d;
}

static void rm_rf(const char *d)
{
	char *cmd = xasprintf("rm -rf '%s'", d);
	if (system(cmd) != 0)
		fail_msg("rm -rf failed");
	free(cmd);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *b = xmalloc(1 << 22);
	*len = fread(b, 1, (1 << 22) - 1, f);
	b[*len] = '\0';
	fclose(f);
	return b;
}

/* A minimal record the sink needs (the loader validated it before). */
struct rec {
	json_t *j;
	char *line;
	struct sink_rec sr;
};

static void mk(struct rec *r, const char *did, const char *wl, int64_t ts)
{
	r->j = json_pack("{sIsssss{s{ss}}s{}}", "timestamp", (json_int_t)ts, "client_id", "c",
	                 "workload_id", wl, "request", "metadata", "decision_id", did, "response");
	r->line = json_dumps(r->j, JSON_COMPACT);
	r->sr = (struct sink_rec){r->j, r->line, strlen(r->line), did, wl, ts, 0};
}

static void unmk(struct rec *r)
{
	json_decref(r->j);
	free(r->line);
}

static void reject_none(void *ctx, size_t idx, const char *type, const char *reason)
{
	(void)ctx;
	fail_msg("unexpected reject %zu %s %s", idx, type, reason);
}

static void *open_sink(const char *dir, long long max_bytes)
{
	char err[512];
	struct sink_conf c = {.dir = dir,
	                      .max_file_bytes = max_bytes,
	                      .compress_after_s = -1,
	                      .dedup_window = 100,
	                      .stop = &g_stop};
	void *s = sink_jsonl_ops.open(&c, err, sizeof err);
	if (!s)
		fail_msg("open: %s", err);
	return s;
}

static void put(void *s, const char *did, const char *wl, int64_t ts)
{
	struct rec r;
	char err[512];
	mk(&r, did, wl, ts);
	assert_int_equal(sink_jsonl_ops.write(s, &r.sr, err, sizeof err), SFK_OK);
	unmk(&r);
}

static void flush(void *s)
{
	char err[512];
	assert_int_equal(sink_jsonl_ops.flush(s, reject_none, NULL, err, sizeof err), SFK_OK);
}

/* Lines of a file, each checked to be a complete JSON object; counts how
 * often decision id `did` appears. */
static size_t lines_of(const char *path, const char *did, size_t *hits)
{
	size_t len, n = 0;
	char *b = slurp(path, &len);
	*hits = 0;
	if (!b)
		return 0;
	assert_true(len == 0 || b[len - 1] == '\n'); /* no torn last line */
	for (char *p = b, *nl; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		assert_non_null(nl);
		json_t *j = json_loadb(p, (size_t)(nl - p), 0, NULL);
		assert_true(json_is_object(j));
		const char *id = json_string_value(json_object_get(
		        json_object_get(json_object_get(j, "request"), "metadata"), "decision_id"));
		if (did && id && strcmp(id, did) == 0)
			(*hits)++;
		json_decref(j);
		n++;
	}
	free(b);
	return n;
}

static void test_day_and_names(void **state)
{
	(void)state;
	char day[JSONL_DAY_LEN + 1], name[JSONL_NAME_MAX + 1], wl[130];
	int seg;
	bool gz;
	assert_int_equal(jsonl_day(1795564800, day), 0); /* 2026-11-25T00:00:00Z */
	assert_string_equal(day, "2026-11-25");
	assert_int_equal(jsonl_day(1795564799, day), 0); /* one second earlier */
	assert_string_equal(day, "2026-11-24");
	assert_int_equal(jsonl_day_start("2026-11-25"), 1795564800);
	assert_true(jsonl_day_start("2026-02-31") < 0);
	assert_true(jsonl_day_start("2026-1-05") < 0);

	assert_int_equal(jsonl_name("lead.route", "2026-11-25", 0, false, name, sizeof name), 0);
	assert_string_equal(name, "lead.route_2026-11-25.jsonl");
	assert_int_equal(jsonl_name("lead.route", "2026-11-25", 3, true, name, sizeof name), 0);
	assert_string_equal(name, "lead.route_2026-11-25.3.jsonl.gz");
	assert_int_equal(jsonl_parse_name(name, wl, sizeof wl, day, &seg, &gz), 0);
	assert_string_equal(wl, "lead.route");
	assert_string_equal(day, "2026-11-25");
	assert_int_equal(seg, 3);
	assert_true(gz);
	assert_int_equal(jsonl_parse_name("outreach.template_suggest_2026-01-02.jsonl", wl,
	                                  sizeof wl, day, &seg, &gz),
	                 0);
	assert_string_equal(wl, "outreach.template_suggest");
	assert_int_equal(seg, 0);
	assert_false(gz);
	assert_int_equal(jsonl_parse_name("x_2026-13-01.jsonl", wl, sizeof wl, day, &seg, &gz), -1);
	assert_int_equal(jsonl_parse_name("notes.txt", wl, sizeof wl, day, &seg, &gz), -1);
	assert_int_equal(jsonl_parse_name("../x_2026-01-01.jsonl", wl, sizeof wl, day, &seg, &gz),
	                 -1);
	assert_false(jsonl_workload_ok("../etc"));
	assert_false(jsonl_workload_ok(".hidden"));
	assert_true(jsonl_workload_ok("lead.route"));
}

/* Records land in the file of their own UTC day, one line each, mode 0640. */
static void test_files_by_day(void **state)
{
	(void)state;
	char *dir = mkdtemp_dir();
	void *s = open_sink(dir, 1 << 20);
	put(s, "a1", "lead.route", 1795564799); /* 2026-11-24 23:59:59 */
	put(s, "a2", "lead.route", 1795564800); /* 2026-11-25 00:00:00 */
	put(s, "a3", "outreach.template_suggest", 1795564800);
	flush(s);
	sink_jsonl_ops.close(&s);
	size_t hits;
	char *p = xasprintf("%s/lead.route_2026-11-24.jsonl", dir);
	assert_int_equal(lines_of(p, "a1", &hits), 1);
	assert_int_equal(hits, 1);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	free(p);
	p = xasprintf("%s/lead.route_2026-11-25.jsonl", dir);
	assert_int_equal(lines_of(p, "a2", &hits), 1);
	assert_int_equal(hits, 1);
	free(p);
	p = xasprintf("%s/outreach.template_suggest_2026-11-25.jsonl", dir);
	assert_int_equal(lines_of(p, "a3", &hits), 1);
	free(p);
	assert_int_equal(stat(dir, &st), 0);
	rm_rf(dir);
	free(dir);
}

static void append_raw(const char *path, const char *text)
{
	FILE *f = fopen(path, "ab");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* kill -9 after the lines were written (maybe the last one half) but
 * before the offsets were committed: the restarted sink gets the same
 * records again and must write each exactly once, with no torn line. */
static void test_crash_recovery(void **state)
{
	(void)state;
	char *dir = mkdtemp_dir();
	char *p = xasprintf("%s/lead.route_2026-11-25.jsonl", dir);
	void *s = open_sink(dir, 1 << 20);
	for (int i = 0; i < 5; i++) {
		char id[16];
		snprintf(id, sizeof id, "d%d", i);
		put(s, id, "lead.route", 1795564800 + i);
	}
	flush(s);
	sink_jsonl_ops.close(&s); /* "crash": nothing was committed */
	/* the 6th record was being written when the process died */
	append_raw(p, "{\"timestamp\":1795564806,\"client_id\":\"c\",\"workl");

	s = open_sink(dir, 1 << 20);
	size_t hits;
	assert_int_equal(lines_of(p, NULL, &hits), 5); /* torn tail cut at open */
	for (int i = 0; i < 7; i++) {                  /* Kafka redelivers 0..6 */
		char id[16];
		snprintf(id, sizeof id, "d%d", i);
		put(s, id, "lead.route", 1795564800 + i);
	}
	flush(s);
	sink_jsonl_ops.close(&s);
	assert_int_equal(lines_of(p, NULL, &hits), 7);
	for (int i = 0; i < 7; i++) {
		char id[16];
		snprintf(id, sizeof id, "d%d", i);
		lines_of(p, id, &hits);
		assert_int_equal(hits, 1);
	}
	free(p);
	rm_rf(dir);
	free(dir);
}

/* A complete last line of garbage (zeros a power loss left) is cut too. */
static void test_repair_garbage_line(void **state)
{
	(void)state;
	char *dir = mkdtemp_dir();
	char *p = xasprintf("%s/f.jsonl", dir);
	append_raw(p, "{\"a\":1}\n{\"b\":2}\n");
	FILE *f = fopen(p, "ab");
	fwrite("\0\0\0\0\n", 1, 5, f);
	fclose(f);
	int fd = open(p, O_RDWR);
	assert_int_equal(jsonl_repair_tail(fd), 16);
	assert_int_equal(jsonl_repair_tail(fd), 16); /* idempotent */
	close(fd);
	free(p);
	rm_rf(dir);
	free(dir);
}

/* Size rotation continues in <name>.1.jsonl; recovery after a crash scans
 * the previous segment too, so nothing is written twice across segments. */
static void test_size_rotation(void **state)
{
	(void)state;
	char *dir = mkdtemp_dir();
	void *s = open_sink(dir, 4096);
	char id[32];
	for (int i = 0; i < 60; i++) { /* ~150 bytes each, flushed one by one */
		snprintf(id, sizeof id, "r%d", i);
		put(s, id, "lead.route", 1795564800);
		flush(s);
	}
	sink_jsonl_ops.close(&s);
	s = open_sink(dir, 4096);
	for (int i = 40; i < 70; i++) { /* redelivery of the last records + new ones */
		snprintf(id, sizeof id, "r%d", i);
		put(s, id, "lead.route", 1795564800);
	}
	flush(s);
	sink_jsonl_ops.close(&s);
	size_t total = 0, hits, nseg = 0;
	int count[70] = {0};
	for (int seg = 0; seg < 10; seg++) {
		char name[JSONL_NAME_MAX + 1];
		jsonl_name("lead.route", "2026-11-25", seg, false, name, sizeof name);
		char *p = xasprintf("%s/%s", dir, name);
		struct stat st;
		if (stat(p, &st) == 0) {
			nseg++;
			total += lines_of(p, NULL, &hits);
			for (int i = 0; i < 70; i++) {
				snprintf(id, sizeof id, "r%d", i);
				lines_of(p, id, &hits);
				count[i] += (int)hits;
			}
		}
		free(p);
	}
	assert_true(nseg >= 2);
	assert_int_equal(total, 70);
	for (int i = 0; i < 70; i++)
		assert_int_equal(count[i], 1);
	rm_rf(dir);
	free(dir);
}

/* Closed days are gzipped (the .gz holds the same lines), expired ones
 * deleted; a late record for a compressed day goes to a new segment. */
static void test_compress_and_retention(void **state)
{
	(void)state;
	char *dir = mkdtemp_dir();
	char err[256];
	struct sink_conf c = {.dir = dir,
	                      .max_file_bytes = 1 << 20,
	                      .compress_after_s = 3600,
	                      /* keeps 2026-09-21 whatever today is; 2023 expired */
	                      .retention_s = (long long)(time(NULL) - 1790000000) + 10 * 86400,
	                      .dedup_window = 100,
	                      .stop = &g_stop};
	void *s = sink_jsonl_ops.open(&c, err, sizeof err);
	assert_non_null(s);
	put(s, "old1", "lead.route", 1700000000); /* 2023-11-14: expired */
	put(s, "old2", "lead.route", 1790000000); /* 2026-09-21: to compress */
	put(s, "now1", "lead.route", time(NULL)); /* today: stays plain */
	flush(s);
	((struct jsink *)s)->last_tick = 0;
	/* files are open and clean: the pass closes and handles them */
	sink_jsonl_ops.tick(s);
	struct stat st;
	char *p = xasprintf("%s/lead.route_2023-11-14.jsonl", dir);
	assert_int_not_equal(stat(p, &st), 0);
	free(p);
	p = xasprintf("%s/lead.route_2026-09-21.jsonl", dir);
	assert_int_not_equal(stat(p, &st), 0);
	free(p);
	p = xasprintf("%s/lead.route_2026-09-21.jsonl.gz", dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	struct jsonl_reader *r = jsonl_open_read(p, true);
	size_t len;
	const char *line = jsonl_read_line(r, &len);
	assert_non_null(line);
	assert_non_null(strstr(line, "\"old2\""));
	assert_null(jsonl_read_line(r, &len));
	assert_int_equal(jsonl_close_read(&r), 0);
	free(p);
	put(s, "late", "lead.route", 1790000001);
	flush(s);
	p = xasprintf("%s/lead.route_2026-09-21.1.jsonl", dir);
	size_t hits;
	assert_int_equal(lines_of(p, "late", &hits), 1);
	free(p);
	sink_jsonl_ops.close(&s);
	rm_rf(dir);
	free(dir);
}

static void test_idset_eviction(void **state)
{
	(void)state;
	struct idset *s = idset_new(3);
	assert_true(idset_add(s, "a", 1));
	assert_false(idset_add(s, "a", 1));
	assert_true(idset_add(s, "b", 1));
	assert_true(idset_add(s, "c", 1));
	assert_true(idset_add(s, "d", 1)); /* evicts a */
	assert_false(idset_has(s, "a", 1));
	assert_true(idset_has(s, "d", 1));
	assert_int_equal(idset_count(s), 3);
	idset_free(&s);
	s = idset_new(0);
	char k[16];
	for (int i = 0; i < 5000; i++) {
		snprintf(k, sizeof k, "k%d", i);
		assert_true(idset_add(s, k, strlen(k)));
	}
	assert_true(idset_has(s, "k0", 2));
	assert_int_equal(idset_count(s), 5000);
	idset_free(&s);
}

int main(void)
{
	log_set_level(LOG_LVL_ERROR);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_day_and_names),
	        cmocka_unit_test(test_files_by_day),
	        cmocka_unit_test(test_crash_recovery),
	        cmocka_unit_test(test_repair_garbage_line),
	        cmocka_unit_test(test_size_rotation),
	        cmocka_unit_test(test_compress_and_retention),
	        cmocka_unit_test(test_idset_eviction),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
