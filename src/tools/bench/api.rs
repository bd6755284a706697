// SPDX-License-Identifier: GPL-2.0

//! The rows that go through the high-level API, as the commands do: the
//! reservation layer (`reserve_release`), the typed operations of a private
//! instance (`write_writeback`, `commit_dirty`) and the `stress` runner
//! (`stress`); the helpers the rows of [`super::sharing`] build on.

use kernel::prelude::*;

use super::{
    errno, measure_paired, measure_timed, page, rate_figure, timed, trees::fill_tree, yield_cpu,
    FloorTree, Plan, RateFigure, Report, Value, MAX_RUNS, PAGE,
};
use crate::{
    changeset::ExtentChangeset,
    extent_io_tree::ExtentBits,
    fs::{
        op::{DataOp, FileRange, Ino, InstanceOp, Op, QgroupList, SubvolId},
        FsState,
    },
    inode::Inode,
    legacy::Legacy,
    limits::{MAX_CAPACITY, TOP_SUBVOL},
    qgroup::{Counters, QgroupId, QgroupTree},
    rsv::Rsv,
    space::Space,
    tools::{
        prng::Prng,
        stress::{self, StressMix},
    },
};

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

/// Creates the qgroups of [`HIERARCHY`] in `qgroups`, each with both
/// limits set to [`BIG_LIMIT`], each assigned to the next.
pub(super) fn bench_hierarchy(qgroups: &QgroupTree) -> Result {
    let ids = hierarchy_ids()?;
    for id in ids {
        errno(qgroups.create(id, Counters::default()))?;
        errno(qgroups.limit(id, false, Some(BIG_LIMIT)))?;
        errno(qgroups.limit(id, true, Some(BIG_LIMIT)))?;
    }
    errno(qgroups.assign(ids[0], ids[1]))?;
    errno(qgroups.assign(ids[1], ids[2]))?;
    Ok(())
}

/// `reserve_data` + `release_data` of one page (the bits,
/// a fresh changeset, the limit check and the charge through the 3-level
/// hierarchy 0/5 -> 1/100 -> 2/200, each with both limits set) at each `n`.
///
/// The page is a hole between two of the inode's `n` reserved, dirty
/// states. The calls are the reservation layer's ([`Rsv`]), as the data
/// commands make them.
pub(super) fn reserve_release_rows(plan: &Plan, report: &mut Report) -> Result {
    let qgroups = KBox::pin_init(QgroupTree::new(), GFP_KERNEL)?;
    bench_hierarchy(&qgroups)?;
    let space = Space::new(MAX_CAPACITY);
    let rsv = Rsv {
        qgroups: &qgroups,
        space: &space,
        legacy: Legacy::default(),
        quota: true,
    };
    for n in plan.sizes {
        let inode = KBox::pin_init(Inode::new(SubvolId::TOP, Ino(257)), GFP_KERNEL)?;
        fill_tree(
            &inode.io_tree,
            n,
            ExtentBits::DELALLOC | ExtentBits::QGROUP_RESERVED,
        )?;
        let mut rng = Prng::new(n);
        let mut floor = FloorTree::new(n)?;
        let fig = measure_paired(plan, &mut floor, |_| {
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
pub(super) fn write_writeback_rows(plan: &Plan, report: &mut Report) -> Result {
    /// The file's inode number.
    const INO: Ino = Ino(257);
    let write = |off: u64| page_write(SubvolId::TOP, INO, off);
    let writeback: Op = DataOp::Writeback(SubvolId::TOP, INO).into();
    for n in plan.sizes {
        let fs = FsState::new(PAGE, 16384, MAX_CAPACITY)?;
        setup_hierarchy(&fs)?;
        fill_file(&fs, write, writeback, n)?;
        let mut rng = Prng::new(n);
        let mut floor = FloorTree::new(n)?;
        let fig = measure_paired(plan, &mut floor, |_| {
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

/// `commit` of a file of `n` one-page extents (committed, in subvolume 5,
/// and reflinked whole into subvolume 256, so every extent has two roots)
/// after 16 of its pages were overwritten and written back: 16 new extents
/// and 16 whose roots changed, per dirty extent. SPEC §8.8 wants this
/// independent of `n`: a commit visits only the dirty extents.
pub(super) fn commit_rows(plan: &Plan, report: &mut Report, clock_ps: u64) -> Result {
    /// The file's inode number.
    const INO: Ino = Ino(257);
    /// Pages overwritten before each commit.
    const PAGES: u64 = 16;
    let write = |off: u64| page_write(SubvolId::TOP, INO, off);
    let writeback: Op = DataOp::Writeback(SubvolId::TOP, INO).into();
    let commit: Op = InstanceOp::Commit.into();
    for n in plan.sizes {
        let fs = FsState::new(PAGE, 16384, MAX_CAPACITY)?;
        setup_hierarchy(&fs)?;
        errno(fs.execute(InstanceOp::SubvolCreate(SubvolId(256), QgroupList::new()).into()))?;
        fill_file(&fs, write, writeback, n)?;
        let whole = FileRange {
            subvol: SubvolId::TOP,
            ino: INO,
            off: 0,
            len: 2 * n * PAGE,
        };
        let reflink = DataOp::Clone(
            whole,
            FileRange {
                subvol: SubvolId(256),
                ..whole
            },
        );
        errno(fs.execute(reflink.into()))?;
        errno(fs.execute(commit))?;
        let pages = PAGES.min(n);
        let mut rng = Prng::new(n);
        let fig = measure_timed(plan, 2 * pages, clock_ps, None, |_| {
            let first = rng.below(n);
            for i in 0..pages {
                errno(fs.execute(write(2 * ((first + i) % n) * PAGE)))?;
            }
            errno(fs.execute(writeback))?;
            timed(|| errno(fs.execute(commit)).map(|_| ()))
        })?;
        report.row("commit_dirty", n, Value::Time(fig));
        drop(fs);
        yield_cpu()?;
    }
    Ok(())
}

/// A buffered write of one page at `off` of inode `ino` of `subvol`.
pub(super) fn page_write(subvol: SubvolId, ino: Ino, off: u64) -> Op {
    DataOp::Write(
        FileRange {
            subvol,
            ino,
            off,
            len: PAGE,
        },
        false,
    )
    .into()
}

/// Makes a file of `n` one-page extents at the even pages: `write(off)` of
/// each, `writeback` after every 1024 and at the end.
pub(super) fn fill_file(fs: &FsState, write: impl Fn(u64) -> Op, writeback: Op, n: u64) -> Result {
    for j in 0..n {
        errno(fs.execute(write(2 * j * PAGE)))?;
        if j % 1024 == 1023 || j + 1 == n {
            errno(fs.execute(writeback))?;
            yield_cpu()?;
        }
    }
    Ok(())
}

/// Quotas on and the 3-level hierarchy 0/5 -> 1/100 -> 2/200 with both
/// limits on each, through the commands.
pub(super) fn setup_hierarchy(fs: &FsState) -> Result {
    let ids = hierarchy_ids()?;
    errno(fs.execute(InstanceOp::QuotaEnable { simple: false }.into()))?;
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

/// `stress` throughput with `workers` workers on private inodes, in data
/// commands per second: `plan.ops` commands each on a fresh instance with
/// quotas on, over `plan.runs` runs (SPEC §6 `stress`, the same runner as
/// the command, called with no lock held), with the flushes and commits of
/// the median run.
pub(super) fn stress_ops_per_sec(plan: &Plan, workers: u64) -> Result<RateFigure> {
    let runs = plan.runs.min(MAX_RUNS);
    let mut samples = [(0u64, (0u64, 0u64)); MAX_RUNS];
    for (run, sample) in samples.iter_mut().take(runs).enumerate() {
        let fs = FsState::new(PAGE, 16384, MAX_CAPACITY)?;
        errno(fs.execute(InstanceOp::QuotaEnable { simple: false }.into()))?;
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
        let stats = fs.stats();
        *sample = (
            ops.saturating_mul(1_000_000_000) / ns,
            (stats.flushes, stats.commits),
        );
        drop(fs);
        yield_cpu()?;
    }
    let samples = &mut samples[..runs];
    samples.sort_unstable();
    let events = samples.get(runs / 2).map(|&(_, events)| events);
    let mut rates = [0u64; MAX_RUNS];
    for (rate, &(r, _)) in rates.iter_mut().zip(samples.iter()) {
        *rate = r;
    }
    Ok(rate_figure(&mut rates[..runs], events))
}
