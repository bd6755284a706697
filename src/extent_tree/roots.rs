// SPDX-License-Identifier: GPL-2.0

//! An extent's roots (SPEC §8.1): the subvolumes with a file extent item
//! pointing into it now, each with the number of such items, and those
//! that had one at the last commit.
//!
//! The first root lives in the extent record itself, so an extent of one
//! subvolume (most of them) takes no node besides its record; further
//! roots live in a tree.

use kernel::rbtree::RBTree;

use crate::node_pool::NodePool;

/// One root of an extent.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RootRef {
    /// File extent items of this subvolume pointing into the extent now.
    pub(crate) refs: u64,
    /// Whether the subvolume was a root at the last commit.
    pub(crate) old: bool,
}

/// Bytes a root beyond the inline one occupies in its tree node: the
/// `rb_node` links, the key and the root.
pub(crate) const ROOT_NODE_BYTES: usize =
    core::mem::size_of::<(kernel::bindings::rb_node, u64, RootRef)>();

/// Preallocated nodes for roots beyond the inline one.
pub(crate) type RootPool = NodePool<u64, RootRef>;

/// The roots of one extent, by subvolume.
///
/// # Invariants
///
/// A subvolume is in `inline` or in `more`, not both. Every root has
/// `refs > 0` or `old` (a root with neither is removed).
#[derive(Default)]
pub(crate) struct Roots {
    inline: Option<(u64, RootRef)>,
    more: RBTree<u64, RootRef>,
}

impl Roots {
    /// Only `subvol`, with `root`; takes no node.
    pub(crate) fn one(subvol: u64, root: RootRef) -> Self {
        Self {
            inline: Some((subvol, root)),
            more: RBTree::new(),
        }
    }

    /// The root `subvol`, if it is one.
    pub(crate) fn get(&self, subvol: u64) -> Option<&RootRef> {
        match &self.inline {
            Some((s, root)) if *s == subvol => Some(root),
            _ => self.more.get(&subvol),
        }
    }

    /// The root `subvol`, to change, if it is one.
    pub(crate) fn get_mut(&mut self, subvol: u64) -> Option<&mut RootRef> {
        match &mut self.inline {
            Some((s, root)) if *s == subvol => Some(root),
            _ => self.more.get_mut(&subvol),
        }
    }

    /// Adds `subvol`, which is not a root, with `root`: inline when that
    /// slot is free, else in a node of `pool`.
    pub(crate) fn insert(&mut self, subvol: u64, root: RootRef, pool: &mut RootPool) {
        if self.inline.is_none() {
            self.inline = Some((subvol, root));
        } else if let Some(node) = pool.take_sized() {
            self.more.insert(node.into_node(subvol, root));
        }
    }

    /// Removes the root `subvol`, if it is one.
    pub(crate) fn remove(&mut self, subvol: u64) {
        match &self.inline {
            Some((s, _)) if *s == subvol => self.inline = None,
            _ => drop(self.more.remove(&subvol)),
        }
    }

    /// Every root, by ascending subvolume.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &RootRef)> + '_ {
        let mut inline = self.inline.as_ref().map(|(s, root)| (*s, root));
        let mut more = self.more.iter().map(|(&s, root)| (s, root)).peekable();
        core::iter::from_fn(move || match (inline, more.peek()) {
            (Some((s, _)), Some(&(m, _))) if m < s => more.next(),
            (Some(first), _) => {
                inline = None;
                Some(first)
            }
            (None, _) => more.next(),
        })
    }

    /// At a commit: the roots now become the old ones (a root without
    /// items goes).
    pub(crate) fn settle(&mut self) {
        if let Some((_, root)) = &mut self.inline {
            if root.refs == 0 {
                self.inline = None;
            } else {
                root.old = true;
            }
        }
        let mut cursor = self.more.cursor_front_mut();
        while let Some(mut c) = cursor {
            if c.current().1.refs == 0 {
                // The next root, or the previous one when this was the
                // last (already settled: visiting it again is harmless).
                cursor = c.remove_current().0;
            } else {
                c.current_mut().1.old = true;
                cursor = c.move_next();
            }
        }
    }
}
