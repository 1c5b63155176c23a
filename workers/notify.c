/*
 * notify.c - the notify.webhook workload: deliver subscribed events
 * (policies/notifications.json) to webhooks, Slack and Discord.
 *
 * Per batch: match each claimed event to its targets, render one job per
 * event x target with a stable delivery id, claim the delivery ids in Redis
 * (idem, namespace "notify.webhook.delivery": a delivery done before a crash
 * is never sent again), send everything concurrently (notify_send.c), mark
 * delivered ids done. An event is done when every target got it; a target
 * that spent its retry budget (or whose circuit is open) dead-letters the
 * event through the loop's DLQ with the target and reason; a delivery cut
 * by the batch deadline releases its claim and the event is redelivered
 * (its delivered targets are skipped as duplicates).
 *
 * Without a Kafka producer (the CLI's sfk decide / replay --shadow) the
 * workload is a dry run: it matches and renders, and the decision lists the
 * deliveries it would make; nothing is claimed or sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idem.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "notify_relay.h"
#include "notify_send.h"
#include "workload.h"
#include "xmem.h"

#ifndef SFK_VERSION
#define SFK_VERSION "dev"
#endif

#define NOTIFY_IDEM_NS "notify.webhook.delivery"

static const char *g_policy_path, *g_schema_path;
static long long g_deadline_ms;
static bool g_relay;

static const struct config_entry notify_config[] = {
        {"notify-policy", "SFK_NOTIFY_POLICY", CONFIG_STRING, "policies/notifications.json", 0,
         "notify.webhook: subscriptions and targets", .dest = &g_policy_path},
        {"notify-policy-schema", "SFK_NOTIFY_POLICY_SCHEMA", CONFIG_STRING,
         "schemas/notifications.schema.json", 0, "notify.webhook: JSON Schema of the policy",
         .dest = &g_schema_path},
        {"notify-batch-deadline", "SFK_NOTIFY_BATCH_DEADLINE", CONFIG_DURATION, "20s", 0,
         "notify.webhook: longest delivery time per batch; what is left is redelivered later",
         .dest = &g_deadline_ms, .min = 100, .max = 600000},
        {"notify-relay", "SFK_NOTIFY_RELAY", CONFIG_BOOL, "true", 0,
         "notify.webhook: relay lead.sla_watch's <prefix>notify.events into the workload topic",
         .dest = &g_relay},
};

struct notify_state {
	int dry; /* no producer (sfk decide, replay --shadow): match and render only */
	struct notify_policy *policy;
	struct notify_sender *sender;
	struct idem *idem;
	struct notify_relay *relay;
	struct metric *m_total;
};

static void print_problems(json_t *problems)
{
	size_t i;
	json_t *v;
	fprintf(stderr, "notifications policy %s: %zu problem(s)\n", g_policy_path,
	        json_array_size(problems));
	json_array_foreach(problems, i, v)
	        fprintf(stderr, "notifications policy: %s\n", json_string_value(v));
}

static int notify_init(struct wl_ctx *ctx)
{
	json_t *problems = NULL;
	char err[1024] = "topic prefix too long";
	struct notify_policy *p = notify_policy_load(g_policy_path, g_schema_path, 1, &problems);
	struct notify_state *st;
	struct idem_opts io = {.lease_ms = (int)g_deadline_ms + 30000};

	if (!p) {
		print_problems(problems);
		log_error("notifications policy rejected path=%s problems=%zu", g_policy_path,
		          json_array_size(problems));
		json_decref(problems);
		return CONFIG_EXIT_FAIL;
	}
	st = xcalloc(1, sizeof *st);
	st->policy = p;
	/* Without a producer nothing can be dead-lettered, so nothing may be sent
	 * (at least once needs the DLQ): the CLI's dry runs get what would be sent. */
	st->dry = ctx->producer == NULL;
	if (st->dry) {
		ctx->state = st;
		log_info("notify.webhook dry run: nothing is sent or claimed");
		return 0;
	}
	st->idem = idem_new(ctx->redis, NOTIFY_IDEM_NS, ctx->epoch, &io, err, sizeof err);
	if (!st->idem) {
		log_error("notify idempotency error=%s", err);
		notify_policy_free(&st->policy);
		free(st);
		return 1;
	}
	if (g_relay) {
		char from[KAFKA_TOPIC_MAX + 1], to[KAFKA_TOPIC_MAX + 1], group[KAFKA_TOPIC_MAX + 1];
		const char *pre = ctx->topic_prefix ? ctx->topic_prefix : "";
		if (snprintf(from, sizeof from, "%snotify.events", pre) >= (int)sizeof from ||
		    snprintf(to, sizeof to, "%swl.%s", pre, ctx->workload_id) >= (int)sizeof to ||
		    snprintf(group, sizeof group, "%snotify.webhook.relay", pre) >=
		            (int)sizeof group ||
		    !(st->relay =
		              notify_relay_start(config_str(ctx->cfg, "kafka-bootstrap-servers"),
		                                 from, to, group, err, sizeof err))) {
			log_error("notify relay error=%s", err);
			idem_free(st->idem);
			notify_policy_free(&st->policy);
			free(st);
			return 1;
		}
	}
	st->sender = notify_sender_new(p, "sfk-notify/" SFK_VERSION);
	st->m_total = metrics_counter("sfk_notify_deliveries_total",
	                              "Notification deliveries by target and outcome (delivered, "
	                              "retry, dlq, deferred, duplicate)",
	                              "target,outcome");
	ctx->state = st;
	log_info("notifications policy loaded path=%s version=%s targets=%zu subscriptions=%zu",
	         g_policy_path, p->version, p->ntargets,
	         json_array_size(json_object_get(p->doc, "subscriptions")));
	return 0;
}

static void notify_check_config(struct config *c)
{
	json_t *problems = NULL, *v;
	size_t i;
	struct notify_policy *p = notify_policy_load(g_policy_path, g_schema_path, 1, &problems);
	json_array_foreach(problems, i, v)
	        config_problem(c, NULL, "notifications policy: %s", json_string_value(v));
	json_decref(problems);
	notify_policy_free(&p);
}

static void notify_fini(struct wl_ctx *ctx)
{
	struct notify_state *st = ctx->state;
	if (!st)
		return;
	notify_relay_stop(&st->relay);
	notify_sender_free(&st->sender);
	idem_free(st->idem);
	notify_policy_free(&st->policy);
	free(st);
	ctx->state = NULL;
}

/* Append "; target <t> (delivery <id>): <reason>" to an event's DLQ message. */
static void add_reason(struct wl_decision *d, const char *target, const char *did,
                       const char *reason)
{
	size_t l = strlen(d->errmsg);
	snprintf(d->errmsg + l, sizeof d->errmsg - l, "%starget %s (delivery %s): %s",
	         l ? "; " : "", target, did, reason);
}

static enum sfk_err notify_decide(struct wl_ctx *ctx, const struct wl_event *ev, size_t n,
                                  struct wl_decision *out)
{
	struct notify_state *st = ctx->state;
	const struct notify_policy *p = st->policy;
	size_t cap = n * (p->ntargets ? p->ntargets : 1) + 1, nj = 0, ndone = 0;
	struct notify_job *jobs = xcalloc(cap, sizeof *jobs);
	size_t *owner = xcalloc(cap, sizeof *owner); /* job -> event */
	char **bodies = xcalloc(cap, sizeof *bodies);
	const char **ids = xcalloc(cap, sizeof *ids);
	enum idem_outcome *claim = xcalloc(cap, sizeof *claim);
	int *claimed = xcalloc(cap, sizeof *claimed);
	int *busy = xcalloc(n + 1, sizeof *busy);
	enum sfk_err rc = SFK_OK;

	/* 1. jobs: one per event x matching target */
	for (size_t e = 0; e < n; e++) {
		size_t tg[NOTIFY_TARGETS_MAX];
		json_t *subs[NOTIFY_TARGETS_MAX];
		size_t nt = notify_policy_match(p, ev[e].env, tg, subs, NOTIFY_TARGETS_MAX);
		out[e].action = WL_SKIP;
		snprintf(out[e].outcome, sizeof out[e].outcome, "%s",
		         nt ? "delivered" : "no_subscriber");
		for (size_t k = 0; k < nt; k++) {
			struct notify_job *j = &jobs[nj];
			const struct notify_target *t = &p->targets[tg[k]];
			j->target = (int)tg[k];
			if (notify_delivery_id(ev[e].event_id, t->name, j->delivery_id,
			                       sizeof j->delivery_id) != 0 ||
			    !(bodies[nj] = notify_render(t, ev[e].env, subs[k], j->delivery_id,
			                                 &j->len))) {
				out[e].action = WL_DLQ;
				out[e].err = SFK_ERR_TOO_LARGE;
				snprintf(out[e].errcode, sizeof out[e].errcode, "notify_render");
				add_reason(&out[e], t->name, j->delivery_id,
				           "payload larger than NOTIFY_BODY_MAX");
				json_decref(subs[k]);
				memset(j, 0, sizeof *j);
				continue;
			}
			json_decref(subs[k]);
			j->body = bodies[nj];
			ids[nj] = j->delivery_id;
			owner[nj++] = e;
		}
	}

	if (st->dry) { /* what would be sent, as the decision */
		for (size_t e = 0; e < n; e++)
			if (out[e].action == WL_SKIP && strcmp(out[e].outcome, "delivered") == 0)
				snprintf(out[e].outcome, sizeof out[e].outcome, "would_deliver");
		for (size_t k = 0; k < nj; k++) {
			struct wl_decision *d = &out[owner[k]];
			if (!d->decision)
				d->decision = json_pack("{s:[]}", "deliveries");
			json_array_append_new(json_object_get(d->decision, "deliveries"),
			                      json_pack("{s:s, s:s, s:I}", "target",
			                                p->targets[jobs[k].target].name,
			                                "delivery_id", jobs[k].delivery_id, "bytes",
			                                (json_int_t)jobs[k].len));
		}
		goto out;
	}

	/* 2. claim every delivery id in one round trip per IDEM_BATCH_MAX */
	for (size_t off = 0; off < nj; off += IDEM_BATCH_MAX) {
		size_t m = nj - off < IDEM_BATCH_MAX ? nj - off : IDEM_BATCH_MAX;
		if (idem_claim_batch(st->idem, m, ids + off, claim + off) != SFK_OK) {
			log_warn("notify delivery claim failed error=%s", redis_errstr(ctx->redis));
			for (size_t k = 0; k < off; k++)
				if (claim[k] == IDEM_CLAIMED)
					idem_release(st->idem, ids[k]);
			rc = SFK_ERR_REDIS; /* the loop retries the whole batch */
			goto out;
		}
	}
	{
		/* Only claimed jobs are sent: build the list to hand the sender. */
		struct notify_job *send = xcalloc(nj + 1, sizeof *send);
		size_t *map = xcalloc(nj + 1, sizeof *map), ns = 0;
		for (size_t k = 0; k < nj; k++) {
			const char *tname = p->targets[jobs[k].target].name;
			if (claim[k] == IDEM_DONE) {
				metric_add(st->m_total, 1, tname, "duplicate");
				continue;
			}
			if (claim[k] == IDEM_BUSY) { /* another replica is sending it right now */
				busy[owner[k]] = 1;
				continue;
			}
			claimed[k] = 1;
			send[ns] = jobs[k];
			map[ns++] = k;
		}
		if (ns > 0)
			notify_sender_run(st->sender, send, ns, (long)g_deadline_ms, NULL);
		for (size_t q = 0; q < ns; q++)
			jobs[map[q]] = send[q];
		free(send);
		free(map);
	}

	/* 3. outcomes: done ids, released ids, decisions */
	for (size_t k = 0; k < nj; k++) {
		struct notify_job *j = &jobs[k];
		struct wl_decision *d = &out[owner[k]];
		const char *tname = p->targets[j->target].name;
		if (!claimed[k])
			continue;
		switch (j->result) {
		case NOTIFY_DELIVERED:
			ids[ndone++] = j->delivery_id; /* marked done below, in one round trip */
			log_info("notification delivered target=%s delivery=%s event=%s status=%ld "
			         "attempts=%d",
			         tname, j->delivery_id, ev[owner[k]].event_id, j->status,
			         j->attempts);
			break;
		case NOTIFY_FAILED:
			/* Released, so `sfk dlq retry` sends it again. */
			idem_release(st->idem, j->delivery_id);
			if (d->action != WL_RETRY) {
				d->action = WL_DLQ;
				if (!d->err)
					d->err = j->err ? j->err : SFK_ERR_TRANSPORT;
				snprintf(d->errcode, sizeof d->errcode, "notify_%s", j->code);
			}
			add_reason(d, tname, j->delivery_id, j->reason);
			log_warn("notification failed target=%s delivery=%s event=%s code=%s "
			         "reason=%s",
			         tname, j->delivery_id, ev[owner[k]].event_id, j->code, j->reason);
			break;
		default: /* deferred */
			idem_release(st->idem, j->delivery_id);
			busy[owner[k]] = 1;
			break;
		}
	}
	for (size_t off = 0; off < ndone; off += IDEM_BATCH_MAX) {
		size_t m = ndone - off < IDEM_BATCH_MAX ? ndone - off : IDEM_BATCH_MAX;
		enum sfk_err *res = xcalloc(m, sizeof *res);
		/* A lost "done" only means a redelivery may send again: at least once. */
		if (idem_complete_batch(st->idem, m, ids + off, res) != SFK_OK)
			log_warn("notify deliveries not marked done count=%zu error=%s", m,
			         redis_errstr(ctx->redis));
		free(res);
	}
	for (size_t e = 0; e < n; e++)
		if (busy[e]) {
			/* Retry wins over DLQ: the redelivery re-sends only what is not
			 * done, and dead-letters then if a target still fails. */
			out[e].action = WL_RETRY;
			out[e].err = SFK_ERR_BUSY;
		}
out:
	for (size_t k = 0; k < cap; k++)
		free(bodies[k]);
	free(bodies);
	free(jobs);
	free(owner);
	free(ids);
	free(claim);
	free(claimed);
	free(busy);
	return rc;
}

const struct workload_ops notify_ops = {
        .id = "notify.webhook",
        .config = notify_config,
        .nconfig = sizeof notify_config / sizeof notify_config[0],
        .init = notify_init,
        .decide = notify_decide,
        .fini = notify_fini,
        .system_prompt = NULL,
        .check_config = notify_check_config,
};
