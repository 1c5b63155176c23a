#!/usr/bin/env bash
# sim_capacity.sh [EVENTS]: CometD delivery capacity of sfk-sim on this machine.
# Starts sfk-sim over TLS (tests/stack/lib/sim.sh), mints a JWT-bearer token
# and runs sim_capacity.py (replay drain, then live). Target: >= 20,000
# events/s. Needs a build: SFK_BIN_DIR (default <repo>/build/bin).
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export SFK_BIN_DIR=${SFK_BIN_DIR:-$src/build/bin}
STATE_DIR=$(mktemp -d /tmp/sim_capacity.XXXXXX)
export STATE_DIR
cleanup() {
	local rc=$? p
	# sfk-sim was started in a command substitution: not our child, so
	# stop it and poll until it is gone.
	p=$(cat "$STATE_DIR/pids/sim.pid" 2>/dev/null || true)
	if [ -n "$p" ]; then
		kill "$p" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -rf "$STATE_DIR"
	exit $rc
}
trap cleanup EXIT
. "$src/tests/stack/lib/common.sh"
. "$src/tests/stack/lib/sim.sh"
SIM_EXTRA_ARGS="--log-level warn --opt cometd.max_batch_events=2000"
eval "$(stack_start_sim)"

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
hdr=$(printf '{"alg":"RS256"}' | b64url)
claims=$(printf '{"iss":"%s","sub":"%s","aud":"%s","exp":%d}' "$SF_CLIENT_ID" "$SF_USERNAME" \
	"$SF_LOGIN_URL" $((now + 180)) | b64url)
sig=$(printf '%s.%s' "$hdr" "$claims" | openssl dgst -sha256 -sign "$SF_PRIVATE_KEY_PATH" | b64url)
SIM_TOKEN=$(curl -sS --cacert "$SF_CA_FILE" -X POST "$SF_TOKEN_URL/services/oauth2/token" \
	--data-urlencode grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer \
	--data-urlencode "assertion=$hdr.$claims.$sig" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
export SIM_TOKEN SF_SIM_URL SF_CA_FILE SF_API_VERSION
python3 "$src/tests/bench/sim_capacity.py" "${1:-100000}"
