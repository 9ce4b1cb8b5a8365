//! The gntdev and evtchn UAPI layouts and ioctl numbers, the xs_wire
//! header, message types and errno table, and the xenbus states, against
//! the real headers (libxen-dev: `xen/sys/{gntdev,evtchn}.h`,
//! `xen/io/{xs_wire,xenbus}.h`).
#![allow(clippy::cast_possible_wrap)]

#[path = "../../../blkif/tests/common/cbuild.rs"]
mod cbuild;

use std::collections::HashMap;
use std::mem::{offset_of, size_of};

use tgtkit_xen::evtchn::sys as ev;
use tgtkit_xen::gntdev::sys as gd;
use tgtkit_xen::xenbus::XenbusState;
use tgtkit_xen::xenstore::wire::{self, MsgType, RawHeader};

struct Check(HashMap<String, String>, Vec<String>);

impl Check {
    fn eq(&mut self, key: &str, ours: i64) {
        let Some(c) = self.0.get(key) else {
            self.1.push(format!("{key}: not printed"));
            return;
        };
        let c: i64 = c.parse().unwrap();
        if c != ours {
            self.1.push(format!("{key}: C {c}, ours {ours}"));
        }
    }
    fn u(&mut self, key: &str, ours: usize) {
        self.eq(key, ours as i64);
    }
}

#[test]
fn layouts_match_the_headers() {
    if cbuild::skipped() {
        return;
    }
    let exe = cbuild::compile("tests/c/xen_dev_layout.c", "xen_dev_layout", &[]);
    let mut c = Check(cbuild::parse(&cbuild::run(&exe)), Vec::new());

    c.u(
        "sizeof.ioctl_gntdev_grant_ref",
        size_of::<gd::GrantRefArg>(),
    );
    c.u(
        "ioctl_gntdev_grant_ref.domid",
        offset_of!(gd::GrantRefArg, domid),
    );
    c.u(
        "ioctl_gntdev_grant_ref.ref",
        offset_of!(gd::GrantRefArg, gref),
    );
    c.u("sizeof.ioctl_gntdev_map_grant_ref", gd::MAP_GRANT_REF_SIZE);
    c.u(
        "ioctl_gntdev_map_grant_ref.count",
        offset_of!(gd::MapGrantRefHeader, count),
    );
    c.u(
        "ioctl_gntdev_map_grant_ref.index",
        offset_of!(gd::MapGrantRefHeader, index),
    );
    c.u(
        "ioctl_gntdev_map_grant_ref.refs",
        size_of::<gd::MapGrantRefHeader>(),
    );
    c.u(
        "sizeof.ioctl_gntdev_unmap_grant_ref",
        size_of::<gd::UnmapGrantRef>(),
    );
    c.u(
        "ioctl_gntdev_unmap_grant_ref.index",
        offset_of!(gd::UnmapGrantRef, index),
    );
    c.u(
        "ioctl_gntdev_unmap_grant_ref.count",
        offset_of!(gd::UnmapGrantRef, count),
    );
    c.u(
        "sizeof.ioctl_gntdev_set_max_grants",
        size_of::<gd::SetMaxGrants>(),
    );
    c.u(
        "sizeof.ioctl_gntdev_grant_copy_segment",
        size_of::<gd::GrantCopySegment>(),
    );
    c.u(
        "ioctl_gntdev_grant_copy_segment.source",
        offset_of!(gd::GrantCopySegment, source),
    );
    c.u(
        "ioctl_gntdev_grant_copy_segment.dest",
        offset_of!(gd::GrantCopySegment, dest),
    );
    c.u(
        "ioctl_gntdev_grant_copy_segment.len",
        offset_of!(gd::GrantCopySegment, len),
    );
    c.u(
        "ioctl_gntdev_grant_copy_segment.flags",
        offset_of!(gd::GrantCopySegment, flags),
    );
    c.u(
        "ioctl_gntdev_grant_copy_segment.status",
        offset_of!(gd::GrantCopySegment, status),
    );
    c.u(
        "ioctl_gntdev_grant_copy_segment.source.foreign.ref",
        offset_of!(gd::CopyForeign, gref),
    );
    c.u(
        "ioctl_gntdev_grant_copy_segment.source.foreign.offset",
        offset_of!(gd::CopyForeign, offset),
    );
    c.u(
        "ioctl_gntdev_grant_copy_segment.source.foreign.domid",
        offset_of!(gd::CopyForeign, domid),
    );
    c.u("sizeof.ioctl_gntdev_grant_copy", size_of::<gd::GrantCopy>());
    c.u(
        "ioctl_gntdev_grant_copy.count",
        offset_of!(gd::GrantCopy, count),
    );
    c.u(
        "ioctl_gntdev_grant_copy.segments",
        offset_of!(gd::GrantCopy, segments),
    );
    c.eq(
        "IOCTL_GNTDEV_MAP_GRANT_REF",
        gd::IOCTL_GNTDEV_MAP_GRANT_REF.into(),
    );
    c.eq(
        "IOCTL_GNTDEV_UNMAP_GRANT_REF",
        gd::IOCTL_GNTDEV_UNMAP_GRANT_REF.into(),
    );
    c.eq(
        "IOCTL_GNTDEV_SET_MAX_GRANTS",
        gd::IOCTL_GNTDEV_SET_MAX_GRANTS.into(),
    );
    c.eq(
        "IOCTL_GNTDEV_GRANT_COPY",
        gd::IOCTL_GNTDEV_GRANT_COPY.into(),
    );
    c.eq("GNTCOPY_source_gref", gd::GNTCOPY_SOURCE_GREF.into());
    c.eq("GNTCOPY_dest_gref", gd::GNTCOPY_DEST_GREF.into());

    c.u(
        "sizeof.ioctl_evtchn_bind_interdomain",
        size_of::<ev::BindInterdomain>(),
    );
    c.u(
        "ioctl_evtchn_bind_interdomain.remote_domain",
        offset_of!(ev::BindInterdomain, remote_domain),
    );
    c.u(
        "ioctl_evtchn_bind_interdomain.remote_port",
        offset_of!(ev::BindInterdomain, remote_port),
    );
    c.u("sizeof.ioctl_evtchn_unbind", size_of::<ev::PortArg>());
    c.u("sizeof.ioctl_evtchn_notify", size_of::<ev::PortArg>());
    c.eq(
        "IOCTL_EVTCHN_BIND_INTERDOMAIN",
        ev::IOCTL_EVTCHN_BIND_INTERDOMAIN.into(),
    );
    c.eq("IOCTL_EVTCHN_UNBIND", ev::IOCTL_EVTCHN_UNBIND.into());
    c.eq("IOCTL_EVTCHN_NOTIFY", ev::IOCTL_EVTCHN_NOTIFY.into());

    c.u("sizeof.xsd_sockmsg", size_of::<RawHeader>());
    c.u("sizeof.xsd_sockmsg", wire::HEADER_LEN);
    c.u("XENSTORE_PAYLOAD_MAX", wire::PAYLOAD_MAX);
    c.u("XENSTORE_ABS_PATH_MAX", wire::ABS_PATH_MAX);
    for n in 0..=0xffff_u32 {
        if let Some(name) = MsgType(n).name() {
            c.eq(&format!("XS_{name}"), n.into());
        }
    }
    for (i, (e, s)) in wire::XSD_ERRORS.iter().enumerate() {
        let key = format!("xsd_errors.{i}");
        match c.0.get(&key) {
            Some(cs) if cs == s && e.as_str() == *s => {}
            other => c.1.push(format!("{key}: C {other:?}, ours {s}")),
        }
    }
    assert!(
        !c.0.contains_key(&format!("xsd_errors.{}", wire::XSD_ERRORS.len())),
        "C has more errnos"
    );
    for (name, s) in [
        ("Unknown", XenbusState::UNKNOWN),
        ("Initialising", XenbusState::INITIALISING),
        ("InitWait", XenbusState::INIT_WAIT),
        ("Initialised", XenbusState::INITIALISED),
        ("Connected", XenbusState::CONNECTED),
        ("Closing", XenbusState::CLOSING),
        ("Closed", XenbusState::CLOSED),
        ("Reconfiguring", XenbusState::RECONFIGURING),
        ("Reconfigured", XenbusState::RECONFIGURED),
    ] {
        c.eq(&format!("XenbusState{name}"), s.0.into());
        assert_eq!(s.name(), name);
    }
    assert!(c.1.is_empty(), "layout mismatches:\n{}", c.1.join("\n"));
}
