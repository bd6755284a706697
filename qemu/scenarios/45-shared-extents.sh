#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Shared extents (SPEC §8.1 - §8.4) through the debugfs files: fstests
# btrfs/091 (written and reflinked to two more subvolumes in one
# transaction), the `extents`, `mappings` and `status` files, a partial
# reflink counting the whole extent, an assign of a shared child marking
# the numbers inconsistent, and clone's errors.
. /scenarios/lib/ktap.sh

plan 17

expect ok quota enable
quiet subvol create 256
quiet subvol create 257
quiet subvol create 258
quiet commit
quiet write 256 257 0 64K
expect ok clone 256 257 0 64K 257 257 0
expect ok clone 256 257 0 64K 258 257 0
same "extents before the commit" "$(cat $QG/extents)" "extent bytes owner roots old_roots
1 65536 256 256,257,258 -"
same "mappings" "$(cat $QG/mappings)" "subvol ino start end extent offset
256 257 0 65535 1 0
257 257 0 65535 1 0
258 257 0 65535 1 0"
expect ok sync
same "btrfs/091: each refers to the extent, none holds it alone" \
	"$(qgroup_row 0/256) $(qgroup_row 0/257) $(qgroup_row 0/258)" \
	"0/256 81920 16384 0 0 --- --- 0/257 81920 16384 0 0 --- --- 0/258 81920 16384 0 0 --- ---"
same "extents after the commit" "$(sed -n 2p $QG/extents)" "1 65536 256 256,257,258 256,257,258"

# A reflink of the middle of the extent refers to all of it.
quiet clone 256 257 16K 16K 5 300 4K
same "a partial reflink maps the middle" "$(grep '^5 300 ' $QG/mappings)" "5 300 4096 20479 1 16384"
quiet commit
same "a partial reflink refers to the whole extent" "$(qgroup_row 0/5)" "0/5 81920 16384 0 0 --- ---"

same "status" "$(cat $QG/status)" "mode full
inconsistent 0
accounting on"
quiet qgroup create 1/1
run qgroup assign 0/256 1/1
same "assign of a shared child" "$(cat $QG/result)" "ok inconsistent=1"
same "status after it" "$(cat $QG/status | tr '\n' ' ')" "mode full inconsistent 1 accounting on "
check_ok "check ok (rescan comparison skipped while inconsistent)"

expect EINVAL clone 256 257 0 8K 256 257 4K
expect ENOENT clone 256 999 0 4K 256 257 0
check_ok "check ok at the end"
