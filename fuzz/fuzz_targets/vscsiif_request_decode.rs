#![no_main]
libfuzzer_sys::fuzz_target!(|d: &[u8]| tgtkit_fuzz::xen::vscsiif_request_decode(d));
