/*
 * webhook.h - inbound webhooks: POST /webhooks/salesforce on its own listener.
 *
 * A signed JSON batch of CDC messages or plain record changes goes through
 * the same publish path as a CometD batch (publish_batch: same records,
 * fan-out and dead letters) in one Kafka transaction; 202 only after it
 * committed. Authentication (HMAC-SHA256 over "<timestamp>.<body>"), the
 * time window and the body shape are pure functions (webhook_evaluate), so
 * unit tests and a fuzzer drive them without a socket. Protocol: README.md.
 */
#ifndef SFK_BRIDGE_WEBHOOK_H
#define SFK_BRIDGE_WEBHOOK_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "admin.h"
#include "config.h"
#include "publish.h"

#define WEBHOOK_PATH          "/webhooks/salesforce"
#define WEBHOOK_HDR_TIMESTAMP "X-Sfk-Timestamp" /* unix seconds, decimal */
#define WEBHOOK_HDR_SIGNATURE "X-Sfk-Signature" /* "sha256=<64 hex>" */
#define WEBHOOK_HDR_DELIVERY  "X-Sfk-Delivery"  /* unique per delivery */
#define WEBHOOK_SIG_PREFIX    "sha256="
#define WEBHOOK_SIG_HEX_LEN   64

/* Named maxima of what arrives from the network. */
#define WEBHOOK_DEFAULT_MAX_BODY    (1024u * 1024u)       /* body cap -> 413 above */
#define WEBHOOK_MAX_BODY_LIMIT      (16u * 1024u * 1024u) /* highest configurable cap */
#define WEBHOOK_MAX_EVENTS          1000                  /* items in one batch */
#define WEBHOOK_DELIVERY_MAX        128                   /* delivery id: [A-Za-z0-9._:-]{1,128} */
#define WEBHOOK_TIMESTAMP_DIGITS    12                    /* most digits of X-Sfk-Timestamp */
#define WEBHOOK_SIGNATURE_MAX       128                   /* whole X-Sfk-Signature value */
#define WEBHOOK_SECRET_MIN          16                    /* bytes of SFK_WEBHOOK_SECRET */
#define WEBHOOK_DEFAULT_TOLERANCE_S 300                   /* +- window around our clock */
#define WEBHOOK_REASON_MAX          512
/* A claimed (not yet committed) delivery id expires after this: a crash
 * between claim and commit blocks retries of that id at most this long. */
#define WEBHOOK_CLAIM_LEASE_MS 120000
/* The "schema" of CDC messages synthesized from plain record changes. */
#define WEBHOOK_SCHEMA_ID "sfk-webhook-record-change"

/* Settings, filled by the process's config table (WEBHOOK_CONFIG_ENTRIES). */
struct webhook_settings {
	const char *listen; /* "host:port"; NULL = no webhook listener */
	const char *secret; /* shared HMAC secret; never logged */
	long long max_body; /* bytes */
	long long tolerance_ms;
	long long delivery_ttl_ms; /* how long an accepted delivery id is remembered */
};

void webhook_check_secret(struct config *c, const struct config_entry *e);

/* The settings' rows for a config table: { ..., WEBHOOK_CONFIG_ENTRIES(&s), ... }. */
#define WEBHOOK_CONFIG_ENTRIES(s)                                                                  \
	{"webhook-listen",                                                                         \
	 "SFK_WEBHOOK_LISTEN",                                                                     \
	 CONFIG_STRING,                                                                            \
	 NULL,                                                                                     \
	 0,                                                                                        \
	 "Address (host:port) of the inbound webhook listener for POST " WEBHOOK_PATH              \
	 " (unset: off; needs SFK_WEBHOOK_SECRET and REDIS_URL)",                                  \
	 .dest = &(s)->listen,                                                                     \
	 .check = admin_check_addr},                                                               \
	        {"webhook-secret",                                                                 \
	         "SFK_WEBHOOK_SECRET",                                                             \
	         CONFIG_STRING,                                                                    \
	         NULL,                                                                             \
	         CONFIG_SECRET,                                                                    \
	         "Shared HMAC-SHA256 secret of the webhook sender (at least 16 bytes)",            \
	         .dest = &(s)->secret,                                                             \
	         .check = webhook_check_secret},                                                   \
	        {"webhook-max-body",                                                               \
	         "SFK_WEBHOOK_MAX_BODY",                                                           \
	         CONFIG_INT,                                                                       \
	         "1048576",                                                                        \
	         0,                                                                                \
	         "Largest webhook body in bytes (413 above)",                                      \
	         .dest = &(s)->max_body,                                                           \
	         .min = 1024,                                                                      \
	         .max = WEBHOOK_MAX_BODY_LIMIT},                                                   \
	        {"webhook-tolerance",                                                              \
	         "SFK_WEBHOOK_TOLERANCE",                                                          \
	         CONFIG_DURATION,                                                                  \
	         "5m",                                                                             \
	         0,                                                                                \
	         "Webhook timestamps further than this from our clock (past or future) are "       \
	         "rejected",                                                                       \
	         .dest = &(s)->tolerance_ms,                                                       \
	         .min = 1000,                                                                      \
	         .max = 3600000},                                                                  \
	{                                                                                          \
		"webhook-delivery-ttl", "SFK_WEBHOOK_DELIVERY_TTL", CONFIG_DURATION, "24h", 0,     \
		        "How long an accepted webhook delivery id is remembered (Redis)",          \
		        .dest = &(s)->delivery_ttl_ms, .min = 600000, .max = 30LL * 86400000       \
	}

/* Cross-setting checks for the process's config validator: a listener needs
 * the secret and Redis (redis_url NULL = unset). Reports with config_problem. */
void webhook_config_check(struct config *c, const struct webhook_settings *s,
                          const char *redis_url);

/* ---- pure core (no sockets, no clock, no globals) ------------------------ */

/* One request as received. Header values may be NULL (absent); all borrowed. */
struct webhook_request {
	const char *timestamp, *signature, *delivery;
	const char *body; /* may hold NULs */
	size_t body_len;
};

struct webhook_policy {
	const char *secret; /* borrowed */
	size_t secret_len;
	size_t max_body;     /* 0 = WEBHOOK_DEFAULT_MAX_BODY */
	int64_t tolerance_s; /* 0 = WEBHOOK_DEFAULT_TOLERANCE_S */
};

/* Why a request was refused: the HTTP status, a stable code and a reason
 * for the caller (never the secret or an expected signature). */
struct webhook_reject {
	int status;        /* 400, 401, 413 */
	const char *error; /* "bad_request", "unauthorized", "payload_too_large" */
	char reason[WEBHOOK_REASON_MAX];
};

/*
 * "sha256=" + lowercase hex of HMAC-SHA256(secret, timestamp "." body) into
 * out (NUL-terminated). Returns 0, or -1 if OpenSSL fails.
 */
int webhook_sign(const char *secret, size_t secret_len, const char *timestamp, const char *body,
                 size_t body_len, char out[sizeof WEBHOOK_SIG_PREFIX + WEBHOOK_SIG_HEX_LEN]);

/*
 * Authenticate a request: size cap (413), timestamp present, decimal and
 * within +-tolerance of now_s (401), signature well-formed and equal to
 * webhook_sign() in constant time (CRYPTO_memcmp) (401), delivery id present
 * and well-formed (400). Returns 0 (authentic) or the HTTP status with *why
 * filled. Order: size, timestamp, signature, delivery id.
 */
int webhook_check(const struct webhook_policy *pol, const struct webhook_request *rq, int64_t now_s,
                  struct webhook_reject *why);

/*
 * Parse and validate an (authenticated) body into the data messages
 * publish_batch() takes. Body: {"events":[item...]} or [item...], 1 to
 * WEBHOOK_MAX_EVENTS items, each either
 *   - a CDC message: {"channel":..,"data":{schema,payload,event}} or the bare
 *     data object; it must pass normalize_message (except its size cap, which
 *     publish dead-letters); "channel" is dropped (webhooks never move CometD
 *     checkpoints; envelope channel = null), or
 *   - a plain record change {"entity","change_type","record":{"Id",..}} with
 *     optional "commit_timestamp" (ms; default ts_ms), "changed_fields",
 *     "change_origin", "commit_user"; turned into a CDC message whose replay
 *     id is synthetic and negative, derived from (delivery, index), so a
 *     redelivery yields the same event ids.
 * Returns a new reference (array), or NULL with *why (400) naming the item
 * and the JSON path of the problem.
 */
json_t *webhook_parse_body(const char *body, size_t len, const char *delivery, int64_t ts_ms,
                           struct webhook_reject *why);

/*
 * webhook_check, then webhook_parse_body (commit_timestamp default: the
 * request's timestamp). The whole pure request handling: headers + body ->
 * messages (new reference) or NULL with *why. The fuzzer's entry point.
 */
json_t *webhook_evaluate(const struct webhook_policy *pol, const struct webhook_request *rq,
                         int64_t now_s, struct webhook_reject *why);

/* Synthetic replay id of plain change index of a delivery: <= -3 (never a
 * CometD replay id, nor -1/-2). */
int64_t webhook_replay_id(const char *delivery, size_t index);

/* ---- the listener ----------------------------------------------------------- */

struct webhook_conf {
	const struct webhook_settings *settings; /* borrowed during webhook_start */
	const char *redis_url;                   /* delivery ids (required) */
	struct publisher *pub;                   /* borrowed; must outlive the webhook */
	pthread_mutex_t *publish_lock; /* borrowed; held by every user of pub's producer */
};

struct webhook;

/*
 * Connect to Redis, listen on settings->listen and serve POST WEBHOOK_PATH
 * on one thread. Returns a new listener, or NULL with errstr (never the
 * secret). Metric: sfk_webhook_requests_total{outcome}.
 */
struct webhook *webhook_start(const struct webhook_conf *conf, char *errstr, size_t errlen);
/* The bound port; 0 if none. */
unsigned webhook_port(const struct webhook *w);
/* Stop listening, wait for the request in flight, free; clears *w. NULL ok. */
void webhook_free(struct webhook **w);

#endif
