/*
 * fanout.c - fan-out rules (see fanout.h).
 *
 * The rules stay as the validated JSON document and are interpreted per
 * event: a handful of workloads and rules, so a compiled form would buy
 * nothing but a second representation to keep in step with the schema.
 * Everything the schema cannot say (duplicate-free workload topics that fit
 * Kafka's limit) is checked here, and reported the same way.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fanout.h"
#include "fieldcond.h"
#include "jschema.h"
#include "xmem.h"

/* Conditions nest; the schema allows any depth, we do not. */
#define FANOUT_MAX_COND_DEPTH FIELDCOND_MAX_DEPTH

struct workload {
	const char *name; /* borrowed from policy */
	char topic[FANOUT_TOPIC_MAX + 1];
	json_t *rules; /* borrowed from policy */
};

struct fanout {
	json_t *policy; /* owned reference */
	struct workload *wl;
	size_t nwl;
};

static void problem(json_t **problems, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(json_t **problems, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (!*problems)
		*problems = json_array();
	json_array_append_new(*problems, json_string(buf));
}

struct fanout *fanout_new(json_t *policy, json_t *schema, const char *prefix, json_t **problems)
{
	struct jschema *js = jschema_new(schema);
	struct fanout *f = NULL;
	json_t *errs = NULL;

	*problems = NULL;
	if (!prefix)
		prefix = "sfk.";
	if (jschema_validate(js, policy, &errs) > 0) {
		*problems = errs;
		errs = NULL;
		goto out;
	}
	json_decref(errs);

	f = xcalloc(1, sizeof *f);
	f->policy = json_incref(policy);
	json_t *wls = json_object_get(policy, "workloads");
	f->wl = xcalloc(json_object_size(wls), sizeof *f->wl);
	const char *name;
	json_t *w;
	json_object_foreach(wls, name, w)
	{
		struct workload *x = &f->wl[f->nwl++];
		x->name = name;
		x->rules = json_object_get(w, "rules");
		int n = snprintf(x->topic, sizeof x->topic, "%swl.%s", prefix, name);
		if (n < 0 || (size_t)n >= sizeof x->topic)
			problem(problems, "$.workloads.%s: topic %swl.%s is longer than %d", name,
			        prefix, name, FANOUT_TOPIC_MAX);
		size_t i;
		json_t *r;
		json_array_foreach(x->rules, i, r)
		{
			json_t *when = json_object_get(r, "when");
			if (when && !fieldcond_depth_ok(when))
				problem(problems,
				        "$.workloads.%s.rules[%zu].when: nested deeper than %d",
				        name, i, FANOUT_MAX_COND_DEPTH);
		}
	}
out:
	jschema_free(js);
	if (*problems)
		fanout_free(&f);
	return f;
}

static json_t *load_file(const char *path, char *errstr, size_t errlen)
{
	json_error_t je;
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!doc) {
		snprintf(errstr, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
		return NULL;
	}
	return doc;
}

struct fanout *fanout_load(const char *policy_path, const char *schema_path, const char *prefix,
                           char *errstr, size_t errlen)
{
	json_t *policy = NULL, *schema = NULL, *problems = NULL;
	struct fanout *f = NULL;

	if (!(schema = load_file(schema_path, errstr, errlen)))
		goto out;
	if (!(policy = load_file(policy_path, errstr, errlen)))
		goto out;
	if (!(f = fanout_new(policy, schema, prefix, &problems))) {
		size_t i, off = 0;
		json_t *p;
		errstr[0] = '\0';
		json_array_foreach(problems, i, p)
		{
			int n = snprintf(errstr + off, errlen - off, "%s%s: %s", i ? "\n" : "",
			                 policy_path, json_string_value(p));
			if (n < 0 || (size_t)n >= errlen - off)
				break; /* truncated: the first problems are the ones kept */
			off += (size_t)n;
		}
	}
out:
	json_decref(problems);
	json_decref(policy);
	json_decref(schema);
	return f;
}

void fanout_free(struct fanout **pf)
{
	if (!pf || !*pf)
		return;
	json_decref((*pf)->policy);
	free((*pf)->wl);
	free(*pf);
	*pf = NULL;
}

const char *fanout_version(const struct fanout *f)
{
	return json_string_value(json_object_get(f->policy, "version"));
}

size_t fanout_workloads(const struct fanout *f)
{
	return f->nwl;
}

/* The key for a matching rule into out; 0, or -1 when this rule yields none. */
static int rule_key(json_t *key, json_t *env, json_t *fields, char *out, size_t size)
{
	const char *src = json_string_value(json_object_get(key, "source"));
	const char *k = NULL;

	if (strcmp(src, "field") == 0) {
		json_t *v =
		        json_object_get(fields, json_string_value(json_object_get(key, "field")));
		if (!v) {
			const char *ia = json_string_value(json_object_get(key, "if_absent"));
			if (!ia || strcmp(ia, "record_id") != 0)
				return -1;
			k = json_string_value(json_object_get(env, "record_id"));
		} else {
			/* null (e.g. a Task with no WhoId) or not a string: not keyable */
			k = json_string_value(v);
			const char *prefix = json_string_value(json_object_get(key, "prefix"));
			if (!k || (prefix && strncmp(k, prefix, strlen(prefix)) != 0))
				return -1;
		}
	} else {
		k = json_string_value(json_object_get(env, "record_id"));
	}
	if (!k || !*k)
		return -1;
	int n = snprintf(out, size, "%s", k);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int in_list(json_t *list, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
	{
		const char *t = json_string_value(v);
		if (t && strcmp(t, s) == 0)
			return 1;
	}
	return 0;
}

size_t fanout_route(const struct fanout *f, json_t *env, struct fanout_target *out, size_t max)
{
	json_t *flags = json_object_get(env, "flags");
	json_t *fields = json_object_get(env, "fields");
	const char *entity = json_string_value(json_object_get(env, "entity"));
	const char *ct = json_string_value(json_object_get(env, "change_type"));
	size_t n = 0;

	/* Our own writes never feed a workload (no feedback loops), and a gap
	 * record without its re-fetched fields has nothing to decide on. */
	if (!entity || !ct || json_is_true(json_object_get(flags, "echo")))
		return 0;
	if (json_is_true(json_object_get(flags, "gap")) &&
	    !json_is_true(json_object_get(flags, "gap_resolved")))
		return 0;

	for (size_t w = 0; w < f->nwl && n < max; w++) {
		size_t i;
		json_t *r;
		json_array_foreach(f->wl[w].rules, i, r)
		{
			json_t *when = json_object_get(r, "when");
			if (strcmp(json_string_value(json_object_get(r, "entity")), entity) != 0 ||
			    !in_list(json_object_get(r, "change_types"), ct) ||
			    (when && !fieldcond_eval(when, fields)))
				continue;
			struct fanout_target *t = &out[n];
			if (rule_key(json_object_get(r, "key"), env, fields, t->key,
			             sizeof t->key) != 0)
				continue;
			t->workload = f->wl[w].name;
			memcpy(t->topic, f->wl[w].topic, sizeof t->topic);
			n++;
			break;
		}
	}
	return n;
}
