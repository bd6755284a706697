// SPDX-License-Identifier: GPL-2.0

//! The filesystem instance: subvolumes, inodes, qgroups and the composite
//! operations of SPEC §1.5.
//!
//! One [`FsState`] lives from module load (or `reset`) to unload. Its owner
//! keeps it under a mutex, the filesystem lock, so every operation here runs
//! with exclusive access and may allocate with `GFP_KERNEL`; the io trees'
//! and the qgroup tree's spinlocks are taken inside, never nested with each
//! other.

use kernel::{
    fmt,
    prelude::*,
    rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation},
};

use crate::{
    changeset::{ByteRange, ExtentChangeset},
    data_rsv::{round_range, DataRsv, MAX_FILE_END},
    extent_io_tree::{ExtentBits, MAX_END},
    failure::{fail, Failure, QResult},
    inode::Inode,
    legacy::{Legacy, LegacySwitch},
    qgroup::{Counter, Counters, QgroupId, QgroupTree, RsvType},
};

/// The top-level subvolume, always present.
pub(crate) const TOP_SUBVOL: u64 = 5;
/// The first id `subvol create` accepts.
pub(crate) const FIRST_FREE_SUBVOL: u64 = 256;
/// The first inode number.
pub(crate) const FIRST_INO: u64 = 256;

/// A changeset name: 1 to 16 of `[a-z0-9_]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ChangesetName {
    bytes: [u8; 16],
    len: u8,
}

impl ChangesetName {
    /// The name `s`, if valid.
    pub(crate) fn new(s: &str) -> Option<Self> {
        let valid = (1..=16).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return None;
        }
        let mut bytes = [0u8; 16];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(Self {
            bytes,
            len: s.len() as u8,
        })
    }
}

impl core::fmt::Display for ChangesetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = core::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("?");
        f.write_str(s)
    }
}

/// A changeset kept by name between commands, bound to one inode.
struct NamedChangeset {
    subvol: u64,
    ino: u64,
    changeset: ExtentChangeset,
}

/// One subvolume.
struct Subvol {
    inodes: RBTree<u64, Pin<KBox<Inode>>>,
    /// Committed extent bytes dropped since the last commit; the commit
    /// takes them off rfer / excl.
    dropped_committed: u64,
}

/// Event counters shown in the `stats` file (with `underflows`, which the
/// qgroup tree counts).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stats {
    /// Commands that failed with EDQUOT.
    pub(crate) edquot: u64,
    /// Commits.
    pub(crate) commits: u64,
    /// Leaked reserved ranges found at unlink.
    pub(crate) leaks: u64,
}

/// The filesystem instance.
pub(crate) struct FsState {
    sectorsize: u64,
    nodesize: u64,
    quota: bool,
    legacy: Legacy,
    qgroups: Pin<KBox<QgroupTree>>,
    subvols: RBTree<u64, Subvol>,
    changesets: RBTree<ChangesetName, NamedChangeset>,
    stats: Stats,
    /// Underflows counted by qgroup trees that `quota disable` / `enable`
    /// replaced since the last reset.
    past_underflows: u64,
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

impl FsState {
    /// A fresh instance: quotas disabled, subvolume 5 only, switches off.
    ///
    /// `sectorsize` and `nodesize` must be valid (see [`valid_sizes`]).
    pub(crate) fn new(sectorsize: u64, nodesize: u64) -> Result<Self> {
        let mut fs = Self {
            sectorsize,
            nodesize,
            quota: false,
            legacy: Legacy::default(),
            qgroups: KBox::pin_init(QgroupTree::new(), GFP_KERNEL)?,
            subvols: RBTree::new(),
            changesets: RBTree::new(),
            stats: Stats::default(),
            past_underflows: 0,
        };
        fs.subvols.try_create_and_insert(
            TOP_SUBVOL,
            Subvol {
                inodes: RBTree::new(),
                dropped_committed: 0,
            },
            GFP_KERNEL,
        )?;
        Ok(fs)
    }

    /// The sector size.
    pub(crate) fn sectorsize(&self) -> u64 {
        self.sectorsize
    }

    /// The node size.
    pub(crate) fn nodesize(&self) -> u64 {
        self.nodesize
    }

    /// Whether quotas are enabled.
    pub(crate) fn quota_enabled(&self) -> bool {
        self.quota
    }

    /// The legacy switches.
    pub(crate) fn legacy(&self) -> Legacy {
        self.legacy
    }

    /// Turns a legacy switch on or off.
    pub(crate) fn set_legacy(&mut self, switch: LegacySwitch, on: bool) {
        self.legacy.set(switch, on);
    }

    /// The qgroup hierarchy.
    pub(crate) fn qgroups(&self) -> &QgroupTree {
        &self.qgroups
    }

    /// Counter underflows since the last reset.
    pub(crate) fn underflows(&self) -> u64 {
        self.past_underflows + self.qgroups.underflows()
    }

    /// Replaces the qgroup hierarchy, keeping its underflow count.
    fn replace_qgroups(&mut self, qgroups: Pin<KBox<QgroupTree>>) {
        self.past_underflows += self.qgroups.underflows();
        self.qgroups = qgroups;
    }

    /// The event counters.
    pub(crate) fn stats(&self) -> Stats {
        self.stats
    }

    /// Counts a command that failed with EDQUOT.
    pub(crate) fn note_edquot(&mut self) {
        self.stats.edquot += 1;
    }

    /// Calls `f` with every subvolume id, ascending.
    pub(crate) fn for_each_subvol(&self, mut f: impl FnMut(u64)) {
        for &id in self.subvols.keys() {
            f(id);
        }
    }

    /// Calls `f` with every inode, by (subvolume, ino).
    pub(crate) fn for_each_inode<E>(
        &self,
        mut f: impl FnMut(&Inode) -> core::result::Result<(), E>,
    ) -> core::result::Result<(), E> {
        for subvol in self.subvols.values() {
            for inode in subvol.inodes.values() {
                f(inode)?;
            }
        }
        Ok(())
    }

    /// A copy of the io tree states of inode `ino` of `subvol`.
    pub(crate) fn inode_states(
        &self,
        subvol: u64,
        ino: u64,
    ) -> QResult<KVec<(ByteRange, ExtentBits)>> {
        Ok(self.inode(subvol, ino)?.io_tree.snapshot(0, MAX_END)?)
    }

    /// Bytes of `[start, end]` of inode `ino` of `subvol` carrying any of
    /// `bits` in its io tree (0 for an unknown inode).
    pub(crate) fn inode_bytes(
        &self,
        subvol: u64,
        ino: u64,
        range: ByteRange,
        bits: ExtentBits,
    ) -> u64 {
        self.inode(subvol, ino)
            .ok()
            .and_then(|inode| inode.io_tree.count_bits(range.start, range.end, bits).ok())
            .unwrap_or(0)
    }

    /// meta_prealloc bytes inode `ino` of `subvol` holds.
    pub(crate) fn inode_meta_prealloc(&self, subvol: u64, ino: u64) -> Option<u64> {
        self.inode(subvol, ino)
            .ok()
            .map(|inode| inode.meta_prealloc)
    }

    /// The changeset called `name`, if any.
    pub(crate) fn changeset(&self, name: ChangesetName) -> Option<&ExtentChangeset> {
        self.changesets.get(&name).map(|named| &named.changeset)
    }

    /// Calls `f` with every inode of subvolume `id`, by ino.
    pub(crate) fn for_each_inode_of<E>(
        &self,
        id: u64,
        mut f: impl FnMut(&Inode) -> core::result::Result<(), E>,
    ) -> core::result::Result<(), E> {
        if let Some(subvol) = self.subvols.get(&id) {
            for inode in subvol.inodes.values() {
                f(inode)?;
            }
        }
        Ok(())
    }

    /// Committed extent bytes of subvolume `id` dropped since the last commit.
    pub(crate) fn dropped_committed(&self, id: u64) -> u64 {
        self.subvols.get(&id).map_or(0, |s| s.dropped_committed)
    }

    /// The current number of io tree states over all inodes.
    pub(crate) fn extent_states(&self) -> usize {
        let mut n = 0;
        let _ = self.for_each_inode(|inode| -> core::result::Result<(), ()> {
            n += inode.io_tree.state_count();
            Ok(())
        });
        n
    }

    fn rsv(&self) -> DataRsv<'_> {
        DataRsv {
            qgroups: &self.qgroups,
            legacy: self.legacy,
        }
    }

    fn reserved_stage(&self) -> bool {
        self.quota && !self.legacy.is_on(LegacySwitch::NoReservedStage)
    }

    fn need_quota(&self) -> QResult {
        if !self.quota {
            fail!(ENOTCONN, "quotas are disabled");
        }
        Ok(())
    }

    fn subvol(&self, id: u64) -> QResult<&Subvol> {
        match self.subvols.get(&id) {
            Some(subvol) => Ok(subvol),
            None => fail!(ENOENT, "subvolume {} does not exist", id),
        }
    }

    fn inode(&self, subvol: u64, ino: u64) -> QResult<&Inode> {
        match self.subvol(subvol)?.inodes.get(&ino) {
            Some(inode) => Ok(inode),
            None => fail!(ENOENT, "inode {}/{} does not exist", subvol, ino),
        }
    }

    fn inode_mut(&mut self, subvol: u64, ino: u64) -> Option<Pin<&mut Inode>> {
        self.subvols
            .get_mut(&subvol)?
            .inodes
            .get_mut(&ino)
            .map(|inode| inode.as_mut())
    }

    /// Makes sure inode `ino` of `subvol` exists; returns whether it was
    /// created. ENOENT for an unknown subvolume.
    fn ensure_inode(&mut self, subvol: u64, ino: u64) -> QResult<bool> {
        let Some(sv) = self.subvols.get_mut(&subvol) else {
            fail!(ENOENT, "subvolume {} does not exist", subvol);
        };
        if sv.inodes.get(&ino).is_some() {
            return Ok(false);
        }
        let inode = KBox::pin_init(Inode::new(subvol, ino), GFP_KERNEL)?;
        sv.inodes.insert(RBTreeNode::new(ino, inode, GFP_KERNEL)?);
        Ok(true)
    }

    /// Forgets an inode and the changesets bound to it.
    fn forget_inode(&mut self, subvol: u64, ino: u64) {
        if let Some(sv) = self.subvols.get_mut(&subvol) {
            sv.inodes.remove(&ino);
        }
        while let Some(name) = self
            .changesets
            .iter()
            .find(|(_, cs)| cs.subvol == subvol && cs.ino == ino)
            .map(|(name, _)| *name)
        {
            self.changesets.remove(&name);
        }
    }

    /// Runs `op` on inode `ino` of `subvol`, created if missing (ENOENT for
    /// an unknown subvolume); if `op` fails and the inode was created for
    /// it, forgets the inode again (a failed command creates no inode).
    fn with_new_inode<T>(
        &mut self,
        subvol: u64,
        ino: u64,
        op: impl FnOnce(&mut Self) -> QResult<T>,
    ) -> QResult<T> {
        let created = self.ensure_inode(subvol, ino)?;
        let result = op(self);
        // After a failure half-way (out of memory) the inode may hold bits
        // or extents; it stays then, so that nothing it holds is lost.
        let empty = self
            .inode(subvol, ino)
            .is_ok_and(|inode| inode.io_tree.is_empty() && inode.extents.is_empty());
        if result.is_err() && created && empty {
            self.forget_inode(subvol, ino);
        }
        result
    }

    /// Whether anything is uncommitted: DELALLOC bytes, extents allocated or
    /// dropped since the last commit.
    fn has_uncommitted(&self) -> QResult<bool> {
        for subvol in self.subvols.values() {
            if subvol.dropped_committed != 0 {
                return Ok(true);
            }
            for inode in subvol.inodes.values() {
                if inode.has_uncommitted()? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// `subvol create ID`.
    pub(crate) fn subvol_create(&mut self, id: u64) -> QResult {
        if id != TOP_SUBVOL && !(FIRST_FREE_SUBVOL..=QgroupId::MAX_ID).contains(&id) {
            fail!(EINVAL, "subvolume id {} out of range", id);
        }
        if self.subvols.get(&id).is_some() {
            fail!(EEXIST, "subvolume {} exists", id);
        }
        let node = RBTreeNode::new(
            id,
            Subvol {
                inodes: RBTree::new(),
                dropped_committed: 0,
            },
            GFP_KERNEL,
        )?;
        if self.quota {
            self.qgroups
                .create(QgroupId::level0(id), self.root_counters(0))?;
        }
        self.subvols.insert(node);
        Ok(())
    }

    /// Counters of a level-0 qgroup whose subvolume has `committed` extent
    /// bytes besides its tree root.
    fn root_counters(&self, committed: u64) -> Counters {
        let bytes = self.nodesize.saturating_add(committed);
        Counters {
            rfer: bytes,
            excl: bytes,
            ..Counters::default()
        }
    }

    /// `quota enable`: a rescan creates `0/S` for every subvolume with
    /// rfer = excl = nodesize + its committed extent bytes.
    pub(crate) fn quota_enable(&mut self) -> QResult {
        if self.quota {
            return Ok(());
        }
        if self.has_uncommitted()? {
            fail!(EBUSY, "uncommitted changes, commit first");
        }
        let qgroups = KBox::pin_init(QgroupTree::new(), GFP_KERNEL)?;
        for (&id, subvol) in self.subvols.iter() {
            let mut committed = 0u64;
            for inode in subvol.inodes.values() {
                committed += inode
                    .extents
                    .count_bits(0, MAX_END, ExtentBits::EXTENT_COMMITTED)?;
            }
            qgroups.create(QgroupId::level0(id), self.root_counters(committed))?;
        }
        self.replace_qgroups(qgroups);
        self.quota = true;
        Ok(())
    }

    /// `quota disable`: drops every qgroup, every QGROUP_RESERVED bit and
    /// every meta reservation.
    pub(crate) fn quota_disable(&mut self) -> QResult {
        if !self.quota {
            return Ok(());
        }
        if self.has_uncommitted()? {
            fail!(EBUSY, "uncommitted changes, commit first");
        }
        let qgroups = KBox::pin_init(QgroupTree::new(), GFP_KERNEL)?;
        for subvol in self.subvols.values_mut() {
            for inode in subvol.inodes.values_mut() {
                inode
                    .io_tree
                    .clear_bits(0, MAX_END, ExtentBits::QGROUP_RESERVED, None)?;
                *inode.as_mut().project().meta_prealloc = 0;
            }
        }
        self.replace_qgroups(qgroups);
        self.quota = false;
        Ok(())
    }

    /// `qgroup create QG` (level >= 1, checked by the parser).
    pub(crate) fn qgroup_create(&mut self, id: QgroupId) -> QResult {
        self.need_quota()?;
        self.qgroups.create(id, Counters::default())
    }

    /// `qgroup destroy QG`.
    pub(crate) fn qgroup_destroy(&mut self, id: QgroupId) -> QResult {
        self.need_quota()?;
        self.qgroups.destroy(id)
    }

    /// `qgroup assign CHILD PARENT` (levels checked by the parser).
    pub(crate) fn qgroup_assign(&mut self, child: QgroupId, parent: QgroupId) -> QResult {
        self.need_quota()?;
        self.qgroups.assign(child, parent)
    }

    /// `qgroup remove CHILD PARENT`.
    pub(crate) fn qgroup_remove(&mut self, child: QgroupId, parent: QgroupId) -> QResult {
        self.need_quota()?;
        self.qgroups.remove(child, parent)
    }

    /// `qgroup limit [-e] SIZE|none QG`.
    pub(crate) fn qgroup_limit(&mut self, id: QgroupId, excl: bool, max: Option<u64>) -> QResult {
        self.need_quota()?;
        self.qgroups.limit(id, excl, max)
    }

    /// `write S INO OFF LEN [fail=meta]`: a buffered write. Returns the
    /// bytes newly charged to may_use.data.
    pub(crate) fn write(
        &mut self,
        subvol: u64,
        ino: u64,
        off: u64,
        len: u64,
        fail_meta: bool,
    ) -> QResult<u64> {
        let range = round_range(off, len, self.sectorsize)?;
        self.with_new_inode(subvol, ino, |fs| {
            let inode = fs.inode(subvol, ino)?;
            let rsv = fs.rsv();
            let mut changeset = ExtentChangeset::new();
            let reserved = if fs.quota {
                rsv.reserve_data(inode, &mut changeset, range)?
            } else {
                0
            };
            let meta = if fail_meta {
                Err(Failure::new(
                    EDQUOT,
                    format_args!("injected meta reservation failure"),
                ))
            } else if fs.quota {
                fs.qgroups
                    .reserve(QgroupId::level0(subvol), RsvType::MetaPrealloc, fs.nodesize)
            } else {
                Ok(())
            };
            let marked = meta.and_then(|()| {
                inode
                    .io_tree
                    .set_bits(range.start, range.end, ExtentBits::DELALLOC, None)
                    .map_err(|e| {
                        if fs.quota {
                            let _ = fs.qgroups.discharge(
                                QgroupId::level0(subvol),
                                Counter::MayUse(RsvType::MetaPrealloc),
                                fs.nodesize,
                            );
                        }
                        Failure::from(e)
                    })
            });
            if let Err(failure) = marked {
                if fs.quota {
                    rsv.free_data(inode, Some(&changeset), range)?;
                }
                return Err(failure);
            }
            let meta = if fs.quota { fs.nodesize } else { 0 };
            if let Some(inode) = fs.inode_mut(subvol, ino) {
                let held = inode.project().meta_prealloc;
                *held = held.saturating_add(meta);
            }
            Ok(reserved)
        })
    }

    /// Allocates an extent for `range` of `inode` (copy-on-write: bytes
    /// already backed lose their old extent). Returns the committed bytes
    /// the new extent replaced.
    fn allocate_extent(&self, inode: &Inode, range: ByteRange) -> QResult<u64> {
        let extents = &inode.extents;
        let old_new = extents.clear_bits(range.start, range.end, ExtentBits::EXTENT_NEW, None)?;
        let old_committed =
            extents.clear_bits(range.start, range.end, ExtentBits::EXTENT_COMMITTED, None)?;
        extents.set_bits(range.start, range.end, ExtentBits::EXTENT_NEW, None)?;
        if self.reserved_stage() {
            let qg = QgroupId::level0(inode.subvol);
            self.qgroups.discharge(qg, Counter::Reserved, old_new)?;
            self.qgroups
                .charge(qg, Counter::Reserved, range.len(), false)?;
        }
        Ok(old_committed)
    }

    /// The parts of `range` not covered by `covered` (ascending, disjoint).
    fn holes(range: ByteRange, covered: &[ByteRange]) -> Result<KVec<ByteRange>> {
        let mut holes = KVec::new();
        let mut pos = range.start;
        for c in covered.iter().filter_map(|c| c.intersect(&range)) {
            if c.start > pos {
                holes.push(
                    ByteRange {
                        start: pos,
                        end: c.start - 1,
                    },
                    GFP_KERNEL,
                )?;
            }
            pos = c.end + 1;
        }
        if pos <= range.end {
            holes.push(
                ByteRange {
                    start: pos,
                    end: range.end,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(holes)
    }

    /// `fallocate S INO OFF LEN`. Returns the bytes newly charged to
    /// may_use.data.
    pub(crate) fn fallocate(&mut self, subvol: u64, ino: u64, off: u64, len: u64) -> QResult<u64> {
        let range = round_range(off, len, self.sectorsize)?;
        self.with_new_inode(subvol, ino, |fs| fs.fallocate_inode(subvol, ino, range))
    }

    fn fallocate_inode(&mut self, subvol: u64, ino: u64, range: ByteRange) -> QResult<u64> {
        let inode = self.inode(subvol, ino)?;
        let qg = QgroupId::level0(subvol);
        let backed_bits = ExtentBits::EXTENT_NEW.union(ExtentBits::EXTENT_COMMITTED);
        let mut backed = KVec::new();
        inode
            .extents
            .ranges_with_bits(range.start, range.end, backed_bits, &mut backed)?;
        let unbacked = Self::holes(range, &backed)?;
        // Bytes to allocate: neither backed nor dirty.
        let mut busy = KVec::new();
        inode
            .io_tree
            .ranges_with_bits(range.start, range.end, ExtentBits::DELALLOC, &mut busy)?;
        let mut to_allocate = KVec::new();
        for hole in unbacked.iter() {
            for r in Self::holes(*hole, &busy)?.iter() {
                to_allocate.push(*r, GFP_KERNEL)?;
            }
        }

        let rsv = self.rsv();
        let mut changeset = ExtentChangeset::new();
        let mut reserved = 0u64;
        let mut meta_taken = false;
        let mut result: QResult = Ok(());
        if self.quota {
            for r in unbacked.iter() {
                match rsv.reserve_data(inode, &mut changeset, *r) {
                    Ok(n) => reserved += n,
                    Err(failure) => {
                        result = Err(failure);
                        break;
                    }
                }
            }
            if result.is_ok() {
                result = self
                    .qgroups
                    .reserve(qg, RsvType::MetaPertrans, self.nodesize);
                meta_taken = result.is_ok();
            }
        }
        if let Err(failure) = result {
            if meta_taken {
                let _ = self.qgroups.discharge(
                    qg,
                    Counter::MayUse(RsvType::MetaPertrans),
                    self.nodesize,
                );
            }
            for r in unbacked.iter() {
                let _ = rsv.free_data(inode, Some(&changeset), *r);
            }
            return Err(failure);
        }
        // Allocation only fails on ENOMEM; what was done stays consistent.
        for r in to_allocate.iter() {
            self.allocate_extent(inode, *r)?;
            if self.quota {
                rsv.release_data(inode, *r)?;
            }
        }
        Ok(reserved)
    }

    /// `writeback [S INO]`: every DELALLOC range of the inode (or of every
    /// inode) gets an extent, its reservation is released and the inode's
    /// meta_prealloc freed.
    pub(crate) fn writeback(&mut self, target: Option<(u64, u64)>) -> QResult {
        if let Some((subvol, ino)) = target {
            self.inode(subvol, ino)?;
            return self.writeback_inode(subvol, ino);
        }
        let mut all = KVec::new();
        for (&subvol, sv) in self.subvols.iter() {
            for &ino in sv.inodes.keys() {
                all.push((subvol, ino), GFP_KERNEL)?;
            }
        }
        for &(subvol, ino) in all.iter() {
            self.writeback_inode(subvol, ino)?;
        }
        Ok(())
    }

    fn writeback_inode(&mut self, subvol: u64, ino: u64) -> QResult {
        let inode = self.inode(subvol, ino)?;
        let mut dirty = KVec::new();
        inode
            .io_tree
            .ranges_with_bits(0, MAX_END, ExtentBits::DELALLOC, &mut dirty)?;
        let rsv = self.rsv();
        let mut dropped = 0u64;
        for r in dirty.iter() {
            dropped += self.allocate_extent(inode, *r)?;
            if self.quota {
                rsv.release_data(inode, *r)?;
            }
            inode
                .io_tree
                .clear_bits(r.start, r.end, ExtentBits::DELALLOC, None)?;
        }
        let meta = inode.meta_prealloc;
        if self.quota {
            self.qgroups.discharge(
                QgroupId::level0(subvol),
                Counter::MayUse(RsvType::MetaPrealloc),
                meta,
            )?;
        }
        if let Some(sv) = self.subvols.get_mut(&subvol) {
            sv.dropped_committed += dropped;
        }
        if let Some(inode) = self.inode_mut(subvol, ino) {
            *inode.project().meta_prealloc = 0;
        }
        Ok(())
    }

    /// `truncate S INO SIZE`: frees the reservations of dirty bytes past
    /// the sector holding SIZE and drops the extents there.
    pub(crate) fn truncate(&mut self, subvol: u64, ino: u64, size: u64) -> QResult {
        if size > MAX_FILE_END {
            fail!(EINVAL, "size past 2^63");
        }
        self.inode(subvol, ino)?;
        self.truncate_inode(subvol, ino, size)
    }

    fn truncate_inode(&mut self, subvol: u64, ino: u64, size: u64) -> QResult {
        let mask = self.sectorsize - 1;
        let cut = (size + mask) & !mask;
        if cut > MAX_END {
            return Ok(());
        }
        let inode = self.inode(subvol, ino)?;
        let rest = ByteRange {
            start: cut,
            end: MAX_END,
        };
        let mut dirty = KVec::new();
        inode
            .io_tree
            .ranges_with_bits(rest.start, rest.end, ExtentBits::DELALLOC, &mut dirty)?;
        let rsv = self.rsv();
        for r in dirty.iter() {
            if self.quota {
                rsv.free_data(inode, None, *r)?;
            }
            inode
                .io_tree
                .clear_bits(r.start, r.end, ExtentBits::DELALLOC, None)?;
        }
        let new = inode
            .extents
            .clear_bits(rest.start, rest.end, ExtentBits::EXTENT_NEW, None)?;
        let committed =
            inode
                .extents
                .clear_bits(rest.start, rest.end, ExtentBits::EXTENT_COMMITTED, None)?;
        if self.reserved_stage() {
            self.qgroups
                .discharge(QgroupId::level0(subvol), Counter::Reserved, new)?;
        }
        if let Some(sv) = self.subvols.get_mut(&subvol) {
            sv.dropped_committed += committed;
        }
        Ok(())
    }

    /// `unlink S INO`: truncate to 0, free the inode's meta_prealloc, report
    /// and free any reservation left (a leak), forget the inode.
    pub(crate) fn unlink(&mut self, subvol: u64, ino: u64) -> QResult {
        self.inode(subvol, ino)?;
        self.truncate_inode(subvol, ino, 0)?;
        let inode = self.inode(subvol, ino)?;
        let qg = QgroupId::level0(subvol);
        if self.quota {
            self.qgroups.discharge(
                qg,
                Counter::MayUse(RsvType::MetaPrealloc),
                inode.meta_prealloc,
            )?;
        }
        let mut leaked = KVec::new();
        inode
            .io_tree
            .ranges_with_bits(0, MAX_END, ExtentBits::QGROUP_RESERVED, &mut leaked)?;
        let rsv = self.rsv();
        for r in leaked.iter() {
            pr_warn!(
                "leaking qgroup reserved space, ino: {}, start: {}, end: {}\n",
                ino,
                r.start,
                r.end
            );
            rsv.free_data(inode, None, *r)?;
        }
        self.stats.leaks += leaked.len() as u64;
        self.forget_inode(subvol, ino);
        Ok(())
    }

    /// `commit`: accounts every extent allocated or dropped since the last
    /// commit and frees all meta_pertrans reservations.
    pub(crate) fn commit(&mut self) -> QResult {
        let quota = self.quota;
        let reserved_stage = self.reserved_stage();
        for (&id, subvol) in self.subvols.iter_mut() {
            // Account exactly what was converted, even if a conversion runs
            // out of memory half-way, so a later commit neither misses nor
            // repeats anything.
            let mut new = 0u64;
            let converted = (|| -> QResult {
                for inode in subvol.inodes.values() {
                    let mut ranges = KVec::new();
                    inode.extents.ranges_with_bits(
                        0,
                        MAX_END,
                        ExtentBits::EXTENT_NEW,
                        &mut ranges,
                    )?;
                    for r in ranges.iter() {
                        inode.extents.set_bits(
                            r.start,
                            r.end,
                            ExtentBits::EXTENT_COMMITTED,
                            None,
                        )?;
                        new += inode.extents.clear_bits(
                            r.start,
                            r.end,
                            ExtentBits::EXTENT_NEW,
                            None,
                        )?;
                    }
                }
                Ok(())
            })();
            if quota {
                let qg = QgroupId::level0(id);
                for counter in [Counter::Rfer, Counter::Excl] {
                    self.qgroups.charge(qg, counter, new, false)?;
                    self.qgroups
                        .discharge(qg, counter, subvol.dropped_committed)?;
                }
                if reserved_stage {
                    self.qgroups.discharge(qg, Counter::Reserved, new)?;
                }
            }
            subvol.dropped_committed = 0;
            converted?;
        }
        self.qgroups.free_all_pertrans();
        self.stats.commits += 1;
        Ok(())
    }

    /// `sync`: writeback of every inode, then commit.
    pub(crate) fn sync(&mut self) -> QResult {
        self.writeback(None)?;
        self.commit()
    }

    /// `reserve S INO OFF LEN CS`: reserve_data into the named changeset,
    /// created on success. Returns the bytes newly charged.
    pub(crate) fn reserve(
        &mut self,
        subvol: u64,
        ino: u64,
        off: u64,
        len: u64,
        name: ChangesetName,
    ) -> QResult<u64> {
        let range = round_range(off, len, self.sectorsize)?;
        self.need_quota()?;
        self.subvol(subvol)?;
        self.check_changeset_owner(name, subvol, ino, false)?;
        // A new changeset's node is allocated first: once the reservation is
        // made, recording it cannot fail.
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        self.with_new_inode(subvol, ino, |fs| {
            let Some(inode) = fs.subvols.get(&subvol).and_then(|sv| sv.inodes.get(&ino)) else {
                fail!(ENOENT, "inode {}/{} does not exist", subvol, ino);
            };
            let rsv = DataRsv {
                qgroups: &fs.qgroups,
                legacy: fs.legacy,
            };
            match fs.changesets.get_mut(&name) {
                Some(named) => rsv.reserve_data(inode, &mut named.changeset, range),
                None => {
                    let mut changeset = ExtentChangeset::new();
                    let n = rsv.reserve_data(inode, &mut changeset, range)?;
                    fs.changesets.insert(node.into_node(
                        name,
                        NamedChangeset {
                            subvol,
                            ino,
                            changeset,
                        },
                    ));
                    Ok(n)
                }
            }
        })
    }

    /// ENOENT for a missing changeset (when `must_exist`), EINVAL when it
    /// belongs to another inode.
    fn check_changeset_owner(
        &self,
        name: ChangesetName,
        subvol: u64,
        ino: u64,
        must_exist: bool,
    ) -> QResult {
        match self.changesets.get(&name) {
            None if must_exist => fail!(ENOENT, "changeset {} does not exist", name),
            Some(cs) if (cs.subvol, cs.ino) != (subvol, ino) => fail!(
                EINVAL,
                "changeset {} belongs to inode {}/{}",
                name,
                cs.subvol,
                cs.ino
            ),
            _ => Ok(()),
        }
    }

    /// `free S INO OFF LEN [CS]`. Returns the bytes freed.
    pub(crate) fn free(
        &mut self,
        subvol: u64,
        ino: u64,
        off: u64,
        len: u64,
        name: Option<ChangesetName>,
    ) -> QResult<u64> {
        let range = round_range(off, len, self.sectorsize)?;
        self.need_quota()?;
        let inode = self.inode(subvol, ino)?;
        let changeset = match name {
            Some(name) => {
                self.check_changeset_owner(name, subvol, ino, true)?;
                self.changesets.get(&name).map(|named| &named.changeset)
            }
            None => None,
        };
        self.rsv().free_data(inode, changeset, range)
    }

    /// `release S INO OFF LEN`. Returns the bytes whose bit was cleared.
    pub(crate) fn release(&mut self, subvol: u64, ino: u64, off: u64, len: u64) -> QResult<u64> {
        let range = round_range(off, len, self.sectorsize)?;
        self.need_quota()?;
        let inode = self.inode(subvol, ino)?;
        self.rsv().release_data(inode, range)
    }

    /// `changeset drop CS`.
    pub(crate) fn changeset_drop(&mut self, name: ChangesetName) -> QResult {
        match self.changesets.remove(&name) {
            Some(_) => Ok(()),
            None => fail!(ENOENT, "changeset {} does not exist", name),
        }
    }

    /// `meta reserve|free S BYTES prealloc|pertrans` and `meta convert S BYTES`.
    pub(crate) fn meta(&mut self, op: MetaOp, subvol: u64, bytes: u64) -> QResult {
        if bytes == 0 || bytes % self.nodesize != 0 {
            fail!(
                EINVAL,
                "meta bytes must be a positive multiple of nodesize {}",
                self.nodesize
            );
        }
        self.need_quota()?;
        self.subvol(subvol)?;
        let qg = QgroupId::level0(subvol);
        match op {
            MetaOp::Reserve(kind) => self.qgroups.reserve(qg, kind, bytes),
            MetaOp::Free(kind) => Ok(self.qgroups.discharge(qg, Counter::MayUse(kind), bytes)?),
            MetaOp::Convert => Ok(self.qgroups.convert_meta(qg, bytes)?),
        }
    }
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

kernel_display!(ChangesetName);
