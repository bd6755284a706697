// SPDX-License-Identifier: GPL-2.0

//! The memory rows: bytes per extent state, per data extent and per
//! idle inode, as allocated.

use super::{Report, Value};
use crate::{
    extent_io_tree::STATE_NODE_BYTES,
    extent_tree::{EXTENT_NODE_BYTES, ROOT_NODE_BYTES},
    inode::Inode,
};

/// The kmalloc size class SLUB serves a request of `size` bytes from
/// (x86_64: `KMALLOC_MIN_SIZE` 8, with the 96 and 192 byte caches), as
/// `kmalloc_index()` picks it; larger requests are rounded to a power of
/// two (pages above 8 KiB).
pub(crate) fn kmalloc_size_class(size: usize) -> usize {
    match size {
        0..=8 => 8,
        9..=16 => 16,
        17..=32 => 32,
        33..=64 => 64,
        65..=96 => 96,
        97..=128 => 128,
        129..=192 => 192,
        _ => size.next_power_of_two(),
    }
}

/// The bytes an idle inode takes as allocated, and the spare nodes its io
/// trees keep after use: `(fresh, spares)`.
///
/// An inode is an `Arc<Inode>` (the refcount and the inode in one
/// allocation) plus its node in the subvolume's inode `RBTree`. The trees
/// keep no spare nodes: an operation's preallocated nodes are freed when it
/// ends.
fn idle_inode_bytes() -> (usize, usize) {
    let inode = kmalloc_size_class(core::mem::size_of::<(usize, Inode)>());
    let node = kmalloc_size_class(core::mem::size_of::<(
        kernel::bindings::rb_node,
        u64,
        kernel::sync::Arc<Inode>,
    )>());
    (inode + node, 0)
}

/// Memory rows: bytes per extent state, per data extent and per idle
/// inode, as allocated.
///
/// The kernel crate offers no safe `ksize()`: the sizes are the SLUB size
/// classes ([`kmalloc_size_class`]) of the allocations' `size_of`, which is
/// what `ksize()` returns without slab debugging (the bench kernel has
/// none enabled).
pub(super) fn memory_rows(report: &mut Report) {
    report.row(
        "mem_state",
        1,
        Value::Bytes(
            kmalloc_size_class(STATE_NODE_BYTES) as u64,
            "(RBTree node, size class of size_of)",
        ),
    );
    // A data extent of one subvolume is its record's node (the first root
    // lives in the record); each further root takes a node of its own.
    report.row(
        "mem_extent",
        1,
        Value::Bytes(
            kmalloc_size_class(EXTENT_NODE_BYTES) as u64,
            "(record RBTree node with its first root, size class)",
        ),
    );
    report.row(
        "mem_extent_root",
        1,
        Value::Bytes(
            kmalloc_size_class(ROOT_NODE_BYTES) as u64,
            "(RBTree node, size class of size_of)",
        ),
    );
    let (fresh, spares) = idle_inode_bytes();
    report.row(
        "mem_inode",
        1,
        Value::Bytes(fresh as u64, "(Inode + its RBTree node, size classes)"),
    );
    report.row(
        "mem_inode_spares",
        1,
        Value::Bytes(
            spares as u64,
            "(spare state nodes an idle inode keeps: none)",
        ),
    );
}
