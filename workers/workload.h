/*
 * workload.h - what one sfk-worker workload implements (lead.route, ...).
 *
 * The shared consumer loop (loop.c) polls sfk.wl.<id>, parses envelopes,
 * claims idempotency keys, then hands the CLAIMED events of a batch to the
 * workload's decide(); it writes the decisions' Salesforce records in sObject
 * Collections batches, marks keys done, emits flywheel records, commits.
 */
#ifndef SFK_WORKLOAD_H
#define SFK_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "err.h"
#include "kafka.h"
#include "redis.h"
#include "sf_err.h"
#include "sf_rest.h"

#define WL_ID_MAX       64  /* workload id "lead.first_touch_detect" */
#define WL_DECISION_MAX 80  /* decision id */
#define WL_ERRMSG_MAX   512 /* error text of one event */
#define WL_MODEL_MAX    128 /* flywheel request/response model */
#define WL_VERSION_MAX  64  /* policy version */
#define WL_OUTCOME_MAX  32  /* metric label */

/* Everything a workload may use. Owned by the loop; valid between init and fini. */
struct wl_ctx {
	const char *workload_id;  /* "lead.route" */
	const char *client_id;    /* SFK_CLIENT_ID (flywheel client_id, Sforce-Call-Options) */
	const char *topic_prefix; /* "" or e.g. "it123." (topics: <prefix>sfk.wl.<id>) */
	long long epoch;          /* --epoch (idempotency namespace) */
	struct config *cfg;       /* borrowed: read the workload's own settings with config_*() */
	struct sf_rest *sf;       /* Salesforce REST client (may be NULL in unit tests) */
	struct redis *redis;      /* Redis connection (single thread: the loop's) */
	struct kafka_producer *producer; /* idempotent producer (flywheel, DLQ); may be NULL */
	int64_t (*now_ms)(void);         /* wall clock, epoch milliseconds (tests may replace it) */
	void *state;                     /* the workload's own state, set by init() */
};

/* One parsed envelope (schemas/event.schema.json). All pointers borrowed from
 * env / the Kafka message, valid during the batch. */
struct wl_event {
	json_t *env;             /* whole envelope */
	json_t *fields;          /* env.fields (object, may be empty) */
	const char *event_id;    /* idempotency key */
	const char *entity;      /* "Lead", "Task", "EmailMessage" */
	const char *change_type; /* "CREATE", "GAP_CREATE", ... */
	const char *record_id;   /* as sent (15 or 18) */
	const char *commit_user; /* may be NULL */
	const char *key;         /* Kafka key (workload key, usually the Lead id); may be NULL */
	int64_t commit_ts_ms;    /* commit_timestamp */
	const char *topic;
	int32_t partition;
	int64_t offset;
};

/* What to do with one event after decide(). */
enum wl_action {
	WL_SKIP = 0, /* nothing to write (not applicable, already owned...): done */
	WL_WRITE,    /* write `write` to Salesforce, then done */
	WL_DLQ,      /* permanent problem: dead-letter it (err, errmsg), then done */
	WL_RETRY     /* transient problem: release the claim and redeliver later */
};

/*
 * One decision, filled by decide() for each event (the loop zeroes it first).
 * JSON members are NEW references owned by the decision (the loop decrefs).
 */
struct wl_decision {
	enum wl_action action;
	char outcome[WL_OUTCOME_MAX]; /* sfk_decisions_total outcome label ("routed", "skipped",
	                                 "fallback", ...); "" = derived from action */
	json_t *write;    /* WL_WRITE: one Collections record {"attributes":{"type":"Lead"},
	                     "id":"00Q...", fields...} */
	enum sfk_err err; /* WL_DLQ / WL_RETRY: the error */
	char errcode[SF_ERR_CODE_MAX]; /* e.g. "INVALID_FIELD", "missing_field" */
	char errmsg[WL_ERRMSG_MAX];    /* human text (no secrets) */

	/* Flywheel record (common/flywheel.h); none is emitted when decision is NULL. */
	json_t *decision;          /* the decision JSON: the assistant message content */
	json_t *facts;             /* the lead's facts: the user message content */
	const char *system_prompt; /* borrowed (static); NULL: the workload's default */
	char model[WL_MODEL_MAX];  /* "rules:routing_policy@1.2.0" or the LLM model */
	char policy_version[WL_VERSION_MAX];
	char lead_id[19];                  /* "" if unknown */
	char decision_id[WL_DECISION_MAX]; /* "" = the loop derives one from the event id */
};

/* Per-record result of the write, given to after_write(). */
struct wl_write_result {
	int attempted; /* 1 if a write was sent for this decision */
	int success;
	struct sf_error error; /* when attempted && !success */
};

struct workload_ops {
	const char *id; /* "lead.route" */
	/* Extra settings the workload adds to sfk-worker's table (may be NULL/0). Every
	 * workload's table is added, so flag names must be unique: prefix them. */
	const struct config_entry *config;
	size_t nconfig;
	/*
	 * After config parsed and clients exist; set ctx->state. Load and validate
	 * policies here. Returns 0, or a process exit status (78 = configuration
	 * problem) after logging/printing every problem to stderr.
	 */
	int (*init)(struct wl_ctx *ctx);
	/*
	 * Decide for n claimed events (batch order = offset order per partition).
	 * May run batched SOQL through ctx->sf and Redis commands through
	 * ctx->redis. Fill out[0..n-1]. Returns SFK_OK, or a retriable error for
	 * the whole batch (the loop releases every claim and retries later).
	 */
	enum sfk_err (*decide)(struct wl_ctx *ctx, const struct wl_event *ev, size_t n,
	                       struct wl_decision *out);
	/*
	 * Optional, after the Collections writes and before keys are marked done:
	 * extra effects (e.g. send an email only after its flag was written).
	 * May change out[i].action to WL_DLQ / WL_RETRY with err/errmsg set.
	 */
	void (*after_write)(struct wl_ctx *ctx, const struct wl_event *ev, size_t n,
	                    struct wl_decision *out, const struct wl_write_result *res);
	/* Release ctx->state. May be NULL. */
	void (*fini)(struct wl_ctx *ctx);
	/* Default system prompt of the flywheel record (static text). */
	const char *system_prompt;
	/*
	 * Optional, for --check-config and start-up: validate the workload's
	 * settings and policy files, reporting each problem with
	 * config_problem(c, NULL, ...) (JSON paths included). Runs only for the
	 * selected workload, after every setting parsed.
	 */
	void (*check_config)(struct config *c);
};

/* registry.c: every workload, NULL-terminated. */
extern const struct workload_ops *const workload_registry[];
/* The workload with this id, or NULL. */
const struct workload_ops *workload_find(const char *id);

#endif
