/*
 * template.c - outreach.template_suggest (see template.h).
 *
 * decide(): Lead CREATE -> suggestion -> one Collections write of the three
 * Template_* fields; Leads whose template may be sent are checked against
 * Template_Applied__c in one query. after_write(): only for records whose
 * write succeeded, take the Redis send guard (SET NX sfk:tpl:sent:<lead>),
 * send with the Simple Email Action and set Template_Applied__c (one
 * Collections call). A send that may have happened is never repeated: the
 * guard stays. Inbound EmailMessages (Incoming = true) are linked to their
 * Lead (EmailMessageRelation, else the Task's WhoId) and, when the Lead has a
 * Template_Recommended__c, recorded as a flywheel "reply" outcome.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "flywheel.h"
#include "llm.h"
#include "log.h"
#include "metrics.h"
#include "rkeys.h"
#include "sfid.h"
#include "soql_build.h"
#include "template.h"
#include "wl_sf.h"
#include "xmem.h"

#define TPL_ERR_MAX 512

static const char *g_policy_path, *g_schema_path;
static long long g_sent_ttl_ms;

static const struct config_entry tpl_config[] = {
        {"template-policy", "SFK_TEMPLATE_POLICY", CONFIG_STRING, "policies/templates.json", 0,
         "Outreach template policy (validated at start-up)", .dest = &g_policy_path},
        {"template-schema", "SFK_TEMPLATE_SCHEMA", CONFIG_STRING, "schemas/templates.schema.json",
         0, "JSON Schema of the template policy", .dest = &g_schema_path},
        {"template-sent-ttl", "SFK_TEMPLATE_SENT_TTL", CONFIG_DURATION, "720h", 0,
         "Lifetime of the per-Lead send guard sfk:tpl:sent:<lead>", .dest = &g_sent_ttl_ms,
         .min = 60000, .max = 366LL * 24 * 3600 * 1000},
};

/* One planned send of the current batch (decide -> after_write). */
struct send {
	int planned;
	int stored; /* the suggestion is in Salesforce already: sent without a write */
	char lead[19];
	char *email, *subject, *body;
};

struct tpl_state {
	struct tpl_policy *policy;
	char model[WL_MODEL_MAX];
	struct send *sends; /* per event of the current batch */
	size_t nsends;
	struct metric *suggested; /* sfk_template_suggestions_total{template,outcome} */
	struct metric *replies;   /* sfk_template_replies_total{template} */
	struct llm *llm;          /* optional (SFK_LLM_URL) */
};

#define TPL_LLM_BATCH_BUDGET_MS 10000 /* then the rules decide the rest of the batch */

/* ---- policy --------------------------------------------------------------------- */

static void problem(json_t **problems, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(json_t **problems, const char *fmt, ...)
{
	char buf[TPL_ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (!*problems)
		*problems = json_array();
	json_array_append_new(*problems, json_string(buf));
}

static int var_char(int c)
{
	return isalnum(c) || c == '_';
}

/* Placeholders of text are well-formed ({{Name}}). Reports each bad one. */
static void check_placeholders(const char *text, const char *path, json_t **problems)
{
	const char *p = text;
	while ((p = strstr(p, "{{")) != NULL) {
		const char *end = strstr(p + 2, "}}");
		if (!end) {
			problem(problems, "%s: unclosed placeholder at offset %zu", path,
			        (size_t)(p - text));
			return;
		}
		size_t n = (size_t)(end - p - 2);
		int ok = n > 0 && n < TPL_VAR_MAX && isalpha((unsigned char)p[2]);
		for (size_t i = 0; ok && i < n; i++)
			ok = var_char((unsigned char)p[2 + i]);
		if (!ok)
			problem(problems, "%s: bad placeholder name \"%.*s\" (letters, digits, _)",
			        path, (int)(n < 40 ? n : 40), p + 2);
		p = end + 2;
	}
}

static char *lower_dup(const char *s)
{
	char *d = xstrdup(s);
	for (char *q = d; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	return d;
}

static double num(json_t *o, const char *k, double def)
{
	json_t *v = json_object_get(o, k);
	return json_is_number(v) ? json_number_value(v) : def;
}

struct tpl_policy *tpl_policy_from_json(json_t *doc, const struct jschema *schema,
                                        json_t **problems)
{
	json_t *errs = NULL;
	*problems = NULL;
	if (schema && jschema_validate(schema, doc, &errs) > 0) {
		*problems = errs;
		errs = NULL;
	}
	json_decref(errs);
	/* Semantic checks run even after schema problems, so one run lists all. */
	json_t *list = json_object_get(doc, "templates");
	size_t i;
	json_t *t;
	json_t *seen = json_object();
	json_array_foreach(list, i, t)
	{
		const char *tid = json_string_value(json_object_get(t, "id"));
		char path[128];
		if (tid && json_object_get(seen, tid))
			problem(problems, "$.templates[%zu].id: duplicate template id \"%s\"", i,
			        tid);
		else if (tid)
			json_object_set_new(seen, tid, json_true());
		const char *subject = json_string_value(json_object_get(t, "subject"));
		const char *body = json_string_value(json_object_get(t, "body"));
		snprintf(path, sizeof(path), "$.templates[%zu].subject", i);
		if (subject)
			check_placeholders(subject, path, problems);
		snprintf(path, sizeof(path), "$.templates[%zu].body", i);
		if (body)
			check_placeholders(body, path, problems);
	}
	const char *fb = json_string_value(json_object_get(doc, "fallback_template"));
	if (fb && !json_object_get(seen, fb))
		problem(problems, "$.fallback_template: \"%s\" is not a template id", fb);
	json_decref(seen);
	if (*problems)
		return NULL;

	struct tpl_policy *p = xcalloc(1, sizeof(*p));
	p->version = xstrdup(json_string_value(json_object_get(doc, "version")));
	p->bar = num(doc, "confidence_bar", 1.0);
	p->saturation = num(doc, "score_saturation", 4.0);
	p->min_score = num(doc, "min_score", 1.0);
	p->penalty = num(doc, "missing_variable_penalty", 0.25);
	const char *pf = json_string_value(json_object_get(doc, "product_interest_field"));
	p->product_field = pf ? xstrdup(pf) : NULL;
	p->n = json_array_size(list);
	p->t = xcalloc(p->n, sizeof(*p->t));
	json_array_foreach(list, i, t)
	{
		struct tpl_template *d = &p->t[i];
		d->id = xstrdup(json_string_value(json_object_get(t, "id")));
		d->name = xstrdup(json_string_value(json_object_get(t, "name")));
		d->intent = xstrdup(json_string_value(json_object_get(t, "intent")));
		d->subject = xstrdup(json_string_value(json_object_get(t, "subject")));
		d->body = xstrdup(json_string_value(json_object_get(t, "body")));
		d->auto_send = json_is_true(json_object_get(t, "auto_send"));
		json_t *trs = json_object_get(t, "triggers");
		d->ntriggers = json_array_size(trs);
		d->triggers = xcalloc(d->ntriggers ? d->ntriggers : 1, sizeof(*d->triggers));
		size_t k;
		json_t *tr;
		json_array_foreach(trs, k, tr)
		{
			struct tpl_trigger *g = &d->triggers[k];
			g->phrase = lower_dup(json_string_value(json_object_get(tr, "phrase")));
			size_t len = strlen(g->phrase);
			if (len > 1 && g->phrase[len - 1] == '*') {
				g->phrase[len - 1] = '\0';
				g->prefix = 1;
			}
			const char *f = json_string_value(json_object_get(tr, "field"));
			g->field = f ? xstrdup(f) : NULL;
			g->weight = num(tr, "weight", 1.0);
		}
		json_t *req = json_object_get(t, "required_variables");
		d->nrequired = json_array_size(req);
		d->required = xcalloc(d->nrequired ? d->nrequired : 1, sizeof(*d->required));
		json_array_foreach(req, k, tr) d->required[k] = xstrdup(json_string_value(tr));
		if (strcmp(d->id, fb) == 0)
			p->fallback = d;
	}
	return p;
}

struct tpl_policy *tpl_policy_load(const char *path, const char *schema_path, json_t **problems)
{
	char err[TPL_ERR_MAX];
	json_error_t je;
	struct jschema *s = NULL;
	struct tpl_policy *p = NULL;
	*problems = NULL;
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!doc) {
		problem(problems, "%s: line %d: %s", path, je.line, je.text);
		goto out;
	}
	s = jschema_load(schema_path, err, sizeof(err));
	if (!s) {
		problem(problems, "%s: %s", schema_path, err);
		goto out;
	}
	p = tpl_policy_from_json(doc, s, problems);
out:
	jschema_free(s);
	json_decref(doc);
	return p;
}

void tpl_policy_free(struct tpl_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		struct tpl_template *d = &p->t[i];
		for (size_t k = 0; k < d->ntriggers; k++) {
			free(d->triggers[k].phrase);
			free(d->triggers[k].field);
		}
		for (size_t k = 0; k < d->nrequired; k++)
			free(d->required[k]);
		free(d->triggers);
		free(d->required);
		free(d->id);
		free(d->name);
		free(d->intent);
		free(d->subject);
		free(d->body);
	}
	free(p->t);
	free(p->product_field);
	free(p->version);
	free(p);
}

/* ---- suggestion (pure) ------------------------------------------------------------ */

/* Where triggers look: free text by default; the picklists (Industry,
 * LeadSource) only for triggers that name them, so a source called "Partner
 * Referral" is not read as a partnership request. */
static const char *const text_fields[] = {"Description", "product_interest", "Industry",
                                          "LeadSource", NULL};
#define TPL_FREE_TEXT_FIELDS 2 /* the first entries of text_fields */

json_t *tpl_lead_facts(const struct tpl_policy *p, json_t *fields)
{
	json_t *f = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(fields, k, v)
	{
		if (json_is_string(v) || json_is_number(v) || json_is_boolean(v))
			json_object_set(f, k, v);
	}
	/* CDC sends Name as a compound {Salutation, FirstName, LastName}. */
	json_t *name = json_object_get(fields, "Name");
	if (json_is_object(name))
		json_object_foreach(name, k, v) if (json_is_string(v) && !json_object_get(f, k))
		        json_object_set(f, k, v);
	if (p && p->product_field && json_is_string(json_object_get(fields, p->product_field)))
		json_object_set(f, "product_interest", json_object_get(fields, p->product_field));
	return f;
}

/* Whole-word (or prefix) case-insensitive match of phrase (lower-case) in s. */
static int matches(const char *s, const struct tpl_trigger *g)
{
	size_t n = strlen(g->phrase);
	if (!s || n == 0)
		return 0;
	for (const char *p = s; (p = strcasestr(p, g->phrase)) != NULL; p++) {
		int before = p == s || !isalnum((unsigned char)p[-1]);
		int after = g->prefix || !isalnum((unsigned char)p[n]);
		if (before && after)
			return 1;
	}
	return 0;
}

double tpl_score(const struct tpl_template *t, json_t *facts)
{
	double score = 0;
	for (size_t k = 0; k < t->ntriggers; k++) {
		const struct tpl_trigger *g = &t->triggers[k];
		for (size_t f = 0; text_fields[f]; f++) {
			if (g->field ? strcmp(g->field, text_fields[f]) != 0
			             : f >= TPL_FREE_TEXT_FIELDS)
				continue;
			if (matches(json_string_value(json_object_get(facts, text_fields[f])), g)) {
				score += g->weight;
				break; /* one match per trigger */
			}
		}
	}
	return score;
}

/* Value of a variable as text into buf; 0 if absent/empty. */
static int var_text(json_t *vars, const char *name, char *buf, size_t len)
{
	json_t *v = json_object_get(vars, name);
	int n = -1;
	if (json_is_string(v) && json_string_length(v) > 0)
		n = snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_integer(v))
		n = snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v)) {
		double d = json_real_value(v);
		n = d == floor(d) && fabs(d) < 1e15 ? snprintf(buf, len, "%.0f", d)
		                                    : snprintf(buf, len, "%g", d);
	}
	return n > 0 && (size_t)n < len;
}

static void add_missing(json_t *missing, const char *name)
{
	size_t i;
	json_t *v;
	if (!missing)
		return;
	json_array_foreach(missing, i, v) if (strcmp(json_string_value(v), name) == 0) return;
	json_array_append_new(missing, json_string(name));
}

char *tpl_render(const char *text, json_t *vars, json_t *missing)
{
	size_t cap = strlen(text) + 256, len = 0;
	char *out = xmalloc(cap);
	const char *p = text;
	while (*p) {
		const char *open = strstr(p, "{{");
		const char *close = open ? strstr(open + 2, "}}") : NULL;
		size_t lit = open && close ? (size_t)(open - p) : strlen(p);
		char val[4096] = "";
		size_t vlen = 0;
		if (open && close) {
			char name[TPL_VAR_MAX];
			size_t n = (size_t)(close - open - 2);
			if (n < sizeof(name)) {
				memcpy(name, open + 2, n);
				name[n] = '\0';
				if (!var_text(vars, name, val, sizeof(val))) {
					val[0] = '\0';
					add_missing(missing, name);
				}
				vlen = strlen(val);
			}
		}
		if (len + lit + vlen + 1 > TPL_RENDER_MAX) {
			free(out);
			return NULL;
		}
		if (len + lit + vlen + 1 > cap) {
			cap = (len + lit + vlen + 1) * 2;
			out = xrealloc(out, cap);
		}
		memcpy(out + len, p, lit);
		len += lit;
		memcpy(out + len, val, vlen);
		len += vlen;
		p = open && close ? close + 2 : p + lit;
	}
	out[len] = '\0';
	return out;
}

/* Fill r for template t with the evidence-based confidence conf (before the
 * missing-variable penalty). */
static void fill_result(const struct tpl_policy *p, const struct tpl_template *t, double score,
                        double conf, json_t *facts, struct tpl_result *r)
{
	memset(r, 0, sizeof(*r));
	r->t = t;
	r->score = score;
	r->variables = json_object();
	r->missing = json_array();
	for (size_t k = 0; k < t->nrequired; k++) {
		char buf[4096];
		if (!var_text(facts, t->required[k], buf, sizeof(buf))) {
			add_missing(r->missing, t->required[k]);
			conf *= 1 - p->penalty;
		}
	}
	r->subject = tpl_render(t->subject, facts, r->missing);
	r->body = tpl_render(t->body, facts, r->missing);
	/* every variable the template used, with its value */
	const char *texts[2] = {t->subject, t->body};
	for (int i = 0; i < 2; i++)
		for (const char *q = texts[i]; (q = strstr(q, "{{")) != NULL;) {
			const char *e = strstr(q + 2, "}}");
			char name[TPL_VAR_MAX], buf[4096];
			if (!e)
				break;
			size_t n = (size_t)(e - q - 2);
			if (n < sizeof(name)) {
				memcpy(name, q + 2, n);
				name[n] = '\0';
				if (var_text(facts, name, buf, sizeof(buf)))
					json_object_set_new(r->variables, name, json_string(buf));
			}
			q = e + 2;
		}
	r->confidence = round(conf * 10000.0) / 10000.0;
}

void tpl_suggest(const struct tpl_policy *p, json_t *facts, struct tpl_result *r)
{
	double best = 0, second = 0;
	const struct tpl_template *bt = NULL;
	for (size_t i = 0; i < p->n; i++) {
		double s = tpl_score(&p->t[i], facts);
		if (s > best) {
			second = best;
			best = s;
			bt = &p->t[i];
		} else if (s > second) {
			second = s;
		}
	}
	double conf = 0;
	if (!bt || best < p->min_score) {
		bt = p->fallback;
		best = 0;
	} else {
		double evidence = best / p->saturation;
		conf = (best / (best + second)) * (evidence < 1 ? evidence : 1);
	}
	fill_result(p, bt, best, conf, facts, r);
}

int tpl_choose(const struct tpl_policy *p, struct llm *l, const char *system, json_t *facts,
               struct tpl_result *r, char *model_out, size_t model_len, char *errstr, size_t errlen)
{
	json_t *cand = json_array(), *user = NULL, *ans = NULL;
	char *utext = NULL, *content = NULL;
	const struct tpl_template *pick = NULL;
	int decided = 0;

	tpl_suggest(p, facts, r);
	errstr[0] = '\0';
	if (!l)
		goto out;
	for (size_t i = 0; i < p->n; i++)
		json_array_append_new(cand,
		                      json_pack("{s:s,s:s,s:s}", "template_id", p->t[i].id,
		                                "intent", p->t[i].intent, "name", p->t[i].name));
	user = json_pack("{s:O,s:{s:s,s:s,s:f},s:O}", "lead", facts, "rule_decision", "template_id",
	                 r->t->id, "intent", r->t->intent, "confidence", r->confidence,
	                 "candidates", cand);
	utext = user ? json_dumps(user, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(10))
	             : NULL;
	if (!utext) {
		snprintf(errstr, errlen, "cannot encode the prompt");
		goto out;
	}
	if (llm_chat(l, system, utext, &content, model_out, model_len, errstr, errlen) != SFK_OK)
		goto out;
	ans = json_loads(content, 0, NULL);
	const char *tid = json_string_value(json_object_get(ans, "template_id"));
	for (size_t i = 0; tid && i < p->n; i++)
		if (strcmp(p->t[i].id, tid) == 0)
			pick = &p->t[i];
	if (!pick) {
		snprintf(errstr, errlen, "llm: template_id %s",
		         tid ? "is not a policy template" : "missing");
		goto out;
	}
	json_t *c = json_object_get(ans, "confidence");
	double conf = json_is_number(c) ? json_number_value(c) : -1;
	if (conf < 0 || conf > 1) /* none given: the rules' own measure */
		conf = pick == r->t ? -1 : 0;
	double score = tpl_score(pick, facts);
	if (conf < 0) {
		decided = 1; /* the LLM confirmed the rule suggestion */
		goto out;
	}
	tpl_result_clear(r);
	fill_result(p, pick, score, conf, facts, r);
	decided = 1;
out:
	json_decref(ans);
	json_decref(user);
	json_decref(cand);
	free(utext);
	free(content);
	return decided;
}

void tpl_result_clear(struct tpl_result *r)
{
	json_decref(r->variables);
	json_decref(r->missing);
	free(r->subject);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* ---- I/O ------------------------------------------------------------------------- */

static void clear_sends(struct tpl_state *st)
{
	for (size_t i = 0; i < st->nsends; i++) {
		free(st->sends[i].email);
		free(st->sends[i].subject);
		free(st->sends[i].body);
	}
	free(st->sends);
	st->sends = NULL;
	st->nsends = 0;
}

static void set_dlq(struct wl_decision *d, enum sfk_err e, const char *code, const char *msg)
{
	d->action = WL_DLQ;
	d->err = e;
	snprintf(d->errcode, sizeof(d->errcode), "%s", code);
	snprintf(d->errmsg, sizeof(d->errmsg), "%s", msg);
}

/* The Lead of an inbound email: any relation to a Lead (the sender is
 * FromAddress), else its Task's WhoId. 1 with lead filled, else 0. */
static int reply_lead(const char *eid, json_t *email, json_t *relations, json_t *tasks,
                      char lead[19])
{
	size_t i;
	json_t *rel;
	char best[19] = "", rid[19], other[19], tid[19];
	json_array_foreach(relations, i, rel)
	{
		if (!wl_id_of(wl_str(rel, "EmailMessageId"), NULL, other) ||
		    strcmp(other, eid) != 0 || !wl_id_of(wl_str(rel, "RelationId"), "Lead", rid))
			continue;
		if (!best[0] || strcmp(rid, best) < 0)
			memcpy(best, rid, sizeof(best));
	}
	if (best[0]) {
		memcpy(lead, best, 19);
		return 1;
	}
	if (wl_id_of(wl_str(email, "ActivityId"), "Task", tid) &&
	    wl_id_of(wl_str(json_object_get(tasks, tid), "WhoId"), "Lead", lead))
		return 1;
	lead[0] = '\0';
	return 0;
}

static json_t *facts_for_flywheel(json_t *facts)
{
	static const char *const keep[] = {"Description",       "product_interest",
	                                   "Industry",          "LeadSource",
	                                   "Company",           "Title",
	                                   "Country",           "City",
	                                   "NumberOfEmployees", "FirstName",
	                                   "LastName",          NULL};
	json_t *o = json_object();
	for (size_t i = 0; keep[i]; i++)
		if (json_object_get(facts, keep[i]))
			json_object_set(o, keep[i], json_object_get(facts, keep[i]));
	return o;
}

static enum sfk_err tpl_decide(struct wl_ctx *ctx, const struct wl_event *ev, size_t n,
                               struct wl_decision *out)
{
	struct tpl_state *st = ctx->state;
	struct sf_error err = {0};
	enum sfk_err rc = SFK_OK;
	json_t *applied_q = json_object(), *applied = json_object();
	json_t *inbound = json_object(), *rel_q = json_object(), *relations = json_array();
	json_t *email_rows = json_object(), *task_q = json_object(), *tasks = json_object();
	json_t *lead_q = json_object(), *leads = json_object();
	json_t *snap_now = json_object();    /* SNAPSHOT Lead -> its current row */
	json_t *batch_leads = json_object(); /* Leads suggested for in this batch */
	char(*reply_to)[19] = xcalloc(n ? n : 1, sizeof(*reply_to));

	int64_t llm_deadline = ctx->now_ms ? ctx->now_ms() + TPL_LLM_BATCH_BUDGET_MS : 0;
	clear_sends(st);
	st->sends = xcalloc(n ? n : 1, sizeof(*st->sends));
	st->nsends = n;

	/* SNAPSHOT Leads (resyncs): what Salesforce holds now decides whether
	 * they still need a suggestion (the snapshot may predate it). */
	json_t *snap_q = json_object();
	for (size_t i = 0; i < n; i++) {
		char id[19];
		if (ev[i].change_type && strcmp(ev[i].change_type, "SNAPSHOT") == 0 &&
		    ev[i].entity && strcmp(ev[i].entity, "Lead") == 0 &&
		    wl_id_of(ev[i].record_id, "Lead", id))
			json_object_set_new(snap_q, id, json_true());
	}
	rc = wl_query_set(ctx, "SELECT Id, Template_Recommended__c FROM Lead WHERE Id IN ", snap_q,
	                  snap_now, NULL, &err);
	json_decref(snap_q);
	if (rc != SFK_OK)
		goto out;

	for (size_t i = 0; i < n; i++) {
		const char *ent = ev[i].entity ? ev[i].entity : "";
		char id[19];
		if (strcmp(ent, "EmailMessage") == 0) {
			if (!wl_id_of(ev[i].record_id, "EmailMessage", id)) {
				set_dlq(&out[i], SFK_ERR_INVALID, "bad_record_id",
				        "record_id is not an EmailMessage id");
				continue;
			}
			if (!json_is_true(json_object_get(ev[i].fields, "Incoming"))) {
				out[i].action = WL_SKIP;
				snprintf(out[i].outcome, sizeof(out[i].outcome), "not_inbound");
				continue;
			}
			json_object_set_new(inbound, id, json_true());
			json_object_set_new(rel_q, id, json_true());
			continue;
		}
		if (strcmp(ent, "Lead") != 0) {
			set_dlq(&out[i], SFK_ERR_INVALID, "unexpected_entity",
			        "outreach.template_suggest handles Lead and EmailMessage events");
			continue;
		}
		if (!wl_id_of(ev[i].record_id, "Lead", id)) {
			set_dlq(&out[i], SFK_ERR_INVALID, "bad_record_id",
			        "record_id is not a Lead id");
			continue;
		}
		/* A resync SNAPSHOT stands for a lost creation only when the Lead
		 * never got a suggestion: not in the snapshot, not in Salesforce
		 * now, not from an earlier event of this batch. */
		if (ev[i].change_type && strcmp(ev[i].change_type, "SNAPSHOT") == 0) {
			json_t *had = json_object_get(ev[i].fields, "Template_Recommended__c");
			json_t *has = json_object_get(json_object_get(snap_now, id),
			                              "Template_Recommended__c");
			if ((had && !json_is_null(had)) || (has && !json_is_null(has))) {
				out[i].action = WL_SKIP;
				snprintf(out[i].outcome, sizeof(out[i].outcome),
				         "already_suggested");
				continue;
			}
		}
		/* One suggestion per Lead per batch: a resync SNAPSHOT and the
		 * Lead's CREATE (in either order) would both see none stored. */
		if (json_object_get(batch_leads, id)) {
			out[i].action = WL_SKIP;
			snprintf(out[i].outcome, sizeof(out[i].outcome), "already_suggested");
			continue;
		}
		json_object_set_new(batch_leads, id, json_true());
		json_t *facts = tpl_lead_facts(st->policy, ev[i].fields);
		struct tpl_result r;
		char llm_model_name[WL_MODEL_MAX] = "", llm_err[TPL_ERR_MAX] = "";
		struct llm *l =
		        st->llm && ctx->now_ms && ctx->now_ms() < llm_deadline ? st->llm : NULL;
		int by_llm = tpl_choose(st->policy, l, template_ops.system_prompt, facts, &r,
		                        llm_model_name, sizeof(llm_model_name), llm_err,
		                        sizeof(llm_err));
		if (l && !by_llm)
			log_warn("template: the rules decide lead=%s reason=%s", id, llm_err);
		json_t *w =
		        json_pack("{s:{s:s},s:s,s:s,s:s,s:f}", "attributes", "type", "Lead", "id",
		                  id, "Template_Recommended__c", r.t->id, "Template_Intent__c",
		                  r.t->intent, "Template_Confidence__c", r.confidence);
		int send = r.t->auto_send && r.confidence >= st->policy->bar &&
		           json_array_size(r.missing) == 0 && wl_str(facts, "Email") && r.subject &&
		           r.body;
		if (send) {
			struct send *s = &st->sends[i];
			s->planned = 1;
			memcpy(s->lead, id, sizeof(s->lead));
			s->email = xstrdup(wl_str(facts, "Email"));
			s->subject = xstrdup(r.subject);
			s->body = xstrdup(r.body);
		}
		json_object_set_new(applied_q, id, json_true());
		out[i].action = WL_WRITE;
		out[i].write = w;
		out[i].facts = facts_for_flywheel(facts);
		out[i].decision = json_pack("{s:s,s:s,s:s,s:f,s:f,s:O,s:O,s:b,s:b}", "lead_id", id,
		                            "template_id", r.t->id, "intent", r.t->intent,
		                            "confidence", r.confidence, "score", r.score,
		                            "variables", r.variables, "missing_variables",
		                            r.missing, "auto_send", r.t->auto_send, "send", send);
		snprintf(out[i].outcome, sizeof(out[i].outcome), "%s",
		         r.t == st->policy->fallback ? "fallback" : "suggested");
		json_object_set_new(out[i].decision, "decided_by",
		                    json_string(by_llm ? "llm" : "rules"));
		if (l && !by_llm)
			json_object_set_new(out[i].decision, "llm_error", json_string(llm_err));
		snprintf(out[i].model, sizeof(out[i].model), "%s",
		         by_llm && llm_model_name[0] ? llm_model_name : st->model);
		snprintf(out[i].policy_version, sizeof(out[i].policy_version), "%s",
		         st->policy->version);
		snprintf(out[i].lead_id, sizeof(out[i].lead_id), "%s", id);
		/* The Lead's suggestion under this template policy, whichever event
		 * asked: one decision id, so the flywheel keeps one record. */
		{
			char dkey[WL_VERSION_MAX + 48];
			snprintf(dkey, sizeof dkey, "Lead:%s:templates:%s", id,
			         st->policy->version);
			if (flywheel_decision_id(ctx->workload_id, dkey, out[i].decision_id,
			                         sizeof(out[i].decision_id)) != 0)
				out[i].decision_id[0] = '\0';
		}
		metric_add(st->suggested, 1, r.t->id, out[i].outcome);
		tpl_result_clear(&r);
		json_decref(facts);
	}

	/* Never twice: a Lead already marked Template_Applied__c is not sent to,
	 * and a Lead whose suggestion is stored already (a redelivery after a
	 * crash or a failed flywheel flush between the write and "done") is not
	 * written again; its decision still goes to the flywheel. */
	rc = wl_query_set(ctx,
	                  "SELECT Id, Template_Applied__c, Template_Recommended__c FROM Lead "
	                  "WHERE Id IN ",
	                  applied_q, applied, NULL, &err);
	if (rc != SFK_OK)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (st->sends[i].planned &&
		    json_is_true(json_object_get(json_object_get(applied, st->sends[i].lead),
		                                 "Template_Applied__c"))) {
			st->sends[i].planned = 0;
			json_object_set_new(out[i].decision, "send", json_false());
			json_object_set_new(out[i].decision, "already_applied", json_true());
		}
	for (size_t i = 0; i < n; i++) {
		json_t *row = out[i].action == WL_WRITE && out[i].lead_id[0]
		                      ? json_object_get(applied, out[i].lead_id)
		                      : NULL;
		if (row && wl_str(row, "Template_Recommended__c")) {
			st->sends[i].stored = 1;
			out[i].action = WL_SKIP;
			json_decref(out[i].write);
			out[i].write = NULL;
			snprintf(out[i].outcome, sizeof(out[i].outcome), "already_suggested");
			json_object_set_new(out[i].decision, "already_suggested", json_true());
		}
	}

	/* Inbound replies: email rows, relations, tasks, then the Leads' suggestion. */
	rc = wl_query_set(ctx,
	                  "SELECT Id, ActivityId, MessageDate, CreatedDate FROM EmailMessage "
	                  "WHERE Id IN ",
	                  inbound, email_rows, NULL, &err);
	if (rc == SFK_OK)
		rc = wl_query_set(ctx,
		                  "SELECT Id, EmailMessageId, RelationId, RelationType FROM "
		                  "EmailMessageRelation WHERE EmailMessageId IN ",
		                  rel_q, NULL, relations, &err);
	if (rc != SFK_OK)
		goto out;
	const char *k;
	json_t *v;
	json_object_foreach(email_rows, k, v)
	{
		char tid[19], lead[19];
		if (!reply_lead(k, v, relations, NULL, lead) &&
		    wl_id_of(wl_str(v, "ActivityId"), "Task", tid))
			json_object_set_new(task_q, tid, json_true());
	}
	rc = wl_query_set(ctx, "SELECT Id, WhoId FROM Task WHERE Id IN ", task_q, tasks, NULL,
	                  &err);
	if (rc != SFK_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		char id[19];
		if (out[i].action != WL_SKIP || !wl_id_of(ev[i].record_id, "EmailMessage", id) ||
		    !json_object_get(inbound, id))
			continue;
		json_t *row = json_object_get(email_rows, id);
		if (row && reply_lead(id, row, relations, tasks, reply_to[i]))
			json_object_set_new(lead_q, reply_to[i], json_true());
	}
	rc = wl_query_set(ctx,
	                  "SELECT Id, Template_Recommended__c, Template_Intent__c, "
	                  "Template_Confidence__c, Template_Applied__c FROM Lead WHERE Id IN ",
	                  lead_q, leads, NULL, &err);
	if (rc != SFK_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		char id[19];
		if (out[i].action != WL_SKIP || !wl_id_of(ev[i].record_id, "EmailMessage", id) ||
		    !json_object_get(inbound, id))
			continue;
		json_t *lead = json_object_get(leads, reply_to[i]);
		const char *tid = wl_str(lead, "Template_Recommended__c");
		if (!reply_to[i][0] || !tid) {
			snprintf(out[i].outcome, sizeof(out[i].outcome), "reply_no_suggestion");
			continue;
		}
		json_t *row = json_object_get(email_rows, id);
		json_t *at = json_object_get(row, "MessageDate");
		if (!json_is_string(at))
			at = json_object_get(row, "CreatedDate");
		snprintf(out[i].outcome, sizeof(out[i].outcome), "reply");
		out[i].facts =
		        json_pack("{s:s,s:s,s:O?}", "lead_id", reply_to[i], "email_message_id", id,
		                  "received_at", json_is_string(at) ? at : NULL);
		out[i].decision = json_pack(
		        "{s:s,s:s,s:s,s:s?,s:O?,s:b}", "outcome", "reply", "lead_id", reply_to[i],
		        "template_id", tid, "intent", wl_str(lead, "Template_Intent__c"),
		        "confidence", json_object_get(lead, "Template_Confidence__c"),
		        "template_applied",
		        json_is_true(json_object_get(lead, "Template_Applied__c")));
		snprintf(out[i].model, sizeof(out[i].model), "%s", st->model);
		snprintf(out[i].policy_version, sizeof(out[i].policy_version), "%s",
		         st->policy->version);
		snprintf(out[i].lead_id, sizeof(out[i].lead_id), "%s", reply_to[i]);
		metric_add(st->replies, 1, tid);
	}

out:
	if (rc != SFK_OK)
		log_warn("template: batch lookup failed err=%s code=%s msg=%s", sfk_err_str(rc),
		         err.code, err.message);
	if (rc != SFK_OK && sfk_err_class(rc) != SFK_CLASS_RETRIABLE) {
		for (size_t i = 0; i < n; i++) {
			json_decref(out[i].write);
			json_decref(out[i].facts);
			json_decref(out[i].decision);
			memset(&out[i], 0, sizeof(out[i]));
			set_dlq(&out[i], rc, err.code[0] ? err.code : "lookup_failed", err.message);
		}
		rc = SFK_OK;
	}
	if (rc != SFK_OK)
		clear_sends(st);
	free(reply_to);
	json_decref(batch_leads);
	json_decref(snap_now);
	json_decref(leads);
	json_decref(lead_q);
	json_decref(tasks);
	json_decref(task_q);
	json_decref(email_rows);
	json_decref(relations);
	json_decref(rel_q);
	json_decref(inbound);
	json_decref(applied);
	json_decref(applied_q);
	return rc;
}

/* Send what decide() planned, for records whose write succeeded (or whose
 * suggestion was stored by an earlier delivery of the same event). */
static void tpl_after_write(struct wl_ctx *ctx, const struct wl_event *ev, size_t n,
                            struct wl_decision *out, const struct wl_write_result *res)
{
	struct tpl_state *st = ctx->state;
	json_t *flags = json_array();
	char ttl[32];
	snprintf(ttl, sizeof(ttl), "%lld", g_sent_ttl_ms / 1000);
	for (size_t i = 0; i < n && i < st->nsends; i++) {
		struct send *s = &st->sends[i];
		struct sf_error err = {0};
		int wrote = out[i].action == WL_WRITE && res[i].attempted && res[i].success;
		if (!s->planned || !(wrote || (s->stored && out[i].action == WL_SKIP)))
			continue;
		char did[WL_DECISION_MAX];
		if (flywheel_decision_id(ctx->workload_id, ev[i].event_id, did, sizeof(did)) < 0)
			snprintf(did, sizeof(did), "%s", ev[i].event_id);
		char key[64];
		snprintf(key, sizeof(key), "%s%s", RKEY_TPL_SENT, s->lead);
		redisReply *r = redis_cmd_flags(ctx->redis, REDIS_NORETRY, "SET %s %s NX EX %s",
		                                key, did, ttl);
		int claimed = r && r->type == REDIS_REPLY_STATUS;
		if (r)
			freeReplyObject(r);
		if (!r) {
			/* Unknown whether the guard was set: try again later. */
			out[i].action = WL_RETRY;
			out[i].err = SFK_ERR_REDIS;
			snprintf(out[i].errcode, sizeof(out[i].errcode), "send_guard");
			snprintf(out[i].errmsg, sizeof(out[i].errmsg), "redis: %s",
			         redis_errstr(ctx->redis));
			continue;
		}
		if (!claimed) {
			log_info("template: not sending again lead=%s", s->lead);
			metric_add(
			        st->suggested, 1,
			        json_string_value(json_object_get(out[i].decision, "template_id")),
			        "already_sent");
			continue;
		}
		json_t *inputs =
		        json_pack("[{s:s,s:s,s:s,s:s}]", "emailAddresses", s->email, "emailSubject",
		                  s->subject, "emailBody", s->body, "recipientId", s->lead);
		enum sfk_err rc = sf_rest_email_simple(ctx->sf, inputs, NULL, &err);
		json_decref(inputs);
		const char *tid =
		        json_string_value(json_object_get(out[i].decision, "template_id"));
		if (rc == SFK_OK) {
			json_array_append_new(flags, json_pack("{s:{s:s},s:s,s:b}", "attributes",
			                                       "type", "Lead", "id", s->lead,
			                                       "Template_Applied__c", 1));
			metric_add(st->suggested, 1, tid, "sent");
			continue;
		}
		log_error("template: send failed lead=%s err=%s code=%s msg=%s", s->lead,
		          sfk_err_str(rc), err.code, err.message);
		metric_add(st->suggested, 1, tid, "send_failed");
		if (rc == SFK_ERR_SF_PERMANENT || rc == SFK_ERR_INVALID) {
			/* Refused, so certainly not sent: free the guard and dead-letter. */
			r = redis_cmd(ctx->redis, "DEL %s", key);
			if (r)
				freeReplyObject(r);
			out[i].action = WL_DLQ;
			out[i].err = rc;
			snprintf(out[i].errcode, sizeof(out[i].errcode), "%s",
			         err.code[0] ? err.code : "send_refused");
			snprintf(out[i].errmsg, sizeof(out[i].errmsg), "emailSimple: %.480s",
			         err.message);
		}
		/* Otherwise it may have been sent: the guard stays (at most once). */
	}
	if (json_array_size(flags) > 0) {
		struct sf_record_result *rr = xcalloc(json_array_size(flags), sizeof(*rr));
		struct sf_error err = {0};
		if (sf_rest_collection_update(ctx->sf, flags, 0, SF_REQ_ESSENTIAL, rr, &err) !=
		    SFK_OK)
			log_error("template: Template_Applied__c not written (the guard still "
			          "prevents a second send) code=%s msg=%s",
			          err.code, err.message);
		free(rr);
	}
	json_decref(flags);
	clear_sends(st);
}

static void tpl_fini(struct wl_ctx *ctx)
{
	struct tpl_state *st = ctx->state;
	if (!st)
		return;
	clear_sends(st);
	llm_free(&st->llm);
	tpl_policy_free(st->policy);
	free(st);
	ctx->state = NULL;
}

static int tpl_init(struct wl_ctx *ctx)
{
	json_t *problems = NULL;
	struct tpl_policy *p = tpl_policy_load(g_policy_path, g_schema_path, &problems);
	if (!p) {
		size_t i;
		json_t *v;
		fprintf(stderr, "%s: template policy refused (%zu problems):\n", g_policy_path,
		        json_array_size(problems));
		json_array_foreach(problems, i, v) fprintf(stderr, "  %s\n", json_string_value(v));
		log_error("template policy refused path=%s problems=%zu", g_policy_path,
		          json_array_size(problems));
		json_decref(problems);
		return CONFIG_EXIT_FAIL;
	}
	if (!p->fallback) {
		tpl_policy_free(p);
		return CONFIG_EXIT_FAIL;
	}
	struct tpl_state *st = xcalloc(1, sizeof(*st));
	st->policy = p;
	snprintf(st->model, sizeof(st->model), "rules:templates@%s", p->version);
	st->suggested = metrics_counter("sfk_template_suggestions_total",
	                                "Template suggestions and sends by template and outcome",
	                                "template,outcome");
	st->replies = metrics_counter("sfk_template_replies_total",
	                              "Inbound replies on Leads that got a suggestion", "template");
	st->llm = ctx->cfg ? llm_from_config(ctx->cfg) : NULL;
	ctx->state = st;
	log_info("template policy loaded version=%s templates=%zu bar=%.2f", p->version, p->n,
	         p->bar);
	return 0;
}

/* --check-config and start-up: every policy problem, with its JSON path. */
static void tpl_check_config(struct config *c)
{
	json_t *problems = NULL;
	struct tpl_policy *p = tpl_policy_load(g_policy_path, g_schema_path, &problems);
	size_t i;
	json_t *v;
	json_array_foreach(problems, i, v) config_problem(c, NULL, "template policy %s: %s",
	                                                  g_policy_path, json_string_value(v));
	json_decref(problems);
	tpl_policy_free(p);
}

const struct workload_ops template_ops = {
        .id = "outreach.template_suggest",
        .config = tpl_config,
        .nconfig = sizeof(tpl_config) / sizeof(tpl_config[0]),
        .init = tpl_init,
        .decide = tpl_decide,
        .after_write = tpl_after_write,
        .fini = tpl_fini,
        .check_config = tpl_check_config,
        .system_prompt = "You choose the outreach email template for a new sales Lead. The user "
                         "message holds the Lead's facts (description, product interest, "
                         "industry, source), the rule-based suggestion and the candidate "
                         "templates. Answer with JSON only: {\"template_id\": one of the "
                         "candidates, \"confidence\": a number from 0 to 1}.",
};
