// SPDX-License-Identifier: GPL-2.0

//! One io tree operation: the bits it sets and clears, the bits whose flips
//! it records, and the states it applies to.

use super::ExtentBits;

/// One io tree operation: bits to set and to clear, and the bits whose
/// flips it records in a changeset and counts in its result.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TreeOp {
    /// Bits set on every byte of the range.
    pub(super) set: ExtentBits,
    /// Bits cleared on every byte of the range.
    pub(super) clear: ExtentBits,
    /// Bits whose flips are recorded and counted.
    pub(super) record: ExtentBits,
    /// When not empty, only states carrying one of these bits change, and
    /// holes stay holes.
    pub(super) only_if: ExtentBits,
}

impl TreeOp {
    /// Set `bits`, recording where some of them was missing.
    pub(crate) const fn set(bits: ExtentBits) -> Self {
        Self {
            set: bits,
            clear: ExtentBits::NONE,
            record: bits,
            only_if: ExtentBits::NONE,
        }
    }

    /// Clear `bits`, recording where some of them was set.
    pub(crate) const fn clear(bits: ExtentBits) -> Self {
        Self {
            set: ExtentBits::NONE,
            clear: bits,
            record: bits,
            only_if: ExtentBits::NONE,
        }
    }

    /// The same change, recording and counting flips of `record` only.
    pub(crate) const fn recording(self, record: ExtentBits) -> Self {
        Self { record, ..self }
    }

    /// The same change, applied only to states carrying one of `bits`.
    pub(crate) const fn only_if(self, bits: ExtentBits) -> Self {
        Self {
            only_if: bits,
            ..self
        }
    }

    /// What the operation makes of a state carrying `bits`.
    pub(super) fn target(&self, bits: ExtentBits) -> ExtentBits {
        if self.only_if.is_empty() || bits.contains_any(self.only_if) {
            (bits | self.set) & !self.clear
        } else {
            bits
        }
    }

    /// Whether the operation puts bits into a hole (a byte with none).
    pub(super) fn fills_holes(&self) -> bool {
        !self.target(ExtentBits::NONE).is_empty()
    }
}
