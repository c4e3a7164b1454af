//! DSR (direct super-resolution) and ItersR (the LoPAR refiner) as `sr_pipeline/dsr_model.py` and
//! `itersr_model.py` define them: the CogLM backbone plus the extra position embeddings of the
//! high-resolution grid, and for DSR a second QKV/dense projection per layer.

use crate::coglm::CoglmConfig;
use cogview_checkpoint::{Checkpoint, ModelConfig};
pub use cogview_core::sr::SrKind;
use cogview_core::sr::SrSpec;
use cogview_core::{Error, Result};

/// Geometry of an SR model (official values by default; from `model_config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct SrConfig {
    /// DSR (20×20 → 60×60 in one pass) or ItersR (re-sampling 60×60).
    pub kind: SrKind,
    /// The transformer's sizes, as for CogLM.
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
    /// Reads the SAT keys (`model_class`, `layout`, `kernel_size`, `kernel_size2` and the
    /// backbone's); the kind falls back to whether the checkpoint holds DSR's `attention_plus`.
    pub fn from_model_config(cfg: &ModelConfig, ckpt: &Checkpoint) -> Result<Self> {
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
        c.validate(&src)?;
        Ok(c)
    }

    /// Checks the geometry (and the backbone's sizes): every part of the layout has tokens, DSR's
    /// high-resolution side is a multiple of its low-resolution side, the windows are odd. `src`
    /// names the configuration in errors.
    pub fn validate(&self, src: &str) -> Result<()> {
        self.backbone.validate(src)?;
        if self.text_slots == 0 || self.high == 0 || (self.kind == SrKind::Dsr && self.low == 0) {
            return Err(Error::config(
                src,
                "layout",
                "every part of the layout needs tokens",
            ));
        }
        if self.kind == SrKind::Dsr && !self.high.is_multiple_of(self.low) {
            return Err(Error::config(
                src,
                "layout",
                format!(
                    "{}x{} is not a multiple of {}x{}",
                    self.high, self.high, self.low, self.low
                ),
            ));
        }
        if self.kernel_size.is_multiple_of(2) || self.kernel_size2.is_multiple_of(2) {
            return Err(Error::config(
                src,
                "kernel_size",
                "window sizes must be odd",
            ));
        }
        Ok(())
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

    /// What the core needs to assemble this model's input ([`cogview_core::sr::SrInput`]).
    pub fn spec(&self) -> SrSpec {
        SrSpec {
            kind: self.kind,
            text_slots: self.text_slots,
            low: self.low,
            high: self.high,
            kernel_size: self.kernel_size,
            kernel_size2: self.kernel_size2,
            vocab_size: self.backbone.vocab_size,
            image_vocab_size: self.backbone.image_vocab_size,
            max_positions: self.backbone.max_sequence_length,
            start_of_image_id: self.backbone.start_of_image_id,
        }
    }

    /// Parameter count.
    pub fn parameters(&self) -> usize {
        crate::tensors::count(&self.expected_tensors())
    }
}
