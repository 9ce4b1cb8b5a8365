#![no_main]
libfuzzer_sys::fuzz_target!(|d: &[u8]| tgtkit_fuzz::xen::xen_ring_consumer(d));
