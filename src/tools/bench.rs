// SPDX-License-Identifier: GPL-2.0

//! The `bench` command: what the module's operations cost next to the
//! kernel's own primitives, measured in the same run.
//!
//! Every row is the median over [`Plan::runs`] runs of at least
//! [`Plan::ops`] operations, in nanoseconds per operation, timed with
//! [`Instant<Monotonic>`]. The rows are printed to the kernel log, one a
//! line, each starting with `bench: row ` (after the module's `qgroup_rs: `
//! prefix):
//!
//! ```text
//! bench: row NAME PARAM VALUE UNIT [min=MIN max=MAX runs=R ops=O]
//! ```
//!
//! between a `bench: begin scale=S` and a `bench: end rows=N` line. `VALUE`
//! is `n/a` for a row that cannot be measured yet. The host
//! (`qemu/bench.py`) turns them into the table with ratios, a CSV and a
//! plot.
//!
//! Everything runs on structures private to the bench (its own io trees,
//! qgroup trees, inodes and filesystem instance): the instance behind
//! `control` is not touched. No lock is held across runs; between runs,
//! and every few thousand steps of a set-up, the bench sleeps briefly so
//! that a long bench never hogs a CPU.
//!
//! The rows that use the high-level API each live in one function marked
//! `HIGH-LEVEL API`: [`reserve_release_rows`], [`write_writeback_rows`],
//! [`stress_ops_per_sec`] and [`idle_inode_bytes`]. The others use only
//! [`ExtentIoTree`], [`QgroupTree`], the kernel's [`RBTree`] and
//! [`SpinLock`](kernel::sync::SpinLock).

use kernel::{
    new_spinlock,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

use crate::{
    changeset::{ByteRange, ExtentChangeset},
    extent_io_tree::{ExtentBits, ExtentIoTree, STATE_NODE_BYTES},
    failure::{Failure, QResult},
    fs::{
        op::{DataOp, FileRange, InstanceOp, Op},
        space::Space,
        FsState,
    },
    inode::Inode,
    legacy::Legacy,
    limits::{MAX_CAPACITY, TOP_SUBVOL},
    qgroup::{Counters, QgroupId, QgroupTree},
    rsv::Rsv,
    tools::{
        prng::Prng,
        stress::{self, StressMix},
    },
};

/// How big a bench run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scale {
    /// The figures of `make bench`: 5 runs of 10^4 operations, trees of
    /// 10, 10^3 and 10^5 states, parents of 10, 10^3 and 10^4 members.
    Full,
    /// Every row with tiny counts, for `make test` (seconds on the debug
    /// kernel; the figures mean nothing).
    Smoke,
}

/// The sizes and counts of one bench run.
struct Plan {
    /// Runs per row; the row is their median.
    runs: usize,
    /// Operations per run (at least; rows whose operation covers several
    /// units count units).
    ops: u64,
    /// Tree sizes `n` (states, nodes, extents) and hole counts `k`.
    sizes: [u64; 3],
    /// Member counts `m` of the qgroup assign rows.
    members: [u64; 3],
}

/// Most runs a row takes.
const MAX_RUNS: usize = 9;

impl Scale {
    fn plan(self) -> Plan {
        match self {
            Self::Full => Plan {
                runs: 5,
                ops: 10_000,
                sizes: [10, 1_000, 100_000],
                members: [10, 1_000, 10_000],
            },
            Self::Smoke => Plan {
                runs: 3,
                ops: 20,
                sizes: [10, 100, 1_000],
                members: [10, 30, 100],
            },
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Smoke => "smoke",
        }
    }
}

/// The page size of every io tree operation here (one sector).
const PAGE: u64 = 4096;

/// The inclusive byte range of page `j`; `j` is below 2^40 here, so no
/// overflow.
fn page(j: u64) -> ByteRange {
    ByteRange {
        start: j * PAGE,
        end: j * PAGE + PAGE - 1,
    }
}

/// The errno of a model failure (the bench reports errnos only).
fn errno<T>(r: QResult<T>) -> Result<T> {
    r.map_err(|f: Failure| f.errno())
}

/// Sleeps briefly with no lock held: the bench's scheduling point, where a
/// signal to the writer (Ctrl-C, SIGKILL) stops the run with EINTR.
fn yield_cpu() -> Result {
    fsleep(Delta::from_micros(20));
    if kernel::current!().signal_pending() {
        pr_info!("bench: interrupted\n");
        return Err(EINTR);
    }
    Ok(())
}

/// Sleeps every 4096 steps of a long loop.
fn maybe_yield(step: u64) -> Result {
    if step % 4096 == 4095 {
        yield_cpu()?;
    }
    Ok(())
}

/// One measured figure: median, min and max over the runs, in
/// picoseconds per unit.
#[derive(Clone, Copy)]
struct Figure {
    median: u64,
    min: u64,
    max: u64,
    runs: usize,
    units: u64,
}

/// What a row shows.
enum Value {
    /// A time per operation.
    Time(Figure),
    /// A rate, operations per second.
    Rate(u64),
    /// A size in bytes, with how it was found.
    Bytes(u64, &'static str),
    /// Not measurable (yet): the unit it would have, and why not.
    NotAvailable(&'static str, &'static str),
}

/// Prints picoseconds as nanoseconds with two decimals.
struct Nanos(u64);

impl kernel::fmt::Display for Nanos {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        write!(f, "{}.{:02}", self.0 / 1000, self.0 % 1000 / 10)
    }
}

/// Prints the rows and counts them.
struct Report {
    rows: u64,
}

impl Report {
    fn row(&mut self, name: &str, param: u64, value: Value) {
        self.rows += 1;
        match value {
            Value::Time(fig) => pr_info!(
                "bench: row {} {} {} ns/op min={} max={} runs={} ops={}\n",
                name,
                param,
                Nanos(fig.median),
                Nanos(fig.min),
                Nanos(fig.max),
                fig.runs,
                fig.units
            ),
            Value::Rate(rate) => pr_info!("bench: row {} {} {} ops/s\n", name, param, rate),
            Value::Bytes(bytes, how) => {
                pr_info!("bench: row {} {} {} bytes {}\n", name, param, bytes, how)
            }
            Value::NotAvailable(unit, why) => {
                pr_info!("bench: row {} {} n/a {} {}\n", name, param, unit, why)
            }
        }
    }
}

/// Picoseconds per unit for `ns` nanoseconds over `units` units.
fn per_unit(ns: i64, units: u64) -> u64 {
    let ns = u64::try_from(ns).unwrap_or(0);
    ns.saturating_mul(1000) / units.max(1)
}

/// The median, min and max of `samples` (picoseconds per unit).
fn figure(samples: &mut [u64], units: u64) -> Figure {
    samples.sort_unstable();
    Figure {
        median: samples.get(samples.len() / 2).copied().unwrap_or(0),
        min: samples.first().copied().unwrap_or(0),
        max: samples.last().copied().unwrap_or(0),
        runs: samples.len(),
        units,
    }
}

/// Times `plan.runs` runs of `plan.ops` calls of `op` as a whole; `op`
/// gets a running call number. A run's figure is its time over its calls.
fn measure(plan: &Plan, mut op: impl FnMut(u64) -> Result) -> Result<Figure> {
    let mut samples = [0u64; MAX_RUNS];
    let runs = plan.runs.min(MAX_RUNS);
    let mut call = 0u64;
    for sample in samples.iter_mut().take(runs) {
        let start = Instant::<Monotonic>::now();
        for _ in 0..plan.ops {
            op(call)?;
            call += 1;
        }
        *sample = per_unit(start.elapsed().as_nanos(), plan.ops);
        yield_cpu()?;
    }
    Ok(figure(&mut samples[..runs], plan.ops))
}

/// Times runs of `op` call by call, for operations that need an untimed
/// undo after them: `op` returns the nanoseconds of its timed part, each
/// call covers `units_per_call` units, and a run makes enough calls to
/// cover `plan.ops` units (at least one). `clock_ps`, the cost of one clock
/// read, is taken off each call. With a `budget_ms`, a run also stops once
/// it has taken that long (after [`MIN_CALLS`] calls at least); the
/// figure's unit count is then the smallest a run reached.
fn measure_timed(
    plan: &Plan,
    units_per_call: u64,
    clock_ps: u64,
    budget_ms: Option<i64>,
    mut op: impl FnMut(u64) -> Result<i64>,
) -> Result<Figure> {
    let per_call = units_per_call.max(1);
    let calls = plan.ops.div_ceil(per_call).max(1);
    let mut samples = [0u64; MAX_RUNS];
    let runs = plan.runs.min(MAX_RUNS);
    let mut call = 0u64;
    let mut fewest = u64::MAX;
    for sample in samples.iter_mut().take(runs) {
        let mut ps = 0u64;
        let mut done = 0u64;
        let run_start = Instant::<Monotonic>::now();
        for i in 0..calls {
            let ns = op(call)?;
            call += 1;
            done += 1;
            ps = ps.saturating_add(per_unit(ns, 1).saturating_sub(clock_ps));
            maybe_yield(i)?;
            if budget_ms.is_some_and(|b| done >= MIN_CALLS && run_start.elapsed().as_millis() >= b)
            {
                break;
            }
        }
        let units = done.saturating_mul(per_call);
        fewest = fewest.min(units);
        *sample = ps / units.max(1);
        yield_cpu()?;
    }
    Ok(figure(&mut samples[..runs], fewest))
}

/// Fewest calls a time-budgeted run makes.
const MIN_CALLS: u64 = 5;

/// Nanoseconds `f` takes.
fn timed(f: impl FnOnce() -> Result) -> Result<i64> {
    let start = Instant::<Monotonic>::now();
    f()?;
    Ok(start.elapsed().as_nanos())
}

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

/// Runs the bench at `scale` and prints its rows; returns how many.
pub(crate) fn run(scale: Scale) -> Result<u64> {
    let plan = scale.plan();
    let mut report = Report { rows: 0 };
    pr_info!(
        "bench: begin scale={} runs={} ops={}\n",
        scale.name(),
        plan.runs,
        plan.ops
    );
    let clock_ps = floor_rows(&plan, &mut report)?;
    io_tree_rows(&plan, &mut report)?;
    reserve_release_rows(&plan, &mut report)?;
    write_writeback_rows(&plan, &mut report)?;
    holes_rows(&plan, &mut report, clock_ps)?;
    assign_rows(&plan, &mut report, clock_ps)?;
    for workers in [1, 2] {
        let value = match stress_ops_per_sec(&plan, workers)? {
            Some(rate) => Value::Rate(rate),
            None => Value::NotAvailable("ops/s", "(no run)"),
        };
        report.row("stress", workers, value);
    }
    memory_rows(&mut report);
    pr_info!("bench: end rows={}\n", report.rows);
    Ok(report.rows)
}

/// The floor: a clock read, a spinlock round trip, and the kernel's
/// `RBTree` insert + remove of one node at each `n`, with the node
/// allocated and freed each time (`try_create_and_insert` + `remove`) and
/// with one node reused (no allocation). Returns the cost of a clock read
/// in picoseconds.
fn floor_rows(plan: &Plan, report: &mut Report) -> Result<u64> {
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
        let mut tree = RBTree::<u64, u64>::new();
        for j in 0..n {
            tree.try_create_and_insert(2 * j, j, GFP_KERNEL)?;
            maybe_yield(j)?;
        }
        let mut rng = Prng::new(n);
        let alloc = measure(plan, |_| {
            let key = 2 * rng.below(n) + 1;
            tree.try_create_and_insert(key, 0, GFP_KERNEL)?;
            tree.remove(&key);
            Ok(())
        })?;
        report.row("rbtree", n, Value::Time(alloc));

        let mut spare = Some(RBTreeNodeReservation::new(GFP_KERNEL)?);
        let reused = measure(plan, |_| {
            let key = 2 * rng.below(n) + 1;
            let reservation = spare.take().ok_or(EINVAL)?;
            tree.insert(reservation.into_node(key, 0));
            spare = Some(tree.remove_node(&key).ok_or(EINVAL)?.into_reservation());
            Ok(())
        })?;
        report.row("rbtree_reused", n, Value::Time(reused));
        drop(tree);
        yield_cpu()?;
    }
    Ok(clock.median)
}

/// An io tree of `n` states, one page each with `bits`, at the even pages
/// `0, 2, 4, ...` (holes between them, so nothing merges).
fn fill_tree(tree: &ExtentIoTree, n: u64, bits: ExtentBits) -> Result {
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
fn io_tree_rows(plan: &Plan, report: &mut Report) -> Result {
    for n in plan.sizes {
        let tree = KBox::pin_init(ExtentIoTree::new(), GFP_KERNEL)?;
        fill_tree(&tree, n, ExtentBits::DELALLOC)?;
        let mut rng = Prng::new(n);
        let fig = measure(plan, |_| {
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

/// The level-0 qgroup of the bench's subvolume and its two ancestors.
const HIERARCHY: [(u64, u64); 3] = [(0, TOP_SUBVOL), (1, 100), (2, 200)];

/// Limits far above anything the bench charges, so that every limit check
/// runs and passes.
const BIG_LIMIT: u64 = 1 << 50;

/// The qgroup ids of [`HIERARCHY`].
fn hierarchy_ids() -> Result<[QgroupId; 3]> {
    let mut ids = [QgroupId::level0(TOP_SUBVOL); 3];
    for (id, (level, n)) in ids.iter_mut().zip(HIERARCHY) {
        *id = QgroupId::new(level, n).ok_or(EINVAL)?;
    }
    Ok(ids)
}

/// `reserve_data` + `release_data` of one page (the bits,
/// a fresh changeset, the limit check and the charge through the 3-level
/// hierarchy 0/5 -> 1/100 -> 2/200, each with both limits set) at each `n`.
///
/// The page is a hole between two of the inode's `n` reserved, dirty
/// states. The calls are the reservation layer's ([`Rsv`]), as the data
/// commands make them.
fn reserve_release_rows(plan: &Plan, report: &mut Report) -> Result {
    let qgroups = KBox::pin_init(QgroupTree::new(), GFP_KERNEL)?;
    let ids = hierarchy_ids()?;
    for id in ids {
        errno(qgroups.create(id, Counters::default()))?;
        errno(qgroups.limit(id, false, Some(BIG_LIMIT)))?;
        errno(qgroups.limit(id, true, Some(BIG_LIMIT)))?;
    }
    errno(qgroups.assign(ids[0], ids[1]))?;
    errno(qgroups.assign(ids[1], ids[2]))?;
    let space = Space::new(MAX_CAPACITY);
    let rsv = Rsv {
        qgroups: &qgroups,
        space: &space,
        legacy: Legacy::default(),
        quota: true,
    };
    for n in plan.sizes {
        let inode = KBox::pin_init(Inode::new(TOP_SUBVOL, 257), GFP_KERNEL)?;
        fill_tree(
            &inode.io_tree,
            n,
            ExtentBits::DELALLOC | ExtentBits::QGROUP_RESERVED,
        )?;
        let mut rng = Prng::new(n);
        let fig = measure(plan, |_| {
            let range = page(2 * rng.below(n) + 1);
            let mut changeset = ExtentChangeset::new();
            errno(rsv.reserve_data(&inode, Some(&mut changeset), range, ExtentBits::NONE))?;
            errno(rsv.release_data(&inode, range))?;
            Ok(())
        })?;
        report.row("reserve_release", n, Value::Time(fig));
        drop(inode);
        yield_cpu()?;
    }
    Ok(())
}

/// `write` + `writeback` of one page through the composite operations of
/// a private filesystem instance (quotas on, the 3-level hierarchy with
/// limits), in a file of `n` extents: the parsed commands run through
/// [`FsState::execute`], with the instance gate and the inode lock, as a
/// write to `control` does (only the parsing is left out).
///
/// The file is made of `n` one-page extents at the even pages (written and
/// written back); each operation overwrites one of them (copy-on-write: a
/// new extent replaces it).
fn write_writeback_rows(plan: &Plan, report: &mut Report) -> Result {
    const INO: u64 = 257;
    let write = |off: u64| -> Op {
        DataOp::Write(
            FileRange {
                subvol: TOP_SUBVOL,
                ino: INO,
                off,
                len: PAGE,
            },
            false,
        )
        .into()
    };
    let writeback: Op = DataOp::Writeback(TOP_SUBVOL, INO).into();
    for n in plan.sizes {
        let fs = FsState::new(PAGE, 16384, MAX_CAPACITY)?;
        setup_hierarchy(&fs)?;
        for j in 0..n {
            errno(fs.execute(write(2 * j * PAGE)))?;
            if j % 1024 == 1023 || j + 1 == n {
                errno(fs.execute(writeback))?;
                yield_cpu()?;
            }
        }
        let mut rng = Prng::new(n);
        let fig = measure(plan, |_| {
            let off = 2 * rng.below(n) * PAGE;
            errno(fs.execute(write(off)))?;
            errno(fs.execute(writeback))?;
            Ok(())
        })?;
        report.row("write_writeback", n, Value::Time(fig));
        drop(fs);
        yield_cpu()?;
    }
    Ok(())
}

/// Quotas on and the 3-level hierarchy 0/5 -> 1/100 -> 2/200 with both
/// limits on each, through the commands.
fn setup_hierarchy(fs: &FsState) -> Result {
    let ids = hierarchy_ids()?;
    errno(fs.execute(InstanceOp::QuotaEnable.into()))?;
    for id in &ids[1..] {
        errno(fs.execute(InstanceOp::QgroupCreate(*id).into()))?;
    }
    errno(fs.execute(InstanceOp::QgroupAssign(ids[0], ids[1]).into()))?;
    errno(fs.execute(InstanceOp::QgroupAssign(ids[1], ids[2]).into()))?;
    for id in ids {
        for excl in [false, true] {
            let limit = InstanceOp::QgroupLimit {
                excl,
                max: Some(BIG_LIMIT),
                id,
            };
            errno(fs.execute(limit.into()))?;
        }
    }
    Ok(())
}

/// One `set_bits` of `QGROUP_RESERVED` over `k` holes: the range covers
/// `k` one-page states and the `k` holes after them, and fills every hole.
/// Timed per call (the `clear_bits` that undoes it is not), per hole.
fn holes_rows(plan: &Plan, report: &mut Report, clock_ps: u64) -> Result {
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
fn assign_rows(plan: &Plan, report: &mut Report, clock_ps: u64) -> Result {
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
            let ns = timed(|| errno(qgroups.assign(child, parent)))?;
            errno(qgroups.remove(child, parent))?;
            Ok(ns)
        })?;
        report.row("qgroup_assign", m, Value::Time(fig));
        drop(qgroups);
        yield_cpu()?;
    }
    Ok(())
}

/// `stress` throughput with `workers` workers on private inodes, in data
/// commands per second: `plan.ops` commands each on a fresh instance with
/// quotas on, the median of `plan.runs` runs (SPEC §6 `stress`, the same
/// runner as the command, called with no lock held).
fn stress_ops_per_sec(plan: &Plan, workers: u64) -> Result<Option<u64>> {
    let mut samples = KVec::with_capacity(plan.runs, GFP_KERNEL)?;
    for run in 0..plan.runs {
        let fs = FsState::new(PAGE, 16384, MAX_CAPACITY)?;
        errno(fs.execute(InstanceOp::QuotaEnable.into()))?;
        let report = errno(stress::run(
            &fs,
            workers,
            plan.ops,
            run as u64 + 1,
            StressMix::Private,
        ))?;
        let (ops, ns) = (report.ops, report.elapsed_ns.max(1));
        // Saturating: a run's ops times 10^9 fits a u64 for any run that
        // ends in this century.
        let per_sec = ops.saturating_mul(1_000_000_000) / ns;
        samples.push(per_sec, GFP_KERNEL)?;
        drop(fs);
        yield_cpu()?;
    }
    samples.sort_unstable();
    Ok(samples.get(samples.len() / 2).copied())
}

/// The bytes an idle inode takes as allocated, and the spare nodes its io
/// trees keep after use: `(fresh, spares)`.
///
/// An inode is an `Arc<Inode>` (the refcount and the inode in one
/// allocation) plus its node in the subvolume's inode `RBTree`. The trees
/// keep no spare nodes: an operation's reservations are freed when it
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

/// Memory rows: bytes per extent state and per idle inode, as allocated.
///
/// The kernel crate offers no safe `ksize()`: the sizes are the SLUB size
/// classes ([`kmalloc_size_class`]) of the allocations' `size_of`, which is
/// what `ksize()` returns without slab debugging (the bench kernel has
/// none enabled).
fn memory_rows(report: &mut Report) {
    report.row(
        "mem_state",
        1,
        Value::Bytes(
            kmalloc_size_class(STATE_NODE_BYTES) as u64,
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
