#!/usr/bin/env bash
# it_bridge_lease: one active sfk-bridge, one hot standby (lease in Redis).
# What an operator sees: with two bridges running only one subscribes and
# every change reaches Kafka once; when the active one dies (SIGKILL) the
# standby takes over within the lease TTL and resumes from the committed
# checkpoint (no loss, no duplicate); a SIGTERMed active bridge hands over
# at once and exits 0.
#
# Needs: eval "$(tests/stack/up --kafka mock --sim)" (REDIS_URL, SF_*, KAFKA_*).
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
BIN="$SFK_BIN_DIR/sfk-bridge"
WORK=$(mktemp -d)
declare -A PID=()
cleanup() {
	local p
	for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	[ -n "${KEEP_WORK:-}" ] && echo "work: $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "it_bridge_lease: FAIL: $*" >&2
	local f
	for f in "$WORK"/*.log; do
		[ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -12 >&2
	done
	exit 1
}
pass() { echo "ok   $*"; }

[ -x "$BIN" ] || fail "$BIN not built"
command -v kcat >/dev/null || fail "kcat not installed"
command -v jq >/dev/null || fail "jq not installed"
for v in REDIS_URL SF_SIM_URL SF_CA_FILE SF_LOGIN_URL SF_TOKEN_URL SF_CLIENT_ID SF_USERNAME \
	SF_PRIVATE_KEY_PATH SF_API_VERSION KAFKA_BOOTSTRAP_SERVERS; do
	[ -n "${!v:-}" ] || fail "$v is not set: run eval \"\$(tests/stack/up --kafka mock --sim)\" first"
done

P="itl$$r$RANDOM."
export SFK_TOPIC_PREFIX=$P SFK_BRIDGE_TRANSACTIONAL_ID="${P}bridge" SFK_ADMIN_ADDR=127.0.0.1:0
export SFK_BRIDGE_LEASE_KEY="sfk:lease:bridge:$P" SFK_BRIDGE_LEASE_TTL=2s
export SFK_WORKLOADS_POLICY="$SFK_SOURCE_DIR/policies/workloads.json"
export SFK_WORKLOADS_SCHEMA="$SFK_SOURCE_DIR/schemas/workloads.schema.json"
export SFK_BRIDGE_CHANNELS=/data/LeadChangeEvent SFK_BRIDGE_START_FROM=latest

create_lead() {
	curl -sS --fail --cacert "$SF_CA_FILE" -H 'Content-Type: application/json' -X POST \
		-d "{\"LastName\":\"$1\",\"Company\":\"Acme\"}" "$SF_SIM_URL/sim/records/Lead" | jq -r .id
}
count() { # count ID: records for this Lead on <prefix>cdc.lead (read_committed)
	kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "${P}cdc.lead" -o beginning -e -q \
		-X isolation.level=read_committed -f '%k\n' 2>/dev/null | grep -c "^$1\$" || true
}
wait_count() { # wait_count ID N SECONDS
	local deadline=$((SECONDS + $3))
	until [ "$(count "$1")" -ge "$2" ]; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.3
	done
}
wait_log() { # wait_log NAME REGEX SECONDS
	local deadline=$((SECONDS + $3))
	until grep -Eq -- "$2" "$WORK/$1.log" 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}
start() { # start NAME
	"$BIN" 2>"$WORK/$1.log" &
	PID[$1]=$!
}

# Two bridges: A becomes active, B stays standby.
start a
wait_log a '"msg":"cometd subscribed"' 30 || fail "a: never active"
start b
wait_log b '"msg":"standby"' 15 || fail "b: not reporting standby"
l1=$(create_lead One)
wait_count "$l1" 1 30 || fail "lead one not delivered"
grep -q '"msg":"cometd subscribed"' "$WORK/b.log" && fail "standby b subscribed while a is active"
pass "one active bridge, one standby"

# The active one dies: the standby takes over and resumes from the checkpoint.
kill -9 "${PID[a]}"
wait "${PID[a]}" 2>/dev/null || true
unset 'PID[a]'
t0=$SECONDS
l2=$(create_lead Two) # created while nobody is active
wait_log b '"msg":"lease acquired' 15 || fail "b: did not take over"
wait_log b '"msg":"cometd subscribed"' 30 || fail "b: not subscribed after taking over"
wait_count "$l2" 1 30 || fail "lead two (created during the failover) lost"
[ "$(count "$l1")" -eq 1 ] || fail "lead one duplicated after failover ($(count "$l1"))"
[ "$(count "$l2")" -eq 1 ] || fail "lead two duplicated ($(count "$l2"))"
pass "SIGKILL of the active bridge: standby active after $((SECONDS - t0)) s, no loss, no duplicate"

# A SIGTERMed leader hands over at once.
start c
wait_log c '"msg":"standby"' 15 || fail "c: not standby"
kill -TERM "${PID[b]}"
wait "${PID[b]}" || fail "b: exit $? after SIGTERM"
unset 'PID[b]'
wait_log c '"msg":"lease acquired' 5 || fail "c: no immediate take-over after b released"
wait_log c '"msg":"cometd subscribed"' 30 || fail "c: not subscribed"
l3=$(create_lead Three)
wait_count "$l3" 1 30 || fail "lead three not delivered by c"
kill -TERM "${PID[c]}"
wait "${PID[c]}" || fail "c: exit $? after SIGTERM"
unset 'PID[c]'
pass "SIGTERM hands the lease over at once; exit 0"
echo "it_bridge_lease: all cases passed"
