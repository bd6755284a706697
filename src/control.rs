// SPDX-License-Identifier: GPL-2.0

//! The `control` file: parses each write, runs it on the instance (or
//! runs a tool: `stress`, `bench`), and keeps the `result` line in the
//! reply format of SPEC §2.

use kernel::{
    fmt, new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Mutex,
    },
};

#[cfg(qgroup_rs_testing)]
use crate::tools::{
    bench,
    stress::{self, StressMix, StressReport},
};
use crate::{
    command::{self, Request},
    failure::{errno_name, fail, QResult},
    fs::{
        op::{InstanceOp, Op, Reply},
        FsState,
    },
};

/// What a successful command reports after `ok`: up to three `key=value`
/// pairs, in order.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Outcome {
    pairs: [(&'static str, u64); 3],
    len: usize,
}

impl Outcome {
    /// Nothing to report.
    pub(crate) const NONE: Self = Self {
        pairs: [("", 0); 3],
        len: 0,
    };

    /// One pair.
    pub(crate) fn one(key: &'static str, value: u64) -> Self {
        Self::NONE.and(key, value)
    }

    /// `self` with one more pair (a fourth is dropped).
    pub(crate) fn and(mut self, key: &'static str, value: u64) -> Self {
        if let Some(slot) = self.pairs.get_mut(self.len) {
            *slot = (key, value);
            self.len += 1;
        }
        self
    }

    /// The pairs.
    pub(crate) fn pairs(&self) -> &[(&'static str, u64)] {
        &self.pairs[..self.len]
    }

    #[cfg(qgroup_rs_testing)]
    /// The value of `key`, if reported.
    pub(crate) fn get(&self, key: &str) -> Option<u64> {
        self.pairs()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|&(_, v)| v)
    }
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Self {
        match reply {
            Reply::Done => Self::NONE,
            Reply::Reserved(n) => Self::one("reserved", n),
            Reply::Written { reserved, written } => {
                Self::one("reserved", reserved).and("written", written)
            }
            Reply::Freed(n) => Self::one("freed", n),
            Reply::Released(n) => Self::one("released", n),
            Reply::Inconsistent => Self::one("inconsistent", 1),
        }
    }
}

#[cfg(qgroup_rs_testing)]
impl From<StressReport> for Outcome {
    fn from(report: StressReport) -> Self {
        Self::one("ops", report.ops)
            .and("edquot", report.edquot)
            .and("elapsed_ns", report.elapsed_ns)
    }
}

/// The `result` line: `ok [key=value]` or `error ERRNO message`.
pub(crate) struct ResultLine {
    buf: [u8; 192],
    len: usize,
}

impl ResultLine {
    fn new() -> Self {
        let mut line = Self {
            buf: [0; 192],
            len: 0,
        };
        // The line is cut at its capacity; writing never fails.
        let _ = fmt::Write::write_str(&mut line, "ok");
        line
    }

    pub(crate) fn set(&mut self, args: fmt::Arguments<'_>) {
        self.len = 0;
        // As above: cut at the capacity, never failing.
        let _ = fmt::Write::write_fmt(self, args);
    }

    /// The line, without newline.
    pub(crate) fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for ResultLine {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            // Keep `result` one line of printable text.
            let c = if c.is_control() { ' ' } else { c };
            let mut tmp = [0u8; 4];
            let bytes = c.encode_utf8(&mut tmp).as_bytes();
            if self.len + bytes.len() > self.buf.len() {
                break;
            }
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
        Ok(())
    }
}

/// The filesystem instance behind the `control` file, and the `result`
/// line.
///
/// Commands run concurrently (SPEC §6): the instance does its own locking.
/// `result` has its own mutex, taken only to store or print the line, so
/// it shows the outcome of the last command to finish.
#[pin_data]
pub(crate) struct Control {
    fs: Arc<FsState>,
    #[pin]
    result: Mutex<ResultLine>,
    /// A `stress` run is in progress.
    stressing: Atomic<bool>,
}

impl Control {
    /// A control holding the instance `fs`.
    pub(crate) fn new(fs: Arc<FsState>) -> impl PinInit<Self> {
        pin_init!(Self {
            fs,
            result <- new_mutex!(ResultLine::new(), "Control::result"),
            stressing: Atomic::new(false),
        })
    }

    /// The instance.
    pub(crate) fn fs(&self) -> &FsState {
        &self.fs
    }

    /// The `result` line.
    pub(crate) fn result(&self) -> kernel::sync::MutexGuard<'_, ResultLine> {
        self.result.lock()
    }

    /// Runs the command in `input` (the bytes of one write) and records its
    /// outcome in `result`. Bad input changes nothing but `result`.
    pub(crate) fn run(&self, input: &[u8]) -> Result {
        let outcome = command::parse(input).and_then(|request| match request {
            Request::Op(Op::Instance(InstanceOp::Reset)) => self.reset(),
            Request::Op(op) => self.fs.execute(op).map(Outcome::from),
            #[cfg(qgroup_rs_testing)]
            Request::Stress {
                threads,
                ops,
                seed,
                mix,
            } => self.stress(threads, ops, seed, mix),
            #[cfg(qgroup_rs_testing)]
            Request::Bench(scale) => Ok(Outcome::one("rows", bench::run(scale)?)),
        });
        let mut result = self.result.lock();
        match outcome {
            Ok(outcome) => {
                result.set(format_args!("{}", OkLine(&outcome)));
                Ok(())
            }
            Err(failure) => {
                result.set(format_args!(
                    "error {} {}",
                    errno_name(failure.errno()),
                    failure.msg()
                ));
                Err(failure.errno())
            }
        }
    }

    /// `stress`: one run at a time (EBUSY otherwise).
    #[cfg(qgroup_rs_testing)]
    fn stress(&self, threads: u64, ops: u64, seed: u64, mix: StressMix) -> QResult<Outcome> {
        if self.stressing.xchg(true, Relaxed) {
            fail!(EBUSY, "a stress run is in progress");
        }
        let outcome = stress::run(&self.fs, threads, ops, seed, mix);
        self.stressing.store(false, Relaxed);
        outcome.map(Outcome::from)
    }

    /// `reset`: EBUSY while a `stress` run is in progress (its workers work
    /// on the instance until they are done); the two exclude each other.
    fn reset(&self) -> QResult<Outcome> {
        if self.stressing.xchg(true, Relaxed) {
            fail!(EBUSY, "a stress run is in progress");
        }
        let outcome = self.fs.execute(InstanceOp::Reset.into());
        self.stressing.store(false, Relaxed);
        outcome.map(Outcome::from)
    }

    /// Reports a write that could not even be read (too long, bad address).
    pub(crate) fn reject(&self, errno: Error, why: &str) {
        self.result
            .lock()
            .set(format_args!("error {} {}", errno_name(errno), why));
    }
}

/// `ok` and the outcome's `key=value` pairs.
struct OkLine<'a>(&'a Outcome);

impl core::fmt::Display for OkLine<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ok")?;
        for (key, value) in self.0.pairs() {
            write!(f, " {key}={value}")?;
        }
        Ok(())
    }
}
