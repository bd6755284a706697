// SPDX-License-Identifier: GPL-2.0

//! An inode's file extent items (SPEC §8.1): which data extent, and where
//! in it, backs each byte range of the file (upstream's
//! `BTRFS_EXTENT_DATA_KEY` items of the subvolume tree).
//!
//! Items never overlap. Cutting a range (an overwrite at writeback,
//! `truncate`, `unlink`, the destination of `clone`) trims or splits the
//! items across it and drops the ones inside, as `btrfs_drop_extents()`
//! does; the extents stay whole, and the extent tree counts the items that
//! point into each.

use kernel::{prelude::*, rbtree::RBTree};

use crate::{
    changeset::ByteRange,
    extent_tree::{ExtentPrealloc, ExtentTree},
    node_pool::NodePool,
};

/// One file extent item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileItem {
    /// Bytes of the file it maps (non-zero).
    pub(crate) len: u64,
    /// The data extent.
    pub(crate) extent: u64,
    /// Where in the extent the mapped bytes start.
    pub(crate) offset: u64,
}

/// Preallocated item nodes.
pub(crate) type ItemPool = NodePool<u64, FileItem>;

/// What cutting a range does to an inode's items.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CutCensus {
    /// Items mapping a byte of the range.
    pub(crate) touched: usize,
    /// Those of them into extents allocated before the last commit (each
    /// may put its extent in the dirty set, which takes a node).
    pub(crate) marks: usize,
    /// Items inside the range, dropped whole (each frees its node).
    pub(crate) dropped: usize,
    /// Whether one item reaches past both ends of the range (it is split
    /// in two, which takes a node; it is then the only item touched).
    pub(crate) split: bool,
}

/// An inode's items, keyed by the first file byte each maps.
///
/// # Invariants
///
/// Items do not overlap and end at most at [`crate::extent_io_tree::MAX_END`].
#[derive(Default)]
pub(crate) struct ExtentMap {
    items: RBTree<u64, FileItem>,
}

/// The last byte an item starting at `start` maps.
fn last(start: u64, item: &FileItem) -> u64 {
    // PANIC: none; items end inside the file's byte space.
    start + item.len - 1
}

impl ExtentMap {
    /// Whether the inode maps nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every item, by start.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &FileItem)> {
        self.items.iter().map(|(&s, i)| (s, i))
    }

    /// The first item that maps a byte of `range`.
    fn first_in(&self, range: ByteRange) -> Option<(u64, FileItem)> {
        let before = |start: u64, item: &FileItem| {
            (last(start, item) >= range.start).then_some((start, *item))
        };
        match self.items.cursor_lower_bound(&range.start) {
            Some(cursor) => {
                if let Some((&s, item)) = cursor.peek_prev() {
                    if let Some(found) = before(s, item) {
                        return Some(found);
                    }
                }
                let (&s, item) = cursor.current();
                (s <= range.end).then_some((s, *item))
            }
            None => {
                let cursor = self.items.cursor_back()?;
                let (&s, item) = cursor.current();
                before(s, item)
            }
        }
    }

    /// Calls `f` with each item mapping a byte of `range`, whole: its
    /// first file byte and the item.
    fn for_each_touching(&self, range: ByteRange, mut f: impl FnMut(u64, FileItem)) {
        let mut from = range.start;
        while from <= range.end {
            let Some((start, item)) = self.first_in(ByteRange {
                start: from,
                end: range.end,
            }) else {
                break;
            };
            f(start, item);
            match last(start, &item).checked_add(1) {
                Some(next) => from = next,
                None => break,
            }
        }
    }

    /// Calls `f` with each item mapping a byte of `range`, clipped to it:
    /// the first file byte, and the item as seen from there.
    pub(crate) fn for_each_in(&self, range: ByteRange, mut f: impl FnMut(u64, FileItem)) {
        self.for_each_touching(range, |start, item| {
            let first = start.max(range.start);
            let end = last(start, &item).min(range.end);
            // PANIC: none; `start <= first <= end` inside the item.
            f(
                first,
                FileItem {
                    len: end - first + 1,
                    extent: item.extent,
                    offset: item.offset + (first - start),
                },
            );
        });
    }

    /// What cutting `range` does to the items (see [`Self::cut`]), when
    /// the extents from id `first_new` on were allocated since the last
    /// commit (see [`ExtentTree::first_new`]).
    pub(crate) fn census(&self, range: ByteRange, first_new: u64) -> CutCensus {
        let mut census = CutCensus::default();
        self.for_each_touching(range, |start, item| {
            let end = last(start, &item);
            census.touched += 1;
            census.marks += usize::from(item.extent < first_new);
            if start >= range.start && end <= range.end {
                census.dropped += 1;
            }
            census.split |= start < range.start && end > range.end;
        });
        census
    }

    /// Number of items mapping a byte of `range`.
    pub(crate) fn count_in(&self, range: ByteRange) -> usize {
        self.census(range, u64::MAX).touched
    }

    /// The parts of `range` that items map, ascending, into `out`.
    pub(crate) fn mapped(&self, range: ByteRange, out: &mut KVec<ByteRange>) -> Result {
        let mut result = Ok(());
        self.for_each_in(range, |first, item| {
            if result.is_ok() {
                // PANIC: none; a clipped item lies inside `range`.
                let r = ByteRange {
                    start: first,
                    end: first + item.len - 1,
                };
                result = out.push(r, GFP_KERNEL).map_err(Error::from);
            }
        });
        result
    }

    /// Cuts `range` out of the items of this inode of `subvol`: items across
    /// its ends are trimmed (one across both is split in two, each piece
    /// still pointing into the extent), items inside are dropped. Returns
    /// the bytes of extents whose last item anywhere went.
    ///
    /// Needs from the pools one item node when an item is split (then it
    /// is the only item of `range`), and one dirty node for each item of
    /// `range` into an extent older than the last commit; the node of each
    /// item dropped goes back to `items` (see [`Self::census`]).
    pub(crate) fn cut(
        &mut self,
        range: ByteRange,
        subvol: u64,
        tree: &mut ExtentTree,
        items: &mut ItemPool,
        pool: &mut ExtentPrealloc,
    ) -> u64 {
        let mut freed = 0u64;
        while let Some((start, item)) = self.first_in(range) {
            let end = last(start, &item);
            let Some(node) = self.items.remove_node(&start) else {
                break;
            };
            let mut node = Some(node.into_reservation());
            let mut pieces = 0;
            if start < range.start {
                let left = FileItem {
                    len: range.start - start,
                    ..item
                };
                if let Some(n) = node.take() {
                    self.items.insert(n.into_node(start, left));
                    pieces += 1;
                }
            }
            if end > range.end {
                // PANIC: none; `range.end < end <= MAX_END`.
                let from = range.end + 1;
                let right = FileItem {
                    len: end - range.end,
                    extent: item.extent,
                    offset: item.offset + (from - start),
                };
                if let Some(n) = node.take().or_else(|| items.take_sized()) {
                    self.items.insert(n.into_node(from, right));
                    pieces += 1;
                }
            }
            match pieces {
                0 => {
                    if let Some(n) = node {
                        items.put(n);
                    }
                    // PANIC: none; extent bytes are space in use (<= 2^63).
                    freed += tree.drop_ref(item.extent, subvol, pool);
                }
                2 => tree.add_ref(item.extent, subvol, pool),
                _ => {}
            }
        }
        freed
    }

    /// Maps the bytes from `start` with `item`, which must not overlap an
    /// item; the caller counts the new reference in the extent tree.
    pub(crate) fn insert(&mut self, start: u64, item: FileItem, items: &mut ItemPool) {
        if let Some(node) = items.take_sized() {
            self.items.insert(node.into_node(start, item));
        }
    }
}
