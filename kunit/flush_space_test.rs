// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `qgroup_rs_flush_space`: the flush before EDQUOT and short
//! writes (SPEC §1.5a, with the figures real btrfs gave), device capacity
//! and ENOSPC (§7), and the settled details of §5 on them.

use kernel::prelude::*;

#[kunit_tests(qgroup_rs_flush_space)]
mod tests {
    use kernel::prelude::*;

    use crate::{
        fs::FsState,
        limits::MAX_CAPACITY,
        support::{counters, err, errno_of, flat, is_clean, new_fs, run, succeeds, value},
    };

    const N: u64 = 16384;

    /// 200 buffered 4 KiB writes to new files under `-e 1M`; returns how
    /// many succeeded.
    fn two_hundred_writes(fs: &FsState) -> Result<u32> {
        let mut ok = 0;
        let mut cmd = crate::support::Text(KVec::with_capacity(48, GFP_KERNEL)?);
        for i in 0..200u64 {
            cmd.0.clear();
            kernel::fmt::Write::write_fmt(&mut cmd, format_args!("write 5 {} 0 4K", 256 + i))
                .map_err(|_| ENOMEM)?;
            if run(fs, cmd.as_str()).is_ok() {
                ok += 1;
            }
        }
        Ok(ok)
    }

    #[test]
    fn flush_lets_200_writes_fit_under_1m() -> Result {
        let fs = new_fs()?;
        assert!(succeeds(&fs, "quota enable"));
        assert!(succeeds(&fs, "qgroup limit -e 1M 0/5"));
        // Real btrfs: all 200 succeed.
        assert_eq!(two_hundred_writes(&fs)?, 200);
        assert!(fs.stats().flushes > 0);
        assert_eq!(fs.stats().edquot, 0);
        assert!(is_clean(&fs, "the steps above"));
        assert!(succeeds(&fs, "sync"));
        // 200 data pages and the root (btrfs: 7 tree blocks, see README).
        assert_eq!(flat(counters(&fs, 0, 5))[0], N + 200 * 4096);
        Ok(())
    }

    #[test]
    fn no_edquot_flush_brings_back_the_early_edquot() -> Result {
        let fs = new_fs()?;
        assert!(succeeds(&fs, "legacy no_edquot_flush on"));
        assert!(succeeds(&fs, "quota enable"));
        assert!(succeeds(&fs, "qgroup limit -e 1M 0/5"));
        let fitted = two_hundred_writes(&fs)?;
        // Each write holds 4 KiB of data and 16 KiB of meta until a flush.
        assert!(fitted < 60);
        assert_eq!(fs.stats().flushes, 0);
        assert_eq!(fs.stats().edquot, u64::from(200 - fitted));
        assert!(is_clean(&fs, "the steps above"));
        Ok(())
    }

    #[test]
    fn short_write_fills_the_limit() -> Result {
        let fs = new_fs()?;
        assert!(succeeds(&fs, "quota enable"));
        assert!(succeeds(&fs, "qgroup limit -e 2M 0/5"));
        // Real btrfs: 2064384 bytes land; data + one node of meta fill the
        // limit exactly.
        let outcome = run(&fs, "write 5 257 0 3M").map_err(|f| f.errno())?;
        assert_eq!(outcome.get("written"), Some(2064384));
        assert_eq!(outcome.get("reserved"), Some(2064384));
        assert!(succeeds(&fs, "sync"));
        assert_eq!(flat(counters(&fs, 0, 5))[0], 2080768);
        assert!(is_clean(&fs, "the steps above"));
        // No room for a single sector: EDQUOT, nothing changed.
        let before = flat(counters(&fs, 0, 5));
        assert_eq!(value(&fs, "write 5 258 0 8K"), err(EDQUOT));
        assert_eq!(flat(counters(&fs, 0, 5)), before);
        Ok(())
    }

    #[test]
    fn short_write_at_an_unaligned_offset() -> Result {
        let fs = new_fs()?;
        assert!(succeeds(&fs, "quota enable"));
        // 118784 used: the root and 100 KiB of data.
        assert!(succeeds(&fs, "write 5 300 0 100K"));
        assert!(succeeds(&fs, "sync"));
        assert_eq!(flat(counters(&fs, 0, 5))[0], 118784);
        assert!(succeeds(&fs, "qgroup limit -e 1M 0/5"));
        // Real btrfs: 911360 bytes land, up to a sector boundary.
        let outcome = run(&fs, "write 5 257 2048 2M").map_err(|f| f.errno())?;
        assert_eq!(outcome.get("written"), Some(911360));
        assert!(succeeds(&fs, "sync"));
        assert_eq!(flat(counters(&fs, 0, 5))[0], 1048576 - N);
        Ok(())
    }

    #[test]
    fn flush_writes_back_the_reserving_subvolume_only() -> Result {
        let fs = new_fs()?;
        for cmd in [
            "quota enable",
            "subvol create 256",
            "subvol create 257",
            "qgroup create 1/100",
            "qgroup assign 0/256 1/100",
            "qgroup assign 0/257 1/100",
            "qgroup limit 2M 1/100",
            "write 5 300 0 16K",
            "write 256 300 0 64K",
            "meta reserve 256 16K pertrans",
        ] {
            assert!(succeeds(&fs, cmd));
        }
        // Needs a flush: 257 is written back and the commit frees every
        // meta_pertrans reservation; 256's data reservation stays.
        let outcome = run(&fs, "write 257 300 0 2000K").map_err(|f| f.errno())?;
        assert!(outcome.get("written").is_some());
        assert_eq!(fs.stats().flushes, 1);
        let c256 = flat(counters(&fs, 0, 256));
        assert_eq!(c256[2], 65536);
        assert_eq!(c256[4], 0);
        // Subvolume 5 was not flushed either.
        assert_eq!(flat(counters(&fs, 0, 5))[2], N);
        assert!(is_clean(&fs, "the steps above"));
        Ok(())
    }

    #[test]
    fn fail_meta_never_flushes() -> Result {
        let fs = new_fs()?;
        assert!(succeeds(&fs, "quota enable"));
        assert_eq!(value(&fs, "write 5 257 0 4K fail=meta"), err(EDQUOT));
        assert_eq!(fs.stats().flushes, 0);
        assert_eq!(fs.stats().edquot, 1);
        Ok(())
    }

    #[test]
    fn capacity_gives_enospc_before_edquot() -> Result {
        let fs = FsState::new(4096, N, 64 * 1024)?;
        assert!(succeeds(&fs, "quota enable"));
        // 32 KiB dirty + 16 KiB meta_prealloc = 48 KiB in use.
        assert!(succeeds(&fs, "write 5 257 0 32K"));
        assert!(succeeds(&fs, "qgroup limit -e 0 0/5"));
        let before = flat(counters(&fs, 0, 5));
        // Over both the capacity and the limit: ENOSPC wins.
        let result = run(&fs, "write 5 258 0 16K");
        assert_eq!(errno_of(&result), ENOSPC.to_errno());
        assert_eq!(flat(counters(&fs, 0, 5)), before);
        assert_eq!(value(&fs, "fallocate 5 258 0 32K"), err(ENOSPC));
        assert_eq!(value(&fs, "meta reserve 5 32K prealloc"), err(ENOSPC));
        assert_eq!(fs.space().used(), 48 * 1024);
        // Writeback and commit move space, never take it.
        assert!(succeeds(&fs, "qgroup limit -e none 0/5"));
        assert!(succeeds(&fs, "sync"));
        assert_eq!(fs.space().used(), 32 * 1024);
        // Copy-on-write of part of a committed extent: the old extent
        // stays whole while any item points into it (a bookend), so the
        // new 8 KiB extent adds to it.
        assert!(succeeds(&fs, "write 5 257 0 8K"));
        assert!(succeeds(&fs, "sync"));
        assert_eq!(fs.space().used(), 40 * 1024);
        // Its last reference gone, it stays in use until the commit.
        assert!(succeeds(&fs, "truncate 5 257 8192"));
        assert_eq!(fs.space().used(), 40 * 1024);
        assert!(succeeds(&fs, "commit"));
        assert_eq!(fs.space().used(), 8 * 1024);
        assert!(succeeds(&fs, "unlink 5 257"));
        assert!(succeeds(&fs, "commit"));
        assert_eq!(fs.space().used(), 0);
        assert!(is_clean(&fs, "the steps above"));
        Ok(())
    }

    #[test]
    fn huge_ranges_never_overflow() -> Result {
        // The two commands that once panicked the kernel.
        let fs = new_fs()?;
        assert!(succeeds(&fs, "fallocate 5 256 0 8388608T"));
        assert_eq!(value(&fs, "fallocate 5 257 0 8388608T"), err(ENOSPC));
        assert!(is_clean(&fs, "the steps above"));
        // With quotas on, EDQUOT-sized requests change nothing.
        let fs = FsState::new(4096, N, MAX_CAPACITY)?;
        assert!(succeeds(&fs, "quota enable"));
        let before = flat(counters(&fs, 0, 5));
        assert_eq!(value(&fs, "fallocate 5 256 0 8388608T"), err(ENOSPC));
        assert_eq!(flat(counters(&fs, 0, 5)), before);
        assert!(is_clean(&fs, "the steps above"));
        Ok(())
    }

    #[test]
    fn fallocate_reserves_only_its_holes() -> Result {
        let fs = new_fs()?;
        assert!(succeeds(&fs, "quota enable"));
        assert!(succeeds(&fs, "write 5 256 106496 8K"));
        // Dirty bytes that lost their reservation stay as they are.
        assert_eq!(value(&fs, "free 5 256 110592 4096"), 4096);
        assert_eq!(value(&fs, "fallocate 5 256 110592 4096"), 0);
        // Over a hole, a dirty page and a committed extent: only the hole.
        assert!(succeeds(&fs, "fallocate 5 257 0 4K"));
        assert!(succeeds(&fs, "write 5 257 8K 4K"));
        assert_eq!(value(&fs, "fallocate 5 257 0 16K"), 8192);
        Ok(())
    }

    #[test]
    fn unlink_drops_the_inodes_changesets() -> Result {
        let fs = new_fs()?;
        assert!(succeeds(&fs, "quota enable"));
        assert!(succeeds(&fs, "reserve 5 257 0 4K a"));
        assert!(succeeds(&fs, "free 5 257 0 4K a"));
        assert!(succeeds(&fs, "unlink 5 257"));
        assert!(fs
            .changeset(crate::changeset::ChangesetName::new("a").ok_or(EINVAL)?)
            .is_none());
        // The name is free for another inode now.
        assert!(succeeds(&fs, "reserve 5 258 0 4K a"));
        Ok(())
    }
}
