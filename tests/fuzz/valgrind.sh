#!/usr/bin/env bash
# tests/fuzz/valgrind.sh [--build-dir DIR] [--label L] [-R REGEX] [--jobs J]
#
# Runs the ctest tests of label L (default: unit) of a normal (not ASan)
# build under valgrind memcheck: any invalid read/write, use of uninitialised
# memory or definite leak fails the test. DIR defaults to build-fuzz-gcc
# (configured and built here if missing: cmake -G Ninja, ninja -j2). Prints
# one line per test and the wall time; the valgrind logs of failures are kept
# in DIR/valgrind/. Suppressions: tests/fuzz/valgrind.supp.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$src/build-fuzz-gcc
label=unit
regex=
jobs=2
while [ $# -gt 0 ]; do
	case $1 in
	--build-dir) build=$2; shift 2 ;;
	--label) label=$2; shift 2 ;;
	-R) regex=$2; shift 2 ;;
	--jobs) jobs=$2; shift 2 ;;
	-h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "valgrind.sh: unknown argument $1" >&2; exit 64 ;;
	esac
done
for c in valgrind jq cmake ninja; do
	command -v $c >/dev/null || { echo "valgrind.sh: $c is missing (apt-get install $c)" >&2; exit 69; }
done
if [ ! -f "$build/CMakeCache.txt" ]; then
	cmake -S "$src" -B "$build" -G Ninja >/dev/null
fi
if grep -q '^SFK_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" || grep -q '^SFK_FUZZ:BOOL=ON' "$build/CMakeCache.txt"; then
	echo "valgrind.sh: $build is a sanitizer build; valgrind needs a plain one" >&2
	exit 64
fi
ninja -C "$build" -j2 >/dev/null
out=$build/valgrind
rm -rf "$out"
mkdir -p "$out"
t0=$SECONDS

# name<TAB>workdir<TAB>env (;-separated)<TAB>command (\x1f-separated)
ctest --test-dir "$build" -N -L "$label" ${regex:+-R "$regex"} --show-only=json-v1 |
	jq -r '.tests[] | [.name, (.properties // [] | map(select(.name=="WORKING_DIRECTORY")) | .[0].value // ""),
		(.properties // [] | map(select(.name=="ENVIRONMENT")) | .[0].value // [] | join(";")),
		(.command | join("\u001f"))] | @tsv' >"$out/tests.tsv"

run_one() { # run_one LINE: 0 if clean
	local name wd envs cmd rc=0
	IFS=$'\t' read -r name wd envs cmd <<<"$1"
	local -a argv e=()
	IFS=$'\x1f' read -r -a argv <<<"$cmd"
	[ -n "$envs" ] && IFS=';' read -r -a e <<<"$envs"
	(cd "${wd:-$build}" && env "${e[@]}" valgrind --quiet --error-exitcode=99 \
		--leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
		--track-origins=yes --suppressions="$src/tests/fuzz/valgrind.supp" \
		--log-file="$out/$name.vg" "${argv[@]}" >"$out/$name.out" 2>&1) || rc=$?
	if [ $rc -eq 0 ]; then
		printf 'valgrind %-45s clean\n' "$name"
		rm -f "$out/$name.vg" "$out/$name.out"
	else
		printf 'valgrind %-45s FAIL (exit %s): %s\n' "$name" "$rc" "$out/$name.vg"
		grep -E '^==[0-9]+== (Invalid|Conditional|Use of|.*definitely lost|Syscall)' "$out/$name.vg" |
			head -5 | sed 's/^/    /' || true
		return 1
	fi
}
export -f run_one
export build out src
n=$(grep -c . "$out/tests.tsv" || true)
[ "$n" -gt 0 ] || { echo "valgrind.sh: no test with label $label${regex:+ matching $regex}" >&2; exit 1; }
fail=0
tr '\n' '\0' <"$out/tests.tsv" | xargs -0 -P "$jobs" -I{} bash -c 'run_one "$1"' _ {} || fail=1
echo "valgrind: $n tests, $((SECONDS - t0)) s wall time ($jobs at a time)$([ $fail -eq 0 ] && echo ', all clean' || echo ', FAILURES above')"
exit $fail
