//! Test helpers (feature `test-utils`): a grant table over plain memory and
//! in-process event channels, so a frontend simulator and the backend
//! processor can run against each other without Xen.

use std::alloc::{self, Layout};
use std::any::Any;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::task::AtomicWaker;
use vm_memory_free::VolatileCopy;

use crate::event::EventChannel;
use crate::grant::{GrantAccess, GrantError, GrantMapping, GrantRef};

/// Volatile byte copies without references into shared memory.
mod vm_memory_free {
    /// Copy helpers over raw pointers.
    pub(super) struct VolatileCopy;
    impl VolatileCopy {
        /// Copy `out.len()` bytes from `src`.
        ///
        /// # Safety
        ///
        /// `src..src+out.len()` must be valid for reads.
        pub(super) unsafe fn read(src: *const u8, out: &mut [u8]) {
            for (i, b) in out.iter_mut().enumerate() {
                // SAFETY: in bounds by the caller's contract.
                *b = unsafe { src.add(i).read_volatile() };
            }
        }
        /// Copy `data` to `dst`.
        ///
        /// # Safety
        ///
        /// `dst..dst+data.len()` must be valid for writes.
        pub(super) unsafe fn write(dst: *mut u8, data: &[u8]) {
            for (i, b) in data.iter().enumerate() {
                // SAFETY: in bounds by the caller's contract.
                unsafe { dst.add(i).write_volatile(*b) };
            }
        }
    }
}

struct OwnedPages {
    addr: *mut u8,
    layout: Layout,
}
// SAFETY: owned allocation, accessed only through raw volatile copies.
unsafe impl Send for OwnedPages {}
// SAFETY: as above.
unsafe impl Sync for OwnedPages {}
impl Drop for OwnedPages {
    fn drop(&mut self) {
        // SAFETY: allocated in `MemoryGrants::new` with this layout.
        unsafe { alloc::dealloc(self.addr, self.layout) };
    }
}

/// A grant table over plain memory: grant reference `n` is page `n` of a
/// region. References can be refused or granted read-only, and every map
/// and unmap is counted, so tests can check nothing stays mapped.
pub struct MemoryGrants {
    base: *mut u8,
    pages: usize,
    _owner: Arc<dyn Any + Send + Sync>,
    refused: Mutex<HashSet<GrantRef>>,
    read_only: Mutex<HashSet<GrantRef>>,
    maps: AtomicU64,
    unmaps: AtomicU64,
    mapped: AtomicI64,
}

// SAFETY: the region is only accessed through volatile copies and the
// pointers handed to the backend; the sets and counters are synchronised.
unsafe impl Send for MemoryGrants {}
// SAFETY: as above.
unsafe impl Sync for MemoryGrants {}

impl std::fmt::Debug for MemoryGrants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryGrants")
            .field("pages", &self.pages)
            .finish()
    }
}

impl MemoryGrants {
    /// A table of `pages` zeroed pages.
    ///
    /// # Panics
    ///
    /// If `pages` is zero or the allocation fails.
    #[must_use]
    pub fn new(pages: usize) -> Self {
        let layout = Layout::from_size_align(pages * 4096, 4096).expect("layout");
        assert!(pages > 0, "at least one page");
        // SAFETY: non-zero size.
        let addr = unsafe { alloc::alloc_zeroed(layout) };
        assert!(!addr.is_null(), "allocation failed");
        let owner = Arc::new(OwnedPages { addr, layout });
        // SAFETY: freshly allocated `pages * 4096` bytes kept alive by `owner`.
        unsafe { Self::from_raw(addr, pages, owner) }
    }

    /// A table over `pages` pages at `base` (for memory shared with another
    /// process).
    ///
    /// # Safety
    ///
    /// `base..base + pages * 4096` must be valid for volatile reads and
    /// writes while `owner` lives, and not accessed through references.
    pub unsafe fn from_raw(base: *mut u8, pages: usize, owner: Arc<dyn Any + Send + Sync>) -> Self {
        Self {
            base,
            pages,
            _owner: owner,
            refused: Mutex::new(HashSet::new()),
            read_only: Mutex::new(HashSet::new()),
            maps: AtomicU64::new(0),
            unmaps: AtomicU64::new(0),
            mapped: AtomicI64::new(0),
        }
    }

    /// Refuse `gref` from now on.
    pub fn refuse(&self, gref: GrantRef) {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(gref);
    }

    /// Grant `gref` read-only (writable maps are refused).
    pub fn grant_read_only(&self, gref: GrantRef) {
        self.read_only
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(gref);
    }

    fn page_ptr(&self, gref: GrantRef, writable: bool) -> Result<*mut u8, GrantError> {
        let idx = gref as usize;
        if idx >= self.pages
            || self
                .refused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&gref)
        {
            return Err(GrantError::Refused(gref));
        }
        if writable
            && self
                .read_only
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&gref)
        {
            return Err(GrantError::Refused(gref));
        }
        Ok(self.base.wrapping_add(idx * 4096))
    }

    /// Frontend side: write `data` into page `gref` at `offset`.
    ///
    /// # Panics
    ///
    /// Outside the region (test misuse).
    pub fn write(&self, gref: GrantRef, offset: usize, data: &[u8]) {
        let at = gref as usize * 4096 + offset;
        assert!(
            at + data.len() <= self.pages * 4096,
            "outside the grant region"
        );
        // SAFETY: bounds checked above; the region is valid per the constructor.
        unsafe { VolatileCopy::write(self.base.add(at), data) };
    }

    /// Frontend side: read page `gref` at `offset` into `out`.
    ///
    /// # Panics
    ///
    /// Outside the region (test misuse).
    pub fn read(&self, gref: GrantRef, offset: usize, out: &mut [u8]) {
        let at = gref as usize * 4096 + offset;
        assert!(
            at + out.len() <= self.pages * 4096,
            "outside the grant region"
        );
        // SAFETY: bounds checked above.
        unsafe { VolatileCopy::read(self.base.add(at), out) };
    }

    /// Number of `map` calls that succeeded.
    #[must_use]
    pub fn maps(&self) -> u64 {
        self.maps.load(Ordering::SeqCst)
    }

    /// Number of `unmap` calls.
    #[must_use]
    pub fn unmaps(&self) -> u64 {
        self.unmaps.load(Ordering::SeqCst)
    }

    /// Pages currently mapped.
    #[must_use]
    pub fn mapped_pages(&self) -> i64 {
        self.mapped.load(Ordering::SeqCst)
    }

    /// Number of pages.
    #[must_use]
    pub fn pages(&self) -> usize {
        self.pages
    }
}

impl GrantAccess for MemoryGrants {
    fn map(&self, refs: &[GrantRef], writable: bool) -> Result<GrantMapping, GrantError> {
        let pages = refs
            .iter()
            .map(|&g| self.page_ptr(g, writable))
            .collect::<Result<Vec<_>, _>>()?;
        self.maps.fetch_add(1, Ordering::SeqCst);
        self.mapped.fetch_add(pages.len() as i64, Ordering::SeqCst);
        // SAFETY: each pointer is a whole page inside the region, valid
        // while `self` lives (the backend holds an `Arc` of it).
        Ok(unsafe { GrantMapping::new(pages, 0) })
    }

    fn unmap(&self, mapping: &GrantMapping) {
        self.unmaps.fetch_add(1, Ordering::SeqCst);
        self.mapped
            .fetch_sub(mapping.len() as i64, Ordering::SeqCst);
    }

    fn copy_from(&self, gref: GrantRef, offset: usize, out: &mut [u8]) -> Result<(), GrantError> {
        let p = self.page_ptr(gref, false)?;
        if offset.checked_add(out.len()).is_none_or(|e| e > 4096) {
            return Err(GrantError::OutOfPage);
        }
        // SAFETY: inside one page of the region (checked above).
        unsafe { VolatileCopy::read(p.add(offset), out) };
        Ok(())
    }

    fn copy_to(&self, gref: GrantRef, offset: usize, data: &[u8]) -> Result<(), GrantError> {
        let p = self.page_ptr(gref, true)?;
        if offset.checked_add(data.len()).is_none_or(|e| e > 4096) {
            return Err(GrantError::OutOfPage);
        }
        // SAFETY: inside one page of the region (checked above).
        unsafe { VolatileCopy::write(p.add(offset), data) };
        Ok(())
    }
}

/// One direction of a simulated event channel: a pending flag that a
/// thread can block on and a future can await.
#[derive(Debug, Default)]
pub struct Doorbell {
    pending: Mutex<bool>,
    cv: Condvar,
    waker: AtomicWaker,
    closed: AtomicBool,
    rings: AtomicU64,
}

impl Doorbell {
    /// Ring it (the other side's `notify`).
    pub fn ring(&self) {
        self.rings.fetch_add(1, Ordering::Relaxed);
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
        self.waker.wake();
    }

    /// Close it: waiters see `false`.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.ring();
    }

    /// How often it was rung.
    #[must_use]
    pub fn rings(&self) -> u64 {
        self.rings.load(Ordering::Relaxed)
    }

    /// Block until rung (consuming the ring) or `timeout`; `true` if rung.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !*p {
            p = self
                .cv
                .wait_timeout(p, timeout)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        std::mem::replace(&mut *p, false)
    }

    fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<bool> {
        self.waker.register(cx.waker());
        if self.closed.load(Ordering::SeqCst) {
            return Poll::Ready(false);
        }
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if std::mem::replace(&mut *p, false) {
            Poll::Ready(true)
        } else {
            Poll::Pending
        }
    }
}

struct DoorbellWait<'a>(&'a Doorbell);

impl Future for DoorbellWait<'_> {
    type Output = bool;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        self.0.poll_wait(cx)
    }
}

/// A simulated event channel between a frontend thread and the backend.
#[derive(Debug, Default, Clone)]
pub struct LocalEvent {
    /// Rung by the frontend, awaited by the backend.
    pub to_back: Arc<Doorbell>,
    /// Rung by the backend, awaited by the frontend.
    pub to_front: Arc<Doorbell>,
}

impl LocalEvent {
    /// A new pair of doorbells.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl EventChannel for LocalEvent {
    fn notify(&self) {
        self.to_front.ring();
    }

    fn wait(&self) -> BoxFuture<'_, bool> {
        Box::pin(DoorbellWait(&self.to_back))
    }
}

/// An event channel that polls: `wait` sleeps briefly and returns `true`
/// until [`PollingEvent::stop`]. For peers (another process) that cannot
/// ring a doorbell.
#[derive(Debug, Default)]
pub struct PollingEvent {
    stop: AtomicBool,
    /// Number of `notify` calls.
    pub notifies: AtomicU64,
}

impl PollingEvent {
    /// Make the next `wait` return `false`.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl EventChannel for PollingEvent {
    fn notify(&self) {
        self.notifies.fetch_add(1, Ordering::Relaxed);
    }

    fn wait(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            std::thread::sleep(Duration::from_micros(50));
            !self.stop.load(Ordering::SeqCst)
        })
    }
}
