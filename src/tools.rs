// SPDX-License-Identifier: GPL-2.0

//! Test and measurement tools, built into the module only when asked
//! (Kbuild `QGROUP_RS_TESTING=y`, which `make test`, `make stress`, `make
//! bench` and the other guest targets set; a plain `make` builds the module
//! without them, and without the KUnit suites). They drive the model through
//! its typed operations ([`crate::fs::op`]), the very code paths of the
//! debugfs commands, and are driven by the `stress` and `bench` commands.
//!
//! - [`stress`]: concurrent seeded-random workers on the instance (SPEC §6).
//! - [`bench`]: what the operations cost next to the kernel's primitives.
//! - [`prng`]: the one pseudo-random generator they (and the KUnit suites)
//!   use.

pub(crate) mod bench;
pub(crate) mod prng;
pub(crate) mod stress;
