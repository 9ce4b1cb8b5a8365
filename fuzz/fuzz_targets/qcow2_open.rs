//! cargo-fuzz binary for `tgtkit_fuzz::qcow2::qcow2_open`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tgtkit_fuzz::qcow2::qcow2_open(data));
