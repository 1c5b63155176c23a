/*
 * traffic.c - seeded lead traffic for sfk-sim (see traffic.h).
 *
 * Planning is pure: lead i of seed s is the same lead in every run, whatever
 * the timing. The runner thread creates leads on a sim-clock schedule and
 * fires responses from a min-heap of due times; every write goes through the
 * org's public API (so CDC, limits and faults see ordinary traffic). Truth is
 * read back from the org after each write, so it matches what a client can
 * query (timestamps have whole seconds there).
 */
#include "traffic.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "log.h"
#include "org.h"
#include "xmem.h"

#define MAX_REPS 64

/* ---- reference data ---------------------------------------------------------- */

struct country {
	const char *name; /* ISO 3166 short name */
	const char *code; /* alpha-2 */
	const char *region;
	const char *city;
	const char *suffix; /* company suffix */
};

static const struct country countries[] = {
        {"United States", "US", "NA", "San Francisco", "Inc."},
        {"United States", "US", "NA", "New York", "Inc."},
        {"United States", "US", "NA", "Austin", "LLC"},
        {"Canada", "CA", "NA", "Toronto", "Inc."},
        {"United Kingdom", "GB", "EMEA", "London", "Ltd"},
        {"Germany", "DE", "EMEA", "Berlin", "GmbH"},
        {"France", "FR", "EMEA", "Paris", "SAS"},
        {"Netherlands", "NL", "EMEA", "Amsterdam", "B.V."},
        {"Spain", "ES", "EMEA", "Madrid", "S.L."},
        {"Sweden", "SE", "EMEA", "Stockholm", "AB"},
        {"Switzerland", "CH", "EMEA", "Zürich", "AG"},
        {"Ireland", "IE", "EMEA", "Dublin", "Ltd"},
        {"South Africa", "ZA", "EMEA", "Johannesburg", "(Pty) Ltd"},
        {"United Arab Emirates", "AE", "EMEA", "Dubai", "LLC"},
        {"Japan", "JP", "APAC", "Tokyo", "K.K."},
        {"Australia", "AU", "APAC", "Sydney", "Pty Ltd"},
        {"India", "IN", "APAC", "Bengaluru", "Pvt Ltd"},
        {"Singapore", "SG", "APAC", "Singapore", "Pte Ltd"},
        {"Korea, Republic of", "KR", "APAC", "Seoul", "Co., Ltd."},
        {"New Zealand", "NZ", "APAC", "Auckland", "Ltd"},
        {"Brazil", "BR", "LATAM", "São Paulo", "Ltda."},
        {"Mexico", "MX", "LATAM", "Ciudad de México", "S.A. de C.V."},
        {"Argentina", "AR", "LATAM", "Buenos Aires", "S.A."},
        {"Chile", "CL", "LATAM", "Santiago", "SpA"},
        {"Colombia", "CO", "LATAM", "Bogotá", "S.A.S."},
};
#define NCOUNTRIES (sizeof(countries) / sizeof(countries[0]))

/* Region weights (percent): NA 40, EMEA 30, APAC 20, LATAM 10. */
static const struct {
	const char *region;
	int weight;
} regions[] = {{"NA", 40}, {"EMEA", 30}, {"APAC", 20}, {"LATAM", 10}};

static const char *const first_names[] = {"Olivia", "Liam",   "Amelia", "Noah",   "Sofia", "Mateo",
                                          "Hannah", "Lukas",  "Chloé",  "Yuki",   "Priya", "Wei",
                                          "Aisha",  "Diego",  "Lucas",  "Emma",   "Sven",  "Ingrid",
                                          "Kenji",  "Ananya", "Oliver", "Camila", "Jonas", "Zoë"};
static const char *const last_names[] = {
        "Smith",   "Müller", "García",  "Tanaka", "Sharma", "Dubois",    "Rossi", "Johnson",
        "O'Brien", "Kim",    "Nguyen",  "Silva",  "Cohen",  "Andersson", "Ng",    "Okafor",
        "Novak",   "López",  "Fischer", "Brown",  "Chen",   "Kowalski",  "Patel", "Jansen"};
static const char *const company_a[] = {"Blue",   "Northwind", "Acme",   "Vertex",  "Summit",
                                        "Lumen",  "Harbor",    "Quartz", "Atlas",   "Nimbus",
                                        "Cobalt", "Juniper",   "Orbit",  "Pioneer", "Silver"};
static const char *const company_b[] = {"Analytics", "Logistics", "Robotics", "Health",
                                        "Foods",     "Systems",   "Energy",   "Media",
                                        "Labs",      "Finance",   "Retail",   "Works"};
static const char *const titles[] = {"VP Sales",   "Head of Operations", "CTO",
                                     "IT Manager", "Procurement Lead",   "Marketing Director",
                                     "CEO",        "Engineer",           "Office Manager",
                                     "CFO"};

struct intent {
	const char *name;
	const char *const texts[3];
};

static const struct intent intents[] = {
        {"pricing",
         {"Can you send pricing for %d seats? We are comparing vendors this quarter.",
          "What would the enterprise plan cost for a team of %d? Budget approved for Q3.",
          "Need a quote for %d users, annual billing, with volume discount if possible."}},
        {"demo",
         {"We'd like a demo of the reporting features next week for %d people.",
          "Please schedule a product walkthrough for our sales ops team (%d users).",
          "Could we see a live demo? Evaluating tools for roughly %d staff."}},
        {"integration",
         {"Does it integrate with SAP? We need an API for order sync across %d stores.",
          "Looking for a Slack + ERP integration; is there a REST API and webhooks? (%d users)",
          "We need SSO (SAML) and a data export API before rolling out to %d employees."}},
        {"support",
         {"Existing customer: login issue since the upgrade, %d users affected. Please help.",
          "Our current tool keeps failing; need help migrating %d support tickets.",
          "Getting errors on import for %d records, can someone from support call me?"}},
        {"partnership",
         {"We are an agency serving %d clients and want to become a reseller partner.",
          "Exploring a technology partnership / co-marketing; we reach %d customers.",
          "Interested in your partner program; our consultancy has %d implementations."}},
};
#define NINTENTS (sizeof(intents) / sizeof(intents[0]))

/* ---- planning (pure) ------------------------------------------------------------ */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static double unit(uint64_t *s)
{
	return (double)(splitmix(s) >> 11) * (1.0 / 9007199254740992.0);
}

static size_t pick(uint64_t *s, size_t n)
{
	return (size_t)(splitmix(s) % n);
}

void traffic_profile_default(struct traffic_profile *p)
{
	memset(p, 0, sizeof(*p));
	p->seed = 1;
	p->rate = 10;
	p->answer_ratio = 0.85;
	p->second_ratio = 0.3;
	p->before_routing_ratio = 0.2;
	p->out_of_order_ratio = 0.2;
	p->email_message_ratio = 0.45;
	p->call_ratio = 0.4;
	p->api_ratio = 0.5;
	p->quick_max_ms = 300;
	p->delay_min_ms = 1000;
	p->delay_max_ms = 20000;
}

static int get_ratio(json_t *j, const char *k, double *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(j, k);
	if (!v)
		return 0;
	if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1) {
		snprintf(err, errlen, "%s must be a number between 0 and 1", k);
		return -1;
	}
	*out = json_number_value(v);
	return 0;
}

static int get_ms(json_t *j, const char *k, long *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(j, k);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > 30LL * 24 * 3600 * 1000) {
		snprintf(err, errlen, "%s must be an integer number of ms (0 .. 30 days)", k);
		return -1;
	}
	*out = (long)json_integer_value(v);
	return 0;
}

int traffic_profile_parse(json_t *j, struct traffic_profile *p, char *err, size_t errlen)
{
	json_t *v;
	traffic_profile_default(p);
	if (!json_is_object(j)) {
		snprintf(err, errlen, "profile must be a JSON object");
		return -1;
	}
	v = json_object_get(j, "leads");
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > TRAFFIC_MAX_LEADS) {
		snprintf(err, errlen, "leads must be an integer between 1 and %d",
		         TRAFFIC_MAX_LEADS);
		return -1;
	}
	p->leads = (long)json_integer_value(v);
	v = json_object_get(j, "seed");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			snprintf(err, errlen, "seed must be a non-negative integer");
			return -1;
		}
		p->seed = (uint64_t)json_integer_value(v);
	}
	v = json_object_get(j, "rate");
	if (v) {
		if (!json_is_number(v) || json_number_value(v) <= 0 ||
		    json_number_value(v) > 100000) {
			snprintf(err, errlen,
			         "rate must be a number of leads per second in (0, 100000]");
			return -1;
		}
		p->rate = json_number_value(v);
	}
	if (get_ratio(j, "answer_ratio", &p->answer_ratio, err, errlen) ||
	    get_ratio(j, "second_response_ratio", &p->second_ratio, err, errlen) ||
	    get_ratio(j, "before_routing_ratio", &p->before_routing_ratio, err, errlen) ||
	    get_ratio(j, "out_of_order_ratio", &p->out_of_order_ratio, err, errlen) ||
	    get_ratio(j, "email_message_ratio", &p->email_message_ratio, err, errlen) ||
	    get_ratio(j, "call_ratio", &p->call_ratio, err, errlen) ||
	    get_ratio(j, "api_ratio", &p->api_ratio, err, errlen) ||
	    get_ms(j, "quick_max_ms", &p->quick_max_ms, err, errlen) ||
	    get_ms(j, "delay_min_ms", &p->delay_min_ms, err, errlen) ||
	    get_ms(j, "delay_max_ms", &p->delay_max_ms, err, errlen))
		return -1;
	if (p->delay_max_ms < p->delay_min_ms) {
		snprintf(err, errlen, "delay_max_ms must be >= delay_min_ms");
		return -1;
	}
	return 0;
}

static const struct country *pick_country(uint64_t *s)
{
	int r = (int)pick(s, 100), acc = 0;
	const char *region = "NA";
	for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); i++) {
		acc += regions[i].weight;
		if (r < acc) {
			region = regions[i].region;
			break;
		}
	}
	size_t n = 0, idx[NCOUNTRIES];
	for (size_t i = 0; i < NCOUNTRIES; i++)
		if (strcmp(countries[i].region, region) == 0)
			idx[n++] = i;
	return &countries[idx[pick(s, n)]];
}

/* ASCII slug for email domains ("Blue Analytics" -> "blueanalytics"). */
static void slug(const char *in, char *out, size_t size)
{
	size_t o = 0;
	for (; *in && o + 1 < size; in++) {
		char c = *in;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			out[o++] = c;
	}
	out[o] = '\0';
}

static const char *picklist_value(const char *object, const char *field, uint64_t *s)
{
	const struct sim_field *f = org_field(org_object(object), field);
	size_t n = 0;
	if (!f || !f->picklist)
		return NULL;
	while (f->picklist[n])
		n++;
	return n ? f->picklist[pick(s, n)] : NULL;
}

static const char *response_kind(const struct traffic_profile *p, uint64_t *s)
{
	double u = unit(s);
	if (u < p->email_message_ratio)
		return "email_message";
	if (u < p->email_message_ratio + (1 - p->email_message_ratio) * p->call_ratio)
		return "call";
	return "email_task";
}

static long later_delay(const struct traffic_profile *p, uint64_t *s)
{
	/* Log-uniform: many quick answers, a long tail. */
	double lo = (double)(p->delay_min_ms > 0 ? p->delay_min_ms : 1);
	double hi = (double)(p->delay_max_ms > p->delay_min_ms ? p->delay_max_ms : lo + 1);
	return (long)exp(log(lo) + unit(s) * (log(hi) - log(lo)));
}

json_t *traffic_plan_lead(const struct traffic_profile *p, long index)
{
	uint64_t s =
	        p->seed * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)index + 1) * 0xD1B54A32D192ED03ULL;
	json_t *fields = json_object();
	const struct country *c = pick_country(&s);
	const char *fn = first_names[pick(&s, sizeof(first_names) / sizeof(first_names[0]))];
	const char *ln = last_names[pick(&s, sizeof(last_names) / sizeof(last_names[0]))];
	char company[160], dom[80], email[200], efn[40], eln[40], desc[400];
	snprintf(company, sizeof(company), "%s %s %s",
	         company_a[pick(&s, sizeof(company_a) / sizeof(company_a[0]))],
	         company_b[pick(&s, sizeof(company_b) / sizeof(company_b[0]))], c->suffix);
	slug(company, dom, sizeof(dom));
	slug(fn, efn, sizeof(efn));
	slug(ln, eln, sizeof(eln));
	snprintf(email, sizeof(email), "%s.%s%ld@%s.example.com", efn[0] ? efn : "x",
	         eln[0] ? eln : "y", index, dom);

	/* Segments: SMB < 100 (50 %), MM 100-999 (35 %), ENT >= 1000 (15 %). */
	double u = unit(&s);
	long employees;
	const char *segment;
	if (u < 0.50) {
		segment = "SMB";
		employees = 1 + (long)pick(&s, 99);
	} else if (u < 0.85) {
		segment = "MM";
		employees = 100 + (long)pick(&s, 900);
	} else {
		segment = "ENT";
		employees = (long)exp(log(1000.0) + unit(&s) * (log(200000.0) - log(1000.0)));
	}
	const struct intent *in = &intents[pick(&s, NINTENTS)];
	/* Templates hold one "%d" (a head count); filled without a
	 * non-literal format string. */
	const char *tpl = in->texts[pick(&s, 3)];
	const char *hole = strstr(tpl, "%d");
	int heads = employees < 20 ? (int)employees : (int)(employees / (2 + (long)pick(&s, 5)));
	if (hole)
		snprintf(desc, sizeof(desc), "%.*s%d%s", (int)(hole - tpl), tpl, heads, hole + 2);
	else
		snprintf(desc, sizeof(desc), "%s", tpl);

	const char *sal = picklist_value("Lead", "Salutation", &s);
	if (sal)
		json_object_set_new(fields, "Salutation", json_string(sal));
	json_object_set_new(fields, "FirstName", json_string(fn));
	json_object_set_new(fields, "LastName", json_string(ln));
	json_object_set_new(fields, "Company", json_string(company));
	json_object_set_new(fields, "Title", json_string(titles[pick(&s, 10)]));
	json_object_set_new(fields, "Email", json_string(email));
	json_object_set_new(fields, "City", json_string(c->city));
	/* Missing data exercises routing fallbacks; some forms send the code. */
	double cu = unit(&s);
	const char *country_code = c->code;
	if (cu < 0.04)
		country_code = NULL;
	else if (cu < 0.14)
		json_object_set_new(fields, "Country", json_string(c->code));
	else
		json_object_set_new(fields, "Country", json_string(c->name));
	int has_emp = unit(&s) >= 0.05;
	if (has_emp)
		json_object_set_new(fields, "NumberOfEmployees", json_integer(employees));
	const char *ind = picklist_value("Lead", "Industry", &s);
	if (ind && unit(&s) >= 0.1)
		json_object_set_new(fields, "Industry", json_string(ind));
	const char *src = picklist_value("Lead", "LeadSource", &s);
	if (src)
		json_object_set_new(fields, "LeadSource", json_string(src));
	int has_desc = unit(&s) >= 0.1;
	if (has_desc)
		json_object_set_new(fields, "Description", json_string(desc));

	json_t *resp = json_array();
	int api = unit(&s) < p->api_ratio;
	if (unit(&s) < p->answer_ratio) {
		long d1 = unit(&s) < p->before_routing_ratio
		                  ? (long)pick(&s, (size_t)p->quick_max_ms + 1)
		                  : later_delay(p, &s);
		json_array_append_new(resp, json_pack("{s:s,s:I,s:I,s:I}", "kind",
		                                      response_kind(p, &s), "delay_ms",
		                                      (json_int_t)d1, "backdate_ms", (json_int_t)0,
		                                      "rep", (json_int_t)pick(&s, MAX_REPS)));
		if (unit(&s) < p->second_ratio) {
			long d2 = d1 + 1000 + later_delay(p, &s);
			int ooo = unit(&s) < p->out_of_order_ratio;
			int backdated = ooo && unit(&s) < 0.5;
			/* Out of order, created later but with the earlier time:
			 * either an email logged late whose MessageDate lies
			 * before the first response, or the first one is a call
			 * Task left open and completed only after the second. */
			if (ooo && !backdated) {
				json_t *r0 = json_array_get(resp, 0);
				json_object_set_new(r0, "kind", json_string("call"));
				json_object_set_new(
				        r0, "close_after_ms",
				        json_integer(d2 - d1 + 1000 + later_delay(p, &s)));
			}
			json_array_append_new(
			        resp, json_pack("{s:s,s:I,s:I,s:I}", "kind",
			                        backdated ? "email_message" : response_kind(p, &s),
			                        "delay_ms", (json_int_t)d2, "backdate_ms",
			                        (json_int_t)(backdated ? d1 / 2 : 0), "rep",
			                        (json_int_t)pick(&s, MAX_REPS)));
		}
	}
	return json_pack("{s:o,s:s,s:s?,s:s,s:s,s:b,s:o}", "fields", fields, "region",
	                 country_code ? c->region : "UNKNOWN", "country_code", country_code,
	                 "segment", has_emp ? segment : "UNKNOWN", "intent",
	                 has_desc ? in->name : "unknown", "api", api, "responses", resp);
}

/* ---- runner ------------------------------------------------------------------------ */

struct action {
	int64_t due;
	long lead;
	int resp;
	int close; /* complete the open Task of this response */
};

/* Per planned lead. The plan is not kept: plans are pure, so each step
 * rebuilds it (traffic_plan_lead) instead of holding 20,000+ plans. */
struct lead_state {
	char id[SIM_ID_BUF];
	json_t *truth; /* owned; NULL until the lead is created */
	int64_t created_ms;
	int64_t first_ms; /* -1 = none yet */
};

struct traffic {
	struct sim *sim;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thread;
	int thread_running;
	int stop;
	int running, done;
	struct traffic_profile prof;
	struct lead_state *leads;
	long created;
	long responses_planned, responses_done, errors;
	/* Latest sim time (ms) any scheduled action of the created leads is
	 * due at, follow-up closes of open Tasks included; 0 = none. One clock
	 * jump past it makes every response of those leads due. */
	int64_t last_due_ms;
	/* Shared strings for truth values that repeat across leads (states,
	 * kinds, regions, user ids, second-resolution times); under mu. */
	json_t *interned;
	struct action *heap;
	size_t nheap, capheap;
	char reps[MAX_REPS][SIM_ID_BUF];
	size_t nreps;
	char queue[SIM_ID_BUF];
};

static void heap_push(struct traffic *t, struct action a)
{
	if (t->nheap == t->capheap) {
		t->capheap = t->capheap ? t->capheap * 2 : 256;
		t->heap = xrealloc(t->heap, t->capheap * sizeof(*t->heap));
	}
	size_t i = t->nheap++;
	t->heap[i] = a;
	while (i > 0 && t->heap[(i - 1) / 2].due > t->heap[i].due) {
		struct action tmp = t->heap[i];
		t->heap[i] = t->heap[(i - 1) / 2];
		t->heap[(i - 1) / 2] = tmp;
		i = (i - 1) / 2;
	}
}

static struct action heap_pop(struct traffic *t)
{
	struct action top = t->heap[0];
	t->heap[0] = t->heap[--t->nheap];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < t->nheap && t->heap[l].due < t->heap[m].due)
			m = l;
		if (r < t->nheap && t->heap[r].due < t->heap[m].due)
			m = r;
		if (m == i)
			break;
		struct action tmp = t->heap[i];
		t->heap[i] = t->heap[m];
		t->heap[m] = tmp;
		i = m;
	}
	return top;
}

/* Most distinct strings the truth's intern table keeps. */
#define TRUTH_INTERN_MAX 100000

/* Replace obj's string values (but the unique ids) with shared ones: a
 * truth entry holds a dozen short strings that repeat across 20,000+ leads.
 * Truth values are never changed in place. Under t->mu. */
static void intern_truth(struct traffic *t, json_t *obj)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
	{
		if (!json_is_string(v) || strcmp(key, "lead_id") == 0 ||
		    strcmp(key, "task_id") == 0 || strcmp(key, "email_message_id") == 0)
			continue;
		json_t *shared = json_object_get(t->interned, json_string_value(v));
		if (!shared) {
			if (json_object_size(t->interned) < TRUTH_INTERN_MAX)
				json_object_set(t->interned, json_string_value(v), v);
		} else if (shared != v) {
			json_object_set(obj, key, shared);
		}
	}
}

static void free_run(struct traffic *t)
{
	for (long i = 0; t->leads && i < t->prof.leads; i++) {
		json_decref(t->leads[i].truth);
	}
	free(t->leads);
	t->leads = NULL;
	json_object_clear(t->interned);
	free(t->heap);
	t->heap = NULL;
	t->nheap = t->capheap = 0;
}

/* Reps who answer leads (active, not integration users) and the default
 * lead queue, read once per run. */
static void load_people(struct traffic *t)
{
	struct sim *sim = t->sim;
	size_t i;
	json_t *r;
	org_lock(sim);
	t->nreps = 0;
	json_array_foreach(org_records_locked(sim, "User"), i, r)
	{
		const char *id = json_string_value(json_object_get(r, "Id"));
		const char *fn = json_string_value(json_object_get(r, "FirstName"));
		if (!id || !json_is_true(json_object_get(r, "IsActive")) ||
		    strcmp(id, sim->default_user_id) == 0 || (fn && strcmp(fn, "Integration") == 0))
			continue;
		if (t->nreps < MAX_REPS)
			snprintf(t->reps[t->nreps++], SIM_ID_BUF, "%s", id);
	}
	t->queue[0] = '\0';
	json_array_foreach(org_records_locked(sim, "Group"), i, r)
	{
		const char *dn = json_string_value(json_object_get(r, "DeveloperName"));
		const char *id = json_string_value(json_object_get(r, "Id"));
		if (dn && id && strcmp(dn, "Unassigned_Leads") == 0)
			snprintf(t->queue, sizeof(t->queue), "%s", id);
	}
	org_unlock(sim);
	if (t->nreps == 0)
		snprintf(t->reps[t->nreps++], SIM_ID_BUF, "%s", sim->default_user_id);
}

static int64_t field_ms(json_t *rec, const char *f)
{
	int64_t ms;
	const char *s = json_string_value(json_object_get(rec, f));
	return s && sim_parse_datetime(s, &ms) == 0 ? ms : -1;
}

static void iso(int64_t ms, char out[40])
{
	sim_format_datetime(ms, out, 40);
}

/* A created lead's truth skeleton from its plan: new reference. */
static json_t *truth_new(json_t *plan, long i)
{
	json_t *cc = json_object_get(plan, "country_code");
	json_t *truth = json_pack(
	        "{s:I,s:O,s:O,s:O,s:O,s:O,s:n,s:n,s:n,s:[]}", "index", (json_int_t)i, "region",
	        json_object_get(plan, "region"), "country_code", cc ? cc : json_null(), "segment",
	        json_object_get(plan, "segment"), "intent", json_object_get(plan, "intent"), "api",
	        json_object_get(plan, "api"), "first_response_at", "first_response_source",
	        "first_response_user", "responses");
	size_t k;
	json_t *pr;

	/* One truth entry per planned response, in plan order. */
	json_array_foreach(json_object_get(plan, "responses"), k, pr)
	{
		json_array_append_new(json_object_get(truth, "responses"),
		                      json_pack("{s:O,s:s}", "kind", json_object_get(pr, "kind"),
		                                "state", "planned"));
	}
	return truth;
}

static void create_lead(struct traffic *t, long i)
{
	struct sim *sim = t->sim;
	struct sim_error err;
	char id[SIM_ID_BUF], buf[40];
	memset(&err, 0, sizeof(err));
	snprintf(err.code, sizeof(err.code), "READ_BACK_FAILED");
	/* Plans are pure: rebuilt here rather than kept for every lead. */
	json_t *plan = traffic_plan_lead(&t->prof, i);
	json_t *fields = json_incref(json_object_get(plan, "fields"));
	int api = json_is_true(json_object_get(plan, "api"));
	pthread_mutex_lock(&t->mu);
	struct lead_state *ls = &t->leads[i];
	ls->truth = truth_new(plan, i);
	if (t->queue[0])
		json_object_set_new(fields, "OwnerId", json_string(t->queue));
	pthread_mutex_unlock(&t->mu);

	/* API leads come from a marketing sync, UI leads from web-to-lead. */
	const char *origin = api ? "com/salesforce/api/soap/61.0;client=MarketingSync" : "";
	int rc = org_create(sim, "Lead", fields, origin, NULL, id, &err);
	json_decref(fields);
	int64_t created_ms = -1;
	json_t *owner = NULL;
	if (rc == 0) {
		/* Read back under the org lock: no copy of the whole record. */
		org_lock(sim);
		json_t *rec = org_lookup_locked(sim, id);
		if (rec) {
			created_ms = field_ms(rec, "CreatedDate");
			owner = json_deep_copy(json_object_get(rec, "OwnerId"));
		}
		org_unlock(sim);
	}

	pthread_mutex_lock(&t->mu);
	t->created++;
	if (created_ms < 0) {
		t->errors++;
		json_object_set_new(ls->truth, "error", json_string(err.code));
		pthread_mutex_unlock(&t->mu);
		json_decref(owner);
		json_decref(plan);
		log_warn("traffic: lead create failed index=%ld code=%s msg=%s", i, err.code,
		         err.message);
		return;
	}
	snprintf(ls->id, sizeof(ls->id), "%s", id);
	ls->created_ms = created_ms;
	iso(ls->created_ms, buf);
	json_object_set_new(ls->truth, "lead_id", json_string(id));
	json_object_set_new(ls->truth, "created_at", json_string(buf));
	json_object_set_new(ls->truth, "created_ms", json_integer(ls->created_ms));
	json_object_set_new(ls->truth, "owner_at_create", owner ? owner : json_null());
	intern_truth(t, ls->truth);
	/* Responses are due relative to the moment the lead really exists. */
	int64_t now = sim_now_ms(sim);
	size_t k;
	json_t *r;
	json_array_foreach(json_object_get(plan, "responses"), k, r)
	{
		struct action a = {now + json_integer_value(json_object_get(r, "delay_ms")), i,
		                   (int)k, 0};
		/* The close of a Task left open is due close_after_ms after
		 * the open's plan time (not after it is processed). */
		int64_t end = a.due + json_integer_value(json_object_get(r, "close_after_ms"));
		if (end > t->last_due_ms)
			t->last_due_ms = end;
		heap_push(t, a);
	}
	pthread_mutex_unlock(&t->mu);
	json_decref(plan);
}

/* Make one planned response (or complete its open Task); record its truth
 * in the lead's responses[a.resp]. */
static void respond(struct traffic *t, struct action a)
{
	struct sim *sim = t->sim;
	struct sim_error err = {0};
	char tid[SIM_ID_BUF] = "", eid[SIM_ID_BUF] = "", when[40], open_task[SIM_ID_BUF] = "";
	int rc = -1, opened = 0;
	int64_t at = -1, rec_created = -1;

	json_t *lplan = traffic_plan_lead(&t->prof, a.lead);
	json_t *plan =
	        json_incref(json_array_get(json_object_get(lplan, "responses"), (size_t)a.resp));
	pthread_mutex_lock(&t->mu);
	struct lead_state *ls = &t->leads[a.lead];
	json_t *entry = json_array_get(json_object_get(ls->truth, "responses"), (size_t)a.resp);
	const char *otid = json_string_value(json_object_get(entry, "task_id"));
	snprintf(open_task, sizeof(open_task), "%s", otid ? otid : "");
	char lead_id[SIM_ID_BUF];
	snprintf(lead_id, sizeof(lead_id), "%s", ls->id);
	char lead_email[200];
	snprintf(lead_email, sizeof(lead_email), "%s",
	         json_string_value(json_object_get(json_object_get(lplan, "fields"), "Email")));
	const char *intent = json_string_value(json_object_get(lplan, "intent"));
	char subject[120];
	snprintf(subject, sizeof(subject), "Re: your %s request", intent ? intent : "");
	int64_t created_ms = ls->created_ms;
	char fallback[SIM_ID_BUF];
	snprintf(fallback, sizeof(fallback), "%s",
	         t->reps[json_integer_value(json_object_get(plan, "rep")) % (json_int_t)t->nreps]);
	pthread_mutex_unlock(&t->mu);

	const char *kind = json_string_value(json_object_get(plan, "kind"));
	json_int_t backdate = json_integer_value(json_object_get(plan, "backdate_ms"));
	json_int_t close_after = json_integer_value(json_object_get(plan, "close_after_ms"));

	/* Who answers: the lead's owner when a user owns it, else (still in
	 * the queue: not routed yet) whichever rep picks it up. */
	json_t *lead = org_get(sim, "Lead", lead_id, &err);
	const char *owner = lead ? json_string_value(json_object_get(lead, "OwnerId")) : NULL;
	char user[SIM_ID_BUF];
	int routed = owner && strncmp(owner, "005", 3) == 0;
	snprintf(user, sizeof(user), "%s", routed ? owner : fallback);
	json_decref(lead);

	json_t *truth = json_object();
	if (a.close) {
		/* The rep completes the call Task opened earlier. */
		json_t *f = json_pack("{s:s}", "Status", "Completed");
		rc = org_update(sim, "Task", open_task, f, "", user, &err);
		json_decref(f);
		json_t *task = rc == 0 ? org_get(sim, "Task", open_task, &err) : NULL;
		at = task ? field_ms(task, "CompletedDateTime") : -1;
		json_decref(task);
		json_object_set_new(truth, "closed_by", json_string(user));
	} else if (strcmp(kind, "call") == 0 || strcmp(kind, "email_task") == 0) {
		int call = strcmp(kind, "call") == 0;
		opened = close_after > 0;
		iso(sim_now_ms(sim), when);
		json_t *f = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s#}", "Subject",
		                      call ? "Call" : subject, "WhoId", lead_id, "OwnerId", user,
		                      "Status", opened ? "Not Started" : "Completed", "TaskSubtype",
		                      call ? "Call" : "Email", "Type", call ? "Call" : "Email",
		                      "ActivityDate", when, 10);
		if (call)
			json_object_set_new(f, "CallDurationInSeconds",
			                    json_integer(30 + (a.lead * 37) % 900));
		rc = org_create(sim, "Task", f, "", user, tid, &err);
		json_decref(f);
		json_t *task = rc == 0 ? org_get(sim, "Task", tid, &err) : NULL;
		at = task && !opened ? field_ms(task, "CompletedDateTime") : -1;
		rec_created = task ? field_ms(task, "CreatedDate") : -1;
		json_decref(task);
		if (rc == 0)
			json_object_set_new(truth, "task_id", json_string(tid));
	} else {
		/* Outbound email sent from Salesforce: EmailMessage + its relation
		 * to the Lead in one transaction; the org adds the Task. */
		struct org_txn txn;
		int64_t now = sim_now_ms(sim);
		int64_t md = backdate ? created_ms + backdate : now;
		iso(md - md % 1000, when);
		json_t *em =
		        json_pack("{s:s,s:s,s:s,s:s,s:b,s:s}", "Subject", subject, "TextBody",
		                  "Thanks for reaching out, happy to help.", "ToAddress",
		                  lead_email, "Status", "3", "Incoming", 0, "MessageDate", when);
		org_lock(sim);
		org_txn_begin(sim, &txn, "", user);
		rc = org_create_locked(sim, &txn, "EmailMessage", em, eid, &err);
		if (rc == 0) {
			json_t *rel = json_pack("{s:s,s:s,s:s,s:s}", "EmailMessageId", eid,
			                        "RelationId", lead_id, "RelationType", "ToAddress",
			                        "RelationAddress", lead_email);
			char rid[SIM_ID_BUF];
			rc = org_create_locked(sim, &txn, "EmailMessageRelation", rel, rid, &err);
			json_decref(rel);
		}
		json_t *stored = rc == 0 ? org_lookup_locked(sim, eid) : NULL;
		int64_t msg_ms = stored ? field_ms(stored, "MessageDate") : -1;
		rec_created = stored ? field_ms(stored, "CreatedDate") : -1;
		const char *act =
		        stored ? json_string_value(json_object_get(stored, "ActivityId")) : NULL;
		json_t *task = act ? org_lookup_locked(sim, act) : NULL;
		int64_t task_ms = task ? field_ms(task, "CompletedDateTime") : -1;
		if (act)
			json_object_set_new(truth, "task_id", json_string(act));
		org_unlock(sim);
		json_decref(em);
		at = msg_ms;
		if (task_ms >= 0 && (at < 0 || task_ms < at))
			at = task_ms;
		if (rc == 0)
			json_object_set_new(truth, "email_message_id", json_string(eid));
		json_object_set_new(truth, "backdated", json_boolean(backdate != 0));
	}
	if (!a.close) {
		json_object_set_new(truth, "user", json_string(user));
		json_object_set_new(truth, "before_routing", json_boolean(!routed));
		if (rec_created >= 0)
			json_object_set_new(truth, "created_ms", json_integer(rec_created));
	}

	pthread_mutex_lock(&t->mu);
	json_object_update(entry, truth);
	if (rc == 0 && opened) {
		/* Not a response yet: an open Task, completed later. */
		json_object_set_new(entry, "state", json_string("open"));
		/* Due on the plan's schedule, so one clock jump covers it too. */
		struct action c = {a.due + close_after, a.lead, a.resp, 1};
		heap_push(t, c);
	} else if (rc != 0 || at < 0) {
		t->responses_done++;
		t->errors++;
		json_object_set_new(entry, "state", json_string("failed"));
		json_object_set_new(entry, "error",
		                    json_string(err.code[0] ? err.code : "UNKNOWN"));
		log_warn("traffic: response failed lead=%s kind=%s code=%s msg=%s", lead_id, kind,
		         err.code, err.message);
	} else {
		t->responses_done++;
		iso(at, when);
		json_object_set_new(entry, "state", json_string("done"));
		json_object_set_new(entry, "at", json_string(when));
		json_object_set_new(entry, "at_ms", json_integer(at));
		if (ls->first_ms < 0 || at < ls->first_ms) {
			ls->first_ms = at;
			json_object_set_new(ls->truth, "first_response_at", json_string(when));
			json_object_set_new(ls->truth, "first_response_ms", json_integer(at));
			json_object_set_new(
			        ls->truth, "first_response_source",
			        json_string(strcmp(kind, "call") == 0 ? "Call" : "Email"));
			json_object_set_new(ls->truth, "first_response_user",
			                    json_object_get(entry, "user")
			                            ? json_deep_copy(json_object_get(entry, "user"))
			                            : json_string(user));
			json_object_set_new(ls->truth, "ttfr_minutes",
			                    json_real((double)(at - ls->created_ms) / 60000.0));
			intern_truth(t, ls->truth);
		}
	}
	intern_truth(t, entry);
	pthread_mutex_unlock(&t->mu);
	json_decref(truth);
	json_decref(plan);
	json_decref(lplan);
}

static void *runner(void *arg)
{
	struct traffic *t = arg;
	struct sim *sim = t->sim;
	int64_t start = sim_now_ms(sim);
	for (;;) {
		int64_t now = sim_now_ms(sim);
		pthread_mutex_lock(&t->mu);
		int stop = t->stop || sim->stop;
		long created = t->created;
		pthread_mutex_unlock(&t->mu);
		if (stop)
			break;
		/* Catch up after a clock advance: every due lead, in order. */
		while (created < t->prof.leads &&
		       start + (int64_t)((double)created * 1000.0 / t->prof.rate) <= now) {
			create_lead(t, created);
			created++;
		}
		for (;;) {
			pthread_mutex_lock(&t->mu);
			int due = t->nheap > 0 && t->heap[0].due <= sim_now_ms(sim) && !t->stop;
			struct action a = {0};
			if (due)
				a = heap_pop(t);
			pthread_mutex_unlock(&t->mu);
			if (!due)
				break;
			respond(t, a);
		}
		pthread_mutex_lock(&t->mu);
		if (created >= t->prof.leads && t->nheap == 0) {
			t->done = 1;
			t->running = 0;
			pthread_mutex_unlock(&t->mu);
			log_info("traffic: done leads=%ld responses=%ld errors=%ld", t->created,
			         t->responses_done, t->errors);
			break;
		}
		/* Short waits: the sim clock may jump forward at any time. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (!t->stop)
			pthread_cond_timedwait(&t->cond, &t->mu, &ts);
		pthread_mutex_unlock(&t->mu);
	}
	pthread_mutex_lock(&t->mu);
	t->running = 0;
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

static void join_runner(struct traffic *t)
{
	if (!t->thread_running)
		return;
	pthread_mutex_lock(&t->mu);
	t->stop = 1;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->mu);
	pthread_join(t->thread, NULL);
	t->thread_running = 0;
	t->stop = 0;
}

int traffic_start(struct sim *sim, const struct traffic_profile *p, char *err, size_t errlen)
{
	struct traffic *t = sim->traffic;
	if (!t) {
		snprintf(err, errlen, "traffic module not initialised");
		return -1;
	}
	if (p->leads < 1 || p->leads > TRAFFIC_MAX_LEADS || p->rate <= 0) {
		snprintf(err, errlen, "bad profile");
		return -1;
	}
	pthread_mutex_lock(&t->mu);
	int busy = t->running;
	pthread_mutex_unlock(&t->mu);
	if (busy) {
		snprintf(err, errlen, "busy: a traffic run is in progress");
		return -1;
	}
	join_runner(t);
	free_run(t);
	t->prof = *p;
	t->created = t->responses_planned = t->responses_done = t->errors = 0;
	t->done = 0;
	t->last_due_ms = 0;
	t->leads = xcalloc((size_t)p->leads, sizeof(*t->leads));
	for (long i = 0; i < p->leads; i++) {
		json_t *plan = traffic_plan_lead(p, i);
		t->leads[i].first_ms = -1;
		t->responses_planned += (long)json_array_size(json_object_get(plan, "responses"));
		json_decref(plan);
	}
	load_people(t);
	t->running = 1;
	if (pthread_create(&t->thread, NULL, runner, t) != 0) {
		t->running = 0;
		snprintf(err, errlen, "cannot start the traffic thread");
		return -1;
	}
	t->thread_running = 1;
	log_info("traffic: started leads=%ld rate=%.1f seed=%llu responses=%ld", p->leads, p->rate,
	         (unsigned long long)p->seed, t->responses_planned);
	return 0;
}

int traffic_start_file(struct sim *sim, const char *path)
{
	json_error_t jerr;
	struct traffic_profile p;
	char err[200];
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0;
	int rc = -1;
	json_t *j = NULL;

	if (!f) {
		log_error("traffic: cannot open profile path=%s error=%s", path, strerror(errno));
		return -1;
	}
	buf = xmalloc(TRAFFIC_PROFILE_MAX + 1);
	n = fread(buf, 1, TRAFFIC_PROFILE_MAX + 1, f);
	if (n > TRAFFIC_PROFILE_MAX) {
		log_error("traffic: profile too large path=%s max=%d", path, TRAFFIC_PROFILE_MAX);
		goto out;
	}
	j = json_loadb(buf, n, 0, &jerr);
	if (!j) {
		log_error("traffic: profile is not JSON path=%s line=%d error=%s", path, jerr.line,
		          jerr.text);
		goto out;
	}
	if (traffic_profile_parse(j, &p, err, sizeof(err)) != 0 ||
	    traffic_start(sim, &p, err, sizeof(err)) != 0) {
		log_error("traffic: bad profile path=%s error=%s", path, err);
		goto out;
	}
	rc = 0;
out:
	json_decref(j);
	free(buf);
	fclose(f);
	return rc;
}

json_t *traffic_status(struct sim *sim)
{
	struct traffic *t = sim->traffic;
	if (!t)
		return json_object();
	pthread_mutex_lock(&t->mu);
	json_t *o = json_pack("{s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "running", t->running,
	                      "done", t->done, "planned", (json_int_t)t->prof.leads, "created",
	                      (json_int_t)t->created, "responses_planned",
	                      (json_int_t)t->responses_planned, "responses_done",
	                      (json_int_t)t->responses_done, "errors", (json_int_t)t->errors,
	                      "seed", (json_int_t)t->prof.seed, "pending", (json_int_t)t->nheap,
	                      "last_due_ms", (json_int_t)t->last_due_ms);
	pthread_mutex_unlock(&t->mu);
	return o;
}

json_t *traffic_truth(struct sim *sim)
{
	struct traffic *t = sim->traffic;
	json_t *a = json_array();
	if (!t)
		return json_pack("{s:o}", "leads", a);
	pthread_mutex_lock(&t->mu);
	for (long i = 0; t->leads && i < t->created; i++)
		json_array_append_new(a, json_deep_copy(t->leads[i].truth));
	pthread_mutex_unlock(&t->mu);
	return json_pack("{s:o}", "leads", a);
}

/* ---- routes ------------------------------------------------------------------------ */

static void post_handler(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	json_error_t jerr;
	struct traffic_profile p;
	char err[200];
	json_t *j = json_loadb(req->body, req->body_len, 0, &jerr);
	if (!j) {
		sim_resp_error(resp, 400, "JSON_PARSER_ERROR", jerr.text, NULL);
		return;
	}
	int rc = traffic_profile_parse(j, &p, err, sizeof(err));
	json_decref(j);
	if (rc != 0) {
		sim_resp_error(resp, 400, "INVALID_PROFILE", err, NULL);
		return;
	}
	if (traffic_start(sim, &p, err, sizeof(err)) != 0) {
		sim_resp_error(resp, strncmp(err, "busy", 4) == 0 ? 409 : 400,
		               "TRAFFIC_NOT_STARTED", err, NULL);
		return;
	}
	sim_resp_json(resp, 202, traffic_status(sim));
}

static void status_handler(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	(void)req;
	sim_resp_json(resp, 200, traffic_status(sim));
}

static void truth_handler(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	(void)req;
	sim_resp_json(resp, 200, traffic_truth(sim));
}

int traffic_module_init(struct sim *sim)
{
	struct traffic *t = xcalloc(1, sizeof(*t));
	t->sim = sim;
	t->interned = json_object();
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cond, NULL);
	sim->traffic = t;
	if (sim_route(sim, "POST", "/sim/traffic", SIM_ROUTE_CONTROL, TRAFFIC_PROFILE_MAX,
	              post_handler, t) != 0 ||
	    sim_route(sim, "GET", "/sim/traffic/status", SIM_ROUTE_CONTROL, 0, status_handler, t) !=
	            0 ||
	    sim_route(sim, "GET", "/sim/traffic/truth", SIM_ROUTE_CONTROL, 0, truth_handler, t) !=
	            0)
		return -1;
	const char *file = json_string_value(json_object_get(sim->cfg.opts, "traffic.file"));
	if (file && traffic_start_file(sim, file) != 0)
		return -1;
	return 0;
}

void traffic_module_fini(struct sim *sim)
{
	struct traffic *t = sim->traffic;
	if (!t)
		return;
	join_runner(t);
	free_run(t);
	json_decref(t->interned);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cond);
	free(t);
	sim->traffic = NULL;
}
