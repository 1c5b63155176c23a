/*
 * main.c - sfk-worker --workload <id>: one workload's consumer (workers/README.md).
 *
 * Configuration (every workload's settings are in the table; --help lists
 * them), clients (Redis, Salesforce token cache + REST + quota governor,
 * idempotent producer), the workload's init (policy validation: exit 78 on
 * problems), the admin server, then the consumer loop until SIGTERM.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "config.h"
#include "kafka.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "redis.h"
#include "sf_auth.h"
#include "sf_quota.h"
#include "sf_rest.h"
#include "sf_token.h"
#include "workload.h"
#include "xmem.h"

#ifndef SFK_VERSION
#define SFK_VERSION "dev"
#endif

#define WORKER_TOPIC_MAX KAFKA_TOPIC_MAX

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static const char *g_workload, *g_login_url, *g_token_url, *g_sf_client_id, *g_username,
        *g_key_path, *g_api_version, *g_ca_file, *g_redis_url, *g_bootstrap, *g_client_id,
        *g_admin_addr, *g_prefix, *g_log_level, *g_llm_url, *g_llm_model, *g_llm_key;
static long long g_llm_timeout_ms;
static long long g_epoch, g_batch, g_batch_wait_ms, g_lease_ms, g_attempts, g_retry_base_ms;
static atomic_int g_token_ok;

static const char *const level_values[] = {"debug", "info", "warn", "error", NULL};

static void check_workload(struct config *c, const struct config_entry *e)
{
	const char *id = *(const char **)e->dest;
	if (!workload_find(id)) {
		char known[512] = "";
		size_t off = 0;
		for (size_t i = 0; workload_registry[i]; i++) {
			int n = snprintf(known + off, sizeof known - off, "%s%s", i ? ", " : "",
			                 workload_registry[i]->id);
			if (n < 0 || (size_t)n >= sizeof known - off)
				break;
			off += (size_t)n;
		}
		config_problem(c, e, "unknown workload (known: %s)", known);
	}
}

static const struct config_entry table[] = {
        {"workload", "SFK_WORKLOAD", CONFIG_STRING, NULL, CONFIG_REQUIRED,
         "Workload to run (lead.route, lead.first_touch_detect, outreach.template_suggest)",
         .dest = &g_workload, .check = check_workload},
        {"epoch", "SFK_EPOCH", CONFIG_INT, "0", 0,
         "Idempotency namespace; bump it to deliberately re-apply history", .dest = &g_epoch,
         .min = 0, .max = 1000000000},
        {"batch-size", "SFK_BATCH_SIZE", CONFIG_INT, "200", 0, "Messages per batch (N)",
         .dest = &g_batch, .min = 1, .max = LOOP_BATCH_MAX},
        {"batch-wait", "SFK_BATCH_WAIT", CONFIG_DURATION, "200ms", 0,
         "Longest wait for a batch to fill after its first message (T)", .dest = &g_batch_wait_ms,
         .min = 1, .max = 60000},
        {"idem-lease", "SFK_IDEM_LEASE", CONFIG_DURATION, "30s", 0,
         "Idempotency claim lease: a killed replica's events wait this long", .dest = &g_lease_ms,
         .min = 1000, .max = 600000},
        {"write-attempts", "SFK_WRITE_ATTEMPTS", CONFIG_INT, "3", 0,
         "Collections call attempts per batch for retriable failures", .dest = &g_attempts,
         .min = 1, .max = 20},
        {"retry-base", "SFK_RETRY_BASE", CONFIG_DURATION, "200ms", 0,
         "First backoff between attempts / redeliveries", .dest = &g_retry_base_ms, .min = 1,
         .max = 60000},
        {"topic-prefix", "SFK_TOPIC_PREFIX", CONFIG_STRING, "sfk.", CONFIG_REQUIRED,
         "Prefix of every Kafka topic (<prefix>wl.<id>, <prefix>dlq.<id>, <prefix>flywheel)",
         .dest = &g_prefix},
        {"sf-login-url", "SF_LOGIN_URL", CONFIG_URL, "https://login.salesforce.com",
         CONFIG_REQUIRED, "JWT audience (login or test.salesforce.com)", .dest = &g_login_url},
        {"sf-token-url", "SF_TOKEN_URL", CONFIG_URL, NULL, 0,
         "Token endpoint host if not the login URL (My Domain)", .dest = &g_token_url},
        {"sf-client-id", "SF_CLIENT_ID", CONFIG_STRING, NULL, CONFIG_REQUIRED,
         "Connected app consumer key (JWT iss)", .dest = &g_sf_client_id},
        {"sf-username", "SF_USERNAME", CONFIG_STRING, NULL, CONFIG_REQUIRED,
         "Integration user (JWT sub)", .dest = &g_username},
        {"sf-private-key-path", "SF_PRIVATE_KEY_PATH", CONFIG_PATH, NULL, CONFIG_REQUIRED,
         "PEM RSA key of the connected app (mode 0600)", .dest = &g_key_path},
        {"sf-api-version", "SF_API_VERSION", CONFIG_STRING, "61.0", CONFIG_REQUIRED,
         "Salesforce REST API version", .dest = &g_api_version},
        {"sf-ca-file", "SF_CA_FILE", CONFIG_PATH, NULL, 0, "Extra CA bundle for Salesforce TLS",
         .dest = &g_ca_file},
        {"redis-url", "REDIS_URL", CONFIG_URL, NULL, CONFIG_REQUIRED,
         "Redis: idempotency claims, token cache, workload state", .dest = &g_redis_url},
        {"kafka-bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS", CONFIG_STRING, NULL, CONFIG_REQUIRED,
         "Kafka brokers (other KAFKA_* pass through to librdkafka)", .dest = &g_bootstrap},
        {"client-id", "SFK_CLIENT_ID", CONFIG_STRING, "sfk-kpis", CONFIG_REQUIRED,
         "Sforce-Call-Options client (echo filter) and flywheel client_id", .dest = &g_client_id},
        ADMIN_CONFIG_ENTRY(&g_admin_addr, ADMIN_DEFAULT_ADDR),
        {"llm-url", "SFK_LLM_URL", CONFIG_URL, NULL, 0,
         "OpenAI-compatible chat-completions URL to validate/refine decisions (unset: rules only)",
         .dest = &g_llm_url},
        {"llm-model", "SFK_LLM_MODEL", CONFIG_STRING, "gpt-4o-mini", 0,
         "Model asked at SFK_LLM_URL", .dest = &g_llm_model},
        {"llm-timeout", "SFK_LLM_TIMEOUT", CONFIG_DURATION, "2s", 0,
         "One LLM request; on timeout or any error the rules decide", .dest = &g_llm_timeout_ms,
         .min = 10, .max = 60000},
        {"llm-api-key", "SFK_LLM_API_KEY", CONFIG_STRING, NULL, CONFIG_SECRET,
         "Bearer token for SFK_LLM_URL", .dest = &g_llm_key},
        {"log-level", "LOG_LEVEL", CONFIG_ENUM, "info", 0, "Minimum log level",
         .dest = &g_log_level, .allowed = level_values},
};

/* Whole-config check: the selected workload validates its policy, so
 * --check-config reports every policy problem (with its JSON path). */
static void validate(struct config *c, void *ctx)
{
	(void)ctx;
	const struct workload_ops *ops = g_workload ? workload_find(g_workload) : NULL;
	if (ops && ops->check_config)
		ops->check_config(c);
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct readiness {
	struct sf_quota *quota;
};

static bool ready_token(void *ctx, char *reason, size_t len)
{
	struct sf_auth_token t = {0};
	struct sf_error se;
	enum sfk_err e;

	if (atomic_load(&g_token_ok)) { /* the cache serves it; only re-check after a failure */
		snprintf(reason, len, "ok");
		return true;
	}
	sf_error_clear(&se);
	e = sf_token_get(ctx, &t, &se);
	sf_auth_token_clear(&t);
	if (e == SFK_OK)
		atomic_store(&g_token_ok, 1);
	snprintf(reason, len, e == SFK_OK ? "ok" : "no Salesforce access token: %s", se.code);
	return e == SFK_OK;
}

static bool ready_quota(void *ctx, char *reason, size_t len)
{
	return sf_quota_ready(((struct readiness *)ctx)->quota, reason, len) != 0;
}

static bool ready_kafka(void *ctx, char *reason, size_t len)
{
	return loop_ready_kafka(ctx, reason, len) != 0;
}

static bool ready_redis(void *ctx, char *reason, size_t len)
{
	return loop_ready_redis(ctx, reason, len) != 0;
}

int main(int argc, char **argv)
{
	struct config *cfg = config_new("sfk-worker", table, sizeof table / sizeof table[0]);
	const struct workload_ops *ops;
	struct sf_auth *auth = NULL;
	struct sf_token_cache *tokens = NULL;
	struct sf_quota *quota = NULL;
	struct sf_rest *rest = NULL;
	struct redis *redis = NULL;
	struct kafka_producer *producer = NULL;
	struct admin *admin = NULL;
	struct loop *loop = NULL;
	struct wl_ctx ctx;
	struct readiness rd;
	char err[2048], topic[WORKER_TOPIC_MAX + 1], dlq[WORKER_TOPIC_MAX + 1],
	        fly[WORKER_TOPIC_MAX + 1], group[WORKER_TOPIC_MAX + 1];
	int rc, inited = 0;
	enum log_level lvl;

	log_init("sfk-worker");
	config_set_synopsis(cfg, "--workload <id> [options]");
	for (size_t i = 0; workload_registry[i]; i++)
		if (workload_registry[i]->config)
			config_add_table(cfg, workload_registry[i]->config,
			                 workload_registry[i]->nconfig);
	config_set_validator(cfg, validate, NULL);
	rc = config_load(cfg, argc, argv);
	if (rc != CONFIG_RUN) {
		config_free(&cfg);
		return rc;
	}
	if (log_level_parse(g_log_level, &lvl) == 0)
		log_set_level(lvl);
	ops = workload_find(g_workload);
	if (snprintf(topic, sizeof topic, "%swl.%s", g_prefix, g_workload) >= (int)sizeof topic ||
	    snprintf(dlq, sizeof dlq, "%sdlq.%s", g_prefix, g_workload) >= (int)sizeof dlq ||
	    snprintf(fly, sizeof fly, "%sflywheel", g_prefix) >= (int)sizeof fly ||
	    snprintf(group, sizeof group, "%s%s", g_prefix, g_workload) >= (int)sizeof group) {
		fprintf(stderr, "--topic-prefix (SFK_TOPIC_PREFIX): too long\n");
		config_free(&cfg);
		return CONFIG_EXIT_FAIL;
	}

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	metrics_register_build_info(SFK_VERSION);
	rc = 1;

	if (!(redis = redis_connect_url(g_redis_url, NULL, err, sizeof err))) {
		log_error("redis error=%s", err);
		goto out;
	}
	struct sf_auth_conf ac = {.login_url = g_login_url,
	                          .token_url = g_token_url,
	                          .client_id = g_sf_client_id,
	                          .username = g_username,
	                          .key_path = g_key_path,
	                          .ca_file = g_ca_file};
	if (!(auth = sf_auth_new(&ac, err, sizeof err))) {
		log_error("salesforce auth error=%s", err);
		rc = CONFIG_EXIT_FAIL;
		goto out;
	}
	struct sf_token_conf tc = {.auth = auth, .redis_url = g_redis_url};
	tokens = sf_token_new(&tc);
	quota = sf_quota_new(0.80, 0.95, 2000);
	struct sf_rest_conf rcf = {.tokens = tokens,
	                           .quota = quota,
	                           .api_version = g_api_version,
	                           .ca_file = g_ca_file,
	                           .call_client = g_client_id,
	                           .redis_url = g_redis_url};
	if (!(rest = sf_rest_new(&rcf, err, sizeof err))) {
		log_error("salesforce rest error=%s", err);
		rc = CONFIG_EXIT_FAIL;
		goto out;
	}
	if (!(producer = kafka_producer_new(g_bootstrap, NULL, NULL, err, sizeof err))) {
		log_error("kafka producer error=%s", err);
		goto out;
	}

	memset(&ctx, 0, sizeof ctx);
	ctx.workload_id = ops->id;
	ctx.client_id = g_client_id;
	ctx.topic_prefix = g_prefix;
	ctx.epoch = g_epoch;
	ctx.cfg = cfg;
	ctx.sf = rest;
	ctx.redis = redis;
	ctx.producer = producer;
	ctx.now_ms = wall_ms;
	if (ops->init && (rc = ops->init(&ctx)) != 0) {
		log_error("workload init failed workload=%s status=%d", ops->id, rc);
		goto out;
	}
	inited = 1;
	rc = 1;

	struct loop_conf lc = {.ops = ops,
	                       .ctx = &ctx,
	                       .bootstrap = g_bootstrap,
	                       .group = group,
	                       .topic = topic,
	                       .dlq_topic = dlq,
	                       .flywheel_topic = fly,
	                       .batch_max = (int)g_batch,
	                       .batch_wait_ms = (long)g_batch_wait_ms,
	                       .idem_lease_ms = (int)g_lease_ms,
	                       .write_attempts = (int)g_attempts,
	                       .retry_base_ms = (long)g_retry_base_ms,
	                       .stop = &g_stop};
	if (!(loop = loop_new(&lc, err, sizeof err))) {
		log_error("consumer error=%s", err);
		goto out;
	}

	rd.quota = quota;
	struct admin_opts ao = {.addr = g_admin_addr};
	if (!(admin = admin_new(&ao, err, sizeof err))) {
		log_error("admin server error=%s", err);
		rc = CONFIG_EXIT_FAIL;
		goto out;
	}
	admin_ready_check(admin, "kafka", ready_kafka, loop);
	admin_ready_check(admin, "redis", ready_redis, loop);
	admin_ready_check(admin, "salesforce_token", ready_token, tokens);
	admin_ready_check(admin, "quota", ready_quota, &rd);
	if (admin_start(admin, err, sizeof err) != SFK_OK) {
		log_error("admin server error=%s", err);
		goto out;
	}

	/* A token up front: readiness, and a configuration mistake shows at once. */
	{
		struct sf_auth_token t = {0};
		struct sf_error se;
		sf_error_clear(&se);
		enum sfk_err te = sf_token_get(tokens, &t, &se);
		sf_auth_token_clear(&t);
		if (te == SFK_OK)
			atomic_store(&g_token_ok, 1);
		else if (sfk_err_class(te) == SFK_CLASS_FATAL) {
			log_error("salesforce token refused code=%s error=%s", se.code, se.message);
			goto out;
		} else
			log_warn("salesforce token not yet available code=%s error=%s", se.code,
			         se.message);
	}

	log_info("sfk-worker started workload=%s topic=%s group=%s epoch=%lld", ops->id, topic,
	         group, g_epoch);
	rc = loop_run(loop);
out:
	loop_free(&loop); /* leaves the group (commits on revoke) */
	admin_free(&admin);
	if (inited && ops->fini)
		ops->fini(&ctx);
	kafka_producer_destroy(&producer);
	sf_rest_free(&rest);
	sf_quota_free(&quota);
	sf_token_free(&tokens);
	sf_auth_free(&auth);
	redis_free(redis);
	config_free(&cfg);
	curl_global_cleanup();
	log_info("sfk-worker exiting status=%d", rc);
	return rc;
}
