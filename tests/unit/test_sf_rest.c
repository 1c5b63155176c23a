/*
 * Unit tests for common/sf_rest (+ sf_token without Redis, sf_auth minting)
 * against a throwaway HTTPS server in this process (libmicrohttpd, a
 * self-signed certificate made here): headers on the wire, the 401 retry,
 * retry classes and budget, HTML error pages, gzip, the size cap, and
 * Sforce-Limit-Info reaching the quota governor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "sf_auth.h"
#include "sf_quota.h"
#include "sf_rest.h"
#include "sf_token.h"
#include "sfid.h"

enum act {
	OK_JSON,
	NO_CONTENT,
	AUTH401_OLD,
	ALWAYS401,
	HTML502,
	E500,
	E503,
	GZIP,
	BIG,
	LOCK,
	LIMIT
};

static struct {
	pthread_mutex_t mu;
	int port;
	int mints, requests;
	enum act script[16];
	int nscript, pos;
	enum act fallback;
	char call_options[256], accept_encoding[128], authorization[256], method[16];
	char content_type[128];
} srv = {.mu = PTHREAD_MUTEX_INITIALIZER};

static const unsigned char gz_body[] = {
        /* gzip of {"gz":"yes","pad":"x...x"} (200 x) */
        0x1f, 0x8b, 0x08, 0x00, 0x29, 0x2e, 0x02, 0x6b, 0x02, 0xff, 0xab, 0x56, 0x4a, 0xaf, 0x52,
        0xb2, 0x52, 0xaa, 0x4c, 0x2d, 0x56, 0xd2, 0x51, 0x2a, 0x48, 0x4c, 0x01, 0xb2, 0x2b, 0x86,
        0x09, 0x50, 0xaa, 0x05, 0x00, 0xa0, 0x49, 0x49, 0xcd, 0xdd, 0x00, 0x00, 0x00};

static char *key_pem, *cert_pem;
static char dir[64], key_path[128], ca_path[128];
static struct MHD_Daemon *daemon_;

static void script(int n, const enum act *a, enum act fallback)
{
	pthread_mutex_lock(&srv.mu);
	if (n > 0)
		memcpy(srv.script, a, (size_t)n * sizeof *a);
	srv.nscript = n;
	srv.pos = 0;
	srv.fallback = fallback;
	srv.requests = 0;
	srv.call_options[0] = srv.accept_encoding[0] = srv.authorization[0] = '\0';
	pthread_mutex_unlock(&srv.mu);
}

static void copy_hdr(struct MHD_Connection *c, const char *name, char *dst, size_t cap)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
	snprintf(dst, cap, "%s", v ? v : "");
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *ctype,
                             const void *body, size_t len, int gzip, int limit_info)
{
	struct MHD_Response *r =
	        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (ctype)
		MHD_add_response_header(r, "Content-Type", ctype);
	if (gzip)
		MHD_add_response_header(r, "Content-Encoding", "gzip");
	if (limit_info)
		MHD_add_response_header(r, "Sforce-Limit-Info", "api-usage=850/1000");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
	(void)cls;
	(void)version;
	(void)upload;
	static int marker;
	if (!*con_cls) {
		*con_cls = &marker;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0; /* bodies are not inspected */
		return MHD_YES;
	}
	if (strcmp(url, "/services/oauth2/token") == 0) {
		char body[256];
		pthread_mutex_lock(&srv.mu);
		int n = ++srv.mints;
		pthread_mutex_unlock(&srv.mu);
		snprintf(body, sizeof body,
		         "{\"access_token\":\"00Dtok!%d-secretpart\",\"instance_url\":"
		         "\"https://127.0.0.1:%d\",\"id\":\"x\",\"token_type\":\"Bearer\"}",
		         n, srv.port);
		return reply(c, 200, "application/json", body, strlen(body), 0, 0);
	}
	pthread_mutex_lock(&srv.mu);
	srv.requests++;
	enum act a = srv.pos < srv.nscript ? srv.script[srv.pos++] : srv.fallback;
	copy_hdr(c, "Sforce-Call-Options", srv.call_options, sizeof srv.call_options);
	copy_hdr(c, "Accept-Encoding", srv.accept_encoding, sizeof srv.accept_encoding);
	copy_hdr(c, "Authorization", srv.authorization, sizeof srv.authorization);
	copy_hdr(c, "Content-Type", srv.content_type, sizeof srv.content_type);
	snprintf(srv.method, sizeof srv.method, "%s", method);
	char latest[64];
	snprintf(latest, sizeof latest, "Bearer 00Dtok!%d-secretpart", srv.mints);
	int is_latest = strcmp(srv.authorization, latest) == 0;
	pthread_mutex_unlock(&srv.mu);

	static const char s401[] = "[{\"message\":\"Session expired or "
	                           "invalid\",\"errorCode\":\"INVALID_SESSION_ID\"}]";
	static const char html[] = "<html><body><h1>502 Bad Gateway</h1></body></html>";
	static const char lock[] = "[{\"message\":\"unable to obtain exclusive access to this "
	                           "record\",\"errorCode\":\"UNABLE_TO_LOCK_ROW\",\"fields\":[]}]";
	static const char e500[] = "[{\"message\":\"boom\",\"errorCode\":\"UNKNOWN_EXCEPTION\"}]";
	static const char e503[] = "[{\"message\":\"busy\",\"errorCode\":\"SERVER_UNAVAILABLE\"}]";
	static const char limit[] = "[{\"message\":\"TotalRequests Limit exceeded.\","
	                            "\"errorCode\":\"REQUEST_LIMIT_EXCEEDED\"}]";
	static const char ok[] = "{\"ok\":true,\"id\":\"001000000000000AAA\"}";
	switch (a) {
	case AUTH401_OLD:
		if (is_latest)
			return reply(c, 200, "application/json", ok, strlen(ok), 0, 1);
		/* fall through */
	case ALWAYS401: return reply(c, 401, "application/json", s401, strlen(s401), 0, 0);
	case HTML502: return reply(c, 502, "text/html", html, strlen(html), 0, 0);
	case E500: return reply(c, 500, "application/json", e500, strlen(e500), 0, 1);
	case E503: return reply(c, 503, "application/json", e503, strlen(e503), 0, 1);
	case LOCK: return reply(c, 400, "application/json", lock, strlen(lock), 0, 1);
	case LIMIT: return reply(c, 403, "application/json", limit, strlen(limit), 0, 1);
	case NO_CONTENT: return reply(c, 204, NULL, "", 0, 0, 1);
	case GZIP: return reply(c, 200, "application/json", gz_body, sizeof gz_body, 1, 1);
	case BIG: {
		size_t n = 100000;
		char *b = malloc(n + 16);
		memset(b, ' ', n);
		memcpy(b, "{\"big\":true}", 12);
		enum MHD_Result ret = reply(c, 200, "application/json", b, n, 0, 1);
		free(b);
		return ret;
	}
	case OK_JSON:
	default: return reply(c, 200, "application/json", ok, strlen(ok), 0, 1);
	}
}

/* A self-signed certificate for 127.0.0.1 that is its own CA. */
static void make_cert(void)
{
	EVP_PKEY *k = EVP_RSA_gen(2048);
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1,
	                           -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	const char *exts[][2] = {
	        {"subjectAltName", "IP:127.0.0.1"},
	        {"basicConstraints", "critical,CA:TRUE"},
	        {"keyUsage", "critical,digitalSignature,keyEncipherment,keyCertSign"}};
	for (size_t i = 0; i < 3; i++) {
		X509_EXTENSION *e = X509V3_EXT_conf(NULL, &ctx, exts[i][0], exts[i][1]);
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	X509_sign(x, k, EVP_sha256());
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	char *p;
	long n = BIO_get_mem_data(b, &p);
	key_pem = strndup(p, (size_t)n);
	BIO_free(b);
	b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &p);
	cert_pem = strndup(p, (size_t)n);
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static int setup(void **state)
{
	(void)state;
	make_cert();
	snprintf(dir, sizeof dir, "/tmp/test_sf_rest.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(key_path, sizeof key_path, "%s/app.key", dir);
	snprintf(ca_path, sizeof ca_path, "%s/ca.pem", dir);
	write_file(key_path, key_pem, 0600); /* any RSA key signs; the server does not verify */
	write_file(ca_path, cert_pem, 0644);
	daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS |
	                                   MHD_USE_THREAD_PER_CONNECTION,
	                           0, NULL, NULL, handler, NULL, MHD_OPTION_HTTPS_MEM_KEY, key_pem,
	                           MHD_OPTION_HTTPS_MEM_CERT, cert_pem, MHD_OPTION_END);
	assert_non_null(daemon_);
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
	srv.port = di->port;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	MHD_stop_daemon(daemon_);
	unlink(key_path);
	unlink(ca_path);
	rmdir(dir);
	free(key_pem);
	free(cert_pem);
	return 0;
}

struct client {
	struct sf_auth *auth;
	struct sf_token_cache *tokens;
	struct sf_rest *rest;
	struct sf_quota *quota;
};

static void open_client(struct client *c, long retry_total_ms, size_t max_response)
{
	char err[256], url[64];
	snprintf(url, sizeof url, "https://127.0.0.1:%d", srv.port);
	struct sf_auth_conf ac = {.login_url = "https://login.salesforce.com",
	                          .token_url = url,
	                          .client_id = "cid",
	                          .username = "u@example.com",
	                          .key_path = key_path,
	                          .ca_file = ca_path};
	c->auth = sf_auth_new(&ac, err, sizeof err);
	assert_non_null(c->auth);
	struct sf_token_conf tc = {.auth = c->auth};
	c->tokens = sf_token_new(&tc);
	c->quota = sf_quota_new(0.8, 0.95, 10);
	struct sf_rest_conf rc = {.tokens = c->tokens,
	                          .quota = c->quota,
	                          .api_version = "61.0",
	                          .ca_file = ca_path,
	                          .call_client = "sfk-test",
	                          .retry_base_ms = 10,
	                          .retry_max_ms = 40,
	                          .retry_total_ms = retry_total_ms,
	                          .max_response_bytes = max_response};
	c->rest = sf_rest_new(&rc, err, sizeof err);
	assert_non_null(c->rest);
}

static void close_client(struct client *c)
{
	sf_rest_free(&c->rest);
	sf_token_free(&c->tokens);
	sf_quota_free(&c->quota);
	sf_auth_free(&c->auth);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *lead_id(void)
{
	static char id[19];
	sfid_make(id, "00Q", 42);
	return id;
}

static void writes_carry_call_options_reads_do_not(void **state)
{
	(void)state;
	struct client c;
	open_client(&c, 2000, 0);
	struct sf_error e;
	enum act a[] = {NO_CONTENT};
	script(1, a, OK_JSON);
	json_t *f = json_pack("{s:s}", "Title", "x");
	assert_int_equal(sf_rest_update(c.rest, "Lead", lead_id(), f, 0, &e), SFK_OK);
	json_decref(f);
	assert_string_equal(srv.method, "PATCH");
	assert_string_equal(srv.call_options, "client=sfk-test");
	assert_string_equal(srv.content_type, "application/json");
	assert_true(strncmp(srv.authorization, "Bearer 00Dtok!", 14) == 0);
	assert_non_null(strstr(srv.accept_encoding, "gzip"));
	/* Sforce-Limit-Info reached the governor: 850/1000 = slow zone. */
	assert_true(sf_quota_ratio(c.quota) > 0.849 && sf_quota_ratio(c.quota) < 0.851);
	assert_int_equal(sf_quota_state(c.quota), SF_QUOTA_SLOW);

	json_t *rec = NULL;
	assert_int_equal(sf_rest_get(c.rest, "Lead", lead_id(), NULL, &rec, &e), SFK_OK);
	json_decref(rec);
	assert_string_equal(srv.method, "GET");
	assert_string_equal(srv.call_options, "");
	close_client(&c);
}

static void session_expiry_retried_once_with_new_token(void **state)
{
	(void)state;
	struct client c;
	open_client(&c, 2000, 0);
	struct sf_error e;
	json_t *lim = NULL;
	script(0, NULL, OK_JSON);
	assert_int_equal(sf_rest_limits(c.rest, &lim, &e), SFK_OK); /* token 1 cached */
	json_decref(lim);
	int mints = srv.mints;
	/* The server now only accepts a token newer than the one we hold. */
	pthread_mutex_lock(&srv.mu);
	srv.mints++; /* "someone" minted: the cached token is stale */
	pthread_mutex_unlock(&srv.mu);
	enum act a[] = {AUTH401_OLD, AUTH401_OLD};
	script(2, a, OK_JSON);
	lim = NULL;
	assert_int_equal(sf_rest_limits(c.rest, &lim, &e), SFK_OK);
	json_decref(lim);
	assert_int_equal(srv.requests, 2);
	assert_int_equal(srv.mints, mints + 2);

	/* A 401 that persists with a fresh token is reported, after two tries. */
	script(0, NULL, ALWAYS401);
	assert_int_equal(sf_rest_limits(c.rest, &lim, &e), SFK_ERR_AUTH);
	assert_int_equal(srv.requests, 2);
	assert_string_equal(e.code, "INVALID_SESSION_ID");
	close_client(&c);
}

static void retriable_errors_retried_within_budget(void **state)
{
	(void)state;
	struct client c;
	/* A budget that slow machines (valgrind) cannot exhaust by mistake. */
	open_client(&c, 10000, 0);
	struct sf_error e;
	json_t *out = NULL;
	enum act a[] = {E503, HTML502, LOCK};
	script(3, a, OK_JSON);
	assert_int_equal(sf_rest_limits(c.rest, &out, &e), SFK_OK);
	json_decref(out);
	assert_int_equal(srv.requests, 4);
	close_client(&c);

	/* A proxy that keeps answering HTML: bounded by the retry budget (1.5 s;
	 * the request in flight when it runs out may add its own time). */
	open_client(&c, 1500, 0);
	script(0, NULL, HTML502);
	long long t0 = now_ms();
	assert_int_equal(sf_rest_limits(c.rest, &out, &e), SFK_ERR_HTTP_5XX);
	long long dt = now_ms() - t0;
	assert_true(dt < 1500 + 3000);
	assert_true(srv.requests >= 2);
	assert_int_equal(e.http_status, 502);
	assert_non_null(strstr(e.message, "non-JSON"));
	close_client(&c);
}

static void request_limit_backs_off_and_is_counted(void **state)
{
	(void)state;
	struct client c;
	open_client(&c, 10000, 0);
	struct metric *m = metrics_counter("sfk_api_limit_exceeded_total",
	                                   "REQUEST_LIMIT_EXCEEDED answers (daily/concurrent API "
	                                   "limit)",
	                                   NULL);
	double before = metric_value(m);
	struct sf_error e;
	json_t *out = NULL;
	enum act a[] = {LIMIT, LIMIT};
	script(2, a, OK_JSON);
	long long t0 = now_ms();
	assert_int_equal(sf_rest_limits(c.rest, &out, &e), SFK_OK);
	json_decref(out);
	assert_int_equal(srv.requests, 3);
	assert_true(metric_value(m) - before == 2.0);
	/* Backed off: base 10 ms x4 for the limit, capped at 40, jittered >= half. */
	assert_true(now_ms() - t0 >= 20 + 20);
	close_client(&c);
}

static void post_not_retried_when_maybe_processed(void **state)
{
	(void)state;
	struct client c;
	open_client(&c, 2000, 0);
	struct sf_error e;
	char id[19];
	json_t *f = json_pack("{s:s, s:s}", "LastName", "X", "Company", "Y");
	script(0, NULL, E500);
	assert_int_equal(sf_rest_create(c.rest, "Lead", f, id, &e), SFK_ERR_HTTP_5XX);
	assert_int_equal(srv.requests, 1); /* a 500 may have created the record */
	enum act a[] = {E503, LOCK};
	script(2, a, OK_JSON);
	assert_int_equal(sf_rest_create(c.rest, "Lead", f, id, &e), SFK_OK);
	assert_string_equal(id, "001000000000000AAA");
	assert_int_equal(srv.requests, 3); /* 503 and lock are refusals: retried */
	json_decref(f);
	close_client(&c);
}

static void gzip_and_size_cap(void **state)
{
	(void)state;
	struct client c;
	open_client(&c, 200, 4096);
	struct sf_error e;
	json_t *out = NULL;
	script(0, NULL, GZIP);
	assert_int_equal(sf_rest_limits(c.rest, &out, &e), SFK_OK);
	assert_string_equal(json_string_value(json_object_get(out, "gz")), "yes");
	assert_int_equal(strlen(json_string_value(json_object_get(out, "pad"))), 200);
	json_decref(out);
	out = NULL;
	script(0, NULL, BIG);
	assert_int_equal(sf_rest_limits(c.rest, &out, &e), SFK_ERR_TOO_LARGE);
	assert_null(out);
	assert_int_equal(srv.requests, 1); /* too large is permanent: not retried */
	close_client(&c);
}

static void quota_pause_refuses_before_sending(void **state)
{
	(void)state;
	struct client c;
	open_client(&c, 200, 0);
	struct sf_error e;
	sf_quota_update(c.quota, 990, 1000);
	script(0, NULL, NO_CONTENT);
	json_t *f = json_pack("{s:s}", "Title", "x");
	assert_int_equal(sf_rest_update(c.rest, "Lead", lead_id(), f, 0, &e), SFK_ERR_LIMIT);
	assert_int_equal(srv.requests, 0);
	assert_int_equal(sf_rest_update(c.rest, "Lead", lead_id(), f, SF_REQ_ESSENTIAL, &e),
	                 SFK_OK);
	assert_int_equal(srv.requests, 1);
	json_decref(f);
	close_client(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(writes_carry_call_options_reads_do_not),
	        cmocka_unit_test(session_expiry_retried_once_with_new_token),
	        cmocka_unit_test(retriable_errors_retried_within_budget),
	        cmocka_unit_test(request_limit_backs_off_and_is_counted),
	        cmocka_unit_test(post_not_retried_when_maybe_processed),
	        cmocka_unit_test(gzip_and_size_cap),
	        cmocka_unit_test(quota_pause_refuses_before_sending),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
