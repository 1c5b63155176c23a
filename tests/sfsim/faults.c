/*
 * faults.c - the fault plan behind POST /sim/faults. Rates draw from one
 * seeded PRNG under a mutex, so the same seed and the same request sequence
 * give the same faults.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "faults.h"
#include "http.h"
#include "org.h"
#include "xmem.h"

#define FAULT_PATTERN_MAX 256
/* 5xx rules a plan may hold ("errors": [...] plus the error_* shorthand). */
#define FAULT_MAX_RULES 8

struct error_rule {
	char path[FAULT_PATTERN_MAX]; /* substring of the path; "" = all */
	double rate;
	int status;
};

struct faults {
	pthread_mutex_t lock;
	uint64_t rng;
	long latency_ms;
	struct error_rule rules[FAULT_MAX_RULES];
	size_t nrules;
	int limit_forced;
	double lock_rate;
	double drop_rate;
	char drop_paths[FAULT_PATTERN_MAX];
};

int faults_init(struct sim *sim)
{
	struct faults *f = xcalloc(1, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	f->rng = sim->cfg.seed * 0x2545F4914F6CDD1Dull + 1;
	sim->faults = f;
	return 0;
}

void faults_fini(struct sim *sim)
{
	if (!sim->faults)
		return;
	pthread_mutex_destroy(&sim->faults->lock);
	free(sim->faults);
	sim->faults = NULL;
}

/* xorshift64*, uniform in [0, 1). Lock held. */
static double draw(struct faults *f)
{
	f->rng ^= f->rng >> 12;
	f->rng ^= f->rng << 25;
	f->rng ^= f->rng >> 27;
	return (double)((f->rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static int get_rate(json_t *spec, const char *key, double *out, char *errbuf, size_t errlen)
{
	json_t *v = json_object_get(spec, key);
	if (!v)
		return 0;
	if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1) {
		snprintf(errbuf, errlen, "%s must be a number in [0, 1]", key);
		return -1;
	}
	*out = json_number_value(v);
	return 0;
}

/* The shorthand error_rate/error_status/error_paths is rule 0, then
 * "errors": [{"path", "rate", "status"}, ...]; the first match wins. */
static int parse_rules(json_t *spec, struct faults *n, char *errbuf, size_t errlen)
{
	json_t *rules = json_array();
	json_t *extra = json_object_get(spec, "errors");
	size_t i;
	json_t *r;
	int rc = -1;

	if (json_object_get(spec, "error_rate"))
		json_array_append_new(rules,
		                      json_pack("{s:O?,s:O?,s:O?}", "rate",
		                                json_object_get(spec, "error_rate"), "status",
		                                json_object_get(spec, "error_status"), "path",
		                                json_object_get(spec, "error_paths")));
	if (extra && !json_is_array(extra)) {
		snprintf(errbuf, errlen, "errors must be an array");
		goto out;
	}
	if (extra)
		json_array_extend(rules, extra);
	if (json_array_size(rules) > FAULT_MAX_RULES) {
		snprintf(errbuf, errlen, "at most %d error rules", FAULT_MAX_RULES);
		goto out;
	}
	json_array_foreach(rules, i, r)
	{
		struct error_rule *er = &n->rules[n->nrules];
		json_t *st = json_object_get(r, "status");
		json_t *path = json_object_get(r, "path");
		int bad_status = st && !json_is_null(st) &&
		                 (!json_is_integer(st) || json_integer_value(st) < 500 ||
		                  json_integer_value(st) > 599);
		er->status = 503;
		if (!json_is_object(r) || get_rate(r, "rate", &er->rate, errbuf, errlen) < 0 ||
		    bad_status || (path && !json_is_null(path) && !json_is_string(path))) {
			snprintf(errbuf, errlen,
			         "error rule %zu: want {\"rate\": 0..1, \"status\": 5xx, \"path\": "
			         "substring}",
			         i);
			goto out;
		}
		if (json_is_integer(st))
			er->status = (int)json_integer_value(st);
		snprintf(er->path, sizeof(er->path), "%s",
		         json_is_string(path) ? json_string_value(path) : "");
		n->nrules++;
	}
	rc = 0;
out:
	json_decref(rules);
	return rc;
}

int faults_set(struct sim *sim, json_t *spec, char *errbuf, size_t errlen)
{
	struct faults *f = sim->faults;
	struct faults n;
	json_t *v;

	if (!json_is_object(spec)) {
		snprintf(errbuf, errlen, "body must be a JSON object");
		return -1;
	}
	memset(&n, 0, sizeof(n));
	pthread_mutex_lock(&f->lock);
	n.rng = f->rng;
	/* A new plan replaces the old one entirely (absent keys = off). */
	n.latency_ms = 0;
	n.nrules = 0;
	n.limit_forced = 0;
	n.lock_rate = 0;
	n.drop_rate = 0;
	n.drop_paths[0] = '\0';
	pthread_mutex_unlock(&f->lock);

	if ((v = json_object_get(spec, "latency_ms"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 120000) {
			snprintf(errbuf, errlen, "latency_ms must be an integer in [0, 120000]");
			return -1;
		}
		n.latency_ms = (long)json_integer_value(v);
	}
	if (get_rate(spec, "lock_rate", &n.lock_rate, errbuf, errlen) < 0 ||
	    get_rate(spec, "drop_rate", &n.drop_rate, errbuf, errlen) < 0)
		return -1;
	if (parse_rules(spec, &n, errbuf, errlen) < 0)
		return -1;
	if ((v = json_object_get(spec, "drop_paths")) && json_is_string(v))
		snprintf(n.drop_paths, sizeof(n.drop_paths), "%s", json_string_value(v));
	n.limit_forced = json_is_true(json_object_get(spec, "request_limit_exceeded"));
	if ((v = json_object_get(spec, "seed")) && json_is_integer(v))
		n.rng = (uint64_t)json_integer_value(v) * 0x2545F4914F6CDD1Dull + 1;
	if ((v = json_object_get(spec, "gap_next"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			snprintf(errbuf, errlen, "gap_next must be a non-negative integer");
			return -1;
		}
		atomic_store(&sim->gap_next, (int)json_integer_value(v));
	}

	pthread_mutex_lock(&f->lock);
	f->rng = n.rng;
	f->latency_ms = n.latency_ms;
	memcpy(f->rules, n.rules, sizeof(f->rules));
	f->nrules = n.nrules;
	f->limit_forced = n.limit_forced;
	f->lock_rate = n.lock_rate;
	f->drop_rate = n.drop_rate;
	memcpy(f->drop_paths, n.drop_paths, sizeof(f->drop_paths));
	pthread_mutex_unlock(&f->lock);

	if (json_is_true(json_object_get(spec, "expire_sessions")))
		auth_expire_all(sim);
	if (json_is_true(json_object_get(spec, "forget_cometd_clients")) && sim->forget_clients)
		sim->forget_clients(sim, sim->forget_clients_ctx);
	return 0;
}

json_t *faults_get(struct sim *sim)
{
	struct faults *f = sim->faults;
	json_t *rules = json_array();
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->nrules; i++)
		json_array_append_new(rules,
		                      json_pack("{s:s,s:f,s:i}", "path", f->rules[i].path, "rate",
		                                f->rules[i].rate, "status", f->rules[i].status));
	json_t *j = json_pack("{s:I,s:o,s:b,s:f,s:f,s:s,s:i}", "latency_ms",
	                      (json_int_t)f->latency_ms, "errors", rules, "request_limit_exceeded",
	                      f->limit_forced, "lock_rate", f->lock_rate, "drop_rate", f->drop_rate,
	                      "drop_paths", f->drop_paths, "gap_next", atomic_load(&sim->gap_next));
	pthread_mutex_unlock(&f->lock);
	return j;
}

int faults_before(struct sim *sim, const struct sim_req *req, struct sim_resp *resp)
{
	struct faults *f = sim->faults;
	long latency;
	int error = 0, drop = 0, status;

	pthread_mutex_lock(&f->lock);
	latency = f->latency_ms;
	status = 503;
	for (size_t i = 0; i < f->nrules && !error; i++) {
		const struct error_rule *r = &f->rules[i];
		if (r->rate > 0 && (!r->path[0] || strstr(req->path, r->path)) &&
		    draw(f) < r->rate) {
			error = 1;
			status = r->status;
		}
	}
	if (!error && f->drop_rate > 0 && (!f->drop_paths[0] || strstr(req->path, f->drop_paths)))
		drop = draw(f) < f->drop_rate;
	pthread_mutex_unlock(&f->lock);

	if (latency > 0) {
		struct timespec ts = {latency / 1000, (latency % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (error) {
		if (status == 503)
			sim_resp_error(resp, 503, "SERVER_UNAVAILABLE",
			               "Server temporarily unavailable. Please try again later.",
			               NULL);
		else
			sim_resp_error(
			        resp, status, "UNKNOWN_EXCEPTION",
			        "An unexpected error occurred. Please include this ErrorId if you "
			        "contact support: 1234567890-12345 (-1234567890)",
			        NULL);
		return 1;
	}
	/* A dropped connection still lets the handler run: the effect happens
	 * and the answer is lost half-way, as when a proxy resets mid-response. */
	if (drop)
		resp->drop = 1;
	return 0;
}

int faults_limit_forced(struct sim *sim)
{
	struct faults *f = sim->faults;
	pthread_mutex_lock(&f->lock);
	int on = f->limit_forced;
	pthread_mutex_unlock(&f->lock);
	return on;
}

int faults_lock_row(struct sim *sim)
{
	struct faults *f = sim->faults;
	int hit = 0;
	pthread_mutex_lock(&f->lock);
	if (f->lock_rate > 0)
		hit = draw(f) < f->lock_rate;
	pthread_mutex_unlock(&f->lock);
	return hit;
}
