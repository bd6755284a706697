// SPDX-License-Identifier: GPL-2.0

//! A qgroup's counters and limits, and the names of its counters.

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

/// Every counter, for moving a qgroup's whole usage.
pub(crate) const ALL_COUNTERS: [Counter; 6] = [
    Counter::Rfer,
    Counter::Excl,
    Counter::MayUse(RsvType::Data),
    Counter::MayUse(RsvType::MetaPrealloc),
    Counter::MayUse(RsvType::MetaPertrans),
    Counter::Reserved,
];

/// The counters of one qgroup, all in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Referenced bytes.
    pub(crate) rfer: u64,
    /// Exclusive bytes.
    pub(crate) excl: u64,
    /// `may_use` by [`RsvType`]: read with [`Self::may_use`].
    may_use: [u64; 3],
    /// Allocated, not yet accounted bytes (seed 000).
    pub(crate) reserved: u64,
}

impl Counters {
    /// The counters of a qgroup that references `bytes` bytes, all of them
    /// exclusive, and holds no reservation (a level-0 qgroup after a
    /// rescan).
    pub(crate) fn exclusive(bytes: u64) -> Self {
        Self {
            rfer: bytes,
            excl: bytes,
            ..Self::default()
        }
    }

    /// The `may_use` reservation of type `kind`.
    pub(crate) fn may_use(&self, kind: RsvType) -> u64 {
        self.may_use[kind as usize]
    }

    /// One counter, to change it.
    pub(super) fn slot(&mut self, counter: Counter) -> &mut u64 {
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
            Counter::MayUse(t) => self.may_use(t),
            Counter::Reserved => self.reserved,
        }
    }

    /// The sum of the three `may_use` types.
    pub(crate) fn may_use_total(&self) -> u64 {
        self.may_use
            .iter()
            .fold(0u64, |sum, v| sum.saturating_add(*v))
    }

    /// Whether `n` more bytes fit `counter` and the qgroup's total: the
    /// counter stays below 2^64, and so does the sum of the `may_use`
    /// types, `reserved`, the larger of `rfer` and `excl` and `n` (SPEC §7),
    /// which keeps every sum the limit check makes in range.
    pub(super) fn has_room(&self, counter: Counter, n: u64) -> bool {
        self.get(counter).checked_add(n).is_some()
            && Iterator::chain(
                self.may_use.iter(),
                [&self.reserved, &self.rfer.max(self.excl), &n],
            )
            .try_fold(0u64, |sum, v| sum.checked_add(*v))
            .is_some()
    }

    /// Whether every counter is zero.
    pub(super) fn is_zero(&self) -> bool {
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

impl Qgroup {
    /// Whether `n` more pending bytes (`may_use` or `reserved`) pass both
    /// limits (SPEC §1.1); on failure, the name of the limit they pass.
    pub(super) fn within_limits(&self, n: u64) -> Result<(), &'static str> {
        let c = &self.counters;
        // `has_room` keeps this sum below 2^64; saturate anyway.
        let pending = c
            .may_use_total()
            .saturating_add(c.reserved)
            .saturating_add(n);
        if self
            .max_rfer
            .is_some_and(|max| pending.saturating_add(c.rfer) > max)
        {
            return Err("max_rfer");
        }
        if self
            .max_excl
            .is_some_and(|max| pending.saturating_add(c.excl) > max)
        {
            return Err("max_excl");
        }
        Ok(())
    }
}
