//! The vscsiif backend processor for one ring (one vhost).
//!
//! Each virtual device "host:channel:id:lun" of the vhost maps to one
//! engine logical unit on an I_T nexus ([`DeviceTarget`]). A CDB request
//! becomes an engine [`Command`] (tag = `rqid`) whose data buffer is the
//! granted pages; `VSCSIIF_ACT_SCSI_ABORT` becomes ABORT TASK of
//! `ref_rqid`; `VSCSIIF_ACT_SCSI_RESET` becomes LOGICAL UNIT RESET. Every
//! request gets exactly one response (the ring's accounting depends on
//! it): an aborted command is answered with host byte `ABORT`.
//!
//! A malformed request is answered with host byte `ERROR` (an unmapped
//! device with `NO_CONNECT`, as Linux scsiback does) and logged; a frontend
//! that corrupts the ring indices stops the processor with
//! [`Shutdown`] after the requests in flight are answered.

use std::any::Any;
use std::sync::Arc;

use futures::future::{self, BoxFuture, Either, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{Command, RawCdb, Residual, TaskAttribute, TmFunction, TmfResponse};
use tgtkit_xen_ring::event::EventChannel;
use tgtkit_xen_ring::grant::{GrantAccess, GrantError, MappedGrants};
use tgtkit_xen_ring::order::{ResponseOrder, Sequenced};
use tgtkit_xen_ring::{BackRing, LayoutError, RingError, RingMemory};
use tracing::{error, warn};

use crate::devices::{DeviceError, DeviceMap, DeviceTarget};
use crate::request::{
    decode_granted_segments, decode_request, result_word, Action, DataDirection, DataSegments,
    HostByte, Request, RequestError, Response, Segment, VirtualDevice, RSLT_RESET_FAILED,
    RSLT_RESET_SUCCESS,
};
use crate::wire::SG_PER_PAGE;

/// Size of a vscsiif ring entry (`union vscsiif_sring_entry`).
pub const ENTRY_SIZE: usize = 252;

/// The backend's configuration for one vhost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VscsiConfig {
    /// The vhost number (the "host" of every "host:channel:id:lun").
    pub host: u32,
    /// `feature-sg-grant`: the most data segments of one request through
    /// SG-grant pages (0: not advertised).
    pub sg_grant: u16,
    /// Most requests in flight (0: the ring size).
    pub max_in_flight: usize,
}

impl Default for VscsiConfig {
    fn default() -> Self {
        Self {
            host: 0,
            sg_grant: 128,
            max_in_flight: 0,
        }
    }
}

/// Why a processor stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Shutdown {
    /// The frontend corrupted the ring.
    #[error("ring shut down: {0}")]
    Ring(#[from] RingError),
}

/// Counters of one processor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VscsiStats {
    /// Requests answered with host byte OK (any SCSI status) or a reset /
    /// abort success.
    pub ok: u64,
    /// Requests refused or failed.
    pub failed: u64,
}

/// The vscsiif backend for one ring.
pub struct VscsiBackend<G: GrantAccess> {
    ring: BackRing,
    config: VscsiConfig,
    grants: Arc<G>,
    devices: DeviceMap,
    inflight: FuturesUnordered<Sequenced<BoxFuture<'static, Response>>>,
    order: ResponseOrder<Response>,
    /// A response published since the last notification check asked for
    /// a notification.
    notify: bool,
    max_in_flight: usize,
    stats: VscsiStats,
}

impl<G: GrantAccess> std::fmt::Debug for VscsiBackend<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VscsiBackend")
            .field("ring", &self.ring)
            .field("config", &self.config)
            .field("devices", &self.devices.len())
            .field("in_flight", &self.inflight.len())
            .finish_non_exhaustive()
    }
}

impl<G: GrantAccess> VscsiBackend<G> {
    /// A processor for the ring in `ring_mem` (initialised by the frontend),
    /// starting at its published `rsp_prod` ([`BackRing::resume`]).
    /// Responses go to the ring in request order ([`ResponseOrder`]), so a
    /// ring a killed `VscsiBackend` served resumes with exactly the
    /// requests it never answered.
    ///
    /// # Errors
    ///
    /// [`LayoutError`] if the region cannot hold a vscsiif ring.
    pub fn new(
        ring_mem: RingMemory,
        config: VscsiConfig,
        grants: Arc<G>,
    ) -> Result<Self, LayoutError> {
        let ring = BackRing::resume(ring_mem, ENTRY_SIZE)?;
        let size = ring.size() as usize;
        Ok(Self {
            ring,
            max_in_flight: if config.max_in_flight == 0 {
                size
            } else {
                config.max_in_flight.min(size)
            },
            config,
            grants,
            devices: DeviceMap::new(config.host),
            inflight: FuturesUnordered::new(),
            order: ResponseOrder::with_capacity(size),
            notify: false,
            stats: VscsiStats::default(),
        })
    }

    /// Map virtual device `vdev` to an engine logical unit.
    ///
    /// # Errors
    ///
    /// [`DeviceError`].
    pub fn add_device(&self, vdev: VirtualDevice, dev: DeviceTarget) -> Result<(), DeviceError> {
        self.devices.add(vdev, dev)
    }

    /// Unmap a virtual device; later requests for it get `NO_CONNECT`.
    pub fn remove_device(&self, vdev: VirtualDevice) -> bool {
        self.devices.remove(vdev)
    }

    /// A handle on this processor's device map, to add and remove devices
    /// while [`VscsiBackend::run`] holds the processor (LUN hot-plug).
    #[must_use]
    pub fn devices(&self) -> DeviceMap {
        self.devices.clone()
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> VscsiStats {
        self.stats
    }

    /// Consume requests and start them, up to the in-flight limit.
    ///
    /// # Errors
    ///
    /// [`Shutdown`] when the frontend corrupted the ring.
    pub fn poll_ring(&mut self) -> Result<(), Shutdown> {
        while self.inflight.len() < self.max_in_flight {
            let mut slot = [0u8; ENTRY_SIZE];
            if !self.ring.next_request(&mut slot)? {
                break;
            }
            let seq = self.order.admit();
            match decode_request(&slot, self.config.sg_grant > 0) {
                Err(bad) => {
                    warn!(rqid = bad.rqid, act = ?bad.act, error = %bad.error, "vscsiif: bad request");
                    let r =
                        Response::new(bad.rqid, bad.act, result_word(bad.error.host_byte(), 0), 0);
                    self.complete(seq, r);
                }
                Ok(req) => match self.prepare(req) {
                    Ok(fut) => self.inflight.push(Sequenced::new(seq, fut)),
                    Err(e) => {
                        warn!(rqid = req.rqid(), error = %e, "vscsiif: request refused");
                        let r = Response::new(
                            req.rqid(),
                            req.action(),
                            result_word(e.host_byte(), 0),
                            0,
                        );
                        self.complete(seq, r);
                    }
                },
            }
        }
        Ok(())
    }

    fn map_data(&self, segs: &[Segment], writable: bool) -> Result<DataBuffer, RequestError> {
        let segs: Vec<Segment> = segs.iter().copied().filter(|s| s.length > 0).collect();
        if segs.is_empty() {
            return Ok(DataBuffer::empty());
        }
        let refs: Vec<u32> = segs.iter().map(|s| s.gref).collect();
        let m = MappedGrants::map(&self.grants, &refs, writable).map_err(|e| {
            RequestError::GrantRefused(match e {
                GrantError::Refused(g) => g,
                _ => refs[0],
            })
        })?;
        let mut raw = Vec::with_capacity(segs.len());
        for (i, s) in segs.iter().enumerate() {
            let page = m
                .mapping()
                .page(i)
                .ok_or(RequestError::GrantRefused(s.gref))?;
            // `offset + length <= 4096` was validated: inside the page.
            raw.push((
                page.wrapping_add(usize::from(s.offset)),
                usize::from(s.length),
            ));
        }
        let owner: Arc<dyn Any + Send + Sync> = Arc::new(m);
        // SAFETY: every segment lies inside a page mapped by `owner`, which
        // stays mapped until the last handle of the buffer drops it; the
        // guest is outside this process's memory model and the buffer only
        // accesses the pages volatilely.
        Ok(unsafe { DataBuffer::from_raw_segments(&raw, owner) })
    }

    fn prepare(&mut self, req: Request) -> Result<BoxFuture<'static, Response>, RequestError> {
        let addr = req.addr();
        let dev = self.devices.get(addr).ok_or(RequestError::NoDevice(addr))?;
        let rqid = req.rqid();
        match req {
            Request::Cdb {
                cdb,
                cmd_len,
                direction,
                segments,
                ..
            } => {
                let segs: Vec<Segment> = match segments {
                    DataSegments::Direct(l) => l.as_slice().to_vec(),
                    DataSegments::Granted(pages) => {
                        let max = usize::from(self.config.sg_grant);
                        let total: usize = pages
                            .as_slice()
                            .iter()
                            .map(|p| usize::from(p.length) / 8)
                            .sum();
                        if total > max {
                            return Err(RequestError::TooManySegments { count: total, max });
                        }
                        let mut bytes = vec![0u8; total * 8];
                        let mut at = 0;
                        for p in pages.as_slice() {
                            let n = usize::from(p.length);
                            self.grants
                                .copy_from(p.gref, usize::from(p.offset), &mut bytes[at..at + n])
                                .map_err(|_| RequestError::GrantRefused(p.gref))?;
                            at += n;
                        }
                        let mut out = Vec::new();
                        decode_granted_segments(&bytes, max.min(SG_PER_PAGE * 26), &mut out)?;
                        out
                    }
                };
                if direction == DataDirection::None && segs.iter().any(|s| s.length > 0) {
                    return Err(RequestError::SegmentsWithoutDirection);
                }
                let writable = matches!(
                    direction,
                    DataDirection::FromDevice | DataDirection::Bidirectional
                );
                let data = self.map_data(&segs, writable)?;
                let expected = data.len();
                let raw_cdb = RawCdb::new(&cdb[..usize::from(cmd_len)])
                    .map_err(|_| RequestError::BadCmdLen(cmd_len))?;
                let cmd = Command {
                    nexus: dev.nexus,
                    lun: dev.lun,
                    tag: u64::from(rqid),
                    attribute: TaskAttribute::Simple,
                    cdb: raw_cdb,
                    data,
                };
                let target = Arc::clone(&dev.target);
                Ok(async move {
                    let resp = target.execute(cmd).await;
                    if resp.aborted {
                        return Response::new(
                            rqid,
                            Action::CDB,
                            result_word(HostByte::ABORT, 0),
                            u32::try_from(expected).unwrap_or(u32::MAX),
                        );
                    }
                    let residual = match resp.residual {
                        Residual::Under(n) => n,
                        _ => 0,
                    };
                    Response::new(
                        rqid,
                        Action::CDB,
                        result_word(HostByte::OK, resp.status.0),
                        residual,
                    )
                    .with_sense(resp.sense_bytes())
                }
                .boxed())
            }
            Request::Abort { ref_rqid, .. } => {
                let target = Arc::clone(&dev.target);
                Ok(async move {
                    let r = target
                        .task_management(
                            dev.nexus,
                            dev.lun,
                            TmFunction::AbortTask {
                                tag: u64::from(ref_rqid),
                            },
                        )
                        .await;
                    Response::new(rqid, Action::ABORT, tmf_result(r), 0)
                }
                .boxed())
            }
            Request::Reset { .. } => {
                let target = Arc::clone(&dev.target);
                Ok(async move {
                    let r = target
                        .task_management(dev.nexus, dev.lun, TmFunction::LogicalUnitReset)
                        .await;
                    Response::new(rqid, Action::RESET, tmf_result(r), 0)
                }
                .boxed())
            }
        }
    }

    /// Record request `seq`'s response; write every response whose
    /// predecessors have all completed.
    fn complete(&mut self, seq: u64, r: Response) {
        if !self.order.complete(seq, r) {
            error!(seq, "vscsiif: completion of a request never admitted");
        }
        while let Some(r) = self.order.pop_ready() {
            self.respond(&r);
        }
    }

    fn respond(&mut self, r: &Response) {
        let host = crate::request::result_host(r.rslt);
        if host == HostByte::OK || r.rslt == RSLT_RESET_SUCCESS {
            self.stats.ok += 1;
        } else {
            self.stats.failed += 1;
        }
        let mut b = [0u8; ENTRY_SIZE];
        r.encode(&mut b);
        if let Err(e) = self.ring.push_response(&b) {
            error!(error = %e, "vscsiif: response without a request slot");
        }
        // Published at once (see BlkifBackend): a restarted backend must
        // never read an unpublished response as a request.
        self.notify |= self.ring.push_responses_and_check_notify();
    }

    /// Answer every completed request and publish; returns whether to notify.
    pub fn complete_ready(&mut self) -> bool {
        while let Some(Some((seq, r))) = self.inflight.next().now_or_never() {
            self.complete(seq, r);
        }
        self.publish()
    }

    /// Publish what is pushed; whether the frontend must be notified of
    /// anything published since the last call.
    fn publish(&mut self) -> bool {
        let now = self.ring.push_responses_and_check_notify();
        std::mem::take(&mut self.notify) | now
    }

    /// Serve the ring until `events` reports the device closed (`Ok`) or the
    /// frontend corrupts the ring (`Err`); requests in flight are answered
    /// first either way.
    ///
    /// It first kicks the frontend once, unasked: on a ring it resumes, the
    /// previous backend may have died between publishing responses and
    /// notifying, and a frontend whose `rsp_event` is behind those
    /// responses would never be told of them (nor of ours, which its stale
    /// `rsp_event` does not ask for). A spurious kick costs a frontend one
    /// look at its ring.
    ///
    /// # Errors
    ///
    /// [`Shutdown`].
    pub async fn run(&mut self, events: &dyn EventChannel) -> Result<(), Shutdown> {
        events.notify();
        let result = self.serve(events).await;
        while let Some((seq, r)) = self.inflight.next().await {
            self.complete(seq, r);
        }
        if self.publish() {
            events.notify();
        }
        if let Err(e) = &result {
            error!(error = %e, "vscsiif: stopping ring");
        }
        result
    }

    async fn serve(&mut self, events: &dyn EventChannel) -> Result<(), Shutdown> {
        loop {
            self.poll_ring()?;
            if self.complete_ready() {
                events.notify();
            }
            // Re-arm req_event before sleeping whenever we could take more
            // requests, even with commands in flight (a frontend only kicks
            // when req_event says so).
            if self.inflight.len() < self.max_in_flight && self.ring.final_check_for_requests()? {
                continue;
            }
            if self.inflight.is_empty() {
                if !events.wait().await {
                    return Ok(());
                }
                continue;
            }
            let outcome = match future::select(self.inflight.next(), events.wait()).await {
                Either::Left((r, _)) => Ok(r),
                Either::Right((alive, _)) => Err(alive),
            };
            match outcome {
                Ok(Some((seq, r))) => self.complete(seq, r),
                Ok(None) | Err(true) => {}
                Err(false) => return Ok(()),
            }
        }
    }
}

fn tmf_result(r: TmfResponse) -> i32 {
    match r {
        TmfResponse::Complete | TmfResponse::Succeeded => RSLT_RESET_SUCCESS,
        _ => RSLT_RESET_FAILED,
    }
}
