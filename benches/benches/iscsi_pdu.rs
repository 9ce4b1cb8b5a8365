//! iSCSI PDU codec: decode and encode of the hot-path PDUs (SCSI Command,
//! Data-In with 4 KiB and 256 KiB payloads), with and without CRC32C digests.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use tgtkit_iscsi::pdu::{self, Bhs, DataIn, Digests, PduDecoder, ScsiCommand};

fn decode_commands(c: &mut Criterion) {
    let mut g = c.benchmark_group("iscsi_decode_scsi_command");
    for hd in [false, true] {
        let digests = Digests {
            header: hd,
            data: false,
        };
        let cmd = Bhs::ScsiCommand(ScsiCommand {
            final_: true,
            read: true,
            attr: 1,
            itt: 9,
            edtl: 4096,
            cmd_sn: 1,
            cdb: [0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0],
            ..ScsiCommand::default()
        });
        let mut stream = Vec::new();
        for _ in 0..64 {
            pdu::encode_pdu(&cmd.emit(), &[], &[], digests, &mut stream).unwrap();
        }
        g.throughput(Throughput::Elements(64));
        g.bench_with_input(
            BenchmarkId::from_parameter(if hd { "crc32c" } else { "none" }),
            &stream,
            |b, s| {
                b.iter(|| {
                    let mut d = PduDecoder::new(262_144);
                    d.set_digests(digests);
                    d.extend(s);
                    while let Some(f) = d.decode().unwrap() {
                        black_box(Bhs::parse(&f.header).unwrap());
                    }
                });
            },
        );
    }
    g.finish();
}

fn encode_data_in(c: &mut Criterion) {
    let mut g = c.benchmark_group("iscsi_encode_data_in");
    for (len, dd) in [
        (4096usize, false),
        (4096, true),
        (262_144, false),
        (262_144, true),
    ] {
        let digests = Digests {
            header: dd,
            data: dd,
        };
        let data = vec![0x5au8; len];
        let hdr = Bhs::DataIn(DataIn {
            final_: true,
            status: Some(0),
            itt: 3,
            ..DataIn::default()
        })
        .emit();
        let mut out = Vec::with_capacity(len + 64);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(
            format!("{len}B-{}", if dd { "crc32c" } else { "none" }),
            |b| {
                b.iter(|| {
                    out.clear();
                    pdu::encode_pdu(&hdr, &[], black_box(&data), digests, &mut out).unwrap();
                    black_box(out.len());
                });
            },
        );
    }
    g.finish();
}

criterion_group!(benches, decode_commands, encode_data_in);
criterion_main!(benches);
