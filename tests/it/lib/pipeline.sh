# tests/it/lib/pipeline.sh - what the pipeline integration tests share: a work
# directory, cleanup of the processes they start and of their private stack,
# fail/pass lines, a private sfk-sim + Redis next to the suite's broker,
# per-run topic names and the sim's control API.
#
#   set -euo pipefail
#   NAME=it_example
#   . "$SFK_SOURCE_DIR/tests/it/lib/pipeline.sh"
#   it_require sfk-bridge sfk-worker sfk-sim -- kcat jq curl
#   it_need_kafka                 # KAFKA_BOOTSTRAP_SERVERS or fail; sets BROKERS
#   it_private_sim                # own sfk-sim + Redis (SF_*, REDIS_URL); broker kept
#   it_pipeline_env itex          # P=itex<pid>r<n>. and the SFK_* settings of a pipeline
#   start bridge "$SFK_BIN_DIR/sfk-bridge"; bridge_subscribed 3 30
#
# A test may define it_on_exit (called first by the EXIT trap) for cleanup of
# its own. Processes started with start() get SIGTERM, or SIGKILL when
# IT_KILL=9 (tests that do not need a graceful stop).

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
: "${NAME:?set NAME before sourcing tests/it/lib/pipeline.sh}"
WORK=$(mktemp -d)
PIDS=()
STACK=
IT_KILL=${IT_KILL:-TERM}

it_cleanup() {
	local p
	if declare -F it_on_exit >/dev/null; then it_on_exit || true; fi
	for p in "${PIDS[@]}"; do kill -"$IT_KILL" "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ -n "$STACK" ]; then
		"$SFK_SOURCE_DIR/tests/stack/down" "$STACK" >/dev/null 2>&1 || true
	fi
	rm -rf "$WORK"
}
trap it_cleanup EXIT

fail() { # fail MESSAGE: the reason, the last non-info lines of every log, exit 1
	echo "$NAME: FAIL: $*" >&2
	[ -z "${SFK_IT_KEEP:-}" ] || cp -r "$WORK" "$SFK_IT_KEEP"
	local f
	for f in "$WORK"/*.log; do
		[ -s "$f" ] && grep -v '"level":"info"\|"level":"debug"' "$f" | tail -8 |
			sed "s|^|  $(basename "$f"): |" >&2
	done
	exit 1
}
pass() { echo "ok   $*"; }

it_require() { # it_require BINARY... [-- COMMAND...]
	local b
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		[ -x "$SFK_BIN_DIR/$1" ] || fail "$SFK_BIN_DIR/$1 not built"
		shift
	done
	[ $# -gt 0 ] && shift
	for b in "$@"; do command -v "$b" >/dev/null || fail "$b not installed"; done
}

it_need_kafka() { # the suite's broker: KAFKA_BOOTSTRAP_SERVERS, kept in BROKERS
	[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] ||
		fail "KAFKA_BOOTSTRAP_SERVERS is not set: run eval \"\$(tests/stack/up --kafka real --sim)\" first"
	BROKERS=$KAFKA_BOOTSTRAP_SERVERS
}

it_private_sim() { # it_private_sim [UP-ARGS...]: own sfk-sim + Redis, the broker kept
	local out brokers=${KAFKA_BOOTSTRAP_SERVERS:-}
	out=$("$SFK_SOURCE_DIR/tests/stack/up" --sim --kafka none "$@") ||
		fail "tests/stack/up --sim did not start"
	eval "$out"
	STACK=$SFK_STACK_DIR
	export KAFKA_BOOTSTRAP_SERVERS=$brokers
}

it_pipeline_env() { # it_pipeline_env NAME: per-run prefix P and a pipeline's settings
	P="$1$$r$RANDOM."
	export SFK_TOPIC_PREFIX=$P SFK_ADMIN_ADDR=127.0.0.1:0 SFK_CLIENT_ID=sfk-kpis
	export SFK_BRIDGE_TRANSACTIONAL_ID="${P}bridge" SFK_BRIDGE_START_FROM=latest
	export SFK_BRIDGE_LEASE_KEY="sfk:lease:${P}bridge"
	export SFK_WORKLOADS_POLICY="$SFK_SOURCE_DIR/policies/workloads.json"
	export SFK_WORKLOADS_SCHEMA="$SFK_SOURCE_DIR/schemas/workloads.schema.json"
	export SFK_ROUTING_POLICY="$SFK_SOURCE_DIR/policies/routing_policy.json"
	export SFK_ROUTING_POLICY_SCHEMA="$SFK_SOURCE_DIR/schemas/routing_policy.schema.json"
	export SFK_TEMPLATE_POLICY="$SFK_SOURCE_DIR/policies/templates.json"
	export SFK_TEMPLATE_SCHEMA="$SFK_SOURCE_DIR/schemas/templates.schema.json"
	export KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS=1000 SFK_BATCH_WAIT=100ms
}

ctl() { # ctl METHOD PATH [JSON]: the sim's control API
	curl -sS --fail --cacert "$SF_CA_FILE" -H 'Content-Type: application/json' \
		-X "$1" ${3:+-d "$3"} "$SF_SIM_URL$2"
}

start() { # start LOGNAME CMD...: a background process (stderr to $WORK/LOGNAME.log)
	local log=$1
	shift
	"$@" 2>"$WORK/$log.log" &
	PIDS+=($!)
}

forget_pid() { # forget_pid PID: a process the test stopped itself is no longer watched
	local p kept=()
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
	PIDS=("${kept[@]}")
}

admin_port() { # admin_port LOGNAME: the port a started process's admin server took
	sed -n 's/.*"msg":"admin listening".*"port":\([0-9]*\).*/\1/p' "$WORK/$1.log" | head -1
}

wait_log() { # wait_log FILE REGEX SECONDS: 0 once FILE has a line matching REGEX
	local deadline=$((SECONDS + $3))
	until grep -Eq -- "$2" "$1" 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.1
	done
}

all_alive() { # fails the test when a started process has exited
	local p
	for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null || fail "a started process exited"; done
}

until_true() { # until_true SECONDS WHAT CMD...: poll CMD until it succeeds, else fail
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@"; do
		[ $SECONDS -lt $deadline ] || fail "timed out waiting for $what"
		all_alive
		sleep 0.2
	done
}

bridge_subscribed() { # bridge_subscribed CHANNELS SECONDS [LOGNAME]: wait for the subscriptions
	local log="$WORK/${3:-bridge}.log" deadline=$((SECONDS + $2))
	until [ "$(grep -c '"msg":"cometd subscribed"' "$log" || true)" -ge "$1" ]; do
		[ $SECONDS -lt $deadline ] || fail "bridge not subscribed to the $1 channels"
		sleep 0.1
	done
}
