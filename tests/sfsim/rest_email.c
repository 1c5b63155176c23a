/*
 * rest_email.c - POST /actions/standard/emailSimple. Nothing is mailed; the
 * org records the send the way Enhanced Email does: a closed Task
 * (TaskSubtype Email, WhoId = the recipient Lead), an EmailMessage (Status
 * '3' Sent, Incoming false, ActivityId -> the Task) and EmailMessageRelation
 * rows (FromAddress = the sender, ToAddress = each recipient), all in one
 * transaction, so first-response detection sees what Salesforce would emit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "org.h"
#include "rest.h"
#include "xmem.h"

/* Recipients per input (current doc: 150 combined). */
#define EMAIL_MAX_RECIPIENTS 150

static json_t *action_result(json_t *errors)
{
	int ok = errors == NULL;
	return json_pack("{s:s,s:o,s:b,s:n}", "actionName", "emailSimple", "errors",
	                 errors ? errors : json_null(), "isSuccess", ok, "outputValues");
}

static json_t *action_error(const char *code, const char *msg)
{
	return json_pack("[{s:s,s:s,s:[]}]", "statusCode", code, "message", msg, "fields");
}

/* Collect recipient addresses from the several input spellings. */
static json_t *recipients(json_t *in)
{
	json_t *out = json_array();
	static const char *const keys[] = {"emailAddresses", "recipientAddresses"};
	for (size_t k = 0; k < 2; k++) {
		json_t *v = json_object_get(in, keys[k]);
		size_t i;
		json_t *e;
		if (json_is_string(v)) {
			const char *p = json_string_value(v);
			while (*p) {
				while (*p == ' ' || *p == ',' || *p == ';')
					p++;
				size_t n = strcspn(p, ",; ");
				if (n)
					json_array_append_new(out, json_stringn(p, n));
				p += n;
			}
		} else if (json_is_array(v)) {
			json_array_foreach(v, i, e) if (json_is_string(e))
			        json_array_append(out, e);
		}
	}
	json_t *arr = json_object_get(in, "emailAddressesArray");
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e) if (json_is_string(e)) json_array_append(out, e);
	return out;
}

/* Live Lead id by Email (case-insensitive), lock held; NULL if none. */
static const char *lead_by_email(struct sim *sim, const char *email)
{
	json_t *leads = org_records_locked(sim, "Lead");
	size_t i;
	json_t *l;
	json_array_foreach(leads, i, l)
	{
		json_t *em = json_object_get(l, "Email");
		if (json_is_string(em) && strcasecmp(json_string_value(em), email) == 0)
			return json_string_value(json_object_get(l, "Id"));
	}
	return NULL;
}

static json_t *send_one(struct sim *sim, struct org_txn *txn, json_t *in)
{
	struct sim_error err;
	char task_id[SIM_ID_BUF], em_id[SIM_ID_BUF], rel_id[SIM_ID_BUF];
	char now[40], date[16];
	json_t *to = NULL, *errors = NULL;
	json_t *body = json_object_get(in, "emailBody");
	json_t *subject = json_object_get(in, "emailSubject");
	const char *recipient_id = json_string_value(json_object_get(in, "recipientId"));
	const char *related = json_string_value(json_object_get(in, "relatedRecordId"));
	const char *lead = NULL;

	memset(&err, 0, sizeof(err));
	if (!json_is_string(body)) {
		errors = action_error("REQUIRED_FIELD_MISSING",
		                      "Missing required input parameter: emailBody");
		goto out;
	}
	to = recipients(in);
	if (recipient_id && strncmp(recipient_id, "00Q", 3) == 0) {
		json_t *rec = org_lookup_locked(sim, recipient_id);
		if (!rec || json_is_true(json_object_get(rec, "IsDeleted"))) {
			errors = action_error("INVALID_CROSS_REFERENCE_KEY",
			                      "invalid cross reference id");
			goto out;
		}
		lead = json_string_value(json_object_get(rec, "Id"));
		json_t *em = json_object_get(rec, "Email");
		if (json_array_size(to) == 0 && json_is_string(em))
			json_array_append(to, em);
	}
	if (json_array_size(to) == 0) {
		errors = action_error("REQUIRED_FIELD_MISSING",
		                      "Missing required input parameter: emailAddresses");
		goto out;
	}
	if (json_array_size(to) > EMAIL_MAX_RECIPIENTS) {
		errors = action_error("LIMIT_EXCEEDED", "Too many recipients");
		goto out;
	}
	if (!lead)
		lead = lead_by_email(sim, json_string_value(json_array_get(to, 0)));

	json_t *user = org_lookup_locked(sim, txn->user_id);
	const char *from = json_string_value(json_object_get(user, "Email"));
	const char *from_name = json_string_value(json_object_get(user, "Name"));
	sim_format_datetime(txn->ts_ms - txn->ts_ms % 1000, now, sizeof(now));
	snprintf(date, sizeof(date), "%.10s", now);
	char *subj =
	        xasprintf("Email: %s", json_is_string(subject) ? json_string_value(subject) : "");
	json_t *task = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "Subject", subj, "Status",
	                         "Completed", "Priority", "Normal", "TaskSubtype", "Email", "Type",
	                         "Email", "ActivityDate", date, "OwnerId", txn->user_id);
	free(subj);
	if (lead)
		json_object_set_new(task, "WhoId", json_string(lead));
	if (related && strncmp(related, "00Q", 3) != 0)
		json_object_set_new(task, "WhatId", json_string(related));
	int rc = org_create_locked(sim, txn, "Task", task, task_id, &err);
	json_decref(task);
	if (rc < 0)
		goto fail;

	/* ToAddress text joins with "; " like Salesforce shows it. */
	size_t i;
	json_t *a;
	size_t tolen = 1;
	json_array_foreach(to, i, a) tolen += json_string_length(a) + 2;
	char *toaddr = xcalloc(1, tolen);
	json_array_foreach(to, i, a)
	{
		if (i)
			strncat(toaddr, "; ", tolen - strlen(toaddr) - 1);
		strncat(toaddr, json_string_value(a), tolen - strlen(toaddr) - 1);
	}
	json_t *em =
	        json_pack("{s:s,s:O,s:s,s:s?,s:s,s:b,s:s,s:s,s:s}", "Subject",
	                  json_is_string(subject) ? json_string_value(subject) : "", "TextBody",
	                  body, "FromAddress", from ? from : "noreply@sfk-sim.test", "FromName",
	                  from_name, "ToAddress", toaddr, "Incoming", 0, "Status", "3",
	                  "MessageDate", now, "ActivityId", task_id);
	free(toaddr);
	if (related && strncmp(related, "00Q", 3) != 0)
		json_object_set_new(em, "RelatedToId", json_string(related));
	rc = org_create_locked(sim, txn, "EmailMessage", em, em_id, &err);
	json_decref(em);
	if (rc < 0)
		goto fail;

	json_t *rel =
	        json_pack("{s:s,s:s,s:s,s:s}", "EmailMessageId", em_id, "RelationId", txn->user_id,
	                  "RelationAddress", from ? from : "", "RelationType", "FromAddress");
	rc = org_create_locked(sim, txn, "EmailMessageRelation", rel, rel_id, &err);
	json_decref(rel);
	if (rc < 0)
		goto fail;
	json_array_foreach(to, i, a)
	{
		const char *rid = lead_by_email(sim, json_string_value(a));
		if (i == 0 && lead)
			rid = lead;
		rel = json_pack("{s:s,s:s?,s:O,s:s}", "EmailMessageId", em_id, "RelationId", rid,
		                "RelationAddress", a, "RelationType", "ToAddress");
		rc = org_create_locked(sim, txn, "EmailMessageRelation", rel, rel_id, &err);
		json_decref(rel);
		if (rc < 0)
			goto fail;
	}
	goto out;
fail:
	errors = action_error(err.code, err.message);
out:
	json_decref(to);
	return action_result(errors);
}

void rest_email_simple(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	char origin[256];
	struct org_txn txn;
	json_error_t jerr;
	json_t *body = json_loadb(req->body, req->body_len, 0, &jerr);
	json_t *inputs = json_object_get(body, "inputs");

	if (!json_is_array(inputs) || json_array_size(inputs) == 0) {
		json_decref(body);
		sim_resp_error(resp, 400, "JSON_PARSER_ERROR",
		               body ? "Expected {\"inputs\":[...]}" : jerr.text, NULL);
		return;
	}
	rest_origin(req, origin, sizeof(origin));
	json_t *out = json_array();
	int any_ok = 0;
	size_t i;
	json_t *in;
	org_lock(sim);
	json_array_foreach(inputs, i, in)
	{
		org_txn_begin(sim, &txn, origin, req->user_id);
		txn.system = 1;
		json_t *r = send_one(sim, &txn, in);
		any_ok |= json_is_true(json_object_get(r, "isSuccess"));
		json_array_append_new(out, r);
	}
	org_unlock(sim);
	json_decref(body);
	sim_resp_json(resp, any_ok ? 200 : 400, out);
}
