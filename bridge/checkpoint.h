/*
 * checkpoint.h - read the bridge's replay-id checkpoints back from Kafka.
 *
 * The compacted topic <prefix>bridge.checkpoints holds, per CometD channel
 * (the key), the last replay id whose batch was committed (value written by
 * publish_checkpoint_value()). At start-up the bridge reads the topic from
 * the beginning to its end, read_committed, last record per key winning.
 * The same topic holds resync progress (resync:<entity>) and polling
 * watermarks (poll:<entity>), written in the transactions they describe.
 */
#ifndef SFK_BRIDGE_CHECKPOINT_H
#define SFK_BRIDGE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"

/* Most keys kept (channels + resync:<entity> + poll:<entity>). */
#define CHECKPOINT_MAX_KEYS 256

/* One live key of the topic. Channel keys hold the last committed replay id;
 * resync:<entity> an unfinished entity resync (resync.h), poll:<entity> a
 * polling watermark (poll.h). */
struct checkpoint_record {
	const char *key;      /* borrowed */
	int64_t replay_id;    /* channel keys: last committed replay id; others -1 */
	int64_t committed_at; /* "committed_at" of the value (ms, bridge clock); 0 if absent */
	json_t *value;        /* borrowed: the whole value (an object) */
};

/* Called once per live key with its latest value. */
typedef void (*checkpoint_fn)(void *ctx, const struct checkpoint_record *r);

/*
 * Read topic to its end within timeout_ms. props: extra librdkafka
 * "key=value" (NULL-terminated) or NULL; KAFKA_* environment applies. A
 * missing topic is not an error (no checkpoints: *found = 0). Malformed
 * values are logged and skipped; a tombstone forgets its key.
 * SFK_OK, SFK_ERR_TIMEOUT (end not reached), SFK_ERR_KAFKA(_FATAL) with errstr.
 */
enum sfk_err checkpoint_load(const char *bootstrap, const char *const *props, const char *topic,
                             int timeout_ms, checkpoint_fn fn, void *ctx, size_t *found,
                             char *errstr, size_t errlen);

#endif
