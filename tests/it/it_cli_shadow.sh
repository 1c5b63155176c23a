#!/usr/bin/env bash
# it_cli_shadow: `sfk replay --shadow` re-runs lead.route's decisions over a
# time range of the workload topic and writes nothing.
#   Leads in a private sim (+ Redis, for exact write counts) are fed to
#   <prefix>wl.lead.route by `sfk backfill` (shared real Kafka, per-run
#   prefix) before T1; a lead.route worker routes them and stops; after T1
#   three of the records are delivered again.
#   - --shadow --from T0 --to T1 --out FILE: one decision line per record
#     before T1, each with the owner, segment, region and reason the worker
#     decided (its flywheel records);
#   - --offline --out-topic T (no --to): every record, including the three
#     redeliveries, with the worker's owners (from the round-robin memo, read
#     only);
#   - neither run wrote to Salesforce (/sim/stats) or changed Redis, nor moved
#     the workers' group;
#   - lead.first_touch_detect over a backfilled closed Task: the first
#     response is decided (outcome written) but neither written nor stored
#     in Redis (sfk:ttfr:*);
#   - usage: --out with --out-topic, a bad --to -> exit 2.
#
# Needs: eval "$(tests/stack/up --kafka real --sim)" (the shared broker).
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
SFK="$SFK_BIN_DIR/sfk"
WORKER="$SFK_BIN_DIR/sfk-worker"
WORK=$(mktemp -d)
PIDS=()
PRIV_STACK=
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "$PRIV_STACK" ] && "$SFK_SOURCE_DIR/tests/stack/down" "$PRIV_STACK" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
	echo "it_cli_shadow: FAIL: $*" >&2
	for f in "$WORK"/*.out "$WORK"/*.err "$WORK"/*.log; do
		[ -s "$f" ] && grep -v '"level":"debug"' "$f" | tail -8 | sed "s|^|  $(basename "$f"): |" >&2
	done
	exit 1
}
pass() { echo "ok   $*"; }
[ -x "$SFK" ] || fail "$SFK not built"
[ -x "$WORKER" ] || fail "$WORKER not built"
[ -x "$SFK_BIN_DIR/sfk-sim" ] || fail "$SFK_BIN_DIR/sfk-sim not built"
command -v kcat >/dev/null || fail "kcat not installed"
command -v jq >/dev/null || fail "jq not installed"
[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] ||
	fail "KAFKA_BOOTSTRAP_SERVERS is not set: run under eval \"\$(tests/stack/up --kafka real --sim)\""
[ "${SFK_KAFKA_KIND:-real}" != mock ] || fail "needs a real broker"
BROKERS=$KAFKA_BOOTSTRAP_SERVERS
cd "$SFK_SOURCE_DIR"

env_out=$("$SFK_SOURCE_DIR/tests/stack/up" --sim --kafka none) || fail "private stack did not start"
eval "$env_out"
PRIV_STACK=$SFK_STACK_DIR
export KAFKA_BOOTSTRAP_SERVERS=$BROKERS

P="itsh$$x$RANDOM."
export SFK_TOPIC_PREFIX=$P SFK_GROUP_PREFIX=$P SFK_CLIENT_ID=sfk-kpis SFK_ADMIN_ADDR=127.0.0.1:0
export SFK_BACKFILL_TXN_ID="${P}backfill"
export SFK_ROUTING_POLICY=$SFK_SOURCE_DIR/policies/routing_policy.json
export SFK_ROUTING_POLICY_SCHEMA=$SFK_SOURCE_DIR/schemas/routing_policy.schema.json
"$SFK" topics create --partitions 2 >"$WORK/topics.out" 2>&1 || fail "topics create exited $?"

ctl() {
	curl -sS --fail --cacert "$SF_CA_FILE" -H 'Content-Type: application/json' \
		-X "$1" ${3:+-d "$3"} "$SF_SIM_URL$2"
}
topic() { # topic SUFFIX: "key<TAB>value" (read_committed)
	kcat -b "$BROKERS" -C -t "$P$1" -o beginning -e -q \
		-X isolation.level=read_committed -f '%k\t%s\n' 2>/dev/null || true
}
now_ms() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }

# 1. Leads, fed to the workload topic, routed by a worker.
T0=$(date -u -d '-2 seconds' +%Y-%m-%dT%H:%M:%S.%3NZ)
for spec in "United States|40" "USA|60" "us|70" "Germany|300" "gb|400" "Japan|5000" "France|-" "Atlantis|50" "USA|20"; do
	IFS='|' read -r c e <<<"$spec"
	body=$(jq -nc --arg c "$c" --arg e "$e" '{LastName: "Shadow", Company: "Acme", Country: $c}
		+ (if $e == "-" then {} else {NumberOfEmployees: ($e | tonumber)} end)')
	id=$(ctl POST /sim/records/Lead "$body" | jq -r .id)
	[ -n "$id" ] && [ "$id" != null ] || fail "could not create a lead"
	echo "$id" >>"$WORK/leads.txt"
done
NA=$(wc -l <"$WORK/leads.txt")
"$SFK" backfill --since "$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)" --entities Lead >"$WORK/bf.out" 2>"$WORK/bf.err" ||
	fail "backfill exited $?"
"$WORKER" --workload lead.route --batch-size 4 --batch-wait 100ms 2>"$WORK/worker.log" &
WPID=$!
PIDS+=($WPID)
routed() { ctl GET /sim/org | jq '[.Lead[] | select(.Routing_Policy_Version__c != null)] | length'; }
fly() { topic flywheel | cut -f2- | jq -r '.request.metadata.lead_id' | sort -u | wc -l; }
deadline=$((SECONDS + 90))
until [ "$(routed)" -ge "$NA" ] && [ "$(fly)" -ge "$NA" ]; do
	[ $SECONDS -lt $deadline ] || fail "worker: $(routed) routed, $(fly) flywheel records of $NA in 90 s"
	kill -0 $WPID || fail "worker exited"
	sleep 0.3
done
kill -TERM $WPID
wait $WPID || fail "worker exit status $?"
T1=$(now_ms)
# three redeliveries after T1
topic wl.lead.route | head -3 | kcat -b "$BROKERS" -P -t "${P}wl.lead.route" -K $'\t' 2>/dev/null ||
	fail "cannot re-produce"
topic flywheel | cut -f2- | jq -c '{lead: .request.metadata.lead_id,
	d: (.response.choices[0].message.content | fromjson | {owner_id, segment, region, reason_path})}' |
	sort -u >"$WORK/worker.jsonl"
snapshot() {
	ctl GET /sim/stats | jq -S .writes
	redis-cli -u "$REDIS_URL" --scan --pattern 'sfk:*' | grep -v '^sfk:tok:' | sort |
		while read -r k; do printf '%s %s\n' "$k" "$(redis-cli -u "$REDIS_URL" --raw DUMP "$k" | md5sum)"; done
}
snapshot >"$WORK/before.snap"
committed_before=$("$SFK" topics describe --json 2>/dev/null | jq -c --arg t "${P}wl.lead.route" '.[] | select(.name == $t) | .lag')
pass "$NA leads routed by the worker, 3 records redelivered after T1"

# 2. usage
set +e
"$SFK" replay --workload lead.route --from "$T0" --shadow --out x --out-topic y >"$WORK/u1.out" 2>&1; r1=$?
"$SFK" replay --workload lead.route --from "$T0" --to never --shadow >"$WORK/u2.out" 2>&1; r2=$?
set -e
[ "$r1 $r2" = "2 2" ] || fail "usage exits $r1 $r2, want 2 2"

# 3. online shadow [T0, T1) to a file
"$SFK" replay --workload lead.route --from "$T0" --to "$T1" --shadow --out "$WORK/shadow.jsonl" --json \
	>"$WORK/sum.out" 2>"$WORK/sum.err" || fail "shadow exited $?"
[ "$(jq .events "$WORK/sum.out")" = "$NA" ] || fail "shadow read $(jq .events "$WORK/sum.out") records, want $NA"
[ "$(wc -l <"$WORK/shadow.jsonl")" = "$NA" ] || fail "$(wc -l <"$WORK/shadow.jsonl") decision lines, want $NA"
jq -c '{lead: .lead_id, d: (.decision | {owner_id, segment, region, reason_path})}' "$WORK/shadow.jsonl" |
	sort -u >"$WORK/shadow.cmp"
diff "$WORK/worker.jsonl" "$WORK/shadow.cmp" >"$WORK/diff1.out" || fail "shadow decisions differ from the worker's"
pass "shadow [T0,T1) to a file: $NA decisions, each the worker's (owner, segment, region, reason)"

# 4. offline shadow from T0 to a topic: the redeliveries too, same owners
"$SFK" replay --workload lead.route --from "$T0" --shadow --offline --out-topic "${P}shadow" \
	>"$WORK/sum2.out" 2>"$WORK/sum2.err" || fail "offline shadow exited $?"
topic shadow | cut -f2- >"$WORK/shadow2.jsonl"
[ "$(wc -l <"$WORK/shadow2.jsonl")" = $((NA + 3)) ] || fail "$(wc -l <"$WORK/shadow2.jsonl") lines on the topic, want $((NA + 3))"
# (a redelivery batched with its original is skipped as already routed: no decision)
jq -c 'select(.decision != null) | {lead: .lead_id, d: (.decision | {owner_id, segment, region, reason_path})}' \
	"$WORK/shadow2.jsonl" | sort -u >"$WORK/shadow2.cmp"
diff "$WORK/worker.jsonl" "$WORK/shadow2.cmp" >"$WORK/diff2.out" || fail "offline shadow decisions differ from the worker's"
grep "$NA\|$((NA + 3))" "$WORK/sum2.out" >/dev/null || fail "no summary on stdout"
pass "offline shadow to a topic: $((NA + 3)) lines (3 redeliveries), the worker's owners"

# 5. nothing written anywhere, the group untouched
snapshot >"$WORK/after.snap"
diff "$WORK/before.snap" "$WORK/after.snap" >"$WORK/diff3.out" || fail "shadow changed Salesforce or Redis"
committed_after=$("$SFK" topics describe --json 2>/dev/null | jq -c --arg t "${P}wl.lead.route" '.[] | select(.name == $t) | .lag')
[ "$committed_before" = "$committed_after" ] || fail "group lag moved: $committed_before -> $committed_after"
pass "no Salesforce write, Redis unchanged, the workers' group untouched"

# 6. lead.first_touch_detect: a closed Task on a lead -> the shadow decides a
#    first response to write, and neither writes it nor stores the Redis minimum.
L1=$(head -1 "$WORK/leads.txt")
T=$(ctl POST /sim/records/Task "$(jq -nc --arg w "$L1" '{WhoId: $w, Subject: "Call", Status: "Completed", Type: "Call"}')" | jq -r .id)
[ -n "$T" ] && [ "$T" != null ] || fail "could not create a task"
"$SFK" backfill --since "$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)" --entities Task >"$WORK/bf3.out" 2>"$WORK/bf3.err" ||
	fail "task backfill exited $?"
"$SFK" replay --workload lead.first_touch_detect --from "$T0" --shadow --out "$WORK/ft.jsonl" >"$WORK/ft.out" 2>"$WORK/ft.err" ||
	fail "first_touch shadow exited $?"
line=$(jq -c --arg t "$T" 'select(.record_id == $t)' "$WORK/ft.jsonl")
[ "$(jq -r .outcome <<<"$line")" = written ] || fail "first_touch shadow: task outcome $(jq -r .outcome <<<"$line"), want written"
[ "$(jq -r .write.First_Response_Source__c <<<"$line")" = Task ] || fail "first_touch shadow: no write shown for the task"
[ "$(redis-cli -u "$REDIS_URL" --scan --pattern 'sfk:ttfr:*' | wc -l)" = 0 ] || fail "first_touch shadow stored a Redis minimum"
[ "$(ctl GET /sim/stats | jq --arg id "$L1" '.writes[$id] // 0')" = 1 ] || fail "first_touch shadow wrote to the lead"
pass "first_touch shadow: the task's first response decided (written), nothing stored or written"
