// SPDX-License-Identifier: GPL-2.0

//! `truncate S INO SIZE` and `unlink S INO`: dropping the dirty bytes,
//! reservations and file extent items of part or all of an inode (SPEC
//! §1.5, §8.2).
//!
//! Planning allocates and counts everything; applying cannot fail.

use kernel::prelude::*;

use super::{
    write::{count, ALL, DELALLOC, RESERVED},
    FsState,
};
use crate::{
    changeset::ByteRange,
    extent_io_tree::{Prealloc, TreeOp, MAX_END},
    extent_tree::ExtentPrealloc,
    failure::{fail, QResult},
    ids::{Ino, SubvolId},
    inode::{extent_map::ItemPool, Inode, InodeData},
    limits::MAX_FILE_END,
    qgroup::RsvType,
};

impl FsState {
    /// `truncate S INO SIZE`: frees the reservations of dirty bytes past
    /// the sector holding SIZE and drops the extents there.
    pub(super) fn truncate(&self, subvol: SubvolId, ino: Ino, size: u64) -> QResult {
        if size > MAX_FILE_END {
            fail!(EINVAL, "size past 2^63");
        }
        self.with_inode(subvol, ino, false, |inode, data| {
            let mask = self.sectorsize - 1;
            // PANIC: none; size <= 2^63.
            let cut = (size + mask) & !mask;
            self.drop_range(
                inode,
                data,
                ByteRange {
                    start: cut,
                    end: MAX_END,
                },
            )
        })
    }

    /// Drops every dirty byte and file extent item in `rest` of `inode`
    /// (truncate): the dirty bytes' reservations are freed; an extent whose
    /// last item went is freed at the next commit, and its record keeps its
    /// reservation until then (SPEC §8.2).
    fn drop_range(&self, inode: &Inode, data: &mut InodeData, rest: ByteRange) -> QResult {
        let plan = self.plan_drop(inode, data, rest)?;
        self.apply_drop(inode, data, plan);
        Ok(())
    }

    /// Prepares [`Self::drop_range`].
    fn plan_drop(&self, inode: &Inode, data: &InodeData, rest: ByteRange) -> QResult<DropPlan> {
        let span = [rest];
        let op = self.drop_op();
        let delalloc = count(&inode.io_tree, &span, DELALLOC)?;
        let mut items = ItemPool::default();
        items.grow(1)?;
        let mut ext = ExtentPrealloc::default();
        ext.grow(0, 0, data.items.count_in(rest))?;
        let io = inode.io_tree.prepare(&span, op, None)?;
        Ok(DropPlan {
            rest,
            delalloc,
            io,
            items,
            ext,
        })
    }

    /// The io tree change of a drop: dirty bytes lose both bits.
    fn drop_op(&self) -> TreeOp {
        if self.quota_enabled() {
            TreeOp::clear(DELALLOC | RESERVED)
                .recording(RESERVED)
                .only_if(DELALLOC)
        } else {
            TreeOp::clear(DELALLOC)
        }
    }

    /// Applies a prepared drop; nothing fails.
    fn apply_drop(&self, inode: &Inode, data: &mut InodeData, plan: DropPlan) {
        let DropPlan {
            rest,
            delalloc,
            mut io,
            mut items,
            mut ext,
        } = plan;
        let freed = inode.io_tree.apply(&[rest], self.drop_op(), None, &mut io);
        let gone = {
            let mut tree = self.extent_tree.lock();
            data.items
                .cut(rest, inode.subvol.root(), &mut tree, &mut items, &mut ext)
        };
        if self.quota_enabled() {
            self.rsv().uncharge_data(inode.subvol, freed);
        }
        self.space.give(delalloc);
        self.space.pin(gone);
    }

    /// Prepares `unlink` of `inode`, whose locked data is `data`.
    pub(super) fn plan_unlink(&self, inode: &Inode, data: &InodeData) -> QResult<UnlinkPlan> {
        // Reserved bytes that are not dirty survive the drop: leaks.
        let mut leaked = KVec::new();
        inode.io_tree.ranges_where(
            0,
            MAX_END,
            |bits| bits.contains_all(RESERVED) && !bits.contains_all(DELALLOC),
            &mut leaked,
        )?;
        // A clear of the whole byte space splits nothing: this needs no
        // node, whatever the drop leaves.
        let clear = inode
            .io_tree
            .prepare(&[ALL], TreeOp::clear(RESERVED), None)?;
        let drop = self.plan_drop(inode, data, ALL)?;
        Ok(UnlinkPlan {
            leaked,
            clear,
            drop,
        })
    }

    /// Applies a prepared `unlink`: drop everything, report and free any
    /// reservation left (a leak), free the meta_prealloc, forget the inode
    /// and its named changesets. Nothing fails.
    pub(super) fn apply_unlink(&self, inode: &Inode, data: &mut InodeData, plan: UnlinkPlan) {
        let UnlinkPlan {
            leaked,
            mut clear,
            drop,
        } = plan;
        let subvol = inode.subvol;
        self.apply_drop(inode, data, drop);
        let freed = inode
            .io_tree
            .apply(&[ALL], TreeOp::clear(RESERVED), None, &mut clear);
        for r in leaked.iter() {
            pr_warn!(
                "leaking qgroup reserved space, ino: {}, start: {}, end: {}\n",
                inode.ino,
                r.start,
                r.end
            );
        }
        self.rsv().uncharge_data(subvol, freed);
        self.stats
            .leaks
            .add(leaked.len() as u64, kernel::sync::atomic::Relaxed);
        self.rsv()
            .free_meta(subvol, RsvType::MetaPrealloc, data.meta_prealloc);
        data.meta_prealloc = 0;
        data.gone = true;
        self.registry.forget(inode, data.changesets.keys().copied());
        data.changesets = kernel::rbtree::RBTree::new();
    }

    /// `unlink S INO`.
    pub(super) fn unlink(&self, subvol: SubvolId, ino: Ino) -> QResult {
        self.with_inode(subvol, ino, false, |inode, data| {
            let plan = self.plan_unlink(inode, data)?;
            self.apply_unlink(inode, data, plan);
            Ok(())
        })
    }
}

/// A prepared drop of a range of an inode.
pub(super) struct DropPlan {
    rest: ByteRange,
    delalloc: u64,
    io: Prealloc,
    items: ItemPool,
    ext: ExtentPrealloc,
}

/// A prepared `unlink`.
pub(super) struct UnlinkPlan {
    leaked: KVec<ByteRange>,
    clear: Prealloc,
    drop: DropPlan,
}
