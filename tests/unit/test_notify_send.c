/*
 * test_notify_send.c - notify.webhook's delivery engine against a throwaway
 * HTTP server in this process (libmicrohttpd, one thread per connection):
 * the signature on the wire verifies, a slow target does not hold up a fast
 * one in the same run, 500s are retried within the budget, 429 Retry-After
 * is honoured, the circuit opens / fails fast / half-opens / closes, a
 * 4xx is final, a target that does not answer in time fails as a timeout,
 * and the run deadline defers what is left; without a producer (the CLI's
 * dry runs) the workload sends nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../workers/notify_flow.c"
#include "../../workers/notify_format.c"
#include "../../workers/notify_send.c"
#include "../../workers/notify_policy.c"
#include "../../workers/notify_relay.c"
#include "../../workers/notify.c"

#define SRV_BODY_MAX 8192

static struct {
	pthread_mutex_t mu;
	int port;
	int fail_left;   /* /fail: 500 this many times, then 200 */
	int r429_left;   /* /r429: 429 + Retry-After: 1 this many times */
	int requests[8]; /* per path index */
	char sig[128], ts[32], did[64], body[SRV_BODY_MAX];
	size_t body_len;
} srv = {.mu = PTHREAD_MUTEX_INITIALIZER};

enum path { P_OK, P_SLOW, P_FAIL, P_DEAD, P_R429, P_GONE, P_N };
static const char *const paths[] = {"/ok", "/slow", "/fail", "/dead", "/r429", "/gone"};

struct upload {
	char buf[SRV_BODY_MAX];
	size_t len;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *retry_after)
{
	struct MHD_Response *r =
	        MHD_create_response_from_buffer(2, (void *)"{}", MHD_RESPMEM_PERSISTENT);
	if (retry_after)
		MHD_add_response_header(r, "Retry-After", retry_after);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static void copy_hdr(struct MHD_Connection *c, const char *name, char *dst, size_t cap)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
	snprintf(dst, cap, "%s", v ? v : "");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
	(void)cls;
	(void)method;
	(void)version;
	struct upload *u = *con_cls;
	if (!u) {
		*con_cls = calloc(1, sizeof *u);
		return MHD_YES;
	}
	if (*upload_size) {
		size_t take =
		        *upload_size < SRV_BODY_MAX - u->len ? *upload_size : SRV_BODY_MAX - u->len;
		memcpy(u->buf + u->len, upload, take);
		u->len += take;
		*upload_size = 0;
		return MHD_YES;
	}
	int p = P_N;
	for (int i = 0; i < P_N; i++)
		if (strcmp(url, paths[i]) == 0)
			p = i;
	pthread_mutex_lock(&srv.mu);
	if (p < P_N)
		srv.requests[p]++;
	if (p == P_OK) {
		copy_hdr(c, "X-Sfk-Signature", srv.sig, sizeof srv.sig);
		copy_hdr(c, "X-Sfk-Timestamp", srv.ts, sizeof srv.ts);
		copy_hdr(c, "X-Sfk-Delivery", srv.did, sizeof srv.did);
		memcpy(srv.body, u->buf, u->len);
		srv.body_len = u->len;
	}
	int fail = p == P_FAIL && srv.fail_left > 0 ? srv.fail_left-- : 0;
	int r429 = p == P_R429 && srv.r429_left > 0 ? srv.r429_left-- : 0;
	pthread_mutex_unlock(&srv.mu);
	switch (p) {
	case P_SLOW: {
		struct timespec ts = {1, 0};
		nanosleep(&ts, NULL);
		return reply(c, 200, NULL);
	}
	case P_FAIL: return reply(c, fail ? 500 : 200, NULL);
	case P_DEAD: return reply(c, 503, NULL);
	case P_R429: return r429 ? reply(c, 429, "1") : reply(c, 200, NULL);
	case P_GONE: return reply(c, 410, NULL);
	case P_OK: return reply(c, 200, NULL);
	default: return reply(c, 404, NULL);
	}
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

static int loop_parse_event_stub(json_t *env, struct wl_event *ev, char *err, size_t len)
{
	(void)err;
	(void)len;
	memset(ev, 0, sizeof *ev);
	ev->env = env;
	ev->fields = json_object_get(env, "fields");
	ev->event_id = json_string_value(json_object_get(env, "event_id"));
	ev->entity = json_string_value(json_object_get(env, "entity"));
	ev->change_type = json_string_value(json_object_get(env, "change_type"));
	ev->record_id = json_string_value(json_object_get(env, "record_id"));
	return ev->event_id && ev->entity ? 0 : -1;
}

static struct MHD_Daemon *daemon_;
static char urls[P_N][64];

static int setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
	                                   MHD_USE_ERROR_LOG,
	                           0, NULL, NULL, handler, NULL, MHD_OPTION_NOTIFY_COMPLETED,
	                           completed, NULL, MHD_OPTION_END);
	if (!daemon_)
		return -1;
	srv.port = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT)->port;
	for (int i = 0; i < P_N; i++)
		snprintf(urls[i], sizeof urls[i], "http://127.0.0.1:%d%s", srv.port, paths[i]);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	MHD_stop_daemon(daemon_);
	curl_global_cleanup();
	return 0;
}

/* A policy of one target per server path, with small timings. */
static struct notify_policy *policy(void)
{
	struct notify_policy *p = calloc(1, sizeof *p);
	p->ntargets = P_N;
	p->targets = calloc(P_N, sizeof *p->targets);
	for (int i = 0; i < P_N; i++) {
		struct notify_target *t = &p->targets[i];
		snprintf(t->name, sizeof t->name, "%s", paths[i] + 1);
		t->kind = NOTIFY_WEBHOOK;
		t->url = urls[i];
		t->secret = (char *)"k3y";
		t->timeout_ms = 5000;
		t->max_attempts = 4;
		t->backoff_base_ms = 20;
		t->backoff_max_ms = 100;
		t->retry_after_max_ms = 5000;
		t->rate_per_s = 1000;
		t->burst = 100;
		t->max_inflight = 4;
		t->breaker_failures = 100;
		t->breaker_open_ms = 300;
	}
	return p;
}

static void job(struct notify_job *j, int target, const char *did, const char *body)
{
	memset(j, 0, sizeof *j);
	j->target = target;
	snprintf(j->delivery_id, sizeof j->delivery_id, "%s", did);
	j->body = body;
	j->len = strlen(body);
}

static double mono_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void test_signed_and_independent(void **state)
{
	(void)state;
	struct notify_policy *p = policy();
	struct notify_sender *s = notify_sender_new(p, "test");
	struct notify_job j[5];
	const char *body = "{\"hello\":\"world\"}";

	job(&j[0], P_OK, "d-ok", body);
	for (int i = 1; i < 5; i++)
		job(&j[i], P_SLOW, "d-slow", "{}");
	double t0 = mono_s();
	notify_sender_run(s, j, 5, 10000, NULL);
	double took = mono_s() - t0;
	for (int i = 0; i < 5; i++)
		assert_int_equal(j[i].result, NOTIFY_DELIVERED);
	/* the fast target was answered while the slow one (1 s each, 4 in parallel)
	 * was busy, and the four slow ones ran concurrently (one after the other
	 * would take 4 s) */
	for (int i = 1; i < 5; i++) {
		assert_true(j[i].latency_s >= 0.9);
		assert_true(j[0].latency_s < j[i].latency_s);
	}
	assert_true(took < 3.5);

	/* what reached the server verifies with the secret */
	char want[NOTIFY_SIG_MAX];
	pthread_mutex_lock(&srv.mu);
	assert_int_equal(srv.body_len, strlen(body));
	assert_memory_equal(srv.body, body, srv.body_len);
	assert_int_equal(notify_sign("k3y", srv.ts, srv.body, srv.body_len, want, sizeof want), 0);
	assert_string_equal(srv.sig, want);
	assert_string_equal(srv.did, "d-ok");
	long long ts = strtoll(srv.ts, NULL, 10);
	pthread_mutex_unlock(&srv.mu);
	assert_true(llabs(ts - (long long)time(NULL)) <= 5);
	notify_sender_free(&s);
	assert_null(s);
	free(p->targets);
	free(p);
}

static void test_retries_and_429(void **state)
{
	(void)state;
	struct notify_policy *p = policy();
	struct notify_sender *s = notify_sender_new(p, "test");
	struct notify_job j[3];

	pthread_mutex_lock(&srv.mu);
	srv.fail_left = 2;
	srv.r429_left = 1;
	srv.requests[P_FAIL] = srv.requests[P_R429] = srv.requests[P_GONE] = 0;
	pthread_mutex_unlock(&srv.mu);
	job(&j[0], P_FAIL, "d-fail", "{}");
	job(&j[1], P_R429, "d-429", "{}");
	job(&j[2], P_GONE, "d-gone", "{}");
	notify_sender_run(s, j, 3, 10000, NULL);
	assert_int_equal(j[0].result, NOTIFY_DELIVERED);
	assert_int_equal(j[0].attempts, 3);
	assert_int_equal(j[1].result, NOTIFY_DELIVERED);
	assert_int_equal(j[1].attempts, 2);
	assert_int_equal(j[1].retries_429, 1);
	assert_true(j[1].latency_s >= 0.95);          /* Retry-After: 1, not the 20 ms backoff */
	assert_int_equal(j[2].result, NOTIFY_FAILED); /* 410: final, no retry */
	assert_int_equal(j[2].attempts, 1);
	assert_string_equal(j[2].code, "http_410");
	assert_int_equal(srv.requests[P_FAIL], 3);
	assert_int_equal(metric_value(s->m_total, "fail", "retry"), 2);
	assert_int_equal(metric_value(s->m_total, "gone", "dlq"), 1);
	/* 429 is not a failure of the target's health */
	assert_int_equal(notify_sender_circuit(s, P_R429), NOTIFY_BR_CLOSED);
	notify_sender_free(&s);
	free(p->targets);
	free(p);
}

static void test_budget_and_breaker(void **state)
{
	(void)state;
	struct notify_policy *p = policy();
	struct notify_sender *s = notify_sender_new(p, "test");
	struct notify_job j[4];

	/* the retry budget: 2 attempts, then failed with the last status */
	p->targets[P_DEAD].max_attempts = 2;
	job(&j[0], P_DEAD, "d-dead0", "{}");
	notify_sender_run(s, j, 1, 10000, NULL);
	assert_int_equal(j[0].result, NOTIFY_FAILED);
	assert_int_equal(j[0].attempts, 2);
	assert_string_equal(j[0].code, "http_503");
	assert_int_equal(j[0].err, SFK_ERR_HTTP_5XX);
	assert_non_null(strstr(j[0].reason, "retry budget of 2 spent"));
	notify_sender_free(&s);

	/* the breaker: 3 consecutive failures open it; then no more requests */
	p->targets[P_DEAD].breaker_failures = 3;
	p->targets[P_DEAD].max_inflight = 1;
	p->targets[P_DEAD].max_attempts = 4;
	s = notify_sender_new(p, "test");
	pthread_mutex_lock(&srv.mu);
	srv.requests[P_DEAD] = 0;
	pthread_mutex_unlock(&srv.mu);
	for (int i = 0; i < 3; i++)
		job(&j[i], P_DEAD, "d-dead", "{}");
	job(&j[3], P_OK, "d-ok2", "{}");
	notify_sender_run(s, j, 4, 10000, NULL);
	int open = 0;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(j[i].result, NOTIFY_FAILED);
		open += strcmp(j[i].code, "circuit_open") == 0;
	}
	assert_true(open >= 1);
	assert_int_equal(srv.requests[P_DEAD], 3);       /* one at a time: exactly the threshold */
	assert_int_equal(j[3].result, NOTIFY_DELIVERED); /* other targets unaffected */
	assert_int_equal(notify_sender_circuit(s, P_DEAD), NOTIFY_BR_OPEN);
	assert_int_equal(metric_value(s->m_circuit, "dead"), 2);

	/* after breaker_open_ms, one probe: the target is healthy again -> closed */
	p->targets[P_DEAD].url = urls[P_OK];
	double t0 = mono_s();
	int tries = 0;
	for (;;) { /* until the open period ends (300 ms); each try fails fast */
		tries++;
		job(&j[0], P_DEAD, "d-probe", "{}");
		notify_sender_run(s, j, 1, 10000, NULL);
		if (j[0].result == NOTIFY_DELIVERED)
			break;
		assert_string_equal(j[0].code, "circuit_open");
		assert_true(mono_s() - t0 < 3.0);
		struct timespec ts = {0, 20 * 1000000L};
		nanosleep(&ts, NULL);
	}
	assert_true(tries > 1); /* the healthy target still waited for the open period */
	assert_int_equal(notify_sender_circuit(s, P_DEAD), NOTIFY_BR_CLOSED);
	assert_int_equal(metric_value(s->m_circuit, "dead"), 0);
	notify_sender_free(&s);
	free(p->targets);
	free(p);
}

static void test_deadline_defers(void **state)
{
	(void)state;
	struct notify_policy *p = policy();
	struct notify_sender *s = notify_sender_new(p, "test");
	struct notify_job j[2];
	job(&j[0], P_SLOW, "d-s1", "{}");
	job(&j[1], P_OK, "d-o1", "{}");
	double t0 = mono_s();
	notify_sender_run(s, j, 2, 300, NULL);
	assert_true(mono_s() - t0 < 0.9);
	assert_int_equal(j[0].result, NOTIFY_DEFERRED);
	assert_int_equal(j[1].result, NOTIFY_DELIVERED);
	/* no answer within timeout_ms: retried, then failed as a timeout */
	p->targets[P_SLOW].timeout_ms = 200;
	p->targets[P_SLOW].max_attempts = 2;
	job(&j[0], P_SLOW, "d-s2", "{}");
	notify_sender_run(s, j, 1, 10000, NULL);
	assert_int_equal(j[0].result, NOTIFY_FAILED);
	assert_int_equal(j[0].attempts, 2);
	assert_string_equal(j[0].code, "timeout");
	assert_int_equal(j[0].err, SFK_ERR_TIMEOUT);
	/* a stop request defers at once */
	volatile sig_atomic_t stop = 1;
	job(&j[0], P_OK, "d-o2", "{}");
	notify_sender_run(s, j, 1, 10000, &stop);
	assert_int_equal(j[0].result, NOTIFY_DEFERRED);
	notify_sender_free(&s);
	free(p->targets);
	free(p);
}

/* Without a producer (the CLI's sfk decide) the workload only tells what it
 * would send: nothing reaches the server, nothing is claimed in Redis. */
static void test_dry_run(void **state)
{
	(void)state;
	char pol[1024], sch[1024];
	const char *src = getenv("SFK_SOURCE_DIR");
	snprintf(pol, sizeof pol, "%s/policies/notifications.json", src ? src : ".");
	snprintf(sch, sizeof sch, "%s/schemas/notifications.schema.json", src ? src : ".");
	g_policy_path = pol;
	g_schema_path = sch;
	g_deadline_ms = 1000;
	setenv("SFK_NOTIFY_SALESOPS_URL", urls[P_OK], 1);
	setenv("SFK_NOTIFY_SECRET_SALESOPS", "k", 1);
	setenv("SFK_NOTIFY_SLACK_SALES_URL", urls[P_OK], 1);
	setenv("SFK_NOTIFY_DISCORD_OPS_URL", urls[P_OK], 1);
	struct wl_ctx ctx = {.workload_id = "notify.webhook"}; /* no producer, no Redis */
	assert_int_equal(notify_ops.init(&ctx), 0);

	json_t *env =
	        json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:{s:i}}", "envelope_version", 1,
	                  "event_id", "Lead:00Q5e00000AbCdE:1", "entity", "Lead", "change_type",
	                  "CREATE", "record_id", "00Q5e00000AbCdE", "commit_timestamp",
	                  (json_int_t)1700000000000, "fields", "NumberOfEmployees", 5000);
	struct wl_event ev;
	struct wl_decision d;
	char err[256];
	assert_int_equal(loop_parse_event_stub(env, &ev, err, sizeof err), 0);
	memset(&d, 0, sizeof d);
	pthread_mutex_lock(&srv.mu);
	int before = srv.requests[P_OK];
	pthread_mutex_unlock(&srv.mu);
	assert_int_equal(notify_ops.decide(&ctx, &ev, 1, &d), SFK_OK);
	assert_int_equal(d.action, WL_SKIP);
	assert_string_equal(d.outcome, "would_deliver");
	json_t *dl = json_object_get(d.decision, "deliveries");
	assert_int_equal(json_array_size(dl), 2); /* salesops + slack-sales (>= 1000) */
	assert_string_equal(json_string_value(json_object_get(json_array_get(dl, 0), "target")),
	                    "salesops");
	assert_int_equal(srv.requests[P_OK], before);
	json_decref(d.decision);
	json_decref(env);
	notify_ops.fini(&ctx);
	assert_null(ctx.state);
}

/* lead.sla_watch's flat breach record -> the envelope the loop parses. */
static void test_relay_envelope(void **state)
{
	(void)state;
	char err[256];
	json_t *rec = json_loads("{\"type\":\"sla.breach\",\"event_id\":\"sla:00Q5e00000AbCdE:1\","
	                         "\"lead_id\":\"00Q5e00000AbCdE\",\"escalation\":1,\"owner_id\":"
	                         "\"0055e00000AbCdE\",\"channels\":[\"slack-sales\"],"
	                         "\"client_id\":\"sfk-kpis\"}",
	                         0, NULL);
	json_t *env = notify_relay_envelope(rec, 1700000000000, err, sizeof err);
	assert_non_null(env);
	assert_string_equal(json_string_value(json_object_get(env, "kind")), "sla_breach");
	assert_string_equal(json_string_value(json_object_get(env, "event_id")),
	                    "sla:00Q5e00000AbCdE:1");
	assert_string_equal(json_string_value(json_object_get(env, "record_id")),
	                    "00Q5e00000AbCdE");
	assert_string_equal(json_string_value(json_object_get(env, "change_type")), "SLA_BREACH");
	json_t *f = json_object_get(env, "fields");
	assert_int_equal(json_integer_value(json_object_get(f, "escalation")), 1);
	assert_null(json_object_get(f, "type"));
	assert_null(json_object_get(f, "client_id"));
	struct wl_event ev;
	assert_int_equal(loop_parse_event_stub(env, &ev, err, sizeof err), 0);
	json_decref(env);

	/* not a breach / no event id / bad lead id: refused with the reason */
	json_object_set_new(rec, "lead_id", json_string("nope"));
	assert_null(notify_relay_envelope(rec, 1, err, sizeof err));
	assert_non_null(strstr(err, "$.lead_id"));
	json_object_set_new(rec, "type", json_string("something.else"));
	assert_null(notify_relay_envelope(rec, 1, err, sizeof err));
	assert_non_null(strstr(err, "$.type"));
	json_decref(rec);
	json_t *one = json_integer(1);
	assert_null(notify_relay_envelope(one, 1, err, sizeof err));
	json_decref(one);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_signed_and_independent),
	        cmocka_unit_test(test_retries_and_429),
	        cmocka_unit_test(test_budget_and_breaker),
	        cmocka_unit_test(test_deadline_defers),
	        cmocka_unit_test(test_dry_run),
	        cmocka_unit_test(test_relay_envelope),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
