/*
 * org.c - the in-memory org: record store, validation with Salesforce's error
 * codes, system fields, derived fields, change hooks, seed data, sim clock.
 *
 * Records are jansson objects holding only the fields that were ever set plus
 * system fields; readers fill the rest with null from the schema. Deleted
 * records stay in the id index with IsDeleted=true (the recycle bin) and leave
 * the live array that queries scan.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "control.h"
#include "log.h"
#include "org.h"
#include "sfid.h"
#include "xmem.h"

struct type_store {
	const struct sim_object *obj;
	json_t *live; /* array, creation order */
	json_t *byid; /* 18-char id -> record (live and deleted) */
	json_t *all;  /* array, creation order, live and deleted (queryAll) */
	uint64_t next;
};

/* Most distinct values the intern table keeps (about one per second of
 * sim time for timestamps, plus picklist values and user / queue ids). */
#define INTERN_MAX 200000

struct org_store {
	struct type_store *types;
	size_t ntypes;
	uint64_t id_base;
	uint64_t txn_counter;
	/* Shared immutable strings for values that repeat across records
	 * (picklists, dates, timestamps, user / queue ids): one json_t each
	 * instead of one per record. value -> the same string. */
	json_t *interned;
};

/* ---- clock ------------------------------------------------------------------ */

static int64_t real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sim_now_ms(struct sim *sim)
{
	return real_ms() + atomic_load(&sim->clock_offset_ms);
}

void sim_clock_advance(struct sim *sim, int64_t ms)
{
	atomic_fetch_add(&sim->clock_offset_ms, ms);
}

void sim_format_datetime(int64_t ms, char *out, size_t size)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	/* Years past 9999 cannot come from the sim clock; clamp for the compiler. */
	int year = tm.tm_year + 1900;
	if (year < 0 || year > 9999)
		year = year < 0 ? 0 : 9999;
	snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03d+0000", year, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static int parse_digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/* "YYYY-MM-DD" -> days since epoch via timegm; 0 or -1. */
static int parse_date(const char *s, struct tm *tm)
{
	const char *p = s;
	int y, m, d;
	memset(tm, 0, sizeof(*tm));
	if (parse_digits(&p, 4, &y) || *p++ != '-' || parse_digits(&p, 2, &m) || *p++ != '-' ||
	    parse_digits(&p, 2, &d))
		return -1;
	if (m < 1 || m > 12 || d < 1 || d > 31)
		return -1;
	tm->tm_year = y - 1900;
	tm->tm_mon = m - 1;
	tm->tm_mday = d;
	return (int)(p - s);
}

/* ISO-8601 datetime with optional millis and zone (Z, +HH:MM, +HHMM). */
int sim_parse_datetime(const char *s, int64_t *ms_out)
{
	struct tm tm;
	int n = parse_date(s, &tm);
	int h, mi, sec, ms = 0, sign = 0, oh = 0, om = 0;
	if (n < 0)
		return -1;
	const char *p = s + n;
	if (*p != 'T' && *p != ' ')
		return -1;
	p++;
	if (parse_digits(&p, 2, &h) || *p++ != ':' || parse_digits(&p, 2, &mi))
		return -1;
	sec = 0;
	if (*p == ':') {
		p++;
		if (parse_digits(&p, 2, &sec))
			return -1;
	}
	if (*p == '.') {
		p++;
		int digits = 0;
		while (isdigit((unsigned char)*p)) {
			if (digits < 3)
				ms = ms * 10 + (*p - '0');
			digits++;
			p++;
		}
		if (digits == 0)
			return -1;
		for (; digits < 3; digits++)
			ms *= 10;
	}
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		p++;
		if (parse_digits(&p, 2, &oh))
			return -1;
		if (*p == ':')
			p++;
		if (parse_digits(&p, 2, &om))
			return -1;
	}
	if (*p != '\0' || h > 23 || mi > 59 || sec > 60)
		return -1;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	*ms_out = (int64_t)t * 1000 + ms - (int64_t)sign * (oh * 3600 + om * 60) * 1000;
	return 0;
}

/* ---- ids ---------------------------------------------------------------------- */

int sim_id_valid(const char *id)
{
	return sfid_valid(id);
}

int sim_id_to18(const char *id, char out[SIM_ID_BUF])
{
	return sfid_to18(id, out);
}

static struct type_store *store_of(struct sim *sim, const struct sim_object *obj)
{
	for (size_t i = 0; i < sim->store->ntypes; i++)
		if (sim->store->types[i].obj == obj)
			return &sim->store->types[i];
	return NULL;
}

static void new_id(struct sim *sim, struct type_store *ts, char out[SIM_ID_BUF])
{
	sfid_make(out, ts->obj->key_prefix, sim->store->id_base + ts->next++);
}

/* ---- hooks ---------------------------------------------------------------------- */

int org_set_change_hook(struct sim *sim, org_change_hook fn, void *ctx)
{
	if (sim->nhooks >= SIM_MAX_HOOKS)
		return -1;
	sim->hooks[sim->nhooks] = fn;
	sim->hook_ctx[sim->nhooks] = ctx;
	sim->nhooks++;
	return 0;
}

static void fire(struct sim *sim, struct org_txn *txn, const char *type, const char *ctype,
                 const char *id, json_t *changed, json_t *record)
{
	struct org_change ch = {
	        .type = type,
	        .change_type = ctype,
	        .record_id = id,
	        .changed_fields = changed,
	        .record = record,
	        .commit_user = txn->user_id,
	        .commit_ts_ms = txn->ts_ms,
	        .transaction_key = txn->key,
	        .sequence_number = ++txn->seq,
	        .origin = txn->origin ? txn->origin : "",
	};
	if (txn->origin && txn->origin[0])
		stats_count_write(sim, id);
	for (size_t i = 0; i < sim->nhooks; i++)
		sim->hooks[i](sim, &ch, sim->hook_ctx[i]);
}

/* ---- locking and transactions ------------------------------------------------------ */

void org_lock(struct sim *sim)
{
	pthread_mutex_lock(&sim->lock);
}

void org_unlock(struct sim *sim)
{
	pthread_cond_broadcast(&sim->cond);
	pthread_mutex_unlock(&sim->lock);
}

void org_txn_begin(struct sim *sim, struct org_txn *txn, const char *origin, const char *user_id)
{
	uint64_t n = ++sim->store->txn_counter;
	uint64_t r = (n * 0x9E3779B97F4A7C15ull) ^ sim->cfg.seed;
	memset(txn, 0, sizeof(*txn));
	txn->origin = origin ? origin : "";
	snprintf(txn->user_id, sizeof(txn->user_id), "%s",
	         user_id && user_id[0] ? user_id : sim->default_user_id);
	/* Salesforce transactionKeys look like uuids: 8-4-4-4-12 hex. */
	snprintf(txn->key, sizeof(txn->key), "%08llx-%04llx-%04llx-%04llx-%012llx",
	         (unsigned long long)(n & 0xffffffffu), (unsigned long long)((r >> 48) & 0xffff),
	         (unsigned long long)((r >> 32) & 0xffff), (unsigned long long)((r >> 16) & 0xffff),
	         (unsigned long long)(r & 0xffffffffffffull));
	txn->ts_ms = sim_now_ms(sim);
}

/* ---- validation --------------------------------------------------------------------- */

/* Values quoted in messages are cut at this many bytes. */
#define QUOTE_MAX 200

/* Length of the longest prefix of s (at most max bytes) that does not end
 * inside a UTF-8 sequence. */
static size_t utf8_prefix(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	if (s[n] == '\0')
		return n;
	/* Back up over continuation bytes, then drop the lead byte too. */
	size_t k = n;
	while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
		k--;
	return k;
}

/* Drop a multi-byte character left incomplete at the end of s. */
static void utf8_trim_end(char *s)
{
	size_t n = strlen(s), k = n;
	while (k > 0 && n - k < 4 && ((unsigned char)s[k - 1] & 0xC0) == 0x80)
		k--;
	if (k == 0)
		return;
	unsigned char lead = (unsigned char)s[k - 1];
	size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
	if (n - (k - 1) < want)
		s[k - 1] = '\0';
}

/* A copy of s cut at QUOTE_MAX bytes on a character boundary, in buf. */
static const char *clip(const char *s, char buf[QUOTE_MAX + 1])
{
	size_t n = utf8_prefix(s, QUOTE_MAX);
	memcpy(buf, s, n);
	buf[n] = '\0';
	return buf;
}

static int fail(struct sim_error *err, int status, const char *code, const char *field,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(struct sim_error *err, int status, const char *code, const char *field,
                const char *fmt, ...)
{
	va_list ap;
	if (!err)
		return -1;
	snprintf(err->code, sizeof(err->code), "%s", code);
	snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	/* vsnprintf may have cut a multi-byte character: JSON needs whole ones. */
	utf8_trim_end(err->message);
	err->http_status = status;
	return -1;
}

static int email_ok(const char *s)
{
	const char *at = strchr(s, '@');
	if (!at || at == s || strchr(at + 1, '@') || !strchr(at + 1, '.'))
		return 0;
	for (const char *p = s; *p; p++)
		if (isspace((unsigned char)*p) || *p == ',' || *p == ';')
			return 0;
	return at[1] != '.' && s[strlen(s) - 1] != '.';
}

/* Object label for "<Label> ID: id value of incorrect type". */
static const char *ref_label(const struct sim_field *f)
{
	if (f->relationship && strcmp(f->relationship, "Owner") == 0)
		return "Owner";
	if (f->reference_to && !strchr(f->reference_to, ','))
		return f->reference_to;
	return f->label;
}

static int ref_type_allowed(const struct sim_field *f, const char *object)
{
	const char *p = f->reference_to;
	size_t n = strlen(object);
	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == n && strncmp(p, object, n) == 0)
			return 1;
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* Normalise one value for field f; *out gets a new reference. */
static int coerce(struct sim *sim, const struct sim_object *obj, const struct sim_field *f,
                  json_t *v, json_t **out, struct sim_error *err)
{
	char buf[64];
	*out = NULL;
	/* Salesforce stores an empty text value as null. */
	if (json_is_string(v) && json_string_length(v) == 0 && f->type != SIM_F_BOOLEAN &&
	    f->type != SIM_F_INT && f->type != SIM_F_DOUBLE && f->type != SIM_F_DATE &&
	    f->type != SIM_F_DATETIME)
		v = json_null();
	if (json_is_null(v)) {
		if (f->flags & SIM_FF_REQUIRED)
			return fail(err, 400, "REQUIRED_FIELD_MISSING", f->name,
			            "Required fields are missing: [%s]", f->name);
		if (f->type == SIM_F_BOOLEAN) {
			*out = json_false();
			return 0;
		}
		if (!(f->flags & SIM_FF_NIL) && f->default_value == NULL &&
		    strcmp(f->name, "OwnerId") != 0)
			return fail(err, 400, "INVALID_FIELD_FOR_INSERT_UPDATE", f->name,
			            "%s: field cannot be null", f->name);
		*out = json_null();
		return 0;
	}
	if (json_is_object(v) || json_is_array(v))
		return fail(err, 400, "JSON_PARSER_ERROR", NULL,
		            "Cannot deserialize instance of %s from %s value or request may be "
		            "missing a required field",
		            org_ftype_name(f->type),
		            json_is_object(v) ? "START_OBJECT" : "START_ARRAY");
	switch (f->type) {
	case SIM_F_BOOLEAN:
		if (json_is_boolean(v)) {
			*out = json_incref(v);
			return 0;
		}
		if (json_is_string(v) && (strcasecmp(json_string_value(v), "true") == 0 ||
		                          strcasecmp(json_string_value(v), "false") == 0)) {
			*out = json_boolean(strcasecmp(json_string_value(v), "true") == 0);
			return 0;
		}
		return fail(
		        err, 400, "JSON_PARSER_ERROR", NULL,
		        "Cannot deserialize instance of boolean from %s value %s or request may "
		        "be missing a required field",
		        json_is_string(v) ? "VALUE_STRING" : "VALUE_NUMBER_INT",
		        json_is_string(v) ? json_string_value(v) : "");
	case SIM_F_INT:
	case SIM_F_DOUBLE: {
		double d;
		if (json_is_number(v)) {
			d = json_number_value(v);
		} else if (json_is_string(v)) {
			char *end;
			const char *s = json_string_value(v);
			errno = 0;
			d = strtod(s, &end);
			if (*s == '\0' || *end != '\0' || errno)
				return fail(err, 400, "INVALID_TYPE_ON_FIELD_IN_RECORD", f->name,
				            "%s: value not of required type: %s", f->label, s);
		} else {
			return fail(err, 400, "INVALID_TYPE_ON_FIELD_IN_RECORD", f->name,
			            "%s: value not of required type: %s", f->label,
			            json_is_true(v) ? "true" : "false");
		}
		if (f->type == SIM_F_INT) {
			if (d != (double)(long long)d || d > 99999999.0 || d < -99999999.0)
				return fail(err, 400, "NUMBER_OUTSIDE_VALID_RANGE", f->name,
				            "%s: value outside of valid range on numeric field: %g",
				            f->label, d);
			*out = json_integer((json_int_t)d);
		} else {
			*out = json_real(d);
		}
		return 0;
	}
	case SIM_F_DATE: {
		struct tm tm;
		const char *s = json_is_string(v) ? json_string_value(v) : "";
		int n = parse_date(s, &tm);
		if (n < 0 || (s[n] != '\0' && s[n] != 'T'))
			return fail(
			        err, 400, "JSON_PARSER_ERROR", NULL,
			        "Cannot deserialize instance of date from VALUE_STRING value %s or "
			        "request may be missing a required field",
			        s);
		snprintf(buf, sizeof(buf), "%.10s", s);
		*out = json_string(buf);
		return 0;
	}
	case SIM_F_DATETIME: {
		int64_t ms;
		const char *s = json_is_string(v) ? json_string_value(v) : "";
		if (sim_parse_datetime(s, &ms) < 0)
			return fail(err, 400, "JSON_PARSER_ERROR", NULL,
			            "Cannot deserialize instance of datetime from VALUE_STRING "
			            "value %s "
			            "or request may be missing a required field",
			            s);
		sim_format_datetime(ms, buf, sizeof(buf));
		*out = json_string(buf);
		return 0;
	}
	case SIM_F_ID:
	case SIM_F_REFERENCE: {
		char id18[SIM_ID_BUF];
		const char *s = json_is_string(v) ? json_string_value(v) : "";
		if (s[0] == '\0') {
			*out = json_null();
			return 0;
		}
		if (sfid_to18(s, id18) < 0)
			return fail(err, 400, "MALFORMED_ID", f->name,
			            "%s ID: id value of incorrect type: %s", ref_label(f), s);
		const struct sim_object *t = org_object_by_prefix(id18);
		const char *tname = t ? t->name : sfid_object(id18);
		if (!tname || !ref_type_allowed(f, tname))
			return fail(err, 400, "FIELD_INTEGRITY_EXCEPTION", f->name,
			            "%s ID: id value of incorrect type: %s", ref_label(f), s);
		if (t) {
			json_t *rec = org_lookup_locked(sim, id18);
			if (!rec || json_is_true(json_object_get(rec, "IsDeleted")))
				return fail(err, 400, "INVALID_CROSS_REFERENCE_KEY", f->name,
				            "invalid cross reference id");
			if (strcmp(t->name, "User") == 0 && strcmp(obj->name, "User") != 0 &&
			    !json_is_true(json_object_get(rec, "IsActive")) &&
			    strcmp(f->name, "OwnerId") == 0)
				return fail(err, 400, "INACTIVE_OWNER_OR_USER", f->name,
				            "operation performed with inactive user [%s] as owner "
				            "of %s",
				            id18, obj->name);
		}
		*out = json_string(id18);
		return 0;
	}
	default: break;
	}
	/* Text types. */
	const char *s;
	char clipped[QUOTE_MAX + 1];
	if (json_is_string(v)) {
		s = json_string_value(v);
		*out = json_incref(v);
	} else {
		if (json_is_integer(v))
			snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
		else if (json_is_real(v))
			snprintf(buf, sizeof(buf), "%.15g", json_real_value(v));
		else
			snprintf(buf, sizeof(buf), "%s", json_is_true(v) ? "true" : "false");
		*out = json_string(buf);
		s = json_string_value(*out);
	}
	size_t len = json_string_length(*out);
	/* Field lengths count characters, not bytes. */
	size_t chars = 0;
	for (size_t i = 0; i < len; i++)
		chars += ((unsigned char)s[i] & 0xC0) != 0x80;
	if (f->length > 0 && chars > (size_t)f->length) {
		fail(err, 400, "STRING_TOO_LONG", f->name,
		     "%s: data value too large: %s (max length=%d)", f->label, clip(s, clipped),
		     f->length);
		json_decref(*out);
		*out = NULL;
		return -1;
	}
	if (f->type == SIM_F_EMAIL && len > 0 && !email_ok(s)) {
		fail(err, 400, "INVALID_EMAIL_ADDRESS", f->name, "%s: invalid email address: %s",
		     f->label, clip(s, clipped));
		json_decref(*out);
		*out = NULL;
		return -1;
	}
	if (f->type == SIM_F_PICKLIST && f->picklist && len > 0 &&
	    (strcmp(f->name, "TaskSubtype") == 0 || strcmp(obj->name, "EmailMessage") == 0 ||
	     strcmp(obj->name, "EmailMessageRelation") == 0 || strcmp(obj->name, "Group") == 0)) {
		int found = 0;
		for (size_t i = 0; f->picklist[i]; i++)
			if (strcmp(f->picklist[i], s) == 0)
				found = 1;
		if (!found) {
			fail(err, 400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", f->name,
			     "%s: bad value for restricted picklist field: %s", f->label,
			     clip(s, clipped));
			json_decref(*out);
			*out = NULL;
			return -1;
		}
	}
	return 0;
}

/*
 * Validate and normalise the caller's fields into a new object (only the
 * fields given). create: 1 for inserts. system: read-only fields allowed.
 */
static int normalise(struct sim *sim, const struct sim_object *obj, json_t *fields, int create,
                     int system, json_t **out, struct sim_error *err)
{
	const char *key;
	json_t *v;
	json_t *norm = json_object();
	char bad[256] = "";
	size_t badlen = 0;

	*out = NULL;
	if (!json_is_object(fields)) {
		json_decref(norm);
		return fail(err, 400, "JSON_PARSER_ERROR", NULL,
		            "Cannot deserialize instance of %s from START_ARRAY value", obj->name);
	}
	json_object_foreach(fields, key, v)
	{
		if (strcmp(key, "attributes") == 0)
			continue;
		const struct sim_field *f = org_field(obj, key);
		if (!f) {
			json_decref(norm);
			return fail(err, 400, "INVALID_FIELD", key,
			            "No such column '%s' on sobject of type %s", key, obj->name);
		}
		if (f->type == SIM_F_ID) {
			if (create && !system) {
				json_decref(norm);
				return fail(err, 400, "INVALID_FIELD_FOR_INSERT_UPDATE", "Id",
				            "cannot specify Id in an insert call");
			}
			continue; /* update: the caller matched it */
		}
		unsigned need = create ? SIM_FF_CREATE : SIM_FF_UPDATE;
		if (!system && !(f->flags & need)) {
			int n = snprintf(bad + badlen, sizeof(bad) - badlen, "%s%s",
			                 badlen ? ", " : "", f->name);
			if (n > 0 && (size_t)n < sizeof(bad) - badlen)
				badlen += (size_t)n;
			continue;
		}
		json_t *nv;
		if (coerce(sim, obj, f, v, &nv, err) < 0) {
			json_decref(norm);
			return -1;
		}
		json_object_set_new(norm, f->name, nv);
	}
	if (badlen) {
		json_decref(norm);
		return fail(
		        err, 400, "INVALID_FIELD_FOR_INSERT_UPDATE", bad,
		        "Unable to create/update fields: %s. Please check the security settings "
		        "of this field and verify that it is read/write for your profile or "
		        "permission set.",
		        bad);
	}
	*out = norm;
	return 0;
}

static int str_empty(json_t *v)
{
	return !v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);
}

/* Derived fields: Name, Task IsClosed/CompletedDateTime, relation object type. */
static void derive(const struct sim_object *obj, json_t *rec, const char *now)
{
	if (strcmp(obj->name, "Lead") == 0 || strcmp(obj->name, "User") == 0 ||
	    strcmp(obj->name, "Contact") == 0) {
		json_t *fn = json_object_get(rec, "FirstName");
		json_t *ln = json_object_get(rec, "LastName");
		char *name = xasprintf("%s%s%s", str_empty(fn) ? "" : json_string_value(fn),
		                       str_empty(fn) || str_empty(ln) ? "" : " ",
		                       str_empty(ln) ? "" : json_string_value(ln));
		json_object_set_new(rec, "Name", json_string(name));
		free(name);
	} else if (strcmp(obj->name, "Task") == 0) {
		json_t *st = json_object_get(rec, "Status");
		int closed = json_is_string(st) && strcmp(json_string_value(st), "Completed") == 0;
		int was = json_is_true(json_object_get(rec, "IsClosed"));
		json_object_set_new(rec, "IsClosed", json_boolean(closed));
		if (closed && !was)
			json_object_set_new(rec, "CompletedDateTime", json_string(now));
		else if (!closed)
			json_object_set_new(rec, "CompletedDateTime", json_null());
	} else if (strcmp(obj->name, "EmailMessageRelation") == 0) {
		json_t *rid = json_object_get(rec, "RelationId");
		const struct sim_object *t =
		        json_is_string(rid) ? org_object_by_prefix(json_string_value(rid)) : NULL;
		const char *tn =
		        t ? t->name
		          : (json_is_string(rid) ? sfid_object(json_string_value(rid)) : NULL);
		json_object_set_new(rec, "RelationObjectType", tn ? json_string(tn) : json_null());
	}
}

static json_t *build_create(struct sim *sim, const struct sim_object *obj, json_t *fields,
                            const char *user_id, const char *now, int system, struct sim_error *err)
{
	json_t *rec = NULL;
	char missing[256] = "";
	size_t mlen = 0;
	const char *first_missing = NULL;

	if (normalise(sim, obj, fields, 1, system, &rec, err) < 0)
		return NULL;
	for (size_t i = 0; i < obj->nfields; i++) {
		const struct sim_field *f = &obj->fields[i];
		json_t *v = json_object_get(rec, f->name);
		if (v && !json_is_null(v))
			continue;
		if (f->default_value && !v) {
			json_object_set_new(rec, f->name, json_string(f->default_value));
		} else if (f->type == SIM_F_BOOLEAN) {
			json_object_set_new(rec, f->name,
			                    json_boolean(strcmp(f->name, "IsActive") == 0 ||
			                                 strcmp(f->name, "IsUnreadByOwner") == 0));
		} else if (strcmp(f->name, "OwnerId") == 0) {
			json_object_set_new(rec, f->name, json_string(user_id));
		} else if ((f->flags & SIM_FF_REQUIRED) && str_empty(v)) {
			int n = snprintf(missing + mlen, sizeof(missing) - mlen, "%s%s",
			                 mlen ? ", " : "", f->name);
			if (n > 0 && (size_t)n < sizeof(missing) - mlen)
				mlen += (size_t)n;
			if (!first_missing)
				first_missing = f->name;
		}
	}
	if (mlen) {
		json_decref(rec);
		fail(err, 400, "REQUIRED_FIELD_MISSING", first_missing,
		     "Required fields are missing: [%s]", missing);
		return NULL;
	}
	/* Recipient-less: Salesforce fills the owner/system fields itself. */
	json_object_set_new(rec, "IsDeleted", json_false());
	json_object_set_new(rec, "CreatedDate", json_string(now));
	json_object_set_new(rec, "CreatedById", json_string(user_id));
	json_object_set_new(rec, "LastModifiedDate", json_string(now));
	json_object_set_new(rec, "LastModifiedById", json_string(user_id));
	json_object_set_new(rec, "SystemModstamp", json_string(now));
	if (strcmp(obj->name, "User") == 0) {
		json_object_del(rec, "IsDeleted");
		if (!json_object_get(rec, "UserType"))
			json_object_set_new(rec, "UserType", json_string("Standard"));
	}
	if (strcmp(obj->name, "Group") == 0)
		json_object_del(rec, "IsDeleted");
	derive(obj, rec, now);
	return rec;
}

static const struct sim_object *resolve_type(const char *type, const char *id,
                                             struct sim_error *err)
{
	const struct sim_object *obj = type ? org_object(type) : org_object_by_prefix(id);
	if (!obj)
		fail(err, 404, "NOT_FOUND", NULL, "The requested resource does not exist");
	return obj;
}

int org_check_create_locked(struct sim *sim, const char *type, json_t *fields,
                            struct sim_error *err)
{
	const struct sim_object *obj = resolve_type(type, NULL, err);
	if (!obj)
		return -1;
	json_t *rec = build_create(sim, obj, fields, sim->default_user_id,
	                           "2000-01-01T00:00:00.000+0000", 0, err);
	if (!rec)
		return -1;
	json_decref(rec);
	return 0;
}

/* Does a value of field f repeat across records? */
static int internable(const struct sim_field *f, const char *v)
{
	switch (f->type) {
	case SIM_F_PICKLIST:
	case SIM_F_DATE:
	case SIM_F_DATETIME: return 1;
	case SIM_F_REFERENCE:
		/* owners, creators, modifiers: a few users and queues */
		return strncmp(v, "005", 3) == 0 || strncmp(v, "00G", 3) == 0;
	default: return 0;
	}
}

/* Replace rec's repeating string values with the shared interned ones.
 * Stored values are never changed in place (writes set new values), so
 * records may share them. Under the org lock. */
static void intern_values(struct sim *sim, const struct sim_object *obj, json_t *rec)
{
	json_t *tab = sim->store->interned;
	const char *key;
	json_t *v;

	json_object_foreach(rec, key, v)
	{
		if (!json_is_string(v))
			continue;
		const struct sim_field *f = org_field(obj, key);
		const char *sv = json_string_value(v);
		if (!f || !internable(f, sv))
			continue;
		json_t *shared = json_object_get(tab, sv);
		if (!shared) {
			if (json_object_size(tab) < INTERN_MAX)
				json_object_set(tab, sv, v);
			continue;
		}
		if (shared != v)
			json_object_set(rec, key, shared);
	}
}

static void insert(struct sim *sim, struct type_store *ts, json_t *rec, const char *id)
{
	json_t *ordered = json_object();
	/* Id first, then the rest, as Salesforce orders fields. */
	json_object_set_new(ordered, "Id", json_string(id));
	json_object_update(ordered, rec);
	intern_values(sim, ts->obj, ordered);
	json_object_set(ts->byid, id, ordered);
	json_array_append(ts->live, ordered);
	json_array_append(ts->all, ordered);
	json_decref(ordered);
}

static int create_in(struct sim *sim, struct org_txn *txn, const struct sim_object *obj,
                     json_t *fields, int system, char id_out[SIM_ID_BUF], struct sim_error *err);

/* Enhanced Email: a non-case EmailMessage gets its Task (ActivityId). */
static int email_task(struct sim *sim, struct org_txn *txn, json_t *em, const char *now,
                      struct sim_error *err)
{
	char tid[SIM_ID_BUF];
	json_t *subj = json_object_get(em, "Subject");
	json_t *md = json_object_get(em, "MessageDate");
	char date[16];
	int incoming = json_is_true(json_object_get(em, "Incoming"));
	snprintf(date, sizeof(date), "%.10s", json_is_string(md) ? json_string_value(md) : now);
	json_t *what = json_object_get(em, "RelatedToId");
	char *s = xasprintf("Email: %s", json_is_string(subj) ? json_string_value(subj) : "");
	json_t *f =
	        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "Subject", s, "Status", "Completed",
	                  "TaskSubtype", "Email", "Type", "Email", "ActivityDate", date, "Priority",
	                  "Normal", "WhatId", what ? json_incref(what) : json_null());
	free(s);
	(void)incoming;
	int rc = create_in(sim, txn, org_object("Task"), f, 1, tid, err);
	json_decref(f);
	if (rc == 0)
		json_object_set_new(em, "ActivityId", json_string(tid));
	return rc;
}

static int create_in(struct sim *sim, struct org_txn *txn, const struct sim_object *obj,
                     json_t *fields, int system, char id_out[SIM_ID_BUF], struct sim_error *err)
{
	char now[40];
	struct type_store *ts = store_of(sim, obj);
	/* Salesforce system timestamps have whole seconds. */
	sim_format_datetime(txn->ts_ms - txn->ts_ms % 1000, now, sizeof(now));
	json_t *rec = build_create(sim, obj, fields, txn->user_id, now, system || txn->system, err);
	if (!rec)
		return -1;
	if (strcmp(obj->name, "EmailMessage") == 0 && str_empty(json_object_get(rec, "ParentId")) &&
	    str_empty(json_object_get(rec, "ActivityId"))) {
		if (email_task(sim, txn, rec, now, err) < 0) {
			json_decref(rec);
			return -1;
		}
	}
	new_id(sim, ts, id_out);
	insert(sim, ts, rec, id_out);
	json_decref(rec);
	json_t *stored = json_object_get(ts->byid, id_out);
	json_t *changed = json_array();
	fire(sim, txn, obj->name, "CREATE", id_out, changed, stored);
	json_decref(changed);

	/* A ToAddress relation to a Lead makes the email's Task about that Lead. */
	if (strcmp(obj->name, "EmailMessageRelation") == 0) {
		json_t *rid = json_object_get(stored, "RelationId");
		json_t *type = json_object_get(stored, "RelationType");
		json_t *em = json_is_string(json_object_get(stored, "EmailMessageId"))
		                     ? org_lookup_locked(sim, json_string_value(json_object_get(
		                                                      stored, "EmailMessageId")))
		                     : NULL;
		json_t *act = em ? json_object_get(em, "ActivityId") : NULL;
		if (json_is_string(rid) && strncmp(json_string_value(rid), "00Q", 3) == 0 &&
		    json_is_string(type) && strcmp(json_string_value(type), "ToAddress") == 0 &&
		    json_is_string(act)) {
			json_t *task = org_lookup_locked(sim, json_string_value(act));
			if (task && str_empty(json_object_get(task, "WhoId"))) {
				json_t *patch = json_pack("{s:O}", "WhoId", rid);
				struct org_txn sys = *txn;
				sys.system = 1;
				org_update_locked(sim, &sys, "Task", json_string_value(act), patch,
				                  NULL);
				txn->seq = sys.seq;
				json_decref(patch);
			}
		}
	}
	return 0;
}

int org_create_locked(struct sim *sim, struct org_txn *txn, const char *type, json_t *fields,
                      char id_out[SIM_ID_BUF], struct sim_error *err)
{
	const struct sim_object *obj = resolve_type(type, NULL, err);
	if (!obj)
		return -1;
	return create_in(sim, txn, obj, fields, 0, id_out, err);
}

/* Find a record for a write: MALFORMED_ID / NOT_FOUND / ENTITY_IS_DELETED. */
static json_t *find_for_write(struct sim *sim, const struct sim_object *obj, const char *id,
                              int want_deleted, struct sim_error *err)
{
	char id18[SIM_ID_BUF];
	if (!id || sfid_to18(id, id18) < 0 || memcmp(id18, obj->key_prefix, 3) != 0) {
		fail(err, 400, "MALFORMED_ID", "Id", "%s ID: id value of incorrect type: %s",
		     obj->name, id ? id : "");
		return NULL;
	}
	json_t *rec = json_object_get(store_of(sim, obj)->byid, id18);
	if (!rec) {
		fail(err, 404, "NOT_FOUND", NULL, "The requested resource does not exist");
		return NULL;
	}
	int deleted = json_is_true(json_object_get(rec, "IsDeleted"));
	if (deleted && !want_deleted) {
		fail(err, 404, "ENTITY_IS_DELETED", NULL, "entity is deleted");
		return NULL;
	}
	if (!deleted && want_deleted) {
		fail(err, 400, "UNDELETE_FAILED", NULL, "Entity is not in the recycle bin");
		return NULL;
	}
	return rec;
}

static int check_id_field(const struct sim_object *obj, json_t *fields, json_t *rec,
                          struct sim_error *err)
{
	json_t *idv = json_object_get(fields, "Id");
	if (!idv)
		return 0;
	if (!json_is_string(idv) ||
	    !sfid_equal(json_string_value(idv), json_string_value(json_object_get(rec, "Id"))))
		return fail(err, 400, "INVALID_FIELD_FOR_INSERT_UPDATE", "Id",
		            "%s ID: cannot specify Id in an update call with a different id",
		            obj->name);
	return 0;
}

/* A converted Lead is read-only unless the user has "View and Edit Converted
 * Leads" (POST /sim/permissions); the platform itself (system) may write. */
static int converted_guard(struct sim *sim, const struct sim_object *obj, json_t *rec, int system,
                           struct sim_error *err)
{
	if (system || strcmp(obj->name, "Lead") != 0 ||
	    !json_is_true(json_object_get(rec, "IsConverted")) ||
	    atomic_load(&sim->edit_converted_leads))
		return 0;
	return fail(err, 400, "CANNOT_UPDATE_CONVERTED_LEAD", NULL,
	            "cannot reference converted lead");
}

int org_check_update_locked(struct sim *sim, const char *type, const char *id, json_t *fields,
                            struct sim_error *err)
{
	const struct sim_object *obj = resolve_type(type, id, err);
	json_t *norm = NULL;
	if (!obj)
		return -1;
	json_t *rec = find_for_write(sim, obj, id, 0, err);
	if (!rec || converted_guard(sim, obj, rec, 0, err) < 0 ||
	    check_id_field(obj, fields, rec, err) < 0 ||
	    normalise(sim, obj, fields, 0, 0, &norm, err) < 0)
		return -1;
	json_decref(norm);
	return 0;
}

int org_update_locked(struct sim *sim, struct org_txn *txn, const char *type, const char *id,
                      json_t *fields, struct sim_error *err)
{
	const struct sim_object *obj = resolve_type(type, id, err);
	json_t *norm = NULL, *changed = NULL;
	const char *key;
	json_t *v;
	char now[40];

	if (!obj)
		return -1;
	json_t *rec = find_for_write(sim, obj, id, 0, err);
	if (!rec || converted_guard(sim, obj, rec, txn->system, err) < 0 ||
	    check_id_field(obj, fields, rec, err) < 0 ||
	    normalise(sim, obj, fields, 0, txn->system, &norm, err) < 0)
		return -1;
	sim_format_datetime(txn->ts_ms - txn->ts_ms % 1000, now, sizeof(now));
	changed = json_array();
	json_t *before_closed = json_incref(json_object_get(rec, "IsClosed"));
	json_t *before_name = json_incref(json_object_get(rec, "Name"));
	json_object_foreach(norm, key, v)
	{
		json_t *cur = json_object_get(rec, key);
		int same = cur ? json_equal(cur, v) : json_is_null(v);
		if (!same) {
			json_object_set(rec, key, v);
			json_array_append_new(changed, json_string(key));
		}
	}
	derive(obj, rec, now);
	if (before_name && !json_equal(before_name, json_object_get(rec, "Name")))
		json_array_append_new(changed, json_string("Name"));
	if (before_closed && !json_equal(before_closed, json_object_get(rec, "IsClosed"))) {
		json_array_append_new(changed, json_string("IsClosed"));
		json_array_append_new(changed, json_string("CompletedDateTime"));
	}
	json_decref(before_closed);
	json_decref(before_name);
	json_object_set_new(rec, "LastModifiedDate", json_string(now));
	json_array_append_new(changed, json_string("LastModifiedDate"));
	json_t *lmb = json_object_get(rec, "LastModifiedById");
	if (!json_is_string(lmb) || strcmp(json_string_value(lmb), txn->user_id) != 0) {
		json_object_set_new(rec, "LastModifiedById", json_string(txn->user_id));
		json_array_append_new(changed, json_string("LastModifiedById"));
	}
	json_object_set_new(rec, "SystemModstamp", json_string(now));
	intern_values(sim, obj, rec);
	fire(sim, txn, obj->name, "UPDATE", json_string_value(json_object_get(rec, "Id")), changed,
	     rec);
	json_decref(changed);
	json_decref(norm);
	return 0;
}

static void live_remove(struct type_store *ts, json_t *rec)
{
	size_t n = json_array_size(ts->live);
	/* Newest records are the likeliest to be deleted: scan from the end. */
	for (size_t i = n; i-- > 0;)
		if (json_array_get(ts->live, i) == rec) {
			json_array_remove(ts->live, i);
			return;
		}
}

/* SystemModstamp moves on a delete / undelete too (the recycle-bin flip is a
 * system modification; replication tools read deletes through queryAll on it). */
static void stamp_system(const struct org_txn *txn, json_t *rec)
{
	char now[40];
	sim_format_datetime(txn->ts_ms - txn->ts_ms % 1000, now, sizeof(now));
	json_object_set_new(rec, "SystemModstamp", json_string(now));
}

int org_delete_locked(struct sim *sim, struct org_txn *txn, const char *type, const char *id,
                      struct sim_error *err)
{
	const struct sim_object *obj = resolve_type(type, id, err);
	if (!obj)
		return -1;
	if (strcmp(obj->name, "User") == 0)
		return fail(err, 400, "DELETE_FAILED", NULL, "Users cannot be deleted");
	json_t *rec = find_for_write(sim, obj, id, 0, err);
	if (!rec)
		return -1;
	json_incref(rec);
	live_remove(store_of(sim, obj), rec);
	json_object_set_new(rec, "IsDeleted", json_true());
	stamp_system(txn, rec); /* replication finds deletes by SystemModstamp (queryAll) */
	json_t *changed = json_array();
	fire(sim, txn, obj->name, "DELETE", json_string_value(json_object_get(rec, "Id")), changed,
	     rec);
	json_decref(changed);
	json_decref(rec);
	return 0;
}

int org_undelete_locked(struct sim *sim, struct org_txn *txn, const char *type, const char *id,
                        struct sim_error *err)
{
	const struct sim_object *obj = resolve_type(type, id, err);
	if (!obj)
		return -1;
	json_t *rec = find_for_write(sim, obj, id, 1, err);
	if (!rec)
		return -1;
	json_object_set_new(rec, "IsDeleted", json_false());
	stamp_system(txn, rec);
	json_array_append(store_of(sim, obj)->live, rec);
	json_t *changed = json_array();
	fire(sim, txn, obj->name, "UNDELETE", json_string_value(json_object_get(rec, "Id")),
	     changed, rec);
	json_decref(changed);
	return 0;
}

/* ---- one-shot wrappers ----------------------------------------------------------------- */

int org_create(struct sim *sim, const char *type, json_t *fields, const char *origin,
               const char *user_id, char id_out[SIM_ID_BUF], struct sim_error *err)
{
	struct org_txn txn;
	org_lock(sim);
	org_txn_begin(sim, &txn, origin, user_id);
	int rc = org_create_locked(sim, &txn, type, fields, id_out, err);
	org_unlock(sim);
	return rc;
}

int org_update(struct sim *sim, const char *type, const char *id, json_t *fields,
               const char *origin, const char *user_id, struct sim_error *err)
{
	struct org_txn txn;
	org_lock(sim);
	org_txn_begin(sim, &txn, origin, user_id);
	int rc = org_update_locked(sim, &txn, type, id, fields, err);
	org_unlock(sim);
	return rc;
}

int org_delete(struct sim *sim, const char *type, const char *id, const char *origin,
               const char *user_id, struct sim_error *err)
{
	struct org_txn txn;
	org_lock(sim);
	org_txn_begin(sim, &txn, origin, user_id);
	int rc = org_delete_locked(sim, &txn, type, id, err);
	org_unlock(sim);
	return rc;
}

int org_undelete(struct sim *sim, const char *type, const char *id, const char *origin,
                 const char *user_id, struct sim_error *err)
{
	struct org_txn txn;
	org_lock(sim);
	org_txn_begin(sim, &txn, origin, user_id);
	int rc = org_undelete_locked(sim, &txn, type, id, err);
	org_unlock(sim);
	return rc;
}

/* ---- lead conversion ------------------------------------------------------------------- */

/* Copy src[key] into dst[as] when set. */
static void copy_field(json_t *dst, const char *as, json_t *src, const char *key)
{
	json_t *v = json_object_get(src, key);
	if (v && !json_is_null(v))
		json_object_set(dst, as, v);
}

int org_convert_lead_locked(struct sim *sim, struct org_txn *txn, const char *id,
                            char contact_out[SIM_ID_BUF], char account_out[SIM_ID_BUF],
                            struct sim_error *err)
{
	const struct sim_object *lead_obj = org_object("Lead");
	json_t *lead = find_for_write(sim, lead_obj, id, 0, err);
	char lead_id[SIM_ID_BUF], date[16], now[40];
	int rc = -1;

	if (!lead)
		return -1;
	if (json_is_true(json_object_get(lead, "IsConverted")))
		return fail(err, 400, "CANNOT_UPDATE_CONVERTED_LEAD", NULL,
		            "cannot reference converted lead");
	snprintf(lead_id, sizeof(lead_id), "%s", json_string_value(json_object_get(lead, "Id")));
	/* Accounts and Contacts are owned by users: a queue-owned Lead's records
	 * go to the converting user (Salesforce asks for a user owner). */
	json_t *owner = json_object_get(lead, "OwnerId");
	const char *owner_id =
	        json_is_string(owner) && strncmp(json_string_value(owner), "005", 3) == 0
	                ? json_string_value(owner)
	                : txn->user_id;
	json_t *acc = json_pack("{s:s}", "OwnerId", owner_id);
	copy_field(acc, "Name", lead, "Company");
	copy_field(acc, "Industry", lead, "Industry");
	copy_field(acc, "NumberOfEmployees", lead, "NumberOfEmployees");
	copy_field(acc, "BillingCountry", lead, "Country");
	json_t *con = json_pack("{s:s}", "OwnerId", owner_id);
	static const char *const same[] = {"Salutation", "FirstName", "LastName",  "Title",
	                                   "Email",      "Phone",     "LeadSource"};
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
		copy_field(con, same[i], lead, same[i]);
	json_t *patch = NULL;
	if (create_in(sim, txn, org_object("Account"), acc, 1, account_out, err) < 0)
		goto out;
	json_object_set_new(con, "AccountId", json_string(account_out));
	if (create_in(sim, txn, org_object("Contact"), con, 1, contact_out, err) < 0)
		goto out;

	sim_format_datetime(txn->ts_ms, now, sizeof(now));
	snprintf(date, sizeof(date), "%.10s", now);
	struct org_txn sys = *txn;
	sys.system = 1;
	patch = json_pack("{s:b,s:s,s:s,s:s,s:s}", "IsConverted", 1, "ConvertedDate", date,
	                  "ConvertedAccountId", account_out, "ConvertedContactId", contact_out,
	                  "Status", "Closed - Converted");
	if (org_update_locked(sim, &sys, "Lead", lead_id, patch, err) < 0)
		goto out;
	/* The Lead's open and closed activities move to the Contact and Account. */
	json_t *tasks = org_records_locked(sim, "Task");
	json_t *move = json_array();
	size_t i;
	json_t *t;
	json_array_foreach(tasks, i, t)
	{
		json_t *who = json_object_get(t, "WhoId");
		if (json_is_string(who) && sfid_equal(json_string_value(who), lead_id))
			json_array_append(move, json_object_get(t, "Id"));
	}
	json_t *tp = json_pack("{s:s,s:s}", "WhoId", contact_out, "WhatId", account_out);
	rc = 0;
	json_array_foreach(move, i, t)
	{
		if (org_update_locked(sim, &sys, "Task", json_string_value(t), tp, err) < 0) {
			rc = -1;
			break;
		}
	}
	json_decref(tp);
	json_decref(move);
	txn->seq = sys.seq;
out:
	json_decref(patch);
	json_decref(acc);
	json_decref(con);
	return rc;
}

int org_convert_lead(struct sim *sim, const char *id, const char *user_id,
                     char contact_out[SIM_ID_BUF], char account_out[SIM_ID_BUF],
                     struct sim_error *err)
{
	struct org_txn txn;
	org_lock(sim);
	org_txn_begin(sim, &txn, "", user_id);
	int rc = org_convert_lead_locked(sim, &txn, id, contact_out, account_out, err);
	org_unlock(sim);
	return rc;
}

/* ---- reads ------------------------------------------------------------------------------ */

json_t *org_records_locked(struct sim *sim, const char *type)
{
	const struct sim_object *obj = org_object(type);
	struct type_store *ts = obj ? store_of(sim, obj) : NULL;
	return ts ? ts->live : NULL;
}

json_t *org_all_records_locked(struct sim *sim, const char *type)
{
	const struct sim_object *obj = org_object(type);
	struct type_store *ts = obj ? store_of(sim, obj) : NULL;
	return ts ? ts->all : NULL;
}

json_t *org_lookup_locked(struct sim *sim, const char *id)
{
	char id18[SIM_ID_BUF];
	if (!id || sfid_to18(id, id18) < 0)
		return NULL;
	const struct sim_object *obj = org_object_by_prefix(id18);
	struct type_store *ts = obj ? store_of(sim, obj) : NULL;
	return ts ? json_object_get(ts->byid, id18) : NULL;
}

/* All schema fields in schema order, null where unset; new reference. */
json_t *org_full_view(const struct sim_object *obj, json_t *rec)
{
	json_t *out = json_object();
	for (size_t i = 0; i < obj->nfields; i++) {
		json_t *v = json_object_get(rec, obj->fields[i].name);
		json_object_set_new(out, obj->fields[i].name, v ? json_deep_copy(v) : json_null());
	}
	return out;
}

json_t *org_get(struct sim *sim, const char *type, const char *id, struct sim_error *err)
{
	json_t *out = NULL;
	const struct sim_object *obj = resolve_type(type, id, err);
	if (!obj)
		return NULL;
	org_lock(sim);
	json_t *rec = find_for_write(sim, obj, id, 0, err);
	if (rec)
		out = org_full_view(obj, rec);
	pthread_mutex_unlock(&sim->lock);
	return out;
}

struct dump_buf {
	char *p;
	size_t len, cap;
};

static int dump_append(const char *buf, size_t n, void *ctx)
{
	struct dump_buf *b = ctx;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, buf, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

char *org_dump_text(struct sim *sim, size_t *len)
{
	struct dump_buf b = {0};
	org_lock(sim);
	dump_append("{", 1, &b);
	for (size_t i = 0; i < sim->store->ntypes; i++) {
		struct type_store *ts = &sim->store->types[i];
		json_t *name = json_string(ts->obj->name);
		json_dump_callback(name, dump_append, &b, JSON_ENCODE_ANY);
		json_decref(name);
		dump_append(":", 1, &b);
		json_dump_callback(ts->live, dump_append, &b, JSON_COMPACT);
		dump_append(",", 1, &b);
	}
	json_t *org = json_string(sim->org_id);
	dump_append("\"orgId\":", 8, &b);
	json_dump_callback(org, dump_append, &b, JSON_ENCODE_ANY);
	json_decref(org);
	dump_append("}", 1, &b);
	pthread_mutex_unlock(&sim->lock);
	*len = b.len;
	return b.p;
}

json_t *org_dump(struct sim *sim)
{
	json_t *out = json_object();
	org_lock(sim);
	for (size_t i = 0; i < sim->store->ntypes; i++) {
		struct type_store *ts = &sim->store->types[i];
		json_object_set_new(out, ts->obj->name, json_deep_copy(ts->live));
	}
	pthread_mutex_unlock(&sim->lock);
	return out;
}

int org_user_by_username(struct sim *sim, const char *username, char id_out[SIM_ID_BUF])
{
	int rc = -1;
	org_lock(sim);
	json_t *users = org_records_locked(sim, "User");
	size_t i;
	json_t *u;
	json_array_foreach(users, i, u)
	{
		json_t *un = json_object_get(u, "Username");
		if (json_is_string(un) && strcasecmp(json_string_value(un), username) == 0) {
			snprintf(id_out, SIM_ID_BUF, "%s",
			         json_string_value(json_object_get(u, "Id")));
			rc = json_is_true(json_object_get(u, "IsActive")) ? 0 : -2;
			break;
		}
	}
	pthread_mutex_unlock(&sim->lock);
	return rc;
}

/* ---- lifecycle and seed data ------------------------------------------------------------- */

static const char *const first_names[] = {"Ava",  "Liam",  "Mia",   "Noah", "Zoe",   "Omar",
                                          "Ines", "Kenji", "Priya", "Lars", "Sofia", "Diego"};
static const char *const last_names[] = {"Patel",  "Nguyen", "Schmidt", "Garcia",
                                         "Okafor", "Tanaka", "Rossi",   "Kowalski",
                                         "Silva",  "Jensen", "Moreau",  "Haddad"};
static const char *const countries[] = {"United States", "Germany",        "Japan",
                                        "Brazil",        "United Kingdom", "India"};

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void seed_user(struct sim *sim, struct org_txn *txn, const char *username, const char *first,
                      const char *last, const char *country, int active, char id_out[SIM_ID_BUF])
{
	struct sim_error err;
	char alias[9];
	snprintf(alias, sizeof(alias), "%.1s%.7s", first, last);
	json_t *f =
	        json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:s,s:s}", "Username", username, "FirstName",
	                  first, "LastName", last, "Email", username, "Alias", alias, "IsActive",
	                  active, "TimeZoneSidKey", "America/Los_Angeles", "Country", country);
	if (create_in(sim, txn, org_object("User"), f, 1, id_out, &err) < 0)
		log_error("seed user failed user=%s code=%s msg=%s", username, err.code,
		          err.message);
	json_decref(f);
}

int org_init(struct sim *sim, const struct sim_config *cfg, const char *const *usernames,
             size_t nusers)
{
	struct org_txn txn;
	char id[SIM_ID_BUF];
	uint64_t rng = cfg->seed;

	pthread_mutex_init(&sim->lock, NULL);
	pthread_cond_init(&sim->cond, NULL);
	sim->cfg = *cfg;
	{
		const char *v = json_string_value(
		        json_object_get(cfg->opts, "org.view_edit_converted_leads"));
		atomic_store(&sim->edit_converted_leads, v && strcmp(v, "0") != 0);
	}
	atomic_store(&sim->clock_offset_ms, 0);
	sim->store = xcalloc(1, sizeof(*sim->store));
	sim->store->ntypes = org_nobjects();
	sim->store->types = xcalloc(sim->store->ntypes, sizeof(struct type_store));
	/* Ids depend on the seed only: same seed, same ids. */
	sim->store->id_base = (cfg->seed % 100000u) * 1000000000ull + 1000;
	sim->store->interned = json_object();
	for (size_t i = 0; i < sim->store->ntypes; i++) {
		sim->store->types[i].obj = org_object_at(i);
		sim->store->types[i].live = json_array();
		sim->store->types[i].byid = json_object();
		sim->store->types[i].all = json_array();
	}
	sfid_make(sim->org_id, "00D", sim->store->id_base / 1000);

	/* The first user must exist before anything records CreatedById. */
	struct type_store *users = store_of(sim, org_object("User"));
	sfid_make(sim->default_user_id, "005", sim->store->id_base + users->next);

	org_lock(sim);
	org_txn_begin(sim, &txn, "", sim->default_user_id);
	txn.system = 1;
	if (nusers == 0) {
		static const char *const fallback[] = {"integration@sfk-sim.test"};
		usernames = fallback;
		nusers = 1;
	}
	for (size_t i = 0; i < nusers; i++)
		seed_user(sim, &txn, usernames[i], "Integration", i ? "User" : "Admin",
		          "United States", 1, id);
	/* Sales reps (deterministic from the seed), one of them inactive. */
	for (size_t i = 0; i < 8; i++) {
		const char *fn = first_names[splitmix(&rng) % 12];
		const char *ln = last_names[(splitmix(&rng) + i) % 12];
		char uname[128];
		snprintf(uname, sizeof(uname), "%s.%s%zu@sfk-sim.test", fn, ln, i + 1);
		for (char *p = uname; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		seed_user(sim, &txn, uname, fn, ln, countries[i % 6], i != 7, id);
	}
	static const char *const queues[][2] = {{"Unassigned Leads", "Unassigned_Leads"},
	                                        {"AMER Inbound", "AMER_Inbound"},
	                                        {"EMEA Inbound", "EMEA_Inbound"},
	                                        {"APAC Inbound", "APAC_Inbound"}};
	for (size_t i = 0; i < 4; i++) {
		struct sim_error err;
		json_t *f = json_pack("{s:s,s:s,s:s}", "Name", queues[i][0], "DeveloperName",
		                      queues[i][1], "Type", "Queue");
		if (create_in(sim, &txn, org_object("Group"), f, 1, id, &err) < 0)
			log_error("seed queue failed code=%s", err.code);
		json_decref(f);
	}
	pthread_mutex_unlock(&sim->lock);
	return 0;
}

void org_fini(struct sim *sim)
{
	if (!sim->store)
		return;
	for (size_t i = 0; i < sim->store->ntypes; i++) {
		json_decref(sim->store->types[i].live);
		json_decref(sim->store->types[i].byid);
		json_decref(sim->store->types[i].all);
	}
	json_decref(sim->store->interned);
	free(sim->store->types);
	free(sim->store);
	sim->store = NULL;
	json_decref(sim->cfg.opts);
	sim->cfg.opts = NULL;
	pthread_cond_destroy(&sim->cond);
	pthread_mutex_destroy(&sim->lock);
}
