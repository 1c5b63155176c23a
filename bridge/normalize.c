/*
 * normalize.c - CometD CDC message -> envelope records (see normalize.h).
 *
 * Every check names the JSON path of what it rejected: the reason goes into
 * the DLQ record, and an operator must be able to find the bad field without
 * a debugger. Integers from Salesforce stay json_int_t (int64) end to end:
 * commitNumber exceeds 2^53 and a double would silently round it.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "normalize.h"
#include "xmem.h"

static const char *const change_types[] = {
        "CREATE",     "UPDATE",     "DELETE",       "UNDELETE",     "GAP_CREATE",
        "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW", NULL,
};

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *type_name(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

/* Fetch obj[key] of type want; on a problem write "<path>.<key>: ..." and
 * return NULL. */
static json_t *need(json_t *obj, const char *path, const char *key, json_type want, char *errstr,
                    size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	static const char *const want_names[] = {
	        [JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array",
	        [JSON_STRING] = "a string",  [JSON_INTEGER] = "an integer",
	        [JSON_REAL] = "a number",    [JSON_TRUE] = "a boolean",
	        [JSON_FALSE] = "a boolean",  [JSON_NULL] = "null",
	};
	if (!v) {
		snprintf(errstr, errlen, "%s.%s: missing", path, key);
		return NULL;
	}
	if (json_typeof(v) != want) {
		snprintf(errstr, errlen, "%s.%s: expected %s, got %s", path, key, want_names[want],
		         type_name(v));
		return NULL;
	}
	return v;
}

static int valid_entity(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > NORMALIZE_ENTITY_MAX || !isalpha((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return 0;
	return 1;
}

static int valid_record_id(const char *s)
{
	size_t n = strlen(s);
	if (n != 15 && n != 18)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]))
			return 0;
	return 1;
}

/* Longer than max characters (UTF-8 code points, as JSON Schema's
 * maxLength counts)? The envelope's string fields have schema caps; values
 * over them are refused here (found by fuzzing) instead of reaching a
 * consumer as an envelope that breaks event.schema.json. */
static int too_long(const char *s, size_t max)
{
	size_t chars = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80 && ++chars > max)
			return 1;
	return 0;
}

/* errstr "<path>.<name>: longer than <max> characters" and SFK_ERR_PARSE
 * when s is over its cap, else SFK_OK. */
static enum sfk_err check_len(const char *s, size_t max, const char *path, const char *name,
                              char *errstr, size_t errlen)
{
	if (!too_long(s, max))
		return SFK_OK;
	snprintf(errstr, errlen, "%s.%s: longer than %zu characters", path, name, max);
	return SFK_ERR_PARSE;
}

/* "001*": a wildcard for "every record of the key prefix" (field-type
 * conversions). Only a resync can honour it. */
static int is_wildcard_id(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= 16 && s[n - 1] == '*';
}

int normalize_topic(const char *prefix, const char *entity, char *out, size_t size)
{
	if (!prefix)
		prefix = "sfk.";
	if (!valid_entity(entity))
		return -1;
	int n = snprintf(out, size, "%scdc.%s", prefix, entity);
	if (n < 0 || (size_t)n >= size || n > 249)
		return -1;
	for (char *p = out + strlen(prefix); *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}

int normalize_is_echo(const char *origin, const char *client_id)
{
	if (!origin || !client_id || !*client_id)
		return 0;
	size_t idlen = strlen(client_id);
	/* The value follows "client=" at the start of a ';'-separated part:
	 * "com/salesforce/api/rest/60.0;client=sfk-kpis". Several parts may
	 * carry "client=" (defensive): any match counts. */
	for (const char *p = origin; (p = strstr(p, "client=")) != NULL; p += 7) {
		if (p != origin && p[-1] != ';')
			continue;
		const char *v = p + 7;
		size_t vlen = strcspn(v, ";");
		if (vlen > 0 && v[vlen - 1] == '/')
			vlen--;
		if (vlen == idlen && memcmp(v, client_id, idlen) == 0)
			return 1;
	}
	return 0;
}

void normalize_result_free(struct normalize_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->records[i].key);
		free(r->records[i].event_id);
		json_decref(r->records[i].value);
	}
	free(r->records);
	r->records = NULL;
	r->n = 0;
}

void normalize_headers(const struct normalize_record *r, const char *names[NORMALIZE_NHDRS],
                       const char *values[NORMALIZE_NHDRS])
{
	names[0] = NORMALIZE_HDR_ENTITY;
	names[1] = NORMALIZE_HDR_CHANGE_TYPE;
	names[2] = NORMALIZE_HDR_EVENT_ID;
	values[0] = json_string_value(json_object_get(r->value, "entity"));
	values[1] = json_string_value(json_object_get(r->value, "change_type"));
	values[2] = r->event_id;
}

/* The parsed header, borrowed from the message. */
struct hdr {
	const char *entity, *change_type, *origin, *txkey, *commit_user;
	json_t *record_ids, *changed_fields;
	json_int_t commit_ts, commit_number, seq, replay_id;
};

static enum sfk_err parse_header(json_t *data, const char *dpath, struct hdr *h, char *errstr,
                                 size_t errlen)
{
	char path[96], hpath[128];
	json_t *v, *payload, *event, *ceh;

	snprintf(path, sizeof path, "%s", dpath);
	if (!(event = need(data, path, "event", JSON_OBJECT, errstr, errlen)))
		return SFK_ERR_PARSE;
	snprintf(hpath, sizeof hpath, "%s.event", dpath);
	if (!(v = need(event, hpath, "replayId", JSON_INTEGER, errstr, errlen)))
		return SFK_ERR_PARSE;
	h->replay_id = json_integer_value(v);
	if (!(payload = need(data, path, "payload", JSON_OBJECT, errstr, errlen)))
		return SFK_ERR_PARSE;
	snprintf(hpath, sizeof hpath, "%s.payload", dpath);
	if (!(ceh = need(payload, hpath, "ChangeEventHeader", JSON_OBJECT, errstr, errlen)))
		return SFK_ERR_PARSE;
	snprintf(hpath, sizeof hpath, "%s.payload.ChangeEventHeader", dpath);

#define NEED(var, key, type)                                                                       \
	do {                                                                                       \
		if (!((var) = need(ceh, hpath, (key), (type), errstr, errlen)))                    \
			return SFK_ERR_PARSE;                                                      \
	} while (0)
	NEED(v, "entityName", JSON_STRING);
	h->entity = json_string_value(v);
	if (!valid_entity(h->entity)) {
		snprintf(errstr, errlen, "%s.entityName: \"%.64s\" is not an object API name",
		         hpath, h->entity);
		return SFK_ERR_PARSE;
	}
	NEED(v, "changeType", JSON_STRING);
	h->change_type = json_string_value(v);
	size_t k;
	for (k = 0; change_types[k]; k++)
		if (strcmp(change_types[k], h->change_type) == 0)
			break;
	if (!change_types[k]) {
		snprintf(errstr, errlen, "%s.changeType: unknown change type \"%.32s\"", hpath,
		         h->change_type);
		return SFK_ERR_PARSE;
	}
	NEED(h->record_ids, "recordIds", JSON_ARRAY);
	size_t n = json_array_size(h->record_ids);
	if (n == 0) {
		snprintf(errstr, errlen, "%s.recordIds: empty", hpath);
		return SFK_ERR_PARSE;
	}
	if (n > NORMALIZE_MAX_RECORD_IDS) {
		snprintf(errstr, errlen, "%s.recordIds: %zu ids, more than the cap %d", hpath, n,
		         NORMALIZE_MAX_RECORD_IDS);
		return SFK_ERR_TOO_LARGE;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *id = json_array_get(h->record_ids, i);
		const char *s = json_string_value(id);
		if (!s) {
			snprintf(errstr, errlen, "%s.recordIds[%zu]: expected a string, got %s",
			         hpath, i, type_name(id));
			return SFK_ERR_PARSE;
		}
		if (!valid_record_id(s) && !is_wildcard_id(s)) {
			snprintf(errstr, errlen, "%s.recordIds[%zu]: \"%.32s\" is not a record id",
			         hpath, i, s);
			return SFK_ERR_PARSE;
		}
	}
	NEED(v, "commitTimestamp", JSON_INTEGER);
	h->commit_ts = json_integer_value(v);
	if (h->commit_ts < 0) {
		snprintf(errstr, errlen, "%s.commitTimestamp: negative", hpath);
		return SFK_ERR_PARSE;
	}
	NEED(v, "commitNumber", JSON_INTEGER);
	h->commit_number = json_integer_value(v);
	NEED(v, "transactionKey", JSON_STRING);
	h->txkey = json_string_value(v);
	if (check_len(h->txkey, 255, hpath, "transactionKey", errstr, errlen) != SFK_OK)
		return SFK_ERR_PARSE;
	NEED(v, "sequenceNumber", JSON_INTEGER);
	h->seq = json_integer_value(v);
	if (h->seq < 0) {
		snprintf(errstr, errlen, "%s.sequenceNumber: negative", hpath);
		return SFK_ERR_PARSE;
	}
	NEED(v, "changeOrigin", JSON_STRING);
	h->origin = json_string_value(v);
	if (check_len(h->origin, 1024, hpath, "changeOrigin", errstr, errlen) != SFK_OK)
		return SFK_ERR_PARSE;
	NEED(h->changed_fields, "changedFields", JSON_ARRAY);
#undef NEED
	json_array_foreach(h->changed_fields, k, v)
	{
		if (!json_is_string(v)) {
			snprintf(errstr, errlen, "%s.changedFields[%zu]: expected a string, got %s",
			         hpath, k, type_name(v));
			return SFK_ERR_PARSE;
		}
		if (too_long(json_string_value(v), 255)) {
			snprintf(errstr, errlen,
			         "%s.changedFields[%zu]: longer than 255 characters", hpath, k);
			return SFK_ERR_PARSE;
		}
	}
	v = json_object_get(ceh, "commitUser");
	h->commit_user = NULL;
	if (v && !json_is_null(v)) {
		if (!json_is_string(v)) {
			snprintf(errstr, errlen, "%s.commitUser: expected a string, got %s", hpath,
			         type_name(v));
			return SFK_ERR_PARSE;
		}
		h->commit_user = json_string_value(v);
		/* Found by fuzzing: a longer value made an envelope that breaks
		 * event.schema.json (commit_user maxLength 18) downstream. */
		if (h->commit_user[0] && !valid_record_id(h->commit_user)) {
			snprintf(errstr, errlen,
			         "%s.commitUser: not a Salesforce id (15 or 18 letters/digits)",
			         hpath);
			return SFK_ERR_PARSE;
		}
	}
	return SFK_OK;
}

/* The body fields: the payload minus its header (values shared, not copied:
 * the envelopes hold references). */
static json_t *body_fields(json_t *payload)
{
	json_t *f = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(payload, k, v)
	{
		if (strcmp(k, "ChangeEventHeader") != 0)
			json_object_set(f, k, v);
	}
	return f;
}

enum sfk_err normalize_message(const struct normalize_opts *o, json_t *msg,
                               struct normalize_result *out, char *errstr, size_t errlen)
{
	struct hdr h;
	json_t *data, *chan = NULL, *fields = NULL;
	const char *dpath = "$.data";
	enum sfk_err rc;
	size_t cap = o->max_event_bytes ? o->max_event_bytes : NORMALIZE_DEFAULT_MAX_EVENT_BYTES;

	memset(out, 0, sizeof *out);
	if (!json_is_object(msg)) {
		snprintf(errstr, errlen, "$: expected an object, got %s",
		         msg ? type_name(msg) : "nothing");
		return SFK_ERR_PARSE;
	}
	size_t size = json_dumpb(msg, NULL, 0, JSON_COMPACT);
	if (size > cap) {
		snprintf(errstr, errlen, "$: message is %zu bytes, more than the cap %zu", size,
		         cap);
		return SFK_ERR_TOO_LARGE;
	}
	if (json_object_get(msg, "data")) {
		if (!(data = need(msg, "$", "data", JSON_OBJECT, errstr, errlen)))
			return SFK_ERR_PARSE;
		chan = json_object_get(msg, "channel");
		if (chan && !json_is_string(chan)) {
			snprintf(errstr, errlen, "$.channel: expected a string, got %s",
			         type_name(chan));
			return SFK_ERR_PARSE;
		}
		if (chan && check_len(json_string_value(chan), 255, "$", "channel", errstr,
		                      errlen) != SFK_OK)
			return SFK_ERR_PARSE;
	} else {
		data = msg; /* bare data object, as EMP-Connector prints it */
		dpath = "$";
	}
	if ((rc = parse_header(data, dpath, &h, errstr, errlen)) != SFK_OK)
		return rc;
	if (json_is_string(json_object_get(data, "schema")) &&
	    check_len(json_string_value(json_object_get(data, "schema")), 255, dpath, "schema",
	              errstr, errlen) != SFK_OK)
		return SFK_ERR_PARSE;

	snprintf(out->entity, sizeof out->entity, "%s", h.entity);
	snprintf(out->change_type, sizeof out->change_type, "%s", h.change_type);
	out->replay_id = h.replay_id;
	out->echo = normalize_is_echo(h.origin, o->client_id);

	char topic[NORMALIZE_TOPIC_MAX + 1];
	if (normalize_topic(o->topic_prefix, h.entity, topic, sizeof topic) != 0) {
		snprintf(errstr, errlen,
		         "%s.payload.ChangeEventHeader.entityName: topic for \"%s\" "
		         "does not fit",
		         dpath, h.entity);
		return SFK_ERR_PARSE;
	}

	size_t n = json_array_size(h.record_ids);
	int overflow = strcmp(h.change_type, "GAP_OVERFLOW") == 0;
	for (size_t i = 0; i < n && !overflow; i++)
		if (is_wildcard_id(json_string_value(json_array_get(h.record_ids, i))))
			overflow = 1;
	if (overflow) {
		/* Nothing per record to say: the dummy id 000000000000000AAA (or a
		 * wildcard) names no record. The caller stops, resyncs the entity
		 * and resumes after this replay id. */
		out->action = NORMALIZE_RESYNC;
		return SFK_OK;
	}

	int gap = strncmp(h.change_type, "GAP_", 4) == 0;
	/* A gap delete has nothing left to fetch. */
	int refetch = gap && strcmp(h.change_type, "GAP_DELETE") != 0;
	int64_t now = o->clock_ms ? o->clock_ms(o->clock_ctx) : wall_ms();
	json_t *payload = json_object_get(data, "payload");
	json_t *schema_id = json_object_get(data, "schema");

	fields = gap ? json_object() : body_fields(payload);
	out->action = refetch ? NORMALIZE_REFETCH : NORMALIZE_PUBLISH;
	out->records = xcalloc(n, sizeof *out->records);
	for (size_t i = 0; i < n; i++) {
		struct normalize_record *r = &out->records[i];
		const char *rid = json_string_value(json_array_get(h.record_ids, i));
		char eid[NORMALIZE_EVENT_ID_MAX + 1];
		int len;
		if (n > 1)
			len = snprintf(eid, sizeof eid, "%s:%s:%lld:%zu", h.entity, rid,
			               (long long)h.replay_id, i);
		else
			len = snprintf(eid, sizeof eid, "%s:%s:%lld", h.entity, rid,
			               (long long)h.replay_id);
		if (len < 0 || (size_t)len >= sizeof eid) {
			/* Cannot happen with validated parts (120 + 18 + 20 + 5). */
			snprintf(errstr, errlen, "%s: event id too long", dpath);
			rc = SFK_ERR_INTERNAL;
			goto fail;
		}
		memcpy(r->topic, topic, sizeof topic);
		r->key = xstrdup(rid);
		r->event_id = xstrdup(eid);
		r->refetch = refetch;
		/* Each envelope owns a deep copy of the fields: a gap resolution or
		 * a consumer-side edit of one record must not leak into another. */
		json_t *env = json_pack(
		        "{s:i, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:O?, s:I, s:I, s:s, s:I, s:s, "
		        "s:o, s:o, s:{s:b, s:b, s:b, s:b}, s:I}",
		        "envelope_version", 1, "event_id", eid, "entity", h.entity, "change_type",
		        h.change_type, "record_id", rid, "record_index", (json_int_t)i,
		        "record_count", (json_int_t)n, "replay_id", h.replay_id, "channel", chan,
		        "commit_timestamp", h.commit_ts, "commit_number", h.commit_number,
		        "transaction_key", h.txkey, "sequence_number", h.seq, "change_origin",
		        h.origin, "changed_fields", json_deep_copy(h.changed_fields), "fields",
		        json_deep_copy(fields), "flags", "echo", out->echo, "gap", gap,
		        "gap_resolved", 0, "resynced", 0, "ingested_at", (json_int_t)now);
		if (!env) {
			snprintf(errstr, errlen, "%s: cannot build the envelope", dpath);
			rc = SFK_ERR_NOMEM;
			goto fail;
		}
		if (json_is_string(schema_id))
			json_object_set(env, "schema_id", schema_id);
		if (h.commit_user)
			json_object_set_new(env, "commit_user", json_string(h.commit_user));
		r->value = env;
		out->n = i + 1;
	}
	json_decref(fields);
	return SFK_OK;
fail:
	json_decref(fields);
	normalize_result_free(out);
	return rc;
}

enum sfk_err normalize_resolve_gap(json_t *env, json_t *rest, char *errstr, size_t errlen)
{
	json_t *flags = json_object_get(env, "flags");
	if (!json_is_true(json_object_get(flags, "gap"))) {
		snprintf(errstr, errlen, "not a gap envelope");
		return SFK_ERR_INVALID;
	}
	if (!json_is_object(rest)) {
		snprintf(errstr, errlen, "re-fetched record is not an object");
		return SFK_ERR_INVALID;
	}
	json_t *fields = json_deep_copy(rest);
	json_object_del(fields, "attributes");
	json_object_set_new(env, "fields", fields);
	json_object_set_new(flags, "gap_resolved", json_true());
	return SFK_OK;
}

json_t *normalize_snapshot(const char *entity, json_t *rest, int64_t replay_id, int64_t fetched_ms,
                           char *errstr, size_t errlen)
{
	const char *id = json_string_value(json_object_get(rest, "Id"));
	char eid[NORMALIZE_EVENT_ID_MAX + 1];
	if (!entity || !valid_entity(entity)) {
		snprintf(errstr, errlen, "snapshot: \"%.64s\" is not an object API name",
		         entity ? entity : "");
		return NULL;
	}
	if (!json_is_object(rest) || !id || !valid_record_id(id)) {
		snprintf(errstr, errlen, "snapshot: %s record without a valid Id", entity);
		return NULL;
	}
	snprintf(eid, sizeof eid, "%s:%s:%lld", entity, id, (long long)replay_id);
	json_t *fields = json_deep_copy(rest);
	json_object_del(fields, "attributes");
	return json_pack("{s:i, s:s, s:s, s:s, s:s, s:i, s:i, s:I, s:n, s:I, s:I, s:s, s:i, s:s, "
	                 "s:[], s:o, s:{s:b, s:b, s:b, s:b}, s:I}",
	                 "envelope_version", 1, "event_id", eid, "entity", entity, "change_type",
	                 "SNAPSHOT", "record_id", id, "record_index", 0, "record_count", 1,
	                 "replay_id", (json_int_t)replay_id, "channel", "commit_timestamp",
	                 (json_int_t)fetched_ms, "commit_number", (json_int_t)0, "transaction_key",
	                 "", "sequence_number", 0, "change_origin", "", "changed_fields", "fields",
	                 fields, "flags", "echo", 0, "gap", 0, "gap_resolved", 0, "resynced", 1,
	                 "ingested_at", (json_int_t)fetched_ms);
}
