/*
 * fuzz_sf_parse.c - parsing what Salesforce answers besides data: the
 * Sforce-Limit-Info header (common/sf_quota.c) and REST / OAuth error bodies
 * (common/sf_err.c). The first byte picks the parser and a status, the rest
 * is the header value or body. Invariants: a parsed limit has used >= 0 and
 * limit > 0; an error body always yields an error (never SFK_OK) with
 * NUL-terminated code/message/fields.
 */
#include <string.h>

#include "fuzz.h"
#include "sf_err.h"
#include "sf_quota.h"

#define HEADER_MAX 8192 /* libcurl hands header lines of up to CURL_MAX_HTTP_HEADER */

static const long statuses[] = {400, 401, 403, 404, 413, 429, 500, 502, 503, 302};

static void check_error(enum sfk_err rc, const struct sf_error *e)
{
	FUZZ_CHECK(rc != SFK_OK);
	FUZZ_CHECK(e->err == rc);
	FUZZ_CHECK(memchr(e->code, '\0', sizeof e->code) != NULL);
	FUZZ_CHECK(memchr(e->message, '\0', sizeof e->message) != NULL);
	FUZZ_CHECK(memchr(e->fields, '\0', sizeof e->fields) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data + 1;
	size_t len = size - 1;
	long status;
	const char *ctype;
	struct sf_error e;

	if (size < 1)
		return 0;
	status = statuses[(data[0] >> 2) % (sizeof statuses / sizeof statuses[0])];
	ctype = (data[0] & 0x80) ? "text/html" : "application/json;charset=UTF-8";
	switch (data[0] & 3) {
	case 0: {
		char hdr[HEADER_MAX + 1];
		long long used = -7, limit = -7;
		if (len > HEADER_MAX)
			len = HEADER_MAX;
		memcpy(hdr, body, len);
		hdr[len] = '\0';
		if (sf_quota_parse_limit_info(hdr, &used, &limit) == 0)
			FUZZ_CHECK(used >= 0 && limit > 0);
		break;
	}
	case 1: check_error(sf_err_parse_rest(status, ctype, body, len, &e), &e); break;
	case 2: check_error(sf_err_parse_oauth(status, ctype, body, len, &e), &e); break;
	default: {
		json_t *j = json_loadb(body, len, 0, NULL);
		if (json_is_object(j))
			(void)sf_err_from_json(j, 200, &e);
		json_decref(j);
		break;
	}
	}
	return 0;
}
