//! Our vscsiif layout against the real io/vscsiif.h (native and -m32: the
//! structure has no ABI-dependent padding, and both must agree).

mod common;

use std::mem::{offset_of, size_of};

use common::cbuild;
use tgtkit_vscsiif::request::{
    result_host, result_status, result_word, RSLT_RESET_FAILED, RSLT_RESET_SUCCESS,
};
use tgtkit_vscsiif::wire::*;
use tgtkit_vscsiif::{Action, HostByte};
use tgtkit_xen_ring::{sring, RingLayout};

fn check(flags: &[&str], name: &str) {
    if cbuild::skipped() {
        return;
    }
    let exe = cbuild::compile("tests/c/vscsiif_layout.c", name, flags);
    let map = cbuild::parse(&cbuild::run(&exe));
    let mut bad = Vec::new();
    let mut eq = |k: &str, ours: i64| {
        let c: i64 = map
            .get(k)
            .unwrap_or_else(|| panic!("{k} not printed"))
            .parse()
            .unwrap();
        if c != ours {
            bad.push(format!("{k}: C {c}, ours {ours}"));
        }
    };
    let u = |v: usize| i64::try_from(v).unwrap();
    eq("vscsiif_sring.req_prod", u(sring::REQ_PROD));
    eq("vscsiif_sring.req_event", u(sring::REQ_EVENT));
    eq("vscsiif_sring.rsp_prod", u(sring::RSP_PROD));
    eq("vscsiif_sring.rsp_event", u(sring::RSP_EVENT));
    eq("vscsiif_sring.pvt", u(sring::PVT));
    eq("vscsiif_sring.__pad", u(sring::PAD));
    eq("vscsiif_sring.ring", u(sring::RING));
    eq(
        "sizeof.vscsiif_sring_entry",
        u(tgtkit_vscsiif::backend::ENTRY_SIZE),
    );
    eq(
        "ring_size.1",
        i64::from(
            RingLayout::new(4096, tgtkit_vscsiif::backend::ENTRY_SIZE)
                .unwrap()
                .size(),
        ),
    );
    eq("sizeof.scsiif_request_segment", u(size_of::<RawSegment>()));
    eq(
        "scsiif_request_segment.gref",
        u(offset_of!(RawSegment, gref)),
    );
    eq(
        "scsiif_request_segment.offset",
        u(offset_of!(RawSegment, offset)),
    );
    eq(
        "scsiif_request_segment.length",
        u(offset_of!(RawSegment, length)),
    );
    macro_rules! fields {
        ($cname:literal, $ty:ty, [$($f:ident),*]) => {
            eq(concat!("sizeof.", $cname), u(size_of::<$ty>()));
            $( eq(concat!($cname, ".", stringify!($f)), u(offset_of!($ty, $f))); )*
        };
    }
    fields!(
        "vscsiif_request",
        RawRequest,
        [
            rqid,
            act,
            cmd_len,
            cmnd,
            timeout_per_command,
            channel,
            id,
            lun,
            ref_rqid,
            sc_data_direction,
            nr_segments,
            seg,
            reserved
        ]
    );
    fields!(
        "vscsiif_response",
        RawResponse,
        [
            rqid,
            act,
            sense_len,
            sense_buffer,
            rslt,
            residual_len,
            reserved
        ]
    );
    eq("VSCSIIF_ACT_SCSI_CDB", Action::CDB.0.into());
    eq("VSCSIIF_ACT_SCSI_ABORT", Action::ABORT.0.into());
    eq("VSCSIIF_ACT_SCSI_RESET", Action::RESET.0.into());
    eq("VSCSIIF_ACT_SCSI_SG_PRESET", Action::SG_PRESET.0.into());
    eq("VSCSIIF_SG_TABLESIZE", u(SG_TABLESIZE));
    eq("VSCSIIF_MAX_COMMAND_SIZE", u(MAX_COMMAND_SIZE));
    eq("VSCSIIF_SENSE_BUFFERSIZE", u(SENSE_BUFFERSIZE));
    eq("VSCSIIF_SG_PER_PAGE", u(SG_PER_PAGE));
    eq("VSCSIIF_SG_GRANT", SG_GRANT.into());
    eq("RSLT_RESET_SUCCESS", RSLT_RESET_SUCCESS.into());
    eq("RSLT_RESET_FAILED", RSLT_RESET_FAILED.into());
    eq("RSLT_HOST_NO_CONNECT", HostByte::NO_CONNECT.0.into());
    eq("RSLT_HOST_ABORT", HostByte::ABORT.0.into());
    eq("RSLT_HOST_ERROR", HostByte::ERROR.0.into());
    eq("RSLT_HOST_OF_0x070002", result_host(0x07_0002).0.into());
    eq("RSLT_STATUS_OF_0x070002", result_status(0x07_0002).into());
    assert_eq!(result_word(HostByte::ERROR, 2), 0x07_0002);
    assert!(bad.is_empty(), "layout mismatches:\n{}", bad.join("\n"));
}

#[test]
fn accepts_layout_of_real_header_x86_64() {
    check(&[], "vscsiif_layout_64");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn accepts_layout_of_real_header_x86_32() {
    check(&["-m32"], "vscsiif_layout_32");
}
