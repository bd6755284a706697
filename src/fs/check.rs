// SPDX-License-Identifier: GPL-2.0

//! `check`: the invariants of SPEC §1.7, in words a btrfs developer reads.

use kernel::{fmt, prelude::*, rbtree::RBTree};

use crate::{
    changeset::ByteRange,
    extent_io_tree::ExtentBits,
    fs::FsState,
    ids::SubvolId,
    inode::Inode,
    qgroup::{Counter, Counters, QgroupId, QgroupSnapshot, QuotaMode, RsvType, ALL_COUNTERS},
};

/// Byte totals of one subvolume's inodes.
#[derive(Default)]
struct SubvolBytes {
    /// `QGROUP_RESERVED` bytes: the data reservation the inodes hold.
    reservation: u64,
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
        // (extent, subvol) of every item.
        let mut refs = KVec::new();
        // Reservation bytes of the extent records, by owner.
        let records = self.record_reservations()?;
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
                self.check_items(inode, &mut refs, &mut violation)?;
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

            let id = subvol.qgroup();
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
            let pending = records.get(&subvol.root()).copied().unwrap_or(0);
            if c.reserved != pending {
                violation(format_args!(
                    "qgroup {} reserved is {}, expected {} (the reservations of its uncommitted extent records)",
                    id, c.reserved, pending
                ));
            }
        }
        refs.sort_unstable();
        self.check_extents(&refs, &mut violation);

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
            // rfer and excl are no sums: a shared extent counts once.
            for counter in ALL_COUNTERS {
                if matches!(counter, Counter::Rfer | Counter::Excl) {
                    continue;
                }
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
        if !self.inconsistent() {
            self.check_rescan(snapshot, &mut violation)?;
        }
        Ok(n)
    }
}

impl FsState {
    /// Reservation bytes of the extent records (allocated since the last
    /// commit), by owner subvolume.
    fn record_reservations(&self) -> Result<RBTree<u64, u64>> {
        let mut out = RBTree::new();
        let tree = self.extent_tree();
        for (_, extent) in tree.iter().filter(|(_, e)| e.rsv() > 0) {
            match out.get_mut(&extent.owner) {
                Some(sum) => *sum = u64::saturating_add(*sum, extent.rsv()),
                None => {
                    out.try_create_and_insert(extent.owner, extent.rsv(), GFP_KERNEL)?;
                }
            }
        }
        Ok(out)
    }

    /// Checks the file extent items of `inode` against the extents they
    /// point into, and lists them in `refs` as (extent, subvol).
    fn check_items(
        &self,
        inode: &Inode,
        refs: &mut KVec<(u64, u64)>,
        violation: &mut impl FnMut(fmt::Arguments<'_>),
    ) -> Result {
        let data = inode.lock.lock();
        refs.reserve(data.items.iter().count(), GFP_KERNEL)?;
        let tree = self.extent_tree();
        let mut next_free = 0u64;
        for (start, item) in data.items.iter() {
            if start < next_free {
                violation(format_args!(
                    "inode {}/{} item at {} overlaps the one before",
                    inode.subvol, inode.ino, start
                ));
            }
            next_free = start.saturating_add(item.len);
            match tree.get(item.extent) {
                None => violation(format_args!(
                    "inode {}/{} item at {} points into extent {}, which does not exist",
                    inode.subvol, inode.ino, start, item.extent
                )),
                Some(e) if item.offset.saturating_add(item.len) > e.bytes => {
                    violation(format_args!(
                        "inode {}/{} item at {} maps past the end of extent {}",
                        inode.subvol, inode.ino, start, item.extent
                    ))
                }
                Some(_) => {}
            }
            // INVARIANT: room for every item was made above.
            kernel::warn_on!(refs
                .push_within_capacity((item.extent, inode.subvol.root()))
                .is_err());
        }
        Ok(())
    }

    /// Checks every extent's roots against the items found pointing into
    /// it (`refs`: (extent, subvol) of every item, sorted).
    fn check_extents(&self, refs: &[(u64, u64)], violation: &mut impl FnMut(fmt::Arguments<'_>)) {
        let tree = self.extent_tree();
        for (id, extent) in tree.iter() {
            let mut total = 0u64;
            let from = refs.partition_point(|&(e, _)| e < id);
            let to = from + refs[from..].partition_point(|&(e, _)| e == id);
            for run in refs[from..to].chunk_by(|a, b| a.1 == b.1) {
                let (subvol, n) = (run[0].1, run.len() as u64);
                total = total.saturating_add(n);
                if extent.refs_of(subvol) != n {
                    violation(format_args!(
                        "extent {} counts {} items of subvolume {}, {} point into it",
                        id,
                        extent.refs_of(subvol),
                        subvol,
                        n
                    ));
                }
            }
            if extent.refs() != total {
                violation(format_args!(
                    "extent {} counts {} items, {} point into it (roots {})",
                    id,
                    extent.refs(),
                    total,
                    extent.roots().count()
                ));
            }
            if extent.refs() == 0 && !extent.is_dirty() {
                violation(format_args!(
                    "extent {} is referenced by nothing but was not freed",
                    id
                ));
            }
        }
    }

    /// Recomputes rfer and excl of every qgroup from the extents' roots at
    /// the last commit and the accounted root leaves, as a rescan would
    /// (SPEC §1.7, §8.5), or with simple quotas from the counted extents
    /// each owner was charged for (§8.6), and compares. One pass over the
    /// extents, walking up from each old root or the owner:
    /// O(extents x roots x ancestors).
    fn check_rescan(
        &self,
        snapshot: &QgroupSnapshot,
        violation: &mut impl FnMut(fmt::Arguments<'_>),
    ) -> Result {
        // Every qgroup, with its expected numbers.
        let mut expect: RBTree<QgroupId, Expected> = RBTree::new();
        for row in snapshot.rows.iter() {
            expect.try_create_and_insert(row.id, Expected::default(), GFP_KERNEL)?;
        }
        // (level-0 qgroup, qgroup at or above it), for every such pair.
        let mut above: KVec<(QgroupId, QgroupId)> = KVec::new();
        for row in snapshot.rows.iter().filter(|r| r.id.level() == 0) {
            above.push((row.id, row.id), GFP_KERNEL)?;
        }
        let mut failed = Ok(());
        snapshot.for_each_level0_below(|row, l0| {
            for &l in l0 {
                if failed.is_ok() {
                    failed = above.push((l, row.id), GFP_KERNEL).map_err(Error::from);
                }
            }
        })?;
        failed?;
        above.sort_unstable();
        let ancestors = |l: QgroupId| {
            let from = above.partition_point(|&(x, _)| x < l);
            let to = from + above[from..].partition_point(|&(x, _)| x == l);
            &above[from..to]
        };
        let mode = self.qgroups().mode();
        // The accounted root leaves: one root each, exclusive.
        for &(l, q) in above.iter() {
            let uncounted = mode.is_simple() && self.qgroups().leaf_cow_pending(l.id());
            if !self.registry.leaf_pending(SubvolId(l.id())) && !uncounted {
                if let Some(e) = expect.get_mut(&q) {
                    e.rfer = e.rfer.saturating_add(self.nodesize);
                    e.excl = e.excl.saturating_add(self.nodesize);
                }
            }
        }
        let mut touched = KVec::with_capacity(snapshot.rows.len(), GFP_KERNEL)?;
        let tree = self.extent_tree();
        if let QuotaMode::Simple { since } = mode {
            // An extent allocated after enable is charged to its owner from
            // the commit that first saw it referenced (it has old roots
            // since) until the commit that frees it.
            for (_, extent) in tree.iter().filter(|(id, _)| *id >= since) {
                if extent.old_roots().next().is_none() {
                    continue;
                }
                for &(_, q) in ancestors(QgroupId::level0(extent.owner)) {
                    if let Some(e) = expect.get_mut(&q) {
                        e.rfer = e.rfer.saturating_add(extent.bytes);
                        e.excl = e.excl.saturating_add(extent.bytes);
                    }
                }
            }
        }
        for (id, extent) in tree.iter().filter(|_| !mode.is_simple()) {
            touched.clear();
            let mut all = 0u64;
            for root in extent.old_roots() {
                all += 1;
                for &(_, q) in ancestors(QgroupId::level0(root)) {
                    let Some(e) = expect.get_mut(&q) else {
                        continue;
                    };
                    if e.mark != id {
                        e.mark = id;
                        e.count = 0;
                        // INVARIANT: each qgroup is listed once an extent,
                        // and there is room for every qgroup.
                        kernel::warn_on!(touched.push_within_capacity(q).is_err());
                    }
                    e.count += 1;
                }
            }
            for q in touched.iter() {
                if let Some(e) = expect.get_mut(q) {
                    e.rfer = e.rfer.saturating_add(extent.bytes);
                    if e.count == all {
                        e.excl = e.excl.saturating_add(extent.bytes);
                    }
                }
            }
        }
        drop(tree);
        for row in snapshot.rows.iter() {
            let Some(e) = expect.get(&row.id) else {
                continue;
            };
            let c = &row.qgroup.counters;
            for (name, have, want) in [("rfer", c.rfer, e.rfer), ("excl", c.excl, e.excl)] {
                if have != want {
                    violation(format_args!(
                        "qgroup {} {} is {}, expected {} ({})",
                        row.id,
                        name,
                        have,
                        want,
                        if mode.is_simple() {
                            "the committed extents it owns, simple quotas"
                        } else {
                            "a rescan of the committed extents"
                        }
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A qgroup's numbers as a rescan computes them.
#[derive(Default)]
struct Expected {
    rfer: u64,
    excl: u64,
    /// The extent whose roots `count` counts (extent ids start at 1).
    mark: u64,
    /// Old roots of that extent at or below the qgroup.
    count: u64,
}
