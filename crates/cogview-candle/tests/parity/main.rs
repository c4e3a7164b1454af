//! The candle backend against the official code: logits and tokens of CogLM, completion, DSR,
//! ItersR and icetk's image tokenizer on small random weights saved in the official formats
//! (tests/fixtures, made by tools/reference). One test binary.

mod coglm;
mod completion;
mod icetk_image;
mod sr;
