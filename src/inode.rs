// SPDX-License-Identifier: GPL-2.0

//! Inodes of the model: an io tree and the file extent items each, and the
//! inode lock.

use kernel::{new_mutex, prelude::*, rbtree::RBTree, sync::Mutex};

use crate::{
    changeset::{ChangesetName, ExtentChangeset},
    extent_io_tree::{ExtentBits, ExtentIoTree, MAX_END},
    ids::{Ino, SubvolId},
};

pub(crate) mod extent_map;

use extent_map::ExtentMap;

/// What the inode lock protects.
pub(crate) struct InodeData {
    /// meta_prealloc bytes the inode's buffered writes hold.
    pub(crate) meta_prealloc: u64,
    /// The file extent items: which extent backs each written byte.
    pub(crate) items: ExtentMap,
    /// The named changesets bound to this inode (`reserve ... CS`).
    pub(crate) changesets: RBTree<ChangesetName, ExtentChangeset>,
    /// The inode was unlinked (or its instance reset): a command that found
    /// it before must look it up again.
    pub(crate) gone: bool,
}

/// One inode `(subvol, ino)`, shared by reference count between the
/// instance's lookup tree and the commands working on it.
///
/// - `lock` is upstream's inode lock: a data command holds it throughout,
///   so commands on one inode run one at a time;
/// - `io_tree` holds `DELALLOC` and `QGROUP_RESERVED` (upstream's
///   `inode->io_tree`);
/// - the file extent items ([`ExtentMap`], in [`InodeData`]) say which data
///   extent backs each written byte.
///
/// The io tree is changed only under `lock`, or by an instance-wide
/// command (which runs while no data command does); its spinlock makes each
/// tree operation atomic for the readers.
#[pin_data]
pub(crate) struct Inode {
    /// The subvolume holding the inode.
    pub(crate) subvol: SubvolId,
    /// The inode number (>= 256).
    pub(crate) ino: Ino,
    /// The inode lock.
    #[pin]
    pub(crate) lock: Mutex<InodeData>,
    /// Dirty and reserved bytes.
    #[pin]
    pub(crate) io_tree: ExtentIoTree,
}

impl Inode {
    /// A new, empty inode.
    pub(crate) fn new(subvol: SubvolId, ino: Ino) -> impl PinInit<Self> {
        pin_init!(Self {
            subvol,
            ino,
            lock <- new_mutex!(InodeData {
                meta_prealloc: 0,
                items: ExtentMap::default(),
                changesets: RBTree::new(),
                gone: false,
            }, "Inode::lock"),
            io_tree <- ExtentIoTree::new(),
        })
    }

    /// Whether the inode holds dirty bytes.
    pub(crate) fn has_delalloc(&self) -> bool {
        self.io_tree.any_bits(0, MAX_END, ExtentBits::DELALLOC)
    }

    /// Whether the inode holds nothing at all (no io tree state, no item,
    /// no changeset, no meta reservation); `data` is its locked data.
    pub(crate) fn is_empty(&self, data: &InodeData) -> bool {
        self.io_tree.is_empty()
            && data.items.is_empty()
            && data.changesets.is_empty()
            && data.meta_prealloc == 0
    }
}
