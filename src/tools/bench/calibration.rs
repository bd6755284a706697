// SPDX-License-Identifier: GPL-2.0

//! The calibration row: what the emulator lets two workers gain over one
//! when they share nothing at all, the ceiling for the `stress` row's
//! speed-up.
//!
//! Each worker inserts and removes kmalloc'd nodes in an `RBTree` of its
//! own (the floor's operation), on a workqueue worker as `stress` runs its
//! workers; nothing is shared but the allocator. The rate is all the
//! workers' operations over the time from the first worker's start to the
//! last one's end.

use kernel::{
    new_spinlock,
    prelude::*,
    sync::{Arc, Completion, SpinLock},
    time::{Instant, Monotonic},
    workqueue,
};

use super::{maybe_yield, rate_figure, yield_cpu, FloorTree, Plan, RateFigure, MAX_RUNS};

/// Nodes in each worker's tree.
const NODES: u64 = 1000;

/// What the workers of one run report.
struct Span {
    /// Earliest start and latest end, in nanoseconds since the run began.
    first_start: i64,
    last_end: i64,
    /// Workers still running; the last one completes `done`.
    left: u64,
    /// A worker failed (an allocation): the run is void.
    failed: bool,
}

/// One calibration run.
#[pin_data]
struct CalibrationRun {
    begun: Instant<Monotonic>,
    ops: u64,
    #[pin]
    span: SpinLock<Span>,
    #[pin]
    done: Completion,
}

impl CalibrationRun {
    /// One worker's part: its own tree, `ops` operations, timed.
    fn work(&self, worker: u64) {
        let result = (|| -> Result<(i64, i64)> {
            let mut floor = FloorTree::new(NODES + worker)?;
            let start = self.begun.elapsed().as_nanos();
            for i in 0..self.ops {
                floor.op()?;
                maybe_yield(i)?;
            }
            Ok((start, self.begun.elapsed().as_nanos()))
        })();
        let mut span = self.span.lock();
        match result {
            Ok((start, end)) => {
                span.first_start = span.first_start.min(start);
                span.last_end = span.last_end.max(end);
            }
            Err(_) => span.failed = true,
        }
        span.left -= 1;
        let last = span.left == 0;
        drop(span);
        if last {
            self.done.complete_all();
        }
    }
}

/// Runs last this many times `plan.ops` operations a worker: long enough
/// that starting the workers is lost in it.
const OPS_FACTOR: u64 = 10;

/// Operations per second of `workers` workers, each doing `OPS_FACTOR x
/// plan.ops` floor operations on a tree of its own, over `plan.runs` runs.
pub(super) fn ops_per_sec(plan: &Plan, workers: u64) -> Result<RateFigure> {
    let ops = plan.ops * OPS_FACTOR;
    let runs = plan.runs.min(MAX_RUNS);
    let mut samples = [0u64; MAX_RUNS];
    for sample in samples.iter_mut().take(runs) {
        let run = Arc::pin_init(
            pin_init!(CalibrationRun {
                begun: Instant::now(),
                ops,
                span <- new_spinlock!(Span {
                    first_start: i64::MAX,
                    last_end: 0,
                    left: workers,
                    failed: false,
                }, "bench::calibration::span"),
                done <- Completion::new(),
            }),
            GFP_KERNEL,
        )?;
        for worker in 0..workers {
            let me = run.clone();
            let spawned =
                workqueue::system_unbound().try_spawn(GFP_KERNEL, move || me.work(worker));
            if let Err(e) = spawned {
                // The workers spawned so far finish on their own; wait for
                // none of them, the bench stops here.
                return Err(e.into());
            }
        }
        run.done.wait_for_completion();
        let span = run.span.lock();
        if span.failed {
            return Err(ENOMEM);
        }
        let ns = u64::try_from(span.last_end - span.first_start)
            .unwrap_or(0)
            .max(1);
        *sample = (workers * ops).saturating_mul(1_000_000_000) / ns;
        drop(span);
        yield_cpu()?;
    }
    Ok(rate_figure(&mut samples[..runs], None))
}
