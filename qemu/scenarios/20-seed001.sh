#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Seed 001 (SPEC §3): a failed write frees only what its own changeset
# recorded. With free_ignores_changeset it frees the first write's
# reservation; adding release_by_length makes the sync underflow.
. /scenarios/lib/ktap.sh

plan 17

expect ok quota enable
expect ok write 5 257 0 2048
same "first write reserved 4096" "$(cat $QG/result)" "ok reserved=4096 written=2048"
expect EDQUOT write 5 257 2048 2048 fail=meta
same "0/5 may_use.data stays 4096" "$(rsv_row 0/5 | cut -d' ' -f2)" 4096
same "io tree keeps [0, 4095] dirty and reserved" "$(grep '^5 257 ' $QG/inodes)" "5 257 0 4095 DELALLOC|QGROUP_RESERVED"
check_ok "check ok after the failed write"
expect ok sync
same "0/5 row after sync" "$(qgroup_row 0/5)" "0/5 20480 20480 0 0 --- ---"
check_ok "check ok after sync"
same "no underflow" "$(field stats underflows)" 0

quiet reset
quiet legacy free_ignores_changeset on
quiet quota enable
quiet write 5 257 0 2048
run write 5 257 2048 2048 fail=meta
same "free_ignores_changeset: 0/5 may_use.data drops to 0" "$(rsv_row 0/5 | cut -d' ' -f2)" 0
check_has "free_ignores_changeset: check reports the dirty range unreserved" "inode 5/257 dirty range \[0, 4095\] unreserved"
quiet sync
same "free_ignores_changeset: no underflow at sync" "$(field stats underflows)" 0

quiet reset
quiet legacy free_ignores_changeset on
quiet legacy release_by_length on
quiet quota enable
quiet write 5 257 0 2048
run write 5 257 2048 2048 fail=meta
quiet sync
same "with release_by_length: the sync underflows may_use.data" "$(field stats underflows)" 1
check_has "with release_by_length: check reports the underflow" "underflow"
same "legacy file" "$(cat $QG/legacy | tr '\n' ' ')" "no_reserved_stage off free_ignores_changeset on release_by_length on no_edquot_flush off "
