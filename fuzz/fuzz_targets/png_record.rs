#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cogview_fuzz::png_record(data));
