/*
 * metrics.c - the process-wide Prometheus registry.
 *
 * One mutex guards the whole registry: updates are a hash of the label values,
 * a probe in the family's open-addressing table and an add, so contention is
 * short. Rendering sorts families by name and series by label values, so two
 * scrapes of the same state are byte-identical.
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xmem.h"

const double metrics_latency_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                          1,     2.5,  5,     10,   30,  60};
const size_t metrics_latency_nbuckets = sizeof metrics_latency_buckets / sizeof(double);

enum mtype { M_COUNTER, M_GAUGE, M_HISTOGRAM };

struct series {
	char *values[METRICS_MAX_LABELS];
	uint64_t hash;
	double value;     /* counter / gauge */
	uint64_t *counts; /* histogram: per-bucket (not cumulative), nbuckets + 1 (+Inf) */
	double sum;
	uint64_t count;
};

struct metric {
	char *name;
	char *help;
	enum mtype type;
	size_t nlabels;
	char *labels[METRICS_MAX_LABELS];
	double *buckets;
	size_t nbuckets;
	struct series **slots; /* open addressing, nslots a power of two */
	size_t nslots;
	size_t nseries;
	bool dropped_warned;
	struct metric *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct metric *families;

static void die(const char *what, const char *name)
{
	log_error("metrics programming error what=%s name=%s", what, name);
	abort();
}

static bool valid_name(const char *s, bool colon_ok)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++) {
		char ch = *p;
		bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
		             (colon_ok && ch == ':');
		if (!alpha && !(p != s && ch >= '0' && ch <= '9'))
			return false;
	}
	return true;
}

static const char *type_str(enum mtype t)
{
	switch (t) {
	case M_COUNTER: return "counter";
	case M_GAUGE: return "gauge";
	case M_HISTOGRAM: return "histogram";
	}
	return "untyped";
}

/* Split "a,b" into owned names; validates each. */
static size_t split_labels(const char *labels, char **out, const char *fam, bool histogram)
{
	size_t n = 0;
	if (!labels || !*labels)
		return 0;
	const char *p = labels;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (n == METRICS_MAX_LABELS)
			die("too many labels", fam);
		out[n] = xstrndup(p, len);
		if (!valid_name(out[n], false) || strncmp(out[n], "__", 2) == 0 ||
		    (histogram && strcmp(out[n], "le") == 0))
			die("bad label name", fam);
		for (size_t i = 0; i < n; i++)
			if (strcmp(out[i], out[n]) == 0)
				die("duplicate label name", fam);
		n++;
		if (!comma)
			break;
		p = comma + 1;
	}
	return n;
}

static uint64_t hash_values(const char *const *v, size_t n)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		for (const unsigned char *p = (const unsigned char *)v[i]; *p; p++) {
			h ^= *p;
			h *= 1099511628211ULL;
		}
		h ^= 0xff; /* separator: ("ab","") != ("a","b") */
		h *= 1099511628211ULL;
	}
	return h;
}

static struct series *series_new(struct metric *m, const char *const *v, uint64_t h)
{
	struct series *s = xcalloc(1, sizeof *s);
	for (size_t i = 0; i < m->nlabels; i++)
		s->values[i] = xstrdup(v[i]);
	s->hash = h;
	if (m->type == M_HISTOGRAM)
		s->counts = xcalloc(m->nbuckets + 1, sizeof *s->counts);
	return s;
}

static void series_free(struct series *s, size_t nlabels)
{
	for (size_t i = 0; i < nlabels; i++)
		free(s->values[i]);
	free(s->counts);
	free(s);
}

static void slots_insert(struct series **slots, size_t nslots, struct series *s)
{
	size_t i = (size_t)s->hash & (nslots - 1);
	while (slots[i])
		i = (i + 1) & (nslots - 1);
	slots[i] = s;
}

static bool same_values(const struct series *s, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s->values[i], v[i]) != 0)
			return false;
	return true;
}

/* Find or create the series for v. Caller holds mu. NULL when over the cap. */
static struct series *lookup(struct metric *m, const char *const *v)
{
	uint64_t h = hash_values(v, m->nlabels);
	size_t i = (size_t)h & (m->nslots - 1);
	for (struct series *s; (s = m->slots[i]); i = (i + 1) & (m->nslots - 1))
		if (s->hash == h && same_values(s, v, m->nlabels))
			return s;
	if (m->nseries >= METRICS_MAX_SERIES) {
		if (!m->dropped_warned) {
			m->dropped_warned = true;
			log_warn("metric series cap reached, dropping new series name=%s cap=%d",
			         m->name, METRICS_MAX_SERIES);
		}
		return NULL;
	}
	if ((m->nseries + 1) * 2 > m->nslots) {
		size_t nslots = m->nslots * 2;
		struct series **slots = xcalloc(nslots, sizeof *slots);
		for (size_t j = 0; j < m->nslots; j++)
			if (m->slots[j])
				slots_insert(slots, nslots, m->slots[j]);
		free(m->slots);
		m->slots = slots;
		m->nslots = nslots;
	}
	struct series *s = series_new(m, v, h);
	slots_insert(m->slots, m->nslots, s);
	m->nseries++;
	return s;
}

static bool same_labels(const struct metric *m, char **labels, size_t n)
{
	if (m->nlabels != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(m->labels[i], labels[i]) != 0)
			return false;
	return true;
}

static struct metric *family(enum mtype type, const char *name, const char *help,
                             const char *labels, const double *buckets, size_t nbuckets)
{
	char *lab[METRICS_MAX_LABELS];
	if (!valid_name(name, true))
		die("bad metric name", name ? name : "(null)");
	size_t nl = split_labels(labels, lab, name, type == M_HISTOGRAM);
	if (type == M_HISTOGRAM) {
		for (size_t i = 0; i < nbuckets; i++)
			if (isnan(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
				die("histogram buckets not strictly increasing", name);
		/* A trailing +Inf bucket is implied; drop an explicit one. */
		if (nbuckets > 0 && isinf(buckets[nbuckets - 1]) && buckets[nbuckets - 1] > 0)
			nbuckets--;
	}

	pthread_mutex_lock(&mu);
	struct metric *m;
	for (m = families; m; m = m->next)
		if (strcmp(m->name, name) == 0)
			break;
	if (m) {
		bool ok = m->type == type && same_labels(m, lab, nl);
		if (ok && type == M_HISTOGRAM)
			ok = m->nbuckets == nbuckets &&
			     (nbuckets == 0 ||
			      memcmp(m->buckets, buckets, nbuckets * sizeof *buckets) == 0);
		pthread_mutex_unlock(&mu);
		for (size_t i = 0; i < nl; i++)
			free(lab[i]);
		if (!ok)
			die("metric re-registered with another type, labels or buckets", name);
		return m;
	}
	m = xcalloc(1, sizeof *m);
	m->name = xstrdup(name);
	m->help = xstrdup(help ? help : "");
	m->type = type;
	m->nlabels = nl;
	memcpy(m->labels, lab, nl * sizeof lab[0]);
	if (type == M_HISTOGRAM && nbuckets > 0) {
		m->buckets = xmalloc(nbuckets * sizeof *buckets);
		memcpy(m->buckets, buckets, nbuckets * sizeof *buckets);
	}
	m->nbuckets = nbuckets;
	m->nslots = 16;
	m->slots = xcalloc(m->nslots, sizeof *m->slots);
	/* A family without labels has exactly one series; show it from the start
	 * (a counter at 0 is information, an absent one is a question). */
	if (nl == 0)
		(void)lookup(m, NULL);
	m->next = families;
	families = m;
	pthread_mutex_unlock(&mu);
	return m;
}

struct metric *metrics_counter(const char *name, const char *help, const char *labels)
{
	return family(M_COUNTER, name, help, labels, NULL, 0);
}

struct metric *metrics_gauge(const char *name, const char *help, const char *labels)
{
	return family(M_GAUGE, name, help, labels, NULL, 0);
}

struct metric *metrics_histogram(const char *name, const char *help, const char *labels,
                                 const double *buckets, size_t nbuckets)
{
	return family(M_HISTOGRAM, name, help, labels, buckets, nbuckets);
}

static void collect(const struct metric *m, va_list ap, const char **v)
{
	for (size_t i = 0; i < m->nlabels; i++) {
		v[i] = va_arg(ap, const char *);
		if (!v[i])
			v[i] = "";
	}
}

enum op { OP_ADD, OP_SET, OP_OBSERVE };

static void update(struct metric *m, enum op op, double v, va_list ap)
{
	const char *vals[METRICS_MAX_LABELS];
	if (!m)
		return;
	collect(m, ap, vals);
	if ((op == OP_OBSERVE) != (m->type == M_HISTOGRAM) || (op == OP_SET && m->type != M_GAUGE))
		die("update does not fit the metric type", m->name);
	if (m->type == M_COUNTER && !(v >= 0))
		return; /* counters only go up; NaN and negatives are dropped */
	pthread_mutex_lock(&mu);
	struct series *s = lookup(m, vals);
	if (s) {
		switch (op) {
		case OP_ADD: s->value += v; break;
		case OP_SET: s->value = v; break;
		case OP_OBSERVE: {
			size_t b = 0;
			while (b < m->nbuckets && !(v <= m->buckets[b]))
				b++;
			s->counts[b]++;
			s->count++;
			s->sum += v;
			break;
		}
		}
	}
	pthread_mutex_unlock(&mu);
}

void metric_add(struct metric *m, double v, ...)
{
	va_list ap;
	va_start(ap, v);
	update(m, OP_ADD, v, ap);
	va_end(ap);
}

void metric_set(struct metric *m, double v, ...)
{
	va_list ap;
	va_start(ap, v);
	update(m, OP_SET, v, ap);
	va_end(ap);
}

void metric_observe(struct metric *m, double v, ...)
{
	va_list ap;
	va_start(ap, v);
	update(m, OP_OBSERVE, v, ap);
	va_end(ap);
}

double metric_value(struct metric *m, ...)
{
	const char *vals[METRICS_MAX_LABELS];
	va_list ap;
	double out = 0;
	va_start(ap, m);
	collect(m, ap, vals);
	va_end(ap);
	uint64_t h = hash_values(vals, m->nlabels);
	pthread_mutex_lock(&mu);
	size_t i = (size_t)h & (m->nslots - 1);
	for (struct series *s; (s = m->slots[i]); i = (i + 1) & (m->nslots - 1)) {
		if (s->hash == h && same_values(s, vals, m->nlabels)) {
			out = m->type == M_HISTOGRAM ? (double)s->count : s->value;
			break;
		}
	}
	pthread_mutex_unlock(&mu);
	return out;
}

/* ---- rendering ---- */

struct buf {
	char *p;
	size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap = b->cap ? b->cap * 2 : 4096;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* HELP escapes backslash and newline; label values also double-quote. */
static void put_escaped(struct buf *b, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			puts_(b, "\\\\");
		else if (*s == '\n')
			puts_(b, "\\n");
		else if (quote && *s == '"')
			puts_(b, "\\\"");
		else
			put(b, s, 1);
	}
}

/* Shortest text that strtod() reads back as v; integers without exponent. */
static void format_double(char *out, size_t cap, double v)
{
	if (isnan(v)) {
		snprintf(out, cap, "NaN");
	} else if (isinf(v)) {
		snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
	} else if (v == floor(v) && fabs(v) < 1e15) {
		snprintf(out, cap, "%.0f", v == 0 ? 0.0 : v); /* no "-0" */
	} else {
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(out, cap, "%.*g", prec, v);
			if (strtod(out, NULL) == v)
				break;
		}
	}
}

static void put_double(struct buf *b, double v)
{
	char tmp[64];
	format_double(tmp, sizeof tmp, v);
	puts_(b, tmp);
}

static void put_u64(struct buf *b, uint64_t v)
{
	char tmp[32];
	snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
	puts_(b, tmp);
}

/* {a="x",b="y"[,le="..."]} or nothing when there are no labels at all. */
static void put_labels(struct buf *b, const struct metric *m, const struct series *s,
                       const char *le)
{
	if (m->nlabels == 0 && !le)
		return;
	puts_(b, "{");
	for (size_t i = 0; i < m->nlabels; i++) {
		if (i)
			puts_(b, ",");
		puts_(b, m->labels[i]);
		puts_(b, "=\"");
		put_escaped(b, s->values[i], true);
		puts_(b, "\"");
	}
	if (le) {
		if (m->nlabels)
			puts_(b, ",");
		puts_(b, "le=\"");
		puts_(b, le);
		puts_(b, "\"");
	}
	puts_(b, "}");
}

static size_t sort_nlabels; /* qsort has no context argument; set under mu */

static int cmp_series(const void *a, const void *b)
{
	const struct series *x = *(struct series *const *)a, *y = *(struct series *const *)b;
	for (size_t i = 0; i < sort_nlabels; i++) {
		int c = strcmp(x->values[i], y->values[i]);
		if (c)
			return c;
	}
	return 0;
}

static int cmp_family(const void *a, const void *b)
{
	const struct metric *x = *(struct metric *const *)a, *y = *(struct metric *const *)b;
	return strcmp(x->name, y->name);
}

static void render_family(struct buf *b, struct metric *m)
{
	if (m->nseries == 0)
		return;
	struct series **ss = xmalloc(m->nseries * sizeof *ss);
	size_t n = 0;
	for (size_t i = 0; i < m->nslots; i++)
		if (m->slots[i])
			ss[n++] = m->slots[i];
	sort_nlabels = m->nlabels;
	qsort(ss, n, sizeof *ss, cmp_series);

	puts_(b, "# HELP ");
	puts_(b, m->name);
	puts_(b, " ");
	put_escaped(b, m->help, false);
	puts_(b, "\n# TYPE ");
	puts_(b, m->name);
	puts_(b, " ");
	puts_(b, type_str(m->type));
	puts_(b, "\n");
	for (size_t i = 0; i < n; i++) {
		struct series *s = ss[i];
		if (m->type != M_HISTOGRAM) {
			puts_(b, m->name);
			put_labels(b, m, s, NULL);
			puts_(b, " ");
			put_double(b, s->value);
			puts_(b, "\n");
			continue;
		}
		uint64_t cum = 0;
		for (size_t k = 0; k <= m->nbuckets; k++) {
			char le[64];
			cum += s->counts[k];
			format_double(le, sizeof le, k < m->nbuckets ? m->buckets[k] : INFINITY);
			puts_(b, m->name);
			puts_(b, "_bucket");
			put_labels(b, m, s, le);
			puts_(b, " ");
			put_u64(b, cum);
			puts_(b, "\n");
		}
		puts_(b, m->name);
		puts_(b, "_sum");
		put_labels(b, m, s, NULL);
		puts_(b, " ");
		put_double(b, s->sum);
		puts_(b, "\n");
		puts_(b, m->name);
		puts_(b, "_count");
		put_labels(b, m, s, NULL);
		puts_(b, " ");
		put_u64(b, s->count);
		puts_(b, "\n");
	}
	free(ss);
}

char *metrics_render(size_t *len)
{
	struct buf b = {0};
	puts_(&b, ""); /* never return NULL, even with an empty registry */
	pthread_mutex_lock(&mu);
	size_t nf = 0;
	for (struct metric *m = families; m; m = m->next)
		nf++;
	struct metric **fs = xmalloc((nf ? nf : 1) * sizeof *fs);
	nf = 0;
	for (struct metric *m = families; m; m = m->next)
		fs[nf++] = m;
	qsort(fs, nf, sizeof *fs, cmp_family);
	for (size_t i = 0; i < nf; i++)
		render_family(&b, fs[i]);
	pthread_mutex_unlock(&mu);
	free(fs);
	if (len)
		*len = b.len;
	return b.p;
}

void metrics_reset(void)
{
	pthread_mutex_lock(&mu);
	struct metric *m = families;
	families = NULL;
	pthread_mutex_unlock(&mu);
	while (m) {
		struct metric *next = m->next;
		for (size_t i = 0; i < m->nslots; i++)
			if (m->slots[i])
				series_free(m->slots[i], m->nlabels);
		for (size_t i = 0; i < m->nlabels; i++)
			free(m->labels[i]);
		free(m->slots);
		free(m->buckets);
		free(m->name);
		free(m->help);
		free(m);
		m = next;
	}
}

struct metric *metrics_register_build_info(const char *version)
{
	struct metric *m = metrics_gauge("sfk_build_info",
	                                 "Build information; the value is always 1.", "version");
	metric_set(m, 1, version ? version : "unknown");
	return m;
}
