#!/usr/bin/env bash
# it_worker_resync: Leads whose creation the change stream lost still get
# routed and a template. The bridge is stopped, two Leads are created, and the
# sim clock moves past the 72 h event retention: at restart the checkpoint's
# replay id is no longer valid, the bridge reads the Leads back (SNAPSHOT
# envelopes, flags.resynced) and fans them out. lead.route routes the two new
# Leads and outreach.template_suggest suggests for them. Read-back records carry
# no changeOrigin: one last modified by our integration user is an echo and is
# never fanned out; a Lead routed before the outage and edited since by a rep
# comes back as a SNAPSHOT the workers skip (already routed / suggested).
# Starts its own sfk-sim and Redis (it moves the sim clock, counts writes);
# uses the shared broker with per-run topic names.
set -euo pipefail
NAME=it_worker_resync
. "$SFK_SOURCE_DIR/tests/it/lib/pipeline.sh"
it_require sfk-bridge sfk-worker sfk-sim -- kcat jq curl
it_need_kafka
it_private_sim
it_pipeline_env itwrs
export SFK_BRIDGE_CHANNELS=/data/LeadChangeEvent

field() { # field ID FIELD: a Lead's field, "null" when unset
	ctl GET "/sim/records/Lead/$1" | jq -r --arg f "$2" '.[$f] // "null"'
}
writes() { ctl GET /sim/stats | jq -r --arg id "$1" '.writes[$id] // 0'; }
# Changes are made as a sales rep: the control API's default user is our
# integration user (SF_USERNAME), whose changes are echoes.
rep=$(ctl GET /sim/org | jq -r --arg me "$SF_USERNAME" \
	'[.User[] | select(.Username != $me and .IsActive)][0].Id')
[[ $rep == 005* ]] || fail "no other active user in the sim: $rep"
# Created by the rep into a queue (as web-to-lead does): a user-owned Lead is left alone.
queue=$(ctl GET /sim/org | jq -r '[.Group[] | select(.Type == "Queue")][0].Id')
[[ $queue == 00G* ]] || fail "no queue in the sim: $queue"
new_lead() { # new_lead NAME: a Lead the policy routes (US, SMB) with an intent
	ctl POST "/sim/records/Lead?user=$rep" "{\"LastName\":\"$1\",\"Company\":\"$1 Co\",\"Country\":\"US\",\"OwnerId\":\"$queue\",
		\"NumberOfEmployees\":40,\"Email\":\"$1@example.test\",
		\"Description\":\"Can we get a demo of the product next week?\"}" | jq -r .id
}
set_ok() { [ "$(field "$1" "$2")" != null ]; }
outcome() { # outcome LOGNAME OUTCOME: that worker's sfk_decisions_total for it
	curl -sf "http://127.0.0.1:$(admin_port "$1")/metrics" |
		awk -v o="outcome=\"$2\"" '/^sfk_decisions_total\{/ && index($0, o) {s += $2} END {print s + 0}'
}
snapshots() { # snapshots ID [TOPIC]: SNAPSHOT envelopes of a record (default cdc.lead)
	kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "${P}${2:-cdc.lead}" -e -q -X isolation.level=read_committed \
		-f '%k\t%s\n' 2>/dev/null | grep "^$1	" | grep -c '"change_type":"SNAPSHOT"' || true
}

start bridge "$SFK_BIN_DIR/sfk-bridge"
BPID=${PIDS[-1]}
bridge_subscribed 1 30
start route "$SFK_BIN_DIR/sfk-worker" --workload lead.route
start tpl "$SFK_BIN_DIR/sfk-worker" --workload outreach.template_suggest

A=$(new_lead Alpha)
E=$(new_lead Echo)
for l in "$A" "$E"; do
	until_true 60 "$l routed" set_ok "$l" Owner_Assigned_At__c
	until_true 60 "$l's template" set_ok "$l" Template_Recommended__c
done
# Alpha is edited by a rep afterwards; Echo was last modified by our workers.
ctl PATCH "/sim/records/Lead/$A?user=$rep" '{"Title":"VP Sales"}' >/dev/null
wa=$(writes "$A")
we=$(writes "$E")
pass "before the outage: Alpha and Echo routed and suggested"

# The outage: the bridge stops, Leads are created, the retention passes.
kill -TERM "$BPID"
wait "$BPID" 2>/dev/null || fail "sfk-bridge did not stop cleanly"
forget_pid "$BPID"
B=$(new_lead Bravo)
C=$(new_lead Charlie)
ctl POST /sim/clock '{"advance_ms":262800000}' >/dev/null # 73 h
start bridge2 "$SFK_BIN_DIR/sfk-bridge"
wait_log "$WORK/bridge2.log" '"msg":"replay id no longer valid"' 60 ||
	fail "the restarted bridge did not find its replay id expired"
for l in "$B" "$C"; do
	until_true 90 "$l routed after the resync" set_ok "$l" Owner_Assigned_At__c
	until_true 60 "$l's template after the resync" set_ok "$l" Template_Recommended__c
	[ "$(snapshots "$l")" -ge 1 ] || fail "$l reached the workers without a SNAPSHOT"
	[ "$(writes "$l")" -le 3 ] || fail "$l written $(writes "$l") times"
done
pass "Leads created during the outage arrive as SNAPSHOTs: routed ($(field "$B" OwnerId), $(field "$C" OwnerId)) and suggested"

# Alpha (a rep's edit last): fanned out, skipped by both workers.
[ "$(snapshots "$A")" -ge 1 ] || fail "no SNAPSHOT of Alpha: the resync window missed it"
until_true 30 "Alpha's SNAPSHOT decided by lead.route" eval '[ "$(outcome route already_routed)" -ge 1 ]'
until_true 30 "Alpha's SNAPSHOT decided by the template worker" \
	eval '[ "$(outcome tpl already_suggested)" -ge 1 ]'
[ "$(writes "$A")" = "$wa" ] || fail "Alpha was written again: $(writes "$A") writes, $wa before"
pass "a Lead routed before the outage and edited since: SNAPSHOT skipped (already routed, suggested), no write"
# Echo (our write last): a SNAPSHOT on cdc.lead flagged echo, never fanned out.
[ "$(snapshots "$E")" -ge 1 ] || fail "no SNAPSHOT of Echo: the resync window missed it"
kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "${P}cdc.lead" -e -q -X isolation.level=read_committed \
	-f '%k\t%s\n' 2>/dev/null | grep "^$E	" | grep '"SNAPSHOT"' | cut -f2 |
	jq -e -s 'all(.[]; .flags.echo == true)' >/dev/null || fail "Echo's SNAPSHOT is not flagged echo"
[ "$(snapshots "$E" wl.lead.route)" = 0 ] || fail "Echo's SNAPSHOT was fanned out"
[ "$(writes "$E")" = "$we" ] || fail "Echo was written again"
pass "a Lead last modified by our own workers: SNAPSHOT flagged echo, not fanned out"
echo "$NAME: all passed"
