#![no_main]
libfuzzer_sys::fuzz_target!(|d: &[u8]| tgtkit_fuzz::iscsi::iscsi_pdu(d));
