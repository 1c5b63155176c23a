#include "sf_bulk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "sfid.h"
#include "xmem.h"

/* ---- CSV writing ---- */

static void put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*buf = xrealloc(*buf, *cap);
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
}

void sf_bulk_csv_field(char **buf, size_t *len, size_t *cap, const char *v)
{
	if (!strpbrk(v, ",\"\r\n")) {
		put(buf, len, cap, v, strlen(v));
		return;
	}
	put(buf, len, cap, "\"", 1);
	for (const char *p = v; *p; p++) {
		if (*p == '"')
			put(buf, len, cap, "\"\"", 2);
		else
			put(buf, len, cap, p, 1);
	}
	put(buf, len, cap, "\"", 1);
}

char *sf_bulk_csv(const char *const *columns, size_t ncol, json_t *records, size_t *outlen,
                  char *errstr, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	if (!json_is_array(records) || ncol == 0) {
		snprintf(errstr, errlen, "need columns and an array of records");
		return NULL;
	}
	for (size_t c = 0; c < ncol; c++) {
		if (c)
			put(&buf, &len, &cap, ",", 1);
		sf_bulk_csv_field(&buf, &len, &cap, columns[c]);
	}
	put(&buf, &len, &cap, "\n", 1);
	size_t i;
	json_t *rec;
	json_array_foreach(records, i, rec)
	{
		if (!json_is_object(rec)) {
			snprintf(errstr, errlen, "record %zu is not an object", i);
			goto fail;
		}
		for (size_t c = 0; c < ncol; c++) {
			json_t *v = json_object_get(rec, columns[c]);
			char num[64];
			const char *txt = "";
			if (c)
				put(&buf, &len, &cap, ",", 1);
			if (!v)
				txt = "";
			else if (json_is_null(v))
				txt = "#N/A";
			else if (json_is_string(v))
				txt = json_string_value(v);
			else if (json_is_integer(v)) {
				snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
				         json_integer_value(v));
				txt = num;
			} else if (json_is_real(v)) {
				snprintf(num, sizeof num, "%.17g", json_real_value(v));
				txt = num;
			} else if (json_is_boolean(v))
				txt = json_is_true(v) ? "true" : "false";
			else {
				snprintf(errstr, errlen, "record %zu field %s: nested value", i,
				         columns[c]);
				goto fail;
			}
			sf_bulk_csv_field(&buf, &len, &cap, txt);
		}
		put(&buf, &len, &cap, "\n", 1);
	}
	*outlen = len;
	return buf;
fail:
	free(buf);
	return NULL;
}

/* ---- CSV parsing ---- */

static void row_push(struct sf_csv_row *row, char *f)
{
	row->f = xrealloc(row->f, (row->n + 1) * sizeof *row->f);
	row->f[row->n++] = f;
}

void sf_csv_table_free(struct sf_csv_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows; i++) {
		for (size_t j = 0; j < t->rows[i].n; j++)
			free(t->rows[i].f[j]);
		free(t->rows[i].f);
	}
	free(t->rows);
	t->rows = NULL;
	t->nrows = 0;
}

enum sfk_err sf_csv_parse(const char *buf, size_t len, struct sf_csv_table *t, char *errstr,
                          size_t errlen)
{
	enum sfk_err rc = SFK_OK;
	struct sf_csv_row row = {0};
	char *fld = NULL;
	size_t fl = 0, fc = 0, i = 0;
	t->rows = NULL;
	t->nrows = 0;
	if (len == 0)
		return SFK_OK;
	for (;;) {
		/* One field starting at i. */
		fl = 0;
		fld = xmalloc(1);
		fc = 1;
		fld[0] = '\0';
		if (i < len && buf[i] == '"') {
			i++;
			for (;;) {
				if (i >= len) {
					snprintf(errstr, errlen,
					         "unterminated quoted field in row %zu",
					         t->nrows + 1);
					rc = SFK_ERR_PARSE;
					goto out;
				}
				if (buf[i] == '"') {
					if (i + 1 < len && buf[i + 1] == '"') {
						put(&fld, &fl, &fc, "\"", 1);
						i += 2;
						continue;
					}
					i++;
					break;
				}
				put(&fld, &fl, &fc, buf + i, 1);
				i++;
			}
			if (i < len && buf[i] != ',' && buf[i] != '\n' && buf[i] != '\r') {
				snprintf(errstr, errlen, "text after a closing quote in row %zu",
				         t->nrows + 1);
				rc = SFK_ERR_PARSE;
				goto out;
			}
		} else {
			size_t s = i;
			while (i < len && buf[i] != ',' && buf[i] != '\n' && buf[i] != '\r')
				i++;
			put(&fld, &fl, &fc, buf + s, i - s);
		}
		if (row.n >= SF_BULK_CSV_COLS_MAX) {
			snprintf(errstr, errlen, "more than %d columns", SF_BULK_CSV_COLS_MAX);
			rc = SFK_ERR_TOO_LARGE;
			goto out;
		}
		row_push(&row, fld);
		fld = NULL;
		if (i < len && buf[i] == ',') {
			i++;
			continue;
		}
		/* End of row: CRLF, LF, lone CR or end of input. */
		if (i < len && buf[i] == '\r')
			i++;
		if (i < len && buf[i] == '\n')
			i++;
		if (t->nrows >= SF_BULK_CSV_ROWS_MAX) {
			snprintf(errstr, errlen, "more than %d rows", SF_BULK_CSV_ROWS_MAX);
			rc = SFK_ERR_TOO_LARGE;
			goto out;
		}
		t->rows = xrealloc(t->rows, (t->nrows + 1) * sizeof *t->rows);
		t->rows[t->nrows++] = row;
		memset(&row, 0, sizeof row);
		if (i >= len)
			break;
	}
out:
	free(fld);
	for (size_t j = 0; j < row.n; j++)
		free(row.f[j]);
	free(row.f);
	if (rc != SFK_OK)
		sf_csv_table_free(t);
	return rc;
}

/* ---- failedResults ---- */

void sf_bulk_failures_free(struct sf_bulk_failure *f, size_t n)
{
	if (!f)
		return;
	for (size_t i = 0; i < n; i++)
		json_decref(f[i].fields);
	free(f);
}

enum sfk_err sf_bulk_parse_failed(const char *csv, size_t len, struct sf_bulk_failure **out,
                                  size_t *n, char *errstr, size_t errlen)
{
	struct sf_csv_table t;
	*out = NULL;
	*n = 0;
	enum sfk_err rc = sf_csv_parse(csv, len, &t, errstr, errlen);
	if (rc != SFK_OK)
		return rc;
	if (t.nrows == 0)
		goto out;
	const struct sf_csv_row *hdr = &t.rows[0];
	long id_col = -1, err_col = -1, rec_id_col = -1;
	for (size_t j = 0; j < hdr->n; j++) {
		if (strcmp(hdr->f[j], "sf__Id") == 0)
			id_col = (long)j;
		else if (strcasecmp(hdr->f[j], "Id") == 0)
			rec_id_col = (long)j;
		else if (strcmp(hdr->f[j], "sf__Error") == 0)
			err_col = (long)j;
	}
	if (err_col < 0) {
		snprintf(errstr, errlen, "failedResults without an sf__Error column");
		rc = SFK_ERR_PARSE;
		goto out;
	}
	struct sf_bulk_failure *f = xcalloc(t.nrows, sizeof *f);
	size_t k = 0;
	for (size_t i = 1; i < t.nrows; i++) {
		const struct sf_csv_row *row = &t.rows[i];
		if (row->n == 1 && row->f[0][0] == '\0')
			continue; /* blank line */
		if (row->n != hdr->n) {
			snprintf(errstr, errlen, "row %zu has %zu fields, header has %zu", i,
			         row->n, hdr->n);
			sf_bulk_failures_free(f, k);
			rc = SFK_ERR_PARSE;
			goto out;
		}
		struct sf_bulk_failure *x = &f[k++];
		/* sf__Id is empty for failed rows in some answers (and always for
		 * inserts): an update's own Id column still names the record. */
		if (id_col >= 0 && sfid_valid(row->f[id_col]))
			snprintf(x->id, sizeof x->id, "%s", row->f[id_col]);
		else if (rec_id_col >= 0 && sfid_valid(row->f[rec_id_col]))
			snprintf(x->id, sizeof x->id, "%s", row->f[rec_id_col]);
		const char *e = row->f[err_col], *colon = strchr(e, ':');
		if (colon) {
			snprintf(x->code, sizeof x->code, "%.*s", (int)(colon - e), e);
			snprintf(x->message, sizeof x->message, "%s", colon + 1);
		} else {
			snprintf(x->message, sizeof x->message, "%s", e);
		}
		x->err = sf_err_map(x->code, 0);
		x->fields = json_object();
		for (size_t j = 0; j < hdr->n; j++)
			if ((long)j != id_col && (long)j != err_col)
				json_object_set_new(x->fields, hdr->f[j], json_string(row->f[j]));
	}
	*out = f;
	*n = k;
out:
	sf_csv_table_free(&t);
	return rc;
}

/* ---- Job lifecycle ---- */

void sf_bulk_result_clear(struct sf_bulk_result *res)
{
	if (!res)
		return;
	sf_bulk_failures_free(res->failures, res->nfailures);
	memset(res, 0, sizeof *res);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum sfk_err json_call(struct sf_rest *r, const char *method, const char *path, json_t *body,
                              unsigned flags, json_t **out, struct sf_error *err)
{
	struct sf_response resp;
	char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
	enum sfk_err rc = sf_rest_request(r, method, path, "bulk", "application/json", txt,
	                                  txt ? strlen(txt) : 0, flags, &resp, err);
	free(txt);
	if (rc == SFK_OK && out) {
		*out = resp.body ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
		if (!*out) {
			sf_error_clear(err);
			rc = err->err = SFK_ERR_PARSE;
			snprintf(err->message, sizeof err->message, "bulk %s %s: response not JSON",
			         method, path);
		}
	}
	sf_response_clear(&resp);
	return rc;
}

static void abort_job(struct sf_rest *r, const char *path)
{
	struct sf_error e;
	json_t *b = json_pack("{s:s}", "state", "Aborted");
	json_call(r, "PATCH", path, b, SF_REQ_ESSENTIAL, NULL, &e);
	json_decref(b);
}

enum sfk_err sf_bulk_run(struct sf_rest *r, const struct sf_bulk_opts *o, const char *csv,
                         size_t len, struct sf_bulk_result *res, struct sf_error *err)
{
	enum sfk_err rc;
	json_t *job = NULL, *info = NULL, *body = NULL;
	char *job_path = NULL, *path = NULL;
	struct sf_response resp = {0};

	memset(res, 0, sizeof *res);
	sf_error_clear(err);
	if (!o->object || !o->operation || len > SF_BULK_UPLOAD_MAX) {
		err->err = rc = len > SF_BULK_UPLOAD_MAX ? SFK_ERR_TOO_LARGE : SFK_ERR_INVALID;
		snprintf(err->message, sizeof err->message,
		         len > SF_BULK_UPLOAD_MAX ? "CSV larger than SF_BULK_UPLOAD_MAX: split it"
		                                  : "bulk job needs object and operation");
		return rc;
	}
	body = json_pack("{s:s, s:s, s:s, s:s}", "object", o->object, "operation", o->operation,
	                 "contentType", "CSV", "lineEnding", "LF");
	if (o->external_id_field)
		json_object_set_new(body, "externalIdFieldName", json_string(o->external_id_field));
	rc = json_call(r, "POST", "jobs/ingest", body, o->flags, &job, err);
	if (rc != SFK_OK)
		goto out;
	const char *id = json_string_value(json_object_get(job, "id"));
	if (!id || !sfid_valid(id)) {
		err->err = rc = SFK_ERR_PARSE;
		snprintf(err->message, sizeof err->message, "bulk job created without a valid id");
		goto out;
	}
	snprintf(res->job_id, sizeof res->job_id, "%s", id);
	job_path = xasprintf("jobs/ingest/%s/", res->job_id);
	log_info("bulk job created job=%s object=%s operation=%s bytes=%zu", res->job_id, o->object,
	         o->operation, len);

	path = xasprintf("jobs/ingest/%s/batches", res->job_id);
	rc = sf_rest_request(r, "PUT", path, "bulk", "text/csv", csv, len,
	                     o->flags | SF_REQ_ESSENTIAL, &resp, err);
	sf_response_clear(&resp);
	if (rc != SFK_OK) {
		abort_job(r, job_path);
		goto out;
	}
	json_decref(body);
	body = json_pack("{s:s}", "state", "UploadComplete");
	rc = json_call(r, "PATCH", job_path, body, o->flags | SF_REQ_ESSENTIAL, NULL, err);
	if (rc != SFK_OK) {
		abort_job(r, job_path);
		goto out;
	}

	long delay = o->poll_initial_ms > 0 ? o->poll_initial_ms : 500;
	long maxd = o->poll_max_ms > 0 ? o->poll_max_ms : 10000;
	long long deadline = mono_ms() + (o->timeout_ms > 0 ? o->timeout_ms : 30 * 60 * 1000L);
	for (;;) {
		sleep_ms(delay);
		json_decref(info);
		info = NULL;
		rc = json_call(r, "GET", job_path, NULL, 0, &info, err);
		if (rc != SFK_OK)
			goto out;
		const char *state = json_string_value(json_object_get(info, "state"));
		snprintf(res->state, sizeof res->state, "%s", state ? state : "");
		res->processed =
		        json_integer_value(json_object_get(info, "numberRecordsProcessed"));
		res->failed = json_integer_value(json_object_get(info, "numberRecordsFailed"));
		if (state && (strcmp(state, "JobComplete") == 0 || strcmp(state, "Failed") == 0 ||
		              strcmp(state, "Aborted") == 0))
			break;
		if (mono_ms() + delay > deadline) {
			abort_job(r, job_path);
			err->err = rc = SFK_ERR_TIMEOUT;
			snprintf(err->message, sizeof err->message,
			         "bulk job %s still %s at the deadline: aborted", res->job_id,
			         res->state);
			goto out;
		}
		delay = delay * 3 / 2 > maxd ? maxd : delay * 3 / 2;
	}
	if (strcmp(res->state, "JobComplete") != 0) {
		const char *m = json_string_value(json_object_get(info, "errorMessage"));
		snprintf(res->error_message, sizeof res->error_message, "%s", m ? m : "");
		err->err = rc = SFK_ERR_SF_PERMANENT;
		snprintf(err->code, sizeof err->code, "BULK_%s", res->state);
		snprintf(err->message, sizeof err->message, "bulk job %s ended %s: %s", res->job_id,
		         res->state, m ? m : "(no errorMessage)");
		goto out;
	}
	if (res->failed > 0) {
		free(path);
		path = xasprintf("jobs/ingest/%s/failedResults/", res->job_id);
		rc = sf_rest_request(r, "GET", path, "bulk", NULL, NULL, 0, SF_REQ_ACCEPT_CSV,
		                     &resp, err);
		if (rc != SFK_OK)
			goto out;
		char es[256];
		rc = sf_bulk_parse_failed(resp.body ? resp.body : "", resp.len, &res->failures,
		                          &res->nfailures, es, sizeof es);
		if (rc != SFK_OK) {
			sf_error_clear(err);
			err->err = rc;
			snprintf(err->message, sizeof err->message, "failedResults: %s", es);
			goto out;
		}
	}
	log_info("bulk job done job=%s state=%s processed=%lld failed=%lld", res->job_id,
	         res->state, res->processed, res->failed);
out:
	sf_response_clear(&resp);
	json_decref(body);
	json_decref(job);
	json_decref(info);
	free(job_path);
	free(path);
	return rc;
}
