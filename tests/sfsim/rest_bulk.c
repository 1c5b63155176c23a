/*
 * rest_bulk.c - Bulk API 2.0 ingest: create job, PUT CSV batches, PATCH
 * UploadComplete (processed at once, reported as JobComplete on the next GET),
 * job info, successful/failed/unprocessed results as CSV, abort, delete.
 * Rows are written in transactions of 200 like Salesforce's internal chunks.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "faults.h"
#include "http.h"
#include "org.h"
#include "rest.h"
#include "sfid.h"
#include "xmem.h"

/* Jobs kept (oldest finished ones are dropped past this). */
#define BULK_MAX_JOBS 512
/* Uploaded CSV per job (Salesforce: 150 MB base64, about 100 MB raw). */
#define BULK_MAX_DATA (100u * 1024u * 1024u)
/* Columns per CSV row. */
#define BULK_MAX_COLS 512
/* Rows per transaction. */
#define BULK_CHUNK 200

struct buf {
	char *p;
	size_t len, cap;
};

struct job {
	char id[SIM_ID_BUF];
	char object[64];
	char operation[16];
	char state[16];
	char delim;
	char line_ending[5];
	char api_version[8];
	char origin[256];
	char user[SIM_ID_BUF];
	char created[40];
	char modstamp[40];
	struct buf data;
	struct buf ok;     /* successfulResults CSV */
	struct buf failed; /* failedResults CSV */
	struct buf unprocessed;
	long processed, nfailed;
	int64_t processing_ms;
};

static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct job *jobs[BULK_MAX_JOBS];
static uint64_t job_counter;

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* One CSV field, always quoted (Salesforce quotes every result field). */
static void csv_field(struct buf *b, const char *s, int first)
{
	if (!first)
		buf_add(b, ",", 1);
	buf_add(b, "\"", 1);
	for (const char *p = s; *p; p++) {
		if (*p == '"')
			buf_add(b, "\"", 1);
		buf_add(b, p, 1);
	}
	buf_add(b, "\"", 1);
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	free(j->data.p);
	free(j->ok.p);
	free(j->failed.p);
	free(j->unprocessed.p);
	free(j);
}

void rest_bulk_fini(struct sim *sim)
{
	(void)sim;
	pthread_mutex_lock(&jobs_lock);
	for (size_t i = 0; i < BULK_MAX_JOBS; i++) {
		job_free(jobs[i]);
		jobs[i] = NULL;
	}
	pthread_mutex_unlock(&jobs_lock);
}

/* ---- CSV parsing ----------------------------------------------------------------------- */

/*
 * Parse one record starting at *pos: fields into out[] (new strings), count in
 * *n. Handles quotes, doubled quotes, embedded delimiters and newlines, LF or
 * CRLF. Returns 1 for a record, 0 at the end, -1 on malformed input.
 */
static int csv_record(const char *s, size_t len, size_t *pos, char delim, char **out, size_t *n)
{
	size_t i = *pos;
	struct buf f = {0};
	*n = 0;
	if (i >= len)
		return 0;
	for (;;) {
		f.len = 0;
		buf_add(&f, "", 0);
		if (i < len && s[i] == '"') {
			i++;
			for (;;) {
				if (i >= len)
					goto bad;
				if (s[i] == '"') {
					if (i + 1 < len && s[i + 1] == '"') {
						buf_add(&f, "\"", 1);
						i += 2;
						continue;
					}
					i++;
					break;
				}
				buf_add(&f, s + i, 1);
				i++;
			}
		} else {
			while (i < len && s[i] != delim && s[i] != '\n' && s[i] != '\r') {
				if (s[i] == '"')
					goto bad;
				buf_add(&f, s + i, 1);
				i++;
			}
		}
		if (*n >= BULK_MAX_COLS)
			goto bad;
		out[(*n)++] = xstrdup(f.p ? f.p : "");
		if (i < len && s[i] == delim) {
			i++;
			continue;
		}
		if (i < len && s[i] == '\r')
			i++;
		if (i < len && s[i] == '\n')
			i++;
		else if (i < len)
			goto bad;
		break;
	}
	free(f.p);
	*pos = i;
	return 1;
bad:
	free(f.p);
	for (size_t k = 0; k < *n; k++)
		free(out[k]);
	*n = 0;
	return -1;
}

static void free_fields(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
}

/* ---- processing -------------------------------------------------------------------------- */

static void result_row(struct buf *b, const char *a, const char *c, char **vals, size_t n)
{
	csv_field(b, a, 1);
	csv_field(b, c, 0);
	for (size_t i = 0; i < n; i++)
		csv_field(b, vals[i], 0);
	buf_add(b, "\n", 1);
}

static void process(struct sim *sim, struct job *j)
{
	char *hdr[BULK_MAX_COLS], *vals[BULK_MAX_COLS];
	size_t nh = 0, nv, pos = 0;
	int64_t start = sim_now_ms(sim);
	int is_delete = strcasecmp(j->operation, "delete") == 0 ||
	                strcasecmp(j->operation, "hardDelete") == 0;
	int is_insert = strcasecmp(j->operation, "insert") == 0;

	if (csv_record(j->data.p, j->data.len, &pos, j->delim, hdr, &nh) <= 0 || nh == 0) {
		snprintf(j->state, sizeof(j->state), "Failed");
		return;
	}
	buf_str(&j->ok, "\"sf__Id\",\"sf__Created\"");
	buf_str(&j->failed, "\"sf__Id\",\"sf__Error\"");
	for (size_t i = 0; i < nh; i++) {
		csv_field(&j->ok, hdr[i], 0);
		csv_field(&j->failed, hdr[i], 0);
		csv_field(&j->unprocessed, hdr[i], i == 0);
	}
	buf_add(&j->ok, "\n", 1);
	buf_add(&j->failed, "\n", 1);
	buf_add(&j->unprocessed, "\n", 1);

	int idcol = -1;
	for (size_t i = 0; i < nh; i++)
		if (strcasecmp(hdr[i], "Id") == 0)
			idcol = (int)i;

	int more = 1;
	while (more) {
		struct org_txn txn;
		org_lock(sim);
		org_txn_begin(sim, &txn, j->origin, j->user);
		for (int k = 0; k < BULK_CHUNK; k++) {
			int rc = csv_record(j->data.p, j->data.len, &pos, j->delim, vals, &nv);
			if (rc == 0) {
				more = 0;
				break;
			}
			if (rc > 0 && nv == 1 && vals[0][0] == '\0') {
				free_fields(vals, nv); /* blank line */
				k--;
				continue;
			}
			struct sim_error err;
			char id[SIM_ID_BUF] = "";
			memset(&err, 0, sizeof(err));
			j->processed++;
			if (rc < 0 || nv != nh) {
				snprintf(err.code, sizeof(err.code), "INVALID_FIELD");
				snprintf(err.message, sizeof(err.message),
				         "Row has %zu columns, header has %zu", nv, nh);
				rc = -1;
				if (rc < 0 && nv == 0) {
					/* Unparseable rest: stop here. */
					more = 0;
				}
			} else if (faults_lock_row(sim)) {
				snprintf(err.code, sizeof(err.code), "UNABLE_TO_LOCK_ROW");
				snprintf(err.message, sizeof(err.message),
				         "unable to obtain exclusive access to this record");
				rc = -1;
			} else {
				const char *rid = idcol >= 0 ? vals[idcol] : "";
				if (is_delete) {
					rc = org_delete_locked(sim, &txn, j->object, rid, &err);
					snprintf(id, sizeof(id), "%s", rid);
				} else {
					json_t *f = json_object();
					for (size_t c = 0; c < nh; c++) {
						if ((int)c == idcol || vals[c][0] == '\0')
							continue;
						/* "#N/A" sets a field to null in Bulk API. */
						json_object_set_new(f, hdr[c],
						                    strcmp(vals[c], "#N/A") == 0
						                            ? json_null()
						                            : json_string(vals[c]));
					}
					if (is_insert || (idcol < 0 && strcasecmp(j->operation,
					                                          "upsert") == 0)) {
						rc = org_create_locked(sim, &txn, j->object, f, id,
						                       &err);
					} else {
						rc = org_update_locked(sim, &txn, j->object, rid, f,
						                       &err);
						snprintf(id, sizeof(id), "%s", rid);
					}
					json_decref(f);
				}
			}
			if (rc == 0) {
				char id18[SIM_ID_BUF];
				if (sfid_to18(id, id18) < 0)
					snprintf(id18, sizeof(id18), "%s", id);
				result_row(&j->ok, id18, is_insert ? "true" : "false", vals, nv);
			} else {
				char e[SIM_MSG_MAX + 128];
				snprintf(e, sizeof(e), "%s:%s:%s%s", err.code, err.message,
				         err.field[0] ? err.field : "",
				         err.field[0] ? " --" : "--");
				j->nfailed++;
				result_row(&j->failed, "", e, vals, nv);
			}
			free_fields(vals, nv);
			if (!more)
				break;
		}
		org_unlock(sim);
	}
	free_fields(hdr, nh);
	j->processing_ms = sim_now_ms(sim) - start;
	snprintf(j->state, sizeof(j->state), "JobComplete");
}

/* ---- HTTP ------------------------------------------------------------------------------- */

static const char *delim_name(char d)
{
	switch (d) {
	case '\t': return "TAB";
	case '|': return "PIPE";
	case ';': return "SEMICOLON";
	case '^': return "CARET";
	case '`': return "BACKQUOTE";
	default: return "COMMA";
	}
}

static json_t *job_info(const struct job *j, int full)
{
	char url[128];
	snprintf(url, sizeof(url), "services/data/v%s/jobs/ingest/%s/batches", j->api_version,
	         j->id);
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:f,s:s,s:s,s:s,s:s}", "id",
	                      j->id, "operation", j->operation, "object", j->object, "createdById",
	                      j->user, "createdDate", j->created, "systemModstamp", j->modstamp,
	                      "state", j->state, "concurrencyMode", "Parallel", "contentType",
	                      "CSV", "apiVersion", strtod(j->api_version, NULL), "contentUrl", url,
	                      "lineEnding", j->line_ending, "columnDelimiter", delim_name(j->delim),
	                      "jobType", "V2Ingest");
	if (full) {
		json_object_set_new(o, "numberRecordsProcessed", json_integer(j->processed));
		json_object_set_new(o, "numberRecordsFailed", json_integer(j->nfailed));
		json_object_set_new(o, "retries", json_integer(0));
		json_object_set_new(o, "totalProcessingTime", json_integer(j->processing_ms));
		json_object_set_new(o, "apiActiveProcessingTime", json_integer(j->processing_ms));
		json_object_set_new(o, "apexProcessingTime", json_integer(0));
	}
	return o;
}

static void bulk_error(struct sim_resp *resp, int status, const char *code, const char *msg)
{
	sim_resp_error(resp, status, code, msg, NULL);
}

static struct job *find_locked(const char *id)
{
	for (size_t i = 0; i < BULK_MAX_JOBS; i++)
		if (jobs[i] && strncmp(jobs[i]->id, id, 15) == 0)
			return jobs[i];
	return NULL;
}

static void create_job(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	json_error_t jerr;
	json_t *b = json_loadb(req->body, req->body_len, 0, &jerr);
	const char *object = json_string_value(json_object_get(b, "object"));
	const char *op = json_string_value(json_object_get(b, "operation"));
	const char *le = json_string_value(json_object_get(b, "lineEnding"));
	const char *cd = json_string_value(json_object_get(b, "columnDelimiter"));
	const char *ct = json_string_value(json_object_get(b, "contentType"));
	static const char *const ops[] = {"insert", "update", "upsert", "delete", "hardDelete"};
	static const char *const delims[][2] = {{"COMMA", ","}, {"TAB", "\t"},
	                                        {"PIPE", "|"},  {"SEMICOLON", ";"},
	                                        {"CARET", "^"}, {"BACKQUOTE", "`"}};
	int op_ok = 0;
	char delim = ',';

	if (!b) {
		bulk_error(resp, 400, "JSON_PARSER_ERROR", jerr.text);
		return;
	}
	for (size_t i = 0; op && i < 5; i++)
		op_ok |= strcmp(op, ops[i]) == 0;
	if (cd) {
		delim = 0;
		for (size_t i = 0; i < 6; i++)
			if (strcmp(cd, delims[i][0]) == 0)
				delim = delims[i][1][0];
	}
	if (!object || !org_object(object)) {
		char msg[160];
		snprintf(msg, sizeof(msg), "Unable to find object: %s", object ? object : "");
		json_decref(b);
		bulk_error(resp, 400, "INVALIDJOB", msg);
		return;
	}
	if (!op_ok || !delim || (ct && strcmp(ct, "CSV") != 0) ||
	    (le && strcmp(le, "LF") != 0 && strcmp(le, "CRLF") != 0)) {
		json_decref(b);
		bulk_error(resp, 400, "INVALIDJOB", "Invalid job specification");
		return;
	}
	struct job *j = xcalloc(1, sizeof(*j));
	snprintf(j->object, sizeof(j->object), "%s", org_object(object)->name);
	snprintf(j->operation, sizeof(j->operation), "%s", op);
	snprintf(j->state, sizeof(j->state), "Open");
	snprintf(j->line_ending, sizeof(j->line_ending), "%s", le ? le : "LF");
	snprintf(j->api_version, sizeof(j->api_version), "%s", req->api_version);
	snprintf(j->user, sizeof(j->user), "%s", req->user_id);
	j->delim = delim;
	rest_origin(req, j->origin, sizeof(j->origin));
	sim_format_datetime(sim_now_ms(sim), j->created, sizeof(j->created));
	snprintf(j->modstamp, sizeof(j->modstamp), "%s", j->created);
	json_decref(b);

	pthread_mutex_lock(&jobs_lock);
	sfid_make(j->id, "750", (sim->cfg.seed % 1000) * 1000000000ull + ++job_counter);
	size_t slot = BULK_MAX_JOBS;
	for (size_t i = 0; i < BULK_MAX_JOBS && slot == BULK_MAX_JOBS; i++)
		if (!jobs[i])
			slot = i;
	for (size_t i = 0; i < BULK_MAX_JOBS && slot == BULK_MAX_JOBS; i++)
		if (strcmp(jobs[i]->state, "Open") != 0 && strcmp(jobs[i]->state, "UploadComplete"))
			slot = i;
	if (slot == BULK_MAX_JOBS) {
		pthread_mutex_unlock(&jobs_lock);
		job_free(j);
		bulk_error(resp, 400, "LIMIT_EXCEEDED", "Too many open jobs");
		return;
	}
	job_free(jobs[slot]);
	jobs[slot] = j;
	json_t *info = job_info(j, 0);
	pthread_mutex_unlock(&jobs_lock);
	sim_resp_json(resp, 200, info);
}

static void list_jobs(struct sim_resp *resp)
{
	json_t *arr = json_array();
	pthread_mutex_lock(&jobs_lock);
	for (size_t i = 0; i < BULK_MAX_JOBS; i++)
		if (jobs[i])
			json_array_append_new(arr, job_info(jobs[i], 0));
	pthread_mutex_unlock(&jobs_lock);
	sim_resp_json(resp, 200,
	              json_pack("{s:b,s:o,s:n}", "done", 1, "records", arr, "nextRecordsUrl"));
}

void rest_bulk(struct sim *sim, const struct sim_req *req, struct sim_resp *resp,
               const char *rest_path)
{
	char id[SIM_ID_BUF + 8] = "", sub[32] = "";
	const char *m = req->method;

	if (rest_path[0] == '\0' || strcmp(rest_path, "/") == 0) {
		if (strcmp(m, "POST") == 0)
			create_job(sim, req, resp);
		else if (strcmp(m, "GET") == 0)
			list_jobs(resp);
		else
			bulk_error(resp, 405, "METHOD_NOT_ALLOWED", "HTTP Method not allowed");
		return;
	}
	const char *p = rest_path + 1;
	size_t n = strcspn(p, "/");
	if (n >= sizeof(id)) {
		bulk_error(resp, 404, "NOT_FOUND", "The requested resource does not exist");
		return;
	}
	memcpy(id, p, n);
	p += n;
	if (*p == '/')
		p++;
	snprintf(sub, sizeof(sub), "%.*s", (int)strcspn(p, "/"), p);

	pthread_mutex_lock(&jobs_lock);
	struct job *j = find_locked(id);
	if (!j) {
		pthread_mutex_unlock(&jobs_lock);
		bulk_error(resp, 404, "NOT_FOUND", "The requested resource does not exist");
		return;
	}
	if (sub[0] == '\0') {
		if (strcmp(m, "GET") == 0) {
			sim_resp_json(resp, 200, job_info(j, 1));
		} else if (strcmp(m, "DELETE") == 0) {
			if (strcmp(j->state, "Open") == 0) {
				bulk_error(resp, 400, "INVALIDJOBSTATE",
				           "Deleting an open job is not allowed");
			} else {
				for (size_t i = 0; i < BULK_MAX_JOBS; i++)
					if (jobs[i] == j)
						jobs[i] = NULL;
				job_free(j);
				resp->status = 204;
			}
		} else if (strcmp(m, "PATCH") == 0) {
			json_t *b = json_loadb(req->body, req->body_len, 0, NULL);
			const char *st = json_string_value(json_object_get(b, "state"));
			if (!st || (strcmp(st, "UploadComplete") && strcmp(st, "Aborted"))) {
				bulk_error(resp, 400, "INVALIDJOBSTATE", "Invalid state");
			} else if (strcmp(j->state, "Open") != 0) {
				bulk_error(resp, 409, "INVALIDJOBSTATE", "Job is not open");
			} else if (strcmp(st, "Aborted") == 0) {
				snprintf(j->state, sizeof(j->state), "Aborted");
				buf_add(&j->unprocessed, j->data.p ? j->data.p : "", j->data.len);
				sim_resp_json(resp, 200, job_info(j, 0));
			} else {
				/* The answer says UploadComplete; the next GET sees the
				 * outcome, as when Salesforce finishes quickly. */
				snprintf(j->state, sizeof(j->state), "UploadComplete");
				sim_format_datetime(sim_now_ms(sim), j->modstamp,
				                    sizeof(j->modstamp));
				sim_resp_json(resp, 200, job_info(j, 0));
				if (!j->data.len)
					snprintf(j->state, sizeof(j->state), "Failed");
				else
					process(sim, j);
			}
			json_decref(b);
		} else {
			bulk_error(resp, 405, "METHOD_NOT_ALLOWED", "HTTP Method not allowed");
		}
	} else if (strcmp(sub, "batches") == 0 && strcmp(m, "PUT") == 0) {
		if (strcmp(j->state, "Open") != 0) {
			bulk_error(resp, 409, "INVALIDJOBSTATE", "Job is not open for uploads");
		} else if (j->data.len + req->body_len > BULK_MAX_DATA) {
			bulk_error(resp, 413, "REQUEST_ENTITY_TOO_LARGE", "Upload too large");
		} else {
			buf_add(&j->data, req->body, req->body_len);
			resp->status = 201;
		}
	} else if (strcmp(m, "GET") == 0 &&
	           (strcmp(sub, "successfulResults") == 0 || strcmp(sub, "failedResults") == 0 ||
	            strcmp(sub, "unprocessedrecords") == 0)) {
		struct buf *b = sub[0] == 's'   ? &j->ok
		                : sub[0] == 'f' ? &j->failed
		                                : &j->unprocessed;
		if (strcmp(j->state, "JobComplete") != 0 && strcmp(j->state, "Failed") != 0 &&
		    strcmp(j->state, "Aborted") != 0)
			bulk_error(resp, 400, "INVALIDJOBSTATE", "Job is not complete");
		else
			sim_resp_text(resp, 200, "text/csv", b->p ? b->p : "");
	} else {
		bulk_error(resp, 404, "NOT_FOUND", "The requested resource does not exist");
	}
	pthread_mutex_unlock(&jobs_lock);
}
