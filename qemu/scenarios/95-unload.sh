#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Unloading (README, "Unloading"): an open debugfs file keeps the module
# loaded (the kernel's debugfs owner patch, qemu/patches/), so closing it
# after `rmmod` can no longer run freed code; `rmmod` during a stress run
# fails and the run completes; a killed stress stops its workers, commits
# and leaves a consistent instance; a stress whose set-up conflicts changes
# nothing; then the module unloads, loads again and works.
# Runs last: it unloads and reloads the module (with the parameters init.sh
# loaded it with, and the KUnit suites filtered out: they ran at the first
# load).
. /scenarios/lib/ktap.sh

plan 21

loaded() {
	[ -e "$QG/control" ] && grep -q '^qgroup_rs ' /proc/modules
}

# state: every read file but result.
state() {
	cat "$QG/qgroups" "$QG/reservations" "$QG/inodes" "$QG/extents" "$QG/mappings" \
		"$QG/status" "$QG/check" "$QG/legacy" "$QG/stats"
}

# An open `result`: rmmod is refused, the file still reads, closing it is
# harmless, and the module answers afterwards.
exec 3< "$QG/result"
rmmod qgroup_rs 2>/dev/null
rc=$?
loaded
same "rmmod with result open is refused" "$rc/$?" "1/0"
read -r line <&3
same "the open result still reads" "$line" ok
exec 3<&-
check_ok "check ok after closing it"

# An open `control` (for writing): refused too; the fd still takes commands.
exec 4> "$QG/control"
rmmod qgroup_rs 2>/dev/null
rc=$?
loaded
same "rmmod with control open is refused" "$rc/$?" "1/0"
echo "quota enable" >&4
same "the open control still takes a command" "$?/$(outcome)" "0/ok"
exec 4<&-

# A stress set-up that conflicts (1/256 exists: the run would create it):
# EEXIST, and nothing of the set-up is left.
quiet qgroup create 1/256
before=$(state)
expect EEXIST stress 1 10 1
same "the refused stress left nothing behind" "$(state)" "$before"
quiet qgroup destroy 1/256

# rmmod and reset while a stress runs: refused (the writer holds control
# open; reset waits for no worker), and the run completes.
( echo "stress 2 4000 7 private" > "$QG/control" ) 2>/dev/null &
bg=$!
usleep 300000
rmmod qgroup_rs 2>/dev/null
rc=$?
run reset
rst=$?
wait $bg
bgs=$?
same "reset during stress is refused (EBUSY)" "$rst" 1
loaded
same "rmmod during stress is refused" "$rc/$?" "1/0"
same "the stress run completed" "$bgs" 0
check_ok "check ok after the stress"

# A killed stress: SIGKILL to the writer stops the workers at their next
# command; the run commits and the write ends (within a minute) with
# EINTR; the instance is consistent and a new run can start.
( echo "stress 4 20000000 9" > "$QG/control" ) 2>/dev/null &
bg=$!
usleep 500000
kill -9 $bg
t=0
while kill -0 $bg 2>/dev/null && [ $t -lt 600 ]; do
	usleep 100000
	t=$((t + 1))
done
kill -0 $bg 2>/dev/null
same "the killed stress writer ended" "$?" 1
wait $bg 2>/dev/null
read -r first errno rest < "$QG/result"
same "its result is EINTR" "$first $errno" "error EINTR"
check_ok "check ok after the killed stress"
expect ok stress 1 100 10 private

# Out of bounds: refused at once.
expect EINVAL stress 64 18446744073709551615 1

# Unload with nothing open: the directory goes; load again (the KUnit
# suites filtered out: they ran at boot); the new instance works.
rmmod qgroup_rs
rc=$?
[ ! -e "$QG" ]
same "rmmod with nothing open succeeds, the directory is gone" "$rc/$?" "0/0"
[ -w /sys/module/kunit/parameters/filter_glob ] &&
	echo "qgroup_rs_reloaded_none.*" > /sys/module/kunit/parameters/filter_glob
insmod /lib/modules/qgroup_rs.ko $QGROUP_RS_PARAMS
same "insmod again" "$?" 0
check_ok "check ok after the reload"
same "the reloaded instance starts with quotas off" "$(cat "$QG/qgroups" | wc -l)" 2
quiet quota enable
quiet write 5 257 0 4K
quiet sync
same "0/5 after a write and sync" "$(qgroup_row 0/5)" "0/5 20480 20480 0 0 --- ---"
