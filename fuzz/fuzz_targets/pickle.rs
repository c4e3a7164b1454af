#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cogview_fuzz::pickle(data));
