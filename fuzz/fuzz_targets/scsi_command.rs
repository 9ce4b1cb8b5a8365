#![no_main]
//! Fuzz target: command sequences run through the engine on a ram disk.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tgtkit_fuzz::scsi::scsi_command(data));
