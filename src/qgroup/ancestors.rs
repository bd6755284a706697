// SPDX-License-Identifier: GPL-2.0

//! Ancestor lists remembered from recent walks up the hierarchy, so that
//! charging the same qgroup again (every data and meta reservation of a
//! subvolume charges its level-0 qgroup) does not walk the relation trees
//! each time. Any change of the relations, or of which qgroups exist,
//! forgets them all.
//!
//! The lists live in the qgroup lock's data, in fixed slots: remembering
//! one never allocates (a charge may run under an io tree's spinlock).

use kernel::prelude::*;

use super::QgroupId;

/// Most qgroups (the walk's start included) a remembered list holds; a
/// qgroup with more ancestors is walked every time.
const MAX_LISTED: usize = 16;

/// Lists remembered at once; the oldest is replaced first.
const SLOTS: usize = 4;

/// One remembered walk: `id` and its ancestors, breadth first.
#[derive(Clone, Copy)]
struct Listed {
    id: QgroupId,
    len: usize,
    ids: [QgroupId; MAX_LISTED],
}

impl Listed {
    /// The qgroup and its ancestors, breadth first, as the walk listed them.
    fn as_slice(&self) -> &[QgroupId] {
        &self.ids[..self.len]
    }
}

/// The remembered lists of one hierarchy.
///
/// # Invariants
///
/// A filled slot lists exactly what a walk up from its `id` lists now:
/// every change of the relations, or of which qgroups exist, calls
/// [`Self::forget`].
pub(super) struct AncestorLists {
    slots: [Option<Listed>; SLOTS],
    /// The slot [`Self::remember`] fills next.
    next: usize,
}

impl AncestorLists {
    /// No list.
    pub(super) const fn new() -> Self {
        Self {
            slots: [None; SLOTS],
            next: 0,
        }
    }

    /// Forgets every list: the hierarchy changed.
    pub(super) fn forget(&mut self) {
        self.slots = [None; SLOTS];
    }

    /// Lists in `out` the remembered walk up from `id`, if there is one
    /// (and it fits); returns whether it did.
    pub(super) fn list_into(&self, id: QgroupId, out: &mut KVec<QgroupId>) -> bool {
        let Some(listed) = self.slots.iter().flatten().find(|l| l.id == id) else {
            return false;
        };
        out.clear();
        listed
            .as_slice()
            .iter()
            .all(|&q| out.push_within_capacity(q).is_ok())
    }

    /// Remembers `list`, a walk up from `id` made just now, if it fits.
    pub(super) fn remember(&mut self, id: QgroupId, list: &[QgroupId]) {
        if list.len() > MAX_LISTED {
            return;
        }
        let mut ids = [id; MAX_LISTED];
        ids[..list.len()].copy_from_slice(list);
        self.slots[self.next] = Some(Listed {
            id,
            len: list.len(),
            ids,
        });
        self.next = (self.next + 1) % SLOTS;
    }
}
