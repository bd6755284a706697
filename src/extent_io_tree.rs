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
//! Allocation discipline (Binder's `range_alloc` protocol): keys are never
//! changed in place. A split shrinks a state and inserts the remainder as a
//! new node; a merge grows the left state and removes the right one. An
//! operation first measures, under the lock, how many nodes and changeset
//! slots it needs; if the caller's reservations fall short it changes
//! nothing, drops the lock, allocates what was missing with `GFP_KERNEL`
//! and tries again. Once it has enough it runs to the end, so every
//! operation is all-or-nothing, ENOMEM included. Nothing allocates or sleeps
//! under the lock; nodes that merges or clears free, and reservations left
//! over, are dropped after it is released. A tree keeps no spare nodes.
//!
//! Cost: finding the first state is `O(log n)`, measuring and walking `k`
//! states is `O(k)`, and each node the operation inserts (at most two
//! splits per range plus one per hole filled) costs another `O(log n)`,
//! because the kernel's `RBTree` offers no insertion at a cursor. The
//! merge pass runs once over the changed span.

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

/// Node reservations an operation holds: allocated before the lock is
/// taken, turned into nodes under it.
struct NodePool {
    nodes: KVec<StateReservation>,
}

impl NodePool {
    fn new() -> Self {
        Self { nodes: KVec::new() }
    }

    /// Makes sure at least `n` nodes are held; allocates, so call it with
    /// no lock held.
    fn fill(&mut self, n: usize) -> Result {
        if self.nodes.len() < n {
            self.nodes.reserve(n - self.nodes.len(), GFP_KERNEL)?;
        }
        while self.nodes.len() < n {
            // Room was reserved above: the push cannot fail.
            let _ = self
                .nodes
                .push_within_capacity(StateReservation::new(GFP_KERNEL)?);
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn len(&self) -> usize {
        self.nodes.len()
    }

    fn take(&mut self) -> Option<StateReservation> {
        self.nodes.pop()
    }

    /// Keeps a node a merge or clear freed, for a later insert of the same
    /// operation; one that does not fit is dropped (`kfree`, which never
    /// sleeps).
    fn put(&mut self, node: StateReservation) {
        let _ = self.nodes.push_within_capacity(node);
    }
}

/// What a tree's spinlock protects.
struct Inner {
    tree: StateTree,
}

/// Ranges an operation changed, ascending and coalesced, in room reserved
/// before the lock was taken.
struct Recorded {
    ranges: KVec<ByteRange>,
}

impl Recorded {
    fn new() -> Self {
        Self {
            ranges: KVec::new(),
        }
    }

    /// Whether a range starting at `start` fits (it joins the last one or
    /// there is room).
    fn can_push(&self, start: u64) -> bool {
        let joins = self.ranges.last().is_some_and(|last| last.end + 1 == start);
        joins || self.ranges.len() < self.ranges.capacity()
    }

    /// Appends a range; [`Self::can_push`] said it fits.
    fn push(&mut self, range: ByteRange) {
        push_coalesced(&mut self.ranges, range);
    }

    fn as_slice(&self) -> &[ByteRange] {
        &self.ranges
    }
}

/// What an operation needs before it may start: nodes for splits and
/// filled holes, and slots for the ranges it records.
#[derive(Clone, Copy, Default)]
struct Needs {
    nodes: usize,
    records: usize,
}

/// One io tree operation: bits to set and to clear, and the bits whose
/// flips it records in a changeset and counts in its result.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TreeOp {
    /// Bits set on every byte of the range.
    pub(crate) set: ExtentBits,
    /// Bits cleared on every byte of the range.
    pub(crate) clear: ExtentBits,
    /// Bits whose flips are recorded and counted.
    pub(crate) record: ExtentBits,
    /// When not empty, only states carrying one of these bits change, and
    /// holes stay holes.
    pub(crate) only_if: ExtentBits,
}

impl TreeOp {
    /// Set `bits`, recording where some of them was missing.
    pub(crate) const fn set(bits: ExtentBits) -> Self {
        Self {
            set: bits,
            clear: ExtentBits::NONE,
            record: bits,
            only_if: ExtentBits::NONE,
        }
    }

    /// Clear `bits`, recording where some of them was set.
    pub(crate) const fn clear(bits: ExtentBits) -> Self {
        Self {
            set: ExtentBits::NONE,
            clear: bits,
            record: bits,
            only_if: ExtentBits::NONE,
        }
    }

    /// The same change, recording and counting flips of `record` only.
    pub(crate) const fn recording(self, record: ExtentBits) -> Self {
        Self { record, ..self }
    }

    /// The same change, applied only to states carrying one of `bits`.
    pub(crate) const fn only_if(self, bits: ExtentBits) -> Self {
        Self {
            only_if: bits,
            ..self
        }
    }

    /// What the operation makes of a state carrying `bits`.
    fn target(&self, bits: ExtentBits) -> ExtentBits {
        if self.only_if.is_empty() || bits.intersects(self.only_if) {
            bits.union(self.set).without(self.clear)
        } else {
            bits
        }
    }

    /// Also clear `bits`.
    pub(crate) const fn and_clear(self, bits: ExtentBits) -> Self {
        Self {
            clear: self.clear.union(bits),
            ..self
        }
    }
}

/// What [`ExtentIoTree::prepare`] reserved for one operation: tree nodes
/// and room for the ranges it records. Whatever is left is freed when it
/// is dropped, with no lock held.
pub(crate) struct Prealloc {
    pool: NodePool,
    recorded: Recorded,
}

impl Prealloc {
    /// Nothing reserved yet.
    pub(crate) fn new() -> Self {
        Self {
            pool: NodePool::new(),
            recorded: Recorded::new(),
        }
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

/// Adds to `needs` the nodes and changeset slots that setting `set` and
/// clearing `clear` on `range` takes: a node for each split of a changing
/// state that sticks out of the range, one for each hole filled, and a
/// slot for each changed piece. It walks exactly the states `apply` will.
fn measure(tree: &mut StateTree, range: ByteRange, op: TreeOp, needs: &mut Needs) {
    let target = |bits: ExtentBits| op.target(bits);
    let fills = !target(ExtentBits::NONE).is_empty();
    let hole = |needs: &mut Needs| {
        if fills {
            needs.nodes += 1;
            needs.records += 1;
        }
    };
    let mut pos = range.start;
    let mut cursor = state_key_at(tree, pos).and_then(|key| tree.cursor_lower_bound_mut(&key));
    loop {
        let Some(current) = cursor else {
            hole(needs);
            return;
        };
        let (&start, state) = current.current();
        if start > range.end {
            hole(needs);
            return;
        }
        if start > pos {
            hole(needs);
        }
        if target(state.bits) != state.bits {
            needs.records += 1;
            if start < range.start {
                needs.nodes += 1;
            }
            if state.end > range.end {
                needs.nodes += 1;
            }
        }
        if state.end >= range.end {
            return;
        }
        // Ends never exceed MAX_END: no overflow.
        pos = state.end + 1;
        cursor = current.move_next();
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
    op: TreeOp,
    pool: &'a mut NodePool,
    recorded: Option<&'a mut Recorded>,
    bytes: u64,
}

impl Change<'_> {
    fn target(&self, bits: ExtentBits) -> ExtentBits {
        self.op.target(bits)
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
        let start = self.pos;
        if bits.intersects(self.op.record) {
            if !self.can_record(start) {
                return Step::Stop(Progress::NeedRoom);
            }
            self.record(start, hole_end);
        }
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
                let flipped = new.without(state.bits).union(state.bits.without(new));
                let recorded = flipped.intersects(self.op.record);
                if recorded && !self.can_record(start) {
                    return Step::Stop(Progress::NeedRoom);
                }
                let end = state.end;
                state.bits = new;
                if recorded {
                    self.record(start, end);
                }
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
        self.once(ByteRange { start, end }, TreeOp::set(bits), changeset)
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
        self.once(ByteRange { start, end }, TreeOp::clear(bits), changeset)
    }

    /// Runs `op` on one range with reservations of its own.
    fn once(
        &self,
        range: ByteRange,
        op: TreeOp,
        changeset: Option<&mut ExtentChangeset>,
    ) -> Result<u64> {
        self.run(&[range], op, changeset, &mut Prealloc::new(), false)
    }

    /// Clears `bits` on each of `ranges` (ascending, disjoint), all in one
    /// operation: either every range is cleared or, on error, none is.
    /// Returns the number of bytes where some of `bits` was set.
    pub(crate) fn clear_bits_ranges(&self, ranges: &[ByteRange], bits: ExtentBits) -> Result<u64> {
        let op = TreeOp::clear(bits);
        self.run(ranges, op, None, &mut Prealloc::new(), false)
    }

    /// Reserves, with no lock held, everything `op` on `ranges` needs
    /// (nodes, and room in `changeset` if one is given), so that
    /// [`Self::apply`] with the same arguments cannot fail as long as the
    /// tree does not change in between (the caller holds the inode lock,
    /// or the instance alone). Changes nothing.
    pub(crate) fn prepare(
        &self,
        ranges: &[ByteRange],
        op: TreeOp,
        changeset: Option<&mut ExtentChangeset>,
    ) -> Result<Prealloc> {
        let mut prealloc = Prealloc::new();
        self.run(ranges, op, changeset, &mut prealloc, true)?;
        Ok(prealloc)
    }

    /// Applies `op` to `ranges` with what [`Self::prepare`] reserved.
    /// Returns the bytes where `op`'s recorded bits flipped, and records
    /// them in `changeset`.
    ///
    /// Should the tree have changed since `prepare` (it cannot under the
    /// locking rules above), it allocates what is missing, all or nothing.
    pub(crate) fn apply(
        &self,
        ranges: &[ByteRange],
        op: TreeOp,
        changeset: Option<&mut ExtentChangeset>,
        prealloc: &mut Prealloc,
    ) -> Result<u64> {
        self.run(ranges, op, changeset, prealloc, false)
    }

    /// Runs `op` on every one of `ranges`, or with `dry` only makes sure
    /// `prealloc` (and `changeset`) hold everything it needs.
    ///
    /// All or nothing: EINVAL for a bad range and ENOMEM leave the tree and
    /// `changeset` exactly as they were.
    fn run(
        &self,
        ranges: &[ByteRange],
        op: TreeOp,
        changeset: Option<&mut ExtentChangeset>,
        prealloc: &mut Prealloc,
        dry: bool,
    ) -> Result<u64> {
        for r in ranges {
            check_range(r.start, r.end)?;
        }
        let mut changeset = changeset;
        let Prealloc { pool, recorded } = prealloc;
        recorded.ranges.clear();
        loop {
            let outcome = {
                let mut guard = self.states.lock();
                let tree = &mut guard.tree;
                let mut needs = Needs::default();
                for r in ranges {
                    measure(tree, *r, op, &mut needs);
                }
                let records = if changeset.is_some() {
                    needs.records
                } else {
                    0
                };
                let room = changeset
                    .as_deref()
                    .is_none_or(|cs| cs.has_room(records) && recorded.ranges.capacity() >= records);
                if pool.len() < needs.nodes || !room {
                    Err(Needs {
                        nodes: needs.nodes,
                        records,
                    })
                } else if dry {
                    Ok(0)
                } else {
                    let mut bytes = 0u64;
                    let mut done = true;
                    for r in ranges {
                        let mut change = Change {
                            pos: r.start,
                            end: r.end,
                            op,
                            pool: &mut *pool,
                            recorded: changeset.is_some().then_some(&mut *recorded),
                            bytes: 0,
                        };
                        // `measure` counted every node and slot `apply`
                        // takes, so it runs to the end.
                        done &= change.apply(tree) == Progress::Done;
                        bytes += change.bytes;
                        merge_states(
                            tree,
                            pool,
                            r.start.saturating_sub(1),
                            r.end.saturating_add(1),
                        );
                    }
                    if !done {
                        pr_err!("io tree operation ran out of its reservations\n");
                    }
                    Ok(bytes)
                }
            };
            // Nodes freed or left over stay in `prealloc`, freed unlocked.
            match outcome {
                Ok(bytes) => {
                    if let Some(cs) = changeset.as_deref_mut() {
                        if !dry {
                            cs.merge_within_capacity(recorded.as_slice(), bytes);
                        }
                    }
                    return Ok(bytes);
                }
                Err(needs) => {
                    pool.fill(needs.nodes)?;
                    if let Some(cs) = changeset.as_deref_mut() {
                        cs.reserve(needs.records)?;
                        if recorded.ranges.capacity() < needs.records {
                            recorded.ranges.reserve(needs.records, GFP_KERNEL)?;
                        }
                    }
                }
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
                // INVARIANT: the clipped ranges are disjoint parts of
                // `[start, end]`, so their sum is at most its length.
                total += range.len();
            }
        })?;
        Ok(total)
    }

    /// Whether some byte of `[start, end]` carries one of `bits`; stops at
    /// the first such state.
    pub(crate) fn any_bits(&self, start: u64, end: u64, bits: ExtentBits) -> bool {
        if check_range(start, end).is_err() {
            return false;
        }
        let mut guard = self.states.lock();
        let tree = &mut guard.tree;
        let mut cursor =
            state_key_at(tree, start).and_then(|key| tree.cursor_lower_bound_mut(&key));
        while let Some(current) = cursor {
            let (&s, state) = current.current();
            if s > end {
                break;
            }
            if state.bits.intersects(bits) {
                return true;
            }
            cursor = current.move_next();
        }
        false
    }

    #[cfg(qgroup_rs_testing)]
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
    pub(crate) fn ranges_with_bits(
        &self,
        start: u64,
        end: u64,
        bits: ExtentBits,
        out: &mut KVec<ByteRange>,
    ) -> Result {
        self.ranges_where(start, end, |b| b.intersects(bits), out)
    }

    /// Appends to `out` the maximal ranges inside `[start, end]` whose
    /// states satisfy `wanted`, ascending.
    ///
    /// Allocates only with no lock held: it copies what fits, grows `out`
    /// and resumes after the last range copied.
    pub(crate) fn ranges_where(
        &self,
        start: u64,
        end: u64,
        wanted: impl Fn(ExtentBits) -> bool,
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
                if stopped.is_none() && wanted(state_bits) && !push_coalesced(out, range) {
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

    #[cfg(qgroup_rs_testing)]
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
