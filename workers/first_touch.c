/*
 * first_touch.c - lead.first_touch_detect: earliest response per Lead.
 *
 * One batch, in this order (every lookup batched, one call per kind):
 *   1. classify events: Lead CREATE, Task, EmailMessage;
 *   2. SOQL EmailMessage (only emails whose event lacks the fields, e.g. an
 *      UPDATE to Sent), EmailMessageRelation of every email, Task (tasks whose
 *      event lacks WhoId/dates, plus the ActivityId of emails with no Lead
 *      relation) -> candidate responses per Lead;
 *   3. Redis GET sfk:ttfr:<lead> for Leads whose CREATE came without a
 *      response in the batch (a response seen before its Lead is pending there);
 *   4. SOQL Lead: CreatedDate and the stored First_Response_At__c (Salesforce
 *      is the authority, so an empty Redis never lets a later response win);
 *   5. Redis Lua min per Lead over {what Redis holds, the batch's earliest,
 *      what Salesforce holds} -> the effective earliest;
 *   6. write it when strictly earlier than Salesforce's value.
 * after_write() re-reads the Redis minimum: a concurrent replica that stored
 * an earlier response while we wrote a later one makes us retry the event, so
 * the last write is always the minimum.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "first_touch.h"
#include "log.h"
#include "metrics.h"
#include "rkeys.h"
#include "route.h"
#include "sfid.h"
#include "sla_watch.h" /* lead.sla_watch: clear the SLA deadline */
#include "soql_build.h"
#include "wl_sf.h"
#include "xmem.h"

#define FT_MODEL         "rules:first_touch_detect@1"
#define FT_SPLIT_BUF_MAX 1024 /* one configured list, as text */

static const char *g_types_text, *g_subtypes_text;
static long long g_ttl_ms, g_mm_min, g_ent_min;

static const struct config_entry ft_config[] = {
        {"ttfr-task-types", "SFK_TTFR_TASK_TYPES", CONFIG_STRING, "Call,Email,Meeting", 0,
         "Task Type values that count as a response (comma-separated)", .dest = &g_types_text},
        {"ttfr-task-subtypes", "SFK_TTFR_TASK_SUBTYPES", CONFIG_STRING, "Call,Email,LinkedIn", 0,
         "TaskSubtype values that count as a response (comma-separated)", .dest = &g_subtypes_text},
        {"ttfr-key-ttl", "SFK_TTFR_KEY_TTL", CONFIG_DURATION, "720h", 0,
         "Lifetime of sfk:ttfr:<lead> (>= the topic retention)", .dest = &g_ttl_ms, .min = 60000,
         .max = 366LL * 24 * 3600 * 1000},
        {"ttfr-segment-mm-min", "SFK_TTFR_SEGMENT_MM_MIN", CONFIG_INT, "100", 0,
         "NumberOfEmployees from which a Lead is MM (metric label)", .dest = &g_mm_min, .min = 1,
         .max = 100000000},
        {"ttfr-segment-ent-min", "SFK_TTFR_SEGMENT_ENT_MIN", CONFIG_INT, "1000", 0,
         "NumberOfEmployees from which a Lead is ENT (metric label)", .dest = &g_ent_min, .min = 1,
         .max = 100000000},
};

static const double ttfr_buckets[] = {60, 300, 900, 1800, 3600, 14400, 86400};

struct ft_state {
	char *types[FT_LIST_MAX + 1];
	char *subtypes[FT_LIST_MAX + 1];
	struct ft_taskset set;
	long long ttl_s;
	struct route_policy *routing; /* segment/region labels; NULL: own thresholds */
	struct metric *latency;       /* sfk_first_response_latency_seconds{segment,region} */
	struct metric *updates;       /* sfk_first_response_updates_total{outcome} */
	int dry;                      /* first_touch_dry_run: Redis is only read */
};

/*
 * Min compare: KEYS[1] sfk:ttfr:<lead>; ARGV[1] TTL seconds; ARGV[2..]
 * candidate values "<ms>|...". Keeps the strictly smallest (ties keep what is
 * stored), refreshes the TTL, returns the stored value (nil if none).
 */
static struct redis_script ttfr_min =
        REDIS_SCRIPT("local cur = redis.call('GET', KEYS[1])\n"
                     "local best = cur\n"
                     "local bms = nil\n"
                     "if cur then bms = tonumber(string.match(cur, '^(%-?%d+)|')) end\n"
                     "for i = 2, #ARGV do\n"
                     "  local ms = tonumber(string.match(ARGV[i], '^(%-?%d+)|'))\n"
                     "  if ms and (bms == nil or ms < bms) then best = ARGV[i]; bms = ms end\n"
                     "end\n"
                     "if best then redis.call('SET', KEYS[1], best, 'EX', ARGV[1]) end\n"
                     "return best\n");

/* The same minimum without storing it (first_touch_dry_run). */
static struct redis_script ttfr_min_dry =
        REDIS_SCRIPT("local cur = redis.call('GET', KEYS[1])\n"
                     "local best = cur\n"
                     "local bms = nil\n"
                     "if cur then bms = tonumber(string.match(cur, '^(%-?%d+)|')) end\n"
                     "for i = 2, #ARGV do\n"
                     "  local ms = tonumber(string.match(ARGV[i], '^(%-?%d+)|'))\n"
                     "  if ms and (bms == nil or ms < bms) then best = ARGV[i]; bms = ms end\n"
                     "end\n"
                     "return best\n");

int first_touch_dry_run(struct wl_ctx *ctx)
{
	struct ft_state *st = ctx ? ctx->state : NULL;
	if (!st)
		return -1;
	st->dry = 1;
	return 0;
}

/* ---- pure helpers --------------------------------------------------------------- */

static int digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian; H. Hinnant). */
static int64_t days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const int64_t yoe = y - era * 400;
	const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int64_t ft_parse_datetime(const char *s)
{
	int y, mo, d, h, mi, sec, ms = 0;
	if (!s || strlen(s) < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') ||
	    s[13] != ':' || s[16] != ':')
		return -1;
	if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
	    digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &sec))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	const char *p = s + 19;
	if (*p == '.') {
		int scale = 100;
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9') {
			ms += (*p - '0') * scale;
			scale /= 10;
			p++;
		}
	}
	int off_min = 0;
	if (*p == 'Z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1, oh, om;
		p++;
		if (digits(p, 2, &oh))
			return -1;
		p += 2;
		if (*p == ':')
			p++;
		if (digits(p, 2, &om))
			return -1;
		p += 2;
		off_min = sign * (oh * 60 + om);
	} else if (*p != '\0') {
		return -1;
	}
	if (*p != '\0')
		return -1;
	int64_t days = days_from_civil(y, mo, d);
	int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - (int64_t)off_min * 60;
	return secs * 1000 + ms;
}

int64_t ft_json_datetime(json_t *v)
{
	if (json_is_integer(v))
		return json_integer_value(v) >= 0 ? (int64_t)json_integer_value(v) : -1;
	return json_is_string(v) ? ft_parse_datetime(json_string_value(v)) : -1;
}

int ft_format_datetime(int64_t ms, char *buf, size_t len)
{
	if (ms < 0)
		return -1;
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		return -1;
	int n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	                 (int)(ms % 1000));
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int ft_resp_format(const struct ft_resp *r, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%lld|%s|%s|%s", (long long)r->at_ms, r->source, r->user,
	                 r->ref);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Copy the field ending at '|' (NUL for the last one) into dst; returns the
 * next field or NULL. */
static const char *field(const char *p, char *dst, size_t len, int last)
{
	const char *bar = strchr(p, '|');
	size_t n = bar ? (size_t)(bar - p) : strlen(p);
	if (n >= len || (last != !bar))
		return NULL;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return bar ? bar + 1 : p + n;
}

int ft_resp_parse(const char *s, struct ft_resp *r)
{
	memset(r, 0, sizeof(*r));
	r->at_ms = -1;
	if (!s)
		return -1;
	char *end;
	errno = 0;
	long long ms = strtoll(s, &end, 10);
	if (errno || end == s || *end != '|' || ms < 0)
		return -1;
	const char *p = end + 1;
	if (!(p = field(p, r->source, sizeof(r->source), 0)) ||
	    !(p = field(p, r->user, sizeof(r->user), 0)) ||
	    !(p = field(p, r->ref, sizeof(r->ref), 1)) || *p != '\0') {
		memset(r, 0, sizeof(*r));
		r->at_ms = -1;
		return -1;
	}
	r->at_ms = ms;
	return 0;
}

int ft_earlier(const struct ft_resp *a, const struct ft_resp *b)
{
	if (!a || a->at_ms < 0)
		return 0;
	return !b || b->at_ms < 0 || a->at_ms < b->at_ms;
}

int ft_resolve(const struct ft_resp *redis, const struct ft_resp *batch,
               const struct ft_resp *stored, struct ft_resp *eff)
{
	memset(eff, 0, sizeof(*eff));
	eff->at_ms = -1;
	if (stored && stored->at_ms >= 0)
		*eff = *stored;
	if (redis && ft_earlier(redis, eff))
		*eff = *redis;
	if (batch && ft_earlier(batch, eff))
		*eff = *batch;
	return ft_earlier(eff, stored);
}

double ft_ttfr_minutes(int64_t resp_ms, int64_t created_ms)
{
	if (resp_ms <= created_ms)
		return 0.0;
	return round((double)(resp_ms - created_ms) / 600.0) / 100.0;
}

static int in_list(const char *v, const char *const *list)
{
	for (size_t i = 0; v && list && list[i]; i++)
		if (strcasecmp(list[i], v) == 0)
			return 1;
	return 0;
}

int ft_task_response(json_t *task, const struct ft_taskset *set, struct ft_resp *out, char lead[19],
                     const char **why)
{
	const char *dummy;
	why = why ? why : &dummy;
	memset(out, 0, sizeof(*out));
	out->at_ms = -1;
	lead[0] = '\0';
	json_t *closed = json_object_get(task, "IsClosed");
	const char *status = wl_str(task, "Status");
	int64_t done = ft_json_datetime(json_object_get(task, "CompletedDateTime"));
	if (!json_is_true(closed) && !(status && strcmp(status, "Completed") == 0) && done < 0) {
		*why = "task_open";
		return 0;
	}
	if (!wl_id_of(wl_str(task, "WhoId"), "Lead", lead)) {
		*why = "task_not_on_lead";
		return 0;
	}
	if (!in_list(wl_str(task, "Type"), set->types) &&
	    !in_list(wl_str(task, "TaskSubtype"), set->subtypes)) {
		*why = "task_type_not_counted";
		lead[0] = '\0';
		return 0;
	}
	out->at_ms = done >= 0 ? done : ft_json_datetime(json_object_get(task, "CreatedDate"));
	if (out->at_ms < 0) {
		*why = "task_without_dates";
		lead[0] = '\0';
		return 0;
	}
	snprintf(out->source, sizeof(out->source), "Task");
	if (!wl_id_of(wl_str(task, "OwnerId"), "User", out->user))
		wl_id_of(wl_str(task, "CreatedById"), "User", out->user);
	wl_id_of(wl_str(task, "Id"), NULL, out->ref);
	return 1;
}

int ft_email_response(json_t *email, const char *fallback_user, struct ft_resp *out,
                      const char **why)
{
	const char *dummy;
	why = why ? why : &dummy;
	memset(out, 0, sizeof(*out));
	out->at_ms = -1;
	const char *status = wl_str(email, "Status");
	if (json_is_true(json_object_get(email, "Incoming"))) {
		*why = "email_incoming";
		return 0;
	}
	if (!status || strcmp(status, "3") != 0) {
		*why = "email_not_sent";
		return 0;
	}
	out->at_ms = ft_json_datetime(json_object_get(email, "MessageDate"));
	if (out->at_ms < 0)
		out->at_ms = ft_json_datetime(json_object_get(email, "CreatedDate"));
	if (out->at_ms < 0) {
		*why = "email_without_dates";
		return 0;
	}
	snprintf(out->source, sizeof(out->source), "EmailMessage");
	if (!wl_id_of(wl_str(email, "CreatedById"), "User", out->user))
		wl_id_of(fallback_user, "User", out->user);
	wl_id_of(wl_str(email, "Id"), NULL, out->ref);
	return 1;
}

int ft_email_lead(const char *email_id, const char *activity_id, json_t *relations, json_t *tasks,
                  char lead[19])
{
	char eid[19], rid[19], best[19] = "";
	size_t i;
	json_t *rel;
	lead[0] = '\0';
	if (!wl_id_of(email_id, NULL, eid))
		return 0;
	json_array_foreach(relations, i, rel)
	{
		char other[19];
		const char *type = wl_str(rel, "RelationType");
		if (!wl_id_of(wl_str(rel, "EmailMessageId"), NULL, other) ||
		    strcmp(other, eid) != 0)
			continue;
		if (!type || (strcmp(type, "ToAddress") != 0 && strcmp(type, "CcAddress") != 0 &&
		              strcmp(type, "BccAddress") != 0))
			continue;
		if (!wl_id_of(wl_str(rel, "RelationId"), "Lead", rid))
			continue;
		if (!best[0] || strcmp(rid, best) < 0)
			memcpy(best, rid, sizeof(best));
	}
	if (best[0]) {
		memcpy(lead, best, 19);
		return 1;
	}
	char tid[19];
	if (wl_id_of(activity_id, "Task", tid) &&
	    wl_id_of(wl_str(json_object_get(tasks, tid), "WhoId"), "Lead", lead))
		return 2;
	lead[0] = '\0';
	return 0;
}

const char *ft_segment(json_t *employees, long long mm_min, long long ent_min)
{
	if (!json_is_number(employees))
		return "UNKNOWN";
	double n = json_number_value(employees);
	if (n >= (double)ent_min)
		return "ENT";
	return n >= (double)mm_min ? "MM" : "SMB";
}

/* ---- I/O: batched lookups ------------------------------------------------------ */

/* Per-event working state of one batch. */
enum item_kind { IT_NONE, IT_LEAD, IT_TASK, IT_EMAIL };
struct item {
	enum item_kind kind;
	char id[19];   /* the event's record id, 18 chars */
	char lead[19]; /* the Lead it concerns, "" unknown */
	json_t *rec;   /* borrowed: the record the decision used (event fields or SOQL row) */
	struct ft_resp resp;
	int has_resp;
	const char *why; /* not a response: why */
};

static void set_dlq(struct wl_decision *d, enum sfk_err e, const char *code, const char *msg)
{
	d->action = WL_DLQ;
	d->err = e;
	snprintf(d->errcode, sizeof(d->errcode), "%s", code);
	snprintf(d->errmsg, sizeof(d->errmsg), "%s", msg);
}

static json_t *resp_json(const struct ft_resp *r)
{
	char at[FT_DATE_MAX] = "";
	if (!r || r->at_ms < 0)
		return json_null();
	ft_format_datetime(r->at_ms, at, sizeof(at));
	return json_pack("{s:s,s:s,s:s?,s:s?}", "at", at, "source", r->source, "user",
	                 r->user[0] ? r->user : NULL, "record_id", r->ref[0] ? r->ref : NULL);
}

/* The Lead's write record for the effective earliest response. */
static json_t *lead_write(const char *lead, const struct ft_resp *r, int64_t created_ms)
{
	char at[FT_DATE_MAX];
	if (ft_format_datetime(r->at_ms, at, sizeof(at)) < 0)
		return NULL;
	json_t *w = json_pack("{s:{s:s},s:s,s:s,s:s,s:f}", "attributes", "type", "Lead", "id", lead,
	                      "First_Response_At__c", at, "First_Response_Source__c", r->source,
	                      "Time_to_First_Response__c", ft_ttfr_minutes(r->at_ms, created_ms));
	if (w && r->user[0])
		json_object_set_new(w, "First_Response_User__c", json_string(r->user));
	return w;
}

/* Metric labels of a Lead row: the routing policy's segment and region when
 * it loaded, else the ttfr-segment thresholds and "UNKNOWN". */
static void labels(const struct ft_state *st, json_t *row, const char **seg, const char **region)
{
	json_t *emp = json_object_get(row, "NumberOfEmployees");
	const char *country = wl_str(row, "Country");
	*seg = NULL;
	*region = NULL;
	if (st && st->routing) {
		if (json_is_number(emp))
			*seg = route_segment(st->routing, (long long)json_number_value(emp));
		if (country)
			*region = route_region(st->routing, country);
	} else {
		*seg = ft_segment(emp, g_mm_min, g_ent_min);
	}
	*seg = *seg ? *seg : "UNKNOWN";
	*region = *region ? *region : "UNKNOWN";
}

static void fill_flywheel(const struct ft_state *st, struct wl_decision *d,
                          const struct wl_event *ev, const struct item *it, json_t *lead_row,
                          const struct ft_resp *stored, const struct ft_resp *eff,
                          const char *outcome)
{
	int64_t created = ft_json_datetime(json_object_get(lead_row, "CreatedDate"));
	const char *seg, *region;
	labels(st, lead_row, &seg, &region);
	json_t *facts =
	        json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:o}", "lead_id", it->lead, "event_entity",
	                  ev->entity ? ev->entity : "", "event_change_type",
	                  ev->change_type ? ev->change_type : "", "event_record_id", it->id,
	                  "lead_created_at",
	                  json_is_string(json_object_get(lead_row, "CreatedDate"))
	                          ? json_deep_copy(json_object_get(lead_row, "CreatedDate"))
	                          : json_null(),
	                  "response", it->has_resp ? resp_json(&it->resp) : json_null(),
	                  "stored_first_response", resp_json(stored), "segment", json_string(seg));
	json_object_set_new(facts, "region", json_string(region));
	json_t *dec = json_pack("{s:s,s:s,s:o}", "lead_id", it->lead, "outcome", outcome,
	                        "first_response", resp_json(eff));
	if (eff && eff->at_ms >= 0 && created >= 0)
		json_object_set_new(dec, "ttfr_minutes",
		                    json_real(ft_ttfr_minutes(eff->at_ms, created)));
	d->facts = facts;
	d->decision = dec;
	snprintf(d->model, sizeof(d->model), "%s", FT_MODEL);
	snprintf(d->lead_id, sizeof(d->lead_id), "%s", it->lead);
	snprintf(d->outcome, sizeof(d->outcome), "%s", outcome);
}

static int needs_task_query(json_t *f)
{
	return !json_is_string(json_object_get(f, "WhoId")) ||
	       (!json_object_get(f, "CompletedDateTime") && !json_object_get(f, "CreatedDate")) ||
	       (!json_object_get(f, "IsClosed") && !json_object_get(f, "Status"));
}

static int needs_email_query(json_t *f)
{
	return !json_object_get(f, "Status") || !json_object_get(f, "MessageDate") ||
	       !json_object_get(f, "CreatedById");
}

/*
 * Tasks whose WhoId is a Contact that a Lead was converted into: a Task
 * created before the conversion (its CreatedDate <= the Contact's, which the
 * conversion made) was the Lead's and moved with it, so it still answers for
 * the Lead. Such a Task's record becomes a copy with WhoId = the Lead (kept
 * alive by own). Tasks created on the Contact afterwards are not responses to
 * the Lead. Two batched queries, only when the batch has such Tasks.
 */
static enum sfk_err converted_tasks(struct wl_ctx *ctx, struct item *it, size_t n, json_t *own,
                                    struct sf_error *err)
{
	json_t *cq = json_object(), *leads = json_array(), *contacts = json_object();
	json_t *lead_of = json_object(); /* contact -> converted Lead */
	const char **ids = NULL;
	size_t nids, k;
	json_t *row;
	enum sfk_err rc = SFK_OK;
	char c[19], l[19];

	for (size_t i = 0; i < n; i++)
		if (it[i].kind == IT_TASK && wl_id_of(wl_str(it[i].rec, "WhoId"), "Contact", c))
			wl_set_add(cq, c);
	if (json_object_size(cq) == 0)
		goto out;
	ids = wl_set_keys(cq, &nids);
	rc = wl_query_ids(ctx,
	                  "SELECT Id, ConvertedContactId FROM Lead WHERE ConvertedContactId IN ",
	                  "", ids, nids, leads, NULL, err);
	if (rc == SFK_OK)
		rc = wl_query_ids(ctx, "SELECT Id, CreatedDate FROM Contact WHERE Id IN ", "", ids,
		                  nids, NULL, contacts, err);
	if (rc != SFK_OK)
		goto out;
	json_array_foreach(leads, k, row)
	{
		if (wl_id_of(wl_str(row, "ConvertedContactId"), "Contact", c) &&
		    wl_id_of(wl_str(row, "Id"), "Lead", l))
			json_object_set_new(lead_of, c, json_string(l));
	}
	for (size_t i = 0; i < n; i++) {
		if (it[i].kind != IT_TASK || !wl_id_of(wl_str(it[i].rec, "WhoId"), "Contact", c))
			continue;
		const char *lead = wl_str(lead_of, c);
		int64_t task_at = ft_json_datetime(json_object_get(it[i].rec, "CreatedDate"));
		int64_t conv_at = ft_json_datetime(
		        json_object_get(json_object_get(contacts, c), "CreatedDate"));
		if (!lead || task_at < 0 || conv_at < 0 || task_at > conv_at)
			continue;
		json_t *copy = json_copy(it[i].rec);
		json_object_set_new(copy, "WhoId", json_string(lead));
		json_array_append_new(own, copy);
		it[i].rec = copy;
	}
out:
	free(ids);
	json_decref(lead_of);
	json_decref(contacts);
	json_decref(leads);
	json_decref(cq);
	return rc;
}

static enum sfk_err ft_decide(struct wl_ctx *ctx, const struct wl_event *ev, size_t n,
                              struct wl_decision *out)
{
	struct ft_state *st = ctx->state;
	struct sf_error err = {0};
	enum sfk_err rc = SFK_OK;
	struct item *it = xcalloc(n ? n : 1, sizeof(*it));
	json_t *own = json_array(); /* keeps event-field copies alive */
	json_t *email_q = json_object(), *email_rows = json_object();
	json_t *rel_q = json_object(), *relations = json_array();
	json_t *task_q = json_object(), *task_rows = json_object();
	json_t *act_q = json_object();    /* Email-subtype Tasks to check */
	json_t *incoming = json_object(); /* Task id -> its EmailMessage is inbound */
	json_t *lead_q = json_object(), *lead_rows = json_object();
	json_t *best = json_object();    /* lead -> value string: the batch's earliest */
	json_t *pending = json_object(); /* lead -> value string from Redis (CREATE only) */
	json_t *eff = json_object();     /* lead -> effective value after the Lua min */
	const char **ids = NULL;
	size_t nids;
	struct redis_pipe *pipe = NULL;
	redisReply **rep = NULL;

	/* 1. classify */
	for (size_t i = 0; i < n; i++) {
		const char *ent = ev[i].entity ? ev[i].entity : "";
		const char *obj = strcmp(ent, "Lead") == 0           ? "Lead"
		                  : strcmp(ent, "Task") == 0         ? "Task"
		                  : strcmp(ent, "EmailMessage") == 0 ? "EmailMessage"
		                                                     : NULL;
		if (!obj) {
			set_dlq(&out[i], SFK_ERR_INVALID, "unexpected_entity",
			        "lead.first_touch_detect handles Lead, Task and EmailMessage "
			        "events");
			continue;
		}
		if (!wl_id_of(ev[i].record_id, obj, it[i].id)) {
			set_dlq(&out[i], SFK_ERR_INVALID, "bad_record_id",
			        "record_id is not a valid id of the entity");
			continue;
		}
		json_t *f = json_deep_copy(json_is_object(ev[i].fields) ? ev[i].fields : NULL);
		if (!f)
			f = json_object();
		json_object_set_new(f, "Id", json_string(it[i].id));
		json_array_append_new(own, f);
		it[i].rec = f;
		if (strcmp(obj, "Lead") == 0) {
			it[i].kind = IT_LEAD;
			memcpy(it[i].lead, it[i].id, 19);
			if (strstr(ev[i].change_type ? ev[i].change_type : "", "DELETE")) {
				it[i].kind = IT_NONE;
				it[i].why = "lead_deleted";
			}
		} else if (strcmp(obj, "Task") == 0) {
			it[i].kind = IT_TASK;
			if (needs_task_query(f))
				wl_set_add(task_q, it[i].id);
		} else {
			it[i].kind = IT_EMAIL;
			if (needs_email_query(f))
				wl_set_add(email_q, it[i].id);
			wl_set_add(rel_q, it[i].id);
		}
	}

	/* 2a. emails whose event did not carry what we need (UPDATE to Sent) */
	ids = wl_set_keys(email_q, &nids);
	rc = wl_query_ids(ctx,
	                  "SELECT Id, Incoming, Status, MessageDate, CreatedDate, CreatedById, "
	                  "ActivityId FROM EmailMessage WHERE Id IN ",
	                  "", ids, nids, NULL, email_rows, &err);
	free(ids);
	ids = NULL;
	if (rc != SFK_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (it[i].kind != IT_EMAIL)
			continue;
		json_t *row = json_object_get(email_rows, it[i].id);
		if (row)
			it[i].rec = row;
		else if (json_object_get(email_q, it[i].id)) {
			it[i].kind = IT_NONE; /* deleted since */
			it[i].why = "email_not_found";
			continue;
		}
		if (!ft_email_response(it[i].rec, ev[i].commit_user, &it[i].resp, &it[i].why)) {
			it[i].kind = IT_NONE;
			json_object_del(rel_q, it[i].id);
		}
	}

	/* 2b. relations of every sent email */
	ids = wl_set_keys(rel_q, &nids);
	rc = wl_query_ids(ctx,
	                  "SELECT Id, EmailMessageId, RelationId, RelationType FROM "
	                  "EmailMessageRelation WHERE EmailMessageId IN ",
	                  "", ids, nids, relations, NULL, &err);
	free(ids);
	ids = NULL;
	if (rc != SFK_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (it[i].kind != IT_EMAIL)
			continue;
		char lead[19], act[19];
		if (ft_email_lead(it[i].id, NULL, relations, NULL, lead) == 0 &&
		    wl_id_of(wl_str(it[i].rec, "ActivityId"), "Task", act))
			wl_set_add(task_q, act);
	}

	/* 2c. tasks: events without WhoId/dates, activities of unrelated emails */
	ids = wl_set_keys(task_q, &nids);
	rc = wl_query_ids(ctx,
	                  "SELECT Id, WhoId, Type, TaskSubtype, IsClosed, Status, "
	                  "CompletedDateTime, CreatedDate, OwnerId, CreatedById FROM Task WHERE "
	                  "Id IN ",
	                  "", ids, nids, NULL, task_rows, &err);
	free(ids);
	ids = NULL;
	if (rc != SFK_OK)
		goto out;

	/* 2d. an Email-subtype Task is the activity of an EmailMessage, which may
	 * be inbound (logged replies): those are not responses. The batch's own
	 * emails answer for their Tasks; the rest is one query. */
	for (size_t i = 0; i < n; i++) {
		char act[19];
		if (it[i].kind == IT_EMAIL &&
		    wl_id_of(wl_str(it[i].rec, "ActivityId"), "Task", act))
			json_object_set_new(
			        incoming, act,
			        json_boolean(json_is_true(json_object_get(it[i].rec, "Incoming"))));
	}
	for (size_t i = 0; i < n; i++) {
		if (it[i].kind != IT_TASK)
			continue;
		json_t *row = json_object_get(task_rows, it[i].id);
		if (row)
			it[i].rec = row;
		else if (json_object_get(task_q, it[i].id)) {
			it[i].kind = IT_NONE;
			it[i].why = "task_not_found";
			continue;
		}
		const char *sub = wl_str(it[i].rec, "TaskSubtype");
		if (sub && strcasecmp(sub, "Email") == 0 && !json_object_get(incoming, it[i].id))
			wl_set_add(act_q, it[i].id);
	}
	ids = wl_set_keys(act_q, &nids);
	json_t *act_rows = json_array();
	rc = wl_query_ids(ctx,
	                  "SELECT Id, ActivityId, Incoming FROM EmailMessage WHERE ActivityId IN ",
	                  "", ids, nids, act_rows, NULL, &err);
	free(ids);
	ids = NULL;
	size_t ai;
	json_t *arow;
	json_array_foreach(act_rows, ai, arow)
	{
		char act[19];
		if (wl_id_of(wl_str(arow, "ActivityId"), "Task", act) &&
		    json_is_true(json_object_get(arow, "Incoming")))
			json_object_set_new(incoming, act, json_true());
	}
	json_decref(act_rows);
	if (rc != SFK_OK)
		goto out;

	/* 2e. Tasks that moved to a Contact when their Lead was converted */
	rc = converted_tasks(ctx, it, n, own, &err);
	if (rc != SFK_OK)
		goto out;

	/* candidate responses, the batch's earliest per Lead */
	for (size_t i = 0; i < n; i++) {
		if (it[i].kind == IT_TASK) {
			if (json_is_true(json_object_get(incoming, it[i].id))) {
				it[i].kind = IT_NONE;
				it[i].why = "task_of_inbound_email";
				continue;
			}
			it[i].has_resp = ft_task_response(it[i].rec, &st->set, &it[i].resp,
			                                  it[i].lead, &it[i].why);
		} else if (it[i].kind == IT_EMAIL) {
			it[i].has_resp = ft_email_lead(it[i].id, wl_str(it[i].rec, "ActivityId"),
			                               relations, task_rows, it[i].lead) != 0;
			if (!it[i].has_resp)
				it[i].why = "email_not_linked_to_lead";
		}
		if ((it[i].kind == IT_TASK || it[i].kind == IT_EMAIL) && !it[i].has_resp) {
			it[i].kind = IT_NONE;
			continue;
		}
		if (it[i].has_resp) {
			struct ft_resp cur;
			ft_resp_parse(wl_str(best, it[i].lead), &cur);
			if (ft_earlier(&it[i].resp, &cur)) {
				char v[FT_VALUE_MAX];
				if (ft_resp_format(&it[i].resp, v, sizeof(v)) == 0)
					json_object_set_new(best, it[i].lead, json_string(v));
			}
			wl_set_add(lead_q, it[i].lead);
		}
	}

	/* 3. Leads created without a response in this batch: anything pending? */
	pipe = redis_pipe_new();
	json_t *asked = json_array();
	for (size_t i = 0; i < n; i++) {
		if (it[i].kind != IT_LEAD || json_object_get(best, it[i].lead))
			continue;
		redis_pipe_add(pipe, "GET %s%s", RKEY_TTFR, it[i].lead);
		json_array_append_new(asked, json_string(it[i].lead));
	}
	if (redis_pipe_len(pipe) > 0) {
		rep = xcalloc(redis_pipe_len(pipe), sizeof(*rep));
		rc = redis_pipe_exec(ctx->redis, pipe, REDIS_RETRY, rep);
		if (rc != SFK_OK) {
			snprintf(err.message, sizeof(err.message), "redis: %s",
			         redis_errstr(ctx->redis));
			json_decref(asked);
			free(rep); /* no reply on failure: the array only */
			rep = NULL;
			goto out;
		}
		for (size_t k = 0; k < redis_pipe_len(pipe); k++) {
			const char *lead = json_string_value(json_array_get(asked, k));
			if (rep[k] && rep[k]->type == REDIS_REPLY_STRING) {
				json_object_set_new(pending, lead, json_string(rep[k]->str));
				wl_set_add(lead_q, lead);
			}
			if (rep[k])
				freeReplyObject(rep[k]);
		}
		free(rep);
		rep = NULL;
	}
	json_decref(asked);
	redis_pipe_clear(pipe);

	/* 4. what Salesforce holds */
	ids = wl_set_keys(lead_q, &nids);
	rc = wl_query_ids(ctx,
	                  "SELECT Id, CreatedDate, OwnerId, NumberOfEmployees, Country, "
	                  "First_Response_At__c, First_Response_Source__c, "
	                  "First_Response_User__c FROM Lead WHERE Id IN ",
	                  "", ids, nids, NULL, lead_rows, &err);
	if (rc != SFK_OK)
		goto out;

	/* 5. the Lua min over Redis, the batch and Salesforce: one round trip;
	 * SCRIPT LOAD first so a restarted Redis never answers NOSCRIPT. */
	char ttl[32];
	snprintf(ttl, sizeof(ttl), "%lld", st->ttl_s);
	struct redis_script *min_script = st->dry ? &ttfr_min_dry : &ttfr_min;
	redis_script_init(min_script);
	if (nids > 0)
		redis_pipe_add(pipe, "SCRIPT LOAD %s", min_script->body);
	for (size_t k = 0; k < nids; k++) {
		json_t *row = json_object_get(lead_rows, ids[k]);
		char key[64], sfv[FT_VALUE_MAX], bv[FT_VALUE_MAX];
		const char *args[8];
		int nargs = 0;
		snprintf(key, sizeof(key), "%s%s", RKEY_TTFR, ids[k]);
		args[nargs++] = "EVALSHA";
		args[nargs++] = min_script->sha1;
		args[nargs++] = "1";
		args[nargs++] = key;
		args[nargs++] = ttl;
		if (json_object_get(best, ids[k])) {
			snprintf(bv, sizeof(bv), "%s", wl_str(best, ids[k]));
			args[nargs++] = bv;
		}
		struct ft_resp s = {.at_ms = -1};
		if (row && (s.at_ms = ft_json_datetime(
		                    json_object_get(row, "First_Response_At__c"))) >= 0) {
			const char *src = wl_str(row, "First_Response_Source__c");
			snprintf(s.source, sizeof(s.source), "%s", src ? src : "");
			wl_id_of(wl_str(row, "First_Response_User__c"), "User", s.user);
			if (ft_resp_format(&s, sfv, sizeof(sfv)) == 0)
				args[nargs++] = sfv;
		}
		redis_pipe_addargv(pipe, nargs, args, NULL);
	}
	if (redis_pipe_len(pipe) > 0) {
		size_t np = redis_pipe_len(pipe);
		rep = xcalloc(np, sizeof(*rep));
		rc = redis_pipe_exec(ctx->redis, pipe, REDIS_RETRY, rep);
		for (size_t k = 1; rc == SFK_OK && k < np; k++) {
			if (rep[k] && rep[k]->type == REDIS_REPLY_ERROR) {
				snprintf(err.message, sizeof(err.message), "redis: %s",
				         rep[k]->str);
				rc = SFK_ERR_REDIS;
				break;
			}
			if (rep[k] && rep[k]->type == REDIS_REPLY_STRING)
				json_object_set_new(eff, ids[k - 1], json_string(rep[k]->str));
		}
		for (size_t k = 0; k < np; k++)
			if (rep[k])
				freeReplyObject(rep[k]);
		free(rep);
		rep = NULL;
		if (rc != SFK_OK) {
			if (!err.message[0])
				snprintf(err.message, sizeof(err.message), "redis: %s",
				         redis_errstr(ctx->redis));
			goto out;
		}
	}

	/* 6. decide per event; one write per Lead, carried by the event whose
	 * response is the effective one (else the Lead's first event). */
	json_t *carrier = json_object(); /* lead -> index of the writing event */
	for (size_t i = 0; i < n; i++) {
		if (out[i].action == WL_DLQ)
			continue;
		if (it[i].kind == IT_NONE) {
			out[i].action = WL_SKIP;
			snprintf(out[i].outcome, sizeof(out[i].outcome), "not_response");
			continue;
		}
		if (it[i].kind == IT_LEAD && !json_object_get(pending, it[i].lead) &&
		    !json_object_get(best, it[i].lead)) {
			out[i].action = WL_SKIP; /* nothing to resolve yet */
			snprintf(out[i].outcome, sizeof(out[i].outcome), "lead_seen");
			continue;
		}
		json_t *row = json_object_get(lead_rows, it[i].lead);
		struct ft_resp stored = {.at_ms = -1}, e = {.at_ms = -1};
		if (row) {
			stored.at_ms =
			        ft_json_datetime(json_object_get(row, "First_Response_At__c"));
			snprintf(stored.source, sizeof(stored.source), "%s",
			         wl_str(row, "First_Response_Source__c")
			                 ? wl_str(row, "First_Response_Source__c")
			                 : "");
		}
		struct ft_resp r, b;
		ft_resp_parse(wl_str(eff, it[i].lead), &r);
		ft_resp_parse(wl_str(best, it[i].lead), &b);
		int earlier = ft_resolve(&r, &b, &stored, &e);
		if (!row) {
			/* Deleted, or not visible to us: kept in Redis, resolved if the
			 * Lead shows up (its CREATE reads the pending value). */
			out[i].action = WL_SKIP;
			fill_flywheel(st, &out[i], &ev[i], &it[i], NULL, NULL, &e, "no_lead");
			metric_add(st->updates, 1, "no_lead");
			continue;
		}
		int writes = earlier && !json_object_get(carrier, it[i].lead);
		/* A tie stored by another in-flight event (an email and its own
		 * Task on two replicas): that event writes it, we need not. */
		if (writes && b.at_ms == e.at_ms && strcmp(b.ref, e.ref) != 0)
			writes = 0;
		if (writes) {
			/* Prefer the event that holds the effective response. */
			for (size_t j = i; j < n; j++)
				if (strcmp(it[j].lead, it[i].lead) == 0 && it[j].has_resp &&
				    it[j].resp.at_ms == e.at_ms &&
				    strcmp(it[j].resp.ref, e.ref) == 0 && out[j].action != WL_DLQ) {
					writes = j == i;
					break;
				}
		}
		if (writes) {
			int64_t created = ft_json_datetime(json_object_get(row, "CreatedDate"));
			json_t *w = created >= 0 ? lead_write(it[i].lead, &e, created) : NULL;
			if (!w) {
				set_dlq(&out[i], SFK_ERR_INVALID, "lead_without_created_date",
				        "the Lead has no usable CreatedDate");
				continue;
			}
			out[i].action = WL_WRITE;
			out[i].write = w;
			json_object_set_new(carrier, it[i].lead, json_integer((json_int_t)i));
			fill_flywheel(st, &out[i], &ev[i], &it[i], row, &stored, &e, "written");
		} else {
			out[i].action = WL_SKIP;
			fill_flywheel(st, &out[i], &ev[i], &it[i], row, &stored, &e, "not_earlier");
			/* a Lead's CREATE that only re-checked is not an update */
			if (it[i].kind != IT_LEAD)
				metric_add(st->updates, 1, "not_earlier");
		}
	}
	json_decref(carrier);

out:
	if (rc != SFK_OK) {
		log_warn("first_touch: batch lookup failed err=%s code=%s msg=%s", sfk_err_str(rc),
		         err.code, err.message);
		if (sfk_err_class(rc) != SFK_CLASS_RETRIABLE) {
			/* A permanent lookup failure (e.g. a field missing in the org)
			 * dead-letters the batch rather than blocking the partition. */
			for (size_t i = 0; i < n; i++) {
				json_decref(out[i].write);
				json_decref(out[i].facts);
				json_decref(out[i].decision);
				memset(&out[i], 0, sizeof(out[i]));
				set_dlq(&out[i], rc, err.code[0] ? err.code : "lookup_failed",
				        err.message);
			}
			rc = SFK_OK;
		}
	}
	free(ids);
	redis_pipe_free(pipe);
	json_decref(eff);
	json_decref(pending);
	json_decref(best);
	json_decref(lead_rows);
	json_decref(lead_q);
	json_decref(incoming);
	json_decref(act_q);
	json_decref(task_rows);
	json_decref(task_q);
	json_decref(relations);
	json_decref(rel_q);
	json_decref(email_rows);
	json_decref(email_q);
	/* decisions' facts may point at rows only through copies; safe to drop */
	json_decref(own);
	free(it);
	return rc;
}

/*
 * After the writes: count them, observe TTFR, and re-read the Redis minimum.
 * If a replica stored an earlier response while we wrote ours, retry this
 * event: the redelivery reads Salesforce again and writes the earlier one.
 */
static void ft_after_write(struct wl_ctx *ctx, const struct wl_event *ev, size_t n,
                           struct wl_decision *out, const struct wl_write_result *res)
{
	struct ft_state *st = ctx->state;
	struct redis_pipe *pipe = redis_pipe_new();
	size_t *idx = xcalloc(n ? n : 1, sizeof(*idx));
	redisReply **rep = NULL;
	size_t m = 0;
	(void)ev;
	for (size_t i = 0; i < n; i++) {
		if (out[i].action != WL_WRITE || !res[i].attempted || !res[i].success)
			continue;
		json_t *w = out[i].write;
		metric_add(st->updates, 1, "written");
		double minutes = json_number_value(json_object_get(w, "Time_to_First_Response__c"));
		const char *seg = json_string_value(json_object_get(out[i].facts, "segment"));
		const char *region = json_string_value(json_object_get(out[i].facts, "region"));
		metric_observe(st->latency, minutes * 60.0, seg ? seg : "UNKNOWN",
		               region ? region : "UNKNOWN");
		redis_pipe_add(pipe, "GET %s%s", RKEY_TTFR,
		               json_string_value(json_object_get(w, "id")));
		idx[m++] = i;
	}
	if (m == 0 || !ctx->redis)
		goto out;
	/* lead.sla_watch: a written first response ends the Lead's SLA deadline
	 * (sla_clear is weak: absent in unit tests that build this file alone) */
	for (size_t k = 0; k < m; k++) {
		const char *lead = json_string_value(json_object_get(out[idx[k]].write, "id"));
		if (lead && sla_clear && sla_clear(ctx->redis, &lead, 1) != SFK_OK)
			log_warn("first_touch: SLA deadline not cleared lead=%s", lead);
	}
	rep = xcalloc(m, sizeof(*rep));
	if (redis_pipe_exec(ctx->redis, pipe, REDIS_RETRY, rep) != SFK_OK)
		goto out; /* the write stands; a later response re-checks anyway */
	for (size_t k = 0; k < m; k++) {
		struct wl_decision *d = &out[idx[k]];
		struct ft_resp now, wrote = {.at_ms = -1};
		wrote.at_ms = ft_json_datetime(json_object_get(d->write, "First_Response_At__c"));
		int parsed = rep[k] && rep[k]->type == REDIS_REPLY_STRING &&
		             ft_resp_parse(rep[k]->str, &now) == 0;
		if (parsed && ft_earlier(&now, &wrote)) {
			d->action = WL_RETRY;
			d->err = SFK_ERR_BUSY;
			snprintf(d->errcode, sizeof(d->errcode), "earlier_response_raced");
			snprintf(d->errmsg, sizeof(d->errmsg),
			         "an earlier response was stored while this one was written");
		} else if (!st->dry && wrote.at_ms >= 0 && (!parsed || ft_earlier(&wrote, &now))) {
			/* decide() stored a minimum <= what we wrote: Redis holding
			 * nothing or something later lost it (restarted without its
			 * data). A replica that read Salesforce before our write and
			 * Redis after the loss may write a later response over ours:
			 * redeliver, so that Salesforce is read again. */
			d->action = WL_RETRY;
			d->err = SFK_ERR_BUSY;
			snprintf(d->errcode, sizeof(d->errcode), "ttfr_minimum_lost");
			snprintf(d->errmsg, sizeof(d->errmsg),
			         "Redis lost the stored minimum while this response was written");
		}
		if (rep[k])
			freeReplyObject(rep[k]);
	}
out:
	free(rep);
	free(idx);
	redis_pipe_free(pipe);
}

/* Split "a,b , c" into list (at most FT_LIST_MAX, trimmed, non-empty). */
static int split_list(const char *text, char **list)
{
	size_t k = 0;
	const char *p = text ? text : "";
	list[0] = NULL;
	while (*p) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		const char *a = p, *b = end;
		while (a < b && *a == ' ')
			a++;
		while (b > a && b[-1] == ' ')
			b--;
		if (b > a) {
			if (k == FT_LIST_MAX)
				return -1;
			list[k] = xmalloc((size_t)(b - a) + 1);
			memcpy(list[k], a, (size_t)(b - a));
			list[k][b - a] = '\0';
			list[++k] = NULL;
		}
		p = comma ? comma + 1 : end;
	}
	return 0;
}

static void ft_fini(struct wl_ctx *ctx)
{
	struct ft_state *st = ctx->state;
	if (!st)
		return;
	route_policy_free(st->routing);
	for (size_t i = 0; st->types[i]; i++)
		free(st->types[i]);
	for (size_t i = 0; st->subtypes[i]; i++)
		free(st->subtypes[i]);
	free(st);
	ctx->state = NULL;
}

static int ft_init(struct wl_ctx *ctx)
{
	struct ft_state *st = xcalloc(1, sizeof(*st));
	ctx->state = st;
	if (split_list(g_types_text, st->types) < 0 ||
	    split_list(g_subtypes_text, st->subtypes) < 0) {
		fprintf(stderr, "--ttfr-task-types/--ttfr-task-subtypes: at most %d values\n",
		        FT_LIST_MAX);
		ft_fini(ctx);
		return CONFIG_EXIT_FAIL;
	}
	if (g_mm_min >= g_ent_min) {
		fprintf(stderr, "--ttfr-segment-mm-min (SFK_TTFR_SEGMENT_MM_MIN) must be below "
		                "--ttfr-segment-ent-min (SFK_TTFR_SEGMENT_ENT_MIN)\n");
		ft_fini(ctx);
		return CONFIG_EXIT_FAIL;
	}
	st->set.types = (const char *const *)st->types;
	st->set.subtypes = (const char *const *)st->subtypes;
	st->ttl_s = g_ttl_ms / 1000;
	/* Segment and region labels as routing defines them (lead.route's
	 * settings are in every sfk-worker's table). Optional: without the
	 * policy the ttfr-segment thresholds label the segment. */
	json_t *problems = NULL;
	const char *rp = ctx->cfg ? config_str(ctx->cfg, "route-policy") : NULL;
	const char *rs = ctx->cfg ? config_str(ctx->cfg, "route-policy-schema") : NULL;
	if (rp && rs)
		st->routing = route_policy_load(rp, rs, &problems);
	if (!st->routing)
		log_warn("first_touch: routing policy not loaded, region label UNKNOWN path=%s "
		         "problems=%zu",
		         rp ? rp : "", json_array_size(problems));
	json_decref(problems);
	redis_script_init(&ttfr_min);
	st->latency = metrics_histogram("sfk_first_response_latency_seconds",
	                                "Time to first response of a Lead (written ones)",
	                                "segment,region", ttfr_buckets,
	                                sizeof(ttfr_buckets) / sizeof(ttfr_buckets[0]));
	st->updates = metrics_counter("sfk_first_response_updates_total",
	                              "First-response detections by outcome", "outcome");
	return 0;
}

const struct workload_ops first_touch_ops = {
        .id = "lead.first_touch_detect",
        .config = ft_config,
        .nconfig = sizeof(ft_config) / sizeof(ft_config[0]),
        .init = ft_init,
        .decide = ft_decide,
        .after_write = ft_after_write,
        .fini = ft_fini,
        .system_prompt = "You detect the first response of a sales rep to a new Lead. Given the "
                         "Lead's creation time, the response just seen and the first response "
                         "stored so far, answer whether this response is earlier, and the time "
                         "to first response in minutes.",
};
