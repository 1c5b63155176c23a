/*
 * test_first_touch.c - the pure parts of lead.first_touch_detect: dates,
 * earliest-wins over every arrival order (with a Redis restart), TTFR
 * minutes, which Tasks/emails are responses and how an email finds its Lead.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/first_touch.c"
#include "../../workers/wl_sf.c"

/* lead.route's policy is not under test here (test_route covers it): the
 * workload only asks it for labels, and these tests never load one. */
struct route_policy *route_policy_load(const char *policy_path, const char *schema_path,
                                       json_t **problems)
{
	(void)policy_path;
	(void)schema_path;
	*problems = NULL;
	return NULL;
}
void route_policy_free(struct route_policy *p)
{
	(void)p;
}
const char *route_segment(const struct route_policy *p, long long employees)
{
	(void)p;
	(void)employees;
	return NULL;
}
const char *route_region(const struct route_policy *p, const char *country)
{
	(void)p;
	(void)country;
	return NULL;
}

#define LEAD1 "00Q5e00000AbCdEEAV"
#define USER1 "0055e00000UsR01AAF"

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	if (!j)
		fail_msg("bad test JSON: %s at %d", je.text, je.column);
	return j;
}

static char *id(const char *prefix, uint64_t n)
{
	static char buf[8][19];
	static int k;
	char *b = buf[k++ % 8];
	assert_int_equal(sfid_make(b, prefix, n), 0);
	return b;
}

static void datetimes(void **state)
{
	(void)state;
	char buf[FT_DATE_MAX];
	int64_t z = ft_parse_datetime("2026-11-20T09:15:02.000Z");
	assert_true(z > 0);
	assert_int_equal(ft_parse_datetime("2026-11-20T09:15:02.000+0000"), z);
	assert_int_equal(ft_parse_datetime("2026-11-20T09:15:02Z"), z);
	assert_int_equal(ft_parse_datetime("2026-11-20T10:15:02.000+01:00"), z);
	assert_int_equal(ft_parse_datetime("2026-11-20T09:15:02.250Z"), z + 250);
	assert_int_equal(ft_parse_datetime("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(ft_parse_datetime("2000-03-01T00:00:00Z"), 951868800000LL);
	assert_int_equal(ft_parse_datetime("2026-11-20"), -1);
	assert_int_equal(ft_parse_datetime("2026-13-20T09:15:02Z"), -1);
	assert_int_equal(ft_parse_datetime("2026-11-20T09:15:02Zjunk"), -1);
	assert_int_equal(ft_parse_datetime(NULL), -1);
	assert_int_equal(ft_format_datetime(z + 7, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2026-11-20T09:15:02.007Z");
	assert_int_equal(ft_parse_datetime(buf), z + 7);
	assert_int_equal(ft_format_datetime(z, buf, 10), -1);
}

static void values_round_trip(void **state)
{
	(void)state;
	struct ft_resp r = {.at_ms = 1763630102000LL, .source = "EmailMessage"}, back;
	char v[FT_VALUE_MAX];
	snprintf(r.user, sizeof(r.user), "%s", USER1);
	snprintf(r.ref, sizeof(r.ref), "%s", id("02s", 5));
	assert_int_equal(ft_resp_format(&r, v, sizeof(v)), 0);
	assert_int_equal(ft_resp_parse(v, &back), 0);
	assert_int_equal(back.at_ms, r.at_ms);
	assert_string_equal(back.source, "EmailMessage");
	assert_string_equal(back.user, USER1);
	assert_string_equal(back.ref, r.ref);
	assert_int_equal(ft_resp_parse("17|Task||", &back), 0);
	assert_int_equal(back.at_ms, 17);
	assert_string_equal(back.user, "");
	assert_int_equal(ft_resp_parse("x|Task||", &back), -1);
	assert_int_equal(back.at_ms, -1);
	assert_int_equal(ft_resp_parse("17|Task|", &back), -1);
	assert_int_equal(ft_resp_parse(NULL, &back), -1);
}

/*
 * The state a Lead goes through: Redis (the Lua min, modelled by the same
 * rule), Salesforce's stored value, and the batch. Feed responses one per
 * batch in the given order, optionally wiping Redis before batch `wipe`,
 * and return what Salesforce ends up holding and how many writes it took.
 */
struct world {
	struct ft_resp redis, sf;
	int writes;
};

static void deliver(struct world *w, const struct ft_resp *r)
{
	struct ft_resp eff, lua = w->redis;
	/* Lua: min over stored, batch, Salesforce (ties keep Redis's) */
	if (ft_earlier(r, &lua))
		lua = *r;
	if (ft_earlier(&w->sf, &lua))
		lua = w->sf;
	w->redis = lua;
	if (ft_resolve(&lua, r, &w->sf, &eff)) {
		w->sf = eff;
		w->writes++;
	}
}

static struct ft_resp mk(int64_t at, const char *source, const char *ref)
{
	struct ft_resp r = {.at_ms = at};
	snprintf(r.source, sizeof(r.source), "%s", source);
	snprintf(r.ref, sizeof(r.ref), "%s", ref);
	return r;
}

static void earliest_wins_every_order(void **state)
{
	(void)state;
	struct ft_resp rs[4] = {mk(5000, "Task", "t1"), mk(2000, "EmailMessage", "e1"),
	                        mk(9000, "Task", "t2"), mk(2000, "Task", "t3")};
	/* every permutation of 4 (24) x Redis wiped before batch 0..4 */
	int perm[4] = {0, 1, 2, 3};
	int seen = 0;
	for (int a = 0; a < 4; a++)
		for (int b = 0; b < 4; b++)
			for (int c = 0; c < 4; c++)
				for (int d = 0; d < 4; d++) {
					if (a == b || a == c || a == d || b == c || b == d ||
					    c == d)
						continue;
					perm[0] = a, perm[1] = b, perm[2] = c, perm[3] = d;
					for (int wipe = 0; wipe <= 4; wipe++) {
						struct world w = {.redis = {.at_ms = -1},
						                  .sf = {.at_ms = -1}};
						for (int k = 0; k < 4; k++) {
							if (k == wipe)
								w.redis.at_ms = -1;
							deliver(&w, &rs[perm[k]]);
						}
						assert_int_equal(w.sf.at_ms, 2000);
						/* the tie goes to whichever 2000 came first */
						int first2000 = -1;
						for (int k = 0; k < 4 && first2000 < 0; k++)
							if (rs[perm[k]].at_ms == 2000)
								first2000 = perm[k];
						assert_string_equal(w.sf.ref, rs[first2000].ref);
						/* one write per improvement, never more than 3 */
						assert_true(w.writes >= 1 && w.writes <= 3);
						seen++;
					}
				}
	assert_int_equal(seen, 24 * 5);

	/* later after earlier: no write at all */
	struct world w = {.redis = {.at_ms = -1}, .sf = {.at_ms = -1}};
	deliver(&w, &rs[1]);
	assert_int_equal(w.writes, 1);
	deliver(&w, &rs[0]);
	deliver(&w, &rs[2]);
	w.redis.at_ms = -1; /* Redis restarted empty */
	deliver(&w, &rs[2]);
	assert_int_equal(w.writes, 1);
	assert_int_equal(w.sf.at_ms, 2000);
}

static void resolve_rules(void **state)
{
	(void)state;
	struct ft_resp eff, sf = mk(3000, "Task", "t"), early = mk(1000, "EmailMessage", "e"),
	                    late = mk(4000, "Task", "l"), none = {.at_ms = -1};
	assert_int_equal(ft_resolve(NULL, &early, NULL, &eff), 1);
	assert_int_equal(eff.at_ms, 1000);
	assert_int_equal(ft_resolve(NULL, &late, &sf, &eff), 0);
	assert_int_equal(eff.at_ms, 3000);
	/* Redis remembers an earlier one whose write failed: it is written now */
	assert_int_equal(ft_resolve(&early, &late, &sf, &eff), 1);
	assert_string_equal(eff.ref, "e");
	/* equal to stored: not strictly earlier */
	struct ft_resp same = mk(3000, "EmailMessage", "x");
	assert_int_equal(ft_resolve(&same, &same, &sf, &eff), 0);
	assert_string_equal(eff.ref, "t");
	assert_int_equal(ft_resolve(&none, &none, &none, &eff), 0);
	assert_int_equal(eff.at_ms, -1);
}

static void ttfr_minutes(void **state)
{
	(void)state;
	int64_t c = ft_parse_datetime("2026-11-20T09:00:00Z");
	assert_true(ft_ttfr_minutes(c + 90 * 1000, c) == 1.5);
	assert_true(ft_ttfr_minutes(c + 3600 * 1000, c) == 60.0);
	assert_true(ft_ttfr_minutes(c + 1000, c) == 0.02); /* 1/60 rounded to 2 decimals */
	assert_true(ft_ttfr_minutes(c - 5000, c) == 0.0);
	assert_true(ft_ttfr_minutes(c + 26LL * 3600 * 1000 + 30000, c) == 1560.5);
}

static const char *const types[] = {"Call", "Email", "Meeting", NULL};
static const char *const subtypes[] = {"Call", "Email", NULL};
static const struct ft_taskset set = {types, subtypes};

static void task_responses(void **state)
{
	(void)state;
	struct ft_resp r;
	char lead[19];
	const char *why;
	char text[1024];
	const char *task_id = id("00T", 1);
	snprintf(text, sizeof(text),
	         "{\"Id\":\"%s\",\"WhoId\":\"%s\",\"OwnerId\":\"%s\",\"Status\":\"Completed\","
	         "\"TaskSubtype\":\"Call\",\"CreatedDate\":\"2026-11-20T09:15:02.000Z\","
	         "\"CompletedDateTime\":\"2026-11-20T09:20:00.000Z\"}",
	         task_id, LEAD1, USER1);
	json_t *t = parse(text);
	assert_int_equal(ft_task_response(t, &set, &r, lead, &why), 1);
	assert_string_equal(lead, LEAD1);
	assert_string_equal(r.source, "Task");
	assert_string_equal(r.user, USER1);
	assert_string_equal(r.ref, task_id);
	assert_int_equal(r.at_ms, ft_parse_datetime("2026-11-20T09:20:00Z"));
	/* no CompletedDateTime: CreatedDate */
	json_object_del(t, "CompletedDateTime");
	json_object_set_new(t, "IsClosed", json_true());
	assert_int_equal(ft_task_response(t, &set, &r, lead, &why), 1);
	assert_int_equal(r.at_ms, ft_parse_datetime("2026-11-20T09:15:02Z"));
	/* open */
	json_object_set_new(t, "IsClosed", json_false());
	json_object_set_new(t, "Status", json_string("Not Started"));
	assert_int_equal(ft_task_response(t, &set, &r, lead, &why), 0);
	assert_string_equal(why, "task_open");
	assert_int_equal(r.at_ms, -1);
	json_object_set_new(t, "Status", json_string("Completed"));
	/* a plain to-do is not a response */
	json_object_set_new(t, "TaskSubtype", json_string("Task"));
	assert_int_equal(ft_task_response(t, &set, &r, lead, &why), 0);
	assert_string_equal(why, "task_type_not_counted");
	json_object_set_new(t, "Type", json_string("Meeting"));
	assert_int_equal(ft_task_response(t, &set, &r, lead, &why), 1);
	/* on a Contact, or without WhoId */
	json_object_set_new(t, "WhoId", json_string(id("003", 9)));
	assert_int_equal(ft_task_response(t, &set, &r, lead, &why), 0);
	assert_string_equal(why, "task_not_on_lead");
	json_object_del(t, "WhoId");
	assert_int_equal(ft_task_response(t, &set, &r, lead, &why), 0);
	assert_string_equal(lead, "");
	json_decref(t);
}

static void email_responses(void **state)
{
	(void)state;
	struct ft_resp r;
	const char *why;
	char text[1024];
	const char *eid = id("02s", 3);
	snprintf(text, sizeof(text),
	         "{\"Id\":\"%s\",\"Incoming\":false,\"Status\":\"3\",\"MessageDate\":"
	         "\"2026-11-20T09:16:00.000Z\",\"CreatedDate\":\"2026-11-20T09:30:00.000Z\"}",
	         eid);
	json_t *e = parse(text);
	/* no CreatedById: the commit user */
	assert_int_equal(ft_email_response(e, USER1, &r, &why), 1);
	assert_string_equal(r.source, "EmailMessage");
	assert_string_equal(r.user, USER1);
	assert_string_equal(r.ref, eid);
	assert_int_equal(r.at_ms, ft_parse_datetime("2026-11-20T09:16:00Z"));
	json_object_del(e, "MessageDate");
	assert_int_equal(ft_email_response(e, NULL, &r, &why), 1);
	assert_int_equal(r.at_ms, ft_parse_datetime("2026-11-20T09:30:00Z"));
	assert_string_equal(r.user, "");
	json_object_set_new(e, "Status", json_string("5")); /* draft */
	assert_int_equal(ft_email_response(e, NULL, &r, &why), 0);
	assert_string_equal(why, "email_not_sent");
	json_object_set_new(e, "Status", json_string("3"));
	json_object_set_new(e, "Incoming", json_true());
	assert_int_equal(ft_email_response(e, NULL, &r, &why), 0);
	assert_string_equal(why, "email_incoming");
	json_decref(e);
}

static void email_to_lead(void **state)
{
	(void)state;
	char lead[19], text[2048];
	const char *eid = id("02s", 7), *other = id("02s", 8), *lead2 = id("00Q", 2),
	           *lead3 = id("00Q", 3), *contact = id("003", 1), *task = id("00T", 4);
	/* relations: a FromAddress user, a To contact, two To/Cc leads of which one
	 * belongs to another email */
	snprintf(
	        text, sizeof(text),
	        "[{\"EmailMessageId\":\"%s\",\"RelationId\":\"%s\",\"RelationType\":"
	        "\"FromAddress\"},"
	        "{\"EmailMessageId\":\"%s\",\"RelationId\":\"%s\",\"RelationType\":\"ToAddress\"},"
	        "{\"EmailMessageId\":\"%s\",\"RelationId\":\"%s\",\"RelationType\":\"CcAddress\"},"
	        "{\"EmailMessageId\":\"%s\",\"RelationId\":\"%s\",\"RelationType\":\"ToAddress\"},"
	        "{\"EmailMessageId\":\"%s\",\"RelationId\":\"%s\",\"RelationType\":\"ToAddress\"}]",
	        eid, USER1, eid, contact, eid, lead3, other, lead2, eid, lead3);
	json_t *rels = parse(text);
	snprintf(text, sizeof(text), "{\"%s\":{\"Id\":\"%s\",\"WhoId\":\"%s\"}}", task, task,
	         lead2);
	json_t *tasks = parse(text);
	assert_int_equal(ft_email_lead(eid, task, rels, tasks, lead), 1);
	assert_string_equal(lead, lead3);
	/* two Lead recipients: the smallest id, whatever the row order */
	snprintf(
	        text, sizeof(text),
	        "[{\"EmailMessageId\":\"%s\",\"RelationId\":\"%s\",\"RelationType\":\"ToAddress\"},"
	        "{\"EmailMessageId\":\"%s\",\"RelationId\":\"%s\",\"RelationType\":\"BccAddress\"}"
	        "]",
	        eid, lead3, eid, lead2);
	json_t *two = parse(text);
	assert_int_equal(ft_email_lead(eid, NULL, two, NULL, lead), 1);
	assert_string_equal(lead, strcmp(lead2, lead3) < 0 ? lead2 : lead3);
	/* only a contact relation: through the Task's WhoId */
	json_t *none = json_array();
	assert_int_equal(ft_email_lead(other, task, none, tasks, lead), 2);
	assert_string_equal(lead, lead2);
	/* the Task is on a Contact: no Lead */
	json_object_set_new(json_object_get(tasks, task), "WhoId", json_string(contact));
	assert_int_equal(ft_email_lead(other, task, none, tasks, lead), 0);
	assert_string_equal(lead, "");
	/* Task not looked up / no activity */
	assert_int_equal(ft_email_lead(other, NULL, none, tasks, lead), 0);
	assert_int_equal(ft_email_lead("garbage", task, rels, tasks, lead), 0);
	json_decref(none);
	json_decref(two);
	json_decref(tasks);
	json_decref(rels);
}

static void segments(void **state)
{
	(void)state;
	json_t *n = json_integer(99);
	assert_string_equal(ft_segment(n, 100, 1000), "SMB");
	json_integer_set(n, 100);
	assert_string_equal(ft_segment(n, 100, 1000), "MM");
	json_integer_set(n, 1000);
	assert_string_equal(ft_segment(n, 100, 1000), "ENT");
	assert_string_equal(ft_segment(NULL, 100, 1000), "UNKNOWN");
	json_decref(n);
}

static void labels_without_routing_policy(void **state)
{
	(void)state;
	struct ft_state st = {0};
	const char *seg, *region;
	json_t *row = parse("{\"NumberOfEmployees\":1500,\"Country\":\"France\"}");
	g_mm_min = 100;
	g_ent_min = 1000;
	labels(&st, row, &seg, &region);
	assert_string_equal(seg, "ENT");
	assert_string_equal(region, "UNKNOWN");
	labels(&st, NULL, &seg, &region);
	assert_string_equal(seg, "UNKNOWN");
	json_decref(row);
}

static void lists(void **state)
{
	(void)state;
	char *l[FT_LIST_MAX + 1];
	assert_int_equal(split_list(" Call, Email ,,Meeting ", l), 0);
	assert_string_equal(l[0], "Call");
	assert_string_equal(l[1], "Email");
	assert_string_equal(l[2], "Meeting");
	assert_null(l[3]);
	for (int i = 0; l[i]; i++)
		free(l[i]);
	assert_int_equal(split_list("", l), 0);
	assert_null(l[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(datetimes),
	        cmocka_unit_test(values_round_trip),
	        cmocka_unit_test(earliest_wins_every_order),
	        cmocka_unit_test(resolve_rules),
	        cmocka_unit_test(ttfr_minutes),
	        cmocka_unit_test(task_responses),
	        cmocka_unit_test(email_responses),
	        cmocka_unit_test(email_to_lead),
	        cmocka_unit_test(segments),
	        cmocka_unit_test(lists),
	        cmocka_unit_test(labels_without_routing_policy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
