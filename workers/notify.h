/*
 * notify.h - notify.webhook: subscriptions (policies/notifications.json) and
 * the pure pieces of delivery: which targets an event goes to, the payload per
 * target kind (generic webhook, Slack, Discord), HMAC signatures, delivery
 * ids, backoff and Retry-After, the token bucket and the circuit breaker.
 * No sockets here (notify_send.h does HTTP); everything is testable as is.
 */
#ifndef SFK_NOTIFY_H
#define SFK_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define NOTIFY_NAME_MAX    64           /* target / subscription name */
#define NOTIFY_ENV_MAX     128          /* name of an environment variable */
#define NOTIFY_URL_MAX     2048         /* target URL (from the environment) */
#define NOTIFY_SECRET_MAX  512          /* signing secret (from the environment) */
#define NOTIFY_DID_MAX     33           /* delivery id: 32 hex chars + NUL */
#define NOTIFY_SIG_MAX     72           /* "sha256=" + 64 hex + NUL */
#define NOTIFY_BODY_MAX    (256 * 1024) /* one rendered payload */
#define NOTIFY_TARGETS_MAX 64           /* targets in one policy */
#define NOTIFY_VERSION_MAX 32

enum notify_kind { NOTIFY_WEBHOOK = 0, NOTIFY_SLACK, NOTIFY_DISCORD };

/* One delivery target, as configured (numbers have the schema's defaults). */
struct notify_target {
	char name[NOTIFY_NAME_MAX];
	enum notify_kind kind;
	char url_env[NOTIFY_ENV_MAX];    /* "" when the URL is in the file ("url") */
	char secret_env[NOTIFY_ENV_MAX]; /* "" = unsigned (Slack, Discord) */
	char *url;                       /* owned; resolved from url / url_env; may hold a token */
	char *secret;                    /* owned; NULL when none; never logged */
	long timeout_ms;                 /* one request */
	int max_attempts;                /* retry budget per delivery (>= 1) */
	long backoff_base_ms, backoff_max_ms;
	long retry_after_max_ms;  /* longest Retry-After honoured */
	double rate_per_s, burst; /* token bucket */
	int max_inflight;         /* concurrent requests to this target */
	int breaker_failures;     /* consecutive failures that open the circuit */
	long breaker_open_ms;     /* open this long, then one half-open probe */
};

struct notify_policy {
	char version[NOTIFY_VERSION_MAX];
	json_t *doc; /* owned: the validated document */
	struct notify_target *targets;
	size_t ntargets;
};

/*
 * Load and validate a notifications policy against its schema, then the
 * checks a schema cannot make (subscriptions name existing targets, names
 * unique, a URL or url_env per target). With resolve_env, every url_env /
 * secret_env must be set in the environment (a problem each otherwise); the
 * values are copied and registered with log_redact(). Returns a new policy
 * (notify_policy_free), or NULL with *problems = new JSON array of
 * "<JSON path>: <problem>" strings (every problem, not only the first).
 */
struct notify_policy *notify_policy_load(const char *path, const char *schema_path, int resolve_env,
                                         json_t **problems);
/* Same over documents (borrowed). */
struct notify_policy *notify_policy_new(json_t *doc, json_t *schema, int resolve_env,
                                        json_t **problems);
void notify_policy_free(struct notify_policy **p); /* accepts NULL */

/*
 * Read target t's url_env / secret_env from the environment (what
 * notify_policy_load does for every target with resolve_env), registering
 * the values with log_redact(). Returns 0, or -1 after appending a problem per
 * unset variable to *problems (a new array is made if *problems is NULL).
 */
int notify_target_resolve(struct notify_target *t, json_t **problems);

/* The target index with this name, or -1. */
int notify_policy_target(const struct notify_policy *p, const char *name);

/*
 * Which targets an envelope (borrowed; workers' wl_event env) goes to:
 * out[] gets distinct target indexes in policy order, subs[] (may be NULL)
 * a new JSON array per target of the subscription names that matched.
 * The event kind is env.kind ("sla_breach") or "change" when absent.
 * Returns the number of targets (<= max).
 */
size_t notify_policy_match(const struct notify_policy *p, json_t *env, size_t *out, json_t **subs,
                           size_t max);

/* A fan-out condition (policies/workloads.json "when") over fields; 1 = match. */
int notify_cond_eval(json_t *cond, json_t *fields);

/* ---- payloads (notify_format.c) ----------------------------------------- */

/* Delivery id: first 128 bits of SHA-256(event_id "\n" target), hex. Stable across
 * redeliveries and replicas. Returns 0, or -1 when out is too small. */
int notify_delivery_id(const char *event_id, const char *target, char *out, size_t len);

/* "sha256=<hex HMAC-SHA256(secret, timestamp "." body)>" into out. Returns 0 or -1. */
int notify_sign(const char *secret, const char *timestamp, const char *body, size_t len, char *out,
                size_t outlen);

/*
 * The body for target t: a new string (free()), at most NOTIFY_BODY_MAX bytes,
 * or NULL (event too large even after trimming fields). env borrowed;
 * subs: borrowed array of subscription names (may be NULL).
 *   webhook: {"delivery_id","event_id","kind","subscriptions","target",
 *             "entity","change_type","record_id","commit_timestamp","fields"}
 *   slack:   {"text", "blocks": [header, section (mrkdwn), context]}
 *   discord: {"content", "embeds": [{"title","description","fields","footer"}]}
 */
char *notify_render(const struct notify_target *t, json_t *env, json_t *subs,
                    const char *delivery_id, size_t *len);

/* ---- flow control (notify_flow.c) ---------------------------------------- */

/*
 * Delay before retry number `retry` (1 = after the first failure): base *
 * 2^(retry-1) capped at max, then jittered into [d/2, d] by rnd. >= 1.
 */
long notify_backoff_ms(long base_ms, long max_ms, int retry, unsigned rnd);

/*
 * Retry-After header value -> milliseconds from now: delta-seconds ("120")
 * or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT", now_s = epoch seconds;
 * a past date gives 0). -1 when malformed.
 */
long notify_retry_after_ms(const char *value, int64_t now_s);

/* Token bucket: rate tokens per second up to burst. */
struct notify_bucket {
	double tokens, rate, burst;
	int64_t last_ms;
};
void notify_bucket_init(struct notify_bucket *b, double rate, double burst, int64_t now_ms);
/* Take one token: 1, or 0 when empty (try again after notify_bucket_wait_ms). */
int notify_bucket_take(struct notify_bucket *b, int64_t now_ms);
/* Milliseconds until a token is available (0 = now). */
long notify_bucket_wait_ms(struct notify_bucket *b, int64_t now_ms);

/* Circuit breaker: closed -> (threshold consecutive failures) -> open ->
 * (open_ms) -> half-open: one probe; its success closes, its failure re-opens. */
enum notify_br_state { NOTIFY_BR_CLOSED = 0, NOTIFY_BR_HALF_OPEN = 1, NOTIFY_BR_OPEN = 2 };
enum notify_br_verdict { NOTIFY_BR_ALLOW, NOTIFY_BR_WAIT, NOTIFY_BR_REJECT };
struct notify_breaker {
	enum notify_br_state state;
	int failures, threshold;
	long open_ms;
	int64_t opened_ms;
	int probing; /* half-open: the probe is in flight */
};
void notify_breaker_init(struct notify_breaker *b, int threshold, long open_ms);
/* May a request go now? REJECT while open (fail fast), WAIT while a half-open
 * probe is in flight, ALLOW otherwise (in half-open: this is the probe). */
enum notify_br_verdict notify_breaker_allow(struct notify_breaker *b, int64_t now_ms);
/* The outcome of an allowed request (ok: the target answered healthily). */
void notify_breaker_result(struct notify_breaker *b, int ok, int64_t now_ms);
/* "closed" | "half_open" | "open". */
const char *notify_breaker_str(enum notify_br_state s);

#endif
