/*
 * resync.c - entity resync after GAP_OVERFLOW (see resync.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "resync.h"
#include "xmem.h"

static int api_name(const char *s)
{
	if (!s || !isalpha((unsigned char)*s))
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return 0;
	return 1;
}

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

enum sfk_err resync_entity(struct sf_rest *rest, struct publisher *p, const char *entity,
                           int64_t replay_id, size_t chunk, volatile sig_atomic_t *stop,
                           size_t *total, char *errstr, size_t errlen)
{
	json_t *describe = NULL, *batch = NULL, *rec;
	struct sf_query *q = NULL;
	struct sf_error e;
	char *soql = NULL;
	enum sfk_err rc;
	size_t n;

	*total = 0;
	if (chunk == 0)
		chunk = RESYNC_DEFAULT_CHUNK;
	memset(&e, 0, sizeof e);
	if ((rc = sf_rest_describe(rest, entity, &describe, &e)) != SFK_OK) {
		snprintf(errstr, errlen, "resync %s: describe: %s", entity, e.message);
		goto out;
	}
	if (!(soql = resync_soql(entity, describe, errstr, errlen))) {
		rc = SFK_ERR_TOO_LARGE;
		goto out;
	}
	if ((rc = sf_query_open(rest, soql, &q, &e)) != SFK_OK) {
		snprintf(errstr, errlen, "resync %s: query: %s", entity, e.message);
		goto out;
	}
	log_info("resync started object=%s replay_id=%lld records=%lld", entity,
	         (long long)replay_id, sf_query_total(q));
	batch = json_array();
	for (;;) {
		if (stop && *stop)
			break;
		if ((rc = sf_query_next(q, &rec, &e)) != SFK_OK) {
			snprintf(errstr, errlen, "resync %s: query page: %s", entity, e.message);
			goto out;
		}
		if (rec)
			json_array_append(batch, rec); /* rec is borrowed until the next call */
		if (json_array_size(batch) == chunk || (!rec && json_array_size(batch) > 0)) {
			rc = publish_snapshot(p, entity, replay_id, batch, &n, errstr, errlen);
			if (rc != SFK_OK)
				goto out;
			*total += n;
			json_array_clear(batch);
		}
		if (!rec)
			break;
	}
	log_info("resync done object=%s replay_id=%lld published=%zu stopped=%d", entity,
	         (long long)replay_id, *total, stop && *stop ? 1 : 0);
out:
	json_decref(batch);
	sf_query_free(&q);
	free(soql);
	json_decref(describe);
	return rc;
}
