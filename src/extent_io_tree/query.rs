// SPDX-License-Identifier: GPL-2.0

//! The reads of an io tree: visits, counts and copies of its states.
//!
//! Visits run under the tree's spinlock; the copies allocate only with no
//! lock held, resuming after the last state copied when they run out of
//! room.

use kernel::prelude::*;

use super::{check_range, with_cursor_at, ExtentBits, ExtentIoTree};
use crate::changeset::{ByteRange, RangeSink};

impl ExtentIoTree {
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
        with_cursor_at(tree, start, |mut cursor| {
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
        });
        Ok(())
    }

    /// Number of bytes in `[start, end]` carrying any of `bits`
    /// (upstream `count_range_bits`).
    pub(crate) fn count_bits(&self, start: u64, end: u64, bits: ExtentBits) -> Result<u64> {
        let mut total = 0u64;
        self.for_each_state(start, end, |range, state_bits| {
            if state_bits.contains_any(bits) {
                // PANIC: none; the clipped ranges are disjoint parts of
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
        with_cursor_at(tree, start, |mut cursor| {
            while let Some(current) = cursor {
                let (&s, state) = current.current();
                if s > end {
                    break;
                }
                if state.bits.contains_any(bits) {
                    return true;
                }
                cursor = current.move_next();
            }
            false
        })
    }

    #[cfg(qgroup_rs_testing)]
    /// Whether every byte of `[start, end]` carries all of `bits`
    /// (upstream `test_range_bit`).
    pub(crate) fn test_bits(&self, start: u64, end: u64, bits: ExtentBits) -> Result<bool> {
        let mut next = start;
        let mut covered = true;
        self.for_each_state(start, end, |range, state_bits| {
            if range.start != next || !state_bits.contains_all(bits) {
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
        out: &mut impl RangeSink,
    ) -> Result {
        self.ranges_where(start, end, |b| b.contains_any(bits), out)
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
        out: &mut impl RangeSink,
    ) -> Result {
        check_range(start, end)?;
        let mut pos = start;
        let mut room = 4usize;
        // Copy into the room `out` has; allocate only when it runs out, so
        // a range with no such bits costs no allocation at all.
        loop {
            let mut stopped = None;
            self.for_each_state(pos, end, |range, state_bits| {
                if stopped.is_none() && wanted(state_bits) && !out.push_coalesced(range) {
                    stopped = Some(range.start);
                }
            })?;
            match stopped {
                None => return Ok(()),
                Some(at) => {
                    pos = at;
                    out.reserve(room)?;
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
}
