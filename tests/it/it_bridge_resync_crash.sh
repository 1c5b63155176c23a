#!/usr/bin/env bash
# it_bridge_resync_crash: kill -9 of sfk-bridge in the middle of an entity
# resync (after an invalid replay id), then a restart: the bridge finds the
# unfinished resync in the checkpoint topic (resync:Lead), resumes it after
# the last committed chunk, and in the end every Lead changed since the
# checkpoint is on <prefix>cdc.lead as exactly ONE SNAPSHOT (read_committed),
# every Lead deleted meanwhile as one DELETE, and live events flow on. Then
# the same for the resync a GAP_OVERFLOW triggers: killed in the middle, it
# is resumed by the next start (each live Lead one more SNAPSHOT, not two).
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
N=${IT_RESYNC_CRASH_LEADS:-3000}
NDEL=20
cleanup() {
	if [ -n "$BPID" ]; then
		kill -9 "$BPID" 2>/dev/null || true
		wait "$BPID" 2>/dev/null || true
	fi
	[ -n "$SIM_STACK" ] && "$SFK_SOURCE_DIR/tests/stack/down" "$SIM_STACK" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "it_bridge_resync_crash: FAIL: $*" >&2
	for f in "$WORK"/bridge*.log; do
		[ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | grep -v 'chunk committed' | tail -15 >&2
	done
	exit 1
}
pass() { echo "ok   $*"; }

[ -x "$BIN" ] || fail "$BIN not built"
[ -x "$SFK_BIN_DIR/sfk-sim" ] || fail "$SFK_BIN_DIR/sfk-sim not built"
command -v kcat >/dev/null || fail "kcat not installed"
command -v jq >/dev/null || fail "jq not installed"
[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] ||
	fail "KAFKA_BOOTSTRAP_SERVERS is not set: run eval \"\$(tests/stack/up --kafka real)\" first"

# Updates of more than 3 fields overflow (GAP_OVERFLOW) in this sim.
SIM_EXTRA_ARGS="--opt cdc.overflow_changes=3" "$SFK_SOURCE_DIR/tests/stack/up" --sim --no-redis >"$WORK/sim.env" 2>"$WORK/sim-up.log" ||
	fail "cannot start sfk-sim: $(tail -3 "$WORK/sim-up.log")"
SIM_STACK=$(sed -n 's/^export SFK_STACK_DIR=//p' "$WORK/sim.env")
# shellcheck disable=SC1091
. "$WORK/sim.env"
unset REDIS_URL

P="itrc$$r$RANDOM."
export SFK_TOPIC_PREFIX=$P SFK_BRIDGE_TRANSACTIONAL_ID="${P}bridge" SFK_ADMIN_ADDR=127.0.0.1:0
export SFK_WORKLOADS_POLICY="$SFK_SOURCE_DIR/policies/workloads.json"
export SFK_WORKLOADS_SCHEMA="$SFK_SOURCE_DIR/schemas/workloads.schema.json"
export SFK_BRIDGE_CHANNELS=/data/LeadChangeEvent SFK_BRIDGE_START_FROM=latest
export SFK_BRIDGE_RESYNC_MARGIN=0s SFK_BRIDGE_RESYNC_CHUNK=20
unset SFK_BRIDGE_ON_INVALID_REPLAY

ctl() { # ctl METHOD PATH [JSON]
	curl -sS --fail --cacert "$SF_CA_FILE" -H 'Content-Type: application/json' \
		-X "$1" ${3:+-d "$3"} "$SF_SIM_URL$2"
}
records() { # records TOPIC: "key<TAB>value" (read_committed)
	kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "$1" -o beginning -e -q \
		-X isolation.level=read_committed -f '%k\t%s\n' 2>/dev/null || true
}
wait_log() { # wait_log LOG REGEX SECONDS [FROM_LINE] (fast poll)
	local deadline=$((SECONDS + $3))
	until tail -n +"${4:-1}" "$WORK/$1" 2>/dev/null | grep -E -- "$2" >/dev/null; do
		[ $SECONDS -lt $deadline ] || return 1
		kill -0 "$BPID" 2>/dev/null || return 1
		sleep 0.02
	done
}

# 1. A checkpoint, then the bridge stops.
"$BIN" 2>"$WORK/bridge1.log" &
BPID=$!
wait_log bridge1.log '"msg":"cometd subscribed"' 30 || fail "bridge not subscribed"
first=$(ctl POST /sim/records/Lead '{"LastName":"First","Company":"F"}' | jq -r .id)
deadline=$((SECONDS + 30))
until records "${P}cdc.lead" | grep -F "$first" >/dev/null; do
	[ $SECONDS -lt $deadline ] || fail "first create not delivered"
	sleep 0.3
done
kill -TERM "$BPID"
rc=0
wait "$BPID" || rc=$?
[ "$rc" -eq 0 ] || fail "bridge exited $rc after SIGTERM (sanitizer report above?)"
BPID=

# 2. While it is down: N new Leads, NDEL of them deleted, then 73 h pass.
python3 - "$SF_SIM_URL" "$SF_CA_FILE" "$N" "$NDEL" >"$WORK/ids" <<'PY' || fail "cannot create Leads"
import http.client, json, ssl, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1]); n = int(sys.argv[3]); ndel = int(sys.argv[4])
ctx = ssl.create_default_context(cafile=sys.argv[2])
c = http.client.HTTPSConnection(u.hostname, u.port, context=ctx)
ids = []
for i in range(n):
    c.request("POST", "/sim/records/Lead", json.dumps({"LastName": "L%d" % i, "Company": "C%d" % i}),
              {"Content-Type": "application/json"})
    r = c.getresponse(); body = r.read()
    if r.status != 201 and r.status != 200:
        sys.exit("create: %d %s" % (r.status, body[:200]))
    ids.append(json.loads(body)["id"])
for i in ids[:ndel]:
    c.request("DELETE", "/sim/records/Lead/" + i); r = c.getresponse(); r.read()
    if r.status >= 300:
        sys.exit("delete: %d" % r.status)
for i in ids:
    print(i)
PY
ctl POST /sim/clock "{\"advance_ms\":$((73 * 3600 * 1000))}" >/dev/null
head -n "$NDEL" "$WORK/ids" | sort >"$WORK/deleted"
tail -n +"$((NDEL + 1))" "$WORK/ids" | sort >"$WORK/live"

# 3. Restart -> invalid replay id -> resync; kill -9 after a few chunks.
"$BIN" 2>"$WORK/bridge2.log" &
BPID=$!
wait_log bridge2.log '"msg":"resync chunk committed".*"total":(1[0-9][0-9]|[2-9][0-9][0-9])[,}]' 60 ||
	fail "resync did not commit chunks"
kill -9 "$BPID"
wait "$BPID" 2>/dev/null || true
BPID=
grep -F '"msg":"resync done"' "$WORK/bridge2.log" >/dev/null && fail "resync finished before the kill (make it longer)"
done_before=$(grep -c '"msg":"resync chunk committed"' "$WORK/bridge2.log" || true)
pass "bridge killed -9 during the resync (after $done_before chunks)"

# 4. Restart: resumes, finishes, subscribes.
"$BIN" 2>"$WORK/bridge3.log" &
BPID=$!
wait_log bridge3.log '"msg":"unfinished entity resync found; resuming it"' 60 || fail "resync not resumed"
wait_log bridge3.log '"msg":"resync done"' 120 || fail "resumed resync did not finish"
wait_log bridge3.log '"msg":"cometd subscribed"' 30 || fail "not subscribed after the resync"
grep -F '"msg":"replay id no longer valid"' "$WORK/bridge3.log" >/dev/null &&
	fail "the resumed resync did not retire the dead checkpoint"
pass "restart resumed the resync and subscribed"

records "${P}cdc.lead" >"$WORK/all"
grep -F '"change_type":"SNAPSHOT"' "$WORK/all" | cut -f1 | sort >"$WORK/snap"
grep -F '"change_type":"DELETE"' "$WORK/all" | cut -f1 | sort >"$WORK/del"
missing=$(comm -23 "$WORK/live" <(sort -u "$WORK/snap") | wc -l)
[ "$missing" -eq 0 ] || fail "$missing live Leads have no SNAPSHOT"
dups=$(uniq -d "$WORK/snap" | wc -l)
[ "$dups" -eq 0 ] || fail "$dups Leads have more than one SNAPSHOT (resync restarted instead of resuming)"
cmp -s "$WORK/deleted" "$WORK/del" || fail "DELETEs: $(wc -l <"$WORK/del") records, expected the $NDEL deleted Leads once each"
pass "every Lead changed while down: exactly one SNAPSHOT ($(wc -l <"$WORK/snap")), every deleted one exactly one DELETE ($NDEL)"

last=$(ctl POST /sim/records/Lead '{"LastName":"Last","Company":"L"}' | jq -r .id)
deadline=$((SECONDS + 30))
until records "${P}cdc.lead" | grep -F "$last" | grep -F '"CREATE"' >/dev/null; do
	[ $SECONDS -lt $deadline ] || fail "live create after the resumed resync not delivered"
	sleep 0.3
done
pass "live events flow after the resumed resync"

# 5. GAP_OVERFLOW: four fields in one update -> resync of every live Lead.
from=$(($(wc -l <"$WORK/bridge3.log") + 1))
ctl PATCH "/sim/records/Lead/$first" '{"Company":"Over","Industry":"Energy","Rating":"Hot","Title":"CTO"}' >/dev/null
wait_log bridge3.log '"msg":"resync chunk committed".*"total":(1[0-9][0-9]|[2-9][0-9][0-9])[,}]' 60 "$from" ||
	fail "overflow resync did not commit chunks"
kill -9 "$BPID"
wait "$BPID" 2>/dev/null || true
BPID=
tail -n +"$from" "$WORK/bridge3.log" | grep -F '"msg":"resync done"' >/dev/null &&
	fail "overflow resync finished before the kill (make it longer)"
"$BIN" 2>"$WORK/bridge4.log" &
BPID=$!
wait_log bridge4.log '"msg":"unfinished entity resync found; resuming it".*"reason":"gap_overflow"' 60 ||
	fail "overflow resync not resumed"
wait_log bridge4.log '"msg":"resync done"' 120 || fail "resumed overflow resync did not finish"
records "${P}cdc.lead" >"$WORK/all2"
grep -F '"change_type":"SNAPSHOT"' "$WORK/all2" | cut -f1 | sort | uniq -c | awk '{print $2, $1}' >"$WORK/counts"
# The Leads of the first resync: one SNAPSHOT from each resync; "last"
# (created live after it): one.
bad=$(awk -v last="$last" 'NR == FNR {want[$1] = 2; next} {c[$1] = $2}
	END {want[last] = 1; for (k in want) if (c[k] != want[k]) {print k, c[k] + 0, "!=", want[k]; n++}
	     for (k in c) if (!(k in want) && k != "'"$first"'") print k, c[k], "unexpected"}' "$WORK/live" "$WORK/counts" | head -5)
[ -z "$bad" ] || fail "SNAPSHOTs per Lead after both resyncs (id count != expected): $bad"
grep "^$first	" "$WORK/all2" | grep -F '"SNAPSHOT"' | tail -1 | cut -f2 | jq -e '.fields.Company == "Over"' >/dev/null ||
	fail "the overflowed change is not in the resumed resync"
pass "GAP_OVERFLOW resync killed -9 and resumed: every live Lead exactly one more SNAPSHOT, with the swallowed change"
echo "it_bridge_resync_crash: all cases passed"
