// SPDX-License-Identifier: GPL-2.0

//! Extent state bits (upstream's `EXTENT_*` flags) as a kernel bit set
//! ([`kernel::impl_flags!`], as Binder's `DeferWorks`).
//!
//! The macro gives the operators (`|`, `&`, `!`, `^`) and the queries
//! (`contains`, `contains_any`, `contains_all`); this file adds the `const`
//! sets the rest of the crate names bits by (trait operators are not
//! `const`), and the `Display` of the `inodes` file.

use kernel::{bits::bit_u32, fmt};

kernel::impl_flags!(
    /// A set of extent state bits.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub(crate) struct ExtentBits(u32);

    /// One extent state bit.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum ExtentBit {
        /// Dirty data not written back yet (upstream `EXTENT_DELALLOC`).
        Delalloc = bit_u32(0),
        /// A qgroup data reservation is held (upstream
        /// `EXTENT_QGROUP_RESERVED`).
        QgroupReserved = bit_u32(1),
    }
);

impl ExtentBits {
    /// No bit.
    pub(crate) const NONE: Self = Self::empty();
    /// [`ExtentBit::Delalloc`] alone.
    pub(crate) const DELALLOC: Self = Self::of(ExtentBit::Delalloc);
    /// [`ExtentBit::QgroupReserved`] alone.
    pub(crate) const QGROUP_RESERVED: Self = Self::of(ExtentBit::QgroupReserved);

    /// Every bit with its name, in the order the `inodes` file prints them.
    const NAMED: [(ExtentBit, &'static str); 2] = [
        (ExtentBit::Delalloc, "DELALLOC"),
        (ExtentBit::QgroupReserved, "QGROUP_RESERVED"),
    ];

    /// The set of `bit` alone (`From`, usable in constants).
    const fn of(bit: ExtentBit) -> Self {
        Self(bit as u32)
    }

    /// The bits of `self` and of `other` (`|`, usable in constants).
    #[cfg(qgroup_rs_testing)]
    pub(crate) const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether no bit is set.
    pub(crate) const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl core::fmt::Display for ExtentBits {
    /// Bit names joined by `|` in a fixed order (`DELALLOC`,
    /// `QGROUP_RESERVED`); `-` for none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for (bit, name) in Self::NAMED {
            if self.contains(bit) {
                write!(f, "{sep}{name}")?;
                sep = "|";
            }
        }
        if self.is_empty() {
            f.write_str("-")?;
        }
        Ok(())
    }
}

kernel_display!(ExtentBits);
