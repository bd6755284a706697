// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `qgroup_rs_extent_io_tree`: the extent io tree and changesets.
//!
//! - a table of every split, merge and hole case of set and clear, each with
//!   its resulting states, changeset ranges and `bytes_changed`;
//! - a randomized property test against a plain per-KiB bitmap model;
//! - a concurrency test with work items sharing one tree.

use kernel::prelude::*;

#[kunit_tests(qgroup_rs_extent_io_tree)]
mod tests {
    use kernel::{
        new_spinlock,
        prelude::*,
        sync::{
            completion::Completion,
            Arc,
            SpinLock, //
        },
        workqueue,
    };

    use crate::{
        changeset::{
            ByteRange,
            ExtentChangeset,
            RangeList, //
        },
        extent_io_tree::{
            ExtentBits,
            ExtentIoTree,
            TreeOp,
            MAX_END,
            STATE_NODE_BYTES, //
        },
        tools::{bench::memory::kmalloc_size_class, prng::Prng},
    };

    const D: ExtentBits = ExtentBits::DELALLOC;
    const R: ExtentBits = ExtentBits::QGROUP_RESERVED;
    const DR: ExtentBits = D.union(R);
    const K4: u64 = 4096;
    const TOP: u64 = MAX_END;

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Set,
        Clear,
    }

    /// One table case: a tree made of `init`, one operation, what must follow.
    struct Case {
        name: &'static str,
        init: &'static [(u64, u64, ExtentBits)],
        op: Op,
        range: (u64, u64),
        bits: ExtentBits,
        states: &'static [(u64, u64, ExtentBits)],
        changed: &'static [(u64, u64)],
        bytes: u64,
    }

    const CASES: &[Case] = &[
        Case {
            name: "set into an empty tree at offset 0",
            init: &[],
            op: Op::Set,
            range: (0, K4 - 1),
            bits: R,
            states: &[(0, K4 - 1, R)],
            changed: &[(0, K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "set inside one state splits it in three",
            init: &[(0, 4 * K4 - 1, D)],
            op: Op::Set,
            range: (K4, 2 * K4 - 1),
            bits: R,
            states: &[
                (0, K4 - 1, D),
                (K4, 2 * K4 - 1, DR),
                (2 * K4, 4 * K4 - 1, D),
            ],
            changed: &[(K4, 2 * K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "set exactly equal to a state",
            init: &[(K4, 2 * K4 - 1, D)],
            op: Op::Set,
            range: (K4, 2 * K4 - 1),
            bits: R,
            states: &[(K4, 2 * K4 - 1, DR)],
            changed: &[(K4, 2 * K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "set touching a state at its end merges",
            init: &[(0, K4 - 1, R)],
            op: Op::Set,
            range: (K4, 2 * K4 - 1),
            bits: R,
            states: &[(0, 2 * K4 - 1, R)],
            changed: &[(K4, 2 * K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "set touching a state at its start merges",
            init: &[(2 * K4, 3 * K4 - 1, R)],
            op: Op::Set,
            range: (K4, 2 * K4 - 1),
            bits: R,
            states: &[(K4, 3 * K4 - 1, R)],
            changed: &[(K4, 2 * K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "set touching a state with other bits does not merge",
            init: &[(0, K4 - 1, D)],
            op: Op::Set,
            range: (K4, 2 * K4 - 1),
            bits: R,
            states: &[(0, K4 - 1, D), (K4, 2 * K4 - 1, R)],
            changed: &[(K4, 2 * K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "set fills the hole between two states and merges all three",
            init: &[(0, K4 - 1, R), (2 * K4, 3 * K4 - 1, R)],
            op: Op::Set,
            range: (0, 3 * K4 - 1),
            bits: R,
            states: &[(0, 3 * K4 - 1, R)],
            changed: &[(K4, 2 * K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "set across several states, holes and partial ends",
            init: &[(0, K4 - 1, D), (K4, 2 * K4 - 1, R), (3 * K4, 4 * K4 - 1, D)],
            op: Op::Set,
            range: (K4 / 2, 3 * K4 + K4 / 2 - 1),
            bits: R,
            states: &[
                (0, K4 / 2 - 1, D),
                (K4 / 2, K4 - 1, DR),
                (K4, 3 * K4 - 1, R),
                (3 * K4, 3 * K4 + K4 / 2 - 1, DR),
                (3 * K4 + K4 / 2, 4 * K4 - 1, D),
            ],
            changed: &[(K4 / 2, K4 - 1), (2 * K4, 3 * K4 + K4 / 2 - 1)],
            bytes: K4 / 2 + K4 + K4 / 2,
        },
        Case {
            name: "set over a partial front of a state",
            init: &[(0, K4 - 1, D)],
            op: Op::Set,
            range: (0, 2 * K4 - 1),
            bits: R,
            states: &[(0, K4 - 1, DR), (K4, 2 * K4 - 1, R)],
            changed: &[(0, 2 * K4 - 1)],
            bytes: 2 * K4,
        },
        Case {
            name: "set of a bit already set records nothing",
            init: &[(0, 2 * K4 - 1, R)],
            op: Op::Set,
            range: (K4, 2 * K4 - 1),
            bits: R,
            states: &[(0, 2 * K4 - 1, R)],
            changed: &[],
            bytes: 0,
        },
        Case {
            name: "set of a single byte in the middle of a state",
            init: &[(0, K4 - 1, D)],
            op: Op::Set,
            range: (100, 100),
            bits: R,
            states: &[(0, 99, D), (100, 100, DR), (101, K4 - 1, D)],
            changed: &[(100, 100)],
            bytes: 1,
        },
        Case {
            name: "set at the top of the u64 space",
            init: &[(TOP - 2 * K4 + 1, TOP - K4, R)],
            op: Op::Set,
            range: (TOP - K4 + 1, TOP),
            bits: R,
            states: &[(TOP - 2 * K4 + 1, TOP, R)],
            changed: &[(TOP - K4 + 1, TOP)],
            bytes: K4,
        },
        Case {
            name: "set of 8 GiB counts past u32",
            init: &[],
            op: Op::Set,
            range: (0, (8 << 30) - 1),
            bits: R,
            states: &[(0, (8 << 30) - 1, R)],
            changed: &[(0, (8 << 30) - 1)],
            bytes: 8 << 30,
        },
        Case {
            name: "clear inside one state splits it in two",
            init: &[(0, 3 * K4 - 1, R)],
            op: Op::Clear,
            range: (K4, 2 * K4 - 1),
            bits: R,
            states: &[(0, K4 - 1, R), (2 * K4, 3 * K4 - 1, R)],
            changed: &[(K4, 2 * K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "clear exactly equal to a state drops it",
            init: &[(K4, 2 * K4 - 1, R)],
            op: Op::Clear,
            range: (K4, 2 * K4 - 1),
            bits: R,
            states: &[],
            changed: &[(K4, 2 * K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "clear at offset 0 touching the start of a state",
            init: &[(0, 2 * K4 - 1, R)],
            op: Op::Clear,
            range: (0, K4 - 1),
            bits: R,
            states: &[(K4, 2 * K4 - 1, R)],
            changed: &[(0, K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "clear touching the end of a state",
            init: &[(0, 2 * K4 - 1, DR)],
            op: Op::Clear,
            range: (K4, 3 * K4 - 1),
            bits: R,
            states: &[(0, K4 - 1, DR), (K4, 2 * K4 - 1, D)],
            changed: &[(K4, 2 * K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "clear of a bit that is not set records nothing",
            init: &[(0, K4 - 1, D)],
            op: Op::Clear,
            range: (0, K4 - 1),
            bits: R,
            states: &[(0, K4 - 1, D)],
            changed: &[],
            bytes: 0,
        },
        Case {
            name: "clear in a hole records nothing",
            init: &[(0, K4 - 1, R)],
            op: Op::Clear,
            range: (2 * K4, 3 * K4 - 1),
            bits: R,
            states: &[(0, K4 - 1, R)],
            changed: &[],
            bytes: 0,
        },
        Case {
            name: "clear across several states and holes",
            init: &[
                (0, K4 - 1, R),
                (2 * K4, 3 * K4 - 1, DR),
                (4 * K4, 5 * K4 - 1, R),
            ],
            op: Op::Clear,
            range: (K4 / 2, 4 * K4 + K4 / 2 - 1),
            bits: R,
            states: &[
                (0, K4 / 2 - 1, R),
                (2 * K4, 3 * K4 - 1, D),
                (4 * K4 + K4 / 2, 5 * K4 - 1, R),
            ],
            changed: &[
                (K4 / 2, K4 - 1),
                (2 * K4, 3 * K4 - 1),
                (4 * K4, 4 * K4 + K4 / 2 - 1),
            ],
            bytes: K4 / 2 + K4 + K4 / 2,
        },
        Case {
            name: "clear re-merges the neighbours",
            init: &[
                (0, K4 - 1, D),
                (K4, 2 * K4 - 1, DR),
                (2 * K4, 3 * K4 - 1, D),
            ],
            op: Op::Clear,
            range: (K4, 2 * K4 - 1),
            bits: R,
            states: &[(0, 3 * K4 - 1, D)],
            changed: &[(K4, 2 * K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "clear of both bits drops the state",
            init: &[(0, K4 - 1, DR)],
            op: Op::Clear,
            range: (0, K4 - 1),
            bits: DR,
            states: &[],
            changed: &[(0, K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "clear at the top of the u64 space",
            init: &[(TOP - 2 * K4 + 1, TOP, R)],
            op: Op::Clear,
            range: (TOP - K4 + 1, TOP),
            bits: R,
            states: &[(TOP - 2 * K4 + 1, TOP - K4, R)],
            changed: &[(TOP - K4 + 1, TOP)],
            bytes: K4,
        },
        Case {
            name: "set into a hole joins the next state only",
            init: &[(0, K4 - 1, D), (2 * K4, 3 * K4 - 1, R)],
            op: Op::Set,
            range: (K4, 2 * K4 - 1),
            bits: R,
            states: &[(0, K4 - 1, D), (K4, 3 * K4 - 1, R)],
            changed: &[(K4, 2 * K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "set exactly equal to a state joins both neighbours",
            init: &[
                (0, K4 - 1, DR),
                (K4, 2 * K4 - 1, D),
                (2 * K4, 3 * K4 - 1, DR),
            ],
            op: Op::Set,
            range: (K4, 2 * K4 - 1),
            bits: R,
            states: &[(0, 3 * K4 - 1, DR)],
            changed: &[(K4, 2 * K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "set exactly equal to a state joins the next state only",
            init: &[(0, K4 - 1, D), (K4, 2 * K4 - 1, DR)],
            op: Op::Set,
            range: (0, K4 - 1),
            bits: R,
            states: &[(0, 2 * K4 - 1, DR)],
            changed: &[(0, K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "clear exactly equal to a state joins the state before it only",
            init: &[
                (0, K4 - 1, D),
                (K4, 2 * K4 - 1, DR),
                (2 * K4, 3 * K4 - 1, R),
            ],
            op: Op::Clear,
            range: (K4, 2 * K4 - 1),
            bits: R,
            states: &[(0, 2 * K4 - 1, D), (2 * K4, 3 * K4 - 1, R)],
            changed: &[(K4, 2 * K4 - 1)],
            bytes: K4,
        },
        Case {
            name: "clear of a bit a state lacks, on exactly that state, records nothing",
            init: &[(0, K4 - 1, D)],
            op: Op::Clear,
            range: (0, K4 - 1),
            bits: R,
            states: &[(0, K4 - 1, D)],
            changed: &[],
            bytes: 0,
        },
    ];

    /// `run_admitted` asks with the bytes the change flips, changes
    /// nothing (changeset included) when refused, and applies when
    /// admitted, through the general walk and through the single-range
    /// fast path alike.
    #[test]
    fn run_admitted_changes_nothing_when_refused() -> Result {
        let tree = KBox::pin_init(ExtentIoTree::new(), GFP_KERNEL)?;
        tree.set_bits(0, K4 - 1, D, None)?;
        tree.set_bits(2 * K4, 3 * K4 - 1, R, None)?;
        let before: &[(u64, u64, ExtentBits)] = &[(0, K4 - 1, D), (2 * K4, 3 * K4 - 1, R)];
        let op = TreeOp::set(R);
        for range in [(0, 3 * K4 - 1), (K4, 2 * K4 - 1), (0, K4 - 1)] {
            let range = ByteRange {
                start: range.0,
                end: range.1,
            };
            let mut cs = ExtentChangeset::new();
            let mut asked = None;
            let refused = tree.run_admitted(range, op, Some(&mut cs), |n| {
                asked = Some(n);
                Err(EDQUOT)
            });
            let flips = if range.start == 0 && range.end == 3 * K4 - 1 {
                2 * K4
            } else {
                K4
            };
            let ok = refused == Err(EDQUOT)
                && asked == Some(flips)
                && states_equal(&tree, before)?
                && cs.ranges().is_empty()
                && cs.bytes_changed() == 0;
            if !ok {
                pr_err!("refused run_admitted of [{}, {}]\n", range.start, range.end);
                dump(&tree, &cs)?;
            }
            assert!(ok);
        }
        let mut cs = ExtentChangeset::new();
        let mut asked = None;
        let hole = ByteRange {
            start: K4,
            end: 2 * K4 - 1,
        };
        let applied = tree.run_admitted(hole, op, Some(&mut cs), |n| {
            asked = Some(n);
            Ok::<(), Error>(())
        });
        let ok = applied == Ok(K4)
            && asked == Some(K4)
            && states_equal(&tree, &[(0, K4 - 1, D), (K4, 3 * K4 - 1, R)])?
            && ranges_equal(cs.ranges(), &[(K4, 2 * K4 - 1)])
            && tree.check().is_none();
        if !ok {
            dump(&tree, &cs)?;
        }
        assert!(ok);
        Ok(())
    }

    #[test]
    fn set_and_clear_cases() -> Result {
        for case in CASES {
            let tree = KBox::pin_init(ExtentIoTree::new(), GFP_KERNEL)?;
            for &(start, end, bits) in case.init {
                tree.set_bits(start, end, bits, None)?;
            }
            let mut cs = ExtentChangeset::new();
            let (start, end) = case.range;
            let bytes = match case.op {
                Op::Set => tree.set_bits(start, end, case.bits, Some(&mut cs))?,
                Op::Clear => tree.clear_bits(start, end, case.bits, Some(&mut cs))?,
            };
            let ok = states_equal(&tree, case.states)?
                && ranges_equal(cs.ranges(), case.changed)
                && bytes == case.bytes
                && cs.bytes_changed() == case.bytes
                && tree.check().is_none();
            if !ok {
                pr_err!("case failed: {} ({:?})\n", case.name, case.op);
                dump(&tree, &cs)?;
            }
            assert!(ok);
        }
        Ok(())
    }

    #[test]
    fn bad_ranges_are_einval_and_change_nothing() -> Result {
        let tree = KBox::pin_init(ExtentIoTree::new(), GFP_KERNEL)?;
        tree.set_bits(0, K4 - 1, R, None)?;
        let mut cs = ExtentChangeset::new();
        assert_eq!(tree.set_bits(2 * K4, K4, R, Some(&mut cs)), Err(EINVAL));
        assert_eq!(tree.clear_bits(10, 9, R, Some(&mut cs)), Err(EINVAL));
        assert_eq!(tree.set_bits(0, u64::MAX, R, Some(&mut cs)), Err(EINVAL));
        assert_eq!(tree.clear_bits(u64::MAX, u64::MAX, R, None), Err(EINVAL));
        assert_eq!(tree.count_bits(1, 0, R), Err(EINVAL));
        assert_eq!(cs.bytes_changed(), 0);
        assert!(cs.ranges().is_empty());
        assert!(states_equal(&tree, &[(0, K4 - 1, R)])?);
        Ok(())
    }

    #[test]
    fn changeset_accumulates_across_calls() -> Result {
        let tree = KBox::pin_init(ExtentIoTree::new(), GFP_KERNEL)?;
        let mut cs = ExtentChangeset::new();
        tree.set_bits(4 * K4, 5 * K4 - 1, R, Some(&mut cs))?;
        tree.set_bits(0, K4 - 1, R, Some(&mut cs))?;
        tree.set_bits(K4, 2 * K4 - 1, R, Some(&mut cs))?;
        // Already set: nothing recorded.
        tree.set_bits(0, 2 * K4 - 1, R, Some(&mut cs))?;
        assert!(ranges_equal(
            cs.ranges(),
            &[(0, 2 * K4 - 1), (4 * K4, 5 * K4 - 1)]
        ));
        assert_eq!(cs.bytes_changed(), 3 * K4);
        Ok(())
    }

    #[test]
    fn queries() -> Result {
        let tree = KBox::pin_init(ExtentIoTree::new(), GFP_KERNEL)?;
        tree.set_bits(0, 2 * K4 - 1, D, None)?;
        tree.set_bits(K4, 3 * K4 - 1, R, None)?;
        tree.set_bits(5 * K4, 6 * K4 - 1, R, None)?;
        // [0,4K) D, [4K,8K) DR, [8K,12K) R, [20K,24K) R
        assert_eq!(tree.state_count(), 4);
        assert_eq!(tree.count_bits(0, 8 * K4, R)?, 3 * K4);
        assert_eq!(tree.count_bits(K4 / 2, K4 + 9, D)?, K4 / 2 + 10);
        assert_eq!(tree.count_bits(0, 8 * K4, DR)?, 4 * K4);
        assert!(tree.test_bits(K4, 3 * K4 - 1, R)?);
        assert!(!tree.test_bits(K4, 4 * K4 - 1, R)?);
        assert!(!tree.test_bits(0, 3 * K4 - 1, R)?);
        assert!(tree.test_bits(5 * K4 + 1, 5 * K4 + 1, R)?);
        let mut ranges = KVec::new();
        tree.ranges_with_bits(0, 8 * K4, R, &mut ranges)?;
        assert!(ranges_equal(
            &ranges,
            &[(K4, 3 * K4 - 1), (5 * K4, 6 * K4 - 1)]
        ));
        // The same into a list with one range inline: the second range
        // moves the first into its vector.
        let mut spilled = RangeList::<1>::default();
        tree.ranges_with_bits(0, 8 * K4, R, &mut spilled)?;
        assert!(ranges_equal(
            spilled.as_slice(),
            &[(K4, 3 * K4 - 1), (5 * K4, 6 * K4 - 1)]
        ));
        assert!(spilled.capacity() > 1);
        spilled.retain(|r| r.start > K4);
        assert!(ranges_equal(spilled.as_slice(), &[(5 * K4, 6 * K4 - 1)]));
        // With room for both inline, none is allocated.
        let mut inline = RangeList::<2>::default();
        tree.ranges_with_bits(0, 8 * K4, R, &mut inline)?;
        assert_eq!(inline.capacity(), 2);
        inline.retain(|r| r.start < 2 * K4);
        assert!(ranges_equal(inline.as_slice(), &[(K4, 3 * K4 - 1)]));
        Ok(())
    }

    #[test]
    fn state_memory() -> Result {
        let bucket = kmalloc_size_class(STATE_NODE_BYTES);
        pr_info!(
            "bench: extent state node {} bytes, kmalloc-{} object (upstream extent_state: 72)\n",
            STATE_NODE_BYTES,
            bucket
        );
        assert!(bucket <= 64);
        Ok(())
    }

    /// A tree of `n` states: every other 4 KiB block carries QGROUP_RESERVED.
    fn tree_of(n: u64) -> Result<Pin<KBox<ExtentIoTree>>> {
        let tree = KBox::pin_init(ExtentIoTree::new(), GFP_KERNEL)?;
        for i in 0..n {
            tree.set_bits(2 * i * K4, (2 * i + 1) * K4 - 1, R, None)?;
        }
        Ok(tree)
    }

    /// Benchmark (prints figures, asserts only correctness): the cost of a
    /// set + clear that splits a state in the middle of a tree of 16 and of
    /// 2048 states. With O(log n + k) operations the ratio stays small.
    #[test]
    fn bench_split_and_merge_vs_tree_size() -> Result {
        const OPS: u64 = 5000;
        let mut ns = [0i64; 2];
        for (slot, n) in [16u64, 2048].into_iter().enumerate() {
            let tree = tree_of(n)?;
            let mid = n * K4;
            let start = kernel::time::Instant::<kernel::time::Monotonic>::now();
            for _ in 0..OPS {
                tree.set_bits(mid + 100, mid + 200, D, None)?;
                tree.clear_bits(mid + 100, mid + 200, D, None)?;
            }
            ns[slot] = start.elapsed().as_nanos() / OPS as i64;
            assert_eq!(tree.state_count() as u64, n);
            assert!(tree.check().is_none());
        }
        pr_info!(
            "bench: set+clear pair in a tree of 16 states: {} ns, of 2048 states: {} ns (ratio {}.{:02})\n",
            ns[0],
            ns[1],
            ns[1] / ns[0].max(1),
            (ns[1] * 100 / ns[0].max(1)) % 100
        );
        Ok(())
    }

    /// The model's granule: the random ops work on whole KiBs of a 1 MiB space.
    const UNIT: u64 = 1024;
    const UNITS: usize = 1024;

    fn random_bits(rng: &mut Prng) -> ExtentBits {
        match rng.below(3) {
            0 => D,
            1 => R,
            _ => DR,
        }
    }

    #[test]
    fn random_ops_match_bitmap_model() -> Result {
        let tree = KBox::pin_init(ExtentIoTree::new(), GFP_KERNEL)?;
        let mut model = KVec::from_elem(ExtentBits::NONE, UNITS, GFP_KERNEL)?;
        let mut expect_changed: KVec<ByteRange> = KVec::with_capacity(UNITS, GFP_KERNEL)?;
        let mut snapshot = KVec::with_capacity(UNITS + 1, GFP_KERNEL)?;
        let mut rng = Prng(0x5eed_0ff0_0d15);
        let mut max_states = 0;
        for step in 0..20_000u32 {
            let first = rng.below(UNITS as u64) as usize;
            let len = if rng.below(8) == 0 {
                1 + rng.below(UNITS as u64) as usize
            } else {
                1 + rng.below(16) as usize
            };
            let last = (first + len - 1).min(UNITS - 1);
            let bits = random_bits(&mut rng);
            let set = rng.below(2) == 0;
            let (start, end) = (first as u64 * UNIT, (last as u64 + 1) * UNIT - 1);

            // The model: flip units, note those that changed.
            expect_changed.clear();
            let mut expect_bytes = 0;
            for (unit, model_bits) in model.iter_mut().enumerate().take(last + 1).skip(first) {
                let new = if set {
                    *model_bits | bits
                } else {
                    *model_bits & !bits
                };
                if new != *model_bits {
                    let u = unit as u64;
                    let range = ByteRange {
                        start: u * UNIT,
                        end: (u + 1) * UNIT - 1,
                    };
                    assert!(crate::changeset::push_coalesced(&mut expect_changed, range));
                    expect_bytes += UNIT;
                }
                *model_bits = new;
            }

            let mut cs = ExtentChangeset::new();
            let bytes = if set {
                tree.set_bits(start, end, bits, Some(&mut cs))?
            } else {
                tree.clear_bits(start, end, bits, Some(&mut cs))?
            };

            snapshot.clear();
            let mut fits = true;
            tree.for_each_state(0, MAX_END, |range, bits| {
                fits &= snapshot.push_within_capacity((range, bits)).is_ok();
            })?;
            max_states = max_states.max(snapshot.len());
            let ok = fits
                && tree.check().is_none()
                && snapshot_matches_model(&snapshot, &model)
                && bytes == expect_bytes
                && cs.bytes_changed() == expect_bytes
                && cs.ranges() == &expect_changed[..];
            if !ok {
                pr_err!(
                    "step {}: {} {} [{}, {}] diverged from the model\n",
                    step,
                    if set { "set" } else { "clear" },
                    bits,
                    start,
                    end
                );
                dump(&tree, &cs)?;
            }
            assert!(ok);
        }
        pr_info!("random: 20000 ops, up to {} states\n", max_states);
        Ok(())
    }

    /// Whether the tree's states are exactly the maximal runs of the model.
    fn snapshot_matches_model(snapshot: &[(ByteRange, ExtentBits)], model: &[ExtentBits]) -> bool {
        let mut states = snapshot.iter();
        let mut unit = 0;
        while unit < model.len() {
            let bits = model[unit];
            let mut last = unit;
            while last + 1 < model.len() && model[last + 1] == bits {
                last += 1;
            }
            if !bits.is_empty() {
                let expect = ByteRange {
                    start: unit as u64 * UNIT,
                    end: (last as u64 + 1) * UNIT - 1,
                };
                match states.next() {
                    Some(&(range, state_bits)) if range == expect && state_bits == bits => {}
                    _ => return false,
                }
            }
            unit = last + 1;
        }
        states.next().is_none()
    }

    /// Per-worker area of the concurrency test, in units of [`UNIT`].
    const PRIVATE_UNITS: usize = 128;
    const SHARED_UNITS: usize = 256;
    const WORKERS: usize = 4;
    const WORKER_OPS: u32 = 1_500;

    struct WorkerResult {
        private: [ExtentBits; PRIVATE_UNITS],
        shared: [bool; SHARED_UNITS],
        shared_bytes: u64,
        failed: bool,
    }

    #[pin_data]
    struct Worker {
        tree: Arc<ExtentIoTree>,
        index: usize,
        #[pin]
        done: Completion,
        #[pin]
        result: SpinLock<WorkerResult>,
    }

    fn private_base(index: usize) -> u64 {
        (SHARED_UNITS + index * PRIVATE_UNITS) as u64 * UNIT
    }

    /// One worker: random set / clear of DELALLOC in its own area (mirrored
    /// in a private model), and sets of QGROUP_RESERVED on random ranges of
    /// the area all workers share, whose union is order independent.
    fn run_worker(worker: &Worker) {
        let mut rng = Prng(0x1234_5678_9abc_def1 ^ ((worker.index as u64 + 1) << 32));
        let mut private = [ExtentBits::NONE; PRIVATE_UNITS];
        let mut shared = [false; SHARED_UNITS];
        let (mut shared_bytes, mut failed) = (0u64, false);
        let base = private_base(worker.index);
        for _ in 0..WORKER_OPS {
            let first = rng.below(PRIVATE_UNITS as u64) as usize;
            let last = (first + rng.below(8) as usize).min(PRIVATE_UNITS - 1);
            let set = rng.below(2) == 0;
            let (start, end) = (
                base + first as u64 * UNIT,
                base + (last as u64 + 1) * UNIT - 1,
            );
            let res = if set {
                tree_op(&worker.tree, true, start, end, D)
            } else {
                tree_op(&worker.tree, false, start, end, D)
            };
            failed |= res.is_err();
            for unit in &mut private[first..=last] {
                *unit = if set { D } else { ExtentBits::NONE };
            }

            let first = rng.below(SHARED_UNITS as u64) as usize;
            let last = (first + rng.below(16) as usize).min(SHARED_UNITS - 1);
            let mut cs = ExtentChangeset::new();
            let res = worker.tree.set_bits(
                first as u64 * UNIT,
                (last as u64 + 1) * UNIT - 1,
                R,
                Some(&mut cs),
            );
            failed |= res.is_err();
            shared_bytes += cs.bytes_changed();
            for unit in &mut shared[first..=last] {
                *unit = true;
            }
        }
        let mut result = worker.result.lock();
        result.private = private;
        result.shared = shared;
        result.shared_bytes = shared_bytes;
        result.failed = failed;
    }

    fn tree_op(tree: &ExtentIoTree, set: bool, start: u64, end: u64, bits: ExtentBits) -> Result {
        if set {
            tree.set_bits(start, end, bits, None)?;
        } else {
            tree.clear_bits(start, end, bits, None)?;
        }
        Ok(())
    }

    #[test]
    fn concurrent_workers_match_model() -> Result {
        let tree = Arc::pin_init(ExtentIoTree::new(), GFP_KERNEL)?;
        let mut workers = KVec::with_capacity(WORKERS, GFP_KERNEL)?;
        for index in 0..WORKERS {
            let worker_tree = tree.clone();
            let worker = Arc::pin_init(
                pin_init!(Worker {
                    tree: worker_tree,
                    index,
                    done <- Completion::new(),
                    result <- new_spinlock!(WorkerResult {
                        private: [ExtentBits::NONE; PRIVATE_UNITS],
                        shared: [false; SHARED_UNITS],
                        shared_bytes: 0,
                        failed: true,
                    }),
                }),
                GFP_KERNEL,
            )?;
            workers.push(worker, GFP_KERNEL)?;
        }
        let mut spawned = 0;
        for worker in workers.iter() {
            let worker = worker.clone();
            let res = workqueue::system_unbound().try_spawn(GFP_KERNEL, move || {
                run_worker(&worker);
                worker.done.complete_all();
            });
            if res.is_ok() {
                spawned += 1;
            }
        }
        for worker in workers.iter().take(spawned) {
            worker.done.wait_for_completion();
        }
        assert_eq!(spawned, WORKERS);

        // The model: the union of the shared sets, each private area as its
        // worker left it.
        let mut model = KVec::from_elem(
            ExtentBits::NONE,
            SHARED_UNITS + WORKERS * PRIVATE_UNITS,
            GFP_KERNEL,
        )?;
        let mut shared_bytes = 0;
        let mut failed = false;
        for worker in workers.iter() {
            let result = worker.result.lock();
            for (unit, &hit) in result.shared.iter().enumerate() {
                if hit {
                    model[unit] = R;
                }
            }
            let base = SHARED_UNITS + worker.index * PRIVATE_UNITS;
            model[base..base + PRIVATE_UNITS].copy_from_slice(&result.private);
            shared_bytes += result.shared_bytes;
            failed |= result.failed;
        }
        assert!(!failed);
        let union_units = model[..SHARED_UNITS]
            .iter()
            .filter(|b| !b.is_empty())
            .count() as u64;
        // Each shared byte flipped exactly once, whoever got there first.
        assert_eq!(shared_bytes, union_units * UNIT);

        let mut snapshot = KVec::with_capacity(model.len() + 1, GFP_KERNEL)?;
        let mut fits = true;
        tree.for_each_state(0, MAX_END, |range, bits| {
            fits &= snapshot.push_within_capacity((range, bits)).is_ok();
        })?;
        assert!(fits);
        assert!(tree.check().is_none());
        assert!(snapshot_matches_model(&snapshot, &model));
        Ok(())
    }

    /// Whether the tree holds exactly `expect`.
    fn states_equal(tree: &ExtentIoTree, expect: &[(u64, u64, ExtentBits)]) -> Result<bool> {
        let mut i = 0;
        let mut equal = true;
        tree.for_each_state(0, MAX_END, |range, bits| {
            equal &= expect.get(i) == Some(&(range.start, range.end, bits));
            i += 1;
        })?;
        Ok(equal && i == expect.len())
    }

    fn ranges_equal(ranges: &[ByteRange], expect: &[(u64, u64)]) -> bool {
        ranges.len() == expect.len()
            && ranges
                .iter()
                .zip(expect)
                .all(|(r, &(start, end))| r.start == start && r.end == end)
    }

    /// Prints a tree and a changeset, for a failed comparison.
    fn dump(tree: &ExtentIoTree, cs: &ExtentChangeset) -> Result {
        let mut states = KVec::with_capacity(64, GFP_KERNEL)?;
        tree.for_each_state(0, MAX_END, |range, bits| {
            let _ = states.push_within_capacity((range, bits));
        })?;
        for (range, bits) in states.iter() {
            pr_err!("  state [{}, {}] {}\n", range.start, range.end, bits);
        }
        for range in cs.ranges() {
            pr_err!("  changed [{}, {}]\n", range.start, range.end);
        }
        pr_err!("  bytes_changed {}\n", cs.bytes_changed());
        Ok(())
    }
}
