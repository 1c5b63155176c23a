#!/usr/bin/env bash
# sfk-sim control API + fault injection, through simple-salesforce. Starts a
# private sfk-sim (faults and clock jumps are global state, so never the shared
# stack sim) with tests/stack/lib/sim.sh, runs tests/sfsim/py/test_control_faults.py.
set -euo pipefail

: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR not set}"
: "${SFK_BIN_DIR:?SFK_BIN_DIR not set}"
STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sfk-sim-faults.XXXXXX")
export STATE_DIR SFK_BIN_DIR
cleanup() {
	local rc=$? p
	# The sim is not our child (started inside $(...)): poll until it is gone.
	if p=$(cat "$STATE_DIR/pids/sim.pid" 2>/dev/null) && kill "$p" 2>/dev/null; then
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -rf "$STATE_DIR"
	exit "$rc"
}
trap cleanup EXIT

# shellcheck source=../stack/lib/common.sh
. "$SFK_SOURCE_DIR/tests/stack/lib/common.sh"
# shellcheck source=../stack/lib/sim.sh
. "$SFK_SOURCE_DIR/tests/stack/lib/sim.sh"
eval "$(stack_start_sim)"

venv="${XDG_CACHE_HOME:-$HOME/.cache}/sfk/venv"
if ! "$venv/bin/python" -c 'import simple_salesforce, jwt, cryptography, pytest' 2>/dev/null; then
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q simple-salesforce PyJWT cryptography pytest
fi
export REQUESTS_CA_BUNDLE="$SF_CA_FILE"
cd "$SFK_SOURCE_DIR/tests/sfsim/py"
"$venv/bin/pytest" -q -p no:cacheprovider test_control_faults.py "$@"
