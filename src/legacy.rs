// SPDX-License-Identifier: GPL-2.0

//! Legacy switches: historical qgroup bugs, re-created on demand (SPEC §1.6).

/// One legacy switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LegacySwitch {
    /// Before seed 000: extent allocation and commit do not touch `reserved`.
    NoReservedStage,
    /// Before seed 001: `free_data` clears the whole range despite a changeset.
    FreeIgnoresChangeset,
    /// Before upstream a12b877b557d: `release_data` subtracts the requested
    /// length instead of the bytes it cleared.
    ReleaseByLength,
    /// Before upstream c53e9653605d: a reservation over a limit fails at
    /// once, without the flush and without a short write.
    NoEdquotFlush,
}

impl LegacySwitch {
    /// Every switch, in the order of SPEC §1.6.
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

/// The state of every legacy switch; all off by default.
///
/// The bits are kept in one byte so that the instance can hold them in an
/// atomic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Legacy(u8);

impl Legacy {
    /// Whether `switch` is on.
    pub(crate) fn is_on(self, switch: LegacySwitch) -> bool {
        self.0 & (1 << switch as u8) != 0
    }

    /// Turns `switch` on or off.
    pub(crate) fn set(&mut self, switch: LegacySwitch, on: bool) {
        if on {
            self.0 |= 1 << switch as u8;
        } else {
            self.0 &= !(1 << switch as u8);
        }
    }
}

impl Legacy {
    /// The switches as one byte.
    pub(crate) fn bits(self) -> u8 {
        self.0
    }

    /// The switches from [`Self::bits`].
    pub(crate) fn from_bits(bits: u8) -> Self {
        Self(bits)
    }
}
