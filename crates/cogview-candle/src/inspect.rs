//! A model's sizes without loading its weights: the configuration, the files behind a model path,
//! the exact parameter count, and an estimate of the memory a run needs on this backend.
//!
//! Only checkpoint headers (the pickle or safetensors index) are read, so this is instant even on
//! the official 6-billion-parameter folders; `cogview generate --dry-run` and `cogview info` use it.

use crate::backbone::open_model;
use crate::config::CoglmConfig;
use crate::sr::SrConfig;
use crate::vqvae::{open_vq, VqConfig};
use cogview_checkpoint::{Checkpoint, SatFolder};
use cogview_core::{DType, Device, MemoryEstimate, Result};
use std::path::{Path, PathBuf};

/// The files a model path stands for: a SAT folder's `model_config.json` and weights file, or a
/// weights file and the configuration beside it.
fn model_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_dir() {
        let sat = SatFolder::open(path)?;
        return Ok(vec![sat.config_file, sat.model_file]);
    }
    let mut files = vec![path.to_path_buf()];
    let beside = path
        .parent()
        .unwrap_or(Path::new("."))
        .join("model_config.json");
    if beside.is_file() {
        files.push(beside);
    }
    Ok(files)
}

/// The `model_config.json` of a model path (a SAT folder, or a weights file with the configuration
/// in its metadata or beside it), for keys beyond the backend's own.
pub fn model_config(path: impl AsRef<Path>) -> Result<cogview_checkpoint::ModelConfig> {
    Ok(open_model(path.as_ref())?.1)
}

/// CogLM's configuration and files.
pub fn coglm_config(path: impl AsRef<Path>) -> Result<(CoglmConfig, Vec<PathBuf>)> {
    let path = path.as_ref();
    let (ckpt, cfg) = open_model(path)?;
    let rows = ckpt
        .info("transformer.position_embeddings.weight")
        .map(|i| i.shape[0]);
    Ok((
        CoglmConfig::from_model_config(&cfg, rows)?,
        model_files(path)?,
    ))
}

/// A DSR or ItersR model's configuration and files.
pub fn sr_config(path: impl AsRef<Path>) -> Result<(SrConfig, Vec<PathBuf>)> {
    let path = path.as_ref();
    let (ckpt, cfg) = open_model(path)?;
    Ok((
        SrConfig::from_model_config(&cfg, &ckpt)?,
        model_files(path)?,
    ))
}

/// The image tokenizer's configuration and files.
pub fn vq_config(path: impl AsRef<Path>) -> Result<(VqConfig, Vec<PathBuf>)> {
    let (_, cfg, files) = open_vq(path.as_ref())?;
    Ok((cfg, files))
}

/// The checkpoint behind a model path (header only), for describing what it stores.
pub fn open_checkpoint(path: impl AsRef<Path>) -> Result<Checkpoint> {
    let path = path.as_ref();
    if path.is_dir() {
        if path.join("latest").is_file() {
            return Ok(open_model(path)?.0);
        }
        return Ok(open_vq(path)?.0);
    }
    Checkpoint::open(path, None)
}

fn count(tensors: &[(String, Vec<usize>)]) -> u64 {
    tensors
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() as u64)
        .sum()
}

/// Activations are f32 on the CPU (see [`crate::LoadOptions`]) and in the compute dtype on CUDA.
fn act_size(dtype: DType, device: Device) -> u64 {
    match device {
        Device::Cpu => 4,
        Device::Cuda(_) => dtype.size() as u64,
    }
}

/// Weights of a SAT backbone as loaded: matrices and embeddings in `dtype`, LayerNorms in f32,
/// biases in the activation dtype, plus the f32 image head when `dtype` is not f32.
fn backbone_weight_bytes(c: &CoglmConfig, params: u64, dtype: DType) -> u64 {
    let head = if dtype == DType::F32 {
        0
    } else {
        (c.image_vocab_size * c.hidden_size * 4) as u64
    };
    params * dtype.size() as u64 + head
}

impl CoglmConfig {
    /// Memory of stage 1 for `batch` images decoded together with `context` text tokens and `image`
    /// image tokens: the weights, the KV cache (`2 × layers × batch × (context + image) × hidden`),
    /// the prefill's largest buffers (QKV, MLP and attention scores of every context row) and the
    /// logits.
    pub fn memory(
        &self,
        batch: usize,
        context: usize,
        image: usize,
        dtype: DType,
        device: Device,
    ) -> MemoryEstimate {
        let params = self.parameters() as u64;
        let a = act_size(dtype, device);
        let (b, h, f) = (
            batch as u64,
            self.hidden_size as u64,
            self.inner_hidden_size as u64,
        );
        let cap = (context + image) as u64;
        let ctx = context as u64 + 1;
        let kv = 2 * self.num_layers as u64 * b * cap * h * a;
        let heads = self.num_attention_heads as u64;
        let prefill = b * ctx * (6 * h + 2 * f) * a + b * heads * ctx * ctx * 4;
        let logits = b * self.image_vocab_size as u64 * 4;
        MemoryEstimate {
            parameters: params,
            weight_bytes: backbone_weight_bytes(self, params, dtype),
            activation_bytes: kv + prefill + logits,
        }
    }
}

impl SrConfig {
    /// Memory of one DSR or ItersR pass on one image: the weights, the low- and high-resolution
    /// streams with their QKV and MLP buffers, the local attention scores, DSR's dense mask over
    /// the low-resolution stream, and the logits (kept twice: the tensor and the sampler's copy).
    pub fn memory(&self, dtype: DType, device: Device) -> MemoryEstimate {
        let tensors = self.expected_tensors();
        let params = count(&tensors);
        let b = &self.backbone;
        let a = act_size(dtype, device);
        let (h, f) = (b.hidden_size as u64, b.inner_hidden_size as u64);
        let n1 = (self.high * self.high) as u64;
        let n0 = match self.kind {
            crate::SrKind::Dsr => (self.text_slots + self.low * self.low) as u64,
            crate::SrKind::Itersr => self.text_slots as u64,
        };
        let window = ((2 * self.kernel_size - 1) * self.kernel_size
            + self.kernel_size2 * self.kernel_size2
            + self.text_slots) as u64;
        let heads = b.num_attention_heads as u64;
        let streams = (n0 + n1) * (8 * h + 2 * f) * a;
        let scores = n1 * heads * window * 4 + n0 * n0 * 4 * (1 + heads);
        let logits = 2 * n1 * b.image_vocab_size as u64 * 4;
        MemoryEstimate {
            parameters: params,
            weight_bytes: backbone_weight_bytes(b, params, dtype),
            activation_bytes: streams + scores + logits,
        }
    }
}

impl VqConfig {
    /// Memory of decoding one `side × side`-pixel image (or encoding one): the weights in `dtype`
    /// and the largest full-resolution feature maps (four buffers of the widest full-resolution
    /// level: input, GroupNorm output, convolution columns and output).
    pub fn memory(&self, side: usize, dtype: DType, device: Device) -> MemoryEstimate {
        let params = count(&self.expected_tensors());
        let dtype = crate::vqvae::compute_dtype(dtype, device);
        let a = act_size(dtype, device);
        let full_res_channels = self
            .dec_channels_mult
            .iter()
            .map(|m| m[0])
            .chain(std::iter::once(self.enc_channels_mult[0]))
            .max()
            .unwrap_or(1)
            * self.channels;
        let px = (side * side) as u64;
        MemoryEstimate {
            parameters: params,
            weight_bytes: params * dtype.size() as u64,
            activation_bytes: 4 * px * full_res_channels as u64 * a + px * 9 * a,
        }
    }
}
