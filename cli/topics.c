/*
 * topics.c - `sfk topics create|describe`: the topics of DESIGN.md section 3
 * with their partitions, retention and cleanup.policy, created idempotently
 * through common/kafka.h's admin; describe reads metadata, topic configs
 * (DescribeConfigs) and each workload group's committed offsets against the
 * high watermarks (lag).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "cli.h"
#include "kafka.h"
#include "topics.h"
#include "xmem.h"

/* ---- the expected set ----------------------------------------------------- */

static void add(json_t *a, const char *name, const char *kind, const char *cleanup,
                long long retention_ms, const char *group)
{
	json_t *o =
	        json_pack("{s:s, s:s, s:s}", "name", name, "kind", kind, "cleanup.policy", cleanup);
	if (retention_ms > 0)
		json_object_set_new(o, "retention.ms", json_integer(retention_ms));
	if (group)
		json_object_set_new(o, "group", json_string(group));
	json_array_append_new(a, o);
}

json_t *topics_expected(const struct topics_conf *c)
{
	json_t *a = json_array();
	json_t *ents = json_pack("[sss]", "lead", "task", "emailmessage");
	json_t *extra = cli_split(c->extra_entities);
	json_t *wls = cli_workloads(c->workloads_policy);
	size_t i;
	json_t *v;
	char name[KAFKA_TOPIC_MAX + 1], group[KAFKA_TOPIC_MAX + 1];

	json_array_foreach(extra, i, v)
	{
		/* entity names are lower-case in topic names (sfk.cdc.<entity lower-case>) */
		char *low = xstrdup(json_string_value(v));
		for (char *p = low; *p; p++)
			*p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
		int dup = 0;
		size_t j;
		json_t *e;
		json_array_foreach(ents, j, e) dup |= strcmp(json_string_value(e), low) == 0;
		if (!dup)
			json_array_append_new(ents, json_string(low));
		free(low);
	}
	json_array_foreach(ents, i, v)
	{
		snprintf(name, sizeof name, "%scdc.%s", c->prefix, json_string_value(v));
		add(a, name, "cdc", "delete", c->retention_ms, NULL);
	}
	json_array_foreach(wls, i, v)
	{
		snprintf(name, sizeof name, "%swl.%s", c->prefix, json_string_value(v));
		snprintf(group, sizeof group, "%s%s", c->group_prefix, json_string_value(v));
		add(a, name, "workload", "delete", c->retention_ms, group);
	}
	snprintf(name, sizeof name, "%sflywheel", c->prefix);
	add(a, name, "flywheel", "delete", c->retention_ms, c->loader_group);
	json_array_foreach(wls, i, v)
	{
		snprintf(name, sizeof name, "%sdlq.%s", c->prefix, json_string_value(v));
		add(a, name, "dlq", "delete", c->dlq_retention_ms, NULL);
	}
	/* lead.sla_watch's breaches, relayed by notify.webhook */
	snprintf(name, sizeof name, "%snotify.events", c->prefix);
	add(a, name, "events", "delete", c->retention_ms, NULL);
	snprintf(name, sizeof name, "%sdlq.bridge", c->prefix);
	add(a, name, "dlq", "delete", c->dlq_retention_ms, NULL);
	snprintf(name, sizeof name, "%sdlq.loader", c->prefix);
	add(a, name, "dlq", "delete", c->dlq_retention_ms, NULL);
	snprintf(name, sizeof name, "%sbridge.checkpoints", c->prefix);
	add(a, name, "checkpoints", "compact", 0, NULL);
	json_decref(ents);
	json_decref(extra);
	json_decref(wls);
	return a;
}

/* ---- inspection ------------------------------------------------------------ */

static rd_kafka_t *new_handle(rd_kafka_type_t type, const char *bootstrap, const char *group,
                              int timeout_ms, char *errstr, size_t errsize)
{
	char tmo[32], err[KAFKA_ERRSTR_MAX];
	snprintf(tmo, sizeof tmo, "socket.timeout.ms=%d", timeout_ms < 10 ? 10 : timeout_ms);
	const char *props[] = {tmo, NULL, NULL};
	char gid[KAFKA_TOPIC_MAX + 16];
	if (group) {
		snprintf(gid, sizeof gid, "group.id=%s", group);
		props[1] = gid;
	}
	rd_kafka_conf_t *conf = kafka_conf_new(bootstrap, props, errstr, errsize);
	if (!conf)
		return NULL;
	rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
	if (!rk) {
		snprintf(errstr, errsize, "%s", err);
		rd_kafka_conf_destroy(conf);
	}
	return rk;
}

/* retention.ms and cleanup.policy of the topics in names[] (into each object). */
static void describe_configs(rd_kafka_t *rk, json_t *topics, int timeout_ms)
{
	size_t n = json_array_size(topics), k = 0, i;
	rd_kafka_ConfigResource_t **res = xcalloc(n ? n : 1, sizeof *res);
	json_t *t;
	json_array_foreach(topics, i, t)
	{
		if (json_is_true(json_object_get(t, "exists")))
			res[k++] = rd_kafka_ConfigResource_new(
			        RD_KAFKA_RESOURCE_TOPIC,
			        json_string_value(json_object_get(t, "name")));
	}
	if (!k) {
		free(res);
		return;
	}
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *opts =
	        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
	char err[KAFKA_ERRSTR_MAX];
	rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, err, sizeof err);
	rd_kafka_DescribeConfigs(rk, res, k, opts, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
	const rd_kafka_DescribeConfigs_result_t *r =
	        ev && !rd_kafka_event_error(ev) ? rd_kafka_event_DescribeConfigs_result(ev) : NULL;
	size_t nr = 0;
	const rd_kafka_ConfigResource_t **rr =
	        r ? rd_kafka_DescribeConfigs_result_resources(r, &nr) : NULL;
	for (size_t j = 0; j < nr; j++) {
		const char *name = rd_kafka_ConfigResource_name(rr[j]);
		json_t *obj = NULL;
		json_array_foreach(topics, i,
		                   t) if (strcmp(json_string_value(json_object_get(t, "name")),
		                                 name) == 0) obj = t;
		if (!obj || rd_kafka_ConfigResource_error(rr[j]))
			continue;
		size_t nc = 0;
		const rd_kafka_ConfigEntry_t **ce = rd_kafka_ConfigResource_configs(rr[j], &nc);
		for (size_t c = 0; c < nc; c++) {
			const char *cn = rd_kafka_ConfigEntry_name(ce[c]);
			const char *cv = rd_kafka_ConfigEntry_value(ce[c]);
			if (!cv)
				continue;
			if (strcmp(cn, "cleanup.policy") == 0)
				json_object_set_new(obj, "actual_cleanup.policy", json_string(cv));
			else if (strcmp(cn, "retention.ms") == 0) {
				char *end;
				errno = 0;
				long long ms = strtoll(cv, &end, 10);
				if (!errno && end != cv && !*end)
					json_object_set_new(obj, "actual_retention.ms",
					                    json_integer(ms));
			}
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_AdminOptions_destroy(opts);
	rd_kafka_queue_destroy(q);
	for (size_t j = 0; j < k; j++)
		rd_kafka_ConfigResource_destroy(res[j]);
	free(res);
}

/* Lag of group on topic: sum over partitions of high watermark - committed
 * offset (low watermark where the group committed nothing on a partition).
 * Sets "lag", null when the group committed nothing on the topic at all. */
static void group_lag(rd_kafka_t *rk, const char *bootstrap, json_t *t, int timeout_ms)
{
	const char *topic = json_string_value(json_object_get(t, "name"));
	const char *group = json_string_value(json_object_get(t, "group"));
	int np = (int)json_integer_value(json_object_get(t, "partitions"));
	char err[KAFKA_ERRSTR_MAX];
	rd_kafka_t *gc =
	        new_handle(RD_KAFKA_CONSUMER, bootstrap, group, timeout_ms, err, sizeof err);
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(np);
	long long lag = 0;
	int committed = 0;
	if (!gc)
		goto out;
	for (int p = 0; p < np; p++)
		rd_kafka_topic_partition_list_add(parts, topic, p);
	if (rd_kafka_committed(gc, parts, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
		goto out;
	for (int p = 0; p < parts->cnt; p++) {
		int64_t lo = 0, hi = 0;
		if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, timeout_ms))
			continue;
		int64_t off = parts->elems[p].offset;
		if (off < 0) {
			/* nothing committed here: the workers start at the earliest
			 * offset (auto.offset.reset=earliest), so all of it is lag */
			lag += hi > lo ? hi - lo : 0;
			continue;
		}
		committed = 1;
		lag += hi > off ? hi - off : 0;
	}
out:
	json_object_set_new(t, "lag", committed ? json_integer(lag) : json_null());
	rd_kafka_topic_partition_list_destroy(parts);
	if (gc)
		rd_kafka_destroy(gc);
}

json_t *topics_inspect(const char *bootstrap, json_t *expected, int timeout_ms, bool lag,
                       char *errstr, size_t errsize)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_t *rk =
	        new_handle(RD_KAFKA_PRODUCER, bootstrap, NULL, timeout_ms, errstr, errsize);
	json_t *out = NULL;
	size_t i;
	json_t *t;
	if (!rk)
		return NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
	if (e) {
		snprintf(errstr, errsize, "Kafka at %s not reachable within %d ms: %s", bootstrap,
		         timeout_ms, rd_kafka_err2str(e));
		goto out;
	}
	out = json_deep_copy(expected);
	json_array_foreach(out, i, t)
	{
		const char *name = json_string_value(json_object_get(t, "name"));
		json_object_set_new(t, "exists", json_false());
		for (int k = 0; k < md->topic_cnt; k++) {
			const struct rd_kafka_metadata_topic *mt = &md->topics[k];
			if (strcmp(mt->topic, name) != 0 || mt->err)
				continue;
			json_object_set_new(t, "exists", json_true());
			json_object_set_new(t, "partitions", json_integer(mt->partition_cnt));
			json_object_set_new(t, "replication",
			                    json_integer(mt->partition_cnt
			                                         ? mt->partitions[0].replica_cnt
			                                         : 0));
		}
	}
	describe_configs(rk, out, timeout_ms);
	if (lag)
		json_array_foreach(out, i, t) if (json_is_true(json_object_get(t, "exists")) &&
		                                  json_object_get(t, "group"))
		        group_lag(rk, bootstrap, t, timeout_ms);
out:
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_destroy(rk);
	return out;
}

/* ---- the command ------------------------------------------------------------ */

static const char *g_bootstrap, *g_prefix, *g_extra, *g_policy, *g_group_prefix, *g_loader_group;
static long long g_partitions, g_replication, g_retention, g_dlq_retention, g_timeout;
static bool g_json;

static const struct config_entry table[] = {
        CLI_ENTRY_BOOTSTRAP(&g_bootstrap),
        CLI_ENTRY_PREFIX(&g_prefix),
        {"partitions", "SFK_TOPIC_PARTITIONS", CONFIG_INT, "6", 0, "Partitions of each topic",
         .dest = &g_partitions, .min = 1, .max = 10000},
        {"replication", "SFK_TOPIC_REPLICATION", CONFIG_INT, "-1", 0,
         "Replication factor (-1: the broker's default)", .dest = &g_replication, .min = -1,
         .max = 32},
        {"retention", "SFK_TOPIC_RETENTION", CONFIG_DURATION, "168h", 0,
         "retention.ms of the cdc, workload and flywheel topics", .dest = &g_retention,
         .min = 60000, .max = 315360000000LL},
        {"dlq-retention", "SFK_DLQ_RETENTION", CONFIG_DURATION, "720h", 0,
         "retention.ms of the dead-letter topics", .dest = &g_dlq_retention, .min = 60000,
         .max = 315360000000LL},
        {"extra-entities", "SFK_CDC_EXTRA_ENTITIES", CONFIG_STRING, NULL, 0,
         "More CDC entities besides lead,task,emailmessage (comma-separated)", .dest = &g_extra},
        {"workloads-policy", "SFK_WORKLOADS_POLICY", CONFIG_STRING, "policies/workloads.json", 0,
         "Workload ids come from this file's \"workloads\"", .dest = &g_policy},
        {"group-prefix", "SFK_GROUP_PREFIX", CONFIG_STRING, "sfk.", 0,
         "Workers' consumer groups are <prefix><workload>", .dest = &g_group_prefix},
        {"loader-group", "SFK_LOADER_GROUP", CONFIG_STRING, "sfk.loader", 0,
         "Consumer group of sfk-loader (lag of the flywheel topic)", .dest = &g_loader_group},
        {"timeout", "SFK_CLI_TIMEOUT", CONFIG_DURATION, "10s", 0, "Budget of each Kafka request",
         .dest = &g_timeout, .min = 100, .max = 600000},
        CLI_ENTRY_JSON(&g_json),
};

static void fill_conf(struct topics_conf *c)
{
	c->prefix = g_prefix;
	c->extra_entities = g_extra;
	c->workloads_policy = g_policy;
	c->group_prefix = g_group_prefix;
	c->loader_group = g_loader_group;
	c->retention_ms = g_retention;
	c->dlq_retention_ms = g_dlq_retention;
}

static bool is_mock(void)
{
	const char *k = getenv("SFK_KAFKA_KIND");
	return k && strcmp(k, "mock") == 0;
}

/* After a failed CreateTopics: topics named in err failed; when err names
 * none of them (a request-level error) every topic we tried failed. */
static void mark_failed(json_t *state, const char *err)
{
	size_t i;
	json_t *t;
	int named = 0;
	json_array_foreach(state, i, t)
	{
		const char *name = json_string_value(json_object_get(t, "name"));
		char needle[KAFKA_TOPIC_MAX + 4];
		snprintf(needle, sizeof needle, "%s: ", name);
		if (strstr(err, needle)) {
			json_object_set_new(t, "result", json_string("failed"));
			named = 1;
		}
	}
	if (named)
		return;
	json_array_foreach(state, i, t)
	{
		if (strcmp(json_string_value(json_object_get(t, "result")), "created") == 0)
			json_object_set_new(t, "result", json_string("failed"));
	}
}

static int do_create(json_t *expected)
{
	char err[4096];
	json_t *state =
	        topics_inspect(g_bootstrap, expected, (int)g_timeout, false, err, sizeof err);
	struct kafka_admin *a = NULL;
	struct kafka_topic_spec *specs = NULL;
	char **cfgs = NULL;
	size_t n = 0, i;
	json_t *t;
	int rc = CLI_FAIL;
	bool mock = is_mock();
	if (!state) {
		fprintf(stderr, "sfk topics: %s\n", err);
		return CLI_FAIL;
	}
	specs = xcalloc(json_array_size(state) + 1, sizeof *specs);
	cfgs = xcalloc(2 * json_array_size(state) + 1, sizeof *cfgs);
	json_array_foreach(state, i, t)
	{
		if (json_is_true(json_object_get(t, "exists"))) {
			json_object_set_new(t, "result", json_string("exists"));
			continue;
		}
		json_object_set_new(t, "result", json_string(mock ? "auto-create" : "created"));
		if (mock)
			continue;
		const char **kv = xcalloc(3, sizeof *kv);
		cfgs[2 * n] = xasprintf("cleanup.policy=%s",
		                        json_string_value(json_object_get(t, "cleanup.policy")));
		kv[0] = cfgs[2 * n];
		if (json_object_get(t, "retention.ms")) {
			cfgs[2 * n + 1] = xasprintf(
			        "retention.ms=%lld",
			        (long long)json_integer_value(json_object_get(t, "retention.ms")));
			kv[1] = cfgs[2 * n + 1];
		}
		specs[n].name = json_string_value(json_object_get(t, "name"));
		specs[n].partitions = (int)g_partitions;
		specs[n].replication = (int)g_replication;
		specs[n].config = kv;
		n++;
	}
	if (mock)
		fprintf(stderr,
		        "sfk topics: note: SFK_KAFKA_KIND=mock (sfk-devkafka): its CreateTopics "
		        "is unsupported, so the missing topics are auto-created on first use "
		        "with the mock's defaults (partitions/retention not applied)\n");
	if (n) {
		if (!(a = kafka_admin_new(g_bootstrap, NULL, err, sizeof err))) {
			fprintf(stderr, "sfk topics: %s\n", err);
			goto out;
		}
		enum sfk_err e =
		        kafka_admin_create_topics(a, specs, n, (int)g_timeout, err, sizeof err);
		if (e != SFK_OK) {
			fprintf(stderr, "sfk topics: create failed: %s%s", err,
			        err[0] && err[strlen(err) - 1] == '\n' ? "" : "\n");
			if (e == SFK_ERR_TIMEOUT)
				fprintf(stderr,
				        "sfk topics: hint: a broker without CreateTopics (the "
				        "librdkafka mock) needs SFK_KAFKA_KIND=mock\n");
			mark_failed(state, err);
			goto print;
		}
	}
	rc = CLI_OK;
print:
	if (g_json) {
		json_t *o = json_array();
		json_array_foreach(state, i, t) json_array_append_new(
		        o, json_pack("{s:O, s:O}", "name", json_object_get(t, "name"), "result",
		                     json_object_get(t, "result")));
		cli_print_json(o);
		json_decref(o);
	} else {
		const char *hdr[] = {"TOPIC", "RESULT", "CLEANUP"};
		struct cli_table *tb = cli_table_new(3, hdr);
		json_array_foreach(state, i, t)
		{
			const char *row[] = {
			        json_string_value(json_object_get(t, "name")),
			        json_string_value(json_object_get(t, "result")),
			        json_string_value(json_object_get(t, "cleanup.policy"))};
			cli_table_add(tb, row);
		}
		cli_table_print(tb);
		cli_table_free(&tb);
	}
out:
	for (i = 0; i < n; i++)
		free((void *)specs[i].config);
	for (i = 0; cfgs && i < 2 * json_array_size(state); i++)
		free(cfgs[i]);
	free(cfgs);
	free(specs);
	kafka_admin_destroy(&a);
	json_decref(state);
	return rc;
}

static void fmt_ms(char *buf, size_t n, json_t *ms)
{
	if (!json_is_integer(ms)) {
		snprintf(buf, n, "-");
		return;
	}
	long long v = json_integer_value(ms);
	if (v < 0)
		snprintf(buf, n, "infinite");
	else if (v % 3600000 == 0)
		snprintf(buf, n, "%lldh", v / 3600000);
	else
		snprintf(buf, n, "%lldms", v);
}

/* Problems of one inspected topic ("" when fine), against the expected
 * cleanup.policy and partition count. */
void topics_problem(json_t *t, long long want_partitions, char *buf, size_t n)
{
	buf[0] = '\0';
	if (!json_is_true(json_object_get(t, "exists"))) {
		snprintf(buf, n, "missing");
		return;
	}
	const char *want = json_string_value(json_object_get(t, "cleanup.policy"));
	const char *have = json_string_value(json_object_get(t, "actual_cleanup.policy"));
	long long np = json_integer_value(json_object_get(t, "partitions"));
	if (have && want && strcmp(have, want) != 0)
		snprintf(buf, n, "cleanup.policy is %s, want %s", have, want);
	else if (want_partitions > 0 && np < want_partitions)
		snprintf(buf, n, "%lld partitions, want %lld", np, want_partitions);
}

static int do_describe(json_t *expected)
{
	char err[4096];
	json_t *state =
	        topics_inspect(g_bootstrap, expected, (int)g_timeout, true, err, sizeof err);
	size_t i;
	json_t *t;
	int rc = CLI_OK;
	if (!state) {
		fprintf(stderr, "sfk topics: %s\n", err);
		return CLI_FAIL;
	}
	json_array_foreach(state, i, t)
	{
		char p[256];
		topics_problem(t, 0, p, sizeof p);
		if (p[0] && is_mock() && !json_is_true(json_object_get(t, "exists"))) {
			/* not a problem on the mock: its first producer creates it */
			json_object_set_new(
			        t, "problem",
			        json_string("not created yet (mock: auto-created on first use)"));
			continue;
		}
		json_object_set_new(t, "problem", p[0] ? json_string(p) : json_null());
		if (p[0])
			rc = CLI_FAIL;
	}
	if (g_json) {
		cli_print_json(state);
	} else {
		const char *hdr[] = {"TOPIC",   "PARTITIONS", "REPLICAS", "RETENTION",
		                     "CLEANUP", "GROUP",      "LAG",      "PROBLEM"};
		struct cli_table *tb = cli_table_new(8, hdr);
		json_array_foreach(state, i, t)
		{
			char parts[32] = "-", repl[32] = "-", ret[64], lag[32] = "-";
			if (json_object_get(t, "partitions"))
				snprintf(parts, sizeof parts, "%lld",
				         (long long)json_integer_value(
				                 json_object_get(t, "partitions")));
			if (json_object_get(t, "replication"))
				snprintf(repl, sizeof repl, "%lld",
				         (long long)json_integer_value(
				                 json_object_get(t, "replication")));
			fmt_ms(ret, sizeof ret, json_object_get(t, "actual_retention.ms"));
			if (json_is_integer(json_object_get(t, "lag")))
				snprintf(lag, sizeof lag, "%lld",
				         (long long)json_integer_value(json_object_get(t, "lag")));
			const char *row[] = {
			        json_string_value(json_object_get(t, "name")),
			        parts,
			        repl,
			        ret,
			        json_string_value(json_object_get(t, "actual_cleanup.policy")),
			        json_string_value(json_object_get(t, "group")),
			        lag,
			        json_string_value(json_object_get(t, "problem"))};
			cli_table_add(tb, row);
		}
		cli_table_print(tb);
		cli_table_free(&tb);
	}
	json_decref(state);
	return rc;
}

int cmd_topics(int argc, char **argv)
{
	struct config *cfg = NULL;
	json_t *expected = NULL;
	int rc = cli_config(&cfg, "sfk topics", "create|describe [options]", table,
	                    sizeof table / sizeof table[0], argc, argv);
	if (rc != CONFIG_RUN)
		goto out;
	rc = CLI_USAGE;
	if (config_nargs(cfg) != 1) {
		fprintf(stderr, "sfk topics: say create or describe (see 'sfk topics --help')\n");
		goto out;
	}
	if (!g_bootstrap) {
		fprintf(stderr,
		        "sfk topics: KAFKA_BOOTSTRAP_SERVERS (--kafka-bootstrap-servers) is "
		        "not set\n");
		goto out;
	}
	if (g_replication == 0) {
		fprintf(stderr, "sfk topics: --replication must be >= 1, or -1 for the broker's "
		                "default\n");
		goto out;
	}
	struct topics_conf tc;
	fill_conf(&tc);
	expected = topics_expected(&tc);
	const char *verb = config_arg(cfg, 0);
	if (strcmp(verb, "create") == 0)
		rc = do_create(expected);
	else if (strcmp(verb, "describe") == 0)
		rc = do_describe(expected);
	else
		fprintf(stderr, "sfk topics: unknown action '%s' (create or describe)\n", verb);
out:
	json_decref(expected);
	config_free(&cfg);
	return rc;
}
