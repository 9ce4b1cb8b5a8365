//! `/dev/xen/gntdev`: map the pages another domain granted, and copy to
//! and from them (Linux's `xen/gntdev.h` UAPI).
//!
//! [`Gntdev::map`] maps several grant references with one
//! `IOCTL_GNTDEV_MAP_GRANT_REF` and one `mmap` of the offset it returns,
//! so the pages are contiguous in this process (what a multi-page ring
//! needs). [`GrantPages`] unmaps (`munmap`, then
//! `IOCTL_GNTDEV_UNMAP_GRANT_REF`) when dropped. [`GntdevGrants`] is the
//! [`GrantAccess`] the blkif and vscsiif backends run on.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tgtkit_xen::gntdev::{Gntdev, GntdevGrants};
//!
//! let dev = Arc::new(Gntdev::open()?);
//! let ring = dev.map(1, &[8], true)?; // domain 1 granted page 8
//! println!("ring page at {:p}", ring.as_ptr());
//! let grants = GntdevGrants::new(dev, 1); // for the backend processors
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustix::fs::{Mode, OFlags};
use rustix::mm::{MapFlags, ProtFlags};
use tgtkit_xen_ring::grant::{GrantAccess, GrantError, GrantMapping, GrantRef};
use tgtkit_xen_ring::PAGE_SIZE;

use crate::ioctl;

/// The device node.
pub const GNTDEV_PATH: &str = "/dev/xen/gntdev";
/// Most references one [`Gntdev::map`] call takes (a bound on the
/// argument this process allocates; the kernel has its own limit).
pub const MAX_MAP_BATCH: usize = 1024;

/// The raw UAPI structures and ioctl numbers (`xen/gntdev.h`), checked
/// against the header by `tests/header_layout.rs`.
pub mod sys {
    use std::mem::size_of;

    /// `struct ioctl_gntdev_grant_ref`.
    #[derive(Debug, Clone, Copy, Default)]
    #[repr(C)]
    pub struct GrantRefArg {
        /// Domain that granted the page.
        pub domid: u32,
        /// Its grant reference.
        pub gref: u32,
    }

    /// `struct ioctl_gntdev_map_grant_ref` up to its `refs` array (which
    /// follows it in memory, `count` entries).
    #[derive(Debug, Clone, Copy, Default)]
    #[repr(C)]
    pub struct MapGrantRefHeader {
        /// Number of references.
        pub count: u32,
        /// Padding.
        pub pad: u32,
        /// Out: the offset to `mmap`.
        pub index: u64,
    }

    /// `struct ioctl_gntdev_unmap_grant_ref`.
    #[derive(Debug, Clone, Copy, Default)]
    #[repr(C)]
    pub struct UnmapGrantRef {
        /// The offset the map returned.
        pub index: u64,
        /// Number of pages.
        pub count: u32,
        /// Padding.
        pub pad: u32,
    }

    /// `struct ioctl_gntdev_set_max_grants`.
    #[derive(Debug, Clone, Copy, Default)]
    #[repr(C)]
    pub struct SetMaxGrants {
        /// Most grants mapped at once.
        pub count: u32,
    }

    /// The `foreign` member of a grant-copy end.
    #[derive(Debug, Clone, Copy, Default)]
    #[repr(C)]
    pub struct CopyForeign {
        /// Grant reference.
        pub gref: u32,
        /// Offset in the page.
        pub offset: u16,
        /// Granting domain.
        pub domid: u16,
    }

    /// One end of a grant copy (`union { void *virt; struct foreign; }`).
    #[derive(Clone, Copy)]
    #[repr(C)]
    pub union CopyPtr {
        /// A buffer of this process.
        pub virt: *mut std::ffi::c_void,
        /// A granted page.
        pub foreign: CopyForeign,
    }

    /// `struct ioctl_gntdev_grant_copy_segment`.
    #[derive(Clone, Copy)]
    #[repr(C)]
    pub struct GrantCopySegment {
        /// Where from.
        pub source: CopyPtr,
        /// Where to.
        pub dest: CopyPtr,
        /// Bytes (within one page).
        pub len: u16,
        /// `GNTCOPY_source_gref` / `GNTCOPY_dest_gref`.
        pub flags: u16,
        /// Out: `GNTST_*` (0 is okay).
        pub status: i16,
    }

    /// `struct ioctl_gntdev_grant_copy`.
    #[derive(Debug, Clone, Copy)]
    #[repr(C)]
    pub struct GrantCopy {
        /// Number of segments.
        pub count: u32,
        /// The segments.
        pub segments: *mut GrantCopySegment,
    }

    /// `GNTCOPY_source_gref`: the source is a grant.
    pub const GNTCOPY_SOURCE_GREF: u16 = 1;
    /// `GNTCOPY_dest_gref`: the destination is a grant.
    pub const GNTCOPY_DEST_GREF: u16 = 2;

    /// `sizeof(struct ioctl_gntdev_map_grant_ref)` (header plus one ref).
    pub const MAP_GRANT_REF_SIZE: usize = size_of::<MapGrantRefHeader>() + size_of::<GrantRefArg>();

    /// `IOCTL_GNTDEV_MAP_GRANT_REF`.
    pub const IOCTL_GNTDEV_MAP_GRANT_REF: u32 =
        super::ioctl::none(b'G', 0, MAP_GRANT_REF_SIZE) as u32;
    /// `IOCTL_GNTDEV_UNMAP_GRANT_REF`.
    pub const IOCTL_GNTDEV_UNMAP_GRANT_REF: u32 =
        super::ioctl::none(b'G', 1, size_of::<UnmapGrantRef>()) as u32;
    /// `IOCTL_GNTDEV_SET_MAX_GRANTS`.
    pub const IOCTL_GNTDEV_SET_MAX_GRANTS: u32 =
        super::ioctl::none(b'G', 3, size_of::<SetMaxGrants>()) as u32;
    /// `IOCTL_GNTDEV_GRANT_COPY`.
    pub const IOCTL_GNTDEV_GRANT_COPY: u32 =
        super::ioctl::none(b'G', 8, size_of::<GrantCopy>()) as u32;
}

/// An open `/dev/xen/gntdev`.
#[derive(Debug)]
pub struct Gntdev {
    fd: OwnedFd,
}

impl AsFd for Gntdev {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Gntdev {
    /// Open [`GNTDEV_PATH`].
    ///
    /// # Errors
    ///
    /// The `open` error (no Xen, module not loaded, not root).
    pub fn open() -> io::Result<Self> {
        Self::open_path(GNTDEV_PATH)
    }

    /// Open a gntdev node at `path`.
    ///
    /// # Errors
    ///
    /// The `open` error.
    pub fn open_path(path: &str) -> io::Result<Self> {
        let fd = rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Self { fd })
    }

    /// `IOCTL_GNTDEV_SET_MAX_GRANTS` (older kernels cap each open file at
    /// 128 mapped grants unless raised; newer ones ignore or refuse it).
    ///
    /// # Errors
    ///
    /// The ioctl error.
    pub fn set_max_grants(&self, count: u32) -> io::Result<()> {
        let mut arg = sys::SetMaxGrants { count };
        // SAFETY: `arg` is the `ioctl_gntdev_set_max_grants` this ioctl takes.
        unsafe { ioctl::call(&self.fd, sys::IOCTL_GNTDEV_SET_MAX_GRANTS as _, &mut arg) }?;
        Ok(())
    }

    /// Map the pages `domid` granted as `refs`, contiguously, writable or
    /// read-only (a page granted read-only must be mapped read-only).
    ///
    /// # Errors
    ///
    /// [`GrantError::Refused`] (the first reference: the hypervisor
    /// refuses the batch as a whole) or [`GrantError::Device`].
    pub fn map(
        self: &Arc<Self>,
        domid: u32,
        refs: &[GrantRef],
        writable: bool,
    ) -> Result<GrantPages, GrantError> {
        let Some(&first) = refs.first() else {
            return Err(GrantError::Device("no grant references".into()));
        };
        if refs.len() > MAX_MAP_BATCH {
            return Err(GrantError::Device(format!(
                "{} references in one map",
                refs.len()
            )));
        }
        let count = u32::try_from(refs.len()).map_err(|_| GrantError::OutOfPage)?;
        // Header (2 u64 words) then one 8-byte ref per word, as one u64
        // buffer so the header is 8-aligned.
        let mut buf = vec![0u64; 2 + refs.len()];
        let hdr = buf.as_mut_ptr().cast::<sys::MapGrantRefHeader>();
        // SAFETY: `buf` holds 2 + n u64 words: the 16-byte header then n
        // 8-byte `GrantRefArg`s, all plain data, suitably aligned.
        unsafe {
            hdr.write(sys::MapGrantRefHeader {
                count,
                pad: 0,
                index: 0,
            });
            let arr = buf.as_mut_ptr().add(2).cast::<sys::GrantRefArg>();
            for (i, r) in refs.iter().enumerate() {
                arr.add(i).write(sys::GrantRefArg { domid, gref: *r });
            }
        }
        // SAFETY: `buf` is the header followed by `count` refs, as the
        // ioctl reads it; it writes back only `index` in the header.
        unsafe { ioctl::call(&self.fd, sys::IOCTL_GNTDEV_MAP_GRANT_REF as _, hdr) }
            .map_err(|e| GrantError::Device(format!("IOCTL_GNTDEV_MAP_GRANT_REF: {e}")))?;
        // SAFETY: written by the kernel above; plain data.
        let index = unsafe { hdr.read() }.index;
        let len = refs.len() * PAGE_SIZE;
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a fresh shared mapping of the gntdev offset reserved
        // above; nothing in this process aliases it.
        let addr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                MapFlags::SHARED,
                &self.fd,
                index,
            )
        };
        let mut unmap = sys::UnmapGrantRef {
            index,
            count,
            pad: 0,
        };
        match addr {
            Ok(addr) => Ok(GrantPages {
                dev: Arc::clone(self),
                addr: addr.cast(),
                index,
                count,
            }),
            Err(e) => {
                // SAFETY: the unmap argument for the index reserved above.
                let _ = unsafe {
                    ioctl::call(&self.fd, sys::IOCTL_GNTDEV_UNMAP_GRANT_REF as _, &mut unmap)
                };
                tracing::debug!(domid, gref = first, error = %e, "gntdev: mmap refused");
                Err(GrantError::Refused(first))
            }
        }
    }

    /// `IOCTL_GNTDEV_GRANT_COPY` of `segments`; each segment's `status`
    /// is set by the hypervisor.
    ///
    /// # Errors
    ///
    /// The ioctl error (`ENOTTY` on kernels without grant copy).
    ///
    /// # Safety
    ///
    /// Every `virt` end must point to a buffer of this process valid for
    /// `len` bytes (writes, for a destination).
    pub unsafe fn grant_copy(&self, segments: &mut [sys::GrantCopySegment]) -> io::Result<()> {
        let mut arg = sys::GrantCopy {
            count: u32::try_from(segments.len())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
            segments: segments.as_mut_ptr(),
        };
        // SAFETY: `arg` names `segments`, whose local buffers the caller
        // vouches for.
        unsafe { ioctl::call(&self.fd, sys::IOCTL_GNTDEV_GRANT_COPY as _, &mut arg) }?;
        Ok(())
    }
}

/// Pages mapped by [`Gntdev::map`]; unmapped on drop.
#[derive(Debug)]
pub struct GrantPages {
    dev: Arc<Gntdev>,
    addr: *mut u8,
    index: u64,
    count: u32,
}

// SAFETY: the mapping is process memory valid until drop; it is only
// exposed as raw pointers for volatile access, from any thread.
unsafe impl Send for GrantPages {}
// SAFETY: as above.
unsafe impl Sync for GrantPages {}

impl GrantPages {
    /// Start of the mapping (the first reference's page).
    #[must_use]
    pub fn as_ptr(&self) -> *mut u8 {
        self.addr
    }

    /// Number of pages.
    #[must_use]
    pub fn pages(&self) -> usize {
        self.count as usize
    }

    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pages() * PAGE_SIZE
    }

    /// Whether no page is mapped (never, for a successful map).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The gntdev offset (a unique token while mapped).
    #[must_use]
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The `i`-th page.
    #[must_use]
    pub fn page(&self, i: usize) -> Option<*mut u8> {
        (i < self.pages()).then(|| self.addr.wrapping_add(i * PAGE_SIZE))
    }
}

impl Drop for GrantPages {
    fn drop(&mut self) {
        // SAFETY: `addr..addr+len` is the mapping made in `Gntdev::map`,
        // unmapped only here; no reference into it exists.
        if let Err(e) = unsafe { rustix::mm::munmap(self.addr.cast(), self.len()) } {
            tracing::error!(error = %e, "gntdev: munmap failed");
        }
        let mut arg = sys::UnmapGrantRef {
            index: self.index,
            count: self.count,
            pad: 0,
        };
        // SAFETY: the unmap argument for this mapping's index.
        if let Err(e) = unsafe {
            ioctl::call(
                &self.dev.fd,
                sys::IOCTL_GNTDEV_UNMAP_GRANT_REF as _,
                &mut arg,
            )
        } {
            tracing::error!(error = %e, "gntdev: IOCTL_GNTDEV_UNMAP_GRANT_REF failed");
        }
    }
}

/// A [`GrantAccess`] over gntdev for the grants of one domain.
#[derive(Debug)]
pub struct GntdevGrants {
    dev: Arc<Gntdev>,
    domid: u32,
    live: Mutex<HashMap<u64, GrantPages>>,
    copy_works: AtomicBool,
}

impl GntdevGrants {
    /// Grants of domain `domid` through `dev`.
    #[must_use]
    pub fn new(dev: Arc<Gntdev>, domid: u32) -> Self {
        Self {
            dev,
            domid,
            live: Mutex::new(HashMap::new()),
            copy_works: AtomicBool::new(true),
        }
    }

    /// Mappings currently alive.
    #[must_use]
    pub fn mapped(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, GrantPages>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn domid16(&self) -> u16 {
        u16::try_from(self.domid).unwrap_or(u16::MAX)
    }

    /// Copy by grant copy; `Ok(false)` if the kernel lacks it.
    fn try_copy(
        &self,
        gref: GrantRef,
        offset: usize,
        local: *mut u8,
        len: usize,
        to_grant: bool,
    ) -> Result<bool, GrantError> {
        if !self.copy_works.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let foreign = sys::CopyForeign {
            gref,
            offset: u16::try_from(offset).map_err(|_| GrantError::OutOfPage)?,
            domid: self.domid16(),
        };
        let local = sys::CopyPtr { virt: local.cast() };
        let remote = sys::CopyPtr { foreign };
        let (source, dest, flags) = if to_grant {
            (local, remote, sys::GNTCOPY_DEST_GREF)
        } else {
            (remote, local, sys::GNTCOPY_SOURCE_GREF)
        };
        let mut seg = [sys::GrantCopySegment {
            source,
            dest,
            len: u16::try_from(len).map_err(|_| GrantError::OutOfPage)?,
            flags,
            status: 0,
        }];
        // SAFETY: `local` is the caller's buffer of `len` bytes.
        match unsafe { self.dev.grant_copy(&mut seg) } {
            Ok(()) if seg[0].status == 0 => Ok(true),
            Ok(()) => Err(GrantError::Refused(gref)),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTTY.raw_os_error()) => {
                self.copy_works.store(false, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(GrantError::Device(format!("IOCTL_GNTDEV_GRANT_COPY: {e}"))),
        }
    }
}

fn check(offset: usize, len: usize) -> Result<(), GrantError> {
    match offset.checked_add(len) {
        Some(end) if end <= PAGE_SIZE => Ok(()),
        _ => Err(GrantError::OutOfPage),
    }
}

impl GrantAccess for GntdevGrants {
    fn map(&self, refs: &[GrantRef], writable: bool) -> Result<GrantMapping, GrantError> {
        let pages = self.dev.map(self.domid, refs, writable)?;
        let ptrs: Vec<*mut u8> = (0..pages.pages()).filter_map(|i| pages.page(i)).collect();
        let token = pages.index();
        // SAFETY: each pointer is a page of `pages`, which stays mapped in
        // `live` until `unmap` is given this token.
        let m = unsafe { GrantMapping::new(ptrs, token) };
        self.lock().insert(token, pages);
        Ok(m)
    }

    fn unmap(&self, mapping: &GrantMapping) {
        let pages = self.lock().remove(&mapping.token());
        drop(pages);
    }

    fn copy_from(&self, gref: GrantRef, offset: usize, out: &mut [u8]) -> Result<(), GrantError> {
        check(offset, out.len())?;
        if out.is_empty() || self.try_copy(gref, offset, out.as_mut_ptr(), out.len(), false)? {
            return Ok(());
        }
        let pages = self.dev.map(self.domid, &[gref], false)?;
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: `offset + i < 4096` inside the mapped page; volatile
            // because the guest may write it concurrently.
            *b = unsafe { pages.as_ptr().add(offset + i).read_volatile() };
        }
        Ok(())
    }

    fn copy_to(&self, gref: GrantRef, offset: usize, data: &[u8]) -> Result<(), GrantError> {
        check(offset, data.len())?;
        // Grant copy only reads the local buffer.
        if data.is_empty()
            || self.try_copy(gref, offset, data.as_ptr().cast_mut(), data.len(), true)?
        {
            return Ok(());
        }
        let pages = self.dev.map(self.domid, &[gref], true)?;
        for (i, b) in data.iter().enumerate() {
            // SAFETY: as in `copy_from`, inside the mapped writable page.
            unsafe { pages.as_ptr().add(offset + i).write_volatile(*b) };
        }
        Ok(())
    }
}
