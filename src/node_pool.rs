// SPDX-License-Identifier: GPL-2.0

//! Red-black tree nodes allocated ahead of a change, so that the change
//! itself cannot fail (the preallocate-then-apply protocol of the io trees,
//! the extent tree and the file extent items).
//!
//! A pool keeps its first nodes inline and the rest in a vector allocated
//! only when a change needs more: most changes take one or two nodes, so
//! most pools cost no allocation besides their nodes.

use kernel::{alloc::kvec::PushError, prelude::*, rbtree::RBTreeNodeReservation};

/// Nodes a pool holds without a vector: an io tree's single-range fast
/// path, when it starts with the one node preallocated for a hole, holds at
/// most three (that node, and the two neighbours a change on one state may
/// merge away), so it frees no node under the tree's lock.
const INLINE: usize = 3;

/// Preallocated nodes of an `RBTree<K, V>`.
pub(crate) struct NodePool<K, V> {
    inline: [Option<RBTreeNodeReservation<K, V>>; INLINE],
    more: KVec<RBTreeNodeReservation<K, V>>,
}

impl<K, V> Default for NodePool<K, V> {
    fn default() -> Self {
        Self {
            inline: [const { None }; INLINE],
            more: KVec::new(),
        }
    }
}

impl<K, V> NodePool<K, V> {
    /// Makes sure at least `n` nodes are held. Allocates with
    /// `GFP_KERNEL`: call it with no spinlock held.
    pub(crate) fn fill(&mut self, n: usize) -> Result {
        let mut len = self.len();
        for slot in self.inline.iter_mut() {
            if len >= n {
                return Ok(());
            }
            if slot.is_none() {
                *slot = Some(RBTreeNodeReservation::new(GFP_KERNEL)?);
                len += 1;
            }
        }
        if len < n {
            self.more.reserve(n - len, GFP_KERNEL)?;
        }
        while self.len() < n {
            let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
            // INVARIANT: room for `n` nodes was made above.
            if kernel::warn_on!(self.more.push_within_capacity(node).is_err()) {
                return Err(ENOMEM);
            }
        }
        Ok(())
    }

    /// Allocates `n` more nodes (see [`Self::fill`]).
    pub(crate) fn grow(&mut self, n: usize) -> Result {
        self.fill(self.len().saturating_add(n))
    }

    /// Makes sure the pool can hold `n` nodes, so that [`Self::put`] frees
    /// none until it holds that many. Allocates with `GFP_KERNEL`.
    pub(crate) fn make_room(&mut self, n: usize) -> Result {
        let wanted = n.saturating_sub(INLINE);
        if wanted > self.more.capacity() {
            self.more
                .reserve(wanted.saturating_sub(self.more.len()), GFP_KERNEL)?;
        }
        Ok(())
    }

    /// Number of nodes held.
    pub(crate) fn len(&self) -> usize {
        self.more.len() + self.inline.iter().filter(|slot| slot.is_some()).count()
    }

    /// Whether no node is left.
    pub(crate) fn is_empty(&self) -> bool {
        self.more.is_empty() && self.inline.iter().all(Option::is_none)
    }

    /// One node, if any is left. Never allocates.
    pub(crate) fn take(&mut self) -> Option<RBTreeNodeReservation<K, V>> {
        self.more
            .pop()
            .or_else(|| self.inline.iter_mut().find_map(Option::take))
    }

    /// One node for a change the caller sized the pool for.
    ///
    /// Should the pool be short (a bug), this warns and allocates the node
    /// now: the trees that use it this way are changed under a mutex, so
    /// that may sleep, but the change may then fail half-done.
    pub(crate) fn take_sized(&mut self) -> Option<RBTreeNodeReservation<K, V>> {
        self.take().or_else(|| {
            kernel::warn_on!(true);
            RBTreeNodeReservation::new(GFP_KERNEL).ok()
        })
    }

    /// Keeps a node a change freed, for a later insert of the same change;
    /// it is freed with the pool. Only when the pool has no room left is it
    /// freed here (`kfree`, which never sleeps).
    pub(crate) fn put(&mut self, node: RBTreeNodeReservation<K, V>) {
        let node = match self.inline.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => {
                *slot = Some(node);
                return;
            }
            None => node,
        };
        if let Err(PushError(node)) = self.more.push_within_capacity(node) {
            drop(node);
        }
    }
}
