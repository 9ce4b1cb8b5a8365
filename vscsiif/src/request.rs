//! Typed vscsiif requests and responses.
//!
//! Decoding checks what a request says about itself (action, `cmd_len`,
//! data direction, segment counts and that each segment stays inside its
//! page) and never panics; a failure keeps the `rqid` and action so the
//! backend can answer it.

use std::fmt;
use std::str::FromStr;

use zerocopy::little_endian::{I32, U16, U32};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

use crate::wire::{
    RawRequest, RawResponse, RawSegment, MAX_COMMAND_SIZE, PAGE_SIZE, SENSE_BUFFERSIZE, SG_GRANT,
    SG_TABLESIZE,
};

/// A request action (`VSCSIIF_ACT_SCSI_*`); unknown values survive decoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Action(pub u8);

impl Action {
    /// `VSCSIIF_ACT_SCSI_CDB`.
    pub const CDB: Self = Self(1);
    /// `VSCSIIF_ACT_SCSI_ABORT`.
    pub const ABORT: Self = Self(2);
    /// `VSCSIIF_ACT_SCSI_RESET`.
    pub const RESET: Self = Self(3);
    /// `VSCSIIF_ACT_SCSI_SG_PRESET` (deprecated, refused).
    pub const SG_PRESET: Self = Self(4);
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = match *self {
            Self::CDB => "CDB",
            Self::ABORT => "ABORT",
            Self::RESET => "RESET",
            Self::SG_PRESET => "SG_PRESET",
            _ => "UNKNOWN",
        };
        write!(f, "{n}({:#04x})", self.0)
    }
}

/// `sc_data_direction` (Linux `enum dma_data_direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataDirection {
    /// `DMA_BIDIRECTIONAL` (0).
    Bidirectional,
    /// `DMA_TO_DEVICE` (1): data-out.
    ToDevice,
    /// `DMA_FROM_DEVICE` (2): data-in.
    FromDevice,
    /// `DMA_NONE` (3).
    None,
}

impl DataDirection {
    fn from_wire(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Bidirectional,
            1 => Self::ToDevice,
            2 => Self::FromDevice,
            3 => Self::None,
            _ => return None,
        })
    }

    /// The wire value.
    #[must_use]
    pub fn to_wire(self) -> u8 {
        match self {
            Self::Bidirectional => 0,
            Self::ToDevice => 1,
            Self::FromDevice => 2,
            Self::None => 3,
        }
    }
}

/// The host byte of a result word (`XEN_VSCSIIF_RSLT_HOST_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostByte(pub u8);

impl HostByte {
    /// `XEN_VSCSIIF_RSLT_HOST_OK`.
    pub const OK: Self = Self(0);
    /// `XEN_VSCSIIF_RSLT_HOST_NO_CONNECT`: no such device.
    pub const NO_CONNECT: Self = Self(1);
    /// `XEN_VSCSIIF_RSLT_HOST_BUS_BUSY`.
    pub const BUS_BUSY: Self = Self(2);
    /// `XEN_VSCSIIF_RSLT_HOST_TIME_OUT`.
    pub const TIME_OUT: Self = Self(3);
    /// `XEN_VSCSIIF_RSLT_HOST_BAD_TARGET`.
    pub const BAD_TARGET: Self = Self(4);
    /// `XEN_VSCSIIF_RSLT_HOST_ABORT`: the command was aborted.
    pub const ABORT: Self = Self(5);
    /// `XEN_VSCSIIF_RSLT_HOST_ERROR`: an internal or request error.
    pub const ERROR: Self = Self(7);
    /// `XEN_VSCSIIF_RSLT_HOST_RESET`.
    pub const RESET: Self = Self(8);
    /// `XEN_VSCSIIF_RSLT_HOST_TARGET_FAILURE`.
    pub const TARGET_FAILURE: Self = Self(16);
}

impl fmt::Debug for HostByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostByte({})", self.0)
    }
}

/// `XEN_VSCSIIF_RSLT_RESET_SUCCESS`: result of a successful reset or abort.
pub const RSLT_RESET_SUCCESS: i32 = 0x2002;
/// `XEN_VSCSIIF_RSLT_RESET_FAILED`.
pub const RSLT_RESET_FAILED: i32 = 0x2003;

/// A result word: host byte in bits 16..24, status byte in bits 0..8
/// (`XEN_VSCSIIF_RSLT_HOST`, `XEN_VSCSIIF_RSLT_STATUS`).
#[must_use]
pub fn result_word(host: HostByte, status: u8) -> i32 {
    (i32::from(host.0) << 16) | i32::from(status)
}

/// The host byte of a result word.
#[must_use]
pub fn result_host(rslt: i32) -> HostByte {
    HostByte(((rslt & 0x00ff_0000) >> 16) as u8)
}

/// The status byte of a result word.
#[must_use]
pub fn result_status(rslt: i32) -> u8 {
    (rslt & 0xff) as u8
}

/// A virtual device address "host:channel:id:lun" (the `v-dev` xenstore
/// node); the host is the vhost (one per ring), the rest travels in each
/// request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VirtualDevice {
    /// The vhost.
    pub host: u32,
    /// `channel`.
    pub channel: u16,
    /// `id` (target).
    pub id: u16,
    /// `lun`.
    pub lun: u16,
}

/// A malformed "host:channel:id:lun" string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad virtual device {0:?}: expected host:channel:id:lun")]
pub struct BadVirtualDevice(pub String);

impl FromStr for VirtualDevice {
    type Err = BadVirtualDevice;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadVirtualDevice(s.to_owned());
        let mut it = s.split(':');
        let host = it.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let channel = it.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let id = it.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let lun = it.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        if it.next().is_some() {
            return Err(bad());
        }
        Ok(Self {
            host,
            channel,
            id,
            lun,
        })
    }
}

impl fmt::Display for VirtualDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}:{}", self.host, self.channel, self.id, self.lun)
    }
}

/// One data (or SG-page) segment: a granted page, an offset and a length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Segment {
    /// Grant reference.
    pub gref: u32,
    /// Byte offset in the page.
    pub offset: u16,
    /// Byte length.
    pub length: u16,
}

impl Segment {
    fn from_raw(r: &RawSegment) -> Self {
        Self {
            gref: r.gref.get(),
            offset: r.offset.get(),
            length: r.length.get(),
        }
    }

    fn to_raw(self) -> RawSegment {
        RawSegment {
            gref: U32::new(self.gref),
            offset: U16::new(self.offset),
            length: U16::new(self.length),
        }
    }

    /// Check the segment stays inside its page (Linux scsiback: offset +
    /// length <= PAGE_SIZE).
    ///
    /// # Errors
    ///
    /// [`RequestError::BadSegment`].
    pub fn validate(&self, index: usize) -> Result<(), RequestError> {
        if usize::from(self.offset) + usize::from(self.length) > PAGE_SIZE {
            return Err(RequestError::BadSegment {
                index,
                offset: self.offset,
                length: self.length,
            });
        }
        Ok(())
    }
}

/// Up to 26 segments, inline.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentList {
    segs: [Segment; SG_TABLESIZE],
    len: u8,
}

impl fmt::Debug for SegmentList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl SegmentList {
    /// A list of `segs`.
    ///
    /// # Errors
    ///
    /// [`RequestError::TooManySegments`] past 26.
    pub fn new(segs: &[Segment]) -> Result<Self, RequestError> {
        if segs.len() > SG_TABLESIZE {
            return Err(RequestError::TooManySegments {
                count: segs.len(),
                max: SG_TABLESIZE,
            });
        }
        let mut l = Self::default();
        l.segs[..segs.len()].copy_from_slice(segs);
        l.len = u8::try_from(segs.len()).unwrap_or(0);
        Ok(l)
    }

    /// The segments.
    #[must_use]
    pub fn as_slice(&self) -> &[Segment] {
        &self.segs[..usize::from(self.len)]
    }
}

/// Where a command's data segments are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataSegments {
    /// In the request's `seg[]`.
    Direct(SegmentList),
    /// `VSCSIIF_SG_GRANT`: `seg[]` names arrays of segments in granted pages.
    Granted(SegmentList),
}

/// A decoded vscsiif request.
#[allow(clippy::large_enum_variant)] // decoded on the stack, one per slot, never stored in bulk
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `VSCSIIF_ACT_SCSI_CDB`.
    Cdb {
        /// `rqid`.
        rqid: u16,
        /// (channel, id, lun).
        addr: (u16, u16, u16),
        /// `cmnd[..cmd_len]`.
        cdb: [u8; MAX_COMMAND_SIZE],
        /// `cmd_len`, 1 to 16.
        cmd_len: u8,
        /// `sc_data_direction`.
        direction: DataDirection,
        /// The data segments.
        segments: DataSegments,
    },
    /// `VSCSIIF_ACT_SCSI_ABORT` of the command `ref_rqid`.
    Abort {
        /// `rqid`.
        rqid: u16,
        /// (channel, id, lun).
        addr: (u16, u16, u16),
        /// `ref_rqid`.
        ref_rqid: u16,
    },
    /// `VSCSIIF_ACT_SCSI_RESET`.
    Reset {
        /// `rqid`.
        rqid: u16,
        /// (channel, id, lun).
        addr: (u16, u16, u16),
    },
}

impl Request {
    /// `rqid`.
    #[must_use]
    pub fn rqid(&self) -> u16 {
        match *self {
            Request::Cdb { rqid, .. }
            | Request::Abort { rqid, .. }
            | Request::Reset { rqid, .. } => rqid,
        }
    }

    /// The action.
    #[must_use]
    pub fn action(&self) -> Action {
        match self {
            Request::Cdb { .. } => Action::CDB,
            Request::Abort { .. } => Action::ABORT,
            Request::Reset { .. } => Action::RESET,
        }
    }

    /// (channel, id, lun).
    #[must_use]
    pub fn addr(&self) -> (u16, u16, u16) {
        match *self {
            Request::Cdb { addr, .. }
            | Request::Abort { addr, .. }
            | Request::Reset { addr, .. } => addr,
        }
    }

    /// Encode into a 252-byte slot (frontends, tests, fuzzing).
    ///
    /// # Panics
    ///
    /// If `out` is shorter than 252 bytes (caller misuse).
    pub fn encode(&self, out: &mut [u8]) {
        let mut raw = RawRequest::new_zeroed();
        raw.rqid = U16::new(self.rqid());
        raw.act = self.action().0;
        let (c, i, l) = self.addr();
        raw.channel = U16::new(c);
        raw.id = U16::new(i);
        raw.lun = U16::new(l);
        raw.sc_data_direction = DataDirection::None.to_wire();
        match *self {
            Request::Cdb {
                cdb,
                cmd_len,
                direction,
                segments,
                ..
            } => {
                raw.cmnd = cdb;
                raw.cmd_len = cmd_len;
                raw.sc_data_direction = direction.to_wire();
                let (list, flag) = match segments {
                    DataSegments::Direct(l) => (l, 0),
                    DataSegments::Granted(l) => (l, SG_GRANT),
                };
                for (r, s) in raw.seg.iter_mut().zip(list.as_slice()) {
                    *r = s.to_raw();
                }
                raw.nr_segments = list.len | flag;
            }
            Request::Abort { ref_rqid, .. } => raw.ref_rqid = U16::new(ref_rqid),
            Request::Reset { .. } => {}
        }
        out[..252].copy_from_slice(raw.as_bytes());
    }
}

/// What is wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The slot is shorter than a request (caller misuse).
    #[error("slot of {0} bytes is shorter than a request")]
    ShortSlot(usize),
    /// An unknown or deprecated action.
    #[error("unknown action {0:#04x}")]
    UnknownAction(u8),
    /// `cmd_len` 0 or past 16.
    #[error("cmd_len {0} not in 1..=16")]
    BadCmdLen(u8),
    /// `sc_data_direction` not 0..=3.
    #[error("bad sc_data_direction {0}")]
    BadDirection(u8),
    /// Segments with `DMA_NONE`.
    #[error("segments given with DMA_NONE")]
    SegmentsWithoutDirection,
    /// More segments than allowed.
    #[error("{count} segments exceed the maximum of {max}")]
    TooManySegments {
        /// Count.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// `VSCSIIF_SG_GRANT` without `feature-sg-grant`.
    #[error("SG grant used but not advertised")]
    SgGrantNotAdvertised,
    /// A segment leaves its page, or an SG page length is not a multiple of
    /// the descriptor size.
    #[error("segment {index}: offset {offset} length {length} invalid")]
    BadSegment {
        /// Index.
        index: usize,
        /// Offset.
        offset: u16,
        /// Length.
        length: u16,
    },
    /// No device at (channel, id, lun).
    #[error("no device at {0:?}")]
    NoDevice((u16, u16, u16)),
    /// A grant the grant layer refused.
    #[error("grant reference {0} refused")]
    GrantRefused(u32),
}

impl RequestError {
    /// The host byte it is answered with.
    #[must_use]
    pub fn host_byte(&self) -> HostByte {
        match self {
            RequestError::NoDevice(_) => HostByte::NO_CONNECT,
            _ => HostByte::ERROR,
        }
    }
}

/// A request that failed to decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rqid {rqid} act {act:?}: {error}")]
pub struct BadRequest {
    /// `rqid` to echo.
    pub rqid: u16,
    /// `act` to echo.
    pub act: Action,
    /// Why.
    pub error: RequestError,
}

/// Decode a 252-byte request slot. `sg_grant` is whether
/// `feature-sg-grant` was advertised.
///
/// # Errors
///
/// [`BadRequest`].
pub fn decode_request(slot: &[u8], sg_grant: bool) -> Result<Request, BadRequest> {
    let rqid = u16::from_le_bytes([
        slot.first().copied().unwrap_or(0),
        slot.get(1).copied().unwrap_or(0),
    ]);
    let act = Action(slot.get(2).copied().unwrap_or(0));
    let fail = |error| BadRequest { rqid, act, error };
    let (raw, _) = RawRequest::read_from_prefix(slot)
        .map_err(|_| fail(RequestError::ShortSlot(slot.len())))?;
    let addr = (raw.channel.get(), raw.id.get(), raw.lun.get());
    match act {
        Action::CDB => {
            let cmd_len = raw.cmd_len;
            if cmd_len == 0 || usize::from(cmd_len) > MAX_COMMAND_SIZE {
                return Err(fail(RequestError::BadCmdLen(cmd_len)));
            }
            let direction = DataDirection::from_wire(raw.sc_data_direction)
                .ok_or_else(|| fail(RequestError::BadDirection(raw.sc_data_direction)))?;
            let granted = raw.nr_segments & SG_GRANT != 0;
            let n = usize::from(raw.nr_segments & !SG_GRANT);
            if granted && !sg_grant {
                return Err(fail(RequestError::SgGrantNotAdvertised));
            }
            if n > SG_TABLESIZE {
                return Err(fail(RequestError::TooManySegments {
                    count: n,
                    max: SG_TABLESIZE,
                }));
            }
            let mut segs = [Segment::default(); SG_TABLESIZE];
            for (i, r) in raw.seg[..n].iter().enumerate() {
                let s = Segment::from_raw(r);
                s.validate(i).map_err(fail)?;
                if granted && usize::from(s.length) % 8 != 0 {
                    return Err(fail(RequestError::BadSegment {
                        index: i,
                        offset: s.offset,
                        length: s.length,
                    }));
                }
                segs[i] = s;
            }
            if direction == DataDirection::None && n > 0 {
                return Err(fail(RequestError::SegmentsWithoutDirection));
            }
            let list = SegmentList::new(&segs[..n]).map_err(fail)?;
            Ok(Request::Cdb {
                rqid,
                addr,
                cdb: raw.cmnd,
                cmd_len,
                direction,
                segments: if granted {
                    DataSegments::Granted(list)
                } else {
                    DataSegments::Direct(list)
                },
            })
        }
        Action::ABORT => Ok(Request::Abort {
            rqid,
            addr,
            ref_rqid: raw.ref_rqid.get(),
        }),
        Action::RESET => Ok(Request::Reset { rqid, addr }),
        _ => Err(fail(RequestError::UnknownAction(act.0))),
    }
}

/// Decode the segment descriptors of SG-grant pages (the bytes copied from
/// each `seg[]` area, concatenated), validating each; at most `max`.
///
/// # Errors
///
/// [`RequestError::BadSegment`] or [`RequestError::TooManySegments`].
pub fn decode_granted_segments(
    bytes: &[u8],
    max: usize,
    out: &mut Vec<Segment>,
) -> Result<(), RequestError> {
    let n = bytes.len() / 8;
    if n > max {
        return Err(RequestError::TooManySegments { count: n, max });
    }
    out.clear();
    out.reserve(n);
    for (i, c) in bytes.chunks_exact(8).enumerate() {
        let r = RawSegment::read_from_bytes(c).map_err(|_| RequestError::ShortSlot(c.len()))?;
        let s = Segment::from_raw(&r);
        s.validate(i)?;
        out.push(s);
    }
    Ok(())
}

/// Encode segment descriptors for an SG-grant page.
#[must_use]
pub fn encode_granted_segments(segs: &[Segment]) -> Vec<u8> {
    segs.iter()
        .flat_map(|s| s.to_raw().as_bytes().to_vec())
        .collect()
}

/// A vscsiif response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// `rqid`.
    pub rqid: u16,
    /// `act` (echoed).
    pub act: Action,
    /// `rslt`.
    pub rslt: i32,
    /// Sense bytes (the first `sense_len`).
    pub sense: [u8; SENSE_BUFFERSIZE],
    /// `sense_len`, at most 96.
    pub sense_len: u8,
    /// `residual_len`.
    pub residual: u32,
}

impl Response {
    /// A response with no sense data.
    #[must_use]
    pub fn new(rqid: u16, act: Action, rslt: i32, residual: u32) -> Self {
        Self {
            rqid,
            act,
            rslt,
            sense: [0; SENSE_BUFFERSIZE],
            sense_len: 0,
            residual,
        }
    }

    /// Attach sense data, cut to the 96 bytes the response holds.
    #[must_use]
    pub fn with_sense(mut self, sense: &[u8]) -> Self {
        let n = sense.len().min(SENSE_BUFFERSIZE);
        self.sense[..n].copy_from_slice(&sense[..n]);
        self.sense_len = u8::try_from(n).unwrap_or(0);
        self
    }

    /// The sense bytes.
    #[must_use]
    pub fn sense_bytes(&self) -> &[u8] {
        &self.sense[..usize::from(self.sense_len).min(SENSE_BUFFERSIZE)]
    }

    /// Encode into 252 bytes.
    ///
    /// # Panics
    ///
    /// If `out` is shorter than 252 bytes (caller misuse).
    pub fn encode(&self, out: &mut [u8]) {
        let mut raw = RawResponse::new_zeroed();
        raw.rqid = U16::new(self.rqid);
        raw.act = self.act.0;
        raw.sense_len = self.sense_len;
        raw.sense_buffer = self.sense;
        raw.rslt = I32::new(self.rslt);
        raw.residual_len = U32::new(self.residual);
        out[..252].copy_from_slice(raw.as_bytes());
    }

    /// Decode (frontend side); a `sense_len` past 96 is cut to 96.
    #[must_use]
    pub fn decode(slot: &[u8]) -> Option<Self> {
        let (raw, _) = RawResponse::read_from_prefix(slot).ok()?;
        Some(Self {
            rqid: raw.rqid.get(),
            act: Action(raw.act),
            rslt: raw.rslt.get(),
            sense: raw.sense_buffer,
            sense_len: raw.sense_len.min(96),
            residual: raw.residual_len.get(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_seg() -> impl Strategy<Value = Segment> {
        (any::<u32>(), 0u16..=4096).prop_flat_map(|(gref, offset)| {
            (0..=(4096 - offset)).prop_map(move |length| Segment {
                gref,
                offset,
                length,
            })
        })
    }

    fn arb_request() -> impl Strategy<Value = Request> {
        let addr = (any::<u16>(), any::<u16>(), any::<u16>());
        let cdb = (
            any::<u16>(),
            addr,
            any::<[u8; 16]>(),
            1u8..=16,
            prop_oneof![
                Just(DataDirection::ToDevice),
                Just(DataDirection::FromDevice),
                Just(DataDirection::Bidirectional)
            ],
            proptest::collection::vec(arb_seg(), 0..=26),
            any::<bool>(),
        )
            .prop_map(|(rqid, addr, cdb, cmd_len, direction, segs, granted)| {
                let segs: Vec<Segment> = if granted {
                    segs.into_iter()
                        .map(|s| Segment {
                            length: s.length & !7,
                            ..s
                        })
                        .collect()
                } else {
                    segs
                };
                let list = SegmentList::new(&segs).unwrap();
                Request::Cdb {
                    rqid,
                    addr,
                    cdb,
                    cmd_len,
                    direction,
                    segments: if granted {
                        DataSegments::Granted(list)
                    } else {
                        DataSegments::Direct(list)
                    },
                }
            });
        let abort =
            (any::<u16>(), addr, any::<u16>()).prop_map(|(rqid, addr, ref_rqid)| Request::Abort {
                rqid,
                addr,
                ref_rqid,
            });
        let reset = (any::<u16>(), addr).prop_map(|(rqid, addr)| Request::Reset { rqid, addr });
        prop_oneof![cdb, abort, reset]
    }

    proptest! {
        #[test]
        fn accepts_encode_decode_round_trip(req in arb_request()) {
            let mut slot = [0u8; 252];
            req.encode(&mut slot);
            let back = decode_request(&slot, true).unwrap();
            prop_assert_eq!(back, req);
            let mut again = [0u8; 252];
            back.encode(&mut again);
            prop_assert_eq!(&slot[..], &again[..]);
        }

        #[test]
        fn accepts_any_slot_without_panic(slot in proptest::collection::vec(any::<u8>(), 0..300), sg in any::<bool>()) {
            if let Ok(Request::Cdb { cmd_len, segments, .. }) = decode_request(&slot, sg) {
                prop_assert!((1..=16).contains(&cmd_len));
                let (DataSegments::Direct(l) | DataSegments::Granted(l)) = segments;
                for (i, s) in l.as_slice().iter().enumerate() {
                    prop_assert!(s.validate(i).is_ok());
                }
            }
        }
    }

    #[test]
    fn accepts_response_round_trip_with_sense_cut_to_96() {
        let r = Response::new(9, Action::CDB, result_word(HostByte::OK, 2), 17)
            .with_sense(&[0x70; 200]);
        assert_eq!(r.sense_len, 96);
        let mut b = [0u8; 252];
        r.encode(&mut b);
        assert_eq!(Response::decode(&b), Some(r));
        b[3] = 200; // a sense_len past the buffer is cut on decode
        assert_eq!(Response::decode(&b).unwrap().sense_bytes().len(), 96);
    }

    #[test]
    fn rejects_bad_requests_keeping_rqid() {
        let mut slot = [0u8; 252];
        slot[0..2].copy_from_slice(&0x1234u16.to_le_bytes());
        slot[2] = 4; // SG_PRESET: deprecated
        let e = decode_request(&slot, true).unwrap_err();
        assert_eq!(
            (e.rqid, e.act, e.error),
            (0x1234, Action::SG_PRESET, RequestError::UnknownAction(4))
        );
        assert_eq!(
            decode_request(&slot[..100], true).unwrap_err().error,
            RequestError::ShortSlot(100)
        );
    }
}
