/*
 * fieldcond.c - conditions over a record's fields (fieldcond.h).
 */
#include <string.h>

#include "fieldcond.h"

json_t *fieldcond_field(json_t *fields, const char *name)
{
	const char *dot = name ? strchr(name, '.') : NULL;
	char head[128];
	size_t n;
	if (!dot)
		return name ? json_object_get(fields, name) : NULL;
	n = (size_t)(dot - name);
	if (n >= sizeof head)
		return NULL;
	memcpy(head, name, n);
	head[n] = '\0';
	json_t *outer = json_object_get(fields, head);
	return json_is_object(outer) ? json_object_get(outer, dot + 1) : NULL;
}

/* 12 == 12.0: Salesforce numbers arrive as integers or reals. */
static int value_eq(json_t *a, json_t *b)
{
	if (json_is_number(a) && json_is_number(b)) {
		if (json_is_integer(a) && json_is_integer(b))
			return json_integer_value(a) == json_integer_value(b);
		return json_number_value(a) == json_number_value(b);
	}
	return json_equal(a, b);
}

static int depth_ok(json_t *c, int depth)
{
	json_t *sub, *list;
	size_t i;
	if (depth > FIELDCOND_MAX_DEPTH)
		return 0;
	if ((sub = json_object_get(c, "not")))
		return depth_ok(sub, depth + 1);
	list = json_object_get(c, "all");
	if (!list)
		list = json_object_get(c, "any");
	json_array_foreach(list, i, sub) if (!depth_ok(sub, depth + 1)) return 0;
	return 1;
}

int fieldcond_depth_ok(json_t *cond)
{
	return depth_ok(cond, 0);
}

static int eval(json_t *c, json_t *fields, int depth)
{
	json_t *sub, *list, *v, *t;
	size_t i;

	if (depth > FIELDCOND_MAX_DEPTH)
		return 0;
	if ((sub = json_object_get(c, "not")))
		return !eval(sub, fields, depth + 1);
	if ((list = json_object_get(c, "all"))) {
		json_array_foreach(list, i, sub) if (!eval(sub, fields, depth + 1)) return 0;
		return 1;
	}
	if ((list = json_object_get(c, "any"))) {
		json_array_foreach(list, i, sub) if (eval(sub, fields, depth + 1)) return 1;
		return 0;
	}
	v = fieldcond_field(fields, json_string_value(json_object_get(c, "field")));
	if ((t = json_object_get(c, "exists")))
		return json_is_true(t) == (v != NULL);
	if (!v)
		return json_is_true(json_object_get(c, "if_absent"));
	if ((t = json_object_get(c, "eq")))
		return value_eq(v, t);
	if ((list = json_object_get(c, "in"))) {
		json_array_foreach(list, i, t) if (value_eq(v, t)) return 1;
		return 0;
	}
	if ((t = json_object_get(c, "prefix"))) {
		const char *s = json_string_value(v), *p = json_string_value(t);
		return s && p && strncmp(s, p, strlen(p)) == 0;
	}
	if ((t = json_object_get(c, "gte")))
		return json_is_number(v) && json_number_value(v) >= json_number_value(t);
	if ((t = json_object_get(c, "lt")))
		return json_is_number(v) && json_number_value(v) < json_number_value(t);
	return 0;
}

int fieldcond_eval(json_t *cond, json_t *fields)
{
	return eval(cond, fields, 0);
}
