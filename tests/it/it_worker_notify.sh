#!/usr/bin/env bash
# it_worker_notify: notify.webhook end to end against a local receiver
# (tests/it/lib/receiver.py: verifies signatures and formats, counts by
# delivery id, injects 500 / 429 / dead targets on demand).
#   - a policy with three mistakes is refused (exit 78), each listed with its path;
#   - 20 Lead CREATEs -> 20 deliveries, each once, validly signed, to the webhook,
#     and 20 each to the fake Slack and Discord endpoints in their formats; the
#     same 20 events delivered again send nothing more;
#   - a target that is dead (always 500): every event dead-lettered to
#     <prefix>dlq.notify.webhook naming the target and reason, its circuit opens
#     (fewer requests than events), and the healthy targets still get all 20
#     within the deadline;
#   - a target answering 500 three times then 200: delivered once, 3 retries counted;
#   - 429 with Retry-After: 2: the retry waits >= 1.9 s, delivered once;
#   - an sla_breach record reaches the webhook as kind "sla_breach";
#   - `sfk notify test --target NAME` prints the HTTP status (200 / 500).
# Needs KAFKA_BOOTSTRAP_SERVERS, REDIS_URL and the SF_* of the shared stack
# (sfk-worker logs in at start; this workload never writes to Salesforce).
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
NAME=it_worker_notify
WORK=$(mktemp -d)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "$NAME: FAIL: $*" >&2
	[ -z "${SFK_IT_KEEP:-}" ] || cp -r "$WORK" "$SFK_IT_KEEP"
	local f
	for f in "$WORK"/*.log; do
		[ -s "$f" ] && grep -v '"level":"info"' "$f" | tail -8 | sed "s|^|  $(basename "$f"): |" >&2
	done
	exit 1
}
pass() { echo "ok   $*"; }

for b in sfk-worker sfk; do
	[ -x "$SFK_BIN_DIR/$b" ] || fail "$SFK_BIN_DIR/$b not built"
done
for c in kcat jq curl python3; do command -v $c >/dev/null || fail "$c not installed"; done
for v in KAFKA_BOOTSTRAP_SERVERS REDIS_URL SF_LOGIN_URL SF_CLIENT_ID SF_USERNAME SF_PRIVATE_KEY_PATH; do
	[ -n "${!v:-}" ] || fail "$v is not set: run eval \"\$(tests/stack/up --kafka real --sim)\" first"
done

P="itntf$$r$RANDOM."
TOPIC="${P}wl.notify.webhook"
DLQ="${P}dlq.notify.webhook"
export SFK_TOPIC_PREFIX=$P SFK_ADMIN_ADDR=127.0.0.1:0 SFK_BATCH_WAIT=100ms SFK_EPOCH=$RANDOM
export KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS=1000
export SFK_NOTIFY_POLICY_SCHEMA="$SFK_SOURCE_DIR/schemas/notifications.schema.json"

# --- receiver ---------------------------------------------------------------
SECRET_HOOK="s3cr3t-hook-$RANDOM$RANDOM"
python3 "$SFK_SOURCE_DIR/tests/it/lib/receiver.py" --secret hook="$SECRET_HOOK" \
	--secret flaky=fl4ky --secret limited=l1m --secret dead=d34d --secret slow=sl0w \
	--kind slack=slack --kind discord=discord >"$WORK/receiver.out" 2>"$WORK/receiver.log" &
PIDS+=($!)
deadline=$((SECONDS + 20))
until grep '^PORT ' "$WORK/receiver.out" >/dev/null 2>&1; do
	[ $SECONDS -lt $deadline ] || fail "receiver did not start"
	sleep 0.1
done
R="http://127.0.0.1:$(sed -n 's/^PORT //p' "$WORK/receiver.out")"
stats() { curl -sf "$R/stats"; }
control() { curl -sf -X POST -d "$2" "$R/control/$1" >/dev/null; }

export SFK_NOTIFY_URL_HOOK="$R/hook/hook" SFK_NOTIFY_SECRET_HOOK="$SECRET_HOOK"
export SFK_NOTIFY_URL_FLAKY="$R/hook/flaky" SFK_NOTIFY_SECRET_FLAKY=fl4ky
export SFK_NOTIFY_URL_LIMITED="$R/hook/limited" SFK_NOTIFY_SECRET_LIMITED=l1m
export SFK_NOTIFY_URL_DEAD="$R/hook/dead" SFK_NOTIFY_SECRET_DEAD=d34d
export SFK_NOTIFY_URL_SLOW="$R/hook/slow" SFK_NOTIFY_SECRET_SLOW=sl0w
export SFK_NOTIFY_URL_SLACK="$R/hook/slack" SFK_NOTIFY_URL_DISCORD="$R/hook/discord"

cat >"$WORK/policy.json" <<'EOF'
{
  "version": "1.0.0",
  "targets": {
    "hook": { "kind": "webhook", "url_env": "SFK_NOTIFY_URL_HOOK", "secret_env": "SFK_NOTIFY_SECRET_HOOK", "rate_per_second": 200, "burst": 50 },
    "slack": { "kind": "slack", "url_env": "SFK_NOTIFY_URL_SLACK", "rate_per_second": 100, "burst": 50 },
    "discord": { "kind": "discord", "url_env": "SFK_NOTIFY_URL_DISCORD", "rate_per_second": 100, "burst": 50 },
    "dead": { "kind": "webhook", "url_env": "SFK_NOTIFY_URL_DEAD", "secret_env": "SFK_NOTIFY_SECRET_DEAD",
              "max_attempts": 3, "backoff_base_ms": 100, "breaker_failures": 3, "breaker_open_ms": 600000 },
    "slow": { "kind": "webhook", "url_env": "SFK_NOTIFY_URL_SLOW", "secret_env": "SFK_NOTIFY_SECRET_SLOW",
              "timeout_ms": 5000, "max_inflight": 4, "rate_per_second": 100, "burst": 50 },
    "flaky": { "kind": "webhook", "url_env": "SFK_NOTIFY_URL_FLAKY", "secret_env": "SFK_NOTIFY_SECRET_FLAKY",
               "max_attempts": 6, "backoff_base_ms": 100, "breaker_failures": 10 },
    "limited": { "kind": "webhook", "url_env": "SFK_NOTIFY_URL_LIMITED", "secret_env": "SFK_NOTIFY_SECRET_LIMITED",
                 "max_attempts": 3, "backoff_base_ms": 50 }
  },
  "subscriptions": [
    { "name": "leads", "entity": "Lead", "change_types": ["CREATE"], "targets": ["hook", "slack", "discord", "dead", "slow"] },
    { "name": "tasks", "entity": "Task", "change_types": ["CREATE"], "targets": ["flaky"] },
    { "name": "contacts", "entity": "Contact", "change_types": ["CREATE"], "when": { "field": "NumberOfEmployees", "gte": 1000 }, "targets": ["limited"] },
    { "name": "sla", "kind": "sla_breach", "targets": ["hook"] }
  ]
}
EOF
export SFK_NOTIFY_POLICY="$WORK/policy.json"

# --- 1. a bad policy: every problem listed, exit 78 ---------------------------
jq '.targets.hook.kind = "fax" | .subscriptions[0].targets += ["nope"] | .targets.slack.url = "https://hooks.slack.com/x"' \
	"$WORK/policy.json" >"$WORK/bad.json"
for mode in --check-config run; do
	set +e
	SFK_NOTIFY_POLICY="$WORK/bad.json" SFK_NOTIFY_URL_DEAD= "$SFK_BIN_DIR/sfk-worker" \
		--workload notify.webhook $([ $mode = run ] || echo --check-config) >/dev/null 2>"$WORK/bad.out"
	rc=$?
	set -e
	[ $rc -eq 78 ] || fail "bad policy ($mode): exit $rc, want 78: $(cat "$WORK/bad.out")"
	for want in '\$\.targets\.hook\.kind' '\$\.targets\.slack' ; do
		grep -E "$want" "$WORK/bad.out" >/dev/null || fail "bad policy ($mode): '$want' not listed: $(cat "$WORK/bad.out")"
	done
done
set +e
SFK_NOTIFY_URL_DEAD= "$SFK_BIN_DIR/sfk-worker" --workload notify.webhook --check-config >/dev/null 2>"$WORK/env.out"
rc=$?
set -e
[ $rc -eq 78 ] && grep 'SFK_NOTIFY_URL_DEAD is not set' "$WORK/env.out" >/dev/null ||
	fail "unset url_env: exit $rc: $(cat "$WORK/env.out")"
grep -F "$SECRET_HOOK" "$WORK/env.out" >/dev/null && fail "a secret was printed"
pass "bad policy and unset environment refused with exit 78, each problem listed"

# --- 2. events ----------------------------------------------------------------
now_ms=$(($(date +%s) * 1000))
envelope() { # envelope EVENT_ID ENTITY RECORD_ID FIELDS_JSON [KIND]
	jq -cn --arg id "$1" --arg e "$2" --arg r "$3" --argjson f "$4" --arg k "${5:-}" --argjson ts "$now_ms" \
		'{envelope_version: 1, event_id: $id, entity: $e, change_type: (if $k == "sla_breach" then "SLA_BREACH" else "CREATE" end),
		  record_id: $r, commit_timestamp: $ts, fields: $f} + (if $k == "" then {} else {kind: $k} end)'
}
N=20
: >"$WORK/events.txt"
for i in $(seq 1 $N); do
	id=$(printf '00Q5e00000Ab%03d' "$i")
	printf '%s\t%s\n' "$id" "$(envelope "Lead:$id:$P$i" Lead "$id" \
		"{\"Company\":\"Acme $i\",\"LastName\":\"Doe\",\"NumberOfEmployees\":$((i * 100))}")" >>"$WORK/events.txt"
done
printf '%s\t%s\n' 00T5e00000Ab001 "$(envelope "Task:1:$P" Task 00T5e00000Ab001 '{"Subject":"Call"}')" >>"$WORK/events.txt"
printf '%s\t%s\n' 0035e00000Ab001 "$(envelope "Contact:1:$P" Contact 0035e00000Ab001 '{"NumberOfEmployees":5000}')" >>"$WORK/events.txt"
printf '%s\t%s\n' 0035e00000Ab002 "$(envelope "Contact:2:$P" Contact 0035e00000Ab002 '{"NumberOfEmployees":10}')" >>"$WORK/events.txt"
printf '%s\t%s\n' 00Q5e00000Ab001 "$(envelope "sla:00Q5e00000Ab001:1:$P" Lead 00Q5e00000Ab001 \
	'{"OwnerId":"0055e00000Ab001","minutes_late":12}' sla_breach)" >>"$WORK/events.txt"

# lead.sla_watch's own record shape on <prefix>notify.events: relayed by the worker
SLA2="sla:00Q5e00000Ab002:1:$P"
jq -cn --arg id "$SLA2" '{type: "sla.breach", event_id: $id, lead_id: "00Q5e00000Ab002", escalation: 1,
	max_escalations: 2, action: "notify", owner_id: "0055e00000Ab001", segment: "SMB", region: "NA",
	pool: "smb_na", sla_minutes: 60, due_at: "2026-01-01T10:00:00Z", detected_at: "2026-01-01T10:01:00Z",
	channels: ["discord"], policy_version: "1.0.0", client_id: "sfk-kpis"}' |
	sed 's/^/00Q5e00000Ab002\t/' >"$WORK/sla_events.txt"
kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -P -t "${P}notify.events" -K '\t' <"$WORK/sla_events.txt" ||
	fail "produce to notify.events failed"

control dead '{"always": 500}'
control slow '{"delay_ms": 1000}'
control flaky '{"fail": 3}'
control limited '{"r429": 1, "retry_after": 2}'
kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -P -t "$TOPIC" -K '\t' -X topic.partitioner=murmur2_random <"$WORK/events.txt" ||
	fail "produce failed"
t_produced=$(date +%s.%N)

"$SFK_BIN_DIR/sfk-worker" --workload notify.webhook 2>"$WORK/w1.log" &
PIDS+=($!)
WPID=$!

# --- 3. the healthy targets get everything on time ------------------------------
ok_count() { stats | jq --arg t "$1" '.[$t].deliveries // {} | length'; }
deadline=$((SECONDS + 30))
until [ "$(ok_count hook)" -ge $((N + 2)) ] && [ "$(ok_count slack)" -ge $N ] && [ "$(ok_count discord)" -ge $((N + 1)) ]; do
	kill -0 $WPID 2>/dev/null || fail "worker exited"
	[ $SECONDS -lt $deadline ] || fail "healthy targets incomplete after 30 s: $(stats | jq -c 'map_values(.deliveries | length)')"
	sleep 0.2
done
took=$(echo "$(date +%s.%N) - $t_produced" | bc)
S=$(stats)
for t in hook slack discord; do
	[ "$(jq --arg t $t '.[$t].bad_signature + .[$t].bad_format' <<<"$S")" -eq 0 ] ||
		fail "$t: bad signatures/formats: $(jq -c --arg t $t '.[$t] | del(.attempts)' <<<"$S")"
	[ "$(jq --arg t $t '[.[$t].deliveries[]] | max' <<<"$S")" -eq 1 ] ||
		fail "$t: a delivery id answered 2xx more than once"
done
[ "$(jq '.hook.deliveries | length' <<<"$S")" -eq $((N + 2)) ] || fail "hook: want $((N + 2)) deliveries"
[ "$(jq '.discord.deliveries | length' <<<"$S")" -eq $((N + 1)) ] || fail "discord: want $((N + 1)) deliveries"
pass "hook $((N + 2)), slack $N, discord $((N + 1)) distinct deliveries, each once, signatures and formats valid (${took}s after produce, dead target failing)"

# the slow target (1 s per answer, 4 at a time) gets all of them too, and the
# webhook was never held up by it: its last 2xx of these Lead events came before the
# slow target's last
deadline=$((SECONDS + 60))
until [ "$(ok_count slow)" -ge $N ]; do
	[ $SECONDS -lt $deadline ] || fail "slow target: $(ok_count slow) of $N after 60 s"
	sleep 0.2
done
S=$(stats)
lead_dids=$(python3 -c '
import hashlib, json, sys
ids = [json.loads(l.split("\t", 1)[1])["event_id"] for l in open(sys.argv[1])]
ids = [i for i in ids if i.startswith("Lead:")]
print(json.dumps([hashlib.sha256(i.encode() + b"\nhook").hexdigest()[:32] for i in ids]))' "$WORK/events.txt")
hook_last=$(jq --argjson d "$lead_dids" '[.hook.answered | to_entries[] | select(.key as $k | $d | index($k)) | .value] | max' <<<"$S")
[ "$(jq --argjson d "$lead_dids" '[.hook.answered | keys[] | select(. as $k | $d | index($k))] | length' <<<"$S")" -eq $N ] ||
	fail "the $N Lead deliveries to hook not found by their delivery ids"
slow_last=$(jq '[.slow.answered[]] | max' <<<"$S")
slow_first=$(jq '[.slow.answered[]] | min' <<<"$S")
awk -v h="$hook_last" -v s="$slow_last" 'BEGIN { exit !(h < s) }' ||
	fail "webhook finished at $hook_last, after the slow target ($slow_last)"
pass "slow target (1 s answers): all $N delivered over $(echo "$slow_last - $slow_first" | bc) s; the webhook finished $(echo "$slow_last - $hook_last" | bc) s before it"

# --- 4. the dead target: DLQ with reason, circuit open ----------------------------
dlq_lines() {
	kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "$DLQ" -o beginning -e -q -f '%h\n' 2>/dev/null || true
}
deadline=$((SECONDS + 30))
until [ "$(dlq_lines | grep -c 'target dead' || true)" -ge $N ]; do
	[ $SECONDS -lt $deadline ] || fail "DLQ: $(dlq_lines | grep -c . || true) letters after 30 s, want $N"
	sleep 0.5
done
letters=$(dlq_lines)
[ "$(grep 'target dead' <<<"$letters" | grep -cE 'sfk.error_code=notify_(http_500|circuit_open)' || true)" -eq $N ] ||
	fail "DLQ headers: $letters"
dead_req=$(stats | jq '.dead.requests')
[ "$dead_req" -lt $N ] || fail "dead target got $dead_req requests for $N events: the circuit did not open"
port=$(sed -n 's/.*"msg":"admin listening".*"port":\([0-9]*\).*/\1/p' "$WORK/w1.log" | head -1)
M=$(curl -sf "http://127.0.0.1:$port/metrics")
grep -E '^sfk_notify_circuit_state\{target="dead"\} 2$' <<<"$M" >/dev/null ||
	fail "circuit gauge: $(grep circuit_state <<<"$M")"
grep -E '^sfk_notify_circuit_state\{target="hook"\} 0$' <<<"$M" >/dev/null || fail "hook circuit not closed"
grep -E '^sfk_notify_delivery_latency_seconds_count\{target="hook"\} [0-9]+' <<<"$M" >/dev/null ||
	fail "no latency histogram for hook"
if command -v promtool >/dev/null; then
	promtool check metrics <<<"$M" >"$WORK/promtool.out" 2>&1 || fail "promtool: $(cat "$WORK/promtool.out")"
fi
pass "dead target: $N letters in $DLQ naming it, $dead_req requests (circuit open, gauge 2)"

# --- 4b. sfk dlq retry of one letter: the targets that got it are not sent again
# (delivery ids are done in Redis even though the letter gets a new event claim)
pos=$(kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "$DLQ" -o beginning -c 1 -e -q -f '%p:%o\n' 2>/dev/null)
before=$(stats | jq -c '{hook: .hook.requests, slack: .slack.requests, discord: .discord.requests, slow: .slow.requests}')
"$SFK_BIN_DIR/sfk" dlq retry --workload notify.webhook --offset "$pos" >"$WORK/retry.out" 2>&1 ||
	fail "sfk dlq retry: $(cat "$WORK/retry.out")"
dup() { curl -sf "http://127.0.0.1:$port/metrics" | awk -v t="$1" '$0 ~ "^sfk_notify_deliveries_total[{]target=\"" t "\",outcome=\"duplicate\"[}]" {print $2}'; }
deadline=$((SECONDS + 30))
until [ "$(dup hook)" = 1 ] && [ "$(dup slack)" = 1 ] && [ "$(dup discord)" = 1 ] && [ "$(dup slow)" = 1 ]; do
	[ $SECONDS -lt $deadline ] || fail "retried letter: delivered targets not skipped as duplicates: $(curl -sf "http://127.0.0.1:$port/metrics" | grep outcome=.duplicate)"
	sleep 0.2
done
deadline=$((SECONDS + 30))
until [ "$(dlq_lines | grep -c 'target dead' || true)" -ge $((N + 1)) ]; do
	[ $SECONDS -lt $deadline ] || fail "retried letter: not dead-lettered again for the dead target"
	sleep 0.2
done
after=$(stats | jq -c '{hook: .hook.requests, slack: .slack.requests, discord: .discord.requests, slow: .slow.requests}')
[ "$before" = "$after" ] || fail "retried letter re-sent to delivered targets: $before -> $after"
pass "sfk dlq retry of letter $pos: the 4 targets that had it skipped (duplicate), the dead one dead-lettered again"

# --- 5. 500 x3 then 200; 429 + Retry-After ---------------------------------------
deadline=$((SECONDS + 30))
until [ "$(ok_count flaky)" -ge 1 ] && [ "$(ok_count limited)" -ge 1 ]; do
	[ $SECONDS -lt $deadline ] || fail "flaky/limited not delivered: $(stats | jq -c '{flaky, limited}')"
	sleep 0.2
done
S=$(stats)
[ "$(jq '.flaky.requests' <<<"$S")" -eq 4 ] && [ "$(jq '[.flaky.deliveries[]] | add' <<<"$S")" -eq 1 ] ||
	fail "flaky: $(jq -c '.flaky | del(.attempts)' <<<"$S")"
M=$(curl -sf "http://127.0.0.1:$port/metrics")
grep -E '^sfk_notify_deliveries_total\{target="flaky",outcome="retry"\} 3$' <<<"$M" >/dev/null ||
	fail "flaky retries: $(grep 'target="flaky"' <<<"$M")"
gap=$(jq '.limited.attempts | to_entries[0].value | .[1] - .[0]' <<<"$S")
[ "$(jq '.limited.requests' <<<"$S")" -eq 2 ] || fail "limited: $(jq -c '.limited | del(.attempts)' <<<"$S")"
awk -v g="$gap" 'BEGIN { exit !(g >= 1.9) }' || fail "429 Retry-After: 2 not honoured: gap ${gap}s"
pass "500x3 then 200: delivered once after 3 counted retries; 429 Retry-After 2: retried after ${gap}s; Contact below 1000 employees not sent"

# --- 6. SLA breach record; duplicates ---------------------------------------------
jq -e '[.hook.attempts | keys[]] | length' <<<"$S" >/dev/null
sla_did=$(python3 -c 'import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()+b"\nhook").hexdigest()[:32])' "sla:00Q5e00000Ab001:1:$P")
[ "$(jq --arg d "$sla_did" '.hook.deliveries[$d] // 0' <<<"$S")" -eq 1 ] || fail "sla_breach delivery $sla_did missing"
did_of() { python3 -c 'import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()+b"\n"+sys.argv[2].encode()).hexdigest()[:32])' "$1" "$2"; }
[ "$(jq --arg d "$(did_of "$SLA2" hook)" '.hook.deliveries[$d] // 0' <<<"$S")" -eq 1 ] &&
	[ "$(jq --arg d "$(did_of "$SLA2" discord)" '.discord.deliveries[$d] // 0' <<<"$S")" -eq 1 ] ||
	fail "relayed notify.events breach not delivered to hook (subscription) and discord (its channels)"
pass "sla_breach delivered to the webhook (delivery id = sha256(event id + target)); lead.sla_watch's notify.events record relayed: webhook by subscription, discord by its channels"

before=$(stats | jq '.hook.requests')
head -$N "$WORK/events.txt" | kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -P -t "$TOPIC" -K '\t' -X topic.partitioner=murmur2_random
deadline=$((SECONDS + 30))
until curl -sf "http://127.0.0.1:$port/metrics" |
	awk '/^sfk_decisions_total\{workload="notify.webhook",outcome="duplicate"\}/ {s += $2} END {exit !(s >= '$N')}'; do
	[ $SECONDS -lt $deadline ] || fail "redelivered events not counted as duplicates"
	sleep 0.2
done
[ "$(stats | jq '.hook.requests')" -eq "$before" ] || fail "redelivered events were sent again"
pass "the same $N events again: counted as duplicates, nothing re-sent"

# --- 7. sfk notify test -------------------------------------------------------------
# only the tested target's variables are needed
out=$(env -u SFK_NOTIFY_URL_DEAD "$SFK_BIN_DIR/sfk" notify test --target hook 2>"$WORK/cli.log") ||
	fail "sfk notify test: $(cat "$WORK/cli.log")"
grep -E '^HTTP 200' <<<"$out" >/dev/null || fail "sfk notify test printed: $out"
set +e
out=$("$SFK_BIN_DIR/sfk" notify test --target dead 2>>"$WORK/cli.log")
rc=$?
set -e
[ $rc -eq 1 ] && grep -E '^HTTP 500' <<<"$out" >/dev/null || fail "sfk notify test dead: rc=$rc $out"
set +e
env -u SFK_NOTIFY_SECRET_DEAD "$SFK_BIN_DIR/sfk" notify test --target dead >/dev/null 2>"$WORK/cli2.out"
rc=$?
set -e
[ $rc -eq 1 ] && grep 'SFK_NOTIFY_SECRET_DEAD is not set' "$WORK/cli2.out" >/dev/null ||
	fail "sfk notify test without its secret: rc=$rc $(cat "$WORK/cli2.out")"
S=$(stats)
[ "$(jq '.hook.bad_signature' <<<"$S")" -eq 0 ] || fail "test message signature invalid"
grep -F "$SECRET_HOOK" "$WORK"/*.log >/dev/null && fail "the secret appears in a log"
grep -F "$R/hook/slack" "$WORK"/w1.log >/dev/null && fail "a token-bearing URL appears in a log"
pass "sfk notify test: HTTP 200 (hook, other targets' variables unset), HTTP 500 exit 1 (dead), its unset secret named; no secret or URL logged"

kill -TERM $WPID
wait $WPID || fail "worker exit status $? on SIGTERM"
echo "$NAME: PASS"
