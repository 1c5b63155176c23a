/*
 * kafka.h - the project's Kafka clients over librdkafka (2.0.x).
 *
 * An idempotent (optionally transactional) producer using the Java client's
 * murmur2_random partitioner; a read_committed group consumer (eager
 * roundrobin rebalancing by default) with manual offset store + commit; a small topic admin; and
 * the configuration rules every process shares (KAFKA_* pass-through).
 */
#ifndef SFK_KAFKA_H
#define SFK_KAFKA_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "err.h"

/* Room for one librdkafka error text; errstr buffers should be at least this. */
#define KAFKA_ERRSTR_MAX 512
/* Longest topic name Kafka accepts. */
#define KAFKA_TOPIC_MAX 249
/* Most headers one record may carry. */
#define KAFKA_HEADERS_MAX 16
/* Flush/close budget used by the destructors. */
#define KAFKA_SHUTDOWN_TIMEOUT_MS 10000
/* Longest a consumer's close waits for its first assignment (librdkafka < 2.3.0). */
#define KAFKA_CLOSE_JOIN_WAIT_MS 15000

/* ---- configuration ---------------------------------------------------- */

/*
 * Apply every environment variable KAFKA_<PROP>=value to conf as the
 * librdkafka property <prop> (lower-case, '_' -> '.'), e.g.
 * KAFKA_SECURITY_PROTOCOL -> security.protocol. Not passed through:
 * KAFKA_BOOTSTRAP_SERVERS (callers hand it over explicitly) and Kubernetes
 * service links of a Service named "kafka" (KAFKA_PORT, KAFKA_PORT_*,
 * KAFKA_SERVICE_*). envp is a
 * NULL-terminated "NAME=value" array, or NULL for the process environment.
 *
 * Every property is tried; each one librdkafka rejects adds a line
 * "KAFKA_<PROP>: <librdkafka's error text>\n" to errbuf (truncated to
 * errsize, always NUL-terminated when errsize > 0). Values are never copied
 * into errbuf (they may be secrets such as sasl.password).
 * Returns the number of rejected properties (0 = all applied).
 */
int kafka_conf_apply_env(rd_kafka_conf_t *conf, const char *const *envp, char *errbuf,
                         size_t errsize);

/*
 * Apply caller-given "key=value" strings (NULL-terminated array; NULL = none)
 * with rd_kafka_conf_set(). Same reporting as kafka_conf_apply_env(), lines
 * start with the key; a string without '=' is reported too.
 * Returns the number of rejected entries.
 */
int kafka_conf_apply_pairs(rd_kafka_conf_t *conf, const char *const *pairs, char *errbuf,
                           size_t errsize);

/*
 * The configuration every client starts from: bootstrap.servers, then the
 * KAFKA_* environment, then props (later wins). Returns a new conf (caller
 * owns it: rd_kafka_conf_destroy(), or hand it to rd_kafka_new()), or NULL
 * with every problem listed in errstr when anything was rejected or
 * bootstrap is empty.
 */
rd_kafka_conf_t *kafka_conf_new(const char *bootstrap, const char *const *props, char *errstr,
                                size_t errsize);

/*
 * Map a librdkafka error code to the project enum: SFK_OK; SFK_ERR_FENCED
 * (producer fenced: fatal); SFK_ERR_KAFKA_FATAL (RD_KAFKA_RESP_ERR__FATAL,
 * invalid argument or configuration, authentication/authorization);
 * SFK_ERR_TOO_LARGE (record over the broker's limit: permanent);
 * SFK_ERR_TIMEOUT; SFK_ERR_KAFKA (everything else: transient). Callers
 * holding an rd_kafka_t also check rd_kafka_fatal_error(); the functions
 * below do.
 */
enum sfk_err kafka_err_map(rd_kafka_resp_err_t err);

/* ---- producer --------------------------------------------------------- */

struct kafka_producer;

/* A record header; value may be NULL (a null header). Borrowed by the call. */
struct kafka_header {
	const char *name;
	const void *value;
	size_t len;
};

/*
 * New idempotent producer: enable.idempotence=true (so acks=all) and
 * partitioner=murmur2_random, neither overridable. transactional_id non-NULL makes it
 * transactional: call kafka_producer_txn_init() once before producing, and
 * produce only between txn_begin and txn_commit/txn_abort.
 * props: extra "key=value" librdkafka properties (applied last) or NULL.
 * Returns a new producer (kafka_producer_destroy()) or NULL with errstr set.
 */
struct kafka_producer *kafka_producer_new(const char *bootstrap, const char *transactional_id,
                                          const char *const *props, char *errstr, size_t errsize);

/*
 * Enqueue one record. key/value may be NULL (len 0); both, and the headers
 * (at most KAFKA_HEADERS_MAX), are copied. The partition comes from the key (murmur2, as Java
 * does). Waits up to a few seconds (serving delivery reports) if the local queue is full. Returns
 * SFK_OK when queued — delivery is confirmed only by kafka_producer_flush() or txn_commit —,
 * SFK_ERR_KAFKA (transient, e.g. queue still full; in a transaction: abort it), SFK_ERR_INVALID
 * (bad arguments, too large) or SFK_ERR_KAFKA_FATAL / SFK_ERR_FENCED.
 */
enum sfk_err kafka_produce(struct kafka_producer *p, const char *topic, const void *key,
                           size_t keylen, const void *value, size_t valuelen,
                           const struct kafka_header *hdrs, size_t nhdrs, char *errstr,
                           size_t errsize);

/*
 * Wait up to timeout_ms for every queued record to be delivered. Returns
 * SFK_OK if all records since the last flush were delivered; otherwise the
 * FIRST delivery failure since then (errstr: topic and librdkafka's text) and
 * resets it, SFK_ERR_TIMEOUT if records are still in flight, or the fatal
 * codes. In a transaction this delivers the records to the broker, still
 * uncommitted (txn_commit flushes by itself).
 */
enum sfk_err kafka_producer_flush(struct kafka_producer *p, int timeout_ms, char *errstr,
                                  size_t errsize);

/* Serve delivery reports and error callbacks without blocking. */
void kafka_producer_poll(struct kafka_producer *p);

/*
 * Transactions (librdkafka's txn API; timeouts use transaction.timeout.ms).
 * All return SFK_OK, SFK_ERR_KAFKA_FATAL / SFK_ERR_FENCED (fatal: destroy
 * the producer and exit), or SFK_ERR_KAFKA as noted. Retriable errors are
 * retried inside (bounded), so SFK_ERR_KAFKA means: try again later.
 *
 * txn_init: once per producer (fences older instances with the same id).
 * txn_begin: start a transaction.
 * txn_commit: flush and commit. If the transaction could not commit but can
 *   be aborted, it IS aborted here and SFK_ERR_KAFKA is returned: nothing of
 *   it is visible; redo the whole batch in a new transaction.
 * txn_abort: abort the open transaction (its records stay invisible to
 *   read_committed consumers).
 */
enum sfk_err kafka_producer_txn_init(struct kafka_producer *p, char *errstr, size_t errsize);
enum sfk_err kafka_producer_txn_begin(struct kafka_producer *p, char *errstr, size_t errsize);
enum sfk_err kafka_producer_txn_commit(struct kafka_producer *p, char *errstr, size_t errsize);
enum sfk_err kafka_producer_txn_abort(struct kafka_producer *p, char *errstr, size_t errsize);

/* The librdkafka handle (borrowed, valid while p lives), for what this API
 * does not cover (e.g. rd_kafka_send_offsets_to_transaction()). */
rd_kafka_t *kafka_producer_handle(struct kafka_producer *p);

/*
 * Orderly shutdown: abort an open transaction, flush (up to
 * KAFKA_SHUTDOWN_TIMEOUT_MS, logging what was not delivered), destroy.
 * Accepts NULL / *pp == NULL; clears *pp.
 */
void kafka_producer_destroy(struct kafka_producer **pp);

/* ---- consumer --------------------------------------------------------- */

struct kafka_consumer;

/*
 * Called from inside kafka_consumer_poll()/close() when partitions are about
 * to be taken away (a rebalance, or close), BEFORE they go: the
 * place to finish or drop in-flight work and kafka_consumer_commit() what is
 * done. lost != 0 means the assignment was lost (session timeout): other
 * members may already own the partitions, so a commit will fail — do not
 * rely on it. parts is borrowed for the call.
 */
struct kafka_revoke_hook {
	void (*fn)(struct kafka_consumer *c, const rd_kafka_topic_partition_list_t *parts, int lost,
	           void *opaque);
	void *opaque;
};

/*
 * New group consumer with group.id=group. Always (not overridable):
 * enable.auto.commit=false, enable.auto.offset.store=false,
 * isolation.level=read_committed. Defaults that props (or KAFKA_*) may
 * override: partition.assignment.strategy=roundrobin (see kafka.c for why not
 * cooperative-sticky with librdkafka 2.0.2),
 * auto.offset.reset=earliest, statistics.interval.ms=5000 (feeds
 * sfk_kafka_consumer_lag{topic}). hook may be NULL. Returns a new consumer
 * (kafka_consumer_close()) or NULL with every problem in errstr.
 */
struct kafka_consumer *kafka_consumer_new(const char *bootstrap, const char *group,
                                          const char *const *props,
                                          const struct kafka_revoke_hook *hook, char *errstr,
                                          size_t errsize);

/* Subscribe to n topic names (borrowed). SFK_OK or SFK_ERR_KAFKA(_FATAL). */
enum sfk_err kafka_consumer_subscribe(struct kafka_consumer *c, const char *const *topics, size_t n,
                                      char *errstr, size_t errsize);

/*
 * Wait up to timeout_ms for one record; rebalances and statistics are
 * handled inside. On SFK_OK *msg is the record (new: rd_kafka_message_destroy())
 * or NULL if none arrived. A consumer error gives SFK_ERR_KAFKA (transient,
 * logged; keep polling) or SFK_ERR_KAFKA_FATAL (stop) with *msg NULL.
 */
enum sfk_err kafka_consumer_poll(struct kafka_consumer *c, int timeout_ms, rd_kafka_message_t **msg,
                                 char *errstr, size_t errsize);

/* Mark msg as done: its offset + 1 becomes the partition's position to
 * commit. msg is borrowed. */
enum sfk_err kafka_consumer_store(struct kafka_consumer *c, const rd_kafka_message_t *msg,
                                  char *errstr, size_t errsize);

/* Synchronously commit every stored offset. Nothing to commit is SFK_OK. */
enum sfk_err kafka_consumer_commit(struct kafka_consumer *c, char *errstr, size_t errsize);

/* The librdkafka handle (borrowed, valid while c lives). */
rd_kafka_t *kafka_consumer_handle(struct kafka_consumer *c);

/*
 * Orderly shutdown: leave the group (the revoke hook runs for the last
 * assignment, so it can commit), then destroy. Accepts NULL / *pc == NULL;
 * clears *pc.
 * A cooperative-sticky consumer that never got its first assignment first
 * waits for it (at most KAFKA_CLOSE_JOIN_WAIT_MS): librdkafka before 2.3.0
 * aborts otherwise.
 */
void kafka_consumer_close(struct kafka_consumer **pc);

/*
 * Feed one librdkafka statistics JSON document (consumer) into the gauge
 * sfk_kafka_consumer_lag{topic}: the sum over the assigned partitions of
 * each topic of max(consumer_lag, 0). Called by the consumer's stats
 * callback; public for tests. SFK_OK or SFK_ERR_PARSE.
 */
enum sfk_err kafka_stats_update_lag(const char *json, size_t len);

/* ---- topic admin -------------------------------------------------------- */

struct kafka_admin;

struct kafka_topic_spec {
	const char *name;
	int partitions;            /* >= 1 */
	int replication;           /* >= 1, or -1 for the broker default */
	const char *const *config; /* "key=value" NULL-terminated, or NULL:
	                              cleanup.policy=compact, retention.ms=... */
};

struct kafka_topic_info {
	char name[KAFKA_TOPIC_MAX + 1];
	int partitions;
	int replication;         /* replicas of partition 0 */
	rd_kafka_resp_err_t err; /* per-topic metadata error (e.g. unknown topic) */
};

/* New admin client (kafka_admin_destroy()) or NULL with errstr set. */
struct kafka_admin *kafka_admin_new(const char *bootstrap, const char *const *props, char *errstr,
                                    size_t errsize);
void kafka_admin_destroy(struct kafka_admin **pa);

/*
 * Create n topics in one request and wait up to timeout_ms. A topic that
 * already exists counts as success (idempotent; its settings are NOT
 * compared). Every failing topic is listed in errstr ("<topic>: <text>\n");
 * the return is the first failure's code: SFK_ERR_INVALID (bad spec or
 * config rejected by the broker), SFK_ERR_TIMEOUT, SFK_ERR_KAFKA,
 * SFK_ERR_KAFKA_FATAL.
 */
enum sfk_err kafka_admin_create_topics(struct kafka_admin *a, const struct kafka_topic_spec *specs,
                                       size_t n, int timeout_ms, char *errstr, size_t errsize);

/*
 * Describe one topic (topic != NULL) or list all (NULL, internal topics
 * included) from a metadata request. *out is a new array of *n entries
 * (free()). A missing topic is SFK_ERR_NOT_FOUND.
 */
enum sfk_err kafka_admin_describe(struct kafka_admin *a, const char *topic, int timeout_ms,
                                  struct kafka_topic_info **out, size_t *n, char *errstr,
                                  size_t errsize);

#endif
