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
    ranges: KVec<ByteRange>,
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
        &self.ranges
    }

    #[cfg(qgroup_rs_testing)]
    /// A copy of the changeset.
    pub(crate) fn try_clone(&self) -> Result<Self> {
        let mut ranges = KVec::with_capacity(self.ranges.len(), GFP_KERNEL)?;
        for &r in self.ranges.iter() {
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
    /// Allocates with `GFP_KERNEL`: call it with no spinlock held.
    pub(crate) fn make_room(&mut self, n: usize) -> Result {
        Ok(self.ranges.reserve(n, GFP_KERNEL)?)
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
            .last()
            .is_none_or(|last| first.start >= last.start);
        for &range in added {
            if !in_order || !push_coalesced(&mut self.ranges, range) {
                // INVARIANT: the caller made room for `added` (see above).
                kernel::warn_on!(self.ranges.push_within_capacity(range).is_err());
            }
        }
        if in_order {
            return;
        }
        // Out of order: sort in place (no allocation), then coalesce.
        self.ranges.sort_unstable_by_key(|r| r.start);
        let mut kept = 0usize;
        for i in 0..self.ranges.len() {
            let range = self.ranges[i];
            if kept > 0 && range.start <= self.ranges[kept - 1].end.saturating_add(1) {
                let last = &mut self.ranges[kept - 1];
                last.end = last.end.max(range.end);
            } else {
                self.ranges[kept] = range;
                kept += 1;
            }
        }
        self.ranges.truncate(kept);
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
