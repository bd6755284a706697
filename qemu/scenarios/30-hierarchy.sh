#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A two-level hierarchy: 0/256 and 0/257 in 1/100, which has a referenced
# limit of 1 MiB. The parent's limit refuses a child's write; assign and
# remove move usage.
. /scenarios/lib/ktap.sh

plan 12

expect ok quota enable
quiet subvol create 256
quiet subvol create 257
# The new subvolumes' root leaves are accounted at a commit.
quiet commit
quiet qgroup create 1/100
quiet qgroup assign 0/256 1/100
quiet qgroup assign 0/257 1/100
expect ok qgroup limit 1M 1/100
same "1/100 row" "$(qgroup_row 1/100)" "1/100 32768 32768 1048576 0 --- 0/256,0/257"
same "0/256 row" "$(qgroup_row 0/256)" "0/256 16384 16384 0 0 1/100 ---"
expect ok write 256 257 0 512K
quiet legacy no_edquot_flush on
expect EDQUOT write 257 257 0 512K
same "the parent's limit is named" "$(cat $QG/result)" "error EDQUOT qgroup 1/100 over max_rfer"
quiet legacy no_edquot_flush off
expect ok write 257 257 0 256K
expect ok sync
same "rows after sync" "$(qgroup_row 0/256) $(qgroup_row 0/257) $(qgroup_row 1/100)" \
	"0/256 540672 540672 0 0 1/100 --- 0/257 278528 278528 0 0 1/100 --- 1/100 819200 819200 1048576 0 --- 0/256,0/257"
quiet qgroup remove 0/257 1/100
same "remove subtracts the child's usage" "$(qgroup_row 1/100)" "1/100 540672 540672 1048576 0 --- 0/256"
check_ok "check ok"
