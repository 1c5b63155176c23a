/*
 * Integration tests for the Salesforce client (common/sf_*) against sfk-sim
 * and real Redis, as started by `eval "$(tests/stack/up --sim)"`:
 *   - eight processes started together mint exactly one token;
 *   - sessions expired mid-run cost exactly one new token and no failed request;
 *   - 503 bursts and UNABLE_TO_LOCK_ROW are retried to success;
 *   - a permanent error is reported for one record of 200, the other 199 land;
 *   - with Redis stopped requests still succeed (degraded gauge says so);
 *   - no line of the private key's PEM body appears in the captured logs.
 * Every process logs to one captured file (children inherit the fd).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "sf_auth.h"
#include "sf_quota.h"
#include "sf_rest.h"
#include "sf_token.h"
#include "sfid.h"
#include "soql_build.h"

#define NPROC    8
#define NRECORDS 200

static char log_path[256];
static char lead_ids[NRECORDS][SFID_LEN18 + 1];
static int leads_made;

static const char *need(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v) {
		fprintf(stderr,
		        "it_sf_client: %s is not set; run under eval \"$(tests/stack/up --sim)\"\n",
		        name);
		fail_msg("%s is not set (start the stack: eval \"$(tests/stack/up --sim)\")", name);
	}
	return v;
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the sim's control API ---- */

struct buf {
	char *p;
	size_t n;
};
static size_t on_data(char *d, size_t s, size_t n, void *ud)
{
	struct buf *b = ud;
	b->p = realloc(b->p, b->n + s * n + 1);
	memcpy(b->p + b->n, d, s * n);
	b->n += s * n;
	b->p[b->n] = '\0';
	return s * n;
}

/* method on $SF_SIM_URL + path; returns the parsed JSON body (new reference) or NULL. */
static json_t *sim_call(const char *method, const char *path, const char *body, long *status)
{
	char url[1024];
	struct buf b = {0};
	snprintf(url, sizeof url, "%s%s", need("SF_SIM_URL"), path);
	CURL *h = curl_easy_init();
	struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	if (getenv("SF_CA_FILE") && *getenv("SF_CA_FILE"))
		curl_easy_setopt(h, CURLOPT_CAINFO, getenv("SF_CA_FILE"));
	CURLcode cc = curl_easy_perform(h);
	long st = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
	if (status)
		*status = st;
	curl_slist_free_all(hd);
	curl_easy_cleanup(h);
	json_t *j = cc == CURLE_OK && b.p ? json_loads(b.p, JSON_DECODE_ANY, NULL) : NULL;
	free(b.p);
	return j;
}

static void sim_faults(const char *spec)
{
	long st = 0;
	json_t *j = sim_call("POST", "/sim/faults", spec, &st);
	assert_int_equal(st, 200);
	json_decref(j);
}

static long long sum_obj(json_t *o)
{
	const char *k;
	json_t *v;
	long long s = 0;
	json_object_foreach(o, k, v) s += json_integer_value(v);
	return s;
}

/* Tokens the sim has issued so far ("ok" outcomes of the token endpoint). */
static long long sim_tokens(void)
{
	json_t *s = sim_call("GET", "/sim/stats", NULL, NULL);
	assert_non_null(s);
	long long n = json_integer_value(json_object_get(json_object_get(s, "tokens"), "ok"));
	json_decref(s);
	return n;
}

static long long sim_api_calls(void)
{
	json_t *s = sim_call("GET", "/sim/stats", NULL, NULL);
	assert_non_null(s);
	long long n = sum_obj(json_object_get(s, "api"));
	json_decref(s);
	return n;
}

static long long sim_status_count(const char *status)
{
	json_t *s = sim_call("GET", "/sim/stats", NULL, NULL);
	assert_non_null(s);
	long long n = json_integer_value(json_object_get(json_object_get(s, "status"), status));
	json_decref(s);
	return n;
}

/* ---- one client, built from the environment ---- */

struct client {
	struct sf_auth *auth;
	struct sf_token_cache *tokens;
	struct sf_rest *rest;
};

static struct sf_quota *g_quota; /* passed to the next client_open, if set */
static int g_batch;
static size_t g_max_response;
static int g_no_ca;    /* 1: do not pass $SF_CA_FILE (TLS must then fail) */
static long g_wait_ms; /* token wait deadline for the next client_open, 0 = default */

static int client_open(struct client *c, const char *redis_url, long retry_total_ms)
{
	char err[512];
	struct sf_auth_conf ac = {
	        .login_url = need("SF_LOGIN_URL"),
	        .token_url = need("SF_TOKEN_URL"),
	        .client_id = need("SF_CLIENT_ID"),
	        .username = need("SF_USERNAME"),
	        .key_path = need("SF_PRIVATE_KEY_PATH"),
	        .ca_file = g_no_ca ? NULL : getenv("SF_CA_FILE"),
	};
	memset(c, 0, sizeof *c);
	c->auth = sf_auth_new(&ac, err, sizeof err);
	if (!c->auth) {
		fprintf(stderr, "sf_auth_new: %s\n", err);
		return -1;
	}
	struct sf_token_conf tc = {
	        .auth = c->auth, .redis_url = redis_url, .ttl_ms = 600000, .wait_ms = g_wait_ms};
	c->tokens = sf_token_new(&tc);
	struct sf_rest_conf rc = {
	        .tokens = c->tokens,
	        .api_version = need("SF_API_VERSION"),
	        .ca_file = g_no_ca ? NULL : getenv("SF_CA_FILE"),
	        .call_client = "sfk-it",
	        .max_response_bytes = g_max_response,
	        .redis_url = redis_url,
	        .retry_base_ms = 20,
	        .retry_max_ms = 500,
	        .retry_total_ms = retry_total_ms,
	        .quota = g_quota,
	        .query_batch_size = g_batch,
	};
	c->rest = sf_rest_new(&rc, err, sizeof err);
	if (!c->rest) {
		fprintf(stderr, "sf_rest_new: %s\n", err);
		return -1;
	}
	return 0;
}

static void client_close(struct client *c)
{
	sf_rest_free(&c->rest);
	sf_token_free(&c->tokens);
	sf_auth_free(&c->auth);
}

static void drop_shared_token(void)
{
	struct client c;
	char err[256];
	assert_int_equal(client_open(&c, need("REDIS_URL"), 20000), 0);
	struct redis *r = redis_connect_url(need("REDIS_URL"), NULL, err, sizeof err);
	assert_non_null(r);
	redisReply *rep = redis_cmd(r, "DEL %s", sf_token_key(c.tokens));
	assert_non_null(rep);
	freeReplyObject(rep);
	redis_free(r);
	client_close(&c);
}

/* Fork n children that each run fn(i) after the parent opens the gate. */
struct gate {
	int fds[2];
};
static void gate_wait(struct gate *g)
{
	char ch;
	close(g->fds[1]);
	while (read(g->fds[0], &ch, 1) < 0 && errno == EINTR)
		;
}

static void wait_children(pid_t *pids, int n, int *failed)
{
	*failed = 0;
	for (int i = 0; i < n; i++) {
		int st = 0;
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			(*failed)++;
	}
}

/* ---- tests ---- */

static void eight_processes_one_token(void **state)
{
	(void)state;
	drop_shared_token();
	long long before = sim_tokens();
	struct gate g;
	pid_t pids[NPROC];
	assert_int_equal(pipe(g.fds), 0);
	for (int i = 0; i < NPROC; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct client c;
			if (client_open(&c, need("REDIS_URL"), 20000) != 0)
				_exit(2);
			gate_wait(&g); /* all eight start at the same instant */
			json_t *lim = NULL;
			struct sf_error e;
			enum sfk_err rc = sf_rest_limits(c.rest, &lim, &e);
			if (rc != SFK_OK)
				log_error("child request failed err=%s msg=%s", sfk_err_str(rc),
				          e.message);
			json_decref(lim);
			client_close(&c);
			_exit(rc == SFK_OK ? 0 : 1);
		}
	}
	close(g.fds[0]);
	close(g.fds[1]); /* open the gate */
	int failed;
	wait_children(pids, NPROC, &failed);
	assert_int_equal(failed, 0);
	assert_int_equal(sim_tokens() - before, 1);
}

static void expired_sessions_cost_one_token(void **state)
{
	(void)state;
	char stop[300];
	snprintf(stop, sizeof stop, "%s.stop", log_path);
	unlink(stop);
	/* Warm the shared cache so every child starts with the same token. */
	struct client c;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 20000), 0);
	json_t *lim = NULL;
	struct sf_error e;
	assert_int_equal(sf_rest_limits(c.rest, &lim, &e), SFK_OK);
	json_decref(lim);
	client_close(&c);

	long long before = sim_tokens();
	struct gate g;
	pid_t pids[NPROC];
	assert_int_equal(pipe(g.fds), 0);
	for (int i = 0; i < NPROC; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			if (client_open(&c, need("REDIS_URL"), 20000) != 0)
				_exit(2);
			gate_wait(&g);
			int n = 0, bad = 0;
			long long deadline = mono_ms() + 60000;
			/* Keep going until the parent says stop (after the expiry). */
			while ((n < 10 || access(stop, F_OK) != 0) && mono_ms() < deadline) {
				json_t *l = NULL;
				enum sfk_err rc = sf_rest_limits(c.rest, &l, &e);
				json_decref(l);
				if (rc != SFK_OK) {
					log_error("child request failed err=%s msg=%s",
					          sfk_err_str(rc), e.message);
					bad++;
				}
				n++;
			}
			client_close(&c);
			_exit(bad == 0 && mono_ms() < deadline ? 0 : 1);
		}
	}
	close(g.fds[0]);
	long long calls0 = sim_api_calls();
	close(g.fds[1]);
	long long deadline = mono_ms() + 30000;
	while (sim_api_calls() < calls0 + 4 * NPROC && mono_ms() < deadline)
		usleep(10000);
	assert_true(mono_ms() < deadline);
	sim_faults("{\"expire_sessions\":true}");
	long long calls1 = sim_api_calls();
	while (sim_api_calls() < calls1 + 8 * NPROC && mono_ms() < deadline)
		usleep(10000);
	assert_true(mono_ms() < deadline);
	int fd = open(stop, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	int failed;
	wait_children(pids, NPROC, &failed);
	unlink(stop);
	assert_int_equal(failed, 0);
	assert_int_equal(sim_tokens() - before, 1);
	/* The expiry really bit: the sim answered 401s. */
	assert_true(sim_status_count("401") > 0);
}

/* 200 Leads created as a UI user through the sim's control API. */
static void make_leads(void)
{
	if (leads_made)
		return;
	for (int i = 0; i < NRECORDS; i++) {
		char body[256];
		long st = 0;
		snprintf(body, sizeof body,
		         "{\"LastName\":\"It%03d\",\"Company\":\"Client IT "
		         "%03d\",\"Country\":\"DE\"}",
		         i, i);
		json_t *j = sim_call("POST", "/sim/records/Lead", body, &st);
		assert_int_equal(st, 201);
		const char *id = json_string_value(json_object_get(j, "id"));
		assert_non_null(id);
		assert_true(sfid_valid(id));
		snprintf(lead_ids[i], sizeof lead_ids[i], "%s", id);
		json_decref(j);
	}
	leads_made = 1;
}

static json_t *batch(const char *description, int bad_index)
{
	json_t *recs = json_array();
	for (int i = 0; i < NRECORDS; i++) {
		json_t *r = json_pack("{s:{s:s}, s:s, s:s}", "attributes", "type", "Lead", "id",
		                      lead_ids[i], "Description", description);
		if (i == bad_index)
			json_object_set_new(r, "No_Such_Field__c", json_string("x"));
		json_array_append_new(recs, r);
	}
	return recs;
}

/* Description of every lead as Salesforce now has it, via the query iterator. */
static int count_with_description(struct client *c, const char *want)
{
	const char *ids[NRECORDS];
	for (int i = 0; i < NRECORDS; i++)
		ids[i] = lead_ids[i];
	struct soql_list l = {0};
	char err[256];
	assert_int_equal(soql_build_in_ids("SELECT Id, Description FROM Lead WHERE Id IN ", "", ids,
	                                   NRECORDS, sf_rest_query_uri_overhead(c->rest), 0, &l,
	                                   err, sizeof err),
	                 SFK_OK);
	int n = 0, seen = 0;
	for (size_t q = 0; q < l.n; q++) {
		struct sf_query *it = NULL;
		struct sf_error e;
		assert_int_equal(sf_query_open(c->rest, l.q[q], &it, &e), SFK_OK);
		json_t *rec;
		while (sf_query_next(it, &rec, &e) == SFK_OK && rec) {
			seen++;
			const char *d = json_string_value(json_object_get(rec, "Description"));
			if (d && strcmp(d, want) == 0)
				n++;
		}
		sf_query_free(&it);
	}
	soql_list_free(&l);
	assert_int_equal(seen, NRECORDS);
	return n;
}

static void retries_5xx_and_lock_to_success(void **state)
{
	(void)state;
	make_leads();
	struct client c;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 60000), 0);
	struct metric *retries = metrics_counter(
	        "sfk_api_retries_total", "Salesforce REST attempts retried, by error", "error");
	double r5 = metric_value(retries, "http_5xx"), rl = metric_value(retries, "lock");
	long long s503 = sim_status_count("503");

	sim_faults("{\"error_rate\":0.3,\"error_status\":503,\"error_paths\":\"/services/data\","
	           "\"lock_rate\":0.2,\"seed\":7}");
	json_t *recs = batch("retried", -1);
	struct sf_record_result res[NRECORDS];
	struct sf_error e;
	enum sfk_err rc = sf_rest_collection_update(c.rest, recs, 0, 0, res, &e);
	json_decref(recs);
	/* Single-record PATCHes through the same storm. */
	int single_ok = 0;
	for (int i = 0; i < 20; i++) {
		json_t *f = json_pack("{s:s}", "Title", "retried");
		if (sf_rest_update(c.rest, "Lead", lead_ids[i], f, 0, &e) == SFK_OK)
			single_ok++;
		json_decref(f);
	}
	sim_faults("{}");
	assert_int_equal(rc, SFK_OK);
	int ok = 0;
	for (int i = 0; i < NRECORDS; i++)
		ok += res[i].success;
	assert_int_equal(ok, NRECORDS);
	assert_int_equal(single_ok, 20);
	/* The storm happened and was retried through. */
	assert_true(sim_status_count("503") > s503);
	assert_true(metric_value(retries, "http_5xx") > r5);
	assert_true(metric_value(retries, "lock") > rl);
	assert_int_equal(count_with_description(&c, "retried"), NRECORDS);
	client_close(&c);
}

static void permanent_error_reported_per_record(void **state)
{
	(void)state;
	make_leads();
	struct client c;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 20000), 0);
	json_t *recs = batch("one-bad", 57);
	struct sf_record_result res[NRECORDS];
	struct sf_error e;
	assert_int_equal(sf_rest_collection_update(c.rest, recs, 0, 0, res, &e), SFK_OK);
	json_decref(recs);
	for (int i = 0; i < NRECORDS; i++) {
		if (i == 57) {
			assert_false(res[i].success);
			assert_int_equal(sfk_err_class(res[i].error.err), SFK_CLASS_PERMANENT);
			assert_string_equal(res[i].error.code, "INVALID_FIELD");
		} else {
			assert_true(res[i].success);
			assert_string_equal(res[i].id, lead_ids[i]);
		}
	}
	assert_int_equal(count_with_description(&c, "one-bad"), NRECORDS - 1);
	client_close(&c);
}

/* Pagination, describe cache, emailSimple, quota governor. */
static void query_describe_email_quota(void **state)
{
	(void)state;
	make_leads();
	long st = 0;
	json_t *j = sim_call("POST", "/sim/records/Lead",
	                     "{\"LastName\":\"Extra\",\"Company\":\"Client IT extra\"}", &st);
	assert_int_equal(st, 201); /* now more than one 200-record page of Leads */
	json_decref(j);
	struct sf_quota *q = g_quota = sf_quota_new(0.80, 0.95, 1000);
	g_batch = 200;
	struct client c;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 20000), 0);
	g_quota = NULL;
	g_batch = 0;

	struct sf_query *it = NULL;
	struct sf_error e;
	assert_int_equal(sf_query_open(c.rest, "SELECT Id, Company FROM Lead", &it, &e), SFK_OK);
	long long total = sf_query_total(it);
	assert_true(total > NRECORDS);
	long long seen = 0;
	json_t *rec;
	while (sf_query_next(it, &rec, &e) == SFK_OK && rec) {
		assert_true(sfid_valid(json_string_value(json_object_get(rec, "Id"))));
		seen++;
	}
	assert_int_equal(e.err, SFK_OK);
	assert_int_equal(seen, total);
	assert_int_equal(sf_query_pages(it), (int)((total + 199) / 200));
	sf_query_free(&it);

	/* A query URI over the limit is refused before it is sent. */
	char *big = malloc(20000);
	memset(big, 'a', 19999);
	big[19999] = '\0';
	char *soql = NULL;
	assert_true(asprintf(&soql, "SELECT Id FROM Lead WHERE Company = '%s'", big) > 0);
	assert_int_equal(sf_query_open(c.rest, soql, &it, &e), SFK_ERR_TOO_LARGE);
	free(soql);
	free(big);

	/* describe: the second call is served from Redis, the sim sees one. */
	json_t *d1 = NULL, *d2 = NULL;
	struct redis *rd = redis_connect_url(need("REDIS_URL"), NULL, (char[256]){0}, 256);
	assert_non_null(rd);
	char key[128];
	snprintf(key, sizeof key, "sfk:describe:v%s:Lead", need("SF_API_VERSION"));
	redisReply *rep = redis_cmd(rd, "DEL %s", key);
	freeReplyObject(rep);
	long long calls = sim_api_calls();
	assert_int_equal(sf_rest_describe(c.rest, "Lead", &d1, &e), SFK_OK);
	long long after_first = sim_api_calls();
	assert_int_equal(sf_rest_describe(c.rest, "Lead", &d2, &e), SFK_OK);
	long long after_second = sim_api_calls();
	assert_true(after_first > calls);
	assert_int_equal(after_second - after_first, after_first - calls - 1);
	assert_true(json_array_size(json_object_get(d2, "fields")) > 0);
	assert_true(json_equal(d1, d2));
	rep = redis_cmd(rd, "TTL %s", key);
	assert_non_null(rep);
	assert_true(rep->integer > 0 && rep->integer <= 3600);
	freeReplyObject(rep);
	redis_free(rd);
	json_decref(d1);
	json_decref(d2);

	/* emailSimple: one good input; one without a body is a permanent error. */
	json_t *out = NULL;
	json_t *in = json_pack("[{s:s, s:s, s:s}]", "emailAddresses", "lead@example.com",
	                       "emailSubject", "Hello", "emailBody", "Thanks for reaching out");
	assert_int_equal(sf_rest_email_simple(c.rest, in, &out, &e), SFK_OK);
	assert_int_equal(json_array_size(out), 1);
	assert_true(json_is_true(json_object_get(json_array_get(out, 0), "isSuccess")));
	json_decref(out);
	json_decref(in);
	in = json_pack("[{s:s, s:s}]", "emailAddresses", "lead@example.com", "emailSubject", "x");
	out = NULL;
	assert_int_equal(sf_rest_email_simple(c.rest, in, &out, &e), SFK_ERR_SF_PERMANENT);
	assert_true(e.code[0] != '\0');
	json_decref(out);
	json_decref(in);

	/* Sforce-Limit-Info reached the governor: the ratio is the sim's used/max. */
	json_t *stats = sim_call("GET", "/sim/stats", NULL, NULL);
	json_t *usage = json_object_get(stats, "api_usage");
	double sim_ratio = (double)json_integer_value(json_object_get(usage, "used")) /
	                   (double)json_integer_value(json_object_get(usage, "max"));
	json_decref(stats);
	json_t *lim = NULL;
	assert_int_equal(sf_rest_limits(c.rest, &lim, &e), SFK_OK);
	json_decref(lim);
	struct metric *ratio = metrics_gauge("sfk_api_usage_ratio",
	                                     "Share of the org's daily API request limit used "
	                                     "(Sforce-Limit-Info api-usage)",
	                                     NULL);
	assert_true(metric_value(ratio) > 0);
	assert_true(metric_value(ratio) >= sim_ratio * 0.5 &&
	            metric_value(ratio) <= sim_ratio * 2 + 0.001);
	assert_true(sf_quota_ratio(q) == metric_value(ratio));
	assert_int_equal(sf_quota_state(q), SF_QUOTA_OK);
	client_close(&c);
	sf_quota_free(&q);
}

static void quota_pause_holds_writes(void **state)
{
	(void)state;
	make_leads();
	struct sf_quota *q = sf_quota_new(0.80, 0.95, 1000);
	g_quota = q;
	struct client c;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 20000), 0);
	g_quota = NULL;
	struct sf_error e;
	/* The org is at 96% of its daily limit. */
	sf_quota_update(q, 96000, 100000);
	char why[256];
	assert_int_equal(sf_quota_ready(q, why, sizeof why), 0);
	long long self = sim_api_calls();
	self = sim_api_calls() - self; /* does reading /sim/stats count as a call? */
	long long calls = sim_api_calls();
	json_t *f = json_pack("{s:s}", "Title", "paused?");
	assert_int_equal(sf_rest_update(c.rest, "Lead", lead_ids[1], f, 0, &e), SFK_ERR_LIMIT);
	assert_string_equal(e.code, "QUOTA_PAUSED");
	long long after = sim_api_calls();
	assert_int_equal(after - calls, self); /* nothing reached Salesforce */
	/* Essential writes still go. */
	assert_int_equal(sf_rest_update(c.rest, "Lead", lead_ids[1], f, SF_REQ_ESSENTIAL, &e),
	                 SFK_OK);
	json_decref(f);
	client_close(&c);
	sf_quota_free(&q);
}

/* A minter that died holding the lock: waiters take over once the lock
 * expires; a lock held past the wait deadline is an error, not a hang. */
static void dead_minter_lock(void **state)
{
	(void)state;
	char err[256];
	drop_shared_token();
	struct client c;
	g_wait_ms = 3000;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 20000), 0);
	struct redis *r = redis_connect_url(need("REDIS_URL"), NULL, err, sizeof err);
	assert_non_null(r);
	char lock[128];
	snprintf(lock, sizeof lock, "%s:lock", sf_token_key(c.tokens));
	redisReply *rep = redis_cmd(r, "SET %s dead-process PX 400", lock);
	assert_non_null(rep);
	freeReplyObject(rep);
	long long before = sim_tokens(), t0 = mono_ms();
	struct sf_auth_token tok;
	struct sf_error e;
	assert_int_equal(sf_token_get(c.tokens, &tok, &e), SFK_OK);
	assert_true(mono_ms() - t0 >= 350); /* it did wait for the lock */
	assert_int_equal(sim_tokens() - before, 1);
	sf_auth_token_clear(&tok);
	client_close(&c);

	drop_shared_token();
	g_wait_ms = 300;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 20000), 0);
	g_wait_ms = 0;
	rep = redis_cmd(r, "SET %s stuck-process PX 10000", lock);
	freeReplyObject(rep);
	t0 = mono_ms();
	assert_int_equal(sf_token_get(c.tokens, &tok, &e), SFK_ERR_TIMEOUT);
	assert_true(mono_ms() - t0 < 2000);
	assert_non_null(strstr(e.message, "waited"));
	rep = redis_cmd(r, "DEL %s", lock);
	freeReplyObject(rep);
	redis_free(r);
	client_close(&c);
}

/* TLS is verified: without the private CA the sim's certificate is refused. */
static void tls_always_verified(void **state)
{
	(void)state;
	struct client c;
	g_no_ca = 1;
	int rc = client_open(&c, NULL, 1000); /* per-process tokens: nothing cached to reuse */
	g_no_ca = 0;
	assert_int_equal(rc, 0);
	json_t *lim = NULL;
	struct sf_error e;
	assert_int_equal(sf_rest_limits(c.rest, &lim, &e), SFK_ERR_TRANSPORT);
	assert_null(lim);
	assert_non_null(strstr(e.message, "token request"));
	client_close(&c);
}

/* A response past the size cap aborts the transfer. */
static void response_cap_aborts(void **state)
{
	(void)state;
	make_leads();
	struct client c;
	g_max_response = 4096;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 1000), 0);
	g_max_response = 0;
	struct sf_query *it = NULL;
	struct sf_error e;
	assert_int_equal(sf_query_open(c.rest, "SELECT Id, Company FROM Lead", &it, &e),
	                 SFK_ERR_TOO_LARGE);
	assert_null(it);
	/* Small answers still pass. */
	json_t *rec = NULL;
	assert_int_equal(sf_rest_get(c.rest, "Lead", lead_ids[3], "Id,Company", &rec, &e), SFK_OK);
	assert_string_equal(json_string_value(json_object_get(rec, "Company")), "Client IT 003");
	json_decref(rec);
	/* Ids are validated before any request. */
	assert_int_equal(sf_rest_get(c.rest, "Lead", "00Q' OR Id != '", NULL, &rec, &e),
	                 SFK_ERR_INVALID);
	client_close(&c);
}

struct thread_arg {
	struct client *c;
	int ok;
};
static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	struct sf_error e;
	for (int i = 0; i < 50; i++) {
		json_t *l = NULL;
		a->ok += sf_rest_limits(a->c->rest, &l, &e) == SFK_OK;
		json_decref(l);
	}
	return NULL;
}

/* One client (pool, token cache) used by four threads at once. */
static void threads_share_one_client(void **state)
{
	(void)state;
	struct client c;
	assert_int_equal(client_open(&c, need("REDIS_URL"), 20000), 0);
	pthread_t t[4];
	struct thread_arg a[4];
	for (int i = 0; i < 4; i++) {
		a[i] = (struct thread_arg){.c = &c};
		assert_int_equal(pthread_create(&t[i], NULL, thread_main, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].ok, 50);
	}
	client_close(&c);
}

/* A free loopback port chosen by the kernel (racy in theory; fine for a test). */
static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	close(s);
	return ntohs(a.sin_port);
}

static void redis_down_requests_succeed(void **state)
{
	(void)state;
	/* A Redis of our own, so stopping it disturbs nobody else. */
	char dir[] = "/tmp/it_sf_redis.XXXXXX";
	assert_non_null(mkdtemp(dir));
	int port = free_port();
	char url[64], ports[16];
	snprintf(ports, sizeof ports, "%d", port);
	snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
	pid_t rp = fork();
	assert_true(rp >= 0);
	if (rp == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		execlp("redis-server", "redis-server", "--port", ports, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", "--dir", dir, (char *)NULL);
		_exit(127);
	}
	char err[256];
	struct redis *probe = NULL;
	long long deadline = mono_ms() + 10000;
	while (!(probe = redis_connect_url(url, NULL, err, sizeof err)) && mono_ms() < deadline)
		usleep(20000);
	assert_non_null(probe);
	redis_free(probe);

	struct client c;
	assert_int_equal(client_open(&c, url, 20000), 0);
	json_t *lim = NULL;
	struct sf_error e;
	assert_int_equal(sf_rest_limits(c.rest, &lim, &e), SFK_OK);
	json_decref(lim);
	assert_int_equal(sf_token_degraded(c.tokens), 0);

	kill(rp, SIGKILL);
	assert_int_equal(waitpid(rp, NULL, 0), rp);
	/* Force a fresh token while Redis is gone: the session dies at the sim. */
	sim_faults("{\"expire_sessions\":true}");
	for (int i = 0; i < 5; i++) {
		lim = NULL;
		assert_int_equal(sf_rest_limits(c.rest, &lim, &e), SFK_OK);
		json_decref(lim);
	}
	json_t *f = json_pack("{s:s}", "Title", "no-redis");
	make_leads();
	assert_int_equal(sf_rest_update(c.rest, "Lead", lead_ids[0], f, 0, &e), SFK_OK);
	json_decref(f);
	assert_int_equal(sf_token_degraded(c.tokens), 1);
	struct metric *g = metrics_gauge("sfk_token_cache_degraded",
	                                 "1 while the shared token cache (Redis) is unusable and "
	                                 "this process uses its own token",
	                                 NULL);
	assert_true(metric_value(g) == 1.0);
	client_close(&c);
	rmdir(dir);
}

static void private_key_never_logged(void **state)
{
	(void)state;
	FILE *k = fopen(need("SF_PRIVATE_KEY_PATH"), "r");
	assert_non_null(k);
	FILE *l = fopen(log_path, "r");
	assert_non_null(l);
	fseek(l, 0, SEEK_END);
	long size = ftell(l);
	rewind(l);
	assert_true(size > 0); /* the earlier tests did log (retries, degraded cache) */
	char *logs = calloc(1, (size_t)size + 1);
	assert_int_equal(fread(logs, 1, (size_t)size, l), (size_t)size);
	fclose(l);
	assert_non_null(strstr(logs, "retry"));
	char line[256];
	int body_lines = 0;
	while (fgets(line, sizeof line, k)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strncmp(line, "-----", 5) == 0 || strlen(line) < 16)
			continue;
		body_lines++;
		if (strstr(logs, line))
			fail_msg("a line of the private key's PEM body is in %s", log_path);
	}
	fclose(k);
	assert_true(body_lines > 5);
	free(logs);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	log_init("it_sf_client");
	log_set_level(LOG_LVL_DEBUG);
	snprintf(log_path, sizeof log_path, "%s/it_sf_client.%d.log",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
	int fd = open(log_path, O_CREAT | O_TRUNC | O_WRONLY | O_APPEND, 0600);
	if (fd < 0)
		return 1;
	log_set_fd(fd);
	fprintf(stderr, "it_sf_client: logs in %s\n", log_path);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(eight_processes_one_token),
	        cmocka_unit_test(expired_sessions_cost_one_token),
	        cmocka_unit_test(retries_5xx_and_lock_to_success),
	        cmocka_unit_test(permanent_error_reported_per_record),
	        cmocka_unit_test(query_describe_email_quota),
	        cmocka_unit_test(quota_pause_holds_writes),
	        cmocka_unit_test(dead_minter_lock),
	        cmocka_unit_test(tls_always_verified),
	        cmocka_unit_test(response_cap_aborts),
	        cmocka_unit_test(threads_share_one_client),
	        cmocka_unit_test(redis_down_requests_succeed),
	        cmocka_unit_test(private_key_never_logged),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	close(fd);
	return rc;
}
