#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The benchmark of `make bench` (src/tools/bench.rs), at its smoke scale: every
# row runs with tiny counts and is printed to the kernel log. No figure is
# judged here; this only keeps the bench working. It runs on structures of
# its own and leaves the instance as it was.
. /scenarios/lib/ktap.sh

# Row names and how many rows each prints (3 sizes, or 1, or 2 workers).
ROWS="clock:1 spinlock:1 rbtree:3 rbtree_reused:3 io_tree:3 reserve_release:3
write_writeback:3 set_bits_holes:3 qgroup_assign:3 commit_dirty:3 snapshot_items:3
delete_items:3 clone_items:3 rescan_extents:3 calibration:2 stress:2
mem_state:1 mem_extent:1 mem_extent_root:1 mem_inode:1 mem_inode_spares:1"
TOTAL=47

plan 29

expect ok quota enable
expect ok bench
same "result counts the rows" "$(cat $QG/result)" "ok rows=$TOTAL"
# The rows of this run: the kernel log from its last begin line on.
dmesg | awk '/qgroup_rs: bench: begin/ { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' > /tmp/bench.log
same "the run ends" "$(grep -c "qgroup_rs: bench: end rows=$TOTAL\$" /tmp/bench.log)" 1
for entry in $ROWS; do
	name=${entry%:*}
	same "row $name" "$(grep -c "qgroup_rs: bench: row $name [0-9]* [0-9n]" /tmp/bench.log)" "${entry#*:}"
done
# The rows run interleaved with the floor carry their paired ratio; the
# stress rows their spread and the flushes and commits of the median run.
same "paired rows" "$(grep -c 'qgroup_rs: bench: row \(io_tree\|reserve_release\|write_writeback\) .* paired=[0-9]*\.[0-9]\{3\}$' /tmp/bench.log)" 9
same "stress rows with events" "$(grep -c 'qgroup_rs: bench: row stress .* min=[0-9]* max=[0-9]* runs=3 flushes=[0-9]* commits=[0-9]*$' /tmp/bench.log)" 2
expect EINVAL bench everything
check_ok "the instance is untouched"
