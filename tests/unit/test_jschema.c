/* Unit tests for common/jschema: every problem reported with its JSON path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "jschema.h"

static const char *schema_text =
        "{\"type\":\"object\",\"additionalProperties\":false,"
        " \"required\":[\"version\",\"pools\"],"
        " \"properties\":{"
        "  \"version\":{\"type\":\"string\",\"pattern\":\"^[0-9]+\\\\.[0-9]+\\\\.[0-9]+$\"},"
        "  \"mode\":{\"enum\":[\"rules\",\"llm\"]},"
        "  \"created\":{\"type\":\"string\",\"format\":\"date-time\"},"
        "  \"pools\":{\"type\":\"object\",\"minProperties\":1,"
        "    \"additionalProperties\":{\"$ref\":\"#/$defs/pool\"}}},"
        " \"$defs\":{\"pool\":{\"type\":\"object\",\"required\":[\"members\"],"
        "   \"properties\":{\"members\":{\"type\":\"array\",\"minItems\":1,"
        "     \"items\":{\"type\":\"object\",\"required\":[\"owner\",\"weight\"],"
        "       \"properties\":{\"owner\":{\"type\":\"string\",\"minLength\":15,\"maxLength\":18},"
        "                       \"weight\":{\"type\":\"integer\",\"minimum\":1}}}}}}}}";

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	if (!j)
		fail_msg("bad test JSON: %s at %d", je.text, je.column);
	return j;
}

static int has_error(json_t *errors, const char *needle)
{
	size_t i;
	json_t *e;
	json_array_foreach(errors, i, e) if (strstr(json_string_value(e), needle)) return 1;
	return 0;
}

static void valid_document_passes(void **state)
{
	(void)state;
	json_t *sd = parse(schema_text);
	struct jschema *s = jschema_new(sd);
	json_t *doc = parse("{\"version\":\"1.2.0\",\"mode\":\"rules\","
	                    "\"created\":\"2026-11-21T10:00:00Z\","
	                    "\"pools\":{\"SMB:NA\":{\"members\":[{\"owner\":\"005000000000001AAA\","
	                    "\"weight\":2}]}}}");
	json_t *errors = NULL;
	assert_int_equal(jschema_validate(s, doc, &errors), 0);
	assert_int_equal(json_array_size(errors), 0);
	json_decref(errors);
	json_decref(doc);
	json_decref(sd);
	jschema_free(s);
}

static void three_mistakes_three_paths(void **state)
{
	(void)state;
	json_t *sd = parse(schema_text);
	struct jschema *s = jschema_new(sd);
	json_t *doc = parse("{\"version\":\"one\",\"colour\":1,"
	                    "\"pools\":{\"SMB:NA\":{\"members\":[{\"owner\":\"005000000000001AAA\","
	                    "\"weight\":0}]}}}");
	json_t *errors = NULL;
	int n = jschema_validate(s, doc, &errors);
	assert_int_equal(n, 3);
	assert_true(has_error(errors, "$.version: does not match the pattern"));
	assert_true(has_error(errors, "$: unknown property 'colour'"));
	assert_true(has_error(errors,
	                      "$.pools.SMB:NA.members[0].weight: 0 is less than the minimum 1"));
	json_decref(errors);
	json_decref(doc);
	json_decref(sd);
	jschema_free(s);
}

static void types_enums_formats_and_required(void **state)
{
	(void)state;
	json_t *sd = parse(schema_text);
	struct jschema *s = jschema_new(sd);
	json_t *doc = parse("{\"mode\":\"magic\",\"created\":\"yesterday\","
	                    "\"pools\":{\"x\":{\"members\":[{\"owner\":7,\"weight\":1.5}]}}}");
	json_t *errors = NULL;
	int n = jschema_validate(s, doc, &errors);
	assert_true(has_error(errors, "$: required property 'version' is missing"));
	assert_true(has_error(errors, "$.mode: \"magic\" is not one of"));
	assert_true(has_error(errors, "$.created: is not a valid date-time"));
	assert_true(has_error(errors, "$.pools.x.members[0].owner: is integer, expected string"));
	assert_true(has_error(errors, "$.pools.x.members[0].weight: is number, expected integer"));
	assert_int_equal(n, 5);
	json_decref(errors);
	json_decref(doc);
	json_decref(sd);
	jschema_free(s);
}

static void combinators_and_bad_refs(void **state)
{
	(void)state;
	json_t *sd =
	        parse("{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"integer\",\"minimum\":0}],"
	              "\"not\":{\"const\":13}}");
	struct jschema *s = jschema_new(sd);
	json_t *v;
	assert_int_equal(jschema_validate(s, v = json_integer(5), NULL), 0);
	json_decref(v);
	assert_int_equal(jschema_validate(s, v = json_string("x"), NULL), 0);
	json_decref(v);
	assert_int_equal(jschema_validate(s, v = json_integer(-1), NULL), 1);
	json_decref(v);
	assert_int_equal(jschema_validate(s, v = json_integer(13), NULL), 1);
	json_decref(v);
	jschema_free(s);
	json_decref(sd);

	sd = parse("{\"$ref\":\"#/$defs/missing\"}");
	s = jschema_new(sd);
	json_t *errors = NULL;
	assert_int_equal(jschema_validate(s, v = json_null(), &errors), 1);
	assert_true(has_error(errors, "does not resolve"));
	json_decref(errors);
	jschema_free(s);
	json_decref(sd);

	/* A self-referencing schema stops at the depth limit instead of recursing forever. */
	sd = parse("{\"$ref\":\"#\"}");
	s = jschema_new(sd);
	assert_true(jschema_validate(s, v = json_null(), NULL) >= 1);
	jschema_free(s);
	json_decref(sd);
}

static void unique_items_and_lengths_count_characters(void **state)
{
	(void)state;
	json_t *sd = parse("{\"type\":\"array\",\"uniqueItems\":true,"
	                   "\"items\":{\"type\":\"string\",\"maxLength\":3}}");
	struct jschema *s = jschema_new(sd);
	json_t *v = parse("[\"\\u00e9\\u00e9\\u00e9\",\"ab\",\"ab\",\"abcd\"]");
	json_t *errors = NULL;
	assert_int_equal(jschema_validate(s, v, &errors), 2);
	assert_true(has_error(errors, "$[2]: duplicates item 1"));
	assert_true(has_error(errors, "$[3]: is 4 characters, longer than 3"));
	json_decref(errors);
	json_decref(v);
	jschema_free(s);
	json_decref(sd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(valid_document_passes),
	        cmocka_unit_test(three_mistakes_three_paths),
	        cmocka_unit_test(types_enums_formats_and_required),
	        cmocka_unit_test(combinators_and_bad_refs),
	        cmocka_unit_test(unique_items_and_lengths_count_characters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
