/*
 * krange.c - a time range of one topic, read by plain assignment (krange.h).
 */
#include "krange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka.h"
#include "xmem.h"

struct krange {
	rd_kafka_t *rk;
	int np;
	int64_t *end; /* per partition: first offset NOT to read */
	int *done;
	int remaining;
	long long planned;
};

int64_t krange_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void krange_free(struct krange **pk)
{
	struct krange *k = pk ? *pk : NULL;
	if (!k)
		return;
	if (k->rk) {
		rd_kafka_assign(k->rk, NULL);
		rd_kafka_consumer_close(k->rk);
		rd_kafka_destroy(k->rk);
	}
	free(k->end);
	free(k->done);
	free(k);
	*pk = NULL;
}

struct krange *krange_open(const char *bootstrap, const char *topic, int64_t from_ms, int64_t to_ms,
                           int timeout_ms, char *errstr, size_t errlen)
{
	char tmo[48], err[KAFKA_ERRSTR_MAX];
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *start = NULL, *stop = NULL;
	struct krange *k = xcalloc(1, sizeof *k);
	rd_kafka_resp_err_t e;

	snprintf(tmo, sizeof tmo, "socket.timeout.ms=%d", timeout_ms);
	/* No group: nothing is ever committed, no other consumer is disturbed.
	 * librdkafka wants a group.id for a consumer handle; it is never joined. */
	const char *props[] = {tmo,
	                       "group.id=sfk-cli-range",
	                       "enable.auto.commit=false",
	                       "enable.auto.offset.store=false",
	                       "enable.partition.eof=true",
	                       "isolation.level=read_committed",
	                       NULL};
	rd_kafka_conf_t *conf = kafka_conf_new(bootstrap, props, errstr, errlen);
	if (!conf)
		goto fail;
	k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (!k->rk) {
		snprintf(errstr, errlen, "%s", err);
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(k->rk, topic, NULL);
	e = rd_kafka_metadata(k->rk, 0, rkt, &md, timeout_ms);
	rd_kafka_topic_destroy(rkt);
	if (e || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt == 0) {
		snprintf(errstr, errlen, "topic %s: %s", topic,
		         rd_kafka_err2str(e ? e
		                          : md->topic_cnt
		                                  ? (md->topics[0].err
		                                             ? md->topics[0].err
		                                             : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
		                                  : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
		goto fail;
	}
	k->np = md->topics[0].partition_cnt;
	if (k->np > KRANGE_MAX_PARTITIONS)
		k->np = KRANGE_MAX_PARTITIONS;
	k->end = xcalloc((size_t)k->np, sizeof *k->end);
	k->done = xcalloc((size_t)k->np, sizeof *k->done);
	start = rd_kafka_topic_partition_list_new(k->np);
	stop = rd_kafka_topic_partition_list_new(k->np);
	for (int p = 0; p < k->np; p++) {
		rd_kafka_topic_partition_list_add(start, topic, p)->offset = from_ms;
		rd_kafka_topic_partition_list_add(stop, topic, p)->offset = to_ms;
	}
	if ((e = rd_kafka_offsets_for_times(k->rk, start, timeout_ms)) ||
	    (to_ms >= 0 && (e = rd_kafka_offsets_for_times(k->rk, stop, timeout_ms)))) {
		snprintf(errstr, errlen, "topic %s: offsets for times: %s", topic,
		         rd_kafka_err2str(e));
		goto fail;
	}
	for (int p = 0; p < k->np; p++) {
		int64_t lo = 0, hi = 0;
		if ((e = rd_kafka_query_watermark_offsets(k->rk, topic, p, &lo, &hi, timeout_ms))) {
			snprintf(errstr, errlen, "topic %s [%d]: watermarks: %s", topic, p,
			         rd_kafka_err2str(e));
			goto fail;
		}
		/* no record at or after the time: the end */
		if (start->elems[p].offset < 0)
			start->elems[p].offset = hi;
		k->end[p] = to_ms >= 0 && stop->elems[p].offset >= 0 ? stop->elems[p].offset : hi;
		if (k->end[p] <= start->elems[p].offset)
			k->done[p] = 1;
		else {
			k->remaining++;
			k->planned += k->end[p] - start->elems[p].offset;
		}
	}
	if ((e = rd_kafka_assign(k->rk, start))) {
		snprintf(errstr, errlen, "topic %s: assign: %s", topic, rd_kafka_err2str(e));
		goto fail;
	}
	rd_kafka_topic_partition_list_destroy(start);
	rd_kafka_topic_partition_list_destroy(stop);
	rd_kafka_metadata_destroy(md);
	return k;
fail:
	if (start)
		rd_kafka_topic_partition_list_destroy(start);
	if (stop)
		rd_kafka_topic_partition_list_destroy(stop);
	if (md)
		rd_kafka_metadata_destroy(md);
	krange_free(&k);
	return NULL;
}

long long krange_planned(const struct krange *k)
{
	return k->planned;
}

int krange_next(struct krange *k, rd_kafka_message_t **msg, int64_t deadline_ms, char *errstr,
                size_t errlen)
{
	*msg = NULL;
	while (k->remaining > 0) {
		if (deadline_ms > 0 && krange_now_ms() > deadline_ms) {
			snprintf(errstr, errlen,
			         "timed out with %d partition(s) not read to the end",
			         k->remaining);
			return -1;
		}
		rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, 200);
		if (!m)
			continue;
		int p = m->partition;
		if (p < 0 || p >= k->np || k->done[p]) {
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			/* Everything committed is read: transaction markers or aborted
			 * records may sit between here and the watermark. */
			k->done[p] = 1;
			k->remaining--;
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err) {
			snprintf(errstr, errlen, "%s", rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			return -1;
		}
		if (m->offset >= k->end[p]) {
			k->done[p] = 1;
			k->remaining--;
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->offset + 1 >= k->end[p]) {
			k->done[p] = 1;
			k->remaining--;
		}
		*msg = m;
		return 1;
	}
	return 0;
}
