// SPDX-License-Identifier: GPL-2.0

//! The `control` command parser (SPEC §2): pure, no state.
//!
//! Every syntax error — unknown verb, wrong arity, bad number, zero length,
//! a range past 2^63, a level rule, a bad name — is EINVAL, found before any
//! state is looked at (SPEC §5 "Parsing").

use kernel::prelude::*;

use crate::{
    bench::Scale,
    changeset::ChangesetName,
    failure::{fail, QResult},
    legacy::LegacySwitch,
    limits::{FIRST_INO, MAX_FILE_END, MAX_STRESS_OPS, MAX_STRESS_THREADS},
    qgroup::{QgroupId, RsvType},
};

/// Which meta operation a `meta` command asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetaOp {
    /// Reserve, limit-checked.
    Reserve(RsvType),
    /// Free.
    Free(RsvType),
    /// Convert prealloc to pertrans.
    Convert,
}

/// Which inodes a `stress` run's workers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StressMix {
    /// Inodes private to each worker and inodes all workers share.
    Shared,
    /// Inodes private to each worker only.
    Private,
}

/// Longest command accepted, in bytes.
pub(crate) const MAX_COMMAND: usize = 1024;

/// A byte range of an inode: `S INO OFF LEN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileRange {
    /// Subvolume id.
    pub(crate) subvol: u64,
    /// Inode number.
    pub(crate) ino: u64,
    /// First byte.
    pub(crate) off: u64,
    /// Length in bytes (non-zero; `off + len <= 2^63`).
    pub(crate) len: u64,
}

/// One parsed command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// `quota enable`
    QuotaEnable,
    /// `quota disable`
    QuotaDisable,
    /// `subvol create ID`
    SubvolCreate(u64),
    /// `qgroup create QG`
    QgroupCreate(QgroupId),
    /// `qgroup destroy QG`
    QgroupDestroy(QgroupId),
    /// `qgroup assign CHILD PARENT`
    QgroupAssign(QgroupId, QgroupId),
    /// `qgroup remove CHILD PARENT`
    QgroupRemove(QgroupId, QgroupId),
    /// `qgroup limit [-e] SIZE|none QG`
    QgroupLimit {
        /// Exclusive (`-e`) or referenced limit.
        excl: bool,
        /// The limit, `None` to clear it.
        max: Option<u64>,
        /// The qgroup.
        id: QgroupId,
    },
    /// `write S INO OFF LEN [fail=meta]`
    Write(FileRange, bool),
    /// `fallocate S INO OFF LEN`
    Fallocate(FileRange),
    /// `writeback [S INO]`
    Writeback(Option<(u64, u64)>),
    /// `truncate S INO SIZE`
    Truncate(u64, u64, u64),
    /// `unlink S INO`
    Unlink(u64, u64),
    /// `commit`
    Commit,
    /// `sync`
    Sync,
    /// `reserve S INO OFF LEN CS`
    Reserve(FileRange, ChangesetName),
    /// `free S INO OFF LEN [CS]`
    Free(FileRange, Option<ChangesetName>),
    /// `release S INO OFF LEN`
    Release(FileRange),
    /// `changeset drop CS`
    ChangesetDrop(ChangesetName),
    /// `meta reserve|free S BYTES prealloc|pertrans`, `meta convert S BYTES`
    Meta(MetaOp, u64, u64),
    /// `legacy NAME on|off`
    Legacy(LegacySwitch, bool),
    /// `reset`
    Reset,
    /// `stress THREADS OPS SEED [shared|private]`
    Stress {
        /// Workers, 1 to 64.
        threads: u64,
        /// Commands per worker, at least 1.
        ops: u64,
        /// Seed of the workers' random choices.
        seed: u64,
        /// Which inodes the workers use.
        mix: StressMix,
    },
    /// `bench [smoke|full]`: the benchmark (smoke by default), on private
    /// structures; its rows go to the kernel log.
    Bench(Scale),
}

/// Parses a decimal number with an optional K/M/G/T suffix (powers of
/// 1024, either case).
pub(crate) fn parse_size(token: &str) -> QResult<u64> {
    let (digits, shift) = match token.as_bytes().last() {
        Some(b'k' | b'K') => (&token[..token.len() - 1], 10),
        Some(b'm' | b'M') => (&token[..token.len() - 1], 20),
        Some(b'g' | b'G') => (&token[..token.len() - 1], 30),
        Some(b't' | b'T') => (&token[..token.len() - 1], 40),
        _ => (token, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        fail!(EINVAL, "bad number '{}'", token);
    }
    let mut value = 0u64;
    for b in digits.bytes() {
        value = match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
        {
            Some(v) => v,
            None => fail!(EINVAL, "number '{}' too large", token),
        };
    }
    match value.checked_mul(1 << shift) {
        Some(v) => Ok(v),
        None => fail!(EINVAL, "number '{}' too large", token),
    }
}

/// Parses a qgroup id `level/id`.
pub(crate) fn parse_qgroupid(token: &str) -> QResult<QgroupId> {
    let parsed = token.split_once('/').and_then(|(level, id)| {
        let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !plain(level) || !plain(id) {
            return None;
        }
        QgroupId::new(level.parse().ok()?, id.parse().ok()?)
    });
    match parsed {
        Some(id) => Ok(id),
        None => fail!(EINVAL, "bad qgroup id '{}'", token),
    }
}

fn parse_ino(token: &str) -> QResult<u64> {
    let ino = parse_size(token)?;
    if ino < FIRST_INO {
        fail!(EINVAL, "inode number {} below {}", ino, FIRST_INO);
    }
    Ok(ino)
}

fn parse_changeset(token: &str) -> QResult<ChangesetName> {
    match ChangesetName::new(token) {
        Some(name) => Ok(name),
        None => fail!(
            EINVAL,
            "bad changeset name '{}' (want [a-z0-9_]{{1,16}})",
            token
        ),
    }
}

fn parse_file_range(args: &[&str]) -> QResult<FileRange> {
    let [subvol, ino, off, len] = args else {
        fail!(EINVAL, "expected S INO OFF LEN");
    };
    let range = FileRange {
        subvol: parse_size(subvol)?,
        ino: parse_ino(ino)?,
        off: parse_size(off)?,
        len: parse_size(len)?,
    };
    if range.len == 0 {
        fail!(EINVAL, "zero length");
    }
    match range.off.checked_add(range.len) {
        Some(end) if end <= MAX_FILE_END => Ok(range),
        _ => fail!(EINVAL, "offset + length past 2^63"),
    }
}

fn parse_rsv_type(token: &str) -> QResult<RsvType> {
    match token {
        "prealloc" => Ok(RsvType::MetaPrealloc),
        "pertrans" => Ok(RsvType::MetaPertrans),
        _ => fail!(EINVAL, "expected prealloc or pertrans, not '{}'", token),
    }
}

/// The text of a command: bounded, UTF-8, no NUL, one trailing newline
/// allowed.
fn command_text(input: &[u8]) -> QResult<&str> {
    if input.len() > MAX_COMMAND {
        fail!(EINVAL, "command longer than {} bytes", MAX_COMMAND);
    }
    if input.contains(&0) {
        fail!(EINVAL, "command holds a NUL byte");
    }
    let Ok(text) = core::str::from_utf8(input) else {
        fail!(EINVAL, "command is not UTF-8");
    };
    Ok(text.strip_suffix('\n').unwrap_or(text))
}

/// Parses one command written to `control`.
pub(crate) fn parse(input: &[u8]) -> QResult<Command> {
    let text = command_text(input)?;
    let mut tokens = [""; 8];
    let mut n = 0;
    for token in text.split([' ', '\t']).filter(|t| !t.is_empty()) {
        if n == tokens.len() {
            fail!(EINVAL, "too many arguments");
        }
        tokens[n] = token;
        n += 1;
    }
    let tokens = &tokens[..n];
    let Some((&verb, args)) = tokens.split_first() else {
        fail!(EINVAL, "empty command");
    };
    let cmd = match (verb, args) {
        ("quota", ["enable"]) => Command::QuotaEnable,
        ("quota", ["disable"]) => Command::QuotaDisable,
        ("subvol", ["create", id]) => Command::SubvolCreate(parse_size(id)?),
        ("qgroup", ["create", id]) => {
            let id = parse_qgroupid(id)?;
            if id.level() == 0 {
                fail!(
                    EINVAL,
                    "level-0 qgroups follow subvolumes; create level >= 1"
                );
            }
            Command::QgroupCreate(id)
        }
        ("qgroup", ["destroy", id]) => Command::QgroupDestroy(parse_qgroupid(id)?),
        ("qgroup", [verb @ ("assign" | "remove"), child, parent]) => {
            let (child, parent) = (parse_qgroupid(child)?, parse_qgroupid(parent)?);
            if parent.level() <= child.level() {
                fail!(
                    EINVAL,
                    "parent {} must be of a higher level than child {}",
                    parent,
                    child
                );
            }
            if *verb == "assign" {
                Command::QgroupAssign(child, parent)
            } else {
                Command::QgroupRemove(child, parent)
            }
        }
        ("qgroup", ["limit", rest @ ..]) => {
            let (excl, rest) = match rest {
                ["-e", rest @ ..] => (true, rest),
                _ => (false, rest),
            };
            let [size, id] = rest else {
                fail!(EINVAL, "expected qgroup limit [-e] SIZE|none QG");
            };
            let max = match *size {
                "none" => None,
                size => Some(parse_size(size)?),
            };
            Command::QgroupLimit {
                excl,
                max,
                id: parse_qgroupid(id)?,
            }
        }
        ("write", [range @ .., "fail=meta"]) if range.len() == 4 => {
            Command::Write(parse_file_range(range)?, true)
        }
        ("write", range) => Command::Write(parse_file_range(range)?, false),
        ("fallocate", range) => Command::Fallocate(parse_file_range(range)?),
        ("writeback", []) => Command::Writeback(None),
        ("writeback", [subvol, ino]) => {
            Command::Writeback(Some((parse_size(subvol)?, parse_ino(ino)?)))
        }
        ("truncate", [subvol, ino, size]) => {
            let size_value = parse_size(size)?;
            if size_value > MAX_FILE_END {
                fail!(EINVAL, "size past 2^63");
            }
            Command::Truncate(parse_size(subvol)?, parse_ino(ino)?, size_value)
        }
        ("unlink", [subvol, ino]) => Command::Unlink(parse_size(subvol)?, parse_ino(ino)?),
        ("commit", []) => Command::Commit,
        ("sync", []) => Command::Sync,
        ("reserve", [range @ .., cs]) if range.len() == 4 => {
            Command::Reserve(parse_file_range(range)?, parse_changeset(cs)?)
        }
        ("free", [range @ .., cs]) if range.len() == 4 => {
            Command::Free(parse_file_range(range)?, Some(parse_changeset(cs)?))
        }
        ("free", range) => Command::Free(parse_file_range(range)?, None),
        ("release", range) => Command::Release(parse_file_range(range)?),
        ("changeset", ["drop", cs]) => Command::ChangesetDrop(parse_changeset(cs)?),
        ("meta", [op @ ("reserve" | "free"), subvol, bytes, kind]) => {
            let kind = parse_rsv_type(kind)?;
            let op = if *op == "reserve" {
                MetaOp::Reserve(kind)
            } else {
                MetaOp::Free(kind)
            };
            Command::Meta(op, parse_size(subvol)?, parse_size(bytes)?)
        }
        ("meta", ["convert", subvol, bytes]) => {
            Command::Meta(MetaOp::Convert, parse_size(subvol)?, parse_size(bytes)?)
        }
        ("legacy", [name, state]) => {
            let Some(switch) = LegacySwitch::from_name(name) else {
                fail!(EINVAL, "unknown legacy switch '{}'", name);
            };
            let on = match *state {
                "on" => true,
                "off" => false,
                _ => fail!(EINVAL, "expected on or off, not '{}'", state),
            };
            Command::Legacy(switch, on)
        }
        ("reset", []) => Command::Reset,
        ("stress", [threads, ops, seed, mix @ ..]) if mix.len() <= 1 => {
            let (threads, ops, seed) = (parse_size(threads)?, parse_size(ops)?, parse_size(seed)?);
            if !(1..=MAX_STRESS_THREADS).contains(&threads) {
                fail!(EINVAL, "THREADS must be 1..{}", MAX_STRESS_THREADS);
            }
            if !(1..=MAX_STRESS_OPS).contains(&ops) {
                fail!(EINVAL, "OPS must be 1..{}", MAX_STRESS_OPS);
            }
            // Both factors are bounded above: the product fits.
            if threads * ops > MAX_STRESS_OPS {
                fail!(EINVAL, "THREADS x OPS must be at most {}", MAX_STRESS_OPS);
            }
            let mix = match mix {
                [] | ["shared"] => StressMix::Shared,
                ["private"] => StressMix::Private,
                _ => fail!(EINVAL, "expected shared or private"),
            };
            Command::Stress {
                threads,
                ops,
                seed,
                mix,
            }
        }
        ("bench", scale) => Command::Bench(match scale {
            [] | ["smoke"] => Scale::Smoke,
            ["full"] => Scale::Full,
            _ => fail!(EINVAL, "expected bench [smoke|full]"),
        }),
        (
            "quota" | "subvol" | "qgroup" | "writeback" | "truncate" | "unlink" | "commit" | "sync"
            | "reserve" | "changeset" | "meta" | "legacy" | "reset" | "stress",
            _,
        ) => fail!(EINVAL, "bad arguments to '{}'", verb),
        _ => fail!(EINVAL, "unknown command '{}'", verb),
    };
    Ok(cmd)
}
