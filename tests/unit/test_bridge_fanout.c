/* Unit tests for bridge/fanout: rule loading (every problem with its JSON
 * path) and condition semantics beyond the golden cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../bridge/fanout.c"

static const char *src_dir(void)
{
	const char *d = getenv("SFK_SOURCE_DIR");
	if (!d || !*d)
		fail_msg("SFK_SOURCE_DIR is not set (run through ctest, or export the repo root)");
	return d;
}

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	if (!j)
		fail_msg("bad test JSON: %s at %d", je.text, je.column);
	return j;
}

static json_t *workloads_schema(void)
{
	char path[4096];
	json_error_t je;
	snprintf(path, sizeof path, "%s/schemas/workloads.schema.json", src_dir());
	json_t *s = json_load_file(path, 0, &je);
	if (!s)
		fail_msg("%s: %s", path, je.text);
	return s;
}

static int has(json_t *problems, const char *needle)
{
	size_t i;
	json_t *p;
	json_array_foreach(problems, i, p) if (strstr(json_string_value(p), needle)) return 1;
	return 0;
}

static void shipped_policy_loads(void **state)
{
	(void)state;
	char pol[4096], sch[4096], err[2048];
	snprintf(pol, sizeof pol, "%s/policies/workloads.json", src_dir());
	snprintf(sch, sizeof sch, "%s/schemas/workloads.schema.json", src_dir());
	struct fanout *f = fanout_load(pol, sch, NULL, err, sizeof err);
	if (!f)
		fail_msg("%s", err);
	assert_string_equal(fanout_version(f), "1.0.0");
	assert_int_equal(fanout_workloads(f), 5);
	fanout_free(&f);
	assert_null(f);
	fanout_free(&f); /* NULL is fine */
}

static void every_problem_listed_with_path(void **state)
{
	(void)state;
	json_t *schema = workloads_schema();
	json_t *bad = parse(
	        "{\"version\":\"1.0\",\"workloads\":{"
	        " \"Lead Route\":{\"rules\":[{\"entity\":\"Lead\",\"change_types\":[\"CREATE\"],"
	        "   \"key\":{\"source\":\"record_id\"}}]},"
	        " \"lead.route\":{\"rules\":[{\"entity\":\"Lead\",\"change_types\":[\"GAP_"
	        "OVERFLOW\"],"
	        "   \"key\":{\"source\":\"field\",\"field\":\"WhoId\",\"prefix\":\"00\"}},"
	        "  {\"entity\":\"Task\",\"change_types\":[\"CREATE\"]}]}}}");
	json_t *problems = NULL;
	struct fanout *f = fanout_new(bad, schema, "sfk.", &problems);
	assert_null(f);
	assert_non_null(problems);
	char *dump = json_dumps(problems, 0);
	print_message("problems: %s\n", dump);
	free(dump);
	assert_true(has(problems, "$.version"));
	assert_true(has(problems, "$.workloads")); /* "Lead Route" name */
	assert_true(has(problems, "$.workloads.lead.route.rules[0].change_types[0]"));
	assert_true(has(problems, "$.workloads.lead.route.rules[0].key"));
	assert_true(has(problems, "$.workloads.lead.route.rules[1]"));
	assert_true(json_array_size(problems) >= 5);
	json_decref(problems);
	json_decref(bad);
	json_decref(schema);
}

static void unparsable_file_names_line(void **state)
{
	(void)state;
	char pol[] = "/tmp/sfk-fanout-XXXXXX", sch[4096], err[1024];
	int fd = mkstemp(pol);
	assert_true(fd >= 0);
	const char text[] = "{\"version\":\"1.0.0\",\n \"workloads\": {,}}\n";
	assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
	close(fd);
	snprintf(sch, sizeof sch, "%s/schemas/workloads.schema.json", src_dir());
	struct fanout *f = fanout_load(pol, sch, NULL, err, sizeof err);
	unlink(pol);
	assert_null(f);
	assert_non_null(strstr(err, pol));
	assert_non_null(strstr(err, ":2:"));
}

/* A one-workload policy with the given condition on Lead UPDATEs. */
static struct fanout *with_when(const char *when)
{
	json_t *schema = workloads_schema(), *problems = NULL;
	char text[2048];
	snprintf(
	        text, sizeof text,
	        "{\"version\":\"1.0.0\",\"workloads\":{\"w\":{\"rules\":[{\"entity\":\"Lead\","
	        "\"change_types\":[\"UPDATE\"],\"when\":%s,\"key\":{\"source\":\"record_id\"}}]}}}",
	        when);
	json_t *pol = parse(text);
	struct fanout *f = fanout_new(pol, schema, "x.", &problems);
	if (!f) {
		char *d = json_dumps(problems, 0);
		fail_msg("policy rejected: %s", d);
	}
	json_decref(pol);
	json_decref(schema);
	return f;
}

static size_t route_fields(struct fanout *f, const char *fields)
{
	char text[2048];
	struct fanout_target t[4];
	snprintf(text, sizeof text,
	         "{\"entity\":\"Lead\",\"change_type\":\"UPDATE\",\"record_id\":"
	         "\"00Q5e00000AbCdEEAV\","
	         "\"flags\":{\"echo\":false,\"gap\":false,\"gap_resolved\":false,\"resynced\":"
	         "false},"
	         "\"fields\":%s}",
	         fields);
	json_t *env = parse(text);
	size_t n = fanout_route(f, env, t, 4);
	if (n == 1) {
		assert_string_equal(t[0].topic, "x.wl.w");
		assert_string_equal(t[0].key, "00Q5e00000AbCdEEAV");
	}
	json_decref(env);
	return n;
}

static void conditions(void **state)
{
	(void)state;
	struct fanout *f = with_when("{\"field\":\"NumberOfEmployees\",\"in\":[10,250]}");
	assert_int_equal(route_fields(f, "{\"NumberOfEmployees\":250}"), 1);
	assert_int_equal(route_fields(f, "{\"NumberOfEmployees\":250.0}"), 1);
	assert_int_equal(route_fields(f, "{\"NumberOfEmployees\":251}"), 0);
	assert_int_equal(route_fields(f, "{}"), 0);
	fanout_free(&f);

	f = with_when("{\"not\":{\"field\":\"Address.Country\",\"prefix\":\"United\"}}");
	assert_int_equal(route_fields(f, "{\"Address\":{\"Country\":\"United Kingdom\"}}"), 0);
	assert_int_equal(route_fields(f, "{\"Address\":{\"Country\":\"France\"}}"), 1);
	assert_int_equal(route_fields(f, "{\"Address\":\"flat\"}"), 1);
	fanout_free(&f);

	f = with_when("{\"all\":[{\"field\":\"OwnerId\",\"exists\":true},"
	              "{\"field\":\"Status\",\"eq\":\"Open\",\"if_absent\":true}]}");
	assert_int_equal(route_fields(f, "{\"OwnerId\":null}"), 1);
	assert_int_equal(route_fields(f, "{\"OwnerId\":null,\"Status\":\"Open\"}"), 1);
	assert_int_equal(route_fields(f, "{\"OwnerId\":null,\"Status\":\"Closed\"}"), 0);
	assert_int_equal(route_fields(f, "{\"Status\":\"Open\"}"), 0);
	fanout_free(&f);
}

static void max_targets_respected(void **state)
{
	(void)state;
	char pol[4096], sch[4096], err[2048];
	snprintf(pol, sizeof pol, "%s/policies/workloads.json", src_dir());
	snprintf(sch, sizeof sch, "%s/schemas/workloads.schema.json", src_dir());
	struct fanout *f = fanout_load(pol, sch, NULL, err, sizeof err);
	assert_non_null(f);
	json_t *env = parse("{\"entity\":\"Lead\",\"change_type\":\"CREATE\","
	                    "\"record_id\":\"00Q5e00000AbCdEEAV\",\"flags\":{\"echo\":false},"
	                    "\"fields\":{}}");
	struct fanout_target t[3];
	assert_int_equal(fanout_route(f, env, t, 3), 3);
	assert_int_equal(fanout_route(f, env, t, 1), 1);
	assert_string_equal(t[0].workload, "lead.route");
	json_decref(env);
	fanout_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(shipped_policy_loads),
	        cmocka_unit_test(every_problem_listed_with_path),
	        cmocka_unit_test(unparsable_file_names_line),
	        cmocka_unit_test(conditions),
	        cmocka_unit_test(max_targets_respected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
