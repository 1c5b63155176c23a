#!/usr/bin/env bash
# it_bridge_invalid_replay: the bridge's checkpoint expires (the sim clock
# passes 72 h while the bridge is down) -> default policy "resync": an error
# line and sfk_bridge_invalid_replays_total, then exactly the Leads modified
# since the checkpoint's commit time come back as SNAPSHOT (flags.resynced),
# the Lead deleted meanwhile as DELETE, then live events flow from -1; at the
# end the last record per Lead on <prefix>cdc.lead matches the sim's state.
# Then the alternatives: policy fail (error line, exit 1) and latest (error
# line, metric, -1 without a resync).
#
# Needs KAFKA_BOOTSTRAP_SERVERS (real broker: eval "$(tests/stack/up --kafka real)");
# starts its own sfk-sim (it moves the sim clock).
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
BIN="$SFK_BIN_DIR/sfk-bridge"
WORK=$(mktemp -d)
BPID=
SIM_STACK=
cleanup() {
	if [ -n "$BPID" ]; then
		kill "$BPID" 2>/dev/null || true
		wait "$BPID" 2>/dev/null || true
	fi
	[ -n "$SIM_STACK" ] && "$SFK_SOURCE_DIR/tests/stack/down" "$SIM_STACK" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "it_bridge_invalid_replay: FAIL: $*" >&2
	for f in "$WORK"/bridge*.log; do
		[ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -20 >&2
	done
	exit 1
}
pass() { echo "ok   $*"; }

[ -x "$BIN" ] || fail "$BIN not built"
[ -x "$SFK_BIN_DIR/sfk-sim" ] || fail "$SFK_BIN_DIR/sfk-sim not built"
command -v kcat >/dev/null || fail "kcat not installed"
command -v jq >/dev/null || fail "jq not installed"
python3 -c 'import jsonschema' 2>/dev/null || fail "python3 jsonschema not installed"
[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] ||
	fail "KAFKA_BOOTSTRAP_SERVERS is not set: run eval \"\$(tests/stack/up --kafka real)\" first"

"$SFK_SOURCE_DIR/tests/stack/up" --sim --no-redis >"$WORK/sim.env" 2>"$WORK/sim-up.log" ||
	fail "cannot start sfk-sim: $(tail -3 "$WORK/sim-up.log")"
SIM_STACK=$(sed -n 's/^export SFK_STACK_DIR=//p' "$WORK/sim.env")
# shellcheck disable=SC1091
. "$WORK/sim.env"
unset REDIS_URL

P="itir$$r$RANDOM."
export SFK_TOPIC_PREFIX=$P SFK_BRIDGE_TRANSACTIONAL_ID="${P}bridge" SFK_ADMIN_ADDR=127.0.0.1:0
export SFK_WORKLOADS_POLICY="$SFK_SOURCE_DIR/policies/workloads.json"
export SFK_WORKLOADS_SCHEMA="$SFK_SOURCE_DIR/schemas/workloads.schema.json"
export SFK_BRIDGE_CHANNELS=/data/LeadChangeEvent SFK_BRIDGE_START_FROM=latest
# No margin: the expected set is then exactly "SystemModstamp >= checkpoint time".
export SFK_BRIDGE_RESYNC_MARGIN=0s
unset SFK_BRIDGE_ON_INVALID_REPLAY # the default policy is under test

ctl() { # ctl METHOD PATH [JSON]
	curl -sS --fail --cacert "$SF_CA_FILE" -H 'Content-Type: application/json' \
		-X "$1" ${3:+-d "$3"} "$SF_SIM_URL$2"
}
records() { # records TOPIC: "key<TAB>value" (read_committed)
	kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "$1" -o beginning -e -q \
		-X isolation.level=read_committed -f '%k\t%s\n' 2>/dev/null || true
}
wait_records() { # wait_records REGEX N SECONDS
	local deadline=$((SECONDS + $3))
	until [ "$(records "${P}cdc.lead" | grep -Ec -- "$1")" -ge "$2" ]; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.3
	done
}
start_bridge() { # start_bridge LOG
	"$BIN" 2>"$WORK/$1" &
	BPID=$!
}
wait_log() { # wait_log LOG REGEX SECONDS
	local deadline=$((SECONDS + $3))
	until grep -E -- "$2" "$WORK/$1" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || return 1
		kill -0 "$BPID" 2>/dev/null || return 1
		sleep 0.2
	done
}
stop_bridge() {
	kill -TERM "$BPID"
	rc=0
	wait "$BPID" || rc=$?
	[ "$rc" -eq 0 ] || fail "bridge exited $rc after SIGTERM (sanitizer report above?)"
	BPID=
}

# 1. A running bridge with a committed checkpoint.
start_bridge bridge1.log
wait_log bridge1.log '"msg":"cometd subscribed"' 30 || fail "bridge not subscribed"
a=$(ctl POST /sim/records/Lead '{"LastName":"Alpha","Company":"A0"}' | jq -r .id)
b=$(ctl POST /sim/records/Lead '{"LastName":"Beta","Company":"B0"}' | jq -r .id)
c=$(ctl POST /sim/records/Lead '{"LastName":"Gamma","Company":"C0"}' | jq -r .id)
u=$(ctl POST /sim/records/Lead '{"LastName":"Untouched","Company":"U0"}' | jq -r .id)
wait_records "\"change_type\":\"CREATE\"" 4 30 || fail "creates not delivered"
stop_bridge
ckpt=$(records "${P}bridge.checkpoints" | grep -F '/data/LeadChangeEvent' | tail -1 | cut -f2)
committed_at=$(jq -r .committed_at <<<"$ckpt")
[ "$committed_at" -gt 0 ] || fail "no checkpoint committed: $ckpt"
pass "checkpoint committed (replay id $(jq -r .replay_id <<<"$ckpt"))"

# 2. While the bridge is down: changes, then 73 h pass (CDC keeps 72 h), more changes.
ctl PATCH "/sim/records/Lead/$a" '{"Company":"A1"}' >/dev/null
ctl DELETE "/sim/records/Lead/$b" >/dev/null
d=$(ctl POST /sim/records/Lead '{"LastName":"Delta","Company":"D0"}' | jq -r .id)
ctl POST /sim/clock "{\"advance_ms\":$((73 * 3600 * 1000))}" >/dev/null
ctl PATCH "/sim/records/Lead/$c" '{"Company":"C1"}' >/dev/null
e=$(ctl POST /sim/records/Lead '{"LastName":"Epsilon","Company":"E0"}' | jq -r .id)

# 3. Restart: invalid replay id -> resync -> subscribe from -1.
start_bridge bridge2.log
wait_log bridge2.log '"msg":"resync done"' 60 || fail "no resync"
wait_log bridge2.log '"msg":"cometd subscribed"' 30 || fail "not subscribed after the resync"
grep '"level":"error"' "$WORK/bridge2.log" | grep -F '"msg":"replay id no longer valid"' |
	grep -F '"policy":"resync"' >/dev/null || fail "no error line for the invalid replay id"
snapshots=$(records "${P}cdc.lead" | grep -F '"change_type":"SNAPSHOT"' | cut -f1 | sort -u | tr '\n' ' ')
# Expected: every live Lead whose SystemModstamp (whole seconds) >= the
# checkpoint's commit time cut to its second (no margin): a, c, d, e, and u
# only if it was created within the checkpoint's second.
ctl GET /sim/org >"$WORK/org0.json"
expected=$(python3 - "$WORK/org0.json" "$committed_at" <<'PY'
import json, sys, datetime
org = json.load(open(sys.argv[1]))
since = int(sys.argv[2]) // 1000 * 1000
out = []
for r in org["Lead"]:
    t = datetime.datetime.strptime(r["SystemModstamp"][:19], "%Y-%m-%dT%H:%M:%S")
    ms = int(t.replace(tzinfo=datetime.timezone.utc).timestamp()) * 1000
    if ms >= since:
        out.append(r["Id"])
print(" ".join(sorted(out)) + " ")
PY
)
for x in "$a" "$c" "$d" "$e"; do
	grep -F "$x" <<<"$expected" >/dev/null || fail "sim stamps: $x not modified after the checkpoint?"
done
[ "$snapshots" = "$expected" ] ||
	fail "SNAPSHOTs for [$snapshots], expected exactly the Leads changed since the checkpoint [$expected]"
deletes=$(records "${P}cdc.lead" | grep -F '"change_type":"DELETE"' | cut -f1 | sort -u | tr -d '\n')
[ "$deletes" = "$b" ] || fail "DELETE records for [$deletes], expected [$b]"
records "${P}cdc.lead" | grep -E '"change_type":"(SNAPSHOT|DELETE)"' | cut -f2 |
	jq -e -s 'all(.[]; .flags.resynced == true and .channel == null)' >/dev/null ||
	fail "resync records not flagged resynced"
pass "invalid replay id -> SNAPSHOT for exactly the Leads changed since the checkpoint ($(wc -w <<<"$expected")), DELETE for the deleted one"

# 4. Live events continue from -1.
f=$(ctl POST /sim/records/Lead '{"LastName":"Phi","Company":"F0"}' | jq -r .id)
ctl PATCH "/sim/records/Lead/$u" '{"Company":"U1"}' >/dev/null
wait_records "^$f	.*\"change_type\":\"CREATE\"" 1 30 || fail "live CREATE after the resync not delivered"
wait_records "^$u	.*\"change_type\":\"UPDATE\"" 1 30 || fail "live UPDATE after the resync not delivered"
pass "live events flow after the resync"

# 5. Nothing lost: the last record per Lead agrees with the sim.
records "${P}cdc.lead" | cut -f2 >"$WORK/all.jsonl"
ctl GET /sim/org >"$WORK/org.json"
python3 - "$WORK/all.jsonl" "$WORK/org.json" "$SFK_SOURCE_DIR/schemas/event.schema.json" "$b" <<'EOF' || fail "final state differs from the sim"
import json, sys, jsonschema
envs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
org = json.load(open(sys.argv[2]))
schema = json.load(open(sys.argv[3]))
v = jsonschema.Draft202012Validator(schema)
for e in envs:
    errs = list(v.iter_errors(e))
    if errs:
        sys.exit("envelope invalid: %s: %s" % (errs[0].message, json.dumps(e)[:300]))
last = {}
for e in envs:
    last[e["record_id"]] = e
leads = org["Lead"]
bad = []
for rec in leads:
    e = last.get(rec["Id"])
    if e is None:
        bad.append("%s missing" % rec["Id"]); continue
    if e["change_type"] == "DELETE" or e["fields"].get("Company") != rec["Company"]:
        bad.append("%s: kafka %s %s, sim %s" % (rec["Id"], e["change_type"], e["fields"].get("Company"), rec["Company"]))
if last.get(sys.argv[4], {}).get("change_type") != "DELETE":
    bad.append("deleted lead's last record is not DELETE")
if bad:
    sys.exit("; ".join(bad))
print("checked %d leads, %d envelopes" % (len(leads), len(envs)))
EOF
pass "every Lead's last record matches the sim; every envelope valid per event.schema.json"

port=$(sed -n 's/.*"msg":"admin listening".*"port":\([0-9]*\).*/\1/p' "$WORK/bridge2.log")
metrics=$(curl -sf "http://127.0.0.1:$port/metrics")
grep -F 'sfk_bridge_invalid_replays_total{channel="/data/LeadChangeEvent",policy="resync"} 1' <<<"$metrics" >/dev/null ||
	fail "invalid replay metric: $(grep invalid <<<"$metrics")"
grep -F 'sfk_bridge_resyncs_total{object="Lead",outcome="ok"} 1' <<<"$metrics" >/dev/null ||
	fail "resync metric: $(grep resyncs <<<"$metrics")"
pass "sfk_bridge_invalid_replays_total and sfk_bridge_resyncs_total counted"
stop_bridge

# 6. The alternatives: another 73 h pass while the bridge is down.
nsnap=$(records "${P}cdc.lead" | grep -c '"SNAPSHOT"' || true)
ctl PATCH "/sim/records/Lead/$a" '{"Company":"A2"}' >/dev/null
ctl POST /sim/clock "{\"advance_ms\":$((73 * 3600 * 1000))}" >/dev/null
SFK_BRIDGE_ON_INVALID_REPLAY=fail "$BIN" 2>"$WORK/bridge3.log" &
BPID=$!
deadline=$((SECONDS + 60))
while kill -0 "$BPID" 2>/dev/null; do
	[ $SECONDS -lt $deadline ] || fail "policy fail: the bridge did not stop"
	sleep 0.2
done
rc=0
wait "$BPID" || rc=$?
BPID=
[ "$rc" -eq 1 ] || fail "policy fail: exit status $rc, expected 1"
grep -F '"msg":"replay id no longer valid"' "$WORK/bridge3.log" | grep -F '"policy":"fail"' >/dev/null ||
	fail "policy fail: no error line"
pass "SFK_BRIDGE_ON_INVALID_REPLAY=fail: error line, exit 1"

SFK_BRIDGE_ON_INVALID_REPLAY=latest "$BIN" 2>"$WORK/bridge4.log" &
BPID=$!
wait_log bridge4.log '"msg":"cometd subscribed".*"replay_id":-1' 30 || fail "policy latest: not subscribed from -1"
grep -F '"msg":"replay id no longer valid"' "$WORK/bridge4.log" | grep -F '"policy":"latest"' >/dev/null ||
	fail "policy latest: no error line"
g=$(ctl POST /sim/records/Lead '{"LastName":"Gimel","Company":"G0"}' | jq -r .id)
wait_records "^$g	.*\"change_type\":\"CREATE\"" 1 30 || fail "policy latest: live CREATE not delivered"
[ "$(records "${P}cdc.lead" | grep -c '"SNAPSHOT"' || true)" -eq "$nsnap" ] || fail "policy latest resynced anyway"
port=$(sed -n 's/.*"msg":"admin listening".*"port":\([0-9]*\).*/\1/p' "$WORK/bridge4.log")
curl -sf "http://127.0.0.1:$port/metrics" |
	grep -F 'sfk_bridge_invalid_replays_total{channel="/data/LeadChangeEvent",policy="latest"} 1' >/dev/null ||
	fail "policy latest: metric not counted"
pass "SFK_BRIDGE_ON_INVALID_REPLAY=latest: error line + metric, no resync, -1, live events"
stop_bridge
echo "it_bridge_invalid_replay: all cases passed"
