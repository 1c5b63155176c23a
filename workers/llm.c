/*
 * llm.c - OpenAI-compatible chat-completions client (see llm.h).
 */
#include "llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "log.h"
#include "xmem.h"

struct llm {
	char *url;
	char *model;
	char *auth; /* "Authorization: Bearer <key>" or NULL */
	char *ca_file;
	long timeout_ms;
};

struct buf {
	char *p;
	size_t len;
	int over;
};

struct llm *llm_from_config(const struct config *cfg)
{
	const char *url = config_str(cfg, "llm-url"), *key = config_str(cfg, "llm-api-key");
	const char *ca = config_str(cfg, "sf-ca-file");
	struct llm *l;

	if (!url || !*url)
		return NULL;
	l = xcalloc(1, sizeof *l);
	l->url = xstrdup(url);
	l->model = xstrdup(config_str(cfg, "llm-model"));
	l->timeout_ms = (long)config_ms(cfg, "llm-timeout");
	if (key && *key) {
		log_redact(key);
		l->auth = xasprintf("Authorization: Bearer %s", key);
	}
	if (ca && *ca)
		l->ca_file = xstrdup(ca);
	return l;
}

void llm_free(struct llm **pl)
{
	struct llm *l = pl ? *pl : NULL;
	if (!l)
		return;
	free(l->url);
	free(l->model);
	free(l->auth);
	free(l->ca_file);
	free(l);
	*pl = NULL;
}

const char *llm_model(const struct llm *l)
{
	return l->model;
}

static size_t on_data(char *ptr, size_t size, size_t n, void *ud)
{
	struct buf *b = ud;
	size_t add = size * n;
	if (b->len + add > LLM_RESPONSE_MAX) {
		b->over = 1;
		return 0;
	}
	b->p = realloc(b->p, b->len + add + 1);
	if (!b->p)
		abort();
	memcpy(b->p + b->len, ptr, add);
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}

enum sfk_err llm_chat(struct llm *l, const char *system, const char *user, char **content,
                      char *model_out, size_t model_len, char *errstr, size_t errlen)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct buf b = {0};
	json_t *req = NULL, *resp = NULL;
	char *body = NULL;
	long status = 0;
	CURLcode cc;
	enum sfk_err rc = SFK_ERR_PARSE;
	const char *text, *m;

	*content = NULL;
	if (!c) {
		snprintf(errstr, errlen, "llm: curl init failed");
		return SFK_ERR_TRANSPORT;
	}
	req = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:i}", "model", l->model, "messages",
	                "role", "system", "content", system, "role", "user", "content", user,
	                "temperature", 0);
	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (!body) {
		snprintf(errstr, errlen, "llm: cannot encode the request");
		rc = SFK_ERR_INVALID;
		goto out;
	}
	h = curl_slist_append(h, "Content-Type: application/json");
	if (l->auth)
		h = curl_slist_append(h, l->auth);
	curl_easy_setopt(c, CURLOPT_URL, l->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, l->timeout_ms > 0 ? l->timeout_ms : 2000L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, l->timeout_ms > 0 ? l->timeout_ms : 2000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (l->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, l->ca_file);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (b.over) {
		snprintf(errstr, errlen, "llm: response over %d bytes", LLM_RESPONSE_MAX);
		rc = SFK_ERR_TOO_LARGE;
		goto out;
	}
	if (cc != CURLE_OK) {
		snprintf(errstr, errlen, "llm: %s", curl_easy_strerror(cc));
		rc = cc == CURLE_OPERATION_TIMEDOUT ? SFK_ERR_TIMEOUT : SFK_ERR_TRANSPORT;
		goto out;
	}
	if (status < 200 || status >= 300) {
		snprintf(errstr, errlen, "llm: HTTP %ld", status);
		rc = SFK_ERR_HTTP_5XX;
		goto out;
	}
	resp = b.p ? json_loadb(b.p, b.len, 0, NULL) : NULL;
	text = json_string_value(json_object_get(
	        json_object_get(json_array_get(json_object_get(resp, "choices"), 0), "message"),
	        "content"));
	if (!text) {
		snprintf(errstr, errlen, "llm: no choices[0].message.content in the answer");
		goto out;
	}
	*content = xstrdup(text);
	m = json_string_value(json_object_get(resp, "model"));
	snprintf(model_out, model_len, "%s", m && *m ? m : l->model);
	rc = SFK_OK;
out:
	json_decref(req);
	json_decref(resp);
	free(body);
	free(b.p);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return rc;
}
