// SPDX-License-Identifier: GPL-2.0

//! The instance's lookup structures: subvolumes, their inodes, and which
//! inode each changeset name belongs to, under one short-held spinlock.
//!
//! Inodes are reference counted ([`Arc`]): a command takes a reference
//! under the lock and works on the inode after dropping it. Nothing
//! allocates under the lock: new nodes are preallocated before it is taken,
//! and removed ones are freed after it is dropped.

use kernel::{
    new_spinlock,
    prelude::*,
    rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation},
    sync::{Arc, SpinLock},
};

use crate::{
    changeset::ChangesetName,
    failure::{fail, QResult},
    ids::{Ino, SubvolId},
    inode::Inode,
};

/// One subvolume.
pub(crate) struct Subvol {
    inodes: RBTree<Ino, Arc<Inode>>,
    /// Whether its root leaf waits for the next commit to be accounted.
    leaf_pending: bool,
    /// Flushes of this subvolume so far (SPEC §1.5a).
    flushes: u64,
}

impl Subvol {
    /// A subvolume with no inode.
    fn new() -> Self {
        Self {
            inodes: RBTree::new(),
            leaf_pending: false,
            flushes: 0,
        }
    }
}

/// What the lookup lock protects.
///
/// # Invariants
///
/// `inodes` is the number of inodes over all of `subvols`.
pub(crate) struct Lookup {
    subvols: RBTree<SubvolId, Subvol>,
    /// Deleted subvolumes (their ids are never used again).
    retired: RBTree<SubvolId, ()>,
    /// The deleted subvolumes a commit still has to settle: only those, so
    /// that a commit's cost does not grow with every subvolume ever
    /// deleted.
    unsettled: RBTree<SubvolId, Retired>,
    /// Changeset name -> the inode `(subvol, ino)` it belongs to.
    names: RBTree<ChangesetName, (SubvolId, Ino)>,
    /// Number of inodes.
    inodes: usize,
}

impl Lookup {
    /// The lookup structures of a fresh instance: subvolume 5 only.
    pub(crate) fn new() -> Result<Self> {
        let mut subvols = RBTree::new();
        subvols.try_create_and_insert(SubvolId::TOP, Subvol::new(), GFP_KERNEL)?;
        Ok(Self {
            subvols,
            retired: RBTree::new(),
            unsettled: RBTree::new(),
            names: RBTree::new(),
            inodes: 0,
        })
    }
}

/// What became of a deleted subvolume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retired {
    /// Waits for the next commit to account its removal (`leaf`: its root
    /// leaf had been accounted).
    Dropping {
        /// Whether its root leaf had been accounted.
        leaf: bool,
    },
    /// Dropped, but its qgroup stays while it is charged for extents it
    /// owns that others still reference (simple quotas, SPEC §8.6: a
    /// "squota space holder").
    Holder,
}

/// The registry of one instance.
#[pin_data]
pub(crate) struct Registry {
    #[pin]
    inner: SpinLock<Lookup>,
}

/// A preallocated node of a subvolume's inode tree.
type InodePrealloc = RBTreeNodeReservation<Ino, Arc<Inode>>;

impl Registry {
    /// A registry holding `lookup`.
    pub(crate) fn new(lookup: Lookup) -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_spinlock!(lookup, "Registry::inner (lookup lock)"),
        })
    }

    /// Replaces everything with `lookup` (reset); the old structures are
    /// freed unlocked.
    pub(crate) fn replace(&self, lookup: Lookup) {
        let mut old = lookup;
        core::mem::swap(&mut *self.inner.lock(), &mut old);
        drop(old);
    }

    /// Whether subvolume `id` exists.
    pub(crate) fn has_subvol(&self, id: SubvolId) -> bool {
        self.inner.lock().subvols.get(&id).is_some()
    }

    /// ENOENT unless subvolume `id` exists.
    pub(crate) fn need_subvol(&self, id: SubvolId) -> QResult {
        if !self.has_subvol(id) {
            fail!(ENOENT, "subvolume {} does not exist", id);
        }
        Ok(())
    }

    /// Preallocates the node of a new subvolume `id`; EEXIST if it exists
    /// or existed (ids of deleted subvolumes are never used again).
    pub(crate) fn add_subvol(&self, id: SubvolId) -> QResult<SubvolSlot> {
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        if self.has_subvol(id) {
            fail!(EEXIST, "subvolume {} exists", id);
        }
        if self.inner.lock().retired.get(&id).is_some() {
            fail!(EEXIST, "subvolume {} existed (ids are never reused)", id);
        }
        Ok(SubvolSlot { id, node })
    }

    /// Preallocates what [`Self::retire`] needs.
    pub(crate) fn prepare_retire(&self) -> Result<RetiredSlot> {
        Ok(RetiredSlot(
            RBTreeNode::new(SubvolId(0), (), GFP_KERNEL)?,
            RBTreeNode::new(SubvolId(0), Retired::Holder, GFP_KERNEL)?,
        ))
    }

    /// Deletes subvolume `id`, whose inodes are all forgotten: it is gone
    /// for every command, and waits for the next commit (`leaf`: its root
    /// leaf had been accounted).
    pub(crate) fn retire(&self, id: SubvolId, leaf: bool, slot: RetiredSlot) {
        let RetiredSlot(retired, unsettled) = slot;
        let retired = retired.into_reservation().into_node(id, ());
        let unsettled = unsettled
            .into_reservation()
            .into_node(id, Retired::Dropping { leaf });
        let mut inner = self.inner.lock();
        let old = inner.subvols.remove_node(&id);
        inner.retired.insert(retired);
        inner.unsettled.insert(unsettled);
        drop(inner);
        // The subvolume's node is freed here, unlocked.
        drop(old);
    }

    #[cfg(qgroup_rs_testing)]
    /// The highest subvolume id used so far, deleted ones included.
    pub(crate) fn highest_id(&self) -> Option<SubvolId> {
        let inner = self.inner.lock();
        let live = inner.subvols.cursor_back().map(|c| *c.current().0);
        let retired = inner.retired.cursor_back().map(|c| *c.current().0);
        live.max(retired)
    }

    /// The deleted subvolumes waiting for a commit, with whether their root
    /// leaf had been accounted.
    pub(crate) fn dropped(&self) -> Result<KVec<(SubvolId, bool)>> {
        self.retired_where(|state| match state {
            Retired::Dropping { leaf } => Some(leaf),
            _ => None,
        })
    }

    /// The deleted subvolumes whose qgroup stays as a space holder.
    pub(crate) fn holders(&self) -> Result<KVec<(SubvolId, bool)>> {
        self.retired_where(|state| (state == Retired::Holder).then_some(false))
    }

    /// The deleted subvolumes `pick` says something of, with what it says.
    fn retired_where(
        &self,
        pick: impl Fn(Retired) -> Option<bool>,
    ) -> Result<KVec<(SubvolId, bool)>> {
        let n = self.inner.lock().unsettled.iter().count();
        let mut out = KVec::with_capacity(n, GFP_KERNEL)?;
        let inner = self.inner.lock();
        for (&id, &state) in inner.unsettled.iter() {
            if let Some(said) = pick(state) {
                // Deletions run with the instance alone: no more than `n`.
                kernel::warn_on!(out.push_within_capacity((id, said)).is_err());
            }
        }
        Ok(out)
    }

    /// Whether a deleted subvolume waits for a commit.
    pub(crate) fn any_dropped(&self) -> bool {
        self.inner
            .lock()
            .unsettled
            .values()
            .any(|s| matches!(s, Retired::Dropping { .. }))
    }

    /// The commit accounted the removal of deleted subvolume `id`: it is
    /// gone, or (`hold`) its qgroup stays as a space holder.
    pub(crate) fn settle_dropped(&self, id: SubvolId, hold: bool) {
        let mut inner = self.inner.lock();
        let gone = if hold {
            if let Some(state) = inner.unsettled.get_mut(&id) {
                *state = Retired::Holder;
            }
            None
        } else {
            inner.unsettled.remove_node(&id)
        };
        drop(inner);
        // The node is freed here, unlocked.
        drop(gone);
    }

    /// Whether subvolume `id` exists, or is deleted but not yet dropped, or
    /// its qgroup holds space.
    pub(crate) fn in_use(&self, id: SubvolId) -> bool {
        let inner = self.inner.lock();
        inner.subvols.get(&id).is_some() || inner.unsettled.get(&id).is_some()
    }

    /// Quotas are disabled: no qgroup holds space any more. (With nothing
    /// uncommitted, as `quota disable` requires, every unsettled subvolume
    /// is a holder.)
    pub(crate) fn forget_holders(&self) {
        let holders = core::mem::take(&mut self.inner.lock().unsettled);
        // Their nodes are freed here, unlocked.
        drop(holders);
    }

    /// Inserts a subvolume [`Self::add_subvol`] prepared.
    pub(crate) fn insert_subvol(&self, slot: SubvolSlot) {
        self.insert_subvol_with(slot, KVec::new());
    }

    /// Preallocates the lookup node of inode `ino` of a subvolume not yet
    /// inserted (a snapshot's).
    pub(crate) fn prepare_inode(&self, subvol: SubvolId, ino: Ino) -> Result<NewInode> {
        Ok(NewInode {
            inode: Arc::pin_init(Inode::new(subvol, ino), GFP_KERNEL)?,
            node: InodePrealloc::new(GFP_KERNEL)?,
        })
    }

    /// Inserts a subvolume [`Self::add_subvol`] prepared, with `inodes`
    /// (by [`Self::prepare_inode`], of distinct numbers).
    pub(crate) fn insert_subvol_with(&self, slot: SubvolSlot, inodes: KVec<NewInode>) {
        let mut subvol = Subvol::new();
        let n = inodes.len();
        for new in inodes {
            let ino = new.inode.ino;
            subvol.inodes.insert(new.node.into_node(ino, new.inode));
        }
        let node = slot.node.into_node(slot.id, subvol);
        let mut inner = self.inner.lock();
        let old = inner.subvols.insert(node);
        inner.inodes += n;
        drop(inner);
        drop(old);
    }

    #[cfg(qgroup_rs_testing)]
    /// Removes subvolume `id`, which must have no inodes: the undo of a
    /// [`Self::insert_subvol`] in a step that failed later. The node is
    /// freed unlocked.
    pub(crate) fn remove_subvol(&self, id: SubvolId) {
        let old = self.inner.lock().subvols.remove(&id);
        drop(old);
    }

    /// Every subvolume id, ascending.
    pub(crate) fn subvol_ids(&self) -> Result<KVec<SubvolId>> {
        loop {
            let n = self.inner.lock().subvols.iter().count();
            let mut ids = KVec::with_capacity(n, GFP_KERNEL)?;
            let inner = self.inner.lock();
            for &id in inner.subvols.keys() {
                if ids.push_within_capacity(id).is_err() {
                    break;
                }
            }
            if ids.len() == inner.subvols.iter().count() {
                return Ok(ids);
            }
        }
    }

    /// Inode `ino` of `subvol`: ENOENT for an unknown subvolume or inode.
    pub(crate) fn inode(&self, subvol: SubvolId, ino: Ino) -> QResult<Arc<Inode>> {
        let inner = self.inner.lock();
        let Some(sv) = inner.subvols.get(&subvol) else {
            fail!(ENOENT, "subvolume {} does not exist", subvol);
        };
        match sv.inodes.get(&ino) {
            Some(inode) => Ok(inode.clone()),
            None => fail!(ENOENT, "inode {}/{} does not exist", subvol, ino),
        }
    }

    /// Inode `ino` of `subvol`, created if missing (ENOENT for an unknown
    /// subvolume); also says whether this call created it.
    pub(crate) fn inode_or_new(&self, subvol: SubvolId, ino: Ino) -> QResult<(Arc<Inode>, bool)> {
        if let Ok(inode) = self.inode(subvol, ino) {
            return Ok((inode, false));
        }
        let inode = Arc::pin_init(Inode::new(subvol, ino), GFP_KERNEL)?;
        let node = InodePrealloc::new(GFP_KERNEL)?;
        let mut inner = self.inner.lock();
        let lookup = &mut *inner;
        let Some(sv) = lookup.subvols.get_mut(&subvol) else {
            fail!(ENOENT, "subvolume {} does not exist", subvol);
        };
        if let Some(existing) = sv.inodes.get(&ino) {
            // Another command created it meanwhile; ours is freed unlocked
            // (locals drop in reverse order: the guard first).
            return Ok((existing.clone(), false));
        }
        sv.inodes.insert(node.into_node(ino, inode.clone()));
        lookup.inodes += 1;
        Ok((inode, true))
    }

    /// Forgets `inode` and the changeset names bound to it (`names`). The
    /// caller holds the inode lock.
    pub(crate) fn forget(&self, inode: &Inode, names: impl Iterator<Item = ChangesetName>) {
        let removed = {
            let mut inner = self.inner.lock();
            let removed = inner
                .subvols
                .get_mut(&inode.subvol)
                .and_then(|sv| sv.inodes.remove_node(&inode.ino));
            if removed.is_some() {
                inner.inodes -= 1;
            }
            for name in names {
                if inner.names.get(&name) == Some(&(inode.subvol, inode.ino)) {
                    // A name node is small; it is freed under the lock
                    // (`kfree` never sleeps).
                    inner.names.remove(&name);
                }
            }
            removed
        };
        // The last reference to the inode may go here, unlocked.
        drop(removed);
    }

    /// Every inode, of `subvol` or of all subvolumes, by (subvol, ino).
    /// Costs O(the inodes listed + log S): one subvolume's are found by
    /// lookup, not by walking the others.
    pub(crate) fn inodes(&self, subvol: Option<SubvolId>) -> Result<KVec<Arc<Inode>>> {
        let count = |inner: &Lookup| match subvol {
            None => inner.inodes,
            Some(id) => inner
                .subvols
                .get(&id)
                .map_or(0, |sv| sv.inodes.iter().count()),
        };
        loop {
            let n = count(&self.inner.lock());
            let mut out = KVec::with_capacity(n, GFP_KERNEL)?;
            let inner = self.inner.lock();
            if count(&inner) > n {
                continue;
            }
            let mut push = |sv: &Subvol| {
                for inode in sv.inodes.values() {
                    // INVARIANT: at most `n` inodes under this hold of the
                    // lock, and room for `n` was made above.
                    kernel::warn_on!(out.push_within_capacity(inode.clone()).is_err());
                }
            };
            match subvol {
                None => inner.subvols.values().for_each(&mut push),
                Some(id) => inner.subvols.get(&id).into_iter().for_each(&mut push),
            }
            return Ok(out);
        }
    }

    /// The inode `(subvol, ino)` changeset `name` belongs to, if any.
    pub(crate) fn name_owner(&self, name: ChangesetName) -> Option<(SubvolId, Ino)> {
        self.inner.lock().names.get(&name).copied()
    }

    /// Binds `name` to inode `(subvol, ino)`: EINVAL if it belongs to
    /// another inode. Returns whether it was new (and so bound now).
    pub(crate) fn claim_name(
        &self,
        name: ChangesetName,
        subvol: SubvolId,
        ino: Ino,
    ) -> QResult<bool> {
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let mut inner = self.inner.lock();
        match inner.names.get(&name) {
            Some(&owner) if owner == (subvol, ino) => Ok(false),
            Some(&(s, i)) => fail!(EINVAL, "changeset {} belongs to inode {}/{}", name, s, i),
            None => {
                inner.names.insert(node.into_node(name, (subvol, ino)));
                Ok(true)
            }
        }
    }

    /// Unbinds `name` (after a failed first use, or a drop).
    pub(crate) fn release_name(&self, name: ChangesetName) {
        let node = self.inner.lock().names.remove_node(&name);
        drop(node);
    }

    /// Marks the root leaf of `subvol` as waiting for the next commit to
    /// account it (SPEC §8.2), or not.
    pub(crate) fn set_leaf_pending(&self, subvol: SubvolId, pending: bool) {
        if let Some(sv) = self.inner.lock().subvols.get_mut(&subvol) {
            sv.leaf_pending = pending;
        }
    }

    /// Whether the root leaf of `subvol` waits for the next commit to be
    /// accounted (or, deleted, was never accounted).
    pub(crate) fn leaf_pending(&self, subvol: SubvolId) -> bool {
        let inner = self.inner.lock();
        match inner.subvols.get(&subvol) {
            Some(sv) => sv.leaf_pending,
            None => matches!(
                inner.unsettled.get(&subvol),
                Some(Retired::Dropping { leaf: false } | Retired::Holder)
            ),
        }
    }

    /// Takes (and clears) the mark of [`Self::set_leaf_pending`].
    pub(crate) fn take_leaf_pending(&self, subvol: SubvolId) -> bool {
        self.inner
            .lock()
            .subvols
            .get_mut(&subvol)
            .is_some_and(|sv| core::mem::take(&mut sv.leaf_pending))
    }

    /// Flushes of `subvol` so far.
    pub(crate) fn flushes(&self, subvol: SubvolId) -> u64 {
        self.inner
            .lock()
            .subvols
            .get(&subvol)
            .map_or(0, |sv| sv.flushes)
    }

    /// Counts one more flush of `subvol`.
    pub(crate) fn note_flush(&self, subvol: SubvolId) {
        if let Some(sv) = self.inner.lock().subvols.get_mut(&subvol) {
            sv.flushes += 1;
        }
    }
}

/// A subvolume node preallocated by [`Registry::add_subvol`].
pub(crate) struct SubvolSlot {
    id: SubvolId,
    node: RBTreeNodeReservation<SubvolId, Subvol>,
}

/// An inode of a subvolume not yet inserted, with its lookup node
/// ([`Registry::prepare_inode`]).
pub(crate) struct NewInode {
    /// The inode.
    pub(crate) inode: Arc<Inode>,
    node: InodePrealloc,
}

/// The nodes preallocated by [`Registry::prepare_retire`]: in the ids ever
/// deleted, and in those a commit still has to settle.
pub(crate) struct RetiredSlot(RBTreeNode<SubvolId, ()>, RBTreeNode<SubvolId, Retired>);
