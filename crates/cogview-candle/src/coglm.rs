//! CogLM: word + position embeddings, 4 LayerNorms per layer (sandwich), fused QKV, tanh-GELU MLP,
//! additive attention bias, final LayerNorm, tied output head. Mirrors SwissArmyTransformer's
//! `BaseTransformer` with `layernorm_order='sandwich'` as CogView2 runs it.

use crate::backbone::{matmul_wt, Backbone};
use crate::cached_attention::{CachedAttention, MAX_QUERIES};
use crate::util::{BackendResult, LoadOptions};
use candle_core::{DType as CDType, Tensor};
use cogview_core::lm::{
    validate_input, AutoregressiveLm, LmInput, LmSession, LmSpec, Logits, LogitsRequest,
};
use cogview_core::{Error, Result};
use cogview_model::inspect::open_model;
use cogview_model::CoglmConfig;
use std::path::Path;

/// A loaded CogLM. Read-only; any number of [`CoglmSession`]s may use it.
pub struct CoglmModel {
    b: Backbone,
}

impl CoglmModel {
    /// Loads a SAT checkpoint folder, a `.pt` file with a `model_config.json` beside it, or a
    /// safetensors file (written by `cogview convert`, configuration in its metadata, or beside it).
    pub fn load(path: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        let path = path.as_ref();
        let _span = tracing::info_span!("load_coglm", path = %path.display()).entered();
        let (ckpt, model_config) = open_model(path)?;
        let positions_rows = ckpt
            .info("transformer.position_embeddings.weight")
            .map(|i| i.shape[0]);
        let config = CoglmConfig::from_model_config(&model_config, positions_rows)?;
        Self::from_checkpoint(&ckpt, config, options)
    }

    /// Builds the model from already-opened weights, checking every tensor's name, shape and dtype.
    pub fn from_checkpoint(
        ckpt: &dyn crate::util::TensorSource,
        config: CoglmConfig,
        options: LoadOptions,
    ) -> Result<Self> {
        ckpt.check_tensors(&config.expected_tensors(), &|_| false)?;
        Ok(CoglmModel {
            b: Backbone::from_checkpoint(ckpt, config, options)?,
        })
    }

    /// The sizes it was built with.
    pub fn config(&self) -> &CoglmConfig {
        &self.b.config
    }

    /// The tied output head over ids `0..vocab`, in f32.
    fn head(&self, vocab: usize) -> candle_core::Result<Tensor> {
        if vocab == self.b.config.image_vocab_size {
            // f32 except with int8 weights (a view of the embedding in its dtype).
            self.b.image_head.to_dtype(CDType::F32)
        } else {
            self.b
                .word_embeddings
                .narrow(0, 0, vocab)?
                .to_dtype(CDType::F32)
        }
    }

    /// The forward pass of training, without a cache: `tokens` `[batch, n]` (u32), `positions`
    /// `[n]` or `[batch, n]` (u32), `bias` `[batch, n, n]` (f32: 0 where a query sees a key, −inf where not,
    /// plus any score bias such as the text bias). Returns the logits over ids `0..vocab` of every
    /// position, `[batch, n, vocab]`. With weights from a [`crate::VarStore`] the graph is
    /// recorded for backpropagation; the arithmetic is the same as the cached inference path.
    pub fn forward_train(
        &self,
        tokens: &Tensor,
        positions: &Tensor,
        bias: &Tensor,
        vocab: usize,
    ) -> Result<Tensor> {
        let run = || -> candle_core::Result<Tensor> {
            let b = &self.b;
            let c = &b.config;
            let (batch, n) = tokens.dims2()?;
            let (h, heads, d) = (c.hidden_size, c.num_attention_heads, c.head_dim);
            let a = heads * d;
            let words = b
                .word_embeddings
                .index_select(&tokens.flatten_all()?, 0)?
                .reshape((batch, n, h))?;
            // One position list for the batch [n], or one per sequence [batch, n].
            let pos = match positions.rank() {
                1 => b
                    .position_embeddings
                    .index_select(positions, 0)?
                    .unsqueeze(0)?,
                _ => b
                    .position_embeddings
                    .index_select(&positions.flatten_all()?, 0)?
                    .reshape((batch, n, h))?,
            };
            let mut x = words
                .broadcast_add(&pos)?
                .reshape((batch * n, h))?
                .to_dtype(b.act_dtype)?;
            let bias = bias.unsqueeze(1)?; // [batch, 1, n, n], shared by the heads
            for (i, l) in b.layers.iter().enumerate() {
                let qkv = l
                    .query_key_value
                    .forward(&l.input_layernorm.forward(&x)?)?
                    .reshape((batch, n, 3 * a))?;
                let split = |j: usize| -> candle_core::Result<Tensor> {
                    qkv.narrow(2, j * a, a)?
                        .reshape((batch, n, heads, d))?
                        .transpose(1, 2)?
                        .contiguous()
                };
                let (q, k, v) = (split(0)?, split(1)?, split(2)?);
                let q = (q * (1.0 / (d as f64).sqrt()))?;
                let scores = q
                    .matmul(&k.t()?)?
                    .to_dtype(CDType::F32)?
                    .broadcast_add(&bias)?;
                let probs = crate::backbone::softmax_last_dim(&scores)?.to_dtype(x.dtype())?;
                let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((batch * n, a))?;
                let att = l.dense.forward(&ctx)?;
                x = (x + l.third_layernorm.forward(&att)?)?;
                x = b.mlp(i, &x)?;
            }
            let x = b.final_layernorm.forward(&x)?.to_dtype(CDType::F32)?;
            let head = b
                .word_embeddings
                .narrow(0, 0, vocab)?
                .to_dtype(CDType::F32)?;
            matmul_wt(&x, &head)?.reshape((batch, n, vocab))
        };
        run().be()
    }

    /// A session with its own KV cache (concrete type; [`AutoregressiveLm::new_session`] boxes it).
    pub fn session(&self, batch: usize, capacity: usize) -> Result<CoglmSession<'_>> {
        if batch == 0 || capacity == 0 {
            return Err(Error::invalid_input(
                "session",
                "batch and capacity must be at least 1",
            ));
        }
        let c = &self.b.config;
        let shape = (batch, c.num_attention_heads, capacity, c.head_dim);
        // A bf16 stage on the CPU computes in f32 but keeps its keys and values in bf16: a
        // decoding step reads the whole cache, as many bytes as the weights at batch 8.
        let kv_dtype = if self.b.device.is_cpu() && self.b.dtype == CDType::BF16 {
            CDType::BF16
        } else {
            self.b.act_dtype
        };
        let mut cache = Vec::with_capacity(c.num_layers);
        for _ in 0..c.num_layers {
            let k = Tensor::zeros(shape, kv_dtype, &self.b.device).be()?;
            let v = Tensor::zeros(shape, kv_dtype, &self.b.device).be()?;
            cache.push((k, v));
        }
        Ok(CoglmSession {
            model: self,
            cache,
            len: 0,
            batch,
            capacity,
        })
    }
}

impl std::fmt::Debug for CoglmModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoglmModel")
            .field("config", &self.b.config)
            .field("dtype", &self.b.dtype)
            .field("device", &self.b.device)
            .finish_non_exhaustive()
    }
}

impl AutoregressiveLm for CoglmModel {
    fn spec(&self) -> LmSpec {
        LmSpec {
            vocab_size: self.b.config.vocab_size,
            max_positions: self.b.config.max_sequence_length,
            image_vocab_size: self.b.config.image_vocab_size,
            start_of_image_id: self.b.config.start_of_image_id,
        }
    }

    fn new_session(&self, batch: usize, capacity: usize) -> Result<Box<dyn LmSession + '_>> {
        Ok(Box::new(self.session(batch, capacity)?))
    }
}

/// Per-run state: a pre-allocated `[batch, heads, capacity, head_dim]` key and value cache per layer.
pub struct CoglmSession<'m> {
    model: &'m CoglmModel,
    cache: Vec<(Tensor, Tensor)>,
    len: usize,
    batch: usize,
    capacity: usize,
}

impl CoglmSession<'_> {
    fn attention(
        &mut self,
        layer: usize,
        x: &Tensor,
        bias: &Tensor,
        bias_values: &[f32],
        n: usize,
    ) -> candle_core::Result<Tensor> {
        let c = &self.model.b.config;
        let l = &self.model.b.layers[layer];
        let (b, heads, d) = (self.batch, c.num_attention_heads, c.head_dim);
        let a = heads * d;
        let qkv = l.query_key_value.forward(x)?.reshape((b, n, 3 * a))?;
        let split = |i: usize| -> candle_core::Result<Tensor> {
            qkv.narrow(2, i * a, a)?
                .reshape((b, n, heads, d))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let (kc, vc) = &self.cache[layer];
        kc.slice_set(&k.to_dtype(kc.dtype())?, 2, self.len)?;
        vc.slice_set(&v.to_dtype(vc.dtype())?, 2, self.len)?;
        let total = self.len + n;
        if q.device().is_cpu() && q.dtype() == CDType::F32 && n <= MAX_QUERIES {
            let op = CachedAttention {
                keys: total,
                bias: bias_values,
                scale: 1.0 / (d as f32).sqrt(),
            };
            let ctx = q.apply_op3_no_bwd(kc, vc, &op)?.reshape((b * n, a))?;
            return l.dense.forward(&ctx);
        }
        let keys = kc.narrow(2, 0, total)?.to_dtype(q.dtype())?;
        let values = vc.narrow(2, 0, total)?.to_dtype(q.dtype())?;
        let q = (q * (1.0 / (d as f64).sqrt()))?;
        let scores = q
            .matmul(&keys.t()?)?
            .to_dtype(CDType::F32)?
            .broadcast_add(bias)?;
        let probs = crate::backbone::softmax_last_dim(&scores)?.to_dtype(x.dtype())?;
        let ctx = probs
            .matmul(&values)?
            .transpose(1, 2)?
            .reshape((b * n, a))?;
        l.dense.forward(&ctx)
    }

    fn run(&mut self, input: &LmInput, n: usize) -> candle_core::Result<Tensor> {
        let m = self.model;
        let c = &m.b.config;
        let h = c.hidden_size;
        let tokens = Tensor::from_slice(input.tokens, (self.batch * n,), &m.b.device)?;
        let positions = Tensor::from_slice(input.positions, (n,), &m.b.device)?;
        let words =
            m.b.word_embeddings
                .index_select(&tokens, 0)?
                .reshape((self.batch, n, h))?;
        let pos =
            m.b.position_embeddings
                .index_select(&positions, 0)?
                .unsqueeze(0)?;
        let mut x = words
            .broadcast_add(&pos)?
            .reshape((self.batch * n, h))?
            .to_dtype(m.b.act_dtype)?;
        let bias = Tensor::from_slice(input.bias, (n, self.len + n), &m.b.device)?;
        for i in 0..m.b.layers.len() {
            let l = &m.b.layers[i];
            let a = self.attention(i, &l.input_layernorm.forward(&x)?, &bias, input.bias, n)?;
            x = (x + l.third_layernorm.forward(&a)?)?;
            x = m.b.mlp(i, &x)?;
        }
        let x = x.reshape((self.batch, n, h))?;
        let (x, rows) = match input.logits {
            LogitsRequest::Last { .. } => (x.narrow(1, n - 1, 1)?, self.batch),
            LogitsRequest::All { .. } => (x, self.batch * n),
        };
        let x =
            m.b.final_layernorm
                .forward(&x.reshape((rows, h))?)?
                .to_dtype(CDType::F32)?;
        if input.logits.vocab() == m.b.config.image_vocab_size {
            return m.b.image_head_product(&x);
        }
        matmul_wt(&x, &m.head(input.logits.vocab())?)
    }
}

impl LmSession for CoglmSession<'_> {
    fn batch(&self) -> usize {
        self.batch
    }
    fn cached_len(&self) -> usize {
        self.len
    }
    fn capacity(&self) -> usize {
        self.capacity
    }

    fn forward(&mut self, input: &LmInput) -> Result<Logits> {
        let n = validate_input(
            &self.model.spec(),
            self.batch,
            self.len,
            self.capacity,
            input,
        )?;
        let logits = self.run(input, n).be()?;
        self.len += n;
        let (rows, vocab) = logits.dims2().be()?;
        Ok(Logits {
            rows,
            vocab,
            data: logits.flatten_all().and_then(|t| t.to_vec1::<f32>()).be()?,
        })
    }
}
