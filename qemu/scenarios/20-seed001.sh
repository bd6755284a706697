#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Seed 001 (SPEC §3): a failed write frees only what its own changeset
# recorded. With free_ignores_changeset it frees the first write's
# reservation; adding release_by_length makes the sync underflow.
# The seed itself is seeds.sh's seed001 (make demo runs the same).
. /scenarios/lib/ktap.sh
. /scenarios/lib/seeds.sh

plan 17

fixed() {
	case $1 in
	first-write)
		same "first write reserved 4096" "$(cat $QG/result)" "ok reserved=4096 written=2048"
		;;
	failed-write)
		same "0/5 may_use.data stays 4096" "$(rsv_row 0/5 | cut -d' ' -f2)" 4096
		same "io tree keeps [0, 4095] dirty and reserved" "$(grep '^5 257 ' $QG/inodes)" "5 257 0 4095 DELALLOC|QGROUP_RESERVED"
		check_ok "check ok after the failed write"
		;;
	synced)
		same "0/5 row after sync" "$(qgroup_row 0/5)" "0/5 20480 20480 0 0 --- ---"
		check_ok "check ok after sync"
		same "no underflow" "$(field stats underflows)" 0
		;;
	esac
}
seed001 expect fixed

quiet reset
quiet legacy free_ignores_changeset on
free_ignores_changeset() {
	case $1 in
	failed-write)
		same "free_ignores_changeset: 0/5 may_use.data drops to 0" "$(rsv_row 0/5 | cut -d' ' -f2)" 0
		check_has "free_ignores_changeset: check reports the dirty range unreserved" "inode 5/257 dirty range \[0, 4095\] unreserved"
		;;
	synced)
		same "free_ignores_changeset: no underflow at sync" "$(field stats underflows)" 0
		;;
	esac
}
seed001 step free_ignores_changeset

quiet reset
quiet legacy free_ignores_changeset on
quiet legacy release_by_length on
release_by_length() {
	if [ "$1" = synced ]; then
		same "with release_by_length: the sync underflows may_use.data" "$(field stats underflows)" 1
		check_has "with release_by_length: check reports the underflow" "underflow"
	fi
}
seed001 step release_by_length
same "legacy file" "$(cat $QG/legacy | tr '\n' ' ')" "no_reserved_stage off free_ignores_changeset on release_by_length on no_edquot_flush off excl_iteration off quick_inherit_parent_only off inherit_never_inconsistent off no_accounting_keeps_rsv off rescan_skips_childless off squota_quick_inherit off "
