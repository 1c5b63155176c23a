/* Unit tests for bridge/normalize beyond the golden cases: echo matching,
 * exact big integers in the serialized record, gap resolution, bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bridge/normalize.c"
#include "jschema.h"

static int64_t clock_42(void *ctx)
{
	return *(int64_t *)ctx;
}

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	if (!j)
		fail_msg("bad test JSON: %s at %d", je.text, je.column);
	return j;
}

static json_t *lead_msg(const char *ctype, const char *ids, const char *origin, const char *cn)
{
	char text[2048];
	snprintf(text, sizeof text,
	         "{\"channel\":\"/data/LeadChangeEvent\",\"data\":{\"schema\":\"s1\",\"event\":{"
	         "\"replayId\":77},\"payload\":{\"Company\":\"Acme\",\"Name\":{\"LastName\":\"X\"},"
	         "\"ChangeEventHeader\":{\"entityName\":\"Lead\",\"changeType\":\"%s\","
	         "\"recordIds\":%s,\"commitTimestamp\":1,\"commitNumber\":%s,\"transactionKey\":"
	         "\"t\",\"sequenceNumber\":1,\"changeOrigin\":\"%s\",\"changedFields\":[]}}}}",
	         ctype, ids, cn, origin);
	return parse(text);
}

static void echo_matching(void **state)
{
	(void)state;
	assert_true(normalize_is_echo("com/salesforce/api/rest/66.0;client=sfk-kpis", "sfk-kpis"));
	assert_true(normalize_is_echo("com/salesforce/api/rest/66.0;client=sfk-kpis/", "sfk-kpis"));
	assert_true(normalize_is_echo("client=sfk-kpis;x=y", "sfk-kpis"));
	assert_false(
	        normalize_is_echo("com/salesforce/api/rest/66.0;client=sfk-kpis2", "sfk-kpis"));
	assert_false(
	        normalize_is_echo("com/salesforce/api/rest/66.0;client=xsfk-kpis", "sfk-kpis"));
	assert_false(
	        normalize_is_echo("com/salesforce/api/rest/66.0;myclient=sfk-kpis", "sfk-kpis"));
	assert_false(normalize_is_echo("", "sfk-kpis"));
	assert_false(normalize_is_echo("client=sfk-kpis", ""));
	assert_false(normalize_is_echo("client=sfk-kpis", NULL));
	assert_false(normalize_is_echo(NULL, "sfk-kpis"));
}

static void topic_names(void **state)
{
	(void)state;
	char t[64];
	assert_int_equal(normalize_topic(NULL, "EmailMessage", t, sizeof t), 0);
	assert_string_equal(t, "sfk.cdc.emailmessage");
	assert_int_equal(normalize_topic("Acme.", "Foo__c", t, sizeof t), 0);
	assert_string_equal(t, "Acme.cdc.foo__c"); /* the prefix keeps its case */
	assert_int_equal(normalize_topic("sfk.", "Bad Name", t, sizeof t), -1);
	assert_int_equal(normalize_topic("sfk.", "AVeryLongEntityNameIndeed", t, 16), -1);
}

/* The produced record text (what goes to Kafka) keeps the digits exactly. */
static void big_integers_exact_in_serialized_value(void **state)
{
	(void)state;
	int64_t now = 42;
	struct normalize_opts o = {.clock_ms = clock_42, .clock_ctx = &now};
	struct normalize_result r;
	char err[256];
	json_t *m = lead_msg("UPDATE", "[\"00Q5e00000AbCdEEAV\"]", "", "9223372036854775807");
	assert_int_equal(normalize_message(&o, m, &r, err, sizeof err), SFK_OK);
	assert_int_equal(r.n, 1);
	char *text = json_dumps(r.records[0].value, JSON_COMPACT);
	assert_non_null(strstr(text, "\"commit_number\":9223372036854775807"));
	assert_non_null(strstr(text, "\"ingested_at\":42"));
	free(text);
	normalize_result_free(&r);
	json_decref(m);
}

static void merged_records_do_not_share_fields(void **state)
{
	(void)state;
	struct normalize_opts o = {0};
	struct normalize_result r;
	char err[256];
	json_t *m = lead_msg("UPDATE", "[\"00Q5e00000AbCdEEAV\",\"00Q5e00000AbCdFEAV\"]", "", "5");
	assert_int_equal(normalize_message(&o, m, &r, err, sizeof err), SFK_OK);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.records[1].event_id, "Lead:00Q5e00000AbCdFEAV:77:1");
	json_object_set_new(json_object_get(r.records[0].value, "fields"), "Company",
	                    json_string("changed"));
	json_t *c1 = json_object_get(json_object_get(r.records[1].value, "fields"), "Company");
	assert_string_equal(json_string_value(c1), "Acme");
	/* the input message is untouched too */
	json_t *in =
	        json_object_get(json_object_get(json_object_get(m, "data"), "payload"), "Company");
	assert_string_equal(json_string_value(in), "Acme");
	assert_true(json_integer_value(json_object_get(r.records[1].value, "ingested_at")) >
	            1600000000000LL); /* wall clock when none is injected */
	normalize_result_free(&r);
	json_decref(m);
}

static void gap_resolution(void **state)
{
	(void)state;
	struct normalize_opts o = {0};
	struct normalize_result r;
	char err[256];
	json_t *m = lead_msg("GAP_CREATE", "[\"00Q5e00000AbCdEEAV\"]", "", "5");
	assert_int_equal(normalize_message(&o, m, &r, err, sizeof err), SFK_OK);
	assert_int_equal(r.action, NORMALIZE_REFETCH);
	assert_int_equal(r.n, 1);
	assert_true(r.records[0].refetch);
	json_t *env = r.records[0].value;
	assert_int_equal(json_object_size(json_object_get(env, "fields")), 0);
	json_t *rest = parse("{\"attributes\":{\"type\":\"Lead\",\"url\":\"/x\"},"
	                     "\"Id\":\"00Q5e00000AbCdEEAV\",\"Company\":\"Acme\"}");
	assert_int_equal(normalize_resolve_gap(env, rest, err, sizeof err), SFK_OK);
	json_t *fields = json_object_get(env, "fields");
	assert_null(json_object_get(fields, "attributes"));
	assert_string_equal(json_string_value(json_object_get(fields, "Company")), "Acme");
	assert_true(json_is_true(json_object_get(json_object_get(env, "flags"), "gap_resolved")));
	assert_non_null(json_object_get(rest, "attributes")); /* borrowed, untouched */
	json_decref(rest);
	normalize_result_free(&r);
	json_decref(m);

	/* A normal record is not a gap: refused. */
	m = lead_msg("CREATE", "[\"00Q5e00000AbCdEEAV\"]", "", "5");
	assert_int_equal(normalize_message(&o, m, &r, err, sizeof err), SFK_OK);
	rest = parse("{}");
	assert_int_equal(normalize_resolve_gap(r.records[0].value, rest, err, sizeof err),
	                 SFK_ERR_INVALID);
	json_decref(rest);
	normalize_result_free(&r);
	json_decref(m);
}

static void bad_inputs_are_permanent_errors(void **state)
{
	(void)state;
	struct normalize_opts o = {0};
	struct normalize_result r;
	char err[256];
	const char *cases[][2] = {
	        {"[1,2]", "$: expected an object, got array"},
	        {"{\"channel\":\"/meta/connect\",\"successful\":true}", "$.event: missing"},
	        {"{\"channel\":5,\"data\":{}}", "$.channel: expected a string, got integer"},
	        {"{\"channel\":\"/data/X\",\"data\":\"x\"}",
	         "$.data: expected an object, got string"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *m = parse(cases[i][0]);
		enum sfk_err rc = normalize_message(&o, m, &r, err, sizeof err);
		assert_int_equal(sfk_err_class(rc), SFK_CLASS_PERMANENT);
		assert_string_equal(err, cases[i][1]);
		assert_int_equal(r.n, 0);
		assert_null(r.records);
		json_decref(m);
	}
	assert_int_equal(normalize_message(&o, NULL, &r, err, sizeof err), SFK_ERR_PARSE);
	assert_string_equal(err, "$: expected an object, got nothing");

	json_t *m = lead_msg("CREATE", "[\"not-an-id\"]", "", "5");
	assert_int_equal(normalize_message(&o, m, &r, err, sizeof err), SFK_ERR_PARSE);
	assert_string_equal(err, "$.data.payload.ChangeEventHeader.recordIds[0]: \"not-an-id\" is "
	                         "not a record id");
	json_decref(m);
	m = lead_msg("CREATE", "[]", "", "5");
	assert_int_equal(normalize_message(&o, m, &r, err, sizeof err), SFK_ERR_PARSE);
	assert_string_equal(err, "$.data.payload.ChangeEventHeader.recordIds: empty");
	json_decref(m);
}

static void snapshot_envelope_follows_the_schema(void **state)
{
	(void)state;
	char err[256], path[4096];
	const char *d = getenv("SFK_SOURCE_DIR");
	if (!d || !*d)
		fail_msg("SFK_SOURCE_DIR is not set (run through ctest, or export the repo root)");
	snprintf(path, sizeof path, "%s/schemas/event.schema.json", d);
	struct jschema *s = jschema_load(path, err, sizeof err);
	assert_non_null(s);
	json_t *rest = parse("{\"attributes\":{\"type\":\"Lead\"},\"Id\":\"00Q5e00000AbCdEEAV\","
	                     "\"Company\":\"Acme\",\"Country\":\"France\"}");
	json_t *env = normalize_snapshot("Lead", rest, 1234, 1700000000000LL, err, sizeof err);
	assert_non_null(env);
	json_t *errs = NULL;
	if (jschema_validate(s, env, &errs) != 0) {
		char *t = json_dumps(errs, 0);
		fail_msg("snapshot envelope invalid: %s", t);
	}
	json_decref(errs);
	assert_string_equal(json_string_value(json_object_get(env, "change_type")), "SNAPSHOT");
	assert_string_equal(json_string_value(json_object_get(env, "event_id")),
	                    "Lead:00Q5e00000AbCdEEAV:1234");
	assert_true(json_is_true(json_object_get(json_object_get(env, "flags"), "resynced")));
	assert_null(json_object_get(json_object_get(env, "fields"), "attributes"));
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(env, "fields"), "Country")),
	        "France");
	json_decref(env);
	json_object_del(rest, "Id");
	assert_null(normalize_snapshot("Lead", rest, 1, 1, err, sizeof err));
	assert_string_equal(err, "snapshot: Lead record without a valid Id");
	assert_null(normalize_snapshot("Bad Name", rest, 1, 1, err, sizeof err));
	json_decref(rest);
	jschema_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(echo_matching),
	        cmocka_unit_test(topic_names),
	        cmocka_unit_test(big_integers_exact_in_serialized_value),
	        cmocka_unit_test(merged_records_do_not_share_fields),
	        cmocka_unit_test(gap_resolution),
	        cmocka_unit_test(bad_inputs_are_permanent_errors),
	        cmocka_unit_test(snapshot_envelope_follows_the_schema),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
