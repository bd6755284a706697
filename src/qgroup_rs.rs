// SPDX-License-Identifier: GPL-2.0

//! qgroup_rs: btrfs quota-group (qgroup) accounting as a Rust kernel module.
//!
//! The module models what `fs/btrfs/qgroup.c` and `fs/btrfs/extent-io-tree.c`
//! do for qgroup data reservations, on the kernel's own red-black trees and
//! spinlocks, so that the accounting rules can be exercised, broken and
//! checked without a filesystem underneath.
//!
//! Architecture, bottom up:
//! - [`changeset`]: the byte ranges an io tree operation really changed
//!   (upstream `struct extent_changeset`).
//! - [`extent_io_tree`]: an inode's byte ranges mapped to state bits
//!   (`DELALLOC`, `QGROUP_RESERVED`), under one spinlock per tree.
//! - [`qgroup`]: qgroups, relations, counters and limits under one spinlock
//!   (upstream `qgroup_lock`).
//! - [`inode`], [`data_rsv`]: inodes and the data reservation API
//!   (`reserve_data`, `free_data`, `release_data`).
//! - [`legacy`]: switches that bring historical bugs back.
//! - [`fs`]: the filesystem instance and its composite operations;
//!   [`check`]: its invariants.
//! - [`command`], [`control`], [`files`], [`debugfs`]: the debugfs interface.
//!
//! Lock order: the filesystem lock (a mutex in [`control::Control`], taken
//! by every command and every read) is outermost and may be held while
//! allocating. Inside it, an io tree's spinlock and the qgroup spinlock are
//! leaf locks: they never nest with each other, and nothing allocates or
//! sleeps while one is held.
//!
//! The KUnit suites live in `kunit/` and are compiled into the module when
//! the kernel has `CONFIG_KUNIT=y`; they run when the module is loaded.

use kernel::prelude::*;

/// Lets `pr_*!` (the kernel's `fmt!`) print a type that implements
/// `core::fmt::Display`.
macro_rules! kernel_display {
    ($($ty:ty),* $(,)?) => {
        $(
            impl kernel::fmt::Display for $ty {
                fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
                    core::fmt::Display::fmt(self, f)
                }
            }
        )*
    };
}

mod bench;
mod changeset;
mod check;
mod command;
mod control;
mod data_rsv;
mod debugfs;
mod extent_io_tree;
mod failure;
mod files;
mod fs;
mod inode;
mod legacy;
mod qgroup;

#[cfg(CONFIG_KUNIT = "y")]
#[path = "../kunit/support.rs"]
mod support;

#[path = "../kunit/command_test.rs"]
mod command_test;
#[path = "../kunit/extent_io_tree_test.rs"]
mod extent_io_tree_test;
#[path = "../kunit/fs_test.rs"]
mod fs_test;
#[path = "../kunit/qgroup_test.rs"]
mod qgroup_test;

module! {
    type: QgroupRs,
    name: "qgroup_rs",
    authors: ["qgroup_rs developers"],
    description: "btrfs qgroup accounting model on kernel rbtrees and spinlocks",
    license: "GPL",
    params: {
        sectorsize: u32 {
            default: 4096,
            description: "Sector size in bytes (power of two, 4096..=nodesize)",
        },
        nodesize: u32 {
            default: 16384,
            description: "Node size in bytes (power of two, sectorsize..=65536)",
        },
    },
}

/// The loaded module: the debugfs directory and the instance behind it.
struct QgroupRs {
    _debugfs: Pin<KBox<kernel::debugfs::Scope<control::Control>>>,
}

impl kernel::Module for QgroupRs {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let sectorsize = u64::from(module_parameters::sectorsize.value());
        let nodesize = u64::from(module_parameters::nodesize.value());
        if !fs::valid_sizes(sectorsize, nodesize) {
            pr_err!(
                "invalid sectorsize {} / nodesize {}: want powers of two, 4096 <= sectorsize <= nodesize <= 65536\n",
                sectorsize,
                nodesize
            );
            return Err(EINVAL);
        }
        let fs = fs::FsState::new(sectorsize, nodesize)?;
        let debugfs = KBox::pin_init(debugfs::create(fs), GFP_KERNEL)?;
        pr_info!(
            "loaded: sectorsize {}, nodesize {}, extent state node {} bytes\n",
            sectorsize,
            nodesize,
            extent_io_tree::STATE_NODE_BYTES
        );
        Ok(QgroupRs { _debugfs: debugfs })
    }
}

impl Drop for QgroupRs {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
