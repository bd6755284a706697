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
/// INVARIANT: `ranges` is sorted by `start`, no two ranges overlap or touch
/// (`prev.end + 1 < next.start`), and `bytes_changed` is the sum of the bytes
/// every recording operation flipped (it can exceed the size of `ranges` when
/// the same bytes were flipped by two operations).
#[derive(Default)]
pub(crate) struct ExtentChangeset {
    bytes_changed: u64,
    ranges: KVec<ByteRange>,
}

impl ExtentChangeset {
    /// An empty changeset.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Total bytes whose bits were flipped by the operations that recorded here.
    pub(crate) fn bytes_changed(&self) -> u64 {
        self.bytes_changed
    }

    /// The recorded ranges, ascending and coalesced.
    pub(crate) fn ranges(&self) -> &[ByteRange] {
        &self.ranges
    }

    /// Makes room for `n` more ranges, so that a [`Self::merge`] of up to
    /// `n` ranges that come after the recorded ones cannot fail.
    pub(crate) fn reserve(&mut self, n: usize) -> Result {
        Ok(self.ranges.reserve(n, GFP_KERNEL)?)
    }

    /// Adds the ranges one operation recorded, `added` (ascending, coalesced),
    /// which flipped `bytes` bytes in all.
    ///
    /// Allocates with `GFP_KERNEL`: call it with no spinlock held. On error
    /// the changeset is unchanged.
    pub(crate) fn merge(&mut self, added: &[ByteRange], bytes: u64) -> Result {
        // A statistic: saturate rather than fail on absurd totals.
        let bytes_changed = self.bytes_changed.saturating_add(bytes);
        if added.is_empty() {
            self.bytes_changed = bytes_changed;
            return Ok(());
        }
        // The common case: the new ranges come after the recorded ones.
        if self
            .ranges
            .last()
            .is_none_or(|last| added[0].start >= last.start)
        {
            self.ranges.reserve(added.len(), GFP_KERNEL)?;
            for &range in added {
                push_coalesced(&mut self.ranges, range);
            }
            self.bytes_changed = bytes_changed;
            return Ok(());
        }
        let mut merged = KVec::with_capacity(self.ranges.len() + added.len(), GFP_KERNEL)?;
        let (mut old, mut new) = (self.ranges.iter().peekable(), added.iter().peekable());
        loop {
            let next = match (old.peek(), new.peek()) {
                (Some(a), Some(b)) if a.start <= b.start => old.next(),
                (Some(_), Some(_)) | (None, Some(_)) => new.next(),
                (Some(_), None) => old.next(),
                (None, None) => break,
            };
            let Some(&range) = next else { break };
            push_coalesced(&mut merged, range);
        }
        self.ranges = merged;
        self.bytes_changed = bytes_changed;
        Ok(())
    }
}

/// Appends `range` to the ascending list `ranges`, joining it with the last
/// range when they overlap or touch.
///
/// Never allocates: `ranges` must have room for one more entry unless `range`
/// joins the last one. Returns `false` (and changes nothing) when it would
/// need to grow.
pub(crate) fn push_coalesced(ranges: &mut KVec<ByteRange>, range: ByteRange) -> bool {
    if let Some(last) = ranges.last_mut() {
        if range.start <= last.end.saturating_add(1) {
            last.end = last.end.max(range.end);
            return true;
        }
    }
    ranges.push_within_capacity(range).is_ok()
}
