// SPDX-License-Identifier: GPL-2.0

//! Writeback of one inode (`writeback S INO`, and the writeback a flush,
//! a commit or a clone starts): its DELALLOC ranges become new data extents
//! (at most 128 MiB each), mapped by new file extent items, their
//! reservations moved into the extent records (SPEC §1.5, §8.2).
//!
//! Planning allocates and counts everything; applying cannot fail.

use kernel::prelude::*;

use super::{
    write::{ALL, DELALLOC, RESERVED},
    FsState,
};
use crate::{
    changeset::{ByteRange, RangeList},
    extent_io_tree::{Prealloc, TreeOp, MAX_END},
    extent_tree::{extent_lengths, ExtentPrealloc, MAX_WRITEBACK_EXTENT},
    failure::QResult,
    ids::{Ino, SubvolId},
    inode::{
        extent_map::{FileItem, ItemPool},
        Inode, InodeData,
    },
    qgroup::{Counter, RsvType},
};

/// A writeback of one inode, prepared: everything allocated and counted.
pub(super) struct WritebackPlan {
    /// The DELALLOC ranges written back (the first two inline).
    dirty: RangeList<2>,
    /// Dirty bytes.
    total: u64,
    io: Prealloc,
    items: ItemPool,
    /// Items the writeback inserts (not counting those it drops).
    added: usize,
    ext: ExtentPrealloc,
}

impl WritebackPlan {
    /// At most how many items the writeback inserts, not counting those
    /// it drops: a bound on the items any part of the file holds after it
    /// beyond those it holds now.
    pub(super) fn new_items(&self) -> usize {
        self.added
    }
}

/// Nodes for mapping `ranges` of an inode whose items are `data`'s with
/// new extents of at most `max` bytes each (see [`FsState::map_new_extents`]):
/// one new item and extent for each extent (a new extent's root lives in
/// its record, and it is dirty without a mark) and a dirty mark for each
/// item cut into an extent older than the last commit (`first_new`: no
/// commit runs between a plan and its apply, which both hold the gate,
/// shared or exclusive).
///
/// Each range is cut before its extents are mapped: a split takes an item
/// node and an item dropped gives its node back to the pool. So the pool
/// starts with the most the ranges ever need at once, and has room for the
/// most it ever holds, or for every insert if that is less. Also returns
/// how many items the mapping inserts (one per extent and split), however
/// many it drops.
pub(super) fn plan_new_extents(
    data: &InodeData,
    ranges: &[ByteRange],
    max: u64,
    sectorsize: u64,
    first_new: u64,
) -> Result<(ItemPool, ExtentPrealloc, usize)> {
    let mut extents = 0usize;
    let mut splits = 0usize;
    let mut marks = 0usize;
    // Item nodes taken less nodes given back so far, and its extremes.
    let (mut taken, mut most, mut least) = (0isize, 0isize, 0isize);
    for r in ranges {
        let new = extent_lengths(r.len(), max, sectorsize).count();
        let census = data.items.census(*r, first_new);
        extents += new;
        splits += usize::from(census.split);
        marks += census.marks;
        // PANIC: none; node counts are bounded by the items and extents,
        // which fit in memory.
        taken += isize::from(census.split);
        most = most.max(taken);
        taken -= census.dropped as isize;
        least = least.min(taken);
        taken += new as isize;
        most = most.max(taken);
    }
    let mut items = ItemPool::default();
    items.grow(most.unsigned_abs())?;
    // A node is kept only for a later insert: room for every insert is
    // enough (nodes given back past it are freed), and bounds the room
    // an overwrite of many items would otherwise ask for.
    items.make_room((most - least).unsigned_abs().min(extents + splits))?;
    let mut ext = ExtentPrealloc::default();
    ext.grow(extents, 0, marks)?;
    Ok((items, ext, extents + splits))
}

impl FsState {
    /// Maps each of `ranges` of an inode of `subvol` to new extents of at
    /// most `max` bytes, cutting what mapped them before; an extent's
    /// record has its bytes of reservation (in `reserved` when `stage`). The pools come
    /// from [`plan_new_extents`]. Returns the bytes of extents whose last
    /// reference went (pinned until the commit).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn map_new_extents(
        &self,
        data: &mut InodeData,
        subvol: SubvolId,
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
            freed += data.items.cut(*r, subvol.root(), &mut tree, items, ext);
            let mut pos = r.start;
            for len in extent_lengths(r.len(), max, self.sectorsize) {
                let extent = tree.allocate(len, subvol.root(), (quota, stage), ext);
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
        let mut dirty = RangeList::default();
        inode
            .io_tree
            .ranges_with_bits(0, MAX_END, DELALLOC, &mut dirty)?;
        dirty.retain(|r| within.iter().any(|w| r.end >= w.start && r.start <= w.end));
        let ranges = dirty.as_slice();
        if ranges.is_empty() {
            return Ok(None);
        }
        let total: u64 = ranges.iter().map(ByteRange::len).sum();
        let (items, ext, added) = plan_new_extents(
            data,
            ranges,
            MAX_WRITEBACK_EXTENT,
            self.sectorsize,
            self.extent_tree.lock().first_new(),
        )?;
        let io = inode.io_tree.prepare(ranges, Self::written_back(), None)?;
        Ok(Some(WritebackPlan {
            dirty,
            total,
            io,
            items,
            added,
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
                plan.dirty.as_slice(),
                MAX_WRITEBACK_EXTENT,
                stage,
                &mut plan.items,
                &mut plan.ext,
            );
            let cleared = inode.io_tree.apply(
                plan.dirty.as_slice(),
                Self::written_back(),
                None,
                &mut plan.io,
            );
            if stage {
                self.qgroups
                    .transfer(subvol.qgroup(), None, &[Counter::Reserved], plan.total);
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
    pub(super) fn writeback_one(&self, subvol: SubvolId, ino: Ino) -> QResult {
        self.with_inode(subvol, ino, false, |inode, data| {
            let plan = self.plan_writeback(inode, data)?;
            self.apply_writeback(inode, data, plan);
            Ok(())
        })
    }
}
