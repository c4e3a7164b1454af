//! Stage 1 (CogLM) as the official CogView2 drives it, shared by every backend: backends only run
//! the transformer ([`AutoregressiveLm`](crate::lm::AutoregressiveLm)); the sequences, position
//! ids, attention masks and sampling loops are here.
//!
//! - [`style`](Style): the prompt templates and their stage-1 temperatures;
//! - layout: where the text and image go ([`Stage1Layout`]) and the run's [`Stage1Settings`];
//! - masks: the attention of generation ([`CoglmMask`]), completion ([`CompletionMask`]) and
//!   captions ([`CaptionMask`]);
//! - generation: [`CoglmGenerator`], the [`GlobalGenerator`](crate::GlobalGenerator) that draws a
//!   grid from a text (and completes and captions through the functions below);
//! - completion: the sequence of text-guided editing ([`CompletionPlan`]);
//! - captions: CogView2's inverse prompt ([`caption`], [`caption_log_likelihood`]);
//! - scoring: [`full_logits`] and [`image_log_likelihood`].
//!
//! The data these produce and take ([`Caption`](crate::Caption),
//! [`CaptionRequest`](crate::CaptionRequest)) are in [`crate::types`].

mod caption;
mod completion;
mod generate;
mod layout;
mod mask;
mod score;
mod style;

pub use caption::{caption, caption_log_likelihood};
pub use completion::CompletionPlan;
pub use generate::CoglmGenerator;
pub use layout::{Stage1Layout, Stage1Settings};
pub use mask::{text_biased_rows, CaptionMask, CoglmMask, CompletionMask};
pub use score::{full_logits, image_log_likelihood};
pub use style::Style;
