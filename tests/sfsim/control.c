/*
 * control.c - /sim (only with --control): records written as a UI user
 * (empty changeOrigin), whole-org dump, fault plan, sim clock, statistics.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "faults.h"
#include "http.h"
#include "org.h"
#include "xmem.h"

/* Largest control request body. */
#define CONTROL_BODY_MAX (1024u * 1024u)

struct sim_stats {
	pthread_mutex_t lock;
	json_t *tokens; /* outcome -> n */
	json_t *api;    /* "METHOD template" -> n */
	json_t *status; /* "status" -> n */
	json_t *writes; /* record id -> n */
};

static void bump(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	if (v)
		json_integer_set(v, json_integer_value(v) + 1);
	else
		json_object_set_new(obj, key, json_integer(1));
}

void stats_count_token(struct sim *sim, const char *outcome)
{
	struct sim_stats *s = sim->stats;
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	bump(s->tokens, outcome);
	pthread_mutex_unlock(&s->lock);
}

void stats_count_api(struct sim *sim, const char *method, const char *path_template, int status)
{
	struct sim_stats *s = sim->stats;
	char key[320], st[16];
	if (!s)
		return;
	snprintf(key, sizeof(key), "%s %s", method, path_template);
	snprintf(st, sizeof(st), "%d", status);
	pthread_mutex_lock(&s->lock);
	bump(s->api, key);
	bump(s->status, st);
	pthread_mutex_unlock(&s->lock);
}

void stats_count_write(struct sim *sim, const char *id)
{
	struct sim_stats *s = sim->stats;
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	bump(s->writes, id);
	pthread_mutex_unlock(&s->lock);
}

/* ---- handlers --------------------------------------------------------------------- */

static json_t *parse_body(const struct sim_req *req, struct sim_resp *resp)
{
	json_error_t jerr;
	json_t *j = json_loadb(req->body, req->body_len, 0, &jerr);
	if (!j)
		sim_resp_error(resp, 400, "JSON_PARSER_ERROR", jerr.text, NULL);
	return j;
}

static void send_error(struct sim_resp *resp, const struct sim_error *err)
{
	sim_resp_error(resp, err->http_status ? err->http_status : 400, err->code, err->message,
	               err->field[0] ? err->field : NULL);
}

/* /sim/records/<Type>[/<Id>] */
static void records(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	char type[64] = "", id[64] = "";
	const char *rest = req->path + strlen("/sim/records");
	struct sim_error err;
	memset(&err, 0, sizeof(err));
	const char *user = sim_req_query(req, "user");

	if (*rest == '/')
		rest++;
	size_t n = strcspn(rest, "/");
	if (n == 0 || n >= sizeof(type)) {
		sim_resp_error(resp, 404, "NOT_FOUND", "The requested resource does not exist",
		               NULL);
		return;
	}
	memcpy(type, rest, n);
	rest += n;
	if (*rest == '/') {
		rest++;
		snprintf(id, sizeof(id), "%s", rest);
	}
	if (!org_object(type)) {
		sim_resp_error(resp, 404, "NOT_FOUND", "The requested resource does not exist",
		               NULL);
		return;
	}
	if (!id[0] && strcmp(req->method, "POST") == 0) {
		char newid[SIM_ID_BUF];
		json_t *f = parse_body(req, resp);
		if (!f)
			return;
		if (org_create(sim, type, f, "", user, newid, &err) < 0)
			send_error(resp, &err);
		else
			sim_resp_json(
			        resp, 201,
			        json_pack("{s:s,s:b,s:[]}", "id", newid, "success", 1, "errors"));
		json_decref(f);
		return;
	}
	if (!id[0]) {
		sim_resp_error(resp, 405, "METHOD_NOT_ALLOWED", "HTTP Method not allowed", NULL);
		return;
	}
	if (strcmp(req->method, "GET") == 0) {
		json_t *r = org_get(sim, type, id, &err);
		if (!r)
			send_error(resp, &err);
		else
			sim_resp_json(resp, 200, r);
	} else if (strcmp(req->method, "PATCH") == 0) {
		json_t *f = parse_body(req, resp);
		if (!f)
			return;
		if (org_update(sim, type, id, f, "", user, &err) < 0)
			send_error(resp, &err);
		else
			resp->status = 204;
		json_decref(f);
	} else if (strcmp(req->method, "DELETE") == 0) {
		if (org_delete(sim, type, id, "", user, &err) < 0)
			send_error(resp, &err);
		else
			resp->status = 204;
	} else if (strcmp(req->method, "POST") == 0 && sim_req_query(req, "convert")) {
		char contact[SIM_ID_BUF], account[SIM_ID_BUF];
		if (strcasecmp(type, "Lead") != 0)
			sim_resp_error(resp, 400, "INVALID_TYPE", "only Leads can be converted",
			               NULL);
		else if (org_convert_lead(sim, id, user, contact, account, &err) < 0)
			send_error(resp, &err);
		else
			sim_resp_json(resp, 200,
			              json_pack("{s:s,s:s,s:s}", "leadId", id, "contactId", contact,
			                        "accountId", account));
	} else if (strcmp(req->method, "POST") == 0 && sim_req_query(req, "undelete")) {
		if (org_undelete(sim, type, id, "", user, &err) < 0)
			send_error(resp, &err);
		else
			resp->status = 204;
	} else {
		sim_resp_error(resp, 405, "METHOD_NOT_ALLOWED", "HTTP Method not allowed", NULL);
	}
}

static void org_handler(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	size_t len;
	char *text = org_dump_text(sim, &len);
	/* Like sim_resp_text without a copy of a body that may be 100 MB. */
	sim_resp_text(resp, 200, "application/json;charset=UTF-8", "");
	free(resp->body);
	resp->body = text;
	resp->body_len = len;
}

static void faults_handler(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	char errbuf[256];
	if (strcmp(req->method, "POST") == 0) {
		json_t *spec = parse_body(req, resp);
		if (!spec)
			return;
		if (faults_set(sim, spec, errbuf, sizeof(errbuf)) < 0) {
			json_decref(spec);
			sim_resp_error(resp, 400, "INVALID_FAULT", errbuf, NULL);
			return;
		}
		json_decref(spec);
	}
	sim_resp_json(resp, 200, faults_get(sim));
}

/* GET/POST /sim/permissions {"ViewEditConvertedLeads": bool}: the API user's
 * permissions that change what writes Salesforce allows. */
static void permissions_handler(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	if (strcmp(req->method, "POST") == 0) {
		json_t *spec = parse_body(req, resp);
		if (!spec)
			return;
		json_t *v = json_object_get(spec, "ViewEditConvertedLeads");
		if (!json_is_boolean(v) || json_object_size(spec) != 1) {
			json_decref(spec);
			sim_resp_error(resp, 400, "INVALID_PERMISSION",
			               "expected {\"ViewEditConvertedLeads\": true|false}", NULL);
			return;
		}
		atomic_store(&sim->edit_converted_leads, json_is_true(v));
		json_decref(spec);
	}
	sim_resp_json(resp, 200,
	              json_pack("{s:b}", "ViewEditConvertedLeads",
	                        atomic_load(&sim->edit_converted_leads)));
}

static json_t *clock_json(struct sim *sim)
{
	char now[40];
	int64_t ms = sim_now_ms(sim);
	sim_format_datetime(ms, now, sizeof(now));
	return json_pack("{s:I,s:s,s:I}", "now_ms", (json_int_t)ms, "now", now, "offset_ms",
	                 (json_int_t)atomic_load(&sim->clock_offset_ms));
}

static void clock_handler(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	if (strcmp(req->method, "POST") == 0) {
		json_t *j = parse_body(req, resp);
		if (!j)
			return;
		json_t *adv = json_object_get(j, "advance_ms");
		if (!json_is_integer(adv) || json_integer_value(adv) < 0) {
			json_decref(j);
			sim_resp_error(resp, 400, "INVALID_CLOCK",
			               "advance_ms must be a non-negative integer", NULL);
			return;
		}
		sim_clock_advance(sim, json_integer_value(adv));
		json_decref(j);
		/* Long polls and pollers waiting on time see the jump at once. */
		org_lock(sim);
		org_unlock(sim);
	}
	sim_resp_json(resp, 200, clock_json(sim));
}

static void stats_handler(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	struct sim_stats *s = sim->stats;
	json_t *out;
	long dup = 0;
	const char *k;
	json_t *v;

	pthread_mutex_lock(&s->lock);
	json_object_foreach(s->writes, k, v) if (json_integer_value(v) > 1) dup++;
	out = json_pack("{s:O,s:O,s:O,s:O,s:I}", "tokens", s->tokens, "api", s->api, "status",
	                s->status, "writes", s->writes, "records_written_more_than_once",
	                (json_int_t)dup);
	/* Deep copies: the live objects keep changing after we unlock. */
	json_t *copy = json_deep_copy(out);
	json_decref(out);
	pthread_mutex_unlock(&s->lock);
	json_object_set_new(copy, "api_usage",
	                    json_pack("{s:I,s:I}", "used", (json_int_t)atomic_load(&sim->api_used),
	                              "max", (json_int_t)sim->cfg.api_limit));
	if (sim->stream_stats)
		json_object_set_new(copy, "events", sim->stream_stats(sim, sim->stream_stats_ctx));
	sim_resp_json(resp, 200, copy);
}

int control_init(struct sim *sim)
{
	struct sim_stats *s = xcalloc(1, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->tokens = json_object();
	s->api = json_object();
	s->status = json_object();
	s->writes = json_object();
	sim->stats = s;
	int rc = 0;
	rc |= sim_route(sim, NULL, "/sim/records", SIM_ROUTE_CONTROL, CONTROL_BODY_MAX, records,
	                NULL);
	rc |= sim_route(sim, "GET", "/sim/org", SIM_ROUTE_CONTROL, 0, org_handler, NULL);
	rc |= sim_route(sim, NULL, "/sim/faults", SIM_ROUTE_CONTROL, CONTROL_BODY_MAX,
	                faults_handler, NULL);
	rc |= sim_route(sim, NULL, "/sim/clock", SIM_ROUTE_CONTROL, CONTROL_BODY_MAX, clock_handler,
	                NULL);
	rc |= sim_route(sim, NULL, "/sim/permissions", SIM_ROUTE_CONTROL, CONTROL_BODY_MAX,
	                permissions_handler, NULL);
	rc |= sim_route(sim, "GET", "/sim/stats", SIM_ROUTE_CONTROL, 0, stats_handler, NULL);
	return rc ? -1 : 0;
}

void control_fini(struct sim *sim)
{
	struct sim_stats *s = sim->stats;
	if (!s)
		return;
	json_decref(s->tokens);
	json_decref(s->api);
	json_decref(s->status);
	json_decref(s->writes);
	pthread_mutex_destroy(&s->lock);
	free(s);
	sim->stats = NULL;
}
