//! CogLM on libtorch: the backbone with an additive attention bias (the core builds it, text bias
//! included) and a pre-allocated KV cache per session.

use crate::backbone::{softmax_with_bias, Backbone};
use crate::weights::{f32_tensor, guard, index_tensor, to_vec_f32, Loader};
use cogview_checkpoint::Checkpoint;
use cogview_core::backend::LoadRequest;
use cogview_core::lm::{
    validate_input, AutoregressiveLm, LmInput, LmSession, LmSpec, Logits, LogitsRequest,
};
use cogview_core::{Error, Result};
use cogview_model::CoglmConfig;
use tch::{Kind, Tensor};

pub struct TchCoglm {
    b: Backbone,
}

impl TchCoglm {
    pub fn load(
        ckpt: &Checkpoint,
        config: CoglmConfig,
        kind: Kind,
        device: tch::Device,
        request: &LoadRequest,
    ) -> Result<Self> {
        let expected = config.expected_tensors();
        ckpt.check(&expected, |_| false)?;
        let l = Loader::new(ckpt, device, request, expected.len());
        Ok(TchCoglm {
            b: Backbone::load(&l, config, kind)?,
        })
    }
}

impl AutoregressiveLm for TchCoglm {
    fn spec(&self) -> LmSpec {
        let c = &self.b.config;
        LmSpec {
            vocab_size: c.vocab_size,
            max_positions: c.max_sequence_length,
            image_vocab_size: c.image_vocab_size,
            start_of_image_id: c.start_of_image_id,
        }
    }

    fn new_session(&self, batch: usize, capacity: usize) -> Result<Box<dyn LmSession + '_>> {
        if batch == 0 || capacity == 0 {
            return Err(Error::invalid_input(
                "session",
                "batch and capacity must be at least 1",
            ));
        }
        let c = &self.b.config;
        let shape = [
            batch as i64,
            c.num_attention_heads as i64,
            capacity as i64,
            c.head_dim as i64,
        ];
        let opts = (self.b.kind, self.b.device);
        let cache = guard("KV cache", || {
            (0..c.num_layers)
                .map(|_| (Tensor::zeros(shape, opts), Tensor::zeros(shape, opts)))
                .collect::<Vec<_>>()
        })?;
        Ok(Box::new(TchSession {
            model: self,
            cache,
            len: 0,
            batch,
            capacity,
        }))
    }
}

/// Per-run state: a `[batch, heads, capacity, head_dim]` key and value cache per layer.
pub struct TchSession<'m> {
    model: &'m TchCoglm,
    cache: Vec<(Tensor, Tensor)>,
    len: usize,
    batch: usize,
    capacity: usize,
}

impl TchSession<'_> {
    fn attention(&self, layer: usize, x: &Tensor, bias: &Tensor, n: usize) -> Tensor {
        let b = &self.model.b;
        let c = &b.config;
        let l = &b.layers[layer];
        let (batch, heads, d) = (self.batch as i64, c.num_attention_heads as i64, c.head_dim as i64);
        let (n, a) = (n as i64, heads * d);
        let qkv = l.query_key_value.forward(x).view([batch, n, 3 * a]);
        let split = |i: i64| {
            qkv.narrow(2, i * a, a)
                .view([batch, n, heads, d])
                .transpose(1, 2)
        };
        let (q, k, v) = (split(0), split(1), split(2));
        let (kc, vc) = &self.cache[layer];
        let start = self.len as i64;
        kc.narrow(2, start, n).copy_(&k);
        vc.narrow(2, start, n).copy_(&v);
        let total = start + n;
        let keys = kc.narrow(2, 0, total);
        let values = vc.narrow(2, 0, total);
        let q = q * (1.0 / (d as f64).sqrt());
        let scores = q.matmul(&keys.transpose(-1, -2)); // [batch, heads, n, total]
        let probs = softmax_with_bias(&scores, bias, x.kind());
        let ctx = probs
            .matmul(&values)
            .transpose(1, 2)
            .reshape([batch * n, a]);
        l.dense.forward(&ctx)
    }

    fn run(&mut self, input: &LmInput, n: usize) -> Vec<f32> {
        let m = self.model;
        let b = &m.b;
        let h = b.config.hidden_size as i64;
        let dev = b.device;
        let tokens = index_tensor(input.tokens, dev);
        let positions = index_tensor(input.positions, dev);
        let words = b
            .word_embeddings
            .index_select(0, &tokens)
            .view([self.batch as i64, n as i64, h]);
        let pos = b.position_embeddings.index_select(0, &positions).unsqueeze(0);
        let mut x = (words + pos).view([(self.batch * n) as i64, h]);
        let bias = f32_tensor(input.bias, &[n as i64, (self.len + n) as i64], dev);
        for i in 0..b.layers.len() {
            let l = &b.layers[i];
            let a = self.attention(i, &l.input_layernorm.forward(&x), &bias, n);
            x = &x + l.third_layernorm.forward(&a);
            x = b.mlp(i, &x);
        }
        let x = x.view([self.batch as i64, n as i64, h]);
        let rows = match input.logits {
            LogitsRequest::Last { .. } => x.narrow(1, n as i64 - 1, 1).reshape([self.batch as i64, h]),
            LogitsRequest::All { .. } => x.reshape([(self.batch * n) as i64, h]),
        };
        to_vec_f32(&b.logits(&rows, input.logits.vocab()))
    }
}

impl LmSession for TchSession<'_> {
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
        let data = guard("CogLM forward", || self.run(input, n))?;
        self.len += n;
        let vocab = input.logits.vocab();
        Ok(Logits {
            rows: data.len() / vocab,
            vocab,
            data,
        })
    }
}
