// SPDX-License-Identifier: GPL-2.0

//! The single-range fast path: an operation whose range lies inside one
//! hole, or covers exactly one state, is measured, admitted and applied
//! from one descent, merging with its neighbours in place (upstream's
//! `set_extent_bit` / `clear_extent_bit` with a cached state do the same
//! for their common cases).
//!
//! Anything else (a range that splits a state, or spans several states or
//! holes) is left to the general walk ([`super::walk`]), before anything
//! changed. The result is the same either way: the tree stays the unique
//! maximal representation of its byte map (module invariant).

use super::{
    prealloc::{Needs, NodePool, Recorded, Short, Then},
    ExtentBits, ExtentState, StateCursor, StateTree, TreeOp,
};
use crate::changeset::ByteRange;

/// What the fast path did with an operation.
pub(super) enum Single<E> {
    /// Not a case it takes: nothing changed, the general walk runs.
    General,
    /// It changed nothing: it only measured, or there was nothing to change.
    /// The bytes whose recorded bits would flip.
    Unchanged(u64),
    /// It applied the change: the bytes whose recorded bits flipped.
    Applied(u64),
    /// It changed nothing, for this reason.
    Short(Short<E>),
}

/// What the fast path works with, besides the tree.
pub(super) struct Context<'a, 'b, E> {
    /// Preallocated nodes; freed nodes go back here.
    pub(super) pool: &'a mut NodePool,
    /// Where the changed range is recorded, if a changeset is given.
    pub(super) recorded: Option<&'a mut Recorded>,
    /// Whether the changeset (if any) has room for one more range.
    pub(super) record_room: bool,
    /// What to do once the change is known to fit.
    pub(super) then: &'a mut Then<'b, E>,
}

/// What the change of a range inside one hole or on one state takes.
#[derive(Clone, Copy)]
struct Plan {
    /// Bytes whose recorded bits flip: the range's length or 0.
    flips: u64,
    /// Whether the range joins the state before it.
    join_prev: bool,
    /// Whether the range joins the state after it.
    join_next: bool,
}

impl Plan {
    /// The change of `range` from `old` bits to `new` ones, between the
    /// states `prev` (ending before it) and `next` (its key and state,
    /// starting after it).
    fn new(
        range: ByteRange,
        op: TreeOp,
        old: ExtentBits,
        new: ExtentBits,
        prev: Option<ExtentState>,
        next: Option<(u64, ExtentState)>,
    ) -> Self {
        Self {
            flips: flips(range, op, old, new),
            join_prev: prev.is_some_and(|p| joins(p.end, new, range.start, p.bits)),
            join_next: next.is_some_and(|(start, n)| joins(range.end, new, start, n.bits)),
        }
    }
}

impl<E> Context<'_, '_, E> {
    /// Whether the change of `plan` on `range`, which takes a new node
    /// when `needs_node`, may go ahead: `Err` with what to return if not
    /// (it needs more than was preallocated, it only measures, or `admit`
    /// refused).
    fn admit(&mut self, plan: &Plan, needs_node: bool, range: ByteRange) -> Result<(), Single<E>> {
        let records = usize::from(plan.flips > 0 && self.recorded.is_some());
        let room = records == 0 || self.record_room;
        if (needs_node && self.pool.is_empty()) || !room {
            return Err(Single::Short(Short::Needs(Needs {
                changes: 1,
                nodes: usize::from(needs_node),
                records,
                flips: plan.flips,
                ..Needs::default()
            })));
        }
        match self.then.admits(plan.flips) {
            Ok(true) => {}
            Ok(false) => return Err(Single::Unchanged(plan.flips)),
            Err(e) => return Err(Single::Short(Short::Refused(e))),
        }
        if plan.flips > 0 {
            if let Some(recorded) = self.recorded.as_deref_mut() {
                recorded.push(range);
            }
        }
        Ok(())
    }
}

/// Whether a piece ending at `end` with `new` bits joins a state starting
/// at `start` carrying `bits` (they touch and carry the same bits).
fn joins(end: u64, new: ExtentBits, start: u64, bits: ExtentBits) -> bool {
    !new.is_empty() && end.checked_add(1) == Some(start) && bits == new
}

/// The bytes of `range` whose recorded bits flip from `old` to `new`.
fn flips(range: ByteRange, op: TreeOp, old: ExtentBits, new: ExtentBits) -> u64 {
    if ((old ^ new) & op.record).is_empty() {
        0
    } else {
        range.len()
    }
}

/// What the helpers decided.
enum Decision<E> {
    /// Return this.
    Return(Single<E>),
    /// Insert this state once the cursor is gone, then report the flips.
    Insert(u64, ExtentState, u64),
}

impl<E> From<Single<E>> for Decision<E> {
    fn from(single: Single<E>) -> Self {
        Self::Return(single)
    }
}

/// Tries `op` on `range` by the fast path, under the tree's lock.
pub(super) fn single<E>(
    tree: &mut StateTree,
    range: ByteRange,
    op: TreeOp,
    cx: &mut Context<'_, '_, E>,
) -> Single<E> {
    let decision = match tree.cursor_lower_bound_mut(&range.start) {
        Some(cursor) if *cursor.current().0 == range.start => on_state(cursor, range, op, cx),
        Some(cursor) => {
            let (&next_start, next) = cursor.current();
            let next = (next_start, *next);
            let prev = cursor.peek_prev().map(|(_, p)| *p);
            if range.end >= next_start || prev.is_some_and(|p| p.end >= range.start) {
                return Single::General;
            }
            in_hole(Some(cursor), true, prev, Some(next), range, op, cx)
        }
        None => match tree.cursor_back_mut() {
            Some(last) => {
                let prev = *last.current().1;
                if prev.end >= range.start {
                    return Single::General;
                }
                in_hole(Some(last), false, Some(prev), None, range, op, cx)
            }
            None => in_hole(None, false, None, None, range, op, cx),
        },
    };
    match decision {
        Decision::Return(single) => single,
        Decision::Insert(key, state, flips) => {
            let Some(node) = cx.pool.take() else {
                // INVARIANT: `admit` checked the pool, and the node of a
                // state taken out to be inserted again went back to it.
                kernel::warn_on!(true);
                return Single::Applied(flips);
            };
            tree.insert(node.into_node(key, state));
            Single::Applied(flips)
        }
    }
}

/// `range` lies in a hole between `prev` (a state ending before it) and
/// `next` (a key and state starting after it). `cursor` is on `next`
/// when `on_next`, else on `prev` (there is no `next`), or `None` in an
/// empty tree.
fn in_hole<E>(
    cursor: Option<StateCursor<'_>>,
    on_next: bool,
    prev: Option<ExtentState>,
    next: Option<(u64, ExtentState)>,
    range: ByteRange,
    op: TreeOp,
    cx: &mut Context<'_, '_, E>,
) -> Decision<E> {
    let bits = op.target(ExtentBits::NONE);
    if bits.is_empty() {
        return Single::Unchanged(0).into();
    }
    let plan = Plan::new(range, op, ExtentBits::NONE, bits, prev, next);
    if let Err(single) = cx.admit(&plan, !(plan.join_prev || plan.join_next), range) {
        return single.into();
    }
    let insert = |end| Decision::Insert(range.start, ExtentState { end, bits }, plan.flips);
    // A join needs the neighbour, so the cursor is there.
    let Some(mut cursor) = cursor.filter(|_| plan.join_prev || plan.join_next) else {
        return insert(range.end);
    };
    let mut prev_end = |end: u64| {
        let prev = if on_next {
            cursor.peek_prev_mut()
        } else {
            Some(cursor.current_mut())
        };
        if let Some((_, p)) = prev {
            p.end = end;
        }
    };
    match next {
        Some((_, n)) if plan.join_prev && plan.join_next => {
            prev_end(n.end);
            let (_, node) = cursor.remove_current();
            cx.pool.put(node.into_reservation());
        }
        _ if plan.join_prev => prev_end(range.end),
        Some((_, n)) => {
            // Only the next state joins: it grows to the left, its key
            // changes, so its node is taken out and inserted again under
            // the new key.
            let (_, node) = cursor.remove_current();
            cx.pool.put(node.into_reservation());
            return insert(n.end);
        }
        None => return insert(range.end),
    }
    Single::Applied(plan.flips).into()
}

/// `range` starts where the state under `cursor` starts: the fast path
/// takes it when it ends there too.
fn on_state<E>(
    mut cursor: StateCursor<'_>,
    range: ByteRange,
    op: TreeOp,
    cx: &mut Context<'_, '_, E>,
) -> Decision<E> {
    let state = *cursor.current().1;
    if state.end != range.end {
        return Single::General.into();
    }
    let bits = op.target(state.bits);
    if bits == state.bits {
        return Single::Unchanged(0).into();
    }
    let prev = cursor.peek_prev().map(|(_, p)| *p);
    let next = cursor.peek_next().map(|(&k, n)| (k, *n));
    let plan = Plan::new(range, op, state.bits, bits, prev, next);
    if let Err(single) = cx.admit(&plan, false, range) {
        return single.into();
    }
    let end = match next {
        Some((_, n)) if plan.join_next => {
            if let Some(node) = cursor.remove_next() {
                cx.pool.put(node.into_reservation());
            }
            n.end
        }
        _ => state.end,
    };
    if bits.is_empty() || plan.join_prev {
        if plan.join_prev {
            if let Some((_, p)) = cursor.peek_prev_mut() {
                p.end = end;
            }
        }
        let (_, node) = cursor.remove_current();
        cx.pool.put(node.into_reservation());
    } else {
        let (_, s) = cursor.current_mut();
        s.bits = bits;
        s.end = end;
    }
    Single::Applied(plan.flips).into()
}
