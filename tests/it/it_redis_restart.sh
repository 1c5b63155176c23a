#!/usr/bin/env bash
# it_redis_restart: a client survives a Redis crash and restart mid-run.
#
# Starts its OWN redis-server on a free loopback port (never the shared stack
# one: we kill it), runs `it_redis --restart-loop` (EVALSHA + SET in a loop,
# one "ok" line per success), SIGKILLs Redis while the loop runs, checks the
# client keeps answering with errors instead of hanging, restarts Redis on
# the same port, and requires the client to recover by itself: new "ok" lines
# after a reconnect (the restarted server has an empty script cache, so this
# also proves the EVALSHA -> EVAL fallback) and its last write visible in Redis.
set -euo pipefail

src=${SFK_SOURCE_DIR:?SFK_SOURCE_DIR not set (run through ctest)}
bin=${SFK_BIN_DIR:?SFK_BIN_DIR not set (run through ctest)}
# shellcheck source=../stack/lib/common.sh
. "$src/tests/stack/lib/common.sh"

STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sfk-it-redis-restart.XXXXXX")
mkdir -p "$STATE_DIR/redis"
out=$STATE_DIR/worker.out
stop=$STATE_DIR/stop
redis_pid='' worker_pid=''

cleanup() {
	local rc=$?
	[ -n "$worker_pid" ] && kill "$worker_pid" 2>/dev/null
	[ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null
	wait 2>/dev/null
	if [ $rc -ne 0 ]; then
		echo "--- worker output (last 20 lines):" >&2
		tail -n 20 "$out" >&2 2>/dev/null || true
	fi
	rm -rf "$STATE_DIR"
	exit $rc
}
trap cleanup EXIT

die() { echo "it_redis_restart: FAIL: $*" >&2; exit 1; }
count() { grep -c "$1" "$out" 2>/dev/null || true; }
ping() { [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; }
at_least() { [ "$(count "$1")" -ge "$2" ]; } # at_least REGEX N: N matching lines

start_redis() {
	redis-server --bind 127.0.0.1 --port "$port" --dir "$STATE_DIR/redis" \
		--save '' --appendonly no --daemonize no \
		--logfile "$STATE_DIR/redis/redis.log" </dev/null >/dev/null 2>&1 &
	redis_pid=$!
	stack_wait 20 "redis" ping || die "redis-server did not answer PONG on port $port"
}

port=$(stack_free_port)
start_redis
echo "redis on 127.0.0.1:$port"

REDIS_URL=redis://127.0.0.1:$port/0 "$bin/it_redis" --restart-loop "$stop" >"$out" 2>&1 &
worker_pid=$!

stack_wait 30 "first successes" at_least '^ok ' 50 || die "worker made no progress before the restart"
before=$(count '^ok ')
echo "worker running: $before successes; killing redis (SIGKILL)"

kill -KILL "$redis_pid"
wait "$redis_pid" 2>/dev/null || true
redis_pid=''
# While Redis is down every call must come back with an error (no hang, no crash).
stack_wait 30 "errors while down" at_least '^error ' 5 || die "worker did not report errors while Redis was down"
kill -0 "$worker_pid" 2>/dev/null || die "worker died while Redis was down"
grep -m1 '^error ' "$out"
at_least '^error up=0 ' 1 || die "sfk_redis_up did not drop to 0 while Redis was down"
# Between failed reconnects the client waits out a backoff (fails fast, no storm).
stack_wait 30 "backoff" at_least '^error .*reconnect backoff' 1 ||
	die "no reconnect backoff while Redis was down"

start_redis
echo "redis restarted on the same port"
stack_wait 30 "recovery" at_least '^ok .* reconnects=[1-9]' 20 ||
	die "worker did not recover after the restart"
grep -m1 '^ok .* reconnects=[1-9]' "$out"
[ "$(grep '^ok ' "$out" | tail -n 1 | sed -n 's/.* up=\([0-9]*\)$/\1/p')" = 1 ] ||
	die "sfk_redis_up is not back to 1 after recovery"

touch "$stop"
rc=0
wait "$worker_pid" || rc=$?
worker_pid=''
[ $rc -eq 0 ] || die "worker exited with $rc"
last=$(tail -n 1 "$out")
echo "$last"
case $last in "done ok="*) ;; *) die "worker did not finish cleanly: $last" ;; esac

# What a user sees: the worker's last write is in the restarted Redis.
want=$(grep '^ok ' "$out" | tail -n 1 | sed -n 's/.*counter=\([0-9]*\).*/\1/p')
got=$(redis-cli -h 127.0.0.1 -p "$port" GET sfk:it:restart:last)
[ -n "$want" ] && [ "$got" = "$want" ] || die "last write not in Redis (want '$want', got '$got')"
echo "PASS: recovered after restart; last counter $got"
