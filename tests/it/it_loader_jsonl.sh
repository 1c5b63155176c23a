#!/usr/bin/env bash
# sfk-loader JSONL sink, exactly once across kill -9: produce N schema-valid
# flywheel records (CI: 5,000; --full: 50,000) to a fresh topic on the shared
# real broker, run sfk-loader, kill -9 it at random moments (at least 5
# times) and restart it until it has drained the topic. Then: every decision
# id exactly once across all files, no torn line, files named by workload
# and UTC day (mode 0640), plus one schema-invalid record in sfk.dlq.loader
# (with its reason) and `sfk-loader export` giving one chat line per prompt.
#   env: KAFKA_BOOTSTRAP_SERVERS (tests/stack/up --kafka real), SFK_BIN_DIR, SFK_SOURCE_DIR
set -euo pipefail

N=5000 KILLS=5 PAUSE=1 # kills come 0..PAUSE s after the restarted loader writes
[ "${1:-}" = --full ] && N=50000 KILLS=8 PAUSE=3
src=${SFK_SOURCE_DIR:?SFK_SOURCE_DIR is not set}
bin=${SFK_BIN_DIR:?SFK_BIN_DIR is not set}/sfk-loader
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] ||
	fail "KAFKA_BOOTSTRAP_SERVERS is not set: run under tests/run or eval \"\$(tests/stack/up --kafka real)\""
[ -x "$bin" ] || fail "$bin is not built"
command -v kcat >/dev/null || fail "kcat not found"

run=$(date +%s)-$$-$RANDOM
topic=it.loader.jsonl.$run dlq=it.loader.dlq.$run group=it.loader.$run
work=$(mktemp -d /tmp/it_loader_jsonl.XXXXXX)
dir=$work/flywheel
pid=
cleanup() {
	local rc=$?
	set +e # a failing kill/wait here must not replace the test's status
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
	exit $rc
}
trap cleanup EXIT
trap "exit 143" TERM INT # so that cleanup runs (and stops ES) when ctest gives up

gen=$src/tests/bench/loader_gen.py
# Yesterday, today and tomorrow (UTC): no day is old enough to be compressed
# (default: 24 h after the day ended) while the test runs.
ts0=$(( ($(date +%s) / 86400 - 1) * 86400 ))
day() { date -u -d "@$((ts0 + $1 * 86400))" +%F; }
python3 "$gen" --count "$N" --run "$run" --seed 7 --start "$ts0" >"$work/records"
# the invalid record sits in the middle of the stream
head -n $((N / 2)) "$work/records" >"$work/part1"
tail -n +$((N / 2 + 1)) "$work/records" >"$work/part2"
python3 "$gen" --bad --run "$run" --start "$ts0" >"$work/bad"
cat "$work/part1" "$work/bad" "$work/part2" | kcat -P -b "$KAFKA_BOOTSTRAP_SERVERS" -t "$topic" -K $'\t' -z lz4 ||
	fail "kcat could not produce to $topic"
python3 -c '
import json,sys
for line in open(sys.argv[1]):
    k,v=line.rstrip("\n").split("\t",1); r=json.loads(v)
    print("%s\t%s\t%d"%(k,r["workload_id"],r["timestamp"]))' "$work/records" >"$work/expected"

# Static membership: a restarted loader takes its predecessor's place at
# once instead of waiting out the dead member's session.
export KAFKA_GROUP_INSTANCE_ID=it-loader-$run KAFKA_SESSION_TIMEOUT_MS=6000
start() {
	"$bin" --topic "$topic" --group "$group" --dlq-topic "$dlq" --flywheel-dir "$dir" \
		--flywheel-schema "$src/schemas/flywheel.schema.json" --batch-max 100 \
		--batch-linger 50ms --admin-addr 127.0.0.1:0 --log-level warn \
		</dev/null 2>>"$work/loader.log" &
	pid=$!
}
lines() { # lines in plain and compressed files
	[ -d "$dir" ] || { echo 0; return; }
	{ find "$dir" -name "*.jsonl" -exec cat {} + ; find "$dir" -name "*.jsonl.gz" -exec zcat {} + ; } 2>/dev/null | wc -l
}

kills=0 midstream=0
deadline=$((SECONDS + 200))
while [ $kills -lt $KILLS ]; do
	start
	# wait until it writes something new, then a random extra moment
	before=$(lines)
	while [ "$(lines)" -eq "$before" ] && [ "$(lines)" -lt "$N" ] && kill -0 "$pid" 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || fail "loader made no progress (see $work/loader.log)"
		sleep 0.05
	done
	sleep "$((RANDOM % PAUSE)).$((RANDOM % 10))$((RANDOM % 10))"
	kill -0 "$pid" 2>/dev/null || fail "loader died by itself: $(tail -3 "$work/loader.log")"
	n=$(lines)
	kill -9 "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
	kills=$((kills + 1))
	[ "$n" -lt "$N" ] && midstream=$((midstream + 1))
	echo "kill -9 #$kills at ~$n/$N lines"
done
[ $midstream -ge 1 ] || fail "no kill happened while records were still being loaded"

# Final run: let it drain the topic, then stop it cleanly.
start
until [ "$(lines)" -ge "$N" ]; do
	[ $SECONDS -lt $deadline ] || fail "only $(lines)/$N lines after the deadline (see $work/loader.log)"
	kill -0 "$pid" 2>/dev/null || fail "loader died: $(tail -3 "$work/loader.log")"
	sleep 0.2
done
sleep 1 # anything beyond N (a duplicate) would show up in the check below
kill -TERM "$pid"
wait "$pid" || fail "loader exited non-zero after SIGTERM"
pid=

python3 "$src/tests/bench/loader_check.py" "$dir" "$work/expected" || fail "JSONL content check"

# The invalid record is in the DLQ with its reason, exactly once or more
# (at-least-once DLQ), and nowhere in the files (checked above).
kcat -C -b "$KAFKA_BOOTSTRAP_SERVERS" -t "$dlq" -e -q -f '%h\n' >"$work/dlq" 2>/dev/null || true
grep -q "sfk.error_reason=\$: unknown property 'extra_top_level'" "$work/dlq" ||
	fail "invalid record not in $dlq with its reason: $(head -2 "$work/dlq")"

# Export: one chat line per distinct prompt of lead.route (every prompt is distinct here).
want=$(awk -F'\t' '$2=="lead.route"' "$work/expected" | wc -l)
"$bin" export --workload lead.route --from "$(day 0)" --to "$(day 2)" --flywheel-dir "$dir" \
	>"$work/export.jsonl" 2>"$work/export.err" || fail "export failed: $(tail -5 "$work/export.err")"
python3 - "$work/export.jsonl" "$want" <<'PY' || fail "export output"
import json, sys
n = 0
for line in open(sys.argv[1]):
    m = json.loads(line)["messages"]
    assert [x["role"] for x in m] == ["system", "user", "assistant"], m
    json.loads(m[1]["content"]); json.loads(m[2]["content"])
    n += 1
assert n == int(sys.argv[2]), (n, sys.argv[2])
print("export lines=%d" % n)
PY
echo "PASS: $N records, $kills kills ($midstream mid-stream), every decision id exactly once"
