#!/usr/bin/env bash
# it_bad_input: bad input at every entry point is refused with a reason that
# names the problem, and the process keeps working.
#   (a) the bridge, through its raw entry point (the signed webhook: the sim
#       cannot emit malformed CDC): malformed JSON, wrong types, missing
#       header fields, huge strings, deep nesting, non-UTF-8, duplicate keys,
#       unknown change types -> 400 with a reason naming the problem; an event
#       over SFK_BRIDGE_MAX_EVENT_BYTES -> its dead letter on <p>dlq.bridge
#       with the cap in sfk.error_reason. A good event afterwards is published.
#   (b) a worker (lead.route), straight onto its topic with kcat: the same
#       kinds plus ids with a bad checksum -> one dead letter each on
#       <p>dlq.lead.route whose sfk.error_message names the problem. A Lead
#       created afterwards is still routed.
#   (c) configuration: several bad settings at once -> exit 78 and every
#       problem listed (sfk-worker, sfk-bridge, sfk-loader).
# Private sfk-sim + Redis, the suite's broker with per-run topics.
set -euo pipefail
NAME=it_bad_input
. "$SFK_SOURCE_DIR/tests/it/lib/pipeline.sh"
it_require sfk sfk-bridge sfk-worker sfk-loader sfk-sim -- kcat jq curl openssl python3
it_need_kafka
it_private_sim
it_pipeline_env itbad
SECRET=$(openssl rand -hex 24)
WPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
WL=lead.route
DLQ="${P}dlq.$WL"
BDLQ="${P}dlq.bridge"
CDC="${P}cdc.lead"

"$SFK_BIN_DIR/sfk" topics create --partitions 1 >"$WORK/topics.log" 2>&1 ||
	fail "sfk topics create: $(tail -3 "$WORK/topics.log")"
start bridge env SFK_WEBHOOK_LISTEN=127.0.0.1:$WPORT SFK_WEBHOOK_SECRET="$SECRET" \
	SFK_WEBHOOK_MAX_BODY=4194304 SFK_BRIDGE_MAX_EVENT_BYTES=4096 "$SFK_BIN_DIR/sfk-bridge"
bridge_subscribed 3 30
start w "$SFK_BIN_DIR/sfk-worker" --workload $WL
for n in bridge w; do
	until_true 30 "$n's admin server" eval '[ -n "$(admin_port "$n")" ]'
	until_true 60 "$n ready" curl -sf -o /dev/null "http://127.0.0.1:$(admin_port "$n")/readyz"
done
healthy() { curl -sf -o /dev/null "http://127.0.0.1:$(admin_port "$1")/healthz"; }
routed() { [ -n "$(ctl GET "/sim/records/Lead/$1" | jq -r '.Routing_Reason__c // empty')" ]; }
new_lead() { ctl POST /sim/records/Lead "{\"LastName\":\"$1\",\"Company\":\"$1 Co\",\"Country\":\"US\",\"NumberOfEmployees\":40}" | jq -r .id; }

# A real envelope to mutate: the first Lead's, from the workload topic.
A=$(new_lead Alpha)
until_true 60 "Lead $A routed" routed "$A"
kcat -b "$BROKERS" -C -t "${P}wl.$WL" -e -q -f '%s\n' 2>/dev/null | grep -F "$A" | head -1 >"$WORK/env.json" || true
jq -e .envelope_version "$WORK/env.json" >/dev/null || fail "no envelope of $A on ${P}wl.$WL"

# ---- (b) the worker's topic ---------------------------------------------
M=$WORK/msgs
mkdir -p "$M"
mut() { jq -c "$1" "$WORK/env.json" >"$M/$2"; } # mut JQ-FILTER CASE
printf '{"envelope_version":1,"event_id":' >"$M/malformed"
mut '.record_id = 12345' wrong_type
mut 'del(.event_id)' missing_field
mut '.fields = "not an object"' wrong_type_fields
mut '.change_type = "EXPLODE"' unknown_change_type
python3 - "$M" "$WORK/env.json" <<'EOF'
import json, sys
d, env = sys.argv[1], json.load(open(sys.argv[2]))
e = dict(env); e["record_id"] = "A" * 300000
open(d + "/huge_string", "w").write(json.dumps(e))
open(d + "/deep_nesting", "w").write("[" * 5000 + "]" * 5000)
raw = json.dumps(env).encode()
open(d + "/non_utf8", "wb").write(raw[:-1] + b',"x":"\xff\xfe\xc0"}')
open(d + "/duplicate_keys", "w").write(json.dumps(env)[:-1] + ',"record_id":"' + env["record_id"] + '"}')
rid = env["record_id"]
e = dict(env); e["record_id"] = rid[:15] + ("AAA" if rid[15:] != "AAA" else "BBB")
open(d + "/bad_checksum", "w").write(json.dumps(e))
e = dict(env); e["envelope_version"] = 7
open(d + "/unknown_version", "w").write(json.dumps(e))
EOF
# case -> what the reason must name (extended regex, case-insensitive)
declare -A WANT=(
	[malformed]='end of file|unexpected|parse|invalid'
	[wrong_type]='record_id'
	[missing_field]='event_id'
	[wrong_type_fields]='fields'
	[huge_string]='record_id'
	[deep_nesting]='depth|nest'
	[non_utf8]='utf-?8|decode byte'
	[duplicate_keys]='duplicate'
	[bad_checksum]='record_id.*Salesforce id'
	[unknown_version]='envelope_version'
	[unknown_change_type]='change_type'
)
for c in "${!WANT[@]}"; do
	kcat -b "$BROKERS" -P -t "${P}wl.$WL" -k "bad-$c" "$M/$c" 2>>"$WORK/kcat.log" ||
		fail "kcat could not produce case $c"
done
letters() { kcat -b "$BROKERS" -C -t "$DLQ" -e -q -f '%k\t%h\n' 2>/dev/null || true; }
until_true 90 "${#WANT[@]} letters on $DLQ" eval '[ "$(letters | grep -c "^bad-" || true)" -ge ${#WANT[@]} ]'
letters >"$WORK/letters.txt"
for c in "${!WANT[@]}"; do
	line=$(grep "^bad-$c	" "$WORK/letters.txt" | head -1 || true)
	[ -n "$line" ] || fail "no dead letter for $c"
	msg=$(sed -n 's/.*sfk\.error_message=\(.*\),sfk\.source_topic=.*/\1/p' <<<"$line")
	grep -Eiq -- "${WANT[$c]}" <<<"$msg" || fail "$c: reason '$msg' does not name the problem (${WANT[$c]})"
	echo "  worker $c -> DLQ: $msg"
done
healthy w || fail "the worker is not healthy after bad input"
B=$(new_lead Bravo)
until_true 60 "Lead $B routed after the bad input" routed "$B"
pass "worker: ${#WANT[@]} kinds of bad input dead-lettered with their reason; a new Lead is still routed"

# ---- (a) the bridge, through its signed webhook ---------------------------
hook() { # hook NAME BODY-FILE: POST it signed, prints the status; answer in $WORK/NAME.answer
	local ts sig
	ts=$(date +%s)
	sig=$( { printf '%s.' "$ts"; cat "$2"; } | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
	curl -sS -o "$WORK/$1.answer" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
		-H "X-Sfk-Timestamp: $ts" -H "X-Sfk-Delivery: $1-$P" -H "X-Sfk-Signature: sha256=$sig" \
		--data-binary @"$2" "http://127.0.0.1:$WPORT/webhooks/salesforce"
}
H=$WORK/hooks
mkdir -p "$H"
CDCMSG=$(jq -c . "$SFK_SOURCE_DIR/tests/golden/normalize/lead_create/input.json")
cdc() { jq -c "{events: [($CDCMSG | $1)]}" <<<'null' >"$H/$2"; } # cdc JQ-FILTER CASE
printf '{"events":[{"entity":"Lead",' >"$H/malformed"
cdc '.data.payload.ChangeEventHeader.commitNumber = "12"' wrong_type
cdc 'del(.data.payload.ChangeEventHeader.transactionKey)' missing_header_field
cdc '.data.payload.ChangeEventHeader.changeType = "EXPLODE"' unknown_change_type
cdc '.data.payload.ChangeEventHeader.transactionKey = ("x" * 100000)' huge_string
cdc '.data.payload.ChangeEventHeader.recordIds = ["00Q5e00000AbCdE!!!"]' bad_id
python3 - "$H" <<'EOF'
import sys
d = sys.argv[1]
open(d + "/deep_nesting", "w").write('{"events":' + "[" * 5000 + "]" * 5000 + "}")
open(d + "/non_utf8", "wb").write(b'{"events":[{"entity":"Lead\xff\xfe","change_type":"CREATE","record":{"Id":"x"}}]}')
open(d + "/duplicate_keys", "w").write('{"events":[],"events":[]}')
EOF
declare -A HWANT=(
	[malformed]='JSON|end of|unexpected|parse'
	[wrong_type]='commitNumber'
	[missing_header_field]='transactionKey'
	[unknown_change_type]='change ?type'
	[huge_string]='transactionKey.*longer'
	[bad_id]='recordIds'
	[deep_nesting]='depth|nest|JSON'
	[non_utf8]='utf-?8|JSON'
	[duplicate_keys]='duplicate'
)
for c in "${!HWANT[@]}"; do
	code=$(hook "$c" "$H/$c")
	reason=$(jq -r '.reason // empty' "$WORK/$c.answer" 2>/dev/null || true)
	[ "$code" = 400 ] || fail "bridge $c: HTTP $code ($(head -c 300 "$WORK/$c.answer"))"
	grep -Eiq -- "${HWANT[$c]}" <<<"$reason" || fail "bridge $c: reason '$reason' does not name the problem (${HWANT[$c]})"
	echo "  bridge $c -> 400: $reason"
done
# Over the event cap: accepted, then dead-lettered with the cap as reason.
cdc '.data.payload.Description = ("d" * 6000) | .data.payload.ChangeEventHeader.recordIds = ["00Q5e00000OverSIZE"]' oversize
code=$(hook oversize "$H/oversize")
[ "$code" = 202 ] || fail "bridge oversize: HTTP $code ($(cat "$WORK/oversize.answer"))"
bletters() { kcat -b "$BROKERS" -C -t "$BDLQ" -e -q -f '%h\n' 2>/dev/null || true; }
until_true 30 "the oversize event's letter on $BDLQ" eval 'bletters | grep -Ei "sfk.error_reason=[^,]*(cap|large|bytes)" >/dev/null'
echo "  bridge oversize -> DLQ: $(bletters | grep -oEi 'sfk.error_reason=[^,]*' | head -1)"
healthy bridge || fail "the bridge is not healthy after bad input"
GOOD=$(new_lead Charlie)
printf '{"events":[{"entity":"Lead","change_type":"UPDATE","record":{"Id":"%s","Status":"Working"}}]}' "$GOOD" >"$H/good"
code=$(hook good "$H/good")
[ "$code" = 202 ] || fail "bridge: a good webhook after the bad ones got $code"
until_true 30 "the good webhook event on $CDC" eval \
	'kcat -b "$BROKERS" -C -t "$CDC" -e -q -f "%s\n" 2>/dev/null | grep -F "$GOOD" | grep -F sfk-webhook >/dev/null'
pass "bridge: ${#HWANT[@]} kinds of bad input refused with 400 and their reason, oversize dead-lettered; a good event is published"
all_alive

# ---- (c) configuration ------------------------------------------------------
config_case() { # config_case BINARY "ENV=V ..." NAME... : exit 78 naming every NAME
	local bin=$1 envs=$2 out rc=0
	shift 2
	out=$(env -i PATH="$PATH" $envs "$SFK_BIN_DIR/$bin" --check-config 2>&1) || rc=$?
	[ $rc -eq 78 ] || fail "$bin with bad settings exited $rc, not 78: $out"
	for n in "$@"; do
		grep -F -- "$n" <<<"$out" >/dev/null || fail "$bin: the problem with $n is not listed: $out"
	done
	echo "  $bin: exit 78, $(grep -c . <<<"$out") problems listed"
}
config_case sfk-worker "SFK_WORKLOAD=nope SFK_BATCH_SIZE=abc SFK_BATCH_WAIT=-5 SFK_WRITE_ATTEMPTS=0" \
	SFK_WORKLOAD SFK_BATCH_SIZE SFK_BATCH_WAIT SFK_WRITE_ATTEMPTS REDIS_URL
config_case sfk-bridge "SFK_BRIDGE_START_FROM=bogus SFK_WEBHOOK_MAX_BODY=5 SFK_ADMIN_ADDR=notanaddr" \
	SFK_BRIDGE_START_FROM SFK_WEBHOOK_MAX_BODY SFK_ADMIN_ADDR KAFKA_BOOTSTRAP_SERVERS
config_case sfk-loader "SFK_LOADER_SINKS=foo SFK_LOADER_BATCH_MAX=-1 SFK_LOADER_JSONL_MAX_BYTES=x" \
	SFK_LOADER_SINKS SFK_LOADER_BATCH_MAX SFK_LOADER_JSONL_MAX_BYTES
pass "configuration: every bad setting listed, exit 78"
