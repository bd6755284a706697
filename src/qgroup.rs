// SPDX-License-Identifier: GPL-2.0

//! Qgroups: the counters, the hierarchy and the limits.
//!
//! The Rust counterpart of the qgroup part of `fs/btrfs/qgroup.c`. All
//! qgroups and their relations live in red-black trees under one spinlock,
//! upstream's `qgroup_lock`. Nothing allocates under it: tree nodes are
//! reserved before it is taken, and walks of the hierarchy use a list sized
//! (outside the lock) from the number of qgroups.
//!
//! Accounting rule (SPEC §1.1, §5 "Diamonds"): a change to the level-0 qgroup
//! `0/S` is applied to it and to every ancestor exactly once, so a qgroup's
//! counters always cover each level-0 qgroup below it once.
//!
//! Underflow: a decrement larger than a counter clamps it to 0, counts in
//! [`QgroupTree::underflows`] and is logged (rate-limited) after the lock is
//! dropped.

use kernel::{
    fmt, new_spinlock,
    prelude::*,
    rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation},
    sync::{
        atomic::{Atomic, Relaxed},
        SpinLock,
    },
    time::{Instant, Monotonic},
};

use crate::failure::{fail, Failure, QResult};

/// A qgroup id, `level << 48 | id` (upstream's `qgroupid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct QgroupId(u64);

impl QgroupId {
    /// Largest level.
    pub(crate) const MAX_LEVEL: u64 = (1 << 16) - 1;
    /// Largest id within a level.
    pub(crate) const MAX_ID: u64 = (1 << 48) - 1;

    /// The qgroup `level/id`; both must be within range.
    pub(crate) fn new(level: u64, id: u64) -> Option<Self> {
        (level <= Self::MAX_LEVEL && id <= Self::MAX_ID).then_some(Self(level << 48 | id))
    }

    /// The level-0 qgroup of subvolume `subvol`.
    pub(crate) fn level0(subvol: u64) -> Self {
        Self(subvol & Self::MAX_ID)
    }

    /// The level.
    pub(crate) fn level(self) -> u64 {
        self.0 >> 48
    }

    /// The id within the level (the subvolume id at level 0).
    pub(crate) fn id(self) -> u64 {
        self.0 & Self::MAX_ID
    }
}

impl core::fmt::Display for QgroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.level(), self.id())
    }
}

/// Qgroup reservation types (upstream `enum btrfs_qgroup_rsv_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RsvType {
    /// Data not yet written back.
    Data,
    /// Metadata reserved ahead of a delalloc write.
    MetaPrealloc,
    /// Metadata reserved for the running transaction.
    MetaPertrans,
}

/// One counter of a qgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counter {
    /// Referenced bytes.
    Rfer,
    /// Exclusive bytes.
    Excl,
    /// A `may_use` reservation.
    MayUse(RsvType),
    /// Allocated, not yet accounted bytes.
    Reserved,
}

impl Counter {
    /// The counter's name in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Rfer => "rfer",
            Self::Excl => "excl",
            Self::MayUse(RsvType::Data) => "may_use.data",
            Self::MayUse(RsvType::MetaPrealloc) => "may_use.meta_prealloc",
            Self::MayUse(RsvType::MetaPertrans) => "may_use.meta_pertrans",
            Self::Reserved => "reserved",
        }
    }
}

/// The counters of one qgroup, all in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Referenced bytes.
    pub(crate) rfer: u64,
    /// Exclusive bytes.
    pub(crate) excl: u64,
    /// `may_use` by type: data, meta_prealloc, meta_pertrans.
    pub(crate) may_use: [u64; 3],
    /// Allocated, not yet accounted bytes (seed 000).
    pub(crate) reserved: u64,
}

impl Counters {
    fn slot(&mut self, counter: Counter) -> &mut u64 {
        match counter {
            Counter::Rfer => &mut self.rfer,
            Counter::Excl => &mut self.excl,
            Counter::MayUse(t) => &mut self.may_use[t as usize],
            Counter::Reserved => &mut self.reserved,
        }
    }

    /// One counter's value.
    pub(crate) fn get(&self, counter: Counter) -> u64 {
        match counter {
            Counter::Rfer => self.rfer,
            Counter::Excl => self.excl,
            Counter::MayUse(t) => self.may_use[t as usize],
            Counter::Reserved => self.reserved,
        }
    }

    /// The sum of the three `may_use` types.
    pub(crate) fn may_use_total(&self) -> u64 {
        self.may_use
            .iter()
            .fold(0u64, |sum, v| sum.saturating_add(*v))
    }

    /// Whether every counter is zero.
    pub(crate) fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// Adds every counter of `other` (saturating: only for sums of sane values).
    pub(crate) fn add(&mut self, other: &Counters) {
        self.rfer = self.rfer.saturating_add(other.rfer);
        self.excl = self.excl.saturating_add(other.excl);
        for (a, b) in self.may_use.iter_mut().zip(other.may_use) {
            *a = a.saturating_add(b);
        }
        self.reserved = self.reserved.saturating_add(other.reserved);
    }
}

/// A qgroup: its counters and limits.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Qgroup {
    /// The counters.
    pub(crate) counters: Counters,
    /// Referenced limit, if set.
    pub(crate) max_rfer: Option<u64>,
    /// Exclusive limit, if set.
    pub(crate) max_excl: Option<u64>,
}

/// A counter decrement that had to be clamped.
#[derive(Clone, Copy)]
struct Underflow {
    qgroupid: QgroupId,
    counter: Counter,
    have: u64,
    free: u64,
}

/// Underflows seen under the lock, logged after it is dropped.
#[derive(Default)]
struct Underflows {
    first: [Option<Underflow>; 4],
    count: usize,
}

impl Underflows {
    fn note(&mut self, underflow: Underflow) {
        if let Some(slot) = self.first.get_mut(self.count) {
            *slot = Some(underflow);
        }
        self.count += 1;
    }
}

type Relations = RBTree<(QgroupId, QgroupId), ()>;
type RelationReservation = RBTreeNodeReservation<(QgroupId, QgroupId), ()>;
type QgroupReservation = RBTreeNodeReservation<QgroupId, QgroupEntry>;

/// A qgroup in the tree: its counters and limits, and the mark of the last
/// walk that visited it.
struct QgroupEntry {
    qgroup: Qgroup,
    /// The [`Qgroups::epoch`] of the last walk that reached this qgroup, so
    /// a walk visits each qgroup once without searching its own list.
    seen: u64,
}

/// What the qgroup lock protects.
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
    ///
    /// INVARIANT: its capacity exceeds `count` (`create` grows it, outside
    /// the lock, before a qgroup is added), so a walk, which lists each
    /// qgroup at most once, always fits.
    scratch: KVec<QgroupId>,
    /// Mark of the current walk (see [`QgroupEntry::seen`]).
    epoch: u64,
    /// Rate limit of the underflow message: start of the window and
    /// messages printed in it.
    ratelimit: (Option<Instant<Monotonic>>, u32),
}

/// Calls `f` with every `b` of a relation `(a, b)` in `tree`, ascending.
fn for_each_related(tree: &Relations, a: QgroupId, mut f: impl FnMut(QgroupId)) {
    let mut from = (a, QgroupId(0));
    while let Some(cursor) = tree.cursor_lower_bound(&from) {
        let (&(x, b), ()) = cursor.current();
        if x != a {
            break;
        }
        f(b);
        match b.0.checked_add(1) {
            Some(next) => from = (a, QgroupId(next)),
            None => break,
        }
    }
}

/// Collects `start` and everything reachable from it through `tree`
/// (parents or members), each once, into `out`, marking each with `epoch`.
/// Returns `false` when `out` is full.
fn closure(
    qgroups: &mut RBTree<QgroupId, QgroupEntry>,
    tree: &Relations,
    epoch: u64,
    start: QgroupId,
    out: &mut KVec<QgroupId>,
) -> bool {
    out.clear();
    let mut fits = visit(qgroups, epoch, start, out);
    let mut i = 0;
    while fits && i < out.len() {
        let current = out[i];
        for_each_related(tree, current, |next| {
            fits &= visit(qgroups, epoch, next, out)
        });
        i += 1;
    }
    fits
}

/// Lists `id` in `out` unless this walk (`epoch`) listed it already;
/// `false` when `out` is full.
fn visit(
    qgroups: &mut RBTree<QgroupId, QgroupEntry>,
    epoch: u64,
    id: QgroupId,
    out: &mut KVec<QgroupId>,
) -> bool {
    if let Some(entry) = qgroups.get_mut(&id) {
        if entry.seen == epoch {
            return true;
        }
        entry.seen = epoch;
    }
    out.push_within_capacity(id).is_ok()
}

impl Qgroups {
    fn empty() -> Self {
        Self {
            qgroups: RBTree::new(),
            parents: RBTree::new(),
            members: RBTree::new(),
            count: 0,
            relations: 0,
            scratch: KVec::new(),
            epoch: 0,
            ratelimit: (None, 0),
        }
    }

    /// A new mark for a walk.
    fn next_epoch(&mut self) -> u64 {
        self.epoch += 1;
        self.epoch
    }

    /// `id` and everything reachable from it through the parents (`up`) or
    /// members relation, into `out`; `false` when `out` is full.
    fn walk(&mut self, id: QgroupId, up: bool, out: &mut KVec<QgroupId>) -> bool {
        let epoch = self.next_epoch();
        let tree = if up { &self.parents } else { &self.members };
        closure(&mut self.qgroups, tree, epoch, id, out)
    }

    fn get(&self, id: &QgroupId) -> Option<&Qgroup> {
        self.qgroups.get(id).map(|e| &e.qgroup)
    }

    /// Subtracts `n` from `counter` of `qgroupid`, clamping at 0.
    fn sub(&mut self, qgroupid: QgroupId, counter: Counter, n: u64, log: &mut Underflows) {
        let Some(entry) = self.qgroups.get_mut(&qgroupid) else {
            return;
        };
        let slot = entry.qgroup.counters.slot(counter);
        if *slot < n {
            log.note(Underflow {
                qgroupid,
                counter,
                have: *slot,
                free: n,
            });
            *slot = 0;
        } else {
            *slot -= n;
        }
    }

    /// Adds `n` to `counter` of `qgroupid`. Callers check with
    /// [`Self::check_room`] first, so it never overflows; it saturates if
    /// they did not.
    fn add(&mut self, qgroupid: QgroupId, counter: Counter, n: u64) {
        if let Some(entry) = self.qgroups.get_mut(&qgroupid) {
            let slot = entry.qgroup.counters.slot(counter);
            *slot = slot.saturating_add(n);
        }
    }

    /// ENOSPC when adding `n` to `counter` of `id` would pass 2^64 - 1
    /// bytes, or make the sum of its may_use types and reserved do so
    /// (SPEC §7).
    fn check_room(&self, id: QgroupId, counter: Counter, n: u64) -> QResult {
        let Some(qgroup) = self.get(&id) else {
            return Ok(());
        };
        let c = &qgroup.counters;
        let room = c.get(counter).checked_add(n).is_some()
            && Iterator::chain(c.may_use.iter(), [&c.reserved, &c.rfer.max(c.excl), &n])
                .try_fold(0u64, |sum, v| sum.checked_add(*v))
                .is_some();
        if !room {
            fail!(
                ENOSPC,
                "qgroup {} {} would pass 2^64 bytes",
                id,
                counter.name()
            );
        }
        Ok(())
    }

    /// The all-or-nothing limit check of `n` more bytes on every qgroup in
    /// `ancestors` (SPEC §1.1).
    fn check_limits(&self, ancestors: &[QgroupId], n: u64) -> QResult {
        for id in ancestors {
            let Some(qgroup) = self.get(id) else {
                continue;
            };
            let c = &qgroup.counters;
            // check_room keeps this sum below 2^64; saturate anyway.
            let pending = c
                .may_use_total()
                .saturating_add(c.reserved)
                .saturating_add(n);
            if let Some(max) = qgroup.max_rfer {
                if pending.saturating_add(c.rfer) > max {
                    return Err(Failure::over_limit(format_args!(
                        "qgroup {} over max_rfer",
                        id
                    )));
                }
            }
            if let Some(max) = qgroup.max_excl {
                if pending.saturating_add(c.excl) > max {
                    return Err(Failure::over_limit(format_args!(
                        "qgroup {} over max_excl",
                        id
                    )));
                }
            }
        }
        Ok(())
    }
}

/// One row of a [`QgroupTree::snapshot`].
#[derive(Clone, Copy)]
pub(crate) struct QgroupRow {
    /// The qgroup's id.
    pub(crate) id: QgroupId,
    /// Its counters and limits.
    pub(crate) qgroup: Qgroup,
}

/// A copy of the whole hierarchy, taken under the lock, for display and checks.
pub(crate) struct QgroupSnapshot {
    /// Every qgroup, ascending.
    pub(crate) rows: KVec<QgroupRow>,
    /// Every `(child, parent)` relation, ascending.
    pub(crate) relations: KVec<(QgroupId, QgroupId)>,
    /// Every `(parent, child)` relation, ascending.
    pub(crate) members: KVec<(QgroupId, QgroupId)>,
}

/// The `b` of every pair `(a, b)` in the sorted list `pairs`.
fn related_in(pairs: &[(QgroupId, QgroupId)], a: QgroupId) -> &[(QgroupId, QgroupId)] {
    let from = pairs.partition_point(|&(x, _)| x < a);
    let to = from + pairs[from..].partition_point(|&(x, _)| x == a);
    &pairs[from..to]
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

    #[cfg(qgroup_rs_testing)]
    /// `id` and every qgroup reachable from it, each once: its ancestors
    /// when `up`, else its members and theirs.
    fn related(&self, id: QgroupId, up: bool) -> Result<KVec<QgroupId>> {
        let mut seen = KVec::from_elem(false, self.rows.len(), GFP_KERNEL)?;
        let mut out = KVec::new();
        out.push(id, GFP_KERNEL)?;
        if let Some(i) = self.index(id) {
            seen[i] = true;
        }
        let mut i = 0;
        while i < out.len() {
            let pairs = if up { &self.relations } else { &self.members };
            for &(_, next) in related_in(pairs, out[i]) {
                match self.index(next) {
                    Some(j) if !seen[j] => {
                        seen[j] = true;
                        out.push(next, GFP_KERNEL)?;
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        Ok(out)
    }

    #[cfg(qgroup_rs_testing)]
    /// `id` and all its ancestors.
    pub(crate) fn ancestors(&self, id: QgroupId) -> Result<KVec<QgroupId>> {
        self.related(id, true)
    }

    /// Calls `f` with every qgroup of level >= 1 and the distinct level-0
    /// qgroups at or below it. One scratch list and one array of marks
    /// serve every walk, so the cost is that of the walks (each relation
    /// below each qgroup once), with no per-qgroup allocation or clearing.
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
            let epoch = i + 1;
            out.clear();
            marks[i] = epoch;
            let _ = out.push_within_capacity(row.id);
            let mut next = 0;
            while next < out.len() {
                for &(_, member) in related_in(&self.members, out[next]) {
                    if let Some(j) = self.index(member) {
                        if marks[j] != epoch {
                            marks[j] = epoch;
                            // Each qgroup is listed at most once: it fits.
                            let _ = out.push_within_capacity(member);
                        }
                    }
                }
                next += 1;
            }
            out.retain(|q| q.level() == 0);
            f(row, &out);
        }
        Ok(())
    }

    /// The qgroup `id`, if present.
    pub(crate) fn get(&self, id: QgroupId) -> Option<&Qgroup> {
        self.index(id).map(|i| &self.rows[i].qgroup)
    }
}

/// A qgroup hierarchy being built outside any lock (the rescan of `quota
/// enable`), installed whole with [`QgroupTree::install`].
pub(crate) struct QgroupSet(Qgroups);

impl QgroupSet {
    /// An empty set.
    pub(crate) fn new() -> Self {
        Self(Qgroups::empty())
    }

    /// Adds qgroup `id` with `counters` (no relations); EEXIST if present.
    pub(crate) fn create(&mut self, id: QgroupId, counters: Counters) -> QResult {
        let q = &mut self.0;
        if q.qgroups.get(&id).is_some() {
            fail!(EEXIST, "qgroup {} exists", id);
        }
        q.scratch
            .reserve(q.count + 2 - q.scratch.len(), GFP_KERNEL)?;
        let entry = QgroupEntry {
            qgroup: Qgroup {
                counters,
                ..Qgroup::default()
            },
            seen: 0,
        };
        q.qgroups.try_create_and_insert(id, entry, GFP_KERNEL)?;
        q.count += 1;
        Ok(())
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

    #[cfg(qgroup_rs_testing)]
    /// A copy of the whole hierarchy (qgroups, counters, limits and
    /// relations) that [`Self::install`] puts back: an instance-wide step
    /// that changes several qgroups saves it first, so that a failure half
    /// way leaves nothing changed. Allocates before taking the lock; the
    /// caller has the instance to itself, so the hierarchy does not change
    /// meanwhile (if it did, the copy is simply retried).
    pub(crate) fn save(&self) -> Result<QgroupSet> {
        loop {
            let (count, relations) = {
                let inner = self.inner.lock();
                (inner.count, inner.relations)
            };
            let mut qgroups = KVec::with_capacity(count, GFP_KERNEL)?;
            for _ in 0..count {
                let _ = qgroups.push_within_capacity(QgroupReservation::new(GFP_KERNEL)?);
            }
            let mut links = KVec::with_capacity(2 * relations, GFP_KERNEL)?;
            for _ in 0..2 * relations {
                let _ = links.push_within_capacity(RelationReservation::new(GFP_KERNEL)?);
            }
            let mut copy = Qgroups::empty();
            copy.scratch = KVec::with_capacity(count + 2, GFP_KERNEL)?;
            let inner = self.inner.lock();
            if inner.count != count || inner.relations != relations {
                continue;
            }
            // The copy's nodes were all reserved above: nothing below
            // allocates, and each insert is of a new key.
            for (&id, entry) in inner.qgroups.iter() {
                if let Some(r) = qgroups.pop() {
                    let entry = QgroupEntry {
                        qgroup: entry.qgroup,
                        seen: 0,
                    };
                    copy.qgroups.insert(r.into_node(id, entry));
                }
            }
            for (tree, to) in [
                (&inner.parents, &mut copy.parents),
                (&inner.members, &mut copy.members),
            ] {
                for (&key, ()) in tree.iter() {
                    if let Some(r) = links.pop() {
                        to.insert(r.into_node(key, ()));
                    }
                }
            }
            copy.count = count;
            copy.relations = relations;
            copy.ratelimit = inner.ratelimit;
            drop(inner);
            return Ok(QgroupSet(copy));
        }
    }

    /// Runs `f` under the lock with `id` and all its ancestors.
    fn with_ancestors<R>(
        &self,
        id: QgroupId,
        f: impl FnOnce(&mut Qgroups, &[QgroupId], &mut Underflows) -> R,
    ) -> R {
        let mut log = Underflows::default();
        let result = {
            let mut inner = self.inner.lock();
            let mut list = core::mem::take(&mut inner.scratch);
            // INVARIANT (`Qgroups::scratch`): the walk always fits.
            let _ = inner.walk(id, true, &mut list);
            let result = f(&mut inner, &list, &mut log);
            inner.scratch = list;
            result
        };
        self.report(&log);
        result
    }

    /// Counts and logs the underflows of one operation, rate-limited (10
    /// per 5 s).
    fn report(&self, log: &Underflows) {
        if log.count == 0 {
            return;
        }
        self.underflows.add(log.count as u64, Relaxed);
        let allowed = {
            let mut inner = self.inner.lock();
            let (start, printed) = &mut inner.ratelimit;
            let expired = start.is_none_or(|s| s.elapsed().as_millis() >= 5000);
            if expired {
                *start = Some(Instant::now());
                *printed = 0;
            }
            let room = 10u32.saturating_sub(*printed) as usize;
            let allowed = room.min(log.count);
            *printed += allowed as u32;
            allowed
        };
        for underflow in log.first.iter().take(allowed).flatten() {
            pr_warn!(
                "qgroup {} {} underflow, have {} to free {}\n",
                underflow.qgroupid,
                underflow.counter.name(),
                underflow.have,
                underflow.free
            );
        }
    }

    /// Creates qgroup `id` with `counters` (a level-0 qgroup of a subvolume
    /// that already has usage starts with its root accounted). EEXIST if it
    /// exists.
    pub(crate) fn create(&self, id: QgroupId, counters: Counters) -> QResult {
        let reservation = QgroupReservation::new(GFP_KERNEL)?;
        // Room for one more qgroup in the walks' scratch list. (The count is
        // read in its own statement: a guard in the argument would be held
        // across the allocation.)
        let count = self.inner.lock().count;
        let mut spare = KVec::with_capacity(count + 2, GFP_KERNEL)?;
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
        let entry = QgroupEntry {
            qgroup: Qgroup {
                counters,
                ..Qgroup::default()
            },
            seen: 0,
        };
        inner.qgroups.insert(reservation.into_node(id, entry));
        inner.count += 1;
        drop(inner);
        // The old scratch list, if replaced, is freed here, unlocked.
        drop(spare);
        Ok(())
    }

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
            while let Some(cursor) = inner.parents.cursor_lower_bound(&(id, QgroupId(0))) {
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
                    let _ = freed.push_within_capacity(node);
                }
                inner.relations -= 1;
            }
            let node = inner.qgroups.remove_node(&id);
            inner.count -= 1;
            break Ok(node);
        };
        drop(freed);
        result.map(drop)
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

    /// Reserves `n` bytes of `kind` on `id` and its ancestors, all or
    /// nothing, after the limit check (upstream `qgroup_reserve`).
    pub(crate) fn reserve(&self, id: QgroupId, kind: RsvType, n: u64) -> QResult {
        self.charge(id, Counter::MayUse(kind), n, true)
    }

    /// Adds `n` to `counter` of `id` and its ancestors, with the limit check
    /// first when `check` is true. All or nothing: ENOSPC when a counter
    /// would pass 2^64 - 1.
    pub(crate) fn charge(&self, id: QgroupId, counter: Counter, n: u64, check: bool) -> QResult {
        if n == 0 {
            return Ok(());
        }
        self.with_ancestors(id, |inner, ancestors, _| {
            for &a in ancestors {
                inner.check_room(a, counter, n)?;
            }
            if check {
                inner.check_limits(ancestors, n)?;
            }
            for &a in ancestors {
                inner.add(a, counter, n);
            }
            Ok(())
        })
    }

    /// Moves `n` bytes from counter `from` to counter `to` on `id` and its
    /// ancestors, without a limit check (extent allocation: may_use.data to
    /// reserved; commit: reserved to rfer / excl). What `from` lacks is an
    /// underflow; `to` saturates (SPEC §7 keeps the sums bounded).
    pub(crate) fn transfer(&self, id: QgroupId, from: Option<Counter>, to: &[Counter], n: u64) {
        if n == 0 {
            return;
        }
        self.with_ancestors(id, |inner, ancestors, log| {
            for &a in ancestors {
                if let Some(from) = from {
                    inner.sub(a, from, n, log);
                }
                for &counter in to {
                    inner.add(a, counter, n);
                }
            }
        })
    }

    /// Subtracts `n` from `counter` of `id` and its ancestors, clamping
    /// each at 0 (upstream `qgroup_rsv_release` and friends). Never fails.
    /// Returns what `id` itself gave up (less than `n` after an underflow).
    pub(crate) fn discharge(&self, id: QgroupId, counter: Counter, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.with_ancestors(id, |inner, ancestors, log| {
            let had = inner.get(&id).map_or(0, |q| q.counters.get(counter));
            for &a in ancestors {
                inner.sub(a, counter, n, log);
            }
            had.min(n)
        })
    }

    /// Whether `n` more bytes would pass the limit check and fit every
    /// counter of `id` and its ancestors right now (a short write's probe).
    pub(crate) fn fits(&self, id: QgroupId, n: u64) -> bool {
        self.with_ancestors(id, |inner, ancestors, _| {
            ancestors.iter().all(|&a| {
                inner
                    .check_room(a, Counter::MayUse(RsvType::Data), n)
                    .is_ok()
            }) && inner.check_limits(ancestors, n).is_ok()
        })
    }

    /// Moves `n` bytes of meta_prealloc to meta_pertrans on `id` and its
    /// ancestors, without a limit check (upstream
    /// `btrfs_qgroup_convert_reserved_meta`).
    pub(crate) fn convert_meta(&self, id: QgroupId, n: u64) {
        self.with_ancestors(id, |inner, ancestors, log| {
            // Convert what the level-0 qgroup holds (an attempt to convert
            // more is an underflow), the same amount on every ancestor.
            let prealloc = Counter::MayUse(RsvType::MetaPrealloc);
            let have = inner.get(&id).map_or(0, |q| q.counters.get(prealloc));
            if have < n {
                inner.sub(id, prealloc, n, log);
                inner.add(id, prealloc, have);
            }
            let amount = n.min(have);
            for &a in ancestors {
                inner.sub(a, prealloc, amount, log);
                inner.add(a, Counter::MayUse(RsvType::MetaPertrans), amount);
            }
        })
    }

    /// Frees every meta_pertrans reservation (at commit); returns the bytes
    /// the level-0 qgroups held.
    pub(crate) fn free_all_pertrans(&self) -> u64 {
        let mut inner = self.inner.lock();
        let mut level0 = 0u64;
        for (id, entry) in inner.qgroups.iter_mut() {
            let slot = &mut entry.qgroup.counters.may_use[RsvType::MetaPertrans as usize];
            if id.level() == 0 {
                level0 = level0.saturating_add(*slot);
            }
            *slot = 0;
        }
        level0
    }

    /// Adds the relation `child` -> `parent` and accounts, on `parent` and
    /// each of its ancestors, the level-0 qgroups below `child` it did not
    /// cover yet (upstream `quick_update_accounting`).
    ///
    /// ENOENT for a missing qgroup, EEXIST for an existing relation, EBUSY
    /// when `child`'s excl differs from its rfer. Level rules are the
    /// caller's (parent level must be greater than child level, which also
    /// rules out cycles).
    pub(crate) fn assign(&self, child: QgroupId, parent: QgroupId) -> QResult {
        self.relate(child, parent, true)
    }

    /// Removes the relation `child` -> `parent` and subtracts, from `parent`
    /// and each of its ancestors, the level-0 qgroups it no longer covers.
    /// ENOENT when a qgroup or the relation does not exist.
    pub(crate) fn remove(&self, child: QgroupId, parent: QgroupId) -> QResult {
        self.relate(child, parent, false)
    }

    fn relate(&self, child: QgroupId, parent: QgroupId, add: bool) -> QResult {
        let up = RelationReservation::new(GFP_KERNEL)?;
        let down = RelationReservation::new(GFP_KERNEL)?;
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
            if let Some(c) = inner.get(&child) {
                if c.counters.rfer != c.counters.excl {
                    fail!(EBUSY, "qgroup {} has shared extents (excl != rfer)", child);
                }
            }
            // Every walk fits: each list has room for every qgroup.
            inner.walk(parent, true, &mut ancestors);
            inner.walk(child, false, &mut moved);
            moved.retain(|q| q.level() == 0);
            // An add accounts against each ancestor's coverage before the
            // relation exists, a remove against its coverage after.
            if !add {
                removed_nodes = (
                    inner.parents.remove_node(&(child, parent)),
                    inner.members.remove_node(&(parent, child)),
                );
            }
            // What each ancestor A of parent gains (or loses): the level-0
            // qgroups L below child that A does not reach without the new
            // relation, i.e. A is not among L's other ancestors. The walk
            // up from L marks those; its cost is L's ancestors, not the
            // size of A's membership.
            gains.clear();
            for _ in ancestors.iter() {
                let _ = gains.push_within_capacity(Counters::default());
            }
            for &l in moved.iter() {
                inner.walk(l, true, &mut above);
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
            if add {
                for (i, &a) in ancestors.iter().enumerate() {
                    for counter in ALL_COUNTERS {
                        inner.check_room(a, counter, gains[i].get(counter))?;
                    }
                }
            }
            for (i, &a) in ancestors.iter().enumerate() {
                for counter in ALL_COUNTERS {
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
            } else {
                inner.relations -= 1;
            }
            Ok(())
        })();
        self.report(&log);
        drop(removed_nodes);
        result
    }

    /// Takes a copy of every qgroup and relation.
    pub(crate) fn snapshot(&self) -> Result<QgroupSnapshot> {
        loop {
            let (nq, nr) = {
                let inner = self.inner.lock();
                (inner.count, inner.relations)
            };
            let mut rows = KVec::with_capacity(nq, GFP_KERNEL)?;
            let mut relations = KVec::with_capacity(nr, GFP_KERNEL)?;
            let mut members = KVec::with_capacity(nr, GFP_KERNEL)?;
            let inner = self.inner.lock();
            if inner.count != nq || inner.relations != nr {
                continue;
            }
            for (&id, entry) in inner.qgroups.iter() {
                let _ = rows.push_within_capacity(QgroupRow {
                    id,
                    qgroup: entry.qgroup,
                });
            }
            for (&relation, ()) in inner.parents.iter() {
                let _ = relations.push_within_capacity(relation);
            }
            for (&relation, ()) in inner.members.iter() {
                let _ = members.push_within_capacity(relation);
            }
            return Ok(QgroupSnapshot {
                rows,
                relations,
                members,
            });
        }
    }
}

/// Every counter, for moving a qgroup's whole usage.
pub(crate) const ALL_COUNTERS: [Counter; 6] = [
    Counter::Rfer,
    Counter::Excl,
    Counter::MayUse(RsvType::Data),
    Counter::MayUse(RsvType::MetaPrealloc),
    Counter::MayUse(RsvType::MetaPertrans),
    Counter::Reserved,
];

kernel_display!(QgroupId);
