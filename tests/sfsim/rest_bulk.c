/*
 * rest_bulk.c - Bulk API 2.0 ingest (jobs/ingest). Not implemented yet:
 * every call answers 404 NOT_FOUND.
 */
#include "http.h"
#include "org.h"
#include "rest.h"

void rest_bulk(struct sim *sim, const struct sim_req *req, struct sim_resp *resp,
               const char *rest_path)
{
	(void)sim;
	(void)req;
	(void)rest_path;
	sim_resp_error(resp, 404, "NOT_FOUND", "The requested resource does not exist", NULL);
}

void rest_bulk_fini(struct sim *sim)
{
	(void)sim;
}
