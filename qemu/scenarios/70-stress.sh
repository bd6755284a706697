#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# `stress THREADS OPS SEED [private|shared]` (SPEC §6): its refusals, EBUSY
# while another stress runs, and a short stress of >= 10^5 operations over
# private and shared inodes, with `check` ok after each run (make stress
# runs the long one and prints ops/s).
. /scenarios/lib/ktap.sh

plan 17

# write_errno COMMAND...: the errno name of COMMAND's write(2) (ok when it
# succeeds), from busybox echo's "write error: ..." message; `result` is
# shared with a concurrent stress, the write's own status is not.
write_errno() {
	msg=$(echo "$*" 2>&1 > $QG/control)
	errno_name "$msg"
	echo "$ERRNO"
}

# short NAME THREADS OPS SEED MIX: a stress run that must report
# ok ops=THREADS*OPS edquot=N elapsed_ns=N, then check ok.
TOTAL=0
short() {
	name=$1
	shift
	run stress "$@"
	status=$?
	read -r line < $QG/result
	s=1
	case "$line" in
	"ok ops=$(($1 * $2)) edquot="*" elapsed_ns="*) [ $status = 0 ] && s=0 ;;
	esac
	[ $s = 0 ] || note "stress $*: '$line' (write status $status), want ok ops=$(($1 * $2)) edquot=N elapsed_ns=N"
	ns=${line##*elapsed_ns=}
	[ $s != 0 ] || note "stress $*: $line ($(($1 * $2 * 1000 / (ns / 1000000 + 1))) ops/s)"
	TOTAL=$((TOTAL + $1 * $2))
	result $s "$name"
	check_ok "check ok after $name"
}

expect ENOTCONN stress 1 100 1
quiet quota enable
expect EINVAL stress 0 100 1
expect EINVAL stress 65 100 1
expect EINVAL stress 1 0 1
expect EINVAL stress 1 100000001 1
expect EINVAL stress 2 60000000 1
expect EINVAL stress 2 100 1 everything

short "stress 1 worker, private inodes" 1 30000 1 private
short "stress 2 workers, private inodes" 2 15000 2 private
short "stress 2 workers, shared inodes" 2 20000 3 shared
# Once with simple quotas (SPEC §8.6): the same commands, owner accounting.
quiet quota disable
quiet quota enable simple
short "stress 2 workers, shared inodes, simple quotas" 2 5000 6 shared
quiet quota disable
quiet quota enable
note "stress: $TOTAL operations"

# EBUSY: a long stress in the background (a subshell: its own write), and
# short ones from here until one is refused while it runs.
( echo "stress 2 2500 4" > $QG/control ) 2>/dev/null &
bg=$!
got=none
tries=0
while [ $tries -lt 100 ] && kill -0 $bg 2>/dev/null; do
	got=$(write_errno stress 1 1 5)
	[ "$got" = EBUSY ] && break
	tries=$((tries + 1))
	usleep 20000
done
wait $bg
bgs=$?
same "a second stress while one runs is EBUSY" "$got" EBUSY
same "the first stress succeeded" "$bgs" 0
