//! icetk's image tokenizer on libtorch: the taming-style ResNet encoder, the residual
//! down-samplers, the 1×1 pre-projection, the nearest-neighbour quantizer over the shared codebook
//! and the three decoders (×16, ×8, ×4). Tensor names follow icetk's `HVQVAE`.
//!
//! Precision: convolutions in the compute dtype (half dtypes on the CPU run in f32: libtorch's CPU
//! convolutions are slow or missing in half precision, and the VQ-VAE is ~1 % of the pipeline's
//! weights); GroupNorm, the attention blocks and the quantizer always in f32.

use crate::weights::{guard, to_vec_f32, Frozen, Loader};
use cogview_checkpoint::Checkpoint;
use cogview_core::backend::LoadRequest;
use cogview_core::{Compression, Error, Image, ImageTokenizer, Result, TokenGrid};
use cogview_model::VqConfig;
use tch::{Kind, Tensor};

struct Conv2d {
    weight: Frozen,
    bias: Frozen,
    padding: i64,
    stride: i64,
}

impl Conv2d {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &*self.weight,
            Some(&*self.bias),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )
    }
}

/// GroupNorm in f32, returning `x`'s dtype.
struct Norm {
    weight: Frozen,
    bias: Frozen,
    groups: i64,
    eps: f64,
}

impl Norm {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.to_kind(Kind::Float)
            .group_norm(
                self.groups,
                Some(&*self.weight),
                Some(&*self.bias),
                self.eps,
                false,
            )
            .to_kind(x.kind())
    }
    /// swish(norm(x)).
    fn forward_swish(&self, x: &Tensor) -> Tensor {
        x.to_kind(Kind::Float)
            .group_norm(
                self.groups,
                Some(&*self.weight),
                Some(&*self.bias),
                self.eps,
                false,
            )
            .silu()
            .to_kind(x.kind())
    }
}

struct Weights<'a> {
    l: Loader<'a>,
    kind: Kind,
    cfg: &'a VqConfig,
}

impl Weights<'_> {
    fn conv(&self, p: &str, padding: i64, stride: i64) -> Result<Conv2d> {
        Ok(Conv2d {
            weight: Frozen::new(self.l.load(&format!("{p}.weight"), self.kind)?),
            bias: Frozen::new(self.l.load(&format!("{p}.bias"), self.kind)?),
            padding,
            stride,
        })
    }
    fn norm(&self, p: &str) -> Result<Norm> {
        Ok(Norm {
            weight: Frozen::new(self.l.load(&format!("{p}.weight"), Kind::Float)?),
            bias: Frozen::new(self.l.load(&format!("{p}.bias"), Kind::Float)?),
            groups: self.cfg.norm_groups as i64,
            eps: self.cfg.norm_eps,
        })
    }
    fn has(&self, name: &str) -> bool {
        self.l.ckpt.info(name).is_some()
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
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.conv1.forward(&self.norm1.forward_swish(x));
        let h = self.conv2.forward(&self.norm2.forward_swish(&h));
        match &self.nin_shortcut {
            Some(s) => s.forward(x) + h,
            None => x + h,
        }
    }
}

/// Single-head self-attention over the spatial positions, with 1×1 convolutions; f32 scores.
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
    fn forward(&self, x: &Tensor) -> Tensor {
        let s = x.size();
        let (b, c, h, wd) = (s[0], s[1], s[2], s[3]);
        let n = self.norm.forward(x);
        let flat = |t: Tensor| t.to_kind(Kind::Float).reshape([b, c, h * wd]);
        let q = flat(self.q.forward(&n)) * (c as f64).powf(-0.5);
        let k = flat(self.k.forward(&n));
        let v = flat(self.v.forward(&n));
        let probs = q.transpose(1, 2).matmul(&k).softmax(-1, Kind::Float); // [b, hw_q, hw_k]
        let out = v.matmul(&probs.transpose(1, 2)).to_kind(x.kind()); // [b, c, hw_q]
        x + self.proj_out.forward(&out.reshape([b, c, h, wd]))
    }
}

/// A level's blocks, each optionally followed by attention, and its resampling convolution.
struct Level {
    blocks: Vec<(ResnetBlock, Option<AttnBlock>)>,
    resample: Option<Conv2d>,
}

impl Level {
    fn blocks(&self, mut h: Tensor) -> Tensor {
        for (block, attn) in &self.blocks {
            h = block.forward(&h);
            if let Some(a) = attn {
                h = a.forward(&h);
            }
        }
        h
    }
}

fn attn_if_present(w: &Weights, p: &str) -> Result<Option<AttnBlock>> {
    if w.has(&format!("{p}.q.weight")) {
        Ok(Some(AttnBlock::load(w, p)?))
    } else {
        Ok(None)
    }
}

/// Zero padding of one row at the bottom and one column at the right.
fn pad_right_bottom(x: &Tensor) -> Tensor {
    x.constant_pad_nd([0, 1, 0, 1])
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
                blocks.push((
                    ResnetBlock::load(w, &format!("{p}.down.{i}.block.{j}"))?,
                    attn_if_present(w, &format!("{p}.down.{i}.attn.{j}"))?,
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
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = self.conv_in.forward(x);
        for level in &self.down {
            h = level.blocks(h);
            if let Some(conv) = &level.resample {
                // taming's Downsample: pad right and bottom by one, then a stride-2 3×3 conv.
                h = conv.forward(&pad_right_bottom(&h));
            }
        }
        let h = self.mid.0.forward(&h);
        let h = self.mid.1.forward(&h);
        let h = self.mid.2.forward(&h);
        self.conv_out.forward(&self.norm_out.forward_swish(&h))
    }
}

struct Decoder {
    conv_in: Conv2d,
    mid: (ResnetBlock, AttnBlock, ResnetBlock),
    /// Levels from the coarsest to level 0.
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
                blocks.push((
                    ResnetBlock::load(w, &format!("{p}.up.{i}.block.{j}"))?,
                    attn_if_present(w, &format!("{p}.up.{i}.attn.{j}"))?,
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
    fn forward(&self, z: &Tensor) -> Tensor {
        let h = self.conv_in.forward(z);
        let h = self.mid.0.forward(&h);
        let h = self.mid.1.forward(&h);
        let mut h = self.mid.2.forward(&h);
        for level in &self.up {
            h = level.blocks(h);
            if let Some(conv) = &level.resample {
                let s = h.size();
                h = conv.forward(&h.upsample_nearest2d([s[2] * 2, s[3] * 2], None, None));
            }
        }
        self.conv_out.forward(&self.norm_out.forward_swish(&h))
    }
}

/// The loaded image tokenizer.
pub struct TchVq {
    config: VqConfig,
    device: tch::Device,
    kind: Kind,
    encoder: Encoder,
    /// Residual down-samplers (`avg_pool2d(2) + conv3x3/2`), one per extra compression level.
    down_samplers: Vec<Conv2d>,
    proj: Conv2d,
    /// Codebook `[n_embed, dim]` in f32, and its squared norms.
    codebook: Frozen,
    codebook_sq: Frozen,
    decoders: Vec<Decoder>,
}

fn level(c: Compression) -> usize {
    match c {
        Compression::X4 => 0,
        Compression::X8 => 1,
        Compression::X16 => 2,
    }
}

impl TchVq {
    pub fn load(
        ckpt: &Checkpoint,
        config: VqConfig,
        kind: Kind,
        device: tch::Device,
        request: &LoadRequest,
    ) -> Result<Self> {
        config.validate()?;
        let expected = config.expected_tensors();
        ckpt.check(&expected, cogview_model::vq::is_training_buffer)?;
        // Half precision on the CPU computes in f32 (see the module documentation).
        let kind = if device == tch::Device::Cpu {
            Kind::Float
        } else {
            kind
        };
        let w = Weights {
            l: Loader::new(ckpt, device, request, expected.len()),
            kind,
            cfg: &config,
        };
        let codebook = w.l.load("quantize.embed.weight", Kind::Float)?;
        let codebook_sq = guard("load", || codebook.square().sum_dim_intlist(&[1i64][..], false, Kind::Float))?;
        let encoder = Encoder::load(&w, "enc")?;
        let down_samplers = (0..2)
            .map(|l| w.conv(&format!("down_samplers.{l}.conv_down_sampler.conv"), 0, 2))
            .collect::<Result<_>>()?;
        let proj = w.conv("quantize.proj", 0, 1)?;
        let decoders = (0..3)
            .map(|d| Decoder::load(&w, &format!("decs.{d}"), config.dec_channels_mult[d].len()))
            .collect::<Result<_>>()?;
        Ok(TchVq {
            encoder,
            down_samplers,
            proj,
            decoders,
            codebook: Frozen::new(codebook),
            codebook_sq: Frozen::new(codebook_sq),
            kind,
            device,
            config,
        })
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

    /// Pixels (RGB8) → the normalised input `[1, 3, h, w]` as host data.
    fn normalize(&self, image: &Image) -> Vec<f32> {
        let (w, h) = (image.width, image.height);
        let mut data = vec![0f32; 3 * w * h];
        for (i, px) in image.pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                data[c * w * h + i] =
                    (px[c] as f32 / 255.0 - self.config.mean[c]) / self.config.std[c];
            }
        }
        data
    }

    /// Nearest codebook entry (squared L2) of every position of `z` [1, dim, h, w]: row-major ids.
    fn quantize(&self, z: &Tensor) -> Vec<u32> {
        let s = z.size();
        let (c, hw) = (s[1], s[2] * s[3]);
        let flat = z.to_kind(Kind::Float).reshape([c, hw]).transpose(0, 1); // [hw, c]
        let dots = flat.matmul(&self.codebook.transpose(0, 1)); // [hw, n]
        let dist = self.codebook_sq.unsqueeze(0) - dots * 2.0;
        let ids = dist.argmin(-1, false).to_device(tch::Device::Cpu);
        let n = ids.numel();
        let mut out = vec![0i64; n];
        ids.copy_data(&mut out, n);
        out.into_iter().map(|i| i as u32).collect()
    }

    fn encode_ids(&self, x: &[f32], height: usize, width: usize, compression: Compression) -> (usize, usize, Vec<u32>) {
        let x = Tensor::from_slice(x)
            .view([1, 3, height as i64, width as i64])
            .to_device(self.device)
            .to_kind(self.kind);
        let mut h = self.encoder.forward(&x);
        for conv in &self.down_samplers[..level(compression)] {
            // icetk's ResidualDownSample: avg_pool2d(2) + stride-2 conv with right/bottom padding.
            h = h.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>)
                + conv.forward(&pad_right_bottom(&h));
        }
        let z = self.proj.forward(&h);
        let s = z.size();
        (s[2] as usize, s[3] as usize, self.quantize(&z))
    }

    /// Ids → the de-normalised float image `[3, H, W]` (not clamped) as host data.
    fn decode_pixels(&self, grid: &TokenGrid, compression: Compression) -> (usize, usize, Vec<f32>) {
        let ids = crate::weights::index_tensor(&grid.ids, self.device);
        let z = self
            .codebook
            .index_select(0, &ids)
            .transpose(0, 1)
            .reshape([
                1,
                self.config.embedding_dim as i64,
                grid.height as i64,
                grid.width as i64,
            ])
            .to_kind(self.kind);
        let x = self.decoders[2 - level(compression)]
            .forward(&z)
            .to_kind(Kind::Float)
            .squeeze_dim(0);
        let mean = Tensor::from_slice(&self.config.mean)
            .view([3, 1, 1])
            .to_device(self.device);
        let std = Tensor::from_slice(&self.config.std)
            .view([3, 1, 1])
            .to_device(self.device);
        let x = x * std + mean;
        let s = x.size();
        (s[1] as usize, s[2] as usize, to_vec_f32(&x))
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

impl ImageTokenizer for TchVq {
    fn encode(&self, image: &Image, compression: Compression) -> Result<TokenGrid> {
        check_size(image, compression)?;
        self.check_trained(compression)?;
        let x = self.normalize(image);
        let (h, w, ids) = guard("VQ encode", || {
            self.encode_ids(&x, image.height, image.width, compression)
        })?;
        TokenGrid::new(h, w, ids)
    }

    fn decode(&self, grid: &TokenGrid, compression: Compression) -> Result<Image> {
        self.check_trained(compression)?;
        cogview_core::lm::check_vocab(&grid.ids, self.config.n_embed)?;
        let (h, w, v) = guard("VQ decode", || self.decode_pixels(grid, compression))?;
        // The official scripts: clamp(x·255 + 0.5, 0, 255) → uint8.
        let mut pixels = vec![0u8; 3 * h * w];
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    pixels[(y * w + x) * 3 + c] =
                        (v[(c * h + y) * w + x] * 255.0 + 0.5).clamp(0.0, 255.0) as u8;
                }
            }
        }
        Image::new(w, h, pixels)
    }
}
