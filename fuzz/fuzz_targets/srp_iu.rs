#![no_main]
//! Fuzz target: SRP information units, decoded and re-encoded.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tgtkit_fuzz::srp::srp_iu(data));
