// SPDX-License-Identifier: GPL-2.0

//! Underflow reporting: a decrement larger than its counter clamps the
//! counter at 0; the operation notes it under the lock, and it is counted
//! and logged (rate-limited) after the lock is dropped.

use kernel::{
    prelude::*,
    sync::atomic::Relaxed,
    time::Instant, //
};

use super::{Counter, QgroupId, QgroupTree};

/// A counter decrement that had to be clamped.
#[derive(Clone, Copy)]
pub(super) struct Underflow {
    /// The qgroup whose counter it was.
    pub(super) qgroupid: QgroupId,
    /// The counter.
    pub(super) counter: Counter,
    /// What the counter held.
    pub(super) have: u64,
    /// What was to be taken off it.
    pub(super) free: u64,
}

/// Underflows of one operation: the first few, and how many in all.
#[derive(Default)]
pub(super) struct Underflows {
    first: [Option<Underflow>; 4],
    count: usize,
}

impl Underflows {
    /// Notes one underflow (kept if it is among the first few).
    pub(super) fn note(&mut self, underflow: Underflow) {
        if let Some(slot) = self.first.get_mut(self.count) {
            *slot = Some(underflow);
        }
        // PANIC: none; one note a counter change, far fewer than 2^64.
        self.count += 1;
    }
}

/// Messages printed at most per window.
const BURST: u32 = 10;
/// The rate limit window, in milliseconds.
const WINDOW_MS: i64 = 5000;

impl QgroupTree {
    /// Counts and logs the underflows of one operation, rate-limited (10
    /// per 5 s).
    pub(super) fn report(&self, log: &Underflows) {
        if log.count == 0 {
            return;
        }
        self.underflows.add(log.count as u64, Relaxed);
        let allowed = {
            let mut inner = self.inner.lock();
            let (start, printed) = &mut inner.ratelimit;
            let expired = start.is_none_or(|s| s.elapsed().as_millis() >= WINDOW_MS);
            if expired {
                *start = Some(Instant::now());
                *printed = 0;
            }
            let room = BURST.saturating_sub(*printed) as usize;
            let allowed = room.min(log.count);
            // PANIC: none; `printed + allowed <= BURST`.
            *printed += allowed as u32;
            allowed
        };
        for underflow in log.first.iter().take(allowed).flatten() {
            pr_warn!(
                "qgroup {} {} underflow, have {} to free {}\n",
                underflow.qgroupid,
                underflow.counter.name(),
                underflow.have,
                underflow.free
            );
        }
    }
}
