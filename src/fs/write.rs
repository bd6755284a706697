// SPDX-License-Identifier: GPL-2.0

//! The write path: `write` and `fallocate`, the data commands that
//! reserve an inode's bytes (SPEC §1.5, §1.5a, §5); `writeback` and
//! `truncate`/`unlink` are their siblings in `writeback.rs` and
//! `truncate.rs`.
//!
//! Each data command runs with the inode lock held and is all or nothing: it counts what
//! it will change (stable under the lock), takes space and reservations,
//! preallocates the io tree nodes of every tree operation ([`Prealloc`](crate::extent_io_tree::Prealloc)), and
//! only then changes anything; what remains cannot fail.

use kernel::prelude::*;

use super::{op::Reply, writeback::plan_new_extents, FsState};
use crate::{
    changeset::{ByteRange, ExtentChangeset},
    extent_io_tree::{ExtentBits, TreeOp, MAX_END},
    extent_tree::MAX_PREALLOC_EXTENT,
    failure::{fail, QResult},
    fs::op::FileRange,
    inode::{Inode, InodeData},
    legacy::LegacySwitch,
    qgroup::{Counter, RsvType},
    rsv::round_range,
};

pub(super) const DELALLOC: ExtentBits = ExtentBits::DELALLOC;
pub(super) const RESERVED: ExtentBits = ExtentBits::QGROUP_RESERVED;
/// The whole byte space of an inode.
pub(super) const ALL: ByteRange = ByteRange {
    start: 0,
    end: MAX_END,
};

/// Sum of the bytes of `bits` over `ranges` of `tree`.
pub(super) fn count(
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
        let qg = inode.subvol.qgroup();
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
            // Holes: no item is cut, so no extent is marked dirty.
            let (mut items, mut ext, _) =
                plan_new_extents(data, &holes, MAX_PREALLOC_EXTENT, self.sectorsize, u64::MAX)?;
            let mut io = inode
                .io_tree
                .prepare(&holes, TreeOp::clear(RESERVED), None)?;
            self.space.take(total)?;
            if let Err(f) = rsv.reserve_meta(subvol, RsvType::MetaPertrans, meta) {
                self.space.give(total);
                return Err(f);
            }
            if quota {
                if let Err(f) = self.qgroups.reserve(subvol.qgroup(), RsvType::Data, newly) {
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
                    .transfer(subvol.qgroup(), None, &[Counter::Reserved], total);
            }
            // The extents are in place: release the holes' reservation.
            rsv.released(subvol, total, total);
            // With quotas off nothing was charged (SPEC §2, §5).
            Ok(if quota { newly } else { 0 })
        })
    }
}
