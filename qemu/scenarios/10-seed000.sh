#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Seed 000 (SPEC §3): 20 fallocates of 1 MiB under a 10 MiB exclusive limit.
# Fixed: files 0..8 fit, 9..19 get EDQUOT. With no_reserved_stage the
# allocated-but-uncommitted bytes are invisible and all 20 succeed.
. /scenarios/lib/ktap.sh

plan 11

seed000() {
	quiet quota enable
	quiet qgroup limit -e 10M 0/5
	ok=0 fail=0 order=ok
	i=0
	while [ $i -lt 20 ]; do
		if run fallocate 5 $((256 + i)) 0 1M; then
			ok=$((ok + 1))
			[ $fail = 0 ] || order=bad
		else
			[ "$(outcome)" = EDQUOT ] && fail=$((fail + 1))
		fi
		i=$((i + 1))
	done
}

seed000
check_ok "fixed: check ok before sync"
quiet sync
same "fixed: 9 fallocates succeed" "$ok" 9
same "fixed: 11 fallocates fail with EDQUOT" "$fail" 11
same "fixed: the first 9 succeed" "$order" ok
same "fixed: 0/5 row" "$(qgroup_row 0/5)" "0/5 9453568 9453568 0 10485760 --- ---"
same "fixed: nothing reserved after sync" "$(rsv_row 0/5)" "0/5 0 0 0 0 0"
check_ok "fixed: check ok"
same "fixed: 11 EDQUOT counted" "$(field stats edquot)" 11

quiet reset
quiet legacy no_reserved_stage on
seed000
check_has "no_reserved_stage: check sees allocated bytes missing from reserved" "qgroup 0/5 reserved is 0, expected 20971520"
quiet sync
same "no_reserved_stage: all 20 succeed" "$ok" 20
same "no_reserved_stage: 0/5 row" "$(qgroup_row 0/5)" "0/5 20987904 20987904 0 10485760 --- ---"
