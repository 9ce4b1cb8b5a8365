//! Our blkif and ring layouts against the real io/blkif.h and io/ring.h,
//! compiled natively (x86_64) and with -m32 (x86_32).
#![allow(clippy::cast_possible_wrap)]

#[path = "common/cbuild.rs"]
mod cbuild;

use std::collections::HashMap;
use std::mem::{offset_of, size_of};

use tgtkit_blkif::request::{Abi, Operation, Status};
use tgtkit_blkif::wire::*;
use tgtkit_xen_ring::{sring, RingLayout};

fn c_layout(flags: &[&str], name: &str) -> Option<HashMap<String, String>> {
    if cbuild::skipped() {
        return None;
    }
    let exe = cbuild::compile("tests/c/blkif_layout.c", name, flags);
    Some(cbuild::parse(&cbuild::run(&exe)))
}

struct Check<'a>(&'a HashMap<String, String>, Vec<String>);

impl Check<'_> {
    fn eq(&mut self, key: &str, ours: usize) {
        let c: i64 = self
            .0
            .get(key)
            .unwrap_or_else(|| panic!("{key} not printed"))
            .parse()
            .unwrap();
        if c != ours as i64 {
            self.1.push(format!("{key}: C {c}, ours {ours}"));
        }
    }
    fn done(self) {
        assert!(
            self.1.is_empty(),
            "layout mismatches:\n{}",
            self.1.join("\n")
        );
    }
}

fn common(c: &mut Check<'_>, abi: Abi) {
    c.eq("blkif_sring.req_prod", sring::REQ_PROD);
    c.eq("blkif_sring.req_event", sring::REQ_EVENT);
    c.eq("blkif_sring.rsp_prod", sring::RSP_PROD);
    c.eq("blkif_sring.rsp_event", sring::RSP_EVENT);
    c.eq("blkif_sring.pvt", sring::PVT);
    c.eq("blkif_sring.__pad", sring::PAD);
    c.eq("blkif_sring.ring", sring::RING);
    c.eq("sizeof.blkif_sring_entry", abi.entry_size());
    for pages in [1usize, 2, 4, 16] {
        let ours = RingLayout::new(pages * 4096, abi.entry_size())
            .unwrap()
            .size();
        c.eq(&format!("ring_size.{pages}"), ours as usize);
    }
    c.eq("sizeof.blkif_request_segment", size_of::<RawSegment>());
    c.eq("blkif_request_segment.gref", offset_of!(RawSegment, gref));
    c.eq(
        "blkif_request_segment.first_sect",
        offset_of!(RawSegment, first_sect),
    );
    c.eq(
        "blkif_request_segment.last_sect",
        offset_of!(RawSegment, last_sect),
    );
    c.eq("sizeof.blkif_request", abi.request_size());
    c.eq("sizeof.blkif_response", abi.response_size());
    c.eq("BLKIF_OP_READ", Operation::READ.0.into());
    c.eq("BLKIF_OP_WRITE", Operation::WRITE.0.into());
    c.eq("BLKIF_OP_WRITE_BARRIER", Operation::WRITE_BARRIER.0.into());
    c.eq(
        "BLKIF_OP_FLUSH_DISKCACHE",
        Operation::FLUSH_DISKCACHE.0.into(),
    );
    c.eq("BLKIF_OP_RESERVED_1", Operation::RESERVED_1.0.into());
    c.eq("BLKIF_OP_DISCARD", Operation::DISCARD.0.into());
    c.eq("BLKIF_OP_INDIRECT", Operation::INDIRECT.0.into());
    c.eq("BLKIF_MAX_SEGMENTS_PER_REQUEST", MAX_SEGMENTS_PER_REQUEST);
    c.eq(
        "BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST",
        MAX_INDIRECT_PAGES_PER_REQUEST,
    );
    c.eq("BLKIF_DISCARD_SECURE", 1);
    assert_eq!(c.0["BLKIF_RSP_OKAY"], Status::OKAY.0.to_string());
    assert_eq!(c.0["BLKIF_RSP_ERROR"], Status::ERROR.0.to_string());
    assert_eq!(
        c.0["BLKIF_RSP_EOPNOTSUPP"],
        Status::EOPNOTSUPP.0.to_string()
    );
    assert_eq!(
        Abi::from_protocol(Some(&c.0["protocol.x86_32"])).unwrap(),
        Abi::X86_32
    );
    assert_eq!(
        Abi::from_protocol(Some(&c.0["protocol.x86_64"])).unwrap(),
        Abi::X86_64
    );
}

macro_rules! fields {
    ($c:expr, $cname:literal, $ty:ty, [$($f:ident),*]) => {
        $c.eq(concat!("sizeof.", $cname), size_of::<$ty>());
        $( $c.eq(concat!($cname, ".", stringify!($f)), offset_of!($ty, $f)); )*
    };
}

#[test]
fn accepts_x86_64_layout_of_real_headers() {
    let Some(map) = c_layout(&[], "blkif_layout_64") else {
        return;
    };
    assert_eq!(
        Abi::from_protocol(Some(&map["protocol.native"])).unwrap(),
        Abi::native()
    );
    let mut c = Check(&map, Vec::new());
    common(&mut c, Abi::X86_64);
    fields!(
        c,
        "blkif_request",
        RawRequest64,
        [operation, nr_segments, handle, id, sector_number, seg]
    );
    fields!(
        c,
        "blkif_request_discard",
        RawDiscard64,
        [operation, flag, handle, id, sector_number, nr_sectors]
    );
    fields!(
        c,
        "blkif_request_indirect",
        RawIndirect64,
        [
            operation,
            indirect_op,
            nr_segments,
            id,
            sector_number,
            handle,
            indirect_grefs
        ]
    );
    fields!(c, "blkif_response", RawResponse64, [id, operation, status]);
    c.done();
}

#[test]
fn accepts_x86_32_layout_of_real_headers() {
    let Some(map) = c_layout(&["-m32"], "blkif_layout_32") else {
        return;
    };
    assert_eq!(map["protocol.native"], "x86_32-abi");
    let mut c = Check(&map, Vec::new());
    common(&mut c, Abi::X86_32);
    fields!(
        c,
        "blkif_request",
        RawRequest32,
        [operation, nr_segments, handle, id, sector_number, seg]
    );
    fields!(
        c,
        "blkif_request_discard",
        RawDiscard32,
        [operation, flag, handle, id, sector_number, nr_sectors]
    );
    fields!(
        c,
        "blkif_request_indirect",
        RawIndirect32,
        [
            operation,
            indirect_op,
            nr_segments,
            id,
            sector_number,
            handle,
            indirect_grefs
        ]
    );
    fields!(c, "blkif_response", RawResponse32, [id, operation, status]);
    c.done();
}
