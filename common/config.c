/*
 * config.c - the configuration table: defaults < environment < command line.
 *
 * Every value starts as text (default, then env, then flag: the last source
 * wins), then is converted once by type. Each failure appends one line to the
 * problem list and parsing goes on, so an operator fixes everything in one
 * round. A secret's value is never copied into a problem, usage or dump line.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "xmem.h"

#ifndef SFK_VERSION
#define SFK_VERSION "unknown"
#endif

enum source { SRC_NONE, SRC_DEFAULT, SRC_ENV, SRC_FLAG };

struct cval {
	enum source src;
	char *text;      /* owned raw text from the winning source */
	bool valid;      /* converted without problems */
	long long num;   /* INT, DURATION */
	bool flag;       /* BOOL */
	const char *str; /* STRING/PATH/URL: text; ENUM: allowed[k] */
};

struct config {
	const char *prog;
	char *synopsis;
	const struct config_entry **ents; /* borrowed entries of every added table */
	size_t n;
	struct cval *vals;
	char **problems;
	size_t nproblems, capproblems;
	config_validate_fn validator;
	void *validator_ctx;
	bool want_help, want_version, want_check;
	char **args; /* borrowed from argv */
	int nargs;
	bool parsed;
};

static void die(const char *what, const char *name)
{
	fprintf(stderr, "config: programming error: %s: %s\n", what, name ? name : "(null)");
	abort();
}

void config_add_table(struct config *c, const struct config_entry *table, size_t n)
{
	if (c->parsed)
		die("config_add_table after config_parse", c->prog);
	for (size_t i = 0; i < n; i++) {
		const struct config_entry *e = &table[i];
		if (!e->name || !*e->name || e->name[0] == '-')
			die("bad setting name", e->name);
		for (size_t j = 0; j < c->n; j++)
			if (strcmp(c->ents[j]->name, e->name) == 0)
				die("duplicate setting", e->name);
		if (e->type == CONFIG_ENUM && (!e->allowed || !e->allowed[0]))
			die("enum without allowed values", e->name);
		if (strcmp(e->name, "help") == 0 || strcmp(e->name, "version") == 0 ||
		    strcmp(e->name, "check-config") == 0)
			die("setting shadows a standard flag", e->name);
		c->ents = xrealloc(c->ents, (c->n + 1) * sizeof *c->ents);
		c->vals = xrealloc(c->vals, (c->n + 1) * sizeof *c->vals);
		c->ents[c->n] = e;
		memset(&c->vals[c->n], 0, sizeof c->vals[0]);
		c->n++;
	}
}

struct config *config_new(const char *prog, const struct config_entry *table, size_t n)
{
	struct config *c = xcalloc(1, sizeof *c);
	c->prog = prog ? prog : "sfk";
	config_add_table(c, table, n);
	return c;
}

void config_free(struct config **cp)
{
	if (!cp || !*cp)
		return;
	struct config *c = *cp;
	for (size_t i = 0; i < c->n; i++)
		free(c->vals[i].text);
	free(c->vals);
	free(c->ents);
	for (size_t i = 0; i < c->nproblems; i++)
		free(c->problems[i]);
	free(c->problems);
	free(c->args);
	free(c->synopsis);
	free(c);
	*cp = NULL;
}

void config_set_synopsis(struct config *c, const char *synopsis)
{
	free(c->synopsis);
	c->synopsis = synopsis ? xstrdup(synopsis) : NULL;
}

void config_set_validator(struct config *c, config_validate_fn fn, void *ctx)
{
	c->validator = fn;
	c->validator_ctx = ctx;
}

static void vproblem(struct config *c, const struct config_entry *e, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));

static void vproblem(struct config *c, const struct config_entry *e, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	char *line;
	if (!e)
		line = xstrdup(msg);
	else if (e->env)
		line = xasprintf("--%s (%s): %s", e->name, e->env, msg);
	else
		line = xasprintf("--%s: %s", e->name, msg);
	if (c->nproblems == c->capproblems) {
		c->capproblems = c->capproblems ? c->capproblems * 2 : 8;
		c->problems = xrealloc(c->problems, c->capproblems * sizeof *c->problems);
	}
	c->problems[c->nproblems++] = line;
}

void config_problem(struct config *c, const struct config_entry *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vproblem(c, e, fmt, ap);
	va_end(ap);
}

size_t config_nproblems(const struct config *c)
{
	return c->nproblems;
}

const char *config_problem_str(const struct config *c, size_t i)
{
	return i < c->nproblems ? c->problems[i] : NULL;
}

void config_print_problems(const struct config *c, FILE *f)
{
	for (size_t i = 0; i < c->nproblems; i++)
		fprintf(f, "%s\n", c->problems[i]);
	fflush(f);
}

bool config_wants(const struct config *c, const char *std_flag)
{
	if (strcmp(std_flag, "help") == 0)
		return c->want_help;
	if (strcmp(std_flag, "version") == 0)
		return c->want_version;
	if (strcmp(std_flag, "check-config") == 0)
		return c->want_check;
	return false;
}

/* ---- value parsers ---- */

int config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "1", "yes", "on"};
	static const char *const no[] = {"false", "0", "no", "off"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* One or more <integer><unit> groups ("1m30s"), or a bare "0". */
int config_parse_duration_ms(const char *s, long long *out)
{
	static const struct {
		const char *unit;
		long long ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	long long total = 0;
	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	if (!*s)
		return -1;
	const char *p = s;
	while (*p) {
		if (*p < '0' || *p > '9')
			return -1;
		char *end;
		errno = 0;
		long long v = strtoll(p, &end, 10);
		if (errno || end == p)
			return -1;
		size_t k, nunits = sizeof units / sizeof units[0];
		for (k = 0; k < nunits; k++) {
			size_t ul = strlen(units[k].unit);
			/* "m" must not eat the "m" of "ms" */
			if (strncmp(end, units[k].unit, ul) == 0 &&
			    !(ul == 1 && end[0] == 'm' && end[1] == 's'))
				break;
		}
		if (k == nunits)
			return -1;
		if (v > LLONG_MAX / units[k].ms || total > LLONG_MAX - v * units[k].ms)
			return -1;
		total += v * units[k].ms;
		p = end + strlen(units[k].unit);
	}
	*out = total;
	return 0;
}

static void format_ms(char *out, size_t cap, long long ms)
{
	if (ms != 0 && ms % 86400000 == 0)
		snprintf(out, cap, "%lldd", ms / 86400000);
	else if (ms != 0 && ms % 3600000 == 0)
		snprintf(out, cap, "%lldh", ms / 3600000);
	else if (ms != 0 && ms % 60000 == 0)
		snprintf(out, cap, "%lldm", ms / 60000);
	else if (ms != 0 && ms % 1000 == 0)
		snprintf(out, cap, "%llds", ms / 1000);
	else
		snprintf(out, cap, "%lldms", ms);
}

/* scheme://host... with a host; the scheme is not restricted (redis://, https://). */
static bool url_ok(const char *s)
{
	bool ok = false;
	CURLU *u = curl_url();
	char *host = NULL;
	if (!u)
		return false;
	if (curl_url_set(u, CURLUPART_URL, s, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host && *host)
		ok = true;
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

/* Text safe to show for an entry's value: "<secret>" for secrets; a URL's
 * password (redis://:pw@host) replaced. Returns a new string. */
static char *shown(const struct config_entry *e, const char *text)
{
	if (e->flags & CONFIG_SECRET)
		return xstrdup("<secret>");
	if (e->type == CONFIG_URL) {
		const char *scheme = strstr(text, "://");
		const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
		const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
		if (at && (!slash || at < slash)) {
			const char *colon = memchr(scheme + 3, ':', (size_t)(at - scheme - 3));
			if (colon)
				return xasprintf("%.*s<secret>%s", (int)(colon + 1 - text), text,
				                 at);
		}
	}
	return xstrdup(text);
}

/* Convert one entry's text; append problems. */
static void convert(struct config *c, const struct config_entry *e, struct cval *v)
{
	const char *t = v->text;
	char *show = shown(e, t);
	char *end;
	v->valid = false;
	switch (e->type) {
	case CONFIG_STRING:
		v->str = t;
		v->valid = true;
		break;
	case CONFIG_INT:
		errno = 0;
		v->num = strtoll(t, &end, 10);
		if (errno || end == t || *end) {
			config_problem(c, e, "'%s' is not an integer", show);
			break;
		}
		if (e->min < e->max && (v->num < e->min || v->num > e->max)) {
			config_problem(c, e, "%s is out of range [%lld, %lld]", show, e->min,
			               e->max);
			break;
		}
		v->valid = true;
		break;
	case CONFIG_BOOL:
		if (config_parse_bool(t, &v->flag) < 0) {
			config_problem(c, e,
			               "'%s' is not a boolean (true/false, 1/0, yes/no, on/off)",
			               show);
			break;
		}
		v->valid = true;
		break;
	case CONFIG_DURATION:
		if (config_parse_duration_ms(t, &v->num) < 0) {
			config_problem(
			        c, e,
			        "'%s' is not a duration (integer with unit ms, s, m, h or d: "
			        "500ms, 5s, 2m, 1m30s)",
			        show);
			break;
		}
		if (e->min < e->max && (v->num < e->min || v->num > e->max)) {
			char lo[32], hi[32];
			format_ms(lo, sizeof lo, e->min);
			format_ms(hi, sizeof hi, e->max);
			config_problem(c, e, "%s is out of range [%s, %s]", show, lo, hi);
			break;
		}
		v->valid = true;
		break;
	case CONFIG_ENUM: {
		for (size_t k = 0; e->allowed[k]; k++)
			if (strcmp(t, e->allowed[k]) == 0) {
				v->str = e->allowed[k];
				v->valid = true;
			}
		if (v->valid)
			break;
		char list[512];
		size_t off = 0;
		list[0] = '\0';
		for (size_t k = 0; e->allowed[k] && off < sizeof list; k++) {
			int w = snprintf(list + off, sizeof list - off, "%s%s", k ? ", " : "",
			                 e->allowed[k]);
			if (w < 0)
				break;
			off += (size_t)w;
		}
		config_problem(c, e, "'%s' is not one of: %s", show, list);
		break;
	}
	case CONFIG_PATH:
		if (!*t) {
			config_problem(c, e, "empty path");
			break;
		}
		if (access(t, R_OK) != 0) {
			config_problem(c, e, "'%s' is not readable: %s", show, strerror(errno));
			break;
		}
		v->str = t;
		v->valid = true;
		break;
	case CONFIG_URL:
		if (!url_ok(t)) {
			config_problem(c, e, "'%s' is not a URL (scheme://host[:port][/path])",
			               show);
			break;
		}
		v->str = t;
		v->valid = true;
		break;
	}
	free(show);
}

static void store(const struct config_entry *e, const struct cval *v)
{
	if (!e->dest)
		return;
	bool has = v->src != SRC_NONE && v->valid;
	switch (e->type) {
	case CONFIG_INT:
	case CONFIG_DURATION: *(long long *)e->dest = has ? v->num : 0; break;
	case CONFIG_BOOL: *(bool *)e->dest = has ? v->flag : false; break;
	default: *(const char **)e->dest = has ? v->str : NULL; break;
	}
}

static const struct config_entry *find(const struct config *c, const char *name, size_t len,
                                       size_t *idx)
{
	for (size_t i = 0; i < c->n; i++)
		if (strlen(c->ents[i]->name) == len && strncmp(c->ents[i]->name, name, len) == 0) {
			if (idx)
				*idx = i;
			return c->ents[i];
		}
	return NULL;
}

static void set_text(struct cval *v, const char *text, enum source src)
{
	free(v->text);
	v->text = xstrdup(text);
	v->src = src;
}

/* Command line: --name value, --name=value, bare --bool, "--" ends flags. */
static void parse_argv(struct config *c, int argc, char **argv)
{
	c->args = xcalloc((size_t)(argc > 0 ? argc : 1), sizeof *c->args);
	bool flags_done = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (flags_done || a[0] != '-' || strcmp(a, "-") == 0) {
			c->args[c->nargs++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			flags_done = true;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			c->want_help = true;
			continue;
		}
		if (strcmp(a, "--version") == 0) {
			c->want_version = true;
			continue;
		}
		if (strcmp(a, "--check-config") == 0) {
			c->want_check = true;
			continue;
		}
		if (a[1] != '-') {
			config_problem(c, NULL, "%s: unknown flag (see --help)", a);
			continue;
		}
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		size_t idx;
		const struct config_entry *e = find(c, name, nlen, &idx);
		if (!e) {
			config_problem(c, NULL, "--%.*s: unknown flag (see --help)", (int)nlen,
			               name);
			continue;
		}
		if (eq) {
			set_text(&c->vals[idx], eq + 1, SRC_FLAG);
		} else if (e->type == CONFIG_BOOL) {
			set_text(&c->vals[idx], "true", SRC_FLAG);
		} else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
			set_text(&c->vals[idx], argv[++i], SRC_FLAG);
		} else {
			config_problem(c, e, "flag needs a value");
		}
	}
}

int config_parse(struct config *c, int argc, char **argv)
{
	if (c->parsed)
		die("config_parse called twice", c->prog);
	c->parsed = true;
	for (size_t i = 0; i < c->n; i++) {
		const struct config_entry *e = c->ents[i];
		if (e->def)
			set_text(&c->vals[i], e->def, SRC_DEFAULT);
		/* An empty variable counts as unset: Helm and compose templates
		 * render absent values as "". */
		const char *env = e->env ? getenv(e->env) : NULL;
		if (env && *env)
			set_text(&c->vals[i], env, SRC_ENV);
	}
	parse_argv(c, argc, argv);
	for (size_t i = 0; i < c->n; i++) {
		const struct config_entry *e = c->ents[i];
		struct cval *v = &c->vals[i];
		if (v->src == SRC_NONE || (v->text[0] == '\0' && e->type != CONFIG_STRING)) {
			if (e->flags & CONFIG_REQUIRED) {
				if (e->env)
					config_problem(
					        c, e,
					        "required setting is missing (set %s or pass --%s)",
					        e->env, e->name);
				else
					config_problem(c, e, "required setting is missing");
			}
			v->src = SRC_NONE;
		} else if (v->text[0] == '\0' && (e->flags & CONFIG_REQUIRED)) {
			config_problem(c, e, "required setting is empty");
		} else {
			convert(c, e, v);
		}
		store(e, v);
	}
	for (size_t i = 0; i < c->n; i++)
		if (c->ents[i]->check && c->vals[i].src != SRC_NONE && c->vals[i].valid)
			c->ents[i]->check(c, c->ents[i]);
	if (c->validator)
		c->validator(c, c->validator_ctx);
	return (int)c->nproblems;
}

int config_load(struct config *c, int argc, char **argv)
{
	config_parse(c, argc, argv);
	if (c->want_help) {
		char *u = config_usage(c);
		fputs(u, stdout);
		fflush(stdout);
		free(u);
		return CONFIG_EXIT_OK;
	}
	if (c->want_version) {
		printf("%s %s\n", c->prog, SFK_VERSION);
		fflush(stdout);
		return CONFIG_EXIT_OK;
	}
	if (c->nproblems) {
		config_print_problems(c, stderr);
		return CONFIG_EXIT_FAIL;
	}
	if (c->want_check) {
		printf("configuration OK\n");
		fflush(stdout);
		return CONFIG_EXIT_OK;
	}
	return CONFIG_RUN;
}

/* ---- usage and dump ---- */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int w = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (w < 0)
			return;
		if (b->p && b->len + (size_t)w < b->cap) {
			b->len += (size_t)w;
			return;
		}
		b->cap = (b->cap ? b->cap * 2 : 1024) + (size_t)w;
		b->p = xrealloc(b->p, b->cap);
	}
}

static const char *type_hint(const struct config_entry *e, char *buf, size_t cap)
{
	switch (e->type) {
	case CONFIG_STRING: return "<string>";
	case CONFIG_INT:
		if (e->min < e->max)
			snprintf(buf, cap, "<int %lld..%lld>", e->min, e->max);
		else
			snprintf(buf, cap, "<int>");
		return buf;
	case CONFIG_BOOL: return "[=<bool>]";
	case CONFIG_DURATION: return "<duration>";
	case CONFIG_PATH: return "<path>";
	case CONFIG_URL: return "<url>";
	case CONFIG_ENUM: {
		size_t off = 0;
		buf[0] = '<';
		off = 1;
		for (size_t k = 0; e->allowed[k] && off + 2 < cap; k++) {
			int w = snprintf(buf + off, cap - off, "%s%s", k ? "|" : "", e->allowed[k]);
			if (w < 0 || (size_t)w >= cap - off)
				break;
			off += (size_t)w;
		}
		if (off + 2 <= cap)
			snprintf(buf + off, cap - off, ">");
		return buf;
	}
	}
	return "";
}

char *config_usage(const struct config *c)
{
	struct sbuf b = {0};
	sb_printf(&b,
	          "Usage: %s %s\n\nOptions (each also read from its environment variable;\n"
	          "the command line wins over the environment, which wins over the default):\n",
	          c->prog, c->synopsis ? c->synopsis : "[options]");
	for (size_t i = 0; i < c->n; i++) {
		const struct config_entry *e = c->ents[i];
		char hint[256];
		sb_printf(&b, "  --%s%s%s\n", e->name, e->type == CONFIG_BOOL ? "" : " ",
		          type_hint(e, hint, sizeof hint));
		if (e->help && *e->help)
			sb_printf(&b, "        %s\n", e->help);
		sb_printf(&b, "        env: %s", e->env ? e->env : "(none)");
		if (e->def) {
			char *d = shown(e, e->def);
			sb_printf(&b, "; default: %s", *d ? d : "\"\"");
			free(d);
		}
		if (e->flags & CONFIG_REQUIRED)
			sb_printf(&b, "; required");
		if (e->flags & CONFIG_SECRET)
			sb_printf(&b, "; secret, never printed");
		sb_printf(&b, "\n");
	}
	sb_printf(&b,
	          "\nStandard flags:\n"
	          "  --help           this text\n"
	          "  --version        print \"%s <version>\" and exit\n"
	          "  --check-config   validate the configuration, print \"configuration OK\"\n"
	          "                   and exit 0, or one line per problem and exit %d\n",
	          c->prog, CONFIG_EXIT_FAIL);
	return b.p;
}

char *config_dump(const struct config *c)
{
	static const char *const srcname[] = {"unset", "default", "env", "flag"};
	struct sbuf b = {0};
	sb_printf(&b, "%s", "");
	for (size_t i = 0; i < c->n; i++) {
		const struct config_entry *e = c->ents[i];
		const struct cval *v = &c->vals[i];
		if (v->src == SRC_NONE) {
			sb_printf(&b, "%s= (unset)\n", e->name);
			continue;
		}
		char *s = shown(e, v->text);
		sb_printf(&b, "%s=%s (%s)\n", e->name, s, srcname[v->src]);
		free(s);
	}
	return b.p;
}

/* ---- accessors ---- */

static const struct cval *get(const struct config *c, const char *name, enum config_type t1,
                              enum config_type t2)
{
	size_t idx;
	const struct config_entry *e = find(c, name, strlen(name), &idx);
	if (!e)
		die("no such setting", name);
	if (e->type != t1 && e->type != t2)
		die("setting read with the wrong type", name);
	const struct cval *v = &c->vals[idx];
	return v->src != SRC_NONE && v->valid ? v : NULL;
}

const char *config_str(const struct config *c, const char *name)
{
	size_t idx;
	const struct config_entry *e = find(c, name, strlen(name), &idx);
	if (!e)
		die("no such setting", name);
	if (e->type == CONFIG_INT || e->type == CONFIG_BOOL || e->type == CONFIG_DURATION)
		die("setting read with the wrong type", name);
	const struct cval *v = &c->vals[idx];
	return v->src != SRC_NONE && v->valid ? v->str : NULL;
}

long long config_int(const struct config *c, const char *name)
{
	const struct cval *v = get(c, name, CONFIG_INT, CONFIG_INT);
	return v ? v->num : 0;
}

bool config_bool(const struct config *c, const char *name)
{
	const struct cval *v = get(c, name, CONFIG_BOOL, CONFIG_BOOL);
	return v ? v->flag : false;
}

long long config_ms(const struct config *c, const char *name)
{
	const struct cval *v = get(c, name, CONFIG_DURATION, CONFIG_DURATION);
	return v ? v->num : 0;
}

bool config_has(const struct config *c, const char *name)
{
	size_t idx;
	if (!find(c, name, strlen(name), &idx))
		die("no such setting", name);
	return c->vals[idx].src != SRC_NONE;
}

bool config_is_set(const struct config *c, const char *name)
{
	size_t idx;
	if (!find(c, name, strlen(name), &idx))
		die("no such setting", name);
	return c->vals[idx].src == SRC_ENV || c->vals[idx].src == SRC_FLAG;
}

int config_nargs(const struct config *c)
{
	return c->nargs;
}

const char *config_arg(const struct config *c, int i)
{
	return i >= 0 && i < c->nargs ? c->args[i] : NULL;
}
