#!/usr/bin/env bash
# it_worker_sla: lead.sla_watch end to end, driven by the sim clock.
#
# sfk-bridge, lead.route, lead.first_touch_detect and TWO lead.sla_watch
# replicas (SFK_SLA_TIME_URL = the sim's clock) run against a private sfk-sim +
# Redis and the suite's Kafka. First, business-hours mistakes must fail
# --check-config with their JSON paths. The routing policy is the shipped one with
# calendar SLAs (no business hours: a clock jump means the same on any
# weekday; working-time arithmetic is test_sla's) and sla_escalation
# {notify, reassign, max_escalations: 2}. Five SMB/NA Leads (pool smb_na, two
# owners) are routed:
#   - B gets a closed call Task first -> its deadline is cleared, never escalated;
#   - Redis is wiped (every key but the bridge lease) -> the replicas rebuild
#     A, C, D, E from Salesforce with due = Owner_Assigned_At__c + 60 min, not B;
#   - E's deadline and its escalation key are held as a replica that died
#     right after claiming them would leave them (leases running): E waits
#     for the leases, then one replica takes it over;
#   - an owner change on the workload topic is recorded in D's deadline;
#   - the sim clock jumps 61 min -> A, C, D, and E once its leases expired, are
#     escalated exactly once each: SLA_Breached__c, SLA_Escalations__c = 1,
#     OwnerId = the other pool owner; one Salesforce write per Lead (sim
#     stats), one sla.breach event each on <prefix>notify.events, one flywheel
#     record each (workload lead.sla_watch);
#   - another 61 min -> the second (last) escalation, owner back; the
#     deadline set is then empty (max_escalations reached);
#   - metrics summed over both replicas: 4 breaches {SMB,NA}, 8 escalations,
#     8 reassignments.
set -euo pipefail
NAME=it_worker_sla
. "$SFK_SOURCE_DIR/tests/it/lib/pipeline.sh"
it_require sfk-bridge sfk-worker sfk-sim -- kcat jq curl redis-cli
it_need_kafka
it_private_sim
it_pipeline_env itsla
: "${REDIS_URL:?the private stack did not set REDIS_URL}"

POLICY=$WORK/policy.json
jq 'del(.business_hours) | .sla_minutes = {"default": 60}
	| .sla_escalation = {"notify": true, "reassign": true, "max_escalations": 2,
	                     "notify_channels": ["sales-leads"]}' \
	"$SFK_SOURCE_DIR/policies/routing_policy.json" >"$POLICY"
export SFK_ROUTING_POLICY=$POLICY
export SFK_SLA_TIME_URL="$SF_SIM_URL/sim/clock" SFK_SLA_TICK=200ms SFK_SLA_LEASE=10s
pool=$(jq -c '[.pools[] | select(.id == "smb_na") | .members[].owner_id]' "$POLICY")
[ "$(jq length <<<"$pool")" = 2 ] || fail "the policy's smb_na pool needs two owners"

rcli() { redis-cli -u "$REDIS_URL" "$@"; }
topic() { # topic SUFFIX: committed records key<TAB>value
	kcat -b "$BROKERS" -C -t "$P$1" -o beginning -e -q -X isolation.level=read_committed \
		-f '%k\t%s\n' 2>/dev/null || true
}
lead() { ctl GET "/sim/records/Lead/$1"; }
metric_sum() { # metric_sum PREFIX: the samples starting with PREFIX, summed over the sla replicas
	local s=0 w v
	for w in s1 s2; do
		v=$(curl -sf "http://127.0.0.1:$(admin_port $w)/metrics" |
			awk -v p="$1" 'index($0, p) == 1 {s += $NF} END {print s + 0}')
		s=$((s + ${v%.*}))
	done
	echo "$s"
}
writes() { ctl GET /sim/stats | jq -c '.writes // {}'; }
is() { [ "$("${@:2}")" = "$1" ]; }         # is WANT CMD...: CMD prints WANT (for until_true)
atleast() { [ "$("${@:2}")" -ge "$1" ]; } # atleast N CMD...: CMD prints >= N
open_count() { echo $(($(rcli ZCARD sfk:sla:due) + $(rcli ZCARD sfk:sla:claimed))); }
notify_count() { topic notify.events | grep -c . || true; }
fly_count() {
	topic flywheel | cut -f2 | jq -r 'select(.workload_id == "lead.sla_watch")
		| .request.metadata.decision_id' | sort -u | wc -l
}

# A policy mistake in business hours: --check-config names each with its JSON path, exit 78.
jq '.business_hours = {"NA": {"time_zone": "Mars/Olympus_Mons", "week": {"mon": ["09:00-17:00"]}},
	"EMEA": {"time_zone": "Europe/London", "week": {"tue": ["17:00-09:00"]}}}' "$POLICY" >"$WORK/bad.json"
rc=0
SFK_ROUTING_POLICY=$WORK/bad.json "$SFK_BIN_DIR/sfk-worker" --workload lead.sla_watch \
	--check-config >"$WORK/check.out" 2>&1 || rc=$?
[ "$rc" = 78 ] || fail "--check-config with a bad policy: exit $rc, want 78"
grep -F '$.business_hours.NA.time_zone: time zone Mars/Olympus_Mons' "$WORK/check.out" >/dev/null &&
	grep -F '$.business_hours.EMEA.week.tue[0]' "$WORK/check.out" >/dev/null ||
	fail "--check-config did not name both problems: $(cat "$WORK/check.out")"
for pol in "$POLICY" "$SFK_SOURCE_DIR/policies/routing_policy.json"; do # the shipped one has hours
	SFK_ROUTING_POLICY=$pol "$SFK_BIN_DIR/sfk-worker" --workload lead.sla_watch --check-config \
		>"$WORK/check.out" 2>&1 || fail "--check-config with $pol: $(cat "$WORK/check.out")"
done
pass "business-hours mistakes -> --check-config exit 78 with their JSON paths"

start bridge "$SFK_BIN_DIR/sfk-bridge"
bridge_subscribed 3 30
start route "$SFK_BIN_DIR/sfk-worker" --workload lead.route
start touch "$SFK_BIN_DIR/sfk-worker" --workload lead.first_touch_detect
start s1 "$SFK_BIN_DIR/sfk-worker" --workload lead.sla_watch
S1=${PIDS[-1]}
start s2 "$SFK_BIN_DIR/sfk-worker" --workload lead.sla_watch
S2=${PIDS[-1]}
for w in route touch s1 s2; do
	wait_log "$WORK/$w.log" '"msg":"admin listening"' 30 || fail "$w did not start"
done
wait_log "$WORK/s1.log" '"msg":"sla: watching deadlines' 30 || fail "s1: no watcher"
wait_log "$WORK/s2.log" '"msg":"sla: watching deadlines' 30 || fail "s2: no watcher"
until_true 30 "the SLA marker in Redis" is 1 rcli EXISTS sfk:sla:ready
kcat -b "$BROKERS" -L -t "${P}wl.lead.sla_watch" 2>/dev/null | grep -E 'with [1-9][0-9]* partitions' >/dev/null ||
	fail "${P}wl.lead.sla_watch does not exist after the replicas started"

# Five SMB leads in the US: pool smb_na.
declare -A ID
for n in A B C D E; do
	ID[$n]=$(ctl POST /sim/records/Lead "{\"LastName\":\"Sla$n\",\"Company\":\"Acme $n\",
		\"Country\":\"United States\",\"NumberOfEmployees\":50}" | jq -r .id)
	[ "${ID[$n]}" != null ] || fail "could not create lead $n"
done
armed() { # armed NAME...: every named lead has a deadline in Redis
	local n
	for n in "$@"; do [ -n "$(rcli ZSCORE sfk:sla:due "${ID[$n]}")" ] || return 1; done
}
until_true 60 "5 leads routed and armed" armed A B C D E
declare -A OWNER ASSIGNED
for n in A B C D E; do
	OWNER[$n]=$(lead "${ID[$n]}" | jq -r .OwnerId)
	ASSIGNED[$n]=$(lead "${ID[$n]}" | jq -r .Owner_Assigned_At__c)
	jq -e --arg o "${OWNER[$n]}" 'index($o) != null' <<<"$pool" >/dev/null ||
		fail "lead $n routed to ${OWNER[$n]}, not to the smb_na pool"
done
pass "5 leads routed to smb_na, deadlines armed by lead.route"

# B answers first: a closed call Task on it.
ctl POST /sim/records/Task "{\"WhoId\":\"${ID[B]}\",\"Subject\":\"Call\",\"Type\":\"Call\",
	\"TaskSubtype\":\"Call\",\"Status\":\"Completed\"}" >/dev/null || fail "task on B"
answered() { [ "$(lead "${ID[B]}" | jq -r .First_Response_At__c)" != null ]; }
until_true 60 "B's first response written" answered
until_true 30 "B's deadline cleared" is "" rcli ZSCORE sfk:sla:due "${ID[B]}"
pass "first response on B -> its deadline cleared"

# Redis wiped: the replicas rebuild from Salesforce (A, C, D, E; not B). Every
# key goes but the bridge's leadership lease (its failover is it_bridge_lease's).
rcli EVAL "for _, k in ipairs(redis.call('KEYS', '*')) do
	if not string.find(k, '^sfk:lease:') then redis.call('DEL', k) end end" 0 >/dev/null
until_true 60 "deadlines rebuilt" armed A C D E
until_true 30 "rebuild marker" is 1 rcli EXISTS sfk:sla:ready
[ -z "$(rcli ZSCORE sfk:sla:due "${ID[B]}")" ] || fail "B (answered) was re-armed"
for n in A C D E; do
	want=$(($(date -d "${ASSIGNED[$n]}" +%s%3N) + 3600000))
	got=$(rcli ZSCORE sfk:sla:due "${ID[$n]}")
	[ "${got%.*}" = "$want" ] || fail "rebuilt deadline of $n: $got, want $want (assigned ${ASSIGNED[$n]} + 60 min)"
done
[ "$(metric_sum 'sfk_sla_rebuilt_total ')" = 4 ] ||
	fail "sfk_sla_rebuilt_total: $(metric_sum 'sfk_sla_rebuilt_total '), want 4"
pass "Redis wiped -> 4 deadlines rebuilt from Salesforce (assigned + SLA), the answered one not"

# The workload topic (the replicas create it when missing): an owner change a
# person made to D, as the bridge fans it out once policies/workloads.json
# routes Lead owner changes here. The replicas record the new owner in D's deadline.
other=$(jq -r --arg o "${OWNER[D]}" '[.[] | select(. != $o)][0]' <<<"$pool")
jq -c --arg id "${ID[D]}" --arg o "$other" '.records[0].value
	| .event_id = "Lead:\($id):1" | .record_id = $id | .changed_fields = ["OwnerId"]
	| .fields = {OwnerId: $o} | .commit_timestamp = (now * 1000 | floor)' \
	"$SFK_SOURCE_DIR/tests/golden/normalize/big_commit_number_exact/expected.json" |
	kcat -b "$BROKERS" -P -t "${P}wl.lead.sla_watch" -k "${ID[D]}" || fail "produce owner change"
until_true 60 "D's owner change recorded" is "$other" rcli HGET "sfk:sla:lead:${ID[D]}" owner
pass "owner change on ${P}wl.lead.sla_watch -> recorded in the deadline"

# E: claimed by a replica that died right after claiming it and its
# escalation key: the deadline's lease runs 20 s past the jump (sim clock), the
# idempotency key's 25 s (Redis clock).
now=$(ctl GET /sim/clock | jq -r .now_ms)
jump=$((61 * 60 * 1000))
rcli ZREM sfk:sla:due "${ID[E]}" >/dev/null
rcli ZADD sfk:sla:claimed $((now + jump + 20000)) "${ID[E]}" >/dev/null
rcli SET "sfk:idem:lead.sla_watch:0:sla:${ID[E]}:1" 0123456789abcdef0123456789abcdef PX 25000 >/dev/null

# Clock +61 min: A, C, D now, E after its leases.
ctl GET /sim/stats | jq -c '.writes // {}' >"$WORK/w0.json"
ctl POST /sim/clock "{\"advance_ms\":$jump}" >/dev/null || fail "clock"
t_jump=$SECONDS
escalated() { # escalated K NAME...: SLA_Escalations__c == K for each
	local k=$1 n
	shift
	for n in "$@"; do
		[ "$(lead "${ID[$n]}" | jq -r '.SLA_Escalations__c // 0 | floor')" = "$k" ] || return 1
	done
}
until_true 90 "A, C, D escalated once" escalated 1 A C D
if [ $((SECONDS - t_jump)) -lt 15 ]; then # observable only while the leases surely run
	escalated 0 E || fail "E escalated while the dead replica's lease ran"
fi
until_true 90 "E escalated once after the leases" escalated 1 E
check_round() { # check_round K W_BEFORE: fields, owners, writes per lead since W_BEFORE
	local k=$1 n rec o
	writes >"$WORK/w$k.json"
	for n in A C D E; do
		rec=$(lead "${ID[$n]}")
		[ "$(jq -r .SLA_Breached__c <<<"$rec")" = true ] || fail "$n: SLA_Breached__c not set"
		o=$(jq -r .OwnerId <<<"$rec")
		if [ $((k % 2)) = 1 ]; then
			[ "$o" != "${OWNER[$n]}" ] || fail "$n: escalation $k kept owner $o"
		else
			[ "$o" = "${OWNER[$n]}" ] || fail "$n: escalation $k: owner $o, want ${OWNER[$n]}"
		fi
		jq -e --arg o "$o" 'index($o) != null' <<<"$pool" >/dev/null ||
			fail "$n: reassigned outside the pool ($o)"
		d=$(jq -n --slurpfile a "$2" --slurpfile b "$WORK/w$k.json" --arg id "${ID[$n]}" \
			'($b[0][$id] // 0) - ($a[0][$id] // 0)')
		[ "$d" = 1 ] || fail "$n: $d Salesforce writes in escalation round $k, want 1"
	done
	d=$(jq -n --slurpfile a "$2" --slurpfile b "$WORK/w$k.json" --arg id "${ID[B]}" \
		'($b[0][$id] // 0) - ($a[0][$id] // 0)')
	[ "$d" = 0 ] || fail "B (answered) was written $d times in round $k"
	[ "$(lead "${ID[B]}" | jq -r .SLA_Breached__c)" = false ] || fail "B marked breached"
}
check_round 1 "$WORK/w0.json"
pass "clock +61 min -> A, C, D and the dead replica's E escalated: breached, reassigned in the pool, one write each; B untouched"

# Clock +61 min again: the second and last escalation.
ctl POST /sim/clock "{\"advance_ms\":$jump}" >/dev/null || fail "clock"
until_true 90 "second escalation" escalated 2 A C D E
check_round 2 "$WORK/w1.json"
until_true 30 "no deadline left" is 0 open_count
pass "clock +61 min -> second escalation, owner back; max_escalations 2 reached: no deadline left"

# Events: one sla.breach per lead and escalation, none for B.
until_true 30 "8 notify events" atleast 8 notify_count
topic notify.events >"$WORK/notify.tsv"
[ "$(wc -l <"$WORK/notify.tsv")" = 8 ] || fail "notify events: $(wc -l <"$WORK/notify.tsv"), want 8"
for n in A C D E; do
	for k in 1 2; do
		m=$(awk -F'\t' -v l="${ID[$n]}" '$1 == l' "$WORK/notify.tsv" |
			cut -f2 | jq -c --argjson k "$k" 'select(.escalation == $k)' | grep -c . || true)
		[ "$m" = 1 ] || fail "$n: $m notify events for escalation $k"
	done
done
jq -e -s 'all(.[]; .type == "sla.breach" and .action == "reassign" and
	.segment == "SMB" and .region == "NA" and .pool == "smb_na" and .sla_minutes == 60 and
	.max_escalations == 2 and .channels == ["sales-leads"] and .new_owner_id != .owner_id and
	.event_id == "sla:\(.lead_id):\(.escalation)")' <(cut -f2 "$WORK/notify.tsv") >/dev/null ||
	fail "notify event shape: $(head -1 "$WORK/notify.tsv")"
! grep "^${ID[B]}	" "$WORK/notify.tsv" >/dev/null || fail "a notify event for B"
pass "8 sla.breach events on ${P}notify.events: one per lead and escalation, none for B"

# Flywheel: one record per escalation, workload lead.sla_watch, unique decision ids.
until_true 30 "8 flywheel records" atleast 8 fly_count
topic flywheel | cut -f2 | jq -c 'select(.workload_id == "lead.sla_watch")' >"$WORK/fly.jsonl"
[ "$(wc -l <"$WORK/fly.jsonl")" = 8 ] || fail "flywheel: $(wc -l <"$WORK/fly.jsonl") records, want 8"
jq -e -s 'all(.[]; (.response.choices[0].message.content | fromjson | .action == "reassign"
	and .breached == true) and (.request.metadata.event_id | startswith("sla:")))' \
	"$WORK/fly.jsonl" >/dev/null || fail "flywheel record shape: $(head -1 "$WORK/fly.jsonl")"
pass "8 flywheel records (lead.sla_watch), one per escalation"

# Metrics over both replicas.
m=$(metric_sum 'sfk_sla_breaches_total{segment="SMB",region="NA"} ')
[ "$m" = 4 ] || fail "sfk_sla_breaches_total{SMB,NA}: $m, want 4"
m=$(metric_sum 'sfk_sla_escalations_total ')
[ "$m" = 8 ] || fail "sfk_sla_escalations_total: $m, want 8"
m=$(metric_sum 'sfk_sla_reassignments_total ')
[ "$m" = 8 ] || fail "sfk_sla_reassignments_total: $m, want 8"
until_true 10 "open deadlines gauge 0" is 0 metric_sum 'sfk_sla_open_deadlines '
pass "metrics: 4 breaches {SMB,NA}, 8 escalations, 8 reassignments, 0 open deadlines"

# Both replicas hold partitions of the workload topic before they stop: a
# consumer closed without ever being assigned trips librdkafka 2.0.2's
# cooperative-sticky assignor (confluentinc/librdkafka#4312, fixed in 2.3.0).
for w in s1 s2; do
	wait_log "$WORK/$w.log" '"msg":"kafka partitions assigned","count":[1-9]' 60 ||
		fail "$w: no partition of ${P}wl.lead.sla_watch assigned"
done
kill -TERM "$S1" "$S2"
wait "$S1" || fail "s1 exit status $? after SIGTERM"
wait "$S2" || fail "s2 exit status $? after SIGTERM"
pass "sla_watch replicas stop on SIGTERM with status 0"
