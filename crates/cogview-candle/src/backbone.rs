//! The SwissArmyTransformer backbone CogLM, DSR and ItersR share: word and position embeddings,
//! sandwich-LayerNorm layers with fused QKV and a tanh-GELU MLP, the final LayerNorm and the tied
//! output head.

use crate::bf16_pack::PackedBf16;
use crate::cpu_int8::Int8Weights;
use crate::util::{cdtype, device, BackendResult, LoadOptions, TensorSource};
use candle_core::{DType as CDType, Device as CDevice, Tensor};
use cogview_core::Result;
use cogview_model::CoglmConfig;
use std::sync::Arc;

pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    /// Normalises in f32 (as apex's FusedLayerNorm does for fp16 inputs) and returns `x`'s dtype.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dt = x.dtype();
        if x.track_op() || self.weight.track_op() {
            // Training: the same function with a backward.
            let x = x.to_dtype(CDType::F32)?;
            let y = if x.device().is_cpu() {
                crate::train_ops::layer_norm(&x, &self.weight, &self.bias, self.eps)?
            } else {
                candle_nn::ops::layer_norm_slow(&x, &self.weight, &self.bias, self.eps)?
            };
            return y.to_dtype(dt);
        }
        let y = candle_nn::ops::layer_norm(
            &x.to_dtype(CDType::F32)?,
            &self.weight,
            &self.bias,
            self.eps,
        )?;
        y.to_dtype(dt)
    }
}

pub(crate) struct Linear {
    /// W (empty when the layer holds `int8` instead).
    weight: Tensor,
    bias: Tensor,
    /// W and b packed for the bf16 kernels ([`crate::cpu_bf16`]): bf16 weights on the CPU, for
    /// inference (not when W is a variable being trained).
    packed: Option<Arc<PackedBf16>>,
    /// W and b in int8 with per-row scales ([`crate::cpu_int8`], the `weights = "int8"` option).
    int8: Option<Arc<Int8Weights>>,
}

impl Linear {
    /// y = x Wᵀ + b for x of shape [rows, in]; the result has `x`'s dtype.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if let Some(q) = &self.int8 {
            return crate::cpu_int8::linear(x, q)?.to_dtype(x.dtype());
        }
        if let Some(p) = &self.packed {
            if let Some(y) = packed_product(x, p)? {
                return Ok(y);
            }
        }
        matmul_wt(x, &self.weight)?.broadcast_add(&self.bias)
    }
}

/// Packs a bf16 weight [out, in] (and its bias) for the CPU bf16 kernels, when they apply: CPU,
/// bf16 weights, not a variable being trained.
pub(crate) fn pack_bf16(w: &Tensor, bias: Option<&Tensor>) -> Result<Option<Arc<PackedBf16>>> {
    if !w.device().is_cpu() || w.dtype() != CDType::BF16 || w.track_op() {
        return Ok(None);
    }
    let (n, k) = w.dims2().be()?;
    let bits: Vec<u16> = w
        .flatten_all()
        .and_then(|t| t.to_vec1::<half::bf16>())
        .be()?
        .into_iter()
        .map(|v| v.to_bits())
        .collect();
    let bias = match bias {
        Some(b) => Some(
            b.to_dtype(CDType::F32)
                .and_then(|b| b.to_vec1::<f32>())
                .be()?,
        ),
        None => None,
    };
    Ok(Some(Arc::new(PackedBf16::from_bf16_bits(
        &bits,
        n,
        k,
        bias.as_deref(),
    ))))
}

/// `x · Wᵀ (+ b)` on the packed bf16 kernels for f32 x [rows, in] on the CPU with more than
/// [`crate::cpu_linear::MAX_ROWS`] rows (fewer rows take the memory-bound decoding kernel), not
/// tracked for training; `None` when those conditions do not hold.
pub(crate) fn packed_product(
    x: &Tensor,
    p: &Arc<PackedBf16>,
) -> candle_core::Result<Option<Tensor>> {
    if !x.device().is_cpu()
        || x.dtype() != CDType::F32
        || x.track_op()
        || x.rank() != 2
        || x.dim(0)? <= crate::cpu_linear::MAX_ROWS
    {
        return Ok(None);
    }
    x.contiguous()?
        .apply_op1_no_bwd(&crate::cpu_bf16::PackedLinear(p.clone()))
        .map(Some)
}

/// x Wᵀ for x [rows, in], W [out, in], in `x`'s dtype. Few rows on the CPU (decoding steps) take
/// the memory-bound kernel of [`crate::cpu_linear`], which reads W in its own dtype; everything
/// else candle's matmul in W's dtype.
pub(crate) fn matmul_wt(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    if x.track_op() || w.track_op() {
        // Training: the bf16 products when `--precision bf16` is on, else candle's
        // differentiable f32 matmul (the inference kernels below have no backward).
        match crate::train_bf16::linear_product(x, w)? {
            Some(y) => Ok(y),
            None => x.matmul(&w.t()?),
        }
    } else if x.device().is_cpu() && x.dim(0)? <= crate::cpu_linear::MAX_ROWS {
        x.contiguous()?
            .apply_op2_no_bwd(w, &crate::cpu_linear::SmallRowsLinear)
    } else if x.device().is_cpu() && x.dtype() == CDType::F32 && crate::cpu_gemm::available() {
        // Many rows (prefill, DSR/ItersR): the f32 GEMM. f16/bf16 weights are widened first; that
        // costs one pass over W against `rows` passes of arithmetic (candle's CPU matmul has no
        // bf16 kernel at all).
        if w.dtype() == CDType::F32 {
            crate::cpu_gemm::matmul(x, &w.t()?)
        } else {
            crate::cpu_gemm::matmul(x, &w.to_dtype(CDType::F32)?.t()?)
        }
    } else if x.device().is_cpu() && w.dtype() == CDType::BF16 {
        x.to_dtype(CDType::F32)?
            .matmul(&w.to_dtype(CDType::F32)?.t()?)?
            .to_dtype(x.dtype())
    } else {
        x.to_dtype(w.dtype())?.matmul(&w.t()?)?.to_dtype(x.dtype())
    }
}

pub(crate) struct Layer {
    pub(crate) input_layernorm: LayerNorm,
    pub(crate) query_key_value: Linear,
    pub(crate) dense: Linear,
    pub(crate) third_layernorm: LayerNorm,
    pub(crate) post_attention_layernorm: LayerNorm,
    pub(crate) dense_h_to_4h: Linear,
    pub(crate) dense_4h_to_h: Linear,
    pub(crate) fourth_layernorm: LayerNorm,
}

/// Softmax over the last dimension: candle's fused kernel, or, when the graph is tracked
/// (training), the same function from differentiable ops (the fused kernel has no backward and
/// would silently stop the gradient).
pub(crate) fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.track_op() && x.device().is_cpu() && x.dtype() == CDType::F32 {
        crate::train_ops::softmax_last_dim(x)
    } else if x.track_op() {
        candle_nn::ops::softmax(x, candle_core::D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}

/// SAT's tanh-approximation GELU: the libm-free kernel for f32 on the CPU, candle's elsewhere.
pub(crate) fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == CDType::F32 {
        // With a backward (training records it; inference does not track).
        x.contiguous()?.apply_op1(crate::cpu_linear::GeluTanh)
    } else {
        x.gelu()
    }
}

/// Loads weights with the model's dtypes: matrices in the compute dtype, biases in the activation
/// dtype, LayerNorms in f32.
pub(crate) struct Loader<'a> {
    pub src: &'a dyn TensorSource,
    pub dtype: CDType,
    pub act_dtype: CDType,
    pub device: CDevice,
    pub eps: f32,
    /// Linear weights in int8 ([`LoadOptions::int8_weights`]).
    pub int8: bool,
}

impl Loader<'_> {
    pub fn t(&self, name: &str, dt: CDType) -> Result<Tensor> {
        self.src.load(name, dt, &self.device)
    }
    pub fn ln(&self, p: &str) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: self.t(&format!("{p}.weight"), CDType::F32)?,
            bias: self.t(&format!("{p}.bias"), CDType::F32)?,
            eps: self.eps,
        })
    }
    /// A linear layer from `{p}.weight` / `{p}.bias`.
    pub fn lin(&self, p: &str) -> Result<Linear> {
        self.lin_named(&format!("{p}.weight"), &format!("{p}.bias"))
    }
    pub fn lin_named(&self, weight: &str, bias: &str) -> Result<Linear> {
        if self.int8 {
            let w = self.t(weight, CDType::F32)?;
            let (n, k) = w.dims2().be()?;
            let values = w.flatten_all().and_then(|t| t.to_vec1::<f32>()).be()?;
            let b = self.t(bias, CDType::F32)?;
            let b_values = b.to_vec1::<f32>().be()?;
            return Ok(Linear {
                weight: Tensor::zeros(0, CDType::F32, &self.device).be()?,
                bias: b.to_dtype(self.act_dtype).be()?,
                packed: None,
                int8: Some(Arc::new(Int8Weights::quantize(&values, n, k, b_values))),
            });
        }
        let weight = self.t(weight, self.dtype)?;
        let bias = self.t(bias, self.act_dtype)?;
        let packed = pack_bf16(&weight, Some(&bias))?;
        Ok(Linear {
            weight,
            bias,
            packed,
            int8: None,
        })
    }
}

/// The shared transformer.
pub(crate) struct Backbone {
    pub config: CoglmConfig,
    /// Weight-matrix dtype.
    pub dtype: CDType,
    /// Activations and caches: f32 on the CPU (weights alone are stored in half precision there),
    /// the weight dtype on GPUs.
    pub act_dtype: CDType,
    pub device: CDevice,
    pub word_embeddings: Tensor,
    pub position_embeddings: Tensor,
    pub layers: Vec<Layer>,
    pub final_layernorm: LayerNorm,
    /// Rows `0..image_vocab_size` of the word embedding in f32: the image head.
    pub image_head: Tensor,
    /// The same rows packed for the CPU bf16 kernels (bf16 weights on the CPU).
    pub image_head_packed: Option<Arc<PackedBf16>>,
    /// The same rows in int8 (the `weights = "int8"` option; `image_head` is then a view of the
    /// embedding in its own dtype, not an f32 copy).
    pub image_head_int8: Option<Arc<Int8Weights>>,
}

impl Backbone {
    pub fn loader<'a>(
        src: &'a dyn TensorSource,
        config: &CoglmConfig,
        options: LoadOptions,
    ) -> Result<Loader<'a>> {
        let device = device(options.device)?;
        let dtype = cdtype(options.dtype);
        let act_dtype = if device.is_cpu() { CDType::F32 } else { dtype };
        Ok(Loader {
            src,
            dtype,
            act_dtype,
            device,
            eps: config.layernorm_epsilon as f32,
            int8: options.int8_weights,
        })
    }

    /// Loads the `transformer.*` tensors (the caller has checked the checkpoint).
    pub fn from_checkpoint(
        src: &dyn TensorSource,
        config: CoglmConfig,
        options: LoadOptions,
    ) -> Result<Self> {
        let l = Self::loader(src, &config, options)?;
        let mut layers = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let p = format!("transformer.layers.{i}");
            layers.push(Layer {
                input_layernorm: l.ln(&format!("{p}.input_layernorm"))?,
                query_key_value: l.lin(&format!("{p}.attention.query_key_value"))?,
                dense: l.lin(&format!("{p}.attention.dense"))?,
                third_layernorm: l.ln(&format!("{p}.third_layernorm"))?,
                post_attention_layernorm: l.ln(&format!("{p}.post_attention_layernorm"))?,
                dense_h_to_4h: l.lin(&format!("{p}.mlp.dense_h_to_4h"))?,
                dense_4h_to_h: l.lin(&format!("{p}.mlp.dense_4h_to_h"))?,
                fourth_layernorm: l.ln(&format!("{p}.fourth_layernorm"))?,
            });
        }
        let word_embeddings = l.t("transformer.word_embeddings.weight", l.dtype)?;
        let image_rows = word_embeddings.narrow(0, 0, config.image_vocab_size).be()?;
        let image_head_int8 = if l.int8 {
            let values = image_rows
                .to_dtype(CDType::F32)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .be()?;
            Some(Arc::new(Int8Weights::quantize(
                &values,
                config.image_vocab_size,
                config.hidden_size,
                vec![0.0; config.image_vocab_size],
            )))
        } else {
            None
        };
        // The image rows in f32: shared with the embedding when that is f32, otherwise a copy of
        // those rows only (a narrowed view would keep the whole f32 embedding alive). With int8
        // weights, the view itself (the int8 copy is what the head reads).
        let image_head = if l.dtype == CDType::F32 || l.int8 {
            word_embeddings.narrow(0, 0, config.image_vocab_size).be()?
        } else {
            word_embeddings
                .narrow(0, 0, config.image_vocab_size)
                .and_then(|x| x.to_dtype(CDType::F32))
                .be()?
        };
        let image_head_packed = if l.int8 {
            None
        } else {
            pack_bf16(&image_rows, None)?
        };
        Ok(Backbone {
            image_head_packed,
            image_head_int8,
            word_embeddings,
            position_embeddings: l.t("transformer.position_embeddings.weight", l.dtype)?,
            final_layernorm: l.ln("transformer.final_layernorm")?,
            image_head,
            layers,
            dtype: l.dtype,
            act_dtype: l.act_dtype,
            device: l.device.clone(),
            config,
        })
    }

    /// The MLP half of a sandwich layer: x + LN4(MLP(LN2(x))).
    pub fn mlp(&self, i: usize, x: &Tensor) -> candle_core::Result<Tensor> {
        let l = &self.layers[i];
        let y = gelu(
            &l.dense_h_to_4h
                .forward(&l.post_attention_layernorm.forward(x)?)?,
        )?;
        let y = l.dense_4h_to_h.forward(&y)?;
        x + l.fourth_layernorm.forward(&y)?
    }

    /// Image-vocabulary logits (f32) of rows `x` [n, h] after the final LayerNorm.
    pub fn image_logits(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.final_layernorm.forward(x)?.to_dtype(CDType::F32)?;
        self.image_head_product(&x)
    }

    /// `x · headᵀ` over the image vocabulary for f32 rows `x` [n, h] (already normalised): the
    /// packed bf16 kernels where they apply, otherwise the f32 head.
    pub fn image_head_product(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if let Some(q) = &self.image_head_int8 {
            return crate::cpu_int8::linear(x, q);
        }
        if let Some(p) = &self.image_head_packed {
            if let Some(y) = packed_product(x, p)? {
                return Ok(y);
            }
        }
        matmul_wt(x, &self.image_head)
    }
}
