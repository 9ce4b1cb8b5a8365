//! Xen shared-ring mechanics, as defined by Xen's public `io/ring.h`.
//!
//! A Xen split driver shares one or more 4 KiB pages between a frontend
//! (the guest) and a backend. The pages start with a 64-byte header
//! ([`sring`]) holding four free-running 32-bit indices, followed by a
//! power-of-two array of entries, each the size of the union of one request
//! and one response. The frontend produces requests and consumes responses
//! ([`FrontRing`]); the backend consumes requests and produces responses in
//! the same slots ([`BackRing`]).
//!
//! This crate is sans-I/O: it neither maps pages nor signals event
//! channels. The caller supplies the memory ([`RingMemory`]) and acts on the
//! `bool` "notify the other end" answers. It also defines the two seams
//! every Xen backend processor (blkif, vscsiif) is written against: the
//! grant layer ([`grant::GrantAccess`]) and the event channel
//! ([`event::EventChannel`]), with plain-memory test doubles in `testing`
//! (feature `test-utils`).
//!
//! # Memory model and panic contract
//!
//! The shared pages are written by another party at any time. They are
//! only touched through `vm-memory` volatile copies and atomic loads and
//! stores, never through Rust references. Each index is read once, checked,
//! then used; entries are copied out of the ring before the caller decodes
//! them. The barriers are those `ring.h` implies: `xen_rmb()` after reading
//! a producer index is an `Acquire` load, `xen_wmb()` before publishing one
//! is a `Release` store, and `xen_mb()` before reading an event threshold is
//! a `fence(SeqCst)`.
//!
//! No method panics or reads outside the region on any contents of the
//! shared page. A frontend that moves `req_prod` more than a ring's worth
//! ahead of the backend's responses, or moves it backwards, makes the
//! [`BackRing`] report [`RingError::RequestProducerOverflow`] or
//! [`RingError::RequestProducerRewound`] (Linux blkback's
//! `RING_REQUEST_PROD_OVERFLOW` guard); the ring then stays broken (every
//! later call returns the same error) so the caller shuts the device down
//! instead of looping. Indices and the ring size are 32-bit and wrap, as in C.
//!
//! ```
//! use tgtkit_xen_ring::{BackRing, FrontRing, RingMemory};
//!
//! let mem = RingMemory::anonymous(1).unwrap();
//! let mut front = FrontRing::init(mem.clone(), 16).unwrap();
//! let mut back = BackRing::attach(mem, 16, 0).unwrap();
//! assert_eq!(front.size(), 128); // (4096 - 64) / 16 = 252, rounded down
//!
//! front.push_request(&[7; 16]).unwrap();
//! assert!(front.push_requests_and_check_notify()); // req_event starts at 1
//! let mut req = [0u8; 16];
//! assert!(back.next_request(&mut req).unwrap());
//! back.push_response(&[9; 16]).unwrap();
//! assert!(back.push_responses_and_check_notify());
//! let mut rsp = [0u8; 16];
//! assert!(front.next_response(&mut rsp).unwrap());
//! assert_eq!(rsp, [9; 16]);
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod event;
pub mod grant;
mod memory;
pub mod order;
#[cfg(feature = "test-utils")]
pub mod testing;

use std::sync::atomic::{fence, Ordering};

use vm_memory::Bytes;

pub use memory::RingMemory;

/// The page size of every ring protocol (`XEN_PAGE_SIZE`).
pub const PAGE_SIZE: usize = 4096;

/// Most pages one ring may span: Linux's `XENBUS_MAX_RING_GRANTS`
/// (`ring-page-order` up to 4).
pub const MAX_RING_PAGES: usize = 16;

/// Offsets and size of the shared ring header (`struct <name>_sring` up to
/// its `ring` member), as `DEFINE_RING_TYPES` lays it out.
pub mod sring {
    /// `RING_IDX req_prod`: requests produced by the frontend.
    pub const REQ_PROD: usize = 0;
    /// `RING_IDX req_event`: the backend wants a notification when
    /// `req_prod` passes this.
    pub const REQ_EVENT: usize = 4;
    /// `RING_IDX rsp_prod`: responses produced by the backend.
    pub const RSP_PROD: usize = 8;
    /// `RING_IDX rsp_event`: the frontend wants a notification when
    /// `rsp_prod` passes this.
    pub const RSP_EVENT: usize = 12;
    /// `pvt`: four private bytes (netif smartpoll, tapif msg).
    pub const PVT: usize = 16;
    /// Length of `pvt.pvt_pad`.
    pub const PVT_LEN: usize = 4;
    /// `__pad[44]`.
    pub const PAD: usize = 20;
    /// Length of `__pad`.
    pub const PAD_LEN: usize = 44;
    /// `ring[]`: offset of the first entry.
    pub const RING: usize = 64;
}

/// A ring the caller set up wrongly (caller misuse, not a peer fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// The region does not hold the header and at least one entry.
    #[error("ring region of {len} bytes is too small")]
    RegionTooSmall {
        /// Region length.
        len: usize,
    },
    /// More pages than [`MAX_RING_PAGES`].
    #[error("{pages} ring pages is more than the maximum of {MAX_RING_PAGES}")]
    TooManyPages {
        /// Requested page count.
        pages: usize,
    },
    /// An entry size of zero.
    #[error("ring entry size must be non-zero")]
    ZeroEntrySize,
    /// The region is not 8-byte aligned.
    #[error("ring region is not 8-byte aligned")]
    Misaligned,
}

/// A ring failure at run time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// Peer fault: the frontend's `req_prod` is more than a ring's worth
    /// ahead of the responses produced (`RING_REQUEST_PROD_OVERFLOW`).
    #[error("frontend produced bogus requests: req_prod {prod} - rsp_prod_pvt {rsp_prod_pvt} > ring size {size}")]
    RequestProducerOverflow {
        /// The `req_prod` read.
        prod: u32,
        /// Our private response producer.
        rsp_prod_pvt: u32,
        /// Ring size.
        size: u32,
    },
    /// Peer fault: the frontend moved `req_prod` behind requests we already
    /// consumed.
    #[error("frontend moved req_prod backwards: req_prod {prod} behind req_cons {cons}")]
    RequestProducerRewound {
        /// The `req_prod` read.
        prod: u32,
        /// Our consumer index.
        cons: u32,
    },
    /// Peer fault: the backend's `rsp_prod` is more than a ring's worth
    /// ahead of our consumer (`RING_RESPONSE_PROD_OVERFLOW`), or behind it.
    #[error("backend produced bogus responses: rsp_prod {prod}, rsp_cons {cons}")]
    ResponseProducerOverflow {
        /// The `rsp_prod` read.
        prod: u32,
        /// Our consumer index.
        cons: u32,
    },
    /// Caller misuse: a response pushed with no consumed request left to
    /// answer.
    #[error("no consumed request is waiting for a response")]
    NoRequestOutstanding,
    /// Caller misuse: a request pushed on a full front ring.
    #[error("front ring is full")]
    Full,
    /// Caller misuse: an entry larger than the ring's entry size.
    #[error("entry of {len} bytes exceeds the ring entry size {entry_size}")]
    EntryTooLarge {
        /// Length given.
        len: usize,
        /// The ring's entry size.
        entry_size: usize,
    },
}

/// Geometry of a ring: entry size and number of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLayout {
    entry_size: usize,
    size: u32,
}

impl RingLayout {
    /// The layout of a ring with entries of `entry_size` bytes (the size of
    /// the C `union <name>_sring_entry`) in a region of `region_len` bytes:
    /// the largest power of two of entries that fits after the header
    /// (`__RING_SIZE`).
    ///
    /// # Errors
    ///
    /// [`LayoutError`] when not even one entry fits.
    pub fn new(region_len: usize, entry_size: usize) -> Result<Self, LayoutError> {
        if entry_size == 0 {
            return Err(LayoutError::ZeroEntrySize);
        }
        let fit = region_len.saturating_sub(sring::RING) / entry_size;
        let fit = u32::try_from(fit).unwrap_or(u32::MAX);
        if fit == 0 {
            return Err(LayoutError::RegionTooSmall { len: region_len });
        }
        // __RD32: round down to a power of two.
        let size = 1u32 << (31 - fit.leading_zeros());
        Ok(Self { entry_size, size })
    }

    /// Number of entries (`RING_SIZE`), a power of two.
    #[must_use]
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Entry size in bytes.
    #[must_use]
    pub fn entry_size(&self) -> usize {
        self.entry_size
    }

    /// Byte offset of the entry for free-running index `idx`.
    #[must_use]
    pub fn entry_offset(&self, idx: u32) -> usize {
        // `size` is a power of two, so the mask keeps the slot inside the
        // region that `new` measured.
        sring::RING + (idx & (self.size - 1)) as usize * self.entry_size
    }
}

/// A snapshot of the four shared indices, for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedIndices {
    /// `req_prod`.
    pub req_prod: u32,
    /// `req_event`.
    pub req_event: u32,
    /// `rsp_prod`.
    pub rsp_prod: u32,
    /// `rsp_event`.
    pub rsp_event: u32,
}

/// The shared page as seen by one end.
#[derive(Debug, Clone)]
struct Shared {
    mem: RingMemory,
    layout: RingLayout,
}

impl Shared {
    fn new(mem: RingMemory, entry_size: usize) -> Result<Self, LayoutError> {
        if mem.len() > MAX_RING_PAGES * PAGE_SIZE {
            return Err(LayoutError::TooManyPages {
                pages: mem.len().div_ceil(PAGE_SIZE),
            });
        }
        if (mem.as_ptr() as usize) % 8 != 0 {
            return Err(LayoutError::Misaligned);
        }
        let layout = RingLayout::new(mem.len(), entry_size)?;
        Ok(Self { mem, layout })
    }

    fn load(&self, offset: usize, order: Ordering) -> u32 {
        // The offsets are the header constants, inside any region `new`
        // accepted, and 4-aligned in an 8-aligned region: this cannot fail.
        self.mem
            .as_volatile_slice()
            .load::<u32>(offset, order)
            .unwrap_or(0)
    }

    fn store(&self, offset: usize, val: u32, order: Ordering) {
        let _ = self.mem.as_volatile_slice().store(val, offset, order);
    }

    fn read_entry(&self, idx: u32, out: &mut [u8]) {
        let n = out.len().min(self.layout.entry_size);
        let _ = self
            .mem
            .as_volatile_slice()
            .read_slice(&mut out[..n], self.layout.entry_offset(idx));
    }

    fn write_entry(&self, idx: u32, data: &[u8]) -> Result<(), RingError> {
        if data.len() > self.layout.entry_size {
            return Err(RingError::EntryTooLarge {
                len: data.len(),
                entry_size: self.layout.entry_size,
            });
        }
        let _ = self
            .mem
            .as_volatile_slice()
            .write_slice(data, self.layout.entry_offset(idx));
        Ok(())
    }

    fn indices(&self) -> SharedIndices {
        SharedIndices {
            req_prod: self.load(sring::REQ_PROD, Ordering::Acquire),
            req_event: self.load(sring::REQ_EVENT, Ordering::Acquire),
            rsp_prod: self.load(sring::RSP_PROD, Ordering::Acquire),
            rsp_event: self.load(sring::RSP_EVENT, Ordering::Acquire),
        }
    }
}

/// The backend's end of a ring (`struct <name>_back_ring`): consumes
/// requests, produces responses.
#[derive(Debug)]
pub struct BackRing {
    shared: Shared,
    rsp_prod_pvt: u32,
    req_cons: u32,
    /// The last `req_prod` read and checked.
    req_prod_seen: u32,
    /// The last `rsp_prod` we published (the C macro re-reads it from the
    /// shared page; our own copy cannot be scribbled on).
    rsp_prod_published: u32,
    broken: Option<RingError>,
}

impl BackRing {
    /// Attach to a ring the frontend initialised (`BACK_RING_ATTACH`), with
    /// both private indices at `start` (0 for a new ring, `BACK_RING_INIT`).
    ///
    /// # Errors
    ///
    /// [`LayoutError`] if the region cannot hold a ring of such entries.
    pub fn attach(mem: RingMemory, entry_size: usize, start: u32) -> Result<Self, LayoutError> {
        Ok(Self::at(Shared::new(mem, entry_size)?, start))
    }

    /// Both private indices at `start`.
    fn at(shared: Shared, start: u32) -> Self {
        Self {
            shared,
            rsp_prod_pvt: start,
            req_cons: start,
            req_prod_seen: start,
            rsp_prod_published: start,
            broken: None,
        }
    }

    /// Attach to a ring at the `rsp_prod` its shared page holds
    /// (`BACK_RING_ATTACH(r, s, size, s->rsp_prod)`).
    ///
    /// A ring the frontend has just initialised holds 0, so this is
    /// [`BackRing::attach`] at 0. A ring that a previous backend (a process
    /// killed and restarted) served resumes where that backend last
    /// published responses: the requests it consumed but never answered are
    /// consumed again, and the frontend, which never saw them complete,
    /// gets their answers. This is exact only if that backend published its
    /// responses in request order ([`order::ResponseOrder`]; otherwise a
    /// response may have overwritten the slot of a request still in flight)
    /// and published each response as soon as it wrote it (otherwise a
    /// written, unpublished response is read back as a request). The value
    /// is the frontend's to scribble on; a bogus one only makes [`BackRing::unconsumed_requests`] report the
    /// ring broken, as any bogus index does.
    ///
    /// # Errors
    ///
    /// [`LayoutError`] if the region cannot hold a ring of such entries.
    pub fn resume(mem: RingMemory, entry_size: usize) -> Result<Self, LayoutError> {
        let shared = Shared::new(mem, entry_size)?;
        let start = shared.load(sring::RSP_PROD, Ordering::Acquire);
        Ok(Self::at(shared, start))
    }

    /// Number of entries (`RING_SIZE`).
    #[must_use]
    pub fn size(&self) -> u32 {
        self.shared.layout.size
    }

    /// The ring geometry.
    #[must_use]
    pub fn layout(&self) -> RingLayout {
        self.shared.layout
    }

    /// Our request consumer index (`req_cons`).
    #[must_use]
    pub fn req_cons(&self) -> u32 {
        self.req_cons
    }

    /// Our private response producer index (`rsp_prod_pvt`).
    #[must_use]
    pub fn rsp_prod_pvt(&self) -> u32 {
        self.rsp_prod_pvt
    }

    /// Requests consumed and not yet answered.
    #[must_use]
    pub fn outstanding(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    /// The error that broke the ring, if any.
    #[must_use]
    pub fn broken(&self) -> Option<&RingError> {
        self.broken.as_ref()
    }

    /// The shared indices as they are now (diagnostics only).
    #[must_use]
    pub fn shared_indices(&self) -> SharedIndices {
        self.shared.indices()
    }

    /// Read `req_prod` once (then `xen_rmb()`), check it, and remember it.
    fn refresh(&mut self) -> Result<(), RingError> {
        if let Some(err) = &self.broken {
            return Err(err.clone());
        }
        let prod = self.shared.load(sring::REQ_PROD, Ordering::Acquire);
        let size = self.size();
        // Behind what we already consumed (in the wrapping sense): the
        // producer went backwards.
        if (prod.wrapping_sub(self.req_cons) as i32) < 0 {
            let err = RingError::RequestProducerRewound {
                prod,
                cons: self.req_cons,
            };
            self.broken = Some(err.clone());
            return Err(err);
        }
        // RING_REQUEST_PROD_OVERFLOW: more requests than slots not yet answered.
        if prod.wrapping_sub(self.rsp_prod_pvt) > size {
            let err = RingError::RequestProducerOverflow {
                prod,
                rsp_prod_pvt: self.rsp_prod_pvt,
                size,
            };
            self.broken = Some(err.clone());
            return Err(err);
        }
        self.req_prod_seen = prod;
        Ok(())
    }

    /// Requests the frontend produced that we have not consumed, bounded by
    /// the free response slots (`RING_HAS_UNCONSUMED_REQUESTS`). Reads
    /// `req_prod` afresh.
    ///
    /// # Errors
    ///
    /// A [`RingError`] when the frontend's index is bogus; the ring is then
    /// broken for good.
    pub fn unconsumed_requests(&mut self) -> Result<u32, RingError> {
        self.refresh()?;
        Ok(self.available())
    }

    fn available(&self) -> u32 {
        let req = self.req_prod_seen.wrapping_sub(self.req_cons);
        let rsp = self.size() - self.outstanding();
        req.min(rsp)
    }

    /// Copy the next request into `out` (up to the entry size) and consume
    /// it. Returns `Ok(false)` when there is none, or when every slot holds
    /// a request still waiting for its response (`RING_REQUEST_CONS_OVERFLOW`).
    ///
    /// The shared `req_prod` is re-read only when the requests seen at the
    /// last read are used up.
    ///
    /// # Errors
    ///
    /// A [`RingError`] when the frontend's index is bogus.
    pub fn next_request(&mut self, out: &mut [u8]) -> Result<bool, RingError> {
        if let Some(err) = &self.broken {
            return Err(err.clone());
        }
        if self.available() == 0 {
            self.refresh()?;
            if self.available() == 0 {
                return Ok(false);
            }
        }
        self.shared.read_entry(self.req_cons, out);
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(true)
    }

    /// Write a response into the next response slot (private until
    /// [`BackRing::push_responses_and_check_notify`]).
    ///
    /// # Errors
    ///
    /// [`RingError::NoRequestOutstanding`] if every consumed request has
    /// been answered, [`RingError::EntryTooLarge`] for an oversized entry.
    pub fn push_response(&mut self, rsp: &[u8]) -> Result<(), RingError> {
        if self.outstanding() == 0 {
            return Err(RingError::NoRequestOutstanding);
        }
        self.shared.write_entry(self.rsp_prod_pvt, rsp)?;
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publish the responses written so far and say whether the frontend
    /// must be notified (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    #[must_use = "the frontend must be notified when this returns true"]
    pub fn push_responses_and_check_notify(&mut self) -> bool {
        let old = self.rsp_prod_published;
        let new = self.rsp_prod_pvt;
        // xen_wmb(): the responses are visible before the new rsp_prod.
        self.shared.store(sring::RSP_PROD, new, Ordering::Release);
        self.rsp_prod_published = new;
        // xen_mb(): the frontend sees the new rsp_prod before we read
        // rsp_event, so one of us sees the other's update.
        fence(Ordering::SeqCst);
        let event = self.shared.load(sring::RSP_EVENT, Ordering::Relaxed);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Whether more requests arrived, re-arming `req_event` first when none
    /// did (`RING_FINAL_CHECK_FOR_REQUESTS`). When this returns `false`, the
    /// frontend will notify on its next request, so the backend may sleep.
    ///
    /// # Errors
    ///
    /// A [`RingError`] when the frontend's index is bogus.
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_requests()? > 0 {
            return Ok(true);
        }
        self.shared.store(
            sring::REQ_EVENT,
            self.req_cons.wrapping_add(1),
            Ordering::Relaxed,
        );
        // xen_mb(): req_event is visible before we re-read req_prod.
        fence(Ordering::SeqCst);
        Ok(self.unconsumed_requests()? > 0)
    }
}

/// The frontend's end of a ring (`struct <name>_front_ring`): produces
/// requests, consumes responses. For tests, simulators and frontends.
#[derive(Debug)]
pub struct FrontRing {
    shared: Shared,
    req_prod_pvt: u32,
    rsp_cons: u32,
    rsp_prod_seen: u32,
    req_prod_published: u32,
}

impl FrontRing {
    /// Initialise the shared header and attach (`XEN_FRONT_RING_INIT`:
    /// `SHARED_RING_INIT` then `FRONT_RING_INIT`).
    ///
    /// # Errors
    ///
    /// [`LayoutError`] if the region cannot hold a ring of such entries.
    pub fn init(mem: RingMemory, entry_size: usize) -> Result<Self, LayoutError> {
        let shared = Shared::new(mem, entry_size)?;
        shared.store(sring::REQ_PROD, 0, Ordering::Relaxed);
        shared.store(sring::RSP_PROD, 0, Ordering::Relaxed);
        shared.store(sring::REQ_EVENT, 1, Ordering::Relaxed);
        shared.store(sring::RSP_EVENT, 1, Ordering::Relaxed);
        let _ = shared
            .mem
            .as_volatile_slice()
            .write_slice(&[0u8; sring::RING - sring::PVT], sring::PVT);
        fence(Ordering::SeqCst);
        Ok(Self {
            shared,
            req_prod_pvt: 0,
            rsp_cons: 0,
            rsp_prod_seen: 0,
            req_prod_published: 0,
        })
    }

    /// Number of entries (`RING_SIZE`).
    #[must_use]
    pub fn size(&self) -> u32 {
        self.shared.layout.size
    }

    /// Slots free for new requests (`RING_FREE_REQUESTS`).
    #[must_use]
    pub fn free_requests(&self) -> u32 {
        self.size()
            .wrapping_sub(self.req_prod_pvt.wrapping_sub(self.rsp_cons))
    }

    /// Our private request producer (`req_prod_pvt`).
    #[must_use]
    pub fn req_prod_pvt(&self) -> u32 {
        self.req_prod_pvt
    }

    /// The shared indices as they are now (diagnostics only).
    #[must_use]
    pub fn shared_indices(&self) -> SharedIndices {
        self.shared.indices()
    }

    /// Write a request into the next free slot (private until
    /// [`FrontRing::push_requests_and_check_notify`]).
    ///
    /// # Errors
    ///
    /// [`RingError::Full`] (`RING_FULL`), [`RingError::EntryTooLarge`].
    pub fn push_request(&mut self, req: &[u8]) -> Result<(), RingError> {
        if self.free_requests() == 0 {
            return Err(RingError::Full);
        }
        self.shared.write_entry(self.req_prod_pvt, req)?;
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publish the requests written so far and say whether the backend must
    /// be notified (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`).
    #[must_use = "the backend must be notified when this returns true"]
    pub fn push_requests_and_check_notify(&mut self) -> bool {
        let old = self.req_prod_published;
        let new = self.req_prod_pvt;
        // xen_wmb(): requests before the index.
        self.shared.store(sring::REQ_PROD, new, Ordering::Release);
        self.req_prod_published = new;
        // xen_mb(): index before reading req_event.
        fence(Ordering::SeqCst);
        let event = self.shared.load(sring::REQ_EVENT, Ordering::Relaxed);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    fn refresh(&mut self) -> Result<(), RingError> {
        let prod = self.shared.load(sring::RSP_PROD, Ordering::Acquire);
        // RING_RESPONSE_PROD_OVERFLOW, and no more responses than requests.
        let outstanding = self.req_prod_pvt.wrapping_sub(self.rsp_cons);
        if prod.wrapping_sub(self.rsp_cons) > outstanding {
            return Err(RingError::ResponseProducerOverflow {
                prod,
                cons: self.rsp_cons,
            });
        }
        self.rsp_prod_seen = prod;
        Ok(())
    }

    /// Responses produced and not yet consumed (`RING_HAS_UNCONSUMED_RESPONSES`).
    ///
    /// # Errors
    ///
    /// [`RingError::ResponseProducerOverflow`] for a bogus backend index.
    pub fn unconsumed_responses(&mut self) -> Result<u32, RingError> {
        self.refresh()?;
        Ok(self.rsp_prod_seen.wrapping_sub(self.rsp_cons))
    }

    /// Copy the next response into `out` and consume it; `Ok(false)` if
    /// there is none.
    ///
    /// # Errors
    ///
    /// [`RingError::ResponseProducerOverflow`] for a bogus backend index.
    pub fn next_response(&mut self, out: &mut [u8]) -> Result<bool, RingError> {
        if self.rsp_prod_seen == self.rsp_cons {
            self.refresh()?;
            if self.rsp_prod_seen == self.rsp_cons {
                return Ok(false);
            }
        }
        self.shared.read_entry(self.rsp_cons, out);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(true)
    }

    /// Whether more responses arrived, re-arming `rsp_event` first when none
    /// did (`RING_FINAL_CHECK_FOR_RESPONSES`).
    ///
    /// # Errors
    ///
    /// [`RingError::ResponseProducerOverflow`] for a bogus backend index.
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_responses()? > 0 {
            return Ok(true);
        }
        self.shared.store(
            sring::RSP_EVENT,
            self.rsp_cons.wrapping_add(1),
            Ordering::Relaxed,
        );
        fence(Ordering::SeqCst);
        Ok(self.unconsumed_responses()? > 0)
    }
}

#[cfg(test)]
mod tests;
