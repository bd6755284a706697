#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The guest side of `make compare`: run comparison scenarios (qemu/compare/
# *.qg) on the module, through its debugfs files, and on a fresh real btrfs
# on /dev/ram0, through syscalls and btrfs-progs, step by step; print both
# outcomes of every step and, at checkpoints, both qgroup tables and the
# data reservations; mark every difference.
#
#   sh /compare.sh FILE...      the report, then `N scenarios, N identical,
#                               N differing` (a "qgroup_rs-compare: " prefix
#                               on every line) and a verdict line
#   . /compare.sh (with COMPARE_LIB=1)   only the functions, for the KTAP
#                               scenario qemu/scenarios/60-compare.sh
#
# A scenario file holds one command a line in the module's grammar,
# restricted to what has a real counterpart, plus `checkpoint`; `#` starts
# a comment. The real counterparts:
#   quota enable|disable        btrfs quota enable (then rescan -W) | disable
#   quota enable simple         btrfs quota enable --simple (btrfs-progs >= 6.7)
#   quota rescan                btrfs quota rescan -w (starts a rescan and waits
#                               for it; the kernel commits first, like the
#                               module)
#   subvol create ID [QG ...]   btrfs subvolume create [-i QG ...] /mnt/sID;
#                               ids must come in btrfs's order (256, 257,
#                               ...), checked with btrfs inspect-internal rootid
#   subvol snapshot SRC DST [QG ...]
#                               btrfs subvolume snapshot [-i QG ...] SRC'S PATH
#                               /mnt/sDST (5's path is /mnt itself; a snapshot
#                               of 5 also holds the s* directories, empty);
#                               DST's id checked as for create
#   subvol delete S             btrfs subvolume delete /mnt/sS (5: --subvolid 5
#                               /mnt); at the next commit or sync the harness
#                               then waits for the cleaner to drop S (see
#                               drop_deleted: btrfs drops it, and removes 0/S,
#                               in the background; the model at that commit).
#                               So a `checkpoint` between a delete and the next
#                               commit or sync is not meaningful, and neither
#                               is a writeback there (its ordered extents wake
#                               the cleaner early).
#   qgroup create|destroy QG, qgroup assign|remove A B, qgroup limit [-e] N QG
#                               btrfs qgroup ... (assign/remove: --no-rescan;
#                               the module's `ok inconsistent=1` for a shared
#                               child is outcome ok, as btrfs-progs' warning
#                               "quotas may be inconsistent" with exit 0; the
#                               flag itself is compared at checkpoints)
#   write S INO OFF LEN         xfs_io -f -c "pwrite -b LEN OFF LEN": one
#                               buffered write(2), short writes reported
#   fallocate S INO OFF LEN     xfs_io -f -c "falloc OFF LEN"
#   writeback S INO             xfs_io -c fiemap (FIEMAP_FLAG_SYNC: btrfs_fiemap
#                               writes the file back and waits for its
#                               ordered extents; no transaction commit)
#   writeback                   the same for every file
#   truncate S INO SIZE         xfs_io -c "truncate SIZE"
#   unlink S INO                rm
#   commit                      btrfs_commit (BTRFS_IOC_START_SYNC + WAIT_SYNC:
#                               a commit that starts no writeback)
#   sync                        sync(2); a checkpoint follows
#   clone S INO OFF LEN S2 INO2 OFF2
#                               xfs_io -f -c "reflink SRC OFF OFF2 LEN" DST
#                               (FICLONERANGE; DST created if missing, but
#                               only when SRC exists, as the module creates
#                               no inode on a failed command)
# Inode INO of subvolume 5 is the file /mnt/fINO, of S the file /mnt/sS/fINO.
#
# "Identical": every step's outcome equal (ok, short N, or the errno name);
# at every checkpoint (after each sync and at each `checkpoint` line) the
# same qgroups with the same limits, parents and children, rfer and excl
# equal up to the whole nodesize blocks btrfs spends on tree blocks beyond
# each subvolume's root (printed as +N; btrfs's own count of the tree's
# blocks, from its root item, must account for all of them), and the data
# reservations equal:
# the module's may_use.data + reserved against btrfs's rsv_data (btrfs keeps
# a data reservation until the commit accounts its extent).
# and the status equal: the module's status file (mode, inconsistent)
# against /sys/fs/btrfs/<uuid>/qgroups/mode (qgroup = full, squota =
# simple; no qgroups directory = off) and .../qgroups/inconsistent (btrfs
# does not show whether it still accounts; the module's `accounting` is
# printed only).
# A difference is named `line L outcome`, `line L QG FIELD` (FIELD: rfer,
# excl, max_rfer, max_excl, parent, child, rsv_data, missing) or `line L
# status mode|inconsistent`. A scenario
# may declare the differences it expects, each explained from upstream code:
#   # differs: line L QG FIELD: cause
# It passes when identical, or when its differences are exactly the
# declared ones. `# make compare only` keeps a scenario out of make test
# (qemu/scenarios/60-compare.sh); make compare runs them all.

. /scenarios/lib/common.sh
MNT=/mnt
DEV=/dev/ram0
NODESIZE=16384
MOUNT_OPTS=max_inline=0,commit=300
CMP_TMP=/tmp/compare
mkdir -p $CMP_TMP

# Output: every line through say (common.sh); COMPARE_PREFIX picks the
# prefix. Sizes: common.sh's bytes.
: "${COMPARE_PREFIX:=qgroup_rs-compare: }"
SAY=$COMPARE_PREFIX

# errno_of TEXT: sets E to the errno name of a failed tool's message TEXT
# (common.sh's table), or to error:TEXT (its first line, blanks as _) for
# a message the table lacks or none.
errno_of() {
	errno_name "$1"
	case $ERRNO in
	ok | "?("*)
		E=$(echo "$1" | head -1 | tr -s ' \t' '__')
		E="error:${E:-unknown}"
		;;
	*) E=$ERRNO ;;
	esac
}

# file_of S INO: sets F to the real file of inode INO of subvolume S.
file_of() {
	if [ "$1" = 5 ]; then F=$MNT/f$2; else F=$MNT/s$1/f$2; fi
}

# file_range S INO OFF LEN: file_of, and sets off and B to OFF and LEN in
# bytes.
file_range() {
	file_of $1 $2
	bytes "$3"
	off=$B
	bytes "$4"
}

# module_step COMMAND: run COMMAND on the module; sets MO to its outcome.
module_step() {
	run "$1"
	read -r first errno rest < $QG/result
	if [ "$first" != ok ]; then
		MO=$errno
		return
	fi
	MO=ok
	set -- $1
	if [ "$1" = write ]; then
		bytes "$5"
		case " $errno $rest " in
		*" written="*)
			w=" $errno $rest "
			w=${w#* written=}
			w=${w%% *}
			[ "$w" = "$B" ] || MO="short $w"
			;;
		esac
	fi
}

# drop_deleted: after the commit (or sync) that follows `subvol delete`,
# let the cleaner drop the deleted subvolumes (CMP_DELETED) and wait for
# it: btrfs_drop_snapshot, then btrfs_qgroup_cleanup_dropped_subvolume
# commits and removes 0/S; then commit that removal. The cleaner sleeps
# until woken, or until the commit interval (300 s here). btrfs_commit
# wakes it only when a transaction was running (BTRFS_IOC_START_SYNC
# commits through the transaction kthread, which wakes the cleaner when
# done); sync(2) never does. Rewriting the label through sysfs wakes the
# transaction kthread, which with nothing to commit wakes the cleaner at
# once (no writeback, no commit of its own). Woken again every 5 s, up
# to a minute. Sets RO on failure.
drop_deleted() {
	[ -n "$CMP_DELETED" ] || return 0
	lf=/sys/fs/btrfs/$CMP_UUID/label
	for d in $CMP_DELETED; do
		tries=0
		while :; do
			read -r label < $lf || label=
			printf '%s\n' "$label" > $lf
			out=$(timeout 5 btrfs subvolume sync $MNT $d 2>&1) && break
			tries=$((tries + 1))
			[ $tries -lt 12 ] && continue
			errno_of "$out"
			RO="subvolume sync $E"
			break
		done
	done
	CMP_DELETED=
	out=$(btrfs_commit $MNT 2>&1) || { errno_of "$out"; RO=$E; }
}

# real_step COMMAND: run COMMAND's counterpart on btrfs; sets RO.
real_step() {
	set -- $1
	RO=ok
	case "$1 $2" in
	"quota enable")
		if [ "$3" = simple ]; then
			out=$(btrfs quota enable --simple $MNT 2>&1) || { errno_of "$out"; RO=$E; }
			return
		fi
		out=$(btrfs quota enable $MNT 2>&1) || { errno_of "$out"; RO=$E; return; }
		out=$(btrfs quota rescan -W $MNT 2>&1) || { errno_of "$out"; RO="rescan $E"; }
		;;
	"quota rescan")
		out=$(btrfs quota rescan -w $MNT 2>&1) || { errno_of "$out"; RO=$E; }
		;;
	"quota disable")
		out=$(btrfs quota disable $MNT 2>&1) || { errno_of "$out"; RO=$E; }
		;;
	"subvol create" | "subvol snapshot")
		# create ID [QG ...] | snapshot SRC DST [QG ...]
		v=$2
		shift 2
		if [ $v = snapshot ]; then
			[ $# -ge 2 ] || { RO=EINVAL; return; }
			if [ "$1" = 5 ]; then src=$MNT; else src=$MNT/s$1; fi
			shift
		fi
		dst=$1
		shift
		inh=
		for q in "$@"; do inh="$inh -i $q"; done
		if [ $v = create ]; then
			out=$(btrfs subvolume create $inh $MNT/s$dst 2>&1)
		else
			out=$(btrfs subvolume snapshot $inh $src $MNT/s$dst 2>&1)
		fi || { errno_of "$out"; RO=$E; return; }
		id=$(btrfs inspect-internal rootid $MNT/s$dst 2>&1)
		[ "$id" = "$dst" ] || RO="ok id=$id"
		;;
	"subvol delete")
		# 5 has no path of its own: by id, as the kernel refuses it
		if [ "$3" = 5 ]; then
			out=$(btrfs subvolume delete --subvolid 5 $MNT 2>&1)
		else
			out=$(btrfs subvolume delete $MNT/s$3 2>&1)
		fi || { errno_of "$out"; RO=$E; return; }
		CMP_DELETED="$CMP_DELETED $3"
		;;
	"qgroup create" | "qgroup destroy")
		out=$(btrfs qgroup $2 $3 $MNT 2>&1) || { errno_of "$out"; RO=$E; }
		;;
	"qgroup assign" | "qgroup remove")
		out=$(btrfs qgroup $2 --no-rescan $3 $4 $MNT 2>&1) || { errno_of "$out"; RO=$E; }
		;;
	"qgroup limit")
		if [ "$3" = -e ]; then
			e=-e
			shift
		else
			e=
		fi
		if [ "$3" = none ]; then B=none; else bytes "$3"; fi
		out=$(btrfs qgroup limit $e $B $4 $MNT 2>&1) || { errno_of "$out"; RO=$E; }
		;;
	"write "*)
		file_range $2 $3 $4 $5
		out=$(xfs_io -f -c "pwrite -b $B $off $B" $F 2>&1)
		case $out in
		*"wrote "*)
			w=${out#*wrote }
			w=${w%%/*}
			[ "$w" = "$B" ] || RO="short $w"
			;;
		*)
			errno_of "$out"
			RO=$E
			;;
		esac
		;;
	"fallocate "*)
		file_range $2 $3 $4 $5
		out=$(xfs_io -f -c "falloc $off $B" $F 2>&1)
		[ -z "$out" ] || { errno_of "$out"; RO=$E; }
		;;
	"writeback "*)
		if [ -n "$2" ]; then
			file_of $2 $3
			set -- $F
		else
			set --
			for F in $MNT/f* $MNT/s*/f*; do
				[ -f "$F" ] && set -- "$@" $F
			done
		fi
		for F in "$@"; do
			out=$(xfs_io -c fiemap $F 2>&1 >/dev/null)
			[ -z "$out" ] || { errno_of "$out"; RO=$E; }
		done
		;;
	"truncate "*)
		file_of $2 $3
		bytes "$4"
		out=$(xfs_io -c "truncate $B" $F 2>&1)
		[ -z "$out" ] || { errno_of "$out"; RO=$E; }
		;;
	"unlink "*)
		file_of $2 $3
		out=$(rm $F 2>&1) || { errno_of "$out"; RO=$E; }
		;;
	"clone "*)
		if [ $# -ne 8 ]; then
			RO=EINVAL
			return
		fi
		file_of $2 $3
		src=$F
		file_of $6 $7
		bytes "$4"
		soff=$B
		bytes "$5"
		len=$B
		bytes "$8"
		if [ ! -f "$src" ]; then
			RO=ENOENT
			return
		fi
		out=$(xfs_io -f -c "reflink -q $src $soff $B $len" $F 2>&1)
		[ -z "$out" ] || { errno_of "$out"; RO=$E; }
		;;
	"commit "*)
		out=$(btrfs_commit $MNT 2>&1) || { errno_of "$out"; RO=$E; return; }
		drop_deleted
		;;
	"sync "*)
		sync || RO=error
		drop_deleted
		;;
	*)
		RO="unsupported"
		;;
	esac
}

# diff_found KEY: record a difference.
diff_found() {
	CMP_FOUND="$CMP_FOUND$1
"
}

# status_compare L: the module's status (mode, inconsistent) against
# btrfs's /sys/fs/btrfs/<uuid>/qgroups/mode (qgroup = full, squota =
# simple; no qgroups directory = off) and .../qgroups/inconsistent. (btrfs
# does not show whether it accounts, BTRFS_QGROUP_RUNTIME_FLAG_NO_ACCOUNTING:
# the module's `accounting` is printed, not compared.) Differences go to
# $CMP_TMP/diffs as `status mode` and `status inconsistent`.
status_compare() {
	mm=? mi=? ma=?
	while read -r k v; do
		case $k in
		mode) mm=$v ;;
		inconsistent) mi=$v ;;
		accounting) ma=$v ;;
		esac
	done < $QG/status
	qd=/sys/fs/btrfs/$CMP_UUID/qgroups
	bm=off bi=0
	if [ -d $qd ]; then
		read -r bm < $qd/mode || bm=?
		case $bm in qgroup) bm=full ;; squota) bm=simple ;; esac
		read -r bi < $qd/inconsistent || bi=?
	fi
	st="    status  mode $mm/$bm"
	[ "$mm" = "$bm" ] || { st="$st DIFF"; echo "DIFF line $1 status mode" >> $CMP_TMP/diffs; }
	st="$st  inconsistent $mi/$bi"
	[ "$mi" = "$bi" ] || { st="$st DIFF"; echo "DIFF line $1 status inconsistent" >> $CMP_TMP/diffs; }
	say "$st  (module accounting $ma)"
}

# checkpoint L: both tables and the data reservations; records differences.
# Tree blocks: btrfs_commit --tree-bytes gives each subvolume's root item
# bytes_used (nodesize x its tree blocks, as of the last commit, like rfer),
# so the blocks beyond the root that a level-0 qgroup may have more are
# known exactly: (bytes_used - nodesize) / nodesize; a higher-level qgroup
# may have the sum over the distinct level-0 qgroups below it.
checkpoint() {
	l=$1
	cat $QG/qgroups > $CMP_TMP/m.qgroups
	cat $QG/reservations > $CMP_TMP/m.rsv
	btrfs qgroup show -pcre --raw $MNT > $CMP_TMP/b.qgroups 2>&1
	: > $CMP_TMP/b.rsv
	ids=
	for d in /sys/fs/btrfs/$CMP_UUID/qgroups/*_*; do
		[ -d "$d" ] || continue
		q=${d##*/}
		read -r rd < $d/rsv_data
		read -r rp < $d/rsv_meta_prealloc
		read -r rt < $d/rsv_meta_pertrans
		echo "${q%%_*}/${q#*_} $rd $rp $rt" >> $CMP_TMP/b.rsv
		[ "${q%%_*}" = 0 ] && ids="$ids ${q#*_}"
	done
	: > $CMP_TMP/b.tree
	[ -z "$ids" ] || btrfs_commit --tree-bytes $MNT $ids > $CMP_TMP/b.tree 2>&1
	while IFS= read -r row; do say "    module| $row"; done < $CMP_TMP/m.qgroups
	# btrfs-progs' own "WARNING: qgroup data inconsistent, rescan
	# recommended" (an assign of a shared child) is no kernel WARNING: the
	# judge must not take it for one.
	while IFS= read -r row; do
		case $row in
		*"WARNING: "*) row="${row%%WARNING: *}btrfs-progs warning: ${row#*WARNING: }" ;;
		esac
		say "    btrfs | $row"
	done < $CMP_TMP/b.qgroups
	awk -v line="$l" -v ns=$NODESIZE -v pre="$COMPARE_PREFIX" '
	function say(s) { print pre s }
	function dash(v) { return v == "-" ? "---" : v }
	FNR == 1 { fi++ }
	fi == 1 && $1 ~ /^[0-9]+\/[0-9]+$/ {
		m[$1] = 1; mr[$1] = $2; me[$1] = $3; mmr[$1] = $4; mme[$1] = $5; mp[$1] = $6; mc[$1] = $7 }
	fi == 2 && $1 ~ /^[0-9]+\/[0-9]+$/ {
		mrsv[$1] = $2 + $6; mpre[$1] = $3; mper[$1] = $4 }
	fi == 3 && $1 ~ /^[0-9]+\/[0-9]+$/ {
		b[$1] = 1; br[$1] = $2; be[$1] = $3
		bmr[$1] = ($4 == "none" ? 0 : $4); bme[$1] = ($5 == "none" ? 0 : $5)
		bp[$1] = dash($6); bc[$1] = dash($7) }
	fi == 4 { brsv[$1] = $2; bpre[$1] = $3; bper[$1] = $4 }
	fi == 5 && $1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ { tree["0/" $1] = $2 }
	# level-0 qgroups below q (through the btrfs child lists), each once
	function below(q,   n, c, i) {
		if (q ~ /^0\//) { seen0[q] = 1; return }
		if (bc[q] == "---") return
		n = split(bc[q], c, ",")
		for (i = 1; i <= n; i++) below(c[i])
	}
	function extra(q,   x, z) {
		delete seen0
		below(q)
		x = 0
		for (z in seen0) {
			if (!(z in tree)) return -1
			x += tree[z] - ns
		}
		return x
	}
	function blocks(q, f, mv, bv,   d, x) {
		d = bv - mv
		x = extra(q)
		# Equal numbers need no tree blocks, also where a subvolume
		# below has no root item any more (deleted, its qgroup kept).
		if (d == 0) return "+0"
		if (x < 0 || d != x) { diffs[q " " f] = 1; return "DIFF" (x < 0 ? "" : " (tree +" x / ns ")") }
		return "+" d / ns
	}
	function cmp(q, f, mv, bv) { if (mv != bv) { diffs[q " " f] = 1; return " DIFF" } return "" }
	END {
		n = 0
		for (q in m) all[q] = 1
		for (q in b) all[q] = 1
		for (q in all) { split(q, p, "/"); key[q] = p[1] * 281474976710656 + p[2]; order[++n] = q }
		for (i = 2; i <= n; i++) for (j = i; j > 1 && key[order[j-1]] > key[order[j]]; j--) {
			t = order[j]; order[j] = order[j-1]; order[j-1] = t }
		say(sprintf("    %-7s %-27s %-27s %-22s %-22s %-15s %s", "qgroup", "rfer module/btrfs +blocks",
			"excl module/btrfs +blocks", "limits rfer/excl", "parent", "child", "rsv_data module/btrfs"))
		for (i = 1; i <= n; i++) {
			q = order[i]
			if (!(q in m) || !(q in b)) {
				diffs[q " missing"] = 1
				say(sprintf("    %-7s only in %s DIFF", q, (q in m) ? "the module" : "btrfs"))
				continue
			}
			rb = blocks(q, "rfer", mr[q], br[q]); eb = blocks(q, "excl", me[q], be[q])
			lim = mmr[q] "/" mme[q]; if (mmr[q] != bmr[q] || mme[q] != bme[q]) lim = lim " vs " bmr[q] "/" bme[q]
			say(sprintf("    %-7s %-27s %-27s %-22s %-22s %-15s %s", q,
				mr[q] "/" br[q] " " rb, me[q] "/" be[q] " " eb,
				lim cmp(q, "max_rfer", mmr[q], bmr[q]) cmp(q, "max_excl", mme[q], bme[q]),
				mp[q] (mp[q] == bp[q] ? "" : " vs " bp[q]) cmp(q, "parent", mp[q], bp[q]),
				mc[q] (mc[q] == bc[q] ? "" : " vs " bc[q]) cmp(q, "child", mc[q], bc[q]),
				mrsv[q] "/" brsv[q] cmp(q, "rsv_data", mrsv[q], brsv[q]) \
				"   (meta prealloc " mpre[q] "/" bpre[q] ", pertrans " mper[q] "/" bper[q] ")"))
		}
		for (d in diffs) print "DIFF line " line " " d > "/tmp/compare/diffs"
	}' $CMP_TMP/m.qgroups $CMP_TMP/m.rsv $CMP_TMP/b.qgroups $CMP_TMP/b.rsv $CMP_TMP/b.tree ||
		{ diff_found "line $l checkpoint"; say "    DIFF line $l checkpoint: the comparison failed"; }
	status_compare $l
	if [ -s $CMP_TMP/diffs ]; then
		sort $CMP_TMP/diffs > $CMP_TMP/diffs.sorted
		while read -r tag rest; do
			diff_found "$rest"
			say "    DIFF $rest"
		done < $CMP_TMP/diffs.sorted
		rm -f $CMP_TMP/diffs
	fi
}

# fresh_btrfs: a new btrfs on $DEV mounted on $MNT; sets CMP_UUID.
fresh_btrfs() {
	grep -q " $MNT " /proc/mounts && umount $MNT
	mkdir -p $MNT
	out=$(mkfs.btrfs -f -q $DEV 2>&1) || { say "mkfs.btrfs failed: $out"; return 1; }
	out=$(mount -t btrfs -o $MOUNT_OPTS $DEV $MNT 2>&1) || { say "mount failed: $out"; return 1; }
	CMP_UUID=
	for d in /sys/fs/btrfs/*-*; do
		[ -d "$d" ] && CMP_UUID=${d##*/}
	done
	[ -n "$CMP_UUID" ] || { say "no /sys/fs/btrfs/<uuid>"; return 1; }
}

# brief: a list of differences on stdin as one short line.
brief() {
	awk '{ if (NR <= 4) s = s (NR > 1 ? "; " : "") $0 } END { if (NR > 4) s = s "; ... (" NR " in all)"; printf "%s", s }'
}

# compare_file FILE: run one comparison scenario. Returns 0 when it passes
# (identical, or differing exactly as declared), 1 otherwise; sets
# CMP_VERDICT to identical, "differs as declared" or "differs: ...".
compare_file() {
	file=$1
	name=${file##*/}
	CMP_FOUND=
	CMP_DELETED=
	declared=
	title=
	while read -r line; do
		case $line in
		"# differs: "*)
			d=${line#\# differs: }
			declared="$declared${d%%: *}
"
			;;
		"# "*) [ -n "$title" ] || title=${line#\# } ;;
		esac
	done < "$file"
	say "== $name: $title"
	run reset
	if ! fresh_btrfs; then
		CMP_VERDICT="differs: no btrfs"
		return 1
	fi
	lno=0
	while IFS= read -r line || [ -n "$line" ]; do
		lno=$((lno + 1))
		line=${line%%#*}
		set -- $line
		[ $# -gt 0 ] || continue
		line="$*"
		if [ "$line" = checkpoint ]; then
			say "  L$lno checkpoint"
			checkpoint $lno
			continue
		fi
		module_step "$line"
		real_step "$line"
		mark=
		if [ "$MO" != "$RO" ]; then
			mark="   DIFF"
			diff_found "line $lno outcome"
		fi
		say "$(printf '  L%-3s %-32s module %-14s btrfs %s%s' $lno "$line" "$MO" "$RO" "$mark")"
		[ "$1" = sync ] && checkpoint $lno
	done < "$file"
	umount $MNT 2>/dev/null || say "umount $MNT failed"

	found=$(printf '%s' "$CMP_FOUND" | sort -u | sort -t' ' -k2,2n -k3)
	want=$(printf '%s' "$declared" | sort -u | sort -t' ' -k2,2n -k3)
	if [ -z "$found" ] && [ -z "$want" ]; then
		CMP_VERDICT=identical
	elif [ "$found" = "$want" ]; then
		CMP_VERDICT="differs as declared"
	else
		extra=$(printf '%s\n' "$found" | grep -vxF "${want:-@none@}" | grep . | brief)
		missing=$(printf '%s\n' "$want" | grep -vxF "${found:-@none@}" | grep . | brief)
		CMP_VERDICT="differs:${extra:+ undeclared: $extra}${missing:+ declared but not seen: $missing}"
		printf '%s\n' "$found" | grep -vxF "${want:-@none@}" | grep . | while read -r d; do
			say "   undeclared: $d"
		done
		printf '%s\n' "$want" | grep -vxF "${found:-@none@}" | grep . | while read -r d; do
			say "   declared but not seen: $d"
		done
	fi
	say "== $name: $CMP_VERDICT"
	[ "$CMP_VERDICT" = identical ] || [ "$CMP_VERDICT" = "differs as declared" ]
}

if [ -z "$COMPARE_LIB" ]; then
	n=0 same=0 differ=0 bad=0
	for f in "$@"; do
		[ -f "$f" ] || continue
		n=$((n + 1))
		t0=$(cut -d' ' -f1 /proc/uptime)
		compare_file "$f" || bad=$((bad + 1))
		if [ "$CMP_VERDICT" = identical ]; then same=$((same + 1)); else differ=$((differ + 1)); fi
		say "   (${t0}s to $(cut -d' ' -f1 /proc/uptime)s)"
	done
	say ""
	say "$n scenarios, $same identical, $differ differing ($((differ - bad)) as declared, $bad not)"
	if [ $bad = 0 ] && [ $n -gt 0 ]; then
		echo "${GUEST}compare verdict ok"
	else
		echo "${GUEST}compare verdict differs"
	fi
fi
