/*
 * notify.c - `sfk notify test --target NAME`: send one test message to a
 * notify.webhook target of policies/notifications.json, the way the worker
 * would (same payload format, signature, headers: workers/notify_*.c), and
 * print the HTTP status. One attempt, no retries: the operator sees what the
 * target answers right now. Exit 0 on 2xx, 1 otherwise, 2 on usage errors.
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "notify.h"
#include "notify_send.h"
#include "xmem.h"

int cmd_notify(int argc, char **argv); /* declared here: cli.h is shared */

static const char *g_policy, *g_schema, *g_target;
static bool g_json;

static const struct config_entry table[] = {
        {"target", NULL, CONFIG_STRING, NULL, 0, "Target name in the policy", .dest = &g_target},
        {"policy", "SFK_NOTIFY_POLICY", CONFIG_STRING, "policies/notifications.json", 0,
         "Notifications policy (URLs and secrets from the variables it names)", .dest = &g_policy},
        {"schema", "SFK_NOTIFY_POLICY_SCHEMA", CONFIG_STRING, "schemas/notifications.schema.json",
         0, "JSON Schema of the policy", .dest = &g_schema},
        CLI_ENTRY_JSON(&g_json),
};

int cmd_notify(int argc, char **argv)
{
	struct config *cfg = NULL;
	struct notify_policy *p = NULL;
	struct notify_sender *s = NULL;
	json_t *problems = NULL, *env = NULL, *v;
	char *body = NULL, eid[64];
	struct notify_job job;
	size_t i;
	int ti, rc = cli_config(&cfg, "sfk notify", "test --target NAME [options]", table,
	                        sizeof table / sizeof table[0], argc, argv);

	if (rc != CONFIG_RUN)
		goto out;
	rc = CLI_USAGE;
	if (config_nargs(cfg) != 1 || strcmp(config_arg(cfg, 0), "test") != 0 || !g_target) {
		fprintf(stderr, "sfk notify: usage: sfk notify test --target NAME (see --help)\n");
		goto out;
	}
	rc = CLI_FAIL;
	/* Only the tested target's variables must be set. */
	if (!(p = notify_policy_load(g_policy, g_schema, 0, &problems))) {
		json_array_foreach(problems, i, v)
		        fprintf(stderr, "sfk notify: %s: %s\n", g_policy, json_string_value(v));
		goto out;
	}
	if ((ti = notify_policy_target(p, g_target)) < 0) {
		fprintf(stderr, "sfk notify: no target named \"%s\" in %s\n", g_target, g_policy);
		rc = CLI_USAGE;
		goto out;
	}
	if (notify_target_resolve(&p->targets[ti], &problems) != 0) {
		json_array_foreach(problems, i, v)
		        fprintf(stderr, "sfk notify: %s: %s\n", g_policy, json_string_value(v));
		goto out;
	}
	/* One attempt: a test shows the target's answer, not our retry policy. */
	p->targets[ti].max_attempts = 1;
	snprintf(eid, sizeof eid, "test:%s:%lld", g_target, (long long)time(NULL));
	env = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:{s:s, s:s}}", "envelope_version", 1,
	                "event_id", eid, "kind", "test", "entity", "Lead", "change_type", "TEST",
	                "record_id", "00Q000000000000", "commit_timestamp",
	                (json_int_t)time(NULL) * 1000, "fields", "Message",
	                "sfk notify test: if you read this, delivery works", "Target", g_target);
	memset(&job, 0, sizeof job);
	job.target = ti;
	if (notify_delivery_id(eid, g_target, job.delivery_id, sizeof job.delivery_id) != 0 ||
	    !(body = notify_render(&p->targets[ti], env, NULL, job.delivery_id, &job.len))) {
		fprintf(stderr, "sfk notify: could not build the test message\n");
		goto out;
	}
	job.body = body;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	s = notify_sender_new(p, "sfk-notify-test/" SFK_VERSION);
	notify_sender_run(s, &job, 1, p->targets[ti].timeout_ms + 5000, NULL);
	if (g_json) {
		json_t *r =
		        json_pack("{s:s, s:s, s:I, s:b, s:s}", "target", g_target, "delivery_id",
		                  job.delivery_id, "status", (json_int_t)job.status, "delivered",
		                  job.result == NOTIFY_DELIVERED, "reason", job.reason);
		cli_print_json(r);
		json_decref(r);
	} else if (job.status > 0)
		printf("HTTP %ld target=%s delivery=%s\n", job.status, g_target, job.delivery_id);
	else
		printf("no HTTP answer target=%s delivery=%s: %s\n", g_target, job.delivery_id,
		       job.reason);
	rc = job.result == NOTIFY_DELIVERED ? CLI_OK : CLI_FAIL;
	notify_sender_free(&s);
	curl_global_cleanup();
out:
	free(body);
	json_decref(env);
	json_decref(problems);
	notify_policy_free(&p);
	config_free(&cfg);
	return rc;
}
