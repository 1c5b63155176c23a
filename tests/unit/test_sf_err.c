/* Unit tests for common/sf_err: REST, Collections and OAuth error bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sf_err.h"

/* Verbatim copies of /work/shared/docs/samples (docs/samples/README.md names
 * their sources), so the test does not depend on a path outside the repo. */
static const char sample_malformed_id[] = /* error-malformed-id.doc.json */
        "[\n{\n  \"fields\" : [ \"Id\" ],\n  \"message\" : \"Account ID: id value of incorrect "
        "type: 001900K0001pPuOAAU\",\n  \"errorCode\" : \"MALFORMED_ID\"\n}\n]\n";
static const char sample_jwt_error[] = /* jwt-error-audience-validation-failed.help-doc.json */
        "{\n  \"error\":\"invalid_grant\",\n  \"error_description\":\"Audience validation "
        "failed\"\n}\n";
/* composite-sobjects-update-response-partial-failure.doc.json */
static const char sample_partial[] =
        "[\n   {\n      \"id\" : \"001RM000003oCprYAE\",\n      \"success\" : true,\n      "
        "\"errors\" : [ ]\n   },\n   {\n      \"success\" : false,\n      \"errors\" : [\n        "
        " {\n            \"statusCode\" : \"MALFORMED_ID\",\n            \"message\" : "
        "\"Contact ID: id value of incorrect type: 001xx000003DGb2999\",\n            "
        "\"fields\" : [\n               \"Id\"\n            ]\n         }\n      ]\n   }\n]\n";

static void malformed_id_is_permanent(void **state)
{
	(void)state;
	struct sf_error e;
	enum sfk_err rc = sf_err_parse_rest(400, "application/json;charset=UTF-8",
	                                    sample_malformed_id, strlen(sample_malformed_id), &e);
	assert_int_equal(rc, SFK_ERR_SF_PERMANENT);
	assert_int_equal(sfk_err_class(rc), SFK_CLASS_PERMANENT);
	assert_string_equal(e.code, "MALFORMED_ID");
	assert_string_equal(e.message,
	                    "Account ID: id value of incorrect type: 001900K0001pPuOAAU");
	assert_string_equal(e.fields, "Id");
	assert_int_equal(e.http_status, 400);
}

static void collection_partial_failure_uses_status_code(void **state)
{
	(void)state;
	json_t *arr = json_loads(sample_partial, 0, NULL);
	assert_non_null(arr);
	assert_int_equal(json_array_size(arr), 2);
	json_t *r1 = json_array_get(arr, 1);
	assert_false(json_is_true(json_object_get(r1, "success")));
	struct sf_error e;
	enum sfk_err rc =
	        sf_err_from_json(json_array_get(json_object_get(r1, "errors"), 0), 200, &e);
	assert_int_equal(rc, SFK_ERR_SF_PERMANENT);
	assert_string_equal(e.code, "MALFORMED_ID");
	assert_string_equal(e.fields, "Id");
	assert_non_null(strstr(e.message, "001xx000003DGb2999"));
	json_decref(arr);
}

static void retriable_codes(void **state)
{
	(void)state;
	struct sf_error e;
	const char lock[] = "[{\"message\":\"unable to obtain exclusive access to this record\","
	                    "\"errorCode\":\"UNABLE_TO_LOCK_ROW\",\"fields\":[]}]";
	assert_int_equal(sf_err_parse_rest(400, NULL, lock, strlen(lock), &e), SFK_ERR_LOCK);
	assert_int_equal(sfk_err_class(e.err), SFK_CLASS_RETRIABLE);
	assert_string_equal(e.fields, "");

	const char limit[] = "[{\"message\":\"TotalRequests Limit exceeded.\","
	                     "\"errorCode\":\"REQUEST_LIMIT_EXCEEDED\"}]";
	assert_int_equal(sf_err_parse_rest(403, NULL, limit, strlen(limit), &e), SFK_ERR_LIMIT);

	const char sess[] = "[{\"message\":\"Session expired or invalid\","
	                    "\"errorCode\":\"INVALID_SESSION_ID\"}]";
	assert_int_equal(sf_err_parse_rest(401, NULL, sess, strlen(sess), &e), SFK_ERR_AUTH);
	/* The bare-object form seen in the wild. */
	const char sess_obj[] = "{\"message\":\"Session expired or invalid\","
	                        "\"errorCode\":\"INVALID_SESSION_ID\"}";
	assert_int_equal(sf_err_parse_rest(401, NULL, sess_obj, strlen(sess_obj), &e),
	                 SFK_ERR_AUTH);

	const char unavail[] = "[{\"message\":\"busy\",\"errorCode\":\"SERVER_UNAVAILABLE\"}]";
	assert_int_equal(sf_err_parse_rest(503, NULL, unavail, strlen(unavail), &e),
	                 SFK_ERR_HTTP_5XX);
	assert_int_equal(sf_err_map(NULL, 502), SFK_ERR_HTTP_5XX);
	assert_int_equal(sf_err_map("", 404), SFK_ERR_NOT_FOUND);
	assert_int_equal(sf_err_map("", 414), SFK_ERR_TOO_LARGE);
}

static void permanent_codes(void **state)
{
	(void)state;
	const char *codes[] = {"INVALID_FIELD", "FIELD_CUSTOM_VALIDATION_EXCEPTION",
	                       "ENTITY_IS_DELETED", "MALFORMED_QUERY",
	                       "INVALID_CROSS_REFERENCE_KEY"};
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		assert_int_equal(sf_err_map(codes[i], 400), SFK_ERR_SF_PERMANENT);
		assert_int_equal(sfk_err_class(sf_err_map(codes[i], 400)), SFK_CLASS_PERMANENT);
	}
	/* A known code wins over a misleading status. */
	assert_int_equal(sf_err_map("UNABLE_TO_LOCK_ROW", 400), SFK_ERR_LOCK);
	assert_int_equal(sf_err_map("INVALID_FIELD", 200), SFK_ERR_SF_PERMANENT);
}

static void html_from_proxy(void **state)
{
	(void)state;
	const char html[] = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>"
	                    "<center><h1>502 Bad Gateway</h1></center></body></html>";
	struct sf_error e;
	enum sfk_err rc = sf_err_parse_rest(502, "text/html", html, strlen(html), &e);
	assert_int_equal(rc, SFK_ERR_HTTP_5XX);
	assert_int_equal(e.http_status, 502);
	assert_string_equal(e.code, "HTTP_502");
	assert_non_null(strstr(e.message, "non-JSON"));
	assert_non_null(strstr(e.message, "text/html"));
	assert_non_null(strstr(e.message, "502 Bad Gateway"));
	assert_null(strchr(e.message, '\r'));

	rc = sf_err_parse_rest(400, "text/html", html, strlen(html), &e);
	assert_int_equal(rc, SFK_ERR_SF_PERMANENT);
	rc = sf_err_parse_rest(503, NULL, "", 0, &e);
	assert_int_equal(rc, SFK_ERR_HTTP_5XX);
	assert_non_null(strstr(e.message, "(empty)"));
}

static void oauth_audience_hint(void **state)
{
	(void)state;
	struct sf_error e;
	enum sfk_err rc = sf_err_parse_oauth(400, "application/json", sample_jwt_error,
	                                     strlen(sample_jwt_error), &e);
	assert_int_equal(rc, SFK_ERR_GRANT);
	assert_int_equal(sfk_err_class(rc), SFK_CLASS_FATAL);
	assert_string_equal(e.code, "invalid_grant");
	assert_non_null(strstr(e.message, "Audience validation failed"));
	assert_non_null(strstr(e.message, "https://login.salesforce.com"));
	assert_non_null(strstr(e.message, "https://test.salesforce.com"));
}

static void oauth_other_hints(void **state)
{
	(void)state;
	struct sf_error e;
	const char approve[] = "{\"error\":\"invalid_grant\",\"error_description\":\"user hasn't "
	                       "approved this consumer\"}";
	assert_int_equal(sf_err_parse_oauth(400, NULL, approve, strlen(approve), &e),
	                 SFK_ERR_GRANT);
	assert_non_null(strstr(e.message, "pre-authorize"));
	const char aud[] = "{\"error\":\"invalid_grant\",\"error_description\":\"audience is "
	                   "invalid\"}";
	sf_err_parse_oauth(400, NULL, aud, strlen(aud), &e);
	assert_non_null(strstr(e.message, "SF_LOGIN_URL"));
	const char exp[] = "{\"error\":\"invalid_grant\",\"error_description\":\"expired "
	                   "authorization code\"}";
	sf_err_parse_oauth(400, NULL, exp, strlen(exp), &e);
	assert_non_null(strstr(e.message, "clock"));
	const char grant[] = "{\"error\":\"unsupported_grant_type\",\"error_description\":\"grant "
	                     "type not supported\"}";
	assert_int_equal(sf_err_parse_oauth(400, NULL, grant, strlen(grant), &e), SFK_ERR_CONFIG);
	assert_int_equal(sf_err_parse_oauth(503, "text/html", "<html>down</html>", 17, &e),
	                 SFK_ERR_HTTP_5XX);
	assert_null(sf_err_oauth_hint("something new"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(malformed_id_is_permanent),
	        cmocka_unit_test(collection_partial_failure_uses_status_code),
	        cmocka_unit_test(retriable_codes),
	        cmocka_unit_test(permanent_codes),
	        cmocka_unit_test(html_from_proxy),
	        cmocka_unit_test(oauth_audience_hint),
	        cmocka_unit_test(oauth_other_hints),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
