// SPDX-License-Identifier: GPL-2.0

//! Red-black tree nodes allocated ahead of a change, so that the change
//! itself cannot fail (the preallocate-then-apply protocol of the io trees,
//! for the extent tree and the file extent items).

use kernel::{prelude::*, rbtree::RBTreeNodeReservation};

/// Preallocated nodes of an `RBTree<K, V>`.
pub(crate) struct NodePool<K, V>(KVec<RBTreeNodeReservation<K, V>>);

impl<K, V> Default for NodePool<K, V> {
    fn default() -> Self {
        Self(KVec::new())
    }
}

impl<K, V> NodePool<K, V> {
    /// Allocates `n` more nodes.
    pub(crate) fn grow(&mut self, n: usize) -> Result {
        self.0.reserve(n, GFP_KERNEL)?;
        for _ in 0..n {
            let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
            // INVARIANT: room was made above.
            kernel::warn_on!(self.0.push_within_capacity(node).is_err());
        }
        Ok(())
    }

    /// Number of nodes held.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Takes one node.
    ///
    /// Callers size their pools for the worst case before changing
    /// anything. Should one be short (a bug), this warns and allocates the
    /// node now: the trees that use pools are changed under a mutex, so that
    /// may sleep, but the change may then fail half-done.
    pub(crate) fn take(&mut self) -> Option<RBTreeNodeReservation<K, V>> {
        self.0.pop().or_else(|| {
            kernel::warn_on!(true);
            RBTreeNodeReservation::new(GFP_KERNEL).ok()
        })
    }
}
