/*
 * notify_policy.c - policies/notifications.json (see notify.h): load,
 * validate (schema, then what a schema cannot say), resolve the targets'
 * URLs and secrets from the environment, match events to subscriptions.
 *
 * Subscriptions stay as the validated JSON and are interpreted per event,
 * like bridge/fanout.c's rules: a handful of them, so a compiled form would
 * only be a second representation to keep in step with the schema. The
 * condition language is fanout's (plus gte/lt); fanout's evaluator is static
 * in the bridge, so it is repeated here (moving both into common/ is noted in
 * workers/README.md).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jschema.h"
#include "log.h"
#include "fieldcond.h"
#include "notify.h"
#include "xmem.h"

#define COND_DEPTH_MAX FIELDCOND_MAX_DEPTH

static void problem(json_t **problems, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(json_t **problems, const char *fmt, ...)
{
	char buf[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (!*problems)
		*problems = json_array();
	json_array_append_new(*problems, json_string(buf));
}

static long num(json_t *o, const char *k, long def)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (long)json_integer_value(v) : def;
}

/* The environment variable's value, or NULL with a problem; bounded by max. */
static char *from_env(const char *name, size_t max, const char *path, json_t **problems)
{
	const char *v = getenv(name);
	if (!v || !*v) {
		problem(problems, "%s: environment variable %s is not set", path, name);
		return NULL;
	}
	if (strlen(v) >= max) {
		problem(problems, "%s: environment variable %s is longer than %zu bytes", path,
		        name, max - 1);
		return NULL;
	}
	return xstrdup(v);
}

static void target_from(struct notify_target *t, const char *name, json_t *o, int resolve_env,
                        json_t **problems)
{
	const char *kind = json_string_value(json_object_get(o, "kind"));
	const char *url = json_string_value(json_object_get(o, "url"));
	const char *ue = json_string_value(json_object_get(o, "url_env"));
	const char *se = json_string_value(json_object_get(o, "secret_env"));
	json_t *rate = json_object_get(o, "rate_per_second");

	snprintf(t->name, sizeof t->name, "%s", name);
	t->kind = strcmp(kind, "slack") == 0     ? NOTIFY_SLACK
	          : strcmp(kind, "discord") == 0 ? NOTIFY_DISCORD
	                                         : NOTIFY_WEBHOOK;
	snprintf(t->url_env, sizeof t->url_env, "%s", ue ? ue : "");
	snprintf(t->secret_env, sizeof t->secret_env, "%s", se ? se : "");
	t->timeout_ms = num(o, "timeout_ms", 10000);
	t->max_attempts = (int)num(o, "max_attempts", 5);
	t->backoff_base_ms = num(o, "backoff_base_ms", 500);
	t->backoff_max_ms = num(o, "backoff_max_ms", 30000);
	t->retry_after_max_ms = num(o, "retry_after_max_ms", 60000);
	t->rate_per_s = json_is_number(rate) ? json_number_value(rate) : 10.0;
	t->burst = (double)num(o, "burst", 20);
	t->max_inflight = (int)num(o, "max_inflight", 4);
	t->breaker_failures = (int)num(o, "breaker_failures", 5);
	t->breaker_open_ms = num(o, "breaker_open_ms", 30000);
	if (t->backoff_max_ms < t->backoff_base_ms)
		problem(problems,
		        "$.targets.%s.backoff_max_ms: %ld is less than backoff_base_ms %ld", name,
		        t->backoff_max_ms, t->backoff_base_ms);
	if (url)
		t->url = xstrdup(url);
	if (resolve_env)
		notify_target_resolve(t, problems);
}

int notify_target_resolve(struct notify_target *t, json_t **problems)
{
	char path[160];
	size_t before = json_array_size(*problems);
	if (t->url_env[0] && !t->url) {
		snprintf(path, sizeof path, "$.targets.%s.url_env", t->name);
		t->url = from_env(t->url_env, NOTIFY_URL_MAX, path, problems);
		if (t->url) {
			if (strncmp(t->url, "http://", 7) != 0 &&
			    strncmp(t->url, "https://", 8) != 0)
				problem(problems, "%s: %s is not an http(s) URL", path, t->url_env);
			log_redact(t->url); /* Slack/Discord URLs are credentials */
		}
	}
	if (t->secret_env[0] && !t->secret) {
		snprintf(path, sizeof path, "$.targets.%s.secret_env", t->name);
		t->secret = from_env(t->secret_env, NOTIFY_SECRET_MAX, path, problems);
		if (t->secret)
			log_redact(t->secret);
	}
	return json_array_size(*problems) > before ? -1 : 0;
}

struct notify_policy *notify_policy_new(json_t *doc, json_t *schema, int resolve_env,
                                        json_t **problems)
{
	struct jschema *js = jschema_new(schema);
	struct notify_policy *p = NULL;
	json_t *errs = NULL, *targets, *subs, *o, *s;
	const char *name;
	size_t i, j;

	*problems = NULL;
	if (jschema_validate(js, doc, &errs) > 0) {
		*problems = errs;
		goto out;
	}
	json_decref(errs);
	p = xcalloc(1, sizeof *p);
	p->doc = json_incref(doc);
	snprintf(p->version, sizeof p->version, "%s",
	         json_string_value(json_object_get(doc, "version")));
	targets = json_object_get(doc, "targets");
	p->targets = xcalloc(json_object_size(targets) + 1, sizeof *p->targets);
	json_object_foreach(targets, name, o)
	        target_from(&p->targets[p->ntargets++], name, o, resolve_env, problems);

	subs = json_object_get(doc, "subscriptions");
	json_array_foreach(subs, i, s)
	{
		json_t *tl = json_object_get(s, "targets"), *t, *when = json_object_get(s, "when");
		const char *sn = json_string_value(json_object_get(s, "name"));
		json_array_foreach(tl, j, t) if (notify_policy_target(p, json_string_value(t)) < 0)
		        problem(problems,
		                "$.subscriptions[%zu].targets[%zu]: no target named \"%s\"", i, j,
		                json_string_value(t));
		if (when && !fieldcond_depth_ok(when))
			problem(problems, "$.subscriptions[%zu].when: nested deeper than %d", i,
			        COND_DEPTH_MAX);
		for (size_t k = 0; k < i; k++)
			if (strcmp(sn, json_string_value(json_object_get(json_array_get(subs, k),
			                                                 "name"))) == 0)
				problem(problems,
				        "$.subscriptions[%zu].name: \"%s\" is also the name of "
				        "subscriptions[%zu]",
				        i, sn, k);
	}
out:
	jschema_free(js);
	if (*problems)
		notify_policy_free(&p);
	return p;
}

struct notify_policy *notify_policy_load(const char *path, const char *schema_path, int resolve_env,
                                         json_t **problems)
{
	json_error_t je;
	json_t *schema = NULL, *doc = NULL;
	struct notify_policy *p = NULL;

	*problems = NULL;
	if (!(schema = json_load_file(schema_path, JSON_REJECT_DUPLICATES, &je))) {
		problem(problems, "%s:%d:%d: %s", schema_path, je.line, je.column, je.text);
		goto out;
	}
	if (!(doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je))) {
		problem(problems, "%s:%d:%d: %s", path, je.line, je.column, je.text);
		goto out;
	}
	p = notify_policy_new(doc, schema, resolve_env, problems);
out:
	json_decref(doc);
	json_decref(schema);
	return p;
}

void notify_policy_free(struct notify_policy **pp)
{
	struct notify_policy *p = pp ? *pp : NULL;
	if (!p)
		return;
	for (size_t i = 0; i < p->ntargets; i++) {
		if (p->targets[i].url && p->targets[i].url_env[0])
			log_unredact(p->targets[i].url);
		if (p->targets[i].secret)
			log_unredact(p->targets[i].secret);
		free(p->targets[i].url);
		if (p->targets[i].secret) /* wipe: it was a credential */
			memset(p->targets[i].secret, 0, strlen(p->targets[i].secret));
		free(p->targets[i].secret);
	}
	free(p->targets);
	json_decref(p->doc);
	free(p);
	*pp = NULL;
}

int notify_policy_target(const struct notify_policy *p, const char *name)
{
	for (size_t i = 0; name && i < p->ntargets; i++)
		if (strcmp(p->targets[i].name, name) == 0)
			return (int)i;
	return -1;
}

int notify_cond_eval(json_t *cond, json_t *fields)
{
	return fieldcond_eval(cond, fields);
}

static int in_list(json_t *list, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v) if (s && json_string_value(v) &&
	                                   strcmp(json_string_value(v), s) == 0) return 1;
	return 0;
}

static int sub_matches(json_t *s, json_t *env, const char *kind)
{
	const char *sk = json_string_value(json_object_get(s, "kind"));
	const char *entity = json_string_value(json_object_get(s, "entity"));
	json_t *cts = json_object_get(s, "change_types"), *when = json_object_get(s, "when");
	const char *ee = json_string_value(json_object_get(env, "entity"));

	if (strcmp(sk ? sk : "change", kind) != 0)
		return 0;
	if (entity && (!ee || strcmp(entity, ee) != 0))
		return 0;
	if (cts && !in_list(cts, json_string_value(json_object_get(env, "change_type"))))
		return 0;
	return !when || fieldcond_eval(when, json_object_get(env, "fields"));
}

size_t notify_policy_match(const struct notify_policy *p, json_t *env, size_t *out, json_t **subs,
                           size_t max)
{
	const char *kind = json_string_value(json_object_get(env, "kind"));
	json_t *sl = json_object_get(p->doc, "subscriptions"), *s, *t;
	json_t *per[NOTIFY_TARGETS_MAX] = {0};
	size_t i, j, n = 0;

	if (!kind || !*kind)
		kind = "change";
	json_array_foreach(sl, i, s)
	{
		if (!sub_matches(s, env, kind))
			continue;
		json_array_foreach(json_object_get(s, "targets"), j, t)
		{
			int ti = notify_policy_target(p, json_string_value(t));
			if (ti < 0 || ti >= NOTIFY_TARGETS_MAX)
				continue;
			if (!per[ti])
				per[ti] = json_array();
			json_array_append(per[ti], json_object_get(s, "name"));
		}
	}
	/* lead.sla_watch names the channels its policy wants told (notify_channels):
	 * a channel that is one of our targets gets the breach too. */
	if (strcmp(kind, "sla_breach") == 0)
		json_array_foreach(json_object_get(json_object_get(env, "fields"), "channels"), j,
		                   t)
		{
			int ti = notify_policy_target(p, json_string_value(t));
			if (ti < 0 || ti >= NOTIFY_TARGETS_MAX)
				continue;
			if (!per[ti])
				per[ti] = json_array();
			json_array_append_new(per[ti], json_string("sla_watch.channels"));
		}
	for (size_t ti = 0; ti < p->ntargets && ti < NOTIFY_TARGETS_MAX; ti++) {
		if (!per[ti])
			continue;
		if (n < max) {
			out[n] = ti;
			if (subs)
				subs[n] = json_incref(per[ti]);
			n++;
		}
		json_decref(per[ti]);
	}
	return n;
}
