#![no_main]
//! Fuzz target: arbitrary TCMU command-ring contents served by the ring server.
libfuzzer_sys::fuzz_target!(|d: &[u8]| tgtkit_fuzz::tcmu::tcmu_ring(d));
