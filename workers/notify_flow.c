/*
 * notify_flow.c - flow control of notify.webhook deliveries (see notify.h):
 * exponential backoff with jitter, Retry-After parsing, a token bucket per
 * target and a circuit breaker per target. Pure: callers pass the clock.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notify.h"

#define RETRY_AFTER_MAX_S (7L * 24 * 3600) /* larger values are nonsense: malformed */

long notify_backoff_ms(long base_ms, long max_ms, int retry, unsigned rnd)
{
	long d = base_ms > 0 ? base_ms : 1;
	if (max_ms < d)
		max_ms = d;
	for (int i = 1; i < retry && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	/* Jitter in [d/2, d]: replicas retrying the same target spread out. */
	long j = d / 2 + (long)(rnd % (unsigned long)(d / 2 + 1));
	return j > 0 ? j : 1;
}

long notify_retry_after_ms(const char *value, int64_t now_s)
{
	const char *p = value;
	if (!p)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (isdigit((unsigned char)*p)) {
		char *end;
		errno = 0;
		long long s = strtoll(p, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
			end++;
		if (errno || *end || s < 0 || s > RETRY_AFTER_MAX_S)
			return -1;
		return (long)(s * 1000);
	}
	/* IMF-fixdate, the only HTTP-date form senders may generate (RFC 9110). */
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *end = strptime(p, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end)
		return -1;
	while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
		end++;
	if (*end)
		return -1;
	int64_t at = (int64_t)timegm(&tm);
	if (at <= now_s)
		return 0;
	if (at - now_s > RETRY_AFTER_MAX_S)
		return -1;
	return (long)((at - now_s) * 1000);
}

void notify_bucket_init(struct notify_bucket *b, double rate, double burst, int64_t now_ms)
{
	b->rate = rate > 0 ? rate : 1;
	b->burst = burst >= 1 ? burst : 1;
	b->tokens = b->burst;
	b->last_ms = now_ms;
}

static void refill(struct notify_bucket *b, int64_t now_ms)
{
	if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * b->rate / 1000.0;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->last_ms = now_ms;
	}
}

int notify_bucket_take(struct notify_bucket *b, int64_t now_ms)
{
	refill(b, now_ms);
	if (b->tokens < 1.0)
		return 0;
	b->tokens -= 1.0;
	return 1;
}

long notify_bucket_wait_ms(struct notify_bucket *b, int64_t now_ms)
{
	refill(b, now_ms);
	if (b->tokens >= 1.0)
		return 0;
	double ms = (1.0 - b->tokens) * 1000.0 / b->rate;
	return (long)ms + 1;
}

void notify_breaker_init(struct notify_breaker *b, int threshold, long open_ms)
{
	memset(b, 0, sizeof *b);
	b->threshold = threshold > 0 ? threshold : 1;
	b->open_ms = open_ms > 0 ? open_ms : 1;
}

enum notify_br_verdict notify_breaker_allow(struct notify_breaker *b, int64_t now_ms)
{
	switch (b->state) {
	case NOTIFY_BR_CLOSED: return NOTIFY_BR_ALLOW;
	case NOTIFY_BR_OPEN:
		if (now_ms - b->opened_ms < b->open_ms)
			return NOTIFY_BR_REJECT;
		b->state = NOTIFY_BR_HALF_OPEN;
		b->probing = 1;
		return NOTIFY_BR_ALLOW;
	case NOTIFY_BR_HALF_OPEN:
		if (b->probing)
			return NOTIFY_BR_WAIT;
		b->probing = 1;
		return NOTIFY_BR_ALLOW;
	}
	return NOTIFY_BR_REJECT;
}

void notify_breaker_result(struct notify_breaker *b, int ok, int64_t now_ms)
{
	if (ok) {
		b->state = NOTIFY_BR_CLOSED;
		b->failures = 0;
		b->probing = 0;
		return;
	}
	b->failures++;
	/* A failed probe re-opens at once; in closed state the threshold counts. A
	 * failure reported while already open (a request started before it opened)
	 * does not extend the open period. */
	if (b->state == NOTIFY_BR_HALF_OPEN ||
	    (b->state == NOTIFY_BR_CLOSED && b->failures >= b->threshold)) {
		b->state = NOTIFY_BR_OPEN;
		b->opened_ms = now_ms;
		b->probing = 0;
	}
}

const char *notify_breaker_str(enum notify_br_state s)
{
	switch (s) {
	case NOTIFY_BR_CLOSED: return "closed";
	case NOTIFY_BR_HALF_OPEN: return "half_open";
	case NOTIFY_BR_OPEN: return "open";
	}
	return "unknown";
}
