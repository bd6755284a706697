// SPDX-License-Identifier: GPL-2.0

//! The transaction: `commit`, `sync`, `writeback` of every inode, and the
//! flush before EDQUOT (SPEC §1.5, §1.5a).
//!
//! All run with the instance to themselves. Each prepares every io tree
//! operation of every inode first, so that it is all or nothing.

use kernel::{
    prelude::*,
    sync::{atomic::Relaxed, Arc},
};

use super::{write::WritebackPlan, FsState};
use crate::{
    failure::QResult,
    inode::Inode,
    qgroup::{Counter, QgroupId},
};

/// A commit, prepared.
pub(super) struct CommitPlan {
    subvols: KVec<u64>,
}

/// The writeback of several inodes, prepared.
pub(super) struct WritebackAll {
    inodes: KVec<Arc<Inode>>,
    plans: KVec<Option<WritebackPlan>>,
}

impl FsState {
    /// Prepares the writeback of every inode (of `subvol`, or of all).
    fn plan_writeback_all(&self, subvol: Option<u64>) -> QResult<WritebackAll> {
        let inodes = self.inodes(subvol)?;
        let mut plans = KVec::with_capacity(inodes.len(), GFP_KERNEL)?;
        for inode in inodes.iter() {
            let plan = self.plan_writeback(inode, &inode.lock.lock())?;
            // INVARIANT: room for every inode was made above.
            kernel::warn_on!(plans.push_within_capacity(plan).is_err());
        }
        Ok(WritebackAll { inodes, plans })
    }

    /// Applies a prepared writeback; with `dirty_only`, inodes with nothing
    /// dirty keep their meta_prealloc (a flush writes back dirty inodes).
    fn apply_writeback_all(&self, all: WritebackAll, dirty_only: bool) {
        let WritebackAll { inodes, plans } = all;
        for (inode, plan) in inodes.iter().zip(plans) {
            if dirty_only && plan.is_none() {
                continue;
            }
            let mut data = inode.lock.lock();
            self.apply_writeback(inode, &mut data, plan);
        }
    }

    /// `writeback` of every inode.
    pub(super) fn writeback_all(&self) -> QResult {
        let all = self.plan_writeback_all(None)?;
        self.apply_writeback_all(all, false);
        Ok(())
    }

    /// Prepares a commit: it allocates nothing but the list of subvolumes
    /// (the extent tree's commit only removes nodes, and the qgroup walks
    /// use lists the qgroups keep).
    fn plan_commit(&self) -> QResult<CommitPlan> {
        Ok(CommitPlan {
            subvols: self.subvol_ids()?,
        })
    }

    /// Applies a prepared commit (SPEC §8.2): accounts every dirty extent
    /// from its old and new roots and releases its record's reservation,
    /// accounts the root leaves of subvolumes created since the last
    /// commit, frees all meta_pertrans and the pinned space.
    fn apply_commit(&self, plan: CommitPlan) {
        let quota = self.quota_enabled();
        self.extent_tree.lock().commit(|dirty| {
            if !quota {
                return;
            }
            let extent = dirty.extent;
            self.qgroups
                .account_extent(extent.old_roots(), extent.roots(), extent.bytes);
            if extent.rsv_held {
                self.qgroups.discharge(
                    QgroupId::level0(extent.owner),
                    Counter::Reserved,
                    extent.rsv,
                );
            }
        });
        for &id in plan.subvols.iter() {
            if self.registry.take_leaf_pending(id) && quota {
                self.qgroups.transfer(
                    QgroupId::level0(id),
                    None,
                    &[Counter::Rfer, Counter::Excl],
                    self.nodesize,
                );
            }
        }
        let pertrans = self.qgroups.free_all_pertrans();
        self.space.give(pertrans);
        self.space.unpin_all();
        self.stats.commits.add(1, Relaxed);
    }

    /// `commit`.
    pub(super) fn commit(&self) -> QResult {
        let plan = self.plan_commit()?;
        self.apply_commit(plan);
        Ok(())
    }

    /// `sync`: writeback of every inode, then commit, all or nothing.
    pub(super) fn sync(&self) -> QResult {
        let writeback = self.plan_writeback_all(None)?;
        let commit = self.plan_commit()?;
        self.apply_writeback_all(writeback, false);
        self.apply_commit(commit);
        Ok(())
    }

    /// The flush before EDQUOT (upstream `try_flush_qgroup`): writes back
    /// every dirty inode of `subvol`, then commits. At most one flush of a
    /// subvolume runs at a time (with the instance to itself); when another
    /// command flushed `subvol` since this one saw `seen` flushes, this one
    /// only waited for it and flushes nothing.
    pub(super) fn flush(&self, subvol: u64, seen: u64) {
        let _alone = self.gate.exclusive();
        if self.registry.flushes(subvol) != seen {
            return;
        }
        self.registry.note_flush(subvol);
        // Out of memory, the flush is skipped (and not counted in `stats
        // flushes`): the command retries its reservation either way.
        if let Ok(writeback) = self.plan_writeback_all(Some(subvol)) {
            if let Ok(commit) = self.plan_commit() {
                self.stats.flushes.add(1, Relaxed);
                self.apply_writeback_all(writeback, true);
                self.apply_commit(commit);
            }
        }
    }
}
