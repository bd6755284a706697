// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `qgroup_rs_extents`: data extents with identity, whole-extent
//! (bookend) accounting, commit-time accounting from old and new roots,
//! and `clone` (SPEC §8.1 - §8.4).

use kernel::prelude::*;

#[kunit_tests(qgroup_rs_extents)]
mod tests {
    use kernel::prelude::*;

    use crate::{
        extent_tree::{ExtentPrealloc, ExtentTree, EXTENT_NODE_BYTES},
        qgroup::deltas,
        support::{counters, err, flat, is_clean, new_fs, steps, succeeds, usage, value},
        tools::bench::memory::kmalloc_size_class,
    };

    const N: u64 = 16384;
    const B: u64 = 65536;
    const M: u64 = 1 << 20;

    #[test]
    fn account_rules_cover_the_four_excl_quadrants() -> Result {
        // (o, n, O, N) -> (rfer, excl), SPEC §8.2.
        /// `(o, n, O, N)` and the `(rfer, excl)` deltas they give.
        type Case = ((u64, u64, u64, u64), (i8, i8));
        let table: [Case; 10] = [
            ((0, 1, 0, 1), (1, 1)),   // new, exclusive
            ((0, 1, 0, 2), (1, 0)),   // new, shared
            ((1, 1, 1, 2), (0, -1)),  // exclusive -> shared
            ((1, 1, 2, 1), (0, 1)),   // shared -> exclusive
            ((1, 0, 1, 0), (-1, -1)), // freed, was exclusive
            ((1, 0, 2, 1), (-1, 0)),  // lost its shared reference
            ((1, 1, 1, 1), (0, 0)),   // unchanged
            ((0, 0, 1, 1), (0, 0)),   // not below this qgroup
            ((2, 2, 2, 3), (0, -1)),  // a parent over both old roots
            ((1, 2, 2, 2), (0, 1)),   // a parent gaining the other root
        ];
        for ((o, n, old, new), want) in table {
            assert_eq!(deltas(o, n, old, new), want);
        }
        Ok(())
    }

    /// The ids `tree.commit` hands to the accounting, in order.
    fn committed(tree: &mut ExtentTree) -> Result<KVec<u64>> {
        let mut ids = KVec::new();
        let mut pushed = Ok(());
        tree.commit(|dirty| {
            if pushed.is_ok() {
                pushed = ids.push(dirty.id, GFP_KERNEL);
            }
        });
        pushed?;
        Ok(ids)
    }

    #[test]
    fn commit_visits_changed_then_new_extents_in_id_order() -> Result {
        let mut tree = ExtentTree::new();
        assert!(!tree.any_dirty());
        // New extents are dirty without a dirty node, and keep their root
        // in the record (a pool short of a node warns, which fails the
        // run).
        let mut pool = ExtentPrealloc::default();
        pool.grow(3, 0, 0)?;
        let a = tree.allocate(B, 5, (false, false), &mut pool);
        let b = tree.allocate(B, 5, (false, false), &mut pool);
        let c = tree.allocate(B, 5, (false, false), &mut pool);
        assert!(tree.any_dirty());
        assert!(tree.get(a).is_some_and(|e| e.is_dirty()));
        assert_eq!(&committed(&mut tree)?[..], [a, b, c]);
        assert!(!tree.any_dirty());
        assert!(tree.get(a).is_some_and(|e| !e.is_dirty()));
        assert_eq!(&committed(&mut tree)?[..], []);
        // Older extents whose roots change take a dirty node each; they
        // come first, then the new ones. `d` is freed in its own
        // transaction, and `e`, the last, too.
        let mut pool = ExtentPrealloc::default();
        pool.grow(2, 1, 2)?;
        let d = tree.allocate(B, 5, (false, false), &mut pool);
        let e = tree.allocate(B, 5, (false, false), &mut pool);
        tree.add_ref(c, 256, &mut pool);
        assert_eq!(tree.drop_ref(a, 5, &mut pool), B);
        assert_eq!(tree.drop_ref(d, 5, &mut pool), B);
        assert_eq!(tree.drop_ref(e, 5, &mut pool), B);
        assert!(tree.get(b).is_some_and(|e| !e.is_dirty()));
        assert_eq!(&committed(&mut tree)?[..], [a, c, d, e]);
        assert!(tree.get(a).is_none() && tree.get(d).is_none() && tree.get(e).is_none());
        assert!(tree.get(c).is_some_and(|x| x.roots().count() == 2));
        assert!(!tree.any_dirty());
        Ok(())
    }

    #[test]
    fn extent_memory() -> Result {
        // A data extent's record, its first root included, is one kmalloc
        // object of at most 96 bytes (that an extent of one subvolume
        // takes no other node, `commit_visits_...` checks).
        let bucket = kmalloc_size_class(EXTENT_NODE_BYTES);
        pr_info!(
            "bench: data extent node {} bytes, kmalloc-{} object\n",
            EXTENT_NODE_BYTES,
            bucket
        );
        assert!(bucket <= 96);
        Ok(())
    }

    #[test]
    fn roots_iterate_in_order_around_the_inline_one() -> Result {
        let mut tree = ExtentTree::new();
        // Four root nodes: 256 and 7 of `x` go to the tree, and 300 takes
        // the inline slot 5 left; 7 and 256 of `y`, around its inline 100.
        let mut pool = ExtentPrealloc::default();
        pool.grow(2, 4, 0)?;
        let x = tree.allocate(B, 5, (false, false), &mut pool);
        let y = tree.allocate(B, 100, (false, false), &mut pool);
        let roots_of = |tree: &ExtentTree, id: u64, old: bool| -> Result<KVec<u64>> {
            let mut out = KVec::new();
            let extent = tree.get(id).ok_or(ENOENT)?;
            if old {
                for s in extent.old_roots() {
                    out.push(s, GFP_KERNEL)?;
                }
            } else {
                for s in extent.roots() {
                    out.push(s, GFP_KERNEL)?;
                }
            }
            Ok(out)
        };
        let roots = |tree: &ExtentTree, old: bool| roots_of(tree, x, old);
        tree.add_ref(x, 256, &mut pool);
        assert_eq!(&roots(&tree, false)?[..], [5, 256]);
        assert_eq!(tree.drop_ref(x, 5, &mut pool), 0);
        assert_eq!(&roots(&tree, false)?[..], [256]);
        tree.add_ref(x, 300, &mut pool);
        tree.add_ref(x, 7, &mut pool);
        assert_eq!(&roots(&tree, false)?[..], [7, 256, 300]);
        tree.add_ref(y, 256, &mut pool);
        tree.add_ref(y, 7, &mut pool);
        assert_eq!(&roots_of(&tree, y, false)?[..], [7, 100, 256]);
        assert_eq!(&roots(&tree, true)?[..], []);
        let extent = tree.get(x).ok_or(ENOENT)?;
        assert_eq!((extent.refs_of(5), extent.refs_of(300)), (0, 1));
        assert_eq!(extent.refs(), 3);
        assert_eq!(&committed(&mut tree)?[..], [x, y]);
        assert_eq!(&roots(&tree, true)?[..], [7, 256, 300]);
        // The inline root's last item goes: it stays an old root until
        // the commit. The extent is older than that commit now: it takes a
        // dirty node.
        let mut pool = ExtentPrealloc::default();
        pool.grow(0, 0, 1)?;
        assert_eq!(tree.drop_ref(x, 300, &mut pool), 0);
        assert_eq!(&roots(&tree, false)?[..], [7, 256]);
        assert_eq!(&roots(&tree, true)?[..], [7, 256, 300]);
        assert_eq!(&committed(&mut tree)?[..], [x]);
        assert_eq!(&roots(&tree, true)?[..], [7, 256]);
        Ok(())
    }

    #[test]
    fn writeback_reuses_the_nodes_of_items_it_drops() -> Result {
        // One writeback of two dirty ranges: the first drops six items and
        // maps one extent, the second maps four (512 MiB in extents of
        // 128 MiB). The item nodes the first range frees are the second
        // range's; a plan that kept none of them would come up short (a
        // warning, which fails the run).
        let fs = new_fs()?;
        assert!(steps(&fs, &["quota enable"]));
        let mut cmd = crate::support::Text(KVec::with_capacity(48, GFP_KERNEL)?);
        for i in 0..6u64 {
            cmd.0.clear();
            kernel::fmt::Write::write_fmt(&mut cmd, format_args!("write 5 257 {} 4K", i * 8192))
                .map_err(|_| ENOMEM)?;
            assert!(steps(&fs, &[cmd.as_str()]));
        }
        assert!(steps(&fs, &["sync"]));
        assert_eq!(usage(&fs, 0, 5), [N + 6 * 4096, N + 6 * 4096]);
        assert!(steps(
            &fs,
            &[
                "write 5 257 0 48K",
                "write 5 257 1G 512M",
                "writeback 5 257",
                "commit"
            ]
        ));
        let whole = N + 48 * 1024 + 512 * M;
        assert_eq!(usage(&fs, 0, 5), [whole, whole]);
        // Overwriting part of a committed extent splits its item (the
        // extent stays whole, a bookend).
        assert!(steps(
            &fs,
            &["write 5 257 8K 4K", "writeback 5 257", "commit"]
        ));
        assert_eq!(usage(&fs, 0, 5), [whole + 4096, whole + 4096]);
        Ok(())
    }

    #[test]
    fn clone_after_a_writeback_that_drops_items() -> Result {
        // The clone's source range is written back first, as four new
        // extents that replace four old items elsewhere in the same dirty
        // range: the clone's bound counts the items the writeback inserts,
        // not the pool it needs once the dropped items gave their nodes.
        let fs = new_fs()?;
        assert!(steps(
            &fs,
            &[
                "quota enable",
                "write 5 257 0 4K",
                "write 5 257 8K 4K",
                "write 5 257 16K 4K",
                "write 5 257 24K 4K",
                "sync",
                "write 5 257 0 512M",
                "clone 5 257 128M 384M 5 258 0",
                "commit"
            ]
        ));
        assert_eq!(usage(&fs, 0, 5), [N + 512 * M, N + 512 * M]);
        // 258 holds the last three extents whole: only the first goes.
        assert!(steps(&fs, &["unlink 5 257", "commit"]));
        assert_eq!(usage(&fs, 0, 5), [N + 384 * M, N + 384 * M]);
        Ok(())
    }

    #[test]
    fn no_shared_qgroup() -> Result {
        // fs/btrfs/tests/qgroup-tests.c test_no_shared_qgroup: one extent
        // of one root is accounted exclusive, and its removal takes it
        // back off.
        let fs = new_fs()?;
        assert!(steps(
            &fs,
            &["quota enable", "write 5 257 0 64K", "writeback 5 257"]
        ));
        // Allocated: its reservation sits in `reserved` until the commit.
        assert_eq!(flat(counters(&fs, 0, 5)), [N, N, 0, 0, 0, B]);
        assert!(steps(&fs, &["commit"]));
        assert_eq!(flat(counters(&fs, 0, 5)), [N + B, N + B, 0, 0, 0, 0]);
        assert!(steps(&fs, &["unlink 5 257"]));
        assert_eq!(usage(&fs, 0, 5), [N + B, N + B]);
        assert!(steps(&fs, &["commit"]));
        assert_eq!(flat(counters(&fs, 0, 5)), [N, N, 0, 0, 0, 0]);
        Ok(())
    }

    #[test]
    fn multiple_refs() -> Result {
        // test_multiple_refs: a second root makes the extent shared (the
        // first loses excl), dropping it makes it exclusive again.
        let fs = new_fs()?;
        assert!(steps(&fs, &["quota enable", "subvol create 256"]));
        // A new subvolume's root leaf is accounted at the next commit.
        assert_eq!(usage(&fs, 0, 256), [0, 0]);
        assert!(steps(&fs, &["write 5 257 0 64K", "sync"]));
        assert_eq!(usage(&fs, 0, 256), [N, N]);
        assert_eq!(usage(&fs, 0, 5), [N + B, N + B]);
        assert!(steps(&fs, &["clone 5 257 0 64K 256 300 0", "commit"]));
        assert_eq!(usage(&fs, 0, 5), [N + B, N]);
        assert_eq!(usage(&fs, 0, 256), [N + B, N]);
        assert!(steps(&fs, &["unlink 256 300", "commit"]));
        assert_eq!(usage(&fs, 0, 5), [N + B, N + B]);
        assert_eq!(usage(&fs, 0, 256), [N, N]);
        Ok(())
    }

    #[test]
    fn bookends_count_whole_until_the_last_reference() -> Result {
        let fs = new_fs()?;
        assert!(steps(&fs, &["quota enable", "write 5 257 0 1M", "sync"]));
        assert_eq!(usage(&fs, 0, 5), [N + M, N + M]);
        // A partial overwrite: the old extent stays whole.
        assert!(steps(&fs, &["write 5 257 64K 4K", "sync"]));
        assert_eq!(usage(&fs, 0, 5), [N + M + 4096, N + M + 4096]);
        // A partial truncate frees nothing either.
        assert!(steps(&fs, &["truncate 5 257 8192", "sync"]));
        assert_eq!(usage(&fs, 0, 5), [N + M, N + M]);
        // The last reference goes: the extent is freed at the commit.
        assert!(steps(&fs, &["write 5 257 0 8K", "writeback 5 257"]));
        assert_eq!(usage(&fs, 0, 5), [N + M, N + M]);
        assert!(steps(&fs, &["commit"]));
        assert_eq!(usage(&fs, 0, 5), [N + 8192, N + 8192]);
        Ok(())
    }

    #[test]
    fn dropped_extent_keeps_its_reservation_until_the_commit() -> Result {
        // SPEC §8.2: the record's reservation leaves `reserved` at the
        // commit, whatever became of the extent.
        let fs = new_fs()?;
        assert!(steps(
            &fs,
            &["quota enable", "write 5 257 0 64K", "writeback 5 257"]
        ));
        assert!(steps(&fs, &["unlink 5 257"]));
        assert_eq!(flat(counters(&fs, 0, 5)), [N, N, 0, 0, 0, B]);
        assert!(steps(&fs, &["commit"]));
        assert_eq!(flat(counters(&fs, 0, 5)), [N, N, 0, 0, 0, 0]);
        Ok(())
    }

    #[test]
    fn clone_within_a_subvolume_changes_nothing() -> Result {
        let fs = new_fs()?;
        assert!(steps(&fs, &["quota enable", "write 5 257 0 64K", "sync"]));
        assert!(steps(
            &fs,
            &["clone 5 257 0 64K 5 258 0", "clone 5 257 0 32K 5 257 64K"]
        ));
        assert!(steps(&fs, &["commit"]));
        assert_eq!(usage(&fs, 0, 5), [N + B, N + B]);
        Ok(())
    }

    #[test]
    fn written_and_cloned_in_one_transaction() -> Result {
        // fstests btrfs/091: each of three subvolumes refers to the
        // extent, none holds it alone.
        let fs = new_fs()?;
        let setup = [
            "quota enable",
            "subvol create 256",
            "subvol create 257",
            "subvol create 258",
            "commit",
            "write 256 257 0 64K",
            "clone 256 257 0 64K 257 257 0",
            "clone 256 257 0 64K 258 257 0",
            "sync",
        ];
        assert!(steps(&fs, &setup));
        for subvol in [256, 257, 258] {
            assert_eq!(usage(&fs, 0, subvol), [N + B, N]);
        }
        Ok(())
    }

    #[test]
    fn clone_of_dirty_data_writes_it_back_first() -> Result {
        let fs = new_fs()?;
        assert!(steps(&fs, &["quota enable", "subvol create 256", "commit"]));
        assert!(steps(
            &fs,
            &["write 5 257 0 64K", "clone 5 257 0 64K 256 257 0"]
        ));
        // The source was written back: no DELALLOC, the reservation moved to
        // the extent's record, no new one for the destination.
        assert_eq!(flat(counters(&fs, 0, 5)), [N, N, 0, 0, 0, B]);
        assert_eq!(flat(counters(&fs, 0, 256)), [N, N, 0, 0, 0, 0]);
        assert!(steps(&fs, &["commit"]));
        assert_eq!(usage(&fs, 0, 5), [N + B, N]);
        assert_eq!(usage(&fs, 0, 256), [N + B, N]);
        Ok(())
    }

    #[test]
    fn diamond_counts_a_shared_extent_once() -> Result {
        let fs = new_fs()?;
        let setup = [
            "quota enable",
            "subvol create 256",
            "subvol create 257",
            "qgroup create 1/1",
            "qgroup assign 0/256 1/1",
            "qgroup assign 0/257 1/1",
            "commit",
            "write 256 257 0 64K",
            "clone 256 257 0 64K 257 257 0",
            "sync",
        ];
        assert!(steps(&fs, &setup));
        assert_eq!(usage(&fs, 0, 256), [N + B, N]);
        assert_eq!(usage(&fs, 0, 257), [N + B, N]);
        assert_eq!(usage(&fs, 1, 1), [2 * N + B, 2 * N + B]);
        // The extent leaves 257: 256 holds it alone again, 1/1 unchanged.
        assert!(steps(&fs, &["unlink 257 257", "commit"]));
        assert_eq!(usage(&fs, 0, 256), [N + B, N + B]);
        assert_eq!(usage(&fs, 0, 257), [N, N]);
        assert_eq!(usage(&fs, 1, 1), [2 * N + B, 2 * N + B]);
        Ok(())
    }

    #[test]
    fn clone_bad_input_changes_nothing() -> Result {
        let fs = new_fs()?;
        assert!(steps(&fs, &["quota enable", "write 5 257 0 64K", "sync"]));
        for (cmd, errno) in [
            ("clone 5 257 100 4K 5 258 0", EINVAL),
            ("clone 5 257 0 100 5 258 0", EINVAL),
            ("clone 5 257 0 4K 5 258 100", EINVAL),
            ("clone 5 257 0 0 5 258 0", EINVAL),
            ("clone 5 257 0 8K 5 257 4K", EINVAL),
            ("clone 5 257 0 8K 5 258 9223372036854771712", EINVAL),
            ("clone 5 999 0 4K 5 258 0", ENOENT),
            ("clone 6 257 0 4K 5 258 0", ENOENT),
            ("clone 5 257 0 4K 6 258 0", ENOENT),
        ] {
            assert_eq!(value(&fs, cmd), err(errno));
        }
        // No destination inode was left behind.
        assert_eq!(value(&fs, "writeback 5 258"), err(ENOENT));
        assert!(is_clean(&fs, "bad clones"));
        Ok(())
    }

    #[test]
    fn assign_of_a_shared_child_marks_inconsistent() -> Result {
        let fs = shared_child()?;
        assert!(!fs.inconsistent());
        assert_eq!(value(&fs, "qgroup assign 0/256 1/1"), 1);
        assert!(fs.inconsistent());
        // The relation is there; no number moved.
        assert_eq!(usage(&fs, 1, 1), [0, 0]);
        assert!(is_clean(&fs, "inconsistent assign"));
        // An exclusive child still moves its numbers.
        assert!(steps(
            &fs,
            &["subvol create 258", "commit", "qgroup create 1/2"]
        ));
        assert_eq!(value(&fs, "qgroup assign 0/258 1/2"), 0);
        assert_eq!(usage(&fs, 1, 2), [N, N]);
        Ok(())
    }

    /// Quotas on, 0/256 sharing a 64 KiB extent with 0/5, 1/1 created.
    fn shared_child() -> Result<kernel::sync::Arc<crate::fs::FsState>> {
        let fs = new_fs()?;
        let setup = [
            "quota enable",
            "subvol create 256",
            "write 5 257 0 64K",
            "sync",
            "clone 5 257 0 64K 256 257 0",
            "commit",
            "qgroup create 1/1",
        ];
        assert!(steps(&fs, &setup));
        Ok(fs)
    }

    #[test]
    fn rescan_restores_consistency() -> Result {
        let fs = shared_child()?;
        assert_eq!(value(&fs, "qgroup assign 0/256 1/1"), 1);
        assert_eq!(usage(&fs, 1, 1), [0, 0]);
        assert!(steps(&fs, &["quota rescan"]));
        assert!(!fs.inconsistent());
        assert_eq!(usage(&fs, 1, 1), [N + B, N]);
        assert_eq!(usage(&fs, 0, 5), [N + B, N]);
        assert_eq!(fs.stats().rescans, 1);
        assert_eq!(value(&fs, "quota disable"), 0);
        assert_eq!(value(&fs, "quota rescan"), err(ENOTCONN));
        Ok(())
    }

    #[test]
    fn rescan_of_a_childless_qgroup() -> Result {
        // fstests btrfs/171: 1/1 loses its only member while the numbers
        // are inconsistent; a rescan must zero it, the bug kept them.
        for legacy in [false, true] {
            let fs = shared_child()?;
            if legacy {
                assert!(steps(&fs, &["legacy rescan_skips_childless on"]));
            }
            assert_eq!(value(&fs, "qgroup assign 0/256 1/1"), 1);
            assert!(steps(&fs, &["write 256 300 0 64K", "sync"]));
            assert_eq!(usage(&fs, 1, 1), [B, B]);
            assert_eq!(value(&fs, "qgroup remove 0/256 1/1"), 1);
            assert_eq!(usage(&fs, 1, 1), [B, B]);
            assert!(succeeds(&fs, "quota rescan"));
            if legacy {
                assert_eq!(usage(&fs, 1, 1), [B, B]);
                let (n, text) = crate::support::violations(&fs)?;
                assert_eq!(n, 2);
                assert!(text.contains("qgroup 1/1 rfer is 65536, expected 0"));
            } else {
                assert_eq!(usage(&fs, 1, 1), [0, 0]);
                assert!(is_clean(&fs, "rescan"));
            }
        }
        Ok(())
    }
}
