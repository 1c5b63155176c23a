/*
 * notify_send.c - the delivery engine of notify.webhook (see notify_send.h).
 *
 * One thread, one curl multi handle. Each turn: for every target, start the
 * ready jobs of its queue (in order) while its in-flight cap, token bucket
 * and circuit allow; then wait on the multi handle until a transfer ends or
 * the next timer (a retry, a token, the deadline) is due. Targets never wait
 * for each other: a target's retries and slow answers only occupy its own
 * queue. Nothing logged here carries a URL or secret (URLs may hold tokens).
 */
#include "notify_send.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "xmem.h"

#define TURN_MAX_MS 100 /* longest wait in one turn (stop flag, deadline) */

struct tstate {
	struct notify_bucket bucket;
	struct notify_breaker breaker;
	int inflight;
};

struct xfer {
	struct notify_job *job;
	CURL *easy;
	struct curl_slist *hdrs;
	char resp[NOTIFY_RESP_MAX + 1];
	size_t resp_len;
	char retry_after[NOTIFY_HDRVAL_MAX];
};

struct notify_sender {
	const struct notify_policy *p;
	const char *ua;
	CURLM *multi;
	struct tstate *ts;
	unsigned seed;
	struct metric *m_total, *m_latency, *m_circuit;
};

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

struct notify_sender *notify_sender_new(const struct notify_policy *p, const char *user_agent)
{
	struct notify_sender *s = xcalloc(1, sizeof *s);
	int64_t now = mono_ms();

	s->p = p;
	s->ua = user_agent ? user_agent : "sfk-notify";
	s->multi = curl_multi_init();
	if (!s->multi) {
		log_error("curl_multi_init failed");
		abort(); /* out of memory in libcurl: like xmalloc */
	}
	s->ts = xcalloc(p->ntargets + 1, sizeof *s->ts);
	s->seed = (unsigned)now ^ (unsigned)(uintptr_t)s;
	s->m_total = metrics_counter("sfk_notify_deliveries_total",
	                             "Notification deliveries by target and outcome (delivered, "
	                             "retry, dlq, deferred, duplicate)",
	                             "target,outcome");
	s->m_latency = metrics_histogram("sfk_notify_delivery_latency_seconds",
	                                 "First attempt to 2xx answer of a notification", "target",
	                                 metrics_latency_buckets, metrics_latency_nbuckets);
	s->m_circuit = metrics_gauge("sfk_notify_circuit_state",
	                             "Circuit breaker per target: 0 closed, 1 half-open, 2 open",
	                             "target");
	for (size_t i = 0; i < p->ntargets; i++) {
		const struct notify_target *t = &p->targets[i];
		notify_bucket_init(&s->ts[i].bucket, t->rate_per_s, t->burst, now);
		notify_breaker_init(&s->ts[i].breaker, t->breaker_failures, t->breaker_open_ms);
		metric_set(s->m_circuit, 0, t->name);
	}
	return s;
}

void notify_sender_free(struct notify_sender **ps)
{
	struct notify_sender *s = ps ? *ps : NULL;
	if (!s)
		return;
	curl_multi_cleanup(s->multi);
	free(s->ts);
	free(s);
	*ps = NULL;
}

enum notify_br_state notify_sender_circuit(const struct notify_sender *s, int target)
{
	return s->ts[target].breaker.state;
}

static size_t on_body(char *ptr, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n, room = NOTIFY_RESP_MAX - x->resp_len;
	size_t take = len < room ? len : room; /* the rest is read and dropped */
	memcpy(x->resp + x->resp_len, ptr, take);
	x->resp_len += take;
	x->resp[x->resp_len] = '\0';
	return len;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;
	static const char name[] = "retry-after:";
	if (len > sizeof name - 1 && strncasecmp(buf, name, sizeof name - 1) == 0) {
		size_t v = len - (sizeof name - 1);
		if (v >= sizeof x->retry_after)
			v = sizeof x->retry_after - 1;
		memcpy(x->retry_after, buf + sizeof name - 1, v);
		x->retry_after[v] = '\0';
		char *cr = strpbrk(x->retry_after, "\r\n");
		if (cr)
			*cr = '\0';
	}
	return len;
}

static void set_circuit_metric(struct notify_sender *s, int ti)
{
	metric_set(s->m_circuit, (double)s->ts[ti].breaker.state, s->p->targets[ti].name);
}

static void add_header(struct curl_slist **h, const char *name, const char *v)
{
	char line[256];
	snprintf(line, sizeof line, "%s: %s", name, v);
	*h = curl_slist_append(*h, line);
}

static struct xfer *start(struct notify_sender *s, struct notify_job *j, int64_t now)
{
	const struct notify_target *t = &s->p->targets[j->target];
	struct xfer *x = xcalloc(1, sizeof *x);
	char ts[24], sig[NOTIFY_SIG_MAX];

	x->job = j;
	x->easy = curl_easy_init();
	if (!x->easy) {
		free(x);
		return NULL;
	}
	snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
	x->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	add_header(&x->hdrs, "X-Sfk-Delivery", j->delivery_id);
	if (t->kind == NOTIFY_WEBHOOK) {
		add_header(&x->hdrs, "X-Sfk-Timestamp", ts);
		if (t->secret && notify_sign(t->secret, ts, j->body, j->len, sig, sizeof sig) == 0)
			add_header(&x->hdrs, "X-Sfk-Signature", sig);
	}
	x->hdrs = curl_slist_append(x->hdrs, "Expect:"); /* no 100-continue round trip */
	curl_easy_setopt(x->easy, CURLOPT_URL, t->url);
	curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, j->body);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->len);
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(x->easy, CURLOPT_USERAGENT, s->ua);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, t->timeout_ms);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS,
	                 t->timeout_ms < 5000 ? t->timeout_ms : 5000L);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	if (curl_multi_add_handle(s->multi, x->easy) != CURLM_OK) {
		curl_slist_free_all(x->hdrs);
		curl_easy_cleanup(x->easy);
		free(x);
		return NULL;
	}
	if (!j->first_ms)
		j->first_ms = now;
	j->attempts++;
	j->inflight = 1;
	s->ts[j->target].inflight++;
	return x;
}

static void xfer_free(struct notify_sender *s, struct xfer *x)
{
	curl_multi_remove_handle(s->multi, x->easy);
	curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->hdrs);
	free(x);
}

/* A transfer ended: decide delivered / retry later / failed. */
static void finish(struct notify_sender *s, struct xfer *x, CURLcode cc, int64_t now)
{
	struct notify_job *j = x->job;
	const struct notify_target *t = &s->p->targets[j->target];
	struct tstate *ts = &s->ts[j->target];
	long status = 0;
	int retry, healthy;
	long wait = -1;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	j->inflight = 0;
	ts->inflight--;
	j->status = cc == CURLE_OK ? status : 0;
	if (cc == CURLE_OK && status >= 200 && status < 300) {
		j->result = NOTIFY_DELIVERED;
		j->latency_s = (double)(now - j->first_ms) / 1000.0;
		notify_breaker_result(&ts->breaker, 1, now);
		set_circuit_metric(s, j->target);
		metric_add(s->m_total, 1, t->name, "delivered");
		metric_observe(s->m_latency, j->latency_s, t->name);
		return;
	}
	if (cc != CURLE_OK) {
		retry = 1;
		healthy = 0;
		if (cc == CURLE_OPERATION_TIMEDOUT) {
			j->err = SFK_ERR_TIMEOUT;
			snprintf(j->code, sizeof j->code, "timeout");
			snprintf(j->reason, sizeof j->reason,
			         "no answer within %ld ms (attempt %d)", t->timeout_ms,
			         j->attempts);
		} else {
			j->err = SFK_ERR_TRANSPORT;
			snprintf(j->code, sizeof j->code, "transport");
			snprintf(j->reason, sizeof j->reason, "%s (attempt %d)",
			         curl_easy_strerror(cc), j->attempts);
		}
	} else {
		/* 429: the target is fine but wants us slower (not a breaker failure);
		 * 408 and 5xx: retry; any other status is the target refusing this
		 * payload (bad signature, gone): retrying would not help. */
		retry = status == 429 || status == 408 || status >= 500;
		healthy = status == 429 || (status >= 300 && status < 500 && status != 408);
		j->err = retry ? SFK_ERR_HTTP_5XX : SFK_ERR_INVALID;
		snprintf(j->reason, sizeof j->reason, "HTTP %ld (attempt %d)", status, j->attempts);
		snprintf(j->code, sizeof j->code, "http_%ld", status);
		if (status == 429)
			j->retries_429++;
		if (x->retry_after[0] && (status == 429 || status == 503))
			wait = notify_retry_after_ms(x->retry_after, (int64_t)time(NULL));
	}
	if (ts->breaker.state != NOTIFY_BR_CLOSED || !healthy)
		notify_breaker_result(&ts->breaker, healthy, now);
	set_circuit_metric(s, j->target);
	if (!retry || j->attempts >= t->max_attempts) {
		if (retry) {
			size_t l = strlen(j->reason);
			snprintf(j->reason + l, sizeof j->reason - l, "; retry budget of %d spent",
			         t->max_attempts);
		}
		j->result = NOTIFY_FAILED;
		return;
	}
	long back = notify_backoff_ms(t->backoff_base_ms, t->backoff_max_ms, j->attempts,
	                              (unsigned)rand_r(&s->seed));
	if (wait >= 0) /* the server said when: that, not our guess */
		back = wait < t->retry_after_max_ms ? wait : t->retry_after_max_ms;
	j->next_ms = now + back;
	metric_add(s->m_total, 1, t->name, "retry");
	log_info("notification retry target=%s delivery=%s status=%ld attempt=%d wait_ms=%ld",
	         t->name, j->delivery_id, j->status, j->attempts, back);
}

/* Start what may start now; returns ms until something may (a timer). */
static long pump(struct notify_sender *s, struct notify_job *jobs, size_t n, struct xfer **xs,
                 int64_t now)
{
	long wake = TURN_MAX_MS;
	for (size_t ti = 0; ti < s->p->ntargets; ti++) {
		const struct notify_target *t = &s->p->targets[ti];
		struct tstate *ts = &s->ts[ti];
		for (size_t k = 0; k < n; k++) {
			struct notify_job *j = &jobs[k];
			if (j->target != (int)ti || j->result != NOTIFY_PENDING || j->inflight)
				continue;
			if (j->next_ms > now) {
				if (j->next_ms - now < wake)
					wake = (long)(j->next_ms - now);
				continue;
			}
			if (ts->inflight >= t->max_inflight)
				break;
			enum notify_br_verdict v = notify_breaker_allow(&ts->breaker, now);
			set_circuit_metric(s, (int)ti);
			if (v == NOTIFY_BR_WAIT)
				break;
			if (v == NOTIFY_BR_REJECT) {
				/* Fail fast: a dead target must not hold the batch for its
				 * whole retry budget per event. */
				j->result = NOTIFY_FAILED;
				j->err = SFK_ERR_TRANSPORT;
				if (j->attempts == 0)
					snprintf(
					        j->reason, sizeof j->reason,
					        "circuit open after %d consecutive failures of the "
					        "target; not attempted",
					        ts->breaker.failures);
				else
					snprintf(
					        j->reason, sizeof j->reason,
					        "circuit open after %d consecutive failures of the "
					        "target; %d attempts, last: %s",
					        ts->breaker.failures, j->attempts, j->code);
				snprintf(j->code, sizeof j->code, "circuit_open");
				continue;
			}
			if (!notify_bucket_take(&ts->bucket, now)) {
				/* give the half-open probe back: it did not go */
				if (ts->breaker.state == NOTIFY_BR_HALF_OPEN)
					ts->breaker.probing = 0;
				long w = notify_bucket_wait_ms(&ts->bucket, now);
				if (w < wake)
					wake = w;
				break;
			}
			struct xfer *x = start(s, j, now);
			if (!x) {
				j->result = NOTIFY_FAILED;
				j->err = SFK_ERR_INTERNAL;
				snprintf(j->code, sizeof j->code, "curl");
				snprintf(j->reason, sizeof j->reason, "could not start a transfer");
				continue;
			}
			xs[k] = x;
		}
	}
	return wake > 0 ? wake : 1;
}

void notify_sender_run(struct notify_sender *s, struct notify_job *jobs, size_t n, long deadline_ms,
                       volatile sig_atomic_t *stop)
{
	struct xfer **xs = xcalloc(n + 1, sizeof *xs);
	int64_t t0 = mono_ms();

	for (;;) {
		int64_t now = mono_ms();
		size_t open = 0, inflight = 0;
		for (size_t k = 0; k < n; k++) {
			open += jobs[k].result == NOTIFY_PENDING;
			inflight += jobs[k].inflight;
		}
		if (open == 0)
			break;
		if (now - t0 >= deadline_ms || (stop && *stop)) {
			for (size_t k = 0; k < n; k++) {
				struct notify_job *j = &jobs[k];
				if (j->result != NOTIFY_PENDING)
					continue;
				if (xs[k]) {
					s->ts[j->target].inflight--;
					j->inflight = 0;
					xfer_free(s, xs[k]);
					xs[k] = NULL;
				}
				j->result = NOTIFY_DEFERRED;
				if (!j->err)
					j->err = SFK_ERR_TIMEOUT;
				if (!j->code[0])
					snprintf(j->code, sizeof j->code, "deferred");
				metric_add(s->m_total, 1, s->p->targets[j->target].name,
				           "deferred");
			}
			/* a half-open probe aborted here must not wedge the breaker */
			for (size_t ti = 0; ti < s->p->ntargets; ti++)
				s->ts[ti].breaker.probing = 0;
			break;
		}
		long wake = pump(s, jobs, n, xs, now);
		long left = (long)(deadline_ms - (now - t0));
		if (wake > left)
			wake = left > 0 ? left : 1;
		int running = 0, numfds = 0;
		curl_multi_perform(s->multi, &running);
		curl_multi_poll(s->multi, NULL, 0, (int)wake, &numfds);
		curl_multi_perform(s->multi, &running);
		CURLMsg *m;
		int q;
		while ((m = curl_multi_info_read(s->multi, &q))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			struct xfer *x = NULL;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			CURLcode cc = m->data.result;
			size_t k = (size_t)(x->job - jobs);
			finish(s, x, cc, mono_ms());
			xfer_free(s, x);
			xs[k] = NULL;
		}
		(void)inflight;
	}
	for (size_t k = 0; k < n; k++)
		if (jobs[k].result == NOTIFY_FAILED)
			metric_add(s->m_total, 1, s->p->targets[jobs[k].target].name, "dlq");
	free(xs);
}
