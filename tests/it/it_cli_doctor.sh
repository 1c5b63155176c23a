#!/usr/bin/env bash
# it_cli_doctor: `sfk doctor` against the shared stack's sfk-sim, Kafka and
# Redis, as an operator reads it: a healthy set-up prints one "ok" line per
# check and exits 0; each broken piece gives a FAIL line that names what is
# wrong and a fix line, and exit 1:
#   a required Lead field the org lacks (named, with the deploy fix), a field
#   of the wrong type, a CDC channel that cannot be subscribed, missing Kafka
#   topics (fix: sfk topics create), Redis down, a broken policy (JSON path),
#   no API headroom, a user the connected app does not know (later Salesforce
#   checks are skipped, not failed).
# Reads only: the sim is shared, nothing in it changes.
#
# Needs: eval "$(tests/stack/up --kafka real --sim)".
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
SFK="$SFK_BIN_DIR/sfk"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() {
	echo "it_cli_doctor: FAIL: $*" >&2
	for f in "$WORK"/*.out; do [ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -30 >&2; done
	exit 1
}
pass() { echo "ok   $*"; }
[ -x "$SFK" ] || fail "$SFK not built"
for v in KAFKA_BOOTSTRAP_SERVERS REDIS_URL SF_TOKEN_URL SF_CLIENT_ID SF_USERNAME \
	SF_PRIVATE_KEY_PATH SF_CA_FILE; do
	[ -n "${!v:-}" ] || fail "$v is not set: run under eval \"\$(tests/stack/up --kafka real --sim)\""
done
[ "${SFK_KAFKA_KIND:-real}" != mock ] || fail "needs a real broker (tests/stack/up --kafka real)"
cd "$SFK_SOURCE_DIR"

export SFK_TOPIC_PREFIX="itdoc$$x$RANDOM." SFK_TOPIC_PARTITIONS=1
export SFK_DOCTOR_POLICIES=policies/workloads.json
"$SFK" topics create >"$WORK/topics.out" 2>&1 || fail "sfk topics create exited $?"

# --- healthy ---------------------------------------------------------------------
"$SFK" doctor >"$WORK/good.out" 2>"$WORK/good.err" || fail "doctor on a healthy set-up exited $?"
for c in salesforce.login salesforce.Lead salesforce.Task salesforce.EmailMessage \
	salesforce.fields salesforce.cdc salesforce.limits kafka.topics redis policies; do
	grep -qE "^ok +$c " "$WORK/good.out" || fail "no ok line for $c"
done
if grep -qE '^(FAIL|skip)' "$WORK/good.out"; then fail "healthy set-up has FAIL/skip lines"; fi
grep -q "all 10 Lead fields the workers write exist" "$WORK/good.out" || fail "field count"
pass "healthy: one ok line per check, exit 0"

"$SFK" doctor --json >"$WORK/good_json.out" || fail "doctor --json exited $?"
python3 -c "
import json; d = json.load(open('$WORK/good_json.out'))
assert all(l['status'] == 'ok' for l in d), d
assert {'salesforce.cdc', 'kafka.topics', 'redis'} <= {l['check'] for l in d}
" || fail "--json"
pass "--json: the same checks for scripts"

# --- broken ----------------------------------------------------------------------------
# Lead_Score__c does not exist in the org; Routing_Reason__c is text, not a number.
OUT=$WORK/bad.out
expect() { # expect REGEX-of-FAIL-line REGEX-of-fix-line what (in $OUT)
	grep -A1 -E "^FAIL +$1" "$OUT" | tail -1 | grep -E "^ +fix: .*$2" >/dev/null ||
		fail "$3: no FAIL line /$1/ with fix /$2/"
	pass "$3"
}
printf '{"version": "1.0.0", "workloads": {"lead.route": {"rules": [{"entity": 7}]}}}\n' \
	>"$WORK/workloads.json"
rc=0
"$SFK" doctor --extra-fields Lead_Score__c:double,Routing_Reason__c:double \
	--channels /data/LeadChangeEvent,/data/NoSuchChangeEvent --min-api-headroom 100 \
	--redis-url redis://127.0.0.1:1/0 --prefix "itdocmissing$$." \
	--policies policies/workloads.json,"$WORK/workloads.json" >"$WORK/bad.out" 2>&1 || rc=$?
[ $rc = 1 ] || fail "doctor with problems exited $rc, want 1"
expect 'salesforce.fields +Lead.Lead_Score__c is missing' \
	'deploy the custom field Lead.Lead_Score__c \(type double\)' "missing custom field named, with the fix"
expect 'salesforce.fields +Lead.Routing_Reason__c has type string, want double' \
	'change Lead.Routing_Reason__c to type double' "wrong field type named, with the fix"
expect 'salesforce.cdc +subscribe /data/NoSuchChangeEvent' 'Change Data Capture' \
	"unsubscribable channel named"
expect 'salesforce.limits +DailyApiRequests: [0-9]+ of [0-9]+ remaining' 'quota' "API headroom"
expect "kafka.topics +missing topics: itdocmissing$$\\.cdc\\.lead, " 'sfk topics create' \
	"missing topics, fix: sfk topics create"
expect 'redis ' 'REDIS_URL' "Redis down"
expect "policies +$WORK/workloads.json: \\\$\\.workloads\\.lead\\.route\\.rules\\[0\\]" \
	"sfk policy check $WORK/workloads.json" "broken policy with its JSON path"
grep -qE '^ok +salesforce.login ' "$WORK/bad.out" || fail "login should still be ok"
grep -qE '^ok +policies +policies/workloads.json validates' "$WORK/bad.out" ||
	fail "the good policy should still be ok"

rc=0
SF_USERNAME=nobody@sfk-sim.test "$SFK" doctor >"$WORK/user.out" 2>&1 || rc=$?
[ $rc = 1 ] || fail "unknown user exited $rc, want 1"
OUT=$WORK/user.out
expect 'salesforce.login +JWT login as nobody@sfk-sim.test failed: invalid_grant' \
	'pre-authorize the integration user' "login refused, with the fix"
grep -qE '^skip +salesforce.fields +needs the Lead describe' "$WORK/user.out" ||
	fail "checks after a failed login should be skipped"
grep -qE '^ok +kafka.topics ' "$WORK/user.out" || fail "Kafka still checked without Salesforce"
pass "later Salesforce checks skipped after a failed login"
