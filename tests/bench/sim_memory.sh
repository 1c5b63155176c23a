#!/usr/bin/env bash
# sim_memory.sh [LEADS]: sfk-sim's resident memory with LEADS (default
# 20,000, the end-to-end test's size) created by the traffic generator, every
# response made (Tasks, EmailMessages + relations) and their CDC events
# retained. Private stack (tests/stack/up --sim --no-redis --kafka none),
# stopped on exit. Prints RSS / peak before and after, records by type.
# Needs a build: SFK_BIN_DIR (default <repo>/build/bin).
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export SFK_SOURCE_DIR=$src SFK_BIN_DIR=${SFK_BIN_DIR:-$src/build/bin}
N=${1:-20000}
. "$src/tests/stack/lib/common.sh"
. "$src/tests/stack/lib/sim.sh"
trap sim_private_stack_down EXIT
export SIM_EXTRA_ARGS="--log-level warn"
sim_private_stack || { echo "sim_memory: could not start sfk-sim" >&2; exit 1; }
pid=$(cat "$SIM_PRIVATE_STACK/pids/sim.pid")
sim() { curl -sS --fail-with-body --cacert "$SF_CA_FILE" "$@"; }
rss() { awk '/^VmRSS|^VmHWM/ {printf "%s %d MB  ", $1, $2 / 1024}' "/proc/$pid/status"; }

echo "idle:      $(rss)"
start=$SECONDS
sim -X POST -H 'Content-Type: application/json' \
	-d "{\"leads\":$N,\"rate\":100000,\"seed\":3}" "$SF_SIM_URL/sim/traffic" >/dev/null
deadline=$((SECONDS + 600))
until [ "$(sim "$SF_SIM_URL/sim/traffic/status" | jq -r .created)" = "$N" ]; do
	[ $SECONDS -lt $deadline ] || { echo "sim_memory: leads not created in 600 s" >&2; exit 1; }
	sleep 0.5
done
echo "created:   $(rss) ($((SECONDS - start)) s)"
st=$(sim "$SF_SIM_URL/sim/traffic/status")
now_ms=$(sim "$SF_SIM_URL/sim/clock" | jq -r .now_ms)
# Past the last planned response (older sims without last_due_ms: one hour).
last_due=$(jq -r '.last_due_ms // empty' <<<"$st")
sim -X POST -H 'Content-Type: application/json' \
	-d "{\"advance_ms\":$([ -n "$last_due" ] && echo $((last_due - now_ms + 1000)) || echo 3600000)}" \
	"$SF_SIM_URL/sim/clock" >/dev/null
until [ "$(sim "$SF_SIM_URL/sim/traffic/status" | jq -r .done)" = true ]; do
	[ $SECONDS -lt $deadline ] || { echo "sim_memory: responses not done in 600 s" >&2; exit 1; }
	sleep 0.5
done
st=$(sim "$SF_SIM_URL/sim/traffic/status")
echo "responded: $(rss) ($((SECONDS - start)) s)"
echo "status:    $(jq -c '{created, responses_done, errors}' <<<"$st")"
echo "records:   $(sim "$SF_SIM_URL/sim/org" | jq -c 'with_entries(.value |= length)')"
echo "events:    $(sim "$SF_SIM_URL/sim/stats/events" | jq -c '{retained, retained_bytes}' 2>/dev/null || echo n/a)"
echo "after GET /sim/org: $(rss)"
