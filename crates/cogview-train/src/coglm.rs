//! Training CogLM on the official mixed objective (spec §3.4), scaled to the default model's
//! 8×8 grid:
//!
//! - **text → image** (1 − `caption_ratio` of the samples): `text, <start_of_image>, image`, text
//!   positions 0.., `<start_of_image>` at 512 and image token j at 513 + j; text is seen by every
//!   row, the image region is causal; the loss is on the image tokens.
//! - **image → caption with infilling** (`caption_ratio`, official 0.3): `image, <start_of_english>,
//!   text`, image positions 513.., the start token at 0 and text token i at i + 1. Random 4×4
//!   patches of the image are masked through attention only (no [MASK] token): unmasked image
//!   tokens see only unmasked image tokens; masked ones see the unmasked ones and the masked ones
//!   up to themselves; the text is causal and sees the whole image. The loss is on the text and on
//!   the first three columns of each patch row (predicting the next token), so the first token of
//!   a masked run is never a target — which is why editing places a context token before each
//!   run (§8).
//!
//! Inputs are never replaced; targets are the next token (`label[i] = x[i+1]`). One addition to
//! the official objective: in caption samples the last text token predicts `<start_of_image>`,
//! which gives the default model an end of caption (`cogview caption` stops there).

use crate::optim::{checkpoint, init_store, load_state, AdamW};
use candle_core::{Device, Tensor, D};
use cogview_candle::{CoglmConfig, CoglmModel, LoadOptions, VqTokenizer};
use cogview_core::{Compression, Error, ImageTokenizer, Result, Rng, TextTokenizer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where things are in the vocabulary (icetk's layout: image codes, text pieces, specials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Vocab {
    pub image: usize,
    pub start_of_image: u32,
    pub start_of_english: u32,
    pub total: usize,
}

/// Position of `<start_of_image>`; image token j sits at this + 1 + j (official).
pub const START_OF_IMAGE_POSITION: u32 = 512;

/// One training sequence with its attention pattern and targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub tokens: Vec<u32>,
    pub positions: Vec<u32>,
    /// `visible[q * n + k]`: query q may attend to key k.
    pub visible: Vec<bool>,
    /// The token predicted at each position (the next one), where it counts in the loss.
    pub targets: Vec<Option<u32>>,
}

impl Sequence {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Text → image: `text, <start_of_image>, image`.
pub fn text_to_image(text: &[u32], image: &[u32], v: &Vocab) -> Sequence {
    let t = text.len();
    let mut tokens = text.to_vec();
    tokens.push(v.start_of_image);
    tokens.extend_from_slice(image);
    let n = tokens.len();
    let mut positions: Vec<u32> = (0..t as u32).collect();
    positions.extend((0..=image.len() as u32).map(|j| START_OF_IMAGE_POSITION + j));
    let mut visible = vec![false; n * n];
    for q in 0..n {
        for k in 0..n {
            visible[q * n + k] = k < t || k <= q;
        }
    }
    let mut targets = vec![None; n];
    for (j, &id) in image.iter().enumerate() {
        targets[t + j] = Some(id); // <start_of_image> predicts image 0, image j−1 predicts j
    }
    Sequence {
        tokens,
        positions,
        visible,
        targets,
    }
}

/// The official patch draw scaled to a `grid`×`grid` image: int(0.8·cells/16) patches of 4×4 with
/// corners in `0..grid−4` (so, as officially, the last row and column are never masked).
pub fn random_patches(grid: usize, rng: &mut Rng) -> Vec<(usize, usize)> {
    let n = (0.8 * (grid * grid) as f64 / 16.0) as usize;
    let span = grid.saturating_sub(4).max(1);
    (0..n.max(1))
        .map(|_| (rng.below(span), rng.below(span)))
        .collect()
}

/// Image → caption with the cells of `patches` infilled: `image, <start_of_english>, text`.
pub fn caption(
    image: &[u32],
    grid: usize,
    text: &[u32],
    patches: &[(usize, usize)],
    v: &Vocab,
) -> Sequence {
    let m = image.len();
    let t = text.len();
    let mut masked = vec![false; m];
    let mut loss_cell = vec![false; m];
    for &(r0, c0) in patches {
        for r in r0..(r0 + 4).min(grid) {
            for c in c0..(c0 + 4).min(grid) {
                masked[r * grid + c] = true;
                if c < c0 + 3 && c + 1 < grid {
                    loss_cell[r * grid + c] = true;
                }
            }
        }
    }
    let mut tokens = image.to_vec();
    tokens.push(v.start_of_english);
    tokens.extend_from_slice(text);
    let n = tokens.len();
    let mut positions: Vec<u32> = (0..m as u32)
        .map(|j| START_OF_IMAGE_POSITION + 1 + j)
        .collect();
    positions.extend(0..=t as u32);
    let mut visible = vec![false; n * n];
    for q in 0..n {
        for k in 0..n {
            visible[q * n + k] = if q < m {
                // Image rows: unmasked keys always; masked keys causally, from masked rows only.
                k < m && (!masked[k] || (masked[q] && k <= q))
            } else {
                // Text rows: the whole image, and the text causally.
                k < m || k <= q
            };
        }
    }
    let mut targets = vec![None; n];
    for j in 0..m {
        if loss_cell[j] {
            targets[j] = Some(image[j + 1]);
        }
    }
    for i in 0..t {
        targets[m + i] = Some(text[i]); // the start token predicts text 0, text i−1 predicts i
    }
    // cogview's one addition to the official objective: the last text token predicts
    // `<start_of_image>`, so that a caption can end (the official CogLM has no end of caption;
    // `caption_end` in the pipeline's [coglm] section names this token for the default model).
    targets[m + t] = Some(v.start_of_image);
    Sequence {
        tokens,
        positions,
        visible,
        targets,
    }
}

/// Text-conditioned infilling, cogview's addition to the official objective (off unless
/// `infill_ratio` > 0): exactly the sequence editing runs (`cogview_core::edit`): text,
/// `<start_of_image>` at 512, the context cells (bidirectional), then in raster order each
/// masked run after its block starter; the loss is on the masked cells (each predicted from the
/// row before it). The official objective trains text → image and infilling without text
/// separately; editing needs both at once.
pub fn text_infill(
    text: &[u32],
    image: &[u32],
    grid: usize,
    mask: &[bool],
    v: &Vocab,
) -> Result<Sequence> {
    use cogview_core::stage1::{CompletionMask, CompletionPlan};
    let plan = CompletionPlan::new(mask, grid, grid)?;
    let t = text.len();
    let mut tokens = text.to_vec();
    let mut positions: Vec<u32> = (0..t as u32).collect();
    tokens.push(v.start_of_image);
    positions.push(START_OF_IMAGE_POSITION);
    for &c in &plan.context {
        tokens.push(image[c]);
        positions.push(START_OF_IMAGE_POSITION + 1 + c as u32);
    }
    let context_end = tokens.len();
    let mut targets = vec![None; context_end + plan.generation.len()];
    for &(c, given) in &plan.generation {
        if !given {
            targets[tokens.len() - 1] = Some(image[c]);
        }
        tokens.push(image[c]);
        positions.push(START_OF_IMAGE_POSITION + 1 + c as u32);
    }
    let n = tokens.len();
    let m = CompletionMask {
        text_len: t,
        context_end,
        text_bias: 0.0,
    };
    let visible = (0..n * n).map(|i| m.allows(i / n, i % n)).collect();
    Ok(Sequence {
        tokens,
        positions,
        visible,
        targets,
    })
}

/// A random rectangle of 2-5 × 2-5 cells to infill (a scene object's cell is about 3 × 3).
pub fn random_rectangle(grid: usize, rng: &mut Rng) -> Vec<bool> {
    let h = 2 + rng.below(4).min(grid.saturating_sub(2));
    let w = 2 + rng.below(4).min(grid.saturating_sub(2));
    let (h, w) = (h.min(grid), w.min(grid));
    let (r0, c0) = (rng.below(grid - h + 1), rng.below(grid - w + 1));
    (0..grid * grid)
        .map(|i| (r0..r0 + h).contains(&(i / grid)) && (c0..c0 + w).contains(&(i % grid)))
        .collect()
}

/// A padded batch as tensors: tokens and positions `[b, n]`, bias `[b, n, n]` (0 / −inf),
/// targets and loss weights `[b·n]`.
pub fn batch_tensors(
    seqs: &[Sequence],
    dev: &Device,
) -> Result<(Tensor, Tensor, Tensor, Tensor, Tensor)> {
    let n = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
    let b = seqs.len();
    let mut tokens = vec![0u32; b * n];
    let mut positions = vec![0u32; b * n];
    let mut bias = vec![f32::NEG_INFINITY; b * n * n];
    let mut targets = vec![0u32; b * n];
    let mut weights = vec![0f32; b * n];
    for (i, s) in seqs.iter().enumerate() {
        let l = s.len();
        tokens[i * n..i * n + l].copy_from_slice(&s.tokens);
        positions[i * n..i * n + l].copy_from_slice(&s.positions);
        for q in 0..n {
            for k in 0..n {
                let v = if q < l && k < l {
                    s.visible[q * l + k]
                } else {
                    q == k // padding rows see only themselves
                };
                if v {
                    bias[(i * n + q) * n + k] = 0.0;
                }
            }
            if q < l {
                if let Some(t) = s.targets[q] {
                    targets[i * n + q] = t;
                    weights[i * n + q] = 1.0;
                }
            }
        }
    }
    let be = |r: candle_core::Result<Tensor>| r.map_err(|e| Error::backend_source("", e));
    Ok((
        be(Tensor::from_vec(tokens, (b, n), dev))?,
        be(Tensor::from_vec(positions, (b, n), dev))?,
        be(Tensor::from_vec(bias, (b, n, n), dev))?,
        be(Tensor::from_vec(targets, b * n, dev))?,
        be(Tensor::from_vec(weights, b * n, dev))?,
    ))
}

/// Mean cross-entropy of `logits` `[b, n, v]` at the weighted positions.
pub fn masked_cross_entropy(logits: &Tensor, targets: &Tensor, weights: &Tensor) -> Result<Tensor> {
    crate::optim::cd!({
        let (b, n, v) = logits.dims3()?;
        let logp = candle_nn::ops::log_softmax(&logits.reshape((b * n, v))?, D::Minus1)?;
        let picked = logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
        let total = weights.sum_all()?.to_scalar::<f32>()?.max(1.0);
        (picked * weights)?
            .sum_all()?
            .affine(-1.0 / total as f64, 0.0)
    })
}

/// A resumed state must have been trained on the same image grid: CogLM's position table does not
/// depend on it, so the tensor shapes alone would not tell.
fn check_resumed_grid(state: &Path, meta: &HashMap<String, String>, grid: usize) -> Result<()> {
    let saved = meta
        .get("model_config")
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
        .and_then(|c| c["image_grid"].as_u64());
    match saved {
        Some(g) if g as usize != grid => Err(Error::invalid_input(
            "--grid",
            format!(
                "{} was trained on a {g}×{g} grid, not {grid}×{grid}: pass --grid {g} to resume \
                 it, or give another --out to start a new run",
                state.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// The default model's CogLM layers.
pub const DEFAULT_LAYERS: usize = 6;

/// The default model's CogLM: a small sandwich-LayerNorm GPT.
pub fn default_config(vocab: &Vocab) -> CoglmConfig {
    config_with_layers(vocab, DEFAULT_LAYERS)
}

/// The default model's CogLM with `layers` transformer layers (`cogview train coglm --layers`).
pub fn config_with_layers(vocab: &Vocab, layers: usize) -> CoglmConfig {
    CoglmConfig {
        num_layers: layers,
        hidden_size: 192,
        num_attention_heads: 6,
        vocab_size: vocab.total,
        max_sequence_length: 1024,
        inner_hidden_size: 768,
        head_dim: 32,
        layernorm_epsilon: 1e-5,
        image_vocab_size: vocab.image,
        start_of_image_id: vocab.start_of_image,
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CoglmTrainOptions {
    pub steps: u64,
    pub batch: usize,
    pub lr: f64,
    pub warmup: u64,
    pub caption_ratio: f64,
    /// Share of text-conditioned infilling samples ([`text_infill`]; 0 in the official objective).
    #[serde(default)]
    pub infill_ratio: f64,
    /// Share of text → image samples whose text is dropped (the image follows `<start_of_image>`
    /// alone), so that the model also learns the unconditional distribution classifier-free
    /// guidance needs (0 in the official objective).
    #[serde(default)]
    pub caption_dropout: f64,
    pub grid: usize,
    pub seed: u64,
    pub save_every: u64,
    /// Trained weights to start from (when no state is resumed): see [`crate::optim::init_from`].
    #[serde(default)]
    pub init_from: Option<PathBuf>,
}

impl Default for CoglmTrainOptions {
    fn default() -> Self {
        CoglmTrainOptions {
            steps: 6000,
            batch: 16,
            lr: 1e-3,
            warmup: 200,
            caption_ratio: 0.3,
            infill_ratio: 0.0,
            caption_dropout: 0.0,
            grid: 8,
            seed: 2,
            save_every: 250,
            init_from: None,
        }
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CoglmStep {
    pub step: u64,
    pub loss: f32,
    pub lr: f64,
}

/// The configuration written beside the weights (SAT's keys plus cogview's).
pub fn model_config_json(c: &CoglmConfig, grid: usize, max_text: usize) -> serde_json::Value {
    serde_json::json!({
        "model_class": "BaseModel",
        "num_layers": c.num_layers,
        "hidden_size": c.hidden_size,
        "num_attention_heads": c.num_attention_heads,
        "vocab_size": c.vocab_size,
        "layernorm_order": "sandwich",
        "model_parallel_size": 1,
        "max_sequence_length": c.max_sequence_length,
        "inner_hidden_size": c.inner_hidden_size,
        "image_vocab_size": c.image_vocab_size,
        "start_of_image_id": c.start_of_image_id,
        "image_grid": grid,
        "max_text_tokens": max_text,
    })
}

#[allow(clippy::too_many_arguments)]
/// Trains CogLM on images encoded with `vq` and captions encoded with `text`; writes
/// `state.safetensors` and `coglm.safetensors` into `out`, resuming from the state if present.
pub fn train(
    opts: &CoglmTrainOptions,
    config: &CoglmConfig,
    vocab: &Vocab,
    data: &mut crate::data::DataMix,
    vq: &VqTokenizer,
    text: &dyn TextTokenizer,
    out: &Path,
    mut report: impl FnMut(&CoglmStep),
) -> Result<PathBuf> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let vars = init_store(&config.expected_tensors(), opts.seed, 0.5)?;
    let mut adam = AdamW::new(opts.lr, 0.01);
    let state = out.join("state.safetensors");
    let weights_path = out.join("coglm.safetensors");
    if state.is_file() {
        crate::optim::check_resumed_layers(&state, config.num_layers)?;
        let (_, meta) = load_state(&state, &vars, &mut adam)?;
        check_resumed_grid(&state, &meta, opts.grid)?;
        crate::data::check_resumed_split(&state, &meta, data.split())?;
        data.reseed(crate::data::DataMix::resumed_seed(opts.seed, adam.step));
    } else if let Some(init) = &opts.init_from {
        crate::optim::init_from_growing(&vars, init, config.num_layers)?;
    }
    let model = CoglmModel::from_checkpoint(&vars, config.clone(), LoadOptions::default())?;
    let mut rng = Rng::from_seed(opts.seed ^ 0xC061A);
    let side = opts.grid * 8;
    let max_text = 63;
    let split = data.state_metadata();
    let meta = |adam: &AdamW| -> Result<HashMap<String, String>> {
        let mut m = HashMap::new();
        m.insert(split.0.clone(), split.1.clone());
        m.insert(
            "model_config".into(),
            model_config_json(config, opts.grid, max_text).to_string(),
        );
        m.insert(
            "options".into(),
            serde_json::to_string(opts).map_err(|e| Error::backend_source("", e))?,
        );
        m.insert("step".into(), adam.step.to_string());
        Ok(m)
    };
    while adam.step < opts.steps {
        let mut seqs = Vec::with_capacity(opts.batch);
        for _ in 0..opts.batch {
            let ex = data.draw()?;
            let img = data.render(&ex, side)?;
            let grid = vq.encode(&img, Compression::X8)?;
            let mut ids = text.encode(&ex.caption)?.0;
            ids.truncate(max_text);
            let r = rng.next_f64();
            seqs.push(if r < opts.caption_ratio {
                let patches = random_patches(opts.grid, &mut rng);
                caption(&grid.ids, opts.grid, &ids, &patches, vocab)
            } else if r < opts.caption_ratio + opts.infill_ratio {
                let mask = random_rectangle(opts.grid, &mut rng);
                text_infill(&ids, &grid.ids, opts.grid, &mask, vocab)?
            } else if rng.next_f64() < opts.caption_dropout {
                text_to_image(&[], &grid.ids, vocab)
            } else {
                text_to_image(&ids, &grid.ids, vocab)
            });
        }
        let dev = Device::Cpu;
        let (tokens, positions, bias, targets, weights) = batch_tensors(&seqs, &dev)?;
        let logits = model.forward_train(&tokens, &positions, &bias, vocab.total)?;
        let loss = masked_cross_entropy(&logits, &targets, &weights)?;
        let grads = crate::optim::cd!(loss.backward())?;
        let lr = crate::optim::learning_rate(adam.step, opts.warmup, opts.steps, opts.lr);
        adam.lr = lr;
        adam.apply(&vars, &grads, &|_| false)?;
        report(&CoglmStep {
            step: adam.step,
            loss: crate::optim::cd!(loss.to_scalar::<f32>())?,
            lr,
        });
        if adam.step.is_multiple_of(opts.save_every) {
            checkpoint(&state, &weights_path, &vars, &adam, meta(&adam)?)?;
        }
    }
    checkpoint(&state, &weights_path, &vars, &adam, meta(&adam)?)?;
    Ok(weights_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: Vocab = Vocab {
        image: 16,
        start_of_image: 40,
        start_of_english: 41,
        total: 43,
    };

    #[test]
    fn resuming_on_another_grid_is_refused_with_the_grid_to_pass() {
        let c = default_config(&V);
        let meta: HashMap<String, String> = [(
            "model_config".to_string(),
            model_config_json(&c, 8, 63).to_string(),
        )]
        .into();
        let state = Path::new("run/state.safetensors");
        assert!(check_resumed_grid(state, &meta, 8).is_ok());
        let e = check_resumed_grid(state, &meta, 9).unwrap_err().to_string();
        assert!(e.contains("8×8") && e.contains("--grid 8"), "{e}");
        // States from before the grid was recorded resume as they are.
        assert!(check_resumed_grid(state, &HashMap::new(), 9).is_ok());
    }

    #[test]
    fn text_to_image_layout_masks_and_targets() {
        let s = text_to_image(&[20, 21, 22], &[1, 2, 3, 4], &V);
        assert_eq!(s.tokens, [20, 21, 22, 40, 1, 2, 3, 4]);
        assert_eq!(s.positions, [0, 1, 2, 512, 513, 514, 515, 516]);
        assert_eq!(
            s.targets,
            [None, None, None, Some(1), Some(2), Some(3), Some(4), None]
        );
        let n = 8;
        // Text rows see the text only; image rows see the text and the image causally.
        assert!(s.visible[2] && !s.visible[3]);
        assert!(s.visible[5 * n + 2] && s.visible[5 * n + 5] && !s.visible[5 * n + 6]);
        // It is CogLM's inference mask.
        let m = cogview_core::stage1::CoglmMask {
            text_len: 3,
            text_bias: 0.0,
        };
        for q in 0..n {
            for k in 0..n {
                assert_eq!(s.visible[q * n + k], m.allows(q, k), "{q} {k}");
            }
        }
    }

    #[test]
    fn text_infill_is_the_editing_sequence_with_targets_on_masked_cells() {
        // 3x3 grid, cells 1 and 2 masked: cell 0 is the block starter.
        let image: Vec<u32> = (0..9).collect();
        let mut mask = vec![false; 9];
        mask[1] = true;
        mask[2] = true;
        let s = text_infill(&[30, 31], &image, 3, &mask, &V).unwrap();
        // text, <soi>, context 3..8, then starter 0 and masked 1, 2.
        assert_eq!(s.tokens, [30, 31, 40, 3, 4, 5, 6, 7, 8, 0, 1, 2]);
        assert_eq!(
            s.positions,
            [0, 1, 512, 516, 517, 518, 519, 520, 521, 513, 514, 515]
        );
        let mut want = vec![None; 12];
        want[9] = Some(1); // the starter predicts cell 1
        want[10] = Some(2);
        assert_eq!(s.targets, want);
        let n = 12;
        // Context is bidirectional and sees the text; <soi> does not see the context.
        assert!(s.visible[3 * n + 8] && s.visible[8 * n + 3] && s.visible[3 * n]);
        assert!(!s.visible[2 * n + 3]);
        // The generation segment is causal.
        assert!(s.visible[10 * n + 9] && !s.visible[9 * n + 10]);
        let mut rng = Rng::from_seed(1);
        for _ in 0..50 {
            let m = random_rectangle(8, &mut rng);
            let k = m.iter().filter(|x| **x).count();
            assert!((4..=25).contains(&k), "{k}");
        }
    }

    #[test]
    fn caption_layout_with_one_patch() {
        // 5x5 grid, one patch at (0, 0): cells rows 0-3, columns 0-3 masked.
        let image: Vec<u32> = (0..25).collect();
        let s = caption(&image, 5, &[30, 31], &[(0, 0)], &V);
        let n = s.len();
        assert_eq!(n, 25 + 1 + 2);
        assert_eq!(s.positions[0], 513);
        assert_eq!(&s.positions[25..], &[0, 1, 2]);
        let masked = |j: usize| j % 5 < 4 && j / 5 < 4;
        for q in 0..25 {
            for k in 0..25 {
                let want = !masked(k) || (masked(q) && k <= q);
                assert_eq!(s.visible[q * n + k], want, "{q} {k}");
            }
            // Image rows never see text.
            assert!(!s.visible[q * n + 25]);
        }
        // Text rows: all image, text causally.
        assert!(s.visible[26 * n] && s.visible[26 * n + 24] && s.visible[26 * n + 26]);
        assert!(!s.visible[26 * n + 27]);
        // Loss: columns 0-2 of each masked row predict the next cell; text predicted in order.
        for j in 0..25 {
            let want = masked(j) && j % 5 < 3;
            assert_eq!(s.targets[j].is_some(), want, "cell {j}");
            if want {
                assert_eq!(s.targets[j], Some(image[j + 1]));
            }
        }
        // The last text token predicts <start_of_image> (the end of caption).
        assert_eq!(
            &s.targets[25..],
            &[Some(30), Some(31), Some(V.start_of_image)]
        );
    }

    #[test]
    fn patches_follow_the_official_counts_and_corners() {
        let mut rng = Rng::from_seed(1);
        let p = random_patches(20, &mut rng);
        assert_eq!(p.len(), 20, "int(0.8 * 400 / 16)");
        assert!(p.iter().all(|&(r, c)| r < 16 && c < 16));
        assert_eq!(random_patches(8, &mut rng).len(), 3);
    }

    #[test]
    fn padding_hides_nothing_real_and_counts_nothing() {
        let a = text_to_image(&[20], &[1, 2], &V);
        let b = text_to_image(&[20, 21, 22], &[1, 2], &V);
        let (tok, _, bias, _, w) = batch_tensors(&[a.clone(), b], &Device::Cpu).unwrap();
        assert_eq!(tok.dims(), &[2, 6]);
        let bias = bias.to_vec3::<f32>().unwrap();
        // Row 0 of the short sequence: its own pattern, padding columns hidden.
        for k in 0..6 {
            let want = k < a.len() && a.visible[k];
            assert_eq!(bias[0][0][k] == 0.0, want);
        }
        // Padding rows see only themselves (no empty softmax).
        assert_eq!(bias[0][5][5], 0.0);
        assert_eq!(w.to_vec1::<f32>().unwrap().iter().sum::<f32>(), 4.0);
    }

    #[test]
    fn cross_entropy_of_uniform_logits_is_log_vocab() {
        let logits = Tensor::zeros((1, 2, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
        let targets = Tensor::new(&[3u32, 5], &Device::Cpu).unwrap();
        let w = Tensor::new(&[1f32, 0.0], &Device::Cpu).unwrap();
        let l = masked_cross_entropy(&logits, &targets, &w)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((l - (8f32).ln()).abs() < 1e-5);
    }
}
