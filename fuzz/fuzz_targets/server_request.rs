#![no_main]
use std::sync::OnceLock;

static HARNESS: OnceLock<cogview_fuzz::ServerHarness> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let h = HARNESS.get_or_init(cogview_fuzz::ServerHarness::new);
    cogview_fuzz::server_request(h, data)
});
