//! icetk's image tokenizer: a hierarchical VQ-VAE (taming-style ResNet encoder, residual
//! down-samplers, a 1×1 pre-projection, one shared codebook, three decoders for ×16, ×8 and ×4).
//! Module and tensor names follow icetk's `HVQVAE` so that `ice_image.pt` loads as it is.

use crate::util::{cdtype, device, BackendResult, LoadOptions, TensorSource};
use candle_core::{DType as CDType, Device as CDevice, Module, Tensor, D};
use candle_nn::GroupNorm;
use cogview_core::{Compression, Error, Image, ImageTokenizer, Result, TokenGrid};
pub use cogview_model::VqConfig;
use std::path::Path;

/// A 2-D convolution with bias: the row-copy im2col of [`crate::cpu_conv`] for f32 on the CPU,
/// candle's convolution elsewhere; or, for a tokenizer loaded in bf16 on the CPU, the bf16 GEMM
/// of [`crate::cpu_conv_bf16`] on a weight packed at load.
struct Conv2d {
    weights: ConvWeights,
    padding: usize,
    stride: usize,
}

enum ConvWeights {
    /// The weight [Cout, C, k, k] and bias [Cout] as loaded, in the compute dtype.
    Tensors { weight: Tensor, bias: Tensor },
    /// bf16 on the CPU: only the packed bf16 weight and the f32 bias (no f32 copy of W).
    PackedBf16(crate::cpu_conv_bf16::PackedConv),
}

impl Conv2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (weight, bias) = match &self.weights {
            ConvWeights::PackedBf16(p) => {
                return crate::cpu_conv_bf16::conv2d(x, p, self.stride, self.padding)
            }
            ConvWeights::Tensors { weight, bias } => (weight, bias),
        };
        let training = x.track_op() || weight.track_op();
        if x.device().is_cpu() && x.dtype() == CDType::F32 && !training {
            crate::cpu_conv::conv2d(x, weight, bias, self.stride, self.padding)
        } else if x.device().is_cpu() && x.dtype() == CDType::F32 {
            crate::conv_train::conv2d(x, weight, bias, self.stride, self.padding)
        } else {
            let cfg = candle_nn::Conv2dConfig {
                padding: self.padding,
                stride: self.stride,
                dilation: 1,
                groups: 1,
                cudnn_fwd_algo: None,
            };
            candle_nn::Conv2d::new(weight.clone(), Some(bias.clone()), cfg).forward(x)
        }
    }
}

/// GroupNorm, optionally followed by swish: fused on the CPU for f32, candle's ops elsewhere.
struct Norm {
    inner: GroupNorm,
    /// The weights are training variables.
    trainable: bool,
    fused: crate::cpu_conv::GroupNormSilu,
    fused_plain: crate::cpu_conv::GroupNormSilu,
}

impl Norm {
    fn new(weight: Tensor, bias: Tensor, groups: usize, eps: f64) -> candle_core::Result<Self> {
        let c = weight.dim(0)?;
        let (w, b) = (
            weight.to_dtype(CDType::F32)?.to_vec1::<f32>()?,
            bias.to_dtype(CDType::F32)?.to_vec1::<f32>()?,
        );
        let make = |silu| crate::cpu_conv::GroupNormSilu {
            weight: w.clone(),
            bias: b.clone(),
            groups,
            eps,
            silu,
        };
        Ok(Norm {
            trainable: weight.track_op(),
            inner: GroupNorm::new(weight, bias, c, groups, eps)?,
            fused: make(true),
            fused_plain: make(false),
        })
    }
    fn fast(&self, x: &Tensor) -> bool {
        // The fused kernels have no backward: training takes candle's ops.
        x.device().is_cpu() && x.dtype() == CDType::F32 && !x.track_op() && !self.trainable
    }
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.fast(x) {
            x.contiguous()?.apply_op1_no_bwd(&self.fused_plain)
        } else {
            self.inner.forward(x)
        }
    }
    /// swish(norm(x)).
    fn forward_swish(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.fast(x) {
            x.contiguous()?.apply_op1_no_bwd(&self.fused)
        } else {
            swish(&self.inner.forward(x)?)
        }
    }
}

fn swish(x: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::ops::silu(x)
}

struct Weights<'a> {
    ckpt: &'a dyn TensorSource,
    dtype: CDType,
    /// Pack the convolutions' weights for the bf16 GEMM (a bf16 load on the CPU).
    pack_bf16: bool,
    device: &'a CDevice,
    cfg: &'a VqConfig,
}

impl Weights<'_> {
    fn t(&self, name: &str) -> Result<Tensor> {
        self.ckpt.load(name, self.dtype, self.device)
    }
    fn conv(&self, p: &str, padding: usize, stride: usize) -> Result<Conv2d> {
        let (wname, bname) = (format!("{p}.weight"), format!("{p}.bias"));
        if self.pack_bf16 {
            // Rounded to bf16 by the loader; the bias stays f32. Variables being trained (a
            // differentiable source) keep the tensors.
            let weight = self.ckpt.load(&wname, CDType::BF16, self.device)?;
            if !weight.track_op() {
                let bias = self.ckpt.load(&bname, CDType::F32, self.device)?;
                let packed = crate::cpu_conv_bf16::PackedConv::from_tensors(&weight, &bias)
                    .map_err(|e| Error::backend_source(p, e))?;
                return Ok(Conv2d {
                    weights: ConvWeights::PackedBf16(packed),
                    padding,
                    stride,
                });
            }
        }
        Ok(Conv2d {
            weights: ConvWeights::Tensors {
                weight: self.t(&wname)?,
                bias: self.t(&bname)?,
            },
            padding,
            stride,
        })
    }
    fn norm(&self, p: &str) -> Result<Norm> {
        Norm::new(
            self.t(&format!("{p}.weight"))?,
            self.t(&format!("{p}.bias"))?,
            self.cfg.norm_groups,
            self.cfg.norm_eps,
        )
        .be()
    }
    fn has(&self, name: &str) -> bool {
        self.ckpt.contains(name)
    }
}

struct ResnetBlock {
    norm1: Norm,
    conv1: Conv2d,
    norm2: Norm,
    conv2: Conv2d,
    nin_shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    fn load(w: &Weights, p: &str) -> Result<Self> {
        let nin = format!("{p}.nin_shortcut");
        Ok(ResnetBlock {
            norm1: w.norm(&format!("{p}.norm1"))?,
            conv1: w.conv(&format!("{p}.conv1"), 1, 1)?,
            norm2: w.norm(&format!("{p}.norm2"))?,
            conv2: w.conv(&format!("{p}.conv2"), 1, 1)?,
            nin_shortcut: if w.has(&format!("{nin}.weight")) {
                Some(w.conv(&nin, 0, 1)?)
            } else {
                None
            },
        })
    }
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward_swish(x)?)?;
        let h = self.conv2.forward(&self.norm2.forward_swish(&h)?)?;
        match &self.nin_shortcut {
            Some(s) => s.forward(x)? + h,
            None => x + h,
        }
    }
}

/// Single-head self-attention over the spatial positions with 1×1 convolutions.
struct AttnBlock {
    norm: Norm,
    q: Conv2d,
    k: Conv2d,
    v: Conv2d,
    proj_out: Conv2d,
}

impl AttnBlock {
    fn load(w: &Weights, p: &str) -> Result<Self> {
        Ok(AttnBlock {
            norm: w.norm(&format!("{p}.norm"))?,
            q: w.conv(&format!("{p}.q"), 0, 1)?,
            k: w.conv(&format!("{p}.k"), 0, 1)?,
            v: w.conv(&format!("{p}.v"), 0, 1)?,
            proj_out: w.conv(&format!("{p}.proj_out"), 0, 1)?,
        })
    }
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, c, h, wd) = x.dims4()?;
        let n = self.norm.forward(x)?;
        let scale = (c as f64).powf(-0.5);
        let q = (self.q.forward(&n)?.to_dtype(CDType::F32)? * scale)?.reshape((b, c, h * wd))?;
        let k = self
            .k
            .forward(&n)?
            .to_dtype(CDType::F32)?
            .reshape((b, c, h * wd))?;
        let v = self
            .v
            .forward(&n)?
            .to_dtype(CDType::F32)?
            .reshape((b, c, h * wd))?;
        if q.track_op() {
            // Training: differentiable batched products.
            let scores = q.transpose(1, 2)?.matmul(&k)?; // [b, hw_q, hw_k]
            let probs = crate::backbone::softmax_last_dim(&scores)?;
            let out = v.matmul(&probs.t()?)?.to_dtype(x.dtype())?; // [b, c, hw_q]
            return x + self.proj_out.forward(&out.reshape((b, c, h, wd))?)?;
        }
        let mut outs = Vec::with_capacity(b);
        for i in 0..b {
            // scores [hw_q, hw_k] = qᵀ k; out [hw_q, c] = probs · vᵀ (transposed views, no copies).
            let scores = crate::cpu_gemm::matmul(&q.get(i)?.t()?, &k.get(i)?)?;
            let probs = crate::backbone::softmax_last_dim(&scores)?;
            outs.push(
                crate::cpu_gemm::matmul(&probs, &v.get(i)?.t()?)?
                    .t()?
                    .contiguous()?,
            );
        }
        let out = Tensor::stack(&outs, 0)?.to_dtype(x.dtype())?; // [b, c, hw]
        x + self.proj_out.forward(&out.reshape((b, c, h, wd))?)?
    }
}

/// A level's blocks, each optionally followed by attention.
struct Level {
    blocks: Vec<(ResnetBlock, Option<AttnBlock>)>,
    resample: Option<Conv2d>,
}

struct Encoder {
    conv_in: Conv2d,
    down: Vec<Level>,
    mid: (ResnetBlock, AttnBlock, ResnetBlock),
    norm_out: Norm,
    conv_out: Conv2d,
}

impl Encoder {
    fn load(w: &Weights, p: &str) -> Result<Self> {
        let m = &w.cfg.enc_channels_mult;
        let mut down = Vec::new();
        for i in 0..m.len() {
            let mut blocks = Vec::new();
            for j in 0..w.cfg.enc_num_res_blocks {
                let a = format!("{p}.down.{i}.attn.{j}");
                let attn = if w.has(&format!("{a}.q.weight")) {
                    Some(AttnBlock::load(w, &a)?)
                } else {
                    None
                };
                blocks.push((
                    ResnetBlock::load(w, &format!("{p}.down.{i}.block.{j}"))?,
                    attn,
                ));
            }
            let resample = if i + 1 != m.len() {
                Some(w.conv(&format!("{p}.down.{i}.downsample.conv"), 0, 2)?)
            } else {
                None
            };
            down.push(Level { blocks, resample });
        }
        Ok(Encoder {
            conv_in: w.conv(&format!("{p}.conv_in"), 1, 1)?,
            down,
            mid: (
                ResnetBlock::load(w, &format!("{p}.mid.block_1"))?,
                AttnBlock::load(w, &format!("{p}.mid.attn_1"))?,
                ResnetBlock::load(w, &format!("{p}.mid.block_2"))?,
            ),
            norm_out: w.norm(&format!("{p}.norm_out"))?,
            conv_out: w.conv(&format!("{p}.conv_out"), 1, 1)?,
        })
    }
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = self.conv_in.forward(x)?;
        for level in &self.down {
            for (block, attn) in &level.blocks {
                h = block.forward(&h)?;
                if let Some(a) = attn {
                    h = a.forward(&h)?;
                }
            }
            if let Some(conv) = &level.resample {
                // taming's Downsample: pad right and bottom by one, then a stride-2 3×3 conv.
                h = conv.forward(&h.pad_with_zeros(D::Minus1, 0, 1)?.pad_with_zeros(
                    D::Minus2,
                    0,
                    1,
                )?)?;
            }
        }
        let h = self.mid.0.forward(&h)?;
        let h = self.mid.1.forward(&h)?;
        let h = self.mid.2.forward(&h)?;
        self.conv_out.forward(&self.norm_out.forward_swish(&h)?)
    }
}

struct Decoder {
    conv_in: Conv2d,
    mid: (ResnetBlock, AttnBlock, ResnetBlock),
    /// Levels from the highest (coarsest) to level 0.
    up: Vec<Level>,
    norm_out: Norm,
    conv_out: Conv2d,
}

impl Decoder {
    fn load(w: &Weights, p: &str, levels: usize) -> Result<Self> {
        let mut up = Vec::new();
        for i in (0..levels).rev() {
            let mut blocks = Vec::new();
            for j in 0..w.cfg.dec_num_res_blocks + 1 {
                let a = format!("{p}.up.{i}.attn.{j}");
                let attn = if w.has(&format!("{a}.q.weight")) {
                    Some(AttnBlock::load(w, &a)?)
                } else {
                    None
                };
                blocks.push((
                    ResnetBlock::load(w, &format!("{p}.up.{i}.block.{j}"))?,
                    attn,
                ));
            }
            let resample = if i != 0 {
                Some(w.conv(&format!("{p}.up.{i}.upsample.conv"), 1, 1)?)
            } else {
                None
            };
            up.push(Level { blocks, resample });
        }
        Ok(Decoder {
            conv_in: w.conv(&format!("{p}.conv_in"), 1, 1)?,
            mid: (
                ResnetBlock::load(w, &format!("{p}.mid.block_1"))?,
                AttnBlock::load(w, &format!("{p}.mid.attn_1"))?,
                ResnetBlock::load(w, &format!("{p}.mid.block_2"))?,
            ),
            up,
            norm_out: w.norm(&format!("{p}.norm_out"))?,
            conv_out: w.conv(&format!("{p}.conv_out"), 1, 1)?,
        })
    }
    fn forward(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.conv_in.forward(z)?;
        let h = self.mid.0.forward(&h)?;
        let h = self.mid.1.forward(&h)?;
        let mut h = self.mid.2.forward(&h)?;
        for level in &self.up {
            for (block, attn) in &level.blocks {
                h = block.forward(&h)?;
                if let Some(a) = attn {
                    h = a.forward(&h)?;
                }
            }
            if let Some(conv) = &level.resample {
                let (_, _, hh, ww) = h.dims4()?;
                h = conv.forward(&h.upsample_nearest2d(hh * 2, ww * 2)?)?;
            }
        }
        self.conv_out.forward(&self.norm_out.forward_swish(&h)?)
    }
}

/// The loaded image tokenizer.
pub struct VqTokenizer {
    config: VqConfig,
    device: CDevice,
    dtype: CDType,
    encoder: Encoder,
    /// Residual down-samplers (`avg_pool2d(2) + conv3x3/2`), one per extra compression level.
    down_samplers: Vec<Conv2d>,
    proj: Conv2d,
    /// Codebook [n_embed, dim] in f32, and its squared norms.
    codebook: Tensor,
    codebook_sq: Tensor,
    decoders: Vec<Decoder>,
    codebook_sha256: String,
}

impl std::fmt::Debug for VqTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VqTokenizer")
            .field("config", &self.config)
            .field("dtype", &self.dtype)
            .finish_non_exhaustive()
    }
}

/// The dtype the VQ-VAE's activations are in: as asked, except bf16 on the CPU, which keeps f32
/// activations (GroupNorm, attention and quantisation in f32) and runs its convolutions on the bf16
/// GEMM with weights packed at load ([`crate::cpu_conv_bf16`]).
pub fn compute_dtype(
    dtype: cogview_core::DType,
    device: cogview_core::Device,
) -> cogview_core::DType {
    match (dtype, device) {
        (cogview_core::DType::Bf16, cogview_core::Device::Cpu) => cogview_core::DType::F32,
        (d, _) => d,
    }
}

fn level(c: Compression) -> usize {
    match c {
        Compression::X4 => 0,
        Compression::X8 => 1,
        Compression::X16 => 2,
    }
}

impl VqTokenizer {
    /// Loads `ice_image.pt`, a safetensors file, or a folder holding one of them
    /// (`ice_image.pt` or `ice_image.safetensors`). Sizes come from `vq_config.json` beside the
    /// weights (or the safetensors metadata key `vq_config`); without one, the official sizes.
    pub fn load(path: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        let (ckpt, config, _) = cogview_model::inspect::open_vq(path.as_ref())?;
        Self::from_checkpoint(&ckpt, config, options)
    }

    /// Builds the tokenizer from a tensor source (a checkpoint, or trained variables) and its sizes.
    pub fn from_checkpoint(
        ckpt: &dyn TensorSource,
        config: VqConfig,
        options: LoadOptions,
    ) -> Result<Self> {
        config.validate()?;
        ckpt.check_tensors(
            &config.expected_tensors(),
            &cogview_model::vq::is_training_buffer,
        )?;
        let dev = device(options.device)?;
        let w = Weights {
            ckpt,
            dtype: cdtype(compute_dtype(options.dtype, options.device)),
            pack_bf16: options.dtype == cogview_core::DType::Bf16
                && options.device == cogview_core::Device::Cpu,
            device: &dev,
            cfg: &config,
        };
        let codebook = ckpt.load("quantize.embed.weight", CDType::F32, &dev)?;
        let codebook_sq = codebook.sqr().and_then(|t| t.sum(1)).be()?;
        let codebook_sha256 = {
            use sha2::Digest;
            let bytes: Vec<u8> = codebook
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .be()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            format!("{:x}", sha2::Sha256::digest(&bytes))
        };
        Ok(VqTokenizer {
            encoder: Encoder::load(&w, "enc")?,
            down_samplers: (0..2)
                .map(|l| w.conv(&format!("down_samplers.{l}.conv_down_sampler.conv"), 0, 2))
                .collect::<Result<_>>()?,
            proj: w.conv("quantize.proj", 0, 1)?,
            decoders: (0..3)
                .map(|d| Decoder::load(&w, &format!("decs.{d}"), config.dec_channels_mult[d].len()))
                .collect::<Result<_>>()?,
            codebook,
            codebook_sq,
            codebook_sha256,
            dtype: w.dtype,
            device: dev,
            config,
        })
    }

    /// The sizes it was built with.
    pub fn config(&self) -> &VqConfig {
        &self.config
    }

    /// SHA-256 of the codebook (f32 little-endian): identifies what the token ids mean.
    pub fn codebook_sha256(&self) -> &str {
        &self.codebook_sha256
    }

    /// Pixels (RGB8) → normalised tensor [1, 3, h, w] in the compute dtype.
    pub fn normalize(&self, image: &Image) -> Result<Tensor> {
        let (w, h) = (image.width, image.height);
        let mut data = vec![0f32; 3 * w * h];
        for (i, px) in image.pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                data[c * w * h + i] =
                    (px[c] as f32 / 255.0 - self.config.mean[c]) / self.config.std[c];
            }
        }
        Tensor::from_vec(data, (1, 3, h, w), &self.device)
            .and_then(|t| t.to_dtype(self.dtype))
            .be()
    }

    /// The encoder's continuous output for training: `x` normalised `[batch, 3, H, W]` →
    /// `[batch, dim, H/f, W/f]`, before quantization (differentiable with [`crate::VarStore`]
    /// weights).
    pub fn latent(&self, x: &Tensor, compression: Compression) -> Result<Tensor> {
        self.encode_latent(x, compression).be()
    }

    /// The decoder for training: code vectors `[batch, dim, h, w]` → the normalised image
    /// `[batch, 3, h·f, w·f]` (before de-normalisation).
    pub fn decode_latent(&self, z: &Tensor, compression: Compression) -> Result<Tensor> {
        self.decoders[2 - level(compression)].forward(z).be()
    }

    /// The codebook `[n_embed, dim]` (f32).
    pub fn codebook(&self) -> &Tensor {
        &self.codebook
    }

    /// The encoder's continuous output at `compression`, before quantization: [1, dim, h, w].
    fn encode_latent(&self, x: &Tensor, compression: Compression) -> candle_core::Result<Tensor> {
        let mut h = self.encoder.forward(x)?;
        for conv in &self.down_samplers[..level(compression)] {
            // icetk's ResidualDownSample: avg_pool2d(2) + stride-2 conv with right/bottom padding.
            let padded = h
                .pad_with_zeros(D::Minus1, 0, 1)?
                .pad_with_zeros(D::Minus2, 0, 1)?;
            h = (h.avg_pool2d(2)? + conv.forward(&padded)?)?;
        }
        self.proj.forward(&h)
    }

    /// Nearest codebook entry (squared L2) of every position: ids [h·w], row-major.
    fn quantize(&self, z: &Tensor) -> candle_core::Result<(usize, usize, Vec<u32>)> {
        let (_, c, h, w) = z.dims4()?;
        let flat = z
            .to_dtype(CDType::F32)?
            .reshape((c, h * w))?
            .t()?
            .contiguous()?; // [hw, c]
        let dots = flat.matmul(&self.codebook.t()?)?; // [hw, n]
        let dist = self
            .codebook_sq
            .unsqueeze(0)?
            .broadcast_sub(&(dots * 2.0)?)?;
        let ids = dist
            .argmin(D::Minus1)?
            .to_dtype(CDType::U32)?
            .to_vec1::<u32>()?;
        Ok((h, w, ids))
    }

    fn check_trained(&self, compression: Compression) -> Result<()> {
        if self.config.compressions.contains(&compression.factor()) {
            Ok(())
        } else {
            Err(Error::invalid_input(
                "compression",
                format!(
                    "this image tokenizer was trained for compression {:?} only, not {}",
                    self.config.compressions,
                    compression.factor()
                ),
            ))
        }
    }

    /// Encodes the normalised input [1, 3, H, W] (H, W multiples of the compression).
    pub fn encode_tensor(&self, x: &Tensor, compression: Compression) -> Result<TokenGrid> {
        self.check_trained(compression)?;
        let _span = tracing::info_span!("vq_encode", compression = compression.factor()).entered();
        let (h, w, ids) = self
            .encode_latent(x, compression)
            .and_then(|z| self.quantize(&z))
            .be()?;
        TokenGrid::new(h, w, ids)
    }

    /// Decodes ids to the de-normalised float image [3, H, W] (not clamped), in f32.
    pub fn decode_tensor(&self, grid: &TokenGrid, compression: Compression) -> Result<Tensor> {
        self.check_trained(compression)?;
        let _span = tracing::info_span!("vq_decode", compression = compression.factor()).entered();
        cogview_core::lm::check_vocab(&grid.ids, self.config.n_embed)?;
        let run = || -> candle_core::Result<Tensor> {
            let ids = Tensor::from_slice(&grid.ids, grid.ids.len(), &self.device)?;
            let z = self
                .codebook
                .index_select(&ids, 0)?
                .t()?
                .reshape((1, self.config.embedding_dim, grid.height, grid.width))?
                .to_dtype(self.dtype)?;
            let x = self.decoders[2 - level(compression)]
                .forward(&z)?
                .to_dtype(CDType::F32)?
                .squeeze(0)?;
            let mean = Tensor::new(&self.config.mean, &self.device)?.reshape((3, 1, 1))?;
            let std = Tensor::new(&self.config.std, &self.device)?.reshape((3, 1, 1))?;
            x.broadcast_mul(&std)?.broadcast_add(&mean)
        };
        run().be()
    }
}

fn check_size(image: &Image, compression: Compression) -> Result<()> {
    let f = compression.factor();
    if image.width < f
        || image.height < f
        || !image.width.is_multiple_of(f)
        || !image.height.is_multiple_of(f)
    {
        return Err(Error::invalid_input(
            "image",
            format!(
                "a {}x{} image cannot be tokenized at compression {f}: both sides must be positive multiples of {f} \
                 (resize it, e.g. to 160 or 480 px)",
                image.width, image.height
            ),
        ));
    }
    Ok(())
}

impl ImageTokenizer for VqTokenizer {
    fn encode(&self, image: &Image, compression: Compression) -> Result<TokenGrid> {
        check_size(image, compression)?;
        self.encode_tensor(&self.normalize(image)?, compression)
    }

    fn decode(&self, grid: &TokenGrid, compression: Compression) -> Result<Image> {
        let x = self.decode_tensor(grid, compression)?;
        let (_, h, w) = x.dims3().be()?;
        // The official scripts: clamp(x·255 + 0.5, 0, 255) → uint8.
        let v = x.to_vec3::<f32>().be()?;
        let mut pixels = vec![0u8; 3 * h * w];
        for y in 0..h {
            for xx in 0..w {
                for c in 0..3 {
                    pixels[(y * w + xx) * 3 + c] =
                        (v[c][y][xx] * 255.0 + 0.5).clamp(0.0, 255.0) as u8;
                }
            }
        }
        Image::new(w, h, pixels)
    }
}
