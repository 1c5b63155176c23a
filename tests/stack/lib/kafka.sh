# Kafka for the test stack (sourced by tests/stack/up after lib/common.sh).
#
#   stack_start_kafka_real   Apache Kafka 3.9.x (KRaft, one node) from Maven
#                            Central jars, under $STATE_DIR/kafka
#   stack_start_kafka_mock   sfk-devkafka (librdkafka's mock cluster)
#
# Each prints `export KAFKA_BOOTSTRAP_SERVERS=...` and `export SFK_KAFKA_KIND=
# real|mock` on stdout once the service answers, logs to stderr, records its
# pid for tests/stack/down and returns non-zero on failure.
# Needs: STATE_DIR, SFK_BIN_DIR (mock); java 17, mvn, kcat and python3 for
# the real broker (tests/stack/deps installs them).

KAFKA_STACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../kafka" && pwd)

# The broker version pinned in tests/stack/kafka/pom.xml.
kafka_version() {
	sed -n 's#.*<kafka.version>\(.*\)</kafka.version>.*#\1#p' "$KAFKA_STACK_DIR/pom.xml"
}

# kafka_libs: print the directory holding the broker's jars, resolving them
# with Maven on first use. The cache is shared by every checkout on the
# machine, so it is populated atomically: resolve into a temp dir, then
# rename(2) it into place; a concurrent loser just discards its copy.
kafka_libs() {
	local v cache libs tmp
	v=$(kafka_version)
	[ -n "$v" ] || { stack_log "kafka: no <kafka.version> in $KAFKA_STACK_DIR/pom.xml"; return 1; }
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/sfk/kafka-$v
	libs=$cache/libs
	if [ -f "$libs/.complete" ]; then
		echo "$libs"
		return 0
	fi
	mkdir -p "$cache" || return 1
	tmp=$(mktemp -d "$cache/libs.tmp.XXXXXX") || return 1
	stack_log "kafka: resolving Apache Kafka $v jars from Maven Central into $libs"
	if ! mvn -B -q -Dstyle.color=never -f "$KAFKA_STACK_DIR/pom.xml" \
		org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$tmp" >&2 ||
		! [ -f "$tmp/kafka_2.13-$v.jar" ]; then
		rm -rf "$tmp"
		stack_log "kafka: maven could not resolve the broker classpath"
		return 1
	fi
	touch "$tmp/.complete"
	# mv -T renames onto $libs only if it does not exist (or is empty).
	mv -T "$tmp" "$libs" 2>/dev/null || rm -rf "$tmp"
	[ -f "$libs/.complete" ] || { stack_log "kafka: cache $libs is incomplete"; return 1; }
	echo "$libs"
}

# A KRaft cluster id: 16 random bytes, base64url without padding, not
# starting with '-' (what kafka.tools.StorageTool random-uuid prints; this
# saves one JVM start).
kafka_cluster_id() {
	python3 -c 'import base64,uuid
while True:
    s=base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"): print(s); break'
}

# Does the broker at $1 answer a metadata request with a broker list?
kafka_ready() {
	kcat -b "$1" -L -m 5 2>/dev/null | grep -q '^ *broker [0-9]* at '
}

# One start attempt on fresh ports; prints the bootstrap address on success.
kafka_real_try() {
	local dir=$1 libs=$2 bport cport cid pid jopts log4j deadline
	bport=$(stack_free_port) && cport=$(stack_free_port) || return 1
	[ "$bport" != "$cport" ] || return 1
	rm -rf "$dir/data"
	mkdir -p "$dir/data" "$dir/logs"
	sed -e "s#@DATA@#$dir/data#" -e "s#@BROKER_PORT@#$bport#" -e "s#@CONTROLLER_PORT@#$cport#" \
		"$KAFKA_STACK_DIR/server.properties" >"$dir/server.properties" || return 1
	jopts="-Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true"
	log4j="-Dlog4j.configuration=file:$KAFKA_STACK_DIR/log4j.properties"
	cid=$(kafka_cluster_id) || return 1
	# shellcheck disable=SC2086 # jopts is a word list on purpose
	if ! java $jopts "$log4j" -cp "$libs/*" kafka.tools.StorageTool format \
		-t "$cid" -c "$dir/server.properties" >>"$dir/kafka.log" 2>&1 </dev/null; then
		stack_log "kafka: storage format failed, see $dir/kafka.log"
		return 1
	fi
	# A plain background command: $! is the JVM itself (bash execs it in
	# the forked child), so down's SIGTERM reaches the broker directly and
	# triggers its controlled shutdown.
	# shellcheck disable=SC2086
	java $jopts "$log4j" -Dkafka.logs.dir="$dir/logs" -cp "$libs/*" \
		kafka.Kafka "$dir/server.properties" >>"$dir/kafka.log" 2>&1 </dev/null &
	pid=$!
	stack_record kafka "$pid"
	deadline=$((SECONDS + 90))
	while ! kafka_ready "127.0.0.1:$bport"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			stack_log "kafka: broker exited during start-up, see $dir/kafka.log"
			rm -f "$STATE_DIR/pids/kafka.pid"
			return 1
		fi
		if [ $SECONDS -ge $deadline ]; then
			stack_log "kafka: broker not ready after 90 s, see $dir/kafka.log"
			kill "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
			rm -f "$STATE_DIR/pids/kafka.pid"
			return 1
		fi
		sleep 0.3
	done
	echo "127.0.0.1:$bport"
}

stack_start_kafka_real() {
	local dir=$STATE_DIR/kafka libs bs t0=$SECONDS tool
	for tool in java mvn kcat python3; do
		command -v "$tool" >/dev/null 2>&1 ||
			{ stack_log "kafka: $tool not found (run tests/stack/deps)"; return 1; }
	done
	mkdir -p "$dir" || return 1
	libs=$(kafka_libs) || return 1
	# Free ports are racy: one retry with new ones.
	bs=$(kafka_real_try "$dir" "$libs") || bs=$(kafka_real_try "$dir" "$libs") || return 1
	stack_log "kafka: Apache Kafka $(kafka_version) ready at $bs in $((SECONDS - t0)) s (log $dir/kafka.log)"
	echo "export KAFKA_BOOTSTRAP_SERVERS='$bs'"
	echo "export SFK_KAFKA_KIND=real"
	echo "export SFK_KAFKA_VERSION='$(kafka_version)'"
}

stack_start_kafka_mock() {
	local dir=$STATE_DIR/kafka-mock bin=${SFK_BIN_DIR:-}/sfk-devkafka pid bs deadline
	[ -x "$bin" ] || { stack_log "kafka-mock: $bin not built"; return 1; }
	mkdir -p "$dir" || return 1
	: >"$dir/bootstrap"
	# Arguments pass through, e.g. --topic sfk.flywheel:6 (see sfk-devkafka --help).
	"$bin" "$@" >"$dir/bootstrap" 2>>"$dir/devkafka.log" </dev/null &
	pid=$!
	stack_record kafka-mock "$pid"
	deadline=$((SECONDS + 20))
	while ! grep -q '^KAFKA_BOOTSTRAP_SERVERS=' "$dir/bootstrap"; do
		if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
			stack_log "kafka-mock: sfk-devkafka did not start, see $dir/devkafka.log"
			kill "$pid" 2>/dev/null || true
			return 1
		fi
		sleep 0.1
	done
	bs=$(sed -n 's/^KAFKA_BOOTSTRAP_SERVERS=//p' "$dir/bootstrap")
	stack_log "kafka-mock: librdkafka mock cluster ready at $bs"
	echo "export KAFKA_BOOTSTRAP_SERVERS='$bs'"
	echo "export SFK_KAFKA_KIND=mock"
}
