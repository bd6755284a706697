#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The guest's /init: mount, load qgroup_rs (its KUnit suites run at load),
# then, by mode (qgroup_rs_mode= on the kernel command line):
#   test   run every scenario script (reset before each), unload the
#          module, scan for leaks with kmemleak, print the report;
#   kunit  only the extra scenarios (the suites ran at load), then as for
#          test;
#   demo   run /demo.sh, then unload and scan as for test;
#   compare  run /compare.sh on every /compare/*.qg (the module against real
#          btrfs on /dev/ram0), then unload and scan as for test;
#   faults every /faults/*.sh as a scenario (the long fault-injection
#          sweep), then as for test;
#   stress /stress.sh as a scenario (make stress), then as for test;
#   fuzz   /scenarios/85-fuzz.sh as a scenario with the length and seed of
#          qgroup_rs_fuzz_cmds= and qgroup_rs_fuzz_seed= and a reset about
#          every 500 commands (make fuzz), then as for test;
#   bench  write `bench` to control (the rows go to the kernel log, which
#          the host reads from the console), unload;
#   shell  an interactive shell on the console; unload and scan on exit.
# Every line this script prints for the host starts with "qgroup_rs-guest: ".
# It ends with `reboot -f`, which ends QEMU (-no-reboot).

export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp

. /scenarios/lib/common.sh	# say, QG
DBG=$QG
mode=${qgroup_rs_mode:-test}

# Leaks of the boot itself are not ours: forget them before loading.
echo clear > /sys/kernel/debug/kmemleak 2>/dev/null

say "mode $mode"
say "insmod begin"
# Module parameters from the kernel command line, as modprobe would take
# them: qgroup_rs.nodesize=65536 -> insmod ... nodesize=65536.
params=""
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	qgroup_rs.*=*) params="$params ${arg#qgroup_rs.}" ;;
	esac
done
insmod /lib/modules/qgroup_rs.ko $params
say "insmod rc=$?"
# For scenarios that unload and load the module again (95-unload.sh).
export QGROUP_RS_PARAMS="$params"

run_scenario() {
	name=$1
	if [ -w "$DBG/control" ]; then
		echo reset > "$DBG/control" || say "reset failed before $name"
	fi
	t0=$(cut -d' ' -f1 /proc/uptime)
	say "scenario begin $name"
	sh "$2" > /tmp/scenario.out 2>&1
	rc=$?
	cat /tmp/scenario.out
	say "scenario end $name rc=$rc (started at ${t0}s, ended at $(cut -d' ' -f1 /proc/uptime)s)"
}

case "$mode" in
kunit)
	# The KUnit suites ran at load; then only the extra scenarios.
	for s in /extra/*.sh; do
		[ -f "$s" ] && run_scenario "extra/${s#/extra/}" "$s"
	done
	;;
test)
	for s in /scenarios/*.sh; do
		[ -f "$s" ] && run_scenario "${s#/scenarios/}" "$s"
	done
	for s in /extra/*.sh; do
		[ -f "$s" ] && run_scenario "extra/${s#/extra/}" "$s"
	done
	;;
demo)
	sh /demo.sh
	;;
compare)
	sh /compare.sh /compare/*.qg
	;;
bench)
	# The TSC is refined about a second into boot: start on the final clock.
	cs=/sys/devices/system/clocksource/clocksource0/current_clocksource
	i=0
	while [ "$(cat $cs)" = tsc-early ] && [ $i -lt 10 ]; do
		sleep 1
		i=$((i + 1))
	done
	say "bench clocksource $(cat $cs)"
	say "bench begin"
	echo bench full > "$DBG/control"
	rc=$?
	say "bench rc=$rc result: $(cat "$DBG/result")"
	;;
faults)
	for s in /faults/*.sh; do
		[ -f "$s" ] && run_scenario "faults/${s#/faults/}" "$s"
	done
	;;
stress)
	run_scenario stress.sh /stress.sh
	;;
fuzz)
	export QGROUP_RS_FUZZ_CMDS=${qgroup_rs_fuzz_cmds:-200000}
	export QGROUP_RS_FUZZ_SEED=${qgroup_rs_fuzz_seed:-1}
	export QGROUP_RS_FUZZ_RESET=500
	run_scenario fuzz.sh /scenarios/85-fuzz.sh
	;;
shell)
	say "shell: the module is loaded; its files are in $DBG. Exit the shell to unload and power off."
	setsid cttyhack sh -l
	;;
esac

say "rmmod begin"
rmmod qgroup_rs
say "rmmod rc=$?"
[ -e "$DBG" ] && say "debugfs directory still present after rmmod"

# kmemleak only reports objects older than 5 s: wait, then scan twice.
# (Not for the bench: its kernel has no kmemleak.)
if [ "$mode" != bench ]; then
	sleep 6
	echo scan > /sys/kernel/debug/kmemleak
	echo scan > /sys/kernel/debug/kmemleak
	say "kmemleak begin"
	cat /sys/kernel/debug/kmemleak
	say "kmemleak end"
fi
say "done"
reboot -f
