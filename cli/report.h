/*
 * report.h - `sfk report`: flywheel JSONL -> metrics (report.c) -> files:
 * dashboard JSON, CSVs (report.c) and a self-contained HTML page with
 * inline SVG charts (report_html.c). The metric core works on a JSON array
 * of flywheel records, so it is testable without files.
 */
#ifndef SFK_CLI_REPORT_H
#define SFK_CLI_REPORT_H

#include <stdio.h>

#include <jansson.h>

#define REPORT_LINE_MAX (1024 * 1024) /* longest JSONL line read (records are <= 256 KiB) */

struct report_opts {
	double sla_default;   /* minutes: leads whose segment has no SLA of its own */
	json_t *sla_segments; /* borrowed: {"ENT": 30, ...} from the routing policy, or NULL */
	json_t *owner_names;  /* borrowed: {owner id: name} from the policy's pools, or NULL */
	const char *from, *to;
};

/*
 * Compute every figure from records (borrowed array of flywheel records,
 * already limited to the period). Returns the dashboard (new reference):
 * {period, sla, ttfr, routing, templates}. Time figures are medians/P95 with
 * linear interpolation between closest ranks (numpy's default).
 */
json_t *report_compute(json_t *records, const struct report_opts *o);

/* Linear-interpolated quantile q (0..1) of v[0..n-1] (sorted in place). n > 0. */
double report_quantile(double *v, size_t n, double q);

/* Write the HTML page for dashboard d (borrowed) to f. Returns 0 or -1. */
int report_html(FILE *f, json_t *d);

#endif
