/*
 * doctor.c - `sfk doctor`: checks the whole set-up and prints one line per
 * check, each failure with its fix: JWT login, object access, the custom
 * fields the workers write (describe), CDC subscriptions (CometD), Kafka
 * topics, Redis, the policies and the API usage headroom. Checks that need
 * an earlier one (a token) are skipped, not failed, when it failed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cdcprobe.h"
#include "cli.h"
#include "policy.h"
#include "redis.h"
#include "sf_auth.h"
#include "sf_rest.h"
#include "sf_token.h"
#include "topics.h"
#include "xmem.h"

/* The Lead fields the workers write (DESIGN.md section 2) and their
 * describe types. */
static const struct {
	const char *name, *type;
} lead_fields[] = {
        {"Owner_Assigned_At__c", "datetime"},     {"Assignment_Latency_Minutes__c", "double"},
        {"Routing_Reason__c", "string"},          {"Routing_Policy_Version__c", "string"},
        {"First_Response_At__c", "datetime"},     {"First_Response_User__c", "reference"},
        {"First_Response_Source__c", "picklist"}, {"Time_to_First_Response__c", "double"},
        {"Template_Recommended__c", "string"},    {"Template_Applied__c", "boolean"},
};

static const char *g_login_url, *g_token_url, *g_sf_client_id, *g_username, *g_key_path,
        *g_api_version, *g_ca_file, *g_redis_url, *g_bootstrap, *g_prefix, *g_policies, *g_channels,
        *g_extra_fields, *g_extra, *g_wl_policy, *g_group_prefix, *g_client_id;
static long long g_partitions, g_timeout, g_headroom;
static bool g_json;

static const struct config_entry table[] = {
        {"sf-login-url", "SF_LOGIN_URL", CONFIG_URL, "https://login.salesforce.com", 0,
         "JWT audience (login or test.salesforce.com)", .dest = &g_login_url},
        {"sf-token-url", "SF_TOKEN_URL", CONFIG_URL, NULL, 0,
         "Token endpoint host if not the login URL (My Domain)", .dest = &g_token_url},
        {"sf-client-id", "SF_CLIENT_ID", CONFIG_STRING, NULL, 0,
         "Connected app consumer key (JWT iss)", .dest = &g_sf_client_id},
        {"sf-username", "SF_USERNAME", CONFIG_STRING, NULL, 0, "Integration user (JWT sub)",
         .dest = &g_username},
        {"sf-private-key-path", "SF_PRIVATE_KEY_PATH", CONFIG_STRING, NULL, 0,
         "PEM RSA key of the connected app (mode 0600)", .dest = &g_key_path},
        {"sf-api-version", "SF_API_VERSION", CONFIG_STRING, "61.0", 0, "Salesforce API version",
         .dest = &g_api_version},
        {"sf-ca-file", "SF_CA_FILE", CONFIG_STRING, NULL, 0, "Extra CA bundle for Salesforce TLS",
         .dest = &g_ca_file},
        {"client-id", "SFK_CLIENT_ID", CONFIG_STRING, "sfk-kpis", 0,
         "Our Sforce-Call-Options client id", .dest = &g_client_id},
        {"redis-url", "REDIS_URL", CONFIG_STRING, NULL, 0, "Redis", .dest = &g_redis_url},
        CLI_ENTRY_BOOTSTRAP(&g_bootstrap),
        CLI_ENTRY_PREFIX(&g_prefix),
        {"partitions", "SFK_TOPIC_PARTITIONS", CONFIG_INT, "6", 0,
         "Fewest partitions each topic should have", .dest = &g_partitions, .min = 1, .max = 10000},
        {"extra-entities", "SFK_CDC_EXTRA_ENTITIES", CONFIG_STRING, NULL, 0,
         "More CDC entities besides lead,task,emailmessage", .dest = &g_extra},
        {"workloads-policy", "SFK_WORKLOADS_POLICY", CONFIG_STRING, "policies/workloads.json", 0,
         "Fan-out rules (workload ids)", .dest = &g_wl_policy},
        {"group-prefix", "SFK_GROUP_PREFIX", CONFIG_STRING, "sfk.", 0,
         "Workers' consumer groups are <prefix><workload>", .dest = &g_group_prefix},
        {"policies", "SFK_DOCTOR_POLICIES", CONFIG_STRING,
         "policies/workloads.json,policies/routing_policy.json,policies/templates.json", 0,
         "Policy files to validate (comma-separated)", .dest = &g_policies},
        {"channels", "SFK_BRIDGE_CHANNELS", CONFIG_STRING,
         "/data/LeadChangeEvent,/data/TaskChangeEvent,/data/EmailMessageChangeEvent", 0,
         "CDC channels the bridge subscribes to", .dest = &g_channels},
        {"extra-fields", "SFK_DOCTOR_EXTRA_FIELDS", CONFIG_STRING, NULL, 0,
         "More required Lead fields as Name:type (comma-separated, e.g. Score__c:double)",
         .dest = &g_extra_fields},
        {"min-api-headroom", "SFK_DOCTOR_MIN_API_HEADROOM", CONFIG_INT, "10", 0,
         "Fail when less than this percentage of DailyApiRequests remains", .dest = &g_headroom,
         .min = 0, .max = 100},
        {"timeout", "SFK_CLI_TIMEOUT", CONFIG_DURATION, "10s", 0, "Budget of each check",
         .dest = &g_timeout, .min = 100, .max = 600000},
        CLI_ENTRY_JSON(&g_json),
};

struct doctor {
	json_t *lines; /* [{check, status: ok|FAIL|skip, detail, fix?}] */
	int failed;
	struct sf_auth *auth;
	struct sf_token_cache *tokens;
	struct sf_rest *rest;
	struct sf_auth_token tok;
	int logged_in;
};

static void __attribute__((format(printf, 5, 6)))
line(struct doctor *d, const char *check, const char *status, const char *fix, const char *fmt, ...)
{
	va_list ap;
	char detail[4096];
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	json_t *o =
	        json_pack("{s:s, s:s, s:s}", "check", check, "status", status, "detail", detail);
	if (fix)
		json_object_set_new(o, "fix", json_string(fix));
	json_array_append_new(d->lines, o);
	if (strcmp(status, "FAIL") == 0)
		d->failed++;
	if (!g_json) {
		/* stream the lines: a slow check should not hide the earlier results */
		printf("%-4s  %-22s %s\n", status, check, detail);
		if (fix)
			printf("      %-22s fix: %s\n", "", fix);
		fflush(stdout);
	}
}

/* ---- Salesforce ----------------------------------------------------------- */

static const char *grant_fix(const struct sf_error *e)
{
	if (strstr(e->message, "approved") || strstr(e->message, "user"))
		return "pre-authorize the integration user for the connected app (Manage Connected "
		       "Apps > Admin approved users; assign the sfk permission set from sf/)";
	if (strstr(e->message, "client") || strcmp(e->code, "invalid_client_id") == 0)
		return "SF_CLIENT_ID must be the connected app's consumer key";
	if (strstr(e->message, "udience"))
		return "SF_LOGIN_URL is the JWT audience: https://login.salesforce.com, or "
		       "https://test.salesforce.com for a sandbox";
	if (strstr(e->message, "expired") || strstr(e->message, "assertion"))
		return "check the clock of this host (JWT exp) and that the connected app holds "
		       "the "
		       "certificate of SF_PRIVATE_KEY_PATH";
	return "check SF_CLIENT_ID, SF_USERNAME and the connected app's certificate";
}

static void check_login(struct doctor *d)
{
	char err[512];
	struct sf_error e;
	if (!g_sf_client_id || !g_username || !g_key_path) {
		line(d, "salesforce.login", "FAIL",
		     "set SF_CLIENT_ID, SF_USERNAME and SF_PRIVATE_KEY_PATH",
		     "Salesforce settings missing:%s%s%s", g_sf_client_id ? "" : " SF_CLIENT_ID",
		     g_username ? "" : " SF_USERNAME", g_key_path ? "" : " SF_PRIVATE_KEY_PATH");
		return;
	}
	struct sf_auth_conf ac = {
	        .login_url = g_login_url,
	        .token_url = g_token_url,
	        .client_id = g_sf_client_id,
	        .username = g_username,
	        .key_path = g_key_path,
	        .ca_file = g_ca_file,
	        .timeout_ms = (long)g_timeout,
	};
	if (!(d->auth = sf_auth_new(&ac, err, sizeof err))) {
		line(d, "salesforce.login", "FAIL",
		     "SF_PRIVATE_KEY_PATH must be the connected app's PEM RSA key, mode 0600 "
		     "(chmod 600)",
		     "%s", err);
		return;
	}
	enum sfk_err rc = sf_auth_mint(d->auth, &d->tok, &e);
	if (rc != SFK_OK) {
		const char *fix =
		        rc == SFK_ERR_GRANT
		                ? grant_fix(&e)
		                : "check SF_TOKEN_URL/SF_LOGIN_URL, the network and SF_CA_FILE";
		line(d, "salesforce.login", "FAIL", fix, "JWT login as %s failed: %s%s%s",
		     g_username, e.code, e.code[0] ? ": " : "", e.message);
		return;
	}
	d->logged_in = 1;
	line(d, "salesforce.login", "ok", NULL, "JWT login as %s (instance %s)", g_username,
	     d->tok.instance_url);
	struct sf_token_conf tc = {.auth = d->auth};
	d->tokens = sf_token_new(&tc);
	struct sf_rest_conf rc_ = {
	        .tokens = d->tokens,
	        .api_version = g_api_version,
	        .ca_file = g_ca_file,
	        .call_client = g_client_id,
	        .timeout_ms = (long)g_timeout,
	        .retry_total_ms = (long)g_timeout,
	};
	if (!(d->rest = sf_rest_new(&rc_, err, sizeof err)))
		line(d, "salesforce.rest", "FAIL", "check SF_API_VERSION", "%s", err);
}

/* Lead describe (new reference) for the field check, or NULL. */
static json_t *check_objects(struct doctor *d)
{
	static const char *const objs[] = {"Lead", "Task", "EmailMessage"};
	json_t *lead = NULL;
	if (!d->rest) {
		line(d, "salesforce.objects", "skip", NULL, "needs a Salesforce login");
		return NULL;
	}
	for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) {
		json_t *desc = NULL;
		struct sf_error e;
		char check[64], fix[256];
		snprintf(check, sizeof check, "salesforce.%s", objs[i]);
		if (sf_rest_describe(d->rest, objs[i], &desc, &e) != SFK_OK) {
			snprintf(fix, sizeof fix,
			         "give the integration user Read on %s (the sfk permission set in "
			         "sf/)",
			         objs[i]);
			line(d, check, "FAIL", fix, "describe %s: %s %s", objs[i], e.code,
			     e.message);
			continue;
		}
		line(d, check, "ok", NULL, "%s visible (%zu fields)", objs[i],
		     json_array_size(json_object_get(desc, "fields")));
		if (i == 0)
			lead = desc;
		else
			json_decref(desc);
	}
	return lead;
}

static void check_field(struct doctor *d, json_t *fields, const char *name, const char *type)
{
	char fix[512];
	size_t i;
	json_t *f, *found = NULL;
	json_array_foreach(fields, i, f)
	{
		const char *fname = json_string_value(json_object_get(f, "name"));
		if (fname && strcmp(fname, name) == 0)
			found = f;
	}
	if (!found) {
		snprintf(fix, sizeof fix,
		         "deploy the custom field Lead.%s (type %s) from sf/ (sf project deploy "
		         "start "
		         "--source-dir sf) and grant the integration user edit access to it",
		         name, type);
		line(d, "salesforce.fields", "FAIL", fix, "Lead.%s is missing", name);
		return;
	}
	const char *have = json_string_value(json_object_get(found, "type"));
	if (!have)
		have = "?";
	/* a long text area holds what a text field does */
	if (strcmp(have, type) != 0 &&
	    !(strcmp(type, "string") == 0 && strcmp(have, "textarea") == 0)) {
		snprintf(fix, sizeof fix, "change Lead.%s to type %s (as in sf/)", name, type);
		line(d, "salesforce.fields", "FAIL", fix, "Lead.%s has type %s, want %s", name,
		     have, type);
		return;
	}
	if (json_is_false(json_object_get(found, "updateable"))) {
		snprintf(fix, sizeof fix,
		         "grant the integration user edit access to Lead.%s (field-level security)",
		         name);
		line(d, "salesforce.fields", "FAIL", fix, "Lead.%s is not updateable", name);
	}
}

static void check_fields(struct doctor *d, json_t *lead)
{
	if (!lead) {
		line(d, "salesforce.fields", "skip", NULL, "needs the Lead describe");
		return;
	}
	json_t *fields = json_object_get(lead, "fields");
	int before = d->failed;
	size_t n = sizeof lead_fields / sizeof lead_fields[0];
	for (size_t i = 0; i < n; i++)
		check_field(d, fields, lead_fields[i].name, lead_fields[i].type);
	json_t *extra = cli_split(g_extra_fields);
	size_t i;
	json_t *v;
	json_array_foreach(extra, i, v)
	{
		char *spec = xstrdup(json_string_value(v));
		char *colon = strchr(spec, ':');
		if (colon)
			*colon = '\0';
		check_field(d, fields, spec, colon ? colon + 1 : "string");
		free(spec);
		n++;
	}
	json_decref(extra);
	if (d->failed == before)
		line(d, "salesforce.fields", "ok", NULL,
		     "all %zu Lead fields the workers write exist with the right type", n);
}

static void check_cdc(struct doctor *d)
{
	char err[512];
	json_t *chans = cli_split(g_channels);
	if (!d->logged_in) {
		line(d, "salesforce.cdc", "skip", NULL, "needs a Salesforce login");
		goto out;
	}
	json_t *res = cdcprobe_run(d->tok.instance_url, d->tok.access_token, g_api_version,
	                           g_ca_file, chans, (long)g_timeout, err, sizeof err);
	if (!res) {
		line(d, "salesforce.cdc", "FAIL",
		     "the integration user needs the API Enabled and View All Data (or the CDC "
		     "entity's read) permissions",
		     "CometD: %s", err);
		goto out;
	}
	size_t i, ok = 0;
	json_t *r;
	json_array_foreach(res, i, r)
	{
		if (json_is_true(json_object_get(r, "ok"))) {
			ok++;
			continue;
		}
		char fix[512];
		snprintf(fix, sizeof fix,
		         "select the entity for Change Data Capture (Setup > Change Data Capture, "
		         "or "
		         "the channel members in sf/) and give the user read access");
		line(d, "salesforce.cdc", "FAIL", fix, "subscribe %s: %s",
		     json_string_value(json_object_get(r, "channel")),
		     json_string_value(json_object_get(r, "error")));
	}
	if (ok == json_array_size(res))
		line(d, "salesforce.cdc", "ok", NULL, "subscribed to %zu channel(s) with replay -1",
		     ok);
	json_decref(res);
out:
	json_decref(chans);
}

static void check_limits(struct doctor *d)
{
	json_t *lim = NULL;
	struct sf_error e;
	if (!d->rest) {
		line(d, "salesforce.limits", "skip", NULL, "needs a Salesforce login");
		return;
	}
	if (sf_rest_limits(d->rest, &lim, &e) != SFK_OK) {
		line(d, "salesforce.limits", "FAIL",
		     "the integration user needs View Setup to read /limits", "GET /limits: %s %s",
		     e.code, e.message);
		return;
	}
	json_t *day = json_object_get(lim, "DailyApiRequests");
	long long max = json_integer_value(json_object_get(day, "Max"));
	long long rem = json_integer_value(json_object_get(day, "Remaining"));
	if (max <= 0) {
		line(d, "salesforce.limits", "FAIL", "check the API version (SF_API_VERSION)",
		     "/limits has no DailyApiRequests");
	} else if (rem * 100 < g_headroom * max) {
		line(d, "salesforce.limits", "FAIL",
		     "wait for the rolling 24 h window, buy more API calls, or lower the workers' "
		     "quota share",
		     "DailyApiRequests: %lld of %lld remaining (%.1f%%, want >= %lld%%)", rem, max,
		     100.0 * (double)rem / (double)max, g_headroom);
	} else {
		line(d, "salesforce.limits", "ok", NULL,
		     "DailyApiRequests: %lld of %lld remaining (%.1f%%)", rem, max,
		     100.0 * (double)rem / (double)max);
	}
	json_decref(lim);
}

/* ---- Kafka, Redis, policies --------------------------------------------------- */

static void check_kafka(struct doctor *d)
{
	char err[1024];
	if (!g_bootstrap) {
		line(d, "kafka", "FAIL", "set KAFKA_BOOTSTRAP_SERVERS",
		     "no Kafka brokers configured");
		return;
	}
	struct topics_conf tc = {.prefix = g_prefix,
	                         .extra_entities = g_extra,
	                         .workloads_policy = g_wl_policy,
	                         .group_prefix = g_group_prefix};
	json_t *exp = topics_expected(&tc);
	json_t *st = topics_inspect(g_bootstrap, exp, (int)g_timeout, false, err, sizeof err);
	if (!st) {
		line(d, "kafka", "FAIL",
		     "start Kafka or fix KAFKA_BOOTSTRAP_SERVERS (and KAFKA_* TLS/SASL settings)",
		     "%s", err);
		goto out;
	}
	size_t i, bad = 0;
	json_t *t;
	char *missing = NULL;
	json_array_foreach(st, i, t)
	{
		char p[256];
		topics_problem(t, g_partitions, p, sizeof p);
		if (!p[0])
			continue;
		bad++;
		char fix[256];
		if (strcmp(p, "missing") == 0) {
			/* one line for all of them: the fix is the same */
			const char *name = json_string_value(json_object_get(t, "name"));
			char *m = xasprintf("%s%s%s", missing ? missing : "", missing ? ", " : "",
			                    name);
			free(missing);
			missing = m;
			continue;
		} else if (strncmp(p, "cleanup", 7) == 0)
			snprintf(fix, sizeof fix,
			         "kafka-configs --alter --entity-type topics --entity-name %s "
			         "--add-config cleanup.policy=%s",
			         json_string_value(json_object_get(t, "name")),
			         json_string_value(json_object_get(t, "cleanup.policy")));
		else
			snprintf(fix, sizeof fix,
			         "kafka-topics --alter --topic %s --partitions %lld (keys move: "
			         "drain "
			         "first)",
			         json_string_value(json_object_get(t, "name")), g_partitions);
		line(d, "kafka.topics", "FAIL", fix, "%s: %s",
		     json_string_value(json_object_get(t, "name")), p);
	}
	if (missing)
		line(d, "kafka.topics", "FAIL", "sfk topics create", "missing topics: %s", missing);
	free(missing);
	if (!bad)
		line(d, "kafka.topics", "ok", NULL,
		     "Kafka at %s: all %zu topics present (>= %lld partitions, cleanup.policy "
		     "right)",
		     g_bootstrap, json_array_size(st), g_partitions);
	json_decref(st);
out:
	json_decref(exp);
}

static void check_redis(struct doctor *d)
{
	char err[512];
	if (!g_redis_url) {
		line(d, "redis", "FAIL", "set REDIS_URL (redis://host:6379/0)",
		     "REDIS_URL is not set");
		return;
	}
	struct redis_opts o = {.connect_timeout_ms = (int)g_timeout,
	                       .command_timeout_ms = (int)g_timeout};
	struct redis *r = redis_connect_url(g_redis_url, &o, err, sizeof err);
	redisReply *rep = r ? redis_cmd(r, "PING") : NULL;
	if (!rep)
		line(d, "redis", "FAIL", "start Redis or fix REDIS_URL (host, port, password, db)",
		     "%s", r ? redis_errstr(r) : err);
	else
		line(d, "redis", "ok", NULL, "Redis answers PING");
	if (rep)
		freeReplyObject(rep);
	redis_free(r);
}

static void check_policies(struct doctor *d)
{
	json_t *files = cli_split(g_policies);
	size_t i, j;
	json_t *f, *e;
	json_array_foreach(files, i, f)
	{
		const char *path = json_string_value(f);
		json_t *r = policy_check_file(path, NULL, "schemas", NULL);
		json_t *errs = json_object_get(r, "errors");
		if (json_array_size(errs) == 0) {
			line(d, "policies", "ok", NULL, "%s validates", path);
		} else {
			char fix[512];
			snprintf(fix, sizeof fix, "correct %s (sfk policy check %s)", path, path);
			json_array_foreach(errs, j, e) line(d, "policies", "FAIL", fix, "%s: %s",
			                                    path, json_string_value(e));
		}
		json_decref(r);
	}
	json_decref(files);
}

int cmd_doctor(int argc, char **argv)
{
	struct config *cfg = NULL;
	struct doctor d = {.lines = json_array()};
	int rc = cli_config(&cfg, "sfk doctor", "[options]", table, sizeof table / sizeof table[0],
	                    argc, argv);
	if (rc != CONFIG_RUN)
		goto out;
	check_login(&d);
	json_t *lead = check_objects(&d);
	check_fields(&d, lead);
	json_decref(lead);
	check_cdc(&d);
	check_limits(&d);
	check_kafka(&d);
	check_redis(&d);
	check_policies(&d);
	if (g_json)
		cli_print_json(d.lines);
	else
		printf("%d problem(s)\n", d.failed);
	rc = d.failed ? CLI_FAIL : CLI_OK;
out:
	sf_rest_free(&d.rest);
	sf_token_free(&d.tokens);
	sf_auth_token_clear(&d.tok);
	sf_auth_free(&d.auth);
	json_decref(d.lines);
	config_free(&cfg);
	return rc;
}
