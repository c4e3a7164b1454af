//! CogLM, the SwissArmyTransformer sandwich-LayerNorm GPT of CogView2's first stage: its sizes
//! and the SAT state-dict names and shapes of its weights.

use cogview_checkpoint::ModelConfig;
use cogview_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// CogLM's sizes, read from the checkpoint's `model_config.json` (as SAT writes it).
///
/// Official CogLM: 48 layers, hidden 3072, 48 heads, inner 12288, vocabulary ≥ 150003, 1024 positions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoglmConfig {
    /// Transformer layers (official 48).
    pub num_layers: usize,
    /// Width of the residual stream (official 3072).
    pub hidden_size: usize,
    /// Attention heads; `hidden_size` must divide by it (official 48).
    pub num_attention_heads: usize,
    /// Rows of the word embedding = the output vocabulary.
    pub vocab_size: usize,
    /// Rows of the position embedding.
    pub max_sequence_length: usize,
    /// MLP width (SAT: `inner_hidden_size`, default 4 × hidden).
    pub inner_hidden_size: usize,
    /// Per-head width (SAT: `hidden_size_per_attention_head`, default hidden / heads).
    pub head_dim: usize,
    /// LayerNorm epsilon (SAT's BaseModel default 1e-5).
    pub layernorm_epsilon: f64,
    /// Image codes are ids 0..image_vocab_size (cogview key; default 20000, icetk's codebook).
    pub image_vocab_size: usize,
    /// `<start_of_image>` (cogview key; default 150000, icetk's id).
    pub start_of_image_id: u32,
}

impl CoglmConfig {
    /// Reads the SAT keys. `max_sequence_length` may be absent; then `positions_rows` (the shape of
    /// `transformer.position_embeddings.weight`) is used.
    pub fn from_model_config(cfg: &ModelConfig, positions_rows: Option<usize>) -> Result<Self> {
        let src = cfg.path.display().to_string();
        if let Some(order) = cfg.opt_str("layernorm_order")? {
            if order != "sandwich" {
                return Err(Error::config(
                    &src,
                    "layernorm_order",
                    format!("'{order}' is not supported; CogView2's models use 'sandwich'"),
                ));
            }
        }
        let hidden_size = cfg.usize("hidden_size")?;
        let num_attention_heads = cfg.usize("num_attention_heads")?;
        if num_attention_heads == 0 {
            return Err(Error::config(
                &src,
                "num_attention_heads",
                "must be at least 1",
            ));
        }
        let head_dim = match cfg.opt_usize("hidden_size_per_attention_head")? {
            Some(d) => d,
            None => {
                if hidden_size % num_attention_heads != 0 {
                    return Err(Error::config(
                        &src,
                        "num_attention_heads",
                        format!(
                            "{num_attention_heads} heads do not divide hidden_size {hidden_size}"
                        ),
                    ));
                }
                hidden_size / num_attention_heads
            }
        };
        let max_sequence_length = match cfg.opt_usize("max_sequence_length")? {
            Some(n) => n,
            None => positions_rows
                .ok_or_else(|| Error::config(&src, "max_sequence_length", "missing"))?,
        };
        let c = CoglmConfig {
            num_layers: cfg.usize("num_layers")?,
            hidden_size,
            num_attention_heads,
            vocab_size: cfg.usize("vocab_size")?,
            max_sequence_length,
            inner_hidden_size: cfg
                .opt_usize("inner_hidden_size")?
                .unwrap_or(4 * hidden_size),
            head_dim,
            layernorm_epsilon: cfg.opt_f64("layernorm_epsilon")?.unwrap_or(1e-5),
            image_vocab_size: cfg.opt_usize("image_vocab_size")?.unwrap_or(20000),
            start_of_image_id: cfg.opt_usize("start_of_image_id")?.unwrap_or(150000) as u32,
        };
        c.validate(&src)?;
        Ok(c)
    }

    /// Checks what [`CoglmConfig::from_model_config`] cannot: sizes that contradict each other.
    /// `src` names the configuration in errors.
    pub fn validate(&self, src: &str) -> Result<()> {
        if self.image_vocab_size > self.vocab_size {
            return Err(Error::config(
                src,
                "vocab_size",
                format!(
                    "{} is smaller than the image vocabulary of {}",
                    self.vocab_size, self.image_vocab_size
                ),
            ));
        }
        if self.start_of_image_id as usize >= self.vocab_size {
            return Err(Error::config(
                src,
                "vocab_size",
                format!(
                    "{} ids cannot hold <start_of_image> = {}; set start_of_image_id for small vocabularies",
                    self.vocab_size, self.start_of_image_id
                ),
            ));
        }
        if self.layernorm_epsilon.is_nan() || self.layernorm_epsilon <= 0.0 {
            return Err(Error::config(src, "layernorm_epsilon", "must be positive"));
        }
        Ok(())
    }

    /// Every tensor the model needs, with its shape (the SAT state-dict names).
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let h = self.hidden_size;
        let a = self.num_attention_heads * self.head_dim;
        let f = self.inner_hidden_size;
        let mut v = vec![
            (
                "transformer.word_embeddings.weight".to_string(),
                vec![self.vocab_size, h],
            ),
            (
                "transformer.position_embeddings.weight".to_string(),
                vec![self.max_sequence_length, h],
            ),
            ("transformer.final_layernorm.weight".to_string(), vec![h]),
            ("transformer.final_layernorm.bias".to_string(), vec![h]),
        ];
        for i in 0..self.num_layers {
            let p = format!("transformer.layers.{i}");
            for ln in [
                "input_layernorm",
                "third_layernorm",
                "post_attention_layernorm",
                "fourth_layernorm",
            ] {
                v.push((format!("{p}.{ln}.weight"), vec![h]));
                v.push((format!("{p}.{ln}.bias"), vec![h]));
            }
            v.push((
                format!("{p}.attention.query_key_value.weight"),
                vec![3 * a, h],
            ));
            v.push((format!("{p}.attention.query_key_value.bias"), vec![3 * a]));
            v.push((format!("{p}.attention.dense.weight"), vec![h, a]));
            v.push((format!("{p}.attention.dense.bias"), vec![h]));
            v.push((format!("{p}.mlp.dense_h_to_4h.weight"), vec![f, h]));
            v.push((format!("{p}.mlp.dense_h_to_4h.bias"), vec![f]));
            v.push((format!("{p}.mlp.dense_4h_to_h.weight"), vec![h, f]));
            v.push((format!("{p}.mlp.dense_4h_to_h.bias"), vec![h]));
        }
        v
    }

    /// Parameter count.
    pub fn parameters(&self) -> usize {
        crate::tensors::count(&self.expected_tensors())
    }
}
