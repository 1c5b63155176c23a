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
/* The resync / poll scan's pure parts (SOQL, cursors, envelopes). */
#include "../../bridge/fanout.c"
#include "../../bridge/normalize.c"
#include "../../bridge/resync.c"
#include "jschema.h"

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

/* An invalid replay id reported without a subscription (on /meta/connect)
 * is pinned on the channel that subscribed from it; if none did, it is
 * fatal rather than a loop. */
static void invalid_replay_without_channel(void **state)
{
	(void)state;
	char err[512];
	const char *chans[] = {"/data/LeadChangeEvent", "/data/TaskChangeEvent"};
	struct cometd_token_provider tp = {.get = no_token};
	struct cometd_handler h = {.replay_from = never, .on_batch = no_batch};
	struct cometd_config cfg = {
	        .url = "https://sf.example/cometd/66.0", .channels = chans, .nchannels = 2};
	struct cometd *c = cometd_new(&cfg, &tp, &h, err, sizeof err);
	assert_non_null(c);
	c->chans[0].subscribed_from = 7;
	c->chans[1].subscribed_from = 82;
	json_t *m = parse("{\"channel\":\"/meta/connect\",\"successful\":false,\"error\":\"400::"
	                  "The replayId {82} you provided was invalid.  Please provide a valid ID, "
	                  "-2 to replay all events, or -1 to replay only new events.\"}");
	struct cometd_verdict v;
	enum cometd_outcome out = COMETD_STOPPED;
	cometd_verdict_of(m, &v);
	assert_int_equal(act(c, "connect", &v, &out, err, sizeof err), 1);
	assert_int_equal(out, COMETD_REPLAY_INVALID);
	int64_t bad = 0;
	assert_string_equal(cometd_replay_error(c, &bad), "/data/TaskChangeEvent");
	assert_int_equal(bad, 82);

	c->chans[1].subscribed_from = 83;
	c->replay_err_chan[0] = '\0';
	assert_int_equal(act(c, "connect", &v, &out, err, sizeof err), 1);
	assert_int_equal(out, COMETD_FATAL);
	assert_non_null(strstr(err, "no channel subscribed from that id"));
	json_decref(m);
	cometd_free(&c);
}

/* ---- --drive: a small CometD subscriber for tests/it/it_bridge_cometd.sh ----
 *
 *   test_bridge_cometd --drive CHANNEL[,CHANNEL] [--replay N] [--max-events N]
 *                      [--fail-batch-once] [--timeout-s S]
 * Authenticates with the JWT bearer flow (SF_* from tests/stack/up --sim),
 * subscribes from --replay (default -1) and prints one line per event:
 *   event <channel> <replayId> <entity> <changeType> <recordId>
 * then "stats ..." and "outcome <stopped|replay_invalid|fatal> [replay_id] <reason>".
 * Stops after --max-events, on SIGTERM/SIGINT or after --timeout-s.
 */
#include <signal.h>
#include <unistd.h>

#include "sf_auth.h"

static volatile sig_atomic_t drive_stop;
static void on_signal(int sig)
{
	(void)sig;
	drive_stop = 1;
}

struct drive {
	struct sf_auth *auth;
	char *instance_url;
	int64_t replay;
	long max_events, seen;
	int fail_batch_once;
};

static const char *env_need(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v) {
		fprintf(stderr, "drive: %s is not set (eval \"$(tests/stack/up --sim)\")\n", name);
		exit(2);
	}
	return v;
}

static enum sfk_err drive_token(void *ctx, int force_new, char *buf, size_t size, char *errstr,
                                size_t errlen)
{
	struct drive *d = ctx;
	struct sf_auth_token t = {0};
	struct sf_error e;
	memset(&e, 0, sizeof e);
	(void)force_new; /* every call mints: the sim's tokens are cheap */
	enum sfk_err rc = sf_auth_mint(d->auth, &t, &e);
	if (rc != SFK_OK) {
		snprintf(errstr, errlen, "mint failed (%s)", sfk_err_str(rc));
		sf_auth_token_clear(&t);
		return rc;
	}
	snprintf(buf, size, "%s", t.access_token);
	if (!d->instance_url)
		d->instance_url = xstrdup(t.instance_url);
	sf_auth_token_clear(&t);
	return SFK_OK;
}

static int64_t drive_replay_from(void *ctx, const char *channel)
{
	(void)channel;
	return ((struct drive *)ctx)->replay;
}

static enum sfk_err drive_batch(void *ctx, json_t *msgs)
{
	struct drive *d = ctx;
	size_t i;
	json_t *m;
	if (d->fail_batch_once) {
		d->fail_batch_once = 0;
		printf("batch-failed %zu\n", json_array_size(msgs));
		fflush(stdout);
		return SFK_ERR_KAFKA; /* as if the Kafka transaction had failed */
	}
	json_array_foreach(msgs, i, m)
	{
		json_t *data = json_object_get(m, "data");
		json_t *h = json_object_get(json_object_get(data, "payload"), "ChangeEventHeader");
		json_int_t rid = json_integer_value(
		        json_object_get(json_object_get(data, "event"), "replayId"));
		printf("event %s %lld %s %s %s\n", json_string_value(json_object_get(m, "channel")),
		       (long long)rid, json_string_value(json_object_get(h, "entityName")),
		       json_string_value(json_object_get(h, "changeType")),
		       json_string_value(json_array_get(json_object_get(h, "recordIds"), 0)));
		/* what a bridge does once the batch is committed */
		d->replay = rid;
		d->seen++;
	}
	fflush(stdout);
	if (d->max_events > 0 && d->seen >= d->max_events)
		drive_stop = 1;
	return SFK_OK;
}

static int drive(int argc, char **argv)
{
	struct drive d = {.replay = -1};
	char err[1024], url[1024];
	const char *chans[COMETD_MAX_CHANNELS];
	size_t nch = 0;
	long timeout_s = 60;
	char *list = xstrdup(argc > 2 ? argv[2] : "/data/LeadChangeEvent");

	for (char *p = list; p && *p && nch < COMETD_MAX_CHANNELS;) {
		chans[nch++] = p;
		p = strchr(p, ',');
		if (p)
			*p++ = '\0';
	}
	for (int i = 3; i < argc; i++) {
		char *end = NULL;
		if (strcmp(argv[i], "--replay") == 0 && i + 1 < argc)
			d.replay = strtoll(argv[++i], &end, 10);
		else if (strcmp(argv[i], "--max-events") == 0 && i + 1 < argc)
			d.max_events = strtol(argv[++i], &end, 10);
		else if (strcmp(argv[i], "--timeout-s") == 0 && i + 1 < argc)
			timeout_s = strtol(argv[++i], &end, 10);
		else if (strcmp(argv[i], "--fail-batch-once") == 0)
			d.fail_batch_once = 1;
		else {
			fprintf(stderr, "drive: unknown argument %s\n", argv[i]);
			return 2;
		}
		if (end && *end) {
			fprintf(stderr, "drive: bad number %s\n", argv[i]);
			return 2;
		}
	}
	log_init("it-bridge-cometd");
	struct sf_auth_conf ac = {
	        .login_url = env_need("SF_LOGIN_URL"),
	        .token_url = env_need("SF_TOKEN_URL"),
	        .client_id = env_need("SF_CLIENT_ID"),
	        .username = env_need("SF_USERNAME"),
	        .key_path = env_need("SF_PRIVATE_KEY_PATH"),
	        .ca_file = env_need("SF_CA_FILE"),
	};
	if (!(d.auth = sf_auth_new(&ac, err, sizeof err))) {
		fprintf(stderr, "drive: %s\n", err);
		return 2;
	}
	/* The instance URL comes with the first token. */
	char tok[COMETD_TOKEN_MAX];
	if (drive_token(&d, 0, tok, sizeof tok, err, sizeof err) != SFK_OK) {
		fprintf(stderr, "drive: %s\n", err);
		return 2;
	}
	memset(tok, 0, sizeof tok);
	snprintf(url, sizeof url, "%s/cometd/%s", d.instance_url, env_need("SF_API_VERSION"));

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	alarm((unsigned)timeout_s);

	struct cometd_config cfg = {
	        .url = url,
	        .ca_file = getenv("SF_CA_FILE"),
	        .channels = chans,
	        .nchannels = nch,
	        .stop = &drive_stop,
	        .backoff_base_ms = 200,
	        .backoff_max_ms = 2000,
	        .stall_grace_ms = getenv("DRIVE_STALL_GRACE_MS")
	                                  ? strtol(getenv("DRIVE_STALL_GRACE_MS"), NULL, 10)
	                                  : 0,
	};
	struct cometd_token_provider tp = {.get = drive_token, .ctx = &d};
	struct cometd_handler h = {
	        .replay_from = drive_replay_from, .on_batch = drive_batch, .ctx = &d};
	struct cometd *c = cometd_new(&cfg, &tp, &h, err, sizeof err);
	if (!c) {
		fprintf(stderr, "drive: %s\n", err);
		return 2;
	}
	enum cometd_outcome o = cometd_run(c, err, sizeof err);
	struct cometd_stats st;
	cometd_get_stats(c, &st);
	printf("stats handshakes=%lu rehandshakes=%lu reauths=%lu stalls=%lu connects=%lu "
	       "events=%lu transport_errors=%lu\n",
	       st.handshakes, st.rehandshakes, st.reauths, st.stalls, st.connects, st.events,
	       st.transport_errors);
	if (o == COMETD_REPLAY_INVALID) {
		int64_t bad;
		const char *ch = cometd_replay_error(c, &bad);
		printf("outcome replay_invalid %s %lld %s\n", ch, (long long)bad, err);
	} else {
		printf("outcome %s %s\n", o == COMETD_STOPPED ? "stopped" : "fatal", err);
	}
	fflush(stdout);
	cometd_free(&c);
	sf_auth_free(&d.auth);
	free(d.instance_url);
	free(list);
	return o == COMETD_FATAL ? 1 : 0;
}

/* ---- resync / poll scans (resync.c) ------------------------------------- */

static void resync_scan_statement(void **state)
{
	(void)state;
	struct resync_cursor c = {.stamp_ms = -1};
	char *q = resync_scan_soql("SELECT Id, Company FROM Lead",
	                           "SystemModstamp >= "
	                           "2026-11-22T00:00:00Z",
	                           &c);
	assert_string_equal(q,
	                    "SELECT Id, Company, IsDeleted, SystemModstamp FROM Lead WHERE "
	                    "(SystemModstamp >= 2026-11-22T00:00:00Z) ORDER BY SystemModstamp, Id");
	free(q);
	c.stamp_ms = 1795313402999; /* cut to its second */
	q = resync_scan_soql("SELECT Id, SystemModstamp, IsDeleted FROM Task", NULL, &c);
	assert_string_equal(q,
	                    "SELECT Id, SystemModstamp, IsDeleted FROM Task WHERE "
	                    "SystemModstamp >= 2026-11-22T02:10:02Z ORDER BY SystemModstamp, Id");
	free(q);
	q = resync_scan_soql("SELECT Id FROM Lead",
	                     "IsDeleted = false OR SystemModstamp >= "
	                     "1970-01-01T00:00:00Z",
	                     &c);
	assert_non_null(strstr(q,
	                       "WHERE (IsDeleted = false OR SystemModstamp >= "
	                       "1970-01-01T00:00:00Z) AND SystemModstamp >= 2026-11-22T02:10:02Z"));
	free(q);
}

static void resync_stamps_and_channels(void **state)
{
	(void)state;
	char e[NORMALIZE_ENTITY_MAX + 1];
	assert_int_equal(resync_parse_stamp("2026-11-22T02:10:02.000+0000"), 1795313402000);
	assert_int_equal(resync_parse_stamp("2026-11-22T02:10:02.250Z"), 1795313402250);
	assert_int_equal(resync_parse_stamp("2026-11-22T03:10:02.000+01:00"), 1795313402000);
	assert_int_equal(resync_parse_stamp("yesterday"), -1);
	assert_int_equal(resync_parse_stamp(NULL), -1);
	assert_int_equal(resync_channel_entity("/data/LeadChangeEvent", e, sizeof e), 0);
	assert_string_equal(e, "Lead");
	assert_int_equal(resync_channel_entity("/data/Foo__ChangeEvent", e, sizeof e), 0);
	assert_string_equal(e, "Foo__c");
	assert_int_equal(resync_channel_entity("/data/ChangeEvents", e, sizeof e), -1);
	assert_int_equal(resync_channel_entity("/data/Sales__chn", e, sizeof e), -1);
	assert_int_equal(resync_channel_entity("/topic/x", e, sizeof e), -1);
}

static void resync_job_round_trip_and_ties(void **state)
{
	(void)state;
	struct resync_job j, back;
	memset(&j, 0, sizeof j);
	memset(&back, 0, sizeof back);
	resync_job_clear(&j);
	snprintf(j.entity, sizeof j.entity, "Lead");
	snprintf(j.reason, sizeof j.reason, "invalid_replay");
	snprintf(j.channel, sizeof j.channel, "/data/LeadChangeEvent");
	j.replay_id = 9007199254740993LL; /* > 2^53: kept exact */
	j.since_ms = 1000;
	j.deletes_since_ms = 1000;
	cursor_advance(&j.cur, 5000, "00Q000000000002AAA");
	cursor_advance(&j.cur, 5000, "00Q000000000003AAA");
	char *v = resync_job_value(&j, 42);
	json_t *jv = json_loads(v, 0, NULL);
	assert_int_equal(resync_job_parse(jv, &back), 0);
	assert_string_equal(back.channel, "/data/LeadChangeEvent");
	assert_true(back.replay_id == 9007199254740993LL);
	assert_int_equal(back.cur.stamp_ms, 5000);
	assert_string_equal(back.cur.last_id, "00Q000000000003AAA");
	/* Same second: published ids are skipped, a later change of another
	 * (even lower) id in that second is not; a new second resets. */
	assert_true(id_seen(&back.cur, 5000, "00Q000000000002AAA"));
	assert_false(id_seen(&back.cur, 5000, "00Q000000000001AAA"));
	assert_false(id_seen(&back.cur, 6000, "00Q000000000002AAA"));
	cursor_advance(&back.cur, 6000, "00Q000000000001AAA");
	assert_int_equal(json_array_size(back.cur.ids), 1);
	json_object_set_new(jv, "since_ms", json_string("x"));
	assert_int_equal(resync_job_parse(jv, &back), -1);
	json_decref(jv);
	free(v);
	resync_job_clear(&j);
	resync_job_clear(&back);
}

static void resync_envelopes_valid(void **state)
{
	(void)state;
	char why[256], path[1024];
	const char *src = getenv("SFK_SOURCE_DIR"), *ct = NULL;
	assert_non_null(src);
	snprintf(path, sizeof path, "%s/schemas/event.schema.json", src);
	struct jschema *s = jschema_load(path, why, sizeof why);
	assert_non_null(s);
	json_t *live = json_pack("{s:{s:s},s:s,s:s,s:s,s:s,s:b}", "attributes", "type", "Lead",
	                         "Id", "00Q000000000001AAA", "Company", "A", "CreatedDate",
	                         "2026-11-22T02:10:02.000+0000", "SystemModstamp",
	                         "2026-11-22T02:10:02.000+0000", "IsDeleted", 0);
	json_t *env =
	        envelope("Lead", live, RESYNC_MODE_POLL, 1795313402000, 1, &ct, why, sizeof why);
	assert_string_equal(ct, "CREATE");
	assert_int_equal(jschema_validate(s, env, NULL), 0);
	assert_string_equal(json_string_value(json_object_get(env, "event_id")),
	                    "Lead:00Q000000000001AAA:1795313402000");
	assert_false(json_is_true(json_object_get(json_object_get(env, "flags"), "resynced")));
	json_decref(env);
	json_object_set_new(live, "SystemModstamp", json_string("2026-11-22T02:10:09.000+0000"));
	env = envelope("Lead", live, RESYNC_MODE_POLL, 1795313409000, 1, &ct, why, sizeof why);
	assert_string_equal(ct, "UPDATE");
	assert_int_equal(json_integer_value(json_object_get(env, "commit_timestamp")),
	                 1795313409000);
	json_decref(env);
	env = envelope("Lead", live, RESYNC_MODE_SNAPSHOT, 1795313409000, 1, &ct, why, sizeof why);
	assert_string_equal(ct, "SNAPSHOT");
	assert_true(json_is_true(json_object_get(json_object_get(env, "flags"), "resynced")));
	assert_int_equal(jschema_validate(s, env, NULL), 0);
	json_decref(env);
	json_object_set_new(live, "IsDeleted", json_true());
	env = envelope("Lead", live, RESYNC_MODE_SNAPSHOT, 1795313409000, 1, &ct, why, sizeof why);
	assert_string_equal(ct, "DELETE");
	assert_int_equal(json_object_size(json_object_get(env, "fields")), 0);
	assert_true(json_is_true(json_object_get(json_object_get(env, "flags"), "resynced")));
	assert_int_equal(jschema_validate(s, env, NULL), 0);
	json_decref(env);
	json_decref(live);
	jschema_free(s);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--drive") == 0)
		return drive(argc, argv);

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
	        cmocka_unit_test(invalid_replay_without_channel),
	        cmocka_unit_test(resync_scan_statement),
	        cmocka_unit_test(resync_stamps_and_channels),
	        cmocka_unit_test(resync_job_round_trip_and_ties),
	        cmocka_unit_test(resync_envelopes_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
