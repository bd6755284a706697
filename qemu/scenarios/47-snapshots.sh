#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Snapshots and their legacy bugs (SPEC §8.3, §8.5, §8.7), each fixed run
# next to the buggy one:
# - fstests btrfs/340: a quick inherit through two levels
#   (quick_inherit_parent_only);
# - fstests btrfs/210 + 316: a snapshot into a new qgroup with a limit
#   marks the numbers inconsistent and stops accounting, so writes pass the
#   limit commit after commit until `quota rescan` (fixed); before the fixes
#   the numbers were silently wrong (inherit_never_inconsistent) or the
#   reservations leaked (no_accounting_keeps_rsv);
# - fstests btrfs/171: a rescan after a childless qgroup lost its member
#   (rescan_skips_childless).
. /scenarios/lib/ktap.sh
. /scenarios/lib/seeds.sh

plan 21

# btrfs/340.
two_levels() {
	echo reset > $QG/control
	for c in "quota enable" "subvol create 256" "qgroup create 1/1" "qgroup create 2/2" \
		"qgroup assign 0/256 1/1" "qgroup assign 1/1 2/2" "write 256 257 0 64K" sync; do
		quiet $c
	done
}
two_levels
expect ok subvol snapshot 256 258 1/1
same "340 fixed: 2/2 gains the snapshot's leaf" "$(qgroup_row 2/2)" "2/2 98304 98304 0 0 --- 1/1"
check_ok "340 fixed: check ok"
two_levels
quiet legacy quick_inherit_parent_only on
expect ok subvol snapshot 256 258 1/1
same "340 buggy: 2/2 misses it" "$(qgroup_row 2/2)" "2/2 81920 81920 0 0 --- 1/1"
check_has "340 buggy: check sees it" "qgroup 2/2 rfer is 81920, expected 98304"

# btrfs/210 + 316 (seeds.sh).
snap_limit step
same "210 fixed: the snapshot marks the numbers inconsistent" "$(cat $QG/status | tr '\n' ' ')" \
	"mode full inconsistent 1 accounting off "
snap_limit_writes
same "210 fixed: with accounting off, 2 MiB of writes pass the 2 MiB limit" "$OUTCOMES" "ok ok ok ok "
same "210 fixed: 1/100 stays frozen" "$(qgroup_row 1/100 | cut -d' ' -f1-3)" "1/100 0 0"
expect ok quota rescan
same "210 fixed: the rescan restores the numbers" "$(qgroup_row 1/100 | cut -d' ' -f1-3)" "1/100 3162112 2113536"
expect EDQUOT write 258 400 0 4K
check_ok "210 fixed: check ok"
snap_limit step inherit_never_inconsistent
same "210 buggy: nothing says the numbers are wrong" "$(cat $QG/status | tr '\n' ' ')" \
	"mode full inconsistent 0 accounting on "
check_has "210 buggy: check sees 1/100 wrong" "qgroup 1/100 rfer is 0, expected 1064960"
snap_limit step no_accounting_keeps_rsv
snap_limit_writes
same "316 buggy: leaked reservations refuse the 4th write" "$OUTCOMES" "ok ok ok EDQUOT "
check_has "316 buggy: check sees the leak" "qgroup 0/258 reserved is 1572864, expected 0"

# btrfs/171.
childless() {
	echo reset > $QG/control
	for c in "quota enable" "subvol create 256" "write 5 257 0 64K" sync \
		"clone 5 257 0 64K 256 257 0" commit "qgroup create 1/1" "$@" \
		"qgroup assign 0/256 1/1" "write 256 300 0 64K" sync "qgroup remove 0/256 1/1" \
		"quota rescan"; do
		run $c
	done
}
childless
same "171 fixed: the rescan zeroes the childless 1/1" "$(qgroup_row 1/1 | cut -d' ' -f1-3)" "1/1 0 0"
check_ok "171 fixed: check ok"
childless "legacy rescan_skips_childless on"
same "171 buggy: 1/1 keeps stale numbers" "$(qgroup_row 1/1 | cut -d' ' -f1-3)" "1/1 65536 65536"
check_has "171 buggy: check sees them" "qgroup 1/1 rfer is 65536, expected 0"
