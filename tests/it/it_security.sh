#!/usr/bin/env bash
# it_security: nothing a pipeline run leaves behind leaks a secret or a record id.
# A small run (private sfk-sim + Redis, the suite's broker, per-run topics):
# 20 Leads of sim traffic with their responses, through the bridge (with its
# webhook listener), the three workloads and the loader; one signed webhook, a
# wrongly signed and a malformed one; two poison records on a workload topic.
# Then:
#   - /metrics of every process holds no Salesforce record id (00Q Lead, 00T
#     Task, 02s EmailMessage, 005 User), and
#   - everything the run produced - every process log, every /metrics page,
#     the flywheel JSONL, the DLQ records with their headers, the webhook
#     answers - holds none of: the private key's body, the access tokens the
#     sim issued (read from the shared token cache in Redis), the webhook
#     secret.
# The run must have produced each kind of output (flywheel lines, dead
# letters, tokens), so the greps are never vacuous.
set -euo pipefail
NAME=it_security
. "$SFK_SOURCE_DIR/tests/it/lib/pipeline.sh"
it_require sfk sfk-bridge sfk-worker sfk-loader sfk-sim -- kcat jq curl redis-cli openssl python3
it_need_kafka
it_private_sim
it_pipeline_env itsec
S=$SFK_SOURCE_DIR
LEADS=20
export SFK_LOADER_TOPIC="${P}flywheel" SFK_LOADER_GROUP="${P}loader" SFK_LOADER_DLQ_TOPIC="${P}dlq.loader"
export SFK_LOADER_SINKS=jsonl FLYWHEEL_DIR="$WORK/flywheel" SFK_FLYWHEEL_SCHEMA="$S/schemas/flywheel.schema.json"
mkdir -p "$FLYWHEEL_DIR" "$WORK/out"
SECRET=$(openssl rand -hex 24)
WPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

"$SFK_BIN_DIR/sfk" topics create --partitions 2 >"$WORK/topics.log" 2>&1 ||
	fail "sfk topics create: $(tail -3 "$WORK/topics.log")"

start bridge env SFK_WEBHOOK_LISTEN=127.0.0.1:$WPORT SFK_WEBHOOK_SECRET="$SECRET" "$SFK_BIN_DIR/sfk-bridge"
bridge_subscribed 3 30
WORKLOADS="lead.route lead.first_touch_detect outreach.template_suggest"
for w in $WORKLOADS; do start "$w" "$SFK_BIN_DIR/sfk-worker" --workload "$w"; done
start loader "$SFK_BIN_DIR/sfk-loader"
NAMES="bridge $WORKLOADS loader"
for n in $NAMES; do
	until_true 30 "$n's admin server" eval '[ -n "$(admin_port "$n")" ]'
	until_true 60 "$n ready" curl -sf -o /dev/null "http://127.0.0.1:$(admin_port "$n")/readyz"
done

ctl POST /sim/traffic "{\"leads\":$LEADS,\"rate\":20,\"seed\":12,\"delay_min_ms\":60000,\"delay_max_ms\":600000}" \
	>/dev/null || fail "traffic start"
deadline=$((SECONDS + 120))
until [ "$(ctl GET /sim/traffic/status | jq -r .done)" = true ]; do
	[ $SECONDS -lt $deadline ] || fail "traffic not done in time"
	if [ "$(ctl GET /sim/traffic/status | jq -r .created)" -ge $LEADS ]; then
		ctl POST /sim/clock '{"advance_ms":120000}' >/dev/null
	fi
	all_alive
	sleep 0.5
done
flywheel_lines() { cat "$FLYWHEEL_DIR"/*.jsonl 2>/dev/null | grep -c . || true; }
until_true 120 "flywheel records of the $LEADS Leads' routing" eval '[ "$(flywheel_lines)" -ge $LEADS ]'
pass "pipeline ran: $LEADS Leads, $(flywheel_lines) flywheel lines"

# Webhooks: one good (202), one wrongly signed (401), one malformed (400).
hook() { # hook NAME SIGNATURE BODY: POST it, the answer in out/NAME.webhook
	local ts
	ts=$(date +%s)
	curl -sS -o "$WORK/out/$1.webhook" -w '%{http_code}' -X POST \
		-H "X-Sfk-Timestamp: $ts" -H "X-Sfk-Delivery: $1-$P" -H 'Content-Type: application/json' \
		-H "X-Sfk-Signature: $(if [ "$2" = sign ]; then
			printf '%s' "$ts.$3" | openssl dgst -sha256 -hmac "$SECRET" -r | sed 's/^\([0-9a-f]*\).*/sha256=\1/'
		else echo "$2"; fi)" \
		--data-binary "$3" "http://127.0.0.1:$WPORT/webhooks/salesforce"
}
LEAD=$(ctl POST /sim/records/Lead '{"LastName":"Hook","Company":"Hook Co","Country":"US"}' | jq -r .id)
code=$(hook good sign "{\"events\":[{\"entity\":\"Lead\",\"change_type\":\"UPDATE\",\"record\":{\"Id\":\"$LEAD\",\"Status\":\"Working\"}}]}")
[ "$code" = 202 ] || fail "a signed webhook got $code: $(cat "$WORK/out/good.webhook")"
code=$(hook forged "sha256=$(printf '0%.0s' $(seq 64))" '{"events":[]}')
[ "$code" = 401 ] || fail "a wrongly signed webhook got $code"
code=$(hook malformed sign '{"events":[{"entity":"Lead"')
[ "$code" = 400 ] || fail "a malformed webhook got $code"
pass "webhooks: signed 202, forged 401, malformed 400"

# Poison on a workload topic: dead-lettered with its reason.
DLQ="${P}dlq.lead.route"
printf 'not json at all\n{"envelope_version":1}\n' |
	kcat -b "$BROKERS" -P -t "${P}wl.lead.route" -k "$LEAD" 2>/dev/null || fail "kcat produce"
dlq_count() { kcat -b "$BROKERS" -C -t "$DLQ" -e -q -f '%o\n' 2>/dev/null | grep -c . || true; }
until_true 60 "2 letters on $DLQ" eval '[ "$(dlq_count)" -ge 2 ]'

# Everything produced: logs, metrics, flywheel, DLQ records (all DLQ topics).
for n in $NAMES; do
	curl -sf "http://127.0.0.1:$(admin_port "$n")/metrics" >"$WORK/out/$n.metrics" ||
		fail "no /metrics from $n"
done
for t in $(kcat -b "$BROKERS" -L -J 2>/dev/null | jq -r --arg p "${P}dlq." '.topics[].topic | select(startswith($p))'); do
	kcat -b "$BROKERS" -C -t "$t" -e -q -f 'topic=%t key=%k headers=%h value=%s\n' \
		>"$WORK/out/$t.dlq" 2>/dev/null || true
done
grep -h 'sfk.error_message' "$WORK"/out/*.dlq >/dev/null || fail "no dead letter with sfk.error_message"
pass "$(cat "$WORK"/out/*.dlq | grep -c .) dead letters collected"

# An id stands alone: not inside a number such as 0.005826689000969054.
ids=$(cat "$WORK"/out/*.metrics |
	grep -oP '(?<![.0-9A-Za-z])(00Q|00T|02s|005)[0-9A-Za-z]{12}([0-9A-Za-z]{3})?(?![.0-9A-Za-z])' |
	sort -u | head -5 || true)
[ -z "$ids" ] || fail "/metrics exposes record ids: $(echo $ids)"
pass "/metrics of $(echo $NAMES | wc -w) processes: no record id"

# The secrets, one per line in a file only this test reads.
PAT=$WORK/secrets.pat
: >"$PAT"
chmod 600 "$PAT"
grep -v '^-----' "$SF_PRIVATE_KEY_PATH" | awk 'length($0) >= 20' >>"$PAT"
[ -s "$PAT" ] || fail "could not read the private key body"
ntok=0
for k in $(redis-cli -u "$REDIS_URL" --scan --pattern 'sfk:tok:*'); do
	tok=$(redis-cli -u "$REDIS_URL" --raw GET "$k" | head -1)
	[ -n "$tok" ] && { printf '%s\n' "$tok" >>"$PAT"; ntok=$((ntok + 1)); }
done
[ "$ntok" -ge 1 ] || fail "no access token in the Redis token cache (sfk:tok:*)"
printf '%s\n' "$SECRET" >>"$PAT"

files=("$WORK"/*.log "$WORK"/out/* "$FLYWHEEL_DIR"/*)
leaks=$(grep -lF -f "$PAT" "${files[@]}" 2>/dev/null || true)
[ -z "$leaks" ] || fail "a secret appears in: $(for f in $leaks; do basename "$f"; done | tr '\n' ' ')"
pass "no private key, none of $ntok access token(s), no webhook secret in ${#files[@]} files"
all_alive
