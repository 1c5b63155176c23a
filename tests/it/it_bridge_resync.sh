#!/usr/bin/env bash
# it_bridge_resync: a transaction too big for CDC (GAP_OVERFLOW) makes
# sfk-bridge read the entity back: every Lead appears on sfk.cdc.lead as a
# SNAPSHOT with flags.resynced and its current field values (including the
# change the overflow swallowed), a Lead deleted shortly before comes back as
# a resynced DELETE (queryAll), and events after it flow on.
#
# Needs KAFKA_BOOTSTRAP_SERVERS (eval "$(tests/stack/up --kafka mock)"); starts
# its own sfk-sim with a tiny overflow limit (tests/stack/up --sim).
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
	echo "it_bridge_resync: FAIL: $*" >&2
	[ -s "$WORK/bridge.log" ] && sed 's/^/  bridge: /' "$WORK/bridge.log" | tail -15 >&2
	exit 1
}
pass() { echo "ok   $*"; }

[ -x "$BIN" ] || fail "$BIN not built"
command -v kcat >/dev/null || fail "kcat not installed"
command -v jq >/dev/null || fail "jq not installed"
[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] ||
	fail "KAFKA_BOOTSTRAP_SERVERS is not set: run eval \"\$(tests/stack/up --kafka mock)\" first"

# A sim of our own: any update of more than 3 fields overflows.
SIM_EXTRA_ARGS="--opt cdc.overflow_changes=3" "$SFK_SOURCE_DIR/tests/stack/up" --sim --no-redis \
	>"$WORK/sim.env" 2>"$WORK/sim-up.log" || fail "cannot start sfk-sim: $(tail -3 "$WORK/sim-up.log")"
SIM_STACK=$(sed -n 's/^export SFK_STACK_DIR=//p' "$WORK/sim.env")
# shellcheck disable=SC1091
. "$WORK/sim.env"
unset REDIS_URL

P="itr$$r$RANDOM."
export SFK_TOPIC_PREFIX=$P SFK_BRIDGE_TRANSACTIONAL_ID="${P}bridge" SFK_ADMIN_ADDR=127.0.0.1:0
export SFK_WORKLOADS_POLICY="$SFK_SOURCE_DIR/policies/workloads.json"
export SFK_WORKLOADS_SCHEMA="$SFK_SOURCE_DIR/schemas/workloads.schema.json"
export SFK_BRIDGE_CHANNELS=/data/LeadChangeEvent SFK_BRIDGE_START_FROM=latest

ctl() { # ctl METHOD PATH [JSON]
	curl -sS --fail --cacert "$SF_CA_FILE" -H 'Content-Type: application/json' \
		-X "$1" ${3:+-d "$3"} "$SF_SIM_URL$2"
}
records() { # records: "key<TAB>value" on <prefix>cdc.lead (read_committed)
	kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "${P}cdc.lead" -o beginning -e -q \
		-X isolation.level=read_committed -f '%k\t%s\n' 2>/dev/null || true
}
wait_records() { # wait_records REGEX N SECONDS
	local deadline=$((SECONDS + $3))
	until [ "$(records | grep -Ec -- "$1")" -ge "$2" ]; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.3
	done
}

"$BIN" 2>"$WORK/bridge.log" &
BPID=$!
deadline=$((SECONDS + 30))
until grep -q '"msg":"cometd subscribed"' "$WORK/bridge.log"; do
	[ $SECONDS -lt $deadline ] || fail "bridge not subscribed"
	kill -0 "$BPID" 2>/dev/null || fail "bridge exited"
	sleep 0.1
done

a=$(ctl POST /sim/records/Lead '{"LastName":"Alpha","Company":"A Ltd"}' | jq -r .id)
b=$(ctl POST /sim/records/Lead '{"LastName":"Beta","Company":"B Ltd"}' | jq -r .id)
wait_records "^($a|$b)	.*\"change_type\":\"CREATE\"" 2 30 || fail "creates not delivered"

x=$(ctl POST /sim/records/Lead '{"LastName":"Xi","Company":"X Ltd"}' | jq -r .id)
ctl DELETE "/sim/records/Lead/$x" >/dev/null
wait_records "^$x	.*\"change_type\":\"DELETE\"" 1 30 || fail "delete not delivered"

# Four fields in one update: over the limit of 3 -> GAP_OVERFLOW, no field data.
ctl PATCH "/sim/records/Lead/$a" \
	'{"Company":"Overflowed Inc","Industry":"Energy","Rating":"Hot","Title":"CTO"}' >/dev/null
wait_records "^$a	.*\"change_type\":\"SNAPSHOT\"" 1 60 || fail "no SNAPSHOT for the overflowed Lead"
wait_records "^$b	.*\"change_type\":\"SNAPSHOT\"" 1 30 || fail "no SNAPSHOT for the other Lead"
snap=$(records | grep "^$a	" | grep '"SNAPSHOT"' | tail -1 | cut -f2)
[ "$(jq -r .flags.resynced <<<"$snap")" = true ] || fail "snapshot not flagged resynced"
[ "$(jq -r .fields.Company <<<"$snap")" = "Overflowed Inc" ] ||
	fail "snapshot misses the swallowed change: $(jq -c .fields <<<"$snap")"
grep -q '"msg":"resync done","object":"Lead"' "$WORK/bridge.log" || fail "no 'resync done' log"
records | grep "^$x	" | cut -f2 | jq -e -s 'any(.[]; .change_type == "DELETE" and .flags.resynced == true and .fields == {})' >/dev/null ||
	fail "the Lead deleted before the overflow has no resynced DELETE"
[ "$(records | grep "^$x	" | grep -c '"SNAPSHOT"' || true)" -eq 0 ] || fail "a deleted Lead came back as SNAPSHOT"
pass "GAP_OVERFLOW -> Lead resync: SNAPSHOTs with the swallowed values, resynced DELETE for the deleted Lead"

c=$(ctl POST /sim/records/Lead '{"LastName":"Gamma","Company":"C Ltd"}' | jq -r .id)
wait_records "^$c	.*\"change_type\":\"CREATE\"" 1 30 || fail "stream did not go on after the resync"
port=$(sed -n 's/.*"msg":"admin listening".*"port":\([0-9]*\).*/\1/p' "$WORK/bridge.log")
curl -sf "http://127.0.0.1:$port/metrics" |
	grep -q "^sfk_bridge_resyncs_total{object=\"Lead\",outcome=\"ok\"} 1\$" || fail "resync metric: $(curl -s "http://127.0.0.1:$port/metrics" | grep resync)"
pass "events flow on after the resync; sfk_bridge_resyncs_total counted"
echo "it_bridge_resync: all cases passed"
