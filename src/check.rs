// SPDX-License-Identifier: GPL-2.0

//! `check`: the invariants of SPEC §1.7, in words a btrfs developer reads.

use kernel::{fmt, prelude::*};

use crate::{
    changeset::ByteRange,
    extent_io_tree::{ExtentBits, MAX_END},
    fs::FsState,
    qgroup::{Counters, QgroupId, QgroupSnapshot, RsvType, ALL_COUNTERS},
};

/// Byte totals of one subvolume's inodes.
#[derive(Default)]
struct SubvolBytes {
    reserved: u64,
    new: u64,
    committed: u64,
}

/// The distinct level-0 qgroups below `id` in `snapshot`.
fn level0_below(snapshot: &QgroupSnapshot, id: QgroupId) -> Result<KVec<QgroupId>> {
    let mut seen = KVec::new();
    seen.push(id, GFP_KERNEL)?;
    let mut i = 0;
    while i < seen.len() {
        let parent = seen[i];
        for &(child, p) in snapshot.relations.iter() {
            if p == parent && !seen.contains(&child) {
                seen.push(child, GFP_KERNEL)?;
            }
        }
        i += 1;
    }
    seen.retain(|q| q.level() == 0);
    Ok(seen)
}

impl FsState {
    /// Checks every invariant and calls `report` once per violation.
    /// Returns the number of violations.
    ///
    /// The io trees are checked whatever the quota state; the qgroup
    /// invariants only while quotas are enabled.
    pub(crate) fn check(&self, mut report: impl FnMut(fmt::Arguments<'_>)) -> Result<usize> {
        let mut n = 0usize;
        let mut violation = |args: fmt::Arguments<'_>| {
            n += 1;
            report(args);
        };

        let underflows = self.qgroups().underflows();
        if underflows != 0 {
            violation(format_args!(
                "{} qgroup counter underflow(s) happened (see the kernel log)",
                underflows
            ));
        }
        self.for_each_inode(|inode| -> Result {
            if let Some(fault) = inode.io_tree.check() {
                violation(format_args!(
                    "inode {}/{} io tree: {}",
                    inode.subvol, inode.ino, fault
                ));
            }
            if let Some(fault) = inode.extents.check() {
                violation(format_args!(
                    "inode {}/{} extent map: {}",
                    inode.subvol, inode.ino, fault
                ));
            }
            Ok(())
        })?;
        if !self.quota_enabled() {
            return Ok(n);
        }

        let snapshot = self.qgroups().snapshot()?;
        let mut subvols = KVec::new();
        self.for_each_subvol(|id| {
            let _ = subvols.push(id, GFP_KERNEL);
        });
        for &subvol in subvols.iter() {
            let mut bytes = SubvolBytes::default();
            self.for_each_inode(|inode| -> Result {
                if inode.subvol != subvol {
                    return Ok(());
                }
                bytes.reserved +=
                    inode
                        .io_tree
                        .count_bits(0, MAX_END, ExtentBits::QGROUP_RESERVED)?;
                bytes.new += inode
                    .extents
                    .count_bits(0, MAX_END, ExtentBits::EXTENT_NEW)?;
                bytes.committed +=
                    inode
                        .extents
                        .count_bits(0, MAX_END, ExtentBits::EXTENT_COMMITTED)?;
                // Every DELALLOC byte must be QGROUP_RESERVED.
                let states = inode.io_tree.snapshot(0, MAX_END)?;
                let mut unreserved: Option<ByteRange> = None;
                let mut flush = |r: &mut Option<ByteRange>| {
                    if let Some(r) = r.take() {
                        violation(format_args!(
                            "inode {}/{} dirty range [{}, {}] unreserved",
                            inode.subvol, inode.ino, r.start, r.end
                        ));
                    }
                };
                for &(range, bits) in states.iter() {
                    let bad = bits.contains(ExtentBits::DELALLOC)
                        && !bits.contains(ExtentBits::QGROUP_RESERVED);
                    match (&mut unreserved, bad) {
                        (Some(r), true) if r.end + 1 == range.start => r.end = range.end,
                        (_, true) => {
                            flush(&mut unreserved);
                            unreserved = Some(range);
                        }
                        (_, false) => flush(&mut unreserved),
                    }
                }
                flush(&mut unreserved);
                Ok(())
            })?;

            let id = QgroupId::level0(subvol);
            let Some(qgroup) = snapshot.get(id) else {
                violation(format_args!("subvolume {} has no qgroup {}", subvol, id));
                continue;
            };
            let c = &qgroup.counters;
            let data = c.may_use[RsvType::Data as usize];
            if data != bytes.reserved {
                violation(format_args!(
                    "qgroup {} may_use.data is {}, but its inodes hold {} QGROUP_RESERVED bytes",
                    id, data, bytes.reserved
                ));
            }
            if c.reserved != bytes.new {
                violation(format_args!(
                    "qgroup {} reserved is {}, expected {} (allocated, uncommitted extent bytes)",
                    id, c.reserved, bytes.new
                ));
            }
            let expect = self
                .nodesize()
                .saturating_add(bytes.committed)
                .saturating_add(self.dropped_committed(subvol));
            for (name, value) in [("rfer", c.rfer), ("excl", c.excl)] {
                if value != expect {
                    violation(format_args!(
                        "qgroup {} {} is {}, expected {} (nodesize + committed extent bytes)",
                        id, name, value, expect
                    ));
                }
            }
        }

        // Each higher-level qgroup covers its distinct level-0 qgroups once.
        for row in snapshot.rows.iter().filter(|row| row.id.level() > 0) {
            let mut sum = Counters::default();
            for l in level0_below(&snapshot, row.id)?.iter() {
                if let Some(q) = snapshot.get(*l) {
                    sum.add(&q.counters);
                }
            }
            for counter in ALL_COUNTERS {
                let (have, want) = (row.qgroup.counters.get(counter), sum.get(counter));
                if have != want {
                    violation(format_args!(
                        "qgroup {} {} is {}, the sum over its level-0 members is {}",
                        row.id,
                        counter.name(),
                        have,
                        want
                    ));
                }
            }
        }
        Ok(n)
    }
}
