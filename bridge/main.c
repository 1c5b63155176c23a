/*
 * main.c - sfk-bridge: Salesforce CDC (CometD) -> Kafka, one transaction per batch.
 *
 * Arguments and configuration, signals, then: load the fan-out rules, open
 * the Salesforce client (token cache, REST for gap re-fetches), the
 * transactional producer, read the committed checkpoints back (and finish
 * any entity resync a previous incarnation left, resync.c), serve
 * /metrics /healthz /readyz, and run the CometD client whose batches
 * publish.c turns into transactions -- or, with --source poll, the polling
 * loop (poll.c). An invalid replay id is handled per
 * SFK_BRIDGE_ON_INVALID_REPLAY (default: resync). Shutdown order: stop long-polling
 * (disconnect), finish the open transaction (publish_batch returns before
 * the loop sees the flag), flush and close the producer, then the rest.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "checkpoint.h"
#include "cometd.h"
#include "config.h"
#include "fanout.h"
#include "kafka.h"
#include "lease.h"
#include "log.h"
#include "metrics.h"
#include "poll.h"
#include "publish.h"
#include "resync.h"
#include "sf_auth.h"
#include "sf_quota.h"
#include "sf_rest.h"
#include "sf_token.h"
#include "sfid.h"
#include "webhook.h"
#include "xmem.h"

#ifndef SFK_VERSION
#define SFK_VERSION "dev"
#endif

#define BRIDGE_MAX_CHANNELS       COMETD_MAX_CHANNELS
#define BRIDGE_CHECKPOINT_LOAD_MS 30000

/* g_stop ends the CometD loop: set by SIGTERM/SIGINT, or by the lease
 * keeper thread when leadership is lost (then g_lease_lost is set too). */
static volatile sig_atomic_t g_stop, g_lease_lost;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* ---- configuration ------------------------------------------------------ */

static const char *g_login_url, *g_token_url, *g_sf_client_id, *g_username, *g_key_path,
        *g_api_version, *g_ca_file, *g_redis_url, *g_bootstrap, *g_client_id, *g_admin_addr,
        *g_prefix, *g_channels, *g_policy, *g_policy_schema, *g_txn_id, *g_start, *g_on_invalid,
        *g_log_level, *g_lease_key, *g_source, *g_poll_entities;
static long long g_max_event_bytes, g_stall_grace_ms, g_lease_ttl_ms, g_resync_margin_ms,
        g_poll_interval_ms, g_resync_chunk;
/* Every transaction on the shared producer (CometD batches, resyncs, polls,
 * inbound webhooks from their own thread) runs under g_publish_lock. */
static struct webhook_settings g_webhook; /* webhook.h */
static pthread_mutex_t g_publish_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const start_values[] = {"latest", "earliest", NULL};
static const char *const invalid_values[] = {"resync", "fail", "latest", "earliest", NULL};
static const char *const source_values[] = {"cometd", "poll", NULL};

/* Most entities the polling source reads. */
#define BRIDGE_MAX_POLL 32
static const char *const level_values[] = {"debug", "info", "warn", "error", NULL};

static void check_channels(struct config *c, const struct config_entry *e)
{
	const char *s = *(const char **)e->dest;
	size_t n = 1;
	for (const char *p = s; *p; p++)
		n += *p == ',';
	if (s[0] != '/')
		config_problem(c, e, "channels must start with '/' (e.g. /data/LeadChangeEvent)");
	if (n > BRIDGE_MAX_CHANNELS)
		config_problem(c, e, "at most %d channels", BRIDGE_MAX_CHANNELS);
}

/* Poll entities: API names (they go into SOQL unquoted), at most BRIDGE_MAX_POLL. */
static void check_poll_entities(struct config *c, const struct config_entry *e)
{
	const char *s = *(const char **)e->dest;
	size_t n = 0;
	int fresh = 1;
	for (const char *p = s; *p; p++) {
		if (*p == ',') {
			fresh = 1;
			continue;
		}
		if (fresh) {
			n++;
			if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))) {
				config_problem(c, e, "object names start with a letter");
				return;
			}
		} else if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		             (*p >= '0' && *p <= '9') || *p == '_')) {
			config_problem(c, e, "object names are API names ([A-Za-z][A-Za-z0-9_]*)");
			return;
		}
		fresh = 0;
	}
	if (n > BRIDGE_MAX_POLL)
		config_problem(c, e, "at most %d objects", BRIDGE_MAX_POLL);
}

/* Whole-config check: the fan-out rules must load, so --check-config
 * reports every rule problem (with its JSON path) like any other setting. */
static void validate(struct config *c, void *ctx)
{
	(void)ctx;
	char err[4096];
	webhook_config_check(c, &g_webhook, g_redis_url);
	if (!g_policy || !g_policy_schema || !g_prefix)
		return; /* already reported as missing */
	struct fanout *f = fanout_load(g_policy, g_policy_schema, g_prefix, err, sizeof err);
	if (f) {
		fanout_free(&f);
		return;
	}
	for (char *line = err, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		config_problem(c, NULL, "fan-out rules: %s", line);
	}
}

static const struct config_entry table[] = {
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
         "Salesforce API version for /cometd/<ver> and REST", .dest = &g_api_version},
        {"sf-ca-file", "SF_CA_FILE", CONFIG_PATH, NULL, 0, "Extra CA bundle for Salesforce TLS",
         .dest = &g_ca_file},
        {"redis-url", "REDIS_URL", CONFIG_URL, NULL, 0,
         "Redis for the shared token cache (unset: per-process tokens)", .dest = &g_redis_url},
        {"kafka-bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS", CONFIG_STRING, NULL, CONFIG_REQUIRED,
         "Kafka brokers", .dest = &g_bootstrap},
        {"client-id", "SFK_CLIENT_ID", CONFIG_STRING, "sfk-kpis", CONFIG_REQUIRED,
         "Our Sforce-Call-Options client id: its changes are echoes, never fanned out",
         .dest = &g_client_id},
        ADMIN_CONFIG_ENTRY(&g_admin_addr, ADMIN_DEFAULT_ADDR),
        {"topic-prefix", "SFK_TOPIC_PREFIX", CONFIG_STRING, "sfk.", CONFIG_REQUIRED,
         "Prefix of every Kafka topic", .dest = &g_prefix},
        {"channels", "SFK_BRIDGE_CHANNELS", CONFIG_STRING,
         "/data/LeadChangeEvent,/data/TaskChangeEvent,/data/EmailMessageChangeEvent",
         CONFIG_REQUIRED, "Comma-separated CometD channels", .dest = &g_channels,
         .check = check_channels},
        {"workloads-policy", "SFK_WORKLOADS_POLICY", CONFIG_PATH, "policies/workloads.json",
         CONFIG_REQUIRED, "Fan-out rules", .dest = &g_policy},
        {"workloads-schema", "SFK_WORKLOADS_SCHEMA", CONFIG_PATH, "schemas/workloads.schema.json",
         CONFIG_REQUIRED, "JSON Schema of the fan-out rules", .dest = &g_policy_schema},
        {"transactional-id", "SFK_BRIDGE_TRANSACTIONAL_ID", CONFIG_STRING, "sfk-bridge",
         CONFIG_REQUIRED, "Kafka transactional.id (fences an older bridge)", .dest = &g_txn_id},
        {"start-from", "SFK_BRIDGE_START_FROM", CONFIG_ENUM, "latest", CONFIG_REQUIRED,
         "Where a channel without a checkpoint starts: latest (-1) or earliest (-2)",
         .dest = &g_start, .allowed = start_values},
        {"on-invalid-replay", "SFK_BRIDGE_ON_INVALID_REPLAY", CONFIG_ENUM, "resync",
         CONFIG_REQUIRED,
         "When the checkpoint is no longer retained: resync (re-read the entity's records "
         "changed since the checkpoint, then subscribe from -1), fail, latest (skip the gap) "
         "or earliest",
         .dest = &g_on_invalid, .allowed = invalid_values},
        {"resync-margin", "SFK_BRIDGE_RESYNC_MARGIN", CONFIG_DURATION, "5m", 0,
         "Invalid-replay resync reads records modified since the checkpoint's commit time "
         "minus this much (also the deletes window of a GAP_OVERFLOW resync)",
         .dest = &g_resync_margin_ms, .min = 0, .max = 86400000},
        {"resync-chunk", "SFK_BRIDGE_RESYNC_CHUNK", CONFIG_INT, "500", 0,
         "Records per Kafka transaction of a resync or a poll", .dest = &g_resync_chunk, .min = 1,
         .max = 10000},
        {"source", "SFK_BRIDGE_SOURCE", CONFIG_ENUM, "cometd", CONFIG_REQUIRED,
         "cometd (Change Data Capture) or poll (SOQL on SystemModstamp, orgs without CDC)",
         .dest = &g_source, .allowed = source_values},
        {"poll-entities", "SFK_BRIDGE_POLL_ENTITIES", CONFIG_STRING, "Lead,Task,EmailMessage", 0,
         "Comma-separated objects the poll source reads", .dest = &g_poll_entities,
         .check = check_poll_entities},
        {"poll-interval", "SFK_BRIDGE_POLL_INTERVAL", CONFIG_DURATION, "30s", 0,
         "Pause between two polls of every entity (poll source)", .dest = &g_poll_interval_ms,
         .min = 100, .max = 86400000},
        {"max-event-bytes", "SFK_BRIDGE_MAX_EVENT_BYTES", CONFIG_INT, "2097152", 0,
         "Larger CometD events are dead-lettered", .dest = &g_max_event_bytes, .min = 1024,
         .max = 10485760},
        {"stall-grace", "SFK_BRIDGE_STALL_GRACE", CONFIG_DURATION, "15s", 0,
         "Watchdog: a long-poll may exceed the advised timeout by this much",
         .dest = &g_stall_grace_ms, .min = 100, .max = 600000},
        {"lease-ttl", "SFK_BRIDGE_LEASE_TTL", CONFIG_DURATION, "15s", 0,
         "Leadership lease in Redis (with REDIS_URL): a standby takes over this long after "
         "the active bridge stops renewing",
         .dest = &g_lease_ttl_ms, .min = 1000, .max = 600000},
        {"lease-key", "SFK_BRIDGE_LEASE_KEY", CONFIG_STRING, LEASE_KEY, CONFIG_REQUIRED,
         "Redis key of the leadership lease (one per bridge deployment)", .dest = &g_lease_key},
        WEBHOOK_CONFIG_ENTRIES(&g_webhook),
        {"log-level", "LOG_LEVEL", CONFIG_ENUM, "info", 0, "Minimum log level",
         .dest = &g_log_level, .allowed = level_values},
};

/* ---- the process ----------------------------------------------------------- */

struct bridge {
	struct sf_auth *auth;
	struct sf_token_cache *tokens;
	struct sf_rest *rest;
	struct sf_quota *quota; /* API usage of our reads (sfk_api_usage_ratio) */
	struct kafka_producer *producer;
	struct fanout *fanout;
	struct publisher *pub;
	struct cometd *cometd;
	struct admin *admin;
	struct lease *lease;
	struct webhook *webhook;
	char *channels[BRIDGE_MAX_CHANNELS];
	size_t nchannels;
	int64_t fallback[BRIDGE_MAX_CHANNELS];     /* replay id without a checkpoint */
	int64_t committed_at[BRIDGE_MAX_CHANNELS]; /* wall ms of the channel's last checkpoint */
	int64_t ckpt_seen[BRIDGE_MAX_CHANNELS];    /* replay id committed_at belongs to */
	int64_t last_commit_ms;                    /* wall ms of the last committed batch */
	struct resync_out rout;                    /* resync / poll transactions */
	struct resync_job *jobs;                   /* pending resyncs (njobs) */
	size_t njobs;
	char *poll_entity[BRIDGE_MAX_POLL];
	struct resync_cursor poll_cur[BRIDGE_MAX_POLL];
	int poll_have[BRIDGE_MAX_POLL];
	size_t npoll;
	char token_used[COMETD_TOKEN_MAX]; /* to invalidate exactly the refused one */
	char instance_url[1024];
	char echo_user[19]; /* poll mode: our integration user (18 chars), "" unknown */
	struct metric *m_resync, *m_batches, *m_invalid, *m_polls;
};

static int run_jobs(struct bridge *b);
static int resolve_echo_user(struct bridge *b);

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum sfk_err token_get(void *ctx, int force_new, char *buf, size_t size, char *errstr,
                              size_t errlen)
{
	struct bridge *b = ctx;
	struct sf_auth_token t = {0};
	struct sf_error e;
	memset(&e, 0, sizeof e);
	if (force_new && b->token_used[0])
		sf_token_invalidate(b->tokens, b->token_used);
	enum sfk_err rc = sf_token_get(b->tokens, &t, &e);
	if (rc != SFK_OK) {
		snprintf(errstr, errlen, "%s", e.message);
		return rc;
	}
	int n = snprintf(buf, size, "%s", t.access_token);
	snprintf(b->token_used, sizeof b->token_used, "%s", t.access_token);
	snprintf(b->instance_url, sizeof b->instance_url, "%s", t.instance_url);
	sf_auth_token_clear(&t);
	if (n < 0 || (size_t)n >= size) {
		snprintf(errstr, errlen, "access token longer than %zu bytes", size);
		return SFK_ERR_INVALID;
	}
	return SFK_OK;
}

static int64_t replay_from(void *ctx, const char *channel)
{
	struct bridge *b = ctx;
	int64_t r = publish_checkpoint(b->pub, channel);
	if (r >= 0)
		return r;
	for (size_t i = 0; i < b->nchannels; i++)
		if (strcmp(b->channels[i], channel) == 0)
			return b->fallback[i];
	return -1;
}

static enum sfk_err on_batch(void *ctx, json_t *messages)
{
	struct bridge *b = ctx;
	struct publish_stats st;
	char err[1024];
	pthread_mutex_lock(&g_publish_lock);
	enum sfk_err rc = publish_batch(b->pub, messages, &st, err, sizeof err);
	pthread_mutex_unlock(&g_publish_lock);
	metric_add(b->m_batches, 1, rc == SFK_OK ? "committed" : "aborted");
	if (rc != SFK_OK) {
		log_error("batch not committed error=%s class=%s reason=%s", sfk_err_str(rc),
		          sfk_err_class_str(sfk_err_class(rc)), err);
		return rc;
	}
	log_info("batch committed events=%zu records=%zu fanout=%zu dead_letters=%zu echoes=%zu "
	         "gaps_resolved=%zu gaps_unresolved=%zu resyncs=%zu",
	         st.events, st.records, st.fanout, st.dead_letters, st.echoes, st.gaps_resolved,
	         st.gaps_unresolved, st.resyncs);
	int64_t now = wall_ms();
	for (size_t i = 0; i < b->nchannels; i++)
		if (publish_checkpoint(b->pub, b->channels[i]) != b->ckpt_seen[i]) {
			b->ckpt_seen[i] = publish_checkpoint(b->pub, b->channels[i]);
			b->committed_at[i] = now;
		}
	b->last_commit_ms = now;
	/* GAP_OVERFLOW resyncs queued by on_resync, before the next long-poll.
	 * The batch itself is committed whatever happens here: a resync that
	 * does not finish stays queued (retried after the next batch) and
	 * recorded in the checkpoint topic (resumed by the next start). */
	run_jobs(b);
	return SFK_OK;
}

static void queue_job(struct bridge *b, struct resync_job *j)
{
	b->jobs = xrealloc(b->jobs, (b->njobs + 1) * sizeof *b->jobs);
	b->jobs[b->njobs++] = *j; /* takes the cursor's ids */
	memset(j, 0, sizeof *j);
}

/* After the commit of a batch holding a GAP_OVERFLOW (called inside
 * publish_batch, under the publish lock): queue a resync of the entity, run
 * by on_batch before the next long-poll. Every live record is read back
 * (SNAPSHOT), plus the records deleted since the previous batch's commit
 * minus the margin (DELETE). Its progress is in the checkpoint topic: a
 * crash during it resumes it at the next start. */
static void on_resync(void *ctx, const char *entity, int64_t replay_id)
{
	struct bridge *b = ctx;
	struct resync_job j;
	memset(&j, 0, sizeof j);
	log_warn("entity resync needed (GAP_OVERFLOW) object=%s replay_id=%lld", entity,
	         (long long)replay_id);
	for (size_t i = 0; i < b->njobs; i++)
		if (strcmp(b->jobs[i].entity, entity) == 0)
			return; /* already queued: it reads every record anyway */
	resync_job_clear(&j);
	snprintf(j.entity, sizeof j.entity, "%s", entity);
	snprintf(j.reason, sizeof j.reason, "gap_overflow");
	j.replay_id = replay_id;
	j.since_ms = -1;
	j.deletes_since_ms = b->last_commit_ms > 0 ? b->last_commit_ms - g_resync_margin_ms : 0;
	if (j.deletes_since_ms < 0)
		j.deletes_since_ms = 0;
	queue_job(b, &j);
}

/* Run the queued resyncs in order. 0 when all are done; -1 when one failed
 * or was interrupted (it stays recorded in the checkpoint topic and resumes
 * at the next start; the error log and the metric say so). */
static int run_jobs(struct bridge *b)
{
	int rc = 0;
	/* Records last modified by us are echoes in a resync too (a SNAPSHOT has
	 * no changeOrigin). Unknown user: they are fanned out, and the workers
	 * skip what they already did. */
	if (b->njobs > 0)
		resolve_echo_user(b);
	while (b->njobs > 0 && rc == 0) {
		struct resync_job *j = &b->jobs[0];
		char err[1024];
		size_t n = 0;
		enum sfk_err e = resync_run(b->rest, &b->rout, j, (size_t)g_resync_chunk, &g_stop,
		                            &n, err, sizeof err);
		metric_add(b->m_resync, 1, j->entity,
		           e == SFK_OK         ? "ok"
		           : e == SFK_ERR_BUSY ? "interrupted"
		                               : "failed");
		if (e != SFK_OK) {
			log_error("entity resync not finished object=%s reason=%s published=%zu "
			          "error=%s detail=%s",
			          j->entity, j->reason, n, sfk_err_str(e), err);
			rc = -1;
			break;
		}
		if (j->channel[0]) {
			/* invalid replay id: the resync stands for the lost events;
			 * the channel starts from new events (-1). */
			for (size_t i = 0; i < b->nchannels; i++)
				if (strcmp(b->channels[i], j->channel) == 0) {
					b->fallback[i] = -1;
					b->ckpt_seen[i] = -1;
				}
			publish_set_checkpoint(b->pub, j->channel, -1);
			if (b->cometd)
				cometd_forget_checkpoint(b->cometd, j->channel);
		}
		resync_job_clear(j);
		memmove(&b->jobs[0], &b->jobs[1], (b->njobs - 1) * sizeof *b->jobs);
		b->njobs--;
	}
	return rc;
}

static enum sfk_err refetch(void *ctx, const char *entity, const char *id, json_t **rec,
                            char *errstr, size_t errlen)
{
	struct bridge *b = ctx;
	struct sf_error e;
	memset(&e, 0, sizeof e);
	enum sfk_err rc = sf_rest_get(b->rest, entity, id, NULL, rec, &e);
	if (rc != SFK_OK)
		snprintf(errstr, errlen, "re-fetch %s: %s", entity, e.message);
	return rc;
}

static enum sfk_err sink_begin(void *ctx, char *e, size_t el)
{
	return kafka_producer_txn_begin(ctx, e, el);
}
static enum sfk_err sink_produce(void *ctx, const char *topic, const char *key, const char *value,
                                 size_t len, const struct kafka_header *h, size_t nh, char *e,
                                 size_t el)
{
	return kafka_produce(ctx, topic, key, key ? strlen(key) : 0, value, len, h, nh, e, el);
}
static enum sfk_err sink_commit(void *ctx, char *e, size_t el)
{
	return kafka_producer_txn_commit(ctx, e, el);
}
static enum sfk_err sink_abort(void *ctx, char *e, size_t el)
{
	return kafka_producer_txn_abort(ctx, e, el);
}

/* Resync / poll transactions share the producer with CometD batches and
 * webhooks: the publish lock is held from begin to commit / abort. */
static enum sfk_err rsink_begin(void *ctx, char *e, size_t el)
{
	pthread_mutex_lock(&g_publish_lock);
	enum sfk_err rc = kafka_producer_txn_begin(ctx, e, el);
	if (rc != SFK_OK)
		pthread_mutex_unlock(&g_publish_lock);
	return rc;
}
static enum sfk_err rsink_commit(void *ctx, char *e, size_t el)
{
	enum sfk_err rc = kafka_producer_txn_commit(ctx, e, el);
	pthread_mutex_unlock(&g_publish_lock);
	return rc;
}
static enum sfk_err rsink_abort(void *ctx, char *e, size_t el)
{
	enum sfk_err rc = kafka_producer_txn_abort(ctx, e, el);
	pthread_mutex_unlock(&g_publish_lock);
	return rc;
}

/* The client as the admin threads see it: published once created, cleared
 * before it is freed. */
static _Atomic(struct cometd *) g_cometd;
static atomic_int g_standby;

static bool ready_cometd(void *ctx, char *reason, size_t len)
{
	(void)ctx;
	struct cometd *c = atomic_load(&g_cometd);
	if (c && cometd_ready(c))
		return true;
	snprintf(reason, len, atomic_load(&g_standby) ? "standby" : "not subscribed to CometD");
	return false;
}

static void seed_checkpoint(void *ctx, const struct checkpoint_record *r)
{
	struct bridge *b = ctx;
	if (strncmp(r->key, RESYNC_KEY_PREFIX, strlen(RESYNC_KEY_PREFIX)) == 0) {
		struct resync_job j;
		memset(&j, 0, sizeof j);
		if (resync_job_parse(r->value, &j) != 0) {
			log_error("checkpoint: unreadable resync record key=%s", r->key);
			return;
		}
		log_warn("unfinished entity resync found; resuming it object=%s reason=%s "
		         "stamp_ms=%lld",
		         j.entity, j.reason, (long long)j.cur.stamp_ms);
		queue_job(b, &j);
		return;
	}
	if (strncmp(r->key, POLL_KEY_PREFIX, strlen(POLL_KEY_PREFIX)) == 0) {
		const char *entity = r->key + strlen(POLL_KEY_PREFIX);
		for (size_t i = 0; i < b->npoll; i++)
			if (strcmp(b->poll_entity[i], entity) == 0) {
				if (poll_parse(r->value, &b->poll_cur[i]) == 0) {
					b->poll_have[i] = 1;
					log_info("poll watermark loaded object=%s stamp_ms=%lld",
					         entity, (long long)b->poll_cur[i].stamp_ms);
				} else {
					log_error("checkpoint: unreadable poll watermark key=%s",
					          r->key);
				}
			}
		return;
	}
	publish_set_checkpoint(b->pub, r->key, r->replay_id);
	for (size_t i = 0; i < b->nchannels; i++)
		if (strcmp(b->channels[i], r->key) == 0) {
			b->committed_at[i] = r->committed_at;
			b->ckpt_seen[i] = r->replay_id;
		}
	log_info("checkpoint loaded channel=%s replay_id=%lld committed_at=%lld", r->key,
	         (long long)r->replay_id, (long long)r->committed_at);
}

static void split_channels(struct bridge *b, const char *list, int64_t fallback)
{
	char *copy = xstrdup(list), *p = copy;
	while (p && *p && b->nchannels < BRIDGE_MAX_CHANNELS) {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		if (*p) {
			b->fallback[b->nchannels] = fallback;
			b->channels[b->nchannels++] = xstrdup(p);
		}
		p = comma ? comma + 1 : NULL;
	}
	free(copy);
}

static void split_poll_entities(struct bridge *b, const char *list)
{
	char *copy = xstrdup(list), *p = copy;
	while (p && *p && b->npoll < BRIDGE_MAX_POLL) {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		if (*p) {
			b->poll_cur[b->npoll].stamp_ms = -1;
			b->poll_entity[b->npoll++] = xstrdup(p);
		}
		p = comma ? comma + 1 : NULL;
	}
	free(copy);
}

/* The caller's policy for a checkpoint Salesforce no longer retains.
 * Returns 0 to run again, -1 to exit. Never silent: an error line and
 * sfk_bridge_invalid_replays_total{channel,policy} whatever the policy. */
static int replay_invalid(struct bridge *b, const char *err)
{
	int64_t bad;
	const char *ch = cometd_replay_error(b->cometd, &bad);
	log_error("replay id no longer valid channel=%s replay_id=%lld policy=%s reason=%s", ch,
	          (long long)bad, g_on_invalid, err);
	metric_add(b->m_invalid, 1, ch, g_on_invalid);
	if (strcmp(g_on_invalid, "fail") == 0)
		return -1;
	if (strcmp(g_on_invalid, "resync") == 0) {
		struct resync_job j;
		int64_t at = 0;
		memset(&j, 0, sizeof j);
		resync_job_clear(&j);
		if (resync_channel_entity(ch, j.entity, sizeof j.entity) != 0) {
			log_error("resync impossible: no single entity behind channel=%s (set "
			          "SFK_BRIDGE_ON_INVALID_REPLAY=latest or fail)",
			          ch);
			return -1;
		}
		for (size_t i = 0; i < b->nchannels; i++)
			if (strcmp(b->channels[i], ch) == 0)
				at = b->committed_at[i];
		snprintf(j.reason, sizeof j.reason, "invalid_replay");
		snprintf(j.channel, sizeof j.channel, "%s", ch);
		j.replay_id = bad;
		j.since_ms = at > g_resync_margin_ms ? at - g_resync_margin_ms : 0;
		j.deletes_since_ms = j.since_ms;
		log_warn("resyncing entity after an invalid replay id object=%s channel=%s "
		         "since_ms=%lld",
		         j.entity, ch, (long long)j.since_ms);
		queue_job(b, &j);
		return run_jobs(b);
	}
	int64_t to = strcmp(g_on_invalid, "latest") == 0 ? -1 : -2;
	for (size_t i = 0; i < b->nchannels; i++)
		if (strcmp(b->channels[i], ch) == 0)
			b->fallback[i] = to;
	/* An explicit operator decision: drop the checkpoint so the client may
	 * subscribe from -1/-2 for this channel. */
	publish_set_checkpoint(b->pub, ch, -1);
	cometd_forget_checkpoint(b->cometd, ch);
	return 0;
}

/*
 * Poll mode cannot see changeOrigin: a record last modified by our own
 * integration user is our write (an echo). The user id is the last segment of
 * the token's identity URL (.../id/<org id>/<user id>). 0 once known.
 */
static int resolve_echo_user(struct bridge *b)
{
	struct sf_auth_token t = {0};
	struct sf_error e;
	memset(&e, 0, sizeof e);
	if (b->echo_user[0])
		return 0;
	if (sf_token_get(b->tokens, &t, &e) != SFK_OK) {
		log_warn("poll: no token to learn our user id error=%s", e.message);
		return -1;
	}
	const char *slash = t.id ? strrchr(t.id, '/') : NULL;
	int rc = slash && sfid_to18(slash + 1, b->echo_user) == 0 ? 0 : -1;
	sf_auth_token_clear(&t);
	if (rc != 0) {
		b->echo_user[0] = '\0';
		log_error("poll: the token's identity URL names no user: our own writes "
		          "could not be told from others'");
		return -1;
	}
	b->rout.echo_user = b->echo_user;
	log_info("poll echo filter user=%s", b->echo_user);
	return 0;
}

/* Polling source: every entity from its watermark, then a pause, until
 * stopped. Returns the exit status. */
static atomic_int g_polled;
static int poll_loop(struct bridge *b)
{
	char err[1024];
	while (!g_stop && resolve_echo_user(b) != 0)
		for (int w = 0; w < 50 && !g_stop; w++)
			usleep(100 * 1000);
	for (size_t i = 0; i < b->npoll; i++) {
		while (!b->poll_have[i] && !g_stop) {
			enum sfk_err e = poll_start(b->rest, &b->rout, b->poll_entity[i],
			                            strcmp(g_start, "earliest") == 0,
			                            &b->poll_cur[i], err, sizeof err);
			if (e == SFK_OK) {
				b->poll_have[i] = 1;
				break;
			}
			log_error("poll start failed object=%s error=%s reason=%s",
			          b->poll_entity[i], sfk_err_str(e), err);
			if (sfk_err_class(e) != SFK_CLASS_RETRIABLE)
				return 1;
			sleep(5);
		}
	}
	log_info("bridge polling entities=%s interval_ms=%lld", g_poll_entities,
	         g_poll_interval_ms);
	while (!g_stop) {
		int ok = 1;
		/* Never publish a round that cannot tell our writes from others'. */
		if (resolve_echo_user(b) != 0) {
			for (int w = 0; w < 50 && !g_stop; w++)
				usleep(100 * 1000);
			continue;
		}
		for (size_t i = 0; i < b->npoll && !g_stop; i++) {
			size_t n = 0;
			enum sfk_err e =
			        poll_once(b->rest, &b->rout, b->poll_entity[i], &b->poll_cur[i],
			                  (size_t)g_resync_chunk, &g_stop, &n, err, sizeof err);
			metric_add(b->m_polls, 1, b->poll_entity[i], e == SFK_OK ? "ok" : "failed");
			if (e != SFK_OK) {
				ok = 0;
				log_error("poll failed object=%s error=%s reason=%s",
				          b->poll_entity[i], sfk_err_str(e), err);
				if (sfk_err_class(e) != SFK_CLASS_RETRIABLE)
					return 1;
			} else if (n > 0) {
				log_info("poll committed object=%s records=%zu", b->poll_entity[i],
				         n);
			}
		}
		if (ok)
			atomic_store(&g_polled, 1);
		/* Near the org's daily API limit: poll ten times less often. */
		long long pause = g_poll_interval_ms;
		if (sf_quota_state(b->quota) == SF_QUOTA_PAUSED) {
			pause *= 10;
			log_warn("poll slowed down: API usage over the governor's pause share "
			         "usage_ratio=%.3f interval_ms=%lld",
			         sf_quota_ratio(b->quota), pause);
		}
		for (long long w = 0; w < pause && !g_stop; w += 100)
			usleep(100 * 1000);
	}
	return g_lease_lost ? 1 : 0;
}

static bool ready_poll(void *ctx, char *reason, size_t len)
{
	(void)ctx;
	if (atomic_load(&g_polled))
		return true;
	snprintf(reason, len, atomic_load(&g_standby) ? "standby" : "no poll completed yet");
	return false;
}

static int run(struct bridge *b)
{
	char err[2048], url[1200];
	int rc = 1;

	b->m_resync = metrics_counter("sfk_bridge_resyncs_total",
	                              "Entity resyncs (GAP_OVERFLOW, invalid replay id) by "
	                              "outcome: ok, failed, interrupted",
	                              "object,outcome");
	b->m_invalid =
	        metrics_counter("sfk_bridge_invalid_replays_total",
	                        "Checkpoints Salesforce no longer retained, by the policy applied",
	                        "channel,policy");
	b->m_polls = metrics_counter("sfk_bridge_polls_total", "Polls of one entity by outcome",
	                             "object,outcome");
	b->m_batches = metrics_counter("sfk_bridge_batches_total",
	                               "CometD batches by transaction outcome", "outcome");
	metrics_register_build_info(SFK_VERSION);

	if (!(b->fanout = fanout_load(g_policy, g_policy_schema, g_prefix, err, sizeof err))) {
		log_error("fan-out rules rejected problems=%s", err);
		return 78;
	}
	log_info("fan-out rules loaded version=%s workloads=%zu", fanout_version(b->fanout),
	         fanout_workloads(b->fanout));

	struct admin_opts ao = {.addr = g_admin_addr};
	if (!(b->admin = admin_new(&ao, err, sizeof err))) {
		log_error("admin server error=%s", err);
		return 78;
	}
	int polling = strcmp(g_source, "poll") == 0;
	if (polling)
		admin_ready_check(b->admin, "poll", ready_poll, b);
	else
		admin_ready_check(b->admin, "cometd", ready_cometd, b);
	if (admin_start(b->admin, err, sizeof err) != SFK_OK) {
		log_error("admin server error=%s", err);
		return 1;
	}

	struct sf_auth_conf ac = {
	        .login_url = g_login_url,
	        .token_url = g_token_url,
	        .client_id = g_sf_client_id,
	        .username = g_username,
	        .key_path = g_key_path,
	        .ca_file = g_ca_file,
	};
	if (!(b->auth = sf_auth_new(&ac, err, sizeof err))) {
		log_error("salesforce auth error=%s", err);
		return 78;
	}
	struct sf_token_conf tc = {.auth = b->auth, .redis_url = g_redis_url};
	b->tokens = sf_token_new(&tc);
	b->quota = sf_quota_new(0.80, 0.95, 2000);
	struct sf_rest_conf rc_ = {
	        .tokens = b->tokens,
	        .api_version = g_api_version,
	        .ca_file = g_ca_file,
	        .call_client = g_client_id,
	        .redis_url = g_redis_url,
	        .quota = b->quota,
	};
	if (!(b->rest = sf_rest_new(&rc_, err, sizeof err))) {
		log_error("salesforce rest error=%s", err);
		return 78;
	}

	/* Leadership before the producer: our txn_init would fence the active
	 * bridge's transactions. Without Redis there is no standby. */
	if (g_redis_url) {
		char holder[LEASE_HOLDER_MAX], host[64] = "bridge";
		int64_t fence = 0;
		gethostname(host, sizeof host - 1);
		snprintf(holder, sizeof holder, "%s:%ld", host, (long)getpid());
		if (!(b->lease = lease_new(g_redis_url, g_lease_key, holder, (long)g_lease_ttl_ms,
		                           err, sizeof err))) {
			log_error("lease error=%s", err);
			return 1;
		}
		atomic_store(&g_standby, 1);
		if (lease_wait(b->lease, &g_stop, &fence) != 0)
			return 0; /* stopped while standby */
		atomic_store(&g_standby, 0);
		if (lease_keep_start(b->lease, &g_stop, &g_lease_lost) != 0) {
			log_error("lease keeper thread failed");
			return 1;
		}
	}

	if (!(b->producer = kafka_producer_new(g_bootstrap, g_txn_id, NULL, err, sizeof err))) {
		log_error("kafka producer error=%s", err);
		return 78;
	}
	enum sfk_err e = kafka_producer_txn_init(b->producer, err, sizeof err);
	if (e != SFK_OK) {
		log_error("kafka transactions init error=%s reason=%s", sfk_err_str(e), err);
		return 1;
	}

	struct publish_conf pc = {
	        .topic_prefix = g_prefix,
	        .client_id = g_client_id,
	        .max_event_bytes = (size_t)g_max_event_bytes,
	        .fanout = b->fanout,
	        .sink = {sink_begin, sink_produce, sink_commit, sink_abort, b->producer},
	        .refetch = {refetch, b},
	        .on_resync = on_resync,
	        .resync_ctx = b,
	};
	b->pub = publish_new(&pc);
	char *ckpt_topic = xasprintf("%sbridge.checkpoints", g_prefix);
	b->rout = (struct resync_out){
	        .topic_prefix = g_prefix,
	        .checkpoint_topic = ckpt_topic,
	        .fanout = b->fanout,
	        .sink = {rsink_begin, sink_produce, rsink_commit, rsink_abort, b->producer},
	};

	/* Checkpoints written by the previous incarnation: read AFTER txn_init,
	 * which fenced it, so nothing can commit behind our back. */
	size_t found = 0;
	e = checkpoint_load(g_bootstrap, NULL, ckpt_topic, BRIDGE_CHECKPOINT_LOAD_MS,
	                    seed_checkpoint, b, &found, err, sizeof err);
	if (e != SFK_OK) {
		log_error("cannot read checkpoints error=%s reason=%s", sfk_err_str(e), err);
		return 1;
	}
	log_info("checkpoints loaded count=%zu", found);
	/* Resyncs a previous incarnation did not finish, before anything new. */
	if (run_jobs(b) != 0)
		return 1;

	if (g_webhook.listen) {
		struct webhook_conf wc = {&g_webhook, g_redis_url, b->pub, &g_publish_lock};
		if (!(b->webhook = webhook_start(&wc, err, sizeof err))) {
			log_error("webhook listener error=%s", err);
			return 1;
		}
	}

	if (polling)
		return poll_loop(b);

	/* The CometD URL is on the instance the token names. */
	char tok[COMETD_TOKEN_MAX];
	while ((e = token_get(b, 0, tok, sizeof tok, err, sizeof err)) != SFK_OK) {
		log_error("salesforce token error=%s reason=%s", sfk_err_str(e), err);
		if (sfk_err_class(e) != SFK_CLASS_RETRIABLE || g_stop)
			return 1;
		sleep(5);
	}
	memset(tok, 0, sizeof tok);
	snprintf(url, sizeof url, "%s/cometd/%s", b->instance_url, g_api_version);

	struct cometd_config cc = {
	        .url = url,
	        .ca_file = g_ca_file,
	        .channels = (const char *const *)b->channels,
	        .nchannels = b->nchannels,
	        .stall_grace_ms = (long)g_stall_grace_ms,
	        .stop = &g_stop,
	};
	struct cometd_token_provider tp = {.get = token_get, .ctx = b};
	struct cometd_handler h = {.replay_from = replay_from, .on_batch = on_batch, .ctx = b};
	if (!(b->cometd = cometd_new(&cc, &tp, &h, err, sizeof err))) {
		log_error("cometd error=%s", err);
		return 78;
	}
	atomic_store(&g_cometd, b->cometd);
	log_info("bridge running url=%s channels=%s", url, g_channels);
	for (;;) {
		enum cometd_outcome o = cometd_run(b->cometd, err, sizeof err);
		if (o == COMETD_STOPPED) {
			rc = g_lease_lost ? 1 : 0;
			break;
		}
		if (o == COMETD_REPLAY_INVALID && replay_invalid(b, err) == 0)
			continue;
		log_error("bridge stopping outcome=%s reason=%s",
		          o == COMETD_FATAL ? "fatal" : "replay_invalid", err);
		rc = 1;
		break;
	}
	log_info("bridge stopped");
	return rc;
}

static void shutdown_bridge(struct bridge *b)
{
	atomic_store(&g_cometd, NULL);
	webhook_free(&b->webhook); /* stop accepting batches first */
	cometd_free(&b->cometd);   /* disconnect: stop fetching first */
	kafka_producer_destroy(&b->producer);
	lease_free(&b->lease); /* after the last commit: a standby may take over */
	publish_free(&b->pub);
	admin_free(&b->admin);
	sf_rest_free(&b->rest);
	sf_quota_free(&b->quota);
	sf_token_free(&b->tokens);
	sf_auth_free(&b->auth);
	fanout_free(&b->fanout);
	for (size_t i = 0; i < b->nchannels; i++)
		free(b->channels[i]);
	for (size_t i = 0; i < b->njobs; i++)
		resync_job_clear(&b->jobs[i]);
	free(b->jobs);
	for (size_t i = 0; i < b->npoll; i++) {
		free(b->poll_entity[i]);
		resync_cursor_clear(&b->poll_cur[i]);
	}
	free((char *)b->rout.checkpoint_topic);
	memset(b->token_used, 0, sizeof b->token_used);
}

int main(int argc, char **argv)
{
	struct bridge b;
	enum log_level lvl;

	log_init("sfk-bridge");
	struct config *cfg = config_new("sfk-bridge", table, sizeof table / sizeof table[0]);
	config_set_validator(cfg, validate, NULL);
	int rc = config_load(cfg, argc, argv);
	if (rc != CONFIG_RUN) {
		config_free(&cfg);
		return rc;
	}
	if (log_level_parse(g_log_level, &lvl) == 0)
		log_set_level(lvl);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Before any thread exists (libmicrohttpd, librdkafka). */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	memset(&b, 0, sizeof b);
	split_channels(&b, g_channels, strcmp(g_start, "earliest") == 0 ? -2 : -1);
	split_poll_entities(&b, g_poll_entities ? g_poll_entities : "");
	rc = run(&b);
	shutdown_bridge(&b);
	config_free(&cfg);
	curl_global_cleanup();
	return rc;
}
