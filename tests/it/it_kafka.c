/*
 * Integration tests for common/kafka against the broker in
 * KAFKA_BOOTSTRAP_SERVERS (a real Apache Kafka from tests/stack/up, or
 * sfk-devkafka via it_kafka_mock.sh). Every run uses fresh topic and group
 * names, created with the admin helper.
 *
 * With SFK_KAFKA_KIND=mock (sfk-devkafka) the test says what it skips:
 * librdkafka 2.0.2's mock cluster has no CreateTopics and writes no
 * transaction markers, so aborted records stay visible there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kafka.h"
#include "metrics.h"

#define NRECORDS   10
#define DEADLINE_S 60 /* per wait; a real broker's first group join takes seconds */

static const char *bootstrap;
/* The mock cluster of librdkafka 2.0.2 does not end a departed member's
 * session on LeaveGroup, so the next join waits for session.timeout.ms
 * (45 s by default); 6 s is the real broker's minimum. */
static const char *const consumer_props[] = {"session.timeout.ms=6000", "heartbeat.interval.ms=500",
                                             NULL};
static char run_id[64];

static int setup(void **state)
{
	(void)state;
	bootstrap = getenv("KAFKA_BOOTSTRAP_SERVERS");
	if (!bootstrap || !*bootstrap) {
		fprintf(stderr, "it_kafka: KAFKA_BOOTSTRAP_SERVERS is not set; start a broker with "
		                "eval \"$(tests/stack/up kafka)\" or run it_kafka_mock.sh\n");
		return -1;
	}
	snprintf(run_id, sizeof run_id, "%ld-%ld", (long)getpid(), (long)time(NULL));
	fprintf(stderr, "it_kafka: broker %s kind=%s run=%s\n", bootstrap,
	        getenv("SFK_KAFKA_KIND") ? getenv("SFK_KAFKA_KIND") : "?", run_id);
	return 0;
}

static int is_mock(void)
{
	const char *kind = getenv("SFK_KAFKA_KIND");
	return kind && strcmp(kind, "mock") == 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void create_topic(const char *name, int partitions)
{
	char err[KAFKA_ERRSTR_MAX * 2];
	const char *config[] = {"retention.ms=3600000", NULL};
	struct kafka_topic_spec spec = {name, partitions, 1, config};
	struct kafka_admin *a = kafka_admin_new(bootstrap, NULL, err, sizeof err);
	struct kafka_topic_info *info = NULL;
	size_t n = 0;

	assert_non_null(a);
	if (is_mock()) {
		/* librdkafka 2.0.2's mock cluster implements no CreateTopics
		 * (and Metadata only up to v2, without a controller): its topics
		 * are auto-created, 4 partitions, when first produced to. */
		printf("NOTE: mock cluster: %s not created with the admin helper (no CreateTopics "
		       "in librdkafka 2.0.2's mock), auto-created on first produce\n",
		       name);
		kafka_admin_destroy(&a);
		return;
	}
	if (kafka_admin_create_topics(a, &spec, 1, 30000, err, sizeof err) != SFK_OK)
		fail_msg("create %s: %s", name, err);
	/* idempotent: creating it again is fine */
	if (kafka_admin_create_topics(a, &spec, 1, 30000, err, sizeof err) != SFK_OK)
		fail_msg("re-create %s: %s", name, err);
	/* metadata may lag the creation a little: poll for it */
	for (double end = now_s() + DEADLINE_S;; usleep(200000)) {
		enum sfk_err rc = kafka_admin_describe(a, name, 5000, &info, &n, err, sizeof err);
		if (rc == SFK_OK && info[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
		    info[0].partitions == partitions)
			break;
		free(info);
		info = NULL;
		if (now_s() > end)
			fail_msg("topic %s never appeared in metadata: %s", name, err);
	}
	assert_int_equal(n, 1);
	assert_string_equal(info[0].name, name);
	free(info);
	kafka_admin_destroy(&a);
	assert_null(a);
}

/* Revoke hook: count calls and commit what is stored, as a worker would. */
struct hook_state {
	int calls;
	int commit_failures;
};

static void on_revoke(struct kafka_consumer *c, const rd_kafka_topic_partition_list_t *parts,
                      int lost, void *opaque)
{
	struct hook_state *hs = opaque;
	char err[KAFKA_ERRSTR_MAX];
	(void)parts;
	hs->calls++;
	if (!lost && kafka_consumer_commit(c, err, sizeof err) != SFK_OK)
		hs->commit_failures++;
}

static int key_index(const rd_kafka_message_t *m)
{
	char buf[16];
	char *end;
	long v;
	if (!m->key || m->key_len < 2 || m->key_len >= sizeof buf)
		return -1;
	memcpy(buf, m->key, m->key_len);
	buf[m->key_len] = '\0';
	if (buf[0] != 'k')
		return -1;
	v = strtol(buf + 1, &end, 10);
	return (*end || v < 0 || v >= NRECORDS) ? -1 : (int)v;
}

/* Produce NRECORDS keyed records with headers; consumer A takes half of
 * them and commits; consumer B in the same group then gets exactly the
 * other half: nothing before the committed offsets, nothing lost. */
static void roundtrip_group_resumes_after_commit(void **state)
{
	(void)state;
	char topic[128], group[128], err[KAFKA_ERRSTR_MAX];
	const char *topics[1] = {topic};
	int seen_a[NRECORDS] = {0}, seen_b[NRECORDS] = {0}, got_a = 0, got_b = 0;
	struct hook_state hs = {0};
	struct kafka_revoke_hook hook = {on_revoke, &hs};
	struct kafka_producer *p;
	struct kafka_consumer *c;
	rd_kafka_message_t *m;
	double end;

	snprintf(topic, sizeof topic, "sfk.it.roundtrip.%s", run_id);
	snprintf(group, sizeof group, "sfk-it-group-%s", run_id);
	create_topic(topic, 3);

	p = kafka_producer_new(bootstrap, NULL, NULL, err, sizeof err);
	if (!p)
		fail_msg("producer: %s", err);
	for (int i = 0; i < NRECORDS; i++) {
		char key[16], val[32];
		struct kafka_header h[2] = {{"entity", "Lead", 4}, {"event_id", val, 0}};
		snprintf(key, sizeof key, "k%d", i);
		snprintf(val, sizeof val, "value-%d", i);
		h[1].len = strlen(val);
		if (kafka_produce(p, topic, key, strlen(key), val, strlen(val), h, 2, err,
		                  sizeof err) != SFK_OK)
			fail_msg("produce: %s", err);
	}
	if (kafka_producer_flush(p, 30000, err, sizeof err) != SFK_OK)
		fail_msg("flush: %s", err);
	kafka_producer_destroy(&p);
	assert_null(p);

	/* Consumer A: take NRECORDS/2 records, store and commit them. */
	c = kafka_consumer_new(bootstrap, group, consumer_props, &hook, err, sizeof err);
	if (!c)
		fail_msg("consumer A: %s", err);
	assert_int_equal(kafka_consumer_subscribe(c, topics, 1, err, sizeof err), SFK_OK);
	for (end = now_s() + DEADLINE_S; got_a < NRECORDS / 2;) {
		const void *hv;
		size_t hlen;
		rd_kafka_headers_t *hdrs;
		int k;
		enum sfk_err rc = kafka_consumer_poll(c, 500, &m, err, sizeof err);
		if (now_s() > end)
			fail_msg("consumer A got %d of %d records in %d s", got_a, NRECORDS / 2,
			         DEADLINE_S);
		if (rc == SFK_ERR_KAFKA)
			continue; /* transient (e.g. group coordinator loading) */
		assert_int_equal(rc, SFK_OK);
		if (!m)
			continue;
		k = key_index(m);
		assert_true(k >= 0);
		assert_false(seen_a[k]);
		seen_a[k] = 1;
		got_a++;
		/* what was produced is what arrives: value and headers */
		{
			char want[32];
			snprintf(want, sizeof want, "value-%d", k);
			assert_int_equal(m->len, strlen(want));
			assert_memory_equal(m->payload, want, m->len);
			assert_int_equal(rd_kafka_message_headers(m, &hdrs),
			                 RD_KAFKA_RESP_ERR_NO_ERROR);
			assert_int_equal(rd_kafka_header_get_last(hdrs, "entity", &hv, &hlen), 0);
			assert_int_equal(hlen, 4);
			assert_memory_equal(hv, "Lead", 4);
			assert_int_equal(rd_kafka_header_get_last(hdrs, "event_id", &hv, &hlen), 0);
			assert_int_equal(hlen, strlen(want));
			assert_memory_equal(hv, want, hlen);
		}
		assert_int_equal(kafka_consumer_store(c, m, err, sizeof err), SFK_OK);
		rd_kafka_message_destroy(m);
	}
	if (kafka_consumer_commit(c, err, sizeof err) != SFK_OK)
		fail_msg("commit: %s", err);
	kafka_consumer_close(&c);
	assert_null(c);
	assert_true(hs.calls >= 1); /* close revoked the assignment through the hook */
	assert_int_equal(hs.commit_failures, 0);

	/* Consumer B, same group: resumes after the committed offsets. A
	 * committed record redelivered would come before the later ones of its
	 * partition, so it would show up before B completes its half. */
	hs.calls = 0;
	c = kafka_consumer_new(bootstrap, group, consumer_props, &hook, err, sizeof err);
	if (!c)
		fail_msg("consumer B: %s", err);
	assert_int_equal(kafka_consumer_subscribe(c, topics, 1, err, sizeof err), SFK_OK);
	for (end = now_s() + DEADLINE_S; got_b < NRECORDS - got_a;) {
		int k;
		enum sfk_err rc = kafka_consumer_poll(c, 500, &m, err, sizeof err);
		if (now_s() > end)
			fail_msg("consumer B got %d of %d records in %d s", got_b, NRECORDS - got_a,
			         DEADLINE_S);
		if (rc == SFK_ERR_KAFKA)
			continue;
		assert_int_equal(rc, SFK_OK);
		if (!m)
			continue;
		k = key_index(m);
		assert_true(k >= 0);
		if (seen_a[k])
			fail_msg("consumer B got k%d, committed by consumer A", k);
		assert_false(seen_b[k]);
		seen_b[k] = 1;
		got_b++;
		assert_int_equal(kafka_consumer_store(c, m, err, sizeof err), SFK_OK);
		rd_kafka_message_destroy(m);
	}
	for (int i = 0; i < NRECORDS; i++)
		assert_true(seen_a[i] + seen_b[i] == 1);
	kafka_consumer_close(&c);
}

/* Read topic with a fresh read_committed group until `want` records whose
 * value starts with "committed-" arrived; fail on any "aborted-" record. */
static void read_committed_expect(const char *topic, const char *tag, int want)
{
	char group[128], err[KAFKA_ERRSTR_MAX];
	const char *topics[1] = {topic};
	struct kafka_consumer *c;
	rd_kafka_message_t *m;
	int got = 0;

	snprintf(group, sizeof group, "sfk-it-%s-%s", tag, run_id);
	c = kafka_consumer_new(bootstrap, group, consumer_props, NULL, err, sizeof err);
	if (!c)
		fail_msg("consumer: %s", err);
	assert_int_equal(kafka_consumer_subscribe(c, topics, 1, err, sizeof err), SFK_OK);
	for (double end = now_s() + DEADLINE_S; got < want;) {
		enum sfk_err rc = kafka_consumer_poll(c, 500, &m, err, sizeof err);
		if (now_s() > end)
			fail_msg("read_committed consumer got %d of %d committed records", got,
			         want);
		if (rc == SFK_ERR_KAFKA)
			continue;
		assert_int_equal(rc, SFK_OK);
		if (!m)
			continue;
		if (m->len >= 8 && memcmp(m->payload, "aborted-", 8) == 0)
			fail_msg("read_committed consumer saw an aborted record: %.*s", (int)m->len,
			         (const char *)m->payload);
		assert_true(m->len >= 10 && memcmp(m->payload, "committed-", 10) == 0);
		got++;
		rd_kafka_message_destroy(m);
	}
	kafka_consumer_close(&c);
}

/* An aborted transaction's records are never seen by a read_committed
 * consumer; a committed one's are. Single partition: the aborted records
 * come first in the log, so they would be delivered before the committed. */
static void transaction_abort_invisible_commit_visible(void **state)
{
	(void)state;
	char topic[128], txid[128], err[KAFKA_ERRSTR_MAX];
	struct kafka_producer *p;

	if (is_mock()) {
		printf("SKIPPED on the mock cluster: librdkafka 2.0.2's mock accepts "
		       "EndTxn(abort) but writes no transaction markers, so aborted records "
		       "stay visible to read_committed consumers. Runs against the real broker.\n");
		skip();
	}
	snprintf(topic, sizeof topic, "sfk.it.txn.%s", run_id);
	snprintf(txid, sizeof txid, "sfk-it-tx-%s", run_id);
	create_topic(topic, 1);

	p = kafka_producer_new(bootstrap, txid, NULL, err, sizeof err);
	if (!p)
		fail_msg("producer: %s", err);
	if (kafka_producer_txn_init(p, err, sizeof err) != SFK_OK)
		fail_msg("init: %s", err);

	assert_int_equal(kafka_producer_txn_begin(p, err, sizeof err), SFK_OK);
	for (int i = 0; i < 3; i++) {
		char v[32];
		snprintf(v, sizeof v, "aborted-%d", i);
		if (kafka_produce(p, topic, "k", 1, v, strlen(v), NULL, 0, err, sizeof err) !=
		    SFK_OK)
			fail_msg("produce: %s", err);
	}
	/* Make the broker hold them (abort would otherwise just purge them
	 * from the local queue and the broker-side abort went untested). */
	if (kafka_producer_flush(p, 30000, err, sizeof err) != SFK_OK)
		fail_msg("flush in transaction: %s", err);
	if (kafka_producer_txn_abort(p, err, sizeof err) != SFK_OK)
		fail_msg("abort: %s", err);

	/* Aborted while still queued locally: librdkafka purges them. */
	assert_int_equal(kafka_producer_txn_begin(p, err, sizeof err), SFK_OK);
	for (int i = 0; i < 3; i++) {
		char v[32];
		snprintf(v, sizeof v, "aborted-queued-%d", i);
		if (kafka_produce(p, topic, "k", 1, v, strlen(v), NULL, 0, err, sizeof err) !=
		    SFK_OK)
			fail_msg("produce: %s", err);
	}
	if (kafka_producer_txn_abort(p, err, sizeof err) != SFK_OK)
		fail_msg("abort: %s", err);

	assert_int_equal(kafka_producer_txn_begin(p, err, sizeof err), SFK_OK);
	for (int i = 0; i < 3; i++) {
		char v[32];
		snprintf(v, sizeof v, "committed-%d", i);
		if (kafka_produce(p, topic, "k", 1, v, strlen(v), NULL, 0, err, sizeof err) !=
		    SFK_OK)
			fail_msg("produce: %s", err);
	}
	/* the purge above is not a delivery failure of this transaction */
	if (kafka_producer_flush(p, 30000, err, sizeof err) != SFK_OK)
		fail_msg("flush in the next transaction: %s", err);
	if (kafka_producer_txn_commit(p, err, sizeof err) != SFK_OK)
		fail_msg("commit: %s", err);

	/* outside a transaction a transactional producer refuses to produce */
	assert_int_not_equal(kafka_produce(p, topic, "k", 1, "x", 1, NULL, 0, err, sizeof err),
	                     SFK_OK);
	kafka_producer_destroy(&p);

	read_committed_expect(topic, "txn-abort", 3);
}

/* The transactional path every bridge batch takes: init, begin, produce,
 * commit; the records then reach a read_committed consumer. Runs on the
 * mock cluster too. */
static void transaction_commit_delivers(void **state)
{
	(void)state;
	char topic[128], txid[128], err[KAFKA_ERRSTR_MAX];
	struct kafka_producer *p;

	snprintf(topic, sizeof topic, "sfk.it.txc.%s", run_id);
	snprintf(txid, sizeof txid, "sfk-it-txc-%s", run_id);
	create_topic(topic, 1);
	p = kafka_producer_new(bootstrap, txid, NULL, err, sizeof err);
	if (!p)
		fail_msg("producer: %s", err);
	if (kafka_producer_txn_init(p, err, sizeof err) != SFK_OK)
		fail_msg("init: %s", err);
	for (int batch = 0; batch < 2; batch++) {
		assert_int_equal(kafka_producer_txn_begin(p, err, sizeof err), SFK_OK);
		for (int i = 0; i < 2; i++) {
			char v[32];
			snprintf(v, sizeof v, "committed-%d-%d", batch, i);
			if (kafka_produce(p, topic, "k", 1, v, strlen(v), NULL, 0, err,
			                  sizeof err) != SFK_OK)
				fail_msg("produce: %s", err);
		}
		if (kafka_producer_txn_commit(p, err, sizeof err) != SFK_OK)
			fail_msg("commit: %s", err);
	}
	kafka_producer_destroy(&p);
	read_committed_expect(topic, "txn-commit", 4);
}

/* sfk_kafka_consumer_lag{topic} shows what the group has not committed:
 * 10 records, 4 committed -> 6 (one partition, so every committed offset
 * is known). */
static void lag_gauge_follows_commits(void **state)
{
	(void)state;
	char topic[128], group[128], err[KAFKA_ERRSTR_MAX];
	const char *topics[1] = {topic};
	struct kafka_producer *p;
	struct kafka_consumer *c;
	struct metric *lag = metrics_gauge("sfk_kafka_consumer_lag", "lag", "topic");
	rd_kafka_message_t *m;
	int got = 0;
	double end;

	snprintf(topic, sizeof topic, "sfk.it.lag.%s", run_id);
	snprintf(group, sizeof group, "sfk-it-lag-%s", run_id);
	create_topic(topic, 1);
	p = kafka_producer_new(bootstrap, NULL, NULL, err, sizeof err);
	if (!p)
		fail_msg("producer: %s", err);
	for (int i = 0; i < NRECORDS; i++)
		assert_int_equal(kafka_produce(p, topic, "k", 1, "v", 1, NULL, 0, err, sizeof err),
		                 SFK_OK);
	if (kafka_producer_flush(p, 30000, err, sizeof err) != SFK_OK)
		fail_msg("flush: %s", err);
	kafka_producer_destroy(&p);

	c = kafka_consumer_new(bootstrap, group, consumer_props, NULL, err, sizeof err);
	if (!c)
		fail_msg("consumer: %s", err);
	assert_int_equal(kafka_consumer_subscribe(c, topics, 1, err, sizeof err), SFK_OK);
	for (end = now_s() + DEADLINE_S; got < 4;) {
		enum sfk_err rc = kafka_consumer_poll(c, 500, &m, err, sizeof err);
		if (now_s() > end)
			fail_msg("consumer got %d of 4 records", got);
		if (rc != SFK_OK || !m)
			continue;
		assert_int_equal(kafka_consumer_store(c, m, err, sizeof err), SFK_OK);
		rd_kafka_message_destroy(m);
		got++;
	}
	if (kafka_consumer_commit(c, err, sizeof err) != SFK_OK)
		fail_msg("commit: %s", err);
	/* statistics arrive every 500 ms inside poll; later records are read
	 * but not stored, so the committed position stays at 4 */
	for (end = now_s() + DEADLINE_S; metric_value(lag, topic) != NRECORDS - 4;) {
		if (now_s() > end)
			fail_msg("lag gauge for %s is %g, want %d", topic, metric_value(lag, topic),
			         NRECORDS - 4);
		if (kafka_consumer_poll(c, 200, &m, err, sizeof err) == SFK_OK && m)
			rd_kafka_message_destroy(m);
	}
	kafka_consumer_close(&c);
}

/* The admin helper as `sfk topics create` uses it: a compacted topic with
 * settings, idempotent re-creation, every bad topic reported with the
 * broker's reason while the good one in the same request is created. */
static void admin_creates_and_reports(void **state)
{
	(void)state;
	char good[128], bad1[128], bad2[128], err[KAFKA_ERRSTR_MAX * 4];
	const char *compact[] = {"cleanup.policy=compact", "retention.ms=86400000", NULL};
	const char *nonsense[] = {"cleanup.policy=shred", NULL};
	struct kafka_topic_spec specs[3];
	struct kafka_topic_info *info = NULL;
	size_t n = 0, i;
	struct kafka_admin *a;

	if (is_mock()) {
		printf("SKIPPED on the mock cluster: librdkafka 2.0.2's mock has no CreateTopics. "
		       "Runs against the real broker.\n");
		skip();
	}
	snprintf(good, sizeof good, "sfk.it.admin.ok.%s", run_id);
	snprintf(bad1, sizeof bad1, "sfk.it.admin.bad1.%s", run_id);
	snprintf(bad2, sizeof bad2, "sfk.it.admin.bad2.%s", run_id);
	specs[0] = (struct kafka_topic_spec){good, 2, 1, compact};
	specs[1] = (struct kafka_topic_spec){bad1, 1, 1, nonsense};
	specs[2] = (struct kafka_topic_spec){bad2, 1, 7, NULL}; /* 7 replicas, 1 broker */
	a = kafka_admin_new(bootstrap, NULL, err, sizeof err);
	if (!a)
		fail_msg("admin: %s", err);

	assert_int_equal(kafka_admin_create_topics(a, specs, 3, 30000, err, sizeof err),
	                 SFK_ERR_INVALID);
	printf("reported: %s", err);
	assert_non_null(strstr(err, bad1));
	assert_non_null(strstr(err, bad2));
	assert_null(strstr(err, good));

	/* the good one exists with its partitions; re-creating it is fine */
	assert_int_equal(kafka_admin_create_topics(a, specs, 1, 30000, err, sizeof err), SFK_OK);
	assert_int_equal(kafka_admin_describe(a, good, 10000, &info, &n, err, sizeof err), SFK_OK);
	assert_int_equal(n, 1);
	assert_int_equal(info[0].partitions, 2);
	assert_int_equal(info[0].replication, 1);
	free(info);

	assert_int_equal(kafka_admin_describe(a, bad1, 10000, &info, &n, err, sizeof err),
	                 SFK_ERR_NOT_FOUND);
	assert_null(info);
	/* listing all includes it */
	assert_int_equal(kafka_admin_describe(a, NULL, 10000, &info, &n, err, sizeof err), SFK_OK);
	for (i = 0; i < n && strcmp(info[i].name, good) != 0; i++)
		;
	assert_true(i < n);
	free(info);
	kafka_admin_destroy(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(roundtrip_group_resumes_after_commit),
	        cmocka_unit_test(lag_gauge_follows_commits),
	        cmocka_unit_test(admin_creates_and_reports),
	        cmocka_unit_test(transaction_commit_delivers),
	        cmocka_unit_test(transaction_abort_invisible_commit_visible),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
