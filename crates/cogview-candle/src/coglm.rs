//! CogLM: word + position embeddings, 4 LayerNorms per layer (sandwich), fused QKV, tanh-GELU MLP,
//! additive attention bias, final LayerNorm, tied output head. Mirrors SwissArmyTransformer's
//! `BaseTransformer` with `layernorm_order='sandwich'` as CogView2 runs it.

use crate::config::CoglmConfig;
use crate::util::{cdtype, device, load_tensor, BackendResult, LoadOptions};
use candle_core::{DType as CDType, Device as CDevice, Tensor};
use cogview_checkpoint::{Checkpoint, ModelConfig, SatFolder};
use cogview_core::lm::{
    validate_input, AutoregressiveLm, LmInput, LmSession, LmSpec, Logits, LogitsRequest,
};
use cogview_core::{Error, Result};
use std::path::Path;

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    /// Normalises in f32 (as apex's FusedLayerNorm does for fp16 inputs) and returns `x`'s dtype.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dt = x.dtype();
        let y = candle_nn::ops::layer_norm(
            &x.to_dtype(CDType::F32)?,
            &self.weight,
            &self.bias,
            self.eps,
        )?;
        y.to_dtype(dt)
    }
}

struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// y = x Wᵀ + b for x of shape [rows, in]; the result has `x`'s dtype.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        matmul_wt(x, &self.weight)?.broadcast_add(&self.bias)
    }
}

/// x Wᵀ for x [rows, in], W [out, in], in `x`'s dtype. Few rows on the CPU (decoding steps) take
/// the memory-bound kernel of [`crate::cpu_linear`], which reads W in its own dtype; everything
/// else candle's matmul in W's dtype.
fn matmul_wt(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dim(0)? <= crate::cpu_linear::MAX_ROWS {
        x.contiguous()?
            .apply_op2_no_bwd(w, &crate::cpu_linear::SmallRowsLinear)
    } else {
        x.to_dtype(w.dtype())?.matmul(&w.t()?)?.to_dtype(x.dtype())
    }
}

struct Layer {
    input_layernorm: LayerNorm,
    query_key_value: Linear,
    dense: Linear,
    third_layernorm: LayerNorm,
    post_attention_layernorm: LayerNorm,
    dense_h_to_4h: Linear,
    dense_4h_to_h: Linear,
    fourth_layernorm: LayerNorm,
}

/// A loaded CogLM. Read-only; any number of [`CoglmSession`]s may use it.
pub struct CoglmModel {
    config: CoglmConfig,
    /// The dtype of the weight matrices (f32, f16 or bf16).
    dtype: CDType,
    /// The dtype of activations and the KV cache: f32 on the CPU (weights alone are stored in half
    /// precision there: element-wise half-precision arithmetic is slow on CPUs and less accurate),
    /// the weight dtype on GPUs.
    act_dtype: CDType,
    device: CDevice,
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    layers: Vec<Layer>,
    final_layernorm: LayerNorm,
    /// Rows `0..image_vocab_size` of the word embedding in f32: the stage-1 output head.
    image_head: Tensor,
}

impl CoglmModel {
    /// Loads a SAT checkpoint folder, a `.pt` file with a `model_config.json` beside it, or a
    /// safetensors file (written by `cogview convert`, configuration in its metadata, or beside it).
    pub fn load(path: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        let path = path.as_ref();
        let _span = tracing::info_span!("load_coglm", path = %path.display()).entered();
        let (ckpt, model_config) = if path.is_dir() {
            let sat = SatFolder::open(path)?;
            let cfg = sat.config()?;
            (Checkpoint::open(&sat.model_file, None)?, cfg)
        } else {
            let ckpt = Checkpoint::open(path, None)?;
            let cfg = match ckpt.metadata().get("model_config") {
                Some(text) => ModelConfig::parse(text, path)?,
                None => {
                    let beside = path
                        .parent()
                        .unwrap_or(Path::new("."))
                        .join("model_config.json");
                    if !beside.is_file() {
                        return Err(Error::config(
                            path.display().to_string(),
                            "model_config.json",
                            format!(
                                "no model configuration: the file has no `model_config` metadata and {} is missing",
                                beside.display()
                            ),
                        ));
                    }
                    ModelConfig::read(beside)?
                }
            };
            (ckpt, cfg)
        };
        let positions_rows = ckpt
            .info("transformer.position_embeddings.weight")
            .map(|i| i.shape[0]);
        let config = CoglmConfig::from_model_config(&model_config, positions_rows)?;
        Self::from_checkpoint(&ckpt, config, options)
    }

    /// Builds the model from already-opened weights, checking every tensor's name, shape and dtype.
    pub fn from_checkpoint(
        ckpt: &Checkpoint,
        config: CoglmConfig,
        options: LoadOptions,
    ) -> Result<Self> {
        ckpt.check(&config.expected_tensors(), |_| false)?;
        let dev = device(options.device)?;
        let dtype = cdtype(options.dtype);
        let act_dtype = if dev.is_cpu() { CDType::F32 } else { dtype };
        let eps = config.layernorm_epsilon as f32;
        let t = |name: &str, dt: CDType| load_tensor(ckpt, name, dt, &dev);
        let ln = |p: &str| -> Result<LayerNorm> {
            Ok(LayerNorm {
                weight: t(&format!("{p}.weight"), CDType::F32)?,
                bias: t(&format!("{p}.bias"), CDType::F32)?,
                eps,
            })
        };
        let lin = |p: &str| -> Result<Linear> {
            Ok(Linear {
                weight: t(&format!("{p}.weight"), dtype)?,
                bias: t(&format!("{p}.bias"), act_dtype)?,
            })
        };
        let mut layers = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let p = format!("transformer.layers.{i}");
            layers.push(Layer {
                input_layernorm: ln(&format!("{p}.input_layernorm"))?,
                query_key_value: lin(&format!("{p}.attention.query_key_value"))?,
                dense: lin(&format!("{p}.attention.dense"))?,
                third_layernorm: ln(&format!("{p}.third_layernorm"))?,
                post_attention_layernorm: ln(&format!("{p}.post_attention_layernorm"))?,
                dense_h_to_4h: lin(&format!("{p}.mlp.dense_h_to_4h"))?,
                dense_4h_to_h: lin(&format!("{p}.mlp.dense_4h_to_h"))?,
                fourth_layernorm: ln(&format!("{p}.fourth_layernorm"))?,
            });
        }
        let word_embeddings = t("transformer.word_embeddings.weight", dtype)?;
        let image_head = t("transformer.word_embeddings.weight", CDType::F32)?
            .narrow(0, 0, config.image_vocab_size)
            .and_then(|x| x.contiguous())
            .be()?;
        Ok(CoglmModel {
            position_embeddings: t("transformer.position_embeddings.weight", dtype)?,
            final_layernorm: ln("transformer.final_layernorm")?,
            word_embeddings,
            image_head,
            layers,
            dtype,
            act_dtype,
            device: dev,
            config,
        })
    }

    pub fn config(&self) -> &CoglmConfig {
        &self.config
    }

    /// The tied output head over ids `0..vocab`, in f32.
    fn head(&self, vocab: usize) -> candle_core::Result<Tensor> {
        if vocab == self.config.image_vocab_size {
            Ok(self.image_head.clone())
        } else {
            self.word_embeddings
                .narrow(0, 0, vocab)?
                .to_dtype(CDType::F32)
        }
    }

    /// A session with its own KV cache (concrete type; [`AutoregressiveLm::new_session`] boxes it).
    pub fn session(&self, batch: usize, capacity: usize) -> Result<CoglmSession<'_>> {
        if batch == 0 || capacity == 0 {
            return Err(Error::invalid_input(
                "session",
                "batch and capacity must be at least 1",
            ));
        }
        let c = &self.config;
        let shape = (batch, c.num_attention_heads, capacity, c.head_dim);
        let mut cache = Vec::with_capacity(c.num_layers);
        for _ in 0..c.num_layers {
            let k = Tensor::zeros(shape, self.act_dtype, &self.device).be()?;
            let v = Tensor::zeros(shape, self.act_dtype, &self.device).be()?;
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
            .field("config", &self.config)
            .field("dtype", &self.dtype)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl AutoregressiveLm for CoglmModel {
    fn spec(&self) -> LmSpec {
        LmSpec {
            vocab_size: self.config.vocab_size,
            max_positions: self.config.max_sequence_length,
            image_vocab_size: self.config.image_vocab_size,
            start_of_image_id: self.config.start_of_image_id,
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
        n: usize,
    ) -> candle_core::Result<Tensor> {
        let c = &self.model.config;
        let l = &self.model.layers[layer];
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
        kc.slice_set(&k, 2, self.len)?;
        vc.slice_set(&v, 2, self.len)?;
        let total = self.len + n;
        let keys = kc.narrow(2, 0, total)?;
        let values = vc.narrow(2, 0, total)?;
        let q = (q * (1.0 / (d as f64).sqrt()))?;
        let scores = q
            .matmul(&keys.t()?)?
            .to_dtype(CDType::F32)?
            .broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(x.dtype())?;
        let ctx = probs
            .matmul(&values)?
            .transpose(1, 2)?
            .reshape((b * n, a))?;
        l.dense.forward(&ctx)
    }

    fn run(&mut self, input: &LmInput, n: usize) -> candle_core::Result<Tensor> {
        let m = self.model;
        let c = &m.config;
        let h = c.hidden_size;
        let tokens = Tensor::from_slice(input.tokens, (self.batch * n,), &m.device)?;
        let positions = Tensor::from_slice(input.positions, (n,), &m.device)?;
        let words = m
            .word_embeddings
            .index_select(&tokens, 0)?
            .reshape((self.batch, n, h))?;
        let pos = m
            .position_embeddings
            .index_select(&positions, 0)?
            .unsqueeze(0)?;
        let mut x = words
            .broadcast_add(&pos)?
            .reshape((self.batch * n, h))?
            .to_dtype(m.act_dtype)?;
        let bias = Tensor::from_slice(input.bias, (n, self.len + n), &m.device)?;
        for i in 0..m.layers.len() {
            let l = &m.layers[i];
            let a = self.attention(i, &l.input_layernorm.forward(&x)?, &bias, n)?;
            x = (x + l.third_layernorm.forward(&a)?)?;
            let y = l
                .dense_h_to_4h
                .forward(&l.post_attention_layernorm.forward(&x)?)?
                .gelu()?;
            let y = l.dense_4h_to_h.forward(&y)?;
            x = (x + l.fourth_layernorm.forward(&y)?)?;
        }
        let x = x.reshape((self.batch, n, h))?;
        let (x, rows) = match input.logits {
            LogitsRequest::Last { .. } => (x.narrow(1, n - 1, 1)?, self.batch),
            LogitsRequest::All { .. } => (x, self.batch * n),
        };
        let x = m
            .final_layernorm
            .forward(&x.reshape((rows, h))?)?
            .to_dtype(CDType::F32)?;
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
