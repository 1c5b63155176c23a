/*
 * sink_es.c - the Elasticsearch sink: _bulk NDJSON with `create` and
 * _id = decision id, so a replayed record is a 409 conflict, which counts as
 * success: the index holds every decision exactly once whatever Kafka
 * redelivers.
 *
 * flush() sends the batch in _bulk requests of at most es_bulk_docs
 * documents and es_bulk_bytes bytes and honours the per-item results: items
 * that failed with 429 or 5xx (and whole requests that failed with a
 * transport error, 429 or 5xx) are sent again after a jittered exponential
 * backoff; items refused for good (mapper_parsing_exception,
 * strict_dynamic_mapping_exception, ...) are handed back through reject()
 * and end in the DLQ. Durability: ES answers a bulk request after its
 * translog was fsynced (index.translog.durability: request, the default).
 *
 * Layouts: "single" — one index (default `flywheel`, the NVIDIA data-flywheel
 * blueprint's), created at start-up with schemas/es_flywheel_index.json;
 * "monthly" — <index>-<workload>-YYYY-MM, through an index template
 * installed at start-up from the same file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "log.h"
#include "metrics.h"
#include "sink.h"
#include "xmem.h"

#define ES_RESPONSE_MAX   (64u * 1024u * 1024u) /* a _bulk reply lists every item */
#define ES_BACKOFF_MIN_MS 100
#define ES_REASON_MAX     512
#define ES_INDEX_MAX      255
#define ES_OPEN_ATTEMPTS  30

struct pend {
	size_t idx;
	const char *line; /* borrowed from the batch, valid until the flush returns */
	size_t len;
	char *action; /* {"create":{"_index":..,"_id":..}} */
	bool done;
};

struct essink {
	struct sink_conf c;
	CURL *curl;
	struct curl_slist *hdrs;
	struct pend *p;
	size_t n, cap;
	struct metric *m_recs, *m_bytes, *m_items, *m_dups, *m_req;
};

struct buf {
	char *d;
	size_t len, cap;
	bool overflow;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->d = xrealloc(b->d, b->cap);
	}
	memcpy(b->d + b->len, s, n);
	b->len += n;
	b->d[b->len] = '\0';
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct buf *b = ud;
	size_t n = size * nmemb;
	if (b->len + n > ES_RESPONSE_MAX) {
		b->overflow = true;
		return 0;
	}
	buf_add(b, ptr, n);
	return n;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static long jitter_backoff(const struct essink *s, int attempt)
{
	long d = ES_BACKOFF_MIN_MS, cap = (long)s->c.es_backoff_max_ms;
	for (int i = 0; i < attempt && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	return d / 2 + random() % (d / 2 + 1);
}

/* One HTTP request. Returns the status (0 on a transport error, err set). */
static long request(struct essink *s, const char *method, const char *path, const char *body,
                    size_t len, const char *ctype, struct buf *resp, char *err, size_t errlen)
{
	char url[2048];
	snprintf(url, sizeof url, "%s%s%s", s->c.es_url,
	         s->c.es_url[strlen(s->c.es_url) - 1] == '/' ? "" : "/", path);
	resp->len = 0;
	resp->overflow = false;
	struct curl_slist *h = curl_slist_append(NULL, ctype);
	curl_easy_reset(s->curl);
	curl_easy_setopt(s->curl, CURLOPT_URL, url);
	curl_easy_setopt(s->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, (long)s->c.es_timeout_ms);
	curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, resp);
	if (body) {
		curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	CURLcode cc = curl_easy_perform(s->curl);
	curl_slist_free_all(h);
	long status = 0;
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "%s %s: %s", method, path,
		         resp->overflow ? "response too large" : curl_easy_strerror(cc));
		return 0;
	}
	curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 300)
		snprintf(err, errlen, "%s %s: HTTP %ld %.300s", method, path, status,
		         resp->d ? resp->d : "");
	return status;
}

static bool retriable(long status)
{
	return status == 0 || status == 429 || status >= 500;
}

/* An existing single index keeps its mapping: warn when its timestamp
 * would read our epoch seconds as milliseconds (a plain `date`, as the
 * blueprint creates it). */
static void check_existing(struct essink *s, struct buf *r)
{
	char path[ES_INDEX_MAX + 16], err[256];
	snprintf(path, sizeof path, "%s/_mapping", s->c.es_index);
	if (request(s, "GET", path, NULL, 0, "Accept: application/json", r, err, sizeof err) != 200)
		return;
	json_t *m = json_loads(r->d ? r->d : "", 0, NULL);
	const char *fmt = NULL;
	const char *key;
	json_t *v;
	json_object_foreach(m, key, v)
	{
		fmt = json_string_value(json_object_get(
		        json_object_get(
		                json_object_get(json_object_get(v, "mappings"), "properties"),
		                "timestamp"),
		        "format"));
		break;
	}
	if (!fmt || !strstr(fmt, "epoch_second"))
		log_warn("elasticsearch index maps timestamp without epoch_second: epoch-second "
		         "values will be read as milliseconds index=%s format=%s",
		         s->c.es_index, fmt ? fmt : "default");
	json_decref(m);
}

/* Create the index or install the template; retried while ES starts. */
static int install(struct essink *s, char *errstr, size_t errlen)
{
	json_error_t je;
	json_t *m = json_load_file(s->c.es_mapping, 0, &je);
	if (!json_is_object(m)) {
		snprintf(errstr, errlen, "%s: %s", s->c.es_mapping, m ? "not an object" : je.text);
		json_decref(m);
		return -1;
	}
	json_t *body;
	char path[ES_INDEX_MAX + 64];
	bool monthly = strcmp(s->c.es_layout, "monthly") == 0;
	if (monthly) {
		char pat[ES_INDEX_MAX + 4];
		snprintf(pat, sizeof pat, "%s-*", s->c.es_index);
		body = json_pack("{s[s]sOsi}", "index_patterns", pat, "template", m, "priority",
		                 100);
		snprintf(path, sizeof path, "_index_template/%s-sfk", s->c.es_index);
	} else {
		body = json_incref(m);
		snprintf(path, sizeof path, "%s", s->c.es_index);
	}
	json_decref(m);
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	struct buf r = {0};
	int rc = -1;
	for (int attempt = 0; attempt < ES_OPEN_ATTEMPTS && !*s->c.stop; attempt++) {
		long st = request(s, "PUT", path, text, strlen(text),
		                  "Content-Type: application/json", &r, errstr, errlen);
		if (st >= 200 && st < 300) {
			rc = 0;
			break;
		}
		if (st == 400 && r.d && strstr(r.d, "resource_already_exists_exception")) {
			rc = 0; /* an existing index keeps its mapping */
			check_existing(s, &r);
			break;
		}
		if (!retriable(st))
			break;
		log_warn("elasticsearch not ready attempt=%d reason=%s", attempt + 1, errstr);
		sleep_ms(jitter_backoff(s, attempt));
	}
	if (rc == 0)
		log_info("elasticsearch %s installed name=%s", monthly ? "index template" : "index",
		         monthly ? path : s->c.es_index);
	free(r.d);
	free(text);
	return rc;
}

static void *es_open(const struct sink_conf *c, char *errstr, size_t errlen)
{
	if (!c->es_url || !c->es_layout || !c->es_index || !c->es_mapping) {
		snprintf(errstr, errlen, "ES_URL, layout, index and mapping are required");
		return NULL;
	}
	struct essink *s = xcalloc(1, sizeof *s);
	s->c = *c;
	s->curl = curl_easy_init();
	s->m_recs = metrics_counter("sfk_loader_records_written_total",
	                            "Records made durable by each sink", "sink");
	s->m_bytes = metrics_counter("sfk_loader_bytes_written_total",
	                             "Bytes made durable by each sink", "sink");
	s->m_dups = metrics_counter("sfk_loader_duplicates_skipped_total",
	                            "Records a sink already had (redelivery or upstream duplicate)",
	                            "sink");
	s->m_items = metrics_counter("sfk_loader_es_item_errors_total",
	                             "Elasticsearch _bulk item failures by error type", "type");
	s->m_req = metrics_counter("sfk_loader_es_requests_total",
	                           "Elasticsearch _bulk requests by HTTP status class", "status");
	if (!s->curl || install(s, errstr, errlen) != 0) {
		void *v = s;
		curl_easy_cleanup(s->curl);
		free(v);
		return NULL;
	}
	return s;
}

static enum sfk_err es_write(void *sv, const struct sink_rec *r, char *errstr, size_t errlen)
{
	struct essink *s = sv;
	char index[ES_INDEX_MAX + 1];
	if (strcmp(s->c.es_layout, "monthly") == 0) {
		time_t t = (time_t)r->timestamp;
		struct tm tm;
		char ym[16];
		if (!gmtime_r(&t, &tm) || strftime(ym, sizeof ym, "%Y-%m", &tm) == 0) {
			snprintf(errstr, errlen, "timestamp out of range");
			return SFK_ERR_INVALID;
		}
		int n = snprintf(index, sizeof index, "%s-%s-%s", s->c.es_index, r->workload_id,
		                 ym);
		if (n < 0 || (size_t)n >= sizeof index) {
			snprintf(errstr, errlen, "index name too long");
			return SFK_ERR_INVALID;
		}
		for (char *p = index; *p; p++) /* index names are lower case */
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	} else {
		snprintf(index, sizeof index, "%s", s->c.es_index);
	}
	json_t *a = json_pack("{s{ssss}}", "create", "_index", index, "_id", r->decision_id);
	char *action = a ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	if (!action) {
		snprintf(errstr, errlen, "cannot build the bulk action");
		return SFK_ERR_INVALID;
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->p = xrealloc(s->p, s->cap * sizeof *s->p);
	}
	s->p[s->n++] = (struct pend){r->idx, r->line, r->len, action, false};
	return SFK_OK;
}

/* Apply the per-item results of one _bulk answer to the items in chunk[]. */
static enum sfk_err apply_items(struct essink *s, struct pend **chunk, size_t n, const char *body,
                                size_t *failed, sink_reject_fn reject, void *ctx, char *errstr,
                                size_t errlen)
{
	json_error_t je;
	json_t *r = json_loads(body, 0, &je);
	json_t *items = json_object_get(r, "items");
	if (!json_is_array(items) || json_array_size(items) != n) {
		snprintf(errstr, errlen, "unexpected _bulk response (%s)",
		         r ? "item count differs" : je.text);
		json_decref(r);
		return SFK_ERR_HTTP_5XX; /* resend: create is idempotent */
	}
	for (size_t i = 0; i < n; i++) {
		json_t *it = json_object_get(json_array_get(items, i), "create");
		long st = (long)json_integer_value(json_object_get(it, "status"));
		json_t *e = json_object_get(it, "error");
		const char *type = json_string_value(json_object_get(e, "type"));
		if (st == 200 || st == 201) {
			chunk[i]->done = true;
			metric_add(s->m_recs, 1, "es");
			metric_add(s->m_bytes, (double)chunk[i]->len, "es");
		} else if (st == 409) {
			chunk[i]->done = true; /* created by an earlier delivery */
			metric_add(s->m_dups, 1, "es");
		} else {
			metric_add(s->m_items, 1, type ? type : "unknown");
			if (retriable(st)) {
				(*failed)++;
				continue;
			}
			char reason[ES_REASON_MAX];
			snprintf(reason, sizeof reason, "HTTP %ld %s: %s", st,
			         type ? type : "error",
			         json_string_value(json_object_get(e, "reason"))
			                 ? json_string_value(json_object_get(e, "reason"))
			                 : "");
			reject(ctx, chunk[i]->idx, type ? type : "es_rejected", reason);
			chunk[i]->done = true;
		}
	}
	json_decref(r);
	return SFK_OK;
}

static enum sfk_err es_flush(void *sv, sink_reject_fn reject, void *ctx, char *errstr,
                             size_t errlen)
{
	struct essink *s = sv;
	struct buf body = {0}, resp = {0};
	struct pend **chunk = xcalloc(s->c.es_bulk_docs, sizeof *chunk);
	enum sfk_err rc = SFK_OK;
	int attempt = 0;
	for (;;) {
		/* Next chunk of not-yet-done items, bounded by docs and bytes. */
		size_t n = 0;
		body.len = 0;
		for (size_t i = 0; i < s->n && n < s->c.es_bulk_docs; i++) {
			struct pend *p = &s->p[i];
			size_t add = strlen(p->action) + p->len + 2;
			if (p->done)
				continue;
			if (n > 0 && body.len + add > s->c.es_bulk_bytes)
				break;
			buf_add(&body, p->action, strlen(p->action));
			buf_add(&body, "\n", 1);
			buf_add(&body, p->line, p->len);
			buf_add(&body, "\n", 1);
			chunk[n++] = p;
		}
		if (n == 0)
			break;
		long st = request(s, "POST", "_bulk", body.d, body.len,
		                  "Content-Type: application/x-ndjson", &resp, errstr, errlen);
		char cls[24];
		snprintf(cls, sizeof cls, "%ldxx", st / 100);
		metric_add(s->m_req, 1, st ? cls : "error");
		size_t failed = 0;
		if (st == 200) {
			rc = apply_items(s, chunk, n, resp.d ? resp.d : "", &failed, reject, ctx,
			                 errstr, errlen);
			if (rc != SFK_OK)
				failed = n;
		} else if (retriable(st)) {
			failed = n;
		} else {
			rc = SFK_ERR_INVALID; /* our request is wrong: a bug, stop */
			break;
		}
		if (failed == 0) {
			attempt = 0;
			continue;
		}
		rc = SFK_OK;
		if (*s->c.stop) {
			snprintf(errstr, errlen, "stopping with %zu items not indexed", failed);
			rc = SFK_ERR_TIMEOUT;
			break;
		}
		long wait = jitter_backoff(s, attempt++);
		log_warn("elasticsearch bulk retry failed_items=%zu status=%ld wait_ms=%ld", failed,
		         st, wait);
		sleep_ms(wait);
	}
	if (rc == SFK_OK || sfk_err_class(rc) != SFK_CLASS_RETRIABLE) {
		for (size_t i = 0; i < s->n; i++)
			free(s->p[i].action);
		s->n = 0;
	}
	free(chunk);
	free(body.d);
	free(resp.d);
	return rc;
}

static void es_close(void **sv)
{
	if (!sv || !*sv)
		return;
	struct essink *s = *sv;
	for (size_t i = 0; i < s->n; i++)
		free(s->p[i].action);
	free(s->p);
	curl_easy_cleanup(s->curl);
	free(s);
	*sv = NULL;
}

const struct sink_ops sink_es_ops = {
        .name = "es",
        .open = es_open,
        .write = es_write,
        .flush = es_flush,
        .tick = NULL,
        .close = es_close,
};
