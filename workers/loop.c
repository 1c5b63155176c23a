/*
 * loop.c - the shared consumer loop of sfk-worker (see loop.h).
 *
 * One thread. Per batch, in this order: parse -> claim (one Redis round
 * trip) -> decide -> Salesforce Collections writes (<= 200 per call, retried
 * with backoff) -> after_write -> DLQ (flushed) -> flywheel (flushed) -> mark
 * done -> store + commit contiguous done offsets; partitions with an
 * event that is not done are sought back to it (redelivered later).
 */
#include "loop.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flywheel.h"
#include "log.h"
#include "metrics.h"
#include "sfid.h"
#include "xmem.h"

#define LOOP_POLL_SLICE_MS  100 /* longest single poll while batching */
#define LOOP_FLUSH_MS       15000
#define LOOP_BACKOFF_MAX_MS 2000
#define LOOP_DLQ_MSG_MAX    WL_ERRMSG_MAX
#define LOOP_KEY_MAX        256 /* Kafka key kept for the workload (Lead id); longer: none */
#define LOOP_IDEM_KEY_MAX   512 /* event id [+ "|retry:" + sfk.retry_of] */

enum item_state {
	ST_PENDING = 0, /* claimed / being processed */
	ST_DONE,        /* effect applied, skipped, duplicate or dead-lettered */
	ST_RETRY,       /* not done: redeliver */
	ST_DROPPED      /* partition revoked while batching: not ours any more */
};

struct item {
	rd_kafka_message_t *msg;
	json_t *env;
	struct wl_event ev;
	char key[LOOP_KEY_MAX];
	/* Idempotency key: the event id, or for a letter sent back by `sfk dlq
	 * retry` the event id + its sfk.retry_of (the first pass is done). */
	char idem_key[LOOP_IDEM_KEY_MAX];
	enum item_state st;
	int parsed;
	int claimed;
	int dlq; /* parse problem: dead-letter it */
	enum sfk_err err;
	char errcode[SF_ERR_CODE_MAX];
	char errmsg[LOOP_DLQ_MSG_MAX];
	int attempts;
	int dec; /* index into the decisions, -1 if none */
};

static int idem_key_of(const rd_kafka_message_t *m, const char *event_id, char *out, size_t size);

struct loop {
	struct loop_conf c;
	struct kafka_consumer *consumer;
	struct idem *idem;
	struct item *items;
	size_t nitems;
	int consecutive_retries;
	atomic_int assigned;
	atomic_int redis_ok;
	struct metric *m_decisions, *m_active, *m_batch, *m_latency, *m_dlq, *m_flywheel;
};

/* ---- parsing ------------------------------------------------------------- */

static const char *str_field(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The change types of schemas/event.schema.json plus SLA_BREACH (the SLA
 * watcher's synthetic events, notify_relay.h): anything else is not an
 * envelope of ours (dead-lettered, not silently ignored). */
static int known_change_type(const char *t)
{
	static const char *const known[] = {
	        "CREATE",     "UPDATE",     "DELETE",       "UNDELETE", "GAP_CREATE",
	        "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "SNAPSHOT", "SLA_BREACH"};
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(t, known[i]) == 0)
			return 1;
	return 0;
}

enum sfk_err loop_parse_event(json_t *env, struct wl_event *ev, char *errstr, size_t errlen)
{
	static const char *const req[] = {"event_id", "entity", "change_type", "record_id"};
	json_t *ts;

	memset(ev, 0, sizeof *ev);
	if (!json_is_object(env)) {
		snprintf(errstr, errlen, "$: envelope is not a JSON object");
		return SFK_ERR_PARSE;
	}
	if (json_integer_value(json_object_get(env, "envelope_version")) != 1) {
		snprintf(errstr, errlen, "$.envelope_version: unsupported (want 1)");
		return SFK_ERR_PARSE;
	}
	for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
		const char *v = str_field(env, req[i]);
		if (!v || !*v) {
			snprintf(errstr, errlen, "$.%s: missing or not a string", req[i]);
			return SFK_ERR_PARSE;
		}
	}
	if (!sfid_valid(str_field(env, "record_id"))) {
		snprintf(errstr, errlen, "$.record_id: not a Salesforce id");
		return SFK_ERR_PARSE;
	}
	if (!known_change_type(str_field(env, "change_type"))) {
		snprintf(errstr, errlen, "$.change_type: unknown change type \"%.32s\"",
		         str_field(env, "change_type"));
		return SFK_ERR_PARSE;
	}
	ev->fields = json_object_get(env, "fields");
	if (!json_is_object(ev->fields)) {
		snprintf(errstr, errlen, "$.fields: missing or not an object");
		return SFK_ERR_PARSE;
	}
	ts = json_object_get(env, "commit_timestamp");
	if (!json_is_integer(ts) || json_integer_value(ts) < 0) {
		snprintf(errstr, errlen,
		         "$.commit_timestamp: missing or not a non-negative integer");
		return SFK_ERR_PARSE;
	}
	ev->env = env;
	ev->event_id = str_field(env, "event_id");
	ev->entity = str_field(env, "entity");
	ev->change_type = str_field(env, "change_type");
	ev->record_id = str_field(env, "record_id");
	ev->commit_user = str_field(env, "commit_user");
	ev->commit_ts_ms = (int64_t)json_integer_value(ts);
	return SFK_OK;
}

/* ---- helpers ------------------------------------------------------------- */

static void sleep_ms(struct loop *l, long ms)
{
	/* In slices, so SIGTERM is not held up by a backoff. */
	while (ms > 0 && !*l->c.stop) {
		long s = ms > 50 ? 50 : ms;
		struct timespec ts = {.tv_sec = 0, .tv_nsec = s * 1000000L};
		nanosleep(&ts, NULL);
		ms -= s;
	}
}

static long backoff_ms(const struct loop *l, int attempt)
{
	long ms = l->c.retry_base_ms > 0 ? l->c.retry_base_ms : 100;
	for (int i = 1; i < attempt && ms < LOOP_BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > LOOP_BACKOFF_MAX_MS)
		ms = LOOP_BACKOFF_MAX_MS;
	return ms / 2 + rand() % (ms / 2 + 1); /* jitter */
}

static void count(struct loop *l, const char *outcome)
{
	metric_add(l->m_decisions, 1, l->c.ctx->workload_id, outcome);
}

static void revoke_hook(struct kafka_consumer *c, const rd_kafka_topic_partition_list_t *parts,
                        int lost, void *opaque)
{
	struct loop *l = opaque;
	char err[KAFKA_ERRSTR_MAX];

	/* Messages batched from these partitions are not ours any more: the new
	 * owner gets them from the last committed offset. */
	for (size_t i = 0; i < l->nitems; i++)
		for (int p = 0; p < parts->cnt; p++)
			if (l->items[i].msg &&
			    l->items[i].msg->partition == parts->elems[p].partition &&
			    strcmp(rd_kafka_topic_name(l->items[i].msg->rkt),
			           parts->elems[p].topic) == 0)
				l->items[i].st = ST_DROPPED;
	log_info("partitions revoked count=%d lost=%d", parts->cnt, lost);
	if (!lost && kafka_consumer_commit(c, err, sizeof err) != SFK_OK)
		log_warn("commit on revoke failed error=%s", err);
}

/* ---- lifecycle ----------------------------------------------------------- */

struct loop *loop_new(const struct loop_conf *c, char *errstr, size_t errlen)
{
	static const double batch_buckets[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
	struct loop *l = xcalloc(1, sizeof *l);
	struct kafka_revoke_hook hook = {.fn = revoke_hook, .opaque = l};
	struct idem_opts io = {.lease_ms = c->idem_lease_ms};

	l->c = *c;
	if (l->c.batch_max < 1 || l->c.batch_max > LOOP_BATCH_MAX)
		l->c.batch_max = LOOP_BATCH_MAX;
	if (l->c.write_attempts < 1)
		l->c.write_attempts = 1;
	l->idem = idem_new(c->ctx->redis, c->ctx->workload_id, c->ctx->epoch, &io, errstr, errlen);
	if (!l->idem)
		goto fail;
	l->consumer = kafka_consumer_new(c->bootstrap, c->group, NULL, &hook, errstr, errlen);
	if (!l->consumer)
		goto fail;
	l->items = xcalloc((size_t)l->c.batch_max, sizeof *l->items);
	l->m_decisions = metrics_counter("sfk_decisions_total", "Worker decisions by outcome",
	                                 "workload,outcome");
	l->m_active = metrics_gauge("sfk_active_workers",
	                            "Running worker processes (1 per replica)", "workload");
	l->m_batch = metrics_histogram("sfk_worker_batch_size", "Messages per processed batch",
	                               "workload", batch_buckets,
	                               sizeof batch_buckets / sizeof batch_buckets[0]);
	l->m_latency =
	        metrics_histogram("sfk_worker_processing_latency_seconds",
	                          "Event commit timestamp to Salesforce write acknowledged",
	                          "workload", metrics_latency_buckets, metrics_latency_nbuckets);
	l->m_dlq = metrics_counter("sfk_dlq_messages_total", "Messages dead-lettered",
	                           "workload,error_class");
	l->m_flywheel =
	        metrics_counter("sfk_flywheel_records_total",
	                        "Flywheel records by outcome (emitted, error)", "workload,outcome");
	atomic_store(&l->redis_ok, 1);
	return l;
fail:
	idem_free(l->idem);
	free(l);
	return NULL;
}

void loop_free(struct loop **pl)
{
	struct loop *l = pl ? *pl : NULL;
	if (!l)
		return;
	kafka_consumer_close(&l->consumer);
	idem_free(l->idem);
	free(l->items);
	free(l);
	*pl = NULL;
}

int loop_ready_kafka(void *p, char *reason, size_t len)
{
	struct loop *l = p;
	int n = atomic_load(&l->assigned);
	snprintf(reason, len, n > 0 ? "%d partitions assigned" : "no partitions assigned yet", n);
	return n > 0;
}

int loop_ready_redis(void *p, char *reason, size_t len)
{
	struct loop *l = p;
	int ok = atomic_load(&l->redis_ok);
	snprintf(reason, len, ok ? "ok" : "idempotency store unreachable");
	return ok;
}

/* ---- one batch ----------------------------------------------------------- */

static void item_fail(struct item *it, enum sfk_err e, const char *code, const char *msg)
{
	it->err = e;
	snprintf(it->errcode, sizeof it->errcode, "%s", code && *code ? code : sfk_err_str(e));
	snprintf(it->errmsg, sizeof it->errmsg, "%s", msg ? msg : "");
}

static void parse_items(struct loop *l)
{
	for (size_t i = 0; i < l->nitems; i++) {
		struct item *it = &l->items[i];
		rd_kafka_message_t *m = it->msg;
		json_error_t jerr;
		char err[LOOP_DLQ_MSG_MAX];

		it->dec = -1;
		if (it->st == ST_DROPPED)
			continue;
		if (m->key && m->key_len > 0 && m->key_len < sizeof it->key) {
			memcpy(it->key, m->key, m->key_len);
			it->key[m->key_len] = '\0';
		}
		it->env = m->payload ? json_loadb(m->payload, m->len, JSON_REJECT_DUPLICATES, &jerr)
		                     : NULL;
		if (!it->env) {
			it->dlq = 1;
			item_fail(it, SFK_ERR_PARSE, "parse",
			          m->payload ? jerr.text : "empty message value");
			continue;
		}
		if (loop_parse_event(it->env, &it->ev, err, sizeof err) != SFK_OK) {
			it->dlq = 1;
			item_fail(it, SFK_ERR_PARSE, "parse", err);
			continue;
		}
		it->ev.topic = rd_kafka_topic_name(m->rkt);
		it->ev.partition = m->partition;
		it->ev.offset = m->offset;
		it->ev.key = it->key[0] ? it->key : NULL;
		if (idem_key_of(m, it->ev.event_id, it->idem_key, sizeof it->idem_key) < 0) {
			it->dlq = 1;
			item_fail(
			        it, SFK_ERR_PARSE, "parse",
			        "event_id or sfk.retry_of header too long for an idempotency key");
			continue;
		}
		it->parsed = 1;
	}
}

/*
 * The idempotency key of a message. A dead letter's event id is marked done
 * (its failure was final); `sfk dlq retry` sends it back with sfk.retry_of =
 * "<dlq topic>/<partition>/<offset>", which makes a new key: the retry is
 * decided again, and the same letter retried twice is still applied once.
 */
static int idem_key_of(const rd_kafka_message_t *m, const char *event_id, char *out, size_t size)
{
	rd_kafka_headers_t *hdrs = NULL;
	const void *v = NULL;
	size_t vlen = 0;
	int n;
	if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    rd_kafka_header_get_last(hdrs, "sfk.retry_of", &v, &vlen) ==
	            RD_KAFKA_RESP_ERR_NO_ERROR &&
	    v && vlen > 0 && vlen < size)
		n = snprintf(out, size, "%s|retry:%.*s", event_id, (int)vlen, (const char *)v);
	else
		n = snprintf(out, size, "%s", event_id);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Defer every claimed item after index i on the same partition (order per lead). */
static void defer_after(struct loop *l, size_t i)
{
	for (size_t j = i + 1; j < l->nitems; j++) {
		struct item *it = &l->items[j];
		if (it->msg->partition != l->items[i].msg->partition || it->st == ST_DROPPED)
			continue;
		if (it->claimed) {
			idem_release(l->idem, it->idem_key);
			it->claimed = 0;
		}
		if (it->st == ST_PENDING)
			it->st = ST_RETRY;
	}
}

static void claim_items(struct loop *l)
{
	const char **ids = xcalloc(l->nitems + 1, sizeof *ids);
	size_t *idx = xcalloc(l->nitems + 1, sizeof *idx);
	enum idem_outcome *out = xcalloc(l->nitems + 1, sizeof *out);
	size_t n = 0;

	for (size_t i = 0; i < l->nitems; i++)
		if (l->items[i].parsed && l->items[i].st == ST_PENDING) {
			ids[n] = l->items[i].idem_key;
			idx[n++] = i;
		}
	if (n == 0)
		goto out;
	if (idem_claim_batch(l->idem, n, ids, out) != SFK_OK) {
		log_warn("idempotency claim failed error=%s", redis_errstr(l->c.ctx->redis));
		atomic_store(&l->redis_ok, 0);
		for (size_t k = 0; k < n; k++)
			l->items[idx[k]].st = ST_RETRY;
		goto out;
	}
	atomic_store(&l->redis_ok, 1);
	for (size_t k = 0; k < n; k++) {
		struct item *it = &l->items[idx[k]];
		if (out[k] == IDEM_CLAIMED)
			it->claimed = 1;
		else if (out[k] == IDEM_DONE) {
			it->st = ST_DONE;
			count(l, "duplicate");
		}
	}
	/* BUSY: another replica (or a dead one, until its lease expires) holds it. */
	for (size_t k = 0; k < n; k++)
		if (out[k] == IDEM_BUSY && l->items[idx[k]].st == ST_PENDING) {
			l->items[idx[k]].st = ST_RETRY;
			defer_after(l, idx[k]);
		}
out:
	free(ids);
	free(idx);
	free(out);
}

/* Write the WL_WRITE decisions; res[d] per decision. */
static void write_decisions(struct loop *l, struct wl_decision *dec, size_t nd,
                            struct wl_write_result *res)
{
	size_t *pend = xcalloc(nd + 1, sizeof *pend);
	size_t npend = 0;

	for (size_t d = 0; d < nd; d++)
		if (dec[d].action == WL_WRITE && dec[d].write) {
			pend[npend++] = d;
			res[d].attempted = 1;
		}
	for (int attempt = 1; npend > 0 && attempt <= l->c.write_attempts; attempt++) {
		size_t next = 0; /* retriable leftovers go back into pend[0..next) */
		size_t pos = 0;
		if (attempt > 1)
			sleep_ms(l, backoff_ms(l, attempt - 1));
		while (pos < npend) {
			/* One chunk: <= 200 records, no record id twice (order kept). */
			json_t *arr = json_array();
			size_t chunk[SF_REST_COLLECTION_MAX];
			size_t nc = 0;
			struct sf_record_result rr[SF_REST_COLLECTION_MAX];
			struct sf_error e;
			enum sfk_err rc;

			while (pos < npend && nc < SF_REST_COLLECTION_MAX) {
				const char *id = str_field(dec[pend[pos]].write, "id");
				int dup = 0;
				for (size_t k = 0; k < nc && id; k++)
					dup |= strcmp(id, str_field(dec[chunk[k]].write, "id")) ==
					       0;
				if (dup)
					break;
				chunk[nc++] = pend[pos];
				json_array_append(arr, dec[pend[pos]].write);
				pos++;
			}
			memset(rr, 0, sizeof rr);
			sf_error_clear(&e);
			rc = l->c.ctx->sf
			             ? sf_rest_collection_update(l->c.ctx->sf, arr, 0,
			                                         attempt > 1 ? SF_REQ_ESSENTIAL : 0,
			                                         rr, &e)
			             : SFK_ERR_CONFIG;
			json_decref(arr);
			for (size_t k = 0; k < nc; k++) {
				struct wl_write_result *r = &res[chunk[k]];
				if (rc != SFK_OK) {
					r->success = 0;
					r->error = e;
					if (rc == SFK_ERR_CONFIG)
						snprintf(r->error.message, sizeof r->error.message,
						         "no Salesforce client");
				} else {
					r->success = rr[k].success;
					r->error = rr[k].error;
				}
				if (r->success)
					continue;
				if (sfk_err_class(r->error.err) == SFK_CLASS_RETRIABLE ||
				    r->error.err == SFK_ERR_AUTH)
					pend[next++] = chunk[k];
			}
			if (rc != SFK_OK)
				log_warn("collections update failed attempt=%d records=%zu code=%s "
				         "error=%s",
				         attempt, nc, e.code, e.message);
		}
		npend = next;
	}
	free(pend);
}

static void produce_dlq(struct loop *l, struct item *it)
{
	char part[16], off[24], att[16], msg[LOOP_DLQ_MSG_MAX];
	char err[KAFKA_ERRSTR_MAX];
	const char *cls = sfk_err_class_str(sfk_err_class(it->err));
	struct kafka_header h[8];
	size_t nh = 0;
	enum sfk_err rc;

	snprintf(part, sizeof part, "%" PRId32, it->msg->partition);
	snprintf(off, sizeof off, "%" PRId64, it->msg->offset);
	snprintf(att, sizeof att, "%d", it->attempts > 0 ? it->attempts : 1);
	snprintf(msg, sizeof msg, "%s", it->errmsg);
#define HDR(n, v) h[nh++] = (struct kafka_header){(n), (v), strlen(v)}
	HDR("sfk.error_class", cls);
	HDR("sfk.error_code", it->errcode);
	HDR("sfk.error_message", msg);
	HDR("sfk.source_topic", rd_kafka_topic_name(it->msg->rkt));
	HDR("sfk.source_partition", part);
	HDR("sfk.source_offset", off);
	HDR("sfk.attempts", att);
	if (it->parsed)
		HDR("sfk.event_id", it->ev.event_id);
#undef HDR
	rc = kafka_produce(l->c.ctx->producer, l->c.dlq_topic, it->msg->key, it->msg->key_len,
	                   it->msg->payload, it->msg->len, h, nh, err, sizeof err);
	if (rc != SFK_OK) {
		log_error("dlq produce failed error=%s", err);
		it->st = ST_RETRY;
		return;
	}
	metric_add(l->m_dlq, 1, l->c.ctx->workload_id, cls);
	log_warn("dead-lettered topic=%s partition=%s offset=%s code=%s message=%s",
	         rd_kafka_topic_name(it->msg->rkt), part, off, it->errcode, msg);
}

static void emit_flywheel(struct loop *l, struct item *it, struct wl_decision *d, int64_t now_ms)
{
	char did[FLYWHEEL_ID_MAX], err[KAFKA_ERRSTR_MAX];
	const char *sys = d->system_prompt ? d->system_prompt : l->c.ops->system_prompt;
	struct flywheel_in in = {
	        .timestamp = now_ms / 1000,
	        .client_id = l->c.ctx->client_id,
	        .workload_id = l->c.ctx->workload_id,
	        .model = d->model[0] ? d->model : "rules",
	        .system_prompt = sys ? sys : "You are a sales operations assistant.",
	        .facts = d->facts,
	        .decision = d->decision,
	        .event_id = it->ev.event_id,
	        .lead_id = d->lead_id,
	        .policy_version = d->policy_version,
	};
	json_t *rec;
	char *val;
	size_t len = 0;

	if (d->decision_id[0])
		snprintf(did, sizeof did, "%s", d->decision_id);
	else if (flywheel_decision_id(l->c.ctx->workload_id, it->ev.event_id, did, sizeof did))
		goto bad;
	in.decision_id = did;
	if (!d->facts)
		in.facts = it->ev.fields;
	rec = flywheel_build(&in, err, sizeof err);
	if (!rec) {
		log_error("flywheel record not built error=%s", err);
		goto bad;
	}
	val = flywheel_dump(rec, &len);
	json_decref(rec);
	if (!val || kafka_produce(l->c.ctx->producer, l->c.flywheel_topic, did, strlen(did), val,
	                          len, NULL, 0, err, sizeof err) != SFK_OK) {
		free(val);
		log_error("flywheel produce failed");
		goto bad;
	}
	free(val);
	metric_add(l->m_flywheel, 1, l->c.ctx->workload_id, "emitted");
	return;
bad:
	metric_add(l->m_flywheel, 1, l->c.ctx->workload_id, "error");
}

static const char *outcome_of(const struct wl_decision *d)
{
	if (d->outcome[0])
		return d->outcome;
	switch (d->action) {
	case WL_WRITE: return "written";
	case WL_SKIP: return "skipped";
	case WL_DLQ: return "dlq";
	default: return "retry";
	}
}

/* Store the contiguous done prefix per partition, seek back to the first
 * not-done offset, commit. */
static void commit_items(struct loop *l)
{
	rd_kafka_topic_partition_list_t *seek = rd_kafka_topic_partition_list_new(4);
	char err[KAFKA_ERRSTR_MAX];
	int stored = 0;

	for (size_t i = 0; i < l->nitems; i++) {
		struct item *it = &l->items[i];
		int first = 1, blocked = 0;
		const struct item *last_done = NULL;
		if (!it->msg || it->st == ST_DROPPED)
			continue;
		for (size_t j = 0; j < i; j++)
			if (l->items[j].msg->partition == it->msg->partition)
				first = 0;
		if (!first)
			continue;
		for (size_t j = i; j < l->nitems; j++) {
			struct item *o = &l->items[j];
			if (o->msg->partition != it->msg->partition || o->st == ST_DROPPED)
				continue;
			if (!blocked && o->st == ST_DONE)
				last_done = o;
			else if (!blocked) {
				blocked = 1;
				rd_kafka_topic_partition_list_add(
				        seek, rd_kafka_topic_name(o->msg->rkt), o->msg->partition)
				        ->offset = o->msg->offset;
			}
		}
		if (last_done &&
		    kafka_consumer_store(l->consumer, last_done->msg, err, sizeof err) == SFK_OK)
			stored++;
	}
	if (stored && kafka_consumer_commit(l->consumer, err, sizeof err) != SFK_OK)
		log_warn("offset commit failed error=%s", err);
	if (seek->cnt > 0) {
		rd_kafka_error_t *e =
		        rd_kafka_seek_partitions(kafka_consumer_handle(l->consumer), seek, 5000);
		if (e) {
			log_warn("seek back failed error=%s", rd_kafka_error_string(e));
			rd_kafka_error_destroy(e);
		}
		l->consecutive_retries++;
	} else
		l->consecutive_retries = 0;
	rd_kafka_topic_partition_list_destroy(seek);
}

static void process_batch(struct loop *l)
{
	struct wl_ctx *ctx = l->c.ctx;
	struct wl_event *evs = NULL;
	struct wl_decision *dec = NULL;
	struct wl_write_result *res = NULL;
	size_t *map = NULL, nd = 0;
	const char **ids = NULL;
	enum sfk_err *cres = NULL;
	size_t nids = 0;
	int64_t now_ms;
	int dlq_sent = 0;
	char err[KAFKA_ERRSTR_MAX];

	metric_observe(l->m_batch, (double)l->nitems, ctx->workload_id);
	parse_items(l);
	claim_items(l);

	/* decide */
	evs = xcalloc(l->nitems + 1, sizeof *evs);
	dec = xcalloc(l->nitems + 1, sizeof *dec);
	res = xcalloc(l->nitems + 1, sizeof *res);
	map = xcalloc(l->nitems + 1, sizeof *map);
	for (size_t i = 0; i < l->nitems; i++)
		if (l->items[i].claimed && l->items[i].st == ST_PENDING) {
			l->items[i].dec = (int)nd;
			evs[nd] = l->items[i].ev;
			map[nd++] = i;
		}
	if (nd > 0) {
		enum sfk_err rc = l->c.ops->decide(ctx, evs, nd, dec);
		if (rc != SFK_OK) {
			log_warn("decide failed for the batch error=%s events=%zu", sfk_err_str(rc),
			         nd);
			for (size_t d = 0; d < nd; d++)
				dec[d].action = WL_RETRY;
		}
		/* Order per Lead: an event to retry holds back the later events of
		 * the same key on its partition (they are redelivered after it). */
		for (size_t d = 0; d < nd; d++) {
			const struct item *a = &l->items[map[d]];
			if (dec[d].action != WL_RETRY || !a->ev.key)
				continue;
			for (size_t d2 = d + 1; d2 < nd; d2++) {
				const struct item *b = &l->items[map[d2]];
				if (b->msg->partition == a->msg->partition && b->ev.key &&
				    strcmp(b->ev.key, a->ev.key) == 0)
					dec[d2].action = WL_RETRY;
			}
		}
		write_decisions(l, dec, nd, res);
		for (size_t d = 0; d < nd; d++) {
			struct wl_write_result *r = &res[d];
			if (!r->attempted || r->success)
				continue;
			if (sfk_err_class(r->error.err) == SFK_CLASS_PERMANENT) {
				dec[d].action = WL_DLQ;
				dec[d].err = r->error.err;
				snprintf(dec[d].errcode, sizeof dec[d].errcode, "%s",
				         r->error.code);
				snprintf(dec[d].errmsg, sizeof dec[d].errmsg, "%s",
				         r->error.message);
			} else {
				dec[d].action = WL_RETRY;
			}
		}
		if (l->c.ops->after_write)
			l->c.ops->after_write(ctx, evs, nd, dec, res);
	}
	now_ms = ctx->now_ms();

	/* outcomes -> items */
	for (size_t d = 0; d < nd; d++) {
		struct item *it = &l->items[map[d]];
		it->attempts = res[d].attempted ? l->c.write_attempts : 1;
		switch (dec[d].action) {
		case WL_WRITE:
		case WL_SKIP: it->st = ST_DONE; break;
		case WL_DLQ:
			it->dlq = 1;
			item_fail(it, dec[d].err ? dec[d].err : SFK_ERR_SF_PERMANENT,
			          dec[d].errcode, dec[d].errmsg);
			break;
		default: it->st = ST_RETRY; break;
		}
	}

	/* dead letters, flushed before anything is marked done */
	for (size_t i = 0; i < l->nitems; i++) {
		struct item *it = &l->items[i];
		if (it->dlq && it->st == ST_PENDING) {
			produce_dlq(l, it);
			if (it->st == ST_PENDING) {
				it->st = ST_DONE;
				dlq_sent = 1;
			}
		}
	}
	if (dlq_sent &&
	    kafka_producer_flush(ctx->producer, LOOP_FLUSH_MS, err, sizeof err) != SFK_OK) {
		log_error("dlq flush failed error=%s", err);
		for (size_t i = 0; i < l->nitems; i++)
			if (l->items[i].dlq && l->items[i].st == ST_DONE)
				l->items[i].st = ST_RETRY;
	}

	/* Flywheel records, flushed BEFORE the keys are marked done: a crash in
	 * between redelivers the event and the workload decides again with the
	 * same decision id (the Kafka key; the loader dedups on it), so no record
	 * is lost. Marking done first would lose the record on such a crash. */
	{
		int emitted = 0;
		for (size_t d = 0; d < nd; d++) {
			struct item *it = &l->items[map[d]];
			if (it->st == ST_DONE && !it->dlq && dec[d].decision) {
				emit_flywheel(l, it, &dec[d], now_ms);
				emitted = 1;
			}
		}
		if (emitted &&
		    kafka_producer_flush(ctx->producer, LOOP_FLUSH_MS, err, sizeof err) != SFK_OK) {
			log_error("flywheel flush failed error=%s", err);
			metric_add(l->m_flywheel, 1, ctx->workload_id, "error");
			for (size_t d = 0; d < nd; d++)
				if (l->items[map[d]].st == ST_DONE && !l->items[map[d]].dlq &&
				    dec[d].decision)
					l->items[map[d]].st = ST_RETRY;
		}
	}

	/* mark done / release */
	ids = xcalloc(l->nitems + 1, sizeof *ids);
	cres = xcalloc(l->nitems + 1, sizeof *cres);
	for (size_t i = 0; i < l->nitems; i++) {
		struct item *it = &l->items[i];
		if (!it->claimed)
			continue;
		if (it->st == ST_DONE)
			ids[nids++] = it->idem_key;
		else if (it->st != ST_DROPPED)
			idem_release(l->idem, it->idem_key);
	}
	if (nids > 0 && idem_complete_batch(l->idem, nids, ids, cres) != SFK_OK) {
		/* The effects are applied; a redelivery decides again (workloads
		 * check the current state before writing). Do not commit. */
		log_warn("idempotency complete failed error=%s", redis_errstr(ctx->redis));
		atomic_store(&l->redis_ok, 0);
		for (size_t i = 0; i < l->nitems; i++)
			if (l->items[i].claimed && l->items[i].st == ST_DONE)
				l->items[i].st = ST_RETRY;
	}

	/* metrics */
	for (size_t d = 0; d < nd; d++) {
		struct item *it = &l->items[map[d]];
		if (it->st != ST_DONE)
			continue;
		count(l, it->dlq ? "dlq" : outcome_of(&dec[d]));
		if (res[d].attempted && res[d].success)
			metric_observe(l->m_latency,
			               (double)(now_ms - it->ev.commit_ts_ms) / 1000.0,
			               ctx->workload_id);
	}
	for (size_t i = 0; i < l->nitems; i++)
		if (l->items[i].dlq && !l->items[i].claimed && l->items[i].st == ST_DONE)
			count(l, "dlq");

	commit_items(l);

	for (size_t d = 0; d < nd; d++) {
		json_decref(dec[d].write);
		json_decref(dec[d].decision);
		json_decref(dec[d].facts);
	}
	free(evs);
	free(dec);
	free(res);
	free(map);
	free(ids);
	free(cres);
}

static void clear_items(struct loop *l)
{
	for (size_t i = 0; i < l->nitems; i++) {
		json_decref(l->items[i].env);
		rd_kafka_message_destroy(l->items[i].msg);
		memset(&l->items[i], 0, sizeof l->items[i]);
	}
	l->nitems = 0;
}

static void update_assigned(struct loop *l)
{
	rd_kafka_topic_partition_list_t *a = NULL;
	if (rd_kafka_assignment(kafka_consumer_handle(l->consumer), &a) ==
	            RD_KAFKA_RESP_ERR_NO_ERROR &&
	    a) {
		atomic_store(&l->assigned, a->cnt);
		rd_kafka_topic_partition_list_destroy(a);
	}
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int loop_run(struct loop *l)
{
	char err[KAFKA_ERRSTR_MAX];
	const char *topics[1] = {l->c.topic};
	int rc = 0;

	if (kafka_consumer_subscribe(l->consumer, topics, 1, err, sizeof err) != SFK_OK) {
		log_error("subscribe failed topic=%s error=%s", l->c.topic, err);
		return 1;
	}
	metric_set(l->m_active, 1, l->c.ctx->workload_id);
	log_info("consuming topic=%s group=%s batch=%d wait_ms=%ld", l->c.topic, l->c.group,
	         l->c.batch_max, l->c.batch_wait_ms);
	while (!*l->c.stop) {
		int64_t start = 0, last_assign = 0;
		if (l->consecutive_retries > 0)
			sleep_ms(l, backoff_ms(l, l->consecutive_retries));
		/* Batch: up to batch_max messages, or batch_wait_ms after the first one. */
		while (!*l->c.stop && l->nitems < (size_t)l->c.batch_max) {
			rd_kafka_message_t *m = NULL;
			int64_t left = l->nitems ? l->c.batch_wait_ms - (mono_ms() - start)
			                         : LOOP_POLL_SLICE_MS;
			enum sfk_err e;
			if (left <= 0)
				break;
			if (mono_ms() - last_assign >= 1000) {
				update_assigned(l);
				last_assign = mono_ms();
			}
			e = kafka_consumer_poll(
			        l->consumer,
			        (int)(left > LOOP_POLL_SLICE_MS ? LOOP_POLL_SLICE_MS : left), &m,
			        err, sizeof err);
			if (e == SFK_ERR_KAFKA_FATAL) {
				log_error("kafka consumer fatal error=%s", err);
				rc = 1;
				goto out;
			}
			if (!m)
				continue;
			if (m->err) { /* not a record (should not happen: errors come as codes) */
				rd_kafka_message_destroy(m);
				continue;
			}
			if (l->nitems == 0)
				start = mono_ms();
			l->items[l->nitems++].msg = m;
		}
		update_assigned(l);
		if (l->nitems > 0)
			process_batch(l);
		clear_items(l);
	}
out:
	clear_items(l);
	metric_set(l->m_active, 0, l->c.ctx->workload_id);
	log_info("consumer loop stopped");
	return rc;
}
