/*
 * policy_diff.c - `sfk policy diff --old A --new B --from TIME [--to TIME]`:
 * what a new routing policy would change, before it is rolled out. The
 * recorded lead events (Lead CREATE / GAP_CREATE on <prefix>wl.lead.route,
 * or <prefix>cdc.lead with --source cdc) of the time range are read without
 * a consumer group and replayed through both policies, each with its own
 * in-memory round robin (every pointer from 0, daily caps counted per UTC day
 * of the event's commit timestamp). Nothing is written anywhere.
 *
 * The evaluation is lead.route's own (route_evaluate, route_rr_pick; a pool
 * whose members are all capped sends the lead to the region's queue, as the
 * worker does). Leads are replayed in commit-timestamp order (ties by id),
 * each once (redeliveries ignored). Reported: leads whose owner changes,
 * leads per segment/region and per owner under each policy with the share
 * shift, and cap breaches: per policy, UTC day and capped owner, the leads
 * the round robin turned away from that owner because the cap was reached.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "krange.h"
#include "loop.h"
#include "policy.h"
#include "route.h"
#include "sfid.h"
#include "xmem.h"

#define PD_RECORD_MAX (4u * 1024 * 1024) /* one envelope */

static const char *g_old, *g_new, *g_from, *g_to, *g_source, *g_topic, *g_schema, *g_bootstrap,
        *g_prefix;
static long long g_timeout, g_budget;
static bool g_json;

static const char *const sources[] = {"wl", "cdc", NULL};

static const struct config_entry table[] = {
        {"old", NULL, CONFIG_STRING, NULL, 0, "The routing policy in force", .dest = &g_old},
        {"new", NULL, CONFIG_STRING, NULL, 0, "The candidate routing policy", .dest = &g_new},
        {"from", NULL, CONFIG_STRING, NULL, 0,
         "Lead events from: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[.fff]Z", .dest = &g_from},
        {"to", NULL, CONFIG_STRING, NULL, 0, "... to (exclusive; default: the end)", .dest = &g_to},
        {"source", NULL, CONFIG_ENUM, "wl", 0,
         "wl: <prefix>wl.lead.route; cdc: <prefix>cdc.lead (CREATEs)", .dest = &g_source,
         .allowed = sources},
        {"topic", NULL, CONFIG_STRING, NULL, 0, "Read this topic instead", .dest = &g_topic},
        {"schema", "SFK_ROUTING_POLICY_SCHEMA", CONFIG_STRING, "schemas/routing_policy.schema.json",
         0, "JSON Schema of the routing policy", .dest = &g_schema},
        {"timeout", "SFK_CLI_TIMEOUT", CONFIG_DURATION, "10s", 0, "Budget of each Kafka request",
         .dest = &g_timeout, .min = 100, .max = 600000},
        {"budget", "SFK_SHADOW_BUDGET", CONFIG_DURATION, "10m", 0,
         "Give up when the range is not read within this time", .dest = &g_budget, .min = 1000,
         .max = 86400000},
        CLI_ENTRY_BOOTSTRAP(&g_bootstrap),
        CLI_ENTRY_PREFIX(&g_prefix),
        CLI_ENTRY_JSON(&g_json),
};

/* One lead's facts, from its first CREATE event in the range. */
struct lead {
	char id[19];
	int64_t ts;
	json_t *fields; /* owned */
};

static int by_ts(const void *a, const void *b)
{
	const struct lead *x = a, *y = b;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* Per policy: round-robin state and the outcome per lead. */
struct pool_state {
	uint64_t pointer;
	char day[16];
	long long *counts, *turned; /* per member, for day */
};

struct sim {
	const char *name; /* "old" / "new" */
	struct route_policy *p;
	struct pool_state *ps;
	json_t *out;      /* per lead: {owner_id, segment, region, reason_path, pool} */
	json_t *breaches; /* array */
	long long exhausted;
};

static void flush_day(struct sim *s, size_t pi)
{
	const struct route_pool *pool = route_pool_at(s->p, pi);
	struct pool_state *st = &s->ps[pi];
	for (size_t m = 0; st->day[0] && m < pool->nmembers; m++)
		if (st->turned[m] > 0)
			json_array_append_new(s->breaches,
			                      json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}",
			                                "policy", s->name, "day", st->day, "pool",
			                                pool->id, "owner_id",
			                                pool->members[m].owner_id, "daily_cap",
			                                (json_int_t)pool->members[m].daily_cap,
			                                "assigned", (json_int_t)st->counts[m],
			                                "turned_away", (json_int_t)st->turned[m]));
}

static void decide(struct sim *s, const struct lead *l)
{
	struct route_input in = {0};
	struct route_eval r;
	const char *owner = NULL;
	char reason[ROUTE_NAME_MAX * 2 + 32];
	json_t *emp = json_object_get(l->fields, "NumberOfEmployees");

	in.lead_id = l->id;
	in.owner_id = json_string_value(json_object_get(l->fields, "OwnerId"));
	in.country = json_string_value(json_object_get(l->fields, "Country"));
	if (!in.country)
		in.country = json_string_value(
		        json_object_get(json_object_get(l->fields, "Address"), "Country"));
	in.industry = json_string_value(json_object_get(l->fields, "Industry"));
	if (json_is_integer(emp) || json_is_real(emp)) {
		in.has_employees = 1;
		in.employees = (long long)json_number_value(emp);
	}
	route_evaluate(s->p, &in, &r);
	snprintf(reason, sizeof reason, "%s", r.reason_path);
	if (r.skip)
		owner = NULL;
	else if (r.pool) {
		size_t pi = (size_t)(r.pool - route_pool_at(s->p, 0));
		struct pool_state *st = &s->ps[pi];
		char day[16];
		time_t t = (time_t)(l->ts / 1000);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(day, sizeof day, "%Y-%m-%d", &tm);
		if (strcmp(day, st->day) != 0) {
			flush_day(s, pi);
			snprintf(st->day, sizeof st->day, "%s", day);
			memset(st->counts, 0, r.pool->nmembers * sizeof *st->counts);
			memset(st->turned, 0, r.pool->nmembers * sizeof *st->turned);
		}
		uint64_t before = st->pointer;
		int m = route_rr_pick(r.pool, &st->pointer, st->counts);
		/* every position passed over was a member at its cap */
		for (uint64_t j = before; j < st->pointer - (m >= 0 ? 1 : 0); j++)
			st->turned[r.pool->seq[j % r.pool->nseq]]++;
		if (m >= 0)
			owner = r.pool->members[m].owner_id;
		else {
			owner = route_fallback_queue(s->p, r.region);
			snprintf(reason, sizeof reason, "fallback.pool_exhausted.%s", r.pool->id);
			s->exhausted++;
		}
	} else
		owner = r.queue;
	json_object_set_new(s->out, l->id,
	                    json_pack("{s:s?, s:s?, s:s?, s:s, s:s?}", "owner_id", owner, "segment",
	                              r.segment, "region", r.region, "reason_path", reason, "pool",
	                              r.pool ? r.pool->id : NULL));
}

static void sim_free(struct sim *s)
{
	for (size_t i = 0; s->p && i < route_npools(s->p); i++) {
		free(s->ps[i].counts);
		free(s->ps[i].turned);
	}
	free(s->ps);
	route_policy_free(s->p);
	json_decref(s->out);
	json_decref(s->breaches);
}

static int sim_init(struct sim *s, const char *name, const char *path)
{
	json_t *problems = NULL, *v;
	size_t i;
	s->name = name;
	s->out = json_object();
	s->breaches = json_array();
	if (!(s->p = route_policy_load(path, g_schema, &problems))) {
		fprintf(stderr, "sfk policy diff: --%s %s: %zu problem(s)\n", name, path,
		        json_array_size(problems));
		json_array_foreach(problems, i, v) fprintf(stderr, "  %s\n", json_string_value(v));
		json_decref(problems);
		return -1;
	}
	s->ps = xcalloc(route_npools(s->p) + 1, sizeof *s->ps);
	for (i = 0; i < route_npools(s->p); i++) {
		size_t n = route_pool_at(s->p, i)->nmembers;
		s->ps[i].counts = xcalloc(n + 1, sizeof *s->ps[i].counts);
		s->ps[i].turned = xcalloc(n + 1, sizeof *s->ps[i].turned);
	}
	return 0;
}

static double parse_t(const char *s)
{
	char buf[64];
	if (s && strlen(s) == 10) {
		snprintf(buf, sizeof buf, "%sT00:00:00Z", s);
		s = buf;
	}
	return cli_parse_time(s);
}

/* Read the range: the first CREATE of every Lead. *leads new array. */
static int read_leads(const char *topic, struct lead **leads, size_t *n, long long *records)
{
	char err[1024];
	json_t *seen = json_object();
	size_t cap = 0;
	int rc = -1;
	struct krange *k = krange_open(g_bootstrap, topic, (int64_t)(parse_t(g_from) * 1000),
	                               g_to ? (int64_t)(parse_t(g_to) * 1000) : -1, (int)g_timeout,
	                               err, sizeof err);
	*leads = NULL;
	*n = 0;
	*records = 0;
	if (!k) {
		fprintf(stderr, "sfk policy diff: %s\n", err);
		goto out;
	}
	int64_t deadline = krange_now_ms() + g_budget;
	for (;;) {
		rd_kafka_message_t *m;
		int r = krange_next(k, &m, deadline, err, sizeof err);
		if (r < 0) {
			fprintf(stderr, "sfk policy diff: %s: %s\n", topic, err);
			goto out;
		}
		if (r == 0)
			break;
		(*records)++;
		json_t *env =
		        m->len <= PD_RECORD_MAX ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
		struct wl_event ev;
		char perr[256], id18[19];
		if (env && loop_parse_event(env, &ev, perr, sizeof perr) == SFK_OK &&
		    strcmp(ev.entity, "Lead") == 0 &&
		    (strcmp(ev.change_type, "CREATE") == 0 ||
		     strcmp(ev.change_type, "GAP_CREATE") == 0) &&
		    sfid_to18(ev.record_id, id18) == 0 && !json_object_get(seen, id18)) {
			json_object_set_new(seen, id18, json_true());
			if (*n == cap) {
				cap = cap ? cap * 2 : 256;
				*leads = xrealloc(*leads, cap * sizeof **leads);
			}
			struct lead *l = &(*leads)[(*n)++];
			memcpy(l->id, id18, sizeof l->id);
			l->ts = ev.commit_ts_ms;
			l->fields = json_incref(ev.fields);
		}
		json_decref(env);
		rd_kafka_message_destroy(m);
	}
	rc = 0;
out:
	krange_free(&k);
	json_decref(seen);
	return rc;
}

static json_t *count_rows(json_t *oldc, json_t *newc, const char *keyname, long long total)
{
	json_t *rows = json_array(), *keys = json_object(), *v;
	const char *k;
	json_object_foreach(oldc, k, v) json_object_set(keys, k, json_true());
	json_object_foreach(newc, k, v) json_object_set(keys, k, json_true());
	json_object_foreach(keys, k, v)
	{
		long long o = json_integer_value(json_object_get(oldc, k)),
		          n = json_integer_value(json_object_get(newc, k));
		json_t *row = json_pack("{s:s, s:I, s:I, s:I}", keyname, k, "old", (json_int_t)o,
		                        "new", (json_int_t)n, "delta", (json_int_t)(n - o));
		if (total > 0) {
			double so = round(10000.0 * (double)o / (double)total) / 100.0,
			       sn = round(10000.0 * (double)n / (double)total) / 100.0;
			json_object_set_new(row, "old_share", json_real(so));
			json_object_set_new(row, "new_share", json_real(sn));
			json_object_set_new(row, "shift",
			                    json_real(round(100.0 * (sn - so)) / 100.0));
		}
		json_array_append_new(rows, row);
	}
	json_decref(keys);
	return rows;
}

static void inc(json_t *o, const char *k)
{
	json_object_set_new(o, k, json_integer(json_integer_value(json_object_get(o, k)) + 1));
}

static json_t *report(struct sim *a, struct sim *b, const struct lead *leads, size_t n,
                      const char *topic, long long records)
{
	json_t *changed = json_array(), *sro = json_object(), *srn = json_object(),
	       *owo = json_object(), *own = json_object();
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_object_get(a->out, leads[i].id),
		       *y = json_object_get(b->out, leads[i].id);
		const char *ox = json_string_value(json_object_get(x, "owner_id")),
		           *oy = json_string_value(json_object_get(y, "owner_id"));
		char key[ROUTE_NAME_MAX * 2 + 2];
		const char *s, *r;
		s = json_string_value(json_object_get(x, "segment"));
		r = json_string_value(json_object_get(x, "region"));
		snprintf(key, sizeof key, "%s/%s", s ? s : "-", r ? r : "-");
		inc(sro, key);
		s = json_string_value(json_object_get(y, "segment"));
		r = json_string_value(json_object_get(y, "region"));
		snprintf(key, sizeof key, "%s/%s", s ? s : "-", r ? r : "-");
		inc(srn, key);
		inc(owo, ox ? ox : "unchanged");
		inc(own, oy ? oy : "unchanged");
		if ((ox == NULL) != (oy == NULL) || (ox && strcmp(ox, oy) != 0))
			json_array_append_new(changed, json_pack("{s:s, s:O, s:O}", "lead_id",
			                                         leads[i].id, "old", x, "new", y));
	}
	json_t *breaches = json_array();
	json_array_extend(breaches, a->breaches);
	json_array_extend(breaches, b->breaches);
	json_t *o = json_pack(
	        "{s:{s:s, s:s}, s:{s:s, s:s}, s:s, s:s, s:s?, s:I, s:I, s:I, s:o, s:o, s:o, s:o, "
	        "s:{s:I, s:I}}",
	        "old", "file", g_old, "version", route_policy_version(a->p), "new", "file", g_new,
	        "version", route_policy_version(b->p), "topic", topic, "from", g_from, "to", g_to,
	        "records", (json_int_t)records, "leads", (json_int_t)n, "owner_changes",
	        (json_int_t)json_array_size(changed), "changed", changed, "by_segment_region",
	        count_rows(sro, srn, "segment_region", (long long)n), "by_owner",
	        count_rows(owo, own, "owner_id", (long long)n), "cap_breaches", breaches,
	        "pool_exhausted", "old", (json_int_t)a->exhausted, "new", (json_int_t)b->exhausted);
	json_decref(sro);
	json_decref(srn);
	json_decref(owo);
	json_decref(own);
	return o;
}

static const char *js(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "-";
}

static void print_table(json_t *rows, const char *key, const char *title)
{
	const char *hdr[] = {title, "OLD", "NEW", "DELTA", "OLD-SHARE%", "NEW-SHARE%", "SHIFT"};
	struct cli_table *t = cli_table_new(7, hdr);
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r)
	{
		char c[6][32];
		snprintf(c[0], sizeof c[0], "%lld",
		         (long long)json_integer_value(json_object_get(r, "old")));
		snprintf(c[1], sizeof c[1], "%lld",
		         (long long)json_integer_value(json_object_get(r, "new")));
		snprintf(c[2], sizeof c[2], "%+lld",
		         (long long)json_integer_value(json_object_get(r, "delta")));
		snprintf(c[3], sizeof c[3], "%.2f",
		         json_number_value(json_object_get(r, "old_share")));
		snprintf(c[4], sizeof c[4], "%.2f",
		         json_number_value(json_object_get(r, "new_share")));
		snprintf(c[5], sizeof c[5], "%+.2f",
		         json_number_value(json_object_get(r, "shift")));
		const char *row[] = {js(r, key), c[0], c[1], c[2], c[3], c[4], c[5]};
		cli_table_add(t, row);
	}
	cli_table_print(t);
	cli_table_free(&t);
}

static void print_human(json_t *o)
{
	size_t i;
	json_t *r;
	printf("old %s (%s) -> new %s (%s): %lld lead(s), %lld owner change(s)\n\n",
	       js(json_object_get(o, "old"), "version"), js(json_object_get(o, "old"), "file"),
	       js(json_object_get(o, "new"), "version"), js(json_object_get(o, "new"), "file"),
	       (long long)json_integer_value(json_object_get(o, "leads")),
	       (long long)json_integer_value(json_object_get(o, "owner_changes")));
	const char *hdr[] = {"LEAD", "OLD-OWNER", "NEW-OWNER", "OLD-REASON", "NEW-REASON"};
	struct cli_table *t = cli_table_new(5, hdr);
	json_array_foreach(json_object_get(o, "changed"), i, r)
	{
		json_t *a = json_object_get(r, "old"), *b = json_object_get(r, "new");
		const char *row[] = {js(r, "lead_id"), js(a, "owner_id"), js(b, "owner_id"),
		                     js(a, "reason_path"), js(b, "reason_path")};
		cli_table_add(t, row);
	}
	cli_table_print(t);
	cli_table_free(&t);
	printf("\n");
	print_table(json_object_get(o, "by_segment_region"), "segment_region", "SEGMENT/REGION");
	printf("\n");
	print_table(json_object_get(o, "by_owner"), "owner_id", "OWNER");
	printf("\n");
	const char *bh[] = {"POLICY", "DAY", "POOL", "OWNER", "CAP", "ASSIGNED", "TURNED-AWAY"};
	t = cli_table_new(7, bh);
	json_array_foreach(json_object_get(o, "cap_breaches"), i, r)
	{
		char c[3][24];
		snprintf(c[0], sizeof c[0], "%lld",
		         (long long)json_integer_value(json_object_get(r, "daily_cap")));
		snprintf(c[1], sizeof c[1], "%lld",
		         (long long)json_integer_value(json_object_get(r, "assigned")));
		snprintf(c[2], sizeof c[2], "%lld",
		         (long long)json_integer_value(json_object_get(r, "turned_away")));
		const char *row[] = {js(r, "policy"),
		                     js(r, "day"),
		                     js(r, "pool"),
		                     js(r, "owner_id"),
		                     c[0],
		                     c[1],
		                     c[2]};
		cli_table_add(t, row);
	}
	cli_table_print(t);
	cli_table_free(&t);
}

int policy_diff_main(int argc, char **argv)
{
	struct config *cfg = NULL;
	struct sim a = {0}, b = {0};
	struct lead *leads = NULL;
	size_t n = 0;
	long long records = 0;
	char topic[KAFKA_TOPIC_MAX + 1];
	json_t *o = NULL;
	int rc = cli_config(&cfg, "sfk policy diff", "--old A --new B --from TIME [--to TIME]",
	                    table, sizeof table / sizeof table[0], argc, argv);
	if (rc != CONFIG_RUN)
		goto out;
	rc = CLI_USAGE;
	if (!g_old || !g_new || !g_from) {
		fprintf(stderr, "sfk policy diff: --old, --new and --from are required\n");
		goto out;
	}
	if (isnan(parse_t(g_from)) || (g_to && isnan(parse_t(g_to)))) {
		fprintf(stderr, "sfk policy diff: --from/--to: not a time (YYYY-MM-DD or "
		                "YYYY-MM-DDTHH:MM:SS[.fff]Z)\n");
		goto out;
	}
	if (!g_bootstrap) {
		fprintf(stderr, "sfk policy diff: KAFKA_BOOTSTRAP_SERVERS is not set\n");
		goto out;
	}
	rc = CLI_FAIL;
	if (sim_init(&a, "old", g_old) != 0 || sim_init(&b, "new", g_new) != 0)
		goto out;
	if (g_topic)
		snprintf(topic, sizeof topic, "%s", g_topic);
	else
		snprintf(topic, sizeof topic, "%s%s", g_prefix,
		         strcmp(g_source, "cdc") == 0 ? "cdc.lead" : "wl.lead.route");
	if (read_leads(topic, &leads, &n, &records) != 0)
		goto out;
	qsort(leads, n, sizeof *leads, by_ts);
	for (size_t i = 0; i < n; i++) {
		decide(&a, &leads[i]);
		decide(&b, &leads[i]);
	}
	for (size_t i = 0; i < route_npools(a.p); i++)
		flush_day(&a, i);
	for (size_t i = 0; i < route_npools(b.p); i++)
		flush_day(&b, i);
	o = report(&a, &b, leads, n, topic, records);
	if (g_json)
		cli_print_json(o);
	else
		print_human(o);
	fprintf(stderr,
	        "policy diff: %lld of %zu lead(s) change owner (%lld record(s) of %s); "
	        "nothing written\n",
	        (long long)json_integer_value(json_object_get(o, "owner_changes")), n, records,
	        topic);
	rc = CLI_OK;
out:
	for (size_t i = 0; i < n; i++)
		json_decref(leads[i].fields);
	free(leads);
	json_decref(o);
	sim_free(&a);
	sim_free(&b);
	config_free(&cfg);
	return rc;
}
