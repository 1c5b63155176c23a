/*
 * sink.h - where sfk-loader puts flywheel records: pluggable backends.
 *
 * A sink is a const struct of function pointers chosen by name from config
 * (SFK_LOADER_SINKS=jsonl,es), one file per implementation: sink_jsonl.c,
 * sink_es.c. The loader hands every schema-valid record of a batch to each
 * enabled sink (write), then asks each to make the batch durable (flush);
 * Kafka offsets are committed only after every flush returned SFK_OK.
 */
#ifndef SFK_LOADER_SINK_H
#define SFK_LOADER_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <signal.h>

#include "err.h"

/* Everything a sink may need from the configuration (strings borrowed, valid
 * while the loader runs). */
struct sink_conf {
	/* JSONL */
	const char *dir;            /* FLYWHEEL_DIR */
	long long max_file_bytes;   /* size rotation: a new segment past this */
	long long compress_after_s; /* gzip a day's files this long after the day ended; <0 never */
	long long retention_s;      /* delete files whose day ended longer ago; 0 = keep */
	size_t dedup_window;        /* records per file scanned back on recovery (>= batch) */
	/* Elasticsearch */
	const char *es_url;
	const char *es_layout;  /* "single" or "monthly" */
	const char *es_index;   /* single index name, or prefix of monthly ones */
	const char *es_mapping; /* path of schemas/es_flywheel_index.json */
	size_t es_bulk_docs, es_bulk_bytes;
	long long es_timeout_ms;
	long long es_backoff_max_ms;
	const volatile sig_atomic_t *stop; /* set on shutdown: retry loops give up */
};

/* One schema-valid record of the batch. All fields borrowed for the call. */
struct sink_rec {
	json_t *rec;             /* the flywheel record */
	const char *line;        /* its compact serialization (no newline) */
	size_t len;              /* strlen(line) */
	const char *decision_id; /* request.metadata.decision_id */
	const char *workload_id;
	int64_t timestamp; /* epoch seconds */
	size_t idx;        /* position in the batch, handed back on reject */
};

/* A sink refuses record idx for good (malformed for the backend): the loader
 * dead-letters it with reason (borrowed for the call; no secrets). */
typedef void (*sink_reject_fn)(void *ctx, size_t idx, const char *error_type, const char *reason);

struct sink_ops {
	const char *name;
	/* New sink state, or NULL with errstr set (bad config, unreachable dir). */
	void *(*open)(const struct sink_conf *c, char *errstr, size_t errlen);
	/* Take one record of the current batch (buffer or send). SFK_OK, or a
	 * permanent error (errstr says why) for this record alone. */
	enum sfk_err (*write)(void *s, const struct sink_rec *r, char *errstr, size_t errlen);
	/* Make every record written since the last flush durable. SFK_OK (some
	 * may have been rejected through reject), a retriable error (the same
	 * flush may be called again: nothing is duplicated), or a fatal one. */
	enum sfk_err (*flush)(void *s, sink_reject_fn reject, void *ctx, char *errstr,
	                      size_t errlen);
	/* Periodic housekeeping (rotation, retention); may be NULL. */
	void (*tick)(void *s);
	/* Free the state; accepts NULL / *s == NULL, clears *s. */
	void (*close)(void **s);
};

extern const struct sink_ops sink_jsonl_ops;
extern const struct sink_ops sink_es_ops;

/* The backend called name ("jsonl", "es"), or NULL. Borrowed (static). */
const struct sink_ops *sink_find(const char *name);

#endif
