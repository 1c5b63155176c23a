/* Unit tests for sfk-sim's org: ids, schema-driven validation and error codes,
 * system and derived fields, the change hook, determinism by seed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "org.h"
#include "sfid.h"

static const char *const users[] = {"integration@sfk-sim.test"};

struct seen {
	json_t *events; /* array of {type, change, id, changed, origin, seq, key} */
};

static void hook(struct sim *sim, const struct org_change *ch, void *ctx)
{
	struct seen *s = ctx;
	(void)sim;
	json_array_append_new(s->events,
	                      json_pack("{s:s,s:s,s:s,s:O,s:s,s:i,s:s,s:s}", "type", ch->type,
	                                "change", ch->change_type, "id", ch->record_id, "changed",
	                                ch->changed_fields, "origin", ch->origin, "seq",
	                                ch->sequence_number, "key", ch->transaction_key, "user",
	                                ch->commit_user));
}

struct fixture {
	struct sim sim;
	struct seen seen;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sim_config cfg = {.seed = 7, .api_limit = 1000, .token_ttl_s = 60};
	if (org_init(&f->sim, &cfg, users, 1) < 0)
		return -1;
	f->seen.events = json_array();
	org_set_change_hook(&f->sim, hook, &f->seen);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	json_decref(f->seen.events);
	org_fini(&f->sim);
	free(f);
	return 0;
}

static const char *create_lead(struct sim *sim, const char *json, char id[SIM_ID_BUF],
                               struct sim_error *err)
{
	json_t *fields = json_loads(json, 0, NULL);
	assert_non_null(fields);
	int rc = org_create(sim, "Lead", fields, "com/salesforce/api/rest/61.0;client=test", NULL,
	                    id, err);
	json_decref(fields);
	return rc == 0 ? id : NULL;
}

static void ids_have_prefix_and_checksum(void **state)
{
	struct fixture *f = *state;
	char id[SIM_ID_BUF];
	struct sim_error err;
	assert_non_null(create_lead(&f->sim, "{\"LastName\":\"A\",\"Company\":\"C\"}", id, &err));
	assert_int_equal(strlen(id), 18);
	assert_memory_equal(id, "00Q", 3);
	assert_true(sim_id_valid(id));
	assert_true(sfid_valid(f->sim.default_user_id));
	assert_memory_equal(f->sim.org_id, "00D", 3);
	/* A 15-char id finds the same record. */
	char id15[16];
	snprintf(id15, sizeof(id15), "%.15s", id);
	json_t *r = org_get(&f->sim, NULL, id15, &err);
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "Id")), id);
	json_decref(r);
}

static void same_seed_same_ids(void **state)
{
	struct fixture *f = *state;
	struct sim other;
	struct sim_config cfg = {.seed = 7, .api_limit = 1000, .token_ttl_s = 60};
	char a[SIM_ID_BUF], b[SIM_ID_BUF];
	struct sim_error err;
	memset(&other, 0, sizeof(other));
	assert_int_equal(org_init(&other, &cfg, users, 1), 0);
	assert_string_equal(f->sim.default_user_id, other.default_user_id);
	assert_non_null(create_lead(&f->sim, "{\"LastName\":\"A\",\"Company\":\"C\"}", a, &err));
	assert_non_null(create_lead(&other, "{\"LastName\":\"A\",\"Company\":\"C\"}", b, &err));
	assert_string_equal(a, b);
	json_t *ua = org_dump(&f->sim), *ub = org_dump(&other);
	assert_int_equal(json_array_size(json_object_get(ua, "User")), 9);
	assert_int_equal(json_array_size(json_object_get(ua, "Group")), 4);
	assert_true(json_equal(json_object_get(ua, "Group"), json_object_get(ub, "Group")) ||
	            /* CreatedDate may tick between the two inits; names and ids may not. */
	            strcmp(json_string_value(json_object_get(
	                           json_array_get(json_object_get(ua, "Group"), 0), "Id")),
	                   json_string_value(json_object_get(
	                           json_array_get(json_object_get(ub, "Group"), 0), "Id"))) == 0);
	json_decref(ua);
	json_decref(ub);
	org_fini(&other);
}

static void validation_error_codes(void **state)
{
	struct fixture *f = *state;
	char id[SIM_ID_BUF];
	struct sim_error err;
	static const struct {
		const char *json, *code, *field;
	} cases[] = {
	        {"{\"LastName\":\"A\"}", "REQUIRED_FIELD_MISSING", "Company"},
	        {"{\"LastName\":\"A\",\"Company\":\"C\",\"Nope__c\":1}", "INVALID_FIELD",
	         "Nope__c"},
	        {"{\"LastName\":\"A\",\"Company\":\"C\",\"NumberOfEmployees\":\"lots\"}",
	         "INVALID_TYPE_ON_FIELD_IN_RECORD", "NumberOfEmployees"},
	        {"{\"LastName\":\"A\",\"Company\":\"C\",\"Email\":\"x@\"}", "INVALID_EMAIL_ADDRESS",
	         "Email"},
	        {"{\"LastName\":\"A\",\"Company\":\"C\",\"OwnerId\":\"005xx\"}", "MALFORMED_ID",
	         "OwnerId"},
	        {"{\"LastName\":\"A\",\"Company\":\"C\",\"OwnerId\":\"00Q000000000001AAA\"}",
	         "FIELD_INTEGRITY_EXCEPTION", "OwnerId"},
	        {"{\"LastName\":\"A\",\"Company\":\"C\",\"CreatedDate\":\"2020-01-01T00:00:00Z\"}",
	         "INVALID_FIELD_FOR_INSERT_UPDATE", "CreatedDate"},
	        {"{\"LastName\":\"A\",\"Company\":\"C\",\"First_Response_At__c\":\"yesterday\"}",
	         "JSON_PARSER_ERROR", ""},
	        {"{\"LastName\":\"A\",\"Company\":\"C\",\"Template_Applied__c\":{}}",
	         "JSON_PARSER_ERROR", ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&err, 0, sizeof(err));
		assert_null(create_lead(&f->sim, cases[i].json, id, &err));
		assert_string_equal(err.code, cases[i].code);
		assert_string_equal(err.field, cases[i].field);
		assert_int_equal(err.http_status, 400);
	}
	char longname[300];
	memset(longname, 'x', 256);
	longname[256] = '\0';
	char *json = NULL;
	assert_true(asprintf(&json, "{\"LastName\":\"A\",\"Company\":\"%s\"}", longname) > 0);
	assert_null(create_lead(&f->sim, json, id, &err));
	assert_string_equal(err.code, "STRING_TOO_LONG");
	free(json);
	/* Quoted values are cut on a character boundary: the message stays UTF-8. */
	/* Lengths count characters: 255 euro signs fit, 256 do not. */
	char euro[3 * 256 + 1] = "";
	for (int i = 0; i < 255; i++)
		memcpy(euro + 3 * i, "\xe2\x82\xac", 4);
	assert_true(asprintf(&json, "{\"LastName\":\"A\",\"Company\":\"%s\"}", euro) > 0);
	assert_non_null(create_lead(&f->sim, json, id, &err));
	free(json);
	memcpy(euro + 3 * 255, "\xe2\x82\xac", 4);
	assert_true(asprintf(&json, "{\"LastName\":\"A\",\"Company\":\"%s\"}", euro) > 0);
	assert_null(create_lead(&f->sim, json, id, &err));
	assert_string_equal(err.code, "STRING_TOO_LONG");
	json_t *m = json_string(err.message);
	assert_non_null(m);
	json_decref(m);
	free(json);
	/* Nothing but the one valid lead was written. */
	assert_int_equal(json_array_size(f->seen.events), 1);
}

static void system_and_derived_fields(void **state)
{
	struct fixture *f = *state;
	char lead[SIM_ID_BUF], task[SIM_ID_BUF];
	struct sim_error err;
	assert_non_null(create_lead(&f->sim,
	                            "{\"FirstName\":\"Ada\",\"LastName\":\"Lovelace\",\"Company\":"
	                            "\"C\",\"Owner_Assigned_At__c\":\"2026-11-21T11:15:00+01:00\"}",
	                            lead, &err));
	json_t *r = org_get(&f->sim, "Lead", lead, &err);
	assert_string_equal(json_string_value(json_object_get(r, "Name")), "Ada Lovelace");
	assert_string_equal(json_string_value(json_object_get(r, "Owner_Assigned_At__c")),
	                    "2026-11-21T10:15:00.000+0000");
	assert_string_equal(json_string_value(json_object_get(r, "Status")),
	                    "Open - Not Contacted");
	assert_string_equal(json_string_value(json_object_get(r, "OwnerId")),
	                    f->sim.default_user_id);
	assert_true(json_is_null(json_object_get(r, "Email")));
	assert_false(json_is_true(json_object_get(r, "IsConverted")));
	json_decref(r);

	json_t *t = json_pack("{s:s,s:s}", "WhoId", lead, "Subject", "Call");
	assert_int_equal(org_create(&f->sim, "Task", t, "", NULL, task, &err), 0);
	json_decref(t);
	r = org_get(&f->sim, "Task", task, &err);
	assert_false(json_is_true(json_object_get(r, "IsClosed")));
	assert_true(json_is_null(json_object_get(r, "CompletedDateTime")));
	json_decref(r);
	t = json_pack("{s:s}", "Status", "Completed");
	assert_int_equal(org_update(&f->sim, "Task", task, t, "", NULL, &err), 0);
	json_decref(t);
	r = org_get(&f->sim, "Task", task, &err);
	assert_true(json_is_true(json_object_get(r, "IsClosed")));
	assert_true(json_is_string(json_object_get(r, "CompletedDateTime")));
	json_decref(r);
	/* Required fields cannot be emptied ("" is null in Salesforce). */
	t = json_pack("{s:n}", "Status");
	assert_int_equal(org_update(&f->sim, "Task", task, t, "", NULL, &err), -1);
	assert_string_equal(err.code, "REQUIRED_FIELD_MISSING");
	json_decref(t);
	t = json_pack("{s:s}", "Company", "");
	assert_int_equal(org_update(&f->sim, "Lead", lead, t, "", NULL, &err), -1);
	assert_string_equal(err.code, "REQUIRED_FIELD_MISSING");
	assert_string_equal(err.field, "Company");
	json_decref(t);
	t = json_pack("{s:s}", "Email", "");
	assert_int_equal(org_update(&f->sim, "Lead", lead, t, "", NULL, &err), 0);
	json_decref(t);
	/* TaskSubtype is create-only. */
	t = json_pack("{s:s}", "TaskSubtype", "Email");
	assert_int_equal(org_update(&f->sim, "Task", task, t, "", NULL, &err), -1);
	assert_string_equal(err.code, "INVALID_FIELD_FOR_INSERT_UPDATE");
	json_decref(t);
}

static void change_hook_sees_commits(void **state)
{
	struct fixture *f = *state;
	char lead[SIM_ID_BUF];
	struct sim_error err;
	assert_non_null(create_lead(&f->sim, "{\"LastName\":\"A\",\"Company\":\"C\"}", lead, &err));
	json_t *p = json_pack("{s:s,s:s}", "Company", "C", "Routing_Reason__c", "rr");
	assert_int_equal(org_update(&f->sim, NULL, lead, p, "", NULL, &err), 0);
	json_decref(p);
	assert_int_equal(org_delete(&f->sim, "Lead", lead, "", NULL, &err), 0);
	p = json_pack("{s:s}", "Company", "D");
	assert_int_equal(org_update(&f->sim, "Lead", lead, p, "", NULL, &err), -1);
	assert_string_equal(err.code, "ENTITY_IS_DELETED");
	json_decref(p);
	assert_int_equal(org_undelete(&f->sim, "Lead", lead, "", NULL, &err), 0);

	json_t *ev = f->seen.events;
	assert_int_equal(json_array_size(ev), 4);
	const char *const want[] = {"CREATE", "UPDATE", "DELETE", "UNDELETE"};
	for (size_t i = 0; i < 4; i++) {
		json_t *e = json_array_get(ev, i);
		assert_string_equal(json_string_value(json_object_get(e, "change")), want[i]);
		assert_string_equal(json_string_value(json_object_get(e, "id")), lead);
		assert_int_equal(json_integer_value(json_object_get(e, "seq")), 1);
	}
	json_t *c0 = json_array_get(ev, 0), *c1 = json_array_get(ev, 1);
	assert_string_equal(json_string_value(json_object_get(c0, "origin")),
	                    "com/salesforce/api/rest/61.0;client=test");
	assert_string_equal(json_string_value(json_object_get(c1, "origin")), "");
	/* Company did not change: only the real change and LastModifiedDate. */
	json_t *changed = json_object_get(c1, "changed");
	assert_int_equal(json_array_size(changed), 2);
	assert_string_equal(json_string_value(json_array_get(changed, 0)), "Routing_Reason__c");
	assert_string_equal(json_string_value(json_array_get(changed, 1)), "LastModifiedDate");
	assert_string_not_equal(json_string_value(json_object_get(c0, "key")),
	                        json_string_value(json_object_get(c1, "key")));
}

static void one_transaction_shares_key_and_counts_sequence(void **state)
{
	struct fixture *f = *state;
	struct org_txn txn;
	struct sim_error err;
	char a[SIM_ID_BUF], b[SIM_ID_BUF];
	json_t *fields = json_pack("{s:s,s:s}", "LastName", "T", "Company", "C");
	org_lock(&f->sim);
	org_txn_begin(&f->sim, &txn, "x", NULL);
	assert_int_equal(org_create_locked(&f->sim, &txn, "Lead", fields, a, &err), 0);
	assert_int_equal(org_create_locked(&f->sim, &txn, "Lead", fields, b, &err), 0);
	org_unlock(&f->sim);
	json_decref(fields);
	json_t *e0 = json_array_get(f->seen.events, 0), *e1 = json_array_get(f->seen.events, 1);
	assert_string_equal(json_string_value(json_object_get(e0, "key")),
	                    json_string_value(json_object_get(e1, "key")));
	assert_int_equal(json_integer_value(json_object_get(e0, "seq")), 1);
	assert_int_equal(json_integer_value(json_object_get(e1, "seq")), 2);
	assert_string_not_equal(a, b);
}

static void email_message_gets_its_task(void **state)
{
	struct fixture *f = *state;
	char lead[SIM_ID_BUF], em[SIM_ID_BUF], rel[SIM_ID_BUF];
	struct sim_error err;
	assert_non_null(create_lead(&f->sim, "{\"LastName\":\"A\",\"Company\":\"C\"}", lead, &err));
	json_t *m = json_pack("{s:s,s:s,s:b,s:s}", "Subject", "Hi", "Status", "3", "Incoming", 0,
	                      "MessageDate", "2026-11-21T10:00:00Z");
	assert_int_equal(org_create(&f->sim, "EmailMessage", m, "", NULL, em, &err), 0);
	json_decref(m);
	json_t *r = org_get(&f->sim, "EmailMessage", em, &err);
	const char *task = json_string_value(json_object_get(r, "ActivityId"));
	assert_non_null(task);
	assert_memory_equal(task, "00T", 3);
	json_t *rl = json_pack("{s:s,s:s,s:s}", "EmailMessageId", em, "RelationId", lead,
	                       "RelationType", "ToAddress");
	assert_int_equal(org_create(&f->sim, "EmailMessageRelation", rl, "", NULL, rel, &err), 0);
	json_decref(rl);
	json_t *t = org_get(&f->sim, "Task", task, &err);
	assert_string_equal(json_string_value(json_object_get(t, "WhoId")), lead);
	assert_string_equal(json_string_value(json_object_get(t, "TaskSubtype")), "Email");
	assert_true(json_is_true(json_object_get(t, "IsClosed")));
	json_decref(t);
	json_decref(r);
	/* Status is a restricted picklist. */
	m = json_pack("{s:s}", "Status", "9");
	assert_int_equal(org_create(&f->sim, "EmailMessage", m, "", NULL, em, &err), -1);
	assert_string_equal(err.code, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
	json_decref(m);
}

static void lead_conversion(void **state)
{
	struct fixture *f = *state;
	char lead[SIM_ID_BUF], task[SIM_ID_BUF], other[SIM_ID_BUF], con[SIM_ID_BUF],
	        acc[SIM_ID_BUF];
	struct sim_error err;
	assert_non_null(create_lead(&f->sim,
	                            "{\"FirstName\":\"Ada\",\"LastName\":\"Byron\",\"Company\":"
	                            "\"Engines Ltd\",\"Country\":\"UK\",\"Email\":\"ada@e.test\"}",
	                            lead, &err));
	json_t *tf =
	        json_pack("{s:s,s:s,s:s}", "WhoId", lead, "Subject", "Call", "Status", "Completed");
	assert_int_equal(org_create(&f->sim, "Task", tf, "", NULL, task, &err), 0);
	json_decref(tf);
	tf = json_pack("{s:s}", "Subject", "unrelated");
	assert_int_equal(org_create(&f->sim, "Task", tf, "", NULL, other, &err), 0);
	json_decref(tf);
	size_t before = json_array_size(f->seen.events);

	assert_int_equal(org_convert_lead(&f->sim, lead, NULL, con, acc, &err), 0);
	assert_memory_equal(con, "003", 3);
	assert_memory_equal(acc, "001", 3);
	json_t *l = org_get(&f->sim, "Lead", lead, &err);
	assert_true(json_is_true(json_object_get(l, "IsConverted")));
	assert_string_equal(json_string_value(json_object_get(l, "ConvertedContactId")), con);
	assert_string_equal(json_string_value(json_object_get(l, "ConvertedAccountId")), acc);
	assert_string_equal(json_string_value(json_object_get(l, "Status")), "Closed - Converted");
	assert_int_equal(json_string_length(json_object_get(l, "ConvertedDate")), 10);
	json_decref(l);
	json_t *c = org_get(&f->sim, "Contact", con, &err);
	assert_string_equal(json_string_value(json_object_get(c, "Name")), "Ada Byron");
	assert_string_equal(json_string_value(json_object_get(c, "AccountId")), acc);
	assert_string_equal(json_string_value(json_object_get(c, "Email")), "ada@e.test");
	json_decref(c);
	json_t *a = org_get(&f->sim, "Account", acc, &err);
	assert_string_equal(json_string_value(json_object_get(a, "Name")), "Engines Ltd");
	json_decref(a);
	/* the Lead's Task moved to the Contact; the other one did not */
	json_t *t = org_get(&f->sim, "Task", task, &err);
	assert_string_equal(json_string_value(json_object_get(t, "WhoId")), con);
	assert_string_equal(json_string_value(json_object_get(t, "WhatId")), acc);
	json_decref(t);
	t = org_get(&f->sim, "Task", other, &err);
	assert_true(json_is_null(json_object_get(t, "WhoId")));
	json_decref(t);
	/* one transaction: Account, Contact, Lead and Task changes */
	size_t after = json_array_size(f->seen.events);
	assert_int_equal(after - before, 4);
	const char *key =
	        json_string_value(json_object_get(json_array_get(f->seen.events, before), "key"));
	for (size_t i = before; i < after; i++)
		assert_string_equal(json_string_value(json_object_get(
		                            json_array_get(f->seen.events, i), "key")),
		                    key);

	/* read-only afterwards, unless the user may edit converted Leads */
	json_t *p = json_pack("{s:s}", "Title", "CEO");
	assert_int_equal(org_update(&f->sim, "Lead", lead, p, "", NULL, &err), -1);
	assert_string_equal(err.code, "CANNOT_UPDATE_CONVERTED_LEAD");
	assert_int_equal(err.http_status, 400);
	assert_int_equal(org_convert_lead(&f->sim, lead, NULL, con, acc, &err), -1);
	assert_string_equal(err.code, "CANNOT_UPDATE_CONVERTED_LEAD");
	atomic_store(&f->sim.edit_converted_leads, 1);
	assert_int_equal(org_update(&f->sim, "Lead", lead, p, "", NULL, &err), 0);
	json_decref(p);
}

static void schema_and_describe(void **state)
{
	(void)state;
	const struct sim_object *lead = org_object("lead");
	assert_non_null(lead);
	assert_string_equal(lead->name, "Lead");
	assert_ptr_equal(org_object_by_prefix("00Q000000000001"), lead);
	const struct sim_field *f = org_field(lead, "owner_assigned_at__c");
	assert_non_null(f);
	assert_int_equal(f->type, SIM_F_DATETIME);
	assert_true(f->flags & SIM_FF_CUSTOM);
	json_t *d = org_describe(lead, "61.0");
	size_t i;
	json_t *fd;
	int found = 0;
	json_array_foreach(json_object_get(d, "fields"), i, fd)
	{
		if (strcmp(json_string_value(json_object_get(fd, "name")), "OwnerId") == 0) {
			found = 1;
			assert_string_equal(json_string_value(json_object_get(fd, "type")),
			                    "reference");
			assert_int_equal(json_array_size(json_object_get(fd, "referenceTo")), 2);
		}
	}
	assert_true(found);
	assert_string_equal(json_string_value(json_object_get(d, "keyPrefix")), "00Q");
	json_decref(d);
	int64_t ms;
	assert_int_equal(sim_parse_datetime("2026-11-21T10:15:00.5-02:30", &ms), 0);
	char buf[40];
	sim_format_datetime(ms, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-21T12:45:00.500+0000");
	assert_int_equal(sim_parse_datetime("2026-13-01T00:00:00Z", &ms), -1);
	assert_int_equal(sim_parse_datetime("2026-11-21", &ms), -1);
}

/* Records share repeating values (interned) yet stay independent: writing
 * one never shows in another; the org dump text is the org, with orgId. */
static void shared_values_stay_independent(void **state)
{
	struct fixture *f = *state;
	char a[SIM_ID_BUF], b[SIM_ID_BUF];
	struct sim_error err;
	assert_non_null(create_lead(
	        &f->sim, "{\"LastName\":\"A\",\"Company\":\"C\",\"Industry\":\"Banking\"}", a,
	        &err));
	assert_non_null(create_lead(
	        &f->sim, "{\"LastName\":\"B\",\"Company\":\"C\",\"Industry\":\"Banking\"}", b,
	        &err));
	json_t *fields =
	        json_pack("{s:s,s:s}", "Industry", "Energy", "Status", "Working - Contacted");
	assert_int_equal(org_update(&f->sim, "Lead", a, fields, "", NULL, &err), 0);
	json_decref(fields);
	json_t *ra = org_get(&f->sim, "Lead", a, &err), *rb = org_get(&f->sim, "Lead", b, &err);
	assert_string_equal(json_string_value(json_object_get(ra, "Industry")), "Energy");
	assert_string_equal(json_string_value(json_object_get(ra, "Status")),
	                    "Working - Contacted");
	assert_string_equal(json_string_value(json_object_get(rb, "Industry")), "Banking");
	assert_string_equal(json_string_value(json_object_get(rb, "Status")),
	                    "Open - Not Contacted");
	json_decref(ra);
	json_decref(rb);

	size_t len;
	char *text = org_dump_text(&f->sim, &len);
	json_t *dump = json_loadb(text, len, 0, NULL), *want = org_dump(&f->sim);
	free(text);
	assert_non_null(dump);
	assert_string_equal(json_string_value(json_object_get(dump, "orgId")), f->sim.org_id);
	json_object_del(dump, "orgId");
	assert_true(json_equal(dump, want));
	assert_int_equal(json_array_size(json_object_get(dump, "Lead")), 2);
	json_decref(dump);
	json_decref(want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(ids_have_prefix_and_checksum, setup, teardown),
	        cmocka_unit_test_setup_teardown(shared_values_stay_independent, setup, teardown),
	        cmocka_unit_test_setup_teardown(same_seed_same_ids, setup, teardown),
	        cmocka_unit_test_setup_teardown(validation_error_codes, setup, teardown),
	        cmocka_unit_test_setup_teardown(system_and_derived_fields, setup, teardown),
	        cmocka_unit_test_setup_teardown(change_hook_sees_commits, setup, teardown),
	        cmocka_unit_test_setup_teardown(one_transaction_shares_key_and_counts_sequence,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(email_message_gets_its_task, setup, teardown),
	        cmocka_unit_test_setup_teardown(lead_conversion, setup, teardown),
	        cmocka_unit_test(schema_and_describe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
