//! The SwissArmyTransformer backbone CogLM, DSR and ItersR share, in libtorch: word and position
//! embeddings, sandwich-LayerNorm layers (LN → attention → LN, residual; LN → MLP → LN, residual)
//! with a fused QKV projection and a tanh-GELU MLP, the final LayerNorm and the tied output head.
//!
//! Precision: weights and activations in the requested dtype; every LayerNorm, every attention
//! softmax and the output head in f32 (as apex's fused LayerNorm and SAT's fp32 softmax do).

use crate::weights::{Frozen, Loader};
use cogview_core::Result;
use cogview_model::CoglmConfig;
use tch::{Kind, Tensor};

pub struct LayerNorm {
    weight: Frozen,
    bias: Frozen,
    eps: f64,
    width: i64,
}

impl LayerNorm {
    pub fn load(l: &Loader, p: &str, eps: f64) -> Result<Self> {
        let weight = l.load(&format!("{p}.weight"), Kind::Float)?;
        let width = weight.size()[0];
        Ok(LayerNorm {
            weight: Frozen::new(weight),
            bias: Frozen::new(l.load(&format!("{p}.bias"), Kind::Float)?),
            eps,
            width,
        })
    }

    /// Normalises over the last dimension in f32 and returns `x`'s dtype.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_f32(x).to_kind(x.kind())
    }

    /// Normalises over the last dimension in f32 and returns f32.
    pub fn forward_f32(&self, x: &Tensor) -> Tensor {
        x.to_kind(Kind::Float).layer_norm(
            [self.width],
            Some(&*self.weight),
            Some(&*self.bias),
            self.eps,
            false,
        )
    }
}

pub struct Linear {
    weight: Frozen,
    bias: Frozen,
}

impl Linear {
    pub fn load(l: &Loader, weight: &str, bias: &str, kind: Kind) -> Result<Self> {
        Ok(Linear {
            weight: Frozen::new(l.load(weight, kind)?),
            bias: Frozen::new(l.load(bias, kind)?),
        })
    }
    pub fn load_prefix(l: &Loader, p: &str, kind: Kind) -> Result<Self> {
        Self::load(l, &format!("{p}.weight"), &format!("{p}.bias"), kind)
    }
    /// y = x Wᵀ + b.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&*self.weight, Some(&*self.bias))
    }
}

pub struct Layer {
    pub input_layernorm: LayerNorm,
    pub query_key_value: Linear,
    pub dense: Linear,
    pub third_layernorm: LayerNorm,
    pub post_attention_layernorm: LayerNorm,
    pub dense_h_to_4h: Linear,
    pub dense_4h_to_h: Linear,
    pub fourth_layernorm: LayerNorm,
}

/// Softmax over the last dimension in f32 of `scores` (any dtype) plus `bias` (f32, broadcast),
/// returned in `kind`.
pub fn softmax_with_bias(scores: &Tensor, bias: &Tensor, kind: Kind) -> Tensor {
    (scores.to_kind(Kind::Float) + bias)
        .softmax(-1, Kind::Float)
        .to_kind(kind)
}

pub struct Backbone {
    pub config: CoglmConfig,
    /// Weights and activations.
    pub kind: Kind,
    pub device: tch::Device,
    pub word_embeddings: Frozen,
    pub position_embeddings: Frozen,
    pub layers: Vec<Layer>,
    pub final_layernorm: LayerNorm,
    /// Rows `0..image_vocab_size` of the word embedding in f32: the image head.
    pub image_head: Frozen,
}

impl Backbone {
    /// Loads the `transformer.*` tensors (the caller has checked the checkpoint).
    pub fn load(l: &Loader, config: CoglmConfig, kind: Kind) -> Result<Self> {
        let eps = config.layernorm_epsilon;
        let mut layers = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let p = format!("transformer.layers.{i}");
            layers.push(Layer {
                input_layernorm: LayerNorm::load(l, &format!("{p}.input_layernorm"), eps)?,
                query_key_value: Linear::load_prefix(
                    l,
                    &format!("{p}.attention.query_key_value"),
                    kind,
                )?,
                dense: Linear::load_prefix(l, &format!("{p}.attention.dense"), kind)?,
                third_layernorm: LayerNorm::load(l, &format!("{p}.third_layernorm"), eps)?,
                post_attention_layernorm: LayerNorm::load(
                    l,
                    &format!("{p}.post_attention_layernorm"),
                    eps,
                )?,
                dense_h_to_4h: Linear::load_prefix(l, &format!("{p}.mlp.dense_h_to_4h"), kind)?,
                dense_4h_to_h: Linear::load_prefix(l, &format!("{p}.mlp.dense_4h_to_h"), kind)?,
                fourth_layernorm: LayerNorm::load(l, &format!("{p}.fourth_layernorm"), eps)?,
            });
        }
        let word_embeddings = l.load("transformer.word_embeddings.weight", kind)?;
        let image_vocab = config.image_vocab_size as i64;
        let image_head = crate::weights::guard("load", || {
            if kind == Kind::Float {
                word_embeddings.narrow(0, 0, image_vocab)
            } else {
                // A copy of the image rows only, so the f32 head does not keep a second embedding.
                word_embeddings
                    .narrow(0, 0, image_vocab)
                    .to_kind(Kind::Float)
                    .contiguous()
            }
        })?;
        Ok(Backbone {
            position_embeddings: Frozen::new(
                l.load("transformer.position_embeddings.weight", kind)?,
            ),
            final_layernorm: LayerNorm::load(l, "transformer.final_layernorm", eps)?,
            word_embeddings: Frozen::new(word_embeddings),
            image_head: Frozen::new(image_head),
            layers,
            kind,
            device: l.device,
            config,
        })
    }

    /// The MLP half of a sandwich layer: x + LN4(W2 gelu_tanh(W1 LN2(x))).
    pub fn mlp(&self, i: usize, x: &Tensor) -> Tensor {
        let l = &self.layers[i];
        let y = l
            .dense_h_to_4h
            .forward(&l.post_attention_layernorm.forward(x))
            .gelu("tanh");
        let y = l.dense_4h_to_h.forward(&y);
        x + l.fourth_layernorm.forward(&y)
    }

    /// Word plus position embeddings of `ids` [n] at `positions` (a [n] index tensor or a
    /// [n, h] tensor of rows already selected), as [n, h].
    pub fn embed(&self, ids: &Tensor, positions: &Tensor) -> Tensor {
        self.word_embeddings.index_select(0, ids) + positions
    }

    /// f32 logits over ids `0..vocab` of rows `x` [rows, h] after the final LayerNorm.
    pub fn logits(&self, x: &Tensor, vocab: usize) -> Tensor {
        let x = self.final_layernorm.forward_f32(x);
        if vocab == self.config.image_vocab_size {
            x.matmul(&self.image_head.tr())
        } else {
            let head = self
                .word_embeddings
                .narrow(0, 0, vocab as i64)
                .to_kind(Kind::Float);
            x.matmul(&head.tr())
        }
    }
}
