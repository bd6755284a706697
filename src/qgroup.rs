// SPDX-License-Identifier: GPL-2.0

//! Qgroups: the counters, the hierarchy and the limits.
//!
//! The Rust counterpart of the qgroup part of `fs/btrfs/qgroup.c`. All
//! qgroups and their relations live in red-black trees under one spinlock,
//! upstream's `qgroup_lock`. Nothing allocates under it: tree nodes are
//! preallocated before it is taken, and walks of the hierarchy use a list
//! sized (outside the lock) from the number of qgroups.
//!
//! Accounting rule (SPEC §1.1, §5 "Diamonds"): a change to the level-0 qgroup
//! `0/S` is applied to it and to every ancestor exactly once, so a qgroup's
//! counters always cover each level-0 qgroup below it once.
//!
//! Underflow: a decrement larger than a counter clamps it to 0, counts in
//! [`QgroupTree::underflows`] and is logged (rate-limited) after the lock is
//! dropped.
//!
//! The parts: [`id`] (qgroup ids), [`counters`] (a qgroup's counters and
//! limits), [`charge`] (changing counters along a qgroup's ancestors),
//! [`account`] (rfer and excl of one extent from its old and new roots),
//! [`lifecycle`] (the qgroups of snapshots and deleted subvolumes),
//! [`mode`] (off, full or simple), [`squota`] (simple quotas' owner
//! accounting),
//! [`relations`] (`assign`, `remove`, `destroy`), [`walk`] (the one
//! breadth-first walk of the hierarchy), [`ancestors`] (walks remembered
//! for the next charges), [`underflow`] (reporting clamped
//! decrements) and [`snapshot`] (copies of the whole hierarchy).

use kernel::{
    new_spinlock,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{
        atomic::{Atomic, Relaxed},
        SpinLock,
    },
    time::{Instant, Monotonic},
};

use crate::failure::{fail, Failure, QResult};

mod account;
mod ancestors;
mod charge;
mod counters;
mod id;
mod lifecycle;
mod mode;
mod relations;
mod snapshot;
mod squota;
mod underflow;
mod walk;

#[cfg(qgroup_rs_testing)]
pub(crate) use account::deltas;
pub(crate) use counters::{Counter, Counters, Qgroup, RsvType, ALL_COUNTERS};
pub(crate) use id::QgroupId;
pub(crate) use lifecycle::{Inherit, NewQgroup};
pub(crate) use mode::QuotaMode;
pub(crate) use snapshot::QgroupSnapshot;

use ancestors::AncestorLists;
use underflow::Underflows;
use walk::{breadth_first, for_each_related};

/// A relation tree: `(child, parent)` or `(parent, child)` pairs.
type Relations = RBTree<(QgroupId, QgroupId), ()>;
/// A preallocated node of a relation tree.
type RelationPrealloc = RBTreeNodeReservation<(QgroupId, QgroupId), ()>;
/// A preallocated node of the qgroup tree.
type QgroupPrealloc = RBTreeNodeReservation<QgroupId, QgroupEntry>;

/// A qgroup in the tree: its counters and limits, and the mark of the last
/// walk that visited it.
struct QgroupEntry {
    qgroup: Qgroup,
    /// The [`Qgroups::epoch`] of the last walk that reached this qgroup, so
    /// a walk visits each qgroup once without searching its own list.
    seen: u64,
    /// The extent accounting this qgroup's `refcnt` belongs to
    /// ([`Qgroups::account_mark`]).
    accounted: u64,
    /// Old and new roots at or below this qgroup, for the extent being
    /// accounted (upstream `old_refcnt`, `new_refcnt`).
    refcnt: (u64, u64),
    /// Simple quotas: the subvolume's root leaf predates `quota enable
    /// simple` and is charged when its tree first changes ([`squota`]).
    leaf_cow: bool,
}

impl QgroupEntry {
    /// A qgroup no walk has visited yet.
    fn new(qgroup: Qgroup) -> Self {
        Self {
            qgroup,
            seen: 0,
            accounted: 0,
            refcnt: (0, 0),
            leaf_cow: false,
        }
    }
}

/// What the qgroup lock protects.
///
/// # Invariants
///
/// - `count` is the number of qgroups and `relations` the number of
///   `(child, parent)` pairs; `members` holds each of them reversed.
/// - Every relation joins two qgroups of the tree.
/// - `scratch`'s and `touched`'s capacities exceed `count` (`create` grows
///   them, outside the lock, before a qgroup is added), so a walk, which
///   lists each qgroup at most once, always fits in either.
struct Qgroups {
    qgroups: RBTree<QgroupId, QgroupEntry>,
    /// `(child, parent)` for each relation.
    parents: Relations,
    /// `(parent, child)` for each relation.
    members: Relations,
    /// Number of qgroups.
    count: usize,
    /// Number of relations.
    relations: usize,
    /// A list with room for every qgroup, for walks of the hierarchy under
    /// the lock.
    scratch: KVec<QgroupId>,
    /// Mark of the current walk (see [`QgroupEntry::seen`]).
    epoch: u64,
    /// Walks up the hierarchy remembered for the next charges.
    ancestors: AncestorLists,
    /// A second list with room for every qgroup: the qgroups one extent's
    /// accounting touches.
    touched: KVec<QgroupId>,
    /// Mark of the current extent accounting (see
    /// [`QgroupEntry::accounted`]).
    account_mark: u64,
    /// Whether commits account extents (upstream's
    /// `BTRFS_QGROUP_RUNTIME_FLAG_NO_ACCOUNTING` clear): off after an
    /// inherit that could not be quick, until a rescan.
    accounting: bool,
    /// Whether rfer and excl are known to be wrong (SPEC §8.5, upstream
    /// `BTRFS_QGROUP_STATUS_FLAG_INCONSISTENT`): a decrement of them past 0
    /// is then no bookkeeping error, and is not counted as an underflow.
    inconsistent: bool,
    /// How commits account extents.
    mode: QuotaMode,
    /// Rate limit of the underflow message: start of the window and
    /// messages printed in it.
    ratelimit: (Option<Instant<Monotonic>>, u32),
}

impl Qgroups {
    /// No qgroup.
    fn empty() -> Self {
        Self {
            qgroups: RBTree::new(),
            parents: RBTree::new(),
            members: RBTree::new(),
            count: 0,
            relations: 0,
            scratch: KVec::new(),
            epoch: 0,
            ancestors: AncestorLists::new(),
            touched: KVec::new(),
            account_mark: 0,
            accounting: true,
            inconsistent: false,
            mode: QuotaMode::Off,
            ratelimit: (None, 0),
        }
    }

    /// The qgroup `id`, if present.
    fn get(&self, id: &QgroupId) -> Option<&Qgroup> {
        self.qgroups.get(id).map(|e| &e.qgroup)
    }

    /// `id` and everything reachable from it through the parents (`up`) or
    /// members relation, into `out`, each once; `false` when `out` is full.
    ///
    /// The walk's mark stays in [`Self::epoch`] until the next walk.
    fn walk(&mut self, id: QgroupId, up: bool, out: &mut KVec<QgroupId>) -> bool {
        // PANIC: none; 2^64 walks take centuries.
        self.epoch += 1;
        let epoch = self.epoch;
        let tree = if up { &self.parents } else { &self.members };
        let qgroups = &mut self.qgroups;
        breadth_first(
            id,
            out,
            |q| match qgroups.get_mut(&q) {
                Some(entry) if entry.seen == epoch => false,
                Some(entry) => {
                    entry.seen = epoch;
                    true
                }
                None => true,
            },
            |q, f| for_each_related(tree, q, f),
        )
    }
}

/// A qgroup hierarchy being built outside any lock (the rescan of `quota
/// enable`), installed whole with [`QgroupTree::install`].
pub(crate) struct QgroupSet(Qgroups);

impl QgroupSet {
    /// An empty set: quotas off.
    pub(crate) fn new() -> Self {
        Self(Qgroups::empty())
    }

    /// An empty set in `mode`.
    pub(crate) fn with_mode(mode: QuotaMode) -> Self {
        let mut set = Self::new();
        set.0.mode = mode;
        set
    }

    /// Adds qgroup `id` with `counters` (no relations); EEXIST if present.
    pub(crate) fn create(&mut self, id: QgroupId, counters: Counters) -> QResult {
        let q = &mut self.0;
        if q.qgroups.get(&id).is_some() {
            fail!(EEXIST, "qgroup {} exists", id);
        }
        q.scratch
            .reserve(q.count + 2 - q.scratch.len(), GFP_KERNEL)?;
        q.touched
            .reserve(q.count + 2 - q.touched.len(), GFP_KERNEL)?;
        let entry = QgroupEntry::new(Qgroup {
            counters,
            ..Qgroup::default()
        });
        q.qgroups.try_create_and_insert(id, entry, GFP_KERNEL)?;
        q.count += 1;
        q.ancestors.forget();
        Ok(())
    }
}

impl QgroupSet {
    /// Adds `n` to `counter` of qgroup `id` (if present), saturating.
    pub(crate) fn add(&mut self, id: QgroupId, counter: Counter, n: u64) {
        self.0.add(id, counter, n);
    }

    /// Marks the root leaf of level-0 qgroup `id` as predating simple
    /// quotas: not counted until its tree changes.
    pub(crate) fn mark_leaf_cow(&mut self, id: QgroupId) {
        if let Some(entry) = self.0.qgroups.get_mut(&id) {
            entry.leaf_cow = true;
        }
    }
}

/// The qgroup hierarchy of one filesystem instance.
#[pin_data]
pub(crate) struct QgroupTree {
    #[pin]
    inner: SpinLock<Qgroups>,
    /// Counter underflows since the instance was created or reset.
    underflows: Atomic<u64>,
}

impl QgroupTree {
    /// An empty hierarchy.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_spinlock!(Qgroups::empty(), "QgroupTree::inner (qgroup_lock)"),
            underflows: Atomic::new(0),
        })
    }

    /// Number of counter underflows so far.
    pub(crate) fn underflows(&self) -> u64 {
        self.underflows.load(Relaxed)
    }

    /// Replaces the whole hierarchy with `set` (quota enable, disable,
    /// reset); the underflow count stays unless `reset_underflows`.
    pub(crate) fn install(&self, set: QgroupSet, reset_underflows: bool) {
        let mut old = set.0;
        core::mem::swap(&mut *self.inner.lock(), &mut old);
        if reset_underflows {
            self.underflows.store(0, Relaxed);
        }
        // The old hierarchy is freed here, unlocked.
        drop(old);
    }

    /// Runs `f` under the lock with `id` and all its ancestors, then
    /// reports the underflows `f` noted.
    fn with_ancestors<R>(
        &self,
        id: QgroupId,
        f: impl FnOnce(&mut Qgroups, &[QgroupId], &mut Underflows) -> R,
    ) -> R {
        let mut log = Underflows::default();
        let result = {
            let mut inner = self.inner.lock();
            let mut list = core::mem::take(&mut inner.scratch);
            if !inner.ancestors.list_into(id, &mut list) {
                let fits = inner.walk(id, true, &mut list);
                // INVARIANT: `Qgroups::scratch` has room for every qgroup.
                if !kernel::warn_on!(!fits) {
                    inner.ancestors.remember(id, &list);
                }
            }
            let result = f(&mut inner, &list, &mut log);
            inner.scratch = list;
            result
        };
        self.report(&log);
        result
    }

    /// Creates qgroup `id` with `counters` (a level-0 qgroup of a subvolume
    /// that already has usage starts with its root accounted). EEXIST if it
    /// exists.
    pub(crate) fn create(&self, id: QgroupId, counters: Counters) -> QResult {
        let node = QgroupPrealloc::new(GFP_KERNEL)?;
        // Room for one more qgroup in the walks' scratch list. (The count is
        // read in its own statement: a guard in the argument would be held
        // across the allocation.)
        let count = self.inner.lock().count;
        let mut spare = KVec::with_capacity(count + 2, GFP_KERNEL)?;
        let mut spare_touched = KVec::with_capacity(count + 2, GFP_KERNEL)?;
        let mut inner = self.inner.lock();
        if inner.qgroups.get(&id).is_some() {
            fail!(EEXIST, "qgroup {} exists", id);
        }
        if inner.scratch.capacity() <= inner.count + 1 {
            if spare.capacity() <= inner.count + 1 {
                // More qgroups were created meanwhile; nothing changed.
                return Err(Failure::from(ENOMEM));
            }
            core::mem::swap(&mut inner.scratch, &mut spare);
        }
        if inner.touched.capacity() <= inner.count + 1 {
            if spare_touched.capacity() <= inner.count + 1 {
                return Err(Failure::from(ENOMEM));
            }
            core::mem::swap(&mut inner.touched, &mut spare_touched);
        }
        let entry = QgroupEntry::new(Qgroup {
            counters,
            ..Qgroup::default()
        });
        inner.qgroups.insert(node.into_node(id, entry));
        inner.count += 1;
        inner.ancestors.forget();
        drop(inner);
        // The old scratch list, if replaced, is freed here, unlocked.
        drop(spare);
        drop(spare_touched);
        Ok(())
    }

    /// Whether rfer and excl are marked inconsistent (by an assign or
    /// remove of a child sharing extents); a new hierarchy
    /// ([`Self::install`]) is consistent.
    pub(crate) fn inconsistent(&self) -> bool {
        self.inner.lock().inconsistent
    }

    /// The quota mode of the hierarchy installed last.
    pub(crate) fn mode(&self) -> QuotaMode {
        self.inner.lock().mode
    }

    /// Whether commits account extents.
    pub(crate) fn accounting(&self) -> bool {
        self.inner.lock().accounting
    }

    /// The start of a rescan (SPEC §8.5): rfer and excl of every qgroup
    /// zeroed (with `skip_childless`, the legacy `rescan_skips_childless`,
    /// not those of a higher-level qgroup with no level-0 qgroup below
    /// it), the numbers consistent and accounting on. The caller then
    /// accounts every extent and root leaf as new.
    pub(crate) fn start_rescan(&self, skip_childless: bool) {
        let mut inner = self.inner.lock();
        let mut list = core::mem::take(&mut inner.scratch);
        let mut cursor = inner.qgroups.cursor_front_mut().map(|c| *c.current().0);
        while let Some(id) = cursor {
            let keep = skip_childless && id.level() > 0 && {
                let fits = inner.walk(id, false, &mut list);
                // INVARIANT: `scratch` has room for every qgroup.
                kernel::warn_on!(!fits);
                !list.iter().any(|q| q.level() == 0)
            };
            if let Some(entry) = inner.qgroups.get_mut(&id) {
                if !keep {
                    entry.qgroup.counters.rfer = 0;
                    entry.qgroup.counters.excl = 0;
                }
            }
            cursor = id.next().and_then(|next| {
                inner
                    .qgroups
                    .cursor_lower_bound(&next)
                    .map(|c| *c.current().0)
            });
        }
        inner.scratch = list;
        inner.inconsistent = false;
        inner.accounting = true;
    }

    /// Sets (`Some`) or clears (`None`) the referenced or exclusive limit.
    pub(crate) fn limit(&self, id: QgroupId, excl: bool, max: Option<u64>) -> QResult {
        let mut inner = self.inner.lock();
        let Some(entry) = inner.qgroups.get_mut(&id) else {
            fail!(ENOENT, "qgroup {} does not exist", id);
        };
        if excl {
            entry.qgroup.max_excl = max;
        } else {
            entry.qgroup.max_rfer = max;
        }
        Ok(())
    }
}
