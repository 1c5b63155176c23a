/*
 * publish.h - one CometD batch -> one Kafka transaction.
 *
 * The events of a batch (normalized, one record per record id), their
 * workload fan-out records, dead letters for malformed events and the new
 * per-channel replay-id checkpoints are produced between one begin and one
 * commit; the in-memory checkpoint advances only after the commit. Kafka and
 * Salesforce sit behind small interfaces (sink, refetch) so the batch logic
 * is tested without either.
 */
#ifndef SFK_BRIDGE_PUBLISH_H
#define SFK_BRIDGE_PUBLISH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "fanout.h"
#include "kafka.h"

#define PUBLISH_MAX_CHANNELS 32
#define PUBLISH_CHANNEL_MAX  128

/* Headers on a dead letter. */
#define PUBLISH_HDR_ERROR_CODE   "sfk.error_code"
#define PUBLISH_HDR_ERROR_CLASS  "sfk.error_class"
#define PUBLISH_HDR_ERROR_REASON "sfk.error_reason"
#define PUBLISH_HDR_CHANNEL      "sfk.channel"

/* Where records go (kafka_producer's transactional API, or a test double).
 * Every function returns SFK_OK or an error with errstr filled. */
struct publish_sink {
	enum sfk_err (*begin)(void *ctx, char *errstr, size_t errlen);
	/* key may be NULL. Everything is copied by the callee. */
	enum sfk_err (*produce)(void *ctx, const char *topic, const char *key, const char *value,
	                        size_t len, const struct kafka_header *hdrs, size_t nhdrs,
	                        char *errstr, size_t errlen);
	enum sfk_err (*commit)(void *ctx, char *errstr, size_t errlen);
	enum sfk_err (*abort)(void *ctx, char *errstr, size_t errlen);
	void *ctx;
};

/* Current state of a record after a gap event (Salesforce REST GET).
 * *record: new reference. SFK_ERR_NOT_FOUND: the record is gone (the gap
 * record is published unresolved); other errors abort the batch. */
struct publish_refetch {
	enum sfk_err (*get)(void *ctx, const char *entity, const char *id, json_t **record,
	                    char *errstr, size_t errlen);
	void *ctx;
};

struct publish_conf {
	const char *topic_prefix;       /* "sfk." (NULL = "sfk.") */
	const char *client_id;          /* echo detection (SFK_CLIENT_ID) */
	size_t max_event_bytes;         /* 0 = NORMALIZE_DEFAULT_MAX_EVENT_BYTES */
	int64_t (*clock_ms)(void *ctx); /* NULL = wall clock */
	void *clock_ctx;
	const struct fanout *fanout; /* borrowed; NULL = no fan-out */
	struct publish_sink sink;
	struct publish_refetch refetch; /* get NULL = gaps stay unresolved */
	/* Called after a commit for every GAP_OVERFLOW / wildcard event in it:
	 * the entity needs a full resync. May be NULL. */
	void (*on_resync)(void *ctx, const char *entity, int64_t replay_id);
	void *resync_ctx;
};

/* What one batch produced (for logs and tests). */
struct publish_stats {
	size_t events, records, fanout, dead_letters, echoes, gaps_resolved, gaps_unresolved,
	        resyncs, checkpoints;
};

struct publisher;

/* New publisher (conf copied; strings copied). Never NULL. */
struct publisher *publish_new(const struct publish_conf *conf);
void publish_free(struct publisher **p);

/*
 * Publish the data messages of one connect response (borrowed JSON array)
 * in one transaction. SFK_OK: committed, checkpoints advanced, *st filled.
 * Otherwise the transaction was aborted (nothing visible) and the
 * checkpoints did not move: resume from publish_checkpoint(). The class of
 * the returned code says whether to go on (retriable) or exit (fatal).
 * Malformed events are not errors: they go to <prefix>dlq.bridge.
 */
enum sfk_err publish_batch(struct publisher *p, json_t *messages, struct publish_stats *st,
                           char *errstr, size_t errlen);

/*
 * Entity resync: the REST records (borrowed JSON array) of entity as
 * SNAPSHOT envelopes (normalize_snapshot) on <prefix>cdc.<entity>, fanned
 * out per the rules, in ONE transaction. replay_id: the GAP_OVERFLOW event's.
 * A record without a valid Id is dead-lettered. SFK_OK (committed, *n =
 * records produced) or an error (aborted).
 */
enum sfk_err publish_snapshot(struct publisher *p, const char *entity, int64_t replay_id,
                              json_t *records, size_t *n, char *errstr, size_t errlen);

/* Last committed replay id of channel, or -1 if none. */
int64_t publish_checkpoint(const struct publisher *p, const char *channel);
/* Seed a checkpoint (start-up, from the checkpoint topic). -1 if the table is full. */
int publish_set_checkpoint(struct publisher *p, const char *channel, int64_t replay_id);

/* Checkpoint topic record: key = channel, value =
 * {"channel":..,"replay_id":N,"committed_at":ms}. Value new string (free()). */
char *publish_checkpoint_value(const char *channel, int64_t replay_id, int64_t now_ms);
/* Parse a checkpoint value; 0 and *replay_id, or -1 if malformed. */
int publish_checkpoint_parse(const char *value, size_t len, char *channel, size_t chlen,
                             int64_t *replay_id);

#endif
