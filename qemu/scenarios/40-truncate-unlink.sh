#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# truncate keeps the sector holding SIZE and frees the rest; unlink frees
# everything and reports a reservation nothing would ever free as a leak.
. /scenarios/lib/ktap.sh

plan 10

quiet quota enable
expect ok write 5 257 0 16K
expect ok truncate 5 257 5000
same "dirty range cut after the sector holding 5000" "$(grep '^5 257 ' $QG/inodes)" "5 257 0 8191 DELALLOC|QGROUP_RESERVED"
same "data reservation follows" "$(rsv_row 0/5)" "0/5 8192 16384 0 24576 0"
quiet sync
same "8 KiB accounted" "$(qgroup_row 0/5)" "0/5 24576 24576 0 0 --- ---"
quiet truncate 5 257 0
quiet commit
same "dropped extents leave rfer at commit" "$(qgroup_row 0/5)" "0/5 16384 16384 0 0 --- ---"
quiet reserve 5 258 0 8K a
expect ok unlink 5 258
same "a leak is counted" "$(field stats leaks)" 1
quiet write 5 259 0 4K
quiet unlink 5 259
same "nothing left reserved" "$(rsv_row 0/5)" "0/5 0 0 0 0 0"
check_ok "check ok"
