#!/usr/bin/env bash
# tests/bench/loader_bench.sh [--count N] [--es]
#
# Throughput of sfk-loader per sink next to the raw consume rate of the SAME
# topic in the same run: N flywheel records are produced to a fresh topic,
# kcat consumes it once (raw rate), then sfk-loader drains it into JSONL
# (and, with --es, into Elasticsearch at $ES_URL) with a fresh group each.
# Rates are measured from the first record written to the last, so group
# join and start-up do not count. Prints records/s, bytes/s and the ratio
# to the raw rate.
#   env: KAFKA_BOOTSTRAP_SERVERS, SFK_BIN_DIR (default build/bin), ES_URL (--es)
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${SFK_BIN_DIR:-$src/build/bin}/sfk-loader
N=50000 es=0
while [ $# -gt 0 ]; do
	case $1 in
	--count) N=$2; shift 2 ;;
	--es) es=1; shift ;;
	*) echo "usage: $0 [--count N] [--es]" >&2; exit 2 ;;
	esac
done
: "${KAFKA_BOOTSTRAP_SERVERS:?set KAFKA_BOOTSTRAP_SERVERS (eval \"\$(tests/stack/up --kafka real)\")}"
[ $es = 0 ] || : "${ES_URL:?--es needs ES_URL (tests/stack/up --es)}"
[ -x "$bin" ] || { echo "$bin not built" >&2; exit 1; }

run=bench-$(date +%s)-$$
topic=bench.loader.$run
work=$(mktemp -d /tmp/loader_bench.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT

python3 "$src/tests/bench/loader_gen.py" --count "$N" --run "$run" >"$work/records"
bytes=$(cut -f2- "$work/records" | wc -c)
kcat -P -b "$KAFKA_BOOTSTRAP_SERVERS" -t "$topic" -K $'\t' -z lz4 <"$work/records"

now() { date +%s.%N; }
t0=$(now)
got=$(kcat -C -b "$KAFKA_BOOTSTRAP_SERVERS" -t "$topic" -o beginning -e -q -f '%s\n' | wc -l)
t1=$(now)
[ "$got" -eq "$N" ] || { echo "kcat read $got of $N" >&2; exit 1; }
raw=$(python3 -c "print(round($N/($t1-$t0)))")

# drain SINK PROGRESS-CMD: run the loader until PROGRESS-CMD prints N.
drain() {
	local sink=$1 progress=$2 first= n=0
	"$bin" --topic "$topic" --group "$run.$sink" --dlq-topic "$topic.dlq" --sinks "$sink" \
		--flywheel-dir "$work/jsonl" --flywheel-schema "$src/schemas/flywheel.schema.json" \
		--es-url "${ES_URL:-http://127.0.0.1:9}" --es-index "bench-$run" \
		--es-mapping "$src/schemas/es_flywheel_index.json" --admin-addr 127.0.0.1:0 \
		--log-level warn 2>>"$work/loader.log" </dev/null &
	pid=$!
	local deadline=$((SECONDS + 600))
	while [ "$n" -lt "$N" ]; do
		[ $SECONDS -lt $deadline ] || { echo "$sink: timeout at $n/$N" >&2; exit 1; }
		n=$($progress)
		[ -z "$first" ] && [ "$n" -gt 0 ] && first=$(now) && n0=$n
		sleep 0.1
	done
	local t=$(now)
	kill -TERM $pid; wait $pid || true; pid=
	python3 - "$sink" "$N" "$n0" "$first" "$t" "$bytes" "$raw" <<'PY'
import sys
sink, n, n0, t0, t1, b, raw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
rate = (n - n0) / max(t1 - t0, 1e-6)
print("%-6s %10.0f rec/s %12.0f B/s   ratio to raw consume %.2f" % (sink, rate, rate * b / n, rate / raw))
PY
}
jsonl_progress() { [ -d "$work/jsonl" ] || { echo 0; return; }; find "$work/jsonl" -name '*.jsonl' -exec cat {} + | wc -l; }
es_progress() {
	curl -fsS -XPOST "$ES_URL/bench-$run/_refresh" >/dev/null 2>&1 || { echo 0; return; }
	curl -fsS "$ES_URL/bench-$run/_count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])'
}

echo "records=$N bytes=$bytes topic=$topic"
printf '%-6s %10d rec/s %12.0f B/s   (kcat -C, same topic)\n' raw "$raw" "$(python3 -c "print($raw*$bytes/$N)")"
drain jsonl jsonl_progress
[ $es = 1 ] && drain es es_progress
exit 0
