/*
 * Integration test for Bulk API 2.0 ingest (common/sf_bulk) against sfk-sim:
 * a CSV update of 50 Leads where one row names a deleted Lead finishes
 * JobComplete, the 49 others are updated (seen through a query), and the
 * deleted one comes back from failedResults with its id and error code.
 * Environment from `eval "$(tests/stack/up --sim)"` (the shared stack is fine:
 * the test only counts its own 50 Leads, injects no faults and reads no
 * global counter); a missing variable fails at once, naming it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sf_auth.h"
#include "sf_bulk.h"
#include "sf_rest.h"
#include "sf_token.h"
#include "sfid.h"
#include "soql_build.h"

#define N 50

static const char *need(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v)
		fail_msg("%s is not set (start the stack: eval \"$(tests/stack/up --sim)\")", name);
	return v;
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
	curl_easy_setopt(h, CURLOPT_CAINFO, need("SF_CA_FILE"));
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L); /* a wedged sim fails the test, never hangs it */
	CURLcode cc = curl_easy_perform(h);
	*status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(hd);
	curl_easy_cleanup(h);
	json_t *j = cc == CURLE_OK && b.p ? json_loads(b.p, JSON_DECODE_ANY, NULL) : NULL;
	free(b.p);
	return j;
}

static void bulk_update_reports_failed_rows(void **state)
{
	(void)state;
	char err[512];
	struct sf_auth_conf ac = {
	        .login_url = need("SF_LOGIN_URL"),
	        .token_url = need("SF_TOKEN_URL"),
	        .client_id = need("SF_CLIENT_ID"),
	        .username = need("SF_USERNAME"),
	        .key_path = need("SF_PRIVATE_KEY_PATH"),
	        .ca_file = need("SF_CA_FILE"),
	};
	struct sf_auth *auth = sf_auth_new(&ac, err, sizeof err);
	if (!auth)
		fail_msg("sf_auth_new: %s", err);
	struct sf_token_conf tc = {.auth = auth, .redis_url = need("REDIS_URL")};
	struct sf_token_cache *tokens = sf_token_new(&tc);
	struct sf_rest_conf rc = {.tokens = tokens,
	                          .api_version = need("SF_API_VERSION"),
	                          .ca_file = need("SF_CA_FILE"),
	                          .call_client = "sfk-it-bulk"};
	struct sf_rest *rest = sf_rest_new(&rc, err, sizeof err);
	if (!rest)
		fail_msg("sf_rest_new: %s", err);

	static char ids[N][19];
	const char *idp[N];
	for (int i = 0; i < N; i++) {
		char body[200];
		long st = 0;
		snprintf(body, sizeof body, "{\"LastName\":\"Bulk%02d\",\"Company\":\"Bulk IT\"}",
		         i);
		json_t *j = sim_call("POST", "/sim/records/Lead", body, &st);
		assert_int_equal(st, 201);
		snprintf(ids[i], sizeof ids[i], "%s", json_string_value(json_object_get(j, "id")));
		assert_true(sfid_valid(ids[i]));
		idp[i] = ids[i];
		json_decref(j);
	}
	char path[128];
	long st = 0;
	snprintf(path, sizeof path, "/sim/records/Lead/%s", ids[7]);
	json_decref(sim_call("DELETE", path, NULL, &st));
	assert_int_equal(st, 204);

	/* Values that need RFC 4180 quoting, and a null (#N/A). */
	json_t *recs = json_array();
	for (int i = 0; i < N; i++)
		json_array_append_new(recs, json_pack("{s:s, s:s, s:n}", "Id", ids[i], "Title",
		                                      "VP, \"Growth\"", "Description"));
	const char *cols[] = {"Id", "Title", "Description"};
	size_t len = 0;
	char *csv = sf_bulk_csv(cols, 3, recs, &len, err, sizeof err);
	assert_non_null(csv);
	json_decref(recs);

	struct sf_bulk_opts o = {.object = "Lead",
	                         .operation = "update",
	                         .poll_initial_ms = 100,
	                         .poll_max_ms = 1000,
	                         .timeout_ms = 60000};
	struct sf_bulk_result res;
	struct sf_error e;
	enum sfk_err brc = sf_bulk_run(rest, &o, csv, len, &res, &e);
	if (brc != SFK_OK)
		fail_msg("bulk job failed: %s: %s", sfk_err_str(brc), e.message);
	free(csv);
	assert_string_equal(res.state, "JobComplete");
	assert_int_equal(res.processed, N);
	assert_int_equal(res.failed, 1);
	assert_int_equal(res.nfailures, 1);
	assert_string_equal(res.failures[0].id, ids[7]);
	assert_true(res.failures[0].code[0] != '\0');
	assert_int_equal(sfk_err_class(res.failures[0].err), SFK_CLASS_PERMANENT);
	sf_bulk_result_clear(&res);

	/* The other 49 carry the quoted value, unmangled. */
	struct soql_list l = {0};
	assert_int_equal(soql_build_in_ids("SELECT Id, Title FROM Lead WHERE Id IN ", "", idp, N,
	                                   sf_rest_query_uri_overhead(rest), 0, &l, err,
	                                   sizeof err),
	                 SFK_OK);
	int updated = 0;
	for (size_t q = 0; q < l.n; q++) {
		struct sf_query *it = NULL;
		assert_int_equal(sf_query_open(rest, l.q[q], &it, &e), SFK_OK);
		json_t *rec;
		while (sf_query_next(it, &rec, &e) == SFK_OK && rec) {
			const char *t = json_string_value(json_object_get(rec, "Title"));
			updated += t && strcmp(t, "VP, \"Growth\"") == 0;
		}
		sf_query_free(&it);
	}
	soql_list_free(&l);
	assert_int_equal(updated, N - 1);

	sf_rest_free(&rest);
	sf_token_free(&tokens);
	sf_auth_free(&auth);
}

int main(void)
{
	static const char *const vars[] = {
	        "REDIS_URL",      "SF_SIM_URL",   "SF_LOGIN_URL",
	        "SF_TOKEN_URL",   "SF_CLIENT_ID", "SF_PRIVATE_KEY_PATH",
	        "SF_API_VERSION", "SF_CA_FILE",   "SF_USERNAME",
	};
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		if (!getenv(vars[i]) || !*getenv(vars[i])) {
			fprintf(stderr,
			        "it_sf_bulk: FAIL: %s is not set (start the stack: eval "
			        "\"$(tests/stack/up "
			        "--sim)\")\n",
			        vars[i]);
			return 1;
		}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	log_init("it_sf_bulk");
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(bulk_update_reports_failed_rows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
