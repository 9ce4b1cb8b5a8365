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
//! Each task carries an [`AbortHandle`]; task management aborts tasks by
//! nexus, tag or logical unit through [`TaskSet::abort_where`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use event_listener::Event;
use futures::future::AbortHandle;

use crate::engine::{NexusId, TaskAttribute};

#[derive(Debug)]
struct Entry {
    seq: u64,
    nexus: NexusId,
    tag: u64,
    attribute: TaskAttribute,
    abort: AbortHandle,
}

#[derive(Debug, Default)]
struct Inner {
    next_seq: u64,
    /// In arrival order (ascending `seq`).
    tasks: Vec<Entry>,
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

impl TaskSet {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Register a task; the guard removes it when dropped.
    pub(crate) fn insert(
        self: &Arc<Self>,
        nexus: NexusId,
        tag: u64,
        attribute: TaskAttribute,
        abort: AbortHandle,
    ) -> Result<TaskGuard, DuplicateTag> {
        let mut inner = self.lock();
        if inner.tasks.iter().any(|t| t.nexus == nexus && t.tag == tag) {
            return Err(DuplicateTag);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.tasks.push(Entry {
            seq,
            nexus,
            tag,
            attribute,
            abort,
        });
        Ok(TaskGuard {
            set: Arc::clone(self),
            seq,
            attribute,
        })
    }

    fn can_start(&self, seq: u64, attribute: TaskAttribute) -> bool {
        let inner = self.lock();
        let older = inner.tasks.iter().take_while(|t| t.seq < seq);
        match attribute {
            TaskAttribute::HeadOfQueue => true,
            TaskAttribute::Ordered => older.count() == 0,
            TaskAttribute::Simple | TaskAttribute::Aca => !older.into_iter().any(|t| {
                matches!(
                    t.attribute,
                    TaskAttribute::Ordered | TaskAttribute::HeadOfQueue
                )
            }),
        }
    }

    /// Abort every task matching `pred`; returns how many.
    pub(crate) fn abort_where(&self, mut pred: impl FnMut(NexusId, u64) -> bool) -> usize {
        let inner = self.lock();
        let mut n = 0;
        for t in inner.tasks.iter().filter(|t| pred(t.nexus, t.tag)) {
            t.abort.abort();
            n += 1;
        }
        n
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
}

/// A registered task; dropping it completes the task.
#[derive(Debug)]
pub(crate) struct TaskGuard {
    set: Arc<TaskSet>,
    seq: u64,
    attribute: TaskAttribute,
}

impl TaskGuard {
    /// Wait until the task may enter the enabled state.
    pub(crate) async fn enabled(&self) {
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
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        let mut inner = self.set.lock();
        if let Some(pos) = inner.tasks.iter().position(|t| t.seq == self.seq) {
            inner.tasks.remove(pos);
            drop(inner);
            // A waiter registers in `waiting` before it re-checks and
            // sleeps, and the removal above happened before this load
            // (SeqCst on both sides): either it sees the removal or we see
            // it waiting.
            if self.set.waiting.load(Ordering::SeqCst) > 0 {
                self.set.changed.notify(usize::MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::AbortHandle;

    fn handle() -> AbortHandle {
        AbortHandle::new_pair().0
    }

    #[test]
    fn ordered_waits_for_older_and_blocks_newer_simple() {
        let set = Arc::new(TaskSet::default());
        let n = NexusId(1);
        let a = set.insert(n, 1, TaskAttribute::Simple, handle()).unwrap();
        let o = set.insert(n, 2, TaskAttribute::Ordered, handle()).unwrap();
        let b = set.insert(n, 3, TaskAttribute::Simple, handle()).unwrap();
        let h = set
            .insert(n, 4, TaskAttribute::HeadOfQueue, handle())
            .unwrap();
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
        let set = Arc::new(TaskSet::default());
        let _a = set
            .insert(NexusId(1), 9, TaskAttribute::Simple, handle())
            .unwrap();
        assert!(set
            .insert(NexusId(1), 9, TaskAttribute::Simple, handle())
            .is_err());
        assert!(set
            .insert(NexusId(2), 9, TaskAttribute::Simple, handle())
            .is_ok());
    }
}
