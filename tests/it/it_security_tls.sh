#!/usr/bin/env bash
# it_security_tls: TLS verification is on by default for every TLS peer.
# One `openssl s_server` with a fresh self-signed certificate stands in for
# Salesforce, Elasticsearch and a Kafka broker:
#   - Salesforce (sfk doctor's JWT login): refused for the certificate; with
#     SF_CA_FILE naming that certificate the TLS handshake passes (the login
#     then fails for another reason: s_server is no OAuth server);
#   - Elasticsearch (sfk-loader's es sink) and Kafka (KAFKA_SECURITY_PROTOCOL=
#     ssl): refused for the certificate, in the loader's log;
#   - turning Kafka verification off takes an explicit setting
#     (KAFKA_ENABLE_SSL_CERTIFICATE_VERIFICATION=false), logged as a warning;
#   - Redis: rediss:// is refused at start (TLS is not built in), never
#     silently downgraded to plain text;
#   - a private key readable by group or others is refused (mode named,
#     chmod 600 suggested), and its body is never printed.
# Needs no shared service.
set -euo pipefail
NAME=it_security_tls
. "$SFK_SOURCE_DIR/tests/it/lib/pipeline.sh"
it_require sfk sfk-loader sfk-worker -- openssl python3 curl
S=$SFK_SOURCE_DIR
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/tls.key" -out "$WORK/tls.crt" -days 1 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null || fail "openssl req"
start s_server openssl s_server -accept "127.0.0.1:$PORT" -cert "$WORK/tls.crt" -key "$WORK/tls.key" -www -quiet
until_true 20 "s_server on $PORT" curl -sk -o /dev/null "https://127.0.0.1:$PORT/"
openssl genrsa -out "$WORK/app.key" 2048 2>/dev/null && chmod 600 "$WORK/app.key"
URL=https://127.0.0.1:$PORT

# Salesforce.
doctor() { # doctor [ENV=V...]: sfk doctor's salesforce.login line
	env -i PATH="$PATH" HOME="$WORK" SF_LOGIN_URL="$URL" SF_TOKEN_URL="$URL/services/oauth2/token" \
		SF_CLIENT_ID=tls-test SF_USERNAME=tls@test SF_PRIVATE_KEY_PATH="$WORK/app.key" "$@" \
		timeout 60 "$SFK_BIN_DIR/sfk" doctor 2>&1 | grep -A1 'salesforce.login' || true
}
out=$(doctor)
grep -Ei 'certificate|SSL peer|curl_60' <<<"$out" >/dev/null || fail "Salesforce login to a self-signed server was not refused for its certificate: $out"
out_ca=$(doctor SF_CA_FILE="$WORK/tls.crt")
grep -E 'FAIL|ok' <<<"$out_ca" >/dev/null || fail "sfk doctor said nothing about the login: $out_ca"
! grep -Ei 'certificate|SSL peer|curl_60' <<<"$out_ca" >/dev/null ||
	fail "with SF_CA_FILE naming the certificate the handshake still failed: $out_ca"
pass "Salesforce: self-signed refused ($(head -1 <<<"$out" | grep -oE 'curl_60|SSL peer[^:]*' | head -1)); trusted with SF_CA_FILE"

# Elasticsearch and Kafka, through the loader.
loader() { # loader LOGNAME SINK [ENV=V...]: the loader against the fake peer
	local log=$1 sink=$2
	shift 2
	mkdir -p "$WORK/flywheel"
	start "$log" env SFK_ADMIN_ADDR=127.0.0.1:0 KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$PORT" \
		KAFKA_SECURITY_PROTOCOL=ssl SFK_LOADER_SINKS="$sink" ES_URL="$URL" FLYWHEEL_DIR="$WORK/flywheel" \
		SFK_LOADER_TOPIC=tls.flywheel SFK_LOADER_GROUP=tls SFK_LOADER_DLQ_TOPIC=tls.dlq \
		SFK_FLYWHEEL_SCHEMA="$S/schemas/flywheel.schema.json" \
		SFK_LOADER_ES_MAPPING="$S/schemas/es_flywheel_index.json" "$@" "$SFK_BIN_DIR/sfk-loader"
}
loader es es
wait_log "$WORK/es.log" 'elasticsearch not ready.*(SSL peer|certificate)' 30 ||
	fail "the loader did not refuse Elasticsearch's self-signed certificate"
kill "${PIDS[-1]}" 2>/dev/null || true
loader kafka jsonl
wait_log "$WORK/kafka.log" 'certificate verify failed' 30 ||
	fail "the loader did not refuse the Kafka broker's self-signed certificate"
kill "${PIDS[-1]}" 2>/dev/null || true
for f in es kafka; do
	grep 'verification is OFF' "$WORK/$f.log" >/dev/null && fail "verification reported off without a setting ($f)"
done
pass "Elasticsearch and Kafka: self-signed certificates refused by default"

loader noverify jsonl KAFKA_ENABLE_SSL_CERTIFICATE_VERIFICATION=false
wait_log "$WORK/noverify.log" '"level":"warn".*kafka TLS verification is OFF.*enable.ssl.certificate.verification' 30 ||
	fail "turning Kafka verification off was not logged"
kill "${PIDS[-1]}" 2>/dev/null || true
pass "Kafka: KAFKA_ENABLE_SSL_CERTIFICATE_VERIFICATION=false logged as a warning"

# Redis: no TLS, no silent plain text.
rc=0
env -i PATH="$PATH" REDIS_URL=rediss://127.0.0.1:6379 KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1 \
	SF_CLIENT_ID=x SF_USERNAME=x SF_PRIVATE_KEY_PATH="$WORK/app.key" SF_LOGIN_URL="$URL" \
	SFK_ADMIN_ADDR=127.0.0.1:0 SFK_WORKLOADS_POLICY="$S/policies/workloads.json" \
	SFK_WORKLOADS_SCHEMA="$S/schemas/workloads.schema.json" \
	SFK_ROUTING_POLICY="$S/policies/routing_policy.json" \
	SFK_ROUTING_POLICY_SCHEMA="$S/schemas/routing_policy.schema.json" \
	timeout 30 "$SFK_BIN_DIR/sfk-worker" --workload lead.route >"$WORK/redis.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "sfk-worker with rediss:// did not stop (exit $rc)"
grep -F 'TLS is not built in' "$WORK/redis.log" >/dev/null || fail "rediss:// refused without saying why: $(tail -3 "$WORK/redis.log")"
pass "Redis: rediss:// refused at start (exit $rc): TLS is not built in"

# The private key file: group/other access refused.
grep -v '^-----' "$WORK/app.key" | awk 'length($0) >= 20' >"$WORK/key.pat"
[ -s "$WORK/key.pat" ] || fail "cannot read the key body"
for mode in 644 640 604; do
	chmod "$mode" "$WORK/app.key"
	out=$(doctor)
	grep -F "mode 0$mode" <<<"$out" | grep -F 'chmod 600' >/dev/null ||
		fail "a key of mode $mode was not refused by its mode: $out"
	grep -F -f "$WORK/key.pat" <<<"$out" >/dev/null && fail "the key body appears in the output"
done
chmod 600 "$WORK/app.key"
pass "private key readable by group/others (644, 640, 604) refused: chmod 600 named"
