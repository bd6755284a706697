// SPDX-License-Identifier: GPL-2.0

//! Subvolumes (SPEC §8.3): `subvol create ID [QG ...]`, `subvol snapshot
//! SRC DST [QG ...]` and `subvol delete S`.
//!
//! All run with the instance to themselves and are all or nothing: a
//! snapshot prepares its writeback, its commit, the inodes and items of
//! the copy and its qgroup before the first change; a delete prepares the
//! unlink of every inode. A deleted subvolume's extents are accounted
//! without it at the next commit, which then removes its qgroup
//! ([`FsState::settle_dropped`]).

use kernel::prelude::*;

use super::{op::QgroupList, FsState};
use crate::{
    extent_tree::ExtentPrealloc,
    failure::{fail, QResult},
    ids::SubvolId,
    inode::extent_map::{FileItem, ItemPool},
    legacy::LegacySwitch,
    limits::FIRST_FREE_SUBVOL,
    qgroup::{Counter, Inherit, NewQgroup, QgroupId},
};

impl FsState {
    /// EINVAL unless `id` is 5 or in 256..2^48-1.
    fn check_subvol_id(id: SubvolId) -> QResult {
        if id != SubvolId::TOP && !(FIRST_FREE_SUBVOL..=QgroupId::MAX_ID).contains(&id.0) {
            fail!(EINVAL, "subvolume id {} out of range", id);
        }
        Ok(())
    }

    /// With quotas on, the qgroups a new subvolume joins must exist
    /// (ENOENT), be of level >= 1 and distinct (EINVAL); with quotas off
    /// they are ignored.
    fn check_inherit(&self, inherit: &QgroupList) -> QResult {
        if !self.quota_enabled() {
            return Ok(());
        }
        let list = inherit.as_slice();
        for (i, &q) in list.iter().enumerate() {
            if q.level() == 0 {
                fail!(EINVAL, "qgroup {} is of level 0", q);
            }
            if list[..i].contains(&q) {
                fail!(EINVAL, "qgroup {} is listed twice", q);
            }
            if !self.qgroups.exists(q) {
                fail!(ENOENT, "qgroup {} does not exist", q);
            }
        }
        Ok(())
    }

    /// The qgroups a new subvolume joins: none with quotas off, the QG
    /// given, or with simple quotas and none given, the parents of the
    /// subvolume its directory is in (upstream `qgroup_auto_inherit`; the
    /// model has no directories: always 5).
    fn inherit_list(&self, inherit: &QgroupList) -> Result<KVec<QgroupId>> {
        if !self.quota_enabled() {
            return Ok(KVec::new());
        }
        if inherit.as_slice().is_empty() && self.qgroups.mode().is_simple() {
            return self.qgroups.parents_list(SubvolId::TOP.qgroup());
        }
        let mut list = KVec::with_capacity(inherit.as_slice().len(), GFP_KERNEL)?;
        list.extend_from_slice(inherit.as_slice(), GFP_KERNEL)?;
        Ok(list)
    }

    /// `subvol create ID [QG ...]`: the root leaf is accounted at the next
    /// commit, up through the qgroups it joins now (empty: no number moves).
    pub(super) fn subvol_create(&self, id: SubvolId, inherit: QgroupList) -> QResult {
        Self::check_subvol_id(id)?;
        let slot = self.registry.add_subvol(id)?;
        self.check_inherit(&inherit)?;
        let parents = self.inherit_list(&inherit)?;
        let quota = self.quota_enabled();
        if quota {
            if self.qgroups.exists(id.qgroup()) {
                fail!(EEXIST, "qgroup {} exists", id.qgroup());
            }
            let prep = self.qgroups.prepare_new(parents.len())?;
            self.qgroups.insert_snapshot(
                None,
                id.qgroup(),
                &parents,
                Inherit::Relations,
                self.nodesize,
                prep,
            );
        }
        self.registry.insert_subvol(slot);
        self.registry.set_leaf_pending(id, quota);
        Ok(())
    }

    /// `subvol snapshot SRC DST [QG ...]` (SPEC §8.3): writes back SRC,
    /// commits, then creates DST with a copy of SRC's file extent items
    /// (no dirty bytes, no reservations) and its own root leaf; every
    /// extent of SRC gains DST as a root without becoming dirty. With
    /// quotas on, 0/DST inherits as `btrfs_qgroup_inherit` does.
    pub(super) fn subvol_snapshot(
        &self,
        src: SubvolId,
        dst: SubvolId,
        inherit: QgroupList,
    ) -> QResult {
        Self::check_subvol_id(dst)?;
        self.registry.need_subvol(src)?;
        let slot = self.registry.add_subvol(dst)?;
        self.check_inherit(&inherit)?;
        let quota = self.quota_enabled();
        let parents = self.inherit_list(&inherit)?;
        if quota && self.qgroups.exists(dst.qgroup()) {
            fail!(EEXIST, "qgroup {} exists", dst.qgroup());
        }
        // Everything is allocated before the first change.
        let writeback = self.plan_writeback_all(Some(src))?;
        let commit = self.plan_commit()?;
        let inodes = self.inodes(Some(src))?;
        let mut copies = KVec::with_capacity(inodes.len(), GFP_KERNEL)?;
        let mut roots = ExtentPrealloc::default();
        for (inode, new_items) in inodes.iter().zip(writeback.new_items()) {
            // After the writeback the inode holds at most its items now and
            // the new ones.
            let bound = inode.lock.lock().items.iter().count() + new_items;
            let new = self.registry.prepare_inode(dst, inode.ino)?;
            let mut pool = ItemPool::default();
            pool.grow(bound)?;
            let list = KVec::<(u64, FileItem)>::with_capacity(bound, GFP_KERNEL)?;
            roots.grow(0, bound, 0)?;
            copies.push((new, pool, list), GFP_KERNEL)?;
        }
        let prep = if quota {
            Some(self.qgroups.prepare_new(parents.len())?)
        } else {
            None
        };
        let mut news = KVec::with_capacity(copies.len(), GFP_KERNEL)?;

        // Nothing below fails.
        self.apply_writeback_all(writeback, false);
        self.apply_commit(commit);
        // The items of each source inode, copied out under its lock (the
        // inode locks come before the extent tree's).
        for (inode, (_, _, list)) in inodes.iter().zip(copies.iter_mut()) {
            for (start, item) in inode.lock.lock().items.iter() {
                // INVARIANT: room for every item was made above.
                kernel::warn_on!(list.push_within_capacity((start, *item)).is_err());
            }
        }
        {
            let mut tree = self.extent_tree.lock();
            for (new, mut pool, list) in copies {
                // Nobody else has the new inode yet: its lock is free, and a
                // trylock orders it after nothing.
                if let Some(mut data) = new.inode.lock.try_lock() {
                    for &(start, item) in list.iter() {
                        data.items.insert(start, item, &mut pool);
                        tree.add_snapshot_ref(item.extent, dst.root(), &mut roots);
                    }
                } else {
                    kernel::warn_on!(true);
                }
                kernel::warn_on!(news.push_within_capacity(new).is_err());
            }
        }
        self.registry.insert_subvol_with(slot, news);
        if let Some(prep) = prep {
            self.inherit_snapshot(src.qgroup(), dst.qgroup(), &parents, prep);
        }
        Ok(())
    }

    /// The qgroup side of a snapshot, after its commit (upstream
    /// `btrfs_qgroup_inherit` and `qgroup_snapshot_quick_inherit`).
    ///
    /// With simple quotas (SPEC §8.6) 0/DST joins `parents` and is charged
    /// its own root leaf (the snapshot's commit allocated it), nothing of
    /// SRC's and no limits. The snapshot's directory entry changed the tree
    /// of 5 (upstream `create_pending_snapshot` inserts it there), so a leaf
    /// of 5 that predates simple quotas is charged now. With the legacy
    /// `squota_quick_inherit` the quick inherit of full mode adds
    /// `nodesize` to the one parent once more.
    fn inherit_snapshot(
        &self,
        src: QgroupId,
        dst: QgroupId,
        parents: &[QgroupId],
        prep: NewQgroup,
    ) {
        let legacy = self.legacy();
        let quick = Inherit::Quick {
            parent_only: legacy.contains(LegacySwitch::QuickInheritParentOnly),
        };
        let inherit = self.qgroups.quick_inherit(src, parents);
        if self.qgroups.mode().is_simple() {
            let how = match inherit {
                Some(Some(_)) if legacy.contains(LegacySwitch::SquotaQuickInherit) => quick,
                _ => Inherit::Relations,
            };
            let leaf = [Counter::Rfer, Counter::Excl];
            self.qgroups
                .insert_snapshot(None, dst, parents, how, self.nodesize, prep);
            self.qgroups.transfer(dst, None, &leaf, self.nodesize);
            self.qgroups
                .squota_cow_leaf(SubvolId::TOP.root(), self.nodesize);
            return;
        }
        let (how, inconsistent) = match inherit {
            Some(Some(_)) => (quick, false),
            Some(None) => (Inherit::Relations, false),
            None => (
                Inherit::Relations,
                !legacy.contains(LegacySwitch::InheritNeverInconsistent),
            ),
        };
        self.qgroups
            .insert_snapshot(Some(src), dst, parents, how, self.nodesize, prep);
        if inconsistent {
            self.qgroups.stop_accounting();
        }
    }

    /// `subvol delete S` (SPEC §8.3): every inode of S unlinked at once (as
    /// `unlink`: reservations freed, leaks reported, changesets dropped), S
    /// gone for every command; its extents are accounted without it, and
    /// its qgroup removed, at the next commit. Its id is never used again.
    pub(super) fn subvol_delete(&self, id: SubvolId) -> QResult {
        if id == SubvolId::TOP {
            fail!(EINVAL, "subvolume 5 cannot be deleted");
        }
        self.registry.need_subvol(id)?;
        let inodes = self.inodes(Some(id))?;
        let mut plans = KVec::with_capacity(inodes.len(), GFP_KERNEL)?;
        for inode in inodes.iter() {
            let plan = self.plan_unlink(inode, &inode.lock.lock())?;
            // INVARIANT: room for every inode was made above.
            kernel::warn_on!(plans.push_within_capacity(plan).is_err());
        }
        let slot = self.registry.prepare_retire()?;
        // Nothing below fails.
        for (inode, plan) in inodes.iter().zip(plans) {
            let mut data = inode.lock.lock();
            self.apply_unlink(inode, &mut data, plan);
        }
        // A leaf that predates simple quotas was never counted, and never
        // will be now.
        let uncounted = self.qgroups.forget_leaf_cow(id.root());
        let leaf = self.quota_enabled() && !self.registry.leaf_pending(id) && !uncounted;
        self.registry.retire(id, leaf, slot);
        Ok(())
    }

    /// At a commit, for each subvolume deleted since the last one, or
    /// holding space (`dropped`: id, and whether its root leaf is still
    /// accounted): its root leaf leaves the qgroups that referred to it,
    /// then its qgroup and relations go (even when the numbers are
    /// inconsistent, as upstream `btrfs_qgroup_cleanup_dropped_subvolume`);
    /// with simple quotas, only once it is charged for nothing (upstream
    /// `can_delete_squota_subvol_qgroup`), else it stays as a space holder.
    pub(super) fn settle_dropped(&self, dropped: &[(SubvolId, bool)], accounting: bool) {
        for &(id, leaf) in dropped {
            let mut hold = false;
            if self.quota_enabled() {
                let qgroup = id.qgroup();
                if leaf && accounting {
                    self.qgroups.account_extent(
                        core::iter::once(id.root()),
                        core::iter::empty(),
                        self.nodesize,
                    );
                }
                if self.qgroups.mode().is_simple() {
                    // Its directory entry left the tree of 5.
                    self.qgroups
                        .squota_cow_leaf(SubvolId::TOP.root(), self.nodesize);
                    hold = !self.qgroups.counts_nothing(qgroup);
                }
                let meta = self.qgroups.remove_dropped(qgroup, !hold);
                self.space.give(meta);
            }
            self.registry.settle_dropped(id, hold);
        }
    }
}
