#![no_main]
//! Fuzz target: a blkif ring slot decoded and re-encoded.
libfuzzer_sys::fuzz_target!(|d: &[u8]| tgtkit_fuzz::xen::blkif_request_decode(d));
