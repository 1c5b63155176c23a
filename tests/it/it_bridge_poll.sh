#!/usr/bin/env bash
# it_bridge_poll: sfk-bridge --source poll (orgs without CDC). Leads created,
# updated and deleted in the sim come out on <prefix>cdc.lead as CREATE,
# UPDATE and DELETE envelopes (valid per schemas/event.schema.json, channel
# null, not resynced), CREATEs fanned out to <prefix>wl.lead.route; records
# older than the first watermark (start-from latest) are not emitted; after a
# restart the watermark comes back from the checkpoint topic (poll:Lead) and
# nothing is emitted twice.
#
# Needs KAFKA_BOOTSTRAP_SERVERS (eval "$(tests/stack/up --kafka real)"); starts
# its own sfk-sim (it moves the sim clock).
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
	echo "it_bridge_poll: FAIL: $*" >&2
	for f in "$WORK"/bridge*.log; do
		[ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -15 >&2
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

P="itpl$$r$RANDOM."
export SFK_TOPIC_PREFIX=$P SFK_BRIDGE_TRANSACTIONAL_ID="${P}bridge" SFK_ADMIN_ADDR=127.0.0.1:0
export SFK_WORKLOADS_POLICY="$SFK_SOURCE_DIR/policies/workloads.json"
export SFK_WORKLOADS_SCHEMA="$SFK_SOURCE_DIR/schemas/workloads.schema.json"
export SFK_BRIDGE_START_FROM=latest SFK_BRIDGE_POLL_ENTITIES=Lead,Task SFK_BRIDGE_POLL_INTERVAL=300ms

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
wait_log() { # wait_log LOG REGEX SECONDS
	local deadline=$((SECONDS + $3))
	until grep -E -- "$2" "$WORK/$1" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || return 1
		kill -0 "$BPID" 2>/dev/null || return 1
		sleep 0.2
	done
}
tick() { ctl POST /sim/clock '{"advance_ms":2000}' >/dev/null; } # next SystemModstamp second
# Changes are made as a sales rep: the control API's default user is the sim's
# first user, our integration user (SF_USERNAME), whose changes are echoes.
rep=$(ctl GET /sim/org | jq -r --arg me "$SF_USERNAME" \
	'[.User[] | select(.Username != $me and .IsActive)][0].Id')
[[ $rep == 005* ]] || fail "no other active user in the sim: $rep"

old=$(ctl POST "/sim/records/Lead?user=$rep" '{"LastName":"Before","Company":"Old"}' | jq -r .id)
tick
"$BIN" --source poll 2>"$WORK/bridge1.log" &
BPID=$!
wait_log bridge1.log '"msg":"bridge polling"' 30 || fail "bridge not polling"
port=$(sed -n 's/.*"msg":"admin listening".*"port":\([0-9]*\).*/\1/p' "$WORK/bridge1.log")
deadline=$((SECONDS + 20))
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do
	[ $SECONDS -lt $deadline ] || fail "/readyz not ready in poll mode: $(curl -s "http://127.0.0.1:$port/readyz")"
	sleep 0.2
done

a=$(ctl POST "/sim/records/Lead?user=$rep" '{"LastName":"Alpha","Company":"A0"}' | jq -r .id)
b=$(ctl POST "/sim/records/Lead?user=$rep" '{"LastName":"Beta","Company":"B0"}' | jq -r .id)
wait_records "^($a|$b)	.*\"change_type\":\"CREATE\"" 2 30 || fail "creates not polled"
tick
ctl PATCH "/sim/records/Lead/$a?user=$rep" '{"Company":"A1"}' >/dev/null
ctl DELETE "/sim/records/Lead/$b?user=$rep" >/dev/null
wait_records "^$a	.*\"change_type\":\"UPDATE\"" 1 30 || fail "update not polled"
wait_records "^$b	.*\"change_type\":\"DELETE\"" 1 30 || fail "delete not polled"
upd=$(records "${P}cdc.lead" | grep "^$a	" | grep '"UPDATE"' | cut -f2)
[ "$(jq -r .fields.Company <<<"$upd")" = A1 ] || fail "UPDATE without the new value: $upd"
records "${P}wl.lead.route" | grep "^$a	" >/dev/null || fail "CREATE not fanned out to ${P}wl.lead.route"
metrics=$(curl -sf "http://127.0.0.1:$port/metrics")
awk '$1 == "sfk_api_usage_ratio" && $2 > 0 {ok = 1} END {exit !ok}' <<<"$metrics" ||
	fail "poll API calls not seen by the quota governor: $(grep api_usage <<<"$metrics")"
grep -E '^sfk_bridge_polls_total\{object="Lead",outcome="ok"\} [1-9]' <<<"$metrics" >/dev/null ||
	fail "sfk_bridge_polls_total: $(grep polls_total <<<"$metrics")"
pass "poll: CREATE, UPDATE (new value), DELETE on ${P}cdc.lead; CREATE fanned out; API usage governed"

# Echoes: polling sees no changeOrigin, so a change last made by our own
# integration user (the control API writes as the sim's first user, which is
# SF_USERNAME) is flagged echo and never fanned out; a sales rep's is not.
tick
ctl PATCH "/sim/records/Lead/$a" '{"Status":"Working - Contacted"}' >/dev/null
wait_records "^$a	.*\"Working - Contacted\"" 1 30 || fail "our own update not polled"
tick
ctl PATCH "/sim/records/Lead/$a?user=$rep" '{"Title":"CTO"}' >/dev/null
wait_records "^$a	.*\"Title\":\"CTO\"" 1 30 || fail "the rep's update not polled"
ours=$(records "${P}cdc.lead" | grep "^$a	" | grep '"Working - Contacted"' | grep -v '"CTO"' | cut -f2)
theirs=$(records "${P}cdc.lead" | grep "^$a	" | grep '"Title":"CTO"' | cut -f2)
[ "$(jq -r .flags.echo <<<"$ours")" = true ] || fail "our own write is not flagged echo: $ours"
[ "$(jq -r .flags.echo <<<"$theirs")" = false ] || fail "the rep's write is flagged echo: $theirs"
deadline=$((SECONDS + 20))
until records "${P}wl.notify.webhook" | grep "^$a	" | grep '"Title":"CTO"' >/dev/null; do
	[ $SECONDS -lt $deadline ] || fail "the rep's status-bearing update not fanned out to notify.webhook"
	sleep 0.3
done
n=$(records "${P}wl.notify.webhook" | grep "^$a	" | cut -f2 |
	jq -s '[.[] | select(.fields.Status == "Working - Contacted" and .fields.Title != "CTO")] | length')
[ "$n" = 0 ] || fail "our own write was fanned out ($n records)"
pass "poll echoes: our integration user's change flagged echo and not fanned out; a rep's change fanned out"

# Restart: the watermark comes back, nothing is emitted twice.
kill -TERM "$BPID"
rc=0
wait "$BPID" || rc=$?
[ "$rc" -eq 0 ] || fail "bridge exited $rc after SIGTERM (sanitizer report above?)"
BPID=
records "${P}bridge.checkpoints" | grep '^poll:Lead	' >/dev/null || fail "no poll:Lead watermark in the checkpoint topic"
tick
c=$(ctl POST "/sim/records/Lead?user=$rep" '{"LastName":"Gamma","Company":"C0"}' | jq -r .id)
"$BIN" --source poll 2>"$WORK/bridge2.log" &
BPID=$!
wait_log bridge2.log '"msg":"poll watermark loaded","object":"Lead"' 30 || fail "watermark not loaded"
wait_records "^$c	.*\"change_type\":\"CREATE\"" 1 30 || fail "create while down not polled after the restart"
t=$(ctl POST "/sim/records/Task?user=$rep" "{\"Subject\":\"Call\",\"WhoId\":\"$a\"}" | jq -r .id)
deadline=$((SECONDS + 30))
until records "${P}cdc.task" | grep "^$t	" | grep '"CREATE"' >/dev/null; do
	[ $SECONDS -lt $deadline ] || fail "Task create not polled"
	sleep 0.3
done

records "${P}cdc.lead" | cut -f2 >"$WORK/lead.jsonl"
records "${P}cdc.task" | cut -f2 >"$WORK/task.jsonl"
python3 - "$SFK_SOURCE_DIR/schemas/event.schema.json" "$old" "$a" "$b" "$c" "$WORK/lead.jsonl" "$WORK/task.jsonl" <<'PY' || fail "poll envelopes wrong"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1])); old, a, b, c = sys.argv[2:6]
envs = [json.loads(l) for f in sys.argv[6:] for l in open(f) if l.strip()]
v = jsonschema.Draft202012Validator(schema)
for e in envs:
    errs = list(v.iter_errors(e))
    if errs:
        sys.exit("invalid envelope: %s: %s" % (errs[0].message, json.dumps(e)[:300]))
    if e["channel"] is not None or e["flags"]["resynced"] or e["event_id"] != "%s:%s:%d" % (e["entity"], e["record_id"], e["replay_id"]):
        sys.exit("unexpected envelope header: %s" % json.dumps(e)[:300])
seq = {}
for e in envs:
    if e["entity"] == "Lead":
        seq.setdefault(e["record_id"], []).append(e["change_type"])
want = {a: ["CREATE", "UPDATE", "UPDATE", "UPDATE"], b: ["CREATE", "DELETE"], c: ["CREATE"]}
if seq != want:
    sys.exit("per-Lead change types %s, expected %s (the Lead from before the start must not appear)" % (seq, want))
print("%d envelopes valid" % len(envs))
PY
pass "restart resumes from the poll:Lead watermark: nothing twice, nothing from before the start; Task polled; every envelope valid"
kill -TERM "$BPID"
rc=0
wait "$BPID" || rc=$?
BPID=
[ "$rc" -eq 0 ] || fail "bridge exited $rc after SIGTERM (sanitizer report above?)"
echo "it_bridge_poll: all cases passed"
