/*
 * soql.h - a SOQL subset for sfk-sim: parse, bind against a schema, evaluate
 * over in-memory records (jansson objects: field name -> JSON value; dates
 * "2026-11-21", datetimes "2026-11-21T10:15:00.000+0000"). Pure: no I/O, no
 * global state. Errors carry Salesforce's errorCode and message text so the
 * emulator can answer HTTP 400 [{"message": ..., "errorCode": ...}] verbatim.
 */
#ifndef SFK_SIM_SOQL_H
#define SFK_SIM_SOQL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Salesforce's documented maximum SOQL statement length (characters). */
#define SOQL_MAX_QUERY_LEN 100000
/* Deepest nesting of parentheses / NOT in a WHERE clause we accept. */
#define SOQL_MAX_DEPTH 64
/* Salesforce caps OFFSET at 2000 (NUMBER_OUTSIDE_VALID_RANGE above it). */
#define SOQL_MAX_OFFSET 2000
/* Longest identifier (object, field, relationship name) we accept. */
#define SOQL_MAX_NAME    128

#define SOQL_ERRCODE_MAX 48
#define SOQL_ERRMSG_MAX  1024

/*
 * Error detail, filled on failure. code is Salesforce's errorCode:
 *   MALFORMED_QUERY            syntax ("unexpected token: 'X'"), bad literal
 *                              ("Invalid datetime: ...", "invalid ID field: x"),
 *                              duplicate field, over SOQL_MAX_QUERY_LEN
 *   INVALID_TYPE               unknown sObject
 *   INVALID_FIELD              unknown field or relationship, literal of the
 *                              wrong type ("value of filter criterion for
 *                              field 'X' must be of type date and should not
 *                              be enclosed in quotes")
 *   NUMBER_OUTSIDE_VALID_RANGE OFFSET > 2000 ("Maximum SOQL offset allowed
 *                              is 2000", no position)
 *   QUERY_TOO_COMPLICATED      WHERE nested deeper than SOQL_MAX_DEPTH
 * Positioned messages look like Salesforce's:
 * "\nSELECT Foo FROM Lead\n       ^\nERROR at Row:1:Column:8\nNo such column ..."
 * (the whole tokens within ~30 characters either side of the error, a caret
 * under it). row/column are 1-based, 0 when the error has no position.
 * message is valid UTF-8 (safe to put in a JSON body).
 */
struct soql_error {
	char code[SOQL_ERRCODE_MAX];
	char message[SOQL_ERRMSG_MAX];
	int row;
	int column;
};

/* Field types as far as comparison semantics go (describe "type" mapping in
 * the comment: the schema callback picks one). */
enum soql_type {
	SOQL_T_STRING = 0, /* string, picklist, email, phone, url, textarea, ... */
	SOQL_T_ID,         /* id, reference: 15/18-char id compare */
	SOQL_T_BOOLEAN,    /* boolean */
	SOQL_T_NUMBER,     /* int, double, currency, percent */
	SOQL_T_DATE,       /* date: "YYYY-MM-DD" */
	SOQL_T_DATETIME    /* datetime: ISO-8601 with offset */
};

/*
 * The org's schema, supplied by the caller (all callbacks get ctx).
 * object: 0 if the sObject exists; writes its canonical name (e.g. "Lead"
 *   for "lead") into canon (NUL-terminated, size canon_size).
 * field: 0 if object (canonical) has field name (any case); writes its
 *   canonical name and type.
 * relationship (optional, may be NULL -> relationship paths are rejected
 *   with INVALID_FIELD): 0 if object has relationship rel (e.g. "Owner" on
 *   "Lead"); writes its canonical relationship name, the target object
 *   ("User") and the id field on object that holds the reference ("OwnerId").
 */
struct soql_schema {
	int (*object)(void *ctx, const char *name, char *canon, size_t canon_size);
	int (*field)(void *ctx, const char *object, const char *name, char *canon,
	             size_t canon_size, enum soql_type *type);
	int (*relationship)(void *ctx, const char *object, const char *rel, char *canon,
	                    size_t canon_size, char *target, size_t target_size, char *idfield,
	                    size_t idfield_size);
};

/*
 * Evaluation environment.
 * now: reference instant for TODAY, YESTERDAY, LAST_N_DAYS:n ... (UTC days).
 * lookup (optional): returns the record of type object with id (15 or 18
 *   chars), borrowed (valid until soql_run/soql_match returns), or NULL.
 *   Needed only for relationship paths (Owner.Name); without it they are null.
 * url_prefix (optional): e.g. "/services/data/v60.0". When set, soql_run
 *   adds Salesforce's "attributes": {"type", "url": prefix/sobjects/T/Id} to
 *   each returned record (and nested relationship object); when NULL only
 *   {"type"} is added.
 */
struct soql_env {
	time_t now;
	json_t *(*lookup)(void *ctx, const char *object, const char *id);
	void *lookup_ctx;
	const char *url_prefix;
};

struct soql_query;

/*
 * Semantics (as Salesforce, not SQL): AND and OR may not be mixed at one
 * level without parentheses ("a OR b AND c" is MALFORMED_QUERY "unexpected
 * token: 'AND'"); NOT applies to the next condition. "X != v" and
 * "X NOT IN (...)" match rows where X is null; "X = null" / "X != null" test
 * for null; < <= > >= LIKE never match null. Text compares ASCII
 * case-insensitively (=, <, LIKE, ORDER BY). Id fields compare a 15-char
 * literal with an 18-char value on the first 15 characters, case-sensitively.
 * Date fields take YYYY-MM-DD, datetime fields take datetime literals
 * (offsets, fractional seconds), both take TODAY, YESTERDAY, TOMORROW,
 * {LAST,THIS,NEXT}_{WEEK,MONTH,YEAR}, LAST_90_DAYS, NEXT_90_DAYS,
 * LAST_N_DAYS:n, NEXT_N_DAYS:n, N_DAYS_AGO:n (UTC days at env->now; weeks
 * start on Sunday). ORDER BY defaults: ASC NULLS FIRST, DESC NULLS LAST;
 * ties keep input order. Not supported (MALFORMED_QUERY): GROUP BY, HAVING,
 * aggregate functions other than COUNT(), sub-queries, semi-joins, TYPEOF,
 * WITH, FOR, USING SCOPE, INCLUDES/EXCLUDES, currency literals, bind
 * variables, relationship paths deeper than one level.
 */

/*
 * Parse a NUL-terminated SOQL statement. Returns a new query (free with
 * soql_free) or NULL with err filled (MALFORMED_QUERY, or
 * NUMBER_OUTSIDE_VALID_RANGE for OFFSET > 2000). Names are not checked yet.
 */
struct soql_query *soql_parse(const char *text, struct soql_error *err);
/* Same over len bytes that need not be NUL-terminated (an embedded NUL is
 * malformed). For fuzzers and HTTP bodies. */
struct soql_query *soql_parse_n(const char *text, size_t len, struct soql_error *err);

/*
 * Resolve the object and every field name against schema: names become
 * canonical case and get types; literals are checked against field types.
 * Returns 0, or -1 with err (INVALID_TYPE, INVALID_FIELD, MALFORMED_QUERY).
 * Must succeed before match/run. The schema callbacks are only called
 * during soql_bind.
 */
int soql_bind(struct soql_query *q, const struct soql_schema *schema, void *ctx,
              struct soql_error *err);

/* Accessors; strings borrowed, valid while q lives (canonical after bind). */
const char *soql_object(const struct soql_query *q);
int soql_is_count(const struct soql_query *q);
size_t soql_nfields(const struct soql_query *q);
/* Field i as written in SELECT (after bind: canonical, "Owner.Name" paths). */
const char *soql_field(const struct soql_query *q, size_t i);
/* LIMIT / OFFSET, -1 when absent. */
long soql_limit(const struct soql_query *q);
long soql_offset(const struct soql_query *q);

/* 1 if record (borrowed object) satisfies WHERE (1 when there is no WHERE),
 * 0 if not. q must be bound. */
int soql_match(const struct soql_query *q, json_t *record, const struct soql_env *env);

/*
 * Run a bound query over records (borrowed array of objects of q's type):
 * filter, ORDER BY, OFFSET, LIMIT, project. Returns a new reference: an
 * array of new objects, each with "attributes" then the selected fields in
 * SELECT order, canonical names (Id only if selected; missing fields null;
 * relationship paths as nested objects {"attributes", "Name": ...} or null).
 * *total_size gets the row count Salesforce reports as totalSize (for
 * COUNT() the count, and the array is empty). Never NULL for a bound query.
 */
json_t *soql_run(const struct soql_query *q, json_t *records, const struct soql_env *env,
                 size_t *total_size);

/* Accepts NULL. */
void soql_free(struct soql_query *q);

/*
 * Fuzzing entry point: parse data (size bytes), bind against a fixed toy
 * schema (Lead with Id, Name, Email, Company, Status, NumberOfEmployees,
 * IsConverted, CreatedDate, LastActivityDate, OwnerId, Owner->User) and run
 * it over a small fixture. Returns 0 always; crashes/sanitizer reports are
 * the signal.
 */
int soql_fuzz_one(const uint8_t *data, size_t size);

#endif
