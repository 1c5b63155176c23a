/*
 * loader.c - the consume loop of sfk-loader.
 *
 * One batch at a time, synchronously: poll up to batch_max records (or until
 * the linger time after the first), validate each against the flywheel
 * schema (failures -> DLQ), hand the valid ones to every sink, flush every
 * sink (retrying with backoff while it reports a retriable error), flush the
 * DLQ producer, and only then store and commit the offsets. Nothing is
 * polled while a batch is open, so a rebalance never finds uncommitted work.
 * A crash anywhere before the commit means Kafka redelivers the batch; the
 * sinks are idempotent (JSONL: tail recovery; ES: create with _id).
 */
#include "loader.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "flywheel.h"
#include "jschema.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "xmem.h"

#define LOADER_POLL_MS        500
#define LOADER_BACKOFF_MIN_MS 200
#define LOADER_BACKOFF_MAX_MS 10000
#define LOADER_DLQ_FLUSH_MS   30000

struct item {
	rd_kafka_message_t *m;
	json_t *rec;
	char *line;
	size_t len;
	struct sink_rec sr;
};

struct loader {
	const struct loader_conf *c;
	struct kafka_consumer *cons;
	struct kafka_producer *dlq;
	struct jschema *schema;
	struct admin *admin;
	void *sink[LOADER_MAX_SINKS];
	struct item *items;
	size_t n;
	const char *cur_sink; /* for the reject callback */
	bool dlq_failed;      /* a dead letter could not be queued: do not commit */
	struct metric *m_consumed, *m_dlq, *m_batch, *m_lag, *m_flush_err;
};

static atomic_int g_ready;

static bool ready_loop(void *ctx, char *reason, size_t len)
{
	(void)ctx;
	if (atomic_load(&g_ready))
		return true;
	snprintf(reason, len, "sinks not writable or not consuming yet");
	return false;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Jittered exponential backoff: a random value in [d/2, d], d doubling. */
static long backoff(int attempt)
{
	long d = LOADER_BACKOFF_MIN_MS;
	for (int i = 0; i < attempt && d < LOADER_BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > LOADER_BACKOFF_MAX_MS)
		d = LOADER_BACKOFF_MAX_MS;
	return d / 2 + random() % (d / 2 + 1);
}

/* Produce the original record to the DLQ with the reason in headers. */
static enum sfk_err dead_letter(struct loader *l, const rd_kafka_message_t *m, enum sfk_err why,
                                const char *type, const char *sink, const char *reason)
{
	char src[KAFKA_TOPIC_MAX + 64], err[KAFKA_ERRSTR_MAX];
	const char *code = sfk_err_str(why), *cls = sfk_err_class_str(sfk_err_class(why));
	snprintf(src, sizeof src, "%s/%d@%lld", rd_kafka_topic_name(m->rkt), (int)m->partition,
	         (long long)m->offset);
	struct kafka_header h[] = {
	        {LOADER_HDR_ERROR_CODE, code, strlen(code)},
	        {LOADER_HDR_ERROR_CLASS, cls, strlen(cls)},
	        {LOADER_HDR_ERROR_TYPE, type, strlen(type)},
	        {LOADER_HDR_ERROR_REASON, reason, strlen(reason)},
	        {LOADER_HDR_SINK, sink, strlen(sink)},
	        {LOADER_HDR_SOURCE, src, strlen(src)},
	};
	metric_add(l->m_dlq, 1, type);
	log_warn("dead letter source=%s sink=%s type=%s reason=%s", src, sink, type, reason);
	enum sfk_err rc = kafka_produce(l->dlq, l->c->dlq_topic, m->key, m->key_len, m->payload,
	                                m->len, h, sizeof h / sizeof h[0], err, sizeof err);
	if (rc != SFK_OK) {
		log_error("dead letter not queued error=%s reason=%s", sfk_err_str(rc), err);
		l->dlq_failed = true;
	}
	return rc;
}

static void on_reject(void *ctx, size_t idx, const char *type, const char *reason)
{
	struct loader *l = ctx;
	if (idx < l->n)
		dead_letter(l, l->items[idx].m, SFK_ERR_INVALID, type, l->cur_sink, reason);
}

/* Parse and validate one record; on success fills it->sr. Returns false
 * (after dead-lettering it) when the record is not a valid flywheel record. */
static bool admit(struct loader *l, struct item *it, size_t idx)
{
	const rd_kafka_message_t *m = it->m;
	char reason[2048];
	json_error_t je;
	if (m->len > LOADER_RECORD_MAX) {
		snprintf(reason, sizeof reason, "record of %zu bytes exceeds %d", m->len,
		         LOADER_RECORD_MAX);
		dead_letter(l, m, SFK_ERR_TOO_LARGE, "too_large", "loader", reason);
		return false;
	}
	it->rec = m->payload ? json_loadb(m->payload, m->len, 0, &je) : NULL;
	if (!json_is_object(it->rec)) {
		snprintf(reason, sizeof reason, "not a JSON object: %s",
		         m->payload ? je.text : "null value");
		dead_letter(l, m, SFK_ERR_PARSE, "parse", "loader", reason);
		return false;
	}
	json_t *errs = NULL;
	if (flywheel_validate(l->schema, it->rec, &errs) != 0) {
		size_t off = 0, i;
		json_t *e;
		reason[0] = '\0';
		json_array_foreach(errs, i, e)
		{
			int w = snprintf(reason + off, sizeof reason - off, "%s%s", i ? "; " : "",
			                 json_string_value(e));
			if (w < 0 || (size_t)w >= sizeof reason - off)
				break;
			off += (size_t)w;
		}
		json_decref(errs);
		dead_letter(l, m, SFK_ERR_INVALID, "schema", "loader", reason);
		return false;
	}
	json_t *md = json_object_get(json_object_get(it->rec, "request"), "metadata");
	it->line = json_dumps(it->rec, JSON_COMPACT);
	if (!it->line) {
		dead_letter(l, m, SFK_ERR_PARSE, "parse", "loader", "cannot serialize");
		return false;
	}
	it->len = strlen(it->line);
	it->sr = (struct sink_rec){
	        .rec = it->rec,
	        .line = it->line,
	        .len = it->len,
	        .decision_id = json_string_value(json_object_get(md, "decision_id")),
	        .workload_id = json_string_value(json_object_get(it->rec, "workload_id")),
	        .timestamp = json_integer_value(json_object_get(it->rec, "timestamp")),
	        .idx = idx,
	};
	return true;
}

static void clear_batch(struct loader *l)
{
	for (size_t i = 0; i < l->n; i++) {
		rd_kafka_message_destroy(l->items[i].m);
		json_decref(l->items[i].rec);
		free(l->items[i].line);
	}
	memset(l->items, 0, l->n * sizeof *l->items);
	l->n = 0;
}

/*
 * Partitions are being taken away while a batch is filling (a rebalance
 * inside kafka_consumer_poll): drop the records of those partitions from
 * the batch unprocessed. Their offsets were not committed, so the new
 * owner starts at them; processing them here as well would write them twice
 * (into another loader's directory). Everything before this batch is
 * already committed, so there is nothing else to finish.
 */
static void on_revoke(struct kafka_consumer *c, const rd_kafka_topic_partition_list_t *parts,
                      int lost, void *opaque)
{
	struct loader *l = opaque;
	size_t kept = 0, dropped = 0;
	(void)c;
	for (size_t i = 0; i < l->n; i++) {
		rd_kafka_message_t *m = l->items[i].m;
		bool gone = false;
		for (int k = 0; k < parts->cnt && !gone; k++)
			gone = parts->elems[k].partition == m->partition &&
			       strcmp(parts->elems[k].topic, rd_kafka_topic_name(m->rkt)) == 0;
		if (gone) {
			rd_kafka_message_destroy(m);
			dropped++;
		} else {
			l->items[kept++].m = m;
		}
	}
	l->n = kept;
	if (dropped)
		log_info("batch records dropped on revoke count=%zu lost=%d", dropped, lost);
}

/* Fill the batch. Returns 0 (maybe empty), or 1 on a fatal consumer error. */
static int fill(struct loader *l)
{
	char err[KAFKA_ERRSTR_MAX];
	double first = 0;
	while (l->n < l->c->batch_max && !*l->c->stop) {
		long wait = LOADER_POLL_MS;
		if (l->n) {
			double left = (double)l->c->linger_ms / 1000.0 - (now_s() - first);
			if (left <= 0)
				break;
			wait = (long)(left * 1000.0) + 1;
		}
		rd_kafka_message_t *m = NULL;
		enum sfk_err rc = kafka_consumer_poll(l->cons, (int)wait, &m, err, sizeof err);
		if (rc == SFK_ERR_KAFKA_FATAL) {
			log_error("kafka consumer fatal error reason=%s", err);
			return 1;
		}
		if (!m) {
			if (l->n == 0)
				return 0;
			continue;
		}
		if (l->n == 0)
			first = now_s();
		l->items[l->n++].m = m;
	}
	return 0;
}

/* Process and commit the batch. Returns 0, -1 when stopped before the
 * commit (nothing lost: redelivered), or an exit status >0 on a fatal error. */
static int process(struct loader *l)
{
	char err[2048];
	int64_t newest = 0;
	metric_add(l->m_consumed, (double)l->n);
	bool *ok = xcalloc(l->n, sizeof *ok);
	for (size_t i = 0; i < l->n; i++) {
		ok[i] = admit(l, &l->items[i], i);
		if (ok[i] && l->items[i].sr.timestamp > newest)
			newest = l->items[i].sr.timestamp;
	}
	int ret = 0;
	for (size_t k = 0; k < l->c->nsinks; k++) {
		const struct sink_ops *ops = l->c->sinks[k];
		double t0 = now_s();
		l->cur_sink = ops->name;
		for (size_t i = 0; i < l->n; i++) {
			if (!ok[i])
				continue;
			enum sfk_err rc = ops->write(l->sink[k], &l->items[i].sr, err, sizeof err);
			if (rc == SFK_OK)
				continue;
			if (sfk_err_class(rc) == SFK_CLASS_PERMANENT) {
				dead_letter(l, l->items[i].m, rc, sfk_err_str(rc), ops->name, err);
				continue;
			}
			/* A sink that cannot take a record mid-batch: restart from
			 * the last commit rather than guess what it kept. */
			log_error("sink write failed sink=%s error=%s reason=%s", ops->name,
			          sfk_err_str(rc), err);
			ret = 1;
			goto out;
		}
		for (int attempt = 0;; attempt++) {
			enum sfk_err rc = ops->flush(l->sink[k], on_reject, l, err, sizeof err);
			if (rc == SFK_OK)
				break;
			metric_add(l->m_flush_err, 1, ops->name);
			atomic_store(&g_ready, 0);
			if (sfk_err_class(rc) != SFK_CLASS_RETRIABLE) {
				log_error("sink flush failed sink=%s error=%s reason=%s", ops->name,
				          sfk_err_str(rc), err);
				ret = 1;
				goto out;
			}
			log_warn(
			        "sink flush failed, retrying sink=%s attempt=%d error=%s reason=%s",
			        ops->name, attempt + 1, sfk_err_str(rc), err);
			if (*l->c->stop) {
				ret = -1;
				goto out;
			}
			sleep_ms(backoff(attempt));
		}
		metric_observe(l->m_batch, now_s() - t0, ops->name);
	}
	for (int attempt = 0;; attempt++) {
		enum sfk_err rc =
		        kafka_producer_flush(l->dlq, LOADER_DLQ_FLUSH_MS, err, sizeof err);
		if (rc == SFK_OK)
			break;
		log_error("dead letters not delivered error=%s reason=%s", sfk_err_str(rc), err);
		if (sfk_err_class(rc) == SFK_CLASS_FATAL || rc == SFK_ERR_INVALID ||
		    rc == SFK_ERR_TOO_LARGE) {
			/* A delivery failure is reported once and forgotten by
			 * the producer: we cannot tell which record it was. */
			ret = 1;
			goto out;
		}
		if (*l->c->stop) {
			ret = -1;
			goto out;
		}
		sleep_ms(backoff(attempt));
	}
	for (size_t i = 0; i < l->n; i++)
		kafka_consumer_store(l->cons, l->items[i].m, err, sizeof err);
	for (int attempt = 0;; attempt++) {
		enum sfk_err rc = kafka_consumer_commit(l->cons, err, sizeof err);
		if (rc == SFK_OK)
			break;
		log_warn("offset commit failed error=%s reason=%s", sfk_err_str(rc), err);
		if (sfk_err_class(rc) == SFK_CLASS_FATAL) {
			ret = 1;
			goto out;
		}
		if (*l->c->stop || attempt >= 5) {
			/* Redelivery is harmless: the sinks skip what they have. */
			break;
		}
		sleep_ms(backoff(attempt));
	}
	atomic_store(&g_ready, 1);
	if (newest > 0) /* clock skew can put a record ahead of us: not negative lag */
		metric_set(l->m_lag, newest < time(NULL) ? (double)(time(NULL) - newest) : 0.0);
out:
	free(ok);
	return ret;
}

int loader_run(const struct loader_conf *c)
{
	struct loader L;
	char err[4096];
	int rc = 1;
	memset(&L, 0, sizeof L);
	L.c = c;
	L.m_consumed = metrics_counter("sfk_loader_records_consumed_total",
	                               "Records read from the flywheel topic", NULL);
	L.m_dlq = metrics_counter("sfk_loader_dlq_total",
	                          "Records sent to the loader DLQ by reason", "reason");
	L.m_batch = metrics_histogram("sfk_loader_batch_duration_seconds",
	                              "Time for a sink to take and make durable one batch", "sink",
	                              metrics_latency_buckets, metrics_latency_nbuckets);
	L.m_lag = metrics_gauge("sfk_loader_lag_seconds",
	                        "Now minus the newest record timestamp of the last batch", NULL);
	L.m_flush_err = metrics_counter("sfk_loader_flush_errors_total",
	                                "Failed sink flushes (retried)", "sink");
	metrics_register_build_info(SFK_VERSION);
	L.items = xcalloc(c->batch_max, sizeof *L.items);

	struct admin_opts ao = {.addr = c->admin_addr};
	if (!(L.admin = admin_new(&ao, err, sizeof err))) {
		log_error("admin server error=%s", err);
		rc = 78;
		goto out;
	}
	admin_ready_check(L.admin, "loader", ready_loop, &L);
	if (admin_start(L.admin, err, sizeof err) != SFK_OK) {
		log_error("admin server error=%s", err);
		goto out;
	}
	if (!(L.schema = jschema_load(c->schema_path, err, sizeof err))) {
		log_error("flywheel schema error=%s", err);
		rc = 78;
		goto out;
	}
	for (size_t k = 0; k < c->nsinks; k++) {
		if (!(L.sink[k] = c->sinks[k]->open(&c->sink, err, sizeof err))) {
			log_error("sink open failed sink=%s reason=%s", c->sinks[k]->name, err);
			goto out;
		}
		log_info("sink open sink=%s", c->sinks[k]->name);
	}
	if (!(L.dlq = kafka_producer_new(c->bootstrap, NULL, NULL, err, sizeof err))) {
		log_error("kafka producer error=%s", err);
		rc = 78;
		goto out;
	}
	struct kafka_revoke_hook hook = {on_revoke, &L};
	if (!(L.cons = kafka_consumer_new(c->bootstrap, c->group, NULL, &hook, err, sizeof err))) {
		log_error("kafka consumer error=%s", err);
		rc = 78;
		goto out;
	}
	if (kafka_consumer_subscribe(L.cons, &c->topic, 1, err, sizeof err) != SFK_OK) {
		log_error("kafka subscribe error=%s", err);
		goto out;
	}
	atomic_store(&g_ready, 1);
	log_info("loader running topic=%s group=%s sinks=%zu batch_max=%zu", c->topic, c->group,
	         c->nsinks, c->batch_max);
	srandom((unsigned)(time(NULL) ^ getpid()));
	rc = 0;
	while (!*c->stop) {
		for (size_t k = 0; k < c->nsinks; k++)
			if (c->sinks[k]->tick)
				c->sinks[k]->tick(L.sink[k]);
		if (fill(&L) != 0) {
			rc = 1;
			break;
		}
		if (L.n == 0)
			continue;
		int r = process(&L);
		clear_batch(&L);
		if (r > 0) {
			rc = r;
			break;
		}
	}
	log_info("loader stopping");
out:
	clear_batch(&L);
	kafka_consumer_close(&L.cons); /* nothing uncommitted is in flight */
	kafka_producer_destroy(&L.dlq);
	for (size_t k = 0; k < c->nsinks; k++)
		if (L.sink[k])
			c->sinks[k]->close(&L.sink[k]);
	jschema_free(L.schema);
	admin_free(&L.admin);
	free(L.items);
	return rc;
}
