/*
 * org.h - sfk-sim's in-memory Salesforce org: the whole emulator state
 * (struct sim), the schema table (drives describe, SOQL binding, validation),
 * records as jansson objects, writes with Salesforce's system fields and error
 * codes, a change hook for CDC, and the simulated clock (real time + offset).
 * One mutex guards the org; the change hook runs under it.
 */
#ifndef SFK_SIM_ORG_H
#define SFK_SIM_ORG_H

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Sizes: an 18-char id + NUL; error code / message buffers. */
struct sim;

#define SIM_ID_BUF    19
#define SIM_CODE_MAX  48
#define SIM_MSG_MAX   512
#define SIM_MAX_HOOKS 4

/* ---- schema ---------------------------------------------------------- */

enum sim_ftype {
	SIM_F_ID = 0,
	SIM_F_REFERENCE,
	SIM_F_STRING,
	SIM_F_TEXTAREA,
	SIM_F_EMAIL,
	SIM_F_PHONE,
	SIM_F_URL,
	SIM_F_PICKLIST,
	SIM_F_BOOLEAN,
	SIM_F_INT,
	SIM_F_DOUBLE,
	SIM_F_DATE,
	SIM_F_DATETIME,
};

enum sim_fflags {
	SIM_FF_CREATE = 1u << 0,   /* createable */
	SIM_FF_UPDATE = 1u << 1,   /* updateable */
	SIM_FF_NIL = 1u << 2,      /* nillable */
	SIM_FF_CUSTOM = 1u << 3,   /* custom (__c) */
	SIM_FF_REQUIRED = 1u << 4, /* required on create (REQUIRED_FIELD_MISSING) */
	SIM_FF_NAME = 1u << 5,     /* the name field (describe nameField) */
};

struct sim_field {
	const char *name;
	const char *label;
	enum sim_ftype type;
	unsigned flags;
	int length;                  /* strings: max length; numbers: precision */
	int scale;                   /* double: digits after the point */
	const char *reference_to;    /* "User" or "User,Group" (references) */
	const char *relationship;    /* "Owner" (references) */
	const char *const *picklist; /* NULL-terminated, first = default */
	const char *default_value;   /* for create when absent, or NULL */
};

struct sim_object {
	const char *name;
	const char *label;
	const char *label_plural;
	const char *key_prefix;
	const struct sim_field *fields;
	size_t nfields;
	int custom;
};

/* Object by API name, case-insensitive; borrowed static data, NULL if none. */
const struct sim_object *org_object(const char *name);
/* Object by the 3-char key prefix of an id. */
const struct sim_object *org_object_by_prefix(const char *id);
/* The table itself: count and i-th object (NULL past the end). */
size_t org_nobjects(void);
const struct sim_object *org_object_at(size_t i);
/* Field by name, case-insensitive; NULL if none. */
const struct sim_field *org_field(const struct sim_object *obj, const char *name);
/* Describe "type" string ("string", "reference", "datetime", ...). */
const char *org_ftype_name(enum sim_ftype t);
/* Describe JSON for obj as Salesforce returns it; new reference. */
json_t *org_describe(const struct sim_object *obj, const char *api_version);

/* ---- ids -------------------------------------------------------------- */

/* 1 if id is 15 or 18 chars of [0-9A-Za-z] and (18) its checksum is right. */
int sim_id_valid(const char *id);
/* Normalise a valid 15/18-char id to 18 chars in out; 0 or -1 if invalid. */
int sim_id_to18(const char *id, char out[SIM_ID_BUF]);

/* ---- change hook ---------------------------------------------------------- */

/* One committed change, as Salesforce's CDC sees it. All borrowed, valid
 * during the hook call only (copy what you keep). */
struct org_change {
	const char *type;            /* "Lead" */
	const char *change_type;     /* "CREATE", "UPDATE", "DELETE", "UNDELETE" */
	const char *record_id;       /* 18-char */
	json_t *changed_fields;      /* array of names; UPDATE: the changed fields
	                              * incl. LastModifiedDate; CREATE/DELETE/UNDELETE: [] */
	json_t *record;              /* the record after the change (DELETE: before);
	                              * system fields included, IsDeleted too */
	const char *commit_user;     /* 18-char user id */
	int64_t commit_ts_ms;        /* sim clock */
	const char *transaction_key; /* uuid-like, shared by one transaction */
	int sequence_number;         /* 1.. within the transaction */
	const char *origin;          /* changeOrigin ("" for UI / control API) */
};

/* Called under the org lock after each write is applied, in commit order.
 * Must not call org_* functions that take the lock, and must be quick. */
typedef void (*org_change_hook)(struct sim *sim, const struct org_change *ch, void *ctx);

/* Register a hook (before http_start; up to SIM_MAX_HOOKS). 0 or -1. */
int org_set_change_hook(struct sim *sim, org_change_hook fn, void *ctx);

/* ---- emulator state -------------------------------------------------------- */

struct org_store; /* private to org.c */
struct auth;      /* auth.c */
struct faults;    /* faults.c */
struct sim_stats; /* control.c */
struct http;      /* http.c */
struct cdc;       /* simstream */
struct cometd;    /* simstream */
struct traffic;   /* simstream */

struct sim_config {
	uint64_t seed;
	long api_limit;         /* DailyApiRequests Max */
	long token_ttl_s;       /* access token lifetime */
	int sandbox;            /* aud = https://test.salesforce.com */
	int control;            /* control routes enabled */
	char instance_url[256]; /* "https://127.0.0.1:PORT", set once listening */
	json_t *opts;           /* --opt key=value pairs (strings); for modules */
};

struct sim {
	pthread_mutex_t lock; /* the org lock */
	pthread_cond_t cond;  /* broadcast after every committed transaction */
	struct sim_config cfg;
	char org_id[SIM_ID_BUF];
	char default_user_id[SIM_ID_BUF]; /* first --user (UI writes, seed) */
	struct org_store *store;
	_Atomic int64_t clock_offset_ms;
	volatile sig_atomic_t stop;
	_Atomic long api_used; /* REST calls counted against api_limit */

	org_change_hook hooks[SIM_MAX_HOOKS];
	void *hook_ctx[SIM_MAX_HOOKS];
	size_t nhooks;

	struct auth *auth;
	struct faults *faults;
	struct sim_stats *stats;
	struct http *http;

	/* Streaming side (simstream owns these). */
	struct cdc *cdc;
	struct cometd *cometd;
	struct traffic *traffic;
	/* POST /sim/faults {"forget_cometd_clients": true} calls this. */
	void (*forget_clients)(struct sim *sim, void *ctx);
	void *forget_clients_ctx;
	/* GET /sim/stats merges this object (new reference) under "events". */
	json_t *(*stream_stats)(struct sim *sim, void *ctx);
	void *stream_stats_ctx;
	/* POST /sim/faults {"gap_next": N}: the next N change events are to be
	 * delivered as GAP_*; the CDC side decrements it (atomic_fetch_sub). */
	_Atomic int gap_next;
	/* The API user has "View and Edit Converted Leads" (POST /sim/permissions,
	 * --opt org.view_edit_converted_leads=1); default off, as for most profiles. */
	_Atomic int edit_converted_leads;
};

/* Simulated clock: real time + offset (POST /sim/clock advances it). */
int64_t sim_now_ms(struct sim *sim);
void sim_clock_advance(struct sim *sim, int64_t ms);
/* Parse ISO-8601 ("2026-11-21T10:15:00Z", "...00.000+0000", "+01:00"); 0 or -1. */
int sim_parse_datetime(const char *s, int64_t *ms_out);
/* Salesforce datetime text for ms ("2026-11-21T10:15:00.000+0000"), out >= 32. */
void sim_format_datetime(int64_t ms, char *out, size_t size);

/* ---- lifecycle --------------------------------------------------------------- */

/* Initialise sim (lock, store, schema-driven seed data: users, queues) from
 * cfg (copied; opts reference taken over). usernames: pre-authorized users
 * (borrowed, n of them; the first is default_user_id). 0 or -1. */
int org_init(struct sim *sim, const struct sim_config *cfg, const char *const *usernames,
             size_t nusers);
void org_fini(struct sim *sim);

/* ---- writes ---------------------------------------------------------------- */

struct sim_error {
	char code[SIM_CODE_MAX]; /* "INVALID_FIELD", "MALFORMED_ID", ... */
	char message[SIM_MSG_MAX];
	char field[64];  /* offending field or "" */
	int http_status; /* what a single-record REST call answers */
};

/* One transaction: writes inside share transactionKey, commit timestamp and
 * increasing sequence numbers. Begin/end with the lock held. */
struct org_txn {
	const char *origin; /* borrowed: changeOrigin, "" for UI */
	char user_id[SIM_ID_BUF];
	char key[40];
	int seq;
	int64_t ts_ms;
	int system; /* 1: the platform itself writes (read-only fields allowed) */
};

void org_lock(struct sim *sim);
void org_unlock(struct sim *sim); /* also broadcasts sim->cond */
/* user_id NULL = default user. */
void org_txn_begin(struct sim *sim, struct org_txn *txn, const char *origin, const char *user_id);

/*
 * Locked primitives (caller holds the lock, inside a txn). fields: borrowed
 * object of field -> value (an "attributes" member is ignored; "Id" is ignored
 * on create and must match on update). Check functions validate without
 * writing (for allOrNone). Return 0 or -1 with err filled.
 */
int org_check_create_locked(struct sim *sim, const char *type, json_t *fields,
                            struct sim_error *err);
int org_create_locked(struct sim *sim, struct org_txn *txn, const char *type, json_t *fields,
                      char id_out[SIM_ID_BUF], struct sim_error *err);
int org_check_update_locked(struct sim *sim, const char *type, const char *id, json_t *fields,
                            struct sim_error *err);
int org_update_locked(struct sim *sim, struct org_txn *txn, const char *type, const char *id,
                      json_t *fields, struct sim_error *err);
int org_delete_locked(struct sim *sim, struct org_txn *txn, const char *type, const char *id,
                      struct sim_error *err);
int org_undelete_locked(struct sim *sim, struct org_txn *txn, const char *type, const char *id,
                        struct sim_error *err);

/* One-shot wrappers: lock, one transaction, unlock. type NULL = derive from
 * the id's key prefix (update/delete/undelete). origin "" = UI user. */
int org_create(struct sim *sim, const char *type, json_t *fields, const char *origin,
               const char *user_id, char id_out[SIM_ID_BUF], struct sim_error *err);
int org_update(struct sim *sim, const char *type, const char *id, json_t *fields,
               const char *origin, const char *user_id, struct sim_error *err);
int org_delete(struct sim *sim, const char *type, const char *id, const char *origin,
               const char *user_id, struct sim_error *err);
int org_undelete(struct sim *sim, const char *type, const char *id, const char *origin,
                 const char *user_id, struct sim_error *err);

/*
 * Convert a Lead the way the Salesforce UI does (convertLead has no REST
 * resource): one transaction creates an Account (Company, Industry,
 * NumberOfEmployees, Country) and a Contact (name, email, phone...), sets the
 * Lead's IsConverted, ConvertedDate (sim date), ConvertedAccountId,
 * ConvertedContactId and Status "Closed - Converted", and moves the Lead's
 * Tasks to the Contact (WhoId) and Account (WhatId). A converted Lead cannot
 * be converted again (CANNOT_UPDATE_CONVERTED_LEAD). 0 or -1 with err.
 */
int org_convert_lead_locked(struct sim *sim, struct org_txn *txn, const char *id,
                            char contact_out[SIM_ID_BUF], char account_out[SIM_ID_BUF],
                            struct sim_error *err);
int org_convert_lead(struct sim *sim, const char *id, const char *user_id,
                     char contact_out[SIM_ID_BUF], char account_out[SIM_ID_BUF],
                     struct sim_error *err);

/* ---- reads ---------------------------------------------------------------- */

/* A copy of record id (type NULL = by prefix); new reference or NULL with
 * err (MALFORMED_ID, NOT_FOUND, ENTITY_IS_DELETED). */
json_t *org_get(struct sim *sim, const char *type, const char *id, struct sim_error *err);
/* Live (not deleted) records of type, creation order: borrowed array, valid
 * while the lock is held. NULL for an unknown type. */
json_t *org_records_locked(struct sim *sim, const char *type);
/* Live and deleted records of type, creation order (queryAll): borrowed,
 * valid while the lock is held. NULL for an unknown type. */
json_t *org_all_records_locked(struct sim *sim, const char *type);
/* Any record (live or deleted) by 15/18-char id: borrowed, lock held. */
json_t *org_lookup_locked(struct sim *sim, const char *id);
/* Every field of obj in schema order, null where unset (a REST GET view of
 * rec); new reference. */
json_t *org_full_view(const struct sim_object *obj, json_t *rec);
/* The whole org {"Lead": [...], ...} (live records); new reference. */
json_t *org_dump(struct sim *sim);
/* The same as compact JSON text plus "orgId", serialized under the org lock
 * without copying any record (a 20,000-lead org would need ~270 MB more
 * as copies). Caller frees; *len = strlen. */
char *org_dump_text(struct sim *sim, size_t *len);
/* User id for a username (case-insensitive); 0 or -1. Takes the lock. */
int org_user_by_username(struct sim *sim, const char *username, char id_out[SIM_ID_BUF]);

#endif
