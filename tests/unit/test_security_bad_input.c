/*
 * Bad envelopes on a workload topic (workers/loop.c loop_parse_event): each
 * is refused - so the loop dead-letters it - with a reason naming the field.
 * Regression: an unknown change type used to pass and be silently ignored by
 * the workloads; it is now refused like any other envelope that breaks
 * schemas/event.schema.json. The synthetic SLA_BREACH (notify_relay.h) and
 * the resync's SNAPSHOT stay accepted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/loop.c"

#define LEAD "00Q5e00000AbCdEEAV"

/* A valid lead envelope with change_type ct and record_id id. */
static json_t *envelope(const char *ct, const char *id)
{
	return json_pack("{s:i, s:s, s:s, s:s, s:s, s:{s:s}, s:I}", "envelope_version", 1,
	                 "event_id", "Lead:" LEAD ":42", "entity", "Lead", "change_type", ct,
	                 "record_id", id, "fields", "Status", "Working", "commit_timestamp",
	                 (json_int_t)1700000000000);
}

/* loop_parse_event's verdict; errstr into err. */
static enum sfk_err parse(json_t *env, char *err, size_t len)
{
	struct wl_event ev;
	enum sfk_err rc = loop_parse_event(env, &ev, err, len);
	json_decref(env);
	return rc;
}

static void test_known_change_types_accepted(void **state)
{
	const char *ok[] = {"CREATE",     "UPDATE",     "DELETE",       "UNDELETE", "GAP_CREATE",
	                    "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "SNAPSHOT", "SLA_BREACH"};
	char err[256];
	(void)state;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (parse(envelope(ok[i], LEAD), err, sizeof err) != SFK_OK)
			fail_msg("%s refused: %s", ok[i], err);
}

static void test_unknown_change_type_refused(void **state)
{
	const char *bad[] = {"EXPLODE", "create", "GAP_OVERFLOW", "CREATE "};
	char err[256];
	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		assert_int_equal(parse(envelope(bad[i], LEAD), err, sizeof err), SFK_ERR_PARSE);
		assert_non_null(strstr(err, "$.change_type: unknown change type"));
	}
}

static void test_bad_ids_and_types_refused(void **state)
{
	char err[256];
	json_t *e;
	(void)state;
	/* Last three characters are not the checksum of the first fifteen. */
	assert_int_equal(parse(envelope("CREATE", "00Q5e00000AbCdEAAA"), err, sizeof err),
	                 SFK_ERR_PARSE);
	assert_non_null(strstr(err, "$.record_id"));
	e = envelope("CREATE", LEAD);
	json_object_set_new(e, "fields", json_string("x"));
	assert_int_equal(parse(e, err, sizeof err), SFK_ERR_PARSE);
	assert_non_null(strstr(err, "$.fields"));
	e = envelope("CREATE", LEAD);
	json_object_set_new(e, "commit_timestamp", json_string("1700000000000"));
	assert_int_equal(parse(e, err, sizeof err), SFK_ERR_PARSE);
	assert_non_null(strstr(err, "$.commit_timestamp"));
	e = envelope("CREATE", LEAD);
	json_object_del(e, "event_id");
	assert_int_equal(parse(e, err, sizeof err), SFK_ERR_PARSE);
	assert_non_null(strstr(err, "$.event_id"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_known_change_types_accepted),
	        cmocka_unit_test(test_unknown_change_type_refused),
	        cmocka_unit_test(test_bad_ids_and_types_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
