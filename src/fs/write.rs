// SPDX-License-Identifier: GPL-2.0

//! The write path: the data commands on one inode's bytes (SPEC §1.5,
//! §1.5a, §5): `write`, `fallocate`, `writeback S INO`, `truncate`,
//! `unlink`.
//!
//! Each runs with the inode lock held and is all or nothing: it counts what
//! it will change (stable under the lock), takes space and reservations,
//! preallocates the io tree nodes of every tree operation ([`Prealloc`]), and
//! only then changes anything; what remains cannot fail.

use kernel::prelude::*;

use super::{op::Reply, FsState};
use crate::{
    changeset::{ByteRange, ExtentChangeset},
    extent_io_tree::{ExtentBits, Prealloc, TreeOp, MAX_END},
    extent_tree::{extent_lengths, ExtentPrealloc, MAX_PREALLOC_EXTENT, MAX_WRITEBACK_EXTENT},
    failure::{fail, QResult},
    fs::op::FileRange,
    inode::{
        extent_map::{FileItem, ItemPool},
        Inode, InodeData,
    },
    legacy::LegacySwitch,
    limits::MAX_FILE_END,
    qgroup::{Counter, QgroupId, RsvType},
    rsv::round_range,
};

const DELALLOC: ExtentBits = ExtentBits::DELALLOC;
const RESERVED: ExtentBits = ExtentBits::QGROUP_RESERVED;
/// The whole byte space of an inode.
const ALL: ByteRange = ByteRange {
    start: 0,
    end: MAX_END,
};

/// Sum of the bytes of `bits` over `ranges` of `tree`.
fn count(
    tree: &crate::extent_io_tree::ExtentIoTree,
    ranges: &[ByteRange],
    bits: ExtentBits,
) -> Result<u64> {
    let mut total = 0u64;
    for r in ranges {
        // PANIC: none; the ranges are disjoint parts of an inode's byte
        // space, so the sum fits.
        total += tree.count_bits(r.start, r.end, bits)?;
    }
    Ok(total)
}

/// The parts of `range` covered by neither `a` nor `b` (each ascending and
/// disjoint).
fn uncovered(range: ByteRange, a: &[ByteRange], b: &[ByteRange]) -> Result<KVec<ByteRange>> {
    let mut out = KVec::new();
    let mut pos = range.start;
    let (mut i, mut j) = (0, 0);
    while pos <= range.end {
        // The next covered range starting at or before... the earliest of
        // the two lists that ends at or after `pos`.
        while i < a.len() && a[i].end < pos {
            i += 1;
        }
        while j < b.len() && b[j].end < pos {
            j += 1;
        }
        let next = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => Some(if x.start <= y.start { *x } else { *y }),
            (Some(x), None) => Some(*x),
            (None, Some(y)) => Some(*y),
            (None, None) => None,
        };
        match next {
            Some(c) if c.start <= pos => pos = c.end.saturating_add(1),
            Some(c) if c.start <= range.end => {
                // PANIC: none; `pos < c.start` here, so `c.start >= 1`.
                out.push(
                    ByteRange {
                        start: pos,
                        end: c.start - 1,
                    },
                    GFP_KERNEL,
                )?;
                pos = c.end.saturating_add(1);
            }
            _ => {
                out.push(
                    ByteRange {
                        start: pos,
                        end: range.end,
                    },
                    GFP_KERNEL,
                )?;
                break;
            }
        }
    }
    Ok(out)
}

/// A writeback of one inode, prepared: everything allocated and counted.
pub(super) struct WritebackPlan {
    /// The DELALLOC ranges written back.
    dirty: KVec<ByteRange>,
    /// Dirty bytes.
    total: u64,
    io: Prealloc,
    items: ItemPool,
    ext: ExtentPrealloc,
}

impl WritebackPlan {
    /// At most how many items the writeback adds.
    pub(super) fn new_items(&self) -> usize {
        self.items.len()
    }
}

/// Nodes for mapping `ranges` of an inode whose items are `data`'s with
/// new extents of at most `max` bytes each: one new item, extent, root and
/// dirty mark for each extent, one item for a split at each range, and a
/// dirty mark for each item cut.
fn plan_new_extents(
    data: &InodeData,
    ranges: &[ByteRange],
    max: u64,
    sectorsize: u64,
) -> Result<(ItemPool, ExtentPrealloc)> {
    let mut extents = 0usize;
    let mut cut = 0usize;
    for r in ranges {
        extents += extent_lengths(r.len(), max, sectorsize).count();
        cut += data.items.count_in(*r);
    }
    let mut items = ItemPool::default();
    items.grow(extents + ranges.len())?;
    let mut ext = ExtentPrealloc::default();
    ext.grow(extents, extents, extents + cut)?;
    Ok((items, ext))
}

impl FsState {
    /// `write S INO OFF LEN [fail=meta]`: a buffered write; `ok
    /// reserved=N written=M`. After a flush (`after_flush`) a write that
    /// still does not fit writes its longest fitting prefix (SPEC §1.5a).
    pub(super) fn write(&self, r: FileRange, fail_meta: bool, after_flush: bool) -> QResult<Reply> {
        let range = round_range(r.off, r.len, self.sectorsize)?;
        self.with_inode(r.subvol, r.ino, true, |inode, data| {
            let failure = match self.write_range(inode, data, range, fail_meta) {
                Ok(n) => {
                    return Ok(Reply::Written {
                        reserved: n,
                        written: r.len,
                    })
                }
                Err(f) if after_flush && f.is_over_limit() => f,
                Err(f) => return Err(f),
            };
            let Some(prefix) = self.fitting_prefix(inode, range) else {
                return Err(failure);
            };
            let n = self.write_range(inode, data, prefix, false)?;
            // PANIC: none; the prefix starts at the sector holding OFF and
            // ends before OFF + LEN rounded up (at most 2^63): `written` is
            // in 1..LEN.
            let written = (prefix.end + 1).min(r.off + r.len) - r.off;
            Ok(Reply::Written {
                reserved: n,
                written,
            })
        })
    }

    /// Writes the (rounded) `range`: takes the space of its newly dirty
    /// bytes, reserves `nodesize` of meta_prealloc and the data, and marks
    /// the range DELALLOC in one io tree operation. All or nothing.
    ///
    /// Upstream reserves the data first; here the meta reservation (and an
    /// injected failure) comes first, so that a failure after the data bits
    /// were set never needs an undo that could itself fail. The outcome is
    /// the same: both are limit-checked against the same sum.
    fn write_range(
        &self,
        inode: &Inode,
        data: &mut InodeData,
        range: ByteRange,
        fail_meta: bool,
    ) -> QResult<u64> {
        let quota = self.quota_enabled();
        let meta = if quota { self.nodesize } else { 0 };
        // PANIC: none; the dirty bytes counted are part of `range`.
        let dirty_new = range.len() - inode.io_tree.count_bits(range.start, range.end, DELALLOC)?;
        let rsv = self.rsv();
        if fail_meta {
            // The device comes first (SPEC §5, §7): a write whose data does
            // not fit fails with ENOSPC before its meta reservation fails.
            self.space.take(dirty_new)?;
            self.space.give(dirty_new);
            if quota && rsv.legacy.contains(LegacySwitch::FreeIgnoresChangeset) {
                // Before seed 001 the error path freed the whole range,
                // whatever the write's own changeset held.
                rsv.free_data(inode, Some(&ExtentChangeset::new()), range)?;
            }
            fail!(EDQUOT, "injected meta reservation failure");
        }
        self.space.take(dirty_new)?;
        if let Err(f) = rsv.reserve_meta(inode.subvol, RsvType::MetaPrealloc, meta) {
            self.space.give(dirty_new);
            return Err(f);
        }
        match rsv.reserve_data(inode, None, range, DELALLOC) {
            Ok(n) => {
                // Bounded by the space the reservations took.
                data.meta_prealloc = data.meta_prealloc.saturating_add(meta);
                Ok(n)
            }
            Err(f) => {
                rsv.free_meta(inode.subvol, RsvType::MetaPrealloc, meta);
                self.space.give(dirty_new);
                Err(f)
            }
        }
    }

    /// The longest prefix of whole sectors of `range` whose newly reserved
    /// data plus a write's meta_prealloc passes the limit check now, if it
    /// holds at least one sector.
    fn fitting_prefix(&self, inode: &Inode, range: ByteRange) -> Option<ByteRange> {
        let sector = self.sectorsize;
        let qg = QgroupId::level0(inode.subvol);
        // PANIC: none; `k` sectors of `range` end inside it, and a held
        // byte of the prefix is one of its bytes: no bound is passed.
        let prefix = |k: u64| ByteRange {
            start: range.start,
            end: range.start + k * sector - 1,
        };
        let fits = |k: u64| {
            let p = prefix(k);
            let held = inode
                .io_tree
                .count_bits(p.start, p.end, RESERVED)
                .unwrap_or(0);
            self.qgroups.fits(qg, p.len() - held + self.nodesize)
        };
        let sectors = range.len() / sector;
        if sectors < 2 || !fits(1) {
            return None;
        }
        // Invariant of the search: `lo` sectors fit, `hi` do not.
        let (mut lo, mut hi) = (1, sectors);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(prefix(lo))
    }

    /// `fallocate S INO OFF LEN`: allocates extents for the holes of the
    /// rounded range (bytes neither mapped nor dirty), one per hole (cut
    /// every 256 MiB), reserving and releasing exactly those, and takes
    /// `nodesize` of meta_pertrans. Returns the bytes newly charged to
    /// may_use.data.
    pub(super) fn fallocate(&self, r: FileRange) -> QResult<u64> {
        let range = round_range(r.off, r.len, self.sectorsize)?;
        self.with_inode(r.subvol, r.ino, true, |inode, data| {
            let quota = self.quota_enabled();
            let rsv = self.rsv();
            let subvol = inode.subvol;
            let mut backed = KVec::new();
            data.items.mapped(range, &mut backed)?;
            let mut dirty = KVec::new();
            inode
                .io_tree
                .ranges_with_bits(range.start, range.end, DELALLOC, &mut dirty)?;
            let holes = uncovered(range, &backed, &dirty)?;
            let total: u64 = holes.iter().map(ByteRange::len).sum();
            let held = count(&inode.io_tree, &holes, RESERVED)?;
            // PANIC: none; the held bytes are bytes of the holes.
            let newly = total - held;
            let meta = if quota { self.nodesize } else { 0 };
            let (mut items, mut ext) =
                plan_new_extents(data, &holes, MAX_PREALLOC_EXTENT, self.sectorsize)?;
            let mut io = inode
                .io_tree
                .prepare(&holes, TreeOp::clear(RESERVED), None)?;
            self.space.take(total)?;
            if let Err(f) = rsv.reserve_meta(subvol, RsvType::MetaPertrans, meta) {
                self.space.give(total);
                return Err(f);
            }
            if quota {
                if let Err(f) = self
                    .qgroups
                    .reserve(QgroupId::level0(subvol), RsvType::Data, newly)
                {
                    rsv.free_meta(subvol, RsvType::MetaPertrans, meta);
                    self.space.give(total);
                    return Err(f);
                }
            }
            // Nothing below fails: the nodes are preallocated.
            let stage = self.reserved_stage();
            self.map_new_extents(
                data,
                subvol,
                &holes,
                MAX_PREALLOC_EXTENT,
                stage,
                &mut items,
                &mut ext,
            );
            if quota {
                inode
                    .io_tree
                    .apply(&holes, TreeOp::clear(RESERVED), None, &mut io);
            }
            if stage {
                self.qgroups
                    .transfer(QgroupId::level0(subvol), None, &[Counter::Reserved], total);
            }
            // The extents are in place: release the holes' reservation.
            rsv.released(subvol, total, total);
            // With quotas off nothing was charged (SPEC §2, §5).
            Ok(if quota { newly } else { 0 })
        })
    }

    /// Maps each of `ranges` of an inode of `subvol` to new extents of at
    /// most `max` bytes, cutting what mapped them before; an extent's
    /// record has its bytes of reservation (in `reserved` when `stage`). The pools come
    /// from [`plan_new_extents`]. Returns the bytes of extents whose last
    /// reference went (pinned until the commit).
    #[allow(clippy::too_many_arguments)]
    fn map_new_extents(
        &self,
        data: &mut InodeData,
        subvol: u64,
        ranges: &[ByteRange],
        max: u64,
        stage: bool,
        items: &mut ItemPool,
        ext: &mut ExtentPrealloc,
    ) {
        let quota = self.quota_enabled();
        let mut tree = self.extent_tree.lock();
        let mut freed = 0u64;
        for r in ranges {
            // PANIC: none; extent bytes are space in use (<= 2^63).
            freed += data.items.cut(*r, subvol, &mut tree, items, ext);
            let mut pos = r.start;
            for len in extent_lengths(r.len(), max, self.sectorsize) {
                let rsv = if quota { len } else { 0 };
                let extent = tree.allocate(len, subvol, (rsv, stage), ext);
                let item = FileItem {
                    len,
                    extent,
                    offset: 0,
                };
                data.items.insert(pos, item, items);
                // PANIC: none; the pieces add up to the range.
                pos += len;
            }
        }
        drop(tree);
        self.space.pin(freed);
    }

    /// Prepares the writeback of `inode` (SPEC §1.5), whose locked data is
    /// `data`: every DELALLOC range gets extents (one per range, cut every
    /// 128 MiB) and loses its reservation. `None` when it has nothing dirty.
    pub(super) fn plan_writeback(
        &self,
        inode: &Inode,
        data: &InodeData,
    ) -> QResult<Option<WritebackPlan>> {
        self.plan_writeback_within(inode, data, &[ALL])
    }

    /// As [`Self::plan_writeback`], for the DELALLOC ranges that touch one
    /// of `within` (each whole).
    pub(super) fn plan_writeback_within(
        &self,
        inode: &Inode,
        data: &InodeData,
        within: &[ByteRange],
    ) -> QResult<Option<WritebackPlan>> {
        let mut dirty = KVec::new();
        inode
            .io_tree
            .ranges_with_bits(0, MAX_END, DELALLOC, &mut dirty)?;
        dirty.retain(|r| within.iter().any(|w| r.end >= w.start && r.start <= w.end));
        if dirty.is_empty() {
            return Ok(None);
        }
        let total: u64 = dirty.iter().map(ByteRange::len).sum();
        let (items, ext) = plan_new_extents(data, &dirty, MAX_WRITEBACK_EXTENT, self.sectorsize)?;
        let io = inode.io_tree.prepare(&dirty, Self::written_back(), None)?;
        Ok(Some(WritebackPlan {
            dirty,
            total,
            io,
            items,
            ext,
        }))
    }

    /// `io_tree`: written back bytes are clean and their reservation is
    /// released.
    fn written_back() -> TreeOp {
        TreeOp::clear(DELALLOC | RESERVED).recording(RESERVED)
    }

    /// Applies a prepared writeback of `inode`, then frees its
    /// meta_prealloc (also when nothing was dirty) unless dirty bytes are
    /// left (a partial writeback).
    pub(super) fn apply_writeback(
        &self,
        inode: &Inode,
        data: &mut InodeData,
        plan: Option<WritebackPlan>,
    ) {
        let subvol = inode.subvol;
        if let Some(mut plan) = plan {
            // The nodes were preallocated under the same inode lock (or
            // with the instance alone), for these very trees: no step fails.
            let stage = self.reserved_stage();
            self.map_new_extents(
                data,
                subvol,
                &plan.dirty,
                MAX_WRITEBACK_EXTENT,
                stage,
                &mut plan.items,
                &mut plan.ext,
            );
            let cleared =
                inode
                    .io_tree
                    .apply(&plan.dirty, Self::written_back(), None, &mut plan.io);
            if stage {
                self.qgroups.transfer(
                    QgroupId::level0(subvol),
                    None,
                    &[Counter::Reserved],
                    plan.total,
                );
            }
            self.rsv().released(subvol, cleared, plan.total);
        }
        if !inode.has_delalloc() {
            self.rsv()
                .free_meta(subvol, RsvType::MetaPrealloc, data.meta_prealloc);
            data.meta_prealloc = 0;
        }
    }

    /// `writeback S INO`.
    pub(super) fn writeback_one(&self, subvol: u64, ino: u64) -> QResult {
        self.with_inode(subvol, ino, false, |inode, data| {
            let plan = self.plan_writeback(inode, data)?;
            self.apply_writeback(inode, data, plan);
            Ok(())
        })
    }

    /// `truncate S INO SIZE`: frees the reservations of dirty bytes past
    /// the sector holding SIZE and drops the extents there.
    pub(super) fn truncate(&self, subvol: u64, ino: u64, size: u64) -> QResult {
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
                .cut(rest, inode.subvol, &mut tree, &mut items, &mut ext)
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
    pub(super) fn unlink(&self, subvol: u64, ino: u64) -> QResult {
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
