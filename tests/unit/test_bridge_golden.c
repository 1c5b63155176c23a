/*
 * Golden tests for the bridge's pure cores, cases as data:
 *   tests/golden/normalize/<case>/input.json    one CometD message
 *                                 options.json  optional {client_id, topic_prefix, max_event_bytes}
 *                                 expected.json
 * {"action","entity","change_type","replay_id","echo",
 *                                                "records":[{"topic","key","refetch","headers","value"}]}
 *                                               or {"error":{"code","reason"}}
 *   tests/golden/fanout/<case>/input.json       one envelope
 *                              expected.json    {"targets":[{"workload","topic","key"}]}
 * Every produced envelope must also validate against schemas/event.schema.json;
 * fan-out uses the shipped policies/workloads.json. The ingest clock is fixed.
 * Prints one line per case. One case alone (per-case ctest registration):
 * SFK_GOLDEN_KIND=normalize|fanout SFK_GOLDEN_CASE=<name>; a case that does
 * not exist fails.
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

#include "../../bridge/normalize.c"
#include "../../bridge/fanout.c"

#define GOLDEN_CLOCK_MS  1700000000000LL
#define GOLDEN_CLIENT_ID "sfk-kpis"
#define GOLDEN_MAX_CASES 200

static int64_t fixed_clock(void *ctx)
{
	(void)ctx;
	return GOLDEN_CLOCK_MS;
}

static const char *src_dir(void)
{
	const char *d = getenv("SFK_SOURCE_DIR");
	if (!d || !*d)
		fail_msg("SFK_SOURCE_DIR is not set (run through ctest, or export the repo root)");
	return d;
}

static json_t *load(const char *path, int must)
{
	json_error_t je;
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!j && must)
		fail_msg("%s:%d:%d: %s", path, je.line, je.column, je.text);
	return j;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted case names under dir (each a directory with input.json). */
static size_t list_cases(const char *dir, char **names, size_t max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;
	if (!d)
		fail_msg("cannot open %s", dir);
	while ((e = readdir(d)) && n < max) {
		if (e->d_name[0] == '.')
			continue;
		names[n++] = xstrdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof *names, cmp_str);
	return n;
}

static void report(const char *kind, const char *name, json_t *want, json_t *got, int ok)
{
	if (ok) {
		printf("ok   %s/%s\n", kind, name);
		return;
	}
	char *w = json_dumps(want, JSON_INDENT(1) | JSON_SORT_KEYS);
	char *g = json_dumps(got, JSON_INDENT(1) | JSON_SORT_KEYS);
	printf("FAIL %s/%s\n--- expected\n%s\n--- got\n%s\n", kind, name, w ? w : "(none)",
	       g ? g : "(none)");
	free(w);
	free(g);
}

static int want_case(const char *name)
{
	const char *only = getenv("SFK_GOLDEN_CASE");
	return !only || !*only || strcmp(only, name) == 0;
}

/* 0 if this kind is filtered out by SFK_GOLDEN_KIND (the test is skipped). */
static int want_kind(const char *kind)
{
	const char *only = getenv("SFK_GOLDEN_KIND");
	const char *c = getenv("SFK_GOLDEN_CASE");
	if (c && *c && (!only || !*only))
		fail_msg("SFK_GOLDEN_CASE needs SFK_GOLDEN_KIND=normalize|fanout");
	return !only || !*only || strcmp(only, kind) == 0;
}

static json_t *run_normalize(json_t *input, json_t *options, struct jschema *envs, int *schema_ok)
{
	struct normalize_opts o = {
	        .topic_prefix = "sfk.",
	        .client_id = GOLDEN_CLIENT_ID,
	        .clock_ms = fixed_clock,
	};
	struct normalize_result r;
	char err[512];
	static const char *const actions[] = {"publish", "refetch", "resync"};

	if (json_is_string(json_object_get(options, "client_id")))
		o.client_id = json_string_value(json_object_get(options, "client_id"));
	if (json_is_string(json_object_get(options, "topic_prefix")))
		o.topic_prefix = json_string_value(json_object_get(options, "topic_prefix"));
	if (json_is_integer(json_object_get(options, "max_event_bytes")))
		o.max_event_bytes =
		        (size_t)json_integer_value(json_object_get(options, "max_event_bytes"));

	enum sfk_err rc = normalize_message(&o, input, &r, err, sizeof err);
	if (rc != SFK_OK)
		return json_pack("{s:{s:s, s:s, s:s}}", "error", "code", sfk_err_str(rc), "class",
		                 sfk_err_class_str(sfk_err_class(rc)), "reason", err);
	json_t *recs = json_array();
	for (size_t i = 0; i < r.n; i++) {
		const char *hn[NORMALIZE_NHDRS], *hv[NORMALIZE_NHDRS];
		json_t *errs = NULL;
		normalize_headers(&r.records[i], hn, hv);
		json_t *hdrs = json_object();
		for (int k = 0; k < NORMALIZE_NHDRS; k++)
			json_object_set_new(hdrs, hn[k], json_string(hv[k]));
		if (jschema_validate(envs, r.records[i].value, &errs) != 0) {
			char *e = json_dumps(errs, 0);
			printf("     envelope %zu violates event.schema.json: %s\n", i, e);
			free(e);
			*schema_ok = 0;
		}
		json_decref(errs);
		json_array_append_new(recs, json_pack("{s:s, s:s, s:b, s:o, s:O}", "topic",
		                                      r.records[i].topic, "key", r.records[i].key,
		                                      "refetch", r.records[i].refetch, "headers",
		                                      hdrs, "value", r.records[i].value));
	}
	json_t *res = json_pack("{s:s, s:s, s:s, s:I, s:b, s:o}", "action", actions[r.action],
	                        "entity", r.entity, "change_type", r.change_type, "replay_id",
	                        (json_int_t)r.replay_id, "echo", r.echo, "records", recs);
	normalize_result_free(&r);
	return res;
}

static void golden_normalize(void **state)
{
	(void)state;
	char dir[4096], path[4200], *names[GOLDEN_MAX_CASES];
	int failed = 0, ran = 0;

	if (!want_kind("normalize"))
		skip();
	snprintf(path, sizeof path, "%s/schemas/event.schema.json", src_dir());
	json_t *sd = load(path, 1);
	struct jschema *envs = jschema_new(sd);
	snprintf(dir, sizeof dir, "%s/tests/golden/normalize", src_dir());
	size_t n = list_cases(dir, names, GOLDEN_MAX_CASES);
	for (size_t i = 0; i < n; i++) {
		if (!want_case(names[i])) {
			free(names[i]);
			continue;
		}
		snprintf(path, sizeof path, "%s/%s/input.json", dir, names[i]);
		json_t *in = load(path, 1);
		snprintf(path, sizeof path, "%s/%s/options.json", dir, names[i]);
		json_t *opts = load(path, 0);
		snprintf(path, sizeof path, "%s/%s/expected.json", dir, names[i]);
		json_t *want = load(path, 1);
		int schema_ok = 1;
		json_t *got = run_normalize(in, opts, envs, &schema_ok);
		int ok = json_equal(want, got) && schema_ok;
		report("normalize", names[i], want, got, ok);
		failed += !ok;
		ran++;
		json_decref(in);
		json_decref(opts);
		json_decref(want);
		json_decref(got);
		free(names[i]);
	}
	jschema_free(envs);
	json_decref(sd);
	printf("normalize: %d cases, %d failed\n", ran, failed);
	assert_true(ran > 0); /* a filter that matches nothing is a mistake */
	assert_int_equal(failed, 0);
}

static void golden_fanout(void **state)
{
	(void)state;
	char dir[4096], path[4200], pol[4200], err[4096], *names[GOLDEN_MAX_CASES];
	int failed = 0, ran = 0;

	if (!want_kind("fanout"))
		skip();
	snprintf(path, sizeof path, "%s/schemas/workloads.schema.json", src_dir());
	snprintf(pol, sizeof pol, "%s/policies/workloads.json", src_dir());
	struct fanout *f = fanout_load(pol, path, "sfk.", err, sizeof err);
	if (!f)
		fail_msg("policies/workloads.json rejected:\n%s", err);
	snprintf(dir, sizeof dir, "%s/tests/golden/fanout", src_dir());
	size_t n = list_cases(dir, names, GOLDEN_MAX_CASES);
	for (size_t i = 0; i < n; i++) {
		if (!want_case(names[i])) {
			free(names[i]);
			continue;
		}
		snprintf(path, sizeof path, "%s/%s/input.json", dir, names[i]);
		json_t *in = load(path, 1);
		snprintf(path, sizeof path, "%s/%s/expected.json", dir, names[i]);
		json_t *want = load(path, 1);
		struct fanout_target t[16];
		size_t k = fanout_route(f, in, t, 16);
		json_t *targets = json_array();
		for (size_t j = 0; j < k; j++)
			json_array_append_new(targets, json_pack("{s:s, s:s, s:s}", "workload",
			                                         t[j].workload, "topic", t[j].topic,
			                                         "key", t[j].key));
		json_t *got = json_pack("{s:o}", "targets", targets);
		int ok = json_equal(want, got);
		report("fanout", names[i], want, got, ok);
		failed += !ok;
		ran++;
		json_decref(in);
		json_decref(want);
		json_decref(got);
		free(names[i]);
	}
	fanout_free(&f);
	printf("fanout: %d cases, %d failed\n", ran, failed);
	assert_true(ran > 0);
	assert_int_equal(failed, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(golden_normalize),
	        cmocka_unit_test(golden_fanout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
