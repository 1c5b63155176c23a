/*
 * wl_sf.h - what the workloads share for reading Salesforce: typed ids, id
 * sets, and batched `... WHERE Id IN (...)` queries over the REST client
 * (split to fit the URI, every page followed), rows collected by Id.
 */
#ifndef SFK_WL_SF_H
#define SFK_WL_SF_H

#include <stddef.h>

#include <jansson.h>

#include "sf_err.h"
#include "workload.h"

/* o[k] when it is a string (borrowed), else NULL. */
const char *wl_str(json_t *o, const char *k);

/* s as an 18-char id into out when it is a valid id (and, object non-NULL, an
 * id of that object: "Lead", "Task"...); 1, else 0 with out "". */
int wl_id_of(const char *s, const char *object, char out[19]);

/* Add id to set (an object used as a set of ids); NULL/"" ignored. */
void wl_set_add(json_t *set, const char *id);

/* The ids of set, borrowed from it (valid while set is unchanged); the caller
 * frees the array. *n = how many. */
const char **wl_set_keys(json_t *set, size_t *n);

/*
 * Run "<head>(<ids>)<tail>" over ids[0..n) (as many queries as the URI needs)
 * and append every row to rows (array, may be NULL) and set by_id[Id (18)] =
 * row (object, may be NULL). SFK_OK (also for n == 0) or the error, with err
 * filled.
 */
enum sfk_err wl_query_ids(struct wl_ctx *ctx, const char *head, const char *tail,
                          const char *const *ids, size_t n, json_t *rows, json_t *by_id,
                          struct sf_error *err);

/* wl_query_ids over the ids of set (no tail). */
enum sfk_err wl_query_set(struct wl_ctx *ctx, const char *head, json_t *set, json_t *by_id,
                          json_t *rows, struct sf_error *err);

#endif
