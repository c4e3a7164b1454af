//! The super-resolution transformers: DSR (direct super-resolution, one pass from 20×20 to 60×60)
//! and ItersR (the LoPAR refiner), as `sr_pipeline/dsr_model.py` and `itersr_model.py` define them:
//! the CogLM backbone plus 3600 extra position embeddings, and for DSR a second QKV/dense
//! projection per layer for the high-resolution tokens.

use crate::backbone::{Backbone, Linear};
use crate::local_attention::{attend, Extra, Kv};
use crate::util::{BackendResult, LoadOptions};
use candle_core::{DType as CDType, Tensor};
use cogview_core::lm::Logits;
use cogview_core::sr::{GridPredictor, SrExtra, SrInput, SrSpec};
use cogview_core::Result;
pub use cogview_model::sr::{SrConfig, SrKind};
use std::path::Path;

/// A loaded DSR or ItersR model.
pub struct SrModel {
    config: SrConfig,
    b: Backbone,
    extra_positions: Tensor,
    /// DSR: per layer, the high-resolution QKV and dense projections.
    plus: Vec<(Linear, Linear)>,
}

impl std::fmt::Debug for SrModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrModel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SrModel {
    /// Loads an official `cogview2-dsr` / `cogview2-itersr` folder (or safetensors + config).
    pub fn load(path: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        let (ckpt, cfg) = cogview_model::inspect::open_model(path.as_ref())?;
        let config = SrConfig::from_model_config(&cfg, &ckpt)?;
        Self::from_checkpoint(&ckpt, config, options)
    }

    /// Builds the model from an opened checkpoint's tensors and its configuration.
    pub fn from_checkpoint(
        ckpt: &dyn crate::util::TensorSource,
        config: SrConfig,
        options: LoadOptions,
    ) -> Result<Self> {
        ckpt.check_tensors(&config.expected_tensors(), &|_| false)?;
        let b = Backbone::from_checkpoint(ckpt, config.backbone.clone(), options)?;
        let l = Backbone::loader(ckpt, &config.backbone, options)?;
        let extra_positions = l.t(
            "mixins.extra_position_embedding.position_embeddings.weight",
            l.dtype,
        )?;
        let plus = if config.kind == SrKind::Dsr {
            (0..config.backbone.num_layers)
                .map(|i| {
                    let p = "mixins.attention_plus";
                    Ok((
                        l.lin_named(
                            &format!("{p}.query_key_value.{i}.weight"),
                            &format!("{p}.query_key_value.{i}.bias"),
                        )?,
                        l.lin_named(
                            &format!("{p}.dense.{i}.weight"),
                            &format!("{p}.dense.{i}.bias"),
                        )?,
                    ))
                })
                .collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(SrModel {
            config,
            b,
            extra_positions,
            plus,
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &SrConfig {
        &self.config
    }

    /// What the core assembles this model's input from.
    pub fn spec(&self) -> SrSpec {
        self.config.spec()
    }

    /// DSR: logits over the image vocabulary for every high-resolution cell, [high², image_vocab],
    /// from the text (without padding or `<start_of_image>`) and the low-resolution grid. The
    /// high-resolution inputs are all `placeholder` (150000 officially). The input is assembled by
    /// [`SrInput::dsr`].
    pub fn dsr_logits(&self, text: &[u32], low_res: &[u32], placeholder: u32) -> Result<Tensor> {
        self.logits(&SrInput::dsr(&self.spec(), text, low_res, placeholder)?)
    }

    /// ItersR, one pass: logits for every high-resolution cell, [high², image_vocab]. `tokens` holds
    /// the current grid with the cells to re-sample already set to the mask id. Like the official
    /// code, only the first `text_slots` (16) text tokens are used. The input is assembled by
    /// [`SrInput::itersr`].
    pub fn itersr_logits(&self, text: &[u32], tokens: &[u32]) -> Result<Tensor> {
        self.logits(&SrInput::itersr(&self.spec(), text, tokens)?)
    }

    /// Logits `[high², image_vocab]` (f32) of an assembled input, after checking that it fits this
    /// model. Differentiable when the weights are training variables.
    pub fn logits(&self, input: &SrInput) -> Result<Tensor> {
        input.check(&self.spec())?;
        self.forward(input).be()
    }

    /// The additive mask `[high², n0 + high²]` of level 1 as one dense attention: 0 for the keys
    /// the local kernel visits ([`SrInput::level1_keys`]), −inf elsewhere.
    fn level1_mask(input: &SrInput, dev: &candle_core::Device) -> candle_core::Result<Tensor> {
        let (n0, n1) = (input.level0_len(), input.level1_len());
        let width = n0 + n1;
        let mut m = vec![f32::NEG_INFINITY; n1 * width];
        for (qi, row) in m.chunks_mut(width).enumerate() {
            for k in input.level1_keys(qi) {
                row[k] = 0.0;
            }
        }
        Tensor::from_vec(m, (n1, width), dev)
    }

    /// The two-level forward. Level 0 (text, and DSR's low-res grid) attends densely with `bias0`;
    /// level 1 (the high-res grid) attends locally: DSR to a low-res window, ItersR to the visible
    /// text, plus its own window.
    fn forward(&self, input: &SrInput) -> candle_core::Result<Tensor> {
        let (tokens0, pos0, tokens1) = (&input.tokens0, &input.positions0, &input.tokens1);
        let high = input.high;
        let b = &self.b;
        let bc = &b.config;
        let dev = &b.device;
        let (heads, d) = (bc.num_attention_heads, bc.head_dim);
        let a = heads * d;
        let n0 = tokens0.len();
        let n1 = tokens1.len();
        let embed = |ids: &[u32]| {
            b.word_embeddings
                .index_select(&Tensor::from_slice(ids, ids.len(), dev)?, 0)
        };
        let mut x0 = (embed(tokens0)?
            + b.position_embeddings
                .index_select(&Tensor::from_slice(pos0, n0, dev)?, 0)?)?
        .to_dtype(b.act_dtype)?;
        let mut x1 =
            (embed(tokens1)? + self.extra_positions.narrow(0, 0, n1)?)?.to_dtype(b.act_dtype)?;
        let bias0 = Tensor::from_slice(&input.bias0, (n0, n0), dev)?;
        let scale = 1.0 / (d as f64).sqrt();
        let split = |qkv: &Tensor, i: usize| -> candle_core::Result<Tensor> {
            qkv.narrow(1, i * a, a)?.contiguous()
        };
        let host = |t: &Tensor| -> candle_core::Result<Vec<f32>> {
            t.to_dtype(CDType::F32)?.flatten_all()?.to_vec1::<f32>()
        };
        for (i, l) in b.layers.iter().enumerate() {
            let (qkv1_lin, dense1) = match self.plus.get(i) {
                Some((q, dn)) => (q, dn),
                None => (&l.query_key_value, &l.dense),
            };
            let qkv0 = l
                .query_key_value
                .forward(&l.input_layernorm.forward(&x0)?)?;
            let qkv1 = qkv1_lin.forward(&l.input_layernorm.forward(&x1)?)?;
            let (q0, k0, v0) = (split(&qkv0, 0)?, split(&qkv0, 1)?, split(&qkv0, 2)?);
            // Level 0: dense attention per head.
            let heads0 = |t: &Tensor| t.reshape((n0, heads, d))?.transpose(0, 1)?.contiguous();
            let s = (heads0(&q0)? * scale)?
                .matmul(&heads0(&k0)?.t()?)?
                .to_dtype(CDType::F32)?
                .broadcast_add(&bias0)?;
            let p = crate::backbone::softmax_last_dim(&s)?.to_dtype(x0.dtype())?;
            let o0 = p.matmul(&heads0(&v0)?)?.transpose(0, 1)?.reshape((n0, a))?;
            if x1.track_op() {
                // Training: the same attention as one dense softmax over [level 0; level 1] keys
                // with the windows as a mask, from differentiable ops.
                let mask = Self::level1_mask(input, dev)?;
                let heads1 =
                    |t: &Tensor, n: usize| t.reshape((n, heads, d))?.transpose(0, 1)?.contiguous();
                let keys = Tensor::cat(&[&heads1(&k0, n0)?, &heads1(&split(&qkv1, 1)?, n1)?], 1)?;
                let values = Tensor::cat(&[&heads1(&v0, n0)?, &heads1(&split(&qkv1, 2)?, n1)?], 1)?;
                let s1 = (heads1(&split(&qkv1, 0)?, n1)? * scale)?
                    .matmul(&keys.t()?)?
                    .to_dtype(CDType::F32)?
                    .broadcast_add(&mask)?;
                let p1 = crate::backbone::softmax_last_dim(&s1)?.to_dtype(x1.dtype())?;
                let o1 = p1.matmul(&values)?.transpose(0, 1)?.reshape((n1, a))?;
                x0 = (&x0 + l.third_layernorm.forward(&l.dense.forward(&o0)?)?)?;
                x1 = (&x1 + l.third_layernorm.forward(&dense1.forward(&o1)?)?)?;
                x0 = b.mlp(i, &x0)?;
                x1 = b.mlp(i, &x1)?;
                continue;
            }
            // Level 1: local attention.
            let q1 = host(&(split(&qkv1, 0)? * scale)?)?;
            let (k1, v1) = (host(&split(&qkv1, 1)?)?, host(&split(&qkv1, 2)?)?);
            let own = Kv { k: &k1, v: &v1 };
            let (k0h, v0h) = (host(&k0)?, host(&v0)?);
            let o1 = match &input.extra {
                SrExtra::LowWindow {
                    offset,
                    side,
                    window,
                } => {
                    let off = offset * a;
                    let low = Kv {
                        k: &k0h[off..],
                        v: &v0h[off..],
                    };
                    attend(
                        &q1,
                        (high, high),
                        heads,
                        d,
                        own,
                        input.own_window,
                        Extra::Window {
                            kv: low,
                            window: *window,
                            grid: (*side, *side),
                        },
                    )
                }
                SrExtra::Visible(visible) => attend(
                    &q1,
                    (high, high),
                    heads,
                    d,
                    own,
                    input.own_window,
                    Extra::Global {
                        kv: Kv { k: &k0h, v: &v0h },
                        visible,
                    },
                ),
            };
            let o1 = Tensor::from_vec(o1, (n1, a), dev)?.to_dtype(x1.dtype())?;
            x0 = (&x0 + l.third_layernorm.forward(&l.dense.forward(&o0)?)?)?;
            x1 = (&x1 + l.third_layernorm.forward(&dense1.forward(&o1)?)?)?;
            x0 = b.mlp(i, &x0)?;
            x1 = b.mlp(i, &x1)?;
        }
        b.image_logits(&x1)
    }
}

impl GridPredictor for SrModel {
    fn spec(&self) -> Result<SrSpec> {
        Ok(self.config.spec())
    }

    fn predict(&self, input: &SrInput) -> Result<Logits> {
        let t = self.logits(input)?;
        let (rows, vocab) = t.dims2().be()?;
        Ok(Logits {
            rows,
            vocab,
            data: t.flatten_all().and_then(|t| t.to_vec1::<f32>()).be()?,
        })
    }
}
