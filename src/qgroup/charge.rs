// SPDX-License-Identifier: GPL-2.0

//! Changing counters: each change to a level-0 qgroup goes to it and to
//! every ancestor once, all or nothing, with the limit check first where
//! upstream makes one.

use kernel::prelude::*;

use super::{
    underflow::{Underflow, Underflows},
    Counter, QgroupId, QgroupTree, Qgroups, RsvType,
};
use crate::failure::{fail, Failure, QResult};

impl Qgroups {
    /// Subtracts `n` from `counter` of `qgroupid`, clamping at 0 (an
    /// underflow, noted in `log`).
    pub(super) fn sub(
        &mut self,
        qgroupid: QgroupId,
        counter: Counter,
        n: u64,
        log: &mut Underflows,
    ) {
        let Some(entry) = self.qgroups.get_mut(&qgroupid) else {
            return;
        };
        let slot = entry.qgroup.counters.slot(counter);
        if *slot < n && self.inconsistent && matches!(counter, Counter::Rfer | Counter::Excl) {
            // Known to be wrong until a rescan: clamped, not a new fault.
            *slot = 0;
        } else if *slot < n {
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
    pub(super) fn add(&mut self, qgroupid: QgroupId, counter: Counter, n: u64) {
        if let Some(entry) = self.qgroups.get_mut(&qgroupid) {
            let slot = entry.qgroup.counters.slot(counter);
            *slot = slot.saturating_add(n);
        }
    }

    /// ENOSPC when adding `n` to `counter` of `id` would pass 2^64 - 1
    /// bytes, or make the sum of its may_use types and reserved do so
    /// (SPEC §7).
    pub(super) fn check_room(&self, id: QgroupId, counter: Counter, n: u64) -> QResult {
        let Some(qgroup) = self.get(&id) else {
            return Ok(());
        };
        if !qgroup.counters.has_room(counter, n) {
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
            if let Err(limit) = qgroup.within_limits(n) {
                return Err(Failure::over_limit(format_args!(
                    "qgroup {} over {}",
                    id, limit
                )));
            }
        }
        Ok(())
    }
}

impl QgroupTree {
    /// Reserves `n` bytes of `kind` on `id` and its ancestors, all or
    /// nothing, after the limit check (upstream `qgroup_reserve`).
    pub(crate) fn reserve(&self, id: QgroupId, kind: RsvType, n: u64) -> QResult {
        self.charge(id, Counter::MayUse(kind), n, true)
    }

    /// Adds `n` to `counter` of `id` and its ancestors, with the limit check
    /// first when `check` is true. All or nothing: ENOSPC when a counter
    /// would pass 2^64 - 1.
    fn charge(&self, id: QgroupId, counter: Counter, n: u64, check: bool) -> QResult {
        if n == 0 {
            return Ok(());
        }
        self.with_ancestors(id, |inner, ancestors, _| {
            // One lookup of each ancestor checks room and limits: a
            // counter without room (ENOSPC) wins over a limit (EDQUOT),
            // each reported for the first ancestor in walk order.
            let mut over = None;
            for &a in ancestors {
                let Some(qgroup) = inner.get(&a) else {
                    continue;
                };
                if !qgroup.counters.has_room(counter, n) {
                    return inner.check_room(a, counter, n);
                }
                if check && over.is_none() && qgroup.within_limits(n).is_err() {
                    over = Some(a);
                }
            }
            if let Some(a) = over {
                inner.check_limits(&[a], n)?;
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
            let slot = entry
                .qgroup
                .counters
                .slot(Counter::MayUse(RsvType::MetaPertrans));
            if id.level() == 0 {
                level0 = level0.saturating_add(*slot);
            }
            *slot = 0;
        }
        level0
    }
}
