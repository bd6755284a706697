// SPDX-License-Identifier: GPL-2.0

//! The filesystem instance: subvolumes, inodes, qgroups, and the
//! operations of SPEC §2 run on them with the locking of SPEC §6.
//!
//! One [`FsState`] lives from module load to unload; `reset` empties it in
//! place. [`FsState::execute`] runs one typed operation ([`op`]):
//! - a [`op::DataOp`] (`write`, `fallocate`, `reserve`, `free`, `release`,
//!   `writeback S INO`, `truncate`, `unlink`, `changeset drop`, `meta`)
//!   shares the instance [`gate`] with the other data operations and holds
//!   the lock of the one inode it works on;
//! - an [`op::InstanceOp`], and every read of a debugfs file, has the gate
//!   to itself.
//!
//! Data flows one way: operation ([`write`], [`commit`], [`quota`],
//! [`changesets`]) -> the reservation layer ([`crate::rsv`], every
//! `may_use` change) -> the io trees and the qgroups. Each operation is all
//! or nothing: what can fail (space, limits, allocations) happens before
//! its first change. [`check`] verifies the invariants of SPEC §1.7.

use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Mutex, MutexGuard,
    },
};

use crate::{
    extent_tree::ExtentTree,
    failure::{fail, QResult},
    ids::{Ino, SubvolId},
    inode::{Inode, InodeData},
    legacy::{Legacy, LegacySwitch},
    qgroup::{QgroupSet, QgroupTree},
    rsv::Rsv,
    space::Space,
};

mod changesets;
mod check;
mod clone;
mod commit;
pub(crate) mod gate;
pub(crate) mod op;
mod quota;
pub(crate) mod registry;
mod subvol;
#[cfg(qgroup_rs_testing)]
mod testing;
mod truncate;
mod write;
mod writeback;

use gate::Gate;
use op::{DataOp, InstanceOp, Op, Reply};
use registry::{Lookup, Registry};

/// Event counters shown in the `stats` file.
struct Stats {
    edquot: Atomic<u64>,
    commits: Atomic<u64>,
    leaks: Atomic<u64>,
    flushes: Atomic<u64>,
    rescans: Atomic<u64>,
}

impl Stats {
    const fn new() -> Self {
        Self {
            edquot: Atomic::new(0),
            commits: Atomic::new(0),
            leaks: Atomic::new(0),
            flushes: Atomic::new(0),
            rescans: Atomic::new(0),
        }
    }

    fn clear(&self) {
        for counter in [
            &self.edquot,
            &self.commits,
            &self.leaks,
            &self.flushes,
            &self.rescans,
        ] {
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
    /// Rescans (SPEC §8.5).
    pub(crate) rescans: u64,
}

/// The filesystem instance.
#[pin_data]
pub(crate) struct FsState {
    sectorsize: u64,
    nodesize: u64,
    /// Taken before the gate by a flush before EDQUOT: one flush at a time
    /// (SPEC §1.5a).
    #[pin]
    flush_lock: Mutex<()>,
    #[pin]
    gate: Gate,
    /// Whether quotas are enabled; changed only with the gate held alone.
    quota: Atomic<bool>,
    /// The legacy switches (`u16::from(Legacy)`); changed only with the gate
    /// held alone.
    legacy: Atomic<u32>,
    #[pin]
    qgroups: QgroupTree,
    #[pin]
    registry: Registry,
    /// The data extents; taken after the inode lock(s), before the qgroup
    /// lock.
    #[pin]
    extent_tree: Mutex<ExtentTree>,
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
                flush_lock <- new_mutex!((), "FsState::flush_lock"),
                gate <- Gate::new(),
                quota: Atomic::new(false),
                legacy: Atomic::new(0),
                qgroups <- QgroupTree::new(),
                registry <- Registry::new(lookup),
                extent_tree <- new_mutex!(ExtentTree::new(), "FsState::extent_tree"),
                space: Space::new(capacity),
                stats: Stats::new(),
            }),
            GFP_KERNEL,
        )
    }

    /// Runs one operation with the locking of SPEC §6, and counts it in
    /// `stats` if it ends in EDQUOT: a data operation with the gate shared
    /// (and, for the reserving ones, a flush and one retry on EDQUOT), an
    /// instance-wide one with the gate held alone.
    pub(crate) fn execute(&self, op: Op) -> QResult<Reply> {
        let result = match op {
            Op::Data(op) => self.data_with_flush(op),
            Op::Instance(op) => {
                let _alone = self.gate.exclusive();
                self.instance(op)
            }
        };
        if result.as_ref().is_err_and(|f| f.errno() == EDQUOT) {
            self.stats.edquot.add(1, Relaxed);
        }
        result
    }

    /// A data operation with the gate shared. One whose limit-checked
    /// reservation fails its limit has undone itself; the reserving
    /// subvolume is flushed (unless another command flushed it meanwhile)
    /// and the operation runs once more (SPEC §1.5a).
    fn data_with_flush(&self, op: DataOp) -> QResult<Reply> {
        let Some(subvol) = op.flushing_subvol() else {
            let _shared = self.gate.shared();
            return self.data(op, false);
        };
        let flushes = self.registry.flushes(subvol);
        let first = {
            let _shared = self.gate.shared();
            self.data(op, false)
        };
        match first {
            Err(f)
                if f.is_over_limit()
                    && self.quota_enabled()
                    && !self.legacy().contains(LegacySwitch::NoEdquotFlush) =>
            {
                self.flush(subvol, flushes);
                let _shared = self.gate.shared();
                self.data(op, true)
            }
            other => other,
        }
    }

    /// Runs a data operation; the caller holds the gate shared.
    fn data(&self, op: DataOp, after_flush: bool) -> QResult<Reply> {
        match op {
            DataOp::Write(r, fail_meta) => self.write(r, fail_meta, after_flush),
            DataOp::Fallocate(r) => self.fallocate(r).map(Reply::Reserved),
            DataOp::Writeback(subvol, ino) => self.writeback_one(subvol, ino).map(|()| Reply::Done),
            DataOp::Truncate(subvol, ino, size) => {
                self.truncate(subvol, ino, size).map(|()| Reply::Done)
            }
            DataOp::Unlink(subvol, ino) => self.unlink(subvol, ino).map(|()| Reply::Done),
            DataOp::Reserve(r, name) => self.reserve(r, name).map(Reply::Reserved),
            DataOp::Free(r, name) => self.free(r, name).map(Reply::Freed),
            DataOp::Release(r) => self.release(r).map(Reply::Released),
            DataOp::ChangesetDrop(name) => self.changeset_drop(name).map(|()| Reply::Done),
            DataOp::Meta(op, subvol, bytes) => self.meta(op, subvol, bytes).map(|()| Reply::Done),
            DataOp::Clone(src, dst) => self.clone_range(src, dst).map(|()| Reply::Done),
        }
    }

    /// Runs an instance-wide operation; the caller holds the gate alone.
    fn instance(&self, op: InstanceOp) -> QResult<Reply> {
        let relation = |inconsistent: bool| {
            if inconsistent {
                Reply::Inconsistent
            } else {
                Reply::Done
            }
        };
        let done = match op {
            InstanceOp::QgroupAssign(child, parent) => {
                return self.qgroup_assign(child, parent).map(relation)
            }
            InstanceOp::QgroupRemove(child, parent) => {
                return self.qgroup_remove(child, parent).map(relation)
            }
            InstanceOp::QuotaEnable { simple } => self.quota_enable(simple),
            InstanceOp::QuotaDisable => self.quota_disable(),
            InstanceOp::QuotaRescan => self.quota_rescan(),
            InstanceOp::SubvolCreate(id, inherit) => self.subvol_create(id, inherit),
            InstanceOp::SubvolSnapshot { src, dst, inherit } => {
                self.subvol_snapshot(src, dst, inherit)
            }
            InstanceOp::SubvolDelete(id) => self.subvol_delete(id),
            InstanceOp::QgroupCreate(id) => self.qgroup_create(id),
            InstanceOp::QgroupDestroy(id) => self.qgroup_destroy(id),
            InstanceOp::QgroupLimit { excl, max, id } => self.qgroup_limit(id, excl, max),
            InstanceOp::WritebackAll => self.writeback_all(),
            InstanceOp::Commit => self.commit(),
            InstanceOp::Sync => self.sync(),
            InstanceOp::Legacy(switch, on) => {
                let mut legacy = self.legacy();
                legacy.set(switch, on);
                self.legacy.store(u32::from(u16::from(legacy)), Relaxed);
                Ok(())
            }
            InstanceOp::Reset => self.reset(),
        };
        done.map(|()| Reply::Done)
    }

    /// `reset`: back to a fresh instance (quotas off, subvolume 5 only,
    /// switches off, stats cleared), in place.
    fn reset(&self) -> QResult {
        let lookup = Lookup::new()?;
        self.registry.replace(lookup);
        let old = core::mem::replace(&mut *self.extent_tree.lock(), ExtentTree::new());
        // The old extents are freed here, with the lock dropped.
        drop(old);
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

    /// Whether quotas are enabled.
    pub(crate) fn quota_enabled(&self) -> bool {
        self.quota.load(Relaxed)
    }

    /// The legacy switches.
    pub(crate) fn legacy(&self) -> Legacy {
        // Only the low 16 bits are ever stored.
        Legacy::from_bits(self.legacy.load(Relaxed) as u16)
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
            rescans: self.stats.rescans.load(Relaxed),
        }
    }

    /// Every subvolume id, ascending.
    pub(crate) fn subvol_ids(&self) -> Result<KVec<SubvolId>> {
        self.registry.subvol_ids()
    }

    /// Every inode, of `subvol` or of all, by (subvol, ino).
    pub(crate) fn inodes(&self, subvol: Option<SubvolId>) -> Result<KVec<Arc<Inode>>> {
        self.registry.inodes(subvol)
    }

    /// The data extents, locked.
    pub(crate) fn extent_tree(&self) -> MutexGuard<'_, ExtentTree> {
        self.extent_tree.lock()
    }

    /// Whether the qgroup numbers are marked inconsistent.
    pub(crate) fn inconsistent(&self) -> bool {
        self.qgroups.inconsistent()
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
        self.quota_enabled() && !self.legacy().contains(LegacySwitch::NoReservedStage)
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
        subvol: SubvolId,
        ino: Ino,
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
            if result.is_err() && created && inode.is_empty(&data) {
                data.gone = true;
                self.registry.forget(&inode, core::iter::empty());
            }
            return result;
        }
    }
}
