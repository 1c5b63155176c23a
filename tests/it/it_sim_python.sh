#!/usr/bin/env bash
# Fidelity test of sfk-sim with a real third-party client: simple-salesforce +
# PyJWT from a virtualenv (created once, reused) run tests/sfsim/py against the
# sim that tests/stack/up started (SF_* variables). Fails when they are missing.
set -euo pipefail

: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR not set}"
for v in SF_SIM_URL SF_LOGIN_URL SF_TOKEN_URL SF_CLIENT_ID SF_USERNAME SF_PRIVATE_KEY_PATH \
	SF_API_VERSION SF_CA_FILE; do
	if [ -z "${!v:-}" ]; then
		echo "it_sim_python: $v is not set; run: eval \"\$(tests/stack/up sim)\"" >&2
		exit 1
	fi
done

venv="${XDG_CACHE_HOME:-$HOME/.cache}/sfk/venv"
if ! "$venv/bin/python" -c 'import simple_salesforce, jwt, cryptography, pytest' 2>/dev/null; then
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q simple-salesforce PyJWT cryptography pytest
fi

# Trust the sim's CA explicitly; never turn verification off.
export REQUESTS_CA_BUNDLE="$SF_CA_FILE"
cd "$SFK_SOURCE_DIR/tests/sfsim/py"
exec "$venv/bin/pytest" -q -p no:cacheprovider test_simple_salesforce.py "$@"
