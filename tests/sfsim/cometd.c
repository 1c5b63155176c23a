/*
 * cometd.c - Bayeux long-polling server for sfk-sim (see cometd.h).
 *
 * One mutex (mu) guards the client table; a waiting /meta/connect sleeps on
 * cond, which the CDC bus listener broadcasts after every publish. Lock
 * order: mu, then the bus's own lock (inside cdc_collect). Connect responses
 * are assembled as text: the events are copied from the bus's serialized
 * form, only the small meta replies go through jansson.
 */
#include "cometd.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "log.h"
#include "xmem.h"

#define CLIENT_ID_LEN 27

struct sub {
	char channel[CDC_CHANNEL_MAX];
	int64_t after; /* replay cursor: deliver ids > after */
};

struct client {
	char id[CLIENT_ID_LEN + 1];
	char cookie[CLIENT_ID_LEN + 1];
	char user_id[SIM_ID_BUF];
	struct sub subs[COMETD_MAX_SUBS];
	size_t nsubs;
	int connected;        /* a connect was answered since handshake */
	int gone;             /* forgotten or disconnected */
	int waiting;          /* connects in progress */
	unsigned connect_gen; /* a newer connect supersedes a waiting one */
	int64_t last_seen_ms; /* monotonic: end of its last request */
	int refs;
	struct client *next;
};

struct cometd {
	struct cometd_config cfg;
	struct cdc *bus;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct client *clients;
	size_t nclients;
	uint64_t rng;
	int64_t delivered;
	int waiting;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* Salesforce-looking ids: 27 chars of [0-9a-z] ("1cyu4thyxh3fgv1nqwcvebt3o9x"). */
static void random_id(struct cometd *s, char out[CLIENT_ID_LEN + 1])
{
	static const char al[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	for (int i = 0; i < CLIENT_ID_LEN; i++)
		out[i] = al[splitmix(&s->rng) % 36];
	out[CLIENT_ID_LEN] = '\0';
}

void cometd_config_default(struct cometd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->connect_timeout_ms = 110000;
	cfg->client_timeout_ms = 40000;
	cfg->max_batch_events = 1000;
	cfg->max_batch_bytes = 4u * 1024 * 1024;
	cfg->max_clients = 2000;
	cfg->linger_ms = 5;
	cfg->seed = 1;
}

static void wake(void *ctx)
{
	struct cometd *s = ctx;
	pthread_mutex_lock(&s->mu);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

struct cometd *cometd_new(const struct cometd_config *cfg, struct cdc *bus)
{
	struct cometd *s = xcalloc(1, sizeof(*s));
	pthread_condattr_t ca;
	struct timespec ts;
	s->cfg = *cfg;
	s->bus = bus;
	clock_gettime(CLOCK_REALTIME, &ts);
	/* Mixed with the time: a restarted sim must not re-issue client ids a
	 * client of the previous run still holds. */
	s->rng = cfg->seed ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	cdc_set_listener(bus, wake, s);
	return s;
}

static void client_unref(struct client *cl)
{
	if (cl && --cl->refs == 0)
		free(cl);
}

/* Caller holds mu. Unlink a client; it stays alive while a request uses it. */
static void client_remove(struct cometd *s, struct client *cl)
{
	for (struct client **pp = &s->clients; *pp; pp = &(*pp)->next) {
		if (*pp == cl) {
			*pp = cl->next;
			cl->gone = 1;
			s->nclients--;
			client_unref(cl);
			break;
		}
	}
}

void cometd_free(struct cometd **cp)
{
	struct cometd *s = cp ? *cp : NULL;
	if (!s)
		return;
	cdc_set_listener(s->bus, NULL, NULL);
	while (s->clients)
		client_remove(s, s->clients);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cond);
	free(s);
	*cp = NULL;
}

/* Caller holds mu. Forget clients that did not come back in time. */
static void sweep(struct cometd *s, int64_t now)
{
	struct client *cl = s->clients, *next;
	for (; cl; cl = next) {
		next = cl->next;
		if (cl->waiting == 0 && now - cl->last_seen_ms > s->cfg.client_timeout_ms)
			client_remove(s, cl);
	}
}

static struct client *client_find(struct cometd *s, const char *id)
{
	for (struct client *cl = s->clients; cl && id; cl = cl->next)
		if (strcmp(cl->id, id) == 0)
			return cl;
	return NULL;
}

void cometd_forget_all(struct cometd *s)
{
	pthread_mutex_lock(&s->mu);
	while (s->clients)
		client_remove(s, s->clients);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	log_info("cometd: forgot every client");
}

json_t *cometd_stats(struct cometd *s)
{
	pthread_mutex_lock(&s->mu);
	json_t *o =
	        json_pack("{s:I,s:i,s:I}", "clients", (json_int_t)s->nclients, "connects_waiting",
	                  s->waiting, "messages_delivered", (json_int_t)s->delivered);
	pthread_mutex_unlock(&s->mu);
	return o;
}

/* ---- replies --------------------------------------------------------------- */

/* A reply skeleton echoing channel and id (when the request had one). */
static json_t *reply_new(json_t *msg, const char *channel)
{
	json_t *r = json_object();
	json_t *id = json_object_get(msg, "id");
	json_object_set_new(r, "channel", json_string(channel));
	if (id)
		json_object_set(r, "id", id);
	return r;
}

static json_t *reply_error(json_t *msg, const char *channel, const char *client_id,
                           const char *error)
{
	json_t *r = reply_new(msg, channel);
	if (client_id)
		json_object_set_new(r, "clientId", json_string(client_id));
	json_object_set_new(r, "error", json_string(error));
	json_object_set_new(r, "successful", json_false());
	return r;
}

static void set_advice(json_t *r, const char *reconnect, int with_interval)
{
	json_t *a = json_object();
	if (with_interval)
		json_object_set_new(a, "interval", json_integer(0));
	json_object_set_new(a, "reconnect", json_string(reconnect));
	json_object_set_new(r, "advice", a);
}

static void append_json(struct cdc_buf *b, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	if (!s)
		return;
	if (b->len > 0 && b->p[b->len - 1] != '[')
		cdc_buf_append(b, ",", 1);
	cdc_buf_append(b, s, strlen(s));
	free(s);
}

/* ---- meta channels ------------------------------------------------------------ */

static json_t *handshake(struct cometd *s, const struct cometd_request *req, json_t *msg,
                         struct cometd_reply *out)
{
	const char *fail = NULL;
	json_t *types = json_object_get(msg, "supportedConnectionTypes");
	size_t i;
	json_t *t;
	int lp = 0;

	if (req->auth == COMETD_AUTH_MISSING)
		fail = "401::Request requires authentication";
	else if (req->auth != COMETD_AUTH_OK)
		fail = "401::Authentication invalid";
	if (fail) {
		/* Streaming API guide, "Handling Errors": the cause is nested
		 * in ext.sfdc.failureReason. */
		json_t *r = reply_error(msg, "/meta/handshake", NULL, "403::Handshake denied");
		json_object_set_new(r, "ext",
		                    json_pack("{s:{s:s}}", "sfdc", "failureReason", fail));
		set_advice(r, "none", 0);
		return r;
	}
	json_array_foreach(types, i, t)
	{
		if (json_is_string(t) && strcmp(json_string_value(t), "long-polling") == 0)
			lp = 1;
	}
	if (!lp) {
		char err[160];
		json_t *first = json_array_get(types, 0);
		snprintf(err, sizeof(err), "400::Invalid connection type {%s}",
		         json_is_string(first) ? json_string_value(first) : "");
		json_t *r = reply_error(msg, "/meta/handshake", NULL, err);
		set_advice(r, "none", 0);
		return r;
	}

	pthread_mutex_lock(&s->mu);
	sweep(s, mono_ms());
	if (s->nclients >= s->cfg.max_clients) {
		pthread_mutex_unlock(&s->mu);
		json_t *r = reply_error(msg, "/meta/handshake", NULL, "403::Handshake denied");
		json_object_set_new(r, "ext",
		                    json_pack("{s:{s:s}}", "sfdc", "failureReason",
		                              "403::Organization concurrent user limit exceeded"));
		set_advice(r, "none", 0);
		return r;
	}
	struct client *cl = xcalloc(1, sizeof(*cl));
	cl->refs = 1;
	random_id(s, cl->id);
	if (req->cookie && *req->cookie && strlen(req->cookie) <= CLIENT_ID_LEN) {
		/* The browser already has its cookie: keep it. */
		snprintf(cl->cookie, sizeof(cl->cookie), "%s", req->cookie);
	} else {
		random_id(s, cl->cookie);
		snprintf(out->set_cookie, sizeof(out->set_cookie), "%s=%s; Path=/; HttpOnly",
		         COMETD_COOKIE, cl->cookie);
	}
	snprintf(cl->user_id, sizeof(cl->user_id), "%s", req->user_id ? req->user_id : "");
	cl->last_seen_ms = mono_ms();
	cl->next = s->clients;
	s->clients = cl;
	s->nclients++;
	json_t *r = reply_new(msg, "/meta/handshake");
	json_object_set_new(r, "clientId", json_string(cl->id));
	pthread_mutex_unlock(&s->mu);

	json_object_set_new(r, "ext", json_pack("{s:b,s:b}", "replay", 1, "payload.format", 1));
	json_object_set_new(r, "minimumVersion", json_string("1.0"));
	json_object_set_new(r, "supportedConnectionTypes", json_pack("[s]", "long-polling"));
	json_object_set_new(r, "version", json_string("1.0"));
	json_object_set_new(r, "successful", json_true());
	return r;
}

/*
 * Common checks for non-handshake messages. Returns the client (a reference
 * the caller drops with client_release) or NULL with *err set to the reply.
 */
static struct client *client_check(struct cometd *s, const struct cometd_request *req, json_t *msg,
                                   const char *channel, json_t **err)
{
	const char *cid = json_string_value(json_object_get(msg, "clientId"));
	char text[200];

	if (req->auth != COMETD_AUTH_OK) {
		*err = reply_error(msg, channel, cid,
		                   req->auth == COMETD_AUTH_MISSING
		                           ? "401::Request requires authentication"
		                           : "401::Authentication invalid");
		set_advice(*err, "none", 1);
		return NULL;
	}
	pthread_mutex_lock(&s->mu);
	sweep(s, mono_ms());
	struct client *cl = client_find(s, cid);
	if (!cl) {
		pthread_mutex_unlock(&s->mu);
		/* Sample connect-403-unknown-client: no clientId in the reply. */
		*err = reply_error(msg, channel, NULL, "403::Unknown client");
		set_advice(*err, "handshake", 1);
		return NULL;
	}
	if (!req->cookie || strcmp(req->cookie, cl->cookie) != 0) {
		pthread_mutex_unlock(&s->mu);
		snprintf(text, sizeof(text),
		         "400::Client %s has established a session, but no %s cookie present",
		         cl->id, COMETD_COOKIE);
		*err = reply_error(msg, channel, cid, text);
		return NULL;
	}
	if (cl->user_id[0] && req->user_id && strcmp(cl->user_id, req->user_id) != 0) {
		pthread_mutex_unlock(&s->mu);
		*err = reply_error(
		        msg, channel, cid,
		        "400::Authenticated user id does not match the session's user id");
		set_advice(*err, "none", 1);
		return NULL;
	}
	cl->refs++;
	pthread_mutex_unlock(&s->mu);
	return cl;
}

static void client_release(struct cometd *s, struct client *cl)
{
	pthread_mutex_lock(&s->mu);
	cl->last_seen_ms = mono_ms();
	client_unref(cl);
	pthread_mutex_unlock(&s->mu);
}

/* Java's Map.toString() of the replay map, as Salesforce echoes it. */
static void map_text(json_t *map, char *out, size_t size)
{
	const char *k;
	json_t *v;
	size_t len = 0;
	int n = snprintf(out, size, "{");
	len = n > 0 ? (size_t)n : 0;
	json_object_foreach(map, k, v)
	{
		char val[32];
		if (json_is_integer(v))
			snprintf(val, sizeof(val), "%lld", (long long)json_integer_value(v));
		else if (json_is_string(v))
			snprintf(val, sizeof(val), "%s", json_string_value(v));
		else
			snprintf(val, sizeof(val), "null");
		if (len < size)
			n = snprintf(out + len, size - len, "%s%s=%s", len > 1 ? ", " : "", k, val);
		if (n > 0)
			len += (size_t)n;
	}
	if (len < size)
		snprintf(out + len, size - len, "}");
}

static json_t *subscribe(struct cometd *s, const struct cometd_request *req, json_t *msg)
{
	json_t *err = NULL;
	struct client *cl = client_check(s, req, msg, "/meta/subscribe", &err);
	const char *ch = json_string_value(json_object_get(msg, "subscription"));
	json_t *map = json_object_get(json_object_get(msg, "ext"), "replay");
	int64_t replay = -1;
	char text[1024];
	json_t *r = NULL;

	if (!cl)
		return err;
	if (!ch || !*ch) {
		r = reply_error(msg, "/meta/subscribe", cl->id, "400::Channel name not specified");
		goto out;
	}
	if (ch[0] != '/') {
		r = reply_error(msg, "/meta/subscribe", cl->id,
		                "400::Channel subscriptions must start with a leading '/'");
		goto out;
	}
	if (!cdc_channel_exists(s->bus, ch)) {
		snprintf(text, sizeof(text),
		         "400::The channel you requested to subscribe to doesn't exist {%s}", ch);
		r = reply_error(msg, "/meta/subscribe", cl->id, text);
		goto out;
	}
	if (json_is_object(map)) {
		json_t *v = json_object_get(map, ch);
		if (!v) {
			char m[600];
			map_text(map, m, sizeof(m));
			snprintf(text, sizeof(text),
			         "400::The replayId for channel {%s} wasn't found using the "
			         "provided "
			         "replay ID map {%s}. Ensure that the channel name you provided in "
			         "the "
			         "replay map is valid and matches the channel name used for "
			         "subscribing.",
			         ch, m);
			r = reply_error(msg, "/meta/subscribe", cl->id, text);
			goto out;
		}
		if (json_is_integer(v)) {
			replay = json_integer_value(v);
		} else {
			char *end = NULL;
			const char *sv = json_string_value(v);
			errno = 0;
			replay = sv ? strtoll(sv, &end, 10) : 0;
			if (!sv || errno || end == sv || *end)
				replay = -3; /* invalid below */
		}
	}
	if ((replay < 0 && replay != -1 && replay != -2) || !cdc_replay_valid(s->bus, replay)) {
		/* Streaming API error codes; braces are part of the text. */
		snprintf(
		        text, sizeof(text),
		        "400::The replayId {%lld} you provided was invalid. Please provide a valid "
		        "ID, -2 to replay all events, or -1 to replay only new events.",
		        (long long)replay);
		r = reply_error(msg, "/meta/subscribe", cl->id, text);
		goto out;
	}
	pthread_mutex_lock(&s->mu);
	struct sub *sb = NULL;
	for (size_t i = 0; i < cl->nsubs; i++)
		if (strcmp(cl->subs[i].channel, ch) == 0)
			sb = &cl->subs[i];
	if (!sb && cl->nsubs < COMETD_MAX_SUBS) {
		sb = &cl->subs[cl->nsubs++];
		snprintf(sb->channel, sizeof(sb->channel), "%s", ch);
	}
	if (sb)
		sb->after = cdc_replay_cursor(s->bus, replay);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	if (!sb) {
		r = reply_error(msg, "/meta/subscribe", cl->id, "403::Subscription limit exceeded");
		goto out;
	}
	r = reply_new(msg, "/meta/subscribe");
	json_object_set_new(r, "clientId", json_string(cl->id));
	json_object_set_new(r, "subscription", json_string(ch));
	json_object_set_new(r, "successful", json_true());
out:
	/* Failed subscribes echo the subscription too (sample
	 * subscribe-400-invalid-replayid-full). */
	if (ch && !json_object_get(r, "subscription"))
		json_object_set_new(r, "subscription", json_string(ch));
	client_release(s, cl);
	return r;
}

static json_t *unsubscribe(struct cometd *s, const struct cometd_request *req, json_t *msg)
{
	json_t *err = NULL;
	struct client *cl = client_check(s, req, msg, "/meta/unsubscribe", &err);
	const char *ch = json_string_value(json_object_get(msg, "subscription"));
	if (!cl)
		return err;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; ch && i < cl->nsubs; i++) {
		if (strcmp(cl->subs[i].channel, ch) == 0) {
			cl->subs[i] = cl->subs[--cl->nsubs];
			break;
		}
	}
	pthread_mutex_unlock(&s->mu);
	json_t *r = reply_new(msg, "/meta/unsubscribe");
	json_object_set_new(r, "clientId", json_string(cl->id));
	if (ch)
		json_object_set_new(r, "subscription", json_string(ch));
	json_object_set_new(r, "successful", json_true());
	client_release(s, cl);
	return r;
}

static json_t *disconnect(struct cometd *s, const struct cometd_request *req, json_t *msg)
{
	json_t *err = NULL;
	struct client *cl = client_check(s, req, msg, "/meta/disconnect", &err);
	if (!cl)
		return err;
	json_t *r = reply_new(msg, "/meta/disconnect");
	json_object_set_new(r, "clientId", json_string(cl->id));
	json_object_set_new(r, "successful", json_true());
	pthread_mutex_lock(&s->mu);
	client_remove(s, cl);
	pthread_cond_broadcast(&s->cond);
	client_unref(cl);
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* Events go into out before the connect reply (returned). May block. */
static json_t *do_connect(struct cometd *s, const struct cometd_request *req, json_t *msg,
                          struct cdc_buf *out)
{
	json_t *err = NULL;
	struct client *cl = client_check(s, req, msg, "/meta/connect", &err);
	const char *type = json_string_value(json_object_get(msg, "connectionType"));
	json_t *adv = json_object_get(msg, "advice");
	struct cdc_cursor cur[COMETD_MAX_SUBS];
	long timeout = s->cfg.connect_timeout_ms;
	json_t *r;
	int first, gone = 0;

	if (!cl)
		return err;
	if (type && strcmp(type, "long-polling") != 0) {
		char text[160];
		snprintf(text, sizeof(text), "400::Invalid connection type {%s}", type);
		r = reply_error(msg, "/meta/connect", cl->id, text);
		client_release(s, cl);
		return r;
	}
	/* A client may ask for a shorter hold (CometD clients send timeout 0
	 * on their first connect). */
	if (json_is_integer(json_object_get(adv, "timeout")) &&
	    json_integer_value(json_object_get(adv, "timeout")) < timeout)
		timeout = (long)json_integer_value(json_object_get(adv, "timeout"));
	if (timeout < 0)
		timeout = 0;

	pthread_mutex_lock(&s->mu);
	first = !cl->connected;
	cl->connected = 1;
	cl->waiting++;
	s->waiting++;
	unsigned gen = ++cl->connect_gen;
	pthread_cond_broadcast(&s->cond); /* an older connect of this client returns */
	int64_t deadline = mono_ms() + timeout;
	int64_t linger_until = 0;
	size_t total = 0, out0 = out->len;
	int waited = 0;
	for (;;) {
		if (cl->gone) {
			gone = 1;
			break;
		}
		size_t n = cl->nsubs, used = out->len - out0;
		if (total >= s->cfg.max_batch_events || used >= s->cfg.max_batch_bytes)
			break;
		for (size_t i = 0; i < n; i++) {
			cur[i].channel = cl->subs[i].channel;
			cur[i].after = cl->subs[i].after;
		}
		size_t got = cdc_collect(s->bus, cur, n, s->cfg.max_batch_events - total,
		                         s->cfg.max_batch_bytes - used, out);
		for (size_t i = 0; i < n; i++)
			cl->subs[i].after = cur[i].after;
		s->delivered += (int64_t)got;
		total += got;
		if (first || gen != cl->connect_gen)
			break;
		int64_t now = mono_ms();
		int64_t until;
		if (total > 0) {
			/* A backlog goes out at once. A client that had to wait
			 * gets a short linger so that a burst travels as one
			 * batch instead of one round trip per transaction. */
			if (!waited || s->cfg.linger_ms <= 0)
				break;
			if (!linger_until)
				linger_until = now + s->cfg.linger_ms;
			if (now >= linger_until)
				break;
			until = linger_until;
		} else {
			if (now >= deadline ||
			    (s->cfg.stopping && s->cfg.stopping(s->cfg.stopping_ctx)))
				break;
			until = deadline < now + 1000 ? deadline : now + 1000;
			waited = 1;
		}
		struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (until % 1000) * 1000000};
		pthread_cond_timedwait(&s->cond, &s->mu, &ts);
	}
	cl->waiting--;
	s->waiting--;
	pthread_mutex_unlock(&s->mu);

	if (gone) {
		r = reply_error(msg, "/meta/connect", NULL, "403::Unknown client");
		set_advice(r, "handshake", 1);
	} else {
		r = reply_new(msg, "/meta/connect");
		json_object_set_new(r, "clientId", json_string(cl->id));
		json_object_set_new(r, "successful", json_true());
		if (first)
			json_object_set_new(r, "advice",
			                    json_pack("{s:i,s:I,s:s}", "interval", 0, "timeout",
			                              (json_int_t)s->cfg.connect_timeout_ms,
			                              "reconnect", "retry"));
	}
	client_release(s, cl);
	return r;
}

/* ---- request ----------------------------------------------------------------- */

static void http_error(struct cometd_reply *out, int status, const char *error)
{
	json_t *a = json_pack("[{s:s,s:b}]", "error", error, "successful", 0);
	out->status = status;
	out->body = json_dumps(a, JSON_COMPACT);
	out->body_len = out->body ? strlen(out->body) : 0;
	json_decref(a);
}

void cometd_handle(struct cometd *s, const struct cometd_request *req, struct cometd_reply *out)
{
	json_error_t jerr;
	json_t *in = NULL;
	struct cdc_buf buf = {0};
	char *end = NULL;
	size_t i;
	json_t *msg;

	memset(out, 0, sizeof(*out));
	out->status = 200;
	if (!req->version || !*req->version) {
		http_error(out, 400,
		           "400::API version in the URI is mandatory. URI format: '/cometd/66.0'");
		return;
	}
	double ver = strtod(req->version, &end);
	if (end == req->version || (*end && *end != '/') || ver < 37.0) {
		http_error(out, 400,
		           "400::Unsupported API version. Only API versions '37.0' and later are "
		           "supported. URI format: '/cometd/66.0'");
		return;
	}
	if (req->body_len > COMETD_BODY_MAX) {
		http_error(out, 413, "413::Maximum Request Size Exceeded");
		return;
	}
	in = json_loadb(req->body, req->body_len, 0, &jerr);
	if (json_is_object(in)) {
		json_t *a = json_array();
		json_array_append_new(a, in);
		in = a;
	}
	if (!json_is_array(in) || json_array_size(in) == 0) {
		json_decref(in);
		http_error(out, 400,
		           "400::Invalid message: expected a JSON array of Bayeux messages");
		return;
	}
	cdc_buf_append(&buf, "[", 1);
	/* Non-connect messages first, then at most one connect: a connect
	 * batched with a subscribe must see the new subscription. */
	json_array_foreach(in, i, msg)
	{
		const char *ch = json_string_value(json_object_get(msg, "channel"));
		json_t *r;
		if (ch && strcmp(ch, "/meta/connect") == 0)
			continue;
		if (!ch)
			r = reply_error(msg, "", NULL, "400::Channel name not specified");
		else if (strcmp(ch, "/meta/handshake") == 0)
			r = handshake(s, req, msg, out);
		else if (strcmp(ch, "/meta/subscribe") == 0)
			r = subscribe(s, req, msg);
		else if (strcmp(ch, "/meta/unsubscribe") == 0)
			r = unsubscribe(s, req, msg);
		else if (strcmp(ch, "/meta/disconnect") == 0)
			r = disconnect(s, req, msg);
		else
			r = reply_error(msg, ch,
			                json_string_value(json_object_get(msg, "clientId")),
			                "403::Publish not allowed");
		append_json(&buf, r);
		json_decref(r);
	}
	json_array_foreach(in, i, msg)
	{
		const char *ch = json_string_value(json_object_get(msg, "channel"));
		if (ch && strcmp(ch, "/meta/connect") == 0) {
			json_t *r = do_connect(s, req, msg, &buf);
			append_json(&buf, r);
			json_decref(r);
			break;
		}
	}
	cdc_buf_append(&buf, "]", 1);
	json_decref(in);
	out->body = buf.p;
	out->body_len = buf.len;
}

/* ---- sim module ------------------------------------------------------------------- */

static int sim_stopping_cb(void *ctx)
{
	return sim_stopping(ctx);
}

static long opt_long(struct sim *sim, const char *key, long def)
{
	const char *v = json_string_value(json_object_get(sim->cfg.opts, key));
	char *end;
	long n;
	if (!v)
		return def;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < 0) {
		log_warn("sim option ignored (not a non-negative integer) key=%s", key);
		return def;
	}
	return n;
}

static void handler(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	struct cometd_request r = {0};
	struct cometd_reply out;
	char uid[SIM_ID_BUF] = "";
	const char *p = req->path + strlen("/cometd");

	if (*p == '/')
		p++;
	r.version = p;
	r.body = req->body;
	r.body_len = req->body_len;
	r.cookie = sim_req_cookie(req, COMETD_COOKIE);
	if (!sim_req_header(req, "Authorization"))
		r.auth = COMETD_AUTH_MISSING;
	else if (sim_req_session(sim, req, uid) != 0)
		r.auth = COMETD_AUTH_INVALID;
	else
		r.auth = COMETD_AUTH_OK;
	r.user_id = uid;
	cometd_handle(sim->cometd, &r, &out);
	resp->status = out.status;
	resp->content_type = "application/json;charset=UTF-8";
	free(resp->body);
	resp->body = out.body;
	resp->body_len = out.body_len;
	if (out.set_cookie[0])
		sim_resp_header(resp, "Set-Cookie", out.set_cookie);
}

/* GET /sim/stats "events": the bus's counters plus the CometD server's. */
static json_t *stream_stats(struct sim *sim, void *ctx)
{
	json_t *o = cdc_stats(sim->cdc);
	json_object_set_new(o, "cometd", cometd_stats(ctx));
	return o;
}

static void forget_clients(struct sim *sim, void *ctx)
{
	(void)sim;
	cometd_forget_all(ctx);
}

int cometd_module_init(struct sim *sim)
{
	struct cometd_config cfg;
	if (!sim->cdc) {
		log_error("cometd: cdc_module_init must run first");
		return -1;
	}
	cometd_config_default(&cfg);
	cfg.connect_timeout_ms = opt_long(sim, "cometd.timeout_ms", cfg.connect_timeout_ms);
	cfg.client_timeout_ms = opt_long(sim, "cometd.client_timeout_ms", cfg.client_timeout_ms);
	cfg.max_batch_events =
	        (size_t)opt_long(sim, "cometd.max_batch_events", (long)cfg.max_batch_events);
	cfg.max_batch_bytes =
	        (size_t)opt_long(sim, "cometd.max_batch_bytes", (long)cfg.max_batch_bytes);
	cfg.max_clients = (size_t)opt_long(sim, "cometd.max_clients", (long)cfg.max_clients);
	cfg.linger_ms = opt_long(sim, "cometd.linger_ms", cfg.linger_ms);
	if (cfg.max_batch_events == 0)
		cfg.max_batch_events = 1;
	cfg.seed = sim->cfg.seed;
	cfg.stopping = sim_stopping_cb;
	cfg.stopping_ctx = sim;
	sim->cometd = cometd_new(&cfg, sim->cdc);
	sim->forget_clients = forget_clients;
	sim->forget_clients_ctx = sim->cometd;
	sim->stream_stats = stream_stats;
	sim->stream_stats_ctx = sim->cometd;
	if (sim_route(sim, "POST", "/cometd/*", 0, COMETD_BODY_MAX, handler, sim->cometd) != 0)
		return -1;
	log_info("cometd ready timeout_ms=%ld client_timeout_ms=%ld", cfg.connect_timeout_ms,
	         cfg.client_timeout_ms);
	return 0;
}

void cometd_module_fini(struct sim *sim)
{
	if (sim->forget_clients == forget_clients)
		sim->forget_clients = NULL;
	if (sim->stream_stats == stream_stats)
		sim->stream_stats = NULL;
	cometd_free(&sim->cometd);
}
