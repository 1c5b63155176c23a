/*
 * resync.c - resumable entity scans into Kafka (see resync.h).
 *
 * queryAll is not in sf_rest's iterator (it only runs /query), so a small
 * pager over sf_rest_request lives here: GET queryAll?q=..., then each
 * nextRecordsUrl, every page bounded by RESYNC_PAGE_MAX.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "resync.h"
#include "sfid.h"
#include "soql_build.h"
#include "xmem.h"

/* Passes of an invalid-replay resync (each catches what changed during the
 * previous one). */
#define RESYNC_MAX_PASSES 5
/* Most fan-out targets of one record. */
#define RESYNC_MAX_TARGETS 16

static int api_name(const char *s)
{
	if (!s || !isalpha((unsigned char)*s))
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return 0;
	return 1;
}

/* ---- jobs and cursors --------------------------------------------------- */

void resync_cursor_clear(struct resync_cursor *c)
{
	json_decref(c->ids);
	c->ids = NULL;
	c->stamp_ms = -1;
	c->last_id[0] = '\0';
}

void resync_job_clear(struct resync_job *j)
{
	resync_cursor_clear(&j->cur);
	memset(j, 0, sizeof *j);
	j->cur.stamp_ms = -1;
}

json_t *resync_cursor_json(const struct resync_cursor *c)
{
	json_t *empty = json_array();
	json_t *v = json_pack("{s:I,s:s,s:O}", "stamp_ms", (json_int_t)c->stamp_ms, "last_id",
	                      c->last_id, "ids", c->ids ? c->ids : empty);
	json_decref(empty);
	return v;
}

int resync_cursor_parse(json_t *v, struct resync_cursor *c)
{
	json_t *st = json_object_get(v, "stamp_ms"), *ids = json_object_get(v, "ids"), *id;
	const char *last = json_string_value(json_object_get(v, "last_id"));
	size_t i;
	if (!json_is_integer(st) || !json_is_array(ids) || json_array_size(ids) > RESYNC_TIES_MAX ||
	    !last || strlen(last) >= sizeof c->last_id)
		return -1;
	json_array_foreach(ids, i, id) if (!json_is_string(id)) return -1;
	resync_cursor_clear(c);
	c->stamp_ms = json_integer_value(st);
	c->ids = json_deep_copy(ids);
	snprintf(c->last_id, sizeof c->last_id, "%s", last);
	return 0;
}

char *resync_job_value(const struct resync_job *j, int64_t now_ms)
{
	json_t *v = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:o,s:I}", "entity", j->entity, "reason",
	                      j->reason, "channel", j->channel, "replay_id",
	                      (json_int_t)j->replay_id, "since_ms", (json_int_t)j->since_ms,
	                      "deletes_since_ms", (json_int_t)j->deletes_since_ms, "cursor",
	                      resync_cursor_json(&j->cur), "committed_at", (json_int_t)now_ms);
	char *s = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	if (!s)
		abort(); /* jansson only fails on OOM here */
	return s;
}

int resync_job_parse(json_t *v, struct resync_job *j)
{
	const char *e = json_string_value(json_object_get(v, "entity"));
	const char *r = json_string_value(json_object_get(v, "reason"));
	const char *ch = json_string_value(json_object_get(v, "channel"));
	json_t *rid = json_object_get(v, "replay_id"), *s = json_object_get(v, "since_ms");
	json_t *ds = json_object_get(v, "deletes_since_ms");

	resync_job_clear(j);
	if (!api_name(e) || strlen(e) > NORMALIZE_ENTITY_MAX || !r ||
	    strlen(r) >= sizeof j->reason || !ch || strlen(ch) >= sizeof j->channel ||
	    !json_is_integer(rid) || !json_is_integer(s) || !json_is_integer(ds) ||
	    resync_cursor_parse(json_object_get(v, "cursor"), &j->cur) != 0)
		return -1;
	snprintf(j->entity, sizeof j->entity, "%s", e);
	snprintf(j->reason, sizeof j->reason, "%s", r);
	snprintf(j->channel, sizeof j->channel, "%s", ch);
	j->replay_id = json_integer_value(rid);
	j->since_ms = json_integer_value(s);
	j->deletes_since_ms = json_integer_value(ds);
	return 0;
}

int resync_channel_entity(const char *channel, char *entity, size_t size)
{
	static const char pre[] = "/data/", suf[] = "ChangeEvent";
	size_t n;
	if (!channel || strncmp(channel, pre, sizeof pre - 1) != 0)
		return -1;
	channel += sizeof pre - 1;
	n = strlen(channel);
	if (n <= sizeof suf - 1 || strcmp(channel + n - (sizeof suf - 1), suf) != 0)
		return -1;
	n -= sizeof suf - 1;
	/* Custom objects: Foo__ChangeEvent is the channel of Foo__c. */
	int custom = n > 2 && channel[n - 1] == '_' && channel[n - 2] == '_';
	int w = snprintf(entity, size, "%.*s%s", (int)n, channel, custom ? "c" : "");
	if (w < 0 || (size_t)w >= size || !api_name(entity))
		return -1;
	return 0;
}

/* ---- SOQL ---------------------------------------------------------------- */

char *resync_soql(const char *entity, json_t *describe, char *errstr, size_t errlen)
{
	json_t *fields = json_object_get(describe, "fields"), *f;
	size_t i, off = 0, nsel = 0;
	char *q = xmalloc(RESYNC_SOQL_MAX);
	int n;

	if (!api_name(entity) || !json_is_array(fields)) {
		snprintf(errstr, errlen, "resync: no usable describe for %s", entity ? entity : "");
		free(q);
		return NULL;
	}
	n = snprintf(q, RESYNC_SOQL_MAX, "SELECT ");
	off = (size_t)n;
	json_array_foreach(fields, i, f)
	{
		const char *name = json_string_value(json_object_get(f, "name"));
		const char *type = json_string_value(json_object_get(f, "type"));
		/* Compound address/location values come through their parts
		 * (Street, City, ... Latitude); base64 bodies are not state. */
		if (type && (strcmp(type, "address") == 0 || strcmp(type, "location") == 0 ||
		             strcmp(type, "base64") == 0))
			continue;
		if (!api_name(name)) {
			snprintf(errstr, errlen, "resync: %s describe has an unusable field name",
			         entity);
			free(q);
			return NULL;
		}
		n = snprintf(q + off, RESYNC_SOQL_MAX - off, "%s%s", nsel ? ", " : "", name);
		if (n < 0 || (size_t)n >= RESYNC_SOQL_MAX - off)
			goto too_long;
		off += (size_t)n;
		nsel++;
	}
	if (nsel == 0) {
		snprintf(errstr, errlen, "resync: %s describe lists no fields", entity);
		free(q);
		return NULL;
	}
	n = snprintf(q + off, RESYNC_SOQL_MAX - off, " FROM %s", entity);
	if (n < 0 || (size_t)n >= RESYNC_SOQL_MAX - off)
		goto too_long;
	return q;
too_long:
	snprintf(errstr, errlen, "resync: SELECT for %s longer than %d", entity, RESYNC_SOQL_MAX);
	free(q);
	return NULL;
}

void resync_soql_datetime(int64_t ms, char *out, size_t size)
{
	time_t secs = (time_t)((ms < 0 ? 0 : ms) / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* 1 if the select list "SELECT a, b FROM X" names field (whole word). */
static int selects(const char *select, const char *field)
{
	size_t n = strlen(field);
	const char *from = strstr(select, " FROM ");
	for (const char *p = strstr(select, field); p && (!from || p < from);
	     p = strstr(p + 1, field)) {
		char before = p == select ? ' ' : p[-1], after = p[n];
		if ((before == ' ' || before == ',') && (after == ',' || after == ' '))
			return 1;
	}
	return 0;
}

char *resync_scan_soql(const char *select, const char *filter, const struct resync_cursor *c)
{
	char ts[40] = "";
	const char *from = strstr(select, " FROM ");
	int sel_len = from ? (int)(from - select) : (int)strlen(select);
	int has_del = selects(select, "IsDeleted"), has_stamp = selects(select, "SystemModstamp");
	if (c->stamp_ms >= 0)
		resync_soql_datetime(c->stamp_ms, ts, sizeof ts);
	return xasprintf("%.*s%s%s%s%s%s%s%s%s%s%s ORDER BY SystemModstamp, Id", sel_len, select,
	                 has_del ? "" : ", IsDeleted", has_stamp ? "" : ", SystemModstamp",
	                 from ? from : "", filter || ts[0] ? " WHERE " : "", filter ? "(" : "",
	                 filter ? filter : "", filter ? ")" : "", filter && ts[0] ? " AND " : "",
	                 ts[0] ? "SystemModstamp >= " : "", ts);
}

/* "2026-11-22T01:02:03.000+0000" (or Z, or +hh:mm) -> ms since the epoch; -1. */
int64_t resync_parse_stamp(const char *s)
{
	int y, mo, d, h, mi, se, ms = 0, n = 0;
	struct tm tm;
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &n) != 6)
		return -1;
	s += n;
	if (*s == '.') {
		s++;
		for (int i = 0; i < 3 && isdigit((unsigned char)*s); i++, s++)
			ms = ms * 10 + (*s - '0');
		while (isdigit((unsigned char)*s))
			s++;
	}
	int off = 0;
	if (*s == '+' || *s == '-') {
		int oh, om;
		if (sscanf(s + 1, "%2d%n", &oh, &n) != 1)
			return -1;
		const char *p = s + 1 + n;
		if (*p == ':')
			p++;
		if (sscanf(p, "%2d", &om) != 1)
			om = 0;
		off = (oh * 60 + om) * 60 * (*s == '-' ? -1 : 1);
	} else if (*s != 'Z' && *s != '\0') {
		return -1;
	}
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	return ((int64_t)t - off) * 1000 + ms;
}

/* ---- queryAll pager ------------------------------------------------------ */

struct pager {
	struct sf_rest *rest;
	json_t *page; /* owned */
	size_t next;
};

static enum sfk_err pager_fetch(struct pager *pg, const char *path, struct sf_error *e)
{
	struct sf_response resp;
	json_error_t je;
	memset(&resp, 0, sizeof resp);
	enum sfk_err rc =
	        sf_rest_request(pg->rest, "GET", path, "queryAll", NULL, NULL, 0, 0, &resp, e);
	if (rc != SFK_OK)
		goto out;
	json_t *page = resp.len <= RESYNC_PAGE_MAX && resp.body
	                       ? json_loadb(resp.body, resp.len, 0, &je)
	                       : NULL;
	if (!page || !json_is_array(json_object_get(page, "records"))) {
		json_decref(page);
		sf_error_clear(e);
		e->err = rc = SFK_ERR_PARSE;
		snprintf(e->message, sizeof e->message, "queryAll page unreadable (%zu bytes)",
		         resp.len);
		goto out;
	}
	json_decref(pg->page);
	pg->page = page;
	pg->next = 0;
out:
	sf_response_clear(&resp);
	return rc;
}

static enum sfk_err pager_open(struct pager *pg, struct sf_rest *rest, const char *soql,
                               struct sf_error *e)
{
	memset(pg, 0, sizeof *pg);
	pg->rest = rest;
	char *enc = soql_urlencode(soql);
	char *path = xasprintf("queryAll?q=%s", enc);
	free(enc);
	enum sfk_err rc = pager_fetch(pg, path, e);
	free(path);
	return rc;
}

/* Next record (borrowed until the next call), NULL at the end. */
static enum sfk_err pager_next(struct pager *pg, json_t **rec, struct sf_error *e)
{
	*rec = NULL;
	for (;;) {
		json_t *records = json_object_get(pg->page, "records");
		if (pg->next < json_array_size(records)) {
			*rec = json_array_get(records, pg->next++);
			return SFK_OK;
		}
		const char *next = json_string_value(json_object_get(pg->page, "nextRecordsUrl"));
		if (json_is_true(json_object_get(pg->page, "done")) || !next || !*next)
			return SFK_OK;
		if (strlen(next) > SF_REST_URL_MAX || next[0] != '/') {
			sf_error_clear(e);
			e->err = SFK_ERR_PARSE;
			snprintf(e->message, sizeof e->message, "bad nextRecordsUrl");
			return e->err;
		}
		char *path = xstrdup(next);
		enum sfk_err rc = pager_fetch(pg, path, e);
		free(path);
		if (rc != SFK_OK)
			return rc;
	}
}

static void pager_close(struct pager *pg)
{
	json_decref(pg->page);
	pg->page = NULL;
}

/* ---- SELECT lists, cached -------------------------------------------------- */

/* Describe results change rarely: the SELECT list of an entity is kept for
 * RESYNC_SELECT_TTL_MS (a poll every few seconds must not add a describe call
 * each time when no Redis cache is configured). Used by the one thread that
 * runs scans. */
#define RESYNC_SELECT_CACHE  32
#define RESYNC_SELECT_TTL_MS (3600 * 1000)

static struct {
	char entity[NORMALIZE_ENTITY_MAX + 1];
	char *select;
	int64_t at_ms;
} g_selects[RESYNC_SELECT_CACHE];

static int64_t mono_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The SELECT list of entity: new string (free()), or NULL (*rc, errstr). */
static char *select_list(struct sf_rest *rest, const char *entity, enum sfk_err *rc, char *errstr,
                         size_t errlen)
{
	json_t *describe = NULL;
	struct sf_error e;
	size_t i, slot = 0;
	int64_t now = mono_now_ms();

	for (i = 0; i < RESYNC_SELECT_CACHE; i++) {
		if (g_selects[i].select && strcmp(g_selects[i].entity, entity) == 0 &&
		    now - g_selects[i].at_ms < RESYNC_SELECT_TTL_MS)
			return xstrdup(g_selects[i].select);
		if (g_selects[i].at_ms < g_selects[slot].at_ms ||
		    strcmp(g_selects[i].entity, entity) == 0)
			slot = i;
	}
	memset(&e, 0, sizeof e);
	if ((*rc = sf_rest_describe(rest, entity, &describe, &e)) != SFK_OK) {
		snprintf(errstr, errlen, "resync %s: describe: %s", entity, e.message);
		return NULL;
	}
	char *sel = resync_soql(entity, describe, errstr, errlen);
	json_decref(describe);
	if (!sel) {
		*rc = SFK_ERR_TOO_LARGE;
		return NULL;
	}
	free(g_selects[slot].select);
	snprintf(g_selects[slot].entity, sizeof g_selects[slot].entity, "%s", entity);
	g_selects[slot].select = xstrdup(sel);
	g_selects[slot].at_ms = now;
	return sel;
}

/* ---- publishing ------------------------------------------------------------ */

static int64_t resync_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Published already: at the cursor's second, listed in ids, or (when the
 * list is full) not after last_id (15-character ids compare like ORDER BY Id). */
static int id_seen(const struct resync_cursor *c, int64_t stamp, const char *id)
{
	json_t *v;
	size_t i;
	if (stamp != c->stamp_ms)
		return 0;
	json_array_foreach(c->ids, i, v) if (strcmp(json_string_value(v), id) == 0) return 1;
	return json_array_size(c->ids) >= RESYNC_TIES_MAX && strncmp(id, c->last_id, 15) <= 0;
}

static void cursor_advance(struct resync_cursor *c, int64_t stamp, const char *id)
{
	if (!c->ids)
		c->ids = json_array();
	if (stamp != c->stamp_ms) {
		c->stamp_ms = stamp;
		json_array_clear(c->ids);
	}
	snprintf(c->last_id, sizeof c->last_id, "%s", id);
	if (json_array_size(c->ids) < RESYNC_TIES_MAX)
		json_array_append_new(c->ids, json_string(id));
}

/* The envelope of one queryAll record. New reference or NULL (why). */
static json_t *envelope(const char *entity, json_t *rec, enum resync_mode mode, int64_t stamp,
                        int64_t now, const char **ctype, char *why, size_t whylen)
{
	int deleted = json_is_true(json_object_get(rec, "IsDeleted"));
	json_t *env = normalize_snapshot(entity, rec, stamp, now, why, whylen);
	if (!env)
		return NULL;
	if (deleted)
		*ctype = "DELETE";
	else if (mode == RESYNC_MODE_SNAPSHOT)
		*ctype = "SNAPSHOT";
	else
		*ctype = resync_parse_stamp(
		                 json_string_value(json_object_get(rec, "CreatedDate"))) == stamp
		                 ? "CREATE"
		                 : "UPDATE";
	json_object_set_new(env, "change_type", json_string(*ctype));
	if (deleted)
		json_object_set_new(env, "fields", json_object()); /* as a CDC DELETE: no fields */
	if (mode == RESYNC_MODE_POLL) {
		json_object_set_new(env, "commit_timestamp", json_integer(stamp));
		json_object_set_new(json_object_get(env, "flags"), "resynced", json_false());
	}
	return env;
}

static enum sfk_err produce_env(const struct resync_out *o, const char *topic, const char *key,
                                json_t *env, const struct kafka_header *h, size_t nh, char *errstr,
                                size_t errlen)
{
	char *v = json_dumps(env, JSON_COMPACT);
	if (!v)
		abort();
	enum sfk_err rc =
	        o->sink.produce(o->sink.ctx, topic, key, v, strlen(v), h, nh, errstr, errlen);
	free(v);
	return rc;
}

/* One transaction: the records of batch, then key -> value on the checkpoint topic. */
static enum sfk_err publish_chunk(const struct resync_out *o, const char *entity,
                                  enum resync_mode mode, json_t *batch, const char *key,
                                  const char *value, struct metric *m_events, char *errstr,
                                  size_t errlen)
{
	char topic[NORMALIZE_TOPIC_MAX + 1], why[256], aerr[256];
	json_t *rec;
	size_t i;
	enum sfk_err rc;

	if (normalize_topic(o->topic_prefix, entity, topic, sizeof topic) != 0) {
		snprintf(errstr, errlen, "resync: no topic for \"%.64s\"", entity);
		return SFK_ERR_INVALID;
	}
	if ((rc = o->sink.begin(o->sink.ctx, errstr, errlen)) != SFK_OK)
		return rc;
	int64_t now = resync_now_ms();
	json_array_foreach(batch, i, rec)
	{
		const char *ctype = "SNAPSHOT";
		int64_t stamp = json_integer_value(json_object_get(rec, "_stamp"));
		json_object_del(rec, "_stamp");
		json_t *env = envelope(entity, rec, mode, stamp, now, &ctype, why, sizeof why);
		if (!env) {
			log_error("resync: record skipped object=%s reason=%s", entity, why);
			continue;
		}
		if (o->echo_user && *o->echo_user) {
			char who[19];
			const char *lm =
			        json_string_value(json_object_get(rec, "LastModifiedById"));
			if (lm && sfid_to18(lm, who) == 0 && strcmp(who, o->echo_user) == 0)
				json_object_set_new(json_object_get(env, "flags"), "echo",
				                    json_true());
		}
		const char *eid = json_string_value(json_object_get(env, "event_id"));
		const char *id = json_string_value(json_object_get(env, "record_id"));
		struct kafka_header h[NORMALIZE_NHDRS + 1] = {
		        {NORMALIZE_HDR_ENTITY, entity, strlen(entity)},
		        {NORMALIZE_HDR_CHANGE_TYPE, ctype, strlen(ctype)},
		        {NORMALIZE_HDR_EVENT_ID, eid, strlen(eid)},
		};
		rc = produce_env(o, topic, id, env, h, NORMALIZE_NHDRS, errstr, errlen);
		struct fanout_target t[RESYNC_MAX_TARGETS];
		size_t nt = rc == SFK_OK && o->fanout
		                    ? fanout_route(o->fanout, env, t, RESYNC_MAX_TARGETS)
		                    : 0;
		for (size_t k = 0; k < nt && rc == SFK_OK; k++) {
			h[NORMALIZE_NHDRS] = (struct kafka_header){
			        FANOUT_HDR_WORKLOAD, t[k].workload, strlen(t[k].workload)};
			rc = produce_env(o, t[k].topic, t[k].key, env, h, NORMALIZE_NHDRS + 1,
			                 errstr, errlen);
		}
		json_decref(env);
		if (rc != SFK_OK)
			goto abort;
		metric_add(m_events, 1, entity, ctype);
	}
	if (key &&
	    (rc = o->sink.produce(o->sink.ctx, o->checkpoint_topic, key, value,
	                          value ? strlen(value) : 0, NULL, 0, errstr, errlen)) != SFK_OK)
		goto abort;
	return o->sink.commit(o->sink.ctx, errstr, errlen);
abort:
	if (o->sink.abort(o->sink.ctx, aerr, sizeof aerr) != SFK_OK)
		log_error("transaction abort failed error=%s", aerr);
	return rc;
}

enum sfk_err resync_scan(struct sf_rest *rest, const struct resync_out *o, const char *entity,
                         enum resync_mode mode, const char *filter, struct resync_cursor *cur,
                         size_t chunk, const char *key, resync_value_fn value_fn, void *ctx,
                         volatile sig_atomic_t *stop, size_t *total, char *errstr, size_t errlen)
{
	json_t *batch = NULL, *rec;
	struct pager pg = {0};
	struct resync_cursor next = {.stamp_ms = cur->stamp_ms,
	                             .ids = cur->ids ? json_deep_copy(cur->ids) : json_array()};
	snprintf(next.last_id, sizeof next.last_id, "%s", cur->last_id);
	struct sf_error e;
	char *select = NULL, *soql = NULL;
	enum sfk_err rc = SFK_OK;
	struct metric *m_events = metrics_counter("sfk_cdc_events_total",
	                                          "Change events committed to Kafka by the bridge",
	                                          "object,change_type");

	*total = 0;
	if (chunk == 0)
		chunk = RESYNC_DEFAULT_CHUNK;
	memset(&e, 0, sizeof e);
	if (!(select = select_list(rest, entity, &rc, errstr, errlen)))
		goto out;
	soql = resync_scan_soql(select, filter, cur);
	if ((rc = pager_open(&pg, rest, soql, &e)) != SFK_OK) {
		snprintf(errstr, errlen, "resync %s: queryAll: %s", entity, e.message);
		goto out;
	}
	batch = json_array();
	for (;;) {
		if (stop && *stop)
			break;
		if ((rc = pager_next(&pg, &rec, &e)) != SFK_OK) {
			snprintf(errstr, errlen, "resync %s: queryAll page: %s", entity, e.message);
			goto out;
		}
		if (rec) {
			const char *id = json_string_value(json_object_get(rec, "Id"));
			int64_t stamp = resync_parse_stamp(
			        json_string_value(json_object_get(rec, "SystemModstamp")));
			if (!id || stamp < 0) {
				log_error("resync: record without Id or SystemModstamp skipped "
				          "object=%s",
				          entity);
			} else if (!id_seen(&next, stamp, id)) {
				json_t *copy = json_deep_copy(rec);
				json_object_set_new(copy, "_stamp", json_integer(stamp));
				json_array_append_new(batch, copy);
				cursor_advance(&next, stamp, id);
			}
		}
		if (json_array_size(batch) == chunk || (!rec && json_array_size(batch) > 0)) {
			char *value = value_fn ? value_fn(ctx, &next) : NULL;
			size_t n = json_array_size(batch);
			rc = publish_chunk(o, entity, mode, batch, key, value, m_events, errstr,
			                   errlen);
			free(value);
			if (rc != SFK_OK)
				goto out;
			*total += n;
			json_array_clear(batch);
			if (mode == RESYNC_MODE_POLL)
				log_info("poll chunk committed object=%s records=%zu total=%zu",
				         entity, n, *total);
			else
				log_info("resync chunk committed object=%s records=%zu total=%zu",
				         entity, n, *total);
			/* committed: the caller's cursor moves */
			resync_cursor_clear(cur);
			cur->stamp_ms = next.stamp_ms;
			cur->ids = json_deep_copy(next.ids);
			snprintf(cur->last_id, sizeof cur->last_id, "%s", next.last_id);
		}
		if (!rec)
			break;
	}
out:
	json_decref(batch);
	pager_close(&pg);
	resync_cursor_clear(&next);
	free(soql);
	free(select);
	return rc;
}

enum sfk_err resync_put(const struct resync_out *o, const char *key, const char *value,
                        char *errstr, size_t errlen)
{
	return publish_chunk(o, "Entity", RESYNC_MODE_SNAPSHOT, NULL, key, value, NULL, errstr,
	                     errlen);
}

/* ---- a whole resync job ------------------------------------------------------ */

struct job_ctx {
	struct resync_job *job;
};

static char *job_value(void *ctx, const struct resync_cursor *after)
{
	struct job_ctx *jc = ctx;
	struct resync_job tmp = *jc->job;
	tmp.cur = *after; /* borrowed for the dump */
	return resync_job_value(&tmp, resync_now_ms());
}

enum sfk_err resync_run(struct sf_rest *rest, const struct resync_out *o, struct resync_job *job,
                        size_t chunk, volatile sig_atomic_t *stop, size_t *total, char *errstr,
                        size_t errlen)
{
	char key[NORMALIZE_ENTITY_MAX + 16], filter[128], ts[40];
	struct job_ctx jc = {job};
	enum sfk_err rc;
	size_t n;
	int passes = strcmp(job->reason, "invalid_replay") == 0 ? RESYNC_MAX_PASSES : 1;

	*total = 0;
	snprintf(key, sizeof key, "%s%s", RESYNC_KEY_PREFIX, job->entity);
	if (job->since_ms >= 0) {
		resync_soql_datetime(job->since_ms, ts, sizeof ts);
		snprintf(filter, sizeof filter, "SystemModstamp >= %s", ts);
	} else {
		resync_soql_datetime(job->deletes_since_ms, ts, sizeof ts);
		snprintf(filter, sizeof filter, "IsDeleted = false OR SystemModstamp >= %s", ts);
	}
	/* The job itself first: a crash from here on resumes it. */
	char *v = job_value(&jc, &job->cur);
	rc = resync_put(o, key, v, errstr, errlen);
	free(v);
	if (rc != SFK_OK)
		return rc;
	log_info("resync started object=%s reason=%s replay_id=%lld since_ms=%lld "
	         "deletes_since_ms=%lld resumed_at_ms=%lld",
	         job->entity, job->reason, (long long)job->replay_id, (long long)job->since_ms,
	         (long long)job->deletes_since_ms, (long long)job->cur.stamp_ms);
	for (int pass = 0; pass < passes; pass++) {
		rc = resync_scan(rest, o, job->entity, RESYNC_MODE_SNAPSHOT, filter, &job->cur,
		                 chunk, key, job_value, &jc, stop, &n, errstr, errlen);
		*total += n;
		if (rc != SFK_OK)
			return rc;
		if (stop && *stop) {
			snprintf(errstr, errlen, "resync %s interrupted after %zu records",
			         job->entity, *total);
			return SFK_ERR_BUSY;
		}
		if (n == 0)
			break;
	}
	/* Done: forget the job (and, after an invalid replay id, the channel's
	 * dead checkpoint) in one transaction. */
	if ((rc = o->sink.begin(o->sink.ctx, errstr, errlen)) != SFK_OK)
		return rc;
	rc = o->sink.produce(o->sink.ctx, o->checkpoint_topic, key, NULL, 0, NULL, 0, errstr,
	                     errlen);
	if (rc == SFK_OK && job->channel[0])
		rc = o->sink.produce(o->sink.ctx, o->checkpoint_topic, job->channel, NULL, 0, NULL,
		                     0, errstr, errlen);
	if (rc != SFK_OK) {
		char aerr[256];
		if (o->sink.abort(o->sink.ctx, aerr, sizeof aerr) != SFK_OK)
			log_error("transaction abort failed error=%s", aerr);
		return rc;
	}
	if ((rc = o->sink.commit(o->sink.ctx, errstr, errlen)) != SFK_OK)
		return rc;
	log_info("resync done object=%s reason=%s published=%zu", job->entity, job->reason, *total);
	return SFK_OK;
}
