/*
 * publish.c - one CometD batch -> one Kafka transaction (see publish.h).
 *
 * Order inside the transaction: per event its cdc record(s), then their
 * fan-out records; dead letters where the bad event stood; the checkpoints
 * last. Consumers read with read_committed, so the order is only cosmetic
 * for them, but it keeps a test's expected list readable.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "normalize.h"
#include "publish.h"
#include "xmem.h"

/* Most fan-out targets of one record (one per workload). */
#define PUBLISH_MAX_TARGETS 32

struct ckpt {
	char channel[PUBLISH_CHANNEL_MAX];
	int64_t replay_id;
};

struct publisher {
	struct publish_conf conf;
	char *prefix, *client_id, *checkpoint_topic, *dlq_topic;
	struct ckpt ckpts[PUBLISH_MAX_CHANNELS];
	size_t nckpts;
	struct metric *m_events, *m_errors, *m_lag, *m_fanout, *m_ckpt;
};

static int64_t now_ms(const struct publisher *p)
{
	if (p->conf.clock_ms)
		return p->conf.clock_ms(p->conf.clock_ctx);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct publisher *publish_new(const struct publish_conf *conf)
{
	struct publisher *p = xcalloc(1, sizeof *p);
	p->conf = *conf;
	p->prefix = xstrdup(conf->topic_prefix ? conf->topic_prefix : "sfk.");
	p->client_id = conf->client_id ? xstrdup(conf->client_id) : NULL;
	p->conf.topic_prefix = p->prefix;
	p->conf.client_id = p->client_id;
	p->checkpoint_topic = xasprintf("%sbridge.checkpoints", p->prefix);
	p->dlq_topic = xasprintf("%sdlq.bridge", p->prefix);
	p->m_events = metrics_counter("sfk_cdc_events_total",
	                              "Change events committed to Kafka by the bridge",
	                              "object,change_type");
	p->m_errors =
	        metrics_counter("sfk_cdc_errors_total", "Change events the bridge could not use",
	                        "object,error_type");
	p->m_lag = metrics_gauge("sfk_cdc_lag_seconds",
	                         "Commit timestamp to Kafka commit of the newest event", "object");
	p->m_ckpt = metrics_gauge(
	        "sfk_bridge_checkpoint_timestamp_seconds",
	        "Unix time of the last committed checkpoint (age = time() - this)", "channel");
	p->m_fanout = metrics_counter("sfk_bridge_fanout_records_total",
	                              "Workload records produced by the fan-out", "workload");
	return p;
}

void publish_free(struct publisher **pp)
{
	if (!pp || !*pp)
		return;
	free((*pp)->prefix);
	free((*pp)->client_id);
	free((*pp)->checkpoint_topic);
	free((*pp)->dlq_topic);
	free(*pp);
	*pp = NULL;
}

static struct ckpt *find_ckpt(const struct publisher *p, const char *channel)
{
	for (size_t i = 0; i < p->nckpts; i++)
		if (strcmp(p->ckpts[i].channel, channel) == 0)
			return (struct ckpt *)&p->ckpts[i];
	return NULL;
}

int64_t publish_checkpoint(const struct publisher *p, const char *channel)
{
	struct ckpt *c = find_ckpt(p, channel);
	return c ? c->replay_id : -1;
}

int publish_set_checkpoint(struct publisher *p, const char *channel, int64_t replay_id)
{
	struct ckpt *c = find_ckpt(p, channel);
	if (!c) {
		if (p->nckpts == PUBLISH_MAX_CHANNELS || strlen(channel) >= PUBLISH_CHANNEL_MAX)
			return -1;
		c = &p->ckpts[p->nckpts++];
		snprintf(c->channel, sizeof c->channel, "%s", channel);
	}
	c->replay_id = replay_id;
	return 0;
}

char *publish_checkpoint_value(const char *channel, int64_t replay_id, int64_t now)
{
	json_t *v = json_pack("{s:s, s:I, s:I}", "channel", channel, "replay_id",
	                      (json_int_t)replay_id, "committed_at", (json_int_t)now);
	char *s = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	return s;
}

int publish_checkpoint_parse(const char *value, size_t len, char *channel, size_t chlen,
                             int64_t *replay_id)
{
	json_t *v = json_loadb(value, len, 0, NULL);
	json_t *ch = json_object_get(v, "channel"), *r = json_object_get(v, "replay_id");
	int rc = -1;
	if (json_is_string(ch) && json_is_integer(r) && strlen(json_string_value(ch)) < chlen) {
		snprintf(channel, chlen, "%s", json_string_value(ch));
		*replay_id = json_integer_value(r);
		rc = 0;
	}
	json_decref(v);
	return rc;
}

/* A batch's pending checkpoints: applied only after the commit. */
struct pending {
	struct ckpt c[PUBLISH_MAX_CHANNELS];
	size_t n;
};

static void pending_note(struct pending *pd, const char *channel, int64_t replay_id)
{
	if (!channel || strlen(channel) >= PUBLISH_CHANNEL_MAX)
		return;
	for (size_t i = 0; i < pd->n; i++)
		if (strcmp(pd->c[i].channel, channel) == 0) {
			/* replay ids increase within a channel; a batch never goes back */
			if (replay_id > pd->c[i].replay_id)
				pd->c[i].replay_id = replay_id;
			return;
		}
	if (pd->n == PUBLISH_MAX_CHANNELS)
		return;
	snprintf(pd->c[pd->n].channel, PUBLISH_CHANNEL_MAX, "%s", channel);
	pd->c[pd->n++].replay_id = replay_id;
}

static enum sfk_err produce_json(struct publisher *p, const char *topic, const char *key,
                                 json_t *value, const struct kafka_header *h, size_t nh,
                                 char *errstr, size_t errlen)
{
	char *text = json_dumps(value, JSON_COMPACT);
	if (!text) {
		snprintf(errstr, errlen, "cannot serialize a record for %s", topic);
		return SFK_ERR_INTERNAL;
	}
	enum sfk_err rc = p->conf.sink.produce(p->conf.sink.ctx, topic, key, text, strlen(text), h,
	                                       nh, errstr, errlen);
	free(text);
	return rc;
}

static enum sfk_err dead_letter(struct publisher *p, json_t *msg, enum sfk_err why,
                                const char *reason, const char *entity, char *errstr, size_t errlen)
{
	const char *channel = json_string_value(json_object_get(msg, "channel"));
	const char *code = sfk_err_str(why), *cls = sfk_err_class_str(sfk_err_class(why));
	struct kafka_header h[] = {
	        {PUBLISH_HDR_ERROR_CODE, code, strlen(code)},
	        {PUBLISH_HDR_ERROR_CLASS, cls, strlen(cls)},
	        {PUBLISH_HDR_ERROR_REASON, reason, strlen(reason)},
	        {PUBLISH_HDR_CHANNEL, channel, channel ? strlen(channel) : 0},
	};
	metric_add(p->m_errors, 1, entity ? entity : "unknown", code);
	log_warn("dead letter channel=%s error=%s reason=%s", channel ? channel : "", code, reason);
	return produce_json(p, p->dlq_topic, channel, msg, h, 4, errstr, errlen);
}

/* Resolve the gap records of r through the refetch hook. */
static enum sfk_err resolve_gaps(struct publisher *p, struct normalize_result *r,
                                 struct publish_stats *st, char *errstr, size_t errlen)
{
	for (size_t i = 0; i < r->n; i++) {
		struct normalize_record *rec = &r->records[i];
		if (!rec->refetch)
			continue;
		if (!p->conf.refetch.get) {
			st->gaps_unresolved++;
			continue;
		}
		json_t *cur = NULL;
		enum sfk_err rc = p->conf.refetch.get(p->conf.refetch.ctx, r->entity, rec->key,
		                                      &cur, errstr, errlen);
		if (rc == SFK_ERR_NOT_FOUND) {
			st->gaps_unresolved++; /* deleted since: published as an unresolved gap */
			continue;
		}
		if (rc != SFK_OK)
			return rc;
		rc = normalize_resolve_gap(rec->value, cur, errstr, errlen);
		json_decref(cur);
		if (rc != SFK_OK)
			return rc;
		st->gaps_resolved++;
	}
	return SFK_OK;
}

/* One data message: normalize, resolve, produce records + fan-out. */
static enum sfk_err publish_one(struct publisher *p, json_t *msg, struct pending *pd,
                                struct publish_stats *st, json_t *resyncs, char *errstr,
                                size_t errlen)
{
	struct normalize_opts o = {
	        .topic_prefix = p->prefix,
	        .client_id = p->client_id,
	        .max_event_bytes = p->conf.max_event_bytes,
	        .clock_ms = p->conf.clock_ms,
	        .clock_ctx = p->conf.clock_ctx,
	};
	struct normalize_result r;
	char why[512];
	enum sfk_err rc;
	json_t *data = json_object_get(msg, "data");
	json_t *rid = json_object_get(json_object_get(data, "event"), "replayId");
	const char *channel = json_string_value(json_object_get(msg, "channel"));

	/* Even a dead-lettered event moves the checkpoint past itself: it
	 * would only be dead-lettered again. */
	if (json_is_integer(rid))
		pending_note(pd, channel, json_integer_value(rid));
	st->events++;
	rc = normalize_message(&o, msg, &r, why, sizeof why);
	if (rc != SFK_OK) {
		if (sfk_err_class(rc) != SFK_CLASS_PERMANENT) {
			snprintf(errstr, errlen, "normalize: %s", why);
			return rc;
		}
		st->dead_letters++;
		return dead_letter(p, msg, rc, why, NULL, errstr, errlen);
	}
	if (r.action == NORMALIZE_RESYNC) {
		st->resyncs++;
		json_array_append_new(resyncs, json_pack("{s:s, s:I}", "entity", r.entity,
		                                         "replay_id", (json_int_t)r.replay_id));
		goto out;
	}
	if (r.action == NORMALIZE_REFETCH &&
	    (rc = resolve_gaps(p, &r, st, errstr, errlen)) != SFK_OK)
		goto out;
	st->echoes += r.echo ? r.n : 0;
	for (size_t i = 0; i < r.n && rc == SFK_OK; i++) {
		struct normalize_record *rec = &r.records[i];
		const char *hn[NORMALIZE_NHDRS], *hv[NORMALIZE_NHDRS];
		struct kafka_header h[NORMALIZE_NHDRS + 1];
		normalize_headers(rec, hn, hv);
		for (int k = 0; k < NORMALIZE_NHDRS; k++)
			h[k] = (struct kafka_header){hn[k], hv[k], strlen(hv[k])};
		/* Serialized once for the entity topic and every fan-out copy (the
		 * dump was the bridge's largest CPU cost, once per destination). */
		char *text = json_dumps(rec->value, JSON_COMPACT);
		if (!text) {
			snprintf(errstr, errlen, "cannot serialize a record for %s", rec->topic);
			rc = SFK_ERR_INTERNAL;
			break;
		}
		size_t tlen = strlen(text);
		if ((rc = p->conf.sink.produce(p->conf.sink.ctx, rec->topic, rec->key, text, tlen,
		                               h, NORMALIZE_NHDRS, errstr, errlen)) != SFK_OK) {
			free(text);
			break;
		}
		st->records++;
		metric_add(p->m_events, 1, r.entity, r.change_type);
		json_t *ts = json_object_get(rec->value, "commit_timestamp");
		metric_set(p->m_lag, (double)(now_ms(p) - json_integer_value(ts)) / 1000.0,
		           r.entity);
		if (!p->conf.fanout) {
			free(text);
			continue;
		}
		struct fanout_target t[PUBLISH_MAX_TARGETS];
		size_t nt = fanout_route(p->conf.fanout, rec->value, t, PUBLISH_MAX_TARGETS);
		for (size_t k = 0; k < nt && rc == SFK_OK; k++) {
			h[NORMALIZE_NHDRS] = (struct kafka_header){
			        FANOUT_HDR_WORKLOAD, t[k].workload, strlen(t[k].workload)};
			rc = p->conf.sink.produce(p->conf.sink.ctx, t[k].topic, t[k].key, text,
			                          tlen, h, NORMALIZE_NHDRS + 1, errstr, errlen);
			if (rc == SFK_OK) {
				st->fanout++;
				metric_add(p->m_fanout, 1, t[k].workload);
			}
		}
		free(text);
	}
	if (r.action == NORMALIZE_REFETCH)
		log_info("gap event entity=%s replay_id=%lld records=%zu", r.entity,
		         (long long)r.replay_id, r.n);
out:
	normalize_result_free(&r);
	return rc;
}

enum sfk_err publish_batch(struct publisher *p, json_t *messages, struct publish_stats *st,
                           char *errstr, size_t errlen)
{
	struct pending pd = {.n = 0};
	json_t *resyncs = json_array(), *m;
	size_t i;
	char aerr[256];
	enum sfk_err rc;

	memset(st, 0, sizeof *st);
	errstr[0] = '\0';
	if ((rc = p->conf.sink.begin(p->conf.sink.ctx, errstr, errlen)) != SFK_OK)
		goto out;
	json_array_foreach(messages, i, m)
	{
		if ((rc = publish_one(p, m, &pd, st, resyncs, errstr, errlen)) != SFK_OK)
			goto abort;
	}
	int64_t now = now_ms(p);
	for (i = 0; i < pd.n; i++) {
		char *v = publish_checkpoint_value(pd.c[i].channel, pd.c[i].replay_id, now);
		rc = p->conf.sink.produce(p->conf.sink.ctx, p->checkpoint_topic, pd.c[i].channel, v,
		                          strlen(v), NULL, 0, errstr, errlen);
		free(v);
		if (rc != SFK_OK)
			goto abort;
		st->checkpoints++;
	}
	if ((rc = p->conf.sink.commit(p->conf.sink.ctx, errstr, errlen)) != SFK_OK)
		goto out; /* commit aborts by itself when it cannot commit (kafka.h) */
	for (i = 0; i < pd.n; i++) {
		publish_set_checkpoint(p, pd.c[i].channel, pd.c[i].replay_id);
		metric_set(p->m_ckpt, (double)now / 1000.0, pd.c[i].channel);
	}
	json_array_foreach(resyncs, i, m)
	{
		const char *entity = json_string_value(json_object_get(m, "entity"));
		int64_t rid = json_integer_value(json_object_get(m, "replay_id"));
		metric_add(p->m_errors, 1, entity, "resync_needed");
		if (p->conf.on_resync)
			p->conf.on_resync(p->conf.resync_ctx, entity, rid);
	}
	goto out;
abort:
	if (p->conf.sink.abort(p->conf.sink.ctx, aerr, sizeof aerr) != SFK_OK)
		log_error("transaction abort failed error=%s", aerr);
out:
	json_decref(resyncs);
	return rc;
}

enum sfk_err publish_snapshot(struct publisher *p, const char *entity, int64_t replay_id,
                              json_t *records, size_t *n, char *errstr, size_t errlen)
{
	char topic[NORMALIZE_TOPIC_MAX + 1], why[256], aerr[256];
	json_t *rec;
	size_t i;
	enum sfk_err rc;

	*n = 0;
	if (normalize_topic(p->prefix, entity, topic, sizeof topic) != 0) {
		snprintf(errstr, errlen, "snapshot: no topic for \"%.64s\"", entity);
		return SFK_ERR_INVALID;
	}
	if ((rc = p->conf.sink.begin(p->conf.sink.ctx, errstr, errlen)) != SFK_OK)
		return rc;
	int64_t now = now_ms(p);
	json_array_foreach(records, i, rec)
	{
		json_t *env = normalize_snapshot(entity, rec, replay_id, now, why, sizeof why);
		if (!env) {
			rc = dead_letter(p, rec, SFK_ERR_PARSE, why, entity, errstr, errlen);
			if (rc != SFK_OK)
				goto abort;
			continue;
		}
		const char *eid = json_string_value(json_object_get(env, "event_id"));
		const char *id = json_string_value(json_object_get(env, "record_id"));
		struct kafka_header h[NORMALIZE_NHDRS + 1] = {
		        {NORMALIZE_HDR_ENTITY, entity, strlen(entity)},
		        {NORMALIZE_HDR_CHANGE_TYPE, "SNAPSHOT", 8},
		        {NORMALIZE_HDR_EVENT_ID, eid, strlen(eid)},
		};
		rc = produce_json(p, topic, id, env, h, NORMALIZE_NHDRS, errstr, errlen);
		struct fanout_target t[PUBLISH_MAX_TARGETS];
		size_t nt = rc == SFK_OK && p->conf.fanout
		                    ? fanout_route(p->conf.fanout, env, t, PUBLISH_MAX_TARGETS)
		                    : 0;
		for (size_t k = 0; k < nt && rc == SFK_OK; k++) {
			h[NORMALIZE_NHDRS] = (struct kafka_header){
			        FANOUT_HDR_WORKLOAD, t[k].workload, strlen(t[k].workload)};
			rc = produce_json(p, t[k].topic, t[k].key, env, h, NORMALIZE_NHDRS + 1,
			                  errstr, errlen);
		}
		json_decref(env);
		if (rc != SFK_OK)
			goto abort;
		(*n)++;
	}
	if ((rc = p->conf.sink.commit(p->conf.sink.ctx, errstr, errlen)) != SFK_OK)
		*n = 0;
	else
		metric_add(p->m_events, (double)*n, entity, "SNAPSHOT");
	return rc;
abort:
	*n = 0;
	if (p->conf.sink.abort(p->conf.sink.ctx, aerr, sizeof aerr) != SFK_OK)
		log_error("transaction abort failed error=%s", aerr);
	return rc;
}
