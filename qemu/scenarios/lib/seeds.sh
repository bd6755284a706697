# SPDX-License-Identifier: GPL-2.0
#
# The seed scenarios of SPEC §3, the 200 writes of the flush before EDQUOT
# (SPEC §1.5a) and the snapshot that breaks a limit (fstests btrfs/210 +
# 316), written once for the KTAP scenarios (qemu/scenarios/10-seed000.sh,
# 20-seed001.sh, 47-snapshots.sh) and for `make demo` (qemu/demo.sh). Source it after common.sh (ktap.sh sources that):
#   . /scenarios/lib/seeds.sh
# The comparison corpus has them in its own format (qemu/compare/
# 01-seed000.qg, 02-seed001.qg, 15-flush-200-writes.qg at half scale), the
# KUnit suites through the Rust API (kunit/).
#
# Each seed takes two names of the caller's functions:
#   STEP WANT COMMAND...  runs one command, returns the write's status;
#                         WANT is what the fixed module gives (ok, an errno
#                         name, or - where it depends on the run);
#   HOOK POINT            the caller's checks (or report) at POINT, named
#                         with each seed; `:` for none.
# They run from whatever state the caller set up (reset, legacy switches).

# seed000 STEP HOOK: quota enable; qgroup limit -e 10M 0/5; fallocate 5
# 256+i 0 1M for i = 0..19; HOOK before-sync; sync. Sets SEED_OK (the
# fallocates that succeeded), SEED_EDQUOT (those refused with EDQUOT) and
# SEED_ORDER (bad when one succeeded after one was refused, else ok).
# Fixed: 9 succeed, 11 EDQUOT.
seed000() {
	$1 ok quota enable
	$1 ok qgroup limit -e 10M 0/5
	SEED_OK=0 SEED_EDQUOT=0 SEED_ORDER=ok
	i=0
	while [ $i -lt 20 ]; do
		if $1 - fallocate 5 $((256 + i)) 0 1M; then
			SEED_OK=$((SEED_OK + 1))
			[ $SEED_EDQUOT = 0 ] || SEED_ORDER=bad
		else
			get_outcome
			[ "$OUTCOME" != EDQUOT ] || SEED_EDQUOT=$((SEED_EDQUOT + 1))
		fi
		i=$((i + 1))
	done
	$2 before-sync
	$1 ok sync
}

# seed001 STEP HOOK: quota enable; write 5 257 0 2048; HOOK first-write;
# write 5 257 2048 2048 fail=meta (EDQUOT); HOOK failed-write; sync; HOOK
# synced. Fixed: the failed write frees only what it reserved itself
# (nothing), so 0/5 keeps the first write's 4096 of may_use.data.
seed001() {
	$1 ok quota enable
	$1 ok write 5 257 0 2048
	$2 first-write
	$1 EDQUOT write 5 257 2048 2048 fail=meta
	$2 failed-write
	$1 ok sync
	$2 synced
}

# flush200 STEP HOOK: quota enable; qgroup limit -e 1M 0/5; 200 buffered
# 4 KiB writes, write 5 256+i 0 4K for i = 0..199 (each through run, not
# STEP: quietly); HOOK writes-done; sync; HOOK synced. Sets SEED_OK (the
# whole writes), SEED_SHORT (short ones) and SEED_EDQUOT. Real btrfs and
# the fixed module (which flushes before EDQUOT): all 200 succeed.
flush200() {
	$1 ok quota enable
	$1 ok qgroup limit -e 1M 0/5
	SEED_OK=0 SEED_SHORT=0 SEED_EDQUOT=0
	i=0
	while [ $i -lt 200 ]; do
		run write 5 $((256 + i)) 0 4K
		read -r line < "$QG/result"
		case "$line" in
		"ok reserved=4096 written=4096") SEED_OK=$((SEED_OK + 1)) ;;
		ok*) SEED_SHORT=$((SEED_SHORT + 1)) ;;
		"error EDQUOT"*) SEED_EDQUOT=$((SEED_EDQUOT + 1)) ;;
		esac
		i=$((i + 1))
	done
	$2 writes-done
	$1 ok sync
	$2 synced
}

# snap_limit STEP SWITCH...: fstests btrfs/210 + 316 from a reset, with
# each legacy SWITCH on: 1 MiB in 256, then a snapshot into the new
# qgroup 1/100 with a 2 MiB limit (no_edquot_flush on, so a refused write
# fails at once).
snap_limit() {
	s_step=$1
	shift
	echo reset > $QG/control
	$s_step ok quota enable
	$s_step ok legacy no_edquot_flush on
	for sw in "$@"; do $s_step ok legacy "$sw" on; done
	for c in "subvol create 256" "write 256 257 0 1M" sync "qgroup create 1/100" \
		"qgroup limit 2M 1/100" "subvol snapshot 256 258 1/100"; do
		$s_step ok $c
	done
}

# snap_limit_writes: four 512 KiB writes into 258, a sync after each; sets
# OUTCOMES to their outcomes. Fixed: all ok while accounting is off.
snap_limit_writes() {
	OUTCOMES=""
	for i in 0 1 2 3; do
		run write 258 30$i 0 512K
		OUTCOMES="$OUTCOMES$(outcome) "
		run sync
	done
}
