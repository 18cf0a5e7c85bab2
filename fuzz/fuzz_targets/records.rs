#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sweep_fuzz::records(data));
