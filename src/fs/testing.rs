// SPDX-License-Identifier: GPL-2.0

//! What the tools and the KUnit suites need of the instance beyond its
//! operations: built into a testing module only (see `crate::tools`).

use kernel::prelude::*;

use super::{op::InstanceOp, FsState};
use crate::{
    changeset::{ByteRange, ChangesetName, ExtentChangeset},
    extent_io_tree::{ExtentBits, MAX_END},
    failure::{Failure, QResult},
    ids::{Ino, SubvolId},
    limits::FIRST_FREE_SUBVOL,
};

impl FsState {
    /// The lowest subvolume id above every id used so far (deleted ones
    /// included), at least 256.
    pub(crate) fn unused_subvol_id(&self) -> SubvolId {
        SubvolId(self.registry.highest_id().map_or(FIRST_FREE_SUBVOL, |id| {
            id.0.max(FIRST_FREE_SUBVOL - 1).saturating_add(1)
        }))
    }

    /// Runs the hierarchy operations `ops` (`subvol create` and the `qgroup`
    /// commands) as one instance-wide step, all or nothing: the first
    /// failure undoes what the earlier ones did (the subvolumes they
    /// created are removed, the qgroup hierarchy is put back as it was) and
    /// is returned. The set-up of `stress` runs this way.
    pub(crate) fn instance_batch(&self, ops: &[InstanceOp]) -> QResult {
        let _alone = self.gate.exclusive();
        let saved = self.qgroups.save()?;
        let mut created = KVec::with_capacity(ops.len(), GFP_KERNEL)?;
        let mut result = Ok(());
        for &op in ops {
            result = match op {
                InstanceOp::SubvolCreate(id, inherit) => {
                    self.subvol_create(id, inherit).map(|()| {
                        // INVARIANT: room for every operation was made above.
                        kernel::warn_on!(created.push_within_capacity(id).is_err());
                    })
                }
                InstanceOp::QgroupCreate(..)
                | InstanceOp::QgroupDestroy(..)
                | InstanceOp::QgroupAssign(..)
                | InstanceOp::QgroupRemove(..)
                | InstanceOp::QgroupLimit { .. } => self.instance(op).map(|_| ()),
                InstanceOp::QuotaEnable { .. }
                | InstanceOp::QuotaDisable
                | InstanceOp::QuotaRescan
                | InstanceOp::SubvolSnapshot { .. }
                | InstanceOp::SubvolDelete(_)
                | InstanceOp::WritebackAll
                | InstanceOp::Commit
                | InstanceOp::Sync
                | InstanceOp::Legacy(..)
                | InstanceOp::Reset => Err(Failure::new(
                    EINVAL,
                    format_args!("not a hierarchy operation"),
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

    /// A copy of the io tree states of inode `ino` of `subvol`.
    pub(crate) fn inode_states(
        &self,
        subvol: SubvolId,
        ino: Ino,
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
        subvol: SubvolId,
        ino: Ino,
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
    pub(crate) fn inode_meta_prealloc(&self, subvol: SubvolId, ino: Ino) -> Option<u64> {
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
}

#[cfg(CONFIG_KUNIT = "y")]
impl FsState {
    /// Runs `f` the way a data command on inode `ino` of `subvol` runs: the
    /// gate held shared, the inode lock held (the inode created if needed).
    /// For the KUnit suites, which watch two such sections overlap.
    pub(crate) fn data_section<T>(
        &self,
        subvol: SubvolId,
        ino: Ino,
        f: impl FnOnce() -> T,
    ) -> QResult<T> {
        let _shared = self.gate.shared();
        self.with_inode(subvol, ino, true, |_inode, _data| Ok(f()))
    }

    /// Runs `f` the way `clone` from inode `src` to inode `dst` (each
    /// `(subvol, ino)`; `src` must exist) runs: the gate held shared and
    /// both inode locks held.
    pub(crate) fn clone_section<T>(
        &self,
        src: (SubvolId, Ino),
        dst: (SubvolId, Ino),
        f: impl FnOnce() -> T,
    ) -> QResult<T> {
        let range = |(subvol, ino): (SubvolId, Ino)| super::op::FileRange {
            subvol,
            ino,
            off: 0,
            len: 4096,
        };
        let _shared = self.gate.shared();
        let mut f = Some(f);
        let mut out = None;
        self.with_two_inodes(range(src), range(dst), |_, _, _, _| {
            out = f.take().map(|f| f());
            Ok(())
        })?;
        out.ok_or(Failure::from(EINVAL))
    }
}
