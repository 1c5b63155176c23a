/*
 * notify_relay.c - <prefix>notify.events -> <prefix>wl.notify.webhook (see
 * notify_relay.h). One thread with its own consumer and producer. Per batch:
 * poll up to NOTIFY_RELAY_BATCH_MAX records (or 200 ms after the first),
 * produce an envelope for each, flush, then store and commit the offsets. A
 * failed flush keeps the batch and tries again (nothing is committed until
 * it is delivered). A record that is not a breach record is skipped with a
 * warning and counted: it can never become one.
 */
#include "notify_relay.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "sfid.h"
#include "xmem.h"

#define RELAY_POLL_MS    100
#define RELAY_WAIT_MS    200 /* batch fill after its first record */
#define RELAY_FLUSH_MS   10000
#define RELAY_BACKOFF_MS 1000  /* after a failed flush */
#define RELAY_RECORD_MAX 65536 /* one notify.events record */

struct notify_relay {
	char *from, *to;
	struct kafka_consumer *consumer;
	struct kafka_producer *producer;
	pthread_t thread;
	atomic_int stop;
	struct metric *m_records;
};

static int64_t relay_wall_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int64_t relay_mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

json_t *notify_relay_envelope(json_t *rec, int64_t now_ms, char *errstr, size_t errlen)
{
	const char *type, *eid, *lead;
	json_t *fields, *env;

	if (!json_is_object(rec)) {
		snprintf(errstr, errlen, "$: not a JSON object");
		return NULL;
	}
	type = json_string_value(json_object_get(rec, "type"));
	eid = json_string_value(json_object_get(rec, "event_id"));
	lead = json_string_value(json_object_get(rec, "lead_id"));
	if (!type || strcmp(type, "sla.breach") != 0) {
		snprintf(errstr, errlen, "$.type: not \"sla.breach\"");
		return NULL;
	}
	if (!eid || !*eid) {
		snprintf(errstr, errlen, "$.event_id: missing or not a string");
		return NULL;
	}
	if (!lead || !sfid_valid(lead)) {
		snprintf(errstr, errlen, "$.lead_id: missing or not a Salesforce id");
		return NULL;
	}
	fields = json_deep_copy(rec);
	json_object_del(fields, "type");
	json_object_del(fields, "event_id");
	json_object_del(fields, "client_id");
	env = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:o}", "envelope_version", 1, "kind",
	                "sla_breach", "event_id", eid, "entity", "Lead", "change_type",
	                "SLA_BREACH", "record_id", lead, "commit_timestamp", (json_int_t)now_ms,
	                "fields", fields);
	if (!env)
		snprintf(errstr, errlen, "envelope not built");
	return env;
}

/* Produce one record's envelope; 1 produced, 0 skipped, -1 produce failed. */
static int relay_one(struct notify_relay *r, const rd_kafka_message_t *m)
{
	char err[KAFKA_ERRSTR_MAX], why[256];
	json_error_t je;
	json_t *rec = NULL, *env = NULL;
	char *val = NULL;
	int rc = 0;

	if (!m->payload || m->len > RELAY_RECORD_MAX) {
		snprintf(why, sizeof why, m->payload ? "record over %d bytes" : "empty record",
		         RELAY_RECORD_MAX);
		goto skip;
	}
	if (!(rec = json_loadb(m->payload, m->len, JSON_REJECT_DUPLICATES, &je))) {
		snprintf(why, sizeof why, "not JSON: %s", je.text);
		goto skip;
	}
	if (!(env = notify_relay_envelope(rec, relay_wall_ms(), why, sizeof why)))
		goto skip;
	val = json_dumps(env, JSON_COMPACT);
	const char *lead = json_string_value(json_object_get(env, "record_id"));
	struct kafka_header h[1] = {{"sfk.relayed_from", r->from, strlen(r->from)}};
	if (!val || kafka_produce(r->producer, r->to, lead, strlen(lead), val, strlen(val), h, 1,
	                          err, sizeof err) != SFK_OK) {
		log_warn("notify relay produce failed error=%s", val ? err : "dump");
		rc = -1;
		goto out;
	}
	rc = 1;
	goto out;
skip:
	log_warn("notify relay skipped a record topic=%s partition=%d offset=%lld reason=%s",
	         r->from, (int)m->partition, (long long)m->offset, why);
	metric_add(r->m_records, 1, "skipped");
out:
	free(val);
	json_decref(env);
	json_decref(rec);
	return rc;
}

static void *run(void *arg)
{
	struct notify_relay *r = arg;
	rd_kafka_message_t *batch[NOTIFY_RELAY_BATCH_MAX];
	char err[KAFKA_ERRSTR_MAX];
	size_t n = 0;

	while (!atomic_load(&r->stop)) {
		int64_t first = 0;
		/* fill */
		while (n < NOTIFY_RELAY_BATCH_MAX && !atomic_load(&r->stop)) {
			rd_kafka_message_t *m = NULL;
			if (n && relay_mono_ms() - first >= RELAY_WAIT_MS)
				break;
			enum sfk_err e = kafka_consumer_poll(r->consumer, RELAY_POLL_MS, &m, err,
			                                     sizeof err);
			if (e == SFK_ERR_KAFKA_FATAL) {
				log_error("notify relay consumer fatal error=%s", err);
				atomic_store(&r->stop, 1);
				break;
			}
			if (!m)
				continue;
			if (m->err) {
				rd_kafka_message_destroy(m);
				continue;
			}
			if (!n)
				first = relay_mono_ms();
			batch[n++] = m;
		}
		if (!n)
			continue;
		/* produce + flush until delivered (or stopping: then not committed, the
		 * next relay re-reads them) */
		for (;;) {
			int failed = 0, produced = 0;
			for (size_t i = 0; i < n && !failed; i++) {
				int x = relay_one(r, batch[i]);
				failed = x < 0;
				produced += x > 0;
			}
			if (!failed && kafka_producer_flush(r->producer, RELAY_FLUSH_MS, err,
			                                    sizeof err) == SFK_OK) {
				metric_add(r->m_records, (double)produced, "relayed");
				break;
			}
			log_warn("notify relay flush failed records=%zu error=%s", n,
			         failed ? "produce" : err);
			if (atomic_load(&r->stop))
				goto drop;
			struct timespec ts = {0, RELAY_BACKOFF_MS * 1000000L};
			nanosleep(&ts, NULL);
		}
		for (size_t i = 0; i < n; i++)
			kafka_consumer_store(r->consumer, batch[i], err, sizeof err);
		if (kafka_consumer_commit(r->consumer, err, sizeof err) != SFK_OK)
			log_warn("notify relay commit failed error=%s", err);
	drop:
		for (size_t i = 0; i < n; i++)
			rd_kafka_message_destroy(batch[i]);
		n = 0;
	}
	return NULL;
}

struct notify_relay *notify_relay_start(const char *bootstrap, const char *from_topic,
                                        const char *to_topic, const char *group, char *errstr,
                                        size_t errlen)
{
	struct notify_relay *r = xcalloc(1, sizeof *r);
	const char *topics[1] = {from_topic};

	r->from = xstrdup(from_topic);
	r->to = xstrdup(to_topic);
	r->m_records = metrics_counter("sfk_notify_relay_records_total",
	                               "notify.events records relayed to the workload topic "
	                               "(relayed) or skipped as malformed (skipped)",
	                               "outcome");
	if (!(r->producer = kafka_producer_new(bootstrap, NULL, NULL, errstr, errlen)) ||
	    !(r->consumer = kafka_consumer_new(bootstrap, group, NULL, NULL, errstr, errlen)) ||
	    kafka_consumer_subscribe(r->consumer, topics, 1, errstr, errlen) != SFK_OK)
		goto fail;
	if (pthread_create(&r->thread, NULL, run, r) != 0) {
		snprintf(errstr, errlen, "pthread_create failed");
		goto fail;
	}
	log_info("notify relay started from=%s to=%s group=%s", from_topic, to_topic, group);
	return r;
fail:
	kafka_consumer_close(&r->consumer);
	kafka_producer_destroy(&r->producer);
	free(r->from);
	free(r->to);
	free(r);
	return NULL;
}

void notify_relay_stop(struct notify_relay **pr)
{
	struct notify_relay *r = pr ? *pr : NULL;
	if (!r)
		return;
	atomic_store(&r->stop, 1);
	pthread_join(r->thread, NULL);
	kafka_consumer_close(&r->consumer);
	kafka_producer_destroy(&r->producer);
	free(r->from);
	free(r->to);
	free(r);
	*pr = NULL;
}
