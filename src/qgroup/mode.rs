// SPDX-License-Identifier: GPL-2.0

//! The quota mode (SPEC §8.4 `status`, §8.6): off, full qgroups, or simple
//! quotas with the enable generation (upstream `btrfs_qgroup_mode` and
//! `fs_info->qgroup_enable_gen`).

/// How the instance accounts extents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum QuotaMode {
    /// Quotas disabled: no qgroup.
    #[default]
    Off,
    /// Full qgroups: every commit accounts each dirty extent from its old
    /// and new roots (SPEC §8.2).
    Full,
    /// Simple quotas: an extent charges its owner (SPEC §8.6).
    Simple {
        /// The first extent id allocated after `quota enable simple`: older
        /// extents are never counted (upstream's enable generation).
        since: u64,
    },
}

impl QuotaMode {
    /// The name `status` prints.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Full => "full",
            Self::Simple { .. } => "simple",
        }
    }

    /// Whether this is simple quotas.
    pub(crate) fn is_simple(self) -> bool {
        matches!(self, Self::Simple { .. })
    }
}
