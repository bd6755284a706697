// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `qgroup_rs_fs`: data reservations, the composite operations,
//! the seed scenarios in fixed mode and under each legacy switch, and a
//! randomized run with `check` after every step.

use kernel::prelude::*;

#[kunit_tests(qgroup_rs_fs)]
mod tests {
    use kernel::prelude::*;

    use crate::{
        changeset::ByteRange,
        changeset::ChangesetName,
        extent_io_tree::ExtentBits,
        fs::FsState,
        ids::{Ino, SubvolId},
        qgroup::{Counters, QgroupId},
        support::{
            counters, err, errno_of, flat, is_clean, new_fs, run, succeeds, value, violations, Prng,
        },
    };

    const N: u64 = 16384;
    const D: ExtentBits = ExtentBits::DELALLOC;
    const R: ExtentBits = ExtentBits::QGROUP_RESERVED;
    const DR: ExtentBits = D.union(R);

    /// Runs `cmd`, which must succeed, then checks every invariant.
    fn step(fs: &FsState, cmd: &str) -> bool {
        succeeds(fs, cmd) && checked(fs, cmd)
    }

    /// Whether `check` passes; prints the violations otherwise.
    fn checked(fs: &FsState, after: &str) -> bool {
        is_clean(fs, after)
    }

    fn states(fs: &FsState, subvol: u64, ino: u64) -> KVec<(u64, u64, ExtentBits)> {
        let mut out = KVec::new();
        if let Ok(states) = fs.inode_states(SubvolId(subvol), Ino(ino)) {
            for (range, bits) in states.iter() {
                let _ = out.push((range.start, range.end, *bits), GFP_KERNEL);
            }
        }
        out
    }

    fn name(s: &str) -> ChangesetName {
        ChangesetName::new(s).unwrap_or(ChangesetName::new("x").unwrap_or_else(|| unreachable!()))
    }

    #[test]
    fn subpage_write_rounds_out_and_rewrite_reserves_nothing() -> Result {
        let fs = new_fs()?;
        assert!(step(&fs, "quota enable"));
        assert_eq!(value(&fs, "write 5 257 100 10"), 4096);
        assert_eq!(&states(&fs, 5, 257)[..], &[(0, 4095, DR)]);
        assert_eq!(value(&fs, "write 5 257 4000 200"), 4096);
        assert_eq!(&states(&fs, 5, 257)[..], &[(0, 8191, DR)]);
        // Rewriting dirty bytes charges no data; meta_prealloc still grows.
        assert_eq!(value(&fs, "write 5 257 0 8K"), 0);
        assert_eq!(fs.inode_meta_prealloc(SubvolId(5), Ino(257)), Some(3 * N));
        assert_eq!(flat(counters(&fs, 0, 5)), [N, N, 8192, 3 * N, 0, 0]);
        assert!(checked(&fs, "rewrite"));
        // A rewrite of dirty bytes succeeds on data even at the limit.
        // (Without the flush, which would write the dirty bytes back.)
        assert!(step(&fs, "legacy no_edquot_flush on"));
        assert!(step(&fs, "qgroup limit -e 0 0/5"));
        assert_eq!(value(&fs, "write 5 257 0 8K"), err(EDQUOT));
        let rewrite = run(&fs, "write 5 257 0 8K");
        assert!(rewrite.is_err_and(|f| f.msg() == "qgroup 0/5 over max_excl"));
        assert_eq!(flat(counters(&fs, 0, 5)), [N, N, 8192, 3 * N, 0, 0]);
        assert!(checked(&fs, "failed rewrite"));
        Ok(())
    }

    #[test]
    fn edquot_undo_keeps_earlier_calls() -> Result {
        let fs = new_fs()?;
        assert!(step(&fs, "quota enable"));
        assert!(step(&fs, "reserve 5 257 0 4K a"));
        assert!(step(&fs, "qgroup limit -e 24K 0/5"));
        // [4K, 8K) fits; [12K, 20K) would pass the limit: nothing of it stays.
        assert_eq!(value(&fs, "reserve 5 257 4K 4K a"), 4096);
        assert_eq!(value(&fs, "reserve 5 257 12K 8K a"), err(EDQUOT));
        let cs = fs.changeset(name("a")).ok_or(ENOENT)?;
        assert_eq!(cs.bytes_changed(), 8192);
        assert_eq!(
            cs.ranges(),
            &[ByteRange {
                start: 0,
                end: 8191
            }]
        );
        assert_eq!(&states(&fs, 5, 257)[..], &[(0, 8191, R)]);
        assert_eq!(flat(counters(&fs, 0, 5)), [N, N, 8192, 0, 0, 0]);
        assert!(checked(&fs, "EDQUOT"));
        // The changeset frees what it recorded only.
        assert!(step(&fs, "qgroup limit -e none 0/5"));
        assert!(step(&fs, "reserve 5 257 8K 4K b"));
        assert_eq!(value(&fs, "free 5 257 0 16K a"), 8192);
        assert_eq!(&states(&fs, 5, 257)[..], &[(8192, 12287, R)]);
        // Its ranges stay after the free; freeing again frees nothing.
        assert_eq!(value(&fs, "free 5 257 0 16K a"), 0);
        // A changeset belongs to one inode.
        assert_eq!(value(&fs, "free 5 258 0 4K a"), err(ENOENT));
        assert!(step(&fs, "reserve 5 258 0 4K c"));
        assert_eq!(value(&fs, "free 5 258 0 4K a"), err(EINVAL));
        assert_eq!(value(&fs, "reserve 5 258 0 4K b"), err(EINVAL));
        assert!(step(&fs, "changeset drop a"));
        assert_eq!(value(&fs, "changeset drop a"), err(ENOENT));
        Ok(())
    }

    #[test]
    fn failed_command_creates_no_inode() -> Result {
        let fs = new_fs()?;
        assert!(step(&fs, "quota enable"));
        assert!(step(&fs, "qgroup limit -e 16K 0/5"));
        assert_eq!(value(&fs, "write 5 300 0 4K"), err(EDQUOT));
        assert_eq!(value(&fs, "fallocate 5 301 0 4K"), err(EDQUOT));
        assert_eq!(value(&fs, "reserve 5 302 0 4K z"), err(EDQUOT));
        assert!(fs.inode_meta_prealloc(SubvolId(5), Ino(300)).is_none());
        assert!(fs.inode_meta_prealloc(SubvolId(5), Ino(301)).is_none());
        assert!(fs.inode_meta_prealloc(SubvolId(5), Ino(302)).is_none());
        assert!(fs.changeset(name("z")).is_none());
        assert_eq!(value(&fs, "write 9 257 0 4K"), err(ENOENT));
        assert_eq!(value(&fs, "truncate 5 303 0"), err(ENOENT));
        assert_eq!(fs.stats().edquot, 3);
        Ok(())
    }

    #[test]
    fn truncate_and_unlink_free_what_they_should() -> Result {
        let fs = new_fs()?;
        assert!(step(&fs, "quota enable"));
        assert!(step(&fs, "write 5 257 0 16K"));
        // Truncate keeps the sector holding SIZE.
        assert!(step(&fs, "truncate 5 257 5000"));
        assert_eq!(&states(&fs, 5, 257)[..], &[(0, 8191, DR)]);
        assert_eq!(flat(counters(&fs, 0, 5)), [N, N, 8192, N, 0, 0]);
        assert!(step(&fs, "sync"));
        assert_eq!(flat(counters(&fs, 0, 5)), [N + 8192, N + 8192, 0, 0, 0, 0]);
        // A partial truncate of a committed extent frees nothing: the rest
        // of the file still points into it (a bookend, SPEC §8.1).
        assert!(step(&fs, "truncate 5 257 4096"));
        assert!(step(&fs, "commit"));
        assert_eq!(flat(counters(&fs, 0, 5)), [N + 8192, N + 8192, 0, 0, 0, 0]);
        // Overwriting its last bytes is copy-on-write: the old extent is
        // freed, and the new one accounted, at the commit.
        assert!(step(&fs, "write 5 257 0 4K"));
        assert!(step(&fs, "writeback"));
        assert_eq!(
            flat(counters(&fs, 0, 5)),
            [N + 8192, N + 8192, 0, 0, 0, 4096]
        );
        assert!(step(&fs, "commit"));
        assert_eq!(flat(counters(&fs, 0, 5)), [N + 4096, N + 4096, 0, 0, 0, 0]);
        // Unlink: dirty bytes and meta_prealloc freed at once; the
        // uncommitted extent's record keeps its reservation until the
        // commit (SPEC §8.2).
        assert!(step(&fs, "write 5 257 8K 8K"));
        assert!(step(&fs, "fallocate 5 257 32K 4K"));
        assert!(step(&fs, "unlink 5 257"));
        assert_eq!(
            flat(counters(&fs, 0, 5)),
            [N + 4096, N + 4096, 0, 0, N, 4096]
        );
        assert!(fs.inode_meta_prealloc(SubvolId(5), Ino(257)).is_none());
        assert!(step(&fs, "commit"));
        assert_eq!(flat(counters(&fs, 0, 5)), [N, N, 0, 0, 0, 0]);
        assert_eq!(fs.stats().leaks, 0);
        Ok(())
    }

    #[test]
    fn unlink_reports_and_frees_a_leak() -> Result {
        let fs = new_fs()?;
        assert!(step(&fs, "quota enable"));
        assert!(step(&fs, "reserve 5 257 0 8K a"));
        assert!(step(&fs, "reserve 5 257 64K 4K a"));
        assert!(step(&fs, "unlink 5 257"));
        assert_eq!(fs.stats().leaks, 2);
        assert_eq!(flat(counters(&fs, 0, 5)), [N, N, 0, 0, 0, 0]);
        // The inode's changesets went with it.
        assert!(fs.changeset(name("a")).is_none());
        Ok(())
    }

    #[test]
    fn quota_enable_rescans_and_busy_rules() -> Result {
        let fs = new_fs()?;
        assert!(step(&fs, "write 5 257 0 8K"));
        assert_eq!(flat(counters(&fs, 0, 5)), [u64::MAX; 6]);
        assert_eq!(value(&fs, "quota enable"), err(EBUSY));
        assert_eq!(value(&fs, "reserve 5 257 0 4K a"), err(ENOTCONN));
        assert!(step(&fs, "subvol create 256"));
        assert!(step(&fs, "sync"));
        assert!(step(&fs, "quota enable"));
        assert_eq!(flat(counters(&fs, 0, 5)), [N + 8192, N + 8192, 0, 0, 0, 0]);
        assert_eq!(flat(counters(&fs, 0, 256)), [N, N, 0, 0, 0, 0]);
        assert!(step(&fs, "quota enable"));
        assert!(step(&fs, "write 5 257 8K 4K"));
        assert_eq!(value(&fs, "quota disable"), err(EBUSY));
        assert!(step(&fs, "sync"));
        assert!(step(&fs, "reserve 5 257 64K 4K a"));
        assert!(step(&fs, "quota disable"));
        assert!(fs.qgroups().snapshot()?.rows.is_empty());
        assert_eq!(&states(&fs, 5, 257)[..], &[]);
        assert!(step(&fs, "quota disable"));
        assert_eq!(value(&fs, "subvol create 5"), err(EEXIST));
        assert_eq!(value(&fs, "subvol create 100"), err(EINVAL));
        Ok(())
    }

    #[test]
    fn underflows_survive_quota_toggles() -> Result {
        let fs = new_fs()?;
        assert!(step(&fs, "quota enable"));
        // A free of what was never reserved: clamped, counted.
        assert_eq!(value(&fs, "meta free 5 16K prealloc"), 0);
        assert_eq!(fs.underflows(), 1);
        assert_eq!(value(&fs, "quota disable"), 0);
        assert_eq!(fs.underflows(), 1);
        assert_eq!(value(&fs, "quota enable"), 0);
        assert_eq!(fs.underflows(), 1);
        assert!(violations(&fs)?
            .1
            .contains("1 qgroup counter underflow(s) happened"));
        Ok(())
    }

    #[test]
    fn counters_never_pass_2_pow_64() -> Result {
        let fs = new_fs()?;
        assert!(step(&fs, "quota enable"));
        // 2^63 bytes reserve fine; another 2^63 would wrap may_use: ENOSPC
        // (SPEC §7), nothing changed.
        assert_eq!(value(&fs, "reserve 5 257 0 8388608T a"), 1 << 63);
        let before = flat(counters(&fs, 0, 5));
        let result = run(&fs, "reserve 5 258 0 8388608T b");
        assert_eq!(errno_of(&result), ENOSPC.to_errno());
        assert!(result.is_err_and(|f| f.msg().contains("would pass 2^64 bytes")));
        assert_eq!(flat(counters(&fs, 0, 5)), before);
        assert!(checked(&fs, "refused overflow"));
        Ok(())
    }

    /// Seed 000: returns (successes, EDQUOTs, whether the first 9 were the
    /// successes, check violations before the sync).
    fn seed000(fs: &FsState, legacy: Option<&str>) -> Result<(u32, u32, bool, usize)> {
        if let Some(switch) = legacy {
            let mut cmd = crate::support::Text(KVec::new());
            kernel::fmt::Write::write_fmt(&mut cmd, format_args!("legacy {switch} on"))
                .map_err(|_| ENOMEM)?;
            run(fs, cmd.as_str()).map_err(|f| f.errno())?;
        }
        run(fs, "quota enable").map_err(|f| f.errno())?;
        run(fs, "qgroup limit -e 10M 0/5").map_err(|f| f.errno())?;
        let (mut ok, mut edquot, mut in_order) = (0, 0, true);
        for i in 0..20u64 {
            let mut cmd = crate::support::Text(KVec::new());
            kernel::fmt::Write::write_fmt(&mut cmd, format_args!("fallocate 5 {} 0 1M", 256 + i))
                .map_err(|_| ENOMEM)?;
            match run(fs, cmd.as_str()) {
                Ok(_) => {
                    ok += 1;
                    in_order &= edquot == 0;
                }
                Err(f) if f.errno() == EDQUOT => edquot += 1,
                Err(f) => return Err(f.errno()),
            }
            if legacy.is_none() && !checked(fs, cmd.as_str()) {
                return Err(EINVAL);
            }
        }
        let before_sync = violations(fs)?.0;
        run(fs, "sync").map_err(|f| f.errno())?;
        Ok((ok, edquot, in_order, before_sync))
    }

    #[test]
    fn seed000_fixed() -> Result {
        let fs = new_fs()?;
        assert_eq!(seed000(&fs, None)?, (9, 11, true, 0));
        assert_eq!(flat(counters(&fs, 0, 5)), [9453568, 9453568, 0, 0, 0, 0]);
        assert!(checked(&fs, "sync"));
        Ok(())
    }

    #[test]
    fn seed000_no_reserved_stage() -> Result {
        let fs = new_fs()?;
        let (ok, edquot, _, before_sync) = seed000(&fs, Some("no_reserved_stage"))?;
        assert_eq!((ok, edquot), (20, 0));
        // Before the sync, check sees the allocated bytes missing from reserved.
        assert_eq!(before_sync, 1);
        assert_eq!(flat(counters(&fs, 0, 5)), [20987904, 20987904, 0, 0, 0, 0]);
        Ok(())
    }

    /// Seed 001 up to (not including) the sync; returns what the failed
    /// write freed from may_use.data.
    fn seed001(fs: &FsState, switches: &[&str]) -> Result<u64> {
        for switch in switches {
            let cmd = if *switch == "free_ignores_changeset" {
                "legacy free_ignores_changeset on"
            } else {
                "legacy release_by_length on"
            };
            run(fs, cmd).map_err(|f| f.errno())?;
        }
        run(fs, "quota enable").map_err(|f| f.errno())?;
        run(fs, "write 5 257 0 2048").map_err(|f| f.errno())?;
        let before = flat(counters(fs, 0, 5))[2];
        let failed = run(fs, "write 5 257 2048 2048 fail=meta");
        if errno_of(&failed) != EDQUOT.to_errno() {
            return Err(EINVAL);
        }
        Ok(before - flat(counters(fs, 0, 5))[2])
    }

    #[test]
    fn seed001_fixed() -> Result {
        let fs = new_fs()?;
        assert_eq!(seed001(&fs, &[])?, 0);
        assert_eq!(flat(counters(&fs, 0, 5)), [N, N, 4096, N, 0, 0]);
        assert_eq!(&states(&fs, 5, 257)[..], &[(0, 4095, DR)]);
        assert!(checked(&fs, "failed write"));
        assert!(step(&fs, "sync"));
        assert_eq!(flat(counters(&fs, 0, 5)), [20480, 20480, 0, 0, 0, 0]);
        assert_eq!(fs.underflows(), 0);
        Ok(())
    }

    #[test]
    fn seed001_free_ignores_changeset() -> Result {
        let fs = new_fs()?;
        assert_eq!(seed001(&fs, &["free_ignores_changeset"])?, 4096);
        let (n, text) = violations(&fs)?;
        assert_eq!(n, 1);
        assert!(text.contains("inode 5/257 dirty range [0, 4095] unreserved"));
        run(&fs, "sync").map_err(|f| f.errno())?;
        assert_eq!(fs.underflows(), 0);
        Ok(())
    }

    #[test]
    fn seed001_release_by_length() -> Result {
        let fs = new_fs()?;
        assert_eq!(
            seed001(&fs, &["free_ignores_changeset", "release_by_length"])?,
            4096
        );
        run(&fs, "sync").map_err(|f| f.errno())?;
        assert_eq!(fs.underflows(), 1);
        assert!(violations(&fs)?.1.contains("underflow"));
        // release_by_length alone, with the fixed free, underflows nothing.
        let fs = new_fs()?;
        assert_eq!(seed001(&fs, &["release_by_length"])?, 0);
        assert!(step(&fs, "sync"));
        assert_eq!(fs.underflows(), 0);
        Ok(())
    }

    /// What a command of the random test may charge, limit-checked.
    #[derive(Clone, Copy)]
    enum Charge {
        None,
        /// Data of the range on this inode.
        Data(u64),
        /// Data of the range on this inode, then one node of meta.
        DataMeta(u64),
    }

    /// Counters plus the bytes a command may charge, against the limits
    /// of `id` and its ancestors: whether the charge passes some limit.
    fn over_limit(fs: &FsState, subvol: u64, need: u64) -> Result<bool> {
        let snapshot = fs.qgroups().snapshot()?;
        let chain = snapshot.ancestors(QgroupId::level0(subvol))?;
        Ok(chain.iter().any(|id| {
            snapshot.get(*id).is_some_and(|q| {
                let c: &Counters = &q.counters;
                let pending = c.may_use_total() + c.reserved + need;
                q.max_rfer.is_some_and(|max| pending + c.rfer > max)
                    || q.max_excl.is_some_and(|max| pending + c.excl > max)
            })
        }))
    }

    #[test]
    fn random_composite_ops_keep_invariants() -> Result {
        // Without the flush, every EDQUOT must be explained by a limit.
        let (_, edquot) = random_ops(false, 3_000)?;
        assert!(edquot > 0);
        // With it (SPEC §1.5a), flushes and short writes let most commands
        // through; the invariants hold after every step all the same.
        let (ok, _) = random_ops(true, 1_000)?;
        assert!(ok > 0);
        Ok(())
    }

    /// `steps` random commands with `check` after each; returns (ok, EDQUOT).
    fn random_ops(flush: bool, steps: u32) -> Result<(u32, u32)> {
        let fs = new_fs()?;
        if !flush {
            assert!(step(&fs, "legacy no_edquot_flush on"));
        }
        for cmd in [
            "quota enable",
            "subvol create 256",
            "subvol create 257",
            "qgroup create 1/100",
            "qgroup assign 0/256 1/100",
            "qgroup assign 0/257 1/100",
            "qgroup limit -e 600K 0/256",
            "qgroup limit 1M 1/100",
            "qgroup limit -e 400K 0/5",
        ] {
            assert!(step(&fs, cmd));
        }
        let subvols = [5u64, 256, 257];
        let mut rng = Prng(0x0dd_ba11_c0ff_ee00);
        let (mut ok, mut edquot) = (0u32, 0u32);
        let mut cmd = crate::support::Text(KVec::with_capacity(64, GFP_KERNEL)?);
        for step_no in 0..steps {
            let subvol = subvols[rng.below(3) as usize];
            // Composite operations use inodes 256..=258; the raw data
            // reservation API (whose free / release on dirty bytes would
            // break the invariants by design) uses 259 and 260.
            let ino = 256 + rng.below(3);
            let raw_ino = 259 + rng.below(2);
            let off = rng.below(64) * 1024
                + if rng.below(4) == 0 {
                    rng.below(1024)
                } else {
                    0
                };
            let len = 1 + rng.below(32) * 1024 + rng.below(2) * rng.below(1024);
            let unlink_ino = if rng.below(4) == 0 { raw_ino } else { ino };
            let clone_subvol = subvols[rng.below(3) as usize];
            let clone_ino = 256 + rng.below(3);
            let (charge, args) = match rng.below(100) {
                0..=34 => (
                    Charge::DataMeta(ino),
                    format_args!("write {subvol} {ino} {off} {len}"),
                ),
                35..=44 => (
                    Charge::DataMeta(ino),
                    format_args!("fallocate {subvol} {ino} {off} {len}"),
                ),
                45..=54 => (
                    Charge::Data(raw_ino),
                    format_args!("reserve {subvol} {raw_ino} {off} {len} c{raw_ino}_{subvol}"),
                ),
                55..=62 => (
                    Charge::None,
                    format_args!("free {subvol} {raw_ino} {off} {len} c{raw_ino}_{subvol}"),
                ),
                63..=67 => (
                    Charge::None,
                    format_args!("release {subvol} {raw_ino} {off} {len}"),
                ),
                68..=77 => (Charge::None, format_args!("writeback {subvol} {ino}")),
                78..=85 => (Charge::None, format_args!("truncate {subvol} {ino} {off}")),
                86..=89 => (Charge::None, format_args!("unlink {subvol} {unlink_ino}")),
                90..=93 => (Charge::None, format_args!("commit")),
                94..=97 => (
                    Charge::None,
                    format_args!(
                        "clone {subvol} {ino} {} {} {} {} {}",
                        off & !4095,
                        4096 * (1 + len / 8192),
                        clone_subvol,
                        clone_ino,
                        // Past every source range: never overlapping.
                        131072 + 4096 * rng.below(16)
                    ),
                ),
                _ => (Charge::None, format_args!("sync")),
            };
            cmd.0.clear();
            kernel::fmt::Write::write_fmt(&mut cmd, args).map_err(|_| ENOMEM)?;
            let result = run(&fs, cmd.as_str());
            match &result {
                Ok(_) => ok += 1,
                Err(f) if f.errno() == EDQUOT => {
                    edquot += 1;
                    // A refused command changed nothing (the other tests
                    // check that), so the state now is the state it saw:
                    // some limit must lack room for what it could charge.
                    let rounded = ByteRange {
                        start: off & !4095,
                        end: ((off + len + 4095) & !4095) - 1,
                    };
                    let data = |ino: u64| {
                        rounded.len() - fs.inode_bytes(SubvolId(subvol), Ino(ino), rounded, R)
                    };
                    let explained = match charge {
                        Charge::DataMeta(ino) => over_limit(&fs, subvol, data(ino) + N)?,
                        Charge::Data(ino) => over_limit(&fs, subvol, data(ino))?,
                        Charge::None => false,
                    };
                    if !explained {
                        pr_err!(
                            "step {}: '{}' got EDQUOT no limit explains\n",
                            step_no,
                            cmd.as_str()
                        );
                    }
                    assert!(explained);
                }
                // Commands on inodes or changesets that do not exist.
                Err(f) if f.errno() == ENOENT => {}
                Err(f) => {
                    pr_err!("step {}: '{}' failed: {}\n", step_no, cmd.as_str(), f.msg());
                    assert!(false);
                }
            }
            assert!(checked(&fs, cmd.as_str()));
        }
        pr_info!(
            "random fs (flush {}): {} ops, {} ok, {} EDQUOT\n",
            flush,
            steps,
            ok,
            edquot
        );
        Ok((ok, edquot))
    }
}
