#![no_main]
//! Fuzz target: EXTENDED COPY (LID1) parameter lists between two logical
//! units, followed by RECEIVE COPY RESULTS.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tgtkit_fuzz::scsi::xcopy_params(data));
