/*
 * lease.h - the bridge's leadership lease in Redis (one active, hot standby).
 *
 * Key sfk:lease:bridge holds the active bridge's holder id with a TTL; the
 * holder renews it (compare-and-pexpire in Lua) well before it expires, a
 * standby takes it once it lapses. Each acquisition increments
 * sfk:lease:bridge:fence, a fencing token for logs and metrics; the hard
 * fence against a paused ex-leader is Kafka's transactional.id (the new
 * leader's txn_init aborts and fences the old producer). Not thread-safe:
 * one lease per thread (it owns a Redis connection).
 */
#ifndef SFK_BRIDGE_LEASE_H
#define SFK_BRIDGE_LEASE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define LEASE_KEY        "sfk:lease:bridge"
#define LEASE_HOLDER_MAX 128

struct lease;

/* Connect to redis_url (borrowed) for a lease of ttl_ms held as holder
 * (copied). NULL with errstr on a bad URL or an unreachable Redis. */
struct lease *lease_new(const char *redis_url, const char *key, const char *holder, long ttl_ms,
                        char *errstr, size_t errlen);
/* Release if held (compare-and-delete), disconnect. Accepts NULL; clears *lp. */
void lease_free(struct lease **lp);

/*
 * Try to take the lease. SFK_OK: we hold it now (*fence = the new fencing
 * token); SFK_ERR_BUSY: someone else holds it (*fence untouched);
 * SFK_ERR_REDIS: Redis unreachable (errstr).
 */
enum sfk_err lease_acquire(struct lease *l, int64_t *fence, char *errstr, size_t errlen);

/* Extend the TTL if we still hold it. SFK_OK, SFK_ERR_FENCED (lost: another
 * holder or expired), SFK_ERR_REDIS (unknown: retry, but give up once the
 * TTL since the last success has passed). */
enum sfk_err lease_renew(struct lease *l, char *errstr, size_t errlen);

/* Give it up now if we hold it (a standby takes over at once). */
void lease_release(struct lease *l);

/* The holder id currently in Redis ("" if free), into out. SFK_OK or SFK_ERR_REDIS. */
enum sfk_err lease_holder(struct lease *l, char *out, size_t size);

/*
 * Standby: try to take the lease every ttl/3 until we hold it (0, *fence
 * set) or *stop is set (-1). Logs once per holder change who is active.
 */
int lease_wait(struct lease *l, volatile sig_atomic_t *stop, int64_t *fence);

/*
 * Active: a thread renews the lease every ttl/3. When it is lost (taken,
 * expired, or Redis unreachable for a whole TTL) the thread sets *lost and
 * *stop and ends: the caller stops fetching and exits (its producer is
 * about to be fenced anyway). The lease must not be used by the caller
 * until lease_keep_stop() joined the thread. 0, or -1 if no thread.
 */
int lease_keep_start(struct lease *l, volatile sig_atomic_t *stop, volatile sig_atomic_t *lost);
void lease_keep_stop(struct lease *l);

#endif
