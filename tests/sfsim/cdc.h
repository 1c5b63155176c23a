/*
 * cdc.h - sfk-sim's Change Data Capture: turns committed org changes into
 * change events shaped like Salesforce's CometD CDC JSON, assigns replay ids,
 * keeps them for the retention window (sim time) and hands batches of
 * pre-serialized messages to the CometD server. The event-building core is
 * pure (struct org_change in, JSON out); the bus is thread-safe.
 */
#ifndef SFK_SIM_CDC_H
#define SFK_SIM_CDC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "org.h"

#define SIM_MODULE_CDC 1

/* Channel every change event is also published on. */
#define CDC_CHANNEL_ALL "/data/ChangeEvents"
/* Longest channel name accepted ("/data/" + entity + "ChangeEvent"). */
#define CDC_CHANNEL_MAX 128
/* Channels the bus can hold (Salesforce: 100 custom channels + standard). */
#define CDC_MAX_CHANNELS 256
/* recordIds of a GAP_OVERFLOW event (documented constant). */
#define CDC_OVERFLOW_RECORD_ID "000000000000000AAA"
/* Largest body POST /sim/events/raw accepts (an event is at most 1 MB). */
#define CDC_RAW_BODY_MAX (2u * 1024u * 1024u)
/* Most record ids merged into one event. */
#define CDC_MERGE_MAX_IDS 200

struct cdc_config {
	int64_t retention_ms;   /* 72 h of sim time */
	size_t max_events;      /* retained events cap (oldest dropped first) */
	size_t max_bytes;       /* retained serialized bytes cap (likewise) */
	size_t max_event_bytes; /* bigger serialized events become GAP_* (1 MB) */
	long overflow_changes;  /* changes per transaction before GAP_OVERFLOW */
	int merge;              /* merge identical changes of one transaction */
	uint64_t seed;          /* replay-id gaps, schema ids, commit numbers */
	const char *entities;   /* comma list of CDC-enabled entities */
	/* Sim clock (ms); NULL = wall clock. */
	int64_t (*clock_ms)(void *ctx);
	void *clock_ctx;
};

/* Defaults: 72 h, 500,000 events, 512 MB retained, 1 MB per event,
 * 100,000 changes, merge on, "Lead,Task,EmailMessage". */
void cdc_config_default(struct cdc_config *cfg);

struct cdc;

/* New bus (cfg copied, entities parsed). Never NULL. */
struct cdc *cdc_new(const struct cdc_config *cfg);
/* Free the bus; accepts NULL; clears *c. Stops the sim glue first if running. */
void cdc_free(struct cdc **c);

/* Channel name for an entity: "/data/LeadChangeEvent",
 * "/data/Foo__ChangeEvent" for "Foo__c". 0, or -1 if it does not fit. */
int cdc_channel_for(const char *entity, char *out, size_t size);
/* 1 if entity is CDC-enabled. */
int cdc_entity_enabled(struct cdc *c, const char *entity);
/* 1 if a client may subscribe to channel (enabled entity, ChangeEvents, or a
 * channel created by cdc_publish_raw). */
int cdc_channel_exists(struct cdc *c, const char *channel);

/*
 * Publish one committed transaction: changes[0..n) in commit order, possibly
 * of entities that are not CDC-enabled (they only consume sequence numbers).
 * Builds the events (merging identical changes, GAP for forced gaps and
 * oversize events, GAP_OVERFLOW past overflow_changes), assigns replay ids
 * and wakes waiters. Returns the number of events published.
 */
size_t cdc_publish_txn(struct cdc *c, const struct org_change *changes, size_t n);

/*
 * Publish a caller-supplied CDC `data` object (borrowed) as-is on channel
 * (which must start with "/data/"); "event":{"replayId"} is added or
 * replaced. The channel exists from then on; channels ending in
 * "ChangeEvent" are mirrored on /data/ChangeEvents. Returns the replay id,
 * or -1 with errstr filled.
 */
int64_t cdc_publish_raw(struct cdc *c, const char *channel, json_t *data, char *errstr,
                        size_t errlen);

/* Next n built events become GAP_<type> (header only). */
void cdc_force_gap(struct cdc *c, int n);

/* Drop events older than the retention window (sim time). Called by the
 * readers; exposed for tests. */
void cdc_expire(struct cdc *c);

/* Replay-id validity for a subscription: -1 and -2 always; otherwise the id
 * must lie within [oldest retained replay id, last assigned replay id]. */
int cdc_replay_valid(struct cdc *c, int64_t replay_id);
/* Cursor (deliver events with replayId > cursor) for a subscription starting
 * at replay_id (-1 new only, -2 all retained, N after N). */
int64_t cdc_replay_cursor(struct cdc *c, int64_t replay_id);
/* Last assigned replay id (0 before the first event). */
int64_t cdc_last_replay_id(struct cdc *c);

/* A growable byte buffer (for collected messages). */
struct cdc_buf {
	char *p;
	size_t len, cap;
};
void cdc_buf_append(struct cdc_buf *b, const char *s, size_t n);
void cdc_buf_free(struct cdc_buf *b);

/* One subscription's read position. channel is borrowed. */
struct cdc_cursor {
	const char *channel;
	int64_t after;
};

/*
 * Append, comma-separated, the Bayeux messages
 * {"data":<event>,"channel":"<subscribed channel>"} of every retained event
 * after each cursor that belongs to its channel, in replay order, advancing
 * the cursors. Stops before max_msgs, or once max_bytes were appended (one
 * event may overshoot). Serialization happened once at publish time.
 * Returns the number of messages appended.
 */
size_t cdc_collect(struct cdc *c, struct cdc_cursor *cur, size_t ncur, size_t max_msgs,
                   size_t max_bytes, struct cdc_buf *out);

/* Called after every publish (outside the bus lock): a reader wake-up. */
void cdc_set_listener(struct cdc *c, void (*fn)(void *ctx), void *ctx);

/* {"published":{"<channel>":N,...},"retained":N,"retained_bytes":N,
 *  "last_replay_id":N,"dropped":N}; new reference. */
json_t *cdc_stats(struct cdc *c);

/* ---- event building (pure, for tests) ------------------------------------ */

/* The payload body for one change (fields only, no header): CREATE and
 * UNDELETE carry every non-empty field, UPDATE the changed ones (nulls kept),
 * DELETE nothing; Name/Address compounds nested. New reference. */
json_t *cdc_event_body(const struct org_change *ch);
/* changedFields for one change (compound parts as "Name.LastName"). New ref. */
json_t *cdc_changed_fields(const struct org_change *ch);

/* ---- sim module (http.h contract) ---------------------------------------- */

/*
 * Reads --opt cdc.entities, cdc.retention_s, cdc.max_events, cdc.max_bytes,
 * cdc.overflow_changes, cdc.max_event_bytes, cdc.merge; creates sim->cdc,
 * registers the org change hook, starts the publisher thread, registers
 * POST /sim/events/raw and GET /sim/stats/events (control routes) and sets
 * sim->stream_stats. 0 or -1.
 */
int cdc_module_init(struct sim *sim);
void cdc_module_fini(struct sim *sim);

#endif
