/*
 * sf_bench - benchmark driver for the Salesforce client (run by sf_client.sh).
 *
 *   sf_bench calls [N]   API calls for N record updates (default 1000):
 *                        sObject Collections (200 per call) vs one PATCH each
 *   sf_bench rps [N]     N GET /limits through the keep-alive pool vs a new
 *                        connection (TCP + TLS handshake) per request
 *   sf_bench tokens S R  S seconds of GET /limits at R requests/s through the
 *                        shared token cache (REDIS_URL), like one worker
 *                        process; prints the process's token metrics
 *                        (sfk_token_cache_requests_total, sfk_auth_requests_total)
 *
 * Environment as for the integration tests (eval "$(tests/stack/up --sim)").
 * API calls are counted by the emulator (/sim/stats), not by us.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "sf_auth.h"
#include "sf_rest.h"
#include "sf_token.h"
#include "sfid.h"

#define BATCH 200

static const char *need(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v) {
		fprintf(stderr, "sf_bench: %s is not set (eval \"$(tests/stack/up --sim)\")\n",
		        name);
		exit(2);
	}
	return v;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

static json_t *sim_call(const char *method, const char *path, const char *body)
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
	if (getenv("SF_CA_FILE") && *getenv("SF_CA_FILE"))
		curl_easy_setopt(h, CURLOPT_CAINFO, getenv("SF_CA_FILE"));
	CURLcode cc = curl_easy_perform(h);
	curl_slist_free_all(hd);
	curl_easy_cleanup(h);
	json_t *j = cc == CURLE_OK && b.p ? json_loads(b.p, JSON_DECODE_ANY, NULL) : NULL;
	free(b.p);
	return j;
}

static long long api_calls(void)
{
	json_t *s = sim_call("GET", "/sim/stats", NULL);
	const char *k;
	json_t *v;
	long long n = 0;
	json_object_foreach(json_object_get(s, "api"), k, v) n += json_integer_value(v);
	json_decref(s);
	return n;
}

struct client {
	struct sf_auth *auth;
	struct sf_token_cache *tokens;
	struct sf_rest *rest;
};

static void client_open(struct client *c, int no_reuse)
{
	char err[512];
	struct sf_auth_conf ac = {
	        .login_url = need("SF_LOGIN_URL"),
	        .token_url = need("SF_TOKEN_URL"),
	        .client_id = need("SF_CLIENT_ID"),
	        .username = need("SF_USERNAME"),
	        .key_path = need("SF_PRIVATE_KEY_PATH"),
	        .ca_file = getenv("SF_CA_FILE"),
	};
	c->auth = sf_auth_new(&ac, err, sizeof err);
	if (!c->auth) {
		fprintf(stderr, "sf_bench: %s\n", err);
		exit(1);
	}
	struct sf_token_conf tc = {.auth = c->auth, .redis_url = getenv("REDIS_URL")};
	c->tokens = sf_token_new(&tc);
	struct sf_rest_conf rc = {
	        .tokens = c->tokens,
	        .api_version = need("SF_API_VERSION"),
	        .ca_file = getenv("SF_CA_FILE"),
	        .call_client = "sfk-bench",
	        .no_reuse = no_reuse,
	};
	c->rest = sf_rest_new(&rc, err, sizeof err);
	if (!c->rest) {
		fprintf(stderr, "sf_bench: %s\n", err);
		exit(1);
	}
}

static void client_close(struct client *c)
{
	sf_rest_free(&c->rest);
	sf_token_free(&c->tokens);
	sf_auth_free(&c->auth);
}

static int bench_calls(int n)
{
	struct client c;
	char(*ids)[SFID_LEN18 + 1] = calloc((size_t)n, sizeof *ids);
	client_open(&c, 0);
	for (int i = 0; i < n; i++) {
		char body[200];
		snprintf(body, sizeof body, "{\"LastName\":\"Bench%d\",\"Company\":\"Bench %d\"}",
		         i, i);
		json_t *j = sim_call("POST", "/sim/records/Lead", body);
		const char *id = json_string_value(json_object_get(j, "id"));
		if (!id || !sfid_valid(id)) {
			fprintf(stderr, "sf_bench: creating leads through /sim/records failed\n");
			return 1;
		}
		snprintf(ids[i], sizeof ids[i], "%s", id);
		json_decref(j);
	}
	struct sf_error e;
	json_t *warm = NULL;
	sf_rest_limits(c.rest, &warm, &e); /* token outside the measurement */
	json_decref(warm);

	/* Does reading /sim/stats count as a call? Measure, then subtract it. */
	long long self = api_calls();
	self = api_calls() - self;
	long long c0 = api_calls();
	double t0 = now_s();
	int failed = 0;
	for (int off = 0; off < n; off += BATCH) {
		int m = n - off < BATCH ? n - off : BATCH;
		json_t *recs = json_array();
		for (int i = 0; i < m; i++)
			json_array_append_new(recs, json_pack("{s:{s:s},s:s,s:s}", "attributes",
			                                      "type", "Lead", "id", ids[off + i],
			                                      "Title", "collections"));
		struct sf_record_result res[BATCH];
		if (sf_rest_collection_update(c.rest, recs, 0, 0, res, &e) != SFK_OK)
			failed += m;
		else
			for (int i = 0; i < m; i++)
				failed += !res[i].success;
		json_decref(recs);
	}
	double t_coll = now_s() - t0;
	long long coll = api_calls() - c0 - self;

	c0 = api_calls();
	t0 = now_s();
	for (int i = 0; i < n; i++) {
		json_t *f = json_pack("{s:s}", "Title", "single");
		failed += sf_rest_update(c.rest, "Lead", ids[i], f, 0, &e) != SFK_OK;
		json_decref(f);
	}
	double t_single = now_s() - t0;
	long long single = api_calls() - c0 - self;
	printf("record updates: %d (failed %d)\n", n, failed);
	printf("collections:  %lld API calls per %d updates (%.1f per 1,000), %.2f s\n", coll, n,
	       (double)coll * 1000.0 / n, t_coll);
	printf("single PATCH: %lld API calls per %d updates (%.1f per 1,000), %.2f s\n", single, n,
	       (double)single * 1000.0 / n, t_single);
	printf("ratio single/collections: %.1fx fewer API calls with collections\n",
	       coll > 0 ? (double)single / (double)coll : 0.0);
	client_close(&c);
	free(ids);
	return failed != 0;
}

static double rps(int no_reuse, int n, int *failed)
{
	struct client c;
	struct sf_error e;
	client_open(&c, no_reuse);
	json_t *warm = NULL;
	sf_rest_limits(c.rest, &warm, &e);
	json_decref(warm);
	double t0 = now_s();
	for (int i = 0; i < n; i++) {
		json_t *l = NULL;
		*failed += sf_rest_limits(c.rest, &l, &e) != SFK_OK;
		json_decref(l);
	}
	double dt = now_s() - t0;
	client_close(&c);
	return n / dt;
}

static int bench_rps(int n)
{
	int failed = 0;
	double pooled = rps(0, n, &failed);
	double fresh = rps(1, n, &failed);
	printf("requests: %d each (failed %d)\n", n, failed);
	printf("keep-alive pool:        %.0f requests/s\n", pooled);
	printf("new connection per req: %.0f requests/s\n", fresh);
	printf("ratio: %.1fx with connection reuse\n", fresh > 0 ? pooled / fresh : 0.0);
	return failed != 0;
}

/* One process of the token-cache benchmark (tests/bench/run scenario 6). */
static int bench_tokens(long seconds, long rate)
{
	struct client c;
	struct sf_error e;
	int failed = 0;
	long done = 0;
	client_open(&c, 0);
	double t0 = now_s();
	for (;;) {
		double t = now_s() - t0;
		if (t >= (double)seconds)
			break;
		double due = (double)done / (double)rate;
		if (due > t) {
			struct timespec ts = {0, (long)((due - t) * 1e9)};
			nanosleep(&ts, NULL);
			continue;
		}
		json_t *l = NULL;
		failed += sf_rest_limits(c.rest, &l, &e) != SFK_OK;
		json_decref(l);
		done++;
	}
	size_t len = 0;
	char *text = metrics_render(&len);
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		if (line[0] != '#' && (strncmp(line, "sfk_token_cache_requests_total", 30) == 0 ||
		                       strncmp(line, "sfk_auth_requests_total", 23) == 0))
			printf("%.*s\n", (int)n, line);
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	printf("requests %ld failed %d\n", done, failed);
	client_close(&c);
	return failed != 0;
}

int main(int argc, char **argv)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	log_init("sf_bench");
	log_set_level(LOG_LVL_WARN);
	const char *mode = argc > 1 ? argv[1] : "";
	long n = 0;
	if (argc > 2) {
		char *end;
		n = strtol(argv[2], &end, 10);
		if (*end || n <= 0) {
			fprintf(stderr, "sf_bench: N must be a positive integer\n");
			return 2;
		}
	}
	if (strcmp(mode, "calls") == 0)
		return bench_calls(n ? (int)n : 1000);
	if (strcmp(mode, "rps") == 0)
		return bench_rps(n ? (int)n : 500);
	if (strcmp(mode, "tokens") == 0 && argc == 4) {
		char *end;
		errno = 0;
		long rate = strtol(argv[3], &end, 10);
		if (*end || errno || rate <= 0 || n <= 0) {
			fprintf(stderr, "sf_bench: tokens SECONDS RATE: positive integers\n");
			return 2;
		}
		return bench_tokens(n, rate);
	}
	fprintf(stderr, "usage: sf_bench calls [N] | rps [N] | tokens SECONDS RATE\n");
	return 2;
}
