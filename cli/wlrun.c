/*
 * wlrun.c - run one workload's decisions inside sfk (wlrun.h).
 */
#include "wlrun.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "first_touch.h"
#include "krange.h"
#include "normalize.h"
#include "redis.h"
#include "route.h"
#include "sf_auth.h"
#include "sf_quota.h"
#include "sf_rest.h"
#include "sf_token.h"
#include "xmem.h"

static const char *g_login_url, *g_token_url, *g_sf_client_id, *g_username, *g_key_path,
        *g_api_version, *g_ca_file, *g_redis_url, *g_client_id, *g_llm_url, *g_llm_model,
        *g_llm_key;
static long long g_llm_timeout_ms;

/* Names as sfk-worker's (workers/main.c): the workloads read some by name. */
static const struct config_entry table[] = {
        {"sf-login-url", "SF_LOGIN_URL", CONFIG_URL, "https://login.salesforce.com", 0,
         "JWT audience (login or test.salesforce.com)", .dest = &g_login_url},
        {"sf-token-url", "SF_TOKEN_URL", CONFIG_URL, NULL, 0,
         "Token endpoint host if not the login URL (My Domain)", .dest = &g_token_url},
        {"sf-client-id", "SF_CLIENT_ID", CONFIG_STRING, NULL, 0,
         "Connected app consumer key (JWT iss)", .dest = &g_sf_client_id},
        {"sf-username", "SF_USERNAME", CONFIG_STRING, NULL, 0, "Integration user (JWT sub)",
         .dest = &g_username},
        {"sf-private-key-path", "SF_PRIVATE_KEY_PATH", CONFIG_PATH, NULL, 0,
         "PEM RSA key of the connected app (mode 0600)", .dest = &g_key_path},
        {"sf-api-version", "SF_API_VERSION", CONFIG_STRING, "61.0", 0,
         "Salesforce REST API version", .dest = &g_api_version},
        {"sf-ca-file", "SF_CA_FILE", CONFIG_PATH, NULL, 0, "Extra CA bundle for Salesforce TLS",
         .dest = &g_ca_file},
        {"redis-url", "REDIS_URL", CONFIG_URL, NULL, 0,
         "Redis: the workers' state (read only unless --apply)", .dest = &g_redis_url},
        {"client-id", "SFK_CLIENT_ID", CONFIG_STRING, "sfk-kpis", 0,
         "Sforce-Call-Options client (the bridge drops our own echoes)", .dest = &g_client_id},
        {"llm-url", "SFK_LLM_URL", CONFIG_URL, NULL, 0,
         "OpenAI-compatible chat-completions URL the workers ask (unset: rules only)",
         .dest = &g_llm_url},
        {"llm-model", "SFK_LLM_MODEL", CONFIG_STRING, "gpt-4o-mini", 0,
         "Model asked at SFK_LLM_URL", .dest = &g_llm_model},
        {"llm-timeout", "SFK_LLM_TIMEOUT", CONFIG_DURATION, "2s", 0, "One LLM request",
         .dest = &g_llm_timeout_ms, .min = 10, .max = 60000},
        {"llm-api-key", "SFK_LLM_API_KEY", CONFIG_STRING, NULL, CONFIG_SECRET,
         "Bearer token for SFK_LLM_URL", .dest = &g_llm_key},
};

struct wlrun {
	const struct workload_ops *ops;
	struct wl_ctx ctx;
	struct sf_auth *auth;
	struct sf_token_cache *tokens;
	struct sf_quota *quota;
	struct sf_rest *rest;
	struct redis *redis;
	int inited;
};

void wlrun_add_config(struct config *cfg)
{
	config_add_table(cfg, table, sizeof table / sizeof table[0]);
	for (size_t i = 0; workload_registry[i]; i++)
		if (workload_registry[i]->config)
			config_add_table(cfg, workload_registry[i]->config,
			                 workload_registry[i]->nconfig);
}

static int64_t wall_ms(void)
{
	return krange_now_ms();
}

void wlrun_free(struct wlrun **pw)
{
	struct wlrun *w = pw ? *pw : NULL;
	if (!w)
		return;
	if (w->inited && w->ops && w->ops->fini)
		w->ops->fini(&w->ctx);
	sf_rest_free(&w->rest);
	sf_quota_free(&w->quota);
	sf_token_free(&w->tokens);
	sf_auth_free(&w->auth);
	redis_free(w->redis);
	free(w);
	*pw = NULL;
}

struct wlrun *wlrun_new(struct config *cfg, const char *workload, const char *topic_prefix,
                        bool dry, bool offline, int *status, char *errstr, size_t errlen)
{
	struct wlrun *w = xcalloc(1, sizeof *w);
	char err[1024];

	*status = 2;
	if (workload && !(w->ops = workload_find(workload))) {
		snprintf(errstr, errlen, "unknown workload '%s'", workload ? workload : "");
		goto fail;
	}
	if (!g_redis_url && workload) {
		snprintf(errstr, errlen, "REDIS_URL (--redis-url) is not set");
		goto fail;
	}
	if (!offline && (!g_sf_client_id || !g_username || !g_key_path)) {
		snprintf(errstr, errlen,
		         "Salesforce settings missing: SF_CLIENT_ID, SF_USERNAME and "
		         "SF_PRIVATE_KEY_PATH (or --offline)");
		goto fail;
	}
	*status = 1;
	if (g_redis_url && !(w->redis = redis_connect_url(g_redis_url, NULL, err, sizeof err))) {
		snprintf(errstr, errlen, "redis: %s", err);
		goto fail;
	}
	if (!offline) {
		struct sf_auth_conf ac = {.login_url = g_login_url,
		                          .token_url = g_token_url,
		                          .client_id = g_sf_client_id,
		                          .username = g_username,
		                          .key_path = g_key_path,
		                          .ca_file = g_ca_file};
		if (!(w->auth = sf_auth_new(&ac, err, sizeof err))) {
			snprintf(errstr, errlen, "salesforce auth: %s", err);
			goto fail;
		}
		struct sf_token_conf tc = {.auth = w->auth, .redis_url = g_redis_url};
		w->tokens = sf_token_new(&tc);
		w->quota = sf_quota_new(0.80, 0.95, 2000);
		struct sf_rest_conf rcf = {.tokens = w->tokens,
		                           .quota = w->quota,
		                           .api_version = g_api_version,
		                           .ca_file = g_ca_file,
		                           .call_client = g_client_id,
		                           .redis_url = g_redis_url};
		if (!(w->rest = sf_rest_new(&rcf, err, sizeof err))) {
			snprintf(errstr, errlen, "salesforce rest: %s", err);
			goto fail;
		}
	}
	w->ctx.client_id = g_client_id;
	w->ctx.topic_prefix = topic_prefix;
	w->ctx.cfg = cfg;
	w->ctx.sf = w->rest;
	w->ctx.redis = w->redis;
	w->ctx.now_ms = wall_ms;
	if (!w->ops) { /* Salesforce (and Redis) clients only */
		*status = 0;
		return w;
	}
	w->ctx.workload_id = w->ops->id;
	if (w->ops->init) {
		int rc = w->ops->init(&w->ctx);
		if (rc != 0) {
			snprintf(errstr, errlen, "workload %s: init failed (status %d)", w->ops->id,
			         rc);
			*status = rc == CONFIG_EXIT_FAIL ? 2 : 1;
			goto fail;
		}
	}
	w->inited = 1;
	if (dry) {
		/* Workloads whose decide() writes Redis have a dry-run switch;
		 * template_suggest's decide() only reads. */
		if (strcmp(w->ops->id, "lead.route") == 0 && route_dry_run(&w->ctx) != 0) {
			snprintf(errstr, errlen, "lead.route: no dry run");
			goto fail;
		}
		if (strcmp(w->ops->id, "lead.first_touch_detect") == 0 &&
		    first_touch_dry_run(&w->ctx) != 0) {
			snprintf(errstr, errlen, "lead.first_touch_detect: no dry run");
			goto fail;
		}
	}
	*status = 0;
	return w;
fail:
	wlrun_free(&w);
	return NULL;
}

struct wl_ctx *wlrun_ctx(struct wlrun *w)
{
	return &w->ctx;
}

enum sfk_err wlrun_decide(struct wlrun *w, const struct wl_event *ev, size_t n,
                          struct wl_decision *out)
{
	memset(out, 0, n * sizeof *out);
	return w->ops->decide(&w->ctx, ev, n, out);
}

void wlrun_clear(struct wl_decision *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		json_decref(out[i].write);
		json_decref(out[i].decision);
		json_decref(out[i].facts);
		memset(&out[i], 0, sizeof out[i]);
	}
}

const char *wlrun_action_name(enum wl_action a)
{
	switch (a) {
	case WL_WRITE: return "write";
	case WL_DLQ: return "dlq";
	case WL_RETRY: return "retry";
	case WL_SKIP:
	default: return "skip";
	}
}

enum sfk_err wlrun_apply(struct wlrun *w, const struct wl_event *ev, size_t n,
                         struct wl_decision *out, size_t *written, char *errstr, size_t errlen)
{
	struct wl_write_result *res = xcalloc(n ? n : 1, sizeof *res);
	struct sf_record_result *rr = xcalloc(n ? n : 1, sizeof *rr);
	size_t *idx = xcalloc(n ? n : 1, sizeof *idx);
	json_t *arr = json_array();
	struct sf_error e;
	enum sfk_err rc = SFK_OK;
	size_t m = 0;

	*written = 0;
	for (size_t i = 0; i < n; i++)
		if (out[i].action == WL_WRITE && out[i].write) {
			json_array_append(arr, out[i].write);
			idx[m++] = i;
		}
	if (m > 0) {
		if (!w->rest) {
			snprintf(errstr, errlen, "no Salesforce client (--offline)");
			rc = SFK_ERR_CONFIG;
			goto out;
		}
		sf_error_clear(&e);
		rc = sf_rest_collection_update(w->rest, arr, 0, SF_REQ_ESSENTIAL, rr, &e);
		if (rc != SFK_OK) {
			snprintf(errstr, errlen, "collections update: %s %s", e.code, e.message);
			goto out;
		}
		for (size_t k = 0; k < m; k++) {
			struct wl_write_result *r = &res[idx[k]];
			r->attempted = 1;
			r->success = rr[k].success;
			r->error = rr[k].error;
			if (rr[k].success)
				(*written)++;
			else if (rc == SFK_OK) {
				rc = rr[k].error.err ? rr[k].error.err : SFK_ERR_SF_PERMANENT;
				snprintf(errstr, errlen, "record %s: %s %s", rr[k].id,
				         rr[k].error.code, rr[k].error.message);
			}
		}
	}
	if (w->ops->after_write)
		w->ops->after_write(&w->ctx, ev, n, out, res);
	for (size_t i = 0; rc == SFK_OK && i < n; i++)
		if (out[i].action == WL_DLQ || out[i].action == WL_RETRY) {
			rc = out[i].err ? out[i].err : SFK_ERR_SF_PERMANENT;
			snprintf(errstr, errlen, "%s: %s", out[i].errcode, out[i].errmsg);
		}
out:
	json_decref(arr);
	free(idx);
	free(rr);
	free(res);
	return rc;
}

json_t *wlrun_decision_json(const char *workload, const struct wl_event *ev,
                            const struct wl_decision *d)
{
	json_t *o =
	        json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s, s:s}", "workload", workload,
	                  "event_id", ev->event_id, "entity", ev->entity, "change_type",
	                  ev->change_type, "record_id", ev->record_id, "lead_id",
	                  d->lead_id[0] ? d->lead_id : NULL, "action", wlrun_action_name(d->action),
	                  "outcome", d->outcome[0] ? d->outcome : wlrun_action_name(d->action));
	if (ev->topic) {
		json_object_set_new(o, "topic", json_string(ev->topic));
		json_object_set_new(o, "partition", json_integer(ev->partition));
		json_object_set_new(o, "offset", json_integer(ev->offset));
	}
	json_object_set(o, "decision", d->decision ? d->decision : json_null());
	if (d->write) {
		/* what would be written, without the Collections attributes */
		json_t *wr = json_deep_copy(d->write);
		json_object_del(wr, "attributes");
		json_object_set_new(o, "write", wr);
	}
	if (d->policy_version[0])
		json_object_set_new(o, "policy_version", json_string(d->policy_version));
	if (d->action == WL_DLQ || d->action == WL_RETRY)
		json_object_set_new(o, "error",
		                    json_pack("{s:s, s:s, s:s}", "class",
		                              sfk_err_class_str(sfk_err_class(d->err)), "code",
		                              d->errcode, "message", d->errmsg));
	return o;
}

json_t *wlrun_envelope(const char *entity, json_t *rest, int64_t now_ms, char *errstr,
                       size_t errlen)
{
	json_t *env = normalize_snapshot(entity, rest, 0, now_ms, errstr, errlen);
	if (env)
		json_object_set_new(env, "change_type", json_string("CREATE"));
	return env;
}
