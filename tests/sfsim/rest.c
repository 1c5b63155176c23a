/*
 * rest.c - /services/data: version list, resource routing, sObject rows,
 * describe, sObject Collections, limits. Query, emailSimple and Bulk 2.0 live
 * in rest_query.c, rest_email.c and rest_bulk.c.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "control.h"
#include "faults.h"
#include "http.h"
#include "org.h"
#include "rest.h"
#include "xmem.h"

/* Largest JSON body for REST writes (Salesforce: roughly 50 MB for JSON). */
#define REST_JSON_BODY_MAX (50u * 1024u * 1024u)

void rest_origin(const struct sim_req *req, char *out, size_t size)
{
	const char *opts = sim_req_header(req, "Sforce-Call-Options");
	const char *c = NULL;
	/* "client=<id>[, defaultNamespace=...]" */
	for (const char *p = opts; p && *p;) {
		while (*p == ' ' || *p == ',')
			p++;
		if (strncasecmp(p, "client=", 7) == 0) {
			c = p + 7;
			break;
		}
		p = strchr(p, ',');
	}
	if (c) {
		int n = (int)strcspn(c, ", ");
		snprintf(out, size, "com/salesforce/api/rest/%s;client=%.*s", req->api_version, n,
		         c);
	} else {
		snprintf(out, size, "com/salesforce/api/rest/%s", req->api_version);
	}
}

static void not_found(struct sim_resp *resp)
{
	sim_resp_error(resp, 404, "NOT_FOUND", "The requested resource does not exist", NULL);
}

static void method_not_allowed(struct sim_resp *resp, const char *method, const char *allowed)
{
	char msg[160];
	snprintf(msg, sizeof(msg), "HTTP Method '%s' not allowed. Allowed are %s", method, allowed);
	sim_resp_error(resp, 405, "METHOD_NOT_ALLOWED", msg, NULL);
}

static void send_error(struct sim_resp *resp, const struct sim_error *err)
{
	sim_resp_error(resp, err->http_status ? err->http_status : 400, err->code, err->message,
	               err->field[0] ? err->field : NULL);
}

static void lock_error(struct sim_resp *resp)
{
	sim_resp_json(resp, 400,
	              json_pack("[{s:s,s:s,s:[]}]", "message",
	                        "unable to obtain exclusive access to this record", "errorCode",
	                        "UNABLE_TO_LOCK_ROW", "fields"));
}

/* Parse a JSON request body; on failure answers JSON_PARSER_ERROR. */
static json_t *body_json(const struct sim_req *req, struct sim_resp *resp)
{
	json_error_t jerr;
	json_t *j = json_loadb(req->body, req->body_len, 0, &jerr);
	if (!j) {
		char msg[300];
		snprintf(msg, sizeof(msg), "%s at [line:%d, column:%d]", jerr.text, jerr.line,
		         jerr.column);
		sim_resp_error(resp, 400, "JSON_PARSER_ERROR", msg, NULL);
	}
	return j;
}

static json_t *attributes(const char *type, const char *ver, const char *id)
{
	char url[160];
	snprintf(url, sizeof(url), "/services/data/v%s/sobjects/%s/%s", ver, type, id);
	return json_pack("{s:s,s:s}", "type", type, "url", url);
}

/* ---- sobjects ------------------------------------------------------------------------ */

static void sobject_get(struct sim *sim, const struct sim_req *req, struct sim_resp *resp,
                        const struct sim_object *obj, const char *id)
{
	struct sim_error err;
	const char *fields = sim_req_query(req, "fields");
	json_t *rec = org_get(sim, obj->name, id, &err);
	if (!rec) {
		if (strcmp(err.code, "ENTITY_IS_DELETED") == 0)
			not_found(resp);
		else
			send_error(resp, &err);
		return;
	}
	json_t *out = json_object();
	json_object_set_new(out, "attributes",
	                    attributes(obj->name, req->api_version,
	                               json_string_value(json_object_get(rec, "Id"))));
	if (fields && fields[0]) {
		const char *f = fields;
		while (*f) {
			char name[128];
			size_t n = strcspn(f, ",");
			const char *start = f;
			f += n;
			if (*f == ',')
				f++;
			while (n && *start == ' ') {
				start++;
				n--;
			}
			if (n == 0)
				continue;
			snprintf(name, sizeof(name), "%.*s", (int)n, start);
			const struct sim_field *sf = org_field(obj, name);
			if (!sf) {
				char msg[300];
				snprintf(msg, sizeof(msg),
				         "No such column '%s' on sobject of type %s", name,
				         obj->name);
				sim_resp_error(resp, 400, "INVALID_FIELD", msg, NULL);
				json_decref(out);
				json_decref(rec);
				return;
			}
			json_object_set(out, sf->name, json_object_get(rec, sf->name));
		}
	} else {
		json_object_update(out, rec);
	}
	json_decref(rec);
	sim_resp_json(resp, 200, out);
}

static void sobject_write(struct sim *sim, const struct sim_req *req, struct sim_resp *resp,
                          const struct sim_object *obj, const char *id, const char *method)
{
	char origin[256];
	struct sim_error err;
	json_t *body = NULL;
	int rc;

	rest_origin(req, origin, sizeof(origin));
	if (strcmp(method, "PATCH") == 0 || (!id && strcmp(method, "POST") == 0)) {
		body = body_json(req, resp);
		if (!body)
			return;
		if (!json_is_object(body)) {
			json_decref(body);
			sim_resp_error(
			        resp, 400, "JSON_PARSER_ERROR",
			        "Cannot deserialize instance of sObject from START_ARRAY value",
			        NULL);
			return;
		}
	}
	if (faults_lock_row(sim)) {
		json_decref(body);
		lock_error(resp);
		return;
	}
	if (!id) {
		char newid[SIM_ID_BUF];
		rc = org_create(sim, obj->name, body, origin, req->user_id, newid, &err);
		if (rc == 0)
			sim_resp_json(
			        resp, 201,
			        json_pack("{s:s,s:b,s:[]}", "id", newid, "success", 1, "errors"));
	} else if (strcmp(method, "PATCH") == 0) {
		rc = org_update(sim, obj->name, id, body, origin, req->user_id, &err);
		if (rc == 0)
			resp->status = 204;
	} else {
		rc = org_delete(sim, obj->name, id, origin, req->user_id, &err);
		if (rc == 0)
			resp->status = 204;
	}
	if (rc < 0)
		send_error(resp, &err);
	json_decref(body);
}

static void describe_global(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < org_nobjects(); i++) {
		const struct sim_object *o = org_object_at(i);
		char url[128];
		snprintf(url, sizeof(url), "/services/data/v%s/sobjects/%s", req->api_version,
		         o->name);
		json_array_append_new(arr,
		                      json_pack("{s:s,s:s,s:s,s:s,s:b,s:b,s:b,s:b,s:{s:s}}", "name",
		                                o->name, "label", o->label, "labelPlural",
		                                o->label_plural, "keyPrefix", o->key_prefix,
		                                "custom", o->custom, "queryable", 1, "createable",
		                                1, "updateable", 1, "urls", "sobject", url));
	}
	sim_resp_json(resp, 200,
	              json_pack("{s:s,s:i,s:o}", "encoding", "UTF-8", "maxBatchSize", 200,
	                        "sobjects", arr));
	(void)sim;
}

/* /sobjects[/<T>[/describe|/<id>]] */
static void sobjects(struct sim *sim, const struct sim_req *req, struct sim_resp *resp,
                     const char *rest)
{
	char type[64], id[64];
	const char *method = req->method;
	const char *override = sim_req_query(req, "_HttpMethod");

	if (*rest == '\0' || strcmp(rest, "/") == 0) {
		if (strcmp(method, "GET") != 0) {
			method_not_allowed(resp, method, "GET");
			return;
		}
		{
			describe_global(sim, req, resp);
			return;
		}
	}
	rest++;
	size_t n = strcspn(rest, "/");
	if (n == 0 || n >= sizeof(type)) {
		not_found(resp);
		return;
	}
	memcpy(type, rest, n);
	type[n] = '\0';
	rest += n;
	const struct sim_object *obj = org_object(type);
	if (!obj) {
		char msg[128];
		snprintf(msg, sizeof(msg), "The requested resource does not exist");
		sim_resp_error(resp, 404, "NOT_FOUND", msg, NULL);
		return;
	}
	if (*rest == '\0' || strcmp(rest, "/") == 0) {
		if (strcmp(method, "POST") == 0) {
			sobject_write(sim, req, resp, obj, NULL, "POST");
			return;
		}
		if (strcmp(method, "GET") == 0) {
			json_t *d = org_describe(obj, req->api_version);
			json_t *basic = json_pack(
			        "{s:{s:O,s:O,s:O,s:O,s:O},s:[]}", "objectDescribe", "name",
			        json_object_get(d, "name"), "label", json_object_get(d, "label"),
			        "keyPrefix", json_object_get(d, "keyPrefix"), "custom",
			        json_object_get(d, "custom"), "urls", json_object_get(d, "urls"),
			        "recentItems");
			json_decref(d);
			{
				sim_resp_json(resp, 200, basic);
				return;
			}
		}
		{
			method_not_allowed(resp, method, "GET,POST");
			return;
		}
	}
	rest++;
	if (strcmp(rest, "describe") == 0 || strcmp(rest, "describe/") == 0) {
		if (strcmp(method, "GET") != 0) {
			method_not_allowed(resp, method, "GET");
			return;
		}
		{
			sim_resp_json(resp, 200, org_describe(obj, req->api_version));
			return;
		}
	}
	n = strcspn(rest, "/");
	if (n == 0 || n >= sizeof(id) || rest[n] != '\0') {
		not_found(resp);
		return;
	}
	memcpy(id, rest, n);
	id[n] = '\0';
	if (strcmp(method, "POST") == 0 && override && strcmp(override, "PATCH") == 0)
		method = "PATCH";
	if (strcmp(method, "GET") == 0) {
		sobject_get(sim, req, resp, obj, id);
		return;
	}
	if (strcmp(method, "PATCH") == 0 || strcmp(method, "DELETE") == 0) {
		sobject_write(sim, req, resp, obj, id, method);
		return;
	}
	method_not_allowed(resp, method, "GET,PATCH,DELETE");
}

/* ---- sObject Collections --------------------------------------------------------------- */

static json_t *record_error(const char *code, const char *msg, const char *field)
{
	return json_pack("{s:s,s:s,s:o}", "statusCode", code, "message", msg, "fields",
	                 field && field[0] ? json_pack("[s]", field) : json_array());
}

static json_t *result_fail(const char *id, json_t *error)
{
	json_t *r = json_object();
	if (id)
		json_object_set_new(r, "id", json_string(id));
	json_object_set_new(r, "success", json_false());
	json_object_set_new(r, "errors", json_pack("[o]", error));
	return r;
}

static const char *rec_type(json_t *rec)
{
	return json_string_value(json_object_get(json_object_get(rec, "attributes"), "type"));
}

static const char *rec_id(json_t *rec)
{
	json_t *id = json_object_get(rec, "id");
	if (!id)
		id = json_object_get(rec, "Id");
	return json_string_value(id);
}

/* Validate one record of a collection; NULL if fine, else a new error object. */
static json_t *collection_check(struct sim *sim, json_t *rec, int create, struct sim_error *err)
{
	const char *type = rec_type(rec);
	const char *id = rec_id(rec);
	if (!json_is_object(rec))
		return record_error("JSON_PARSER_ERROR", "record must be an object", NULL);
	if (create) {
		if (!type || !org_object(type))
			return record_error("INVALID_TYPE", "Must send a concrete entity type.",
			                    NULL);
		if (org_check_create_locked(sim, type, rec, err) < 0)
			return record_error(err->code, err->message, err->field);
		return NULL;
	}
	if (!id || !sim_id_valid(id)) {
		char msg[200];
		snprintf(msg, sizeof(msg), "%s ID: id value of incorrect type: %s",
		         type ? type : "Record", id ? id : "");
		return record_error("MALFORMED_ID", msg, "Id");
	}
	if (type && !org_object(type))
		return record_error("INVALID_TYPE", "Must send a concrete entity type.", NULL);
	json_t *fields = json_deep_copy(rec);
	json_object_del(fields, "id");
	json_object_del(fields, "Id");
	int rc = org_check_update_locked(sim, type, id, fields, err);
	json_decref(fields);
	if (rc < 0)
		return record_error(err->code, err->message, err->field);
	return NULL;
}

/* DELETE /composite/sobjects?ids=a,b[&allOrNone=true] */
static void collections_delete(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	const char *ids = sim_req_query(req, "ids");
	const char *aon = sim_req_query(req, "allOrNone");
	int all_or_none = aon && strcasecmp(aon, "true") == 0;
	char origin[256];
	struct org_txn txn;
	struct sim_error err;
	json_t *list = json_array();

	for (const char *p = ids; p && *p;) {
		size_t n = strcspn(p, ",");
		if (n)
			json_array_append_new(list, json_stringn(p, n));
		p += n;
		if (*p == ',')
			p++;
	}
	if (json_array_size(list) == 0 || json_array_size(list) > REST_COLLECTION_MAX) {
		json_decref(list);
		sim_resp_error(resp, 400,
		               json_array_size(list) ? "EXCEEDED_ID_LIMIT" : "MALFORMED_QUERY",
		               json_array_size(list) ? "record limit reached. cannot submit more "
		                                       "than 200 records into this call"
		                                     : "ids parameter is required",
		               NULL);
		return;
	}
	rest_origin(req, origin, sizeof(origin));
	size_t n = json_array_size(list);
	json_t *out = json_array();
	int failed = 0;
	org_lock(sim);
	/* allOrNone: find failures first (existence, deleted, lock faults). */
	for (size_t i = 0; all_or_none && i < n; i++) {
		const char *id = json_string_value(json_array_get(list, i));
		json_t *rec = org_lookup_locked(sim, id);
		if (!rec || json_is_true(json_object_get(rec, "IsDeleted")))
			failed = 1;
	}
	org_txn_begin(sim, &txn, origin, req->user_id);
	for (size_t i = 0; i < n; i++) {
		const char *id = json_string_value(json_array_get(list, i));
		memset(&err, 0, sizeof(err));
		if (failed) {
			json_t *rec = org_lookup_locked(sim, id);
			int bad = !rec || json_is_true(json_object_get(rec, "IsDeleted"));
			json_array_append_new(
			        out,
			        result_fail(id,
			                    bad ? record_error(rec ? "ENTITY_IS_DELETED"
			                                           : "INVALID_CROSS_REFERENCE_KEY",
			                                       rec ? "entity is deleted"
			                                           : "invalid cross reference id",
			                                       NULL)
			                        : record_error("ALL_OR_NONE_OPERATION_ROLLED_BACK",
			                                       "Record rolled back because not "
			                                       "all records were valid and the "
			                                       "request was using AllOrNone "
			                                       "header",
			                                       NULL)));
			continue;
		}
		if (faults_lock_row(sim)) {
			json_array_append_new(
			        out,
			        result_fail(id, record_error("UNABLE_TO_LOCK_ROW",
			                                     "unable to obtain exclusive access to "
			                                     "this record",
			                                     NULL)));
		} else if (org_delete_locked(sim, &txn, NULL, id, &err) < 0) {
			json_array_append_new(
			        out,
			        result_fail(id, record_error(err.code, err.message, err.field)));
		} else {
			json_array_append_new(
			        out, json_pack("{s:s,s:b,s:[]}", "id", id, "success", 1, "errors"));
		}
	}
	org_unlock(sim);
	json_decref(list);
	sim_resp_json(resp, 200, out);
}

static void collections(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	int create = strcmp(req->method, "POST") == 0;
	char origin[256];
	struct org_txn txn;
	struct sim_error err;

	if (strcmp(req->method, "DELETE") == 0) {
		collections_delete(sim, req, resp);
		return;
	}
	if (!create && strcmp(req->method, "PATCH") != 0) {
		method_not_allowed(resp, req->method, "POST,PATCH,DELETE");
		return;
	}
	json_t *body = body_json(req, resp);
	if (!body)
		return;
	json_t *records = json_object_get(body, "records");
	json_t *aon = json_object_get(body, "allOrNone");
	if (!json_is_object(body) || !json_is_array(records) || (aon && !json_is_boolean(aon))) {
		json_decref(body);
		sim_resp_error(resp, 400, "JSON_PARSER_ERROR",
		               "Cannot deserialize instance of sObject collection: expected "
		               "{\"allOrNone\":boolean,\"records\":[...]}",
		               NULL);
		return;
	}
	size_t n = json_array_size(records);
	if (n > REST_COLLECTION_MAX) {
		json_decref(body);
		sim_resp_error(
		        resp, 400, "EXCEEDED_ID_LIMIT",
		        "record limit reached. cannot submit more than 200 records into this "
		        "call",
		        NULL);
		return;
	}
	int all_or_none = json_is_true(aon);
	rest_origin(req, origin, sizeof(origin));
	json_t **results = xcalloc(n ? n : 1, sizeof(json_t *));
	int any_failed = 0;

	org_lock(sim);
	/* Pass 1: validate (and draw lock faults) without writing. */
	for (size_t i = 0; i < n; i++) {
		json_t *rec = json_array_get(records, i);
		const char *id = rec_id(rec);
		memset(&err, 0, sizeof(err));
		json_t *e = collection_check(sim, rec, create, &err);
		if (!e && faults_lock_row(sim)) {
			char msg[200];
			snprintf(
			        msg, sizeof(msg),
			        "unable to obtain exclusive access to this record or 1 records: %s",
			        id ? id : "");
			e = record_error("UNABLE_TO_LOCK_ROW", msg, NULL);
		}
		if (e) {
			results[i] = result_fail(create || !id || !sim_id_valid(id) ? NULL : id, e);
			any_failed = 1;
		}
	}
	if (!(all_or_none && any_failed)) {
		org_txn_begin(sim, &txn, origin, req->user_id);
		for (size_t i = 0; i < n; i++) {
			if (results[i])
				continue;
			json_t *rec = json_array_get(records, i);
			char id[SIM_ID_BUF];
			int rc;
			memset(&err, 0, sizeof(err));
			if (create) {
				rc = org_create_locked(sim, &txn, rec_type(rec), rec, id, &err);
			} else {
				json_t *fields = json_deep_copy(rec);
				json_object_del(fields, "id");
				json_object_del(fields, "Id");
				rc = org_update_locked(sim, &txn, rec_type(rec), rec_id(rec),
				                       fields, &err);
				json_decref(fields);
				snprintf(id, sizeof(id), "%s", rec_id(rec));
			}
			if (rc == 0)
				results[i] = json_pack("{s:s,s:b,s:[]}", "id", id, "success", 1,
				                       "errors");
			else
				results[i] =
				        result_fail(create ? NULL : rec_id(rec),
				                    record_error(err.code, err.message, err.field));
		}
	}
	org_unlock(sim);

	json_t *out = json_array();
	for (size_t i = 0; i < n; i++) {
		if (!results[i]) {
			/* allOrNone: records that were fine are rolled back. */
			const char *id = create ? NULL : rec_id(json_array_get(records, i));
			results[i] = result_fail(
			        id, record_error("ALL_OR_NONE_OPERATION_ROLLED_BACK",
			                         "Record rolled back because not all records were "
			                         "valid and the request was using AllOrNone header",
			                         NULL));
		}
		json_array_append_new(out, results[i]);
	}
	free(results);
	json_decref(body);
	sim_resp_json(resp, 200, out);
}

/* GET /composite/sobjects/<T>?ids=a,b&fields=F1,F2: records in request order,
 * null where an id matches no live record. */
static void collections_retrieve(struct sim *sim, const struct sim_req *req, struct sim_resp *resp,
                                 const char *type)
{
	const struct sim_object *obj = org_object(type);
	const char *ids = sim_req_query(req, "ids");
	const char *fields = sim_req_query(req, "fields");
	if (!obj || strchr(type, '/')) {
		not_found(resp);
		return;
	}
	if (!ids || !ids[0] || !fields || !fields[0]) {
		sim_resp_error(resp, 400, "MALFORMED_QUERY", "ids and fields are required", NULL);
		return;
	}
	/* Resolve the field list first: one bad name fails the request. */
	json_t *names = json_array();
	for (const char *p = fields; *p;) {
		size_t n = strcspn(p, ",");
		char name[128];
		snprintf(name, sizeof(name), "%.*s", (int)n, p);
		p += n;
		if (*p == ',')
			p++;
		if (!name[0])
			continue;
		const struct sim_field *f = org_field(obj, name);
		if (!f) {
			char msg[300];
			snprintf(msg, sizeof(msg), "No such column '%s' on sobject of type %s",
			         name, obj->name);
			json_decref(names);
			sim_resp_error(resp, 400, "INVALID_FIELD", msg, NULL);
			return;
		}
		json_array_append_new(names, json_string(f->name));
	}
	json_t *out = json_array();
	size_t count = 0;
	org_lock(sim);
	for (const char *p = ids; *p;) {
		size_t n = strcspn(p, ",");
		char id[64];
		snprintf(id, sizeof(id), "%.*s", (int)(n < 63 ? n : 63), p);
		p += n;
		if (*p == ',')
			p++;
		if (++count > 2000)
			break;
		json_t *rec = org_lookup_locked(sim, id);
		if (!rec || json_is_true(json_object_get(rec, "IsDeleted")) ||
		    org_object_by_prefix(json_string_value(json_object_get(rec, "Id"))) != obj) {
			json_array_append_new(out, json_null());
			continue;
		}
		const char *rid = json_string_value(json_object_get(rec, "Id"));
		json_t *r = json_object();
		json_object_set_new(r, "attributes", attributes(obj->name, req->api_version, rid));
		size_t i;
		json_t *nm;
		json_array_foreach(names, i, nm)
		{
			json_t *v = json_object_get(rec, json_string_value(nm));
			json_object_set_new(r, json_string_value(nm),
			                    v ? json_deep_copy(v) : json_null());
		}
		json_object_set_new(r, "Id", json_string(rid));
		json_array_append_new(out, r);
	}
	org_unlock(sim);
	json_decref(names);
	sim_resp_json(resp, 200, out);
}

/* ---- limits, versions, resources ----------------------------------------------------- */

static void limits(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	long max = sim->cfg.api_limit;
	long used = atomic_load(&sim->api_used);
	sim_resp_json(resp, 200,
	              json_pack("{s:{s:I,s:I},s:{s:i,s:i},s:{s:i,s:i},s:{s:i,s:i},s:{s:i,s:i}}",
	                        "DailyApiRequests", "Max", (json_int_t)max, "Remaining",
	                        (json_int_t)(used > max ? 0 : max - used), "DailyBulkV2QueryJobs",
	                        "Max", 10000, "Remaining", 10000, "DailyDurableStreamingApiEvents",
	                        "Max", 10000, "Remaining", 10000,
	                        "HourlyPublishedStandardVolumePlatformEvents", "Max", 100000,
	                        "Remaining", 100000, "SingleEmail", "Max", 5000, "Remaining",
	                        5000));
	(void)req;
}

static const char *const versions[][2] = {
        {"55.0", "Summer '22"}, {"56.0", "Winter '23"}, {"57.0", "Spring '23"},
        {"58.0", "Summer '23"}, {"59.0", "Winter '24"}, {"60.0", "Spring '24"},
        {"61.0", "Summer '24"}, {"62.0", "Winter '25"}, {"63.0", "Spring '25"},
        {"64.0", "Summer '25"}, {"65.0", "Winter '26"}, {"66.0", "Spring '26"},
        {"67.0", "Summer '26"},
};

static void versions_handler(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	if (strcmp(req->path, "/services/data") != 0 && strcmp(req->path, "/services/data/") != 0) {
		not_found(resp);
		return;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		char url[64];
		snprintf(url, sizeof(url), "/services/data/v%s", versions[i][0]);
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "label", versions[i][1],
		                                     "url", url, "version", versions[i][0]));
	}
	sim_resp_json(resp, 200, arr);
	(void)sim;
}

static int version_known(const char *v)
{
	char *end;
	double d = strtod(v, &end);
	return end != v && *end == '\0' && d >= 20.0 && d <= 67.0 && strchr(v, '.');
}

static void data_handler(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	const char *rest = req->path + strlen("/services/data/v");
	rest += strcspn(rest, "/");
	if (!version_known(req->api_version)) {
		not_found(resp);
		return;
	}
	if (*rest == '\0' || strcmp(rest, "/") == 0) {
		char b[64];
		snprintf(b, sizeof(b), "/services/data/v%s", req->api_version);
		json_t *r = json_object();
		static const char *const res[] = {"sobjects",  "query",   "queryAll", "limits",
		                                  "composite", "actions", "jobs"};
		for (size_t i = 0; i < sizeof(res) / sizeof(res[0]); i++) {
			char *u = xasprintf("%s/%s", b, res[i]);
			json_object_set_new(r, res[i], json_string(u));
			free(u);
		}
		{
			sim_resp_json(resp, 200, r);
			return;
		}
	}
	if (strncmp(rest, "/sobjects", 9) == 0 && (rest[9] == '\0' || rest[9] == '/')) {
		sobjects(sim, req, resp, rest + 9);
		return;
	}
	if (strncmp(rest, "/query", 6) == 0 && (rest[6] == '\0' || rest[6] == '/')) {
		rest_query(sim, req, resp, rest + 6);
		return;
	}
	if (strncmp(rest, "/queryAll", 9) == 0 && (rest[9] == '\0' || rest[9] == '/')) {
		rest_query(sim, req, resp, rest + 9);
		return;
	}
	if (strcmp(rest, "/composite/sobjects") == 0 || strcmp(rest, "/composite/sobjects/") == 0) {
		collections(sim, req, resp);
		return;
	}
	if (strncmp(rest, "/composite/sobjects/", 20) == 0 && strcmp(req->method, "GET") == 0) {
		collections_retrieve(sim, req, resp, rest + 20);
		return;
	}
	if (strcmp(rest, "/limits") == 0 || strcmp(rest, "/limits/") == 0) {
		limits(sim, req, resp);
		return;
	}
	if (strcmp(rest, "/actions/standard/emailSimple") == 0) {
		if (strcmp(req->method, "POST") != 0) {
			method_not_allowed(resp, req->method, "POST");
			return;
		}
		{
			rest_email_simple(sim, req, resp);
			return;
		}
	}
	if (strncmp(rest, "/jobs/ingest", 12) == 0 && (rest[12] == '\0' || rest[12] == '/')) {
		rest_bulk(sim, req, resp, rest + 12);
		return;
	}
	not_found(resp);
}

int rest_init(struct sim *sim)
{
	int rc = 0;
	rc |= sim_route(sim, NULL, "/services/data", 0, 0, versions_handler, NULL);
	rc |= sim_route(sim, NULL, "/services/data/v*", SIM_ROUTE_AUTH, REST_JSON_BODY_MAX,
	                data_handler, NULL);
	return rc ? -1 : 0;
}

void rest_fini(struct sim *sim)
{
	rest_query_fini(sim);
	rest_bulk_fini(sim);
}
