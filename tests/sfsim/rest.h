/*
 * rest.h - the REST API under /services/data/vXX.X/: query (+ pagination),
 * sobjects rows, describe, sObject Collections, limits, Simple Email Action,
 * Bulk API 2.0 ingest. Split by resource: rest.c (routing, sobjects,
 * collections, limits), rest_query.c, rest_email.c, rest_bulk.c.
 */
#ifndef SFK_SIM_REST_H
#define SFK_SIM_REST_H

#include <stddef.h>

struct sim;
struct sim_req;
struct sim_resp;

/* Most records per sObject Collections request. */
#define REST_COLLECTION_MAX 200

/* Register the /services/data routes and allocate REST state. 0 or -1. */
int rest_init(struct sim *sim);
void rest_fini(struct sim *sim);

/* changeOrigin for a REST write: "com/salesforce/api/rest/<ver>;client=<id>"
 * from Sforce-Call-Options, or "com/salesforce/api/rest/<ver>" without. */
void rest_origin(const struct sim_req *req, char *out, size_t size);

/* Internal entry points of the split files (rest.c dispatches). */
void rest_query(struct sim *sim, const struct sim_req *req, struct sim_resp *resp,
                const char *rest_path);
void rest_email_simple(struct sim *sim, const struct sim_req *req, struct sim_resp *resp);
void rest_bulk(struct sim *sim, const struct sim_req *req, struct sim_resp *resp,
               const char *rest_path);
void rest_query_fini(struct sim *sim);
void rest_bulk_fini(struct sim *sim);

#endif
