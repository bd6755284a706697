// SPDX-License-Identifier: GPL-2.0

//! Bounds and well-known id values shared by the command parser and the model.

/// The top-level subvolume, always present.
pub(crate) const TOP_SUBVOL: u64 = 5;
/// The first id `subvol create` accepts.
pub(crate) const FIRST_FREE_SUBVOL: u64 = 256;
/// The first inode number.
pub(crate) const FIRST_INO: u64 = 256;
/// Largest end (exclusive) of a byte range given by offset and length.
pub(crate) const MAX_FILE_END: u64 = 1 << 63;
/// Largest device capacity, and the default (SPEC §7).
pub(crate) const MAX_CAPACITY: u64 = 1 << 63;
/// Most workers one `stress` runs.
#[cfg(qgroup_rs_testing)]
pub(crate) const MAX_STRESS_THREADS: u64 = 64;
/// Most data commands one `stress` runs over all its workers (THREADS x
/// OPS), and so most OPS: about an hour of workers under the emulator, and
/// a run can be interrupted (a signal to the writer stops it).
#[cfg(qgroup_rs_testing)]
pub(crate) const MAX_STRESS_OPS: u64 = 100_000_000;
