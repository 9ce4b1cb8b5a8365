//! Writes the Xen seed corpora (`TGTKIT_WRITE_SEEDS=1 cargo test -p
//! tgtkit-fuzz --test xen_seeds`); without the variable it checks that the
//! committed seeds are what this generator makes.
#![allow(clippy::cast_possible_truncation)] // seeds pack small values by hand

use std::path::Path;

use tgtkit_blkif::request::{encode_indirect_segments, Abi, Request, RwKind, Segment, SegmentList};
use tgtkit_vscsiif::request as v;

fn seg(gref: u32, f: u8, l: u8) -> Segment {
    Segment {
        gref,
        first_sect: f,
        last_sect: l,
    }
}

fn rw(kind: RwKind, id: u64, sector: u64, segs: &[Segment]) -> Request {
    Request::ReadWrite {
        kind,
        id,
        handle: 0,
        sector,
        segments: SegmentList::new(segs).unwrap(),
        extra: false,
    }
}

fn blkif_requests() -> Vec<Request> {
    vec![
        rw(RwKind::Read, 1, 0, &[seg(0, 0, 7)]),
        rw(RwKind::Write, 2, 8, &[seg(1, 0, 7), seg(2, 3, 5)]),
        rw(
            RwKind::Read,
            3,
            16,
            &(0..11).map(|i| seg(i, 0, 7)).collect::<Vec<_>>(),
        ),
        rw(RwKind::WriteBarrier, 4, 24, &[seg(3, 0, 0)]),
        rw(RwKind::Flush, 5, 0, &[]),
        rw(RwKind::Write, 6, 63, &[seg(4, 7, 7)]),
        Request::Discard {
            id: 7,
            handle: 0,
            sector: 0,
            nr_sectors: 16,
            secure: false,
        },
        Request::Discard {
            id: 8,
            handle: 0,
            sector: 32,
            nr_sectors: 8,
            secure: true,
        },
        Request::Indirect {
            kind: RwKind::Read,
            id: 9,
            handle: 0,
            sector: 0,
            nr_segments: 3,
            indirect_grefs: [5, 0, 0, 0, 0, 0, 0, 0],
        },
        Request::Indirect {
            kind: RwKind::Write,
            id: 10,
            handle: 0,
            sector: 8,
            nr_segments: 40,
            indirect_grefs: [6, 0, 0, 0, 0, 0, 0, 0],
        },
    ]
}

fn blkif_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (flags, abi) in [(0u8, Abi::X86_64), (1, Abi::X86_32)] {
        for r in blkif_requests() {
            let mut s = vec![0u8; 1 + abi.request_size()];
            s[0] = flags;
            r.encode(abi, &mut s[1..]);
            if let Request::Indirect { nr_segments, .. } = r {
                let segs: Vec<_> = (0..u32::from(nr_segments))
                    .map(|i| seg(i % 8, 0, (i % 8) as u8))
                    .collect();
                s.extend(encode_indirect_segments(&segs));
            }
            out.push(s);
        }
        // Malformed: reserved op, 12 segments, first > last, extra flag.
        let mut base = vec![0u8; 1 + abi.request_size()];
        base[0] = flags;
        rw(RwKind::Read, 11, 0, &[seg(0, 0, 7)]).encode(abi, &mut base[1..]);
        let seg_at = 1 + if abi == Abi::X86_64 { 24 } else { 20 };
        for (at, b) in [(1, 4u8), (2, 12), (seg_at + 4, 6), (1, 0x80)] {
            let mut s = base.clone();
            s[at] = b;
            if b == 0x80 {
                s[0] |= 2;
            }
            out.push(s);
        }
    }
    out
}

fn vcdb(
    rqid: u16,
    bytes: &[u8],
    dir: v::DataDirection,
    segs: &[v::Segment],
    granted: bool,
) -> v::Request {
    let mut c = [0u8; 16];
    c[..bytes.len()].copy_from_slice(bytes);
    let list = v::SegmentList::new(segs).unwrap();
    v::Request::Cdb {
        rqid,
        addr: (0, 1, 0),
        cdb: c,
        cmd_len: bytes.len() as u8,
        direction: dir,
        segments: if granted {
            v::DataSegments::Granted(list)
        } else {
            v::DataSegments::Direct(list)
        },
    }
}

fn vscsiif_seeds() -> Vec<Vec<u8>> {
    let s = |gref, offset, length| v::Segment {
        gref,
        offset,
        length,
    };
    let reqs = vec![
        vcdb(
            1,
            &[0x12, 0, 0, 0, 96, 0],
            v::DataDirection::FromDevice,
            &[s(0, 0, 96)],
            false,
        ),
        vcdb(
            2,
            &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            v::DataDirection::FromDevice,
            &[s(1, 4088, 8)],
            false,
        ),
        vcdb(
            3,
            &[0x2a, 0, 0, 0, 0, 5, 0, 0, 8, 0],
            v::DataDirection::ToDevice,
            &[s(2, 96, 1000), s(3, 0, 3096)],
            false,
        ),
        vcdb(
            4,
            &[0x28, 0, 0, 0, 0, 5, 0, 0, 8, 0],
            v::DataDirection::FromDevice,
            &[s(4, 0, 4096)],
            false,
        ),
        vcdb(5, &[0; 6], v::DataDirection::None, &[], false),
        vcdb(
            6,
            &[0x28, 0, 0, 0, 0, 0, 0, 0, 100, 0],
            v::DataDirection::FromDevice,
            &[s(0, 0, 480), s(1, 800, 320)],
            true,
        ),
        vcdb(
            7,
            &[0x88, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0],
            v::DataDirection::FromDevice,
            &[s(5, 0, 512)],
            false,
        ),
        v::Request::Abort {
            rqid: 8,
            addr: (0, 1, 0),
            ref_rqid: 3,
        },
        v::Request::Reset {
            rqid: 9,
            addr: (0, 1, 0),
        },
    ];
    let mut out = Vec::new();
    for r in reqs {
        let mut b = vec![1u8; 253];
        r.encode(&mut b[1..]);
        out.push(b.clone());
        // The same with SG grants off, and with cmd_len / direction broken.
        b[0] = 0;
        out.push(b.clone());
        b[4] = 17;
        out.push(b.clone());
        b[4] = 6;
        b[31] = 7;
        out.push(b);
    }
    let rsp =
        v::Response::new(1, v::Action::CDB, 0x02, 4).with_sense(&[0x70, 0, 5, 0, 0, 0, 0, 10]);
    let mut b = vec![0u8; 253];
    rsp.encode(&mut b[1..]);
    out.push(b);
    out
}

fn ring_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (flags, abi) in [
        (0x0au8, Abi::X86_64),
        (0x0b, Abi::X86_32),
        (0x24, Abi::X86_64),
        (0x13, Abi::X86_32),
    ] {
        let reqs = blkif_requests();
        let mut page = vec![0u8; 4096];
        let n = reqs.len() as u32;
        page[0..4].copy_from_slice(&n.to_le_bytes()); // req_prod
        page[4..8].copy_from_slice(&1u32.to_le_bytes()); // req_event
        page[12..16].copy_from_slice(&1u32.to_le_bytes()); // rsp_event
        for (i, r) in reqs.iter().enumerate() {
            let at = 64 + i * abi.entry_size();
            r.encode(abi, &mut page[at..at + abi.request_size()]);
        }
        // Indirect segment pages are granted page 5 and 6 (left zero here:
        // a zero page is a valid list of sector-0 segments of gref 0).
        let mut s = vec![flags];
        s.extend_from_slice(&page);
        out.push(s.clone());
        // Then more producer updates: valid, a jump past the ring, a rewind.
        for upd in [
            [n, n + 2].as_slice(),
            &[n + 40],
            &[3],
            &[u32::MAX],
            &[n, 0x8000_0000],
        ] {
            let mut t = s.clone();
            for u in upd {
                t.extend_from_slice(&u.to_le_bytes());
            }
            out.push(t);
        }
    }
    // An empty ring and a page of 0xff.
    out.push(vec![0u8; 1 + 4096]);
    let mut ff = vec![0xffu8; 1 + 4096];
    ff[0] = 0x0a;
    out.push(ff);
    out
}

fn sync(name: &str, seeds: &[Vec<u8>]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let write = std::env::var("TGTKIT_WRITE_SEEDS").as_deref() == Ok("1");
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (i, s) in seeds.iter().enumerate() {
        let path = dir.join(format!("seed-{i:03}"));
        if write {
            std::fs::write(&path, s).unwrap();
        } else {
            let have = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(&have, s, "{} differs from the generator", path.display());
        }
    }
}

#[test]
fn accepts_committed_xen_seeds() {
    sync("blkif_request_decode", &blkif_seeds());
    sync("vscsiif_request_decode", &vscsiif_seeds());
    sync("xen_ring_consumer", &ring_seeds());
}
