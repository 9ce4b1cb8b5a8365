#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tgtkit_fuzz::scsi::scsi_command(data));
