#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the qgroup_rs test guest.
#
#   qemu/run.sh MODE KDIR BUILD [SCENARIOS_DIR] [TIMEOUT]
#
# MODE is test (judge the console log, exit non-zero on any failure), kunit
# (the KUnit suites only, judged as test), demo
# (print the demo and judge it the same way), compare (print the comparison
# with real btrfs, judge it the same way), shell (interactive) or bench
# (run the `bench` command; qemu/bench.py prints the table and writes
# BUILD/bench.csv and BUILD/bench.png).
# The initramfs holds busybox-static, the module, qemu/init.sh as /init, the
# scenario scripts of qemu/scenarios/ and, with SCENARIOS_DIR, that folder's
# *.sh as extra scenarios (in compare mode: that folder's *.qg instead of
# qemu/compare/*.qg); for the comparison with real btrfs also mkfs.btrfs,
# btrfs and xfs_io from the host with every library ldd names,
# build/btrfs_commit (qemu/btrfs_commit.c, static), qemu/compare.sh and the
# comparison scenarios qemu/compare/*.qg. Extra kernel arguments:
# QGROUP_RS_APPEND; the module built for another kernel tree (make bench):
# QGROUP_RS_KO.
# Modes faults (the long fault-injection sweep: every qemu/faults/*.sh as a
# scenario, judged as test), stress (qemu/stress.sh as a scenario, judged
# as test; make stress prints the table with qemu/stress_table.py) and fuzz
# (the long run of qemu/scenarios/85-fuzz.sh, judged as test); the image
# also holds qemu/faults/, qemu/stress.sh and build/qgroup_rs_fuzz
# (qemu/fuzz.c, static) as /bin/qgroup_rs_fuzz.
# Environment: QEMU_SMP (virtual CPUs, default 2), QEMU_MEM (MiB, default
# 1024), LOG_TAG (appended to the console log's name, e.g. -smp4).
set -euo pipefail

mode=$1 kdir=$2 build=$3 extra=${4:-} timeout=${5:-600}
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
mkdir -p "$build"
log=$build/console-$mode${LOG_TAG:-}.log
smp=${QEMU_SMP:-2}
mem=${QEMU_MEM:-1024}
# One initramfs per mode: a bench and a test of the same worktree may wait
# for the machine at the same time.
cpio=$build/initramfs-$mode${LOG_TAG:-}.cpio
list=$build/initramfs-$mode${LOG_TAG:-}.list
busybox=${BUSYBOX:-/bin/busybox}
ko=${QGROUP_RS_KO:-$top/qgroup_rs.ko}

[ -f "$ko" ] || { echo "run: $ko is missing; run make" >&2; exit 1; }
[ -x "$kdir/usr/gen_init_cpio" ] || { echo "run: $kdir/usr/gen_init_cpio is missing (CONFIG_BLK_DEV_INITRD)" >&2; exit 1; }
if [ -n "$extra" ] && [ ! -d "$extra" ]; then
	echo "run: $([ "$mode" = compare ] && echo COMPARE || echo SCENARIOS)=$extra is not a directory" >&2
	exit 1
fi

# Real btrfs tools for the comparison (qemu/deps.sh installs them), the
# libraries and loader they need, and the static commit helper.
tools=()
for t in mkfs.btrfs btrfs xfs_io; do
	p=$(PATH=/usr/sbin:/sbin:/usr/bin:/bin:$PATH command -v $t) ||
		{ echo "run: $t is missing (btrfs-progs, xfsprogs: run qemu/deps.sh)" >&2; exit 1; }
	tools+=("$p")
done
libs=$(ldd "${tools[@]}" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $1 !~ /:$/ { print $1 }' | sort -u)
commit_helper=$build/btrfs_commit
if [ ! -x "$commit_helper" ] || [ "$here/btrfs_commit.c" -nt "$commit_helper" ]; then
	gcc -static -O2 -Wall -o "$commit_helper" "$here/btrfs_commit.c" ||
		{ echo "run: cannot build $commit_helper (gcc, libc6-dev: run qemu/deps.sh)" >&2; exit 1; }
fi

# The command fuzzer of 85-fuzz.sh and make fuzz, static as well.
fuzz_helper=$build/qgroup_rs_fuzz
if [ ! -x "$fuzz_helper" ] || [ "$here/fuzz.c" -nt "$fuzz_helper" ]; then
	gcc -static -O2 -Wall -o "$fuzz_helper" "$here/fuzz.c" ||
		{ echo "run: cannot build $fuzz_helper (gcc, libc6-dev: run qemu/deps.sh)" >&2; exit 1; }
fi

{
	for d in /bin /dev /proc /sys /tmp /lib /lib/modules /scenarios /extra /mnt /etc /compare /faults; do
		echo "dir $d 0755 0 0"
	done
	echo "slink /etc/mtab /proc/mounts 0777 0 0"
	for t in "${tools[@]}"; do
		echo "file /bin/$(basename "$t") $t 0755 0 0"
	done
	echo "file /bin/btrfs_commit $commit_helper 0755 0 0"
	echo "file /bin/qgroup_rs_fuzz $fuzz_helper 0755 0 0"
	for l in $libs; do
		d=$(dirname "$l") parents=""
		while [ "$d" != / ]; do parents="$d $parents"; d=$(dirname "$d"); done
		for d in $parents; do echo "dir $d 0755 0 0"; done
		echo "file $l $(readlink -f "$l") 0755 0 0"
	done
	echo "file /compare.sh $here/compare.sh 0755 0 0"
	cdir=$here/compare
	[ "$mode" = compare ] && [ -n "$extra" ] && cdir=$(readlink -f "$extra")
	for f in "$cdir"/*.qg; do
		[ -f "$f" ] && echo "file /compare/$(basename "$f") $f 0644 0 0"
	done
	echo "nod /dev/console 0600 0 0 c 5 1"
	echo "file /bin/busybox $busybox 0755 0 0"
	for applet in $("$busybox" --list); do
		[ "$applet" = busybox ] || echo "slink /bin/$applet busybox 0777 0 0"
	done
	echo "file /init $here/init.sh 0755 0 0"
	echo "file /demo.sh $here/demo.sh 0755 0 0"
	echo "file /stress.sh $here/stress.sh 0755 0 0"
	echo "file /lib/modules/qgroup_rs.ko $ko 0644 0 0"
	echo "dir /scenarios/lib 0755 0 0"
	for f in "$here"/scenarios/lib/*.sh; do
		[ -f "$f" ] && echo "file /scenarios/lib/$(basename "$f") $f 0644 0 0"
	done
	for f in "$here"/scenarios/*.sh; do
		[ -f "$f" ] && echo "file /scenarios/$(basename "$f") $f 0755 0 0"
	done
	for f in "$here"/faults/*.sh; do
		[ -f "$f" ] && echo "file /faults/$(basename "$f") $f 0755 0 0"
	done
	if [ -n "$extra" ] && [ "$mode" != compare ]; then
		for f in "$extra"/*.sh; do
			[ -f "$f" ] && echo "file /extra/$(basename "$f") $(readlink -f "$f") 0755 0 0"
		done
	fi
} > "$list"
# gen_init_cpio wants each directory once, before what it holds.
awk '!($1 == "dir" && seen[$2]++)' "$list" > "$list.uniq" && mv "$list.uniq" "$list"
"$kdir/usr/gen_init_cpio" "$list" > "$cpio"

# KUnit runs at module load for `test` only: demo and shell start fast
# (QGROUP_RS_APPEND=kunit.enable=1 turns it back on).
kunit=""
[ "$mode" = test ] || [ "$mode" = kunit ] || kunit="kunit.enable=0"
# The fault sweeps (qemu/scenarios/lib/faults.sh) fail only kmalloc-family
# slab allocations (and page allocations): mark those caches for failslab's
# cache filter, so kmemleak's own metadata cache (which falls back to an
# emergency pool and would hide every second point) is never failed.
failslab=""
case "$mode" in test | faults) failslab="slab_debug=A,kmalloc-*" ;; esac
# la57=off: with 5-level paging this KASAN kernel, under TCG, sometimes
# reports a wild-memory-access in an interrupt taken early in boot (seen in
# about 1 boot in 10 on a loaded machine, never with 4-level paging).
qemu=(qemu-system-x86_64 -accel tcg -cpu max,la57=off -smp "$smp" -m "$mem" -nographic -no-reboot
      -kernel "$kdir/arch/x86/boot/bzImage" -initrd "$cpio"
      -append "console=ttyS0 panic=-1 oops=panic qgroup_rs_mode=$mode $kunit $failslab ${QGROUP_RS_APPEND:-}")

suites=()
for s in $(grep -ho 'kunit_tests([a-z0-9_]*)' "$top"/kunit/*.rs "$top"/src/*.rs 2>/dev/null | sed 's/kunit_tests(\(.*\))/\1/' | sort -u); do
	suites+=(--suite "$s")
done


# One guest or kernel build at a time on this machine (see qemu/kernel.sh).
cache=${QGROUP_RS_CACHE:-$HOME/.cache/qgroup_rs}
mkdir -p "$cache"
exec 9>"$cache/heavy.lock"
flock 9
if [ "$mode" = shell ]; then
	exec "${qemu[@]}"
fi
echo "run: booting the guest ($mode), console log: $log" >&2
start=$(date +%s)
rc=0
if [ "$mode" = demo ] || [ "$mode" = compare ]; then
	set +e
	timeout -k 10 "$timeout" "${qemu[@]}" < /dev/null 2>&1 | tee "$log" |
		sed -n "s/\r\$//; s/^qgroup_rs-$mode: \{0,1\}//p"
	rc=${PIPESTATUS[0]}
	set -e
	suites=()
elif [ "$mode" = bench ]; then
	timeout -k 10 "$timeout" "${qemu[@]}" < /dev/null > "$log" 2>&1 || rc=$?
	echo "run: guest ran $(( $(date +%s) - start )) s" >&2
	exec python3 "$here/bench.py" "$log" --rc "$rc" --timeout "$timeout" --out "$build"
else
	timeout -k 10 "$timeout" "${qemu[@]}" < /dev/null > "$log" 2>&1 || rc=$?
fi
echo "run: guest ran $(( $(date +%s) - start )) s" >&2
# Fault sweeps (qemu/scenarios/lib/faults.sh): in faults mode one line a
# sweep; in every mode the totals.
if grep -q '^# fi-total ' "$log"; then
	if [ "$mode" = faults ]; then
		echo "Fault sweeps (points: fault-injection points the unfaulted command passed):"
		sed -n 's/\r$//; s/^# fi: /  /p' "$log"
	fi
	sed -n 's/\r$//; s/^# fi-total //p' "$log" |
		awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); t[kv[1]] += kv[2] } }
		     END { printf "Faults: %d allocation failures injected in %d sweeps (%d absorbed by a fallback), %d broke all-or-nothing\n", t["injected"], t["sweeps"], t["absorbed"], t["broken"] }'
fi
# KUnit runs only in test and kunit modes: no suite to ask for otherwise.
[ "$mode" = test ] || [ "$mode" = kunit ] || suites=()
python3 "$here/judge.py" "$log" --kdir "$kdir" --rc "$rc" --timeout "$timeout" --mode "$mode" "${suites[@]}"
