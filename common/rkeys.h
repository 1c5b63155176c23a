/*
 * rkeys.h - every Redis key the project uses, in one place.
 *
 * Redis keys (DESIGN.md §4). All keys start with "sfk:"; a module that adds a
 * key adds it here first. Every key expires, except the round-robin pointers
 * and the bridge fencing counter (few, bounded by the policy / one per org).
 *
 * sfk:tok:<hash>  - the OAuth access token shared by all processes
 *     <hash>  first 16 bytes (32 hex) of SHA-256("<login URL>\n<client id>\n<username>")
 *     value   "<access token>\n<instance URL>"
 *     TTL     SF_TOKEN_TTL (default 30 min)
 *     owner   common/sf_token.c (SF_TOKEN_KEY_PREFIX). A 401 deletes the token only if it
 *             still is the one that failed (compare-and-delete, Lua).
 * sfk:tok:<hash>:lock  - single-flight mint lock (SET NX PX)
 *     value   random owner token; released by compare-and-delete (Lua)
 *     TTL     lock_ms (default 10 s)
 *
 * sfk:idem:<workload>:<epoch>:<event id>  - idempotency claim, then "done"
 *     value   owner token (32 hex chars) while claimed; the literal "done" after completion
 *     TTL     claim: lease_ms (default 30 s); done: >= the topic's retention (default 7 d)
 *     owner   common/idem.h. <epoch> is a decimal an operator bumps to re-apply history
 *             deliberately; <event id> = entity + record id + replay id [+ index].
 * sfk:idem:notify.webhook.delivery:<epoch>:<delivery id>  - one notification delivery
 *     the same idem claim/done protocol per delivery (event x target): claimed before the
 *     request, done after a 2xx, released after a failure (so `sfk dlq retry` re-sends);
 *     lease SFK_NOTIFY_BATCH_DEADLINE + 30 s. owner workers/notify.c; <delivery id> = 32 hex.
 *
 * sfk:rr:<policy version>:<pool>  - weighted round-robin pointer (proposed)
 *     value   integer, advanced with INCR; no TTL (one per pool and policy version)
 * sfk:rr:<policy version>:<pool>:cap:<YYYY-MM-DD>:<owner id>  - daily cap counter (proposed)
 *     value   integer (INCR); TTL: until the end of that day plus a margin
 *     owner   the lead.route workload: same input + policy + pointer state = same owner.
 *
 * sfk:rr:<policy version>:<pool>:lead:<lead id>  - the owner round robin gave a Lead
 *     value   owner id (18 chars); set in the same Lua call that advances the pointer
 *     TTL     8 days (>= topic retention)
 *     owner   lead.route (workers/route.c): a redelivered or re-decided Lead gets the same
 *             owner and never advances the pointer twice. The pointer and cap keys above
 *             are written by the same script: pointer INCR (no TTL), cap
 *             ":cap:<YYYY-MM-DD UTC>:<owner id>" INCR with a 2-day TTL. Cap keys are
 *             derived inside the script (single Redis, not Cluster-safe).
 *
 * sfk:ttfr:<lead id>  - earliest first response seen for a Lead
 *     value   "<epoch ms>|<source>|<user id>|<record id>" (source Task or EmailMessage; user
 *             and record id may be empty), replaced only by a strictly earlier one (Lua min
 *             over the stored value, the batch's earliest and Salesforce's First_Response_At__c)
 *     TTL     SFK_TTFR_KEY_TTL (default 30 d, >= the topic's retention), refreshed on update
 *     owner   workers/first_touch.c; <lead id> is the 18-char id (sfid_to18). A response
 *             seen before its Lead waits here until the Lead's CREATE resolves it.
 *
 * sfk:lease:bridge  - bridge leadership lease (one active bridge, hot standby) (proposed)
 *     value   "<fencing token>:<owner token>", renewed by the active bridge
 *     TTL     the lease, a few seconds
 * sfk:lease:bridge:fence  - fencing token counter (INCR on every new lease); no TTL
 *
 * sfk:tpl:sent:<lead id>  - outreach.template_suggest's send guard (one email per Lead)
 *     value   the decision id that sends; SET NX before the Simple Email Action, so two
 *             replicas or a redelivery never both send (Template_Applied__c is the durable
 *             record in Salesforce)
 *     TTL     SFK_TEMPLATE_SENT_TTL (default 30 d)
 *     owner   workers/template.c; <lead id> is the 18-char id.
 *
 * sfk:webhook:delivery:<delivery id>  - a webhook delivery (X-Sfk-Delivery), accepted once
 *     value   "claim:<owner token>" while its batch is being published; "done" after commit
 *     TTL     claim: WEBHOOK_CLAIM_LEASE_MS (2 min); done: SFK_WEBHOOK_DELIVERY_TTL (24 h)
 *     owner   bridge/webhook.c. The claim is released (compare-and-delete, Lua) when the
 *             Kafka transaction did not commit, so the sender's retry works.
 * sfk:webhook:sig:<hex HMAC>  - the same for the signature: a captured request replayed
 *             with another delivery id (the id is not signed) is refused too. Same
 *             values, TTLs and owner; claimed and released together with the delivery key.
 *
 * sfk:sla:due  - lead.sla_watch: SLA deadlines, sorted set member = Lead id (18), score = due
 *     time (epoch ms, the org's clock). Armed by lead.route after an owner write, removed by
 *     lead.first_touch_detect (first response) or by a claim. No TTL (members leave by claim).
 * sfk:sla:claimed  - deadlines being escalated: member = Lead id, score = lease expiry (ms);
 *     a claim whose lease expired (its replica died) is claimed again (Lua, with sfk:sla:due).
 * sfk:sla:lead:<lead id>  - hash: owner, segment, region, pool, sla (minutes), base (ms),
 *     attempts (escalations done), version (policy). TTL 35 d.
 * sfk:sla:ready  - marker: deadlines are complete in this Redis (value: time of the rebuild).
 *     Missing (a wiped or new Redis) -> one sla_watch replica rebuilds from Salesforce.
 * sfk:sla:rebuild:lock  - that replica's lock (SET NX PX 120 s).
 *     owner   workers/sla_watch.c (escalations' idempotency: sfk:idem:lead.sla_watch:<epoch>:
 *             sla:<lead id>:<escalation>).
 *
 * "(proposed)": no code writes the key yet; its owner settles the format and
 * updates this entry.
 */
#ifndef SFK_RKEYS_H
#define SFK_RKEYS_H

#define RKEY_PREFIX       "sfk:"
#define RKEY_TOK          "sfk:tok:"
#define RKEY_IDEM         "sfk:idem:"
#define RKEY_RR           "sfk:rr:"
#define RKEY_TTFR         "sfk:ttfr:"
#define RKEY_LEASE_BRIDGE "sfk:lease:bridge"
#define RKEY_TPL_SENT     "sfk:tpl:sent:"
/* lead.sla_watch (workers/sla_watch.c) */
#define RKEY_SLA_DUE          "sfk:sla:due"
#define RKEY_SLA_CLAIMED      "sfk:sla:claimed"
#define RKEY_SLA_LEAD         "sfk:sla:lead:"
#define RKEY_SLA_READY        "sfk:sla:ready"
#define RKEY_SLA_REBUILD_LOCK "sfk:sla:rebuild:lock"
#define RKEY_WEBHOOK_DELIVERY "sfk:webhook:delivery:"
#define RKEY_WEBHOOK_SIG      "sfk:webhook:sig:"

#endif
