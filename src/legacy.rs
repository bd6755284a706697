// SPDX-License-Identifier: GPL-2.0

//! Legacy switches: historical qgroup bugs, re-created on demand (SPEC §1.6).
//!
//! The switches are a kernel bit set ([`kernel::impl_flags!`]): one
//! [`LegacySwitch`] a bit, all of them a [`Legacy`], which the instance
//! keeps in an atomic as its bits.

use kernel::bits::bit_u8;

kernel::impl_flags!(
    /// The state of every legacy switch; all off by default.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub(crate) struct Legacy(u8);

    /// One legacy switch.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum LegacySwitch {
        /// Before seed 000: extent allocation and commit do not touch
        /// `reserved`.
        NoReservedStage = bit_u8(0),
        /// Before seed 001: `free_data` clears the whole range despite a
        /// changeset.
        FreeIgnoresChangeset = bit_u8(1),
        /// Before upstream a12b877b557d: `release_data` subtracts the
        /// requested length instead of the bytes it cleared.
        ReleaseByLength = bit_u8(2),
        /// Before upstream c53e9653605d: a reservation over a limit fails at
        /// once, without the flush and without a short write.
        NoEdquotFlush = bit_u8(3),
    }
);

impl LegacySwitch {
    /// Every switch, in the order of SPEC §1.6 (the order of the `legacy`
    /// file).
    pub(crate) const ALL: [Self; 4] = [
        Self::NoReservedStage,
        Self::FreeIgnoresChangeset,
        Self::ReleaseByLength,
        Self::NoEdquotFlush,
    ];

    /// The switch's name in commands and in the `legacy` file.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::NoReservedStage => "no_reserved_stage",
            Self::FreeIgnoresChangeset => "free_ignores_changeset",
            Self::ReleaseByLength => "release_by_length",
            Self::NoEdquotFlush => "no_edquot_flush",
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

    /// The switches whose bits are set in `bits` (as `u8::from` gives
    /// them); bits of no switch are ignored.
    pub(crate) fn from_bits(bits: u8) -> Self {
        Self(bits & Self::all_bits())
    }
}
