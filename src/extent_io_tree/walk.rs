// SPDX-License-Identifier: GPL-2.0

//! Under the lock: measuring what an operation needs, changing the states
//! (splits, filled holes, bit changes, removals) and merging touching
//! states with equal bits afterwards.
//!
//! [`measure`] walks exactly the states [`Change::apply`] will, so that
//! the nodes and room it counts are all the change takes.

use super::{
    prealloc::{Needs, NodePool, Pending, Recorded},
    with_cursor_at, ExtentBits, ExtentState, StateCursor, StateTree, TreeOp,
};
use crate::changeset::ByteRange;

/// Adds to `needs` the nodes and changeset room that `op` on `range`
/// takes: a node for each split of a changing state that sticks out of
/// the range, one for each hole filled, and room for each changed piece;
/// and the bytes whose recorded bits it flips.
pub(super) fn measure(tree: &mut StateTree, range: ByteRange, op: TreeOp, needs: &mut Needs) {
    let fills = op.fills_holes();
    let hole_flips = !(op.target(ExtentBits::NONE) & op.record).is_empty();
    // A hole `[from, to]` of the range.
    let hole = |needs: &mut Needs, from: u64, to: u64| {
        if fills {
            needs.changes += 1;
            needs.holes += 1;
            needs.nodes += 1;
            needs.records += 1;
        }
        if hole_flips {
            // PANIC: none; `from <= to`, and a range holds at most
            // 2^64 - 1 bytes, which flip at most once.
            needs.flips += to - from + 1;
        }
    };
    let mut pos = range.start;
    with_cursor_at(tree, pos, |mut cursor| loop {
        let Some(current) = cursor else {
            hole(needs, pos, range.end);
            return;
        };
        let (&start, state) = current.current();
        if start > range.end {
            hole(needs, pos, range.end);
            return;
        }
        if start > pos {
            hole(needs, pos, start - 1);
        }
        let target = op.target(state.bits);
        if !((target ^ state.bits) & op.record).is_empty() {
            // PANIC: none, as for a hole.
            needs.flips += state.end.min(range.end) - start.max(range.start) + 1;
        }
        if target != state.bits {
            needs.changes += 1;
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
        // PANIC: none; ends never exceed MAX_END.
        pos = state.end + 1;
        cursor = current.move_next();
    })
}

/// Merges touching states with equal bits, from the state holding (or
/// following) `from` up to the first state that starts after `to`; the
/// nodes it frees go to `spare`.
pub(super) fn merge_states(tree: &mut StateTree, spare: &mut NodePool, from: u64, to: u64) {
    with_cursor_at(tree, from, |cursor| {
        let Some(mut cursor) = cursor else {
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
            // PANIC: none; ends never exceed MAX_END, so `end + 1` fits.
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
    })
}

/// Why an operation stopped before the end of its range.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Progress {
    /// Every byte of the range is done.
    Done,
    /// A node was needed and none was left.
    NeedNode,
    /// A range had to be recorded and there was no room.
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

/// One set / clear operation on one range in progress, under the lock.
pub(super) struct Change<'a> {
    /// Every byte before `pos` is done.
    pos: u64,
    /// The last byte of the range.
    end: u64,
    op: TreeOp,
    pool: &'a mut NodePool,
    recorded: Option<&'a mut Recorded>,
    /// States of filled holes not yet inserted, so that the walk goes on
    /// from its cursor instead of descending again after each one; they
    /// all lie before `pos`, and go into the tree before the change ends.
    pending: &'a mut Pending,
    /// Bytes whose recorded bits flipped so far.
    bytes: u64,
}

impl<'a> Change<'a> {
    /// `op` on `range`, taking nodes from `pool` and recording into
    /// `recorded` when given.
    pub(super) fn new(
        range: ByteRange,
        op: TreeOp,
        pool: &'a mut NodePool,
        recorded: Option<&'a mut Recorded>,
        pending: &'a mut Pending,
    ) -> Self {
        Self {
            pos: range.start,
            end: range.end,
            op,
            pool,
            recorded,
            pending,
            bytes: 0,
        }
    }

    /// Bytes whose recorded bits flipped.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// What the operation makes of a state carrying `bits`.
    fn target(&self, bits: ExtentBits) -> ExtentBits {
        self.op.target(bits)
    }

    /// Whether a changed piece starting at `start` can be recorded.
    fn can_record(&self, start: u64) -> bool {
        self.recorded
            .as_deref()
            .is_none_or(|recorded| recorded.can_push(start))
    }

    /// Records `[start, end]` as changed; [`Self::can_record`] said it fits.
    fn record(&mut self, start: u64, end: u64) {
        // PANIC: none; the recorded ranges are disjoint parts of one valid
        // range, so the sum is at most its length.
        self.bytes += end - start + 1;
        if let Some(recorded) = self.recorded.as_deref_mut() {
            recorded.push(ByteRange { start, end });
        }
    }

    /// Applies the change from `pos` to `end`, or until it runs out of nodes
    /// or recording room.
    pub(super) fn apply(&mut self, tree: &mut StateTree) -> Progress {
        let progress = self.walk_range(tree);
        for node in self.pending.drain_all() {
            tree.insert(node);
        }
        progress
    }

    /// [`Self::apply`], but for the pending states' inserts.
    fn walk_range(&mut self, tree: &mut StateTree) -> Progress {
        loop {
            if self.pos > self.end {
                return Progress::Done;
            }
            let step = with_cursor_at(tree, self.pos, |cursor| match cursor {
                None => self.fill_hole(self.end),
                Some(cursor) => self.walk(cursor),
            });
            match step {
                Step::Insert(key, state) => {
                    // Every step returning `Insert` checked the pool first.
                    let Some(node) = self.pool.take() else {
                        return Progress::NeedNode;
                    };
                    tree.insert(node.into_node(key, state));
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
        if bits.contains_any(self.op.record) {
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

    /// Walks the states from the one under `cursor` (which contains `pos`
    /// or follows it) while no node is needed.
    fn walk(&mut self, mut cursor: StateCursor<'_>) -> Step {
        loop {
            if self.pos > self.end {
                return Step::Stop(Progress::Done);
            }
            let (&start, state) = cursor.current_mut();
            if start > self.pos {
                let hole_end = self.end.min(start - 1);
                if self.op.fills_holes() {
                    match self.fill_hole(hole_end) {
                        Step::Insert(key, state) if self.pending.has_room() => {
                            // Every step returning `Insert` checked the pool.
                            let Some(node) = self.pool.take() else {
                                return Step::Stop(Progress::NeedNode);
                            };
                            self.pending.push(node.into_node(key, state));
                            continue;
                        }
                        step => return step,
                    }
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
                let flipped = new ^ state.bits;
                let recorded = flipped.contains_any(self.op.record);
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
