// SPDX-License-Identifier: GPL-2.0

//! `check`: the invariants of SPEC §1.7, in words a btrfs developer reads.

use kernel::{fmt, prelude::*};

use crate::{
    changeset::ByteRange,
    extent_io_tree::ExtentBits,
    fs::FsState,
    qgroup::{Counters, QgroupId, RsvType, ALL_COUNTERS},
};

/// Byte totals of one subvolume's inodes.
#[derive(Default)]
struct SubvolBytes {
    /// `QGROUP_RESERVED` bytes: the data reservation the inodes hold.
    reservation: u64,
    /// Bytes of extents allocated since the last commit.
    new: u64,
    /// Bytes of committed extents.
    committed: u64,
}

/// Runs of dirty, unreserved bytes: the first few, coalesced.
#[derive(Default)]
struct Runs {
    runs: [Option<ByteRange>; 4],
    dropped: usize,
}

impl Runs {
    fn add(&mut self, range: ByteRange) {
        let last = self.runs.iter_mut().rev().find_map(|r| r.as_mut());
        if let Some(last) = last {
            if last.end + 1 == range.start {
                last.end = range.end;
                return;
            }
        }
        match self.runs.iter_mut().find(|r| r.is_none()) {
            Some(slot) => *slot = Some(range),
            None => self.dropped += 1,
        }
    }

    fn kept(&self) -> impl Iterator<Item = &ByteRange> {
        self.runs.iter().flatten()
    }
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

        let underflows = self.underflows();
        if underflows != 0 {
            violation(format_args!(
                "{} qgroup counter underflow(s) happened (see the kernel log)",
                underflows
            ));
        }
        let quota = self.quota_enabled();
        let snapshot = if quota {
            Some(self.qgroups().snapshot()?)
        } else {
            None
        };
        let subvols = self.subvol_ids()?;
        let inodes = self.inodes(None)?;
        let mut next = 0usize;
        for &subvol in subvols.iter() {
            let mut bytes = SubvolBytes::default();
            while next < inodes.len() && inodes[next].subvol == subvol {
                let inode = &inodes[next];
                next += 1;
                // One pass over each tree checks it and counts its bytes; the
                // dirty, unreserved runs are kept inline (the walk runs under
                // the tree's spinlock) and reported after it.
                let mut unreserved = Runs::default();
                let io_fault = inode.io_tree.check_and_visit(|range, bits| {
                    // Sums saturate: with a legacy switch on, counts can
                    // disagree; without, they are bounded by 2^64 - 1
                    // (SPEC §7).
                    if bits.contains_all(ExtentBits::QGROUP_RESERVED) {
                        bytes.reservation = bytes.reservation.saturating_add(range.len());
                    } else if bits.contains_all(ExtentBits::DELALLOC) {
                        unreserved.add(range);
                    }
                });
                if let Some(fault) = io_fault {
                    violation(format_args!(
                        "inode {}/{} io tree: {}",
                        inode.subvol, inode.ino, fault
                    ));
                }
                let map_fault = inode.extents.check_and_visit(|range, bits| {
                    if bits.contains_all(ExtentBits::EXTENT_NEW) {
                        bytes.new = bytes.new.saturating_add(range.len());
                    }
                    if bits.contains_all(ExtentBits::EXTENT_COMMITTED) {
                        bytes.committed = bytes.committed.saturating_add(range.len());
                    }
                });
                if let Some(fault) = map_fault {
                    violation(format_args!(
                        "inode {}/{} extent map: {}",
                        inode.subvol, inode.ino, fault
                    ));
                }
                if quota {
                    for r in unreserved.kept() {
                        violation(format_args!(
                            "inode {}/{} dirty range [{}, {}] unreserved",
                            inode.subvol, inode.ino, r.start, r.end
                        ));
                    }
                    if unreserved.dropped > 0 {
                        violation(format_args!(
                            "inode {}/{} has {} more dirty unreserved ranges",
                            inode.subvol, inode.ino, unreserved.dropped
                        ));
                    }
                }
            }
            let Some(snapshot) = snapshot.as_ref() else {
                continue;
            };

            let id = QgroupId::level0(subvol);
            let Some(qgroup) = snapshot.get(id) else {
                violation(format_args!("subvolume {} has no qgroup {}", subvol, id));
                continue;
            };
            let c = &qgroup.counters;
            let data = c.may_use(RsvType::Data);
            if data != bytes.reservation {
                violation(format_args!(
                    "qgroup {} may_use.data is {}, but its inodes hold {} QGROUP_RESERVED bytes",
                    id, data, bytes.reservation
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
        let Some(snapshot) = snapshot.as_ref() else {
            return Ok(n);
        };
        snapshot.for_each_level0_below(|row, below| {
            let mut sum = Counters::default();
            for l in below {
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
        })?;
        Ok(n)
    }
}
