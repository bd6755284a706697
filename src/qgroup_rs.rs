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
//!   (upstream `struct extent_changeset`), and changeset names.
//! - [`extent_io_tree`]: an inode's byte ranges mapped to state bits
//!   (`DELALLOC`, `QGROUP_RESERVED`), under one spinlock per tree; every
//!   operation all or nothing (Binder's preallocate-then-apply protocol).
//! - [`qgroup`]: qgroups, relations, counters and limits under one spinlock
//!   (upstream `qgroup_lock`).
//! - [`extent_tree`]: data extents with identity, their roots and records
//!   (SPEC §8.1); [`node_pool`]: tree nodes allocated ahead of a change.
//! - [`inode`]: an inode's io tree, its file extent items and its lock.
//! - [`rsv`]: the reservation layer, the one place `may_use` changes
//!   (`reserve_data`, `free_data`, `release_data`, meta).
//! - [`legacy`]: switches that bring historical bugs back.
//! - [`fs`]: the filesystem instance (`fs/`: its typed operations
//!   [`fs::op`], the instance gate, the registry of subvolumes and inodes,
//!   device space, and the operations: write path, commit and flush, quota,
//!   changesets, and `check`: its invariants).
//! - [`command`], [`control`], [`files`], [`debugfs`]: the debugfs interface
//!   (the parser turns text into [`fs::op`]'s operations; the model knows
//!   nothing of text); [`limits`]: the ids and bounds they share with the
//!   model.
//! - `tools` (only in a testing build, Kbuild `QGROUP_RS_TESTING=y`):
//!   `stress` (concurrent workers on the instance), `bench` and the one
//!   pseudo-random generator; the KUnit suites are built in only then too.
//!
//! Lock order (outermost first; SPEC §6):
//! 0. the flush lock (`FsState::flush_lock`, a mutex): a flush before
//!    EDQUOT holds it across its writeback (gate shared) and its commit
//!    (gate alone); it is taken with nothing held, by a data command whose
//!    first attempt has dropped its hold on the gate, and nothing waits
//!    for it with the gate or an inode lock held.
//! 1. the instance gate ([`fs::gate`]): data commands hold it shared,
//!    instance-wide commands and the reads alone; fair both ways. It is a
//!    per-CPU count with a mutex behind it, not held as a lock while a
//!    command runs, so lockdep sees only its short inner mutex (the kernel
//!    crate offers no lockdep map for a lock of one's own). Why it cannot
//!    deadlock with the inode locks, which lockdep does see: the gate is
//!    only ever entered with nothing held but the flush lock (by
//!    `FsState::execute`, `FsState::read`, `FsState::instance_batch` and
//!    the flush, each at the top of a command or after dropping its shared
//!    hold); an inode lock is only taken with the gate held (shared for the
//!    command's own inode, alone for the instance-wide walks); and nobody
//!    waits for the gate, or for another task's command, while holding an
//!    inode lock. So a cycle would need a task waiting for the gate while
//!    holding an inode lock, which no path does. The KUnit suite
//!    `qgroup_rs_concurrency` exercises both admission orders of the gate
//!    and data commands overlapping on two inodes and serialised on one.
//! 2. one inode lock (`Inode::lock`, a mutex): a data command holds the lock
//!    of the one inode it works on; only `clone` holds two, the second
//!    taken with `try_lock` (`fs/clone.rs` says why that cannot deadlock).
//!    Instance-wide commands take inode locks one at a time (uncontended:
//!    no data command runs). Held across allocations.
//! 3. the extent tree (`FsState::extent_tree`, a mutex): taken with the
//!    inode lock(s) held, for the data extents and their roots; held
//!    across allocations.
//! 4. an io tree's spinlock (`ExtentIoTree::states`): one at a time. A
//!    data reservation (`Rsv::reserve_data`) charges the bytes its change
//!    will set while holding it (`ExtentIoTree::run_admitted`), so that
//!    measure, charge and change are one lock round; that is the only
//!    spinlock taken inside it.
//! 5. leaf spinlocks, never nested with each other: the qgroup lock
//!    `QgroupTree::inner`, the lookup lock `Registry::inner`.
//!
//! No spinlock is held across an allocation or a copy from user space,
//! and none across a print except that a charge under an io tree's lock
//! could print the qgroup underflow warning (it never does: a charge only
//! adds).
//!
//! The `result` mutex and the `stress` bookkeeping mutex are taken on their
//! own, with none of the above held.
//!
//! The KUnit suites live in `kunit/` and are compiled into a testing module
//! when the kernel has `CONFIG_KUNIT=y`; they run when it is loaded.

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

mod changeset;
mod command;
mod control;
mod debugfs;
mod extent_io_tree;
mod extent_tree;
mod failure;
mod files;
mod fs;
mod ids;
mod inode;
mod legacy;
mod limits;
mod node_pool;
mod qgroup;
mod rsv;
mod space;
#[cfg(qgroup_rs_testing)]
mod tools;

// The KUnit suites: built only into a testing module (see [`tools`]) on a
// kernel with `CONFIG_KUNIT=y`.
#[cfg(all(CONFIG_KUNIT = "y", qgroup_rs_testing))]
#[path = "../kunit/support.rs"]
mod support;

#[cfg(qgroup_rs_testing)]
#[path = "../kunit/command_test.rs"]
mod command_test;
#[cfg(qgroup_rs_testing)]
#[path = "../kunit/concurrency_test.rs"]
mod concurrency_test;
#[cfg(qgroup_rs_testing)]
#[path = "../kunit/extent_io_tree_test.rs"]
mod extent_io_tree_test;
#[cfg(qgroup_rs_testing)]
#[path = "../kunit/extents_test.rs"]
mod extents_test;
#[cfg(qgroup_rs_testing)]
#[path = "../kunit/flush_space_test.rs"]
mod flush_space_test;
#[cfg(qgroup_rs_testing)]
#[path = "../kunit/fs_test.rs"]
mod fs_test;
#[cfg(qgroup_rs_testing)]
#[path = "../kunit/qgroup_test.rs"]
mod qgroup_test;
#[cfg(qgroup_rs_testing)]
#[path = "../kunit/snapshot_test.rs"]
mod snapshot_test;
#[cfg(qgroup_rs_testing)]
#[path = "../kunit/squota_test.rs"]
mod squota_test;

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
        capacity: u64 {
            default: 9223372036854775808,
            description: "Device capacity in bytes (1..=2^63, default 2^63)",
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
        let capacity = module_parameters::capacity.value();
        if !(1..=limits::MAX_CAPACITY).contains(&capacity) {
            pr_err!("invalid capacity {}: want 1..=2^63\n", capacity);
            return Err(EINVAL);
        }
        let fs = fs::FsState::new(sectorsize, nodesize, capacity)?;
        let debugfs = KBox::pin_init(debugfs::create(fs), GFP_KERNEL)?;
        pr_info!(
            "loaded: sectorsize {}, nodesize {}, capacity {}, extent state node {} bytes, data extent node {} bytes (each further root {})\n",
            sectorsize,
            nodesize,
            capacity,
            extent_io_tree::STATE_NODE_BYTES,
            extent_tree::EXTENT_NODE_BYTES,
            extent_tree::ROOT_NODE_BYTES
        );
        if !debugfs::FILES_PIN_MODULE {
            pr_warn!("this kernel's debugfs files do not pin their module: do not unload qgroup_rs while one of its files is open (README, \"Unloading\")\n");
        }
        Ok(QgroupRs { _debugfs: debugfs })
    }
}

impl Drop for QgroupRs {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
