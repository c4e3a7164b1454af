//! Flags shared by the subcommands that load one model directly (`logits`, `bench`, `tokenize`).

/// Shared flags for choosing how a model runs.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// Compute dtype: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: cogview::DType,
    /// Device: cpu, cuda or cuda:N (CUDA needs the candle-cuda plugin for pipelines, see docs/cuda.md).
    #[arg(long, default_value = "cpu")]
    pub device: cogview::Device,
}

impl BackendArgs {
    pub fn load_options(&self) -> cogview::candle::LoadOptions {
        cogview::candle::LoadOptions {
            device: self.device,
            dtype: self.dtype,
        }
    }
}
