//! # cogview-model
//!
//! What a cogview model is, with no tensor library: the configurations of CogLM
//! ([`CoglmConfig`]), DSR and ItersR ([`SrConfig`], [`SrKind`]) and icetk's image tokenizer
//! ([`VqConfig`]) as their checkpoints describe them, their validation, the name and shape of every
//! tensor each needs (`expected_tensors`), parameter counts, and [`inspect`]ion of model folders and
//! checkpoints (headers only). Every backend (the built-in candle one, the tch plugin), the
//! pipeline, `cogview info` and `--dry-run` read models through this crate; none of it needs the
//! weights. (Compare llama.cpp's `llama-hparams`/`llama-arch`, kept apart from every ggml backend.)
//!
//! ```
//! use cogview_model::CoglmConfig;
//! let c = CoglmConfig {
//!     num_layers: 2,
//!     hidden_size: 8,
//!     num_attention_heads: 2,
//!     vocab_size: 40,
//!     max_sequence_length: 16,
//!     inner_hidden_size: 32,
//!     head_dim: 4,
//!     layernorm_epsilon: 1e-5,
//!     image_vocab_size: 20,
//!     start_of_image_id: 30,
//! };
//! c.validate("example").unwrap();
//! assert_eq!(c.expected_tensors().len(), 4 + 2 * 16);
//! ```

pub mod coglm;
pub mod inspect;
pub mod sr;
mod tensors;
pub mod vq;

pub use coglm::CoglmConfig;
pub use sr::{SrConfig, SrKind};
pub use vq::VqConfig;
