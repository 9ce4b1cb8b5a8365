//! Xen targets: the blkif and vscsiif request decoders, and a blkif ring
//! consumer (the whole backend processor) over arbitrary shared-page
//! contents.

use std::sync::Arc;

use tgtkit_blkif::request::{decode_indirect_segments, decode_request, Abi, DecodeLimits, Request};
use tgtkit_blkif::{BackendConfig, BlkifBackend};
use tgtkit_scsi_core::test_utils::MemBackstore;
use tgtkit_vscsiif::request as vreq;
use tgtkit_xen_ring::testing::MemoryGrants;
use tgtkit_xen_ring::{sring, RingMemory};

fn abi_of(b: u8) -> Abi {
    if b & 1 == 0 {
        Abi::X86_64
    } else {
        Abi::X86_32
    }
}

/// Input: `[flags, slot..]`; flags bit 0 picks the x86_32 ABI, bit 1
/// enables the extra request. Whatever decodes must re-encode to a slot
/// that decodes to the same request; the rest of the input is decoded as
/// indirect segment pages.
pub fn blkif_request_decode(data: &[u8]) {
    let Some((&flags, slot)) = data.split_first() else {
        return;
    };
    let abi = abi_of(flags);
    let limits = DecodeLimits {
        max_indirect_segments: 4096,
        extra_request: flags & 2 != 0,
    };
    if let Ok(req) = decode_request(abi, slot, limits) {
        let mut again = [0u8; 112];
        req.encode(abi, &mut again);
        assert_eq!(
            decode_request(abi, &again[..abi.request_size()], limits),
            Ok(req)
        );
        if let Request::Indirect { nr_segments, .. } = req {
            let pages = slot.get(abi.request_size()..).unwrap_or(&[]);
            let mut out = Vec::new();
            if decode_indirect_segments(pages, nr_segments, &mut out).is_ok() {
                assert_eq!(out.len(), usize::from(nr_segments));
            }
        }
    }
}

/// Input: `[flags, slot..]`; flags bit 0 advertises SG grants. Decoded
/// requests round-trip; responses decode without panicking.
pub fn vscsiif_request_decode(data: &[u8]) {
    let Some((&flags, slot)) = data.split_first() else {
        return;
    };
    if let Ok(req) = vreq::decode_request(slot, flags & 1 != 0) {
        let mut again = [0u8; 252];
        req.encode(&mut again);
        assert_eq!(vreq::decode_request(&again, true), Ok(req));
    }
    if let Some(rsp) = vreq::Response::decode(slot) {
        assert!(rsp.sense_bytes().len() <= 96);
    }
    let mut segs = Vec::new();
    let _ = vreq::decode_granted_segments(slot, 128, &mut segs);
}

/// Input: `[flags, page image (up to 4096 bytes), req_prod updates (u32 LE)..]`.
///
/// The page image becomes the shared ring page as a (hostile) frontend
/// left it; a blkif backend processor with every feature on (indirect,
/// extra request, persistent grants, discard) consumes it over a small
/// plain-memory grant table and a ram disk, then each update is written to
/// `req_prod` and consumed in turn. The processor must never panic, never
/// have more requests outstanding than ring slots, and leave nothing
/// mapped once drained.
pub fn xen_ring_consumer(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (page, updates) = rest.split_at(rest.len().min(4096));
    let Ok(mem) = RingMemory::anonymous(1) else {
        return;
    };
    let _ = vm_memory::Bytes::write_slice(&mem.as_volatile_slice(), page, 0);
    let grants = Arc::new(MemoryGrants::new(8));
    let disk = Arc::new(MemBackstore::new(
        64,
        if flags & 4 == 0 { 512 } else { 4096 },
    ));
    let config = BackendConfig {
        abi: abi_of(flags),
        max_indirect_segments: 64,
        persistent_grants: if flags & 8 == 0 { 0 } else { 4 },
        extra_request: flags & 2 != 0,
        discard_secure: flags & 16 != 0,
        read_only: flags & 32 != 0,
        ..BackendConfig::default()
    };
    let Ok(mut backend) = BlkifBackend::new(mem.clone(), config, Arc::clone(&grants), disk) else {
        return;
    };
    let size = backend.ring().size();
    let step = |backend: &mut BlkifBackend<MemoryGrants>| {
        let r = backend.poll_ring();
        assert!(backend.ring().outstanding() <= size);
        futures::executor::block_on(backend.drain());
        let _ = backend.complete_ready();
        r.is_ok()
    };
    if !step(&mut backend) {
        assert_eq!(grants.mapped_pages(), 0);
        return;
    }
    for u in updates.chunks_exact(4).take(16) {
        let v = u32::from_le_bytes([u[0], u[1], u[2], u[3]]);
        let _ = vm_memory::Bytes::store(
            &mem.as_volatile_slice(),
            v,
            sring::REQ_PROD,
            std::sync::atomic::Ordering::SeqCst,
        );
        if !step(&mut backend) {
            break;
        }
    }
    drop(backend);
    assert_eq!(grants.mapped_pages(), 0);
}
