#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Simple quotas (SPEC §8.6) and their legacy bug (§8.7):
# - the btrfs-progs manual's example (ch-quota-intro, scaled down: two
#   64 KiB files for the halves), full qgroups next to simple quotas on the
#   same commands;
# - a deleted owner stays as a space holder while a snapshot refers to
#   what it owns;
# - enable on a populated instance counts nothing that existed;
# - squota_quick_inherit (upstream 7ee19a59a75e's reproducer): the fixed
#   run ends with every qgroup at 0; the buggy one with the snapshot's
#   leaf counted twice in 1/100 (and 2/100), which check reports.
. /scenarios/lib/ktap.sh

plan 18

# manual MODE: the example; ROWS gets 0/256 and 0/259 (rfer excl) after
# each of its three steps.
manual() {
	echo reset > $QG/control
	ROWS=""
	for c in "quota enable $1" "subvol create 256" "write 256 257 0 64K" "write 256 258 0 64K" \
		sync "subvol snapshot 256 259"; do
		quiet $c
	done
	ROWS="$(qgroup_row 0/256 | cut -d' ' -f2-3) $(qgroup_row 0/259 | cut -d' ' -f2-3)"
	quiet write 259 257 0 64K
	quiet sync
	ROWS="$ROWS / $(qgroup_row 0/256 | cut -d' ' -f2-3) $(qgroup_row 0/259 | cut -d' ' -f2-3)"
	quiet unlink 256 257
	quiet unlink 256 258
	quiet sync
	ROWS="$ROWS / $(qgroup_row 0/256 | cut -d' ' -f2-3) $(qgroup_row 0/259 | cut -d' ' -f2-3)"
}
manual ""
same "manual, full: snapshot shares all; rewrite; emptied original holds its leaf" "$ROWS" \
	"147456 16384 147456 16384 / 147456 81920 147456 81920 / 16384 16384 147456 147456"
check_ok "manual, full: check ok"
manual simple
same "manual, simple: 256 keeps its bytes, 259 its leaf, then half; 256 keeps the shared half" "$ROWS" \
	"147456 147456 16384 16384 / 147456 147456 81920 81920 / 81920 81920 81920 81920"
same "simple: status" "$(cat $QG/status | tr '\n' ' ')" "mode simple inconsistent 0 accounting on "
check_ok "manual, simple: check ok"

# The owner deleted: 0/256 holds what 259 still refers to, then goes.
quiet subvol delete 256
quiet commit
same "holder: deleted 256 keeps the shared half" "$(qgroup_row 0/256 | cut -d' ' -f1-3)" "0/256 65536 65536"
expect EEXIST subvol create 256
quiet unlink 259 258
quiet commit
same "holder: gone with its last extent" "$(qgroup_row 0/256)" ""
check_ok "holder: check ok"

# Enable on a populated instance.
echo reset > $QG/control
for c in "subvol create 256" "write 5 257 0 64K" "write 256 257 0 64K" sync "quota enable simple" \
	"write 256 258 0 64K" sync; do
	quiet $c
done
same "populated: 5 counts nothing, 256 its new extent and COWed leaf" \
	"$(qgroup_row 0/5 | cut -d' ' -f1-3) $(qgroup_row 0/256 | cut -d' ' -f1-3)" "0/5 0 0 0/256 81920 81920"
quiet unlink 256 257
quiet sync
same "populated: an old extent freed discharges nobody" "$(qgroup_row 0/256 | cut -d' ' -f1-3)" "0/256 81920 81920"
expect EINVAL quota rescan
expect EBUSY quota enable
check_ok "populated: check ok"

# upstream 7ee19a59a75e.
quick() {
	echo reset > $QG/control
	for c in "$@" "quota enable simple" "qgroup create 2/100" "qgroup create 1/100" \
		"qgroup assign 1/100 2/100" "subvol create 256" "subvol snapshot 256 257" \
		"qgroup assign 0/257 1/100" "subvol snapshot 257 258 1/100" sync "subvol delete 258" \
		"qgroup remove 0/257 1/100" "subvol delete 257" commit "qgroup remove 1/100 2/100"; do
		quiet $c
	done
}
quick
same "7ee19a59a75e fixed: 1/100 and 2/100 end at 0" \
	"$(qgroup_row 1/100 | cut -d' ' -f1-3) $(qgroup_row 2/100 | cut -d' ' -f1-3)" "1/100 0 0 2/100 0 0"
check_ok "7ee19a59a75e fixed: check ok"
quick "legacy squota_quick_inherit on"
same "7ee19a59a75e buggy: the leaf stays counted" \
	"$(qgroup_row 1/100 | cut -d' ' -f1-3) $(qgroup_row 2/100 | cut -d' ' -f1-3)" "1/100 16384 16384 2/100 16384 16384"
check_has "7ee19a59a75e buggy: check sees it" "qgroup 1/100 rfer is 16384, expected 0"
