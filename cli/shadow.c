/*
 * shadow.c - sfk replay --shadow (shadow.h).
 *
 * Batches of up to SHADOW_BATCH records go through the workload's decide()
 * as in the worker's loop, minus the idempotency claims (every record is
 * decided, a redelivered one too), the writes, the DLQ and the flywheel. The
 * lead.route dry run reads the round-robin pointers and per-lead memos from
 * Redis without changing them, so leads the workers routed get the owner
 * they got, and the others the owner the next worker run would give them.
 */
#include "shadow.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kafka.h"
#include "krange.h"
#include "loop.h"
#include "wlrun.h"
#include "xmem.h"

#define SHADOW_BATCH      200
#define SHADOW_RETRIES    3
#define SHADOW_RECORD_MAX (4u * 1024 * 1024) /* one envelope */

struct sink {
	FILE *f;                     /* file or stdout */
	struct kafka_producer *prod; /* or a topic */
	const char *topic;
	long long lines;
};

static int emit(struct sink *s, json_t *line, const char *key, char *err, size_t len)
{
	char *txt = json_dumps(line, JSON_COMPACT);
	int rc = 0;
	if (!txt)
		return -1;
	if (s->prod) {
		if (kafka_produce(s->prod, s->topic, key, key ? strlen(key) : 0, txt, strlen(txt),
		                  NULL, 0, err, len) != SFK_OK)
			rc = -1;
	} else if (fprintf(s->f, "%s\n", txt) < 0) {
		snprintf(err, len, "write: %s", strerror(errno));
		rc = -1;
	}
	free(txt);
	if (rc == 0)
		s->lines++;
	return rc;
}

struct batch {
	rd_kafka_message_t *msg[SHADOW_BATCH];
	json_t *env[SHADOW_BATCH];
	struct wl_event ev[SHADOW_BATCH];
	struct wl_decision out[SHADOW_BATCH];
	char *key[SHADOW_BATCH];
	size_t n;
};

static void batch_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		rd_kafka_message_destroy(b->msg[i]);
		json_decref(b->env[i]);
		free(b->key[i]);
		b->msg[i] = NULL;
		b->env[i] = NULL;
		b->key[i] = NULL;
	}
	b->n = 0;
}

/* Decide one batch and emit its lines; counts into summary (outcome -> n). */
static int run_batch(struct wlrun *w, const char *workload, struct batch *b, struct sink *s,
                     json_t *outcomes, long long *parse_errors, char *err, size_t len)
{
	struct wl_event ev[SHADOW_BATCH];
	size_t idx[SHADOW_BATCH], m = 0;
	enum sfk_err e = SFK_OK;

	for (size_t i = 0; i < b->n; i++) {
		char perr[256];
		rd_kafka_message_t *msg = b->msg[i];
		json_error_t jerr;
		b->key[i] = msg->key ? xstrndup(msg->key, msg->key_len) : NULL;
		b->env[i] = msg->len <= SHADOW_RECORD_MAX
		                    ? json_loadb(msg->payload, msg->len, 0, &jerr)
		                    : NULL;
		if (!b->env[i] ||
		    loop_parse_event(b->env[i], &b->ev[i], perr, sizeof perr) != SFK_OK) {
			if (!b->env[i])
				snprintf(perr, sizeof perr, "not JSON");
			json_t *line = json_pack(
			        "{s:s, s:s, s:i, s:I, s:s?, s:s, s:s, s:{s:s, s:s}}", "workload",
			        workload, "topic", rd_kafka_topic_name(msg->rkt), "partition",
			        msg->partition, "offset", (json_int_t)msg->offset, "key", b->key[i],
			        "action", "dlq", "outcome", "parse", "error", "code", "parse",
			        "message", perr);
			(*parse_errors)++;
			int rc = emit(s, line, b->key[i], err, len);
			json_decref(line);
			if (rc)
				return -1;
			continue;
		}
		b->ev[i].topic = rd_kafka_topic_name(msg->rkt);
		b->ev[i].partition = msg->partition;
		b->ev[i].offset = msg->offset;
		b->ev[i].key = b->key[i];
		ev[m] = b->ev[i];
		idx[m++] = i;
	}
	if (m == 0)
		return 0;
	for (int attempt = 1; attempt <= SHADOW_RETRIES; attempt++) {
		e = wlrun_decide(w, ev, m, b->out);
		if (e == SFK_OK)
			break;
		wlrun_clear(b->out, m);
	}
	if (e != SFK_OK) {
		snprintf(err, len, "decide: %s (after %d attempts)", sfk_err_str(e),
		         SHADOW_RETRIES);
		return -1;
	}
	int rc = 0;
	for (size_t k = 0; k < m && rc == 0; k++) {
		json_t *line = wlrun_decision_json(workload, &ev[k], &b->out[k]);
		const char *oc = json_string_value(json_object_get(line, "outcome"));
		json_object_set_new(
		        outcomes, oc,
		        json_integer(json_integer_value(json_object_get(outcomes, oc)) + 1));
		rc = emit(s, line, b->key[idx[k]], err, len);
		json_decref(line);
	}
	wlrun_clear(b->out, m);
	return rc;
}

int shadow_run(const struct shadow_opts *o)
{
	char err[1024], topic[KAFKA_TOPIC_MAX + 1];
	struct wlrun *w = NULL;
	struct krange *k = NULL;
	struct sink s = {0};
	struct batch *b = xcalloc(1, sizeof *b);
	json_t *outcomes = json_object();
	long long events = 0, parse_errors = 0;
	int rc, status;

	snprintf(topic, sizeof topic, "%swl.%s", o->prefix, o->workload);
	if (!(w = wlrun_new(o->cfg, o->workload, o->prefix, true, o->offline, &status, err,
	                    sizeof err))) {
		fprintf(stderr, "sfk replay: %s\n", err);
		rc = status;
		goto out;
	}
	rc = CLI_FAIL;
	if (o->out_topic) {
		if (!(s.prod = kafka_producer_new(o->bootstrap, NULL, NULL, err, sizeof err))) {
			fprintf(stderr, "sfk replay: kafka producer: %s\n", err);
			goto out;
		}
		s.topic = o->out_topic;
	} else if (o->out_file) {
		if (!(s.f = fopen(o->out_file, "w"))) {
			fprintf(stderr, "sfk replay: %s: %s\n", o->out_file, strerror(errno));
			goto out;
		}
	} else
		s.f = stdout;
	if (!(k = krange_open(o->bootstrap, topic, o->from_ms, o->to_ms, o->timeout_ms, err,
	                      sizeof err))) {
		fprintf(stderr, "sfk replay: %s\n", err);
		goto out;
	}
	long long planned = krange_planned(k);
	int64_t deadline = krange_now_ms() + o->budget_ms;
	for (;;) {
		rd_kafka_message_t *m = NULL;
		int r = krange_next(k, &m, deadline, err, sizeof err);
		if (r < 0) {
			fprintf(stderr, "sfk replay: %s: %s\n", topic, err);
			goto out;
		}
		if (r == 1) {
			b->msg[b->n++] = m;
			events++;
		}
		if (b->n == SHADOW_BATCH || (r == 0 && b->n > 0)) {
			int br = run_batch(w, o->workload, b, &s, outcomes, &parse_errors, err,
			                   sizeof err);
			batch_clear(b);
			if (br) {
				fprintf(stderr, "sfk replay: %s\n", err);
				goto out;
			}
			if (cli_stderr_tty() && planned > 0)
				fprintf(stderr, "\rshadow: %lld/%lld", events, planned);
		}
		if (r == 0)
			break;
	}
	if (cli_stderr_tty() && planned > 0)
		fputc('\n', stderr);
	if (s.prod && kafka_producer_flush(s.prod, 30000, err, sizeof err) != SFK_OK) {
		fprintf(stderr, "sfk replay: %s: %s\n", o->out_topic, err);
		goto out;
	}
	if (s.f && s.f != stdout && fclose(s.f) != 0) {
		s.f = NULL;
		fprintf(stderr, "sfk replay: %s: %s\n", o->out_file, strerror(errno));
		goto out;
	}
	if (s.f != stdout)
		s.f = NULL;
	{
		/* The summary: results on stdout when the decisions went elsewhere. */
		FILE *sf = s.f == stdout ? stderr : stdout;
		const char *dest = o->out_topic  ? o->out_topic
		                   : o->out_file ? o->out_file
		                                 : "stdout";
		if (o->json && sf == stdout) {
			json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:O}", "workload",
			                      o->workload, "topic", topic, "events",
			                      (json_int_t)events, "decisions", (json_int_t)s.lines,
			                      "parse_errors", (json_int_t)parse_errors, "output",
			                      dest, "outcomes", outcomes);
			cli_print_json(j);
			json_decref(j);
		} else {
			const char *oc;
			json_t *v;
			fprintf(sf,
			        "shadow %s: %lld record(s) of %s, %lld decision line(s) to %s\n",
			        o->workload, events, topic, s.lines, dest);
			json_object_foreach(outcomes, oc, v)
			        fprintf(sf, "  %-16s %lld\n", oc, (long long)json_integer_value(v));
			if (parse_errors)
				fprintf(sf, "  %-16s %lld\n", "unparseable", parse_errors);
		}
		fprintf(stderr, "shadow: nothing written to Salesforce or Redis\n");
	}
	rc = CLI_OK;
out:
	batch_clear(b);
	free(b);
	if (s.f && s.f != stdout)
		fclose(s.f);
	kafka_producer_destroy(&s.prod);
	krange_free(&k);
	wlrun_free(&w);
	json_decref(outcomes);
	return rc;
}
