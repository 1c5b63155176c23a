/* Unit tests for cli/report: quantiles, time and file-name parsing, the
 * metric core on hand-made records (earliest first response wins, latest
 * routing decision wins, per-segment SLA), CSV quoting and HTML escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../cli/report.c"
#include "../../cli/report_html.c"
#include "../../cli/util.c"

static void test_quantile(void **state)
{
	(void)state;
	double a[] = {4, 1, 3, 2};
	assert_float_equal(report_quantile(a, 4, 0.5), 2.5, 1e-9);
	double b[] = {10, 20, 30, 40, 50};
	assert_float_equal(report_quantile(b, 5, 0.95), 48.0, 1e-9); /* 40 + 0.8 * 10 */
	assert_float_equal(report_quantile(b, 5, 1.0), 50.0, 1e-9);
	double c[] = {7};
	assert_float_equal(report_quantile(c, 1, 0.95), 7.0, 1e-9);
}

static void test_parse_time(void **state)
{
	(void)state;
	assert_float_equal(cli_parse_time("1970-01-01T00:01:00Z"), 60, 1e-9);
	assert_float_equal(cli_parse_time("1970-01-01T01:00:00.500+0100"), 0.5, 1e-9);
	assert_float_equal(cli_parse_time("1970-01-01T00:00:00.000-01:30"), 5400, 1e-9);
	assert_true(isnan(cli_parse_time("yesterday")));
	assert_true(isnan(cli_parse_time(NULL)));
	assert_int_equal(day_start("1970-01-02"), 86400);
	assert_int_equal(day_start("2026-02-31"), -1);
	assert_int_equal(day_start("2026-1-01"), -1);
}

static void test_parse_name(void **state)
{
	(void)state;
	char day[11];
	bool gz;
	assert_int_equal(parse_name("lead.route_2026-11-20.jsonl", day, &gz), 0);
	assert_string_equal(day, "2026-11-20");
	assert_false(gz);
	assert_int_equal(parse_name("lead.route_2026-11-20.3.jsonl.gz", day, &gz), 0);
	assert_string_equal(day, "2026-11-20");
	assert_true(gz);
	assert_int_equal(parse_name("dashboard_2026-11-20.json", day, &gz), -1);
	assert_int_equal(parse_name("x_2026-13-01.jsonl", day, &gz), -1);
	assert_int_equal(parse_name(".jsonl", day, &gz), -1);
}

/* A flywheel record with facts and decision given as JSON text. */
static json_t *rec(long long ts, const char *wl, const char *lead, const char *facts,
                   const char *dec)
{
	return json_pack("{s:I, s:s, s:{s:[{s:s, s:s}, {s:s, s:s}], s:{s:s}}, s:{s:[{s:{s:s}}]}}",
	                 "timestamp", (json_int_t)ts, "workload_id", wl, "request", "messages",
	                 "role", "system", "content", "x", "role", "user", "content", facts,
	                 "metadata", "lead_id", lead, "response", "choices", "message", "content",
	                 dec);
}

static void test_compute(void **state)
{
	(void)state;
	json_t *r = json_array();
	/* lead A: ENT, routed twice (the later decision counts), TTFR 40 > its
	 * SLA 30 -> breach; two detections, the earlier response wins */
	json_array_append_new(r, rec(600, "lead.route", "A",
	                             "{\"CreatedDate\":\"1970-01-01T00:00:00Z\"}",
	                             "{\"segment\":\"ENT\",\"region\":\"NA\",\"owner_id\":\"u1\","
	                             "\"confidence\":0.5}"));
	json_array_append_new(r, rec(1200, "lead.route", "A",
	                             "{\"CreatedDate\":\"1970-01-01T00:00:00Z\"}",
	                             "{\"segment\":\"ENT\",\"region\":\"EMEA\",\"owner_id\":\"u2\","
	                             "\"confidence\":0.9}"));
	json_array_append_new(
	        r,
	        rec(9000, "lead.first_touch_detect", "A",
	            "{\"lead_created_at\":\"1970-01-01T00:00:00Z\"}",
	            "{\"first_response\":{\"at\":\"1970-01-01T02:00:00Z\"},\"ttfr_minutes\":120}"));
	json_array_append_new(
	        r,
	        rec(9100, "lead.first_touch_detect", "A",
	            "{\"lead_created_at\":\"1970-01-01T00:00:00Z\"}",
	            "{\"first_response\":{\"at\":\"1970-01-01T00:40:00Z\"},\"ttfr_minutes\":40}"));
	/* lead B: not routed (owner unchanged), SMB from the detection facts, TTFR 10 */
	json_array_append_new(r, rec(60, "lead.route", "B", "{}",
	                             "{\"owner_type\":\"unchanged\",\"segment\":\"SMB\"}"));
	json_array_append_new(
	        r, rec(700, "lead.first_touch_detect", "B",
	               "{\"segment\":\"SMB\",\"lead_created_at\":\"1970-01-02T00:00:00Z\"}",
	               "{\"first_response\":{\"at\":\"1970-01-02T00:10:00Z\",\"user\":\"u3\"},"
	               "\"ttfr_minutes\":10}"));
	/* templates: A suggested t1 and sent, B t2 not sent; a reply from A */
	json_array_append_new(r, rec(10, "outreach.template_suggest", "A", "{}",
	                             "{\"template_id\":\"t1\",\"intent\":\"i1\",\"send\":true,"
	                             "\"confidence\":0.8}"));
	json_array_append_new(r, rec(10, "outreach.template_suggest", "B", "{}",
	                             "{\"template_id\":\"t2\",\"intent\":\"i1\",\"send\":false}"));
	json_array_append_new(r, rec(20, "outreach.template_suggest", "A", "{}",
	                             "{\"outcome\":\"reply\",\"template_id\":\"t1\"}"));
	json_t *segs = json_pack("{s:i}", "ENT", 30);
	struct report_opts o = {.sla_default = 60, .sla_segments = segs, .from = "a", .to = "b"};
	json_t *d = report_compute(r, &o);

	json_t *t = json_object_get(d, "ttfr");
	assert_int_equal(json_integer_value(json_object_get(t, "leads")), 2);
	assert_float_equal(json_number_value(json_object_get(t, "median_minutes")), 25, 1e-9);
	assert_float_equal(json_number_value(json_object_get(t, "max_minutes")), 40, 1e-9);
	assert_int_equal(json_integer_value(json_object_get(t, "sla_breaches")), 1);
	json_t *b = json_object_get(t, "buckets");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(b, 1), "count")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(b, 3), "count")), 1);
	/* owners: A's routed owner u2, B's responder u3 */
	json_t *own = json_object_get(t, "by_owner");
	assert_int_equal(json_array_size(own), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(own, 0), "key")),
	                    "u2");
	assert_string_equal(json_string_value(json_object_get(json_array_get(own, 1), "key")),
	                    "u3");
	json_t *daily = json_object_get(t, "daily");
	assert_string_equal(json_string_value(json_object_get(json_array_get(daily, 0), "day")),
	                    "1970-01-01");
	assert_string_equal(json_string_value(json_object_get(json_array_get(daily, 1), "day")),
	                    "1970-01-02");

	json_t *rt = json_object_get(d, "routing");
	assert_int_equal(json_integer_value(json_object_get(rt, "leads_routed")), 1);
	assert_float_equal(
	        json_number_value(json_object_get(json_object_get(rt, "assignment_latency_minutes"),
	                                          "median_minutes")),
	        20, 1e-9);
	assert_string_equal(json_string_value(json_object_get(
	                            json_array_get(json_object_get(rt, "by_region"), 0), "key")),
	                    "EMEA");

	json_t *tp = json_object_get(d, "templates");
	assert_int_equal(json_integer_value(json_object_get(tp, "suggested")), 2);
	assert_int_equal(json_integer_value(json_object_get(tp, "sent")), 1);
	assert_float_equal(json_number_value(json_object_get(tp, "reply_rate")), 0.5, 1e-9);
	json_decref(d);
	json_decref(segs);
	json_decref(r);
}

static void test_no_replies_is_null(void **state)
{
	(void)state;
	json_t *r = json_array();
	json_array_append_new(r, rec(10, "outreach.template_suggest", "A", "{}",
	                             "{\"template_id\":\"t1\",\"intent\":\"i1\",\"send\":true}"));
	struct report_opts o = {.sla_default = 60};
	json_t *d = report_compute(r, &o);
	json_t *tp = json_object_get(d, "templates");
	assert_true(json_is_null(json_object_get(tp, "reply_rate")));
	assert_true(json_is_null(json_object_get(
	        json_array_get(json_object_get(tp, "by_template"), 0), "reply_rate")));
	assert_true(json_is_null(json_object_get(json_object_get(d, "ttfr"), "median_minutes")));
	json_decref(d);
	json_decref(r);
}

static char *capture(void (*fn)(FILE *, const char *), const char *arg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	fn(f, arg);
	fclose(f);
	return buf;
}

static void test_escaping(void **state)
{
	(void)state;
	char *s = capture(csv_str, "a,\"b\"");
	assert_string_equal(s, "\"a,\"\"b\"\"\"");
	free(s);
	s = capture(csv_str, "plain");
	assert_string_equal(s, "plain");
	free(s);
	s = capture(esc, "<script>&\"");
	assert_string_equal(s, "&lt;script&gt;&amp;&quot;");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_quantile),           cmocka_unit_test(test_parse_time),
	        cmocka_unit_test(test_parse_name),         cmocka_unit_test(test_compute),
	        cmocka_unit_test(test_no_replies_is_null), cmocka_unit_test(test_escaping),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
