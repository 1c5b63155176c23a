#!/usr/bin/env bash
# Fidelity test of sfk-sim with a real third-party client: simple-salesforce +
# PyJWT from a virtualenv (created once, reused) run tests/sfsim/py against a
# private sim of its own (tests/stack/up --sim --no-redis --kafka none,
# stopped on exit): the bulk and collection cases create thousands of Leads,
# which must not land in the suite's shared sim.
set -euo pipefail

: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR not set (run through ctest)}"
: "${SFK_BIN_DIR:?SFK_BIN_DIR not set (run through ctest)}"
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

# Trust the sim's CA explicitly; never turn verification off.
export REQUESTS_CA_BUNDLE="$SF_CA_FILE"
cd "$SFK_SOURCE_DIR/tests/sfsim/py"
"$venv/bin/pytest" -q -p no:cacheprovider test_simple_salesforce.py "$@"
