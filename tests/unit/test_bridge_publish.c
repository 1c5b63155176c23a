/*
 * Unit tests for bridge/publish: what one CometD batch puts into Kafka, in
 * one transaction, observed through a transactional in-memory sink (records
 * become visible only on commit, like read_committed consumers see them).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bridge/fanout.c"
#include "../../bridge/normalize.c"
#include "../../bridge/publish.c"
#include "../../bridge/resync.c"

#define LEAD1 "00Q5e00000AbCdEEAV"
#define LEAD2 "00Q5e00000AbCdFEAV"
#define TASK1 "00T5e00000XyZ01EAF"

struct memsink {
	json_t *staged, *committed; /* arrays of {topic,key,value,headers} */
	int in_txn, begins, commits, aborts;
	int fail_produce_at; /* 1-based produce call that fails; 0 = never */
	int fail_commit;
	int produced;
};

static enum sfk_err ms_begin(void *ctx, char *e, size_t el)
{
	struct memsink *s = ctx;
	assert_false(s->in_txn);
	s->in_txn = 1;
	s->begins++;
	return SFK_OK;
}

static enum sfk_err ms_produce(void *ctx, const char *topic, const char *key, const char *value,
                               size_t len, const struct kafka_header *h, size_t nh, char *e,
                               size_t el)
{
	struct memsink *s = ctx;
	assert_true(s->in_txn); /* never outside a transaction */
	if (++s->produced == s->fail_produce_at) {
		snprintf(e, el, "queue full");
		return SFK_ERR_KAFKA;
	}
	json_t *v = json_loadb(value, len, 0, NULL);
	assert_non_null(v);
	json_t *hdrs = json_object();
	for (size_t i = 0; i < nh; i++)
		json_object_set_new(hdrs, h[i].name, json_stringn(h[i].value, h[i].len));
	json_array_append_new(s->staged, json_pack("{s:s, s:s?, s:o, s:o}", "topic", topic, "key",
	                                           key, "value", v, "headers", hdrs));
	return SFK_OK;
}

static enum sfk_err ms_commit(void *ctx, char *e, size_t el)
{
	struct memsink *s = ctx;
	s->in_txn = 0;
	if (s->fail_commit) {
		/* kafka.h: a commit that fails is aborted inside */
		json_array_clear(s->staged);
		snprintf(e, el, "coordinator unavailable");
		return SFK_ERR_KAFKA;
	}
	json_array_extend(s->committed, s->staged);
	json_array_clear(s->staged);
	s->commits++;
	return SFK_OK;
}

static enum sfk_err ms_abort(void *ctx, char *e, size_t el)
{
	struct memsink *s = ctx;
	s->in_txn = 0;
	json_array_clear(s->staged);
	s->aborts++;
	return SFK_OK;
}

struct world {
	struct memsink sink;
	struct fanout *fanout;
	struct publisher *pub;
	enum sfk_err refetch_rc;
	int refetches;
	char resynced[64];
	int64_t resync_replay;
};

static enum sfk_err refetch(void *ctx, const char *entity, const char *id, json_t **rec, char *e,
                            size_t el)
{
	struct world *w = ctx;
	w->refetches++;
	if (w->refetch_rc != SFK_OK) {
		snprintf(e, el, "refetch failed");
		return w->refetch_rc;
	}
	*rec = json_pack("{s:{s:s}, s:s, s:s, s:s}", "attributes", "type", entity, "Id", id,
	                 "Company", "Refetched Ltd", "LastName", "Gap");
	return SFK_OK;
}

static void on_resync(void *ctx, const char *entity, int64_t replay_id)
{
	struct world *w = ctx;
	snprintf(w->resynced, sizeof w->resynced, "%s", entity);
	w->resync_replay = replay_id;
}

static int64_t clock_fixed(void *ctx)
{
	return 1700000000000LL;
}

static int setup(void **state)
{
	struct world *w = xcalloc(1, sizeof *w);
	char pol[4096], sch[4096], err[2048];
	const char *d = getenv("SFK_SOURCE_DIR");
	if (!d || !*d)
		fail_msg("SFK_SOURCE_DIR is not set (run through ctest, or export the repo root)");
	snprintf(pol, sizeof pol, "%s/policies/workloads.json", d);
	snprintf(sch, sizeof sch, "%s/schemas/workloads.schema.json", d);
	w->fanout = fanout_load(pol, sch, "sfk.", err, sizeof err);
	if (!w->fanout)
		fail_msg("%s", err);
	w->sink.staged = json_array();
	w->sink.committed = json_array();
	struct publish_conf c = {
	        .client_id = "sfk-kpis",
	        .clock_ms = clock_fixed,
	        .fanout = w->fanout,
	        .sink = {ms_begin, ms_produce, ms_commit, ms_abort, &w->sink},
	        .refetch = {refetch, w},
	        .on_resync = on_resync,
	        .resync_ctx = w,
	};
	w->pub = publish_new(&c);
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;
	publish_free(&w->pub);
	fanout_free(&w->fanout);
	json_decref(w->sink.staged);
	json_decref(w->sink.committed);
	free(w);
	return 0;
}

static json_t *event(const char *entity, const char *ctype, const char *id, int64_t replay,
                     const char *origin, const char *fields)
{
	char text[4096];
	snprintf(text, sizeof text,
	         "{\"channel\":\"/data/%sChangeEvent\",\"data\":{\"schema\":\"s\",\"event\":{"
	         "\"replayId\":%lld},\"payload\":{%s%s\"ChangeEventHeader\":{\"entityName\":\"%s\","
	         "\"changeType\":\"%s\",\"recordIds\":[\"%s\"],\"commitTimestamp\":1699999999000,"
	         "\"commitNumber\":1,\"transactionKey\":\"t\",\"sequenceNumber\":1,"
	         "\"changeOrigin\":\"%s\",\"changedFields\":[]}}}}",
	         entity, (long long)replay, fields, *fields ? "," : "", entity, ctype, id, origin);
	json_t *j = json_loads(text, 0, NULL);
	assert_non_null(j);
	return j;
}

/* "topic key" of each committed record, space-separated, for readable asserts. */
static char *summary(json_t *recs)
{
	size_t i, off = 0, cap = 8192;
	json_t *r;
	char *s = xcalloc(1, cap);
	json_array_foreach(recs, i, r)
	{
		const char *k = json_string_value(json_object_get(r, "key"));
		int n = snprintf(s + off, cap - off, "%s%s=%s", i ? " " : "",
		                 json_string_value(json_object_get(r, "topic")), k ? k : "-");
		assert_true(n > 0 && (size_t)n < cap - off);
		off += (size_t)n;
	}
	return s;
}

static json_t *mixed_batch(void)
{
	json_t *b = json_array();
	json_array_append_new(b, event("Lead", "CREATE", LEAD1, 10, "", "\"Company\":\"Acme\""));
	json_array_append_new(b, event("Lead", "UPDATE", LEAD1, 11,
	                               "com/salesforce/api/rest/66.0;client=sfk-kpis",
	                               "\"OwnerId\":\"0055e00000UsR01AAF\""));
	json_t *bad = event("Lead", "UPDATE", LEAD2, 12, "", "");
	json_object_del(json_object_get(json_object_get(json_object_get(bad, "data"), "payload"),
	                                "ChangeEventHeader"),
	                "transactionKey");
	json_array_append_new(b, bad);
	json_array_append_new(b, event("Task", "CREATE", TASK1, 5, "",
	                               "\"Status\":\"Completed\",\"WhoId\":\"" LEAD2 "\""));
	json_array_append_new(b, event("Lead", "GAP_CREATE", LEAD2, 13, "", ""));
	json_array_append_new(b, event("Lead", "GAP_OVERFLOW", "000000000000000AAA", 14, "", ""));
	return b;
}

static void one_transaction_for_a_mixed_batch(void **state)
{
	struct world *w = *state;
	struct publish_stats st;
	char err[512];
	json_t *b = mixed_batch();

	assert_int_equal(publish_batch(w->pub, b, &st, err, sizeof err), SFK_OK);
	assert_int_equal(w->sink.begins, 1);
	assert_int_equal(w->sink.commits, 1);
	char *s = summary(w->sink.committed);
	assert_string_equal(s,
	                    "sfk.cdc.lead=" LEAD1 " sfk.wl.lead.route=" LEAD1
	                    " sfk.wl.lead.first_touch_detect=" LEAD1 " sfk.wl.notify.webhook=" LEAD1
	                    " sfk.wl.outreach.template_suggest=" LEAD1 " sfk.cdc.lead=" LEAD1
	                    " sfk.dlq.bridge=/data/LeadChangeEvent"
	                    " sfk.cdc.task=" TASK1 " sfk.wl.lead.first_touch_detect=" LEAD2
	                    " sfk.cdc.lead=" LEAD2 " sfk.wl.lead.route=" LEAD2
	                    " sfk.wl.lead.first_touch_detect=" LEAD2 " sfk.wl.notify.webhook=" LEAD2
	                    " sfk.wl.outreach.template_suggest=" LEAD2
	                    " sfk.bridge.checkpoints=/data/LeadChangeEvent"
	                    " sfk.bridge.checkpoints=/data/TaskChangeEvent");
	free(s);
	assert_int_equal(st.events, 6);
	assert_int_equal(st.records, 4);
	assert_int_equal(st.fanout, 9);
	assert_int_equal(st.dead_letters, 1);
	assert_int_equal(st.echoes, 1);
	assert_int_equal(st.gaps_resolved, 1);
	assert_int_equal(st.resyncs, 1);

	/* the echo is published but flagged; the dead letter says why */
	json_t *echo = json_object_get(json_array_get(w->sink.committed, 5), "value");
	assert_true(json_is_true(json_object_get(json_object_get(echo, "flags"), "echo")));
	json_t *dlq = json_object_get(json_array_get(w->sink.committed, 6), "headers");
	assert_string_equal(json_string_value(json_object_get(dlq, "sfk.error_code")), "parse");
	assert_string_equal(json_string_value(json_object_get(dlq, "sfk.error_class")),
	                    "permanent");
	assert_string_equal(json_string_value(json_object_get(dlq, "sfk.error_reason")),
	                    "$.data.payload.ChangeEventHeader.transactionKey: missing");
	/* the gap record carries the re-fetched fields, without attributes */
	json_t *gap = json_object_get(json_array_get(w->sink.committed, 9), "value");
	assert_true(json_is_true(json_object_get(json_object_get(gap, "flags"), "gap_resolved")));
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(gap, "fields"), "Company")),
	        "Refetched Ltd");
	assert_null(json_object_get(json_object_get(gap, "fields"), "attributes"));
	json_t *wl = json_object_get(json_array_get(w->sink.committed, 10), "headers");
	assert_string_equal(json_string_value(json_object_get(wl, "sfk.workload")), "lead.route");
	assert_string_equal(json_string_value(json_object_get(wl, "sfk.event_id")),
	                    "Lead:" LEAD2 ":13");

	/* checkpoints: the highest replay id per channel, overflow and dead letter included */
	json_t *ck = json_object_get(json_array_get(w->sink.committed, 14), "value");
	assert_int_equal(json_integer_value(json_object_get(ck, "replay_id")), 14);
	assert_int_equal(publish_checkpoint(w->pub, "/data/LeadChangeEvent"), 14);
	assert_int_equal(publish_checkpoint(w->pub, "/data/TaskChangeEvent"), 5);
	assert_int_equal(publish_checkpoint(w->pub, "/data/Other"), -1);
	assert_string_equal(w->resynced, "Lead");
	assert_int_equal(w->resync_replay, 14);
	/* checkpoint age is observable: time() - this gauge */
	assert_true(metric_value(w->pub->m_ckpt, "/data/TaskChangeEvent") == 1700000000.0);
	json_decref(b);
}

static void failed_commit_moves_nothing(void **state)
{
	struct world *w = *state;
	struct publish_stats st;
	char err[512];
	json_t *b = json_array();
	publish_set_checkpoint(w->pub, "/data/LeadChangeEvent", 9);
	json_array_append_new(b, event("Lead", "CREATE", LEAD1, 10, "", ""));
	json_array_append_new(b, event("Lead", "GAP_OVERFLOW", "000000000000000AAA", 11, "", ""));
	w->sink.fail_commit = 1;
	enum sfk_err rc = publish_batch(w->pub, b, &st, err, sizeof err);
	assert_int_equal(rc, SFK_ERR_KAFKA);
	assert_string_equal(err, "coordinator unavailable");
	assert_int_equal(json_array_size(w->sink.committed), 0);
	assert_int_equal(publish_checkpoint(w->pub, "/data/LeadChangeEvent"), 9);
	assert_string_equal(w->resynced, ""); /* only after a commit */
	json_decref(b);
}

static void failed_produce_aborts(void **state)
{
	struct world *w = *state;
	struct publish_stats st;
	char err[512];
	json_t *b = mixed_batch();
	w->sink.fail_produce_at = 3;
	assert_int_equal(publish_batch(w->pub, b, &st, err, sizeof err), SFK_ERR_KAFKA);
	assert_int_equal(w->sink.aborts, 1);
	assert_int_equal(w->sink.commits, 0);
	assert_int_equal(json_array_size(w->sink.committed), 0);
	assert_int_equal(publish_checkpoint(w->pub, "/data/LeadChangeEvent"), -1);
	json_decref(b);
}

static void refetch_failure_aborts_not_found_publishes_unresolved(void **state)
{
	struct world *w = *state;
	struct publish_stats st;
	char err[512];
	json_t *b = json_array();
	json_array_append_new(b, event("Lead", "GAP_CREATE", LEAD2, 13, "", ""));
	w->refetch_rc = SFK_ERR_HTTP_5XX;
	assert_int_equal(publish_batch(w->pub, b, &st, err, sizeof err), SFK_ERR_HTTP_5XX);
	assert_int_equal(w->sink.aborts, 1);
	assert_int_equal(json_array_size(w->sink.committed), 0);

	w->refetch_rc = SFK_ERR_NOT_FOUND;
	assert_int_equal(publish_batch(w->pub, b, &st, err, sizeof err), SFK_OK);
	char *s = summary(w->sink.committed);
	/* no fan-out for a gap nobody could resolve */
	assert_string_equal(s,
	                    "sfk.cdc.lead=" LEAD2 " sfk.bridge.checkpoints=/data/LeadChangeEvent");
	free(s);
	assert_int_equal(st.gaps_unresolved, 1);
	json_decref(b);
}

static void checkpoint_values_round_trip(void **state)
{
	(void)state;
	char *v = publish_checkpoint_value("/data/LeadChangeEvent", 9007199254740993LL, 5);
	char ch[128];
	int64_t r = 0;
	assert_int_equal(publish_checkpoint_parse(v, strlen(v), ch, sizeof ch, &r), 0);
	assert_string_equal(ch, "/data/LeadChangeEvent");
	assert_true(r == 9007199254740993LL);
	free(v);
	assert_int_equal(publish_checkpoint_parse("{\"channel\":1}", 13, ch, sizeof ch, &r), -1);
	assert_int_equal(publish_checkpoint_parse("junk", 4, ch, sizeof ch, &r), -1);
}

static void snapshot_in_one_transaction(void **state)
{
	struct world *w = *state;
	char err[512];
	size_t n = 0;
	json_t *recs = json_loads("[{\"attributes\":{\"type\":\"Lead\"},\"Id\":\"" LEAD1 "\","
	                          "\"Company\":\"A\"},{\"Company\":\"no id\"},"
	                          "{\"Id\":\"" LEAD2 "\",\"Company\":\"B\"}]",
	                          0, NULL);
	assert_int_equal(publish_snapshot(w->pub, "Lead", 77, recs, &n, err, sizeof err), SFK_OK);
	assert_int_equal(n, 2);
	assert_int_equal(w->sink.commits, 1);
	char *s = summary(w->sink.committed);
	/* SNAPSHOT Leads are fanned out (a resync may stand for lost creations;
	 * the workers skip Leads already routed / suggested), not to notify */
	assert_string_equal(s, "sfk.cdc.lead=" LEAD1 " sfk.wl.lead.route=" LEAD1
	                       " sfk.wl.lead.first_touch_detect=" LEAD1
	                       " sfk.wl.outreach.template_suggest=" LEAD1
	                       " sfk.dlq.bridge=- sfk.cdc.lead=" LEAD2 " sfk.wl.lead.route=" LEAD2
	                       " sfk.wl.lead.first_touch_detect=" LEAD2
	                       " sfk.wl.outreach.template_suggest=" LEAD2);
	free(s);
	json_t *h = json_object_get(json_array_get(w->sink.committed, 0), "headers");
	assert_string_equal(json_string_value(json_object_get(h, "sfk.change_type")), "SNAPSHOT");
	assert_string_equal(json_string_value(json_object_get(h, "sfk.event_id")),
	                    "Lead:" LEAD1 ":77");

	w->sink.fail_produce_at = w->sink.produced + 2;
	assert_int_equal(publish_snapshot(w->pub, "Lead", 78, recs, &n, err, sizeof err),
	                 SFK_ERR_KAFKA);
	assert_int_equal(n, 0);
	assert_int_equal(w->sink.aborts, 1);
	assert_int_equal(json_array_size(w->sink.committed), 9);
	json_decref(recs);
}

static void resync_select_from_describe(void **state)
{
	(void)state;
	char err[256];
	json_t *d = json_loads("{\"fields\":[{\"name\":\"Id\",\"type\":\"id\"},"
	                       "{\"name\":\"Company\",\"type\":\"string\"},"
	                       "{\"name\":\"Address\",\"type\":\"address\"},"
	                       "{\"name\":\"Country\",\"type\":\"string\"}]}",
	                       0, NULL);
	char *q = resync_soql("Lead", d, err, sizeof err);
	assert_non_null(q);
	assert_string_equal(q, "SELECT Id, Company, Country FROM Lead");
	free(q);
	json_array_append_new(json_object_get(d, "fields"),
	                      json_pack("{s:s, s:s}", "name", "Bad'Name", "type", "string"));
	assert_null(resync_soql("Lead", d, err, sizeof err));
	assert_null(resync_soql("Lead; DROP", d, err, sizeof err));
	json_decref(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(one_transaction_for_a_mixed_batch, setup, teardown),
	        cmocka_unit_test_setup_teardown(failed_commit_moves_nothing, setup, teardown),
	        cmocka_unit_test_setup_teardown(failed_produce_aborts, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                refetch_failure_aborts_not_found_publishes_unresolved, setup, teardown),
	        cmocka_unit_test(checkpoint_values_round_trip),
	        cmocka_unit_test_setup_teardown(snapshot_in_one_transaction, setup, teardown),
	        cmocka_unit_test(resync_select_from_describe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
