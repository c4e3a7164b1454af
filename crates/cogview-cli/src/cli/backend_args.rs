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
    /// Store the transformer's linear weights as: `dtype` (the compute dtype) or `int8` (int8 with
    /// per-output-row scales, CPU only; a pipeline file's stage says `options = { weights = "int8" }`)
    #[arg(long, default_value = "dtype", value_parser = ["dtype", "int8"])]
    pub weights: String,
}

impl BackendArgs {
    pub fn load_options(&self) -> cogview::candle::LoadOptions {
        cogview::candle::LoadOptions {
            device: self.device,
            dtype: self.dtype,
            int8_weights: self.weights == "int8",
        }
    }
}
