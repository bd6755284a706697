// SPDX-License-Identifier: GPL-2.0

//! Accounting one extent at commit from its old and new roots (SPEC §8.2;
//! upstream `btrfs_qgroup_account_extent`, `qgroup_update_refcnt`,
//! `qgroup_update_counters`).

use super::{underflow::Underflows, Counter, QgroupId, QgroupTree, Qgroups};

impl Qgroups {
    /// Adds one to the old (`old`) or new refcnt of every qgroup at or
    /// above `0/root`, each once (diamonds included), listing the qgroups
    /// it touches first in [`Self::touched`].
    fn count_root(&mut self, root: u64, old: bool, walk: &mut kernel::alloc::KVec<QgroupId>) {
        let fits = self.walk(QgroupId::level0(root), true, walk);
        // INVARIANT: `scratch` has room for every qgroup.
        kernel::warn_on!(!fits);
        let mark = self.account_mark;
        for q in walk.iter() {
            let Some(entry) = self.qgroups.get_mut(q) else {
                continue;
            };
            if entry.accounted != mark {
                entry.accounted = mark;
                entry.refcnt = (0, 0);
                // INVARIANT: `touched` has room for every qgroup, and each
                // is listed once per accounting.
                kernel::warn_on!(self.touched.push_within_capacity(*q).is_err());
            }
            if old {
                entry.refcnt.0 += 1;
            } else {
                entry.refcnt.1 += 1;
            }
        }
    }
}

/// What the accounting of an extent of `bytes` does to one qgroup with `o`
/// of the extent's `old` roots and `n` of its `new` roots at or below it:
/// `(rfer, excl)`, each +1, -1 or 0 times `bytes` (SPEC §8.2).
pub(crate) fn deltas(o: u64, n: u64, old: u64, new: u64) -> (i8, i8) {
    let rfer = match (o, n) {
        (0, n) if n > 0 => 1,
        (o, 0) if o > 0 => -1,
        _ => 0,
    };
    let was = o > 0 && o == old;
    let is = n > 0 && n == new;
    let excl = match (was, is) {
        (false, true) => 1,
        (true, false) => -1,
        _ => 0,
    };
    (rfer, excl)
}

impl QgroupTree {
    /// Accounts an extent of `bytes` whose roots went from `old` to `new`:
    /// rfer and excl of every qgroup at or above a level-0 qgroup of either
    /// change as [`deltas`] says. Never fails; a decrement past 0 is an
    /// underflow. Cost: the walks up from each root.
    pub(crate) fn account_extent(
        &self,
        old: impl Iterator<Item = u64>,
        new: impl Iterator<Item = u64>,
        bytes: u64,
    ) {
        let mut log = Underflows::default();
        {
            let mut inner = self.inner.lock();
            // PANIC: none; 2^64 accountings take centuries.
            inner.account_mark += 1;
            let mut walk = core::mem::take(&mut inner.scratch);
            inner.touched.clear();
            let (mut n_old, mut n_new) = (0u64, 0u64);
            for root in old {
                n_old += 1;
                inner.count_root(root, true, &mut walk);
            }
            for root in new {
                n_new += 1;
                inner.count_root(root, false, &mut walk);
            }
            inner.scratch = walk;
            let touched = core::mem::take(&mut inner.touched);
            for q in touched.iter() {
                let Some((o, n)) = inner.qgroups.get(q).map(|e| e.refcnt) else {
                    continue;
                };
                let (rfer, excl) = deltas(o, n, n_old, n_new);
                for (counter, delta) in [(Counter::Rfer, rfer), (Counter::Excl, excl)] {
                    match delta {
                        1 => inner.add(*q, counter, bytes),
                        -1 => inner.sub(*q, counter, bytes, &mut log),
                        _ => {}
                    }
                }
            }
            inner.touched = touched;
        }
        self.report(&log);
    }
}
