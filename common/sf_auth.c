#include "sf_auth.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b64.h"
#include "log.h"
#include "metrics.h"
#include "xmem.h"

struct sf_auth {
	char *login_url, *token_endpoint, *client_id, *username, *ca_file;
	long connect_timeout_ms, timeout_ms;
	EVP_PKEY *key;
	struct metric *m_requests, *m_latency;
};

void sf_auth_token_clear(struct sf_auth_token *t)
{
	if (!t)
		return;
	if (t->access_token) {
		/* Do not leave a bearer credential in freed heap memory. */
		OPENSSL_cleanse(t->access_token, strlen(t->access_token));
		free(t->access_token);
	}
	free(t->instance_url);
	free(t->id);
	free(t->token_type);
	free(t->scope);
	memset(t, 0, sizeof *t);
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

void sf_auth_token_copy(struct sf_auth_token *dst, const struct sf_auth_token *src)
{
	dst->access_token = dup_or_null(src->access_token);
	dst->instance_url = dup_or_null(src->instance_url);
	dst->id = dup_or_null(src->id);
	dst->token_type = dup_or_null(src->token_type);
	dst->scope = dup_or_null(src->scope);
}

enum sfk_err sf_auth_check_key_file(const char *path, char *errstr, size_t errlen)
{
	struct stat st;
	if (!path || !*path) {
		snprintf(errstr, errlen, "SF_PRIVATE_KEY_PATH is not set");
		return SFK_ERR_CONFIG;
	}
	if (stat(path, &st) != 0) {
		snprintf(errstr, errlen, "private key %s: %s", path, strerror(errno));
		return SFK_ERR_CONFIG;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(errstr, errlen, "private key %s is not a regular file", path);
		return SFK_ERR_CONFIG;
	}
	if (st.st_mode & 077) {
		snprintf(errstr, errlen,
		         "private key %s has mode %04o: group/other may access it; refusing to use "
		         "it (run: chmod 600 %s)",
		         path, (unsigned)(st.st_mode & 07777), path);
		return SFK_ERR_CONFIG;
	}
	if (st.st_size > SF_AUTH_KEY_FILE_MAX) {
		snprintf(errstr, errlen, "private key %s is larger than %d bytes", path,
		         SF_AUTH_KEY_FILE_MAX);
		return SFK_ERR_CONFIG;
	}
	return SFK_OK;
}

static char *strip_slash(const char *url)
{
	size_t n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	return xstrndup(url, n);
}

struct sf_auth *sf_auth_new(const struct sf_auth_conf *c, char *errstr, size_t errlen)
{
	struct sf_auth *a = NULL;
	FILE *f = NULL;
	const char *missing = !c->login_url || !*c->login_url   ? "SF_LOGIN_URL"
	                      : !c->client_id || !*c->client_id ? "SF_CLIENT_ID"
	                      : !c->username || !*c->username   ? "SF_USERNAME"
	                                                        : NULL;
	if (missing) {
		snprintf(errstr, errlen, "%s is not set", missing);
		return NULL;
	}
	if (strncmp(c->login_url, "https://", 8) != 0) {
		snprintf(errstr, errlen, "SF_LOGIN_URL must be an https:// URL");
		return NULL;
	}
	if (c->token_url && *c->token_url && strncmp(c->token_url, "https://", 8) != 0) {
		snprintf(errstr, errlen, "SF_TOKEN_URL must be an https:// URL");
		return NULL;
	}
	if (sf_auth_check_key_file(c->key_path, errstr, errlen) != SFK_OK)
		return NULL;
	a = xcalloc(1, sizeof *a);
	f = fopen(c->key_path, "r");
	if (!f) {
		snprintf(errstr, errlen, "private key %s: %s", c->key_path, strerror(errno));
		goto fail;
	}
	/* The pass-phrase callback is NULL with an empty user string: an
	 * encrypted key fails here instead of prompting on a tty. */
	a->key = PEM_read_PrivateKey(f, NULL, NULL, (void *)"");
	if (!a->key) {
		/* OpenSSL's error queue may quote file content: report our own text. */
		snprintf(errstr, errlen,
		         "private key %s: not a readable unencrypted PEM private key", c->key_path);
		goto fail;
	}
	if (EVP_PKEY_get_base_id(a->key) != EVP_PKEY_RSA) {
		snprintf(errstr, errlen, "private key %s: not an RSA key (RS256 needs RSA)",
		         c->key_path);
		goto fail;
	}
	fclose(f);
	f = NULL;
	a->login_url = strip_slash(c->login_url);
	const char *tu = c->token_url && *c->token_url ? c->token_url : c->login_url;
	char *base = strip_slash(tu);
	size_t bl = strlen(base), pl = strlen(SF_TOKEN_PATH);
	if (bl >= pl && strcmp(base + bl - pl, SF_TOKEN_PATH) == 0)
		a->token_endpoint = base;
	else {
		a->token_endpoint = xasprintf("%s%s", base, SF_TOKEN_PATH);
		free(base);
	}
	a->client_id = xstrdup(c->client_id);
	a->username = xstrdup(c->username);
	a->ca_file = c->ca_file && *c->ca_file ? xstrdup(c->ca_file) : NULL;
	a->connect_timeout_ms = c->connect_timeout_ms > 0 ? c->connect_timeout_ms : 5000;
	a->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : 15000;
	a->m_requests = metrics_counter("sfk_auth_requests_total",
	                                "JWT bearer token requests by outcome (HTTP status or "
	                                "transport)",
	                                "status");
	a->m_latency = metrics_histogram("sfk_auth_latency_seconds",
	                                 "Latency of JWT bearer token requests", NULL,
	                                 metrics_latency_buckets, metrics_latency_nbuckets);
	return a;
fail:
	if (f)
		fclose(f);
	sf_auth_free(&a);
	return NULL;
}

void sf_auth_free(struct sf_auth **ap)
{
	if (!ap || !*ap)
		return;
	struct sf_auth *a = *ap;
	EVP_PKEY_free(a->key); /* OpenSSL clears RSA key material on free */
	free(a->login_url);
	free(a->token_endpoint);
	free(a->client_id);
	free(a->username);
	free(a->ca_file);
	free(a);
	*ap = NULL;
}

const char *sf_auth_login_url(const struct sf_auth *a)
{
	return a->login_url;
}
const char *sf_auth_client_id(const struct sf_auth *a)
{
	return a->client_id;
}
const char *sf_auth_username(const struct sf_auth *a)
{
	return a->username;
}
const char *sf_auth_token_endpoint(const struct sf_auth *a)
{
	return a->token_endpoint;
}

char *sf_auth_jwt(const struct sf_auth *a, time_t now)
{
	char *hdr = NULL, *claims_txt = NULL, *h64 = NULL, *c64 = NULL, *input = NULL;
	char *s64 = NULL, *jwt = NULL;
	unsigned char *sig = NULL;
	EVP_MD_CTX *md = NULL;
	json_t *claims =
	        json_pack("{s:s, s:s, s:s, s:I}", "iss", a->client_id, "sub", a->username, "aud",
	                  a->login_url, "exp", (json_int_t)(now + SF_AUTH_EXP_SECONDS));
	if (!claims)
		goto out;
	claims_txt = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
	if (!claims_txt)
		goto out;
	hdr = xstrdup("{\"alg\":\"RS256\"}");
	h64 = b64url_encode(hdr, strlen(hdr));
	c64 = b64url_encode(claims_txt, strlen(claims_txt));
	input = xasprintf("%s.%s", h64, c64);

	size_t siglen = 0;
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, a->key) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)input, strlen(input)) != 1)
		goto out;
	sig = xmalloc(siglen);
	if (EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input, strlen(input)) != 1)
		goto out;
	s64 = b64url_encode(sig, siglen);
	jwt = xasprintf("%s.%s", input, s64);
out:
	EVP_MD_CTX_free(md);
	free(sig);
	free(s64);
	free(input);
	free(c64);
	free(h64);
	free(hdr);
	free(claims_txt);
	json_decref(claims);
	return jwt;
}

static char *str_member(const json_t *j, const char *k)
{
	const char *v = json_string_value(json_object_get(j, k));
	return v ? xstrdup(v) : NULL;
}

enum sfk_err sf_auth_parse_response(long status, const char *content_type, const char *body,
                                    size_t len, struct sf_auth_token *out, struct sf_error *err)
{
	sf_error_clear(err);
	memset(out, 0, sizeof *out);
	if (status != 200)
		return sf_err_parse_oauth(status, content_type, body, len, err);
	json_t *j = len <= SF_AUTH_RESPONSE_MAX ? json_loadb(body, len, 0, NULL) : NULL;
	const char *tok = json_string_value(json_object_get(j, "access_token"));
	const char *inst = json_string_value(json_object_get(j, "instance_url"));
	if (!tok || !*tok || !inst || strncmp(inst, "https://", 8) != 0) {
		err->http_status = status;
		err->err = SFK_ERR_PARSE;
		snprintf(err->code, sizeof err->code, "bad_token_response");
		snprintf(err->message, sizeof err->message,
		         "token endpoint answered 200 without access_token or an https "
		         "instance_url");
		json_decref(j);
		return err->err;
	}
	out->access_token = xstrdup(tok);
	out->instance_url = strip_slash(inst);
	out->id = str_member(j, "id");
	out->token_type = str_member(j, "token_type");
	out->scope = str_member(j, "scope");
	json_decref(j);
	return SFK_OK;
}

/* Response body with a named maximum. */
struct body {
	char *p;
	size_t len;
	int over;
};

static size_t on_body(char *data, size_t sz, size_t nm, void *ud)
{
	struct body *b = ud;
	size_t n = sz * nm;
	if (b->len + n > SF_AUTH_RESPONSE_MAX) {
		b->over = 1;
		return 0; /* abort the transfer */
	}
	b->p = xrealloc(b->p, b->len + n + 1);
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum sfk_err sf_auth_mint(struct sf_auth *a, struct sf_auth_token *out, struct sf_error *err)
{
	enum sfk_err rc;
	char *jwt = NULL, *post = NULL;
	struct body b = {0};
	struct curl_slist *hdrs = NULL;
	CURL *h = NULL;
	double t0 = now_s();
	char status_label[16] = "transport";

	sf_error_clear(err);
	memset(out, 0, sizeof *out);
	jwt = sf_auth_jwt(a, time(NULL));
	if (!jwt) {
		err->err = rc = SFK_ERR_INTERNAL;
		snprintf(err->message, sizeof err->message, "signing the JWT failed");
		goto out;
	}
	post = xasprintf("grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer"
	                 "&assertion=%s",
	                 jwt);
	h = curl_easy_init();
	if (!h) {
		err->err = rc = SFK_ERR_NOMEM;
		snprintf(err->message, sizeof err->message, "curl_easy_init failed");
		goto out;
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	hdrs = curl_slist_append(hdrs, "Content-Type: application/x-www-form-urlencoded");
	curl_easy_setopt(h, CURLOPT_URL, a->token_endpoint);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, a->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, a->timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https"); /* a JWT never crosses plain HTTP */
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (a->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, a->ca_file);
	CURLcode cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		rc = b.over                           ? SFK_ERR_TOO_LARGE
		     : cc == CURLE_OPERATION_TIMEDOUT ? SFK_ERR_TIMEOUT
		                                      : SFK_ERR_TRANSPORT;
		err->err = rc;
		snprintf(err->code, sizeof err->code, "curl_%d", (int)cc);
		snprintf(err->message, sizeof err->message, "token request to %s failed: %s",
		         a->token_endpoint,
		         b.over ? "response larger than SF_AUTH_RESPONSE_MAX"
		                : curl_easy_strerror(cc));
		goto out;
	}
	long status = 0;
	char *ctype = NULL;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype);
	snprintf(status_label, sizeof status_label, "%ld", status);
	rc = sf_auth_parse_response(status, ctype, b.p ? b.p : "", b.len, out, err);
	if (rc == SFK_OK)
		log_redact(out->access_token);
out:
	metric_add(a->m_requests, 1, status_label);
	metric_observe(a->m_latency, now_s() - t0);
	if (rc != SFK_OK)
		log_warn("salesforce token request failed endpoint=%s status=%s error=%s msg=%s",
		         a->token_endpoint, status_label, sfk_err_str(rc), err->message);
	curl_slist_free_all(hdrs);
	if (h)
		curl_easy_cleanup(h);
	free(b.p);
	if (post) {
		OPENSSL_cleanse(post, strlen(post));
		free(post);
	}
	if (jwt) {
		OPENSSL_cleanse(jwt, strlen(jwt));
		free(jwt);
	}
	return rc;
}
