# Elasticsearch for the test stack (sourced by tests/stack/up --es after lib/common.sh).
#
#   stack_start_es   one Elasticsearch 8.x node from Maven Central's integ-test-zip
#                    (org.elasticsearch.distribution.integ-test-zip:elasticsearch:<v>:zip,
#                    no bundled JDK: runs on the machine's Java 17), single-node, loopback,
#                    security off, disk threshold off, heap 512m, under $STATE_DIR/es.
#
# Prints `export ES_URL=http://127.0.0.1:PORT` once _cluster/health is yellow,
# logs to stderr, records the server JVM's pid (not the launcher's) for
# tests/stack/down and returns non-zero on failure. Elasticsearch refuses to
# run as root: when we are root it runs as the unprivileged system user
# $SFK_ES_USER (default sfk-es, created with useradd -r -M if missing).
# Needs: java >= 17, mvn, unzip, curl.

SFK_ES_VERSION=${SFK_ES_VERSION:-8.19.0}
SFK_ES_USER=${SFK_ES_USER:-sfk-es}

# es_dist: print the directory of the unpacked distribution, downloading it
# with Maven on first use. The cache is shared by every checkout on the
# machine, so it is populated atomically: unpack into a temp dir, then
# rename(2) it into place; a concurrent loser discards its copy.
es_dist() {
	local v=$SFK_ES_VERSION cache dist tmp
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/sfk/es-$v
	dist=$cache/dist
	if [ -f "$dist/.complete" ]; then
		echo "$dist"
		return 0
	fi
	mkdir -p "$cache" || return 1
	tmp=$(mktemp -d "$cache/dist.tmp.XXXXXX") || return 1
	stack_log "es: downloading Elasticsearch $v integ-test-zip from Maven Central into $dist"
	if ! mvn -B -q -Dstyle.color=never org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
		-Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$v:zip" \
		-DoutputDirectory="$tmp" >&2 ||
		! unzip -q "$tmp/elasticsearch-$v.zip" -d "$tmp" ||
		! [ -x "$tmp/elasticsearch-$v/bin/elasticsearch" ]; then
		rm -rf "$tmp"
		stack_log "es: could not fetch or unpack elasticsearch $v"
		return 1
	fi
	rm -f "$tmp/elasticsearch-$v.zip"
	touch "$tmp/.complete"
	mv -T "$tmp" "$dist" 2>/dev/null || rm -rf "$tmp"
	[ -f "$dist/.complete" ] || { stack_log "es: cache $dist is incomplete"; return 1; }
	echo "$dist"
}

es_ready() {
	curl -fsS --max-time 5 "$1/_cluster/health?wait_for_status=yellow&timeout=2s" >/dev/null 2>&1
}

# One start attempt on a fresh port; prints the URL on success.
es_try() {
	local dir=$1 home=$2 port tport pid url deadline run=()
	port=$(stack_free_port) && tport=$(stack_free_port) || return 1
	[ "$port" != "$tport" ] || return 1
	rm -rf "$dir/data" "$dir/logs" "$dir/run"
	mkdir -p "$dir/data" "$dir/logs" "$dir/tmp" "$dir/run" || return 1
	if [ "$(id -u)" = 0 ]; then
		chown -R "$SFK_ES_USER" "$dir/data" "$dir/logs" "$dir/tmp" "$dir/run" "$dir/config" || return 1
		run=(runuser -u "$SFK_ES_USER" --)
	fi
	# -d -p: the launcher daemonizes the server JVM, waits for it to start
	# and writes the SERVER's pid, which is what down must signal.
	("${run[@]}" env ES_JAVA_HOME="$ES_JAVA_HOME_USED" ES_PATH_CONF="$dir/config" \
		ES_TMPDIR="$dir/tmp" ES_JAVA_OPTS="-Xms512m -Xmx512m" \
		"$home/bin/elasticsearch" -d -p "$dir/run/es.pid" \
		-E discovery.type=single-node -E network.host=127.0.0.1 \
		-E http.port="$port" -E transport.port="$tport" \
		-E xpack.security.enabled=false \
		-E cluster.routing.allocation.disk.threshold_enabled=false \
		-E path.data="$dir/data" -E path.logs="$dir/logs" \
		</dev/null >>"$dir/es.log" 2>&1) || {
		stack_log "es: launcher failed, see $dir/es.log and $dir/logs"
		return 1
	}
	url=http://127.0.0.1:$port
	deadline=$((SECONDS + 120))
	while ! pid=$(cat "$dir/run/es.pid" 2>/dev/null) || [ -z "$pid" ]; do
		[ $SECONDS -lt $deadline ] || { stack_log "es: no pid file"; return 1; }
		sleep 0.2
	done
	stack_record es "$pid"
	while ! es_ready "$url"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			stack_log "es: server exited during start-up, see $dir/es.log and $dir/logs"
			rm -f "$STATE_DIR/pids/es.pid"
			return 1
		fi
		if [ $SECONDS -ge $deadline ]; then
			stack_log "es: not yellow after 120 s, see $dir/logs"
			kill "$pid" 2>/dev/null || true
			rm -f "$STATE_DIR/pids/es.pid"
			return 1
		fi
		sleep 0.3
	done
	echo "$url"
}

stack_start_es() {
	local dir=$STATE_DIR/es dist home url t0=$SECONDS tool
	for tool in java mvn unzip curl python3; do
		command -v "$tool" >/dev/null 2>&1 ||
			{ stack_log "es: $tool not found (run tests/stack/deps)"; return 1; }
	done
	ES_JAVA_HOME_USED=${ES_JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}
	dist=$(es_dist) || return 1
	if [ "$(id -u)" = 0 ] && ! id "$SFK_ES_USER" >/dev/null 2>&1; then
		useradd -r -M -s /usr/sbin/nologin "$SFK_ES_USER" ||
			{ stack_log "es: cannot create user $SFK_ES_USER"; return 1; }
	fi
	mkdir -p "$dir" || return 1
	# The cache may sit under a home the ES user cannot enter: give the node
	# its own hard-linked (else copied) tree, and a private config dir
	# (the node writes its keystore there).
	home=$dir/home
	cp -al "$dist/elasticsearch-$SFK_ES_VERSION" "$home" 2>/dev/null ||
		cp -r "$dist/elasticsearch-$SFK_ES_VERSION" "$home" || return 1
	cp -r "$home/config" "$dir/config" || return 1
	# The stock jvm.options write gc.log, heap dumps and hs_err files
	# relative to ES_HOME, which the ES user cannot write: point them here.
	sed -i -e "s#file=logs/#file=$dir/logs/#" -e "s#HeapDumpPath=data#HeapDumpPath=$dir/data#" \
		-e "s#ErrorFile=logs/#ErrorFile=$dir/logs/#" "$dir/config/jvm.options" || return 1
	# The ES user must be able to walk into the (mode 0700) state dir.
	chmod o+x "$STATE_DIR" "$dir" || return 1
	chmod -R o+rX "$home" 2>/dev/null || true
	url=$(es_try "$dir" "$home") || url=$(es_try "$dir" "$home") || return 1
	stack_log "es: Elasticsearch $SFK_ES_VERSION ready at $url in $((SECONDS - t0)) s (logs $dir/logs)"
	echo "export ES_URL='$url'"
	echo "export SFK_ES_VERSION='$SFK_ES_VERSION'"
}
