//! # cogview-candle
//!
//! The candle backend: CogLM, the SwissArmyTransformer sandwich-LayerNorm GPT as CogView2 uses it,
//! with a pre-allocated KV cache and batched incremental decoding, on CPU (or CUDA with the `cuda`
//! feature), in f32, f16 or bf16. It implements [`cogview_core::lm::AutoregressiveLm`],
//! [`cogview_core::sr::GridPredictor`] and [`cogview_core::ImageTokenizer`]; the algorithms (stage
//! 1's layout, mask and sampling, the super-resolution input) live in `cogview-core`, and what a
//! model is (configurations, tensor names, inspection) in `cogview-model`, whose types are
//! re-exported here.

mod backbone;
mod backend;
mod bf16_pack;
mod cached_attention;
mod coglm;
mod conv_train;
mod cpu_amx;
mod cpu_bf16;
mod cpu_conv;
mod cpu_conv_bf16;
mod cpu_gemm;
mod cpu_int8;
pub mod cpu_kernels;
mod cpu_linear;
pub mod inspect;
mod local_attention;
mod pseudo_random;
mod sr;
#[cfg(test)]
mod test_util;
mod train_bf16;
mod train_ops;
mod util;
mod vqvae;

pub use backend::{CandleBackend, HAS_CUDA};
pub use coglm::{CoglmModel, CoglmSession};
pub use cogview_model::CoglmConfig;
pub use cpu_bf16::{time_gemm, GemmKind};
pub use sr::{SrConfig, SrKind, SrModel};
pub use train_bf16::{set_training_precision, training_precision, TrainingPrecision};
pub use util::{device, LoadOptions, TensorSource, VarStore};
pub use vqvae::{VqConfig, VqTokenizer};
