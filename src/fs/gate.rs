// SPDX-License-Identifier: GPL-2.0

//! The instance gate: data commands share the instance, instance-wide
//! commands and the reads have it to themselves (SPEC §6).
//!
//! The kernel crate has no rwsem; the gate is a counter under a
//! [`Mutex`] with a [`CondVar`], a reader/writer lock that is fair both
//! ways (phase-fair):
//! - an instance-wide command that waits keeps new data commands out, so a
//!   stream of writes cannot starve a `commit`;
//! - a data command that waits is let in as soon as the exclusive section
//!   it waited behind ends, before any later exclusive section, so two
//!   shells looping `cat check` cannot starve the writes either.
//!
//! While no instance-wide command runs or waits, a data command enters
//! and leaves by a fast path that touches only a counter of its CPU's own
//! (percpu-rwsem style): one fully ordered increment and a check of the
//! `blocked` flag, no shared cache line written. An instance-wide command
//! raises `blocked` (new data commands then take the mutex path above)
//! and waits until the per-CPU counts drain; a data command leaving by the
//! fast path while `blocked` is up wakes it.
//!
//! Both sides spin a little (up to [`SPIN_NS`]) before they sleep: a data
//! command queued behind an exclusive section waits for it to end (it is
//! counted as queued while it spins, so it is let in before any later
//! exclusive section, as when it sleeps), and an instance-wide command
//! whose only wait is for fast-path data commands waits for them to
//! leave. Sections last microseconds, and a sleep and a
//! wake-up across CPUs cost more than that (most of all on an emulated
//! machine, where `make bench`'s two-worker stress row gained about a
//! third from it). The spin only delays the normal path: the rules above
//! are unchanged.
//!
//! The mutex is held only to update the counters, never while a command
//! runs; lockdep sees only that short inner mutex (the kernel crate has no
//! lockdep map for a lock of our own), so the order of the gate against
//! the inode locks is argued in the crate root and exercised by the KUnit
//! suite `qgroup_rs_concurrency`.

use kernel::{
    cpu::CpuId,
    new_condvar, new_mutex,
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Full, Relaxed, Release},
        CondVar, Mutex,
    },
    time::{Instant, Monotonic},
};

/// Per-CPU counters of a gate; CPU `c` uses counter `c % READER_SLOTS`
/// (CPUs that share one stay correct: a command leaves by the counter it
/// entered by). 16 cache lines keep the gate at 1 KiB.
const READER_SLOTS: usize = 16;

/// The data commands that entered by the fast path on one CPU (or left on
/// another: a command leaves by the counter it entered by), alone on its
/// cache line.
#[repr(align(64))]
struct ReaderSlot(Atomic<u64>);

/// Who holds the gate, and who waits.
///
/// # Invariants
///
/// - `exclusive` and `shared > 0` never hold at once.
/// - `shared` counts the live [`SharedGuard`]s of the mutex path,
///   `waiting` the callers waiting in [`Gate::exclusive`], `queued +
///   entitled` those waiting in [`Gate::shared`]; so no decrement of them
///   goes below zero.
struct GateState {
    /// Data commands running.
    shared: usize,
    /// An instance-wide command or read is running.
    exclusive: bool,
    /// Instance-wide commands waiting.
    waiting: usize,
    /// Exclusive sections ended so far: a data command that waited since
    /// before the latest end is entitled to go first.
    ended: u64,
    /// Data commands waiting that are not entitled yet (no exclusive
    /// section ended since they began to wait).
    queued: usize,
    /// Data commands waiting that are entitled: the next exclusive section
    /// waits for them.
    entitled: usize,
}

/// The instance gate.
///
/// # Invariants
///
/// `blocked` is up whenever `state.exclusive` or `state.waiting > 0`, so
/// no data command enters by the fast path then; the sum of `readers`
/// counts the live [`SharedGuard`]s of the fast path.
#[pin_data]
pub(crate) struct Gate {
    #[pin]
    state: Mutex<GateState>,
    #[pin]
    changed: CondVar,
    /// An instance-wide command runs or waits.
    blocked: Atomic<bool>,
    /// A copy of [`GateState::ended`], for data commands spinning without
    /// the mutex.
    ended: Atomic<u64>,
    readers: [ReaderSlot; READER_SLOTS],
}

/// A data command's hold on the gate; dropping it lets the instance-wide
/// commands in once the last data command is done. `slot` is the per-CPU
/// counter it entered by, `None` for the mutex path.
pub(crate) struct SharedGuard<'a> {
    gate: &'a Gate,
    slot: Option<usize>,
}

/// An instance-wide command's hold on the gate: no data command runs while
/// it lives.
pub(crate) struct ExclusiveGuard<'a>(&'a Gate);

impl Gate {
    /// An open gate.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            state <- new_mutex!(GateState {
                shared: 0,
                exclusive: false,
                waiting: 0,
                ended: 0,
                queued: 0,
                entitled: 0,
            }, "Gate::state"),
            changed <- new_condvar!("Gate::changed"),
            blocked: Atomic::new(false),
            ended: Atomic::new(0),
            readers: [const { ReaderSlot(Atomic::new(0)) }; READER_SLOTS],
        })
    }

    /// Data commands inside by the fast path, over all CPUs.
    fn fast_readers(&self) -> u64 {
        self.readers
            .iter()
            .map(|slot| slot.0.load(Acquire))
            .fold(0, u64::wrapping_add)
    }

    /// Leaves by the fast path: the counter of `slot` drops, and an
    /// instance-wide command waiting for the counts to drain is woken.
    fn leave_fast(&self, slot: usize) {
        // Fully ordered: the check of `blocked` below cannot pass before
        // the decrement, as `exclusive`'s reads of the counters cannot pass
        // its raising of `blocked`; one of the two sees the other.
        self.readers[slot].0.fetch_sub(1, Full);
        if self.blocked.load(Relaxed) {
            // Under the mutex: a waiter has either not read the counters
            // yet, or sleeps on `changed` and is woken.
            let _state = self.state.lock();
            self.changed.notify_all();
        }
    }

    /// Enters as a data command: waits while an instance-wide command runs
    /// or waits, but only until one exclusive section has ended since it
    /// began to wait.
    pub(crate) fn shared(&self) -> SharedGuard<'_> {
        if !self.blocked.load(Acquire) {
            let slot = CpuId::current().as_u32() as usize % READER_SLOTS;
            // Fully ordered, paired with `exclusive`'s raising of `blocked`
            // (see `leave_fast`).
            self.readers[slot].0.fetch_add(1, Full);
            if !self.blocked.load(Acquire) {
                return SharedGuard {
                    gate: self,
                    slot: Some(slot),
                };
            }
            self.leave_fast(slot);
        }
        let mut state = self.state.lock();
        if state.exclusive || state.waiting > 0 {
            let since = state.ended;
            state.queued += 1;
            // Queued, so entitled when the section ends: spin a little for
            // that before sleeping, then check again under the mutex.
            drop(state);
            spin_while(|| self.blocked.load(Relaxed) && self.ended.load(Acquire) == since);
            state = self.state.lock();
            while state.exclusive || (state.waiting > 0 && state.ended == since) {
                self.changed.wait(&mut state);
            }
            if state.ended == since {
                // Let in by the last exclusive waiter leaving: never
                // counted as entitled.
                state.queued -= 1;
            } else {
                state.entitled -= 1;
                if state.entitled == 0 {
                    // The next exclusive section may go once we are done.
                    self.changed.notify_all();
                }
            }
        }
        state.shared += 1;
        SharedGuard {
            gate: self,
            slot: None,
        }
    }

    /// Enters alone: waits for the running data commands, and for those
    /// that waited behind the previous exclusive section, to finish, and
    /// keeps new ones out.
    pub(crate) fn exclusive(&self) -> ExclusiveGuard<'_> {
        let mut state = self.state.lock();
        state.waiting += 1;
        // Fully ordered: the counters are read after `blocked` is up.
        self.blocked.xchg(true, Full);
        if state.shared == 0 && !state.exclusive && state.entitled == 0 {
            // Only data commands inside by the fast path: they leave soon.
            drop(state);
            spin_while(|| self.fast_readers() > 0);
            state = self.state.lock();
        }
        while state.exclusive || state.shared > 0 || state.entitled > 0 || self.fast_readers() > 0 {
            self.changed.wait(&mut state);
        }
        state.waiting -= 1;
        state.exclusive = true;
        ExclusiveGuard(self)
    }
}

/// Longest a gate spins, in nanoseconds, before it sleeps: a data
/// command or a commit lasts some microseconds, and a sleep and a wake-up
/// cost more than that, most of all on an emulated machine.
const SPIN_NS: i64 = 100_000;

/// Spins while `busy` holds, for at most [`SPIN_NS`].
fn spin_while(mut busy: impl FnMut() -> bool) {
    if !busy() {
        return;
    }
    let start = Instant::<Monotonic>::now();
    while busy() && start.elapsed().as_nanos() < SPIN_NS {
        core::hint::spin_loop();
    }
}

impl Drop for SharedGuard<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.gate.leave_fast(slot);
            return;
        }
        let mut state = self.gate.state.lock();
        // PANIC: none; this guard is counted in `shared`.
        state.shared -= 1;
        if state.shared == 0 && state.waiting > 0 {
            self.gate.changed.notify_all();
        }
    }
}

impl Drop for ExclusiveGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.exclusive = false;
        state.ended += 1;
        self.0.ended.store(state.ended, Release);
        // Every data command waiting now goes before the next exclusive
        // section.
        state.entitled += core::mem::take(&mut state.queued);
        if state.waiting == 0 {
            self.0.blocked.store(false, Release);
        }
        self.0.changed.notify_all();
    }
}
