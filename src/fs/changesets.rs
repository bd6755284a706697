// SPDX-License-Identifier: GPL-2.0

//! The raw reservation commands: `reserve`, `free`, `release` with named
//! changesets, `changeset drop`, and `meta`.
//!
//! A named changeset lives in its inode (under the inode lock); the
//! registry only records which inode each name belongs to, so a name is
//! found in `O(log n)` and an unlink drops its inode's names without
//! looking at the others.

use kernel::{prelude::*, rbtree::RBTreeNodeReservation};

use super::FsState;
use crate::{
    changeset::{ChangesetName, ExtentChangeset},
    extent_io_tree::ExtentBits,
    failure::{fail, QResult},
    fs::op::{FileRange, MetaOp},
    ids::{Ino, SubvolId},
    rsv::round_range,
};

impl FsState {
    /// ENOENT for a missing changeset (when `must_exist`), EINVAL when it
    /// belongs to another inode.
    fn check_owner(
        &self,
        name: ChangesetName,
        subvol: SubvolId,
        ino: Ino,
        must_exist: bool,
    ) -> QResult {
        match self.registry.name_owner(name) {
            None if must_exist => fail!(ENOENT, "changeset {} does not exist", name),
            Some((s, i)) if (s, i) != (subvol, ino) => {
                fail!(EINVAL, "changeset {} belongs to inode {}/{}", name, s, i)
            }
            _ => Ok(()),
        }
    }

    /// `reserve S INO OFF LEN CS`: reserve_data into the named changeset,
    /// created on success. Returns the bytes newly charged.
    pub(super) fn reserve(&self, r: FileRange, name: ChangesetName) -> QResult<u64> {
        let range = round_range(r.off, r.len, self.sectorsize)?;
        self.need_quota()?;
        self.registry.need_subvol(r.subvol)?;
        self.check_owner(name, r.subvol, r.ino, false)?;
        self.with_inode(r.subvol, r.ino, true, |inode, data| {
            // A new changeset's node is allocated first: once the
            // reservation is made, recording it cannot fail.
            let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
            let claimed = self.registry.claim_name(name, r.subvol, r.ino)?;
            let rsv = self.rsv();
            let result = match data.changesets.get_mut(&name) {
                Some(cs) => rsv.reserve_data(inode, Some(cs), range, ExtentBits::NONE),
                None => {
                    let mut cs = ExtentChangeset::new();
                    let result = rsv.reserve_data(inode, Some(&mut cs), range, ExtentBits::NONE);
                    if result.is_ok() {
                        data.changesets.insert(node.into_node(name, cs));
                    }
                    result
                }
            };
            if result.is_err() && claimed {
                self.registry.release_name(name);
            }
            result
        })
    }

    /// `free S INO OFF LEN [CS]`. Returns the bytes freed.
    pub(super) fn free(&self, r: FileRange, name: Option<ChangesetName>) -> QResult<u64> {
        let range = round_range(r.off, r.len, self.sectorsize)?;
        self.need_quota()?;
        self.with_inode(r.subvol, r.ino, false, |inode, data| {
            let changeset = match name {
                Some(name) => {
                    self.check_owner(name, r.subvol, r.ino, true)?;
                    match data.changesets.get(&name) {
                        Some(cs) => Some(cs),
                        None => fail!(ENOENT, "changeset {} does not exist", name),
                    }
                }
                None => None,
            };
            self.rsv().free_data(inode, changeset, range)
        })
    }

    /// `release S INO OFF LEN`. Returns the bytes whose bit was cleared.
    pub(super) fn release(&self, r: FileRange) -> QResult<u64> {
        let range = round_range(r.off, r.len, self.sectorsize)?;
        self.need_quota()?;
        self.with_inode(r.subvol, r.ino, false, |inode, _data| {
            self.rsv().release_data(inode, range)
        })
    }

    /// `changeset drop CS`.
    pub(super) fn changeset_drop(&self, name: ChangesetName) -> QResult {
        let Some((subvol, ino)) = self.registry.name_owner(name) else {
            fail!(ENOENT, "changeset {} does not exist", name);
        };
        self.with_inode(subvol, ino, false, |_inode, data| {
            match data.changesets.remove(&name) {
                Some(_) => {
                    self.registry.release_name(name);
                    Ok(())
                }
                None => fail!(ENOENT, "changeset {} does not exist", name),
            }
        })
    }

    /// `meta reserve|free S BYTES prealloc|pertrans` and `meta convert S BYTES`.
    pub(super) fn meta(&self, op: MetaOp, subvol: SubvolId, bytes: u64) -> QResult {
        if bytes == 0 || bytes % self.nodesize != 0 {
            fail!(
                EINVAL,
                "meta bytes must be a positive multiple of nodesize {}",
                self.nodesize
            );
        }
        self.need_quota()?;
        self.registry.need_subvol(subvol)?;
        let rsv = self.rsv();
        match op {
            MetaOp::Reserve(kind) => rsv.reserve_meta(subvol, kind, bytes),
            MetaOp::Free(kind) => {
                rsv.free_meta(subvol, kind, bytes);
                Ok(())
            }
            MetaOp::Convert => {
                rsv.convert_meta(subvol, bytes);
                Ok(())
            }
        }
    }
}
