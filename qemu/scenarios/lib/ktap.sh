# SPDX-License-Identifier: GPL-2.0
#
# Helpers for qgroup_rs scenario scripts (busybox sh). Source it with
#   . /scenarios/lib/ktap.sh
# A scenario prints one KTAP document: call `plan N` first, then one check
# helper per planned result.

QG=/sys/kernel/debug/qgroup_rs
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

# run COMMAND...: one write(2) to control; prints nothing, returns the
# write's status. The outcome is in $QG/result.
run() {
	printf '%s\n' "$*" > "$QG/control" 2>/dev/null
}

# outcome: "ok" or the errno name of the last command. (Shell builtins
# only: every fork costs tens of milliseconds in the emulated guest.)
outcome() {
	read -r first errno rest < "$QG/result"
	if [ "$first" = ok ]; then echo ok; else echo "$errno"; fi
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

# qgroup_row QG: the qgroups row of QG, columns single-spaced.
qgroup_row() {
	grep "^$1 " "$QG/qgroups" | tr -s ' ' | sed 's/ $//'
}

# rsv_row QG: the reservations row of QG.
rsv_row() {
	grep "^$1 " "$QG/reservations"
}

# field FILE KEY: the value of "KEY value" in a name/value file.
field() {
	while read -r key value; do
		[ "$key" = "$2" ] && echo "$value"
	done < "$QG/$1"
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
