#!/usr/bin/env bash
# it_sim_traffic_file: `sfk-sim --traffic FILE` starts the traffic generator
# with a JSON profile at start-up (what the demo and the end-to-end test use),
# on a private sim: the planned leads appear in the org with the profile's
# seed; a missing or invalid profile stops sfk-sim with a log line and a
# non-zero exit status instead of serving an org without traffic.
set -euo pipefail
src=${SFK_SOURCE_DIR:?SFK_SOURCE_DIR not set (run through ctest)}
export SFK_BIN_DIR=${SFK_BIN_DIR:?SFK_BIN_DIR not set (run through ctest)}
bin=$SFK_BIN_DIR/sfk-sim
[ -x "$bin" ] || { echo "FAIL: sfk-sim not built: $bin" >&2; exit 1; }

work=$(mktemp -d /tmp/it_sim_traffic_file.XXXXXX)
own_stack=
cleanup() {
	local rc=$?
	[ -n "$own_stack" ] && "$src/tests/stack/down" "$own_stack" >/dev/null 2>&1
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; }

# Refused at start-up: exit status and a log line naming the problem.
"$bin" --help >"$work/help" || fail "sfk-sim --help failed"
grep -q -- '--traffic FILE' "$work/help" || fail "--help does not document --traffic"
set +e
timeout 20 "$bin" --listen 127.0.0.1:0 --traffic "$work/missing.json" >/dev/null 2>"$work/err1"
rc1=$?
printf '{"leads":0}' >"$work/bad.json"
timeout 20 "$bin" --listen 127.0.0.1:0 --traffic "$work/bad.json" >/dev/null 2>"$work/err2"
rc2=$?
set -e
[ $rc1 != 0 ] && [ $rc1 != 124 ] || fail "missing profile: exit $rc1"
grep -q 'cannot open profile' "$work/err1" || fail "missing profile: $(cat "$work/err1")"
[ $rc2 != 0 ] && [ $rc2 != 124 ] || fail "invalid profile: exit $rc2"
grep -q 'leads must be an integer' "$work/err2" || fail "invalid profile: $(cat "$work/err2")"
pass "missing / invalid --traffic profile stops sfk-sim (exit $rc1, $rc2)"

# A good profile: leads are created without any control call.
N=12
printf '{"leads":%d,"rate":100,"seed":7,"answer_ratio":0}\n' $N >"$work/profile.json"
unset SFK_STACK_DIR
env_out=$(SIM_EXTRA_ARGS="--traffic $work/profile.json" "$src/tests/stack/up" --sim --no-redis \
	--kafka none) || fail "tests/stack/up --sim failed"
own_stack=$(sed -n 's/^export SFK_STACK_DIR=//p' <<<"$env_out")
eval "$env_out"
sim() { curl -sS --fail-with-body --cacert "$SF_CA_FILE" "$@"; }

deadline=$((SECONDS + 30))
until st=$(sim "$SF_SIM_URL/sim/traffic/status") && [ "$(jq -r .done <<<"$st")" = true ]; do
	[ $SECONDS -lt $deadline ] || fail "traffic from --traffic not done in 30 s: $st"
	sleep 0.2
done
[ "$(jq -r '.planned, .created, .seed, .errors' <<<"$st" | tr '\n' ' ')" = "$N $N 7 0 " ] ||
	fail "status: $st"
org=$(sim "$SF_SIM_URL/sim/org")
truth=$(sim "$SF_SIM_URL/sim/traffic/truth")
jq -e --argjson org "$org" '[.leads[].lead_id as $id | $org.Lead | any(.Id == $id)] | all and length > 0' \
	<<<"$truth" >/dev/null || fail "truth leads missing from the org"
[ "$(jq '.Lead | length' <<<"$org")" = $N ] || fail "org has $(jq '.Lead | length' <<<"$org") Leads, want $N"
pass "--traffic profile ran at start-up: $st"
echo "it_sim_traffic_file: all checks passed"
