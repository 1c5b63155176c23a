/*
 * flywheel.c - build and validate flywheel records (see flywheel.h).
 */
#include "flywheel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

int flywheel_decision_id(const char *workload_id, const char *event_id, char *buf, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t wl;
	size_t pos;
	EVP_MD_CTX *ctx;

	if (!workload_id || !event_id || !*workload_id || !*event_id)
		return -1;
	wl = strlen(workload_id);
	if (wl + 1 + 32 + 1 > len)
		return -1;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -1;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, workload_id, wl) != 1 || EVP_DigestUpdate(ctx, "\n", 1) != 1 ||
	    EVP_DigestUpdate(ctx, event_id, strlen(event_id)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen < 16) {
		EVP_MD_CTX_free(ctx);
		return -1;
	}
	EVP_MD_CTX_free(ctx);
	for (pos = 0; pos < wl; pos++)
		buf[pos] = workload_id[pos] == '.' ? '_' : workload_id[pos];
	buf[pos++] = '-';
	for (int i = 0; i < 16; i++) {
		static const char hex[] = "0123456789abcdef";
		buf[pos++] = hex[md[i] >> 4];
		buf[pos++] = hex[md[i] & 15];
	}
	buf[pos] = '\0';
	return 0;
}

static int nonempty(const char *s)
{
	return s && *s;
}

json_t *flywheel_build(const struct flywheel_in *in, char *errstr, size_t errlen)
{
	char *facts = NULL, *decision = NULL;
	char rid[FLYWHEEL_ID_MAX + 16];
	json_t *rec = NULL;

	if (!nonempty(in->client_id) || !nonempty(in->workload_id) || !nonempty(in->model) ||
	    !nonempty(in->system_prompt) || !nonempty(in->decision_id) || !nonempty(in->event_id) ||
	    !in->lead_id || !in->policy_version) {
		snprintf(errstr, errlen, "flywheel: a required string is missing");
		goto out;
	}
	if (!json_is_object(in->facts) || !json_is_object(in->decision) || in->timestamp < 0) {
		snprintf(errstr, errlen, "flywheel: facts and decision must be objects");
		goto out;
	}
	facts = json_dumps(in->facts, DUMP_FLAGS);
	decision = json_dumps(in->decision, DUMP_FLAGS);
	if (!facts || !decision) {
		snprintf(errstr, errlen, "flywheel: cannot serialize");
		goto out;
	}
	if (snprintf(rid, sizeof rid, "chatcmpl-%s", in->decision_id) >= (int)sizeof rid) {
		snprintf(errstr, errlen, "flywheel: decision id too long");
		goto out;
	}
	rec = json_pack("{s:I, s:s, s:s,"
	                " s:{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:{s:s, s:s, s:s, s:s}},"
	                " s:{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s}, s:s}]}}",
	                "timestamp", (json_int_t)in->timestamp, "client_id", in->client_id,
	                "workload_id", in->workload_id, "request", "model", in->model, "messages",
	                "role", "system", "content", in->system_prompt, "role", "user", "content",
	                facts, "metadata", "decision_id", in->decision_id, "event_id", in->event_id,
	                "lead_id", in->lead_id, "policy_version", in->policy_version, "response",
	                "id", rid, "object", "chat.completion", "created",
	                (json_int_t)in->timestamp, "model", in->model, "choices", "index", 0,
	                "message", "role", "assistant", "content", decision, "finish_reason",
	                "stop");
	if (!rec)
		snprintf(errstr, errlen, "flywheel: cannot build the record (invalid UTF-8?)");
out:
	free(facts);
	free(decision);
	return rec;
}

static void problem(json_t **errors, int *n, const char *text)
{
	(*n)++;
	if (errors) {
		if (!*errors)
			*errors = json_array();
		json_array_append_new(*errors, json_string(text));
	}
}

/* The string at s must parse as a JSON object. */
static void check_object_text(json_t *s, const char *path, json_t **errors, int *n)
{
	char msg[256];
	json_t *j;

	if (!json_is_string(s))
		return; /* the schema reported it */
	j = json_loads(json_string_value(s), JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(j)) {
		snprintf(msg, sizeof msg, "%s: is not a JSON object text", path);
		problem(errors, n, msg);
	}
	json_decref(j);
}

int flywheel_validate(const struct jschema *s, json_t *rec, json_t **errors)
{
	json_t *errs = NULL;
	int n = jschema_validate(s, rec, errors ? &errs : NULL);
	json_t *ts, *created, *msgs;

	if (errs && json_array_size(errs) == 0) {
		json_decref(errs);
		errs = NULL;
	}
	if (errors)
		*errors = errs;
	if (!json_is_object(rec))
		return n;
	ts = json_object_get(rec, "timestamp");
	created = json_object_get(json_object_get(rec, "response"), "created");
	if (json_is_integer(ts) && json_is_integer(created) &&
	    json_integer_value(ts) != json_integer_value(created))
		problem(errors, &n, "$.response.created: differs from $.timestamp");
	msgs = json_object_get(json_object_get(rec, "request"), "messages");
	check_object_text(json_object_get(json_array_get(msgs, 1), "content"),
	                  "$.request.messages[1].content", errors, &n);
	check_object_text(
	        json_object_get(
	                json_object_get(
	                        json_array_get(json_object_get(json_object_get(rec, "response"),
	                                                       "choices"),
	                                       0),
	                        "message"),
	                "content"),
	        "$.response.choices[0].message.content", errors, &n);
	return n;
}

char *flywheel_dump(json_t *rec, size_t *len)
{
	char *s = json_dumps(rec, DUMP_FLAGS);

	if (s && strlen(s) > FLYWHEEL_RECORD_MAX) {
		free(s);
		s = NULL;
	}
	if (s && len)
		*len = strlen(s);
	return s;
}
