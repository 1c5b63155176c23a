#!/usr/bin/env bash
# it_sim_cometd_traffic: sfk-sim's traffic generator seen from outside. Runs a
# small seeded profile, jumps the sim clock so every planned response becomes
# due, then checks the ground truth (GET /sim/traffic/truth) against the org
# (GET /sim/org) and the CDC stream a CometD client receives on
# /data/ChangeEvents (Lead, Task and EmailMessage events).
set -euo pipefail
src=${SFK_SOURCE_DIR:?SFK_SOURCE_DIR not set (run through ctest)}
export SFK_BIN_DIR=${SFK_BIN_DIR:?SFK_BIN_DIR not set (run through ctest)}

# A private sim (tests/stack/up --sim --no-redis --kafka none): this test
# changes global sim state, so never the suite's shared sim.
WORK=$(mktemp -d /tmp/it_sim_traffic.XXXXXX)
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
fail() {
	echo "FAIL: $*" >&2
	tail -n 30 "${SIM_PRIVATE_STACK:-/nonexistent}/sim/sim.log" >&2 || true
	exit 1
}
pass() { echo "ok - $*"; }

. "$src/tests/stack/lib/common.sh"
. "$src/tests/stack/lib/sim.sh"
export SIM_EXTRA_ARGS="--opt cometd.timeout_ms=2000"
sim_private_stack || { echo "FAIL: could not start a private sfk-sim" >&2; exit 1; }

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
hdr=$(printf '{"alg":"RS256"}' | b64url)
claims=$(printf '{"iss":"%s","sub":"%s","aud":"%s","exp":%d}' "$SF_CLIENT_ID" "$SF_USERNAME" \
	"$SF_LOGIN_URL" $((now + 180)) | b64url)
sig=$(printf '%s.%s' "$hdr" "$claims" | openssl dgst -sha256 -sign "$SF_PRIVATE_KEY_PATH" | b64url)
TOKEN=$(curl -sS --cacert "$SF_CA_FILE" -X POST "$SF_TOKEN_URL/services/oauth2/token" \
	--data-urlencode grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer \
	--data-urlencode "assertion=$hdr.$claims.$sig" | jq -r .access_token)
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || fail "no access token"

JAR=$WORK/cookies
bayeux() {
	curl -sS --cacert "$SF_CA_FILE" -X POST "$SF_SIM_URL/cometd/$SF_API_VERSION" \
		-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		-b "$JAR" -c "$JAR" -d "$1"
}
sim() { curl -sS --cacert "$SF_CA_FILE" "$@"; }

cid=$(bayeux '[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]' |
	jq -r '.[0].clientId')
bayeux "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"$cid\",\"subscription\":\"/data/ChangeEvents\",\"ext\":{\"replay\":{\"/data/ChangeEvents\":-1}}}]" >/dev/null

N=40
st=$(sim -X POST -H 'Content-Type: application/json' \
	-d "{\"leads\":$N,\"rate\":200,\"seed\":5,\"delay_min_ms\":60000,\"delay_max_ms\":600000,\"second_response_ratio\":0.7,\"out_of_order_ratio\":0.6,\"answer_ratio\":0.8}" \
	"$SF_SIM_URL/sim/traffic")
[ "$(jq -r .planned <<<"$st")" = $N ] || fail "POST /sim/traffic: $st"
busy=$(sim -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
	-d '{"leads":1}' "$SF_SIM_URL/sim/traffic")
[ "$busy" = 409 ] || fail "a second run while one is in progress must be 409, got $busy"
pass "traffic started ($N leads), concurrent start refused"

deadline=$((SECONDS + 30))
until [ "$(sim "$SF_SIM_URL/sim/traffic/status" | jq -r .created)" = $N ]; do
	[ $SECONDS -lt $deadline ] || fail "leads not created in 30 s"
	sleep 0.2
done
# Responses are minutes away in sim time (a Task left open closes up to
# 3 x delay_max_ms + 2 s after the lead). The generator says when the last
# one is due: one jump just past it must finish the run (no follow-up may be
# scheduled relative to when its trigger happened to run).
last_due=$(sim "$SF_SIM_URL/sim/traffic/status" | jq -r .last_due_ms)
now_ms=$(sim "$SF_SIM_URL/sim/clock" | jq -r .now_ms)
[ "$last_due" -gt "$now_ms" ] || fail "status.last_due_ms ($last_due) not after now ($now_ms)"
clock=$(sim -X POST -H 'Content-Type: application/json' \
	-d "{\"advance_ms\":$((last_due - now_ms + 1000))}" "$SF_SIM_URL/sim/clock")
[ "$(jq -r .now_ms <<<"$clock")" -gt "$last_due" ] || fail "clock jump failed: $clock"
deadline=$((SECONDS + 30))
until [ "$(sim "$SF_SIM_URL/sim/traffic/status" | jq -r .done)" = true ]; do
	[ $SECONDS -lt $deadline ] || fail "traffic not done: $(sim "$SF_SIM_URL/sim/traffic/status")"
	sleep 0.2
done
status=$(sim "$SF_SIM_URL/sim/traffic/status")
[ "$(jq -r .errors <<<"$status")" = 0 ] || fail "traffic errors: $status"
pass "traffic done: $status"

truth=$(sim "$SF_SIM_URL/sim/traffic/truth")
org=$(sim "$SF_SIM_URL/sim/org")
[ "$(jq '.leads | length' <<<"$truth")" = $N ] || fail "truth has not $N leads"
# Every truth lead exists in the org with its CreatedDate.
jq -e --argjson org "$org" '
	[.leads[] | .lead_id as $id | .created_at as $c |
	 ($org.Lead | map(select(.Id == $id)) | length == 1)] | all' <<<"$truth" >/dev/null ||
	fail "truth leads missing from the org"
# first response = the earliest response time, never before the lead.
jq -e '[.leads[] | select(.responses | length > 0) |
	(.first_response_ms == ([.responses[].at_ms] | min)) and (.first_response_ms >= .created_ms)
	and (.ttfr_minutes >= 0)] | all' <<<"$truth" >/dev/null || fail "first response is not the minimum"
unanswered=$(jq '[.leads[] | select(.responses | length == 0) | select(.first_response_at == null)] | length' <<<"$truth")
[ "$unanswered" -gt 0 ] || fail "expected some never-answered leads"
ooo=$(jq '[.leads[] | select(.responses | length == 2) |
	select(.responses[1].created_ms >= .responses[0].created_ms and
	       .responses[1].at_ms < .responses[0].at_ms)] | length' <<<"$truth")
[ "$ooo" -gt 0 ] || fail "expected an out-of-order pair (later-created, earlier time)"
late=$(jq '[.leads[].responses[] | select(.closed_by != null and .state == "done")] | length' <<<"$truth")
[ "$late" -gt 0 ] || fail "expected call Tasks left open and completed later"
[ "$(jq '[.leads[].responses[] | select(.state != "done")] | length' <<<"$truth")" = 0 ] ||
	fail "responses not all done: $(jq -c '[.leads[].responses[] | select(.state != "done")]' <<<"$truth")"
pass "truth: first response = minimum, $unanswered unanswered, $ooo out-of-order pairs ($late closed late)"

# Every response is in the org: Tasks on the lead, emails related through
# EmailMessageRelation, Status '3', outbound.
jq -e --argjson org "$org" '
	[.leads[] | .lead_id as $id | .responses[] |
	 if .kind == "email_message" then
	   (.email_message_id as $e |
	    ($org.EmailMessage | map(select(.Id == $e and .Status == "3" and .Incoming == false)) | length == 1) and
	    ($org.EmailMessageRelation | map(select(.EmailMessageId == $e and .RelationId == $id)) | length == 1))
	 else
	   (.task_id as $t | $org.Task | map(select(.Id == $t and .WhoId == $id and .Status == "Completed")) | length == 1)
	 end] | all' <<<"$truth" >/dev/null || fail "responses missing from the org"
pass "responses present in the org (Tasks on the lead, related outbound EmailMessages)"

# The CometD subscriber saw them all as change events.
leads=0 tasks=0 emails=0
deadline=$((SECONDS + 30))
while [ $SECONDS -lt $deadline ]; do
	r=$(bayeux "[{\"channel\":\"/meta/connect\",\"clientId\":\"$cid\",\"connectionType\":\"long-polling\"}]")
	leads=$((leads + $(jq '[.[] | select(.data.payload.ChangeEventHeader.entityName == "Lead" and .data.payload.ChangeEventHeader.changeType == "CREATE")] | length' <<<"$r")))
	tasks=$((tasks + $(jq '[.[] | select(.data.payload.ChangeEventHeader.entityName == "Task")] | length' <<<"$r")))
	emails=$((emails + $(jq '[.[] | select(.data.payload.ChangeEventHeader.entityName == "EmailMessage")] | length' <<<"$r")))
	[ "$(jq 'length' <<<"$r")" = 1 ] && [ $leads -ge $N ] && break
done
want_em=$(jq '[.leads[].responses[] | select(.kind == "email_message")] | length' <<<"$truth")
[ $leads = $N ] || fail "saw $leads Lead CREATE events, want $N"
[ $emails = "$want_em" ] || fail "saw $emails EmailMessage events, want $want_em"
[ $tasks -gt 0 ] || fail "no Task events"
pass "CDC: $leads Lead creates, $tasks Task events, $emails EmailMessage events"
echo "it_sim_cometd_traffic: all checks passed"
