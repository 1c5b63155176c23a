/*
 * sf_rest.h - Salesforce REST API client over one pooled libcurl setup.
 *
 * TLS is always verified (a private CA comes in through ca_file); connections,
 * DNS and TLS sessions are shared by a small pool of easy handles (keep-alive)
 * usable from any thread. Every request gets a bearer token from sf_token,
 * retries retriable failures (5xx, transport, timeouts, UNABLE_TO_LOCK_ROW,
 * REQUEST_LIMIT_EXCEEDED) with jittered exponential backoff inside a bounded
 * total time, and retries a 401 INVALID_SESSION_ID once with a fresh token.
 * Every write carries "Sforce-Call-Options: client=<call_client>" so the
 * bridge can recognise its own echoes. Sforce-Limit-Info feeds sf_quota.
 */
#ifndef SFK_SF_REST_H
#define SFK_SF_REST_H

#include <stddef.h>
#include <jansson.h>

#include "err.h"
#include "sf_err.h"
#include "sf_quota.h"
#include "sf_token.h"

#define SF_REST_RESPONSE_MAX   (32u * 1024 * 1024) /* default response size cap */
#define SF_REST_COLLECTION_MAX 200                 /* records per sObject Collections call */
#define SF_REST_URL_MAX        4096                /* nextRecordsUrl and friends */
#define SF_REST_CTYPE_MAX      128

struct sf_rest_conf {
	struct sf_token_cache *tokens; /* borrowed, required */
	struct sf_quota *quota;        /* borrowed, may be NULL (no governor) */
	const char *api_version;       /* SF_API_VERSION "62.0" (a leading v is accepted) */
	const char *ca_file;           /* SF_CA_FILE -> CURLOPT_CAINFO, may be NULL */
	const char *call_client;       /* SFK_CLIENT_ID for Sforce-Call-Options; required */
	const char *redis_url;         /* describe cache; NULL = no cache */
	long describe_ttl_s;           /* 0 = 3600 */
	long connect_timeout_ms;       /* 0 = 5000 */
	long timeout_ms;               /* one attempt; 0 = 30000 */
	long retry_base_ms;            /* first backoff; 0 = 200 */
	long retry_max_ms;             /* cap of one backoff; 0 = 10000 */
	long retry_total_ms;           /* budget for all attempts of one call; 0 = 60000 */
	size_t max_response_bytes;     /* 0 = SF_REST_RESPONSE_MAX */
	int pool_size;                 /* idle easy handles kept; 0 = 8 */
	int query_batch_size; /* Sforce-Query-Options batchSize (200..2000); 0 = server default */
	int no_reuse;         /* benchmarks only: a new connection per request */
};

struct sf_rest;

/* Copies conf. Returns a new client (sf_rest_free) or NULL with errstr. */
struct sf_rest *sf_rest_new(const struct sf_rest_conf *conf, char *errstr, size_t errlen);
/* Accepts NULL; clears *r. */
void sf_rest_free(struct sf_rest **r);

/* One HTTP exchange's result. */
struct sf_response {
	long status; /* last HTTP status (0: transport failure) */
	char *body;  /* NUL-terminated, owned; may be NULL */
	size_t len;
	char content_type[SF_REST_CTYPE_MAX];
	int attempts; /* HTTP attempts made (retries + 1) */
};
/* Frees the body and zeroes *resp. NULL ok. */
void sf_response_clear(struct sf_response *resp);

/* Request flags */
#define SF_REQ_ESSENTIAL  0x1u /* a write the quota governor must not delay or pause */
#define SF_REQ_NO_RETRY   0x2u /* one attempt only (the 401 retry still applies) */
#define SF_REQ_ACCEPT_CSV 0x4u /* "Accept: text/csv" (Bulk results) instead of JSON */

/*
 * The primitive everything else uses. path: "/services/..." (as in
 * nextRecordsUrl), "services/..." (Bulk contentUrl) or relative to
 * /services/data/v<ver>/ ("sobjects/Lead/describe"). object: label for
 * metrics ("Lead", "query", "composite"; never an id). body may be NULL.
 * POST is treated as non-idempotent: it is retried only after failures that
 * prove the request was not processed (connect failure, UNABLE_TO_LOCK_ROW,
 * REQUEST_LIMIT_EXCEEDED, 503). Writes consult the quota governor first
 * (SFK_ERR_LIMIT "quota governor paused non-essential writes" when paused).
 * Returns SFK_OK for 2xx (out has the body), else the error (detail in err,
 * out still has the last status and body). Caller clears out.
 */
enum sfk_err sf_rest_request(struct sf_rest *r, const char *method, const char *path,
                             const char *object, const char *content_type, const char *body,
                             size_t body_len, unsigned flags, struct sf_response *out,
                             struct sf_error *err);

/* The API base path "/services/data/v62.0", borrowed. */
const char *sf_rest_base(const struct sf_rest *r);
/* Bytes of a query URL before the q= value ("https://host/services/data/v62.0/query?q="),
 * from the last instance URL seen (a 64-byte guess before the first request):
 * the uri_overhead argument of soql_build_in_ids(). */
size_t sf_rest_query_uri_overhead(struct sf_rest *r);

/*
 * Query iterator over every page (nextRecordsUrl). A SOQL text whose query
 * URI would exceed SOQL_URI_MAX fails up front with SFK_ERR_TOO_LARGE (build
 * IN-lists with soql_build_in_ids). Build soql with soql_build.h helpers.
 */
struct sf_query;
/* Runs the first page. *q is a new iterator (sf_query_free) on SFK_OK. */
enum sfk_err sf_query_open(struct sf_rest *r, const char *soql, struct sf_query **q,
                           struct sf_error *err);
/* Next record (borrowed, valid until the next call or sf_query_free), fetching
 * the next page when needed; *rec = NULL at the end. */
enum sfk_err sf_query_next(struct sf_query *q, json_t **rec, struct sf_error *err);
/* totalSize of the whole result. */
long long sf_query_total(const struct sf_query *q);
/* Pages fetched so far. */
int sf_query_pages(const struct sf_query *q);
void sf_query_free(struct sf_query **q); /* NULL ok */

/*
 * sObject rows. sobject must match [A-Za-z0-9_]+, id must be a valid record
 * id (sfid) or the call fails with SFK_ERR_INVALID before any request.
 * fields: comma-separated field list for GET, or NULL for all.
 * *out: new reference.
 */
enum sfk_err sf_rest_get(struct sf_rest *r, const char *sobject, const char *id, const char *fields,
                         json_t **out, struct sf_error *err);
/* PATCH fields (borrowed) onto the record. flags: SF_REQ_ESSENTIAL. */
enum sfk_err sf_rest_update(struct sf_rest *r, const char *sobject, const char *id, json_t *fields,
                            unsigned flags, struct sf_error *err);
/* POST a new record; id_out gets its 18-char id. */
enum sfk_err sf_rest_create(struct sf_rest *r, const char *sobject, json_t *fields, char id_out[19],
                            struct sf_error *err);

/* Per-record outcome of a Collections call, in request order. */
struct sf_record_result {
	int success;
	char id[19];           /* "" when Salesforce gave none */
	struct sf_error error; /* first error when !success (err, code, message, fields) */
};

/*
 * PATCH /composite/sobjects with records (borrowed JSON array, 1..200 objects
 * each with "attributes":{"type":..} and "id"). allOrNone as given (false is
 * the normal choice). results: caller's array of json_array_size(records)
 * entries, filled in request order. When allOrNone is false, records that
 * failed with a retriable per-record error (UNABLE_TO_LOCK_ROW...) are sent
 * again (only those) inside the retry budget. Returns SFK_OK when the call
 * itself succeeded: check each results[i].success; otherwise the call's error
 * (no per-record results). flags: SF_REQ_ESSENTIAL.
 */
enum sfk_err sf_rest_collection_update(struct sf_rest *r, json_t *records, int all_or_none,
                                       unsigned flags, struct sf_record_result *results,
                                       struct sf_error *err);

/* GET sobjects/<sobject>/describe, cached in Redis (sfk:describe:<ver>:<sobject>)
 * for describe_ttl_s. *out: new reference. */
enum sfk_err sf_rest_describe(struct sf_rest *r, const char *sobject, json_t **out,
                              struct sf_error *err);

/* POST actions/standard/emailSimple {"inputs": inputs} (inputs borrowed, an
 * array of objects). *out (may be NULL): new reference to the response array.
 * Returns SFK_ERR_SF_PERMANENT if any output has isSuccess false (detail in
 * err from its errors[]). Never retried after a possibly-processed failure. */
enum sfk_err sf_rest_email_simple(struct sf_rest *r, json_t *inputs, json_t **out,
                                  struct sf_error *err);

/* GET /limits. *out: new reference. Also updates the quota from DailyApiRequests. */
enum sfk_err sf_rest_limits(struct sf_rest *r, json_t **out, struct sf_error *err);

#endif
