# SPDX-License-Identifier: GPL-2.0
#
# KTAP helpers for qgroup_rs scenario scripts (busybox sh). Source it with
#   . /scenarios/lib/ktap.sh
# (it sources common.sh: run, outcome, qgroup_row, rsv_row, field ...).
# A scenario prints one KTAP document: call `plan N` first, then one check
# helper per planned result.

. /scenarios/lib/common.sh
KTAP_N=0

# plan N: the KTAP header.
plan() {
	echo "KTAP version 1"
	echo "1..$1"
}

# result STATUS NAME: one KTAP result line from an exit status.
result() {
	KTAP_N=$((KTAP_N + 1))
	if [ "$1" = 0 ]; then
		echo "ok $KTAP_N $2"
	else
		echo "not ok $KTAP_N $2"
	fi
}

# note TEXT: a KTAP diagnostic line.
note() {
	echo "# $*"
}

# expect WANT COMMAND...: run COMMAND, check its outcome is WANT (ok or an
# errno name), and that the write's status agrees with it.
expect() {
	want=$1
	shift
	run "$@"
	status=$?
	got=$(outcome)
	ok=1
	[ "$got" = "$want" ] || ok=0
	if [ "$want" = ok ]; then [ $status = 0 ] || ok=0; else [ $status != 0 ] || ok=0; fi
	[ $ok = 1 ] || note "$* gave: $(cat "$QG/result") (write status $status)"
	result $((1 - ok)) "$* -> $want"
}

# quiet COMMAND...: run COMMAND, which must succeed; failures are noted.
quiet() {
	run "$@" || note "$* failed: $(cat "$QG/result")"
}

# step WANT COMMAND...: quiet when WANT is ok, else run (returning the
# write's status): the STEP of the seed scenarios (seeds.sh) in runs where
# only the checks between the commands are results.
step() {
	want=$1
	shift
	if [ "$want" = ok ]; then
		quiet "$@"
	else
		run "$@"
	fi
}

# same NAME GOT WANT: a result comparing two strings.
same() {
	[ "$2" = "$3" ]
	s=$?
	[ $s = 0 ] || note "$1: got '$2', want '$3'"
	result $s "$1"
}

# check_ok NAME: `check` says ok.
check_ok() {
	same "$1" "$(cat "$QG/check")" ok
}

# check_has NAME PATTERN: `check` reports a violation matching PATTERN.
check_has() {
	grep -q "^violation: .*$2" "$QG/check"
	s=$?
	[ $s = 0 ] || note "check: $(cat "$QG/check")"
	result $s "$1"
}
