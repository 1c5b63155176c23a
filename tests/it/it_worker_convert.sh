#!/usr/bin/env bash
# it_worker_convert: lead conversion in the middle of first-response detection,
# and `sfk dlq retry` of a letter once its cause is fixed. Through sfk-bridge
# and one lead.first_touch_detect worker:
#   Lead A: a call Task is opened on it, the Lead is converted (the Task moves
#     to the new Contact), then the Task is completed. The Task was the Lead's,
#     so it is A's first response; the write is refused
#     (CANNOT_UPDATE_CONVERTED_LEAD: the integration user may not edit converted
#     Leads) and dead-lettered with that reason. Once the permission is granted,
#     `sfk dlq retry` sends it back and the worker writes it: A's
#     First_Response_At__c = the Task's CompletedDateTime. Retrying the same
#     letter again writes nothing more (one idempotency key per letter).
#   Lead B: converted first; a Task created on its Contact afterwards is not a
#     response to the Lead: B gets no write at all.
#   Lead C: an ordinary Lead whose Task is completed: written (the baseline).
# Starts its own sfk-sim and Redis (it counts writes per record and changes
# the sim's permissions); uses the shared broker with per-run topic names.
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
NAME=it_worker_convert
WORK=$(mktemp -d)
PIDS=()
STACK=
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ -n "$STACK" ]; then
		SFK_STACK_DIR=$STACK "$SFK_SOURCE_DIR/tests/stack/down" >/dev/null 2>&1 || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "$NAME: FAIL: $*" >&2
	local f
	for f in "$WORK"/*.log; do
		[ -s "$f" ] && grep -v '"level":"info"' "$f" | tail -8 | sed "s|^|  $(basename "$f"): |" >&2
	done
	exit 1
}
pass() { echo "ok   $*"; }

for b in sfk-bridge sfk-worker sfk-sim sfk; do
	[ -x "$SFK_BIN_DIR/$b" ] || fail "$SFK_BIN_DIR/$b not built"
done
for c in kcat jq curl; do command -v $c >/dev/null || fail "$c not installed"; done
[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ] ||
	fail "KAFKA_BOOTSTRAP_SERVERS is not set: run eval \"\$(tests/stack/up --kafka real --sim)\" first"

BROKERS=$KAFKA_BOOTSTRAP_SERVERS
eval "$("$SFK_SOURCE_DIR/tests/stack/up" --sim --kafka none)" || fail "tests/stack/up --sim failed"
STACK=$SFK_STACK_DIR
export KAFKA_BOOTSTRAP_SERVERS=$BROKERS

P="itconv$$r$RANDOM."
export SFK_TOPIC_PREFIX=$P SFK_BRIDGE_TRANSACTIONAL_ID="${P}bridge" SFK_ADMIN_ADDR=127.0.0.1:0
export SFK_WORKLOADS_POLICY="$SFK_SOURCE_DIR/policies/workloads.json"
export SFK_WORKLOADS_SCHEMA="$SFK_SOURCE_DIR/schemas/workloads.schema.json"
export SFK_CLIENT_ID=sfk-kpis SFK_BRIDGE_START_FROM=latest SFK_BRIDGE_LEASE_KEY="sfk:lease:${P}bridge"
export SFK_ROUTING_POLICY="$SFK_SOURCE_DIR/policies/routing_policy.json"
export SFK_ROUTING_POLICY_SCHEMA="$SFK_SOURCE_DIR/schemas/routing_policy.schema.json"
export KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS=1000 SFK_BATCH_WAIT=100ms
WL=lead.first_touch_detect
TOPIC="${P}wl.$WL"
DLQ="${P}dlq.$WL"

ctl() { # ctl METHOD PATH [JSON]: the sim's control API
	curl -sS --fail --cacert "$SF_CA_FILE" -H 'Content-Type: application/json' \
		-X "$1" ${3:+-d "$3"} "$SF_SIM_URL$2"
}
field() { # field TYPE ID FIELD: one field of a record, "null" when unset
	ctl GET "/sim/records/$1/$2" | jq -r --arg f "$3" '.[$f] // "null"'
}
writes() { # API writes of a record id (GET /sim/stats)
	ctl GET /sim/stats | jq -r --arg id "$1" '.writes[$id] // 0'
}
count() { kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "$1" -e -q -X isolation.level=read_committed \
	-f '%o\n' 2>/dev/null | grep -c . || true; }
start() { # start LOGNAME CMD...
	local log=$1
	shift
	"$@" 2>"$WORK/$log.log" &
	PIDS+=($!)
}
admin_port() {
	sed -n 's/.*"msg":"admin listening".*"port":\([0-9]*\).*/\1/p' "$WORK/$1.log" | head -1
}
decided() { # decided OUTCOME: sfk_decisions_total of the worker for one outcome
	curl -sf "http://127.0.0.1:$(admin_port w)/metrics" |
		awk -v o="outcome=\"$1\"" '/^sfk_decisions_total\{/ && index($0, o) {s += $2} END {print s + 0}'
}
until_true() { # until_true SECONDS WHAT CMD...: poll CMD until it succeeds
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@"; do
		[ $SECONDS -lt $deadline ] || fail "timed out waiting for $what"
		for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null || fail "a process exited"; done
		sleep 0.2
	done
}
new() { # new TYPE JSON: create as the UI user, print the id
	ctl POST "/sim/records/$1" "$2" | jq -r .id
}

start bridge "$SFK_BIN_DIR/sfk-bridge"
deadline=$((SECONDS + 30))
until [ "$(grep -c '"msg":"cometd subscribed"' "$WORK/bridge.log" || true)" -ge 3 ]; do
	[ $SECONDS -lt $deadline ] || fail "bridge not subscribed to the 3 channels"
	sleep 0.1
done

A=$(new Lead '{"LastName":"Alpha","Company":"Alpha Co","Country":"US","NumberOfEmployees":40}')
B=$(new Lead '{"LastName":"Bravo","Company":"Bravo Co","Country":"US","NumberOfEmployees":40}')
C=$(new Lead '{"LastName":"Charlie","Company":"Charlie Co","Country":"US","NumberOfEmployees":40}')
TA=$(new Task "{\"WhoId\":\"$A\",\"Subject\":\"Call\",\"Type\":\"Call\",\"Status\":\"Not Started\"}")
TC=$(new Task "{\"WhoId\":\"$C\",\"Subject\":\"Call\",\"Type\":\"Call\",\"Status\":\"Not Started\"}")
until_true 60 "the 3 Lead CREATEs on $TOPIC" eval '[ "$(count "$TOPIC")" -ge 3 ]'
start w "$SFK_BIN_DIR/sfk-worker" --workload $WL
until_true 30 "the worker to see the Leads" eval '[ "$(decided lead_seen)" -ge 3 ]'

# B: converted, then (a minute later) a Task on its Contact, completed.
CB=$(ctl POST "/sim/records/Lead/$B?convert=1" | jq -r .contactId)
[[ $CB == 003* ]] || fail "converting B answered no Contact id: $CB"
ctl POST /sim/clock '{"advance_ms":60000}' >/dev/null
TB=$(new Task "{\"WhoId\":\"$CB\",\"Subject\":\"Call\",\"Type\":\"Call\",\"Status\":\"Not Started\"}")
# A: converted while its Task is open; the Task moves to the Contact.
CA=$(ctl POST "/sim/records/Lead/$A?convert=1" | jq -r .contactId)
[ "$(field Task "$TA" WhoId)" = "$CA" ] || fail "A's Task did not move to its Contact $CA"
[ "$(field Lead "$A" IsConverted)" = true ] || fail "A is not converted"
ctl POST /sim/clock '{"advance_ms":300000}' >/dev/null
for t in "$TA" "$TB" "$TC"; do
	ctl PATCH "/sim/records/Task/$t" '{"Status":"Completed"}' >/dev/null || fail "completing $t"
done
TA_AT=$(field Task "$TA" CompletedDateTime)
TC_AT=$(field Task "$TC" CompletedDateTime)

until_true 60 "C's first response" eval '[ "$(field Lead "$C" First_Response_At__c)" = "$TC_AT" ]'
pass "an ordinary Lead's completed Task is written ($TC_AT)"
until_true 60 "A's letter on $DLQ" eval '[ "$(count "$DLQ")" -ge 1 ]'
code=$(kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "$DLQ" -e -q -f '%h\n' 2>/dev/null |
	tr ',' '\n' | sed -n 's/^sfk.error_code=//p' | head -1)
[ "$code" = CANNOT_UPDATE_CONVERTED_LEAD ] || fail "A's letter has code '$code'"
[ "$(field Lead "$A" First_Response_At__c)" = null ] || fail "A was written without the permission"
pass "A's response after conversion is dead-lettered with CANNOT_UPDATE_CONVERTED_LEAD"
# every event decided: 3 CREATEs + 3 Task UPDATEs (B's counts as not a response)
until_true 30 "the 6 events decided" eval '[ $(( $(decided lead_seen) + $(decided not_response) + $(decided written) + $(decided dlq) )) -ge 6 ]'
[ "$(field Lead "$B" First_Response_At__c)" = null ] || fail "B got a first response from a Task made after its conversion"
[ "$(writes "$B")" = 0 ] || fail "B was written $(writes "$B") times"
pass "a Task created on the Contact after the conversion is not the Lead's response"

ctl POST /sim/permissions '{"ViewEditConvertedLeads":true}' >/dev/null || fail "grant permission"
"$SFK_BIN_DIR/sfk" dlq retry --workload $WL --all >"$WORK/retry.out" 2>"$WORK/retry.log" ||
	fail "sfk dlq retry exited $?: $(cat "$WORK/retry.log")"
grep '^retried' "$WORK/retry.out" >/dev/null || fail "sfk dlq retry sent nothing: $(cat "$WORK/retry.out")"
until_true 60 "A's first response after the retry" eval '[ "$(field Lead "$A" First_Response_At__c)" = "$TA_AT" ]'
[ "$(field Lead "$A" First_Response_Source__c)" = Task ] || fail "A's source is not Task"
wa=$(writes "$A")
pass "after the permission and sfk dlq retry: A's first response = its Task ($TA_AT)"

# The same letter once more: a duplicate, no second write.
dup0=$(decided duplicate)
off=$(kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "$DLQ" -e -q -f '%p:%o\n' 2>/dev/null | head -1)
"$SFK_BIN_DIR/sfk" dlq retry --workload $WL --offset "$off" >/dev/null 2>>"$WORK/retry.log" ||
	fail "second sfk dlq retry exited $?"
until_true 30 "the second retry to be decided" eval '[ "$(decided duplicate)" -gt "$dup0" ]'
[ "$(writes "$A")" = "$wa" ] || fail "A written again by the second retry of the same letter"
pass "the same letter retried twice is applied once"
echo "$NAME: all passed"
