/* Unit tests for common/sf_quota: Sforce-Limit-Info parsing and the governor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "sf_quota.h"

static void parses_limit_info(void **state)
{
	(void)state;
	long long u = -1, l = -1;
	assert_int_equal(sf_quota_parse_limit_info("api-usage=10018/100000", &u, &l), 0);
	assert_int_equal(u, 10018);
	assert_int_equal(l, 100000);
	assert_int_equal(
	        sf_quota_parse_limit_info(
	                "per-app-api-usage=17/250(appName=sample), api-usage=25/5000", &u, &l),
	        0);
	assert_int_equal(u, 25);
	assert_int_equal(l, 5000);
	assert_int_equal(sf_quota_parse_limit_info("per-app-api-usage=17/250", &u, &l), -1);
	assert_int_equal(sf_quota_parse_limit_info("api-usage=5/0", &u, &l), -1);
	assert_int_equal(sf_quota_parse_limit_info("api-usage=x/10", &u, &l), -1);
	assert_int_equal(sf_quota_parse_limit_info("api-usage=5", &u, &l), -1);
	assert_int_equal(sf_quota_parse_limit_info("api-usage=-5/10", &u, &l), -1);
	assert_int_equal(sf_quota_parse_limit_info("api-usage=99999999999999999999/10", &u, &l),
	                 -1);
	assert_int_equal(sf_quota_parse_limit_info("", &u, &l), -1);
	assert_int_equal(sf_quota_parse_limit_info(NULL, &u, &l), -1);
}

static void governor_slows_then_pauses(void **state)
{
	(void)state;
	metrics_reset();
	assert_null(sf_quota_new(0.95, 0.80, 1000));
	struct sf_quota *q = sf_quota_new(0.80, 0.95, 1000);
	assert_non_null(q);
	char why[256];
	assert_int_equal(sf_quota_admit(q, 0), 0); /* no data yet */
	assert_int_equal(sf_quota_ready(q, why, sizeof why), 1);

	sf_quota_update_header(q, "api-usage=50000/100000");
	assert_int_equal(sf_quota_state(q), SF_QUOTA_OK);
	assert_int_equal(sf_quota_admit(q, 0), 0);

	sf_quota_update_header(q, "api-usage=87500/100000"); /* halfway from 80% to 95% */
	assert_int_equal(sf_quota_state(q), SF_QUOTA_SLOW);
	long d = sf_quota_admit(q, 0);
	assert_true(d >= 490 && d <= 510);
	assert_int_equal(sf_quota_admit(q, 1), 0); /* essential work is never slowed */
	assert_int_equal(sf_quota_ready(q, why, sizeof why), 1);

	sf_quota_update_header(q, "api-usage=96000/100000");
	assert_int_equal(sf_quota_state(q), SF_QUOTA_PAUSED);
	assert_int_equal(sf_quota_admit(q, 0), -1);
	assert_int_equal(sf_quota_admit(q, 1), 0);
	assert_int_equal(sf_quota_ready(q, why, sizeof why), 0);
	assert_non_null(strstr(why, "96%"));
	assert_non_null(strstr(why, "paused"));

	/* The gauge a dashboard reads. */
	size_t len;
	char *text = metrics_render(&len);
	assert_non_null(strstr(text, "sfk_api_usage_ratio 0.96"));
	free(text);

	/* Garbage does not move it; a new day does. */
	sf_quota_update_header(q, "garbage");
	assert_int_equal(sf_quota_state(q), SF_QUOTA_PAUSED);
	sf_quota_update_header(q, "api-usage=10/100000");
	assert_int_equal(sf_quota_state(q), SF_QUOTA_OK);
	assert_int_equal(sf_quota_ready(q, why, sizeof why), 1);
	assert_string_equal(why, "ok");
	sf_quota_free(&q);
	assert_null(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(parses_limit_info),
	        cmocka_unit_test(governor_slows_then_pauses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
