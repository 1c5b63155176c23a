#!/usr/bin/env bash
# sfk-sim control API + fault injection, through simple-salesforce. Starts a
# private sfk-sim (faults and clock jumps are global state, so never the shared
# stack sim: tests/stack/up --sim --no-redis --kafka none, stopped on exit),
# runs tests/sfsim/py/test_control_faults.py.
set -euo pipefail

: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR not set}"
: "${SFK_BIN_DIR:?SFK_BIN_DIR not set}"
export SFK_SOURCE_DIR SFK_BIN_DIR
[ -x "$SFK_BIN_DIR/sfk-sim" ] || { echo "FAIL: sfk-sim not built: $SFK_BIN_DIR/sfk-sim" >&2; exit 1; }

# shellcheck source=../stack/lib/common.sh
. "$SFK_SOURCE_DIR/tests/stack/lib/common.sh"
# shellcheck source=../stack/lib/sim.sh
. "$SFK_SOURCE_DIR/tests/stack/lib/sim.sh"
trap sim_private_stack_down EXIT
sim_private_stack || { echo "FAIL: could not start a private sfk-sim" >&2; exit 1; }

venv="${XDG_CACHE_HOME:-$HOME/.cache}/sfk/venv"
if ! "$venv/bin/python" -c 'import simple_salesforce, jwt, cryptography, pytest' 2>/dev/null; then
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q simple-salesforce PyJWT cryptography pytest
fi
export REQUESTS_CA_BUNDLE="$SF_CA_FILE"
cd "$SFK_SOURCE_DIR/tests/sfsim/py"
"$venv/bin/pytest" -q -p no:cacheprovider test_control_faults.py "$@"
