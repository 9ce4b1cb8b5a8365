//! Writes the SCSI seed corpora (run with `TGTKIT_WRITE_SEEDS=1 cargo test
//! -p tgtkit-fuzz --test seeds`); without the variable it checks that the
//! committed seeds are what this generator makes.
#![allow(clippy::cast_possible_truncation)] // seeds pack lengths by hand

use std::path::Path;

use tgtkit_scsi_core::table::COMMANDS;

fn cdb_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for row in COMMANDS {
        let mut b = vec![0u8; usize::from(row.cdb_len)];
        b[0] = row.opcode;
        if let Some(sa) = row.service_action {
            b[1] = sa as u8;
        }
        out.push(b.clone());
        // A typical valid form: some length and allocation bytes set.
        let n = b.len();
        b[n - 2] = 0x08;
        b[n - 3] = 0x01;
        out.push(b);
    }
    out.push(vec![0x88, 0, 0]); // short
    out.push(vec![0x00, 0, 0, 0, 0, 0x04]); // NACA
    out.push(vec![0xff; 16]);
    out
}

fn record(flags: u8, cdb: &[u8], buf: &[u8]) -> Vec<u8> {
    let mut r = vec![flags, cdb.len() as u8];
    r.extend_from_slice(cdb);
    r.extend_from_slice(&(buf.len() as u16).to_be_bytes());
    r.extend_from_slice(buf);
    r
}

fn command_seeds() -> Vec<Vec<u8>> {
    let read16 = |lba: u8, n: u8| {
        let mut c = vec![0u8; 16];
        c[0] = 0x88;
        c[9] = lba;
        c[13] = n;
        c
    };
    let mut write16 = read16(2, 1);
    write16[0] = 0x8a;
    let inquiry = vec![0x12, 0, 0, 0, 0xff, 0];
    let vpd = vec![0x12, 1, 0x83, 0, 0xff, 0];
    let mode_sense = vec![0x1a, 0, 0x3f, 0, 0xff, 0];
    let mut mode_select = vec![0x15, 0x10, 0, 0, 16, 0];
    let ctl = [
        0u8, 0, 0, 0, 0x0a, 0x0a, 0x04, 0x10, 0, 0, 0, 0, 0xff, 0xff, 0, 0,
    ];
    let rsoc = vec![0xa3, 0x0c, 0x80, 0, 0, 0, 0, 0, 0x10, 0, 0, 0];
    let unmap = vec![0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0];
    let mut unmap_list = vec![0, 22, 0, 16, 0, 0, 0, 0];
    unmap_list.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 0]);
    let mut caw = vec![0u8; 16];
    caw[0] = 0x89;
    caw[13] = 1;
    // WRITE ATOMIC (16) of 8 blocks at LBA 8.
    let mut atomic = vec![0u8; 16];
    atomic[0] = 0x9c;
    atomic[9] = 8;
    atomic[13] = 8;
    let tur = vec![0u8; 6];
    mode_select[4] = ctl.len() as u8;
    let prevent = vec![0x1e, 0, 0, 0, 1, 0];
    let rtpg = vec![0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0];
    let stpg = vec![0xa4, 0x0a, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0];
    let block_erase = vec![0x48, 0x02, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut overwrite = vec![0x48, 0x01, 0, 0, 0, 0, 0, 0, 8, 0];
    overwrite[8] = 8;
    // The CD at LUN 1 (flags 0x81): its own commands, an eject and a load.
    let cd = 0x81;
    let toc = vec![0x43, 0x02, 0, 0, 0, 0, 0, 0, 0xff, 0];
    let session = vec![0x43, 0, 0, 0, 0, 0, 0, 0, 12, 0x40];
    let config = vec![0x46, 0, 0, 0, 0, 0, 0, 0x01, 0, 0];
    let gesn = vec![0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0];
    let disc = vec![0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0];
    let track = vec![0x52, 1, 0, 0, 0, 1, 0, 0, 48, 0];
    let mechanism = vec![0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0];
    let read10 = vec![0x28, 0, 0, 0, 0, 16, 0, 0, 1, 0];
    let eject = vec![0x1b, 0, 0, 0, 2, 0];
    let load = vec![0x1b, 0, 0, 0, 3, 0];
    // The tape at LUN 2 (flags 0x82): blocks and a filemark, then reads
    // that meet a short block and the filemark, spacing and positions.
    let tape = 0x82;
    let write6 = |n: u8| vec![0x0a, 0, 0, 0, n, 0];
    let read6 = |n: u8| vec![0x08, 0, 0, 0, n, 0];
    let weof = vec![0x10, 0, 0, 0, 1, 0];
    let rewind = vec![0x01, 0, 0, 0, 0, 0];
    let space_back = vec![0x11, 0x00, 0xff, 0xff, 0xff, 0];
    let space_fm = vec![0x11, 0x01, 0, 0, 1, 0];
    let position = vec![0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let long_position = vec![0x34, 0x06, 0, 0, 0, 0, 0, 0, 0, 0];
    let limits = vec![0x05, 0, 0, 0, 0, 0];
    let locate = vec![0x2b, 0, 0, 0, 0, 0, 1, 0, 0, 0];
    let unload = vec![0x1b, 0, 0, 0, 0, 0];
    let load_tape = vec![0x1b, 0, 0, 0, 1, 0];
    let tape_mode = vec![0x1a, 0, 0, 0, 12, 0];
    let fixed = [0u8, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x02, 0];
    let select = vec![0x15, 0x10, 0, 0, 12, 0];
    vec![
        [record(0, &tur, &[]), record(0, &tur, &[])].concat(),
        record(0, &inquiry, &[0; 255]),
        record(0x80, &inquiry, &[0; 64]),
        [record(0, &tur, &[]), record(0, &vpd, &[0; 255])].concat(),
        [
            record(0, &tur, &[]),
            record(0, &write16, &[0x5a; 512]),
            record(0, &read16(2, 1), &[0; 512]),
        ]
        .concat(),
        [
            record(0, &tur, &[]),
            record(0x10, &read16(60, 8), &[0; 1024]),
        ]
        .concat(),
        [
            record(0, &tur, &[]),
            record(0, &mode_sense, &[0; 255]),
            record(0, &mode_select, &ctl),
        ]
        .concat(),
        [record(0, &tur, &[]), record(0, &rsoc, &[0; 2048])].concat(),
        [record(0, &tur, &[]), record(0x20, &unmap, &unmap_list)].concat(),
        [record(0, &tur, &[]), record(0, &caw, &[0; 1024])].concat(),
        [
            record(0, &tur, &[]),
            record(0, &atomic, &[0xa6; 4096]),
            record(0, &read16(8, 8), &[0; 4096]),
        ]
        .concat(),
        [
            record(0, &tur, &[]),
            record(0, &prevent, &[]),
            record(0, &rtpg, &[0; 255]),
            record(0, &stpg, &[0, 0, 0, 0, 0x02, 0, 0, 1]),
        ]
        .concat(),
        [
            record(0, &tur, &[]),
            record(0, &overwrite, &[1, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef]),
            record(0, &block_erase, &[]),
            record(0, &read16(0, 1), &[0; 512]),
        ]
        .concat(),
        [
            record(cd, &tur, &[]),
            record(cd, &toc, &[0; 255]),
            record(cd, &session, &[0; 12]),
            record(cd, &config, &[0; 256]),
            record(cd, &read10, &[0; 2048]),
        ]
        .concat(),
        [
            record(cd, &tur, &[]),
            record(cd, &gesn, &[0; 8]),
            record(cd, &eject, &[]),
            record(cd, &gesn, &[0; 8]),
            record(cd, &mechanism, &[0; 8]),
            record(cd, &load, &[]),
            record(cd, &disc, &[0; 34]),
            record(cd, &track, &[0; 48]),
        ]
        .concat(),
        [
            record(tape, &tur, &[]),
            record(tape, &limits, &[0; 6]),
            record(tape, &write6(100), &[0x31; 100]),
            record(tape, &write6(40), &[0x32; 40]),
            record(tape, &weof, &[]),
            record(tape, &rewind, &[]),
            record(tape, &read6(100), &[0; 100]),
            record(tape, &read6(200), &[0; 200]),
            record(tape, &read6(200), &[0; 200]),
            record(tape, &position, &[0; 20]),
        ]
        .concat(),
        [
            record(tape, &tur, &[]),
            record(tape, &write6(64), &[0x33; 64]),
            record(tape, &weof, &[]),
            record(tape, &space_back, &[]),
            record(tape, &space_fm, &[]),
            record(tape, &long_position, &[0; 32]),
            record(tape, &locate, &[]),
            record(tape, &tape_mode, &[0; 12]),
            record(tape, &select, &fixed),
            record(tape, &unload, &[]),
            record(tape, &load_tape, &[]),
        ]
        .concat(),
    ]
}

/// EXTENDED COPY parameter lists for `xcopy_params`: copies that work,
/// and one of each refusal.
fn xcopy_seeds() -> Vec<Vec<u8>> {
    let cscd = |naa: u64, block_len: u32, code: u8| {
        let mut d = vec![0u8; 32];
        d[0] = code;
        d[4] = 1;
        d[5] = 3;
        d[7] = 8;
        d[8..16].copy_from_slice(&((3u64 << 60) | naa).to_be_bytes());
        d[29..32].copy_from_slice(&block_len.to_be_bytes()[1..]);
        d
    };
    let lu = |i: usize| cscd(tgtkit_fuzz::scsi::XCOPY_NAA[i], [512, 4096][i], 0xe4);
    let seg = |code: u8, src: u16, dst: u16, blocks: u16, from: u64, to: u64| {
        let mut d = vec![0u8; 28];
        d[0] = code;
        d[3] = 0x18;
        d[4..6].copy_from_slice(&src.to_be_bytes());
        d[6..8].copy_from_slice(&dst.to_be_bytes());
        d[10..12].copy_from_slice(&blocks.to_be_bytes());
        d[12..20].copy_from_slice(&from.to_be_bytes());
        d[20..28].copy_from_slice(&to.to_be_bytes());
        d
    };
    let list = |id: u8, usage: u8, cscds: &[Vec<u8>], segs: &[Vec<u8>]| {
        let (c, s) = (cscds.concat(), segs.concat());
        let mut p = vec![0u8; 16];
        p[0] = id;
        p[1] = usage << 3;
        p[2..4].copy_from_slice(&(c.len() as u16).to_be_bytes());
        p[8..12].copy_from_slice(&(s.len() as u32).to_be_bytes());
        [p, c, s].concat()
    };
    let simple = list(1, 0, &[lu(0)], &[seg(2, 0, 0, 8, 0, 32)]);
    vec![
        Vec::new(),
        simple.clone(),
        list(
            2,
            0,
            &[lu(0), lu(1)],
            &[seg(2, 0, 1, 16, 0, 2), seg(2, 1, 0, 2, 2, 40)],
        ),
        list(3, 3, &[lu(0)], &[seg(2, 0, 0, 40, 0, 1)]),
        simple[..47].to_vec(),
        list(4, 0, &vec![lu(0); 9], &[seg(2, 0, 0, 1, 0, 1)]),
        list(5, 0, &[cscd(1, 512, 0xe0)], &[seg(2, 0, 0, 1, 0, 1)]),
        list(6, 0, &[lu(0)], &[seg(3, 0, 0, 1, 0, 1)]),
        list(7, 0, &[cscd(9, 512, 0xe4)], &[seg(2, 0, 0, 1, 0, 1)]),
        list(8, 0, &[lu(0)], &[seg(2, 0, 1, 8, 0, 1)]),
        list(9, 0, &[lu(0)], &[seg(2, 0, 0, 8, 0, 63)]),
        list(10, 1, &[lu(0)], &[seg(2, 0, 0, 1, 0, 1)]),
    ]
}

#[test]
fn seeds_match_the_generator() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = std::env::var_os("TGTKIT_WRITE_SEEDS").is_some();
    for (dir, seeds) in [
        ("cdb_decode", cdb_seeds()),
        ("scsi_command", command_seeds()),
        ("xcopy_params", xcopy_seeds()),
    ] {
        for (i, seed) in seeds.iter().enumerate() {
            let path = root.join(dir).join(format!("seed-{i:03}"));
            if write {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, seed).unwrap();
            } else {
                let on_disk =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(
                    &on_disk,
                    seed,
                    "{} is stale: rerun with TGTKIT_WRITE_SEEDS=1",
                    path.display()
                );
            }
        }
    }
}
