#!/usr/bin/env bash
# it_promtool: `promtool check metrics` against the LIVE /metrics of a running
# process. The process is `test_admin --serve PORTFILE`, which registers a
# representative set of the DESIGN.md section 7 metrics (labelled counters,
# the TTFR histogram with SLA buckets, gauges, sfk_build_info) and serves
# them through common/admin on a free loopback port.
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
BIN="$SFK_BIN_DIR/test_admin"
[ -x "$BIN" ] || { echo "it_promtool: $BIN not built" >&2; exit 1; }
command -v promtool >/dev/null || { echo "it_promtool: promtool not installed" >&2; exit 1; }
command -v curl >/dev/null || { echo "it_promtool: curl not installed" >&2; exit 1; }

WORK=$(mktemp -d)
PID=
cleanup() {
	if [ -n "$PID" ]; then
		kill "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "it_promtool: FAIL: $*" >&2
	[ -f "$WORK/serve.err" ] && sed 's/^/  serve: /' "$WORK/serve.err" >&2
	exit 1
}

SFK_ADMIN_ADDR=127.0.0.1:0 "$BIN" --serve "$WORK/port" 2>"$WORK/serve.err" &
PID=$!

# Poll for the port file (written atomically once the server listens).
deadline=$((SECONDS + 20))
until [ -s "$WORK/port" ]; do
	kill -0 "$PID" 2>/dev/null || fail "test_admin --serve exited early"
	[ $SECONDS -lt $deadline ] || fail "no port file after 20 s"
	sleep 0.1
done
PORT=$(cat "$WORK/port")
URL="http://127.0.0.1:$PORT/metrics"

HDRS="$WORK/headers"
curl -fsS -D "$HDRS" -o "$WORK/metrics.txt" "$URL" || fail "GET $URL failed"
grep -qi '^content-type: text/plain; version=0.0.4' "$HDRS" ||
	fail "wrong content type: $(grep -i '^content-type' "$HDRS")"

# promtool reads the exposition from stdin; it prints nothing when all is well.
set +e
promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.out" 2>&1
rc=$?
set -e
if [ $rc -ne 0 ] || [ -s "$WORK/promtool.out" ]; then
	cat "$WORK/promtool.out" >&2
	fail "promtool check metrics: exit $rc"
fi

# The scrape holds what the process registered (not just an empty page).
for want in \
	'sfk_build_info{version="' \
	'sfk_cdc_events_total{object="Lead",change_type="CREATE"} 12' \
	'sfk_first_response_latency_seconds_bucket{le="60"} 1' \
	'sfk_first_response_latency_seconds_bucket{le="86400"} 2' \
	'sfk_first_response_latency_seconds_bucket{le="+Inf"} 3' \
	'sfk_first_response_latency_seconds_count 3' \
	'sfk_decisions_total{workload="lead.route",outcome="fallback \"queue\"\\x"} 1'; do
	grep -qF -- "$want" "$WORK/metrics.txt" || fail "missing in scrape: $want"
done

# Every family registered by --serve made it into the scrape.
nfam=$(grep -c '^# TYPE ' "$WORK/metrics.txt")
[ "$nfam" -ge 15 ] || fail "only $nfam metric families in the scrape"

echo "it_promtool: OK ($nfam families, promtool clean) on port $PORT"
