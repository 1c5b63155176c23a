/*
 * checkpoint.h - read the bridge's replay-id checkpoints back from Kafka.
 *
 * The compacted topic <prefix>bridge.checkpoints holds, per CometD channel
 * (the key), the last replay id whose batch was committed (value written by
 * publish_checkpoint_value()). At start-up the bridge reads the topic from
 * the beginning to its end, read_committed, last record per key winning.
 */
#ifndef SFK_BRIDGE_CHECKPOINT_H
#define SFK_BRIDGE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Called once per channel with its latest committed replay id. */
typedef void (*checkpoint_fn)(void *ctx, const char *channel, int64_t replay_id);

/*
 * Read topic to its end within timeout_ms. props: extra librdkafka
 * "key=value" (NULL-terminated) or NULL; KAFKA_* environment applies. A
 * missing topic is not an error (no checkpoints: *found = 0). Malformed
 * values are logged and skipped; a tombstone forgets its channel.
 * SFK_OK, SFK_ERR_TIMEOUT (end not reached), SFK_ERR_KAFKA(_FATAL) with errstr.
 */
enum sfk_err checkpoint_load(const char *bootstrap, const char *const *props, const char *topic,
                             int timeout_ms, checkpoint_fn fn, void *ctx, size_t *found,
                             char *errstr, size_t errlen);

#endif
