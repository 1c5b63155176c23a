#!/usr/bin/env bash
# it_sim_cometd: a CometD client's view of sfk-sim over real HTTPS with curl
# and a cookie jar. Starts its own sfk-sim (a private tests/stack/up) with a
# short connect hold, mints a JWT-bearer token, handshakes, subscribes with
# replay -2, creates a Lead through /sim/records and expects its CDC event in
# a /meta/connect response; then checks Salesforce's error texts (invalid
# replayId, missing cookie) and that a forgotten client gets 403::Unknown
# client; finally a raw event on a new channel.
set -euo pipefail
src=${SFK_SOURCE_DIR:?SFK_SOURCE_DIR not set (run through ctest)}
export SFK_BIN_DIR=${SFK_BIN_DIR:?SFK_BIN_DIR not set (run through ctest)}

# A private sim (tests/stack/up --sim --no-redis --kafka none): this test
# changes global sim state, so never the suite's shared sim.
WORK=$(mktemp -d /tmp/it_sim_cometd.XXXXXX)
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
	echo "--- sim log (tail) ---" >&2
	tail -n 30 "${SIM_PRIVATE_STACK:-/nonexistent}/sim/sim.log" >&2 || true
	exit 1
}
pass() { echo "ok - $*"; }

# shellcheck source=../stack/lib/common.sh
. "$src/tests/stack/lib/common.sh"
# shellcheck source=../stack/lib/sim.sh
. "$src/tests/stack/lib/sim.sh"
# A low overflow limit so that one sObject Collections call overflows.
export SIM_EXTRA_ARGS="--opt cometd.timeout_ms=3000 --opt cometd.client_timeout_ms=20000 --opt cdc.overflow_changes=8"
sim_private_stack || { echo "FAIL: could not start a private sfk-sim" >&2; exit 1; }

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
mint_token() {
	local now=${1:-$(date +%s)} hdr claims sig
	hdr=$(printf '{"alg":"RS256"}' | b64url)
	claims=$(printf '{"iss":"%s","sub":"%s","aud":"%s","exp":%d}' "$SF_CLIENT_ID" \
		"$SF_USERNAME" "$SF_LOGIN_URL" $((now + 180)) | b64url)
	sig=$(printf '%s.%s' "$hdr" "$claims" | openssl dgst -sha256 -sign "$SF_PRIVATE_KEY_PATH" | b64url)
	curl -sS --cacert "$SF_CA_FILE" -X POST "$SF_TOKEN_URL/services/oauth2/token" \
		--data-urlencode grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer \
		--data-urlencode "assertion=$hdr.$claims.$sig" | jq -r .access_token
}
TOKEN=$(mint_token)
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || fail "no access token from the sim's token endpoint"

JAR=$WORK/cookies
COMETD="$SF_SIM_URL/cometd/$SF_API_VERSION"
# bayeux BODY [extra curl args]: POST one Bayeux batch, print the reply.
bayeux() {
	local body=$1
	shift
	curl -sS --cacert "$SF_CA_FILE" -X POST "$COMETD" -H "Authorization: Bearer $TOKEN" \
		-H 'Content-Type: application/json' -d "$body" "$@"
}
sim() { curl -sS --cacert "$SF_CA_FILE" "$@"; }

handshake() {
	bayeux '[{"channel":"/meta/handshake","version":"1.0","minimumVersion":"1.0","supportedConnectionTypes":["long-polling"],"ext":{"replay":true},"id":"1"}]' \
		-c "$JAR" -b "$JAR"
}
connect() {
	bayeux "[{\"channel\":\"/meta/connect\",\"clientId\":\"$1\",\"connectionType\":\"long-polling\",\"id\":\"c\"}]" \
		-b "$JAR" -c "$JAR"
}

# --- handshake ------------------------------------------------------------------------
hs=$(handshake)
cid=$(jq -r '.[0].clientId' <<<"$hs")
[ "$(jq -r '.[0].successful' <<<"$hs")" = true ] || fail "handshake: $hs"
[ "$(jq -c '.[0].ext' <<<"$hs")" = '{"replay":true,"payload.format":true}' ] || fail "handshake ext: $hs"
grep -q BAYEUX_BROWSER "$JAR" || fail "handshake set no BAYEUX_BROWSER cookie"
pass "handshake clientId=$cid"

# --- subscribe with replay -2 ------------------------------------------------------------
sub=$(bayeux "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"$cid\",\"subscription\":\"/data/LeadChangeEvent\",\"ext\":{\"replay\":{\"/data/LeadChangeEvent\":-2}},\"id\":\"2\"}]" -b "$JAR")
[ "$(jq -r '.[0].successful' <<<"$sub")" = true ] || fail "subscribe: $sub"
pass "subscribed to /data/LeadChangeEvent from -2"

first=$(connect "$cid")
[ "$(jq -c '[.[] | select(.channel=="/meta/connect")][0].advice' <<<"$first")" = \
	'{"interval":0,"timeout":3000,"reconnect":"retry"}' ] || fail "first connect advice: $first"
pass "first connect carries the reconnect advice"

# --- a Lead created in the org arrives as a CDC event ---------------------------------------
lead=$(sim -X POST -H 'Content-Type: application/json' \
	-d '{"FirstName":"Ada","LastName":"Lovelace","Company":"Analytical Engines","Country":"United Kingdom"}' \
	"$SF_SIM_URL/sim/records/Lead" | jq -r .id)
[ -n "$lead" ] && [ "$lead" != null ] || fail "lead not created"
got=""
all="$first"
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ]; do
	if jq -e --arg id "$lead" '[.[] | select(.channel=="/data/LeadChangeEvent") |
		select(.data.payload.ChangeEventHeader.recordIds | index($id))] | length > 0' \
		<<<"$all" >/dev/null; then
		got=1
		break
	fi
	all=$(connect "$cid")
	[ "$(jq -r '[.[] | select(.channel=="/meta/connect")][0].successful' <<<"$all")" = true ] ||
		fail "connect failed: $all"
done
[ -n "$got" ] || fail "no CDC event for lead $lead within 20 s"
ev=$(jq -c --arg id "$lead" '[.[] | select(.channel=="/data/LeadChangeEvent") |
	select(.data.payload.ChangeEventHeader.recordIds | index($id))][0]' <<<"$all")
[ "$(jq -r .data.payload.ChangeEventHeader.changeType <<<"$ev")" = CREATE ] || fail "changeType: $ev"
[ "$(jq -r .data.payload.ChangeEventHeader.entityName <<<"$ev")" = Lead ] || fail "entityName: $ev"
[ "$(jq -r .data.payload.Name.LastName <<<"$ev")" = Lovelace ] || fail "compound Name: $ev"
[ "$(jq -r .data.payload.Company <<<"$ev")" = "Analytical Engines" ] || fail "Company: $ev"
rid=$(jq -r .data.event.replayId <<<"$ev")
[ "$rid" -gt 0 ] || fail "replayId: $ev"
pass "lead $lead arrived as a CREATE event, replayId $rid"

# --- replay from a stored id: strictly after it ----------------------------------------------
sim -X POST -H 'Content-Type: application/json' -d '{"LastName":"Second","Company":"Two"}' \
	"$SF_SIM_URL/sim/records/Lead" >/dev/null
hs2=$(handshake)
cid2=$(jq -r '.[0].clientId' <<<"$hs2")
bayeux "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"$cid2\",\"subscription\":\"/data/ChangeEvents\",\"ext\":{\"replay\":{\"/data/ChangeEvents\":$rid}}}]" -b "$JAR" >/dev/null
names=""
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ]; do
	r=$(connect "$cid2")
	names+=$(jq -r '.[] | select(.channel=="/data/ChangeEvents") | .data.payload.Name.LastName' <<<"$r")
	[[ $names == *Second* ]] && break
done
[[ $names == *Second* ]] || fail "replay after $rid did not deliver the next lead"
[[ $names != *Lovelace* ]] && pass "replay from $rid resumes strictly after it" ||
	fail "replay from $rid re-delivered the event itself"

# --- Salesforce's error texts -------------------------------------------------------------------
bad=$(bayeux "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"$cid\",\"subscription\":\"/data/LeadChangeEvent\",\"ext\":{\"replay\":{\"/data/LeadChangeEvent\":999999999}}}]" -b "$JAR")
want='400::The replayId {999999999} you provided was invalid. Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.'
[ "$(jq -r '.[0].error' <<<"$bad")" = "$want" ] || fail "invalid replay id: $bad"
pass "invalid replayId -> documented 400 text"

nocookie=$(bayeux "[{\"channel\":\"/meta/connect\",\"clientId\":\"$cid\",\"connectionType\":\"long-polling\"}]")
[ "$(jq -r '.[0].error' <<<"$nocookie")" = \
	"400::Client $cid has established a session, but no BAYEUX_BROWSER cookie present" ] ||
	fail "missing cookie: $nocookie"
pass "missing cookie -> 400 text"

expired=$(curl -sS --cacert "$SF_CA_FILE" -X POST "$COMETD" -H "Authorization: Bearer 00Dbogus!token" \
	-H 'Content-Type: application/json' -b "$JAR" \
	-d "[{\"channel\":\"/meta/connect\",\"clientId\":\"$cid\",\"connectionType\":\"long-polling\"}]")
[ "$(jq -r '.[0].error' <<<"$expired")" = "401::Authentication invalid" ] || fail "bad token: $expired"
[ "$(jq -r '.[0].advice.reconnect' <<<"$expired")" = none ] || fail "bad token advice: $expired"
pass "invalid token -> 401::Authentication invalid, reconnect none"

big=$(head -c 40000 /dev/zero | tr '\0' 'x')
code=$(curl -sS --cacert "$SF_CA_FILE" -o /dev/null -w '%{http_code}' -X POST "$COMETD" \
	-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -b "$JAR" \
	-d "[{\"channel\":\"/meta/connect\",\"clientId\":\"$cid\",\"pad\":\"$big\"}]")
[ "$code" = 413 ] || fail "a 40 KB CometD body must be refused with 413, got $code"
pass "body over 32 KB -> 413"

# --- gap events on demand ---------------------------------------------------------------------------
sim -X POST -H 'Content-Type: application/json' -d '{"gap_next":1}' "$SF_SIM_URL/sim/faults" >/dev/null
glead=$(sim -X POST -H 'Content-Type: application/json' -d '{"LastName":"Gap","Company":"G"}' \
	"$SF_SIM_URL/sim/records/Lead" | jq -r .id)
gev=""
deadline=$((SECONDS + 20))
while [ -z "$gev" ] && [ $SECONDS -lt $deadline ]; do
	r=$(connect "$cid")
	gev=$(jq -c --arg id "$glead" '[.[] | select(.channel=="/data/LeadChangeEvent") |
		select(.data.payload.ChangeEventHeader.recordIds | index($id))][0] // empty' <<<"$r")
done
[ -n "$gev" ] || fail "no event for gap lead $glead"
[ "$(jq -r .data.payload.ChangeEventHeader.changeType <<<"$gev")" = GAP_CREATE ] || fail "gap: $gev"
[ "$(jq '.data.payload | keys | length' <<<"$gev")" = 1 ] || fail "gap event carries fields: $gev"
pass "gap_next=1 -> GAP_CREATE with the header only"

# --- one sObject Collections call, one transaction: a merged event ------------------------------------
ids=()
for n in 1 2 3; do
	ids+=("$(sim -X POST -H 'Content-Type: application/json' -d "{\"LastName\":\"Merge$n\",\"Company\":\"M\"}" \
		"$SF_SIM_URL/sim/records/Lead" | jq -r .id)")
done
recs=$(printf '{"attributes":{"type":"Lead"},"id":"%s","Status":"Working - Contacted"},' "${ids[@]}")
col=$(curl -sS --cacert "$SF_CA_FILE" -X PATCH "$SF_SIM_URL/services/data/v$SF_API_VERSION/composite/sobjects" \
	-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	-H 'Sforce-Call-Options: client=sfk-it' -d "{\"allOrNone\":true,\"records\":[${recs%,}]}")
[ "$(jq '[.[] | select(.success)] | length' <<<"$col")" = 3 ] || fail "collections update: $col"
mev=""
deadline=$((SECONDS + 20))
while [ -z "$mev" ] && [ $SECONDS -lt $deadline ]; do
	r=$(connect "$cid")
	mev=$(jq -c '[.[] | select(.data.payload.ChangeEventHeader.changeType == "UPDATE")][0] // empty' <<<"$r")
done
[ -n "$mev" ] || fail "no UPDATE event after the collections call"
[ "$(jq -c '.data.payload.ChangeEventHeader.recordIds' <<<"$mev")" = \
	"$(printf '%s\n' "${ids[@]}" | jq -R . | jq -sc .)" ] || fail "not one merged event: $mev"
[ "$(jq -r .data.payload.ChangeEventHeader.changeOrigin <<<"$mev")" = \
	"com/salesforce/api/rest/$SF_API_VERSION;client=sfk-it" ] || fail "changeOrigin: $mev"
[ "$(jq -r .data.payload.Status <<<"$mev")" = "Working - Contacted" ] || fail "merged body: $mev"
pass "one collections call -> one merged UPDATE event with 3 recordIds"

# --- a transaction over the overflow limit: GAP_OVERFLOW ---------------------------------------------
recs=""
for n in $(seq 1 10); do
	recs+="{\"attributes\":{\"type\":\"Lead\"},\"LastName\":\"Ovf$n\",\"Company\":\"O\"},"
done
col=$(curl -sS --cacert "$SF_CA_FILE" -X POST "$SF_SIM_URL/services/data/v$SF_API_VERSION/composite/sobjects" \
	-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	-d "{\"allOrNone\":true,\"records\":[${recs%,}]}")
[ "$(jq '[.[] | select(.success)] | length' <<<"$col")" = 10 ] || fail "collections create: $col"
types=""
deadline=$((SECONDS + 20))
while [[ $types != *GAP_OVERFLOW* ]] && [ $SECONDS -lt $deadline ]; do
	r=$(connect "$cid")
	types+=$(jq -r '.[] | select(.channel=="/data/LeadChangeEvent") |
		.data.payload.ChangeEventHeader | "\(.changeType):\(.recordIds[0]) "' <<<"$r")
done
[ "$(grep -o 'CREATE:' <<<"$types" | grep -vc GAP)" = 8 ] || fail "want 8 CREATE events before the overflow: $types"
[[ $types == *"GAP_OVERFLOW:000000000000000AAA"* ]] || fail "no GAP_OVERFLOW event: $types"
pass "10 creates in one transaction, limit 8 -> 8 CREATE events + GAP_OVERFLOW"

# --- forgotten clients ----------------------------------------------------------------------------
sim -X POST -H 'Content-Type: application/json' -d '{"forget_cometd_clients":true}' \
	"$SF_SIM_URL/sim/faults" >/dev/null
gone=$(connect "$cid")
[ "$(jq -c '.[0] | {advice,channel,error,successful}' <<<"$gone")" = \
	'{"advice":{"interval":0,"reconnect":"handshake"},"channel":"/meta/connect","error":"403::Unknown client","successful":false}' ] ||
	fail "forgotten client: $gone"
[ "$(jq -r '.[0].clientId' <<<"$gone")" = null ] || fail "403 reply must not carry clientId: $gone"
pass "forgotten client -> 403::Unknown client, advice handshake"

# --- raw events on a new channel -------------------------------------------------------------------
raw=$(sim -X POST -H 'Content-Type: application/json' \
	-d '{"schema":"custom","payload":{"ChangeEventHeader":{"entityName":"Widget__c","changeType":"CREATE","recordIds":["a005g000001AbCdAAK"]},"Color__c":"blue"}}' \
	"$SF_SIM_URL/sim/events/raw?channel=/data/Widget__ChangeEvent")
[ "$(jq -r .replayId <<<"$raw")" -gt 0 ] || fail "raw publish: $raw"
hs3=$(handshake)
cid3=$(jq -r '.[0].clientId' <<<"$hs3")
s3=$(bayeux "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"$cid3\",\"subscription\":\"/data/Widget__ChangeEvent\",\"ext\":{\"replay\":{\"/data/Widget__ChangeEvent\":-2}}}]" -b "$JAR")
[ "$(jq -r '.[0].successful' <<<"$s3")" = true ] || fail "subscribe raw channel: $s3"
r3=$(connect "$cid3")
[ "$(jq -r '[.[] | select(.channel=="/data/Widget__ChangeEvent")][0].data.payload.Color__c' <<<"$r3")" = blue ] ||
	fail "raw event not delivered: $r3"
pass "raw event published on a new channel and delivered"

# --- retention: 72 h of sim time ---------------------------------------------------------------------
sim -X POST -H 'Content-Type: application/json' -d '{"advance_ms":259300000}' \
	"$SF_SIM_URL/sim/clock" >/dev/null
# Sessions expire on the sim clock too: mint a new token.
TOKEN=$(mint_token)
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || fail "no access token after the clock jump"
hs4=$(handshake)
cid=$(jq -r '.[0].clientId' <<<"$hs4")
old=$(bayeux "[{\"channel\":\"/meta/subscribe\",\"clientId\":\"$cid\",\"subscription\":\"/data/LeadChangeEvent\",\"ext\":{\"replay\":{\"/data/LeadChangeEvent\":$rid}}}]" -b "$JAR")
[ "$(jq -r '.[0].error' <<<"$old")" = \
	"400::The replayId {$rid} you provided was invalid. Please provide a valid ID, -2 to replay all events, or -1 to replay only new events." ] ||
	fail "replay id older than 72 h must be invalid: $old"
pass "replay id older than the 72 h retention -> 400 invalid"

echo "it_sim_cometd: all checks passed"
