#!/usr/bin/env bash
# sfk-loader Elasticsearch sink against a REAL Elasticsearch started privately
# (tests/stack/up --es), behind a proxy that injects 429s (whole _bulk
# requests, and single items inside a 200 answer). 5,000 flywheel records
# on a fresh topic of the shared broker, loader killed with -9 twice:
#  - document count == unique decision ids (create + _id, 409 on replay);
#  - the injected 429s were survived (only failed items retried);
#  - a record ES refuses (document_parsing_exception) and a schema-invalid
#    one are in sfk.dlq.loader with their reasons, not in the index;
#  - the monthly layout installs its index template and writes
#    flywheel-<workload>-YYYY-MM indices with the epoch_second mapping.
#   env: KAFKA_BOOTSTRAP_SERVERS (shared real broker), SFK_BIN_DIR, SFK_SOURCE_DIR
set -euo pipefail

N=5000
[ "${1:-}" = --full ] && N=50000
src=${SFK_SOURCE_DIR:?SFK_SOURCE_DIR is not set}
bin=${SFK_BIN_DIR:?SFK_BIN_DIR is not set}/sfk-loader
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] ||
	fail "KAFKA_BOOTSTRAP_SERVERS is not set: run under tests/run or eval \"\$(tests/stack/up --kafka real)\""
[ -x "$bin" ] || fail "$bin is not built"
command -v kcat >/dev/null || fail "kcat not found"

run=$(date +%s)-$$-$RANDOM
topic=it.loader.es.$run dlq=it.loader.esdlq.$run group=it.loader.es.$run
work=$(mktemp -d /tmp/it_loader_es.XXXXXX)
pid= proxy= stack=
cleanup() {
	local rc=$?
	set +e # a failing kill/wait here must not replace the test's status
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[ -n "$proxy" ] && kill "$proxy" 2>/dev/null && wait "$proxy" 2>/dev/null
	[ -n "$stack" ] && "$src/tests/stack/down" "$stack"
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
	exit $rc
}
trap cleanup EXIT
trap "exit 143" TERM INT # so that cleanup runs (and stops ES) when ctest gives up

# Our own Elasticsearch: this test injects faults in front of it.
envs=$("$src/tests/stack/up" --es --kafka none --no-redis) || fail "could not start Elasticsearch"
stack=$(printf '%s\n' "$envs" | sed -n 's/^export SFK_STACK_DIR=//p')
ES_URL=$(printf '%s\n' "$envs" | sed -n "s/^export ES_URL='\(.*\)'$/\1/p")
[ -n "$ES_URL" ] || fail "tests/stack/up --es printed no ES_URL"

python3 "$src/tests/bench/loader_es_proxy.py" --upstream "$ES_URL" --port-file "$work/port" \
	--stats "$work/proxy.json" --every 4 2>"$work/proxy.log" &
proxy=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
[ -s "$work/port" ] || fail "proxy did not start: $(cat "$work/proxy.log")"
PROXY_URL=http://127.0.0.1:$(cat "$work/port")

gen=$src/tests/bench/loader_gen.py
ts0=$(( ($(date +%s) / 86400 - 1) * 86400 )) # yesterday 00:00 UTC, 3 days
python3 "$gen" --count "$N" --run "$run" --seed 11 --start "$ts0" >"$work/records"
{
	head -n $((N / 2)) "$work/records"
	python3 "$gen" --bad --run "$run" --start "$ts0"
	python3 "$gen" --huge-ts --run "$run"
	tail -n +$((N / 2 + 1)) "$work/records"
} | kcat -P -b "$KAFKA_BOOTSTRAP_SERVERS" -t "$topic" -K $'\t' -z lz4 || fail "kcat could not produce"

count() { # documents in index pattern $1 (after a refresh)
	curl -fsS -XPOST "$ES_URL/$1/_refresh" >/dev/null 2>&1 || { echo 0; return; }
	curl -fsS "$ES_URL/$1/_count" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])' 2>/dev/null || echo 0
}

export KAFKA_GROUP_INSTANCE_ID=it-loader-es-$run KAFKA_SESSION_TIMEOUT_MS=6000
start() { # start URL GROUP LAYOUT
	"$bin" --topic "$topic" --group "$2" --dlq-topic "$dlq" --sinks es --es-url "$1" \
		--es-layout "$3" --es-mapping "$src/schemas/es_flywheel_index.json" \
		--flywheel-schema "$src/schemas/flywheel.schema.json" --batch-max 300 \
		--batch-linger 50ms --es-bulk-docs 100 --es-backoff-max 400ms \
		--admin-addr 127.0.0.1:0 --log-level info </dev/null 2>>"$work/loader.log" &
	pid=$!
}

deadline=$((SECONDS + 150))
kills=0
for k in 1 2; do
	start "$PROXY_URL" "$group" single
	before=$(count flywheel)
	while [ "$(count flywheel)" -eq "$before" ]; do
		[ $SECONDS -lt $deadline ] || fail "no progress (see $work/loader.log)"
		kill -0 "$pid" 2>/dev/null || fail "loader died: $(grep -v rdkafka "$work/loader.log" | tail -3)"
		sleep 0.2
	done
	sleep "0.$((RANDOM % 6))"
	n=$(count flywheel)
	kill -0 "$pid" 2>/dev/null || fail "loader died: $(grep -v rdkafka "$work/loader.log" | tail -3)"
	kill -9 "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
	kills=$((kills + 1))
	echo "kill -9 #$kills at ~$n/$N documents"
done

start "$PROXY_URL" "$group" single
until [ "$(count flywheel)" -ge "$N" ]; do
	[ $SECONDS -lt $deadline ] || fail "only $(count flywheel)/$N documents (see $work/loader.log)"
	kill -0 "$pid" 2>/dev/null || fail "loader died: $(grep -v rdkafka "$work/loader.log" | tail -3)"
	sleep 0.3
done
# The DLQ records were produced before the last batch committed; wait for it.
until kcat -C -b "$KAFKA_BOOTSTRAP_SERVERS" -t "$dlq" -e -q -f '%h\n' 2>/dev/null | grep 'sfk.sink=es' >/dev/null; do
	[ $SECONDS -lt $deadline ] || fail "no ES-refused record in $dlq"
	sleep 0.3
done
port=$(grep '"admin listening"' "$work/loader.log" | tail -1 | sed 's/.*"port":\([0-9]*\).*/\1/')
curl -fsS "http://127.0.0.1:$port/metrics" >"$work/metrics" || fail "no /metrics"
kill -TERM "$pid"
wait "$pid" || fail "loader exited non-zero after SIGTERM"
pid=

got=$(count flywheel)
[ "$got" -eq "$N" ] || fail "index holds $got documents, want $N (one per decision id)"
python3 - "$work/proxy.json" <<'PY' || fail "the proxy injected no 429s"
import json, sys
s = json.load(open(sys.argv[1]))
print("proxy: %s" % s)
assert s["whole_429"] >= 1 and s["item_429"] >= 1
PY
grep -q 'sfk_loader_es_item_errors_total{type="es_rejected_execution_exception"}' "$work/metrics" ||
	fail "item 429s not counted in sfk_loader_es_item_errors_total"

kcat -C -b "$KAFKA_BOOTSTRAP_SERVERS" -t "$dlq" -e -q -f '%k|%h\n' >"$work/dlq" 2>/dev/null || true
grep -q "huge-0|.*sfk.error_type=document_parsing_exception\|huge-0|.*sfk.error_type=mapper_parsing_exception" "$work/dlq" ||
	fail "ES-refused record not in the DLQ with its type: $(cat "$work/dlq")"
grep "huge-0|" "$work/dlq" | grep 'failed to parse field \[timestamp\]' >/dev/null ||
	fail "ES-refused record's reason missing: $(grep "huge-0|" "$work/dlq")"
grep -q "bad-0|.*sfk.error_reason=\$: unknown property 'extra_top_level'" "$work/dlq" ||
	fail "schema-invalid record not in the DLQ with its reason"
echo "DLQ: $(wc -l <"$work/dlq") record(s) with reasons"

# Monthly layout, straight to ES: template installed, per-workload month indices.
start "$ES_URL" "$group.monthly" monthly
until [ "$(count 'flywheel-*')" -ge "$N" ]; do
	[ $SECONDS -lt $((deadline + 60)) ] || fail "monthly: only $(count 'flywheel-*')/$N documents"
	kill -0 "$pid" 2>/dev/null || fail "loader died: $(grep -v rdkafka "$work/loader.log" | tail -3)"
	sleep 0.3
done
kill -TERM "$pid"
wait "$pid" || fail "monthly loader exited non-zero"
pid=
curl -fsS "$ES_URL/_cat/indices/flywheel-*?h=index" | sort >"$work/indices"
python3 -c '
import json,sys,time
names=set()
for l in open(sys.argv[1]):
    r=json.loads(l.split("\t",1)[1])
    names.add("flywheel-%s-%s" % (r["workload_id"], time.strftime("%Y-%m", time.gmtime(r["timestamp"]))))
print("\n".join(sorted(names)))' "$work/records" >"$work/want_indices"
diff "$work/want_indices" "$work/indices" ||
	fail "monthly indices differ"
curl -fsS "$ES_URL/_index_template/flywheel-sfk" | grep '"epoch_second' >/dev/null || fail "template lacks epoch_second"
# epoch seconds are read as seconds: a range query in ISO time finds the first day
d0=$(date -u -d "@$ts0" +%FT%TZ) d1=$(date -u -d "@$((ts0 + 86400))" +%FT%TZ)
day1=$(curl -fsS -XPOST "$ES_URL/flywheel/_count" -H 'Content-Type: application/json' \
	-d "{\"query\":{\"range\":{\"timestamp\":{\"gte\":\"$d0\",\"lt\":\"$d1\"}}}}" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
want1=$(python3 -c '
import json,sys
s=int(sys.argv[2])
print(sum(1 for l in open(sys.argv[1]) if s <= json.loads(l.split("\t",1)[1])["timestamp"] < s + 86400))' "$work/records" "$ts0")
[ "$want1" -gt 0 ] || fail "no record on the first day (generator)"
[ "$day1" -eq "$want1" ] || fail "timestamps misread: $day1 documents on ${d0%T*}, want $want1"
echo "PASS: $N documents exactly once through injected 429s and $kills kills; DLQ reasons; monthly layout"
