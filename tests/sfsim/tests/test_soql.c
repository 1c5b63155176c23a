/*
 * test_soql.c - SOQL subset as a Salesforce client sees it: which Lead rows
 * a query returns (and in what order, with which fields), and the errorCode
 * / message / Row:Column of the 400 a bad query gets.
 * Fixed "now": 2026-11-21T10:15:00Z.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "soql.h"

#define NOW ((time_t)1795256100) /* 2026-11-21T10:15:00Z */

static const struct {
	const char *object;
	const char *name;
	enum soql_type type;
} fields[] = {
        {"Lead", "Id", SOQL_T_ID},
        {"Lead", "Name", SOQL_T_STRING},
        {"Lead", "Email", SOQL_T_STRING},
        {"Lead", "Company", SOQL_T_STRING},
        {"Lead", "Status", SOQL_T_STRING},
        {"Lead", "Description", SOQL_T_STRING},
        {"Lead", "NumberOfEmployees", SOQL_T_NUMBER},
        {"Lead", "IsConverted", SOQL_T_BOOLEAN},
        {"Lead", "CreatedDate", SOQL_T_DATETIME},
        {"Lead", "LastActivityDate", SOQL_T_DATE},
        {"Lead", "OwnerId", SOQL_T_ID},
        {"User", "Id", SOQL_T_ID},
        {"User", "Name", SOQL_T_STRING},
        {"Group", "Id", SOQL_T_ID},
        {"Group", "Name", SOQL_T_STRING},
        {"Group", "Type", SOQL_T_STRING},
};

static int put(char *dst, size_t size, const char *src)
{
	int n = snprintf(dst, size, "%s", src);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int schema_object(void *ctx, const char *name, char *canon, size_t size)
{
	if (strcasecmp(name, "Lead") == 0)
		return put(canon, size, "Lead");
	if (strcasecmp(name, "User") == 0)
		return put(canon, size, "User");
	if (strcasecmp(name, "Group") == 0)
		return put(canon, size, "Group");
	return -1;
}

static int schema_field(void *ctx, const char *object, const char *name, char *canon, size_t size,
                        enum soql_type *type)
{
	size_t i;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (strcmp(fields[i].object, object) == 0 &&
		    strcasecmp(fields[i].name, name) == 0) {
			*type = fields[i].type;
			return put(canon, size, fields[i].name);
		}
	}
	return -1;
}

static int schema_rel(void *ctx, const char *object, const char *rel, char *canon, size_t csize,
                      char *target, size_t tsize, char *idfield, size_t isize)
{
	if (strcmp(object, "Lead") != 0 || strcasecmp(rel, "Owner") != 0)
		return -1;
	if (put(canon, csize, "Owner") || put(target, tsize, "User") ||
	    put(idfield, isize, "OwnerId"))
		return -1;
	return 0;
}

static const struct soql_schema schema = {schema_object, schema_field, schema_rel};

static const char leads_json[] =
        "["
        "{\"Id\":\"00Q000000000001AAA\",\"Name\":\"Ada Lovelace\",\"Company\":\"Acme\","
        " \"Status\":\"Open\",\"NumberOfEmployees\":10,\"IsConverted\":false,"
        " \"CreatedDate\":\"2026-11-21T08:00:00.000+0000\",\"LastActivityDate\":\"2026-11-20\","
        " \"Email\":\"ada@acme.com\",\"OwnerId\":\"005000000000001AAA\","
        " \"Description\":\"back\\\\slash \\\"q\\\"\"},"
        "{\"Id\":\"00Q000000000002AAA\",\"Name\":\"Bob Smith\",\"Company\":\"Initech\","
        " \"Status\":\"Working\",\"NumberOfEmployees\":250,\"IsConverted\":true,"
        " \"CreatedDate\":\"2026-11-14T23:30:00.000+0000\",\"LastActivityDate\":null,"
        " \"Email\":null,\"OwnerId\":\"005000000000002AAA\"},"
        "{\"Id\":\"00Q000000000003AAA\",\"Name\":\"carol o'neil\",\"Company\":\"acme\","
        " \"Status\":\"Open\",\"NumberOfEmployees\":null,\"IsConverted\":false,"
        " \"CreatedDate\":\"2026-10-01T00:00:00.000+0000\",\"LastActivityDate\":\"2026-11-22\","
        " \"Email\":\"carol@example.org\",\"OwnerId\":\"005000000000001AAA\"},"
        "{\"Id\":\"00Q000000000004AAA\",\"Name\":\"Dan_Brown%\",\"Company\":null,"
        " \"Status\":\"Closed\",\"NumberOfEmployees\":5,\"IsConverted\":false,"
        " \"CreatedDate\":\"2026-11-20T23:59:59.999-0500\",\"LastActivityDate\":\"2026-11-21\","
        " \"Email\":\"dan@acme.com\",\"OwnerId\":null},"
        "{\"Id\":\"00Q000000000005AAA\",\"Name\":\"Eve\",\"Company\":\"Globex\","
        " \"Status\":\"Working\",\"NumberOfEmployees\":10,\"IsConverted\":true,"
        " \"CreatedDate\":null,\"LastActivityDate\":\"2025-12-31\","
        " \"Email\":\"eve@globex.com\",\"OwnerId\":\"005000000000002AAA\","
        " \"Description\":\"line1\\nline2\\ttab\"}"
        "]";

static const char users_json[] = "[{\"Id\":\"005000000000001AAA\",\"Name\":\"Owner One\"},"
                                 " {\"Id\":\"005000000000002AAA\",\"Name\":\"Owner Two\"}]";

/* Group holds queues (Type 'Queue') next to public groups ('Regular'). */
static const char groups_json[] =
        "[{\"Id\":\"00G000000000001AAA\",\"Name\":\"Inbound Queue\",\"Type\":\"Queue\"},"
        " {\"Id\":\"00G000000000002AAA\",\"Name\":\"All Sales\",\"Type\":\"Regular\"},"
        " {\"Id\":\"00G000000000003AAA\",\"Name\":\"Partner Queue\",\"Type\":\"Queue\"}]";

static json_t *leads, *users, *groups;

static json_t *lookup(void *ctx, const char *object, const char *id)
{
	json_t *u;
	size_t i;

	if (strcmp(object, "User") != 0)
		return NULL;
	json_array_foreach(users, i, u)
	{
		if (strncmp(json_string_value(json_object_get(u, "Id")), id, 15) == 0)
			return u;
	}
	return NULL;
}

static int setup(void **state)
{
	leads = json_loads(leads_json, 0, NULL);
	users = json_loads(users_json, 0, NULL);
	groups = json_loads(groups_json, 0, NULL);
	return leads == NULL || users == NULL || groups == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	json_decref(leads);
	json_decref(users);
	json_decref(groups);
	return 0;
}

/* Run a query over rows that must succeed; new reference to the records array. */
static json_t *run_rows(const char *soql, json_t *rows, time_t now, size_t *total)
{
	struct soql_env env = {now, lookup, NULL, "/services/data/v60.0"};
	struct soql_error err;
	struct soql_query *q;
	json_t *out;
	size_t t = 0;

	q = soql_parse(soql, &err);
	if (q == NULL)
		fail_msg("parse '%s': %s %s", soql, err.code, err.message);
	if (soql_bind(q, &schema, NULL, &err))
		fail_msg("bind '%s': %s %s", soql, err.code, err.message);
	out = soql_run(q, rows, &env, &t);
	assert_non_null(out);
	if (!soql_is_count(q))
		assert_int_equal(json_array_size(out), t);
	if (total != NULL)
		*total = t;
	soql_free(q);
	return out;
}

/* Run a query over the Leads that must succeed; new reference. */
static json_t *run_at(const char *soql, time_t now, size_t *total)
{
	return run_rows(soql, leads, now, total);
}

/* First word of each returned Name, comma-joined ("Ada,Bob"). */
static void expect_names(const char *soql, const char *want)
{
	char got[512] = "";
	size_t i, off = 0;
	json_t *out = run_at(soql, NOW, NULL), *rec;

	json_array_foreach(out, i, rec)
	{
		const char *name = json_string_value(json_object_get(rec, "Name"));
		size_t n;
		int w;

		assert_non_null(name);
		n = strcspn(name, " _");
		w = snprintf(got + off, sizeof(got) - off, "%s%.*s", i ? "," : "", (int)n, name);
		assert_true(w > 0 && (size_t)w < sizeof(got) - off);
		off += (size_t)w;
	}
	json_decref(out);
	if (strcmp(got, want) != 0)
		fail_msg("%s\n  want: %s\n  got:  %s", soql, want, got);
}

/* Parse+bind must fail with code at row:column, message containing what. */
static void expect_error(const char *soql, const char *code, int row, int column, const char *what)
{
	struct soql_error err;
	struct soql_query *q = soql_parse(soql, &err);
	char pos[64];

	if (q != NULL) {
		if (soql_bind(q, &schema, NULL, &err) == 0)
			fail_msg("'%s' was accepted, want %s", soql, code);
		soql_free(q);
	}
	if (strcmp(err.code, code) != 0)
		fail_msg("'%s': want %s, got %s: %s", soql, code, err.code, err.message);
	if (strstr(err.message, what) == NULL)
		fail_msg("'%s': message lacks '%s':\n%s", soql, what, err.message);
	assert_int_equal(err.row, row);
	assert_int_equal(err.column, column);
	if (row > 0) {
		assert_true(snprintf(pos, sizeof(pos), "\nERROR at Row:%d:Column:%d\n", row,
		                     column) < (int)sizeof(pos));
		if (strstr(err.message, pos) == NULL)
			fail_msg("'%s': message lacks '%s':\n%s", soql, pos, err.message);
	}
}

static void expect_message(const char *soql, const char *code, const char *message)
{
	struct soql_error err;
	struct soql_query *q = soql_parse(soql, &err);

	if (q != NULL) {
		assert_int_not_equal(soql_bind(q, &schema, NULL, &err), 0);
		soql_free(q);
	}
	assert_string_equal(err.code, code);
	assert_string_equal(err.message, message);
}

/* ---- tests ----------------------------------------------------------- */

static void test_projection(void **state)
{
	struct soql_error err;
	struct soql_query *q = soql_parse("select name, ID from LEAD where name = 'eve'", &err);
	json_t *out, *rec, *val;
	const char *key;
	const char *want[] = {"attributes", "Name", "Id"};
	size_t i = 0, total;

	assert_non_null(q);
	assert_int_equal(soql_bind(q, &schema, NULL, &err), 0);
	assert_string_equal(soql_object(q), "Lead");
	assert_int_equal(soql_nfields(q), 2);
	assert_string_equal(soql_field(q, 0), "Name");
	assert_string_equal(soql_field(q, 1), "Id");
	assert_int_equal(soql_limit(q), -1);
	soql_free(q);

	out = run_at("select name, ID from LEAD where name = 'eve'", NOW, &total);
	assert_int_equal(total, 1);
	rec = json_array_get(out, 0);
	json_object_foreach(rec, key, val)
	{
		assert_true(i < 3);
		assert_string_equal(key, want[i]);
		i++;
	}
	assert_int_equal(i, 3);
	assert_string_equal(json_string_value(json_object_get(rec, "Id")), "00Q000000000005AAA");
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(rec, "attributes"), "type")),
	        "Lead");
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(rec, "attributes"), "url")),
	        "/services/data/v60.0/sobjects/Lead/00Q000000000005AAA");
	json_decref(out);

	/* A selected field the record lacks is null, not absent. */
	out = run_at("SELECT Description FROM Lead WHERE Name = 'Bob Smith'", NOW, NULL);
	rec = json_array_get(out, 0);
	assert_non_null(json_object_get(rec, "Description"));
	assert_true(json_is_null(json_object_get(rec, "Description")));
	assert_null(json_object_get(rec, "Name"));
	json_decref(out);
}

static void test_comparisons(void **state)
{
	expect_names("SELECT Name FROM Lead WHERE Company = 'ACME'", "Ada,carol");
	expect_names("SELECT Name FROM Lead WHERE Status != 'Open'", "Bob,Dan,Eve");
	expect_names("SELECT Name FROM Lead WHERE Status <> 'open'", "Bob,Dan,Eve");
	expect_names("SELECT Name FROM Lead WHERE NumberOfEmployees < 10", "Dan");
	expect_names("SELECT Name FROM Lead WHERE NumberOfEmployees <= 10", "Ada,Dan,Eve");
	expect_names("SELECT Name FROM Lead WHERE NumberOfEmployees > 10", "Bob");
	expect_names("SELECT Name FROM Lead WHERE NumberOfEmployees >= 10.0", "Ada,Bob,Eve");
	expect_names("SELECT Name FROM Lead WHERE NumberOfEmployees = 5", "Dan");
	expect_names("SELECT Name FROM Lead WHERE NumberOfEmployees > -1.5", "Ada,Bob,Dan,Eve");
	expect_names("SELECT Name FROM Lead WHERE Name < 'b'", "Ada");
	expect_names("SELECT Name FROM Lead WHERE Name >= 'D'", "Dan,Eve");
	expect_names("SELECT Name FROM Lead WHERE IsConverted = TRUE", "Bob,Eve");
	expect_names("SELECT Name FROM Lead WHERE IsConverted = false", "Ada,carol,Dan");
	expect_names("SELECT Name FROM Lead WHERE Name = 'nobody'", "");
}

static void test_null(void **state)
{
	expect_names("SELECT Name FROM Lead WHERE Email = null", "Bob");
	expect_names("SELECT Name FROM Lead WHERE Email != NULL", "Ada,carol,Dan,Eve");
	/* Salesforce: != includes rows where the field is null. */
	expect_names("SELECT Name FROM Lead WHERE Company != 'Acme'", "Bob,Dan,Eve");
	/* ...but ordering comparisons never match null. */
	expect_names("SELECT Name FROM Lead WHERE NumberOfEmployees < 1000", "Ada,Bob,Dan,Eve");
	expect_names("SELECT Name FROM Lead WHERE CreatedDate = null", "Eve");
	expect_names("SELECT Name FROM Lead WHERE Description = null", "Bob,carol,Dan");
}

static void test_and_or_not(void **state)
{
	expect_names("SELECT Name FROM Lead WHERE Status = 'Open' AND NumberOfEmployees = 10",
	             "Ada");
	expect_names("SELECT Name FROM Lead WHERE Status = 'Closed' or Name = 'Eve' OR Name = 'x'",
	             "Dan,Eve");
	expect_names("SELECT Name FROM Lead WHERE (Status = 'Open' OR Status = 'Working') AND "
	             "IsConverted = true",
	             "Bob,Eve");
	expect_names("SELECT Name FROM Lead WHERE Status = 'Open' OR (Status = 'Working' AND "
	             "IsConverted = false)",
	             "Ada,carol");
	expect_names("SELECT Name FROM Lead WHERE ((Status = 'Open'))", "Ada,carol");
	expect_names("SELECT Name FROM Lead WHERE NOT Status = 'Open'", "Bob,Dan,Eve");
	expect_names("SELECT Name FROM Lead WHERE NOT (Status = 'Open' OR Status = 'Closed')",
	             "Bob,Eve");
	/* NOT binds to the next condition only. */
	expect_names("SELECT Name FROM Lead WHERE NOT Company = 'acme' AND NOT IsConverted = true",
	             "Dan");
	expect_names("SELECT Name FROM Lead WHERE NOT NOT Status = 'Open'", "Ada,carol");
}

static void test_mixed_and_or_is_rejected(void **state)
{
	/* Like Salesforce: AND and OR at one level need parentheses. */
	expect_message("SELECT Name FROM Lead WHERE Status = 'Open' OR Status = 'Working' AND "
	               "IsConverted = true",
	               "MALFORMED_QUERY",
	               "\n'Open' OR Status = 'Working' AND IsConverted = true\n"
	               "                             ^\n"
	               "ERROR at Row:1:Column:67\n"
	               "unexpected token: 'AND'");
	expect_error("SELECT Name FROM Lead WHERE a = 1 AND b = 2 OR c = 3", "MALFORMED_QUERY", 1,
	             45, "unexpected token: 'OR'");
}

static void test_in(void **state)
{
	expect_names("SELECT Name FROM Lead WHERE Status IN ('open', 'Closed')", "Ada,carol,Dan");
	expect_names("SELECT Name FROM Lead WHERE Status NOT IN ('Open')", "Bob,Dan,Eve");
	expect_names("SELECT Name FROM Lead WHERE Company NOT IN ('Acme', 'Globex')", "Bob,Dan");
	expect_names("SELECT Name FROM Lead WHERE Email IN (null, 'EVE@globex.com')", "Bob,Eve");
	expect_names("SELECT Name FROM Lead WHERE NumberOfEmployees IN (5, 250)", "Bob,Dan");
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate IN (2026-11-20, 2026-11-22)",
	             "Ada,carol");
	expect_names("SELECT Name FROM Lead WHERE NOT Status IN ('Open','Working')", "Dan");
}

static void test_like(void **state)
{
	expect_names("SELECT Name FROM Lead WHERE Name LIKE 'a%'", "Ada");
	expect_names("SELECT Name FROM Lead WHERE Name LIKE '%SMITH'", "Bob");
	expect_names("SELECT Name FROM Lead WHERE Name LIKE '_ve'", "Eve");
	expect_names("SELECT Name FROM Lead WHERE Name LIKE '__'", "");
	expect_names("SELECT Name FROM Lead WHERE Name LIKE '%o%'", "Ada,Bob,carol,Dan");
	expect_names("SELECT Name FROM Lead WHERE Name LIKE 'Dan\\_%'", "Dan");
	expect_names("SELECT Name FROM Lead WHERE Name LIKE 'Da_\\_%'", "Dan");
	expect_names("SELECT Name FROM Lead WHERE Name LIKE '%\\%'", "Dan");
	expect_names("SELECT Name FROM Lead WHERE Name LIKE 'Ad\\%'", "");
	expect_names("SELECT Name FROM Lead WHERE Name LIKE '%\\'%'", "carol");
	expect_names("SELECT Name FROM Lead WHERE Email LIKE '%@acme.com'", "Ada,Dan");
	/* LIKE never matches null. */
	expect_names("SELECT Name FROM Lead WHERE Company LIKE '%'", "Ada,Bob,carol,Eve");
	expect_names("SELECT Name FROM Lead WHERE NOT Name LIKE '%a%'", "Bob,Eve");
	/* LIKE needs a string. */
	expect_error("SELECT Name FROM Lead WHERE Name LIKE NULL", "MALFORMED_QUERY", 1, 39,
	             "unexpected token: 'NULL'");
}

static void test_string_escapes(void **state)
{
	expect_names("SELECT Name FROM Lead WHERE Name = 'carol o\\'neil'", "carol");
	expect_names("SELECT Name FROM Lead WHERE Description = 'line1\\nline2\\ttab'", "Eve");
	expect_names("SELECT Name FROM Lead WHERE Description = 'back\\\\slash \\\"q\\\"'", "Ada");
	expect_names("SELECT Name FROM Lead WHERE Description = 'back\\\\slash \"q\"'", "Ada");
	expect_names("SELECT Name FROM Lead WHERE Name = 'Dan\\_Brown\\%'", "Dan");
	/* Upper-case forms and \uXXXX (what common/soql_build's soql_escape emits). */
	expect_names("SELECT Name FROM Lead WHERE Description = 'line1\\Nline2\\Ttab'", "Eve");
	expect_names("SELECT Name FROM Lead WHERE Description = 'line1\\u000aline2\\u0009tab'",
	             "Eve");
	expect_names("SELECT Name FROM Lead WHERE Name = '\\u0045ve'", "Eve");
	expect_names("SELECT Name FROM Lead WHERE Name LIKE '\\u0044an\\_%'", "Dan");
	expect_error("SELECT Name FROM Lead WHERE Name = 'a\\u00zz'", "MALFORMED_QUERY", 1, 36,
	             "Illegal character sequence '\\u00zz' in string literal");
	expect_error("SELECT Name FROM Lead WHERE Name = '\\ud83d'", "MALFORMED_QUERY", 1, 36,
	             "Illegal character sequence '\\ud83d'");
	expect_error("SELECT Name FROM Lead WHERE Name = 'a\\u0000'", "MALFORMED_QUERY", 1, 36,
	             "Illegal character sequence '\\u0000'");
	/* One more lead, for this test only: non-ASCII text, a surrogate pair. */
	assert_int_equal(
	        json_array_append_new(leads, json_pack("{s:s, s:s}", "Id", "00Q000000000006AAA",
	                                               "Name", "Fran\xc3\xa7ois \xf0\x9f\x98\x80")),
	        0);
	expect_names("SELECT Name FROM Lead WHERE Name = 'Fran\\u00e7ois \\ud83d\\ude00'",
	             "Fran\xc3\xa7ois");
	expect_names("SELECT Name FROM Lead WHERE Name = 'FRAN\xc3\xa7OIS \xf0\x9f\x98\x80'",
	             "Fran\xc3\xa7ois");
	expect_names("SELECT Name FROM Lead WHERE Name LIKE 'Fran_ois _'", "Fran\xc3\xa7ois");
	assert_int_equal(json_array_remove(leads, json_array_size(leads) - 1), 0);
	expect_error("SELECT Name FROM Lead WHERE Name = 'a\\qb'", "MALFORMED_QUERY", 1, 36,
	             "Illegal character sequence '\\q' in string literal");
}

static void test_dates(void **state)
{
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate = 2026-11-20", "Ada");
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate > 2026-11-20", "carol,Dan");
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate <= 2026-11-20", "Ada,Eve");
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate = TODAY", "Dan");
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate = yesterday", "Ada");
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate = TOMORROW", "carol");
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate < TODAY", "Ada,Eve");
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate > TODAY", "carol");
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate >= TODAY", "carol,Dan");
	/* LAST_N_DAYS:1 is yesterday and today. */
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate = LAST_N_DAYS:1", "Ada,Dan");
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate = NEXT_N_DAYS:1", "carol");
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate = LAST_N_DAYS:400",
	             "Ada,Dan,Eve");
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate = N_DAYS_AGO:1", "Ada");
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate = LAST_YEAR", "Eve");
	/* Weeks start on Sunday (en_US): 2026-11-22 is next week. */
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate = THIS_WEEK", "Ada,Dan");
	expect_names("SELECT Name FROM Lead WHERE LastActivityDate = NEXT_WEEK", "carol");
}

static void test_datetimes(void **state)
{
	size_t total;
	json_t *out;

	expect_names("SELECT Name FROM Lead WHERE CreatedDate > 2026-11-21T00:00:00Z", "Ada,Dan");
	expect_names("SELECT Name FROM Lead WHERE CreatedDate < 2026-11-21T05:00:00+00:00",
	             "Bob,carol,Dan");
	/* Offsets and fractional seconds compare as instants. */
	expect_names("SELECT Name FROM Lead WHERE CreatedDate = 2026-11-20T23:59:59.999-05:00",
	             "Dan");
	expect_names("SELECT Name FROM Lead WHERE CreatedDate = 2026-11-21T04:59:59.999Z", "Dan");
	expect_names("SELECT Name FROM Lead WHERE CreatedDate >= 2026-11-21T09:00:00+01:00", "Ada");
	expect_names("SELECT Name FROM Lead WHERE CreatedDate = TODAY", "Ada,Dan");
	expect_names("SELECT Name FROM Lead WHERE CreatedDate = LAST_N_DAYS:7", "Ada,Bob,Dan");
	expect_names("SELECT Name FROM Lead WHERE CreatedDate = LAST_N_DAYS:6", "Ada,Dan");
	expect_names("SELECT Name FROM Lead WHERE CreatedDate < LAST_N_DAYS:7", "carol");
	expect_names("SELECT Name FROM Lead WHERE CreatedDate = THIS_MONTH", "Ada,Bob,Dan");
	expect_names("SELECT Name FROM Lead WHERE CreatedDate = LAST_MONTH", "carol");
	expect_names("SELECT Name FROM Lead WHERE CreatedDate = NEXT_90_DAYS", "");

	/* The caller's now decides what TODAY means: one day later, yesterday. */
	out = run_at("SELECT Name FROM Lead WHERE CreatedDate = YESTERDAY", NOW + 86400, &total);
	assert_int_equal(total, 2);
	json_decref(out);
	out = run_at("SELECT Name FROM Lead WHERE CreatedDate = TODAY", NOW + 86400, &total);
	assert_int_equal(total, 0);
	json_decref(out);
}

static void test_date_type_errors(void **state)
{
	expect_error("SELECT Name FROM Lead WHERE CreatedDate > 2026-11-21", "INVALID_FIELD", 1, 43,
	             "value of filter criterion for field 'CreatedDate' must be of type dateTime "
	             "and should not be enclosed in quotes");
	expect_error("SELECT Name FROM Lead WHERE LastActivityDate = '2026-11-20'", "INVALID_FIELD",
	             1, 48, "must be of type date and should not be enclosed in quotes");
	expect_error("SELECT Name FROM Lead WHERE Name = 5", "INVALID_FIELD", 1, 36,
	             "must be of type string and should be enclosed in quotes");
	expect_error("SELECT Name FROM Lead WHERE IsConverted = 'true'", "INVALID_FIELD", 1, 43,
	             "must be of type boolean");
	expect_error("SELECT Name FROM Lead WHERE CreatedDate > 2026-13-01T00:00:00Z",
	             "MALFORMED_QUERY", 1, 43, "Invalid datetime: 2026-13-01T00:00:00Z");
	expect_error("SELECT Name FROM Lead WHERE CreatedDate > 2020-12-12t12:12:00-25:00",
	             "MALFORMED_QUERY", 1, 43, "Invalid datetime: 2020-12-12t12:12:00-25:00");
	expect_error("SELECT Name FROM Lead WHERE LastActivityDate = 2026-02-29", "MALFORMED_QUERY",
	             1, 48, "Invalid date: 2026-02-29");
	expect_error("SELECT Name FROM Lead WHERE LastActivityDate = LAST_N_DAYS",
	             "MALFORMED_QUERY", 1, 59, "unexpected token: '<EOF>'");
	expect_error("SELECT Name FROM Lead WHERE LastActivityDate = LAST_N_DAYS:x",
	             "MALFORMED_QUERY", 1, 60, "unexpected token: 'x'");
}

static void test_order_by(void **state)
{
	/* ASC puts nulls first; ties keep input order. */
	expect_names("SELECT Name FROM Lead ORDER BY NumberOfEmployees", "carol,Dan,Ada,Eve,Bob");
	/* DESC puts nulls last. */
	expect_names("SELECT Name FROM Lead ORDER BY NumberOfEmployees DESC",
	             "Bob,Ada,Eve,Dan,carol");
	expect_names("SELECT Name FROM Lead ORDER BY NumberOfEmployees DESC NULLS FIRST, Name DESC",
	             "carol,Bob,Eve,Ada,Dan");
	expect_names("SELECT Name FROM Lead ORDER BY NumberOfEmployees ASC NULLS LAST, Name DESC",
	             "Dan,Eve,Ada,Bob,carol");
	/* Text sorts case-insensitively ("acme" == "Acme", "carol" < "Dan"). */
	expect_names("SELECT Name FROM Lead ORDER BY Company ASC NULLS LAST, Name",
	             "Ada,carol,Eve,Bob,Dan");
	expect_names("SELECT Name FROM Lead ORDER BY Name", "Ada,Bob,carol,Dan,Eve");
	expect_names("SELECT Name FROM Lead ORDER BY CreatedDate DESC", "Ada,Dan,Bob,carol,Eve");
	expect_names("SELECT Name FROM Lead ORDER BY IsConverted, LastActivityDate DESC",
	             "carol,Dan,Ada,Eve,Bob");
	expect_names(
	        "SELECT Name FROM Lead WHERE Status != 'Closed' ORDER BY Owner.Name DESC, Name",
	        "Bob,Eve,Ada,carol");
}

static void test_limit_offset(void **state)
{
	size_t total;
	json_t *out;

	expect_names("SELECT Name FROM Lead ORDER BY Name LIMIT 2", "Ada,Bob");
	expect_names("SELECT Name FROM Lead ORDER BY Name LIMIT 2 OFFSET 1", "Bob,carol");
	expect_names("SELECT Name FROM Lead ORDER BY Name OFFSET 4", "Eve");
	expect_names("SELECT Name FROM Lead ORDER BY Name LIMIT 0", "");
	out = run_at("SELECT Name FROM Lead ORDER BY Name OFFSET 10", NOW, &total);
	assert_int_equal(total, 0);
	json_decref(out);
	out = run_at("SELECT Name FROM Lead WHERE Status = 'Open' LIMIT 10", NOW, &total);
	assert_int_equal(total, 2);
	json_decref(out);
	out = run_at("SELECT Name FROM Lead OFFSET 2000", NOW, &total);
	assert_int_equal(total, 0);
	json_decref(out);
	expect_message("SELECT Name FROM Lead OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE",
	               "Maximum SOQL offset allowed is 2000");
	expect_error("SELECT Name FROM Lead LIMIT -1", "MALFORMED_QUERY", 1, 29,
	             "unexpected token: '-1'");
	expect_error("SELECT Name FROM Lead LIMIT 1.5", "MALFORMED_QUERY", 1, 29,
	             "unexpected token: '1.5'");
	expect_error("SELECT Name FROM Lead OFFSET 1 LIMIT 1", "MALFORMED_QUERY", 1, 32,
	             "unexpected token: 'LIMIT'");
}

static void test_count(void **state)
{
	struct soql_error err;
	struct soql_query *q;
	size_t total;
	json_t *out;

	q = soql_parse("SELECT COUNT() FROM Lead", &err);
	assert_non_null(q);
	assert_true(soql_is_count(q));
	assert_int_equal(soql_nfields(q), 0);
	soql_free(q);

	out = run_at("SELECT COUNT() FROM Lead WHERE Status = 'Open'", NOW, &total);
	assert_int_equal(total, 2);
	assert_int_equal(json_array_size(out), 0);
	json_decref(out);
	out = run_at("select count ( ) from lead", NOW, &total);
	assert_int_equal(total, 5);
	json_decref(out);
	out = run_at("SELECT COUNT() FROM Lead LIMIT 3", NOW, &total);
	assert_int_equal(total, 3);
	json_decref(out);
	expect_error("SELECT COUNT(), Name FROM Lead", "MALFORMED_QUERY", 1, 15,
	             "unexpected token: ','");
}

static void test_ids(void **state)
{
	/* A 15-character id literal matches the stored 18-character id. */
	expect_names("SELECT Name FROM Lead WHERE Id = '00Q000000000001'", "Ada");
	expect_names("SELECT Name FROM Lead WHERE Id = '00Q000000000001AAA'", "Ada");
	expect_names("SELECT Name FROM Lead WHERE Id != '00Q000000000001'", "Bob,carol,Dan,Eve");
	/* ...case-sensitively: 15-char ids differ only by case. */
	expect_names("SELECT Name FROM Lead WHERE Id = '00q000000000001'", "");
	expect_names("SELECT Name FROM Lead WHERE OwnerId IN ('005000000000002', "
	             "'005000000000009AAA')",
	             "Bob,Eve");
	expect_names("SELECT Name FROM Lead WHERE OwnerId = null", "Dan");
	expect_error("SELECT Name FROM Lead WHERE Id = 'abc'", "MALFORMED_QUERY", 1, 34,
	             "invalid ID field: abc");
}

static void test_relationship(void **state)
{
	json_t *out, *owner;
	size_t total;

	out = run_at("SELECT Name, Owner.Name, owner.id FROM Lead WHERE Owner.Name = 'owner one' "
	             "ORDER BY Name",
	             NOW, &total);
	assert_int_equal(total, 2);
	owner = json_object_get(json_array_get(out, 0), "Owner");
	assert_true(json_is_object(owner));
	assert_string_equal(json_string_value(json_object_get(owner, "Name")), "Owner One");
	assert_string_equal(json_string_value(json_object_get(owner, "Id")), "005000000000001AAA");
	assert_string_equal(
	        json_string_value(json_object_get(json_object_get(owner, "attributes"), "url")),
	        "/services/data/v60.0/sobjects/User/005000000000001AAA");
	assert_null(json_object_get(json_array_get(out, 0), "Owner.Name"));
	json_decref(out);

	/* No related record: the relationship is null. */
	out = run_at("SELECT Name, Owner.Name FROM Lead WHERE Name LIKE 'Dan%'", NOW, &total);
	assert_int_equal(total, 1);
	owner = json_object_get(json_array_get(out, 0), "Owner");
	assert_non_null(owner);
	assert_true(json_is_null(owner));
	json_decref(out);

	expect_error("SELECT Name, Foo.Name FROM Lead", "INVALID_FIELD", 1, 14,
	             "Didn't understand relationship 'Foo' in field path.");
	expect_error("SELECT Owner.Bogus FROM Lead", "INVALID_FIELD", 1, 8,
	             "No such column 'Bogus' on entity 'User'.");
	expect_error("SELECT Owner.Manager.Name FROM Lead", "INVALID_FIELD", 1, 8,
	             "Didn't understand relationship 'Owner'");
}

static void test_alias(void **state)
{
	json_t *out;

	expect_names("SELECT l.Name FROM Lead l WHERE l.Status = 'Closed'", "Dan");
	out = run_at("SELECT l.Name FROM Lead l WHERE l.Status = 'Closed'", NOW, NULL);
	assert_non_null(json_object_get(json_array_get(out, 0), "Name"));
	json_decref(out);
}

/* Reserved words are object names after FROM (Group holds the queues,
 * Order is a standard object); after the object they are clause keywords. */
static void test_reserved_word_objects(void **state)
{
	json_t *out;
	size_t total;

	out = run_rows("SELECT Id, Name FROM Group WHERE Type = 'Queue' ORDER BY Name", groups, NOW,
	               &total);
	assert_int_equal(total, 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(out, 0), "Name")),
	                    "Inbound Queue");
	assert_string_equal(json_string_value(json_object_get(json_array_get(out, 1), "Id")),
	                    "00G000000000003AAA");
	assert_string_equal(json_string_value(json_object_get(
	                            json_object_get(json_array_get(out, 0), "attributes"), "type")),
	                    "Group");
	json_decref(out);

	/* any case, with an alias, a count */
	out = run_rows("select name from group g where g.type = 'Regular'", groups, NOW, &total);
	assert_int_equal(total, 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(out, 0), "Name")),
	                    "All Sales");
	json_decref(out);
	out = run_rows("SELECT COUNT() FROM Group LIMIT 2", groups, NOW, &total);
	assert_int_equal(total, 2);
	json_decref(out);

	/* Parsed as an object: the error is the bind's, not MALFORMED_QUERY. */
	expect_error("SELECT Id FROM Order", "INVALID_TYPE", 1, 16,
	             "sObject type 'Order' is not supported.");
	expect_error("SELECT Id FROM Limit WHERE Id = null", "INVALID_TYPE", 1, 16,
	             "sObject type 'Limit' is not supported.");
	/* GROUP BY stays unsupported, after any object */
	expect_error("SELECT Id FROM Group GROUP BY Name", "MALFORMED_QUERY", 1, 22,
	             "unexpected token: 'GROUP'");
	expect_error("SELECT Type FROM Group g GROUP BY Type", "MALFORMED_QUERY", 1, 26,
	             "unexpected token: 'GROUP'");
	/* FROM still needs an identifier */
	expect_error("SELECT Id FROM 'Group'", "MALFORMED_QUERY", 1, 16,
	             "unexpected token: ''Group''");
	expect_error("SELECT Id FROM", "MALFORMED_QUERY", 1, 15, "unexpected token: '<EOF>'");
}

static void test_malformed(void **state)
{
	/* Message shape as Salesforce sends it: snippet, caret, position, reason. */
	expect_message("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY",
	               "\nSELECT Id FROM Lead WHERE\n                         ^\n"
	               "ERROR at Row:1:Column:26\nunexpected token: '<EOF>'");
	expect_message("SELECT Id, FROM Lead", "MALFORMED_QUERY",
	               "\nSELECT Id, FROM Lead\n           ^\n"
	               "ERROR at Row:1:Column:12\nunexpected token: 'FROM'");
	/* missing FROM */
	expect_error("SELECT Id Lead", "MALFORMED_QUERY", 1, 11, "unexpected token: 'Lead'");
	expect_error("SELECT Id", "MALFORMED_QUERY", 1, 10, "unexpected token: '<EOF>'");
	expect_error("SELECT FROM Lead", "MALFORMED_QUERY", 1, 8, "unexpected token: 'FROM'");
	expect_error("", "MALFORMED_QUERY", 1, 1, "unexpected token: '<EOF>'");
	expect_error("UPDATE Lead", "MALFORMED_QUERY", 1, 1, "unexpected token: 'UPDATE'");
	/* unterminated string */
	expect_error("SELECT Id FROM Lead WHERE Name = 'abc", "MALFORMED_QUERY", 1, 38,
	             "line 1:37 mismatched character '<EOF>' expecting '''");
	expect_error("SELECT Id FROM Lead\nWHERE Name = 'it\\'s", "MALFORMED_QUERY", 2, 20,
	             "line 2:19 mismatched character '<EOF>' expecting '''");
	/* bad operators */
	expect_error("SELECT Id FROM Lead WHERE Name == 'x'", "MALFORMED_QUERY", 1, 33,
	             "unexpected token: '='");
	expect_error("SELECT Id FROM Lead WHERE Name ~ 'x'", "MALFORMED_QUERY", 1, 32,
	             "unexpected token: '~'");
	expect_error("SELECT Id FROM Lead WHERE Name ! 'x'", "MALFORMED_QUERY", 1, 32,
	             "unexpected token: '!'");
	expect_error("SELECT Id FROM Lead WHERE Name IN 'x'", "MALFORMED_QUERY", 1, 35,
	             "unexpected token: ''x''");
	expect_error("SELECT Id FROM Lead WHERE Name IN ()", "MALFORMED_QUERY", 1, 36,
	             "unexpected token: ')'");
	expect_error("SELECT Id FROM Lead WHERE (Name = 'x'", "MALFORMED_QUERY", 1, 38,
	             "unexpected token: '<EOF>'");
	/* trailing garbage */
	expect_error("SELECT Id FROM Lead WHERE Name = 'x' 'y'", "MALFORMED_QUERY", 1, 38,
	             "unexpected token: ''y''");
	expect_error("SELECT Id FROM Lead LIMIT 5 foo", "MALFORMED_QUERY", 1, 29,
	             "unexpected token: 'foo'");
	expect_error("SELECT Id FROM Lead l x", "MALFORMED_QUERY", 1, 23, "unexpected token: 'x'");
	expect_error("SELECT Id FROM Lead ORDER Name", "MALFORMED_QUERY", 1, 27,
	             "unexpected token: 'Name'");
	expect_error("SELECT Id FROM Lead ORDER BY Name NULLS", "MALFORMED_QUERY", 1, 40,
	             "unexpected token: '<EOF>'");
	expect_error("SELECT Id FROM Lead GROUP BY Name", "MALFORMED_QUERY", 1, 21,
	             "unexpected token: 'GROUP'");
	/* multi-line: Row and Column count lines */
	expect_error("SELECT Id\nFROM Lead\nWHERE Nope__c = 1", "INVALID_FIELD", 3, 7,
	             "No such column 'Nope__c' on entity 'Lead'");
	expect_error("SELECT Id\nFROM Lead\nWHERE Name = 'x' junk", "MALFORMED_QUERY", 3, 18,
	             "unexpected token: 'junk'");
	/* duplicate field */
	expect_error("SELECT Id, Name, name FROM Lead", "MALFORMED_QUERY", 1, 18,
	             "duplicate field selected: Name");
}

static void test_unknown_names(void **state)
{
	expect_message(
	        "SELECT Foo FROM Lead", "INVALID_FIELD",
	        "\nSELECT Foo FROM Lead\n       ^\nERROR at Row:1:Column:8\nNo such column 'Foo' "
	        "on "
	        "entity 'Lead'. If you are attempting to use a custom field, be sure to append the "
	        "'__c' after the custom field name. Please reference your WSDL or the describe "
	        "call "
	        "for the appropriate names.");
	expect_error("SELECT Id FROM Lead WHERE Bogus__c = 1", "INVALID_FIELD", 1, 27,
	             "No such column 'Bogus__c' on entity 'Lead'");
	expect_error("SELECT Id FROM Lead ORDER BY Bogus", "INVALID_FIELD", 1, 30,
	             "No such column 'Bogus' on entity 'Lead'");
	expect_message(
	        "SELECT Id FROM Foo", "INVALID_TYPE",
	        "\nSELECT Id FROM Foo\n               ^\nERROR at Row:1:Column:16\n"
	        "sObject type 'Foo' is not supported. If you are attempting to use a custom "
	        "object, be sure to append the '__c' after the entity name. Please reference "
	        "your WSDL or the describe call for the appropriate names.");
}

static void test_snippet_window(void **state)
{
	/* Long lines: Salesforce shows the whole tokens within ~30 characters
	 * either side of the error, caret under the error. */
	expect_message(
	        "SELECT Id, Name, Status, Company, Email, Bogus__c, OwnerId, IsConverted, "
	        "NumberOfEmployees FROM Lead",
	        "INVALID_FIELD",
	        "\nName, Status, Company, Email, Bogus__c, OwnerId, IsConverted,\n"
	        "                              ^\n"
	        "ERROR at Row:1:Column:42\n"
	        "No such column 'Bogus__c' on entity 'Lead'. If you are attempting to use a "
	        "custom field, be sure to append the '__c' after the custom field name. Please "
	        "reference your WSDL or the describe call for the appropriate names.");
}

static void test_limits(void **state)
{
	size_t n = SOQL_MAX_QUERY_LEN + 1, i;
	char *big = malloc(n + 1);
	char deep[2 * SOQL_MAX_DEPTH + 200];
	struct soql_error err;
	size_t off;

	assert_non_null(big);
	memset(big, ' ', n);
	memcpy(big, "SELECT Id FROM Lead", 19);
	big[n] = '\0';
	assert_null(soql_parse(big, &err));
	assert_string_equal(err.code, "MALFORMED_QUERY");
	/* At the limit it is accepted. */
	big[n - 1] = '\0';
	{
		struct soql_query *q = soql_parse(big, &err);

		assert_non_null(q);
		soql_free(q);
	}
	free(big);

	off = (size_t)snprintf(deep, sizeof(deep), "SELECT Id FROM Lead WHERE ");
	for (i = 0; i < SOQL_MAX_DEPTH + 1; i++)
		deep[off++] = '(';
	off += (size_t)snprintf(deep + off, sizeof(deep) - off, "Name = 'x'");
	for (i = 0; i < SOQL_MAX_DEPTH + 1; i++)
		deep[off++] = ')';
	deep[off] = '\0';
	assert_null(soql_parse(deep, &err));
	assert_string_equal(err.code, "QUERY_TOO_COMPLICATED");

	/* Embedded NUL in a byte-counted query is malformed, not truncated. */
	assert_null(soql_parse_n("SELECT Id FROM Lead\0 junk", 25, &err));
	assert_string_equal(err.code, "MALFORMED_QUERY");
	assert_int_equal(err.column, 20);
}

static void test_match(void **state)
{
	struct soql_env env = {NOW, lookup, NULL, NULL};
	struct soql_error err;
	struct soql_query *q =
	        soql_parse("SELECT Id FROM Lead WHERE NumberOfEmployees > 100", &err);
	json_t *big = json_pack("{s:i}", "NumberOfEmployees", 500);
	json_t *small = json_pack("{s:i}", "NumberOfEmployees", 5);
	json_t *notobj = json_integer(1);

	assert_non_null(q);
	assert_int_equal(soql_match(q, big, &env), 0); /* not bound yet */
	assert_int_equal(soql_bind(q, &schema, NULL, &err), 0);
	assert_int_equal(soql_match(q, big, &env), 1);
	assert_int_equal(soql_match(q, small, &env), 0);
	assert_int_equal(soql_match(q, notobj, &env), 0);
	json_decref(big);
	json_decref(small);
	json_decref(notobj);
	soql_free(q);
}

static void test_error_is_valid_utf8(void **state)
{
	/* The emulator puts the message into a JSON body: it must be UTF-8. */
	static const char *const bad[] = {"SELECT \xff FROM Lead", "SELECT Id FROM Lead WHERE \xc3",
	                                  "SELECT caf\xc3\xa9 FROM Lead"};
	struct soql_error err;
	struct soql_query *q;
	json_t *js;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		q = soql_parse(bad[i], &err);
		if (q != NULL) {
			assert_int_not_equal(soql_bind(q, &schema, NULL, &err), 0);
			soql_free(q);
		}
		js = json_string(err.message);
		if (js == NULL)
			fail_msg("'%s': message is not UTF-8: %s", bad[i], err.message);
		json_decref(js);
	}
	/* Names are ASCII; a valid multi-byte character is quoted intact. */
	assert_non_null(strstr(err.message, "unexpected token: '\xc3\xa9'"));
}

static void test_fuzz_entry(void **state)
{
	static const char *const inputs[] = {
	        "SELECT Id, Name, Owner.Name FROM Lead WHERE Name LIKE '%a%' ORDER BY "
	        "CreatedDate DESC NULLS FIRST LIMIT 2 OFFSET 1",
	        "SELECT COUNT() FROM Lead WHERE CreatedDate = LAST_N_DAYS:30",
	        "SELECT Id FROM Lead WHERE Name LIKE '%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%b'",
	        "SELECT Id FROM Lead WHERE (((((NOT NOT NOT Name = 'x')))))",
	        "SELECT Id FROM Lead WHERE Name = '\\",
	        "\xff\xfe\x00\x01",
	        "SELECT \xc3\xa9 FROM Lead",
	        "",
	};
	size_t i;

	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
		assert_int_equal(soql_fuzz_one((const uint8_t *)inputs[i], strlen(inputs[i])), 0);
	assert_int_equal(soql_fuzz_one((const uint8_t *)"\xff\xfe\x00\x01", 4), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_projection),
	        cmocka_unit_test(test_comparisons),
	        cmocka_unit_test(test_null),
	        cmocka_unit_test(test_and_or_not),
	        cmocka_unit_test(test_mixed_and_or_is_rejected),
	        cmocka_unit_test(test_in),
	        cmocka_unit_test(test_like),
	        cmocka_unit_test(test_string_escapes),
	        cmocka_unit_test(test_dates),
	        cmocka_unit_test(test_datetimes),
	        cmocka_unit_test(test_date_type_errors),
	        cmocka_unit_test(test_order_by),
	        cmocka_unit_test(test_limit_offset),
	        cmocka_unit_test(test_count),
	        cmocka_unit_test(test_ids),
	        cmocka_unit_test(test_relationship),
	        cmocka_unit_test(test_alias),
	        cmocka_unit_test(test_reserved_word_objects),
	        cmocka_unit_test(test_malformed),
	        cmocka_unit_test(test_unknown_names),
	        cmocka_unit_test(test_snippet_window),
	        cmocka_unit_test(test_limits),
	        cmocka_unit_test(test_match),
	        cmocka_unit_test(test_error_is_valid_utf8),
	        cmocka_unit_test(test_fuzz_entry),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
