// SPDX-License-Identifier: GPL-2.0

//! Device space: what the instance has in use against its `capacity`
//! (SPEC §7).
//!
//! Space in use is every DELALLOC byte, every byte backed by an extent
//! (committed or not), every extent byte dropped since the last commit
//! (pinned until the commit, as btrfs pins freed extents), and every meta
//! reservation. Commands take space before they change anything, so no
//! counter or sum of bytes can pass `capacity` (at most 2^63), and give it
//! back when they free it. Moving bytes between those kinds (writeback,
//! truncate, commit) never takes space and so never fails.

use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

use crate::failure::{fail, QResult};

/// The instance's space in use.
///
/// # Invariants
///
/// `used <= capacity` ([`Space::take`] is the only way up), and `pinned`
/// counts bytes that are part of `used`.
pub(crate) struct Space {
    capacity: u64,
    /// Bytes in use.
    used: Atomic<u64>,
    /// Extent bytes dropped since the last commit, part of `used`.
    pinned: Atomic<u64>,
}

impl Space {
    /// An empty device of `capacity` bytes.
    pub(crate) const fn new(capacity: u64) -> Self {
        Self {
            capacity,
            used: Atomic::new(0),
            pinned: Atomic::new(0),
        }
    }

    /// Bytes in use.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Relaxed)
    }

    /// Takes `n` bytes, or fails with ENOSPC and takes nothing.
    pub(crate) fn take(&self, n: u64) -> QResult {
        let mut used = self.used.load(Relaxed);
        loop {
            let new = match used.checked_add(n) {
                Some(new) if new <= self.capacity => new,
                _ => fail!(
                    ENOSPC,
                    "no space: {} of {} bytes in use, {} more wanted",
                    used,
                    self.capacity,
                    n
                ),
            };
            match self.used.cmpxchg(used, new, Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    /// Gives back `n` bytes taken before.
    pub(crate) fn give(&self, n: u64) {
        let mut used = self.used.load(Relaxed);
        loop {
            // Saturate: giving back more than is in use would be a bookkeeping
            // bug, never a reason to wrap.
            match self.used.cmpxchg(used, used.saturating_sub(n), Relaxed) {
                Ok(_) => return,
                Err(now) => used = now,
            }
        }
    }

    /// Notes `n` bytes of dropped extents, pinned until the next commit (they
    /// stay in use: dropping takes and gives nothing).
    pub(crate) fn pin(&self, n: u64) {
        // INVARIANT: pinned bytes were backed bytes, part of `used`.
        self.pinned.add(n, Relaxed);
    }

    /// Whether extent bytes were dropped since the last commit.
    pub(crate) fn any_pinned(&self) -> bool {
        self.pinned.load(Relaxed) != 0
    }

    /// At commit: gives back every pinned byte.
    pub(crate) fn unpin_all(&self) {
        let pinned = self.pinned.xchg(0, Relaxed);
        self.give(pinned);
    }

    /// Forgets everything (reset).
    pub(crate) fn clear(&self) {
        self.used.store(0, Relaxed);
        self.pinned.store(0, Relaxed);
    }
}
