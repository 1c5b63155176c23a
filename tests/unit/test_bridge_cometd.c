/*
 * Unit tests for bridge/cometd's pure parts: the Bayeux requests we send and
 * the verdicts on replies, with real Salesforce replies from
 * docs/samples (copied under tests/golden/cometd/) and the documented error texts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bridge/cometd.c"

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	if (!j)
		fail_msg("bad test JSON: %s at %d", je.text, je.column);
	return j;
}

/* A recorded reply body from tests/golden/cometd/<name>. */
static char *recorded(const char *name, size_t *len)
{
	const char *d = getenv("SFK_SOURCE_DIR");
	char path[4096];
	if (!d || !*d)
		fail_msg("SFK_SOURCE_DIR is not set (run through ctest, or export the repo root)");
	snprintf(path, sizeof path, "%s/tests/golden/cometd/%s", d, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	char *buf = xmalloc(1 << 16);
	*len = fread(buf, 1, (1 << 16) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static json_t *recorded_msgs(const char *name)
{
	size_t len;
	char err[256];
	json_t *msgs = NULL;
	char *body = recorded(name, &len);
	if (cometd_parse_response(body, len, &msgs, err, sizeof err) != SFK_OK)
		fail_msg("%s: %s", name, err);
	free(body);
	return msgs;
}

static void handshake_request(void **state)
{
	(void)state;
	unsigned long seq = 0;
	json_t *r = cometd_req_handshake(&seq);
	assert_int_equal(json_array_size(r), 1);
	json_t *m = json_array_get(r, 0);
	assert_string_equal(json_string_value(json_object_get(m, "channel")), "/meta/handshake");
	assert_string_equal(json_string_value(json_object_get(m, "version")), "1.0");
	json_t *types = json_object_get(m, "supportedConnectionTypes");
	assert_int_equal(json_array_size(types), 1);
	assert_string_equal(json_string_value(json_array_get(types, 0)), "long-polling");
	assert_true(json_is_true(json_object_get(json_object_get(m, "ext"), "replay")));
	assert_string_equal(json_string_value(json_object_get(m, "id")), "1");
	json_decref(r);
	r = cometd_req_connect(&seq, "abc");
	m = json_array_get(r, 0);
	assert_string_equal(json_string_value(json_object_get(m, "id")), "2");
	assert_string_equal(json_string_value(json_object_get(m, "clientId")), "abc");
	assert_string_equal(json_string_value(json_object_get(m, "connectionType")),
	                    "long-polling");
	json_decref(r);
}

static void subscribe_replay_map_matches_subscriptions(void **state)
{
	(void)state;
	unsigned long seq = 10;
	const char *chans[] = {"/data/LeadChangeEvent", "/data/TaskChangeEvent"};
	int64_t replay[] = {9007199254740993LL, -1};
	json_t *r = cometd_req_subscribe(&seq, "cid", chans, replay, 2);
	assert_int_equal(json_array_size(r), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *m = json_array_get(r, i);
		assert_string_equal(json_string_value(json_object_get(m, "channel")),
		                    "/meta/subscribe");
		assert_string_equal(json_string_value(json_object_get(m, "subscription")),
		                    chans[i]);
		json_t *map = json_object_get(json_object_get(m, "ext"), "replay");
		assert_int_equal(json_object_size(map), 2);
		/* the key is the subscription, exactly */
		assert_true(json_is_integer(json_object_get(map, chans[i])));
	}
	char *text = json_dumps(r, JSON_COMPACT);
	assert_non_null(strstr(text, "\"/data/LeadChangeEvent\":9007199254740993"));
	assert_non_null(strstr(text, "\"/data/TaskChangeEvent\":-1"));
	assert_true(strlen(text) < COMETD_MAX_REQUEST_BYTES);
	free(text);
	json_decref(r);
}

static void recorded_handshake_is_ok(void **state)
{
	(void)state;
	json_t *msgs = recorded_msgs("handshake-response.kdcllc-issue-43.json");
	json_t *r = meta_reply(msgs, "/meta/handshake");
	assert_non_null(r);
	struct cometd_verdict v;
	cometd_verdict_of(r, &v);
	assert_int_equal(v.action, COMETD_ACT_OK);
	assert_string_equal(json_string_value(json_object_get(r, "clientId")),
	                    "1cyu4thyxh3fgv1nqwcvebt3o9x");
	json_decref(msgs);
}

static void recorded_unknown_client_rehandshakes(void **state)
{
	(void)state;
	json_t *msgs = recorded_msgs("connect-403-unknown-client.kdcllc-issue-43.json");
	struct cometd_verdict v;
	cometd_verdict_of(meta_reply(msgs, "/meta/connect"), &v);
	assert_int_equal(v.action, COMETD_ACT_HANDSHAKE);
	assert_int_equal(v.interval_ms, 0);
	assert_string_equal(v.reason, "403::Unknown client");
	json_decref(msgs);
}

static void recorded_invalid_replay_id_surfaces(void **state)
{
	(void)state;
	size_t len;
	char *body =
	        recorded("subscribe-400-invalid-replayid-full.skitlabs-bayeux-client.json", &len);
	/* The published sample is a bare object: our parser wants the array a
	 * server sends, and says so. */
	json_t *msgs = NULL;
	char err[256];
	assert_int_equal(cometd_parse_response(body, len, &msgs, err, sizeof err), SFK_ERR_PARSE);
	assert_string_equal(err, "response is a JSON object, not an array of messages");
	json_t *m = json_loadb(body, len, 0, NULL);
	assert_non_null(m);
	struct cometd_verdict v;
	cometd_verdict_of(m, &v);
	assert_int_equal(v.action, COMETD_ACT_REPLAY_INVALID);
	assert_int_equal(v.replay_id, 1);
	assert_string_equal(v.channel, "/data/ChangeEvents");
	json_decref(m);
	free(body);

	m = parse("{\"channel\":\"/meta/subscribe\",\"successful\":false,\"subscription\":"
	          "\"/data/LeadChangeEvent\",\"error\":\"400::The replayId {1553783} you provided "
	          "was invalid. Please provide a valid ID, -2 to replay all events, or -1 to "
	          "replay only new events.\"}");
	cometd_verdict_of(m, &v);
	assert_int_equal(v.action, COMETD_ACT_REPLAY_INVALID);
	assert_int_equal(v.replay_id, 1553783);
	json_decref(m);
}

struct verdict_case {
	const char *reply;
	enum cometd_action action;
	int slow;
};

static void documented_errors(void **state)
{
	(void)state;
	static const struct verdict_case cases[] = {
	        {"{\"channel\":\"/meta/connect\",\"successful\":true,\"advice\":{\"interval\":0,"
	         "\"timeout\":110000,\"reconnect\":\"retry\"}}",
	         COMETD_ACT_OK, 0},
	        {"{\"channel\":\"/meta/"
	         "connect\",\"successful\":false,\"error\":\"401::Authentication "
	         "invalid\",\"advice\":{\"reconnect\":\"none\"}}",
	         COMETD_ACT_REAUTH, 0},
	        {"{\"channel\":\"/meta/handshake\",\"successful\":false,\"error\":\"403::Handshake "
	         "denied\",\"ext\":{\"sfdc\":{\"failureReason\":\"401::Authentication invalid\"}},"
	         "\"advice\":{\"reconnect\":\"none\"}}",
	         COMETD_ACT_REAUTH, 0},
	        {"{\"channel\":\"/meta/handshake\",\"successful\":false,\"error\":\"403::Handshake "
	         "denied\",\"ext\":{\"sfdc\":{\"failureReason\":\"503::Server is too busy.  Please "
	         "try your request again later.\"}},\"advice\":{\"reconnect\":\"none\"}}",
	         COMETD_ACT_RETRY, 1},
	        {"{\"channel\":\"/meta/handshake\",\"successful\":false,\"error\":\"403::Handshake "
	         "denied\",\"ext\":{\"sfdc\":{\"failureReason\":\"403::Organization concurrent "
	         "user "
	         "limit exceeded\"}},\"advice\":{\"reconnect\":\"none\"}}",
	         COMETD_ACT_RETRY, 1},
	        {"{\"channel\":\"/meta/"
	         "connect\",\"successful\":false,\"error\":\"403::Organization "
	         "total events daily limit exceeded\"}",
	         COMETD_ACT_RETRY, 1},
	        {"{\"channel\":\"/meta/subscribe\",\"successful\":false,\"error\":\"400::The "
	         "replayId "
	         "for channel {/event/Contact_Change__e} wasn't found using the provided replay ID "
	         "map {{/event/Account_Change__e=-2}}. Ensure that the channel name you provided "
	         "in "
	         "the replay map is valid and matches the channel name used for subscribing.\"}",
	         COMETD_ACT_FATAL, 0},
	        {"{\"channel\":\"/meta/subscribe\",\"successful\":false,\"error\":\"403::User not "
	         "allowed to subscribe CDC without View All Data permissions\"}",
	         COMETD_ACT_FATAL, 0},
	        {"{\"channel\":\"/meta/subscribe\",\"successful\":false,\"error\":\"403::Client "
	         "has "
	         "not completed handshake\"}",
	         COMETD_ACT_HANDSHAKE, 0},
	        {"{\"channel\":\"/meta/connect\",\"successful\":false,\"error\":\"400::Client abc "
	         "has "
	         "established a session, but no BAYEUX_BROWSER cookie present\"}",
	         COMETD_ACT_HANDSHAKE, 0},
	        {"{\"channel\":\"/meta/"
	         "connect\",\"successful\":false,\"error\":\"400::Authenticated "
	         "user id does not match the session's user "
	         "id\",\"advice\":{\"reconnect\":\"none\"}}",
	         COMETD_ACT_FATAL, 0},
	        {"{\"channel\":\"/meta/connect\",\"successful\":false,\"error\":\"500::oops\"}",
	         COMETD_ACT_RETRY, 0},
	        {"{\"channel\":\"/meta/connect\",\"successful\":false,\"advice\":{\"reconnect\":"
	         "\"retry\"}}",
	         COMETD_ACT_RETRY, 0},
	        {"{\"channel\":\"/meta/handshake\",\"successful\":false,\"error\":\"400::Invalid "
	         "connection type {websocket}\",\"advice\":{\"reconnect\":\"none\"}}",
	         COMETD_ACT_FATAL, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *m = parse(cases[i].reply);
		struct cometd_verdict v;
		cometd_verdict_of(m, &v);
		if (v.action != cases[i].action || v.slow != cases[i].slow)
			fail_msg("case %zu: action %d slow %d, want %d %d (%s)", i, v.action,
			         v.slow, cases[i].action, cases[i].slow, v.reason);
		json_decref(m);
	}
	json_t *m = parse("{\"channel\":\"/meta/connect\",\"successful\":true,\"advice\":{"
	                  "\"interval\":2000,\"timeout\":110000,\"reconnect\":\"retry\"}}");
	struct cometd_verdict v;
	cometd_verdict_of(m, &v);
	assert_int_equal(v.timeout_ms, 110000);
	assert_int_equal(v.interval_ms, 2000);
	assert_string_equal(v.reason, "");
	json_decref(m);
}

static void defensive_parsing(void **state)
{
	(void)state;
	static const char *const bad[][2] = {
	        {"<html><body>Denied</body></html>",
	         "HTML response body (32 bytes), not Bayeux JSON"},
	        {"  \n", "empty response body"},
	        {"{\"error\":\"x\"}", "response is a JSON object, not an array of messages"},
	        {"[1]", "response message [0] is not an object with a channel"},
	        {"[{\"successful\":true}]", "response message [0] is not an object with a channel"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *msgs = (json_t *)1;
		char err[256];
		assert_int_equal(
		        cometd_parse_response(bad[i][0], strlen(bad[i][0]), &msgs, err, sizeof err),
		        SFK_ERR_PARSE);
		assert_null(msgs);
		assert_string_equal(err, bad[i][1]);
	}
	json_t *msgs = NULL;
	char err[256];
	assert_int_equal(cometd_parse_response("[{\"chan", 7, &msgs, err, sizeof err),
	                 SFK_ERR_PARSE);
	assert_non_null(strstr(err, "response is not JSON"));
}

static void backoff_is_bounded_and_jittered(void **state)
{
	(void)state;
	uint64_t rng = 42;
	long seen_max = 0;
	int distinct = 0;
	long prev = -1;
	for (unsigned a = 0; a < 40; a++) {
		long cap = 500L << (a < 20 ? a : 20);
		if (cap > 60000)
			cap = 60000;
		for (int k = 0; k < 50; k++) {
			long w = cometd_backoff_ms(a, 500, 60000, &rng);
			assert_true(w >= 0 && w <= cap);
			if (w > seen_max)
				seen_max = w;
			distinct += w != prev;
			prev = w;
		}
	}
	assert_true(seen_max > 30000); /* grows towards the max */
	assert_true(distinct > 1000);  /* jittered, not a fixed schedule */
	assert_int_equal(cometd_backoff_ms(3, 0, 1000, &rng), 0);
}

static int64_t never(void *ctx, const char *ch)
{
	(void)ctx, (void)ch;
	return -1;
}
static enum sfk_err no_batch(void *ctx, json_t *m)
{
	(void)ctx, (void)m;
	return SFK_OK;
}
static enum sfk_err no_token(void *ctx, int force, char *buf, size_t n, char *e, size_t el)
{
	(void)ctx, (void)force, (void)buf, (void)n, (void)e, (void)el;
	return SFK_ERR_GRANT;
}

static void config_checked(void **state)
{
	(void)state;
	char err[256];
	const char *chans[] = {"/data/LeadChangeEvent", "data/Bad"};
	struct cometd_token_provider tp = {.get = no_token};
	struct cometd_handler h = {.replay_from = never, .on_batch = no_batch};
	struct cometd_config cfg = {.url = "ftp://x", .channels = chans, .nchannels = 1};
	assert_null(cometd_new(&cfg, &tp, &h, err, sizeof err));
	assert_non_null(strstr(err, "http"));
	cfg.url = "https://sf.example/cometd/66.0";
	cfg.nchannels = 2;
	assert_null(cometd_new(&cfg, &tp, &h, err, sizeof err));
	assert_non_null(strstr(err, "channel 1"));
	cfg.nchannels = 0;
	assert_null(cometd_new(&cfg, &tp, &h, err, sizeof err));

	/* A fatal token error stops the run before anything is sent. */
	cfg.nchannels = 1;
	struct cometd *c = cometd_new(&cfg, &tp, &h, err, sizeof err);
	assert_non_null(c);
	assert_int_equal(cometd_run(c, err, sizeof err), COMETD_FATAL);
	assert_non_null(strstr(err, "token provider: grant"));
	assert_int_equal(cometd_forget_checkpoint(c, "/data/LeadChangeEvent"), 0);
	assert_int_equal(cometd_forget_checkpoint(c, "/data/Other"), -1);
	cometd_free(&c);
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(handshake_request),
	        cmocka_unit_test(subscribe_replay_map_matches_subscriptions),
	        cmocka_unit_test(recorded_handshake_is_ok),
	        cmocka_unit_test(recorded_unknown_client_rehandshakes),
	        cmocka_unit_test(recorded_invalid_replay_id_surfaces),
	        cmocka_unit_test(documented_errors),
	        cmocka_unit_test(defensive_parsing),
	        cmocka_unit_test(backoff_is_bounded_and_jittered),
	        cmocka_unit_test(config_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
