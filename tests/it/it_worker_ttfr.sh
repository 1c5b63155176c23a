#!/usr/bin/env bash
# it_worker_ttfr: lead.first_touch_detect end to end. sfk-sim's traffic
# generator creates Leads and responses (call Tasks, email Tasks, sent
# EmailMessages linked through EmailMessageRelation; out-of-order pairs where
# the response created later carries the earlier time; call Tasks completed
# long after they were opened); sfk-bridge fans them out; two sfk-worker
# replicas detect the first response. The sim clock is advanced in steps so
# responses arrive over many batches, in every order. Then, per Lead:
#   First_Response_At__c == the truth's earliest response (exact), the source
#   is the truth's (Task / EmailMessage; a tie between an email and its own
#   Task may be either), the user is right when one response holds the minimum,
#   Time_to_First_Response__c == truth minutes, unanswered Leads have nothing,
#   and Salesforce writes per Lead <= its responses (GET /sim/stats).
# Finally "response before its Lead": a Lead's fields are cleared and its
# CREATE is delivered again after its responses; the worker resolves the
# response kept in Redis and writes the same earliest value back.
#
# Needs KAFKA_BOOTSTRAP_SERVERS (the shared broker, eval "$(tests/stack/up
# --kafka real --sim)"); starts its own sfk-sim and Redis because it moves the
# sim clock and asserts exact write counts. Topics and groups get a per-run
# prefix.
set -euo pipefail
NAME=it_worker_ttfr
. "$SFK_SOURCE_DIR/tests/it/lib/pipeline.sh"
it_require sfk-bridge sfk-worker sfk-sim -- kcat jq curl
it_need_kafka
it_private_sim
it_pipeline_env itttfr
TOPIC="${P}wl.lead.first_touch_detect"

records() { # committed records on the workload topic: key<TAB>value
	kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "$TOPIC" -o beginning -e -q \
		-X isolation.level=read_committed -f '%k\t%s\n' 2>/dev/null || true
}
decisions() { # sum of sfk_decisions_total over the workers
	local n=0 w v
	for w in w1 w2; do
		v=$(curl -sf "http://127.0.0.1:$(admin_port $w)/metrics" |
			awk '/^sfk_decisions_total\{/ && !/outcome="retry"/ {s += $2} END {print s + 0}')
		n=$(awk -v a="$n" -v b="${v:-0}" 'BEGIN {print a + b}')
	done
	echo "${n%.*}"
}
caught_up() { # caught_up SECONDS: the workers decided at least every record so far
	local deadline=$((SECONDS + $1)) want
	want=$(records | grep -c . || true)
	until [ "$(decisions)" -ge "$want" ]; do
		[ $SECONDS -lt $deadline ] || return 1
		for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null || fail "a process exited"; done
		sleep 0.3
	done
}

start bridge "$SFK_BIN_DIR/sfk-bridge"
deadline=$((SECONDS + 30))
until [ "$(grep -c '"msg":"cometd subscribed"' "$WORK/bridge.log" || true)" -ge 3 ]; do
	[ $SECONDS -lt $deadline ] || fail "bridge not subscribed to the 3 channels"
	sleep 0.1
done

# Leads first (responses lie minutes to hours ahead in sim time).
ctl POST /sim/traffic '{"seed":11,"leads":40,"rate":200,"answer_ratio":0.9,
	"second_response_ratio":0.7,"out_of_order_ratio":0.6,"before_routing_ratio":0.2,
	"quick_max_ms":300,"delay_min_ms":60000,"delay_max_ms":7200000,
	"email_message_ratio":0.45,"call_ratio":0.5}' >/dev/null || fail "traffic start"
deadline=$((SECONDS + 60))
until [ "$(records | grep -c . || true)" -ge 40 ]; do
	[ $SECONDS -lt $deadline ] || fail "the 40 Lead CREATEs never reached $TOPIC"
	sleep 0.3
done

# Two replicas (the topic exists now).
start w1 "$SFK_BIN_DIR/sfk-worker" --workload lead.first_touch_detect
start w2 "$SFK_BIN_DIR/sfk-worker" --workload lead.first_touch_detect
wait_log "$WORK/w1.log" '"msg":"consuming"' 30 || fail "worker 1 did not start"
wait_log "$WORK/w2.log" '"msg":"consuming"' 30 || fail "worker 2 did not start"
caught_up 60 || fail "workers did not process the Lead CREATEs"

# Responses: move the sim clock 20 minutes at a time, letting the workers
# catch up after each step, until the generator has made every response.
deadline=$((SECONDS + 150))
until [ "$(ctl GET /sim/traffic/status | jq -r .done)" = true ]; do
	[ $SECONDS -lt $deadline ] || fail "traffic not done: $(ctl GET /sim/traffic/status)"
	ctl POST /sim/clock '{"advance_ms":1200000}' >/dev/null
	caught_up 60 || fail "workers fell behind"
done
caught_up 60 || fail "workers fell behind at the end"
ctl GET /sim/traffic/truth >"$WORK/truth.json"
[ "$(jq '[.leads[].responses[] | select(.state == "failed")] | length' "$WORK/truth.json")" = 0 ] ||
	fail "the generator had failed responses"

# expected.tsv: lead, first at, allowed sources, user (or -), ttfr minutes
jq -r '.leads[] | . as $l
	| ([.responses[] | select(.state == "done" and .at_ms == $l.first_response_ms)]) as $m
	| [ .lead_id, (.first_response_at // "-"),
	    ([$m[] | if .kind == "email_message"
	              then (if .backdated then "EmailMessage" else "EmailMessage|Task" end)
	              else "Task" end] | join("|") | if . == "" then "-" else . end),
	    (if ($m | length) == 1 then .first_response_user else "-" end),
	    (.ttfr_minutes // "-") ] | @tsv' "$WORK/truth.json" >"$WORK/expected.tsv"
kinds=$(jq -r '[.leads[].responses[] | .kind + (if .backdated then "(backdated)" else "" end) +
	(if .closed_by then "(closed later)" else "" end)] | group_by(.) |
	map("\(.[0])=\(length)") | join(" ")' "$WORK/truth.json")

check() { # prints mismatches, one per line
	ctl GET /sim/org | jq -c '[.Lead[] | {Id, First_Response_At__c, First_Response_Source__c,
		First_Response_User__c, Time_to_First_Response__c}] | INDEX(.Id)' >"$WORK/org.json"
	while IFS=$'\t' read -r lead at sources user minutes; do
		jq -r --arg id "$lead" --arg at "$at" --arg src "$sources" --arg user "$user" \
			--arg min "$minutes" '.[$id] as $r
			| if $r == null then "\($id): missing"
			  elif $at == "-" then (if $r.First_Response_At__c != null then
				"\($id): unanswered but has \($r.First_Response_At__c)" else empty end)
			  elif $r.First_Response_At__c != $at then
				"\($id): First_Response_At__c \($r.First_Response_At__c), truth \($at)"
			  elif ($src | split("|") | index($r.First_Response_Source__c)) == null then
				"\($id): source \($r.First_Response_Source__c), truth \($src)"
			  elif $user != "-" and $r.First_Response_User__c != $user then
				"\($id): user \($r.First_Response_User__c), truth \($user)"
			  elif (($r.Time_to_First_Response__c // -1) - ($min | tonumber) |
				fabs) > 0.006 then
				"\($id): TTFR \($r.Time_to_First_Response__c), truth \($min)"
			  else empty end' "$WORK/org.json"
	done <"$WORK/expected.tsv"
}
deadline=$((SECONDS + 60))
until [ -z "$(check)" ]; do
	[ $SECONDS -lt $deadline ] || fail "first responses differ from the truth:
$(check | head -10)"
	sleep 0.5
done
answered=$(awk -F'\t' '$2 != "-"' "$WORK/expected.tsv" | wc -l)
pass "$answered/40 leads: First_Response_At__c, source, user, TTFR == truth ($kinds)"

# Our writes per Lead (API writes minus the generator's API create) are
# between 1 and its number of response events (an email is two: the
# EmailMessage and its own Task) plus one: a later response written on one
# replica while another stored an earlier one is corrected by one more write.
ctl GET /sim/stats | jq -c '.writes' >"$WORK/writes.json"
bad=$(jq -r --slurpfile w "$WORK/writes.json" '.leads[]
	| (.responses | map(select(.state == "done") |
		if .kind == "email_message" then 2 else 1 end) | add // 0) as $n
	| ((($w[0][.lead_id]) // 0) - (if .api then 1 else 0 end)) as $d
	| select($d > $n + 1 or ($n > 0 and $d < 1))
	| "\(.lead_id): \($d) writes for \($n) responses"' "$WORK/truth.json")
[ -z "$bad" ] || fail "writes per lead: $bad"
pass "Salesforce writes per lead between 1 and its response events + 1"

# Response before its Lead: clear one answered Lead, deliver its CREATE again.
lead=$(awk -F'\t' '$2 != "-" {print $1; exit}' "$WORK/expected.tsv")
want=$(awk -F'\t' -v l="$lead" '$1 == l {print $2}' "$WORK/expected.tsv")
ctl PATCH "/sim/records/Lead/$lead" '{"First_Response_At__c":null,"First_Response_Source__c":null,
	"First_Response_User__c":null,"Time_to_First_Response__c":null}' >/dev/null
[ "$(ctl GET "/sim/records/Lead/$lead" | jq -r .First_Response_At__c)" = null ] || fail "clear"
env=$(records | awk -F'\t' -v l="$lead" '$1 == l {print $2}' | jq -c 'select(.entity == "Lead")' | head -1)
[ -n "$env" ] || fail "no Lead CREATE of $lead on the topic"
jq -c '.event_id += ":again" | .replay_id += 1000000' <<<"$env" |
	kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -P -t "$TOPIC" -k "$lead" ||
	fail "could not produce the Lead CREATE again"
deadline=$((SECONDS + 30))
until [ "$(ctl GET "/sim/records/Lead/$lead" | jq -r .First_Response_At__c)" = "$want" ]; do
	[ $SECONDS -lt $deadline ] || fail "Lead CREATE after its responses: not resolved"
	sleep 0.3
done
pass "Lead CREATE after its responses -> the kept earliest ($want) written back"

# An inbound email logged on an unanswered Lead: its Email Task (closed, on
# the Lead) is fanned out, and is not a response.
quiet=$(awk -F'\t' '$2 == "-" {print $1; exit}' "$WORK/expected.tsv")
if [ -n "$quiet" ]; then
	em=$(ctl POST /sim/records/EmailMessage '{"Subject":"Question","TextBody":"Hi",
		"Incoming":true,"Status":"0","FromAddress":"lead@example.com"}' | jq -r .id)
	ctl POST /sim/records/EmailMessageRelation "{\"EmailMessageId\":\"$em\",
		\"RelationId\":\"$quiet\",\"RelationType\":\"ToAddress\"}" >/dev/null
	task=$(ctl GET "/sim/records/EmailMessage/$em" | jq -r .ActivityId)
	[ "$(ctl GET "/sim/records/Task/$task" | jq -r .WhoId)" = "$quiet" ] ||
		fail "inbound email's Task is not on $quiet"
	deadline=$((SECONDS + 30))
	until records | grep "\"record_id\":\"$task\"" >/dev/null; do
		[ $SECONDS -lt $deadline ] || fail "inbound email's Task $task not fanned out"
		sleep 0.3
	done
	caught_up 30 || fail "workers did not process the inbound email's Task"
	[ "$(ctl GET "/sim/records/Lead/$quiet" | jq -r .First_Response_At__c)" = null ] ||
		fail "an inbound email's Task was taken as the first response of $quiet"
	pass "inbound email's Email Task on unanswered $quiet: not a response"
fi

# TTFR observed once per written first response, across the replicas.
# Labels are the routing policy's segment and region.
observed=0
for w in w1 w2; do
	curl -sf "http://127.0.0.1:$(admin_port $w)/metrics" >"$WORK/$w.metrics"
	n=$(awk '/^sfk_first_response_latency_seconds_count\{/ {s += $2} END {print s + 0}' \
		"$WORK/$w.metrics")
	observed=$((observed + ${n%.*}))
done
[ "$observed" -ge "$answered" ] ||
	fail "sfk_first_response_latency_seconds counted $observed, want >= $answered"
grep -h '^sfk_first_response_latency_seconds_count{' "$WORK"/w?.metrics |
	grep -v 'region="UNKNOWN"' | grep 'segment="\(SMB\|MM\|ENT\)"' >/dev/null ||
	fail "no TTFR series labelled with a routing segment and region"
pass "sfk_first_response_latency_seconds observed $observed times, by segment and region"
# One flywheel record per decision: at least one "written" per answered lead,
# each naming its lead in the request metadata.
kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "${P}flywheel" -o beginning -e -q \
	-X isolation.level=read_committed -f '%s\n' 2>/dev/null >"$WORK/flywheel.jsonl" || true
written=$(jq -c 'select(.workload_id == "lead.first_touch_detect") |
	select((.response.choices[0].message.content | fromjson | .outcome) == "written") |
	select(.request.metadata.lead_id | test("^00Q"))' "$WORK/flywheel.jsonl" | wc -l)
[ "$written" -ge "$answered" ] || fail "flywheel: $written \"written\" records, want >= $answered"
pass "flywheel: $written detection records with outcome written"

# Graceful stop: every process exits 0 on SIGTERM, no sanitizer report.
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${PIDS[@]}"; do
	wait "$p" || fail "a process exited with status $? after SIGTERM"
done
PIDS=()
! grep -l 'ERROR: AddressSanitizer\|runtime error:\|ERROR: LeakSanitizer' "$WORK"/*.log ||
	fail "sanitizer report in the logs"
pass "SIGTERM: bridge and workers exit 0"
echo "$NAME: all cases passed"
