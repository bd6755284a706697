# SPDX-License-Identifier: GPL-2.0
#
# Fault-injection sweeps for qgroup_rs scenarios (busybox sh), SPEC §7 "All
# or nothing, ENOMEM included". Source it after ktap.sh (which sources
# common.sh: get_outcome, errno_name):
#   . /scenarios/lib/ktap.sh
#   . /scenarios/lib/faults.sh
#   fi_begin
#   sweep NAME WANT COMMAND...     (one KTAP result each)
#   fi_end
#
# sweep runs COMMAND with /proc/thread-self/fail-nth = 1, 2, 3 ...: the Nth
# fault-injection point (failslab, fail_page_alloc) the shell's own task
# passes fails. At every N that injects a failure the command must fail with
# ENOMEM (or WANT, the errno it gives without faults), `result` must say so,
# and every read file (qgroups, reservations, inodes, check, legacy, stats
# but its edquot line) must be byte-for-byte as before the command. When
# fail-nth is still non-zero after the command, the command passed fewer
# than N points and ran unfaulted: its outcome must be WANT, and the sweep
# ends there with the state moved on. A faulted run that changed the state
# is reported with a diff, then the state is rebuilt (reset + replay of
# every unfaulted command since fi_begin) so the sweep goes on from the
# right state.
#
# How the task passes no fault point of its own between the fail-nth write
# and the command (every one would shift N): control, fail-nth and stderr
# are opened before the trial (fds 3, 4, 5, 6); the writes are builtin
# echo to those fds (the shell dups fds below 64: no allocation), from the
# task that wrote fail-nth (never a subshell, which is another task).

FI_MAX=${FI_MAX:-400}		# give up a sweep after this many injected faults
FI_MAX_BROKEN=${FI_MAX_BROKEN:-0}	# >0: give up a sweep after this many state changes
FI_DIFF_LINES=${FI_DIFF_LINES:-24}
FI_HIST=/tmp/fi.hist
FI_INJECTED=0			# injected allocation failures, all sweeps
FI_ABSORBED=0			# of which the command survived (a fallback)
FI_BROKEN=0			# faulted runs that broke all-or-nothing
FI_SWEEPS=0
FI_BAD_SWEEPS=""

# fi_begin: configure the fault attributes, open the fixed fds, start the
# replay history (the caller has a fresh instance: init.sh resets it).
fi_begin() {
	for d in /sys/kernel/debug/failslab /sys/kernel/debug/fail_page_alloc; do
		if [ ! -d $d ]; then
			note "fault injection: $d missing (CONFIG_FAILSLAB/FAIL_PAGE_ALLOC/FAULT_INJECTION_DEBUG_FS)"
			continue
		fi
		# Count GFP_KERNEL (sleeping) allocations too; print nothing on
		# an injected failure; probability 0: only fail-nth injects.
		echo N > $d/ignore-gfp-wait
		echo 0 > $d/verbose
		echo 0 > $d/probability
	done
	# With the kmalloc caches marked (run.sh boots test and faults with
	# slab_debug=A,kmalloc-*), fail only those: the module allocates
	# through kmalloc, and kmemleak's object cache, which absorbs a failure
	# with its emergency pool, is left alone. Else every slab cache counts.
	FI_FILTER=N
	read -r marked 2>/dev/null < /sys/kernel/slab/kmalloc-64/failslab
	[ "$marked" = 1 ] && FI_FILTER=Y
	echo $FI_FILTER > /sys/kernel/debug/failslab/cache-filter 2>/dev/null
	note "fault injection: failslab cache-filter=$FI_FILTER, ignore-gfp-wait=N; fail_page_alloc ignore-gfp-wait=N, min-order=$(cat /sys/kernel/debug/fail_page_alloc/min-order 2>/dev/null)"
	exec 3> "$QG/control"
	exec 5> /proc/thread-self/fail-nth
	: > $FI_HIST
}

# fi_end: close the fds, print the totals.
fi_end() {
	exec 3>&- 5>&-
	echo N > /sys/kernel/debug/failslab/cache-filter 2>/dev/null
	note "faults: $FI_SWEEPS sweeps, $FI_INJECTED allocation failures injected ($FI_ABSORBED absorbed by a fallback), $FI_BROKEN broke all-or-nothing${FI_BAD_SWEEPS:+ (in:$FI_BAD_SWEEPS)}"
	echo "# fi-total injected=$FI_INJECTED absorbed=$FI_ABSORBED broken=$FI_BROKEN sweeps=$FI_SWEEPS"
}

# fi_cmd COMMAND...: run a set-up command unfaulted (on fd 3), record it for
# replay. Prints a note when it fails and WANT (default ok) differs.
fi_cmd() {
	echo "$*" >&3 2>/dev/null
	echo "$*" >> $FI_HIST
}

# fi_want WANT COMMAND...: as fi_cmd, noting an outcome other than WANT.
fi_want() {
	want=$1
	shift
	fi_cmd "$@"
	get_outcome
	[ "$OUTCOME" = "$want" ] || note "set-up: $* gave '$(cat $QG/result)', want $want"
}

# fi_dirty_pages S INO N: N set-up writes of 4 KiB to inode INO of
# subvolume S, 8 KiB apart: N dirty pages with a hole after each.
fi_dirty_pages() {
	i=0
	while [ $i -lt $3 ]; do
		fi_want ok write $1 $2 $((i * 8))K 4K
		i=$((i + 1))
	done
}

# fi_state FILE: every read file a command may change, into FILE.
fi_state() {
	sed '/^edquot /d' $QG/qgroups $QG/reservations $QG/inodes $QG/extents $QG/mappings \
		$QG/status $QG/check $QG/legacy $QG/stats > "$1"
}

# fi_replay: rebuild the state: reset, then every recorded command.
fi_replay() {
	echo reset >&3
	while IFS= read -r c; do
		echo "$c" >&3 2>/dev/null
	done < $FI_HIST
}

# fi_rebuild: fi_replay, then check the state is /tmp/fi.before again (else
# note it and go on from the state there is).
fi_rebuild() {
	fi_replay
	fi_state /tmp/fi.after
	if ! cmp -s /tmp/fi.before /tmp/fi.after; then
		note "$name: the replay did not rebuild the state; going on from the state there is:"
		diff -U0 /tmp/fi.before /tmp/fi.after | sed -n "3,${FI_DIFF_LINES}p" | sed 's/^/#   /'
		cp /tmp/fi.after /tmp/fi.before
	fi
}

# fi_trial N COMMAND: one run of COMMAND with fail-nth = N. Sets FI_LEFT
# (fail-nth after the command: 0 when the Nth point was reached) and
# FI_ERR (the write's errno name from busybox echo's "write error: ..."
# message, or ok).
fi_trial() {
	exec 4< /proc/thread-self/fail-nth 6> /tmp/fi.err
	echo "$1" >&5
	echo "$2" >&3 2>&6
	read -r FI_LEFT <&4
	echo 0 >&5
	exec 4<&- 6>&-
	read -r line < /tmp/fi.err
	errno_name "$line"
	FI_ERR=$ERRNO
}

# sweep NAME WANT COMMAND...: the sweep described above; one KTAP result.
sweep() {
	name=$1 want=$2
	shift 2
	cmd="$*"
	FI_SWEEPS=$((FI_SWEEPS + 1))
	fi_state /tmp/fi.before
	bad=0 injected=0 absorbed=0 broken=0 changes=0 errs="" n=1 points=""
	rm -f /tmp/fi.abs
	if [ "$(cat $QG/check)" != ok ]; then
		note "$name: check not ok before the sweep: $(head -3 $QG/check)"
		bad=1
	fi
	while :; do
		if [ $injected -ge $FI_MAX ] ||
			{ [ $FI_MAX_BROKEN -gt 0 ] && [ $changes -ge $FI_MAX_BROKEN ]; }; then
			note "$name: giving up at fail-nth=$n after $injected injected faults, $changes state changes; '$cmd' run unfaulted"
			bad=1
			fi_cmd "$cmd"
			points="$n+"
			break
		fi
		fi_trial $n "$cmd"
		get_outcome
		if [ "$FI_LEFT" != 0 ]; then
			# Unfaulted: passed n - left points.
			points=$((n - FI_LEFT))
			if [ "$FI_ERR" != "$want" ]; then
				note "$name: '$cmd' unfaulted gave $FI_ERR ($(cat $QG/result)), want $want"
				bad=1
			fi
			if [ "$want" != ok ]; then
				fi_state /tmp/fi.after
				if ! cmp -s /tmp/fi.before /tmp/fi.after; then
					note "$name: '$cmd' failed unfaulted with $want but changed:"
					diff -U0 /tmp/fi.before /tmp/fi.after | sed -n "3,${FI_DIFF_LINES}p" | sed 's/^/#   /'
					bad=1
				fi
			fi
			echo "$cmd" >> $FI_HIST
			if [ -f /tmp/fi.abs ]; then
				fi_state /tmp/fi.after
				if ! cmp -s /tmp/fi.abs /tmp/fi.after; then
					note "$name: '$cmd' succeeded under an absorbed fault with another state than unfaulted (- absorbed, + unfaulted):"
					diff -U0 /tmp/fi.abs /tmp/fi.after | sed -n "3,${FI_DIFF_LINES}p" | sed 's/^/#   /'
					bad=1
				fi
			fi
			if [ "$FI_ERR" = ok ] && [ "$(cat $QG/check)" != ok ]; then
				note "$name: check after '$cmd': $(head -3 $QG/check)"
				bad=1
			fi
			break
		fi
		injected=$((injected + 1))
		FI_INJECTED=$((FI_INJECTED + 1))
		if [ "$FI_ERR" = ok ]; then
			# The failed allocation was absorbed by a fallback (e.g.
			# kmemleak's own metadata falls back to its emergency pool,
			# KASAN's stack depot skips a stack): the command went on
			# and succeeded. Its state must be the unfaulted success
			# state (compared at the end); rebuild the state from
			# before and go on with the next point.
			absorbed=$((absorbed + 1))
			FI_ABSORBED=$((FI_ABSORBED + 1))
			fi_state /tmp/fi.abs.new
			if [ -f /tmp/fi.abs ] && ! cmp -s /tmp/fi.abs /tmp/fi.abs.new; then
				note "$name: fail-nth=$n: '$cmd' succeeded (absorbed) with another state than an earlier absorbed run:"
				diff -U0 /tmp/fi.abs /tmp/fi.abs.new | sed -n "3,${FI_DIFF_LINES}p" | sed 's/^/#   /'
				bad=1
			fi
			mv /tmp/fi.abs.new /tmp/fi.abs
			fi_rebuild
			n=$((n + 1))
			continue
		fi
		why=""
		case "$FI_ERR" in
		ENOMEM | "$want") ;;
		*) why="errno $FI_ERR, want ENOMEM" ;;
		esac
		[ "$OUTCOME" = "$FI_ERR" ] || why="${why:+$why; }result says '$(cat $QG/result)'"
		fi_state /tmp/fi.after
		changed=0
		cmp -s /tmp/fi.before /tmp/fi.after || changed=1
		if [ -n "$why" ] || [ $changed = 1 ]; then
			broken=$((broken + 1))
			FI_BROKEN=$((FI_BROKEN + 1))
			bad=1
			case " $errs " in *" $FI_ERR "*) ;; *) errs="$errs $FI_ERR" ;; esac
			what=""
			[ $changed = 0 ] || what=", state changed:"
			note "$name: fail-nth=$n: '$cmd' -> $FI_ERR${why:+ ($why)}$what"
			if [ $changed = 1 ]; then
				changes=$((changes + 1))
				diff -U0 /tmp/fi.before /tmp/fi.after | sed -n "3,${FI_DIFF_LINES}p" | sed 's/^/#   /'
				fi_rebuild
			fi
		fi
		n=$((n + 1))
	done
	echo "# fi: $name: '$cmd' points=$points injected=$injected absorbed=$absorbed broken=$broken${errs:+ errnos:$errs}"
	[ $bad = 0 ] || FI_BAD_SWEEPS="$FI_BAD_SWEEPS $name"
	result $bad "faults: $name"
}

# The sweeps of fi_all, for the plan.
FI_ALL=50

# fi_all SCALE: every command kind of SPEC §2, one sweep each, from a state
# with qgroups, a hierarchy with limits, committed and dirty data. SCALE
# (>= 1) multiplies the inodes, subvolume data and io tree states the
# commands run over. Prints FI_ALL results.
fi_all() {
	k=$1
	# Committed data in three subvolumes under 1/100 and 2/200.
	fi_want ok quota enable
	fi_want ok subvol create 256
	fi_want ok subvol create 257
	fi_want ok qgroup create 1/100
	fi_want ok qgroup create 2/200
	fi_want ok qgroup assign 0/256 1/100
	fi_want ok qgroup assign 0/257 1/100
	fi_want ok qgroup assign 1/100 2/200
	fi_want ok qgroup assign 0/5 2/200
	fi_want ok qgroup limit -e 64M 1/100
	fi_want ok qgroup limit 256M 2/200
	i=0
	while [ $i -lt $k ]; do
		fi_want ok write 256 $((1000 + i)) 0 64K
		fi_want ok fallocate 257 $((1000 + i)) 0 32K
		fi_want ok write 5 $((1000 + i)) $((i * 8))K 4K
		i=$((i + 1))
	done
	fi_want ok sync

	# Quotas off and on again (the rescan), then the hierarchy rebuilt.
	sweep "quota disable" ok quota disable
	sweep "quota enable (rescan)" ok quota enable
	sweep "subvol create" ok subvol create 258
	sweep "qgroup create" ok qgroup create 1/100
	fi_want ok qgroup create 2/200
	sweep "qgroup assign (level 0)" ok qgroup assign 0/256 1/100
	fi_want ok qgroup assign 0/257 1/100
	sweep "qgroup assign (level 1 into 2)" ok qgroup assign 1/100 2/200
	fi_want ok qgroup assign 0/5 2/200
	sweep "qgroup limit" ok qgroup limit -e 64M 1/100
	fi_want ok qgroup limit 256M 2/200
	fi_want ok qgroup create 1/101
	fi_want ok qgroup assign 0/258 1/101
	fi_want ok qgroup assign 1/101 2/200
	sweep "qgroup remove" ok qgroup remove 0/258 1/101
	sweep "qgroup destroy (a member)" ok qgroup destroy 1/101

	# Data: writes, fallocate, writeback, commit.
	sweep "write (new inode)" ok write 256 300 0 64K
	fi_dirty_pages 256 301 $((4 * k))
	sweep "write (over $((4 * k)) dirty pages and holes)" ok write 256 301 0 $((32 * k))K
	fi_want ok write 256 302 0 2048
	sweep "write fail=meta (seed 001)" EDQUOT write 256 302 2048 2048 fail=meta
	fi_want ok legacy no_edquot_flush on
	fi_want ok qgroup limit -e 64K 0/258
	sweep "write over a limit (EDQUOT)" EDQUOT write 258 310 0 1M
	sweep "reserve over a limit (EDQUOT)" EDQUOT reserve 258 310 0 1M cse
	fi_want ok legacy no_edquot_flush off
	sweep "fallocate (holes)" ok fallocate 257 400 0 64K
	fi_want ok write 257 400 128K 8K
	sweep "fallocate (partly backed and dirty)" ok fallocate 257 400 32K 128K
	sweep "writeback (one inode)" ok writeback 256 301
	sweep "writeback (all)" ok writeback
	sweep "commit" ok commit

	# Clones: of dirty data into another subvolume's new inode, within
	# an inode over mapped bytes, then a commit of many dirty shared
	# extents (each of $((4 * k)) extents gains a root).
	fi_want ok write 256 303 0 $((16 * k))K
	sweep "clone (dirty source, new inode of another subvolume)" ok clone 256 303 0 $((16 * k))K 257 700 0
	sweep "clone (within an inode, over mapped bytes)" ok clone 256 301 0 $((16 * k))K 256 301 $((64 * k))K
	fi_dirty_pages 5 304 $((4 * k))
	fi_want ok sync
	sweep "clone (many extents, into another subvolume)" ok clone 5 304 0 $((32 * k))K 258 701 0
	sweep "commit (many dirty shared extents)" ok commit

	# Subvolumes: a snapshot of one with many extents (its writeback,
	# commit and copy in one step), one created into a qgroup, a delete
	# and the commit that drops it, and a rescan.
	sweep "subvol snapshot (many extents)" ok subvol snapshot 258 710
	sweep "subvol create (into a qgroup)" ok subvol create 711 1/100
	sweep "subvol delete" ok subvol delete 710
	sweep "commit (a deleted subvolume)" ok commit
	sweep "quota rescan" ok quota rescan

	# Truncate and unlink, over committed, uncommitted and dirty bytes.
	fi_want ok write 256 300 16K 8K
	sweep "truncate" ok truncate 256 300 10000
	fi_want ok reserve 5 501 0 8K cs1
	fi_want ok write 5 501 16K 8K
	fi_want ok reserve 5 501 32K 4K cs2
	sweep "unlink (with named changesets)" ok unlink 5 501
	sweep "unlink (committed data)" ok unlink 257 1000
	fi_want ok write 5 502 0 12K
	sweep "sync" ok sync

	# The reservation API and changesets.
	sweep "reserve (new changeset)" ok reserve 257 600 0 16K csa
	sweep "reserve (existing changeset)" ok reserve 257 600 8K 16K csa
	sweep "free (changeset)" ok free 257 600 0 12K csa
	sweep "free (no changeset)" ok free 257 600 16K 8K
	fi_want ok reserve 257 601 0 16K csb
	sweep "release" ok release 257 601 0 8K
	sweep "changeset drop" ok changeset drop csb

	# Meta reservations.
	sweep "meta reserve prealloc" ok meta reserve 5 32K prealloc
	sweep "meta reserve pertrans" ok meta reserve 5 16K pertrans
	sweep "meta free" ok meta free 5 16K prealloc
	sweep "meta convert" ok meta convert 5 16K

	# Simple quotas: enabled on the populated instance, a commit that
	# charges owners (new extents, a clone of old ones) and COWs old
	# leaves, a snapshot, and the commit that keeps a deleted owner's
	# qgroup as a space holder.
	fi_want ok sync
	fi_want ok quota disable
	sweep "quota enable simple" ok quota enable simple
	fi_want ok write 256 800 0 $((16 * k))K
	fi_want ok clone 5 304 0 $((32 * k))K 256 801 0
	sweep "commit (simple quotas)" ok sync
	sweep "subvol snapshot (simple quotas)" ok subvol snapshot 256 720
	fi_want ok subvol delete 256
	sweep "commit (simple quotas, a space holder)" ok commit

	# stress: its set-up is one all-or-nothing step, its workers start
	# parked and go home when a later allocation fails; the end commits.
	sweep "stress (workers, set-up, end)" ok stress 1 20 1 private

	# Legacy switches, and reset.
	sweep "legacy on" ok legacy free_ignores_changeset on
	sweep "legacy off" ok legacy free_ignores_changeset off
	sweep "reset" ok reset
	: > $FI_HIST
}

# The sweeps of fi_quota_off, for the plan.
FI_QUOTA_OFF=13

# fi_quota_off SCALE: the data commands with quotas disabled (no qgroup,
# no QGROUP_RESERVED bit), and qgroup commands refused with ENOTCONN.
fi_quota_off() {
	k=$1
	fi_want ok subvol create 256
	fi_dirty_pages 256 300 $((4 * k))
	sweep "quotas off: write (over holes)" ok write 256 300 0 $((32 * k))K
	sweep "quotas off: write fail=meta" EDQUOT write 256 300 0 4K fail=meta
	sweep "quotas off: fallocate (partly dirty)" ok fallocate 256 300 16K 64K
	sweep "quotas off: writeback (one inode)" ok writeback 256 300
	sweep "quotas off: commit" ok commit
	sweep "quotas off: clone" ok clone 256 300 0 $((32 * k))K 256 302 0
	fi_want ok write 256 301 0 64K
	sweep "quotas off: truncate" ok truncate 256 301 4097
	sweep "quotas off: unlink" ok unlink 256 300
	sweep "quotas off: sync" ok sync
	sweep "quotas off: reserve (ENOTCONN)" ENOTCONN reserve 256 301 0 4K cs
	sweep "quotas off: qgroup create (ENOTCONN)" ENOTCONN qgroup create 1/1
	sweep "quotas off: meta reserve (ENOTCONN)" ENOTCONN meta reserve 5 16K prealloc
	sweep "quotas off: reset" ok reset
	: > $FI_HIST
}
