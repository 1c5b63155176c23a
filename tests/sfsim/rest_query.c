/*
 * rest_query.c - GET /query?q= and /query/<locator>-<offset>: SOQL through
 * soql.h over the org's records, pages of Sforce-Query-Options batchSize
 * (200..2000, default 2000), query locators kept for a while like Salesforce's
 * server-side cursors.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "org.h"
#include "rest.h"
#include "sfid.h"
#include "soql.h"
#include "xmem.h"

#define QUERY_BATCH_DEFAULT 2000
#define QUERY_BATCH_MIN     200
#define QUERY_BATCH_MAX     2000
/* Open cursors kept; the oldest is dropped past this (Salesforce also caps them). */
#define QUERY_LOCATORS_MAX 256
/* A cursor lives this long after its last use (Salesforce: 15 minutes idle). */
#define QUERY_LOCATOR_TTL_MS (15 * 60 * 1000)

struct locator {
	char id[SIM_ID_BUF];
	json_t *rows; /* the whole result */
	size_t batch;
	int64_t used_ms;
};

static pthread_mutex_t loc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct locator locators[QUERY_LOCATORS_MAX];
static uint64_t loc_counter;

/* ---- schema for soql.h -------------------------------------------------------------- */

static int sch_object(void *ctx, const char *name, char *canon, size_t size)
{
	const struct sim_object *o = org_object(name);
	(void)ctx;
	if (!o)
		return -1;
	snprintf(canon, size, "%s", o->name);
	return 0;
}

static enum soql_type soql_type_of(enum sim_ftype t)
{
	switch (t) {
	case SIM_F_ID:
	case SIM_F_REFERENCE: return SOQL_T_ID;
	case SIM_F_BOOLEAN: return SOQL_T_BOOLEAN;
	case SIM_F_INT:
	case SIM_F_DOUBLE: return SOQL_T_NUMBER;
	case SIM_F_DATE: return SOQL_T_DATE;
	case SIM_F_DATETIME: return SOQL_T_DATETIME;
	default: return SOQL_T_STRING;
	}
}

static int sch_field(void *ctx, const char *object, const char *name, char *canon, size_t size,
                     enum soql_type *type)
{
	const struct sim_field *f = org_field(org_object(object), name);
	(void)ctx;
	if (!f)
		return -1;
	snprintf(canon, size, "%s", f->name);
	*type = soql_type_of(f->type);
	return 0;
}

static int sch_rel(void *ctx, const char *object, const char *rel, char *canon, size_t csize,
                   char *target, size_t tsize, char *idfield, size_t isize)
{
	const struct sim_object *o = org_object(object);
	(void)ctx;
	if (!o)
		return -1;
	for (size_t i = 0; i < o->nfields; i++) {
		const struct sim_field *f = &o->fields[i];
		if (f->relationship && strcasecmp(f->relationship, rel) == 0) {
			snprintf(canon, csize, "%s", f->relationship);
			/* Polymorphic (Owner: Group,User): Name resolves on either; name
			 * the User side, the lookup finds the record by id anyway. */
			const char *t = f->reference_to;
			if (strstr(t, "User"))
				t = "User";
			size_t n = strcspn(t, ",");
			snprintf(target, tsize, "%.*s", (int)n, t);
			snprintf(idfield, isize, "%s", f->name);
			return 0;
		}
	}
	return -1;
}

static const struct soql_schema schema = {sch_object, sch_field, sch_rel};

static json_t *lookup(void *ctx, const char *object, const char *id)
{
	struct sim *sim = ctx;
	json_t *r = org_lookup_locked(sim, id);
	(void)object;
	return r;
}

/* ---- locators ------------------------------------------------------------------------- */

static void locator_put(struct sim *sim, json_t *rows, size_t batch, char id_out[SIM_ID_BUF])
{
	int64_t now = sim_now_ms(sim);
	size_t slot = 0;
	pthread_mutex_lock(&loc_lock);
	for (size_t i = 0; i < QUERY_LOCATORS_MAX; i++) {
		if (!locators[i].rows || now - locators[i].used_ms > QUERY_LOCATOR_TTL_MS) {
			slot = i;
			break;
		}
		if (locators[i].used_ms < locators[slot].used_ms)
			slot = i;
	}
	struct locator *l = &locators[slot];
	json_decref(l->rows);
	sfid_make(l->id, "01g", (sim->cfg.seed % 1000) * 1000000000ull + ++loc_counter);
	l->rows = json_incref(rows);
	l->batch = batch;
	l->used_ms = now;
	snprintf(id_out, SIM_ID_BUF, "%s", l->id);
	pthread_mutex_unlock(&loc_lock);
}

/* New reference to the rows of locator id, or NULL. */
static json_t *locator_get(struct sim *sim, const char *id, size_t *batch)
{
	json_t *rows = NULL;
	int64_t now = sim_now_ms(sim);
	pthread_mutex_lock(&loc_lock);
	for (size_t i = 0; i < QUERY_LOCATORS_MAX; i++) {
		struct locator *l = &locators[i];
		if (l->rows && strncmp(l->id, id, 15) == 0 &&
		    now - l->used_ms <= QUERY_LOCATOR_TTL_MS) {
			l->used_ms = now;
			rows = json_incref(l->rows);
			*batch = l->batch;
			break;
		}
	}
	pthread_mutex_unlock(&loc_lock);
	return rows;
}

void rest_query_fini(struct sim *sim)
{
	(void)sim;
	pthread_mutex_lock(&loc_lock);
	for (size_t i = 0; i < QUERY_LOCATORS_MAX; i++) {
		json_decref(locators[i].rows);
		locators[i].rows = NULL;
	}
	pthread_mutex_unlock(&loc_lock);
}

/* ---- candidate narrowing ---------------------------------------------------------------
 *
 * soql_run scans every record of the object; with tens of thousands of
 * records a point query costs milliseconds under the org lock. When the WHERE
 * clause is a plain AND chain with a conjunct `Field = 'literal'` or
 * `Field IN ('a', ...)` on a text or id field, the matches are a subset of the
 * records whose field equals one of the literals (SOQL '=' on text is
 * case-insensitive; ids compare on their 15-char case-sensitive form), so
 * soql_run gets only those and still applies the whole query. Anything else
 * (OR, NOT, grouping parentheses, semi-joins, escapes) scans everything.
 */

#define NARROW_MAX_TOKENS  512
#define NARROW_MAX_VALUES  200
#define NARROW_MAX_LITERAL 256

struct tok {
	const char *p;
	size_t n;
	int str; /* quoted literal: p/n is the inside */
};

static int tokenize(const char *q, struct tok *t, size_t max, size_t *count)
{
	size_t k = 0;
	const char *p = q;
	while (*p) {
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
			p++;
			continue;
		}
		if (k >= max)
			return -1;
		if (*p == '\'') {
			const char *start = ++p;
			while (*p && *p != '\'') {
				if (*p == '\\')
					return -1; /* escapes: leave it to the full scan */
				p++;
			}
			if (!*p)
				return -1;
			t[k++] = (struct tok){start, (size_t)(p - start), 1};
			p++;
			continue;
		}
		const char *start = p;
		if (isalnum((unsigned char)*p) || *p == '_' || *p == '.') {
			while (isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == ':')
				p++;
		} else if ((*p == '!' || *p == '<' || *p == '>') && p[1] == '=') {
			p += 2;
		} else {
			p++;
		}
		t[k++] = (struct tok){start, (size_t)(p - start), 0};
	}
	*count = k;
	return 0;
}

static int is_word(const struct tok *t, const char *w)
{
	return !t->str && t->n == strlen(w) && strncasecmp(t->p, w, t->n) == 0;
}

/* Literal i as the stored form would read: ids in their canonical 18-char
 * form when valid (a 15-char or any-case 18-char literal names the same
 * record), text as written. */
static void literal(const struct sim_field *f, const struct tok *lit, char *out, size_t size)
{
	snprintf(out, size, "%.*s", (int)lit->n, lit->p);
	if (f->type == SIM_F_ID || f->type == SIM_F_REFERENCE) {
		char id18[SIM_ID_BUF];
		if (sfid_to18(out, id18) == 0)
			snprintf(out, size, "%s", id18);
	}
}

static int value_matches(const struct sim_field *f, json_t *v, const char *lit)
{
	const char *s = json_string_value(v);
	if (!s)
		return 0;
	if (f->type == SIM_F_ID || f->type == SIM_F_REFERENCE)
		return strncmp(s, lit, 15) == 0;
	return strcasecmp(s, lit) == 0;
}

/* 1 if every parenthesis in t[from..to) belongs to an `IN ('a', 'b')` list. */
static int only_in_lists(const struct tok *t, size_t from, size_t to)
{
	for (size_t k = from; k < to; k++) {
		if (t[k].str || (t[k].p[0] != '(' && t[k].p[0] != ')'))
			continue;
		if (t[k].p[0] == ')' || k == from || !is_word(&t[k - 1], "IN"))
			return 0;
		/* ( str [, str]* ) */
		size_t j = k + 1;
		for (;;) {
			if (j >= to || !t[j].str)
				return 0;
			j++;
			if (j < to && is_word(&t[j], ","))
				j++;
			else
				break;
		}
		if (j >= to || !is_word(&t[j], ")"))
			return 0;
		k = j;
	}
	return 1;
}

static json_t *narrow_candidates(struct sim *sim, const char *q, const struct sim_object *obj,
                                 json_t *records, int all)
{
	struct tok t[NARROW_MAX_TOKENS];
	size_t n, i, w, end;

	if (!obj || json_array_size(records) < 64 || tokenize(q, t, NARROW_MAX_TOKENS, &n) < 0)
		return NULL;
	/* SELECT <fields> FROM <obj> WHERE ...: no parentheses before WHERE
	 * (subqueries, aggregates). */
	for (i = 0; i < n && !is_word(&t[i], "WHERE"); i++)
		if (!t[i].str && t[i].p[0] == '(')
			return NULL;
	if (i == n)
		return NULL;
	w = i + 1;
	for (end = w; end < n; end++)
		if (is_word(&t[end], "ORDER") || is_word(&t[end], "LIMIT") ||
		    is_word(&t[end], "OFFSET") || is_word(&t[end], "GROUP") ||
		    is_word(&t[end], "FOR") || is_word(&t[end], "WITH") ||
		    is_word(&t[end], "HAVING"))
			break;
	for (i = w; i < end; i++)
		if (is_word(&t[i], "OR") || is_word(&t[i], "NOT") || is_word(&t[i], "SELECT"))
			return NULL;
	if (!only_in_lists(t, w, end))
		return NULL;

	/* Walk the AND chain; use the first conjunct that narrows. */
	const struct sim_field *best = NULL;
	const struct tok *vals[NARROW_MAX_VALUES];
	size_t nvals = 0;
	for (i = w; i < end && !best;) {
		size_t c = i;
		while (c < end && !is_word(&t[c], "AND"))
			c++;
		size_t len = c - i;
		if (len >= 3 && !t[i].str && !memchr(t[i].p, '.', t[i].n)) {
			char name[SOQL_MAX_NAME];
			snprintf(name, sizeof(name), "%.*s", (int)t[i].n, t[i].p);
			const struct sim_field *f = org_field(obj, name);
			int text = f && f->type != SIM_F_BOOLEAN && f->type != SIM_F_INT &&
			           f->type != SIM_F_DOUBLE && f->type != SIM_F_DATE &&
			           f->type != SIM_F_DATETIME;
			if (text && len == 3 && is_word(&t[i + 1], "=") && t[i + 2].str) {
				best = f;
				vals[nvals++] = &t[i + 2];
			} else if (text && is_word(&t[i + 1], "IN") && len >= 5 &&
			           (len - 3) % 2 == 0 && (len - 2) / 2 <= NARROW_MAX_VALUES) {
				/* only_in_lists checked the shape. */
				best = f;
				for (size_t k = i + 3; k < c; k += 2)
					vals[nvals++] = &t[k];
			}
		}
		i = c + 1;
	}
	if (!best)
		return NULL;

	char lits[NARROW_MAX_VALUES][NARROW_MAX_LITERAL];
	for (size_t k = 0; k < nvals; k++) {
		if (vals[k]->n >= NARROW_MAX_LITERAL)
			return NULL; /* would not compare exactly */
		literal(best, vals[k], lits[k], sizeof(lits[k]));
	}
	json_t *out = json_array();
	if (best->type == SIM_F_ID) {
		for (size_t k = 0; k < nvals; k++) {
			json_t *r = org_lookup_locked(sim, lits[k]);
			int dup = 0;
			for (size_t j = 0; j < json_array_size(out); j++)
				dup |= json_array_get(out, j) == r;
			if (r && !dup && (all || !json_is_true(json_object_get(r, "IsDeleted"))) &&
			    org_object_by_prefix(json_string_value(json_object_get(r, "Id"))) ==
			            obj)
				json_array_append(out, r);
		}
		return out;
	}
	size_t k;
	json_t *r;
	json_array_foreach(records, k, r)
	{
		json_t *v = json_object_get(r, best->name);
		for (size_t j = 0; j < nvals; j++)
			if (value_matches(best, v, lits[j])) {
				json_array_append(out, r);
				break;
			}
	}
	return out;
}

/* ---- responses --------------------------------------------------------------------------- */

static size_t batch_size(const struct sim_req *req)
{
	const char *h = sim_req_header(req, "Sforce-Query-Options");
	const char *p = h ? strcasestr(h, "batchSize=") : NULL;
	if (!p)
		return QUERY_BATCH_DEFAULT;
	char *end;
	errno = 0;
	long n = strtol(p + 10, &end, 10);
	if (errno || end == p + 10)
		return QUERY_BATCH_DEFAULT;
	if (n < QUERY_BATCH_MIN)
		n = QUERY_BATCH_MIN;
	if (n > QUERY_BATCH_MAX)
		n = QUERY_BATCH_MAX;
	return (size_t)n;
}

static void page(struct sim_resp *resp, const struct sim_req *req, json_t *rows, size_t total,
                 size_t offset, size_t batch, const char *locator)
{
	size_t n = json_array_size(rows);
	size_t end = offset + batch < n ? offset + batch : n;
	json_t *recs = json_array();
	for (size_t i = offset; i < end; i++)
		json_array_append(recs, json_array_get(rows, i));
	json_t *out = json_object();
	json_object_set_new(out, "totalSize", json_integer((json_int_t)total));
	json_object_set_new(out, "done", json_boolean(end >= n));
	if (end < n) {
		char url[128];
		snprintf(url, sizeof(url), "/services/data/v%s/query/%s-%zu", req->api_version,
		         locator, end);
		json_object_set_new(out, "nextRecordsUrl", json_string(url));
	}
	json_object_set_new(out, "records", recs);
	sim_resp_json(resp, 200, out);
}

static void soql_fail(struct sim_resp *resp, const struct soql_error *e)
{
	sim_resp_error(resp, 400, e->code[0] ? e->code : "MALFORMED_QUERY", e->message, NULL);
}

void rest_query(struct sim *sim, const struct sim_req *req, struct sim_resp *resp,
                const char *rest_path)
{
	if (strcmp(req->method, "GET") != 0) {
		sim_resp_error(resp, 405, "METHOD_NOT_ALLOWED",
		               "HTTP Method not allowed. Allowed are GET", NULL);
		return;
	}
	if (rest_path[0] == '/' && rest_path[1]) {
		/* Next page: <locator>-<offset> */
		const char *loc = rest_path + 1;
		const char *dash = strchr(loc, '-');
		size_t batch = QUERY_BATCH_DEFAULT;
		char *end;
		char id[SIM_ID_BUF];
		errno = 0;
		end = NULL;
		long off = dash ? strtol(dash + 1, &end, 10) : -1;
		if (!end)
			end = (char *)"x";
		json_t *rows = NULL;
		int ok = dash && !errno && *end == '\0' && off >= 0 &&
		         (size_t)(dash - loc) < sizeof(id);
		if (ok) {
			snprintf(id, sizeof(id), "%.*s", (int)(dash - loc), loc);
			rows = locator_get(sim, id, &batch);
		}
		if (!rows || (size_t)off > json_array_size(rows)) {
			json_decref(rows);
			sim_resp_error(resp, 400, "INVALID_QUERY_LOCATOR", "invalid query locator",
			               NULL);
			return;
		}
		page(resp, req, rows, json_array_size(rows), (size_t)off, batch, id);
		json_decref(rows);
		return;
	}
	const char *q = sim_req_query(req, "q");
	if (!q || !q[0]) {
		sim_resp_error(resp, 400, "MALFORMED_QUERY", "A query string has to be specified",
		               NULL);
		return;
	}
	struct soql_error err;
	memset(&err, 0, sizeof(err));
	struct soql_query *sq = soql_parse(q, &err);
	if (!sq || soql_bind(sq, &schema, sim, &err) < 0) {
		soql_fail(resp, &err);
		soql_free(sq);
		return;
	}
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "/services/data/v%s", req->api_version);
	struct soql_env env = {
	        .now = (time_t)(sim_now_ms(sim) / 1000),
	        .lookup = lookup,
	        .lookup_ctx = sim,
	        .url_prefix = prefix,
	};
	size_t total = 0;
	org_lock(sim);
	int all = strstr(req->path, "/queryAll") != NULL;
	json_t *records = all ? org_all_records_locked(sim, soql_object(sq))
	                      : org_records_locked(sim, soql_object(sq));
	json_t *narrow =
	        records ? narrow_candidates(sim, q, org_object(soql_object(sq)), records, all)
	                : NULL;
	json_t *rows = soql_run(sq, narrow ? narrow : records, &env, &total);
	pthread_mutex_unlock(&sim->lock);
	json_decref(narrow);
	soql_free(sq);

	size_t batch = batch_size(req);
	char loc[SIM_ID_BUF] = "";
	if (json_array_size(rows) > batch)
		locator_put(sim, rows, batch, loc);
	page(resp, req, rows, total, 0, batch, loc);
	json_decref(rows);
}
