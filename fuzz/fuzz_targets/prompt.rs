#![no_main]
use std::sync::OnceLock;

static TOKENIZER: OnceLock<cogview_text::IceTextTokenizer> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cogview_fuzz::prompt(TOKENIZER.get_or_init(cogview_fuzz::default_tokenizer), data)
});
