// SPDX-License-Identifier: GPL-2.0

//! The `control` command parser (SPEC §2): pure, no state.
//!
//! Text in, a [`Request`] out: one of the model's typed operations
//! ([`crate::fs::op`]), or a tool (`stress`, `bench`) the control file
//! runs. The parser depends on the model and the tools, never the other
//! way round.
//!
//! Every syntax error — unknown verb, wrong arity, bad number, zero length,
//! a range past 2^63, a level rule, a bad name — is EINVAL, found before any
//! state is looked at (SPEC §5 "Parsing").

use kernel::prelude::*;

use crate::{
    changeset::ChangesetName,
    failure::{fail, QResult},
    fs::op::{DataOp, FileRange, Ino, InstanceOp, MetaOp, Op, QgroupList, SubvolId},
    legacy::LegacySwitch,
    limits::{FIRST_INO, MAX_FILE_END},
    qgroup::{QgroupId, RsvType},
};
#[cfg(qgroup_rs_testing)]
use crate::{
    limits::{MAX_STRESS_OPS, MAX_STRESS_THREADS},
    tools::{bench::Scale, stress::StressMix},
};

/// Longest command accepted, in bytes.
pub(crate) const MAX_COMMAND: usize = 1024;

/// One parsed command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// An operation of the model.
    Op(Op),
    /// `stress THREADS OPS SEED [shared|private]`
    #[cfg(qgroup_rs_testing)]
    Stress {
        /// Workers, 1 to 64.
        threads: u64,
        /// Commands per worker, 1 to 10^8 (and THREADS x OPS at most that).
        ops: u64,
        /// Seed of the workers' random choices.
        seed: u64,
        /// Which inodes the workers use.
        mix: StressMix,
    },
    /// `bench [smoke|full]`: the benchmark (smoke by default), on private
    /// structures; its rows go to the kernel log.
    #[cfg(qgroup_rs_testing)]
    Bench(Scale),
}

impl From<DataOp> for Request {
    fn from(op: DataOp) -> Self {
        Self::Op(op.into())
    }
}

impl From<InstanceOp> for Request {
    fn from(op: InstanceOp) -> Self {
        Self::Op(op.into())
    }
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

fn parse_ino(token: &str) -> QResult<Ino> {
    let ino = parse_size(token)?;
    if ino < FIRST_INO {
        fail!(EINVAL, "inode number {} below {}", ino, FIRST_INO);
    }
    Ok(Ino(ino))
}

fn parse_subvol(token: &str) -> QResult<SubvolId> {
    parse_size(token).map(SubvolId)
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

/// The `QG ...` a new subvolume joins.
fn parse_qgroup_list(args: &[&str]) -> QResult<QgroupList> {
    let mut list = QgroupList::new();
    for arg in args {
        if !list.push(parse_qgroupid(arg)?) {
            fail!(EINVAL, "more than {} qgroups", QgroupList::MAX);
        }
    }
    Ok(list)
}

fn parse_file_range(args: &[&str]) -> QResult<FileRange> {
    let [subvol, ino, off, len] = args else {
        fail!(EINVAL, "expected S INO OFF LEN");
    };
    let range = FileRange {
        subvol: parse_subvol(subvol)?,
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
pub(crate) fn parse(input: &[u8]) -> QResult<Request> {
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
        ("quota", ["enable"]) => InstanceOp::QuotaEnable { simple: false }.into(),
        ("quota", ["enable", "simple"]) => InstanceOp::QuotaEnable { simple: true }.into(),
        ("quota", ["disable"]) => InstanceOp::QuotaDisable.into(),
        ("quota", ["rescan"]) => InstanceOp::QuotaRescan.into(),
        ("subvol", ["create", id, qgroups @ ..]) => {
            InstanceOp::SubvolCreate(parse_subvol(id)?, parse_qgroup_list(qgroups)?).into()
        }
        ("subvol", ["snapshot", src, dst, qgroups @ ..]) => InstanceOp::SubvolSnapshot {
            src: parse_subvol(src)?,
            dst: parse_subvol(dst)?,
            inherit: parse_qgroup_list(qgroups)?,
        }
        .into(),
        ("subvol", ["delete", id]) => InstanceOp::SubvolDelete(parse_subvol(id)?).into(),
        ("qgroup", ["create", id]) => {
            let id = parse_qgroupid(id)?;
            if id.level() == 0 {
                fail!(
                    EINVAL,
                    "level-0 qgroups follow subvolumes; create level >= 1"
                );
            }
            InstanceOp::QgroupCreate(id).into()
        }
        ("qgroup", ["destroy", id]) => InstanceOp::QgroupDestroy(parse_qgroupid(id)?).into(),
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
                InstanceOp::QgroupAssign(child, parent).into()
            } else {
                InstanceOp::QgroupRemove(child, parent).into()
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
            InstanceOp::QgroupLimit {
                excl,
                max,
                id: parse_qgroupid(id)?,
            }
            .into()
        }
        ("write", [range @ .., "fail=meta"]) if range.len() == 4 => {
            DataOp::Write(parse_file_range(range)?, true).into()
        }
        ("write", range) => DataOp::Write(parse_file_range(range)?, false).into(),
        ("fallocate", range) => DataOp::Fallocate(parse_file_range(range)?).into(),
        ("writeback", []) => InstanceOp::WritebackAll.into(),
        ("writeback", [subvol, ino]) => {
            DataOp::Writeback(parse_subvol(subvol)?, parse_ino(ino)?).into()
        }
        ("truncate", [subvol, ino, size]) => {
            let size_value = parse_size(size)?;
            if size_value > MAX_FILE_END {
                fail!(EINVAL, "size past 2^63");
            }
            DataOp::Truncate(parse_subvol(subvol)?, parse_ino(ino)?, size_value).into()
        }
        ("unlink", [subvol, ino]) => DataOp::Unlink(parse_subvol(subvol)?, parse_ino(ino)?).into(),
        ("clone", [src @ .., subvol2, ino2, off2]) if src.len() == 4 => {
            let src = parse_file_range(src)?;
            let dst = FileRange {
                subvol: parse_subvol(subvol2)?,
                ino: parse_ino(ino2)?,
                off: parse_size(off2)?,
                len: src.len,
            };
            DataOp::Clone(src, dst).into()
        }
        ("commit", []) => InstanceOp::Commit.into(),
        ("sync", []) => InstanceOp::Sync.into(),
        ("reserve", [range @ .., cs]) if range.len() == 4 => {
            DataOp::Reserve(parse_file_range(range)?, parse_changeset(cs)?).into()
        }
        ("free", [range @ .., cs]) if range.len() == 4 => {
            DataOp::Free(parse_file_range(range)?, Some(parse_changeset(cs)?)).into()
        }
        ("free", range) => DataOp::Free(parse_file_range(range)?, None).into(),
        ("release", range) => DataOp::Release(parse_file_range(range)?).into(),
        ("changeset", ["drop", cs]) => DataOp::ChangesetDrop(parse_changeset(cs)?).into(),
        ("meta", [op @ ("reserve" | "free"), subvol, bytes, kind]) => {
            let kind = parse_rsv_type(kind)?;
            let op = if *op == "reserve" {
                MetaOp::Reserve(kind)
            } else {
                MetaOp::Free(kind)
            };
            DataOp::Meta(op, parse_subvol(subvol)?, parse_size(bytes)?).into()
        }
        ("meta", ["convert", subvol, bytes]) => {
            DataOp::Meta(MetaOp::Convert, parse_subvol(subvol)?, parse_size(bytes)?).into()
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
            InstanceOp::Legacy(switch, on).into()
        }
        ("reset", []) => InstanceOp::Reset.into(),
        #[cfg(qgroup_rs_testing)]
        ("stress", [threads, ops, seed, mix @ ..]) if mix.len() <= 1 => {
            let (threads, ops, seed) = (parse_size(threads)?, parse_size(ops)?, parse_size(seed)?);
            if !(1..=MAX_STRESS_THREADS).contains(&threads) {
                fail!(EINVAL, "THREADS must be 1..{}", MAX_STRESS_THREADS);
            }
            if !(1..=MAX_STRESS_OPS).contains(&ops) {
                fail!(EINVAL, "OPS must be 1..{}", MAX_STRESS_OPS);
            }
            // PANIC: none; both factors are bounded above (64 and 10^8).
            if threads * ops > MAX_STRESS_OPS {
                fail!(EINVAL, "THREADS x OPS must be at most {}", MAX_STRESS_OPS);
            }
            let mix = match mix {
                [] | ["shared"] => StressMix::Shared,
                ["private"] => StressMix::Private,
                _ => fail!(EINVAL, "expected shared or private"),
            };
            Request::Stress {
                threads,
                ops,
                seed,
                mix,
            }
        }
        #[cfg(qgroup_rs_testing)]
        ("bench", scale) => Request::Bench(match scale {
            [] | ["smoke"] => Scale::Smoke,
            ["full"] => Scale::Full,
            _ => fail!(EINVAL, "expected bench [smoke|full]"),
        }),
        #[cfg(not(qgroup_rs_testing))]
        ("stress" | "bench", _) => fail!(
            EINVAL,
            "'{}' is a test tool, not built into this module (QGROUP_RS_TESTING=y)",
            verb
        ),
        (
            "quota" | "subvol" | "qgroup" | "writeback" | "truncate" | "unlink" | "commit" | "sync"
            | "reserve" | "changeset" | "meta" | "legacy" | "reset" | "clone",
            _,
        ) => fail!(EINVAL, "bad arguments to '{}'", verb),
        #[cfg(qgroup_rs_testing)]
        ("stress", _) => fail!(EINVAL, "bad arguments to 'stress'"),
        _ => fail!(EINVAL, "unknown command '{}'", verb),
    };
    Ok(cmd)
}
