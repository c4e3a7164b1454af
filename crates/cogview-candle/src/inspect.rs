//! What a model path is ([`cogview_model::inspect`], re-exported here), and what running it takes
//! on this backend: estimates of the memory each stage needs with candle's dtypes (activations in
//! f32 on the CPU, the f32 image head, the VQ-VAE's bf16 falling back to f32 on the CPU).

pub use cogview_model::inspect::*;

use cogview_core::{DType, Device, MemoryEstimate};
use cogview_model::{CoglmConfig, SrConfig, SrKind, VqConfig};

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

/// Memory of stage 1 for `batch` images decoded together with `context` text tokens and `image`
/// image tokens: the weights, the KV cache (`2 × layers × batch × (context + image) × hidden`),
/// the prefill's largest buffers (QKV, MLP and attention scores of every context row) and the
/// logits.
pub fn coglm_memory(
    c: &CoglmConfig,
    batch: usize,
    context: usize,
    image: usize,
    dtype: DType,
    device: Device,
) -> MemoryEstimate {
    let params = c.parameters() as u64;
    let a = act_size(dtype, device);
    let (b, h, f) = (
        batch as u64,
        c.hidden_size as u64,
        c.inner_hidden_size as u64,
    );
    let cap = (context + image) as u64;
    let ctx = context as u64 + 1;
    let kv = 2 * c.num_layers as u64 * b * cap * h * a;
    let heads = c.num_attention_heads as u64;
    let prefill = b * ctx * (6 * h + 2 * f) * a + b * heads * ctx * ctx * 4;
    let logits = b * c.image_vocab_size as u64 * 4;
    MemoryEstimate {
        parameters: params,
        weight_bytes: backbone_weight_bytes(c, params, dtype),
        activation_bytes: kv + prefill + logits,
    }
}

/// Memory of one DSR or ItersR pass on one image: the weights, the low- and high-resolution
/// streams with their QKV and MLP buffers, the local attention scores, DSR's dense mask over
/// the low-resolution stream, and the logits (kept twice: the tensor and the sampler's copy).
pub fn sr_memory(c: &SrConfig, dtype: DType, device: Device) -> MemoryEstimate {
    let params = c.parameters() as u64;
    let b = &c.backbone;
    let a = act_size(dtype, device);
    let (h, f) = (b.hidden_size as u64, b.inner_hidden_size as u64);
    let n1 = (c.high * c.high) as u64;
    let n0 = match c.kind {
        SrKind::Dsr => (c.text_slots + c.low * c.low) as u64,
        SrKind::Itersr => c.text_slots as u64,
    };
    let window = ((2 * c.kernel_size - 1) * c.kernel_size
        + c.kernel_size2 * c.kernel_size2
        + c.text_slots) as u64;
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

/// Memory of decoding one `side × side`-pixel image (or encoding one): the weights in `dtype`
/// (bf16 on the CPU: the convolutions' weights packed in bf16, activations f32) and the largest full-resolution feature maps (four buffers of the widest full-resolution
/// level: input, GroupNorm output, convolution columns and output).
pub fn vq_memory(c: &VqConfig, side: usize, dtype: DType, device: Device) -> MemoryEstimate {
    let params = c.parameters() as u64;
    let requested = dtype;
    let dtype = crate::vqvae::compute_dtype(dtype, device);
    let a = act_size(dtype, device);
    let full_res_channels = c
        .dec_channels_mult
        .iter()
        .map(|m| m[0])
        .chain(std::iter::once(c.enc_channels_mult[0]))
        .max()
        .unwrap_or(1)
        * c.channels;
    let px = (side * side) as u64;
    MemoryEstimate {
        parameters: params,
        weight_bytes: match (requested, device) {
            // Packed bf16 convolution weights; norms, biases and the codebook (f32) are ~1 %.
            (DType::Bf16, Device::Cpu) => params * 2,
            _ => params * dtype.size() as u64,
        },
        activation_bytes: 4 * px * full_res_channels as u64 * a + px * 9 * a,
    }
}
