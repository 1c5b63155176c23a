/*
 * test_template.c - outreach.template_suggest's pure parts: the shipped
 * policy validates, a policy with three mistakes is refused listing all
 * three with their JSON paths, intent detection on real lead texts,
 * confidence and missing variables, placeholder rendering.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../workers/template.c"
#include "../../workers/wl_sf.c"

/* A scripted LLM (workers/llm.c is tested with the route workload): answers
 * g_llm_answer, or fails with g_llm_error. */
static const char *g_llm_answer, *g_llm_error;
static char g_llm_prompt[8192];
struct llm {
	int unused;
};
struct llm *llm_from_config(const struct config *cfg)
{
	(void)cfg;
	return NULL;
}
void llm_free(struct llm **l)
{
	(void)l;
}
const char *llm_model(const struct llm *l)
{
	(void)l;
	return "fake-model";
}
enum sfk_err llm_chat(struct llm *l, const char *system, const char *user, char **content,
                      char *model_out, size_t model_len, char *errstr, size_t errlen)
{
	(void)l;
	(void)system;
	snprintf(g_llm_prompt, sizeof g_llm_prompt, "%s", user);
	if (g_llm_error) {
		snprintf(errstr, errlen, "%s", g_llm_error);
		return SFK_ERR_TIMEOUT;
	}
	*content = xstrdup(g_llm_answer);
	snprintf(model_out, model_len, "fake-model");
	return SFK_OK;
}

static const char *src_dir(void)
{
	const char *d = getenv("SFK_SOURCE_DIR");
	if (!d || !*d)
		fail_msg("SFK_SOURCE_DIR is not set (run through ctest, or export the repo root)");
	return d;
}

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	if (!j)
		fail_msg("bad test JSON: %s at %d", je.text, je.column);
	return j;
}

static struct tpl_policy *shipped(void)
{
	char pol[4096], sch[4096];
	json_t *problems = NULL;
	snprintf(pol, sizeof pol, "%s/policies/templates.json", src_dir());
	snprintf(sch, sizeof sch, "%s/schemas/templates.schema.json", src_dir());
	struct tpl_policy *p = tpl_policy_load(pol, sch, &problems);
	if (!p)
		fail_msg("shipped policy refused: %s",
		         problems ? json_string_value(json_array_get(problems, 0)) : "?");
	assert_null(problems);
	return p;
}

static int has(json_t *problems, const char *needle)
{
	size_t i;
	json_t *p;
	json_array_foreach(problems, i, p) if (strstr(json_string_value(p), needle)) return 1;
	return 0;
}

static void shipped_policy_loads(void **state)
{
	(void)state;
	struct tpl_policy *p = shipped();
	assert_true(p->n >= 5);
	assert_non_null(p->fallback);
	assert_string_equal(p->fallback->id, "generic_intro");
	assert_true(p->bar > 0 && p->bar <= 1);
	tpl_policy_free(p);
}

static void three_mistakes_all_reported(void **state)
{
	(void)state;
	char sch[4096], err[256];
	snprintf(sch, sizeof sch, "%s/schemas/templates.schema.json", src_dir());
	struct jschema *s = jschema_load(sch, err, sizeof err);
	assert_non_null(s);
	/* 1: confidence_bar above 1; 2: a trigger without weight; 3: fallback
	 * names no template. Plus a malformed placeholder as a fourth kind. */
	json_t *doc = parse(
	        "{\"version\":\"1.0.0\",\"confidence_bar\":1.5,\"fallback_template\":\"nope\","
	        "\"templates\":[{\"id\":\"a\",\"name\":\"A\",\"intent\":\"x\",\"triggers\":"
	        "[{\"phrase\":\"demo\"}],\"subject\":\"Hi\",\"body\":\"Hello {{FirstName}}\"}]}");
	json_t *problems = NULL;
	assert_null(tpl_policy_from_json(doc, s, &problems));
	assert_int_equal(json_array_size(problems), 3);
	assert_true(has(problems, "$.confidence_bar"));
	assert_true(has(problems, "$.templates[0].triggers[0]"));
	assert_true(has(problems, "weight"));
	assert_true(has(problems, "$.fallback_template: \"nope\""));
	json_decref(problems);
	json_decref(doc);

	doc = parse("{\"version\":\"1.0.0\",\"confidence_bar\":0.5,\"fallback_template\":\"a\","
	            "\"templates\":[{\"id\":\"a\",\"name\":\"A\",\"intent\":\"x\",\"triggers\":[],"
	            "\"subject\":\"Hi {{First Name}}\",\"body\":\"Hello {{FirstName\"},"
	            "{\"id\":\"a\",\"name\":\"B\",\"intent\":\"y\",\"triggers\":[],"
	            "\"subject\":\"s\",\"body\":\"b\"}]}");
	assert_null(tpl_policy_from_json(doc, s, &problems));
	assert_int_equal(json_array_size(problems), 3);
	assert_true(has(problems, "$.templates[0].subject: bad placeholder name \"First Name\""));
	assert_true(has(problems, "$.templates[0].body: unclosed placeholder"));
	assert_true(has(problems, "$.templates[1].id: duplicate template id \"a\""));
	json_decref(problems);
	json_decref(doc);
	jschema_free(s);
}

/* Lead fields as the bridge delivers them (compound Name). */
static json_t *lead(const char *description, const char *source, const char *industry)
{
	json_t *f = parse("{\"Name\":{\"Salutation\":\"Ms.\",\"FirstName\":\"Ada\","
	                  "\"LastName\":\"Lovelace\"},\"Company\":\"Analytical Engines Ltd\","
	                  "\"Email\":\"ada@example.com\",\"NumberOfEmployees\":250}");
	if (description)
		json_object_set_new(f, "Description", json_string(description));
	if (source)
		json_object_set_new(f, "LeadSource", json_string(source));
	if (industry)
		json_object_set_new(f, "Industry", json_string(industry));
	return f;
}

static void suggest(const struct tpl_policy *p, json_t *fields, struct tpl_result *r)
{
	json_t *facts = tpl_lead_facts(p, fields);
	tpl_suggest(p, facts, r);
	json_decref(facts);
}

static void intents_detected(void **state)
{
	(void)state;
	struct tpl_policy *p = shipped();
	static const struct {
		const char *text, *intent;
	} cases[] = {
	        {"Can you send pricing for 40 seats? We are comparing vendors this quarter.",
	         "pricing"},
	        {"What would the enterprise plan cost for a team of 12? Budget approved for Q3.",
	         "pricing"},
	        {"We'd like a demo of the reporting features next week for 30 people.", "demo"},
	        {"Please schedule a product walkthrough for our sales ops team (8 users).", "demo"},
	        {"Does it integrate with SAP? We need an API for order sync across 20 stores.",
	         "integration"},
	        {"We need SSO (SAML) and a data export API before rolling out to 90 employees.",
	         "integration"},
	        {"Existing customer: login issue since the upgrade, 5 users affected. Please help.",
	         "support"},
	        {"Getting errors on import for 70 records, can someone from support call me?",
	         "support"},
	        {"We are an agency serving 15 clients and want to become a reseller partner.",
	         "partnership"},
	        {"Exploring a technology partnership / co-marketing; we reach 400 customers.",
	         "partnership"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tpl_result r;
		json_t *f = lead(cases[i].text, "Web", "Banking");
		suggest(p, f, &r);
		if (strcmp(r.t->intent, cases[i].intent) != 0)
			fail_msg("\"%s\": intent %s, expected %s", cases[i].text, r.t->intent,
			         cases[i].intent);
		assert_true(r.confidence >= p->bar);
		assert_int_equal(json_array_size(r.missing), 0);
		tpl_result_clear(&r);
		json_decref(f);
	}
	/* Whole words only: "rapid" holds no "api", "capital" neither. */
	struct tpl_result r;
	json_t *f = lead("Rapid growth, capital raised.", NULL, NULL);
	suggest(p, f, &r);
	assert_string_equal(r.t->id, "generic_intro");
	assert_true(r.confidence == 0.0);
	tpl_result_clear(&r);
	json_decref(f);
	/* No description: a source-only hint stays below min_score -> fallback */
	f = lead(NULL, "Web", NULL);
	suggest(p, f, &r);
	assert_string_equal(r.t->intent, "unknown");
	tpl_result_clear(&r);
	json_decref(f);
	/* A picklist value is read only by triggers naming its field: the source
	 * "Partner Referral" alone is no partnership request. */
	f = lead(NULL, "Partner Referral", NULL);
	suggest(p, f, &r);
	assert_string_equal(r.t->intent, "unknown");
	tpl_result_clear(&r);
	json_decref(f);
	f = lead("We'd like a demo of the reporting features next week for 30 people.",
	         "Partner Referral", NULL);
	suggest(p, f, &r);
	assert_string_equal(r.t->intent, "demo");
	assert_true(r.confidence >= p->bar);
	tpl_result_clear(&r);
	json_decref(f);
	/* Weak and mixed evidence: lower confidence than a clear case */
	f = lead("Any pricing? Also a demo maybe.", NULL, NULL);
	suggest(p, f, &r);
	assert_true(r.confidence > 0 && r.confidence < p->bar);
	tpl_result_clear(&r);
	json_decref(f);
	tpl_policy_free(p);
}

static void variables_filled_and_missing(void **state)
{
	(void)state;
	struct tpl_policy *p = shipped();
	struct tpl_result r, r2;
	json_t *f = lead("Could we see a live demo? Evaluating tools for roughly 40 staff.", "Web",
	                 NULL);
	suggest(p, f, &r);
	assert_string_equal(r.t->id, "demo_invite");
	assert_string_equal(r.subject, "Your Analytical Engines Ltd demo");
	assert_non_null(strstr(r.body, "Hi Ada,"));
	assert_null(strstr(r.body, "{{"));
	assert_string_equal(json_string_value(json_object_get(r.variables, "FirstName")), "Ada");
	assert_string_equal(json_string_value(json_object_get(r.variables, "Company")),
	                    "Analytical Engines Ltd");
	/* the same lead without a first name: listed, rendered empty, lower confidence */
	json_object_del(json_object_get(f, "Name"), "FirstName");
	suggest(p, f, &r2);
	assert_string_equal(r2.t->id, "demo_invite");
	assert_int_equal(json_array_size(r2.missing), 1);
	assert_string_equal(json_string_value(json_array_get(r2.missing, 0)), "FirstName");
	assert_true(r2.confidence < r.confidence);
	assert_true(fabs(r2.confidence - r.confidence * (1 - p->penalty)) < 0.0001);
	assert_non_null(strstr(r2.body, "Hi ,"));
	tpl_result_clear(&r);
	tpl_result_clear(&r2);
	json_decref(f);
	tpl_policy_free(p);
}

static void render(void **state)
{
	(void)state;
	json_t *vars = parse("{\"A\":\"x\",\"N\":250,\"R\":2.5,\"E\":\"\"}");
	json_t *missing = json_array();
	char *s = tpl_render("{{A}}-{{N}}-{{R}}-{{E}}-{{Z}}-{{Z}} {{ open", vars, missing);
	assert_string_equal(s, "x-250-2.5--- {{ open");
	assert_int_equal(json_array_size(missing), 2);
	assert_string_equal(json_string_value(json_array_get(missing, 0)), "E");
	assert_string_equal(json_string_value(json_array_get(missing, 1)), "Z");
	free(s);
	/* over the cap */
	char *big = xmalloc(TPL_RENDER_MAX + 10);
	memset(big, 'a', TPL_RENDER_MAX + 9);
	big[TPL_RENDER_MAX + 9] = '\0';
	assert_null(tpl_render(big, vars, NULL));
	free(big);
	json_decref(missing);
	json_decref(vars);
}

static void product_interest_field(void **state)
{
	(void)state;
	struct tpl_policy *p = shipped();
	json_t *f = lead(NULL, NULL, NULL);
	json_object_set_new(f, "Product_Interest__c", json_string("REST API and webhooks"));
	struct tpl_result r;
	suggest(p, f, &r);
	assert_string_equal(r.t->intent, "integration");
	tpl_result_clear(&r);
	json_decref(f);
	tpl_policy_free(p);
}

static void llm_refines_or_rules_stand(void **state)
{
	(void)state;
	struct tpl_policy *p = shipped();
	struct llm fake = {0};
	struct tpl_result r;
	char model[64], err[256];
	json_t *f =
	        lead("Can you send pricing for 40 seats? We are comparing vendors.", NULL, NULL);
	json_t *facts = tpl_lead_facts(p, f);

	/* the LLM picks another template with its confidence: it wins */
	g_llm_error = NULL;
	g_llm_answer = "{\"template_id\":\"demo_invite\",\"confidence\":0.9}";
	assert_int_equal(
	        tpl_choose(p, &fake, "sys", facts, &r, model, sizeof model, err, sizeof err), 1);
	assert_string_equal(r.t->id, "demo_invite");
	assert_true(r.confidence == 0.9);
	assert_string_equal(model, "fake-model");
	assert_string_equal(r.subject, "Your Analytical Engines Ltd demo");
	/* the prompt holds the lead's facts, the rule decision and the candidates */
	assert_non_null(strstr(g_llm_prompt, "comparing vendors"));
	assert_non_null(strstr(g_llm_prompt,
	                       "\"rule_decision\":{\"confidence\":1.0,\"intent\":\"pricing\""));
	assert_non_null(strstr(g_llm_prompt, "\"template_id\":\"partner_program\""));
	tpl_result_clear(&r);

	/* an id that is not in the policy, garbage, or an error: the rules stand */
	const char *bad[] = {"{\"template_id\":\"free_money\"}", "not json", NULL};
	for (int i = 0; i < 3; i++) {
		g_llm_answer = bad[i];
		g_llm_error = bad[i] ? NULL : "timeout after 2000 ms";
		assert_int_equal(tpl_choose(p, &fake, "sys", facts, &r, model, sizeof model, err,
		                            sizeof err),
		                 0);
		assert_string_equal(r.t->id, "pricing_quote");
		assert_true(r.confidence == 1.0);
		assert_true(err[0] != '\0');
		tpl_result_clear(&r);
	}
	/* confirming without a confidence keeps the rule's */
	g_llm_error = NULL;
	g_llm_answer = "{\"template_id\":\"pricing_quote\"}";
	assert_int_equal(
	        tpl_choose(p, &fake, "sys", facts, &r, model, sizeof model, err, sizeof err), 1);
	assert_string_equal(r.t->id, "pricing_quote");
	assert_true(r.confidence == 1.0);
	tpl_result_clear(&r);
	/* no LLM configured */
	assert_int_equal(
	        tpl_choose(p, NULL, "sys", facts, &r, model, sizeof model, err, sizeof err), 0);
	assert_string_equal(r.t->id, "pricing_quote");
	tpl_result_clear(&r);
	json_decref(facts);
	json_decref(f);
	tpl_policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(shipped_policy_loads),
	        cmocka_unit_test(three_mistakes_all_reported),
	        cmocka_unit_test(intents_detected),
	        cmocka_unit_test(variables_filled_and_missing),
	        cmocka_unit_test(render),
	        cmocka_unit_test(product_interest_field),
	        cmocka_unit_test(llm_refines_or_rules_stand),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
