/*
 * test_route.c - lead.route policy: schema validation with JSON paths, the
 * semantic checks, segment/region/pool/fallback evaluation, and the weighted
 * round robin (shares within 1 of the weights after every prefix, daily caps).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/llm.c"
#include "../../workers/route.c"

static char g_policy[1024], g_schema[1024];

static void paths(void)
{
	const char *src = getenv("SFK_SOURCE_DIR");
	if (!src)
		src = ".";
	snprintf(g_policy, sizeof g_policy, "%s/policies/routing_policy.json", src);
	snprintf(g_schema, sizeof g_schema, "%s/schemas/routing_policy.schema.json", src);
}

static struct route_policy *shipped(void)
{
	json_t *problems = NULL;
	struct route_policy *p;
	paths();
	p = route_policy_load(g_policy, g_schema, &problems);
	if (!p) {
		size_t i;
		json_t *v;
		json_array_foreach(problems, i, v)
		        fprintf(stderr, "problem: %s\n", json_string_value(v));
	}
	assert_non_null(p);
	assert_null(problems);
	return p;
}

static int has_problem(json_t *problems, const char *needle)
{
	size_t i;
	json_t *v;
	json_array_foreach(problems, i, v) if (strstr(json_string_value(v), needle)) return 1;
	return 0;
}

static void test_shipped_policy_loads(void **state)
{
	(void)state;
	struct route_policy *p = shipped();
	assert_string_equal(route_policy_version(p), "1.0.0");
	assert_true(route_npools(p) > 0);
	route_policy_free(p);
}

static void test_three_mistakes_all_reported(void **state)
{
	(void)state;
	json_t *problems = NULL;
	struct jschema *s;
	json_t *doc;
	char err[256];
	paths();
	s = jschema_load(g_schema, err, sizeof err);
	assert_non_null(s);
	doc = json_load_file(g_policy, 0, NULL);
	assert_non_null(doc);
	/* three mistakes: a version that is not semver, a zero weight, a user id as the queue */
	json_object_set_new(doc, "version", json_string("one"));
	json_object_set_new(
	        json_array_get(json_object_get(json_array_get(json_object_get(doc, "pools"), 2),
	                                       "members"),
	                       0),
	        "weight", json_integer(0));
	json_object_set_new(doc, "fallback_queue", json_string("00500000015ftwPAAQ"));
	assert_null(route_policy_from_json(doc, s, &problems));
	assert_int_equal(json_array_size(problems), 3);
	assert_true(has_problem(problems, "$.version"));
	assert_true(has_problem(problems, "$.pools[2].members[0].weight"));
	assert_true(has_problem(problems, "$.fallback_queue"));
	json_decref(problems);
	json_decref(doc);
	jschema_free(s);
}

static void test_semantic_mistakes_reported(void **state)
{
	(void)state;
	json_t *problems = NULL;
	struct jschema *s;
	json_t *doc, *pools;
	char err[256];
	paths();
	s = jschema_load(g_schema, err, sizeof err);
	doc = json_load_file(g_policy, 0, NULL);
	assert_non_null(doc);
	pools = json_object_get(doc, "pools");
	json_object_set_new(json_array_get(pools, 0), "segment", json_string("XL"));
	json_array_append_new(json_object_get(json_object_get(doc, "regions"), "APAC"),
	                      json_string("germany"));
	/* valid shape, wrong checksum */
	json_object_set_new(json_array_get(json_object_get(json_array_get(pools, 1), "members"), 0),
	                    "owner_id", json_string("00500000015ftwPAAA"));
	assert_null(route_policy_from_json(doc, s, &problems));
	assert_true(has_problem(problems, "$.pools[0].segment"));
	assert_true(has_problem(problems, "$.regions.APAC["));
	assert_true(has_problem(problems, "$.pools[1].members[0].owner_id"));
	json_decref(problems);
	json_decref(doc);
	jschema_free(s);
}

static void test_segments_and_regions(void **state)
{
	(void)state;
	struct route_policy *p = shipped();
	assert_string_equal(route_segment(p, 0), "SMB");
	assert_string_equal(route_segment(p, 99), "SMB");
	assert_string_equal(route_segment(p, 100), "MM");
	assert_string_equal(route_segment(p, 999), "MM");
	assert_string_equal(route_segment(p, 1000), "ENT");
	assert_string_equal(route_segment(p, 250000), "ENT");
	assert_string_equal(route_region(p, "United States"), "NA");
	assert_string_equal(route_region(p, "us"), "NA");
	assert_string_equal(route_region(p, "  GERMANY "), "EMEA");
	assert_string_equal(route_region(p, "jp"), "APAC");
	assert_string_equal(route_region(p, "Brazil"), "LATAM");
	assert_null(route_region(p, "Narnia"));
	assert_null(route_region(p, ""));
	assert_null(route_region(p, NULL));
	route_policy_free(p);
}

static const struct route_pool *pool_for(const struct route_policy *p, const char *seg,
                                         const char *reg)
{
	for (size_t i = 0; i < route_npools(p); i++) {
		const struct route_pool *x = route_pool_at(p, i);
		if (strcmp(x->segment, seg) == 0 && strcmp(x->region, reg) == 0)
			return x;
	}
	return NULL;
}

static void test_evaluate(void **state)
{
	(void)state;
	struct route_policy *p = shipped();
	struct route_eval r;
	struct route_input in = {.lead_id = "00Q00000015ftwOEAQ",
	                         .owner_id = "00G00000015ftwOEAQ",
	                         .country = "USA",
	                         .has_employees = 1,
	                         .employees = 40};

	route_evaluate(p, &in, &r);
	assert_false(r.skip);
	assert_string_equal(r.segment, "SMB");
	assert_string_equal(r.region, "NA");
	assert_ptr_equal(r.pool, pool_for(p, "SMB", "NA"));
	assert_string_equal(r.reason_path, "pool.smb_na");
	assert_int_equal(r.sla_minutes, 60);

	in.has_employees = 0; /* missing data -> global fallback queue */
	route_evaluate(p, &in, &r);
	assert_null(r.pool);
	assert_string_equal(r.queue, p->fallback_queue);
	assert_string_equal(r.reason_path, "fallback.missing_employees");

	in.has_employees = 1;
	in.country = "Atlantis";
	route_evaluate(p, &in, &r);
	assert_string_equal(r.queue, p->fallback_queue);
	assert_string_equal(r.reason_path, "fallback.unknown_country");

	in.country = NULL;
	route_evaluate(p, &in, &r);
	assert_string_equal(r.reason_path, "fallback.missing_country");

	/* known region without a pool for the segment -> the region's queue */
	in.country = "Mexico";
	in.employees = 5000;
	route_evaluate(p, &in, &r);
	assert_null(pool_for(p, "ENT", "LATAM"));
	assert_null(r.pool);
	assert_string_equal(r.queue, route_fallback_queue(p, "LATAM"));
	assert_string_not_equal(r.queue, p->fallback_queue);

	/* priority industry: flagged, priority SLA */
	in.country = "de";
	in.industry = "banking";
	route_evaluate(p, &in, &r);
	assert_true(r.priority);
	assert_ptr_equal(r.pool, pool_for(p, "ENT", "EMEA"));
	assert_int_equal(r.sla_minutes, json_integer_value(json_object_get(p->sla, "priority")));

	/* owned by a user: left alone; by an "unassigned" user: routed */
	in.owner_id = p->pools[0].members[0].owner_id;
	route_evaluate(p, &in, &r);
	assert_true(r.skip);
	assert_string_equal(r.reason_path, "skip.user_owned");
	in.owner_id = p->unassigned[0];
	route_evaluate(p, &in, &r);
	assert_false(r.skip);
	p->leave_user_owned = 0;
	in.owner_id = p->pools[0].members[0].owner_id;
	route_evaluate(p, &in, &r);
	assert_false(r.skip);
	route_policy_free(p);
}

static void test_round_robin_shares(void **state)
{
	(void)state;
	struct route_policy *p = shipped();
	for (size_t k = 0; k < route_npools(p); k++) {
		const struct route_pool *pool = route_pool_at(p, k);
		long long counts[ROUTE_MEMBERS_MAX] = {0};
		uint64_t ptr = 0;
		long total = 0;
		for (size_t i = 0; i < pool->nmembers; i++)
			total += pool->members[i].weight;
		for (int n = 1; n <= 50; n++) {
			int m = route_rr_pick(pool, &ptr, counts);
			assert_true(m >= 0);
			for (size_t i = 0; i < pool->nmembers; i++) {
				double want = (double)n * pool->members[i].weight / (double)total;
				double got = (double)counts[i];
				if (pool->members[i].daily_cap)
					continue;
				assert_true(got - want < 1.0 && want - got < 1.0);
			}
		}
		/* same pointer state -> same owner */
		long long c1[ROUTE_MEMBERS_MAX] = {0}, c2[ROUTE_MEMBERS_MAX] = {0};
		uint64_t p1 = 7, p2 = 7;
		assert_int_equal(route_rr_pick(pool, &p1, c1), route_rr_pick(pool, &p2, c2));
	}
	route_policy_free(p);
}

static void test_daily_caps(void **state)
{
	(void)state;
	struct route_member mem[2] = {{"00500000015ftwPAAQ", 1, 1}, {"00500000015ftwVAAQ", 1, 2}};
	struct route_pool pool = {.id = "t", .members = mem, .nmembers = 2};
	long long counts[2] = {0, 0};
	uint64_t ptr = 0;
	int picks[2] = {0, 0};
	build_seq(&pool);
	for (int i = 0; i < 3; i++) {
		int m = route_rr_pick(&pool, &ptr, counts);
		assert_true(m >= 0);
		picks[m]++;
	}
	assert_int_equal(picks[0], 1);                            /* capped at 1 */
	assert_int_equal(picks[1], 2);                            /* capped at 2 */
	assert_int_equal(route_rr_pick(&pool, &ptr, counts), -1); /* exhausted */
	free(pool.seq);
}

static void test_datetime(void **state)
{
	(void)state;
	char buf[40];
	int64_t t = parse_sf_datetime("2026-11-20T09:17:00.250+0000");
	assert_true(t > 0);
	assert_int_equal(parse_sf_datetime("2026-11-20T09:17:00.000Z") + 250, t);
	iso_ms(t, buf, sizeof buf);
	assert_string_equal(buf, "2026-11-20T09:17:00.250Z");
	assert_int_equal(parse_sf_datetime("yesterday"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_shipped_policy_loads),
	        cmocka_unit_test(test_three_mistakes_all_reported),
	        cmocka_unit_test(test_semantic_mistakes_reported),
	        cmocka_unit_test(test_segments_and_regions),
	        cmocka_unit_test(test_evaluate),
	        cmocka_unit_test(test_round_robin_shares),
	        cmocka_unit_test(test_daily_caps),
	        cmocka_unit_test(test_datetime),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
