/*
 * metrics.h - Prometheus counters, gauges and histograms with labels.
 *
 * One process-wide registry (like log.h, the process has one /metrics).
 * Families are created once, usually at start-up; creating a family with a
 * name that exists returns the existing one (same type and labels required).
 * Updates are thread-safe: librdkafka and libmicrohttpd call us from their own
 * threads. Output is text exposition format 0.0.4 and passes
 * `promtool check metrics`. Label values are escaped; never put record or user
 * ids into label values (DESIGN.md section 7): a family keeps at most
 * METRICS_MAX_SERIES series and drops updates to new ones past that (one
 * warning line), so a mistake cannot exhaust memory.
 */
#ifndef SFK_METRICS_H
#define SFK_METRICS_H

#include <stddef.h>

struct metric; /* one family: name, help, type, label names, its series */

#define METRICS_MAX_LABELS 4
#define METRICS_MAX_SERIES 10000

/*
 * labels: comma-separated label names ("object,change_type") or NULL for none.
 * Returned family is owned by the registry and valid until metrics_reset().
 * Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; a bad name or type clash aborts
 * (a programming error, caught by the unit tests).
 */
struct metric *metrics_counter(const char *name, const char *help, const char *labels);
struct metric *metrics_gauge(const char *name, const char *help, const char *labels);
/* buckets: strictly increasing upper bounds, +Inf implied; copied. */
struct metric *metrics_histogram(const char *name, const char *help, const char *labels,
                                 const double *buckets, size_t nbuckets);

/*
 * Updates. The variadic arguments are the label values (const char *), exactly
 * as many as the family has label names, in the same order.
 */
void metric_add(struct metric *m, double v, ...);     /* counter (v >= 0) or gauge */
void metric_set(struct metric *m, double v, ...);     /* gauge */
void metric_observe(struct metric *m, double v, ...); /* histogram */

/* Read back one series (0 if absent). For histograms: the count. For tests. */
double metric_value(struct metric *m, ...);

/* Render every family. Returns a new string (free()); *len gets its length. */
char *metrics_render(size_t *len);

/* Drop every family (tests only). */
void metrics_reset(void);

/*
 * sfk_build_info{version="<version>"} 1, the standard build gauge. Returns the
 * family (owned by the registry). version NULL -> "unknown".
 */
struct metric *metrics_register_build_info(const char *version);

/* Default latency buckets in seconds (5 ms .. 60 s), for *_duration_seconds. */
extern const double metrics_latency_buckets[];
extern const size_t metrics_latency_nbuckets;

#endif
