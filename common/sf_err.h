/*
 * sf_err.h - Salesforce error bodies -> project error codes (err.h).
 *
 * REST errors are a JSON array of {"message","errorCode","fields"}; inside
 * sObject Collections results the code is "statusCode"; the OAuth token
 * endpoint answers {"error","error_description"}. Proxies answer HTML. All of
 * them end up in one struct sf_error whose err has a class the caller acts on.
 * Pure functions: no I/O, no global state.
 */
#ifndef SFK_SF_ERR_H
#define SFK_SF_ERR_H

#include <stddef.h>
#include <jansson.h>

#include "err.h"

#define SF_ERR_CODE_MAX   64            /* "FIELD_CUSTOM_VALIDATION_EXCEPTION" fits */
#define SF_ERR_MSG_MAX    512           /* longer messages are truncated */
#define SF_ERR_FIELDS_MAX 256           /* comma-separated field names */
#define SF_ERR_BODY_MAX   (1024 * 1024) /* error bodies larger than this are not parsed */

struct sf_error {
	enum sfk_err err;               /* SFK_OK when there is no error */
	long http_status;               /* 0 for transport errors */
	char code[SF_ERR_CODE_MAX];     /* "MALFORMED_ID", "invalid_grant", "HTTP_502", "" */
	char message[SF_ERR_MSG_MAX];   /* human text; never holds a token or key */
	char fields[SF_ERR_FIELDS_MAX]; /* "Id,Name" or "" */
};

/* Reset e to "no error". */
void sf_error_clear(struct sf_error *e);

/*
 * Map a Salesforce error code (errorCode/statusCode, may be NULL or "") and
 * the HTTP status (0 if unknown) to a project error:
 *   INVALID_SESSION_ID / 401            -> SFK_ERR_AUTH (new token, retry once)
 *   UNABLE_TO_LOCK_ROW                  -> SFK_ERR_LOCK (retriable)
 *   SERVER_UNAVAILABLE / 5xx            -> SFK_ERR_HTTP_5XX (retriable)
 *   REQUEST_LIMIT_EXCEEDED / 429        -> SFK_ERR_LIMIT (retriable, slowly)
 *   NOT_FOUND / 404                     -> SFK_ERR_NOT_FOUND
 *   414 / 413                           -> SFK_ERR_TOO_LARGE
 *   anything else (MALFORMED_ID, INVALID_FIELD, ENTITY_IS_DELETED,
 *   FIELD_CUSTOM_VALIDATION_EXCEPTION, other 4xx) -> SFK_ERR_SF_PERMANENT
 * A known code wins over the status.
 */
enum sfk_err sf_err_map(const char *code, long http_status);

/*
 * Parse a REST error response (status >= 300). content_type may be NULL.
 * The first array element gives code/message/fields (a bare object is also
 * accepted). A non-JSON body (an HTML page from a proxy) keeps the status and
 * says so in the message with a short printable excerpt. Always fills *out
 * and returns out->err (never SFK_OK for status >= 300).
 */
enum sfk_err sf_err_parse_rest(long status, const char *content_type, const char *body, size_t len,
                               struct sf_error *out);

/*
 * One error object {"statusCode"|"errorCode","message","fields"} (borrowed),
 * as found in a Collections result's errors[]. status is the HTTP status of
 * the whole response (200 for Collections). Fills *out, returns out->err.
 */
enum sfk_err sf_err_from_json(const json_t *obj, long status, struct sf_error *out);

/*
 * Token endpoint error {"error","error_description"}. invalid_grant and
 * invalid client/app errors are SFK_ERR_GRANT (fatal: retrying will not help),
 * 5xx SFK_ERR_HTTP_5XX. The message is the description followed by an
 * actionable hint (sf_err_oauth_hint) when one is known. Returns out->err.
 */
enum sfk_err sf_err_parse_oauth(long status, const char *content_type, const char *body, size_t len,
                                struct sf_error *out);

/* What an operator should do about an OAuth error description, or NULL.
 * Static storage. Matching is case-insensitive on known phrases. */
const char *sf_err_oauth_hint(const char *description);

#endif
