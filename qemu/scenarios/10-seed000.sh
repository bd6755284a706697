#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Seed 000 (SPEC §3): 20 fallocates of 1 MiB under a 10 MiB exclusive limit.
# Fixed: files 0..8 fit, 9..19 get EDQUOT. With no_reserved_stage the
# allocated-but-uncommitted bytes are invisible and all 20 succeed.
# The seed itself is seeds.sh's seed000 (make demo runs the same).
. /scenarios/lib/ktap.sh
. /scenarios/lib/seeds.sh

plan 11

fixed() {
	[ "$1" != before-sync ] || check_ok "fixed: check ok before sync"
}
seed000 step fixed
same "fixed: 9 fallocates succeed" "$SEED_OK" 9
same "fixed: 11 fallocates fail with EDQUOT" "$SEED_EDQUOT" 11
same "fixed: the first 9 succeed" "$SEED_ORDER" ok
same "fixed: 0/5 row" "$(qgroup_row 0/5)" "0/5 9453568 9453568 0 10485760 --- ---"
same "fixed: nothing reserved after sync" "$(rsv_row 0/5)" "0/5 0 0 0 0 0"
check_ok "fixed: check ok"
same "fixed: 11 EDQUOT counted" "$(field stats edquot)" 11

quiet reset
quiet legacy no_reserved_stage on
buggy() {
	[ "$1" != before-sync ] ||
		check_has "no_reserved_stage: check sees allocated bytes missing from reserved" "qgroup 0/5 reserved is 0, expected 20971520"
}
seed000 step buggy
same "no_reserved_stage: all 20 succeed" "$SEED_OK" 20
same "no_reserved_stage: 0/5 row" "$(qgroup_row 0/5)" "0/5 20987904 20987904 0 10485760 --- ---"
