#!/usr/bin/env bash
# it_worker_route_faults: sfk-worker (lead.route) under Salesforce faults, on a
# private sfk-sim + Redis (it injects faults and counts writes per record):
#   a 503 burst on sObject Collections -> nothing dead-lettered, the Lead is
#   written once when the burst ends; UNABLE_TO_LOCK_ROW on half the records ->
#   retried, all routed; an expired session -> token re-minted, written once;
#   a permanent error (an owner id the org does not have) -> dlq.lead.route
#   with the Salesforce error code, and the next Lead is still routed.
# Needs KAFKA_BOOTSTRAP_SERVERS (shared broker, per-run topic prefix).
set -euo pipefail
NAME=it_worker_route_faults
IT_KILL=9 # no graceful stop needed
. "$SFK_SOURCE_DIR/tests/it/lib/pipeline.sh"
WORKER="$SFK_BIN_DIR/sfk-worker"
BRIDGE="$SFK_BIN_DIR/sfk-bridge"
it_require sfk-bridge sfk-worker sfk-sim -- kcat jq curl
it_need_kafka
it_private_sim
it_pipeline_env itwf
# The shipped policy plus a LATAM enterprise pool whose only owner the org does not have
# (a well-formed id with a valid checksum): writes for it fail permanently.
jq '.pools += [{"id": "ent_latam", "segment": "ENT", "region": "LATAM",
	"members": [{"owner_id": "005000009999999AAA", "weight": 1}]}]' \
	"$SFK_SOURCE_DIR/policies/routing_policy.json" >"$WORK/policy.json"
export SFK_ROUTING_POLICY="$WORK/policy.json"
VERSION=$(jq -r .version "$WORK/policy.json")

topic() {
	kcat -b "$BROKERS" -C -t "$P$1" -o beginning -e -q \
		-X isolation.level=read_committed -f '%k\t%h\t%s\n' 2>/dev/null || true
}
wait_log() { # wait_log FILE REGEX N SECONDS PID
	local deadline=$((SECONDS + $4)) n
	while n=$(grep -Ec -- "$2" "$1" 2>/dev/null); [ "${n:-0}" -lt "$3" ]; do
		[ $SECONDS -lt $deadline ] || return 1
		kill -0 "$5" 2>/dev/null || fail "$(basename "$1" .log) exited"
		sleep 0.1
	done
}
lead() { # lead COUNTRY EMPLOYEES: new Lead id
	ctl POST /sim/records/Lead "{\"LastName\":\"F\",\"Company\":\"Acme\",\"Country\":\"$1\",\"NumberOfEmployees\":$2}" |
		jq -r .id
}
field() { ctl GET "/sim/records/Lead/$1" | jq -r ".$2 // empty"; }
writes() { ctl GET /sim/stats | jq -r --arg id "$1" '.writes[$id] // 0'; }
wait_routed() { # wait_routed ID SECONDS
	local deadline=$((SECONDS + $2))
	until [ "$(field "$1" Routing_Policy_Version__c)" = "$VERSION" ]; do
		[ $SECONDS -lt $deadline ] || return 1
		kill -0 "$WPID" 2>/dev/null || fail "worker exited"
		sleep 0.3
	done
}
composite_503s() {
	ctl GET /sim/stats | jq -r '.status["503"] // 0'
}

# The topic exists before the worker subscribes (a record nobody routes: an UPDATE).
printf 'warmup\t{not json\n' | kcat -b "$BROKERS" -P -t "${P}wl.lead.route" -K $'\t' 2>/dev/null ||
	fail "cannot create the workload topic"
"$BRIDGE" 2>"$WORK/bridge.log" &
BPID=$!
PIDS+=("$BPID")
wait_log "$WORK/bridge.log" '"msg":"cometd subscribed"' 3 30 "$BPID" || fail "bridge: not subscribed"
"$WORKER" --workload lead.route --batch-wait 100ms --write-attempts 2 --retry-base 100ms \
	2>"$WORK/worker.log" &
WPID=$!
PIDS+=("$WPID")
wait_log "$WORK/worker.log" '"msg":"kafka partitions assigned","count":[1-9]' 1 60 "$WPID" ||
	fail "worker: no partitions assigned"

# 1. 503 burst: retried, nothing dead-lettered, written once after the burst.
ctl POST /sim/faults '{"errors":[{"path":"/composite/sobjects","rate":1.0,"status":503}]}' >/dev/null
id=$(lead "United States" 20)
deadline=$((SECONDS + 60))
until [ "$(composite_503s)" -ge 2 ]; do
	[ $SECONDS -lt $deadline ] || fail "503 burst: the worker never tried to write"
	sleep 0.3
done
[ -z "$(field "$id" Routing_Policy_Version__c)" ] || fail "503 burst: routed during the burst?"
ctl POST /sim/faults '{}' >/dev/null
wait_routed "$id" 90 || fail "503 burst: lead not routed after the burst"
[ "$(writes "$id")" = 1 ] || fail "503 burst: $(writes "$id") writes, want 1"
[ "$(topic dlq.lead.route | grep -c "^$id	" || true)" = 0 ] || fail "503 burst: dead-lettered"
pass "503 burst -> retried, not dead-lettered, written once afterwards"

# 2. UNABLE_TO_LOCK_ROW on half the written records: retried, all routed.
ctl POST /sim/faults '{"lock_rate":0.5}' >/dev/null
ids=()
for c in Germany Japan "United States" France; do ids+=("$(lead "$c" 30)"); done
for i in "${ids[@]}"; do wait_routed "$i" 90 || fail "lock: $i not routed"; done
ctl POST /sim/faults '{}' >/dev/null
for i in "${ids[@]}"; do
	[ "$(topic dlq.lead.route | grep -c "^$i	" || true)" = 0 ] || fail "lock: $i dead-lettered"
done
pass "UNABLE_TO_LOCK_ROW -> retried, every lead routed, none dead-lettered"

# 3. Session expiry: the worker mints a new token and writes once.
ctl POST /sim/faults '{"expire_sessions":true}' >/dev/null
id=$(lead USA 40)
wait_routed "$id" 60 || fail "session expiry: lead not routed"
[ "$(writes "$id")" = 1 ] || fail "session expiry: $(writes "$id") writes, want 1"
pass "expired session -> new token, written once"

# 4. Permanent error -> DLQ with the Salesforce code; the stream goes on.
bad=$(lead Brazil 5000)
deadline=$((SECONDS + 60))
until topic dlq.lead.route | grep "^$bad	.*sfk.error_code=INVALID_CROSS_REFERENCE_KEY" >/dev/null; do
	[ $SECONDS -lt $deadline ] || fail "permanent: $bad not dead-lettered with its code"
	sleep 0.3
done
hdrs=$(topic dlq.lead.route | grep "^$bad	" | head -1 | cut -f2)
grep -q 'sfk.error_class=permanent' <<<"$hdrs" || fail "permanent: class header: $hdrs"
grep -q "sfk.event_id=Lead:$bad:" <<<"$hdrs" || fail "permanent: event id header: $hdrs"
[ -z "$(field "$bad" Routing_Policy_Version__c)" ] || fail "permanent: lead was written"
next=$(lead Japan 10)
wait_routed "$next" 60 || fail "permanent: the next lead is not routed"
pass "permanent Salesforce error -> dlq.lead.route with INVALID_CROSS_REFERENCE_KEY; stream goes on"

kill -TERM "$WPID"
wait "$WPID" || fail "worker exit status $? after SIGTERM"
pass "SIGTERM -> exit 0"

# 5. Optional LLM (SFK_LLM_URL): a fake OpenAI-compatible endpoint. Mode "pick"
# answers another candidate owner than the rules chose (and logs it); "error"
# answers 500; "slow" answers after the timeout. The rules decide on any error.
cat >"$WORK/fake_llm.py" <<'PY'
import json, sys, time, http.server
work = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = open(work + "/llm_mode").read().strip()
        if mode == "slow":
            time.sleep(3)
        if mode == "error":
            self.send_response(500); self.end_headers(); self.wfile.write(b"{}"); return
        user = json.loads(req["messages"][1]["content"])
        rule = user["rule_decision"]["owner_id"]
        users = [c for c in user["candidates"] if c.startswith("005") and c != rule]
        pick = users[0] if users else rule
        with open(work + "/llm_picks", "a") as f:
            f.write(user["lead"]["Id"] + " " + pick + "\n")
        content = json.dumps({"owner_id": pick, "reason": "fake"})
        body = json.dumps({"id": "chatcmpl-x", "object": "chat.completion", "model": "fake-llm-1",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": content}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(work + "/llm_port", "w").write(str(srv.server_address[1]))
srv.serve_forever()
PY
flywheel_of() { # flywheel_of LEAD: its flywheel record (polls: emitted after the write)
	local deadline=$((SECONDS + 30)) r
	while :; do
		r=$(topic flywheel | grep -F "\"lead_id\":\"$1\"" | head -1 | cut -f3 || true)
		[ -n "$r" ] && break
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.3
	done
	printf '%s\n' "$r"
}
echo pick >"$WORK/llm_mode"
python3 "$WORK/fake_llm.py" "$WORK" &
PIDS+=("$!")
deadline=$((SECONDS + 10))
until [ -s "$WORK/llm_port" ]; do
	[ $SECONDS -lt $deadline ] || fail "fake LLM did not start"
	sleep 0.1
done
SFK_LLM_URL="http://127.0.0.1:$(cat "$WORK/llm_port")/v1/chat/completions" SFK_LLM_TIMEOUT=500ms \
	SFK_LLM_API_KEY=sk-test-secret-123 \
	"$WORKER" --workload lead.route --batch-wait 100ms 2>"$WORK/worker_llm.log" &
WPID=$!
PIDS+=("$WPID")
wait_log "$WORK/worker_llm.log" '"msg":"kafka partitions assigned","count":[1-9]' 1 60 "$WPID" ||
	fail "llm worker: no partitions assigned"
llm_lead=$(lead "United States" 25)
wait_routed "$llm_lead" 60 || fail "llm: lead not routed"
picked=$(sed -n "s/^$llm_lead //p" "$WORK/llm_picks" | head -1)
[ -n "$picked" ] || fail "llm: the fake LLM was not asked about $llm_lead"
[ "$(field "$llm_lead" OwnerId)" = "$picked" ] || fail "llm: owner is not the LLM's pick $picked"
fw=$(flywheel_of "$llm_lead") || fail "llm: no flywheel record for $llm_lead"
[ "$(jq -r .request.model <<<"$fw")" = fake-llm-1 ] || fail "llm: flywheel model $(jq -r .request.model <<<"$fw")"
[ "$(jq -r '.response.choices[0].message.content | fromjson | .decided_by' <<<"$fw")" = llm ] ||
	fail "llm: flywheel decision not marked decided_by llm"
for mode in error slow; do
	echo $mode >"$WORK/llm_mode"
	id=$(lead "United States" 35)
	wait_routed "$id" 60 || fail "llm $mode: lead not routed by the rules"
	fw=$(flywheel_of "$id") || fail "llm $mode: no flywheel record for $id"
	[ "$(jq -r '.response.choices[0].message.content | fromjson | .decided_by' <<<"$fw")" = rules ] ||
		fail "llm $mode: not decided by the rules"
	jq -e '.response.choices[0].message.content | fromjson | .llm_error' <<<"$fw" >/dev/null ||
		fail "llm $mode: llm_error not recorded"
done
grep -q 'sk-test-secret-123' "$WORK"/*.log && fail "llm: the API key appears in a log"
kill -TERM "$WPID"
wait "$WPID" || fail "llm worker exit status $? after SIGTERM"
pass "LLM: its pick wins and is recorded (model, decided_by); 500 and timeout -> rules decide"
echo "it_worker_route_faults: all cases passed"
