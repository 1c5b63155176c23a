#!/usr/bin/env bash
# it_e2e: the whole pipeline, exactly, on the REAL Kafka broker. sfk-sim's
# traffic generator creates SFK_E2E_LEADS Leads (default 10000) plus their
# responses (calls, email Tasks, EmailMessages, minutes to hours later in sim
# time, fast-forwarded). Default 10000, not 20000: at 20000 one run took
# ~3 min here and ~6.5 min under ASan (mostly the sim creating the Leads);
# SFK_E2E_LEADS=20000 runs the full size. sfk-bridge fans them out; two
# sfk-worker replicas of
# each workload (lead.route, lead.first_touch_detect,
# outreach.template_suggest) decide and write back; sfk-loader writes the
# flywheel to JSONL and Elasticsearch. Malformed events are injected (a CDC
# event with a broken header, a non-JSON record on a workload topic). Then
# tests/e2e/oracle.py checks, from the sim's truth, the org and the policy
# file only: every Lead's owner/segment/region per the policy (round-robin
# shares within 1 of the weights), First_Response_At__c == truth, a template
# for every Lead, writes per Lead within the documented bound, one JSONL line
# and one ES document per decision id, and nothing in any DLQ but the
# injected records. Figures (events/s, latency, API calls per 1,000 leads)
# are printed, never asserted.
#
# Needs KAFKA_BOOTSTRAP_SERVERS (the shared broker: topics and groups get a
# per-run prefix). Starts its own sfk-sim, Redis and Elasticsearch.
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
NAME=it_e2e
N=${SFK_E2E_LEADS:-10000}
RATE=${SFK_E2E_RATE:-400} # leads per second of sim time (real time until the leads exist)
REPLICAS=2
WORK=$(mktemp -d /tmp/it_e2e.XXXXXX)
PIDS=()
STACK=
cleanup() {
	local rc=$? p
	set +e
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	[ -n "$STACK" ] && SFK_STACK_DIR=$STACK "$SFK_SOURCE_DIR/tests/stack/down" "$STACK" >/dev/null 2>&1
	if [ -n "${SFK_IT_KEEP:-}" ]; then echo "$NAME: kept $WORK" >&2; else rm -rf "$WORK"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 143' TERM INT

fail() {
	echo "$NAME: FAIL: $*" >&2
	local f
	for f in "$WORK"/*.log; do
		[ -s "$f" ] && grep -v '"level":"\(info\|debug\)"' "$f" | tail -5 | sed "s|^|  $(basename "$f"): |" >&2
	done
	exit 1
}
pass() { echo "ok   $*"; }

for b in sfk sfk-bridge sfk-worker sfk-loader sfk-sim; do
	[ -x "$SFK_BIN_DIR/$b" ] || fail "$SFK_BIN_DIR/$b not built"
done
for c in kcat jq curl python3; do command -v $c >/dev/null || fail "$c not installed"; done
[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] ||
	fail "KAFKA_BOOTSTRAP_SERVERS is not set: run eval \"\$(tests/stack/up --kafka real --sim)\" first"
BROKERS=$KAFKA_BOOTSTRAP_SERVERS

# A private sim, Redis and Elasticsearch; the shared broker.
env_out=$("$SFK_SOURCE_DIR/tests/stack/up" --sim --es --kafka none) ||
	fail "tests/stack/up --sim --es failed"
eval "$env_out"
STACK=$SFK_STACK_DIR
export KAFKA_BOOTSTRAP_SERVERS=$BROKERS
[ -n "${ES_URL:-}" ] || fail "tests/stack/up --es printed no ES_URL"

cd "$SFK_SOURCE_DIR"
P="ite2e$$r$RANDOM."
S=$SFK_SOURCE_DIR
export SFK_TOPIC_PREFIX=$P SFK_GROUP_PREFIX=$P SFK_ADMIN_ADDR=127.0.0.1:0 SFK_CLIENT_ID=sfk-kpis
export SFK_BRIDGE_TRANSACTIONAL_ID="${P}bridge" SFK_BRIDGE_START_FROM=latest
export SFK_BRIDGE_LEASE_KEY="sfk:lease:${P}bridge"
export SFK_WORKLOADS_POLICY="$S/policies/workloads.json" SFK_WORKLOADS_SCHEMA="$S/schemas/workloads.schema.json"
export SFK_ROUTING_POLICY="$S/policies/routing_policy.json"
export SFK_ROUTING_POLICY_SCHEMA="$S/schemas/routing_policy.schema.json"
export SFK_TEMPLATE_POLICY="$S/policies/templates.json" SFK_TEMPLATE_SCHEMA="$S/schemas/templates.schema.json"
export SFK_LOADER_TOPIC="${P}flywheel" SFK_LOADER_GROUP="${P}loader" SFK_LOADER_DLQ_TOPIC="${P}dlq.loader"
export SFK_LOADER_SINKS=jsonl,es FLYWHEEL_DIR="$WORK/flywheel" SFK_FLYWHEEL_SCHEMA="$S/schemas/flywheel.schema.json"
export SFK_LOADER_ES_MAPPING="$S/schemas/es_flywheel_index.json"
export KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS=1000
mkdir -p "$FLYWHEEL_DIR"
WORKLOADS=(lead.route lead.first_touch_detect outreach.template_suggest)

ctl() { # ctl METHOD PATH [JSON]: the sim's control API
	curl -sS --fail --cacert "$SF_CA_FILE" -H 'Content-Type: application/json' \
		-X "$1" ${3:+-d "$3"} "$SF_SIM_URL$2"
}
topic() { # topic SUFFIX: committed "key<TAB>headers<TAB>value" lines
	kcat -b "$BROKERS" -C -t "$P$1" -o beginning -e -q \
		-X isolation.level=read_committed -f '%k\t%h\t%s\n' 2>/dev/null || true
}
start() { # start NAME CMD...
	local name=$1
	shift
	"$@" </dev/null >"$WORK/$name.log" 2>&1 &
	PIDS+=($!)
	NAMES+=("$name")
}
NAMES=()
alive() {
	local i
	for i in "${!PIDS[@]}"; do
		kill -0 "${PIDS[$i]}" 2>/dev/null || fail "${NAMES[$i]} exited"
	done
}
port_of() { sed -n 's/.*"msg":"admin listening".*"port":\([0-9]*\).*/\1/p' "$WORK/$1.log" | head -1; }
lag() { # "EXCESS TOTAL": consumer lag of the workers' groups and the loader
	# A transactional producer (the bridge) leaves a commit marker after its
	# last record: a caught-up group keeps a lag of 1 per partition on a real
	# broker. EXCESS is the lag beyond one per partition (-1: unknown).
	"$SFK_BIN_DIR/sfk" topics describe --json 2>/dev/null |
		jq -r '[.[] | select(.lag != null) | [((.lag | if type == "object" then ([.[]] | add // 0) else . end) - .partitions), 0] | max] as $x
			| [.[] | (.lag // 0) | if type == "object" then ([.[]] | add // 0) else . end] as $t
			| "\($x | add // 0) \($t | add // 0)"' 2>/dev/null || echo "-1 -1"
}

"$SFK_BIN_DIR/sfk" topics create --partitions 6 >"$WORK/topics.log" 2>&1 ||
	fail "sfk topics create: $(tail -3 "$WORK/topics.log")"
# New partitions need a moment to get their leader ("Not leader for
# partition"): the bridge reads its checkpoints at start-up, so wait until
# every partition of that topic answers an offset query.
deadline=$((SECONDS + 60))
for p in $(seq 0 5); do
	until kcat -b "$BROKERS" -Q -t "${P}bridge.checkpoints:$p:-1" 2>/dev/null | grep -q offset; do
		[ $SECONDS -lt $deadline ] || fail "${P}bridge.checkpoints partition $p has no leader after 60 s"
		sleep 0.3
	done
done

# Injected malformed records (keys name them): a non-JSON record on two
# workload topics, before the workers start.
printf 'e2e-poison-route\t{not json\n' | kcat -b "$BROKERS" -P -t "${P}wl.lead.route" -K $'\t' ||
	fail "cannot produce the poison record"
printf 'e2e-poison-tpl\t[1,2\n' | kcat -b "$BROKERS" -P -t "${P}wl.outreach.template_suggest" -K $'\t' ||
	fail "cannot produce the poison record"

start bridge "$SFK_BIN_DIR/sfk-bridge"
deadline=$((SECONDS + 60))
until [ "$(grep -c '"msg":"cometd subscribed"' "$WORK/bridge.log" || true)" -ge 3 ]; do
	[ $SECONDS -lt $deadline ] || fail "bridge not subscribed to the 3 channels"
	alive
	sleep 0.2
done
for w in "${WORKLOADS[@]}"; do
	for r in $(seq 1 $REPLICAS); do start "$w.$r" "$SFK_BIN_DIR/sfk-worker" --workload "$w"; done
done
start loader "$SFK_BIN_DIR/sfk-loader"
deadline=$((SECONDS + 60))
for n in "${NAMES[@]}"; do
	until [ -n "$(port_of "$n")" ] && curl -fsS "http://127.0.0.1:$(port_of "$n")/readyz" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || fail "$n not ready within 60 s"
		alive
		sleep 0.2
	done
done
pass "bridge, $REPLICAS replicas of ${WORKLOADS[*]}, loader (jsonl,es): ready"

# A CDC event with a broken header (commitNumber not a number): dlq.bridge.
ctl POST "/sim/events/raw?channel=/data/LeadChangeEvent" '{"schema":"x","payload":{"ChangeEventHeader":{"entityName":"Lead","changeType":"CREATE","recordIds":["00Q00000000BadXAAA"],"commitTimestamp":1,"commitNumber":"not-a-number","transactionKey":"e2e","sequenceNumber":1,"changeOrigin":"","changedFields":[]}}}' >/dev/null ||
	fail "cannot publish the malformed CDC event"

t0=$SECONDS
ctl POST /sim/traffic "{\"leads\":$N,\"rate\":$RATE,\"seed\":20,\"delay_min_ms\":60000,\"delay_max_ms\":7200000}" >/dev/null ||
	fail "traffic start"
# Leads arrive in real time; then the sim clock moves 20 minutes a second.
deadline=$((SECONDS + 60 + N / 40))
while :; do
	st=$(ctl GET /sim/traffic/status) || fail "traffic status"
	[ "$(jq -r .done <<<"$st")" = true ] && break
	if [ "$(jq -r .created <<<"$st")" -ge "$N" ]; then
		ctl POST /sim/clock '{"advance_ms":1200000}' >/dev/null || fail "sim clock"
	fi
	[ $SECONDS -lt $deadline ] || fail "traffic not done in time: $st"
	alive
	sleep 1
done
[ "$(jq -r .errors <<<"$st")" = 0 ] || fail "the generator had errors: $st"
t_traffic=$SECONDS
pass "traffic: $N leads and $(jq -r .responses_done <<<"$st") responses in $((t_traffic - t0)) s"

# Drained: no lag beyond the commit markers, unchanged three times in a row.
deadline=$((SECONDS + 60 + N / 200))
quiet=0 prev=
while [ $quiet -lt 3 ]; do
	l=$(lag)
	if [ "${l% *}" = 0 ] && [ "$l" = "$prev" ]; then quiet=$((quiet + 1)); else quiet=0; fi
	prev=$l
	[ $SECONDS -lt $deadline ] || fail "the pipeline did not drain in time (lag: excess, total = $l)"
	alive
	sleep 1
done
t_drained=$SECONDS
pass "pipeline drained (consumer lag: only commit markers) $((t_drained - t_traffic)) s after the traffic"

jq -n '{"bridge": ["/data/LeadChangeEvent"], "lead.route": ["e2e-poison-route"],
	"lead.first_touch_detect": [], "outreach.template_suggest": ["e2e-poison-tpl"], "loader": []}' \
	>"$WORK/expect_dlq.json"
collect() { # the org, truth, stats, ES count and DLQs as they are now
	curl -fsS -XPOST "$ES_URL/flywheel/_refresh" >/dev/null &&
		curl -fsS "$ES_URL/flywheel/_count" | jq -r .count >"$WORK/es_count" &&
		ctl GET /sim/traffic/truth >"$WORK/truth.json" &&
		ctl GET /sim/org >"$WORK/org.json" &&
		ctl GET /sim/stats >"$WORK/stats.json" || return 1
	local d
	for d in bridge "${WORKLOADS[@]}" loader; do topic "dlq.$d" >"$WORK/dlq.$d.tsv"; done
}
# The last writes and flywheel documents may trail the offsets by a moment:
# the oracle is asked again until it agrees or the deadline passes.
odeadline=$((SECONDS + 60 + N / 1000))
until collect && python3 "$S/tests/e2e/oracle.py" "$WORK" "$S/policies" >"$WORK/oracle.out" 2>&1; do
	[ $SECONDS -lt $odeadline ] || { cat "$WORK/oracle.out" >&2; fail "the oracle found problems (above)"; }
	alive
	sleep 3
done
events=$(jq '.events.published | ."/data/ChangeEvents" // ([.[]] | add) // 0' "$WORK/stats.json")
secs=$((t_drained - t0))
echo "  throughput: $events CDC events from the first lead to drained in $secs s ($(awk -v e="$events" -v s="$secs" 'BEGIN {printf "%.0f", e / (s ? s : 1)}')/s, information)"
cat "$WORK/oracle.out"
grep 'sfk.error_code=parse' "$WORK/dlq.bridge.tsv" | grep 'commitNumber' >/dev/null ||
	fail "dlq.bridge: the malformed event's reason is missing: $(cut -c1-300 "$WORK/dlq.bridge.tsv")"
for k in e2e-poison-route e2e-poison-tpl; do
	grep "^$k	.*sfk.error_code=parse" "$WORK"/dlq.*.tsv >/dev/null || fail "$k: not dead-lettered as a parse error"
done
pass "every lead: owner/segment/region per policy, First_Response_At__c == truth, template; writes within bound; 1 JSONL line + 1 ES document per decision; DLQs hold only the injected records"

# Graceful stop: everything exits 0 on SIGTERM.
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for i in "${!PIDS[@]}"; do
	wait "${PIDS[$i]}" || fail "${NAMES[$i]} exited with status $? after SIGTERM"
done
PIDS=()
! grep -l 'ERROR: AddressSanitizer\|runtime error:\|ERROR: LeakSanitizer' "$WORK"/*.log ||
	fail "sanitizer report in the logs"
pass "SIGTERM: every process exits 0"
echo "$NAME: all cases passed ($N leads)"
