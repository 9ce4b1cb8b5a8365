#![no_main]
//! Fuzz target: arbitrary bytes parsed as a TransportID.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tgtkit_fuzz::pr::transport_id(data));
