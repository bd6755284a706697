#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Every class of bad command gets its errno and changes nothing; then a
# storm of garbage, a 1 MiB write, an embedded NUL and four concurrent
# writers, after which the module still answers and check is ok.
. /scenarios/lib/ktap.sh

plan 57

# Everything a command could change: every read file but result (and the
# edquot statistic, which counts refusals by design).
state() {
	cat "$QG/qgroups" "$QG/reservations" "$QG/inodes" "$QG/extents" "$QG/mappings" \
		"$QG/status" "$QG/check" "$QG/legacy"
	while read -r key value; do
		[ "$key" = edquot ] || echo "$key $value"
	done < "$QG/stats"
}

# bad ERRNO COMMAND...: refused with ERRNO, the write fails, nothing changes.
bad() {
	want=$1
	shift
	before=$(state)
	run "$@"
	status=$?
	got=$(outcome)
	after=$(state)
	s=0
	[ "$got" = "$want" ] && [ $status != 0 ] && [ "$before" = "$after" ] || s=1
	[ $s = 0 ] || note "$*: $(cat $QG/result), write status $status"
	result $s "$* -> $want, nothing changed"
}

# ENOTCONN first, with quotas off (syntax still wins).
bad ENOTCONN reserve 5 257 0 4K a
bad ENOTCONN qgroup create 1/1
bad ENOTCONN meta reserve 5 16K prealloc
bad ENOTCONN quota rescan
bad EINVAL qgroup create 0/1

quiet quota enable
quiet subvol create 256
quiet qgroup create 1/100
quiet qgroup assign 0/256 1/100
quiet qgroup limit -e 64K 0/5
quiet write 5 257 0 8K
quiet reserve 5 258 0 4K cs1

bad EINVAL frobnicate
bad EINVAL write 5 257 0 0
bad EINVAL write 5 257 9223372036854775807 2
bad EINVAL write 5 255 0 4K
bad EINVAL write 5 257 0 4Q
bad EINVAL qgroup create 0/7
bad EINVAL qgroup assign 1/100 0/256
bad EINVAL meta reserve 5 1000 prealloc
bad EINVAL reserve 5 257 0 4K BAD
bad EINVAL legacy nope on
bad EINVAL subvol create 100
bad EINVAL free 5 257 0 4K cs1
bad EINVAL quota
bad EINVAL clone 5 257 0 4K 5 260
bad EINVAL clone 5 257 100 4K 5 260 0
bad EINVAL clone 5 257 0 4095 5 260 0
bad EINVAL clone 5 257 0 0 5 260 0
bad EINVAL clone 5 257 0 8K 5 257 4K
bad EINVAL clone 5 257 0 8K 5 260 9223372036854771712
bad ENOENT clone 5 999 0 4K 5 260 0
bad ENOENT clone 5 257 0 4K 300 260 0
bad ENOENT write 300 257 0 4K
bad ENOENT truncate 5 999 0
bad ENOENT free 5 258 0 4K nosuch
bad ENOENT qgroup destroy 1/7
bad ENOENT changeset drop nosuch
bad ENOENT qgroup remove 0/5 1/100
bad EEXIST subvol create 256
bad EEXIST subvol create 5
bad EEXIST qgroup create 1/100
bad EEXIST qgroup assign 0/256 1/100
bad EBUSY quota enable simple
bad EINVAL quota enable full
bad EBUSY qgroup destroy 1/100
bad EBUSY qgroup destroy 0/5
bad EBUSY quota disable
# A limit's EDQUOT flushes first (SPEC §1.5a), and the flush's effects
# stay: without the flush, nothing at all changes.
quiet legacy no_edquot_flush on
bad EDQUOT write 5 259 0 1M
bad EDQUOT fallocate 5 259 0 1M
bad EDQUOT meta reserve 5 64K pertrans
bad EDQUOT write 5 257 0 4K fail=meta
quiet legacy no_edquot_flush off
same "EDQUOTs counted" "$(field stats edquot)" 4

before=$(state)
# 1000 writes of 1..64 random bytes (1..255: awk strings end at NUL; the
# embedded NUL has its own case below), one write(2) each from one awk.
seed=$RANDOM
note "random seed $seed"
awk -v seed="$seed" -v ctl="$QG/control" 'BEGIN {
	srand(seed)
	for (i = 0; i < 1000; i++) {
		n = int(rand() * 64) + 1
		s = ""
		for (j = 0; j < n; j++)
			s = s sprintf("%c", int(rand() * 255) + 1)
		printf "%s", s > ctl
		close(ctl)
	}
}' 2>/dev/null
same "1000 writes of random bytes change nothing" "$(state)" "$before"
head -c 1048576 /dev/zero | tr '\0' c > /tmp/big
dd if=/tmp/big of="$QG/control" bs=1048576 count=1 2>/dev/null
result $((1 - $?)) "a 1 MiB write fails"
same "the 1 MiB write is EINVAL" "$(outcome)" EINVAL
printf 'commit\000junk' > /tmp/nul
dd if=/tmp/nul of="$QG/control" bs=64 count=1 2>/dev/null
result $((1 - $?)) "a command with an embedded NUL fails"
same "the NUL is EINVAL" "$(outcome)" EINVAL
same "nothing changed" "$(state)" "$before"

# Four writers at once, 100 writes each, on inodes 300..303 of subvolume 256.
quiet qgroup limit -e none 0/5
for p in 0 1 2 3; do
	(
		i=0
		while [ $i -lt 100 ]; do
			printf 'write 256 %d %d 4096\n' $((300 + p)) $((i * 4096)) > "$QG/control"
			i=$((i + 1))
		done
	) &
done
wait
same "every concurrent write landed" "$(grep -c '^256 30[0-3] 0 409599 DELALLOC|QGROUP_RESERVED$' $QG/inodes)" 4
same "0/256 reservations add up" "$(rsv_row 0/256)" "0/256 1638400 6553600 0 8192000 0"
check_ok "check ok after the storm"
expect ok sync
check_ok "check ok after sync"
