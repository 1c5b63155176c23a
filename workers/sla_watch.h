/*
 * sla_watch.h - lead.sla_watch: SLA deadlines of routed Leads and their escalation.
 *
 * lead.route arms a deadline after it wrote an owner, lead.first_touch_detect
 * clears it once a first response is written; the sla_watch workload claims
 * due deadlines (one replica each, leased) and escalates: SLA_Breached__c,
 * SLA_Escalations__c, optional reassignment, an event on <prefix>notify.events
 * and a flywheel record. Redis keys: rkeys.h (sfk:sla:*).
 */
#ifndef SFK_SLA_WATCH_H
#define SFK_SLA_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "redis.h"
#include "route.h"
#include "workload.h"

#define SLA_KEY_MAX      128 /* one sfk:sla:* key */
#define SLA_HASH_TTL_S   (35 * 24 * 3600)
#define SLA_NOTIFY_TOPIC "notify.events" /* after the topic prefix */

/*
 * lead.route's hook, after a successful owner write: arm the Lead's deadline.
 * decision (borrowed) is route's decision JSON (segment, region, pool,
 * sla_minutes, policy_version), write (borrowed) the record written (id,
 * OwnerId, Owner_Assigned_At__c). Business hours come from the routing policy
 * file (SFK_ROUTING_POLICY), read once per process. Errors are logged: a
 * deadline that could not be armed is rebuilt from Salesforce only after a
 * Redis wipe, so it is counted (sfk_sla_arm_failures_total).
 * Both hooks are weak: unit tests that compile route.c / first_touch.c alone
 * (without this file) see NULL and the callers skip them.
 */
void sla_arm_routed(struct wl_ctx *ctx, json_t *decision, json_t *write) __attribute__((weak));

/*
 * lead.first_touch_detect's hook: the first response of these Leads (18-char
 * ids, borrowed) is known, so their deadlines are gone. One round trip.
 * Returns SFK_OK or SFK_ERR_REDIS (a deadline left behind is dropped at
 * escalation time: sla_watch reads First_Response_At__c before acting).
 */
enum sfk_err sla_clear(struct redis *r, const char *const *leads, size_t n) __attribute__((weak));

/*
 * Defined in route.c: its weighted round robin for an escalation, memoized
 * under memo_id (instead of the Lead id), so a redelivered escalation picks
 * the same owner and never advances the pointer twice. "" when every member
 * is capped.
 */
enum sfk_err route_rr_next(struct redis *r, const struct route_policy *p,
                           const struct route_pool *pool, const char *memo_id, int64_t now_ms,
                           char owner[19]);

#endif
