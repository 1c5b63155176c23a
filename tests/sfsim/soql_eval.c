/*
 * soql_eval.c - bind a parsed SOQL query to the org's schema, evaluate WHERE
 * on jansson records, and run SELECT (filter, ORDER BY, OFFSET, LIMIT,
 * projection). Semantics follow Salesforce rather than SQL:
 *   - two-valued logic: "X != 'a'" and "X NOT IN (...)" include records
 *     where X is null; "X = null" / "X != null" test for null; <, <=, >, >=
 *     and LIKE are false on null.
 *   - text compares case-insensitively (=, <, LIKE, ORDER BY); ids compare
 *     their first 15 characters case-sensitively (15 vs 18-char ids).
 *   - date fields take date literals, datetime fields datetime literals,
 *     both take relative literals (TODAY, LAST_N_DAYS:n) evaluated in UTC
 *     days at env->now; a datetime compares as an instant.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soql_int.h"
#include "xmem.h"

/* ---- bind ------------------------------------------------------------ */

struct binder {
	struct soql_query *q;
	const struct soql_schema *schema;
	void *ctx;
	struct soql_error *err;
};

static int no_such_column(struct binder *b, const struct fref *f, const char *name,
                          const char *object)
{
	soql_err_at(b->err, "INVALID_FIELD", b->q->text, b->q->len, f->pos,
	            "No such column '%s' on entity '%s'. If you are attempting to use a custom "
	            "field, be sure to append the '__c' after the custom field name. Please "
	            "reference your WSDL or the describe call for the appropriate names.",
	            name, object);
	return -1;
}

static int bad_relationship(struct binder *b, const struct fref *f, const char *rel)
{
	soql_err_at(b->err, "INVALID_FIELD", b->q->text, b->q->len, f->pos,
	            "Didn't understand relationship '%s' in field path. If you are attempting to "
	            "use a custom relationship, be sure to append the '__r' after the custom "
	            "relationship name. Please reference your WSDL or the describe call for the "
	            "appropriate names.",
	            rel);
	return -1;
}

static int bind_fref(struct binder *b, struct fref *f)
{
	char canon[SOQL_MAX_NAME + 1], target[SOQL_MAX_NAME + 1], idfield[SOQL_MAX_NAME + 1];
	char relname[SOQL_MAX_NAME + 1], relcanon[SOQL_MAX_NAME + 1];
	const char *path = f->path, *dot;
	size_t n;

	if (f->name != NULL)
		return 0;
	/* "l.Name" with "FROM Lead l": the alias prefix means the object itself. */
	dot = strchr(path, '.');
	if (dot != NULL && b->q->alias != NULL && (size_t)(dot - path) == strlen(b->q->alias) &&
	    strncasecmp(path, b->q->alias, (size_t)(dot - path)) == 0) {
		path = dot + 1;
		dot = strchr(path, '.');
	}
	if (dot == NULL) {
		if (strlen(path) > SOQL_MAX_NAME ||
		    b->schema->field(b->ctx, b->q->object, path, canon, sizeof(canon), &f->type))
			return no_such_column(b, f, path, b->q->object);
		f->name = xstrdup(canon);
		f->display = xstrdup(canon);
		return 0;
	}
	n = (size_t)(dot - path);
	if (n > SOQL_MAX_NAME)
		n = SOQL_MAX_NAME;
	memcpy(relname, path, n);
	relname[n] = '\0';
	/* One level of relationship only ("Owner.Name", not "Owner.Manager.Name"). */
	if (b->schema->relationship == NULL || strchr(dot + 1, '.') != NULL ||
	    b->schema->relationship(b->ctx, b->q->object, relname, relcanon, sizeof(relcanon),
	                            target, sizeof(target), idfield, sizeof(idfield)))
		return bad_relationship(b, f, relname);
	if (strlen(dot + 1) > SOQL_MAX_NAME ||
	    b->schema->field(b->ctx, target, dot + 1, canon, sizeof(canon), &f->type))
		return no_such_column(b, f, dot + 1, target);
	f->name = xstrdup(canon);
	f->rel = xstrdup(relcanon);
	f->rel_object = xstrdup(target);
	f->rel_idfield = xstrdup(idfield);
	f->display = xasprintf("%s.%s", relcanon, canon);
	return 0;
}

static const char *type_word(enum soql_type t)
{
	switch (t) {
	case SOQL_T_BOOLEAN: return "boolean";
	case SOQL_T_NUMBER: return "double";
	case SOQL_T_DATE: return "date";
	case SOQL_T_DATETIME: return "dateTime";
	case SOQL_T_ID: return "id";
	case SOQL_T_STRING: break;
	}
	return "string";
}

static int is_id_text(const char *s)
{
	size_t n = strlen(s), i;

	if (n != 15 && n != 18)
		return 0;
	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

/* Is literal v acceptable for field f? Salesforce's wording on mismatch. */
static int check_literal(struct binder *b, const struct fref *f, const struct value *v, enum op op)
{
	int ok;

	if (v->kind == V_NULL)
		return 0;
	switch (f->type) {
	case SOQL_T_STRING: ok = v->kind == V_STR; break;
	case SOQL_T_ID:
		ok = v->kind == V_STR;
		if (ok && op != OP_LIKE && v->str[0] != '\0' && !is_id_text(v->str)) {
			soql_err_at(b->err, "MALFORMED_QUERY", b->q->text, b->q->len, v->pos,
			            "invalid ID field: %.100s", v->str);
			return -1;
		}
		break;
	case SOQL_T_BOOLEAN: ok = v->kind == V_BOOL; break;
	case SOQL_T_NUMBER: ok = v->kind == V_NUM; break;
	case SOQL_T_DATE: ok = v->kind == V_DATE || v->kind == V_DATEFN; break;
	case SOQL_T_DATETIME: ok = v->kind == V_DATETIME || v->kind == V_DATEFN; break;
	default: ok = 0; break;
	}
	if (ok)
		return 0;
	if (f->type == SOQL_T_STRING || f->type == SOQL_T_ID)
		soql_err_at(b->err, "INVALID_FIELD", b->q->text, b->q->len, v->pos,
		            "value of filter criterion for field '%s' must be of type %s and "
		            "should be enclosed in quotes",
		            f->display, type_word(f->type));
	else
		soql_err_at(b->err, "INVALID_FIELD", b->q->text, b->q->len, v->pos,
		            "value of filter criterion for field '%s' must be of type %s and "
		            "should not be enclosed in quotes",
		            f->display, type_word(f->type));
	return -1;
}

static int bind_node(struct binder *b, struct node *n)
{
	size_t i;

	if (n->kind != N_CMP) {
		for (i = 0; i < n->nkids; i++) {
			if (bind_node(b, n->kids[i]))
				return -1;
		}
		return 0;
	}
	if (bind_fref(b, &n->f))
		return -1;
	for (i = 0; i < n->nvals; i++) {
		if (check_literal(b, &n->f, &n->vals[i], n->op))
			return -1;
	}
	return 0;
}

int soql_bind(struct soql_query *q, const struct soql_schema *schema, void *ctx,
              struct soql_error *err)
{
	struct binder b = {q, schema, ctx, err};
	char canon[SOQL_MAX_NAME + 1];
	size_t i, j;

	if (err != NULL)
		memset(err, 0, sizeof(*err));
	if (q->bound)
		return 0;
	if (schema->object(ctx, q->object, canon, sizeof(canon))) {
		soql_err_at(err, "INVALID_TYPE", q->text, q->len, q->object_pos,
		            "sObject type '%s' is not supported. If you are attempting to use a "
		            "custom object, be sure to append the '__c' after the entity name. "
		            "Please reference your WSDL or the describe call for the appropriate "
		            "names.",
		            q->object);
		return -1;
	}
	free(q->object);
	q->object = xstrdup(canon);
	for (i = 0; i < q->nfields; i++) {
		if (bind_fref(&b, &q->fields[i]))
			return -1;
		for (j = 0; j < i; j++) {
			if (soql_strcasecmp(q->fields[j].display, q->fields[i].display) == 0) {
				soql_err_at(err, "MALFORMED_QUERY", q->text, q->len,
				            q->fields[i].pos, "duplicate field selected: %s",
				            q->fields[i].display);
				return -1;
			}
		}
	}
	if (q->where != NULL && bind_node(&b, q->where))
		return -1;
	for (i = 0; i < q->norder; i++) {
		if (bind_fref(&b, &q->order[i].f))
			return -1;
	}
	q->bound = 1;
	return 0;
}

/* ---- values ---------------------------------------------------------- */

/* Case-insensitive fallback for records whose keys are not canonical. */
static json_t *get_ci(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	const char *k;

	if (v != NULL || !json_is_object(obj))
		return v;
	json_object_foreach(obj, k, v)
	{
		if (soql_strcasecmp(k, key) == 0)
			return v;
	}
	return NULL;
}

static json_t *related(const struct fref *f, json_t *rec, const struct soql_env *env)
{
	json_t *id = get_ci(rec, f->rel_idfield);

	if (!json_is_string(id) || env == NULL || env->lookup == NULL)
		return NULL;
	return env->lookup(env->lookup_ctx, f->rel_object, json_string_value(id));
}

/* Borrowed value of f in rec, NULL when missing or JSON null. */
static json_t *field_value(const struct fref *f, json_t *rec, const struct soql_env *env)
{
	json_t *v;

	if (f->rel != NULL) {
		rec = related(f, rec, env);
		if (rec == NULL)
			return NULL;
	}
	v = get_ci(rec, f->name);
	return json_is_null(v) ? NULL : v;
}

/* A record value as a comparable scalar; 0 if absent or unusable. */
struct scalar {
	const char *s;
	double num;
	int64_t t; /* days (date) or ms (datetime) */
	int b;
};

static int to_scalar(enum soql_type type, json_t *v, struct scalar *out)
{
	if (v == NULL)
		return 0;
	switch (type) {
	case SOQL_T_STRING:
	case SOQL_T_ID:
		if (!json_is_string(v))
			return 0;
		out->s = json_string_value(v);
		return 1;
	case SOQL_T_BOOLEAN:
		if (!json_is_boolean(v))
			return 0;
		out->b = json_is_true(v);
		return 1;
	case SOQL_T_NUMBER:
		if (!json_is_number(v))
			return 0;
		out->num = json_number_value(v);
		return 1;
	case SOQL_T_DATE:
		return json_is_string(v) &&
		       soql_parse_date(json_string_value(v), json_string_length(v), &out->t) == 0;
	case SOQL_T_DATETIME:
		return json_is_string(v) &&
		       soql_parse_datetime(json_string_value(v), json_string_length(v), &out->t) ==
		               0;
	}
	return 0;
}

static int id_cmp(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if ((la == 15 || la == 18) && (lb == 15 || lb == 18) && la != lb)
		return strncmp(a, b, 15);
	return strcmp(a, b);
}

static int num_cmp(double a, double b)
{
	return (a > b) - (a < b);
}

static int i64_cmp(int64_t a, int64_t b)
{
	return (a > b) - (a < b);
}

static int scalar_cmp(enum soql_type type, const struct scalar *a, const struct scalar *b)
{
	switch (type) {
	case SOQL_T_STRING: return soql_strcasecmp(a->s, b->s);
	case SOQL_T_ID: return id_cmp(a->s, b->s);
	case SOQL_T_BOOLEAN: return a->b - b->b;
	case SOQL_T_NUMBER: return num_cmp(a->num, b->num);
	case SOQL_T_DATE:
	case SOQL_T_DATETIME: return i64_cmp(a->t, b->t);
	}
	return 0;
}

/* ---- LIKE ------------------------------------------------------------ */

static size_t utf8_len(const char *s)
{
	size_t n = 1;

	while (((unsigned char)s[n] & 0xC0) == 0x80)
		n++;
	return n;
}

/* Match s against pattern p (decoded but for \\ \% \_): % any run, _ one
 * character, \x the literal x; ASCII case-insensitive. Iterative with one
 * backtrack point, so no recursion and O(|s|*|p|) worst case. */
static int like_match(const char *s, const char *p)
{
	size_t pn = strlen(p);
	const char *star_s = NULL;
	size_t i = 0, star_p = 0;
	int have_star = 0;

	for (;;) {
		if (i < pn && p[i] == '%') {
			have_star = 1;
			star_p = ++i;
			star_s = s;
			continue;
		}
		if (*s == '\0') {
			while (i < pn && p[i] == '%')
				i++;
			return i == pn;
		}
		if (i < pn && p[i] == '_') {
			s += utf8_len(s);
			i++;
			continue;
		}
		if (i < pn) {
			char pc = p[i];
			size_t adv = 1;

			if (pc == '\\' && i + 1 < pn) {
				pc = p[i + 1];
				adv = 2;
			}
			if (tolower((unsigned char)pc) == tolower((unsigned char)*s)) {
				s++;
				i += adv;
				continue;
			}
		}
		if (!have_star)
			return 0;
		star_s += utf8_len(star_s);
		s = star_s;
		i = star_p;
	}
}

/* ---- WHERE ----------------------------------------------------------- */

static int value_eq(const struct fref *f, json_t *v, const struct value *lit, time_t now)
{
	struct scalar a = {0}, b = {0};
	int64_t lo, hi;

	if (lit->kind == V_NULL)
		return v == NULL;
	if (!to_scalar(f->type, v, &a))
		return 0;
	switch (lit->kind) {
	case V_STR: b.s = lit->str; break;
	case V_NUM: b.num = lit->num; break;
	case V_BOOL: b.b = lit->b; break;
	case V_DATE:
	case V_DATETIME: return a.t >= lit->lo && a.t < lit->hi;
	case V_DATEFN:
		soql_datefn_range(lit->fn, lit->n, now, &lo, &hi);
		if (f->type == SOQL_T_DATETIME)
			lo *= MS_PER_DAY, hi *= MS_PER_DAY;
		return a.t >= lo && a.t < hi;
	default: return 0;
	}
	return scalar_cmp(f->type, &a, &b) == 0;
}

static int value_rel(const struct fref *f, json_t *v, enum op op, const struct value *lit,
                     time_t now)
{
	struct scalar a = {0}, b = {0};
	int64_t lo, hi;
	int c;

	if (lit->kind == V_NULL || !to_scalar(f->type, v, &a))
		return 0;
	if (lit->kind == V_DATE || lit->kind == V_DATETIME || lit->kind == V_DATEFN) {
		lo = lit->lo, hi = lit->hi;
		if (lit->kind == V_DATEFN) {
			soql_datefn_range(lit->fn, lit->n, now, &lo, &hi);
			if (f->type == SOQL_T_DATETIME)
				lo *= MS_PER_DAY, hi *= MS_PER_DAY;
		}
		switch (op) {
		case OP_LT: return a.t < lo;
		case OP_LE: return a.t < hi;
		case OP_GT: return a.t >= hi;
		case OP_GE: return a.t >= lo;
		default: return 0;
		}
	}
	switch (lit->kind) {
	case V_STR: b.s = lit->str; break;
	case V_NUM: b.num = lit->num; break;
	case V_BOOL: b.b = lit->b; break;
	default: return 0;
	}
	c = scalar_cmp(f->type, &a, &b);
	switch (op) {
	case OP_LT: return c < 0;
	case OP_LE: return c <= 0;
	case OP_GT: return c > 0;
	case OP_GE: return c >= 0;
	default: return 0;
	}
}

static int eval(const struct soql_query *q, const struct node *n, json_t *rec,
                const struct soql_env *env)
{
	time_t now = env != NULL ? env->now : 0;
	json_t *v;
	size_t i;

	switch (n->kind) {
	case N_AND:
		for (i = 0; i < n->nkids; i++) {
			if (!eval(q, n->kids[i], rec, env))
				return 0;
		}
		return 1;
	case N_OR:
		for (i = 0; i < n->nkids; i++) {
			if (eval(q, n->kids[i], rec, env))
				return 1;
		}
		return 0;
	case N_NOT: return !eval(q, n->kids[0], rec, env);
	case N_CMP: break;
	}
	v = field_value(&n->f, rec, env);
	switch (n->op) {
	case OP_EQ: return value_eq(&n->f, v, &n->vals[0], now);
	case OP_NE: return !value_eq(&n->f, v, &n->vals[0], now);
	case OP_IN:
	case OP_NOT_IN:
		for (i = 0; i < n->nvals; i++) {
			if (value_eq(&n->f, v, &n->vals[i], now))
				return n->op == OP_IN;
		}
		return n->op == OP_NOT_IN;
	case OP_LIKE:
		if (!json_is_string(v))
			return 0;
		return like_match(json_string_value(v), n->vals[0].str);
	default: return value_rel(&n->f, v, n->op, &n->vals[0], now);
	}
}

int soql_match(const struct soql_query *q, json_t *record, const struct soql_env *env)
{
	if (!q->bound || !json_is_object(record))
		return 0;
	return q->where == NULL || eval(q, q->where, record, env);
}

/* ---- run ------------------------------------------------------------- */

struct row {
	json_t *rec;
	size_t idx; /* input position: makes the sort stable */
};

struct sort_ctx {
	const struct soql_query *q;
	const struct soql_env *env;
};

static int row_cmp(const void *pa, const void *pb, void *arg)
{
	const struct row *ra = pa, *rb = pb;
	const struct sort_ctx *c = arg;
	size_t i;

	for (i = 0; i < c->q->norder; i++) {
		const struct order *o = &c->q->order[i];
		struct scalar a = {0}, b = {0};
		int ha = to_scalar(o->f.type, field_value(&o->f, ra->rec, c->env), &a);
		int hb = to_scalar(o->f.type, field_value(&o->f, rb->rec, c->env), &b);
		int r;

		if (!ha || !hb) {
			if (ha == hb)
				continue;
			r = !ha ? -1 : 1; /* null before value */
			if (o->nulls_last)
				r = -r;
			return r;
		}
		r = scalar_cmp(o->f.type, &a, &b);
		if (r != 0)
			return o->desc ? -r : r;
	}
	return (ra->idx > rb->idx) - (ra->idx < rb->idx);
}

static json_t *attributes(const char *type, json_t *rec, const struct soql_env *env)
{
	json_t *a = json_pack("{s:s}", "type", type);
	json_t *id = get_ci(rec, "Id");

	char *url;

	if (a != NULL && env != NULL && env->url_prefix != NULL && json_is_string(id)) {
		url = xasprintf("%s/sobjects/%s/%s", env->url_prefix, type, json_string_value(id));
		json_object_set_new(a, "url", json_string(url));
		free(url);
	}
	return a;
}

static json_t *project(const struct soql_query *q, json_t *rec, const struct soql_env *env)
{
	json_t *out = json_object();
	size_t i;

	json_object_set_new(out, "attributes", attributes(q->object, rec, env));
	for (i = 0; i < q->nfields; i++) {
		const struct fref *f = &q->fields[i];
		json_t *v, *parent;

		if (f->rel == NULL) {
			v = get_ci(rec, f->name);
			json_object_set_new(out, f->name,
			                    v != NULL ? json_deep_copy(v) : json_null());
			continue;
		}
		parent = json_object_get(out, f->rel);
		if (parent == NULL) {
			json_t *r = related(f, rec, env);

			if (r != NULL) {
				parent = json_object();
				json_object_set_new(parent, "attributes",
				                    attributes(f->rel_object, r, env));
			} else {
				parent = json_null();
			}
			json_object_set_new(out, f->rel, parent);
		}
		if (json_is_object(parent)) {
			v = get_ci(related(f, rec, env), f->name);
			json_object_set_new(parent, f->name,
			                    v != NULL ? json_deep_copy(v) : json_null());
		}
	}
	return out;
}

json_t *soql_run(const struct soql_query *q, json_t *records, const struct soql_env *env,
                 size_t *total_size)
{
	struct sort_ctx sc = {q, env};
	json_t *out = json_array(), *rec;
	struct row *rows = NULL;
	size_t n = 0, i, first, last;

	if (total_size != NULL)
		*total_size = 0;
	if (!q->bound || !json_is_array(records))
		return out;
	rows = xmalloc((json_array_size(records) + 1) * sizeof(*rows));
	json_array_foreach(records, i, rec)
	{
		if (soql_match(q, rec, env)) {
			rows[n].rec = rec;
			rows[n].idx = i;
			n++;
		}
	}
	if (q->norder > 0)
		qsort_r(rows, n, sizeof(*rows), row_cmp, &sc);
	first = q->offset > 0 ? (size_t)q->offset : 0;
	if (first > n)
		first = n;
	last = n;
	if (q->limit >= 0 && (size_t)q->limit < last - first)
		last = first + (size_t)q->limit;
	if (total_size != NULL)
		*total_size = last - first;
	if (!q->is_count) {
		for (i = first; i < last; i++)
			json_array_append_new(out, project(q, rows[i].rec, env));
	}
	free(rows);
	return out;
}
