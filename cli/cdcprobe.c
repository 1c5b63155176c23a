/*
 * cdcprobe.c - minimal Bayeux exchange over libcurl (see cdcprobe.h). The
 * bridge's full client lives in bridge/cometd.c; sfk links only sfk_common,
 * and a probe needs three messages, not a long-poll loop.
 */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "cdcprobe.h"
#include "xmem.h"

struct buf {
	char *p;
	size_t n;
	int over;
};

static size_t on_write(char *data, size_t sz, size_t nm, void *ud)
{
	struct buf *b = ud;
	size_t n = sz * nm;
	if (b->n + n > CDCPROBE_RESPONSE_MAX) {
		b->over = 1;
		return 0;
	}
	b->p = xrealloc(b->p, b->n + n + 1);
	memcpy(b->p + b->n, data, n);
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

/* POST msgs (borrowed) and return the reply array (new reference) or NULL. */
static json_t *post(CURL *h, const char *url, json_t *msgs, char *errstr, size_t errlen)
{
	struct buf b = {0};
	char *body = json_dumps(msgs, JSON_COMPACT);
	json_t *out = NULL;
	long status = 0;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK) {
		snprintf(errstr, errlen, "%s%s", b.over ? "answer too large; " : "",
		         curl_easy_strerror(rc));
		goto out;
	}
	if (status != 200) {
		snprintf(errstr, errlen, "HTTP %ld from %s", status, url);
		goto out;
	}
	out = b.p ? json_loads(b.p, 0, NULL) : NULL;
	if (!json_is_array(out)) {
		snprintf(errstr, errlen, "answer is not a Bayeux message array");
		json_decref(out);
		out = NULL;
	}
out:
	free(body);
	free(b.p);
	return out;
}

/* The reply in arr for channel/subscription; borrowed. */
static json_t *find_reply(json_t *arr, const char *meta, const char *sub)
{
	size_t i;
	json_t *m;
	json_array_foreach(arr, i, m)
	{
		const char *ch = json_string_value(json_object_get(m, "channel"));
		const char *s = json_string_value(json_object_get(m, "subscription"));
		if (ch && strcmp(ch, meta) == 0 && (!sub || (s && strcmp(s, sub) == 0)))
			return m;
	}
	return NULL;
}

json_t *cdcprobe_run(const char *instance_url, const char *token, const char *api_version,
                     const char *ca_file, json_t *channels, long timeout_ms, char *errstr,
                     size_t errlen)
{
	char url[2048];
	struct curl_slist *hdrs = NULL;
	json_t *req = NULL, *rep = NULL, *out = NULL;
	CURL *h = curl_easy_init();
	const char *cid;
	size_t i;
	json_t *ch;
	if (!h) {
		snprintf(errstr, errlen, "curl init failed");
		return NULL;
	}
	const char *v = api_version[0] == 'v' ? api_version + 1 : api_version;
	if (snprintf(url, sizeof url, "%s/cometd/%s", instance_url, v) >= (int)sizeof url) {
		snprintf(errstr, errlen, "instance URL too long");
		goto out;
	}
	char *auth = xasprintf("Authorization: Bearer %s", token);
	hdrs = curl_slist_append(hdrs, auth);
	free(auth);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_COOKIEFILE, ""); /* the session is pinned by a cookie */
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);

	req = json_pack("[{s:s, s:s, s:s, s:[s], s:{s:b}}]", "channel", "/meta/handshake",
	                "version", "1.0", "minimumVersion", "1.0", "supportedConnectionTypes",
	                "long-polling", "ext", "replay", 1);
	if (!(rep = post(h, url, req, errstr, errlen)))
		goto out;
	json_t *hs = find_reply(rep, "/meta/handshake", NULL);
	cid = json_string_value(json_object_get(hs, "clientId"));
	if (!json_is_true(json_object_get(hs, "successful")) || !cid) {
		const char *e = json_string_value(json_object_get(hs, "error"));
		snprintf(errstr, errlen, "handshake refused: %s", e ? e : "no clientId");
		goto out;
	}
	char *client_id = xstrdup(cid);
	json_decref(req);
	req = json_array();
	json_t *replay = json_object();
	json_array_foreach(channels, i, ch)
	        json_object_set_new(replay, json_string_value(ch), json_integer(-1));
	json_array_foreach(channels, i, ch)
	{
		json_array_append_new(req, json_pack("{s:s, s:s, s:O, s:{s:O}}", "channel",
		                                     "/meta/subscribe", "clientId", client_id,
		                                     "subscription", ch, "ext", "replay", replay));
	}
	json_decref(replay);
	json_decref(rep);
	rep = post(h, url, req, errstr, errlen);
	if (rep) {
		out = json_array();
		json_array_foreach(channels, i, ch)
		{
			json_t *r = find_reply(rep, "/meta/subscribe", json_string_value(ch));
			json_t *o = json_pack("{s:O, s:b}", "channel", ch, "ok",
			                      json_is_true(json_object_get(r, "successful")));
			if (!json_is_true(json_object_get(r, "successful"))) {
				const char *e = json_string_value(json_object_get(r, "error"));
				json_object_set_new(o, "error", json_string(e ? e : "no answer"));
			}
			json_array_append_new(out, o);
		}
	}
	/* Leave politely so the server drops the client at once. */
	json_decref(req);
	req = json_pack("[{s:s, s:s}]", "channel", "/meta/disconnect", "clientId", client_id);
	json_decref(rep);
	char ignore[256];
	rep = post(h, url, req, ignore, sizeof ignore);
	free(client_id);
out:
	json_decref(req);
	json_decref(rep);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return out;
}
