/*
 * main.c - sfk-loader: drain sfk.flywheel into JSONL files and/or
 * Elasticsearch (loader.c), or `sfk-loader export ...` training data from
 * the JSONL files (export.c).
 *
 * Shutdown (SIGTERM/SIGINT): the loop stops fetching, finishes or abandons
 * the open batch (abandoned = not committed = redelivered), closes the
 * consumer, flushes the DLQ producer, closes the sinks.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "admin.h"
#include "config.h"
#include "export.h"
#include "loader.h"
#include "log.h"
#include "xmem.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static const char *g_bootstrap, *g_topic, *g_group, *g_dlq, *g_schema, *g_sinks, *g_dir, *g_es_url,
        *g_es_layout, *g_es_index, *g_es_mapping, *g_admin_addr, *g_log_level, *g_workload, *g_from,
        *g_to, *g_format;
static long long g_batch, g_linger_ms, g_max_bytes, g_compress_ms, g_retention_ms, g_es_docs,
        g_es_bytes, g_es_timeout_ms, g_es_backoff_ms;

static const char *const level_values[] = {"debug", "info", "warn", "error", NULL};
static const char *const layout_values[] = {"single", "monthly", NULL};
static const char *const format_values[] = {"openai-chat", NULL};

static void check_sinks(struct config *c, const struct config_entry *e)
{
	char *copy = xstrdup(*(const char **)e->dest), *save = NULL;
	size_t n = 0;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!sink_find(t))
			config_problem(c, e, "unknown sink '%s' (jsonl, es)", t);
		n++;
	}
	if (n == 0 || n > LOADER_MAX_SINKS)
		config_problem(c, e, "name 1 to %d sinks", LOADER_MAX_SINKS);
	free(copy);
}

static bool is_export(const struct config *c)
{
	return config_nargs(c) > 0 && strcmp(config_arg(c, 0), "export") == 0;
}

static bool has_sink(const char *name)
{
	size_t n = strlen(name);
	for (const char *p = g_sinks; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == n && strncmp(p, name, n) == 0)
			return true;
		p = comma ? comma + 1 : NULL;
	}
	return false;
}

static void validate(struct config *c, void *ctx)
{
	(void)ctx;
	if (config_nargs(c) > 0 && !is_export(c))
		config_problem(c, NULL, "unknown command '%s' (only: export)", config_arg(c, 0));
	if (is_export(c)) {
		if (!g_workload || !g_from || !g_to)
			config_problem(c, NULL, "export needs --workload, --from and --to");
		return;
	}
	if (!g_bootstrap)
		config_problem(c, NULL,
		               "--kafka-bootstrap-servers (KAFKA_BOOTSTRAP_SERVERS) is required");
	if (has_sink("es") && !g_es_url)
		config_problem(c, NULL, "--es-url (ES_URL) is required with the es sink");
	/* Checked here, not as CONFIG_PATHs: export reads only the JSONL files, and a
	 * JSONL-only loader needs no mapping. */
	if (access(g_schema, R_OK) != 0)
		config_problem(c, NULL,
		               "--flywheel-schema (SFK_FLYWHEEL_SCHEMA): cannot read %s: %s",
		               g_schema, strerror(errno));
	if (has_sink("es") && g_es_mapping && access(g_es_mapping, R_OK) != 0)
		config_problem(c, NULL, "--es-mapping (SFK_LOADER_ES_MAPPING): cannot read %s",
		               g_es_mapping);
}

static const struct config_entry table[] = {
        {"kafka-bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS", CONFIG_STRING, NULL, 0,
         "Kafka brokers", .dest = &g_bootstrap},
        {"topic", "SFK_LOADER_TOPIC", CONFIG_STRING, "sfk.flywheel", CONFIG_REQUIRED,
         "Flywheel topic to drain", .dest = &g_topic},
        {"group", "SFK_LOADER_GROUP", CONFIG_STRING, "sfk.loader", CONFIG_REQUIRED,
         "Kafka consumer group", .dest = &g_group},
        {"dlq-topic", "SFK_LOADER_DLQ_TOPIC", CONFIG_STRING, "sfk.dlq.loader", CONFIG_REQUIRED,
         "Dead-letter topic for invalid or refused records", .dest = &g_dlq},
        {"flywheel-schema", "SFK_FLYWHEEL_SCHEMA", CONFIG_STRING, "schemas/flywheel.schema.json",
         CONFIG_REQUIRED, "JSON Schema every record must pass", .dest = &g_schema},
        {"sinks", "SFK_LOADER_SINKS", CONFIG_STRING, "jsonl", CONFIG_REQUIRED,
         "Comma-separated sinks: jsonl, es", .dest = &g_sinks, .check = check_sinks},
        {"batch-max", "SFK_LOADER_BATCH_MAX", CONFIG_INT, "500", 0,
         "Records per batch (one commit each)", .dest = &g_batch, .min = 1, .max = 100000},
        {"batch-linger", "SFK_LOADER_BATCH_LINGER", CONFIG_DURATION, "200ms", 0,
         "How long a batch waits for more records after its first", .dest = &g_linger_ms, .min = 0,
         .max = 60000},
        {"flywheel-dir", "FLYWHEEL_DIR", CONFIG_STRING, "/var/lib/sfk/flywheel", 0,
         "Directory of the JSONL files", .dest = &g_dir},
        {"jsonl-max-bytes", "SFK_LOADER_JSONL_MAX_BYTES", CONFIG_INT, "268435456", 0,
         "Size rotation: a day's file continues in <name>.<n>.jsonl past this",
         .dest = &g_max_bytes, .min = 4096, .max = 1LL << 40},
        {"jsonl-compress-after", "SFK_LOADER_JSONL_COMPRESS_AFTER", CONFIG_DURATION, "24h", 0,
         "gzip a day's files this long after the day ended (UTC)", .dest = &g_compress_ms, .min = 0,
         .max = 1LL << 40},
        {"jsonl-retention", "SFK_LOADER_JSONL_RETENTION", CONFIG_DURATION, "0", 0,
         "Delete files whose day ended longer ago than this (0 = keep forever)",
         .dest = &g_retention_ms, .min = 0, .max = 1LL << 45},
        {"es-url", "ES_URL", CONFIG_URL, NULL, 0, "Elasticsearch base URL (es sink)",
         .dest = &g_es_url},
        {"es-layout", "SFK_LOADER_ES_LAYOUT", CONFIG_ENUM, "single", 0,
         "single: one strict index; monthly: <index>-<workload>-YYYY-MM via an index template",
         .dest = &g_es_layout, .allowed = layout_values},
        {"es-index", "SFK_LOADER_ES_INDEX", CONFIG_STRING, "flywheel", 0,
         "Index name (single) or prefix (monthly)", .dest = &g_es_index},
        {"es-mapping", "SFK_LOADER_ES_MAPPING", CONFIG_STRING, "schemas/es_flywheel_index.json", 0,
         "Index settings+mappings installed by the loader", .dest = &g_es_mapping},
        {"es-bulk-docs", "SFK_LOADER_ES_BULK_DOCS", CONFIG_INT, "500", 0,
         "Documents per _bulk request", .dest = &g_es_docs, .min = 1, .max = 10000},
        {"es-bulk-bytes", "SFK_LOADER_ES_BULK_BYTES", CONFIG_INT, "5242880", 0,
         "Bytes per _bulk request", .dest = &g_es_bytes, .min = 1024, .max = 104857600},
        {"es-timeout", "SFK_LOADER_ES_TIMEOUT", CONFIG_DURATION, "30s", 0, "Per-request timeout",
         .dest = &g_es_timeout_ms, .min = 100, .max = 600000},
        {"es-backoff-max", "SFK_LOADER_ES_BACKOFF_MAX", CONFIG_DURATION, "10s", 0,
         "Longest pause between _bulk retries (429, 5xx)", .dest = &g_es_backoff_ms, .min = 10,
         .max = 600000},
        ADMIN_CONFIG_ENTRY(&g_admin_addr, ADMIN_DEFAULT_ADDR),
        {"log-level", "LOG_LEVEL", CONFIG_ENUM, "info", 0, "Minimum log level",
         .dest = &g_log_level, .allowed = level_values},
        {"workload", NULL, CONFIG_STRING, NULL, 0, "export: workload id", .dest = &g_workload},
        {"from", NULL, CONFIG_STRING, NULL, 0, "export: first day (YYYY-MM-DD, UTC)",
         .dest = &g_from},
        {"to", NULL, CONFIG_STRING, NULL, 0, "export: last day (inclusive)", .dest = &g_to},
        {"format", NULL, CONFIG_ENUM, "openai-chat", 0, "export: output format", .dest = &g_format,
         .allowed = format_values},
};

static int run_export(void)
{
	char err[1024];
	struct export_stats st;
	enum sfk_err rc = export_run(g_dir, g_workload, g_from, g_to, stdout, &st, err, sizeof err);
	if (rc != SFK_OK) {
		log_error("export failed error=%s reason=%s", sfk_err_str(rc), err);
		return rc == SFK_ERR_INVALID ? 2 : 1;
	}
	log_info("export done files=%zu read=%zu written=%zu duplicates=%zu skipped=%zu", st.files,
	         st.read, st.written, st.duplicates, st.skipped);
	return 0;
}

int main(int argc, char **argv)
{
	enum log_level lvl;
	log_init("sfk-loader");
	struct config *cfg = config_new("sfk-loader", table, sizeof table / sizeof table[0]);
	config_set_synopsis(cfg, "[options]  |  export --workload W --from DATE --to DATE "
	                         "[--format openai-chat] [--flywheel-dir DIR]");
	config_set_validator(cfg, validate, NULL);
	int rc = config_load(cfg, argc, argv);
	if (rc != CONFIG_RUN) {
		config_free(&cfg);
		return rc;
	}
	if (log_level_parse(g_log_level, &lvl) == 0)
		log_set_level(lvl);
	if (is_export(cfg)) {
		rc = run_export();
		config_free(&cfg);
		return rc;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread */

	struct loader_conf lc = {
	        .bootstrap = g_bootstrap,
	        .topic = g_topic,
	        .group = g_group,
	        .dlq_topic = g_dlq,
	        .schema_path = g_schema,
	        .admin_addr = g_admin_addr,
	        .batch_max = (size_t)g_batch,
	        .linger_ms = g_linger_ms,
	        .stop = &g_stop,
	        .sink =
	                {
	                        .dir = g_dir,
	                        .max_file_bytes = g_max_bytes,
	                        .compress_after_s = g_compress_ms / 1000,
	                        .retention_s = g_retention_ms / 1000,
	                        /* one batch can be redelivered; margin for commits
	                         * that failed and were left to the next batch */
	                        .dedup_window = (size_t)g_batch * 4,
	                        .es_url = g_es_url,
	                        .es_layout = g_es_layout,
	                        .es_index = g_es_index,
	                        .es_mapping = g_es_mapping,
	                        .es_bulk_docs = (size_t)g_es_docs,
	                        .es_bulk_bytes = (size_t)g_es_bytes,
	                        .es_timeout_ms = g_es_timeout_ms,
	                        .es_backoff_max_ms = g_es_backoff_ms,
	                        .stop = &g_stop,
	                },
	};
	char *copy = xstrdup(g_sinks), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t && lc.nsinks < LOADER_MAX_SINKS;
	     t = strtok_r(NULL, ",", &save))
		lc.sinks[lc.nsinks++] = sink_find(t);
	free(copy);
	rc = loader_run(&lc);
	config_free(&cfg);
	curl_global_cleanup();
	return rc;
}
