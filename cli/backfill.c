/*
 * backfill.c - `sfk backfill --since DATE [--until DATE] [--entities
 * Lead,Task,EmailMessage]`: reads history back from Salesforce (REST query
 * with every describe field, paged through nextRecordsUrl; the query is the
 * bridge's resync SELECT plus a CreatedDate range) and feeds each record
 * through the bridge's normalization and fan-out (bridge/normalize.c,
 * bridge/fanout.c), so routing and TTFR exist for records created before the
 * system ran.
 *
 * Each record becomes the envelope of its creation: change_type CREATE (what
 * the workers act on), flags.backfilled = true (not from a change event:
 * event_id <entity>:<Id>:0, commit_timestamp = fetch time, channel null) and
 * the Kafka header sfk.backfill = 1. The event id is stable, so running a
 * backfill twice is absorbed by the workers' idempotency. Records go to
 * <prefix>cdc.<entity> and, per policies/workloads.json, to the workload
 * topics, in Kafka transactions of --chunk records. Entities are read in the
 * order given (Leads before the Tasks and emails that answer them).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "fanout.h"
#include "kafka.h"
#include "krange.h"
#include "normalize.h"
#include "resync.h"
#include "sf_rest.h"
#include "wlrun.h"
#include "xmem.h"

#define BACKFILL_SOQL_MAX (RESYNC_SOQL_MAX + 256)
#define BACKFILL_TARGETS  16
#define BACKFILL_HDR      "sfk.backfill"

static const char *g_since, *g_until, *g_entities, *g_prefix, *g_bootstrap, *g_wl_policy,
        *g_wl_schema, *g_txn_id;
static long long g_chunk;
static bool g_dry_run, g_json;

static const struct config_entry table[] = {
        {"since", NULL, CONFIG_STRING, NULL, 0,
         "Records created at or after: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ", .dest = &g_since},
        {"until", NULL, CONFIG_STRING, NULL, 0, "... and before this time (default: now)",
         .dest = &g_until},
        {"entities", NULL, CONFIG_STRING, "Lead,Task,EmailMessage", 0,
         "Entities to read, in this order", .dest = &g_entities},
        {"chunk", NULL, CONFIG_INT, "500", 0, "Records per Kafka transaction", .dest = &g_chunk,
         .min = 1, .max = 10000},
        {"dry-run", NULL, CONFIG_BOOL, "false", 0,
         "Read and count (with the fan-out), produce nothing", .dest = &g_dry_run},
        {"workloads-policy", "SFK_WORKLOADS_POLICY", CONFIG_STRING, "policies/workloads.json", 0,
         "Fan-out rules (the bridge's)", .dest = &g_wl_policy},
        {"workloads-schema", "SFK_WORKLOADS_SCHEMA", CONFIG_STRING, "schemas/workloads.schema.json",
         0, "JSON Schema of the fan-out rules", .dest = &g_wl_schema},
        {"transactional-id", "SFK_BACKFILL_TXN_ID", CONFIG_STRING, "sfk-backfill", 0,
         "Kafka transactional.id (one backfill at a time per id)", .dest = &g_txn_id},
        CLI_ENTRY_BOOTSTRAP(&g_bootstrap),
        CLI_ENTRY_PREFIX(&g_prefix),
        CLI_ENTRY_JSON(&g_json),
};

/* SOQL dateTime literal, UTC. */
static void soql_datetime(double t, char *out, size_t size)
{
	time_t secs = (time_t)t;
	struct tm tm;
	gmtime_r(&secs, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static double parse_day_or_time(const char *s)
{
	char buf[64];
	if (s && strlen(s) == 10) {
		snprintf(buf, sizeof buf, "%sT00:00:00Z", s);
		s = buf;
	}
	return cli_parse_time(s);
}

struct bf {
	struct kafka_producer *prod; /* NULL in a dry run */
	struct fanout *fan;
	json_t *per_topic; /* topic -> records */
	size_t in_txn;
	int open;
	long long total;
};

static enum sfk_err txn_end(struct bf *b, char *err, size_t len)
{
	enum sfk_err e = SFK_OK;
	if (b->prod && b->open)
		e = kafka_producer_txn_commit(b->prod, err, len);
	b->open = 0;
	b->in_txn = 0;
	return e;
}

static void count(json_t *o, const char *k)
{
	json_object_set_new(o, k, json_integer(json_integer_value(json_object_get(o, k)) + 1));
}

static enum sfk_err produce(struct bf *b, const char *topic, const char *key, const char *val,
                            const struct kafka_header *h, size_t nh, char *err, size_t len)
{
	count(b->per_topic, topic);
	if (!b->prod)
		return SFK_OK;
	return kafka_produce(b->prod, topic, key, strlen(key), val, strlen(val), h, nh, err, len);
}

/* One record: envelope, cdc topic, fan-out. */
static enum sfk_err feed(struct bf *b, const char *entity, json_t *rec, int64_t now, char *err,
                         size_t len)
{
	char cdc[NORMALIZE_TOPIC_MAX + 1];
	struct fanout_target t[BACKFILL_TARGETS];
	enum sfk_err e = SFK_OK;
	char *val = NULL;
	json_t *env = wlrun_envelope(entity, rec, now, err, len);

	if (!env)
		return SFK_ERR_INVALID;
	json_t *flags = json_object_get(env, "flags");
	json_object_set_new(flags, "resynced", json_false());
	json_object_set_new(flags, "backfilled", json_true());
	if (normalize_topic(g_prefix, entity, cdc, sizeof cdc) != 0) {
		snprintf(err, len, "%s: no topic name", entity);
		e = SFK_ERR_INVALID;
		goto out;
	}
	const char *id = json_string_value(json_object_get(env, "record_id"));
	const char *eid = json_string_value(json_object_get(env, "event_id"));
	val = json_dumps(env, JSON_COMPACT);
	if (b->prod && !b->open) {
		if ((e = kafka_producer_txn_begin(b->prod, err, len)) != SFK_OK)
			goto out;
		b->open = 1;
	}
	struct kafka_header h[5] = {{NORMALIZE_HDR_ENTITY, entity, strlen(entity)},
	                            {NORMALIZE_HDR_CHANGE_TYPE, "CREATE", 6},
	                            {NORMALIZE_HDR_EVENT_ID, eid, strlen(eid)},
	                            {BACKFILL_HDR, "1", 1},
	                            {FANOUT_HDR_WORKLOAD, NULL, 0}};
	if ((e = produce(b, cdc, id, val, h, 4, err, len)) != SFK_OK)
		goto out;
	size_t nt = fanout_route(b->fan, env, t, BACKFILL_TARGETS);
	for (size_t i = 0; i < nt; i++) {
		h[4].value = t[i].workload;
		h[4].len = strlen(t[i].workload);
		if ((e = produce(b, t[i].topic, t[i].key, val, h, 5, err, len)) != SFK_OK)
			goto out;
	}
	b->total++;
	if (++b->in_txn >= (size_t)g_chunk)
		e = txn_end(b, err, len);
out:
	free(val);
	json_decref(env);
	return e;
}

static void progress(const char *entity, long long n, long long total, bool end)
{
	if (!cli_stderr_tty())
		return;
	if (total > 0) {
		int w = 30, f = (int)(w * n / total);
		fprintf(stderr, "\r%-14s [%.*s%*s] %lld/%lld", entity, f,
		        "##############################", w - f, "", n, total);
	} else
		fprintf(stderr, "\r%-14s %lld", entity, n);
	if (end)
		fputc('\n', stderr);
}

/* Query one entity's records in the range and feed them. */
static enum sfk_err backfill_entity(struct sf_rest *rest, struct bf *b, const char *entity,
                                    const char *since, const char *until, long long *n, char *err,
                                    size_t len)
{
	json_t *describe = NULL, *rec;
	struct sf_query *q = NULL;
	struct sf_error se;
	char *select = NULL, soql[BACKFILL_SOQL_MAX];
	enum sfk_err e;
	int64_t now = krange_now_ms();

	*n = 0;
	sf_error_clear(&se);
	if ((e = sf_rest_describe(rest, entity, &describe, &se)) != SFK_OK) {
		snprintf(err, len, "describe %s: %s %s", entity, se.code, se.message);
		goto out;
	}
	if (!(select = resync_soql(entity, describe, err, len))) {
		e = SFK_ERR_INVALID;
		goto out;
	}
	int w = snprintf(soql, sizeof soql, "%s WHERE CreatedDate >= %s%s%s ORDER BY CreatedDate",
	                 select, since, until ? " AND CreatedDate < " : "", until ? until : "");
	if (w < 0 || (size_t)w >= sizeof soql) {
		snprintf(err, len, "%s: query too long", entity);
		e = SFK_ERR_TOO_LARGE;
		goto out;
	}
	if ((e = sf_query_open(rest, soql, &q, &se)) != SFK_OK) {
		snprintf(err, len, "query %s: %s %s", entity, se.code, se.message);
		goto out;
	}
	long long total = sf_query_total(q);
	while ((e = sf_query_next(q, &rec, &se)) == SFK_OK && rec) {
		if ((e = feed(b, entity, rec, now, err, len)) != SFK_OK) {
			if (e == SFK_ERR_INVALID) { /* a record without a usable Id */
				fprintf(stderr, "sfk backfill: %s: skipped: %s\n", entity, err);
				e = SFK_OK;
				continue;
			}
			goto out;
		}
		(*n)++;
		if (*n % 100 == 0)
			progress(entity, *n, total, false);
	}
	if (e != SFK_OK) {
		snprintf(err, len, "query %s: %s %s", entity, se.code, se.message);
		goto out;
	}
	progress(entity, *n, total, true);
out:
	sf_query_free(&q);
	free(select);
	json_decref(describe);
	return e;
}

int cmd_backfill(int argc, char **argv)
{
	struct config *cfg = config_new("sfk backfill", table, sizeof table / sizeof table[0]);
	struct wlrun *w = NULL;
	struct bf b = {0};
	json_t *ents = NULL, *counts = json_object();
	char err[4096], since[32], until[32];
	int rc;

	config_set_synopsis(cfg, "--since DATE [--until DATE] [--entities Lead,Task,EmailMessage]");
	wlrun_add_config(cfg);
	rc = config_load(cfg, argc, argv);
	if (rc == CONFIG_EXIT_FAIL) {
		fprintf(stderr, "sfk backfill: see 'sfk backfill --help'\n");
		rc = CLI_USAGE;
	}
	if (rc != CONFIG_RUN)
		goto out;
	rc = CLI_USAGE;
	double t0 = parse_day_or_time(g_since), t1 = g_until ? parse_day_or_time(g_until) : 0;
	if (!g_since || isnan(t0) || isnan(t1)) {
		fprintf(stderr, "sfk backfill: --since (and --until) must be YYYY-MM-DD or "
		                "YYYY-MM-DDTHH:MM:SSZ\n");
		goto out;
	}
	ents = cli_split(g_entities);
	if (json_array_size(ents) == 0) {
		fprintf(stderr, "sfk backfill: --entities is empty\n");
		goto out;
	}
	if (!g_bootstrap && !g_dry_run) {
		fprintf(stderr, "sfk backfill: KAFKA_BOOTSTRAP_SERVERS is not set\n");
		goto out;
	}
	soql_datetime(t0, since, sizeof since);
	if (g_until)
		soql_datetime(t1, until, sizeof until);
	if (!(b.fan = fanout_load(g_wl_policy, g_wl_schema, g_prefix, err, sizeof err))) {
		fprintf(stderr, "sfk backfill: workloads policy: %s\n", err);
		goto out;
	}
	if (!(w = wlrun_new(cfg, NULL, g_prefix, true, false, &rc, err, sizeof err))) {
		fprintf(stderr, "sfk backfill: %s\n", err);
		rc = rc ? rc : CLI_FAIL;
		goto out;
	}
	rc = CLI_FAIL;
	b.per_topic = json_object();
	if (!g_dry_run) {
		if (!(b.prod = kafka_producer_new(g_bootstrap, g_txn_id, NULL, err, sizeof err)) ||
		    kafka_producer_txn_init(b.prod, err, sizeof err) != SFK_OK) {
			fprintf(stderr, "sfk backfill: kafka: %s\n", err);
			goto out;
		}
	}
	size_t i;
	json_t *v;
	json_array_foreach(ents, i, v)
	{
		long long n = 0;
		const char *entity = json_string_value(v);
		enum sfk_err e = backfill_entity(wlrun_ctx(w)->sf, &b, entity, since,
		                                 g_until ? until : NULL, &n, err, sizeof err);
		if (e == SFK_OK)
			e = txn_end(&b, err, sizeof err);
		if (e != SFK_OK) {
			char aerr[KAFKA_ERRSTR_MAX];
			if (b.prod && b.open)
				kafka_producer_txn_abort(b.prod, aerr, sizeof aerr);
			fprintf(stderr, "sfk backfill: %s: %s\n", entity, err);
			goto out;
		}
		json_object_set_new(counts, entity, json_integer(n));
	}
	if (g_json) {
		json_t *o =
		        json_pack("{s:s, s:s?, s:b, s:I, s:O, s:O}", "since", since, "until",
		                  g_until ? until : NULL, "dry_run", g_dry_run, "records",
		                  (json_int_t)b.total, "entities", counts, "topics", b.per_topic);
		cli_print_json(o);
		json_decref(o);
	} else {
		const char *hdr[] = {"TOPIC", "RECORDS"};
		struct cli_table *t = cli_table_new(2, hdr);
		const char *k;
		json_object_foreach(b.per_topic, k, v)
		{
			char n[24];
			snprintf(n, sizeof n, "%lld", (long long)json_integer_value(v));
			const char *row[] = {k, n};
			cli_table_add(t, row);
		}
		cli_table_print(t);
		cli_table_free(&t);
	}
	fprintf(stderr, "backfill: %lld record(s) created since %s%s\n", b.total, since,
	        g_dry_run ? " (dry run: nothing produced)" : ", committed");
	rc = CLI_OK;
out:
	kafka_producer_destroy(&b.prod);
	fanout_free(&b.fan);
	json_decref(b.per_topic);
	json_decref(counts);
	json_decref(ents);
	wlrun_free(&w);
	config_free(&cfg);
	return rc;
}
