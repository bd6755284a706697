// SPDX-License-Identifier: GPL-2.0

//! The reservation layer: every change of `may_use`, data and meta, goes
//! through here (SPEC §1.4, upstream names).
//!
//! A data reservation is held per byte with the `QGROUP_RESERVED` bit of the
//! inode's io tree, and charged to `may_use.data` of the subvolume's level-0
//! qgroup and its ancestors. Only bytes whose bit really flips are charged or
//! uncharged (seed 001). Callers hold the inode lock, which makes each call
//! atomic with respect to other callers on the same inode, and keeps the
//! bytes counted before a change equal to the bytes the change flips.
//!
//! Every call is all or nothing: what can fail (the space and limit checks,
//! allocations) happens before the first change, and undoing a charge never
//! fails.

use kernel::prelude::*;

use crate::{
    changeset::{ByteRange, ExtentChangeset},
    extent_io_tree::{ExtentBits, TreeOp},
    failure::QResult,
    ids::SubvolId,
    inode::Inode,
    legacy::{Legacy, LegacySwitch},
    limits::MAX_FILE_END,
    qgroup::{Counter, QgroupTree, RsvType},
    space::Space,
};

/// `[start, start + len)` rounded out to `sectorsize`, as an inclusive range.
///
/// EINVAL for a zero length or a range ending past 2^63.
pub(crate) fn round_range(start: u64, len: u64, sectorsize: u64) -> QResult<ByteRange> {
    if len == 0 {
        crate::failure::fail!(EINVAL, "zero length");
    }
    let end = match start.checked_add(len) {
        Some(end) if end <= MAX_FILE_END => end,
        _ => crate::failure::fail!(EINVAL, "offset + length past 2^63"),
    };
    let mask = sectorsize - 1;
    Ok(ByteRange {
        start: start & !mask,
        // PANIC: none; `end <= 2^63` and `sectorsize <= 64 KiB`.
        end: ((end + mask) & !mask) - 1,
    })
}

/// The reservation layer bound to one filesystem instance.
pub(crate) struct Rsv<'a> {
    /// The qgroup hierarchy charged.
    pub(crate) qgroups: &'a QgroupTree,
    /// The device space meta reservations take.
    pub(crate) space: &'a Space,
    /// The legacy switches in force.
    pub(crate) legacy: Legacy,
    /// Whether quotas are enabled; when not, nothing is reserved.
    pub(crate) quota: bool,
}

impl Rsv<'_> {
    /// Reserves the (rounded) `range` of `inode` (upstream
    /// `btrfs_qgroup_reserve_data`): sets `QGROUP_RESERVED` (and `also`, in
    /// the same io tree operation), records the bytes whose reservation bit
    /// it set in `changeset` and charges just those to may_use.data,
    /// limit-checked. Returns the bytes newly charged.
    ///
    /// With quotas disabled only `also` is set. On failure (EDQUOT, ENOSPC,
    /// ENOMEM) nothing changed, `changeset` included.
    pub(crate) fn reserve_data(
        &self,
        inode: &Inode,
        changeset: Option<&mut ExtentChangeset>,
        range: ByteRange,
        also: ExtentBits,
    ) -> QResult<u64> {
        if !self.quota {
            if !also.is_empty() {
                inode.io_tree.set_bits(range.start, range.end, also, None)?;
            }
            return Ok(0);
        }
        let reserved = ExtentBits::QGROUP_RESERVED;
        let op = TreeOp::set(reserved | also).recording(reserved);
        // The tree measures the bytes the operation will set and, under its
        // lock, charges just those (limit-checked) before it makes the
        // change: all or nothing, in one lock round.
        let qgroup = inode.subvol.qgroup();
        inode.io_tree.run_admitted(range, op, changeset, |n| {
            self.qgroups.reserve(qgroup, RsvType::Data, n)
        })
    }

    /// Frees the data reservation of the (rounded) `range` (upstream
    /// `btrfs_qgroup_free_data`). With a changeset only the bytes it
    /// recorded inside `range` are freed (seed 001), unless the
    /// `free_ignores_changeset` switch is on. Returns the bytes freed.
    pub(crate) fn free_data(
        &self,
        inode: &Inode,
        changeset: Option<&ExtentChangeset>,
        range: ByteRange,
    ) -> QResult<u64> {
        let changeset =
            changeset.filter(|_| !self.legacy.contains(LegacySwitch::FreeIgnoresChangeset));
        let reserved = ExtentBits::QGROUP_RESERVED;
        let freed = match changeset {
            Some(cs) => {
                let mut ranges = KVec::with_capacity(cs.ranges().len(), GFP_KERNEL)?;
                for r in cs.ranges().iter().filter_map(|r| r.intersect(&range)) {
                    // INVARIANT: at most one piece a recorded range, and room
                    // for all of them was made above.
                    kernel::warn_on!(ranges.push_within_capacity(r).is_err());
                }
                inode.io_tree.clear_bits_ranges(&ranges, reserved)?
            }
            None => inode
                .io_tree
                .clear_bits(range.start, range.end, reserved, None)?,
        };
        self.uncharge_data(inode.subvol, freed);
        Ok(freed)
    }

    /// Releases the data reservation of the (rounded) `range` once its
    /// extent is allocated (upstream `btrfs_qgroup_release_data`). Returns
    /// the bytes cleared.
    pub(crate) fn release_data(&self, inode: &Inode, range: ByteRange) -> QResult<u64> {
        let cleared =
            inode
                .io_tree
                .clear_bits(range.start, range.end, ExtentBits::QGROUP_RESERVED, None)?;
        self.released(inode.subvol, cleared, range.len());
        Ok(cleared)
    }

    /// Accounts a release whose bits were cleared by the caller's own io
    /// tree operation: may_use.data drops by the `cleared` bytes, or by the
    /// `requested` length under `release_by_length`.
    pub(crate) fn released(&self, subvol: SubvolId, cleared: u64, requested: u64) {
        let n = if self.legacy.contains(LegacySwitch::ReleaseByLength) {
            requested
        } else {
            cleared
        };
        self.uncharge_data(subvol, n);
    }

    /// Takes `n` bytes off may_use.data of the subvolume's qgroups.
    pub(crate) fn uncharge_data(&self, subvol: SubvolId, n: u64) {
        if self.quota {
            self.qgroups
                .discharge(subvol.qgroup(), Counter::MayUse(RsvType::Data), n);
        }
    }

    /// Reserves `n` bytes of meta `kind` for `subvol`: device space first
    /// (ENOSPC), then the limit-checked charge (EDQUOT). Nothing changes on
    /// failure. A no-op with quotas disabled.
    pub(crate) fn reserve_meta(&self, subvol: SubvolId, kind: RsvType, n: u64) -> QResult {
        if !self.quota {
            return Ok(());
        }
        self.space.take(n)?;
        let charged = self.qgroups.reserve(subvol.qgroup(), kind, n);
        if charged.is_err() {
            self.space.give(n);
        }
        charged
    }

    /// Frees `n` bytes of meta `kind` of `subvol` (more than it holds is an
    /// underflow) and gives back the space it held.
    pub(crate) fn free_meta(&self, subvol: SubvolId, kind: RsvType, n: u64) {
        if !self.quota {
            return;
        }
        let freed = self
            .qgroups
            .discharge(subvol.qgroup(), Counter::MayUse(kind), n);
        self.space.give(freed);
    }

    /// Converts `n` bytes of meta_prealloc to meta_pertrans (upstream
    /// `btrfs_qgroup_convert_reserved_meta`; not limit-checked).
    pub(crate) fn convert_meta(&self, subvol: SubvolId, n: u64) {
        if self.quota {
            self.qgroups.convert_meta(subvol.qgroup(), n);
        }
    }
}
