// SPDX-License-Identifier: GPL-2.0

//! Walks of the hierarchy: one breadth-first walk, over the relation trees
//! under the lock or over a snapshot's sorted relation lists.

use kernel::prelude::*;

use super::{QgroupId, Relations};

/// Lists in `out`, breadth first, `start` and every qgroup reachable from
/// it, each once.
///
/// `first_visit(id)` marks `id` visited and says whether it was not yet;
/// `neighbours(id, f)` calls `f` with each qgroup one step from `id` (its
/// parents, or its members). Never allocates: returns `false` when `out`
/// ran out of room, the walk cut short.
pub(super) fn breadth_first(
    start: QgroupId,
    out: &mut KVec<QgroupId>,
    mut first_visit: impl FnMut(QgroupId) -> bool,
    mut neighbours: impl FnMut(QgroupId, &mut dyn FnMut(QgroupId)),
) -> bool {
    out.clear();
    let mut fits = true;
    let mut visit = |id: QgroupId, out: &mut KVec<QgroupId>| {
        if first_visit(id) {
            fits &= out.push_within_capacity(id).is_ok();
        }
    };
    visit(start, out);
    let mut i = 0;
    while i < out.len() {
        let current = out[i];
        neighbours(current, &mut |next| visit(next, out));
        i += 1;
    }
    fits
}

/// Calls `f` with every `b` of a relation `(a, b)` in `tree`, ascending.
///
/// One descent finds the first relation and its successor is peeked at;
/// only a qgroup with more than two relations costs a descent more for
/// each further pair (the tree's shared cursor cannot move).
pub(super) fn for_each_related(tree: &Relations, a: QgroupId, mut f: impl FnMut(QgroupId)) {
    let mut from = (a, QgroupId::FIRST);
    while let Some(cursor) = tree.cursor_lower_bound(&from) {
        let (&(x, b), ()) = cursor.current();
        if x != a {
            break;
        }
        f(b);
        let Some((&(y, c), ())) = cursor.peek_next() else {
            break;
        };
        if y != a {
            break;
        }
        f(c);
        match c.next() {
            Some(next) => from = (a, next),
            None => break,
        }
    }
}

/// The pairs `(a, b)` of the sorted list `pairs` whose first is `a`.
pub(super) fn related_in(pairs: &[(QgroupId, QgroupId)], a: QgroupId) -> &[(QgroupId, QgroupId)] {
    let from = pairs.partition_point(|&(x, _)| x < a);
    let to = from + pairs[from..].partition_point(|&(x, _)| x == a);
    &pairs[from..to]
}
