/*
 * Unit tests for common/admin: a real server on a free loopback port, spoken
 * to with libcurl and, for malformed requests, raw sockets.
 *
 * `test_admin --serve PORTFILE` instead serves a representative set of the
 * DESIGN.md section 7 metrics on SFK_ADMIN_ADDR (default 127.0.0.1:0), writes
 * the bound port to PORTFILE and runs until SIGTERM (used by it_promtool.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "admin.h"
#include "config.h"
#include "log.h"
#include "metrics.h"

#define MAX_BODY  1024
#define MEM_LIMIT 8192
#define RESP_MAX  (256 * 1024) /* cap on what the tests read back */

static struct admin *srv;
static unsigned port;

/* ---- client helpers ---- */

struct reply {
	long status;
	char body[RESP_MAX];
	size_t len;
	char ctype[128];
	char allow[128];
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct reply *r = ud;
	size_t len = sz * n;
	if (r->len + len >= sizeof r->body)
		return 0; /* over the test's cap: fail the transfer */
	memcpy(r->body + r->len, p, len);
	r->len += len;
	r->body[r->len] = '\0';
	return len;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct reply *r = ud;
	size_t len = sz * n;
	if (len > 6 && strncasecmp(p, "Allow:", 6) == 0)
		snprintf(r->allow, sizeof r->allow, "%.*s", (int)(len - 6), p + 6);
	for (char *e = r->allow + strlen(r->allow);
	     e > r->allow && (e[-1] == '\n' || e[-1] == '\r');)
		*--e = '\0';
	return len;
}

static struct reply *http(const char *method, const char *path, const char *body,
                          const char *extra_header)
{
	static struct reply r;
	memset(&r, 0, sizeof r);
	char url[512];
	snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
	CURL *c = curl_easy_init();
	assert_non_null(c);
	struct curl_slist *h = NULL;
	if (extra_header)
		h = curl_slist_append(h, extra_header);
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	CURLcode rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		fail_msg("curl %s %s: %s", method, path, curl_easy_strerror(rc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	char *ct = NULL;
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
	snprintf(r.ctype, sizeof r.ctype, "%s", ct ? ct : "");
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return &r;
}

static json_t *body_json(const struct reply *r)
{
	json_error_t err;
	json_t *j = json_loadb(r->body, r->len, 0, &err);
	if (!j)
		fail_msg("not JSON (%s): %s", err.text, r->body);
	return j;
}

static void assert_healthy(void)
{
	struct reply *r = http("GET", "/healthz", NULL, NULL);
	assert_int_equal(r->status, 200);
	json_t *j = body_json(r);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
	json_decref(j);
}

/* Send raw bytes, read the answer until the server closes; return the status
 * code, or 0 if the server closed without answering. */
static int raw(const void *req, size_t len, char *out, size_t outcap)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	/* The server may answer and close before taking everything: ignore EPIPE. */
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, (const char *)req + off, len - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	size_t got = 0;
	ssize_t n;
	while (got + 1 < outcap && (n = recv(fd, out + got, outcap - 1 - got, 0)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(fd);
	int status = 0;
	if (got == 0)
		return 0; /* closed without an answer */
	if (sscanf(out, "HTTP/1.%*d %d", &status) != 1)
		fail_msg("no HTTP status line in answer: '%.200s'", out);
	return status;
}

static const char *raw_body(const char *answer)
{
	const char *p = strstr(answer, "\r\n\r\n");
	return p ? p + 4 : "";
}

/* ---- fixtures ---- */

static bool ready_flag = true;

static bool check_db(void *ctx, char *reason, size_t len)
{
	(void)ctx;
	return true;
}

static bool check_kafka(void *ctx, char *reason, size_t len)
{
	bool *ok = ctx;
	if (!*ok)
		snprintf(reason, len, "broker 127.0.0.1:1 unreachable");
	return *ok;
}

/* Echo route: shows what a handler receives. */
static void h_echo(const struct admin_req *req, struct admin_resp *resp, void *ctx)
{
	const char *sig = admin_req_header(req, "x-signature");
	const char *a = admin_req_arg(req, "a");
	json_t *j = json_pack("{s:s, s:s, s:s, s:s%, s:s?, s:s?, s:I}", "method", req->method,
	                      "path", req->path, "query", req->query, "body", req->body,
	                      req->body_len, "sig", sig, "a", a, "len", (json_int_t)req->body_len);
	admin_resp_json(resp, 202, j);
	admin_resp_header(resp, "X-Handled", "yes");
}

static int setup(void **state)
{
	(void)state;
	char err[256];
	metrics_reset();
	struct admin_opts o = {.addr = "127.0.0.1:0",
	                       .max_body = MAX_BODY,
	                       .mem_limit = MEM_LIMIT,
	                       .max_conn = 16,
	                       .timeout_s = 5};
	srv = admin_new(&o, err, sizeof err);
	assert_non_null(srv);
	admin_route(srv, "POST", "/hook", h_echo, NULL);
	admin_ready_check(srv, "db", check_db, NULL);
	ready_flag = true;
	admin_ready_check(srv, "kafka", check_kafka, &ready_flag);
	assert_int_equal(admin_start(srv, err, sizeof err), SFK_OK);
	port = admin_port(srv);
	assert_true(port > 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	admin_free(&srv);
	assert_null(srv);
	metrics_reset();
	return 0;
}

/* ---- tests ---- */

static void healthz_metrics_readyz(void **state)
{
	(void)state;
	assert_healthy();

	struct metric *m = metrics_counter("sfk_test_requests_total", "Test.", "kind");
	metric_add(m, 3, "a");
	struct reply *r = http("GET", "/metrics", NULL, NULL);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->ctype, "text/plain; version=0.0.4; charset=utf-8");
	assert_non_null(strstr(r->body, "# TYPE sfk_test_requests_total counter\n"));
	assert_non_null(strstr(r->body, "sfk_test_requests_total{kind=\"a\"} 3\n"));

	r = http("GET", "/readyz", NULL, NULL);
	assert_int_equal(r->status, 200);
	json_t *j = body_json(r);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "ready");
	assert_string_equal(json_string_value(json_object_get(
	                            json_object_get(json_object_get(j, "checks"), "db"), "status")),
	                    "ok");
	json_decref(j);

	ready_flag = false;
	r = http("GET", "/readyz", NULL, NULL);
	assert_int_equal(r->status, 503);
	j = body_json(r);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "not_ready");
	json_t *failing = json_object_get(j, "failing");
	assert_int_equal(json_array_size(failing), 1);
	assert_string_equal(json_string_value(json_array_get(failing, 0)), "kafka");
	json_t *k = json_object_get(json_object_get(j, "checks"), "kafka");
	assert_string_equal(json_string_value(json_object_get(k, "status")), "fail");
	assert_string_equal(json_string_value(json_object_get(k, "reason")),
	                    "broker 127.0.0.1:1 unreachable");
	json_decref(j);

	/* HEAD of a GET route */
	r = http("HEAD", "/healthz", NULL, NULL);
	assert_int_equal(r->status, 200);
	assert_int_equal(r->len, 0);

	admin_set_alive(srv, false);
	r = http("GET", "/healthz", NULL, NULL);
	assert_int_equal(r->status, 503);
	admin_set_alive(srv, true);
	assert_healthy();
}

static void not_found_and_method_not_allowed(void **state)
{
	(void)state;
	struct reply *r = http("GET", "/nope?x=1", NULL, NULL);
	assert_int_equal(r->status, 404);
	assert_string_equal(r->ctype, "application/json");
	json_t *j = body_json(r);
	assert_string_equal(json_string_value(json_object_get(j, "error")), "not_found");
	assert_string_equal(json_string_value(json_object_get(j, "path")), "/nope");
	json_decref(j);

	/* a decoded path that is not UTF-8 still gets a JSON body */
	r = http("GET", "/caf%E9", NULL, NULL);
	assert_int_equal(r->status, 404);
	j = body_json(r);
	assert_string_equal(json_string_value(json_object_get(j, "path")), "/caf?");
	json_decref(j);

	r = http("DELETE", "/metrics", NULL, NULL);
	assert_int_equal(r->status, 405);
	assert_string_equal(r->allow, " GET, HEAD");
	j = body_json(r);
	assert_string_equal(json_string_value(json_object_get(j, "error")), "method_not_allowed");
	json_decref(j);

	r = http("GET", "/hook", NULL, NULL);
	assert_int_equal(r->status, 405);
	assert_string_equal(r->allow, " POST");
	assert_healthy();
}

static void custom_route_gets_request(void **state)
{
	(void)state;
	struct reply *r = http("POST", "/hook?a=b%20c&z=1", "{\"x\":1}", "X-Signature: sha256=abc");
	assert_int_equal(r->status, 202);
	json_t *j = body_json(r);
	assert_string_equal(json_string_value(json_object_get(j, "method")), "POST");
	assert_string_equal(json_string_value(json_object_get(j, "path")), "/hook");
	assert_string_equal(json_string_value(json_object_get(j, "query")), "a=b%20c&z=1");
	assert_string_equal(json_string_value(json_object_get(j, "a")), "b c");
	assert_string_equal(json_string_value(json_object_get(j, "body")), "{\"x\":1}");
	assert_string_equal(json_string_value(json_object_get(j, "sig")), "sha256=abc");
	assert_int_equal(json_integer_value(json_object_get(j, "len")), 7);
	json_decref(j);

	/* a body exactly at the cap is accepted */
	char big[MAX_BODY + 1];
	memset(big, 'x', MAX_BODY);
	big[MAX_BODY] = '\0';
	r = http("POST", "/hook", big, NULL);
	assert_int_equal(r->status, 202);
	j = body_json(r);
	assert_int_equal(json_integer_value(json_object_get(j, "len")), MAX_BODY);
	json_decref(j);
}

static void oversized_body_413(void **state)
{
	(void)state;
	/* via curl: Content-Length over the cap */
	char big[MAX_BODY + 2];
	memset(big, 'x', MAX_BODY + 1);
	big[MAX_BODY + 1] = '\0';
	struct reply *r = http("POST", "/hook", big, NULL);
	assert_int_equal(r->status, 413);
	json_t *j = body_json(r);
	assert_string_equal(json_string_value(json_object_get(j, "error")), "payload_too_large");
	assert_int_equal(json_integer_value(json_object_get(j, "max_bytes")), MAX_BODY);
	assert_non_null(strstr(json_string_value(json_object_get(j, "reason")), "larger than"));
	json_decref(j);
	assert_healthy();

	/* raw: a huge declared length, no body sent */
	char ans[8192];
	const char *req = "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n";
	assert_int_equal(raw(req, strlen(req), ans, sizeof ans), 413);
	assert_non_null(strstr(raw_body(ans), "payload_too_large"));
	assert_healthy();

	/* raw: chunked body that grows past the cap */
	char chunked[4096];
	int off = snprintf(chunked, sizeof chunked,
	                   "POST /hook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
	                   "Connection: close\r\n\r\n");
	for (int i = 0; i < 3; i++) {
		off += snprintf(chunked + off, sizeof chunked - (size_t)off, "200\r\n");
		memset(chunked + off, 'y', 0x200);
		off += 0x200;
		off += snprintf(chunked + off, sizeof chunked - (size_t)off, "\r\n");
	}
	off += snprintf(chunked + off, sizeof chunked - (size_t)off, "0\r\n\r\n");
	assert_int_equal(raw(chunked, (size_t)off, ans, sizeof ans), 413);
	assert_healthy();
}

static void malformed_requests_4xx(void **state)
{
	(void)state;
	char ans[8192];
	/* Request lines libmicrohttpd can parse far enough to answer 400. */
	const char *bad[] = {
	        "GET /x\r\n\r\n",                          /* HTTP/0.9 style: no version */
	        "GET  HTTP/1.1\r\nHost: x\r\n\r\n",        /* empty target */
	        "GET /healthz HTTP/1.1\r\nHost x\r\n\r\n", /* header without colon */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(raw(bad[i], strlen(bad[i]), ans, sizeof ans), 400);
		assert_healthy();
	}
	/* No space at all: MHD closes without an answer (allowed by RFC 9112
	 * 9.6 for an unparseable request); it must not be a success. */
	const char *garbage = "GARBAGE\r\n\r\n";
	int st = raw(garbage, strlen(garbage), ans, sizeof ans);
	assert_true(st == 0 || (st >= 400 && st < 500));
	assert_healthy();

	const char *bad_version = "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n";
	assert_int_equal(raw(bad_version, strlen(bad_version), ans, sizeof ans), 505);
	assert_healthy();

	/* unknown method on a known path: our 405, JSON */
	const char *brew = "BREW /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	assert_int_equal(raw(brew, strlen(brew), ans, sizeof ans), 405);
	assert_non_null(strstr(ans, "\r\nAllow: GET, HEAD\r\n"));
	assert_non_null(strstr(raw_body(ans), "\"method_not_allowed\""));
	assert_healthy();

	/* a header larger than the per-connection memory limit */
	static char huge[MEM_LIMIT * 3];
	int off = snprintf(huge, sizeof huge, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(huge + off, 'h', MEM_LIMIT * 2);
	off += MEM_LIMIT * 2;
	off += snprintf(huge + off, sizeof huge - (size_t)off, "\r\n\r\n");
	assert_int_equal(raw(huge, (size_t)off, ans, sizeof ans), 431);
	assert_healthy();
}

static void bad_address_reported(void **state)
{
	(void)state;
	char err[256] = "";
	struct admin_opts o = {.addr = "127.0.0.1"};
	assert_null(admin_new(&o, err, sizeof err));
	assert_non_null(strstr(err, "expected host:port"));
	o.addr = "127.0.0.1:99999";
	assert_null(admin_new(&o, err, sizeof err));
	assert_non_null(strstr(err, "bad port"));

	/* a port already taken fails at start with a reason */
	char taken[64];
	snprintf(taken, sizeof taken, "127.0.0.1:%u", port);
	o.addr = taken;
	struct admin *other = admin_new(&o, err, sizeof err);
	assert_non_null(other);
	assert_int_equal(admin_start(other, err, sizeof err), SFK_ERR_IO);
	assert_non_null(strstr(err, "cannot listen"));
	admin_free(&other);
	assert_healthy();
}

static void bare_server_has_no_builtins(void **state)
{
	(void)state;
	char err[256];
	struct admin_opts o = {.addr = "127.0.0.1:0", .no_builtin_routes = true, .threads = 2};
	struct admin *hook = admin_new(&o, err, sizeof err);
	assert_non_null(hook);
	admin_route(hook, "POST", "/hook", h_echo, NULL);
	assert_int_equal(admin_start(hook, err, sizeof err), SFK_OK);
	unsigned saved = port;
	port = admin_port(hook);
	assert_true(port != saved);
	struct reply *r = http("GET", "/metrics", NULL, NULL);
	assert_int_equal(r->status, 404);
	r = http("POST", "/hook", "hi", NULL);
	assert_int_equal(r->status, 202);
	port = saved;
	admin_free(&hook);
	assert_healthy();
}

static int connect_port(unsigned p)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait up to ms for data or EOF; returns bytes read, 0 on EOF, -1 if nothing came. */
static ssize_t recv_within(int fd, char *buf, size_t cap, int ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	if (poll(&pfd, 1, ms) != 1)
		return -1;
	return recv(fd, buf, cap, 0);
}

static void connection_limit_and_idle_timeout(void **state)
{
	(void)state;
	char err[256], buf[512];
	struct admin_opts o = {.addr = "127.0.0.1:0", .max_conn = 2, .timeout_s = 1};
	struct admin *s = admin_new(&o, err, sizeof err);
	assert_non_null(s);
	assert_int_equal(admin_start(s, err, sizeof err), SFK_OK);
	unsigned p = admin_port(s);

	/* two slow clients that never finish their request take both slots */
	int a = connect_port(p), b = connect_port(p);
	const char *partial = "GET /healthz HTTP/1.1\r\n";
	assert_int_equal(send(a, partial, strlen(partial), 0), (ssize_t)strlen(partial));
	assert_int_equal(send(b, partial, strlen(partial), 0), (ssize_t)strlen(partial));
	double t0 = now_s();

	int c = connect_port(p);
	const char *full = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	assert_int_equal(send(c, full, strlen(full), 0), (ssize_t)strlen(full));
	/* over the limit: not served while the slots are held (well before the timeout) */
	assert_int_equal(recv_within(c, buf, sizeof buf, 300), -1);

	/* the idle timeout closes the slow clients (EOF, no answer needed) ... */
	assert_true(recv_within(a, buf, sizeof buf, 5000) == 0);
	assert_true(recv_within(b, buf, sizeof buf, 5000) == 0);
	double waited = now_s() - t0;
	assert_true(waited >= 0.5 && waited < 5);
	/* ... and the waiting client is then served */
	ssize_t n = recv_within(c, buf, sizeof buf - 1, 5000);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "HTTP/1.1 200"));
	close(a);
	close(b);
	close(c);
	admin_free(&s);
}

/* ---- --serve mode ---- */

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
	stop = sig;
}

static void populate_metrics(void)
{
	static const double ttfr[] = {60, 300, 900, 1800, 3600, 14400, 86400};
	metrics_register_build_info(SFK_VERSION);
	struct metric *m;
	m = metrics_counter("sfk_cdc_events_total", "CDC change events received.",
	                    "object,change_type");
	metric_add(m, 12, "Lead", "CREATE");
	metric_add(m, 3, "Task", "UPDATE");
	m = metrics_gauge("sfk_cdc_lag_seconds", "Seconds between commit and receipt.", "object");
	metric_set(m, 0.25, "Lead");
	m = metrics_counter("sfk_cdc_errors_total", "CDC errors.", "object,error_type");
	metric_add(m, 1, "Lead", "parse");
	m = metrics_histogram("sfk_first_response_latency_seconds", "Lead time to first response.",
	                      NULL, ttfr, 7);
	metric_observe(m, 42);
	metric_observe(m, 4000);
	metric_observe(m, 200000);
	m = metrics_counter("sfk_first_response_updates_total", "TTFR write-backs.", "outcome");
	metric_add(m, 2, "applied");
	metric_add(m, 1, "stale");
	m = metrics_counter("sfk_decisions_total", "Workload decisions.", "workload,outcome");
	metric_add(m, 5, "lead.route", "assigned");
	metric_add(m, 1, "lead.route", "fallback \"queue\"\\x"); /* escaping on the wire */
	m = metrics_histogram("sfk_assignment_latency_seconds", "Lead create to owner set.", NULL,
	                      metrics_latency_buckets, metrics_latency_nbuckets);
	metric_observe(m, 1.5);
	m = metrics_counter("sfk_auth_requests_total", "Token requests.", "status");
	metric_add(m, 1, "200");
	m = metrics_histogram("sfk_auth_latency_seconds", "Token request latency.", NULL,
	                      metrics_latency_buckets, metrics_latency_nbuckets);
	metric_observe(m, 0.2);
	m = metrics_counter("sfk_errors_total", "Errors by area.", "area,error_type");
	metric_add(m, 1, "salesforce", "lock");
	m = metrics_counter("sfk_api_requests_total", "Salesforce API calls.",
	                    "method,object,status");
	metric_add(m, 7, "PATCH", "Lead", "200");
	m = metrics_histogram("sfk_api_request_duration_seconds", "Salesforce API latency.",
	                      "method", metrics_latency_buckets, metrics_latency_nbuckets);
	metric_observe(m, 0.08, "PATCH");
	m = metrics_gauge("sfk_active_workers", "Workers running.", "workload");
	metric_set(m, 2, "lead.route");
	m = metrics_gauge("sfk_queue_depth", "Items waiting.", "queue_name");
	metric_set(m, 0, "sfk.wl.lead.route");
	m = metrics_counter("sfk_token_cache_hits_total", "Token cache hits.", NULL);
	metric_add(m, 9);
	m = metrics_counter("sfk_token_cache_misses_total", "Token cache misses.", NULL);
	metric_add(m, 1);
	m = metrics_gauge("sfk_api_usage_ratio", "Share of the daily API limit used.", NULL);
	metric_set(m, 0.125);
	m = metrics_gauge("sfk_checkpoint_age_seconds", "Age of the last replay checkpoint.",
	                  "channel");
	metric_set(m, 3, "/data/LeadChangeEvent");
	m = metrics_gauge("sfk_consumer_lag_messages", "Consumer lag.", "topic,partition");
	metric_set(m, 17, "sfk.wl.lead.route", "0");
	m = metrics_histogram("sfk_processing_latency_seconds",
	                      "Commit timestamp to write applied.", "workload",
	                      metrics_latency_buckets, metrics_latency_nbuckets);
	metric_observe(m, 2.2, "lead.route");
	metric_observe(m, INFINITY, "lead.route");
}

static int serve(int argc, char **argv)
{
	static const char *addr;
	static const struct config_entry table[] = {
	        ADMIN_CONFIG_ENTRY(&addr, "127.0.0.1:0"),
	};
	int rc = 1;
	char err[256];
	struct admin *s = NULL;
	struct config *cfg = config_new("test_admin --serve", table, 1);
	config_set_synopsis(cfg, "[--admin-addr host:port] PORTFILE");
	int crc = config_load(cfg, argc, argv);
	if (crc != CONFIG_RUN) {
		rc = crc;
		goto out;
	}
	if (config_nargs(cfg) != 1) {
		fprintf(stderr, "usage: test_admin --serve PORTFILE\n");
		rc = 64;
		goto out;
	}
	log_init("test_admin");
	populate_metrics();
	struct admin_opts o = {.addr = addr};
	s = admin_new(&o, err, sizeof err);
	if (!s || admin_start(s, err, sizeof err) != SFK_OK) {
		log_error("admin start failed err=%s", err);
		goto out;
	}
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &old);
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	/* Write the port atomically: the script polls for the file. */
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", config_arg(cfg, 0)) >= (int)sizeof tmp)
		goto out;
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "%u\n", admin_port(s)) < 0 || fclose(f) != 0 ||
	    rename(tmp, config_arg(cfg, 0)) != 0) {
		log_error("cannot write port file path=%s", config_arg(cfg, 0));
		goto out;
	}
	while (!stop)
		sigsuspend(&old); /* returns after a handled signal */
	log_info("stopping signal=%d", (int)stop);
	rc = 0;
out:
	admin_free(&s);
	config_free(&cfg);
	return rc;
}

int main(int argc, char **argv)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (argc >= 2 && strcmp(argv[1], "--serve") == 0)
		return serve(argc - 1, argv + 1);
	log_set_level(LOG_LVL_ERROR); /* MHD's complaints about our bad requests are expected */
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(healthz_metrics_readyz, setup, teardown),
	        cmocka_unit_test_setup_teardown(not_found_and_method_not_allowed, setup, teardown),
	        cmocka_unit_test_setup_teardown(custom_route_gets_request, setup, teardown),
	        cmocka_unit_test_setup_teardown(oversized_body_413, setup, teardown),
	        cmocka_unit_test_setup_teardown(malformed_requests_4xx, setup, teardown),
	        cmocka_unit_test_setup_teardown(bad_address_reported, setup, teardown),
	        cmocka_unit_test_setup_teardown(bare_server_has_no_builtins, setup, teardown),
	        cmocka_unit_test(connection_limit_and_idle_timeout),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
