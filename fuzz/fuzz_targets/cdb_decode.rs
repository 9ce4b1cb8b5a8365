#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tgtkit_fuzz::scsi::cdb_decode(data));
