// SPDX-License-Identifier: GPL-2.0

//! The floor: what the kernel's own primitives cost (a clock read, a
//! spinlock round trip, an `RBTree` insert and remove), for the other rows
//! to be read against.

use kernel::{
    new_spinlock,
    prelude::*,
    rbtree::RBTreeNodeReservation,
    time::{Instant, Monotonic},
};

use super::{measure, yield_cpu, FloorTree, Plan, Report, Value};

/// The floor: a clock read, a spinlock round trip, and the kernel's
/// `RBTree` insert + remove of one node at each `n`, with the node
/// allocated and freed each time (`try_create_and_insert` + `remove`) and
/// with one node reused (no allocation). Returns the cost of a clock read
/// in picoseconds.
pub(super) fn floor_rows(plan: &Plan, report: &mut Report) -> Result<u64> {
    let clock = measure(plan, |_| {
        core::hint::black_box(Instant::<Monotonic>::now());
        Ok(())
    })?;
    report.row("clock", 1, Value::Time(clock));

    let lock = KBox::pin_init(new_spinlock!(0u64, "bench::floor"), GFP_KERNEL)?;
    let spin = measure(plan, |_| {
        let mut guard = lock.lock();
        *guard = guard.wrapping_add(1);
        Ok(())
    })?;
    report.row("spinlock", 1, Value::Time(spin));

    for n in plan.sizes {
        // Nodes at even keys; the operation inserts and removes an odd one
        // between two of them.
        let mut floor = FloorTree::new(n)?;
        let alloc = measure(plan, |_| floor.op())?;
        report.row("rbtree", n, Value::Time(alloc));

        let mut spare = Some(RBTreeNodeReservation::new(GFP_KERNEL)?);
        let reused = measure(plan, |_| {
            let key = floor.key();
            let node = spare.take().ok_or(EINVAL)?;
            floor.tree.insert(node.into_node(key, 0));
            spare = Some(
                floor
                    .tree
                    .remove_node(&key)
                    .ok_or(EINVAL)?
                    .into_reservation(),
            );
            Ok(())
        })?;
        report.row("rbtree_reused", n, Value::Time(reused));
        drop(floor);
        yield_cpu()?;
    }
    Ok(clock.median)
}
