/*
 * notify_relay.h - feeds lead.sla_watch's breach records into notify.webhook.
 *
 * lead.sla_watch writes flat records {"type":"sla.breach", "event_id",
 * "lead_id", ...} to <prefix>notify.events; the consumer loop reads one topic
 * (<prefix>wl.notify.webhook) of envelopes. The relay, a thread inside the
 * notify.webhook worker, turns each record into an envelope (kind
 * "sla_breach") on the workload topic: produce, flush, then commit, so at
 * least once; the envelope keeps the record's event_id, so the loop's
 * idempotency makes a relayed duplicate harmless.
 */
#ifndef SFK_NOTIFY_RELAY_H
#define SFK_NOTIFY_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define NOTIFY_RELAY_BATCH_MAX 500 /* records per produce + flush + commit */

/*
 * The envelope for one notify.events record (borrowed): {envelope_version 1,
 * kind "sla_breach", event_id, entity "Lead", change_type "SLA_BREACH",
 * record_id = lead_id, commit_timestamp = now_ms, fields = the record
 * without type / event_id / client_id}. New reference, or NULL with the
 * reason in errstr (not an object, unknown type, event_id or lead_id
 * missing, lead_id not a Salesforce id).
 */
json_t *notify_relay_envelope(json_t *rec, int64_t now_ms, char *errstr, size_t errlen);

struct notify_relay;

/*
 * Start the relay thread: consume from_topic in group `group`, produce to
 * to_topic through its own idempotent producer (so the loop's flushes never
 * see its delivery reports). Strings are copied. NULL with errstr set.
 */
struct notify_relay *notify_relay_start(const char *bootstrap, const char *from_topic,
                                        const char *to_topic, const char *group, char *errstr,
                                        size_t errlen);
/* Stop the thread (the current batch finishes), commit, close. Accepts NULL. */
void notify_relay_stop(struct notify_relay **r);

#endif
