// SPDX-License-Identifier: GPL-2.0

//! The instance gate: data commands share the instance, instance-wide
//! commands and the reads have it to themselves (SPEC §6).
//!
//! The kernel crate has no rwsem; the gate is a counter under a
//! [`Mutex`] with a [`CondVar`], the classic reader/writer lock. It is
//! writer-preferring: once an instance-wide command waits, new data commands
//! wait behind it, so a stream of writes cannot starve a `commit`. The
//! mutex is held only to update the counters, never while a command runs.

use kernel::{
    new_condvar, new_mutex,
    prelude::*,
    sync::{CondVar, Mutex},
};

/// Who holds the gate.
struct GateState {
    /// Data commands running.
    shared: usize,
    /// An instance-wide command or read is running.
    exclusive: bool,
    /// Instance-wide commands waiting for the running data commands.
    waiting: usize,
}

/// The instance gate.
#[pin_data]
pub(crate) struct Gate {
    #[pin]
    state: Mutex<GateState>,
    #[pin]
    changed: CondVar,
}

/// A data command's hold on the gate; dropping it lets the instance-wide
/// commands in once the last data command is done.
pub(crate) struct SharedGuard<'a>(&'a Gate);

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
            }, "Gate::state"),
            changed <- new_condvar!("Gate::changed"),
        })
    }

    /// Enters as a data command: waits while an instance-wide command runs
    /// or waits.
    pub(crate) fn shared(&self) -> SharedGuard<'_> {
        let mut state = self.state.lock();
        while state.exclusive || state.waiting > 0 {
            self.changed.wait(&mut state);
        }
        state.shared += 1;
        SharedGuard(self)
    }

    /// Enters alone: waits for the running data commands to finish and keeps
    /// new ones out.
    pub(crate) fn exclusive(&self) -> ExclusiveGuard<'_> {
        let mut state = self.state.lock();
        state.waiting += 1;
        while state.exclusive || state.shared > 0 {
            self.changed.wait(&mut state);
        }
        state.waiting -= 1;
        state.exclusive = true;
        ExclusiveGuard(self)
    }
}

impl Drop for SharedGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.shared -= 1;
        if state.shared == 0 && state.waiting > 0 {
            self.0.changed.notify_all();
        }
    }
}

impl Drop for ExclusiveGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.exclusive = false;
        self.0.changed.notify_all();
    }
}
