#![no_main]
//! Fuzz target: arbitrary bytes decoded as iSCSI PDUs, re-encoded and compared.
libfuzzer_sys::fuzz_target!(|d: &[u8]| tgtkit_fuzz::iscsi::iscsi_pdu(d));
