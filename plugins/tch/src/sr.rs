//! DSR and ItersR on libtorch: the backbone plus 3600 extra position embeddings (and for DSR a
//! second QKV/dense projection per layer for the high-resolution tokens), run as two levels.
//!
//! Level 0 (the text, and DSR's low-resolution grid) attends densely with an additive mask.
//! Level 1 (the high-resolution grid) attends locally, with Image-Local-Attention's semantics:
//! each query sees a set of "extra" keys (DSR: a 5×5 window of the low-resolution grid around
//! (y/3, x/3); ItersR: the visible text) and the 9×5 window of its own grid, under one softmax.
//! Keys outside a grid get no weight. The keys of every query are gathered into a
//! `[queries, slots]` table (a few hundred queries at a time), so no `N × N` matrix is formed.

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

/// Gathered keys per chunk of queries are kept below this many elements.
const GATHER_ELEMENTS: usize = 1 << 25;

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
        let text = &text[..text.len().min(c.text_slots)];
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

    /// For every high-resolution query, the rows of `[level-0 keys; level-1 keys]` it attends to
    /// and their additive mask (0, or −inf for a slot outside a grid or an invisible text key):
    /// `([n1 · slots] row indices, [n1 · slots] mask, slots)`.
    fn level1_keys(&self, n0: usize, extra: &Extra) -> (Vec<u32>, Vec<f32>, usize) {
        let c = &self.config;
        let (own, cross) = (self_window(c), cross_window(c));
        let extra_slots = match extra {
            Extra::LowWindow => cross.slots(),
            Extra::Text(v) => v.len(),
        };
        let slots = extra_slots + own.slots();
        let n1 = c.high * c.high;
        let mut rows = Vec::with_capacity(n1 * slots);
        let mut mask = Vec::with_capacity(n1 * slots);
        let mut push = |key: Option<usize>| match key {
            Some(r) => {
                rows.push(r as u32);
                mask.push(0.0);
            }
            None => {
                rows.push(0);
                mask.push(f32::NEG_INFINITY);
            }
        };
        for q in 0..n1 {
            let (y, x) = (q / c.high, q % c.high);
            match extra {
                Extra::LowWindow => {
                    for k in cross.keys(y, x, c.low, c.low) {
                        push(k.map(|r| c.text_slots + r));
                    }
                }
                Extra::Text(visible) => {
                    for (k, &v) in visible.iter().enumerate() {
                        push(v.then_some(k));
                    }
                }
            }
            for k in own.keys(y, x, c.high, c.high) {
                push(k.map(|r| n0 + r));
            }
        }
        (rows, mask, slots)
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
        let (rows, mask, slots) = self.level1_keys(n0 as usize, &extra);
        let rows = index_tensor(&rows, dev).view([n1, slots as i64]);
        let mask = f32_tensor(&mask, &[n1, 1, 1, slots as i64], dev);
        let chunk = (GATHER_ELEMENTS / (slots * a as usize)).clamp(1, n1 as usize) as i64;
        let scale = 1.0 / (d as f64).sqrt();
        for (i, l) in b.layers.iter().enumerate() {
            let (qkv1_lin, dense1) = match self.plus.get(i) {
                Some((q, dn)) => (q, dn),
                None => (&l.query_key_value, &l.dense),
            };
            let qkv0 = l.query_key_value.forward(&l.input_layernorm.forward(&x0));
            let qkv1 = qkv1_lin.forward(&l.input_layernorm.forward(&x1));
            let part = |t: &Tensor, j: i64| t.narrow(1, j * a, a);
            // Level 0: dense attention, heads first.
            let heads0 = |t: Tensor| t.view([n0, heads, d]).transpose(0, 1);
            let s0 = (heads0(part(&qkv0, 0)) * scale).matmul(&heads0(part(&qkv0, 1)).transpose(-1, -2));
            let p0 = softmax_with_bias(&s0, &bias0, kind);
            let o0 = p0
                .matmul(&heads0(part(&qkv0, 2)))
                .transpose(0, 1)
                .reshape([n0, a]);
            // Level 1: local attention over gathered keys.
            let keys = Tensor::cat(&[part(&qkv0, 1), part(&qkv1, 1)], 0);
            let values = Tensor::cat(&[part(&qkv0, 2), part(&qkv1, 2)], 0);
            let q1 = (part(&qkv1, 0) * scale).view([n1, heads, 1, d]);
            let mut outs = Vec::new();
            let mut start = 0;
            while start < n1 {
                let c = chunk.min(n1 - start);
                let idx = rows.narrow(0, start, c).reshape([-1]);
                let kg = keys
                    .index_select(0, &idx)
                    .view([c, slots as i64, heads, d])
                    .permute([0, 2, 3, 1]); // [c, heads, d, slots]
                let vg = values
                    .index_select(0, &idx)
                    .view([c, slots as i64, heads, d])
                    .permute([0, 2, 1, 3]); // [c, heads, slots, d]
                let s1 = q1.narrow(0, start, c).matmul(&kg); // [c, heads, 1, slots]
                let p1 = softmax_with_bias(&s1, &mask.narrow(0, start, c), kind);
                outs.push(p1.matmul(&vg).reshape([c, a]));
                start += c;
            }
            let o1 = Tensor::cat(&outs, 0);
            x0 = &x0 + l.third_layernorm.forward(&l.dense.forward(&o0));
            x1 = &x1 + l.third_layernorm.forward(&dense1.forward(&o1));
            x0 = b.mlp(i, &x0);
            x1 = b.mlp(i, &x1);
        }
        to_vec_f32(&b.logits(&x1, bc.image_vocab_size))
    }
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
