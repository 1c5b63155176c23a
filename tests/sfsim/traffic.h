/*
 * traffic.h - sfk-sim's lead traffic generator: seeded, realistic Leads
 * (regions, ISO countries, segments, industries, sources, intents) created at
 * a rate, then responses after random sim-time delays (closed call/email
 * Tasks, outbound EmailMessages linked through EmailMessageRelation), written
 * through the org API as UI/API users so CDC events flow. Keeps the ground
 * truth per lead (created time, true first response time/source/user).
 */
#ifndef SFK_SIM_TRAFFIC_H
#define SFK_SIM_TRAFFIC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sim;

#define SIM_MODULE_TRAFFIC 1

/* Largest profile body / file accepted and most leads one run may plan. */
#define TRAFFIC_PROFILE_MAX (64 * 1024)
#define TRAFFIC_MAX_LEADS   100000

/*
 * A profile (JSON keys in brackets; all optional but "leads"). Times are sim
 * time: advancing the sim clock makes pending responses due at once.
 */
struct traffic_profile {
	uint64_t seed;               /* [seed] 1 */
	long leads;                  /* [leads] how many to create (1..TRAFFIC_MAX_LEADS) */
	double rate;                 /* [rate] leads per second, 10 */
	double answer_ratio;         /* [answer_ratio] leads that get any response, 0.85 */
	double second_ratio;         /* [second_response_ratio] answered leads with 2, 0.3 */
	double before_routing_ratio; /* [before_routing_ratio] first response quick, 0.2 */
	double out_of_order_ratio;   /* [out_of_order_ratio] of 2-response leads, 0.2 */
	double email_message_ratio;  /* [email_message_ratio] responses as EmailMessage, 0.45 */
	double call_ratio;           /* [call_ratio] as call Task (rest: email Task), 0.4 */
	double api_ratio;            /* [api_ratio] leads created via API (rest: UI), 0.5 */
	long quick_max_ms;           /* [quick_max_ms] "before routing" delay bound, 300 */
	long delay_min_ms;           /* [delay_min_ms] other responses: log-uniform, 1000 */
	long delay_max_ms;           /* [delay_max_ms] 20000 */
};

/* Defaults above (leads = 0). */
void traffic_profile_default(struct traffic_profile *p);
/* Fill p from a JSON object (borrowed) over the defaults. 0, or -1 with err. */
int traffic_profile_parse(json_t *j, struct traffic_profile *p, char *err, size_t errlen);

/*
 * The planned Lead number index (0-based) of profile p: pure and
 * deterministic in (seed, index). Returns a new object
 * {"fields":{Lead fields to create}, "region", "country_code", "segment",
 *  "intent", "api": bool, "responses":[{"kind":"call"|"email_task"|
 *  "email_message", "delay_ms":N (after the lead), "backdate_ms":N (email:
 *  MessageDate = lead + N, 0 = now), "close_after_ms":N (call created open,
 *  completed N ms after its creation; absent = completed at once), "rep":N}]}.
 * Out-of-order pairs: the second response is created later but its time
 * (MessageDate / CompletedDateTime) is earlier than the first's.
 */
json_t *traffic_plan_lead(const struct traffic_profile *p, long index);

struct traffic;

/* Start a run (a finished one is replaced). 0; -1 with err (bad profile or a
 * run in progress: "busy"). */
int traffic_start(struct sim *sim, const struct traffic_profile *p, char *err, size_t errlen);
/* --traffic FILE (main.c calls this after the modules are initialised): a JSON
 * profile file, at most TRAFFIC_PROFILE_MAX bytes. 0 or -1 with a log line. */
int traffic_start_file(struct sim *sim, const char *path);
/* {"running","done","planned","created","responses_planned","responses_done",
 *  "errors","seed","pending" (queued actions),"last_due_ms" (sim ms when the
 *  last action of the leads created so far is due, closes of open Tasks
 *  included; 0 = none)}; new reference. Once every lead is created, moving
 *  the sim clock past last_due_ms lets the run finish. */
json_t *traffic_status(struct sim *sim);
/*
 * {"leads":[{"index", "lead_id", "created_at", "created_ms", "region",
 *   "country_code", "segment", "intent", "api", "owner_at_create",
 *   "first_response_at"|null, "first_response_ms", "first_response_source"
 *   ("Call"|"Email"|null), "first_response_user", "ttfr_minutes",
 *   "responses":[{"kind", "state" (planned|open|done|failed), "user",
 *   "before_routing" (the lead still had no User owner), "task_id",
 *   "email_message_id", "backdated", "closed_by", "created_ms", "at",
 *   "at_ms"}]}]} for the leads created so far; times as the org stores them
 * (whole seconds). New reference.
 */
json_t *traffic_truth(struct sim *sim);

/*
 * sim module: registers POST /sim/traffic, GET /sim/traffic/status and
 * GET /sim/traffic/truth (control routes) and starts --opt traffic.file if
 * given. 0 or -1.
 */
int traffic_module_init(struct sim *sim);
void traffic_module_fini(struct sim *sim);

#endif
