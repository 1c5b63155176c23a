#!/usr/bin/env bash
# it_cli_replay: `sfk replay --reset` against the real Kafka broker of the
# shared stack (per-run topic prefix and group prefix): records written
# before and after a time T, a worker group that consumed everything;
#   --dry-run prints the plan (current and new offset per partition, like
#   kafka-consumer-groups) and changes nothing; the reset is refused while the
#   group has an active member; once it is stopped, the reset moves every
#   partition to the first record at or after T (the group's lag becomes the
#   number of records written after T).
#
# Needs: eval "$(tests/stack/up --kafka real)" (KAFKA_BOOTSTRAP_SERVERS).
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
SFK="$SFK_BIN_DIR/sfk"
WORK=$(mktemp -d)
KPID=
cleanup() {
	if [ -n "$KPID" ]; then
		kill "$KPID" 2>/dev/null || true
		wait "$KPID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
	echo "it_cli_replay: FAIL: $*" >&2
	for f in "$WORK"/*.out "$WORK"/*.err; do [ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -12 >&2; done
	exit 1
}
pass() { echo "ok   $*"; }
[ -x "$SFK" ] || fail "$SFK not built"
[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] ||
	fail "KAFKA_BOOTSTRAP_SERVERS is not set: run under eval \"\$(tests/stack/up --kafka real)\""
[ "${SFK_KAFKA_KIND:-real}" != mock ] || fail "needs a real broker (tests/stack/up --kafka real)"
cd "$SFK_SOURCE_DIR"

P="itrep$$x$RANDOM."
G="itrep$$g$RANDOM."
export SFK_TOPIC_PREFIX=$P SFK_GROUP_PREFIX=$G
B=$KAFKA_BOOTSTRAP_SERVERS T_=${P}wl.lead.route GR=${G}lead.route
"$SFK" topics create --partitions 2 >"$WORK/topics.out" 2>&1 || fail "topics create exited $?"

lag() {
	"$SFK" topics describe --json >"$WORK/describe.out" 2>"$WORK/describe.err" || fail "describe exited $?"
	python3 -c "import json; print([t for t in json.load(open('$WORK/describe.out')) if t['name']=='$T_'][0]['lag'])"
}
consume_all() { # consume N records with the workers' group, commit, leave
	kcat -b "$B" -G "$GR" -X auto.offset.reset=earliest -c "$1" "$T_" >"$WORK/consumed.out" 2>/dev/null &
	local pid=$! deadline=$((SECONDS + 60))
	while kill -0 $pid 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || { kill $pid; fail "consumer did not finish"; }
		sleep 0.2
	done
	wait $pid || true
	[ "$(wc -l <"$WORK/consumed.out")" = "$1" ] || fail "consumed $(wc -l <"$WORK/consumed.out"), want $1"
}

# 3 records, then T, then 4 records. Producer timestamps are taken when kcat
# produces, so a second on each side of T keeps them apart.
printf '%s\n' 00Q000000000001AAA:a1 00Q000000000002AAA:a2 00Q000000000003AAA:a3 |
	kcat -b "$B" -P -t "$T_" -K: || fail "produce"
sleep 1.2
T=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
sleep 1.2
printf '%s\n' 00Q000000000001AAA:b1 00Q000000000002AAA:b2 00Q000000000004AAA:b3 \
	00Q000000000005AAA:b4 | kcat -b "$B" -P -t "$T_" -K: || fail "produce"
consume_all 7
[ "$(lag)" = 0 ] || fail "lag after consuming everything is $(lag), want 0"

"$SFK" replay --workload lead.route --from "$T" --reset --dry-run --json >"$WORK/dry.out" \
	2>"$WORK/dry.err" || fail "dry-run exited $?"
python3 -c "
import json; d = json.load(open('$WORK/dry.out'))
ps = d['partitions']
assert len(ps) == 2 and d['dry_run'] is True, d
assert sum(p['current_offset'] for p in ps) == 7, ps
assert sum(p['current_offset'] - p['new_offset'] for p in ps) == 4, ps
assert all(p['log_end_offset'] == p['current_offset'] for p in ps), ps
" || fail "dry-run plan"
grep -q "plan: 4 record(s) of $T_ to process again" "$WORK/dry.err" || fail "dry-run summary"
[ "$(lag)" = 0 ] || fail "dry-run changed the offsets (lag $(lag))"
pass "dry-run: plan per partition (4 records after T), nothing changed"

# An active member: kcat stays in the group until killed.
kcat -b "$B" -G "$GR" "$T_" >/dev/null 2>"$WORK/member.err" &
KPID=$!
refused=
deadline=$((SECONDS + 60))
while [ $SECONDS -lt $deadline ]; do
	rc=0
	"$SFK" replay --workload lead.route --from "$T" --reset >"$WORK/refused.out" 2>"$WORK/refused.err" || rc=$?
	if [ $rc = 1 ] && grep -q "has 1 active member" "$WORK/refused.err"; then refused=1; break; fi
	[ $rc = 0 ] && fail "reset went through while kcat was a member"
	sleep 0.3
done
[ -n "$refused" ] || fail "reset not refused with an active member"
grep -q "stop the lead.route workers first" "$WORK/refused.err" || fail "refusal without the fix"
kill "$KPID"
wait "$KPID" 2>/dev/null || true
KPID=
pass "reset refused while the group has an active member"

# The member left (its close commits nothing new): reset for real. The
# group may need a moment to become empty after the leave.
ok=
deadline=$((SECONDS + 60))
while [ $SECONDS -lt $deadline ]; do
	if "$SFK" replay --workload lead.route --from "$T" --reset --epoch 2 >"$WORK/reset.out" 2>"$WORK/reset.err"; then
		ok=1
		break
	fi
	sleep 0.3
done
[ -n "$ok" ] || fail "reset after stopping the member failed"
grep -q "SFK_EPOCH=2" "$WORK/reset.err" || fail "epoch note missing"
[ "$(lag)" = 4 ] || fail "lag after reset is $(lag), want 4 (records after T)"
consume_all 4
sort "$WORK/consumed.out" | tr '\n' ' ' | grep -x 'b1 b2 b3 b4 ' >/dev/null || fail "replayed records: $(sort "$WORK/consumed.out" | tr '\n' ' ')"
pass "reset: the group re-reads exactly the 4 records after T"

rc=0
"$SFK" replay --workload lead.route --from yesterday --reset >/dev/null 2>&1 || rc=$?
[ $rc = 2 ] || fail "bad --from exited $rc, want 2"
pass "bad time is a usage error (exit 2)"
