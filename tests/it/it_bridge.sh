#!/usr/bin/env bash
# it_bridge: sfk-bridge end to end against sfk-sim and Kafka, as an operator
# sees it. Records appear on the topics a worker reads (read_committed):
#   a Lead created in the org -> sfk.cdc.lead + its three workload topics +
#   a checkpoint; our own write (echo) -> published, flagged, never fanned
#   out; a closed Task on a Lead -> lead.first_touch_detect keyed by the
#   Lead; a malformed event -> the bridge's DLQ with the reason; a gap event
#   -> re-fetched through REST, then fanned out; a restart resumes from the
#   committed checkpoint without loss or duplicates; SIGTERM exits 0.
# Also --check-config on good and bad fan-out rules.
#
# Needs: eval "$(tests/stack/up --kafka mock --sim)" (or --kafka real).
# Topics get a per-run prefix, so runs never see each other's records.
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
BIN="$SFK_BIN_DIR/sfk-bridge"
WORK=$(mktemp -d)
BPID=
cleanup() {
	if [ -n "$BPID" ]; then
		kill "$BPID" 2>/dev/null || true
		wait "$BPID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "it_bridge: FAIL: $*" >&2
	local f
	for f in "$WORK"/*.log; do
		[ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -15 >&2
	done
	exit 1
}
pass() { echo "ok   $*"; }

[ -x "$BIN" ] || fail "$BIN not built"
command -v kcat >/dev/null || fail "kcat not installed"
command -v jq >/dev/null || fail "jq not installed"
for v in SF_SIM_URL SF_CA_FILE SF_LOGIN_URL SF_TOKEN_URL SF_CLIENT_ID SF_USERNAME \
	SF_PRIVATE_KEY_PATH SF_API_VERSION KAFKA_BOOTSTRAP_SERVERS; do
	[ -n "${!v:-}" ] || fail "$v is not set: run eval \"\$(tests/stack/up --kafka mock --sim)\" first"
done

P="itb$$r$RANDOM."
export SFK_TOPIC_PREFIX=$P SFK_BRIDGE_TRANSACTIONAL_ID="${P}bridge" SFK_ADMIN_ADDR=127.0.0.1:0
export SFK_WORKLOADS_POLICY="$SFK_SOURCE_DIR/policies/workloads.json"
export SFK_WORKLOADS_SCHEMA="$SFK_SOURCE_DIR/schemas/workloads.schema.json"
export SFK_CLIENT_ID=sfk-kpis SFK_BRIDGE_START_FROM=latest
unset REDIS_URL # per-process tokens: this test is about the bridge

ctl() { # ctl METHOD PATH [JSON]: the sim's control API
	curl -sS --fail --cacert "$SF_CA_FILE" -H 'Content-Type: application/json' \
		-X "$1" ${3:+-d "$3"} "$SF_SIM_URL$2"
}
create() { # create TYPE JSON: prints the new record's id
	ctl POST "/sim/records/$1" "$2" | jq -r .id
}
raw_event() { # raw_event CHANNEL DATA_JSON: publish a CometD data object as-is
	ctl POST "/sim/events/raw?channel=$1" "$2" >/dev/null
}
# topic SUFFIX: "key<TAB>headers<TAB>value" lines committed on <prefix>SUFFIX.
topic() {
	kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "$P$1" -o beginning -e -q \
		-X isolation.level=read_committed -f '%k\t%h\t%s\n' 2>/dev/null || true
}
# wait_topic SUFFIX REGEX N SECONDS: poll until N records match.
wait_topic() {
	local deadline=$((SECONDS + $4))
	until [ "$(topic "$1" | grep -Ec -- "$2")" -ge "$3" ]; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.3
	done
}
wait_log() { # wait_log FILE REGEX N SECONDS
	local deadline=$((SECONDS + $4))
	local n
	while n=$(grep -Ec -- "$2" "$1" 2>/dev/null); [ "${n:-0}" -lt "$3" ]; do
		[ $SECONDS -lt $deadline ] || return 1
		kill -0 "$BPID" 2>/dev/null || fail "sfk-bridge exited"
		sleep 0.1
	done
}
start_bridge() { # start_bridge LOGNAME
	"$BIN" 2>"$WORK/$1.log" &
	BPID=$!
	wait_log "$WORK/$1.log" '"msg":"cometd subscribed"' 3 30 || fail "$1: not subscribed"
	PORT=$(sed -n 's/.*"msg":"admin listening".*"port":\([0-9]*\).*/\1/p' "$WORK/$1.log")
	[ -n "$PORT" ] || fail "$1: no admin port in the log"
}
stop_bridge() {
	kill -TERM "$BPID"
	local deadline=$((SECONDS + 20))
	while kill -0 "$BPID" 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || fail "sfk-bridge still running 20 s after SIGTERM"
		sleep 0.1
	done
	wait "$BPID" || fail "sfk-bridge exit status $? after SIGTERM"
	BPID=
}

# 0. --check-config: the shipped rules pass, broken rules are listed by path.
[ "$("$BIN" --check-config)" = "configuration OK" ] || fail "--check-config"
printf '{"version":"1","workloads":{"lead.route":{"rules":[{"entity":"Lead","change_types":["NOPE"],"key":{"source":"record_id"}}]}}}' >"$WORK/bad.json"
set +e
SFK_WORKLOADS_POLICY="$WORK/bad.json" "$BIN" --check-config 2>"$WORK/badcheck.log" >/dev/null
rc=$?
SFK_WORKLOADS_POLICY="$WORK/bad.json" "$BIN" 2>"$WORK/badpolicy.log" >/dev/null
rc2=$?
set -e
[ $rc -eq 78 ] || fail "bad policy: --check-config exit $rc, want 78"
[ $rc2 -eq 78 ] || fail "bad policy: exit $rc2, want 78"
grep -q 'fan-out rules: .*change_types\[0\]' "$WORK/badcheck.log" ||
	fail "bad policy: --check-config does not list the rule problem"
grep -q 'change_types\[0\]' "$WORK/badpolicy.log" || fail "bad policy: no JSON path in the problems"
grep -q '\$.version' "$WORK/badpolicy.log" || fail "bad policy: version problem not listed"
pass "--check-config OK; broken fan-out rules rejected with every JSON path (exit 78)"

start_bridge run1

# 1. A Lead created in the org.
lead=$(create Lead '{"LastName":"Lovelace","Company":"Engines","Country":"France"}')
wait_topic cdc.lead "^$lead	" 1 30 || fail "lead: no sfk.cdc.lead record"
for wl in lead.route lead.first_touch_detect outreach.template_suggest; do
	wait_topic "wl.$wl" "^$lead	.*sfk.workload=$wl" 1 15 || fail "lead: nothing on wl.$wl"
done
env=$(topic cdc.lead | grep "^$lead	" | cut -f3)
[ "$(jq -r '.entity + " " + .change_type + " " + .record_id' <<<"$env")" = "Lead CREATE $lead" ] ||
	fail "lead: envelope $env"
[ "$(jq -r .fields.Company <<<"$env")" = Engines ] || fail "lead: fields not carried"
[ "$(jq -r .flags.echo <<<"$env")" = false ] || fail "lead: flagged echo"
rid=$(jq -r .replay_id <<<"$env")
topic cdc.lead | grep "^$lead	" | cut -f2 | grep -c "sfk.event_id=Lead:$lead:$rid" >/dev/null ||
	fail "lead: event id header"
wait_topic bridge.checkpoints "\"replay_id\":$rid" 1 10 || fail "lead: no checkpoint $rid"
pass "Lead create -> cdc.lead, 3 workload topics, checkpoint $rid"

# 2. Our own write comes back as an echo: published, flagged, not fanned out.
now=$(date -u +%s)000
raw_event /data/LeadChangeEvent "{\"schema\":\"x\",\"payload\":{\"OwnerId\":\"005000000000001AAA\",\"ChangeEventHeader\":{\"entityName\":\"Lead\",\"changeType\":\"CREATE\",\"recordIds\":[\"00Q00000000EchoAAA\"],\"commitTimestamp\":$now,\"commitNumber\":9007199254740993,\"transactionKey\":\"echo-1\",\"sequenceNumber\":1,\"changeOrigin\":\"com/salesforce/api/rest/61.0;client=sfk-kpis\",\"changedFields\":[],\"commitUser\":\"005000000000001AAA\"}}}"
wait_topic cdc.lead '^00Q00000000EchoAAA	' 1 30 || fail "echo: not published"
env=$(topic cdc.lead | grep '^00Q00000000EchoAAA	' | cut -f3)
[ "$(jq -r .flags.echo <<<"$env")" = true ] || fail "echo: not flagged"
grep -q '"commit_number":9007199254740993' <<<"$env" || fail "echo: commit number not exact"
# a later Lead fanned out proves the echo's batch is long done
lead2=$(create Lead '{"LastName":"Later","Company":"Acme"}')
wait_topic wl.lead.route "^$lead2	" 1 30 || fail "echo: later lead not fanned out"
[ "$(topic wl.lead.route | grep -c '^00Q00000000EchoAAA	')" -eq 0 ] || fail "echo: fanned out"
pass "echo -> published with flags.echo, exact commit_number, never fanned out"

# 3. A closed Task on the Lead feeds first-touch detection keyed by the Lead.
task=$(create Task "{\"Subject\":\"Call\",\"Status\":\"Completed\",\"WhoId\":\"$lead\"}")
wait_topic cdc.task "^$task	" 1 30 || fail "task: no sfk.cdc.task record"
wait_topic wl.lead.first_touch_detect "^$lead	.*\"record_id\":\"$task\"" 1 15 ||
	fail "task: not fanned out to first_touch keyed by the Lead"
pass "closed Task -> wl.lead.first_touch_detect keyed by its Lead"

# 4. A malformed event goes to the DLQ with the reason; the stream goes on.
raw_event /data/LeadChangeEvent '{"schema":"x","payload":{"ChangeEventHeader":{"entityName":"Lead","changeType":"CREATE","recordIds":["00Q00000000BadXAAA"],"commitTimestamp":1,"commitNumber":"not-a-number","transactionKey":"t","sequenceNumber":1,"changeOrigin":"","changedFields":[]}}}'
wait_topic dlq.bridge 'sfk.error_code=parse.*commitNumber: expected an integer, got string' 1 30 ||
	fail "dlq: malformed event not dead-lettered with its reason"
lead3=$(create Lead '{"LastName":"After","Company":"Acme"}')
wait_topic cdc.lead "^$lead3	" 1 30 || fail "dlq: stream stopped after a bad event"
pass "malformed event -> dlq.bridge with the JSON path of the problem"

# 5. A gap event is re-fetched through REST, then fanned out.
ctl POST /sim/faults '{"gap_next":1}' >/dev/null
gap=$(create Lead '{"LastName":"Gap","Company":"Refetch Ltd"}')
wait_topic cdc.lead "^$gap	" 1 30 || fail "gap: nothing on cdc.lead"
env=$(topic cdc.lead | grep "^$gap	" | cut -f3)
[ "$(jq -r .change_type <<<"$env")" = GAP_CREATE ] || fail "gap: change type $(jq -r .change_type <<<"$env")"
[ "$(jq -r '.flags.gap_resolved' <<<"$env")" = true ] || fail "gap: not resolved"
[ "$(jq -r .fields.Company <<<"$env")" = "Refetch Ltd" ] || fail "gap: re-fetched fields missing"
wait_topic wl.lead.route "^$gap	" 1 15 || fail "gap: resolved GAP_CREATE not routed"
pass "GAP_CREATE -> re-fetched through REST, gap_resolved, routed"

# 6. Readiness and metrics.
curl -sf "http://127.0.0.1:$PORT/readyz" | grep -c "\"ready\"" >/dev/null || fail "readyz"
curl -sf "http://127.0.0.1:$PORT/metrics" | grep -c '^sfk_cdc_events_total{object="Lead",change_type="CREATE"} [1-9]' >/dev/null ||
	fail "metrics: sfk_cdc_events_total"
pass "/readyz ready, /metrics counts events"

# 7. Restart: what happened while the bridge was down arrives once.
stop_bridge
grep -q '"msg":"cometd disconnected"' "$WORK/run1.log" || fail "restart: no disconnect on SIGTERM"
down=$(create Lead '{"LastName":"WhileDown","Company":"Acme"}')
before=$(topic cdc.lead | wc -l)
start_bridge run2
grep -q "\"msg\":\"checkpoint loaded\",\"channel\":\"/data/LeadChangeEvent\"" "$WORK/run2.log" ||
	fail "restart: checkpoint not loaded"
wait_topic cdc.lead "^$down	" 1 30 || fail "restart: event created while down is lost"
after=$(topic cdc.lead | wc -l)
[ $((after - before)) -eq 1 ] || fail "restart: $((after - before)) new records, want 1 (duplicates?)"
stop_bridge
pass "restart resumes from the checkpoint: 1 new record, no duplicates"
echo "it_bridge: all cases passed"
