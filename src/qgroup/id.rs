// SPDX-License-Identifier: GPL-2.0

//! Qgroup ids: `level/id`, packed as upstream packs them.

use kernel::fmt;

/// A qgroup id, `level << 48 | id` (upstream's `qgroupid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct QgroupId(u64);

impl QgroupId {
    /// Largest level.
    pub(crate) const MAX_LEVEL: u64 = (1 << 16) - 1;
    /// Largest id within a level.
    pub(crate) const MAX_ID: u64 = (1 << 48) - 1;
    /// The smallest id, `0/0`: where a search of a qgroup's relations
    /// starts.
    pub(crate) const FIRST: Self = Self(0);

    /// The qgroup `level/id`; both must be within range.
    pub(crate) fn new(level: u64, id: u64) -> Option<Self> {
        (level <= Self::MAX_LEVEL && id <= Self::MAX_ID).then_some(Self(level << 48 | id))
    }

    /// The level-0 qgroup of subvolume `subvol`.
    pub(crate) fn level0(subvol: u64) -> Self {
        Self(subvol & Self::MAX_ID)
    }

    /// The level.
    pub(crate) fn level(self) -> u64 {
        self.0 >> 48
    }

    /// The id within the level (the subvolume id at level 0).
    pub(crate) fn id(self) -> u64 {
        self.0 & Self::MAX_ID
    }

    /// The next id in order, if any.
    pub(super) fn next(self) -> Option<Self> {
        self.0.checked_add(1).map(Self)
    }
}

impl core::fmt::Display for QgroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.level(), self.id())
    }
}

kernel_display!(QgroupId);
