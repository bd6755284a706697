// SPDX-License-Identifier: GPL-2.0

//! The all-or-nothing protocol (Binder's `range_alloc`): an operation
//! measures under the lock what it needs (tree nodes for splits and filled
//! holes, room for the ranges it records) and, when what the caller
//! preallocated falls short, changes nothing, drops the lock, preallocates
//! the rest with `GFP_KERNEL` and tries again.
//!
//! [`ExtentIoTree::prepare`] runs that loop without changing anything, so
//! that [`ExtentIoTree::apply`] of the same operation later finds all it
//! needs and cannot fail.

use kernel::{prelude::*, rbtree::RBTreeNode};

use super::{
    check_range,
    single::{self, Single},
    walk::{measure, merge_states, Change, Progress},
    ExtentIoTree, ExtentState, TreeOp,
};
use crate::changeset::{ByteRange, ExtentChangeset, RangeList};

/// The preallocated nodes of an operation (a few inline, the rest in a
/// vector allocated only when an operation needs more).
pub(super) type NodePool = crate::node_pool::NodePool<u64, ExtentState>;

/// Ranges an operation records without a vector: a single-range
/// operation records one piece per hole or state it changes, and mostly
/// changes one or two.
const INLINE_RECORDS: usize = 2;

/// Ranges an operation changed, ascending and coalesced, in room made
/// before the lock was taken.
pub(super) struct Recorded {
    ranges: RangeList<INLINE_RECORDS>,
}

impl Recorded {
    /// No range.
    fn new() -> Self {
        Self {
            ranges: RangeList::default(),
        }
    }

    /// Makes room for `n` ranges; call it with none recorded (each attempt
    /// starts with [`Self::clear`]). Allocates when `n` is more than fit
    /// inline: call it with no lock held.
    fn reserve(&mut self, n: usize) -> Result {
        self.ranges.reserve(n)
    }

    /// Whether room for `n` ranges was made.
    fn can_hold(&self, n: usize) -> bool {
        self.ranges.capacity() >= n
    }

    /// Forgets every range, keeping the room.
    fn clear(&mut self) {
        self.ranges.clear();
    }

    /// The ranges, ascending.
    fn as_slice(&self) -> &[ByteRange] {
        self.ranges.as_slice()
    }

    /// Whether a range starting at `start` fits (it joins the last one or
    /// there is room).
    pub(super) fn can_push(&self, start: u64) -> bool {
        let ranges = self.ranges.as_slice();
        let joins = ranges.last().is_some_and(|last| last.end + 1 == start);
        joins || ranges.len() < self.ranges.capacity()
    }

    /// Appends a range; [`Self::can_push`] said it fits.
    pub(super) fn push(&mut self, range: ByteRange) {
        let fits = self.ranges.push_coalesced(range);
        // INVARIANT: the caller checked `can_push` under the same lock.
        kernel::warn_on!(!fits);
    }
}

/// Filled holes whose states wait for their insert until the walk that
/// filled them is done (see `walk::Change`): room is made before the lock
/// only for an operation that fills more than [`INLINE_HOLES`] holes;
/// without room a state goes in at once.
pub(super) struct Pending {
    nodes: KVec<RBTreeNode<u64, ExtentState>>,
}

impl Pending {
    /// No state, no room.
    fn new() -> Self {
        Self { nodes: KVec::new() }
    }

    /// Makes room for `n` states. Allocates: call it with no lock held.
    fn reserve(&mut self, n: usize) -> Result {
        Ok(self.nodes.reserve(n, GFP_KERNEL)?)
    }

    /// Whether one more state fits.
    pub(super) fn has_room(&self) -> bool {
        self.nodes.len() < self.nodes.capacity()
    }

    /// Keeps `node` for later; [`Self::has_room`] said it fits.
    pub(super) fn push(&mut self, node: RBTreeNode<u64, ExtentState>) {
        // INVARIANT: the caller checked `has_room` under the same lock.
        kernel::warn_on!(self.nodes.push_within_capacity(node).is_err());
    }

    /// Takes every state kept, in the order they were kept.
    pub(super) fn drain_all(&mut self) -> impl Iterator<Item = RBTreeNode<u64, ExtentState>> + '_ {
        self.nodes.drain_all()
    }
}

/// Holes an operation fills before its states wait to be inserted (see
/// [`Pending`]): up to this many, each goes into the tree at once.
const INLINE_HOLES: usize = 2;

/// What an operation needs before it may start: nodes for splits and
/// filled holes, and room for the ranges it records.
#[derive(Clone, Copy, Default)]
pub(super) struct Needs {
    /// States changed and holes filled: none means the operation is a
    /// no-op.
    pub(super) changes: usize,
    /// Tree nodes.
    pub(super) nodes: usize,
    /// Holes filled (each takes one of the nodes).
    pub(super) holes: usize,
    /// Changeset room, in ranges.
    pub(super) records: usize,
    /// Bytes whose recorded bits the operation flips (not a need: what
    /// [`ExtentIoTree::run_admitted`] admits).
    pub(super) flips: u64,
}

/// What [`ExtentIoTree::prepare`] preallocated for one operation: tree
/// nodes and room for the ranges it records. Whatever is left is freed
/// when it is dropped, with no lock held.
pub(crate) struct Prealloc {
    pool: NodePool,
    recorded: Recorded,
    pending: Pending,
}

impl Prealloc {
    /// Nothing preallocated yet.
    pub(super) fn new() -> Self {
        Self {
            pool: NodePool::default(),
            recorded: Recorded::new(),
            pending: Pending::new(),
        }
    }

    /// Preallocates what `needs` says, and room in `changeset` if one is
    /// given. Allocates: call it with no lock held.
    fn grow(&mut self, needs: Needs, changeset: Option<&mut ExtentChangeset>) -> Result {
        self.pool.fill(needs.nodes)?;
        if needs.holes > INLINE_HOLES {
            self.pending.reserve(needs.holes)?;
        }
        if let Some(cs) = changeset {
            cs.make_room(needs.records)?;
            self.recorded.reserve(needs.records)?;
        }
        Ok(())
    }
}

/// What an attempt does once it has all it needs.
pub(super) enum Then<'a, E> {
    /// Nothing: it only measures (a prepare).
    Measure,
    /// The change.
    Apply,
    /// The change, if `admit`, called under the lock with the bytes whose
    /// recorded bits would flip, agrees.
    Admit(&'a mut dyn FnMut(u64) -> core::result::Result<(), E>),
}

impl<E> Then<'_, E> {
    /// Whether to apply a change whose recorded bits flip on `flips`
    /// bytes: `Ok(false)` when only measuring, `Err` when `admit` refuses.
    pub(super) fn admits(&mut self, flips: u64) -> core::result::Result<bool, E> {
        match self {
            Then::Measure => Ok(false),
            Then::Admit(admit) => admit(flips).map(|()| true),
            Then::Apply => Ok(true),
        }
    }
}

/// Why an attempt changed nothing.
pub(super) enum Short<E> {
    /// It needs more nodes or room than were preallocated.
    Needs(Needs),
    /// `admit` refused.
    Refused(E),
}

impl ExtentIoTree {
    /// Preallocates, with no lock held, everything `op` on `ranges` needs
    /// (nodes, and room in `changeset` if one is given), so that
    /// [`Self::apply`] with the same arguments cannot fail as long as the
    /// tree does not change in between (the caller holds the inode lock,
    /// or the instance alone). Changes nothing.
    pub(crate) fn prepare(
        &self,
        ranges: &[ByteRange],
        op: TreeOp,
        changeset: Option<&mut ExtentChangeset>,
    ) -> Result<Prealloc> {
        let mut prealloc = Prealloc::new();
        self.run(ranges, op, changeset, Then::<Error>::Measure, &mut prealloc)?;
        Ok(prealloc)
    }

    /// `op` on `range` (recording in `changeset` if one is given), if
    /// `admit` agrees: it is called, under the tree's lock, with the bytes
    /// whose recorded bits the change flips, and the change is made only
    /// if it returns `Ok`. Returns those bytes.
    ///
    /// All or nothing, in one lock round when the node and record
    /// preallocated up front suffice: on `admit`'s error, EINVAL or ENOMEM,
    /// the tree and `changeset` are as they were. `admit` runs under a
    /// spinlock: it must not sleep or allocate; it is called at most once.
    pub(crate) fn run_admitted<E: From<Error>>(
        &self,
        range: ByteRange,
        op: TreeOp,
        changeset: Option<&mut ExtentChangeset>,
        mut admit: impl FnMut(u64) -> core::result::Result<(), E>,
    ) -> core::result::Result<u64, E> {
        let mut prealloc = Prealloc::new();
        self.run(
            &[range],
            op,
            changeset,
            Then::Admit(&mut admit),
            &mut prealloc,
        )
    }

    /// Applies `op` to `ranges` with what [`Self::prepare`] preallocated
    /// for the same arguments. Returns the bytes where `op`'s recorded bits
    /// flipped, and records them in `changeset`.
    ///
    /// It cannot fail: `prepare` accepted the ranges and preallocated all
    /// the operation needs on this tree, which the caller's locking keeps
    /// unchanged in between. Should that be broken (a bug), it warns
    /// (`WARN_ON`), changes nothing and returns 0.
    pub(crate) fn apply(
        &self,
        ranges: &[ByteRange],
        op: TreeOp,
        changeset: Option<&mut ExtentChangeset>,
        prealloc: &mut Prealloc,
    ) -> u64 {
        let valid = ranges.iter().all(|r| check_range(r.start, r.end).is_ok());
        let applied = valid
            .then(|| {
                self.attempt(ranges, op, changeset, prealloc, &mut Then::<Error>::Apply)
                    .ok()
            })
            .flatten();
        // INVARIANT: `prepare` made sure of both (see above).
        kernel::warn_on!(applied.is_none());
        applied.unwrap_or(0)
    }

    /// Preallocates, with no lock held, until one attempt of `op` on
    /// `ranges` finds all it needs (nodes, and room in `changeset` if one
    /// is given), and then does what `then` says. Returns the bytes whose
    /// recorded bits flipped (would flip, for [`Then::Measure`]); what is
    /// left preallocated stays in `prealloc` (everything, for
    /// [`Then::Measure`]), for the caller to free unlocked.
    ///
    /// A single range that fills holes gets one node (and room for one
    /// recorded range) before the first attempt, as upstream preallocates
    /// one extent state before taking the tree lock: the common case then
    /// takes the lock once.
    ///
    /// All or nothing: EINVAL for a bad range, ENOMEM and a refusal leave
    /// the tree and `changeset` exactly as they were.
    pub(super) fn run<E: From<Error>>(
        &self,
        ranges: &[ByteRange],
        op: TreeOp,
        mut changeset: Option<&mut ExtentChangeset>,
        mut then: Then<'_, E>,
        prealloc: &mut Prealloc,
    ) -> core::result::Result<u64, E> {
        for r in ranges {
            check_range(r.start, r.end)?;
        }
        if let [_] = ranges {
            if op.fills_holes() {
                let records = usize::from(changeset.is_some());
                prealloc.grow(
                    Needs {
                        nodes: 1,
                        records,
                        ..Needs::default()
                    },
                    changeset.as_deref_mut(),
                )?;
            }
        }
        loop {
            match self.attempt(ranges, op, changeset.as_deref_mut(), prealloc, &mut then) {
                Ok(bytes) => return Ok(bytes),
                Err(Short::Needs(needs)) => prealloc.grow(needs, changeset.as_deref_mut())?,
                Err(Short::Refused(e)) => return Err(e),
            }
        }
    }

    /// One attempt under the lock: measures what `op` on the (valid)
    /// `ranges` needs and, when `prealloc` and `changeset` hold it all,
    /// does what `then` says. Returns the bytes whose recorded bits
    /// flipped (0 when it only measures), or, changing nothing, why not.
    ///
    /// An operation that changes no state returns after the measure.
    fn attempt<E>(
        &self,
        ranges: &[ByteRange],
        op: TreeOp,
        changeset: Option<&mut ExtentChangeset>,
        prealloc: &mut Prealloc,
        then: &mut Then<'_, E>,
    ) -> core::result::Result<u64, Short<E>> {
        let Prealloc {
            pool,
            recorded,
            pending,
        } = prealloc;
        recorded.clear();
        let records_on = changeset.is_some();
        let (bytes, done) = 'locked: {
            let mut guard = self.states.lock();
            let tree = &mut guard.tree;
            if let [range] = ranges {
                let mut cx = single::Context {
                    pool: &mut *pool,
                    recorded: records_on.then_some(&mut *recorded),
                    record_room: changeset.as_deref().is_none_or(|cs| cs.has_room(1)),
                    then: &mut *then,
                };
                match single::single(tree, *range, op, &mut cx) {
                    Single::General => {}
                    Single::Unchanged(flips) => return Ok(flips),
                    Single::Short(short) => return Err(short),
                    Single::Applied(bytes) => break 'locked (bytes, true),
                }
            }
            let mut needs = Needs::default();
            for r in ranges {
                measure(tree, *r, op, &mut needs);
            }
            if needs.changes == 0 {
                // Nothing to change, and so no bit flips.
                return Ok(0);
            }
            if !records_on {
                needs.records = 0;
            }
            let room = changeset
                .as_deref()
                .is_none_or(|cs| cs.has_room(needs.records) && recorded.can_hold(needs.records));
            if pool.len() < needs.nodes || !room {
                return Err(Short::Needs(needs));
            }
            if !then.admits(needs.flips).map_err(Short::Refused)? {
                return Ok(needs.flips);
            }
            let mut bytes = 0u64;
            let mut done = true;
            for r in ranges {
                let mut change = Change::new(
                    *r,
                    op,
                    &mut *pool,
                    records_on.then_some(&mut *recorded),
                    &mut *pending,
                );
                done &= change.apply(tree) == Progress::Done;
                // PANIC: none; a byte flips at most once in one operation,
                // and all bytes of `[0, MAX_END]` number 2^64 - 1.
                bytes += change.bytes();
                merge_states(
                    tree,
                    pool,
                    r.start.saturating_sub(1),
                    r.end.saturating_add(1),
                );
            }
            (bytes, done)
        };
        // INVARIANT: `measure` counted every node and all the room the
        // change takes, so it ran to the end.
        kernel::warn_on!(!done);
        // Nodes freed or left over stay in `prealloc`, freed unlocked.
        if let Some(cs) = changeset {
            cs.merge_within_capacity(recorded.as_slice(), bytes);
        }
        Ok(bytes)
    }
}
