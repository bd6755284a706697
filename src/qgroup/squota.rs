// SPDX-License-Identifier: GPL-2.0

//! Simple quotas (SPEC §8.6; upstream `btrfs_record_squota_delta`): an
//! extent allocated after `quota enable simple` charges its owner, 0/owner
//! and every ancestor, rfer and excl alike, at the commit that first
//! accounts it, and discharges the owner at the commit after its last
//! reference anywhere is gone. Other references (snapshots, clones) change
//! nobody, so rfer == excl always and the numbers are never inconsistent.
//!
//! Root leaves: a subvolume created in simple mode has its leaf charged
//! like an extent it owns. The leaf of a subvolume that existed at enable
//! time is not counted until the subvolume's tree is first changed after
//! enable (upstream COWs the leaf then, and the new leaf is of the new
//! generation): the qgroup marks it [`QgroupEntry::leaf_cow`] until then.

use kernel::prelude::*;

use super::{for_each_related, underflow::Underflows, Counter, QgroupId, QgroupTree, Qgroups};

impl Qgroups {
    /// Adds `bytes` to (`charge`) or takes them from rfer and excl of `id`
    /// and of each of its ancestors once.
    fn owner_delta(&mut self, id: QgroupId, bytes: u64, charge: bool, log: &mut Underflows) {
        let mut list = core::mem::take(&mut self.scratch);
        let fits = self.walk(id, true, &mut list);
        // INVARIANT: `scratch` has room for every qgroup.
        kernel::warn_on!(!fits);
        for &q in list.iter() {
            for counter in [Counter::Rfer, Counter::Excl] {
                if charge {
                    self.add(q, counter, bytes);
                } else {
                    self.sub(q, counter, bytes, log);
                }
            }
        }
        self.scratch = list;
    }

    /// The tree of `subvol` changed: charges its root leaf if that leaf
    /// predates simple quotas and was not COWed since.
    fn cow_leaf(&mut self, subvol: u64, nodesize: u64, log: &mut Underflows) {
        let id = QgroupId::level0(subvol);
        let pending = self
            .qgroups
            .get_mut(&id)
            .is_some_and(|e| core::mem::take(&mut e.leaf_cow));
        if pending {
            self.owner_delta(id, nodesize, true, log);
        }
    }
}

/// The ids in exactly one of two ascending sequences, ascending.
fn symmetric_difference(
    a: impl Iterator<Item = u64>,
    b: impl Iterator<Item = u64>,
    mut f: impl FnMut(u64),
) {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    loop {
        match (a.peek().copied(), b.peek().copied()) {
            (Some(x), Some(y)) if x == y => {
                a.next();
                b.next();
            }
            (Some(x), Some(y)) if x < y => {
                f(x);
                a.next();
            }
            (Some(_), Some(y)) => {
                f(y);
                b.next();
            }
            (Some(x), None) => {
                f(x);
                a.next();
            }
            (None, Some(y)) => {
                f(y);
                b.next();
            }
            (None, None) => break,
        }
    }
}

impl QgroupTree {
    /// Accounts one dirty extent of `bytes` owned by `owner` at a commit in
    /// simple mode, from its roots at the last commit (`old`) and now
    /// (`new`), each a source of an ascending sequence: the subvolumes that gained or lost their
    /// reference changed their trees (their old leaves are COWed); a
    /// `counted` extent (allocated after enable) charges its owner when it
    /// is new (no old roots) and discharges it when it is gone (no roots
    /// now).
    pub(crate) fn squota_extent<I: Iterator<Item = u64>, J: Iterator<Item = u64>>(
        &self,
        counted: bool,
        owner: u64,
        old: impl Fn() -> I,
        new: impl Fn() -> J,
        bytes: u64,
        nodesize: u64,
    ) {
        let mut log = Underflows::default();
        {
            let mut inner = self.inner.lock();
            symmetric_difference(old(), new(), |subvol| {
                inner.cow_leaf(subvol, nodesize, &mut log);
            });
            if counted {
                let (was, is) = (old().next().is_some(), new().next().is_some());
                if is && !was {
                    inner.owner_delta(QgroupId::level0(owner), bytes, true, &mut log);
                } else if was && !is {
                    inner.owner_delta(QgroupId::level0(owner), bytes, false, &mut log);
                }
            }
        }
        self.report(&log);
    }

    /// The tree of `subvol` changed outside a data extent's accounting (a
    /// snapshot COWs its source's root): charges its leaf if that predates
    /// simple quotas.
    pub(crate) fn squota_cow_leaf(&self, subvol: u64, nodesize: u64) {
        let mut log = Underflows::default();
        self.inner.lock().cow_leaf(subvol, nodesize, &mut log);
        self.report(&log);
    }

    /// Whether the root leaf of `subvol` predates simple quotas and is not
    /// counted yet.
    pub(crate) fn leaf_cow_pending(&self, subvol: u64) -> bool {
        self.inner
            .lock()
            .qgroups
            .get(&QgroupId::level0(subvol))
            .is_some_and(|e| e.leaf_cow)
    }

    /// `subvol` is deleted: a leaf that predates simple quotas will never
    /// be counted. Returns whether it was such a leaf.
    pub(crate) fn forget_leaf_cow(&self, subvol: u64) -> bool {
        self.inner
            .lock()
            .qgroups
            .get_mut(&QgroupId::level0(subvol))
            .is_some_and(|e| core::mem::take(&mut e.leaf_cow))
    }

    /// Whether qgroup `id` counts nothing (rfer and excl 0), or is gone: a
    /// deleted subvolume's qgroup stays in simple mode until then (upstream
    /// `can_delete_squota_subvol_qgroup`).
    pub(crate) fn counts_nothing(&self, id: QgroupId) -> bool {
        self.inner
            .lock()
            .get(&id)
            .is_none_or(|q| q.counters.rfer == 0 && q.counters.excl == 0)
    }

    /// The parents of qgroup `id` (for a new subvolume that joins them:
    /// upstream `qgroup_auto_inherit`).
    pub(crate) fn parents_list(&self, id: QgroupId) -> Result<KVec<QgroupId>> {
        let n = self.inner.lock().relations;
        let mut list = KVec::with_capacity(n, GFP_KERNEL)?;
        let inner = self.inner.lock();
        for_each_related(&inner.parents, id, |p| {
            // INVARIANT: a qgroup has at most as many parents as there are
            // relations, and the caller holds the instance alone.
            kernel::warn_on!(list.push_within_capacity(p).is_err());
        });
        Ok(list)
    }
}
