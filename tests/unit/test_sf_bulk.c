/* Unit tests for common/sf_bulk: RFC 4180 CSV out and back, failedResults parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sf_bulk.h"
#include "sfid.h"
#include <stdio.h>

static void quoting_rules(void **state)
{
	(void)state;
	struct {
		const char *in, *out;
	} cases[] = {
	        {"plain", "plain"},
	        {"a,b", "\"a,b\""},
	        {"say \"hi\"", "\"say \"\"hi\"\"\""},
	        {"line1\nline2", "\"line1\nline2\""},
	        {"cr\rhere", "\"cr\rhere\""},
	        {"", ""},
	        {"#N/A", "#N/A"},
	        {"semi;colon 'single'", "semi;colon 'single'"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *buf = NULL;
		size_t len = 0, cap = 0;
		sf_bulk_csv_field(&buf, &len, &cap, cases[i].in);
		assert_non_null(buf);
		assert_string_equal(buf, cases[i].out);
		assert_int_equal(len, strlen(cases[i].out));
		free(buf);
	}
}

static void records_to_csv(void **state)
{
	(void)state;
	const char *cols[] = {"Id", "Name", "NumberOfEmployees", "IsActive__c", "Description"};
	json_t *recs = json_loads(
	        "[{\"Id\":\"00Q000000000001AAA\",\"Name\":\"Acme, Inc.\",\"NumberOfEmployees\":42,"
	        "\"IsActive__c\":true,\"Description\":null},"
	        "{\"Id\":\"00Q000000000002AAA\",\"Name\":\"The \\\"Best\\\"\\nCo\","
	        "\"IsActive__c\":false}]",
	        0, NULL);
	assert_non_null(recs);
	size_t len = 0;
	char err[128];
	char *csv = sf_bulk_csv(cols, 5, recs, &len, err, sizeof err);
	assert_non_null(csv);
	assert_string_equal(csv, "Id,Name,NumberOfEmployees,IsActive__c,Description\n"
	                         "00Q000000000001AAA,\"Acme, Inc.\",42,true,#N/A\n"
	                         "00Q000000000002AAA,\"The \"\"Best\"\"\nCo\",,false,\n");
	assert_int_equal(len, strlen(csv));

	/* And it parses back to the same fields. */
	struct sf_csv_table t;
	assert_int_equal(sf_csv_parse(csv, len, &t, err, sizeof err), SFK_OK);
	assert_int_equal(t.nrows, 3);
	assert_int_equal(t.rows[1].n, 5);
	assert_string_equal(t.rows[1].f[1], "Acme, Inc.");
	assert_string_equal(t.rows[1].f[4], "#N/A");
	assert_string_equal(t.rows[2].f[1], "The \"Best\"\nCo");
	assert_string_equal(t.rows[2].f[2], "");
	sf_csv_table_free(&t);
	assert_int_equal(t.nrows, 0);
	free(csv);

	json_t *bad = json_loads("[{\"Id\":{\"x\":1}}]", 0, NULL);
	assert_null(sf_bulk_csv(cols, 1, bad, &len, err, sizeof err));
	assert_non_null(strstr(err, "nested"));
	json_decref(bad);
	json_decref(recs);
}

static void parse_errors(void **state)
{
	(void)state;
	struct sf_csv_table t;
	char err[128];
	const char unterminated[] = "a,\"b\n";
	assert_int_equal(sf_csv_parse(unterminated, strlen(unterminated), &t, err, sizeof err),
	                 SFK_ERR_PARSE);
	assert_non_null(strstr(err, "unterminated"));
	const char junk[] = "a,\"b\"x\n";
	assert_int_equal(sf_csv_parse(junk, strlen(junk), &t, err, sizeof err), SFK_ERR_PARSE);
	const char crlf[] = "h1,h2\r\n1,\"2\r\n3\"\r\n";
	assert_int_equal(sf_csv_parse(crlf, strlen(crlf), &t, err, sizeof err), SFK_OK);
	assert_int_equal(t.nrows, 2);
	assert_string_equal(t.rows[1].f[1], "2\r\n3");
	sf_csv_table_free(&t);
}

static void failed_results(void **state)
{
	(void)state;
	char id1[19], id3[19], csv[1024];
	assert_int_equal(sfid_make(id1, "00Q", 1), 0);
	assert_int_equal(sfid_make(id3, "00Q", 3), 0);
	snprintf(csv, sizeof csv,
	         "\"sf__Id\",\"sf__Error\",\"Id\",\"OwnerId\"\n"
	         "\"%s\",\"INVALID_CROSS_REFERENCE_KEY:invalid cross reference "
	         "id:--\",\"%s\",\"005000000000000AAA\"\n"
	         "\"\",\"FIELD_CUSTOM_VALIDATION_EXCEPTION:Owner must be active, \"\"really\"\"\","
	         "\"00Q000000000002AAA\",\"\"\n"
	         "\"%s\",\"UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to "
	         "this record\",\"%s\",\"x\"\n",
	         id1, id1, id3, id3);
	struct sf_bulk_failure *f = NULL;
	size_t n = 0;
	char err[128];
	assert_int_equal(sf_bulk_parse_failed(csv, strlen(csv), &f, &n, err, sizeof err), SFK_OK);
	assert_int_equal(n, 3);
	assert_string_equal(f[0].id, id1);
	assert_string_equal(f[2].id, id3);
	assert_string_equal(f[0].code, "INVALID_CROSS_REFERENCE_KEY");
	assert_string_equal(f[0].message, "invalid cross reference id:--");
	assert_int_equal(f[0].err, SFK_ERR_SF_PERMANENT);
	assert_string_equal(json_string_value(json_object_get(f[0].fields, "OwnerId")),
	                    "005000000000000AAA");
	assert_null(json_object_get(f[0].fields, "sf__Error"));
	assert_string_equal(f[1].id, ""); /* no sf__Id and an invalid Id column */
	assert_string_equal(f[1].code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
	assert_string_equal(f[1].message, "Owner must be active, \"really\"");
	assert_int_equal(f[2].err, SFK_ERR_LOCK);
	sf_bulk_failures_free(f, n);

	/* Empty sf__Id on an update: the row's Id column names the record. */
	char upd[256];
	snprintf(upd, sizeof upd,
	         "\"sf__Id\",\"sf__Error\",Id,Title\n\"\",\"ENTITY_IS_DELETED:entity is "
	         "deleted:--\",%s,x\n",
	         id3);
	assert_int_equal(sf_bulk_parse_failed(upd, strlen(upd), &f, &n, err, sizeof err), SFK_OK);
	assert_int_equal(n, 1);
	assert_string_equal(f[0].id, id3);
	assert_string_equal(f[0].code, "ENTITY_IS_DELETED");
	assert_string_equal(f[0].message, "entity is deleted:--");
	sf_bulk_failures_free(f, n);

	const char noerr[] = "a,b\n1,2\n";
	assert_int_equal(sf_bulk_parse_failed(noerr, strlen(noerr), &f, &n, err, sizeof err),
	                 SFK_ERR_PARSE);
	const char ragged[] = "sf__Id,sf__Error\n1\n";
	assert_int_equal(sf_bulk_parse_failed(ragged, strlen(ragged), &f, &n, err, sizeof err),
	                 SFK_ERR_PARSE);
	assert_int_equal(sf_bulk_parse_failed("", 0, &f, &n, err, sizeof err), SFK_OK);
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(quoting_rules),
	        cmocka_unit_test(records_to_csv),
	        cmocka_unit_test(parse_errors),
	        cmocka_unit_test(failed_results),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
