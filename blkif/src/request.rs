//! Typed blkif requests and responses, decoded from and encoded to ring
//! slots in any of the three ABIs.
//!
//! Decoding is the first of two layers: it checks everything a request says
//! about itself (operation, segment counts, `first_sect <= last_sect < 8`),
//! never panics, and on failure still returns the `id` and operation so the
//! backend can answer with `BLKIF_RSP_ERROR`. Checks against the disk (size,
//! block size, read-only) belong to the backend ([`crate::backend`]).

use std::fmt;

use zerocopy::little_endian::{I16, U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

use crate::wire::{
    RawDiscard32, RawDiscard64, RawIndirect32, RawIndirect64, RawRequest32, RawRequest64,
    RawResponse32, RawResponse64, RawSegment, MAX_INDIRECT_PAGES_PER_REQUEST,
    MAX_SEGMENTS_PER_REQUEST, SECTORS_PER_PAGE, SEGMENTS_PER_INDIRECT_PAGE,
};

/// A blkif operation code (`BLKIF_OP_*`); unknown values survive decoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operation(pub u8);

impl Operation {
    /// `BLKIF_OP_READ`.
    pub const READ: Self = Self(0);
    /// `BLKIF_OP_WRITE`.
    pub const WRITE: Self = Self(1);
    /// `BLKIF_OP_WRITE_BARRIER`.
    pub const WRITE_BARRIER: Self = Self(2);
    /// `BLKIF_OP_FLUSH_DISKCACHE`.
    pub const FLUSH_DISKCACHE: Self = Self(3);
    /// `BLKIF_OP_RESERVED_1`.
    pub const RESERVED_1: Self = Self(4);
    /// `BLKIF_OP_DISCARD`.
    pub const DISCARD: Self = Self(5);
    /// `BLKIF_OP_INDIRECT`.
    pub const INDIRECT: Self = Self(6);
    /// `BLKIF_OP_EXTRA_FLAG`: the next slot is an extra request (SCSI
    /// pass-through, see the crate docs).
    pub const EXTRA_FLAG: u8 = 0x80;

    /// The operation without the extra flag.
    #[must_use]
    pub fn base(self) -> Self {
        Self(self.0 & !Self::EXTRA_FLAG)
    }

    /// Whether the extra flag is set.
    #[must_use]
    pub fn has_extra(self) -> bool {
        self.0 & Self::EXTRA_FLAG != 0
    }
}

impl fmt::Debug for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.base() {
            Self::READ => "READ",
            Self::WRITE => "WRITE",
            Self::WRITE_BARRIER => "WRITE_BARRIER",
            Self::FLUSH_DISKCACHE => "FLUSH_DISKCACHE",
            Self::DISCARD => "DISCARD",
            Self::INDIRECT => "INDIRECT",
            _ => "UNKNOWN",
        };
        write!(f, "{name}({:#04x})", self.0)
    }
}

/// A response status (`BLKIF_RSP_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub i16);

impl Status {
    /// `BLKIF_RSP_OKAY`.
    pub const OKAY: Self = Self(0);
    /// `BLKIF_RSP_ERROR`.
    pub const ERROR: Self = Self(-1);
    /// `BLKIF_RSP_EOPNOTSUPP`.
    pub const EOPNOTSUPP: Self = Self(-2);
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OKAY => f.write_str("OKAY"),
            Self::ERROR => f.write_str("ERROR"),
            Self::EOPNOTSUPP => f.write_str("EOPNOTSUPP"),
            Self(v) => write!(f, "Status({v})"),
        }
    }
}

/// The frontend's ABI, from its `protocol` xenstore node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Abi {
    /// `x86_32-abi`: `uint64_t` aligned to 4.
    X86_32,
    /// `x86_64-abi` (and every other 64-bit ABI): `uint64_t` aligned to 8.
    X86_64,
}

/// The `protocol` node named an ABI we do not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown blkif protocol {0:?}")]
pub struct UnknownProtocol(pub String);

impl Abi {
    /// The backend's own ABI (what a frontend without `protocol` uses).
    #[must_use]
    pub const fn native() -> Self {
        if cfg!(target_arch = "x86") {
            Abi::X86_32
        } else {
            Abi::X86_64
        }
    }

    /// The ABI a frontend's `protocol` node selects (`XEN_IO_PROTO_ABI_*`
    /// of `io/protocols.h`); `None` or empty is the native ABI.
    ///
    /// # Errors
    ///
    /// [`UnknownProtocol`] for any other string (the backend then refuses
    /// to connect).
    pub fn from_protocol(protocol: Option<&str>) -> Result<Self, UnknownProtocol> {
        match protocol {
            None | Some("") => Ok(Self::native()),
            Some("x86_32-abi") => Ok(Abi::X86_32),
            Some("x86_64-abi") => Ok(Abi::X86_64),
            Some("arm-abi") if !cfg!(target_arch = "x86") => Ok(Abi::X86_64),
            Some(other) => Err(UnknownProtocol(other.to_owned())),
        }
    }

    /// `sizeof(struct blkif_request)`.
    #[must_use]
    pub const fn request_size(self) -> usize {
        match self {
            Abi::X86_32 => 108,
            Abi::X86_64 => 112,
        }
    }

    /// `sizeof(struct blkif_response)`.
    #[must_use]
    pub const fn response_size(self) -> usize {
        match self {
            Abi::X86_32 => 12,
            Abi::X86_64 => 16,
        }
    }

    /// `sizeof(union blkif_sring_entry)`: the ring entry size.
    #[must_use]
    pub const fn entry_size(self) -> usize {
        self.request_size()
    }
}

/// One data segment: a granted page and the sectors of it to transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Segment {
    /// Grant reference of the page.
    pub gref: u32,
    /// First 512-byte sector of the page to transfer (inclusive).
    pub first_sect: u8,
    /// Last 512-byte sector of the page to transfer (inclusive).
    pub last_sect: u8,
}

impl Segment {
    fn from_raw(raw: &RawSegment) -> Self {
        Self {
            gref: raw.gref.get(),
            first_sect: raw.first_sect,
            last_sect: raw.last_sect,
        }
    }

    fn to_raw(self) -> RawSegment {
        RawSegment {
            gref: U32::new(self.gref),
            first_sect: self.first_sect,
            last_sect: self.last_sect,
            _pad: [0; 2],
        }
    }

    /// Check `first_sect <= last_sect < 8` (io/blkif.h: "first_sect: first
    /// sector in frame to transfer (inclusive)", the frame being one page).
    ///
    /// # Errors
    ///
    /// [`RequestError::BadSegment`].
    pub fn validate(&self, index: usize) -> Result<(), RequestError> {
        if self.first_sect > self.last_sect || self.last_sect >= SECTORS_PER_PAGE {
            return Err(RequestError::BadSegment {
                index,
                first_sect: self.first_sect,
                last_sect: self.last_sect,
            });
        }
        Ok(())
    }

    /// Number of sectors (valid segments only).
    #[must_use]
    pub fn sectors(&self) -> u64 {
        u64::from(self.last_sect.saturating_sub(self.first_sect)) + 1
    }

    /// Byte offset in the page.
    #[must_use]
    pub fn byte_offset(&self) -> usize {
        usize::from(self.first_sect) * 512
    }

    /// Byte length.
    #[must_use]
    pub fn byte_len(&self) -> usize {
        // At most 8 sectors of 512 bytes: no truncation.
        usize::from(self.last_sect.saturating_sub(self.first_sect) + 1) * 512
    }
}

/// The direct segments of a request (up to 11), held inline.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentList {
    segs: [Segment; MAX_SEGMENTS_PER_REQUEST],
    len: u8,
}

impl fmt::Debug for SegmentList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl SegmentList {
    /// A list of the given segments.
    ///
    /// # Errors
    ///
    /// [`RequestError::TooManySegments`] past 11.
    pub fn new(segs: &[Segment]) -> Result<Self, RequestError> {
        if segs.len() > MAX_SEGMENTS_PER_REQUEST {
            return Err(RequestError::TooManySegments {
                count: segs.len(),
                max: MAX_SEGMENTS_PER_REQUEST,
            });
        }
        let mut list = Self::default();
        list.segs[..segs.len()].copy_from_slice(segs);
        list.len = u8::try_from(segs.len()).unwrap_or(u8::MAX);
        Ok(list)
    }

    /// The segments.
    #[must_use]
    pub fn as_slice(&self) -> &[Segment] {
        &self.segs[..usize::from(self.len)]
    }
}

/// The kind of a read/write-form request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RwKind {
    /// `BLKIF_OP_READ`.
    Read,
    /// `BLKIF_OP_WRITE`.
    Write,
    /// `BLKIF_OP_WRITE_BARRIER`: earlier requests complete before it, later
    /// ones start after it; may carry write data.
    WriteBarrier,
    /// `BLKIF_OP_FLUSH_DISKCACHE`: flush the write cache; may carry write
    /// data written after the flush (Linux blkfront's REQ_PREFLUSH|REQ_FUA).
    Flush,
}

impl RwKind {
    /// Its operation code.
    #[must_use]
    pub fn operation(self) -> Operation {
        match self {
            RwKind::Read => Operation::READ,
            RwKind::Write => Operation::WRITE,
            RwKind::WriteBarrier => Operation::WRITE_BARRIER,
            RwKind::Flush => Operation::FLUSH_DISKCACHE,
        }
    }

    /// Whether it moves data from the guest to the disk.
    #[must_use]
    pub fn writes(self) -> bool {
        !matches!(self, RwKind::Read)
    }
}

/// A decoded, self-consistent blkif request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `struct blkif_request`: read, write, barrier or flush.
    ReadWrite {
        /// Which of the four.
        kind: RwKind,
        /// `id`, echoed in the response.
        id: u64,
        /// `handle`.
        handle: u16,
        /// Start sector (512-byte units).
        sector: u64,
        /// The data segments (may be empty for barrier and flush only).
        segments: SegmentList,
        /// `BLKIF_OP_EXTRA_FLAG` was set: an extra slot follows.
        extra: bool,
    },
    /// `struct blkif_request_discard`.
    Discard {
        /// `id`.
        id: u64,
        /// `handle`.
        handle: u16,
        /// Start sector.
        sector: u64,
        /// Number of sectors.
        nr_sectors: u64,
        /// `BLKIF_DISCARD_SECURE`.
        secure: bool,
    },
    /// `struct blkif_request_indirect`: segments live in granted pages.
    Indirect {
        /// `indirect_op`: [`RwKind::Read`] or [`RwKind::Write`].
        kind: RwKind,
        /// `id`.
        id: u64,
        /// `handle`.
        handle: u16,
        /// Start sector.
        sector: u64,
        /// Number of segments, 1 to the advertised maximum.
        nr_segments: u16,
        /// Grant references of the segment pages; the first
        /// [`Request::indirect_pages`] are used.
        indirect_grefs: [u32; MAX_INDIRECT_PAGES_PER_REQUEST],
    },
}

impl Request {
    /// The request's `id`.
    #[must_use]
    pub fn id(&self) -> u64 {
        match *self {
            Request::ReadWrite { id, .. }
            | Request::Discard { id, .. }
            | Request::Indirect { id, .. } => id,
        }
    }

    /// The operation code to echo in the response: for an indirect
    /// request, its `indirect_op` (Linux's blkback answers with it, and
    /// blkfront rejects "response has wrong operation" otherwise).
    #[must_use]
    pub fn operation(&self) -> Operation {
        match *self {
            Request::ReadWrite { kind, extra, .. } => {
                let op = kind.operation();
                if extra {
                    Operation(op.0 | Operation::EXTRA_FLAG)
                } else {
                    op
                }
            }
            Request::Discard { .. } => Operation::DISCARD,
            Request::Indirect { kind, .. } => kind.operation(),
        }
    }

    /// Number of indirect pages an indirect request uses (0 otherwise).
    #[must_use]
    pub fn indirect_pages(&self) -> usize {
        match *self {
            Request::Indirect { nr_segments, .. } => {
                usize::from(nr_segments).div_ceil(SEGMENTS_PER_INDIRECT_PAGE)
            }
            _ => 0,
        }
    }

    /// Encode into a ring slot (for frontends, tests and fuzzing). `out`
    /// must be at least [`Abi::request_size`] bytes; the rest of the slot
    /// is zeroed.
    ///
    /// # Panics
    ///
    /// If `out` is shorter than the ABI's request size (caller misuse).
    pub fn encode(&self, abi: Abi, out: &mut [u8]) {
        let out = &mut out[..abi.request_size()];
        out.fill(0);
        match *self {
            Request::ReadWrite {
                id,
                handle,
                sector,
                segments,
                ..
            } => {
                let mut seg = [RawSegment::default(); MAX_SEGMENTS_PER_REQUEST];
                for (raw, s) in seg.iter_mut().zip(segments.as_slice()) {
                    *raw = s.to_raw();
                }
                let op = self.operation().0;
                let nr = segments.len;
                match abi {
                    Abi::X86_64 => RawRequest64 {
                        operation: op,
                        nr_segments: nr,
                        handle: U16::new(handle),
                        _pad: [0; 4],
                        id: U64::new(id),
                        sector_number: U64::new(sector),
                        seg,
                    }
                    .write_to_prefix(out)
                    .is_ok(),
                    Abi::X86_32 => RawRequest32 {
                        operation: op,
                        nr_segments: nr,
                        handle: U16::new(handle),
                        id: U64::new(id),
                        sector_number: U64::new(sector),
                        seg,
                    }
                    .write_to_prefix(out)
                    .is_ok(),
                };
            }
            Request::Discard {
                id,
                handle,
                sector,
                nr_sectors,
                secure,
            } => {
                let flag = u8::from(secure);
                match abi {
                    Abi::X86_64 => RawDiscard64 {
                        operation: Operation::DISCARD.0,
                        flag,
                        handle: U16::new(handle),
                        _pad: [0; 4],
                        id: U64::new(id),
                        sector_number: U64::new(sector),
                        nr_sectors: U64::new(nr_sectors),
                    }
                    .write_to_prefix(out)
                    .is_ok(),
                    Abi::X86_32 => RawDiscard32 {
                        operation: Operation::DISCARD.0,
                        flag,
                        handle: U16::new(handle),
                        id: U64::new(id),
                        sector_number: U64::new(sector),
                        nr_sectors: U64::new(nr_sectors),
                    }
                    .write_to_prefix(out)
                    .is_ok(),
                };
            }
            Request::Indirect {
                kind,
                id,
                handle,
                sector,
                nr_segments,
                indirect_grefs,
            } => {
                let grefs = indirect_grefs.map(U32::new);
                match abi {
                    Abi::X86_64 => RawIndirect64 {
                        operation: Operation::INDIRECT.0,
                        indirect_op: kind.operation().0,
                        nr_segments: U16::new(nr_segments),
                        _pad: [0; 4],
                        id: U64::new(id),
                        sector_number: U64::new(sector),
                        handle: U16::new(handle),
                        _pad1: [0; 2],
                        indirect_grefs: grefs,
                        _pad2: [0; 4],
                    }
                    .write_to_prefix(out)
                    .is_ok(),
                    Abi::X86_32 => RawIndirect32 {
                        operation: Operation::INDIRECT.0,
                        indirect_op: kind.operation().0,
                        nr_segments: U16::new(nr_segments),
                        id: U64::new(id),
                        sector_number: U64::new(sector),
                        handle: U16::new(handle),
                        _pad1: [0; 2],
                        indirect_grefs: grefs,
                        pad: U64::new(0),
                    }
                    .write_to_prefix(out)
                    .is_ok(),
                };
            }
        }
    }
}

/// What is wrong with a request (a frontend fault unless noted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The slot is shorter than a request (caller misuse).
    #[error("ring slot of {0} bytes is shorter than a request")]
    ShortSlot(usize),
    /// An operation code we do not know, or reserved.
    #[error("unknown operation {0:#04x}")]
    UnknownOperation(u8),
    /// The extra flag on an operation that cannot carry it, or without
    /// `feature-extra-request` negotiated.
    #[error("extra request not negotiated or not allowed on operation {0:#04x}")]
    ExtraNotAllowed(u8),
    /// A read or write without segments.
    #[error("read/write request without segments")]
    NoSegments,
    /// More segments than the form allows.
    #[error("{count} segments exceed the maximum of {max}")]
    TooManySegments {
        /// Segments requested.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// A segment with `first_sect > last_sect` or `last_sect >= 8`.
    #[error("segment {index}: first_sect {first_sect} / last_sect {last_sect} invalid")]
    BadSegment {
        /// Segment index.
        index: usize,
        /// `first_sect`.
        first_sect: u8,
        /// `last_sect`.
        last_sect: u8,
    },
    /// `indirect_op` is not READ or WRITE.
    #[error("indirect_op {0:#04x} is not READ or WRITE")]
    BadIndirectOp(u8),
    /// The extra slot is malformed.
    #[error("bad extra request: {0}")]
    BadExtra(&'static str),
    /// The request reaches past the end of the disk.
    #[error("sectors {sector}+{count} past the end of the disk ({total} sectors)")]
    OutOfRange {
        /// First sector.
        sector: u64,
        /// Count.
        count: u64,
        /// Disk size in sectors.
        total: u64,
    },
    /// Start or length not a multiple of the backstore's block size.
    #[error("request not aligned to the {0}-byte logical block size")]
    Misaligned(u32),
    /// A write-class request on a read-only device.
    #[error("write to a read-only device")]
    ReadOnly,
    /// The backstore cannot do it (answered `BLKIF_RSP_EOPNOTSUPP`).
    #[error("operation not supported by the device")]
    Unsupported,
    /// The grant layer refused a reference.
    #[error("grant reference {0} refused")]
    GrantRefused(u32),
    /// The backstore failed the I/O.
    #[error("I/O error: {0}")]
    Io(String),
}

impl RequestError {
    /// The response status the error is answered with.
    #[must_use]
    pub fn status(&self) -> Status {
        match self {
            RequestError::Unsupported => Status::EOPNOTSUPP,
            _ => Status::ERROR,
        }
    }
}

/// A request that failed to decode, with what is needed to answer it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request id {id:#x} op {operation:?}: {error}")]
pub struct BadRequest {
    /// The `id` to echo.
    pub id: u64,
    /// The operation to echo.
    pub operation: Operation,
    /// Why it is refused.
    pub error: RequestError,
}

/// Limits the backend advertised, which decoding enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// `feature-max-indirect-segments`; 0 means indirect requests were not
    /// advertised and are refused.
    pub max_indirect_segments: u16,
    /// `feature-extra-request` was negotiated.
    pub extra_request: bool,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_indirect_segments: 256,
            extra_request: false,
        }
    }
}

/// Most indirect segments any request can name (8 pages of 512).
#[allow(clippy::cast_possible_truncation)] // 8 * 512 fits
pub const MAX_INDIRECT_SEGMENTS: u16 =
    (MAX_INDIRECT_PAGES_PER_REQUEST * SEGMENTS_PER_INDIRECT_PAGE) as u16;

/// Decode a request slot copied out of the ring.
///
/// # Errors
///
/// [`BadRequest`] naming the id, operation and reason.
pub fn decode_request(abi: Abi, slot: &[u8], limits: DecodeLimits) -> Result<Request, BadRequest> {
    let operation = Operation(slot.first().copied().unwrap_or(0));
    // `id` sits at 8 (x86_64) or 4 (x86_32) in every form.
    let id_at = match abi {
        Abi::X86_64 => 8,
        Abi::X86_32 => 4,
    };
    let id = slot
        .get(id_at..id_at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes);
    let fail = |error| BadRequest {
        id,
        operation,
        error,
    };
    if slot.len() < abi.request_size() {
        return Err(fail(RequestError::ShortSlot(slot.len())));
    }
    if operation.has_extra() {
        if !limits.extra_request {
            return Err(fail(RequestError::ExtraNotAllowed(operation.0)));
        }
        if !matches!(operation.base(), Operation::READ | Operation::WRITE) {
            return Err(fail(RequestError::ExtraNotAllowed(operation.0)));
        }
    }
    match operation.base() {
        Operation::READ
        | Operation::WRITE
        | Operation::WRITE_BARRIER
        | Operation::FLUSH_DISKCACHE => {
            let (nr, handle, sector, raw_segs) = match abi {
                Abi::X86_64 => {
                    let r = RawRequest64::read_from_prefix(slot)
                        .map_err(|_| fail(RequestError::ShortSlot(slot.len())))?
                        .0;
                    (r.nr_segments, r.handle.get(), r.sector_number.get(), r.seg)
                }
                Abi::X86_32 => {
                    let r = RawRequest32::read_from_prefix(slot)
                        .map_err(|_| fail(RequestError::ShortSlot(slot.len())))?
                        .0;
                    (r.nr_segments, r.handle.get(), r.sector_number.get(), r.seg)
                }
            };
            let kind = match operation.base() {
                Operation::READ => RwKind::Read,
                Operation::WRITE => RwKind::Write,
                Operation::WRITE_BARRIER => RwKind::WriteBarrier,
                _ => RwKind::Flush,
            };
            let nr = usize::from(nr);
            if nr > MAX_SEGMENTS_PER_REQUEST {
                return Err(fail(RequestError::TooManySegments {
                    count: nr,
                    max: MAX_SEGMENTS_PER_REQUEST,
                }));
            }
            // Linux blkback: "nseg == 0 && operation != flush" is an error;
            // the extra request carries its own data description.
            if nr == 0 && matches!(kind, RwKind::Read | RwKind::Write) && !operation.has_extra() {
                return Err(fail(RequestError::NoSegments));
            }
            let mut segs = [Segment::default(); MAX_SEGMENTS_PER_REQUEST];
            for (i, raw) in raw_segs[..nr].iter().enumerate() {
                segs[i] = Segment::from_raw(raw);
                segs[i].validate(i).map_err(fail)?;
            }
            let segments = SegmentList::new(&segs[..nr]).map_err(fail)?;
            Ok(Request::ReadWrite {
                kind,
                id,
                handle,
                sector,
                segments,
                extra: operation.has_extra(),
            })
        }
        Operation::DISCARD => {
            let (flag, handle, sector, nr_sectors) = match abi {
                Abi::X86_64 => {
                    let r = RawDiscard64::read_from_prefix(slot)
                        .map_err(|_| fail(RequestError::ShortSlot(slot.len())))?
                        .0;
                    (
                        r.flag,
                        r.handle.get(),
                        r.sector_number.get(),
                        r.nr_sectors.get(),
                    )
                }
                Abi::X86_32 => {
                    let r = RawDiscard32::read_from_prefix(slot)
                        .map_err(|_| fail(RequestError::ShortSlot(slot.len())))?
                        .0;
                    (
                        r.flag,
                        r.handle.get(),
                        r.sector_number.get(),
                        r.nr_sectors.get(),
                    )
                }
            };
            Ok(Request::Discard {
                id,
                handle,
                sector,
                nr_sectors,
                secure: flag & 1 != 0,
            })
        }
        Operation::INDIRECT => {
            let (indirect_op, nr, handle, sector, grefs) = match abi {
                Abi::X86_64 => {
                    let r = RawIndirect64::read_from_prefix(slot)
                        .map_err(|_| fail(RequestError::ShortSlot(slot.len())))?
                        .0;
                    (
                        r.indirect_op,
                        r.nr_segments.get(),
                        r.handle.get(),
                        r.sector_number.get(),
                        r.indirect_grefs,
                    )
                }
                Abi::X86_32 => {
                    // The i386 struct is 64 bytes but only its first 56 are
                    // fields; read what the slot has.
                    let r = RawIndirect32::read_from_prefix(slot)
                        .map_err(|_| fail(RequestError::ShortSlot(slot.len())))?
                        .0;
                    (
                        r.indirect_op,
                        r.nr_segments.get(),
                        r.handle.get(),
                        r.sector_number.get(),
                        r.indirect_grefs,
                    )
                }
            };
            if limits.max_indirect_segments == 0 {
                return Err(fail(RequestError::UnknownOperation(operation.0)));
            }
            let kind = match Operation(indirect_op) {
                Operation::READ => RwKind::Read,
                Operation::WRITE => RwKind::Write,
                _ => return Err(fail(RequestError::BadIndirectOp(indirect_op))),
            };
            let max = limits.max_indirect_segments.min(MAX_INDIRECT_SEGMENTS);
            if nr == 0 {
                return Err(fail(RequestError::NoSegments));
            }
            if nr > max {
                return Err(fail(RequestError::TooManySegments {
                    count: usize::from(nr),
                    max: usize::from(max),
                }));
            }
            Ok(Request::Indirect {
                kind,
                id,
                handle,
                sector,
                nr_segments: nr,
                indirect_grefs: grefs.map(|g| g.get()),
            })
        }
        _ => Err(fail(RequestError::UnknownOperation(operation.0))),
    }
}

/// Decode the segments of an indirect request from its indirect pages
/// (copied out of the guest, `pages.len()` a multiple of 4096), validating
/// each one.
///
/// # Errors
///
/// [`RequestError::BadSegment`], or [`RequestError::TooManySegments`] when
/// the pages hold fewer than `nr_segments` entries.
pub fn decode_indirect_segments(
    pages: &[u8],
    nr_segments: u16,
    out: &mut Vec<Segment>,
) -> Result<(), RequestError> {
    let nr = usize::from(nr_segments);
    let need = nr * 8;
    if pages.len() < need {
        return Err(RequestError::TooManySegments {
            count: nr,
            max: pages.len() / 8,
        });
    }
    out.clear();
    out.reserve(nr);
    for (i, chunk) in pages[..need].chunks_exact(8).enumerate() {
        let raw =
            RawSegment::read_from_bytes(chunk).map_err(|_| RequestError::ShortSlot(chunk.len()))?;
        let seg = Segment::from_raw(&raw);
        seg.validate(i)?;
        out.push(seg);
    }
    Ok(())
}

/// Encode indirect segments into page bytes (for frontends and tests).
#[must_use]
pub fn encode_indirect_segments(segs: &[Segment]) -> Vec<u8> {
    let mut out = Vec::with_capacity(segs.len() * 8);
    for s in segs {
        out.extend_from_slice(s.to_raw().as_bytes());
    }
    out
}

/// A blkif response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The request's `id`.
    pub id: u64,
    /// The request's operation.
    pub operation: Operation,
    /// Its status.
    pub status: Status,
}

impl Response {
    /// Encode into `out` ([`Abi::response_size`] bytes); returns the length.
    ///
    /// # Panics
    ///
    /// If `out` is shorter than the ABI's response size (caller misuse).
    pub fn encode(&self, abi: Abi, out: &mut [u8]) -> usize {
        let n = abi.response_size();
        let out = &mut out[..n];
        match abi {
            Abi::X86_64 => RawResponse64 {
                id: U64::new(self.id),
                operation: self.operation.0,
                _pad: 0,
                status: I16::new(self.status.0),
                _pad2: [0; 4],
            }
            .write_to(out)
            .is_ok(),
            Abi::X86_32 => RawResponse32 {
                id: U64::new(self.id),
                operation: self.operation.0,
                _pad: 0,
                status: I16::new(self.status.0),
            }
            .write_to(out)
            .is_ok(),
        };
        n
    }

    /// Decode a response slot (frontend side).
    #[must_use]
    pub fn decode(abi: Abi, slot: &[u8]) -> Option<Self> {
        match abi {
            Abi::X86_64 => RawResponse64::read_from_prefix(slot)
                .ok()
                .map(|(r, _)| Self {
                    id: r.id.get(),
                    operation: Operation(r.operation),
                    status: Status(r.status.get()),
                }),
            Abi::X86_32 => RawResponse32::read_from_prefix(slot)
                .ok()
                .map(|(r, _)| Self {
                    id: r.id.get(),
                    operation: Operation(r.operation),
                    status: Status(r.status.get()),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_segment() -> impl Strategy<Value = Segment> {
        (any::<u32>(), 0u8..8).prop_flat_map(|(gref, first)| {
            (first..8).prop_map(move |last| Segment {
                gref,
                first_sect: first,
                last_sect: last,
            })
        })
    }

    fn arb_request() -> impl Strategy<Value = Request> {
        let rw = (
            prop_oneof![
                Just(RwKind::Read),
                Just(RwKind::Write),
                Just(RwKind::WriteBarrier),
                Just(RwKind::Flush)
            ],
            any::<u64>(),
            any::<u16>(),
            any::<u64>(),
            proptest::collection::vec(arb_segment(), 1..=11),
        )
            .prop_map(|(kind, id, handle, sector, segs)| Request::ReadWrite {
                kind,
                id,
                handle,
                sector,
                segments: SegmentList::new(&segs).unwrap(),
                extra: false,
            });
        let discard = (
            any::<u64>(),
            any::<u16>(),
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
        )
            .prop_map(
                |(id, handle, sector, nr_sectors, secure)| Request::Discard {
                    id,
                    handle,
                    sector,
                    nr_sectors,
                    secure,
                },
            );
        let indirect = (
            any::<bool>(),
            any::<u64>(),
            any::<u16>(),
            any::<u64>(),
            1u16..=MAX_INDIRECT_SEGMENTS,
            any::<[u32; 8]>(),
        )
            .prop_map(|(r, id, handle, sector, nr_segments, indirect_grefs)| {
                Request::Indirect {
                    kind: if r { RwKind::Read } else { RwKind::Write },
                    id,
                    handle,
                    sector,
                    nr_segments,
                    indirect_grefs,
                }
            });
        prop_oneof![rw, discard, indirect]
    }

    const ALL: DecodeLimits = DecodeLimits {
        max_indirect_segments: MAX_INDIRECT_SEGMENTS,
        extra_request: true,
    };

    proptest! {
        #[test]
        fn accepts_encode_decode_round_trip(req in arb_request(), x32 in any::<bool>()) {
            let abi = if x32 { Abi::X86_32 } else { Abi::X86_64 };
            let mut slot = [0u8; 112];
            req.encode(abi, &mut slot);
            let back = decode_request(abi, &slot[..abi.request_size()], ALL).unwrap();
            prop_assert_eq!(back, req);
            // Re-encoding gives identical bytes.
            let mut again = [0u8; 112];
            back.encode(abi, &mut again);
            prop_assert_eq!(&slot[..], &again[..]);
        }

        #[test]
        fn accepts_any_slot_without_panic(slot in proptest::collection::vec(any::<u8>(), 0..140)) {
            for abi in [Abi::X86_32, Abi::X86_64] {
                // A decoded request respects every structural limit.
                if let Ok(Request::ReadWrite { segments, .. }) = decode_request(abi, &slot, ALL) {
                    for (i, s) in segments.as_slice().iter().enumerate() {
                        prop_assert!(s.validate(i).is_ok());
                    }
                }
            }
        }
    }

    #[test]
    fn accepts_response_round_trip_both_abis() {
        for abi in [Abi::X86_32, Abi::X86_64] {
            let r = Response {
                id: 0x0102_0304_0506_0708,
                operation: Operation::INDIRECT,
                status: Status::EOPNOTSUPP,
            };
            let mut b = [0u8; 16];
            assert_eq!(r.encode(abi, &mut b), abi.response_size());
            assert_eq!(Response::decode(abi, &b), Some(r));
            assert_eq!(&b[8..12], &[6, 0, 0xfe, 0xff]);
        }
    }

    #[test]
    fn accepts_protocol_names_of_protocols_h() {
        assert_eq!(Abi::from_protocol(Some("x86_32-abi")), Ok(Abi::X86_32));
        assert_eq!(Abi::from_protocol(Some("x86_64-abi")), Ok(Abi::X86_64));
        assert_eq!(Abi::from_protocol(None), Ok(Abi::native()));
        assert!(Abi::from_protocol(Some("ia64-abi")).is_err());
    }

    #[test]
    fn rejects_bad_requests_keeping_id_and_operation() {
        let mut slot = [0u8; 112];
        slot[0] = 4; // BLKIF_OP_RESERVED_1
        slot[8..16].copy_from_slice(&42u64.to_le_bytes());
        let e = decode_request(Abi::X86_64, &slot, ALL).unwrap_err();
        assert_eq!(
            (e.id, e.operation, e.error),
            (42, Operation::RESERVED_1, RequestError::UnknownOperation(4))
        );
        let e = decode_request(Abi::X86_64, &slot[..50], ALL).unwrap_err();
        assert_eq!(e.error, RequestError::ShortSlot(50));
        slot[0] = 0x80; // extra flag not negotiated
        let e = decode_request(Abi::X86_64, &slot, DecodeLimits::default()).unwrap_err();
        assert_eq!(e.error, RequestError::ExtraNotAllowed(0x80));
    }

    #[test]
    fn rejects_indirect_segments_short_page_or_invalid() {
        let mut out = Vec::new();
        let page = encode_indirect_segments(
            &[Segment {
                gref: 1,
                first_sect: 0,
                last_sect: 7,
            }; 3],
        );
        assert!(decode_indirect_segments(&page, 3, &mut out).is_ok());
        assert_eq!(out.len(), 3);
        assert!(decode_indirect_segments(&page, 4, &mut out).is_err());
        let bad = encode_indirect_segments(&[Segment {
            gref: 1,
            first_sect: 3,
            last_sect: 1,
        }]);
        assert_eq!(
            decode_indirect_segments(&bad, 1, &mut out),
            Err(RequestError::BadSegment {
                index: 0,
                first_sect: 3,
                last_sect: 1
            })
        );
    }
}
