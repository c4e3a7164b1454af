//! The super-resolution transformers: DSR (direct super-resolution, one pass from 20×20 to 60×60)
//! and ItersR (the LoPAR refiner), as `sr_pipeline/dsr_model.py` and `itersr_model.py` define them:
//! the CogLM backbone plus 3600 extra position embeddings, and for DSR a second QKV/dense
//! projection per layer for the high-resolution tokens.

use crate::backbone::{open_model, Backbone, Linear};
use crate::config::CoglmConfig;
use crate::local_attention::{attend, Extra, Kv};
use crate::util::{BackendResult, LoadOptions};
use candle_core::{DType as CDType, Tensor};
use cogview_checkpoint::{Checkpoint, ModelConfig};
use cogview_core::local_window::LocalWindow;
use cogview_core::{Error, Result};
use std::path::Path;

/// Which super-resolution model a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrKind {
    Dsr,
    Itersr,
}

/// Geometry of an SR model (official values by default; from `model_config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct SrConfig {
    pub kind: SrKind,
    pub backbone: CoglmConfig,
    /// Text slots before the image tokens (DSR 96, ItersR 16).
    pub text_slots: usize,
    /// Low-resolution grid side (20).
    pub low: usize,
    /// High-resolution grid side (60).
    pub high: usize,
    /// `kernel_size` (5): the high-res window is (2k−1) × k.
    pub kernel_size: usize,
    /// `kernel_size2` (5): DSR's cross-resolution window is k2 × k2.
    pub kernel_size2: usize,
}

impl SrConfig {
    pub(crate) fn from_model_config(cfg: &ModelConfig, ckpt: &Checkpoint) -> Result<Self> {
        let src = cfg.path.display().to_string();
        let rows = ckpt
            .info("transformer.position_embeddings.weight")
            .map(|i| i.shape[0]);
        let backbone = CoglmConfig::from_model_config(cfg, rows)?;
        let kind = match cfg.opt_str("model_class")? {
            Some("DsrModel") => SrKind::Dsr,
            Some("ItersrModel") => SrKind::Itersr,
            _ if ckpt.info("mixins.attention_plus.dense.0.weight").is_some() => SrKind::Dsr,
            _ => SrKind::Itersr,
        };
        let layout: Vec<usize> = match cfg.values.get("layout") {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|v| v.as_u64().map(|x| x as usize))
                .collect::<Option<_>>()
                .ok_or_else(|| Error::config(&src, "layout", "expected a list of integers"))?,
            Some(v) => {
                return Err(Error::config(
                    &src,
                    "layout",
                    format!("expected a list of integers, found {v}"),
                ))
            }
            None => match kind {
                SrKind::Dsr => vec![96, 496, 4096],
                SrKind::Itersr => vec![16, 3616],
            },
        };
        let side = |n: usize, what: &str| -> Result<usize> {
            let s = (n as f64).sqrt().round() as usize;
            if s * s != n || s == 0 {
                return Err(Error::config(
                    &src,
                    "layout",
                    format!("{n} {what} tokens are not a square grid"),
                ));
            }
            Ok(s)
        };
        let (text_slots, low, high) = match (kind, layout.as_slice()) {
            (SrKind::Dsr, [t, l, h]) if l > t && h > l => (
                *t,
                side(l - t, "low-resolution")?,
                side(h - l, "high-resolution")?,
            ),
            (SrKind::Itersr, [t, h]) if h > t => (*t, 0, side(h - t, "high-resolution")?),
            _ => {
                return Err(Error::config(
                    &src,
                    "layout",
                    format!("{layout:?} does not fit a {kind:?} model"),
                ))
            }
        };
        let c = SrConfig {
            kind,
            backbone,
            text_slots,
            low,
            high,
            kernel_size: cfg.opt_usize("kernel_size")?.unwrap_or(5),
            kernel_size2: cfg.opt_usize("kernel_size2")?.unwrap_or(5),
        };
        if kind == SrKind::Dsr && !c.high.is_multiple_of(c.low) {
            return Err(Error::config(
                &src,
                "layout",
                format!(
                    "{}x{} is not a multiple of {}x{}",
                    c.high, c.high, c.low, c.low
                ),
            ));
        }
        if c.kernel_size.is_multiple_of(2) || c.kernel_size2.is_multiple_of(2) {
            return Err(Error::config(
                &src,
                "kernel_size",
                "window sizes must be odd",
            ));
        }
        Ok(c)
    }

    /// Every tensor the model needs: the backbone, the extra positions and DSR's attention_plus.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let b = &self.backbone;
        let (h, a) = (b.hidden_size, b.num_attention_heads * b.head_dim);
        let mut v = b.expected_tensors();
        v.push((
            "mixins.extra_position_embedding.position_embeddings.weight".into(),
            vec![self.high * self.high, h],
        ));
        if self.kind == SrKind::Dsr {
            for i in 0..b.num_layers {
                v.push((
                    format!("mixins.attention_plus.query_key_value.{i}.weight"),
                    vec![3 * a, h],
                ));
                v.push((
                    format!("mixins.attention_plus.query_key_value.{i}.bias"),
                    vec![3 * a],
                ));
                v.push((
                    format!("mixins.attention_plus.dense.{i}.weight"),
                    vec![h, a],
                ));
                v.push((format!("mixins.attention_plus.dense.{i}.bias"), vec![h]));
            }
        }
        v
    }

    fn self_window(&self) -> LocalWindow {
        LocalWindow {
            kh: 2 * self.kernel_size - 1,
            kw: self.kernel_size,
            ah: 1,
            aw: 1,
            causal: false,
        }
    }
    fn cross_window(&self) -> LocalWindow {
        let r = self.high / self.low.max(1);
        LocalWindow {
            kh: self.kernel_size2,
            kw: self.kernel_size2,
            ah: r,
            aw: r,
            causal: false,
        }
    }
}

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
        let (ckpt, cfg) = open_model(path.as_ref())?;
        let config = SrConfig::from_model_config(&cfg, &ckpt)?;
        Self::from_checkpoint(&ckpt, config, options)
    }

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

    pub fn config(&self) -> &SrConfig {
        &self.config
    }

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        cogview_core::lm::check_vocab(ids, self.b.config.vocab_size)
    }

    /// DSR: logits over the image vocabulary for every high-resolution cell, [high², image_vocab],
    /// from the text (without padding or `<start_of_image>`) and the low-resolution grid. The
    /// high-resolution inputs are all `placeholder` (150000 officially).
    pub fn dsr_logits(&self, text: &[u32], low_res: &[u32], placeholder: u32) -> Result<Tensor> {
        let c = &self.config;
        if c.kind != SrKind::Dsr {
            return Err(Error::invalid_input(
                "model",
                "this is an ItersR checkpoint; DSR needs the cogview2-dsr model",
            ));
        }
        if text.is_empty() || text.len() >= c.text_slots {
            return Err(Error::TextTooLong {
                tokens: text.len(),
                max: c.text_slots - 1,
                what: "DSR (its text needs 1 to 95 tokens and one pad)".into(),
            });
        }
        if low_res.len() != c.low * c.low {
            return Err(Error::invalid_input(
                "low_res",
                format!(
                    "{} ids for a {}x{} grid ({} needed)",
                    low_res.len(),
                    c.low,
                    c.low,
                    c.low * c.low
                ),
            ));
        }
        cogview_core::lm::check_vocab(low_res, self.b.config.image_vocab_size)?;
        self.check_ids(text)?;
        self.check_ids(&[placeholder])?;
        let n_pad = c.text_slots - text.len();
        let mut tokens0 = vec![0u32; n_pad];
        tokens0.extend_from_slice(text);
        tokens0.extend_from_slice(low_res);
        let mut pos0 = vec![0u32; n_pad];
        pos0.extend(0..text.len() as u32);
        pos0.extend((0..(c.low * c.low) as u32).map(|j| 513 + j));
        let n0 = tokens0.len();
        let bias0: Vec<f32> = (0..n0)
            .flat_map(|r| {
                (0..n0).map(move |k| {
                    if k >= n_pad && (k < c.text_slots || r >= c.text_slots) {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                })
            })
            .collect();
        let tokens1 = vec![placeholder; c.high * c.high];
        self.forward(&tokens0, &pos0, &bias0, &tokens1, None).be()
    }

    /// ItersR, one pass: logits for every high-resolution cell, [high², image_vocab]. `tokens` holds
    /// the current grid with the cells to re-sample already set to the mask id. Like the official
    /// code, only the first `text_slots` (16) text tokens are used.
    pub fn itersr_logits(&self, text: &[u32], tokens: &[u32]) -> Result<Tensor> {
        let c = &self.config;
        if c.kind != SrKind::Itersr {
            return Err(Error::invalid_input(
                "model",
                "this is a DSR checkpoint; ItersR needs the cogview2-itersr model",
            ));
        }
        if text.is_empty() {
            return Err(Error::invalid_input(
                "text",
                "ItersR needs at least one text token",
            ));
        }
        if tokens.len() != c.high * c.high {
            return Err(Error::invalid_input(
                "tokens",
                format!(
                    "{} ids for a {}x{} grid ({} needed)",
                    tokens.len(),
                    c.high,
                    c.high,
                    c.high * c.high
                ),
            ));
        }
        let text = if text.len() > c.text_slots {
            tracing::info!(
                tokens = text.len(),
                kept = c.text_slots,
                "ItersR sees only the first text tokens, as the official model"
            );
            &text[..c.text_slots]
        } else {
            text
        };
        self.check_ids(text)?;
        self.check_ids(tokens)?;
        let n_pad = c.text_slots - text.len();
        let mut tokens0 = vec![0u32; n_pad];
        tokens0.extend_from_slice(text);
        let mut pos0 = vec![0u32; n_pad];
        pos0.extend(0..text.len() as u32);
        let n0 = tokens0.len();
        let bias0: Vec<f32> = (0..n0)
            .flat_map(|_| (0..n0).map(move |k| if k >= n_pad { 0.0 } else { f32::NEG_INFINITY }))
            .collect();
        let visible: Vec<bool> = (0..n0).map(|k| k >= n_pad).collect();
        self.forward(&tokens0, &pos0, &bias0, tokens, Some(&visible))
            .be()
    }

    /// The additive mask `[high², n0 + high²]` of level 1 as one dense attention: 0 for the keys
    /// the local kernel visits (DSR: the low-resolution window, found after the text slots of
    /// level 0; ItersR: the visible text), and the high-resolution window; −inf elsewhere.
    fn level1_mask(
        &self,
        n0: usize,
        text_visible: Option<&[bool]>,
        dev: &candle_core::Device,
    ) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let n1 = c.high * c.high;
        let width = n0 + n1;
        let mut m = vec![f32::NEG_INFINITY; n1 * width];
        for qi in 0..n1 {
            let (y, x) = (qi / c.high, qi % c.high);
            let row = &mut m[qi * width..(qi + 1) * width];
            match text_visible {
                None => {
                    for r in c.cross_window().keys(y, x, c.low, c.low).flatten() {
                        row[c.text_slots + r] = 0.0;
                    }
                }
                Some(visible) => {
                    for (k, _) in visible.iter().enumerate().filter(|(_, v)| **v) {
                        row[k] = 0.0;
                    }
                }
            }
            for r in c.self_window().keys(y, x, c.high, c.high).flatten() {
                row[n0 + r] = 0.0;
            }
        }
        Tensor::from_vec(m, (n1, width), dev)
    }

    /// The two-level forward. Level 0 (text, and DSR's low-res grid) attends densely with `bias0`;
    /// level 1 (the high-res grid) attends locally: DSR to a low-res window, ItersR to the visible
    /// text (`text_visible`), plus the 9×5 high-res window.
    fn forward(
        &self,
        tokens0: &[u32],
        pos0: &[u32],
        bias0: &[f32],
        tokens1: &[u32],
        text_visible: Option<&[bool]>,
    ) -> candle_core::Result<Tensor> {
        let c = &self.config;
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
        let bias0 = Tensor::from_slice(bias0, (n0, n0), dev)?;
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
                let mask = self.level1_mask(n0, text_visible, dev)?;
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
            let o1 = match text_visible {
                None => {
                    let off = c.text_slots * a;
                    let low = Kv {
                        k: &k0h[off..],
                        v: &v0h[off..],
                    };
                    attend(
                        &q1,
                        (c.high, c.high),
                        heads,
                        d,
                        own,
                        c.self_window(),
                        Extra::Window {
                            kv: low,
                            window: c.cross_window(),
                            grid: (c.low, c.low),
                        },
                    )
                }
                Some(visible) => attend(
                    &q1,
                    (c.high, c.high),
                    heads,
                    d,
                    own,
                    c.self_window(),
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

impl cogview_core::sr::GridPredictor for SrModel {
    /// DSR: `grid` is the low-resolution grid (the placeholder is `start_of_image_id`); ItersR:
    /// the current high-resolution grid.
    fn predict(
        &self,
        text: &[u32],
        grid: &cogview_core::TokenGrid,
    ) -> Result<cogview_core::lm::Logits> {
        let t = match self.config.kind {
            SrKind::Dsr => self.dsr_logits(text, &grid.ids, self.b.config.start_of_image_id)?,
            SrKind::Itersr => self.itersr_logits(text, &grid.ids)?,
        };
        let (rows, vocab) = t.dims2().be()?;
        Ok(cogview_core::lm::Logits {
            rows,
            vocab,
            data: t.flatten_all().and_then(|t| t.to_vec1::<f32>()).be()?,
        })
    }
}
