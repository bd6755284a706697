// SPDX-License-Identifier: GPL-2.0

//! The qgroup data reservation API (SPEC §1.4, upstream names).
//!
//! A data reservation is held per byte with the `QGROUP_RESERVED` bit of the
//! inode's io tree, and charged to `may_use.data` of the subvolume's level-0
//! qgroup and its ancestors. Only bytes whose bit really flips are charged or
//! uncharged (seed 001). Callers hold the filesystem lock, which makes each
//! call atomic with respect to other callers on the same inode.

use kernel::prelude::*;

use crate::{
    changeset::{ByteRange, ExtentChangeset},
    extent_io_tree::ExtentBits,
    failure::{fail, Failure, QResult},
    inode::Inode,
    legacy::{Legacy, LegacySwitch},
    qgroup::{Counter, QgroupId, QgroupTree, RsvType},
};

/// Largest end (exclusive) of a byte range given by offset and length.
pub(crate) const MAX_FILE_END: u64 = 1 << 63;

/// `[start, start + len)` rounded out to `sectorsize`, as an inclusive range.
///
/// EINVAL for a zero length or a range ending past 2^63.
pub(crate) fn round_range(start: u64, len: u64, sectorsize: u64) -> QResult<ByteRange> {
    if len == 0 {
        fail!(EINVAL, "zero length");
    }
    let end = match start.checked_add(len) {
        Some(end) if end <= MAX_FILE_END => end,
        _ => fail!(EINVAL, "offset + length past 2^63"),
    };
    let mask = sectorsize - 1;
    Ok(ByteRange {
        start: start & !mask,
        // `end <= 2^63` and `sectorsize <= 64 KiB`: no overflow.
        end: ((end + mask) & !mask) - 1,
    })
}

/// The data reservation API bound to one filesystem instance.
pub(crate) struct DataRsv<'a> {
    /// The qgroup hierarchy charged.
    pub(crate) qgroups: &'a QgroupTree,
    /// The legacy switches in force.
    pub(crate) legacy: Legacy,
}

impl DataRsv<'_> {
    /// Reserves the (rounded) `range` of `inode` (upstream
    /// `btrfs_qgroup_reserve_data`): sets `QGROUP_RESERVED`, records the
    /// bytes it set in `changeset` and charges just those to may_use.data,
    /// limit-checked. Returns the bytes newly charged.
    ///
    /// On failure (EDQUOT) the bits this call set are cleared again and
    /// `changeset` is as it was.
    pub(crate) fn reserve_data(
        &self,
        inode: &Inode,
        changeset: &mut ExtentChangeset,
        range: ByteRange,
    ) -> QResult<u64> {
        let mut mine = ExtentChangeset::new();
        let set = inode.io_tree.set_bits(
            range.start,
            range.end,
            ExtentBits::QGROUP_RESERVED,
            Some(&mut mine),
        );
        let charged = match set {
            Ok(n) => self
                .qgroups
                .reserve(QgroupId::level0(inode.subvol), RsvType::Data, n)
                .map(|()| n),
            Err(e) => Err(Failure::from(e)),
        };
        let result = charged.and_then(|n| match changeset.merge(mine.ranges(), n) {
            Ok(()) => Ok(n),
            Err(e) => {
                // Give back what was charged; the bits are undone below.
                let _ = self.uncharge(inode, n);
                Err(Failure::from(e))
            }
        });
        if result.is_err() {
            for r in mine.ranges() {
                if inode
                    .io_tree
                    .clear_bits(r.start, r.end, ExtentBits::QGROUP_RESERVED, None)
                    .is_err()
                {
                    pr_err!(
                        "ino {}: could not undo reservation of [{}, {}]\n",
                        inode.ino,
                        r.start,
                        r.end
                    );
                }
            }
        }
        result
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
            changeset.filter(|_| !self.legacy.is_on(LegacySwitch::FreeIgnoresChangeset));
        let mut freed = 0u64;
        let cleared = match changeset {
            Some(cs) => cs
                .ranges()
                .iter()
                .filter_map(|r| r.intersect(&range))
                .try_for_each(|r| self.clear(inode, r).map(|n| freed += n)),
            None => self.clear(inode, range).map(|n| freed = n),
        };
        // What was cleared is uncharged even if a later clear failed.
        self.uncharge(inode, freed)?;
        cleared.map(|()| freed)
    }

    /// Releases the data reservation of the (rounded) `range` once its
    /// extent is allocated (upstream `btrfs_qgroup_release_data`): the bits
    /// are cleared and may_use.data drops by the bytes cleared, or by the
    /// range's length under `release_by_length`. Returns the bytes cleared.
    pub(crate) fn release_data(&self, inode: &Inode, range: ByteRange) -> QResult<u64> {
        let cleared = self.clear(inode, range)?;
        let uncharge = if self.legacy.is_on(LegacySwitch::ReleaseByLength) {
            range.len()
        } else {
            cleared
        };
        self.uncharge(inode, uncharge)?;
        Ok(cleared)
    }

    /// Takes `n` bytes off may_use.data of the inode's qgroups.
    fn uncharge(&self, inode: &Inode, n: u64) -> QResult {
        Ok(self.qgroups.discharge(
            QgroupId::level0(inode.subvol),
            Counter::MayUse(RsvType::Data),
            n,
        )?)
    }

    fn clear(&self, inode: &Inode, range: ByteRange) -> QResult<u64> {
        Ok(inode
            .io_tree
            .clear_bits(range.start, range.end, ExtentBits::QGROUP_RESERVED, None)?)
    }
}
