//! DSR and ItersR on libtorch: the backbone plus 3600 extra position embeddings (and for DSR a
//! second QKV/dense projection per layer for the high-resolution tokens), run as two levels.
//!
//! Level 0 (the text, and DSR's low-resolution grid) attends densely with an additive mask.
//! Level 1 (the high-resolution grid) attends locally, with Image-Local-Attention's semantics:
//! each query sees a set of "extra" keys (DSR: a 5×5 window of the low-resolution grid around
//! (y/3, x/3); ItersR: the visible text) and the 9×5 window of its own grid, under one softmax.
//! Keys outside a grid get no weight. Level 1 runs in blocks of grid rows: each block attends
//! densely to the level-0 keys and the level-1 rows its windows can reach, under a mask that keeps
//! exactly the kernel's keys; no `N × N` matrix is formed.

use crate::backbone::{softmax_with_bias, Backbone, Linear};
use crate::weights::{f32_tensor, guard, index_tensor, to_vec_f32, Frozen, Loader};
use cogview_candle::{SrConfig, SrKind};
use cogview_checkpoint::Checkpoint;
use cogview_core::backend::LoadRequest;
use cogview_core::lm::{check_vocab, Logits};
use cogview_core::local_window::LocalWindow;
use cogview_core::sr::GridPredictor;
use cogview_core::{Error, Result, TokenGrid};
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

fn self_window(c: &SrConfig) -> LocalWindow {
    LocalWindow {
        kh: 2 * c.kernel_size - 1,
        kw: c.kernel_size,
        ah: 1,
        aw: 1,
        causal: false,
    }
}

fn cross_window(c: &SrConfig) -> LocalWindow {
    let r = c.high / c.low.max(1);
    LocalWindow {
        kh: c.kernel_size2,
        kw: c.kernel_size2,
        ah: r,
        aw: r,
        causal: false,
    }
}

/// The keys level 1 sees besides its own window.
enum Extra<'a> {
    /// DSR: the cross-resolution window over the low-resolution rows of level 0 (after the text
    /// slots).
    LowWindow,
    /// ItersR: every level-0 row whose flag is set.
    Text(&'a [bool]),
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

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        check_vocab(ids, self.b.config.vocab_size)
    }

    /// DSR: logits `[high², image_vocab]` from the text (no padding, no `<start_of_image>`) and the
    /// low-resolution grid; the high-resolution inputs are all `placeholder`.
    fn dsr_logits(&self, text: &[u32], low_res: &[u32], placeholder: u32) -> Result<Vec<f32>> {
        let c = &self.config;
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
        check_vocab(low_res, self.b.config.image_vocab_size)?;
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
        // Text sees the (unpadded) text; low-resolution tokens see the text and each other.
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
        guard("DSR forward", || {
            self.forward(&tokens0, &pos0, &bias0, &tokens1, Extra::LowWindow)
        })
    }

    /// ItersR, one pass: logits `[high², image_vocab]`; `tokens` holds the grid with the cells to
    /// re-sample set to the mask id. Only the first `text_slots` text tokens are used.
    fn itersr_logits(&self, text: &[u32], tokens: &[u32]) -> Result<Vec<f32>> {
        let c = &self.config;
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
        guard("ItersR forward", || {
            self.forward(&tokens0, &pos0, &bias0, tokens, Extra::Text(&visible))
        })
    }

    /// Level 1's queries in blocks of whole grid rows, each with the level-0 and level-1 rows its
    /// windows can reach and its additive mask over `[those level-0 keys; those level-1 keys]`: 0
    /// where the local
    /// kernel looks (DSR: the cross-resolution window over the low-resolution rows of level 0;
    /// ItersR: the visible text; both: the query's own window), −inf elsewhere.
    fn level1_blocks(&self, n0: usize, extra: &Extra) -> Vec<Block> {
        let c = &self.config;
        let (own, cross) = (self_window(c), cross_window(c));
        let (h, w) = (c.high, c.high);
        let reach = own.kh / 2;
        let rows_per_block = (BLOCK_QUERIES / w).clamp(1, h);
        let mut blocks = Vec::new();
        let mut r0 = 0;
        while r0 < h {
            let r1 = (r0 + rows_per_block).min(h);
            let (lo, hi) = (r0.saturating_sub(reach), (r1 + reach).min(h));
            let (k_start, k_len) = (lo * w, (hi - lo) * w);
            // The level-0 rows the block's extra keys come from.
            let (e_start, e_len) = match extra {
                Extra::LowWindow => {
                    let (ratio, reach2) = (cross.ah, cross.kh / 2);
                    let lo2 = (r0 / ratio).saturating_sub(reach2);
                    let hi2 = ((r1 - 1) / ratio + reach2 + 1).min(c.low);
                    (c.text_slots + lo2 * c.low, (hi2 - lo2) * c.low)
                }
                Extra::Text(_) => (0, n0),
            };
            let width = e_len + k_len;
            let q_len = (r1 - r0) * w;
            let mut mask = vec![f32::NEG_INFINITY; q_len * width];
            for (qi, row) in mask.chunks_mut(width).enumerate() {
                let q = r0 * w + qi;
                let (y, x) = (q / w, q % w);
                match extra {
                    Extra::LowWindow => {
                        for r in cross.keys(y, x, c.low, c.low).flatten() {
                            row[c.text_slots + r - e_start] = 0.0;
                        }
                    }
                    Extra::Text(visible) => {
                        for (k, _) in visible.iter().enumerate().filter(|(_, v)| **v) {
                            row[k] = 0.0;
                        }
                    }
                }
                for r in own.keys(y, x, h, w).flatten() {
                    row[e_len + r - k_start] = 0.0;
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
    fn forward(
        &self,
        tokens0: &[u32],
        pos0: &[u32],
        bias0: &[f32],
        tokens1: &[u32],
        extra: Extra,
    ) -> Vec<f32> {
        let b = &self.b;
        let bc = &b.config;
        let dev = b.device;
        let kind = b.kind;
        let (heads, d) = (bc.num_attention_heads as i64, bc.head_dim as i64);
        let a = heads * d;
        let (n0, n1) = (tokens0.len() as i64, tokens1.len() as i64);
        let mut x0 = b.embed(
            &index_tensor(tokens0, dev),
            &b.position_embeddings.index_select(0, &index_tensor(pos0, dev)),
        );
        let mut x1 = b.embed(
            &index_tensor(tokens1, dev),
            &self.extra_positions.narrow(0, 0, n1),
        );
        let bias0 = f32_tensor(bias0, &[n0, n0], dev);
        let blocks: Vec<(Block, Tensor)> = self
            .level1_blocks(n0 as usize, &extra)
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
    /// DSR: `grid` is the low-resolution grid (the placeholder is `start_of_image_id`); ItersR:
    /// the current high-resolution grid.
    fn predict(&self, text: &[u32], grid: &TokenGrid) -> Result<Logits> {
        let data = match self.config.kind {
            SrKind::Dsr => self.dsr_logits(text, &grid.ids, self.b.config.start_of_image_id)?,
            SrKind::Itersr => self.itersr_logits(text, &grid.ids)?,
        };
        let vocab = self.b.config.image_vocab_size;
        Ok(Logits {
            rows: data.len() / vocab,
            vocab,
            data,
        })
    }
}
