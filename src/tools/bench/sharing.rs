// SPDX-License-Identifier: GPL-2.0

//! The rows of the commands that share extents (SPEC §8.8 costs): `subvol
//! snapshot` and `subvol delete` per item of the subvolume, `clone` per
//! item cloned, `quota rescan` per extent. Each should be flat in `n`.

use kernel::{prelude::*, sync::Arc};

use super::{
    api::{fill_file, page_write, setup_hierarchy},
    errno, measure_timed, timed, yield_cpu, Plan, Report, Value, PAGE,
};
use crate::{
    fs::{
        op::{DataOp, FileRange, Ino, InstanceOp, Op, QgroupList, SubvolId},
        FsState,
    },
    limits::MAX_CAPACITY,
};

/// The inode number of the file the rows work on.
const INO: Ino = Ino(257);
/// The subvolume that holds it.
const SRC: SubvolId = SubvolId(256);

/// A fresh instance with quotas on and subvolume [`SRC`] whose one file has
/// `n` one-page extents, committed.
fn source(n: u64) -> Result<Arc<FsState>> {
    let fs = FsState::new(PAGE, 16384, MAX_CAPACITY)?;
    setup_hierarchy(&fs)?;
    errno(fs.execute(InstanceOp::SubvolCreate(SRC, QgroupList::new()).into()))?;
    let write = |off: u64| page_write(SRC, INO, off);
    fill_file(&fs, write, DataOp::Writeback(SRC, INO).into(), n)?;
    errno(fs.execute(InstanceOp::Commit.into()))?;
    Ok(fs)
}

/// The snapshot of [`SRC`] into `dst`.
fn snapshot(dst: SubvolId) -> Op {
    InstanceOp::SubvolSnapshot {
        src: SRC,
        dst,
        inherit: QgroupList::new(),
    }
    .into()
}

/// `subvol snapshot` of [`SRC`] with `n` items (timed), then its `subvol
/// delete` and the commit that drops it (untimed): `snapshot_items`; and
/// the same with the delete and its commit timed instead:
/// `delete_items`. Per item.
pub(super) fn snapshot_delete_rows(plan: &Plan, report: &mut Report, clock_ps: u64) -> Result {
    for (row, time_snapshot) in [("snapshot_items", true), ("delete_items", false)] {
        for n in plan.items {
            let fs = source(n)?;
            let mut dst = SRC;
            let fig = measure_timed(plan, n, clock_ps, None, |_| {
                dst.0 += 1;
                let delete = || {
                    errno(fs.execute(InstanceOp::SubvolDelete(dst).into()))?;
                    errno(fs.execute(InstanceOp::Commit.into())).map(|_| ())
                };
                if time_snapshot {
                    let ns = timed(|| errno(fs.execute(snapshot(dst))).map(|_| ()))?;
                    delete()?;
                    Ok(ns)
                } else {
                    errno(fs.execute(snapshot(dst)))?;
                    timed(delete)
                }
            })?;
            report.row(row, n, Value::Time(fig));
            drop(fs);
            yield_cpu()?;
        }
    }
    Ok(())
}

/// `clone` of the whole file of [`SRC`] (`n` items) into a new inode of
/// subvolume 5 (timed), then that inode's `unlink` and a commit (untimed):
/// per item cloned.
pub(super) fn clone_rows(plan: &Plan, report: &mut Report, clock_ps: u64) -> Result {
    for n in plan.items {
        let fs = source(n)?;
        let whole = FileRange {
            subvol: SRC,
            ino: INO,
            off: 0,
            len: 2 * n * PAGE,
        };
        let fig = measure_timed(plan, n, clock_ps, None, |_| {
            let to = FileRange {
                subvol: SubvolId::TOP,
                ..whole
            };
            let clone: Op = DataOp::Clone(whole, to).into();
            let ns = timed(|| errno(fs.execute(clone)).map(|_| ()))?;
            errno(fs.execute(DataOp::Unlink(SubvolId::TOP, INO).into()))?;
            errno(fs.execute(InstanceOp::Commit.into()))?;
            Ok(ns)
        })?;
        report.row("clone_items", n, Value::Time(fig));
        drop(fs);
        yield_cpu()?;
    }
    Ok(())
}

/// `quota rescan` of an instance whose `n` extents each have two roots
/// ([`SRC`] and a snapshot of it): per extent.
pub(super) fn rescan_rows(plan: &Plan, report: &mut Report, clock_ps: u64) -> Result {
    for n in plan.items {
        let fs = source(n)?;
        errno(fs.execute(snapshot(SubvolId(SRC.0 + 1))))?;
        let rescan: Op = InstanceOp::QuotaRescan.into();
        let fig = measure_timed(plan, n, clock_ps, None, |_| {
            timed(|| errno(fs.execute(rescan)).map(|_| ()))
        })?;
        report.row("rescan_extents", n, Value::Time(fig));
        drop(fs);
        yield_cpu()?;
    }
    Ok(())
}
