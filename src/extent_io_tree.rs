// SPDX-License-Identifier: GPL-2.0

//! The extent io tree: an inode's byte ranges mapped to state bits.
//!
//! The Rust counterpart of upstream's `struct extent_io_tree`
//! (`fs/btrfs/extent-io-tree.c`), reduced to what qgroup accounting needs.
//! States are inclusive ranges `[start, end]` keyed by `start` in a
//! [`RBTree`] under one [`SpinLock`] per tree.
//!
//! INVARIANT (checked by [`ExtentIoTree::check_and_visit`]): between
//! operations the states are sorted, do not overlap, carry at least one
//! bit, and no two touching states (`prev.end + 1 == next.start`) carry
//! the same bits, so the tree is always the unique maximal representation
//! of its byte map.
//!
//! Allocation discipline (Binder's `range_alloc` protocol, [`prealloc`]):
//! keys are never changed in place. A split shrinks a state and inserts
//! the remainder as a new node; a merge grows the left state and removes
//! the right one. An operation first measures, under the lock, how many
//! nodes and how much changeset room it needs; if what the caller
//! preallocated falls short it changes nothing, drops the lock, allocates
//! what was missing with `GFP_KERNEL` and tries again. Once it has enough
//! it runs to the end, so every operation is all-or-nothing, ENOMEM
//! included. Nothing allocates or sleeps under the lock; nodes that merges
//! or clears free, and preallocated nodes left over, are dropped after it
//! is released. A tree keeps no spare nodes.
//!
//! Cost: finding the first state is `O(log n)`, measuring and walking `k`
//! states is `O(k)`, and each node the operation inserts (at most two
//! splits per range plus one per hole filled) costs another `O(log n)`,
//! because the kernel's `RBTree` offers no insertion at a cursor. The
//! merge pass runs once over the changed span.
//!
//! The common case is cheaper: a single range that lies inside one hole
//! or covers exactly one state is measured, admitted and applied from one
//! descent, merging with its neighbours in place ([`single`]).
//!
//! The parts: [`bits`] (the state bits), [`op`] (one operation),
//! [`prealloc`] (the all-or-nothing protocol: [`ExtentIoTree::prepare`],
//! [`ExtentIoTree::apply`] and [`ExtentIoTree::run_admitted`]), [`single`]
//! (the single-range fast path), [`walk`] (measuring, changing and merging
//! states under the lock), [`query`] (the reads) and [`check`] (the
//! invariant).

use kernel::{
    new_spinlock,
    prelude::*,
    rbtree::{CursorMut, RBTree},
    sync::SpinLock, //
};

use crate::changeset::{ByteRange, ExtentChangeset};

mod bits;
mod check;
mod op;
mod prealloc;
mod query;
mod single;
mod walk;

pub(crate) use bits::ExtentBits;
pub(crate) use op::TreeOp;
pub(crate) use prealloc::Prealloc;
use prealloc::Then;

/// The last byte offset a range may cover.
///
/// Keeping `u64::MAX` out of every range means that `end + 1` and the length
/// `end - start + 1` of any range always fit in a `u64`.
pub(crate) const MAX_END: u64 = u64::MAX - 1;

/// One state: the bits of the bytes from its key to `end` (inclusive).
///
/// # Invariants
///
/// `key <= end <= MAX_END` and `bits` is not empty, for every state in a
/// tree between operations (see the module invariant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ExtentState {
    end: u64,
    bits: ExtentBits,
}

/// The states of one tree, keyed by their first byte.
type StateTree = RBTree<u64, ExtentState>;

/// Bytes one state occupies in its tree node: the `rb_node` links, the key
/// and the state. The node is a `kmalloc` object of the next slab size.
pub(crate) const STATE_NODE_BYTES: usize =
    core::mem::size_of::<(kernel::bindings::rb_node, u64, ExtentState)>();

/// What a tree's spinlock protects.
struct Inner {
    tree: StateTree,
}

/// An extent io tree (upstream `struct extent_io_tree`).
///
/// # Invariants
///
/// Between operations its states satisfy the module invariant: sorted,
/// disjoint, none empty, none mergeable with its neighbour.
#[pin_data]
pub(crate) struct ExtentIoTree {
    #[pin]
    states: SpinLock<Inner>,
}

/// Checks an inclusive range given by a caller: EINVAL unless
/// `start <= end <= MAX_END`.
fn check_range(start: u64, end: u64) -> Result {
    if start > end || end > MAX_END {
        return Err(EINVAL);
    }
    Ok(())
}

/// A cursor on a tree's states.
type StateCursor<'a> = CursorMut<'a, u64, ExtentState>;

/// Calls `f` with a cursor on the state containing `pos`, or else on the
/// first state after it, or with `None` when every state ends before `pos`.
///
/// One descent finds it (the lower bound of `pos`, then a step back when
/// the state before it covers `pos`); only a `pos` past the last state's
/// key costs a second walk, down the tree's right edge.
fn with_cursor_at<R>(
    tree: &mut StateTree,
    pos: u64,
    f: impl FnOnce(Option<StateCursor<'_>>) -> R,
) -> R {
    if let Some(cursor) = tree.cursor_lower_bound_mut(&pos) {
        let (&key, _) = cursor.current();
        let in_prev = key != pos && cursor.peek_prev().is_some_and(|(_, prev)| prev.end >= pos);
        return f(if in_prev {
            cursor.move_prev()
        } else {
            Some(cursor)
        });
    }
    f(tree
        .cursor_back_mut()
        .filter(|last| last.current().1.end >= pos))
}

impl ExtentIoTree {
    /// An empty tree.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            states <- new_spinlock!(Inner {
                tree: RBTree::new(),
            }, "ExtentIoTree::states"),
        })
    }

    /// Sets `bits` on `[start, end]` (upstream `set_extent_bit`).
    ///
    /// Records in `newly_set` every sub-range where some of `bits` was
    /// missing. Returns the number of such bytes.
    pub(crate) fn set_bits(
        &self,
        start: u64,
        end: u64,
        bits: ExtentBits,
        newly_set: Option<&mut ExtentChangeset>,
    ) -> Result<u64> {
        self.once(ByteRange { start, end }, TreeOp::set(bits), newly_set)
    }

    /// Clears `bits` on `[start, end]` (upstream `clear_extent_bit`).
    ///
    /// Records in `cleared` every sub-range where some of `bits` was set.
    /// Returns the number of such bytes.
    pub(crate) fn clear_bits(
        &self,
        start: u64,
        end: u64,
        bits: ExtentBits,
        cleared: Option<&mut ExtentChangeset>,
    ) -> Result<u64> {
        self.once(ByteRange { start, end }, TreeOp::clear(bits), cleared)
    }

    /// Runs `op` on one range, preallocating for it alone; what is left
    /// over is freed on return, unlocked.
    fn once(
        &self,
        range: ByteRange,
        op: TreeOp,
        changeset: Option<&mut ExtentChangeset>,
    ) -> Result<u64> {
        let mut prealloc = Prealloc::new();
        self.run(&[range], op, changeset, Then::<Error>::Apply, &mut prealloc)
    }

    /// Clears `bits` on each of `ranges` (ascending, disjoint), all in one
    /// operation: either every range is cleared or, on error, none is.
    /// Returns the number of bytes where some of `bits` was set.
    pub(crate) fn clear_bits_ranges(&self, ranges: &[ByteRange], bits: ExtentBits) -> Result<u64> {
        let op = TreeOp::clear(bits);
        let mut prealloc = Prealloc::new();
        self.run(ranges, op, None, Then::<Error>::Apply, &mut prealloc)
    }
}
