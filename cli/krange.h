/*
 * krange.h - read one topic's records between two times, without a consumer
 * group (plain assign, nothing committed): the start offsets come from
 * ListOffsets by timestamp (offsetsForTimes), the end is the first offset at
 * or after --to (or the end of each partition when the read starts).
 * read_committed, so aborted transactions are never seen. For sfk replay
 * --shadow and sfk policy diff.
 */
#ifndef SFK_CLI_KRANGE_H
#define SFK_CLI_KRANGE_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#define KRANGE_MAX_PARTITIONS 1024

struct krange;

/*
 * Open topic for [from_ms, to_ms) (to_ms < 0: up to the end as of now).
 * timeout_ms bounds each Kafka request. Returns a new reader (krange_free),
 * or NULL with errstr set (unknown topic, broker unreachable).
 */
struct krange *krange_open(const char *bootstrap, const char *topic, int64_t from_ms, int64_t to_ms,
                           int timeout_ms, char *errstr, size_t errlen);

/*
 * Next record of the range (any partition order; per partition in offset
 * order) into *msg (rd_kafka_message_destroy it). Returns 1 with a record,
 * 0 when every partition reached its end, -1 on a consumer error or when
 * deadline_ms (epoch ms, 0 = none) passed first (errstr set).
 */
int krange_next(struct krange *k, rd_kafka_message_t **msg, int64_t deadline_ms, char *errstr,
                size_t errlen);

/* Records to read when opened (sum of end - start over partitions). */
long long krange_planned(const struct krange *k);

void krange_free(struct krange **k); /* NULL ok */

/* Wall clock, epoch ms. */
int64_t krange_now_ms(void);

#endif
