/*
 * dlq.c - `sfk dlq list|show|retry --workload W`: the dead letters of a
 * workload (or of the bridge/loader) with their reasons, from the headers the
 * producers set (workers/loop.c: sfk.error_class, sfk.error_code,
 * sfk.error_message, sfk.source_topic/partition/offset, sfk.attempts,
 * sfk.event_id; bridge/publish.c: sfk.error_code, sfk.error_class,
 * sfk.error_reason, sfk.channel). retry sends them back to the workload
 * topic; `retry --all` remembers what it sent in the consumer group
 * <group-prefix>dlq-retry.<W>, so a second run sends only newer letters.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "cli.h"
#include "kafka.h"
#include "xmem.h"

#define DLQ_MAX_PARTITIONS 1024
#define DLQ_VALUE_SHOW_MAX (1024 * 1024) /* show prints at most this much of a payload */

static const char *g_bootstrap, *g_prefix, *g_workload, *g_group_prefix, *g_code;
static const char *g_offsets;
static long long g_timeout, g_limit;
static bool g_json, g_all, g_dry_run;

static const struct config_entry table[] = {
        {"workload", NULL, CONFIG_STRING, NULL, 0,
         "Workload id (lead.route ...), or bridge / loader for their DLQs", .dest = &g_workload},
        CLI_ENTRY_BOOTSTRAP(&g_bootstrap),
        CLI_ENTRY_PREFIX(&g_prefix),
        {"group-prefix", "SFK_GROUP_PREFIX", CONFIG_STRING, "sfk.", 0,
         "retry --all records its progress in the group <prefix>dlq-retry.<workload>",
         .dest = &g_group_prefix},
        {"offset", NULL, CONFIG_STRING, NULL, 0,
         "show/retry only these letters: PARTITION:OFFSET[,PARTITION:OFFSET...]",
         .dest = &g_offsets},
        {"code", NULL, CONFIG_STRING, NULL, 0, "only letters with this error code",
         .dest = &g_code},
        {"all", NULL, CONFIG_BOOL, "false", 0,
         "retry: every letter not retried before (progress kept in the retry group)",
         .dest = &g_all},
        {"dry-run", NULL, CONFIG_BOOL, "false", 0, "retry: print what would be sent, send nothing",
         .dest = &g_dry_run},
        {"limit", NULL, CONFIG_INT, "0", 0, "list at most this many letters (0: all)",
         .dest = &g_limit, .min = 0, .max = 100000000},
        {"timeout", "SFK_CLI_TIMEOUT", CONFIG_DURATION, "10s", 0, "Budget of each Kafka request",
         .dest = &g_timeout, .min = 100, .max = 600000},
        CLI_ENTRY_JSON(&g_json),
};

/* One dead letter as JSON: partition, offset, timestamp, key, value,
 * headers{}, and the reason fields pulled out of the headers. */
static json_t *letter_json(const rd_kafka_message_t *m)
{
	json_t *o = json_object(), *h = json_object();
	rd_kafka_headers_t *hdrs = NULL;
	rd_kafka_timestamp_type_t tt;
	int64_t ts = rd_kafka_message_timestamp(m, &tt);
	json_object_set_new(o, "partition", json_integer(m->partition));
	json_object_set_new(o, "offset", json_integer(m->offset));
	json_object_set_new(o, "timestamp_ms", ts >= 0 ? json_integer(ts) : json_null());
	json_object_set_new(o, "key", m->key ? json_stringn(m->key, m->key_len) : json_null());
	if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		const char *name;
		const void *val;
		size_t len;
		for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &val, &len); i++)
			json_object_set_new(h, name, val ? json_stringn(val, len) : json_null());
	}
	json_object_set_new(o, "headers", h);
	json_t *v = m->payload ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
	if (!v && m->payload)
		v = json_stringn(m->payload,
		                 m->len < DLQ_VALUE_SHOW_MAX ? m->len : DLQ_VALUE_SHOW_MAX);
	json_object_set_new(o, "value", v ? v : json_null());
	/* retry sends the original bytes back; NULL when they are not UTF-8 text
	 * (then the parsed value is re-serialized) */
	json_t *raw = m->payload ? json_stringn(m->payload, m->len) : NULL;
	if (raw)
		json_object_set_new(o, "_raw", raw);
	static const char *const fields[][3] = {
	        {"error_class", "sfk.error_class", NULL},
	        {"error_code", "sfk.error_code", NULL},
	        {"error_message", "sfk.error_message", "sfk.error_reason"}, /* worker, bridge */
	        {"source_topic", "sfk.source_topic", NULL},
	        {"source_partition", "sfk.source_partition", NULL},
	        {"source_offset", "sfk.source_offset", NULL},
	        {"attempts", "sfk.attempts", NULL},
	        {"event_id", "sfk.event_id", NULL},
	};
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		json_t *hv = json_object_get(h, fields[i][1]);
		if (!hv && fields[i][2])
			hv = json_object_get(h, fields[i][2]);
		json_object_set(o, fields[i][0], hv ? hv : json_null());
	}
	return o;
}

/* Does a letter pass --offset / --code? */
static bool selected(json_t *l, json_t *offsets)
{
	if (g_code) {
		const char *c = json_string_value(json_object_get(l, "error_code"));
		if (!c || strcmp(c, g_code) != 0)
			return false;
	}
	if (json_array_size(offsets) == 0)
		return true;
	char id[48];
	snprintf(id, sizeof id, "%lld:%lld",
	         (long long)json_integer_value(json_object_get(l, "partition")),
	         (long long)json_integer_value(json_object_get(l, "offset")));
	size_t i;
	json_t *v;
	json_array_foreach(offsets, i, v) if (strcmp(json_string_value(v), id) == 0) return true;
	return false;
}

/*
 * Read the whole DLQ topic (every partition from its start, or from the retry
 * group's committed offset when from_committed) up to its end. Returns a new
 * array of letters, or NULL with errstr. *committed (new reference, may be
 * NULL) receives {partition: committed offset} of the retry group.
 */
static json_t *read_topic(const char *topic, const char *group, bool from_committed,
                          json_t **committed, char *errstr, size_t errsize)
{
	char tmo[48], gid[KAFKA_TOPIC_MAX + 48];
	snprintf(tmo, sizeof tmo, "socket.timeout.ms=%lld", g_timeout);
	snprintf(gid, sizeof gid, "group.id=%s", group);
	const char *props[] = {tmo,
	                       gid,
	                       "enable.partition.eof=true",
	                       "enable.auto.commit=false",
	                       "isolation.level=read_committed",
	                       NULL};
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *parts = NULL;
	json_t *out = NULL;
	char err[KAFKA_ERRSTR_MAX];
	rd_kafka_conf_t *conf = kafka_conf_new(g_bootstrap, props, errstr, errsize);
	rd_kafka_t *rk = conf ? rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err) : NULL;
	if (!conf)
		return NULL;
	if (!rk) {
		snprintf(errstr, errsize, "%s", err);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, (int)g_timeout);
	rd_kafka_topic_destroy(rkt);
	if (e || md->topic_cnt != 1 || md->topics[0].err) {
		snprintf(errstr, errsize, "topic %s: %s", topic,
		         rd_kafka_err2str(e               ? e
		                          : md->topic_cnt ? md->topics[0].err
		                                          : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
		goto out;
	}
	int np = md->topics[0].partition_cnt;
	if (np > DLQ_MAX_PARTITIONS)
		np = DLQ_MAX_PARTITIONS;
	parts = rd_kafka_topic_partition_list_new(np);
	for (int p = 0; p < np; p++)
		rd_kafka_topic_partition_list_add(parts, topic, p);
	if (committed) {
		*committed = json_object();
		if (rd_kafka_committed(rk, parts, (int)g_timeout) == RD_KAFKA_RESP_ERR_NO_ERROR)
			for (int p = 0; p < parts->cnt; p++) {
				char k[16];
				snprintf(k, sizeof k, "%d", p);
				if (parts->elems[p].offset >= 0)
					json_object_set_new(*committed, k,
					                    json_integer(parts->elems[p].offset));
			}
	}
	/* Empty partitions never report EOF before the first fetch; count them
	 * done up front. */
	int done = 0;
	for (int p = 0; p < parts->cnt; p++) {
		int64_t lo = 0, hi = 0;
		/* A partition of a topic created a moment ago may still be
		 * electing its leader: ask again until the timeout. */
		rd_kafka_resp_err_t werr;
		long long waited = 0;
		while ((werr = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi,
		                                                (int)g_timeout)) != 0 &&
		       waited < g_timeout) {
			struct timespec ts = {0, 200 * 1000000L};
			nanosleep(&ts, NULL);
			waited += 200;
		}
		if (werr) {
			snprintf(errstr, errsize, "%s [%d]: watermarks not available: %s", topic, p,
			         rd_kafka_err2str(werr));
			goto out;
		}
		int64_t start = RD_KAFKA_OFFSET_BEGINNING;
		if (from_committed && parts->elems[p].offset >= 0)
			start = parts->elems[p].offset;
		parts->elems[p].offset = start;
		if (hi <= lo || (start >= 0 && start >= hi)) {
			parts->elems[p].offset = RD_KAFKA_OFFSET_END;
			done++;
		}
	}
	if ((e = rd_kafka_assign(rk, parts))) {
		snprintf(errstr, errsize, "assign: %s", rd_kafka_err2str(e));
		goto out;
	}
	out = json_array();
	int *eof = xcalloc((size_t)np, sizeof *eof);
	for (int p = 0; p < parts->cnt; p++)
		eof[p] = parts->elems[p].offset == RD_KAFKA_OFFSET_END;
	while (done < np) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, (int)g_timeout);
		if (!m) {
			snprintf(errstr, errsize, "%s: no data within %lld ms before the end",
			         topic, g_timeout);
			json_decref(out);
			out = NULL;
			break;
		}
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (m->partition >= 0 && m->partition < np && !eof[m->partition]) {
				eof[m->partition] = 1;
				done++;
			}
		} else if (m->err) {
			snprintf(errstr, errsize, "%s: %s", topic, rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			json_decref(out);
			out = NULL;
			break;
		} else {
			json_array_append_new(out, letter_json(m));
		}
		rd_kafka_message_destroy(m);
	}
	free(eof);
out:
	if (parts)
		rd_kafka_topic_partition_list_destroy(parts);
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return out;
}

/* Remember retried letters: commit offset+1 of the last one per partition. */
static int commit_progress(const char *topic, const char *group, json_t *last, char *errstr,
                           size_t errsize)
{
	char tmo[48], gid[KAFKA_TOPIC_MAX + 48], err[KAFKA_ERRSTR_MAX];
	snprintf(tmo, sizeof tmo, "socket.timeout.ms=%lld", g_timeout);
	snprintf(gid, sizeof gid, "group.id=%s", group);
	const char *props[] = {tmo, gid, "enable.auto.commit=false", NULL};
	rd_kafka_conf_t *conf = kafka_conf_new(g_bootstrap, props, errstr, errsize);
	rd_kafka_t *rk = conf ? rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err) : NULL;
	int rc = -1;
	if (!rk) {
		if (conf) {
			snprintf(errstr, errsize, "%s", err);
			rd_kafka_conf_destroy(conf);
		}
		return -1;
	}
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
	const char *k;
	json_t *v;
	json_object_foreach(last, k, v)
	{
		char *end;
		errno = 0;
		long p = strtol(k, &end, 10);
		if (errno || *end)
			continue;
		rd_kafka_topic_partition_list_add(parts, topic, (int32_t)p)->offset =
		        json_integer_value(v) + 1;
	}
	rd_kafka_resp_err_t e = rd_kafka_commit(rk, parts, 0);
	if (e)
		snprintf(errstr, errsize, "commit retry progress to group %s: %s", group,
		         rd_kafka_err2str(e));
	else
		rc = 0;
	rd_kafka_topic_partition_list_destroy(parts);
	rd_kafka_destroy(rk);
	return rc;
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "-";
}

static int cmp_letter(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	json_int_t px = json_integer_value(json_object_get(x, "partition"));
	json_int_t py = json_integer_value(json_object_get(y, "partition"));
	json_int_t ox = json_integer_value(json_object_get(x, "offset"));
	json_int_t oy = json_integer_value(json_object_get(y, "offset"));
	return px != py ? (px < py ? -1 : 1) : ox != oy ? (ox < oy ? -1 : 1) : 0;
}

/* By partition, then offset: the order an operator reads them in. */
static void sort_letters(json_t *a)
{
	size_t n = json_array_size(a);
	json_t **v = xcalloc(n ? n : 1, sizeof *v);
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(a, i));
	qsort(v, n, sizeof *v, cmp_letter);
	json_array_clear(a);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, v[i]);
	free(v);
}

static void print_list(json_t *letters)
{
	if (g_json) {
		cli_print_json(letters);
		return;
	}
	const char *hdr[] = {"PARTITION:OFFSET", "KEY",    "CLASS",   "CODE",
	                     "ATTEMPTS",         "SOURCE", "RETRIED", "MESSAGE"};
	struct cli_table *t = cli_table_new(8, hdr);
	size_t i;
	json_t *l;
	bool tty = cli_stdout_tty();
	json_array_foreach(letters, i, l)
	{
		char po[48], src[KAFKA_TOPIC_MAX + 64] = "-", msg[121];
		snprintf(po, sizeof po, "%lld:%lld",
		         (long long)json_integer_value(json_object_get(l, "partition")),
		         (long long)json_integer_value(json_object_get(l, "offset")));
		if (json_object_get(l, "source_topic") != json_null())
			snprintf(src, sizeof src, "%s[%s]@%s", str(l, "source_topic"),
			         str(l, "source_partition"), str(l, "source_offset"));
		else if (json_string_value(
		                 json_object_get(json_object_get(l, "headers"), "sfk.channel")))
			snprintf(src, sizeof src, "%s",
			         json_string_value(json_object_get(json_object_get(l, "headers"),
			                                           "sfk.channel")));
		/* a terminal gets a readable width; a pipe gets the whole message */
		const char *m = str(l, "error_message");
		if (tty && strlen(m) > 120)
			snprintf(msg, sizeof msg, "%.117s...", m);
		const char *row[] = {po,
		                     str(l, "key"),
		                     str(l, "error_class"),
		                     str(l, "error_code"),
		                     str(l, "attempts"),
		                     src,
		                     json_is_true(json_object_get(l, "retried")) ? "yes" : "no",
		                     tty && strlen(m) > 120 ? msg : m};
		cli_table_add(t, row);
	}
	cli_table_print(t);
	cli_table_free(&t);
}

static void print_show(json_t *letters)
{
	if (g_json) {
		cli_print_json(letters);
		return;
	}
	size_t i;
	json_t *l;
	json_array_foreach(letters, i, l)
	{
		printf("letter %lld:%lld\n",
		       (long long)json_integer_value(json_object_get(l, "partition")),
		       (long long)json_integer_value(json_object_get(l, "offset")));
		printf("  key:      %s\n", str(l, "key"));
		printf("  error:    %s %s\n", str(l, "error_class"), str(l, "error_code"));
		printf("  message:  %s\n", str(l, "error_message"));
		printf("  source:   %s [%s] @ %s\n", str(l, "source_topic"),
		       str(l, "source_partition"), str(l, "source_offset"));
		printf("  attempts: %s\n", str(l, "attempts"));
		printf("  headers:\n");
		const char *k;
		json_t *v;
		json_object_foreach(json_object_get(l, "headers"), k, v) printf(
		        "    %s: %s\n", k, json_is_string(v) ? json_string_value(v) : "(null)");
		char *val = json_dumps(json_object_get(l, "value"),
		                       JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
		printf("  value:\n%s\n\n", val ? val : "null");
		free(val);
	}
}

/* Headers a retried record keeps: everything but the DLQ's own. */
static bool keep_header(const char *name)
{
	static const char *const drop[] = {"sfk.error_", "sfk.source_", "sfk.attempts",
	                                   "sfk.retry_of"};
	for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
		if (strncmp(name, drop[i], strlen(drop[i])) == 0)
			return false;
	return true;
}

static int do_retry(const char *dlq_topic, const char *wl_topic, json_t *letters, json_t *all_read)
{
	char err[KAFKA_ERRSTR_MAX * 2];
	struct kafka_producer *p = NULL;
	json_t *last = json_object();
	int rc = CLI_FAIL;
	size_t i, n = 0;
	json_t *l;
	if (!g_dry_run && json_array_size(letters) &&
	    !(p = kafka_producer_new(g_bootstrap, NULL, NULL, err, sizeof err))) {
		fprintf(stderr, "sfk dlq: %s\n", err);
		goto out;
	}
	json_array_foreach(letters, i, l)
	{
		struct kafka_header h[KAFKA_HEADERS_MAX];
		size_t nh = 0;
		char retry_of[KAFKA_TOPIC_MAX + 48];
		const char *k;
		json_t *v;
		json_object_foreach(json_object_get(l, "headers"), k, v)
		{
			if (!keep_header(k) || nh + 1 >= KAFKA_HEADERS_MAX)
				continue;
			const char *s = json_string_value(v);
			h[nh++] = (struct kafka_header){k, s, s ? strlen(s) : 0};
		}
		snprintf(retry_of, sizeof retry_of, "%s/%lld/%lld", dlq_topic,
		         (long long)json_integer_value(json_object_get(l, "partition")),
		         (long long)json_integer_value(json_object_get(l, "offset")));
		h[nh++] = (struct kafka_header){"sfk.retry_of", retry_of, strlen(retry_of)};
		json_t *val = json_object_get(l, "value");
		json_t *raw = json_object_get(l, "_raw");
		char *text = raw ? xstrdup(json_string_value(raw))
		             : json_is_string(val)
		                     ? xstrdup(json_string_value(val))
		                     : json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY);
		const char *key = json_string_value(json_object_get(l, "key"));
		if (!g_dry_run) {
			enum sfk_err e = kafka_produce(p, wl_topic, key, key ? strlen(key) : 0,
			                               text, strlen(text), h, nh, err, sizeof err);
			if (e != SFK_OK) {
				fprintf(stderr, "sfk dlq: produce %s: %s\n", retry_of, err);
				free(text);
				goto out;
			}
		}
		free(text);
		if (!g_json)
			printf("%s %s -> %s (key %s)\n", g_dry_run ? "would retry" : "retried",
			       retry_of, wl_topic, key ? key : "-");
		n++;
	}
	if (p && kafka_producer_flush(p, (int)g_timeout, err, sizeof err) != SFK_OK) {
		fprintf(stderr, "sfk dlq: delivery to %s: %s\n", wl_topic, err);
		goto out;
	}
	/* --all: everything read is done with (the next --all starts after it). */
	json_array_foreach(all_read, i, l)
	{
		char pk[16];
		snprintf(pk, sizeof pk, "%lld",
		         (long long)json_integer_value(json_object_get(l, "partition")));
		json_object_set(last, pk, json_object_get(l, "offset"));
	}
	if (g_all && g_code && !g_dry_run) {
		/* the other letters were not handled: record no progress for them */
		fprintf(stderr, "sfk dlq: --code given: retry progress not recorded\n");
	} else if (g_all && !g_dry_run && json_object_size(last)) {
		char group[KAFKA_TOPIC_MAX + 32];
		snprintf(group, sizeof group, "%sdlq-retry.%s", g_group_prefix, g_workload);
		if (commit_progress(dlq_topic, group, last, err, sizeof err)) {
			fprintf(stderr,
			        "sfk dlq: %s (the letters were sent; a second --all would send "
			        "them again)\n",
			        err);
			goto out;
		}
	}
	if (g_json) {
		json_t *o = json_pack("{s:i, s:s, s:b}", "retried", (int)n, "topic", wl_topic,
		                      "dry_run", g_dry_run);
		cli_print_json(o);
		json_decref(o);
	} else if (n == 0)
		printf("nothing to retry\n");
	rc = CLI_OK;
out:
	json_decref(last);
	kafka_producer_destroy(&p);
	return rc;
}

int cmd_dlq(int argc, char **argv)
{
	struct config *cfg = NULL;
	json_t *letters = NULL, *sel = json_array(), *offsets = NULL, *committed = NULL;
	char err[1024], dlq_topic[KAFKA_TOPIC_MAX + 1], wl_topic[KAFKA_TOPIC_MAX + 1],
	        group[KAFKA_TOPIC_MAX + 32];
	int rc = cli_config(&cfg, "sfk dlq", "list|show|retry --workload W [options]", table,
	                    sizeof table / sizeof table[0], argc, argv);
	if (rc != CONFIG_RUN)
		goto out;
	rc = CLI_USAGE;
	const char *verb = config_nargs(cfg) == 1 ? config_arg(cfg, 0) : "";
	if (strcmp(verb, "list") != 0 && strcmp(verb, "show") != 0 && strcmp(verb, "retry") != 0) {
		fprintf(stderr, "sfk dlq: say list, show or retry (see 'sfk dlq --help')\n");
		goto out;
	}
	if (!g_workload || !*g_workload) {
		fprintf(stderr, "sfk dlq: --workload is required\n");
		goto out;
	}
	if (!g_bootstrap) {
		fprintf(stderr, "sfk dlq: KAFKA_BOOTSTRAP_SERVERS is not set\n");
		goto out;
	}
	bool is_retry = strcmp(verb, "retry") == 0;
	bool infra = strcmp(g_workload, "bridge") == 0 || strcmp(g_workload, "loader") == 0;
	if (is_retry && infra) {
		fprintf(stderr,
		        "sfk dlq: the %s's dead letters have no workload topic to go back to; "
		        "inspect them with list/show\n",
		        g_workload);
		goto out;
	}
	if (is_retry && !g_all && !g_offsets) {
		fprintf(stderr, "sfk dlq: retry needs --offset P:O[,...] or --all\n");
		goto out;
	}
	offsets = cli_split(g_offsets);
	snprintf(dlq_topic, sizeof dlq_topic, "%sdlq.%s", g_prefix, g_workload);
	snprintf(wl_topic, sizeof wl_topic, "%swl.%s", g_prefix, g_workload);
	snprintf(group, sizeof group, "%sdlq-retry.%s", g_group_prefix, g_workload);
	letters = read_topic(dlq_topic, group, is_retry && g_all, &committed, err, sizeof err);
	if (!letters) {
		fprintf(stderr, "sfk dlq: %s\n", err);
		rc = CLI_FAIL;
		goto out;
	}
	size_t i;
	json_t *l;
	json_array_foreach(letters, i, l)
	{
		char pk[16];
		snprintf(pk, sizeof pk, "%lld",
		         (long long)json_integer_value(json_object_get(l, "partition")));
		json_t *c = json_object_get(committed, pk);
		json_object_set_new(
		        l, "retried",
		        json_boolean(c && json_integer_value(json_object_get(l, "offset")) <
		                                  json_integer_value(c)));
		if (selected(l, offsets) && (!g_limit || (long long)json_array_size(sel) < g_limit))
			json_array_append(sel, l);
	}
	sort_letters(sel);
	rc = CLI_OK;
	if (!is_retry)
		json_array_foreach(sel, i, l) json_object_del(l, "_raw");
	if (strcmp(verb, "list") == 0) {
		print_list(sel);
		if (!g_json)
			fprintf(stderr, "%zu dead letter(s) in %s\n", json_array_size(sel),
			        dlq_topic);
	} else if (strcmp(verb, "show") == 0) {
		print_show(sel);
		if (json_array_size(offsets) && json_array_size(sel) < json_array_size(offsets)) {
			fprintf(stderr, "sfk dlq: some --offset letters are not in %s\n",
			        dlq_topic);
			rc = CLI_FAIL;
		}
	} else {
		rc = do_retry(dlq_topic, wl_topic, sel, g_all ? letters : NULL);
	}
out:
	json_decref(committed);
	json_decref(offsets);
	json_decref(sel);
	json_decref(letters);
	config_free(&cfg);
	return rc;
}
