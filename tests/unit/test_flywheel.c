/*
 * test_flywheel.c - flywheel records: what flywheel_build makes validates
 * against schemas/flywheel.schema.json; extra top-level fields, a wrong
 * object, a mismatched created or non-JSON content are reported; decision
 * ids are deterministic per (workload, event).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flywheel.h"

static struct jschema *schema(void)
{
	char path[1024], err[256];
	const char *src = getenv("SFK_SOURCE_DIR");
	struct jschema *s;
	snprintf(path, sizeof path, "%s/schemas/flywheel.schema.json", src ? src : ".");
	s = jschema_load(path, err, sizeof err);
	if (!s)
		fprintf(stderr, "%s\n", err);
	assert_non_null(s);
	return s;
}

static json_t *build(const char *lead)
{
	char did[FLYWHEEL_ID_MAX], err[256], ev[128];
	json_t *facts = json_pack("{s:s, s:s, s:i}", "Id", lead, "Country", "Germany",
	                          "NumberOfEmployees", 250);
	json_t *decision = json_pack("{s:s, s:s, s:f}", "segment", "MM", "owner_id",
	                             "00500000015ftwTAAQ", "confidence", 0.9);
	snprintf(ev, sizeof ev, "Lead:%s:42", lead);
	assert_int_equal(flywheel_decision_id("lead.route", ev, did, sizeof did), 0);
	struct flywheel_in in = {.timestamp = 1795307014,
	                         .client_id = "sfk-kpis",
	                         .workload_id = "lead.route",
	                         .model = "rules:routing_policy@1.0.0",
	                         .system_prompt = "You route leads.",
	                         .facts = facts,
	                         .decision = decision,
	                         .decision_id = did,
	                         .event_id = ev,
	                         .lead_id = lead,
	                         .policy_version = "1.0.0"};
	json_t *rec = flywheel_build(&in, err, sizeof err);
	json_decref(facts);
	json_decref(decision);
	assert_non_null(rec);
	return rec;
}

static void test_built_record_validates(void **state)
{
	(void)state;
	struct jschema *s = schema();
	json_t *rec = build("00Q00000015ftwOEAQ"), *errs = NULL;
	int n = flywheel_validate(s, rec, &errs);
	if (n) {
		char *t = json_dumps(errs, 0);
		fprintf(stderr, "%s\n", t);
		free(t);
	}
	assert_int_equal(n, 0);
	assert_null(errs);
	/* exactly the five top-level fields */
	assert_int_equal(json_object_size(rec), 5);
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(rec, "response"), "object")),
	        "chat.completion");
	json_decref(rec);
	jschema_free(s);
}

static void test_mistakes_reported(void **state)
{
	(void)state;
	struct jschema *s = schema();
	json_t *rec = build("00Q00000015ftwOEAQ"), *errs = NULL, *resp, *msg;
	json_object_set_new(rec, "extra", json_true());
	resp = json_object_get(rec, "response");
	json_object_set_new(resp, "created", json_integer(1));
	msg = json_object_get(json_array_get(json_object_get(resp, "choices"), 0), "message");
	json_object_set_new(msg, "content", json_string("not json"));
	assert_int_equal(flywheel_validate(s, rec, &errs), 3);
	char *t = json_dumps(errs, 0);
	assert_non_null(strstr(t, "extra"));
	assert_non_null(strstr(t, "$.response.created"));
	assert_non_null(strstr(t, "$.response.choices[0].message.content"));
	free(t);
	json_decref(errs);
	json_decref(rec);
	jschema_free(s);
}

static void test_prompts_unique_per_lead(void **state)
{
	(void)state;
	json_t *a = build("00Q00000015ftwOEAQ"), *b = build("00Q00000015ftwPEAQ");
	const char *ua = json_string_value(json_object_get(
	        json_array_get(json_object_get(json_object_get(a, "request"), "messages"), 1),
	        "content"));
	const char *ub = json_string_value(json_object_get(
	        json_array_get(json_object_get(json_object_get(b, "request"), "messages"), 1),
	        "content"));
	assert_string_not_equal(ua, ub);
	json_decref(a);
	json_decref(b);
}

static void test_decision_id(void **state)
{
	(void)state;
	char a[FLYWHEEL_ID_MAX], b[FLYWHEEL_ID_MAX], c[FLYWHEEL_ID_MAX];
	assert_int_equal(flywheel_decision_id("lead.route", "Lead:x:1", a, sizeof a), 0);
	assert_int_equal(flywheel_decision_id("lead.route", "Lead:x:1", b, sizeof b), 0);
	assert_int_equal(flywheel_decision_id("lead.route", "Lead:x:2", c, sizeof c), 0);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_int_equal(strncmp(a, "lead_route-", 11), 0);
	assert_int_equal(flywheel_decision_id("lead.route", "Lead:x:1", a, 10), -1);
	assert_int_equal(flywheel_decision_id("lead.route", "", a, sizeof a), -1);
}

static void test_missing_input_refused(void **state)
{
	(void)state;
	char err[256] = "";
	json_t *o = json_object();
	struct flywheel_in in = {.timestamp = 1,
	                         .client_id = "",
	                         .workload_id = "w",
	                         .model = "m",
	                         .system_prompt = "s",
	                         .facts = o,
	                         .decision = o,
	                         .decision_id = "d",
	                         .event_id = "e",
	                         .lead_id = "",
	                         .policy_version = ""};
	assert_null(flywheel_build(&in, err, sizeof err));
	assert_true(err[0] != '\0');
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_built_record_validates),
	        cmocka_unit_test(test_mistakes_reported),
	        cmocka_unit_test(test_prompts_unique_per_lead),
	        cmocka_unit_test(test_decision_id),
	        cmocka_unit_test(test_missing_input_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
