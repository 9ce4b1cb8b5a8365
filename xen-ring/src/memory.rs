//! The memory region a ring lives in.

use std::alloc::{self, Layout};
use std::any::Any;
use std::fmt;
use std::sync::Arc;

use vm_memory::VolatileSlice;

use crate::{LayoutError, PAGE_SIZE};

/// A page-aligned zeroed allocation owned by a [`RingMemory`].
struct OwnedPages {
    addr: *mut u8,
    layout: Layout,
}

// SAFETY: the allocation is exclusively owned and only ever accessed through
// raw pointers with volatile/atomic accesses, which is sound from any thread.
unsafe impl Send for OwnedPages {}
// SAFETY: as above: shared access never creates references into the memory.
unsafe impl Sync for OwnedPages {}

impl Drop for OwnedPages {
    fn drop(&mut self) {
        // SAFETY: `addr` was returned by `alloc_zeroed` with `layout` and is
        // freed only here.
        unsafe { alloc::dealloc(self.addr, self.layout) };
    }
}

/// Memory shared with the other end of a ring: one or more 4 KiB pages
/// (granted pages mapped by the transport, or an allocation for tests).
///
/// It is only ever accessed through volatile and atomic accessors
/// ([`RingMemory::as_volatile_slice`]), never as a Rust reference: the other
/// end may write it at any time. Cloning shares the memory.
#[derive(Clone)]
pub struct RingMemory {
    addr: *mut u8,
    len: usize,
    _owner: Arc<dyn Any + Send + Sync>,
}

// SAFETY: `addr` names memory kept alive by `owner` (`Send + Sync`), and every
// access is volatile or atomic, so handing the handle to another thread is sound.
unsafe impl Send for RingMemory {}
// SAFETY: `&RingMemory` only performs volatile/atomic accesses.
unsafe impl Sync for RingMemory {}

impl fmt::Debug for RingMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingMemory")
            .field("addr", &self.addr)
            .field("len", &self.len)
            .finish()
    }
}

impl RingMemory {
    /// A zeroed, page-aligned allocation of `pages` 4 KiB pages, for tests,
    /// simulators and in-process rings.
    ///
    /// # Errors
    ///
    /// [`LayoutError::RegionTooSmall`] for zero pages, and
    /// [`LayoutError::TooManyPages`] past [`crate::MAX_RING_PAGES`].
    pub fn anonymous(pages: usize) -> Result<Self, LayoutError> {
        if pages == 0 {
            return Err(LayoutError::RegionTooSmall { len: 0 });
        }
        if pages > crate::MAX_RING_PAGES {
            return Err(LayoutError::TooManyPages { pages });
        }
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE)
            .map_err(|_| LayoutError::TooManyPages { pages })?;
        // SAFETY: `layout` has a non-zero size.
        let addr = unsafe { alloc::alloc_zeroed(layout) };
        if addr.is_null() {
            alloc::handle_alloc_error(layout);
        }
        let len = layout.size();
        Ok(Self {
            addr,
            len,
            _owner: Arc::new(OwnedPages { addr, layout }),
        })
    }

    /// A region over memory the caller manages (mapped grant pages).
    ///
    /// `owner` is kept alive as long as any handle exists: it is what keeps
    /// the memory mapped.
    ///
    /// # Errors
    ///
    /// [`LayoutError::Misaligned`] unless `addr` is 8-byte aligned (the ring
    /// indices are accessed atomically).
    ///
    /// # Safety
    ///
    /// `addr..addr+len` must stay valid for volatile and atomic reads and
    /// writes while `owner` is alive, and nothing in this process may access
    /// it through Rust references.
    pub unsafe fn from_raw(
        addr: *mut u8,
        len: usize,
        owner: Arc<dyn Any + Send + Sync>,
    ) -> Result<Self, LayoutError> {
        if (addr as usize) % 8 != 0 {
            return Err(LayoutError::Misaligned);
        }
        Ok(Self {
            addr,
            len,
            _owner: owner,
        })
    }

    /// Length of the region in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Start address of the region (to hand to a peer in tests).
    #[must_use]
    pub fn as_ptr(&self) -> *mut u8 {
        self.addr
    }

    /// The region as a volatile slice: the only way its bytes are touched.
    #[must_use]
    pub fn as_volatile_slice(&self) -> VolatileSlice<'_> {
        // SAFETY: the constructor's contract keeps `addr..addr+len` valid for
        // volatile access while `self._owner` lives, which `&self` guarantees.
        unsafe { VolatileSlice::new(self.addr, self.len) }
    }
}
