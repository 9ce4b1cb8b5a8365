//! A small thread pool for blocking file I/O.
//!
//! Backstores that issue blocking syscalls (`preadv`, `pwritev`, `fsync`,
//! `fallocate`) run them here, so no blocking call ever runs on the
//! embedder's async executor. [`BlockingPool::run`] sends a closure to a
//! worker and returns a future for its result; the future is runtime-
//! agnostic (a `futures` oneshot channel).
//!
//! Dropping the returned future does not stop the closure: whatever memory
//! it touches must be owned by the closure (the backstores move a
//! [`DataBuffer`](tgtkit_scsi_core::buffer::DataBuffer) handle in, which keeps
//! the transport's memory alive until the syscall returns).
//!
//! ```
//! use tgtkit_backstores::pool::BlockingPool;
//!
//! let pool = BlockingPool::new("doc", 2);
//! let answer = futures::executor::block_on(pool.run(|| 6 * 7)).unwrap();
//! assert_eq!(answer, 42);
//! ```

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use futures::channel::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The pool was shut down, or a job panicked, before the result arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("blocking pool worker is gone")]
pub struct PoolGone;

struct Shared {
    /// `mpsc::Sender` is `Sync`: submitters share it without a lock.
    sender: mpsc::Sender<Job>,
}

/// A fixed-size pool of worker threads for blocking calls.
///
/// Cloning shares the pool. Workers exit when the last clone is dropped and
/// the queue drains.
#[derive(Clone)]
pub struct BlockingPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingPool").finish_non_exhaustive()
    }
}

impl BlockingPool {
    /// Start `threads` workers (at least one) named `name-N`.
    #[must_use]
    pub fn new(name: &str, threads: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            let spawned = thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || loop {
                    let job = {
                        let Ok(guard) = rx.lock() else { return };
                        guard.recv()
                    };
                    match job {
                        // A panicking job drops its result sender (the caller sees
                        // `PoolGone`); the worker itself keeps serving.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                });
            if let Err(err) = spawned {
                tracing::warn!(%err, "could not start a blocking-pool worker");
            }
        }
        Self {
            shared: Arc::new(Shared { sender: tx }),
        }
    }

    /// Run `f` on a worker and return its result.
    ///
    /// # Errors
    ///
    /// [`PoolGone`] if the pool has no workers left or `f` panicked.
    pub async fn run<F, R>(&self, f: F) -> Result<R, PoolGone>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.shared.sender.send(job).map_err(|_| PoolGone)?;
        rx.await.map_err(|_| PoolGone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_jobs_on_workers() {
        let pool = BlockingPool::new("t", 2);
        let main = thread::current().id();
        let ids: Vec<_> = (0..8)
            .map(|_| futures::executor::block_on(pool.run(|| thread::current().id())).unwrap())
            .collect();
        assert!(ids.iter().all(|&id| id != main));
    }

    #[test]
    fn reports_a_panicking_job() {
        let pool = BlockingPool::new("p", 1);
        let r = futures::executor::block_on(pool.run(|| -> u8 { panic!("boom") }));
        assert_eq!(r, Err(PoolGone));
        // The worker survives the panic and keeps serving.
        assert_eq!(futures::executor::block_on(pool.run(|| 1)), Ok(1));
    }
}
