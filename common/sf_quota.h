/*
 * sf_quota.h - the daily API quota governor.
 *
 * Every REST response carries "Sforce-Limit-Info: api-usage=N/M" (used/limit
 * of the org's daily API requests). sf_rest feeds it here; the governor
 * publishes sfk_api_usage_ratio and slows, then pauses, non-essential writes
 * once usage crosses configurable shares of the limit, so the org keeps
 * headroom for people and other integrations. Thread-safe.
 */
#ifndef SFK_SF_QUOTA_H
#define SFK_SF_QUOTA_H

#include <stddef.h>

/*
 * Parse a Sforce-Limit-Info header value ("api-usage=10018/100000", possibly
 * among other comma-separated entries such as "per-app-api-usage=...").
 * Returns 0 and sets *used / *limit, or -1 if there is no valid api-usage
 * entry (limit must be > 0, used >= 0).
 */
int sf_quota_parse_limit_info(const char *value, long long *used, long long *limit);

struct sf_quota;

enum sf_quota_state {
	SF_QUOTA_OK,     /* below slow_share (or no data yet) */
	SF_QUOTA_SLOW,   /* slow_share <= ratio < pause_share: non-essential writes delayed */
	SF_QUOTA_PAUSED, /* ratio >= pause_share: non-essential writes refused */
};

/*
 * slow_share / pause_share in (0, 1], slow < pause (e.g. 0.80 / 0.95);
 * max_delay_ms: delay of a non-essential write just below pause_share (the
 * delay grows linearly from 0 at slow_share). Returns a new governor
 * (sf_quota_free) or NULL if the shares are out of range.
 */
struct sf_quota *sf_quota_new(double slow_share, double pause_share, long max_delay_ms);
/* Accepts NULL; clears *q. */
void sf_quota_free(struct sf_quota **q);

/* Record the latest usage (from any response). Updates sfk_api_usage_ratio. */
void sf_quota_update(struct sf_quota *q, long long used, long long limit);
/* Convenience: parse a header value and update; ignores values that do not parse. */
void sf_quota_update_header(struct sf_quota *q, const char *value);

/*
 * May a write go now? essential != 0 (e.g. a retry of a half-done batch,
 * or work an operator marked essential) always gets 0.
 * Returns 0 (go), a delay in ms the caller should wait before writing
 * (SLOW), or -1 (PAUSED: do not write non-essential work now).
 */
long sf_quota_admit(struct sf_quota *q, int essential);

enum sf_quota_state sf_quota_state(struct sf_quota *q);
/* Latest used/limit ratio (0 before any data). */
double sf_quota_ratio(struct sf_quota *q);

/*
 * For /readyz: returns 1 when writes flow normally (OK or SLOW; reason gets
 * "ok" or the slow-down note), 0 when PAUSED with the reason, e.g.
 * "api usage 96% of daily limit >= pause share 95%: non-essential writes paused".
 */
int sf_quota_ready(struct sf_quota *q, char *reason, size_t len);

#endif
