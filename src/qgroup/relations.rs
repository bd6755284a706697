// SPDX-License-Identifier: GPL-2.0

//! Relations: `qgroup assign`, `qgroup remove`, and `qgroup destroy`,
//! which drops a qgroup with its relations to its parents.
//!
//! Assign and remove move usage: each ancestor of the parent gains (or
//! loses) the level-0 qgroups below the child that it does not reach
//! otherwise (upstream `quick_update_accounting`).

use kernel::{prelude::*, rbtree::RBTreeNode};

use super::{
    for_each_related, underflow::Underflows, Counter, Counters, QgroupId, QgroupTree,
    RelationPrealloc, ALL_COUNTERS,
};
use crate::failure::{fail, Failure, QResult};

impl QgroupTree {
    /// Destroys qgroup `id` (upstream `btrfs_remove_qgroup`): ENOENT if it
    /// does not exist, EBUSY while it has members or, at level 0, usage.
    /// Its relations to its parents are dropped.
    pub(crate) fn destroy(&self, id: QgroupId) -> QResult {
        let mut freed = KVec::<RBTreeNode<(QgroupId, QgroupId), ()>>::new();
        let result = loop {
            let mut inner = self.inner.lock();
            let Some(qgroup) = inner.get(&id) else {
                fail!(ENOENT, "qgroup {} does not exist", id);
            };
            let usage = !qgroup.counters.is_zero();
            let mut has_members = false;
            for_each_related(&inner.members, id, |_| has_members = true);
            if has_members {
                fail!(EBUSY, "qgroup {} has members", id);
            }
            if id.level() == 0 && usage {
                fail!(EBUSY, "qgroup {} has usage", id);
            }
            let mut parents = 0usize;
            for_each_related(&inner.parents, id, |_| parents += 1);
            // The removed relation nodes are kept and freed unlocked.
            if freed.capacity() < 2 * parents {
                drop(inner);
                freed.reserve(2 * parents, GFP_KERNEL)?;
                continue;
            }
            // With no members (and, at level 0, no usage) it adds nothing to
            // its parents' counters: dropping its relations changes no
            // counter.
            while let Some(cursor) = inner.parents.cursor_lower_bound(&(id, QgroupId::FIRST)) {
                let (&(child, parent), ()) = cursor.current();
                if child != id {
                    break;
                }
                for node in [
                    inner.parents.remove_node(&(child, parent)),
                    inner.members.remove_node(&(parent, child)),
                ]
                .into_iter()
                .flatten()
                {
                    // INVARIANT: room for both nodes of every relation of
                    // `id` was made above.
                    kernel::warn_on!(freed.push_within_capacity(node).is_err());
                }
                inner.relations -= 1;
            }
            let node = inner.qgroups.remove_node(&id);
            inner.count -= 1;
            inner.ancestors.forget();
            break Ok(node);
        };
        drop(freed);
        result.map(drop)
    }

    /// Adds the relation `child` -> `parent` and accounts, on `parent` and
    /// each of its ancestors, the level-0 qgroups below `child` it did not
    /// cover yet (upstream `quick_update_accounting`).
    ///
    /// When `child`'s excl differs from its rfer (it shares extents) its
    /// rfer and excl do not move (its reservations do) and `true` is
    /// returned: the numbers are now inconsistent (SPEC §8.3). ENOENT for a missing qgroup, EEXIST for an
    /// existing relation. Level rules are the caller's (parent level must
    /// be greater than child level, which also rules out cycles).
    pub(crate) fn assign(&self, child: QgroupId, parent: QgroupId) -> QResult<bool> {
        self.relate(child, parent, true, false)
    }

    /// Removes the relation `child` -> `parent` and subtracts, from `parent`
    /// and each of its ancestors, the level-0 qgroups it no longer covers
    /// (for a `child` sharing extents, all but rfer and excl, and `true` is
    /// returned, as for [`Self::assign`]). ENOENT when a qgroup or the
    /// relation does not exist.
    pub(crate) fn remove(&self, child: QgroupId, parent: QgroupId) -> QResult<bool> {
        self.relate(child, parent, false, false)
    }

    /// [`Self::assign`] (`add`) or [`Self::remove`] with the legacy
    /// `excl_iteration` (before upstream 7b632596188e): the delta of a fully
    /// exclusive child goes to `parent` once for each qgroup of `parent`
    /// and its ancestors, and to the ancestors not at all.
    pub(crate) fn relate_excl_iteration(
        &self,
        child: QgroupId,
        parent: QgroupId,
        add: bool,
    ) -> QResult<bool> {
        self.relate(child, parent, add, true)
    }

    /// Adds (`add`) or removes the relation `child` -> `parent`, moving
    /// usage as [`Self::assign`] and [`Self::remove`] say.
    fn relate(
        &self,
        child: QgroupId,
        parent: QgroupId,
        add: bool,
        excl_iteration: bool,
    ) -> QResult<bool> {
        let up = RelationPrealloc::new(GFP_KERNEL)?;
        let down = RelationPrealloc::new(GFP_KERNEL)?;
        // Lists with room for every qgroup: the ancestors of parent, the
        // level-0 qgroups below child, the ancestors of one of those, and
        // what each ancestor of parent gains or loses.
        let n = self.inner.lock().count + 1;
        let mut ancestors = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut moved = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut above = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut gains = KVec::<Counters>::with_capacity(n, GFP_KERNEL)?;
        let mut removed_nodes = (None, None);
        let mut log = Underflows::default();
        let result = (|| {
            let mut inner = self.inner.lock();
            if inner.count + 1 > n {
                // Qgroups were created meanwhile; nothing changed.
                return Err(Failure::from(ENOMEM));
            }
            for id in [child, parent] {
                if inner.get(&id).is_none() {
                    fail!(ENOENT, "qgroup {} does not exist", id);
                }
            }
            let exists = inner.parents.get(&(child, parent)).is_some();
            match (add, exists) {
                (true, true) => fail!(EEXIST, "qgroup {} is already a member of {}", child, parent),
                (false, false) => fail!(ENOENT, "qgroup {} is not a member of {}", child, parent),
                _ => {}
            }
            // A child sharing extents cannot be moved by its numbers alone
            // (upstream `quick_update_accounting` returns 1): the relation
            // changes, its rfer and excl do not move, and the caller marks
            // the instance inconsistent. Its reservations move all the
            // same, so that their later release leaves every ancestor
            // balanced (upstream moves none and clamps there later).
            let shared = inner
                .get(&child)
                .is_some_and(|c| c.counters.rfer != c.counters.excl);
            // INVARIANT: every list has room for every qgroup (the count was
            // checked above), and a walk lists each qgroup once.
            kernel::warn_on!(!inner.walk(parent, true, &mut ancestors));
            kernel::warn_on!(!inner.walk(child, false, &mut moved));
            moved.retain(|q| q.level() == 0);
            // An add accounts against each ancestor's coverage before the
            // relation exists, a remove against its coverage after.
            if !add {
                removed_nodes = (
                    inner.parents.remove_node(&(child, parent)),
                    inner.members.remove_node(&(parent, child)),
                );
                inner.ancestors.forget();
            }
            // What each ancestor A of parent gains (or loses): the level-0
            // qgroups L below child that A does not reach without the new
            // relation, i.e. A is not among L's other ancestors. The walk
            // up from L marks those; its cost is L's ancestors, not the
            // size of A's membership.
            gains.clear();
            for _ in ancestors.iter() {
                // INVARIANT: as above, one entry an ancestor fits.
                kernel::warn_on!(gains.push_within_capacity(Counters::default()).is_err());
            }
            for &l in moved.iter() {
                kernel::warn_on!(!inner.walk(l, true, &mut above));
                let epoch = inner.epoch;
                let Some(counters) = inner.get(&l).map(|q| q.counters) else {
                    continue;
                };
                for (i, a) in ancestors.iter().enumerate() {
                    let covered = inner.qgroups.get(a).is_some_and(|e| e.seen == epoch);
                    if !covered {
                        gains[i].add(&counters);
                    }
                }
            }
            let moves =
                |counter: Counter| !(shared && matches!(counter, Counter::Rfer | Counter::Excl));
            if excl_iteration && !shared {
                // The old loop: the parent's delta, once per qgroup walked.
                let times = ancestors.len() as u64;
                let first = gains.first().copied().unwrap_or_default();
                for (i, gain) in gains.iter_mut().enumerate() {
                    *gain = Counters::default();
                    if i == 0 {
                        for counter in ALL_COUNTERS {
                            *gain.slot(counter) = first.get(counter).saturating_mul(times);
                        }
                    }
                }
            }
            if add {
                for (i, &a) in ancestors.iter().enumerate() {
                    for counter in ALL_COUNTERS.into_iter().filter(|&c| moves(c)) {
                        inner.check_room(a, counter, gains[i].get(counter))?;
                    }
                }
            }
            for (i, &a) in ancestors.iter().enumerate() {
                for counter in ALL_COUNTERS.into_iter().filter(|&c| moves(c)) {
                    let n = gains[i].get(counter);
                    if add {
                        inner.add(a, counter, n);
                    } else {
                        inner.sub(a, counter, n, &mut log);
                    }
                }
            }
            if add {
                inner.parents.insert(up.into_node((child, parent), ()));
                inner.members.insert(down.into_node((parent, child), ()));
                inner.relations += 1;
                inner.ancestors.forget();
            } else {
                inner.relations -= 1;
            }
            inner.inconsistent |= shared;
            Ok(shared)
        })();
        self.report(&log);
        drop(removed_nodes);
        result
    }
}
