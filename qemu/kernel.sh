#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build (or find) the qgroup_rs test kernel, or the bench kernel.
#
#   qemu/kernel.sh [--flavor test|bench] --dir   print the build directory
#   qemu/kernel.sh [--flavor test|bench]         build it if it is not built
#                                                yet, then print it
#
# Flavours: `test` (the default) is the debug kernel of make test / demo /
# shell, from qemu/kernel.config + kunit/kunit.config; `bench` is the kernel
# of make bench, from qemu/bench.config + kunit/kunit.config: the same
# system without lockdep, KASAN, kmemleak, fault injection, btrfs and the
# other debug options. Each flavour has its own hash and its own retention.
#
# The kernel source (Debian's linux-source-7.3 tarball) is extracted once a
# patch set into $QGROUP_RS_CACHE/src/linux-source-7.3-p<patch hash>, and the
# patches of qemu/patches/*.patch (fixes to the kernel's Rust crate that this
# project carries, in git format-patch form) are applied to it there; each
# build lives in $QGROUP_RS_CACHE/build/linux-<version>-<hash>, where the hash
# covers the config fragments, the patches, the toolchain versions and RECIPE
# (bump it when the way the kernel is built here changes), so a change to any
# of them builds a new kernel and nothing else does.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CACHE=${QGROUP_RS_CACHE:-$HOME/.cache/qgroup_rs}
TARBALL=${KSRC_TARBALL:-/usr/src/linux-source-7.3.tar.xz}
LLVM=${LLVM:--19}
FLAVOR=test
if [ "${1:-}" = --flavor ]; then
	FLAVOR=${2:-}
	shift 2 || { echo "kernel: --flavor needs test or bench" >&2; exit 2; }
fi
case "$FLAVOR" in
test)
	FRAGMENTS=("$here/kernel.config" "$here/../kunit/kunit.config")
	PREFIX=linux-7.3.4- ;;
bench)
	FRAGMENTS=("$here/bench.config" "$here/../kunit/kunit.config")
	PREFIX=linux-7.3.4-bench- ;;
*)
	echo "kernel: unknown flavour '$FLAVOR' (test or bench)" >&2
	exit 2 ;;
esac
RECIPE=1
PATCHES=("$here"/patches/*.patch)
[ -f "${PATCHES[0]}" ] || PATCHES=()
patch_hash=$(cat /dev/null "${PATCHES[@]}" | sha256sum | cut -c1-8)
SRC=$CACHE/src/linux-source-7.3-p$patch_hash
export PATH=$HOME/.cargo/bin:$PATH

config_hash() {
	{
		cat "${FRAGMENTS[@]}"
		echo "RECIPE=$RECIPE"
		echo "LLVM=$LLVM"
		rustc --version 2>/dev/null || true
		bindgen --version 2>/dev/null || true
		"clang$LLVM" --version 2>/dev/null | head -1 || true
		ls -l "$TARBALL" 2>/dev/null | awk '{print $5}'
		# The patches change the source: a new patch set is a new kernel.
		[ ${#PATCHES[@]} = 0 ] || echo "PATCHES=$patch_hash"
		# (The test flavour's input is unchanged, so is its hash.)
		[ "$FLAVOR" = test ] || echo "FLAVOR=$FLAVOR"
	} | sha256sum | cut -c1-12
}

OUT=$CACHE/build/$PREFIX$(config_hash)

if [ "${1:-}" = --dir ]; then
	echo "$OUT"
	exit 0
fi

if [ -f "$OUT/.qgroup_rs-built" ]; then
	echo "kernel: cached build $OUT" >&2
	echo "$OUT"
	exit 0
fi

# One kernel build or guest at a time on this machine (2 cores): every
# worktree's builds and guests take the same lock.
mkdir -p "$CACHE"
exec 9>"$CACHE/heavy.lock"
flock 9
if [ -f "$OUT/.qgroup_rs-built" ]; then
	echo "kernel: cached build $OUT (built while waiting)" >&2
	echo "$OUT"
	exit 0
fi

if [ ! -f "$SRC/.qgroup_rs-extracted" ]; then
	echo "kernel: extracting $TARBALL into $SRC" >&2
	rm -rf "$SRC" "$SRC.tmp"
	mkdir -p "$SRC.tmp"
	tar -xf "$TARBALL" -C "$SRC.tmp"
	mv "$SRC.tmp/linux-source-7.3" "$SRC"
	rmdir "$SRC.tmp"
	for p in "${PATCHES[@]}"; do
		echo "kernel: applying $(basename "$p")" >&2
		patch -d "$SRC" -p1 -s --forward < "$p" ||
			{ echo "kernel: $p does not apply to $TARBALL" >&2; exit 1; }
	done
	touch "$SRC/.qgroup_rs-extracted"
	# Sources of older patch sets only take space.
	for old in "$CACHE"/src/linux-source-7.3 "$CACHE"/src/linux-source-7.3-p*; do
		[ -d "$old" ] && [ "$old" != "$SRC" ] && { echo "kernel: removing old source $old" >&2; rm -rf "$old"; }
	done
fi

kmake() { make -s -C "$SRC" O="$OUT" ARCH=x86_64 LLVM="$LLVM" "$@"; }

echo "kernel: configuring the $FLAVOR kernel $OUT (tinyconfig + ${FRAGMENTS[*]})" >&2
rm -rf "$OUT"
mkdir -p "$OUT"
kmake tinyconfig >/dev/null
"$SRC/scripts/kconfig/merge_config.sh" -m -O "$OUT" "$OUT/.config" "${FRAGMENTS[@]}" >/dev/null
kmake olddefconfig >/dev/null

# Every option the fragment asks for must have survived olddefconfig: a
# silently dropped CONFIG_RUST (say, because the toolchain is not usable)
# would otherwise only show up as a confusing module build failure.
bad=0
while read -r line; do
	case "$line" in
	CONFIG_*=*)
		grep -qx "$line" "$OUT/.config" || { echo "kernel: wanted $line, got: $(grep "^${line%%=*}=" "$OUT/.config" || echo 'not set')" >&2; bad=1; } ;;
	"# CONFIG_"*" is not set")
		opt=${line#\# }; opt=${opt%% *}
		! grep -q "^$opt=" "$OUT/.config" || { echo "kernel: wanted $opt off, got $(grep "^$opt=" "$OUT/.config")" >&2; bad=1; } ;;
	esac
done < <(cat "${FRAGMENTS[@]}")
if [ $bad != 0 ]; then
	if ! grep -q '^CONFIG_RUST=y' "$OUT/.config"; then
		echo "kernel: Rust is not available; the kernel says:" >&2
		kmake rustavailable >&2 || true
	fi
	echo "kernel: config fragment not satisfied, see above" >&2
	exit 1
fi

echo "kernel: building Linux 7.3.4 with LLVM$LLVM in $OUT (a few minutes)" >&2
start=$(date +%s)
kmake -j"$(nproc)" all >&2
touch "$OUT/.qgroup_rs-built"
echo "kernel: built in $(( $(date +%s) - start )) s" >&2
# Keep this build and the one before it of the same flavour; older ones
# only take space. (Test builds are linux-7.3.4-<hash>, bench builds
# linux-7.3.4-bench-<hash>: a bench build never evicts a test kernel.)
flavor_of() {
	case "${1##*/}" in
	linux-7.3.4-bench-*) echo bench ;;
	*) echo test ;;
	esac
}
ls -dt "$CACHE"/build/linux-* 2>/dev/null | while read -r d; do
	# (An if, not `&&`: a false test as the loop's last command would
	# fail the pipeline, and with it this script, before it prints $OUT.)
	if [ "$(flavor_of "$d")" = "$FLAVOR" ]; then echo "$d"; fi
done | tail -n +3 | while read -r old; do
	echo "kernel: removing old build $old" >&2
	rm -rf "$old"
done
echo "$OUT"
