/*
 * Unit tests for bridge/webhook's pure core: the signature (against values
 * computed by the openssl CLI), the time window, header and size parsing,
 * and the body parser's shapes and refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bridge/fanout.c"
#include "../../bridge/normalize.c"
#include "../../bridge/publish.c"
#include "../../bridge/webhook.c"

#define SECRET "0123456789abcdef0123456789abcdef"
#define NOW    1700000000
#define LEAD   "00Q5e00000AbCdEEAV"

/* printf '%s' '1700000000.{"events":[]}' | openssl dgst -sha256 -hmac SECRET */
#define SIG_EVENTS_EMPTY "sha256=df29826f9365a4c39eb569c867ae31fb39108dee0a0b3e4bcf09f11a0ba43081"
/* printf '%s' '1700000000.' | openssl dgst -sha256 -hmac SECRET */
#define SIG_EMPTY_BODY "sha256=6d033471ca61b72c721ec8c18ea70b31ea9ee2c7aab01ae0fa01bc68c1579648"

static const struct webhook_policy pol = {
        .secret = SECRET, .secret_len = sizeof SECRET - 1, .max_body = 4096, .tolerance_s = 300};

/* A request signed with SECRET at timestamp ts. */
struct signed_req {
	char ts[32], sig[sizeof WEBHOOK_SIG_PREFIX + WEBHOOK_SIG_HEX_LEN];
	struct webhook_request rq;
};

static void sign_req(struct signed_req *s, long long ts, const char *delivery, const char *body)
{
	snprintf(s->ts, sizeof s->ts, "%lld", ts);
	assert_int_equal(webhook_sign(SECRET, strlen(SECRET), s->ts, body, strlen(body), s->sig),
	                 0);
	s->rq = (struct webhook_request){s->ts, s->sig, delivery, body, strlen(body)};
}

static int check(const struct webhook_request *rq, struct webhook_reject *why)
{
	return webhook_check(&pol, rq, NOW, why);
}

static void test_sign_matches_openssl(void **state)
{
	(void)state;
	char sig[sizeof WEBHOOK_SIG_PREFIX + WEBHOOK_SIG_HEX_LEN];
	const char *body = "{\"events\":[]}";
	assert_int_equal(
	        webhook_sign(SECRET, strlen(SECRET), "1700000000", body, strlen(body), sig), 0);
	assert_string_equal(sig, SIG_EVENTS_EMPTY);
	assert_int_equal(webhook_sign(SECRET, strlen(SECRET), "1700000000", "", 0, sig), 0);
	assert_string_equal(sig, SIG_EMPTY_BODY);
}

static void test_good_request(void **state)
{
	(void)state;
	struct webhook_reject why;
	struct webhook_request rq = {"1700000000", SIG_EVENTS_EMPTY, "d-1", "{\"events\":[]}", 13};
	assert_int_equal(check(&rq, &why), 0);
	/* Upper-case hex is the same signature. */
	char upper[sizeof SIG_EVENTS_EMPTY];
	snprintf(upper, sizeof upper, "%s", SIG_EVENTS_EMPTY);
	for (char *p = upper + 7; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	rq.signature = upper;
	assert_int_equal(check(&rq, &why), 0);
}

static void test_bad_signature(void **state)
{
	(void)state;
	struct webhook_reject why;
	char sig[sizeof SIG_EVENTS_EMPTY];
	struct webhook_request rq = {"1700000000", sig, "d-1", "{\"events\":[]}", 13};

	/* Last hex digit changed. */
	snprintf(sig, sizeof sig, "%s", SIG_EVENTS_EMPTY);
	sig[sizeof sig - 2] = sig[sizeof sig - 2] == '1' ? '2' : '1';
	assert_int_equal(check(&rq, &why), 401);
	assert_string_equal(why.error, "unauthorized");
	assert_string_equal(why.reason, "signature mismatch");

	/* Right signature, other body (one byte). */
	rq.signature = SIG_EVENTS_EMPTY;
	rq.body = "{\"events\":[ ]}";
	rq.body_len = 14;
	assert_int_equal(check(&rq, &why), 401);
	assert_string_equal(why.reason, "signature mismatch");

	/* Right body, signed by another secret. */
	struct webhook_policy other = pol;
	other.secret = "another-secret-of-enough-length!";
	other.secret_len = strlen(other.secret);
	rq.body = "{\"events\":[]}";
	rq.body_len = 13;
	assert_int_equal(webhook_check(&other, &rq, NOW, &why), 401);

	/* The timestamp is signed: the same signature with another second fails. */
	rq.timestamp = "1700000001";
	assert_int_equal(check(&rq, &why), 401);
	assert_string_equal(why.reason, "signature mismatch");
}

static void test_malformed_signature(void **state)
{
	(void)state;
	struct webhook_reject why;
	const char *bad[] = {
	        NULL,
	        "",
	        "df29826f9365a4c39eb569c867ae31fb39108dee0a0b3e4bcf09f11a0ba43081", /* no prefix */
	        "sha1=df29826f9365a4c39eb569c867ae31fb39108dee0a0b3e4bcf09f11a0ba43081",
	        "sha256=df29826f9365a4c39eb569c867ae31fb39108dee0a0b3e4bcf09f11a0ba4308", /* short
	                                                                                   */
	        "sha256=df29826f9365a4c39eb569c867ae31fb39108dee0a0b3e4bcf09f11a0ba430811",
	        "sha256=zf29826f9365a4c39eb569c867ae31fb39108dee0a0b3e4bcf09f11a0ba43081",
	        "sha256=df29826f9365a4c39eb569c867ae31fb39108dee0a0b3e4bcf09f11a0ba4308 ",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct webhook_request rq = {"1700000000", bad[i], "d-1", "{\"events\":[]}", 13};
		assert_int_equal(check(&rq, &why), 401);
		assert_non_null(strstr(why.reason, WEBHOOK_HDR_SIGNATURE));
	}
}

static void test_timestamp_window(void **state)
{
	(void)state;
	struct webhook_reject why;
	struct signed_req s;

	sign_req(&s, NOW - 300, "d-1", "{}");
	assert_int_equal(check(&s.rq, &why), 0); /* exactly the tolerance: accepted */
	sign_req(&s, NOW - 301, "d-1", "{}");
	assert_int_equal(check(&s.rq, &why), 401);
	assert_string_equal(why.reason, "timestamp is 301 s old, more than 300 s");
	sign_req(&s, NOW + 300, "d-1", "{}");
	assert_int_equal(check(&s.rq, &why), 0);
	sign_req(&s, NOW + 301, "d-1", "{}");
	assert_int_equal(check(&s.rq, &why), 401);
	assert_non_null(strstr(why.reason, "in the future"));
	sign_req(&s, 0, "d-1", "{}");
	assert_int_equal(check(&s.rq, &why), 401);

	/* Not plain decimal seconds: refused before the signature is looked at. */
	const char *bad[] = {NULL,
	                     "",
	                     "-1",
	                     "+1700000000",
	                     " 1700000000",
	                     "1700000000 ",
	                     "1700000000.5",
	                     "0x6553f100",
	                     "1700000000000000000000"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct webhook_request rq = {bad[i], SIG_EVENTS_EMPTY, "d-1", "{\"events\":[]}",
		                             13};
		assert_int_equal(check(&rq, &why), 401);
		assert_string_equal(why.error, "unauthorized");
		assert_non_null(strstr(why.reason, WEBHOOK_HDR_TIMESTAMP));
	}
}

static void test_size_cap(void **state)
{
	(void)state;
	struct webhook_reject why;
	char *body = malloc(pol.max_body + 2);
	memset(body, ' ', pol.max_body + 1);
	body[pol.max_body + 1] = '\0';
	struct signed_req s;

	sign_req(&s, NOW, "d-1", body); /* cap + 1 bytes */
	assert_int_equal(check(&s.rq, &why), 413);
	assert_string_equal(why.error, "payload_too_large");
	/* Checked first: even unsigned oversize bodies get 413, not 401. */
	s.rq.signature = NULL;
	assert_int_equal(check(&s.rq, &why), 413);
	body[pol.max_body] = '\0'; /* exactly the cap */
	sign_req(&s, NOW, "d-1", body);
	assert_int_equal(check(&s.rq, &why), 0);
	free(body);
}

static void test_delivery_id(void **state)
{
	(void)state;
	struct webhook_reject why;
	struct signed_req s;
	char longid[WEBHOOK_DELIVERY_MAX + 2];
	memset(longid, 'a', sizeof longid - 1);
	longid[sizeof longid - 1] = '\0';
	const char *bad[] = {NULL, "", "a b", "a/b", "é", "a\nb", longid};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		sign_req(&s, NOW, bad[i], "{}");
		assert_int_equal(check(&s.rq, &why), 400);
		assert_string_equal(why.error, "bad_request");
		assert_non_null(strstr(why.reason, WEBHOOK_HDR_DELIVERY));
	}
	longid[WEBHOOK_DELIVERY_MAX] = '\0'; /* the maximum length is fine */
	sign_req(&s, NOW, longid, "{}");
	assert_int_equal(check(&s.rq, &why), 0);
	sign_req(&s, NOW, "evt_01HF.x:2-3", "{}");
	assert_int_equal(check(&s.rq, &why), 0);
}

/* Body parser. */

static json_t *parse_ok(const char *body)
{
	struct webhook_reject why;
	json_t *m = webhook_parse_body(body, strlen(body), "d-1", 1700000000000, &why);
	if (!m)
		fail_msg("refused: %d %s", why.status, why.reason);
	return m;
}

static void expect_400(const char *body, const char *reason_part)
{
	struct webhook_reject why;
	json_t *m = webhook_parse_body(body, strlen(body), "d-1", 1700000000000, &why);
	if (m)
		fail_msg("accepted: %s", body);
	assert_int_equal(why.status, 400);
	assert_string_equal(why.error, "bad_request");
	if (!strstr(why.reason, reason_part))
		fail_msg("reason \"%s\" lacks \"%s\"", why.reason, reason_part);
}

/* Normalize a parsed message the way publish does: one record, checked. */
static json_t *envelope_of(json_t *msg, struct normalize_result *r)
{
	struct normalize_opts o = {0};
	char err[512];
	if (normalize_message(&o, msg, r, err, sizeof err) != SFK_OK)
		fail_msg("normalize: %s", err);
	assert_int_equal(r->n, 1);
	return r->records[0].value;
}

static void test_plain_change(void **state)
{
	(void)state;
	struct normalize_result r;
	json_t *m = parse_ok(
	        "{\"events\":[{\"entity\":\"Lead\",\"change_type\":\"CREATE\",\"record\":"
	        "{\"attributes\":{\"type\":\"Lead\"},\"Id\":\"" LEAD "\","
	        "\"LastName\":\"Lovelace\",\"Company\":\"Engines\"}},"
	        "{\"entity\":\"Lead\",\"change_type\":\"UPDATE\",\"record\":{\"Id\":\"" LEAD
	        "\",\"Status\":\"Working\"},\"changed_fields\":[\"Status\"],"
	        "\"commit_timestamp\":1699999999123,\"change_origin\":\"client=x\"}]}");
	assert_int_equal(json_array_size(m), 2);

	json_t *env = envelope_of(json_array_get(m, 0), &r);
	assert_string_equal(json_string_value(json_object_get(env, "entity")), "Lead");
	assert_string_equal(json_string_value(json_object_get(env, "change_type")), "CREATE");
	assert_string_equal(json_string_value(json_object_get(env, "record_id")), LEAD);
	assert_true(json_is_null(json_object_get(env, "channel")));
	json_t *f = json_object_get(env, "fields");
	assert_string_equal(json_string_value(json_object_get(f, "Company")), "Engines");
	assert_null(json_object_get(f, "attributes"));
	assert_null(json_object_get(f, "Id"));
	/* Defaults: the request's timestamp, synthetic negative replay id. */
	assert_int_equal(json_integer_value(json_object_get(env, "commit_timestamp")),
	                 1700000000000);
	int64_t rid0 = json_integer_value(json_object_get(env, "replay_id"));
	assert_true(rid0 <= -3);
	assert_int_equal(rid0, webhook_replay_id("d-1", 0));
	char eid[128];
	snprintf(eid, sizeof eid, "Lead:%s:%lld", LEAD, (long long)rid0);
	assert_string_equal(r.records[0].event_id, eid);
	normalize_result_free(&r);

	env = envelope_of(json_array_get(m, 1), &r);
	assert_int_equal(json_integer_value(json_object_get(env, "commit_timestamp")),
	                 1699999999123);
	assert_string_equal(
	        json_string_value(json_array_get(json_object_get(env, "changed_fields"), 0)),
	        "Status");
	assert_string_equal(json_string_value(json_object_get(env, "change_origin")), "client=x");
	int64_t rid1 = json_integer_value(json_object_get(env, "replay_id"));
	assert_true(rid1 <= -3 && rid1 != rid0);
	normalize_result_free(&r);
	json_decref(m);

	/* A redelivery of the same id gives the same event ids; another id others. */
	assert_int_equal(webhook_replay_id("d-1", 0), rid0);
	assert_true(webhook_replay_id("d-2", 0) != rid0);
}

static void test_cdc_message(void **state)
{
	(void)state;
	struct normalize_result r;
	const char *data =
	        "{\"schema\":\"s1\",\"payload\":{\"LastName\":\"X\",\"ChangeEventHeader\":{"
	        "\"entityName\":\"Lead\",\"changeType\":\"CREATE\",\"recordIds\":[\"" LEAD "\"],"
	        "\"commitTimestamp\":1,\"commitNumber\":9007199254740993,\"transactionKey\":\"t\","
	        "\"sequenceNumber\":1,\"changeOrigin\":\"\",\"changedFields\":[]}},"
	        "\"event\":{\"replayId\":77}}";
	char body[2048];
	snprintf(body, sizeof body, "[{\"channel\":\"/data/LeadChangeEvent\",\"data\":%s},%s]",
	         data, data);
	json_t *m = parse_ok(body);
	assert_int_equal(json_array_size(m), 2);
	/* The channel is dropped: publish never moves a CometD checkpoint. */
	assert_null(json_object_get(json_array_get(m, 0), "channel"));
	for (size_t i = 0; i < 2; i++) {
		json_t *env = envelope_of(json_array_get(m, i), &r);
		assert_int_equal(json_integer_value(json_object_get(env, "replay_id")), 77);
		assert_int_equal(json_integer_value(json_object_get(env, "commit_number")),
		                 9007199254740993LL);
		assert_true(json_is_null(json_object_get(env, "channel")));
		normalize_result_free(&r);
	}
	json_decref(m);
}

static void test_body_refusals(void **state)
{
	(void)state;
	expect_400("", "not JSON");
	expect_400("{\"events\":[", "not JSON");
	expect_400("{\"events\":[],\"events\":[]}", "not JSON"); /* duplicate key */
	expect_400("\"x\"", "not JSON");
	expect_400("{}", "body must be");
	expect_400("{\"events\":{}}", "body must be");
	expect_400("{\"events\":[],\"extra\":1}", "body must be");
	expect_400("[]", "0 events");
	expect_400("[1]", "$.events[0]: expected an object");
	expect_400("[{\"x\":1}]", "$.events[0]: neither");
	expect_400("[{\"entity\":\"Lead\",\"change_type\":\"CREATE\",\"record\":{\"Id\":\"" LEAD
	           "\"},\"typo\":1}]",
	           "$.events[0].typo: unknown member");
	expect_400("[{\"entity\":\"Lead\",\"change_type\":\"GAP_CREATE\",\"record\":{\"Id\":\"" LEAD
	           "\"}}]",
	           "$.events[0].change_type");
	expect_400("[{\"entity\":\"Lead\",\"change_type\":\"CREATE\",\"record\":{}}]",
	           "$.events[0].record");
	expect_400(
	        "[{\"entity\":\"Lead\",\"change_type\":\"CREATE\",\"record\":{\"Id\":\"nope\"}}]",
	        "recordIds[0]: \"nope\" is not a record id");
	expect_400("[{\"entity\":\"Le ad\",\"change_type\":\"CREATE\",\"record\":{\"Id\":\"" LEAD
	           "\"}}]",
	           "not an object API name");
	expect_400("[{\"entity\":\"Lead\",\"change_type\":\"CREATE\",\"record\":{\"Id\":\"" LEAD
	           "\"},\"commit_timestamp\":\"now\"}]",
	           "$.events[0].commit_timestamp");
	/* A CDC message is checked by the publish path's normalizer, path included. */
	expect_400("[{},{\"data\":{\"schema\":\"x\",\"payload\":{\"ChangeEventHeader\":{"
	           "\"entityName\":\"Lead\",\"changeType\":\"CREATE\",\"recordIds\":[\"" LEAD "\"],"
	           "\"commitTimestamp\":1,\"commitNumber\":\"x\",\"transactionKey\":\"t\","
	           "\"sequenceNumber\":1,\"changeOrigin\":\"\",\"changedFields\":[]}},"
	           "\"event\":{\"replayId\":1}}}]",
	           "$.events[0]: neither");
	expect_400(
	        "[{\"data\":{\"schema\":\"x\",\"payload\":{\"ChangeEventHeader\":{"
	        "\"entityName\":\"Lead\",\"changeType\":\"CREATE\",\"recordIds\":[\"" LEAD "\"],"
	        "\"commitTimestamp\":1,\"commitNumber\":\"x\",\"transactionKey\":\"t\","
	        "\"sequenceNumber\":1,\"changeOrigin\":\"\",\"changedFields\":[]}},"
	        "\"event\":{\"replayId\":1}}}]",
	        "$.events[0]: $.data.payload.ChangeEventHeader.commitNumber: expected an integer");

	/* Gap events and wildcard ids (REST re-fetch, entity resync) are the
	 * CometD loop's. */
	expect_400("[{\"data\":{\"schema\":\"x\",\"payload\":{\"ChangeEventHeader\":{"
	           "\"entityName\":\"Lead\",\"changeType\":\"GAP_CREATE\",\"recordIds\":[\"" LEAD
	           "\"],\"commitTimestamp\":1,\"commitNumber\":1,\"transactionKey\":\"t\","
	           "\"sequenceNumber\":1,\"changeOrigin\":\"\",\"changedFields\":[]}},"
	           "\"event\":{\"replayId\":1}}}]",
	           "$.events[0]: GAP_* events are not accepted");
	expect_400("[{\"schema\":\"x\",\"payload\":{\"ChangeEventHeader\":{"
	           "\"entityName\":\"Lead\",\"changeType\":\"UPDATE\",\"recordIds\":[\"00Q*\"],"
	           "\"commitTimestamp\":1,\"commitNumber\":1,\"transactionKey\":\"t\","
	           "\"sequenceNumber\":1,\"changeOrigin\":\"\",\"changedFields\":[]}},"
	           "\"event\":{\"replayId\":1}}]",
	           "$.events[0]: wildcard record id");

	/* Too many events. */
	size_t n = WEBHOOK_MAX_EVENTS + 1, len = 3 * n + 3;
	char *many = malloc(len);
	size_t o = 0;
	many[o++] = '[';
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(many + o, len - o, "%s{}", i ? "," : "");
	many[o++] = ']';
	many[o] = '\0';
	expect_400(many, "1001 events");
	free(many);
}

static void test_evaluate(void **state)
{
	(void)state;
	struct webhook_reject why;
	struct signed_req s;
	const char *body = "[{\"entity\":\"Task\",\"change_type\":\"DELETE\",\"record\":{\"Id\":"
	                   "\"00T5e00000AbCdEEAV\"}}]";
	sign_req(&s, NOW - 10, "d-9", body);
	json_t *m = webhook_evaluate(&pol, &s.rq, NOW, &why);
	assert_non_null(m);
	/* A plain change becomes a bare CDC data object (no channel). */
	json_t *ceh = json_object_get(json_array_get(m, 0), "payload");
	ceh = json_object_get(ceh, "ChangeEventHeader");
	assert_int_equal(json_integer_value(json_object_get(ceh, "commitTimestamp")),
	                 (json_int_t)(NOW - 10) * 1000);
	assert_string_equal(json_string_value(json_object_get(ceh, "transactionKey")),
	                    "webhook:d-9");
	json_decref(m);

	/* Authentication comes before the body: an unsigned bad body is 401. */
	s.rq.signature = SIG_EMPTY_BODY;
	s.rq.body = "not json";
	s.rq.body_len = 8;
	assert_null(webhook_evaluate(&pol, &s.rq, NOW, &why));
	assert_int_equal(why.status, 401);
	/* A signed bad body is 400. */
	sign_req(&s, NOW, "d-9", "not json");
	assert_null(webhook_evaluate(&pol, &s.rq, NOW, &why));
	assert_int_equal(why.status, 400);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_sign_matches_openssl),
	        cmocka_unit_test(test_good_request),
	        cmocka_unit_test(test_bad_signature),
	        cmocka_unit_test(test_malformed_signature),
	        cmocka_unit_test(test_timestamp_window),
	        cmocka_unit_test(test_size_cap),
	        cmocka_unit_test(test_delivery_id),
	        cmocka_unit_test(test_plain_change),
	        cmocka_unit_test(test_cdc_message),
	        cmocka_unit_test(test_body_refusals),
	        cmocka_unit_test(test_evaluate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
