// SPDX-License-Identifier: GPL-2.0

//! Ids of the model's objects: subvolumes and inodes (`S` and `INO` in the
//! command grammar).
//!
//! Both are plain `u64`s in btrfs; here each has its own type so that a
//! subvolume id cannot be passed where an inode number is expected. The
//! extent tree and the qgroup accounting speak of roots by their raw id
//! (a backref's root objectid): [`SubvolId::root`] and
//! [`SubvolId::qgroup`] cross to them.

use kernel::fmt;

use crate::qgroup::QgroupId;

/// A subvolume id (upstream's root objectid of a subvolume tree).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SubvolId(pub(crate) u64);

impl SubvolId {
    /// The top-level subvolume, always present.
    pub(crate) const TOP: Self = Self(crate::limits::TOP_SUBVOL);

    /// The root objectid, as the extent tree's backrefs name it.
    pub(crate) const fn root(self) -> u64 {
        self.0
    }

    /// The subvolume's level-0 qgroup, `0/S`.
    pub(crate) fn qgroup(self) -> QgroupId {
        QgroupId::level0(self.0)
    }
}

/// An inode number within a subvolume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ino(pub(crate) u64);

impl core::fmt::Display for SubvolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}

impl core::fmt::Display for Ino {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}

kernel_display!(SubvolId, Ino);
