#include "jschema.h"

#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmem.h"

/* Deep schemas or self-referencing $refs must not blow the stack. */
#define JSCHEMA_MAX_DEPTH 64
#define JSCHEMA_PATH_MAX  512

struct jschema {
	json_t *root;
};

struct vctx {
	json_t *root;
	json_t *errors; /* NULL when only counting (inside anyOf/oneOf/not) */
	int count;
};

struct jschema *jschema_new(json_t *schema)
{
	struct jschema *s = xcalloc(1, sizeof *s);
	s->root = json_incref(schema);
	return s;
}

struct jschema *jschema_load(const char *path, char *errstr, size_t errlen)
{
	json_error_t je;
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!doc) {
		snprintf(errstr, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
		return NULL;
	}
	struct jschema *s = jschema_new(doc);
	json_decref(doc);
	return s;
}

void jschema_free(struct jschema *s)
{
	if (!s)
		return;
	json_decref(s->root);
	free(s);
}

__attribute__((format(printf, 3, 4))) static void fail(struct vctx *c, const char *path,
                                                       const char *fmt, ...)
{
	char msg[JSCHEMA_PATH_MAX + 256];
	va_list ap;

	c->count++;
	if (!c->errors || json_array_size(c->errors) >= JSCHEMA_MAX_ERRORS)
		return;
	int n = snprintf(msg, sizeof msg, "%s: ", path);
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
	va_end(ap);
	json_array_append_new(c->errors, json_string(msg));
}

static const char *type_name(json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "unknown";
}

static int type_matches(json_t *v, const char *t)
{
	if (strcmp(t, "number") == 0)
		return json_is_number(v);
	if (strcmp(t, "integer") == 0)
		return json_is_integer(v) ||
		       (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v));
	return strcmp(t, type_name(v)) == 0;
}

/* Resolve "#/a/b" (JSON pointer, ~0 ~1 escapes) inside the root document. */
static json_t *resolve_ref(json_t *root, const char *ref)
{
	if (ref[0] != '#')
		return NULL;
	json_t *cur = root;
	const char *p = ref + 1;
	while (*p == '/') {
		char tok[256];
		size_t n = 0;
		p++;
		while (*p && *p != '/' && n < sizeof tok - 1) {
			if (p[0] == '~' && p[1] == '0') {
				tok[n++] = '~';
				p += 2;
			} else if (p[0] == '~' && p[1] == '1') {
				tok[n++] = '/';
				p += 2;
			} else {
				tok[n++] = *p++;
			}
		}
		tok[n] = '\0';
		if (json_is_object(cur)) {
			cur = json_object_get(cur, tok);
		} else if (json_is_array(cur)) {
			char *end;
			long i = strtol(tok, &end, 10);
			cur = (*end || i < 0) ? NULL : json_array_get(cur, (size_t)i);
		} else {
			return NULL;
		}
		if (!cur)
			return NULL;
	}
	return cur;
}

/*
 * Compiled patterns are cached process-wide, keyed by their text: the same
 * few schema patterns run for every record the loader and workers validate,
 * and compiling a POSIX regex costs far more than matching it. The cache is
 * bounded; past JSCHEMA_RE_CACHE patterns we compile per call (still correct).
 */
#define JSCHEMA_RE_CACHE 256
static struct {
	char *pattern;
	regex_t re;
	int ok;
} re_cache[JSCHEMA_RE_CACHE];
static size_t re_cached;
static pthread_mutex_t re_mu = PTHREAD_MUTEX_INITIALIZER;

static int regex_match(const char *pattern, const char *s, int *bad)
{
	regex_t tmp;
	const regex_t *re = NULL;
	int ok;

	*bad = 0;
	pthread_mutex_lock(&re_mu);
	for (size_t i = 0; i < re_cached; i++)
		if (strcmp(re_cache[i].pattern, pattern) == 0) {
			if (!re_cache[i].ok) {
				pthread_mutex_unlock(&re_mu);
				*bad = 1;
				return 0;
			}
			re = &re_cache[i].re;
			break;
		}
	if (!re && re_cached < JSCHEMA_RE_CACHE) {
		size_t i = re_cached++;
		re_cache[i].pattern = xstrdup(pattern);
		re_cache[i].ok = regcomp(&re_cache[i].re, pattern, REG_EXTENDED | REG_NOSUB) == 0;
		if (!re_cache[i].ok) {
			pthread_mutex_unlock(&re_mu);
			*bad = 1;
			return 0;
		}
		re = &re_cache[i].re;
	}
	if (re) {
		/* regexec on a compiled pattern is thread-safe (POSIX); cached
		 * entries are never freed or changed once published. */
		pthread_mutex_unlock(&re_mu);
		return regexec(re, s, 0, NULL, 0) == 0;
	}
	pthread_mutex_unlock(&re_mu);
	if (regcomp(&tmp, pattern, REG_EXTENDED | REG_NOSUB) != 0) {
		*bad = 1;
		return 0;
	}
	ok = regexec(&tmp, s, 0, NULL, 0) == 0;
	regfree(&tmp);
	return ok;
}

static size_t utf8_len(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

static int format_ok(const char *fmt, const char *s)
{
	int bad;
	if (strcmp(fmt, "date-time") == 0)
		return regex_match(
		        "^[0-9]{4}-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-5][0-9]:[0-6][0-9]"
		        "(\\.[0-9]+)?([Zz]|[+-][0-2][0-9]:?[0-5][0-9])$",
		        s, &bad);
	if (strcmp(fmt, "date") == 0)
		return regex_match("^[0-9]{4}-[01][0-9]-[0-3][0-9]$", s, &bad);
	if (strcmp(fmt, "email") == 0)
		return regex_match("^[^@ ]+@[^@ ]+$", s, &bad);
	if (strcmp(fmt, "uri") == 0)
		return regex_match("^[a-zA-Z][a-zA-Z0-9+.-]*:", s, &bad);
	return 1; /* unknown formats are annotations */
}

static void validate(struct vctx *c, json_t *schema, json_t *v, const char *path, int depth);

/* Does v validate against schema? Counts only; no messages. */
static int valid_quiet(struct vctx *c, json_t *schema, json_t *v, const char *path, int depth)
{
	struct vctx q = {c->root, NULL, 0};
	validate(&q, schema, v, path, depth);
	return q.count == 0;
}

static void child_path(char *out, size_t cap, const char *path, const char *key, long idx)
{
	if (key)
		snprintf(out, cap, "%s.%s", path, key);
	else
		snprintf(out, cap, "%s[%ld]", path, idx);
}

static void validate_object(struct vctx *c, json_t *schema, json_t *v, const char *path, int depth)
{
	char sub[JSCHEMA_PATH_MAX];
	json_t *props = json_object_get(schema, "properties");
	json_t *pprops = json_object_get(schema, "patternProperties");
	json_t *addl = json_object_get(schema, "additionalProperties");
	json_t *req = json_object_get(schema, "required");
	json_t *pnames = json_object_get(schema, "propertyNames");
	json_t *mn = json_object_get(schema, "minProperties");
	json_t *mx = json_object_get(schema, "maxProperties");
	const char *k;
	json_t *pv;
	size_t i;
	json_t *r;

	json_array_foreach(req, i, r)
	{
		if (json_is_string(r) && !json_object_get(v, json_string_value(r)))
			fail(c, path, "required property '%s' is missing", json_string_value(r));
	}
	if (json_is_integer(mn) && (json_int_t)json_object_size(v) < json_integer_value(mn))
		fail(c, path, "has %zu properties, fewer than %lld", json_object_size(v),
		     (long long)json_integer_value(mn));
	if (json_is_integer(mx) && (json_int_t)json_object_size(v) > json_integer_value(mx))
		fail(c, path, "has %zu properties, more than %lld", json_object_size(v),
		     (long long)json_integer_value(mx));

	json_object_foreach(v, k, pv)
	{
		int matched = 0;
		child_path(sub, sizeof sub, path, k, 0);
		if (pnames) {
			json_t *ks = json_string(k);
			if (!valid_quiet(c, pnames, ks, sub, depth + 1))
				fail(c, sub, "property name '%s' is not allowed", k);
			json_decref(ks);
		}
		json_t *ps = json_object_get(props, k);
		if (ps) {
			matched = 1;
			validate(c, ps, pv, sub, depth + 1);
		}
		const char *pat;
		json_t *psch;
		json_object_foreach(pprops, pat, psch)
		{
			int bad;
			if (regex_match(pat, k, &bad)) {
				matched = 1;
				validate(c, psch, pv, sub, depth + 1);
			}
		}
		if (matched || !addl)
			continue;
		if (json_is_false(addl))
			fail(c, path, "unknown property '%s'", k);
		else if (json_is_object(addl))
			validate(c, addl, pv, sub, depth + 1);
	}
}

static void validate_array(struct vctx *c, json_t *schema, json_t *v, const char *path, int depth)
{
	char sub[JSCHEMA_PATH_MAX];
	json_t *items = json_object_get(schema, "items");
	json_t *prefix = json_object_get(schema, "prefixItems");
	json_t *mn = json_object_get(schema, "minItems");
	json_t *mx = json_object_get(schema, "maxItems");
	size_t n = json_array_size(v), i, start = 0;
	json_t *e;

	if (json_is_integer(mn) && (json_int_t)n < json_integer_value(mn))
		fail(c, path, "has %zu items, fewer than %lld", n,
		     (long long)json_integer_value(mn));
	if (json_is_integer(mx) && (json_int_t)n > json_integer_value(mx))
		fail(c, path, "has %zu items, more than %lld", n,
		     (long long)json_integer_value(mx));
	if (json_is_array(prefix)) {
		start = json_array_size(prefix);
		for (i = 0; i < n && i < start; i++) {
			child_path(sub, sizeof sub, path, NULL, (long)i);
			validate(c, json_array_get(prefix, i), json_array_get(v, i), sub,
			         depth + 1);
		}
	}
	if (json_is_object(items) || json_is_boolean(items)) {
		for (i = start; i < n; i++) {
			child_path(sub, sizeof sub, path, NULL, (long)i);
			if (json_is_false(items))
				fail(c, sub, "no item allowed here");
			else
				validate(c, items, json_array_get(v, i), sub, depth + 1);
		}
	}
	if (json_is_true(json_object_get(schema, "uniqueItems"))) {
		json_array_foreach(v, i, e)
		{
			for (size_t j = 0; j < i; j++)
				if (json_equal(e, json_array_get(v, j))) {
					child_path(sub, sizeof sub, path, NULL, (long)i);
					fail(c, sub, "duplicates item %zu", j);
					break;
				}
		}
	}
}

static void validate_number(struct vctx *c, json_t *schema, json_t *v, const char *path)
{
	double x = json_number_value(v);
	json_t *k;
	if ((k = json_object_get(schema, "minimum")) && json_is_number(k) &&
	    x < json_number_value(k))
		fail(c, path, "%g is less than the minimum %g", x, json_number_value(k));
	if ((k = json_object_get(schema, "maximum")) && json_is_number(k) &&
	    x > json_number_value(k))
		fail(c, path, "%g is more than the maximum %g", x, json_number_value(k));
	if ((k = json_object_get(schema, "exclusiveMinimum")) && json_is_number(k) &&
	    x <= json_number_value(k))
		fail(c, path, "%g must be more than %g", x, json_number_value(k));
	if ((k = json_object_get(schema, "exclusiveMaximum")) && json_is_number(k) &&
	    x >= json_number_value(k))
		fail(c, path, "%g must be less than %g", x, json_number_value(k));
	if ((k = json_object_get(schema, "multipleOf")) && json_is_number(k) &&
	    json_number_value(k) > 0) {
		double q = x / json_number_value(k);
		if (fabs(q - round(q)) > 1e-9)
			fail(c, path, "%g is not a multiple of %g", x, json_number_value(k));
	}
}

static void validate_string(struct vctx *c, json_t *schema, json_t *v, const char *path)
{
	const char *s = json_string_value(v);
	size_t len = utf8_len(s);
	json_t *k;
	if ((k = json_object_get(schema, "minLength")) && json_is_integer(k) &&
	    (json_int_t)len < json_integer_value(k))
		fail(c, path, "is %zu characters, shorter than %lld", len,
		     (long long)json_integer_value(k));
	if ((k = json_object_get(schema, "maxLength")) && json_is_integer(k) &&
	    (json_int_t)len > json_integer_value(k))
		fail(c, path, "is %zu characters, longer than %lld", len,
		     (long long)json_integer_value(k));
	if ((k = json_object_get(schema, "pattern")) && json_is_string(k)) {
		int bad;
		if (!regex_match(json_string_value(k), s, &bad))
			fail(c, path,
			     bad ? "schema pattern '%s' does not compile"
			         : "does not match the pattern '%s'",
			     json_string_value(k));
	}
	if ((k = json_object_get(schema, "format")) && json_is_string(k) &&
	    !format_ok(json_string_value(k), s))
		fail(c, path, "is not a valid %s", json_string_value(k));
}

static void validate(struct vctx *c, json_t *schema, json_t *v, const char *path, int depth)
{
	json_t *k;
	size_t i;
	json_t *e;

	if (depth > JSCHEMA_MAX_DEPTH) {
		fail(c, path, "nesting deeper than %d levels", JSCHEMA_MAX_DEPTH);
		return;
	}
	if (json_is_true(schema))
		return;
	if (json_is_false(schema)) {
		fail(c, path, "no value is allowed here");
		return;
	}
	if (!json_is_object(schema))
		return;

	if ((k = json_object_get(schema, "$ref")) && json_is_string(k)) {
		json_t *target = resolve_ref(c->root, json_string_value(k));
		if (!target)
			fail(c, path, "schema $ref '%s' does not resolve", json_string_value(k));
		else
			validate(c, target, v, path, depth + 1);
	}

	if ((k = json_object_get(schema, "type"))) {
		int ok = 0;
		if (json_is_string(k))
			ok = type_matches(v, json_string_value(k));
		json_array_foreach(k, i, e) ok |=
		        json_is_string(e) && type_matches(v, json_string_value(e));
		if (!ok) {
			char want[128] = "";
			if (json_is_string(k))
				snprintf(want, sizeof want, "%s", json_string_value(k));
			else
				json_array_foreach(k, i, e)
				{
					size_t l = strlen(want);
					snprintf(want + l, sizeof want - l, "%s%s", i ? " or " : "",
					         json_string_value(e) ? json_string_value(e) : "?");
				}
			fail(c, path, "is %s, expected %s", type_name(v), want);
			return; /* further keywords would only repeat the type error */
		}
	}
	if ((k = json_object_get(schema, "enum")) && json_is_array(k)) {
		int ok = 0;
		json_array_foreach(k, i, e) ok |= json_equal(e, v);
		if (!ok) {
			char *vs = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			char *es = json_dumps(k, JSON_COMPACT);
			fail(c, path, "%.80s is not one of %.200s", vs ? vs : "?", es ? es : "?");
			free(vs);
			free(es);
		}
	}
	if ((k = json_object_get(schema, "const")) && !json_equal(k, v)) {
		char *es = json_dumps(k, JSON_ENCODE_ANY | JSON_COMPACT);
		fail(c, path, "must be %.200s", es ? es : "?");
		free(es);
	}

	if (json_is_object(v))
		validate_object(c, schema, v, path, depth);
	else if (json_is_array(v))
		validate_array(c, schema, v, path, depth);
	else if (json_is_number(v))
		validate_number(c, schema, v, path);
	else if (json_is_string(v))
		validate_string(c, schema, v, path);

	json_array_foreach(json_object_get(schema, "allOf"), i, e)
	        validate(c, e, v, path, depth + 1);
	if ((k = json_object_get(schema, "anyOf")) && json_is_array(k)) {
		int ok = 0;
		json_array_foreach(k, i, e) ok |= valid_quiet(c, e, v, path, depth + 1);
		if (!ok)
			fail(c, path, "matches none of the %zu allowed shapes (anyOf)",
			     json_array_size(k));
	}
	if ((k = json_object_get(schema, "oneOf")) && json_is_array(k)) {
		int n = 0;
		json_array_foreach(k, i, e) n += valid_quiet(c, e, v, path, depth + 1);
		if (n != 1)
			fail(c, path,
			     "matches %d of the allowed shapes, expected exactly one (oneOf)", n);
	}
	if ((k = json_object_get(schema, "not")) && valid_quiet(c, k, v, path, depth + 1))
		fail(c, path, "matches a shape that is not allowed (not)");
	if ((k = json_object_get(schema, "if"))) {
		json_t *branch = valid_quiet(c, k, v, path, depth + 1)
		                         ? json_object_get(schema, "then")
		                         : json_object_get(schema, "else");
		if (branch)
			validate(c, branch, v, path, depth + 1);
	}
}

int jschema_validate(const struct jschema *s, json_t *instance, json_t **errors)
{
	struct vctx c = {s->root, errors ? json_array() : NULL, 0};
	validate(&c, s->root, instance, "$", 0);
	if (errors)
		*errors = c.errors;
	return c.count;
}
