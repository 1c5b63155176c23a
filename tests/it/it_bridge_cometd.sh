#!/usr/bin/env bash
# it_bridge_cometd: the bridge's CometD client against sfk-sim (real HTTPS,
# JWT bearer auth, Bayeux long-polling with replay). A user-visible outcome
# each: Leads created in the org arrive as events, in order, exactly once per
# committed batch, across a lost session (403::Unknown client), an expired
# token (401), a failed batch (redelivered from the checkpoint), dropped
# connections, a stalled long-poll (watchdog), and SIGTERM ends a long-poll
# at once. An invalid replay id is reported to the caller, not hidden.
#
# Needs the sim: eval "$(tests/stack/up --sim)" (SF_SIM_URL, SF_CA_FILE, ...).
# The stall case starts its own short-hold sim with tests/stack/up.
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
BIN="$SFK_BIN_DIR/test_bridge_cometd"
CHAN=/data/LeadChangeEvent

WORK=$(mktemp -d)
PIDS=()
STALL_STACK=
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	if [ -n "$STALL_STACK" ]; then
		"$SFK_SOURCE_DIR/tests/stack/down" "$STALL_STACK" >/dev/null 2>&1 || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "it_bridge_cometd: FAIL: $*" >&2
	local f
	for f in "$WORK"/*.out "$WORK"/*.err; do
		[ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -20 >&2
	done
	exit 1
}
pass() { echo "ok   $*"; }

[ -x "$BIN" ] || fail "$BIN not built"
for v in SF_SIM_URL SF_CA_FILE SF_LOGIN_URL SF_TOKEN_URL SF_CLIENT_ID SF_USERNAME \
	SF_PRIVATE_KEY_PATH SF_API_VERSION; do
	[ -n "${!v:-}" ] || fail "$v is not set: run eval \"\$(tests/stack/up --sim)\" first"
done

ctl() { # ctl METHOD PATH [JSON]: the sim's control API
	curl -sS --fail --cacert "$SF_CA_FILE" -H 'Content-Type: application/json' \
		-X "$1" ${3:+-d "$3"} "$SF_SIM_URL$2"
}
new_lead() { # prints the new Lead's id
	ctl POST /sim/records/Lead "{\"LastName\":\"$1\",\"Company\":\"Acme\"}" |
		sed -n 's/.*"id":"\([A-Za-z0-9]*\)".*/\1/p'
}
# The replay id to resume from "now": the last assigned one, or -1 (new
# events only) before the first event (0 is not a retained id).
last_replay() {
	local r
	r=$(ctl GET /sim/stats/events | sed -n 's/.*"last_replay_id":\([0-9]*\).*/\1/p')
	[ "${r:-0}" -gt 0 ] && echo "$r" || echo -1
}

# wait_for FILE REGEX SECONDS: poll until a line matches (no sleep-and-hope).
wait_for() {
	local deadline=$((SECONDS + $3))
	until grep -Eq -- "$2" "$1" 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}
# wait_count FILE REGEX N SECONDS: poll until N lines match.
wait_count() {
	local deadline=$((SECONDS + $4))
	local n
	while n=$(grep -Ec -- "$2" "$1" 2>/dev/null); [ "${n:-0}" -lt "$3" ]; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}
# wait_exit PID SECONDS: the driver ends by itself (or fail).
wait_exit() {
	local deadline=$((SECONDS + $2))
	while kill -0 "$1" 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
	wait "$1" || return 1
}
drive() { # drive NAME ARGS...: start a subscriber in the background; sets DPID
	"$BIN" --drive "$CHAN" --timeout-s 60 "${@:2}" >"$WORK/$1.out" 2>"$WORK/$1.err" &
	DPID=$!
	PIDS+=("$DPID")
	wait_for "$WORK/$1.err" '"msg":"cometd subscribed"' 20 || fail "$1: never subscribed"
}
events() { grep '^event ' "$WORK/$1.out" || true; }
stat_of() { sed -n "s/^stats .*$2=\([0-9]*\).*/\1/p" "$WORK/$1.out"; }

# 1. New Leads arrive in order, once each, with increasing replay ids.
r0=$(last_replay)
[ -n "$r0" ] || fail "cannot read /sim/stats/events"
drive basic --replay "$r0" --max-events 3
ids=()
for n in 1 2 3; do ids+=("$(new_lead "Basic$n")"); done
wait_exit "$DPID" 30 || fail "basic: driver did not finish after 3 events"
[ "$(events basic | awk '{print $6}' | paste -sd' ')" = "${ids[*]}" ] ||
	fail "basic: got records '$(events basic | awk '{print $6}' | paste -sd' ')', want '${ids[*]}'"
events basic | awk -v r0="$r0" '{ if ($3 <= prev || $3 <= r0) exit 1; prev = $3 }' ||
	fail "basic: replay ids not increasing past $r0"
events basic | awk '$4 != "Lead" || $5 != "CREATE" { exit 1 }' || fail "basic: not Lead CREATE"
grep -q '^outcome stopped' "$WORK/basic.out" || fail "basic: outcome"
pass "3 Lead creates delivered in order"

# 2. Resuming from a checkpoint replays exactly what came after it.
r1=$(events basic | sed -n 1p | awk '{print $3}')
drive resume --replay "$r1" --max-events 2
wait_exit "$DPID" 30 || fail "resume: the two retained events did not arrive"
[ "$(events resume | awk '{print $6}' | paste -sd' ')" = "${ids[1]} ${ids[2]}" ] ||
	fail "resume: got '$(events resume | awk '{print $6}' | paste -sd' ')'"
pass "resume from checkpoint $r1 delivers the 2 later events"

# 3. Lost session (403::Unknown client): re-handshake, resubscribe, no loss.
r0=$(last_replay)
drive lost --replay "$r0" --max-events 2
a=$(new_lead LostA)
wait_for "$WORK/lost.out" "^event .* $a\$" 20 || fail "lost: first event"
ctl POST /sim/faults '{"forget_cometd_clients":true}' >/dev/null
b=$(new_lead LostB)
wait_exit "$DPID" 30 || fail "lost: second event never arrived after the session was dropped"
[ "$(events lost | awk '{print $6}' | paste -sd' ')" = "$a $b" ] || fail "lost: events"
[ "$(stat_of lost rehandshakes)" -ge 1 ] || fail "lost: no re-handshake counted"
pass "403::Unknown client -> re-handshake, both events once"

# 4. Expired token (401::Authentication invalid): a new token, then handshake.
r0=$(last_replay)
drive auth --replay "$r0" --max-events 2
ctl POST /sim/faults '{"expire_sessions":true}' >/dev/null
a=$(new_lead AuthA)
wait_for "$WORK/auth.out" "^event .* $a\$" 20 || fail "auth: first event"
b=$(new_lead AuthB)
wait_exit "$DPID" 30 || fail "auth: second event never arrived after the token expired"
[ "$(events auth | awk '{print $6}' | paste -sd' ')" = "$a $b" ] || fail "auth: events"
[ "$(stat_of auth reauths)" -ge 1 ] || fail "auth: no re-authentication counted"
pass "401 -> new token + handshake, both events once"

# 5. A batch the caller could not commit is redelivered from the checkpoint.
r0=$(last_replay)
drive batch --replay "$r0" --max-events 1 --fail-batch-once
a=$(new_lead Batch)
wait_exit "$DPID" 30 || fail "batch: event not redelivered"
grep -q '^batch-failed 1' "$WORK/batch.out" || fail "batch: the failure was not exercised"
[ "$(events batch | awk '{print $6}')" = "$a" ] || fail "batch: redelivered event"
pass "failed batch redelivered from the last checkpoint"

# 6. Dropped connections: backoff, reconnect, then events flow.
r0=$(last_replay)
drive drop --replay "$r0" --max-events 1
ctl POST /sim/faults '{"drop_rate":1.0,"drop_paths":"/cometd"}' >/dev/null
# end the held long-poll so that the next requests meet the fault
ctl POST /sim/faults '{"forget_cometd_clients":true,"drop_rate":1.0,"drop_paths":"/cometd"}' >/dev/null
wait_for "$WORK/drop.err" '"msg":"cometd recovering".*transport' 30 ||
	fail "drop: no transport error seen"
ctl POST /sim/faults '{}' >/dev/null
a=$(new_lead Drop)
wait_exit "$DPID" 60 || fail "drop: event not delivered after the network came back"
[ "$(events drop | awk '{print $6}')" = "$a" ] || fail "drop: event"
[ "$(stat_of drop transport_errors)" -ge 1 ] || fail "drop: transport errors not counted"
pass "dropped connections -> backoff and recovery"

# 6b. A /meta/connect answer cut half-way while it carried an event: the
# server counts the event as delivered, so the client must resubscribe from
# its checkpoint instead of resuming the connect loop (found by tests/chaos).
r0=$(last_replay)
drive cut --replay "$r0" --max-events 2
# The held long-poll began before the fault: it delivers A whole; the next
# connect starts under the fault and its answer (carrying B) is cut.
ctl POST /sim/faults '{"drop_rate":1.0,"drop_paths":"/cometd"}' >/dev/null
a=$(new_lead CutA)
wait_for "$WORK/cut.out" "^event .* $a\$" 20 || fail "cut: first event"
b=$(new_lead CutB)
wait_for "$WORK/cut.err" '"msg":"cometd recovering".*transport' 30 || fail "cut: no transport error seen"
ctl POST /sim/faults '{}' >/dev/null
wait_exit "$DPID" 60 || fail "cut: the event of the cut answer was lost"
[ "$(events cut | awk '{print $6}' | paste -sd' ')" = "$a $b" ] || fail "cut: events $(events cut | awk '{print $6}' | paste -sd' '), want $a $b"
pass "an answer cut with an event in it -> resubscribed from the checkpoint, nothing lost"

# 7. An invalid replay id goes back to the caller, with the id.
"$BIN" --drive "$CHAN" --replay 999999999 --timeout-s 30 >"$WORK/invalid.out" 2>"$WORK/invalid.err" ||
	fail "invalid: exit $?"
grep -q "^outcome replay_invalid $CHAN 999999999 " "$WORK/invalid.out" ||
	fail "invalid: $(grep '^outcome' "$WORK/invalid.out")"
pass "invalid replay id surfaces to the caller"

# 8. SIGTERM ends a held long-poll promptly, with a disconnect.
drive term --replay -1
sleep 0.5 # let the first /meta/connect go out; the assertion below does not depend on it
t0=$SECONDS
kill -TERM "$DPID"
wait_exit "$DPID" 3 || fail "term: still running 3 s after SIGTERM"
grep -q '^outcome stopped' "$WORK/term.out" || fail "term: outcome"
grep -q '"msg":"cometd disconnected"' "$WORK/term.err" || fail "term: no /meta/disconnect"
pass "SIGTERM stops within $((SECONDS - t0)) s"

# 9. Stall watchdog: a sim that holds connects for 1 s, behind 4 s of latency.
env_file="$WORK/stall.env"
SIM_EXTRA_ARGS="--opt cometd.timeout_ms=1000" "$SFK_SOURCE_DIR/tests/stack/up" --sim --no-redis \
	>"$env_file" 2>"$WORK/stall-stack.err" || fail "stall: could not start a second sim"
STALL_STACK=$(sed -n 's/^export SFK_STACK_DIR=//p' "$env_file")
(
	# shellcheck disable=SC1090
	. "$env_file"
	ctl POST /sim/faults '{"latency_ms":4000}' >/dev/null
	export DRIVE_STALL_GRACE_MS=1000
	drive stall --replay -1 --max-events 1
	wait_for "$WORK/stall.err" '"msg":"cometd connect stalled"' 60 || fail "stall: watchdog never fired"
	ctl POST /sim/faults '{}' >/dev/null
	# subscribed from -1 (no checkpoint yet): only events after the new
	# subscription count, so wait for it
	wait_count "$WORK/stall.err" '"msg":"cometd subscribed"' 2 30 || fail "stall: no resubscribe"
	a=$(new_lead Stall)
	wait_exit "$DPID" 60 || fail "stall: event not delivered after the stall"
	[ "$(events stall | awk '{print $6}')" = "$a" ] || fail "stall: event"
	[ "$(stat_of stall stalls)" -ge 1 ] || fail "stall: not counted"
) || exit 1
pass "stalled long-poll detected by the watchdog, then recovered"
echo "it_bridge_cometd: all cases passed"
