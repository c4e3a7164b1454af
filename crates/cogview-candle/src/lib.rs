//! # cogview-candle
//!
//! The candle backend: CogLM, the SwissArmyTransformer sandwich-LayerNorm GPT as CogView2 uses it,
//! with a pre-allocated KV cache and batched incremental decoding, on CPU (or CUDA with the `cuda`
//! feature), in f32, f16 or bf16. It implements [`cogview_core::lm::AutoregressiveLm`]; the stage-1
//! algorithm itself (layout, mask, sampling) lives in `cogview-core`.

mod backbone;
mod backend;
mod coglm;
// Moving to the tensor-free model-description crate (issue 16); documented there.
#[allow(missing_docs)]
mod config;
mod conv_train;
mod cpu_conv;
mod cpu_gemm;
mod cpu_linear;
pub mod inspect;
mod local_attention;
#[allow(missing_docs)] // Being reworked with the SR input in the core (issue 16).
mod sr;
#[cfg(test)]
mod test_util;
mod train_ops;
mod util;
mod vqvae;

pub use backend::{CandleBackend, HAS_CUDA};
pub use coglm::{CoglmModel, CoglmSession};
pub use config::CoglmConfig;
pub use sr::{SrConfig, SrKind, SrModel};
pub use util::{device, LoadOptions, TensorSource, VarStore};
pub use vqvae::{VqConfig, VqTokenizer};
