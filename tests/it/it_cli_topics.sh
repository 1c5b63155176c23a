#!/usr/bin/env bash
# it_cli_topics: `sfk topics create|describe` against the real Kafka broker of
# the shared stack, with a per-run topic prefix and group prefix:
#   create makes the 18 topics of DESIGN.md section 3 with the partitions,
#   retention and cleanup.policy asked for; a second create reports them as
#   existing (idempotent, exit 0); describe shows them and a workload group's
#   lag (records produced minus records the group committed); a missing topic
#   makes describe exit 1. Then against a private sfk-devkafka (librdkafka
#   mock, no CreateTopics): create returns at once with the auto-create note.
#
# Needs: eval "$(tests/stack/up --kafka real)" (KAFKA_BOOTSTRAP_SERVERS).
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
SFK="$SFK_BIN_DIR/sfk"
WORK=$(mktemp -d)
MOCK_DIR=
cleanup() {
	[ -n "$MOCK_DIR" ] && "$SFK_SOURCE_DIR/tests/stack/down" "$MOCK_DIR" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
	echo "it_cli_topics: FAIL: $*" >&2
	for f in "$WORK"/*.out "$WORK"/*.err; do
		[ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -8 >&2
	done
	exit 1
}
pass() { echo "ok   $*"; }

[ -x "$SFK" ] || fail "$SFK not built"
[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] ||
	fail "KAFKA_BOOTSTRAP_SERVERS is not set: run under eval \"\$(tests/stack/up --kafka real)\""
if [ "${SFK_KAFKA_KIND:-real}" = mock ]; then
	fail "needs a real broker (SFK_KAFKA_KIND=mock): tests/stack/up --kafka real"
fi
cd "$SFK_SOURCE_DIR" # default policies/workloads.json

P="itcli$$x$RANDOM."
G="itcli$$g$RANDOM."
export SFK_TOPIC_PREFIX=$P SFK_GROUP_PREFIX=$G
json() { python3 -c "import json,sys; d=json.load(open('$1')); $2"; }

# --- create -------------------------------------------------------------------
"$SFK" topics create --partitions 2 --retention 2h --dlq-retention 48h --json \
	>"$WORK/create.out" 2>"$WORK/create.err" || fail "create exited $?"
json "$WORK/create.out" "
names=sorted(t['name'] for t in d)
want=sorted(['${P}'+n for n in ['cdc.lead','cdc.task','cdc.emailmessage','wl.lead.route',
 'wl.lead.first_touch_detect','wl.lead.sla_watch','wl.notify.webhook','wl.outreach.template_suggest','flywheel',
 'dlq.lead.route','dlq.lead.first_touch_detect','dlq.lead.sla_watch','dlq.notify.webhook','dlq.outreach.template_suggest',
 'notify.events','dlq.bridge','dlq.loader','bridge.checkpoints']])
assert names==want, (names, want)
assert all(t['result']=='created' for t in d), d
" || fail "create did not create the 18 topics"
pass "create: 18 topics created"

"$SFK" topics create --partitions 2 >"$WORK/create2.out" 2>"$WORK/create2.err" ||
	fail "second create exited $?"
[ "$(grep -c ' exists ' "$WORK/create2.out")" = 18 ] || fail "second create: not all 'exists'"
pass "create again: every topic reported as existing, exit 0"

# --- describe -------------------------------------------------------------------
# 5 records on the lead.route workload topic, one partition (same key); the
# workers' group consumes and commits 2 -> lag 3.
topic="${P}wl.lead.route"
for i in 1 2 3 4 5; do echo "00Q000000000001AAA:v$i"; done |
	kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -P -t "$topic" -K: -p 0 || fail "kcat produce"
kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -G "${G}lead.route" -X auto.offset.reset=earliest \
	-X enable.auto.commit=true -X auto.commit.interval.ms=100 -c 2 "$topic" \
	>"$WORK/consumed.out" 2>"$WORK/kcat.err" & # librdkafka commits on close
kpid=$!
deadline=$((SECONDS + 60))
while kill -0 $kpid 2>/dev/null; do
	[ $SECONDS -lt $deadline ] || { kill $kpid; fail "kcat consumer did not finish"; }
	sleep 0.2
done
wait $kpid || true
[ "$(wc -l <"$WORK/consumed.out")" = 2 ] || fail "kcat consumed $(wc -l <"$WORK/consumed.out") records, want 2"

lag=
deadline=$((SECONDS + 30))
while [ $SECONDS -lt $deadline ]; do
	"$SFK" topics describe --json >"$WORK/describe.out" 2>"$WORK/describe.err" ||
		fail "describe exited $? with every topic present"
	lag=$(json "$WORK/describe.out" "print([t for t in d if t['name']=='$topic'][0]['lag'])")
	[ "$lag" = 3 ] && break
	sleep 0.5
done
[ "$lag" = 3 ] || fail "lag of ${G}lead.route on $topic is '$lag', want 3 (5 produced, 2 committed)"
pass "describe: group ${G}lead.route lag 3 on $topic"

json "$WORK/describe.out" "
by={t['name']:t for t in d}
cp=by['${P}bridge.checkpoints']
assert cp['actual_cleanup.policy']=='compact', cp
for t in d:
    assert t['exists'] and t['partitions']==2, t
    if t['kind'] in ('cdc','workload','flywheel'): assert t['actual_retention.ms']==7200000, t
    if t['kind']=='dlq': assert t['actual_retention.ms']==172800000, t
    if t['kind']!='checkpoints': assert t['actual_cleanup.policy']=='delete', t
    assert t['problem'] is None, t
assert by['${P}wl.lead.route']['group']=='${G}lead.route'
" || fail "describe: partitions/retention/cleanup.policy not as created"
pass "describe: 2 partitions, retention 2h / 48h (dlq), checkpoints compacted"

"$SFK" topics describe >"$WORK/describe_h.out" 2>&1 || fail "describe (table) exited $?"
grep -E "^${P//./\\.}bridge\.checkpoints +2 +1 +[^ ]+ +compact" "$WORK/describe_h.out" >/dev/null ||
	fail "table row of the checkpoints topic not as expected"
pass "describe: human table"

rc=0
"$SFK" topics describe --extra-entities Account >"$WORK/missing.out" 2>&1 || rc=$?
[ $rc = 1 ] || fail "describe with a missing topic exited $rc, want 1"
grep -E "^${P//./\\.}cdc\.account .*missing" "$WORK/missing.out" >/dev/null ||
	fail "missing ${P}cdc.account not reported"
pass "describe: missing topic reported, exit 1"

rc=0
"$SFK" topics frobnicate >/dev/null 2>"$WORK/usage.err" || rc=$?
[ $rc = 2 ] || fail "unknown action exited $rc, want 2"
pass "usage error exits 2"

# --- the mock broker ---------------------------------------------------------------
env_lines=$(SFK_BIN_DIR=$SFK_BIN_DIR "$SFK_SOURCE_DIR/tests/stack/up" --kafka mock --no-redis) ||
	fail "could not start sfk-devkafka"
MOCK_DIR=$(echo "$env_lines" | sed -n 's/^export SFK_STACK_DIR=//p')
mock_bootstrap=$(echo "$env_lines" | sed -n "s/^export KAFKA_BOOTSTRAP_SERVERS=//p" | tr -d "'")
start=$SECONDS
SFK_KAFKA_KIND=mock KAFKA_BOOTSTRAP_SERVERS=$mock_bootstrap timeout 60 "$SFK" topics create \
	>"$WORK/mock.out" 2>"$WORK/mock.err" || fail "create on the mock exited $?"
[ $((SECONDS - start)) -le 10 ] || fail "create on the mock took $((SECONDS - start)) s"
grep -q "auto-created on first use" "$WORK/mock.err" || fail "no auto-create note on the mock"
[ "$(grep -c ' auto-create ' "$WORK/mock.out")" = 18 ] || fail "mock: not every topic auto-create"
pass "mock broker: no CreateTopics, auto-create note, no hang"
