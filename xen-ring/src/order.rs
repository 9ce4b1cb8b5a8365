//! Responses in request order, so that a restarted backend can resume a
//! ring.
//!
//! The shared ring holds requests and responses in the same slots: the
//! response a backend writes at index `i` overwrites the request at `i`.
//! A backend that answers in completion order may overwrite the slot of a
//! request still in flight; if that backend process dies, the request is
//! gone from the ring and the frontend waits for its answer forever, while
//! a request already answered still sits in a later slot and would be
//! answered twice. A backend that publishes responses in the order it
//! consumed the requests keeps one invariant instead: the responses at
//! `[0, rsp_prod)` answer exactly the requests at `[0, rsp_prod)`. A new
//! process attached with [`BackRing::resume`](crate::BackRing::resume) then
//! serves `[rsp_prod, req_prod)`, every unanswered request once.
//!
//! [`ResponseOrder`] is that queue: requests are [admitted](ResponseOrder::admit)
//! as they are consumed, run concurrently and complete in any order, and
//! [`ResponseOrder::pop_ready`] yields completions in admission order. The
//! price is head-of-line delay of a response (not of the I/O) behind a
//! slower earlier request. [`Sequenced`] tags a request's future with its
//! sequence number for a `FuturesUnordered`.
//!
//! ```
//! use tgtkit_xen_ring::order::ResponseOrder;
//!
//! let mut order = ResponseOrder::with_capacity(4);
//! let a = order.admit();
//! let b = order.admit();
//! assert!(order.complete(b, "b"));
//! assert_eq!(order.pop_ready(), None); // `a` is still running
//! assert!(order.complete(a, "a"));
//! assert_eq!(order.pop_ready(), Some("a"));
//! assert_eq!(order.pop_ready(), Some("b"));
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Completions queued in the order their requests were admitted.
#[derive(Debug)]
pub struct ResponseOrder<T> {
    queue: VecDeque<Option<T>>,
    base: u64,
}

impl<T> ResponseOrder<T> {
    /// A queue with room for `capacity` outstanding requests (the ring
    /// size) before it grows.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            queue: VecDeque::with_capacity(capacity),
            base: 0,
        }
    }

    /// Admit the request just consumed; returns its sequence number.
    pub fn admit(&mut self) -> u64 {
        let seq = self.base + self.queue.len() as u64;
        self.queue.push_back(None);
        seq
    }

    /// Record the completion of request `seq`. Returns `false` (and drops
    /// `item`) if `seq` was never admitted, was already popped, or already
    /// completed.
    pub fn complete(&mut self, seq: u64, item: T) -> bool {
        let Some(at) = seq
            .checked_sub(self.base)
            .and_then(|d| usize::try_from(d).ok())
        else {
            return false;
        };
        match self.queue.get_mut(at) {
            Some(place @ None) => {
                *place = Some(item);
                true
            }
            _ => false,
        }
    }

    /// The oldest admitted request's completion, once it has completed.
    pub fn pop_ready(&mut self) -> Option<T> {
        if !matches!(self.queue.front(), Some(Some(_))) {
            return None;
        }
        self.base += 1;
        self.queue.pop_front().flatten()
    }

    /// Requests admitted and not yet popped.
    #[must_use]
    pub fn outstanding(&self) -> usize {
        self.queue.len()
    }
}

/// A request's future tagged with its [`ResponseOrder`] sequence number:
/// resolves to `(seq, output)`.
#[derive(Debug)]
pub struct Sequenced<F> {
    seq: u64,
    fut: F,
}

impl<F> Sequenced<F> {
    /// Tag `fut` with `seq`.
    pub fn new(seq: u64, fut: F) -> Self {
        Self { seq, fut }
    }
}

impl<F: Future + Unpin> Future for Sequenced<F> {
    type Output = (u64, F::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let seq = self.seq;
        Pin::new(&mut self.fut).poll(cx).map(|out| (seq, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_completions_in_any_order_and_yields_them_in_admission_order() {
        let mut order = ResponseOrder::with_capacity(2);
        let seqs: Vec<u64> = (0..5).map(|_| order.admit()).collect();
        for &s in &[3, 1, 4] {
            assert!(order.complete(seqs[s], s));
        }
        assert_eq!(order.pop_ready(), None);
        assert!(order.complete(seqs[0], 0));
        assert_eq!(order.pop_ready(), Some(0));
        assert_eq!(order.pop_ready(), Some(1));
        assert_eq!(order.pop_ready(), None);
        assert!(order.complete(seqs[2], 2));
        let rest: Vec<usize> = std::iter::from_fn(|| order.pop_ready()).collect();
        assert_eq!(rest, [2, 3, 4]);
        assert_eq!(order.outstanding(), 0);
        assert_eq!(order.admit(), 5);
    }

    #[test]
    fn rejects_unknown_popped_and_repeated_completions() {
        let mut order = ResponseOrder::with_capacity(2);
        let a = order.admit();
        assert!(!order.complete(a + 1, "never admitted"));
        assert!(order.complete(a, "a"));
        assert!(!order.complete(a, "twice"));
        assert_eq!(order.pop_ready(), Some("a"));
        assert!(!order.complete(a, "after pop"));
        assert_eq!(order.pop_ready(), None);
    }
}
