//! The memory a TCMU device shares with the kernel.
//!
//! [`SharedMemory`] names one mapping (the UIO map0 region, or plain memory
//! standing in for it in tests). The kernel writes it concurrently, so it is
//! never seen as `&[u8]`: bytes are copied in and out with volatile accesses
//! ([`vm_memory::VolatileSlice`]) and the ring indices are loaded and stored
//! as atomics with explicit orderings.

use std::any::Any;
use std::fmt;
use std::sync::atomic::Ordering;

use vm_memory::{Bytes, VolatileSlice};

/// An access outside the mapping (or a misaligned atomic access).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("access of {len} bytes at offset {offset:#x} outside the {size:#x}-byte shared area")]
pub struct OutOfBounds {
    /// Offset of the access.
    pub offset: usize,
    /// Length of the access.
    pub len: usize,
    /// Size of the mapping.
    pub size: usize,
}

/// One mapping shared with the kernel.
pub struct SharedMemory {
    addr: *mut u8,
    len: usize,
    _owner: Box<dyn Any + Send + Sync>,
}

// SAFETY: the mapping is only accessed through volatile copies and atomics,
// which are sound from any thread; `_owner` is `Send + Sync`.
unsafe impl Send for SharedMemory {}
// SAFETY: as for `Send`: `&SharedMemory` never hands out references into
// the mapping.
unsafe impl Sync for SharedMemory {}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl SharedMemory {
    /// Wrap `len` bytes at `addr`, kept alive by `owner` (which unmaps or
    /// frees them when dropped).
    ///
    /// # Safety
    ///
    /// `addr..addr + len` must be valid for volatile reads and writes while
    /// `owner` lives, aligned to at least 8 bytes, and every other party
    /// touching it must use volatile or atomic accesses (or be the kernel).
    pub unsafe fn from_raw(addr: *mut u8, len: usize, owner: Box<dyn Any + Send + Sync>) -> Self {
        Self {
            addr,
            len,
            _owner: owner,
        }
    }

    /// Zeroed heap memory of `len` bytes (rounded up to 8), standing in for
    /// a mapping in tests and in the simulated kernel.
    #[must_use]
    pub fn anonymous(len: usize) -> Self {
        let words = len.div_ceil(8);
        let mut mem: Box<[u64]> = vec![0u64; words].into_boxed_slice();
        let addr = mem.as_mut_ptr().cast::<u8>();
        // SAFETY: the boxed slice is 8-byte aligned, `len <= words * 8`
        // bytes long, owned by the returned value and never touched through
        // a reference again (moving the box does not move its heap data).
        unsafe { Self::from_raw(addr, len, Box::new(OwnedWords(mem))) }
    }

    /// Size of the mapping in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The raw address of `offset`, for building data buffers over the
    /// data area. Checked against the mapping's size.
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`] unless `offset..offset + len` lies inside the mapping.
    pub fn ptr_at(&self, offset: usize, len: usize) -> Result<*mut u8, OutOfBounds> {
        self.check(offset, len)?;
        // SAFETY: `offset + len <= self.len`, so the pointer stays inside
        // (or one past the end of) the mapping.
        Ok(unsafe { self.addr.add(offset) })
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), OutOfBounds> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(OutOfBounds {
                offset,
                len,
                size: self.len,
            }),
        }
    }

    /// A volatile view of `len` bytes at `offset`.
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`] unless the range lies inside the mapping.
    pub fn slice(&self, offset: usize, len: usize) -> Result<VolatileSlice<'_>, OutOfBounds> {
        let ptr = self.ptr_at(offset, len)?;
        // SAFETY: the range was checked to lie in the mapping, which
        // `self._owner` keeps valid for the borrow of `self`.
        Ok(unsafe { VolatileSlice::new(ptr, len) })
    }

    /// Copy `out.len()` bytes at `offset` out of the mapping.
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`] unless the range lies inside the mapping.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), OutOfBounds> {
        self.slice(offset, out.len())?.copy_to(out);
        Ok(())
    }

    /// Copy `data` into the mapping at `offset`.
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`] unless the range lies inside the mapping.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), OutOfBounds> {
        self.slice(offset, data.len())?.copy_from(data);
        Ok(())
    }

    /// Atomically load the `u32` at `offset` (4-byte aligned).
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`] outside the mapping or when misaligned.
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32, OutOfBounds> {
        let oob = OutOfBounds {
            offset,
            len: 4,
            size: self.len,
        };
        self.slice(offset, 4)?
            .load::<u32>(0, order)
            .map_err(|_| oob)
    }

    /// Atomically store `val` as the `u32` at `offset` (4-byte aligned).
    ///
    /// # Errors
    ///
    /// [`OutOfBounds`] outside the mapping or when misaligned.
    pub fn store_u32(&self, offset: usize, val: u32, order: Ordering) -> Result<(), OutOfBounds> {
        let oob = OutOfBounds {
            offset,
            len: 4,
            size: self.len,
        };
        self.slice(offset, 4)?.store(val, 0, order).map_err(|_| oob)
    }
}

struct OwnedWords(#[allow(dead_code)] Box<[u64]>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_accesses_outside_the_mapping() {
        let mem = SharedMemory::anonymous(64);
        assert!(mem.read(60, &mut [0u8; 8]).is_err());
        assert!(mem.write(usize::MAX, &[1]).is_err());
        assert!(mem.load_u32(62, Ordering::Acquire).is_err());
        assert!(mem.load_u32(2, Ordering::Acquire).is_err(), "misaligned");
        mem.store_u32(8, 0xdead_beef, Ordering::Release).unwrap();
        let mut out = [0u8; 4];
        mem.read(8, &mut out).unwrap();
        assert_eq!(u32::from_ne_bytes(out), 0xdead_beef);
    }
}
