// SPDX-License-Identifier: GPL-2.0

//! Extent changesets: which byte ranges an io tree operation really changed.
//!
//! The Rust counterpart of upstream's `struct extent_changeset`. A changeset
//! is owned by its caller and may be handed to several io tree operations in
//! turn; it accumulates the ranges whose bits each of them actually flipped
//! and the total number of such bytes. Upstream kept that total in a `u32`,
//! which overflowed for reservations of 4 GiB and more; here it is a `u64`.

use kernel::prelude::*;

/// An inclusive byte range `[start, end]`, as upstream writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ByteRange {
    /// First byte of the range.
    pub(crate) start: u64,
    /// Last byte of the range (inclusive).
    pub(crate) end: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    ///
    /// Ranges never end at `u64::MAX` (the io tree refuses such ranges), so
    /// the length always fits.
    pub(crate) fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// The part of `self` inside `other`, if any.
    pub(crate) fn intersect(&self, other: &ByteRange) -> Option<ByteRange> {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start <= end).then_some(ByteRange { start, end })
    }
}

/// The ranges an operation changed, in ascending order, coalesced.
///
/// # Invariants
///
/// `ranges` is sorted by `start`, no two ranges overlap or touch
/// (`prev.end + 1 < next.start`), and `bytes_changed` is the sum of the bytes
/// every recording operation flipped (it can exceed the size of `ranges` when
/// the same bytes were flipped by two operations).
#[derive(Default)]
pub(crate) struct ExtentChangeset {
    bytes_changed: u64,
    /// Most changesets record one range: it needs no allocation.
    ranges: RangeList<1>,
}

impl ExtentChangeset {
    /// An empty changeset.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    #[cfg(qgroup_rs_testing)]
    /// Total bytes whose bits were flipped by the operations that recorded here.
    pub(crate) fn bytes_changed(&self) -> u64 {
        self.bytes_changed
    }

    /// The recorded ranges, ascending and coalesced.
    pub(crate) fn ranges(&self) -> &[ByteRange] {
        self.ranges.as_slice()
    }

    #[cfg(qgroup_rs_testing)]
    /// A copy of the changeset.
    pub(crate) fn try_clone(&self) -> Result<Self> {
        let mut ranges = RangeList::default();
        ranges.reserve(self.ranges.len())?;
        for &r in self.ranges.as_slice() {
            // INVARIANT: room for every range was made above.
            kernel::warn_on!(ranges.push_within_capacity(r).is_err());
        }
        Ok(Self {
            bytes_changed: self.bytes_changed,
            ranges,
        })
    }

    /// Makes room for `n` more ranges, so that a
    /// [`Self::merge_within_capacity`] of up to `n` ranges cannot fail.
    /// Allocates with `GFP_KERNEL` (unless they fit inline): call it with
    /// no spinlock held.
    pub(crate) fn make_room(&mut self, n: usize) -> Result {
        self.ranges.reserve(n)
    }

    /// Whether `n` more ranges fit without allocating.
    pub(crate) fn has_room(&self, n: usize) -> bool {
        self.ranges.capacity() - self.ranges.len() >= n
    }

    /// Adds the ranges one operation recorded, `added` (ascending,
    /// coalesced), which flipped `bytes` bytes in all. Never allocates:
    /// [`Self::has_room`] must hold for `added.len()`; should it not (a
    /// bug), it warns (`WARN_ON`) and the ranges that do not fit are not
    /// recorded.
    pub(crate) fn merge_within_capacity(&mut self, added: &[ByteRange], bytes: u64) {
        // A statistic: saturate rather than fail on absurd totals.
        self.bytes_changed = self.bytes_changed.saturating_add(bytes);
        let Some(first) = added.first() else {
            return;
        };
        // The common case: the new ranges come after the recorded ones.
        let in_order = self
            .ranges
            .as_slice()
            .last()
            .is_none_or(|last| first.start >= last.start);
        for &range in added {
            if !in_order || !self.ranges.push_coalesced(range) {
                // INVARIANT: the caller made room for `added` (see above).
                kernel::warn_on!(self.ranges.push_within_capacity(range).is_err());
            }
        }
        if in_order {
            return;
        }
        // Out of order: sort in place (no allocation), then coalesce.
        let ranges = self.ranges.as_mut_slice();
        ranges.sort_unstable_by_key(|r| r.start);
        let mut kept = 0usize;
        for i in 0..ranges.len() {
            let range = ranges[i];
            if !join(ranges[..kept].last_mut(), range) {
                ranges[kept] = range;
                kept += 1;
            }
        }
        self.ranges.truncate(kept);
    }
}

/// Joins `range` to `last` when they overlap or touch; returns whether it
/// did.
fn join(last: Option<&mut ByteRange>, range: ByteRange) -> bool {
    match last {
        Some(last) if range.start <= last.end.saturating_add(1) => {
            last.end = last.end.max(range.end);
            true
        }
        _ => false,
    }
}

/// Appends `range` to the ascending list `ranges`, joining it with the last
/// range when they overlap or touch.
///
/// Never allocates: `ranges` must have room for one more entry unless `range`
/// joins the last one. Returns `false` (and changes nothing) when it would
/// need to grow.
pub(crate) fn push_coalesced(ranges: &mut KVec<ByteRange>, range: ByteRange) -> bool {
    join(ranges.last_mut(), range) || ranges.push_within_capacity(range).is_ok()
}

/// An ascending list of byte ranges a query fills under a spinlock: it
/// appends without allocating, and grows with no lock held.
pub(crate) trait RangeSink {
    /// Appends `range`, joining it with the last range when they overlap
    /// or touch; `false` (and nothing changed) when there is no room.
    fn push_coalesced(&mut self, range: ByteRange) -> bool;

    /// Makes room for `n` more ranges (`GFP_KERNEL`).
    fn reserve(&mut self, n: usize) -> Result;
}

impl RangeSink for KVec<ByteRange> {
    fn push_coalesced(&mut self, range: ByteRange) -> bool {
        push_coalesced(self, range)
    }

    fn reserve(&mut self, n: usize) -> Result {
        Ok(KVec::reserve(self, n, GFP_KERNEL)?)
    }
}

impl<const N: usize> RangeSink for RangeList<N> {
    fn push_coalesced(&mut self, range: ByteRange) -> bool {
        RangeList::push_coalesced(self, range)
    }

    fn reserve(&mut self, n: usize) -> Result {
        RangeList::reserve(self, n)
    }
}

/// A list of byte ranges whose first `N` live inline; once room for more
/// is made, all of them live in a vector. Only [`Self::reserve`]
/// allocates.
///
/// # Invariants
///
/// While `spill` has no capacity the ranges are `inline[..len]`; after,
/// they are `spill` and `len` is 0.
pub(crate) struct RangeList<const N: usize> {
    inline: [ByteRange; N],
    len: usize,
    spill: KVec<ByteRange>,
}

impl<const N: usize> Default for RangeList<N> {
    fn default() -> Self {
        Self {
            inline: [ByteRange { start: 0, end: 0 }; N],
            len: 0,
            spill: KVec::new(),
        }
    }
}

impl<const N: usize> RangeList<N> {
    /// Whether the ranges live in the vector.
    fn spilled(&self) -> bool {
        self.spill.capacity() > 0
    }

    /// Ranges that fit without allocating.
    pub(crate) fn capacity(&self) -> usize {
        if self.spilled() {
            self.spill.capacity()
        } else {
            N
        }
    }

    /// Number of ranges.
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Makes room for `n` more ranges. Allocates with `GFP_KERNEL` when
    /// they do not fit: call it with no spinlock held.
    pub(crate) fn reserve(&mut self, n: usize) -> Result {
        let len = self.len();
        if len.saturating_add(n) <= self.capacity() {
            return Ok(());
        }
        if self.spilled() {
            return Ok(self.spill.reserve(n, GFP_KERNEL)?);
        }
        let mut spill = KVec::with_capacity(len.saturating_add(n).max(1), GFP_KERNEL)?;
        for &r in &self.inline[..len] {
            // INVARIANT: room for every range was made above.
            kernel::warn_on!(spill.push_within_capacity(r).is_err());
        }
        self.spill = spill;
        self.len = 0;
        Ok(())
    }

    /// The ranges.
    pub(crate) fn as_slice(&self) -> &[ByteRange] {
        if self.spilled() {
            &self.spill
        } else {
            &self.inline[..self.len]
        }
    }

    /// The ranges, to change in place.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [ByteRange] {
        if self.spilled() {
            &mut self.spill
        } else {
            &mut self.inline[..self.len]
        }
    }

    /// Appends `range` if there is room; gives it back if not.
    pub(crate) fn push_within_capacity(&mut self, range: ByteRange) -> Result<(), ByteRange> {
        if self.spilled() {
            return self.spill.push_within_capacity(range).map_err(|e| e.0);
        }
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                *slot = range;
                self.len += 1;
                Ok(())
            }
            None => Err(range),
        }
    }

    /// Appends `range`, joining it with the last range when they overlap
    /// or touch (see [`push_coalesced`]); `false` when there is no room.
    pub(crate) fn push_coalesced(&mut self, range: ByteRange) -> bool {
        join(self.as_mut_slice().last_mut(), range) || self.push_within_capacity(range).is_ok()
    }

    /// Keeps only the ranges for which `keep` is true, in order.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&ByteRange) -> bool) {
        if self.spilled() {
            self.spill.retain(|r| keep(r));
            return;
        }
        let mut kept = 0;
        for i in 0..self.len {
            let r = self.inline[i];
            if keep(&r) {
                self.inline[kept] = r;
                kept += 1;
            }
        }
        self.len = kept;
    }

    /// Keeps the first `n` ranges.
    pub(crate) fn truncate(&mut self, n: usize) {
        if self.spilled() {
            self.spill.truncate(n);
        } else {
            self.len = self.len.min(n);
        }
    }

    /// Forgets every range, keeping the room.
    pub(crate) fn clear(&mut self) {
        self.truncate(0);
    }
}

/// A changeset name: 1 to 16 of `[a-z0-9_]`.
///
/// # Invariants
///
/// `1 <= len <= 16` and `bytes[..len]` are ASCII characters of `[a-z0-9_]`
/// (so valid UTF-8); the rest of `bytes` is zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ChangesetName {
    bytes: [u8; 16],
    len: u8,
}

impl ChangesetName {
    /// The name `s`, if valid.
    pub(crate) fn new(s: &str) -> Option<Self> {
        let valid = (1..=16).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return None;
        }
        let mut bytes = [0u8; 16];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(Self {
            bytes,
            // INVARIANT: at most 16, checked above.
            len: s.len() as u8,
        })
    }
}

impl core::fmt::Display for ChangesetName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("?");
        f.write_str(s)
    }
}

kernel_display!(ChangesetName);
