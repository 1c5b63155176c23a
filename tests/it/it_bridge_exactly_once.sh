#!/usr/bin/env bash
# it_bridge_exactly_once: issue 5's exactly-once proof on the real broker.
# 10,000 changes are made in a private sfk-sim (2,000 Lead creates, then
# 8,000 updates of those Leads in random order, each setting a unique Title)
# while sfk-bridge is killed with SIGKILL at random moments (seeded, at
# least 5 times) and restarted. Then a read_committed consumer of every
# <prefix>cdc.* and <prefix>wl.* topic must see:
#   - every change exactly once per topic (counted by the sfk.event_id header),
#   - none missing: per Lead, the exact sequence of changes the test made
#     (CREATE, then each Title in the order it was written), and as many
#     events as the sim says it published on the channel,
#   - in order per record id (replay id increasing per key in a partition).
# Prints the seed (SFK_EO_SEED=<n> repeats the kill schedule) and, after each
# kill, the recovery time (process start to /readyz 200).
#
# Needs KAFKA_BOOTSTRAP_SERVERS (a real broker: aborted transactions must be
# invisible to read_committed); starts its own sim (tests/stack/up --sim).
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
NAME=it_bridge_exactly_once
BIN="$SFK_BIN_DIR/sfk-bridge"
LEADS=${SFK_EO_LEADS:-2000}
UPDATES=${SFK_EO_UPDATES:-8000}
MIN_KILLS=5
WORK=$(mktemp -d)
BPID=
GENPID=
STACK_UP=
cleanup() {
	set +e
	if [ -n "$GENPID" ]; then
		pkill -P "$GENPID" 2>/dev/null # its curl / sleep
		kill "$GENPID" 2>/dev/null
		wait "$GENPID" 2>/dev/null
	fi
	[ -n "$BPID" ] && kill -9 "$BPID" 2>/dev/null && wait "$BPID" 2>/dev/null
	[ -n "$STACK_UP" ] && "$SFK_SOURCE_DIR/tests/stack/down" >/dev/null 2>&1
	[ -n "${KEEP_WORK:-}" ] && echo "work: $WORK" >&2 || rm -rf "$WORK"
	return 0
}
trap cleanup EXIT
trap 'exit 143' TERM INT

fail() {
	echo "$NAME: FAIL: $*" >&2
	local f
	for f in "$WORK"/*.log; do
		[ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -8 >&2
	done
	exit 1
}
pass() { echo "ok   $*"; }

[ -x "$BIN" ] || fail "$BIN not built"
[ -x "$SFK_BIN_DIR/sfk-sim" ] || fail "$SFK_BIN_DIR/sfk-sim not built"
[ -x "$SFK_BIN_DIR/sfk" ] || fail "$SFK_BIN_DIR/sfk not built"
for c in kcat jq curl; do command -v $c >/dev/null || fail "$c not installed"; done
[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] ||
	fail "KAFKA_BOOTSTRAP_SERVERS is not set: run eval \"\$(tests/stack/up --kafka real)\" first"
[ "${SFK_KAFKA_KIND:-real}" = real ] ||
	fail "needs the real broker (SFK_KAFKA_KIND=$SFK_KAFKA_KIND: the mock shows aborted records)"
KAFKA=$KAFKA_BOOTSTRAP_SERVERS

P="ite$$r$RANDOM."
SEED=${SFK_EO_SEED:-$(($(date +%s%N) % 1000000))}
RANDOM=$SEED
echo "$NAME: seed $SEED (SFK_EO_SEED=$SEED repeats the kill schedule), prefix $P"

# A private sim: this test kills the bridge and floods the org.
up=$("$SFK_SOURCE_DIR/tests/stack/up" --sim --kafka none --no-redis 2>"$WORK/stack.log") ||
	fail "private sim did not start"
eval "$up"
STACK_UP=1
export KAFKA_BOOTSTRAP_SERVERS=$KAFKA
unset REDIS_URL # no lease: one bridge

"$SFK_BIN_DIR/sfk" topics create --prefix "$P" --partitions 3 >"$WORK/topics.log" 2>&1 ||
	fail "sfk topics create --prefix $P"
# A new topic's partitions answer offset queries only once their leader is
# ready; the bridge refuses to start while it cannot read its checkpoints.
ckpt_ready() {
	local t="${P}bridge.checkpoints" n q=() i
	n=$(kcat -b "$KAFKA" -L -t "$t" 2>/dev/null | grep -c '^    partition [0-9]*, leader [0-9]' || true)
	[ "$n" -gt 0 ] || return 1
	for ((i = 0; i < n; i++)); do q+=(-t "$t:$i:-1"); done
	[ "$(kcat -b "$KAFKA" -Q "${q[@]}" 2>/dev/null | grep -c ' offset [0-9]' || true)" -eq "$n" ]
}
deadline=$((SECONDS + 30))
until ckpt_ready; do
	[ $SECONDS -lt $deadline ] || fail "${P}bridge.checkpoints not ready 30 s after its creation"
	sleep 0.2
done

ADMIN_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
export SFK_TOPIC_PREFIX=$P SFK_BRIDGE_TRANSACTIONAL_ID="${P}bridge"
export SFK_ADMIN_ADDR="127.0.0.1:$ADMIN_PORT"
export SFK_WORKLOADS_POLICY="$SFK_SOURCE_DIR/policies/workloads.json"
export SFK_WORKLOADS_SCHEMA="$SFK_SOURCE_DIR/schemas/workloads.schema.json"
# earliest: a kill before the first checkpoint must not lose the first events
export SFK_CLIENT_ID=sfk-kpis SFK_BRIDGE_START_FROM=earliest
export SFK_BRIDGE_CHANNELS=/data/LeadChangeEvent

RUNS=0
# start_bridge: start sfk-bridge, wait for /readyz 200, print the time it took.
start_bridge() {
	RUNS=$((RUNS + 1))
	local t0 t1 deadline=$((SECONDS + 30))
	t0=$(date +%s%N)
	"$BIN" 2>"$WORK/bridge$RUNS.log" &
	BPID=$!
	until curl -sf -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz"; do
		kill -0 "$BPID" 2>/dev/null || fail "run $RUNS: sfk-bridge exited"
		[ $SECONDS -lt $deadline ] || fail "run $RUNS: /readyz not 200 within 30 s"
		sleep 0.02
	done
	t1=$(date +%s%N)
	RECOVERY_MS=$(((t1 - t0) / 1000000))
}

# make_requests FILE: run the curl config FILE (one keep-alive connection),
# bodies of the answers on stdout.
make_requests() {
	sed -i '$d' "$1" # the last "next" would start an empty request
	curl -sS -K "$1"
}
req() { # req METHOD PATH JSON: one request of a curl config
	printf 'url = "%s%s"\nrequest = "%s"\ndata = "%s"\nheader = "Content-Type: application/json"\ncacert = "%s"\nfail\nnext\n' \
		"$SF_SIM_URL" "$2" "$1" "${3//\"/\\\"}" "$SF_CA_FILE"
}

start_bridge
pass "bridge ready in $RECOVERY_MS ms"

# The changes, in chunks of 250 requests with a pause between chunks so that
# they take about 10 s and the kills land while the bridge is busy. Creates
# first (their ids are needed), then updates of random Leads: per Lead, the
# expected sequence is CREATE then its Titles in the order written.
CHUNK=250
for ((i = 0; i < LEADS; i++)); do
	printf -v f '%s/creates.%03d.cfg' "$WORK" $((i / CHUNK))
	req POST /sim/records/Lead "{\"LastName\":\"EO$i\",\"Company\":\"Acme\",\"Title\":\"c$i\"}" >>"$f"
done
# The updates are planned now (from the seed) as "lead index<TAB>Title" and
# turned into requests once the creates have given the Leads their ids.
for ((i = 0; i < UPDATES; i++)); do
	printf '%d\tu%d\n' $(((RANDOM * 32768 + RANDOM) % LEADS)) "$i"
done >"$WORK/plan"
plan_updates() { # plan_updates: $WORK/ids + $WORK/plan -> update configs, expected.updates
	[ "$(wc -l <"$WORK/ids")" -eq "$LEADS" ] || return 1
	awk -F'\t' -v w="$WORK" -v chunk=$CHUNK -v url="$SF_SIM_URL" -v ca="$SF_CA_FILE" '
		NR == FNR { id[NR - 1] = $1; next }
		{
			f = sprintf("%s/updates.%03d.cfg", w, int((FNR - 1) / chunk))
			printf "url = \"%s/sim/records/Lead/%s\"\nrequest = \"PATCH\"\n", url, id[$1] >f
			printf "data = \"{\\\"Title\\\":\\\"%s\\\"}\"\n", $2 >f
			printf "header = \"Content-Type: application/json\"\ncacert = \"%s\"\nfail\nnext\n", ca >f
			printf "%s\tUPDATE\t%s\n", id[$1], $2 >(w "/expected.updates")
		}' "$WORK/ids" "$WORK/plan"
}

# generator: creates, then the updates; runs in the background while the
# foreground kills the bridge.
(
	set -e
	for f in "$WORK"/creates.*.cfg; do
		make_requests "$f" | jq -r .id >>"$WORK/ids"
		sleep 0.2
	done
	plan_updates
	for f in "$WORK"/updates.*.cfg; do
		make_requests "$f" >/dev/null
		sleep 0.2
	done
	touch "$WORK/gen.done"
) 2>"$WORK/gen.log" &
GENPID=$!

# Kill -9 at random moments (0.3 to 2.3 s apart) while the changes are made
# and while the bridge catches up, at least MIN_KILLS times.
KILLS=0
KILLS_DURING=0
gen_deadline=$((SECONDS + 120))
while [ ! -e "$WORK/gen.done" ] || [ $KILLS -lt $MIN_KILLS ]; do
	[ $SECONDS -lt $gen_deadline ] || fail "changes not made within 120 s ($KILLS kills)"
	if [ ! -e "$WORK/gen.done" ] && ! kill -0 "$GENPID" 2>/dev/null; then
		fail "the change generator failed: $(tail -3 "$WORK/gen.log")"
	fi
	ms=$((300 + RANDOM % 2000))
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
	kill -0 "$BPID" 2>/dev/null || fail "run $RUNS: sfk-bridge died on its own"
	kill -9 "$BPID"
	wait "$BPID" 2>/dev/null || true
	KILLS=$((KILLS + 1))
	[ -e "$WORK/gen.done" ] || KILLS_DURING=$((KILLS_DURING + 1))
	start_bridge
	from=$(sed -n 's/.*"msg":"cometd subscribed".*"replay_id":\(-*[0-9]*\).*/\1/p' "$WORK/bridge$RUNS.log" | tail -1)
	echo "     kill $KILLS after ${ms} ms: recovery (start to /readyz 200) $RECOVERY_MS ms, resumed from replay id ${from:-?}"
done
wait "$GENPID" || fail "the change generator failed: $(tail -3 "$WORK/gen.log")"
GENPID=
[ "$(wc -l <"$WORK/ids")" -eq "$LEADS" ] || fail "only $(wc -l <"$WORK/ids") Leads created"
TOTAL=$((LEADS + UPDATES))
pass "$TOTAL changes made (${LEADS} creates, ${UPDATES} updates) with $KILLS kill -9 of the bridge ($KILLS_DURING while the changes were made)"

# What the sim published on the channel (and retained: nothing dropped).
stats=$(curl -sS --fail --cacert "$SF_CA_FILE" "$SF_SIM_URL/sim/stats") || fail "GET /sim/stats"
published=$(jq -r '.events.published["/data/LeadChangeEvent"] // 0' <<<"$stats")
[ "$published" -eq "$TOTAL" ] || fail "the sim published $published events on /data/LeadChangeEvent, want $TOTAL"
[ "$(jq -r '.events.dropped' <<<"$stats")" = 0 ] || fail "the sim dropped events from its replay window"

# consume SUFFIX: "partition<TAB>offset<TAB>key<TAB>event_id<TAB>value" of
# every committed record.
consume() {
	kcat -b "$KAFKA" -C -t "$P$1" -o beginning -e -q -X isolation.level=read_committed \
		-f '%p\t%o\t%k\t%h\t%s\n' 2>>"$WORK/kcat.log" |
		awk -F'\t' '{ id = ""; n = split($4, h, ",");
			for (i = 1; i <= n; i++) if (h[i] ~ /^sfk\.event_id=/) id = substr(h[i], 14);
			print $1 "\t" $2 "\t" $3 "\t" id "\t" $5 }'
}
# Wait for the bridge to catch up: every event id on cdc.lead.
deadline=$((SECONDS + 90))
while :; do
	n=$(consume cdc.lead | cut -f4 | sort -u | wc -l)
	[ "$n" -ge "$TOTAL" ] && break
	[ $SECONDS -lt $deadline ] || fail "cdc.lead: $n distinct events after 90 s, want $TOTAL"
	kill -0 "$BPID" 2>/dev/null || fail "run $RUNS: sfk-bridge died"
	sleep 0.5
done
kill -TERM "$BPID"
wait "$BPID" || fail "sfk-bridge exit status $? after SIGTERM"
BPID=

# The topics of this run.
topics=$(kcat -b "$KAFKA" -L 2>/dev/null | sed -n "s/^  topic \"\(${P//./\\.}\(cdc\|wl\)\.[^\"]*\)\".*/\1/p" | sort)
[ -n "$topics" ] || fail "no $P cdc.*/wl.* topic in the broker's metadata"
# Title updates match no workload rule (no Status or OwnerId change): only creations fan out.
declare -A want=([cdc.lead]=$TOTAL [wl.lead.route]=$LEADS [wl.lead.first_touch_detect]=$LEADS
	[wl.outreach.template_suggest]=$LEADS [wl.notify.webhook]=$LEADS)
for t in $topics; do
	s=${t#"$P"}
	consume "$s" >"$WORK/t.$s"
	total=$(wc -l <"$WORK/t.$s")
	distinct=$(cut -f4 "$WORK/t.$s" | sort -u | wc -l)
	noid=$(awk -F'\t' '$4 == ""' "$WORK/t.$s" | wc -l)
	[ "$noid" -eq 0 ] || fail "$s: $noid records without sfk.event_id"
	if [ "$distinct" -ne "$total" ]; then
		cut -f4 "$WORK/t.$s" | sort | uniq -d | head -3 >&2
		fail "$s: $((total - distinct)) duplicates ($total records, $distinct event ids)"
	fi
	[ "$total" -eq "${want[$s]:-0}" ] || fail "$s: $total events, want ${want[$s]:-0}"
	# per key within a partition: replay id (last part of the event id) increasing
	bad=$(sort -t$'\t' -k1,1n -k2,2n "$WORK/t.$s" | awk -F'\t' '{ n = split($4, e, ":"); r = e[n] + 0;
		k = $1 SUBSEP $3; if ((k in last) && r <= last[k]) bad++; last[k] = r } END { print bad + 0 }')
	[ "$bad" -eq 0 ] || fail "$s: $bad records out of replay-id order within their key"
	pass "$s: $total events, each exactly once, replay ids increasing per key"
	unset "want[$s]"
done
[ ${#want[@]} -eq 0 ] || fail "topics missing: ${!want[*]}"

# cdc.lead against what the test did: per Lead, CREATE then each Title in order.
{
	awk '{ print $0 "\tCREATE\tc" NR - 1 }' "$WORK/ids"
	cat "$WORK/expected.updates"
} | awk -F'\t' '{ seq[$1] = seq[$1] " " $2 ":" $3 } END { for (k in seq) print k "\t" seq[k] }' |
	sort >"$WORK/expected"
sort -t$'\t' -k1,1n -k2,2n "$WORK/t.cdc.lead" | cut -f5 |
	jq -r '[.record_id, .change_type, (.fields.Title // "-")] | @tsv' |
	awk -F'\t' '{ seq[$1] = seq[$1] " " $2 ":" $3 } END { for (k in seq) print k "\t" seq[k] }' |
	sort >"$WORK/got"
if ! cmp -s "$WORK/expected" "$WORK/got"; then
	diff "$WORK/expected" "$WORK/got" | head -6 >&2
	fail "cdc.lead: the per-Lead change sequences differ from what was written ($(diff "$WORK/expected" "$WORK/got" | grep -c '^>' || true) Leads)"
fi
pass "cdc.lead: all $LEADS Leads carry exactly their changes, in the order written"
echo "$NAME: all cases passed ($KILLS kills, seed $SEED)"
