/*
 * template.h - the outreach.template_suggest workload: for every new Lead,
 * pick an outreach template from policies/templates.json by intent (trigger
 * phrases in Description, product interest, Industry, LeadSource), fill its
 * {{variables}}, write Template_Recommended__c/_Intent__c/_Confidence__c, and
 * send it (Simple Email Action) only when the template allows it and the
 * confidence clears the policy's bar, once per Lead. Inbound replies on a Lead
 * that got a suggestion become flywheel outcome records.
 */
#ifndef SFK_TEMPLATE_H
#define SFK_TEMPLATE_H

#include <stddef.h>

#include <jansson.h>

#include "jschema.h"
#include "workload.h"

#define TPL_RENDER_MAX 65536 /* a rendered subject/body */
#define TPL_VAR_MAX    64    /* a {{variable}} name */

extern const struct workload_ops template_ops;

struct tpl_trigger {
	char *phrase; /* lower-case; a trailing '*' removed and prefix set */
	int prefix;
	char *field; /* NULL: every text field */
	double weight;
};

struct tpl_template {
	char *id, *name, *intent, *subject, *body;
	struct tpl_trigger *triggers;
	size_t ntriggers;
	char **required; /* required variable names */
	size_t nrequired;
	int auto_send;
};

struct tpl_policy {
	char *version;
	double bar, saturation, min_score, penalty;
	char *product_field; /* may be NULL */
	const struct tpl_template *fallback;
	struct tpl_template *t;
	size_t n;
};

/*
 * Validate doc (borrowed) against schema (borrowed; may be NULL to skip) and
 * the rules a schema cannot state (unique ids, fallback exists, placeholders
 * well-formed). Every problem is appended to *problems (a new array of
 * "$.path: problem" strings; NULL when none). Returns a new policy
 * (tpl_policy_free) or NULL if there was any problem.
 */
struct tpl_policy *tpl_policy_from_json(json_t *doc, const struct jschema *schema,
                                        json_t **problems);
/* Same from files. */
struct tpl_policy *tpl_policy_load(const char *path, const char *schema_path, json_t **problems);
void tpl_policy_free(struct tpl_policy *p); /* NULL ok */

/* The lead's facts the suggestion reads: a new object with Description,
 * product_interest, Industry, LeadSource and every scalar field, with the
 * CDC compound Name flattened (FirstName, LastName, Salutation). */
json_t *tpl_lead_facts(const struct tpl_policy *p, json_t *fields);

/* One suggestion. */
struct tpl_result {
	const struct tpl_template *t; /* borrowed from the policy */
	double score;                 /* trigger score of t */
	double confidence;            /* 0..1, 4 decimals */
	json_t *variables;            /* new: name -> value used */
	json_t *missing;              /* new: required variables without a value */
	char *subject, *body;         /* rendered (missing variables render empty) */
};
/* Suggest for facts (borrowed, from tpl_lead_facts). Fills *r (tpl_result_clear). */
void tpl_suggest(const struct tpl_policy *p, json_t *facts, struct tpl_result *r);
void tpl_result_clear(struct tpl_result *r);

/*
 * Render text's {{name}} placeholders from vars (borrowed object; numbers
 * printed as integers when whole). Names without a value render empty and
 * are appended to missing (borrowed array, may be NULL) once each. Returns a
 * new string, or NULL if the result would exceed TPL_RENDER_MAX.
 */
char *tpl_render(const char *text, json_t *vars, json_t *missing);

struct llm;
/*
 * The rule suggestion (tpl_suggest); then, when l is not NULL, the LLM is
 * asked (system prompt, user message = the lead's facts, the rule decision
 * and the candidate templates) to validate/refine it. An answer
 * {"template_id": <a template of the policy>, "confidence": 0..1 (optional)}
 * wins: *r is refilled for that template (variables, missing-variable
 * penalty). On ANY error or an unknown id the rules stand and errstr says
 * why. Returns 1 when the LLM decided (model_out = its model), else 0.
 */
int tpl_choose(const struct tpl_policy *p, struct llm *l, const char *system, json_t *facts,
               struct tpl_result *r, char *model_out, size_t model_len, char *errstr,
               size_t errlen);

/* Trigger score of template t over facts (pure). */
double tpl_score(const struct tpl_template *t, json_t *facts);

#endif
