/*
 * idem.h - idempotency claims in Redis: at-least-once delivery, effects once.
 *
 * A worker claims an event id with a short lease before applying its effect,
 * marks it done afterwards (kept for at least the topic retention), and
 * releases the claim if the effect failed so another replica may retry.
 * Keys: sfk:idem:<workload>:<epoch>:<event id> (all keys: rkeys.h).
 */
#ifndef SFK_IDEM_H
#define SFK_IDEM_H

#include <stddef.h>

#include "err.h"
#include "redis.h"

#define IDEM_KEY_MAX      512 /* whole key, bytes */
#define IDEM_WORKLOAD_MAX 64
#define IDEM_OWNER_LEN    32   /* hex chars of the random owner token */
#define IDEM_BATCH_MAX    1000 /* ids per batch call (one Lua call) */

/* Defaults (zero fields in idem_opts take them). */
#define IDEM_DEF_LEASE_MS   30000
#define IDEM_DEF_DONE_TTL_S (7 * 24 * 3600) /* Kafka's default retention */

struct idem_opts {
	int lease_ms;         /* claim lifetime; long enough for one Salesforce write */
	long long done_ttl_s; /* must be >= the workload topic's retention */
};

/* Per-id result of a claim. */
enum idem_outcome {
	IDEM_CLAIMED = 1, /* ours now: apply the effect, then complete or release */
	IDEM_DONE = 2,    /* already done: skip as a duplicate */
	IDEM_BUSY = 3     /* someone else holds the lease: retry later */
};

struct idem; /* workload, epoch, owner token, options; borrows a struct redis */

/*
 * New claimer for one workload and epoch with a fresh random owner token
 * (so two idem objects, even in one process, never own each other's claims).
 * r is borrowed and must outlive the idem. o may be NULL.
 * Returns NULL (detail in errstr) if workload is empty, too long or holds ':'.
 */
struct idem *idem_new(struct redis *r, const char *workload, long long epoch,
                      const struct idem_opts *o, char *errstr, size_t errlen);
void idem_free(struct idem *m); /* accepts NULL */
/* The owner token (borrowed, valid while m lives). For logs and tests. */
const char *idem_owner(const struct idem *m);

/*
 * Claim one event id: SET key <owner> NX PX lease, atomically with the check
 * for "done" (Lua). Re-claiming an id we already hold renews the lease and
 * counts as claimed (a retry after a lost reply is safe).
 * Returns SFK_OK (claimed), SFK_ERR_DUPLICATE (done: skip), SFK_ERR_BUSY
 * (held by another owner), SFK_ERR_INVALID (id empty or key too long),
 * SFK_ERR_REDIS (detail in redis_errstr of the connection).
 */
enum sfk_err idem_claim(struct idem *m, const char *event_id);

/*
 * Claim n (<= IDEM_BATCH_MAX) ids in ONE round trip (one Lua call); out[i]
 * gets the outcome for ids[i]. Returns SFK_OK (see out), SFK_ERR_INVALID or
 * SFK_ERR_REDIS (out untouched: nothing is known to be claimed; leases taken
 * before a lost reply expire, or are re-claimed by us on retry).
 */
enum sfk_err idem_claim_batch(struct idem *m, size_t n, const char *const *ids,
                              enum idem_outcome *out);

/*
 * Mark done with TTL done_ttl_s, only if we still own the claim, it is already
 * done, or the key is gone (our lease expired and nobody took it: we did the
 * work, so "done" is the truth). Returns SFK_OK, SFK_ERR_FENCED if another
 * owner holds it now (our lease expired and it was re-claimed: the effect may
 * be applied twice, which effects must tolerate), or SFK_ERR_REDIS.
 */
enum sfk_err idem_complete(struct idem *m, const char *event_id);
/* Same for n ids in one round trip; res[i] gets SFK_OK or SFK_ERR_FENCED.
 * Returns SFK_OK (see res), SFK_ERR_INVALID or SFK_ERR_REDIS. */
enum sfk_err idem_complete_batch(struct idem *m, size_t n, const char *const *ids,
                                 enum sfk_err *res);

/*
 * Give a claim back (the effect failed; let another replica retry): delete
 * only if we own it. Returns SFK_OK (released, or nothing to release),
 * SFK_ERR_FENCED (held by another owner or done: left alone), SFK_ERR_REDIS.
 */
enum sfk_err idem_release(struct idem *m, const char *event_id);

/* Build the key for an event id into buf. Returns 0, or -1 if it does not fit
 * (or event_id is empty). For tests and the CLI (sfk replay). */
int idem_key(const struct idem *m, const char *event_id, char *buf, size_t len);

#endif
