// SPDX-License-Identifier: GPL-2.0

//! Helpers shared by the KUnit suites. They assert nothing themselves (an
//! assertion outside a `#[kunit_tests]` module would be a panic, not a
//! failed test): they return values for the tests to check.

use kernel::{fmt, prelude::*};

use kernel::sync::Arc;

use crate::{
    command::{self, Request},
    control::Outcome,
    failure::{fail, QResult},
    fs::FsState,
    limits::MAX_CAPACITY,
    qgroup::{Counters, QgroupId, RsvType},
};

/// A fresh instance with the default sizes and capacity.
pub(crate) fn new_fs() -> Result<Arc<FsState>> {
    FsState::new(4096, 16384, MAX_CAPACITY)
}

/// Parses and runs one command, as a write to `control` would (the tools,
/// `stress` and `bench`, aside: the control file runs them).
pub(crate) fn run(fs: &FsState, cmd: &str) -> QResult<Outcome> {
    match command::parse(cmd.as_bytes())? {
        Request::Op(op) => fs.execute(op).map(Outcome::from),
        Request::Stress { .. } | Request::Bench(_) => fail!(EINVAL, "a tool, not an operation"),
    }
}

/// The errno of a command, or 0 when it succeeded.
pub(crate) fn errno_of(result: &QResult<Outcome>) -> i32 {
    match result {
        Ok(_) => 0,
        Err(f) => f.errno().to_errno(),
    }
}

/// Runs `cmd` and returns the value it reported (0 if none), or the errno
/// as a negative number.
pub(crate) fn value(fs: &FsState, cmd: &str) -> i64 {
    match run(fs, cmd) {
        Ok(outcome) => outcome.pairs().first().map_or(0, |&(_, v)| v as i64),
        Err(f) => i64::from(f.errno().to_errno()),
    }
}

/// An errno as [`value`] reports it.
pub(crate) fn err(errno: Error) -> i64 {
    i64::from(errno.to_errno())
}

/// The counters of qgroup `level/id`, if it exists.
pub(crate) fn counters(fs: &FsState, level: u64, id: u64) -> Option<Counters> {
    let id = QgroupId::new(level, id)?;
    let snapshot = fs.qgroups().snapshot().ok()?;
    snapshot.get(id).map(|q| q.counters)
}

/// Counters as `[rfer, excl, data, meta_prealloc, meta_pertrans, reserved]`.
pub(crate) fn flat(c: Option<Counters>) -> [u64; 6] {
    c.map_or([u64::MAX; 6], |c| {
        [
            c.rfer,
            c.excl,
            c.may_use(RsvType::Data),
            c.may_use(RsvType::MetaPrealloc),
            c.may_use(RsvType::MetaPertrans),
            c.reserved,
        ]
    })
}

/// Text collected from formatted output.
pub(crate) struct Text(pub(crate) KVec<u8>);

impl fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0
            .extend_from_slice(s.as_bytes(), GFP_KERNEL)
            .map_err(|_| fmt::Error)
    }
}

impl Text {
    /// Whether the text contains `needle`.
    pub(crate) fn contains(&self, needle: &str) -> bool {
        self.0
            .windows(needle.len().max(1))
            .any(|w| w == needle.as_bytes())
    }

    /// The text (empty if not UTF-8).
    pub(crate) fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// Every `check` violation of `fs`, one a line.
pub(crate) fn violations(fs: &FsState) -> Result<(usize, Text)> {
    let mut text = Text(KVec::new());
    let n = fs.check(|args| {
        let _ = fmt::Write::write_fmt(&mut text, format_args!("{args}\n"));
    })?;
    Ok((n, text))
}

/// Runs `cmd` and says whether it succeeded; prints the failure otherwise.
pub(crate) fn succeeds(fs: &FsState, cmd: &str) -> bool {
    match run(fs, cmd) {
        Ok(_) => true,
        Err(f) => {
            pr_err!("'{}' failed: {}\n", cmd, f.msg());
            false
        }
    }
}

/// Whether `check` passes; prints the violations (found after `after`)
/// otherwise.
pub(crate) fn is_clean(fs: &FsState, after: &str) -> bool {
    match violations(fs) {
        Ok((0, _)) => true,
        Ok((_, text)) => {
            pr_err!("check after '{}':\n{}", after, text.as_str());
            false
        }
        Err(_) => false,
    }
}

/// Runs each command, which must succeed, then checks every invariant.
pub(crate) fn steps(fs: &FsState, cmds: &[&str]) -> bool {
    cmds.iter()
        .all(|cmd| succeeds(fs, cmd) && is_clean(fs, cmd))
}

/// `[rfer, excl]` of qgroup `level/id` (`u64::MAX` when it does not exist).
pub(crate) fn usage(fs: &FsState, level: u64, id: u64) -> [u64; 2] {
    let c = flat(counters(fs, level, id));
    [c[0], c[1]]
}

pub(crate) use crate::tools::prng::Prng;
