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
NAME=it_worker_convert
. "$SFK_SOURCE_DIR/tests/it/lib/pipeline.sh"
it_require sfk-bridge sfk-worker sfk-sim sfk -- kcat jq curl
it_need_kafka
it_private_sim
it_pipeline_env itconv
WL=lead.first_touch_detect
TOPIC="${P}wl.$WL"
DLQ="${P}dlq.$WL"

field() { # field TYPE ID FIELD: one field of a record, "null" when unset
	ctl GET "/sim/records/$1/$2" | jq -r --arg f "$3" '.[$f] // "null"'
}
writes() { # API writes of a record id (GET /sim/stats)
	ctl GET /sim/stats | jq -r --arg id "$1" '.writes[$id] // 0'
}
count() { kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "$1" -e -q -X isolation.level=read_committed \
	-f '%o\n' 2>/dev/null | grep -c . || true; }
decided() { # decided OUTCOME: sfk_decisions_total of the worker for one outcome
	curl -sf "http://127.0.0.1:$(admin_port w)/metrics" |
		awk -v o="outcome=\"$1\"" '/^sfk_decisions_total\{/ && index($0, o) {s += $2} END {print s + 0}'
}
new() { # new TYPE JSON: create as the UI user, print the id
	ctl POST "/sim/records/$1" "$2" | jq -r .id
}

start bridge "$SFK_BIN_DIR/sfk-bridge"
bridge_subscribed 3 30

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
