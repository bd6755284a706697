#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Install everything qgroup_rs needs on a Debian 12 (bookworm) machine:
#   - LLVM 19 (clang, lld, llvm, libclang) and the kernel build dependencies,
#   - busybox-static and qemu-system-x86 for the test guest, btrfs-progs and
#     xfsprogs (xfs_io) copied into it for make compare, gnuplot for make bench,
#   - btrfs-progs >= 6.7 (simple quotas: `btrfs quota enable --simple`) from
#     bookworm-backports (6.14), upgrading bookworm's 6.2,
#   - rust-src through rustup and bindgen-cli (pinned) through cargo,
#   - Debian's linux-source-7.3 (Linux 7.3.4) from trixie-backports, with a
#     low apt pin so that nothing else on the machine is upgraded from there.
#
# Idempotent: every step checks first and says what it does. When not run as
# root it prints the exact commands to run instead.
set -euo pipefail

BINDGEN_VERSION=${BINDGEN_VERSION:-0.72.1}
KSRC_PKG=linux-source-7.3
KSRC_TARBALL=/usr/src/linux-source-7.3.tar.xz
# NEED_KSRC=0 (make does this with KDIR=): a kernel tree is given, the
# Debian kernel source is not needed.
NEED_KSRC=${NEED_KSRC:-1}
APT_PKGS=(clang-19 lld-19 llvm-19 libclang-19-dev busybox-static
	  flex bison bc libelf-dev libssl-dev cpio make python3 xz-utils
	  ca-certificates curl gcc libc6-dev patch
	  btrfs-progs xfsprogs gnuplot-nox)
# These machines ship qemu-utils from bookworm-backports; bookworm's own
# qemu-system-x86 (7.2) conflicts with it, so QEMU comes from there too.
QEMU_PKGS=(qemu-system-x86)
# Packages whose bookworm version is too old, with the least version needed:
# installed (or upgraded) from bookworm-backports.
BPO_MIN=(btrfs-progs=6.7)
SRC_LIST=/etc/apt/sources.list.d/qgroup_rs-backports.sources
PIN_FILE=/etc/apt/preferences.d/qgroup_rs-backports

say() { echo "deps: $*"; }

# too_old: the packages of BPO_MIN not installed at their least version.
too_old() {
	local pv p v have
	for pv in "${BPO_MIN[@]}"; do
		p=${pv%%=*}
		v=${pv#*=}
		have=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null) || have=
		{ [ -n "$have" ] && dpkg --compare-versions "$have" ge "$v"; } || echo "$p"
	done
}

# --check: exit 0 when everything is installed, 1 otherwise; change nothing.
if [ "${1:-}" = --check ]; then
	[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
	for p in "${APT_PKGS[@]}" "${QEMU_PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || exit 1
	done
	[ "$NEED_KSRC" = 0 ] || [ -f "$KSRC_TARBALL" ] || exit 1
	rustup component list --installed 2>/dev/null | grep -q '^rust-src' || exit 1
	bindgen --version 2>/dev/null | grep -q "$BINDGEN_VERSION" || exit 1
	[ -z "$(too_old)" ] || exit 1
	exit 0
fi

write_sources() {
	cat <<-X
	Types: deb
	URIs: http://deb.debian.org/debian
	Suites: bookworm-backports
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-bookworm-automatic.gpg

	Types: deb
	URIs: http://deb.debian.org/debian
	Suites: trixie-backports
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-trixie-automatic.gpg
	X
}

write_pin() {
	printf 'Package: *\nPin: release n=trixie-backports\nPin-Priority: 100\n\n'
	printf 'Package: *\nPin: release n=bookworm-backports\nPin-Priority: 100\n'
}

missing_pkgs() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			echo "$p"
	done
}

if [ "$(id -u)" != 0 ]; then
	miss=$(missing_pkgs "${APT_PKGS[@]}" | tr '\n' ' ')
	qmiss=$(missing_pkgs "${QEMU_PKGS[@]}" | tr '\n' ' ')
	qmiss="$qmiss$(too_old | tr '\n' ' ')"
	ksrc_missing=0
	[ "$NEED_KSRC" = 0 ] || [ -f "$KSRC_TARBALL" ] || ksrc_missing=1
	if [ -n "$miss$qmiss" ] || [ $ksrc_missing = 1 ]; then
		echo "deps: not root and system packages are missing. As root, run:" >&2
		echo "  cat > $SRC_LIST <<'X'" >&2
		write_sources >&2
		echo "X" >&2
		echo "  cat > $PIN_FILE <<'X'" >&2
		write_pin >&2
		echo "X" >&2
		echo "  apt-get update" >&2
		[ -z "$miss" ] || echo "  apt-get install -y --no-install-recommends $miss" >&2
		[ -z "$qmiss" ] || echo "  apt-get install -y --no-install-recommends -t bookworm-backports $qmiss" >&2
		[ $ksrc_missing = 0 ] || echo "  apt-get install -y --no-install-recommends -t trixie-backports $KSRC_PKG" >&2
		echo "then run 'make deps' again." >&2
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive

# System packages: only as root (a non-root run got here only because they
# are all present).
if [ "$(id -u)" = 0 ]; then
	# 1. bookworm-backports and trixie-backports, pinned low (100): only what we
	#    ask for by name with -t comes from there; nothing installed is upgraded.
	if [ ! -f "$SRC_LIST" ]; then
		say "adding bookworm-backports and trixie-backports ($SRC_LIST), pin priority 100"
		write_sources > "$SRC_LIST"
		rm -f /var/lib/apt/periodic/qgroup_rs-updated
	fi
	if [ ! -f "$PIN_FILE" ]; then
		write_pin > "$PIN_FILE"
	fi

	need_update=0
	[ -f /var/lib/apt/periodic/qgroup_rs-updated ] || need_update=1

	miss=$(missing_pkgs "${APT_PKGS[@]}" | tr '\n' ' ')
	qmiss=$(missing_pkgs "${QEMU_PKGS[@]}" | tr '\n' ' ')
	old=$(too_old | tr '\n' ' ')
	if [ -n "$miss$qmiss$old" ] || { [ "$NEED_KSRC" = 1 ] && [ ! -f "$KSRC_TARBALL" ]; }; then
		if [ $need_update = 1 ]; then
			say "apt-get update"
			apt-get update -q
			mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/qgroup_rs-updated
		fi
	fi
	if [ -n "$miss" ]; then
		say "installing from bookworm: $miss"
		# shellcheck disable=SC2086
		apt-get install -y -q --no-install-recommends $miss
	else
		say "Debian packages: all present"
	fi
	if [ -n "$qmiss" ]; then
		say "installing from bookworm-backports: $qmiss"
		# shellcheck disable=SC2086
		apt-get install -y -q --no-install-recommends -t bookworm-backports $qmiss
	fi
	if [ -n "$old" ]; then
		say "installing from bookworm-backports (newer than bookworm's): $old"
		# shellcheck disable=SC2086
		apt-get install -y -q --no-install-recommends -t bookworm-backports $old
	else
		say "${BPO_MIN[*]}: new enough"
	fi
	if [ "$NEED_KSRC" = 1 ] && [ ! -f "$KSRC_TARBALL" ]; then
		say "installing $KSRC_PKG from trixie-backports"
		apt-get install -y -q --no-install-recommends -t trixie-backports "$KSRC_PKG"
	else
		say "$KSRC_PKG: present ($KSRC_TARBALL)"
	fi
fi

# 2. Rust: rustup's toolchain with rust-src, and bindgen-cli.
if [ -f "$HOME/.cargo/env" ]; then
	# shellcheck disable=SC1091
	. "$HOME/.cargo/env"
fi
if ! command -v rustup >/dev/null; then
	say "installing rustup (minimal profile, stable)"
	curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal || {
		echo "deps: could not install rustup; install it (https://rustup.rs) and run 'make deps' again" >&2
		exit 1
	}
	# shellcheck disable=SC1091
	. "$HOME/.cargo/env"
fi
for comp in rust-src rustfmt clippy; do
	if ! rustup component list --installed | grep -q "^$comp"; then
		say "rustup component add $comp"
		rustup component add "$comp"
	fi
done
if ! bindgen --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
	say "cargo install --locked bindgen-cli@$BINDGEN_VERSION"
	cargo install --locked "bindgen-cli@$BINDGEN_VERSION"
else
	say "bindgen $BINDGEN_VERSION: present"
fi
say "done"
