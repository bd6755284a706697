# SPDX-License-Identifier: GPL-2.0
#
# The helpers every guest-side script shares (busybox sh): the guest's
# /init (qemu/init.sh), qemu/demo.sh, qemu/compare.sh, qemu/stress.sh and,
# through ktap.sh, every scenario. Source it with
#   . /scenarios/lib/common.sh
# It only defines (sourcing it twice is harmless). Everything here but the
# row helpers is shell builtins: every fork costs tens of milliseconds in
# the emulated guest, and the fault sweeps (faults.sh) call these between
# their trials.

QG=/sys/kernel/debug/qgroup_rs
# Lines for the host that judge.py reads (insmod rc=, scenario begin/end,
# verdicts ...) start with this.
GUEST="qgroup_rs-guest: "
# say's prefix: $GUEST unless the script set its own (demo.sh, compare.sh).
: "${SAY=$GUEST}"

# say TEXT: one line for the host, $SAY first.
say() {
	echo "$SAY$*"
}

# run COMMAND...: one write(2) to control; prints nothing, returns the
# write's status. The outcome is in $QG/result.
run() {
	printf '%s\n' "$*" > "$QG/control" 2>/dev/null
}

# get_outcome: OUTCOME = "ok" or the errno name of the last command.
get_outcome() {
	read -r first OUTCOME rest < "$QG/result"
	[ "$first" != ok ] || OUTCOME=ok
}

# outcome: prints get_outcome's OUTCOME.
outcome() {
	get_outcome
	echo "$OUTCOME"
}

# errno_name TEXT: ERRNO = the name of the errno whose strerror() text TEXT
# holds (busybox's "write error: ...", btrfs-progs' and xfs_io's messages);
# ok for no text, "?(TEXT)" for a text not in the table.
errno_name() {
	case "$1" in
	"") ERRNO=ok ;;
	*"Disk quota exceeded"*) ERRNO=EDQUOT ;;
	*"No space left on device"*) ERRNO=ENOSPC ;;
	*"File exists"*) ERRNO=EEXIST ;;
	*"No such file or directory"*) ERRNO=ENOENT ;;
	*"Invalid argument"*) ERRNO=EINVAL ;;
	*"Device or resource busy"*) ERRNO=EBUSY ;;
	*"not connected"* | *"quota not enabled"*) ERRNO=ENOTCONN ;;
	*"Cannot allocate memory"*) ERRNO=ENOMEM ;;
	*"Operation not permitted"*) ERRNO=EPERM ;;
	*"Directory not empty"*) ERRNO=ENOTEMPTY ;;
	*"Operation now in progress"*) ERRNO=EINPROGRESS ;;
	*) ERRNO="?($1)" ;;
	esac
}

# bytes VALUE: B = VALUE with its K/M/G/T suffix applied (the suffixes of
# the module's sizes, src/command.rs parse_size).
bytes() {
	case $1 in
	*[kK]) B=$((${1%?} * 1024)) ;;
	*[mM]) B=$((${1%?} * 1048576)) ;;
	*[gG]) B=$((${1%?} * 1073741824)) ;;
	*[tT]) B=$((${1%?} * 1099511627776)) ;;
	*) B=$1 ;;
	esac
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
