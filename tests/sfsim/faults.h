/*
 * faults.h - fault injection for sfk-sim: latency, 5xx per path pattern,
 * REQUEST_LIMIT_EXCEEDED, UNABLE_TO_LOCK_ROW on writes, dropped connections,
 * session expiry. A seeded PRNG makes a run reproducible.
 */
#ifndef SFK_SIM_FAULTS_H
#define SFK_SIM_FAULTS_H

#include <jansson.h>

struct sim;
struct sim_req;
struct sim_resp;

/* Allocate sim->faults (all off), PRNG seeded from sim->cfg.seed. 0 or -1. */
int faults_init(struct sim *sim);
void faults_fini(struct sim *sim);

/*
 * Replace the fault plan with spec (borrowed JSON object, see README):
 * {"latency_ms":N, "error_rate":R, "error_status":503, "error_paths":"substring",
 *  "errors":[{"path":"substring","rate":R,"status":5xx}, ...] (first match wins),
 *  "request_limit_exceeded":bool, "lock_rate":R, "drop_rate":R,
 *  "expire_sessions":true, "forget_cometd_clients":true, "gap_next":N, "seed":N}.
 * One-shot actions (expire/forget/gap) act now. 0, or -1 with errbuf.
 */
int faults_set(struct sim *sim, json_t *spec, char *errbuf, size_t errlen);
/* The current plan as JSON; new reference. */
json_t *faults_get(struct sim *sim);

/* Before a REST/OAuth handler: sleep the latency, maybe answer 5xx (returns
 * 1: resp is final, the handler must not run) or mark resp->drop (returns 0:
 * the handler runs, then the server cuts its answer half-way). */
int faults_before(struct sim *sim, const struct sim_req *req, struct sim_resp *resp);
/* 1 if REQUEST_LIMIT_EXCEEDED is forced on. */
int faults_limit_forced(struct sim *sim);
/* 1 if this record write should fail with UNABLE_TO_LOCK_ROW. */
int faults_lock_row(struct sim *sim);

#endif
