// SPDX-License-Identifier: GPL-2.0

//! The command dispatcher: one command, atomically, against the filesystem
//! instance, and the `result` line it leaves.

use kernel::{fmt, new_mutex, prelude::*, sync::Mutex};

use crate::{
    command::{self, Command},
    failure::{errno_name, Failure, QResult},
    fs::FsState,
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

    fn set(&mut self, args: fmt::Arguments<'_>) {
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

/// What a successful command reports after `ok`.
type Outcome = Option<(&'static str, u64)>;

/// Runs one parsed command (other than `reset`) on `fs`.
pub(crate) fn execute(fs: &mut FsState, cmd: Command) -> QResult<Outcome> {
    let none = |r: QResult| r.map(|()| None);
    match cmd {
        Command::QuotaEnable => none(fs.quota_enable()),
        Command::QuotaDisable => none(fs.quota_disable()),
        Command::SubvolCreate(id) => none(fs.subvol_create(id)),
        Command::QgroupCreate(id) => none(fs.qgroup_create(id)),
        Command::QgroupDestroy(id) => none(fs.qgroup_destroy(id)),
        Command::QgroupAssign(child, parent) => none(fs.qgroup_assign(child, parent)),
        Command::QgroupRemove(child, parent) => none(fs.qgroup_remove(child, parent)),
        Command::QgroupLimit { excl, max, id } => none(fs.qgroup_limit(id, excl, max)),
        Command::Write(r, fail_meta) => fs
            .write(r.subvol, r.ino, r.off, r.len, fail_meta)
            .map(|n| Some(("reserved", n))),
        Command::Fallocate(r) => fs
            .fallocate(r.subvol, r.ino, r.off, r.len)
            .map(|n| Some(("reserved", n))),
        Command::Writeback(target) => none(fs.writeback(target)),
        Command::Truncate(subvol, ino, size) => none(fs.truncate(subvol, ino, size)),
        Command::Unlink(subvol, ino) => none(fs.unlink(subvol, ino)),
        Command::Commit => none(fs.commit()),
        Command::Sync => none(fs.sync()),
        Command::Reserve(r, cs) => fs
            .reserve(r.subvol, r.ino, r.off, r.len, cs)
            .map(|n| Some(("reserved", n))),
        Command::Free(r, cs) => fs
            .free(r.subvol, r.ino, r.off, r.len, cs)
            .map(|n| Some(("freed", n))),
        Command::Release(r) => fs
            .release(r.subvol, r.ino, r.off, r.len)
            .map(|n| Some(("released", n))),
        Command::ChangesetDrop(cs) => none(fs.changeset_drop(cs)),
        Command::Meta(op, subvol, bytes) => none(fs.meta(op, subvol, bytes)),
        Command::Legacy(switch, on) => {
            fs.set_legacy(switch, on);
            Ok(None)
        }
        Command::Reset => Ok(None),
        Command::Bench(scale) => Ok(Some(("rows", crate::bench::run(scale)?))),
    }
}

/// What the control lock protects.
pub(crate) struct ControlState {
    /// The filesystem instance.
    pub(crate) fs: FsState,
    /// Outcome of the last command.
    pub(crate) result: ResultLine,
}

/// The filesystem instance behind the `control` file.
///
/// Its mutex is the filesystem lock: every command and every read of a
/// debugfs file runs under it, so each command is atomic. It is the
/// outermost lock; the io tree and qgroup spinlocks nest inside it.
#[pin_data]
pub(crate) struct Control {
    #[pin]
    state: Mutex<ControlState>,
}

impl Control {
    /// A control holding a fresh instance.
    pub(crate) fn new(fs: FsState) -> impl PinInit<Self> {
        pin_init!(Self {
            state <- new_mutex!(ControlState {
                fs,
                result: ResultLine::new(),
            }, "Control::state (fs lock)"),
        })
    }

    /// Locks the instance.
    pub(crate) fn lock(&self) -> kernel::sync::MutexGuard<'_, ControlState> {
        self.state.lock()
    }

    /// Runs the command in `input` (the bytes of one write) and records its
    /// outcome in `result`. Bad input changes nothing but `result`.
    pub(crate) fn run(&self, input: &[u8]) -> Result {
        let parsed = command::parse(input);
        // A reset's new instance is built before the lock is taken.
        let fresh = match &parsed {
            Ok(Command::Reset) => {
                let (sectorsize, nodesize) = {
                    let state = self.state.lock();
                    (state.fs.sectorsize(), state.fs.nodesize())
                };
                Some(FsState::new(sectorsize, nodesize).map_err(Failure::from))
            }
            _ => None,
        };
        let mut state = self.state.lock();
        let outcome = match (parsed, fresh) {
            (Err(failure), _) => Err(failure),
            (Ok(_), Some(Err(failure))) => Err(failure),
            (Ok(_), Some(Ok(fs))) => {
                state.fs = fs;
                Ok(None)
            }
            (Ok(cmd), None) => execute(&mut state.fs, cmd),
        };
        match outcome {
            Ok(None) => {
                state.result.set(format_args!("ok"));
                Ok(())
            }
            Ok(Some((key, value))) => {
                state.result.set(format_args!("ok {key}={value}"));
                Ok(())
            }
            Err(failure) => {
                if failure.errno() == EDQUOT {
                    state.fs.note_edquot();
                }
                state.result.set(format_args!(
                    "error {} {}",
                    errno_name(failure.errno()),
                    failure.msg()
                ));
                Err(failure.errno())
            }
        }
    }

    /// Reports a write that could not even be read (too long, bad address).
    pub(crate) fn reject(&self, errno: Error, why: &str) {
        self.state
            .lock()
            .result
            .set(format_args!("error {} {}", errno_name(errno), why));
    }
}
