// SPDX-License-Identifier: GPL-2.0

//! The `control` file: parses each write, runs it on the instance (or
//! starts a `stress` run), and keeps the `result` line.

use kernel::{
    fmt, new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Mutex,
    },
};

use crate::{
    command::{self, Command, StressMix},
    failure::{errno_name, fail, QResult},
    fs::{FsState, Outcome},
    stress,
};

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
        let _ = fmt::Write::write_str(&mut line, "ok");
        line
    }

    pub(crate) fn set(&mut self, args: fmt::Arguments<'_>) {
        self.len = 0;
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
        let outcome = command::parse(input).and_then(|cmd| match cmd {
            Command::Stress {
                threads,
                ops,
                seed,
                mix,
            } => self.stress(threads, ops, seed, mix),
            Command::Reset => self.reset(),
            Command::Bench(scale) => Ok(Outcome::one("rows", crate::bench::run(scale)?)),
            cmd => self.fs.execute(cmd),
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
    fn stress(&self, threads: u64, ops: u64, seed: u64, mix: StressMix) -> QResult<Outcome> {
        if self.stressing.xchg(true, Relaxed) {
            fail!(EBUSY, "a stress run is in progress");
        }
        let outcome = stress::run(&self.fs, threads, ops, seed, mix);
        self.stressing.store(false, Relaxed);
        outcome
    }

    /// `reset`: EBUSY while a `stress` run is in progress (its workers work
    /// on the instance until they are done); the two exclude each other.
    fn reset(&self) -> QResult<Outcome> {
        if self.stressing.xchg(true, Relaxed) {
            fail!(EBUSY, "a stress run is in progress");
        }
        let outcome = self.fs.execute(Command::Reset);
        self.stressing.store(false, Relaxed);
        outcome
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
