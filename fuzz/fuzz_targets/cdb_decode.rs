#![no_main]
//! Fuzz target: arbitrary bytes decoded as a CDB.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tgtkit_fuzz::scsi::cdb_decode(data));
