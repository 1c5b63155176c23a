#!/usr/bin/env bash
# it_cli_main: the sfk conventions every command shares: `sfk help` lists the
# commands on stdout, `sfk <cmd> --help` and `sfk help <cmd>` print the
# command's options with their environment variables (exit 0), `--version`
# prints the version, unknown commands and flags are usage errors (exit 2,
# message on stderr, nothing on stdout). No services needed.
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
SFK="$SFK_BIN_DIR/sfk"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "it_cli_main: FAIL: $*" >&2; exit 1; }
pass() { echo "ok   $*"; }
[ -x "$SFK" ] || fail "$SFK not built"

"$SFK" help >"$WORK/help" || fail "sfk help exited $?"
for c in topics policy doctor dlq replay report; do
	grep -qE "^  $c " "$WORK/help" || fail "sfk help does not list $c"
	"$SFK" "$c" --help >"$WORK/h_$c" || fail "sfk $c --help exited $?"
	grep -q "^Usage: sfk $c " "$WORK/h_$c" || fail "sfk $c --help: no usage line"
	"$SFK" help "$c" | cmp -s - "$WORK/h_$c" || fail "sfk help $c differs from sfk $c --help"
done
grep -q "env: KAFKA_BOOTSTRAP_SERVERS" "$WORK/h_topics" || fail "options without their variables"
pass "help lists every command; each has --help with its environment variables"

"$SFK" --version | grep -E '^sfk [0-9]+\.[0-9]+\.[0-9]+$' >/dev/null || fail "--version"
pass "--version"

rc=0
"$SFK" frobnicate >"$WORK/out" 2>"$WORK/err" || rc=$?
[ $rc = 2 ] && [ ! -s "$WORK/out" ] && grep -q "unknown command 'frobnicate'" "$WORK/err" ||
	fail "unknown command: exit $rc"
rc=0
"$SFK" topics describe --no-such-flag >"$WORK/out" 2>"$WORK/err" || rc=$?
[ $rc = 2 ] && [ ! -s "$WORK/out" ] && grep -q "no-such-flag" "$WORK/err" || fail "unknown flag: exit $rc"
rc=0
"$SFK" >"$WORK/out" 2>"$WORK/err" || rc=$?
[ $rc = 2 ] && [ ! -s "$WORK/out" ] || fail "no command: exit $rc"
pass "usage errors: exit 2, stderr only"
