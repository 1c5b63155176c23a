/* Unit tests for common/soql_build: literal escaping, URL length, IN-list splitting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfid.h"
#include "soql_build.h"

static void escapes_quotes_backslash_and_controls(void **state)
{
	(void)state;
	char *e = soql_escape("O'Brien \"Bob\" C:\\dir\nline\r\tend\b\f");
	assert_string_equal(e, "O\\'Brien \\\"Bob\\\" C:\\\\dir\\nline\\r\\tend\\b\\f");
	free(e);
	e = soql_escape("\x01x");
	assert_string_equal(e, "\\u0001x");
	free(e);
	/* An injection attempt stays inside the literal. */
	char *q = soql_quote("x' OR Name != '");
	assert_string_equal(q, "'x\\' OR Name != \\''");
	free(q);
	/* LIKE wildcards only escaped in the LIKE variant. */
	e = soql_escape("50%_off");
	assert_string_equal(e, "50%_off");
	free(e);
	e = soql_escape_like("50%_off'");
	assert_string_equal(e, "50\\%\\_off\\'");
	free(e);
	e = soql_escape("Zoë");
	assert_string_equal(e, "Zoë"); /* UTF-8 passes through */
	free(e);
}

static void urlencode_counts_match(void **state)
{
	(void)state;
	const char *s = "SELECT Id FROM Lead WHERE Name = 'a b' AND X__c = 'é'";
	char *u = soql_urlencode(s);
	assert_int_equal(strlen(u), soql_urlencoded_len(s));
	assert_non_null(strstr(u, "SELECT%20Id"));
	assert_non_null(strstr(u, "X__c"));
	assert_non_null(strstr(u, "%C3%A9"));
	free(u);
}

static void in_list_one_statement(void **state)
{
	(void)state;
	const char *v[] = {"a", "b'c", "d"};
	struct soql_list l = {0};
	char err[256];
	assert_int_equal(soql_build_in("SELECT Id FROM Lead WHERE Name IN ", " LIMIT 10", v, 3, 0,
	                               0, &l, err, sizeof err),
	                 SFK_OK);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.q[0], "SELECT Id FROM Lead WHERE Name IN ('a','b\\'c','d') LIMIT 10");
	soql_list_free(&l);
	assert_int_equal(soql_build_in("h", "", v, 0, 0, 0, &l, err, sizeof err), SFK_OK);
	assert_int_equal(l.n, 0);
}

/* 3,000 18-char values cannot fit one 16,384-byte URI: split, keep order,
 * every statement within the limit, no value lost or duplicated. */
static void in_list_splits_within_uri_limit(void **state)
{
	(void)state;
	enum { N = 3000 };
	static char buf[N][19];
	const char *v[N];
	for (int i = 0; i < N; i++) {
		snprintf(buf[i], sizeof buf[i], "00Q%015d", i);
		v[i] = buf[i];
	}
	const char *head = "SELECT Id, OwnerId FROM Lead WHERE Id IN ";
	const char *tail = " AND IsConverted = false";
	const char *prefix = "https://example.my.salesforce.com/services/data/v62.0/query?q=";
	size_t overhead = strlen(prefix);
	struct soql_list l = {0};
	char err[256];
	assert_int_equal(soql_build_in(head, tail, v, N, overhead, 0, &l, err, sizeof err), SFK_OK);
	assert_true(l.n >= 2);
	int next = 0;
	for (size_t i = 0; i < l.n; i++) {
		size_t uri = overhead + soql_urlencoded_len(l.q[i]);
		assert_true(uri <= SOQL_URI_MAX);
		/* Not wastefully small either: another value would not have fit. */
		if (i + 1 < l.n)
			assert_true(uri + soql_urlencoded_len(",'00Q000000000000000'") >
			            SOQL_URI_MAX);
		assert_true(strncmp(l.q[i], head, strlen(head)) == 0);
		assert_true(strlen(l.q[i]) > strlen(tail));
		assert_string_equal(l.q[i] + strlen(l.q[i]) - strlen(tail), tail);
		const char *p = l.q[i];
		while ((p = strchr(p, '\'')) != NULL) {
			char expect[24];
			snprintf(expect, sizeof expect, "'%s'", buf[next]);
			assert_true(strncmp(p, expect, strlen(expect)) == 0);
			p += strlen(expect);
			next++;
		}
	}
	assert_int_equal(next, N);
	soql_list_free(&l);
	assert_int_equal(l.n, 0);
}

static void in_list_value_too_large(void **state)
{
	(void)state;
	char *big = malloc(20000);
	memset(big, 'x', 19999);
	big[19999] = '\0';
	const char *v[] = {"ok", big};
	struct soql_list l = {0};
	char err[256] = "";
	assert_int_equal(soql_build_in("SELECT Id FROM Lead WHERE Name IN ", "", v, 2, 60, 0, &l,
	                               err, sizeof err),
	                 SFK_ERR_TOO_LARGE);
	assert_int_equal(l.n, 0);
	assert_non_null(strstr(err, "value 1"));
	free(big);
}

static void in_list_ids_are_validated(void **state)
{
	(void)state;
	char a[SFID_LEN18 + 1], b[SFID_LEN18 + 1];
	assert_int_equal(sfid_make(a, "00Q", 1), 0);
	assert_int_equal(sfid_make(b, "00Q", 2), 0);
	struct soql_list l = {0};
	char err[256] = "";
	const char *good[] = {a, "00Q000000000001", b};
	assert_int_equal(soql_build_in_ids("SELECT Id FROM Lead WHERE Id IN ", "", good, 3, 0, 0,
	                                   &l, err, sizeof err),
	                 SFK_OK);
	assert_int_equal(l.n, 1);
	assert_non_null(strstr(l.q[0], a));
	soql_list_free(&l);

	char bad_sum[SFID_LEN18 + 1];
	memcpy(bad_sum, a, sizeof bad_sum);
	bad_sum[17] = bad_sum[17] == 'A' ? 'B' : 'A'; /* checksum no longer matches */
	const char *bad[] = {a, "x' OR Id != '", bad_sum, "00Q00000000001"};
	for (int i = 1; i < 4; i++) {
		const char *two[] = {bad[0], bad[i]};
		err[0] = '\0';
		assert_int_equal(soql_build_in_ids("SELECT Id FROM Lead WHERE Id IN ", "", two, 2,
		                                   0, 0, &l, err, sizeof err),
		                 SFK_ERR_INVALID);
		assert_int_equal(l.n, 0);
		assert_non_null(strstr(err, "value 1"));
		assert_null(strstr(err, "OR Id")); /* the bad text is not echoed */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(escapes_quotes_backslash_and_controls),
	        cmocka_unit_test(urlencode_counts_match),
	        cmocka_unit_test(in_list_one_statement),
	        cmocka_unit_test(in_list_splits_within_uri_limit),
	        cmocka_unit_test(in_list_value_too_large),
	        cmocka_unit_test(in_list_ids_are_validated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
