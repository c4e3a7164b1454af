//! Training the super-resolution models on pairs made by encoding the same image at the two
//! resolutions (the default model: 64 px → 8×8 tokens and 192 px → 24×24 tokens):
//!
//! - **DSR**: text + the low-resolution grid → every high-resolution cell (cross-entropy over all
//!   cells), as `direct_sr.py` uses it: the high-resolution inputs are all `<start_of_image>`.
//! - **ItersR**: text (first 16 tokens) + the high-resolution grid with a share of its cells set to
//!   `<start_of_image>` → those cells. The share is drawn from the official mask ratios
//!   {0.2, 0.4, 0.6, 0.8, 0.9} (spec §6.2).

use crate::coglm::Vocab;
use crate::optim::{checkpoint, init_store, load_state, AdamW};
use candle_core::{Device, Tensor};
use cogview_candle::{CoglmConfig, LoadOptions, SrConfig, SrKind, SrModel, VqTokenizer};
use cogview_core::{Compression, Error, ImageTokenizer, Result, Rng, TextTokenizer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The official ItersR mask ratios.
pub const MASK_RATIOS: [f64; 5] = [0.2, 0.4, 0.6, 0.8, 0.9];

/// The default model's DSR or ItersR: 3 layers × 128 (4 heads), text slots 32 (DSR) / 16
/// (ItersR). Their task on flat shapes is local and simple; each training image is a 672-token
/// (DSR) or 592-token (ItersR) pass, so width is what training time pays for.
pub fn default_config(kind: SrKind, vocab: &Vocab, low: usize, high: usize) -> SrConfig {
    config_with_layers(kind, vocab, low, high, DEFAULT_LAYERS)
}

/// The default model's DSR and ItersR layers.
pub const DEFAULT_LAYERS: usize = 3;

/// [`default_config`] with `layers` transformer layers (`cogview train dsr|itersr --layers`).
pub fn config_with_layers(
    kind: SrKind,
    vocab: &Vocab,
    low: usize,
    high: usize,
    layers: usize,
) -> SrConfig {
    SrConfig {
        kind,
        backbone: CoglmConfig {
            num_layers: layers,
            hidden_size: 128,
            num_attention_heads: 4,
            vocab_size: vocab.total,
            max_sequence_length: 1024,
            inner_hidden_size: 512,
            head_dim: 32,
            layernorm_epsilon: 1e-5,
            image_vocab_size: vocab.image,
            start_of_image_id: vocab.start_of_image,
        },
        text_slots: match kind {
            SrKind::Dsr => 32,
            SrKind::Itersr => 16,
        },
        // ItersR has no low-resolution stream (its layout is [text, high]).
        low: match kind {
            SrKind::Dsr => low,
            SrKind::Itersr => 0,
        },
        high,
        kernel_size: 5,
        kernel_size2: 5,
    }
}

/// `model_config.json` of an SR model (SAT's keys, the official `layout`, cogview's keys).
pub fn model_config_json(c: &SrConfig) -> serde_json::Value {
    let b = &c.backbone;
    let layout = match c.kind {
        SrKind::Dsr => vec![
            c.text_slots,
            c.text_slots + c.low * c.low,
            c.text_slots + c.low * c.low + c.high * c.high,
        ],
        SrKind::Itersr => vec![c.text_slots, c.text_slots + c.high * c.high],
    };
    serde_json::json!({
        "model_class": match c.kind { SrKind::Dsr => "DsrModel", SrKind::Itersr => "ItersrModel" },
        "num_layers": b.num_layers,
        "hidden_size": b.hidden_size,
        "num_attention_heads": b.num_attention_heads,
        "vocab_size": b.vocab_size,
        "layernorm_order": "sandwich",
        "model_parallel_size": 1,
        "max_sequence_length": b.max_sequence_length,
        "inner_hidden_size": b.inner_hidden_size,
        "kernel_size": c.kernel_size,
        "kernel_size2": c.kernel_size2,
        "layout": layout,
        "new_sequence_length": b.max_sequence_length + c.high * c.high,
        "image_vocab_size": b.image_vocab_size,
        "start_of_image_id": b.start_of_image_id,
    })
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SrTrainOptions {
    pub steps: u64,
    /// Images per optimizer step (each is one forward pass).
    pub batch: usize,
    pub lr: f64,
    pub warmup: u64,
    pub seed: u64,
    pub save_every: u64,
    /// Trained weights to start from (when no state is resumed): see [`crate::optim::init_from`].
    pub init_from: Option<PathBuf>,
}

impl Default for SrTrainOptions {
    fn default() -> Self {
        SrTrainOptions {
            steps: 3000,
            batch: 8,
            lr: 1e-3,
            warmup: 100,
            seed: 3,
            save_every: 250,
            init_from: None,
        }
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct SrStep {
    pub step: u64,
    pub loss: f32,
    /// Share of the predicted cells whose most likely token is the target.
    pub accuracy: f32,
}

/// The cells ItersR re-samples in one training example: a `ratio` share, uniformly.
pub fn random_mask(cells: usize, ratio: f64, rng: &mut Rng) -> Vec<bool> {
    let k = ((cells as f64 * ratio).round() as usize).clamp(1, cells);
    // A partial Fisher-Yates shuffle picks k distinct cells.
    let mut idx: Vec<usize> = (0..cells).collect();
    for i in 0..k {
        let j = i + rng.below(cells - i);
        idx.swap(i, j);
    }
    let mut mask = vec![false; cells];
    for &i in &idx[..k] {
        mask[i] = true;
    }
    mask
}

/// Trains DSR or ItersR (by `config.kind`); writes `state.safetensors` and `<kind>.safetensors`.
#[allow(clippy::too_many_arguments)]
pub fn train(
    opts: &SrTrainOptions,
    config: &SrConfig,
    vocab: &Vocab,
    data: &mut crate::data::DataMix,
    vq: &VqTokenizer,
    text: &dyn TextTokenizer,
    out: &Path,
    mut report: impl FnMut(&SrStep),
) -> Result<PathBuf> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let vars = init_store(&config.expected_tensors(), opts.seed, 0.5)?;
    let mut adam = AdamW::new(opts.lr, 0.01);
    let state = out.join("state.safetensors");
    if state.is_file() {
        crate::optim::check_resumed_layers(&state, config.backbone.num_layers)?;
        let (_, meta) = load_state(&state, &vars, &mut adam)?;
        crate::data::check_resumed_split(&state, &meta, data.split())?;
        data.reseed(crate::data::DataMix::resumed_seed(opts.seed, adam.step));
    } else if let Some(init) = &opts.init_from {
        crate::optim::init_from_growing(&vars, init, config.backbone.num_layers)?;
    }
    let model = SrModel::from_checkpoint(&vars, config.clone(), LoadOptions::default())?;
    let mut rng = Rng::from_seed(opts.seed ^ 0x512);
    let weights = out.join(match config.kind {
        SrKind::Dsr => "dsr.safetensors",
        SrKind::Itersr => "itersr.safetensors",
    });
    let split = data.state_metadata();
    let meta = |adam: &AdamW| -> Result<HashMap<String, String>> {
        let mut m = HashMap::new();
        m.insert(split.0.clone(), split.1.clone());
        m.insert("model_config".into(), model_config_json(config).to_string());
        m.insert(
            "options".into(),
            serde_json::to_string(opts).map_err(|e| Error::backend_source("", e))?,
        );
        m.insert("step".into(), adam.step.to_string());
        Ok(m)
    };
    let (low_px, high_px) = (config.low.max(1) * 8, config.high * 8);
    let cells = config.high * config.high;
    while adam.step < opts.steps {
        let mut losses = Vec::with_capacity(opts.batch);
        let (mut hits, mut counted) = (0usize, 0usize);
        for _ in 0..opts.batch {
            let ex = data.draw()?;
            let high = vq.encode(&data.render(&ex, high_px)?, Compression::X8)?;
            let mut ids = text.encode(&ex.caption)?.0;
            if config.kind == SrKind::Dsr {
                // DSR's layout holds at most text_slots − 1 text tokens (official: 95); ItersR
                // keeps the first text_slots itself, as at inference.
                ids.truncate(config.text_slots - 1);
            }
            let (logits, mask) = match config.kind {
                SrKind::Dsr => {
                    let low = vq.encode(&data.render(&ex, low_px)?, Compression::X8)?;
                    (
                        model.dsr_logits(&ids, &low.ids, vocab.start_of_image)?,
                        vec![true; cells],
                    )
                }
                SrKind::Itersr => {
                    let ratio = MASK_RATIOS[rng.below(MASK_RATIOS.len())];
                    let mask = random_mask(cells, ratio, &mut rng);
                    let input: Vec<u32> = high
                        .ids
                        .iter()
                        .zip(&mask)
                        .map(|(&t, &m)| if m { vocab.start_of_image } else { t })
                        .collect();
                    (model.itersr_logits(&ids, &input)?, mask)
                }
            };
            let dev = Device::Cpu;
            let targets = crate::optim::cd!(Tensor::from_vec(high.ids.clone(), cells, &dev))?;
            let weights: Vec<f32> = mask.iter().map(|&m| if m { 1.0 } else { 0.0 }).collect();
            let weights = crate::optim::cd!(Tensor::from_vec(weights, cells, &dev))?;
            let l3 = crate::optim::cd!(logits.unsqueeze(0))?;
            losses.push(crate::coglm::masked_cross_entropy(&l3, &targets, &weights)?);
            let best = crate::optim::cd!(logits.detach().argmax(1)?.to_vec1::<u32>())?;
            for c in 0..cells {
                if mask[c] {
                    counted += 1;
                    hits += (best[c] == high.ids[c]) as usize;
                }
            }
        }
        let loss = crate::optim::cd!(Tensor::stack(&losses, 0)?.mean_all())?;
        let grads = crate::optim::cd!(loss.backward())?;
        adam.lr = crate::optim::learning_rate(adam.step, opts.warmup, opts.steps, opts.lr);
        adam.apply(&vars, &grads, &|_| false)?;
        report(&SrStep {
            step: adam.step,
            loss: crate::optim::cd!(loss.to_scalar::<f32>())?,
            accuracy: hits as f32 / counted.max(1) as f32,
        });
        if adam.step.is_multiple_of(opts.save_every) {
            checkpoint(&state, &weights, &vars, &adam, meta(&adam)?)?;
        }
    }
    checkpoint(&state, &weights, &vars, &adam, meta(&adam)?)?;
    Ok(weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_have_the_drawn_share_of_distinct_cells() {
        let mut rng = Rng::from_seed(9);
        for ratio in MASK_RATIOS {
            let m = random_mask(576, ratio, &mut rng);
            assert_eq!(
                m.iter().filter(|&&x| x).count(),
                (576.0 * ratio).round() as usize
            );
        }
    }

    #[test]
    fn the_written_configuration_reads_back_as_the_same_model() {
        let vocab = Vocab {
            image: 1024,
            start_of_image: 3000,
            start_of_english: 3001,
            total: 3003,
        };
        for kind in [SrKind::Dsr, SrKind::Itersr] {
            let c = default_config(kind, &vocab, 8, 24);
            let text = model_config_json(&c).to_string();
            let mc = cogview_checkpoint::ModelConfig::parse(&text, Path::new("t")).unwrap();
            // The loader derives the geometry from `layout`; the tensors it expects must match.
            let vars = init_store(&c.expected_tensors(), 1, 0.5).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("m.safetensors");
            let mut meta = HashMap::new();
            meta.insert("model_config".to_string(), text);
            crate::optim::save_weights(&vars, &[], &p, meta, true).unwrap();
            let (back, _) = cogview_candle::inspect::sr_config(&p).unwrap();
            assert_eq!(back, c, "{kind:?}");
            assert!(mc.opt_str("model_class").unwrap().is_some());
        }
    }
}
