// SPDX-License-Identifier: GPL-2.0

//! Data extents with identity (SPEC §8.1): the instance's extent tree.
//!
//! The counterpart of btrfs's extent tree and of the qgroup extent records
//! the delayed refs queue (`btrfs_qgroup_extent_record`). An extent has an
//! id (allocation order, never reused), a size, an owner (the subvolume
//! that allocated it) and its roots: the subvolumes with a file extent
//! item pointing into it, each with the number of such items. It stays
//! whole while any item points into it (a bookend) and is freed at the
//! first commit after the last one is gone.
//!
//! An extent is dirty when it was allocated, or its roots changed, since
//! the last commit; [`ExtentTree::commit`] hands each dirty extent, in
//! ascending id order, with its old roots (those at the last commit) and
//! its new ones to the accounting (SPEC §8.2), then settles it. Ids are
//! never reused and only a commit frees an extent, so the extents
//! allocated since the last commit are exactly those with an id from
//! `first_new` on: they need no entry in the dirty set, which holds only
//! the older extents whose roots changed.
//!
//! The tree lives under a mutex taken after the inode lock(s) and before
//! the qgroup lock. Its changes are all or nothing like every other: the
//! nodes an operation may need are preallocated in an [`ExtentPrealloc`]
//! before anything changes, so the change itself never fails.

use kernel::{prelude::*, rbtree::RBTree};

use crate::node_pool::NodePool;

mod roots;

use roots::{RootPool, Roots};
pub(crate) use roots::{RootRef, ROOT_NODE_BYTES};

/// Largest extent writeback allocates (`BTRFS_MAX_EXTENT_SIZE`).
pub(crate) const MAX_WRITEBACK_EXTENT: u64 = 128 << 20;
/// Largest extent `fallocate` allocates (`__btrfs_prealloc_file_range`).
pub(crate) const MAX_PREALLOC_EXTENT: u64 = 256 << 20;
/// Most extents one range is cut into (SPEC §8.8).
pub(crate) const MAX_EXTENTS_PER_RANGE: u64 = 4096;

/// The lengths of the extents a range of `len` bytes is cut into: pieces
/// of `max` bytes and a remainder, or, past [`MAX_EXTENTS_PER_RANGE`]
/// pieces, that many pieces of equal whole-sector size with the remainder
/// in the last (SPEC §8.8).
pub(crate) fn extent_lengths(len: u64, max: u64, sectorsize: u64) -> impl Iterator<Item = u64> {
    // PANIC: none; `max` and `sectorsize` are non-zero constants or sizes.
    let pieces = len.div_ceil(max);
    let (piece, count) = if pieces <= MAX_EXTENTS_PER_RANGE {
        (max, pieces)
    } else {
        let sectors = len / sectorsize / MAX_EXTENTS_PER_RANGE;
        (sectors * sectorsize, MAX_EXTENTS_PER_RANGE)
    };
    (0..count).map(move |i| {
        if i + 1 == count {
            // PANIC: none; `(count - 1) * piece < len` by the choice above.
            len - (count - 1) * piece
        } else {
            piece
        }
    })
}

/// A data extent.
///
/// # Invariants
///
/// `refs` is the sum of the roots' `refs`.
pub(crate) struct DataExtent {
    /// Size in bytes (the whole extent).
    pub(crate) bytes: u64,
    /// The subvolume that allocated it.
    pub(crate) owner: u64,
    /// Roots, now and at the last commit.
    roots: Roots,
    /// Items pointing into the extent, over all roots.
    refs: u64,
    /// Whether its record holds a data reservation (see [`Self::rsv`]).
    has_rsv: bool,
    /// Whether [`Self::rsv`] really went into `reserved` (not with the
    /// legacy `no_reserved_stage`, whose missing bytes `check` reports).
    pub(crate) rsv_held: bool,
    /// Whether it is dirty: allocated since the last commit, or in the
    /// dirty set.
    dirty: bool,
}

/// Bytes an extent record occupies in its tree node: the `rb_node` links,
/// the key and the record (its first root included).
pub(crate) const EXTENT_NODE_BYTES: usize =
    core::mem::size_of::<(kernel::bindings::rb_node, u64, DataExtent)>();

impl DataExtent {
    /// The data reservation of its record (upstream `qrecord->data_rsv`):
    /// the bytes that belong in `reserved` until the next commit, which
    /// releases them whatever became of the extent. A record holds its
    /// whole extent's bytes, from its allocation (with quotas on) to the
    /// next commit, or none.
    pub(crate) fn rsv(&self) -> u64 {
        if self.has_rsv {
            self.bytes
        } else {
            0
        }
    }

    /// The roots now, ascending.
    pub(crate) fn roots(&self) -> impl Iterator<Item = u64> + '_ {
        self.roots
            .iter()
            .filter(|(_, r)| r.refs > 0)
            .map(|(s, _)| s)
    }

    /// The roots at the last commit, ascending.
    pub(crate) fn old_roots(&self) -> impl Iterator<Item = u64> + '_ {
        self.roots.iter().filter(|(_, r)| r.old).map(|(s, _)| s)
    }

    /// The file extent items of `subvol` pointing into the extent.
    pub(crate) fn refs_of(&self, subvol: u64) -> u64 {
        self.roots.get(subvol).map_or(0, |r| r.refs)
    }

    /// Items pointing into the extent, over all roots.
    pub(crate) fn refs(&self) -> u64 {
        self.refs
    }

    /// Whether the extent was allocated or its roots changed since the last
    /// commit.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Whether the extent is referenced now, or was at the last commit.
    fn is_live(&self) -> bool {
        self.refs > 0 || self.roots.iter().any(|(_, r)| r.old)
    }

    /// Settles the extent at a commit, once it is accounted: it is clean,
    /// its record's reservation is gone and its current roots become the
    /// old ones. Returns whether it is still live (else the commit frees
    /// it).
    fn settle(&mut self) -> bool {
        self.dirty = false;
        self.has_rsv = false;
        self.rsv_held = false;
        self.roots.settle();
        self.is_live()
    }
}

/// Tree nodes preallocated for the extent tree changes of one operation.
#[derive(Default)]
pub(crate) struct ExtentPrealloc {
    extents: NodePool<u64, DataExtent>,
    roots: RootPool,
    dirty: NodePool<u64, ()>,
}

impl ExtentPrealloc {
    /// Nodes for `extents` more new extents, `roots` more roots of
    /// existing extents and `dirty` more extents becoming dirty (a new
    /// extent's root lives in its record).
    pub(crate) fn grow(&mut self, extents: usize, roots: usize, dirty: usize) -> Result {
        self.extents.grow(extents)?;
        self.roots.grow(roots)?;
        self.dirty.grow(dirty)
    }
}

/// What one dirty extent brings to a commit.
pub(crate) struct DirtyExtent<'a> {
    /// Its id.
    pub(crate) id: u64,
    /// The extent.
    pub(crate) extent: &'a DataExtent,
}

/// The data extents of one instance.
pub(crate) struct ExtentTree {
    extents: RBTree<u64, DataExtent>,
    /// Ids of the dirty extents allocated before the last commit (all
    /// below `first_new`).
    dirty: RBTree<u64, ()>,
    /// The id the next extent gets.
    next_id: u64,
    /// The first id allocated since the last commit.
    first_new: u64,
}

impl ExtentTree {
    /// No extent; the first gets id 1.
    pub(crate) fn new() -> Self {
        Self {
            extents: RBTree::new(),
            dirty: RBTree::new(),
            next_id: 1,
            first_new: 1,
        }
    }

    /// Whether any extent was allocated or changed roots since the last
    /// commit.
    pub(crate) fn any_dirty(&self) -> bool {
        !self.dirty.is_empty() || self.next_id > self.first_new
    }

    /// The id the next extent allocated gets.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id
    }

    /// The first id allocated since the last commit: extents from it on
    /// are dirty already, and a change of their roots takes no dirty node.
    /// Only a commit changes it (or a reset, which replaces the tree).
    pub(crate) fn first_new(&self) -> u64 {
        self.first_new
    }

    /// The extent `id`.
    pub(crate) fn get(&self, id: u64) -> Option<&DataExtent> {
        self.extents.get(&id)
    }

    /// Every extent, by id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &DataExtent)> {
        self.extents.iter().map(|(&id, e)| (id, e))
    }

    /// Marks extent `id`, whose dirty flag is `flag`, dirty: an extent
    /// allocated since the last commit already is; an older one takes a
    /// node of `pool` into the dirty set.
    fn mark_dirty(
        dirty: &mut RBTree<u64, ()>,
        id: u64,
        flag: &mut bool,
        pool: &mut ExtentPrealloc,
    ) {
        if *flag {
            return;
        }
        if let Some(node) = pool.dirty.take_sized() {
            *flag = true;
            dirty.insert(node.into_node(id, ()));
        }
    }

    /// Allocates an extent of `bytes` owned by `owner`, with one item of
    /// `owner` pointing into it and, when `has_rsv`, its bytes of data
    /// reservation in its record (moved into `reserved` when `rsv_held`).
    /// Returns its id. Takes one extent node of `pool`; its root lives in
    /// the record, and it is dirty without a dirty node (its id is new).
    pub(crate) fn allocate(
        &mut self,
        bytes: u64,
        owner: u64,
        (has_rsv, rsv_held): (bool, bool),
        pool: &mut ExtentPrealloc,
    ) -> u64 {
        let id = self.next_id;
        // PANIC: none; 2^64 allocations take centuries.
        self.next_id += 1;
        let root = RootRef {
            refs: 1,
            old: false,
        };
        let extent = DataExtent {
            bytes,
            owner,
            roots: Roots::one(owner, root),
            refs: 1,
            has_rsv,
            rsv_held,
            dirty: true,
        };
        if let Some(node) = pool.extents.take_sized() {
            self.extents.insert(node.into_node(id, extent));
        }
        id
    }

    /// One more item of `subvol` points into extent `id` (a split item, a
    /// clone). Takes at most one root node and one dirty node of `pool`.
    pub(crate) fn add_ref(&mut self, id: u64, subvol: u64, pool: &mut ExtentPrealloc) {
        let Some(extent) = self.extents.get_mut(&id) else {
            kernel::warn_on!(true);
            return;
        };
        // PANIC: none; items are bounded by the extents' sectors.
        extent.refs += 1;
        let gained = match extent.roots.get_mut(subvol) {
            Some(root) => {
                root.refs += 1;
                root.refs == 1
            }
            None => {
                let root = RootRef {
                    refs: 1,
                    old: false,
                };
                extent.roots.insert(subvol, root, &mut pool.roots);
                true
            }
        };
        if gained {
            Self::mark_dirty(&mut self.dirty, id, &mut extent.dirty, pool);
        }
    }

    /// One item of the snapshot `subvol` points into extent `id`: the
    /// snapshot's commit accounted it (SPEC §8.3), so the new root counts
    /// as one of the last commit's and the extent does not become dirty.
    /// Takes at most one root node of `pool`.
    pub(crate) fn add_snapshot_ref(&mut self, id: u64, subvol: u64, pool: &mut ExtentPrealloc) {
        let Some(extent) = self.extents.get_mut(&id) else {
            kernel::warn_on!(true);
            return;
        };
        // PANIC: none; items are bounded by the extents' sectors.
        extent.refs += 1;
        match extent.roots.get_mut(subvol) {
            Some(root) => root.refs += 1,
            None => {
                let root = RootRef { refs: 1, old: true };
                extent.roots.insert(subvol, root, &mut pool.roots);
            }
        }
    }

    /// One item of `subvol` pointing into extent `id` is gone. Returns the
    /// extent's size when that was its last item anywhere (its space is
    /// freed at the next commit). Takes at most one dirty node of `pool`.
    pub(crate) fn drop_ref(&mut self, id: u64, subvol: u64, pool: &mut ExtentPrealloc) -> u64 {
        let Some(extent) = self.extents.get_mut(&id) else {
            kernel::warn_on!(true);
            return 0;
        };
        let Some(root) = extent.roots.get_mut(subvol) else {
            kernel::warn_on!(true);
            return 0;
        };
        let Some(refs) = root.refs.checked_sub(1) else {
            kernel::warn_on!(true);
            return 0;
        };
        root.refs = refs;
        let lost = refs == 0;
        if lost && !root.old {
            extent.roots.remove(subvol);
        }
        extent.refs = extent.refs.saturating_sub(1);
        let freed = if extent.refs == 0 { extent.bytes } else { 0 };
        if lost {
            Self::mark_dirty(&mut self.dirty, id, &mut extent.dirty, pool);
        }
        freed
    }

    /// The commit (SPEC §8.2): calls `account` with each dirty extent in
    /// ascending id order (first the older ones of the dirty set, then
    /// those allocated since the last commit), then makes its roots the
    /// old ones, clears its record's reservation and frees it if nothing
    /// references it. Needs no node: it only removes.
    pub(crate) fn commit(&mut self, mut account: impl FnMut(DirtyExtent<'_>)) {
        while let Some(cursor) = self.dirty.cursor_front_mut() {
            let (_, node) = cursor.remove_current();
            let (id, ()) = node.to_key_value();
            let Some(extent) = self.extents.get_mut(&id) else {
                continue;
            };
            account(DirtyExtent { id, extent });
            if !extent.settle() {
                drop(self.extents.remove(&id));
            }
        }
        let mut cursor = self.extents.cursor_lower_bound_mut(&self.first_new);
        while let Some(mut c) = cursor {
            let (&id, extent) = c.current_mut();
            account(DirtyExtent { id, extent });
            cursor = if extent.settle() {
                c.move_next()
            } else {
                // The next extent, or the previous one (already settled)
                // when this was the last.
                let (next, node) = c.remove_current();
                drop(node);
                next.filter(|n| *n.current().0 > id)
            };
        }
        self.first_new = self.next_id;
    }
}
