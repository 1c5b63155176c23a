#!/usr/bin/env bash
# it_sim_cometd_aiocometd: a real third-party CometD client (aiocometd-noloop
# from PyPI, in the project venv ${XDG_CACHE_HOME:-$HOME/.cache}/sfk/venv)
# subscribes to sfk-sim with the replay extension; see
# tests/sfsim/py/test_cometd_aiocometd.py for what is checked.
set -euo pipefail
src=${SFK_SOURCE_DIR:?SFK_SOURCE_DIR not set (run through ctest)}
export SFK_BIN_DIR=${SFK_BIN_DIR:?SFK_BIN_DIR not set (run through ctest)}

venv=${XDG_CACHE_HOME:-$HOME/.cache}/sfk/venv
if [ ! -x "$venv/bin/python" ]; then
	python3 -m venv "$venv" || { echo "FAIL: cannot create $venv" >&2; exit 1; }
fi
if ! "$venv/bin/python" -c 'import aiocometd_noloop, pytest' 2>/dev/null; then
	"$venv/bin/pip" install -q 'aiocometd-noloop==0.4.9' pytest >&2 ||
		{ echo "FAIL: pip install aiocometd-noloop pytest failed" >&2; exit 1; }
fi

STATE_DIR=$(mktemp -d /tmp/it_sim_aiocometd.XXXXXX)
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
	if [ "${KEEP:-0}" = 1 ]; then echo "state kept in $STATE_DIR" >&2; else rm -rf "$STATE_DIR"; fi
	exit $rc
}
trap cleanup EXIT
. "$src/tests/stack/lib/common.sh"
. "$src/tests/stack/lib/sim.sh"
SIM_EXTRA_ARGS="--opt cometd.timeout_ms=3000"
eval "$(stack_start_sim)"

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
hdr=$(printf '{"alg":"RS256"}' | b64url)
claims=$(printf '{"iss":"%s","sub":"%s","aud":"%s","exp":%d}' "$SF_CLIENT_ID" "$SF_USERNAME" \
	"$SF_LOGIN_URL" $((now + 180)) | b64url)
sig=$(printf '%s.%s' "$hdr" "$claims" | openssl dgst -sha256 -sign "$SF_PRIVATE_KEY_PATH" | b64url)
SIM_TOKEN=$(curl -sS --cacert "$SF_CA_FILE" -X POST "$SF_TOKEN_URL/services/oauth2/token" \
	--data-urlencode grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer \
	--data-urlencode "assertion=$hdr.$claims.$sig" | jq -r .access_token)
[ -n "$SIM_TOKEN" ] && [ "$SIM_TOKEN" != null ] || { echo "FAIL: no access token" >&2; exit 1; }
# aiohttp's cookie jar ignores cookies from IP-address hosts; the server
# certificate also names localhost.
SF_SIM_URL=${SF_SIM_URL/127.0.0.1/localhost}
export SIM_TOKEN SF_SIM_URL SF_CA_FILE SF_API_VERSION
cd "$src/tests/sfsim/py"
"$venv/bin/python" -m pytest -q -p no:cacheprovider test_cometd_aiocometd.py ||
	{ tail -n 30 "$STATE_DIR/sim/sim.log" >&2; exit 1; }
