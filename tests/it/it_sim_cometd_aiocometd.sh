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

# A private sim (tests/stack/up --sim --no-redis --kafka none): this test
# changes global sim state, so never the suite's shared sim.
WORK=$(mktemp -d /tmp/it_sim_aiocometd.XXXXXX)
cleanup() {
	local rc=$?
	if declare -F sim_private_stack_down >/dev/null; then
		if [ "${KEEP:-0}" = 1 ]; then
			echo "sim state kept in ${SIM_PRIVATE_STACK:-?}" >&2
			SFK_STACK_KEEP_LOGS=1 sim_private_stack_down
		else
			sim_private_stack_down
		fi
	fi
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
. "$src/tests/stack/lib/common.sh"
. "$src/tests/stack/lib/sim.sh"
export SIM_EXTRA_ARGS="--opt cometd.timeout_ms=3000"
sim_private_stack || { echo "FAIL: could not start a private sfk-sim" >&2; exit 1; }

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
	{ tail -n 30 "${SIM_PRIVATE_STACK:-/nonexistent}/sim/sim.log" >&2; exit 1; }
