/*
 * poll.c - polling source (see poll.h). The scanning and publishing is
 * resync_scan's; this file keeps the watermark records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "poll.h"
#include "xmem.h"

struct poll_ctx {
	const char *entity;
};

static int64_t poll_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *poll_value(const char *entity, const struct resync_cursor *c, int64_t now_ms)
{
	json_t *v = json_pack("{s:s,s:o,s:I}", "entity", entity, "cursor", resync_cursor_json(c),
	                      "committed_at", (json_int_t)now_ms);
	char *s = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	if (!s)
		abort(); /* jansson fails only on OOM here */
	return s;
}

int poll_parse(json_t *v, struct resync_cursor *c)
{
	return resync_cursor_parse(json_object_get(v, "cursor"), c);
}

static char *value_fn(void *ctx, const struct resync_cursor *after)
{
	struct poll_ctx *pc = ctx;
	return poll_value(pc->entity, after, poll_now_ms());
}

static void key_of(const char *entity, char *key, size_t size)
{
	snprintf(key, size, "%s%s", POLL_KEY_PREFIX, entity);
}

enum sfk_err poll_start(struct sf_rest *rest, const struct resync_out *o, const char *entity,
                        int earliest, struct resync_cursor *c, char *errstr, size_t errlen)
{
	char key[NORMALIZE_ENTITY_MAX + 16], ts[40];
	struct sf_query *q = NULL;
	struct sf_error e;
	json_t *rec;
	char *soql = NULL, *v = NULL;
	enum sfk_err rc;

	memset(&e, 0, sizeof e);
	resync_cursor_clear(c);
	c->ids = json_array();
	if (!earliest) {
		soql = xasprintf(
		        "SELECT SystemModstamp FROM %s ORDER BY SystemModstamp DESC LIMIT 1",
		        entity);
		if ((rc = sf_query_open(rest, soql, &q, &e)) != SFK_OK ||
		    (rc = sf_query_next(q, &rec, &e)) != SFK_OK) {
			snprintf(errstr, errlen, "poll %s: newest SystemModstamp: %s", entity,
			         e.message);
			goto out;
		}
		int64_t ms = rec ? resync_parse_stamp(json_string_value(
		                           json_object_get(rec, "SystemModstamp")))
		                 : -1;
		sf_query_free(&q);
		free(soql);
		soql = NULL;
		if (ms >= 0) {
			resync_soql_datetime(ms, ts, sizeof ts);
			soql = xasprintf("SELECT Id FROM %s WHERE SystemModstamp = %s ORDER BY Id",
			                 entity, ts);
			if ((rc = sf_query_open(rest, soql, &q, &e)) != SFK_OK) {
				snprintf(errstr, errlen, "poll %s: ids at the watermark: %s",
				         entity, e.message);
				goto out;
			}
			c->stamp_ms = ms;
			while ((rc = sf_query_next(q, &rec, &e)) == SFK_OK && rec) {
				const char *id = json_string_value(json_object_get(rec, "Id"));
				if (!id || strlen(id) >= sizeof c->last_id)
					continue;
				if (json_array_size(c->ids) < RESYNC_TIES_MAX)
					json_array_append_new(c->ids, json_string(id));
				if (strncmp(id, c->last_id, 15) > 0)
					snprintf(c->last_id, sizeof c->last_id, "%s", id);
			}
			if (rc != SFK_OK) {
				snprintf(errstr, errlen, "poll %s: ids at the watermark: %s",
				         entity, e.message);
				goto out;
			}
		}
	}
	key_of(entity, key, sizeof key);
	v = poll_value(entity, c, poll_now_ms());
	rc = resync_put(o, key, v, errstr, errlen);
	if (rc == SFK_OK)
		log_info("poll watermark started object=%s from=%s stamp_ms=%lld", entity,
		         earliest ? "earliest" : "latest", (long long)c->stamp_ms);
out:
	free(v);
	free(soql);
	sf_query_free(&q);
	return rc;
}

enum sfk_err poll_once(struct sf_rest *rest, const struct resync_out *o, const char *entity,
                       struct resync_cursor *c, size_t chunk, volatile sig_atomic_t *stop,
                       size_t *n, char *errstr, size_t errlen)
{
	char key[NORMALIZE_ENTITY_MAX + 16];
	struct poll_ctx pc = {entity};
	key_of(entity, key, sizeof key);
	return resync_scan(rest, o, entity, RESYNC_MODE_POLL, NULL, c, chunk, key, value_fn, &pc,
	                   stop, n, errstr, errlen);
}
