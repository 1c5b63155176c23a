/*
 * test_notify.c - notify.webhook's pure pieces: signatures and delivery ids
 * (vectors from Python's hmac/hashlib), the payload per target kind within
 * Slack's and Discord's limits, backoff and Retry-After parsing, the token
 * bucket, the circuit breaker's state machine, and the policy: the shipped
 * file validates, mistakes are listed with their paths, events match.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/notify_flow.c"
#include "../../workers/notify_format.c"
#include "../../workers/notify_policy.c"

static const char *src_dir(void)
{
	const char *s = getenv("SFK_SOURCE_DIR");
	return s ? s : ".";
}

static struct notify_policy *shipped(int resolve_env, json_t **problems)
{
	char pol[1024], sch[1024];
	snprintf(pol, sizeof pol, "%s/policies/notifications.json", src_dir());
	snprintf(sch, sizeof sch, "%s/schemas/notifications.schema.json", src_dir());
	return notify_policy_load(pol, sch, resolve_env, problems);
}

static json_t *schema(void)
{
	char sch[1024];
	json_error_t je;
	snprintf(sch, sizeof sch, "%s/schemas/notifications.schema.json", src_dir());
	json_t *s = json_load_file(sch, 0, &je);
	assert_non_null(s);
	return s;
}

/* ---- signing and ids ---------------------------------------------------- */

static void test_sign_vector(void **state)
{
	(void)state;
	char sig[NOTIFY_SIG_MAX];
	const char *body = "{\"a\":1}";
	assert_int_equal(
	        notify_sign("topsecret", "1700000000", body, strlen(body), sig, sizeof sig), 0);
	/* python3: hmac.new(b"topsecret", b"1700000000." + body, hashlib.sha256) */
	assert_string_equal(
	        sig, "sha256=6a939b0c71853d606167625a15168ee9188c6a511c773ef4f42d307f3849e50f");
	/* any change to timestamp, body or secret changes it */
	char other[NOTIFY_SIG_MAX];
	notify_sign("topsecret", "1700000001", body, strlen(body), other, sizeof other);
	assert_string_not_equal(sig, other);
	notify_sign("topsecreT", "1700000000", body, strlen(body), other, sizeof other);
	assert_string_not_equal(sig, other);
	assert_int_equal(notify_sign("s", "1", body, strlen(body), other, 10), -1);
}

static void test_delivery_id(void **state)
{
	(void)state;
	char a[NOTIFY_DID_MAX], b[NOTIFY_DID_MAX], c[NOTIFY_DID_MAX];
	assert_int_equal(notify_delivery_id("Lead:00Q:1", "salesops", a, sizeof a), 0);
	/* python3: hashlib.sha256(b"Lead:00Q:1\nsalesops").hexdigest()[:32] */
	assert_string_equal(a, "407159b1814d89621eefea46a04b9eec");
	notify_delivery_id("Lead:00Q:1", "salesops", b, sizeof b);
	assert_string_equal(a, b); /* stable */
	notify_delivery_id("Lead:00Q:1", "slack-sales", c, sizeof c);
	assert_string_not_equal(a, c); /* per target */
	assert_int_equal(notify_delivery_id("x", "y", c, 8), -1);
}

/* ---- payloads ------------------------------------------------------------ */

static json_t *lead_event(size_t nfields, size_t value_len)
{
	json_t *f = json_object();
	char *big = calloc(1, value_len + 1);
	memset(big, 'x', value_len);
	for (size_t i = 0; i < nfields; i++) {
		char k[32];
		snprintf(k, sizeof k, "Field%02zu__c", i);
		json_object_set_new(f, k, json_string(big));
	}
	free(big);
	json_object_set_new(f, "NumberOfEmployees", json_integer(1500));
	return json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:o}", "envelope_version", 1, "event_id",
	                 "Lead:00Q5e00000AbCdE:42", "entity", "Lead", "change_type", "CREATE",
	                 "record_id", "00Q5e00000AbCdE", "commit_timestamp",
	                 (json_int_t)1700000000000, "fields", f);
}

static json_t *render(enum notify_kind kind, json_t *env)
{
	struct notify_target t = {.kind = kind};
	json_t *subs = json_pack("[s]", "lead-created");
	size_t len = 0;
	snprintf(t.name, sizeof t.name, "t");
	char *s = notify_render(&t, env, subs, "0123456789abcdef0123456789abcdef", &len);
	json_decref(subs);
	assert_non_null(s);
	assert_int_equal(strlen(s), len);
	assert_true(len <= NOTIFY_BODY_MAX);
	json_error_t je;
	json_t *doc = json_loads(s, 0, &je);
	free(s);
	assert_non_null(doc);
	return doc;
}

static void test_webhook_body(void **state)
{
	(void)state;
	json_t *env = lead_event(2, 10), *d = render(NOTIFY_WEBHOOK, env);
	assert_string_equal(json_string_value(json_object_get(d, "delivery_id")),
	                    "0123456789abcdef0123456789abcdef");
	assert_string_equal(json_string_value(json_object_get(d, "event_id")),
	                    "Lead:00Q5e00000AbCdE:42");
	assert_string_equal(json_string_value(json_object_get(d, "kind")), "change");
	assert_string_equal(
	        json_string_value(json_array_get(json_object_get(d, "subscriptions"), 0)),
	        "lead-created");
	assert_true(json_equal(json_object_get(d, "fields"), json_object_get(env, "fields")));
	assert_int_equal(json_integer_value(json_object_get(d, "commit_timestamp")), 1700000000000);
	json_decref(d);
	json_decref(env);

	/* too large for NOTIFY_BODY_MAX: the fields go, the event is still told */
	env = lead_event(3, NOTIFY_BODY_MAX / 2);
	d = render(NOTIFY_WEBHOOK, env);
	assert_int_equal(json_object_size(json_object_get(d, "fields")), 0);
	assert_true(json_is_true(json_object_get(d, "fields_omitted")));
	json_decref(d);
	json_decref(env);
}

static void test_slack_body(void **state)
{
	(void)state;
	json_t *env = lead_event(30, 5000), *d = render(NOTIFY_SLACK, env);
	json_t *blocks = json_object_get(d, "blocks");
	assert_non_null(strstr(json_string_value(json_object_get(d, "text")), "00Q5e00000AbCdE"));
	assert_int_equal(json_array_size(blocks), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(blocks, 0), "type")),
	                    "header");
	json_t *h = json_object_get(json_array_get(blocks, 0), "text");
	assert_string_equal(json_string_value(json_object_get(h, "type")), "plain_text");
	assert_true(strlen(json_string_value(json_object_get(h, "text"))) <= 150);
	json_t *sec = json_object_get(json_array_get(blocks, 1), "text");
	assert_string_equal(json_string_value(json_object_get(sec, "type")), "mrkdwn");
	assert_true(strlen(json_string_value(json_object_get(sec, "text"))) <= 3000);
	json_decref(d);
	json_decref(env);
}

static void test_discord_body(void **state)
{
	(void)state;
	json_t *env = lead_event(40, 3000), *d = render(NOTIFY_DISCORD, env);
	json_t *e = json_array_get(json_object_get(d, "embeds"), 0), *f, *fields;
	size_t i;
	assert_true(strlen(json_string_value(json_object_get(d, "content"))) <= 2000);
	assert_non_null(e);
	assert_true(strlen(json_string_value(json_object_get(e, "title"))) <= 256);
	fields = json_object_get(e, "fields");
	assert_true(json_array_size(fields) > 0 && json_array_size(fields) <= 25);
	json_array_foreach(fields, i, f)
	{
		assert_true(strlen(json_string_value(json_object_get(f, "name"))) <= 256);
		assert_true(strlen(json_string_value(json_object_get(f, "value"))) <= 1024);
	}
	assert_string_equal(json_string_value(json_object_get(e, "timestamp")),
	                    "2023-11-14T22:13:20Z");
	assert_non_null(
	        strstr(json_string_value(json_object_get(json_object_get(e, "footer"), "text")),
	               "0123456789abcdef"));
	json_decref(d);
	json_decref(env);
}

/* ---- flow control --------------------------------------------------------- */

static void test_backoff(void **state)
{
	(void)state;
	for (unsigned r = 0; r < 200; r++) {
		long d1 = notify_backoff_ms(100, 1000, 1, r),
		     d3 = notify_backoff_ms(100, 1000, 3, r),
		     d9 = notify_backoff_ms(100, 1000, 9, r);
		assert_true(d1 >= 50 && d1 <= 100);
		assert_true(d3 >= 200 && d3 <= 400);
		assert_true(d9 >= 500 && d9 <= 1000); /* capped */
	}
	/* jitter actually spreads */
	assert_int_not_equal(notify_backoff_ms(1000, 1000, 1, 1),
	                     notify_backoff_ms(1000, 1000, 1, 2));
}

static void test_retry_after(void **state)
{
	(void)state;
	assert_int_equal(notify_retry_after_ms("120", 0), 120000);
	assert_int_equal(notify_retry_after_ms(" 2 ", 0), 2000);
	assert_int_equal(notify_retry_after_ms("0", 0), 0);
	/* Wed, 21 Oct 2015 07:28:00 GMT = 1445412480 */
	assert_int_equal(notify_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470), 10000);
	assert_int_equal(notify_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490), 0);
	assert_int_equal(notify_retry_after_ms("-5", 0), -1);
	assert_int_equal(notify_retry_after_ms("soon", 0), -1);
	assert_int_equal(notify_retry_after_ms("5s", 0), -1);
	assert_int_equal(notify_retry_after_ms("", 0), -1);
	assert_int_equal(notify_retry_after_ms(NULL, 0), -1);
	assert_int_equal(notify_retry_after_ms("99999999999", 0), -1);
}

static void test_bucket(void **state)
{
	(void)state;
	struct notify_bucket b;
	notify_bucket_init(&b, 2.0, 3, 1000); /* 2 per second, burst 3 */
	assert_int_equal(notify_bucket_take(&b, 1000), 1);
	assert_int_equal(notify_bucket_take(&b, 1000), 1);
	assert_int_equal(notify_bucket_take(&b, 1000), 1);
	assert_int_equal(notify_bucket_take(&b, 1000), 0);
	long w = notify_bucket_wait_ms(&b, 1000);
	assert_true(w >= 490 && w <= 510);
	assert_int_equal(notify_bucket_take(&b, 1400), 0);
	assert_int_equal(notify_bucket_take(&b, 1500), 1);
	/* a long pause refills to the burst, not beyond */
	int n = 0;
	while (notify_bucket_take(&b, 100000))
		n++;
	assert_int_equal(n, 3);
}

static void test_breaker(void **state)
{
	(void)state;
	struct notify_breaker b;
	notify_breaker_init(&b, 3, 1000);
	assert_int_equal(notify_breaker_allow(&b, 0), NOTIFY_BR_ALLOW);
	notify_breaker_result(&b, 0, 0);
	notify_breaker_result(&b, 0, 0);
	assert_int_equal(b.state, NOTIFY_BR_CLOSED);
	notify_breaker_result(&b, 1, 0); /* a success resets the count */
	notify_breaker_result(&b, 0, 10);
	notify_breaker_result(&b, 0, 10);
	assert_int_equal(b.state, NOTIFY_BR_CLOSED);
	notify_breaker_result(&b, 0, 10);
	assert_int_equal(b.state, NOTIFY_BR_OPEN);
	assert_string_equal(notify_breaker_str(b.state), "open");
	assert_int_equal(notify_breaker_allow(&b, 500), NOTIFY_BR_REJECT);
	/* after open_ms: one probe, the others wait for it */
	assert_int_equal(notify_breaker_allow(&b, 1010), NOTIFY_BR_ALLOW);
	assert_int_equal(b.state, NOTIFY_BR_HALF_OPEN);
	assert_int_equal(notify_breaker_allow(&b, 1011), NOTIFY_BR_WAIT);
	notify_breaker_result(&b, 0, 1100); /* the probe failed: open again */
	assert_int_equal(b.state, NOTIFY_BR_OPEN);
	assert_int_equal(notify_breaker_allow(&b, 2000), NOTIFY_BR_REJECT);
	assert_int_equal(notify_breaker_allow(&b, 2100), NOTIFY_BR_ALLOW);
	notify_breaker_result(&b, 1, 2200); /* the probe succeeded: closed */
	assert_int_equal(b.state, NOTIFY_BR_CLOSED);
	assert_int_equal(notify_breaker_allow(&b, 2201), NOTIFY_BR_ALLOW);
	assert_int_equal(notify_breaker_allow(&b, 2201), NOTIFY_BR_ALLOW);
}

/* ---- policy ----------------------------------------------------------------- */

static void test_policy_shipped(void **state)
{
	(void)state;
	json_t *problems = NULL;
	struct notify_policy *p = shipped(0, &problems);
	if (!p)
		fail_msg("shipped policy rejected: %s", json_dumps(problems, 0));
	assert_int_equal(p->ntargets, 3);
	int s = notify_policy_target(p, "slack-sales");
	assert_true(s >= 0);
	assert_int_equal(p->targets[s].kind, NOTIFY_SLACK);
	assert_string_equal(p->targets[s].url_env, "SFK_NOTIFY_SLACK_SALES_URL");
	assert_null(p->targets[s].url); /* not resolved */
	assert_int_equal(notify_policy_target(p, "nope"), -1);

	/* matching */
	size_t out[8];
	json_t *subs[8];
	json_t *env = lead_event(0, 0);
	size_t n = notify_policy_match(p, env, out, subs, 8);
	assert_int_equal(n, 2); /* lead-created -> salesops, enterprise-lead -> slack-sales */
	assert_string_equal(p->targets[out[0]].name, "salesops");
	assert_string_equal(json_string_value(json_array_get(subs[0], 0)), "lead-created");
	assert_string_equal(p->targets[out[1]].name, "slack-sales");
	for (size_t i = 0; i < n; i++)
		json_decref(subs[i]);
	json_object_set_new(json_object_get(env, "fields"), "NumberOfEmployees", json_integer(10));
	assert_int_equal(notify_policy_match(p, env, out, NULL, 8), 1);
	json_object_set_new(env, "change_type", json_string("UPDATE"));
	assert_int_equal(notify_policy_match(p, env, out, NULL, 8), 0); /* no Status in it */
	json_object_set_new(json_object_get(env, "fields"), "Status", json_string("Qualified"));
	assert_int_equal(notify_policy_match(p, env, out, NULL, 8), 1);
	json_object_set_new(env, "kind", json_string("sla_breach"));
	assert_int_equal(notify_policy_match(p, env, out, NULL, 8), 3);
	/* a breach naming a target in its channels reaches it even unsubscribed */
	json_object_set_new(json_object_get(env, "fields"), "channels",
	                    json_pack("[s, s]", "discord-ops", "#not-a-target"));
	assert_int_equal(notify_policy_match(p, env, out, subs, 8), 3);
	assert_string_equal(p->targets[out[2]].name, "discord-ops");
	assert_int_equal(json_array_size(subs[2]), 2); /* sla-breach + sla_watch.channels */
	for (size_t i = 0; i < 3; i++)
		json_decref(subs[i]);
	json_object_set_new(env, "kind", json_string("change"));
	json_object_set_new(env, "entity", json_string("Task"));
	assert_int_equal(notify_policy_match(p, env, out, NULL, 8), 0);
	json_decref(env);
	notify_policy_free(&p);
	assert_null(p);
}

static void test_policy_problems(void **state)
{
	(void)state;
	json_t *problems = NULL, *sch = schema();
	json_t *doc = json_loads(
	        "{\"version\":\"1.0\",\"targets\":{"
	        "\"a\":{\"kind\":\"webhook\",\"url\":\"https://x.example/h\"},"
	        "\"b\":{\"kind\":\"slack\",\"url\":\"https://hooks.slack.com/services/T/B/"
	        "secret\"}},"
	        "\"subscriptions\":[{\"name\":\"s\",\"entity\":\"Lead\",\"targets\":[\"a\"]}]}",
	        0, NULL);
	assert_null(notify_policy_new(doc, sch, 0, &problems));
	char *all = json_dumps(problems, 0);
	/* four mistakes, each with its path */
	assert_non_null(strstr(all, "$.version"));
	assert_non_null(strstr(all, "$.targets.a"));        /* webhook without secret_env */
	assert_non_null(strstr(all, "$.targets.b"));        /* a Slack URL in the file */
	assert_non_null(strstr(all, "$.subscriptions[0]")); /* change_types missing */
	free(all);
	json_decref(problems);
	json_decref(doc);

	/* what the schema cannot see: unknown target, duplicate names, env unset */
	doc = json_loads(
	        "{\"version\":\"1.0.0\",\"targets\":{"
	        "\"a\":{\"kind\":\"webhook\",\"url_env\":\"SFK_TEST_NOTIFY_UNSET_URL\","
	        "\"secret_env\":\"SFK_TEST_NOTIFY_UNSET_SECRET\"}},"
	        "\"subscriptions\":[{\"name\":\"s\",\"kind\":\"sla_breach\",\"targets\":"
	        "[\"a\",\"zz\"]},{\"name\":\"s\",\"kind\":\"sla_breach\",\"targets\":[\"a\"]}]}",
	        0, NULL);
	unsetenv("SFK_TEST_NOTIFY_UNSET_URL");
	unsetenv("SFK_TEST_NOTIFY_UNSET_SECRET");
	assert_null(notify_policy_new(doc, sch, 1, &problems));
	all = json_dumps(problems, 0);
	assert_int_equal(json_array_size(problems), 4);
	assert_non_null(strstr(all, "$.subscriptions[0].targets[1]: no target named \\\"zz\\\""));
	assert_non_null(strstr(all, "$.subscriptions[1].name"));
	assert_non_null(strstr(all, "SFK_TEST_NOTIFY_UNSET_URL is not set"));
	assert_non_null(strstr(all, "SFK_TEST_NOTIFY_UNSET_SECRET is not set"));
	free(all);
	json_decref(problems);

	/* resolved from the environment */
	setenv("SFK_TEST_NOTIFY_UNSET_URL", "http://127.0.0.1:9/h", 1);
	setenv("SFK_TEST_NOTIFY_UNSET_SECRET", "k", 1);
	json_array_remove(json_object_get(doc, "subscriptions"), 1);
	json_array_remove(json_object_get(json_array_get(json_object_get(doc, "subscriptions"), 0),
	                                  "targets"),
	                  1);
	struct notify_policy *p = notify_policy_new(doc, sch, 0, &problems);
	assert_non_null(p);
	assert_null(p->targets[0].url); /* not resolved yet */
	assert_int_equal(notify_target_resolve(&p->targets[0], &problems), 0);
	assert_null(problems);
	assert_string_equal(p->targets[0].url, "http://127.0.0.1:9/h");
	assert_string_equal(p->targets[0].secret, "k");
	assert_int_equal(p->targets[0].max_attempts, 5); /* defaults */
	assert_int_equal(p->targets[0].breaker_failures, 5);
	notify_policy_free(&p);
	json_decref(doc);
	json_decref(sch);
}

static void test_conditions(void **state)
{
	(void)state;
	json_t *f = json_pack("{s:i, s:s, s:{s:s}, s:n}", "NumberOfEmployees", 250, "Status", "New",
	                      "Address", "Country", "DE", "Phone");
	struct {
		const char *cond;
		int want;
	} cases[] = {
	        {"{\"field\":\"NumberOfEmployees\",\"gte\":250}", 1},
	        {"{\"field\":\"NumberOfEmployees\",\"lt\":250}", 0},
	        {"{\"field\":\"Address.Country\",\"in\":[\"DE\",\"FR\"]}", 1},
	        {"{\"field\":\"Status\",\"prefix\":\"Ne\"}", 1},
	        {"{\"field\":\"Phone\",\"exists\":true}", 1},
	        {"{\"field\":\"Email\",\"eq\":\"x\",\"if_absent\":true}", 1},
	        {"{\"not\":{\"field\":\"Status\",\"eq\":\"New\"}}", 0},
	        {"{\"all\":[{\"field\":\"Status\",\"eq\":\"New\"},{\"field\":\"Email\",\"exists\":"
	         "true}]}",
	         0},
	        {"{\"any\":[{\"field\":\"Status\",\"eq\":\"Old\"},{\"field\":\"Phone\",\"eq\":null}"
	         "]}",
	         1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *c = json_loads(cases[i].cond, 0, NULL);
		assert_non_null(c);
		if (notify_cond_eval(c, f) != cases[i].want)
			fail_msg("condition %s: want %d", cases[i].cond, cases[i].want);
		json_decref(c);
	}
	json_decref(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_sign_vector),     cmocka_unit_test(test_delivery_id),
	        cmocka_unit_test(test_webhook_body),    cmocka_unit_test(test_slack_body),
	        cmocka_unit_test(test_discord_body),    cmocka_unit_test(test_backoff),
	        cmocka_unit_test(test_retry_after),     cmocka_unit_test(test_bucket),
	        cmocka_unit_test(test_breaker),         cmocka_unit_test(test_policy_shipped),
	        cmocka_unit_test(test_policy_problems), cmocka_unit_test(test_conditions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
