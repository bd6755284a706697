// SPDX-License-Identifier: GPL-2.0

//! The qgroups of subvolumes that come and go: the level-0 qgroup of a
//! snapshot with its inherited numbers and relations (upstream
//! `btrfs_qgroup_inherit`, `qgroup_snapshot_quick_inherit`), and the
//! removal of a deleted subvolume's (`btrfs_qgroup_cleanup_dropped_subvolume`).
//!
//! A snapshot is all or nothing across a writeback and a commit, so its
//! qgroup changes are prepared first ([`NewQgroup`]) and applied without
//! failing.

use kernel::{prelude::*, rbtree::RBTreeNode};

use super::{
    for_each_related, underflow::Underflows, Counter, Counters, Qgroup, QgroupEntry, QgroupId,
    QgroupPrealloc, QgroupTree, RelationPrealloc, RsvType, ALL_COUNTERS,
};

/// Everything a new level-0 qgroup with `relations` parents needs,
/// allocated ahead.
pub(crate) struct NewQgroup {
    node: QgroupPrealloc,
    scratch: KVec<QgroupId>,
    touched: KVec<QgroupId>,
    relations: KVec<RelationPrealloc>,
}

/// How a snapshot's qgroup joins the hierarchy (SPEC §8.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inherit {
    /// Relations only, no number moves.
    Relations,
    /// Relations, then `nodesize` rfer and excl on the one parent and,
    /// unless `parent_only` (the legacy `quick_inherit_parent_only`),
    /// every ancestor of it (`qgroup_snapshot_quick_inherit`).
    Quick {
        /// Only the parent gains.
        parent_only: bool,
    },
}

impl QgroupTree {
    /// Prepares a new level-0 qgroup with `relations` parents: fails with
    /// ENOMEM only, before anything changed. The instance must stay as it
    /// is until [`Self::insert_snapshot`] (the caller holds it alone).
    pub(crate) fn prepare_new(&self, relations: usize) -> Result<NewQgroup> {
        let node = QgroupPrealloc::new(GFP_KERNEL)?;
        let count = self.inner.lock().count;
        let scratch = KVec::with_capacity(count + 2, GFP_KERNEL)?;
        let touched = KVec::with_capacity(count + 2, GFP_KERNEL)?;
        let mut nodes = KVec::with_capacity(2 * relations, GFP_KERNEL)?;
        for _ in 0..2 * relations {
            let node = RelationPrealloc::new(GFP_KERNEL)?;
            // INVARIANT: room for every node was made above.
            kernel::warn_on!(nodes.push_within_capacity(node).is_err());
        }
        Ok(NewQgroup {
            node,
            scratch,
            touched,
            relations: nodes,
        })
    }

    /// Whether a snapshot of `src` into `parents` can inherit quickly: no
    /// parent given and `src` has none (`Some(None)`: nothing to do), or
    /// the one parent given is `src`'s only parent and holds only
    /// exclusive bytes (`Some(Some(parent))`); `None` otherwise.
    pub(crate) fn quick_inherit(
        &self,
        src: QgroupId,
        parents: &[QgroupId],
    ) -> Option<Option<QgroupId>> {
        let inner = self.inner.lock();
        let mut src_parents = 0usize;
        let mut only = None;
        for_each_related(&inner.parents, src, |p| {
            src_parents += 1;
            only = Some(p);
        });
        match (parents, src_parents) {
            ([], 0) => Some(None),
            ([p], 1) if only == Some(*p) => {
                let q = inner.get(p)?;
                (q.counters.rfer == q.counters.excl).then_some(Some(*p))
            }
            _ => None,
        }
    }

    /// Inserts the level-0 qgroup `dst` of a new subvolume and joins it to
    /// `parents` as `how` says. For a snapshot of `src` (SPEC §8.3, full
    /// mode), `dst` refers to what `src` refers to and holds its own root
    /// leaf (`nodesize`) alone, as does `src` now, and takes `src`'s limits;
    /// without `src` (`subvol create`) it starts empty. Never fails: `prep`
    /// holds what it needs, and the caller checked that `parents` exist,
    /// are distinct and of level >= 1.
    pub(crate) fn insert_snapshot(
        &self,
        src: Option<QgroupId>,
        dst: QgroupId,
        parents: &[QgroupId],
        how: Inherit,
        nodesize: u64,
        prep: NewQgroup,
    ) {
        let NewQgroup {
            node,
            mut scratch,
            mut touched,
            mut relations,
        } = prep;
        let mut inner = self.inner.lock();
        let qgroup = match src.and_then(|src| inner.get(&src).copied()) {
            Some(q) => {
                let mut counters = Counters::default();
                counters.rfer = q.counters.rfer;
                counters.excl = nodesize;
                Qgroup {
                    counters,
                    max_rfer: q.max_rfer,
                    max_excl: q.max_excl,
                }
            }
            None => Qgroup::default(),
        };
        if let Some(entry) = src.and_then(|src| inner.qgroups.get_mut(&src)) {
            entry.qgroup.counters.excl = nodesize;
        }
        inner
            .qgroups
            .insert(node.into_node(dst, QgroupEntry::new(qgroup)));
        inner.count += 1;
        if inner.scratch.capacity() <= inner.count {
            core::mem::swap(&mut inner.scratch, &mut scratch);
        }
        if inner.touched.capacity() <= inner.count {
            core::mem::swap(&mut inner.touched, &mut touched);
        }
        for &parent in parents {
            let (Some(up), Some(down)) = (relations.pop(), relations.pop()) else {
                kernel::warn_on!(true);
                break;
            };
            inner.parents.insert(up.into_node((dst, parent), ()));
            inner.members.insert(down.into_node((parent, dst), ()));
            inner.relations += 1;
        }
        inner.ancestors.forget();
        if let (Inherit::Quick { parent_only }, [parent]) = (how, parents) {
            let mut list = core::mem::take(&mut inner.scratch);
            let fits = inner.walk(*parent, true, &mut list);
            // INVARIANT: `scratch` has room for every qgroup.
            kernel::warn_on!(!fits);
            let gaining = if parent_only { &list[..1] } else { &list[..] };
            for &q in gaining {
                inner.add(q, Counter::Rfer, nodesize);
                inner.add(q, Counter::Excl, nodesize);
            }
            inner.scratch = list;
        }
        drop(inner);
        // Spare lists and nodes are freed here, unlocked.
        drop((scratch, touched, relations));
    }

    /// Whether qgroup `id` exists.
    pub(crate) fn exists(&self, id: QgroupId) -> bool {
        self.inner.lock().get(&id).is_some()
    }

    /// Marks the numbers inconsistent and stops accounting until a rescan
    /// (upstream `qgroup_mark_inconsistent` on a snapshot whose inherit
    /// could not be quick).
    pub(crate) fn stop_accounting(&self) {
        let mut inner = self.inner.lock();
        inner.inconsistent = true;
        inner.accounting = false;
    }

    /// Removes the level-0 qgroup `id` of a deleted subvolume and its
    /// relations (upstream `btrfs_qgroup_cleanup_dropped_subvolume`), or,
    /// unless `remove`, keeps it as a space holder (simple quotas) with its
    /// rfer and excl. Either way the reservations it still holds (a raw
    /// `meta reserve` of the subvolume) leave it and its ancestors; rfer
    /// and excl move nothing (0 unless the numbers are inconsistent or it
    /// holds space). Returns the meta bytes it held, for the device space.
    /// Nothing if it is gone.
    pub(crate) fn remove_dropped(&self, id: QgroupId, remove: bool) -> u64 {
        let mut inner = self.inner.lock();
        let Some(held) = inner.get(&id).map(|q| q.counters) else {
            return 0;
        };
        let mut list = core::mem::take(&mut inner.scratch);
        let fits = inner.walk(id, true, &mut list);
        // INVARIANT: `scratch` has room for every qgroup.
        kernel::warn_on!(!fits);
        let mut log = Underflows::default();
        for &a in list.iter().skip(1) {
            for counter in ALL_COUNTERS {
                if !matches!(counter, Counter::Rfer | Counter::Excl) {
                    inner.sub(a, counter, held.get(counter), &mut log);
                }
            }
        }
        inner.scratch = list;
        if !remove {
            if let Some(entry) = inner.qgroups.get_mut(&id) {
                let c = &mut entry.qgroup.counters;
                let (rfer, excl) = (c.rfer, c.excl);
                *c = Counters::exclusive(0);
                c.rfer = rfer;
                c.excl = excl;
            }
        }
        while let Some(cursor) = inner
            .parents
            .cursor_lower_bound(&(id, QgroupId::FIRST))
            .filter(|_| remove)
        {
            let (&(child, parent), ()) = cursor.current();
            if child != id {
                break;
            }
            // Relation nodes are small; `kfree` never sleeps.
            drop::<Option<RBTreeNode<_, _>>>(inner.parents.remove_node(&(child, parent)));
            drop::<Option<RBTreeNode<_, _>>>(inner.members.remove_node(&(parent, child)));
            inner.relations -= 1;
        }
        if remove && inner.qgroups.remove(&id).is_some() {
            inner.count -= 1;
        }
        inner.ancestors.forget();
        drop(inner);
        self.report(&log);
        held.may_use(RsvType::MetaPrealloc)
            .saturating_add(held.may_use(RsvType::MetaPertrans))
    }
}
