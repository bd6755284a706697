// SPDX-License-Identifier: GPL-2.0

//! The filesystem instance: subvolumes, inodes, qgroups, and the commands
//! of SPEC §2 run on them with the locking of SPEC §6.
//!
//! One [`FsState`] lives from module load to unload; `reset` empties it in
//! place. [`FsState::execute`] runs one parsed command:
//! - a data command (`write`, `fallocate`, `reserve`, `free`, `release`,
//!   `writeback S INO`, `truncate`, `unlink`, `changeset drop`, `meta`)
//!   shares the instance [`gate`] with the other data commands and holds the
//!   lock of the one inode it works on;
//! - an instance-wide command, and every read of a debugfs file, has the
//!   gate to itself.
//!
//! Data flows one way: command ([`write`], [`commit`], [`quota`],
//! [`changesets`]) -> the reservation layer ([`crate::rsv`], every
//! `may_use` change) -> the io trees and the qgroups. Each command is all or
//! nothing: what can fail (space, limits, allocations) happens before its
//! first change.

use kernel::{
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
};

use crate::{
    changeset::{ByteRange, ExtentChangeset},
    command::Command,
    extent_io_tree::{ExtentBits, MAX_END},
    failure::{fail, Failure, QResult},
    inode::{Inode, InodeData},
    legacy::{Legacy, LegacySwitch},
    qgroup::{QgroupSet, QgroupTree},
    rsv::Rsv,
};

mod changesets;
mod commit;
pub(crate) mod gate;
mod quota;
pub(crate) mod registry;
pub(crate) mod space;
mod write;

pub(crate) use crate::changeset::ChangesetName;
use gate::Gate;
use registry::{Lookup, Registry};
use space::Space;

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

    /// The value of `key`, if reported.
    pub(crate) fn get(&self, key: &str) -> Option<u64> {
        self.pairs()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|&(_, v)| v)
    }
}

/// Event counters shown in the `stats` file.
struct Stats {
    edquot: Atomic<u64>,
    commits: Atomic<u64>,
    leaks: Atomic<u64>,
    flushes: Atomic<u64>,
}

impl Stats {
    const fn new() -> Self {
        Self {
            edquot: Atomic::new(0),
            commits: Atomic::new(0),
            leaks: Atomic::new(0),
            flushes: Atomic::new(0),
        }
    }

    fn clear(&self) {
        for counter in [&self.edquot, &self.commits, &self.leaks, &self.flushes] {
            counter.store(0, Relaxed);
        }
    }
}

/// A copy of the event counters.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StatsView {
    /// Commands that ended in EDQUOT.
    pub(crate) edquot: u64,
    /// Commits.
    pub(crate) commits: u64,
    /// Leaked reserved ranges found at unlink.
    pub(crate) leaks: u64,
    /// Flushes before EDQUOT (SPEC §1.5a).
    pub(crate) flushes: u64,
}

/// The filesystem instance.
#[pin_data]
pub(crate) struct FsState {
    sectorsize: u64,
    nodesize: u64,
    #[pin]
    gate: Gate,
    /// Whether quotas are enabled; changed only with the gate held alone.
    quota: Atomic<bool>,
    /// The legacy switches ([`Legacy::bits`]); changed only with the gate
    /// held alone.
    legacy: Atomic<u32>,
    #[pin]
    qgroups: QgroupTree,
    #[pin]
    registry: Registry,
    space: Space,
    stats: Stats,
}

/// Whether `sectorsize` and `nodesize` are acceptable: powers of two with
/// 4096 <= sectorsize <= nodesize <= 65536.
pub(crate) fn valid_sizes(sectorsize: u64, nodesize: u64) -> bool {
    sectorsize.is_power_of_two()
        && nodesize.is_power_of_two()
        && 4096 <= sectorsize
        && sectorsize <= nodesize
        && nodesize <= 65536
}

impl FsState {
    /// A fresh instance: quotas disabled, subvolume 5 only, switches off,
    /// on a device of `capacity` bytes.
    ///
    /// `sectorsize` and `nodesize` must be valid (see [`valid_sizes`]).
    pub(crate) fn new(sectorsize: u64, nodesize: u64, capacity: u64) -> Result<Arc<Self>> {
        let lookup = Lookup::new()?;
        Arc::pin_init(
            pin_init!(Self {
                sectorsize,
                nodesize,
                gate <- Gate::new(),
                quota: Atomic::new(false),
                legacy: Atomic::new(0),
                qgroups <- QgroupTree::new(),
                registry <- Registry::new(lookup),
                space: Space::new(capacity),
                stats: Stats::new(),
            }),
            GFP_KERNEL,
        )
    }

    /// Runs one parsed command with the locking of SPEC §6 and counts it in
    /// `stats` if it ends in EDQUOT. (`stress` is run by the control file,
    /// which owns the workers.)
    pub(crate) fn execute(&self, cmd: Command) -> QResult<Outcome> {
        let result = match cmd {
            Command::Write(..) | Command::Fallocate(_) | Command::Reserve(..) => {
                self.data_with_flush(cmd)
            }
            Command::Meta(crate::command::MetaOp::Reserve(_), ..) => self.data_with_flush(cmd),
            Command::Writeback(Some(_))
            | Command::Truncate(..)
            | Command::Unlink(..)
            | Command::Free(..)
            | Command::Release(_)
            | Command::ChangesetDrop(_)
            | Command::Meta(..) => {
                let _shared = self.gate.shared();
                self.data(cmd, false)
            }
            Command::Stress { .. } => fail!(EINVAL, "stress runs from the control file only"),
            _ => {
                let _alone = self.gate.exclusive();
                self.instance(cmd).map(|()| Outcome::NONE)
            }
        };
        if result.as_ref().is_err_and(|f| f.errno() == EDQUOT) {
            self.stats.edquot.add(1, Relaxed);
        }
        result
    }

    /// A data command whose limit-checked reservation may flush first
    /// (SPEC §1.5a): on a limit's EDQUOT the command has undone itself; the
    /// reserving subvolume is flushed (unless another command flushed it
    /// meanwhile) and the command runs once more.
    fn data_with_flush(&self, cmd: Command) -> QResult<Outcome> {
        let subvol = match cmd {
            Command::Write(r, _) | Command::Fallocate(r) | Command::Reserve(r, _) => r.subvol,
            Command::Meta(_, subvol, _) => subvol,
            _ => return self.data(cmd, false),
        };
        let flushes = self.registry.flushes(subvol);
        let first = {
            let _shared = self.gate.shared();
            self.data(cmd, false)
        };
        match first {
            Err(f)
                if f.is_over_limit()
                    && self.quota_enabled()
                    && !self.legacy().is_on(LegacySwitch::NoEdquotFlush) =>
            {
                self.flush(subvol, flushes);
                let _shared = self.gate.shared();
                self.data(cmd, true)
            }
            other => other,
        }
    }

    /// Runs a data command; the caller holds the gate shared.
    fn data(&self, cmd: Command, after_flush: bool) -> QResult<Outcome> {
        match cmd {
            Command::Write(r, fail_meta) => self.write(r, fail_meta, after_flush),
            Command::Fallocate(r) => self.fallocate(r).map(|n| Outcome::one("reserved", n)),
            Command::Writeback(Some((subvol, ino))) => {
                self.writeback_one(subvol, ino).map(|()| Outcome::NONE)
            }
            Command::Truncate(subvol, ino, size) => {
                self.truncate(subvol, ino, size).map(|()| Outcome::NONE)
            }
            Command::Unlink(subvol, ino) => self.unlink(subvol, ino).map(|()| Outcome::NONE),
            Command::Reserve(r, name) => self.reserve(r, name).map(|n| Outcome::one("reserved", n)),
            Command::Free(r, name) => self.free(r, name).map(|n| Outcome::one("freed", n)),
            Command::Release(r) => self.release(r).map(|n| Outcome::one("released", n)),
            Command::ChangesetDrop(name) => self.changeset_drop(name).map(|()| Outcome::NONE),
            Command::Meta(op, subvol, bytes) => {
                self.meta(op, subvol, bytes).map(|()| Outcome::NONE)
            }
            _ => self.instance(cmd).map(|()| Outcome::NONE),
        }
    }

    /// Runs an instance-wide command; the caller holds the gate alone.
    fn instance(&self, cmd: Command) -> QResult {
        match cmd {
            Command::QuotaEnable => self.quota_enable(),
            Command::QuotaDisable => self.quota_disable(),
            Command::SubvolCreate(id) => self.subvol_create(id),
            Command::QgroupCreate(id) => self.qgroup_create(id),
            Command::QgroupDestroy(id) => self.qgroup_destroy(id),
            Command::QgroupAssign(child, parent) => self.qgroup_assign(child, parent),
            Command::QgroupRemove(child, parent) => self.qgroup_remove(child, parent),
            Command::QgroupLimit { excl, max, id } => self.qgroup_limit(id, excl, max),
            Command::Writeback(None) => self.writeback_all(),
            Command::Commit => self.commit(),
            Command::Sync => self.sync(),
            Command::Legacy(switch, on) => {
                let mut legacy = self.legacy();
                legacy.set(switch, on);
                self.legacy.store(u32::from(legacy.bits()), Relaxed);
                Ok(())
            }
            Command::Reset => self.reset(),
            _ => fail!(EINVAL, "not an instance-wide command"),
        }
    }

    /// `reset`: back to a fresh instance (quotas off, subvolume 5 only,
    /// switches off, stats cleared), in place.
    fn reset(&self) -> QResult {
        let lookup = Lookup::new()?;
        self.registry.replace(lookup);
        self.qgroups.install(QgroupSet::new(), true);
        self.quota.store(false, Relaxed);
        self.legacy.store(0, Relaxed);
        self.stats.clear();
        self.space.clear();
        Ok(())
    }

    /// Runs `f` with the instance to itself: the reads of SPEC §6 see no
    /// half-done command.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Self) -> R) -> R {
        let _alone = self.gate.exclusive();
        f(self)
    }

    /// Runs the hierarchy commands `cmds` (`subvol create` and the `qgroup`
    /// commands) as one instance-wide step, all or nothing: the first
    /// failure undoes what the earlier ones did (the subvolumes they
    /// created are removed, the qgroup hierarchy is put back as it was) and
    /// is returned. The set-up of `stress` runs this way.
    pub(crate) fn instance_batch(&self, cmds: &[Command]) -> QResult {
        let _alone = self.gate.exclusive();
        let saved = self.qgroups.save()?;
        let mut created = KVec::with_capacity(cmds.len(), GFP_KERNEL)?;
        let mut result = Ok(());
        for &cmd in cmds {
            result = match cmd {
                Command::SubvolCreate(id) => self.subvol_create(id).map(|()| {
                    // Room for every command was made above.
                    let _ = created.push_within_capacity(id);
                }),
                Command::QgroupCreate(..)
                | Command::QgroupDestroy(..)
                | Command::QgroupAssign(..)
                | Command::QgroupRemove(..)
                | Command::QgroupLimit { .. } => self.instance(cmd),
                _ => Err(Failure::new(
                    EINVAL,
                    format_args!("not a hierarchy command"),
                )),
            };
            if result.is_err() {
                break;
            }
        }
        if result.is_err() {
            for &id in created.iter() {
                self.registry.remove_subvol(id);
            }
            self.qgroups.install(saved, false);
        }
        result
    }

    /// The node size.
    pub(crate) fn nodesize(&self) -> u64 {
        self.nodesize
    }

    /// Whether quotas are enabled.
    pub(crate) fn quota_enabled(&self) -> bool {
        self.quota.load(Relaxed)
    }

    /// The legacy switches.
    pub(crate) fn legacy(&self) -> Legacy {
        // Only the low byte is ever stored.
        Legacy::from_bits(self.legacy.load(Relaxed) as u8)
    }

    /// The qgroup hierarchy.
    pub(crate) fn qgroups(&self) -> &QgroupTree {
        &self.qgroups
    }

    /// The device space in use.
    pub(crate) fn space(&self) -> &Space {
        &self.space
    }

    /// Counter underflows since the last reset.
    pub(crate) fn underflows(&self) -> u64 {
        self.qgroups.underflows()
    }

    /// The event counters.
    pub(crate) fn stats(&self) -> StatsView {
        StatsView {
            edquot: self.stats.edquot.load(Relaxed),
            commits: self.stats.commits.load(Relaxed),
            leaks: self.stats.leaks.load(Relaxed),
            flushes: self.stats.flushes.load(Relaxed),
        }
    }

    /// Every subvolume id, ascending.
    pub(crate) fn subvol_ids(&self) -> Result<KVec<u64>> {
        self.registry.subvol_ids()
    }

    /// Every inode, of `subvol` or of all, by (subvol, ino).
    pub(crate) fn inodes(&self, subvol: Option<u64>) -> Result<KVec<Arc<Inode>>> {
        self.registry.inodes(subvol)
    }

    /// Committed extent bytes of subvolume `id` dropped since the last commit.
    pub(crate) fn dropped_committed(&self, id: u64) -> u64 {
        self.registry.dropped(id)
    }

    /// A copy of the io tree states of inode `ino` of `subvol`.
    pub(crate) fn inode_states(
        &self,
        subvol: u64,
        ino: u64,
    ) -> QResult<KVec<(ByteRange, ExtentBits)>> {
        Ok(self
            .registry
            .inode(subvol, ino)?
            .io_tree
            .snapshot(0, MAX_END)?)
    }

    /// Bytes of `range` of inode `ino` of `subvol` carrying any of `bits`
    /// in its io tree (0 for an unknown inode).
    pub(crate) fn inode_bytes(
        &self,
        subvol: u64,
        ino: u64,
        range: ByteRange,
        bits: ExtentBits,
    ) -> u64 {
        self.registry
            .inode(subvol, ino)
            .ok()
            .and_then(|inode| inode.io_tree.count_bits(range.start, range.end, bits).ok())
            .unwrap_or(0)
    }

    /// meta_prealloc bytes inode `ino` of `subvol` holds.
    pub(crate) fn inode_meta_prealloc(&self, subvol: u64, ino: u64) -> Option<u64> {
        let inode = self.registry.inode(subvol, ino).ok()?;
        let meta = inode.lock.lock().meta_prealloc;
        Some(meta)
    }

    /// A copy of the changeset called `name`, if any.
    pub(crate) fn changeset(&self, name: ChangesetName) -> Option<ExtentChangeset> {
        let (subvol, ino) = self.registry.name_owner(name)?;
        let inode = self.registry.inode(subvol, ino).ok()?;
        let data = inode.lock.lock();
        data.changesets.get(&name)?.try_clone().ok()
    }

    /// The current number of io tree states over all inodes.
    pub(crate) fn extent_states(&self) -> usize {
        self.inodes(None).map_or(0, |inodes| {
            inodes.iter().map(|inode| inode.io_tree.state_count()).sum()
        })
    }

    /// The reservation layer of this instance.
    fn rsv(&self) -> Rsv<'_> {
        Rsv {
            qgroups: &self.qgroups,
            space: &self.space,
            legacy: self.legacy(),
            quota: self.quota_enabled(),
        }
    }

    /// Whether allocated extents go through `reserved` (seed 000).
    fn reserved_stage(&self) -> bool {
        self.quota_enabled() && !self.legacy().is_on(LegacySwitch::NoReservedStage)
    }

    fn need_quota(&self) -> QResult {
        if !self.quota_enabled() {
            fail!(ENOTCONN, "quotas are disabled");
        }
        Ok(())
    }

    /// Runs `op` on inode `ino` of `subvol` with its inode lock held; the
    /// inode is created first when `create` (ENOENT for an unknown
    /// subvolume or, without `create`, inode). If `op` fails on an inode
    /// this call created, the inode is forgotten again: a failed command
    /// creates no inode.
    fn with_inode<T>(
        &self,
        subvol: u64,
        ino: u64,
        create: bool,
        op: impl FnOnce(&Inode, &mut InodeData) -> QResult<T>,
    ) -> QResult<T> {
        let mut op = Some(op);
        loop {
            let (inode, created) = if create {
                self.registry.inode_or_new(subvol, ino)?
            } else {
                (self.registry.inode(subvol, ino)?, false)
            };
            let mut data = inode.lock.lock();
            if data.gone {
                // Unlinked after the lookup: look it up again.
                continue;
            }
            let Some(op) = op.take() else {
                fail!(EINVAL, "inode operation ran twice");
            };
            let result = op(&inode, &mut data);
            if result.is_err()
                && created
                && inode.is_empty()
                && data.changesets.is_empty()
                && data.meta_prealloc == 0
            {
                data.gone = true;
                self.registry.forget(&inode, core::iter::empty());
            }
            return result;
        }
    }
}

#[cfg(CONFIG_KUNIT = "y")]
impl FsState {
    /// Runs `f` the way a data command on inode `ino` of `subvol` runs: the
    /// gate held shared, the inode lock held (the inode created if needed).
    /// For the KUnit suites, which watch two such sections overlap.
    pub(crate) fn data_section<T>(
        &self,
        subvol: u64,
        ino: u64,
        f: impl FnOnce() -> T,
    ) -> QResult<T> {
        let _shared = self.gate.shared();
        self.with_inode(subvol, ino, true, |_inode, _data| Ok(f()))
    }
}
