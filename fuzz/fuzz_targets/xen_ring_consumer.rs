#![no_main]
//! Fuzz target: the blkif backend processor over an arbitrary shared ring page.
libfuzzer_sys::fuzz_target!(|d: &[u8]| tgtkit_fuzz::xen::xen_ring_consumer(d));
