#![no_main]
libfuzzer_sys::fuzz_target!(|d: &[u8]| tgtkit_fuzz::xen::blkif_request_decode(d));
