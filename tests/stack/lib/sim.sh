# sfk-sim starter for tests/stack/up (sourced; needs lib/common.sh, STATE_DIR,
# SFK_BIN_DIR). Generates a throwaway CA + server certificate and the
# connected app's key pair under $STATE_DIR/sim/, starts sfk-sim with TLS and
# the control API, waits until it answers and prints the SF_* exports.

SIM_CLIENT_ID=${SIM_CLIENT_ID:-sfk-sim-client-id}
SIM_USERNAME=${SIM_USERNAME:-integration@sfk-sim.test}
SIM_API_VERSION=${SIM_API_VERSION:-61.0}

# sim_gen_certs DIR: CA, server cert (IP:127.0.0.1, DNS:localhost), app key + cert.
sim_gen_certs() {
	local d=$1
	mkdir -p "$d"
	(
		umask 077
		cd "$d" || exit 1
		[ -s ca.pem ] && [ -s server.pem ] && [ -s app.key ] && [ -s app.pem ] && exit 0
		openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=sfk-sim test CA" \
			-keyout ca.key -out ca.pem \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1 || exit 1
		openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
			-keyout server.key -out server.csr >/dev/null 2>&1 || exit 1
		printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
			"basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" \
			"extendedKeyUsage=serverAuth" > server.ext
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
			-days 30 -extfile server.ext -out server.pem >/dev/null 2>&1 || exit 1
		# The connected app's signing key (what SF_PRIVATE_KEY_PATH points at)
		# and its self-signed certificate (what the admin uploads).
		openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=sfk connected app" \
			-keyout app.key -out app.pem >/dev/null 2>&1 || exit 1
		chmod 600 app.key server.key ca.key
		rm -f server.csr server.ext
	) || return 1
	chmod 644 "$d/ca.pem" "$d/server.pem" "$d/app.pem"
}

# sim_answers URL CAFILE: does the token endpoint answer (any OAuth JSON)?
sim_answers() {
	curl -sS --cacert "$2" -o /dev/null -w '%{http_code}' -X POST \
		-d grant_type=none "$1/services/oauth2/token" 2>/dev/null | grep -q '^400$'
}

stack_start_sim() {
	local dir="$STATE_DIR/sim" bin="${SFK_BIN_DIR:?SFK_BIN_DIR not set}/sfk-sim"
	local port url pid attempt deadline up
	[ -x "$bin" ] || stack_die "sfk-sim not built: $bin"
	sim_gen_certs "$dir" || stack_die "sfk-sim: certificate generation failed"
	for attempt in 1 2; do
		port=$(stack_free_port)
		"$bin" --listen "127.0.0.1:$port" --tls-cert "$dir/server.pem" \
			--tls-key "$dir/server.key" --app "$SIM_CLIENT_ID:$dir/app.pem" \
			--user "$SIM_USERNAME" --control --seed "${SIM_SEED:-1}" \
			${SIM_EXTRA_ARGS:-} >"$dir/stdout" 2>"$dir/sim.log" &
		pid=$!
		url="https://127.0.0.1:$port"
		# Ours must be the one answering: it printed its URL (it is
		# listening) and is alive; one that lost the port exits, while
		# whatever holds the port would answer too.
		deadline=$((SECONDS + 15)) up=0
		while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
			if grep -qx "SF_SIM_URL=$url" "$dir/stdout" 2>/dev/null &&
				sim_answers "$url" "$dir/ca.pem"; then
				up=1
				break
			fi
			sleep 0.2
		done
		[ $up = 1 ] && break
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		pid=
		stack_log "sfk-sim did not come up on port $port (attempt $attempt)"
	done
	[ -n "$pid" ] || stack_die "sfk-sim failed to start; see $dir/sim.log"
	stack_record sim "$pid"
	stack_log "sfk-sim up at $url (pid $pid)"
	cat <<EOF
export SF_SIM_URL=$url
export SF_LOGIN_URL=https://login.salesforce.com
export SF_TOKEN_URL=$url
export SF_CLIENT_ID=$SIM_CLIENT_ID
export SF_USERNAME=$SIM_USERNAME
export SF_PRIVATE_KEY_PATH=$dir/app.key
export SF_API_VERSION=$SIM_API_VERSION
export SF_CA_FILE=$dir/ca.pem
EOF
}

# sim_private_stack: for a test that changes global sim state (faults, clock
# jumps, forgotten clients, bulk data) or asserts exact counters. Starts a
# stack of its own (`tests/stack/up --sim --no-redis --kafka none`, passing
# SIM_EXTRA_ARGS / SIM_SEED on) and evals its exports in the calling shell,
# replacing the shared stack's SF_* and SFK_STACK_DIR. Sets SIM_PRIVATE_STACK
# to its state directory (sim log: $SIM_PRIVATE_STACK/sim/sim.log). Returns 1,
# with the shared stack's variables unset, when it cannot start: the caller
# must never fall back to the shared sim. Stop it with sim_private_stack_down
# (in an EXIT trap).
sim_private_stack() {
	local out v
	for v in SF_SIM_URL SF_LOGIN_URL SF_TOKEN_URL SF_CLIENT_ID SF_USERNAME \
		SF_PRIVATE_KEY_PATH SF_API_VERSION SF_CA_FILE SFK_STACK_DIR; do
		unset "$v"
	done
	SIM_PRIVATE_STACK=
	out=$("${SFK_SOURCE_DIR:?SFK_SOURCE_DIR not set}/tests/stack/up" --sim --no-redis \
		--kafka none) || return 1
	SIM_PRIVATE_STACK=$(sed -n 's/^export SFK_STACK_DIR=//p' <<<"$out")
	[ -n "$SIM_PRIVATE_STACK" ] || return 1
	eval "$out"
	[ -n "${SF_SIM_URL:-}" ] || return 1
}

# sim_private_stack_down: stop what sim_private_stack started (only that).
sim_private_stack_down() {
	[ -n "${SIM_PRIVATE_STACK:-}" ] || return 0
	"$SFK_SOURCE_DIR/tests/stack/down" "$SIM_PRIVATE_STACK" >/dev/null 2>&1 || true
	SIM_PRIVATE_STACK=
}
