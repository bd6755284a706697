// SPDX-License-Identifier: GPL-2.0

//! The instance-wide commands on quotas and the hierarchy: `quota
//! enable|disable`, `subvol create` and the `qgroup` commands.
//!
//! They run with the instance to themselves (SPEC §6), so no data command
//! changes an inode under them.

use kernel::{prelude::*, sync::atomic::Relaxed};

use super::FsState;
use crate::{
    changeset::ByteRange,
    extent_io_tree::{ExtentBits, TreeOp, MAX_END},
    failure::{fail, QResult},
    ids::SubvolId,
    legacy::LegacySwitch,
    qgroup::{Counter, Counters, QgroupId, QgroupSet, QuotaMode, RsvType},
};

impl FsState {
    /// Whether anything is uncommitted: DELALLOC bytes, extents allocated
    /// or with roots changed since the last commit, space pinned by freed
    /// extents.
    fn has_uncommitted(&self) -> Result<bool> {
        if self.extent_tree().any_dirty() || self.space.any_pinned() || self.registry.any_dropped()
        {
            return Ok(true);
        }
        Ok(self.inodes(None)?.iter().any(|inode| inode.has_delalloc()))
    }

    /// The qgroup numbers recomputed from every live extent and root leaf
    /// as if each were new (SPEC §8.5: `quota enable` and `quota rescan`),
    /// for a hierarchy of level-0 qgroups only: 0/S gets its root leaf and
    /// every extent with S among its roots in rfer, and in excl those whose
    /// only root is S.
    fn rescan_level0(&self) -> QResult<QgroupSet> {
        let mut set = QgroupSet::with_mode(QuotaMode::Full);
        for &id in self.subvol_ids()?.iter() {
            set.create(id.qgroup(), Counters::exclusive(self.nodesize))?;
        }
        let tree = self.extent_tree();
        for (_, extent) in tree.iter() {
            let mut roots = extent.roots();
            let only = match (roots.next(), roots.next()) {
                (Some(r), None) => Some(r),
                _ => None,
            };
            for root in extent.roots() {
                // Bounded by the capacity (at most 2^63) plus the leaves.
                set.add(QgroupId::level0(root), Counter::Rfer, extent.bytes);
                if only.is_some() {
                    set.add(QgroupId::level0(root), Counter::Excl, extent.bytes);
                }
            }
        }
        Ok(set)
    }

    /// `quota enable [simple]`: full mode rescans, creating `0/S` for every
    /// subvolume with its numbers from the extents and root leaves; simple
    /// mode creates every `0/S` empty and counts only what is allocated
    /// from now on (SPEC §8.6). A no-op in the mode already on, EBUSY in the
    /// other one or with anything uncommitted.
    pub(super) fn quota_enable(&self, simple: bool) -> QResult {
        match (self.qgroups.mode(), simple) {
            (QuotaMode::Off, _) => {}
            (QuotaMode::Full, false) | (QuotaMode::Simple { .. }, true) => return Ok(()),
            (mode, _) => fail!(
                EBUSY,
                "quotas are enabled in {} mode, disable them first",
                mode.name()
            ),
        }
        if self.has_uncommitted()? {
            fail!(EBUSY, "uncommitted changes, commit first");
        }
        let set = if simple {
            self.squota_level0()?
        } else {
            self.rescan_level0()?
        };
        self.qgroups.install(set, false);
        self.quota.store(true, Relaxed);
        Ok(())
    }

    /// The qgroups of `quota enable simple`: `0/S` for every subvolume,
    /// empty, its root leaf waiting for the subvolume's tree to change;
    /// extents from the next one allocated on are counted.
    fn squota_level0(&self) -> QResult<QgroupSet> {
        let since = self.extent_tree().next_id();
        let mut set = QgroupSet::with_mode(QuotaMode::Simple { since });
        for &id in self.subvol_ids()?.iter() {
            set.create(id.qgroup(), Counters::default())?;
            set.mark_leaf_cow(id.qgroup());
        }
        Ok(set)
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
        for &id in self.subvol_ids()?.iter() {
            self.registry.set_leaf_pending(id, false);
        }
        self.registry.forget_holders();
        self.qgroups.install(QgroupSet::new(), false);
        self.quota.store(false, Relaxed);
        Ok(())
    }

    /// `qgroup create QG` (level >= 1, checked by the parser).
    pub(super) fn qgroup_create(&self, id: QgroupId) -> QResult {
        self.need_quota()?;
        self.qgroups.create(id, Counters::default())
    }

    /// `qgroup destroy QG`: EBUSY for the level-0 qgroup of a subvolume
    /// that exists, or is deleted but not yet dropped or holds space
    /// (upstream `can_delete_qgroup`).
    pub(super) fn qgroup_destroy(&self, id: QgroupId) -> QResult {
        self.need_quota()?;
        if id.level() == 0 && self.qgroups.exists(id) && self.registry.in_use(SubvolId(id.id())) {
            fail!(EBUSY, "qgroup {} belongs to subvolume {}", id, id.id());
        }
        self.qgroups.destroy(id)
    }

    /// `qgroup assign CHILD PARENT` (levels checked by the parser).
    /// Returns whether the numbers became inconsistent (a child sharing
    /// extents, SPEC §8.3).
    pub(super) fn qgroup_assign(&self, child: QgroupId, parent: QgroupId) -> QResult<bool> {
        self.need_quota()?;
        if self.legacy().contains(LegacySwitch::ExclIteration) {
            return self.qgroups.relate_excl_iteration(child, parent, true);
        }
        self.qgroups.assign(child, parent)
    }

    /// `qgroup remove CHILD PARENT`.
    /// Returns whether the numbers became inconsistent, as `assign`.
    pub(super) fn qgroup_remove(&self, child: QgroupId, parent: QgroupId) -> QResult<bool> {
        self.need_quota()?;
        if self.legacy().contains(LegacySwitch::ExclIteration) {
            return self.qgroups.relate_excl_iteration(child, parent, false);
        }
        self.qgroups.remove(child, parent)
    }

    /// `qgroup limit [-e] SIZE|none QG`.
    pub(super) fn qgroup_limit(&self, id: QgroupId, excl: bool, max: Option<u64>) -> QResult {
        self.need_quota()?;
        self.qgroups.limit(id, excl, max)
    }
}
