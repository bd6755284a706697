// SPDX-License-Identifier: GPL-2.0

//! Legacy switches: historical qgroup bugs, re-created on demand (SPEC §1.6).
//!
//! The switches are a kernel bit set ([`kernel::impl_flags!`]): one
//! [`LegacySwitch`] a bit, all of them a [`Legacy`], which the instance
//! keeps in an atomic as its bits.

use kernel::bits::bit_u16;

kernel::impl_flags!(
    /// The state of every legacy switch; all off by default.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub(crate) struct Legacy(u16);

    /// One legacy switch.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum LegacySwitch {
        /// Before seed 000: extent allocation and commit do not touch
        /// `reserved`.
        NoReservedStage = bit_u16(0),
        /// Before seed 001: `free_data` clears the whole range despite a
        /// changeset.
        FreeIgnoresChangeset = bit_u16(1),
        /// Before upstream a12b877b557d: `release_data` subtracts the
        /// requested length instead of the bytes it cleared.
        ReleaseByLength = bit_u16(2),
        /// Before upstream c53e9653605d: a reservation over a limit fails at
        /// once, without the flush and without a short write.
        NoEdquotFlush = bit_u16(3),
        /// Before upstream 7b632596188e: `qgroup assign` / `remove` of a
        /// fully exclusive child applies its delta to the direct parent
        /// once for each qgroup of the parent and its ancestors, and to the
        /// ancestors not at all.
        ExclIteration = bit_u16(4),
        /// Before upstream 68d4b3fa18d7 (fstests btrfs/340): a snapshot's
        /// quick inherit adds `nodesize` to its parent only, not to the
        /// parent's ancestors.
        QuickInheritParentOnly = bit_u16(5),
        /// Before upstream cbab8ade585a (fstests btrfs/210): a snapshot's
        /// inherit never marks the numbers inconsistent; the qgroups it
        /// joins get the relation and no numbers.
        InheritNeverInconsistent = bit_u16(6),
        /// Before upstream d139ded8b9cd (fstests btrfs/316): with
        /// accounting off, a commit does not release the extent records'
        /// `reserved` bytes.
        NoAccountingKeepsRsv = bit_u16(7),
        /// Before upstream 9c7b0c2e8dbf (fstests btrfs/171): a rescan
        /// zeroes and recomputes only the qgroups with a level-0 qgroup at
        /// or below them; a childless higher-level qgroup keeps stale
        /// numbers.
        RescanSkipsChildless = bit_u16(8),
        /// Before upstream 7ee19a59a75e: with simple quotas a snapshot's
        /// quick inherit adds `nodesize` to its parent (and the parent's
        /// ancestors) on top of the root leaf's own charge, so the parent
        /// counts the leaf twice.
        SquotaQuickInherit = bit_u16(9),
    }
);

impl LegacySwitch {
    /// Every switch, in the order of SPEC §1.6 (the order of the `legacy`
    /// file).
    pub(crate) const ALL: [Self; 10] = [
        Self::NoReservedStage,
        Self::FreeIgnoresChangeset,
        Self::ReleaseByLength,
        Self::NoEdquotFlush,
        Self::ExclIteration,
        Self::QuickInheritParentOnly,
        Self::InheritNeverInconsistent,
        Self::NoAccountingKeepsRsv,
        Self::RescanSkipsChildless,
        Self::SquotaQuickInherit,
    ];

    /// The switch's name in commands and in the `legacy` file.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::NoReservedStage => "no_reserved_stage",
            Self::FreeIgnoresChangeset => "free_ignores_changeset",
            Self::ReleaseByLength => "release_by_length",
            Self::NoEdquotFlush => "no_edquot_flush",
            Self::ExclIteration => "excl_iteration",
            Self::QuickInheritParentOnly => "quick_inherit_parent_only",
            Self::InheritNeverInconsistent => "inherit_never_inconsistent",
            Self::NoAccountingKeepsRsv => "no_accounting_keeps_rsv",
            Self::RescanSkipsChildless => "rescan_skips_childless",
            Self::SquotaQuickInherit => "squota_quick_inherit",
        }
    }

    /// The switch called `name`.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl Legacy {
    /// Turns `switch` on or off.
    pub(crate) fn set(&mut self, switch: LegacySwitch, on: bool) {
        if on {
            *self |= switch;
        } else {
            *self &= !switch;
        }
    }

    /// The switches whose bits are set in `bits` (as `u16::from` gives
    /// them); bits of no switch are ignored.
    pub(crate) fn from_bits(bits: u16) -> Self {
        Self(bits & Self::all_bits())
    }
}
