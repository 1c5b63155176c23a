/*
 * decide.c - `sfk decide --workload W --lead-id ID [--apply]`: fetches the
 * Lead over REST, runs one workload's decision on it as on a new Lead (the
 * envelope the bridge would produce for its CREATE) and prints the decision
 * with its reason. A dry run unless --apply: nothing is written to
 * Salesforce or Redis (wlrun.h). With --apply the decision is made for real
 * (lead.route advances the shared round robin) and its write is sent once;
 * a second --apply finds the Lead already routed by the policy version and
 * writes nothing. lead.first_touch_detect decides over the Lead and its
 * closed Tasks and related emails together (it answers those, not the Lead).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "krange.h"
#include "loop.h"
#include "sf_rest.h"
#include "sfid.h"
#include "wlrun.h"
#include "xmem.h"

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
	printf("%-9s %s\n", json_string_value(json_object_get(o, "entity")),
	       json_string_value(json_object_get(o, "record_id")));
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

/* Add an envelope for a REST record (borrowed) to envs. 0 or -1 (err). */
static int add_env(json_t *envs, const char *entity, json_t *rec, char *err, size_t len)
{
	json_t *env = wlrun_envelope(entity, rec, krange_now_ms(), err, len);
	if (!env)
		return -1;
	json_array_append_new(envs, env);
	return 0;
}

/*
 * lead.first_touch_detect answers Tasks and emails, not the Lead alone: its
 * closed Tasks (WhoId) and the emails related to it (EmailMessageRelation)
 * are decided in the same batch, as CREATEs. The worker reads what their
 * envelopes lack. lead18 is a validated id, safe inside SOQL.
 */
static int add_responses(struct sf_rest *sf, const char *lead18, json_t *envs, char *err,
                         size_t len)
{
	static const char *const q[] = {
	        "SELECT Id, WhoId, Type, TaskSubtype, IsClosed, Status, CompletedDateTime, "
	        "CreatedDate, OwnerId, CreatedById FROM Task WHERE WhoId = '",
	        "SELECT Id, EmailMessageId FROM EmailMessageRelation WHERE RelationId = '"};
	for (size_t i = 0; i < 2; i++) {
		char soql[512];
		struct sf_query *it = NULL;
		struct sf_error se;
		json_t *rec;
		enum sfk_err e;
		snprintf(soql, sizeof soql, "%s%s'", q[i], lead18);
		sf_error_clear(&se);
		e = sf_query_open(sf, soql, &it, &se);
		while (e == SFK_OK && (e = sf_query_next(it, &rec, &se)) == SFK_OK && rec) {
			if (i == 0 && add_env(envs, "Task", rec, err, len) != 0)
				e = SFK_ERR_INVALID;
			if (i == 1) {
				json_t *em = json_pack("{s:O?}", "Id",
				                       json_object_get(rec, "EmailMessageId"));
				if (add_env(envs, "EmailMessage", em, err, len) != 0)
					e = SFK_ERR_INVALID;
				json_decref(em);
			}
		}
		sf_query_free(&it);
		if (e != SFK_OK) {
			if (e != SFK_ERR_INVALID)
				snprintf(err, len, "%s: %s %s", i ? "EmailMessageRelation" : "Task",
				         se.code, se.message);
			return -1;
		}
	}
	return 0;
}

int cmd_decide(int argc, char **argv)
{
	struct config *cfg = config_new("sfk decide", table, sizeof table / sizeof table[0]);
	struct wlrun *w = NULL;
	json_t *rec = NULL, *envs = json_array(), *lines = json_array(), *top = NULL;
	struct wl_decision *d = NULL;
	struct wl_event *ev = NULL;
	struct sf_error se;
	char err[1024], lead18[19];
	size_t n = 0;
	int rc, decided = 0;

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
	if (add_env(envs, "Lead", rec, err, sizeof err) != 0 ||
	    (strcmp(g_workload, "lead.first_touch_detect") == 0 &&
	     add_responses(wlrun_ctx(w)->sf, lead18, envs, err, sizeof err) != 0)) {
		fprintf(stderr, "sfk decide: Lead %s: %s\n", lead18, err);
		goto out;
	}
	n = json_array_size(envs);
	ev = xcalloc(n, sizeof *ev);
	d = xcalloc(n, sizeof *d);
	for (size_t i = 0; i < n; i++) {
		if (loop_parse_event(json_array_get(envs, i), &ev[i], err, sizeof err) != SFK_OK) {
			fprintf(stderr, "sfk decide: Lead %s: %s\n", lead18, err);
			goto out;
		}
		ev[i].key = lead18;
	}
	enum sfk_err e = wlrun_decide(w, ev, n, d);
	decided = 1;
	if (e != SFK_OK) {
		fprintf(stderr, "sfk decide: %s: %s\n", g_workload, sfk_err_str(e));
		goto out;
	}
	/* The answer: the decision that writes, else the Lead's own. */
	size_t main_i = 0;
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(lines, wlrun_decision_json(g_workload, &ev[i], &d[i]));
		if (d[i].action == WL_WRITE && d[main_i].action != WL_WRITE)
			main_i = i;
	}
	top = json_deep_copy(json_array_get(lines, main_i));
	if (n > 1)
		json_object_set(top, "events", lines);
	if (g_apply) {
		size_t written = 0;
		e = wlrun_apply(w, ev, n, d, &written, err, sizeof err);
		json_object_set_new(top, "applied", json_boolean(e == SFK_OK));
		json_object_set_new(top, "written", json_integer((json_int_t)written));
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
		cli_print_json(top);
	else {
		size_t i;
		json_t *l;
		print_human(top);
		json_array_foreach(lines, i, l) if (i != main_i)
		{
			printf("\n");
			print_human(l);
		}
	}
	for (size_t i = 0; i < n; i++)
		if (d[i].action == WL_DLQ || d[i].action == WL_RETRY)
			rc = CLI_FAIL;
out:
	if (decided)
		wlrun_clear(d, n);
	free(d);
	free(ev);
	json_decref(top);
	json_decref(lines);
	json_decref(envs);
	json_decref(rec);
	wlrun_free(&w);
	config_free(&cfg);
	return rc;
}
