// SPDX-License-Identifier: GPL-2.0

//! The instance-wide commands on quotas and the hierarchy: `quota
//! enable|disable`, `subvol create` and the `qgroup` commands.
//!
//! They run with the instance to themselves (SPEC §6), so no data command
//! changes an inode under them.

use kernel::prelude::*;

use super::FsState;
use crate::{
    changeset::ByteRange,
    extent_io_tree::{ExtentBits, TreeOp, MAX_END},
    failure::{fail, QResult},
    limits::{FIRST_FREE_SUBVOL, TOP_SUBVOL},
    qgroup::{Counters, QgroupId, QgroupSet, RsvType},
};

impl FsState {
    /// Whether anything is uncommitted: DELALLOC bytes, extents allocated or
    /// dropped since the last commit. (Every dropped extent byte, committed
    /// or not, is pinned space until the commit.)
    fn has_uncommitted(&self) -> Result<bool> {
        if self.registry.any_dropped() || self.space.any_pinned() {
            return Ok(true);
        }
        Ok(self
            .inodes(None)?
            .iter()
            .any(|inode| inode.has_uncommitted()))
    }

    /// Counters of a level-0 qgroup whose subvolume has `committed` extent
    /// bytes besides its tree root.
    fn root_counters(&self, committed: u64) -> Counters {
        // Bounded by the capacity (at most 2^63) plus one node.
        Counters::exclusive(self.nodesize.saturating_add(committed))
    }

    /// `quota enable`: a rescan creates `0/S` for every subvolume with
    /// rfer = excl = nodesize + its committed extent bytes.
    pub(super) fn quota_enable(&self) -> QResult {
        if self.quota_enabled() {
            return Ok(());
        }
        if self.has_uncommitted()? {
            fail!(EBUSY, "uncommitted changes, commit first");
        }
        let mut set = QgroupSet::new();
        for id in self.subvol_ids()?.iter() {
            let mut committed = 0u64;
            for inode in self.inodes(Some(*id))?.iter() {
                let bytes = inode
                    .extents
                    .count_bits(0, MAX_END, ExtentBits::EXTENT_COMMITTED)?;
                // PANIC: none; backed bytes are space in use, at most the
                // capacity (2^63), so the sum fits.
                committed += bytes;
            }
            set.create(QgroupId::level0(*id), self.root_counters(committed))?;
        }
        self.qgroups.install(set, false);
        self.quota.store(true, kernel::sync::atomic::Relaxed);
        Ok(())
    }

    /// `quota disable`: drops every qgroup, every QGROUP_RESERVED bit and
    /// every meta reservation.
    pub(super) fn quota_disable(&self) -> QResult {
        if !self.quota_enabled() {
            return Ok(());
        }
        if self.has_uncommitted()? {
            fail!(EBUSY, "uncommitted changes, commit first");
        }
        let inodes = self.inodes(None)?;
        let snapshot = self.qgroups.snapshot()?;
        let all = [ByteRange {
            start: 0,
            end: MAX_END,
        }];
        let op = TreeOp::clear(ExtentBits::QGROUP_RESERVED);
        let mut preps = KVec::with_capacity(inodes.len(), GFP_KERNEL)?;
        for inode in inodes.iter() {
            let prep = inode.io_tree.prepare(&all, op, None)?;
            // INVARIANT: room for every inode was made above.
            kernel::warn_on!(preps.push_within_capacity(prep).is_err());
        }
        // Nothing below fails: the instance is ours alone, so every tree is
        // as its `prepare` saw it.
        for (inode, prep) in inodes.iter().zip(preps.iter_mut()) {
            inode.io_tree.apply(&all, op, None, prep);
            inode.lock.lock().meta_prealloc = 0;
        }
        let meta: u64 = snapshot
            .rows
            .iter()
            .filter(|row| row.id.level() == 0)
            .map(|row| {
                let c = &row.qgroup.counters;
                c.may_use(RsvType::MetaPrealloc)
                    .saturating_add(c.may_use(RsvType::MetaPertrans))
            })
            .fold(0u64, u64::saturating_add);
        self.space.give(meta);
        self.qgroups.install(QgroupSet::new(), false);
        self.quota.store(false, kernel::sync::atomic::Relaxed);
        Ok(())
    }

    /// `subvol create ID`.
    pub(super) fn subvol_create(&self, id: u64) -> QResult {
        if id != TOP_SUBVOL && !(FIRST_FREE_SUBVOL..=QgroupId::MAX_ID).contains(&id) {
            fail!(EINVAL, "subvolume id {} out of range", id);
        }
        let slot = self.registry.add_subvol(id)?;
        if self.quota_enabled() {
            self.qgroups
                .create(QgroupId::level0(id), self.root_counters(0))?;
        }
        self.registry.insert_subvol(slot);
        Ok(())
    }

    /// `qgroup create QG` (level >= 1, checked by the parser).
    pub(super) fn qgroup_create(&self, id: QgroupId) -> QResult {
        self.need_quota()?;
        self.qgroups.create(id, Counters::default())
    }

    /// `qgroup destroy QG`.
    pub(super) fn qgroup_destroy(&self, id: QgroupId) -> QResult {
        self.need_quota()?;
        self.qgroups.destroy(id)
    }

    /// `qgroup assign CHILD PARENT` (levels checked by the parser).
    pub(super) fn qgroup_assign(&self, child: QgroupId, parent: QgroupId) -> QResult {
        self.need_quota()?;
        self.qgroups.assign(child, parent)
    }

    /// `qgroup remove CHILD PARENT`.
    pub(super) fn qgroup_remove(&self, child: QgroupId, parent: QgroupId) -> QResult {
        self.need_quota()?;
        self.qgroups.remove(child, parent)
    }

    /// `qgroup limit [-e] SIZE|none QG`.
    pub(super) fn qgroup_limit(&self, id: QgroupId, excl: bool, max: Option<u64>) -> QResult {
        self.need_quota()?;
        self.qgroups.limit(id, excl, max)
    }
}
