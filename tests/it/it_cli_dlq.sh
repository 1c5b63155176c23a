#!/usr/bin/env bash
# it_cli_dlq: `sfk dlq list|show|retry` against the real Kafka broker of the
# shared stack, on dead letters written the way the producers write them
# (workers/loop.c and bridge/publish.c headers), per-run topic prefix:
#   list shows each letter's class, code, source and message; show prints
#   the headers and the payload; retry --dry-run sends nothing; retry
#   --offset sends that letter back to the workload topic with its key, the
#   original bytes, sfk.retry_of and without the sfk.error_* headers; retry
#   --all sends the rest once (a second run sends nothing, a new letter is
#   sent alone); the bridge's letters show their reason and cannot be retried.
#
# Needs: eval "$(tests/stack/up --kafka real)" (KAFKA_BOOTSTRAP_SERVERS).
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
SFK="$SFK_BIN_DIR/sfk"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() {
	echo "it_cli_dlq: FAIL: $*" >&2
	for f in "$WORK"/*.out "$WORK"/*.err; do [ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -12 >&2; done
	exit 1
}
pass() { echo "ok   $*"; }
[ -x "$SFK" ] || fail "$SFK not built"
[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] ||
	fail "KAFKA_BOOTSTRAP_SERVERS is not set: run under eval \"\$(tests/stack/up --kafka real)\""
[ "${SFK_KAFKA_KIND:-real}" != mock ] || fail "needs a real broker (tests/stack/up --kafka real)"
cd "$SFK_SOURCE_DIR"

P="itdlq$$x$RANDOM."
export SFK_TOPIC_PREFIX=$P SFK_GROUP_PREFIX="itdlq$$g$RANDOM."
B=$KAFKA_BOOTSTRAP_SERVERS
"$SFK" topics create --partitions 2 >"$WORK/topics.out" 2>&1 || fail "topics create exited $?"
DLQ=${P}dlq.lead.route WL=${P}wl.lead.route

letter() { # letter PARTITION KEY CODE MESSAGE SOURCE_OFFSET PAYLOAD
	printf '%s' "$6" | kcat -b "$B" -P -t "$DLQ" -p "$1" -k "$2" \
		-H sfk.error_class=permanent -H "sfk.error_code=$3" -H "sfk.error_message=$4" \
		-H "sfk.source_topic=$WL" -H "sfk.source_partition=$1" -H "sfk.source_offset=$5" \
		-H sfk.attempts=3 -H sfk.entity=Lead || fail "kcat produce"
}
wl_records() { # all records of the workload topic, "key|headers|value" per line
	kcat -b "$B" -C -t "$WL" -e -q -f '%k|%h|%s\n' 2>/dev/null | sort
}

V1='{"event_id":"Lead:00Q000000000001AAA:11","record_id":"00Q000000000001AAA"}'
V2='{"event_id":"Lead:00Q000000000002AAA:12", "record_id":"00Q000000000002AAA"}'
letter 0 00Q000000000001AAA sf_permanent "FIELD_CUSTOM_VALIDATION_EXCEPTION: Country is required" 17 "$V1"
letter 0 00Q000000000002AAA parse "event has no record_id" 18 "$V2"

"$SFK" dlq list --workload lead.route >"$WORK/list.out" 2>"$WORK/list.err" || fail "list exited $?"
grep -qE "^0:0 +00Q000000000001AAA +permanent +sf_permanent +3 +${WL//./\\.}\[0\]@17 +no +FIELD_CUSTOM_VALIDATION_EXCEPTION: Country is required$" \
	"$WORK/list.out" || fail "list row of 0:0"
grep -qE "^0:1 +00Q000000000002AAA +permanent +parse +3 .*event has no record_id$" "$WORK/list.out" ||
	fail "list row of 0:1"
grep -q "2 dead letter(s) in $DLQ" "$WORK/list.err" || fail "count on stderr"
pass "list: one row per letter with class, code, attempts, source and reason"

"$SFK" dlq show --workload lead.route --offset 0:1 >"$WORK/show.out" || fail "show exited $?"
grep -q '^  message:  event has no record_id$' "$WORK/show.out" || fail "show: message"
grep -q '"record_id": "00Q000000000002AAA"' "$WORK/show.out" || fail "show: payload"
grep -q '^    sfk.entity: Lead$' "$WORK/show.out" || fail "show: headers"
pass "show: headers and payload of one letter"

"$SFK" dlq retry --workload lead.route --all --dry-run >"$WORK/dry.out" || fail "dry-run exited $?"
[ "$(grep -c '^would retry' "$WORK/dry.out")" = 2 ] || fail "dry-run should list 2 letters"
[ -z "$(wl_records)" ] || fail "dry-run sent records"
pass "retry --dry-run: lists, sends nothing"

"$SFK" dlq retry --workload lead.route --offset 0:1 >"$WORK/r1.out" || fail "retry --offset exited $?"
got=$(wl_records)
[ "$got" = "00Q000000000002AAA|sfk.entity=Lead,sfk.retry_of=$DLQ/0/1|$V2" ] ||
	fail "retried record is '$got'"
pass "retry --offset: original key and bytes back on $WL, error headers dropped, sfk.retry_of added"

"$SFK" dlq retry --workload lead.route --all >"$WORK/r2.out" || fail "retry --all exited $?"
[ "$(wl_records | wc -l)" = 3 ] || fail "after --all: $(wl_records | wc -l) records, want 3"
"$SFK" dlq retry --workload lead.route --all >"$WORK/r3.out" || fail "second retry --all exited $?"
grep -q '^nothing to retry$' "$WORK/r3.out" || fail "second --all should have nothing to retry"
[ "$(wl_records | wc -l)" = 3 ] || fail "second --all sent records again"
"$SFK" dlq list --workload lead.route --json >"$WORK/list2.out" || fail "list --json exited $?"
python3 -c "
import json; d = json.load(open('$WORK/list2.out'))
assert [l['retried'] for l in d] == [True, True], d
assert d[0]['error_code'] == 'sf_permanent' and d[0]['source_offset'] == '17', d
" || fail "list --json after retry"
letter 1 00Q000000000003AAA sf_permanent "INVALID_CROSS_REFERENCE_KEY: owner" 4 '{"n":3}'
"$SFK" dlq retry --workload lead.route --all >"$WORK/r4.out" || fail "third retry --all exited $?"
[ "$(grep -c '^retried' "$WORK/r4.out")" = 1 ] && grep -q "$DLQ/1/0" "$WORK/r4.out" ||
	fail "third --all should send only the new letter"
pass "retry --all: each letter once; a new letter alone"

printf '%s' '{"channel":"/data/LeadChangeEvent","data":{}}' |
	kcat -b "$B" -P -t "${P}dlq.bridge" -k /data/LeadChangeEvent -H sfk.error_code=parse \
		-H sfk.error_class=permanent -H "sfk.error_reason=payload.ChangeEventHeader missing" \
		-H sfk.channel=/data/LeadChangeEvent || fail "kcat produce bridge"
"$SFK" dlq list --workload bridge >"$WORK/bridge.out" 2>/dev/null || fail "bridge list exited $?"
grep -qE "^[01]:0 .* parse .*/data/LeadChangeEvent +no +payload.ChangeEventHeader missing$" \
	"$WORK/bridge.out" || fail "bridge letter row"
rc=0
"$SFK" dlq retry --workload bridge --all >/dev/null 2>&1 || rc=$?
[ $rc = 2 ] || fail "retry of bridge letters exited $rc, want 2"
pass "bridge letters: reason shown, retry refused"

rc=0
"$SFK" dlq list >/dev/null 2>&1 || rc=$?
[ $rc = 2 ] || fail "list without --workload exited $rc, want 2"
pass "usage errors exit 2"
