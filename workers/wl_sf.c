/*
 * wl_sf.c - what the workloads share for reading Salesforce (wl_sf.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sf_rest.h"
#include "sfid.h"
#include "soql_build.h"
#include "wl_sf.h"
#include "xmem.h"

#define WL_SOQL_ERR_MAX 256

const char *wl_str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

int wl_id_of(const char *s, const char *object, char out[19])
{
	out[0] = '\0';
	if (!s || sfid_to18(s, out) < 0) {
		out[0] = '\0';
		return 0;
	}
	const char *obj = sfid_object(out);
	if (object && (!obj || strcmp(obj, object) != 0)) {
		out[0] = '\0';
		return 0;
	}
	return 1;
}

void wl_set_add(json_t *set, const char *id)
{
	if (id && id[0])
		json_object_set_new(set, id, json_true());
}

const char **wl_set_keys(json_t *set, size_t *n)
{
	const char **v = xmalloc((json_object_size(set) + 1) * sizeof(*v));
	const char *k;
	json_t *val;
	*n = 0;
	json_object_foreach(set, k, val)
	{
		(void)val;
		v[(*n)++] = k;
	}
	return v;
}

enum sfk_err wl_query_ids(struct wl_ctx *ctx, const char *head, const char *tail,
                          const char *const *ids, size_t n, json_t *rows, json_t *by_id,
                          struct sf_error *err)
{
	struct soql_list l = {0};
	char errstr[WL_SOQL_ERR_MAX];
	enum sfk_err rc = SFK_OK;
	if (n == 0)
		return SFK_OK;
	if (!ctx->sf) {
		snprintf(err->message, sizeof(err->message), "no Salesforce client");
		return err->err = SFK_ERR_INTERNAL;
	}
	rc = soql_build_in_ids(head, tail ? tail : "", ids, n, sf_rest_query_uri_overhead(ctx->sf),
	                       0, &l, errstr, sizeof(errstr));
	if (rc != SFK_OK) {
		snprintf(err->message, sizeof(err->message), "%s", errstr);
		err->err = rc;
		goto out;
	}
	for (size_t i = 0; i < l.n && rc == SFK_OK; i++) {
		struct sf_query *q = NULL;
		json_t *rec;
		rc = sf_query_open(ctx->sf, l.q[i], &q, err);
		while (rc == SFK_OK && (rc = sf_query_next(q, &rec, err)) == SFK_OK && rec) {
			char id[19];
			if (rows)
				json_array_append(rows, rec);
			if (by_id && wl_id_of(wl_str(rec, "Id"), NULL, id))
				json_object_set(by_id, id, rec);
		}
		sf_query_free(&q);
	}
out:
	soql_list_free(&l);
	return rc;
}

enum sfk_err wl_query_set(struct wl_ctx *ctx, const char *head, json_t *set, json_t *by_id,
                          json_t *rows, struct sf_error *err)
{
	size_t n;
	const char **ids = wl_set_keys(set, &n);
	enum sfk_err rc = wl_query_ids(ctx, head, "", ids, n, rows, by_id, err);
	free(ids);
	return rc;
}
