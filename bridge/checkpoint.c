/*
 * checkpoint.c - read the checkpoint topic back (see checkpoint.h).
 *
 * A plain assigned consumer (no group, nothing committed): the topic is
 * small and compacted, and reading it whole is the only way to know the
 * last value per key. enable.partition.eof tells us when each partition's
 * end (the last stable offset, with read_committed) is reached.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "checkpoint.h"
#include "kafka.h"
#include "log.h"
#include "publish.h"
#include "resync.h"
#include "xmem.h"

/* Retries (200 ms apart) while a new checkpoint topic gets its leaders. */
#define CHECKPOINT_LEADER_RETRIES 50

/* Most partitions of the checkpoint topic we read (it has 1 by design). */
#define CHECKPOINT_MAX_PARTITIONS 64

struct entry {
	char key[PUBLISH_CHANNEL_MAX];
	json_t *value; /* owned; NULL = forgotten (tombstone) */
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int is_channel_key(const char *key)
{
	return strncmp(key, RESYNC_KEY_PREFIX, strlen(RESYNC_KEY_PREFIX)) != 0 &&
	       strncmp(key, POLL_KEY_PREFIX, strlen(POLL_KEY_PREFIX)) != 0;
}

/* value: new reference (taken) or NULL for a tombstone. */
static void remember(struct entry *e, size_t *n, const char *key, json_t *value)
{
	size_t i;
	for (i = 0; i < *n; i++)
		if (strcmp(e[i].key, key) == 0)
			break;
	if (i == *n) {
		if (*n == CHECKPOINT_MAX_KEYS) {
			log_warn("checkpoint: more keys than %d, ignoring key=%s",
			         CHECKPOINT_MAX_KEYS, key);
			json_decref(value);
			return;
		}
		snprintf(e[i].key, sizeof e[i].key, "%s", key);
		e[i].value = NULL;
		(*n)++;
	}
	json_decref(e[i].value);
	e[i].value = value;
}

/* The value of one record, or NULL if malformed (logged by the caller). */
static json_t *parse_value(const char *key, const char *payload, size_t len)
{
	char ch[PUBLISH_CHANNEL_MAX];
	int64_t rid;
	if (is_channel_key(key) &&
	    (publish_checkpoint_parse(payload, len, ch, sizeof ch, &rid) != 0 ||
	     strcmp(ch, key) != 0))
		return NULL;
	json_t *v = json_loadb(payload, len, 0, NULL);
	if (!json_is_object(v)) {
		json_decref(v);
		return NULL;
	}
	return v;
}

enum sfk_err checkpoint_load(const char *bootstrap, const char *const *props, const char *topic,
                             int timeout_ms, checkpoint_fn fn, void *ctx, size_t *found,
                             char *errstr, size_t errlen)
{
	static const char *const fixed[] = {
	        "group.id=sfk-bridge-checkpoint-reader", /* required by librdkafka; never joined */
	        "enable.auto.commit=false",
	        "enable.auto.offset.store=false",
	        "isolation.level=read_committed",
	        "enable.partition.eof=true",
	        NULL,
	};
	struct entry *entries = NULL;
	size_t n = 0, eofs = 0, nparts = 0;
	rd_kafka_t *rk = NULL;
	rd_kafka_topic_partition_list_t *parts = NULL;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = NULL;
	enum sfk_err rc = SFK_OK;
	char err[512];
	int64_t deadline = mono_ms() + timeout_ms;

	*found = 0;
	rd_kafka_conf_t *conf = kafka_conf_new(bootstrap, fixed, errstr, errlen);
	if (!conf)
		return SFK_ERR_CONFIG;
	if (props && kafka_conf_apply_pairs(conf, props, errstr, errlen) > 0) {
		rd_kafka_conf_destroy(conf);
		return SFK_ERR_CONFIG;
	}
	if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err))) {
		rd_kafka_conf_destroy(conf);
		snprintf(errstr, errlen, "checkpoint reader: %s", err);
		return SFK_ERR_KAFKA_FATAL;
	}
	entries = xcalloc(CHECKPOINT_MAX_KEYS, sizeof *entries);
	rkt = rd_kafka_topic_new(rk, topic, NULL);
	rd_kafka_resp_err_t ke = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
	if (ke != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(errstr, errlen, "checkpoint topic %s metadata: %s", topic,
		         rd_kafka_err2str(ke));
		rc = kafka_err_map(ke) == SFK_OK ? SFK_ERR_KAFKA : kafka_err_map(ke);
		goto out;
	}
	if (md->topic_cnt != 1 || md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
	    md->topics[0].partition_cnt == 0) {
		log_warn("checkpoint topic missing; starting without checkpoints topic=%s", topic);
		goto out;
	}
	if (md->topics[0].err) {
		snprintf(errstr, errlen, "checkpoint topic %s: %s", topic,
		         rd_kafka_err2str(md->topics[0].err));
		rc = SFK_ERR_KAFKA;
		goto out;
	}
	parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
	for (int i = 0; i < md->topics[0].partition_cnt && i < CHECKPOINT_MAX_PARTITIONS; i++) {
		int64_t lo = 0, hi = 0;
		int32_t pid = md->topics[0].partitions[i].id;
		/* A topic created moments ago may not have partition leaders yet
		 * (NOT_LEADER / LEADER_NOT_AVAILABLE): that passes within seconds,
		 * so retry those for a while instead of failing start-up. */
		for (int attempt = 0;; attempt++) {
			ke = rd_kafka_query_watermark_offsets(rk, topic, pid, &lo, &hi, timeout_ms);
			if (!ke || attempt >= CHECKPOINT_LEADER_RETRIES ||
			    (ke != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
			     ke != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
			     ke != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
			     ke != RD_KAFKA_RESP_ERR__TRANSPORT &&
			     ke != RD_KAFKA_RESP_ERR__TIMED_OUT))
				break;
			usleep(200 * 1000);
		}
		if (ke) {
			snprintf(errstr, errlen, "checkpoint topic %s[%d] offsets: %s", topic, pid,
			         rd_kafka_err2str(ke));
			rc = SFK_ERR_KAFKA;
			goto out;
		}
		if (hi <= lo)
			continue; /* empty partition: nothing to read, no EOF to wait for */
		rd_kafka_topic_partition_list_add(parts, topic, pid)->offset =
		        RD_KAFKA_OFFSET_BEGINNING;
		nparts++;
	}
	if (nparts == 0)
		goto out;
	if ((ke = rd_kafka_assign(rk, parts)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(errstr, errlen, "checkpoint assign: %s", rd_kafka_err2str(ke));
		rc = SFK_ERR_KAFKA;
		goto out;
	}
	while (eofs < nparts) {
		int64_t left = deadline - mono_ms();
		if (left <= 0) {
			snprintf(errstr, errlen, "checkpoint topic %s not read to its end in %d ms",
			         topic, timeout_ms);
			rc = SFK_ERR_TIMEOUT;
			goto out;
		}
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, left < 200 ? (int)left : 200);
		if (!m)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			eofs++;
		} else if (m->err) {
			log_warn("checkpoint reader error=%s", rd_kafka_message_errstr(m));
		} else if (m->key_len > 0 && m->key_len < PUBLISH_CHANNEL_MAX) {
			char key[PUBLISH_CHANNEL_MAX];
			memcpy(key, m->key, m->key_len);
			key[m->key_len] = '\0';
			json_t *v = NULL;
			if (!m->payload)
				remember(entries, &n, key, NULL); /* tombstone */
			else if ((v = parse_value(key, m->payload, m->len)))
				remember(entries, &n, key, v);
			else
				log_warn("checkpoint: malformed record skipped key=%s "
				         "offset=%lld",
				         key, (long long)m->offset);
		}
		rd_kafka_message_destroy(m);
	}
	for (size_t i = 0; i < n; i++) {
		if (!entries[i].value)
			continue;
		json_t *v = entries[i].value;
		json_t *rid = json_object_get(v, "replay_id");
		struct checkpoint_record r = {
		        .key = entries[i].key,
		        .replay_id = is_channel_key(entries[i].key) && json_is_integer(rid)
		                             ? json_integer_value(rid)
		                             : -1,
		        .committed_at = json_integer_value(json_object_get(v, "committed_at")),
		        .value = v,
		};
		fn(ctx, &r);
		(*found)++;
	}
out:
	if (parts)
		rd_kafka_topic_partition_list_destroy(parts);
	if (md)
		rd_kafka_metadata_destroy(md);
	if (rkt)
		rd_kafka_topic_destroy(rkt);
	if (rk) {
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
	}
	for (size_t i = 0; i < n; i++)
		json_decref(entries[i].value);
	free(entries);
	return rc;
}
