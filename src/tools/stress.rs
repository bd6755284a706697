// SPDX-License-Identifier: GPL-2.0

//! `stress THREADS OPS SEED [shared|private]` (SPEC §6): kernel workers
//! running seeded-random data operations through [`FsState::execute`], the
//! very path of the debugfs commands, while one more worker commits.
//!
//! The run sets up its own corner of the instance: three new subvolumes
//! `a`, `b`, `c` under a two-level hierarchy with a diamond (`1/a` over
//! `0/a` and `0/b`, `1/c` over `0/b` and `0/c`, `2/a` over both), each with
//! an exclusive limit near what the workers write, so that reservations
//! meet their limits, flush and fail. Each worker has inodes of its own and,
//! with `shared`, all workers also write the same few inodes.

use kernel::{
    new_condvar, new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, CondVar, Mutex,
    },
    time::{delay::fsleep, Delta, Instant, Monotonic},
    workqueue,
};

use super::prng::Prng;
use crate::{
    changeset::ChangesetName,
    failure::{fail, QResult},
    fs::{
        op::{DataOp, FileRange, Ino, InstanceOp, MetaOp, QgroupList, SubvolId},
        FsState,
    },
    limits::FIRST_FREE_SUBVOL,
    qgroup::{QgroupId, RsvType},
};

/// Which inodes a `stress` run's workers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StressMix {
    /// Inodes private to each worker and inodes all workers share.
    Shared,
    /// Inodes private to each worker only.
    Private,
}

/// What a finished `stress` run reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StressReport {
    /// The workers' commands (THREADS x OPS unless interrupted).
    pub(crate) ops: u64,
    /// Of which ended in EDQUOT.
    pub(crate) edquot: u64,
    /// Time from letting the workers go to the last one done.
    pub(crate) elapsed_ns: u64,
}

/// Inodes private to each worker.
const PRIVATE_INODES: u64 = 6;
/// Inodes every worker shares (per subvolume).
const SHARED_INODES: u64 = 4;
/// First inode number of the shared inodes.
const SHARED_INO: u64 = 1 << 20;
/// First inode number of the workers' raw-reservation inodes.
const RAW_INO: u64 = 1 << 21;
/// Bytes of file space the workers write in (per inode).
const FILE_SPAN: u64 = 256 << 10;

/// Where a run's workers are: parked until the set-up is done, then let go
/// (or sent home when the set-up failed).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Started, waiting for the set-up.
    Parked,
    /// The set-up is done: work in these subvolumes.
    Go([SubvolId; 3]),
    /// The run failed before any work: return at once.
    Abort,
}

/// What a run's mutex protects.
struct Workers {
    phase: Phase,
    /// Workers started and not yet done (the committing one included).
    running: u64,
}

/// One stress run, shared by its workers.
#[pin_data]
struct Run {
    fs: Arc<FsState>,
    threads: u64,
    ops: u64,
    seed: u64,
    mix: StressMix,
    /// Commands run and commands that ended in EDQUOT, over all workers.
    done_ops: Atomic<u64>,
    edquot: Atomic<u64>,
    /// The workers stop at their next command (they are done, or the
    /// writer was interrupted); the committing worker ends.
    stop: Atomic<bool>,
    #[pin]
    workers: Mutex<Workers>,
    #[pin]
    changed: CondVar,
}

impl Run {
    /// Waits until the writer lets the workers go; `None` if it aborts.
    fn wait_go(&self) -> Option<[SubvolId; 3]> {
        let mut workers = self.workers.lock();
        loop {
            match workers.phase {
                Phase::Parked => self.changed.wait(&mut workers),
                Phase::Go(subvols) => return Some(subvols),
                Phase::Abort => return None,
            }
        }
    }

    /// Lets the parked workers go, or sends them home.
    fn release(&self, phase: Phase) {
        self.workers.lock().phase = phase;
        self.changed.notify_all();
    }

    /// Counts one worker out. It is the last thing a worker does with the
    /// run.
    fn worker_done(&self) {
        let mut workers = self.workers.lock();
        workers.running -= 1;
        self.changed.notify_all();
    }

    /// Waits until at most `left` workers run. With `interruptible`, a
    /// signal to the writer ends the wait early: returns `false` then.
    fn wait_running(&self, left: u64, interruptible: bool) -> bool {
        let mut workers = self.workers.lock();
        while workers.running > left {
            if interruptible {
                if self.changed.wait_interruptible(&mut workers) {
                    return false;
                }
            } else {
                self.changed.wait(&mut workers);
            }
        }
        true
    }

    /// Runs `op` like a debugfs write and counts it.
    fn run(&self, op: DataOp) {
        let result = self.fs.execute(op.into());
        self.done_ops.add(1, Relaxed);
        if result.is_err_and(|f| f.errno() == EDQUOT) {
            self.edquot.add(1, Relaxed);
        }
    }

    /// One worker: `ops` random data commands in `subvols` (fewer if the
    /// run is stopped).
    ///
    /// The raw reservation API (`reserve`, `free`, `release`, `changeset
    /// drop`) works on two inodes of the worker's own that no write touches,
    /// as a caller of upstream's API owns its ranges: a raw `free` of dirty
    /// bytes would break the invariants by design. Meta reservations are
    /// `pertrans` ones, which the commits free.
    fn work(&self, worker: u64, subvols: [SubvolId; 3]) {
        let mut rng = Prng::new(self.seed ^ worker.wrapping_mul(0x1000_0001));
        let names = [0u64, 1].map(|k| changeset_name(worker, k));
        for _ in 0..self.ops {
            if self.stop.load(Relaxed) {
                break;
            }
            let subvol = subvols[rng.below(3) as usize];
            let shared = self.mix == StressMix::Shared && rng.below(3) == 0;
            let ino = Ino(if shared {
                SHARED_INO + rng.below(SHARED_INODES)
            } else {
                FIRST_FREE_SUBVOL + worker * PRIVATE_INODES + rng.below(PRIVATE_INODES)
            });
            let k = rng.below(2);
            let raw_ino = Ino(RAW_INO + worker * 2 + k);
            let sector = 4096;
            let off = rng.below(FILE_SPAN / sector) * sector + rng.below(4) * 1024;
            let len = 1 + rng.below(8 * sector);
            let file = FileRange {
                subvol,
                ino,
                off,
                len,
            };
            let raw = FileRange {
                ino: raw_ino,
                ..file
            };
            let name = names[k as usize];
            let op = match (rng.below(100), name) {
                (0..38, _) => DataOp::Write(file, rng.below(8) == 0),
                (38..42, _) => {
                    // A reflink of whole sectors into one of the worker's
                    // own inodes or a shared one, of any subvolume.
                    let dst_ino = Ino(if rng.below(2) == 0 {
                        SHARED_INO + rng.below(SHARED_INODES)
                    } else {
                        FIRST_FREE_SUBVOL + worker * PRIVATE_INODES + rng.below(PRIVATE_INODES)
                    });
                    let src = FileRange {
                        off: off / sector * sector,
                        len: (1 + rng.below(8)) * sector,
                        ..file
                    };
                    let dst = FileRange {
                        subvol: subvols[rng.below(3) as usize],
                        ino: dst_ino,
                        off: rng.below(FILE_SPAN / sector) * sector,
                        len: src.len,
                    };
                    DataOp::Clone(src, dst)
                }
                (42..50, _) => DataOp::Fallocate(file),
                (50..58, _) => DataOp::Writeback(subvol, ino),
                (58..64, _) => DataOp::Truncate(subvol, ino, rng.below(FILE_SPAN)),
                (64..67, _) => DataOp::Unlink(subvol, if k == 0 { ino } else { raw_ino }),
                (67..77, Some(name)) => DataOp::Reserve(raw, name),
                (77..85, name) => DataOp::Free(raw, name),
                (85..91, _) => DataOp::Release(raw),
                (91..94, Some(name)) => DataOp::ChangesetDrop(name),
                (_, _) => DataOp::Meta(MetaOp::Reserve(RsvType::MetaPertrans), subvol, 16384),
            };
            self.run(op);
        }
    }

    /// The committing worker: a commit every 50 ms until the others stop;
    /// every eighth one is a snapshot of subvolume 5 (which commits too)
    /// or the delete of the last such snapshot, so that extents gain and
    /// lose roots while the workers write.
    fn commit_loop(&self) {
        let mut round = 0u64;
        let mut snapshot = None;
        while !self.stop.load(Relaxed) {
            fsleep(Delta::from_millis(50));
            round += 1;
            let op = match (round % 8, snapshot.take()) {
                (0, Some(id)) => InstanceOp::SubvolDelete(id),
                (0, None) => {
                    let dst = self.fs.unused_subvol_id();
                    snapshot = Some(dst);
                    InstanceOp::SubvolSnapshot {
                        src: SubvolId::TOP,
                        dst,
                        inherit: QgroupList::new(),
                    }
                }
                (_, kept) => {
                    snapshot = kept;
                    InstanceOp::Commit
                }
            };
            // Not one of the workers' OPS: not counted. A command that fails
            // (ENOMEM) changes nothing, and the next one comes 50 ms later.
            if self.fs.execute(op.into()).is_err() {
                if let InstanceOp::SubvolSnapshot { .. } = op {
                    snapshot = None;
                }
            }
        }
    }
}

/// The changeset name `s<worker>_<k>`.
fn changeset_name(worker: u64, k: u64) -> Option<ChangesetName> {
    let mut buf = [0u8; 16];
    let mut len = 0;
    let mut push = |b: u8| {
        if let Some(slot) = buf.get_mut(len) {
            *slot = b;
            len += 1;
        }
    };
    push(b's');
    for digit in [worker / 10, worker % 10] {
        push(b'0' + digit as u8);
    }
    push(b'_');
    push(b'0' + (k % 10) as u8);
    ChangesetName::new(core::str::from_utf8(&buf[..len]).ok()?)
}

/// Creates the run's three subvolumes and their hierarchy; returns the ids.
fn set_up(fs: &FsState, threads: u64, mix: StressMix) -> QResult<[SubvolId; 3]> {
    let SubvolId(first) = fs.unused_subvol_id();
    let subvols = [first, first + 1, first + 2].map(SubvolId);
    let qg = |level: u64, id: SubvolId| QgroupId::new(level, id.0).ok_or(EINVAL);
    let (a, b, c) = (subvols[0], subvols[1], subvols[2]);
    let mut cmds = KVec::new();
    for id in subvols {
        cmds.push(InstanceOp::SubvolCreate(id, QgroupList::new()), GFP_KERNEL)?;
    }
    for (level, id) in [(1, a), (1, c), (2, a)] {
        cmds.push(InstanceOp::QgroupCreate(qg(level, id)?), GFP_KERNEL)?;
    }
    for (child, parent) in [
        (qg(0, a)?, qg(1, a)?),
        (qg(0, b)?, qg(1, a)?),
        (qg(0, b)?, qg(1, c)?),
        (qg(0, c)?, qg(1, c)?),
        (qg(1, a)?, qg(2, a)?),
        (qg(1, c)?, qg(2, a)?),
    ] {
        cmds.push(InstanceOp::QgroupAssign(child, parent), GFP_KERNEL)?;
    }
    // Limits near the usage: a subvolume holds at most `full` bytes of
    // file data (six private files of FILE_SPAN a worker, four shared
    // ones), which random truncates keep it below most of the time; its
    // limit is that, so limits bite when files are nearly full, the
    // level-1 ones (over two subvolumes) at 90 %, level 2 at 87 %.
    let shared = if mix == StressMix::Shared {
        SHARED_INODES
    } else {
        0
    };
    let full = (threads * PRIVATE_INODES + shared) * FILE_SPAN;
    for (level, id, max) in [
        (0, a, full),
        (0, b, full),
        (0, c, full),
        (1, a, full * 9 / 5),
        (1, c, full * 9 / 5),
        (2, a, full * 13 / 5),
    ] {
        cmds.push(
            InstanceOp::QgroupLimit {
                excl: true,
                max: Some(max),
                id: qg(level, id)?,
            },
            GFP_KERNEL,
        )?;
    }
    fs.instance_batch(&cmds)?;
    Ok(subvols)
}

/// Runs `stress THREADS OPS SEED` on `fs` (`ok ops=N edquot=N
/// elapsed_ns=N`).
///
/// All or nothing until the workers start: the workers are started first
/// and wait, then the set-up runs as one instance-wide step; if a worker
/// cannot be started or the set-up fails, the started workers return
/// without doing anything and the instance is as before. Once they run, the
/// run ends with a commit, and this returns only when every worker is done
/// with the run. A signal to the writer stops the workers at their next
/// command; the run then commits as usual and fails with EINTR.
pub(crate) fn run(
    fs: &Arc<FsState>,
    threads: u64,
    ops: u64,
    seed: u64,
    mix: StressMix,
) -> QResult<StressReport> {
    if !fs.quota_enabled() {
        fail!(ENOTCONN, "quotas are disabled");
    }
    let run = Arc::pin_init(
        pin_init!(Run {
            fs: fs.clone(),
            threads,
            ops,
            seed,
            mix,
            done_ops: Atomic::new(0),
            edquot: Atomic::new(0),
            stop: Atomic::new(false),
            workers <- new_mutex!(Workers { phase: Phase::Parked, running: 0 }, "stress::Run::workers"),
            changed <- new_condvar!("stress::Run::changed"),
        }),
        GFP_KERNEL,
    )?;
    // The workers, then the committing one, parked until the set-up is
    // done.
    let mut started: QResult = Ok(());
    for worker in 0..=threads {
        run.workers.lock().running += 1;
        let me = run.clone();
        let spawned = workqueue::system_unbound().try_spawn(GFP_KERNEL, move || {
            if let Some(subvols) = me.wait_go() {
                if worker == threads {
                    me.commit_loop();
                } else {
                    me.work(worker, subvols);
                }
            }
            me.worker_done();
        });
        if spawned.is_err() {
            run.workers.lock().running -= 1;
            started = Err(ENOMEM.into());
            break;
        }
    }
    let subvols = match started.and_then(|()| set_up(fs, threads, mix)) {
        Ok(subvols) => subvols,
        Err(failure) => {
            run.release(Phase::Abort);
            run.wait_running(0, false);
            return Err(failure);
        }
    };
    let start = Instant::<Monotonic>::now();
    run.release(Phase::Go(subvols));
    // Wait until at most the committing worker runs (or a signal comes);
    // then stop everyone and wait for all of them: each finishes the
    // command it is in.
    let finished = run.wait_running(1, true);
    run.stop.store(true, Relaxed);
    run.wait_running(0, false);
    // The run ends with a commit, not a sync: what the workers left dirty
    // stays for `check` to judge (README, "stress").
    // Once workers ran there is nothing to undo: the end commits, and a
    // commit that could not allocate is tried again.
    let mut commit = fs.execute(InstanceOp::Commit.into());
    for _ in 0..3 {
        match commit {
            Err(f) if f.errno() == ENOMEM => commit = fs.execute(InstanceOp::Commit.into()),
            _ => break,
        }
    }
    commit?;
    if !finished {
        fail!(
            EINTR,
            "stress interrupted after {} operations",
            run.done_ops.load(Relaxed)
        );
    }
    let elapsed = start.elapsed().as_nanos().max(0) as u64;
    Ok(StressReport {
        ops: run.done_ops.load(Relaxed),
        edquot: run.edquot.load(Relaxed),
        elapsed_ns: elapsed,
    })
}
