# Redis for the test stack (sourced by tests/stack/up after lib/common.sh).
#
#   stack_start_redis   Debian's redis-server on a free 127.0.0.1 port, state
#                       and log under $STATE_DIR/redis, no persistence
#
# Prints `export REDIS_URL=redis://127.0.0.1:PORT/0` on stdout once
# `redis-cli ping` answers PONG, logs to stderr, records the pid for
# tests/stack/down and returns non-zero on failure. Needs: STATE_DIR.

# redis_ping PORT: does a server answer PONG on PORT?
redis_ping() {
	[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]
}

stack_start_redis() {
	local dir=$STATE_DIR/redis port pid try
	command -v redis-server >/dev/null || { stack_log "redis: redis-server not installed"; return 1; }
	command -v redis-cli >/dev/null || { stack_log "redis: redis-cli not installed"; return 1; }
	mkdir -p "$dir"
	# The server's own output goes to files, never to up's stdout/stderr: a
	# caller's $(tests/stack/up) must not wait for redis-server to exit.
	# stack_free_port is racy (another process may bind the port before us):
	# if the server dies at start-up, try once more on a new port.
	for try in 1 2; do
		port=$(stack_free_port) || return 1
		redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
			--save '' --appendonly no --daemonize no \
			--protected-mode yes --logfile "$dir/redis.log" </dev/null >>"$dir/stdout.log" 2>&1 &
		pid=$!
		stack_record redis "$pid"
		# Up = answers PONG; gone = died (port taken, bad config).
		if stack_wait 20 "redis on $port" redis_or_dead "$port" "$pid" && redis_ping "$port"; then
			stack_log "redis: up on 127.0.0.1:$port (pid $pid)"
			echo "export REDIS_URL=redis://127.0.0.1:$port/0"
			return 0
		fi
		if kill -0 "$pid" 2>/dev/null; then
			stack_log "redis: no PONG on port $port within 20 s (log: $dir/redis.log)"
			return 1
		fi
		stack_log "redis: server exited at start-up (try $try; log: $dir/redis.log)"
	done
	return 1
}

# redis_or_dead PORT PID: succeeds once the server answers or has exited.
redis_or_dead() {
	redis_ping "$1" || ! kill -0 "$2" 2>/dev/null
}
