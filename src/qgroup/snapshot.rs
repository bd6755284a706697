// SPDX-License-Identifier: GPL-2.0

//! Copies of the whole hierarchy: [`QgroupSnapshot`], the view the debugfs
//! files and `check` read, and (testing builds) the saved [`QgroupSet`] an
//! instance-wide step puts back when it fails half way.
//!
//! Both allocate before taking the lock, from the counts read just before;
//! should the hierarchy grow in between, the copy is retried.

use kernel::{
    prelude::*,
    sync::SpinLockGuard, //
};

use super::{
    breadth_first,
    walk::related_in,
    Qgroup,
    QgroupId,
    QgroupTree,
    Qgroups, //
};
#[cfg(qgroup_rs_testing)]
use super::{QgroupEntry, QgroupPrealloc, QgroupSet, RelationPrealloc};

/// One row of a [`QgroupTree::snapshot`].
#[derive(Clone, Copy)]
pub(crate) struct QgroupRow {
    /// The qgroup's id.
    pub(crate) id: QgroupId,
    /// Its counters and limits.
    pub(crate) qgroup: Qgroup,
}

/// A copy of the whole hierarchy, taken under the lock, for display and checks.
///
/// # Invariants
///
/// The three lists are sorted ascending, and every id a relation names
/// has a row (they were copied under one hold of the lock).
pub(crate) struct QgroupSnapshot {
    /// Every qgroup, ascending.
    pub(crate) rows: KVec<QgroupRow>,
    /// Every `(child, parent)` relation, ascending.
    pub(crate) relations: KVec<(QgroupId, QgroupId)>,
    /// Every `(parent, child)` relation, ascending.
    pub(crate) members: KVec<(QgroupId, QgroupId)>,
}

impl QgroupSnapshot {
    /// The parents of `id`, ascending.
    pub(crate) fn parents_of(&self, id: QgroupId) -> impl Iterator<Item = QgroupId> + '_ {
        related_in(&self.relations, id).iter().map(|&(_, p)| p)
    }

    /// The children of `id`, ascending.
    pub(crate) fn children_of(&self, id: QgroupId) -> impl Iterator<Item = QgroupId> + '_ {
        related_in(&self.members, id).iter().map(|&(_, c)| c)
    }

    /// The row index of `id`.
    fn index(&self, id: QgroupId) -> Option<usize> {
        self.rows.binary_search_by(|row| row.id.cmp(&id)).ok()
    }

    /// The qgroup `id`, if present.
    pub(crate) fn get(&self, id: QgroupId) -> Option<&Qgroup> {
        self.index(id).map(|i| &self.rows[i].qgroup)
    }

    /// [`breadth_first`] over the snapshot: `id` and every qgroup reachable
    /// from it (its ancestors when `up`, else its members and theirs) into
    /// `out`, marking each row's entry of `marks` with `epoch`, which no
    /// earlier walk with these marks used.
    fn walk(
        &self,
        id: QgroupId,
        up: bool,
        marks: &mut [usize],
        epoch: usize,
        out: &mut KVec<QgroupId>,
    ) -> bool {
        let pairs = if up { &self.relations } else { &self.members };
        breadth_first(
            id,
            out,
            |q| match self.index(q) {
                Some(j) if marks[j] == epoch => false,
                Some(j) => {
                    marks[j] = epoch;
                    true
                }
                None => true,
            },
            |q, f| related_in(pairs, q).iter().for_each(|&(_, next)| f(next)),
        )
    }

    #[cfg(qgroup_rs_testing)]
    /// `id` and all its ancestors.
    pub(crate) fn ancestors(&self, id: QgroupId) -> Result<KVec<QgroupId>> {
        let mut marks = KVec::from_elem(0usize, self.rows.len(), GFP_KERNEL)?;
        // Every row, and `id` should it have none.
        let mut out = KVec::with_capacity(self.rows.len() + 1, GFP_KERNEL)?;
        let fits = self.walk(id, true, &mut marks, 1, &mut out);
        // INVARIANT: a walk lists each qgroup once: `out` has room.
        kernel::warn_on!(!fits);
        Ok(out)
    }

    /// Calls `f` with every qgroup of level >= 1 and the distinct level-0
    /// qgroups at or below it. One list and one array of marks serve every
    /// walk, so the cost is that of the walks (each relation below each
    /// qgroup once), with no per-qgroup allocation or clearing.
    pub(crate) fn for_each_level0_below(
        &self,
        mut f: impl FnMut(&QgroupRow, &[QgroupId]),
    ) -> Result {
        let mut marks = KVec::from_elem(0usize, self.rows.len(), GFP_KERNEL)?;
        let mut out = KVec::with_capacity(self.rows.len(), GFP_KERNEL)?;
        for (i, row) in self.rows.iter().enumerate() {
            if row.id.level() == 0 {
                continue;
            }
            // Row i's walk marks with i + 1: no earlier walk used it.
            let fits = self.walk(row.id, false, &mut marks, i + 1, &mut out);
            // INVARIANT: each of the rows is listed at most once.
            kernel::warn_on!(!fits);
            out.retain(|q| q.level() == 0);
            f(row, &out);
        }
        Ok(())
    }
}

impl QgroupTree {
    /// Takes the lock once `alloc`, called with no lock held, has allocated
    /// for the `(qgroups, relations)` counts it is given; should the counts
    /// have changed meanwhile, allocates again. Returns what `alloc` made
    /// and the guard.
    fn lock_sized<T>(
        &self,
        mut alloc: impl FnMut(usize, usize) -> Result<T>,
    ) -> Result<(T, SpinLockGuard<'_, Qgroups>)> {
        loop {
            let (count, relations) = {
                let inner = self.inner.lock();
                (inner.count, inner.relations)
            };
            let made = alloc(count, relations)?;
            let inner = self.inner.lock();
            if inner.count == count && inner.relations == relations {
                return Ok((made, inner));
            }
            drop(inner);
            // What `alloc` made is freed here, unlocked.
            drop(made);
        }
    }

    /// Takes a copy of every qgroup and relation.
    pub(crate) fn snapshot(&self) -> Result<QgroupSnapshot> {
        let (mut copy, inner) = self.lock_sized(|count, relations| {
            Ok(QgroupSnapshot {
                rows: KVec::with_capacity(count, GFP_KERNEL)?,
                relations: KVec::with_capacity(relations, GFP_KERNEL)?,
                members: KVec::with_capacity(relations, GFP_KERNEL)?,
            })
        })?;
        // INVARIANT (`Qgroups`): `count` qgroups and `relations` pairs in
        // each relation tree, for which room was made.
        for (&id, entry) in inner.qgroups.iter() {
            let row = QgroupRow {
                id,
                qgroup: entry.qgroup,
            };
            kernel::warn_on!(copy.rows.push_within_capacity(row).is_err());
        }
        for (to, tree) in [
            (&mut copy.relations, &inner.parents),
            (&mut copy.members, &inner.members),
        ] {
            for (&relation, ()) in tree.iter() {
                kernel::warn_on!(to.push_within_capacity(relation).is_err());
            }
        }
        drop(inner);
        Ok(copy)
    }

    #[cfg(qgroup_rs_testing)]
    /// A copy of the whole hierarchy (qgroups, counters, limits and
    /// relations) that [`Self::install`] puts back: an instance-wide step
    /// that changes several qgroups saves it first, so that a failure half
    /// way leaves nothing changed. Allocates before taking the lock; the
    /// caller has the instance to itself, so the hierarchy does not change
    /// meanwhile (if it did, the copy is simply retried).
    pub(crate) fn save(&self) -> Result<QgroupSet> {
        let ((mut nodes, mut links, mut copy), inner) = self.lock_sized(|count, relations| {
            let mut nodes = KVec::with_capacity(count, GFP_KERNEL)?;
            for _ in 0..count {
                let node = QgroupPrealloc::new(GFP_KERNEL)?;
                // INVARIANT: room for `count` nodes was made above.
                kernel::warn_on!(nodes.push_within_capacity(node).is_err());
            }
            let mut links = KVec::with_capacity(2 * relations, GFP_KERNEL)?;
            for _ in 0..2 * relations {
                let node = RelationPrealloc::new(GFP_KERNEL)?;
                // INVARIANT: room for `2 * relations` nodes was made above.
                kernel::warn_on!(links.push_within_capacity(node).is_err());
            }
            let mut copy = Qgroups::empty();
            copy.scratch = KVec::with_capacity(count + 2, GFP_KERNEL)?;
            copy.touched = KVec::with_capacity(count + 2, GFP_KERNEL)?;
            copy.count = count;
            copy.relations = relations;
            Ok((nodes, links, copy))
        })?;
        // The copy's nodes were all preallocated: nothing below allocates,
        // and each insert is of a new key.
        for (&id, entry) in inner.qgroups.iter() {
            if let Some(node) = nodes.pop() {
                let mut saved = QgroupEntry::new(entry.qgroup);
                saved.leaf_cow = entry.leaf_cow;
                copy.qgroups.insert(node.into_node(id, saved));
            }
        }
        for (tree, to) in [
            (&inner.parents, &mut copy.parents),
            (&inner.members, &mut copy.members),
        ] {
            for (&key, ()) in tree.iter() {
                if let Some(node) = links.pop() {
                    to.insert(node.into_node(key, ()));
                }
            }
        }
        copy.ratelimit = inner.ratelimit;
        copy.inconsistent = inner.inconsistent;
        copy.accounting = inner.accounting;
        copy.mode = inner.mode;
        drop(inner);
        Ok(QgroupSet(copy))
    }
}
