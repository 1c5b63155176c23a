#include "sf_rest.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "sfid.h"
#include "soql_build.h"
#include "xmem.h"

#define LIMIT_INFO_MAX     256 /* Sforce-Limit-Info value kept from a response */
#define DESCRIBE_KEY       "sfk:describe:"
#define DESCRIBE_VALUE_MAX (8u * 1024 * 1024) /* cached describe larger than this: not cached */
#define INSTANCE_URL_GUESS 64     /* instance URL length assumed before the first token */
#define REQ_QUERY          0x100u /* internal flag: add Sforce-Query-Options */

struct sf_rest {
	struct sf_token_cache *tokens;
	struct sf_quota *quota;
	char *base; /* "/services/data/v62.0" */
	char *ca_file, *call_client, *call_header;
	long describe_ttl_s, connect_timeout_ms, timeout_ms;
	long retry_base_ms, retry_max_ms, retry_total_ms;
	size_t max_response;
	int no_reuse;
	char query_options[64]; /* "Sforce-Query-Options: batchSize=N" or "" */

	/* The pool: idle easy handles plus one share for connections/DNS/TLS. */
	pthread_mutex_t pool_mu;
	CURL **idle;
	int nidle, pool_size;
	CURLSH *share;
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];

	/* Describe cache connection (hiredis is one-thread-at-a-time). */
	pthread_mutex_t redis_mu;
	char *redis_url;
	struct redis *redis;
	long long redis_next_try_ms;

	_Atomic size_t instance_url_len; /* last seen, for URI length checks */

	struct metric *m_requests, *m_duration, *m_limit, *m_retries;
};

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *ud)
{
	(void)h;
	(void)a;
	struct sf_rest *r = ud;
	pthread_mutex_lock(&r->share_mu[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *ud)
{
	(void)h;
	struct sf_rest *r = ud;
	pthread_mutex_unlock(&r->share_mu[d]);
}

struct sf_rest *sf_rest_new(const struct sf_rest_conf *c, char *errstr, size_t errlen)
{
	if (!c->tokens || !c->api_version || !*c->api_version || !c->call_client ||
	    !*c->call_client) {
		snprintf(errstr, errlen,
		         "sf_rest: tokens, SF_API_VERSION and SFK_CLIENT_ID are "
		         "required");
		return NULL;
	}
	const char *ver = c->api_version[0] == 'v' ? c->api_version + 1 : c->api_version;
	for (const char *p = ver; *p; p++)
		if (!isdigit((unsigned char)*p) && *p != '.') {
			snprintf(errstr, errlen, "SF_API_VERSION %s is not like 62.0",
			         c->api_version);
			return NULL;
		}
	for (const char *p = c->call_client; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-_.:", *p)) {
			snprintf(errstr, errlen, "SFK_CLIENT_ID may only hold [A-Za-z0-9-_.:]");
			return NULL;
		}
	curl_global_init(CURL_GLOBAL_DEFAULT); /* reference counted by libcurl */
	struct sf_rest *r = xcalloc(1, sizeof *r);
	r->tokens = c->tokens;
	r->quota = c->quota;
	r->base = xasprintf("/services/data/v%s", ver);
	r->ca_file = c->ca_file && *c->ca_file ? xstrdup(c->ca_file) : NULL;
	r->call_client = xstrdup(c->call_client);
	r->call_header = xasprintf("Sforce-Call-Options: client=%s", c->call_client);
	r->describe_ttl_s = c->describe_ttl_s > 0 ? c->describe_ttl_s : 3600;
	r->connect_timeout_ms = c->connect_timeout_ms > 0 ? c->connect_timeout_ms : 5000;
	r->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : 30000;
	r->retry_base_ms = c->retry_base_ms > 0 ? c->retry_base_ms : 200;
	r->retry_max_ms = c->retry_max_ms > 0 ? c->retry_max_ms : 10000;
	r->retry_total_ms = c->retry_total_ms > 0 ? c->retry_total_ms : 60000;
	r->max_response = c->max_response_bytes ? c->max_response_bytes : SF_REST_RESPONSE_MAX;
	r->no_reuse = c->no_reuse;
	if (c->query_batch_size > 0) {
		int b = c->query_batch_size < 200    ? 200
		        : c->query_batch_size > 2000 ? 2000
		                                     : c->query_batch_size;
		snprintf(r->query_options, sizeof r->query_options,
		         "Sforce-Query-Options: batchSize=%d", b);
	}
	r->pool_size = c->pool_size > 0 ? c->pool_size : 8;
	r->idle = xcalloc((size_t)r->pool_size, sizeof *r->idle);
	pthread_mutex_init(&r->pool_mu, NULL);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&r->share_mu[i], NULL);
	r->share = curl_share_init();
	curl_share_setopt(r->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(r->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(r->share, CURLSHOPT_USERDATA, r);
	curl_share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	if (!r->no_reuse) {
		curl_share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
		curl_share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	}
	pthread_mutex_init(&r->redis_mu, NULL);
	r->redis_url = c->redis_url && *c->redis_url ? xstrdup(c->redis_url) : NULL;
	r->instance_url_len = INSTANCE_URL_GUESS;

	r->m_requests = metrics_counter("sfk_api_requests_total",
	                                "Salesforce REST requests by method, object and HTTP "
	                                "status (transport = no response)",
	                                "method,object,status");
	r->m_duration = metrics_histogram(
	        "sfk_api_request_duration_seconds", "Duration of one Salesforce REST HTTP exchange",
	        "method,object", metrics_latency_buckets, metrics_latency_nbuckets);
	r->m_limit = metrics_counter("sfk_api_limit_exceeded_total",
	                             "REQUEST_LIMIT_EXCEEDED answers (daily/concurrent API limit)",
	                             NULL);
	r->m_retries = metrics_counter("sfk_api_retries_total",
	                               "Salesforce REST attempts retried, by error", "error");
	return r;
}

void sf_rest_free(struct sf_rest **rp)
{
	if (!rp || !*rp)
		return;
	struct sf_rest *r = *rp;
	for (int i = 0; i < r->nidle; i++)
		curl_easy_cleanup(r->idle[i]);
	free(r->idle);
	curl_share_cleanup(r->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&r->share_mu[i]);
	pthread_mutex_destroy(&r->pool_mu);
	redis_free(r->redis);
	pthread_mutex_destroy(&r->redis_mu);
	free(r->redis_url);
	free(r->base);
	free(r->ca_file);
	free(r->call_client);
	free(r->call_header);
	free(r);
	*rp = NULL;
}

const char *sf_rest_base(const struct sf_rest *r)
{
	return r->base;
}

size_t sf_rest_query_uri_overhead(struct sf_rest *r)
{
	return atomic_load(&r->instance_url_len) + strlen(r->base) + strlen("/query?q=");
}

void sf_response_clear(struct sf_response *resp)
{
	if (!resp)
		return;
	free(resp->body);
	memset(resp, 0, sizeof *resp);
}

static CURL *pool_get(struct sf_rest *r)
{
	CURL *h = NULL;
	pthread_mutex_lock(&r->pool_mu);
	if (r->nidle > 0)
		h = r->idle[--r->nidle];
	pthread_mutex_unlock(&r->pool_mu);
	if (h)
		curl_easy_reset(h); /* keeps connections; options start over */
	else
		h = curl_easy_init();
	return h;
}

static void pool_put(struct sf_rest *r, CURL *h)
{
	pthread_mutex_lock(&r->pool_mu);
	if (r->nidle < r->pool_size) {
		r->idle[r->nidle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&r->pool_mu);
	if (h)
		curl_easy_cleanup(h);
}

/* One transfer's buffers. */
struct xfer {
	char *p;
	size_t len, max;
	int over;
	char limit_info[LIMIT_INFO_MAX];
	const char *upload;
	size_t upload_len, upload_off;
};

static size_t on_body(char *data, size_t sz, size_t nm, void *ud)
{
	struct xfer *x = ud;
	size_t n = sz * nm;
	if (x->len + n > x->max) {
		x->over = 1;
		return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
	}
	x->p = xrealloc(x->p, x->len + n + 1);
	memcpy(x->p + x->len, data, n);
	x->len += n;
	x->p[x->len] = '\0';
	return n;
}

static size_t on_header(char *data, size_t sz, size_t nm, void *ud)
{
	static const char name[] = "sforce-limit-info:";
	struct xfer *x = ud;
	size_t n = sz * nm;
	if (n > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
		const char *v = data + sizeof name - 1;
		size_t vl = n - (sizeof name - 1);
		while (vl > 0 && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		if (vl >= sizeof x->limit_info)
			vl = sizeof x->limit_info - 1;
		memcpy(x->limit_info, v, vl);
		x->limit_info[vl] = '\0';
	}
	return n;
}

static size_t on_read(char *buf, size_t sz, size_t nm, void *ud)
{
	struct xfer *x = ud;
	size_t n = sz * nm, left = x->upload_len - x->upload_off;
	if (n > left)
		n = left;
	memcpy(buf, x->upload + x->upload_off, n);
	x->upload_off += n;
	return n;
}

static int is_write(const char *method)
{
	return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

static char *full_url(const struct sf_rest *r, const char *instance, const char *path)
{
	if (path[0] == '/')
		return xasprintf("%s%s", instance, path);
	if (strncmp(path, "services/", 9) == 0)
		return xasprintf("%s/%s", instance, path);
	return xasprintf("%s%s/%s", instance, r->base, path);
}

/*
 * One HTTP exchange. Fills out (status, body, content type) and err; returns
 * err->err. *sent says whether the server may have processed the request.
 */
static enum sfk_err perform(struct sf_rest *r, const char *method, const char *url,
                            const char *object, const char *token, const char *content_type,
                            const char *body, size_t body_len, unsigned flags,
                            struct sf_response *out, struct sf_error *err, int *maybe_processed)
{
	struct xfer x = {.max = r->max_response};
	struct curl_slist *h = NULL;
	char *auth = xasprintf("Authorization: Bearer %s", token);
	char *ctype = NULL;
	CURL *c = pool_get(r);
	enum sfk_err rc = SFK_OK;
	long long t0 = mono_ms();

	sf_error_clear(err);
	sf_response_clear(out);
	*maybe_processed = 1;
	if (!c) {
		rc = err->err = SFK_ERR_NOMEM;
		snprintf(err->message, sizeof err->message, "curl_easy_init failed");
		goto out;
	}
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, flags & SF_REQ_ACCEPT_CSV ? "Accept: text/csv"
	                                                   : "Accept: application/json");
	if (body) {
		ctype = xasprintf("Content-Type: %s",
		                  content_type ? content_type : "application/json");
		h = curl_slist_append(h, ctype);
	}
	if (is_write(method))
		h = curl_slist_append(h, r->call_header);
	if ((flags & REQ_QUERY) && r->query_options[0])
		h = curl_slist_append(h, r->query_options);
	h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */

	curl_easy_setopt(c, CURLOPT_SHARE, r->share);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https"); /* bearer tokens: TLS only */
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);     /* never off */
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (r->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, r->ca_file);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, r->connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->timeout_ms);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, ""); /* gzip/deflate as libcurl supports */
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_response);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
	if (r->no_reuse) {
		curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
		curl_easy_setopt(c, CURLOPT_SSL_SESSIONID_CACHE, 0L);
	}
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "PUT") == 0) {
		/* CSV uploads: stream from memory with a known length. */
		x.upload = body ? body : "";
		x.upload_len = body ? body_len : 0;
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &x);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x.upload_len);
	} else {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
	}

	CURLcode cc = curl_easy_perform(c);
	double secs = (double)(mono_ms() - t0) / 1000.0;
	metric_observe(r->m_duration, secs, method, object);
	if (cc != CURLE_OK) {
		*maybe_processed =
		        !(cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
		          cc == CURLE_COULDNT_RESOLVE_PROXY);
		rc = x.over || cc == CURLE_FILESIZE_EXCEEDED ? SFK_ERR_TOO_LARGE
		     : cc == CURLE_OPERATION_TIMEDOUT        ? SFK_ERR_TIMEOUT
		                                             : SFK_ERR_TRANSPORT;
		err->err = rc;
		snprintf(err->code, sizeof err->code, "curl_%d", (int)cc);
		snprintf(err->message, sizeof err->message, "%s %s: %s", method, object,
		         rc == SFK_ERR_TOO_LARGE ? "response larger than the configured cap"
		                                 : curl_easy_strerror(cc));
		metric_add(r->m_requests, 1, method, object, "transport");
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	char *ct = NULL;
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
	snprintf(out->content_type, sizeof out->content_type, "%s", ct ? ct : "");
	out->body = x.p;
	out->len = x.len;
	x.p = NULL;
	char st[16];
	snprintf(st, sizeof st, "%ld", out->status);
	metric_add(r->m_requests, 1, method, object, st);
	if (x.limit_info[0] && r->quota)
		sf_quota_update_header(r->quota, x.limit_info);
	if (out->status >= 300 || out->status < 200) {
		rc = sf_err_parse_rest(out->status, out->content_type, out->body ? out->body : "",
		                       out->len, err);
		/* 503 and lock/limit errors are refusals: nothing was applied. */
		*maybe_processed = !(out->status == 503 || rc == SFK_ERR_LOCK ||
		                     rc == SFK_ERR_LIMIT || rc == SFK_ERR_AUTH);
	}
out:
	curl_slist_free_all(h);
	free(ctype);
	free(auth); /* holds the token: freed at once, never logged */
	free(x.p);
	if (c)
		pool_put(r, c);
	return rc;
}

static _Thread_local unsigned jitter_seed;

/* Full jitter over [d/2, d], d = min(max, base * 2^attempt). */
static long backoff_ms(const struct sf_rest *r, int attempt, enum sfk_err e)
{
	if (!jitter_seed)
		jitter_seed =
		        (unsigned)mono_ms() ^ (unsigned)getpid() ^ (unsigned)(size_t)&jitter_seed;
	long d = r->retry_base_ms;
	for (int i = 0; i < attempt && d < r->retry_max_ms; i++)
		d *= 2;
	if (e == SFK_ERR_LIMIT)
		d *= 4; /* the daily/concurrent limit does not clear in milliseconds */
	if (d > r->retry_max_ms)
		d = r->retry_max_ms;
	return d / 2 + (long)(rand_r(&jitter_seed) % (unsigned)(d / 2 + 1));
}

enum sfk_err sf_rest_request(struct sf_rest *r, const char *method, const char *path,
                             const char *object, const char *content_type, const char *body,
                             size_t body_len, unsigned flags, struct sf_response *out,
                             struct sf_error *err)
{
	enum sfk_err rc;
	long long start = mono_ms();
	int attempt = 0, auth_retried = 0;
	int post = strcmp(method, "POST") == 0;

	sf_error_clear(err);
	memset(out, 0, sizeof *out);
	if (is_write(method) && r->quota) {
		long d = sf_quota_admit(r->quota, (flags & SF_REQ_ESSENTIAL) != 0);
		if (d < 0) {
			err->err = SFK_ERR_LIMIT;
			snprintf(err->code, sizeof err->code, "QUOTA_PAUSED");
			snprintf(err->message, sizeof err->message,
			         "quota governor paused non-essential writes (api usage %.0f%% of "
			         "the "
			         "daily limit)",
			         sf_quota_ratio(r->quota) * 100);
			return err->err;
		}
		sleep_ms(d);
	}
	for (;;) {
		struct sf_auth_token tok;
		int maybe_processed = 0;
		attempt++;
		rc = sf_token_get(r->tokens, &tok, err);
		if (rc == SFK_OK) {
			r->instance_url_len = strlen(tok.instance_url);
			char *url = full_url(r, tok.instance_url, path);
			rc = perform(r, method, url, object, tok.access_token, content_type, body,
			             body_len, flags, out, err, &maybe_processed);
			free(url);
			out->attempts = attempt;
			if (rc == SFK_ERR_AUTH && !auth_retried) {
				/* The session died (expired, revoked): drop exactly this token,
				 * then once more with whatever is current. */
				auth_retried = 1;
				sf_token_invalidate(r->tokens, tok.access_token);
				sf_auth_token_clear(&tok);
				metric_add(r->m_retries, 1, sfk_err_str(rc));
				continue;
			}
		}
		sf_auth_token_clear(&tok);
		if (rc == SFK_OK)
			return rc;
		if (rc == SFK_ERR_LIMIT)
			metric_add(r->m_limit, 1);
		if (sfk_err_class(rc) != SFK_CLASS_RETRIABLE || rc == SFK_ERR_AUTH ||
		    (flags & SF_REQ_NO_RETRY) || (post && maybe_processed))
			break;
		long d = backoff_ms(r, attempt - 1, rc);
		if (mono_ms() - start + d > r->retry_total_ms)
			break;
		log_info("salesforce request retry method=%s object=%s attempt=%d delay_ms=%ld "
		         "error=%s status=%ld",
		         method, object, attempt, d, sfk_err_str(rc), err->http_status);
		metric_add(r->m_retries, 1, sfk_err_str(rc));
		sleep_ms(d);
	}
	return rc;
}

/* ---- JSON helpers ---- */

static enum sfk_err json_body(const struct sf_response *resp, json_t **out, struct sf_error *err)
{
	json_error_t je;
	*out = resp->body ? json_loadb(resp->body, resp->len, 0, &je) : NULL;
	if (*out)
		return SFK_OK;
	sf_error_clear(err);
	err->err = SFK_ERR_PARSE;
	err->http_status = resp->status;
	snprintf(err->code, sizeof err->code, "BAD_JSON");
	snprintf(err->message, sizeof err->message, "response is not JSON (%s)",
	         resp->body ? je.text : "empty body");
	return err->err;
}

static enum sfk_err json_request(struct sf_rest *r, const char *method, const char *path,
                                 const char *object, json_t *body, unsigned flags, json_t **out,
                                 struct sf_error *err)
{
	struct sf_response resp;
	char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
	enum sfk_err rc = sf_rest_request(r, method, path, object, "application/json", txt,
	                                  txt ? strlen(txt) : 0, flags, &resp, err);
	free(txt);
	if (rc == SFK_OK && out) {
		*out = NULL;
		if (resp.status != 204)
			rc = json_body(&resp, out, err);
	}
	sf_response_clear(&resp);
	return rc;
}

static enum sfk_err invalid(struct sf_error *err, const char *what)
{
	sf_error_clear(err);
	err->err = SFK_ERR_INVALID;
	snprintf(err->message, sizeof err->message, "%s", what);
	return err->err;
}

static int valid_name(const char *s)
{
	if (!s || !*s || strlen(s) > 80)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return 0;
	return 1;
}

/* ---- Query ---- */

struct sf_query {
	struct sf_rest *r;
	json_t *page; /* current page */
	size_t next;  /* index into its records */
	long long total;
	int pages;
};

static enum sfk_err query_fetch(struct sf_query *q, const char *path, struct sf_error *err)
{
	json_t *page = NULL;
	enum sfk_err rc = json_request(q->r, "GET", path, "query", NULL, REQ_QUERY, &page, err);
	if (rc != SFK_OK)
		return rc;
	if (!json_is_array(json_object_get(page, "records"))) {
		json_decref(page);
		sf_error_clear(err);
		err->err = SFK_ERR_PARSE;
		snprintf(err->message, sizeof err->message, "query response without records[]");
		return err->err;
	}
	json_decref(q->page);
	q->page = page;
	q->next = 0;
	q->total = json_integer_value(json_object_get(page, "totalSize"));
	q->pages++;
	return SFK_OK;
}

enum sfk_err sf_query_open(struct sf_rest *r, const char *soql, struct sf_query **qp,
                           struct sf_error *err)
{
	*qp = NULL;
	char *enc = soql_urlencode(soql);
	char *path = xasprintf("query?q=%s", enc);
	free(enc);
	size_t uri = sf_rest_query_uri_overhead(r) - strlen("query?q=") + strlen(path);
	if (uri > SOQL_URI_MAX) {
		free(path);
		sf_error_clear(err);
		err->err = SFK_ERR_TOO_LARGE;
		snprintf(err->message, sizeof err->message,
		         "query URI would be %zu bytes (limit %d): split the IN-list "
		         "(soql_build_in_ids)",
		         uri, SOQL_URI_MAX);
		return err->err;
	}
	struct sf_query *q = xcalloc(1, sizeof *q);
	q->r = r;
	enum sfk_err rc = query_fetch(q, path, err);
	free(path);
	if (rc != SFK_OK) {
		sf_query_free(&q);
		return rc;
	}
	*qp = q;
	return SFK_OK;
}

enum sfk_err sf_query_next(struct sf_query *q, json_t **rec, struct sf_error *err)
{
	*rec = NULL;
	for (;;) {
		json_t *records = json_object_get(q->page, "records");
		if (q->next < json_array_size(records)) {
			*rec = json_array_get(records, q->next++);
			return SFK_OK;
		}
		const char *next = json_string_value(json_object_get(q->page, "nextRecordsUrl"));
		if (json_is_true(json_object_get(q->page, "done")) || !next || !*next)
			return SFK_OK;
		if (strlen(next) > SF_REST_URL_MAX || next[0] != '/') {
			sf_error_clear(err);
			err->err = SFK_ERR_PARSE;
			snprintf(err->message, sizeof err->message, "bad nextRecordsUrl");
			return err->err;
		}
		char *path = xstrdup(next);
		enum sfk_err rc = query_fetch(q, path, err);
		free(path);
		if (rc != SFK_OK)
			return rc;
	}
}

long long sf_query_total(const struct sf_query *q)
{
	return q->total;
}

int sf_query_pages(const struct sf_query *q)
{
	return q->pages;
}

void sf_query_free(struct sf_query **qp)
{
	if (!qp || !*qp)
		return;
	json_decref((*qp)->page);
	free(*qp);
	*qp = NULL;
}

/* ---- sObject rows ---- */

enum sfk_err sf_rest_get(struct sf_rest *r, const char *sobject, const char *id, const char *fields,
                         json_t **out, struct sf_error *err)
{
	*out = NULL;
	if (!valid_name(sobject))
		return invalid(err, "bad sObject name");
	if (!sfid_valid(id))
		return invalid(err, "not a valid Salesforce record id");
	char *path;
	if (fields) {
		char *enc = soql_urlencode(fields);
		path = xasprintf("sobjects/%s/%s?fields=%s", sobject, id, enc);
		free(enc);
	} else {
		path = xasprintf("sobjects/%s/%s", sobject, id);
	}
	enum sfk_err rc = json_request(r, "GET", path, sobject, NULL, 0, out, err);
	free(path);
	return rc;
}

enum sfk_err sf_rest_update(struct sf_rest *r, const char *sobject, const char *id, json_t *fields,
                            unsigned flags, struct sf_error *err)
{
	if (!valid_name(sobject))
		return invalid(err, "bad sObject name");
	if (!sfid_valid(id))
		return invalid(err, "not a valid Salesforce record id");
	if (!json_is_object(fields))
		return invalid(err, "fields must be a JSON object");
	char *path = xasprintf("sobjects/%s/%s", sobject, id);
	enum sfk_err rc = json_request(r, "PATCH", path, sobject, fields, flags, NULL, err);
	free(path);
	return rc;
}

enum sfk_err sf_rest_create(struct sf_rest *r, const char *sobject, json_t *fields, char id_out[19],
                            struct sf_error *err)
{
	json_t *res = NULL;
	id_out[0] = '\0';
	if (!valid_name(sobject))
		return invalid(err, "bad sObject name");
	char *path = xasprintf("sobjects/%s", sobject);
	enum sfk_err rc = json_request(r, "POST", path, sobject, fields, 0, &res, err);
	free(path);
	if (rc == SFK_OK) {
		const char *id = json_string_value(json_object_get(res, "id"));
		if (id && sfid_valid(id))
			snprintf(id_out, 19, "%s", id);
		else
			rc = invalid(err, "create response without a valid id");
	}
	json_decref(res);
	return rc;
}

/* ---- sObject Collections ---- */

/* Map one response array onto results[idx[i]]. Returns SFK_OK or a parse error. */
static enum sfk_err map_results(json_t *arr, size_t n, const size_t *idx,
                                struct sf_record_result *results, struct sf_error *err)
{
	if (!json_is_array(arr) || json_array_size(arr) != n) {
		sf_error_clear(err);
		err->err = SFK_ERR_PARSE;
		snprintf(err->message, sizeof err->message,
		         "collections response has %zu results for %zu records",
		         json_is_array(arr) ? json_array_size(arr) : 0, n);
		return err->err;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_array_get(arr, i);
		struct sf_record_result *res = &results[idx[i]];
		const char *id = json_string_value(json_object_get(o, "id"));
		res->success = json_is_true(json_object_get(o, "success"));
		if (id && strlen(id) < sizeof res->id)
			snprintf(res->id, sizeof res->id, "%s", id);
		sf_error_clear(&res->error);
		if (!res->success) {
			json_t *e0 = json_array_get(json_object_get(o, "errors"), 0);
			if (e0)
				sf_err_from_json(e0, 200, &res->error);
			else {
				res->error.err = SFK_ERR_SF_PERMANENT;
				snprintf(res->error.message, sizeof res->error.message,
				         "record failed without an error entry");
			}
		}
	}
	return SFK_OK;
}

enum sfk_err sf_rest_collection_update(struct sf_rest *r, json_t *records, int all_or_none,
                                       unsigned flags, struct sf_record_result *results,
                                       struct sf_error *err)
{
	size_t n = json_array_size(records);
	if (!json_is_array(records) || n == 0 || n > SF_REST_COLLECTION_MAX)
		return invalid(err, "collections need 1..200 records");
	for (size_t i = 0; i < n; i++) {
		json_t *rec = json_array_get(records, i);
		const char *id = json_string_value(json_object_get(rec, "id"));
		json_t *type = json_object_get(json_object_get(rec, "attributes"), "type");
		if (!id || !sfid_valid(id) || !valid_name(json_string_value(type))) {
			sf_error_clear(err);
			err->err = SFK_ERR_INVALID;
			snprintf(err->message, sizeof err->message,
			         "record %zu: needs attributes.type and a valid id", i);
			return err->err;
		}
		memset(&results[i], 0, sizeof results[i]);
	}
	size_t *idx = xcalloc(n, sizeof *idx), m = n;
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	json_t *batch = json_incref(records);
	enum sfk_err rc;
	long long start = mono_ms();
	for (int round = 0;; round++) {
		json_t *body = json_pack("{s:b, s:O}", "allOrNone", all_or_none, "records", batch);
		json_t *resp = NULL;
		rc = json_request(r, "PATCH", "composite/sobjects", "composite", body, flags, &resp,
		                  err);
		json_decref(body);
		if (rc == SFK_OK)
			rc = map_results(resp, m, idx, results, err);
		json_decref(resp);
		json_decref(batch);
		batch = NULL;
		if (rc != SFK_OK && round > 0) {
			/* A resend failed as a whole: the first answer stands, the
			 * resent records keep their retriable per-record error. */
			log_info("collections resend failed err=%s", sfk_err_str(rc));
			rc = SFK_OK;
			break;
		}
		if (rc != SFK_OK || all_or_none)
			break;
		/* Resend only the records that failed for a retriable reason. */
		size_t k = 0;
		for (size_t i = 0; i < m; i++) {
			struct sf_record_result *res = &results[idx[i]];
			if (!res->success && sfk_err_class(res->error.err) == SFK_CLASS_RETRIABLE)
				idx[k++] = idx[i];
		}
		if (k == 0)
			break;
		long d = backoff_ms(r, round, SFK_ERR_LOCK);
		if (mono_ms() - start + d > r->retry_total_ms)
			break;
		log_info("collections retry records=%zu round=%d delay_ms=%ld error=%s", k,
		         round + 1, d, results[idx[0]].error.code);
		metric_add(r->m_retries, 1, sfk_err_str(results[idx[0]].error.err));
		sleep_ms(d);
		batch = json_array();
		for (size_t i = 0; i < k; i++)
			json_array_append(batch, json_array_get(records, idx[i]));
		m = k;
	}
	json_decref(batch);
	free(idx);
	return rc;
}

/* ---- describe (cached in Redis) ---- */

static struct redis *describe_redis(struct sf_rest *r)
{
	if (!r->redis_url)
		return NULL;
	if (!r->redis && mono_ms() >= r->redis_next_try_ms) {
		char e[256];
		struct redis_opts o = {.connect_timeout_ms = 500, .command_timeout_ms = 1000};
		r->redis = redis_connect_url(r->redis_url, &o, e, sizeof e);
		if (!r->redis) {
			r->redis_next_try_ms = mono_ms() + 1000;
			log_warn("describe cache unavailable err=%s", e);
		}
	}
	return r->redis;
}

enum sfk_err sf_rest_describe(struct sf_rest *r, const char *sobject, json_t **out,
                              struct sf_error *err)
{
	*out = NULL;
	if (!valid_name(sobject))
		return invalid(err, "bad sObject name");
	char *key =
	        xasprintf("%s%s:%s", DESCRIBE_KEY, r->base + strlen("/services/data/"), sobject);
	pthread_mutex_lock(&r->redis_mu);
	struct redis *rd = describe_redis(r);
	if (rd) {
		redisReply *rep = redis_cmd(rd, "GET %s", key);
		if (rep && rep->type == REDIS_REPLY_STRING)
			*out = json_loadb(rep->str, rep->len, 0, NULL);
		if (rep)
			freeReplyObject(rep);
	}
	pthread_mutex_unlock(&r->redis_mu);
	if (*out) {
		free(key);
		return SFK_OK;
	}
	char *path = xasprintf("sobjects/%s/describe", sobject);
	enum sfk_err rc = json_request(r, "GET", path, sobject, NULL, 0, out, err);
	free(path);
	if (rc == SFK_OK) {
		char *txt = json_dumps(*out, JSON_COMPACT);
		if (txt && strlen(txt) <= DESCRIBE_VALUE_MAX) {
			pthread_mutex_lock(&r->redis_mu);
			rd = describe_redis(r);
			if (rd) {
				redisReply *rep = redis_cmd(rd, "SET %s %s EX %ld", key, txt,
				                            r->describe_ttl_s);
				if (rep)
					freeReplyObject(rep);
			}
			pthread_mutex_unlock(&r->redis_mu);
		}
		free(txt);
	}
	free(key);
	return rc;
}

/* ---- Simple Email Action, limits ---- */

enum sfk_err sf_rest_email_simple(struct sf_rest *r, json_t *inputs, json_t **out,
                                  struct sf_error *err)
{
	json_t *res = NULL;
	if (out)
		*out = NULL;
	if (!json_is_array(inputs) || json_array_size(inputs) == 0)
		return invalid(err, "emailSimple needs a non-empty inputs array");
	json_t *body = json_pack("{s:O}", "inputs", inputs);
	enum sfk_err rc = json_request(r, "POST", "actions/standard/emailSimple", "emailSimple",
	                               body, 0, &res, err);
	json_decref(body);
	if (rc != SFK_OK)
		goto out;
	/* The REST guide shows one object, the Actions guide an array: take both. */
	json_t *arr = res;
	if (json_is_object(res)) {
		arr = json_array();
		json_array_append(arr, res);
		json_decref(res);
		res = arr;
	}
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o)
	{
		if (json_is_false(json_object_get(o, "isSuccess"))) {
			json_t *e0 = json_array_get(json_object_get(o, "errors"), 0);
			if (e0)
				sf_err_from_json(e0, 200, err);
			else {
				sf_error_clear(err);
				err->err = SFK_ERR_SF_PERMANENT;
			}
			if (sfk_err_class(err->err) != SFK_CLASS_PERMANENT)
				err->err = SFK_ERR_SF_PERMANENT; /* never resend an email blindly */
			snprintf(err->fields, sizeof err->fields, "input %zu", i);
			rc = err->err;
			break;
		}
	}
out:
	/* The caller may want per-input detail on failure too. */
	if (out)
		*out = res;
	else
		json_decref(res);
	return rc;
}

enum sfk_err sf_rest_limits(struct sf_rest *r, json_t **out, struct sf_error *err)
{
	enum sfk_err rc = json_request(r, "GET", "limits", "limits", NULL, 0, out, err);
	if (rc == SFK_OK && r->quota) {
		json_t *d = json_object_get(*out, "DailyApiRequests");
		json_int_t max = json_integer_value(json_object_get(d, "Max"));
		json_int_t rem = json_integer_value(json_object_get(d, "Remaining"));
		if (max > 0 && rem >= 0 && rem <= max)
			sf_quota_update(r->quota, max - rem, max);
	}
	return rc;
}
