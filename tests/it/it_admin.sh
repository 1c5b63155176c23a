#!/usr/bin/env bash
# it_admin: a process serving common/admin behaves like an operator expects:
# SFK_ADMIN_ADDR is honoured, --check-config/--help/--version work, the
# endpoints answer over the network, and SIGTERM stops it cleanly (exit 0,
# port released) while a client holds a connection open.
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
BIN="$SFK_BIN_DIR/test_admin"
[ -x "$BIN" ] || { echo "it_admin: $BIN not built" >&2; exit 1; }

WORK=$(mktemp -d)
PID=
HOLD=
cleanup() {
	[ -n "$HOLD" ] && kill "$HOLD" 2>/dev/null || true
	if [ -n "$PID" ]; then
		kill "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "it_admin: FAIL: $*" >&2
	[ -f "$WORK/serve.err" ] && sed 's/^/  serve: /' "$WORK/serve.err" >&2
	exit 1
}

# Standard flags through the config helper.
out=$("$BIN" --serve --version) || fail "--version exit $?"
[[ "$out" == "test_admin --serve "* ]] || fail "--version printed '$out'"
"$BIN" --serve --help | grep -c -- '--admin-addr' >/dev/null || fail "--help does not list --admin-addr"
"$BIN" --serve --help | grep -c 'SFK_ADMIN_ADDR' >/dev/null || fail "--help does not name SFK_ADMIN_ADDR"
out=$("$BIN" --serve --check-config) || fail "--check-config exit $?"
[ "$out" = "configuration OK" ] || fail "--check-config printed '$out'"
set +e
err=$("$BIN" --serve --check-config --bogus 2>&1 >/dev/null)
rc=$?
set -e
[ $rc -eq 78 ] || fail "--check-config with a bad flag: exit $rc, want 78"
[ "$err" = "--bogus: unknown flag (see --help)" ] || fail "problem line was '$err'"

set +e
err=$(SFK_ADMIN_ADDR=nonsense "$BIN" --serve --check-config 2>&1 >/dev/null)
rc=$?
set -e
[ $rc -eq 78 ] || fail "--check-config with a bad SFK_ADMIN_ADDR: exit $rc, want 78"
[ "$err" = "--admin-addr (SFK_ADMIN_ADDR): admin address 'nonsense': expected host:port" ] ||
	fail "problem line was '$err'"

# A fixed port from the environment (chosen free by the kernel first).
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
SFK_ADMIN_ADDR="127.0.0.1:$PORT" "$BIN" --serve "$WORK/port" 2>"$WORK/serve.err" &
PID=$!
deadline=$((SECONDS + 20))
until [ -s "$WORK/port" ]; do
	kill -0 "$PID" 2>/dev/null || fail "server exited early"
	[ $SECONDS -lt $deadline ] || fail "no port file after 20 s"
	sleep 0.1
done
[ "$(cat "$WORK/port")" = "$PORT" ] || fail "bound $(cat "$WORK/port"), SFK_ADMIN_ADDR said $PORT"

base="http://127.0.0.1:$PORT"
[ "$(curl -sS "$base/healthz")" = '{"status":"ok"}' ] || fail "/healthz body"
[ "$(curl -sS -o /dev/null -w '%{http_code}' "$base/readyz")" = 200 ] || fail "/readyz status"
body=$(curl -sS -w ' %{http_code}' "$base/no/such")
[ "$body" = '{"error":"not_found","path":"/no/such"} 404' ] || fail "404 answer was '$body'"

# Hold an idle connection open, then ask the process to stop.
python3 -c 'import socket,sys,time
s=socket.create_connection(("127.0.0.1",int(sys.argv[1])))
s.sendall(b"GET /healthz HTTP/1.1\r\n")
open(sys.argv[2],"w").write("connected")
time.sleep(60)' "$PORT" "$WORK/held" &
HOLD=$!
deadline=$((SECONDS + 10))
until [ -s "$WORK/held" ]; do
	[ $SECONDS -lt $deadline ] || fail "holder did not connect"
	sleep 0.1
done
kill -TERM "$PID"
deadline=$((SECONDS + 10))
while kill -0 "$PID" 2>/dev/null; do
	[ $SECONDS -lt $deadline ] || fail "still running 10 s after SIGTERM"
	sleep 0.1
done
set +e
wait "$PID"
rc=$?
set -e
PID=
[ $rc -eq 0 ] || fail "exit status $rc after SIGTERM"
grep -q '"msg":"stopping"' "$WORK/serve.err" || fail "no stopping log line"
# The port is free again (REUSEADDR: closed connections may sit in TIME_WAIT).
python3 -c 'import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen()' "$PORT" ||
	fail "port $PORT still bound after exit"
echo "it_admin: OK"
