/*
 * control.h - the /sim control API (only with --control): records as a UI
 * user, whole-org dump, faults, clock, stats. Also owns the counters behind
 * GET /sim/stats, which the rest of the emulator feeds.
 */
#ifndef SFK_SIM_CONTROL_H
#define SFK_SIM_CONTROL_H

struct sim;

/* Allocate sim->stats and register the /sim routes. 0 or -1. */
int control_init(struct sim *sim);
void control_fini(struct sim *sim);

/* Counters (thread-safe; cheap). All strings borrowed. */
/* Token endpoint outcome: "ok", "invalid_grant", "unsupported_grant_type", ... */
void stats_count_token(struct sim *sim, const char *outcome);
/* One API call: method and path template ("/services/data/vXX.X/sobjects/{type}/{id}"). */
void stats_count_api(struct sim *sim, const char *method, const char *path_template, int status);
/* One API write (non-empty changeOrigin) applied to record id. */
void stats_count_write(struct sim *sim, const char *id);

#endif
