/*
 * test_sla.c - lead.sla_watch's pure core: time zones read from the tz
 * database (transitions and the POSIX footer past them), local -> UTC across
 * DST gaps and overlaps, working-time arithmetic (weekend skip, overnight,
 * DST weeks), and the SLA part of the routing policy with JSON paths.
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

#include "../../workers/sla.c"

/* Epoch ms of a UTC wall time. */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
	return (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60) * 1000;
}

static struct sla_tz *zone(const char *name)
{
	char err[256];
	struct sla_tz *z = sla_tz_load(NULL, name, err, sizeof err);
	if (!z)
		fprintf(stderr, "%s\n", err);
	assert_non_null(z);
	return z;
}

/* Mon-Fri 09:00-17:00 in zone tz. */
static void office(struct sla_hours *h, const char *tz)
{
	memset(h, 0, sizeof *h);
	h->tz = zone(tz);
	for (int d = 1; d <= 5; d++) {
		h->win[d][0].start_min = 9 * 60;
		h->win[d][0].end_min = 17 * 60;
		h->nwin[d] = 1;
	}
}

static void test_offsets_at_transitions(void **state)
{
	(void)state;
	struct sla_tz *ny = zone("America/New_York");
	/* 2026-03-08 02:00 EST -> 03:00 EDT at 07:00Z; 2026-11-01 02:00 EDT -> 01:00 EST at 06:00Z
	 */
	assert_int_equal(sla_tz_offset(ny, utc(2026, 3, 8, 7, 0) / 1000 - 1), -5 * 3600);
	assert_int_equal(sla_tz_offset(ny, utc(2026, 3, 8, 7, 0) / 1000), -4 * 3600);
	assert_int_equal(sla_tz_offset(ny, utc(2026, 11, 1, 6, 0) / 1000 - 1), -4 * 3600);
	assert_int_equal(sla_tz_offset(ny, utc(2026, 11, 1, 6, 0) / 1000), -5 * 3600);
	sla_tz_free(ny);
}

static void test_footer_rule_past_the_table(void **state)
{
	(void)state;
	struct sla_tz *ny = zone("America/New_York"), *be = zone("Europe/Berlin"),
	              *sy = zone("Australia/Sydney");
	/* 2100 lies past any file's transitions: the POSIX rule decides */
	assert_int_equal(sla_tz_offset(ny, utc(2100, 7, 1, 12, 0) / 1000), -4 * 3600);
	assert_int_equal(sla_tz_offset(ny, utc(2100, 1, 15, 12, 0) / 1000), -5 * 3600);
	assert_int_equal(sla_tz_offset(be, utc(2100, 7, 1, 12, 0) / 1000), 2 * 3600);
	assert_int_equal(sla_tz_offset(be, utc(2100, 12, 1, 12, 0) / 1000), 1 * 3600);
	assert_int_equal(sla_tz_offset(sy, utc(2100, 1, 15, 12, 0) / 1000), 11 * 3600);
	assert_int_equal(sla_tz_offset(sy, utc(2100, 7, 1, 12, 0) / 1000), 10 * 3600);
	/* US rule in 2100: second Sunday of March is the 14th; 02:00 EST = 07:00Z */
	assert_int_equal(sla_tz_offset(ny, utc(2100, 3, 14, 7, 0) / 1000 - 1), -5 * 3600);
	assert_int_equal(sla_tz_offset(ny, utc(2100, 3, 14, 7, 0) / 1000), -4 * 3600);
	sla_tz_free(ny);
	sla_tz_free(be);
	sla_tz_free(sy);
}

static void test_posix_strings(void **state)
{
	(void)state;
	struct posix_tz p;
	assert_int_equal(parse_posix("<+0530>-5:30", &p), 0);
	assert_int_equal(p.std_off, 5 * 3600 + 30 * 60);
	assert_false(p.has_dst);
	assert_int_equal(parse_posix("AEST-10AEDT,M10.1.0,M4.1.0/3", &p), 0);
	assert_int_equal(posix_offset(&p, utc(2030, 1, 10, 0, 0) / 1000), 11 * 3600);
	assert_int_equal(posix_offset(&p, utc(2030, 6, 10, 0, 0) / 1000), 10 * 3600);
	assert_int_equal(parse_posix("EST5EDT,M3.2.0,M11.1.0", &p), 0);
	assert_int_equal(p.dst_off, -4 * 3600);
	assert_int_equal(parse_posix("EST5EDT,M13.2.0,M11.1.0", &p), -1);
	assert_int_equal(parse_posix("X5", &p), -1);
}

static void test_bad_zones_refused(void **state)
{
	(void)state;
	char err[256];
	static const unsigned char junk[] = "TZif2 not really a zone file at all.......";
	assert_null(sla_tz_load(NULL, "Mars/Olympus_Mons", err, sizeof err));
	assert_non_null(strstr(err, "Mars/Olympus_Mons"));
	assert_null(sla_tz_load(NULL, "../../etc/passwd", err, sizeof err));
	assert_null(sla_tz_load(NULL, "/etc/localtime", err, sizeof err));
	assert_null(sla_tz_parse(junk, sizeof junk, err, sizeof err));
}

static void test_local_to_utc_gap_and_overlap(void **state)
{
	(void)state;
	struct sla_tz *ny = zone("America/New_York");
	int64_t l = days_from_civil(2026, 7, 1) * 86400 + 12 * 3600;
	assert_int_equal(sla_tz_to_utc(ny, l) * 1000, utc(2026, 7, 1, 16, 0));
	/* 02:30 does not exist on 2026-03-08: the jump's end (03:00 EDT = 07:00Z) */
	l = days_from_civil(2026, 3, 8) * 86400 + 2 * 3600 + 30 * 60;
	assert_int_equal(sla_tz_to_utc(ny, l) * 1000, utc(2026, 3, 8, 7, 0));
	/* 01:30 happens twice on 2026-11-01: the first (EDT, 05:30Z) */
	l = days_from_civil(2026, 11, 1) * 86400 + 1 * 3600 + 30 * 60;
	assert_int_equal(sla_tz_to_utc(ny, l) * 1000, utc(2026, 11, 1, 5, 30));
	sla_tz_free(ny);
}

static void test_work_add_weekend_skip(void **state)
{
	(void)state;
	struct sla_hours h;
	office(&h, "America/New_York");
	/* Fri 2026-11-20 16:30 EST + 60 working minutes: 30 on Friday, 30 on Monday */
	assert_int_equal(sla_work_add(&h, utc(2026, 11, 20, 21, 30), 60),
	                 utc(2026, 11, 23, 14, 30));
	/* Saturday noon + 60: Monday 10:00 EST */
	assert_int_equal(sla_work_add(&h, utc(2026, 11, 21, 17, 0), 60), utc(2026, 11, 23, 15, 0));
	sla_tz_free(h.tz);
}

static void test_work_add_overnight_and_within_day(void **state)
{
	(void)state;
	struct sla_hours h;
	office(&h, "America/New_York");
	/* Tue 2026-11-17 18:00 EST (after hours) + 30: Wed 09:30 EST */
	assert_int_equal(sla_work_add(&h, utc(2026, 11, 17, 23, 0), 30), utc(2026, 11, 18, 14, 30));
	/* Tue 10:00 + 90: same day 11:30 */
	assert_int_equal(sla_work_add(&h, utc(2026, 11, 17, 15, 0), 90), utc(2026, 11, 17, 16, 30));
	/* Tue 07:00 (before opening) + 60: 10:00 */
	assert_int_equal(sla_work_add(&h, utc(2026, 11, 17, 12, 0), 60), utc(2026, 11, 17, 15, 0));
	/* Mon 09:00 + two full days + 30 min: Wed 09:30 */
	assert_int_equal(sla_work_add(&h, utc(2026, 11, 16, 14, 0), 2 * 480 + 30),
	                 utc(2026, 11, 18, 14, 30));
	/* exactly at closing: the deadline is the closing instant, not the next morning */
	assert_int_equal(sla_work_add(&h, utc(2026, 11, 17, 21, 0), 60), utc(2026, 11, 17, 22, 0));
	assert_int_equal(sla_work_add(&h, utc(2026, 11, 17, 15, 0), 0), utc(2026, 11, 17, 15, 0));
	sla_tz_free(h.tz);
}

static void test_work_add_across_dst(void **state)
{
	(void)state;
	struct sla_hours h;
	office(&h, "America/New_York");
	/* Fri 2026-03-06 16:00 EST + 120: 60 on Friday, then Monday 03-09 10:00 EDT = 14:00Z
	 * (a fixed -5 h offset would say 15:00Z) */
	assert_int_equal(sla_work_add(&h, utc(2026, 3, 6, 21, 0), 120), utc(2026, 3, 9, 14, 0));
	/* Fall back: Fri 2026-10-30 16:00 EDT + 120 -> Mon 11-02 10:00 EST = 15:00Z */
	assert_int_equal(sla_work_add(&h, utc(2026, 10, 30, 20, 0), 120), utc(2026, 11, 2, 15, 0));
	sla_tz_free(h.tz);

	/* Sundays 00:00-24:00: the spring-forward Sunday has 23 working hours */
	memset(&h, 0, sizeof h);
	h.tz = zone("America/New_York");
	h.win[0][0].start_min = 0;
	h.win[0][0].end_min = 1440;
	h.nwin[0] = 1;
	assert_int_equal(sla_work_add(&h, utc(2026, 3, 8, 5, 0), 24 * 60), utc(2026, 3, 15, 5, 0));
	/* ... and the fall-back Sunday 25 */
	assert_int_equal(sla_work_add(&h, utc(2026, 11, 1, 4, 0), 25 * 60), utc(2026, 11, 2, 5, 0));
	sla_tz_free(h.tz);

	/* Europe/London: last Sunday of March 2026 is the 29th; 09:00 BST = 08:00Z */
	office(&h, "Europe/London");
	assert_int_equal(sla_work_add(&h, utc(2026, 3, 27, 16, 0), 120), utc(2026, 3, 30, 9, 0));
	sla_tz_free(h.tz);
}

static void test_work_add_calendar_and_empty_week(void **state)
{
	(void)state;
	struct sla_hours h;
	assert_int_equal(sla_work_add(NULL, utc(2026, 11, 21, 17, 0), 60),
	                 utc(2026, 11, 21, 18, 0));
	memset(&h, 0, sizeof h);
	h.tz = zone("UTC");
	assert_int_equal(sla_work_add(&h, utc(2026, 11, 21, 17, 0), 60), -1);
	sla_tz_free(h.tz);
}

static json_t *policy_doc(void)
{
	char path[1024];
	const char *src = getenv("SFK_SOURCE_DIR");
	json_error_t je;
	snprintf(path, sizeof path, "%s/policies/routing_policy.json", src ? src : ".");
	json_t *doc = json_load_file(path, 0, &je);
	assert_non_null(doc);
	return doc;
}

static void test_shipped_policy(void **state)
{
	(void)state;
	json_t *doc = policy_doc(), *problems = NULL;
	struct sla_policy *p = sla_policy_from_json(doc, NULL, &problems);
	assert_null(problems);
	assert_non_null(p);
	assert_non_null(sla_policy_hours(p, "NA"));
	assert_string_equal(sla_policy_hours(p, "NA")->tz_name, "America/New_York");
	assert_null(sla_policy_hours(p, "LATAM")); /* not listed: calendar minutes */
	assert_true(p->notify);
	assert_true(p->max_escalations >= 1);
	sla_policy_free(p);
	json_decref(doc);
}

static int has(json_t *problems, const char *needle)
{
	size_t i;
	json_t *v;
	json_array_foreach(problems, i, v) if (strstr(json_string_value(v), needle)) return 1;
	return 0;
}

static void test_policy_problems_with_paths(void **state)
{
	(void)state;
	json_t *doc = policy_doc(), *problems = NULL;
	json_t *bh =
	        json_pack("{s:{s:s, s:{s:[s]}}, s:{s:s, s:{s:[s], s:[s,s]}}, s:{s:s, s:{s:[s]}}, "
	                  "s:{s:s, s:{}}}",
	                  "NA", "time_zone", "Mars/Olympus_Mons", "week", "mon", "09:00-17:00",
	                  "EMEA", "time_zone", "Europe/London", "week", "tue", "17:00-09:00", "wed",
	                  "09:00-12:00", "11:00-13:00", "ATLANTIS", "time_zone", "UTC", "week",
	                  "mon", "09:00-17:00", "APAC", "time_zone", "Asia/Tokyo", "week");
	json_object_set_new(doc, "business_hours", bh);
	json_object_set_new(doc, "sla_escalation", json_pack("{s:i}", "max_escalations", 0));
	assert_null(sla_policy_from_json(doc, NULL, &problems));
	assert_true(has(problems, "$.business_hours.NA.time_zone: time zone Mars/Olympus_Mons"));
	assert_true(has(problems, "$.business_hours.EMEA.week.tue[0]"));
	assert_true(has(problems, "$.business_hours.EMEA.week.wed[1]: overlaps"));
	assert_true(has(problems, "$.business_hours.ATLANTIS: not a region"));
	assert_true(has(problems, "$.business_hours.APAC.week: no working window"));
	assert_true(has(problems, "$.sla_escalation.max_escalations"));
	assert_int_equal(json_array_size(problems), 6);
	json_decref(problems);
	json_decref(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_offsets_at_transitions),
	        cmocka_unit_test(test_footer_rule_past_the_table),
	        cmocka_unit_test(test_posix_strings),
	        cmocka_unit_test(test_bad_zones_refused),
	        cmocka_unit_test(test_local_to_utc_gap_and_overlap),
	        cmocka_unit_test(test_work_add_weekend_skip),
	        cmocka_unit_test(test_work_add_overnight_and_within_day),
	        cmocka_unit_test(test_work_add_across_dst),
	        cmocka_unit_test(test_work_add_calendar_and_empty_week),
	        cmocka_unit_test(test_shipped_policy),
	        cmocka_unit_test(test_policy_problems_with_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
