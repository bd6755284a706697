#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The guest side of `make demo`: the two seed scenarios of SPEC §3, the
# flush before EDQUOT of SPEC §1.5a, a snapshot that breaks a limit
# (btrfs/210 + 316) and the quick inherit of btrfs/340, each run once with
# its legacy switch on (the historical bug) and once off (the fix), and the
# btrfs-progs manual's example with full qgroups next to simple quotas, all
# through the debugfs interface. Every line for the user starts with
# "qgroup_rs-demo: " (run.sh shows only those); the verdict line starts with
# "qgroup_rs-guest: demo verdict". The seeds are seeds.sh's, which the
# scenarios 10-seed000.sh and 20-seed001.sh run too.

. /scenarios/lib/common.sh
. /scenarios/lib/seeds.sh
SAY="qgroup_rs-demo: "
verdict=ok

# cmd COMMAND...: run one command, show it with its outcome; returns the
# write's status.
cmd() {
	run "$@"
	status=$?
	say "  \$ $*  ->  $(cat $QG/result)"
	return $status
}

# show WANT COMMAND...: cmd, as the seeds' STEP.
show() {
	shift
	cmd "$@"
}

# tables FILE: save qgroups, reservations, check and stats to FILE.
tables() {
	{
		echo "qgroups:"
		cat $QG/qgroups
		echo "reservations:"
		cat $QG/reservations
		echo "check:"
		cat $QG/check
		echo "stats: $(tr '\n' ' ' < $QG/stats)"
	} > "$1"
}

# side_by_side LEFT RIGHT: two saved tables in columns.
side_by_side() {
	awk -v w=58 'NR == FNR { l[FNR] = $0; n = FNR; next }
		{ r[FNR] = $0; if (FNR > n) n = FNR }
		END { for (i = 1; i <= n; i++) printf "qgroup_rs-demo:   %-" w "s| %s\n", l[i], r[i] }' "$1" "$2"
}

# expect WHAT GOT WANT: one verdict line for the fixed run.
expect() {
	if [ "$2" = "$3" ]; then
		say "  [ok]   $1: $2"
	else
		say "  [FAIL] $1: got '$2', SPEC says '$3'"
		verdict=fail
	fi
}

# seed000_report POINT: what the demo shows of seed 000 besides the commands.
seed000_report() {
	[ "$1" != before-sync ] || say "  before sync, check says: $(tr '\n' ' ' < $QG/check)"
}

say "================================================================"
say "Seed 000 (1d7163677a46): qgroup may_use -> reserved -> excl"
say "  quota enable; qgroup limit -e 10M 0/5; fallocate 5 256+i 0 1M"
say "  (i = 0..19); sync"
say "================================================================"
say "-- buggy run: legacy no_reserved_stage on (allocated but uncommitted"
say "   bytes are invisible to the limit until the commit accounts them)"
echo reset > $QG/control
cmd legacy no_reserved_stage on
seed000 show seed000_report
say "  => $SEED_OK fallocates succeeded, $SEED_EDQUOT failed with EDQUOT"
tables /tmp/s0-buggy
say "-- fixed run: all switches off"
echo reset > $QG/control
seed000 show seed000_report
say "  => $SEED_OK fallocates succeeded, $SEED_EDQUOT failed with EDQUOT"
tables /tmp/s0-fixed
say ""
say "  $(printf '%-58s| %s' 'BUGGY (no_reserved_stage on)' 'FIXED')"
side_by_side /tmp/s0-buggy /tmp/s0-fixed
say ""
say "Seed 000 verdict (fixed run against SPEC §3):"
expect "fallocates that succeed" "$SEED_OK" 9
expect "fallocates refused with EDQUOT" "$SEED_EDQUOT" 11
expect "0/5 after sync" "$(qgroup_row 0/5)" "0/5 9453568 9453568 0 10485760 --- ---"
expect "check" "$(cat $QG/check)" ok

# seed001_report POINT: what the demo shows of seed 001 besides the commands.
seed001_report() {
	[ "$1" = failed-write ] || return 0
	data=$(rsv_row 0/5 | cut -d' ' -f2)
	say "  after the failed write: 0/5 may_use.data = $data; io tree:"
	grep '^5 257 ' $QG/inodes | while read -r line; do say "    $line"; done
	say "  after the failed write, check says: $(tr '\n' ' ' < $QG/check)"
}

say ""
say "================================================================"
say "Seed 001 (c6607553422b): free only what this call's changeset reserved"
say "  quota enable; write 5 257 0 2048; write 5 257 2048 2048 fail=meta; sync"
say "================================================================"
say "-- buggy run: legacy free_ignores_changeset and release_by_length on"
echo reset > $QG/control
cmd legacy free_ignores_changeset on
cmd legacy release_by_length on
seed001 show seed001_report
tables /tmp/s1-buggy
say "-- fixed run: all switches off"
echo reset > $QG/control
seed001 show seed001_report
fixed_data=$data
tables /tmp/s1-fixed
say ""
say "  $(printf '%-58s| %s' 'BUGGY (free_ignores_changeset, release_by_length)' 'FIXED')"
side_by_side /tmp/s1-buggy /tmp/s1-fixed
say ""
say "Seed 001 verdict (fixed run against SPEC §3):"
expect "0/5 may_use.data after the failed write" "$fixed_data" 4096
expect "0/5 rfer / excl after sync" "$(qgroup_row 0/5 | cut -d' ' -f2,3)" "20480 20480"
expect "check" "$(cat $QG/check)" ok
expect "underflows" "$(field stats underflows)" 0

# flush200_report POINT: what the demo shows of the 200 writes.
flush200_report() {
	case $1 in
	writes-done)
		say "  \$ write 5 256+i 0 4K  (i = 0..199)  ->  $SEED_OK ok, $SEED_SHORT short, $SEED_EDQUOT EDQUOT"
		say "  flushes: $(field stats flushes)"
		;;
	synced)
		say "  0/5 after sync: $(qgroup_row 0/5)"
		;;
	esac
}

say ""
say "================================================================"
say "Flush before EDQUOT (c53e9653605d, fstests btrfs/153; SPEC §1.5a)"
say "  quota enable; qgroup limit -e 1M 0/5; 200 x write 5 256+i 0 4K; sync"
say "  Real btrfs 7.3 in this guest: all 200 succeed, 0/5 = 933888 after"
say "  sync (200 x 4096 + 7 tree blocks of 16384; the model charges the"
say "  root only: 835584)."
say "================================================================"
say "-- old kernels: legacy no_edquot_flush on (EDQUOT at once)"
echo reset > $QG/control
cmd legacy no_edquot_flush on
flush200 show flush200_report
old_ok=$SEED_OK
say "-- fixed: a reservation over the limit flushes (writeback + commit) and"
say "   tries once more"
echo reset > $QG/control
flush200 show flush200_report
say ""
say "Flush verdict (against real btrfs):"
expect "writes that succeed with the flush" "$SEED_OK" 200
expect "0/5 after sync" "$(qgroup_row 0/5 | cut -d' ' -f2,3)" "835584 835584"
if [ "$old_ok" -lt 200 ]; then
	say "  [ok]   without the flush only $old_ok of 200 succeed (the early EDQUOT)"
else
	say "  [FAIL] without the flush all 200 succeeded"
	verdict=fail
fi

say ""
say "-- short write: quota enable; qgroup limit -e 2M 0/5; write 5 257 0 3M; sync"
say "   Real btrfs: 2064384 bytes land; 0/5 = 2080768 after sync."
echo reset > $QG/control
cmd quota enable
cmd qgroup limit -e 2M 0/5
cmd write 5 257 0 3M
written=$(sed -n 's/.*written=\([0-9]*\).*/\1/p' $QG/result)
cmd sync
expect "bytes written" "$written" 2064384
expect "0/5 after sync" "$(qgroup_row 0/5 | cut -d' ' -f2,3)" "2080768 2080768"

# snap_limit_demo [SWITCH...]: seeds.sh's snap_limit and its four writes,
# shown. Sets OUTCOMES.
snap_limit_demo() {
	snap_limit show "$@"
	say "  status: $(tr '\n' ' ' < $QG/status)"
	snap_limit_writes
	say "  \$ 4 x (write 258 30i 0 512K; sync)  ->  $OUTCOMES"
	say "  1/100 now: $(qgroup_row 1/100)"
}

say ""
say "================================================================"
say "A snapshot that breaks a limit (fstests btrfs/210 + btrfs/316;"
say "cbab8ade585a, d139ded8b9cd; SPEC §8.3, §8.5)"
say "  256 holds 1 MiB; subvol snapshot 256 258 1/100 (1/100 new, limit"
say "  2 MiB): the inherit cannot be quick, so the numbers are marked"
say "  inconsistent and accounting stops; writes pass the limit commit after"
say "  commit until quota rescan."
say "================================================================"
say "-- before cbab8ade585a: legacy inherit_never_inconsistent on"
snap_limit_demo inherit_never_inconsistent
say "  check says: $(head -2 $QG/check | tr '\n' ' ')"
say "-- before d139ded8b9cd: legacy no_accounting_keeps_rsv on"
snap_limit_demo no_accounting_keeps_rsv
leak_outcomes=$OUTCOMES
say "  reservations: $(rsv_row 0/258)"
say "  check says: $(head -1 $QG/check)"
say "-- fixed"
snap_limit_demo
fixed_outcomes=$OUTCOMES
frozen=$(qgroup_row 1/100 | cut -d' ' -f2)
cmd quota rescan
say "  status: $(tr '\n' ' ' < $QG/status)"
say "  1/100 after the rescan: $(qgroup_row 1/100)"
run write 258 400 0 4K
after_rescan=$(outcome)
say "  \$ write 258 400 0 4K  ->  $(cat $QG/result)"
say ""
say "Snapshot verdict (fixed run against SPEC §8.5):"
expect "writes while accounting is off" "$fixed_outcomes" "ok ok ok ok "
expect "1/100 rfer frozen before the rescan" "$frozen" 0
expect "1/100 rfer / excl after the rescan" "$(qgroup_row 1/100 | cut -d' ' -f2,3)" "3162112 2113536"
expect "the limit holds again" "$after_rescan" EDQUOT
expect "check" "$(cat $QG/check)" ok
expect "with no_accounting_keeps_rsv the leak refuses the 4th write" "$leak_outcomes" "ok ok ok EDQUOT "

# quick340 [SWITCH]: fstests btrfs/340: 0/256 in 1/1 in 2/2, 64 KiB in
# 256, subvol snapshot 256 258 1/1.
quick340() {
	echo reset > $QG/control
	cmd quota enable
	for sw in "$@"; do cmd legacy "$sw" on; done
	for c in "subvol create 256" "qgroup create 1/1" "qgroup create 2/2" \
		"qgroup assign 0/256 1/1" "qgroup assign 1/1 2/2" "write 256 257 0 64K" sync \
		"subvol snapshot 256 258 1/1"; do
		cmd $c
	done
	tables "$TABLE"
}

say ""
say "================================================================"
say "Quick inherit through every ancestor (fstests btrfs/340; 68d4b3fa18d7)"
say "  0/256 in 1/1 in 2/2; subvol snapshot 256 258 1/1: the snapshot's"
say "  root leaf is new to 1/1 and to 2/2."
say "================================================================"
say "-- buggy run: legacy quick_inherit_parent_only on"
TABLE=/tmp/q340-buggy quick340 quick_inherit_parent_only
say "-- fixed run"
TABLE=/tmp/q340-fixed quick340
say ""
say "  $(printf '%-58s| %s' 'BUGGY (quick_inherit_parent_only)' 'FIXED')"
side_by_side /tmp/q340-buggy /tmp/q340-fixed
say ""
say "btrfs/340 verdict (fixed run against SPEC §8.3):"
expect "2/2 after the snapshot" "$(qgroup_row 2/2 | cut -d' ' -f2,3)" "98304 98304"
expect "check" "$(cat $QG/check)" ok

# manual MODE: the btrfs-progs manual's example (ch-quota-intro, "Simple
# quotas"), two 64 KiB files standing for the halves; appends, after each
# step, "rfer/excl of 0/256  rfer/excl of 0/259" to /tmp/manual-MODE.
manual() {
	echo reset > $QG/control
	out=/tmp/manual-${1:-full}
	: > $out
	row() {
		r256=$(qgroup_row 0/256 | cut -d' ' -f2,3 | tr ' ' /)
		r259=$(qgroup_row 0/259 | cut -d' ' -f2,3 | tr ' ' /)
		echo "${r256:--} ${r259:--}" >> $out
	}
	for c in "quota enable $1" "subvol create 256" "write 256 257 0 64K" "write 256 258 0 64K" \
		sync "subvol snapshot 256 259"; do
		cmd $c
	done
	row
	cmd write 259 257 0 64K
	cmd sync
	row
	for c in "unlink 256 257" "unlink 256 258" sync; do cmd $c; done
	row
	echo "$(cat $QG/check)" >> $out
}

say ""
say "================================================================"
say "Full qgroups next to simple quotas (the btrfs-progs manual's example)"
say "  256 holds two 64 KiB files (the halves); snapshot 256 -> 259; 259"
say "  rewrites one half; 256 is emptied. Full qgroups tell shared from"
say "  exclusive bytes at every commit; simple quotas charge the subvolume"
say "  that allocated an extent until its last reference is gone."
say "================================================================"
say "-- full qgroups"
manual
say "-- simple quotas"
manual simple
say ""
say "  $(printf '%-34s %-28s %s' 'rfer/excl after' 'FULL 0/256, 0/259' 'SIMPLE 0/256, 0/259')"
i=0
for step in "snapshot 256 -> 259" "259 rewrites half" "256 emptied"; do
	i=$((i + 1))
	say "  $(printf '%-34s %-28s %s' "$step" "$(sed -n ${i}p /tmp/manual-full)" "$(sed -n ${i}p /tmp/manual-simple)")"
done
say "  (nodesize 16384 is each subvolume's root leaf)"
say ""
say "Simple quotas verdict (fixed run against SPEC §8.6, the manual's conclusion):"
expect "snapshot: 256 keeps its bytes, 259 only its leaf" "$(sed -n 1p /tmp/manual-simple)" "147456/147456 16384/16384"
expect "rewrite: 259 = half + leaf" "$(sed -n 2p /tmp/manual-simple | cut -d' ' -f2)" "81920/81920"
expect "emptied: 256 keeps the half 259 still references" "$(sed -n 3p /tmp/manual-simple | cut -d' ' -f1)" "81920/81920"
expect "full: the emptied 256 holds only its leaf, 259 all it refers to" "$(sed -n 3p /tmp/manual-full)" "16384/16384 147456/147456"
expect "check (full)" "$(sed -n 4p /tmp/manual-full)" ok
expect "check (simple)" "$(sed -n 4p /tmp/manual-simple)" ok

say ""
if [ $verdict = ok ]; then
	say "DEMO PASSED: the fixed runs match SPEC §3 and real btrfs; the legacy runs show the bugs."
else
	say "DEMO FAILED: a fixed run does not match SPEC or real btrfs (see [FAIL] above)."
fi
echo "${GUEST}demo verdict $verdict"
