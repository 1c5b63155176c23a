#!/usr/bin/env bash
# it_worker_template: outreach.template_suggest end to end.
#   - a template policy with three mistakes: --check-config and start-up are
#     refused (exit 78) listing all three with their JSON paths;
#   - sfk-sim's traffic generator creates Leads with realistic descriptions;
#     sfk-bridge fans them out; sfk-worker recommends a template for every
#     Lead: Template_Intent__c equals the generator's intent, the auto-send
#     template (demo_invite) is sent exactly once per such Lead through the
#     Simple Email Action and Template_Applied__c is set, no other Lead gets
#     an email;
#   - the same Lead CREATE delivered again (new event id) sends and writes
#     nothing more;
#   - an inbound reply on a Lead that got a suggestion becomes a flywheel
#     "reply" record (delivered here by hand: policies/workloads.json does not
#     fan inbound emails out to this workload yet);
#   - one flywheel record per suggestion on <prefix>flywheel.
# Needs KAFKA_BOOTSTRAP_SERVERS (the shared broker); starts its own sfk-sim
# and Redis because it asserts exact API call counts.
set -euo pipefail
NAME=it_worker_template
. "$SFK_SOURCE_DIR/tests/it/lib/pipeline.sh"
it_require sfk-bridge sfk-worker sfk-sim -- kcat jq curl
it_need_kafka
it_private_sim
it_pipeline_env ittpl
TOPIC="${P}wl.outreach.template_suggest"
W=outreach.template_suggest

consume() { # consume TOPIC: committed records, key<TAB>value
	kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "$1" -o beginning -e -q \
		-X isolation.level=read_committed -f '%k\t%s\n' 2>/dev/null || true
}
count() { consume "$1" | grep -c . || true; }
decisions() { # every decision of the worker so far (not retries)
	curl -sf "http://127.0.0.1:$(admin_port w1)/metrics" |
		awk '/^sfk_decisions_total\{/ && !/outcome="retry"/ {s += $2} END {printf "%d\n", s}'
}
email_calls() {
	ctl GET /sim/stats | jq '[.api | to_entries[] | select(.key | test("emailSimple")) | .value] | add // 0'
}

# 1. A policy with three mistakes is refused, every problem with its path.
printf '%s' '{"version":"1.0.0","confidence_bar":1.5,"fallback_template":"nope",
 "templates":[{"id":"a","name":"A","intent":"x","triggers":[{"phrase":"demo"}],
 "subject":"Hi","body":"Hello {{FirstName}}"}]}' >"$WORK/bad.json"
for mode in --check-config run; do
	set +e
	SFK_TEMPLATE_POLICY="$WORK/bad.json" "$SFK_BIN_DIR/sfk-worker" --workload $W \
		$([ $mode = run ] || echo --check-config) >/dev/null 2>"$WORK/bad.out"
	rc=$?
	set -e
	[ $rc -eq 78 ] || fail "bad policy ($mode): exit $rc, want 78"
	for want in '\$\.confidence_bar' '\$\.templates\[0\]\.triggers\[0\].*weight' \
		'\$\.fallback_template: "nope"'; do
		grep -Eq "$want" "$WORK/bad.out" || fail "bad policy ($mode): '$want' not listed: $(cat "$WORK/bad.out")"
	done
done
[ "$("$SFK_BIN_DIR/sfk-worker" --workload $W --check-config)" = "configuration OK" ] ||
	fail "the shipped policy does not pass --check-config"
pass "policy with three mistakes refused (exit 78) listing all three paths; shipped policy OK"

# 2. Bridge, traffic, worker.
start bridge "$SFK_BIN_DIR/sfk-bridge"
deadline=$((SECONDS + 30))
until [ "$(grep -c '"msg":"cometd subscribed"' "$WORK/bridge.log" || true)" -ge 3 ]; do
	[ $SECONDS -lt $deadline ] || fail "bridge not subscribed"
	sleep 0.1
done
N=40
ctl POST /sim/traffic "{\"seed\":23,\"leads\":$N,\"rate\":200,\"answer_ratio\":0}" >/dev/null ||
	fail "traffic start"
deadline=$((SECONDS + 60))
until [ "$(count "$TOPIC")" -ge $N ]; do
	[ $SECONDS -lt $deadline ] || fail "the $N Lead CREATEs never reached $TOPIC"
	sleep 0.3
done
start w1 "$SFK_BIN_DIR/sfk-worker" --workload $W
wait_log "$WORK/w1.log" '"msg":"consuming"' 30 || fail "worker did not start"
ctl GET /sim/traffic/truth >"$WORK/truth.json"
[ "$(jq '.leads | length' "$WORK/truth.json")" -eq $N ] || fail "truth has not $N leads"

check() { # mismatches, one per line
	ctl GET /sim/org | jq -c '[.Lead[] | {Id, Template_Recommended__c, Template_Intent__c,
		Template_Confidence__c, Template_Applied__c}] | INDEX(.Id)' >"$WORK/org.json"
	jq -r --slurpfile org "$WORK/org.json" '.leads[] | . as $t | $org[0][.lead_id] as $r
		| if $r.Template_Recommended__c == null then "\(.lead_id): no template"
		  elif $r.Template_Intent__c != $t.intent then
			"\(.lead_id): intent \($r.Template_Intent__c), truth \($t.intent)"
		  elif ($t.intent == "demo") != ($r.Template_Applied__c == true) then
			"\(.lead_id): Template_Applied__c \($r.Template_Applied__c) for intent \($t.intent)"
		  else empty end' "$WORK/truth.json"
}
deadline=$((SECONDS + 60))
until [ -z "$(check)" ]; do
	[ $SECONDS -lt $deadline ] || fail "suggestions differ from the truth:
$(check | head -10)"
	sleep 0.5
done
demo=$(jq '[.leads[] | select(.intent == "demo")] | length' "$WORK/truth.json")
intents=$(jq -r '[.leads[].intent] | group_by(.) | map("\(.[0])=\(length)") | join(" ")' "$WORK/truth.json")
[ "$demo" -ge 1 ] || fail "no demo lead in the traffic (seed): nothing was sent"
pass "$N leads: template recommended, intent == truth ($intents), Template_Applied__c iff auto-send"

# 3. Exactly one email per demo lead, none to anybody else.
[ "$(email_calls)" -eq "$demo" ] || fail "emailSimple calls $(email_calls), want $demo"
ctl GET /sim/org >"$WORK/orgfull.json"
sent_to=$(jq -r '[.EmailMessageRelation[] | select(.RelationType == "ToAddress") | .RelationId] |
	group_by(.) | map("\(.[0]) \(length)") | .[]' "$WORK/orgfull.json")
bad=$(jq -r --arg s "$sent_to" '($s | split("\n") | map(select(. != "") | split(" ")) |
	map({key: .[0], value: (.[1] | tonumber)}) | from_entries) as $m | .leads[]
	| (($m[.lead_id]) // 0) as $n
	| select(($n != 1 and .intent == "demo") or ($n != 0 and .intent != "demo"))
	| "\(.lead_id) (\(.intent)): \($n) emails"' "$WORK/truth.json")
[ -z "$bad" ] || fail "emails per lead: $bad"
pass "$demo demo leads got exactly one email each (Simple Email Action), no one else"

# 4. The same Lead CREATE again (a replay under a new event id, as after a
# crash or a lost Redis between the write and "done"): nothing sent, nothing
# written again (its suggestion is stored already).
lead=$(jq -r '[.leads[] | select(.intent == "demo")][0].lead_id' "$WORK/truth.json")
before=$(decisions)
lead_writes() { ctl GET /sim/stats | jq --arg l "$lead" '.writes[$l] // 0'; }
w0=$(lead_writes)
env=$(consume "$TOPIC" | awk -F'\t' -v l="$lead" '$1 == l {print $2}' | head -1)
[ -n "$env" ] || fail "no Lead CREATE of $lead on $TOPIC"
jq -c '.event_id += ":replayed" | .replay_id += 1000000' <<<"$env" |
	kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -P -t "$TOPIC" -k "$lead" || fail "produce"
deadline=$((SECONDS + 30))
until [ "$(decisions)" -gt "$before" ]; do
	[ $SECONDS -lt $deadline ] || fail "the replayed Lead CREATE was not processed"
	sleep 0.3
done
[ "$(email_calls)" -eq "$demo" ] || fail "replay sent again: emailSimple calls $(email_calls)"
[ "$(lead_writes)" -eq "$w0" ] || fail "replay wrote $lead again: $w0 -> $(lead_writes) writes"
pass "replayed Lead CREATE of $lead: decided again, no second email, no second write"

# 5. An inbound reply on a suggested Lead -> flywheel "reply" record.
lead=$(jq -r '.leads[0].lead_id' "$WORK/truth.json")
tpl=$(jq -r --arg l "$lead" '.[$l].Template_Recommended__c' "$WORK/org.json")
em=$(ctl POST /sim/records/EmailMessage '{"Subject":"Re: hello","TextBody":"Sounds good",
	"Incoming":true,"Status":"0","FromAddress":"lead@example.com"}' | jq -r .id)
ctl POST /sim/records/EmailMessageRelation "{\"EmailMessageId\":\"$em\",\"RelationId\":\"$lead\",
	\"RelationType\":\"FromAddress\"}" >/dev/null
deadline=$((SECONDS + 30))
until consume "${P}cdc.emailmessage" | grep "^$em	" >/dev/null; do
	[ $SECONDS -lt $deadline ] || fail "inbound email $em not on ${P}cdc.emailmessage"
	sleep 0.3
done
consume "${P}cdc.emailmessage" | awk -F'\t' -v e="$em" '$1 == e {print $2}' | head -1 |
	kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -P -t "$TOPIC" -k "$em" || fail "produce reply"
reply() {
	consume "${P}flywheel" | cut -f2 | jq -c --arg l "$lead" 'select(.workload_id ==
		"outreach.template_suggest") | .response.choices[0].message.content | fromjson
		| select(.outcome == "reply" and .lead_id == $l)'
}
deadline=$((SECONDS + 30))
until [ -n "$(reply)" ]; do
	[ $SECONDS -lt $deadline ] || fail "no flywheel reply record for $lead"
	sleep 0.3
done
[ "$(reply | jq -r .template_id | head -1)" = "$tpl" ] || fail "reply record: $(reply)"
pass "inbound reply on $lead -> flywheel outcome record (template $tpl)"

# 6. One flywheel suggestion record per decision (N + the replay), keyed by decision id.
n=$(consume "${P}flywheel" | cut -f2 | jq -c 'select(.workload_id == "outreach.template_suggest")
	| .response.choices[0].message.content | fromjson | select(.template_id and .outcome == null)' |
	wc -l)
[ "$n" -eq $((N + 1)) ] || fail "flywheel suggestion records: $n, want $((N + 1))"
pass "flywheel: $n suggestion records"
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
