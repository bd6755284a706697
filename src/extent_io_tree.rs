// SPDX-License-Identifier: GPL-2.0

//! The extent io tree: an inode's byte ranges mapped to state bits.
//!
//! The Rust counterpart of upstream's `struct extent_io_tree`
//! (`fs/btrfs/extent-io-tree.c`), reduced to what qgroup accounting needs.
//! States are inclusive ranges `[start, end]` keyed by `start` in a
//! [`RBTree`] under one [`SpinLock`] per tree.
//!
//! INVARIANT (checked by [`ExtentIoTree::check`]): between operations the
//! states are sorted, do not overlap, carry at least one bit, and no two
//! touching states (`prev.end + 1 == next.start`) carry the same bits, so the
//! tree is always the unique maximal representation of its byte map.
//!
//! Allocation discipline: keys are never changed in place. A split shrinks a
//! state and inserts the remainder as a new node; a merge grows the left state
//! and removes the right one. New nodes come only from a small inline pool of
//! [`RBTreeNodeReservation`]s: spare nodes the tree kept from earlier merges
//! and unused reservations, topped up with `GFP_KERNEL` allocations made
//! before the lock is taken (two, then up to [`POOL_NODES`]). The changed
//! ranges are recorded into an inline buffer. When an operation runs out of
//! either, it stops at a state boundary with the tree well formed, drops the
//! lock, moves the recorded ranges into the caller's changeset, refills the
//! pool and resumes where it stopped. Every round makes progress
//! (it consumes a node or records a range), so the number of rounds is bounded
//! by the nodes and ranges the operation produces. Nothing allocates or sleeps
//! under the lock; nodes freed by merges are `kfree`d under it, which never
//! sleeps (upstream does the same).
//!
//! Cost: finding the first state is `O(log n)` and walking `k` states is
//! `O(k)`; each node the operation inserts (at most two splits plus one per
//! hole filled) costs another `O(log n)`, because the kernel's `RBTree` offers
//! no insertion at a cursor.

use kernel::fmt;

use kernel::{
    new_spinlock,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::SpinLock,
};

use crate::changeset::{push_coalesced, ByteRange, ExtentChangeset};

/// A set of extent state bits (upstream's `EXTENT_*` flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ExtentBits(u32);

impl ExtentBits {
    /// No bit.
    pub(crate) const NONE: Self = Self(0);
    /// Dirty data not written back yet (upstream `EXTENT_DELALLOC`).
    pub(crate) const DELALLOC: Self = Self(1 << 0);
    /// A qgroup data reservation is held (upstream `EXTENT_QGROUP_RESERVED`).
    pub(crate) const QGROUP_RESERVED: Self = Self(1 << 1);
    /// In an inode's extent map: bytes backed by an extent allocated since
    /// the last commit.
    pub(crate) const EXTENT_NEW: Self = Self(1 << 2);
    /// In an inode's extent map: bytes backed by a committed extent.
    pub(crate) const EXTENT_COMMITTED: Self = Self(1 << 3);
    /// Every named bit with its name, in display order.
    pub(crate) const NAMED: [(Self, &'static str); 4] = [
        (Self::DELALLOC, "DELALLOC"),
        (Self::QGROUP_RESERVED, "QGROUP_RESERVED"),
        (Self::EXTENT_NEW, "NEW"),
        (Self::EXTENT_COMMITTED, "COMMITTED"),
    ];

    /// The bits of `self` and of `other`.
    pub(crate) const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The bits of `self` that are not in `other`.
    pub(crate) const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Whether every bit of `other` is in `self`.
    pub(crate) const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `self` and `other` share a bit.
    pub(crate) const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no bit is set.
    pub(crate) const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl core::fmt::Display for ExtentBits {
    /// Bit names joined by `|` in the order of [`ExtentBits::NAMED`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for (bit, name) in Self::NAMED {
            if self.contains(bit) {
                write!(f, "{sep}{name}")?;
                sep = "|";
            }
        }
        if self.is_empty() {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// The last byte offset a range may cover.
///
/// Keeping `u64::MAX` out of every range means that `end + 1` and the length
/// `end - start + 1` of any range always fit in a `u64`.
pub(crate) const MAX_END: u64 = u64::MAX - 1;

/// One state: the bits of the bytes from its key to `end` (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ExtentState {
    end: u64,
    bits: ExtentBits,
}

type StateTree = RBTree<u64, ExtentState>;
type StateReservation = RBTreeNodeReservation<u64, ExtentState>;

/// Most nodes one round of an operation holds.
pub(crate) const POOL_NODES: usize = 4;
/// Most changed ranges one round of an operation records.
const RECORD_SLOTS: usize = 8;

/// Node reservations for one round, held inline.
struct NodePool {
    slots: [Option<StateReservation>; POOL_NODES],
}

impl NodePool {
    fn new() -> Self {
        Self {
            slots: [const { None }; POOL_NODES],
        }
    }

    /// Makes sure at least `n` (at most [`POOL_NODES`]) nodes are held;
    /// allocates, so call it with no lock held.
    fn fill(&mut self, n: usize) -> Result {
        for slot in self.slots.iter_mut().take(n) {
            if slot.is_none() {
                *slot = Some(StateReservation::new(GFP_KERNEL)?);
            }
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    fn take(&mut self) -> Option<StateReservation> {
        self.slots.iter_mut().find_map(Option::take)
    }

    fn len(&self) -> usize {
        self.slots.iter().filter(|slot| slot.is_some()).count()
    }

    /// Keeps `node` if there is room; a node that does not fit is dropped
    /// (`kfree`, which never sleeps).
    fn put(&mut self, node: StateReservation) {
        if let Some(slot) = self.slots.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some(node);
        }
    }

    /// Moves as many nodes as fit from `self` into `other`.
    fn move_into(&mut self, other: &mut NodePool) {
        while other.len() < POOL_NODES {
            match self.take() {
                Some(node) => other.put(node),
                None => break,
            }
        }
    }
}

/// What a tree's spinlock protects: the states and a few spare nodes.
///
/// Nodes freed by merges and nodes an operation did not use are kept as
/// spares (up to [`POOL_NODES`]) for the next operation, which then often
/// needs no allocation at all.
struct Inner {
    tree: StateTree,
    spare: NodePool,
}

/// Ranges changed during one round, ascending and coalesced, held inline.
struct Recorded {
    ranges: [ByteRange; RECORD_SLOTS],
    len: usize,
}

impl Recorded {
    fn new() -> Self {
        Self {
            ranges: [ByteRange { start: 0, end: 0 }; RECORD_SLOTS],
            len: 0,
        }
    }

    fn last_mut(&mut self) -> Option<&mut ByteRange> {
        self.len.checked_sub(1).map(|i| &mut self.ranges[i])
    }

    /// Whether a range starting at `start` fits (it joins the last one or
    /// there is a free slot).
    fn can_push(&self, start: u64) -> bool {
        let joins = self
            .len
            .checked_sub(1)
            .is_some_and(|i| self.ranges[i].end + 1 == start);
        joins || self.len < RECORD_SLOTS
    }

    /// Appends a range; [`Self::can_push`] said it fits.
    fn push(&mut self, range: ByteRange) {
        if let Some(last) = self.last_mut() {
            if last.end + 1 == range.start {
                last.end = range.end;
                return;
            }
        }
        if let Some(slot) = self.ranges.get_mut(self.len) {
            *slot = range;
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[ByteRange] {
        &self.ranges[..self.len]
    }
}

/// Bytes one state occupies in its tree node: the `rb_node` links, the key
/// and the state. The node is a `kmalloc` object of the next slab size.
pub(crate) const STATE_NODE_BYTES: usize =
    core::mem::size_of::<(kernel::bindings::rb_node, u64, ExtentState)>();

/// A well-formedness problem of an io tree (see the module invariant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TreeFault {
    /// A state carries no bit.
    EmptyState(ByteRange),
    /// A state ends before it starts or past [`MAX_END`].
    BadRange(ByteRange),
    /// Two states overlap or are out of order.
    Overlap(ByteRange, ByteRange),
    /// Two touching states carry the same bits and should have been merged.
    NotMerged(ByteRange, ByteRange),
}

impl core::fmt::Display for TreeFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyState(r) => write!(f, "state [{}, {}] has no bits", r.start, r.end),
            Self::BadRange(r) => write!(f, "state [{}, {}] is not a valid range", r.start, r.end),
            Self::Overlap(a, b) => write!(
                f,
                "states [{}, {}] and [{}, {}] overlap",
                a.start, a.end, b.start, b.end
            ),
            Self::NotMerged(a, b) => write!(
                f,
                "touching states [{}, {}] and [{}, {}] have equal bits",
                a.start, a.end, b.start, b.end
            ),
        }
    }
}

/// An extent io tree (upstream `struct extent_io_tree`).
#[pin_data]
pub(crate) struct ExtentIoTree {
    #[pin]
    states: SpinLock<Inner>,
}

/// Checks an inclusive range given by a caller.
fn check_range(start: u64, end: u64) -> Result {
    if start > end || end > MAX_END {
        return Err(EINVAL);
    }
    Ok(())
}

/// The key of the state containing `pos`, or else of the first state after it.
fn state_key_at(tree: &StateTree, pos: u64) -> Option<u64> {
    match tree.cursor_lower_bound(&pos) {
        Some(cursor) => {
            let (&key, _) = cursor.current();
            if key != pos {
                if let Some((&prev_key, prev)) = cursor.peek_prev() {
                    if prev.end >= pos {
                        return Some(prev_key);
                    }
                }
            }
            Some(key)
        }
        None => {
            let cursor = tree.cursor_back()?;
            let (&key, state) = cursor.current();
            (state.end >= pos).then_some(key)
        }
    }
}

/// Merges touching states with equal bits, from the state holding (or
/// following) `from` up to the first state that starts after `to`.
fn merge_states(tree: &mut StateTree, spare: &mut NodePool, from: u64, to: u64) {
    let Some(key) = state_key_at(tree, from) else {
        return;
    };
    let Some(mut cursor) = tree.cursor_lower_bound_mut(&key) else {
        return;
    };
    loop {
        let (&start, state) = cursor.current();
        if start > to {
            return;
        }
        let (end, bits) = (state.end, state.bits);
        let Some((&next_start, next)) = cursor.peek_next() else {
            return;
        };
        let (next_end, next_bits) = (next.end, next.bits);
        // Ends never exceed MAX_END, so `end + 1` cannot overflow.
        if end + 1 == next_start && next_bits == bits {
            if let Some(node) = cursor.remove_next() {
                cursor.current_mut().1.end = next_end;
                spare.put(node.into_reservation());
            }
        } else {
            match cursor.move_next() {
                Some(next) => cursor = next,
                None => return,
            }
        }
    }
}

/// Why an operation stopped before the end of its range.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Progress {
    Done,
    NeedNode,
    NeedRoom,
}

/// What the walk asks its caller to do next.
enum Step {
    /// Insert this state (a node is known to be in the pool), then go on.
    Insert(u64, ExtentState),
    /// Look the position up again and go on.
    Again,
    /// Stop for the given reason.
    Stop(Progress),
}

/// One set / clear operation in progress, under the lock.
struct Change<'a> {
    /// Every byte before `pos` is done.
    pos: u64,
    end: u64,
    set: ExtentBits,
    clear: ExtentBits,
    pool: &'a mut NodePool,
    recorded: Option<&'a mut Recorded>,
    bytes: u64,
}

impl Change<'_> {
    fn target(&self, bits: ExtentBits) -> ExtentBits {
        bits.union(self.set).without(self.clear)
    }

    fn can_record(&self, start: u64) -> bool {
        self.recorded
            .as_deref()
            .is_none_or(|recorded| recorded.can_push(start))
    }

    /// Records `[start, end]` as changed; [`Self::can_record`] said it fits.
    fn record(&mut self, start: u64, end: u64) {
        // The recorded ranges are disjoint parts of one valid range, so the
        // sum is at most its length.
        self.bytes += end - start + 1;
        if let Some(recorded) = self.recorded.as_deref_mut() {
            recorded.push(ByteRange { start, end });
        }
    }

    /// Applies the change from `pos` to `end`, or until it runs out of nodes
    /// or recording room.
    fn apply(&mut self, tree: &mut StateTree) -> Progress {
        loop {
            if self.pos > self.end {
                return Progress::Done;
            }
            let step = match state_key_at(tree, self.pos) {
                None => self.fill_hole(self.end),
                Some(key) => self.walk(tree, key),
            };
            match step {
                Step::Insert(key, state) => {
                    // Every step returning `Insert` checked the pool first.
                    let Some(reservation) = self.pool.take() else {
                        return Progress::NeedNode;
                    };
                    tree.insert(reservation.into_node(key, state));
                }
                Step::Again => {}
                Step::Stop(progress) => return progress,
            }
        }
    }

    /// Handles the hole `[pos, hole_end]`, where no state exists.
    fn fill_hole(&mut self, hole_end: u64) -> Step {
        let bits = self.target(ExtentBits::NONE);
        if bits.is_empty() {
            self.pos = hole_end + 1;
            return Step::Again;
        }
        if self.pool.is_empty() {
            return Step::Stop(Progress::NeedNode);
        }
        if !self.can_record(self.pos) {
            return Step::Stop(Progress::NeedRoom);
        }
        let start = self.pos;
        self.record(start, hole_end);
        self.pos = hole_end + 1;
        Step::Insert(
            start,
            ExtentState {
                end: hole_end,
                bits,
            },
        )
    }

    /// Walks the states from the one keyed `key` while no node is needed.
    fn walk(&mut self, tree: &mut StateTree, key: u64) -> Step {
        let Some(mut cursor) = tree.cursor_lower_bound_mut(&key) else {
            return Step::Again;
        };
        loop {
            if self.pos > self.end {
                return Step::Stop(Progress::Done);
            }
            let (&start, state) = cursor.current_mut();
            if start > self.pos {
                let hole_end = self.end.min(start - 1);
                if !self.target(ExtentBits::NONE).is_empty() {
                    return self.fill_hole(hole_end);
                }
                self.pos = hole_end + 1;
                continue;
            }
            // Here `start <= pos <= state.end`.
            let new = self.target(state.bits);
            if new == state.bits {
                if state.end >= self.end {
                    self.pos = self.end + 1;
                    return Step::Stop(Progress::Done);
                }
                self.pos = state.end + 1;
            } else if start < self.pos || state.end > self.end {
                // The state sticks out of the range: split it at the range
                // boundary, keep the left part here, insert the right part.
                if self.pool.is_empty() {
                    return Step::Stop(Progress::NeedNode);
                }
                let at = if start < self.pos {
                    self.pos
                } else {
                    self.end + 1
                };
                let right = ExtentState {
                    end: state.end,
                    bits: state.bits,
                };
                state.end = at - 1;
                return Step::Insert(at, right);
            } else {
                if !self.can_record(start) {
                    return Step::Stop(Progress::NeedRoom);
                }
                let end = state.end;
                state.bits = new;
                self.record(start, end);
                self.pos = end + 1;
                if new.is_empty() {
                    // `remove_current` moves to the next state or, if there
                    // is none, to the previous one.
                    let (next, removed) = cursor.remove_current();
                    self.pool.put(removed.into_reservation());
                    match next {
                        Some(next) if *next.current().0 > start => {
                            cursor = next;
                            continue;
                        }
                        _ => return Step::Again,
                    }
                }
            }
            match cursor.move_next() {
                Some(next) => cursor = next,
                None => return Step::Again,
            }
        }
    }
}

impl ExtentIoTree {
    /// An empty tree.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            states <- new_spinlock!(Inner {
                tree: RBTree::new(),
                spare: NodePool::new(),
            }, "ExtentIoTree::states"),
        })
    }

    /// Sets `bits` on `[start, end]` (upstream `set_extent_bit`).
    ///
    /// Records in `changeset` every sub-range where some of `bits` was
    /// missing. Returns the number of such bytes.
    pub(crate) fn set_bits(
        &self,
        start: u64,
        end: u64,
        bits: ExtentBits,
        changeset: Option<&mut ExtentChangeset>,
    ) -> Result<u64> {
        self.change(start, end, bits, ExtentBits::NONE, changeset)
    }

    /// Clears `bits` on `[start, end]` (upstream `clear_extent_bit`).
    ///
    /// Records in `changeset` every sub-range where some of `bits` was set.
    /// Returns the number of such bytes.
    pub(crate) fn clear_bits(
        &self,
        start: u64,
        end: u64,
        bits: ExtentBits,
        changeset: Option<&mut ExtentChangeset>,
    ) -> Result<u64> {
        self.change(start, end, ExtentBits::NONE, bits, changeset)
    }

    /// Sets `set` and clears `clear` on `[start, end]`.
    ///
    /// EINVAL for a bad range, with nothing changed. On ENOMEM part of the
    /// range may have changed; `changeset` then records that part (unless
    /// recording itself ran out of memory).
    fn change(
        &self,
        start: u64,
        end: u64,
        set: ExtentBits,
        clear: ExtentBits,
        changeset: Option<&mut ExtentChangeset>,
    ) -> Result<u64> {
        check_range(start, end)?;
        let mut changeset = changeset;
        let mut pool = NodePool::new();
        // Nodes to allocate before the next round. The first round starts
        // with the tree's spare nodes only; it allocates when they run out.
        let mut want = 0;
        let mut pos = start;
        let mut bytes = 0u64;
        loop {
            pool.fill(want)?;
            // With room made first, recording this round's ranges cannot fail
            // after they are in the tree (when they come after the ones
            // recorded before, as they do for a fresh changeset).
            if let Some(changeset) = changeset.as_deref_mut() {
                changeset.reserve(RECORD_SLOTS)?;
            }
            let mut recorded = Recorded::new();
            // Earlier rounds merged everything before `pos`; this round only
            // has to merge from the state holding `pos - 1` on. (Merging from
            // `start` each round made an operation over k holes cost O(k^2).)
            let round_start = pos;
            let (progress, round_bytes) = {
                let mut guard = self.states.lock();
                let inner = &mut *guard;
                inner.spare.move_into(&mut pool);
                let mut op = Change {
                    pos,
                    end,
                    set,
                    clear,
                    pool: &mut pool,
                    recorded: changeset.is_some().then_some(&mut recorded),
                    bytes: 0,
                };
                // A clear needs at most the two boundary splits: with both
                // nodes in hand it never stops half-way for want of memory.
                let progress = if set.is_empty() && op.pool.len() < 2 {
                    Progress::NeedNode
                } else {
                    op.apply(&mut inner.tree)
                };
                merge_states(
                    &mut inner.tree,
                    op.pool,
                    round_start.saturating_sub(1),
                    op.pos,
                );
                pos = op.pos;
                let round_bytes = op.bytes;
                pool.move_into(&mut inner.spare);
                (progress, round_bytes)
            };
            // Nodes neither used nor kept as spares are freed here, unlocked.
            bytes += round_bytes;
            if let Some(changeset) = changeset.as_deref_mut() {
                changeset.merge(recorded.as_slice(), round_bytes)?;
            }
            match progress {
                Progress::Done => return Ok(bytes),
                Progress::NeedNode => want = if want == 0 { 2 } else { POOL_NODES },
                Progress::NeedRoom => {}
            }
        }
    }

    /// Calls `f` with every state overlapping `[start, end]`, clipped to it,
    /// in ascending order.
    ///
    /// `f` runs under the tree's spinlock: it must not sleep or allocate.
    pub(crate) fn for_each_state(
        &self,
        start: u64,
        end: u64,
        mut f: impl FnMut(ByteRange, ExtentBits),
    ) -> Result {
        check_range(start, end)?;
        let mut guard = self.states.lock();
        let tree = &mut guard.tree;
        let Some(key) = state_key_at(tree, start) else {
            return Ok(());
        };
        let mut cursor = tree.cursor_lower_bound_mut(&key);
        while let Some(current) = cursor {
            let (&s, state) = current.current();
            if s > end {
                break;
            }
            let clipped = ByteRange {
                start: s,
                end: state.end,
            }
            .intersect(&ByteRange { start, end });
            if let Some(range) = clipped {
                f(range, state.bits);
            }
            cursor = current.move_next();
        }
        Ok(())
    }

    /// Number of bytes in `[start, end]` carrying any of `bits`
    /// (upstream `count_range_bits`).
    pub(crate) fn count_bits(&self, start: u64, end: u64, bits: ExtentBits) -> Result<u64> {
        let mut total = 0u64;
        self.for_each_state(start, end, |range, state_bits| {
            if state_bits.intersects(bits) {
                total += range.len();
            }
        })?;
        Ok(total)
    }

    /// Whether every byte of `[start, end]` carries all of `bits`
    /// (upstream `test_range_bit`).
    pub(crate) fn test_bits(&self, start: u64, end: u64, bits: ExtentBits) -> Result<bool> {
        let mut next = start;
        let mut covered = true;
        self.for_each_state(start, end, |range, state_bits| {
            if range.start != next || !state_bits.contains(bits) {
                covered = false;
            }
            next = range.end.saturating_add(1);
        })?;
        Ok(covered && next > end)
    }

    /// Appends to `out` the maximal ranges inside `[start, end]` whose bytes
    /// carry any of `bits`, ascending.
    ///
    /// Allocates only with no lock held: it copies what fits, grows `out`
    /// and resumes after the last range copied.
    pub(crate) fn ranges_with_bits(
        &self,
        start: u64,
        end: u64,
        bits: ExtentBits,
        out: &mut KVec<ByteRange>,
    ) -> Result {
        check_range(start, end)?;
        let mut pos = start;
        let mut room = 4usize;
        // Copy into the room `out` has; allocate only when it runs out, so
        // a range with no such bits costs no allocation at all.
        loop {
            let mut stopped = None;
            self.for_each_state(pos, end, |range, state_bits| {
                if stopped.is_none() && state_bits.intersects(bits) && !push_coalesced(out, range) {
                    stopped = Some(range.start);
                }
            })?;
            match stopped {
                None => return Ok(()),
                Some(at) => {
                    pos = at;
                    out.reserve(room, GFP_KERNEL)?;
                    room = room.saturating_mul(2);
                }
            }
        }
    }

    /// A copy of every state overlapping `[start, end]`, clipped to it.
    ///
    /// Allocates only with no lock held, resuming after the last state
    /// copied when the copy runs out of room.
    pub(crate) fn snapshot(&self, start: u64, end: u64) -> Result<KVec<(ByteRange, ExtentBits)>> {
        check_range(start, end)?;
        let mut out = KVec::new();
        let mut pos = start;
        let mut room = 8usize;
        loop {
            let mut stopped = None;
            self.for_each_state(pos, end, |range, bits| {
                if stopped.is_none() && out.push_within_capacity((range, bits)).is_err() {
                    stopped = Some(range.start);
                }
            })?;
            match stopped {
                None => return Ok(out),
                Some(at) => {
                    pos = at;
                    out.reserve(room, GFP_KERNEL)?;
                    room = room.saturating_mul(2);
                }
            }
        }
    }

    /// Whether the tree has no state.
    pub(crate) fn is_empty(&self) -> bool {
        self.states.lock().tree.is_empty()
    }

    /// Number of states in the tree.
    pub(crate) fn state_count(&self) -> usize {
        self.states.lock().tree.iter().count()
    }

    /// Checks the module invariant; returns the first fault found.
    pub(crate) fn check(&self) -> Option<TreeFault> {
        self.check_and_visit(|_, _| {})
    }

    /// Checks the module invariant while calling `f` with every state in
    /// order, in one pass; returns the first fault found.
    ///
    /// `f` runs under the tree's spinlock: it must not sleep or allocate.
    pub(crate) fn check_and_visit(
        &self,
        mut f: impl FnMut(ByteRange, ExtentBits),
    ) -> Option<TreeFault> {
        let guard = self.states.lock();
        let tree = &guard.tree;
        let mut prev: Option<(ByteRange, ExtentBits)> = None;
        let mut fault = None;
        for (&start, state) in tree.iter() {
            let range = ByteRange {
                start,
                end: state.end,
            };
            f(range, state.bits);
            if fault.is_some() {
                continue;
            }
            if start > state.end || state.end > MAX_END {
                fault = Some(TreeFault::BadRange(range));
            } else if state.bits.is_empty() {
                fault = Some(TreeFault::EmptyState(range));
            } else if let Some((p, bits)) = prev {
                if p.end >= start {
                    fault = Some(TreeFault::Overlap(p, range));
                } else if p.end + 1 == start && bits == state.bits {
                    fault = Some(TreeFault::NotMerged(p, range));
                }
            }
            prev = Some((range, state.bits));
        }
        fault
    }
}

kernel_display!(ExtentBits, TreeFault);
