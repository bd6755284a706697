// SPDX-License-Identifier: GPL-2.0

//! What the filesystem model can do: its operations, typed, and what they
//! reply.
//!
//! The model owns these types; the `control` parser turns text into them,
//! and the tools (`stress`, `bench`) build them directly. An operation is
//! either a [`DataOp`], which runs with the instance gate shared and the
//! lock of the one inode it works on, or an [`InstanceOp`], which runs with
//! the gate held alone (SPEC §6): [`super::FsState::execute`] matches each
//! kind once, exhaustively, so the gate an operation takes follows from its
//! type.

pub(crate) use crate::ids::{Ino, SubvolId};
use crate::{changeset::ChangesetName, legacy::LegacySwitch, qgroup::QgroupId, qgroup::RsvType};

/// A byte range of an inode: `S INO OFF LEN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileRange {
    /// Subvolume id.
    pub(crate) subvol: SubvolId,
    /// Inode number.
    pub(crate) ino: Ino,
    /// First byte.
    pub(crate) off: u64,
    /// Length in bytes (non-zero; `off + len <= 2^63`).
    pub(crate) len: u64,
}

/// The qgroups a new subvolume joins (`subvol create|snapshot ... QG ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QgroupList {
    ids: [QgroupId; QgroupList::MAX],
    len: usize,
}

impl QgroupList {
    /// Most qgroups one command names.
    pub(crate) const MAX: usize = 16;

    /// No qgroup.
    pub(crate) const fn new() -> Self {
        Self {
            ids: [QgroupId::FIRST; Self::MAX],
            len: 0,
        }
    }

    /// Adds `id`; `false` when the list is full.
    pub(crate) fn push(&mut self, id: QgroupId) -> bool {
        if self.len == Self::MAX {
            return false;
        }
        self.ids[self.len] = id;
        self.len += 1;
        true
    }

    /// The qgroups, in the order given.
    pub(crate) fn as_slice(&self) -> &[QgroupId] {
        &self.ids[..self.len]
    }
}

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

/// An operation on one inode (or, for `meta`, one subvolume's qgroup):
/// runs in parallel with the data operations on other inodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DataOp {
    /// `write S INO OFF LEN [fail=meta]`: a buffered write; `true` injects
    /// a meta reservation failure.
    Write(FileRange, bool),
    /// `fallocate S INO OFF LEN`
    Fallocate(FileRange),
    /// `writeback S INO`
    Writeback(SubvolId, Ino),
    /// `truncate S INO SIZE`
    Truncate(SubvolId, Ino, u64),
    /// `unlink S INO`
    Unlink(SubvolId, Ino),
    /// `reserve S INO OFF LEN CS`
    Reserve(FileRange, ChangesetName),
    /// `free S INO OFF LEN [CS]`
    Free(FileRange, Option<ChangesetName>),
    /// `release S INO OFF LEN`
    Release(FileRange),
    /// `changeset drop CS`
    ChangesetDrop(ChangesetName),
    /// `meta reserve|free S BYTES prealloc|pertrans`, `meta convert S BYTES`
    Meta(MetaOp, SubvolId, u64),
    /// `clone S INO OFF LEN S2 INO2 OFF2`: the source range, and the
    /// destination range (same length).
    Clone(FileRange, FileRange),
}

impl DataOp {
    /// The subvolume whose limits this operation's reservation is checked
    /// against, for the ones that flush and retry on EDQUOT (SPEC §1.5a).
    pub(crate) fn flushing_subvol(&self) -> Option<SubvolId> {
        match *self {
            Self::Write(r, _) | Self::Fallocate(r) | Self::Reserve(r, _) => Some(r.subvol),
            Self::Meta(MetaOp::Reserve(_), subvol, _) => Some(subvol),
            Self::Writeback(..)
            | Self::Truncate(..)
            | Self::Unlink(..)
            | Self::Free(..)
            | Self::Release(_)
            | Self::ChangesetDrop(_)
            | Self::Meta(..)
            | Self::Clone(..) => None,
        }
    }
}

/// An operation on the whole instance: runs with no data operation in
/// flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InstanceOp {
    /// `quota enable [simple]`
    QuotaEnable {
        /// Simple quotas (SPEC §8.6) rather than full qgroups.
        simple: bool,
    },
    /// `quota disable`
    QuotaDisable,
    /// `quota rescan`
    QuotaRescan,
    /// `subvol create ID [QG ...]`
    SubvolCreate(SubvolId, QgroupList),
    /// `subvol snapshot SRC DST [QG ...]`
    SubvolSnapshot {
        /// The subvolume snapshotted.
        src: SubvolId,
        /// The new subvolume.
        dst: SubvolId,
        /// The qgroups the new subvolume joins.
        inherit: QgroupList,
    },
    /// `subvol delete S`
    SubvolDelete(SubvolId),
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
    /// `writeback` (every inode)
    WritebackAll,
    /// `commit`
    Commit,
    /// `sync`
    Sync,
    /// `legacy NAME on|off`
    Legacy(LegacySwitch, bool),
    /// `reset`
    Reset,
}

/// One operation of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Runs with the gate shared.
    Data(DataOp),
    /// Runs with the gate held alone.
    Instance(InstanceOp),
}

impl From<DataOp> for Op {
    fn from(op: DataOp) -> Self {
        Self::Data(op)
    }
}

impl From<InstanceOp> for Op {
    fn from(op: InstanceOp) -> Self {
        Self::Instance(op)
    }
}

/// What a successful operation reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Nothing to report.
    Done,
    /// Bytes newly charged to may_use.data (`reserve`, `fallocate`).
    Reserved(u64),
    /// A buffered write: bytes newly charged, bytes written (SPEC §1.5a).
    Written {
        /// Bytes newly charged to may_use.data.
        reserved: u64,
        /// Bytes of the request written: all of them unless short.
        written: u64,
    },
    /// Bytes whose reservation a `free` cleared.
    Freed(u64),
    /// Bytes whose reservation a `release` cleared.
    Released(u64),
    /// A relation changed with no number moved: the qgroup numbers are
    /// inconsistent now (`ok inconsistent=1`, SPEC §8.3).
    Inconsistent,
}
