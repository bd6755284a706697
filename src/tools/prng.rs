// SPDX-License-Identifier: GPL-2.0

//! The one pseudo-random generator of the tools and the KUnit suites.

/// xorshift64*: a small deterministic generator for the `stress` workers'
/// choices, the bench's probe positions and the KUnit suites' random
/// operations. Same seed, same sequence, every boot.
///
/// # Invariants
///
/// The state is never zero (xorshift would stay at zero): [`Prng::new`]
/// ensures it, and a state built directly must be non-zero.
pub(crate) struct Prng(pub(crate) u64);

impl Prng {
    /// A generator for `seed` (any value: zero is mapped away).
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next pseudo-random number.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 for `n == 0`: no division by zero, so no
    /// panic path).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
