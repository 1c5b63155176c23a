/*
 * loop.h - the consumer loop every sfk-worker workload shares.
 *
 * Poll sfk.wl.<id> (group sfk.<id>), batch up to N messages or T ms, parse,
 * claim idempotency keys in one round trip, decide, write to Salesforce in
 * Collections batches, dead-letter, mark done, emit flywheel records, commit
 * contiguous done offsets per partition (seeking back to the first one that
 * is not done, so BUSY/retriable events are redelivered).
 */
#ifndef SFK_LOOP_H
#define SFK_LOOP_H

#include <signal.h>
#include <stddef.h>

#include "idem.h"
#include "kafka.h"
#include "workload.h"

#define LOOP_BATCH_MAX 1000 /* messages per batch (IDEM_BATCH_MAX) */

struct loop_conf {
	const struct workload_ops *ops; /* borrowed */
	struct wl_ctx *ctx;             /* borrowed; ctx->redis, producer required */
	const char *bootstrap;          /* KAFKA_BOOTSTRAP_SERVERS */
	const char *group;              /* consumer group: sfk.<id> */
	const char *topic;              /* <prefix>wl.<id> */
	const char *dlq_topic;          /* <prefix>dlq.<id> */
	const char *flywheel_topic;     /* <prefix>flywheel */
	int batch_max;                  /* N, 1..LOOP_BATCH_MAX */
	long batch_wait_ms;             /* T */
	int idem_lease_ms;              /* claim lease (> one batch's processing) */
	int write_attempts;             /* Collections call attempts per batch (>= 1) */
	long retry_base_ms;             /* backoff base between attempts / redeliveries */
	volatile sig_atomic_t *stop;    /* set by SIGTERM: finish the batch, commit, return */
};

struct loop;

/* New loop (loop_free): creates the group consumer (with the revoke hook)
 * and registers the metrics. NULL with errstr on failure. */
struct loop *loop_new(const struct loop_conf *c, char *errstr, size_t errlen);
void loop_free(struct loop **l);

/* Run until *stop or a fatal error. Returns a process exit status (0 = clean stop). */
int loop_run(struct loop *l);

/* Readiness pieces (thread-safe, for /readyz): partitions assigned and Redis answering. */
int loop_ready_kafka(void *l, char *reason, size_t len);
int loop_ready_redis(void *l, char *reason, size_t len);

/* Parse one envelope (borrowed) into ev (pointers borrow env; topic,
 * partition, offset and key are left to the caller). Returns SFK_OK or
 * SFK_ERR_PARSE with the reason in errstr. For tests too. */
enum sfk_err loop_parse_event(json_t *env, struct wl_event *ev, char *errstr, size_t errlen);

#endif
