/*
 * test_cdc.c - change events as a CometD subscriber sees them: payload shapes
 * per change type, merged events, gap and overflow events, exact int64
 * commitNumber, replay ids, retention and the count cap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cdc.h"

static int64_t fake_now = 1700000000000LL;
static int64_t fake_clock(void *ctx)
{
	(void)ctx;
	return fake_now;
}

static struct cdc *bus_new(void (*tweak)(struct cdc_config *))
{
	struct cdc_config cfg;
	cdc_config_default(&cfg);
	cfg.clock_ms = fake_clock;
	cfg.seed = 7;
	if (tweak)
		tweak(&cfg);
	return cdc_new(&cfg);
}

static const char *LEAD_ID = "00Q5g00000AbCdEEAZ";
static const char *USER_ID = "0055g00000XyZabAAB";

/* A change of type/change_type on record (taken over); changed: "a,b" or NULL. */
static struct org_change mk(const char *type, const char *ctype, const char *id, json_t *record,
                            const char *changed, int seq)
{
	struct org_change ch = {0};
	ch.type = type;
	ch.change_type = ctype;
	ch.record_id = id;
	ch.record = record;
	ch.changed_fields = json_array();
	for (const char *p = changed; p && *p;) {
		size_t n = strcspn(p, ",");
		json_array_append_new(ch.changed_fields, json_stringn(p, n));
		p += n;
		if (*p == ',')
			p++;
	}
	ch.commit_user = USER_ID;
	ch.commit_ts_ms = fake_now;
	ch.transaction_key = "0003a1b2-c3d4-e5f6-0718-293a4b5c6d7e";
	ch.sequence_number = seq;
	ch.origin = "com/salesforce/api/rest/61.0;client=sfk-test";
	return ch;
}

static void unmk(struct org_change *ch)
{
	json_decref(ch->record);
	json_decref(ch->changed_fields);
}

static json_t *lead_record(const char *last)
{
	return json_pack(
	        "{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:n,s:s,s:b,s:s,s:s,s:s,s:i,s:s}", "Id", LEAD_ID,
	        "Salutation", "Ms.", "FirstName", "Ada", "LastName", last, "Name", "Ada Lovelace",
	        "Company", "Analytical Engines", "Country", "United Kingdom", "Industry", "Street",
	        "", "IsDeleted", 0, "SystemModstamp", "2026-11-21T10:00:00.000+0000", "CreatedDate",
	        "2026-11-21T10:00:00.000+0000", "LastModifiedDate", "2026-11-21T10:00:00.000+0000",
	        "NumberOfEmployees", 250, "OwnerId", USER_ID);
}

/* Every message on channel after cursor, as an array of Bayeux messages. */
static json_t *collect(struct cdc *c, const char *channel, int64_t *after, size_t max)
{
	struct cdc_buf b = {0};
	struct cdc_cursor cur = {channel, *after};
	json_error_t e;
	cdc_buf_append(&b, "[", 1);
	cdc_collect(c, &cur, 1, max, 1 << 30, &b);
	cdc_buf_append(&b, "]", 1);
	json_t *a = json_loads(b.p, 0, &e);
	assert_non_null(a);
	cdc_buf_free(&b);
	*after = cur.after;
	return a;
}

static json_t *only_event(struct cdc *c)
{
	int64_t after = 0;
	json_t *a = collect(c, "/data/LeadChangeEvent", &after, 100);
	assert_int_equal(json_array_size(a), 1);
	json_t *m = json_incref(json_array_get(a, 0));
	json_decref(a);
	return m;
}

static json_t *header(json_t *msg)
{
	return json_object_get(json_object_get(json_object_get(msg, "data"), "payload"),
	                       "ChangeEventHeader");
}

static void test_create_shape(void **state)
{
	(void)state;
	struct cdc *c = bus_new(NULL);
	struct org_change ch = mk("Lead", "CREATE", LEAD_ID, lead_record("Lovelace"), NULL, 1);
	assert_int_equal(cdc_publish_txn(c, &ch, 1), 1);
	json_t *m = only_event(c);
	json_t *data = json_object_get(m, "data");
	json_t *p = json_object_get(data, "payload");
	json_t *h = header(m);

	assert_string_equal(json_string_value(json_object_get(m, "channel")),
	                    "/data/LeadChangeEvent");
	assert_int_equal(strlen(json_string_value(json_object_get(data, "schema"))), 22);
	assert_true(json_integer_value(
	                    json_object_get(json_object_get(data, "event"), "replayId")) > 0);
	assert_string_equal(json_string_value(json_object_get(h, "entityName")), "Lead");
	assert_string_equal(json_string_value(json_object_get(h, "changeType")), "CREATE");
	assert_string_equal(json_string_value(json_array_get(json_object_get(h, "recordIds"), 0)),
	                    LEAD_ID);
	assert_int_equal(json_array_size(json_object_get(h, "changedFields")), 0);
	assert_string_equal(json_string_value(json_object_get(h, "commitUser")), USER_ID);
	assert_int_equal(json_integer_value(json_object_get(h, "commitTimestamp")), fake_now);
	assert_int_equal(json_integer_value(json_object_get(h, "sequenceNumber")), 1);
	assert_string_equal(json_string_value(json_object_get(h, "changeOrigin")),
	                    "com/salesforce/api/rest/61.0;client=sfk-test");
	assert_non_null(json_object_get(h, "transactionKey"));
	/* Compound Name and Address, nested. */
	json_t *name = json_object_get(p, "Name");
	assert_true(json_is_object(name));
	assert_string_equal(json_string_value(json_object_get(name, "Salutation")), "Ms.");
	assert_string_equal(json_string_value(json_object_get(name, "FirstName")), "Ada");
	assert_string_equal(json_string_value(json_object_get(name, "LastName")), "Lovelace");
	assert_null(json_object_get(p, "FirstName"));
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(p, "Address"), "Country")),
	        "United Kingdom");
	assert_null(json_object_get(p, "Country"));
	/* Non-empty fields only; never Id, IsDeleted, SystemModstamp. */
	assert_string_equal(json_string_value(json_object_get(p, "Company")), "Analytical Engines");
	assert_int_equal(json_integer_value(json_object_get(p, "NumberOfEmployees")), 250);
	assert_non_null(json_object_get(p, "CreatedDate"));
	assert_null(json_object_get(p, "Industry"));
	assert_null(json_object_get(json_object_get(p, "Address"), "Street"));
	assert_null(json_object_get(p, "Id"));
	assert_null(json_object_get(p, "IsDeleted"));
	assert_null(json_object_get(p, "SystemModstamp"));
	json_decref(m);
	unmk(&ch);
	cdc_free(&c);
	assert_null(c);
}

static void test_commit_number_exact(void **state)
{
	(void)state;
	struct cdc *c = bus_new(NULL);
	struct org_change ch = mk("Lead", "CREATE", LEAD_ID, lead_record("L"), NULL, 1);
	cdc_publish_txn(c, &ch, 1);
	struct cdc_buf b = {0};
	struct cdc_cursor cur = {"/data/LeadChangeEvent", 0};
	cdc_collect(c, &cur, 1, 10, 1 << 20, &b);
	json_t *m = json_loads(b.p, 0, NULL);
	json_int_t n = json_integer_value(json_object_get(header(m), "commitNumber"));
	/* Above 2^53 and written in full in the wire text. */
	assert_true(n > 9007199254740992LL);
	char digits[32];
	snprintf(digits, sizeof(digits), "\"commitNumber\":%lld,", (long long)n);
	assert_non_null(strstr(b.p, digits));
	json_decref(m);
	cdc_buf_free(&b);
	unmk(&ch);
	cdc_free(&c);
}

static void test_update_shape(void **state)
{
	(void)state;
	struct cdc *c = bus_new(NULL);
	json_t *rec = lead_record("Byron");
	json_object_set_new(rec, "Status", json_string("Working - Contacted"));
	json_object_set_new(rec, "Industry", json_null());
	struct org_change ch =
	        mk("Lead", "UPDATE", LEAD_ID, rec, "LastModifiedDate,Status,LastName,Industry", 2);
	cdc_publish_txn(c, &ch, 1);
	json_t *m = only_event(c);
	json_t *p = json_object_get(json_object_get(m, "data"), "payload");
	json_t *h = header(m);
	assert_string_equal(json_string_value(json_object_get(h, "changeType")), "UPDATE");
	json_t *cf = json_object_get(h, "changedFields");
	assert_int_equal(json_array_size(cf), 4);
	assert_string_equal(json_string_value(json_array_get(cf, 0)), "LastModifiedDate");
	assert_string_equal(json_string_value(json_array_get(cf, 1)), "Status");
	assert_string_equal(json_string_value(json_array_get(cf, 2)), "Name.LastName");
	assert_string_equal(json_string_value(json_array_get(cf, 3)), "Industry");
	/* Only the changed fields, nulls kept; nothing else. */
	assert_int_equal(json_object_size(p), 5); /* header + 4 */
	assert_string_equal(json_string_value(json_object_get(p, "Status")), "Working - Contacted");
	assert_true(json_is_null(json_object_get(p, "Industry")));
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(p, "Name"), "LastName")),
	        "Byron");
	assert_null(json_object_get(json_object_get(p, "Name"), "FirstName"));
	assert_null(json_object_get(p, "Company"));
	json_decref(m);
	unmk(&ch);
	cdc_free(&c);
}

static void test_delete_header_only(void **state)
{
	(void)state;
	struct cdc *c = bus_new(NULL);
	struct org_change ch = mk("Lead", "DELETE", LEAD_ID, lead_record("L"), NULL, 1);
	cdc_publish_txn(c, &ch, 1);
	json_t *m = only_event(c);
	json_t *p = json_object_get(json_object_get(m, "data"), "payload");
	assert_int_equal(json_object_size(p), 1);
	assert_string_equal(json_string_value(json_object_get(header(m), "changeType")), "DELETE");
	json_decref(m);
	unmk(&ch);
	cdc_free(&c);
}

static void test_merged_and_disabled(void **state)
{
	(void)state;
	struct cdc *c = bus_new(NULL);
	const char *ids[] = {"00Q5g00000AbCd1EAB", "00Q5g00000AbCd2EAB", "00Q5g00000AbCd3EAB"};
	struct org_change ch[5];
	for (int i = 0; i < 3; i++) {
		json_t *r = lead_record("Same");
		json_object_set_new(r, "Status", json_string("Closed"));
		ch[i] = mk("Lead", "UPDATE", ids[i], r, "LastModifiedDate,Status", i + 1);
	}
	/* Not CDC-enabled: consumes sequence number 4, publishes nothing. */
	ch[3] = mk("Account", "UPDATE", "0015g00000AbCd1AAB", json_pack("{s:s}", "Name", "A"),
	           "Name", 4);
	json_t *r = lead_record("Other");
	json_object_set_new(r, "Status", json_string("Open"));
	ch[4] = mk("Lead", "UPDATE", "00Q5g00000AbCd4EAB", r, "LastModifiedDate,Status", 5);
	assert_int_equal(cdc_publish_txn(c, ch, 5), 2);

	int64_t after = 0;
	json_t *a = collect(c, "/data/LeadChangeEvent", &after, 100);
	assert_int_equal(json_array_size(a), 2);
	json_t *ri = json_object_get(header(json_array_get(a, 0)), "recordIds");
	assert_int_equal(json_array_size(ri), 3);
	for (int i = 0; i < 3; i++)
		assert_string_equal(json_string_value(json_array_get(ri, (size_t)i)), ids[i]);
	json_t *h2 = header(json_array_get(a, 1));
	assert_int_equal(json_array_size(json_object_get(h2, "recordIds")), 1);
	assert_int_equal(json_integer_value(json_object_get(h2, "sequenceNumber")), 5);
	/* One transaction: one key, one commit number. */
	assert_true(json_equal(json_object_get(header(json_array_get(a, 0)), "commitNumber"),
	                       json_object_get(h2, "commitNumber")));
	json_decref(a);
	for (int i = 0; i < 5; i++)
		unmk(&ch[i]);
	cdc_free(&c);
}

static void test_forced_gap(void **state)
{
	(void)state;
	struct cdc *c = bus_new(NULL);
	struct org_change ch = mk("Lead", "CREATE", LEAD_ID, lead_record("L"), NULL, 1);
	cdc_force_gap(c, 1);
	cdc_publish_txn(c, &ch, 1);
	cdc_publish_txn(c, &ch, 1);
	int64_t after = 0;
	json_t *a = collect(c, "/data/LeadChangeEvent", &after, 100);
	assert_int_equal(json_array_size(a), 2);
	json_t *p0 = json_object_get(json_object_get(json_array_get(a, 0), "data"), "payload");
	assert_string_equal(
	        json_string_value(json_object_get(header(json_array_get(a, 0)), "changeType")),
	        "GAP_CREATE");
	assert_int_equal(json_object_size(p0), 1);
	assert_string_equal(json_string_value(json_array_get(
	                            json_object_get(header(json_array_get(a, 0)), "recordIds"), 0)),
	                    LEAD_ID);
	assert_string_equal(
	        json_string_value(json_object_get(header(json_array_get(a, 1)), "changeType")),
	        "CREATE");
	json_decref(a);
	unmk(&ch);
	cdc_free(&c);
}

static void small_events(struct cdc_config *cfg)
{
	cfg->max_event_bytes = 600;
}

static void test_oversize_gap(void **state)
{
	(void)state;
	struct cdc *c = bus_new(small_events);
	json_t *r = lead_record("L");
	char big[2000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	json_object_set_new(r, "Description", json_string(big));
	struct org_change ch = mk("Lead", "CREATE", LEAD_ID, r, NULL, 1);
	cdc_publish_txn(c, &ch, 1);
	json_t *m = only_event(c);
	assert_string_equal(json_string_value(json_object_get(header(m), "changeType")),
	                    "GAP_CREATE");
	assert_null(json_object_get(json_object_get(json_object_get(m, "data"), "payload"),
	                            "Description"));
	json_decref(m);
	unmk(&ch);
	cdc_free(&c);
}

static void low_overflow(struct cdc_config *cfg)
{
	cfg->overflow_changes = 2;
	cfg->merge = 0;
}

static void test_overflow(void **state)
{
	(void)state;
	struct cdc *c = bus_new(low_overflow);
	struct org_change ch[6];
	for (int i = 0; i < 4; i++)
		ch[i] = mk("Lead", "CREATE", LEAD_ID, lead_record("L"), NULL, i + 1);
	ch[4] = mk("Task", "CREATE", "00T5g00000AbCd1EAB", json_pack("{s:s}", "Subject", "Call"),
	           NULL, 5);
	ch[5] = mk("Task", "CREATE", "00T5g00000AbCd2EAB", json_pack("{s:s}", "Subject", "Call"),
	           NULL, 6);
	assert_int_equal(cdc_publish_txn(c, ch, 6), 4);
	int64_t after = 0;
	json_t *a = collect(c, CDC_CHANNEL_ALL, &after, 100);
	assert_int_equal(json_array_size(a), 4);
	const char *want[][2] = {{"Lead", "CREATE"},
	                         {"Lead", "CREATE"},
	                         {"Lead", "GAP_OVERFLOW"},
	                         {"Task", "GAP_OVERFLOW"}};
	for (size_t i = 0; i < 4; i++) {
		json_t *h = header(json_array_get(a, i));
		assert_string_equal(json_string_value(json_object_get(h, "entityName")),
		                    want[i][0]);
		assert_string_equal(json_string_value(json_object_get(h, "changeType")),
		                    want[i][1]);
		assert_string_equal(
		        json_string_value(json_object_get(json_array_get(a, i), "channel")),
		        CDC_CHANNEL_ALL);
	}
	assert_string_equal(json_string_value(json_array_get(
	                            json_object_get(header(json_array_get(a, 3)), "recordIds"), 0)),
	                    CDC_OVERFLOW_RECORD_ID);
	json_decref(a);
	for (int i = 0; i < 6; i++)
		unmk(&ch[i]);
	cdc_free(&c);
}

static int64_t replay_of(json_t *msg)
{
	return json_integer_value(json_object_get(
	        json_object_get(json_object_get(msg, "data"), "event"), "replayId"));
}

static void test_replay_ids_and_channels(void **state)
{
	(void)state;
	struct cdc *c = bus_new(NULL);
	struct org_change lead = mk("Lead", "CREATE", LEAD_ID, lead_record("L"), NULL, 1);
	struct org_change task = mk("Task", "CREATE", "00T5g00000AbCd1EAB",
	                            json_pack("{s:s}", "Subject", "Call"), NULL, 1);
	for (int i = 0; i < 30; i++)
		cdc_publish_txn(c, i % 3 == 0 ? &task : &lead, 1);
	int64_t after = 0;
	json_t *all = collect(c, CDC_CHANNEL_ALL, &after, 1000);
	assert_int_equal(json_array_size(all), 30);
	int gaps = 0;
	for (size_t i = 1; i < 30; i++) {
		int64_t prev = replay_of(json_array_get(all, i - 1)),
		        cur = replay_of(json_array_get(all, i));
		assert_true(cur > prev);
		gaps += cur != prev + 1;
	}
	assert_true(gaps > 0); /* not contiguous */
	assert_int_equal(after, cdc_last_replay_id(c));

	/* The entity channel sees its events with the same replay ids. */
	int64_t la = 0;
	json_t *leads = collect(c, "/data/LeadChangeEvent", &la, 1000);
	assert_int_equal(json_array_size(leads), 20);
	assert_int_equal(replay_of(json_array_get(leads, 0)), replay_of(json_array_get(all, 1)));

	/* Resume strictly after a given id. */
	int64_t mid = replay_of(json_array_get(all, 10));
	assert_true(cdc_replay_valid(c, mid));
	int64_t cur = cdc_replay_cursor(c, mid);
	json_t *rest = collect(c, CDC_CHANNEL_ALL, &cur, 1000);
	assert_int_equal(json_array_size(rest), 19);
	assert_int_equal(replay_of(json_array_get(rest, 0)), replay_of(json_array_get(all, 11)));
	/* -1: nothing old; -2: everything. */
	cur = cdc_replay_cursor(c, -1);
	json_t *none = collect(c, CDC_CHANNEL_ALL, &cur, 1000);
	assert_int_equal(json_array_size(none), 0);
	cur = cdc_replay_cursor(c, -2);
	json_t *again = collect(c, CDC_CHANNEL_ALL, &cur, 1000);
	assert_int_equal(json_array_size(again), 30);
	/* Batch limit. */
	cur = cdc_replay_cursor(c, -2);
	json_t *part = collect(c, CDC_CHANNEL_ALL, &cur, 7);
	assert_int_equal(json_array_size(part), 7);
	assert_int_equal(cur, replay_of(json_array_get(all, 6)));
	/* Unknown ids: beyond the last one, or before the first. */
	assert_false(cdc_replay_valid(c, cdc_last_replay_id(c) + 1000));
	assert_false(cdc_replay_valid(c, replay_of(json_array_get(all, 0)) - 1));
	assert_false(cdc_channel_exists(c, "/data/AccountChangeEvent"));
	assert_true(cdc_channel_exists(c, "/data/EmailMessageChangeEvent"));
	json_decref(all);
	json_decref(leads);
	json_decref(rest);
	json_decref(none);
	json_decref(again);
	json_decref(part);
	unmk(&lead);
	unmk(&task);
	cdc_free(&c);
}

static void test_retention(void **state)
{
	(void)state;
	struct cdc *c = bus_new(NULL);
	struct org_change ch = mk("Lead", "CREATE", LEAD_ID, lead_record("L"), NULL, 1);
	cdc_publish_txn(c, &ch, 1);
	int64_t old = cdc_last_replay_id(c);
	fake_now += 71LL * 3600 * 1000;
	cdc_publish_txn(c, &ch, 1);
	int64_t young = cdc_last_replay_id(c);
	assert_true(cdc_replay_valid(c, old));
	fake_now += 1LL * 3600 * 1000 + 1; /* the first is now 72 h + 1 ms old */
	assert_false(cdc_replay_valid(c, old));
	assert_true(cdc_replay_valid(c, young));
	int64_t cur = cdc_replay_cursor(c, -2);
	json_t *a = collect(c, CDC_CHANNEL_ALL, &cur, 100);
	assert_int_equal(json_array_size(a), 1);
	assert_int_equal(replay_of(json_array_get(a, 0)), young);
	json_decref(a);
	fake_now += 72LL * 3600 * 1000;
	assert_false(cdc_replay_valid(c, young)); /* everything expired */
	json_t *st = cdc_stats(c);
	assert_int_equal(json_integer_value(json_object_get(st, "retained")), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "published"),
	                                                    "/data/LeadChangeEvent")),
	                 2);
	json_decref(st);
	unmk(&ch);
	cdc_free(&c);
}

static void cap5(struct cdc_config *cfg)
{
	cfg->max_events = 5;
}

static void test_count_cap(void **state)
{
	(void)state;
	struct cdc *c = bus_new(cap5);
	struct org_change ch = mk("Lead", "CREATE", LEAD_ID, lead_record("L"), NULL, 1);
	cdc_publish_txn(c, &ch, 1);
	int64_t first = cdc_last_replay_id(c);
	for (int i = 0; i < 7; i++)
		cdc_publish_txn(c, &ch, 1);
	int64_t cur = cdc_replay_cursor(c, -2);
	json_t *a = collect(c, CDC_CHANNEL_ALL, &cur, 100);
	assert_int_equal(json_array_size(a), 5);
	assert_false(cdc_replay_valid(c, first));
	json_decref(a);
	unmk(&ch);
	cdc_free(&c);
}

static void small_store(struct cdc_config *cfg)
{
	cfg->max_bytes = 3000;
}

static void test_byte_cap(void **state)
{
	(void)state;
	struct cdc *c = bus_new(small_store);
	struct org_change ch = mk("Lead", "CREATE", LEAD_ID, lead_record("L"), NULL, 1);
	for (int i = 0; i < 20; i++)
		cdc_publish_txn(c, &ch, 1);
	json_t *st = cdc_stats(c);
	json_int_t kept = json_integer_value(json_object_get(st, "retained"));
	assert_true(kept > 0 && kept < 20);
	assert_true(json_integer_value(json_object_get(st, "retained_bytes")) <= 3000);
	assert_int_equal(json_integer_value(json_object_get(st, "dropped")), 20 - kept);
	json_decref(st);
	unmk(&ch);
	cdc_free(&c);
}

static void test_raw_publish(void **state)
{
	(void)state;
	struct cdc *c = bus_new(NULL);
	char err[128];
	json_t *data = json_pack("{s:s,s:{s:{s:s}}}", "schema", "abc", "payload",
	                         "ChangeEventHeader", "entityName", "Widget__c");
	assert_false(cdc_channel_exists(c, "/data/Widget__ChangeEvent"));
	int64_t id = cdc_publish_raw(c, "/data/Widget__ChangeEvent", data, err, sizeof(err));
	assert_true(id > 0);
	assert_true(cdc_channel_exists(c, "/data/Widget__ChangeEvent"));
	assert_int_equal(cdc_publish_raw(c, "/topic/x", data, err, sizeof(err)), -1);
	int64_t after = 0;
	json_t *a = collect(c, "/data/Widget__ChangeEvent", &after, 10);
	assert_int_equal(json_array_size(a), 1);
	assert_int_equal(replay_of(json_array_get(a, 0)), id);
	assert_string_equal(json_string_value(json_object_get(
	                            json_object_get(json_array_get(a, 0), "data"), "schema")),
	                    "abc");
	after = 0;
	json_t *b = collect(c, CDC_CHANNEL_ALL, &after, 10);
	assert_int_equal(json_array_size(b), 1);
	json_decref(a);
	json_decref(b);
	json_decref(data);
	cdc_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_create_shape),
	        cmocka_unit_test(test_commit_number_exact),
	        cmocka_unit_test(test_update_shape),
	        cmocka_unit_test(test_delete_header_only),
	        cmocka_unit_test(test_merged_and_disabled),
	        cmocka_unit_test(test_forced_gap),
	        cmocka_unit_test(test_oversize_gap),
	        cmocka_unit_test(test_overflow),
	        cmocka_unit_test(test_replay_ids_and_channels),
	        cmocka_unit_test(test_retention),
	        cmocka_unit_test(test_count_cap),
	        cmocka_unit_test(test_byte_cap),
	        cmocka_unit_test(test_raw_publish),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
