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
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::SpinLock,
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

/// What the qgroup lock protects.
struct Qgroups {
    qgroups: RBTree<QgroupId, Qgroup>,
    /// `(child, parent)` for each relation.
    parents: Relations,
    /// `(parent, child)` for each relation.
    members: Relations,
    /// Number of qgroups.
    count: usize,
    /// A list with room for every qgroup, for walks of the hierarchy under
    /// the lock; grown (outside the lock) as qgroups are created.
    scratch: KVec<QgroupId>,
    underflows: u64,
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

/// Collects `start` and everything reachable from it through `tree` (parents
/// or members), each once. Returns `false` when `out` is full.
fn closure(tree: &Relations, start: QgroupId, out: &mut KVec<QgroupId>) -> bool {
    out.clear();
    if out.push_within_capacity(start).is_err() {
        return false;
    }
    let mut i = 0;
    let mut fits = true;
    while i < out.len() {
        let current = out[i];
        for_each_related(tree, current, |next| {
            if !out.contains(&next) {
                fits &= out.push_within_capacity(next).is_ok();
            }
        });
        if !fits {
            return false;
        }
        i += 1;
    }
    true
}

/// The level-0 qgroups at or below `id`. Returns `false` when `out` is full.
fn level0_below(members: &Relations, id: QgroupId, out: &mut KVec<QgroupId>) -> bool {
    let fits = closure(members, id, out);
    out.retain(|q| q.level() == 0);
    fits
}

impl Qgroups {
    /// Subtracts `n` from `counter` of `qgroupid`, clamping at 0.
    fn sub(&mut self, qgroupid: QgroupId, counter: Counter, n: u64, log: &mut Underflows) {
        let Some(qgroup) = self.qgroups.get_mut(&qgroupid) else {
            return;
        };
        let slot = qgroup.counters.slot(counter);
        if *slot < n {
            log.note(Underflow {
                qgroupid,
                counter,
                have: *slot,
                free: n,
            });
            self.underflows += 1;
            *slot = 0;
        } else {
            *slot -= n;
        }
    }

    /// Adds `n` to `counter` of `qgroupid`. Callers check with
    /// [`Self::check_room`] first, so it never overflows; it saturates if
    /// they did not.
    fn add(&mut self, qgroupid: QgroupId, counter: Counter, n: u64) {
        if let Some(qgroup) = self.qgroups.get_mut(&qgroupid) {
            let slot = qgroup.counters.slot(counter);
            *slot = slot.saturating_add(n);
        }
    }

    /// EDQUOT when adding `n` to `counter` of `id` would pass 2^64 bytes
    /// (or make the sum of its may_use types do so).
    fn check_room(&self, id: QgroupId, counter: Counter, n: u64) -> QResult {
        let Some(qgroup) = self.qgroups.get(&id) else {
            return Ok(());
        };
        let c = &qgroup.counters;
        let room = c.get(counter).checked_add(n).is_some()
            && Iterator::chain(c.may_use.iter(), [&c.reserved, &n])
                .try_fold(0u64, |sum, v| sum.checked_add(*v))
                .is_some();
        if !room {
            fail!(
                EDQUOT,
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
            let Some(qgroup) = self.qgroups.get(id) else {
                continue;
            };
            let c = &qgroup.counters;
            let pending = c
                .may_use_total()
                .saturating_add(c.reserved)
                .saturating_add(n);
            if let Some(max) = qgroup.max_rfer {
                if pending.saturating_add(c.rfer) > max {
                    fail!(EDQUOT, "qgroup {} over max_rfer", id);
                }
            }
            if let Some(max) = qgroup.max_excl {
                if pending.saturating_add(c.excl) > max {
                    fail!(EDQUOT, "qgroup {} over max_excl", id);
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
}

impl QgroupSnapshot {
    /// `id` and every qgroup reachable from it, each once: its ancestors
    /// when `up`, else its members and theirs.
    fn related(&self, id: QgroupId, up: bool) -> Result<KVec<QgroupId>> {
        let mut seen = KVec::new();
        seen.push(id, GFP_KERNEL)?;
        let mut i = 0;
        while i < seen.len() {
            let current = seen[i];
            for &(child, parent) in self.relations.iter() {
                let (from, to) = if up { (child, parent) } else { (parent, child) };
                if from == current && !seen.contains(&to) {
                    seen.push(to, GFP_KERNEL)?;
                }
            }
            i += 1;
        }
        Ok(seen)
    }

    /// `id` and all its ancestors.
    pub(crate) fn ancestors(&self, id: QgroupId) -> Result<KVec<QgroupId>> {
        self.related(id, true)
    }

    /// The distinct level-0 qgroups at or below `id`.
    pub(crate) fn level0_below(&self, id: QgroupId) -> Result<KVec<QgroupId>> {
        let mut below = self.related(id, false)?;
        below.retain(|q| q.level() == 0);
        Ok(below)
    }

    /// The qgroup `id`, if present.
    pub(crate) fn get(&self, id: QgroupId) -> Option<&Qgroup> {
        self.rows
            .binary_search_by(|row| row.id.cmp(&id))
            .ok()
            .map(|i| &self.rows[i].qgroup)
    }
}

/// The qgroup hierarchy of one filesystem instance.
#[pin_data]
pub(crate) struct QgroupTree {
    #[pin]
    inner: SpinLock<Qgroups>,
}

impl QgroupTree {
    /// An empty hierarchy.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_spinlock!(Qgroups {
                qgroups: RBTree::new(),
                parents: RBTree::new(),
                members: RBTree::new(),
                count: 0,
                scratch: KVec::new(),
                underflows: 0,
                ratelimit: (None, 0),
            }, "QgroupTree::inner (qgroup_lock)"),
        })
    }

    /// Number of counter underflows so far.
    pub(crate) fn underflows(&self) -> u64 {
        self.inner.lock().underflows
    }

    /// A list with room for every qgroup, allocated with no lock held.
    fn scratch(&self) -> Result<KVec<QgroupId>> {
        let n = self.inner.lock().count;
        Ok(KVec::with_capacity(n + 1, GFP_KERNEL)?)
    }

    /// Runs `f` under the lock with `id` and all its ancestors.
    ///
    /// The walk uses the preallocated scratch list, which `create` keeps
    /// large enough for every qgroup; should it not fit anyway, a larger one
    /// is allocated outside the lock and the walk done again.
    fn with_ancestors<R>(
        &self,
        id: QgroupId,
        f: impl FnOnce(&mut Qgroups, &[QgroupId], &mut Underflows) -> R,
    ) -> Result<R> {
        let mut f = Some(f);
        loop {
            let mut log = Underflows::default();
            let result = {
                let mut inner = self.inner.lock();
                let mut list = core::mem::take(&mut inner.scratch);
                let result = if closure(&inner.parents, id, &mut list) {
                    f.take().map(|f| f(&mut inner, &list, &mut log))
                } else {
                    None
                };
                inner.scratch = list;
                result
            };
            self.report(&log);
            if let Some(result) = result {
                return Ok(result);
            }
            let mut bigger = self.scratch()?;
            core::mem::swap(&mut self.inner.lock().scratch, &mut bigger);
        }
    }

    /// Logs the underflows of one operation, rate-limited (10 per 5 s).
    fn report(&self, log: &Underflows) {
        if log.count == 0 {
            return;
        }
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
        let reservation = RBTreeNodeReservation::new(GFP_KERNEL)?;
        // Room for one more qgroup in the walks' scratch list. (The count is
        // read in its own statement: a guard in the argument would be held
        // across the allocation.)
        let count = self.inner.lock().count;
        let mut spare = KVec::with_capacity(count + 2, GFP_KERNEL)?;
        let mut inner = self.inner.lock();
        if inner.qgroups.get(&id).is_some() {
            fail!(EEXIST, "qgroup {} exists", id);
        }
        let qgroup = Qgroup {
            counters,
            ..Qgroup::default()
        };
        inner.qgroups.insert(reservation.into_node(id, qgroup));
        inner.count += 1;
        if inner.scratch.capacity() <= inner.count && spare.capacity() > inner.count {
            core::mem::swap(&mut inner.scratch, &mut spare);
        }
        drop(inner);
        // The old scratch list, if replaced, is freed here, unlocked.
        drop(spare);
        Ok(())
    }

    /// Destroys qgroup `id` (upstream `btrfs_remove_qgroup`): ENOENT if it
    /// does not exist, EBUSY while it has members or, at level 0, usage.
    /// Its relations to its parents are dropped.
    pub(crate) fn destroy(&self, id: QgroupId) -> QResult {
        let mut inner = self.inner.lock();
        let Some(qgroup) = inner.qgroups.get(&id) else {
            fail!(ENOENT, "qgroup {} does not exist", id);
        };
        let mut has_members = false;
        for_each_related(&inner.members, id, |_| has_members = true);
        if has_members {
            fail!(EBUSY, "qgroup {} has members", id);
        }
        if id.level() == 0 && !qgroup.counters.is_zero() {
            fail!(EBUSY, "qgroup {} has usage", id);
        }
        // With no members (and, at level 0, no usage) it adds nothing to its
        // parents' counters: dropping its relations changes no counter.
        // Dropped nodes are kfree()d under the lock, which never sleeps.
        while let Some(cursor) = inner.parents.cursor_lower_bound(&(id, QgroupId(0))) {
            let (&(child, parent), ()) = cursor.current();
            if child != id {
                break;
            }
            inner.parents.remove(&(child, parent));
            inner.members.remove(&(parent, child));
        }
        inner.qgroups.remove(&id);
        inner.count -= 1;
        Ok(())
    }

    /// Sets (`Some`) or clears (`None`) the referenced or exclusive limit.
    pub(crate) fn limit(&self, id: QgroupId, excl: bool, max: Option<u64>) -> QResult {
        let mut inner = self.inner.lock();
        let Some(qgroup) = inner.qgroups.get_mut(&id) else {
            fail!(ENOENT, "qgroup {} does not exist", id);
        };
        if excl {
            qgroup.max_excl = max;
        } else {
            qgroup.max_rfer = max;
        }
        Ok(())
    }

    /// Reserves `n` bytes of `kind` on `id` and its ancestors, all or
    /// nothing, after the limit check (upstream `qgroup_reserve`).
    pub(crate) fn reserve(&self, id: QgroupId, kind: RsvType, n: u64) -> QResult {
        self.charge(id, Counter::MayUse(kind), n, true)
    }

    /// Adds `n` to `counter` of `id` and its ancestors, with the limit check
    /// first when `check` is true.
    pub(crate) fn charge(&self, id: QgroupId, counter: Counter, n: u64, check: bool) -> QResult {
        if n == 0 {
            return Ok(());
        }
        self.with_ancestors(id, |inner, ancestors, _| {
            if check {
                inner.check_limits(ancestors, n)?;
            }
            for &a in ancestors {
                inner.check_room(a, counter, n)?;
            }
            for &a in ancestors {
                inner.add(a, counter, n);
            }
            Ok(())
        })?
    }

    /// Subtracts `n` from `counter` of `id` and its ancestors, clamping
    /// each at 0 (upstream `qgroup_rsv_release` and friends).
    pub(crate) fn discharge(&self, id: QgroupId, counter: Counter, n: u64) -> Result {
        if n == 0 {
            return Ok(());
        }
        self.with_ancestors(id, |inner, ancestors, log| {
            for &a in ancestors {
                inner.sub(a, counter, n, log);
            }
        })
    }

    /// Moves `n` bytes of meta_prealloc to meta_pertrans on `id` and its
    /// ancestors, without a limit check (upstream
    /// `btrfs_qgroup_convert_reserved_meta`).
    pub(crate) fn convert_meta(&self, id: QgroupId, n: u64) -> Result {
        self.with_ancestors(id, |inner, ancestors, log| {
            // Convert what the level-0 qgroup holds (an attempt to convert
            // more is an underflow), the same amount on every ancestor.
            let prealloc = Counter::MayUse(RsvType::MetaPrealloc);
            let have = inner
                .qgroups
                .get(&id)
                .map_or(0, |q| q.counters.get(prealloc));
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

    /// Frees every meta_pertrans reservation (at commit).
    pub(crate) fn free_all_pertrans(&self) {
        let mut inner = self.inner.lock();
        for qgroup in inner.qgroups.values_mut() {
            qgroup.counters.may_use[RsvType::MetaPertrans as usize] = 0;
        }
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
        // Lists for: ancestors of parent, level-0 below child, level-0 below
        // one ancestor (before and after).
        let mut ancestors = self.scratch()?;
        let mut moved = self.scratch()?;
        let mut covered = self.scratch()?;
        let mut removed_nodes = (None, None);
        let mut log = Underflows::default();
        let result = (|| {
            let mut inner = self.inner.lock();
            for id in [child, parent] {
                if inner.qgroups.get(&id).is_none() {
                    fail!(ENOENT, "qgroup {} does not exist", id);
                }
            }
            let exists = inner.parents.get(&(child, parent)).is_some();
            match (add, exists) {
                (true, true) => fail!(EEXIST, "qgroup {} is already a member of {}", child, parent),
                (false, false) => fail!(ENOENT, "qgroup {} is not a member of {}", child, parent),
                _ => {}
            }
            if let Some(c) = inner.qgroups.get(&child) {
                if c.counters.rfer != c.counters.excl {
                    fail!(EBUSY, "qgroup {} has shared extents (excl != rfer)", child);
                }
            }
            if !closure(&inner.parents, parent, &mut ancestors)
                || !level0_below(&inner.members, child, &mut moved)
            {
                return Err(Failure::from(ENOMEM));
            }
            // An add accounts against each ancestor's coverage before the
            // relation exists, a remove against its coverage after.
            if !add {
                removed_nodes = (
                    inner.parents.remove_node(&(child, parent)),
                    inner.members.remove_node(&(parent, child)),
                );
            }
            // Two passes: the first only checks that every sum fits.
            for apply in [false, true] {
                for &a in ancestors.iter() {
                    if !level0_below(&inner.members, a, &mut covered) {
                        return Err(Failure::from(ENOMEM));
                    }
                    let mut gained = Counters::default();
                    for &l in moved.iter().filter(|l| !covered.contains(l)) {
                        if let Some(q) = inner.qgroups.get(&l) {
                            gained.add(&q.counters);
                        }
                    }
                    for counter in ALL_COUNTERS {
                        let n = gained.get(counter);
                        match (add, apply) {
                            (true, false) => inner.check_room(a, counter, n)?,
                            (true, true) => inner.add(a, counter, n),
                            (false, true) => inner.sub(a, counter, n, &mut log),
                            (false, false) => {}
                        }
                    }
                }
            }
            if add {
                inner.parents.insert(up.into_node((child, parent), ()));
                inner.members.insert(down.into_node((parent, child), ()));
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
                (inner.count, inner.parents.iter().count())
            };
            let mut rows = KVec::with_capacity(nq, GFP_KERNEL)?;
            let mut relations = KVec::with_capacity(nr, GFP_KERNEL)?;
            let inner = self.inner.lock();
            let mut fits = true;
            for (&id, qgroup) in inner.qgroups.iter() {
                fits &= rows
                    .push_within_capacity(QgroupRow {
                        id,
                        qgroup: *qgroup,
                    })
                    .is_ok();
            }
            for (&relation, ()) in inner.parents.iter() {
                fits &= relations.push_within_capacity(relation).is_ok();
            }
            if fits {
                return Ok(QgroupSnapshot { rows, relations });
            }
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
