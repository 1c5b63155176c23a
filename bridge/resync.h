/*
 * resync.h - read an entity back from Salesforce into Kafka, resumably.
 *
 * Used after a GAP_OVERFLOW event (the overflowed transaction's changes were
 * never delivered), after an invalid / expired replay id (policy "resync"),
 * and by the polling source (poll.c). Records are read with queryAll (live
 * and recycle-bin records) ordered by SystemModstamp, Id and published in
 * transactions of `chunk` records through the same sink and fan-out rules as
 * CometD batches; each transaction also writes the scan's cursor to the
 * checkpoint topic (key resync:<entity> or poll:<entity>), so a crash resumes
 * exactly after the last committed chunk.
 */
#ifndef SFK_BRIDGE_RESYNC_H
#define SFK_BRIDGE_RESYNC_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "fanout.h"
#include "normalize.h"
#include "publish.h"
#include "sf_rest.h"

/* Longest SELECT list we build (Salesforce allows far more; the query URI
 * limit is the binding one). */
#define RESYNC_SOQL_MAX      16384
#define RESYNC_DEFAULT_CHUNK 500
/* Most record ids remembered at the cursor's SystemModstamp (ties). */
#define RESYNC_TIES_MAX 2000
/* Largest queryAll page body we accept (Salesforce pages hold <= 2000 rows). */
#define RESYNC_PAGE_MAX (64u * 1024u * 1024u)
/* Checkpoint-topic key prefixes. */
#define RESYNC_KEY_PREFIX "resync:"
#define POLL_KEY_PREFIX   "poll:"

/* Where resync / poll records go: the bridge's transactional sink. */
struct resync_out {
	const char *topic_prefix;     /* "sfk." */
	const char *checkpoint_topic; /* <prefix>bridge.checkpoints */
	const struct fanout *fanout;  /* borrowed; NULL = no fan-out */
	struct publish_sink sink;
	/* Read-back records (poll, resync) carry no changeOrigin: a record last
	 * modified by this user (our integration user, 18 chars; NULL/"" =
	 * unknown) is our own write and is flagged echo, so it is never fanned
	 * out. Borrowed. */
	const char *echo_user;
};

/*
 * Scan position: every record up to (stamp_ms, last_id) in ORDER BY
 * SystemModstamp, Id was published. SystemModstamp has whole-second
 * resolution, so the next scan re-reads that second and skips the records
 * whose Id is in ids (published at stamp_ms); a record of that second with
 * another Id (modified later within the same second) is published. Past
 * RESYNC_TIES_MAX ids in one second, Ids up to last_id count as published.
 * stamp_ms -1: from the start.
 */
struct resync_cursor {
	int64_t stamp_ms;
	json_t *ids;      /* owned array of Id strings */
	char last_id[19]; /* last Id published at stamp_ms ("" none) */
};

/* What a scan publishes. */
enum resync_mode {
	RESYNC_MODE_SNAPSHOT = 0, /* live -> SNAPSHOT, deleted -> DELETE; flags.resynced */
	RESYNC_MODE_POLL          /* live -> CREATE / UPDATE, deleted -> DELETE */
};

/* One entity resync; serialized as the value of resync:<entity>. */
struct resync_job {
	char entity[NORMALIZE_ENTITY_MAX + 1];
	char reason[32];                   /* "invalid_replay" | "gap_overflow" */
	char channel[PUBLISH_CHANNEL_MAX]; /* invalid_replay: the channel, else "" */
	int64_t replay_id;                 /* the trigger's replay id (diagnostic) */
	int64_t since_ms;                  /* >= 0: every record with SystemModstamp >= since;
	                                      -1: every live record + deletes since deletes_since */
	int64_t deletes_since_ms;
	struct resync_cursor cur;
};

/* Release what a job / cursor owns; accepts zeroed structs. */
void resync_cursor_clear(struct resync_cursor *c);
void resync_job_clear(struct resync_job *j);

/* resync:<entity> value: new string (free()). */
char *resync_job_value(const struct resync_job *j, int64_t now_ms);
/* Parse such a value (borrowed) into *j (cleared first). 0, or -1 if malformed. */
int resync_job_parse(json_t *v, struct resync_job *j);

/* The cursor as {"stamp_ms":N,"last_id":"..","ids":[..]} (new reference) and back (0 / -1). */
json_t *resync_cursor_json(const struct resync_cursor *c);
int resync_cursor_parse(json_t *v, struct resync_cursor *c);

/*
 * The SELECT list and FROM for entity from its describe (borrowed):
 * "SELECT Id, ... FROM Lead" (compound and base64 fields left out). New
 * string (free()), or NULL (errstr) if a field name is unusable or the text
 * exceeds RESYNC_SOQL_MAX.
 */
char *resync_soql(const char *entity, json_t *describe, char *errstr, size_t errlen);

/*
 * The full scan statement: select (from resync_soql) + WHERE filter (may be
 * NULL) AND SystemModstamp >= cursor ORDER BY SystemModstamp, Id. IsDeleted
 * and SystemModstamp are added to the select list when missing. New string.
 */
char *resync_scan_soql(const char *select, const char *filter, const struct resync_cursor *c);

/* A REST datetime ("2026-11-22T01:02:03.000+0000", Z or +hh:mm too) in ms
 * since the epoch, or -1 if malformed. */
int64_t resync_parse_stamp(const char *s);

/* SOQL datetime literal of ms (whole seconds, UTC, "2026-11-22T01:02:03Z"). */
void resync_soql_datetime(int64_t ms, char *out, size_t size);

/*
 * Scan entity (queryAll) from *cur with filter, publishing chunks in mode;
 * each chunk's transaction also produces key -> value_fn(ctx, cursor after
 * the chunk) on the checkpoint topic, and *cur advances only after the
 * commit. Stops early (SFK_OK) when *stop is set. *total: records published.
 * Errors: describe / query (sf_rest codes), publish (sink codes); errstr says
 * which; *cur then holds the last committed position.
 */
typedef char *(*resync_value_fn)(void *ctx, const struct resync_cursor *after);
enum sfk_err resync_scan(struct sf_rest *rest, const struct resync_out *o, const char *entity,
                         enum resync_mode mode, const char *filter, struct resync_cursor *cur,
                         size_t chunk, const char *key, resync_value_fn value_fn, void *ctx,
                         volatile sig_atomic_t *stop, size_t *total, char *errstr, size_t errlen);

/*
 * Run (or resume) job to its end: record the job (first transaction), scan
 * (passes: invalid_replay repeats the scan until a pass finds nothing new, at
 * most a few times, to catch changes made while it ran), then one
 * transaction with the tombstone of resync:<entity> and, for invalid_replay,
 * of the channel's checkpoint. SFK_OK when done; *stop set -> SFK_ERR_BUSY
 * with the job left recorded for the next start.
 */
enum sfk_err resync_run(struct sf_rest *rest, const struct resync_out *o, struct resync_job *job,
                        size_t chunk, volatile sig_atomic_t *stop, size_t *total, char *errstr,
                        size_t errlen);

/* One transaction holding only key -> value (NULL = tombstone) on the
 * checkpoint topic. SFK_OK or the sink's error (aborted). */
enum sfk_err resync_put(const struct resync_out *o, const char *key, const char *value,
                        char *errstr, size_t errlen);

/* Entity of a CDC channel: /data/LeadChangeEvent -> Lead, /data/Foo__ChangeEvent
 * -> Foo__c. 0, or -1 (/data/ChangeEvents, custom __chn channels, other). */
int resync_channel_entity(const char *channel, char *entity, size_t size);

#endif
