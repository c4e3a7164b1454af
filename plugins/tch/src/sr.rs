//! DSR and ItersR on libtorch: the backbone plus 3600 extra position embeddings (and for DSR a
//! second QKV/dense projection per layer for the high-resolution tokens), run as two levels.
//!
//! The input (padded text, positions, level 0's bias, the local windows) comes assembled from the
//! core ([`SrInput`]). Level 0 (the text, and DSR's low-resolution grid) attends densely with its
//! additive bias. Level 1 (the high-resolution grid) attends locally, with Image-Local-Attention's
//! semantics: each query sees a set of level-0 keys (DSR: a 5×5 window of the low-resolution grid
//! around (y/3, x/3); ItersR: the visible text) and the 9×5 window of its own grid, under one
//! softmax ([`SrInput::level1_keys`]). Level 1 runs in blocks of grid rows: each block attends
//! densely to the keys its windows can reach ([`SrInput::level1_reach`]), under a mask that keeps
//! exactly the kernel's keys; no `N × N` matrix is formed.

use crate::backbone::{softmax_with_bias, Backbone, Linear};
use crate::weights::{f32_tensor, guard, index_tensor, to_vec_f32, Frozen, Loader};
use cogview_checkpoint::Checkpoint;
use cogview_core::backend::LoadRequest;
use cogview_core::lm::Logits;
use cogview_core::sr::{GridPredictor, SrInput, SrSpec};
use cogview_core::Result;
use cogview_model::{SrConfig, SrKind};
use tch::{Kind, Tensor};

/// Level-1 queries per attention block (rounded to whole grid rows).
const BLOCK_QUERIES: usize = 360;

pub struct TchSr {
    config: SrConfig,
    b: Backbone,
    extra_positions: Frozen,
    /// DSR: per layer, the high-resolution QKV and dense projections.
    plus: Vec<(Linear, Linear)>,
}

impl TchSr {
    pub fn load(
        ckpt: &Checkpoint,
        config: SrConfig,
        kind: Kind,
        device: tch::Device,
        request: &LoadRequest,
    ) -> Result<Self> {
        let expected = config.expected_tensors();
        ckpt.check(&expected, |_| false)?;
        let l = Loader::new(ckpt, device, request, expected.len());
        let b = Backbone::load(&l, config.backbone.clone(), kind)?;
        let extra_positions = Frozen::new(l.load(
            "mixins.extra_position_embedding.position_embeddings.weight",
            kind,
        )?);
        let plus = if config.kind == SrKind::Dsr {
            (0..config.backbone.num_layers)
                .map(|i| {
                    let p = "mixins.attention_plus";
                    Ok((
                        Linear::load(
                            &l,
                            &format!("{p}.query_key_value.{i}.weight"),
                            &format!("{p}.query_key_value.{i}.bias"),
                            kind,
                        )?,
                        Linear::load(
                            &l,
                            &format!("{p}.dense.{i}.weight"),
                            &format!("{p}.dense.{i}.bias"),
                            kind,
                        )?,
                    ))
                })
                .collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(TchSr {
            config,
            b,
            extra_positions,
            plus,
        })
    }

    /// Level 1's queries in blocks of whole grid rows, each with the level-0 and level-1 keys its
    /// windows can reach and its additive mask over `[those level-0 keys; those level-1 keys]`: 0
    /// where the local kernel looks ([`SrInput::level1_keys`]), −inf elsewhere.
    fn level1_blocks(input: &SrInput) -> Vec<Block> {
        let (h, w) = (input.high, input.high);
        let n0 = input.level0_len();
        let rows_per_block = (BLOCK_QUERIES / w).clamp(1, h);
        let mut blocks = Vec::new();
        let mut r0 = 0;
        while r0 < h {
            let r1 = (r0 + rows_per_block).min(h);
            let (extra, own) = input.level1_reach(r0..r1);
            let (e_start, e_len) = (extra.start, extra.len());
            let (k_start, k_len) = (own.start, own.len());
            let width = e_len + k_len;
            let q_len = (r1 - r0) * w;
            let mut mask = vec![f32::NEG_INFINITY; q_len * width];
            for (qi, row) in mask.chunks_mut(width).enumerate() {
                for k in input.level1_keys(r0 * w + qi) {
                    let col = if k < n0 {
                        k - e_start
                    } else {
                        e_len + (k - n0) - k_start
                    };
                    row[col] = 0.0;
                }
            }
            blocks.push(Block {
                q_start: (r0 * w) as i64,
                q_len: q_len as i64,
                e_start: e_start as i64,
                e_len: e_len as i64,
                k_start: k_start as i64,
                k_len: k_len as i64,
                mask,
            });
            r0 = r1;
        }
        blocks
    }

    /// The two-level forward; returns the f32 image logits of level 1, row-major.
    fn forward(&self, input: &SrInput) -> Vec<f32> {
        let (tokens0, pos0, tokens1) = (&input.tokens0, &input.positions0, &input.tokens1);
        let b = &self.b;
        let bc = &b.config;
        let dev = b.device;
        let kind = b.kind;
        let (heads, d) = (bc.num_attention_heads as i64, bc.head_dim as i64);
        let a = heads * d;
        let (n0, n1) = (tokens0.len() as i64, tokens1.len() as i64);
        let mut x0 = b.embed(
            &index_tensor(tokens0, dev),
            &b.position_embeddings
                .index_select(0, &index_tensor(pos0, dev)),
        );
        let mut x1 = b.embed(
            &index_tensor(tokens1, dev),
            &self.extra_positions.narrow(0, 0, n1),
        );
        let bias0 = f32_tensor(&input.bias0, &[n0, n0], dev);
        let blocks: Vec<(Block, Tensor)> = Self::level1_blocks(input)
            .into_iter()
            .map(|bl| {
                let m = f32_tensor(&bl.mask, &[bl.q_len, bl.e_len + bl.k_len], dev);
                (bl, m)
            })
            .collect();
        let scale = 1.0 / (d as f64).sqrt();
        // [n, a] → [heads, n, d]
        let by_head = |t: &Tensor| {
            let n = t.size()[0];
            t.view([n, heads, d]).transpose(0, 1)
        };
        for (i, l) in b.layers.iter().enumerate() {
            let (qkv1_lin, dense1) = match self.plus.get(i) {
                Some((q, dn)) => (q, dn),
                None => (&l.query_key_value, &l.dense),
            };
            let qkv0 = l.query_key_value.forward(&l.input_layernorm.forward(&x0));
            let qkv1 = qkv1_lin.forward(&l.input_layernorm.forward(&x1));
            let part = |t: &Tensor, j: i64| t.narrow(1, j * a, a);
            let (k0, v0) = (part(&qkv0, 1), part(&qkv0, 2));
            // Level 0: dense attention.
            let s0 = by_head(&(part(&qkv0, 0) * scale)).matmul(&by_head(&k0).transpose(-1, -2));
            let o0 = softmax_with_bias(&s0, &bias0, kind)
                .matmul(&by_head(&v0))
                .transpose(0, 1)
                .reshape([n0, a]);
            // Level 1: local windows, as dense attention over each block's reachable keys with
            // the block's mask (a few times the kernel's arithmetic, all in matrix products).
            let (q1, k1, v1) = (part(&qkv1, 0) * scale, part(&qkv1, 1), part(&qkv1, 2));
            let outs: Vec<Tensor> = blocks
                .iter()
                .map(|(bl, mask)| {
                    let keys = Tensor::cat(
                        &[
                            k0.narrow(0, bl.e_start, bl.e_len),
                            k1.narrow(0, bl.k_start, bl.k_len),
                        ],
                        0,
                    );
                    let values = Tensor::cat(
                        &[
                            v0.narrow(0, bl.e_start, bl.e_len),
                            v1.narrow(0, bl.k_start, bl.k_len),
                        ],
                        0,
                    );
                    let s = by_head(&q1.narrow(0, bl.q_start, bl.q_len))
                        .matmul(&by_head(&keys).transpose(-1, -2));
                    softmax_with_bias(&s, mask, kind)
                        .matmul(&by_head(&values))
                        .transpose(0, 1)
                        .reshape([bl.q_len, a])
                })
                .collect();
            let o1 = Tensor::cat(&outs, 0);
            x0 = &x0 + l.third_layernorm.forward(&l.dense.forward(&o0));
            x1 = &x1 + l.third_layernorm.forward(&dense1.forward(&o1));
            x0 = b.mlp(i, &x0);
            x1 = b.mlp(i, &x1);
        }
        to_vec_f32(&b.logits(&x1, bc.image_vocab_size))
    }
}

/// A block of level-1 queries (whole grid rows) and the level-1 rows their windows reach.
struct Block {
    q_start: i64,
    q_len: i64,
    /// The level-0 rows its extra keys are among.
    e_start: i64,
    e_len: i64,
    k_start: i64,
    k_len: i64,
    /// `[q_len, e_len + k_len]` additive mask, row-major.
    mask: Vec<f32>,
}

impl GridPredictor for TchSr {
    fn spec(&self) -> Result<SrSpec> {
        Ok(self.config.spec())
    }

    fn predict(&self, input: &SrInput) -> Result<Logits> {
        input.check(&self.config.spec())?;
        let what = match input.kind() {
            SrKind::Dsr => "DSR forward",
            SrKind::Itersr => "ItersR forward",
        };
        let data = guard(what, || self.forward(input))?;
        let vocab = self.b.config.image_vocab_size;
        Ok(Logits {
            rows: data.len() / vocab,
            vocab,
            data,
        })
    }
}
