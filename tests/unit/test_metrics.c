/* Unit tests for common/metrics: exposition format, histograms, escaping, threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

/* ---- a small parser for the text format, strict enough to catch mistakes ---- */

#define MAX_SAMPLES 512
#define MAX_LBL     6

struct sample {
	char name[128];
	int nl;
	char lname[MAX_LBL][32];
	char lval[MAX_LBL][256]; /* unescaped */
	double value;
};

struct parsed {
	int n;
	struct sample s[MAX_SAMPLES];
	char help[16][256]; /* unescaped HELP text per family, in order */
	char fam[16][128];
	char type[16][16];
	int nfam;
};

static bool name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
	       (!first && c >= '0' && c <= '9');
}

/* Parses text; fails the test on any malformed line. Every sample must belong
 * to the family of the last "# TYPE" line (histograms: _bucket/_sum/_count). */
static void parse(const char *text, struct parsed *out)
{
	memset(out, 0, sizeof *out);
	const char *p = text;
	char cur[128] = "", curtype[16] = "";
	while (*p) {
		const char *eol = strchr(p, '\n');
		assert_non_null(eol); /* every line ends with \n */
		if (strncmp(p, "# HELP ", 7) == 0) {
			assert_true(out->nfam < 16);
			const char *q = p + 7;
			int k = 0;
			while (name_char(*q, k == 0))
				out->fam[out->nfam][k++] = *q++;
			assert_true(k > 0);
			assert_int_equal(*q, ' ');
			q++;
			int h = 0;
			for (; q < eol; q++) {
				if (*q == '\\') {
					q++;
					assert_true(*q == '\\' || *q == 'n');
					out->help[out->nfam][h++] = *q == 'n' ? '\n' : '\\';
				} else {
					out->help[out->nfam][h++] = *q;
				}
			}
			snprintf(cur, sizeof cur, "%s", out->fam[out->nfam]);
			/* next line must be the TYPE of the same family */
			const char *t = eol + 1;
			char want[160];
			snprintf(want, sizeof want, "# TYPE %s ", cur);
			assert_memory_equal(t, want, strlen(want));
			t += strlen(want);
			const char *teol = strchr(t, '\n');
			assert_non_null(teol);
			snprintf(curtype, sizeof curtype, "%.*s", (int)(teol - t), t);
			assert_true(strcmp(curtype, "counter") == 0 ||
			            strcmp(curtype, "gauge") == 0 ||
			            strcmp(curtype, "histogram") == 0);
			snprintf(out->type[out->nfam], sizeof out->type[0], "%s", curtype);
			out->nfam++;
			p = teol + 1;
			continue;
		}
		assert_true(*p != '#');
		assert_true(out->n < MAX_SAMPLES);
		struct sample *s = &out->s[out->n++];
		int k = 0;
		while (name_char(*p, k == 0))
			s->name[k++] = *p++;
		assert_true(k > 0);
		if (strcmp(curtype, "histogram") == 0) {
			size_t cl = strlen(cur);
			assert_memory_equal(s->name, cur, cl);
			const char *suf = s->name + cl;
			assert_true(strcmp(suf, "_bucket") == 0 || strcmp(suf, "_sum") == 0 ||
			            strcmp(suf, "_count") == 0);
		} else {
			assert_string_equal(s->name, cur);
		}
		if (*p == '{') {
			p++;
			while (*p != '}') {
				assert_true(s->nl < MAX_LBL);
				int j = 0;
				while (name_char(*p, j == 0))
					s->lname[s->nl][j++] = *p++;
				assert_true(j > 0);
				assert_int_equal(*p++, '=');
				assert_int_equal(*p++, '"');
				j = 0;
				while (*p != '"') {
					assert_true(p < eol);
					if (*p == '\\') {
						p++;
						assert_true(*p == '\\' || *p == 'n' || *p == '"');
						s->lval[s->nl][j++] = *p == 'n' ? '\n' : *p;
					} else {
						s->lval[s->nl][j++] = *p;
					}
					p++;
				}
				p++;
				s->nl++;
				if (*p == ',')
					p++;
				else
					assert_int_equal(*p, '}');
			}
			p++;
		}
		assert_int_equal(*p++, ' ');
		char num[64];
		snprintf(num, sizeof num, "%.*s", (int)(eol - p), p);
		char *end;
		s->value = strtod(num, &end);
		assert_true(end != num && *end == '\0');
		/* Prometheus' spellings of the special values */
		if (isinf(s->value))
			assert_true(strcmp(num, "+Inf") == 0 || strcmp(num, "-Inf") == 0);
		if (isnan(s->value))
			assert_string_equal(num, "NaN");
		p = eol + 1;
	}
}

static const char *label(const struct sample *s, const char *name)
{
	for (int i = 0; i < s->nl; i++)
		if (strcmp(s->lname[i], name) == 0)
			return s->lval[i];
	return NULL;
}

static struct parsed *render_parsed(void)
{
	static struct parsed P;
	size_t len;
	char *text = metrics_render(&len);
	assert_int_equal(strlen(text), len);
	parse(text, &P);
	free(text);
	return &P;
}

static int setup(void **state)
{
	(void)state;
	metrics_reset();
	return 0;
}

/* ---- tests ---- */

static void counters_gauges_render_and_parse(void **state)
{
	(void)state;
	struct metric *c = metrics_counter("sfk_cdc_events_total", "CDC events received.",
	                                   "object,change_type");
	struct metric *g = metrics_gauge("sfk_queue_depth", "Queue depth.", "queue_name");
	struct metric *plain = metrics_counter("sfk_plain_total", "No labels.", NULL);
	metric_add(c, 1, "Lead", "CREATE");
	metric_add(c, 2, "Lead", "CREATE");
	metric_add(c, 5, "Task", "UPDATE");
	metric_set(g, 7, "q1");
	metric_add(g, -2, "q1");
	assert_true(metric_value(c, "Lead", "CREATE") == 3);
	assert_true(metric_value(g, "q1") == 5);
	assert_true(metric_value(c, "Nope", "X") == 0);
	/* same name returns the same family */
	assert_ptr_equal(metrics_counter("sfk_cdc_events_total", "CDC events received.",
	                                 "object,change_type"),
	                 c);

	struct parsed *P = render_parsed();
	assert_int_equal(P->nfam, 3);
	/* families sorted by name */
	assert_string_equal(P->fam[0], "sfk_cdc_events_total");
	assert_string_equal(P->type[0], "counter");
	assert_string_equal(P->fam[1], "sfk_plain_total");
	assert_string_equal(P->fam[2], "sfk_queue_depth");
	assert_string_equal(P->type[2], "gauge");
	assert_int_equal(P->n, 4);
	assert_string_equal(label(&P->s[0], "object"), "Lead");
	assert_string_equal(label(&P->s[0], "change_type"), "CREATE");
	assert_true(P->s[0].value == 3);
	assert_string_equal(label(&P->s[1], "object"), "Task");
	assert_true(P->s[1].value == 5);
	/* an unlabelled counter shows 0 before any update */
	assert_string_equal(P->s[2].name, "sfk_plain_total");
	assert_int_equal(P->s[2].nl, 0);
	assert_true(P->s[2].value == 0);
	assert_true(P->s[3].value == 5);
	(void)plain;
}

static void series_sorted_and_stable(void **state)
{
	(void)state;
	struct metric *c = metrics_counter("sfk_x_total", "x", "k");
	const char *order[] = {"m", "b", "z", "a", "c"};
	for (size_t i = 0; i < 5; i++)
		metric_add(c, 1, order[i]);
	char *a = metrics_render(NULL);
	char *b = metrics_render(NULL);
	assert_string_equal(a, b);
	free(a);
	free(b);
	struct parsed *P = render_parsed();
	assert_int_equal(P->n, 5);
	const char *want[] = {"a", "b", "c", "m", "z"};
	for (int i = 0; i < 5; i++)
		assert_string_equal(label(&P->s[i], "k"), want[i]);
}

static void histogram_buckets_cumulative(void **state)
{
	(void)state;
	static const double ttfr[] = {60, 300, 900, 1800, 3600, 14400, 86400};
	struct metric *h = metrics_histogram("sfk_first_response_latency_seconds",
	                                     "Lead time to first response.", NULL, ttfr, 7);
	const double obs[] = {30, 60, 61, 301, 5000, 100000};
	double sum = 0;
	for (size_t i = 0; i < 6; i++) {
		metric_observe(h, obs[i]);
		sum += obs[i];
	}
	assert_true(metric_value(h) == 6);

	struct parsed *P = render_parsed();
	assert_string_equal(P->type[0], "histogram");
	/* 8 buckets (7 + +Inf), _sum, _count */
	assert_int_equal(P->n, 10);
	const char *les[] = {"60", "300", "900", "1800", "3600", "14400", "86400", "+Inf"};
	const double want[] = {2, 3, 4, 4, 4, 5, 5, 6}; /* le is inclusive: 60 <= 60 */
	double prev = 0;
	for (int i = 0; i < 8; i++) {
		assert_string_equal(P->s[i].name, "sfk_first_response_latency_seconds_bucket");
		assert_string_equal(label(&P->s[i], "le"), les[i]);
		assert_true(P->s[i].value >= prev);
		prev = P->s[i].value;
		assert_true(P->s[i].value == want[i]);
	}
	assert_string_equal(P->s[8].name, "sfk_first_response_latency_seconds_sum");
	assert_true(P->s[8].value == sum);
	assert_string_equal(P->s[9].name, "sfk_first_response_latency_seconds_count");
	assert_true(P->s[9].value == 6);
}

static void histogram_with_labels(void **state)
{
	(void)state;
	struct metric *h =
	        metrics_histogram("sfk_api_request_duration_seconds", "API latency.", "method",
	                          metrics_latency_buckets, metrics_latency_nbuckets);
	metric_observe(h, 0.007, "GET");
	metric_observe(h, 0.3, "PATCH");
	struct parsed *P = render_parsed();
	size_t per = metrics_latency_nbuckets + 1 + 2;
	assert_int_equal(P->n, (int)(2 * per));
	/* GET sorts first; its le label follows method */
	assert_string_equal(P->s[0].lname[0], "method");
	assert_string_equal(P->s[0].lval[0], "GET");
	assert_string_equal(P->s[0].lname[1], "le");
	assert_string_equal(P->s[0].lval[1], "0.005");
	assert_true(P->s[0].value == 0);
	assert_string_equal(P->s[1].lval[1], "0.01");
	assert_true(P->s[1].value == 1);
	assert_string_equal(P->s[per].lval[0], "PATCH");
}

static void label_and_help_escaping(void **state)
{
	(void)state;
	const char *nasty = "a\"b\\c\nd";
	struct metric *c = metrics_counter("sfk_esc_total", "Help with \\ and\nnewline.", "v");
	metric_add(c, 1, nasty);
	size_t len;
	char *text = metrics_render(&len);
	/* raw text holds the escaped forms, and no raw newline inside a line */
	assert_non_null(strstr(text, "# HELP sfk_esc_total Help with \\\\ and\\nnewline.\n"));
	assert_non_null(strstr(text, "sfk_esc_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
	free(text);
	struct parsed *P = render_parsed();
	assert_string_equal(P->help[0], "Help with \\ and\nnewline.");
	assert_string_equal(label(&P->s[0], "v"), nasty);
}

static void float_formatting(void **state)
{
	(void)state;
	struct metric *g = metrics_gauge("sfk_f", "floats", "k");
	const struct {
		const char *k;
		double v;
		const char *text;
	} cases[] = {
	        {"a", 3, "3"},       {"b", 0.1, "0.1"},       {"c", 12345678901.0, "12345678901"},
	        {"d", -2.5, "-2.5"}, {"e", INFINITY, "+Inf"}, {"f", -INFINITY, "-Inf"},
	        {"g", NAN, "NaN"},   {"h", 1e20, NULL},       {"i", 1.0 / 3.0, NULL},
	        {"j", -0.0, "0"},
	};
	size_t n = sizeof cases / sizeof cases[0];
	for (size_t i = 0; i < n; i++)
		metric_set(g, cases[i].v, cases[i].k);
	char *text = metrics_render(NULL);
	for (size_t i = 0; i < n; i++) {
		char want[128];
		if (!cases[i].text)
			continue;
		snprintf(want, sizeof want, "sfk_f{k=\"%s\"} %s\n", cases[i].k, cases[i].text);
		assert_non_null(strstr(text, want));
	}
	free(text);
	struct parsed *P = render_parsed();
	assert_int_equal(P->n, (int)n);
	for (size_t i = 0; i < n; i++) {
		if (isnan(cases[i].v))
			assert_true(isnan(P->s[i].value));
		else
			assert_true(P->s[i].value == cases[i].v); /* round-trips exactly */
	}
}

static void build_info(void **state)
{
	(void)state;
	metrics_register_build_info("1.2.3");
	struct parsed *P = render_parsed();
	assert_int_equal(P->n, 1);
	assert_string_equal(P->s[0].name, "sfk_build_info");
	assert_string_equal(label(&P->s[0], "version"), "1.2.3");
	assert_true(P->s[0].value == 1);
}

#define NTHREADS 4
#define NITER    200000

static struct metric *tc, *th;

static void *hammer(void *arg)
{
	const char *who = arg;
	for (int i = 0; i < NITER; i++) {
		metric_add(tc, 1, (i & 1) ? "odd" : "even");
		metric_add(tc, 0.5, who);
		if ((i % 16) == 0)
			metric_observe(th, (double)(i % 100));
	}
	return NULL;
}

static void concurrent_updates_sum_exactly(void **state)
{
	(void)state;
	static const double b[] = {10, 50};
	tc = metrics_counter("sfk_conc_total", "concurrency", "k");
	th = metrics_histogram("sfk_conc_seconds", "concurrency", NULL, b, 2);
	pthread_t t[NTHREADS];
	static char names[NTHREADS][4] = {"t0", "t1", "t2", "t3"};
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, names[i]), 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	assert_true(metric_value(tc, "odd") == NTHREADS * NITER / 2);
	assert_true(metric_value(tc, "even") == NTHREADS * NITER / 2);
	for (int i = 0; i < NTHREADS; i++)
		assert_true(metric_value(tc, names[i]) == NITER * 0.5);
	assert_true(metric_value(th) == NTHREADS * (NITER / 16));
	/* and the rendered text agrees */
	struct parsed *P = render_parsed();
	double total = 0;
	for (int i = 0; i < P->n; i++)
		if (strcmp(P->s[i].name, "sfk_conc_total") == 0)
			total += P->s[i].value;
	assert_true(total == (double)NTHREADS * NITER * 1.5);
}

static void counter_never_goes_down(void **state)
{
	(void)state;
	struct metric *c = metrics_counter("sfk_mono_total", "m", NULL);
	metric_add(c, 2);
	metric_add(c, -1);
	metric_add(c, NAN);
	assert_true(metric_value(c) == 2);
}

static void series_cap_drops_new_series(void **state)
{
	(void)state;
	struct metric *c = metrics_counter("sfk_cap_total", "cap", "id");
	char v[32];
	int devnull = open("/dev/null", O_WRONLY);
	log_set_fd(devnull); /* the one warning is expected */
	for (int i = 0; i <= METRICS_MAX_SERIES; i++) {
		snprintf(v, sizeof v, "%d", i);
		metric_add(c, 1, v);
	}
	metric_add(c, 1, "0"); /* an existing series still counts */
	log_set_fd(2);
	close(devnull);
	assert_true(metric_value(c, "0") == 2);
	snprintf(v, sizeof v, "%d", METRICS_MAX_SERIES - 1);
	assert_true(metric_value(c, v) == 1);
	snprintf(v, sizeof v, "%d", METRICS_MAX_SERIES);
	assert_true(metric_value(c, v) == 0);
	char *text = metrics_render(NULL);
	int n = 0;
	for (const char *p = text; (p = strstr(p, "\nsfk_cap_total{")); p++)
		n++;
	free(text);
	assert_int_equal(n, METRICS_MAX_SERIES);
}

/* Programming errors abort; run each in a child. */
static int dies(void (*fn)(void))
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		log_set_fd(open("/dev/null", 1));
		fn();
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void bad_name(void)
{
	metrics_counter("sfk-bad-name", "x", NULL);
}
static void bad_label(void)
{
	metrics_counter("sfk_ok_total", "x", "0bad");
}
static void clash(void)
{
	metrics_counter("sfk_clash", "x", NULL);
	metrics_gauge("sfk_clash", "x", NULL);
}
static void unsorted_buckets(void)
{
	static const double b[] = {5, 1};
	metrics_histogram("sfk_h", "x", NULL, b, 2);
}
static void le_label(void)
{
	metrics_histogram("sfk_h", "x", "le", metrics_latency_buckets, metrics_latency_nbuckets);
}
static void fine(void)
{
	metrics_counter("sfk_fine_total", "x", "a,b");
}

static void programming_errors_abort(void **state)
{
	(void)state;
	assert_true(dies(bad_name));
	assert_true(dies(bad_label));
	assert_true(dies(clash));
	assert_true(dies(unsorted_buckets));
	assert_true(dies(le_label));
	assert_false(dies(fine));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup(counters_gauges_render_and_parse, setup),
	        cmocka_unit_test_setup(series_sorted_and_stable, setup),
	        cmocka_unit_test_setup(histogram_buckets_cumulative, setup),
	        cmocka_unit_test_setup(histogram_with_labels, setup),
	        cmocka_unit_test_setup(label_and_help_escaping, setup),
	        cmocka_unit_test_setup(float_formatting, setup),
	        cmocka_unit_test_setup(build_info, setup),
	        cmocka_unit_test_setup(concurrent_updates_sum_exactly, setup),
	        cmocka_unit_test_setup(counter_never_goes_down, setup),
	        cmocka_unit_test_setup(series_cap_drops_new_series, setup),
	        cmocka_unit_test_setup(programming_errors_abort, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
