/*
 * test_traffic.c - the traffic generator's plan: deterministic per seed,
 * realistic mixes (regions, ISO countries, segments, intents), response
 * plans that include unanswered leads, quick "before routing" answers and
 * out-of-order pairs; profile validation messages. And a run against an
 * in-process org: one sim-clock jump past status.last_due_ms finishes it
 * (every response done, Tasks left open closed too).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cdc.h"
#include "http.h"
#include "org.h"
#include "traffic.h"

static struct traffic_profile prof(uint64_t seed)
{
	struct traffic_profile p;
	traffic_profile_default(&p);
	p.seed = seed;
	p.leads = 2000;
	return p;
}

static void test_deterministic(void **state)
{
	(void)state;
	struct traffic_profile a = prof(42), b = prof(42), c = prof(43);
	int differ = 0;
	for (long i = 0; i < 50; i++) {
		json_t *x = traffic_plan_lead(&a, i), *y = traffic_plan_lead(&b, i);
		json_t *z = traffic_plan_lead(&c, i);
		assert_true(json_equal(x, y));
		differ += !json_equal(x, z);
		json_decref(x);
		json_decref(y);
		json_decref(z);
	}
	assert_true(differ > 40);
}

static void test_mix(void **state)
{
	(void)state;
	struct traffic_profile p = prof(7);
	int region[5] = {0}, seg[3] = {0}, intents = 0, unanswered = 0, quick = 0, ooo = 0;
	int email = 0, call = 0, code_only = 0, closed_later = 0;
	const char *rnames[] = {"NA", "EMEA", "APAC", "LATAM", "UNKNOWN"};
	for (long i = 0; i < p.leads; i++) {
		json_t *l = traffic_plan_lead(&p, i);
		json_t *f = json_object_get(l, "fields");
		const char *r = json_string_value(json_object_get(l, "region"));
		for (int k = 0; k < 5; k++)
			region[k] += strcmp(r, rnames[k]) == 0;
		/* Required Lead fields are always there. */
		assert_non_null(json_string_value(json_object_get(f, "LastName")));
		assert_non_null(json_string_value(json_object_get(f, "Company")));
		json_t *emp = json_object_get(f, "NumberOfEmployees");
		const char *s = json_string_value(json_object_get(l, "segment"));
		if (emp) {
			json_int_t n = json_integer_value(emp);
			if (n < 100) {
				assert_string_equal(s, "SMB");
				seg[0]++;
			} else if (n < 1000) {
				assert_string_equal(s, "MM");
				seg[1]++;
			} else {
				assert_string_equal(s, "ENT");
				seg[2]++;
			}
		} else {
			assert_string_equal(s, "UNKNOWN");
		}
		const char *cc = json_string_value(json_object_get(l, "country_code"));
		const char *country = json_string_value(json_object_get(f, "Country"));
		if (cc && country && strlen(country) == 2) {
			assert_string_equal(country, cc);
			code_only++;
		}
		if (strcmp(json_string_value(json_object_get(l, "intent")), "unknown") != 0) {
			const char *d = json_string_value(json_object_get(f, "Description"));
			assert_non_null(d);
			intents++;
		}
		json_t *resp = json_object_get(l, "responses");
		if (json_array_size(resp) == 0)
			unanswered++;
		size_t k;
		json_t *r1;
		json_array_foreach(resp, k, r1)
		{
			const char *kind = json_string_value(json_object_get(r1, "kind"));
			email += strcmp(kind, "email_message") == 0;
			call += strcmp(kind, "call") == 0;
			if (k == 0 &&
			    json_integer_value(json_object_get(r1, "delay_ms")) <= p.quick_max_ms)
				quick++;
			if (k == 1) {
				json_int_t d1 = json_integer_value(
				        json_object_get(json_array_get(resp, 0), "delay_ms"));
				json_int_t d2 = json_integer_value(json_object_get(r1, "delay_ms"));
				json_int_t back =
				        json_integer_value(json_object_get(r1, "backdate_ms"));
				assert_true(d2 > d1); /* created later */
				if (back) {
					assert_true(back < d1 || d1 == 0); /* dated earlier */
					ooo++;
				}
				/* Or the first is a call Task left open and
				 * completed after the second response. */
				json_t *r0 = json_array_get(resp, 0);
				json_int_t close =
				        json_integer_value(json_object_get(r0, "close_after_ms"));
				if (close) {
					assert_string_equal(
					        json_string_value(json_object_get(r0, "kind")),
					        "call");
					assert_true(d1 + close > d2);
					closed_later++;
				}
			}
		}
		json_decref(l);
	}
	/* Region weights 40/30/20/10 (of the leads with a country). */
	assert_true(region[0] > 600 && region[0] < 900);
	assert_true(region[1] > 420 && region[1] < 700);
	assert_true(region[2] > 260 && region[2] < 500);
	assert_true(region[3] > 110 && region[3] < 280);
	assert_true(region[4] > 20 && region[4] < 160);
	/* Segments 50/35/15. */
	assert_true(seg[0] > 800 && seg[1] > 520 && seg[2] > 180);
	assert_true(intents > 1600);
	assert_true(unanswered > 150 && unanswered < 500);
	assert_true(quick > 200);
	assert_true(ooo > 5);
	assert_true(closed_later > 5);
	assert_true(email > 300 && call > 200);
	assert_true(code_only > 50);
}

static void test_profile_parse(void **state)
{
	(void)state;
	struct traffic_profile p;
	char err[200];
	json_t *j = json_pack("{s:i,s:f,s:i,s:f}", "leads", 200, "rate", 50.0, "seed", 1,
	                      "answer_ratio", 0.5);
	assert_int_equal(traffic_profile_parse(j, &p, err, sizeof(err)), 0);
	assert_int_equal(p.leads, 200);
	assert_true(p.rate == 50.0 && p.answer_ratio == 0.5 && p.seed == 1);
	json_decref(j);

	j = json_pack("{s:i}", "leads", 0);
	assert_int_equal(traffic_profile_parse(j, &p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "leads must be an integer"));
	json_decref(j);
	j = json_pack("{s:i,s:f}", "leads", 5, "answer_ratio", 1.5);
	assert_int_equal(traffic_profile_parse(j, &p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "answer_ratio"));
	json_decref(j);
	j = json_pack("{s:i,s:i,s:i}", "leads", 5, "delay_min_ms", 500, "delay_max_ms", 100);
	assert_int_equal(traffic_profile_parse(j, &p, err, sizeof(err)), -1);
	json_decref(j);
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static json_int_t status_int(struct sim *sim, const char *key)
{
	json_t *st = traffic_status(sim);
	json_int_t v = json_is_true(json_object_get(st, key))
	                       ? 1
	                       : json_integer_value(json_object_get(st, key));
	json_decref(st);
	return v;
}

/* it_sim_cometd_traffic's profile: responses minutes away, call Tasks left
 * open and closed after a later response. Jumping the clock just past
 * last_due_ms must finish the run: nothing may be scheduled relative to
 * when an earlier action happened to be processed (a close due "open
 * processed + close_after" stayed pending after the jump: "42 of 46"). */
static void test_run_finishes_after_one_jump(void **state)
{
	static struct sim sim;
	struct sim_config cfg;
	struct traffic_profile p;
	const char *users[] = {"integration@sfk-sim.test"};
	char err[200];
	json_t *j, *truth, *lead, *r;
	size_t i, k;
	int ok = 0;
	(void)state;

	memset(&cfg, 0, sizeof(cfg));
	cfg.seed = 1;
	cfg.api_limit = 100000;
	cfg.token_ttl_s = 7200;
	cfg.opts = json_object();
	assert_int_equal(org_init(&sim, &cfg, users, 1), 0);
	assert_int_equal(cdc_module_init(&sim), 0);
	assert_int_equal(traffic_module_init(&sim), 0);

	j = json_pack("{s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:f}", "leads", 40, "rate", 2000, "seed", 5,
	              "delay_min_ms", 60000, "delay_max_ms", 600000, "second_response_ratio", 0.7,
	              "out_of_order_ratio", 0.6, "answer_ratio", 0.8);
	assert_int_equal(traffic_profile_parse(j, &p, err, sizeof(err)), 0);
	json_decref(j);
	assert_int_equal(traffic_start(&sim, &p, err, sizeof(err)), 0);
	for (i = 0; i < 1000 && status_int(&sim, "created") < 40; i++)
		nap_ms(10);
	assert_int_equal(status_int(&sim, "created"), 40);
	assert_true(status_int(&sim, "pending") > 0);

	json_int_t last = status_int(&sim, "last_due_ms");
	assert_true(last > sim_now_ms(&sim));
	sim_clock_advance(&sim, last - sim_now_ms(&sim) + 1);
	for (i = 0; i < 1000 && !(ok = (int)status_int(&sim, "done")); i++)
		nap_ms(10);
	if (!ok) {
		json_t *st = traffic_status(&sim);
		char *d = json_dumps(st, 0);
		json_decref(st);
		fail_msg("run not done after the jump past last_due_ms: %s", d ? d : "?");
	}
	assert_int_equal(status_int(&sim, "errors"), 0);
	assert_int_equal(status_int(&sim, "pending"), 0);
	assert_int_equal(status_int(&sim, "responses_done"), status_int(&sim, "responses_planned"));

	/* Tasks left open were closed, every planned response is done. */
	truth = traffic_truth(&sim);
	int closed = 0;
	json_array_foreach(json_object_get(truth, "leads"), i, lead)
	{
		json_array_foreach(json_object_get(lead, "responses"), k, r)
		{
			assert_string_equal(json_string_value(json_object_get(r, "state")), "done");
			closed += json_object_get(r, "closed_by") != NULL;
		}
	}
	assert_true(closed > 0);
	json_decref(truth);

	traffic_module_fini(&sim);
	cdc_module_fini(&sim);
	http_stop(&sim); /* frees the routes the modules registered */
	org_fini(&sim);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_deterministic),
	        cmocka_unit_test(test_mix),
	        cmocka_unit_test(test_profile_parse),
	        cmocka_unit_test(test_run_finishes_after_one_jump),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
