//! The task set of a logical unit and its ordering rules (SAM-5 §8.6).
//!
//! Every command registers a task on arrival and holds a [`TaskGuard`] until
//! it completes; the guard removes it. A task enters the enabled state when
//! its attribute allows:
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
//! The per-command cost is two short lock round trips (register, complete)
//! and no allocation: whether the task may start at once is decided while
//! registering it, and the abort flag and waker of a task live in an
//! [`AbortSlot`] taken from (and given back to) a pool the set keeps.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use event_listener::Event;
use futures::task::AtomicWaker;

use crate::engine::{NexusId, TaskAttribute};

/// Most abort slots a task set keeps for reuse (beyond this, completed
/// tasks free theirs).
const MAX_POOLED_SLOTS: usize = 256;

/// The abort state of one task: set by task management, watched by the
/// task's future.
#[derive(Debug, Default)]
pub(crate) struct AbortSlot {
    aborted: AtomicBool,
    waker: AtomicWaker,
    /// A waker was registered (the task suspended): `reset` must clear it.
    /// Tasks that complete without suspending skip `AtomicWaker`'s atomics.
    registered: AtomicBool,
}

impl AbortSlot {
    fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// Wake this task's future when it is aborted.
    fn register(&self, waker: &std::task::Waker) {
        self.registered.store(true, Ordering::Relaxed);
        self.waker.register(waker);
    }

    /// Make a pooled slot fresh for its next task (under the task set's
    /// lock, after its guard let it go: nothing else touches it).
    fn reset(&self) {
        self.aborted.store(false, Ordering::Relaxed);
        if self.registered.load(Ordering::Relaxed) {
            self.registered.store(false, Ordering::Relaxed);
            drop(self.waker.take());
        }
    }
}

/// A pointer to the [`AbortSlot`] its task's guard owns.
///
/// It is valid while the entry holding it is in the set: the guard owns the
/// slot's `Arc` and removes the entry (under the set's lock) before it lets
/// the `Arc` go, and the pointer is only followed under that lock. A guard
/// that is leaked leaks its `Arc` too, so the pointer stays valid.
#[derive(Debug)]
struct SlotRef(*const AbortSlot);

// SAFETY: `AbortSlot` is `Send + Sync` (atomics only); `SlotRef` is only
// dereferenced under the task set's lock while the slot is alive (see its
// documentation), from whichever thread holds that lock.
unsafe impl Send for SlotRef {}
// SAFETY: as for `Send`: shared access only reads through `&AbortSlot`.
unsafe impl Sync for SlotRef {}

impl SlotRef {
    fn get(&self) -> &AbortSlot {
        // SAFETY: see the type's documentation: the entry holding this
        // pointer is in the set, so the guard still owns the slot.
        unsafe { &*self.0 }
    }
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    nexus: NexusId,
    tag: u64,
    attribute: TaskAttribute,
    abort: SlotRef,
    /// Aborted by another nexus with TAS set: report TASK ABORTED status.
    report: bool,
}

impl Entry {
    fn is_barrier(&self) -> bool {
        is_barrier(self.attribute)
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
    /// In arrival order (ascending `seq`).
    tasks: Vec<Entry>,
    /// ORDERED and HEAD OF QUEUE tasks in `tasks`.
    barriers: usize,
    /// Abort slots of completed tasks, for reuse.
    free: Vec<Arc<AbortSlot>>,
}

impl Inner {
    fn can_start(&self, seq: u64, attribute: TaskAttribute) -> bool {
        let mut older = self.tasks.iter().take_while(|t| t.seq < seq);
        match attribute {
            TaskAttribute::HeadOfQueue => true,
            TaskAttribute::Ordered => older.next().is_none(),
            TaskAttribute::Simple | TaskAttribute::Aca => !older.any(Entry::is_barrier),
        }
    }

    /// Remove the task `seq` (if still there) and take its slot back;
    /// returns how it ended.
    fn complete(&mut self, seq: u64, slot: Arc<AbortSlot>) -> Ending {
        let ending = match self.tasks.binary_search_by_key(&seq, |t| t.seq) {
            Ok(pos) => {
                // The newest task (at queue depth 1, the only one) needs
                // no shifting: `swap_remove` of the last is a pop.
                let t = if pos + 1 == self.tasks.len() {
                    self.tasks.swap_remove(pos)
                } else {
                    self.tasks.remove(pos)
                };
                if t.is_barrier() {
                    self.barriers -= 1;
                }
                if !t.abort.get().is_aborted() {
                    Ending::Completed
                } else if t.report {
                    Ending::AbortedWithStatus
                } else {
                    Ending::AbortedSilently
                }
            }
            Err(_) => Ending::Completed,
        };
        if self.free.len() < MAX_POOLED_SLOTS {
            slot.reset();
            self.free.push(slot);
        }
        ending
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

    /// Register a task; the guard removes it when finished or dropped.
    pub(crate) fn insert(
        &self,
        nexus: NexusId,
        tag: u64,
        attribute: TaskAttribute,
    ) -> Result<TaskGuard<'_>, DuplicateTag> {
        let mut inner = self.lock();
        if inner.tasks.iter().any(|t| t.nexus == nexus && t.tag == tag) {
            return Err(DuplicateTag);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        // Every task in the set is older than this one.
        let enabled = match attribute {
            TaskAttribute::HeadOfQueue => true,
            TaskAttribute::Ordered => inner.tasks.is_empty(),
            TaskAttribute::Simple | TaskAttribute::Aca => inner.barriers == 0,
        };
        let slot = inner.free.pop().unwrap_or_default();
        if is_barrier(attribute) {
            inner.barriers += 1;
        }
        inner.tasks.push(Entry {
            seq,
            nexus,
            tag,
            attribute,
            abort: SlotRef(Arc::as_ptr(&slot)),
            report: false,
        });
        Ok(TaskGuard {
            set: self,
            seq,
            attribute,
            enabled,
            slot: Some(slot),
        })
    }

    fn can_start(&self, seq: u64, attribute: TaskAttribute) -> bool {
        self.lock().can_start(seq, attribute)
    }

    /// Abort every task matching `pred`; returns how many.
    pub(crate) fn abort_where(&self, pred: impl FnMut(NexusId, u64) -> bool) -> usize {
        let mut inner = self.lock();
        Self::abort_locked(&mut inner, pred, |_| false)
    }

    /// Abort every task matching `pred`; the tasks of nexuses for which
    /// `report` is true end with TASK ABORTED status. Returns the nexuses
    /// that had tasks aborted, each once.
    pub(crate) fn abort_matching(
        &self,
        mut pred: impl FnMut(NexusId, u64) -> bool,
        report: impl Fn(NexusId) -> bool,
    ) -> Vec<NexusId> {
        let mut inner = self.lock();
        let mut hit = Vec::new();
        Self::abort_locked(
            &mut inner,
            |n, t| {
                let yes = pred(n, t);
                if yes && !hit.contains(&n) {
                    hit.push(n);
                }
                yes
            },
            report,
        );
        hit
    }

    fn abort_locked(
        inner: &mut Inner,
        mut pred: impl FnMut(NexusId, u64) -> bool,
        report: impl Fn(NexusId) -> bool,
    ) -> usize {
        let mut count = 0;
        for t in inner.tasks.iter_mut().filter(|t| pred(t.nexus, t.tag)) {
            let slot = t.abort.get();
            if !slot.is_aborted() {
                t.report = report(t.nexus);
            }
            slot.abort();
            count += 1;
        }
        count
    }

    /// Whether a task matching `pred` is in the set.
    pub(crate) fn any(&self, mut pred: impl FnMut(NexusId, u64) -> bool) -> bool {
        self.lock().tasks.iter().any(|t| pred(t.nexus, t.tag))
    }

    /// Number of tasks in the set.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().tasks.len()
    }

    /// Wake the tasks waiting to be enabled, if any.
    fn notify(&self) {
        // A waiter registers in `waiting` before it re-checks and sleeps,
        // and the removal that called this happened before this load
        // (SeqCst on both sides): either it sees the removal or we see it
        // waiting.
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
    /// This task's abort slot; `None` once completed.
    slot: Option<Arc<AbortSlot>>,
}

impl TaskGuard<'_> {
    /// Complete the task: remove it from the set and say whether task
    /// management aborted it first. Done under the task set's lock, so a
    /// task management function either sees the task (and this reports it
    /// aborted) or does not (and the task's response goes out).
    pub(crate) fn finish(mut self) -> Ending {
        let Some(slot) = self.slot.take() else {
            return Ending::Completed;
        };
        let ending = self.set.lock().complete(self.seq, slot);
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
        let Some(slot) = self.slot.as_deref() else {
            return Err(Aborted);
        };
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
        if let Some(slot) = self.slot.take() {
            self.set.lock().complete(self.seq, slot);
            self.set.notify();
        }
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
}
