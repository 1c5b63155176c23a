#include "sf_err.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define EXCERPT_MAX 120 /* bytes of a non-JSON body quoted in a message */

void sf_error_clear(struct sf_error *e)
{
	memset(e, 0, sizeof *e);
	e->err = SFK_OK;
}

static void copy(char *dst, size_t cap, const char *src)
{
	if (!src)
		src = "";
	snprintf(dst, cap, "%s", src);
}

/* Codes whose meaning does not depend on the HTTP status. */
static const struct {
	const char *code;
	enum sfk_err err;
} code_map[] = {
        {"INVALID_SESSION_ID", SFK_ERR_AUTH},
        {"UNABLE_TO_LOCK_ROW", SFK_ERR_LOCK},
        {"SERVER_UNAVAILABLE", SFK_ERR_HTTP_5XX},
        {"REQUEST_LIMIT_EXCEEDED", SFK_ERR_LIMIT},
        {"NOT_FOUND", SFK_ERR_NOT_FOUND},
        /* With allOrNone=true a good record is rolled back because another
         * one failed: the record itself can be sent again. */
        {"ALL_OR_NONE_OPERATION_ROLLED_BACK", SFK_ERR_BUSY},
};

enum sfk_err sf_err_map(const char *code, long http_status)
{
	if (code && *code)
		for (size_t i = 0; i < sizeof code_map / sizeof code_map[0]; i++)
			if (strcmp(code, code_map[i].code) == 0)
				return code_map[i].err;
	if (http_status >= 500)
		return SFK_ERR_HTTP_5XX;
	switch (http_status) {
	case 401: return SFK_ERR_AUTH;
	case 404: return SFK_ERR_NOT_FOUND;
	case 408: return SFK_ERR_TIMEOUT;
	case 413:
	case 414:
	case 431: return SFK_ERR_TOO_LARGE;
	case 429: return SFK_ERR_LIMIT;
	default: return SFK_ERR_SF_PERMANENT;
	}
}

static void join_fields(const json_t *fields, char *dst, size_t cap)
{
	size_t i, off = 0;
	json_t *f;
	dst[0] = '\0';
	if (!json_is_array(fields))
		return;
	json_array_foreach(fields, i, f)
	{
		if (!json_is_string(f))
			continue;
		int n = snprintf(dst + off, cap - off, "%s%s", off ? "," : "",
		                 json_string_value(f));
		if (n < 0 || (size_t)n >= cap - off) {
			dst[off] = '\0'; /* drop a field that does not fit whole */
			return;
		}
		off += (size_t)n;
	}
}

enum sfk_err sf_err_from_json(const json_t *obj, long status, struct sf_error *out)
{
	sf_error_clear(out);
	out->http_status = status;
	const json_t *code = json_object_get(obj, "errorCode");
	if (!json_is_string(code))
		code = json_object_get(obj, "statusCode");
	copy(out->code, sizeof out->code, json_string_value(code));
	copy(out->message, sizeof out->message, json_string_value(json_object_get(obj, "message")));
	join_fields(json_object_get(obj, "fields"), out->fields, sizeof out->fields);
	out->err = sf_err_map(out->code, status);
	/* A Collections record error arrives inside a 200: never call it OK. */
	if (out->err == SFK_OK)
		out->err = SFK_ERR_SF_PERMANENT;
	return out->err;
}

/* A short printable excerpt of a body for messages (HTML from a proxy). */
static void excerpt(const char *body, size_t len, char *dst, size_t cap)
{
	size_t o = 0;
	int space = 0;
	for (size_t i = 0; i < len && o + 1 < cap && o < EXCERPT_MAX; i++) {
		unsigned char c = (unsigned char)body[i];
		if (isspace(c)) {
			space = 1;
			continue;
		}
		if (space && o > 0 && o + 2 < cap)
			dst[o++] = ' ';
		space = 0;
		dst[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[o] = '\0';
}

static json_t *load(const char *body, size_t len)
{
	if (!body || len == 0 || len > SF_ERR_BODY_MAX)
		return NULL;
	return json_loadb(body, len, JSON_DECODE_ANY, NULL);
}

static void non_json(long status, const char *content_type, const char *body, size_t len,
                     struct sf_error *out)
{
	char ex[EXCERPT_MAX + 8];
	excerpt(body ? body : "", body ? len : 0, ex, sizeof ex);
	snprintf(out->code, sizeof out->code, "HTTP_%ld", status);
	snprintf(out->message, sizeof out->message,
	         "HTTP %ld with a non-JSON body (content-type %s; from a proxy?): %s", status,
	         content_type && *content_type ? content_type : "unknown", ex[0] ? ex : "(empty)");
}

enum sfk_err sf_err_parse_rest(long status, const char *content_type, const char *body, size_t len,
                               struct sf_error *out)
{
	sf_error_clear(out);
	out->http_status = status;
	json_t *j = load(body, len);
	const json_t *first = NULL;
	if (json_is_array(j) && json_array_size(j) > 0)
		first = json_array_get(j, 0);
	else if (json_is_object(j))
		first = j;
	if (json_is_object(first) &&
	    (json_object_get(first, "errorCode") || json_object_get(first, "statusCode") ||
	     json_object_get(first, "message"))) {
		sf_err_from_json(first, status, out);
	} else if (j) {
		snprintf(out->code, sizeof out->code, "HTTP_%ld", status);
		snprintf(out->message, sizeof out->message,
		         "HTTP %ld with a JSON body that is not a Salesforce error array", status);
	} else {
		non_json(status, content_type, body, len, out);
	}
	json_decref(j);
	out->err = sf_err_map(out->code, status);
	return out->err;
}

static const struct {
	const char *phrase;
	const char *hint;
} oauth_hints[] = {
        {"hasn't approved this consumer",
         "pre-authorize the user on the connected app (OAuth policies: Admin approved users "
         "are pre-authorized, then add the user's profile or a permission set); also check "
         "that SF_LOGIN_URL matches the org type (login vs test)"},
        {"audience is invalid", "SF_LOGIN_URL (the JWT aud) must be https://login.salesforce.com "
                                "or https://test.salesforce.com (sandbox); put a My Domain host "
                                "in SF_TOKEN_URL, not in SF_LOGIN_URL"},
        {"audience validation failed",
         "SF_LOGIN_URL (the JWT aud) must be https://login.salesforce.com or "
         "https://test.salesforce.com (sandbox); put a My Domain host in SF_TOKEN_URL, not in "
         "SF_LOGIN_URL"},
        {"expired authorization code",
         "the assertion's exp was rejected: check this host's clock (NTP) and that exp is in "
         "seconds, not milliseconds"},
        {"invalid assertion",
         "the signature did not verify: SF_PRIVATE_KEY_PATH must hold the key whose "
         "certificate is uploaded to the connected app (Use digital signatures)"},
        {"client identifier invalid", "SF_CLIENT_ID must be the connected app's consumer key"},
        {"invalid_client_id", "SF_CLIENT_ID must be the connected app's consumer key"},
        {"user is not admin approved",
         "pre-authorize the user on the connected app (profile or permission set)"},
        {"grant type not supported",
         "the token endpoint does not accept the JWT bearer grant: check SF_TOKEN_URL"},
};

const char *sf_err_oauth_hint(const char *description)
{
	if (!description)
		return NULL;
	for (size_t i = 0; i < sizeof oauth_hints / sizeof oauth_hints[0]; i++)
		if (strcasestr(description, oauth_hints[i].phrase))
			return oauth_hints[i].hint;
	return NULL;
}

enum sfk_err sf_err_parse_oauth(long status, const char *content_type, const char *body, size_t len,
                                struct sf_error *out)
{
	sf_error_clear(out);
	out->http_status = status;
	json_t *j = load(body, len);
	const char *error = json_string_value(json_object_get(j, "error"));
	const char *desc = json_string_value(json_object_get(j, "error_description"));
	if (!error) {
		non_json(status, content_type, body, len, out);
		out->err = status >= 500 ? SFK_ERR_HTTP_5XX : SFK_ERR_GRANT;
		goto out;
	}
	copy(out->code, sizeof out->code, error);
	const char *hint = sf_err_oauth_hint(desc);
	if (!hint)
		hint = sf_err_oauth_hint(error);
	snprintf(out->message, sizeof out->message, "token endpoint refused the JWT: %s: %s%s%s",
	         error, desc ? desc : "(no description)", hint ? " -> " : "", hint ? hint : "");
	if (status >= 500 || strcmp(error, "server_error") == 0 ||
	    strcmp(error, "temporarily_unavailable") == 0)
		out->err = SFK_ERR_HTTP_5XX;
	else if (strcmp(error, "unsupported_grant_type") == 0)
		out->err = SFK_ERR_CONFIG;
	else
		out->err = SFK_ERR_GRANT;
out:
	json_decref(j);
	return out->err;
}
