//! Replays every seed-corpus file through its fuzz target body, so the
//! corpora guard regressions in a plain `cargo test` on stable.

use std::path::Path;

type Body = fn(&[u8]);

/// (corpus directory under `corpus/`, target body).
const TARGETS: &[(&str, Body)] = &[
    ("cdb_decode", tgtkit_fuzz::scsi::cdb_decode),
    ("scsi_command", tgtkit_fuzz::scsi::scsi_command),
    (
        "blkif_request_decode",
        tgtkit_fuzz::xen::blkif_request_decode,
    ),
    (
        "vscsiif_request_decode",
        tgtkit_fuzz::xen::vscsiif_request_decode,
    ),
    ("xen_ring_consumer", tgtkit_fuzz::xen::xen_ring_consumer),
    ("iscsi_pdu", tgtkit_fuzz::iscsi::iscsi_pdu),
    ("tcmu_ring", tgtkit_fuzz::tcmu::tcmu_ring),
    ("transport_id", tgtkit_fuzz::pr::transport_id),
    ("pr_out", tgtkit_fuzz::pr::pr_out),
    ("qcow2_open", tgtkit_fuzz::qcow2::qcow2_open),
    ("srp_iu", tgtkit_fuzz::srp::srp_iu),
    ("xcopy_params", tgtkit_fuzz::scsi::xcopy_params),
];

#[test]
fn replays_every_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut total = 0;
    for (name, body) in TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "corpus {name} is empty");
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(outcome.is_ok(), "{name}: {} panicked", file.display());
            total += 1;
        }
    }
    println!("replayed {total} corpus files");
}

/// Every directory under `corpus/` has a target in the table.
#[test]
fn every_corpus_has_a_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for entry in std::fs::read_dir(root).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            TARGETS.iter().any(|(n, _)| *n == name),
            "corpus {name} has no target in replay.rs"
        );
    }
}
