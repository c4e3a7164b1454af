//! Training the image tokenizer: icetk's VQ-VAE structure (`cogview_candle::VqTokenizer`, built
//! from trainable variables) at compression 8, with an EMA codebook like icetk's
//! `VectorQuantizeEMA` (its `cluster_size` and `embed_avg` buffers are saved too).
//!
//! Loss: mean squared reconstruction error in the normalised pixel space plus β times the
//! commitment term ‖z − sg(e)‖²; the encoder gets the decoder's gradient through the
//! straight-through estimator. Codes unused for a while are restarted at encoder outputs of the
//! current batch. The networks are convolutional, so 64×64 crops of 192-px renders train them
//! for 192-px images at a ninth of the cost.

use crate::data::DataMix;
use crate::optim::{init_store, load_state, save_state, save_weights, AdamW};
use candle_core::{Device, Tensor, D};
use cogview_candle::{LoadOptions, VarStore, VqConfig, VqTokenizer};
use cogview_core::{Compression, Error, Image, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The default model's tokenizer: icetk's structure at a small width, trained at ×8 only.
pub fn default_config() -> VqConfig {
    VqConfig {
        channels: 32,
        enc_channels_mult: vec![1, 2, 2],
        enc_num_res_blocks: 1,
        z_channels: 64,
        embedding_dim: 64,
        n_embed: 1024,
        // ×16, ×8, ×4 as icetk; only ×8 is trained (`compressions`), the others are kept minimal.
        dec_channels_mult: [vec![1, 1, 1, 1, 1], vec![1, 1, 2, 2], vec![1, 1, 1]],
        dec_num_res_blocks: 0,
        resolution: 256,
        attn_resolutions: vec![],
        norm_groups: 8,
        norm_eps: 1e-6,
        compressions: vec![8],
        ..VqConfig::default()
    }
}

/// How to train.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VqTrainOptions {
    pub config: VqConfig,
    pub steps: u64,
    pub batch: usize,
    pub lr: f64,
    /// Side of the training crops.
    pub crop: usize,
    /// Render sides the crops are taken from (64 = whole stage-1 images, 192 = final images).
    pub render_sides: Vec<usize>,
    pub beta: f64,
    pub ema_decay: f64,
    pub seed: u64,
    pub save_every: u64,
}

impl Default for VqTrainOptions {
    fn default() -> Self {
        VqTrainOptions {
            config: default_config(),
            steps: 3000,
            batch: 16,
            lr: 1e-3,
            crop: 64,
            render_sides: vec![64, 192],
            beta: 0.25,
            ema_decay: 0.99,
            seed: 1,
            save_every: 250,
        }
    }
}

/// One step's numbers.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct VqStep {
    pub step: u64,
    pub reconstruction: f32,
    pub commitment: f32,
    /// exp(entropy) of the batch's code usage.
    pub perplexity: f32,
    pub restarted: usize,
}

/// Pixels → normalised `[batch, 3, h, w]`.
pub fn normalise(images: &[Image], cfg: &VqConfig) -> Result<Tensor> {
    let (w, h) = (images[0].width, images[0].height);
    let mut data = Vec::with_capacity(images.len() * 3 * w * h);
    for img in images {
        for c in 0..3 {
            for px in img.pixels.chunks_exact(3) {
                data.push((px[c] as f32 / 255.0 - cfg.mean[c]) / cfg.std[c]);
            }
        }
    }
    cd!(Tensor::from_vec(
        data,
        (images.len(), 3, h, w),
        &Device::Cpu
    ))
}

struct Ema {
    cluster_size: Vec<f32>,
    embed_avg: Vec<f32>,
    initialised: bool,
    /// The step each code was last chosen.
    last_used: Vec<u64>,
}

impl Ema {
    /// The EMA buffers as tensors named `<prefix>cluster_size` and `<prefix>embed_avg` (icetk's
    /// names with the prefix `quantize.`).
    fn tensors(&self, prefix: &str, k: usize, dim: usize) -> Result<Vec<(String, Tensor)>> {
        Ok(vec![
            (
                format!("{prefix}cluster_size"),
                cd!(Tensor::from_vec(self.cluster_size.clone(), k, &Device::Cpu))?,
            ),
            (
                format!("{prefix}embed_avg"),
                cd!(Tensor::from_vec(
                    self.embed_avg.clone(),
                    (k, dim),
                    &Device::Cpu
                ))?,
            ),
        ])
    }
}

/// A code not chosen for this many steps is restarted.
const RESTART_AFTER: u64 = 100;

/// Trains, writing `state.safetensors` (resumable) and `ice_image.safetensors` (the tokenizer,
/// loadable by `VqTokenizer::load`) into `out`. Resumes from `out/state.safetensors` if present.
pub fn train(
    opts: &VqTrainOptions,
    data: &mut DataMix,
    out: &Path,
    mut report: impl FnMut(&VqStep),
) -> Result<PathBuf> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let cfg = &opts.config;
    cfg.validate()?;
    let (k, dim) = (cfg.n_embed, cfg.embedding_dim);
    let vars = init_store(&cfg.expected_tensors(), opts.seed, 0.5)?;
    let mut adam = AdamW::new(opts.lr, 0.0);
    let mut ema = Ema {
        cluster_size: vec![0.0; k],
        embed_avg: vec![0.0; k * dim],
        initialised: false,
        last_used: vec![0; k],
    };
    let state = out.join("state.safetensors");
    if state.is_file() {
        let (extra, meta) = load_state(&state, &vars, &mut adam)?;
        crate::data::check_resumed_split(&state, &meta, data.split())?;
        if let (Some(cs), Some(ea)) = (extra.get("cluster_size"), extra.get("embed_avg")) {
            ema.cluster_size = cd!(cs.to_vec1::<f32>())?;
            ema.embed_avg = cd!(ea.flatten_all()?.to_vec1::<f32>())?;
            ema.initialised = true;
        }
        ema.last_used = vec![adam.step; k];
        data.reseed(crate::data::DataMix::resumed_seed(opts.seed, adam.step));
        tracing::info!(step = adam.step, "resumed VQ training");
    }
    let model = VqTokenizer::from_checkpoint(&vars, cfg.clone(), LoadOptions::default())?;
    let codebook_var = vars
        .get("quantize.embed.weight")
        .expect("the codebook is a variable")
        .clone();
    let skip = |n: &str| n == "quantize.embed.weight";
    let split = data.state_metadata();
    let save = |adam: &AdamW, ema: &Ema| -> Result<()> {
        let extra = ema.tensors("", k, dim)?;
        let mut meta = HashMap::new();
        meta.insert(split.0.clone(), split.1.clone());
        meta.insert(
            "options".into(),
            serde_json::to_string(opts).map_err(|e| Error::backend_source("", e))?,
        );
        save_state(&state, &vars, adam, &extra, meta)?;
        export(&vars, ema, cfg, &out.join("ice_image.safetensors"))
    };

    while adam.step < opts.steps {
        // A batch of crops from renders at the configured sides.
        let mut images = Vec::with_capacity(opts.batch);
        for _ in 0..opts.batch {
            let ex = data.draw()?;
            let side = opts.render_sides[data.rng().below(opts.render_sides.len())];
            let img = data.render(&ex, side)?;
            images.push(data.crop(&img, opts.crop)?);
        }
        let x = normalise(&images, cfg)?;
        let z = model.latent(&x, Compression::X8)?; // [b, dim, h, w]
        let (b, _, h, w) = cd!(z.dims4())?;
        let zf = cd!(z.permute((0, 2, 3, 1))?.reshape((b * h * w, dim)))?;
        let zd = cd!(zf.detach().to_vec2::<f32>())?;
        if !ema.initialised {
            // icetk initialises the codebook from data: encoder outputs of the first batch.
            let mut cb = vec![0f32; k * dim];
            for i in 0..k {
                let row = &zd[data.rng().below(zd.len())];
                cb[i * dim..(i + 1) * dim].copy_from_slice(row);
            }
            ema.embed_avg.clone_from(&cb);
            ema.cluster_size.iter_mut().for_each(|c| *c = 1.0);
            cd!(codebook_var.set(&Tensor::from_vec(cb, (k, dim), &Device::Cpu)?))?;
            ema.initialised = true;
        }
        let codebook = codebook_var.as_tensor().detach();
        let dist = cd!(zf
            .detach()
            .sqr()?
            .sum_keepdim(1)?
            .broadcast_add(&codebook.sqr()?.sum(1)?.unsqueeze(0)?)?
            .sub(&(zf.detach().matmul(&codebook.t()?)? * 2.0)?))?;
        let ids = cd!(dist.argmin(D::Minus1))?;
        let e = cd!(codebook.index_select(&ids, 0))?;
        let zq = cd!(&zf + (&e - &zf)?.detach())?;
        let zq = cd!(zq
            .reshape((b, h, w, dim))?
            .permute((0, 3, 1, 2))?
            .contiguous())?;
        let recon = model.decode_latent(&zq, Compression::X8)?;
        let rec_loss = cd!((&recon - &x)?.sqr()?.mean_all())?;
        let commit = cd!((&zf - &e)?.sqr()?.mean_all())?;
        let loss = cd!(&rec_loss + (&commit * opts.beta)?)?;
        let grads = cd!(loss.backward())?;
        adam.apply(&vars, &grads, &skip)?;

        // EMA codebook update, dead-code restarts.
        let ids_v = cd!(ids.to_vec1::<u32>())?;
        let mut counts = vec![0f32; k];
        let mut sums = vec![0f32; k * dim];
        for (row, &id) in zd.iter().zip(&ids_v) {
            let id = id as usize;
            counts[id] += 1.0;
            for (s, v) in sums[id * dim..(id + 1) * dim].iter_mut().zip(row) {
                *s += v;
            }
        }
        let d = opts.ema_decay as f32;
        for i in 0..k {
            ema.cluster_size[i] = d * ema.cluster_size[i] + (1.0 - d) * counts[i];
            for j in 0..dim {
                ema.embed_avg[i * dim + j] =
                    d * ema.embed_avg[i * dim + j] + (1.0 - d) * sums[i * dim + j];
            }
        }
        let n: f32 = ema.cluster_size.iter().sum();
        let eps = 1e-5f32;
        let mut cb = vec![0f32; k * dim];
        let mut restarted = 0;
        for i in 0..k {
            if counts[i] > 0.0 {
                ema.last_used[i] = adam.step;
            } else if adam.step - ema.last_used[i] > RESTART_AFTER {
                ema.last_used[i] = adam.step;
                // Dead: restart at a random encoder output of this batch.
                let row = &zd[data.rng().below(zd.len())];
                ema.embed_avg[i * dim..(i + 1) * dim].copy_from_slice(row);
                ema.cluster_size[i] = 1.0;
                restarted += 1;
            }
            let smoothed = (ema.cluster_size[i] + eps) / (n + k as f32 * eps) * n;
            for j in 0..dim {
                cb[i * dim + j] = ema.embed_avg[i * dim + j] / smoothed;
            }
        }
        cd!(codebook_var.set(&Tensor::from_vec(cb, (k, dim), &Device::Cpu)?))?;

        let total = counts.iter().sum::<f32>().max(1.0);
        let entropy: f32 = counts
            .iter()
            .filter(|&&c| c > 0.0)
            .map(|&c| {
                let p = c / total;
                -p * p.ln()
            })
            .sum();
        report(&VqStep {
            step: adam.step,
            reconstruction: cd!(rec_loss.to_scalar::<f32>())?,
            commitment: cd!(commit.to_scalar::<f32>())?,
            perplexity: entropy.exp(),
            restarted,
        });
        if adam.step.is_multiple_of(opts.save_every) || adam.step == opts.steps {
            save(&adam, &ema)?;
        }
    }
    save(&adam, &ema)?;
    Ok(out.join("ice_image.safetensors"))
}

/// Writes the tokenizer as icetk names it, with its configuration in the metadata.
fn export(vars: &VarStore, ema: &Ema, cfg: &VqConfig, path: &Path) -> Result<()> {
    let (k, dim) = (cfg.n_embed, cfg.embedding_dim);
    let extra = ema.tensors("quantize.", k, dim)?;
    let mut meta = HashMap::new();
    meta.insert(
        "vq_config".into(),
        serde_json::to_string(cfg).map_err(|e| Error::backend_source("", e))?,
    );
    save_weights(vars, &extra, path, meta, false)
}
