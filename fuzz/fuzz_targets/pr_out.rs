#![no_main]
//! Fuzz target: PERSISTENT RESERVE OUT parameter lists from three nexuses.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tgtkit_fuzz::pr::pr_out(data));
