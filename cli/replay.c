/*
 * replay.c - `sfk replay --workload W --from TIME --reset [--dry-run]`:
 * moves the stopped consumer group <group-prefix><W> of the workload topic
 * <prefix>wl.<W> back to the first offset at or after TIME on every
 * partition (ListOffsets by timestamp), like `kafka-consumer-groups
 * --reset-offsets --to-datetime`. Refuses while the group has members: a
 * running worker would overwrite the offsets with its next commit. The new
 * offsets are written with AlterConsumerGroupOffsets.
 *
 * --shadow (shadow.c) re-runs the workload's decisions over [--from, --to)
 * without a consumer group and without writing anywhere.
 *
 * Records already applied are skipped by the workers' idempotency keys
 * (sfk:idem:<workload>:<epoch>:<event id>); to apply them again, run the
 * workers with a new SFK_EPOCH (--epoch N here only says so in the plan).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "cli.h"
#include "kafka.h"
#include "shadow.h"
#include "wlrun.h"
#include "xmem.h"

#define REPLAY_MAX_PARTITIONS 1024

static const char *g_bootstrap, *g_prefix, *g_workload, *g_group_prefix, *g_from, *g_to, *g_out,
        *g_out_topic;
static long long g_timeout, g_epoch, g_budget;
static bool g_json, g_reset, g_shadow, g_dry_run, g_offline;

static const struct config_entry table[] = {
        {"workload", NULL, CONFIG_STRING, NULL, 0, "Workload id (lead.route ...)",
         .dest = &g_workload},
        {"from", NULL, CONFIG_STRING, NULL, 0,
         "Replay from this time: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[Z|+HH:MM] (UTC if no zone)",
         .dest = &g_from},
        {"to", NULL, CONFIG_STRING, NULL, 0,
         "End of the range, exclusive (--shadow only; default: the end of the topic)",
         .dest = &g_to},
        {"reset", NULL, CONFIG_BOOL, "false", 0,
         "Move the stopped group's committed offsets back to --from", .dest = &g_reset},
        {"shadow", NULL, CONFIG_BOOL, "false", 0,
         "Re-run the decisions over the range without a group and without writing",
         .dest = &g_shadow},
        {"out", NULL, CONFIG_STRING, NULL, 0, "--shadow: decision JSON lines to this file",
         .dest = &g_out},
        {"out-topic", NULL, CONFIG_STRING, NULL, 0,
         "--shadow: decision JSON lines to this Kafka topic (key = the record's key)",
         .dest = &g_out_topic},
        {"offline", NULL, CONFIG_BOOL, "false", 0,
         "--shadow: no Salesforce reads (decide from the event fields alone)", .dest = &g_offline},
        {"budget", "SFK_SHADOW_BUDGET", CONFIG_DURATION, "10m", 0,
         "--shadow: give up when the range is not read within this time", .dest = &g_budget,
         .min = 1000, .max = 86400000},
        {"dry-run", NULL, CONFIG_BOOL, "false", 0, "Print the plan, change nothing",
         .dest = &g_dry_run},
        {"epoch", NULL, CONFIG_INT, "-1", 0,
         "Idempotency epoch the workers will run with (-1: unchanged; only noted in the plan)",
         .dest = &g_epoch, .min = -1, .max = 1000000},
        CLI_ENTRY_BOOTSTRAP(&g_bootstrap),
        CLI_ENTRY_PREFIX(&g_prefix),
        {"group-prefix", "SFK_GROUP_PREFIX", CONFIG_STRING, "sfk.", 0,
         "Workers' consumer groups are <prefix><workload>", .dest = &g_group_prefix},
        {"timeout", "SFK_CLI_TIMEOUT", CONFIG_DURATION, "10s", 0, "Budget of each Kafka request",
         .dest = &g_timeout, .min = 100, .max = 600000},
        CLI_ENTRY_JSON(&g_json),
};

static rd_kafka_t *new_consumer(const char *group, char *errstr, size_t errsize)
{
	char tmo[48], gid[KAFKA_TOPIC_MAX + 48], err[KAFKA_ERRSTR_MAX];
	snprintf(tmo, sizeof tmo, "socket.timeout.ms=%lld", g_timeout);
	snprintf(gid, sizeof gid, "group.id=%s", group);
	const char *props[] = {tmo, gid, "enable.auto.commit=false", NULL};
	rd_kafka_conf_t *conf = kafka_conf_new(g_bootstrap, props, errstr, errsize);
	if (!conf)
		return NULL;
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (!rk) {
		snprintf(errstr, errsize, "%s", err);
		rd_kafka_conf_destroy(conf);
	}
	return rk;
}

/* Members of group (>= 0), its state name into state, or -1 with errstr. */
static int group_members(rd_kafka_t *rk, const char *group, char *state, size_t slen, char *errstr,
                         size_t errsize)
{
	const char *groups[] = {group};
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY);
	char err[KAFKA_ERRSTR_MAX];
	int n = -1;
	rd_kafka_AdminOptions_set_request_timeout(o, (int)g_timeout, err, sizeof err);
	rd_kafka_DescribeConsumerGroups(rk, groups, 1, o, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)g_timeout + 2000);
	if (!ev || rd_kafka_event_error(ev)) {
		snprintf(errstr, errsize, "describe group %s: %s", group,
		         ev ? rd_kafka_event_error_string(ev) : "no answer");
		goto out;
	}
	size_t cnt = 0;
	const rd_kafka_ConsumerGroupDescription_t **d =
	        rd_kafka_DescribeConsumerGroups_result_groups(
	                rd_kafka_event_DescribeConsumerGroups_result(ev), &cnt);
	if (cnt != 1 || rd_kafka_ConsumerGroupDescription_error(d[0])) {
		snprintf(errstr, errsize, "describe group %s: %s", group,
		         cnt ? rd_kafka_error_string(rd_kafka_ConsumerGroupDescription_error(d[0]))
		             : "no result");
		goto out;
	}
	snprintf(state, slen, "%s",
	         rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(d[0])));
	n = (int)rd_kafka_ConsumerGroupDescription_member_count(d[0]);
out:
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
	return n;
}

/* Write the plan's offsets with AlterConsumerGroupOffsets. 0 or -1. */
static int alter_offsets(rd_kafka_t *rk, const char *group,
                         const rd_kafka_topic_partition_list_t *parts, char *errstr, size_t errsize)
{
	rd_kafka_AlterConsumerGroupOffsets_t *a =
	        rd_kafka_AlterConsumerGroupOffsets_new(group, parts);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY);
	char err[KAFKA_ERRSTR_MAX];
	int rc = -1;
	rd_kafka_AdminOptions_set_request_timeout(o, (int)g_timeout, err, sizeof err);
	rd_kafka_AlterConsumerGroupOffsets(rk, &a, 1, o, q);
	rd_kafka_AlterConsumerGroupOffsets_destroy(a); /* the request holds a copy */
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)g_timeout + 2000);
	if (!ev || rd_kafka_event_error(ev)) {
		snprintf(errstr, errsize, "alter offsets of %s: %s", group,
		         ev ? rd_kafka_event_error_string(ev) : "no answer");
		goto out;
	}
	size_t cnt = 0;
	const rd_kafka_group_result_t **gr = rd_kafka_AlterConsumerGroupOffsets_result_groups(
	        rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &cnt);
	if (cnt != 1 || rd_kafka_group_result_error(gr[0])) {
		snprintf(errstr, errsize, "alter offsets of %s: %s", group,
		         cnt ? rd_kafka_error_string(rd_kafka_group_result_error(gr[0]))
		             : "no result");
		goto out;
	}
	const rd_kafka_topic_partition_list_t *res = rd_kafka_group_result_partitions(gr[0]);
	for (int i = 0; res && i < res->cnt; i++)
		if (res->elems[i].err) {
			snprintf(errstr, errsize, "alter offsets of %s [%d]: %s", group,
			         res->elems[i].partition, rd_kafka_err2str(res->elems[i].err));
			goto out;
		}
	rc = 0;
out:
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
	return rc;
}

static double parse_from(const char *s)
{
	char buf[64];
	if (s && strlen(s) == 10) { /* a day: its midnight, UTC */
		snprintf(buf, sizeof buf, "%sT00:00:00Z", s);
		s = buf;
	}
	return cli_parse_time(s);
}

static int do_reset(void)
{
	char err[1024], topic[KAFKA_TOPIC_MAX + 1], group[KAFKA_TOPIC_MAX + 1], state[32] = "";
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *cur = NULL, *want = NULL;
	json_t *plan = NULL;
	int rc = CLI_FAIL;
	double from = parse_from(g_from);
	snprintf(topic, sizeof topic, "%swl.%s", g_prefix, g_workload);
	snprintf(group, sizeof group, "%s%s", g_group_prefix, g_workload);
	rd_kafka_t *rk = new_consumer(group, err, sizeof err);
	if (!rk) {
		fprintf(stderr, "sfk replay: %s\n", err);
		return CLI_FAIL;
	}
	int members = group_members(rk, group, state, sizeof state, err, sizeof err);
	if (members < 0) {
		fprintf(stderr, "sfk replay: %s\n", err);
		goto out;
	}
	if (members > 0 && !g_dry_run) {
		fprintf(stderr,
		        "sfk replay: group %s has %d active member(s) (state %s): stop the %s "
		        "workers "
		        "first (kubectl scale --replicas=0), then reset\n",
		        group, members, state, g_workload);
		goto out;
	}
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, (int)g_timeout);
	rd_kafka_topic_destroy(rkt);
	if (e || md->topic_cnt != 1 || md->topics[0].err) {
		fprintf(stderr, "sfk replay: topic %s: %s\n", topic,
		        rd_kafka_err2str(e               ? e
		                         : md->topic_cnt ? md->topics[0].err
		                                         : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
		goto out;
	}
	int np = md->topics[0].partition_cnt;
	if (np > REPLAY_MAX_PARTITIONS)
		np = REPLAY_MAX_PARTITIONS;
	cur = rd_kafka_topic_partition_list_new(np);
	want = rd_kafka_topic_partition_list_new(np);
	for (int p = 0; p < np; p++) {
		rd_kafka_topic_partition_list_add(cur, topic, p);
		rd_kafka_topic_partition_list_add(want, topic, p)->offset = (int64_t)(from * 1000);
	}
	if ((e = rd_kafka_committed(rk, cur, (int)g_timeout)) ||
	    (e = rd_kafka_offsets_for_times(rk, want, (int)g_timeout))) {
		fprintf(stderr, "sfk replay: %s: %s\n", topic, rd_kafka_err2str(e));
		goto out;
	}
	plan = json_array();
	long long total = 0;
	for (int p = 0; p < np; p++) {
		int64_t lo = 0, hi = 0;
		if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, (int)g_timeout)) {
			fprintf(stderr, "sfk replay: %s [%d]: watermarks not available\n", topic,
			        p);
			goto out;
		}
		/* no record at or after TIME: the end, nothing to replay there */
		if (want->elems[p].offset < 0)
			want->elems[p].offset = hi;
		int64_t c = cur->elems[p].offset;
		long long again = c >= 0 ? (long long)(c - want->elems[p].offset) : 0;
		total += again > 0 ? again : 0;
		json_array_append_new(
		        plan,
		        json_pack("{s:s, s:s, s:i, s:o, s:I, s:I, s:I}", "group", group, "topic",
		                  topic, "partition", p, "current_offset",
		                  c >= 0 ? json_integer(c) : json_null(), "new_offset",
		                  (json_int_t)want->elems[p].offset, "log_end_offset",
		                  (json_int_t)hi, "replayed", (json_int_t)(again > 0 ? again : 0)));
	}
	if (g_json) {
		json_t *o = json_pack("{s:s, s:s, s:i, s:b, s:O}", "group", group, "from", g_from,
		                      "members", members, "dry_run", g_dry_run, "partitions", plan);
		cli_print_json(o);
		json_decref(o);
	} else {
		const char *hdr[] = {"GROUP",          "TOPIC",      "PARTITION",
		                     "CURRENT-OFFSET", "NEW-OFFSET", "LOG-END-OFFSET"};
		struct cli_table *t = cli_table_new(6, hdr);
		size_t i;
		json_t *r;
		json_array_foreach(plan, i, r)
		{
			char p[16], c[24] = "-", n[24], h[24];
			snprintf(p, sizeof p, "%lld",
			         (long long)json_integer_value(json_object_get(r, "partition")));
			if (json_is_integer(json_object_get(r, "current_offset")))
				snprintf(c, sizeof c, "%lld",
				         (long long)json_integer_value(
				                 json_object_get(r, "current_offset")));
			snprintf(n, sizeof n, "%lld",
			         (long long)json_integer_value(json_object_get(r, "new_offset")));
			snprintf(h, sizeof h, "%lld",
			         (long long)json_integer_value(
			                 json_object_get(r, "log_end_offset")));
			const char *row[] = {group, topic, p, c, n, h};
			cli_table_add(t, row);
		}
		cli_table_print(t);
		cli_table_free(&t);
	}
	fprintf(stderr, "%s: %lld record(s) of %s to process again from %s%s\n",
	        g_dry_run ? "plan" : "reset", total, topic, g_from,
	        g_dry_run ? " (dry run: nothing changed)" : "");
	if (g_epoch >= 0)
		fprintf(stderr,
		        "note: start the %s workers with SFK_EPOCH=%lld so records already "
		        "applied are applied again\n",
		        g_workload, g_epoch);
	else
		fprintf(stderr,
		        "note: records already applied are skipped by idempotency unless the "
		        "workers run with a new SFK_EPOCH\n");
	if (members > 0 && g_dry_run)
		fprintf(stderr,
		        "note: the group has %d active member(s): a real reset would be "
		        "refused\n",
		        members);
	if (!g_dry_run && alter_offsets(rk, group, want, err, sizeof err) != 0) {
		fprintf(stderr, "sfk replay: %s\n", err);
		goto out;
	}
	rc = CLI_OK;
out:
	json_decref(plan);
	if (cur)
		rd_kafka_topic_partition_list_destroy(cur);
	if (want)
		rd_kafka_topic_partition_list_destroy(want);
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_destroy(rk);
	return rc;
}

int cmd_replay(int argc, char **argv)
{
	struct config *cfg = config_new("sfk replay", table, sizeof table / sizeof table[0]);
	int rc;
	config_set_synopsis(cfg, "--workload W --from TIME (--reset [--dry-run] | --shadow [--to "
	                         "TIME] [--out FILE | --out-topic T])");
	wlrun_add_config(cfg); /* --shadow runs the workload: its settings */
	rc = config_load(cfg, argc, argv);
	if (rc == CONFIG_EXIT_FAIL) {
		fprintf(stderr, "sfk replay: see 'sfk replay --help'\n");
		rc = CLI_USAGE;
	}
	if (rc != CONFIG_RUN)
		goto out;
	rc = CLI_USAGE;
	if (!g_workload || !g_from) {
		fprintf(stderr, "sfk replay: --workload and --from are required\n");
		goto out;
	}
	if (isnan(parse_from(g_from)) || (g_to && isnan(parse_from(g_to)))) {
		fprintf(stderr,
		        "sfk replay: --from/--to '%s' is not a time (YYYY-MM-DD or "
		        "YYYY-MM-DDTHH:MM:SS[.fff]Z)\n",
		        isnan(parse_from(g_from)) ? g_from : g_to);
		goto out;
	}
	if (g_reset == g_shadow) {
		fprintf(stderr, "sfk replay: say --reset or --shadow\n");
		goto out;
	}
	if (!g_bootstrap) {
		fprintf(stderr, "sfk replay: KAFKA_BOOTSTRAP_SERVERS is not set\n");
		goto out;
	}
	if (g_shadow) {
		if (g_out && g_out_topic) {
			fprintf(stderr, "sfk replay: --out and --out-topic exclude each other\n");
			goto out;
		}
		struct shadow_opts so = {.cfg = cfg,
		                         .workload = g_workload,
		                         .bootstrap = g_bootstrap,
		                         .prefix = g_prefix,
		                         .from_ms = (int64_t)(parse_from(g_from) * 1000),
		                         .to_ms = g_to ? (int64_t)(parse_from(g_to) * 1000) : -1,
		                         .out_file = g_out,
		                         .out_topic = g_out_topic,
		                         .offline = g_offline,
		                         .json = g_json,
		                         .timeout_ms = (int)g_timeout,
		                         .budget_ms = g_budget};
		rc = shadow_run(&so);
		goto out;
	}
	if (g_to)
		fprintf(stderr,
		        "sfk replay: note: --to applies to --shadow; a reset replays to the "
		        "end of the topic\n");
	rc = do_reset();
out:
	config_free(&cfg);
	return rc;
}
