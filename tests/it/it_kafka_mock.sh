#!/usr/bin/env bash
# it_kafka_mock: run the Kafka integration tests (it_kafka) against
# sfk-devkafka, librdkafka 2.0.2's mock cluster, which this script starts on
# free loopback ports and stops again. it_kafka itself (run by ctest against
# the real broker from tests/stack/up) prints what the mock cannot do: no
# CreateTopics (topics are auto-created) and no transaction markers (the
# abort test is skipped here).
set -euo pipefail
: "${SFK_SOURCE_DIR:?SFK_SOURCE_DIR must point at the source tree}"
: "${SFK_BIN_DIR:?SFK_BIN_DIR must point at the bin directory of the build}"

STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sfk-it-kafka-mock.XXXXXX")
export STATE_DIR SFK_SOURCE_DIR SFK_BIN_DIR

cleanup() {
	local f pid
	for f in "$STATE_DIR"/pids/*.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		kill "$pid" 2>/dev/null || continue
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	done
	rm -rf "$STATE_DIR"
}
trap cleanup EXIT

# shellcheck source=../stack/lib/common.sh
. "$SFK_SOURCE_DIR/tests/stack/lib/common.sh"
# shellcheck source=../stack/lib/kafka.sh
. "$SFK_SOURCE_DIR/tests/stack/lib/kafka.sh"

env_lines=$(stack_start_kafka_mock) || { echo "it_kafka_mock: sfk-devkafka did not start" >&2; exit 1; }
eval "$env_lines"
echo "it_kafka_mock: running it_kafka against sfk-devkafka at $KAFKA_BOOTSTRAP_SERVERS"
"$SFK_BIN_DIR/it_kafka"
