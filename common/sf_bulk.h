/*
 * sf_bulk.h - Bulk API 2.0 ingest for large writes, and the CSV it speaks.
 *
 * CSV follows RFC 4180: a field holding a comma, quote, CR or LF is quoted and
 * its quotes doubled; a JSON null becomes #N/A (Bulk 2.0's "set to null").
 * A job is created, its CSV PUT, closed with UploadComplete and polled with
 * backoff until JobComplete/Failed/Aborted; failedResults come back parsed
 * (sf__Id, sf__Error "CODE:message", the record's fields).
 */
#ifndef SFK_SF_BULK_H
#define SFK_SF_BULK_H

#include <stddef.h>
#include <jansson.h>

#include "err.h"
#include "sf_err.h"
#include "sf_rest.h"

#define SF_BULK_UPLOAD_MAX   (100u * 1024 * 1024) /* raw CSV per job (150 MB base64) */
#define SF_BULK_CSV_ROWS_MAX 1000000              /* rows parsed from a results CSV */
#define SF_BULK_CSV_COLS_MAX 1000                 /* columns per row */

/* ---- CSV (pure) ---- */

/*
 * CSV text for records (borrowed JSON array of objects) with the given
 * columns (header row first, LF line endings). Values: strings as is,
 * integers/reals as numbers, true/false, null -> #N/A, a missing key -> empty
 * (left unchanged by update). Returns a new string (free()) and its length in
 * *len, or NULL with errstr for an object/array value or a non-object record.
 */
char *sf_bulk_csv(const char *const *columns, size_t ncol, json_t *records, size_t *len,
                  char *errstr, size_t errlen);

/* Append one field to *buf (realloc-ed; *len and *cap track it), quoted if needed. */
void sf_bulk_csv_field(char **buf, size_t *len, size_t *cap, const char *v);

/* A parsed CSV: rows of fields, all owned by the table. */
struct sf_csv_row {
	char **f;
	size_t n;
};
struct sf_csv_table {
	struct sf_csv_row *rows;
	size_t nrows;
};
/* Parse RFC 4180 text (LF or CRLF). Returns SFK_OK, or SFK_ERR_PARSE /
 * SFK_ERR_TOO_LARGE with errstr (unterminated quote, text after a closing
 * quote, over the row/column caps). Free with sf_csv_table_free. */
enum sfk_err sf_csv_parse(const char *buf, size_t len, struct sf_csv_table *t, char *errstr,
                          size_t errlen);
void sf_csv_table_free(struct sf_csv_table *t); /* NULL ok; leaves it empty */

/* One failed record from failedResults. */
struct sf_bulk_failure {
	char id[19];                /* sf__Id, else the row's Id column, else "" (insert) */
	char code[SF_ERR_CODE_MAX]; /* "INVALID_CROSS_REFERENCE_KEY" */
	char message[SF_ERR_MSG_MAX];
	enum sfk_err err; /* sf_err_map(code, 0) */
	json_t *fields;   /* the row's other columns {"Name":"x"}: owned (new reference) */
};
/* Parse a failedResults CSV. *out: new array of *n entries (sf_bulk_failures_free). */
enum sfk_err sf_bulk_parse_failed(const char *csv, size_t len, struct sf_bulk_failure **out,
                                  size_t *n, char *errstr, size_t errlen);
void sf_bulk_failures_free(struct sf_bulk_failure *f, size_t n); /* NULL ok */

/* ---- Job lifecycle ---- */

struct sf_bulk_opts {
	const char *object;            /* "Lead"; required */
	const char *operation;         /* insert|update|upsert|delete|hardDelete; required */
	const char *external_id_field; /* upsert only, else NULL */
	long poll_initial_ms;          /* first poll delay; 0 = 500 */
	long poll_max_ms;              /* cap of one poll delay; 0 = 10000 */
	long timeout_ms;               /* give up polling after; 0 = 30 min (job is aborted) */
	unsigned flags;                /* SF_REQ_ESSENTIAL */
};

struct sf_bulk_result {
	char job_id[19];
	char state[32];                     /* JobComplete, Failed, Aborted */
	long long processed, failed;        /* numberRecordsProcessed / numberRecordsFailed */
	char error_message[SF_ERR_MSG_MAX]; /* the job's errorMessage when Failed */
	struct sf_bulk_failure *failures;   /* failedResults rows, owned */
	size_t nfailures;
};
void sf_bulk_result_clear(struct sf_bulk_result *res); /* NULL ok */

/*
 * Run one ingest job with csv (borrowed, <= SF_BULK_UPLOAD_MAX bytes; build it
 * with sf_bulk_csv). Returns SFK_OK when the job reached JobComplete (some
 * records may still have failed: res->failures), SFK_ERR_SF_PERMANENT when it
 * ended Failed/Aborted (res->state, res->error_message), SFK_ERR_TIMEOUT when
 * polling ran out (the job is aborted), or the request error. Caller clears res.
 */
enum sfk_err sf_bulk_run(struct sf_rest *r, const struct sf_bulk_opts *o, const char *csv,
                         size_t len, struct sf_bulk_result *res, struct sf_error *err);

#endif
