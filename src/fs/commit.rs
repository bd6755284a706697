// SPDX-License-Identifier: GPL-2.0

//! The transaction: `commit`, `sync`, `writeback` of every inode, and the
//! flush before EDQUOT (SPEC §1.5, §1.5a).
//!
//! `commit`, `sync` and `writeback` run with the instance to themselves;
//! each prepares every io tree operation of every inode first, so that it
//! is all or nothing. The flush writes back beside the data commands and
//! commits alone (see [`FsState::flush`]).

use kernel::{
    prelude::*,
    sync::{atomic::Relaxed, Arc},
};

use super::{writeback::WritebackPlan, FsState};
use crate::{
    failure::{fail, QResult},
    ids::SubvolId,
    inode::Inode,
    legacy::LegacySwitch,
    limits::TOP_SUBVOL,
    qgroup::{Counter, QgroupId, QuotaMode},
};

/// A commit, prepared.
pub(super) struct CommitPlan {
    subvols: KVec<SubvolId>,
    /// Subvolumes deleted since the last commit, and whether their root
    /// leaf had been accounted.
    dropped: KVec<(SubvolId, bool)>,
    /// Deleted subvolumes whose qgroup holds space (simple quotas).
    holders: KVec<(SubvolId, bool)>,
}

impl WritebackAll {
    /// For each inode, at most how many items its writeback adds.
    pub(super) fn new_items(&self) -> impl Iterator<Item = usize> + '_ {
        self.plans
            .iter()
            .map(|p| p.as_ref().map_or(0, WritebackPlan::new_items))
    }
}

/// The writeback of several inodes, prepared.
pub(super) struct WritebackAll {
    inodes: KVec<Arc<Inode>>,
    plans: KVec<Option<WritebackPlan>>,
}

impl FsState {
    /// Prepares the writeback of every inode (of `subvol`, or of all).
    pub(super) fn plan_writeback_all(&self, subvol: Option<SubvolId>) -> QResult<WritebackAll> {
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
    pub(super) fn apply_writeback_all(&self, all: WritebackAll, dirty_only: bool) {
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
    pub(super) fn plan_commit(&self) -> QResult<CommitPlan> {
        Ok(CommitPlan {
            subvols: self.subvol_ids()?,
            dropped: self.registry.dropped()?,
            holders: self.registry.holders()?,
        })
    }

    /// Applies a prepared commit (SPEC §8.2, §8.6): accounts every dirty
    /// extent in the quota mode and releases its record's reservation,
    /// accounts the root leaves of subvolumes created since the last
    /// commit and of those deleted, frees all meta_pertrans and the pinned
    /// space.
    pub(super) fn apply_commit(&self, plan: CommitPlan) {
        let quota = self.quota_enabled();
        let mode = self.qgroups.mode();
        let accounting = quota && self.qgroups.accounting();
        // With accounting off the records' reservations are released all
        // the same, unless the legacy switch keeps them (SPEC §8.7).
        let release = accounting || !self.legacy().contains(LegacySwitch::NoAccountingKeepsRsv);
        self.extent_tree.lock().commit(|dirty| {
            if !quota {
                return;
            }
            let extent = dirty.extent;
            match mode {
                QuotaMode::Full if accounting => {
                    self.qgroups
                        .account_extent(extent.old_roots(), extent.roots(), extent.bytes)
                }
                QuotaMode::Simple { since } => self.qgroups.squota_extent(
                    dirty.id >= since,
                    extent.owner,
                    || extent.old_roots(),
                    || extent.roots(),
                    extent.bytes,
                    self.nodesize,
                ),
                _ => {}
            }
            if extent.rsv_held && release {
                self.qgroups.discharge(
                    QgroupId::level0(extent.owner),
                    Counter::Reserved,
                    extent.rsv(),
                );
            }
        });
        for &id in plan.subvols.iter() {
            if self.registry.take_leaf_pending(id) && accounting {
                self.qgroups.transfer(
                    id.qgroup(),
                    None,
                    &[Counter::Rfer, Counter::Excl],
                    self.nodesize,
                );
                if mode.is_simple() {
                    // The new subvolume's directory entry changed the tree
                    // of 5 (simple quotas charge an old leaf when COWed).
                    self.qgroups.squota_cow_leaf(TOP_SUBVOL, self.nodesize);
                }
            }
        }
        let pertrans = self.qgroups.free_all_pertrans();
        self.space.give(pertrans);
        self.settle_dropped(&plan.dropped, accounting);
        self.settle_dropped(&plan.holders, accounting);
        self.space.unpin_all();
        self.stats.commits.add(1, Relaxed);
    }

    /// `quota rescan` (SPEC §8.5): a commit, then rfer and excl of every
    /// qgroup recomputed from every extent and root leaf as if each were
    /// new; reservations and limits stay. The numbers are consistent and
    /// accounted again after it.
    pub(super) fn quota_rescan(&self) -> QResult {
        self.need_quota()?;
        if self.qgroups.mode().is_simple() {
            fail!(EINVAL, "no rescan with simple quotas");
        }
        let plan = self.plan_commit()?;
        let subvols = self.subvol_ids()?;
        // Nothing below fails.
        self.apply_commit(plan);
        let skip_childless = self.legacy().contains(LegacySwitch::RescanSkipsChildless);
        self.qgroups.start_rescan(skip_childless);
        let tree = self.extent_tree.lock();
        for (_, extent) in tree.iter() {
            self.qgroups
                .account_extent(core::iter::empty(), extent.roots(), extent.bytes);
        }
        drop(tree);
        for &id in subvols.iter() {
            self.qgroups.account_extent(
                core::iter::empty(),
                core::iter::once(id.root()),
                self.nodesize,
            );
        }
        self.stats.rescans.add(1, Relaxed);
        Ok(())
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
    /// every dirty inode of `subvol`, then commits. One flush runs at a time
    /// (`flush_lock`); when another command flushed `subvol` since this one
    /// saw `seen` flushes, this one only waited for it and flushes nothing.
    ///
    /// The writeback runs with the gate shared, inode by inode under each
    /// inode's lock, as `writeback S INO` does, beside the other data
    /// commands; only the commit has the instance to itself.
    ///
    /// Out of memory, a flush does what it can: each inode is written back
    /// whole or not at all, and the writeback stops at the first inode it
    /// cannot plan; the commit then runs and the flush is counted. Only
    /// when the commit cannot be planned (its lists are its only
    /// allocation) is it skipped and the flush not counted. What was
    /// written back stays either way, as a flush's effects do (SPEC
    /// §1.5a); the command then retries its reservation as usual.
    pub(super) fn flush(&self, subvol: SubvolId, seen: u64) {
        let _one = self.flush_lock.lock();
        if self.registry.flushes(subvol) != seen {
            return;
        }
        self.registry.note_flush(subvol);
        {
            let _shared = self.gate.shared();
            let inodes = self.inodes(Some(subvol)).unwrap_or_default();
            for inode in inodes.iter() {
                let mut data = inode.lock.lock();
                if data.gone {
                    // Unlinked since it was listed: nothing left to write.
                    continue;
                }
                match self.plan_writeback(inode, &data) {
                    Ok(None) => {}
                    Ok(plan) => self.apply_writeback(inode, &mut data, plan),
                    Err(_) => break,
                }
            }
        }
        let _alone = self.gate.exclusive();
        if let Ok(commit) = self.plan_commit() {
            self.stats.flushes.add(1, Relaxed);
            self.apply_commit(commit);
        }
    }
}
