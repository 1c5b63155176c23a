/*
 * util.c - output and configuration helpers shared by the sfk subcommands.
 */
#include <ctype.h>
#include <math.h>
#include <time.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "xmem.h"

int cli_config(struct config **cfg, const char *prog, const char *synopsis,
               const struct config_entry *entries, size_t n, int argc, char **argv)
{
	*cfg = config_new(prog, entries, n);
	config_set_synopsis(*cfg, synopsis);
	int rc = config_load(*cfg, argc, argv);
	if (rc == CONFIG_EXIT_FAIL) {
		fprintf(stderr, "%s: see '%s --help'\n", prog, prog);
		return CLI_USAGE;
	}
	return rc;
}

json_t *cli_split(const char *s)
{
	json_t *a = json_array();
	while (s && *s) {
		const char *e = strchr(s, ',');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		while (n && isspace((unsigned char)*s)) {
			s++;
			n--;
		}
		while (n && isspace((unsigned char)s[n - 1]))
			n--;
		if (n)
			json_array_append_new(a, json_stringn(s, n));
		s = e ? e + 1 : NULL;
	}
	return a;
}

json_t *cli_workloads(const char *path)
{
	json_t *out = json_array();
	json_t *doc = path ? json_load_file(path, 0, NULL) : NULL;
	json_t *w = json_object_get(doc, "workloads");
	const char *k;
	json_t *v;
	json_object_foreach(w, k, v) json_array_append_new(out, json_string(k));
	json_decref(doc);
	if (json_array_size(out) == 0) {
		json_array_append_new(out, json_string("lead.route"));
		json_array_append_new(out, json_string("lead.first_touch_detect"));
		json_array_append_new(out, json_string("outreach.template_suggest"));
	}
	return out;
}

bool cli_stdout_tty(void)
{
	return isatty(STDOUT_FILENO);
}

bool cli_stderr_tty(void)
{
	return isatty(STDERR_FILENO);
}

struct cli_table {
	size_t ncols, nrows, cap;
	char **cells; /* nrows * ncols, row 0 = headers */
};

struct cli_table *cli_table_new(size_t ncols, const char *const *headers)
{
	struct cli_table *t = xcalloc(1, sizeof *t);
	t->ncols = ncols;
	cli_table_add(t, headers);
	return t;
}

void cli_table_add(struct cli_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = xrealloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
	}
	for (size_t i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = xstrdup(cells[i] ? cells[i] : "-");
	t->nrows++;
}

void cli_table_print(const struct cli_table *t)
{
	size_t *w = xcalloc(t->ncols, sizeof *w);
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t l = strlen(t->cells[r * t->ncols + c]);
			if (l > w[c])
				w[c] = l;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			if (c + 1 == t->ncols)
				printf("%s\n", s);
			else
				printf("%-*s  ", (int)w[c], s);
		}
	}
	free(w);
}

void cli_table_free(struct cli_table **pt)
{
	struct cli_table *t = pt ? *pt : NULL;
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
	*pt = NULL;
}

void cli_print_json(const json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (s)
		printf("%s\n", s);
	free(s);
}

char *cli_read_file(const char *path, size_t max, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;
	if (!f)
		return NULL;
	for (;;) {
		if (cap - n < 4096) {
			cap = cap ? cap * 2 : 65536;
			buf = xrealloc(buf, cap + 1);
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (n > max) {
			free(buf);
			fclose(f);
			errno = EFBIG;
			return NULL;
		}
		if (r == 0)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		errno = EIO;
		return NULL;
	}
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

/* "YYYY-MM-DDTHH:MM:SS[.fff](Z|+HHMM|+HH:MM)" -> epoch seconds (double), or NAN. */
double cli_parse_time(const char *s)
{
	struct tm tm = {0};
	int y, mo, d, h, mi, n = 0;
	double sec;
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%lf%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
		return NAN;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	double t = (double)timegm(&tm) + sec;
	const char *z = s + n;
	if (*z == '+' || *z == '-') {
		int oh = 0, om = 0;
		if (sscanf(z + 1, "%2d:%2d", &oh, &om) != 2 &&
		    sscanf(z + 1, "%2d%2d", &oh, &om) != 2)
			return NAN;
		double off = (double)(oh * 3600 + om * 60);
		t += *z == '+' ? -off : off;
	} else if (*z != 'Z' && *z != '\0') {
		return NAN;
	}
	return t;
}
