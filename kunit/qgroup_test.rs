// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `qgroup_rs_qgroup`: qgroup counters, limits and hierarchy.
//!
//! Every test drives a fresh filesystem instance with the same commands
//! `control` takes, and checks every counter of every qgroup involved.

use kernel::prelude::*;

#[kunit_tests(qgroup_rs_qgroup)]
mod tests {
    use kernel::prelude::*;

    use crate::{
        fs::FsState,
        ids::{Ino, SubvolId},
        support::{counters, err, errno_of, flat, new_fs, run, value, violations},
    };

    const N: u64 = 16384;

    /// A two-level hierarchy: subvolumes 5 and 256 in 1/100.
    fn two_level() -> Result<kernel::sync::Arc<FsState>> {
        let fs = new_fs()?;
        for cmd in [
            "quota enable",
            "subvol create 256",
            // The new subvolume's root leaf is accounted at a commit.
            "commit",
            "qgroup create 1/100",
            "qgroup assign 0/5 1/100",
            "qgroup assign 0/256 1/100",
        ] {
            run(&fs, cmd).map_err(|f| f.errno())?;
        }
        Ok(fs)
    }

    /// One row of the SPEC §1.2 table: a command, its reported value, and
    /// `[rfer, excl, data, meta_prealloc, meta_pertrans, reserved]` of 0/5
    /// afterwards (0/256 never changes; 1/100 is their sum).
    struct Row {
        event: &'static str,
        cmds: &'static [&'static str],
        value: i64,
        counters: [u64; 6],
    }

    const ROWS: &[Row] = &[
        Row {
            event: "data reserved",
            cmds: &["reserve 5 257 0 8K a"],
            value: 8192,
            counters: [N, N, 8192, 0, 0, 0],
        },
        Row {
            event: "data reserved again: nothing new",
            cmds: &["reserve 5 257 0 8K a"],
            value: 0,
            counters: [N, N, 8192, 0, 0, 0],
        },
        Row {
            event: "data reservation freed (error path)",
            cmds: &["free 5 257 4K 4K a"],
            value: 4096,
            counters: [N, N, 4096, 0, 0, 0],
        },
        Row {
            event: "data reservation released",
            cmds: &["release 5 257 0 4K"],
            value: 4096,
            counters: [N, N, 0, 0, 0, 0],
        },
        Row {
            event: "buffered write reserves data and meta_prealloc",
            cmds: &["write 5 258 0 12K"],
            value: 12288,
            counters: [N, N, 12288, N, 0, 0],
        },
        Row {
            event: "extent allocated at writeback, reservation released",
            cmds: &["writeback 5 258"],
            value: 0,
            counters: [N, N, 0, 0, 0, 12288],
        },
        Row {
            event: "commit of a new extent",
            cmds: &["commit"],
            value: 0,
            counters: [N + 12288, N + 12288, 0, 0, 0, 0],
        },
        Row {
            event: "fallocate: allocated, meta_pertrans held",
            cmds: &["fallocate 5 259 0 8K"],
            value: 8192,
            counters: [N + 12288, N + 12288, 0, 0, N, 8192],
        },
        Row {
            event: "uncommitted extent dropped by truncate: its record keeps reserved",
            cmds: &["truncate 5 259 0"],
            value: 0,
            counters: [N + 12288, N + 12288, 0, 0, N, 8192],
        },
        Row {
            event: "commit frees meta_pertrans",
            cmds: &["commit"],
            value: 0,
            counters: [N + 12288, N + 12288, 0, 0, 0, 0],
        },
        Row {
            event: "partial truncate: the extent stays whole (a bookend)",
            cmds: &["truncate 5 258 4K", "commit"],
            value: 0,
            counters: [N + 12288, N + 12288, 0, 0, 0, 0],
        },
        Row {
            event: "commit of an extent's last reference gone",
            cmds: &["truncate 5 258 0", "commit"],
            value: 0,
            counters: [N, N, 0, 0, 0, 0],
        },
    ];

    #[test]
    fn life_of_data_bytes_on_two_levels() -> Result {
        let fs = two_level()?;
        for row in ROWS {
            let mut got = 0;
            for cmd in row.cmds {
                got = value(&fs, cmd);
            }
            let q5 = flat(counters(&fs, 0, 5));
            let q256 = flat(counters(&fs, 0, 256));
            let q100 = flat(counters(&fs, 1, 100));
            let mut sum = row.counters;
            sum[0] += N;
            sum[1] += N;
            let (bad, text) = violations(&fs)?;
            let ok = got == row.value
                && q5 == row.counters
                && q256 == [N, N, 0, 0, 0, 0]
                && q100 == sum
                && bad == 0;
            if !ok {
                pr_err!("row '{}': value {} (want {})\n", row.event, got, row.value);
                pr_err!("  0/5 {:?}\n  want {:?}\n", q5, row.counters);
                pr_err!("  0/256 {:?}\n  1/100 {:?}\n", q256, q100);
                pr_err!("  check: {}\n", text.as_str());
            }
            assert!(ok);
        }
        Ok(())
    }

    #[test]
    fn limit_boundary_is_inclusive_and_all_or_nothing() -> Result {
        let fs = new_fs()?;
        run(&fs, "quota enable").map_err(|f| f.errno())?;
        // Exactly at the limit passes.
        run(&fs, "qgroup limit -e 24K 0/5").map_err(|f| f.errno())?;
        assert_eq!(value(&fs, "reserve 5 257 0 8K a"), 8192);
        assert_eq!(value(&fs, "free 5 257 0 8K"), 8192);
        // One byte less room: the same reservation fails, nothing changes.
        run(&fs, "qgroup limit -e 24575 0/5").map_err(|f| f.errno())?;
        let before = flat(counters(&fs, 0, 5));
        let result = run(&fs, "reserve 5 258 0 8K z");
        assert_eq!(errno_of(&result), EDQUOT.to_errno());
        assert_eq!(flat(counters(&fs, 0, 5)), before);
        assert!(fs
            .changeset(crate::changeset::ChangesetName::new("z").ok_or(EINVAL)?)
            .is_none());
        assert!(fs.inode_meta_prealloc(SubvolId(5), Ino(258)).is_none());
        // The referenced limit counts the same way.
        run(&fs, "qgroup limit -e none 0/5").map_err(|f| f.errno())?;
        run(&fs, "qgroup limit 20K 0/5").map_err(|f| f.errno())?;
        assert_eq!(value(&fs, "meta reserve 5 16K prealloc"), err(EDQUOT));
        assert_eq!(value(&fs, "reserve 5 257 0 4K b"), 4096);
        assert_eq!(value(&fs, "reserve 5 257 4K 1 b"), err(EDQUOT));
        // A limit of 0 is a real limit.
        run(&fs, "qgroup limit 0 0/5").map_err(|f| f.errno())?;
        assert_eq!(value(&fs, "reserve 5 300 0 1 c"), err(EDQUOT));
        assert_eq!(violations(&fs)?.0, 0);
        Ok(())
    }

    #[test]
    fn parent_limit_refuses_child_reservation() -> Result {
        let fs = two_level()?;
        // 1/100 holds 2 * N; leave room for 8 KiB more.
        run(&fs, "qgroup limit 40K 1/100").map_err(|f| f.errno())?;
        assert_eq!(value(&fs, "reserve 256 257 0 8K a"), 8192);
        let before = [flat(counters(&fs, 0, 5)), flat(counters(&fs, 1, 100))];
        let result = run(&fs, "write 5 257 0 1");
        assert_eq!(errno_of(&result), EDQUOT.to_errno());
        assert!(result.is_err_and(|f| f.msg() == "qgroup 1/100 over max_rfer"));
        assert_eq!(
            [flat(counters(&fs, 0, 5)), flat(counters(&fs, 1, 100))],
            before
        );
        assert!(fs.inode_meta_prealloc(SubvolId(5), Ino(257)).is_none());
        assert_eq!(violations(&fs)?.0, 0);
        Ok(())
    }

    #[test]
    fn diamond_is_counted_once() -> Result {
        let fs = new_fs()?;
        for cmd in [
            "quota enable",
            "qgroup create 1/1",
            "qgroup create 1/2",
            "qgroup create 2/1",
            "qgroup assign 0/5 1/1",
            "qgroup assign 0/5 1/2",
            "qgroup assign 1/1 2/1",
            "qgroup assign 1/2 2/1",
        ] {
            run(&fs, cmd).map_err(|f| f.errno())?;
        }
        assert_eq!(flat(counters(&fs, 2, 1)), [N, N, 0, 0, 0, 0]);
        // Room for exactly 8 KiB at 2/1: counted twice, it would not fit.
        run(&fs, "qgroup limit -e 24K 2/1").map_err(|f| f.errno())?;
        assert_eq!(value(&fs, "reserve 5 257 0 8K a"), 8192);
        assert_eq!(flat(counters(&fs, 2, 1)), [N, N, 8192, 0, 0, 0]);
        assert_eq!(value(&fs, "reserve 5 257 8K 4K a"), err(EDQUOT));
        // Removing one path keeps the coverage through the other.
        run(&fs, "qgroup remove 1/2 2/1").map_err(|f| f.errno())?;
        assert_eq!(flat(counters(&fs, 2, 1)), [N, N, 8192, 0, 0, 0]);
        run(&fs, "qgroup assign 1/2 2/1").map_err(|f| f.errno())?;
        assert_eq!(flat(counters(&fs, 2, 1)), [N, N, 8192, 0, 0, 0]);
        assert_eq!(violations(&fs)?.0, 0);
        Ok(())
    }

    /// Charges follow every change of the relations: the ancestor lists a
    /// charge remembers are forgotten by assign, remove and destroy.
    #[test]
    fn charges_follow_relation_changes() -> Result {
        let fs = new_fs()?;
        let data = |level, id| flat(counters(&fs, level, id))[2];
        for cmd in [
            "quota enable",
            "subvol create 256",
            "qgroup create 1/100",
            "qgroup create 2/200",
            "write 256 257 0 4K",
            "qgroup assign 0/256 1/100",
            "write 256 257 4K 4K",
        ] {
            run(&fs, cmd).map_err(|f| f.errno())?;
        }
        assert_eq!([data(0, 256), data(1, 100), data(2, 200)], [8192, 8192, 0]);
        run(&fs, "qgroup assign 1/100 2/200").map_err(|f| f.errno())?;
        run(&fs, "write 256 257 8K 4K").map_err(|f| f.errno())?;
        assert_eq!(
            [data(0, 256), data(1, 100), data(2, 200)],
            [12288, 12288, 12288]
        );
        run(&fs, "qgroup remove 0/256 1/100").map_err(|f| f.errno())?;
        run(&fs, "write 256 257 12K 4K").map_err(|f| f.errno())?;
        assert_eq!([data(0, 256), data(1, 100), data(2, 200)], [16384, 0, 0]);
        for cmd in [
            "qgroup remove 1/100 2/200",
            "qgroup destroy 1/100",
            "qgroup create 1/100",
            "qgroup assign 0/256 1/100",
            "write 256 257 16K 4K",
        ] {
            run(&fs, cmd).map_err(|f| f.errno())?;
        }
        assert_eq!(
            [data(0, 256), data(1, 100), data(2, 200)],
            [20480, 20480, 0]
        );
        assert_eq!(violations(&fs)?.0, 0);
        Ok(())
    }

    #[test]
    fn assign_and_remove_move_usage_and_reservations() -> Result {
        let fs = new_fs()?;
        for cmd in [
            "quota enable",
            "subvol create 256",
            "write 256 257 0 8K",
            "sync",
            "write 256 257 8K 4K",
            "meta reserve 256 16K pertrans",
            "qgroup create 1/100",
        ] {
            run(&fs, cmd).map_err(|f| f.errno())?;
        }
        let child = flat(counters(&fs, 0, 256));
        assert_eq!(child, [N + 8192, N + 8192, 4096, N, N, 0]);
        run(&fs, "qgroup assign 0/256 1/100").map_err(|f| f.errno())?;
        assert_eq!(flat(counters(&fs, 1, 100)), child);
        assert_eq!(violations(&fs)?.0, 0);
        // A relation that exists, or a missing one, is refused.
        let again = run(&fs, "qgroup assign 0/256 1/100");
        assert_eq!(errno_of(&again), EEXIST.to_errno());
        run(&fs, "qgroup remove 0/256 1/100").map_err(|f| f.errno())?;
        assert_eq!(flat(counters(&fs, 1, 100)), [0; 6]);
        let missing = run(&fs, "qgroup remove 0/256 1/100");
        assert_eq!(errno_of(&missing), ENOENT.to_errno());
        assert_eq!(violations(&fs)?.0, 0);
        Ok(())
    }

    #[test]
    fn create_destroy_and_level_rules() -> Result {
        let fs = new_fs()?;
        let off = run(&fs, "qgroup create 1/1");
        assert_eq!(errno_of(&off), ENOTCONN.to_errno());
        run(&fs, "quota enable").map_err(|f| f.errno())?;
        assert_eq!(errno_of(&run(&fs, "qgroup create 0/7")), EINVAL.to_errno());
        assert_eq!(errno_of(&run(&fs, "qgroup create 1/1")), 0);
        assert_eq!(errno_of(&run(&fs, "qgroup create 1/1")), EEXIST.to_errno());
        assert_eq!(errno_of(&run(&fs, "qgroup create 2/1")), 0);
        assert_eq!(
            errno_of(&run(&fs, "qgroup assign 2/1 1/1")),
            EINVAL.to_errno()
        );
        assert_eq!(
            errno_of(&run(&fs, "qgroup assign 1/1 1/2")),
            EINVAL.to_errno()
        );
        assert_eq!(
            errno_of(&run(&fs, "qgroup assign 1/9 2/1")),
            ENOENT.to_errno()
        );
        assert_eq!(errno_of(&run(&fs, "qgroup assign 0/5 1/1")), 0);
        assert_eq!(errno_of(&run(&fs, "qgroup assign 1/1 2/1")), 0);
        // Members make a qgroup busy; usage makes a level-0 qgroup busy.
        assert_eq!(errno_of(&run(&fs, "qgroup destroy 1/1")), EBUSY.to_errno());
        assert_eq!(errno_of(&run(&fs, "qgroup destroy 0/5")), EBUSY.to_errno());
        assert_eq!(errno_of(&run(&fs, "qgroup remove 0/5 1/1")), 0);
        // A member qgroup can go: its relations go with it.
        assert_eq!(errno_of(&run(&fs, "qgroup destroy 1/1")), 0);
        assert_eq!(flat(counters(&fs, 2, 1)), [0; 6]);
        assert_eq!(errno_of(&run(&fs, "qgroup destroy 1/1")), ENOENT.to_errno());
        assert_eq!(errno_of(&run(&fs, "qgroup destroy 2/1")), 0);
        assert_eq!(violations(&fs)?.0, 0);
        Ok(())
    }

    #[test]
    fn underflow_clamps_and_is_counted() -> Result {
        let fs = new_fs()?;
        run(&fs, "quota enable").map_err(|f| f.errno())?;
        run(&fs, "meta reserve 5 16K prealloc").map_err(|f| f.errno())?;
        run(&fs, "meta free 5 32K prealloc").map_err(|f| f.errno())?;
        assert_eq!(flat(counters(&fs, 0, 5)), [N, N, 0, 0, 0, 0]);
        assert_eq!(fs.underflows(), 1);
        let (n, text) = violations(&fs)?;
        assert_eq!(n, 1);
        assert!(text.contains("1 qgroup counter underflow(s) happened"));
        Ok(())
    }

    #[test]
    fn meta_convert_is_not_limit_checked() -> Result {
        let fs = new_fs()?;
        run(&fs, "quota enable").map_err(|f| f.errno())?;
        run(&fs, "meta reserve 5 32K prealloc").map_err(|f| f.errno())?;
        run(&fs, "qgroup limit -e 16K 0/5").map_err(|f| f.errno())?;
        assert_eq!(errno_of(&run(&fs, "meta convert 5 16K")), 0);
        assert_eq!(flat(counters(&fs, 0, 5)), [N, N, 0, N, N, 0]);
        assert_eq!(
            errno_of(&run(&fs, "meta reserve 5 16K pertrans")),
            EDQUOT.to_errno()
        );
        assert_eq!(
            errno_of(&run(&fs, "meta free 5 100 prealloc")),
            EINVAL.to_errno()
        );
        Ok(())
    }
}
