#!/usr/bin/env bash
# it_bridge_webhook: POST /webhooks/salesforce on sfk-bridge's webhook
# listener, as a sender and an operator see it (read_committed consumers):
#   - a signed batch (a plain Lead change + a CDC Task message) -> 202, its
#     records once on <prefix>cdc.* and the workload topics;
#   - the same delivery again (as sent, re-signed with a new timestamp, or
#     the same signed request under a new delivery id) -> 409, no records;
#   - bad signature / stale timestamp -> 401, oversize body -> 413,
#     malformed JSON, invalid record, missing delivery id -> 400;
#   - a batch whose transaction fails (a record over Kafka's 1 MB limit) ->
#     refused, its delivery id released: the sender's retry is accepted;
#   - nothing from a refused request reaches any topic of the run (counted
#     by record id after a later accepted delivery, which proves the bridge
#     went on publishing), and sfk_webhook_requests_total counts outcomes.
# Requests are signed with the openssl CLI and sent with curl.
#
# Needs: eval "$(tests/stack/up --kafka real --sim)" (REDIS_URL, SF_*, KAFKA_*).
set -euo pipefail

: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the repository}"
NAME=it_bridge_webhook
BIN="$SFK_BIN_DIR/sfk-bridge"
WORK=$(mktemp -d)
BPID=
cleanup() {
	if [ -n "$BPID" ]; then
		kill "$BPID" 2>/dev/null || true
		wait "$BPID" 2>/dev/null || true
	fi
	[ -n "${KEEP_WORK:-}" ] && echo "work: $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "$NAME: FAIL: $*" >&2
	local f
	for f in "$WORK"/*.log; do
		[ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -15 >&2
	done
	exit 1
}
pass() { echo "ok   $*"; }

[ -x "$BIN" ] || fail "$BIN not built"
[ -x "$SFK_BIN_DIR/sfk" ] || fail "$SFK_BIN_DIR/sfk not built"
for c in kcat jq curl openssl; do command -v $c >/dev/null || fail "$c not installed"; done
for v in REDIS_URL SF_SIM_URL SF_CA_FILE SF_LOGIN_URL SF_TOKEN_URL SF_CLIENT_ID SF_USERNAME \
	SF_PRIVATE_KEY_PATH SF_API_VERSION KAFKA_BOOTSTRAP_SERVERS; do
	[ -n "${!v:-}" ] || fail "$v is not set: run eval \"\$(tests/stack/up --kafka real --sim)\" first"
done
[ "${SFK_KAFKA_KIND:-real}" = real ] ||
	fail "needs the real broker (SFK_KAFKA_KIND=$SFK_KAFKA_KIND: the mock shows aborted records)"
KAFKA=$KAFKA_BOOTSTRAP_SERVERS

P="itw$$r$RANDOM."
# Record ids unique to this run (18 characters): nothing else writes them.
RUN=$(printf '%06d%06d' $(($$ % 1000000)) $((RANDOM * 32768 + RANDOM)) | cut -c1-12)
rid() { echo "00Q${RUN}${1}AA"; } # rid N (one letter) -> a Lead id of this run
L_OK=$(rid A) L_BADSIG=$(rid B) L_STALE=$(rid C) L_BIG=$(rid D) L_BADJSON=$(rid E)
L_NODELIV=$(rid F) L_LATER=$(rid G) L_HUGE=$(rid H) L_RETRY=$(rid J)
TASK="00T${RUN}AAA"
SECRET="it-webhook-secret-$RANDOM$RANDOM-0123456789"

"$SFK_BIN_DIR/sfk" topics create --prefix "$P" --partitions 1 >"$WORK/topics.log" 2>&1 ||
	fail "sfk topics create --prefix $P"
# The bridge reads its checkpoints at start: wait until the new topic answers.
ckpt_ready() {
	local t="${P}bridge.checkpoints" n q=() i
	n=$(kcat -b "$KAFKA" -L -t "$t" 2>/dev/null | grep -c '^    partition [0-9]*, leader [0-9]' || true)
	[ "$n" -gt 0 ] || return 1
	for ((i = 0; i < n; i++)); do q+=(-t "$t:$i:-1"); done
	[ "$(kcat -b "$KAFKA" -Q "${q[@]}" 2>/dev/null | grep -c ' offset [0-9]' || true)" -eq "$n" ]
}
deadline=$((SECONDS + 30))
until ckpt_ready; do
	[ $SECONDS -lt $deadline ] || fail "${P}bridge.checkpoints not ready 30 s after its creation"
	sleep 0.2
done

WPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
export SFK_TOPIC_PREFIX=$P SFK_BRIDGE_TRANSACTIONAL_ID="${P}bridge" SFK_ADMIN_ADDR=127.0.0.1:0
export SFK_BRIDGE_LEASE_KEY="sfk:lease:bridge:$P"
export SFK_WORKLOADS_POLICY="$SFK_SOURCE_DIR/policies/workloads.json"
export SFK_WORKLOADS_SCHEMA="$SFK_SOURCE_DIR/schemas/workloads.schema.json"
export SFK_CLIENT_ID=sfk-kpis SFK_BRIDGE_START_FROM=latest
export SFK_WEBHOOK_LISTEN="127.0.0.1:$WPORT" SFK_WEBHOOK_SECRET="$SECRET"
export SFK_WEBHOOK_MAX_BODY=1500000 # above Kafka's 1 MB record limit
URL="http://127.0.0.1:$WPORT/webhooks/salesforce"

# 0. Configuration: a listener without its secret is refused up front.
set +e
SFK_WEBHOOK_SECRET= "$BIN" --check-config >/dev/null 2>"$WORK/nosecret.log"
rc=$?
SFK_WEBHOOK_SECRET=short "$BIN" --check-config >/dev/null 2>"$WORK/short.log"
rc2=$?
set -e
[ $rc -eq 78 ] && grep -c 'SFK_WEBHOOK_SECRET is not' "$WORK/nosecret.log" >/dev/null ||
	fail "no secret: --check-config exit $rc"
[ $rc2 -eq 78 ] && grep -c 'at least 16 bytes' "$WORK/short.log" >/dev/null ||
	fail "short secret: --check-config exit $rc2"
grep -c "$SECRET" "$WORK/nosecret.log" "$WORK/short.log" >/dev/null && fail "secret printed"
pass "--check-config: the webhook listener needs a secret of 16+ bytes"

"$BIN" 2>"$WORK/bridge.log" &
BPID=$!
deadline=$((SECONDS + 60))
until [ "$(grep -c '"msg":"webhook listening"' "$WORK/bridge.log" || true)" -ge 1 ]; do
	kill -0 "$BPID" 2>/dev/null || fail "sfk-bridge exited"
	[ $SECONDS -lt $deadline ] || fail "no webhook listener 60 s after start"
	sleep 0.2
done
APORT=$(sed -n 's/.*"msg":"admin listening".*"port":\([0-9]*\).*/\1/p' "$WORK/bridge.log" | head -1)
[ -n "$APORT" ] || fail "no admin port in the log"

# topic SUFFIX: "key<TAB>headers<TAB>value" lines committed on <prefix>SUFFIX.
topic() {
	kcat -b "$KAFKA" -C -t "$P$1" -o beginning -e -q -X isolation.level=read_committed \
		-f '%k\t%h\t%s\n' 2>/dev/null || true
}
count() { topic "$1" | grep -c -- "$2" || true; } # count SUFFIX REGEX
wait_topic() {                                       # wait_topic SUFFIX REGEX N SECONDS
	local deadline=$((SECONDS + $4))
	until [ "$(count "$1" "$2")" -ge "$3" ]; do
		[ $SECONDS -lt $deadline ] || return 1
		sleep 0.3
	done
}

# sig SECRET TS FILE: "sha256=<hex>" of HMAC-SHA256(SECRET, TS "." body).
sig() {
	printf 'sha256=%s' "$({
		printf '%s.' "$2"
		cat "$3"
	} | openssl dgst -sha256 -hmac "$1" -r | cut -d' ' -f1)"
}
# post FILE TS SIGNATURE DELIVERY: prints the status; the answer in $WORK/resp.
post() {
	local h=(-H 'Content-Type: application/json' -H "X-Sfk-Timestamp: $2" -H "X-Sfk-Signature: $3")
	[ -n "$4" ] && h+=(-H "X-Sfk-Delivery: $4")
	curl -sS -o "$WORK/resp" -w '%{http_code}' -m 60 "${h[@]}" --data-binary "@$1" "$URL"
}
expect() { # expect WHAT STATUS ERROR GOT
	[ "$4" = "$2" ] || fail "$1: status $4, want $2 ($(cat "$WORK/resp"))"
	[ "$(jq -r .error "$WORK/resp")" = "$3" ] || fail "$1: answer $(cat "$WORK/resp")"
	jq -e '.reason | type == "string" and length > 0' "$WORK/resp" >/dev/null ||
		fail "$1: no reason in $(cat "$WORK/resp")"
}
lead() { # lead ID: a plain record change creating a Lead
	printf '{"entity":"Lead","change_type":"CREATE","record":{"Id":"%s","LastName":"Hook","Company":"Webhook Ltd"}}' "$1"
}

# 1. A good delivery: accepted once, records on cdc.* and the workload topics.
now=$(date +%s)
cat >"$WORK/good.json" <<EOF
{"events":[$(lead "$L_OK"),
 {"channel":"/data/TaskChangeEvent","data":{"schema":"s","event":{"replayId":4242},
  "payload":{"Subject":"Call","Status":"Completed","WhoId":"$L_OK","ChangeEventHeader":{
   "entityName":"Task","changeType":"CREATE","recordIds":["$TASK"],"commitTimestamp":${now}000,
   "commitNumber":9007199254740993,"transactionKey":"tx-$RUN","sequenceNumber":1,
   "changeOrigin":"","changedFields":[]}}}}]}
EOF
D1="it-$RUN-1"
good_sig=$(sig "$SECRET" "$now" "$WORK/good.json")
st=$(post "$WORK/good.json" "$now" "$good_sig" "$D1")
[ "$st" = 202 ] || fail "good delivery: status $st ($(cat "$WORK/resp"))"
[ "$(jq -r '.status + " " + (.records|tostring)' "$WORK/resp")" = "accepted 2" ] ||
	fail "good delivery: answer $(cat "$WORK/resp")"
wait_topic cdc.lead "^$L_OK	" 1 30 || fail "good delivery: $L_OK not on ${P}cdc.lead"
for wl in lead.route lead.first_touch_detect outreach.template_suggest; do
	wait_topic "wl.$wl" "^$L_OK	.*\"record_id\":\"$L_OK\"" 1 15 ||
		fail "good delivery: $L_OK not on wl.$wl"
done
wait_topic cdc.task "^$TASK	" 1 15 || fail "good delivery: $TASK not on ${P}cdc.task"
wait_topic wl.lead.first_touch_detect "^$L_OK	.*\"record_id\":\"$TASK\"" 1 15 ||
	fail "good delivery: closed Task not fanned out keyed by its Lead"
env=$(topic cdc.lead | grep "^$L_OK	" | cut -f3)
[ "$(jq -r '.entity + " " + .change_type + " " + .fields.Company' <<<"$env")" = "Lead CREATE Webhook Ltd" ] ||
	fail "good delivery: envelope $env"
[ "$(jq -r '.channel' <<<"$env")" = null ] || fail "good delivery: channel $(jq -r .channel <<<"$env")"
[ "$(jq -r '.replay_id < 0' <<<"$env")" = true ] || fail "good delivery: replay id not synthetic"
tenv=$(topic cdc.task | grep "^$TASK	" | cut -f3)
grep -c '"commit_number":9007199254740993' <<<"$tenv" >/dev/null || fail "task: commit number"
[ "$(jq -r .replay_id <<<"$tenv")" = 4242 ] || fail "task: replay id"
[ "$(count bridge.checkpoints '"replay_id":4242')" -eq 0 ] ||
	fail "a webhook CDC message moved the CometD checkpoint"
pass "signed batch -> 202 after commit; Lead on cdc.lead + 3 workload topics, Task fanned out by its Lead"

# 2. Replays: as sent; re-signed with a new timestamp; the signed request
# under a new delivery id. All 409, none publishes.
st=$(post "$WORK/good.json" "$now" "$good_sig" "$D1")
expect "replay as sent" 409 duplicate_delivery "$st"
sleep 1 # a new second, so a new signature
now2=$(date +%s)
st=$(post "$WORK/good.json" "$now2" "$(sig "$SECRET" "$now2" "$WORK/good.json")" "$D1")
expect "replay re-signed" 409 duplicate_delivery "$st"
st=$(post "$WORK/good.json" "$now" "$good_sig" "it-$RUN-other")
expect "replay under a new delivery id" 409 duplicate_delivery "$st"
pass "replayed delivery (same id, or same signed request) -> 409 duplicate_delivery"

# 3. Authentication failures: 401, before anything else is looked at.
echo "{\"events\":[$(lead "$L_BADSIG")]}" >"$WORK/badsig.json"
st=$(post "$WORK/badsig.json" "$now2" "$(sig "not-the-secret-$SECRET" "$now2" "$WORK/badsig.json")" "it-$RUN-2")
expect "bad signature" 401 unauthorized "$st"
[ "$(jq -r .reason "$WORK/resp")" = "signature mismatch" ] || fail "bad signature: $(cat "$WORK/resp")"
echo "{\"events\":[$(lead "$L_STALE")]}" >"$WORK/stale.json"
old=$((now2 - 301))
st=$(post "$WORK/stale.json" "$old" "$(sig "$SECRET" "$old" "$WORK/stale.json")" "it-$RUN-3")
expect "stale timestamp" 401 unauthorized "$st"
jq -r .reason "$WORK/resp" | grep -c 'old, more than 300 s' >/dev/null || fail "stale: $(cat "$WORK/resp")"
fut=$((now2 + 3600))
st=$(post "$WORK/stale.json" "$fut" "$(sig "$SECRET" "$fut" "$WORK/stale.json")" "it-$RUN-3f")
expect "future timestamp" 401 unauthorized "$st"
pass "bad signature, stale and future timestamps -> 401 with the reason"

# 4. Oversize body: 413 (the cap is 1,500,000 bytes here), even when signed.
pad=$(head -c 1600000 /dev/zero | tr '\0' x)
printf '{"events":[{"entity":"Lead","change_type":"CREATE","record":{"Id":"%s","Description":"%s"}}]}' \
	"$L_BIG" "$pad" >"$WORK/big.json"
st=$(post "$WORK/big.json" "$now2" "$(sig "$SECRET" "$now2" "$WORK/big.json")" "it-$RUN-4")
[ "$st" = 413 ] || fail "oversize: status $st"
[ "$(jq -r .error "$WORK/resp")" = payload_too_large ] || fail "oversize: $(cat "$WORK/resp")"
jq -r .reason "$WORK/resp" | grep -E '^request body larger than [0-9]+ bytes$' >/dev/null ||
	fail "oversize: no reason in $(cat "$WORK/resp")"
pass "oversize body -> 413 payload_too_large"

# 5. Signed but malformed: 400 with the reason.
printf '{"events":[%s' "$(lead "$L_BADJSON")" >"$WORK/badjson.json"
st=$(post "$WORK/badjson.json" "$now2" "$(sig "$SECRET" "$now2" "$WORK/badjson.json")" "it-$RUN-5")
expect "malformed JSON" 400 bad_request "$st"
jq -r .reason "$WORK/resp" | grep -c 'not JSON' >/dev/null || fail "malformed: $(cat "$WORK/resp")"
printf '{"events":[%s,{"entity":"Lead","change_type":"CREATE","record":{"Id":"bad-id"}}]}' \
	"$(lead "$L_BADJSON")" >"$WORK/badrec.json"
st=$(post "$WORK/badrec.json" "$now2" "$(sig "$SECRET" "$now2" "$WORK/badrec.json")" "it-$RUN-6")
expect "invalid record" 400 bad_request "$st"
jq -r .reason "$WORK/resp" | grep -c 'events\[1\]' >/dev/null || fail "invalid record: $(cat "$WORK/resp")"
echo "{\"events\":[$(lead "$L_NODELIV")]}" >"$WORK/nodeliv.json"
st=$(post "$WORK/nodeliv.json" "$now2" "$(sig "$SECRET" "$now2" "$WORK/nodeliv.json")" "")
expect "missing delivery id" 400 bad_request "$st"
# A refused delivery id is not used up: the fixed batch under it is accepted.
echo "{\"events\":[$(lead "$L_LATER")]}" >"$WORK/later.json"
st=$(post "$WORK/later.json" "$now2" "$(sig "$SECRET" "$now2" "$WORK/later.json")" "it-$RUN-6")
[ "$st" = 202 ] || fail "later delivery: status $st ($(cat "$WORK/resp"))"
pass "malformed JSON, invalid record, missing delivery id -> 400; the refused id stays usable"

# 5b. The transaction fails (one record over Kafka's message.max.bytes): no
# record of the batch is visible and its delivery id is released, so the
# sender's retry under the same id is accepted.
pad=$(head -c 1100000 /dev/zero | tr '\0' y)
printf '{"events":[%s,{"entity":"Lead","change_type":"CREATE","record":{"Id":"%s","Description":"%s"}}]}' \
	"$(lead "$L_HUGE")" "$L_HUGE" "$pad" >"$WORK/huge.json"
DR="it-$RUN-retry"
st=$(post "$WORK/huge.json" "$now2" "$(sig "$SECRET" "$now2" "$WORK/huge.json")" "$DR")
expect "unpublishable batch" 400 bad_request "$st"
jq -r .reason "$WORK/resp" | grep -c 'cannot be published' >/dev/null || fail "unpublishable: $(cat "$WORK/resp")"
echo "{\"events\":[$(lead "$L_RETRY")]}" >"$WORK/retry.json"
st=$(post "$WORK/retry.json" "$now2" "$(sig "$SECRET" "$now2" "$WORK/retry.json")" "$DR")
[ "$st" = 202 ] || fail "retry after a failed transaction: status $st ($(cat "$WORK/resp"))"
pass "failed transaction -> nothing published, delivery id released, the retry is accepted"

# 6. Nothing from a refused request reached Kafka. The later delivery's
# record being visible proves the bridge published after the refusals.
wait_topic cdc.lead "^$L_LATER	" 1 30 || fail "later delivery: $L_LATER not on ${P}cdc.lead"
wait_topic cdc.lead "^$L_RETRY	" 1 30 || fail "retried delivery: $L_RETRY not on ${P}cdc.lead"
for t in cdc.lead cdc.task wl.lead.route wl.lead.first_touch_detect wl.outreach.template_suggest \
	dlq.bridge; do
	topic "$t" >"$WORK/$t.txt"
done
for id in "$L_BADSIG" "$L_STALE" "$L_BIG" "$L_BADJSON" "$L_NODELIV" "$L_HUGE"; do
	n=$(cat "$WORK"/*.txt | grep -c "$id" || true)
	[ "$n" -eq 0 ] || fail "refused request's $id: $n records in Kafka"
done
[ "$(grep -c "^$L_OK	" "$WORK/cdc.lead.txt")" -eq 1 ] || fail "$L_OK not exactly once on cdc.lead"
[ "$(grep -c "^$L_RETRY	" "$WORK/cdc.lead.txt")" -eq 1 ] || fail "$L_RETRY not exactly once on cdc.lead"
[ "$(grep -c "^$TASK	" "$WORK/cdc.task.txt")" -eq 1 ] || fail "$TASK not exactly once on cdc.task"
for wl in lead.route outreach.template_suggest; do
	[ "$(grep -c "^$L_OK	" "$WORK/wl.$wl.txt")" -eq 1 ] || fail "$L_OK not exactly once on wl.$wl"
done
# first_touch_detect: the Lead's CREATE and the closed Task, both keyed by the Lead.
[ "$(grep -c "^$L_OK	" "$WORK/wl.lead.first_touch_detect.txt")" -eq 2 ] ||
	fail "wl.lead.first_touch_detect: want 2 records keyed $L_OK"
[ "$(grep -c "$RUN" "$WORK/dlq.bridge.txt" || true)" -eq 0 ] || fail "dead letters from this run"
pass "refused requests put nothing on any topic; accepted records exactly once"

# 7. Metrics and the secret.
m=$(curl -sf "http://127.0.0.1:$APORT/metrics") || fail "no /metrics"
metric() { sed -n "s/^sfk_webhook_requests_total{outcome=\"$1\"} //p" <<<"$m"; }
[ "$(metric accepted)" = 3 ] || fail "accepted: $(metric accepted)"
[ "$(metric duplicate)" = 3 ] || fail "duplicate: $(metric duplicate)"
[ "$(metric unauthorized)" = 3 ] || fail "unauthorized: $(metric unauthorized)"
[ "$(metric bad_request)" = 4 ] || fail "bad_request: $(metric bad_request)"
[ "$(metric payload_too_large)" = 1 ] || fail "payload_too_large: $(metric payload_too_large)"
grep -c -- "$SECRET" "$WORK/bridge.log" >/dev/null && fail "the webhook secret is in the log"
# The webhook listener serves nothing else.
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$WPORT/metrics")" = 404 ] ||
	fail "webhook listener serves /metrics"
pass "sfk_webhook_requests_total by outcome; secret never logged; admin routes stay off the webhook port"

kill -TERM "$BPID"
deadline=$((SECONDS + 20))
while kill -0 "$BPID" 2>/dev/null; do
	[ $SECONDS -lt $deadline ] || fail "sfk-bridge still running 20 s after SIGTERM"
	sleep 0.1
done
wait "$BPID" || fail "sfk-bridge exit status $? after SIGTERM"
BPID=
echo "$NAME: all cases passed"
