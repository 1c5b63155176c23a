/*
 * cometd.c - Bayeux long-polling client (see cometd.h).
 *
 * One curl easy handle per client: keep-alive and the cookie engine
 * (Salesforce pins the session to a BAYEUX_BROWSER/sfdc-stream cookie and
 * refuses requests without it). One request at a time: Bayeux allows only
 * one outstanding /meta/connect, and handshake/subscribe never overlap it.
 *
 * Every failure funnels into one verdict (enum cometd_action) so that the
 * recovery policy lives in one switch (act()) instead of being re-decided
 * at every call site.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cometd.h"
#include "log.h"
#include "metrics.h"
#include "xmem.h"

/* ---- pure parts ------------------------------------------------------- */

static json_t *msg_new(unsigned long *id_seq, const char *channel)
{
	char id[32];
	snprintf(id, sizeof id, "%lu", ++*id_seq);
	return json_pack("{s:s, s:s}", "channel", channel, "id", id);
}

json_t *cometd_req_handshake(unsigned long *id_seq)
{
	json_t *m = msg_new(id_seq, "/meta/handshake");
	json_object_set_new(m, "version", json_string("1.0"));
	json_object_set_new(m, "minimumVersion", json_string("1.0"));
	json_object_set_new(m, "supportedConnectionTypes", json_pack("[s]", "long-polling"));
	json_object_set_new(m, "ext", json_pack("{s:b}", "replay", 1));
	return json_pack("[o]", m);
}

json_t *cometd_req_subscribe(unsigned long *id_seq, const char *client_id,
                             const char *const *channels, const int64_t *replay, size_t n)
{
	json_t *map = json_object(), *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_object_set_new(map, channels[i], json_integer((json_int_t)replay[i]));
	for (size_t i = 0; i < n; i++) {
		json_t *m = msg_new(id_seq, "/meta/subscribe");
		json_object_set_new(m, "clientId", json_string(client_id));
		json_object_set_new(m, "subscription", json_string(channels[i]));
		json_object_set_new(m, "ext", json_pack("{s:O}", "replay", map));
		json_array_append_new(arr, m);
	}
	json_decref(map);
	return arr;
}

json_t *cometd_req_connect(unsigned long *id_seq, const char *client_id)
{
	json_t *m = msg_new(id_seq, "/meta/connect");
	json_object_set_new(m, "clientId", json_string(client_id));
	json_object_set_new(m, "connectionType", json_string("long-polling"));
	return json_pack("[o]", m);
}

json_t *cometd_req_disconnect(unsigned long *id_seq, const char *client_id)
{
	json_t *m = msg_new(id_seq, "/meta/disconnect");
	json_object_set_new(m, "clientId", json_string(client_id));
	return json_pack("[o]", m);
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

long cometd_backoff_ms(unsigned attempt, long base_ms, long max_ms, uint64_t *rng)
{
	long cap = base_ms;
	for (unsigned i = 0; i < attempt && cap < max_ms; i++)
		cap *= 2;
	if (cap > max_ms)
		cap = max_ms;
	if (cap <= 0)
		return 0;
	return (long)(xorshift(rng) % (uint64_t)(cap + 1));
}

enum sfk_err cometd_parse_response(const char *body, size_t len, json_t **msgs, char *errstr,
                                   size_t errlen)
{
	json_error_t je;
	size_t i = 0;

	*msgs = NULL;
	while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
		i++;
	if (i == len) {
		snprintf(errstr, errlen, "empty response body");
		return SFK_ERR_PARSE;
	}
	if (body[i] == '<') {
		/* Denied requests can come back as an HTML page. */
		snprintf(errstr, errlen, "HTML response body (%zu bytes), not Bayeux JSON", len);
		return SFK_ERR_PARSE;
	}
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		snprintf(errstr, errlen, "response is not JSON: %s at byte %d", je.text,
		         je.position);
		return SFK_ERR_PARSE;
	}
	if (!json_is_array(j)) {
		snprintf(errstr, errlen, "response is a JSON %s, not an array of messages",
		         json_is_object(j) ? "object" : "scalar");
		json_decref(j);
		return SFK_ERR_PARSE;
	}
	json_t *m;
	json_array_foreach(j, i, m)
	{
		if (!json_is_object(m) || !json_is_string(json_object_get(m, "channel"))) {
			snprintf(errstr, errlen,
			         "response message [%zu] is not an object with a channel", i);
			json_decref(j);
			return SFK_ERR_PARSE;
		}
	}
	*msgs = j;
	return SFK_OK;
}

static int starts(const char *s, const char *prefix)
{
	return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* "400::The replayId {82} you provided was invalid..." -> 82. */
static int parse_invalid_replay(const char *err, int64_t *out)
{
	const char *p = strstr(err, "The replayId {");
	if (!p || !strstr(err, "you provided was invalid"))
		return 0;
	p += strlen("The replayId {");
	char *end;
	errno = 0;
	long long v = strtoll(p, &end, 10);
	if (errno || end == p || *end != '}')
		return 0;
	*out = v;
	return 1;
}

void cometd_verdict_of(json_t *r, struct cometd_verdict *v)
{
	memset(v, 0, sizeof *v);
	v->interval_ms = v->timeout_ms = -1;

	json_t *advice = json_object_get(r, "advice");
	json_t *x;
	if (json_is_integer(x = json_object_get(advice, "interval")))
		v->interval_ms = (long)json_integer_value(x);
	if (json_is_integer(x = json_object_get(advice, "timeout")))
		v->timeout_ms = (long)json_integer_value(x);
	const char *reconnect = json_string_value(json_object_get(advice, "reconnect"));
	const char *sub = json_string_value(json_object_get(r, "subscription"));
	if (sub)
		snprintf(v->channel, sizeof v->channel, "%s", sub);

	if (json_is_true(json_object_get(r, "successful"))) {
		v->action = COMETD_ACT_OK;
		return;
	}
	const char *err = json_string_value(json_object_get(r, "error"));
	const char *why = json_string_value(json_object_get(
	        json_object_get(json_object_get(r, "ext"), "sfdc"), "failureReason"));
	if (why && err)
		snprintf(v->reason, sizeof v->reason, "%s (%s)", err, why);
	else
		snprintf(v->reason, sizeof v->reason, "%s",
		         err   ? err
		         : why ? why
		               : "unsuccessful reply without an error");
	if (!err)
		err = "";

	if (parse_invalid_replay(err, &v->replay_id)) {
		v->action = COMETD_ACT_REPLAY_INVALID;
	} else if (starts(err, "401::") || starts(why, "401::")) {
		v->action = COMETD_ACT_REAUTH;
	} else if (strcmp(err, "403::Unknown client") == 0 ||
	           strcmp(err, "403::Client has not completed handshake") == 0 ||
	           (starts(err, "400::Client ") && strstr(err, "cookie present")) ||
	           (reconnect && strcmp(reconnect, "handshake") == 0)) {
		v->action = COMETD_ACT_HANDSHAKE;
	} else if (starts(err, "503::") || starts(why, "503::") || strstr(err, "limit exceeded") ||
	           (why && strstr(why, "limit exceeded"))) {
		/* Too busy, daily event allocation, concurrent clients: these clear
		 * in minutes or hours, not seconds. */
		v->action = COMETD_ACT_RETRY;
		v->slow = 1;
	} else if (reconnect && strcmp(reconnect, "retry") == 0) {
		v->action = COMETD_ACT_RETRY;
	} else if (starts(err, "5")) {
		v->action = COMETD_ACT_RETRY;
	} else {
		/* reconnect "none", permissions, unknown channel, a replay map
		 * that does not match the subscription (our bug): retrying cannot
		 * help. */
		v->action = COMETD_ACT_FATAL;
	}
}

/* ---- the client ------------------------------------------------------- */

struct chan {
	char name[COMETD_CHANNEL_MAX];
	int64_t known; /* last committed / checkpointed replay id, -1 if none */
	int has_known;
	int64_t subscribed_from; /* replay id of the last subscribe */
};

struct cometd {
	char *url, *ca_file;
	struct chan chans[COMETD_MAX_CHANNELS];
	size_t nchans;
	struct cometd_config cfg;
	struct cometd_token_provider tp;
	struct cometd_handler h;

	CURL *curl;
	struct curl_slist *hdrs;
	char token[COMETD_TOKEN_MAX];
	int have_token, force_new_token;
	char client_id[COMETD_CLIENT_ID_MAX];
	int subscribed;
	atomic_int ready; /* subscribed; read by the admin server's threads */
	long adv_timeout_ms, adv_interval_ms;
	unsigned long id_seq;
	unsigned attempt;
	uint64_t rng;
	int ignore_stop;

	/* response buffer, capped at max_response_bytes */
	char *buf;
	size_t len, cap;
	int too_large;

	char replay_err_chan[COMETD_CHANNEL_MAX];
	int64_t replay_err_id;
	struct cometd_stats st;
	struct metric *m_handshakes, *m_reconnects, *m_stalls, *m_events;
};

static int stopping(const struct cometd *c)
{
	return !c->ignore_stop && c->cfg.stop && *c->cfg.stop;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct cometd *c = ud;
	size_t n = size * nmemb;
	if (c->len + n > c->cfg.max_response_bytes) {
		c->too_large = 1;
		return 0; /* curl aborts with CURLE_WRITE_ERROR */
	}
	if (c->len + n + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 16384;
		while (cap < c->len + n + 1)
			cap *= 2;
		c->buf = xrealloc(c->buf, cap);
		c->cap = cap;
	}
	memcpy(c->buf + c->len, p, n);
	c->len += n;
	c->buf[c->len] = '\0';
	return n;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt, (void)dn, (void)ut, (void)un;
	return stopping(ud) ? 1 : 0;
}

struct cometd *cometd_new(const struct cometd_config *cfg, const struct cometd_token_provider *tp,
                          const struct cometd_handler *h, char *errstr, size_t errlen)
{
	if (!cfg->url || (!starts(cfg->url, "https://") && !starts(cfg->url, "http://"))) {
		snprintf(errstr, errlen, "cometd url must be http(s)://host/cometd/<version>");
		return NULL;
	}
	if (cfg->nchannels == 0 || cfg->nchannels > COMETD_MAX_CHANNELS) {
		snprintf(errstr, errlen, "need 1..%d channels, got %zu", COMETD_MAX_CHANNELS,
		         cfg->nchannels);
		return NULL;
	}
	if (!tp || !tp->get || !h || !h->replay_from || !h->on_batch) {
		snprintf(errstr, errlen, "token provider and handler callbacks are required");
		return NULL;
	}
	struct cometd *c = xcalloc(1, sizeof *c);
	for (size_t i = 0; i < cfg->nchannels; i++) {
		const char *ch = cfg->channels[i];
		int n = snprintf(c->chans[i].name, sizeof c->chans[i].name, "%s", ch ? ch : "");
		if (!ch || ch[0] != '/' || n < 0 || (size_t)n >= sizeof c->chans[i].name) {
			snprintf(errstr, errlen,
			         "channel %zu must start with '/' and be shorter than %d", i,
			         COMETD_CHANNEL_MAX);
			free(c);
			return NULL;
		}
		c->chans[i].known = -1;
		c->chans[i].subscribed_from = -1;
	}
	c->nchans = cfg->nchannels;
	c->cfg = *cfg;
	c->cfg.channels = NULL; /* copied into chans */
	c->url = xstrdup(cfg->url);
	c->ca_file = cfg->ca_file && *cfg->ca_file ? xstrdup(cfg->ca_file) : NULL;
	c->cfg.url = c->url;
	c->cfg.ca_file = c->ca_file;
#define DEF(f, v)                                                                                  \
	if (c->cfg.f <= 0)                                                                         \
	c->cfg.f = (v)
	DEF(max_response_bytes, COMETD_MAX_RESPONSE_BYTES);
	DEF(connect_timeout_ms, 10000);
	DEF(request_timeout_ms, 30000);
	DEF(stall_grace_ms, 15000);
	DEF(backoff_base_ms, 500);
	DEF(backoff_max_ms, 60000);
	DEF(slow_backoff_ms, 300000);
#undef DEF
	c->tp = *tp;
	c->h = *h;
	c->rng =
	        cfg->seed ? cfg->seed : (uint64_t)time(NULL) * 2654435761u + (uint64_t)(uintptr_t)c;
	c->adv_timeout_ms = COMETD_DEFAULT_TIMEOUT_MS;
	c->m_handshakes = metrics_counter("sfk_cometd_handshakes_total",
	                                  "CometD handshakes by outcome", "outcome");
	c->m_reconnects = metrics_counter("sfk_cometd_reconnects_total",
	                                  "CometD session recoveries by reason", "reason");
	c->m_stalls =
	        metrics_counter("sfk_cometd_stalls_total",
	                        "CometD connects that outlived advised timeout + grace", NULL);
	c->m_events = metrics_counter("sfk_cometd_events_total",
	                              "CometD data messages delivered to the bridge", "channel");
	return c;
}

/* (Re)build the easy handle's fixed options and headers. */
static void curl_setup(struct cometd *c)
{
	if (!c->curl) {
		c->curl = curl_easy_init();
		if (!c->curl) {
			log_error("cometd: curl_easy_init failed");
			exit(70); /* out of memory, as xmalloc does */
		}
		curl_easy_setopt(c->curl, CURLOPT_URL, c->url);
		curl_easy_setopt(c->curl, CURLOPT_COOKIEFILE, ""); /* cookie engine on */
		curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 2L);
		if (c->ca_file)
			curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->ca_file);
		curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, c->cfg.connect_timeout_ms);
		curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_write);
		curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
		curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, c);
		curl_easy_setopt(c->curl, CURLOPT_ACCEPT_ENCODING, "");
	}
	curl_slist_free_all(c->hdrs);
	c->hdrs = NULL;
	char auth[COMETD_TOKEN_MAX + 32];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token);
	c->hdrs = curl_slist_append(c->hdrs, auth);
	c->hdrs = curl_slist_append(c->hdrs, "Content-Type: application/json");
	c->hdrs = curl_slist_append(c->hdrs, "Accept: application/json");
	memset(auth, 0, sizeof auth);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->hdrs);
}

/* The outcome of one POST, already turned into a verdict for the failures
 * that are not Bayeux replies (transport, HTTP status, body shape). */
struct post_result {
	json_t *msgs; /* new reference on success */
	int stalled;  /* the watchdog fired */
	int stopped;
};

static enum cometd_action post(struct cometd *c, json_t *req, long timeout_ms,
                               struct post_result *pr, struct cometd_verdict *v)
{
	char *body = json_dumps(req, JSON_COMPACT);
	enum cometd_action act = COMETD_ACT_OK;

	memset(pr, 0, sizeof *pr);
	memset(v, 0, sizeof *v);
	v->interval_ms = v->timeout_ms = -1;
	if (!body || strlen(body) > COMETD_MAX_REQUEST_BYTES) {
		snprintf(v->reason, sizeof v->reason, "request of %zu bytes exceeds %d",
		         body ? strlen(body) : 0, COMETD_MAX_REQUEST_BYTES);
		free(body);
		return v->action = COMETD_ACT_FATAL;
	}
	c->len = 0;
	c->too_large = 0;
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	CURLcode cc = curl_easy_perform(c->curl);
	free(body);

	long status = 0;
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_ABORTED_BY_CALLBACK) {
		pr->stopped = 1;
		snprintf(v->reason, sizeof v->reason, "stopped");
		return v->action = COMETD_ACT_RETRY;
	}
	if (cc == CURLE_OPERATION_TIMEDOUT) {
		pr->stalled = 1;
		snprintf(v->reason, sizeof v->reason, "no response within %ld ms", timeout_ms);
		return v->action = COMETD_ACT_HANDSHAKE;
	}
	if (c->too_large) {
		snprintf(v->reason, sizeof v->reason, "response larger than %zu bytes",
		         c->cfg.max_response_bytes);
		return v->action = COMETD_ACT_HANDSHAKE;
	}
	if (cc != CURLE_OK) {
		/* An answer cut half-way may have carried events the server now
		 * counts as delivered: a plain retry of /meta/connect would resume
		 * after them. Re-handshake and resubscribe from the checkpoint. */
		c->st.transport_errors++;
		snprintf(v->reason, sizeof v->reason, "transport: %s", curl_easy_strerror(cc));
		return v->action = COMETD_ACT_HANDSHAKE;
	}
	char perr[200];
	json_t *msgs = NULL;
	if (cometd_parse_response(c->buf ? c->buf : "", c->len, &msgs, perr, sizeof perr) !=
	    SFK_OK) {
		snprintf(v->reason, sizeof v->reason, "HTTP %ld: %s", status, perr);
		if (status == 401 || status == 403)
			act = COMETD_ACT_REAUTH;
		else if (status == 200 || status >= 500 || status == 429 || status == 408)
			act = COMETD_ACT_RETRY;
		else
			act = COMETD_ACT_FATAL;
		return v->action = act;
	}
	if (status != 200) {
		/* A Bayeux error array with a non-200 status (e.g. 400 for a bad
		 * version): the first reply's verdict decides; a 401 always means
		 * a new token. */
		cometd_verdict_of(json_array_get(msgs, 0), v);
		if (status == 401)
			v->action = COMETD_ACT_REAUTH;
		else if (v->action == COMETD_ACT_OK)
			v->action = status >= 500 ? COMETD_ACT_RETRY : COMETD_ACT_FATAL;
		char r[sizeof v->reason];
		snprintf(r, sizeof r, "HTTP %ld: %.200s", status, v->reason);
		memcpy(v->reason, r, sizeof r);
		json_decref(msgs);
		return v->action;
	}
	pr->msgs = msgs;
	return COMETD_ACT_OK;
}

/* The reply to meta channel ch in msgs (borrowed), or NULL. */
static json_t *meta_reply(json_t *msgs, const char *ch)
{
	size_t i;
	json_t *m;
	json_array_foreach(msgs, i, m) if (strcmp(json_string_value(json_object_get(m, "channel")),
	                                          ch) == 0) return m;
	return NULL;
}

static void sleep_ms(struct cometd *c, long ms)
{
	/* In slices, so that a stop request is honoured within 100 ms. */
	while (ms > 0 && !stopping(c)) {
		long step = ms < 100 ? ms : 100;
		struct timespec ts = {step / 1000, (step % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		ms -= step;
	}
}

static void drop_session(struct cometd *c)
{
	c->client_id[0] = '\0';
	c->subscribed = 0;
	atomic_store(&c->ready, 0);
	c->adv_interval_ms = 0;
}

static void send_disconnect(struct cometd *c)
{
	if (!c->client_id[0] || !c->curl)
		return;
	json_t *req = cometd_req_disconnect(&c->id_seq, c->client_id);
	struct post_result pr;
	struct cometd_verdict v;
	c->ignore_stop = 1;
	if (post(c, req, 5000, &pr, &v) == COMETD_ACT_OK)
		log_info("cometd disconnected");
	c->ignore_stop = 0;
	json_decref(pr.msgs);
	json_decref(req);
	drop_session(c);
}

static const char *const action_names[] = {
        [COMETD_ACT_OK] = "ok",
        [COMETD_ACT_RETRY] = "retry",
        [COMETD_ACT_HANDSHAKE] = "handshake",
        [COMETD_ACT_REAUTH] = "reauth",
        [COMETD_ACT_REPLAY_INVALID] = "replay_invalid",
        [COMETD_ACT_FATAL] = "fatal",
};

/* The single place where a failed step turns into the next step. Returns 1
 * when cometd_run must return (outcome in *out), 0 to go on. */
static int act(struct cometd *c, const char *step, const struct cometd_verdict *v,
               enum cometd_outcome *out, char *errstr, size_t errlen)
{
	long wait;
	switch (v->action) {
	case COMETD_ACT_OK: return 0; /* attempt resets only after a good connect */
	case COMETD_ACT_REPLAY_INVALID:
		c->st.replay_invalid++;
		snprintf(c->replay_err_chan, sizeof c->replay_err_chan, "%s", v->channel);
		/* Reported on /meta/connect (seen once in the wild) the reply names
		 * no subscription: the channel subscribed from that id is the one. */
		for (size_t i = 0; !c->replay_err_chan[0] && i < c->nchans; i++)
			if (c->chans[i].subscribed_from == v->replay_id)
				snprintf(c->replay_err_chan, sizeof c->replay_err_chan, "%s",
				         c->chans[i].name);
		if (!c->replay_err_chan[0]) {
			snprintf(errstr, errlen, "%s: %s (no channel subscribed from that id)",
			         step, v->reason);
			send_disconnect(c);
			*out = COMETD_FATAL;
			return 1;
		}
		c->replay_err_id = v->replay_id;
		snprintf(errstr, errlen, "%s %s: %s", step, c->replay_err_chan, v->reason);
		send_disconnect(c);
		*out = COMETD_REPLAY_INVALID;
		return 1;
	case COMETD_ACT_FATAL:
		snprintf(errstr, errlen, "%s: %s", step, v->reason);
		send_disconnect(c);
		*out = COMETD_FATAL;
		return 1;
	case COMETD_ACT_REAUTH:
		c->st.reauths++;
		metric_add(c->m_reconnects, 1, "reauth");
		c->force_new_token = 1;
		c->have_token = 0;
		drop_session(c);
		break;
	case COMETD_ACT_HANDSHAKE:
		c->st.rehandshakes++;
		metric_add(c->m_reconnects, 1, "handshake");
		drop_session(c);
		break;
	case COMETD_ACT_RETRY: metric_add(c->m_reconnects, 1, "retry"); break;
	}
	wait = v->slow ? c->cfg.slow_backoff_ms / 2 +
	                         cometd_backoff_ms(0, c->cfg.slow_backoff_ms / 2,
	                                           c->cfg.slow_backoff_ms, &c->rng)
	               : cometd_backoff_ms(c->attempt, c->cfg.backoff_base_ms,
	                                   c->cfg.backoff_max_ms, &c->rng);
	/* The first re-handshake after a lost session is immediate: the server
	 * forgets a client within 40 s, and events keep flowing meanwhile. */
	if (v->action == COMETD_ACT_HANDSHAKE && c->attempt == 0)
		wait = 0;
	c->attempt++;
	log_warn("cometd recovering step=%s action=%s wait_ms=%ld attempt=%u reason=%s", step,
	         action_names[v->action], wait, c->attempt, v->reason);
	sleep_ms(c, wait);
	return 0;
}

static int do_token(struct cometd *c, enum cometd_outcome *out, char *errstr, size_t errlen)
{
	char err[256] = "";
	char tok[COMETD_TOKEN_MAX];
	enum sfk_err rc =
	        c->tp.get(c->tp.ctx, c->force_new_token, tok, sizeof tok, err, sizeof err);
	if (rc == SFK_OK && tok[0]) {
		log_redact(tok);
		memcpy(c->token, tok, sizeof tok);
		memset(tok, 0, sizeof tok);
		c->have_token = 1;
		c->force_new_token = 0;
		curl_setup(c);
		return 0;
	}
	memset(tok, 0, sizeof tok);
	struct cometd_verdict v = {.action = COMETD_ACT_RETRY, .interval_ms = -1, .timeout_ms = -1};
	snprintf(v.reason, sizeof v.reason, "token provider: %s: %.200s", sfk_err_str(rc), err);
	if (rc == SFK_OK || sfk_err_class(rc) == SFK_CLASS_FATAL ||
	    sfk_err_class(rc) == SFK_CLASS_PERMANENT)
		v.action = COMETD_ACT_FATAL;
	return act(c, "token", &v, out, errstr, errlen);
}

static int do_handshake(struct cometd *c, enum cometd_outcome *out, char *errstr, size_t errlen)
{
	json_t *req = cometd_req_handshake(&c->id_seq);
	struct post_result pr;
	struct cometd_verdict v;
	c->st.handshakes++;
	if (post(c, req, c->cfg.request_timeout_ms, &pr, &v) == COMETD_ACT_OK) {
		json_t *r = meta_reply(pr.msgs, "/meta/handshake");
		if (!r) {
			v.action = COMETD_ACT_RETRY;
			snprintf(v.reason, sizeof v.reason, "no /meta/handshake reply");
		} else {
			cometd_verdict_of(r, &v);
			const char *cid = json_string_value(json_object_get(r, "clientId"));
			if (v.action == COMETD_ACT_OK &&
			    (!cid || !*cid || strlen(cid) >= sizeof c->client_id)) {
				v.action = COMETD_ACT_RETRY;
				snprintf(v.reason, sizeof v.reason,
				         "handshake reply without clientId");
			} else if (v.action == COMETD_ACT_OK) {
				snprintf(c->client_id, sizeof c->client_id, "%s", cid);
				if (!json_is_true(
				            json_object_get(json_object_get(r, "ext"), "replay")))
					log_warn("cometd handshake reply lacks ext.replay=true");
			}
		}
	}
	json_decref(pr.msgs);
	json_decref(req);
	metric_add(c->m_handshakes, 1, v.action == COMETD_ACT_OK ? "ok" : "error");
	if (v.action == COMETD_ACT_OK)
		log_info("cometd handshake ok handshakes=%lu", c->st.handshakes);
	if (pr.stopped)
		return 0;
	return act(c, "handshake", &v, out, errstr, errlen);
}

static int do_subscribe(struct cometd *c, enum cometd_outcome *out, char *errstr, size_t errlen)
{
	const char *names[COMETD_MAX_CHANNELS];
	int64_t replay[COMETD_MAX_CHANNELS];
	for (size_t i = 0; i < c->nchans; i++) {
		struct chan *ch = &c->chans[i];
		int64_t r = c->h.replay_from(c->h.ctx, ch->name);
		if (r >= 0) {
			ch->known = r;
			ch->has_known = 1;
		} else if (ch->has_known) {
			/* Never fall back to -1/-2 once we had a checkpoint: that
			 * would silently skip (or replay 72 h of) events. */
			log_warn("cometd replay_from returned a negative id after a checkpoint; "
			         "using the checkpoint channel=%s replay_id=%lld given=%lld",
			         ch->name, (long long)ch->known, (long long)r);
			r = ch->known;
		}
		names[i] = ch->name;
		replay[i] = r;
		ch->subscribed_from = r;
	}
	json_t *req = cometd_req_subscribe(&c->id_seq, c->client_id, names, replay, c->nchans);
	struct post_result pr;
	struct cometd_verdict v;
	c->st.subscribes++;
	if (post(c, req, c->cfg.request_timeout_ms, &pr, &v) == COMETD_ACT_OK) {
		/* Every subscription must be confirmed; the first failure wins. */
		for (size_t i = 0; i < c->nchans && v.action == COMETD_ACT_OK; i++) {
			json_t *m, *found = NULL;
			size_t k;
			json_array_foreach(pr.msgs, k, m)
			{
				const char *s =
				        json_string_value(json_object_get(m, "subscription"));
				if (s && strcmp(s, names[i]) == 0 &&
				    strcmp(json_string_value(json_object_get(m, "channel")),
				           "/meta/subscribe") == 0)
					found = m;
			}
			if (!found) /* some servers do not echo "subscription" on errors */
				found = meta_reply(pr.msgs, "/meta/subscribe");
			if (!found) {
				v.action = COMETD_ACT_RETRY;
				snprintf(v.reason, sizeof v.reason,
				         "no /meta/subscribe reply for %s", names[i]);
				break;
			}
			cometd_verdict_of(found, &v);
			if (!v.channel[0])
				snprintf(v.channel, sizeof v.channel, "%s", names[i]);
		}
	}
	json_decref(pr.msgs);
	json_decref(req);
	if (v.action == COMETD_ACT_OK) {
		c->subscribed = 1;
		atomic_store(&c->ready, 1);
		for (size_t i = 0; i < c->nchans; i++)
			log_info("cometd subscribed channel=%s replay_id=%lld", names[i],
			         (long long)replay[i]);
	}
	if (pr.stopped)
		return 0;
	return act(c, "subscribe", &v, out, errstr, errlen);
}

static struct chan *find_chan(struct cometd *c, const char *name)
{
	for (size_t i = 0; name && i < c->nchans; i++)
		if (strcmp(c->chans[i].name, name) == 0)
			return &c->chans[i];
	return NULL;
}

static int do_connect(struct cometd *c, enum cometd_outcome *out, char *errstr, size_t errlen)
{
	json_t *req = cometd_req_connect(&c->id_seq, c->client_id);
	struct post_result pr;
	struct cometd_verdict v;
	json_t *batch = NULL;
	long wd = c->adv_timeout_ms + c->cfg.stall_grace_ms;

	c->st.connects++;
	if (post(c, req, wd, &pr, &v) == COMETD_ACT_OK) {
		json_t *reply = NULL, *m;
		size_t i;
		batch = json_array();
		json_array_foreach(pr.msgs, i, m)
		{
			const char *ch = json_string_value(json_object_get(m, "channel"));
			if (strcmp(ch, "/meta/connect") == 0)
				reply = m;
			else if (strcmp(ch, "/meta/disconnect") == 0)
				reply = m; /* server-initiated (Hyperforce scaling) */
			else if (!starts(ch, "/meta/") && json_object_get(m, "data"))
				json_array_append(batch, m);
		}
		/* Events first: they were sent, so hand them over even if the
		 * session ends with this reply (the checkpoint keeps it exact). */
		if (json_array_size(batch) > 0) {
			enum sfk_err rc = c->h.on_batch(c->h.ctx, batch);
			c->st.batches++;
			if (rc == SFK_OK) {
				c->st.events += json_array_size(batch);
				json_array_foreach(batch, i, m)
				{
					const char *chn =
					        json_string_value(json_object_get(m, "channel"));
					struct chan *ch = find_chan(c, chn);
					json_t *rid = json_object_get(
					        json_object_get(json_object_get(m, "data"),
					                        "event"),
					        "replayId");
					metric_add(c->m_events, 1, chn);
					if (ch && json_is_integer(rid)) {
						ch->known = json_integer_value(rid);
						ch->has_known = 1;
					}
				}
			} else {
				v.action = sfk_err_class(rc) == SFK_CLASS_FATAL
				                   ? COMETD_ACT_FATAL
				                   : COMETD_ACT_HANDSHAKE;
				snprintf(v.reason, sizeof v.reason, "batch handler: %s",
				         sfk_err_str(rc));
				reply = NULL;
				goto done;
			}
		}
		if (!reply) {
			v.action = COMETD_ACT_RETRY;
			snprintf(v.reason, sizeof v.reason, "no /meta/connect reply");
		} else if (strcmp(json_string_value(json_object_get(reply, "channel")),
		                  "/meta/disconnect") == 0) {
			v.action = COMETD_ACT_HANDSHAKE;
			snprintf(v.reason, sizeof v.reason, "server sent /meta/disconnect");
		} else {
			cometd_verdict_of(reply, &v);
		}
		if (v.timeout_ms >= 0)
			c->adv_timeout_ms = v.timeout_ms > COMETD_MAX_TIMEOUT_MS
			                            ? COMETD_MAX_TIMEOUT_MS
			                            : v.timeout_ms;
		if (v.interval_ms >= 0)
			c->adv_interval_ms = v.interval_ms > COMETD_MAX_TIMEOUT_MS
			                             ? COMETD_MAX_TIMEOUT_MS
			                             : v.interval_ms;
	} else if (pr.stalled) {
		c->st.stalls++;
		metric_add(c->m_stalls, 1);
		log_warn("cometd connect stalled watchdog_ms=%ld stalls=%lu", wd, c->st.stalls);
	}
done:
	json_decref(batch);
	json_decref(pr.msgs);
	json_decref(req);
	if (pr.stopped)
		return 0;
	if (v.action == COMETD_ACT_OK) {
		c->attempt = 0;
		if (c->adv_interval_ms > 0)
			sleep_ms(c, c->adv_interval_ms);
	}
	return act(c, "connect", &v, out, errstr, errlen);
}

enum cometd_outcome cometd_run(struct cometd *c, char *errstr, size_t errlen)
{
	enum cometd_outcome out = COMETD_STOPPED;
	errstr[0] = '\0';
	drop_session(c); /* a new run always starts with a handshake */
	c->attempt = 0;
	while (!stopping(c)) {
		int done;
		if (!c->have_token)
			done = do_token(c, &out, errstr, errlen);
		else if (!c->client_id[0])
			done = do_handshake(c, &out, errstr, errlen);
		else if (!c->subscribed)
			done = do_subscribe(c, &out, errstr, errlen);
		else
			done = do_connect(c, &out, errstr, errlen);
		if (done)
			return out;
	}
	send_disconnect(c);
	return COMETD_STOPPED;
}

int cometd_ready(struct cometd *c)
{
	return atomic_load(&c->ready);
}

const char *cometd_replay_error(const struct cometd *c, int64_t *replay_id)
{
	if (replay_id)
		*replay_id = c->replay_err_id;
	return c->replay_err_chan;
}

int cometd_forget_checkpoint(struct cometd *c, const char *channel)
{
	struct chan *ch = find_chan(c, channel);
	if (!ch)
		return -1;
	ch->known = -1;
	ch->has_known = 0;
	return 0;
}

void cometd_get_stats(const struct cometd *c, struct cometd_stats *out)
{
	*out = c->st;
}

void cometd_free(struct cometd **cp)
{
	if (!cp || !*cp)
		return;
	struct cometd *c = *cp;
	send_disconnect(c);
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->hdrs);
	memset(c->token, 0, sizeof c->token);
	free(c->buf);
	free(c->url);
	free(c->ca_file);
	free(c);
	*cp = NULL;
}
