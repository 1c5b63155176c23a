/*
 * test_cometd.c - the Bayeux conversation a CometD client has with sfk-sim:
 * handshake/subscribe/connect replies and Salesforce's exact error texts,
 * replay from -2/-1/N, long-poll wake-up and timeout, batching, cookie and
 * unknown-client handling. Drives cometd_handle() without sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cometd.h"

struct fx {
	struct cdc *bus;
	struct cometd *srv;
	char client_id[64];
	char cookie[64];
};

static long g_timeout_ms = 300;
static long g_client_timeout_ms = 40000;
static size_t g_batch = 1000;

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct cdc_config cc;
	struct cometd_config sc;
	cdc_config_default(&cc);
	f->bus = cdc_new(&cc);
	cometd_config_default(&sc);
	sc.connect_timeout_ms = g_timeout_ms;
	sc.client_timeout_ms = g_client_timeout_ms;
	sc.max_batch_events = g_batch;
	f->srv = cometd_new(&sc, f->bus);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	cometd_free(&f->srv);
	cdc_free(&f->bus);
	free(f);
	g_timeout_ms = 300;
	g_client_timeout_ms = 40000;
	g_batch = 1000;
	return 0;
}

/* POST body with auth/cookie; returns the parsed reply array (new ref). */
static json_t *post_full(struct fx *f, const char *body, enum cometd_auth auth, const char *cookie,
                         int *status, char *set_cookie)
{
	struct cometd_request r = {0};
	struct cometd_reply out;
	r.version = "61.0";
	r.body = body;
	r.body_len = strlen(body);
	r.auth = auth;
	r.user_id = "0055g00000XyZabAAB";
	r.cookie = cookie;
	cometd_handle(f->srv, &r, &out);
	if (status)
		*status = out.status;
	if (set_cookie)
		snprintf(set_cookie, 128, "%s", out.set_cookie);
	json_error_t e;
	json_t *a = json_loadb(out.body, out.body_len, 0, &e);
	if (!a)
		fail_msg("reply is not JSON: %.*s", (int)out.body_len, out.body);
	free(out.body);
	return a;
}

static json_t *post(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *post(struct fx *f, const char *fmt, ...)
{
	char body[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	return post_full(f, body, COMETD_AUTH_OK, f->cookie, NULL, NULL);
}

/* The last message of a reply (the meta reply follows any events). */
static json_t *last(json_t *a)
{
	return json_array_get(a, json_array_size(a) - 1);
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void do_handshake(struct fx *f)
{
	char setc[128];
	json_t *a = post_full(f,
	                      "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\",\"id\":\"1\","
	                      "\"supportedConnectionTypes\":[\"long-polling\"],"
	                      "\"ext\":{\"replay\":true}}]",
	                      COMETD_AUTH_OK, NULL, NULL, setc);
	json_t *m = json_array_get(a, 0);
	assert_true(json_is_true(json_object_get(m, "successful")));
	snprintf(f->client_id, sizeof(f->client_id), "%s", str(m, "clientId"));
	/* "BAYEUX_BROWSER=<value>; Path=/; HttpOnly" */
	assert_int_equal(strncmp(setc, "BAYEUX_BROWSER=", 15), 0);
	size_t n = strcspn(setc + 15, ";");
	snprintf(f->cookie, sizeof(f->cookie), "%.*s", (int)n, setc + 15);
	json_decref(a);
}

static json_t *subscribe(struct fx *f, const char *channel, long long replay)
{
	return post(f,
	            "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\",\"id\":\"2\","
	            "\"subscription\":\"%s\",\"ext\":{\"replay\":{\"%s\":%lld}}}]",
	            f->client_id, channel, channel, replay);
}

static json_t *connect_msg(struct fx *f)
{
	return post(f,
	            "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\",\"id\":\"3\","
	            "\"connectionType\":\"long-polling\"}]",
	            f->client_id);
}

static void publish_leads(struct fx *f, int n)
{
	for (int i = 0; i < n; i++) {
		json_t *rec = json_pack("{s:s,s:s}", "LastName", "Doe", "Company", "Acme");
		struct org_change ch = {.type = "Lead",
		                        .change_type = "CREATE",
		                        .record_id = "00Q5g00000AbCdEEAZ",
		                        .changed_fields = json_array(),
		                        .record = rec,
		                        .commit_user = "0055g00000XyZabAAB",
		                        .commit_ts_ms = 1700000000000LL,
		                        .transaction_key = "k",
		                        .sequence_number = 1,
		                        .origin = ""};
		cdc_publish_txn(f->bus, &ch, 1);
		json_decref(ch.changed_fields);
		json_decref(rec);
	}
}

static size_t count_events(json_t *a, const char *channel)
{
	size_t i, n = 0;
	json_t *m;
	json_array_foreach(a, i, m)
	{
		if (str(m, "channel") && strcmp(str(m, "channel"), channel) == 0 &&
		    json_object_get(m, "data"))
			n++;
	}
	return n;
}

static void test_handshake_shape(void **state)
{
	struct fx *f = *state;
	char setc[128];
	int status;
	json_t *a =
	        post_full(f,
	                  "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\",\"id\":\"305\","
	                  "\"minimumVersion\":\"1.0\","
	                  "\"supportedConnectionTypes\":[\"long-polling\"]}]",
	                  COMETD_AUTH_OK, NULL, &status, setc);
	assert_int_equal(status, 200);
	json_t *m = json_array_get(a, 0);
	/* samples/handshake-response.kdcllc-issue-43.json */
	json_t *want =
	        json_pack("{s:{s:b,s:b},s:s,s:s,s:[s],s:s,s:s,s:s,s:b}", "ext", "replay", 1,
	                  "payload.format", 1, "minimumVersion", "1.0", "clientId",
	                  str(m, "clientId"), "supportedConnectionTypes", "long-polling", "channel",
	                  "/meta/handshake", "id", "305", "version", "1.0", "successful", 1);
	assert_true(json_equal(m, want));
	assert_int_equal(strlen(str(m, "clientId")), 27);
	assert_non_null(strstr(setc, "BAYEUX_BROWSER="));
	json_decref(want);
	json_decref(a);
}

static void test_handshake_denied(void **state)
{
	struct fx *f = *state;
	const char *hs = "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
	                 "\"supportedConnectionTypes\":[\"long-polling\"]}]";
	json_t *a = post_full(f, hs, COMETD_AUTH_INVALID, NULL, NULL, NULL);
	json_t *m = json_array_get(a, 0);
	assert_string_equal(str(m, "error"), "403::Handshake denied");
	assert_true(json_is_false(json_object_get(m, "successful")));
	assert_string_equal(
	        str(json_object_get(json_object_get(m, "ext"), "sfdc"), "failureReason"),
	        "401::Authentication invalid");
	assert_string_equal(str(json_object_get(m, "advice"), "reconnect"), "none");
	json_decref(a);
	a = post_full(f, hs, COMETD_AUTH_MISSING, NULL, NULL, NULL);
	assert_string_equal(
	        str(json_object_get(json_object_get(json_array_get(a, 0), "ext"), "sfdc"),
	            "failureReason"),
	        "401::Request requires authentication");
	json_decref(a);
	a = post_full(f,
	              "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\","
	              "\"supportedConnectionTypes\":[\"websocket\"]}]",
	              COMETD_AUTH_OK, NULL, NULL, NULL);
	assert_string_equal(str(json_array_get(a, 0), "error"),
	                    "400::Invalid connection type {websocket}");
	json_decref(a);
}

static void test_subscribe_errors(void **state)
{
	struct fx *f = *state;
	do_handshake(f);
	json_t *a = subscribe(f, "/data/FooChangeEvent", -1);
	assert_string_equal(str(json_array_get(a, 0), "error"),
	                    "400::The channel you requested to subscribe to doesn't exist "
	                    "{/data/FooChangeEvent}");
	json_decref(a);

	a = post(f,
	         "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"%s\",\"id\":\"x\","
	         "\"subscription\":\"/data/LeadChangeEvent\","
	         "\"ext\":{\"replay\":{\"/data/TaskChangeEvent\":-2}}}]",
	         f->client_id);
	assert_string_equal(str(json_array_get(a, 0), "error"),
	                    "400::The replayId for channel {/data/LeadChangeEvent} wasn't found "
	                    "using the provided replay ID map {{/data/TaskChangeEvent=-2}}. Ensure "
	                    "that the channel name you provided in the replay map is valid and "
	                    "matches the channel name used for subscribing.");
	json_decref(a);

	/* samples/subscribe-400-invalid-replayid-full: echoes subscription. */
	publish_leads(f, 1);
	long long bogus = (long long)cdc_last_replay_id(f->bus) + 1000;
	a = subscribe(f, "/data/ChangeEvents", bogus);
	json_t *m = json_array_get(a, 0);
	char want[256];
	snprintf(want, sizeof(want),
	         "400::The replayId {%lld} you provided was invalid. Please provide a valid ID, -2 "
	         "to replay all events, or -1 to replay only new events.",
	         bogus);
	assert_string_equal(str(m, "error"), want);
	assert_string_equal(str(m, "subscription"), "/data/ChangeEvents");
	assert_string_equal(str(m, "clientId"), f->client_id);
	assert_string_equal(str(m, "channel"), "/meta/subscribe");
	assert_true(json_is_false(json_object_get(m, "successful")));
	json_decref(a);
}

static void test_replay_and_connect(void **state)
{
	struct fx *f = *state;
	publish_leads(f, 3);
	int64_t third = cdc_last_replay_id(f->bus);
	do_handshake(f);
	json_t *a = subscribe(f, "/data/LeadChangeEvent", -2);
	assert_true(json_is_true(json_object_get(json_array_get(a, 0), "successful")));
	assert_string_equal(str(json_array_get(a, 0), "subscription"), "/data/LeadChangeEvent");
	json_decref(a);

	/* First connect: immediate, with the documented advice, and the backlog. */
	a = connect_msg(f);
	assert_int_equal(count_events(a, "/data/LeadChangeEvent"), 3);
	json_t *m = last(a);
	assert_string_equal(str(m, "channel"), "/meta/connect");
	assert_true(json_is_true(json_object_get(m, "successful")));
	json_t *adv = json_pack("{s:i,s:i,s:s}", "interval", 0, "timeout", (int)g_timeout_ms,
	                        "reconnect", "retry");
	assert_true(json_equal(json_object_get(m, "advice"), adv));
	json_decref(adv);
	int64_t rid = json_integer_value(json_object_get(
	        json_object_get(json_object_get(json_array_get(a, 2), "data"), "event"),
	        "replayId"));
	assert_int_equal(rid, third);
	json_decref(a);

	/* Nothing new: the connect is held for the timeout, then answered. */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	a = connect_msg(f);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= g_timeout_ms - 10);
	assert_int_equal(json_array_size(a), 1);
	assert_null(json_object_get(last(a), "advice"));
	json_decref(a);

	/* Re-subscribe from the second event: strictly after it. */
	int64_t cur = 0;
	struct cdc_buf b = {0};
	struct cdc_cursor c = {"/data/LeadChangeEvent", 0};
	cdc_collect(f->bus, &c, 1, 2, 1 << 20, &b);
	cur = c.after; /* replay id of the second event */
	cdc_buf_free(&b);
	a = subscribe(f, "/data/LeadChangeEvent", (long long)cur);
	json_decref(a);
	a = connect_msg(f);
	assert_int_equal(count_events(a, "/data/LeadChangeEvent"), 1);
	json_decref(a);
}

struct delayed {
	struct fx *f;
	int n;
};

static void *publish_later(void *arg)
{
	struct delayed *d = arg;
	struct timespec ts = {0, 50 * 1000000};
	nanosleep(&ts, NULL);
	publish_leads(d->f, d->n);
	return NULL;
}

static void test_long_poll_wakes(void **state)
{
	struct fx *f = *state;
	teardown(state); /* a fixture with a long hold */
	g_timeout_ms = 5000;
	setup(state);
	f = *state;
	do_handshake(f);
	json_decref(subscribe(f, "/data/ChangeEvents", -1));
	json_decref(connect_msg(f)); /* first: immediate */
	pthread_t th;
	struct delayed d = {f, 1};
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_create(&th, NULL, publish_later, &d);
	json_t *a = connect_msg(f);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_join(th, NULL);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_int_equal(count_events(a, "/data/ChangeEvents"), 1);
	assert_true(ms < 4000); /* woken by the event, not the timeout */
	json_decref(a);
}

static void test_batches(void **state)
{
	struct fx *f = *state;
	teardown(state);
	g_batch = 4;
	setup(state);
	f = *state;
	publish_leads(f, 10);
	do_handshake(f);
	json_decref(subscribe(f, "/data/ChangeEvents", -2));
	json_t *a = connect_msg(f);
	assert_int_equal(count_events(a, "/data/ChangeEvents"), 4);
	json_decref(a);
	a = connect_msg(f);
	assert_int_equal(count_events(a, "/data/ChangeEvents"), 4);
	json_decref(a);
	a = connect_msg(f);
	assert_int_equal(count_events(a, "/data/ChangeEvents"), 2);
	json_decref(a);
}

static void test_cookie_and_auth(void **state)
{
	struct fx *f = *state;
	char body[512];
	do_handshake(f);
	snprintf(body, sizeof(body),
	         "[{\"channel\":\"/meta/connect\",\"clientId\":\"%s\","
	         "\"connectionType\":\"long-polling\"}]",
	         f->client_id);
	json_t *a = post_full(f, body, COMETD_AUTH_OK, NULL, NULL, NULL);
	char want[200];
	snprintf(want, sizeof(want),
	         "400::Client %s has established a session, but no BAYEUX_BROWSER cookie present",
	         f->client_id);
	assert_string_equal(str(json_array_get(a, 0), "error"), want);
	json_decref(a);
	a = post_full(f, body, COMETD_AUTH_INVALID, f->cookie, NULL, NULL);
	json_t *m = json_array_get(a, 0);
	assert_string_equal(str(m, "error"), "401::Authentication invalid");
	assert_string_equal(str(json_object_get(m, "advice"), "reconnect"), "none");
	json_decref(a);
}

static void test_forget_unknown_client(void **state)
{
	struct fx *f = *state;
	do_handshake(f);
	json_decref(subscribe(f, "/data/LeadChangeEvent", -1));
	cometd_forget_all(f->srv);
	json_t *a = connect_msg(f);
	/* samples/connect-403-unknown-client.kdcllc-issue-43.json */
	json_t *want = json_pack("{s:{s:i,s:s},s:s,s:s,s:s,s:b}", "advice", "interval", 0,
	                         "reconnect", "handshake", "channel", "/meta/connect", "id", "3",
	                         "error", "403::Unknown client", "successful", 0);
	assert_true(json_equal(json_array_get(a, 0), want));
	json_decref(want);
	json_decref(a);
	/* Subscribing after being forgotten fails the same way. */
	a = subscribe(f, "/data/LeadChangeEvent", -1);
	assert_string_equal(str(json_array_get(a, 0), "error"), "403::Unknown client");
	json_decref(a);
}

static void test_client_timeout(void **state)
{
	struct fx *f = *state;
	teardown(state);
	g_client_timeout_ms = 100;
	setup(state);
	f = *state;
	do_handshake(f);
	json_decref(connect_msg(f));
	/* The client does not come back within the timeout. */
	struct timespec ts = {0, 250 * 1000000};
	nanosleep(&ts, NULL);
	json_t *a = connect_msg(f);
	assert_string_equal(str(json_array_get(a, 0), "error"), "403::Unknown client");
	json_decref(a);
}

static void test_unsubscribe_disconnect(void **state)
{
	struct fx *f = *state;
	do_handshake(f);
	json_decref(subscribe(f, "/data/LeadChangeEvent", -1));
	json_decref(connect_msg(f)); /* first: immediate */
	json_t *a = post(f,
	                 "[{\"channel\":\"/meta/unsubscribe\",\"clientId\":\"%s\","
	                 "\"subscription\":\"/data/LeadChangeEvent\"}]",
	                 f->client_id);
	assert_true(json_is_true(json_object_get(json_array_get(a, 0), "successful")));
	assert_string_equal(str(json_array_get(a, 0), "subscription"), "/data/LeadChangeEvent");
	json_decref(a);
	publish_leads(f, 2);
	a = connect_msg(f); /* held for the timeout: nothing subscribed */
	assert_int_equal(count_events(a, "/data/LeadChangeEvent"), 0);
	assert_true(json_is_true(json_object_get(last(a), "successful")));
	json_decref(a);
	a = post(f, "[{\"channel\":\"/meta/disconnect\",\"clientId\":\"%s\"}]", f->client_id);
	assert_true(json_is_true(json_object_get(json_array_get(a, 0), "successful")));
	json_decref(a);
	a = connect_msg(f);
	assert_string_equal(str(json_array_get(a, 0), "error"), "403::Unknown client");
	json_decref(a);
}

static void test_bad_requests(void **state)
{
	struct fx *f = *state;
	int status;
	json_t *a = post_full(f, "not json", COMETD_AUTH_OK, NULL, &status, NULL);
	assert_int_equal(status, 400);
	json_decref(a);
	struct cometd_request r = {.version = "", .body = "[]", .body_len = 2};
	struct cometd_reply out;
	cometd_handle(f->srv, &r, &out);
	assert_int_equal(out.status, 400);
	assert_non_null(strstr(out.body, "API version in the URI is mandatory"));
	free(out.body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_handshake_shape, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_handshake_denied, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_subscribe_errors, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_replay_and_connect, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_long_poll_wakes, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_cookie_and_auth, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_forget_unknown_client, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_client_timeout, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_unsubscribe_disconnect, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
