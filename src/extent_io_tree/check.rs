// SPDX-License-Identifier: GPL-2.0

//! The io tree's invariant, checked (see the module invariant of
//! [`super`]).

use kernel::fmt;

use super::{ExtentBits, ExtentIoTree, MAX_END};
use crate::changeset::ByteRange;

/// A well-formedness problem of an io tree (see the module invariant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TreeFault {
    /// A state carries no bit.
    EmptyState(ByteRange),
    /// A state ends before it starts or past [`MAX_END`].
    BadRange(ByteRange),
    /// Two states overlap or are out of order.
    Overlap(ByteRange, ByteRange),
    /// Two touching states carry the same bits and should have been merged.
    NotMerged(ByteRange, ByteRange),
}

impl core::fmt::Display for TreeFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyState(r) => write!(f, "state [{}, {}] has no bits", r.start, r.end),
            Self::BadRange(r) => write!(f, "state [{}, {}] is not a valid range", r.start, r.end),
            Self::Overlap(a, b) => write!(
                f,
                "states [{}, {}] and [{}, {}] overlap",
                a.start, a.end, b.start, b.end
            ),
            Self::NotMerged(a, b) => write!(
                f,
                "touching states [{}, {}] and [{}, {}] have equal bits",
                a.start, a.end, b.start, b.end
            ),
        }
    }
}

impl ExtentIoTree {
    #[cfg(qgroup_rs_testing)]
    /// Checks the module invariant; returns the first fault found.
    pub(crate) fn check(&self) -> Option<TreeFault> {
        self.check_and_visit(|_, _| {})
    }

    /// Checks the module invariant while calling `f` with every state in
    /// order, in one pass; returns the first fault found.
    ///
    /// `f` runs under the tree's spinlock: it must not sleep or allocate.
    pub(crate) fn check_and_visit(
        &self,
        mut f: impl FnMut(ByteRange, ExtentBits),
    ) -> Option<TreeFault> {
        let guard = self.states.lock();
        let tree = &guard.tree;
        let mut prev: Option<(ByteRange, ExtentBits)> = None;
        let mut fault = None;
        for (&start, state) in tree.iter() {
            let range = ByteRange {
                start,
                end: state.end,
            };
            f(range, state.bits);
            if fault.is_some() {
                continue;
            }
            if start > state.end || state.end > MAX_END {
                fault = Some(TreeFault::BadRange(range));
            } else if state.bits.is_empty() {
                fault = Some(TreeFault::EmptyState(range));
            } else if let Some((p, bits)) = prev {
                if p.end >= start {
                    fault = Some(TreeFault::Overlap(p, range));
                // PANIC: none; `p.end <= MAX_END`, checked on its turn.
                } else if p.end + 1 == start && bits == state.bits {
                    fault = Some(TreeFault::NotMerged(p, range));
                }
            }
            prev = Some((range, state.bits));
        }
        fault
    }
}

kernel_display!(TreeFault);
