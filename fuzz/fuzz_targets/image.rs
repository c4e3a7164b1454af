#![no_main]
// Images up to 2^18 pixels: within the default limit (2^26) a hostile header can still make the
// decoder allocate hundreds of MB per input, which only slows the fuzzer down.
libfuzzer_sys::fuzz_target!(init: {
    std::env::set_var("COGVIEW_MAX_IMAGE_PIXELS", "262144");
}, |data: &[u8]| cogview_fuzz::image(data));
