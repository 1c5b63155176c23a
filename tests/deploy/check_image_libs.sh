#!/usr/bin/env bash
# tests/deploy/check_image_libs.sh [BIN_DIR]: the Dockerfile's runtime stage installs every shared
# library the binaries need, and nothing they do not.
#
# No container engine runs here, so this compares texts: SFK_RUNTIME_PACKAGES in the Dockerfile's
# runtime stage against `ldd` of the built binaries (BIN_DIR, else $SFK_BIN_DIR, else a build into
# $SFK_SOURCE_DIR/build; SFK_DOCKERFILE overrides the Dockerfile). Each library is mapped to its
# Debian package through dpkg's file lists (as `dpkg -S` does). A package is
# covered when it is listed, or is a dependency (Depends/Pre-Depends, recursively, from this
# machine's dpkg database: the same Debian release as the image) of a listed package or of libc6
# (in every Debian base image). Fails on any uncovered package, and on a listed package that
# provides none of the needed libraries (except ca-certificates).
set -euo pipefail

src=${SFK_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
bin=${1:-${SFK_BIN_DIR:-}}
binaries=(sfk-bridge sfk-worker sfk-loader sfk)
allowed_extra=(ca-certificates)

if [ -z "$bin" ]; then
	bin=$src/build/bin
	if [ ! -x "$bin/sfk-bridge" ]; then
		cmake -S "$src" -B "$src/build" -G Ninja >/dev/null
		targets=$(ninja -C "$src/build" -t targets all | sed -n 's/^\(sfk[a-z-]*\): phony$/\1/p')
		want=()
		for b in "${binaries[@]}"; do grep -qx "$b" <<<"$targets" && want+=("$b"); done
		ninja -C "$src/build" "${want[@]}" >/dev/null
	fi
fi

dockerfile=${SFK_DOCKERFILE:-$src/Dockerfile}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sfk-image-libs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
listed=$(sed -n 's/^ARG SFK_RUNTIME_PACKAGES="\(.*\)"$/\1/p' "$dockerfile")
[ -n "$listed" ] || { echo "FAIL no ARG SFK_RUNTIME_PACKAGES=\"...\" in $dockerfile"; exit 1; }
grep -q '^FROM debian:${DEBIAN_RELEASE}-slim AS runtime' "$dockerfile" ||
	{ echo "FAIL the runtime stage is not debian:<release>-slim"; exit 1; }
# every product binary is built and installed; the image runs as a non-root user
for b in "${binaries[@]}"; do
	grep -qE "^ && ninja -C /build( [a-z-]+)* $b( |$)" "$dockerfile" &&
		grep -qE "^ && install -m 0755 .*/build/bin/$b( |$)" "$dockerfile" ||
		{ echo "FAIL the Dockerfile does not build and install $b"; exit 1; }
done
user=$(awk '/^FROM /{u=""} /^USER /{u=$2} END{print u}' "$dockerfile")
case ${user%%:*} in "" | 0 | root) echo "FAIL the runtime stage runs as root (USER '$user')"; exit 1 ;; esac
release=$(sed -n 's/^ARG DEBIAN_RELEASE=//p' "$dockerfile")
here_release=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ "$release" = "$here_release" ] ||
	echo "WARN image release $release, this machine $here_release: package names may differ"

# Packages behind every library the built binaries load. One pass over dpkg's file lists
# (what `dpkg -S` reads) for all libraries at once; /lib and /usr/lib are the same (usrmerge).
declare -A need=() # package -> libraries
found=()
: > "$tmp/libs"
for b in "${binaries[@]}"; do
	[ -x "$bin/$b" ] || continue
	found+=("$b")
	ldd "$bin/$b" | awk '/=> \//{print $3} /^\t\/.*ld-linux/{print $1}' >> "$tmp/libs"
done
[ ${#found[@]} -gt 0 ] || { echo "FAIL no binary of ${binaries[*]} in $bin"; exit 1; }
sort -u "$tmp/libs" -o "$tmp/libs"
while read -r lib; do
	for p in "$lib" "$(readlink -f "$lib")"; do
		echo "$p"
		case $p in /usr/lib/*) echo "${p#/usr}" ;; /lib/* | /lib64/*) echo "/usr$p" ;; esac
	done
done < "$tmp/libs" | sort -u > "$tmp/patterns"
grep -HxF -f "$tmp/patterns" /var/lib/dpkg/info/*.list > "$tmp/owners" || true
while read -r lib; do
	real=$(readlink -f "$lib")
	# lines: /var/lib/dpkg/info/<package>[:<arch>].list:<path>
	pkg=$(awk -v a="$lib" -v b="$real" '{i = index($0, ".list:"); f = substr($0, i + 6)}
		f==a || f==b || f=="/usr"a || f=="/usr"b || "/usr"f==a || "/usr"f==b {print substr($0, 1, i + 4); exit}' "$tmp/owners")
	pkg=$(basename "${pkg:-}" .list)
	pkg=${pkg%%:*}
	[ -n "$pkg" ] || { echo "FAIL $lib belongs to no Debian package"; exit 1; }
	need[$pkg]="${need[$pkg]:-} $(basename "$lib")"
done < "$tmp/libs"

# Dependency closure of the listed packages (+ libc6), from the local dpkg database.
declare -A deps_of=() closure=()
while IFS='|' read -r p d; do
	deps_of[$p]=$d
done < <(dpkg-query -W -f='${Package}|${Depends}, ${Pre-Depends}\n')
queue=(libc6 $listed)
while [ ${#queue[@]} -gt 0 ]; do
	p=${queue[0]%%:*}
	queue=("${queue[@]:1}")
	[ -n "${closure[$p]:-}" ] && continue
	closure[$p]=1
	# "a (>= 1) | b, c" -> a c (first alternative; versions dropped)
	for d in $(sed 's/([^)]*)//g; s/|[^,]*//g; s/,/ /g' <<<"${deps_of[$p]:-}"); do
		[ -z "${closure[${d%%:*}]:-}" ] && queue+=("$d")
	done
done

rc=0
echo "image libs: binaries ${found[*]}; runtime packages: $listed; USER $user"
for pkg in $(printf '%s\n' "${!need[@]}" | sort); do
	if [[ " $listed " == *" $pkg "* ]]; then
		echo "  listed   $pkg:${need[$pkg]}"
	elif [ -n "${closure[$pkg]:-}" ]; then
		echo "  via deps $pkg:${need[$pkg]}"
	else
		echo "FAIL missing package $pkg (needed for${need[$pkg]}): add it to SFK_RUNTIME_PACKAGES"
		rc=1
	fi
done
for pkg in $listed; do
	[ -n "${need[$pkg]:-}" ] && continue
	[[ " ${allowed_extra[*]} " == *" $pkg "* ]] && { echo "  extra    $pkg (allowed)"; continue; }
	echo "FAIL $pkg is listed but no binary loads a library from it"
	rc=1
done
missing_bins=()
for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || missing_bins+=("$b"); done
[ ${#missing_bins[@]} -eq 0 ] || echo "NOTE not built, not checked: ${missing_bins[*]}"
exit $rc
