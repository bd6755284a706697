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
//! The rows by family, one file each: [`floor`] (the kernel's own
//! primitives), [`trees`] (the model's io tree and qgroup tree, called
//! directly), [`api`] (through the high-level API, as the commands go:
//! the reservation layer, a private instance's typed operations, the
//! `stress` runner) and [`memory`] (bytes per state, per data extent and
//! per idle inode).
//! This file holds the plan, the timing and the report they share.

use kernel::{
    prelude::*,
    rbtree::RBTree,
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

use crate::{
    changeset::ByteRange,
    failure::{Failure, QResult},
    tools::prng::Prng,
};

mod api;
mod calibration;
mod floor;
pub(crate) mod memory;
mod sharing;
mod trees;

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
    /// Item counts `n` of the rows of whole subvolumes and files
    /// (snapshot, delete, clone, rescan), whose set-up writes `n` extents.
    items: [u64; 3],
}

/// Most runs a row takes.
const MAX_RUNS: usize = 9;

impl Scale {
    /// The sizes and counts of a run at this scale.
    fn plan(self) -> Plan {
        match self {
            Self::Full => Plan {
                runs: 5,
                ops: 10_000,
                sizes: [10, 1_000, 100_000],
                members: [10, 1_000, 10_000],
                items: [10, 1_000, 100_000],
            },
            Self::Smoke => Plan {
                runs: 3,
                ops: 20,
                sizes: [10, 100, 1_000],
                members: [10, 30, 100],
                items: [10, 30, 100],
            },
        }
    }

    /// The scale's name in the `begin` line.
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
    /// For a row run interleaved with the floor ([`measure_paired`]): the
    /// median of the runs' ratios to the floor run just before each, per
    /// mille.
    paired: Option<u64>,
}

/// A rate figure: median, min and max over the runs, operations per
/// second, with counts a run reports beside it.
#[derive(Clone, Copy)]
struct RateFigure {
    median: u64,
    min: u64,
    max: u64,
    runs: usize,
    /// `flushes=` and `commits=` of the median run, for the stress row.
    events: Option<(u64, u64)>,
}

/// What a row shows.
enum Value {
    /// A time per operation.
    Time(Figure),
    /// A rate, operations per second.
    Rate(RateFigure),
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

/// Prints ` paired=R` (R the ratio, three decimals) for a paired figure.
struct Paired(Option<u64>);

impl kernel::fmt::Display for Paired {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        match self.0 {
            Some(milli) => write!(f, " paired={}.{:03}", milli / 1000, milli % 1000),
            None => Ok(()),
        }
    }
}

/// Prints ` flushes=F commits=C` for a rate figure that counts them.
struct Events(Option<(u64, u64)>);

impl kernel::fmt::Display for Events {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        match self.0 {
            Some((flushes, commits)) => write!(f, " flushes={} commits={}", flushes, commits),
            None => Ok(()),
        }
    }
}

/// Prints the rows and counts them.
struct Report {
    rows: u64,
}

impl Report {
    /// Prints one row and counts it.
    fn row(&mut self, name: &str, param: u64, value: Value) {
        self.rows += 1;
        match value {
            Value::Time(fig) => pr_info!(
                "bench: row {} {} {} ns/op min={} max={} runs={} ops={}{}\n",
                name,
                param,
                Nanos(fig.median),
                Nanos(fig.min),
                Nanos(fig.max),
                fig.runs,
                fig.units,
                Paired(fig.paired)
            ),
            Value::Rate(rate) => pr_info!(
                "bench: row {} {} {} ops/s min={} max={} runs={}{}\n",
                name,
                param,
                rate.median,
                rate.min,
                rate.max,
                rate.runs,
                Events(rate.events)
            ),
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

/// Sorts `samples` and returns their median, min and max (0 for none).
fn spread(samples: &mut [u64]) -> (u64, u64, u64) {
    samples.sort_unstable();
    let at = |i: Option<usize>| i.and_then(|i| samples.get(i)).copied().unwrap_or(0);
    (
        at(Some(samples.len() / 2)),
        at(Some(0)),
        at(samples.len().checked_sub(1)),
    )
}

/// The median, min and max of `samples` (picoseconds per unit).
fn figure(samples: &mut [u64], units: u64) -> Figure {
    let (median, min, max) = spread(samples);
    Figure {
        median,
        min,
        max,
        runs: samples.len(),
        units,
        paired: None,
    }
}

/// The median, min and max of `samples` (operations per second).
fn rate_figure(samples: &mut [u64], events: Option<(u64, u64)>) -> RateFigure {
    let (median, min, max) = spread(samples);
    RateFigure {
        median,
        min,
        max,
        runs: samples.len(),
        events,
    }
}

/// The floor's operation at one `n` (an `RBTree` insert + remove of one
/// kmalloc'd node between two of the tree's `n` nodes): the floor rows'
/// own tree, and kept beside a row so that each of the row's runs is
/// paired with a floor run just before it (the emulator's speed drifts
/// over minutes, not within a pair).
struct FloorTree {
    tree: RBTree<u64, u64>,
    n: u64,
    rng: Prng,
}

impl FloorTree {
    /// A floor tree of `n` nodes (at even keys).
    fn new(n: u64) -> Result<Self> {
        let mut tree = RBTree::new();
        for j in 0..n {
            tree.try_create_and_insert(2 * j, j, GFP_KERNEL)?;
            maybe_yield(j)?;
        }
        Ok(Self {
            tree,
            n,
            rng: Prng::new(n),
        })
    }

    /// A random odd key: a hole between two of the tree's nodes.
    fn key(&mut self) -> u64 {
        2 * self.rng.below(self.n) + 1
    }

    /// One floor operation.
    fn op(&mut self) -> Result {
        let key = self.key();
        self.tree.try_create_and_insert(key, 0, GFP_KERNEL)?;
        self.tree.remove(&key);
        Ok(())
    }
}

/// Like [`measure`], each run preceded by a run of `floor`'s operation of
/// the same length; the figure's `paired` is the median of the runs'
/// ratios (ours / the floor run just before it).
fn measure_paired(
    plan: &Plan,
    floor: &mut FloorTree,
    mut op: impl FnMut(u64) -> Result,
) -> Result<Figure> {
    let mut samples = [0u64; MAX_RUNS];
    let mut ratios = [0u64; MAX_RUNS];
    let runs = plan.runs.min(MAX_RUNS);
    let mut call = 0u64;
    for (sample, ratio) in samples.iter_mut().zip(ratios.iter_mut()).take(runs) {
        let floor_ps = timed_run(plan.ops, || floor.op())?;
        yield_cpu()?;
        *sample = timed_run(plan.ops, || {
            call += 1;
            op(call - 1)
        })?;
        *ratio = sample.saturating_mul(1000) / floor_ps.max(1);
        yield_cpu()?;
    }
    let mut fig = figure(&mut samples[..runs], plan.ops);
    fig.paired = (runs > 0).then(|| spread(&mut ratios[..runs]).0);
    Ok(fig)
}

/// Runs `op` `ops` times in a row; returns picoseconds per call.
fn timed_run(ops: u64, mut op: impl FnMut() -> Result) -> Result<u64> {
    let start = Instant::<Monotonic>::now();
    for _ in 0..ops {
        op()?;
    }
    Ok(per_unit(start.elapsed().as_nanos(), ops))
}

/// Times `plan.runs` runs of `plan.ops` calls of `op` as a whole; `op`
/// gets a running call number. A run's figure is its time over its calls.
fn measure(plan: &Plan, mut op: impl FnMut(u64) -> Result) -> Result<Figure> {
    let mut samples = [0u64; MAX_RUNS];
    let runs = plan.runs.min(MAX_RUNS);
    let mut call = 0u64;
    for sample in samples.iter_mut().take(runs) {
        *sample = timed_run(plan.ops, || {
            call += 1;
            op(call - 1)
        })?;
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
    let clock_ps = floor::floor_rows(&plan, &mut report)?;
    trees::io_tree_rows(&plan, &mut report)?;
    api::reserve_release_rows(&plan, &mut report)?;
    api::write_writeback_rows(&plan, &mut report)?;
    trees::holes_rows(&plan, &mut report, clock_ps)?;
    trees::assign_rows(&plan, &mut report, clock_ps)?;
    api::commit_rows(&plan, &mut report, clock_ps)?;
    sharing::snapshot_delete_rows(&plan, &mut report, clock_ps)?;
    sharing::clone_rows(&plan, &mut report, clock_ps)?;
    sharing::rescan_rows(&plan, &mut report, clock_ps)?;
    for workers in [1, 2] {
        let fig = calibration::ops_per_sec(&plan, workers)?;
        report.row("calibration", workers, Value::Rate(fig));
    }
    for workers in [1, 2] {
        let fig = api::stress_ops_per_sec(&plan, workers)?;
        report.row("stress", workers, Value::Rate(fig));
    }
    memory::memory_rows(&mut report);
    pr_info!("bench: end rows={}\n", report.rows);
    Ok(report.rows)
}
