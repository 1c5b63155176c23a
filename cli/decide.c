/*
 * decide.c - `sfk decide --workload W --lead-id ID [--apply]`: fetches the
 * Lead over REST, runs one workload's decision on it as on a new Lead (the
 * envelope the bridge would produce for its CREATE) and prints the decision
 * with its reason. A dry run unless --apply: nothing is written to
 * Salesforce or Redis (wlrun.h). With --apply the decision is made for real
 * (lead.route advances the shared round robin) and its write is sent once;
 * a second --apply finds the Lead already routed by the policy version and
 * writes nothing.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "krange.h"
#include "loop.h"
#include "sf_rest.h"
#include "sfid.h"
#include "wlrun.h"

static const char *g_workload, *g_lead, *g_prefix;
static bool g_apply, g_json;

static const struct config_entry table[] = {
        {"workload", NULL, CONFIG_STRING, NULL, 0,
         "Workload id (lead.route, lead.first_touch_detect, outreach.template_suggest)",
         .dest = &g_workload},
        {"lead-id", NULL, CONFIG_STRING, NULL, 0, "The Lead (15 or 18 characters)",
         .dest = &g_lead},
        {"apply", NULL, CONFIG_BOOL, "false", 0,
         "Write the decision to Salesforce (default: print it, write nothing)", .dest = &g_apply},
        CLI_ENTRY_PREFIX(&g_prefix),
        CLI_ENTRY_JSON(&g_json),
};

static void print_human(const json_t *o)
{
	json_t *d = json_object_get(o, "decision");
	const char *k;
	json_t *v;
	printf("workload  %s\n", json_string_value(json_object_get(o, "workload")));
	printf("lead      %s\n", json_string_value(json_object_get(o, "record_id")));
	printf("action    %s (%s)\n", json_string_value(json_object_get(o, "action")),
	       json_string_value(json_object_get(o, "outcome")));
	json_object_foreach(d, k, v)
	{
		char *s = json_is_string(v) ? NULL
		                            : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT |
		                                                    JSON_REAL_PRECISION(6));
		printf("  %-16s %s\n", k, s ? s : json_string_value(v));
		free(s);
	}
	json_object_foreach(json_object_get(o, "write"), k, v)
	{
		char *s = json_is_string(v) ? NULL
		                            : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT |
		                                                    JSON_REAL_PRECISION(6));
		printf("  write %-10s %s\n", k, s ? s : json_string_value(v));
		free(s);
	}
	json_t *e = json_object_get(o, "error");
	if (e)
		printf("error     %s %s\n", json_string_value(json_object_get(e, "code")),
		       json_string_value(json_object_get(e, "message")));
}

int cmd_decide(int argc, char **argv)
{
	struct config *cfg = config_new("sfk decide", table, sizeof table / sizeof table[0]);
	struct wlrun *w = NULL;
	json_t *rec = NULL, *env = NULL, *line = NULL;
	struct wl_decision d;
	struct wl_event ev;
	struct sf_error se;
	char err[1024], lead18[19];
	int rc, decided = 0;

	memset(&d, 0, sizeof d);
	config_set_synopsis(cfg, "--workload W --lead-id ID [--apply] [--json]");
	wlrun_add_config(cfg);
	rc = config_load(cfg, argc, argv);
	if (rc == CONFIG_EXIT_FAIL) {
		fprintf(stderr, "sfk decide: see 'sfk decide --help'\n");
		rc = CLI_USAGE;
	}
	if (rc != CONFIG_RUN)
		goto out;
	rc = CLI_USAGE;
	if (!g_workload || !g_lead) {
		fprintf(stderr, "sfk decide: --workload and --lead-id are required\n");
		goto out;
	}
	if (!sfid_valid(g_lead) || strncmp(g_lead, "00Q", 3) != 0 || sfid_to18(g_lead, lead18)) {
		fprintf(stderr, "sfk decide: --lead-id '%s' is not a Lead id\n", g_lead);
		goto out;
	}
	if (!(w = wlrun_new(cfg, g_workload, g_prefix, !g_apply, false, &rc, err, sizeof err))) {
		fprintf(stderr, "sfk decide: %s\n", err);
		goto out;
	}
	rc = CLI_FAIL;
	sf_error_clear(&se);
	if (sf_rest_get(wlrun_ctx(w)->sf, "Lead", lead18, NULL, &rec, &se) != SFK_OK) {
		fprintf(stderr, "sfk decide: Lead %s: %s %s\n", lead18, se.code, se.message);
		goto out;
	}
	if (!(env = wlrun_envelope("Lead", rec, krange_now_ms(), err, sizeof err)) ||
	    loop_parse_event(env, &ev, err, sizeof err) != SFK_OK) {
		fprintf(stderr, "sfk decide: Lead %s: %s\n", lead18, err);
		goto out;
	}
	ev.key = lead18;
	enum sfk_err e = wlrun_decide(w, &ev, 1, &d);
	decided = 1;
	if (e != SFK_OK) {
		fprintf(stderr, "sfk decide: %s: %s\n", g_workload, sfk_err_str(e));
		goto out;
	}
	line = wlrun_decision_json(g_workload, &ev, &d);
	if (g_apply) {
		size_t written = 0;
		e = wlrun_apply(w, &ev, 1, &d, &written, err, sizeof err);
		json_object_set_new(line, "applied", json_boolean(e == SFK_OK));
		json_object_set_new(line, "written", json_integer((json_int_t)written));
		if (e != SFK_OK)
			fprintf(stderr, "sfk decide: apply failed: %s\n", err);
		else
			fprintf(stderr, "applied: %zu record(s) written to Salesforce\n", written);
		rc = e == SFK_OK ? CLI_OK : CLI_FAIL;
	} else {
		fprintf(stderr, "dry run: nothing written (--apply writes the decision)\n");
		rc = CLI_OK;
	}
	if (g_json)
		cli_print_json(line);
	else
		print_human(line);
	if (d.action == WL_DLQ || d.action == WL_RETRY)
		rc = CLI_FAIL;
out:
	if (decided)
		wlrun_clear(&d, 1);
	json_decref(line);
	json_decref(env);
	json_decref(rec);
	wlrun_free(&w);
	config_free(&cfg);
	return rc;
}
