/*
 * soql_int.h - private to soql.c (parse) and soql_eval.c (bind, match, run):
 * the parsed query's shape and the helpers both halves share. Not part of
 * the API; the emulator includes soql.h only.
 */
#ifndef SFK_SIM_SOQL_INT_H
#define SFK_SIM_SOQL_INT_H

#include <stdint.h>

#include "soql.h"

#define MS_PER_DAY INT64_C(86400000)

enum vkind { V_NULL, V_BOOL, V_NUM, V_STR, V_DATE, V_DATETIME, V_DATEFN };

/* Relative date literals (TODAY, LAST_N_DAYS:n ...). */
enum datefn {
	DF_TODAY,
	DF_YESTERDAY,
	DF_TOMORROW,
	DF_LAST_WEEK,
	DF_THIS_WEEK,
	DF_NEXT_WEEK,
	DF_LAST_MONTH,
	DF_THIS_MONTH,
	DF_NEXT_MONTH,
	DF_LAST_YEAR,
	DF_THIS_YEAR,
	DF_NEXT_YEAR,
	DF_LAST_90_DAYS,
	DF_NEXT_90_DAYS,
	DF_LAST_N_DAYS,
	DF_NEXT_N_DAYS,
	DF_N_DAYS_AGO
};

/* A literal. Dates and datetimes are half-open ranges so that = < <= > >=
 * treat a day, an instant and a relative literal the same way. */
struct value {
	enum vkind kind;
	size_t pos, len; /* source span */
	int b;
	double num;
	char *str;      /* V_STR: decoded; a LIKE pattern keeps the escapes \\, \% and \_ */
	int64_t lo, hi; /* V_DATE: days [lo,hi); V_DATETIME: ms [lo,hi) */
	enum datefn fn; /* V_DATEFN */
	long n;         /* V_DATEFN: the :n argument */
};

/* A field reference as written; bind fills the canonical parts. */
struct fref {
	char *path; /* as written ("owner.name"), alias prefix kept */
	size_t pos, len;
	char *name;        /* canonical field on the (target) object */
	char *rel;         /* canonical relationship ("Owner") or NULL */
	char *rel_object;  /* "User" */
	char *rel_idfield; /* "OwnerId" */
	char *display;     /* "Name" or "Owner.Name" */
	enum soql_type type;
};

enum op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOT_IN, OP_LIKE };
enum nkind { N_AND, N_OR, N_NOT, N_CMP };

struct node {
	enum nkind kind;
	struct node **kids; /* N_AND/N_OR: >= 2; N_NOT: 1 */
	size_t nkids;
	struct fref f; /* N_CMP */
	enum op op;
	size_t op_pos;
	struct value *vals; /* N_CMP: 1, or the IN list */
	size_t nvals;
};

struct order {
	struct fref f;
	int desc;
	int nulls_last;
};

struct soql_query {
	char *text; /* own copy, for error snippets at bind time */
	size_t len;
	int is_count;
	struct fref *fields;
	size_t nfields;
	char *object;
	size_t object_pos, object_len;
	char *alias;
	struct node *where;
	struct order *order;
	size_t norder;
	long limit, offset;
	int bound;
};

/* Fill err with a Salesforce-shaped positioned message (snippet, caret,
 * "ERROR at Row:R:Column:C", reason). pos is a byte offset into text. */
void soql_err_at(struct soql_error *err, const char *code, const char *text, size_t len, size_t pos,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Fill err without a position. */
void soql_err_plain(struct soql_error *err, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Days since 1970-01-01 for a proleptic Gregorian date, and back. */
int64_t soql_days_from_civil(int64_t y, unsigned m, unsigned d);
void soql_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);
/* Strict "YYYY-MM-DD" -> days. 0 or -1. */
int soql_parse_date(const char *s, size_t n, int64_t *days);
/* "YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|+hhmm)" -> ms since epoch. 0 or -1. */
int soql_parse_datetime(const char *s, size_t n, int64_t *ms);
/* Range [lo,hi) in days of a relative date literal at now (UTC days). */
void soql_datefn_range(enum datefn fn, long n, time_t now, int64_t *lo, int64_t *hi);

/* ASCII case-insensitive compare of NUL-terminated strings. */
int soql_strcasecmp(const char *a, const char *b);

#endif
