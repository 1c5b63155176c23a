# Shared helpers for tests/stack/up, down and lib/<service>.sh.
# Every service starter: starts its process(es) under $STATE_DIR, records each
# pid in $STATE_DIR/pids/<name>.pid (down kills exactly those), waits until the
# service really answers, logs to stderr and prints `export NAME=value` lines
# on stdout.

stack_log() { printf 'stack: %s\n' "$*" >&2; }
stack_die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

# A free TCP port on 127.0.0.1, chosen by the kernel. Racy in theory (another
# process may take it before we bind), so callers retry start-up once.
stack_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# stack_wait SECONDS DESCRIPTION CMD...: run CMD until it succeeds or time runs out.
stack_wait() {
	local secs=$1 what=$2; shift 2
	local deadline=$((SECONDS + secs))
	while ! "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.2
	done
	return 0
}

# stack_record NAME PID: remember a pid for down.
stack_record() { mkdir -p "$STATE_DIR/pids"; echo "$2" > "$STATE_DIR/pids/$1.pid"; }

# stack_alive NAME: is the recorded process still running?
stack_alive() { local p; p=$(cat "$STATE_DIR/pids/$1.pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null; }

# IMPORTANT for starters: `up` runs inside `eval "$(tests/stack/up)"`, so a
# service that kept our stdout open would hang the caller. Start every service
# with stdin from /dev/null and stdout/stderr to a log file in $STATE_DIR:
#     setsid prog ... </dev/null >"$STATE_DIR/prog.log" 2>&1 &
#     stack_record prog $!
