// SPDX-License-Identifier: GPL-2.0

//! The rows of the model's own structures, called directly: `io_tree`
//! and `set_bits_holes` on an [`ExtentIoTree`], `qgroup_assign` on a
//! [`QgroupTree`].

use kernel::{
    prelude::*,
    time::{Instant, Monotonic}, //
};

use super::{
    errno, maybe_yield, measure_paired, measure_timed, page, timed, yield_cpu, FloorTree, Plan,
    Report, Value,
};
use crate::{
    extent_io_tree::{ExtentBits, ExtentIoTree},
    qgroup::{Counters, QgroupId, QgroupTree},
    tools::prng::Prng,
};

/// An io tree of `n` states, one page each with `bits`, at the even pages
/// `0, 2, 4, ...` (holes between them, so nothing merges).
pub(super) fn fill_tree(tree: &ExtentIoTree, n: u64, bits: ExtentBits) -> Result {
    for j in 0..n {
        let r = page(2 * j);
        tree.set_bits(r.start, r.end, bits, None)?;
        maybe_yield(j)?;
    }
    Ok(())
}

/// `set_bits` + `clear_bits` of `QGROUP_RESERVED` on one page in the hole
/// between two states, in a tree of `n` states: one state inserted and
/// removed, like the floor's node.
pub(super) fn io_tree_rows(plan: &Plan, report: &mut Report) -> Result {
    for n in plan.sizes {
        let tree = KBox::pin_init(ExtentIoTree::new(), GFP_KERNEL)?;
        fill_tree(&tree, n, ExtentBits::DELALLOC)?;
        let mut rng = Prng::new(n);
        let mut floor = FloorTree::new(n)?;
        let fig = measure_paired(plan, &mut floor, |_| {
            let r = page(2 * rng.below(n) + 1);
            tree.set_bits(r.start, r.end, ExtentBits::QGROUP_RESERVED, None)?;
            tree.clear_bits(r.start, r.end, ExtentBits::QGROUP_RESERVED, None)?;
            Ok(())
        })?;
        report.row("io_tree", n, Value::Time(fig));
        drop(tree);
        yield_cpu()?;
    }
    Ok(())
}

/// One `set_bits` of `QGROUP_RESERVED` over `k` holes: the range covers
/// `k` one-page states and the `k` holes after them, and fills every hole.
/// Timed per call (the `clear_bits` that undoes it is not), per hole.
pub(super) fn holes_rows(plan: &Plan, report: &mut Report, clock_ps: u64) -> Result {
    for k in plan.sizes {
        let tree = KBox::pin_init(ExtentIoTree::new(), GFP_KERNEL)?;
        fill_tree(&tree, k, ExtentBits::DELALLOC)?;
        let (start, end) = (0, page(2 * k - 1).end);
        let fig = measure_timed(plan, k, clock_ps, None, |_| {
            let ns = timed(|| {
                tree.set_bits(start, end, ExtentBits::QGROUP_RESERVED, None)
                    .map(|_| ())
            })?;
            tree.clear_bits(start, end, ExtentBits::QGROUP_RESERVED, None)?;
            Ok(ns)
        })?;
        report.row("set_bits_holes", k, Value::Time(fig));
        drop(tree);
        yield_cpu()?;
    }
    Ok(())
}

/// Longest the set-up of one assign row may take, in milliseconds.
const ASSIGN_SETUP_BUDGET_MS: i64 = 10_000;
/// Longest one run of an assign row may take, in milliseconds.
const ASSIGN_RUN_BUDGET_MS: i64 = 2_000;

/// `qgroup assign` of a level-0 qgroup into a parent of `m` members
/// (timed), then the `qgroup remove` that undoes it (not timed).
///
/// Assign once walked the parent's members with a linear dedup, O(m^2);
/// it now walks up from each moved level-0 qgroup. The rows still run
/// under time budgets, so a regression shows as `n/a`: a run
/// stops after [`ASSIGN_RUN_BUDGET_MS`] (the row's `ops=` says how many it
/// made), and a row whose set-up (m assigns) passes
/// [`ASSIGN_SETUP_BUDGET_MS`] shows `n/a` with a note of how far it got.
pub(super) fn assign_rows(plan: &Plan, report: &mut Report, clock_ps: u64) -> Result {
    let parent = QgroupId::new(1, 1).ok_or(EINVAL)?;
    let child = QgroupId::level0(999);
    for m in plan.members {
        let qgroups = KBox::pin_init(QgroupTree::new(), GFP_KERNEL)?;
        errno(qgroups.create(parent, Counters::default()))?;
        errno(qgroups.create(child, Counters::default()))?;
        let setup = Instant::<Monotonic>::now();
        let mut members = 0;
        while members < m && setup.elapsed().as_millis() < ASSIGN_SETUP_BUDGET_MS {
            let member = QgroupId::level0(1000 + members);
            errno(qgroups.create(member, Counters::default()))?;
            errno(qgroups.assign(member, parent))?;
            maybe_yield(members)?;
            members += 1;
        }
        if members < m {
            pr_info!(
                "bench: note qgroup_assign {}: set-up stopped at {} members after {} ms\n",
                m,
                members,
                ASSIGN_SETUP_BUDGET_MS
            );
            report.row(
                "qgroup_assign",
                m,
                Value::NotAvailable("ns/op", "(set-up over its time budget)"),
            );
            continue;
        }
        let fig = measure_timed(plan, 1, clock_ps, Some(ASSIGN_RUN_BUDGET_MS), |_| {
            let ns = timed(|| errno(qgroups.assign(child, parent)).map(|_| ()))?;
            errno(qgroups.remove(child, parent))?;
            Ok(ns)
        })?;
        report.row("qgroup_assign", m, Value::Time(fig));
        drop(qgroups);
        yield_cpu()?;
    }
    Ok(())
}
