//! Data buffers that a transport lends to the engine for one command.
//!
//! A [`DataBuffer`] names memory that already lives where the transport
//! keeps it: guest pages mapped through a grant device, the TCMU data area,
//! or a buffer an iSCSI connection allocated for the command. The engine and
//! the backstores read and write it in place, so READ and WRITE move each
//! byte once, between the backstore and the transport's memory.
//!
//! Such memory may be written concurrently by another party (a guest, the
//! kernel). It is therefore never exposed as `&[u8]` or `&mut [u8]`: every
//! access is a volatile copy through [`vm_memory::VolatileSlice`], and
//! syscalls receive raw segment pointers through [`DataBuffer::segments`].
//!
//! A buffer is a cheap handle: cloning it or narrowing it with
//! [`DataBuffer::slice`] shares the memory, and the memory stays alive until
//! the last handle is dropped. That is what lets a backstore hand the memory
//! to a worker thread, and lets an aborted command's future be dropped while
//! that worker is still writing.
//!
//! ```
//! use tgtkit_scsi_core::buffer::DataBuffer;
//!
//! let buf = DataBuffer::from_vec(vec![0u8; 16]);
//! assert_eq!(buf.write_at(4, b"scsi"), 4);
//! let mut out = [0u8; 4];
//! assert_eq!(buf.read_at(4, &mut out), 4);
//! assert_eq!(&out, b"scsi");
//! assert_eq!(buf.try_into_vec().unwrap()[4..8], *b"scsi");
//! ```

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use vm_memory::VolatileSlice;

/// One contiguous piece of a buffer, as a raw pointer and a length.
#[derive(Clone, Copy, PartialEq, Eq)]
struct RawSegment {
    addr: *mut u8,
    len: usize,
}

/// An owned allocation behind [`DataBuffer::from_vec`].
struct OwnedMemory {
    addr: *mut u8,
    len: usize,
}

// SAFETY: `OwnedMemory` owns its allocation exclusively; it is only accessed
// through volatile copies made by `DataBuffer`, from any thread.
unsafe impl Send for OwnedMemory {}
// SAFETY: as above: shared access is only through raw pointers and volatile
// copies, never through references.
unsafe impl Sync for OwnedMemory {}

impl OwnedMemory {
    fn new(vec: Vec<u8>) -> Self {
        let boxed = vec.into_boxed_slice();
        let len = boxed.len();
        let addr = Box::into_raw(boxed).cast::<u8>();
        Self { addr, len }
    }

    fn into_vec(self) -> Vec<u8> {
        let this = std::mem::ManuallyDrop::new(self);
        let slice = std::ptr::slice_from_raw_parts_mut(this.addr, this.len);
        // SAFETY: `addr`/`len` came from `Box::into_raw` of a boxed slice in
        // `new`, and `ManuallyDrop` keeps `Drop` from freeing it twice.
        unsafe { Box::from_raw(slice) }.into_vec()
    }
}

impl Drop for OwnedMemory {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.addr, self.len);
        // SAFETY: `addr`/`len` came from `Box::into_raw` in `new`, and this is
        // the only place that frees it.
        drop(unsafe { Box::from_raw(slice) });
    }
}

/// The segment list of a buffer: one segment inline, or a shared list.
#[derive(Clone)]
enum Segments {
    One(RawSegment),
    Many(Arc<[RawSegment]>),
}

impl Segments {
    fn as_slice(&self) -> &[RawSegment] {
        match self {
            Segments::One(seg) => std::slice::from_ref(seg),
            Segments::Many(list) => list,
        }
    }
}

/// A scatter-gather data buffer lent to the engine for one command.
///
/// See the [module documentation](self) for the memory model.
#[derive(Clone)]
pub struct DataBuffer {
    segments: Segments,
    /// Byte offset of this view into the concatenated segments.
    start: usize,
    /// Length of this view in bytes.
    len: usize,
    owner: Arc<dyn Any + Send + Sync>,
}

// SAFETY: the raw pointers name memory kept alive by `owner` (which is
// `Send + Sync`), and every access through them is a volatile copy or a
// syscall, both of which are sound from any thread.
unsafe impl Send for DataBuffer {}
// SAFETY: as for `Send`: `&DataBuffer` only ever performs volatile copies.
unsafe impl Sync for DataBuffer {}

impl fmt::Debug for DataBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataBuffer")
            .field("len", &self.len)
            .field("segments", &self.segments.as_slice().len())
            .finish()
    }
}

impl Default for DataBuffer {
    fn default() -> Self {
        Self::empty()
    }
}

/// A segment of a [`DataBuffer`], handed out for syscalls and volatile copies.
pub type Segment<'a> = VolatileSlice<'a>;

impl DataBuffer {
    /// A buffer of length zero (a command without data).
    #[must_use]
    pub fn empty() -> Self {
        Self::from_vec(Vec::new())
    }

    /// A buffer that owns `vec`. Use [`DataBuffer::try_into_vec`] to take the
    /// bytes back without a copy once the command is done.
    #[must_use]
    pub fn from_vec(vec: Vec<u8>) -> Self {
        let mem = OwnedMemory::new(vec);
        let seg = RawSegment {
            addr: mem.addr,
            len: mem.len,
        };
        Self {
            segments: Segments::One(seg),
            start: 0,
            len: mem.len,
            owner: Arc::new(mem),
        }
    }

    /// A zero-filled owned buffer of `len` bytes.
    #[must_use]
    pub fn zeroed(len: usize) -> Self {
        Self::from_vec(vec![0; len])
    }

    /// A buffer over memory the caller manages, such as mapped guest pages.
    ///
    /// `owner` is kept alive for as long as any handle to the buffer exists;
    /// it is what keeps the memory mapped (an `Arc` of a mapping, a grant
    /// handle). Segments are `(address, length)` pairs, in data order.
    ///
    /// # Safety
    ///
    /// Each segment must be valid for volatile reads and writes of its length
    /// for as long as `owner` is alive, and every other user of that memory
    /// (including the other party that shares it) must use volatile accesses
    /// or be a device/kernel outside Rust's memory model.
    pub unsafe fn from_raw_segments(
        segments: &[(*mut u8, usize)],
        owner: Arc<dyn Any + Send + Sync>,
    ) -> Self {
        let list: Vec<RawSegment> = segments
            .iter()
            .filter(|(_, len)| *len > 0)
            .map(|&(addr, len)| RawSegment { addr, len })
            .collect();
        let len = list.iter().map(|s| s.len).sum();
        let segments = if list.len() == 1 {
            Segments::One(list[0])
        } else {
            Segments::Many(list.into())
        };
        Self {
            segments,
            start: 0,
            len,
            owner,
        }
    }

    /// Length of the buffer in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A handle to `len` bytes starting at `offset`, sharing this memory.
    ///
    /// Returns `None` if the range does not lie inside the buffer.
    #[must_use]
    pub fn slice(&self, offset: usize, len: usize) -> Option<Self> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        Some(Self {
            segments: self.segments.clone(),
            start: self.start + offset,
            len,
            owner: Arc::clone(&self.owner),
        })
    }

    /// The same memory, cut to at most `len` bytes.
    #[must_use]
    pub fn truncated(&self, len: usize) -> Self {
        let len = len.min(self.len);
        self.slice(0, len).unwrap_or_default()
    }

    /// The segments of this view, in order, for volatile access or for
    /// passing to vectored syscalls (`VolatileSlice::ptr_guard_mut`).
    pub fn segments(&self) -> impl Iterator<Item = Segment<'_>> + '_ {
        let mut skip = self.start;
        let mut remaining = self.len;
        self.segments.as_slice().iter().filter_map(move |seg| {
            if remaining == 0 {
                return None;
            }
            if skip >= seg.len {
                skip -= seg.len;
                return None;
            }
            let take = (seg.len - skip).min(remaining);
            // SAFETY: `skip + take <= seg.len`, so the pointer stays inside
            // the segment, which the constructor's contract keeps valid while
            // `self.owner` (borrowed through `self`) is alive.
            let slice = unsafe { VolatileSlice::new(seg.addr.add(skip), take) };
            skip = 0;
            remaining -= take;
            Some(slice)
        })
    }

    /// Number of segments in this view.
    #[must_use]
    pub fn segment_count(&self) -> usize {
        self.segments().count()
    }

    /// Walk the segments overlapping `[offset, offset + len)` of this view.
    fn for_range(&self, offset: usize, len: usize, mut f: impl FnMut(Segment<'_>, usize)) -> usize {
        if offset >= self.len {
            return 0;
        }
        let len = len.min(self.len - offset);
        if let Segments::One(seg) = &self.segments {
            // The common case (one contiguous buffer): no segment walk.
            // SAFETY: `start + offset + len <= start + self.len <= seg.len`
            // (every view lies inside its segments), so the range stays
            // inside the segment, which the constructor's contract keeps
            // valid while `self.owner` (borrowed through `self`) is alive.
            let slice = unsafe { VolatileSlice::new(seg.addr.add(self.start + offset), len) };
            f(slice, 0);
            return len;
        }
        let mut pos = 0usize; // position in this view
        let mut done = 0usize;
        for seg in self.segments() {
            let seg_len = seg.len();
            let seg_end = pos + seg_len;
            if seg_end > offset && done < len {
                let from = offset.max(pos) - pos;
                let take = (seg_len - from).min(len - done);
                if let Ok(sub) = seg.subslice(from, take) {
                    f(sub, done);
                }
                done += take;
            }
            pos = seg_end;
            if done == len {
                break;
            }
        }
        done
    }

    /// Copy bytes at `offset` of the buffer into `out`; returns how many.
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> usize {
        self.for_range(offset, out.len(), |seg, done| {
            seg.copy_to(&mut out[done..done + seg.len()]);
        })
    }

    /// Copy `data` into the buffer at `offset`; returns how many bytes fit.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> usize {
        self.for_range(offset, data.len(), |seg, done| {
            seg.copy_from(&data[done..done + seg.len()]);
        })
    }

    /// Set `len` bytes at `offset` to `byte`; returns how many were set.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) -> usize {
        const CHUNK: [u8; 4096] = [0; 4096];
        let ones = [byte; 4096];
        let src: &[u8; 4096] = if byte == 0 { &CHUNK } else { &ones };
        self.for_range(offset, len, |seg, _| {
            let mut at = 0;
            while at < seg.len() {
                let n = (seg.len() - at).min(src.len());
                if let Ok(sub) = seg.subslice(at, n) {
                    sub.copy_from(&src[..n]);
                }
                at += n;
            }
        })
    }

    /// Copy `len` bytes from `src` at `src_offset` into this buffer at
    /// `offset`, segment to segment; returns how many bytes were copied.
    pub fn copy_from_buffer(
        &self,
        offset: usize,
        src: &DataBuffer,
        src_offset: usize,
        len: usize,
    ) -> usize {
        let Some(len) = src.len.checked_sub(src_offset).map(|avail| avail.min(len)) else {
            return 0;
        };
        let Some(src) = src.slice(src_offset, len) else {
            return 0;
        };
        self.for_range(offset, len, |dst, done| {
            let mut at = 0;
            src.for_range(done, dst.len(), |s, _| {
                if let Ok(d) = dst.subslice(at, s.len()) {
                    s.copy_to_volatile_slice(d);
                }
                at += s.len();
            });
        })
    }

    /// Copy the whole view into a new `Vec` (for tests and cold paths).
    #[must_use]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0; self.len];
        self.read_at(0, &mut out);
        out
    }

    /// Take back the `Vec` given to [`DataBuffer::from_vec`] without a copy.
    ///
    /// Succeeds when this buffer was made by `from_vec`, views all of it, and
    /// is the last handle to it; otherwise returns the buffer unchanged.
    ///
    /// # Errors
    ///
    /// Returns `self` when the bytes cannot be taken back without a copy.
    pub fn try_into_vec(self) -> Result<Vec<u8>, Self> {
        let full = match &self.segments {
            Segments::One(seg) => self.start == 0 && self.len == seg.len,
            Segments::Many(_) => false,
        };
        if !full {
            return Err(self);
        }
        let Self {
            segments,
            start,
            len,
            owner,
        } = self;
        let owned = match owner.downcast::<OwnedMemory>() {
            Ok(owned) => owned,
            Err(owner) => {
                return Err(Self {
                    segments,
                    start,
                    len,
                    owner,
                })
            }
        };
        match Arc::try_unwrap(owned) {
            Ok(mem) => Ok(mem.into_vec()),
            Err(owned) => Err(Self {
                segments,
                start,
                len,
                owner: owned,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scattered(parts: &[usize]) -> (DataBuffer, Arc<Vec<Vec<u8>>>) {
        let mut mem: Vec<Vec<u8>> = parts.iter().map(|&n| vec![0u8; n]).collect();
        let segs: Vec<(*mut u8, usize)> =
            mem.iter_mut().map(|v| (v.as_mut_ptr(), v.len())).collect();
        let mem = Arc::new(mem);
        // SAFETY: the vectors live in `mem`, kept alive by the owner, and are
        // not touched through references while the buffer exists.
        let buf = unsafe { DataBuffer::from_raw_segments(&segs, mem.clone()) };
        (buf, mem)
    }

    #[test]
    fn accepts_reads_and_writes_across_segments() {
        let (buf, _mem) = scattered(&[3, 5, 7]);
        assert_eq!(buf.len(), 15);
        let data: Vec<u8> = (1..=15).collect();
        assert_eq!(buf.write_at(0, &data), 15);
        assert_eq!(buf.to_vec(), data);
        let mut mid = [0u8; 6];
        assert_eq!(buf.read_at(2, &mut mid), 6);
        assert_eq!(mid, [3, 4, 5, 6, 7, 8]);
        let view = buf.slice(4, 8).unwrap();
        assert_eq!(view.to_vec(), (5..=12).collect::<Vec<u8>>());
        assert_eq!(view.segment_count(), 2);
    }

    #[test]
    fn rejects_out_of_range_views() {
        let buf = DataBuffer::zeroed(10);
        assert!(buf.slice(5, 6).is_none());
        assert!(buf.slice(usize::MAX, 2).is_none());
        assert_eq!(buf.write_at(9, b"ab"), 1);
        assert_eq!(buf.read_at(10, &mut [0u8; 2]), 0);
    }

    #[test]
    fn copies_between_scattered_buffers() {
        let (a, _ma) = scattered(&[4, 4, 4]);
        let (b, _mb) = scattered(&[5, 7]);
        a.write_at(0, b"abcdefghijkl");
        assert_eq!(b.copy_from_buffer(1, &a, 2, 9), 9);
        assert_eq!(&b.to_vec()[1..10], b"cdefghijk");
        assert_eq!(b.fill(0, 3, b'z'), 3);
        assert_eq!(&b.to_vec()[..4], b"zzze");
    }

    #[test]
    fn gives_back_owned_vec_only_when_last() {
        let buf = DataBuffer::from_vec(vec![1, 2, 3]);
        let other = buf.clone();
        let buf = buf.try_into_vec().unwrap_err();
        drop(other);
        assert_eq!(buf.try_into_vec().unwrap(), vec![1, 2, 3]);
    }
}
