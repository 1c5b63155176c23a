#include "sf_quota.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "xmem.h"

struct sf_quota {
	pthread_mutex_t mu;
	double slow, pause;
	long max_delay_ms;
	long long used, limit; /* latest seen; limit 0 = no data */
	enum sf_quota_state state;
	struct metric *m_ratio, *m_state;
};

static int parse_ll(const char *s, const char **end, long long *out)
{
	char *e;
	errno = 0;
	if (!isdigit((unsigned char)*s))
		return -1;
	long long v = strtoll(s, &e, 10);
	if (errno != 0 || e == s)
		return -1;
	*out = v;
	*end = e;
	return 0;
}

int sf_quota_parse_limit_info(const char *value, long long *used, long long *limit)
{
	static const char key[] = "api-usage=";
	const char *p = value;
	if (!value)
		return -1;
	/* Entries are comma-separated; match "api-usage=" at an entry start so
	 * "per-app-api-usage=" is not taken for it. */
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (strncmp(p, key, sizeof key - 1) == 0) {
			const char *q = p + sizeof key - 1, *e;
			long long u, l;
			if (parse_ll(q, &e, &u) != 0 || *e != '/')
				return -1;
			if (parse_ll(e + 1, &e, &l) != 0 || l <= 0)
				return -1;
			if (*e && *e != ',' && *e != ' ' && *e != ';')
				return -1;
			*used = u;
			*limit = l;
			return 0;
		}
		p = strchr(p, ',');
		if (!p)
			break;
	}
	return -1;
}

struct sf_quota *sf_quota_new(double slow_share, double pause_share, long max_delay_ms)
{
	if (!(slow_share > 0 && slow_share < pause_share && pause_share <= 1.0) || max_delay_ms < 0)
		return NULL;
	struct sf_quota *q = xcalloc(1, sizeof *q);
	pthread_mutex_init(&q->mu, NULL);
	q->slow = slow_share;
	q->pause = pause_share;
	q->max_delay_ms = max_delay_ms;
	q->m_ratio = metrics_gauge("sfk_api_usage_ratio",
	                           "Share of the org's daily API request limit used "
	                           "(Sforce-Limit-Info api-usage)",
	                           NULL);
	q->m_state = metrics_gauge("sfk_api_quota_state",
	                           "Quota governor state: 0 ok, 1 slowing, 2 pausing non-essential "
	                           "writes",
	                           NULL);
	return q;
}

void sf_quota_free(struct sf_quota **q)
{
	if (!q || !*q)
		return;
	pthread_mutex_destroy(&(*q)->mu);
	free(*q);
	*q = NULL;
}

static double ratio_locked(const struct sf_quota *q)
{
	return q->limit > 0 ? (double)q->used / (double)q->limit : 0.0;
}

void sf_quota_update(struct sf_quota *q, long long used, long long limit)
{
	if (!q || limit <= 0 || used < 0)
		return;
	pthread_mutex_lock(&q->mu);
	q->used = used;
	q->limit = limit;
	double r = ratio_locked(q);
	enum sf_quota_state s = r >= q->pause  ? SF_QUOTA_PAUSED
	                        : r >= q->slow ? SF_QUOTA_SLOW
	                                       : SF_QUOTA_OK;
	enum sf_quota_state old = q->state;
	q->state = s;
	pthread_mutex_unlock(&q->mu);
	metric_set(q->m_ratio, r);
	metric_set(q->m_state, (double)s);
	if (s != old)
		log_warn("api quota state changed state=%s used=%lld limit=%lld",
		         s == SF_QUOTA_PAUSED ? "paused"
		         : s == SF_QUOTA_SLOW ? "slow"
		                              : "ok",
		         used, limit);
}

void sf_quota_update_header(struct sf_quota *q, const char *value)
{
	long long u, l;
	if (sf_quota_parse_limit_info(value, &u, &l) == 0)
		sf_quota_update(q, u, l);
}

long sf_quota_admit(struct sf_quota *q, int essential)
{
	if (!q || essential)
		return 0;
	pthread_mutex_lock(&q->mu);
	double r = ratio_locked(q);
	long d = 0;
	if (r >= q->pause)
		d = -1;
	else if (r >= q->slow)
		d = (long)((double)q->max_delay_ms * (r - q->slow) / (q->pause - q->slow));
	pthread_mutex_unlock(&q->mu);
	return d;
}

enum sf_quota_state sf_quota_state(struct sf_quota *q)
{
	pthread_mutex_lock(&q->mu);
	enum sf_quota_state s = q->state;
	pthread_mutex_unlock(&q->mu);
	return s;
}

double sf_quota_ratio(struct sf_quota *q)
{
	pthread_mutex_lock(&q->mu);
	double r = ratio_locked(q);
	pthread_mutex_unlock(&q->mu);
	return r;
}

int sf_quota_ready(struct sf_quota *q, char *reason, size_t len)
{
	pthread_mutex_lock(&q->mu);
	double r = ratio_locked(q);
	enum sf_quota_state s = q->state;
	double slow = q->slow, pause = q->pause;
	pthread_mutex_unlock(&q->mu);
	switch (s) {
	case SF_QUOTA_PAUSED:
		snprintf(reason, len,
		         "api usage %.0f%% of daily limit >= pause share %.0f%%: non-essential "
		         "writes paused",
		         r * 100, pause * 100);
		return 0;
	case SF_QUOTA_SLOW:
		snprintf(reason, len,
		         "ok (api usage %.0f%% of daily limit >= slow share %.0f%%: non-essential "
		         "writes slowed)",
		         r * 100, slow * 100);
		return 1;
	case SF_QUOTA_OK: break;
	}
	snprintf(reason, len, "ok");
	return 1;
}
