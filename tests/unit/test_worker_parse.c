/*
 * test_worker_parse.c - the worker reads every envelope the bridge writes
 * (tests/golden/normalize/<case>/expected.json) and refuses broken ones with
 * the JSON path of the problem (those go to the DLQ).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/loop.c"

static const char *src_dir(void)
{
	const char *s = getenv("SFK_SOURCE_DIR");
	return s ? s : ".";
}

static void test_golden_envelopes_parse(void **state)
{
	(void)state;
	char dir[1024], path[2048], err[256];
	DIR *d;
	struct dirent *e;
	int seen = 0;

	snprintf(dir, sizeof dir, "%s/tests/golden/normalize", src_dir());
	d = opendir(dir);
	assert_non_null(d);
	while ((e = readdir(d))) {
		json_t *doc, *rec;
		size_t i;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s/expected.json", dir, e->d_name);
		doc = json_load_file(path, 0, NULL);
		if (!doc)
			continue;
		json_array_foreach(json_object_get(doc, "records"), i, rec)
		{
			struct wl_event ev;
			json_t *v = json_object_get(rec, "value");
			const char *hid = json_string_value(
			        json_object_get(json_object_get(rec, "headers"), "sfk.event_id"));
			if (!hid || !json_is_object(v) || !json_object_get(v, "envelope_version"))
				continue; /* a dead letter, not an envelope */
			if (loop_parse_event(v, &ev, err, sizeof err) != SFK_OK)
				fail_msg("%s: %s", e->d_name, err);
			assert_string_equal(ev.event_id, hid);
			assert_string_equal(ev.record_id,
			                    json_string_value(json_object_get(v, "record_id")));
			assert_int_equal(ev.commit_ts_ms, json_integer_value(json_object_get(
			                                          v, "commit_timestamp")));
			assert_ptr_equal(ev.fields, json_object_get(v, "fields"));
			seen++;
		}
		json_decref(doc);
	}
	closedir(d);
	assert_true(seen >= 3);
}

static json_t *good(void)
{
	return json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:{s:s}}", "envelope_version", 1,
	                 "event_id", "Lead:00Q00000015ftwOEAQ:7", "entity", "Lead", "change_type",
	                 "CREATE", "record_id", "00Q00000015ftwOEAQ", "commit_timestamp",
	                 (json_int_t)1795307014000, "fields", "Country", "Japan");
}

static void expect_problem(json_t *env, const char *path)
{
	struct wl_event ev;
	char err[256] = "";
	assert_int_equal(loop_parse_event(env, &ev, err, sizeof err), SFK_ERR_PARSE);
	if (!strstr(err, path))
		fail_msg("want %s in '%s'", path, err);
	json_decref(env);
}

static void test_broken_envelopes_refused(void **state)
{
	(void)state;
	json_t *e;
	struct wl_event ev;
	char err[256];

	e = good();
	assert_int_equal(loop_parse_event(e, &ev, err, sizeof err), SFK_OK);
	json_decref(e);

	e = good();
	json_object_del(e, "event_id");
	expect_problem(e, "$.event_id");
	e = good();
	json_object_set_new(e, "envelope_version", json_integer(2));
	expect_problem(e, "$.envelope_version");
	e = good();
	json_object_set_new(e, "fields", json_string("x"));
	expect_problem(e, "$.fields");
	e = good();
	json_object_set_new(e, "record_id", json_string("00Q' OR 1=1"));
	expect_problem(e, "$.record_id");
	e = good();
	json_object_set_new(e, "commit_timestamp", json_real(1.5));
	expect_problem(e, "$.commit_timestamp");
	expect_problem(json_array(), "$");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_golden_envelopes_parse),
	        cmocka_unit_test(test_broken_envelopes_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
