//! The task set of a logical unit and its ordering rules (SAM-5 §8.6).
//!
//! Every command registers a task on arrival and holds a [`TaskGuard`] until
//! it completes. A task enters the enabled state when its attribute allows:
//!
//! * HEAD OF QUEUE: at once;
//! * ORDERED: when every older task has completed;
//! * SIMPLE (and ACA, which is treated as SIMPLE): when every older ORDERED
//!   and HEAD OF QUEUE task has completed.
//!
//! Task management aborts tasks by nexus, tag or logical unit through
//! [`TaskSet::abort_where`]; the command's future sees it through
//! [`TaskGuard::run`].
//!
//! # Cost per command
//!
//! One short lock round trip (to register) and one atomic swap (to
//! complete), and no allocation:
//!
//! * whether the task may start at once is decided while registering it;
//! * each task's state lives in an [`AbortSlot`], taken from (and given back
//!   to) a pool the set keeps;
//! * completing a task does not take the lock: it swaps its slot's state
//!   to DONE. Task management changes a slot only from RUNNING (with a
//!   compare-exchange, under the lock), so exactly one of them wins: either
//!   the task completed first (task management no longer sees it) or it was
//!   aborted first (and its completion reports that). Completed entries are
//!   removed, and their slots recycled, by the next registration.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use event_listener::Event;
use futures::task::AtomicWaker;

use crate::engine::{NexusId, TaskAttribute};

/// Most abort slots a task set keeps for reuse (beyond this, completed
/// tasks free theirs).
const MAX_POOLED_SLOTS: usize = 256;

/// [`AbortSlot::state`]: the task runs (or waits to).
const RUNNING: u8 = 0;
/// Aborted by task management; nothing goes out for it.
const ABORTED: u8 = 1;
/// Aborted by another nexus with TAS set: TASK ABORTED goes out.
const ABORTED_REPORT: u8 = 2;
/// Completed: its guard is done with the slot.
const DONE: u8 = 3;

/// The state of one task, shared by its guard (which completes it) and
/// task management (which aborts it).
#[derive(Debug, Default)]
pub(crate) struct AbortSlot {
    /// RUNNING, ABORTED, ABORTED_REPORT or DONE. Sequentially consistent:
    /// it also orders a completion against a waiter's `waiting` count.
    state: AtomicU8,
    waker: AtomicWaker,
    /// A waker was registered (the task suspended): `reset` must clear it.
    /// Tasks that complete without suspending skip `AtomicWaker`'s atomics.
    registered: AtomicBool,
}

impl AbortSlot {
    /// Abort the task unless it completed; returns whether it had not
    /// (an already aborted task counts, and keeps its first `report`).
    fn abort(&self, report: bool) -> bool {
        let to = if report { ABORTED_REPORT } else { ABORTED };
        match self
            .state
            .compare_exchange(RUNNING, to, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => {
                self.waker.wake();
                true
            }
            Err(now) => now != DONE,
        }
    }

    fn is_aborted(&self) -> bool {
        matches!(self.state.load(Ordering::SeqCst), ABORTED | ABORTED_REPORT)
    }

    fn is_done(&self) -> bool {
        self.state.load(Ordering::SeqCst) == DONE
    }

    /// Complete the task; says whether it was aborted first.
    fn complete(&self) -> Ending {
        match self.state.swap(DONE, Ordering::SeqCst) {
            ABORTED => Ending::AbortedSilently,
            ABORTED_REPORT => Ending::AbortedWithStatus,
            _ => Ending::Completed,
        }
    }

    /// Wake this task's future when it is aborted.
    fn register(&self, waker: &std::task::Waker) {
        self.registered.store(true, Ordering::Relaxed);
        self.waker.register(waker);
    }

    /// Make a completed slot fresh for its next task (under the task set's
    /// lock, after its guard let it go: nothing else touches it).
    fn reset(&self) {
        self.state.store(RUNNING, Ordering::Relaxed);
        if self.registered.load(Ordering::Relaxed) {
            self.registered.store(false, Ordering::Relaxed);
            drop(self.waker.take());
        }
    }
}

/// A pointer to the [`AbortSlot`] of the guard's task.
///
/// The slot is owned by the task's entry in the set, and an entry is removed
/// (and its slot recycled) only once its state is DONE, which only the guard
/// sets, as the last thing it does with the slot. So the pointer is valid
/// for as long as the guard may follow it. A guard that is leaked never sets
/// DONE, and its entry (with the slot) stays.
#[derive(Debug)]
struct SlotRef(*const AbortSlot);

// SAFETY: `AbortSlot` is `Send + Sync` (atomics only) and outlives every
// use of this pointer (see the type's documentation), from any thread.
unsafe impl Send for SlotRef {}
// SAFETY: as for `Send`: shared access only reads through `&AbortSlot`.
unsafe impl Sync for SlotRef {}

impl SlotRef {
    fn get(&self) -> &AbortSlot {
        // SAFETY: see the type's documentation: the guard has not set DONE
        // yet, so the entry that owns the slot is still in the set.
        unsafe { &*self.0 }
    }
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    nexus: NexusId,
    tag: u64,
    attribute: TaskAttribute,
    slot: Arc<AbortSlot>,
}

impl Entry {
    fn is_barrier(&self) -> bool {
        is_barrier(self.attribute)
    }

    /// Not completed: task management and ordering still see it.
    fn is_live(&self) -> bool {
        !self.slot.is_done()
    }
}

/// Whether newer SIMPLE tasks wait for a task with this attribute.
fn is_barrier(attribute: TaskAttribute) -> bool {
    matches!(
        attribute,
        TaskAttribute::Ordered | TaskAttribute::HeadOfQueue
    )
}

/// How a task ended, as far as task management is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Not aborted: its response goes out.
    Completed,
    /// Aborted: nothing goes out for it (SAM-5 §5.6).
    AbortedSilently,
    /// Aborted by another I_T nexus with TAS set: TASK ABORTED status goes
    /// out (SPC-4 §7.5.8).
    AbortedWithStatus,
}

#[derive(Debug, Default)]
struct Inner {
    next_seq: u64,
    /// In arrival order (ascending `seq`); completed ones until reaped.
    tasks: Vec<Entry>,
    /// ORDERED and HEAD OF QUEUE tasks in `tasks` (completed or not).
    barriers: usize,
    /// Slots of reaped tasks, for reuse.
    free: Vec<Arc<AbortSlot>>,
}

impl Inner {
    fn live(&self) -> impl Iterator<Item = &Entry> {
        self.tasks.iter().filter(|t| t.is_live())
    }

    fn can_start(&self, seq: u64, attribute: TaskAttribute) -> bool {
        let mut older = self.live().take_while(|t| t.seq < seq);
        match attribute {
            TaskAttribute::HeadOfQueue => true,
            TaskAttribute::Ordered => older.next().is_none(),
            TaskAttribute::Simple | TaskAttribute::Aca => !older.any(Entry::is_barrier),
        }
    }

    /// Remove completed tasks and recycle their slots.
    fn reap(&mut self) {
        // A stable in-place partition: live tasks keep their order at the
        // front, completed ones are moved out (with their slot, no
        // reference-count traffic) from the back.
        let mut keep = 0;
        for i in 0..self.tasks.len() {
            if self.tasks[i].is_live() {
                self.tasks.swap(keep, i);
                keep += 1;
            }
        }
        for t in self.tasks.drain(keep..) {
            if t.is_barrier() {
                self.barriers -= 1;
            }
            if self.free.len() < MAX_POOLED_SLOTS {
                t.slot.reset();
                self.free.push(t.slot);
            }
        }
    }
}

/// The tasks of one logical unit.
#[derive(Debug, Default)]
pub(crate) struct TaskSet {
    inner: Mutex<Inner>,
    changed: Event,
    /// Tasks waiting to be enabled: completions notify only when non-zero.
    waiting: AtomicUsize,
}

/// A task already exists with this nexus and tag (an overlapped command).
#[derive(Debug)]
pub(crate) struct DuplicateTag;

/// The task was aborted by task management while it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Aborted;

impl TaskSet {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Register a task; the guard completes it when finished or dropped.
    pub(crate) fn insert(
        &self,
        nexus: NexusId,
        tag: u64,
        attribute: TaskAttribute,
    ) -> Result<TaskGuard<'_>, DuplicateTag> {
        let mut inner = self.lock();
        inner.reap();
        if inner.live().any(|t| t.nexus == nexus && t.tag == tag) {
            return Err(DuplicateTag);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        // Every task in the set is older than this one. A barrier that
        // completed since `reap` still counts: the task then waits in
        // `enabled`, which looks again.
        let enabled = match attribute {
            TaskAttribute::HeadOfQueue => true,
            TaskAttribute::Ordered => inner.live().next().is_none(),
            TaskAttribute::Simple | TaskAttribute::Aca => inner.barriers == 0,
        };
        // Pooled slots were reset when reaped; `Arc` keeps a slot's address
        // stable while the entry (and the pointer below) live.
        let slot = inner.free.pop().unwrap_or_default();
        let ptr = SlotRef(Arc::as_ptr(&slot));
        if is_barrier(attribute) {
            inner.barriers += 1;
        }
        inner.tasks.push(Entry {
            seq,
            nexus,
            tag,
            attribute,
            slot,
        });
        Ok(TaskGuard {
            set: self,
            seq,
            attribute,
            enabled,
            slot: ptr,
            done: false,
        })
    }

    fn can_start(&self, seq: u64, attribute: TaskAttribute) -> bool {
        self.lock().can_start(seq, attribute)
    }

    /// Abort every task matching `pred`; returns how many.
    pub(crate) fn abort_where(&self, mut pred: impl FnMut(NexusId, u64) -> bool) -> usize {
        let inner = self.lock();
        inner
            .tasks
            .iter()
            .filter(|t| pred(t.nexus, t.tag) && t.slot.abort(false))
            .count()
    }

    /// Abort every task matching `pred`; the tasks of nexuses for which
    /// `report` is true end with TASK ABORTED status. Returns the nexuses
    /// that had tasks aborted, each once.
    pub(crate) fn abort_matching(
        &self,
        mut pred: impl FnMut(NexusId, u64) -> bool,
        report: impl Fn(NexusId) -> bool,
    ) -> Vec<NexusId> {
        let inner = self.lock();
        let mut hit = Vec::new();
        for t in &inner.tasks {
            if pred(t.nexus, t.tag) && t.slot.abort(report(t.nexus)) && !hit.contains(&t.nexus) {
                hit.push(t.nexus);
            }
        }
        hit
    }

    /// Whether a task matching `pred` is in the set.
    pub(crate) fn any(&self, mut pred: impl FnMut(NexusId, u64) -> bool) -> bool {
        self.lock().live().any(|t| pred(t.nexus, t.tag))
    }

    /// Number of tasks in the set.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().live().count()
    }

    /// Wake the tasks waiting to be enabled, if any.
    fn notify(&self) {
        // A waiter registers in `waiting` before it re-checks and sleeps,
        // and the completion that called this happened before this load
        // (SeqCst on both sides): either it sees the completion or we see
        // it waiting.
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.changed.notify(usize::MAX);
        }
    }
}

/// A registered task; finishing or dropping it completes the task.
#[derive(Debug)]
pub(crate) struct TaskGuard<'a> {
    set: &'a TaskSet,
    seq: u64,
    attribute: TaskAttribute,
    /// Known to be enabled (decided at registration).
    enabled: bool,
    /// This task's slot; not followed once `done`.
    slot: SlotRef,
    done: bool,
}

impl TaskGuard<'_> {
    /// Complete the task and say whether task management aborted it first:
    /// a task management function either aborted it before this (and this
    /// reports it) or finds it completed (and the task's response goes out).
    pub(crate) fn finish(mut self) -> Ending {
        self.complete()
    }

    fn complete(&mut self) -> Ending {
        if self.done {
            return Ending::Completed;
        }
        self.done = true;
        // The last use of the slot: from here the set may recycle it.
        let ending = self.slot.get().complete();
        self.set.notify();
        ending
    }

    /// Wait until the task may enter the enabled state.
    pub(crate) async fn enabled(&self) {
        if self.enabled {
            return;
        }
        loop {
            if self.set.can_start(self.seq, self.attribute) {
                return;
            }
            self.set.waiting.fetch_add(1, Ordering::SeqCst);
            let listener = self.set.changed.listen();
            if self.set.can_start(self.seq, self.attribute) {
                self.set.waiting.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            listener.await;
            self.set.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Run `fut` as this task: it is polled until it completes or task
    /// management aborts the task, whichever comes first (an aborted
    /// future is dropped at its next suspension point).
    ///
    /// The future is pinned by the caller, so that it is not moved (copied)
    /// into this one.
    pub(crate) async fn run<F: Future>(&self, mut fut: Pin<&mut F>) -> Result<F::Output, Aborted> {
        if self.done {
            return Err(Aborted);
        }
        let slot = self.slot.get();
        std::future::poll_fn(|cx| {
            if slot.is_aborted() {
                return Poll::Ready(Err(Aborted));
            }
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            // Register for the wake-up an abort sends, then look again in
            // case it came in between.
            slot.register(cx.waker());
            if slot.is_aborted() {
                return Poll::Ready(Err(Aborted));
            }
            Poll::Pending
        })
        .await
    }
}

impl Drop for TaskGuard<'_> {
    fn drop(&mut self) {
        self.complete();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_waits_for_older_and_blocks_newer_simple() {
        let set = TaskSet::default();
        let n = NexusId(1);
        let a = set.insert(n, 1, TaskAttribute::Simple).unwrap();
        let o = set.insert(n, 2, TaskAttribute::Ordered).unwrap();
        let b = set.insert(n, 3, TaskAttribute::Simple).unwrap();
        let h = set.insert(n, 4, TaskAttribute::HeadOfQueue).unwrap();
        assert!(set.can_start(a.seq, a.attribute));
        assert!(!set.can_start(o.seq, o.attribute));
        assert!(!set.can_start(b.seq, b.attribute));
        assert!(set.can_start(h.seq, h.attribute));
        drop(a);
        assert!(set.can_start(o.seq, o.attribute));
        assert!(!set.can_start(b.seq, b.attribute));
        drop(o);
        assert!(set.can_start(b.seq, b.attribute));
        drop((b, h));
        assert_eq!(set.len(), 0);
    }

    #[test]
    fn rejects_duplicate_tags_per_nexus() {
        let set = TaskSet::default();
        let _a = set.insert(NexusId(1), 9, TaskAttribute::Simple).unwrap();
        assert!(set.insert(NexusId(1), 9, TaskAttribute::Simple).is_err());
        assert!(set.insert(NexusId(2), 9, TaskAttribute::Simple).is_ok());
    }

    #[test]
    fn accepts_enabling_at_registration_as_sam_orders_it() {
        // SAM-5 §8.6: decided at insert, it agrees with the full check.
        let set = TaskSet::default();
        let n = NexusId(1);
        let a = set.insert(n, 1, TaskAttribute::Simple).unwrap();
        let b = set.insert(n, 2, TaskAttribute::Aca).unwrap();
        let o = set.insert(n, 3, TaskAttribute::Ordered).unwrap();
        let c = set.insert(n, 4, TaskAttribute::Simple).unwrap();
        let h = set.insert(n, 5, TaskAttribute::HeadOfQueue).unwrap();
        for g in [&a, &b, &o, &c, &h] {
            assert_eq!(g.enabled, set.can_start(g.seq, g.attribute), "{g:?}");
        }
        assert_eq!(
            [a.enabled, b.enabled, o.enabled, c.enabled, h.enabled],
            [true, true, false, false, true]
        );
        drop((a, b, o, c, h));
        let o = set.insert(n, 6, TaskAttribute::Ordered).unwrap();
        assert!(o.enabled);
    }

    #[test]
    fn accepts_aborts_through_run_and_reuses_clean_slots() {
        let set = TaskSet::default();
        let g = set.insert(NexusId(1), 7, TaskAttribute::Simple).unwrap();
        assert_eq!(set.abort_where(|_, t| t == 7), 1);
        let out = futures::executor::block_on(g.run(std::pin::pin!(async { 1 })));
        assert_eq!(out, Err(Aborted));
        assert_eq!(g.finish(), Ending::AbortedSilently);
        // The slot goes back to the pool and comes out fresh.
        let g = set.insert(NexusId(1), 7, TaskAttribute::Simple).unwrap();
        let out = futures::executor::block_on(g.run(std::pin::pin!(async { 2 })));
        assert_eq!(out, Ok(2));
        assert_eq!(g.finish(), Ending::Completed);
        assert_eq!(set.len(), 0);
    }

    #[test]
    fn accepts_completion_racing_an_abort_with_one_winner() {
        // SAM-5 §7.1: an ABORT TASK that finds the task aborts it (and no
        // response goes out), or finds it gone; never both, never neither.
        let set = TaskSet::default();
        let barrier = std::sync::Barrier::new(2);
        for tag in 0..2000 {
            let guard = set.insert(NexusId(1), tag, TaskAttribute::Simple).unwrap();
            let (found, ending) = std::thread::scope(|s| {
                let tmf = s.spawn(|| {
                    barrier.wait();
                    set.abort_where(|_, t| t == tag)
                });
                barrier.wait();
                let ending = guard.finish();
                (tmf.join().unwrap(), ending)
            });
            assert_eq!(found == 1, ending == Ending::AbortedSilently, "tag {tag}");
        }
        assert_eq!(set.len(), 0);
    }
}
