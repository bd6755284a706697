#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The guest side of `make stress` (SPEC §6 `stress THREADS OPS SEED [MIX]`),
# run as a scenario: for each inode mix (private: each worker's own inodes
# only; shared: private and shared inodes) and 1, 2 and 4 workers, one
# stress of $qgroup_rs_stress_ops operations in total (OPS = total /
# workers), from a fresh instance with quotas enabled; `check` must be ok
# after each. Then one run with `legacy free_ignores_changeset on`, after
# which `check` must report unreserved dirty bytes (seed 001 under
# concurrency). Each run also prints one line for qemu/stress_table.py:
#   qgroup_rs-stress: smp=S cpus=C inodes=MIX workers=T ops=N edquot=N elapsed_ns=N legacy=SWITCH|off check=ok|unreserved|bad
. /scenarios/lib/ktap.sh

total=${qgroup_rs_stress_ops:-100000}
seed=${qgroup_rs_stress_seed:-42}
smp=${qgroup_rs_stress_smp:-?}	# the -smp the guest was booted with
cpus=$(nproc)			# the CPUs its kernel brought up

plan 8

# Without the CPUs it was booted with, the speed-up means nothing: the
# kernel needs them described (ACPI MADT or MP table) and CONFIG_NR_CPUS
# at least as large.
same "the guest runs on the $smp CPUs it was booted with" "$cpus" "$smp"

# stress_run NAME WORKERS MIX WANT_CHECK: one stress run and its result.
# WANT_CHECK is ok or unreserved.
stress_run() {
	name=$1 t=$2 mix=$3 want=$4
	ops=$((total / t))
	run stress $t $ops $seed $mix
	status=$?
	read -r line < $QG/result
	s=0
	set -- $line
	n=x e=x ns=x
	if [ "$1" = ok ]; then
		for kv in "$@"; do
			case "$kv" in
			ops=*) n=${kv#ops=} ;;
			edquot=*) e=${kv#edquot=} ;;
			elapsed_ns=*) ns=${kv#elapsed_ns=} ;;
			esac
		done
	fi
	if [ $status != 0 ] || [ "$1" != ok ]; then
		note "stress $t $ops $seed $mix: $line (write status $status)"
		s=1
	elif [ "$n" != $((t * ops)) ] || [ "$ns" = x ] || [ "$e" = x ]; then
		note "stress $t $ops $seed $mix: '$line', want ops=$((t * ops)) edquot=N elapsed_ns=N"
		s=1
	fi
	chk=$(cat $QG/check)
	if [ "$want" = ok ]; then
		c=ok
		if [ "$chk" != ok ]; then
			c=bad
			s=1
			note "check after stress $t $ops $seed $mix: $(echo "$chk" | head -5)"
		fi
	else
		c=unreserved
		if ! echo "$chk" | grep -q '^violation: .*unreserved'; then
			c=bad
			s=1
			note "check after stress $t $ops $seed $mix with free_ignores_changeset: $(echo "$chk" | head -5)"
		fi
	fi
	echo "qgroup_rs-stress: smp=$smp cpus=$cpus inodes=$mix workers=$t ops=$n edquot=$e elapsed_ns=$ns legacy=$legacy check=$c"
	result $s "$name"
}

legacy=off
for mix in private shared; do
	for t in 1 2 4; do
		run reset
		quiet quota enable
		stress_run "stress with $t worker(s), $mix inodes, check ok" $t $mix ok
	done
done

run reset
quiet quota enable
quiet legacy free_ignores_changeset on
legacy=free_ignores_changeset
stress_run "stress 4 workers, shared inodes, free_ignores_changeset: check reports unreserved bytes" 4 shared unreserved
run reset
