// SPDX-License-Identifier: GPL-2.0

//! Inodes of the model: an io tree and a map of allocated extents each.

use kernel::prelude::*;

use crate::extent_io_tree::{ExtentBits, ExtentIoTree, MAX_END};

/// One inode `(subvol, ino)`.
///
/// - `io_tree` holds `DELALLOC` and `QGROUP_RESERVED` (upstream's
///   `inode->io_tree`);
/// - `extents` says which bytes are backed by an extent: `EXTENT_NEW` since
///   the last commit, `EXTENT_COMMITTED` before it. Extents are byte-granular
///   and never shared, so the map needs no extent identities.
#[pin_data]
pub(crate) struct Inode {
    /// The subvolume holding the inode.
    pub(crate) subvol: u64,
    /// The inode number (>= 256).
    pub(crate) ino: u64,
    /// Dirty and reserved bytes.
    #[pin]
    pub(crate) io_tree: ExtentIoTree,
    /// Allocated bytes, new or committed.
    #[pin]
    pub(crate) extents: ExtentIoTree,
    /// meta_prealloc bytes the inode's buffered writes hold.
    pub(crate) meta_prealloc: u64,
}

impl Inode {
    /// A new, empty inode.
    pub(crate) fn new(subvol: u64, ino: u64) -> impl PinInit<Self> {
        pin_init!(Self {
            subvol,
            ino,
            io_tree <- ExtentIoTree::new(),
            extents <- ExtentIoTree::new(),
            meta_prealloc: 0,
        })
    }

    /// Whether the inode holds anything a commit has not settled: dirty
    /// bytes or extents allocated since the last commit.
    pub(crate) fn has_uncommitted(&self) -> Result<bool> {
        Ok(
            self.io_tree.count_bits(0, MAX_END, ExtentBits::DELALLOC)? != 0
                || self
                    .extents
                    .count_bits(0, MAX_END, ExtentBits::EXTENT_NEW)?
                    != 0,
        )
    }
}
