/*
 * normalize.h - one CometD CDC message -> N Kafka records (envelope v1).
 *
 * Pure: no sockets, no globals, the clock is injected. One record per record
 * id (merged events are split), shaped by schemas/event.schema.json, for the
 * topic <prefix>cdc.<entity lower-cased>, keyed by the record id. Gap events
 * ask for a REST re-fetch, GAP_OVERFLOW asks for an entity resync, malformed
 * input is a permanent error whose reason names the problem and where.
 */
#ifndef SFK_BRIDGE_NORMALIZE_H
#define SFK_BRIDGE_NORMALIZE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Record header names (values: entity, change type, event id). */
#define NORMALIZE_HDR_ENTITY      "sfk.entity"
#define NORMALIZE_HDR_CHANGE_TYPE "sfk.change_type"
#define NORMALIZE_HDR_EVENT_ID    "sfk.event_id"
#define NORMALIZE_NHDRS           3

/* Default cap on one CometD message, compact-serialized (Salesforce caps
 * events at 1 MB and turns bigger ones into gap events; 2x is headroom). */
#define NORMALIZE_DEFAULT_MAX_EVENT_BYTES (2u * 1024u * 1024u)
/* Most record ids accepted in one merged event. */
#define NORMALIZE_MAX_RECORD_IDS 10000
/* recordIds of a GAP_OVERFLOW event (documented constant). */
#define NORMALIZE_OVERFLOW_ID "000000000000000AAA"
/* Longest entity name / topic we build. */
#define NORMALIZE_ENTITY_MAX   120
#define NORMALIZE_TOPIC_MAX    249
#define NORMALIZE_EVENT_ID_MAX 300

struct normalize_opts {
	const char *topic_prefix; /* "sfk." (NULL = "sfk.") */
	const char *client_id;    /* our Sforce-Call-Options client id (echo); NULL = none */
	size_t max_event_bytes;   /* 0 = NORMALIZE_DEFAULT_MAX_EVENT_BYTES */
	/* Ingest clock in ms since the epoch; NULL = wall clock. */
	int64_t (*clock_ms)(void *ctx);
	void *clock_ctx;
};

/* What the caller must do besides producing the records. */
enum normalize_action {
	NORMALIZE_PUBLISH = 0, /* produce the records */
	NORMALIZE_REFETCH,     /* GAP_*: re-fetch records marked refetch, then
	                          normalize_resolve_gap(), then produce */
	NORMALIZE_RESYNC       /* GAP_OVERFLOW or wildcard record ids: no records;
	                          resync the whole entity (result.entity) */
};

struct normalize_record {
	char topic[NORMALIZE_TOPIC_MAX + 1];
	char *key;      /* the record id (owned) */
	char *event_id; /* owned */
	json_t *value;  /* the envelope (owned reference) */
	int refetch;    /* 1: GAP_* record that should be re-fetched */
};

struct normalize_result {
	enum normalize_action action;
	char entity[NORMALIZE_ENTITY_MAX + 1];
	char change_type[32];
	int64_t replay_id;
	int echo;                         /* changeOrigin named our client */
	struct normalize_record *records; /* owned array of n */
	size_t n;
};

/*
 * Normalize one Bayeux data message msg (borrowed):
 *   {"channel":"/data/LeadChangeEvent","data":{"schema":..,"payload":{..},"event":{"replayId":N}}}
 * A bare data object (no "channel", as EMP-Connector prints it) is accepted too
 * (envelope channel = null). On SFK_OK *out is filled (normalize_result_free()).
 * Errors, all permanent (dead-letter the message): SFK_ERR_PARSE (missing or
 * mistyped field, unknown change type), SFK_ERR_TOO_LARGE (over the cap);
 * errstr names the problem and its JSON path ("$.data.payload.ChangeEventHeader.
 * commitNumber: expected an integer, got string"). *out is then empty.
 */
enum sfk_err normalize_message(const struct normalize_opts *o, json_t *msg,
                               struct normalize_result *out, char *errstr, size_t errlen);

/* Release what a result owns (records, values); accepts a zeroed result. */
void normalize_result_free(struct normalize_result *r);

/*
 * Complete a gap record (envelope, borrowed and modified) with a re-fetched
 * REST record (borrowed; its "attributes" object is dropped): fields become
 * the record's fields and flags.gap_resolved = true. SFK_OK, or SFK_ERR_INVALID
 * if env is not a gap envelope or rest is not an object.
 */
enum sfk_err normalize_resolve_gap(json_t *env, json_t *rest, char *errstr, size_t errlen);

/*
 * The envelope for one record of an entity resync (after GAP_OVERFLOW): the
 * REST record rest (borrowed; "attributes" dropped; must carry a valid Id)
 * as change_type SNAPSHOT with flags.resynced, event id
 * <entity>:<Id>:<replay_id> (replay_id = the overflow event's, so a resync
 * redone after a crash yields the same ids), commit_timestamp = fetched_ms,
 * no header data (commit number 0, empty transaction key and origin),
 * channel null. New reference, or NULL (errstr set) if rest has no valid Id
 * or entity is not an API name.
 */
json_t *normalize_snapshot(const char *entity, json_t *rest, int64_t replay_id, int64_t fetched_ms,
                           char *errstr, size_t errlen);

/*
 * 1 if change_origin carries client=<client_id> (the value after "client=" up
 * to ';' or the end, one trailing '/' ignored, compared exactly), else 0.
 */
int normalize_is_echo(const char *change_origin, const char *client_id);

/* Topic for an entity: <prefix>cdc.<entity lower-cased>. 0, or -1 if it does
 * not fit or entity has characters Kafka does not accept. */
int normalize_topic(const char *prefix, const char *entity, char *out, size_t size);

/* The header values of a record, borrowed from r (valid while r lives). */
void normalize_headers(const struct normalize_record *r, const char *names[NORMALIZE_NHDRS],
                       const char *values[NORMALIZE_NHDRS]);

#endif
