#![no_main]
//! Fuzz target: a vscsiif ring slot decoded and re-encoded.
libfuzzer_sys::fuzz_target!(|d: &[u8]| tgtkit_fuzz::xen::vscsiif_request_decode(d));
