/*
 * notify_send.h - HTTP delivery of notify.webhook jobs with one libcurl multi
 * handle: a queue per target (so a slow or failing target never holds up the
 * others), its token bucket, in-flight cap and circuit breaker (kept across
 * runs), retries with backoff and Retry-After, signed requests.
 */
#ifndef SFK_NOTIFY_SEND_H
#define SFK_NOTIFY_SEND_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "notify.h"

#define NOTIFY_REASON_MAX 256
#define NOTIFY_RESP_MAX   4096 /* response body bytes kept (for the reason) */
#define NOTIFY_HDRVAL_MAX 128  /* Retry-After value kept */

enum notify_result {
	NOTIFY_PENDING = 0,
	NOTIFY_DELIVERED, /* 2xx */
	NOTIFY_FAILED,    /* budget spent, permanent 4xx, or circuit open: dead-letter */
	NOTIFY_DEFERRED   /* run deadline or stop: not sent, try again later */
};

/* One delivery: an event to one target. Fill target, delivery_id, body, len;
 * the sender fills the rest. */
struct notify_job {
	int target; /* index into the policy's targets */
	char delivery_id[NOTIFY_DID_MAX];
	const char *body; /* borrowed, valid during the run */
	size_t len;
	/* results */
	enum notify_result result;
	enum sfk_err err;               /* last failure's error (FAILED / DEFERRED) */
	char code[32];                  /* "http_500", "circuit_open", "timeout", ... */
	char reason[NOTIFY_REASON_MAX]; /* human text, no URL or secret */
	long status;                    /* last HTTP status (0: none) */
	int attempts;                   /* requests sent */
	int retries_429;                /* of which answered 429 */
	double latency_s;               /* first attempt -> 2xx */
	/* sender's bookkeeping */
	int64_t next_ms, first_ms;
	int inflight;
};

struct notify_sender;

/*
 * New sender for policy p (borrowed; must outlive the sender). Registers the
 * metrics families sfk_notify_deliveries_total{target,outcome} (delivered,
 * retry, dlq, deferred), sfk_notify_delivery_latency_seconds{target} and
 * sfk_notify_circuit_state{target} (0 closed, 1 half-open, 2 open).
 * user_agent borrowed. Never NULL.
 */
struct notify_sender *notify_sender_new(const struct notify_policy *p, const char *user_agent);
void notify_sender_free(struct notify_sender **s); /* accepts NULL */

/*
 * Deliver jobs[0..n) concurrently until each is DELIVERED or FAILED, or
 * deadline_ms (monotonic run time) passes / *stop is set: what is left becomes
 * DEFERRED (requests in flight are aborted). stop may be NULL.
 */
void notify_sender_run(struct notify_sender *s, struct notify_job *jobs, size_t n, long deadline_ms,
                       volatile sig_atomic_t *stop);

/* The circuit state of target i. */
enum notify_br_state notify_sender_circuit(const struct notify_sender *s, int target);

#endif
