//! # cogview-train
//!
//! Trains cogview's small default model on data obtainable offline (the procedural scenes of
//! `cogview-scenes` and the Fluent Emoji of `cogview-emoji`), with candle's autograd on the CPU:
//! the caption tokenizer, the VQ tokenizer (icetk's structure), CogLM, DSR and ItersR. The models
//! are the inference models of `cogview-candle` built from trainable variables, so what is trained
//! is exactly what is loaded.

pub mod caption_tokenizer;
pub mod data;
#[macro_use]
pub mod optim;
pub mod clusters;
pub mod coglm;
pub mod sr;
pub mod vq;
