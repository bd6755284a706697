// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `qgroup_rs_snapshots`: `subvol snapshot`, `subvol create ...
//! QG`, `subvol delete`, the inherit outcomes, accounting stopped while
//! inconsistent, `quota rescan`, and the legacy switches of SPEC §8.7 that
//! re-create their bugs.

use kernel::prelude::*;

#[kunit_tests(qgroup_rs_snapshots)]
mod tests {
    use kernel::prelude::*;

    use crate::{
        fs::FsState,
        support::{
            counters, err, flat, is_clean, new_fs, steps, succeeds, usage, value, violations,
        },
    };

    const N: u64 = 16384;
    const B: u64 = 65536;

    /// Quotas on; 0/256 in 1/1 in 2/2, 64 KiB committed in 256.
    fn two_levels() -> Result<kernel::sync::Arc<FsState>> {
        let fs = new_fs()?;
        let setup = [
            "quota enable",
            "subvol create 256",
            "qgroup create 1/1",
            "qgroup create 2/2",
            "qgroup assign 0/256 1/1",
            "qgroup assign 1/1 2/2",
            "write 256 257 0 64K",
            "sync",
        ];
        assert!(steps(&fs, &setup));
        assert_eq!(usage(&fs, 2, 2), [N + B, N + B]);
        Ok(fs)
    }

    #[test]
    fn snapshot_without_parents_inherits_at_level_0() -> Result {
        let fs = new_fs()?;
        assert!(steps(
            &fs,
            &["quota enable", "qgroup limit 1M 0/5", "write 5 257 0 64K"]
        ));
        let commits = fs.stats().commits;
        assert!(steps(&fs, &["subvol snapshot 5 256"]));
        // The snapshot wrote back and committed the source first.
        assert_eq!(fs.stats().commits, commits + 1);
        assert_eq!(usage(&fs, 0, 5), [N + B, N]);
        assert_eq!(usage(&fs, 0, 256), [N + B, N]);
        // Limits are copied; the copy maps the same extent.
        let snapshot = fs.qgroups().snapshot()?;
        let q = snapshot
            .get(crate::qgroup::QgroupId::level0(256))
            .ok_or(EINVAL)?;
        assert_eq!(q.max_rfer, Some(1 << 20));
        assert!(!fs.inconsistent());
        // Writing into the snapshot copies on write, as in the source.
        assert!(steps(&fs, &["write 256 257 0 64K", "sync"]));
        assert_eq!(usage(&fs, 0, 256), [N + B, N + B]);
        assert_eq!(usage(&fs, 0, 5), [N + B, N + B]);
        Ok(())
    }

    #[test]
    fn quick_inherit_through_every_ancestor() -> Result {
        // fstests btrfs/340: fixed, the snapshot's leaf reaches 2/2 too.
        for legacy in [false, true] {
            let fs = two_levels()?;
            if legacy {
                assert!(steps(&fs, &["legacy quick_inherit_parent_only on"]));
            }
            assert!(succeeds(&fs, "subvol snapshot 256 258 1/1"));
            assert!(!fs.inconsistent());
            assert_eq!(usage(&fs, 0, 258), [N + B, N]);
            assert_eq!(usage(&fs, 1, 1), [2 * N + B, 2 * N + B]);
            if legacy {
                assert_eq!(usage(&fs, 2, 2), [N + B, N + B]);
                let (n, text) = violations(&fs)?;
                assert_eq!(n, 2);
                assert!(text.contains("qgroup 2/2 rfer is 81920, expected 98304"));
            } else {
                assert_eq!(usage(&fs, 2, 2), [2 * N + B, 2 * N + B]);
                assert!(is_clean(&fs, "quick inherit"));
            }
        }
        Ok(())
    }

    #[test]
    fn inherit_that_cannot_be_quick_stops_accounting() -> Result {
        // Each: the snapshot's command, and a set-up step before it.
        let cases: [(&str, &str); 4] = [
            // The parent holds shared bytes (P.rfer != P.excl).
            ("subvol snapshot 256 258 1/1", "clone 256 257 0 64K 5 300 0"),
            // Two parents.
            ("subvol snapshot 256 258 1/1 1/3", "qgroup create 1/3"),
            // A qgroup that is not the source's parent.
            ("subvol snapshot 256 258 1/3", "qgroup create 1/3"),
            // No qgroup given, but the source has a parent.
            ("subvol snapshot 256 258", "commit"),
        ];
        for (snapshot, setup) in cases {
            let fs = two_levels()?;
            assert!(steps(&fs, &[setup, "commit"]));
            let before = usage(&fs, 1, 1);
            assert!(succeeds(&fs, snapshot));
            assert!(fs.inconsistent());
            assert!(!fs.qgroups().accounting());
            // The relations are there, no number moved above level 0.
            assert_eq!(usage(&fs, 1, 1), before);
            assert!(is_clean(&fs, snapshot));
            // Accounting is off: a commit moves no rfer / excl but still
            // releases the records' reservations.
            assert!(steps(&fs, &["write 258 400 0 64K", "sync"]));
            assert_eq!(usage(&fs, 0, 258), [N + B, N]);
            assert_eq!(flat(counters(&fs, 0, 258))[5], 0);
            // A rescan makes everything right again.
            assert!(steps(&fs, &["quota rescan"]));
            assert!(!fs.inconsistent());
            assert!(fs.qgroups().accounting());
            assert_eq!(usage(&fs, 0, 258), [N + 2 * B, N + B]);
        }
        Ok(())
    }

    #[test]
    fn inherit_never_inconsistent_hides_wrong_numbers() -> Result {
        // fstests btrfs/210: the snapshot into a new qgroup before the fix.
        let fs = two_levels()?;
        assert!(steps(
            &fs,
            &["legacy inherit_never_inconsistent on", "qgroup create 1/3"]
        ));
        assert!(succeeds(&fs, "subvol snapshot 256 258 1/3"));
        assert!(!fs.inconsistent());
        assert_eq!(usage(&fs, 1, 3), [0, 0]);
        let (_, text) = violations(&fs)?;
        assert!(text.contains("qgroup 1/3 rfer is 0, expected 81920"));
        Ok(())
    }

    #[test]
    fn no_accounting_keeps_rsv_leaks_reservations() -> Result {
        // fstests btrfs/316: with accounting off, the records' reservations
        // stay in `reserved`; later writes fail on the limit.
        let fs = two_levels()?;
        let setup = [
            "legacy no_accounting_keeps_rsv on",
            "legacy no_edquot_flush on",
            "qgroup create 1/3",
            "subvol snapshot 256 258 1/3",
            "qgroup limit -e 256K 0/258",
        ];
        for cmd in setup {
            assert!(succeeds(&fs, cmd));
        }
        assert!(succeeds(&fs, "write 258 400 0 128K"));
        assert!(succeeds(&fs, "sync"));
        assert_eq!(flat(counters(&fs, 0, 258))[5], 2 * B);
        let (_, text) = violations(&fs)?;
        assert!(text.contains("qgroup 0/258 reserved is 131072, expected 0"));
        // The leaked bytes count against the limit.
        assert_eq!(value(&fs, "write 258 401 0 128K"), err(EDQUOT));
        Ok(())
    }

    #[test]
    fn delete_of_a_source_leaves_the_snapshot_alone() -> Result {
        let fs = new_fs()?;
        let setup = [
            "quota enable",
            "subvol create 256",
            "write 256 257 0 64K",
            "reserve 256 258 0 4K cs",
            "sync",
            "subvol snapshot 256 257",
        ];
        assert!(steps(&fs, &setup));
        assert_eq!(usage(&fs, 0, 257), [N + B, N]);
        assert!(steps(&fs, &["subvol delete 256"]));
        // At once: gone for every command, its reservation freed (a leak).
        assert_eq!(value(&fs, "write 256 257 0 4K"), err(ENOENT));
        assert_eq!(fs.stats().leaks, 1);
        assert_eq!(flat(counters(&fs, 0, 256))[2], 0);
        // At the next commit the snapshot holds the extent alone, and 0/256
        // is gone.
        assert!(steps(&fs, &["commit"]));
        assert_eq!(usage(&fs, 0, 257), [N + B, N + B]);
        assert!(counters(&fs, 0, 256).is_none());
        // Ids are never reused.
        assert_eq!(value(&fs, "subvol create 256"), err(EEXIST));
        assert_eq!(value(&fs, "subvol snapshot 257 256"), err(EEXIST));
        Ok(())
    }

    #[test]
    fn nested_snapshots_with_the_middle_one_deleted() -> Result {
        // fstests btrfs/104.
        let fs = new_fs()?;
        let setup = [
            "quota enable",
            "subvol create 256",
            "write 256 257 0 64K",
            "sync",
            "subvol snapshot 256 257",
            "subvol snapshot 257 258",
            "write 258 300 0 64K",
            "subvol delete 257",
            "sync",
        ];
        assert!(steps(&fs, &setup));
        assert_eq!(usage(&fs, 0, 256), [N + B, N]);
        assert_eq!(usage(&fs, 0, 258), [N + 2 * B, N + B]);
        assert!(counters(&fs, 0, 257).is_none());
        assert!(steps(&fs, &["subvol delete 256", "commit"]));
        assert_eq!(usage(&fs, 0, 258), [N + 2 * B, N + 2 * B]);
        Ok(())
    }

    #[test]
    fn create_into_qgroups_accounts_the_leaf_through_them() -> Result {
        let fs = new_fs()?;
        let setup = ["quota enable", "qgroup create 1/1", "subvol create 256 1/1"];
        assert!(steps(&fs, &setup));
        assert_eq!(usage(&fs, 1, 1), [0, 0]);
        assert!(steps(&fs, &["commit"]));
        assert_eq!(usage(&fs, 1, 1), [N, N]);
        Ok(())
    }

    #[test]
    fn subvolume_bad_input_changes_nothing() -> Result {
        let fs = new_fs()?;
        assert!(steps(
            &fs,
            &[
                "quota enable",
                "subvol create 256",
                "qgroup create 1/1",
                "commit"
            ]
        ));
        for (cmd, errno) in [
            ("subvol snapshot 256 5", EEXIST),
            ("subvol snapshot 256 256", EEXIST),
            ("subvol snapshot 300 301", ENOENT),
            ("subvol snapshot 256 301 1/9", ENOENT),
            ("subvol snapshot 256 301 0/5", EINVAL),
            ("subvol snapshot 256 301 1/1 1/1", EINVAL),
            ("subvol snapshot 256 7", EINVAL),
            ("subvol create 301 1/9", ENOENT),
            ("subvol delete 5", EINVAL),
            ("subvol delete 300", ENOENT),
            ("subvol delete", EINVAL),
        ] {
            assert_eq!(value(&fs, cmd), err(errno));
        }
        assert!(counters(&fs, 0, 301).is_none());
        assert_eq!(value(&fs, "writeback 301 257"), err(ENOENT));
        assert!(is_clean(&fs, "bad subvolume commands"));
        Ok(())
    }

    #[test]
    fn excl_iteration_applies_the_delta_to_the_parent_only() -> Result {
        for legacy in [false, true] {
            let fs = new_fs()?;
            let setup = [
                "quota enable",
                "subvol create 256",
                "write 256 257 0 64K",
                "sync",
                "qgroup create 1/1",
                "qgroup create 2/2",
                "qgroup assign 1/1 2/2",
            ];
            assert!(steps(&fs, &setup));
            if legacy {
                assert!(steps(&fs, &["legacy excl_iteration on"]));
            }
            assert_eq!(value(&fs, "qgroup assign 0/256 1/1"), 0);
            if legacy {
                // Once for 1/1 and once for 2/2, both on 1/1.
                assert_eq!(usage(&fs, 1, 1), [2 * (N + B), 2 * (N + B)]);
                assert_eq!(usage(&fs, 2, 2), [0, 0]);
                let (_, text) = violations(&fs)?;
                assert!(text.contains("qgroup 2/2 rfer is 0, expected 81920"));
            } else {
                assert_eq!(usage(&fs, 1, 1), [N + B, N + B]);
                assert_eq!(usage(&fs, 2, 2), [N + B, N + B]);
                assert!(is_clean(&fs, "assign"));
            }
        }
        Ok(())
    }
}
