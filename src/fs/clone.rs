// SPDX-License-Identifier: GPL-2.0

//! `clone S INO OFF LEN S2 INO2 OFF2` (SPEC §8.3): a reflink, as
//! `FICLONERANGE` / `btrfs_clone_files()`.
//!
//! The DELALLOC ranges touching either range are written back first
//! (upstream waits for the ordered extents of both), then the destination
//! range's items are cut as an overwrite would and the source range's
//! items are copied there, holes included. No data reservation and no new
//! space: the destination points into the source's extents, whole.
//!
//! Locking: a data command holding two inode locks, taken in (subvol, ino)
//! order as upstream's `lock_two_nondirectories()`. The kernel crate's
//! `Mutex` has no `lock_nested()`, and lockdep reports a second blocking
//! acquisition of the inode lock class as recursion; so the second lock is
//! taken with `try_lock()` (lockdep validates no order for a trylock). When
//! it is busy, the first is dropped, the second waited for with nothing
//! held, and both are taken again: no task ever waits for an inode lock
//! while holding one, so two clones (or a clone and anything else) cannot
//! deadlock, and lockdep sees no recursion.

use kernel::{prelude::*, sync::Arc};

use super::{writeback::WritebackPlan, FsState};
use crate::{
    changeset::ByteRange,
    extent_tree::ExtentPrealloc,
    failure::{fail, QResult},
    fs::op::FileRange,
    inode::{
        extent_map::{FileItem, ItemPool},
        Inode, InodeData,
    },
    limits::MAX_FILE_END,
};

/// A clone, prepared: every allocation made.
struct ClonePlan {
    /// Writeback of the source inode (and of the destination, if the same).
    src_writeback: Option<WritebackPlan>,
    /// Writeback of the destination inode, if another.
    dst_writeback: Option<WritebackPlan>,
    /// Room for the source items copied.
    copy: KVec<(u64, FileItem)>,
    items: ItemPool,
    ext: ExtentPrealloc,
}

/// The inclusive byte range of `r` (checked by the caller).
fn span(r: &FileRange) -> ByteRange {
    ByteRange {
        start: r.off,
        end: r.off + r.len - 1,
    }
}

impl FsState {
    /// `clone`: checks the ranges, then runs with both inode locks held.
    pub(super) fn clone_range(&self, src: FileRange, dst: FileRange) -> QResult {
        let s = self.sectorsize;
        if src.len == 0 || src.len != dst.len {
            fail!(EINVAL, "clone length must be non-zero");
        }
        if src.off % s != 0 || src.len % s != 0 || dst.off % s != 0 {
            fail!(
                EINVAL,
                "clone offsets and length must be multiples of {}",
                s
            );
        }
        for r in [&src, &dst] {
            if r.off
                .checked_add(r.len)
                .is_none_or(|end| end > MAX_FILE_END)
            {
                fail!(EINVAL, "clone range past 2^63");
            }
        }
        let (a, b) = (span(&src), span(&dst));
        let same = (src.subvol, src.ino) == (dst.subvol, dst.ino);
        if same && a.start <= b.end && b.start <= a.end {
            fail!(EINVAL, "clone ranges of one inode overlap");
        }
        self.registry.need_subvol(dst.subvol)?;
        if same {
            return self.with_inode(src.subvol, src.ino, false, |inode, data| {
                let plan = self.plan_clone(inode, data, None, a, b)?;
                self.apply_clone(inode, data, None, plan, a, b);
                Ok(())
            });
        }
        self.with_two_inodes(src, dst, |si, sd, di, dd| {
            let plan = self.plan_clone(si, sd, Some((di, &*dd)), a, b)?;
            self.apply_clone(si, sd, Some((di, dd)), plan, a, b);
            Ok(())
        })
    }

    /// Runs `op` with the locks of the existing inode `src` and of `dst`
    /// (created if missing, and forgotten again if `op` fails and it is
    /// still empty), taken as the module documentation says.
    pub(super) fn with_two_inodes(
        &self,
        src: FileRange,
        dst: FileRange,
        op: impl FnOnce(&Inode, &mut InodeData, &Inode, &mut InodeData) -> QResult,
    ) -> QResult {
        let mut op = Some(op);
        let mut created: Option<Arc<Inode>> = None;
        let forget_if_empty = |inode: &Inode| {
            let mut data = inode.lock.lock();
            if !data.gone && inode.is_empty(&data) {
                data.gone = true;
                self.registry.forget(inode, core::iter::empty());
            }
        };
        loop {
            let si = match self.registry.inode(src.subvol, src.ino) {
                Ok(inode) => inode,
                Err(f) => {
                    if let Some(di) = created.take() {
                        forget_if_empty(&di);
                    }
                    return Err(f);
                }
            };
            let (di, new) = self.registry.inode_or_new(dst.subvol, dst.ino)?;
            if new {
                created = Some(di.clone());
            }
            let src_first = (src.subvol, src.ino) < (dst.subvol, dst.ino);
            let (first, second) = if src_first { (&si, &di) } else { (&di, &si) };
            let mut g1 = first.lock.lock();
            let Some(mut g2) = second.lock.try_lock() else {
                drop(g1);
                // Wait for the holder with nothing held, then start over.
                drop(second.lock.lock());
                continue;
            };
            if g1.gone || g2.gone {
                continue;
            }
            let (sd, dd) = if src_first {
                (&mut *g1, &mut *g2)
            } else {
                (&mut *g2, &mut *g1)
            };
            let Some(op) = op.take() else {
                fail!(EINVAL, "inode operation ran twice");
            };
            let result = op(&si, sd, &di, dd);
            if result.is_err() && created.is_some() && di.is_empty(dd) {
                dd.gone = true;
                self.registry.forget(&di, core::iter::empty());
            }
            return result;
        }
    }

    /// Prepares a clone of `a` of `src` to `b` of `dst` (`None`: the same
    /// inode): the writebacks, and nodes for the worst case after them.
    fn plan_clone(
        &self,
        src: &Inode,
        src_data: &InodeData,
        dst: Option<(&Inode, &InodeData)>,
        a: ByteRange,
        b: ByteRange,
    ) -> QResult<ClonePlan> {
        let (src_writeback, dst_writeback, dst_data) = match dst {
            None => (
                self.plan_writeback_within(src, src_data, &[a, b])?,
                None,
                src_data,
            ),
            Some((di, dd)) => (
                self.plan_writeback_within(src, src_data, &[a])?,
                self.plan_writeback_within(di, dd, &[b])?,
                dd,
            ),
        };
        // After the writebacks a range holds at most its items now, the new
        // ones and the pieces of a split at each end.
        let new = |p: &Option<WritebackPlan>| p.as_ref().map_or(0, WritebackPlan::new_items);
        let k_src = src_data.items.count_in(a) + new(&src_writeback) + 2;
        let k_dst = dst_data.items.count_in(b) + new(&src_writeback) + new(&dst_writeback) + 2;
        let copy = KVec::with_capacity(k_src, GFP_KERNEL)?;
        let mut items = ItemPool::default();
        items.grow(k_src + 1)?;
        let mut ext = ExtentPrealloc::default();
        ext.grow(0, k_src, k_src + k_dst)?;
        Ok(ClonePlan {
            src_writeback,
            dst_writeback,
            copy,
            items,
            ext,
        })
    }

    /// Applies a prepared clone; nothing fails.
    fn apply_clone(
        &self,
        src: &Inode,
        src_data: &mut InodeData,
        dst: Option<(&Inode, &mut InodeData)>,
        plan: ClonePlan,
        a: ByteRange,
        b: ByteRange,
    ) {
        let ClonePlan {
            src_writeback,
            dst_writeback,
            mut copy,
            mut items,
            mut ext,
        } = plan;
        self.apply_writeback(src, src_data, src_writeback);
        src_data.items.for_each_in(a, |first, item| {
            // INVARIANT: `plan_clone` made room for every item of `a`.
            kernel::warn_on!(copy.push_within_capacity((first - a.start, item)).is_err());
        });
        let (subvol, data) = match dst {
            Some((di, dd)) => {
                self.apply_writeback(di, dd, dst_writeback);
                (di.subvol, dd)
            }
            None => (src.subvol, src_data),
        };
        let mut tree = self.extent_tree.lock();
        let freed = data
            .items
            .cut(b, subvol.root(), &mut tree, &mut items, &mut ext);
        for &(rel, item) in copy.iter() {
            // PANIC: none; `rel` lies inside a range as long as `b`.
            data.items.insert(b.start + rel, item, &mut items);
            tree.add_ref(item.extent, subvol.root(), &mut ext);
        }
        drop(tree);
        self.space.pin(freed);
    }
}
