/*
 * sla.c - time zones, working-time arithmetic and the SLA policy (sla.h).
 *
 * Why TZif parsing instead of localtime_r: localtime_r reads the zone from
 * the process-wide TZ variable, so a per-region zone needs setenv("TZ") +
 * tzset(), which races with every other thread that formats a local time
 * (curl, librdkafka, our own workers). Reading the IANA database ourselves
 * (RFC 8536: 64-bit transitions, then the POSIX TZ footer for instants past
 * the last transition) gives immutable per-zone tables any thread may use.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sla.h"
#include "xmem.h"

/* ---- POSIX TZ rules (the TZif footer) ------------------------------------ */

enum rule_kind { RULE_JULIAN1 = 1, RULE_JULIAN0, RULE_MONTH };

struct tz_rule {
	enum rule_kind kind;
	int day, week, month; /* Jn: day 1..365; n: day 0..365; Mm.w.d: month, week, day */
	long time_s;          /* local time of day of the change (may be < 0 or > 24 h) */
};

struct posix_tz {
	int valid;
	long std_off, dst_off; /* seconds east of UTC */
	int has_dst;
	struct tz_rule start, end;
};

struct sla_tz {
	int64_t *times; /* transitions, ascending */
	unsigned char *idx;
	size_t ntimes;
	long *offs; /* utoff per type */
	unsigned char *isdst;
	size_t ntypes;
	struct posix_tz footer;
};

static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int64_t year_of(int64_t days)
{
	/* civil_from_days, year only */
	days += 719468;
	int64_t era = (days >= 0 ? days : days - 146096) / 146097;
	int64_t doe = days - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int64_t m = mp + (mp < 10 ? 3 : -9);
	return yoe + era * 400 + (m <= 2);
}

/* Parse [+-]hh[:mm[:ss]] into seconds. Returns the end or NULL. */
static const char *parse_hms(const char *s, long *out)
{
	int sign = 1;
	long h = 0, m = 0, sec = 0;
	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	if (!isdigit((unsigned char)*s))
		return NULL;
	while (isdigit((unsigned char)*s))
		h = h * 10 + (*s++ - '0');
	if (h > 167)
		return NULL;
	if (*s == ':') {
		s++;
		if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]))
			return NULL;
		m = (s[0] - '0') * 10 + (s[1] - '0');
		s += 2;
		if (*s == ':') {
			s++;
			if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]))
				return NULL;
			sec = (s[0] - '0') * 10 + (s[1] - '0');
			s += 2;
		}
	}
	*out = sign * (h * 3600 + m * 60 + sec);
	return s;
}

static const char *parse_name(const char *s)
{
	if (*s == '<') {
		while (*s && *s != '>')
			s++;
		return *s == '>' ? s + 1 : NULL;
	}
	const char *b = s;
	while (isalpha((unsigned char)*s))
		s++;
	return s - b >= 3 ? s : NULL;
}

static const char *parse_int(const char *s, int *out)
{
	long v = 0;
	if (!isdigit((unsigned char)*s))
		return NULL;
	while (isdigit((unsigned char)*s) && v < 100000)
		v = v * 10 + (*s++ - '0');
	*out = (int)v;
	return s;
}

static const char *parse_rule(const char *s, struct tz_rule *r)
{
	if (*s == 'J') {
		r->kind = RULE_JULIAN1;
		if (!(s = parse_int(s + 1, &r->day)) || r->day < 1 || r->day > 365)
			return NULL;
	} else if (*s == 'M') {
		r->kind = RULE_MONTH;
		if (!(s = parse_int(s + 1, &r->month)) || *s++ != '.' ||
		    !(s = parse_int(s, &r->week)) || *s++ != '.' || !(s = parse_int(s, &r->day)) ||
		    r->month < 1 || r->month > 12 || r->week < 1 || r->week > 5 || r->day > 6)
			return NULL;
	} else {
		r->kind = RULE_JULIAN0;
		if (!(s = parse_int(s, &r->day)) || r->day > 365)
			return NULL;
	}
	r->time_s = 2 * 3600;
	if (*s == '/' && !(s = parse_hms(s + 1, &r->time_s)))
		return NULL;
	return s;
}

/* "EST5EDT,M3.2.0,M11.1.0" (POSIX offsets are west-positive). 0 or -1. */
static int parse_posix(const char *s, struct posix_tz *p)
{
	long off;
	memset(p, 0, sizeof *p);
	if (!(s = parse_name(s)) || !(s = parse_hms(s, &off)))
		return -1;
	p->std_off = -off;
	p->dst_off = p->std_off;
	if (*s == '\0') {
		p->valid = 1;
		return 0;
	}
	if (!(s = parse_name(s)))
		return -1;
	p->has_dst = 1;
	p->dst_off = p->std_off + 3600;
	if (*s && *s != ',') {
		if (!(s = parse_hms(s, &off)))
			return -1;
		p->dst_off = -off;
	}
	if (*s != ',' || !(s = parse_rule(s + 1, &p->start)) || *s != ',' ||
	    !(s = parse_rule(s + 1, &p->end)) || *s != '\0')
		return -1;
	p->valid = 1;
	return 0;
}

/* Local seconds (from 00:00 local, 1 Jan of year y, as days) of a rule's change. */
static int64_t rule_local(const struct tz_rule *r, int64_t y)
{
	int64_t jan1 = days_from_civil(y, 1, 1), day;
	switch (r->kind) {
	case RULE_JULIAN1: /* 1..365, Feb 29 never counted */
		day = jan1 + r->day - 1 + (is_leap(y) && r->day >= 60 ? 1 : 0);
		break;
	case RULE_JULIAN0: day = jan1 + r->day; break;
	default: {
		static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
		int64_t first = days_from_civil(y, r->month, 1);
		int wd1 = (int)((first % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
		int dim = mdays[r->month - 1] + (r->month == 2 && is_leap(y));
		int d = 1 + (r->day - wd1 + 7) % 7 + (r->week - 1) * 7;
		while (d > dim)
			d -= 7;
		day = first + d - 1;
	}
	}
	return day * 86400 + r->time_s;
}

static long posix_offset(const struct posix_tz *p, int64_t t)
{
	if (!p->has_dst)
		return p->std_off;
	int64_t y = year_of(floor_div(t + p->std_off, 86400));
	/* Start is given in standard time, end in daylight time. */
	int64_t start = rule_local(&p->start, y) - p->std_off;
	int64_t end = rule_local(&p->end, y) - p->dst_off;
	int dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
	return dst ? p->dst_off : p->std_off;
}

/* ---- TZif ------------------------------------------------------------------ */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_counts {
	uint32_t isut, isstd, leap, time, type, chr;
};

static int counts(const unsigned char *p, size_t len, struct tzif_counts *c)
{
	if (len < 44 || memcmp(p, "TZif", 4) != 0)
		return -1;
	c->isut = be32(p + 20);
	c->isstd = be32(p + 24);
	c->leap = be32(p + 28);
	c->time = be32(p + 32);
	c->type = be32(p + 36);
	c->chr = be32(p + 40);
	if (c->type == 0 || c->type > 256 || c->time > 100000 || c->chr > 65536 ||
	    c->leap > 100000 || c->isut > c->type || c->isstd > c->type)
		return -1;
	return 0;
}

static size_t block_len(const struct tzif_counts *c, size_t tsz)
{
	return (size_t)c->time * tsz + c->time + (size_t)c->type * 6 + c->chr +
	       (size_t)c->leap * (tsz + 4) + c->isstd + c->isut;
}

struct sla_tz *sla_tz_parse(const unsigned char *buf, size_t len, char *errstr, size_t errlen)
{
	struct tzif_counts c;
	const unsigned char *p = buf;
	size_t tsz = 4, blen;
	struct sla_tz *z = NULL;

	if (counts(p, len, &c) != 0)
		goto bad;
	blen = block_len(&c, 4);
	if (44 + blen > len)
		goto bad;
	if (buf[4] >= '2') { /* skip the 32-bit block: use the 64-bit one */
		p = buf + 44 + blen;
		len -= 44 + blen;
		if (counts(p, len, &c) != 0)
			goto bad;
		tsz = 8;
		blen = block_len(&c, 8);
		if (44 + blen > len)
			goto bad;
	}
	z = xcalloc(1, sizeof *z);
	z->ntimes = c.time;
	z->ntypes = c.type;
	z->times = xcalloc(c.time + 1, sizeof *z->times);
	z->idx = xcalloc(c.time + 1, 1);
	z->offs = xcalloc(c.type, sizeof *z->offs);
	z->isdst = xcalloc(c.type, 1);
	const unsigned char *q = p + 44;
	for (size_t i = 0; i < c.time; i++, q += tsz)
		z->times[i] = tsz == 8 ? be64(q) : (int64_t)(int32_t)be32(q);
	for (size_t i = 0; i < c.time; i++, q++) {
		if (*q >= c.type)
			goto bad;
		z->idx[i] = *q;
	}
	for (size_t i = 0; i < c.type; i++, q += 6) {
		z->offs[i] = (long)(int32_t)be32(q);
		z->isdst[i] = q[4];
		if (z->offs[i] < -25 * 3600 || z->offs[i] > 26 * 3600)
			goto bad;
	}
	for (size_t i = 1; i < c.time; i++)
		if (z->times[i] <= z->times[i - 1])
			goto bad;
	if (tsz == 8) { /* footer: "\n<POSIX TZ>\n" */
		const unsigned char *f = p + 44 + blen, *end = p + len;
		if (f < end && *f == '\n') {
			const unsigned char *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
			if (nl && nl - f - 1 < 128) {
				char tzs[128];
				memcpy(tzs, f + 1, (size_t)(nl - f - 1));
				tzs[nl - f - 1] = '\0';
				if (tzs[0] && parse_posix(tzs, &z->footer) != 0)
					goto bad;
			}
		}
	}
	return z;
bad:
	sla_tz_free(z);
	snprintf(errstr, errlen, "not a valid TZif file");
	return NULL;
}

void sla_tz_free(struct sla_tz *z)
{
	if (!z)
		return;
	free(z->times);
	free(z->idx);
	free(z->offs);
	free(z->isdst);
	free(z);
}

static int name_ok(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len >= SLA_TZ_NAME_MAX || n[0] == '/' || strstr(n, ".."))
		return 0;
	for (const char *s = n; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("/_+-", *s))
			return 0;
	return 1;
}

struct sla_tz *sla_tz_load(const char *dir, const char *name, char *errstr, size_t errlen)
{
	char path[1024];
	unsigned char *buf = NULL;
	size_t len = 0;
	FILE *f = NULL;
	struct sla_tz *z = NULL;

	if (!name || !name_ok(name)) {
		snprintf(errstr, errlen, "time zone \"%s\" is not an IANA zone name",
		         name ? name : "");
		return NULL;
	}
	if (!dir)
		dir = getenv("TZDIR");
	if (!dir || !*dir)
		dir = "/usr/share/zoneinfo";
	if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
		snprintf(errstr, errlen, "time zone path too long");
		return NULL;
	}
	if (!(f = fopen(path, "rb"))) {
		snprintf(errstr, errlen, "time zone %s: %s", name, strerror(errno));
		return NULL;
	}
	buf = xmalloc(SLA_TZ_FILE_MAX);
	len = fread(buf, 1, SLA_TZ_FILE_MAX, f);
	if (len == SLA_TZ_FILE_MAX)
		snprintf(errstr, errlen, "time zone %s: file too large", name);
	else if (!(z = sla_tz_parse(buf, len, errstr, errlen))) {
		char why[128];
		snprintf(why, sizeof why, "%s", errstr);
		snprintf(errstr, errlen, "time zone %s: %s", name, why);
	}
	free(buf);
	fclose(f);
	return z;
}

long sla_tz_offset(const struct sla_tz *z, int64_t t)
{
	if (z->ntimes == 0 || t < z->times[0]) {
		if (z->ntimes == 0 && z->footer.valid)
			return posix_offset(&z->footer, t);
		for (size_t i = 0; i < z->ntypes; i++) /* RFC 8536: type 0 before the first */
			if (!z->isdst[i])
				return z->offs[i];
		return z->offs[0];
	}
	if (t >= z->times[z->ntimes - 1] && z->footer.valid)
		return posix_offset(&z->footer, t);
	size_t lo = 0, hi = z->ntimes; /* last transition <= t */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (z->times[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return z->offs[z->idx[lo]];
}

int64_t sla_tz_to_utc(const struct sla_tz *z, int64_t local_s)
{
	/* Offsets around the instant: the one before and the one after a change.
	 * Candidates u = local - off; u is right when off(u) == off. */
	long a = sla_tz_offset(z, local_s - 86400), b = sla_tz_offset(z, local_s + 86400);
	int64_t ua = local_s - a, ub = local_s - b;
	int oka = sla_tz_offset(z, ua) == a, okb = sla_tz_offset(z, ub) == b;
	if (oka && okb)
		return ua < ub ? ua : ub; /* repeated (fall back): the first occurrence */
	if (oka)
		return ua;
	if (okb)
		return ub;
	/* Skipped (spring forward): the change instant lies between ub and ua. */
	int64_t lo = ua < ub ? ua : ub, hi = ua < ub ? ub : ua;
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;
		if (sla_tz_offset(z, mid) == sla_tz_offset(z, lo))
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

/* ---- working time ---------------------------------------------------------- */

int64_t sla_work_add(const struct sla_hours *h, int64_t start_ms, long minutes)
{
	if (minutes <= 0)
		return start_ms;
	if (!h)
		return start_ms + (int64_t)minutes * 60000;
	int64_t left = (int64_t)minutes * 60000, cur = start_ms;
	int64_t start_s = floor_div(start_ms, 1000);
	/* The local day of the start; one day earlier too, so a start just after a
	 * midnight jump still sees its day's windows. */
	int64_t day = floor_div(start_s + sla_tz_offset(h->tz, start_s), 86400) - 1;
	for (int64_t k = 0; k < SLA_HORIZON_DAYS; k++, day++) {
		int wd = (int)(((day % 7) + 11) % 7); /* 0 = Sunday */
		for (int i = 0; i < h->nwin[wd]; i++) {
			int64_t ws =
			        sla_tz_to_utc(h->tz, day * 86400 + h->win[wd][i].start_min * 60) *
			        1000;
			int64_t we =
			        sla_tz_to_utc(h->tz, day * 86400 + h->win[wd][i].end_min * 60) *
			        1000;
			int64_t s = ws > cur ? ws : cur;
			if (s >= we)
				continue;
			if (left <= we - s)
				return s + left;
			left -= we - s;
			cur = we;
		}
	}
	return -1;
}

/* ---- policy ---------------------------------------------------------------- */

static void problem(json_t **problems, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(json_t **problems, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (!*problems)
		*problems = json_array();
	json_array_append_new(*problems, json_string(buf));
}

/* "HH:MM" -> minutes (24:00 allowed as an end). -1 if invalid. */
static int hhmm(const char *s, int allow_24)
{
	if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
	    !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
		return -1;
	int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
	if (m > 59 || h > 24 || (h == 24 && (m != 0 || !allow_24)))
		return -1;
	return h * 60 + m;
}

static const char *const day_names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static void load_hours(json_t *regions, const char *region, json_t *spec, const char *tzdir,
                       struct sla_hours *h, json_t **problems)
{
	const char *tzn = json_string_value(json_object_get(spec, "time_zone"));
	json_t *week = json_object_get(spec, "week");
	char err[256];
	int total = 0;

	snprintf(h->region, sizeof h->region, "%s", region);
	if (!json_object_get(regions, region))
		problem(problems, "$.business_hours.%s: not a region of $.regions", region);
	snprintf(h->tz_name, sizeof h->tz_name, "%s", tzn ? tzn : "");
	if (!(h->tz = sla_tz_load(tzdir, tzn, err, sizeof err)))
		problem(problems, "$.business_hours.%s.time_zone: %s", region, err);
	for (int d = 0; d < 7; d++) {
		json_t *list = json_object_get(week, day_names[d]), *w;
		size_t i;
		json_array_foreach(list, i, w)
		{
			const char *s = json_string_value(w);
			int a, b;
			if (i >= SLA_WINDOWS_MAX) {
				problem(problems,
				        "$.business_hours.%s.week.%s: more than %d windows", region,
				        day_names[d], SLA_WINDOWS_MAX);
				break;
			}
			if (!s || strlen(s) != 11 || s[5] != '-' || (a = hhmm(s, 0)) < 0 ||
			    (b = hhmm(s + 6, 1)) < 0 || b <= a) {
				problem(problems,
				        "$.business_hours.%s.week.%s[%zu]: \"%s\" is not "
				        "\"HH:MM-HH:MM\" with start < end (24:00 ends a day)",
				        region, day_names[d], i, s ? s : "");
				continue;
			}
			if (h->nwin[d] > 0 && a < h->win[d][h->nwin[d] - 1].end_min) {
				problem(problems,
				        "$.business_hours.%s.week.%s[%zu]: overlaps or precedes "
				        "the "
				        "window before it",
				        region, day_names[d], i);
				continue;
			}
			h->win[d][h->nwin[d]].start_min = a;
			h->win[d][h->nwin[d]].end_min = b;
			h->nwin[d]++;
			total++;
		}
	}
	if (total == 0)
		problem(problems, "$.business_hours.%s.week: no working window in the week",
		        region);
}

struct sla_policy *sla_policy_from_json(json_t *doc, const char *tzdir, json_t **problems)
{
	struct sla_policy *p = xcalloc(1, sizeof *p);
	json_t *bh = json_object_get(doc, "business_hours");
	json_t *esc = json_object_get(doc, "sla_escalation");
	json_t *regions = json_object_get(doc, "regions"), *v;
	const char *key;
	size_t before = json_array_size(*problems), i;

	p->notify = 1;
	p->max_escalations = 1;
	if (json_object_size(bh) > SLA_REGIONS_MAX)
		problem(problems, "$.business_hours: more than %d regions", SLA_REGIONS_MAX);
	else if (json_object_size(bh) > 0) {
		p->hours = xcalloc(json_object_size(bh), sizeof *p->hours);
		json_object_foreach(bh, key, v)
		        load_hours(regions, key, v, tzdir, &p->hours[p->nhours++], problems);
	}
	if (json_is_boolean(json_object_get(esc, "notify")))
		p->notify = json_is_true(json_object_get(esc, "notify"));
	if (json_is_boolean(json_object_get(esc, "reassign")))
		p->reassign = json_is_true(json_object_get(esc, "reassign"));
	if (json_is_integer(json_object_get(esc, "max_escalations")))
		p->max_escalations =
		        (int)json_integer_value(json_object_get(esc, "max_escalations"));
	if (p->max_escalations < 1 || p->max_escalations > 100)
		problem(problems, "$.sla_escalation.max_escalations: must be 1..100");
	json_array_foreach(json_object_get(esc, "notify_channels"), i, v)
	{
		if (i >= SLA_CHANNELS_MAX) {
			problem(problems, "$.sla_escalation.notify_channels: more than %d",
			        SLA_CHANNELS_MAX);
			break;
		}
		snprintf(p->channels[p->nchannels++], SLA_NAME_MAX, "%s",
		         json_string_value(v) ? json_string_value(v) : "");
	}
	if (json_array_size(*problems) > before) {
		sla_policy_free(p);
		return NULL;
	}
	return p;
}

void sla_policy_free(struct sla_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nhours; i++)
		sla_tz_free(p->hours[i].tz);
	free(p->hours);
	free(p);
}

const struct sla_hours *sla_policy_hours(const struct sla_policy *p, const char *region)
{
	for (size_t i = 0; p && region && i < p->nhours; i++)
		if (strcmp(p->hours[i].region, region) == 0)
			return &p->hours[i];
	return NULL;
}
