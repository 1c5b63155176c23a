/*
 * report.c - `sfk report --input FLYWHEEL_DIR --from DAY --to DAY --out DIR`:
 * reads the loader's JSONL files (<workload>_<YYYY-MM-DD>[.<n>].jsonl[.gz]),
 * keeps the records of the period, and writes dashboard_<to>.json,
 * routing_metrics_<to>.csv, ttfr_metrics_<to>.csv, template_metrics_<to>.csv
 * and report.html.
 *
 * What the figures mean (one lead counts once per figure):
 *  - routing: a lead's latest lead.route decision that set an owner; its
 *    assignment latency is decision time - Lead.CreatedDate.
 *  - TTFR: a lead's earliest first response over its
 *    lead.first_touch_detect decisions; owner/region/segment come from its
 *    routing decision (owner: else the responding user), the SLA from that
 *    decision's sla_minutes, else the routing policy's per-segment value,
 *    else the default. Daily trend: by the lead's creation day.
 *  - templates: a lead's latest suggestion; sent = the suggestion was sent;
 *    a reply counts for the lead's template; reply rate = replied / suggested
 *    leads, null when no reply was observed at all.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "report.h"
#include "xmem.h"

/* ---- small helpers ---------------------------------------------------------- */

struct dvec {
	double *v;
	size_t n, cap;
};

static void dpush(struct dvec *d, double x)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 16;
		d->v = xrealloc(d->v, d->cap * sizeof *d->v);
	}
	d->v[d->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double report_quantile(double *v, size_t n, double q)
{
	qsort(v, n, sizeof *v, cmp_double);
	double pos = q * (double)(n - 1);
	size_t lo = (size_t)floor(pos);
	if (lo + 1 >= n)
		return v[n - 1];
	return v[lo] + (v[lo + 1] - v[lo]) * (pos - (double)lo);
}

/* epoch seconds of 00:00 UTC of "YYYY-MM-DD", or -1. */
static long long day_start(const char *day)
{
	struct tm tm = {0};
	int y, m, d, n = 0;
	if (!day || sscanf(day, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 || day[10] ||
	    m < 1 || m > 12 || d < 1 || d > 31)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	long long t = (long long)timegm(&tm);
	/* reject 2026-02-31 and friends: they normalise to another day */
	struct tm back;
	time_t tt = (time_t)t;
	gmtime_r(&tt, &back);
	return back.tm_mday == d ? t : -1;
}

static void day_of(double t, char out[11])
{
	time_t tt = (time_t)floor(t);
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

/* The parsed JSON of a message's content: user facts (i = 1) of the request,
 * or the decision (the response's choice 0). New reference or NULL. */
static json_t *content(json_t *rec, int decision)
{
	json_t *c =
	        decision ? json_object_get(
	                           json_object_get(
	                                   json_array_get(
	                                           json_object_get(json_object_get(rec, "response"),
	                                                           "choices"),
	                                           0),
	                                   "message"),
	                           "content")
	                 : json_object_get(
	                           json_array_get(json_object_get(json_object_get(rec, "request"),
	                                                          "messages"),
	                                          1),
	                           "content");
	const char *s = json_string_value(c);
	return s ? json_loads(s, 0, NULL) : NULL;
}

static const char *sget(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* ---- grouped figures ---------------------------------------------------------- */

/* groups: {key: {"v": [numbers], "n": count, "breach": count}} */
static void gadd(json_t *groups, const char *key, double v, int breach)
{
	if (!key || !*key)
		key = "unknown";
	json_t *g = json_object_get(groups, key);
	if (!g) {
		g = json_pack("{s:[], s:i, s:i}", "v", "n", 0, "breach", 0);
		json_object_set_new(groups, key, g);
	}
	if (!isnan(v))
		json_array_append_new(json_object_get(g, "v"), json_real(v));
	json_object_set_new(g, "n", json_integer(json_integer_value(json_object_get(g, "n")) + 1));
	json_object_set_new(
	        g, "breach",
	        json_integer(json_integer_value(json_object_get(g, "breach")) + (breach > 0)));
}

/* Median/P95/max of a JSON number array into o under the given keys (NULL:
 * skip); null values when the array is empty. */
static void put_stats(json_t *o, json_t *arr, const char *kmed, const char *kp95, const char *kmax)
{
	size_t n = json_array_size(arr), i;
	json_t *x;
	double *v = xcalloc(n ? n : 1, sizeof *v);
	json_array_foreach(arr, i, x) v[i] = json_number_value(x);
	if (kmed)
		json_object_set_new(o, kmed,
		                    n ? json_real(report_quantile(v, n, 0.5)) : json_null());
	if (kp95)
		json_object_set_new(o, kp95,
		                    n ? json_real(report_quantile(v, n, 0.95)) : json_null());
	if (kmax) /* report_quantile sorted v */
		json_object_set_new(o, kmax, n ? json_real(v[n - 1]) : json_null());
	free(v);
}

static int cmp_rows(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	json_int_t nx = json_integer_value(json_object_get(x, "leads"));
	json_int_t ny = json_integer_value(json_object_get(y, "leads"));
	if (nx != ny)
		return nx > ny ? -1 : 1;
	return strcmp(sget(x, "key"), sget(y, "key"));
}

/* groups -> array of rows {key, leads, share, [stats]} sorted by leads desc. */
static json_t *rows(json_t *groups, size_t total, int kind)
{
	size_t n = json_object_size(groups), k = 0;
	json_t **v = xcalloc(n ? n : 1, sizeof *v);
	const char *key;
	json_t *g;
	json_object_foreach(groups, key, g)
	{
		size_t cnt = (size_t)json_integer_value(json_object_get(g, "n"));
		json_t *r = json_pack("{s:s, s:i, s:f}", "key", key, "leads", (json_int_t)cnt,
		                      "share", total ? (double)cnt / (double)total : 0.0);
		if (kind == 1) { /* TTFR */
			put_stats(r, json_object_get(g, "v"), "median_minutes", "p95_minutes",
			          "max_minutes");
			json_object_set_new(
			        r, "sla_breaches",
			        json_integer(json_integer_value(json_object_get(g, "breach"))));
			json_object_set_new(r, "sla_breach_rate",
			                    json_real(cnt ? (double)json_integer_value(
			                                            json_object_get(g, "breach")) /
			                                              (double)cnt
			                                  : 0.0));
		} else if (kind == 2) { /* routing: assignment latency */
			put_stats(r, json_object_get(g, "v"), "assignment_latency_median_minutes",
			          "assignment_latency_p95_minutes", NULL);
		}
		v[k++] = r;
	}
	qsort(v, k, sizeof *v, cmp_rows);
	json_t *a = json_array();
	for (size_t i = 0; i < k; i++)
		json_array_append_new(a, v[i]);
	free(v);
	return a;
}

/* ---- the metric core ------------------------------------------------------------ */

/* Latest record per lead of one workload: {lead: {"t", "facts", "dec"}}. */
static void keep_latest(json_t *by_lead, const char *lead, double t, json_t *facts, json_t *dec)
{
	json_t *cur = json_object_get(by_lead, lead);
	if (cur && json_number_value(json_object_get(cur, "t")) > t) {
		json_decref(facts);
		json_decref(dec);
		return;
	}
	json_object_set_new(by_lead, lead,
	                    json_pack("{s:f, s:o, s:o}", "t", t, "facts",
	                              facts ? facts : json_null(), "dec", dec ? dec : json_null()));
}

static double lead_sla(const struct report_opts *o, json_t *route_dec, const char *segment)
{
	json_t *s = json_object_get(route_dec, "sla_minutes");
	if (json_is_number(s) && json_number_value(s) > 0)
		return json_number_value(s);
	s = segment ? json_object_get(o->sla_segments, segment) : NULL;
	if (json_is_number(s) && json_number_value(s) > 0)
		return json_number_value(s);
	return o->sla_default;
}

/* Median/P95(/max) minutes of one group into o. */
static void group_stats(json_t *o, json_t *groups, const char *key, bool with_max)
{
	json_t *g = json_object_get(groups, key);
	json_t *v = g ? json_object_get(g, "v") : NULL;
	json_t *empty = json_array();
	put_stats(o, v ? v : empty, "median_minutes", "p95_minutes",
	          with_max ? "max_minutes" : NULL);
	json_decref(empty);
}

static json_t *compute_routing(json_t *routed)
{
	json_t *seg = json_object(), *reg = json_object(), *segreg = json_object(),
	       *own = json_object(), *otype = json_object(), *all = json_object();
	struct dvec conf = {0};
	const char *lead;
	json_t *r;
	size_t n = json_object_size(routed);
	json_object_foreach(routed, lead, r)
	{
		json_t *dec = json_object_get(r, "dec");
		double created = cli_parse_time(sget(json_object_get(r, "facts"), "CreatedDate"));
		double t = json_number_value(json_object_get(r, "t"));
		double lat = isnan(created) ? NAN : (t - created) / 60.0;
		const char *sg = sget(dec, "segment"), *rg = sget(dec, "region");
		char sr[160];
		snprintf(sr, sizeof sr, "%s/%s", sg ? sg : "unknown", rg ? rg : "unknown");
		gadd(all, "all", lat, 0);
		gadd(seg, sg, lat, 0);
		gadd(reg, rg, lat, 0);
		gadd(segreg, sr, lat, 0);
		gadd(own, sget(dec, "owner_id"), lat, 0);
		gadd(otype, sget(dec, "owner_type"), lat, 0);
		if (json_is_number(json_object_get(dec, "confidence")))
			dpush(&conf, json_number_value(json_object_get(dec, "confidence")));
	}
	json_t *out = json_pack("{s:i}", "leads_routed", (json_int_t)n);
	json_t *lat = json_object();
	group_stats(lat, all, "all", false);
	json_object_set_new(out, "assignment_latency_minutes", lat);
	json_t *c = json_object();
	json_object_set_new(c, "median",
	                    conf.n ? json_real(report_quantile(conf.v, conf.n, 0.5)) : json_null());
	json_object_set_new(c, "min", conf.n ? json_real(conf.v[0]) : json_null());
	json_object_set_new(c, "max", conf.n ? json_real(conf.v[conf.n - 1]) : json_null());
	json_object_set_new(out, "confidence", c);
	json_object_set_new(out, "by_segment", rows(seg, n, 2));
	json_object_set_new(out, "by_region", rows(reg, n, 2));
	json_object_set_new(out, "by_segment_region", rows(segreg, n, 2));
	json_object_set_new(out, "by_owner", rows(own, n, 2));
	json_object_set_new(out, "by_owner_type", rows(otype, n, 0));
	free(conf.v);
	json_decref(seg);
	json_decref(reg);
	json_decref(segreg);
	json_decref(own);
	json_decref(otype);
	json_decref(all);
	return out;
}

static const double bucket_edges[] = {0, 5, 15, 30, 60};
static const char *const bucket_labels[] = {"0-5", "5-15", "15-30", "30-60", "60+"};
#define NBUCKETS 5

static int cmp_day(const void *a, const void *b)
{
	return strcmp(sget(*(json_t *const *)a, "day"), sget(*(json_t *const *)b, "day"));
}

static json_t *compute_ttfr(json_t *first, json_t *routed, const struct report_opts *o)
{
	json_t *own = json_object(), *reg = json_object(), *seg = json_object(),
	       *day = json_object(), *all = json_object();
	long long bucket[NBUCKETS] = {0};
	const char *lead;
	json_t *f;
	size_t n = json_object_size(first);
	json_object_foreach(first, lead, f)
	{
		json_t *rdec = json_object_get(json_object_get(routed, lead), "dec");
		double ttfr = json_number_value(json_object_get(f, "ttfr"));
		const char *segment = rdec ? sget(rdec, "segment") : NULL;
		if (!segment)
			segment = sget(f, "segment");
		const char *owner = rdec ? sget(rdec, "owner_id") : NULL;
		if (!owner)
			owner = sget(f, "user");
		int breach = ttfr > lead_sla(o, rdec, segment);
		char d[11] = "unknown";
		double created = cli_parse_time(sget(f, "created"));
		if (!isnan(created))
			day_of(created, d);
		gadd(all, "all", ttfr, breach);
		gadd(own, owner, ttfr, breach);
		gadd(reg, rdec ? sget(rdec, "region") : NULL, ttfr, breach);
		gadd(seg, segment, ttfr, breach);
		gadd(day, d, ttfr, breach);
		int b = NBUCKETS - 1;
		while (b > 0 && ttfr < bucket_edges[b])
			b--;
		bucket[b]++;
	}
	json_t *out = json_pack("{s:i}", "leads", (json_int_t)n);
	group_stats(out, all, "all", true);
	json_t *ga = json_object_get(all, "all");
	long long breaches = ga ? json_integer_value(json_object_get(ga, "breach")) : 0;
	json_object_set_new(out, "sla_breaches", json_integer(breaches));
	json_object_set_new(out, "sla_breach_rate",
	                    n ? json_real((double)breaches / (double)n) : json_null());
	json_t *bk = json_array();
	for (int b = 0; b < NBUCKETS; b++)
		json_array_append_new(bk, json_pack("{s:s, s:f, s:I}", "label", bucket_labels[b],
		                                    "from_minutes", bucket_edges[b], "count",
		                                    (json_int_t)bucket[b]));
	json_object_set_new(out, "buckets", bk);
	json_object_set_new(out, "by_owner", rows(own, n, 1));
	json_object_set_new(out, "by_region", rows(reg, n, 1));
	json_object_set_new(out, "by_segment", rows(seg, n, 1));
	/* the trend reads left to right: by day, not by size */
	json_t *daily = rows(day, n, 1);
	size_t nd = json_array_size(daily), i;
	json_t **dv = xcalloc(nd ? nd : 1, sizeof *dv);
	json_t *r;
	json_array_foreach(daily, i, r)
	{
		json_object_set(r, "day", json_object_get(r, "key"));
		dv[i] = json_incref(r);
	}
	qsort(dv, nd, sizeof *dv, cmp_day);
	json_array_clear(daily);
	for (i = 0; i < nd; i++)
		json_array_append_new(daily, dv[i]);
	free(dv);
	json_object_set_new(out, "daily", daily);
	json_decref(own);
	json_decref(reg);
	json_decref(seg);
	json_decref(day);
	json_decref(all);
	return out;
}

static json_t *compute_templates(json_t *sugg, json_t *replies)
{
	json_t *tpl = json_object(), *intents = json_object();
	const char *lead;
	json_t *s;
	size_t n = json_object_size(sugg), sent = 0, replied = 0;
	struct dvec conf = {0};
	json_object_foreach(sugg, lead, s)
	{
		json_t *dec = json_object_get(s, "dec");
		const char *id = sget(dec, "template_id");
		if (!id)
			id = "unknown";
		json_t *t = json_object_get(tpl, id);
		if (!t) {
			t = json_pack("{s:s, s:s?, s:i, s:i, s:i, s:[]}", "template_id", id,
			              "intent", sget(dec, "intent"), "suggested", 0, "sent", 0,
			              "replied", 0, "conf");
			json_object_set_new(tpl, id, t);
		}
		int is_sent = json_is_true(json_object_get(dec, "send"));
		/* a reply names the template the lead got; fall back to the suggestion's */
		json_t *rep = json_object_get(replies, lead);
		int is_rep = rep != NULL;
		json_object_set_new(
		        t, "suggested",
		        json_integer(json_integer_value(json_object_get(t, "suggested")) + 1));
		json_object_set_new(
		        t, "sent",
		        json_integer(json_integer_value(json_object_get(t, "sent")) + is_sent));
		json_object_set_new(
		        t, "replied",
		        json_integer(json_integer_value(json_object_get(t, "replied")) + is_rep));
		if (json_is_number(json_object_get(dec, "confidence"))) {
			json_array_append(json_object_get(t, "conf"),
			                  json_object_get(dec, "confidence"));
			dpush(&conf, json_number_value(json_object_get(dec, "confidence")));
		}
		gadd(intents, sget(dec, "intent"), NAN, 0);
		sent += (size_t)is_sent;
		replied += (size_t)is_rep;
	}
	bool any_reply = json_object_size(replies) > 0;
	json_t *by = json_object(), *list = json_array();
	const char *k;
	json_t *t;
	json_object_foreach(tpl, k, t)
	{
		json_int_t sg = json_integer_value(json_object_get(t, "suggested"));
		json_int_t st = json_integer_value(json_object_get(t, "sent"));
		json_int_t rp = json_integer_value(json_object_get(t, "replied"));
		json_object_set_new(t, "send_rate", json_real(sg ? (double)st / (double)sg : 0));
		json_object_set_new(t, "reply_rate",
		                    any_reply ? json_real(sg ? (double)rp / (double)sg : 0)
		                              : json_null());
		put_stats(t, json_object_get(t, "conf"), "median_confidence", NULL, NULL);
		json_object_del(t, "conf");
		json_object_set_new(by, k, json_pack("{s:I}", "n", sg)); /* sorted by rows() */
	}
	json_t *order = rows(by, n, 0);
	size_t i;
	json_t *r;
	json_array_foreach(order, i, r)
	        json_array_append(list, json_object_get(tpl, sget(r, "key")));
	json_t *out = json_pack(
	        "{s:i, s:i, s:o, s:i, s:o}", "suggested", (json_int_t)n, "sent", (json_int_t)sent,
	        "send_rate", n ? json_real((double)sent / (double)n) : json_null(), "replied",
	        (json_int_t)replied, "reply_rate",
	        any_reply && n ? json_real((double)replied / (double)n) : json_null());
	json_object_set_new(out, "median_confidence",
	                    conf.n ? json_real(report_quantile(conf.v, conf.n, 0.5)) : json_null());
	json_object_set_new(out, "intents", rows(intents, n, 0));
	json_object_set_new(out, "by_template", list);
	free(conf.v);
	json_decref(order);
	json_decref(by);
	json_decref(tpl);
	json_decref(intents);
	return out;
}

/* Owner rows get the name the routing policy gives their id. */
static void name_owners(json_t *rows_, json_t *names)
{
	size_t i;
	json_t *r;
	json_array_foreach(rows_, i, r)
	{
		json_t *n = json_object_get(names, sget(r, "key"));
		if (json_is_string(n))
			json_object_set(r, "name", n);
	}
}

/* {owner id: name} of every pool member of a routing policy (new reference). */
static json_t *policy_owner_names(json_t *policy)
{
	json_t *out = json_object();
	size_t i, j;
	json_t *pool, *m;
	json_array_foreach(json_object_get(policy, "pools"), i, pool)
	{
		json_array_foreach(json_object_get(pool, "members"), j, m)
		{
			const char *id = sget(m, "owner_id"), *name = sget(m, "name");
			if (id && name)
				json_object_set_new(out, id, json_string(name));
		}
	}
	return out;
}

json_t *report_compute(json_t *records, const struct report_opts *o)
{
	json_t *routed = json_object(), *first = json_object(), *sugg = json_object(),
	       *replies = json_object(), *counts = json_object();
	size_t i;
	json_t *rec;
	json_array_foreach(records, i, rec)
	{
		const char *wl = sget(rec, "workload_id");
		double t = (double)json_integer_value(json_object_get(rec, "timestamp"));
		if (!wl)
			continue;
		json_object_set_new(
		        counts, wl,
		        json_integer(json_integer_value(json_object_get(counts, wl)) + 1));
		json_t *dec = content(rec, 1);
		const char *lead = sget(
		        json_object_get(json_object_get(rec, "request"), "metadata"), "lead_id");
		if (!json_is_object(dec) || !lead || !*lead) {
			json_decref(dec);
			continue;
		}
		if (strcmp(wl, "lead.route") == 0) {
			const char *ot = sget(dec, "owner_type");
			if (!sget(dec, "owner_id") || (ot && strcmp(ot, "unchanged") == 0)) {
				json_decref(dec);
				continue;
			}
			keep_latest(routed, lead, t, content(rec, 0), dec);
		} else if (strcmp(wl, "lead.first_touch_detect") == 0) {
			json_t *fr = json_object_get(dec, "first_response");
			double at = cli_parse_time(sget(fr, "at"));
			json_t *tt = json_object_get(dec, "ttfr_minutes");
			json_t *cur = json_object_get(first, lead);
			if (json_is_number(tt) && !isnan(at) &&
			    (!cur || at < json_number_value(json_object_get(cur, "at")))) {
				json_t *facts = content(rec, 0);
				json_object_set_new(
				        first, lead,
				        json_pack("{s:f, s:f, s:s?, s:s?, s:s?, s:s?}", "at", at,
				                  "ttfr", json_number_value(tt), "user",
				                  sget(fr, "user"), "source", sget(fr, "source"),
				                  "created", sget(facts, "lead_created_at"),
				                  "segment", sget(facts, "segment")));
				json_decref(facts);
			}
			json_decref(dec);
		} else if (strcmp(wl, "outreach.template_suggest") == 0) {
			const char *oc = sget(dec, "outcome");
			if (oc && strcmp(oc, "reply") == 0) {
				json_object_set(replies, lead, dec);
				json_decref(dec);
			} else if (sget(dec, "template_id")) {
				keep_latest(sugg, lead, t, NULL, dec);
			} else {
				json_decref(dec);
			}
		} else {
			json_decref(dec);
		}
	}
	json_t *d = json_object();
	json_object_set_new(d, "period", json_pack("{s:s?, s:s?}", "from", o->from, "to", o->to));
	json_object_set_new(d, "records",
	                    json_pack("{s:I, s:O}", "in_period",
	                              (json_int_t)json_array_size(records), "by_workload", counts));
	json_object_set_new(d, "sla",
	                    json_pack("{s:f, s:O?}", "default_minutes", o->sla_default,
	                              "by_segment", o->sla_segments));
	json_object_set_new(d, "ttfr", compute_ttfr(first, routed, o));
	json_object_set_new(d, "routing", compute_routing(routed));
	json_object_set_new(d, "templates", compute_templates(sugg, replies));
	name_owners(json_object_get(json_object_get(d, "ttfr"), "by_owner"), o->owner_names);
	name_owners(json_object_get(json_object_get(d, "routing"), "by_owner"), o->owner_names);
	json_decref(routed);
	json_decref(first);
	json_decref(sugg);
	json_decref(replies);
	json_decref(counts);
	return d;
}

/* ---- reading the JSONL files --------------------------------------------------- */

/* "<wl>_<YYYY-MM-DD>[.<n>].jsonl[.gz]" -> day (11 bytes) and gz; 0 or -1. */
static int parse_name(const char *name, char day[11], bool *gz)
{
	size_t n = strlen(name);
	*gz = n > 9 && strcmp(name + n - 9, ".jsonl.gz") == 0;
	if (*gz)
		n -= 9;
	else if (n > 6 && strcmp(name + n - 6, ".jsonl") == 0)
		n -= 6;
	else
		return -1;
	size_t e = n; /* optional ".<n>" segment number */
	while (e > 0 && isdigit((unsigned char)name[e - 1]))
		e--;
	if (e < n && e > 0 && name[e - 1] == '.')
		n = e - 1;
	if (n < 12 || name[n - 11] != '_')
		return -1;
	memcpy(day, name + n - 10, 10);
	day[10] = '\0';
	return day_start(day) < 0 ? -1 : 0;
}

/* A stream of the file's text: the file itself, or `gzip -dc` (no shell). */
static FILE *open_text(const char *path, bool gz, pid_t *pid)
{
	*pid = -1;
	if (!gz)
		return fopen(path, "r");
	int fd[2];
	if (pipe(fd) != 0)
		return NULL;
	pid_t p = fork();
	if (p < 0) {
		close(fd[0]);
		close(fd[1]);
		return NULL;
	}
	if (p == 0) {
		dup2(fd[1], STDOUT_FILENO);
		close(fd[0]);
		close(fd[1]);
		execlp("gzip", "gzip", "-dc", "--", path, (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	*pid = p;
	return fdopen(fd[0], "r");
}

struct load_stats {
	size_t files, lines, bad_lines, too_long, out_of_period;
};

static int load_file(const char *path, bool gz, long long t0, long long t1, json_t *out,
                     struct load_stats *st)
{
	pid_t pid;
	FILE *f = open_text(path, gz, &pid);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	if (!f)
		return -1;
	st->files++;
	while ((len = getline(&line, &cap, f)) >= 0) {
		st->lines++;
		if ((size_t)len > REPORT_LINE_MAX) {
			st->too_long++;
			continue;
		}
		json_t *rec = json_loadb(line, (size_t)len, 0, NULL);
		json_t *ts = json_object_get(rec, "timestamp");
		if (!json_is_object(rec) || !json_is_integer(ts)) {
			st->bad_lines++; /* a torn last line of a crashed writer, or garbage */
			json_decref(rec);
			continue;
		}
		long long t = json_integer_value(ts);
		if (t < t0 || t >= t1)
			st->out_of_period++;
		else
			json_array_append(out, rec);
		json_decref(rec);
	}
	free(line);
	fclose(f);
	if (pid > 0) {
		int status;
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			return -1;
	}
	return 0;
}

/* ---- CSV ----------------------------------------------------------------------- */

static void csv_str(FILE *f, const char *s)
{
	if (!s)
		return;
	if (!strpbrk(s, ",\"\n\r")) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void csv_num(FILE *f, json_t *v, int decimals)
{
	if (json_is_integer(v))
		fprintf(f, "%lld", (long long)json_integer_value(v));
	else if (json_is_number(v))
		fprintf(f, "%.*f", decimals, json_number_value(v));
}

/* One CSV line: dimension, then each of cols from row (numbers or strings). */
static void csv_row(FILE *f, const char *dim, json_t *row, const char *const *cols)
{
	if (dim) {
		csv_str(f, dim);
		fputc(',', f);
	}
	for (size_t i = 0; cols[i]; i++) {
		json_t *v = json_object_get(row, cols[i]);
		if (json_is_string(v))
			csv_str(f, json_string_value(v));
		else
			csv_num(f, v,
			        strstr(cols[i], "rate") || strstr(cols[i], "share") ||
			                        strstr(cols[i], "confidence")
			                ? 4
			                : 2);
		fputc(cols[i + 1] ? ',' : '\n', f);
	}
}

static void csv_rows(FILE *f, const char *dim, json_t *arr, const char *const *cols)
{
	size_t i;
	json_t *r;
	json_array_foreach(arr, i, r) csv_row(f, dim, r, cols);
}

static int write_csvs(const char *dir, const char *day, json_t *d, json_t *written)
{
	char path[4096];
	FILE *f;
	json_t *rt = json_object_get(d, "routing"), *tt = json_object_get(d, "ttfr"),
	       *tp = json_object_get(d, "templates");

	snprintf(path, sizeof path, "%s/routing_metrics_%s.csv", dir, day);
	if (!(f = fopen(path, "w")))
		return -1;
	static const char *const rcols[] = {"key",
	                                    "leads",
	                                    "share",
	                                    "assignment_latency_median_minutes",
	                                    "assignment_latency_p95_minutes",
	                                    NULL};
	fprintf(f, "dimension,key,leads,share,assignment_latency_median_minutes,"
	           "assignment_latency_p95_minutes\n");
	json_t *lat = json_object_get(rt, "assignment_latency_minutes");
	json_t *all = json_pack(
	        "{s:s, s:O, s:f, s:O, s:O}", "key", "all", "leads",
	        json_object_get(rt, "leads_routed"), "share", 1.0,
	        "assignment_latency_median_minutes", json_object_get(lat, "median_minutes"),
	        "assignment_latency_p95_minutes", json_object_get(lat, "p95_minutes"));
	csv_row(f, "all", all, rcols);
	json_decref(all);
	csv_rows(f, "segment", json_object_get(rt, "by_segment"), rcols);
	csv_rows(f, "region", json_object_get(rt, "by_region"), rcols);
	csv_rows(f, "segment_region", json_object_get(rt, "by_segment_region"), rcols);
	csv_rows(f, "owner", json_object_get(rt, "by_owner"), rcols);
	csv_rows(f, "owner_type", json_object_get(rt, "by_owner_type"), rcols);
	if (fclose(f) != 0)
		return -1;
	json_array_append_new(written, json_string(path));

	snprintf(path, sizeof path, "%s/ttfr_metrics_%s.csv", dir, day);
	if (!(f = fopen(path, "w")))
		return -1;
	static const char *const tcols[] = {
	        "key",         "leads",        "median_minutes",  "p95_minutes",
	        "max_minutes", "sla_breaches", "sla_breach_rate", NULL};
	fprintf(f, "dimension,key,leads,median_minutes,p95_minutes,max_minutes,sla_breaches,"
	           "sla_breach_rate\n");
	json_t *tall = json_deep_copy(tt);
	json_object_set_new(tall, "key", json_string("all"));
	csv_row(f, "all", tall, tcols);
	json_decref(tall);
	csv_rows(f, "owner", json_object_get(tt, "by_owner"), tcols);
	csv_rows(f, "region", json_object_get(tt, "by_region"), tcols);
	csv_rows(f, "segment", json_object_get(tt, "by_segment"), tcols);
	csv_rows(f, "day", json_object_get(tt, "daily"), tcols);
	size_t i;
	json_t *b;
	json_array_foreach(json_object_get(tt, "buckets"), i, b)
	{
		fprintf(f, "bucket,%s,%lld,,,,,\n", json_string_value(json_object_get(b, "label")),
		        (long long)json_integer_value(json_object_get(b, "count")));
	}
	if (fclose(f) != 0)
		return -1;
	json_array_append_new(written, json_string(path));

	snprintf(path, sizeof path, "%s/template_metrics_%s.csv", dir, day);
	if (!(f = fopen(path, "w")))
		return -1;
	static const char *const pcols[] = {
	        "template_id", "intent",     "suggested",         "sent", "send_rate",
	        "replied",     "reply_rate", "median_confidence", NULL};
	fprintf(f, "template_id,intent,suggested,sent,send_rate,replied,reply_rate,"
	           "median_confidence\n");
	csv_rows(f, NULL, json_object_get(tp, "by_template"), pcols);
	if (fclose(f) != 0)
		return -1;
	json_array_append_new(written, json_string(path));
	return 0;
}

/* ---- the command ------------------------------------------------------------------ */

static const char *g_input, *g_from, *g_to, *g_out, *g_policy;
static long long g_sla;
static bool g_json;

static const struct config_entry report_table[] = {
        {"input", "FLYWHEEL_DIR", CONFIG_STRING, NULL, 0, "Directory of the loader's JSONL files",
         .dest = &g_input},
        {"from", NULL, CONFIG_STRING, NULL, 0, "First day (YYYY-MM-DD, UTC)", .dest = &g_from},
        {"to", NULL, CONFIG_STRING, NULL, 0, "Last day, inclusive (default: --from)",
         .dest = &g_to},
        {"out", NULL, CONFIG_STRING, NULL, 0, "Output directory (created if missing)",
         .dest = &g_out},
        {"sla-minutes", NULL, CONFIG_INT, "60", 0,
         "TTFR SLA of leads whose segment has none in the routing policy (when given, "
         "replaces the policy's default)",
         .dest = &g_sla, .min = 1, .max = 100000},
        {"routing-policy", "SFK_ROUTING_POLICY", CONFIG_STRING, "policies/routing_policy.json", 0,
         "Per-segment SLAs (sla_minutes); a missing default file is fine", .dest = &g_policy},
        CLI_ENTRY_JSON(&g_json),
};

static int collect(long long t0, long long t1, json_t *records, struct load_stats *st)
{
	DIR *dir = opendir(g_input);
	struct dirent *e;
	json_t *files = json_array();
	int rc = 0;
	if (!dir) {
		fprintf(stderr, "sfk report: %s: %s\n", g_input, strerror(errno));
		json_decref(files);
		return -1;
	}
	/* a file's day is its records' UTC day (the loader's layout), so only
	 * the period's days are opened */
	while ((e = readdir(dir))) {
		char day[11];
		bool gz;
		if (parse_name(e->d_name, day, &gz) != 0)
			continue;
		long long ds = day_start(day);
		if (ds >= t0 && ds < t1)
			json_array_append_new(files, json_string(e->d_name));
	}
	closedir(dir);
	bool progress = cli_stderr_tty();
	size_t i, n = json_array_size(files);
	json_t *name;
	json_array_foreach(files, i, name)
	{
		char path[4096], day[11];
		bool gz;
		if (progress)
			fprintf(stderr, "\rreading %zu/%zu files, %zu records", i + 1, n,
			        json_array_size(records));
		parse_name(json_string_value(name), day, &gz);
		if (snprintf(path, sizeof path, "%s/%s", g_input, json_string_value(name)) >=
		    (int)sizeof path)
			continue;
		if (load_file(path, gz, t0, t1, records, st) != 0) {
			fprintf(stderr, "%ssfk report: cannot read %s\n", progress ? "\n" : "",
			        path);
			rc = -1;
		}
	}
	if (progress && n)
		fprintf(stderr, "\r\033[K");
	json_decref(files);
	return rc;
}

static int mkdirs(const char *path)
{
	char *p = xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST) {
			free(p);
			return -1;
		}
		*s = '/';
	}
	int rc = mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
	free(p);
	return rc;
}

int cmd_report(int argc, char **argv)
{
	struct config *cfg = NULL;
	json_t *records = json_array(), *d = NULL, *policy = NULL, *segs = NULL, *names = NULL,
	       *written = json_array();
	struct load_stats st = {0};
	char path[4096];
	int rc = cli_config(&cfg, "sfk report", "--input DIR --from DAY [--to DAY] --out DIR",
	                    report_table, sizeof report_table / sizeof report_table[0], argc, argv);
	if (rc != CONFIG_RUN)
		goto out;
	rc = CLI_USAGE;
	if (!g_to)
		g_to = g_from;
	long long t0 = day_start(g_from), t1 = day_start(g_to);
	if (!g_input || !g_out || !g_from) {
		fprintf(stderr,
		        "sfk report: --input (FLYWHEEL_DIR), --from and --out are required\n");
		goto out;
	}
	if (t0 < 0 || t1 < 0 || t1 < t0) {
		fprintf(stderr, "sfk report: --from/--to must be days YYYY-MM-DD, from <= to\n");
		goto out;
	}
	t1 += 86400; /* --to is inclusive */
	rc = CLI_FAIL;
	policy = g_policy ? json_load_file(g_policy, 0, NULL) : NULL;
	if (!policy && config_is_set(cfg, "routing-policy")) {
		fprintf(stderr, "sfk report: cannot read the routing policy %s\n", g_policy);
		goto out;
	}
	struct report_opts o = {.sla_default = (double)g_sla, .from = g_from, .to = g_to};
	json_t *sm = json_object_get(policy, "sla_minutes");
	if (json_is_object(sm)) {
		segs = json_deep_copy(sm);
		json_object_del(segs, "default");
		if (!config_is_set(cfg, "sla-minutes") &&
		    json_is_number(json_object_get(sm, "default")))
			o.sla_default = json_number_value(json_object_get(sm, "default"));
	}
	o.sla_segments = segs;
	names = policy_owner_names(policy);
	o.owner_names = names;
	if (collect(t0, t1, records, &st) != 0)
		goto out;
	if (st.bad_lines || st.too_long)
		fprintf(stderr,
		        "sfk report: skipped %zu unreadable line(s) and %zu over %d bytes\n",
		        st.bad_lines, st.too_long, REPORT_LINE_MAX);
	d = report_compute(records, &o);
	json_object_set_new(json_object_get(d, "records"), "files",
	                    json_integer((json_int_t)st.files));
	json_object_set_new(json_object_get(d, "records"), "skipped_lines",
	                    json_integer((json_int_t)(st.bad_lines + st.too_long)));
	time_t now = time(NULL);
	char gen[32];
	strftime(gen, sizeof gen, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	json_object_set_new(d, "generated_at", json_string(gen));
	if (mkdirs(g_out) != 0) {
		fprintf(stderr, "sfk report: cannot create %s: %s\n", g_out, strerror(errno));
		goto out;
	}
	snprintf(path, sizeof path, "%s/dashboard_%s.json", g_out, g_to);
	if (json_dump_file(d, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
		fprintf(stderr, "sfk report: cannot write %s\n", path);
		goto out;
	}
	json_array_append_new(written, json_string(path));
	if (write_csvs(g_out, g_to, d, written) != 0) {
		fprintf(stderr, "sfk report: cannot write the CSV files in %s: %s\n", g_out,
		        strerror(errno));
		goto out;
	}
	snprintf(path, sizeof path, "%s/report.html", g_out);
	FILE *f = fopen(path, "w");
	if (!f || report_html(f, d) != 0 || fclose(f) != 0) {
		fprintf(stderr, "sfk report: cannot write %s\n", path);
		goto out;
	}
	json_array_append_new(written, json_string(path));
	if (g_json) {
		cli_print_json(d);
	} else {
		size_t i;
		json_t *w;
		json_array_foreach(written, i, w) printf("%s\n", json_string_value(w));
	}
	if (cli_stderr_tty())
		fprintf(stderr, "%zu record(s) from %zu file(s)\n", json_array_size(records),
		        st.files);
	rc = CLI_OK;
out:
	json_decref(written);
	json_decref(segs);
	json_decref(names);
	json_decref(policy);
	json_decref(d);
	json_decref(records);
	config_free(&cfg);
	return rc;
}
