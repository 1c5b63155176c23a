#!/usr/bin/env bash
# tests/bench/sf_client.sh [BUILD_DIR] - Salesforce client benchmark against sfk-sim.
#
# Prints API calls per 1,000 record updates through sObject Collections vs one
# PATCH per record, and requests/s through the keep-alive pool vs a new
# connection per request. Uses the running stack if SF_SIM_URL is set, else
# starts one (tests/stack/up --sim) and stops it afterwards.
# The C driver (tests/bench/sf_bench.c) is compiled here against the build's
# libsfk_common.a, so no CMake target is needed.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-${SFK_BUILD_DIR:-$src/build}}
lib=$build/common/libsfk_common.a
[ -f "$lib" ] || { echo "sf_client.sh: $lib not found: build first (ninja -C $build)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sf_bench.XXXXXX")
started=0
cleanup() {
	[ $started = 1 ] && "$src/tests/stack/down" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# shellcheck disable=SC2046
cc -std=c11 -O2 -D_GNU_SOURCE -I"$src/common" -o "$work/sf_bench" "$src/tests/bench/sf_bench.c" \
	"$lib" $(pkg-config --cflags --libs libcurl jansson openssl hiredis libmicrohttpd rdkafka) \
	-lpthread -lm

if [ -z "${SF_SIM_URL:-}" ]; then
	export SFK_BIN_DIR=${SFK_BIN_DIR:-$build/bin}
	eval "$("$src/tests/stack/up" --sim)"
	started=1
fi

echo "== API calls per record updates (collections vs one PATCH each)"
"$work/sf_bench" calls "${SF_BENCH_RECORDS:-1000}"
echo "== connection reuse"
"$work/sf_bench" rps "${SF_BENCH_REQUESTS:-500}"
