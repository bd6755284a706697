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
//!
//! Lock order: an io tree's spinlock is a leaf lock; nothing else is taken,
//! nothing is allocated and nothing sleeps while it is held.
//!
//! The KUnit suites live in `kunit/` and are compiled into the module when
//! the kernel has `CONFIG_KUNIT=y`; they run when the module is loaded.

use kernel::prelude::*;

mod changeset;
mod extent_io_tree;

#[path = "../kunit/extent_io_tree_test.rs"]
mod extent_io_tree_test;

module! {
    type: QgroupRs,
    name: "qgroup_rs",
    authors: ["qgroup_rs developers"],
    description: "btrfs qgroup accounting model on kernel rbtrees and spinlocks",
    license: "GPL",
}

/// The loaded module.
struct QgroupRs;

impl kernel::Module for QgroupRs {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!(
            "loaded; extent state node: {} bytes\n",
            extent_io_tree::STATE_NODE_BYTES
        );
        Ok(QgroupRs)
    }
}

impl Drop for QgroupRs {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
