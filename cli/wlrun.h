/*
 * wlrun.h - one workload's decisions run from the CLI (sfk decide, sfk replay
 * --shadow): sfk-worker's clients (Salesforce REST, Redis) and settings, the
 * workload's own init(), then decide() over envelopes. In a dry run nothing
 * is written anywhere: lead.route picks owners from in-memory round-robin
 * state seeded read-only from Redis (route_dry_run), first_touch computes the
 * Redis minimum without storing it, after_write() is never called.
 */
#ifndef SFK_CLI_WLRUN_H
#define SFK_CLI_WLRUN_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "config.h"
#include "workload.h"

struct wlrun;

/* Add the worker's settings (Salesforce, Redis, client id, LLM) and every
 * workload's own table (policy paths) to cfg, before config_load(). */
void wlrun_add_config(struct config *cfg);

/*
 * Clients and the workload's init for workload (an id of workload_registry;
 * NULL: only the Salesforce client, and Redis when REDIS_URL is set).
 * dry: decide without writing (see above). offline: no Salesforce client
 * (decisions from the event fields alone; lead.route then cannot see that a
 * lead was routed or taken meanwhile). Returns a new runner (wlrun_free) or
 * NULL with errstr set; *status is then the exit status to use (1, or 2 for
 * an unknown workload / missing setting).
 */
struct wlrun *wlrun_new(struct config *cfg, const char *workload, const char *topic_prefix,
                        bool dry, bool offline, int *status, char *errstr, size_t errlen);
void wlrun_free(struct wlrun **w);

/* The context (borrowed, valid while w lives). */
struct wl_ctx *wlrun_ctx(struct wlrun *w);

/* decide() over n parsed events; out[] zeroed first, clear with wlrun_clear. */
enum sfk_err wlrun_decide(struct wlrun *w, const struct wl_event *ev, size_t n,
                          struct wl_decision *out);
void wlrun_clear(struct wl_decision *out, size_t n);

/*
 * Write the WL_WRITE decisions (sObject Collections) and run the workload's
 * after_write(), like the worker's loop (no idempotency claims: the workload's
 * own state checks keep a second run from writing again). *written: records
 * written. SFK_OK, or the first error (errstr).
 */
enum sfk_err wlrun_apply(struct wlrun *w, const struct wl_event *ev, size_t n,
                         struct wl_decision *out, size_t *written, char *errstr, size_t errlen);

/* One decision as a JSON line: {workload, event_id, entity, change_type,
 * record_id, lead_id, action, outcome, decision, write, error}. New reference. */
json_t *wlrun_decision_json(const char *workload, const struct wl_event *ev,
                            const struct wl_decision *d);

/* "write", "skip", "dlq", "retry". */
const char *wlrun_action_name(enum wl_action a);

/* Lead id of an envelope for a REST record: normalize_snapshot() as a CREATE
 * (what the workers act on), flags.resynced. New reference or NULL (errstr). */
json_t *wlrun_envelope(const char *entity, json_t *rest, int64_t now_ms, char *errstr,
                       size_t errlen);

#endif
